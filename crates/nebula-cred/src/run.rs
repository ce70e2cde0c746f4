//! `run`: starts a command with selected credentials in its environment, forwards
//! signals to it, ends with its exit status, and masks the injected values in its output.
//!
//! Everything that can fail is checked before the command starts: the selection, the
//! variable names (valid, distinct, not one the system depends on) and every value (read
//! and decrypted). Values go to the child's environment only, never its arguments; the
//! key (`NEBULA_CREDENTIAL_KEY`) is removed from it.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::process::{ExitStatus, Stdio};

use clap::Args;
use nebula_credential::secrecy::ExposeSecret;
use nebula_credential::{CredentialFilter, CredentialId, CredentialStore, StorageProvider};
use zeroize::Zeroizing;

use crate::exit::{self, CliError};
use crate::mask::Masker;
use crate::transfer::parse_tag;

/// Exit status when the command cannot be found (as shells use it).
pub(crate) const COMMAND_NOT_FOUND: u8 = 127;
/// Exit status when the command was found but cannot be started (as shells use it).
pub(crate) const COMMAND_NOT_EXECUTABLE: u8 = 126;

/// `run`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  nebula-cred run --id github_token -- gh repo list\n  \
    nebula-cred run --id db_url=DATABASE_URL -- ./migrate.sh\n  \
    nebula-cred run --tag env=prod -- env\n\n\
    A --tag or --prefix selection puts each credential in a variable named after its id in\n\
    UPPER_SNAKE_CASE (db-url -> DB_URL). Two credentials for one name, an invalid name, or a\n\
    name the system depends on (PATH, HOME, LD_*, NEBULA_CREDENTIAL_*, ...) are refused before\n\
    the command starts. The exit status is the command's (128+N when signal N ended it; 127: not\n\
    found, 126: not executable).")]
pub(crate) struct RunArgs {
    /// A credential and its variable, ID=NAME; a bare ID uses ID in UPPER_SNAKE_CASE (repeatable).
    #[arg(long = "id", value_name = "ID[=NAME]", value_parser = parse_binding)]
    pub(crate) ids: Vec<(CredentialId, Option<String>)>,
    /// Every credential with this tag, KEY=VALUE (repeatable: all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub(crate) tags: Vec<(String, String)>,
    /// Every credential whose id starts with this.
    #[arg(long, value_name = "P")]
    pub(crate) prefix: Option<String>,
    /// Pass the command's stdout and stderr through untouched instead of masking the values.
    #[arg(long)]
    pub(crate) no_masking: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub(crate) command: Vec<OsString>,
}

/// `ID` or `ID=NAME`; the name is checked with the rest of the selection.
fn parse_binding(s: &str) -> Result<(CredentialId, Option<String>), String> {
    let (id, name) = match s.split_once('=') {
        Some((id, name)) => (id, Some(name.to_string())),
        None => (s, None),
    };
    let id = id.parse::<CredentialId>().map_err(|e| e.to_string())?;
    Ok((id, name))
}

/// One credential bound to one environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Binding {
    /// The credential.
    pub(crate) id: CredentialId,
    /// The variable.
    pub(crate) name: String,
}

/// The variable a selected credential goes to: its id in UPPER_SNAKE_CASE.
pub(crate) fn env_name(id: &CredentialId) -> String {
    id.as_str().to_ascii_uppercase().replace('-', "_")
}

/// Variables the system or this tool depends on: an injected value there would change
/// what runs (PATH, LD_PRELOAD, BASH_ENV), where files go, or how nebula-cred itself is
/// configured.
const PROTECTED: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "PWD", "OLDPWD", "IFS", "TERM", "TMPDIR", "LANG", "ENV", "BASH_ENV",
    "CDPATH", "PS4",
];
/// Prefixes of protected variables.
const PROTECTED_PREFIXES: &[&str] = &["LD_", "DYLD_", "LC_", "NEBULA_CREDENTIAL_", "NEBULA_CRED_"];

/// Why `name` cannot hold a value, if it cannot.
pub(crate) fn name_problem(name: &str) -> Option<&'static str> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Some("is not a valid variable name (a letter or _, then letters, digits or _)");
    }
    let upper = name.to_ascii_uppercase();
    if PROTECTED.contains(&upper.as_str()) || PROTECTED_PREFIXES.iter().any(|p| upper.starts_with(p)) {
        return Some("is a variable the system or nebula-cred depends on");
    }
    None
}

