//! Importing hashes from another system: the record, its validation, and a dry run.
//!
//! The record uses the field names of Kinde's "set password" API (`hashed_password`,
//! `hashing_method`, `salt`, `salt_position`, `is_temporary_password`), so exports from there
//! and from tools that follow it deserialize directly.

use std::fmt;

use data_encoding::{BASE64, BASE64_NOPAD, HEXLOWER_PERMISSIVE};
use serde::Deserialize;

use super::HashError;
use super::canonical::{self, DigestAlg, Position, SaltedDigest};
use super::{Hasher, PasswordHash, SchemeMatch, argon2};
use crate::secret::Password;

/// Longest `hashed_password` accepted, in bytes.
pub const MAX_HASHED_PASSWORD_BYTES: usize = 1024;

/// The `hashing_method` of an import record. Absent means "detect from the string".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HashingMethod {
    /// An argon2 PHC string (`$argon2id$`, `$argon2i$`, `$argon2d$`).
    Argon2,
    /// bcrypt `$2a$`, `$2b$`, `$2y$`.
    Bcrypt,
    /// Any crypt(3) string: DES, BSDi `_`, `$1$`, `$5$`, `$6$`, bcrypt.
    Crypt,
    /// An MD5 digest in hex or base64, optionally salted.
    Md5,
    /// A SHA-256 digest in hex or base64, optionally salted.
    Sha256,
    /// WordPress: phpass `$P$`/`$H$`, 6.8+ `$wp$`, bcrypt, or pre-2.5 bare MD5.
    Wordpress,
}

impl HashingMethod {
    /// The JSON spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Argon2 => "argon2",
            Self::Bcrypt => "bcrypt",
            Self::Crypt => "crypt",
            Self::Md5 => "md5",
            Self::Sha256 => "sha256",
            Self::Wordpress => "wordpress",
        }
    }

    /// Whether a string detected as `scheme` is acceptable under this method.
    fn admits(self, scheme: &str) -> bool {
        match self {
            Self::Argon2 => matches!(scheme, "argon2" | "argon2-imported"),
            Self::Bcrypt => scheme == "bcrypt",
            Self::Crypt => matches!(
                scheme,
                "des-crypt"
                    | "bsdi-crypt"
                    | "md5-crypt"
                    | "sha256-crypt"
                    | "sha512-crypt"
                    | "bcrypt"
            ),
            Self::Md5 => matches!(scheme, "md5" | "salted-md5"),
            Self::Sha256 => scheme == "salted-sha256",
            Self::Wordpress => matches!(scheme, "phpass" | "wordpress-bcrypt" | "bcrypt" | "md5"),
        }
    }
}

impl fmt::Display for HashingMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the salt was placed around the password before digesting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SaltPosition {
    /// digest = H(salt ‖ password).
    Prefix,
    /// digest = H(password ‖ salt).
    Suffix,
}

/// One user's hash from another system. `Debug` shows only the first characters of
/// `hashed_password` (enough to see the scheme) and never the salt.
#[derive(Clone, Deserialize)]
pub struct ImportRecord {
    /// The stored hash, or the bare digest for `md5`/`sha256`.
    pub hashed_password: String,
    /// The scheme; absent means detect from `hashed_password`.
    #[serde(default)]
    pub hashing_method: Option<HashingMethod>,
    /// The salt of a salted `md5`/`sha256` digest, as text.
    #[serde(default)]
    pub salt: Option<String>,
    /// Where `salt` goes; required with `salt`.
    #[serde(default)]
    pub salt_position: Option<SaltPosition>,
    /// Whether the password is temporary (the caller then requires a change at sign-in).
    #[serde(default)]
    pub is_temporary_password: bool,
}

impl ImportRecord {
    /// A record with only `hashed_password` set.
    #[must_use]
    pub fn new(hashed_password: impl Into<String>) -> Self {
        Self {
            hashed_password: hashed_password.into(),
            hashing_method: None,
            salt: None,
            salt_position: None,
            is_temporary_password: false,
        }
    }
}

impl fmt::Debug for ImportRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: String = self.hashed_password.chars().take(4).collect();
        f.debug_struct("ImportRecord")
            .field("hashed_password", &format_args!("{head:?}…"))
            .field("hashing_method", &self.hashing_method)
            .field("salt", &self.salt.as_ref().map(|_| format_args!("***")))
            .field("salt_position", &self.salt_position)
            .field("is_temporary_password", &self.is_temporary_password)
            .finish()
    }
}

fn field(field: &'static str, reason: &'static str) -> ImportError {
    ImportError::InvalidField { field, reason }
}

pub(super) fn import(hasher: &Hasher, record: &ImportRecord) -> Result<PasswordHash, ImportError> {
    let s = record.hashed_password.as_str();
    if s.is_empty() {
        return Err(field("hashed_password", "is empty"));
    }
    if s.len() > MAX_HASHED_PASSWORD_BYTES {
        return Err(field("hashed_password", "is longer than 1024 bytes"));
    }
    if s.trim() != s {
        return Err(field(
            "hashed_password",
            "has leading or trailing whitespace",
        ));
    }
    if record.salt_position.is_some() && record.salt.is_none() {
        return Err(field("salt_position", "is given without a salt"));
    }
    match record.hashing_method {
        Some(HashingMethod::Md5) => digest(hasher, record, DigestAlg::Md5, HashingMethod::Md5),
        Some(HashingMethod::Sha256) => {
            digest(hasher, record, DigestAlg::Sha256, HashingMethod::Sha256)
        }
        method => {
            if record.salt.is_some() {
                return Err(field(
                    "salt",
                    if method.is_some() {
                        "is not used by this hashing_method (only md5 and sha256 take one)"
                    } else {
                        "needs hashing_method md5 or sha256"
                    },
                ));
            }
            let (scheme, native) = hasher
                .resolve(s)
                .map_err(|source| ImportError::InvalidHash { source })?;
            if let Some(method) = method
                && !method.admits(scheme.name())
            {
                return Err(ImportError::MethodMismatch {
                    method,
                    detected: scheme.name(),
                });
            }
            if native {
                // A foreign argon2 string was computed over unnormalized bytes: wrap it so it
                // is verified raw and upgraded, never mistaken for one keyward wrote.
                let encoded = argon2::Imported::wrap(s, hasher.limits())
                    .map_err(|source| ImportError::InvalidHash { source })?;
                return Ok(PasswordHash {
                    encoded,
                    scheme: argon2::IMPORTED,
                });
            }
            hasher
                .parse(s)
                .map_err(|source| ImportError::InvalidHash { source })
        }
    }
}

