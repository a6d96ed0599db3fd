//! scrypt, in its two common stored forms:
//!
//! - the PHC form, `$scrypt$ln=<log2 N>,r=<r>,p=<p>$<salt>$<hash>` with salt and hash in
//!   unpadded standard base64, which passlib's `scrypt` and RustCrypto's `scrypt` both write;
//! - Django's `scrypt$<N>$<salt>$<r>$<p>$<hash>` (salt as text, hash in padded base64).
//!
//! Evaluated by RustCrypto's `scrypt` crate after keyward has bounded, before anything is
//! hashed: `r` and `p` each ([`HashLimits::max_scrypt_r`], [`HashLimits::max_scrypt_p`]), so
//! that PBKDF2's 128·r·p bytes of output, each 32-byte block of which hashes the salt again,
//! stay small; the salt, to [`MAX_SALT_BYTES`]; the work, 128·N·r·p bytes, and the memory,
//! 128·N·r + 128·r·p + 256·r bytes, each by [`HashLimits::max_scrypt_kib`].

use data_encoding::{BASE64, BASE64_NOPAD};
use zeroize::Zeroizing;

use super::error::BackendError;
use super::{HashError, HashLimits, HashScheme, SchemeMatch, bounded, ct_eq, malformed};

const PHC: &str = "scrypt";
const DJANGO: &str = "django-scrypt";
/// Shortest and longest hash output accepted, in bytes.
const OUTPUT_BYTES: std::ops::RangeInclusive<usize> = 16..=128;
/// Longest salt accepted, in bytes (decoded for the PHC form, as text for Django's): passlib
/// writes 16, Django 22 characters. Both PBKDF2 passes hash it once per 32-byte block.
pub(super) const MAX_SALT_BYTES: usize = 64;

/// A parsed scrypt hash.
struct Parsed {
    log_n: u8,
    r: u32,
    p: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn decimal(scheme: &'static str, text: &str, what: &'static str) -> Result<u64, HashError> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(scheme, what));
    }
    // All digits, at most 20: only overflow fails, which is out of any bound.
    Ok(text.parse().unwrap_or(u64::MAX))
}

/// `bytes` in KiB, rounded up (saturating).
fn kib(bytes: u128) -> u64 {
    u64::try_from(bytes.div_ceil(1024)).unwrap_or(u64::MAX)
}

impl Parsed {
    fn bound(&self, scheme: &'static str, limits: &HashLimits) -> Result<(), HashError> {
        if self.r == 0 || self.p == 0 {
            return Err(HashError::ParamBelowMinimum {
                name: if self.r == 0 { "scrypt_r" } else { "scrypt_p" },
                value: 0,
                min: 1,
            });
        }
        if self.log_n == 0 {
            return Err(HashError::ParamBelowMinimum {
                name: "scrypt_ln",
                value: 0,
                min: 1,
            });
        }
        bounded("scrypt_ln", self.log_n.into(), 40)?;
        bounded("scrypt_r", self.r.into(), limits.max_scrypt_r.into())?;
        bounded("scrypt_p", self.p.into(), limits.max_scrypt_p.into())?;
        if self.salt.len() > MAX_SALT_BYTES {
            return Err(malformed(scheme, "salt longer than 64 bytes"));
        }
        let (n, r, p) = (1u128 << self.log_n, u128::from(self.r), u128::from(self.p));
        let max = limits.max_scrypt_kib.into();
        // N ≤ 2^40, r and p < 2^32: every product fits in u128.
        bounded("scrypt_kib", kib(128 * n * r * p), max)?;
        bounded(
            "scrypt_memory_kib",
            kib(128 * n * r + 128 * r * p + 256 * r),
            max,
        )?;
        if !OUTPUT_BYTES.contains(&self.hash.len()) {
            return Err(malformed(scheme, "hash must be 16 to 128 bytes"));
        }
        Ok(())
    }

    fn verify(&self, scheme: &'static str, password: &[u8]) -> Result<SchemeMatch, HashError> {
        let backend = |e: &'static str| HashError::Backend {
            scheme,
            source: BackendError::msg(e),
        };
        let params = ::scrypt::Params::new(self.log_n, self.r, self.p)
            .map_err(|_| malformed(scheme, "invalid parameters"))?;
        let mut out = Zeroizing::new(vec![0u8; self.hash.len()]);
        ::scrypt::scrypt(password, &self.salt, &params, &mut out)
            .map_err(|_| backend("invalid output length"))?;
        Ok(ct_eq(&out, &self.hash).into())
    }
}

