//! `doctor`: validates a configuration, then proves connectivity, authentication and
//! permissions by storing, reading, listing and deleting a probe credential under the
//! reserved id [`PROBE_ID`], timing each step. [`diagnose`] is the engine; the CLI prints
//! its steps as they finish.
//!
//! ```
//! use nebula_cred::doctor::{StepOutcome, diagnose};
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let config: nebula_credential::StorageConfig = toml::from_str(r#"provider = "memory""#)?;
//! let report = diagnose(&config, |_| {}).await;
//! assert!(report.passed());
//! let names: Vec<&str> = report.steps.iter().map(|s| s.name).collect();
//! assert_eq!(names, ["config", "open", "check", "store", "read", "list", "delete"]);
//! assert!(matches!(report.steps[3].outcome, StepOutcome::Ok(_)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

use std::fmt;
use std::time::{Duration, Instant};

use nebula_credential::{
    CredentialFilter, CredentialId, CredentialMetadata, EncryptedData, EncryptionKey, ErrorKind, Precondition,
    StorageConfig, StorageError, StorageProvider, Tags,
};

/// The reserved id of the probe credential. A credential under it that doctor did not
/// write is never overwritten: the store step fails instead.
pub const PROBE_ID: &str = "_nebula_cred_doctor_probe";
/// The tag marking a probe written by doctor, so a stale one (from an interrupted run)
/// may be replaced.
pub const PROBE_TAG: (&str, &str) = ("nebula-cred", "doctor");

/// Why a step failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// The library refused or the backend failed; its message says what to grant or fix.
    Storage(StorageError),
    /// The backend answered, but not as the contract says (e.g. not verbatim).
    Misbehaving(String),
    /// The reserved probe id holds a credential doctor did not write.
    Reserved,
}

impl Problem {
    /// The error kind (`Corrupted` for a misbehaving backend, `Conflict` for a taken id).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Problem::Storage(e) => e.kind(),
            Problem::Misbehaving(_) => ErrorKind::Corrupted,
            Problem::Reserved => ErrorKind::Conflict,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Storage(e) => write!(f, "{e}"),
            Problem::Misbehaving(what) => f.write_str(what),
            Problem::Reserved => write!(
                f,
                "a credential '{PROBE_ID}' exists that doctor did not write; that id is reserved for \
                 doctor's probe: move it to another id"
            ),
        }
    }
}

impl std::error::Error for Problem {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Problem::Storage(e) => e.source(),
            _ => None,
        }
    }
}

impl From<StorageError> for Problem {
    fn from(e: StorageError) -> Self {
        Problem::Storage(e)
    }
}

/// How one step went.
#[derive(Debug)]
#[non_exhaustive]
pub enum StepOutcome {
    /// Passed, with what it showed.
    Ok(String),
    /// Failed.
    Failed(Problem),
    /// Not run, because an earlier step failed.
    Skipped(&'static str),
}

/// One step: `config`, `open`, `check`, `store`, `read`, `list` or `delete`.
#[derive(Debug)]
pub struct Step {
    /// The step's name.
    pub name: &'static str,
    /// How long it took (none for `config` and skipped steps).
    pub took: Option<Duration>,
    /// How it went.
    pub outcome: StepOutcome,
}

/// Every step run, in order.
#[derive(Debug, Default)]
pub struct DoctorReport {
    /// The steps.
    pub steps: Vec<Step>,
}

impl DoctorReport {
    /// `true` when every step passed.
    pub fn passed(&self) -> bool {
        self.steps.iter().all(|s| matches!(s.outcome, StepOutcome::Ok(_)))
    }

    /// The first failure, if any.
    pub fn first_problem(&self) -> Option<&Problem> {
        self.steps.iter().find_map(|s| match &s.outcome {
            StepOutcome::Failed(p) => Some(p),
            _ => None,
        })
    }
}

/// Collects steps and reports each as it finishes.
struct Recorder<F> {
    report: DoctorReport,
    on_step: F,
}

impl<F: FnMut(&Step)> Recorder<F> {
    /// Records a step; returns whether it passed.
    fn push(&mut self, name: &'static str, took: Option<Duration>, result: Result<String, Problem>) -> bool {
        let outcome = match result {
            Ok(detail) => StepOutcome::Ok(detail),
            Err(p) => StepOutcome::Failed(p),
        };
        let passed = matches!(outcome, StepOutcome::Ok(_));
        self.skip_or_push(Step { name, took, outcome });
        passed
    }

