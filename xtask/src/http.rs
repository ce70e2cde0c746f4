//! Loopback HTTP/1.1 for health checks and small downloads: free ports, a status probe and a
//! GET. Each request is sent with one write, and answers are read until what is needed has
//! arrived, however the kernel splits them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// A free TCP port on 127.0.0.1 (the OS picks; taken again by the server right after).
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind a port on 127.0.0.1")?;
    Ok(listener.local_addr()?.port())
}

/// Connects to 127.0.0.1:`port` and sends `GET path` (`Connection: close`) in ONE write:
/// `write!` on an unbuffered stream sends each formatted piece as its own segment, and a
/// server that answers and closes after the first piece resets the connection under the
/// rest (the client's next write then fails with ECONNRESET).
fn get(port: u16, path: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    Ok(stream)
}

/// The status code of `GET path` on 127.0.0.1:`port` (plain HTTP), if it answered.
pub(crate) fn http_status(port: u16, path: &str) -> Option<u16> {
    let stream = get(port, path, Duration::from_secs(5)).ok()?;
    // The status line, however many segments it comes in (at most 256 bytes).
    let mut line = Vec::new();
    BufReader::new(stream.take(256)).read_until(b'\n', &mut line).ok()?;
    status_code(&line)
}

/// `204` from `HTTP/1.1 204 No Content\r\n`.
fn status_code(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|w| w.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

/// The body of `GET path` on 127.0.0.1:`port` (plain HTTP, status 200 required).
pub(crate) fn http_get_bytes(port: u16, path: &str) -> Result<Vec<u8>> {
    let mut stream =
        get(port, path, Duration::from_secs(30)).with_context(|| format!("cannot GET {path} from port {port}"))?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("malformed HTTP response")?;
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        bail!("GET {path} answered {}", head.lines().next().unwrap_or_default());
    }
    if head.contains("transfer-encoding: chunked") {
        bail!("GET {path} answered with a chunked body, which this client does not read");
    }
    Ok(response[split + 4..].to_vec())
}

#[cfg(test)]
mod tests {
    use std::thread::JoinHandle;

    use super::*;

    /// A one-connection server that behaves: it reads the whole request head before it
    /// answers (so nothing the client sends arrives after it closed, which would reset the
    /// connection under the client), sends `response` in the given pieces, then closes
    /// gracefully (shutdown, and reads until the client closes). Returns its port, and the
    /// request head it read.
    fn serve_once(response: &'static [&'static [u8]]) -> (u16, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_nodelay(true).unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 256];
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before the end of its request");
                head.extend_from_slice(&buf[..n]);
            }
            // The client may close as soon as it has what it needs (the status line), so
            // what follows may meet a reset: not an error of the server.
            for piece in response {
                let _ = s.write_all(piece);
            }
            let _ = s.shutdown(std::net::Shutdown::Write);
            let _ = std::io::copy(&mut s, &mut std::io::sink());
            String::from_utf8(head).unwrap()
        });
        (port, server)
    }

    #[test]
    fn http_status_reads_the_status_line() {
        let (port, server) = serve_once(&[b"HTTP/1.1 204 No Content\r\n\r\n"]);
        assert_eq!(http_status(port, "/health"), Some(204));
        let head = server.join().unwrap();
        assert_eq!(
            head,
            format!("GET /health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
        );
        assert_eq!(http_status(free_port().unwrap(), "/"), None);
    }

    #[test]
    fn a_status_line_split_across_writes_is_read_whole() {
        let (port, server) = serve_once(&[b"HTTP/1.1 2", b"00 OK\r\n", b"Content-Length: 0\r\n\r\n"]);
        assert_eq!(http_status(port, "/"), Some(200));
        server.join().unwrap();
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None, "not HTTP");
        assert_eq!(status_code(b""), None);
    }

    #[test]
    fn http_get_bytes_returns_the_body_of_a_200_only() {
        let (port, server) = serve_once(&[b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", b"abc"]);
        assert_eq!(http_get_bytes(port, "/file").unwrap(), b"abc");
        server.join().unwrap();
        let (port, server) = serve_once(&[b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"]);
        let e = http_get_bytes(port, "/missing").unwrap_err().to_string();
        assert!(e.contains("404"), "{e}");
        server.join().unwrap();
    }
}
