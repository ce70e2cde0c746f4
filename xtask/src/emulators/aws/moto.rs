//! Keeps the harness's moto faithful to AWS where the provider's tests can see it: the
//! patches in `test-servers/moto/` (unified diffs against the pinned moto, each explained in
//! `test-servers/moto/README.md`) are applied to the venv's moto whenever the aws emulator
//! starts. Applied or not is read from the installed file's content, so a reinstall
//! (a new venv, `pip install --force-reinstall`) gets them again, and a moto that matches
//! neither side of a hunk stops the start with what to do.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::paths::test_server;
use crate::run::run_checked;

/// The patch files, by name under `test-servers/moto/`.
const PATCHES: &[&str] = &["secretsmanager-stage-labels.patch"];
/// The boto3-only reproduction run after a patch was applied: exit 0 when moto keeps
/// stage labels as AWS does.
const REPRODUCTION: &str = "repro_stage_labels.py";

/// One hunk of a unified diff: the text before and after, context included.
#[derive(Debug, PartialEq)]
struct Hunk {
    before: String,
    after: String,
}

/// A unified diff of one file: its path (without the `a/` prefix) and its hunks.
#[derive(Debug)]
struct FilePatch {
    path: String,
    hunks: Vec<Hunk>,
}

/// Reads a unified diff of one file, as `diff -u` writes it.
fn parse(diff: &str) -> Result<FilePatch> {
    let mut path = None;
    let mut hunks: Vec<Hunk> = Vec::new();
    for line in diff.lines() {
        if line.starts_with("+++ ") && hunks.is_empty() {
            continue;
        }
        if let Some(p) = line.strip_prefix("--- ").filter(|_| hunks.is_empty()) {
            let p = p.split('\t').next().unwrap_or(p).trim();
            path = Some(p.strip_prefix("a/").unwrap_or(p).to_string());
            continue;
        }
        if line.starts_with("@@") {
            hunks.push(Hunk {
                before: String::new(),
                after: String::new(),
            });
            continue;
        }
        let Some(hunk) = hunks.last_mut() else { continue };
        let (tag, text) = match line.as_bytes().first() {
            None => (b' ', ""),
            Some(&tag) if tag.is_ascii() => (tag, &line[1..]),
            Some(_) => bail!("not a unified diff line: {line:?}"),
        };
        let (to_before, to_after) = match tag {
            b' ' => (true, true),
            b'-' => (true, false),
            b'+' => (false, true),
            b'\\' => (false, false),
            _ => bail!("not a unified diff line: {line:?}"),
        };
        for (wanted, side) in [(to_before, &mut hunk.before), (to_after, &mut hunk.after)] {
            if wanted {
                side.push_str(text);
                side.push('\n');
            }
        }
    }
    let path = path.context("no `--- a/PATH` line")?;
    if hunks.is_empty() {
        bail!("no hunks");
    }
    Ok(FilePatch { path, hunks })
}

/// `text` with every hunk applied; `None` when each is applied already. A hunk whose
/// before-text is not there exactly once (and whose after-text is not there either) is an
/// error: the file is not the one the patch was written for.
fn apply(patch: &FilePatch, text: &str) -> Result<Option<String>> {
    let mut out = text.to_string();
    let mut changed = false;
    for (i, hunk) in patch.hunks.iter().enumerate() {
        if out.contains(&hunk.after) {
            continue;
        }
        match out.matches(&hunk.before).count() {
            1 => {
                out = out.replacen(&hunk.before, &hunk.after, 1);
                changed = true;
            }
            n => bail!(
                "hunk {} of the patch to {} matches {n} places instead of one",
                i + 1,
                patch.path
            ),
        }
    }
    Ok(changed.then_some(out))
}

/// The venv's `site-packages` directory.
fn site_packages(venv: &Path) -> Result<PathBuf> {
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(&lib).with_context(|| format!("cannot read {}", lib.display()))? {
        let dir = entry?.path().join("site-packages");
        if dir.is_dir() {
            return Ok(dir);
        }
    }
    bail!("no lib/python*/site-packages in {}", venv.display())
}

