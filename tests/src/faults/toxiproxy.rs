//! A small client of Toxiproxy's HTTP API (v2): proxies in front of an emulator, and the
//! toxics the fault matrix injects. Only what the matrix uses; every call checks the status
//! and panics with Toxiproxy's answer, as a fixture should.
//!
//! Toxiproxy applies a toxic to the connections open when it is added as well as to new
//! ones; disabling a proxy closes its connections and refuses new ones.

use serde_json::{Value, json};

use crate::emulator_var;

/// The direction a toxic acts on: `Upstream` is client → server (the request),
/// `Downstream` server → client (the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Client → server.
    Upstream,
    /// Server → client.
    Downstream,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic, with its attributes (Toxiproxy's names and units).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Toxic {
    /// Delays every chunk by `latency_ms` (± `jitter_ms`).
    Latency {
        /// Added delay.
        latency_ms: u64,
        /// Random variation of the delay.
        jitter_ms: u64,
    },
    /// Resets the connection (RST, unsent data dropped) `timeout_ms` after data arrives
    /// (0: at once).
    ResetPeer {
        /// Delay before the reset.
        timeout_ms: u64,
    },
    /// A black hole: drops all data; closes the connection after `timeout_ms`, or never
    /// when 0.
    Timeout {
        /// When to close (0: never).
        timeout_ms: u64,
    },
    /// Cuts data into chunks of about `average_size` bytes (± `size_variation`), `delay_us`
    /// apart.
    Slicer {
        /// Mean chunk size in bytes.
        average_size: u64,
        /// Variation of the chunk size in bytes.
        size_variation: u64,
        /// Delay between chunks in microseconds.
        delay_us: u64,
    },
    /// Limits the rate to `rate_kb` KB/s.
    Bandwidth {
        /// Rate in KB per second.
        rate_kb: u64,
    },
    /// Closes the connection once `bytes` have passed.
    LimitData {
        /// Bytes let through.
        bytes: u64,
    },
}

impl Toxic {
    /// Toxiproxy's type name and attributes.
    fn wire(self) -> (&'static str, Value) {
        match self {
            Toxic::Latency { latency_ms, jitter_ms } => {
                ("latency", json!({ "latency": latency_ms, "jitter": jitter_ms }))
            }
            Toxic::ResetPeer { timeout_ms } => ("reset_peer", json!({ "timeout": timeout_ms })),
            Toxic::Timeout { timeout_ms } => ("timeout", json!({ "timeout": timeout_ms })),
            Toxic::Slicer {
                average_size,
                size_variation,
                delay_us,
            } => (
                "slicer",
                json!({ "average_size": average_size, "size_variation": size_variation, "delay": delay_us }),
            ),
            Toxic::Bandwidth { rate_kb } => ("bandwidth", json!({ "rate": rate_kb })),
            Toxic::LimitData { bytes } => ("limit_data", json!({ "bytes": bytes })),
        }
    }
}

/// Toxiproxy's API (`NEBULA_TEST_TOXIPROXY_URL`, set by `cargo xtask` for the `toxiproxy` emulator).
#[derive(Debug, Clone)]
pub struct Toxiproxy {
    base: String,
    http: reqwest::Client,
}

impl Toxiproxy {
    /// The API at `NEBULA_TEST_TOXIPROXY_URL`; panics with what to run when it is unset.
    pub fn from_env() -> Self {
        Self::new(emulator_var("NEBULA_TEST_TOXIPROXY_URL", "toxiproxy"))
    }

    /// The API at `base` (e.g. `http://127.0.0.1:8474`).
    pub fn new(base: impl Into<String>) -> Self {
        Toxiproxy {
            base: base.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends `method path` with an optional JSON body; panics unless the status is 2xx.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap_or_else(|e| {
            panic!("Toxiproxy {method} {path}: {e} (is `cargo xtask emulators up toxiproxy` running?)")
        });
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "Toxiproxy {method} {path}: {status}: {text}");
        if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("Toxiproxy {method} {path}: {e}: {text}"))
        }
    }

    /// Creates proxy `name` on a free loopback port in front of `upstream` (`host:port`).
    pub async fn create(&self, name: &str, upstream: &str) -> Proxy {
        let created = self
            .call(
                reqwest::Method::POST,
                "/proxies",
                Some(json!({ "name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": true })),
            )
            .await;
        let listen = created["listen"]
            .as_str()
            .unwrap_or_else(|| panic!("Toxiproxy answered a proxy without `listen`: {created}"))
            .to_string();
        Proxy {
            api: self.clone(),
            name: name.to_string(),
            listen,
            toxics: 0,
        }
    }
}

/// One proxy: its listen address, and its toxics.
#[derive(Debug)]
pub struct Proxy {
    api: Toxiproxy,
    name: String,
    listen: String,
    toxics: u64,
}

/// A toxic added to a proxy, removed with [`Proxy::remove`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToxicName(String);

impl Proxy {
    /// Where clients connect: `127.0.0.1:PORT`.
    pub fn listen(&self) -> &str {
        &self.listen
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.listen
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("Toxiproxy listen address without a port: {}", self.listen))
    }

    /// Adds `toxic` on `stream` for every connection (toxicity 1).
    pub async fn add(&mut self, stream: Stream, toxic: Toxic) -> ToxicName {
        self.toxics += 1;
        let (kind, attributes) = toxic.wire();
        let name = format!("{kind}_{}_{}", stream.as_str(), self.toxics);
        self.api
            .call(
                reqwest::Method::POST,
                &format!("/proxies/{}/toxics", self.name),
                Some(json!({
                    "name": name, "type": kind, "stream": stream.as_str(),
                    "toxicity": 1.0, "attributes": attributes,
                })),
            )
            .await;
        ToxicName(name)
    }

    /// Removes a toxic [`add`](Self::add) returned.
    pub async fn remove(&self, toxic: &ToxicName) {
        self.api
            .call(
                reqwest::Method::DELETE,
                &format!("/proxies/{}/toxics/{}", self.name, toxic.0),
                None,
            )
            .await;
    }

    /// Enables (accepting connections) or disables (closing them all, refusing new ones).
    pub async fn set_enabled(&self, enabled: bool) {
        self.api
            .call(
                reqwest::Method::POST,
                &format!("/proxies/{}", self.name),
                Some(json!({ "enabled": enabled })),
            )
            .await;
    }

    /// The names of its toxics, as Toxiproxy lists them.
    pub async fn toxics(&self) -> Vec<String> {
        let listed = self
            .api
            .call(reqwest::Method::GET, &format!("/proxies/{}/toxics", self.name), None)
            .await;
        listed
            .as_array()
            .map(|a| a.iter().filter_map(|t| t["name"].as_str().map(String::from)).collect())
            .unwrap_or_default()
    }

    /// Deletes the proxy (closing its connections).
    pub async fn delete(self) {
        self.api
            .call(reqwest::Method::DELETE, &format!("/proxies/{}", self.name), None)
            .await;
    }
}
