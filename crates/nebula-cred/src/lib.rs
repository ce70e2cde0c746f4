#![doc = include_str!("../README.md")]

use std::process::ExitCode;

use clap::Parser;
use nebula_credential::{CredentialStore, Keyring};

mod cli;
mod commands;
mod completion;
mod config;
pub mod doctor;
pub mod exit;
mod key;
mod mask;
mod migrate_cmd;
mod prompt;
mod run;
mod transfer;

use cli::{Cli, Command};
use exit::CliError;

/// Parses the process's arguments, runs the command and returns its exit status
/// (see [`exit`]). Errors are printed to stderr; data goes to stdout.
pub fn run() -> ExitCode {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(exit::USAGE));
        }
    };
    // Errors are reported by the commands themselves; `-v` adds the library's view. Its log
    // carries ids, kinds and reasons, never values. Dependencies (SDK clients) stay quiet
    // below `-vv`: they log a routine 404 as an error.
    let (ours, theirs) = match cli.global.verbose {
        0 => (LevelFilter::OFF, LevelFilter::OFF),
        1 => (LevelFilter::WARN, LevelFilter::OFF),
        2 => (LevelFilter::INFO, LevelFilter::WARN),
        _ => (LevelFilter::DEBUG, LevelFilter::INFO),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(ours.max(theirs))
        .with_target(false)
        .finish()
        .with(Targets::new().with_target("nebula", ours).with_default(theirs))
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}", CliError::io("cannot start the async runtime", e).report());
            return ExitCode::from(exit::ERROR);
        }
    };
    let mut stdout = std::io::stdout().lock();
    match runtime.block_on(dispatch(&cli, &mut stdout)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(e, CliError::Quiet(_)) {
                eprintln!("{}", e.report());
            }
            e.into()
        }
    }
}

/// Whether `command` decrypts or encrypts, and so needs the key.
fn needs_key(command: &Command) -> bool {
    match command {
        Command::Put(_) | Command::RotateKey(_) | Command::Run(_) | Command::Export(_) | Command::Import(_) => true,
        Command::Get(args) => commands::get_needs_key(args),
        _ => false,
    }
}

async fn dispatch(cli: &Cli, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let global = &cli.global;
    let command = &cli.command;
    match command {
        Command::Keygen(args) => return commands::keygen(args, out),
        Command::Doctor => return commands::doctor(global.config.as_deref(), out).await,
        Command::Migrate(args) => return migrate_cmd::run(args, out).await,
        Command::Get(args) => commands::check_reveal(args)?,
        Command::Put(args) => commands::check_put(args)?,
        Command::Completion(args) => return completion::generate(args, out),
        Command::Run(args) => run::check(args)?,
        Command::Export(args) => transfer::check_export(args)?,
        _ => {}
    }
    let loaded = config::load(global.config.as_deref())?;
    let key = if needs_key(command) {
        Some(key::load(key::KeySources {
            key_file: global.key_file.as_deref(),
            passphrase_file: global.passphrase_file.as_deref(),
            salt: loaded.salt.as_deref(),
        })?)
    } else {
        None
    };
    let provider = nebula_credential::open(&loaded.storage).await?;
    if matches!(command, Command::Put(_) | Command::RotateKey(_) | Command::Import(_))
        && provider.provider_name() == "memory"
    {
        eprintln!(
            "note: the memory provider keeps nothing: what this command writes is lost when it exits \
             (set provider in --config or NEBULA_CREDENTIAL_PROVIDER to a persistent backend)"
        );
    }
    let store = |key: Option<nebula_credential::EncryptionKey>| {
        CredentialStore::new(
            provider.clone(),
            Keyring::new(key.expect("loaded for commands that need it")),
        )
    };
    // --quiet: writes print no summary (their errors and warnings still go to stderr).
    let mut sink = std::io::sink();
    let out: &mut dyn std::io::Write = if global.quiet
        && matches!(
            command,
            Command::Put(_) | Command::Delete { .. } | Command::RotateKey(_)
        ) {
        &mut sink
    } else {
        out
    };
    match command {
        Command::Put(args) => {
            let limit = provider.capabilities().max_payload_bytes;
            commands::put(&store(key), limit, args, out).await
        }
        Command::Get(args) if args.metadata => commands::get_metadata(provider.as_ref(), args, out).await,
        Command::Get(args) => commands::get_value(&store(key), args, out).await,
        Command::List(args) => commands::list(provider.as_ref(), args, out).await,
        Command::Exists { id } => commands::exists(provider.as_ref(), id, out).await,
        Command::Delete { id } => commands::delete(provider.as_ref(), id, out).await,
        Command::RotateKey(args) => {
            let key = key.expect("loaded for rotate-key");
            commands::rotate(provider.clone(), key, args, out).await
        }
        Command::Run(args) => run::run(&store(key), args).await,
        Command::Export(args) => transfer::export(&store(key), args, out, global.quiet).await,
        Command::Import(args) => {
            let key = key.expect("loaded for import");
            transfer::import(provider.clone(), key, args, out, global.quiet).await
        }
        Command::Keygen(_) | Command::Doctor | Command::Migrate(_) | Command::Completion(_) => {
            unreachable!("handled above")
        }
    }
}
