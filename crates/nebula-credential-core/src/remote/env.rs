//! Environment variables of the backends' `from_env`: [`var`] reads the first of several
//! names set, [`var_renamed`] reads a variable under its current name or a deprecated
//! one (with one warning), [`path_renamed`] the same for a path, and [`parse_bool`] reads a `true` / `false` switch. An empty
//! variable counts as unset everywhere.

use crate::ConfigError;

/// The value of the first of `names` that is set and not empty.
pub fn var(names: &[&str]) -> Option<String> {
    first_of(&process_env, names)
}

/// The value of `name`, else of the first of its deprecated names `old` that is set and
/// not empty, with one warning naming the old and the new variable.
pub fn var_renamed(name: &str, old: &[&str]) -> Option<String> {
    renamed_of(&process_env, name, old)
}

/// Like [`var_renamed`], for a path: the value need not be UTF-8.
pub fn path_renamed(name: &str, old: &[&str]) -> Option<std::path::PathBuf> {
    let read = |n: &str| std::env::var_os(n).filter(|v| !v.is_empty());
    read(name)
        .or_else(|| {
            old.iter().find_map(|o| {
                let value = read(o)?;
                super::config_keys::warn_renamed("environment variable", o, name);
                Some(value)
            })
        })
        .map(std::path::PathBuf::from)
}

/// `value` of the variable `var_name` (which sets `field` of `provider`'s configuration)
/// as a boolean: exactly `true` or `false`.
pub fn parse_bool(provider: &'static str, field: &str, var_name: &str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConfigError::new(
            provider,
            field,
            format!("must be true or false ({var_name}={value:?})"),
        )),
    }
}

/// A variable of the process environment; empty counts as unset.
fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn first_of(env: &dyn Fn(&str) -> Option<String>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| env(n))
}

fn renamed_of(env: &dyn Fn(&str) -> Option<String>, name: &str, old: &[&str]) -> Option<String> {
    env(name).or_else(|| {
        old.iter().find_map(|o| {
            let value = env(o)?;
            super::config_keys::warn_renamed("environment variable", o, name);
            Some(value)
        })
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// An environment of `pairs`, with empty values dropped as [`process_env`] does.
    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |n| map.get(n).filter(|v| !v.is_empty()).cloned()
    }

    #[test]
    fn the_first_variable_set_and_not_empty_wins() {
        let e = env(&[("EMPTY", ""), ("SET", "x"), ("LATER", "y")]);
        assert_eq!(first_of(&e, &["UNSET", "EMPTY", "SET", "LATER"]), Some("x".into()));
        assert_eq!(first_of(&e, &["UNSET", "EMPTY"]), None);
        assert_eq!(var(&[]), None);
    }

    #[test]
    fn a_deprecated_variable_is_read_only_when_the_new_one_is_unset() {
        let old_only = env(&[("OLD", "old")]);
        assert_eq!(renamed_of(&old_only, "NEW", &["OLD"]), Some("old".into()));
        let both = env(&[("OLD", "old"), ("NEW", "new")]);
        assert_eq!(renamed_of(&both, "NEW", &["OLD"]), Some("new".into()));
        assert_eq!(renamed_of(&both, "NONE", &[]), None);
        assert_eq!(
            path_renamed("NEBULA_TEST_UNSET_PATH", &["NEBULA_TEST_UNSET_OLD_PATH"]),
            None
        );
    }

    #[test]
    fn switches_are_exactly_true_or_false() {
        assert_eq!(
            parse_bool("aws", "allow_http", "NEBULA_AWS_ALLOW_HTTP", "true"),
            Ok(true)
        );
        assert_eq!(
            parse_bool("aws", "allow_http", "NEBULA_AWS_ALLOW_HTTP", "false"),
            Ok(false)
        );
        for bad in ["yes", "1", "TRUE", " true"] {
            let e = parse_bool("aws", "allow_http", "NEBULA_AWS_ALLOW_HTTP", bad).unwrap_err();
            assert_eq!(e.field(), "allow_http");
            assert!(
                e.rule().contains("NEBULA_AWS_ALLOW_HTTP") && e.rule().contains("true or false"),
                "{e}"
            );
        }
    }
}
