//! Recovery codes: single-use codes that sign a user in once in place of a TOTP code, for the
//! day the authenticator is lost and no administrator is at hand.
//!
//! A set is made when an authenticator is confirmed and on demand
//! ([`Keyward::regenerate_recovery_codes`](crate::Keyward::regenerate_recovery_codes)); it is
//! shown once ([`RecoveryCodes`]) and stored only as digests. A new set voids the old one, and
//! so does a reset or a new authenticator.
//!
//! Each code is 80 random bits from the OS, written as 16 characters of the RFC 4648 base32
//! alphabet in four groups (`k7qm-2xra-p4tn-e6wc`); case, spaces and dashes are ignored when
//! one is typed back. With 80 bits of entropy a slow password hash adds nothing, so a code is
//! kept as SHA-256 over a domain, the user id and the code: nothing precomputed works across
//! users, and a digest found in a row names no other account's code. Checking a code compares
//! its digest with every stored one in constant time.

use std::fmt;

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::{TotpError, os_random};
use crate::secret::RecoveryCode;
use crate::user::{StoredHash, UserId};

/// Random bytes per code (80 bits).
const CODE_BYTES: usize = 10;
/// Base32 characters per code.
const CODE_CHARS: usize = 16;
/// Characters per group of a shown code.
const GROUP: usize = 4;
/// The longest typed input looked at: a code with generous separators.
const MAX_TYPED_LEN: usize = 64;
/// Domain of a code's digest.
const DIGEST_DOMAIN: &[u8] = b"keyward recovery code v1\0";
/// The prefix of a stored digest.
const DIGEST_PREFIX: &str = "$sha256$";

/// The most codes one set may hold.
pub const MAX_CODES: usize = 32;

/// A new set of recovery codes, to show the user once (print, download, copy). The codes are
/// zeroized on drop and never printed by `Debug`; keyward keeps only their digests.
pub struct RecoveryCodes(Vec<Zeroizing<String>>);

