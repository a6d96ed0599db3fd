//! TOTP building blocks (RFC 6238): configuration, secret generation, code verification,
//! enrollment (`otpauth://` URI and QR code) and sealing of secrets at rest.
//!
//! Everything here is pure logic over explicit inputs: the caller passes the instant (from a
//! [`Clock`](crate::Clock)) and the secret. Replay protection is *not* here: [`verify`]
//! returns the matched time step, and the caller must ask the store to accept that step only
//! if it is newer than the last accepted one, atomically.
//!
//! ```
//! use keyward::totp::{self, TotpCheck, TotpConfig};
//! use time::macros::datetime;
//!
//! # fn main() -> Result<(), keyward::totp::TotpError> {
//! let config = TotpConfig::DEFAULT.with_issuer("Example Co")?;
//! let enrollment = totp::enroll(&config, "alice@example.com")?;
//! // Show `enrollment.expose_qr_svg()` to the user, store the sealed secret...
//! let now = datetime!(2026-03-01 12:00:00 UTC);
//! let code = totp::code_at(&config, enrollment.secret(), now)?; // what the app would show
//! match totp::verify(&config, enrollment.secret(), &code, now)? {
//!     TotpCheck::Matched { step } => { /* ask the store to accept `step` if newer */ }
//!     TotpCheck::Mismatch | TotpCheck::Malformed(_) => { /* deny */ }
//!     _ => { /* future outcomes: deny */ }
//! }
//! # Ok(()) }
//! ```

mod error;
pub mod recovery_codes;
mod seal;
mod uri;

pub use error::{MalformedCode, OtpauthUriError, TotpError};
pub use seal::{StoredTotpSecret, TotpSealer};
pub use uri::{MAX_URI_LEN, OtpauthUri};

use std::fmt;

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use rand::TryRngCore;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::secret::{OneTimeCode, TotpSecret};

/// Smallest accepted shared secret: 16 bytes (128 bits), the RFC 4226 section 4 minimum.
pub const MIN_SECRET_LEN: usize = 16;
/// Largest accepted shared secret: 128 bytes.
pub const MAX_SECRET_LEN: usize = 128;
/// Smallest accepted period: 1 second (only useful for tests and HOTP vectors).
pub const MIN_PERIOD: u32 = 1;
/// Largest accepted period: 300 seconds.
pub const MAX_PERIOD: u32 = 300;
/// Largest accepted skew: 10 steps either side.
pub const MAX_SKEW: u8 = 10;
/// Largest accepted issuer or account name, in bytes.
pub const MAX_NAME_LEN: usize = 256;

