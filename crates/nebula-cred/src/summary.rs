//! [`Summary`]: the report `migrate` and `import` print, in one shape.

use std::fmt::Display;

/// A headline, a table of counts, then the credentials that need attention.
pub(crate) struct Summary {
    text: String,
}

impl Summary {
    /// Starts with `headline`, marked as a dry run when it is one.
    pub(crate) fn new(dry_run: bool, headline: impl Display) -> Self {
        let prefix = if dry_run {
            "dry run, nothing written; the counts say what would happen: "
        } else {
            ""
        };
        Summary {
            text: format!("{prefix}{headline}\n"),
        }
    }

    /// One count of the table, with a note after it (empty for none).
    pub(crate) fn row(&mut self, label: &str, n: usize, note: &str) {
        self.text.push_str(&format!("  {label:<18} {n:>6}{note}\n"));
    }

    /// The ids under `title`, when there are any.
    pub(crate) fn ids<T: Display>(&mut self, title: &str, ids: &[T]) {
        if !ids.is_empty() {
            self.text.push_str(&format!("{title}:\n"));
            for id in ids {
                self.text.push_str(&format!("  {id}\n"));
            }
        }
    }

    /// The failed credentials with their reason and error kind.
    pub(crate) fn failures(&mut self, failed: impl ExactSizeIterator<Item = (String, String, String)>) {
        if failed.len() > 0 {
            self.text.push_str("failed:\n");
            for (id, why, kind) in failed {
                self.text.push_str(&format!("  {id}: {why} [{kind}]\n"));
            }
        }
    }

    /// The note that `to` could not store conditionally.
    pub(crate) fn unconditional(&mut self, to: &str) {
        self.text.push_str(&format!(
            "note: {to} cannot store conditionally here, so a writer creating the same ids meanwhile may have been overwritten\n"
        ));
    }

    /// The text.
    pub(crate) fn finish(self) -> String {
        self.text
    }
}
