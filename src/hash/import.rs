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

/// Longest `hashed_password` accepted, in bytes: [`MAX_STORED_BYTES`](super::MAX_STORED_BYTES).
pub const MAX_HASHED_PASSWORD_BYTES: usize = super::MAX_STORED_BYTES;

/// The `hashing_method` of an import record. Absent means "detect from the string".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HashingMethod {
    /// An argon2 PHC string (`$argon2id$`, `$argon2i$`, `$argon2d$`).
    Argon2,
    /// bcrypt `$2a$`, `$2b$`, `$2y$`.
    Bcrypt,
    /// Any crypt(3) string: DES, BSDi `_`, `$1$`, `$5$`, `$6$`, bcrypt, yescrypt `$y$`, also
    /// behind LDAP's `{CRYPT}`.
    Crypt,
    /// An MD5 digest in hex or base64, optionally salted.
    Md5,
    /// A SHA-1 digest in hex or base64, optionally salted.
    Sha1,
    /// A SHA-256 digest in hex or base64, optionally salted.
    Sha256,
    /// A SHA-512 digest in hex or base64, optionally salted.
    Sha512,
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
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
            Self::Wordpress => "wordpress",
        }
    }

    /// The digest algorithm of a digest method.
    fn digest_alg(self) -> Option<DigestAlg> {
        match self {
            Self::Md5 => Some(DigestAlg::Md5),
            Self::Sha1 => Some(DigestAlg::Sha1),
            Self::Sha256 => Some(DigestAlg::Sha256),
            Self::Sha512 => Some(DigestAlg::Sha512),
            _ => None,
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
                    | "yescrypt"
                    | "ldap-crypt"
            ),
            Self::Md5 => matches!(scheme, "md5" | "salted-md5"),
            Self::Sha1 => scheme == "salted-sha1",
            Self::Sha256 => scheme == "salted-sha256",
            Self::Sha512 => scheme == "salted-sha512",
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
    /// The stored hash, or the bare digest for `md5`/`sha1`/`sha256`/`sha512`.
    pub hashed_password: String,
    /// The scheme; absent means detect from `hashed_password`.
    #[serde(default)]
    pub hashing_method: Option<HashingMethod>,
    /// The salt of a salted `md5`/`sha1`/`sha256`/`sha512` digest, as text. With `crypt` or
    /// `wordpress` it may repeat the salt the string carries inside (some exports list it
    /// separately); anything else is refused, since those strings fix their own salt.
    #[serde(default)]
    pub salt: Option<String>,
    /// Where `salt` goes; required with `salt`.
    #[serde(default)]
    pub salt_position: Option<SaltPosition>,
    /// Whether the password is temporary (the caller then requires a change at sign-in).
    #[serde(default)]
    pub is_temporary_password: bool,
    /// With `is_temporary_password`: the temporary password never expires (it stays usable
    /// until the user's first sign-in, which must set a new one). By default an imported
    /// temporary password gets the user type's temporary lifetime from the import on.
    /// keyward's own field (Kinde's API has none).
    #[serde(default)]
    pub temporary_password_never_expires: bool,
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
            temporary_password_never_expires: false,
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
            .field(
                "temporary_password_never_expires",
                &self.temporary_password_never_expires,
            )
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
    if record.temporary_password_never_expires && !record.is_temporary_password {
        return Err(field(
            "temporary_password_never_expires",
            "is set without is_temporary_password",
        ));
    }
    if let Some((method, alg)) = (record.hashing_method).and_then(|m| Some((m, m.digest_alg()?))) {
        return digest(hasher, record, alg, method);
    }
    let method = record.hashing_method;
    let salted_crypt = matches!(
        method,
        Some(HashingMethod::Crypt | HashingMethod::Wordpress)
    );
    if record.salt.is_some() && !salted_crypt {
        return Err(field(
            "salt",
            if method.is_some() {
                "is not used by this hashing_method (md5, sha1, sha256 and sha512 take \
                 one; crypt and wordpress may repeat their own)"
            } else {
                "needs a hashing_method (md5, sha1, sha256, sha512, crypt, wordpress)"
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
    if let Some(salt) = &record.salt {
        embedded_salt_matches(scheme.name(), s, salt, record.salt_position)?;
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

/// A bare md5/sha1/sha256/sha512 digest (hex or base64), salted or not, into the canonical wrapper.
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
                DigestAlg::Sha1 => "is not a sha1 digest in hex (40 digits) or base64",
                DigestAlg::Sha256 => "is not a sha256 digest in hex (64 digits) or base64",
                DigestAlg::Sha512 => "is not a sha512 digest in hex (128 digits) or base64",
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

/// The salt a crypt(3) or WordPress string carries inside, as text; `None` for an unsalted
/// one (WordPress's pre-2.5 bare md5).
fn embedded_salt<'a>(scheme: &str, s: &'a str) -> Option<&'a str> {
    let between = |s: &'a str, skip: usize| s.split('$').nth(skip);
    match scheme {
        "des-crypt" => s.get(..2),
        "bsdi-crypt" => s.get(5..9),
        "bcrypt" => s.get(7..29),
        "wordpress-bcrypt" => s.get(10..32),
        "phpass" => s.get(4..12),
        "md5-crypt" => between(s, 2),
        "sha256-crypt" | "sha512-crypt" => {
            let rounds = s
                .split('$')
                .nth(2)
                .is_some_and(|f| f.starts_with("rounds="));
            between(s, if rounds { 3 } else { 2 })
        }
        "yescrypt" => between(s, 3),
        "ldap-crypt" => {
            let inner = s.get(7..)?;
            let scheme = super::ldap::LdapCrypt::inner(s).ok()?.0.name();
            embedded_salt(scheme, inner)
        }
        _ => None,
    }
}

/// A `salt` given with `crypt` or `wordpress` is accepted only as a copy of the salt inside
/// the string: those schemes fix their own salt and its place.
fn embedded_salt_matches(
    scheme: &str,
    s: &str,
    salt: &str,
    position: Option<SaltPosition>,
) -> Result<(), ImportError> {
    if position.is_some() {
        return Err(field(
            "salt_position",
            "is not used by crypt or wordpress (the scheme fixes where its salt goes)",
        ));
    }
    match embedded_salt(scheme, s) {
        None => Err(field(
            "salt",
            "is not used: this hash is unsalted (WordPress's md5) or carries no separate salt",
        )),
        Some(inner) if inner == salt => Ok(()),
        Some(_) => Err(field(
            "salt",
            "differs from the salt inside hashed_password (crypt and wordpress strings carry \
             their own)",
        )),
    }
}

/// The fields of one dry-run input line: an import record plus, optionally, the password to
/// try.
#[derive(Deserialize)]
struct DryRunInput {
    #[serde(flatten)]
    record: ImportRecord,
    #[serde(default)]
    password: Option<String>,
}

/// What one dry-run line came to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DryRunOutcome {
    /// The record imports; with a password, whether it verified.
    Valid {
        /// The scheme the hash was detected as.
        scheme: &'static str,
        /// Whether the first successful sign-in will replace it with argon2id.
        needs_upgrade: bool,
        /// `Some(matched)` when the line carried a password, `None` for a record only.
        verified: Option<bool>,
    },
    /// The line could not be imported (or its password could not be checked).
    Invalid {
        /// The message: a fixed text per kind of refusal, naming fields, schemes and limits
        /// but never quoting anything from the record.
        error: String,
        /// A stable category without any value in it, for counting
        /// (`invalid salt: is empty`, `hashed_password: yescrypt_kib above the limit`).
        problem: String,
    },
}

impl DryRunOutcome {
    /// The outcome as one JSON object (without newline): with a password
    /// `{"line": N, "verified": bool, "scheme": "...", "needs_upgrade": bool}`, without one
    /// `{"line": N, "valid": true, "scheme": "...", "needs_upgrade": bool}`, and
    /// `{"line": N, "error": "...", "problem": "..."}` for a refused line.
    #[must_use]
    pub fn to_json(&self, line: usize) -> String {
        #[derive(serde::Serialize)]
        struct Verified {
            line: usize,
            verified: bool,
            scheme: &'static str,
            needs_upgrade: bool,
        }
        #[derive(serde::Serialize)]
        struct Valid {
            line: usize,
            valid: bool,
            scheme: &'static str,
            needs_upgrade: bool,
        }
        #[derive(serde::Serialize)]
        struct Failed<'a> {
            line: usize,
            error: &'a str,
            problem: &'a str,
        }
        let written = match self {
            Self::Valid {
                scheme,
                needs_upgrade,
                verified: Some(verified),
            } => serde_json::to_string(&Verified {
                line,
                verified: *verified,
                scheme,
                needs_upgrade: *needs_upgrade,
            }),
            Self::Valid {
                scheme,
                needs_upgrade,
                verified: None,
            } => serde_json::to_string(&Valid {
                line,
                valid: true,
                scheme,
                needs_upgrade: *needs_upgrade,
            }),
            Self::Invalid { error, problem } => serde_json::to_string(&Failed {
                line,
                error,
                problem,
            }),
        };
        // Serializing these plain structs cannot fail; keep a valid line should it ever.
        written.unwrap_or_else(|_| format!("{{\"line\":{line},\"error\":\"internal error\"}}"))
    }
}

/// Processes one NDJSON line of a dry-run import: the [`ImportRecord`] fields plus, optionally,
/// `"password"`. Returns one JSON object (without newline), as
/// [`DryRunOutcome::to_json`] writes it. Never panics, whatever the bytes. Error messages
/// never echo field values (a misplaced password would otherwise be printed).
#[must_use]
pub fn dry_run_line(hasher: &Hasher, line: usize, input: &[u8]) -> String {
    dry_run_outcome(hasher, input).to_json(line)
}

/// [`dry_run_line`] before it is written out, for a caller that also keeps a
/// [`DryRunSummary`].
#[must_use]
pub fn dry_run_outcome(hasher: &Hasher, input: &[u8]) -> DryRunOutcome {
    match dry_run(hasher, input) {
        Ok((verified, scheme, needs_upgrade)) => DryRunOutcome::Valid {
            scheme,
            needs_upgrade,
            verified,
        },
        Err((error, problem)) => DryRunOutcome::Invalid { error, problem },
    }
}

/// A stable category for a refused record, without values.
fn problem_of(error: &ImportError) -> String {
    match error {
        ImportError::InvalidField { field, reason } => format!("invalid {field}: {reason}"),
        ImportError::MethodMismatch { method, detected } => {
            format!("hashing_method {method} but hashed_password is {detected}")
        }
        ImportError::InvalidHash { source } => format!("hashed_password: {}", hash_problem(source)),
    }
}

/// The message of a refused record: a fixed text per kind, filled only with names and limits
/// from keyward's own code, never with anything taken from the record (an unsupported
/// variant's tag, a parameter's value, a length could echo a misplaced secret).
fn error_of(error: &ImportError) -> String {
    match error {
        ImportError::InvalidField { field, reason } => format!("invalid {field}: {reason}"),
        ImportError::MethodMismatch { method, detected } => format!(
            "invalid hashing_method: it says {method} but hashed_password is a {detected} hash"
        ),
        ImportError::InvalidHash { source } => {
            format!("invalid hashed_password: {}", hash_error(source))
        }
    }
}

fn hash_error(error: &HashError) -> String {
    match error {
        HashError::UnknownFormat => "not a hash format keyward knows".to_owned(),
        HashError::Malformed { scheme, reason } => format!("malformed {scheme} hash: {reason}"),
        HashError::UnsupportedVariant { scheme, .. } => {
            format!("a variant of {scheme} keyward does not verify")
        }
        HashError::ParamOutOfBounds { name, max, .. } => {
            format!("parameter {name} exceeds the limit {max}")
        }
        HashError::ParamBelowMinimum { name, min, .. } => {
            format!("parameter {name} is below the minimum {min}")
        }
        HashError::StoredTooLong { max, .. } => format!("longer than {max} bytes"),
        HashError::PasswordTooLong { max, .. } => format!("longer than {max} bytes"),
        HashError::Backend { scheme, .. } => format!("{scheme} backend failure"),
    }
}

fn hash_problem(error: &HashError) -> String {
    match error {
        HashError::UnknownFormat => "unknown format".to_owned(),
        HashError::Malformed { scheme, reason } => format!("malformed {scheme}: {reason}"),
        HashError::UnsupportedVariant { scheme, .. } => format!("unsupported {scheme} variant"),
        HashError::ParamOutOfBounds { name, .. } => format!("{name} above the limit"),
        HashError::ParamBelowMinimum { name, .. } => format!("{name} below the minimum"),
        HashError::StoredTooLong { .. } => "too long".to_owned(),
        HashError::PasswordTooLong { .. } => "password too long".to_owned(),
        HashError::Backend { scheme, .. } => format!("{scheme} backend failure"),
    }
}

type DryRunResult = Result<(Option<bool>, &'static str, bool), (String, String)>;

fn dry_run(hasher: &Hasher, input: &[u8]) -> DryRunResult {
    let utf8 = "line is not valid UTF-8";
    let text = std::str::from_utf8(input).map_err(|_| (utf8.to_owned(), utf8.to_owned()))?;
    let parsed: DryRunInput = serde_json::from_str(text).map_err(|e| {
        let kind = match e.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "missing field or wrong type or value",
            serde_json::error::Category::Eof => "unexpected end of line",
        };
        let problem = format!("invalid record: {kind}");
        (format!("{problem} at column {}", e.column()), problem)
    })?;
    let hash = (hasher.import(&parsed.record)).map_err(|e| (error_of(&e), problem_of(&e)))?;
    let verified = match parsed.password {
        Some(password) => {
            let password = Password::new(password);
            let matched = (hasher.verify_scheme(&password, &hash)).map_err(|e| {
                let error = format!("password could not be checked: {}", hash_error(&e));
                (error, format!("password: {}", hash_problem(&e)))
            })?;
            Some(matched == SchemeMatch::Match)
        }
        None => None,
    };
    Ok((verified, hash.scheme(), hasher.needs_upgrade(&hash)))
}

/// Counts of a dry run by format and by problem, printed at its end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DryRunSummary {
    /// Lines read.
    pub lines: u64,
    /// Valid records per detected scheme.
    pub by_scheme: std::collections::BTreeMap<&'static str, u64>,
    /// Refused lines per problem ([`DryRunOutcome::Invalid::problem`]).
    pub by_problem: std::collections::BTreeMap<String, u64>,
    /// Lines with a password that verified.
    pub verified: u64,
    /// Lines with a password that did not verify.
    pub not_verified: u64,
    /// Valid lines without a password (validated only).
    pub unchecked: u64,
}

impl DryRunSummary {
    /// Counts one outcome.
    pub fn add(&mut self, outcome: &DryRunOutcome) {
        self.lines += 1;
        match outcome {
            DryRunOutcome::Valid {
                scheme, verified, ..
            } => {
                *self.by_scheme.entry(scheme).or_default() += 1;
                match verified {
                    Some(true) => self.verified += 1,
                    Some(false) => self.not_verified += 1,
                    None => self.unchecked += 1,
                }
            }
            DryRunOutcome::Invalid { problem, .. } => {
                *self.by_problem.entry(problem.clone()).or_default() += 1;
            }
        }
    }

    /// Refused lines in all.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.by_problem.values().sum()
    }
}

impl fmt::Display for DryRunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let valid = self.lines.saturating_sub(self.refused());
        writeln!(
            f,
            "{} lines: {valid} valid, {} refused",
            self.lines,
            self.refused()
        )?;
        writeln!(
            f,
            "passwords: {} verified, {} did not verify, {} records without a password",
            self.verified, self.not_verified, self.unchecked
        )?;
        writeln!(f, "by format:")?;
        for (scheme, n) in &self.by_scheme {
            writeln!(f, "  {n:>8}  {scheme}")?;
        }
        writeln!(f, "by problem:")?;
        for (problem, n) in &self.by_problem {
            writeln!(f, "  {n:>8}  {problem}")?;
        }
        Ok(())
    }
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
