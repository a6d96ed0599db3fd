//! The Unix crypt(3) family: traditional DES, BSDi extended DES, md5-crypt, SHA-crypt.
//! bcrypt strings from crypt(3) are handled by [`super::bcrypt`].
//!
//! Evaluation is delegated to the `pwhash` crate after keyward has checked the shape and the
//! cost itself (pwhash clamps or rejects out-of-range values but knows nothing of limits).

#![allow(deprecated)] // pwhash marks these legacy algorithms deprecated for *new* hashes.

use std::sync::LazyLock;

use data_encoding::{BitOrder, Encoding, Specification};

use super::error::BackendError;
use super::{
    HashError, HashLimits, HashScheme, SchemeMatch, bounded, bounded_work, ct_eq, is_crypt64,
    malformed,
};

/// The crypt(3) base64 alphabet read least-significant-bits first, as DES-based crypt,
/// md5-crypt and phpass pack their integers and digests.
pub(super) static CRYPT64_LSB: LazyLock<Option<Encoding>> = LazyLock::new(|| {
    let mut spec = Specification::new();
    spec.symbols
        .push_str("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
    spec.bit_order = BitOrder::LeastSignificantFirst;
    spec.check_trailing_bits = false;
    spec.encoding().ok()
});

pub(super) fn crypt64() -> Result<&'static Encoding, HashError> {
    CRYPT64_LSB.as_ref().ok_or(HashError::Backend {
        scheme: "crypt",
        source: BackendError::msg("crypt64 encoding unavailable"),
    })
}

fn backend(scheme: &'static str, e: pwhash::error::Error) -> HashError {
    HashError::Backend {
        scheme,
        source: BackendError::new(e),
    }
}

/// Compares a recomputed crypt string with the stored one, whole, in constant time.
fn recomputed_eq(
    scheme: &'static str,
    computed: Result<String, pwhash::error::Error>,
    stored: &str,
) -> Result<SchemeMatch, HashError> {
    let computed = computed.map_err(|e| backend(scheme, e))?;
    Ok(ct_eq(computed.as_bytes(), stored.as_bytes()).into())
}

/// Compares the digest after the last `$` (or the whole string) in constant time.
fn digest_eq(computed: &str, stored: &str) -> SchemeMatch {
    let tail = |s: &str| s.rsplit('$').next().unwrap_or_default().to_owned();
    ct_eq(tail(computed).as_bytes(), tail(stored).as_bytes()).into()
}

/// Traditional DES crypt: 2 salt characters and 11 digest characters. Only the first 8 bytes of
/// the password count, and only the low 7 bits of each.
#[derive(Debug, Clone, Copy)]
pub(super) struct DesCrypt;

impl HashScheme for DesCrypt {
    fn name(&self) -> &'static str {
        "des-crypt"
    }

    fn detect(&self, stored: &str) -> bool {
        stored.len() == 13 && is_crypt64(stored)
    }

    fn check(&self, stored: &str, _limits: &HashLimits) -> Result<(), HashError> {
        if !self.detect(stored) {
            return Err(malformed(
                self.name(),
                "expected 13 characters of ./0-9A-Za-z",
            ));
        }
        Ok(())
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        self.check(stored, limits)?;
        let used = password.get(..8).unwrap_or(password);
        recomputed_eq(
            self.name(),
            pwhash::unix_crypt::hash_with(stored, used),
            stored,
        )
    }
}

/// BSDi extended DES: `_` + 4 characters of rounds + 4 of salt + 11 of digest.
#[derive(Debug, Clone, Copy)]
pub(super) struct BsdiCrypt;

impl BsdiCrypt {
    fn rounds(stored: &str) -> Result<u32, HashError> {
        let enc = stored
            .get(1..5)
            .ok_or(malformed("bsdi-crypt", "too short"))?;
        let bytes = crypt64()?
            .decode(enc.as_bytes())
            .map_err(|_| malformed("bsdi-crypt", "rounds are not crypt base64"))?;
        let mut le = [0u8; 4];
        for (slot, b) in le.iter_mut().zip(bytes) {
            *slot = b;
        }
        Ok(u32::from_le_bytes(le))
    }
}

impl HashScheme for BsdiCrypt {
    fn name(&self) -> &'static str {
        "bsdi-crypt"
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with('_')
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        if stored.len() != 20 || !is_crypt64(stored.get(1..).unwrap_or_default()) {
            return Err(malformed(
                self.name(),
                "expected _ and 19 characters of ./0-9A-Za-z",
            ));
        }
        let rounds = Self::rounds(stored)?;
        if rounds == 0 {
            return Err(HashError::ParamBelowMinimum {
                name: "rounds",
                value: 0,
                min: 1,
            });
        }
        bounded("rounds", rounds.into(), limits.max_bsdi_rounds.into())
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        self.check(stored, limits)?;
        recomputed_eq(
            self.name(),
            pwhash::bsdi_crypt::hash_with(stored, password),
            stored,
        )
    }
}

