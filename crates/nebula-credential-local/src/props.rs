//! Property tests of the file-name codec ([`crate::naming`]): lossless, injective even
//! on case-insensitive file systems, canonical, and within every file system's 255 bytes.
//!
//! Cases per property: `PROPTEST_CASES` (default 256); prints `property cases <codec>: N`.

#[path = "../../nebula-credential-core/tests/support/props.rs"]
mod support;

use proptest::prelude::*;

use nebula_credential_core::ProviderConfig as _;

use crate::LocalStorageConfig;
use crate::naming::{file_name, parse_file_name};
use support::{Codec, ensure, strategies};

/// Longest file name on the common file systems (ext4, APFS, NTFS: 255 bytes or UTF-16 units).
const MAX_FILE_NAME_BYTES: usize = 255;

/// A file extension `LocalStorageConfig` accepts.
fn extension() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("enc.json".to_string()),
        "[a-z]{1,5}",
        "[A-Za-z0-9_-]{1,3}(\\.[A-Za-z0-9_-]{1,8}){0,3}",
        "[A-Za-z0-9_-]{32}",
    ]
    .prop_filter("valid extension", |ext| {
        let config = LocalStorageConfig {
            file_extension: ext.clone(),
            ..LocalStorageConfig::new("/tmp/props")
        };
        config.validate().is_ok()
    })
}

/// Windows device names, which resolve whatever follows the first dot.
fn is_windows_device(name: &str) -> bool {
    let base = name.split('.').next().unwrap_or_default().to_ascii_lowercase();
    ["con", "prn", "aux", "nul"].contains(&base.as_str())
        || (base.len() == 4
            && (base.starts_with("com") || base.starts_with("lpt"))
            && base.ends_with(|c: char| ('1'..='9').contains(&c)))
}

/// Names close to real ones: mutations of a valid name, and arbitrary text.
fn candidate_name() -> impl Strategy<Value = (String, String)> {
    let mutated = (
        strategies::id(),
        extension(),
        any::<prop::sample::Index>(),
        any::<char>(),
        0..4u8,
    )
        .prop_map(|(id, ext, at, c, how)| {
            let mut chars: Vec<char> = file_name(&id, &ext).chars().collect();
            let i = at.index(chars.len());
            match how {
                0 => chars[i] = c,
                1 => chars[i] = chars[i].to_ascii_uppercase(),
                2 => {
                    chars.remove(i);
                }
                _ => chars.insert(i, ['@', '.', '0', 'f', 'F'][i % 5]),
            }
            (chars.into_iter().collect(), ext)
        });
    let arbitrary = (strategies::any_text(), extension()).prop_map(|(text, ext)| (format!("{text}.{ext}"), ext));
    prop_oneof![mutated, arbitrary]
}

#[test]
fn props_local_file_names() {
    let mut codec = Codec::new("local-file-name");
    codec.check(
        "every id has one safe name that parses back to it",
        (strategies::id(), extension()),
        |(id, ext)| {
            let name = file_name(&id, &ext);
            ensure(name.len() <= MAX_FILE_NAME_BYTES, || {
                format!("{name} has {} bytes", name.len())
            })?;
            ensure(!name.starts_with('.'), || format!("{name} is hidden"))?;
            ensure(!is_windows_device(&name), || format!("{name} is a Windows device"))?;
            ensure(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-@".contains(c) || ext.contains(c)),
                || format!("{name} has an unsafe character"),
            )?;
            let back = parse_file_name(&name, &ext);
            ensure(back.as_ref() == Some(&id), || {
                format!("{name} parses as {back:?}, not {id}")
            })
        },
    );
    codec.check(
        "distinct ids get names that differ case-insensitively",
        (strategies::distinct_ids(), extension()),
        |((a, b), ext)| {
            let (x, y) = (file_name(&a, &ext), file_name(&b, &ext));
            ensure(!x.eq_ignore_ascii_case(&y), || {
                format!("{a} and {b} share the name {x} / {y}")
            })
        },
    );
    codec.check(
        "only canonical names parse, and never panic",
        candidate_name(),
        |(name, ext)| {
            if let Some(id) = parse_file_name(&name, &ext) {
                let canonical = file_name(&id, &ext);
                ensure(canonical == name, || {
                    format!("{name:?} parses as {id}, whose name is {canonical}")
                })?;
            }
            Ok(())
        },
    );
    codec.report();
}
