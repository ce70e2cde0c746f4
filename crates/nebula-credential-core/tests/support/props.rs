//! The runner of every property test in the workspace (included with `#[path]` by each
//! crate's `tests/props_*.rs` or `src/props.rs`, so it is written once).
//!
//! A [`Codec`] runs the properties of one codec with proptest and, when all hold, prints
//! `property cases <codec>: N`: the generated inputs checked across its properties. The
//! number of cases per property is proptest's (`PROPTEST_CASES`, default 256), so
//! `PROPTEST_CASES=10000 cargo test props_` runs every property 10,000 times. The lines
//! show with `--nocapture`; `cargo xtask props` (a step of `cargo xtask ci`) collects them.
//!
//! Every property test function is named `props_…`, which is how that step finds them.

use std::cell::Cell;
use std::fmt::Debug;

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// The properties of one codec, counted.
pub(crate) struct Codec {
    name: &'static str,
    cases: u64,
}

impl Codec {
    /// Starts counting the cases of codec `name` (as printed: `property cases NAME: N`).
    pub(crate) fn new(name: &'static str) -> Self {
        Codec { name, cases: 0 }
    }

    /// Checks `property` over inputs from `strategy`; panics with the shrunk failing
    /// input (keep it as a regression test) when `test` fails for one.
    pub(crate) fn check<S>(&mut self, property: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
    where
        S: Strategy,
        S::Value: Debug,
    {
        // Failures are kept as named regression tests beside the properties, not in
        // proptest's files.
        let config = Config {
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        let ran = Cell::new(0u64);
        let outcome = runner.run(&strategy, |value| {
            ran.set(ran.get() + 1);
            test(value)
        });
        if let Err(failure) = outcome {
            panic!("property `{property}` of {} fails: {failure}", self.name);
        }
        self.cases += ran.get();
    }

    /// Prints `property cases <codec>: N`.
    pub(crate) fn report(self) {
        println!("property cases {}: {}", self.name, self.cases);
    }
}

/// Fails the case with `message` unless `condition` holds (`prop_assert!` without the
/// macro's source-location noise).
#[allow(dead_code)]
pub(crate) fn ensure(condition: bool, message: impl FnOnce() -> String) -> Result<(), TestCaseError> {
    if condition {
        Ok(())
    } else {
        Err(TestCaseError::fail(message()))
    }
}

/// Strategies shared by the crates' properties.
#[allow(dead_code)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    use nebula_credential_core::{CredentialId, Tags, Timestamp};

    /// A valid credential id of any length, every character class, every case.
    pub(crate) fn id() -> impl Strategy<Value = CredentialId> {
        prop_oneof![
            "[A-Za-z0-9_-]{1,12}",
            "[A-Za-z0-9_-]{1,128}",
            "[a-z0-9-]{1,128}",
            "[A-Z_]{1,128}",
            // The longest ids, where names run out of room.
            "[A-Za-z0-9_-]{120,128}",
        ]
        .prop_map(|s| CredentialId::new(s).expect("the strategy makes valid ids"))
    }

    /// Two ids that differ, often only in the case of one letter or in `_` against `-`.
    pub(crate) fn distinct_ids() -> impl Strategy<Value = (CredentialId, CredentialId)> {
        let near = (id(), any::<prop::sample::Index>(), 0..3u8).prop_filter_map("no variant", |(id, at, how)| {
            let mut chars: Vec<char> = id.as_str().chars().collect();
            let i = at.index(chars.len());
            chars[i] = match (how, chars[i]) {
                (0, c) if c.is_ascii_lowercase() => c.to_ascii_uppercase(),
                (0, c) if c.is_ascii_uppercase() => c.to_ascii_lowercase(),
                (1, '_') => '-',
                (1, '-') => '_',
                (_, c) if chars.len() < 128 => {
                    chars.insert(i, c);
                    c
                }
                _ => return None,
            };
            let other = CredentialId::new(chars.into_iter().collect::<String>()).ok()?;
            (other != id).then_some((id, other))
        });
        let any_two = (id(), id()).prop_filter("equal ids", |(a, b)| a != b);
        prop_oneof![near, any_two]
    }

    /// Any string: ASCII, id-like, arbitrary Unicode (controls included), long.
    pub(crate) fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[A-Za-z0-9_-]{0,130}",
            "[ -~]{0,40}",
            any::<String>(),
            long_text(0..=300),
            ".{0,8}",
        ]
    }

    /// Text of `len` characters repeating a short run of anything but control characters
    /// (cheaper than a long regex, and still every kind of character).
    pub(crate) fn long_text(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
        ("\\PC{1,4}", len).prop_map(|(run, n)| run.chars().cycle().take(n).collect())
    }

    /// A credential tag key (1..=63 of `[A-Za-z0-9._-]`, alphanumeric at both ends).
    pub(crate) fn tag_key() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z]{1,8}", "[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?"]
    }

    /// A credential tag value: up to 256 characters of anything but control characters,
    /// often one a backend can hold as is.
    pub(crate) fn tag_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9]{0,10}",
            "[A-Za-z0-9_.-]{0,63}",
            "[A-Za-z0-9 _.:/=+@-]{0,70}",
            "\\PC{0,20}",
            long_text(57..=256),
            "sha256[:-][0-9a-f]{0,64}",
            "[-_.][a-z]{0,5}[-_.]?",
        ]
    }

    /// Up to 10 valid credential tags.
    pub(crate) fn tags() -> impl Strategy<Value = Tags> {
        prop_oneof![
            3 => prop::collection::btree_map(tag_key(), tag_value(), 0..=3),
            1 => prop::collection::btree_map(tag_key(), tag_value(), 0..=10),
        ]
    }

    /// A creation time with millisecond precision, as the library records it.
    pub(crate) fn created_at() -> impl Strategy<Value = Timestamp> {
        (0i64..=4_102_444_800_000).prop_map(|ms| Timestamp::from_timestamp_millis(ms).expect("in range"))
    }

    /// A string that looks like a secret (base64-like, so never a valid id) and occurs
    /// nowhere else: it must never show in an error.
    pub(crate) fn secret() -> impl Strategy<Value = String> {
        "[A-Za-z0-9]{24}".prop_map(|s| format!("SeCrEt+{s}"))
    }
}

