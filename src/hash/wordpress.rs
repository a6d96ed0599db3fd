//! WordPress: phpass portable hashes (`$P$`, and phpBB's `$H$`), WordPress 6.8+ `$wp$` bcrypt
//! over an HMAC-SHA384 pre-hash. (Pre-2.5 bare MD5 is [`super::salted::PlainMd5`].)

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use sha2::Sha384;

use super::crypt::crypt64;
use super::error::BackendError;
use super::malformed;
use super::{
    HashError, HashLimits, HashScheme, SchemeMatch, bcrypt, bounded, bounded_work, ct_eq,
    is_crypt64,
};

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// phpass's own bounds on the iteration count's log2.
const PHPASS_MIN_LOG2: u32 = 7;
const PHPASS_MAX_LOG2: u32 = 30;

/// phpass portable hashes: `$P$` or `$H$`, one character of log2(iterations), 8 of salt and 22
/// of digest (34 in all).
///
/// Hand-written because no maintained crate implements it; it is a loop of MD5 (from `md-5`)
/// whose output is encoded with `data-encoding` and compared with `subtle`, as in
/// `PasswordHash::crypt_private` of phpass 0.5 (Solar Designer, public domain), which
/// WordPress ships as `wp-includes/class-phpass.php`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Phpass;

impl Phpass {
    const NAME: &'static str = "phpass";

    fn log2(stored: &str, limits: &HashLimits) -> Result<u32, HashError> {
        if stored.len() != 34 || !is_crypt64(stored.get(3..).unwrap_or_default()) {
            return Err(malformed(Self::NAME, "expected 34 characters"));
        }
        Self::setting_log2(stored.get(..12).unwrap_or_default(), limits)
    }

    /// The bounded log2 of a 12-character setting (`$P$` + count + 8 of salt).
    pub(super) fn setting_log2(setting: &str, limits: &HashLimits) -> Result<u32, HashError> {
        let magic = setting.get(..3);
        if setting.len() != 12
            || !matches!(magic, Some("$P$" | "$H$"))
            || !is_crypt64(setting.get(3..).unwrap_or_default())
        {
            return Err(malformed(Self::NAME, "expected $P$ and 9 characters"));
        }
        let c = setting.as_bytes().get(3).copied().unwrap_or_default();
        let log2 = ITOA64.iter().position(|&x| x == c).unwrap_or_default();
        let log2 = u32::try_from(log2).unwrap_or(u32::MAX);
        if log2 < PHPASS_MIN_LOG2 {
            return Err(HashError::ParamBelowMinimum {
                name: "phpass_log2",
                value: log2.into(),
                min: PHPASS_MIN_LOG2.into(),
            });
        }
        bounded(
            "phpass_log2",
            log2.into(),
            limits.max_phpass_log2.min(PHPASS_MAX_LOG2).into(),
        )?;
        Ok(log2)
    }

    /// The encoded digest (22 characters) of `password` under a bounded setting.
    pub(super) fn digest(
        setting: &str,
        password: &[u8],
        limits: &HashLimits,
    ) -> Result<String, HashError> {
        let log2 = Self::setting_log2(setting, limits)?;
        let max = limits.max_phpass_log2.min(PHPASS_MAX_LOG2);
        bounded_work(1 << log2, 1 << max, password.len())?;
        let salt = setting
            .get(4..12)
            .ok_or(malformed(Self::NAME, "missing salt"))?;
        let mut hash = Md5::new()
            .chain_update(salt)
            .chain_update(password)
            .finalize();
        for _ in 0..(1u64 << log2) {
            hash = Md5::new()
                .chain_update(hash)
                .chain_update(password)
                .finalize();
        }
        Ok(crypt64()?.encode(&hash))
    }
}

impl HashScheme for Phpass {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$P$") || stored.starts_with("$H$")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        Self::log2(stored, limits).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        Self::log2(stored, limits)?;
        let (setting, expected) = stored
            .split_at_checked(12)
            .ok_or(malformed(Self::NAME, "missing digest"))?;
        let encoded = Self::digest(setting, password, limits)?;
        Ok(ct_eq(encoded.as_bytes(), expected.as_bytes()).into())
    }
}

/// WordPress 6.8+: `$wp` + a bcrypt string computed over
/// base64(HMAC-SHA384(key = "wp-sha384", password)), as in `wp_check_password` of
/// `wp-includes/pluggable.php` (WordPress 6.8). The pre-hash keeps the entropy of passwords
/// longer than bcrypt's 72 bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct WpBcrypt;

impl WpBcrypt {
    const NAME: &'static str = "wordpress-bcrypt";

    fn inner(stored: &str) -> &str {
        stored.get(3..).unwrap_or_default()
    }
}

impl HashScheme for WpBcrypt {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$wp$")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        bcrypt::check(Self::NAME, Self::inner(stored), limits)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        self.check(stored, limits)?;
        let mut mac = <Hmac<Sha384> as KeyInit>::new_from_slice(b"wp-sha384").map_err(|e| {
            HashError::Backend {
                scheme: Self::NAME,
                source: BackendError::new(e),
            }
        })?;
        mac.update(password);
        let prehash = zeroize::Zeroizing::new(BASE64.encode(&mac.finalize().into_bytes()));
        bcrypt::verify(Self::NAME, prehash.as_bytes(), Self::inner(stored), limits)
    }
}
