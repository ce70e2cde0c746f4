//! Kubernetes Secrets backend for nebula-credential.
//!
//! Each credential is one Secret of type `nebula-credential/v1` in one namespace. Its
//! data key `record` holds the versioned JSON record (`{format_version, id,
//! encrypted_data, metadata}`); annotations hold the original id
//! (`nebula-credential.io/id`), the metadata as JSON (`nebula-credential.io/metadata`)
//! and the tag keys this library wrote (`nebula-credential.io/tag-keys`).
//!
//! **Names.** Secret names are lowercase DNS-1123 subdomains; ids are case-sensitive. An
//! id that is already lowercase without `_` keeps its spelling (`nebula-cred-api-key`);
//! any other is folded to lowercase with `_` as `-` and followed by `.` and a short
//! base32 mask of what was folded (`Api_Key` → `nebula-cred-api-key.jq`). The mapping is
//! lossless and injective: `Key`, `key` and `KEY` are three Secrets, every 128-character
//! id fits, and `list` returns the original ids.
//!
//! **Labels.** `app.kubernetes.io/managed-by=nebula-credential` marks our Secrets, beside
//! the configured default labels (`app.kubernetes.io/name=nebula-credential`,
//! `app.kubernetes.io/component=credential`) and `nebula-credential.io/prefix`. Each
//! credential tag `k=v` is the label `tag.nebula-credential.io/k` (values a label cannot
//! hold become `sha256-<hex>`, which still matches exactly), and
//! `nebula-credential.io/created-at` holds the creation time, so `list` filters with a
//! label selector on the server and re-checks exactly on the client. An overwrite removes
//! only labels this library wrote; labels and annotations other tools added stay.
//!
//! **Writes.** `store` creates the Secret, or replaces it with the `resourceVersion` just
//! read (a lost race is retried, at most 64 rounds). A conditional store uses the
//! `resourceVersion` as the revision (`Precondition::Revision`) and a create for
//! `Precondition::Absent`. A Secret under our name without the managed-by label, or with it
//! but of another `type`, is never listed, read, overwritten or deleted: every operation
//! reports `Conflict` naming it (`exists`, reading metadata only, checks the label alone). The whole
//! object (name, type, labels, annotations, data) is checked against 1 MiB before any
//! request, and `TooLarge` reports that object's size. A store over a Secret marked
//! `immutable: true` fails naming immutability (delete, then store again).
//!
//! **Secrets being deleted.** A Secret with a `deletionTimestamp` (the finalizer of another
//! tool holds it) is going: `retrieve`, `exists` and `list` treat it as absent, `delete`
//! returns `Ok` without a request, a conditional store on its revision is a `Conflict`, and
//! any other store waits for it to go (polling its metadata, within the operation's deadline
//! and at most 10 s), then creates the Secret anew — or fails with a retryable `Unavailable`
//! naming the finalizers. A write is never acknowledged into an object that will vanish.
//!
//! **Connection.** The configuration comes from `kubeconfig_path`, else `KUBECONFIG` or
//! `~/.kube/config`, else the pod's in-cluster settings (kube's order). It is refused with a
//! `Config` error naming the kubeconfig and context when it sets `insecure-skip-tls-verify:
//! true`, uses plain `http://` to a host that is not loopback (the bearer token would travel
//! in clear; `http://127.0.0.1` for `kubectl proxy` is fine), or names a malformed server
//! (no host, a port outside 1..=65535, user info), or sends a plain-`http://` server's
//! traffic through a proxy. kube's debug variables (`KUBE_RS_DEBUG_OVERRIDE_URL`,
//! `KUBE_RS_DEBUG_IMPERSONATE_*`) are ignored. Proxies work as with kubectl: the cluster's
//! `proxy-url`, else `HTTPS_PROXY`, which is skipped for loopback servers and servers
//! `NO_PROXY` names; no message shows a proxy's user info, nor an exec plugin's output.
//!
//! | operation | requests | RBAC verbs on `secrets` |
//! |---|---|---|
//! | `store` | `get`, then `create` or `update` (`PUT` with `resourceVersion`) | `get`, `create`, `update` |
//! | `retrieve` | `get` | `get` |
//! | `exists` | `get` of the metadata only (no data transferred) | `get` |
//! | `delete` | `get` (to check the type), `delete` with a `uid` precondition | `get`, `delete` |
//! | `list` | `list` of metadata with a label selector and `type` field selector, `limit` / `continue` pages; when nothing at all is listed, once per provider a dry-run `create` to tell a missing namespace | `list` (`create` for the namespace probe, optional) |
//! | `check` | a server-side dry-run `create` (writes nothing; proves the namespace exists), then a `list` of at most one item | `list` (`create` to prove the namespace; without it, the probe is skipped) |
//!
//! Errors map by HTTP status and `Status.reason` in one table (`errors.rs`), never by
//! message text. kube's own retries are turned off; the `Retry` layer is the only one.
//! An expired `continue` token (410) makes `list` start again from the first page, once;
//! a second expiry is a retryable `Unavailable`.

mod config;
mod errors;
mod kubeconfig;
mod labels;
mod naming;
mod provider;

pub use config::{KubernetesSecretsConfig, MAX_NAMESPACE_LEN};
pub use labels::{ID_ANNOTATION, MANAGED_BY, MANAGED_BY_LABEL, METADATA_ANNOTATION, PREFIX_LABEL, TAG_LABEL_PREFIX};
pub use naming::{MAX_NAME_LEN, MAX_PREFIX_LEN, secret_name};
pub use provider::{KubernetesSecretsProvider, MAX_OBJECT_BYTES, RECORD_KEY, SECRET_TYPE, object_size};

/// The provider name in errors, logs and metrics.
const PROVIDER: &str = "kubernetes";