/// Checks `bindings` together: every name valid and not protected, no name given two
/// credentials. All problems are reported at once, naming ids and variables.
pub(crate) fn check_bindings(bindings: &[Binding], what: &str) -> Result<(), CliError> {
    let mut problems = Vec::new();
    let mut by_name: BTreeMap<&str, Vec<&CredentialId>> = BTreeMap::new();
    for b in bindings {
        if let Some(why) = name_problem(&b.name) {
            problems.push(format!(
                "'{}' -> {}: {why}; name it with --id {}=OTHER_NAME",
                b.id,
                shown(&b.name),
                b.id
            ));
        }
        let ids = by_name.entry(&b.name).or_default();
        if !ids.contains(&&b.id) {
            ids.push(&b.id);
        }
    }
    for (name, ids) in by_name {
        if ids.len() > 1 {
            let ids: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
            problems.push(format!(
                "{} would get {}; narrow the selection or name each with --id ID=NAME",
                shown(name),
                ids.join(" and ")
            ));
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(CliError::Usage(format!("{what}:\n  {}", problems.join("\n  "))))
}

/// A variable name as given, with control characters escaped (it may be anything typed).
fn shown(name: &str) -> String {
    format!("{name:?}").trim_matches('"').to_string()
}

/// The credentials selected by explicit `--id`s plus a `--tag`/`--prefix` selection, each
/// with its variable. An id selected both ways keeps only its explicit name(s).
pub(crate) async fn resolve(
    provider: &dyn StorageProvider,
    explicit: &[(CredentialId, Option<String>)],
    tags: &[(String, String)],
    prefix: Option<&str>,
) -> Result<Vec<Binding>, CliError> {
    let mut bindings: Vec<Binding> = explicit
        .iter()
        .map(|(id, name)| Binding {
            id: id.clone(),
            name: name.clone().unwrap_or_else(|| env_name(id)),
        })
        .collect();
    if !tags.is_empty() || prefix.is_some() {
        let mut filter = CredentialFilter::new();
        filter.tags = tags.iter().cloned().collect();
        filter.id_prefix = prefix.map(str::to_string);
        filter.validate().map_err(nebula_credential::StorageError::from)?;
        let listed = provider.list(&filter).await?;
        if listed.is_empty() {
            return Err(CliError::Failed {
                code: exit::NOT_FOUND,
                message: format!(
                    "no credential matches {}; see what is stored with `nebula-cred list`",
                    selection_text(tags, prefix)
                ),
            });
        }
        for id in listed {
            if !explicit.iter().any(|(e, _)| *e == id) {
                let name = env_name(&id);
                bindings.push(Binding { id, name });
            }
        }
    }
    Ok(bindings)
}

fn selection_text(tags: &[(String, String)], prefix: Option<&str>) -> String {
    let mut parts: Vec<String> = tags.iter().map(|(k, v)| format!("--tag {k}={v}")).collect();
    if let Some(p) = prefix {
        parts.push(format!("--prefix {p}"));
    }
    parts.join(" ")
}

/// Refuses a `run` without a selection, or whose `--id` names are wrong among themselves;
/// checked before any I/O (no key prompt, no backend call).
pub(crate) fn check(args: &RunArgs) -> Result<(), CliError> {
    if args.ids.is_empty() && args.tags.is_empty() && args.prefix.is_none() {
        return Err(CliError::Usage(
            "run needs credentials to inject: select them with --id ID[=NAME], --tag KEY=VALUE or --prefix P".into(),
        ));
    }
    let explicit: Vec<Binding> = args
        .ids
        .iter()
        .map(|(id, name)| Binding {
            id: id.clone(),
            name: name.clone().unwrap_or_else(|| env_name(id)),
        })
        .collect();
    let program = args.command[0].to_string_lossy();
    check_bindings(&explicit, &format!("not starting {program}"))
}

/// `run`: resolves and reads every value, then starts the command and waits for it.
/// Ends with `Err(CliError::Quiet(status))` when the command did not exit with 0.
pub(crate) async fn run(store: &CredentialStore, args: &RunArgs) -> Result<(), CliError> {
    let program = args.command[0].to_string_lossy().into_owned();
    let bindings = resolve(store.provider().as_ref(), &args.ids, &args.tags, args.prefix.as_deref()).await?;
    check_bindings(&bindings, &format!("not starting {program}"))?;
    let mut values: Vec<(String, Zeroizing<Vec<u8>>)> = Vec::with_capacity(bindings.len());
    for b in &bindings {
        let (secret, metadata) = store.get_with_metadata(&b.id).await?;
        let value = Zeroizing::new(secret.expose_secret().to_vec());
        if value.contains(&0) {
            return Err(CliError::Usage(format!(
                "not starting {program}: the value of '{}' holds a NUL byte, which no environment variable \
                 can carry; give it to the program as a file (`nebula-cred get {} > FILE`)",
                b.id, b.id
            )));
        }
        if metadata.is_expired_at(chrono::Utc::now()) {
            eprintln!(
                "warning: '{}' expired at {}; it is injected anyway: store a fresh value",
                b.id,
                metadata.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            );
        }
        values.push((b.name.clone(), value));
    }
    let masks: Vec<Zeroizing<Vec<u8>>> = values.iter().map(|(_, v)| v.clone()).collect();
    let status = spawn_and_wait(&args.command, &values, (!args.no_masking).then_some(masks)).await?;
    drop(values);
    match exit_code(status) {
        0 => Ok(()),
        code => Err(CliError::Quiet(code)),
    }
}

/// The value as an environment value.
#[cfg(unix)]
fn os_value(value: &[u8]) -> Result<&std::ffi::OsStr, CliError> {
    Ok(std::os::unix::ffi::OsStrExt::from_bytes(value))
}

/// The value as an environment value (UTF-8 only here).
#[cfg(not(unix))]
fn os_value(value: &[u8]) -> Result<&std::ffi::OsStr, CliError> {
    std::str::from_utf8(value)
        .map(std::ffi::OsStr::new)
        .map_err(|_| CliError::Usage("a value that is not UTF-8 cannot be put in an environment variable here".into()))
}

/// Starts the command, pumps its output through maskers (when `masks` is given), forwards
/// signals, and returns its status once it has exited and its output is drained.
async fn spawn_and_wait(
    command: &[OsString],
    values: &[(String, Zeroizing<Vec<u8>>)],
    masks: Option<Vec<Zeroizing<Vec<u8>>>>,
) -> Result<ExitStatus, CliError> {
    let program = command[0].to_string_lossy().into_owned();
    // Handlers first: a signal arriving once the child runs must be forwarded, not end us.
    let mut signals = signals::Forwarder::new().map_err(|e| CliError::io("cannot install signal handlers", e))?;
    let mut cmd = tokio::process::Command::new(&command[0]);
    // The child gets the values it was given, not the key that opens every other one.
    cmd.args(&command[1..])
        .stdin(Stdio::inherit())
        .env_remove(crate::key::KEY_VAR);
    for (name, value) in values {
        cmd.env(name, os_value(value)?);
    }
    let mut readers = None;
    if masks.is_some() {
        let (out_r, out_w) = std::io::pipe().map_err(|e| CliError::io("cannot create a pipe", e))?;
        let (err_r, err_w) = std::io::pipe().map_err(|e| CliError::io("cannot create a pipe", e))?;
        cmd.stdout(out_w).stderr(err_w);
        readers = Some((out_r, err_r));
    } else {
        cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    }
    let spawned = cmd.spawn();
    // The command holds our copies of the pipes' write ends: close them, so the pumps see
    // the end of the output when the child (and whatever it started) closes its own.
    drop(cmd);
    let mut child = spawned.map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            COMMAND_NOT_FOUND
        } else {
            COMMAND_NOT_EXECUTABLE
        };
        CliError::Failed {
            code,
            message: format!("cannot start {program}: {e}; check the command name, PATH and the file's permissions"),
        }
    })?;
    let mut pumps = Vec::new();
    if let (Some((out_r, err_r)), Some(masks)) = (readers, masks) {
        pumps.push(pump::start(
            out_r,
            pump::Console::Stdout,
            Masker::new(masks.iter().cloned()),
        )?);
        pumps.push(pump::start(err_r, pump::Console::Stderr, Masker::new(masks))?);
    }
    let status = loop {
        tokio::select! {
            status = child.wait() => break status.map_err(|e| CliError::io(format!("cannot wait for {program}"), e))?,
            Some(signal) = signals.next() => signals::forward(&child, signal),
        }
    };
    // Drain what the child wrote; a signal meanwhile (a grandchild keeping the output
    // open) stops waiting for it.
    tokio::select! {
        _ = futures::future::join_all(pumps) => {}
        Some(_) = signals.next() => {}
    }
    Ok(status)
}