/// The HMAC hash function of a TOTP configuration (RFC 6238 section 1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TotpAlgorithm {
    /// HMAC-SHA-1, the default: the only algorithm every authenticator app implements (some
    /// silently use SHA-1 whatever the URI says). HMAC-SHA-1 is not weakened by SHA-1
    /// collisions (RFC 4226 appendix B.2).
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl TotpAlgorithm {
    /// The name used in `otpauth://` URIs: `SHA1`, `SHA256` or `SHA512`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// The secret length [`generate_secret`] uses: the hash's output size, as RFC 4226
    /// section 4 recommends and the RFC 6238 reference code uses (20, 32 and 64 bytes).
    #[must_use]
    pub const fn secret_len(self) -> usize {
        match self {
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    /// Parses a URI algorithm name, ignoring ASCII case.
    fn from_name(name: &str) -> Option<Self> {
        [Self::Sha1, Self::Sha256, Self::Sha512]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    const fn to_totp_rs(self) -> totp_rs::Algorithm {
        match self {
            Self::Sha1 => totp_rs::Algorithm::SHA1,
            Self::Sha256 => totp_rs::Algorithm::SHA256,
            Self::Sha512 => totp_rs::Algorithm::SHA512,
        }
    }
}

impl fmt::Display for TotpAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How codes are computed and how much clock drift is tolerated. Plain, validated data.
///
/// | field | default | accepted |
/// |---|---|---|
/// | algorithm | SHA-1 | SHA-1, SHA-256, SHA-512 |
/// | digits | 6 | 6 or 8 |
/// | period | 30 s | 1 to 300 s |
/// | skew | 1 step either side of now | 0 to 10 |
/// | issuer | none | 1 to 256 bytes, no control characters, no outer spaces |
///
/// The defaults are those of RFC 6238 section 5.2 and what every authenticator app supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpConfig {
    algorithm: TotpAlgorithm,
    digits: u8,
    period: u32,
    skew: u8,
    issuer: Option<String>,
}

impl TotpConfig {
    /// SHA-1, 6 digits, 30-second period, 1 step of skew, no issuer.
    pub const DEFAULT: Self = Self {
        algorithm: TotpAlgorithm::Sha1,
        digits: 6,
        period: 30,
        skew: 1,
        issuer: None,
    };

    /// A configuration without issuer.
    ///
    /// # Errors
    /// [`TotpError::InvalidDigits`] unless `digits` is 6 or 8, [`TotpError::InvalidPeriod`]
    /// unless `period` (seconds) is within 1..=300, [`TotpError::InvalidSkew`] if `skew`
    /// exceeds 10.
    pub fn new(
        algorithm: TotpAlgorithm,
        digits: u8,
        period: u32,
        skew: u8,
    ) -> Result<Self, TotpError> {
        if digits != 6 && digits != 8 {
            return Err(TotpError::InvalidDigits { digits });
        }
        if !(MIN_PERIOD..=MAX_PERIOD).contains(&period) {
            return Err(TotpError::InvalidPeriod {
                period,
                min: MIN_PERIOD,
                max: MAX_PERIOD,
            });
        }
        if skew > MAX_SKEW {
            return Err(TotpError::InvalidSkew {
                skew,
                max: MAX_SKEW,
            });
        }
        Ok(Self {
            algorithm,
            digits,
            period,
            skew,
            issuer: None,
        })
    }

    /// The same configuration naming `issuer` (the service, shown by authenticator apps).
    /// Issuers may contain any printable text, colons included; URIs escape it.
    ///
    /// # Errors
    /// [`TotpError::InvalidName`] if the issuer is empty, longer than 256 bytes, has leading
    /// or trailing whitespace, or contains control characters.
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Result<Self, TotpError> {
        let issuer = issuer.into();
        validate_name("issuer", &issuer)?;
        self.issuer = Some(issuer);
        Ok(self)
    }

    /// The HMAC hash function.
    #[must_use]
    pub const fn algorithm(&self) -> TotpAlgorithm {
        self.algorithm
    }

    /// Digits per code: 6 or 8.
    #[must_use]
    pub const fn digits(&self) -> u8 {
        self.digits
    }

    /// Length of a time step in seconds.
    #[must_use]
    pub const fn period(&self) -> u32 {
        self.period
    }

    /// Steps either side of the current one that [`verify`] accepts.
    #[must_use]
    pub const fn skew(&self) -> u8 {
        self.skew
    }

    /// The issuer, if any.
    #[must_use]
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }
}

impl Default for TotpConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Issuer and account names: non-empty, bounded, printable, no outer whitespace (so that the
/// optional spaces after the label colon can be trimmed when parsing).
pub(crate) fn validate_name(field: &'static str, name: &str) -> Result<(), TotpError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME_LEN {
        "longer than 256 bytes"
    } else if name.chars().any(char::is_control) {
        "contains control characters"
    } else if name.trim() != name {
        "has leading or trailing whitespace"
    } else {
        return Ok(());
    };
    Err(TotpError::InvalidName { field, reason })
}

fn check_secret_len(len: usize) -> Result<(), TotpError> {
    if (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&len) {
        Ok(())
    } else {
        Err(TotpError::SecretLength {
            len,
            min: MIN_SECRET_LEN,
            max: MAX_SECRET_LEN,
        })
    }
}

/// Fills `buf` from the operating system's random source.
pub(crate) fn os_random(buf: &mut [u8]) -> Result<(), TotpError> {
    rand::rngs::OsRng
        .try_fill_bytes(buf)
        .map_err(|_| TotpError::Random)
}

/// A fresh shared secret from the operating system's random source, of
/// [`TotpAlgorithm::secret_len`] bytes (20, 32 or 64: always at least 160 bits).
///
/// # Errors
/// [`TotpError::Random`] if the operating system's random source fails.
pub fn generate_secret(config: &TotpConfig) -> Result<TotpSecret, TotpError> {
    let mut bytes = Zeroizing::new(vec![0_u8; config.algorithm.secret_len()]);
    os_random(&mut bytes)?;
    Ok(TotpSecret::from_bytes(std::mem::take(&mut *bytes)))
}

/// The RFC 6238 time step containing `at`: `floor(unix_seconds / period)`.
///
/// # Errors
/// [`TotpError::TimeBeforeEpoch`] if `at` is before 1970-01-01T00:00:00Z.
pub fn step_at(config: &TotpConfig, at: OffsetDateTime) -> Result<u64, TotpError> {
    Ok(unix_seconds(at)? / u64::from(config.period))
}

fn unix_seconds(at: OffsetDateTime) -> Result<u64, TotpError> {
    u64::try_from(at.unix_timestamp()).map_err(|_| TotpError::TimeBeforeEpoch)
}

fn engine(config: &TotpConfig, secret: &TotpSecret) -> Result<totp_rs::Totp, TotpError> {
    let bytes = secret.expose_secret();
    check_secret_len(bytes.len())?;
    totp_rs::Builder::new()
        .with_algorithm(config.algorithm.to_totp_rs())
        .with_digits(config.digits)
        .with_skew(u16::from(config.skew))
        .with_step_duration(u64::from(config.period))
        .with_secret(bytes)
        .build()
        // Every parameter was validated above and by `TotpConfig::new`; the builder applies
        // the same rules, so this only maps an impossible case to the closest error.
        .map_err(|_| TotpError::SecretLength {
            len: bytes.len(),
            min: MIN_SECRET_LEN,
            max: MAX_SECRET_LEN,
        })
}

/// The code an authenticator app shows at `at`: for tests, examples and fallback delivery.
///
/// # Errors
/// [`TotpError::SecretLength`] if the secret is shorter than 16 or longer than 128 bytes,
/// [`TotpError::TimeBeforeEpoch`] if `at` is before the Unix epoch.
pub fn code_at(
    config: &TotpConfig,
    secret: &TotpSecret,
    at: OffsetDateTime,
) -> Result<OneTimeCode, TotpError> {
    let totp = engine(config, secret)?;
    let seconds = unix_seconds(at)?;
    Ok(OneTimeCode::new(totp.generate(seconds).to_string()))
}

/// Normalizes a user-typed code: removes whitespace (apps show `123 456`), then requires
/// exactly [`TotpConfig::digits`] ASCII digits.
///
/// # Errors
/// [`TotpError::MalformedCode`] with [`MalformedCode::NotDigits`] or
/// [`MalformedCode::WrongLength`]. The error never contains the input.
pub fn normalize_code(config: &TotpConfig, input: &str) -> Result<OneTimeCode, TotpError> {
    let expected = config.digits;
    let mut code = Zeroizing::new(String::with_capacity(usize::from(expected)));
    let mut found = 0_usize;
    for c in input.chars().filter(|c| !c.is_whitespace()) {
        if !c.is_ascii_digit() {
            return Err(MalformedCode::NotDigits.into());
        }
        found += 1;
        if found <= usize::from(expected) {
            code.push(c);
        }
    }
    if found != usize::from(expected) {
        return Err(MalformedCode::WrongLength { expected, found }.into());
    }
    Ok(OneTimeCode::new(std::mem::take(&mut *code)))
}

/// The outcome of [`verify`]. A wrong or malformed code is an ordinary outcome, not an error.
#[must_use = "a TOTP check must be handled: only `Matched` may sign the user in"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TotpCheck {
    /// The code is that of time step `step`, within the skew window. Accept it only if the
    /// store atomically records `step` as newer than the last accepted step (RFC 6238
    /// section 5.2: a code must be accepted once).
    Matched {
        /// The matched RFC 6238 time step (`unix_seconds / period`).
        step: u64,
    },
    /// A well-formed code that matches no step in the window.
    Mismatch,
    /// The input is not a code at all (wrong length or not digits).
    Malformed(MalformedCode),
}