impl RecoveryCodes {
    /// How many codes the set holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty (never, for a set keyward made).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The codes as text, each `xxxx-xxxx-xxxx-xxxx`. Every call site is a place where the
    /// codes leave their box: show them to the user and nowhere else.
    pub fn expose_secrets(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|c| c.as_str())
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryCodes")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// Makes `count` codes for `user` (at least 1, at most [`MAX_CODES`]): the set to show and the
/// digests to store.
///
/// # Errors
/// [`TotpError::Random`] when the OS random source fails.
pub fn generate(
    user: &UserId,
    count: usize,
) -> Result<(RecoveryCodes, Vec<StoredHash>), TotpError> {
    let count = count.clamp(1, MAX_CODES);
    let mut codes = Vec::with_capacity(count);
    let mut digests = Vec::with_capacity(count);
    for _ in 0..count {
        let mut bytes = Zeroizing::new([0u8; CODE_BYTES]);
        os_random(bytes.as_mut())?;
        let mut chars = Zeroizing::new([0u8; CODE_CHARS]);
        BASE32_NOPAD.encode_mut(bytes.as_ref(), chars.as_mut());
        chars.make_ascii_lowercase();
        digests.push(digest_of(user, &chars));
        // The shown form, written into a buffer of its final size (no reallocation leaves a
        // copy behind).
        let mut shown = Zeroizing::new(String::with_capacity(CODE_CHARS + CODE_CHARS / GROUP));
        for (i, group) in chars.chunks(GROUP).enumerate() {
            if i > 0 {
                shown.push('-');
            }
            group.iter().for_each(|&b| shown.push(char::from(b)));
        }
        codes.push(shown);
    }
    Ok((RecoveryCodes(codes), digests))
}

/// The digest a typed code would have if it is one of `user`'s, or `None` when it cannot be
/// a code at all (wrong length or characters); a `None` is still a wrong answer for the
/// caller, counted like any other.
#[must_use]
pub fn digest_typed(user: &UserId, typed: &RecoveryCode) -> Option<StoredHash> {
    let typed = typed.expose_secret();
    if typed.len() > MAX_TYPED_LEN {
        return None;
    }
    let mut chars = Zeroizing::new([0u8; CODE_CHARS]);
    let mut n = 0;
    for b in typed.bytes() {
        match b {
            b'-' | b' ' | b'\t' => {}
            b'a'..=b'z' | b'A'..=b'Z' | b'2'..=b'7' if n < CODE_CHARS => {
                chars[n] = b.to_ascii_lowercase();
                n += 1;
            }
            _ => return None,
        }
    }
    (n == CODE_CHARS).then(|| digest_of(user, &chars))
}

/// Whether `stored` has the form of a digest this module writes (its prefix and 64 lowercase
/// hex digits): what a store reading one back checks.
#[must_use]
pub fn is_digest(stored: &str) -> bool {
    stored.strip_prefix(DIGEST_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// Where `digest` stands among `stored`, compared with every entry in constant time.
#[must_use]
pub fn position(stored: &[StoredHash], digest: &StoredHash) -> Option<usize> {
    let mut found = None;
    for (i, s) in stored.iter().enumerate() {
        let equal: bool = s
            .as_str()
            .as_bytes()
            .ct_eq(digest.as_str().as_bytes())
            .into();
        if equal && found.is_none() {
            found = Some(i);
        }
    }
    found
}

fn digest_of(user: &UserId, chars: &[u8; CODE_CHARS]) -> StoredHash {
    let mut h = Sha256::new();
    h.update(DIGEST_DOMAIN);
    h.update(user.as_str().as_bytes());
    h.update([0]);
    h.update(chars);
    let hex = data_encoding::HEXLOWER.encode(&h.finalize());
    StoredHash::new(format!("{DIGEST_PREFIX}{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_code_typed_back_in_any_case_and_spacing_matches_its_digest() {
        let user = UserId::generate();
        let (codes, digests) = generate(&user, 10).unwrap();
        assert_eq!(codes.len(), 10);
        let shown: Vec<&str> = codes.expose_secrets().collect();
        for (code, digest) in shown.iter().zip(&digests) {
            assert_eq!(code.len(), 19);
            assert_eq!(code.matches('-').count(), 3);
            let variants = [
                code.to_string(),
                code.to_uppercase(),
                code.replace('-', ""),
                code.replace('-', " "),
            ];
            for typed in variants {
                let typed = RecoveryCode::new(typed);
                assert_eq!(digest_typed(&user, &typed).as_ref(), Some(digest));
            }
        }
        let distinct: std::collections::HashSet<_> = shown.iter().collect();
        assert_eq!(distinct.len(), 10, "codes repeat");
    }

    #[test]
    fn another_users_digest_of_the_same_code_differs() {
        let (a, b) = (UserId::generate(), UserId::generate());
        let (codes, digests) = generate(&a, 1).unwrap();
        let code = RecoveryCode::new(codes.expose_secrets().next().unwrap());
        assert_ne!(digest_typed(&b, &code), Some(digests[0].clone()));
    }

    #[test]
    fn malformed_input_is_no_code() {
        let user = UserId::generate();
        for typed in [
            "",
            "abcd",
            "abcd-efgh-ijkl-mno1",
            "abcd-efgh-ijkl-mnopq",
            "äbcd-efgh-ijkl-mnop",
        ] {
            assert_eq!(
                digest_typed(&user, &RecoveryCode::new(typed)),
                None,
                "{typed}"
            );
        }
        let long = "-".repeat(10_000) + "abcdefghijklmnop";
        assert_eq!(digest_typed(&user, &RecoveryCode::new(long)), None);
    }

    #[test]
    fn the_set_never_shows_in_debug() {
        let (codes, _) = generate(&UserId::generate(), 3).unwrap();
        let debug = format!("{codes:?}");
        for code in codes.expose_secrets() {
            assert!(!debug.contains(code));
        }
        assert!(debug.contains("len: 3"));
    }

    proptest::proptest! {
        /// Any text at all: never a panic, and a digest only for what could be a code.
        #[test]
        fn typed_text_never_panics(text in ".{0,80}") {
            let user = UserId::generate();
            let digest = digest_typed(&user, &RecoveryCode::new(text.as_str()));
            let letters = text.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).count();
            if digest.is_some() {
                proptest::prop_assert_eq!(letters, CODE_CHARS);
            }
        }

        /// A code typed with any case and any separators between its characters is the code.
        #[test]
        fn case_and_separators_do_not_matter(
            seps in proptest::collection::vec("[- \t]{0,2}", CODE_CHARS),
            upper in proptest::collection::vec(proptest::bool::ANY, CODE_CHARS),
        ) {
            let user = UserId::generate();
            let (codes, digests) = generate(&user, 1).unwrap();
            let plain: String = codes.expose_secrets().next().unwrap().replace('-', "");
            let typed: String = plain
                .chars()
                .zip(seps.iter().zip(&upper))
                .map(|(c, (sep, up))| {
                    let c = if *up { c.to_ascii_uppercase() } else { c };
                    format!("{sep}{c}")
                })
                .collect();
            if typed.len() <= MAX_TYPED_LEN {
                let digest = digest_typed(&user, &RecoveryCode::new(typed));
                proptest::prop_assert_eq!(digest.as_ref(), Some(&digests[0]));
            }
        }
    }

    #[test]
    fn every_digest_made_has_the_stored_form() {
        let (_, digests) = generate(&UserId::generate(), 3).unwrap();
        assert!(digests.iter().all(|d| is_digest(d.as_str())));
        for bad in ["", "$sha256$", "$sha256$ABCD", "abcd-efgh-ijkl-mnop"] {
            assert!(!is_digest(bad), "{bad:?}");
        }
        let upper = digests[0].as_str().to_uppercase();
        assert!(!is_digest(&upper));
    }

    #[test]
    fn position_finds_the_entry() {
        let user = UserId::generate();
        let (_, digests) = generate(&user, 5).unwrap();
        assert_eq!(position(&digests, &digests[3]), Some(3));
        assert_eq!(position(&digests[..3], &digests[3]), None);
    }
}
