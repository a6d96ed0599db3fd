//! Drupal 7: `$S$`, phpass's construction with SHA-512, as in `_password_crypt()` of Drupal
//! 7's `includes/password.inc`, and `U$S$`, the same over md5(password) in hex (what Drupal 7
//! writes when it rehashes a Drupal 6 md5 hash at update, `user_update_7000`). Drupal's own
//! `$P$`/`$H$` hashes are plain phpass ([`super::wordpress::Phpass`]).
//!
//! Hand-written like phpass (no maintained crate implements it): a loop of SHA-512 from `sha2`,
//! encoded with `data-encoding`, compared with `subtle`.

use data_encoding::HEXLOWER;
use md5::Md5;
use sha2::{Digest, Sha512};
use zeroize::Zeroizing;

use super::crypt::crypt64;
use super::{
    HashError, HashLimits, HashScheme, SchemeMatch, bounded, ct_eq, is_crypt64, malformed,
};

const NAME: &str = "drupal7";
/// Drupal's `DRUPAL_HASH_LENGTH`: the stored string is cut to 55 characters.
const HASH_LENGTH: usize = 55;
/// Drupal's `DRUPAL_MIN_HASH_COUNT` and `DRUPAL_MAX_HASH_COUNT` (log2 of the iterations).
const MIN_LOG2: u32 = 7;
const MAX_LOG2: u32 = 30;
/// Drupal's `DRUPAL_MAX_PASSWORD_LENGTH`: longer passwords never match a `$S$` hash (Drupal
/// refuses them); a `U$S$` hash is over the 32 hex digits of md5(password), whatever its length.
const MAX_PASSWORD_BYTES: usize = 512;
const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The stored string without the `U` of an md5-prehashed one, and whether it had it.
fn strip_u(stored: &str) -> (&str, bool) {
    match stored.strip_prefix('U') {
        Some(rest) => (rest, true),
        None => (stored, false),
    }
}

/// log2 of the iteration count, bounded.
fn log2(stored: &str, limits: &HashLimits) -> Result<u32, HashError> {
    let (s, _) = strip_u(stored);
    if s.len() != HASH_LENGTH || !s.starts_with("$S$") || !is_crypt64(s.get(3..).unwrap_or("")) {
        return Err(malformed(
            NAME,
            "expected $S$ and 52 characters of ./0-9A-Za-z",
        ));
    }
    let c = s.as_bytes().get(3).copied().unwrap_or_default();
    let log2 = ITOA64.iter().position(|&x| x == c).unwrap_or_default();
    let log2 = u32::try_from(log2).unwrap_or(u32::MAX);
    if log2 < MIN_LOG2 {
        return Err(HashError::ParamBelowMinimum {
            name: "drupal_log2",
            value: log2.into(),
            min: MIN_LOG2.into(),
        });
    }
    bounded(
        "drupal_log2",
        log2.into(),
        limits.max_drupal_log2.min(MAX_LOG2).into(),
    )?;
    Ok(log2)
}

/// `$S$` hashes, and `U$S$` over md5(password).
#[derive(Debug, Clone, Copy)]
pub(super) struct Drupal;

impl HashScheme for Drupal {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$S$") || stored.starts_with("U$S$")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        log2(stored, limits).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let log2 = log2(stored, limits)?;
        let (s, md5_first) = strip_u(stored);
        // Drupal refuses a password over 512 bytes before `_password_crypt()`; for `U$S$` it
        // first takes md5(password) (`user_check_password()`), so the rule never applies there.
        if !md5_first && password.len() > MAX_PASSWORD_BYTES {
            return Ok(SchemeMatch::NoMatch);
        }
        let prehashed;
        let password = if md5_first {
            prehashed = Zeroizing::new(HEXLOWER.encode(&Md5::digest(password)));
            prehashed.as_bytes()
        } else {
            password
        };
        let salt = s.get(4..12).ok_or(malformed(NAME, "missing salt"))?;
        let expected = s.get(12..).ok_or(malformed(NAME, "missing digest"))?;
        let mut hash = Sha512::new()
            .chain_update(salt)
            .chain_update(password)
            .finalize();
        for _ in 0..(1u64 << log2) {
            hash = Sha512::new()
                .chain_update(hash)
                .chain_update(password)
                .finalize();
        }
        let encoded = Zeroizing::new(crypt64()?.encode(&hash));
        let computed = encoded.get(..expected.len()).unwrap_or_default();
        Ok(ct_eq(computed.as_bytes(), expected.as_bytes()).into())
    }
}
