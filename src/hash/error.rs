//! The hashing core's errors.

use thiserror::Error;

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
    /// The stored string is longer than [`MAX_STORED_BYTES`](crate::hash::MAX_STORED_BYTES):
    /// refused before any scheme parses it.
    #[error("stored hash of {len} bytes exceeds the limit of {max} bytes")]
    StoredTooLong {
        /// The stored string's length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
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