/// The status to exit with: the child's code, or 128+N when signal N ended it.
fn exit_code(status: ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code & 0xff).unwrap_or(exit::ERROR);
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return u8::try_from(128 + signal).unwrap_or(exit::ERROR);
    }
    exit::ERROR
}

/// Threads copying the child's output to ours through a [`Masker`].
mod pump {
    use super::*;

    /// Which of our streams a pump writes to.
    #[derive(Debug, Clone, Copy)]
    pub(super) enum Console {
        Stdout,
        Stderr,
    }

    /// Our stream as a file of its own (unbuffered, and free of the lock the command
    /// dispatcher holds on stdout).
    fn open(console: Console) -> std::io::Result<std::fs::File> {
        #[cfg(unix)]
        {
            use std::os::fd::AsFd;
            let fd = match console {
                Console::Stdout => std::io::stdout().as_fd().try_clone_to_owned()?,
                Console::Stderr => std::io::stderr().as_fd().try_clone_to_owned()?,
            };
            Ok(std::fs::File::from(fd))
        }
        #[cfg(windows)]
        {
            use std::os::windows::io::AsHandle;
            let handle = match console {
                Console::Stdout => std::io::stdout().as_handle().try_clone_to_owned()?,
                Console::Stderr => std::io::stderr().as_handle().try_clone_to_owned()?,
            };
            Ok(std::fs::File::from(handle))
        }
    }

