//! [`Error`](enum@Error): what a keyward operation can fail with.
//!
//! An `Err` from keyward means the system failed or the caller asked for something invalid;
//! a user failing to sign in is an ordinary outcome ([`crate::signin::SignIn::Denied`]), never
//! an error. Every other error type lives with the module that raises it
//! ([`crate::hash::HashError`], [`crate::store::StoreError`], ...) and is kept here as the
//! source. No error message ever contains secret material.

use thiserror::Error;

use crate::hash::{HashError, ImportError};
use crate::notify::NotifyError;
use crate::permission::PermissionDenied;
use crate::policy::PolicyViolation;
use crate::store::StoreError;
use crate::totp::TotpError;
use crate::user::{InvalidField, SiteId, UserId};

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
    Notify(#[from] NotifyError),
    /// A password or temporary password breaks the policy.
    #[error("password policy: {0}")]
    Policy(#[from] PolicyViolation),
    /// An admin action was refused; nothing changed.
    #[error(transparent)]
    PermissionDenied(#[from] PermissionDenied),
    /// No user with this id.
    #[error("no user with id {user}")]
    UserNotFound {
        /// The missing user.
        user: UserId,
    },
    /// The deployment does not use PINs ([`Pins::Off`](crate::service::Pins::Off)).
    #[error("PINs are turned off in this deployment")]
    PinsDisabled,
    /// No user with this username in the site (where a username, not an id, names the user).
    #[error("no user with this username in site {site}")]
    UsernameNotFound {
        /// The site searched.
        site: SiteId,
    },
    /// The operation is for administrators only and the user is not one.
    #[error("user {user} is not an administrator")]
    NotAnAdministrator {
        /// The user.
        user: UserId,
    },
    /// A profile field cannot be accepted; nothing was stored.
    #[error(transparent)]
    InvalidUser(#[from] InvalidField),
    /// The user is disabled.
    #[error("user {user} is disabled")]
    UserDisabled {
        /// The user.
        user: UserId,
    },
    /// Delivery was asked for but the user has no verified contact on that channel.
    #[error("the user has no verified {channel}")]
    NoVerifiedContact {
        /// `email` or `phone`.
        channel: &'static str,
    },
    /// The user holds an admin-managed temporary password, which only an administrator
    /// changes: remove it before sending a reset link.
    #[error("user {user} has an admin-managed temporary password: remove it first")]
    AdminManagedPassword {
        /// The user.
        user: UserId,
    },
    /// The user's password is not a temporary password.
    #[error("user {user} has no temporary password")]
    NoTemporaryPassword {
        /// The user.
        user: UserId,
    },
    /// TOTP secrets cannot be stored: no sealing key was configured and plain storage was
    /// not opted into (see [`crate::KeywardBuilder::totp_sealer`]).
    #[error("no TOTP sealing key is configured")]
    TotpKeyMissing,
    /// Replacing an active authenticator needs a fresh step-up of the same user
    /// ([`Keyward::reauthenticate`](crate::Keyward::reauthenticate) or
    /// [`Keyward::reauthenticate_with_totp`](crate::Keyward::reauthenticate_with_totp)); none
    /// was given, or it is another user's, too old, or the account changed since.
    #[error("user {user} must re-authenticate first")]
    StepUpRequired {
        /// The user.
        user: UserId,
    },
    /// Self-service TOTP enrollment is refused while an administrator's reset awaits device
    /// authorization at the next sign-in.
    #[error("user {user} has an authenticator reset pending: enrollment happens at sign-in")]
    TotpResetPending {
        /// The user.
        user: UserId,
    },
    /// The user has no active authenticator (none enrolled, or a reset awaits the next
    /// sign-in): recovery codes stand in for one, so there is nothing to make them for.
    #[error("user {user} has no active authenticator")]
    NoAuthenticator {
        /// The user.
        user: UserId,
    },
    /// Recovery codes are off ([`CodeRules::recovery_codes`](crate::policy::CodeRules::recovery_codes)
    /// is 0).
    #[error("recovery codes are turned off")]
    RecoveryCodesOff,
    /// A long operation (a bulk regeneration) was cancelled before it changed anything.
    #[error("cancelled before anything changed")]
    Cancelled,
    /// Temporary passwords are not kept in escrow: no escrow key was configured (see
    /// [`crate::KeywardBuilder::temporary_password_escrow`]). Regenerate instead.
    #[error("temporary passwords are not kept in escrow: regenerate instead")]
    EscrowDisabled,
    /// No escrowed copy of the user's temporary password can be revealed: the user has
    /// claimed the account, the password expired or was used, or it was issued before escrow
    /// was turned on. Regenerate instead.
    #[error("user {user} has no temporary password that can be revealed")]
    NothingToReveal {
        /// The user.
        user: UserId,
    },
    /// The session an operation was taken with is stale: the actor's password, PIN, TOTP,
    /// role, sites, status or lock changed since it was signed in (see
    /// [`Keyward::acting`](crate::Keyward::acting)). Nothing was done; end the session.
    #[error("the session of {user} is no longer valid")]
    StaleSession {
        /// The actor.
        user: UserId,
    },
    /// What the operation was about to change was changed meanwhile by someone else (a
    /// compare-and-swap lost: another administrator, the user, a concurrent sign-in); nothing
    /// was written. Read the user again and decide anew.
    #[error("the {what} changed meanwhile; nothing was written")]
    ChangedMeanwhile {
        /// What changed: `password`, `TOTP state`.
        what: &'static str,
    },
    /// A pending step is too large to seal (an account name or email address far beyond
    /// what a cookie carries).
    #[error("the pending step is too large to seal")]
    StepTooLarge,
    /// Writing an output document (the printable list) failed.
    #[error("writing the {format} output failed")]
    Output {
        /// The format being written (`CSV`).
        format: &'static str,
        /// The writer's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}
