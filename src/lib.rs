#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod error;
pub mod hash;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{HashError, ImportError};
pub use hash::{
    Argon2Policy, HashLimits, HashScheme, Hasher, HashingMethod, ImportRecord, PasswordHash,
    SaltPosition, SchemeMatch, Verification,
};
pub use secret::{OneTimeCode, Password, Pin, TemporaryPassword, TotpSecret};