    /// Starts copying `from` to `console`; the receiver completes at the end of the stream.
    pub(super) fn start(
        from: std::io::PipeReader,
        console: Console,
        masker: Masker,
    ) -> Result<futures::channel::oneshot::Receiver<()>, CliError> {
        let to = open(console).map_err(|e| CliError::io("cannot duplicate our output stream", e))?;
        let (done, finished) = futures::channel::oneshot::channel();
        std::thread::Builder::new()
            .name(format!("nebula-cred {console:?} mask"))
            .spawn(move || {
                copy(from, to, masker);
                let _ = done.send(());
            })
            .map_err(|e| CliError::io("cannot start an output thread", e))?;
        Ok(finished)
    }

    /// Copies until the end of the stream. When our side is closed (`| head`), stops
    /// reading, so the child meets a closed pipe as it would without us.
    pub(super) fn copy(mut from: impl Read, mut to: impl Write, mut masker: Masker) {
        let mut buf = Zeroizing::new(vec![0u8; 16 * 1024]);
        let mut out = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            masker.feed(&buf[..n], &mut out);
            if !out.is_empty() {
                if to.write_all(&out).and_then(|()| to.flush()).is_err() {
                    return;
                }
                out.clear();
            }
        }
        masker.finish(&mut out);
        let _ = to.write_all(&out).and_then(|()| to.flush());
    }
}

/// Signal forwarding (unix): SIGINT, SIGTERM, SIGHUP and SIGQUIT reach the child.
#[cfg(unix)]
mod signals {
    use tokio::signal::unix::{Signal, SignalKind, signal};

    /// Which signal arrived.
    #[derive(Debug, Clone, Copy)]
    pub(super) enum Caught {
        Interrupt,
        Terminate,
        Hangup,
        Quit,
    }

    /// Our handlers for the forwarded signals (installed for the rest of the process).
    pub(super) struct Forwarder {
        interrupt: Signal,
        terminate: Signal,
        hangup: Signal,
        quit: Signal,
    }

    impl Forwarder {
        pub(super) fn new() -> std::io::Result<Self> {
            Ok(Forwarder {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
                hangup: signal(SignalKind::hangup())?,
                quit: signal(SignalKind::quit())?,
            })
        }

        /// The next signal caught.
        pub(super) async fn next(&mut self) -> Option<Caught> {
            tokio::select! {
                Some(()) = self.interrupt.recv() => Some(Caught::Interrupt),
                Some(()) = self.terminate.recv() => Some(Caught::Terminate),
                Some(()) = self.hangup.recv() => Some(Caught::Hangup),
                Some(()) = self.quit.recv() => Some(Caught::Quit),
                else => None,
            }
        }
    }