/// Checks a user-typed code against the steps `now - skew ..= now + skew`.
///
/// The input is normalized with [`normalize_code`] first. Each candidate is compared in
/// constant time (through `totp-rs`, whose token equality is constant-time); the scan stops at
/// the first match, which reveals only which step matched, something the caller learns anyway.
///
/// # Errors
/// [`TotpError::SecretLength`] if the stored secret is shorter than 16 or longer than 128
/// bytes, [`TotpError::TimeBeforeEpoch`] if `now` is before the Unix epoch. A wrong or
/// malformed code is *not* an error: see [`TotpCheck`].
pub fn verify(
    config: &TotpConfig,
    secret: &TotpSecret,
    code: &OneTimeCode,
    now: OffsetDateTime,
) -> Result<TotpCheck, TotpError> {
    let totp = engine(config, secret)?;
    let seconds = unix_seconds(now)?;
    let code = match normalize_code(config, code.expose_secret()) {
        Ok(code) => code,
        Err(TotpError::MalformedCode(why)) => return Ok(TotpCheck::Malformed(why)),
        Err(other) => return Err(other),
    };
    Ok(match totp.check(code.expose_secret(), seconds) {
        Some(step) => TotpCheck::Matched { step },
        None => TotpCheck::Mismatch,
    })
}

