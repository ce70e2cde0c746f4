//! Property tests of the Key Vault secret-name codec ([`crate::naming`]) and the tag
//! codec as this backend configures it ([`crate::tags::SCHEME`]): names use only
//! `[0-9a-z-]`, stay within 127 characters with any allowed prefix, decode losslessly when
//! exact, and differ for distinct ids even compared case-insensitively (Key Vault folds case).
//!
//! Cases per property: `PROPTEST_CASES` (default 256); prints `property cases <codec>: N`.

#[path = "../../nebula-credential-core/tests/support/props.rs"]
mod support;

use proptest::prelude::*;

use crate::naming::{DIGEST_SUFFIX_LEN, MAX_NAME_LEN, MAX_PREFIX_LEN, decode, encode};
use crate::tags::SCHEME;
use support::{Codec, ensure, strategies};

/// Room a prefix of 1..=64 characters leaves for the name part.
fn room() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(MAX_NAME_LEN - MAX_PREFIX_LEN),
        Just(MAX_NAME_LEN - "nebula-".len()),
        (MAX_NAME_LEN - MAX_PREFIX_LEN)..MAX_NAME_LEN,
    ]
}

#[test]
fn props_azure_secret_names() {
    let mut codec = Codec::new("azure-secret-name");
    codec.check(
        "names are short, lowercase and decode to the id when exact",
        (strategies::id(), room()),
        |(id, room)| {
            let name = encode(id.as_str(), room);
            ensure(!name.is_empty() && name.len() <= room, || {
                format!("{id} → {name} ({} characters, room {room})", name.len())
            })?;
            ensure(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                || format!("{id} → {name} holds a character Key Vault refuses or folds"),
            )?;
            match decode(&name) {
                Some(back) => ensure(back == id.as_str(), || format!("{name} decodes as {back}, not {id}")),
                None => ensure(
                    name.len() > room.saturating_sub(2 + DIGEST_SUFFIX_LEN) && name.contains("-2"),
                    || format!("{name} neither decodes nor is a shortened name"),
                ),
            }
        },
    );
    codec.check(
        "distinct ids get names that differ case-insensitively",
        (strategies::distinct_ids(), room()),
        |((a, b), room)| {
            let (x, y) = (encode(a.as_str(), room), encode(b.as_str(), room));
            ensure(!x.eq_ignore_ascii_case(&y), || {
                format!("{a} and {b} share the name {x}")
            })
        },
    );
    codec.check(
        "decoding arbitrary text never panics and only exact names decode",
        strategies::any_text(),
        |text| {
            if let Some(id) = decode(&text) {
                let again = encode(&id, usize::MAX);
                ensure(again == text, || {
                    format!("{text:?} decodes as {id:?}, which encodes as {again}")
                })?;
            }
            Ok(())
        },
    );
    codec.report();
}

#[test]
fn props_azure_tags() {
    let mut codec = Codec::new("azure-tags");
    support::check_tag_scheme(&mut codec, SCHEME);
    codec.report();
}