    /// Sends `caught` on to the child, unless the terminal already did: a Ctrl-C or
    /// Ctrl-\ typed at the terminal whose foreground process group is ours reached the
    /// child (in the same group) directly, and a second copy would make many programs
    /// skip their graceful shutdown.
    pub(super) fn forward(child: &tokio::process::Child, caught: Caught) {
        use rustix::process::Signal as S;
        let (signal, from_keyboard) = match caught {
            Caught::Interrupt => (S::INT, true),
            Caught::Terminate => (S::TERM, false),
            Caught::Hangup => (S::HUP, false),
            Caught::Quit => (S::QUIT, true),
        };
        if from_keyboard && terminal_delivered() {
            return;
        }
        let pid = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            // The child may have exited meanwhile: nothing left to tell.
            let _ = rustix::process::kill_process(pid, signal);
        }
    }

    /// Whether our process group is the foreground group of our controlling terminal.
    fn terminal_delivered() -> bool {
        std::fs::File::open("/dev/tty")
            .ok()
            .and_then(|tty| rustix::termios::tcgetpgrp(&tty).ok())
            .is_some_and(|group| group == rustix::process::getpgrp())
    }
}

/// Elsewhere the console delivers Ctrl-C to every process attached to it.
#[cfg(not(unix))]
mod signals {
    /// No signal is caught here.
    #[derive(Debug, Clone, Copy)]
    pub(super) enum Caught {}

    /// Nothing to forward.
    pub(super) struct Forwarder;

    impl Forwarder {
        pub(super) fn new() -> std::io::Result<Self> {
            Ok(Forwarder)
        }

        pub(super) async fn next(&mut self) -> Option<Caught> {
            std::future::pending().await
        }
    }

    pub(super) fn forward(_: &tokio::process::Child, caught: Caught) {
        match caught {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> CredentialId {
        s.parse().unwrap()
    }

    #[test]
    fn ids_map_to_upper_snake_names() {
        assert_eq!(env_name(&id("github_token")), "GITHUB_TOKEN");
        assert_eq!(env_name(&id("db-url")), "DB_URL");
        assert_eq!(parse_binding("a=B").unwrap(), (id("a"), Some("B".into())));
        assert_eq!(parse_binding("a").unwrap(), (id("a"), None));
        assert!(parse_binding("bad id=X").is_err());
    }

    #[test]
    fn invalid_protected_and_colliding_names_are_all_named() {
        let b = |i: &str, n: &str| Binding {
            id: id(i),
            name: n.into(),
        };
        assert!(check_bindings(&[b("a", "A"), b("b", "_b2")], "x").is_ok());
        let e = check_bindings(
            &[
                b("db-url", "DB_URL"),
                b("db_url", "DB_URL"),
                b("9lives", "9LIVES"),
                b("path", "PATH"),
                b("p", "LD_PRELOAD"),
                b("q", "A\u{1b}B"),
            ],
            "not starting x",
        )
        .unwrap_err();
        assert_eq!(e.code(), exit::USAGE);
        let e = e.to_string();
        for said in ["'db-url' and 'db_url'", "9LIVES", "PATH", "LD_PRELOAD", "A\\u{1b}B"] {
            assert!(e.contains(said), "{said}: {e}");
        }
        assert!(!e.contains('\u{1b}'), "{e}");
        // One value in two variables is fine; one variable for two values is not.
        assert!(check_bindings(&[b("a", "X"), b("a", "Y")], "x").is_ok());
    }

    #[test]
    fn a_copy_stops_when_our_side_is_closed() {
        struct Closed;
        impl Write for Closed {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let input: &[u8] = b"some output";
        pump_copy(input, Closed);
        let mut out = Vec::new();
        pump_copy(b"a secret b".as_slice(), &mut out);
        assert_eq!(out, [b"a ".as_slice(), crate::mask::MASK, b" b"].concat());
    }

    fn pump_copy(from: &[u8], to: impl Write) {
        let masker = Masker::new([Zeroizing::new(b"secret".to_vec())]);
        pump::copy(from, to, masker);
    }
}
