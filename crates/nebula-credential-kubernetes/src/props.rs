//! Property tests of the Secret-name codec ([`crate::naming`]) and the label codec
//! ([`crate::labels`]): names are valid DNS-1123 subdomains within 253 characters,
//! lossless, injective and canonical; labels hold the tag codec's properties and
//! translate to Kubernetes labels and back unchanged.
//!
//! Cases per property: `PROPTEST_CASES` (default 256); prints `property cases <codec>: N`.

#[path = "../../nebula-credential-core/tests/support/props.rs"]
mod support;

use nebula_credential_core::{CredentialMetadata, Tags};
use proptest::prelude::*;

use crate::labels::{SCHEME, check_key, from_labels, to_labels};
use crate::naming::{MAX_NAME_LEN, MAX_PREFIX_LEN, check_prefix, credential_id, is_dns_subdomain, secret_name};
use support::{Codec, ensure, strategies};

/// A `secret_prefix` the configuration accepts, up to the longest.
fn prefix() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("nebula-cred-".to_string()),
        "[a-z0-9][a-z0-9-]{0,20}",
        "[a-z0-9][a-z0-9-]{90,96}",
        Just("p".repeat(MAX_PREFIX_LEN)),
    ]
    .prop_filter("valid prefix", |p| check_prefix(p).is_ok())
}

/// A label value Kubernetes accepts: empty, or up to 63 of `[A-Za-z0-9._-]` with
/// alphanumerics at both ends.
fn is_label_value(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            && v.starts_with(|c: char| c.is_ascii_alphanumeric())
            && v.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

#[test]
fn props_kubernetes_secret_names() {
    let mut codec = Codec::new("kubernetes-secret-name");
    codec.check(
        "every id has a valid name within 253 characters that parses back to it",
        (prefix(), strategies::id()),
        |(prefix, id)| {
            let name = secret_name(&prefix, &id);
            ensure(name.len() <= MAX_NAME_LEN, || {
                format!("{name} has {} characters", name.len())
            })?;
            ensure(is_dns_subdomain(&name), || {
                format!("{name} is not a DNS-1123 subdomain")
            })?;
            let back = credential_id(&prefix, &name);
            ensure(back.as_ref() == Some(&id), || {
                format!("{name} parses as {back:?}, not {id}")
            })
        },
    );
    codec.check(
        "distinct ids get distinct names",
        (prefix(), strategies::distinct_ids()),
        |(prefix, (a, b))| {
            let (x, y) = (secret_name(&prefix, &a), secret_name(&prefix, &b));
            ensure(x != y, || format!("{a} and {b} share the name {x}"))
        },
    );
    let candidate = prop_oneof![
        (
            prefix(),
            strategies::id(),
            any::<prop::sample::Index>(),
            "[a-z0-9.A-Z_-]"
        )
            .prop_map(|(prefix, id, at, c)| {
                let mut name = secret_name(&prefix, &id);
                let i = at.index(name.len() + 1);
                if i < name.len() && at.index(2) == 0 {
                    name.remove(i);
                } else {
                    name.insert_str(i, &c);
                }
                (prefix, name)
            }),
        (prefix(), strategies::any_text()).prop_map(|(prefix, text)| (prefix.clone(), format!("{prefix}{text}"))),
    ];
    codec.check(
        "only canonical names parse, and never panic",
        candidate,
        |(prefix, name)| {
            if let Some(id) = credential_id(&prefix, &name) {
                let canonical = secret_name(&prefix, &id);
                ensure(canonical == name, || {
                    format!("{name:?} parses as {id}, whose name is {canonical}")
                })?;
            }
            Ok(())
        },
    );
    codec.report();
}

#[test]
fn props_kubernetes_labels() {
    let mut codec = Codec::new("kubernetes-labels");
    support::check_tag_scheme(&mut codec, SCHEME);
    codec.check(
        "tags become valid labels and come back unchanged",
        (strategies::tags(), strategies::created_at()),
        |(tags, created)| {
            let mut metadata = CredentialMetadata::new().with_tags(tags);
            metadata.created_at = created;
            let desired = SCHEME.desired(&metadata, &Tags::new());
            let (labels, owned) = to_labels(&desired);
            for (k, v) in &labels {
                ensure(check_key(k).is_ok(), || format!("label key {k:?}: {:?}", check_key(k)))?;
                ensure(is_label_value(v), || format!("label {k} has the invalid value {v:?}"))?;
            }
            let back = from_labels(&labels, Some(&owned));
            ensure(back == desired, || format!("{desired:?} came back as {back:?}"))
        },
    );
    codec.check("a prefix label value is a valid label", prefix(), |prefix| {
        let v = SCHEME.encode_value(&prefix);
        ensure(is_label_value(&v), || format!("{prefix} → {v:?}"))
    });
    codec.report();
}
