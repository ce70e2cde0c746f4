//! The command line, declared with clap: `cargo xtask help` lists it, and the emulator
//! names and descriptions come from the emulator table.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::emulators::Emulator;
use crate::runtime::Runtime;

/// Project automation: checks, emulators for integration tests, benches.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask")]
pub(crate) struct Cli {
    /// What to do; `help` when none.
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Every check CI runs: fmt, tidy, clippy -D warnings, tests, docs -D warnings, MSRV, the
    /// packaging check, then the integration tests of every backend the runtime can emulate.
    Ci(Backends),
    /// Start, stop and list emulators.
    #[command(subcommand)]
    Emulators(EmulatorsCommand),
    /// Start emulators, run the tests/ package against them, then the native emulators' own
    /// checks (azure: its Python parity suite), and stop them.
    TestIntegration {
        /// The backends and runtime.
        #[command(flatten)]
        backends: Backends,
        /// Passed on to `cargo test`.
        #[arg(last = true, value_name = "ARGS")]
        cargo_args: Vec<String>,
    },
    /// Start BACKEND's emulator (none for local and memory), run `cargo bench --bench BACKEND`,
    /// stop it.
    Bench {
        /// The bench (a backend's name).
        backend: String,
        /// How its emulator runs.
        #[command(flatten)]
        runtime: RuntimeArg,
        /// Passed on to `cargo bench`.
        #[arg(last = true, value_name = "ARGS")]
        cargo_args: Vec<String>,
    },
}

/// `emulators …`.
#[derive(Debug, Subcommand)]
pub(crate) enum EmulatorsCommand {
    /// Start emulators (default: all) and record them in target/emulators/.
    Up {
        /// The emulators (comma- or space-separated); all when none.
        #[arg(value_delimiter = ',', value_parser = emulator, value_name = "NAMES")]
        names: Vec<Emulator>,
        /// How they run.
        #[command(flatten)]
        runtime: RuntimeArg,
    },
    /// Stop what `up` started (only those pids / compose services).
    Down {
        /// The emulators (comma- or space-separated); all when none.
        #[arg(value_delimiter = ',', value_parser = emulator, value_name = "NAMES")]
        names: Vec<Emulator>,
    },
    /// What runs, its pids, variables and log (stale entries are removed).
    Status {
        /// The emulators (comma- or space-separated); all when none.
        #[arg(value_delimiter = ',', value_parser = emulator, value_name = "NAMES")]
        names: Vec<Emulator>,
    },
    /// Print `export NEBULA_TEST_…=…` lines for running emulators.
    Env,
}

/// `--backend` and `--runtime`.
#[derive(Debug, Args)]
pub(crate) struct Backends {
    /// Backends to test (comma-separated or repeated; default: every backend the runtime
    /// can run here).
    #[arg(long, value_delimiter = ',', value_parser = emulator, value_name = "NAMES")]
    backend: Vec<Emulator>,
    /// The same as `--backend`, as words.
    #[arg(value_delimiter = ',', value_parser = emulator, value_name = "NAMES")]
    names: Vec<Emulator>,
    /// How emulators run.
    #[command(flatten)]
    pub(crate) runtime: RuntimeArg,
}

impl Backends {
    /// The backends named by `--backend` or as words; empty when none.
    pub(crate) fn named(&self) -> Vec<Emulator> {
        self.backend.iter().chain(&self.names).copied().collect()
    }
}

/// `--runtime`.
#[derive(Debug, Args)]
pub(crate) struct RuntimeArg {
    /// How emulators run (default: docker when a Docker daemon answers, native otherwise).
    #[arg(long)]
    runtime: Option<Runtime>,
}

impl RuntimeArg {
    /// The runtime asked for, else the one this machine offers.
    pub(crate) fn get(&self) -> Runtime {
        self.runtime.unwrap_or_else(Runtime::detect)
    }
}

/// An emulator's name or alias, for clap.
fn emulator(name: &str) -> Result<Emulator, String> {
    name.trim().parse().map_err(|e: anyhow::Error| e.to_string())
}

/// The emulators' table, after the options in `help`.
fn emulators_help() -> String {
    let mut text = format!(
        "Emulator names: {}\n\nEmulators (native runtime):\n",
        Emulator::names(", ")
    );
    for e in Emulator::all() {
        let s = e.spec();
        let aliases = match s.aliases {
            [] => String::new(),
            list => format!(" (also {})", list.join(", ")),
        };
        text += &format!("  {:<12}{}{aliases}\n", s.name, s.native);
        if let Some(why) = s.ci_native_skip {
            text += &format!("  {:<12}not run by `ci` natively: {why}\n", "");
        }
    }
    text
}

