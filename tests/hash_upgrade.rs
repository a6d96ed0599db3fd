//! keyward's own hashes, NFKC, upgrades, custom schemes, the dummy verification.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::hash::{HashLimits, HashScheme, SchemeMatch};
use keyward::{Argon2Policy, HashError, Hasher, ImportRecord, Password, Verification};

#[test]
fn hash_then_verify_is_a_plain_match() {
    let h = Hasher::for_tests();
    let hash = h.hash(&Password::new("correct horse")).unwrap();
    assert_eq!(hash.scheme(), "argon2");
    assert!(hash.as_str().starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
    assert_eq!(
        h.verify(&Password::new("correct horse"), &hash).unwrap(),
        Verification::Match
    );
    assert_eq!(
        h.verify(&Password::new("correct horsf"), &hash).unwrap(),
        Verification::NoMatch
    );
    assert!(!h.needs_upgrade(&hash));
    // Salts are random.
    assert_ne!(hash, h.hash(&Password::new("correct horse")).unwrap());
}

#[test]
fn new_hashes_use_nfkc_but_imports_are_byte_exact() {
    let h = Hasher::for_tests();
    // U+FB01 LATIN SMALL LIGATURE FI is "fi" under NFKC; U+00C5 vs A + U+030A are one under NFC.
    let hash = h.hash(&Password::new("\u{FB01}le-\u{00C5}")).unwrap();
    assert!(
        h.verify(&Password::new("file-A\u{030A}"), &hash)
            .unwrap()
            .is_match()
    );
    assert!(
        h.verify(&Password::new("\u{FB01}le-\u{00C5}"), &hash)
            .unwrap()
            .is_match()
    );

    // The same argon2 string, imported, is verified over the exact bytes only.
    let imported = h.import(&ImportRecord::new(hash.as_str())).unwrap();
    assert_eq!(imported.scheme(), "argon2-imported");
    assert_eq!(
        h.verify(&Password::new("\u{FB01}le-\u{00C5}"), &imported)
            .unwrap(),
        Verification::NoMatch
    );
    let up = h
        .verify(&Password::new("file-\u{00C5}"), &imported)
        .unwrap();
    let Verification::MatchUpgraded {
        new_hash,
        from_scheme,
    } = up
    else {
        panic!("{up:?}")
    };
    assert_eq!(from_scheme, "argon2-imported");
    assert_eq!(
        h.verify(&Password::new("file-\u{00C5}"), &new_hash)
            .unwrap(),
        Verification::Match
    );
}

#[test]
fn other_policies_are_upgraded() {
    let old = Hasher::for_tests();
    let hash = old.hash(&Password::new("pw")).unwrap();
    let new = Hasher::new(
        Argon2Policy::new(8 * 1024, 1, 1).unwrap(),
        HashLimits::DEFAULT,
    );
    let Verification::MatchUpgraded {
        new_hash,
        from_scheme: "argon2",
    } = new.verify(&Password::new("pw"), &hash).unwrap()
    else {
        panic!()
    };
    assert!(
        new_hash
            .as_str()
            .starts_with("$argon2id$v=19$m=8192,t=1,p=1$")
    );
    assert!(!new.needs_upgrade(&new_hash));
    assert!(new.needs_upgrade(&hash));
    // argon2i written by someone else with our parameters still upgrades.
    let i = "$argon2i$v=19$m=32,t=3,p=1$c29tZXNhbHRzb21lc2FsdA$".to_owned();
    assert!(old.parse(&i).is_err());
}

#[test]
fn bcrypt_uses_only_72_bytes() {
    let h = Hasher::for_tests();
    let stored = h
        .parse("$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui")
        .unwrap();
    let base = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    assert_eq!(base.len(), 72);
    for tail in ["", "chars after 72 are ignored", "anything else at all"] {
        assert!(
            h.verify(&Password::new(format!("{base}{tail}")), &stored)
                .unwrap()
                .is_match()
        );
    }
    assert!(
        !h.verify(&Password::new(&base[..71]), &stored)
            .unwrap()
            .is_match()
    );
}

/// An in-house format: `$acme$<hex of reversed password>` (for the test only!).
#[derive(Debug)]
struct Acme;

impl HashScheme for Acme {
    fn name(&self) -> &'static str {
        "acme"
    }
    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$acme$")
    }
    fn check(&self, stored: &str, _: &HashLimits) -> Result<(), HashError> {
        let hex = &stored[6..];
        if hex.len() % 2 == 1 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(HashError::Malformed {
                scheme: "acme",
                reason: "not hex",
            });
        }
        Ok(())
    }
    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        l: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        self.check(stored, l)?;
        let mut rev = password.to_vec();
        rev.reverse();
        let hex: String = rev.iter().map(|b| format!("{b:02x}")).collect();
        Ok((hex == stored[6..]).into())
    }
}

#[test]
fn custom_scheme_verifies_and_upgrades() {
    let h = Hasher::for_tests().with_scheme(Acme);
    let stored = h.parse("$acme$6463626120").unwrap(); // " abcd" reversed
    assert_eq!(stored.scheme(), "acme");
    assert!(matches!(
        h.parse("$acme$zz"),
        Err(HashError::Malformed { scheme: "acme", .. })
    ));
    assert_eq!(
        h.verify(&Password::new("nope"), &stored).unwrap(),
        Verification::NoMatch
    );
    let Verification::MatchUpgraded {
        new_hash,
        from_scheme,
    } = h.verify(&Password::new(" abcd"), &stored).unwrap()
    else {
        panic!()
    };
    assert_eq!(from_scheme, "acme");
    assert_eq!(
        h.verify(&Password::new(" abcd"), &new_hash).unwrap(),
        Verification::Match
    );
    // Through import too, and not without registration.
    assert_eq!(
        h.import(&ImportRecord::new("$acme$6463626120"))
            .unwrap()
            .scheme(),
        "acme"
    );
    assert!(matches!(
        Hasher::for_tests().parse("$acme$6463626120"),
        Err(HashError::UnknownFormat)
    ));
    // Clones share the registration; Debug lists it.
    assert!(format!("{:?}", h.clone()).contains("\"acme\""));
}

#[test]
fn hasher_is_send_sync_clone_debug() {
    fn assert_traits<T: Send + Sync + Clone + std::fmt::Debug>() {}
    assert_traits::<Hasher>();
    assert_traits::<keyward::PasswordHash>();
    let shown = format!("{:?}", Hasher::for_tests());
    assert!(shown.contains("m_cost_kib: 8"));
}

#[test]
fn policy_calibration_stays_in_limits() {
    let p =
        Argon2Policy::calibrate(std::time::Duration::from_millis(1), &HashLimits::DEFAULT).unwrap();
    assert_eq!(p, Argon2Policy::DEFAULT);
}
