//! [`Operation`]: which operation of [`StorageProvider`](crate::StorageProvider) an
//! error, a metric or a deadline refers to.

use std::fmt;

/// The operation of [`StorageProvider`](crate::StorageProvider) an error or metric refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// [`StorageProvider::store`](crate::StorageProvider::store).
    Store,
    /// [`StorageProvider::retrieve`](crate::StorageProvider::retrieve).
    Retrieve,
    /// [`StorageProvider::delete`](crate::StorageProvider::delete).
    Delete,
    /// [`StorageProvider::list`](crate::StorageProvider::list).
    List,
    /// [`StorageProvider::exists`](crate::StorageProvider::exists).
    Exists,
    /// [`StorageProvider::check`](crate::StorageProvider::check).
    Check,
    /// [`StorageProvider::revision`](crate::StorageProvider::revision).
    Revision,
}

impl Operation {
    /// Every operation, in a fixed order (used to index metrics).
    pub const ALL: [Operation; 7] = [
        Operation::Store,
        Operation::Retrieve,
        Operation::Delete,
        Operation::List,
        Operation::Exists,
        Operation::Check,
        Operation::Revision,
    ];

    /// The lowercase name, as used in logs, spans and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Store => "store",
            Operation::Retrieve => "retrieve",
            Operation::Delete => "delete",
            Operation::List => "list",
            Operation::Exists => "exists",
            Operation::Check => "check",
            Operation::Revision => "revision",
        }
    }

    /// `true` for operations that change stored state (`store`, `delete`).
    pub const fn is_write(self) -> bool {
        matches!(self, Operation::Store | Operation::Delete)
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
