//! Property tests: parse -> print -> parse for every string format keyward writes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::{Hasher, HashingMethod, ImportRecord, Password, SaltPosition};
use proptest::prelude::*;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// The canonical salted wrapper round-trips exactly, for any salt text and digest.
    #[test]
    fn salted_wrapper_round_trips(
        salt in "\\PC{1,40}",
        digest in proptest::collection::vec(any::<u8>(), 32),
        sha in any::<bool>(),
        prefix in any::<bool>(),
        upper in any::<bool>(),
    ) {
        let h = Hasher::for_tests();
        let digest = if sha { digest } else { digest[..16].to_vec() };
        let hexed = if upper { hex(&digest).to_uppercase() } else { hex(&digest) };
        let record = ImportRecord {
            hashing_method: Some(if sha { HashingMethod::Sha256 } else { HashingMethod::Md5 }),
            salt: Some(salt),
            salt_position: Some(if prefix { SaltPosition::Prefix } else { SaltPosition::Suffix }),
            ..ImportRecord::new(hexed)
        };
        let imported = h.import(&record).unwrap();
        let parsed = h.parse(imported.as_str()).unwrap();
        prop_assert_eq!(parsed.as_str(), imported.as_str());
        prop_assert_eq!(parsed.scheme(), imported.scheme());
        let reparsed = h.parse(parsed.as_str()).unwrap();
        prop_assert_eq!(reparsed, parsed);
    }

    /// Argon2 output parses back to itself, and the password verifies.
    #[test]
    fn argon2_output_round_trips(password in "\\PC{0,24}") {
        let h = Hasher::for_tests();
        let pw = Password::new(password.as_str());
        let hash = h.hash(&pw).unwrap();
        let parsed = h.parse(hash.as_str()).unwrap();
        prop_assert_eq!(&parsed, &hash);
        prop_assert!(h.verify(&pw, &parsed).unwrap().is_match());
        let imported = h.import(&ImportRecord::new(hash.as_str())).unwrap();
        prop_assert_eq!(h.parse(imported.as_str()).unwrap(), imported);
    }

    /// A wrapped salted digest round-trips, verifies the password the digest was made of, and
    /// refuses another, for any salt, algorithm and position.
    #[test]
    fn wrapped_digest_round_trips_and_verifies(
        password in "\\PC{0,24}",
        salt in "\\PC{1,40}",
        alg in 0usize..4,
        prefix in any::<bool>(),
    ) {
        use sha2::Digest as _;
        let h = Hasher::for_tests().wrapping_fast_imports();
        let data = if prefix {
            format!("{salt}{password}")
        } else {
            format!("{password}{salt}")
        };
        let (method, digest) = match alg {
            0 => (HashingMethod::Md5, md5::Md5::digest(data.as_bytes()).to_vec()),
            1 => (HashingMethod::Sha1, sha1::Sha1::digest(data.as_bytes()).to_vec()),
            2 => (HashingMethod::Sha256, sha2::Sha256::digest(data.as_bytes()).to_vec()),
            _ => (HashingMethod::Sha512, sha2::Sha512::digest(data.as_bytes()).to_vec()),
        };
        let record = ImportRecord {
            hashing_method: Some(method),
            salt: Some(salt),
            salt_position: Some(if prefix { SaltPosition::Prefix } else { SaltPosition::Suffix }),
            ..ImportRecord::new(hex(&digest))
        };
        let wrapped = h.import(&record).unwrap();
        prop_assert_eq!(wrapped.scheme(), "wrapped-legacy");
        prop_assert!(!wrapped.as_str().contains(&hex(&digest)));
        let parsed = h.parse(wrapped.as_str()).unwrap();
        prop_assert_eq!(&parsed, &wrapped);
        prop_assert!(h.verify(&Password::new(password.as_str()), &parsed).unwrap().is_match());
        let other = Password::new(format!("{password}x"));
        prop_assert!(!h.verify(&other, &parsed).unwrap().is_match());
    }

    /// Parsing arbitrary text never panics, and whatever parses re-parses identically.
    #[test]
    fn parse_is_total(s in "\\PC{0,80}|\\$(2[abxy]|1|5|6|P|H|S|y|wp|argon2id|scrypt|pbkdf2|pbkdf2-sha256|keyward-salted|keyward-wrapped)\\$[ -~]{0,70}|(\\{(SSHA|SHA|MD5|SMD5|CRYPT|SSHA512)\\}|pbkdf2_sha256\\$|scrypt\\$|U\\$S\\$)[ -~]{0,70}") {
        let h = Hasher::for_tests();
        if let Ok(p) = h.parse(&s) {
            prop_assert_eq!(h.parse(p.as_str()).unwrap(), p);
        }
    }
}
