//! Servers that keep state, run by the restart tests themselves so they can kill -9 them
//! and start them again on the same port and data: OpenBao on raft storage ([`Bao`],
//! feature `vault`) and kube-apiserver with etcd as two processes ([`Kube`], feature
//! `kubernetes`); and the workload they run meanwhile ([`Workload`]), which keeps a ledger
//! of acknowledged writes and classifies every failure.
//!
//! `cargo xtask` only says where the binaries are (`NEBULA_TEST_VAULT_SERVER_BIN`,
//! `NEBULA_TEST_KUBE_APISERVER_BIN`, native runtime); everything else (ports, data,
//! unseal key, root token, certificates) lives in the directory the test gives, which the
//! test owns: it is deleted when the test passes and kept, with the servers' logs, when
//! it fails. A server still running when its handle drops is killed.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nebula_credential::{CredentialId, EncryptedData, ErrorKind, Revision, StorageError, StorageProvider};
use nebula_credential_core::conformance::meta;

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Creates `dir` (and parents) with mode 0700.
fn private_dir(dir: &Path) {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
}

/// Writes `text` to `path`, readable by its owner only (0600).
#[cfg(feature = "vault")]
fn write_private(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    file.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// One server process this test started, from a fixed command line (so a restart is the
/// same server): killed with SIGKILL by [`kill`](Self::kill) and on drop.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Server {
    /// A server `name` running `program args`, logging (stdout and stderr, appended across
    /// restarts) to `log`; not started yet.
    pub fn new(name: &'static str, program: &Path, args: Vec<String>, log: PathBuf) -> Server {
        Server {
            name,
            program: program.to_path_buf(),
            args,
            log,
            child: None,
        }
    }

    /// Starts it (again); panics if it runs already.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} runs already", self.name);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.log.display()));
        let err = log.try_clone().expect("clone the log handle");
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({}): {e}", self.name, self.program.display()));
        self.child = Some(child);
    }

    /// kill -9, and reaps it. Nothing when it is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill is SIGKILL on Unix: no shutdown, no flush.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Waits until `ready` holds, polling every 100 ms; panics with its log when it exits
    /// or `timeout` passes first.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            if ready() {
                return;
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "{} exited ({status}) before {what}; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(30)
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} not {what} after {timeout:?}; last lines of {}:\n{}",
                    self.name,
                    self.log.display(),
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of one test's servers, under `root` (the test's `CARGO_TARGET_TMPDIR`):
/// created 0700, deleted on drop unless the thread panics (then kept for its logs).
#[derive(Debug)]
pub struct StateDir(PathBuf);