/// Applies every patch to the venv's moto (a no-op when they are applied), then, if
/// anything changed, runs the reproduction to prove moto now behaves as AWS does.
pub(super) fn patch_moto(venv: &Path) -> Result<()> {
    let dir = test_server("moto");
    let site = site_packages(venv)?;
    let mut changed = false;
    for name in PATCHES {
        let file = dir.join(name);
        let diff = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
        let patch = parse(&diff).with_context(|| format!("{} is not a unified diff of one file", file.display()))?;
        let target = site.join(&patch.path);
        let text = std::fs::read_to_string(&target).with_context(|| format!("cannot read {}", target.display()))?;
        let patched = apply(&patch, &text).with_context(|| {
            format!(
                "{} does not apply to {}: the pinned moto changed. If the new moto fixes it upstream \
                 (run {REPRODUCTION} against it), drop the patch; otherwise regenerate it (see test-servers/moto/README.md)",
                file.display(),
                target.display()
            )
        })?;
        if let Some(patched) = patched {
            eprintln!("    patching {} ({})", target.display(), file.display());
            std::fs::write(&target, patched).with_context(|| format!("cannot write {}", target.display()))?;
            // Python must not run stale bytecode of the unpatched file.
            let cache = target.parent().map(|p| p.join("__pycache__"));
            if let Some(cache) = cache.filter(|c| c.is_dir()) {
                std::fs::remove_dir_all(&cache).with_context(|| format!("cannot remove {}", cache.display()))?;
            }
            changed = true;
        }
    }
    if changed {
        let python = venv.join("bin").join("python");
        run_checked(
            Command::new(python).arg(dir.join(REPRODUCTION)),
            "the moto stage-label reproduction after patching (test-servers/moto/)",
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &str = "def f():\n    a = 1\n    b = 2\n    return a\n\ndef g():\n    return 3\n";

    const DIFF: &str = "--- a/pkg/mod.py\t2026-01-01\n+++ b/pkg/mod.py\n@@ -1,4 +1,5 @@\n def f():\n     a = 1\n-    b = 2\n+    b = 20\n+    # patched\n     return a\n@@ -6,2 +7,2 @@\n def g():\n-    return 3\n+    return 30\n";

    #[test]
    fn a_patch_applies_once_and_is_recognised_afterwards() {
        let patch = parse(DIFF).unwrap();
        assert_eq!(patch.path, "pkg/mod.py");
        assert_eq!(patch.hunks.len(), 2);
        let patched = apply(&patch, ORIGINAL).unwrap().expect("changed");
        assert_eq!(
            patched,
            "def f():\n    a = 1\n    b = 20\n    # patched\n    return a\n\ndef g():\n    return 30\n"
        );
        assert_eq!(apply(&patch, &patched).unwrap(), None, "applied already: nothing to do");
        // Half applied (a reinstall raced an edit): the missing hunk is applied.
        let half = ORIGINAL.replace("return 3\n", "return 30\n");
        assert_eq!(apply(&patch, &half).unwrap().as_deref(), Some(patched.as_str()));
    }

    #[test]
    fn a_changed_file_is_an_error_naming_the_hunk() {
        let patch = parse(DIFF).unwrap();
        let upgraded = ORIGINAL.replace("b = 2", "b = 5");
        let e = apply(&patch, &upgraded).unwrap_err().to_string();
        assert!(
            e.contains("hunk 1") && e.contains("pkg/mod.py") && e.contains("0 places"),
            "{e}"
        );
        assert!(parse("not a diff").is_err());
    }

    #[test]
    fn the_moto_patch_parses() {
        for name in PATCHES {
            let file = test_server("moto").join(name);
            let patch = parse(&std::fs::read_to_string(&file).unwrap()).unwrap();
            assert_eq!(patch.path, "moto/secretsmanager/models.py");
            assert!(patch.hunks.iter().all(|h| h.before != h.after));
        }
    }
}
