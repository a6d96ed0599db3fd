//! keyward's canonical, self-describing string for imported salted digests:
//!
//! ```text
//! $keyward-salted$v=1$<alg>,<position>$<salt>$<digest>
//! ```
//!
//! - `<alg>`: `md5`, `sha1`, `sha256` or `sha512`;
//! - `<position>`: `prefix` (digest = H(salt ‖ password)), `suffix` (H(password ‖ salt)) or
//!   `none` (unsalted; the salt field is then empty);
//! - `<salt>`: the salt's bytes in unpadded base64url (RFC 4648 §5), so that any salt,
//!   `$` and `,` included, survives;
//! - `<digest>`: the digest in lowercase hex.
//!
//! Exactly one spelling is accepted for each value (no padding, no uppercase, no non-zero
//! trailing bits), so parse → print → parse is the identity on strings.

use std::fmt;

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};

use super::{HashError, malformed};

/// The wrapper's prefix.
pub(super) const PREFIX: &str = "$keyward-salted$v=1$";
/// Longest salt accepted, in bytes.
pub(super) const MAX_SALT_BYTES: usize = 256;

/// A digest algorithm usable in the wrapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DigestAlg {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl DigestAlg {
    pub(super) const ALL: [Self; 4] = [Self::Md5, Self::Sha1, Self::Sha256, Self::Sha512];

    pub(super) fn tag(self) -> &'static str {
        match self {
            Self::Md5 => "md5",
            Self::Sha1 => "sha1",
            Self::Sha256 => "sha256",
            Self::Sha512 => "sha512",
        }
    }

    pub(super) fn from_tag(tag: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.tag() == tag)
    }

    pub(super) fn scheme(self) -> &'static str {
        match self {
            Self::Md5 => "salted-md5",
            Self::Sha1 => "salted-sha1",
            Self::Sha256 => "salted-sha256",
            Self::Sha512 => "salted-sha512",
        }
    }

    pub(super) fn output_len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }
}

/// Where the salt goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    Prefix,
    Suffix,
    None,
}

impl Position {
    pub(super) fn tag(self) -> &'static str {
        match self {
            Self::Prefix => "prefix",
            Self::Suffix => "suffix",
            Self::None => "none",
        }
    }
}

/// The algorithm a `$keyward-salted$` string names (md5 when it names none that is known), so
/// that each string has exactly one claiming scheme and a precise error.
pub(super) fn claimed_alg(s: &str) -> DigestAlg {
    let tag = s
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(','))
        .map(|(tag, _)| tag);
    tag.and_then(DigestAlg::from_tag).unwrap_or(DigestAlg::Md5)
}

/// A parsed `$keyward-salted$` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SaltedDigest {
    pub(super) alg: DigestAlg,
    pub(super) position: Position,
    pub(super) salt: Vec<u8>,
    pub(super) digest: Vec<u8>,
}

impl SaltedDigest {
    /// Builds one, checking the invariants `parse` checks.
    pub(super) fn new(
        alg: DigestAlg,
        position: Position,
        salt: Vec<u8>,
        digest: Vec<u8>,
    ) -> Result<Self, HashError> {
        let scheme = alg.scheme();
        if digest.len() != alg.output_len() {
            return Err(malformed(scheme, "digest has the wrong length"));
        }
        if salt.len() > MAX_SALT_BYTES {
            return Err(malformed(scheme, "salt longer than 256 bytes"));
        }
        if (position == Position::None) != salt.is_empty() {
            return Err(malformed(
                scheme,
                "a salt needs a position and a position needs a salt",
            ));
        }
        Ok(Self {
            alg,
            position,
            salt,
            digest,
        })
    }

    /// Parses the canonical form.
    pub(super) fn parse(s: &str) -> Result<Self, HashError> {
        let scheme_guess = claimed_alg(s).scheme();
        let bad = |reason| malformed(scheme_guess, reason);
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or(bad("expected $keyward-salted$v=1$"))?;
        let mut fields = rest.split('$');
        let (Some(kind), Some(salt), Some(digest), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected alg,position$salt$digest"));
        };
        let (alg, position) = kind.split_once(',').ok_or(bad("expected alg,position"))?;
        let alg = DigestAlg::from_tag(alg).ok_or(bad("unknown digest algorithm"))?;
        let position = match position {
            "prefix" => Position::Prefix,
            "suffix" => Position::Suffix,
            "none" => Position::None,
            _ => return Err(bad("unknown salt position")),
        };
        if salt.len() > MAX_SALT_BYTES.div_ceil(3) * 4 {
            return Err(bad("salt longer than 256 bytes"));
        }
        let salt = BASE64URL_NOPAD
            .decode(salt.as_bytes())
            .map_err(|_| bad("salt is not canonical unpadded base64url"))?;
        let digest = HEXLOWER
            .decode(digest.as_bytes())
            .map_err(|_| bad("digest is not lowercase hex"))?;
        Self::new(alg, position, salt, digest)
    }
}

impl fmt::Display for SaltedDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{PREFIX}{},{}${}${}",
            self.alg.tag(),
            self.position.tag(),
            BASE64URL_NOPAD.encode(&self.salt),
            HEXLOWER.encode(&self.digest)
        )
    }
}
