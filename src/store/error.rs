//! The store's error type.

use thiserror::Error;

use crate::user::UserId;

/// A store failed or refused an operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operation would break a uniqueness rule (a username already taken in the site, a
    /// user id already used, a username that looks like one the site has). Only ever that: a
    /// lost compare-and-swap is an ordinary answer of the store ([`Swap`](super::Swap)), which
    /// the service reports as [`Error::ChangedMeanwhile`](crate::Error::ChangedMeanwhile).
    #[error("conflict: {what} already exists")]
    Conflict {
        /// What clashed, e.g. `username`.
        what: &'static str,
    },
    /// No user with this id.
    #[error("no user with id {user}")]
    NotFound {
        /// The missing user.
        user: UserId,
    },
    /// A query asked for something invalid (for example a page larger than the maximum).
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// What is wrong.
        reason: String,
    },
    /// Data read back from the store is not valid (a corrupted row, an unknown enum value).
    #[error("corrupt data in {location}: {reason}")]
    Corrupt {
        /// Where: table and column, or the record part.
        location: &'static str,
        /// What is wrong with it (never the data itself).
        reason: String,
    },
    /// The database was written by a newer version of keyward; it is not used.
    #[error("database schema version {found} is newer than this keyward supports ({supported})")]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The backend failed (I/O, connection, SQL).
    #[error("store backend failed: {context}")]
    Backend {
        /// What the store was doing.
        context: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StoreError {
    /// Wraps a backend error with what the store was doing.
    pub fn backend(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            context,
            source: Box::new(source),
        }
    }

    /// A corrupt-data error.
    pub fn corrupt(location: &'static str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            location,
            reason: reason.into(),
        }
    }
}
