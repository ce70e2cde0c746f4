#![doc = include_str!("../README.md")]

use std::process::ExitCode;

use clap::Parser;

mod cli;
mod commands;
mod completion;
mod config;
mod context;
pub mod doctor;
pub mod exit;
mod key;
mod mask;
mod migrate_cmd;
mod prompt;
mod run;
mod summary;
mod transfer;

use cli::{Cli, Command, ConfigAction, Global};
use context::Context;
use exit::CliError;
use nebula_credential::{CredentialStore, Keyring};

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

async fn dispatch(cli: &Cli, out: &mut dyn std::io::Write) -> Result<(), CliError> {
    let global = &cli.global;
    let command = &cli.command;
    match command {
        Command::Keygen(args) => return commands::keygen(args, out),
        Command::Doctor => return commands::doctor(context::resolve(global), out).await,
        Command::Migrate(args) => return migrate_cmd::run(global, args, out).await,
        Command::Get(args) => commands::check_reveal(args)?,
        Command::Completion(args) => return completion::generate(args, out),
        Command::Run(args) => run::check(args)?,
        Command::Export(args) => transfer::check_export(args)?,
        _ => {}
    }
    let (reparsed, merged);
    let (global, command) = match command {
        Command::Put(args) => match commands::check_put(args)? {
            Some((args, after)) => {
                reparsed = Command::Put(args);
                merged = global.with(after);
                (&merged, &reparsed)
            }
            None => (global, command),
        },
        _ => (global, command),
    };
    let context = context::resolve(global)?;
    if global.verbose > 0 {
        eprintln!("{}", context.describe());
    }
    let result = run_command(global, &context, command, out).await;
    if result.as_ref().is_err_and(|e| e.code() == exit::NOT_FOUND) {
        context.hint_where();
    }
    result
}

/// Runs a command that uses the resolved store: read-only commands open it read-only
/// (nothing created or probed); the key is loaded before any I/O.
async fn run_command(
    global: &Global,
    context: &Context,
    command: &Command,
    out: &mut dyn std::io::Write,
) -> Result<(), CliError> {
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
            let key = context.load_key(global, true)?;
            let provider = context.open_read_write().await?;
            note_memory(provider.as_ref());
            commands::put(provider, key, args, out).await
        }
        Command::Get(args) if args.metadata => {
            let provider = context.open_read_only().await?;
            commands::get_metadata(provider.as_ref(), args, out).await
        }
        Command::Get(args) => {
            let key = context.load_key(global, false)?;
            let provider = context.open_read_only().await?;
            let keyring = nebula_credential::Keyring::new(key);
            commands::get_value(provider.as_ref(), &keyring, args, out).await
        }
        Command::List(args) => {
            let provider = context.open_read_only().await?;
            commands::list(provider.as_ref(), context, args, out).await
        }
        Command::Exists { id } => {
            let provider = context.open_read_only().await?;
            commands::exists(provider.as_ref(), id, out).await
        }
        Command::Delete { id } => {
            // Nothing to delete: say so without creating the store.
            if !context.open_read_only().await?.exists(id).await? {
                return commands::emit(out, format!("'{id}' was not stored; nothing to delete\n"));
            }
            let provider = context.open_read_write().await?;
            commands::delete(provider.as_ref(), id, out).await
        }
        Command::RotateKey(args) if args.dry_run => {
            let provider = context.open_read_only().await?;
            commands::rotate_dry_run(provider.as_ref(), args, out).await
        }
        Command::RotateKey(args) => {
            let key = context.load_key(global, false)?;
            let provider = context.open_read_write().await?;
            note_memory(provider.as_ref());
            commands::rotate(provider, key, args, out).await
        }
        Command::Config {
            action: ConfigAction::Show,
        } => commands::emit(out, context::show(context)),
        Command::Run(args) => {
            let key = context.load_key(global, false)?;
            let provider = context.open_read_only().await?;
            run::run(&CredentialStore::new(provider, Keyring::new(key)), args).await
        }
        Command::Export(args) => {
            let key = context.load_key(global, false)?;
            let provider = context.open_read_only().await?;
            transfer::export(
                &CredentialStore::new(provider, Keyring::new(key)),
                args,
                out,
                global.quiet,
            )
            .await
        }
        Command::Import(args) => {
            let key = context.load_key(global, true)?;
            let provider = context.open_read_write().await?;
            note_memory(provider.as_ref());
            transfer::import(provider, key, args, out, global.quiet).await
        }
        Command::Keygen(_) | Command::Doctor | Command::Migrate(_) | Command::Completion(_) => {
            unreachable!("handled by dispatch")
        }
    }
}

/// Says that the memory provider keeps nothing, before a write to it.
fn note_memory(provider: &dyn nebula_credential::StorageProvider) {
    if provider.provider_name() == "memory" {
        eprintln!(
            "note: the memory provider keeps nothing: what this command writes is lost when it exits \
             (set provider in --config or NEBULA_CREDENTIAL_PROVIDER to a persistent backend)"
        );
    }
}
