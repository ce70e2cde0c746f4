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
    /// `--backend` and `--runtime`, accepted before or after any command as the hand parser
    /// of earlier releases did.
    #[command(flatten)]
    pub(crate) options: Options,
}

impl Cli {
    /// The emulators named by `--backend` and by `words`; empty when none.
    pub(crate) fn named(&self, words: &[Emulator]) -> Vec<Emulator> {
        self.options.backends.iter().chain(words).copied().collect()
    }

    /// The runtime asked for, else the one this machine offers.
    pub(crate) fn runtime(&self) -> Runtime {
        self.options.runtime.unwrap_or_else(Runtime::detect)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Every check CI runs: fmt, tidy, clippy -D warnings, tests, docs -D warnings, the
    /// property tests, the fuzz targets (25 s each), MSRV, the packaging check, then the
    /// integration tests of every backend the runtime can emulate.
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
        /// Passed on to `cargo bench`.
        #[arg(last = true, value_name = "ARGS")]
        cargo_args: Vec<String>,
    },
    /// Run each fuzz target (default: all) under libFuzzer for a bounded time and print
    /// `fuzz executions TARGET: N`; a crash input is kept under fuzz/regressions/TARGET/.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = crate::generated::CI_FUZZ_SECS)]
        secs: u64,
        /// The targets (the directories of fuzz/seeds/).
        #[arg(value_name = "TARGETS")]
        targets: Vec<String>,
    },
    /// Run the property tests (every `props_…` test; PROPTEST_CASES cases per property,
    /// default 256) and print `property cases CODEC: N`.
    Props,
}

/// `emulators …`.
#[derive(Debug, Subcommand)]
pub(crate) enum EmulatorsCommand {
    /// Start emulators (default: all) and record them in target/emulators/.
    Up {
        /// The emulators (comma- or space-separated); all when none.
        #[arg(value_delimiter = ',', value_parser = emulator, value_name = "NAMES")]
        names: Vec<Emulator>,
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

/// The options every command accepts, before or after its name.
#[derive(Debug, Args)]
pub(crate) struct Options {
    /// Backends for ci, test-integration and emulators up/down/status (comma-separated or
    /// repeated; default: every backend the runtime can run here).
    #[arg(
        long = "backend",
        global = true,
        value_delimiter = ',',
        value_parser = emulator,
        value_name = "NAMES"
    )]
    backends: Vec<Emulator>,
    /// How emulators run (default: docker when a Docker daemon answers, native otherwise).
    #[arg(long, global = true)]
    runtime: Option<Runtime>,
}

/// Backends named as words (the same as `--backend`).
#[derive(Debug, Args)]
pub(crate) struct Backends {
    /// The same as `--backend`, as words.
    #[arg(value_delimiter = ',', value_parser = emulator, value_name = "NAMES")]
    pub(crate) names: Vec<Emulator>,
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
    let matches = command().try_get_matches_from(without_empty_names(args))?;
    Cli::from_arg_matches(&matches)
}

