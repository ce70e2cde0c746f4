//! Project automation: `cargo xtask help`.

mod docker;
mod emulator;
mod integration;
mod launch;
mod moto;
mod native;
mod prereq;
mod process;
mod shutdown;
mod state;

use std::time::Instant;

use anyhow::{Context, Result, bail};

use emulator::{Emulator, Runtime};

/// `cargo xtask help`; the emulator names and lists come from the table.
fn help() -> String {
    let names = Emulator::names(", ");
    let backend = format!("--backend {}", Emulator::names(","));
    let mut emulators = String::new();
    for e in Emulator::all() {
        let s = e.spec();
        let aliases = match s.aliases {
            [] => String::new(),
            list => format!(" (also {})", list.join(", ")),
        };
        emulators += &format!("  {:<12}{}{aliases}\n", s.name, s.native);
        if let Some(why) = s.ci_native_skip {
            emulators += &format!("  {:<12}not run by `ci` natively: {why}\n", "");
        }
    }
    format!(
        "\
usage: cargo xtask <command> [options]

commands:
  ci                          every check CI runs: fmt, clippy -D warnings, tests, docs -D warnings,
                              then the integration tests of every backend the runtime can emulate
  emulators up [NAMES]        start emulators (default: all) and record them in target/emulators/
  emulators down [NAMES]      stop what `up` started (only those pids / compose services)
  emulators status [NAMES]    what runs, its pids, variables and log (stale entries are removed)
  emulators env               print `export NEBULA_TEST_…=…` lines for running emulators
  test-integration            start emulators, run the tests/ package against them, then the
                              native emulators' own checks (azure: its Python parity suite), stop them
  bench BACKEND               start BACKEND's emulator, run `cargo bench --bench BACKEND`, stop it
  help                        this text

options:
  {backend:<38} backends for test-integration and ci (default: all)
  --runtime native|docker                how emulators run (default: docker when a Docker
                                         daemon answers, native otherwise)
  -- ARGS                                passed on to cargo test / cargo bench

NAMES: {names} (comma- or space-separated)

emulators (native runtime):
{emulators}"
    )
}

/// Parsed command line: positional words, options, and what follows `--`.
#[derive(Debug, Default)]
struct Args {
    words: Vec<String>,
    backend: Option<String>,
    runtime: Option<Runtime>,
    rest: Vec<String>,
}

impl Args {
    fn parse(raw: impl IntoIterator<Item = String>) -> Result<Args> {
        let mut args = Args::default();
        let mut it = raw.into_iter();
        while let Some(a) = it.next() {
            let mut value = |name: &str| -> Result<String> {
                match a.split_once('=') {
                    Some((_, v)) => Ok(v.to_string()),
                    None => it.next().with_context(|| format!("{name} needs a value")),
                }
            };
            match a.as_str() {
                "--" => {
                    args.rest = it.collect();
                    break;
                }
                s if s == "--backend" || s.starts_with("--backend=") => args.backend = Some(value("--backend")?),
                s if s == "--runtime" || s.starts_with("--runtime=") => {
                    args.runtime = Some(value("--runtime")?.parse()?)
                }
                s if s.starts_with('-') => bail!("unknown option `{s}`\n\n{}", help()),
                _ => args.words.push(a),
            }
        }
        Ok(args)
    }

    fn runtime(&self) -> Runtime {
        self.runtime.unwrap_or_else(Runtime::detect)
    }

    /// Emulators named by `--backend` or by the words from `skip` on; all when none.
    fn emulators(&self, skip: usize) -> Result<Vec<Emulator>> {
        let list = self.named(skip)?;
        Ok(if list.is_empty() {
            Emulator::all().collect()
        } else {
            list
        })
    }

    fn named(&self, skip: usize) -> Result<Vec<Emulator>> {
        let mut names = self.words.iter().skip(skip).cloned().collect::<Vec<_>>().join(",");
        if let Some(b) = &self.backend {
            names = format!("{names},{b}");
        }
        Emulator::parse_list(&names)
    }

