//! Fast legacy hashes protected at rest: the legacy digest is replaced by argon2id over it.
//!
//! ```text
//! $keyward-wrapped$v=1$<legacy>$<setting>$<argon2id PHC string over the legacy digest>
//! legacy  = md5,none | md5,prefix | ... | sha512,suffix   a plain or salted digest (any source:
//!                                                        bare hex, Kinde records, LDAP {SSHA}...)
//!         | des-crypt | md5-crypt | phpass               a crypt-style fast hash
//! setting = unpadded base64url of: the salt bytes (digests), the 2 salt characters (DES),
//!           the `$1$salt$` prefix (md5-crypt), the 12-character `$P$` prefix (phpass)
//! ```
//!
//! The legacy digest is the raw digest bytes for the digest family, and the digest's text as
//! stored (11 or 22 characters of crypt base64) for the crypt-style ones. Verifying computes
//! the legacy digest of the candidate password from the setting, then verifies the argon2id
//! string over it. A stolen database thus holds argon2id outputs only: an attacker pays the
//! legacy hash *and* argon2id for every guess, even for users who never signed in again.
//! The first successful sign-in replaces the string by plain argon2id (it is never "current").

#![allow(deprecated)] // pwhash marks the legacy algorithms deprecated for *new* hashes.

use data_encoding::{BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};
use zeroize::Zeroizing;

use super::canonical::{DigestAlg, MAX_SALT_BYTES, Position, SaltedDigest};
use super::error::BackendError;
use super::ldap::{LdapCrypt, LdapDigest};
use super::wordpress::Phpass;
use super::{
    Argon2Policy, HashError, HashLimits, HashScheme, SchemeMatch, argon2, is_crypt64, malformed,
    salted,
};

/// Scheme name of wrapped hashes.
pub(super) const NAME: &str = "wrapped-legacy";
/// The wrapper's prefix.
pub(super) const PREFIX: &str = "$keyward-wrapped$v=1$";

/// How to recompute a fast legacy digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Legacy {
    /// H(password), H(salt ‖ password) or H(password ‖ salt).
    Digest {
        alg: DigestAlg,
        position: Position,
        salt: Vec<u8>,
    },
    /// Traditional DES crypt with its 2 salt characters.
    DesCrypt(String),
    /// md5-crypt with its `$1$salt$` prefix.
    Md5Crypt(String),
    /// phpass with its 12-character setting.
    Phpass(String),
}

impl Legacy {
    /// The `<legacy>` token and the setting bytes.
    fn encode(&self) -> (String, &[u8]) {
        match self {
            Self::Digest {
                alg,
                position,
                salt,
            } => (format!("{},{}", alg.tag(), position.tag()), salt),
            Self::DesCrypt(s) => ("des-crypt".into(), s.as_bytes()),
            Self::Md5Crypt(s) => ("md5-crypt".into(), s.as_bytes()),
            Self::Phpass(s) => ("phpass".into(), s.as_bytes()),
        }
    }

    fn decode(token: &str, setting: Vec<u8>, limits: &HashLimits) -> Result<Self, HashError> {
        let bad = |reason| malformed(NAME, reason);
        let text = || String::from_utf8(setting.clone()).map_err(|_| bad("setting is not text"));
        let legacy = match token {
            "des-crypt" => {
                let salt = text()?;
                if salt.len() != 2 || !is_crypt64(&salt) {
                    return Err(bad("des-crypt setting must be 2 characters"));
                }
                Self::DesCrypt(salt)
            }
            "md5-crypt" => {
                let prefix = text()?;
                let salt = prefix
                    .strip_prefix("$1$")
                    .and_then(|s| s.strip_suffix('$'))
                    .ok_or(bad("md5-crypt setting must be $1$salt$"))?;
                if salt.is_empty() || salt.len() > 8 || !is_crypt64(salt) {
                    return Err(bad("md5-crypt salt must be 1 to 8 characters"));
                }
                Self::Md5Crypt(prefix)
            }
            "phpass" => {
                let prefix = text()?;
                Phpass::setting_log2(&prefix, limits)?;
                Self::Phpass(prefix)
            }
            _ => {
                let (alg, position) = token.split_once(',').ok_or(bad("unknown legacy scheme"))?;
                let alg = DigestAlg::from_tag(alg).ok_or(bad("unknown digest algorithm"))?;
                let position = match position {
                    "prefix" => Position::Prefix,
                    "suffix" => Position::Suffix,
                    "none" => Position::None,
                    _ => return Err(bad("unknown salt position")),
                };
                if (position == Position::None) != setting.is_empty() {
                    return Err(bad("a salt needs a position and a position needs a salt"));
                }
                if setting.len() > MAX_SALT_BYTES {
                    return Err(bad("salt longer than 256 bytes"));
                }
                Self::Digest {
                    alg,
                    position,
                    salt: setting,
                }
            }
        };
        Ok(legacy)
    }