    fn skip(&mut self, names: &[&'static str], why: &'static str) {
        for name in names {
            self.skip_or_push(Step {
                name,
                took: None,
                outcome: StepOutcome::Skipped(why),
            });
        }
    }

    fn skip_or_push(&mut self, step: Step) {
        (self.on_step)(&step);
        self.report.steps.push(step);
    }
}

/// Times `f`.
async fn timed<T>(f: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let value = f.await;
    (value, start.elapsed())
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Validates `config`, opens it with the standard layers, then probes check, store,
/// read, list and delete, calling `on_step` as each finishes. Never fails: problems are
/// steps. The probe is deleted whenever it was stored, whatever failed after.
pub async fn diagnose(config: &StorageConfig, on_step: impl FnMut(&Step)) -> DoctorReport {
    let mut r = Recorder {
        report: DoctorReport::default(),
        on_step,
    };
    const AFTER_OPEN: [&str; 5] = ["check", "store", "read", "list", "delete"];
    let valid = config
        .validate()
        .map(|()| format!("provider {}, valid", config.provider_name()))
        .map_err(|e| Problem::Storage(e.into()));
    if !r.push("config", None, valid) {
        r.skip(&["open"], "the configuration is invalid");
        r.skip(&AFTER_OPEN, "the configuration is invalid");
        return r.report;
    }
    let (opened, took) = timed(nebula_credential::open(config)).await;
    let provider = match opened {
        Ok(p) => {
            let caps = p.capabilities();
            r.push(
                "open",
                Some(took),
                Ok(format!(
                    "max record {} B, conditional store {}, soft delete {}, server-side tag filter {}",
                    caps.max_payload_bytes,
                    yes(caps.conditional_store),
                    yes(caps.soft_delete),
                    yes(caps.server_side_tag_filter)
                )),
            );
            p
        }
        Err(e) => {
            r.push("open", Some(took), Err(e.into()));
            r.skip(&AFTER_OPEN, "the backend could not be opened");
            return r.report;
        }
    };
    probe(&mut r, provider.as_ref()).await;
    r.report
}

async fn probe<F: FnMut(&Step)>(r: &mut Recorder<F>, provider: &dyn StorageProvider) {
    let (checked, took) = timed(provider.check()).await;
    let unreachable = checked
        .as_ref()
        .err()
        .is_some_and(|e| e.kind().is_transient() || e.kind() == ErrorKind::AuthenticationFailed);
    r.push(
        "check",
        Some(took),
        checked
            .map(|()| "connected, authenticated, may read".into())
            .map_err(Problem::from),
    );
    if unreachable {
        // Every later step would fail the same way; a denied permission, though, says
        // nothing about the others, so the probe goes on after one.
        r.skip(
            &["store", "read", "list", "delete"],
            "the backend is unreachable or refused the identity",
        );
        return;
    }

    let id: CredentialId = PROBE_ID.parse().expect("the probe id is valid");
    let mut plain = [0u8; 32];
    rand::fill(&mut plain);
    let data = match EncryptionKey::generate().encrypt(&id, &plain) {
        Ok(data) => data,
        Err(e) => {
            r.push("store", None, Err(Problem::Storage(e.into())));
            r.skip(&["read", "list", "delete"], "nothing stored");
            return;
        }
    };
    let metadata =
        CredentialMetadata::new().with_tags(Tags::from([(PROBE_TAG.0.to_string(), PROBE_TAG.1.to_string())]));
    let (stored, took) = timed(store_probe(provider, &id, &data, &metadata)).await;
    if !r.push("store", Some(took), stored.map(|()| format!("probe '{id}'"))) {
        r.skip(&["read", "list", "delete"], "nothing stored");
        return;
    }

    let name = provider.provider_name();
    let (read, took) = timed(provider.retrieve(&id)).await;
    let read = match read {
        Ok(back) if back.data == data && back.metadata == metadata => Ok("read back byte-identical".into()),
        Ok(_) => Err(Problem::Misbehaving(format!(
            "{name} returned a different record than was stored; it does not keep records verbatim"
        ))),
        Err(e) => Err(e.into()),
    };
    r.push("read", Some(took), read);

    let (listed, took) = timed(provider.list(&CredentialFilter::new().id_prefix(PROBE_ID))).await;
    let listed = match listed {
        Ok(ids) if ids.contains(&id) => Ok("probe listed".into()),
        Ok(_) => Err(Problem::Misbehaving(format!(
            "the probe was stored but {name} does not list it; check the scope of the list permission"
        ))),
        Err(e) => Err(e.into()),
    };
    r.push("list", Some(took), listed);

    let (deleted, took) = timed(async {
        provider.delete(&id).await?;
        provider.exists(&id).await
    })
    .await;
    let deleted = match deleted {
        Ok(false) => Ok("probe gone".into()),
        Ok(true) => Err(Problem::Misbehaving(format!(
            "the probe still exists after delete on {name}"
        ))),
        Err(e) => Err(e.into()),
    };
    r.push("delete", Some(took), deleted);
}

/// Stores the probe where nothing is, or over a stale probe; never over anything else.
async fn store_probe(
    provider: &dyn StorageProvider,
    id: &CredentialId,
    data: &EncryptedData,
    metadata: &CredentialMetadata,
) -> Result<(), Problem> {
    let conditional = provider.capabilities().conditional_store;
    let precondition = match provider.retrieve(id).await {
        Ok(existing) if existing.metadata.tags.get(PROBE_TAG.0).map(String::as_str) == Some(PROBE_TAG.1) => {
            Precondition::Revision(existing.revision)
        }
        Ok(_) => return Err(Problem::Reserved),
        Err(e) if e.is_not_found() => Precondition::Absent,
        Err(e) => return Err(e.into()),
    };
    let precondition = if conditional {
        precondition
    } else {
        Precondition::Overwrite
    };
    provider.store_if(id, data, metadata, &precondition).await?;
    Ok(())
}