/// What a user needs to add an account to an authenticator app, built by [`enroll`].
///
/// Every field reveals the secret (the URI and the QR code encode it), hence the `expose_`
/// accessors. `Debug` shows only the account name.
pub struct Enrollment {
    account: String,
    secret: TotpSecret,
    uri: Zeroizing<String>,
    qr_svg: Zeroizing<String>,
}

impl Enrollment {
    /// Builds the enrollment for an existing secret (for example to show the QR code again
    /// before the first code is confirmed).
    ///
    /// # Errors
    /// [`TotpError::InvalidName`] for an invalid account name, [`TotpError::SecretLength`] for
    /// a secret outside 16..=128 bytes, [`TotpError::QrCode`] if the URI does not fit in a QR
    /// code.
    pub fn from_secret(
        config: &TotpConfig,
        account: &str,
        secret: TotpSecret,
    ) -> Result<Self, TotpError> {
        let uri = OtpauthUri::new(
            config.clone(),
            account,
            TotpSecret::from_bytes(secret.expose_secret().to_vec()),
        )?;
        let text = uri.to_uri_string();
        let qr = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|_| TotpError::QrCode)?;
        let qr_svg = qr
            .render::<svg::Color<'_>>()
            .min_dimensions(256, 256)
            .quiet_zone(true)
            .build();
        Ok(Self {
            account: account.to_owned(),
            secret,
            uri: text,
            qr_svg: Zeroizing::new(qr_svg),
        })
    }

    /// The account name the enrollment is for.
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The new shared secret: seal it with [`TotpSealer::seal`] before storing it.
    #[must_use]
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// Takes the secret out of the enrollment.
    #[must_use]
    pub fn into_secret(self) -> TotpSecret {
        self.secret
    }

    /// The `otpauth://totp/...` URI (contains the secret in base32).
    #[must_use]
    pub fn expose_uri(&self) -> &str {
        &self.uri
    }

    /// The URI as a QR code, a standalone SVG document (encodes the secret).
    #[must_use]
    pub fn expose_qr_svg(&self) -> &str {
        &self.qr_svg
    }
}

