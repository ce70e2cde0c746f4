//! Every log line of a test binary, captured once (a global subscriber: a scoped one misses
//! events whose callsites other test threads registered first).

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The captured log text, shared by every writer the subscriber makes.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything logged so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary from its first call on, at TRACE level, so events
/// of the SDKs and HTTP stacks on every thread are seen. Panics if another global
/// subscriber was installed first.
pub fn captured_logs() -> &'static Captured {
    static CAPTURED: OnceLock<Captured> = OnceLock::new();
    let captured = CAPTURED.get_or_init(|| {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        captured
    });
    // A callsite another test thread registered while the subscriber was being installed
    // can keep the interest it computed without it ("never"), and its events are lost:
    // settle every callsite's interest again now that the subscriber is in place.
    tracing::callsite::rebuild_interest_cache();
    captured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_any_thread_are_captured_once_installed() {
        let captured = captured_logs();
        assert!(std::ptr::eq(captured, captured_logs()), "installed once");
        std::thread::spawn(|| tracing::info!(marker = "from-another-thread", "hello"))
            .join()
            .unwrap();
        let text = captured.text();
        assert!(text.contains("from-another-thread") && text.contains("hello"), "{text}");
    }
}
