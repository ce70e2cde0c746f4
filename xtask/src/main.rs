//! Project automation: `cargo xtask help`.
//!
//! Layout, bottom up: `paths`, `prereq`, `process`, `http`, `runtime`; `shutdown` and `run`
//! (programs run to completion, stopped on a signal); `python`, `compose`, `state`,
//! `launch`; `emulators/` (one file per emulator: its table row, native start and docker
//! environment); `harness` (emulators up and down for a run); `metadata` and `tidy`;
//! `commands/` (one file per command, none importing another); `cli` (clap).

mod cli;
mod commands;
mod compose;
mod emulators;
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

fn run(cli: cli::Cli) -> Result<()> {
    let Some(command) = cli.command else {
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
    match command {
        Command::Ci(b) => commands::ci::run(&b.named(), b.runtime.get()),
        Command::Emulators(EmulatorsCommand::Up { names, runtime }) => commands::emulators::up(&names, runtime.get()),
        Command::Emulators(EmulatorsCommand::Down { names }) => commands::emulators::down(&names),
        Command::Emulators(EmulatorsCommand::Status { names }) => commands::emulators::status(&names),
        Command::Emulators(EmulatorsCommand::Env) => commands::emulators::env(),
        Command::TestIntegration { backends, cargo_args } => {
            commands::test_integration::run(&backends.named(), backends.runtime.get(), &cargo_args)
        }
        Command::Bench {
            backend,
            runtime,
            cargo_args,
        } => commands::bench::run(&backend, || runtime.get(), &cargo_args),
    }
}