    /// The legacy digest of `password`.
    fn compute(
        &self,
        password: &[u8],
        limits: &HashLimits,
    ) -> Result<Zeroizing<Vec<u8>>, HashError> {
        let backend = |e: pwhash::error::Error| HashError::Backend {
            scheme: NAME,
            source: BackendError::new(e),
        };
        let tail = |s: String| -> Zeroizing<Vec<u8>> {
            let s = Zeroizing::new(s);
            Zeroizing::new(s.rsplit('$').next().unwrap_or_default().as_bytes().to_vec())
        };
        Ok(match self {
            Self::Digest {
                alg,
                position,
                salt,
            } => Zeroizing::new(salted::compute(*alg, *position, salt, password)),
            Self::DesCrypt(salt) => {
                let used = password.get(..8).unwrap_or(password);
                let full =
                    Zeroizing::new(pwhash::unix_crypt::hash_with(salt, used).map_err(backend)?);
                Zeroizing::new(full.as_bytes().get(2..).unwrap_or_default().to_vec())
            }
            Self::Md5Crypt(prefix) => {
                tail(pwhash::md5_crypt::hash_with(prefix.as_str(), password).map_err(backend)?)
            }
            Self::Phpass(setting) => {
                Zeroizing::new(Phpass::digest(setting, password, limits)?.into_bytes())
            }
        })
    }
}

/// A fast hash taken apart: how to recompute its digest, and the stored digest.
pub(super) type Split = Result<(Legacy, Zeroizing<Vec<u8>>), HashError>;

/// The legacy recipe and stored digest of a fast hash detected as `scheme`, or `None` when
/// the scheme is not a fast one.
pub(super) fn split(scheme: &str, stored: &str) -> Option<Split> {
    let digest = |alg, position, salt, digest| {
        Ok((
            Legacy::Digest {
                alg,
                position,
                salt,
            },
            Zeroizing::new(digest),
        ))
    };
    let text = |s: &str| Zeroizing::new(s.as_bytes().to_vec());
    Some(match scheme {
        "md5" => HEXLOWER_PERMISSIVE
            .decode(stored.as_bytes())
            .map_err(|_| malformed("md5", "expected 32 hex digits"))
            .and_then(|d| digest(DigestAlg::Md5, Position::None, Vec::new(), d)),
        "salted-md5" | "salted-sha1" | "salted-sha256" | "salted-sha512" => {
            SaltedDigest::parse(stored).and_then(|p| digest(p.alg, p.position, p.salt, p.digest))
        }
        "des-crypt" => match stored.split_at_checked(2) {
            Some((salt, d)) => Ok((Legacy::DesCrypt(salt.to_owned()), text(d))),
            None => Err(malformed("des-crypt", "too short")),
        },
        "md5-crypt" => match stored.rfind('$').map(|i| stored.split_at(i + 1)) {
            Some((prefix, d)) => Ok((Legacy::Md5Crypt(prefix.to_owned()), text(d))),
            None => Err(malformed("md5-crypt", "expected $1$salt$digest")),
        },
        "phpass" => match stored.split_at_checked(12) {
            Some((setting, d)) => Ok((Legacy::Phpass(setting.to_owned()), text(d))),
            None => Err(malformed("phpass", "expected 34 characters")),
        },
        "ldap-crypt" => match LdapCrypt::inner(stored) {
            Ok((inner_scheme, inner)) => split(inner_scheme.name(), inner)?,
            Err(e) => Err(e),
        },
        _ => {
            let ldap = LdapDigest::ALL.into_iter().find(|l| l.name() == scheme)?;
            ldap.parts(stored)
                .and_then(|p| digest(p.alg, p.position, p.salt, p.digest))
        }
    })
}