    /// Backends to test: those named, else every backend the runtime can run here.
    fn backends(&self, skip: usize, runtime: Runtime) -> Result<Vec<Emulator>> {
        let named = self.named(skip)?;
        if !named.is_empty() {
            return Ok(named);
        }
        Ok(match runtime {
            Runtime::Docker => Emulator::all().collect(),
            Runtime::Native => Emulator::all().filter(|e| ci_runs_natively(*e)).collect(),
        })
    }
}

/// Whether `ci` and `test-integration` run `e` by default on the native runtime; says why
/// not when it does not.
fn ci_runs_natively(e: Emulator) -> bool {
    let Some(why) = e.spec().ci_native_skip else {
        return true;
    };
    eprintln!(
        "==> {e}: left out on the native runtime ({why}); `--backend {e}` asks for it anyway, \
         `--runtime docker` runs it where Docker is available"
    );
    false
}

fn main() -> Result<()> {
    let result = run(Args::parse(std::env::args().skip(1))?);
    // After a signal the handler stops what runs and exits; errors meanwhile are noise.
    shutdown::halt_if_interrupted();
    result
}

fn run(args: Args) -> Result<()> {
    let words: Vec<&str> = args.words.iter().map(String::as_str).collect();
    if matches!(
        words.as_slice(),
        ["ci", ..] | ["emulators", "up", ..] | ["test-integration", ..] | ["bench", ..]
    ) {
        shutdown::install()?;
    }
    match words.as_slice() {
        ["ci", ..] => ci(&args),
        ["emulators", "up", ..] => {
            integration::up(&args.emulators(2)?, args.runtime())?;
            eprintln!("==> running; `eval \"$(cargo xtask emulators env)\"` exports their variables");
            Ok(())
        }
        ["emulators", "down", ..] => integration::down(&args.emulators(2)?),
        ["emulators", "status", ..] => integration::status(&args.emulators(2)?),
        ["emulators", "env"] => integration::print_env(),
        ["test-integration", ..] => {
            let runtime = args.runtime();
            integration::test_integration(&args.backends(1, runtime)?, runtime, &args.rest)
        }
        ["bench", "local" | "memory"] => integration::bench(&words[1..], None, &args.rest),
        ["bench", backend] => integration::bench(&words[1..], Some((backend.parse()?, args.runtime())), &args.rest),
        ["help"] | [] => {
            print!("{}", help());
            Ok(())
        }
        _ => bail!("unknown command `{}`\n\n{}", args.words.join(" "), help()),
    }
}

/// One cargo step of CI.
struct Step {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
}

const CI_STEPS: &[Step] = &[
    Step {
        name: "format",
        args: &["fmt", "--all", "--check"],
        env: &[],
    },
    Step {
        name: "clippy",
        args: &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
        env: &[],
    },
    Step {
        name: "tests",
        args: &[
            "test",
            "--workspace",
            "--all-features",
            "--exclude",
            "nebula-credential-tests",
        ],
        env: &[],
    },
    Step {
        name: "docs",
        args: &["doc", "--workspace", "--no-deps", "--all-features"],
        env: &[("RUSTDOCFLAGS", "-D warnings")],
    },
];

fn ci(args: &Args) -> Result<()> {
    let started = Instant::now();
    for step in CI_STEPS {
        run_step(step)?;
    }
    msrv_check()?;
    let runtime = args.runtime();
    let backends = args.backends(1, runtime)?;
    match docker::check_compose_file() {
        Ok(true) => eprintln!("==> docker-compose.test.yml: valid (docker compose config)"),
        Ok(false) => {
            eprintln!("==> docker-compose.test.yml: not validated, the docker compose plugin is not installed")
        }
        Err(e) => return Err(e.context("docker-compose.test.yml is invalid")),
    }
    let step = Instant::now();
    integration::test_integration(&backends, runtime, &[])?;
    eprintln!("<== integration tests passed in {:.0?}", step.elapsed());
    eprintln!("xtask ci: all steps passed in {:.0?}", started.elapsed());
    Ok(())
}

/// Crates that declare the workspace's `rust-version` (the AWS crate declares its own,
/// higher one: the AWS SDK's).
const MSRV_PACKAGES: &[&str] = &[
    "nebula-credential-core",
    "nebula-credential-local",
    "nebula-credential",
    "nebula-credential-vault",
    "nebula-credential-kubernetes",
    "nebula-credential-azure",
];