impl fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrollment")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// Starts enrollment: generates a secret with [`generate_secret`] and builds its
/// `otpauth://` URI and QR code for `account` (for example the user's email address).
///
/// # Errors
/// [`TotpError::InvalidName`] for an invalid account name (same rules as issuers),
/// [`TotpError::Random`] if the random source fails, [`TotpError::QrCode`] if the URI does not
/// fit in a QR code.
pub fn enroll(config: &TotpConfig, account: &str) -> Result<Enrollment, TotpError> {
    validate_name("account name", account)?;
    Enrollment::from_secret(config, account, generate_secret(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn config_validation() {
        assert!(TotpConfig::new(TotpAlgorithm::Sha1, 7, 30, 1).is_err());
        assert!(TotpConfig::new(TotpAlgorithm::Sha1, 6, 0, 1).is_err());
        assert!(TotpConfig::new(TotpAlgorithm::Sha1, 6, 301, 1).is_err());
        assert!(TotpConfig::new(TotpAlgorithm::Sha1, 6, 30, 11).is_err());
        assert_eq!(
            TotpConfig::new(TotpAlgorithm::Sha1, 6, 30, 1).ok(),
            Some(TotpConfig::DEFAULT)
        );
        assert!(TotpConfig::DEFAULT.with_issuer(" x").is_err());
        assert!(TotpConfig::DEFAULT.with_issuer("").is_err());
        assert!(TotpConfig::DEFAULT.with_issuer("a\nb").is_err());
        assert!(TotpConfig::DEFAULT.with_issuer("ACME: Corp & Co").is_ok());
    }

    #[test]
    fn secret_sizes_follow_the_hash() {
        for (alg, len) in [
            (TotpAlgorithm::Sha1, 20),
            (TotpAlgorithm::Sha256, 32),
            (TotpAlgorithm::Sha512, 64),
        ] {
            let config = TotpConfig::new(alg, 6, 30, 1).expect("valid");
            let a = generate_secret(&config).expect("rng");
            let b = generate_secret(&config).expect("rng");
            assert_eq!(a.expose_secret().len(), len);
            assert_ne!(a.expose_secret(), b.expose_secret());
        }
    }

    #[test]
    fn normalization() {
        let c = TotpConfig::DEFAULT;
        assert_eq!(
            normalize_code(&c, " 123 456 ").expect("ok").expose_secret(),
            "123456"
        );
        assert!(matches!(
            normalize_code(&c, "12345"),
            Err(TotpError::MalformedCode(MalformedCode::WrongLength {
                expected: 6,
                found: 5
            }))
        ));
        assert!(matches!(
            normalize_code(&c, "12345a"),
            Err(TotpError::MalformedCode(MalformedCode::NotDigits))
        ));
        assert!(
            normalize_code(&c, "١٢٣٤٥٦").is_err(),
            "non-ASCII digits are rejected"
        );
        assert!(normalize_code(&c, "+12345").is_err());
    }

    #[test]
    fn short_secret_and_pre_epoch_are_errors() {
        let short = TotpSecret::from_bytes(vec![1; 15]);
        let now = datetime!(2026-01-01 00:00 UTC);
        assert!(matches!(
            code_at(&TotpConfig::DEFAULT, &short, now),
            Err(TotpError::SecretLength { len: 15, .. })
        ));
        assert!(matches!(
            code_at(
                &TotpConfig::DEFAULT,
                &rfc_secret(),
                datetime!(1969-12-31 23:59:59 UTC)
            ),
            Err(TotpError::TimeBeforeEpoch)
        ));
    }

    #[test]
    fn enrollment_debug_hides_secret() {
        let config = TotpConfig::DEFAULT.with_issuer("Example").expect("valid");
        let e = enroll(&config, "alice").expect("enroll");
        let b32 = e.secret().to_base32();
        let shown = format!("{e:?} {e:#?}");
        assert!(!shown.contains(b32.as_str()));
        assert!(!shown.contains("otpauth"));
        assert!(e.expose_uri().contains(b32.as_str()));
        assert!(e.expose_qr_svg().starts_with("<?xml"));
    }
}
