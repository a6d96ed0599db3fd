#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod clock;
pub mod error;
pub mod secret;

pub use clock::{Clock, ManualClock, SystemClock};
pub use secret::{OneTimeCode, Password, Pin, TemporaryPassword, TotpSecret};
