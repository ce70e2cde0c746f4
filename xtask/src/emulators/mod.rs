//! The emulators, one file each (`aws.rs`, `vault.rs`, `azure.rs`, `kubernetes.rs`): its
//! table row (names, what runs it natively and under docker, whether CI runs it natively,
//! the variables it exports), its native start and its docker environment. This file only
//! lists the rows. Adding an emulator is one file here plus one line in [`EMULATORS`].
//! `toxiproxy` is a row too but emulates no backend: it is the fault proxy the fault matrix
//! (`tests/tests/faults_*.rs`) puts in front of the others ([`Emulator::is_backend`]).

use std::fmt;
use std::str::FromStr;

use anyhow::{Result, bail};

mod aws;
mod azure;
mod kubernetes;
mod spec;
mod toxiproxy;
mod vault;

pub(crate) use spec::Spec;

/// The emulators, in the order they start and are listed.
static EMULATORS: [&Spec; 5] = [
    &aws::SPEC,
    &vault::SPEC,
    &azure::SPEC,
    &kubernetes::SPEC,
    &toxiproxy::SPEC,
];

/// An emulated backend: a row of the table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Emulator(usize);

impl Emulator {
    /// Every emulator, in table order.
    pub(crate) fn all() -> impl Iterator<Item = Emulator> {
        (0..EMULATORS.len()).map(Emulator)
    }

    /// Its row.
    pub(crate) fn spec(self) -> &'static Spec {
        EMULATORS[self.0]
    }

    /// Whether it emulates a backend (every row but the fault proxy, `toxiproxy`).
    pub(crate) fn is_backend(self) -> bool {
        !std::ptr::eq(self.spec(), &toxiproxy::SPEC)
    }

    /// Its name (the provider's, the state file's and the tests feature's).
    pub(crate) fn name(self) -> &'static str {
        self.spec().name
    }

    /// The names, for help and error messages: `aws, vault, …`.
    pub(crate) fn names(separator: &str) -> String {
        Emulator::all()
            .map(|e| e.spec().name)
            .collect::<Vec<_>>()
            .join(separator)
    }

    /// `named` in table order without repeats; every emulator when `named` is empty.
    pub(crate) fn these_or_all(named: &[Emulator]) -> Vec<Emulator> {
        let mut out = if named.is_empty() {
            Emulator::all().collect()
        } else {
            named.to_vec()
        };
        out.sort();
        out.dedup();
        out
    }
}

impl FromStr for Emulator {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match Emulator::all().find(|e| e.spec().name == s || e.spec().aliases.contains(&s)) {
            Some(e) => Ok(e),
            None => bail!("unknown backend `{s}`; choose from {}", Emulator::names(", ")),
        }
    }
}

impl fmt::Display for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.spec().name)
    }
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.spec().name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::runtime::Runtime;

    #[test]
    fn names_parse_and_every_emulator_exports_variables() {
        let named: Vec<Emulator> = ["vault", "aws", "k8s", "openbao", "aws"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(
            format!("{:?}", Emulator::these_or_all(&named)),
            "[aws, vault, kubernetes]"
        );
        assert_eq!(Emulator::these_or_all(&[]).len(), EMULATORS.len());
        let e = "gcp".parse::<Emulator>().unwrap_err().to_string();
        assert!(
            e.contains("choose from aws, vault, azure, kubernetes, toxiproxy"),
            "{e}"
        );
        assert_eq!(Emulator::all().filter(|e| !e.is_backend()).count(), 1);
        for e in Emulator::all() {
            assert_eq!(e.spec().name.parse::<Emulator>().unwrap(), e);
            assert!(e.spec().exports(Runtime::Native).all(|v| v.starts_with("NEBULA_TEST_")));
        }
    }

    #[test]
    fn compose_file_defines_every_docker_service() {
        let compose =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docker-compose.test.yml")).unwrap();
        for e in Emulator::all() {
            let s = e.spec();
            assert!(
                compose.contains(&format!("\n  {}:\n", s.docker_service)),
                "service {}",
                s.docker_service
            );
            // Published on 127.0.0.1, or (the fault proxy) on the host network, listening there.
            assert!(
                compose.contains(&format!("127.0.0.1:{}:", s.docker_port))
                    || compose.contains(&format!("\"-port\", \"{}\"", s.docker_port)),
                "port {}",
                s.docker_port
            );
        }
    }
}
