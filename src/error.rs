//! The public error types.
//!
//! An `Err` from keyward means the system failed or the caller asked for something invalid;
//! a user failing to sign in is an ordinary outcome ([`crate::signin::SignIn::Denied`]), never
//! an error. No error message ever contains secret material.

use thiserror::Error;

// ---------------------------------------------------------------------------------------------
// Hashing core errors live below this line (owned by `hash.rs`).
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// TOTP errors live below this line (owned by `totp.rs`).
// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Store errors live below this line (owned by `store.rs`).
// ---------------------------------------------------------------------------------------------

/// A store failed or refused an operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operation would break a uniqueness rule (a username already taken in the site, a
    /// user id already used).
    #[error("conflict: {what} already exists")]
    Conflict {
        /// What clashed, e.g. `username`.
        what: &'static str,
    },
    /// No user with this id.
    #[error("no user with id {user}")]
    NotFound {
        /// The missing user.
        user: crate::user::UserId,
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

/// What a keyward operation can fail with.
///
/// A user failing to sign in is not an error but an outcome ([`crate::signin::SignIn`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed or a stored hash is invalid.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// An import record was refused; nothing was stored.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A TOTP operation failed.
    #[error(transparent)]
    Totp(#[from] TotpError),
    /// Delivery through the notifier failed.
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// A password or temporary password breaks the policy.
    #[error("password policy: {0}")]
    Policy(#[from] crate::policy::PolicyViolation),
    /// An admin action was refused; nothing changed.
    #[error(transparent)]
    PermissionDenied(#[from] crate::admin::PermissionDenied),
    /// No user with this id.
    #[error("no user with id {user}")]
    UserNotFound {
        /// The missing user.
        user: crate::user::UserId,
    },
    /// Delivery was asked for but the user has no verified contact on that channel.
    #[error("the user has no verified {channel}")]
    NoVerifiedContact {
        /// `email` or `phone`.
        channel: &'static str,
    },
    /// The user's password is not a temporary password.
    #[error("user {user} has no temporary password")]
    NoTemporaryPassword {
        /// The user.
        user: crate::user::UserId,
    },
    /// TOTP secrets cannot be stored: no sealing key was configured and plain storage was
    /// not opted into (see [`crate::service::KeywardBuilder::totp_sealer`]).
    #[error("no TOTP sealing key is configured")]
    TotpKeyMissing,
    /// Writing an output document (the printable list) failed.
    #[error("output failed: {reason}")]
    Output {
        /// What went wrong.
        reason: String,
    },
}