/// The wrapped string for a fast hash: argon2id under `policy` over its legacy digest.
pub(super) fn wrap(
    legacy: &Legacy,
    digest: &[u8],
    policy: &Argon2Policy,
) -> Result<String, HashError> {
    let phc = argon2::hash_new(policy, digest)?;
    let (token, setting) = legacy.encode();
    Ok(format!(
        "{PREFIX}{token}${}{phc}",
        BASE64URL_NOPAD.encode(setting)
    ))
}

/// How far above the policy a wrapped hash's argon2id may be, per parameter: keyward writes it
/// itself, under its policy, so a wrapped string far above it did not come from keyward. The
/// bound is taken over the larger of the policy and [`Argon2Policy::DEFAULT`], so that a
/// deployment moving between OWASP's equivalent profiles
/// ([`Argon2Policy::OWASP_EQUIVALENT`]) still reads the hashes it wrapped before.
const POLICY_SLACK: u32 = 4;

/// The limits a wrapped hash's inner argon2id is checked against: `limits`, lowered to
/// [`POLICY_SLACK`] times the policy's parameters (at least the default's).
fn inner_limits(policy: &Argon2Policy, limits: &HashLimits) -> HashLimits {
    let floor = Argon2Policy::DEFAULT;
    let cap = |own: u32, floor: u32, max: u32| own.max(floor).saturating_mul(POLICY_SLACK).min(max);
    HashLimits {
        max_argon2_m_kib: cap(policy.m_cost_kib, floor.m_cost_kib, limits.max_argon2_m_kib),
        max_argon2_t: cap(policy.t_cost, floor.t_cost, limits.max_argon2_t),
        max_argon2_p: cap(policy.p_cost, floor.p_cost, limits.max_argon2_p),
        ..*limits
    }
}

/// A parsed wrapped string: the legacy recipe and the argon2 PHC string.
fn parse<'a>(
    stored: &'a str,
    policy: &Argon2Policy,
    limits: &HashLimits,
) -> Result<(Legacy, &'a str), HashError> {
    let bad = |reason| malformed(NAME, reason);
    let rest = stored
        .strip_prefix(PREFIX)
        .ok_or(bad("expected $keyward-wrapped$v=1$"))?;
    let (token, rest) = rest
        .split_once('$')
        .ok_or(bad("expected legacy$setting$phc"))?;
    let (setting, _) = rest
        .split_once('$')
        .ok_or(bad("expected legacy$setting$phc"))?;
    let phc = rest.get(setting.len()..).unwrap_or_default();
    if !phc.starts_with("$argon2id$") {
        return Err(bad("the inner hash must be argon2id"));
    }
    if setting.len() > MAX_SALT_BYTES.div_ceil(3) * 4 {
        return Err(bad("setting longer than 256 bytes"));
    }
    let setting = BASE64URL_NOPAD
        .decode(setting.as_bytes())
        .map_err(|_| bad("setting is not canonical unpadded base64url"))?;
    let legacy = Legacy::decode(token, setting, limits)?;
    argon2::check_written(NAME, phc, &inner_limits(policy, limits))?;
    Ok((legacy, phc))
}

/// `$keyward-wrapped$v=1$...`, read by a hasher writing under `policy`: the inner argon2id is
/// bounded by [`inner_limits`] and must have keyward's shape (argon2id, v=19, 32-byte tag).
#[derive(Debug, Clone, Copy)]
pub(super) struct Wrapped {
    policy: Argon2Policy,
}

impl Wrapped {
    pub(super) fn new(policy: Argon2Policy) -> Self {
        Self { policy }
    }
}

impl HashScheme for Wrapped {
    fn name(&self) -> &'static str {
        NAME
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$keyward-wrapped$")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        parse(stored, &self.policy, limits).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let (legacy, phc) = parse(stored, &self.policy, limits)?;
        let digest = legacy.compute(password, limits)?;
        argon2::verify_written(NAME, &digest, phc, &inner_limits(&self.policy, limits))
    }
}
