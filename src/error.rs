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

/// Placeholder so the crate builds before the other sections land.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation is not implemented yet.
    #[error("not implemented: {0}")]
    Unimplemented(&'static str),
}
