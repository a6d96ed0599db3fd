//! bcrypt: `$2a$`, `$2b$`, `$2y$`. `$2x$` (PHP's marker for hashes made by the buggy
//! pre-2011 crypt_blowfish) and the original `$2$` are refused as unsupported variants.
//!
//! As in OpenBSD's original, only the first 72 bytes of the password count. The `bcrypt`
//! crate's `verify` truncates the same way; keyward truncates explicitly anyway so that the rule
//! does not depend on a dependency's default.

use super::error::BackendError;
use super::{HashError, HashLimits, HashScheme, SchemeMatch, bounded, is_crypt64, malformed};

const NAME: &str = "bcrypt";
/// Bytes of the password bcrypt uses.
pub(super) const MAX_PASSWORD_BYTES: usize = 72;
/// bcrypt's smallest cost.
const MIN_COST: u32 = 4;

/// Parses a bcrypt string's shape and bounds it, reporting errors under `scheme`.
pub(super) fn check(scheme: &'static str, s: &str, limits: &HashLimits) -> Result<(), HashError> {
    let bytes = s.as_bytes();
    let variant = s.get(1..3).unwrap_or_default();
    if bytes.get(3) == Some(&b'$') || s.starts_with("$2$") {
        match variant {
            "2a" | "2b" | "2y" => {}
            _ => {
                let variant = s
                    .get(1..s.len().min(3))
                    .unwrap_or("?")
                    .trim_end_matches('$');
                return Err(HashError::UnsupportedVariant {
                    scheme,
                    variant: variant.to_owned(),
                });
            }
        }
    }
    if s.len() != 60 || !s.is_ascii() {
        return Err(malformed(scheme, "expected 60 characters"));
    }
    if bytes.first() != Some(&b'$') || bytes.get(3) != Some(&b'$') || bytes.get(6) != Some(&b'$') {
        return Err(malformed(scheme, "expected $2b$NN$"));
    }
    let cost = s
        .get(4..6)
        .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|c| c.parse::<u32>().ok())
        .ok_or(malformed(scheme, "cost is not two digits"))?;
    if cost < MIN_COST {
        return Err(HashError::ParamBelowMinimum {
            name: "bcrypt_cost",
            value: cost.into(),
            min: MIN_COST.into(),
        });
    }
    bounded("bcrypt_cost", cost.into(), limits.max_bcrypt_cost.into())?;
    let rest = s.get(7..).unwrap_or_default();
    if !is_crypt64(rest) {
        return Err(malformed(scheme, "salt or digest is not bcrypt base64"));
    }
    // The 22nd salt character and 31st digest character carry padding bits; bcrypt's base64
    // decoder rejects non-canonical ones, which `verify` reports as malformed.
    Ok(())
}

/// Verifies the first 72 bytes of `password` against a checked bcrypt string.
pub(super) fn verify(
    scheme: &'static str,
    password: &[u8],
    s: &str,
    limits: &HashLimits,
) -> Result<SchemeMatch, HashError> {
    check(scheme, s, limits)?;
    let used = password.get(..MAX_PASSWORD_BYTES).unwrap_or(password);
    match ::bcrypt::verify(used, s) {
        Ok(matched) => Ok(matched.into()),
        Err(::bcrypt::BcryptError::InvalidHash(_)) => {
            Err(malformed(scheme, "salt or digest is not bcrypt base64"))
        }
        Err(e) => Err(HashError::Backend {
            scheme,
            source: BackendError::new(e),
        }),
    }
}

/// `$2a$`, `$2b$`, `$2y$` bcrypt.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bcrypt;

impl HashScheme for Bcrypt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$2")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        check(NAME, stored, limits)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        verify(NAME, password, stored, limits)
    }
}
