//! `keyvault-emulator`: runs the Key Vault secrets emulator until SIGINT/SIGTERM.
//!
//! ```text
//! keyvault-emulator --state-dir DIR [--listen 127.0.0.1:0] [--vault NAME]... [--tenant T]
//!     [--token-file FILE] [--delete-delay-ms N] [--recover-delay-ms N] [--recoverable-days N]
//! ```
//! Writes `DIR/ca.pem`, `DIR/tokens.json` (mode 0600) and, once serving, `DIR/ready.json`.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use keyvault_emulator::{Config, Emulator, Tokens};
use serde_json::json;

const USAGE: &str = "usage: keyvault-emulator --state-dir DIR [--listen 127.0.0.1:0] [--vault NAME]... \
[--tenant TENANT] [--token-file FILE] [--delete-delay-ms N] [--recover-delay-ms N] [--recoverable-days N]

Tokens come from --token-file (JSON {\"full\",\"read_only\",\"rejected\",\"metadata_reader\",\"no_purge\"};
missing roles are generated), else from KEYVAULT_EMULATOR_TOKEN / KEYVAULT_EMULATOR_READONLY_TOKEN /
KEYVAULT_EMULATOR_REJECTED_TOKEN / KEYVAULT_EMULATOR_METADATA_TOKEN / KEYVAULT_EMULATOR_NOPURGE_TOKEN,
else they are generated. They are written to DIR/tokens.json (0600), never printed.";

struct Args {
    state_dir: PathBuf,
    config: Config,
}

fn parse_args() -> Result<Args> {
    let mut config = Config::for_tests(Duration::from_millis(500), Duration::from_millis(500));
    config.vaults.clear();
    let mut state_dir = None;
    let mut token_file = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let mut value = || args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
            "--listen" => config.listen = value()?.parse().context("--listen takes HOST:PORT")?,
            "--vault" => config.vaults.push(value()?),
            "--tenant" => config.tenant = value()?,
            "--token-file" => token_file = Some(PathBuf::from(value()?)),
            "--delete-delay-ms" => config.soft_delete.delete_delay = millis(&value()?)?,
            "--recover-delay-ms" => config.soft_delete.recover_delay = millis(&value()?)?,
            "--recoverable-days" => {
                config.soft_delete.recoverable_days = value()?.parse().context("--recoverable-days")?
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if config.vaults.is_empty() {
        config.vaults.push("nebula".into());
    }
    config.tokens = tokens(token_file.as_deref())?;
    let state_dir = state_dir.with_context(|| format!("--state-dir is required\n{USAGE}"))?;
    Ok(Args { state_dir, config })
}

fn millis(raw: &str) -> Result<Duration> {
    Ok(Duration::from_millis(
        raw.parse().with_context(|| format!("{raw:?} is not milliseconds"))?,
    ))
}

fn tokens(file: Option<&Path>) -> Result<Tokens> {
    if let Some(file) = file {
        let text = fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()));
    }
    let mut tokens = Tokens::random();
    for (var, slot) in [
        ("KEYVAULT_EMULATOR_TOKEN", &mut tokens.full),
        ("KEYVAULT_EMULATOR_READONLY_TOKEN", &mut tokens.read_only),
        ("KEYVAULT_EMULATOR_REJECTED_TOKEN", &mut tokens.rejected),
        ("KEYVAULT_EMULATOR_METADATA_TOKEN", &mut tokens.metadata_reader),
        ("KEYVAULT_EMULATOR_NOPURGE_TOKEN", &mut tokens.no_purge),
    ] {
        if let Ok(value) = std::env::var(var) {
            *slot = value;
        }
    }
    Ok(tokens)
}

/// Writes a file atomically (stage, then rename), private to the owner.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    let stage = path.with_extension("tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&stage)
        .with_context(|| format!("writing {}", stage.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    fs::rename(&stage, path).with_context(|| format!("renaming to {}", path.display()))
}

async fn wait_for_signal() -> Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            result = tokio::signal::ctrl_c() => result?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}

fn main() -> ExitCode {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let result = runtime
        .context("starting the async runtime")
        .and_then(|runtime| runtime.block_on(run(started)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keyvault-emulator: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(started: Instant) -> Result<()> {
    let Args { state_dir, config } = parse_args()?;
    config.validate()?;
    fs::create_dir_all(&state_dir).with_context(|| format!("creating {}", state_dir.display()))?;
    let state_dir = state_dir.canonicalize()?;
    let ready = state_dir.join("ready.json");
    let _ = fs::remove_file(&ready);

    let tokens = config.tokens.clone();
    let tenant = config.tenant.clone();
    let vaults: Vec<String> = config.vaults.iter().map(|v| v.to_ascii_lowercase()).collect();
    let emulator = Emulator::start(config).await?;

    let ca_path = state_dir.join("ca.pem");
    fs::write(&ca_path, emulator.ca_pem()).with_context(|| format!("writing {}", ca_path.display()))?;
    let tokens_path = state_dir.join("tokens.json");
    write_private(&tokens_path, &serde_json::to_string_pretty(&tokens)?)?;
    let vault_url = emulator.vault_url(emulator.default_vault());
    let info = json!({
        "pid": std::process::id(),
        "port": emulator.addr().port(),
        "addr": emulator.addr().to_string(),
        "vault": emulator.default_vault(),
        "vault_url": vault_url,
        "vaults": vaults,
        "tenant": tenant,
        "ca_pem": ca_path,
        "tokens_file": tokens_path,
        "startup_ms": started.elapsed().as_millis(),
    });
    write_private(&ready, &serde_json::to_string_pretty(&info)?)?;
    println!(
        "keyvault-emulator ready: {vault_url} (listening on {}, CA {}, ready file {})",
        emulator.addr(),
        ca_path.display(),
        ready.display()
    );

    wait_for_signal().await?;
    let _ = fs::remove_file(&ready);
    emulator.shutdown().await;
    Ok(())
}