/// A bare md5/sha256 digest (hex or base64), salted or not, into the canonical wrapper.
fn digest(
    hasher: &Hasher,
    record: &ImportRecord,
    alg: DigestAlg,
    method: HashingMethod,
) -> Result<PasswordHash, ImportError> {
    let (salt, position) = match (&record.salt, record.salt_position) {
        (None, _) => (Vec::new(), Position::None),
        (Some(_), None) => return Err(field("salt_position", "is required with a salt")),
        (Some(salt), Some(_)) if salt.is_empty() => return Err(field("salt", "is empty")),
        (Some(salt), Some(_)) if salt.len() > canonical::MAX_SALT_BYTES => {
            return Err(field("salt", "is longer than 256 bytes"));
        }
        (Some(salt), Some(SaltPosition::Prefix)) => (salt.as_bytes().to_vec(), Position::Prefix),
        (Some(salt), Some(SaltPosition::Suffix)) => (salt.as_bytes().to_vec(), Position::Suffix),
    };
    let s = record.hashed_password.as_bytes();
    let n = alg.output_len();
    let decoded = if s.len() == 2 * n {
        HEXLOWER_PERMISSIVE.decode(s).ok()
    } else if s.len() == BASE64.encode_len(n) {
        BASE64.decode(s).ok()
    } else if s.len() == BASE64_NOPAD.encode_len(n) {
        BASE64_NOPAD.decode(s).ok()
    } else {
        None
    };
    let Some(digest) = decoded else {
        if let Ok((scheme, _)) = hasher.resolve(&record.hashed_password)
            && !method.admits(scheme.name())
        {
            return Err(ImportError::MethodMismatch {
                method,
                detected: scheme.name(),
            });
        }
        return Err(field(
            "hashed_password",
            match alg {
                DigestAlg::Md5 => "is not an md5 digest in hex (32 digits) or base64",
                DigestAlg::Sha256 => "is not a sha256 digest in hex (64 digits) or base64",
            },
        ));
    };
    let wrapped = SaltedDigest::new(alg, position, salt, digest)
        .map_err(|source| ImportError::InvalidHash { source })?;
    Ok(PasswordHash {
        encoded: wrapped.to_string(),
        scheme: alg.scheme(),
    })
}

/// The fields of one dry-run input line: an import record plus the password to try.
#[derive(Deserialize)]
struct DryRunInput {
    #[serde(flatten)]
    record: ImportRecord,
    password: String,
}

/// Processes one NDJSON line of a dry-run import: the [`ImportRecord`] fields plus
/// `"password"`. Returns one JSON object (without newline):
/// `{"line": N, "verified": bool, "scheme": "...", "needs_upgrade": bool}` or
/// `{"line": N, "error": "..."}`. Never panics, whatever the bytes. Error messages never echo
/// field values (a misplaced password would otherwise be printed).
#[must_use]
pub fn dry_run_line(hasher: &Hasher, line: usize, input: &[u8]) -> String {
    #[derive(serde::Serialize)]
    struct Verified {
        line: usize,
        verified: bool,
        scheme: &'static str,
        needs_upgrade: bool,
    }
    #[derive(serde::Serialize)]
    struct Failed {
        line: usize,
        error: String,
    }
    let written = match dry_run(hasher, input) {
        Ok((verified, scheme, needs_upgrade)) => serde_json::to_string(&Verified {
            line,
            verified,
            scheme,
            needs_upgrade,
        }),
        Err(error) => serde_json::to_string(&Failed { line, error }),
    };
    // Serializing these plain structs cannot fail; keep a valid line should it ever.
    written.unwrap_or_else(|_| format!("{{\"line\":{line},\"error\":\"internal error\"}}"))
}

fn dry_run(hasher: &Hasher, input: &[u8]) -> Result<(bool, &'static str, bool), String> {
    let text = std::str::from_utf8(input).map_err(|_| "line is not valid UTF-8".to_owned())?;
    let parsed: DryRunInput = serde_json::from_str(text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing field or wrong type or value",
            serde_json::error::Category::Eof => "unexpected end of line",
        };
        format!("invalid record: {kind} at column {}", e.column())
    })?;
    let password = Password::new(parsed.password);
    let hash = hasher.import(&parsed.record).map_err(|e| e.to_string())?;
    let matched = hasher
        .verify_scheme(&password, &hash)
        .map_err(|e| e.to_string())?;
    Ok((
        matched == SchemeMatch::Match,
        hash.scheme(),
        hasher.needs_upgrade(&hash),
    ))
}

/// Why an [`ImportRecord`] was refused. Every variant names the
/// offending field (see [`ImportError::field`]); nothing is stored when an import fails.
#[derive(Debug, thiserror::Error)]
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
        method: HashingMethod,
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
