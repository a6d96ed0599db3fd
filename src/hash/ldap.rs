//! LDAP `userPassword` values (RFC 2307 `{scheme}` prefix, case-insensitive, as OpenLDAP reads
//! it): the digests `{SHA}`, `{SSHA}`, `{SHA256}`, `{SSHA256}`, `{SHA512}`, `{SSHA512}`, `{MD5}`,
//! `{SMD5}` — base64(H(password ‖ salt) ‖ salt), the salt empty for the unsalted ones, as
//! OpenLDAP's `slappasswd` and its `pw-sha2` module write them — and `{CRYPT}` followed by any
//! crypt(3) string keyward reads.

use data_encoding::BASE64;

use super::canonical::{DigestAlg, MAX_SALT_BYTES, Position};
use super::{
    HashError, HashLimits, HashScheme, SchemeMatch, bcrypt, crypt, ct_eq, malformed, salted,
    yescrypt,
};

/// `{TAG}` + the rest, if `stored` starts with `{tag}` in any case.
fn strip_tag<'a>(stored: &'a str, tag: &str) -> Option<&'a str> {
    let head = stored.get(..tag.len() + 2)?;
    let inner = head.strip_prefix('{')?.strip_suffix('}')?;
    inner
        .eq_ignore_ascii_case(tag)
        .then(|| stored.get(tag.len() + 2..))
        .flatten()
}

/// One LDAP digest scheme.
#[derive(Debug, Clone, Copy)]
pub(super) struct LdapDigest {
    name: &'static str,
    tag: &'static str,
    alg: DigestAlg,
    salted: bool,
}

/// The parts of an LDAP digest value.
pub(super) struct Parts {
    pub(super) alg: DigestAlg,
    pub(super) position: Position,
    pub(super) salt: Vec<u8>,
    pub(super) digest: Vec<u8>,
}

impl LdapDigest {
    pub(super) const ALL: [Self; 8] = [
        Self::new("ldap-sha1", "SHA", DigestAlg::Sha1, false),
        Self::new("ldap-salted-sha1", "SSHA", DigestAlg::Sha1, true),
        Self::new("ldap-sha256", "SHA256", DigestAlg::Sha256, false),
        Self::new("ldap-salted-sha256", "SSHA256", DigestAlg::Sha256, true),
        Self::new("ldap-sha512", "SHA512", DigestAlg::Sha512, false),
        Self::new("ldap-salted-sha512", "SSHA512", DigestAlg::Sha512, true),
        Self::new("ldap-md5", "MD5", DigestAlg::Md5, false),
        Self::new("ldap-salted-md5", "SMD5", DigestAlg::Md5, true),
    ];

    const fn new(name: &'static str, tag: &'static str, alg: DigestAlg, salted: bool) -> Self {
        Self {
            name,
            tag,
            alg,
            salted,
        }
    }

    /// Parses a value of this scheme.
    pub(super) fn parts(&self, stored: &str) -> Result<Parts, HashError> {
        let body = strip_tag(stored, self.tag).ok_or(malformed(self.name, "wrong scheme tag"))?;
        let mut decoded = BASE64
            .decode(body.as_bytes())
            .map_err(|_| malformed(self.name, "not padded base64"))?;
        let n = self.alg.output_len();
        let salt_len = decoded.len().saturating_sub(n);
        if decoded.len() < n || (self.salted && salt_len == 0) || (!self.salted && salt_len != 0) {
            return Err(malformed(self.name, "digest or salt has the wrong length"));
        }
        if salt_len > MAX_SALT_BYTES {
            return Err(malformed(self.name, "salt longer than 256 bytes"));
        }
        let salt = decoded.split_off(n);
        Ok(Parts {
            alg: self.alg,
            position: if self.salted {
                Position::Suffix
            } else {
                Position::None
            },
            salt,
            digest: decoded,
        })
    }
}

impl HashScheme for LdapDigest {
    fn name(&self) -> &'static str {
        self.name
    }

    fn detect(&self, stored: &str) -> bool {
        strip_tag(stored, self.tag).is_some()
    }

    fn check(&self, stored: &str, _limits: &HashLimits) -> Result<(), HashError> {
        self.parts(stored).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        _limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let p = self.parts(stored)?;
        let computed = salted::compute(p.alg, p.position, &p.salt, password);
        Ok(ct_eq(&computed, &p.digest).into())
    }
}

/// `{CRYPT}` + a crypt(3) string.
#[derive(Debug, Clone, Copy)]
pub(super) struct LdapCrypt;

/// The crypt(3) schemes a `{CRYPT}` value may hold.
const CRYPT_SCHEMES: [&dyn HashScheme; 7] = [
    &bcrypt::Bcrypt,
    &yescrypt::Yescrypt,
    &crypt::Md5Crypt,
    &crypt::ShaCrypt::SHA256,
    &crypt::ShaCrypt::SHA512,
    &crypt::BsdiCrypt,
    &crypt::DesCrypt,
];

impl LdapCrypt {
    const NAME: &'static str = "ldap-crypt";

    /// The crypt(3) string inside and the scheme that reads it.
    pub(super) fn inner(stored: &str) -> Result<(&'static dyn HashScheme, &str), HashError> {
        let inner = strip_tag(stored, "CRYPT").ok_or(malformed(Self::NAME, "expected {CRYPT}"))?;
        let scheme = CRYPT_SCHEMES
            .into_iter()
            .find(|s| s.detect(inner))
            .ok_or(malformed(Self::NAME, "not a crypt(3) string keyward reads"))?;
        Ok((scheme, inner))
    }
}

impl HashScheme for LdapCrypt {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn detect(&self, stored: &str) -> bool {
        strip_tag(stored, "CRYPT").is_some()
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        let (scheme, inner) = Self::inner(stored)?;
        scheme.check(inner, limits)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let (scheme, inner) = Self::inner(stored)?;
        scheme.verify(password, inner, limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_match_in_any_case_and_only_whole() {
        assert_eq!(strip_tag("{ssha}abc", "SSHA"), Some("abc"));
        assert_eq!(strip_tag("{SSHA}", "SSHA"), Some(""));
        assert_eq!(strip_tag("{SSHA256}abc", "SSHA"), None);
        assert_eq!(strip_tag("{SSH", "SSHA"), None);
        assert_eq!(strip_tag("{SSHé}", "SSHA"), None);
    }
}
