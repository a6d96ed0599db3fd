#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod audit;
pub mod clock;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod error;
pub mod lockout;
pub mod secret;
pub mod store;
pub mod user;

pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::{OneTimeCode, Password, Pin, TemporaryPassword, TotpSecret};
pub use store::UserStore;
pub use store::memory::InMemoryStore;
#[cfg(feature = "postgres")]
pub use store::postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use store::sqlite::SqliteStore;