/// md5-crypt (`$1$`): up to 8 salt characters, 22 digest characters, 1000 fixed rounds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Md5Crypt;

impl HashScheme for Md5Crypt {
    fn name(&self) -> &'static str {
        "md5-crypt"
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$1$")
    }

    fn check(&self, stored: &str, _limits: &HashLimits) -> Result<(), HashError> {
        let rest = stored.get(3..).unwrap_or_default();
        let Some((salt, digest)) = rest.split_once('$') else {
            return Err(malformed(self.name(), "expected $1$salt$digest"));
        };
        if salt.is_empty() || salt.len() > 8 || !is_crypt64(salt) {
            return Err(malformed(
                self.name(),
                "salt must be 1 to 8 characters of ./0-9A-Za-z",
            ));
        }
        if digest.len() != 22 || !is_crypt64(digest) {
            return Err(malformed(
                self.name(),
                "digest must be 22 characters of ./0-9A-Za-z",
            ));
        }
        Ok(())
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        self.check(stored, limits)?;
        recomputed_eq(
            self.name(),
            pwhash::md5_crypt::hash_with(stored, password),
            stored,
        )
    }
}

/// SHA-crypt (Drepper): `$5$` (SHA-256) and `$6$` (SHA-512), optional `rounds=N$`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ShaCrypt {
    name: &'static str,
    magic: &'static str,
    digest_len: usize,
}

impl ShaCrypt {
    pub(super) const SHA256: Self = Self {
        name: "sha256-crypt",
        magic: "$5$",
        digest_len: 43,
    };
    pub(super) const SHA512: Self = Self {
        name: "sha512-crypt",
        magic: "$6$",
        digest_len: 86,
    };

    /// The explicit round count, if any. Values below 1000 are accepted: the spec clamps them.
    fn parse<'a>(&self, stored: &'a str) -> Result<(Option<u32>, &'a str, &'a str), HashError> {
        let rest = stored.get(self.magic.len()..).unwrap_or_default();
        let (rounds, rest) = match rest.strip_prefix("rounds=") {
            Some(r) => {
                let (n, rest) = r
                    .split_once('$')
                    .ok_or(malformed(self.name, "expected rounds=N$"))?;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed(self.name, "rounds is not a decimal number"));
                }
                // All digits: parsing can only overflow, which is out of bounds anyway.
                let n: u64 = n.parse().unwrap_or(u64::MAX);
                (Some(n), rest)
            }
            None => (None, rest),
        };
        let (salt, digest) = rest
            .split_once('$')
            .ok_or(malformed(self.name, "expected salt$digest"))?;
        if salt.len() > 16 || !is_crypt64(salt) {
            return Err(malformed(
                self.name,
                "salt must be at most 16 characters of ./0-9A-Za-z",
            ));
        }
        if digest.len() != self.digest_len || !is_crypt64(digest) {
            return Err(malformed(
                self.name,
                "digest has the wrong length or alphabet",
            ));
        }
        let rounds = match rounds {
            Some(n) => Some(u32::try_from(n).map_err(|_| HashError::ParamOutOfBounds {
                name: "rounds",
                value: n,
                max: u32::MAX.into(),
            })?),
            None => None,
        };
        Ok((rounds, salt, digest))
    }
}

impl HashScheme for ShaCrypt {
    fn name(&self) -> &'static str {
        self.name
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with(self.magic)
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        let (rounds, _, _) = self.parse(stored)?;
        if let Some(rounds) = rounds {
            bounded("rounds", rounds.into(), limits.max_sha_crypt_rounds.into())?;
        }
        Ok(())
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let (rounds, _, _) = self.parse(stored)?;
        self.check(stored, limits)?;
        // Absent rounds mean the spec's default, 5000; below 1000 it clamps to 1000.
        let rounds = rounds.unwrap_or(5000).max(1000);
        let max = limits.max_sha_crypt_rounds.max(5000);
        bounded_work(rounds.into(), max.into(), password.len())?;
        let computed = if self.digest_len == 43 {
            pwhash::sha256_crypt::hash_with(stored, password)
        } else {
            pwhash::sha512_crypt::hash_with(stored, password)
        }
        .map_err(|e| backend(self.name, e))?;
        // Compare digests only: the spec clamps rounds below 1000 when hashing, so a stored
        // `rounds=10` is reproduced as `rounds=1000`.
        Ok(digest_eq(&computed, stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crypt64_builds() {
        assert!(CRYPT64_LSB.is_some());
        // BSDi "_J9.." encodes 725 rounds (J = 21, 9 = 11: 21 + 11 * 64).
        assert_eq!(BsdiCrypt::rounds("_J9..CCCCXBrJUJV154M").unwrap(), 725);
    }
}
