//! `doctor`: validates the configuration, then proves connectivity, authentication and
//! permissions by storing, reading, listing and deleting a probe credential.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptionKey, Precondition, StorageError, StorageProvider,
    Tags,
};

use crate::commands::emit;
use crate::config;
use crate::exit::CliError;

/// The reserved id of the probe credential.
pub(crate) const PROBE_ID: &str = "_nebula_cred_doctor_probe";
/// The tag marking a probe written by doctor (so a stale one may be replaced).
const PROBE_TAG: (&str, &str) = ("nebula-cred", "doctor");

/// Prints one step; returns its error, if any.
struct Steps<'a> {
    out: &'a mut dyn Write,
    first_failure: Option<CliError>,
}

impl Steps<'_> {
    fn line(
        &mut self,
        step: &str,
        took: Option<Duration>,
        outcome: Result<String, CliError>,
    ) -> Result<bool, CliError> {
        let took = took.map_or_else(String::new, |d| format!("{:.1} ms", d.as_secs_f64() * 1000.0));
        match outcome {
            Ok(detail) => {
                emit(self.out, format!("ok    {step:<9} {took:>10}  {detail}\n"))?;
                Ok(true)
            }
            Err(e) => {
                let mut text = format!(
                    "FAIL  {step:<9} {took:>10}  {}\n",
                    e.report().trim_start_matches("error: ")
                );
                if let CliError::Storage(s) = &e {
                    text.push_str(&format!("{:>28}kind: {}\n", "", s.kind()));
                }
                emit(self.out, text)?;
                self.first_failure.get_or_insert(e);
                Ok(false)
            }
        }
    }

    fn skip(&mut self, step: &str, why: &str) -> Result<(), CliError> {
        emit(self.out, format!("skip  {step:<9} {:>10}  {why}\n", ""))
    }
}

/// Times `f`.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let value = f.await;
    (value, start.elapsed())
}

/// Runs every step, printing each with its latency; fails with the first failure.
pub(crate) async fn doctor(config_path: Option<&Path>, out: &mut dyn Write) -> Result<(), CliError> {
    let mut steps = Steps {
        out,
        first_failure: None,
    };
    let loaded = match config::load(config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            steps.line("config", None, Err(e))?;
            return Err(steps.first_failure.expect("recorded"));
        }
    };
    let valid = loaded
        .storage
        .validate()
        .map_err(StorageError::from)
        .map_err(CliError::from);
    let detail = format!("provider {} from {}", loaded.storage.provider_name(), loaded.origin);
    if !steps.line("config", None, valid.map(|()| detail))? {
        return Err(steps.first_failure.expect("recorded"));
    }
    let (opened, took) = timed(nebula_credential::open(&loaded.storage)).await;
    let provider = match opened {
        Ok(p) => {
            let caps = p.capabilities();
            let detail = format!(
                "max record {} B, conditional store {}, soft delete {}, server-side tag filter {}",
                caps.max_payload_bytes,
                yes(caps.conditional_store),
                yes(caps.soft_delete),
                yes(caps.server_side_tag_filter)
            );
            steps.line("open", Some(took), Ok(detail))?;
            p
        }
        Err(e) => {
            steps.line("open", Some(took), Err(e.into()))?;
            return Err(steps.first_failure.expect("recorded"));
        }
    };
    probe(&mut steps, provider.as_ref()).await?;
    match steps.first_failure {
        None => emit(steps.out, "all checks passed\n"),
        Some(e) => Err(e),
    }
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// check, store, read, list, delete: each timed; the probe is deleted whatever failed after it was stored.
async fn probe(steps: &mut Steps<'_>, provider: &dyn StorageProvider) -> Result<(), CliError> {
    let (checked, took) = timed(provider.check()).await;
    steps.line(
        "check",
        Some(took),
        checked
            .map(|()| "connected, authenticated, may read".into())
            .map_err(Into::into),
    )?;

    let id: CredentialId = PROBE_ID.parse().expect("a valid id");
    let mut plain = [0u8; 32];
    rand::fill(&mut plain);
    let data = EncryptionKey::generate()
        .encrypt(&id, &plain)
        .map_err(StorageError::from)?;
    let metadata =
        CredentialMetadata::new().with_tags(Tags::from([(PROBE_TAG.0.to_string(), PROBE_TAG.1.to_string())]));
    let (stored, took) = timed(store_probe(provider, &id, &data, &metadata)).await;
    if !steps.line("store", Some(took), stored.map(|()| format!("probe '{id}'")))? {
        for step in ["read", "list", "delete"] {
            steps.skip(step, "nothing stored")?;
        }
        return Ok(());
    }

    let (read, took) = timed(provider.retrieve(&id)).await;
    let read = match read {
        Ok(back) if back.data == data && back.metadata == metadata => Ok("read back byte-identical".to_string()),
        Ok(_) => Err(CliError::Incomplete(format!(
            "{} returned a different record than was stored; the backend does not keep records verbatim",
            provider.provider_name()
        ))),
        Err(e) => Err(e.into()),
    };
    steps.line("read", Some(took), read)?;

    let filter = CredentialFilter::new().id_prefix(PROBE_ID);
    let (listed, took) = timed(provider.list(&filter)).await;
    let listed = match listed {
        Ok(ids) if ids.contains(&id) => Ok("probe listed".to_string()),
        Ok(_) => Err(CliError::Incomplete(format!(
            "the probe was stored but {} does not list it; check the list permission's scope",
            provider.provider_name()
        ))),
        Err(e) => Err(e.into()),
    };
    steps.line("list", Some(took), listed)?;

    let (deleted, took) = timed(async {
        provider.delete(&id).await?;
        provider.exists(&id).await
    })
    .await;
    let deleted = match deleted {
        Ok(false) => Ok("probe gone".to_string()),
        Ok(true) => Err(CliError::Incomplete(format!(
            "the probe still exists after delete on {}",
            provider.provider_name()
        ))),
        Err(e) => Err(e.into()),
    };
    steps.line("delete", Some(took), deleted)?;
    Ok(())
}

/// Stores the probe where nothing is, or over a stale probe; never over anything else.
async fn store_probe(
    provider: &dyn StorageProvider,
    id: &CredentialId,
    data: &nebula_credential::EncryptedData,
    metadata: &CredentialMetadata,
) -> Result<(), CliError> {
    match provider.store_if(id, data, metadata, &Precondition::Absent).await {
        Ok(_) => return Ok(()),
        Err(e) if e.is_conflict() || e.kind() == nebula_credential::ErrorKind::Unsupported => {}
        Err(e) => return Err(e.into()),
    }
    let precondition = match provider.retrieve(id).await {
        Ok(existing) if existing.metadata.tags.get(PROBE_TAG.0).map(String::as_str) == Some(PROBE_TAG.1) => {
            Precondition::Revision(existing.revision)
        }
        Ok(_) => {
            return Err(CliError::Conflict(format!(
                "a credential '{id}' exists that doctor did not write; that id is reserved for doctor's probe: \
                 move it to another id"
            )));
        }
        Err(e) if e.is_not_found() => Precondition::Absent,
        Err(e) => return Err(e.into()),
    };
    let precondition = if provider.capabilities().conditional_store {
        precondition
    } else {
        Precondition::None
    };
    provider.store_if(id, data, metadata, &precondition).await?;
    Ok(())
}