/// The clap command, with the emulator table in its help.
fn command() -> clap::Command {
    Cli::command().after_help(emulators_help())
}

/// Parses `args` (the program name first).
pub(crate) fn try_parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let matches = command().try_get_matches_from(args)?;
    Cli::from_arg_matches(&matches)
}

/// Parses the process's arguments; exits with clap's message on an error or for `help`.
pub(crate) fn parse() -> Cli {
    try_parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// The help text (`cargo xtask` with no command).
pub(crate) fn help() -> String {
    command().render_help().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Cli {
        try_parse_from(std::iter::once("cargo-xtask").chain(line.split_whitespace())).unwrap()
    }

    fn names(list: &[Emulator]) -> Vec<&'static str> {
        Emulator::these_or_all(list).iter().map(|e| e.name()).collect()
    }

    #[test]
    fn command_lines() {
        let Some(Command::TestIntegration { backends, cargo_args }) =
            parse("test-integration --backend aws,vault --runtime native -- --nocapture").command
        else {
            panic!("test-integration")
        };
        assert_eq!(names(&backends.named()), ["aws", "vault"]);
        assert_eq!(backends.runtime.get(), Runtime::Native);
        assert_eq!(cargo_args, ["--nocapture"]);
        let Some(Command::Emulators(EmulatorsCommand::Up { names: up, runtime })) =
            parse("emulators up kubernetes --runtime=docker").command
        else {
            panic!("emulators up")
        };
        assert_eq!(names(&up), ["kubernetes"]);
        assert_eq!(runtime.get(), Runtime::Docker);
        let Some(Command::Emulators(EmulatorsCommand::Up { names: up, .. })) =
            parse("emulators up vault aws,k8s").command
        else {
            panic!("emulators up")
        };
        assert_eq!(names(&up), ["aws", "vault", "kubernetes"]);
        let Some(Command::Emulators(EmulatorsCommand::Status { names: all })) = parse("emulators status").command
        else {
            panic!("emulators status")
        };
        assert_eq!(names(&all), Emulator::names(",").split(',').collect::<Vec<_>>());
        let Some(Command::Ci(ci)) = parse("ci --backend azure").command else {
            panic!("ci")
        };
        assert_eq!(names(&ci.named()), ["azure"]);
        let Some(Command::TestIntegration { backends, cargo_args }) =
            parse("test-integration kubernetes --backend vault -- --exact x").command
        else {
            panic!("test-integration with words")
        };
        assert_eq!(names(&backends.named()), ["vault", "kubernetes"]);
        assert_eq!(cargo_args, ["--exact", "x"]);
        let Some(Command::Bench { backend, .. }) = parse("bench local").command else {
            panic!("bench")
        };
        assert_eq!(backend, "local");
        assert!(matches!(
            parse("emulators env").command,
            Some(Command::Emulators(EmulatorsCommand::Env))
        ));
        assert!(parse("").command.is_none(), "no command: help");
        for bad in [
            "--bogus",
            "ci --runtime podman",
            "emulators up gcp",
            "test-integration --backend",
        ] {
            let line = std::iter::once("cargo-xtask").chain(bad.split_whitespace());
            assert!(try_parse_from(line).is_err(), "{bad}");
        }
        let e = try_parse_from(["cargo-xtask", "emulators", "up", "gcp"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("choose from aws, vault, azure, kubernetes"), "{e}");
    }

    #[test]
    fn help_lists_every_command_and_emulator_from_the_table() {
        let text = help();
        for command in ["ci", "emulators", "test-integration", "bench", "help"] {
            assert!(text.contains(&format!("  {command} ")), "{command}: {text}");
        }
        assert!(text.contains("Emulator names: aws, vault, azure, kubernetes"), "{text}");
        for e in Emulator::all() {
            assert!(text.contains(e.spec().native), "{e}");
        }
        assert!(text.contains("(also k8s)"));
        let up = command()
            .find_subcommand_mut("emulators")
            .and_then(|c| c.find_subcommand_mut("up"))
            .map(|c| c.render_help().to_string())
            .unwrap();
        assert!(
            up.contains("--runtime <RUNTIME>") && up.contains("native") && up.contains("docker"),
            "{up}"
        );
    }
}
