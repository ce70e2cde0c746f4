//! A crafted API server on loopback http for the crate's tests: it answers each request
//! with what a handler says and records the request lines it got.

// Each test file uses part of this module.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The token of the kubeconfigs written here; tests assert it is never printed.
pub(crate) const TOKEN: &str = "t0ken-never-printed-81c2";

/// Request lines (`GET /api/v1/… HTTP/1.1`) in the order they came.
pub(crate) type Requests = Arc<Mutex<Vec<String>>>;

/// A handler: the request line and how many requests came before it → status and JSON body.
pub(crate) type Handler = Arc<dyn Fn(&str, usize) -> (u16, String) + Send + Sync>;

/// A Kubernetes `Status` body of a failure.
pub(crate) fn status_body(code: u16, reason: &str) -> String {
    format!(
        r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","code":{code},"reason":"{reason}","message":"crafted","details":{{"retryAfterSeconds":1}}}}"#
    )
}

/// Serves `handler` on a free loopback port; returns its `http://` URL and the requests log.
pub(crate) async fn serve(handler: Handler) -> (String, Requests) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests: Requests = Arc::default();
    let log = requests.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let (log, handler) = (log.clone(), handler.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let line = String::from_utf8_lossy(&head)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(line.clone());
                    log.len() - 1
                };
                let (status, body) = handler(&line, n);
                let response = format!(
                    "HTTP/1.1 {status} Crafted\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, requests)
}

/// A kubeconfig at `dir/kubeconfig` for `server`, with [`TOKEN`] and the namespace `payments`.
pub(crate) fn kubeconfig(dir: &tempfile::TempDir, server: &str) -> std::path::PathBuf {
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n\
             users:\n- name: u\n  user:\n    token: {TOKEN}\n\
             contexts:\n- name: x\n  context: {{cluster: c, user: u, namespace: payments}}\ncurrent-context: x\n"
        ),
    )
    .unwrap();
    path
}
