//! libFuzzer entry point: runs the target named by `NEBULA_FUZZ_TARGET` (see
//! `nebula_credential_fuzz::TARGETS`) on every input libFuzzer makes.
#![no_main]

use std::sync::OnceLock;

static CHECK: OnceLock<fn(&[u8])> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let check = CHECK.get_or_init(|| {
        let name = std::env::var("NEBULA_FUZZ_TARGET").expect("set NEBULA_FUZZ_TARGET to a target name");
        nebula_credential_fuzz::target(&name).unwrap_or_else(|| panic!("no fuzz target {name:?}"))
    });
    check(data);
});