/// `args` with the empty pieces of comma lists left out (`aws,` → `aws`, a lone `,` dropped),
/// up to `--`: the hand parser of earlier releases skipped them, so `emulators up aws, vault`
/// and `--backend aws,` keep working.
fn without_empty_names<I, T>(args: I) -> Vec<std::ffi::OsString>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        let arg: std::ffi::OsString = arg.into();
        rest |= arg == "--";
        let Some(text) = arg.to_str().filter(|s| !rest && s.contains(',')) else {
            out.push(arg);
            continue;
        };
        let (option, list) = match text.split_once('=') {
            Some((option, list)) if option.starts_with("--") => (format!("{option}="), list),
            _ => (String::new(), text),
        };
        let list = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .collect::<Vec<_>>()
            .join(",");
        if !list.is_empty() || !option.is_empty() {
            out.push(format!("{option}{list}").into());
        }
    }
    out
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
        let cli = parse("test-integration --backend aws,vault --runtime native -- --nocapture");
        let Some(Command::TestIntegration { backends, cargo_args }) = &cli.command else {
            panic!("test-integration")
        };
        assert_eq!(names(&cli.named(&backends.names)), ["aws", "vault"]);
        assert_eq!(cli.runtime(), Runtime::Native);
        assert_eq!(cargo_args, &["--nocapture"]);
        let cli = parse("emulators up kubernetes --runtime=docker");
        let Some(Command::Emulators(EmulatorsCommand::Up { names: up })) = &cli.command else {
            panic!("emulators up")
        };
        assert_eq!(names(up), ["kubernetes"]);
        assert_eq!(cli.runtime(), Runtime::Docker);
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
        let cli = parse("ci --backend azure");
        let Some(Command::Ci(ci)) = &cli.command else {
            panic!("ci")
        };
        assert_eq!(names(&cli.named(&ci.names)), ["azure"]);
        let cli = parse("test-integration kubernetes --backend vault -- --exact x");
        let Some(Command::TestIntegration { backends, cargo_args }) = &cli.command else {
            panic!("test-integration with words")
        };
        assert_eq!(names(&cli.named(&backends.names)), ["vault", "kubernetes"]);
        assert_eq!(cargo_args, &["--exact", "x"]);
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

    /// Forms the hand parser of earlier releases accepted (`git show 35110c6:xtask/src/main.rs`):
    /// `--backend` and `--runtime` anywhere, before the command too, and `--backend` naming
    /// the emulators of `emulators up|down|status`.
    #[test]
    fn options_are_accepted_anywhere_as_before() {
        for (line, expected, runtime) in [
            (
                "--runtime native test-integration vault",
                vec!["vault"],
                Some(Runtime::Native),
            ),
            (
                "--backend vault --runtime=docker ci",
                vec!["vault"],
                Some(Runtime::Docker),
            ),
            ("emulators up --backend vault,aws", vec!["aws", "vault"], None),
            (
                "emulators down --backend vault --runtime native",
                vec!["vault"],
                Some(Runtime::Native),
            ),
            (
                "emulators status kubernetes --backend=azure",
                vec!["azure", "kubernetes"],
                None,
            ),
            (
                "--runtime native emulators up k8s",
                vec!["kubernetes"],
                Some(Runtime::Native),
            ),
        ] {
            let cli = parse(line);
            let words = match cli.command.as_ref().unwrap_or_else(|| panic!("{line}")) {
                Command::Ci(b) | Command::TestIntegration { backends: b, .. } => b.names.clone(),
                Command::Emulators(
                    EmulatorsCommand::Up { names }
                    | EmulatorsCommand::Down { names }
                    | EmulatorsCommand::Status { names },
                ) => names.clone(),
                other => panic!("{line}: {other:?}"),
            };
            assert_eq!(names(&cli.named(&words)), expected, "{line}");
            assert_eq!(cli.options.runtime, runtime, "{line}");
        }
        for line in [
            "emulators env --runtime native",
            "bench local --runtime native -- --quick",
        ] {
            parse(line);
        }
        for (line, expected) in [
            ("emulators up aws, vault", vec!["aws", "vault"]),
            ("emulators down --backend aws, ,vault,", vec!["aws", "vault"]),
            ("emulators status --backend=,kubernetes", vec!["kubernetes"]),
        ] {
            let cli = parse(line);
            let Some(Command::Emulators(
                EmulatorsCommand::Up { names: words }
                | EmulatorsCommand::Down { names: words }
                | EmulatorsCommand::Status { names: words },
            )) = &cli.command
            else {
                panic!("{line}")
            };
            assert_eq!(names(&cli.named(words)), expected, "{line}");
        }
        let Some(Command::TestIntegration { cargo_args, .. }) = parse("test-integration vault -- a,,b").command else {
            panic!("after --")
        };
        assert_eq!(cargo_args, ["a,,b"], "what follows -- is passed on as written");
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
        let mut command = command();
        command.build();
        let up = command
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