/// Checks that the crates claiming the workspace's `rust-version` build with that
/// toolchain, installed through rustup into its usual place. Says so, and goes on, when
/// rustup cannot install it.
fn msrv_check() -> Result<()> {
    let manifest = std::fs::read_to_string(state::workspace_root().join("Cargo.toml"))?;
    let version = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("rust-version = "))
        .map(|v| v.trim_matches('"').to_string())
        .context("the workspace Cargo.toml declares no rust-version")?;
    eprintln!(
        "\n==> msrv: cargo check with Rust {version} of {}",
        MSRV_PACKAGES.join(", ")
    );
    let installed = std::process::Command::new("rustup")
        .args([
            "toolchain",
            "install",
            &version,
            "--profile",
            "minimal",
            "--no-self-update",
        ])
        .stdout(std::process::Stdio::null())
        .status();
    if !installed.is_ok_and(|s| s.success()) {
        eprintln!("<== msrv: NOT checked: rustup could not install Rust {version} here");
        return Ok(());
    }
    let started = Instant::now();
    let mut cmd = std::process::Command::new("rustup");
    cmd.args([
        "run",
        &version,
        "cargo",
        "check",
        "--no-default-features",
        "--features",
        "nebula-credential/storage-local",
    ])
    .args(MSRV_PACKAGES.iter().flat_map(|p| ["-p", p]))
    .env("CARGO_TARGET_DIR", state::workspace_root().join("target/msrv"))
    .env_remove("RUSTC")
    .env_remove("CARGO")
    .env_remove("RUSTUP_TOOLCHAIN");
    let status = cmd.status().context("cannot run rustup")?;
    if !status.success() {
        bail!("the crates that declare rust-version {version} do not build with it ({status})");
    }
    eprintln!("<== msrv passed in {:.1?}", started.elapsed());
    Ok(())
}

fn run_step(step: &Step) -> Result<()> {
    eprintln!("\n==> {}: cargo {}", step.name, step.args.join(" "));
    let started = Instant::now();
    let status = integration::cargo()
        .args(step.args)
        .envs(step.env.iter().copied())
        .status()
        .context("cannot run cargo; is Rust installed and on PATH?")?;
    if !status.success() {
        bail!(
            "step `{}` failed ({status}): run `cargo {}` to see why",
            step.name,
            step.args.join(" ")
        );
    }
    eprintln!("<== {} passed in {:.1?}", step.name, started.elapsed());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Args {
        Args::parse(s.split_whitespace().map(String::from)).unwrap()
    }

    #[test]
    fn command_lines() {
        let names = |list: Vec<Emulator>| list.iter().map(|e| e.spec().name).collect::<Vec<_>>();
        let a = parse("test-integration --backend aws,vault --runtime native -- --nocapture");
        assert_eq!(names(a.emulators(1).unwrap()), ["aws", "vault"]);
        assert_eq!(a.runtime, Some(Runtime::Native));
        assert_eq!(a.rest, ["--nocapture"]);
        let a = parse("emulators up kubernetes --runtime=docker");
        assert_eq!(names(a.emulators(2).unwrap()), ["kubernetes"]);
        assert_eq!(a.runtime, Some(Runtime::Docker));
        assert_eq!(
            names(parse("emulators status").emulators(2).unwrap()),
            Emulator::names(",").split(',').collect::<Vec<_>>()
        );
        assert_eq!(
            names(parse("ci").backends(1, Runtime::Native).unwrap()),
            ["aws", "vault", "azure", "kubernetes"]
        );
        assert_eq!(
            names(parse("ci --backend azure").backends(1, Runtime::Native).unwrap()),
            ["azure"]
        );
        assert!(Args::parse(["--bogus".to_string()]).is_err());
        assert!(Args::parse(["--runtime".to_string(), "podman".to_string()]).is_err());
    }

    #[test]
    fn help_lists_every_emulator_from_the_table() {
        let text = help();
        assert!(text.contains("--backend aws,vault,azure,kubernetes"), "{text}");
        assert!(text.contains("NAMES: aws, vault, azure, kubernetes"), "{text}");
        for e in Emulator::all() {
            assert!(text.contains(e.spec().native), "{e}");
        }
        assert!(text.contains("(also k8s)"));
    }
}
