//! `migrate`: opens both configurations, runs [`nebula_credential::migrate::migrate`] with a progress
//! line on a terminal, and prints the summary.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use nebula_credential::migrate::{MigrateOptions, MigrationOutcome, MigrationReport, Progress, migrate};

use crate::cli::{Global, MigrateArgs};
use crate::commands::{emit, migrate_filter};
use crate::exit::CliError;
use crate::summary::Summary;
use crate::{config, context};

/// A one-line progress bar on stderr, drawn only when stderr is a terminal.
struct Bar {
    enabled: bool,
    drawn: Option<Instant>,
    counts: [usize; 3],
}

impl Bar {
    fn new() -> Self {
        Bar {
            enabled: std::io::stderr().is_terminal(),
            drawn: None,
            counts: [0; 3],
        }
    }

    fn update(&mut self, p: &Progress<'_>) {
        let slot = match p.outcome {
            MigrationOutcome::Copied | MigrationOutcome::Overwritten => 0,
            MigrationOutcome::Failed(_) => 2,
            _ => 1,
        };
        self.counts[slot] += 1;
        let due = self.drawn.is_none_or(|t| t.elapsed() >= Duration::from_millis(100));
        if !self.enabled || !(due || p.done == p.total) {
            return;
        }
        self.drawn = Some(Instant::now());
        const WIDTH: usize = 30;
        let filled = (p.done * WIDTH).checked_div(p.total).unwrap_or(WIDTH);
        let [written, skipped, failed] = self.counts;
        eprint!(
            "\r\x1b[2K[{}{}] {}/{}  written {written}, skipped {skipped}, failed {failed}",
            "#".repeat(filled),
            " ".repeat(WIDTH - filled),
            p.done,
            p.total
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&self) {
        if self.enabled && self.drawn.is_some() {
            eprint!("\r\x1b[2K");
        }
    }
}

/// Runs `migrate` and prints its summary; the exit status says whether it is complete.
/// The source is `--from`, else the global configuration (`--config`, `--profile`,
/// `NEBULA_CRED_CONFIG`, the default file); it is opened read-only.
pub(crate) async fn run(global: &Global, args: &MigrateArgs, out: &mut dyn Write) -> Result<(), CliError> {
    if let Some(flag) = [
        global.key_file.as_ref().map(|_| "--key-file"),
        global.passphrase_file.as_ref().map(|_| "--passphrase-file"),
    ]
    .into_iter()
    .flatten()
    .next()
    {
        return Err(CliError::Usage(format!(
            "migrate copies records encrypted and unchanged and needs no key: drop {flag}"
        )));
    }
    let (from, from_name) = match &args.from {
        Some(path) if global.config.is_some() || global.profile.is_some() => {
            return Err(CliError::Usage(format!(
                "give the source once: --from {} or the global --config/--profile, not both",
                path.display()
            )));
        }
        Some(path) => (config::load_file(path)?, format!("--from {}", path.display())),
        None => {
            let context = context::resolve(global)?;
            if context.implicit() {
                return Err(CliError::Usage(
                    "migrate needs a source: --from CFG, or the global --config FILE / --profile NAME \
                     (or NEBULA_CRED_CONFIG)"
                        .into(),
                ));
            }
            let name = context.source_text();
            (context.loaded, name)
        }
    };
    let to = config::load_file(&args.to)?;
    if from.storage == to.storage {
        return Err(CliError::Usage(format!(
            "the source ({from_name}) and --to {} configure the same storage; point --to at the target backend",
            args.to.display()
        )));
    }
    let source = context::open_read_only(&from.storage).await?;
    let target = nebula_credential::open(&to.storage).await?;
    let options = MigrateOptions::new(migrate_filter(&args.tags, args.prefix.as_deref()))
        .overwrite(args.overwrite)
        .dry_run(args.dry_run)
        .verify(args.verify)
        .jobs(args.jobs);
    let mut bar = Bar::new();
    let report = migrate(source.as_ref(), target.as_ref(), &options, |p| bar.update(&p)).await;
    bar.finish();
    let report = report?;
    emit(out, summary(&report, source.provider_name(), target.provider_name()))?;
    if !report.failed.is_empty() {
        Err(CliError::Incomplete(format!(
            "{} credential(s) were not migrated; fix what the reasons above say and run the same command \
             again (what is already on the target is not written twice)",
            report.failed.len()
        )))
    } else if !report.not_overwritten.is_empty() {
        Err(CliError::Conflict(format!(
            "{} credential(s) exist on the target with different content and were left alone; \
             compare them, then run again with --overwrite to replace them",
            report.not_overwritten.len()
        )))
    } else {
        Ok(())
    }
}

/// The summary: counts, then the credentials that need attention, with reasons.
fn summary(r: &MigrationReport, from: &str, to: &str) -> String {
    let mut s = Summary::new(
        r.dry_run,
        format_args!("migrate {from} -> {to}: {} credential(s) selected", r.selected),
    );
    s.row("copied", r.copied.len(), "");
    s.row("overwritten", r.overwritten.len(), "");
    s.row(
        "already present",
        r.already_present.len(),
        "  (identical on the target; not written again)",
    );
    s.row(
        "not overwritten",
        r.not_overwritten.len(),
        "  (different on the target; --overwrite replaces them)",
    );
    s.row(
        "deleted meanwhile",
        r.vanished.len(),
        "  (gone from the source after listing)",
    );
    s.row("failed", r.failed.len(), "");
    if !r.dry_run {
        s.row("verified", r.verified, "  (read back byte-identical)");
    }
    s.ids("not overwritten", &r.not_overwritten);
    s.failures(
        r.failed
            .iter()
            .map(|(id, why)| (id.to_string(), why.to_string(), why.kind().to_string())),
    );
    if r.unconditional {
        s.unconditional(to);
    }
    s.finish()
}
