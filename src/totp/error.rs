//! The TOTP errors: configuration, codes, sealing.

use thiserror::Error;

/// Why a user-typed one-time code is not even a candidate: never contains the code itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MalformedCode {
    /// After removing spaces the code has the wrong number of digits.
    #[error("a code must have {expected} digits, got {found} characters")]
    WrongLength {
        /// Digits the configuration asks for (6 or 8).
        expected: u8,
        /// Characters found after removing spaces.
        found: usize,
    },
    /// The code contains something other than ASCII digits and spaces.
    #[error("a code must contain only the digits 0-9")]
    NotDigits,
}

/// What is wrong with an `otpauth://` URI. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OtpauthUriError {
    /// The input is longer than the parser accepts.
    #[error("URI is {len} bytes long, at most {max} are accepted")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The URI does not start with `otpauth://`.
    #[error("URI scheme must be otpauth")]
    Scheme,
    /// The OTP type is not `totp` (HOTP and vendor types are not supported).
    #[error("unsupported OTP type {found:?}, only totp is supported")]
    UnsupportedType {
        /// The type found if it is a word of at most 8 ASCII letters and digits, else empty.
        found: String,
    },
    /// The label (issuer and account name) is missing or empty.
    #[error("the label has no account name")]
    MissingAccount,
    /// A component is not valid percent-encoded UTF-8, or contains control characters.
    #[error("the {field} is not valid percent-encoded text")]
    BadEncoding {
        /// Which component: `label`, or the parameter name.
        field: &'static str,
    },
    /// A parameter appears twice.
    #[error("parameter {name} appears more than once")]
    DuplicateParameter {
        /// The parameter name.
        name: &'static str,
    },
    /// The `secret` parameter is missing.
    #[error("the secret parameter is missing")]
    MissingSecret,
    /// The `secret` parameter is not base32.
    #[error("the secret parameter is not valid base32")]
    SecretEncoding,
    /// The `algorithm` parameter names no supported algorithm.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The `digits` or `period` parameter is not a number.
    #[error("the {name} parameter is not a number")]
    NotANumber {
        /// `digits` or `period`.
        name: &'static str,
    },
    /// The label's issuer prefix and the `issuer` parameter differ.
    #[error("the label's issuer and the issuer parameter differ")]
    IssuerMismatch,
}

/// Errors from TOTP configuration, verification, enrollment and secret sealing.
///
/// No message ever contains a secret, a code, a key or a sealed value.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TotpError {
    /// Codes must have 6 or 8 digits.
    #[error("TOTP codes must have 6 or 8 digits, not {digits}")]
    InvalidDigits {
        /// The rejected value.
        digits: u8,
    },
    /// The time step length is outside the accepted range.
    #[error("TOTP period must be between {min} and {max} seconds, not {period}")]
    InvalidPeriod {
        /// The rejected value, in seconds.
        period: u32,
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
    },
    /// Too many steps of clock drift were asked for.
    #[error("TOTP skew must be at most {max} steps, not {skew}")]
    InvalidSkew {
        /// The rejected value.
        skew: u8,
        /// Largest accepted value.
        max: u8,
    },
    /// An issuer or account name is empty, too long, or contains control characters.
    #[error("invalid {field}: {reason}")]
    InvalidName {
        /// `issuer` or `account name`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The shared secret has fewer bytes than RFC 4226 section 4 requires (128 bits), or more
    /// than is sensible.
    #[error("TOTP secret is {len} bytes, must be between {min} and {max}")]
    SecretLength {
        /// Length of the secret in bytes.
        len: usize,
        /// Smallest accepted length.
        min: usize,
        /// Largest accepted length.
        max: usize,
    },
    /// The instant lies before the Unix epoch, where TOTP has no time steps.
    #[error("time is before the Unix epoch")]
    TimeBeforeEpoch,
    /// A user-typed code is not well formed.
    #[error("malformed one-time code: {0}")]
    MalformedCode(#[from] MalformedCode),
    /// An `otpauth://` URI could not be parsed.
    #[error("invalid otpauth URI: {0}")]
    InvalidUri(#[from] OtpauthUriError),
    /// The URI does not fit in a QR code.
    #[error("the enrollment URI is too long for a QR code")]
    QrCode,
    /// The operating system's random source failed.
    #[error("the operating system random source failed")]
    Random,
    /// A key id is empty, longer than 32 bytes, or uses characters outside `A-Z a-z 0-9 - _ .`.
    #[error("invalid key id: {reason}")]
    InvalidKeyId {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A key given as text is not 64 hex digits or 32 bytes in base64.
    #[error("invalid key text: {reason}")]
    InvalidKeyText {
        /// What is wrong with it (never the text).
        reason: &'static str,
    },
    /// Two keys in one key ring share an id.
    #[error("key id {key_id:?} appears twice in the key ring")]
    DuplicateKeyId {
        /// The repeated id.
        key_id: String,
    },
    /// A stored secret is sealed under a key id the key ring does not hold.
    #[error("no key with id {key_id:?} in the key ring")]
    UnknownKeyId {
        /// The id named by the stored secret.
        key_id: String,
    },
    /// A stored secret is sealed but no key ring was supplied.
    #[error("the secret is sealed under key {key_id:?} but no key ring was given")]
    SealedWithoutKey {
        /// The id named by the stored secret.
        key_id: String,
    },
    /// A stored secret is in the unsealed `plain:` form but sealing is configured: opening it
    /// needs the explicit migration path ([`crate::totp::TotpSealer::reseal`]).
    #[error("the secret is stored unsealed; reseal it before use")]
    PlainNotAllowed,
    /// The stored string is not a sealed or plain TOTP secret.
    #[error("malformed stored TOTP secret: {reason}")]
    MalformedStoredSecret {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Authenticated decryption failed: wrong key, tampered data, or a different context
    /// (for example another user's id). These causes are deliberately indistinguishable.
    #[error(
        "cannot open the sealed secret under key {key_id:?}: wrong key, wrong context or tampered data"
    )]
    OpenFailed {
        /// The id of the key that was tried.
        key_id: String,
    },
}