/// `at` moved by `nanos` nanoseconds.
fn shifted(at: nebula_credential_core::Timestamp, nanos: i64) -> nebula_credential_core::Timestamp {
    let base = at.timestamp_nanos_opt().expect("within 1677..2262");
    nebula_credential_core::Timestamp::from_timestamp_nanos(base + nanos)
}

/// The properties every [`TagScheme`](nebula_credential_core::remote::TagScheme) must have,
/// checked for `scheme` under `codec`: encoded values fit the backend, distinct values
/// encode distinctly, filters re-checked through the encoding decide exactly as on the
/// metadata itself, overwrites remove only what the library wrote, and decoding arbitrary
/// tags never panics.
#[allow(dead_code)]
pub(crate) fn check_tag_scheme(codec: &mut Codec, scheme: nebula_credential_core::remote::TagScheme) {
    use nebula_credential_core::{CredentialFilter, CredentialId, CredentialMetadata, Tags};
    use proptest::prelude::*;

    codec.check("encoded values fit the backend", strategies::any_text(), |value| {
        let encoded = scheme.encode_value(&value);
        let digest = format!(
            "{}{}",
            nebula_credential_core::remote::DIGEST_PREFIX,
            scheme.digest_separator
        );
        let body = encoded.strip_prefix(&digest).unwrap_or(&encoded);
        ensure(encoded.chars().count() <= scheme.max_value_chars, || {
            format!("{value:?} → {encoded:?} is longer than {}", scheme.max_value_chars)
        })?;
        ensure(body.chars().all(scheme.value_char), || {
            format!("{value:?} → {encoded:?} holds a character the backend refuses")
        })?;
        let edges = encoded.chars().next().is_none_or(scheme.value_edge_char)
            && encoded.chars().next_back().is_none_or(scheme.value_edge_char);
        ensure(edges, || format!("{value:?} → {encoded:?} starts or ends wrongly"))?;
        ensure(encoded == value || encoded.starts_with(&digest), || {
            format!("{value:?} → {encoded:?}: neither itself nor a digest")
        })
    });
    codec.check(
        "distinct values encode distinctly",
        (strategies::any_text(), strategies::any_text()).prop_flat_map(|(a, b)| {
            let digest_of_a = scheme.encode_value(&a);
            (
                Just(a.clone()),
                prop_oneof![
                    Just(b),
                    Just(digest_of_a),
                    Just(format!("{a} ")),
                    Just(a.to_uppercase())
                ],
            )
        }),
        |(a, b)| {
            ensure(a == b || scheme.encode_value(&a) != scheme.encode_value(&b), || {
                format!("{a:?} and {b:?} both encode as {:?}", scheme.encode_value(&a))
            })
        },
    );
    let filter = (strategies::tags(), strategies::created_at()).prop_flat_map(|(tags, created)| {
        let keys: Vec<String> = tags.keys().cloned().collect();
        let from_tags = if keys.is_empty() {
            Just(Tags::new()).boxed()
        } else {
            prop::collection::btree_map(prop::sample::select(keys), strategies::tag_value(), 0..3).boxed()
        };
        let with_others = prop_oneof![
            from_tags.clone(),
            Just(tags.clone()),
            (from_tags, strategies::tags()).prop_map(|(mut a, b)| {
                a.extend(b);
                a
            }),
        ];
        let time = prop_oneof![
            Just(None),
            (-2i64..=2).prop_map(move |ms| Some(shifted(created, ms * 1_000_000))),
            (-1_500_000i64..=1_500_000).prop_map(move |ns| Some(shifted(created, ns))),
        ];
        (Just(tags), Just(created), with_others, time.clone(), time)
    });
    codec.check(
        "filters decide through the tags exactly as on the metadata",
        filter,
        |(tags, created, wanted, after, before)| {
            let id = CredentialId::new("k").expect("valid");
            let mut metadata = CredentialMetadata::new().with_tags(tags);
            metadata.created_at = created;
            let mut filter = CredentialFilter::new();
            filter.tags = wanted;
            filter.created_after = after;
            filter.created_before = before;
            let stored = scheme.desired(&metadata, &Tags::new());
            let exact = filter.matches(&id, &metadata);
            ensure(scheme.matches(&filter, &id, &stored) == exact, || {
                format!("the filter {filter:?} gives {exact} on the metadata but not through the tags {stored:?}")
            })?;
            ensure(scheme.created_at(&stored) == Some(created), || {
                "created_at does not round-trip".into()
            })
        },
    );
    let foreign = prop::collection::btree_map("[a-z]{1,6}:[a-z]{1,6}", "[a-z]{0,6}", 0..4);
    codec.check(
        "an overwrite sets what is desired and keeps others' tags",
        (
            strategies::tags(),
            strategies::tags(),
            foreign,
            strategies::created_at(),
        ),
        |(first, second, foreign, created)| {
            let mut m1 = CredentialMetadata::new().with_tags(first.clone());
            m1.created_at = created;
            let m2 = CredentialMetadata::new().with_tags(second.clone());
            let mut current = scheme.desired(&m1, &Tags::new());
            current.extend(foreign.clone());
            let desired = scheme.desired(&m2, &Tags::new());
            let update = scheme.update(&current, &desired);
            let mut after = current.clone();
            for k in &update.remove {
                after.remove(k);
            }
            after.extend(update.set.clone());
            for (k, v) in &desired {
                ensure(after.get(k) == Some(v), || format!("{k} is not {v:?} after the update"))?;
            }
            for (k, v) in &foreign {
                ensure(after.get(k) == Some(v), || {
                    format!("another tool's tag {k} was removed")
                })?;
            }
            for k in first.keys().filter(|k| !second.contains_key(*k)) {
                ensure(!after.contains_key(k), || format!("the old credential tag {k} stayed"))?;
            }
            ensure(scheme.owned_view(&after) == desired, || {
                "the owned view is not what was written".into()
            })
        },
    );
    let arbitrary_tags = prop::collection::btree_map(
        prop_oneof![
            strategies::any_text(),
            Just(scheme.created_key.to_string()),
            Just(scheme.owned_key.to_string()),
            Just(scheme.managed_key.to_string()),
        ],
        strategies::any_text(),
        0..8,
    );
    codec.check(
        "decoding arbitrary tags never panics",
        (arbitrary_tags, strategies::tags()),
        |(tags, wanted)| {
            let id = CredentialId::new("k").expect("valid");
            let mut filter = CredentialFilter::new();
            filter.tags = wanted;
            let _ = scheme.created_at(&tags);
            let view = scheme.owned_view(&tags);
            ensure(view.iter().all(|(k, v)| tags.get(k) == Some(v)), || {
                "the owned view invents tags".into()
            })?;
            let _ = scheme.matches(&filter, &id, &tags);
            let _ = scheme.update(&tags, &scheme.desired(&CredentialMetadata::new(), &Tags::new()));
            Ok(())
        },
    );
}
