//! Project automation: `cargo xtask help`.
//!
//! Layout, bottom up: `paths`, `prereq`, `process`, `http`, `runtime`; `shutdown` and `run`
//! (programs run to completion, stopped on a signal); `python`, `compose`, `state`,
//! `launch`; `generated` (property tests and fuzzing); `emulators/` (one file per
//! emulator: its table row, native start and docker environment); `harness` (emulators up and down for a run); `metadata` and `tidy`;
//! `commands/` (one file per command, none importing another); `cli` (clap).

mod cli;
mod commands;
mod compose;
mod emulators;
mod generated;
mod harness;
mod http;
mod launch;
mod metadata;
mod paths;
mod prereq;
mod process;
mod python;
mod run;
mod runtime;
mod shutdown;
mod state;
mod tidy;

use anyhow::Result;

use cli::{Command, EmulatorsCommand};

fn main() -> Result<()> {
    let result = run(cli::parse());
    // After a signal the handler stops what runs and exits; errors meanwhile are noise.
    shutdown::halt_if_interrupted();
    result
}

fn run(mut cli: cli::Cli) -> Result<()> {
    let Some(command) = cli.command.take() else {
        print!("{}", cli::help());
        return Ok(());
    };
    let starts_emulators = matches!(
        command,
        Command::Ci(_)
            | Command::Emulators(EmulatorsCommand::Up { .. })
            | Command::TestIntegration { .. }
            | Command::Bench { .. }
    );
    if starts_emulators {
        shutdown::install(harness::stop_owned)?;
    }
    let runtime = || cli.runtime();
    match &command {
        Command::Ci(b) => commands::ci::run(&cli.named(&b.names), runtime()),
        Command::Emulators(EmulatorsCommand::Up { names }) => commands::emulators::up(&cli.named(names), runtime()),
        Command::Emulators(EmulatorsCommand::Down { names }) => commands::emulators::down(&cli.named(names)),
        Command::Emulators(EmulatorsCommand::Status { names }) => commands::emulators::status(&cli.named(names)),
        Command::Emulators(EmulatorsCommand::Env) => commands::emulators::env(),
        Command::TestIntegration { backends, cargo_args } => {
            commands::test_integration::run(&cli.named(&backends.names), runtime(), cargo_args)
        }
        Command::Bench { backend, cargo_args } => commands::bench::run(backend, runtime, cargo_args),
        Command::Fuzz { secs, targets } => commands::fuzz::run(targets, *secs),
        Command::Props => commands::fuzz::props(),
    }
}
