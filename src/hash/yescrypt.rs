//! yescrypt (`$y$`): the shadow default of Debian 11+, Ubuntu 22.04+ and Fedora 35+, written by
//! libxcrypt.
//!
//! Evaluated by RustCrypto's `yescrypt` crate (0.1), whose verifier reads the `$y$` string
//! itself (parameters, salt and hash in libxcrypt's encodings). keyward first decodes the
//! parameter field on its own, with checked arithmetic, so that N, r, p and t are bounded by
//! [`HashLimits`] before the crate allocates anything: the crate trusts its input and would
//! allocate 128·N·r bytes for whatever N the string names.
//!
//! Only yescrypt's native read-write flavor (encoded `j`, libxcrypt's `YESCRYPT_DEFAULTS`,
//! the only one libxcrypt writes) is accepted. Its p lanes share N between them, so p does not
//! multiply the time; the classic scrypt (0) and write-once (1) flavors run each lane over
//! the whole of N one after the other, and are refused as unsupported variants. The memory
//! bounded is all the crate allocates: 128·N·r (V) + 128·r·p (B) + 256·r (XY) bytes and
//! 12 KiB of S-boxes per lane.

use ::yescrypt::PasswordVerifier;

use super::error::BackendError;
use super::{HashError, HashLimits, HashScheme, SchemeMatch, bounded, is_crypt64, malformed};

const NAME: &str = "yescrypt";
/// The encoded flavor of libxcrypt's `YESCRYPT_DEFAULTS` (0xb6), written as `j`.
const RW_DEFAULTS: u32 = 47;
/// The pwxform S-boxes of one read-write lane, in bytes (`Sbytes`: 3 · 2^8 · 2 · 8).
const SBOX_BYTES: u128 = 12 * 1024;

/// The parameters a `$y$` string names, as encoded (`flavor` is the encoded value: libxcrypt's
/// `YESCRYPT_DEFAULTS`, 0xb6, is written as 47).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Params {
    flavor: u32,
    n_log2: u32,
    r: u32,
    p: u32,
    t: u32,
    g: u32,
}

/// The crypt(3) base64 alphabet's value of one character.
fn atoi64(c: u8) -> Option<u32> {
    let value = match c {
        b'.' => 0,
        b'/' => 1,
        b'0'..=b'9' => c - b'0' + 2,
        b'A'..=b'Z' => c - b'A' + 12,
        b'a'..=b'z' => c - b'a' + 38,
        _ => return None,
    };
    Some(value.into())
}

/// yescrypt's variable-width integer (`decode64_uint32` of the reference code), with every
/// step checked: returns the value and the rest of the input.
fn decode_uint(src: &[u8], min: u32) -> Option<(u32, &[u8])> {
    let (&first, mut rest) = src.split_first()?;
    let n = atoi64(first)?;
    let (mut start, mut end, mut chars, mut bits) = (0u32, 47u32, 1u32, 0u32);
    let mut dst = u64::from(min);
    while n > end {
        dst = dst.checked_add(u64::from(end + 1 - start).checked_shl(bits)?)?;
        start = end + 1;
        end = start + (62 - end) / 2;
        chars += 1;
        bits += 6;
    }
    dst = dst.checked_add(u64::from(n - start).checked_shl(bits)?)?;
    while chars > 1 {
        chars -= 1;
        let (&c, tail) = rest.split_first()?;
        rest = tail;
        bits = bits.checked_sub(6)?;
        dst = dst.checked_add(u64::from(atoi64(c)?).checked_shl(bits)?)?;
    }
    Some((u32::try_from(dst).ok()?, rest))
}