impl StateDir {
    /// A fresh directory `root/<unique tag>`.
    pub fn new(root: &str, tag: &str) -> StateDir {
        let dir = Path::new(root).join(crate::unique(tag));
        private_dir(&dir);
        StateDir(dir)
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "restart test failed: servers' data and logs kept in {}",
                self.0.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port` (no chunked answers, the server closes):
/// the status and the body parsed as JSON (`Null` when it is not JSON).
#[cfg(feature = "vault")]
fn http(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&serde_json::Value>,
) -> std::io::Result<(u16, serde_json::Value)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    if let Some(token) = token {
        request.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status line"))?;
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

/// OpenBao with raft storage (OpenBao 2 has no `file` backend) in a directory of the test:
/// initialised (one unseal key) on first start, unsealed on every start, a KV v2 mount at
/// `secret/`, AppRole at `approle/` and a policy `nebula` on `secret/*`. The unseal key and
/// root token are kept in `init.json` (0600) in that directory.
#[cfg(feature = "vault")]
#[derive(Debug)]
pub struct Bao {
    server: Server,
    port: u16,
    unseal_key: String,
    root_token: String,
}

#[cfg(feature = "vault")]
impl Bao {
    /// Starts, initialises, unseals and sets up a new server with data in `dir`.
    pub fn start(bin: &Path, dir: &Path) -> Bao {
        let (port, cluster_port) = (free_port(), free_port());
        let data = dir.join("raft");
        private_dir(&data);
        let config = dir.join("bao.hcl");
        write_private(
            &config,
            &format!(
                "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"nebula\"\n}}\n\
                 listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\
                 api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster_port}\"\n",
                data.display()
            ),
        );
        let mut server = Server::new(
            "OpenBao (raft)",
            bin,
            vec!["server".into(), format!("-config={}", config.display())],
            dir.join("bao.log"),
        );
        server.spawn();
        server.wait_for("listening", Duration::from_secs(60), || {
            http(port, "GET", "/v1/sys/health", None, None).is_ok()
        });
        let (status, init) = http(
            port,
            "PUT",
            "/v1/sys/init",
            None,
            Some(&serde_json::json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .expect("sys/init");
        assert_eq!(status, 200, "sys/init answered {status}");
        let unseal_key = init["keys_base64"][0].as_str().expect("an unseal key").to_string();
        let root_token = init["root_token"].as_str().expect("a root token").to_string();
        write_private(
            &dir.join("init.json"),
            &serde_json::json!({"unseal_key": unseal_key, "root_token": root_token}).to_string(),
        );
        let mut bao = Bao {
            server,
            port,
            unseal_key,
            root_token,
        };
        bao.unseal();
        bao.setup();
        bao
    }

    /// Its address (`http://127.0.0.1:<port>`), the same across restarts.
    pub fn addr(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The root token.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// A request with the root token that must answer 2xx; the JSON answer.
    fn root(&self, method: &str, path: &str, body: serde_json::Value) -> serde_json::Value {
        let body = (!body.is_null()).then_some(body);
        let (status, json) =
            http(self.port, method, path, Some(&self.root_token), body.as_ref()).expect("request to OpenBao");
        assert!((200..300).contains(&status), "{method} {path}: {status} {json}");
        json
    }

    fn setup(&self) {
        self.root(
            "POST",
            "/v1/sys/mounts/secret",
            serde_json::json!({"type": "kv", "options": {"version": "2"}}),
        );
        self.root("POST", "/v1/sys/auth/approle", serde_json::json!({"type": "approle"}));
        self.root(
            "PUT",
            "/v1/sys/policies/acl/nebula",
            serde_json::json!({"policy": "path \"secret/*\" { capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\", \"patch\"] }"}),
        );
    }

    /// An AppRole role `name` with policy `nebula` and tokens of `ttl` / `max_ttl` (e.g.
    /// "3s"): its role id and a secret id.
    pub fn approle(&self, name: &str, ttl: &str, max_ttl: &str) -> (String, String) {
        let role = format!("/v1/auth/approle/role/{name}");
        self.root(
            "POST",
            &role,
            serde_json::json!({"token_policies": "nebula", "token_ttl": ttl, "token_max_ttl": max_ttl}),
        );
        let role_id = self.root("GET", &format!("{role}/role-id"), serde_json::Value::Null)["data"]["role_id"]
            .as_str()
            .expect("role_id")
            .to_string();
        let secret_id = self.root("POST", &format!("{role}/secret-id"), serde_json::json!({}))["data"]["secret_id"]
            .as_str()
            .expect("secret_id")
            .to_string();
        (role_id, secret_id)
    }

    /// kill -9 of the server.
    pub fn kill(&mut self) {
        self.server.kill();
    }

    /// Starts the server again on the same port and data, and unseals it.
    pub fn restart(&mut self) {
        self.start_sealed();
        self.unseal();
    }

    /// Starts the server again on the same port and data, and waits until it answers
    /// (sealed: every request gets 503 until [`unseal`](Self::unseal)).
    pub fn start_sealed(&mut self) {
        self.server.spawn();
        let port = self.port;
        self.server.wait_for("listening again", Duration::from_secs(60), || {
            http(port, "GET", "/v1/sys/health", None, None).is_ok()
        });
    }

    /// The status of `/v1/sys/health`: 200 active, 429 standby, 503 sealed, 501 not
    /// initialised; `None` when nothing answers.
    pub fn health(&self) -> Option<u16> {
        http(self.port, "GET", "/v1/sys/health", None, None)
            .ok()
            .map(|(s, _)| s)
    }

    /// Unseals it with the key, and waits until it is the active node.
    pub fn unseal(&mut self) {
        let (status, json) = http(
            self.port,
            "PUT",
            "/v1/sys/unseal",
            None,
            Some(&serde_json::json!({"key": self.unseal_key})),
        )
        .expect("sys/unseal");
        assert_eq!(status, 200, "sys/unseal: {status} {json}");
        let port = self.port;
        self.server
            .wait_for("active after unseal", Duration::from_secs(60), || {
                http(port, "GET", "/v1/sys/health", None, None).is_ok_and(|(s, _)| s == 200)
            });
    }
}

/// kube-apiserver-dev (test-servers/kube-apiserver) as two processes on one directory of
/// the test: etcd (`--etcd-only`) and the apiserver (`--external-etcd`), each killed and
/// restarted on its own ports and data; the apiserver keeps its certificates and tokens,
/// so the kubeconfig it wrote stays valid.
#[cfg(feature = "kubernetes")]
#[derive(Debug)]
pub struct Kube {
    dir: PathBuf,
    etcd: Server,
    apiserver: Server,
}

#[cfg(feature = "kubernetes")]
impl Kube {
    /// Starts etcd, then the apiserver (bootstrapped: namespace, RBAC, kubeconfigs).
    pub fn start(bin: &Path, dir: &Path) -> Kube {
        let (port, etcd_port, peer_port) = (free_port(), free_port(), free_port());
        let common = vec![
            "--dir".to_string(),
            dir.display().to_string(),
            "--etcd-port".into(),
            etcd_port.to_string(),
            "--etcd-peer-port".into(),
            peer_port.to_string(),
        ];
        let mut etcd_args = common.clone();
        etcd_args.push("--etcd-only".into());
        let mut api_args = common;
        api_args.extend(["--external-etcd".into(), "--port".into(), port.to_string()]);
        let mut kube = Kube {
            dir: dir.to_path_buf(),
            etcd: Server::new("etcd", bin, etcd_args, dir.join("etcd.log")),
            apiserver: Server::new("kube-apiserver", bin, api_args, dir.join("apiserver.log")),
        };
        kube.restart_etcd();
        kube.restart_apiserver();
        kube
    }

    /// The admin kubeconfig the apiserver wrote (valid across restarts).
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("admin.kubeconfig")
    }

    /// kill -9 of the apiserver.
    pub fn kill_apiserver(&mut self) {
        self.apiserver.kill();
    }

    /// kill -9 of etcd.
    pub fn kill_etcd(&mut self) {
        self.etcd.kill();
    }

    /// Starts the apiserver (again) and waits until it answers /readyz (its `ready` marker).
    pub fn restart_apiserver(&mut self) {
        let ready = self.dir.join("ready");
        // The killed process left its marker: gone before the start, so only the new one counts.
        remove_marker(&ready);
        self.apiserver.spawn();
        self.apiserver
            .wait_for("ready", Duration::from_secs(240), || ready.exists());
    }

    /// Starts etcd (again) on its data and waits until it serves.
    pub fn restart_etcd(&mut self) {
        let ready = self.dir.join("etcd-ready");
        remove_marker(&ready);
        self.etcd.spawn();
        self.etcd.wait_for("ready", Duration::from_secs(60), || ready.exists());
    }
}

/// Removes the readiness marker `path` if it is there.
#[cfg(feature = "kubernetes")]
fn remove_marker(path: &Path) {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove {}: {e}", path.display()),
    }
}

/// What the workload saw for one id: the last acknowledged write and the writes whose
/// outcome is unknown since (they failed, so they may or may not have landed).
#[derive(Debug, Default, Clone)]
pub struct Entry {
    /// The last write that returned `Ok`: its value and the revision it returned.
    pub acked: Option<(EncryptedData, Revision)>,
    /// Writes after it that returned an error.
    pub unknown: Vec<EncryptedData>,
}

/// Counts of a workload run.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Failures of another kind than `Timeout`/`Unavailable`, as `operation: error`.
    pub misclassified: Vec<String>,
    /// Reads that returned a value the ledger cannot explain (neither the last
    /// acknowledged write nor a later one of unknown outcome).
    pub wrong_reads: Vec<String>,
    /// Failures by kind.
    pub kinds: BTreeMap<&'static str, u64>,
    /// Failures that report the Retry layer's attempts (`StorageError::retried`).
    pub retried: u64,
    /// The longest call.
    pub longest: Duration,
}

impl Tally {
    /// Panics unless the workload saw the outage and survived it: some calls failed, all
    /// `ids` hold acknowledged writes (`acknowledged` of them), none was `lost`, every read
    /// is explained by the ledger, every failure is classified and reports its retries.
    pub fn assert_survived<L: std::fmt::Debug>(&self, acknowledged: usize, ids: usize, lost: &[L]) {
        assert!(self.failed > 0, "the outage went unseen: {self:?}");
        assert_eq!(acknowledged, ids, "every id has acknowledged writes");
        assert!(lost.is_empty(), "acknowledged writes lost: {lost:#?}");
        assert!(
            self.wrong_reads.is_empty(),
            "reads the ledger cannot explain: {:#?}",
            self.wrong_reads
        );
        assert!(
            self.misclassified.is_empty(),
            "misclassified failures: {:#?}",
            self.misclassified
        );
        assert_eq!(
            self.retried, self.failed,
            "every failure reports the Retry layer's attempts"
        );
    }

    fn failure(&mut self, what: &str, e: &StorageError) {
        self.failed += 1;
        *self.kinds.entry(e.kind().as_str()).or_default() += 1;
        if e.retried().is_some() {
            self.retried += 1;
        }
        // The outage must look like an outage: retryable kinds only, retried by the
        // Retry layer (which reports its attempts).
        if !matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Unavailable) || !e.kind().is_transient() {
            self.misclassified.push(format!("{what}: {:?}: {e}", e.kind()));
        }
    }
}

/// The value of write `n` (distinct for every `n`).
pub fn value(n: u64) -> EncryptedData {
    EncryptedData {
        version: EncryptedData::CURRENT_VERSION,
        key_id: "restart-key".into(),
        nonce: [0; 12],
        ciphertext: n.to_be_bytes().repeat(4),
    }
}

/// Writes and reads over `ids` in a loop on a task of its own until stopped, keeping the
/// ledger of every id and the tally of every call.
#[derive(Debug)]
pub struct Workload {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(BTreeMap<CredentialId, Entry>, Tally)>,
}

impl Workload {
    /// Starts it on `provider`: each round stores a new value in every id (one after the
    /// other) then reads each back, checking the read against the ledger, then pauses
    /// `pause`.
    pub fn start(provider: Arc<dyn StorageProvider>, ids: Vec<CredentialId>, pause: Duration) -> Workload {
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut ledger: BTreeMap<CredentialId, Entry> = BTreeMap::new();
                let mut tally = Tally::default();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    for id in &ids {
                        n += 1;
                        let v = value(n);
                        let started = Instant::now();
                        let result = provider.store(id, &v, &meta()).await;
                        tally.longest = tally.longest.max(started.elapsed());
                        tally.calls += 1;
                        let entry = ledger.entry(id.clone()).or_default();
                        match result {
                            Ok(revision) => {
                                entry.acked = Some((v, revision));
                                entry.unknown.clear();
                            }
                            Err(e) => {
                                tally.failure(&format!("store {id}"), &e);
                                entry.unknown.push(v);
                            }
                        }
                    }
                    for id in &ids {
                        let started = Instant::now();
                        let result = provider.retrieve(id).await;
                        tally.longest = tally.longest.max(started.elapsed());
                        tally.calls += 1;
                        match result {
                            Ok(stored) => {
                                let entry = ledger.get(id).cloned().unwrap_or_default();
                                if let Some(problem) = explain(&entry, &stored.data, &stored.revision) {
                                    tally.wrong_reads.push(format!("{id}: {problem}"));
                                }
                            }
                            // Never acknowledged and no write of unknown outcome: absent is right.
                            Err(StorageError::NotFound { .. })
                                if ledger.get(id).is_none_or(|e| e.acked.is_none() && e.unknown.is_empty()) => {}
                            Err(e) => tally.failure(&format!("retrieve {id}"), &e),
                        }
                    }
                    tokio::time::sleep(pause).await;
                }
                (ledger, tally)
            }
        });
        Workload { stop, task }
    }

    /// Stops it after its current round; its ledger and tally.
    pub async fn stop(self) -> (BTreeMap<CredentialId, Entry>, Tally) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the workload task panicked")
    }
}

/// Why a read of `data` at `revision` contradicts `entry`, or `None` when it is the last
/// acknowledged write (same value, same revision) or a later write of unknown outcome.
pub fn explain(entry: &Entry, data: &EncryptedData, revision: &Revision) -> Option<String> {
    if let Some((acked, acked_revision)) = &entry.acked
        && acked == data
    {
        return (acked_revision != revision).then(|| {
            format!(
                "the last acknowledged value is back with revision {revision:?}, not the {acked_revision:?} its write \
                 returned"
            )
        });
    }
    if entry.unknown.contains(data) {
        return None;
    }
    Some(match &entry.acked {
        Some(_) => "a value that is neither the last acknowledged write nor a later unacknowledged one (a lost \
                    acknowledged write)"
            .to_string(),
        None => "a value never written".to_string(),
    })
}

/// Checks every id of `ledger` through `provider` (after the outage): the value is the
/// last acknowledged write with its exact revision, or a later write of unknown outcome.
/// The problems found (empty: nothing acknowledged was lost).
pub async fn lost_writes(provider: &dyn StorageProvider, ledger: &BTreeMap<CredentialId, Entry>) -> Vec<String> {
    let mut problems = Vec::new();
    for (id, entry) in ledger {
        match provider.retrieve(id).await {
            Ok(stored) => {
                if let Some(p) = explain(entry, &stored.data, &stored.revision) {
                    problems.push(format!("{id}: {p}"));
                }
            }
            Err(StorageError::NotFound { .. }) if entry.acked.is_none() => {}
            Err(e) => problems.push(format!("{id}: cannot read it back: {e}")),
        }
    }
    problems
}

/// The ids `prefix-0` … `prefix-<n-1>`.
pub fn ids(prefix: &str, n: usize) -> Vec<CredentialId> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").parse().expect("a valid id"))
        .collect()
}

/// Polls `provider` with `retrieve(id)` every 200 ms until it succeeds: how long that took
/// (panics after `limit`).
pub async fn recovered(provider: &dyn StorageProvider, id: &CredentialId, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match provider.retrieve(id).await {
            Ok(_) | Err(StorageError::NotFound { .. }) => return start.elapsed(),
            Err(e) if start.elapsed() > limit => {
                panic!("the provider did not recover within {limit:?} of the restart: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revision(s: &str) -> Revision {
        Revision::new(s)
    }

    #[test]
    fn the_ledger_accepts_the_last_acknowledged_write_or_a_later_unknown_one_only() {
        let entry = Entry {
            acked: Some((value(2), revision("2"))),
            unknown: vec![value(3)],
        };
        assert_eq!(explain(&entry, &value(2), &revision("2")), None);
        assert_eq!(
            explain(&entry, &value(3), &revision("3")),
            None,
            "a write of unknown outcome landed"
        );
        let lost = explain(&entry, &value(1), &revision("1")).expect("an older value is a lost write");
        assert!(lost.contains("lost acknowledged write"), "{lost}");
        let moved = explain(&entry, &value(2), &revision("5")).expect("the same value at another revision");
        assert!(moved.contains("not the"), "{moved}");
        assert!(explain(&Entry::default(), &value(1), &revision("1")).is_some());
    }

    #[test]
    fn values_differ_per_write() {
        assert_ne!(value(1), value(2));
        assert_eq!(value(7), value(7));
    }

    #[test]
    fn a_failed_test_keeps_its_state_dir_and_a_passed_one_removes_it() {
        let root = std::env::temp_dir().join(crate::unique("statedir"));
        let dir = StateDir::new(root.to_str().unwrap(), "t");
        let path = dir.path().to_path_buf();
        assert!(path.is_dir());
        drop(dir);
        assert!(!path.exists());
        let kept = std::thread::spawn({
            let root = root.clone();
            move || {
                let dir = StateDir::new(root.to_str().unwrap(), "t");
                let path = dir.path().to_path_buf();
                let _dir = dir;
                std::panic::panic_any(path)
            }
        })
        .join()
        .unwrap_err();
        let kept = kept.downcast::<PathBuf>().unwrap();
        assert!(kept.is_dir(), "kept for its logs");
        fs::remove_dir_all(root).unwrap();
    }
}
