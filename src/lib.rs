#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod account;
pub mod admin;
pub mod audit;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
mod guard;
pub mod hash;
pub mod import;
pub mod lockout;
pub mod migrate;
#[cfg(feature = "tokio")]
pub mod nonblocking;
pub mod notify;
pub mod permission;
pub mod policy;
pub mod recovery;
pub mod secret;
pub mod service;
pub mod signin;
pub mod stamp;
pub mod store;
mod text_enum;
pub mod totp;
pub mod user;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use hash::{
    Argon2Policy, HashLimits, HashScheme, Hasher, HashingMethod, ImportRecord, PasswordHash,
    SaltPosition, SchemeMatch, Verification,
};
pub use hash::{HashError, ImportError};
#[cfg(feature = "tokio")]
pub use nonblocking::AsyncKeyward;
pub use secret::{OneTimeCode, Password, Pin, RecoveryCode, TemporaryPassword, TotpSecret};
pub use service::{Keyward, KeywardBuilder};
pub use signin::{Denial, DenialReason, PendingStep, SealedStep, SignIn};
pub use stamp::{SecurityStamp, SessionCheck};
pub use store::memory::InMemoryStore;
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::sqlite::SqliteStore;
pub use store::{StoreError, UserStore};
pub use totp::{
    Enrollment, OtpauthUri, StoredTotpSecret, TotpAlgorithm, TotpCheck, TotpConfig, TotpSealer,
};
