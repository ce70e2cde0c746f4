//! Cross-crate tests of nebula-credential: the conformance suite against every backend
//! through `nebula_credential::open`, one cargo feature per backend. The tests live in
//! `tests/`; this library is empty.

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