/// `$scrypt$ln=..,r=..,p=..$salt$hash`.
fn parse_phc(stored: &str) -> Result<Parsed, HashError> {
    let bad = |reason| malformed(PHC, reason);
    let rest = stored
        .strip_prefix("$scrypt$")
        .ok_or(bad("expected $scrypt$"))?;
    let mut fields = rest.split('$');
    let (Some(params), Some(salt), Some(hash), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(bad("expected $scrypt$ln=N,r=R,p=P$salt$hash"));
    };
    let mut values = params.split(',');
    let (Some(ln), Some(r), Some(p), None) =
        (values.next(), values.next(), values.next(), values.next())
    else {
        return Err(bad("expected ln=N,r=R,p=P"));
    };
    let value = |field: &str, name: &str| -> Result<u64, HashError> {
        let text = field
            .strip_prefix(name)
            .and_then(|f| f.strip_prefix('='))
            .ok_or(bad("expected ln=N,r=R,p=P"))?;
        decimal(PHC, text, "ln, r and p must be decimal")
    };
    let (ln, r, p) = (value(ln, "ln")?, value(r, "r")?, value(p, "p")?);
    let salt = BASE64_NOPAD
        .decode(salt.as_bytes())
        .map_err(|_| bad("salt is not unpadded base64"))?;
    let hash = BASE64_NOPAD
        .decode(hash.as_bytes())
        .map_err(|_| bad("hash is not unpadded base64"))?;
    parsed(ln, r, p, salt, hash)
}

/// Django's `scrypt$N$salt$r$p$hash`.
fn parse_django(stored: &str) -> Result<Parsed, HashError> {
    let bad = |reason| malformed(DJANGO, reason);
    let mut fields = stored.split('$');
    let (Some("scrypt"), Some(n), Some(salt), Some(r), Some(p), Some(hash), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(bad("expected scrypt$N$salt$r$p$hash"));
    };
    let n = decimal(DJANGO, n, "N must be decimal")?;
    if n < 2 || !n.is_power_of_two() {
        return Err(bad("N must be a power of two"));
    }
    let (r, p) = (
        decimal(DJANGO, r, "r must be decimal")?,
        decimal(DJANGO, p, "p must be decimal")?,
    );
    if salt.is_empty() {
        return Err(bad("empty salt"));
    }
    let hash = BASE64
        .decode(hash.as_bytes())
        .map_err(|_| bad("hash is not base64"))?;
    let salt = salt.as_bytes().to_vec();
    parsed(n.trailing_zeros().into(), r, p, salt, hash)
}

fn parsed(ln: u64, r: u64, p: u64, salt: Vec<u8>, hash: Vec<u8>) -> Result<Parsed, HashError> {
    let too_big = |name, value| HashError::ParamOutOfBounds {
        name,
        value,
        max: u32::MAX.into(),
    };
    Ok(Parsed {
        log_n: u8::try_from(ln).map_err(|_| too_big("scrypt_ln", ln))?,
        r: u32::try_from(r).map_err(|_| too_big("scrypt_r", r))?,
        p: u32::try_from(p).map_err(|_| too_big("scrypt_p", p))?,
        salt,
        hash,
    })
}

/// One scrypt form: the PHC string (passlib, RustCrypto) or Django's `ScryptPasswordHasher`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scrypt {
    name: &'static str,
    prefix: &'static str,
    parse: fn(&str) -> Result<Parsed, HashError>,
}

impl Scrypt {
    /// `$scrypt$ln=..,r=..,p=..$salt$hash`.
    pub(super) const PHC: Self = Self {
        name: PHC,
        prefix: "$scrypt$",
        parse: parse_phc,
    };
    /// Django's `scrypt$salt$N$r$p$hash` form.
    pub(super) const DJANGO: Self = Self {
        name: DJANGO,
        prefix: "scrypt$",
        parse: parse_django,
    };
}

impl HashScheme for Scrypt {
    fn name(&self) -> &'static str {
        self.name
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with(self.prefix)
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        (self.parse)(stored)?.bound(self.name, limits)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let parsed = (self.parse)(stored)?;
        parsed.bound(self.name, limits)?;
        parsed.verify(self.name, password)
    }
}
