//! Rules every remote backend shares, written once.
//!
//! A remote backend (AWS, Azure, Vault, Kubernetes) keeps each credential as one object
//! in a store other tools share. A [`TagScheme`], parameterised with the backend's own
//! limits, decides once for all of them:
//! - which tags an object of ours carries: the managed-by marker, the creation time,
//!   the credential's tags (values the backend cannot hold become a digest that still
//!   filters exactly) and the configured default tags;
//! - whether an object is ours ([`TagScheme::ensure_ours`]): one without the marker is
//!   never read as ours, overwritten or deleted; and whether it holds the credential it is
//!   read as ([`TagScheme::ensure_holds`]);
//! - which tags an overwrite sets and removes ([`TagScheme::update`]): only keys this
//!   library wrote, so tags other tools added survive;
//! - whether a listed object passes a [`CredentialFilter`](crate::CredentialFilter)
//!   ([`TagScheme::matches`]).
//!
//! Beside it, one module per concern every remote backend needs:
//! - [`url`]: [`check_service_url`] for the endpoint of its configuration;
//! - [`tls`]: [`is_tls_failure`] and [`load_ca_cert`] for a private CA (`ca_cert`);
//! - [`errors`]: [`source_chain`] to classify an SDK error by what it wraps, and
//!   [`Verdict`], the tail of every backend's error table;
//! - [`poll`]: [`back_off`] after a lost write race, [`Polling`] for asynchronous
//!   service operations within the operation's deadline;
//! - [`env`](mod@env): the variables of `from_env`;
//! - [`config_keys`]: deprecated configuration keys, accepted for one release.

pub mod config_keys;
pub mod env;
pub mod errors;
pub mod poll;
pub mod tags;
pub mod tls;
pub mod url;

pub use errors::{Failure, Verdict, source_chain};
pub use poll::{Polling, back_off, ends_before_deadline};
pub use tags::{DIGEST_PREFIX, MANAGED_VALUE, TagScheme, TagUpdate};
pub use tls::{describe_ca_cert, is_inline_pem, is_rustls_failure, is_tls_failure, load_ca_cert};
pub use url::{check_service_url, redacted_url};
