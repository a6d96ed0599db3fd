//! The public error types.
//!
//! An `Err` from keyward means the system failed or the caller asked for something invalid;
//! a user failing to sign in is an ordinary outcome ([`crate::signin::SignIn::Denied`]), never
//! an error. No error message ever contains secret material.

use thiserror::Error;

// ---------------------------------------------------------------------------------------------
// Hashing core errors live below this line (owned by `hash.rs`).
// ---------------------------------------------------------------------------------------------

/// Why a stored hash could not be parsed, bounded or verified.
///
/// No variant carries the stored hash itself or any password material: only the scheme's
/// name, the parameter at fault and static reasons.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HashError {
    /// The string is not in any format this hasher knows.
    #[error("unknown password hash format")]
    UnknownFormat,
    /// The string looks like `scheme` but is not a well-formed hash of it.
    #[error("malformed {scheme} hash: {reason}")]
    Malformed {
        /// The scheme the string was detected as.
        scheme: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A variant of a known scheme that keyward refuses to verify (for example bcrypt `$2x$`).
    #[error("unsupported {scheme} variant `{variant}`")]
    UnsupportedVariant {
        /// The scheme family.
        scheme: &'static str,
        /// The variant tag found in the string.
        variant: String,
    },
    /// A cost parameter is above the configured [`HashLimits`](crate::hash::HashLimits): the
    /// hash is rejected before any evaluation.
    #[error("parameter {name} = {value} exceeds the limit {max}")]
    ParamOutOfBounds {
        /// The parameter's name (`m_cost`, `rounds`, `bcrypt_cost`, ...).
        name: &'static str,
        /// The value found.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A parameter is below the smallest value the algorithm or policy accepts.
    #[error("parameter {name} = {value} is below the minimum {min}")]
    ParamBelowMinimum {
        /// The parameter's name.
        name: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value allowed.
        min: u64,
    },
    /// The password is longer than [`HashLimits::max_password_bytes`](crate::hash::HashLimits).
    #[error("password of {len} bytes exceeds the limit of {max} bytes")]
    PasswordTooLong {
        /// The password's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The hashing backend failed (for example the system random number generator).
    #[error("{scheme} backend failure")]
    Backend {
        /// The scheme whose backend failed.
        scheme: &'static str,
        /// The underlying failure, kept opaque.
        #[source]
        source: BackendError,
    },
}

/// An opaque failure of a hashing backend, kept as a source of [`HashError::Backend`] so that
/// dependency error types stay out of keyward's public API.
#[derive(Debug)]
pub struct BackendError(Box<dyn std::error::Error + Send + Sync + 'static>);

impl BackendError {
    /// Wraps any error (used by custom [`HashScheme`](crate::hash::HashScheme)s too).
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(error))
    }

    /// Wraps a static message.
    #[must_use]
    pub fn msg(message: &'static str) -> Self {
        Self(message.into())
    }
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BackendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Why an [`ImportRecord`](crate::hash::ImportRecord) was refused. Every variant names the
/// offending field (see [`ImportError::field`]); nothing is stored when an import fails.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ImportError {
    /// A field is missing, present where it must not be, or has an unusable value.
    #[error("invalid {field}: {reason}")]
    InvalidField {
        /// The record's field name, as spelled in the JSON.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `hashing_method` names one scheme but `hashed_password` is a hash of another.
    #[error("invalid hashing_method: it says {method} but hashed_password is a {detected} hash")]
    MethodMismatch {
        /// The method the record names.
        method: crate::hash::HashingMethod,
        /// The scheme the string was detected as.
        detected: &'static str,
    },
    /// `hashed_password` was refused by the hashing core (malformed, unsupported, over limits).
    #[error("invalid hashed_password: {source}")]
    InvalidHash {
        /// The hashing core's reason.
        #[source]
        source: HashError,
    },
}

impl ImportError {
    /// The name of the record field at fault.
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self {
            Self::InvalidField { field, .. } => field,
            Self::MethodMismatch { .. } => "hashing_method",
            Self::InvalidHash { .. } => "hashed_password",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TOTP errors live below this line (owned by `totp.rs`).
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Store errors live below this line (owned by `store.rs`).
// ---------------------------------------------------------------------------------------------

/// A store failed or refused an operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The operation would break a uniqueness rule (a username already taken in the site, a
    /// user id already used).
    #[error("conflict: {what} already exists")]
    Conflict {
        /// What clashed, e.g. `username`.
        what: &'static str,
    },
    /// No user with this id.
    #[error("no user with id {user}")]
    NotFound {
        /// The missing user.
        user: crate::user::UserId,
    },
    /// A query asked for something invalid (for example a page larger than the maximum).
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// What is wrong.
        reason: String,
    },
    /// Data read back from the store is not valid (a corrupted row, an unknown enum value).
    #[error("corrupt data in {location}: {reason}")]
    Corrupt {
        /// Where: table and column, or the record part.
        location: &'static str,
        /// What is wrong with it (never the data itself).
        reason: String,
    },
    /// The database was written by a newer version of keyward; it is not used.
    #[error("database schema version {found} is newer than this keyward supports ({supported})")]
    SchemaTooNew {
        /// The version found in the database.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// The backend failed (I/O, connection, SQL).
    #[error("store backend failed: {context}")]
    Backend {
        /// What the store was doing.
        context: &'static str,
        /// The backend's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl StoreError {
    /// Wraps a backend error with what the store was doing.
    pub fn backend(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Backend {
            context,
            source: Box::new(source),
        }
    }

    /// A corrupt-data error.
    pub fn corrupt(location: &'static str, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            location,
            reason: reason.into(),
        }
    }
}

/// What a keyward operation can fail with.
///
/// A user failing to sign in is not an error but an outcome ([`crate::signin::SignIn`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failed or a stored hash is invalid.
    #[error(transparent)]
    Hash(#[from] HashError),
    /// An import record was refused; nothing was stored.
    #[error(transparent)]
    Import(#[from] ImportError),
    /// A TOTP operation failed.
    #[error(transparent)]
    Totp(#[from] TotpError),
    /// Delivery through the notifier failed.
    #[error(transparent)]
    Notify(#[from] crate::notify::NotifyError),
    /// A password or temporary password breaks the policy.
    #[error("password policy: {0}")]
    Policy(#[from] crate::policy::PolicyViolation),
    /// An admin action was refused; nothing changed.
    #[error(transparent)]
    PermissionDenied(#[from] crate::admin::PermissionDenied),
    /// No user with this id.
    #[error("no user with id {user}")]
    UserNotFound {
        /// The missing user.
        user: crate::user::UserId,
    },
    /// A profile field cannot be accepted; nothing was stored.
    #[error(transparent)]
    InvalidUser(#[from] crate::user::InvalidField),
    /// The user is disabled.
    #[error("user {user} is disabled")]
    UserDisabled {
        /// The user.
        user: crate::user::UserId,
    },
    /// Delivery was asked for but the user has no verified contact on that channel.
    #[error("the user has no verified {channel}")]
    NoVerifiedContact {
        /// `email` or `phone`.
        channel: &'static str,
    },
    /// The user's password is not a temporary password.
    #[error("user {user} has no temporary password")]
    NoTemporaryPassword {
        /// The user.
        user: crate::user::UserId,
    },
    /// TOTP secrets cannot be stored: no sealing key was configured and plain storage was
    /// not opted into (see [`crate::service::KeywardBuilder::totp_sealer`]).
    #[error("no TOTP sealing key is configured")]
    TotpKeyMissing,
    /// Self-service TOTP enrollment is refused while an administrator's reset awaits device
    /// authorization at the next sign-in.
    #[error("user {user} has an authenticator reset pending: enrollment happens at sign-in")]
    TotpResetPending {
        /// The user.
        user: crate::user::UserId,
    },
    /// Writing an output document (the printable list) failed.
    #[error("output failed: {reason}")]
    Output {
        /// What went wrong.
        reason: String,
    },
}
