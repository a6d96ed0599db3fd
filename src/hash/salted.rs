//! Plain and salted message digests: bare 32-hex MD5 (old WordPress and many in-house
//! systems), and salted MD5 / SHA-1 / SHA-256 / SHA-512 stored in the canonical wrapper of
//! [`super::canonical`].

use data_encoding::HEXLOWER_PERMISSIVE;
use md5::{Digest, Md5};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use super::canonical::{DigestAlg, Position, SaltedDigest, claimed_alg};
use super::{HashError, HashLimits, HashScheme, SchemeMatch, ct_eq, malformed};

/// H(salt ‖ password), H(password ‖ salt) or H(password).
pub(super) fn compute(alg: DigestAlg, position: Position, salt: &[u8], password: &[u8]) -> Vec<u8> {
    fn run<D: Digest>(position: Position, salt: &[u8], password: &[u8]) -> Vec<u8> {
        let mut d = D::new();
        match position {
            Position::Prefix => {
                d.update(salt);
                d.update(password);
            }
            Position::Suffix => {
                d.update(password);
                d.update(salt);
            }
            Position::None => d.update(password),
        }
        d.finalize().to_vec()
    }
    match alg {
        DigestAlg::Md5 => run::<Md5>(position, salt, password),
        DigestAlg::Sha1 => run::<Sha1>(position, salt, password),
        DigestAlg::Sha256 => run::<Sha256>(position, salt, password),
        DigestAlg::Sha512 => run::<Sha512>(position, salt, password),
    }
}

/// `$keyward-salted$v=1$...` strings.
#[derive(Debug, Clone, Copy)]
pub(super) struct Salted {
    alg: DigestAlg,
}

impl Salted {
    pub(super) const MD5: Self = Self {
        alg: DigestAlg::Md5,
    };
    pub(super) const SHA1: Self = Self {
        alg: DigestAlg::Sha1,
    };
    pub(super) const SHA256: Self = Self {
        alg: DigestAlg::Sha256,
    };
    pub(super) const SHA512: Self = Self {
        alg: DigestAlg::Sha512,
    };
}

impl HashScheme for Salted {
    fn name(&self) -> &'static str {
        self.alg.scheme()
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$keyward-salted$") && claimed_alg(stored) == self.alg
    }

    fn check(&self, stored: &str, _limits: &HashLimits) -> Result<(), HashError> {
        SaltedDigest::parse(stored).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        _limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let parsed = SaltedDigest::parse(stored)?;
        let computed = compute(parsed.alg, parsed.position, &parsed.salt, password);
        Ok(ct_eq(&computed, &parsed.digest).into())
    }
}

/// Bare unsalted MD5 as 32 hex digits (either case), as WordPress before 2.5 stored it.
#[derive(Debug, Clone, Copy)]
pub(super) struct PlainMd5;

impl HashScheme for PlainMd5 {
    fn name(&self) -> &'static str {
        "md5"
    }

    fn detect(&self, stored: &str) -> bool {
        stored.len() == 32 && stored.bytes().all(|b| b.is_ascii_hexdigit())
    }

    fn check(&self, stored: &str, _limits: &HashLimits) -> Result<(), HashError> {
        if !self.detect(stored) {
            return Err(malformed("md5", "expected 32 hex digits"));
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
        let expected = HEXLOWER_PERMISSIVE
            .decode(stored.as_bytes())
            .map_err(|_| malformed("md5", "expected 32 hex digits"))?;
        let computed = compute(DigestAlg::Md5, Position::None, &[], password);
        Ok(ct_eq(&computed, &expected).into())
    }
}