impl Params {
    fn parse(field: &str) -> Result<Self, HashError> {
        let bad = || malformed(NAME, "parameters are not yescrypt's encoding");
        let (flavor, rest) = decode_uint(field.as_bytes(), 0).ok_or_else(bad)?;
        let (n_log2, rest) = decode_uint(rest, 1).ok_or_else(bad)?;
        let (r, mut rest) = decode_uint(rest, 1).ok_or_else(bad)?;
        let (mut p, mut t, mut g) = (1, 0, 0);
        if !rest.is_empty() {
            let (have, tail) = decode_uint(rest, 1).ok_or_else(bad)?;
            rest = tail;
            if have & !0x07 != 0 {
                // 0x08 is a ROM, which a stored password hash cannot use.
                return Err(malformed(NAME, "unsupported parameter flags"));
            }
            for (bit, slot, min) in [(1, &mut p, 2), (2, &mut t, 1), (4, &mut g, 1)] {
                if have & bit != 0 {
                    let (value, tail) = decode_uint(rest, min).ok_or_else(bad)?;
                    *slot = value;
                    rest = tail;
                }
            }
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(Self {
            flavor,
            n_log2,
            r,
            p,
            t,
            g,
        })
    }

    fn bound(&self, limits: &HashLimits) -> Result<(), HashError> {
        if self.flavor != RW_DEFAULTS {
            return Err(HashError::UnsupportedVariant {
                scheme: NAME,
                variant: format!("flavor={}", self.flavor),
            });
        }
        if self.g != 0 {
            return Err(HashError::UnsupportedVariant {
                scheme: NAME,
                variant: format!("g={}", self.g),
            });
        }
        bounded("yescrypt_n_log2", self.n_log2.into(), 32)?;
        bounded("yescrypt_r", self.r.into(), limits.max_yescrypt_r.into())?;
        bounded("yescrypt_p", self.p.into(), limits.max_yescrypt_p.into())?;
        bounded("yescrypt_t", self.t.into(), limits.max_yescrypt_t.into())?;
        // N ≤ 2^32, r and p < 2^32: cannot overflow u128.
        let (n, r, p) = (1u128 << self.n_log2, u128::from(self.r), u128::from(self.p));
        let bytes = 128 * n * r + 128 * r * p + 256 * r + SBOX_BYTES * p;
        let kib = u64::try_from(bytes.div_ceil(1024)).unwrap_or(u64::MAX);
        bounded("yescrypt_kib", kib, limits.max_yescrypt_kib.into())?;
        Ok(())
    }
}

/// `$y$<params>$<salt>$<hash>`.
fn split(stored: &str) -> Result<(Params, &str), HashError> {
    let rest = stored
        .strip_prefix("$y$")
        .ok_or(malformed(NAME, "expected $y$"))?;
    let mut fields = rest.split('$');
    let (Some(params), Some(salt), Some(hash), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed(NAME, "expected $y$params$salt$hash"));
    };
    if params.is_empty() || !is_crypt64(salt) || salt.len() > 86 {
        return Err(malformed(
            NAME,
            "salt must be at most 86 characters of ./0-9A-Za-z",
        ));
    }
    if hash.len() != 43 || !is_crypt64(hash) {
        return Err(malformed(NAME, "hash must be 43 characters of ./0-9A-Za-z"));
    }
    Ok((Params::parse(params)?, params))
}

/// yescrypt `$y$`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Yescrypt;

impl HashScheme for Yescrypt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$y$")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        let (params, field) = split(stored)?;
        params.bound(limits)?;
        // Bounded: the crate's own decoder may now see it (it rejects unknown flavors).
        (field.parse::<::yescrypt::Params>())
            .map(drop)
            .map_err(|_| malformed(NAME, "parameters rejected by the yescrypt decoder"))
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        self.check(stored, limits)?;
        match ::yescrypt::Yescrypt::default().verify_password(password, stored) {
            Ok(()) => Ok(SchemeMatch::Match),
            Err(::yescrypt::password_hash::Error::PasswordInvalid) => Ok(SchemeMatch::NoMatch),
            Err(
                ::yescrypt::password_hash::Error::EncodingInvalid
                | ::yescrypt::password_hash::Error::ParamsInvalid
                | ::yescrypt::password_hash::Error::SaltInvalid
                | ::yescrypt::password_hash::Error::Algorithm,
            ) => Err(malformed(NAME, "rejected by the yescrypt decoder")),
            Err(e) => Err(HashError::Backend {
                scheme: NAME,
                source: BackendError::new(e),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_decode_as_libxcrypt_writes_them() {
        // `$y$j9T$`: libxcrypt's default (flavor YESCRYPT_DEFAULTS = 0xb6, N = 2^12, r = 32).
        let p = Params::parse("j9T").unwrap();
        assert_eq!((p.flavor, p.n_log2, p.r, p.p, p.t), (47, 12, 32, 1, 0));
        // `j75`: N = 2^10, r = 8.
        let p = Params::parse("j75").unwrap();
        assert_eq!((p.n_log2, p.r), (10, 8));
        assert!(Params::parse("j9T!").is_err());
        assert!(Params::parse("j9T/").is_err(), "flag 0x08 (a ROM)");
        assert!(Params::parse("").is_err());
        assert!(Params::parse("jzzzzzzzzzzzzz").is_err());
    }

    /// Small parameter fields of every flavor, flag and value the encoding allows: each
    /// verifies, is refused, or is bounded, and none panics.
    #[test]
    fn odd_small_parameters_never_panic() {
        let limits = HashLimits {
            max_yescrypt_kib: 64,
            ..HashLimits::DEFAULT
        };
        let alphabet = ['.', '/', '0', '5', 'j', 'z', 'E', '9'];
        let hash = "Cw3H19laQT.rHIYMLvuoUzLb8st7PboO9rfxAylYPx9";
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for tail in ["", "0", "1.", "3..", "5/", "7..."] {
                        let stored = format!("$y${a}{b}{c}{tail}$salt${hash}");
                        let _ = Yescrypt.verify(b"pw", &stored, &limits);
                    }
                }
            }
        }
    }
}
