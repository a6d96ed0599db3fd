//! PBKDF2-HMAC in two common stored forms:
//!
//! - Django's `pbkdf2_sha256$<iterations>$<salt>$<hash>` and `pbkdf2_sha1$...` (salt as text,
//!   hash in padded standard base64, `django.contrib.auth.hashers`);
//! - passlib's `$pbkdf2-sha256$<rounds>$<salt>$<hash>`, `$pbkdf2-sha512$...` and `$pbkdf2$...`
//!   (SHA-1), with salt and hash in passlib's "adapted base64" (`.` for `+`, no padding).
//!
//! Evaluated by RustCrypto's `pbkdf2` after the iteration count is bounded by
//! [`HashLimits::max_pbkdf2_iterations`]. The derived key is as long as the digest, as both
//! write it.

use data_encoding::{BASE64, BASE64_NOPAD};
use sha1::Sha1;
use sha2::{Sha256, Sha512};
use zeroize::Zeroizing;

use super::{HashError, HashLimits, HashScheme, SchemeMatch, bounded, ct_eq, malformed};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prf {
    Sha1,
    Sha256,
    Sha512,
}

impl Prf {
    /// How many HMAC-SHA-256 iterations one iteration costs, for the bound.
    fn weight(self) -> u32 {
        match self {
            Self::Sha1 | Self::Sha256 => 1,
            Self::Sha512 => 4,
        }
    }

    fn output_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn derive(self, password: &[u8], salt: &[u8], rounds: u32) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(vec![0u8; self.output_len()]);
        match self {
            Self::Sha1 => ::pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, rounds, &mut out),
            Self::Sha256 => ::pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, rounds, &mut out),
            Self::Sha512 => ::pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, rounds, &mut out),
        }
        out
    }
}

/// A parsed PBKDF2 hash.
struct Parsed {
    rounds: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

/// `<tag><rounds>$<salt>$<hash>` split into its three fields after `tag`.
fn fields<'a>(
    scheme: &'static str,
    stored: &'a str,
    tag: &str,
) -> Result<(u64, &'a str, &'a str), HashError> {
    let rest = stored
        .strip_prefix(tag)
        .ok_or(malformed(scheme, "wrong prefix"))?;
    let mut fields = rest.split('$');
    let (Some(rounds), Some(salt), Some(hash), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(scheme, "expected iterations$salt$hash"));
    };
    if rounds.is_empty() || rounds.len() > 20 || !rounds.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(scheme, "iterations must be decimal"));
    }
    if salt.is_empty() {
        return Err(malformed(scheme, "empty salt"));
    }
    // All digits, at most 20: only overflow fails, which is out of any bound.
    Ok((rounds.parse().unwrap_or(u64::MAX), salt, hash))
}

fn bound(
    scheme: &'static str,
    prf: Prf,
    parsed: &Parsed,
    limits: &HashLimits,
) -> Result<(), HashError> {
    if parsed.rounds == 0 {
        return Err(HashError::ParamBelowMinimum {
            name: "pbkdf2_iterations",
            value: 0,
            min: 1,
        });
    }
    bounded(
        "pbkdf2_iterations",
        parsed.rounds.into(),
        (limits.max_pbkdf2_iterations / prf.weight()).into(),
    )?;
    if parsed.hash.len() != prf.output_len() {
        return Err(malformed(scheme, "hash has the wrong length"));
    }
    Ok(())
}

fn rounds(value: u64) -> Result<u32, HashError> {
    u32::try_from(value).map_err(|_| HashError::ParamOutOfBounds {
        name: "pbkdf2_iterations",
        value,
        max: u32::MAX.into(),
    })
}

/// How a form writes its salt and hash.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    /// Django: the salt as text, the hash in padded base64.
    Django,
    /// passlib: both in its adapted base64.
    Passlib,
}

/// One PBKDF2 form: Django's `pbkdf2_sha256$` / `pbkdf2_sha1$`, passlib's `$pbkdf2$` (SHA-1),
/// `$pbkdf2-sha256$`, `$pbkdf2-sha512$`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pbkdf2 {
    name: &'static str,
    tag: &'static str,
    prf: Prf,
    encoding: Encoding,
}

/// passlib's adapted base64: standard base64 with `.` for `+`, no padding.
fn ab64_decode(text: &str) -> Option<Vec<u8>> {
    if text.contains('+') {
        return None;
    }
    BASE64_NOPAD.decode(text.replace('.', "+").as_bytes()).ok()
}

impl Pbkdf2 {
    pub(super) const DJANGO_SHA256: Self = Self::new(
        "django-pbkdf2-sha256",
        "pbkdf2_sha256$",
        Prf::Sha256,
        Encoding::Django,
    );
    pub(super) const DJANGO_SHA1: Self = Self::new(
        "django-pbkdf2-sha1",
        "pbkdf2_sha1$",
        Prf::Sha1,
        Encoding::Django,
    );
    pub(super) const PASSLIB_SHA1: Self =
        Self::new("pbkdf2-sha1", "$pbkdf2$", Prf::Sha1, Encoding::Passlib);
    pub(super) const PASSLIB_SHA256: Self = Self::new(
        "pbkdf2-sha256",
        "$pbkdf2-sha256$",
        Prf::Sha256,
        Encoding::Passlib,
    );
    pub(super) const PASSLIB_SHA512: Self = Self::new(
        "pbkdf2-sha512",
        "$pbkdf2-sha512$",
        Prf::Sha512,
        Encoding::Passlib,
    );

    const fn new(name: &'static str, tag: &'static str, prf: Prf, encoding: Encoding) -> Self {
        Self {
            name,
            tag,
            prf,
            encoding,
        }
    }

    fn parse(&self, stored: &str, limits: &HashLimits) -> Result<Parsed, HashError> {
        let (n, salt, hash) = fields(self.name, stored, self.tag)?;
        let (salt, hash) = match self.encoding {
            Encoding::Django => {
                let hash = BASE64
                    .decode(hash.as_bytes())
                    .map_err(|_| malformed(self.name, "hash is not padded base64"))?;
                (salt.as_bytes().to_vec(), hash)
            }
            Encoding::Passlib => {
                let bad = || malformed(self.name, "salt or hash is not passlib's adapted base64");
                (
                    ab64_decode(salt).ok_or_else(bad)?,
                    ab64_decode(hash).ok_or_else(bad)?,
                )
            }
        };
        let parsed = Parsed {
            rounds: rounds(n)?,
            salt,
            hash,
        };
        bound(self.name, self.prf, &parsed, limits)?;
        Ok(parsed)
    }
}

impl HashScheme for Pbkdf2 {
    fn name(&self) -> &'static str {
        self.name
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with(self.tag)
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        self.parse(stored, limits).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let p = self.parse(stored, limits)?;
        Ok(ct_eq(&self.prf.derive(password, &p.salt, p.rounds), &p.hash).into())
    }
}
