//! Malformed and hostile stored hashes are rejected without being evaluated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use keyward::hash::{HashLimits, PasswordHash};
use keyward::{HashError, Hasher, Password};

fn kind(e: &HashError) -> &'static str {
    match e {
        HashError::UnknownFormat => "unknown",
        HashError::Malformed { .. } => "malformed",
        HashError::UnsupportedVariant { .. } => "unsupported",
        HashError::ParamOutOfBounds { .. } => "bounds",
        HashError::ParamBelowMinimum { .. } => "minimum",
        HashError::StoredTooLong { .. } => "too long",
        _ => "other",
    }
}

const BCRYPT: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";
const SHA256: &str = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";
/// The MD5 of "password", in hex.
const MD5_HEX: &str = "5f4dcc3b5aa765d61d8327deb882cf99";
/// The SHA-1 of "password", in hex.
const SHA1_HEX: &str = "5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8";
const YESCRYPT: &str = "$y$j9T$salt$Cw3H19laQT.rHIYMLvuoUzLb8st7PboO9rfxAylYPx9";
const SCRYPT: &str =
    "$scrypt$ln=6,r=8,p=1$c29tZXNhbHRzb21lc2FsdA$006quPv5Gw6zXps5/Q3IMap0lgVAJmutsKMc6uS4QR8";
const DJANGO: &str = "pbkdf2_sha256$1000$djangosalt$jyjNVU98593XnYJsL+EmcLZlIBOZqbdhcsHq9S2dMwo=";
/// passlib phpass 2^16 of "x" × 1024, and libxcrypt sha512-crypt 100 000 rounds of "y" × 128.
const PHPASS_16: &str = "$P$EsaltsaltS6u2DbdfLT6o1mDuQQpaR.";
const SHA512_100K: &str = "$6$rounds=100000$saltsalt$F2vUW4OGdZGAdETdm04oAi8PFcaEURpyY5rCheJ4kgUfMuZOFROcnEy/B1c9ztJ8mTsl/Zn4CYFRWSd0QDyvf/";
const DRUPAL: &str = "$S$C33783772bRXEx1aCsvY.dqgaaSu76XmVlKrW9Qu8IQlvxHlmzLf";
const ARGON: &str = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM";

#[test]
fn malformed_shapes() {
    let huge = "A".repeat(1 << 20);
    let huge_dollar = format!("$6${}", "$".repeat(1 << 16));
    let sha256_rounds = |rounds: &str| {
        format!("$5$rounds={rounds}$salt$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5")
    };
    let salted =
        |scheme: &str, salt: &str, hex: &str| format!("$keyward-salted$v=1${scheme}${salt}${hex}");
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "unknown"),
        ("$".into(), "unknown"),
        ("$$$$".into(), "unknown"),
        (huge, "too long"),
        ("plaintext-password".into(), "unknown"),
        (
            "$sha1$40000$jtNX3nZ2$hBNaIXkt4wBI2o5rsi8KejSjNqIq".into(),
            "unknown",
        ),
        // bcrypt
        (BCRYPT[..59].into(), "malformed"),
        (format!("{BCRYPT}A"), "malformed"),
        (BCRYPT.replace("$05$", "$5$$"), "malformed"),
        (BCRYPT.replace("$05$", "$xx$"), "malformed"),
        (BCRYPT.replace("$05$", "$03$"), "minimum"),
        (BCRYPT.replace("$05$", "$15$"), "bounds"),
        (BCRYPT.replace("$05$", "$99$"), "bounds"),
        (BCRYPT.replace('C', "!"), "malformed"),
        (BCRYPT.replace("$2a$", "$2x$"), "unsupported"),
        (BCRYPT.replace("$2a$", "$2c$"), "unsupported"),
        (format!("$2$05${}", &BCRYPT[7..]), "unsupported"),
        (BCRYPT.replacen('C', "é", 1), "malformed"),
        // crypt
        ("$1$".into(), "malformed"),
        ("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK".into(), "malformed"),
        ("$1$toolongsalt$qjXMvbEw8oaL.CzflDtaK/".into(), "malformed"),
        (sha256_rounds(""), "malformed"),
        (sha256_rounds("-1"), "malformed"),
        (sha256_rounds("99999999999"), "bounds"),
        (sha256_rounds("999999999"), "bounds"),
        (SHA256[..SHA256.len() - 1].into(), "malformed"),
        ("$6$saltstring$short".into(), "malformed"),
        (huge_dollar, "too long"),
        (format!("$6${}", "$".repeat(1021)), "malformed"), // 1024 bytes
        ("_J9..SAL".into(), "malformed"),
        ("_zzzzSALToYeEi67o2u.".into(), "bounds"),
        ("_....".to_string() + "SALToYeEi67o2u.", "minimum"),
        // phpass / wordpress
        ("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L".into(), "malformed"),
        ("$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r!L0".into(), "malformed"),
        ("$P$4IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into(), "minimum"),
        ("$P$zIQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into(), "bounds"),
        (
            "$wp$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e".into(),
            "unsupported",
        ),
        ("$wp$".into(), "malformed"),
        // argon2
        ("$argon2id$".into(), "malformed"),
        (ARGON.replace("m=64", "m=4194304"), "bounds"),
        (ARGON.replace("t=1", "t=4000000000"), "bounds"),
        (ARGON.replace("p=1", "p=255"), "bounds"),
        (ARGON.replace("m=64", "m=1"), "malformed"),
        (ARGON.replace("argon2id", "argon2x"), "unsupported"),
        (ARGON.replace("v=19", "v=20"), "unsupported"),
        (ARGON.replace("$c29t", "$!!!"), "malformed"),
        (
            format!("$keyward-import$v=1{}", ARGON.replace("m=64", "m=4194304")),
            "bounds",
        ),
        ("$keyward-import$v=2$argon2id$".into(), "malformed"),
        // salted wrapper
        (salted("md5,prefix", "", MD5_HEX), "malformed"),
        (salted("md5,none", "eA", MD5_HEX), "malformed"),
        (salted("md5,none", "", &MD5_HEX.to_uppercase()), "malformed"),
        (salted("md5,none", "", &MD5_HEX[..8]), "malformed"),
        (salted("sha1,none", "", MD5_HEX), "malformed"),
        (salted("md5,middle", "eA", MD5_HEX), "malformed"),
        (salted("md5,prefix", "eA==", MD5_HEX), "malformed"),
        (salted("md5,prefix", "eB", MD5_HEX), "malformed"),
        (
            salted("md5,prefix", "eA", &format!("{MD5_HEX}$")),
            "malformed",
        ),
        (salted("md5,prefix", "eA", MD5_HEX), "ok"),
        (salted("sha1,none", "", SHA1_HEX), "ok"),
        (salted("sha1,none", "", MD5_HEX), "malformed"),
        (salted("sha512,prefix", "eA", SHA1_HEX), "malformed"),
        // yescrypt
        (YESCRYPT.into(), "ok"),
        ("$y$".into(), "malformed"),
        (YESCRYPT.replace("$j9T$", "$$"), "malformed"),
        (YESCRYPT.replace("$j9T$", "$j9T!$"), "malformed"),
        (YESCRYPT.replace("$j9T$", "$jzzzzzzzzzz$"), "malformed"),
        (YESCRYPT.replace("$j9T$", "$jET$"), "bounds"), // N = 2^17 · r = 32: 512 MiB
        (YESCRYPT.replace("$j9T$", "$j9T/0$"), "bounds"), // t = 3
        (YESCRYPT.replace("$j9T$", "$j9T/.$"), "ok"),   // t = 1
        (YESCRYPT.replace("$j9T$", "$j9T.C$"), "bounds"), // p = 16
        (YESCRYPT.replace("$j9T$", "$j9T5$"), "malformed"), // a ROM
        (YESCRYPT.replace("$j9T$", "$j9T3.$"), "malformed"), // t and g flags, g missing
        (YESCRYPT[..YESCRYPT.len() - 1].into(), "malformed"),
        (format!("{YESCRYPT}$"), "malformed"),
        // scrypt
        (SCRYPT.into(), "ok"),
        ("$scrypt$".into(), "malformed"),
        (SCRYPT.replace("ln=6", "ln=18"), "bounds"),
        (
            SCRYPT.replace("ln=6", "ln=99999999999999999999999"),
            "malformed",
        ),
        (SCRYPT.replace("ln=6", "ln=63"), "bounds"),
        (SCRYPT.replace("p=1", "p=4294967295"), "bounds"),
        (SCRYPT.replace("p=1", "p=0"), "minimum"),
        (SCRYPT.replace("r=8", "r=0"), "minimum"),
        (SCRYPT.replace("ln=6,r=8", "r=8,ln=6"), "malformed"),
        (SCRYPT.replace("$c29t", "$!c29t"), "malformed"),
        ("scrypt$16384$salt$8$1$AAAA".into(), "malformed"),
        ("scrypt$1000$salt$8$1$".into(), "malformed"),
        (
            format!("scrypt$1048576$salt$8$1${}", "A".repeat(86) + "=="),
            "bounds",
        ),
        // PBKDF2
        (DJANGO.into(), "ok"),
        (DJANGO.replace("$1000$", "$2000001$"), "bounds"),
        (DJANGO.replace("$1000$", "$0$"), "minimum"),
        (DJANGO.replace("$1000$", "$-1$"), "malformed"),
        (DJANGO.replace("$1000$", "$99999999999999999999$"), "bounds"),
        (DJANGO.replace("djangosalt", ""), "malformed"),
        (DJANGO.replace("Mwo=", "Mwo"), "malformed"),
        (format!("{DJANGO}$"), "malformed"),
        ("pbkdf2_sha1$1000$salt$AAAA".into(), "malformed"),
        ("$pbkdf2-sha256$1000$c2FsdA$+AAA".into(), "malformed"),
        ("$pbkdf2-sha512$3000000$c2FsdA$AAAA".into(), "bounds"),
        ("$pbkdf2-sha512$500001$c2FsdA$AAAA".into(), "bounds"),
        ("$pbkdf2-sha256$500001$c2FsdA$AAAA".into(), "malformed"), // bounded fine, short hash
        ("$pbkdf2$".into(), "malformed"),
        // Drupal 7
        (DRUPAL.into(), "ok"),
        (DRUPAL.replacen("$S$C", "$S$4", 1), "minimum"),
        (DRUPAL.replacen("$S$C", "$S$H", 1), "bounds"), // 2^19
        (DRUPAL.replacen("$S$C", "$S$G", 1), "ok"),     // 2^18
        (DRUPAL[..54].into(), "malformed"),
        (format!("U{DRUPAL}"), "ok"),
        (format!("U{}", &DRUPAL[..50]), "malformed"),
        (DRUPAL.replacen('3', "!", 1), "malformed"),
        // LDAP
        ("{SSHA}".into(), "malformed"),
        ("{SSHA}eHWWKH4GYHGwmVWejRf42o5spGteOECB".into(), "ok"),
        ("{ssha}eHWWKH4GYHGwmVWejRf42o5spGteOECB".into(), "ok"),
        (format!("{{SSHA}}{}=", "A".repeat(27)), "malformed"), // 20 bytes: no salt
        ("{SHA}eHWWKH4GYHGwmVWejRf42o5spGteOECB".into(), "malformed"),
        ("{SSHA}not base64!".into(), "malformed"),
        ("{SSHA512}AAAA".into(), "malformed"),
        ("{MD5}X03MO1qnZdYdgyfeuILPmQ==".into(), "ok"),
        ("{CRYPT}".into(), "malformed"),
        ("{CRYPT}$unknown$".into(), "malformed"),
        (
            format!("{{CRYPT}}{}", BCRYPT.replace("$05$", "$15$")),
            "bounds",
        ),
        (format!("{{crypt}}{SHA256}"), "ok"),
        ("{UNKNOWN}abc".into(), "unknown"),
        // wrapped
        ("$keyward-wrapped$v=1$".into(), "malformed"),
        (format!("$keyward-wrapped$v=1$md5,none{ARGON}"), "malformed"),
        (format!("$keyward-wrapped$v=1$md5,none${ARGON}"), "ok"),
        (
            format!("$keyward-wrapped$v=1$md5,prefix${ARGON}"),
            "malformed",
        ),
        (
            format!("$keyward-wrapped$v=1$md5,none$eA{ARGON}"),
            "malformed",
        ),
        (
            format!("$keyward-wrapped$v=1$sha3,none${ARGON}"),
            "malformed",
        ),
        (
            format!("$keyward-wrapped$v=1$bcrypt$eA{ARGON}"),
            "malformed",
        ),
        (format!("$keyward-wrapped$v=1$des-crypt$YWI{ARGON}"), "ok"),
        (
            format!("$keyward-wrapped$v=1$des-crypt$YWJj{ARGON}"),
            "malformed",
        ),
        (
            format!("$keyward-wrapped$v=1$md5-crypt$JDEkc2FsdCQ{ARGON}"),
            "ok",
        ),
        (
            format!("$keyward-wrapped$v=1$md5-crypt$JDEkJA{ARGON}"),
            "malformed",
        ),
        (
            format!("$keyward-wrapped$v=1$phpass$JFAkOUlRUmFUd21m{ARGON}"),
            "ok",
        ),
        (
            format!("$keyward-wrapped$v=1$phpass$JFAkeklRUmFUd21m{ARGON}"),
            "bounds",
        ),
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace("m=64", "m=4194304")
            ),
            "bounds",
        ),
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace("argon2id", "argon2i")
            ),
            "malformed",
        ),
        // The inner argon2id is keyward's own: at most 4 × the policy (at least the default's:
        // m = 77 824, t = 8, p = 4), v=19, a 32-byte tag.
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace("m=64", "m=77824")
            ),
            "ok",
        ),
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace("m=64", "m=262144")
            ),
            "bounds",
        ),
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace("t=1", "t=9")
            ),
            "bounds",
        ),
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace("p=1", "p=5")
            ),
            "bounds",
        ),
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace(
                    "55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM",
                    "55PWTvddWPUD1GMbKxSffA"
                )
            ),
            "malformed",
        ),
        (
            format!(
                "$keyward-wrapped$v=1$md5,none${}",
                ARGON.replace("v=19", "v=16")
            ),
            "malformed",
        ),
    ];
    let h = Hasher::for_tests();
    for (s, expected) in cases {
        let shown: String = s.chars().take(80).collect();
        match h.parse(&s) {
            Ok(_) => assert_eq!(expected, "ok", "{shown} parsed"),
            Err(e) => {
                assert_eq!(kind(&e), expected, "{shown}: {e}");
                // Display never contains the stored string.
                if s.len() > 12 {
                    assert!(!e.to_string().contains(&s), "{e}");
                }
            }
        }
    }
}

/// A hash that was valid under laxer limits is refused at verify under the strict ones,
/// quickly.
#[test]
fn hostile_costs_are_refused_at_verify_too() {
    let lax = HashLimits {
        max_bcrypt_cost: 31,
        max_sha_crypt_rounds: u32::MAX,
        max_phpass_log2: 30,
        max_argon2_m_kib: 1 << 22,
        max_pbkdf2_iterations: u32::MAX,
        max_drupal_log2: 30,
        max_scrypt_kib: u32::MAX,
        max_scrypt_p: u32::MAX,
        max_yescrypt_kib: u32::MAX,
        ..HashLimits::DEFAULT
    };
    let lax = Hasher::new(keyward::Argon2Policy::INSECURE_TEST, lax);
    let strict = Hasher::for_tests();
    let hostile = [
        BCRYPT.replace("$05$", "$31$"),
        "$6$rounds=999999999$salt$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1".into(),
        "$P$SIQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0".into(),
        ARGON.replace("m=64", "m=4194304"),
        YESCRYPT.replace("$j9T$", "$jFT$"),
        SCRYPT.replace("ln=6", "ln=22"),
        SCRYPT.replace("ln=6,r=8,p=1", "ln=1,r=1,p=524288"),
        DJANGO.replace("$1000$", "$400000000$"),
        DRUPAL.replacen("$S$C", "$S$S", 1),
        format!("$keyward-wrapped$v=1$phpass$JFAkU0lRUmFUd21m{ARGON}"),
    ];
    for s in hostile {
        let parsed: PasswordHash = lax.parse(&s).unwrap();
        let started = Instant::now();
        let err = strict.verify(&Password::new("pw"), &parsed).unwrap_err();
        assert_eq!(kind(&err), "bounds", "{s}");
        assert!(started.elapsed() < Duration::from_millis(100));
    }
}

#[test]
fn overlong_passwords_are_refused_before_hashing() {
    let h = Hasher::for_tests();
    let stored = h.parse(SHA256).unwrap();
    let long = Password::new("a".repeat(1 << 20));
    assert!(matches!(
        h.verify(&long, &stored),
        Err(HashError::PasswordTooLong { max: 4096, .. })
    ));
    assert!(h.hash(&long).is_err());
    h.verify_dummy(&long); // bounded, no panic
}

/// Rounds × password length is bounded together: up to 128 bytes every admitted round count
/// is evaluated; a longer password against a costlier hash is refused before hashing.
#[test]
fn long_passwords_against_costly_rounds_are_refused_quickly() {
    let h = Hasher::for_tests();
    let cases = [(PHPASS_16, 1024, "x"), (SHA512_100K, 128, "y")];
    for (stored, len, ch) in cases {
        let stored = h.parse(stored).unwrap();
        // The password it was made of verifies (the work is within the bound)...
        let right = Password::new(ch.repeat(len));
        assert!(
            h.verify_scheme(&right, &stored)
                .is_ok_and(|m| m == keyward::SchemeMatch::Match)
        );
        // ...and one of the longest admitted length is refused at once.
        let long = Password::new(ch.repeat(4096));
        let started = Instant::now();
        let err = h.verify(&long, &stored).unwrap_err();
        assert!(
            matches!(
                err,
                HashError::ParamOutOfBounds {
                    name: "rounds_for_password_length",
                    ..
                }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_millis(50));
        // Wrapped, the same rule holds for phpass.
        if let Some(wrapped) = h.wrap_fast(&stored).unwrap() {
            assert!(h.verify(&right, &wrapped).unwrap().is_match());
            assert!(h.verify(&long, &wrapped).is_err());
        }
    }
}

/// The name of the bound `stored` breaks under `h`, or "ok".
fn refusal(h: &Hasher, stored: &str) -> String {
    let started = Instant::now();
    let outcome = match h.parse(stored) {
        Ok(parsed) => match h.verify(&Password::new("pw"), &parsed) {
            Ok(_) => "ok".to_owned(),
            Err(e) => format!("verify: {e}"),
        },
        Err(HashError::ParamOutOfBounds { name, .. }) => name.to_owned(),
        Err(e) => kind(&e).to_owned(),
    };
    assert!(started.elapsed() < Duration::from_secs(2), "{stored}");
    outcome
}

/// Review findings on scrypt and yescrypt: work hidden in p (PBKDF2's 128·r·p bytes), in
/// long salts, in the buffers beside V, and in the flavors whose lanes each run over all of N.
#[test]
fn combined_hostile_scrypt_and_yescrypt_cases_are_refused() {
    let h = Hasher::for_tests();
    let tag = "006quPv5Gw6zXps5/Q3IMap0lgVAJmutsKMc6uS4QR8";
    let scrypt = |params: &str, salt: &str| format!("$scrypt${params}${salt}${tag}");
    let salt = "c29tZXNhbHRzb21lc2FsdA";
    let yes =
        |params: &str| format!("$y${params}$salt$Cw3H19laQT.rHIYMLvuoUzLb8st7PboO9rfxAylYPx9");
    let cases = [
        // N = 2, r = 1, p = 2^19: 128·N·r·p is 128 MiB, but PBKDF2 makes 64 MiB re-hashing the salt.
        (scrypt("ln=1,r=1,p=524288", salt), "scrypt_p"),
        (scrypt("ln=6,r=8,p=17", salt), "scrypt_p"),
        (scrypt("ln=4,r=1,p=16", salt), "ok"),
        (scrypt("ln=1,r=33,p=1", salt), "scrypt_r"),
        (scrypt("ln=4,r=32,p=1", salt), "ok"),
        (scrypt("ln=4,r=1,p=1", &"A".repeat(86)), "ok"), // 64-byte salt
        (scrypt("ln=4,r=1,p=1", &"A".repeat(87)), "malformed"),
        (scrypt("ln=4,r=1,p=1", &"A".repeat(48 * 1024)), "too long"),
        (
            format!("scrypt$16$s{}$8$1${}", "a".repeat(64), "A".repeat(43) + "="),
            "malformed",
        ),
        // yescrypt: only the read-write flavor `j`; flavor 0 (classic) and 1 (WORM), p = 4, t = 2.
        (yes(".9T00/"), "unsupported"),
        (yes("/9T00/"), "unsupported"),
        (yes(".9T"), "unsupported"),
        (yes("09T"), "unsupported"), // another read-write flavor
        (yes("j9T00/"), "ok"),
        (yes("j9U"), "yescrypt_r"), // r = 33
        (yes("j.T"), "ok"),         // N = 2, r = 32
    ];
    for (stored, expected) in cases {
        let shown: String = stored.chars().take(60).collect();
        assert_eq!(refusal(&h, &stored), expected, "{shown}");
    }
}

/// The memory bound counts every buffer, not only V: at a limit of exactly V, the hash is
/// refused.
#[test]
fn scrypt_and_yescrypt_memory_counts_every_buffer() {
    let at = |scrypt_kib, yescrypt_kib| {
        Hasher::new(
            keyward::Argon2Policy::INSECURE_TEST,
            HashLimits {
                max_scrypt_kib: scrypt_kib,
                max_yescrypt_kib: yescrypt_kib,
                ..HashLimits::DEFAULT
            },
        )
    };
    let parse = |h: &Hasher, s: &str| match h.parse(s) {
        Ok(_) => "ok",
        Err(HashError::ParamOutOfBounds { name, .. }) => name,
        Err(_) => "other",
    };
    // scrypt N = 2^10, r = 8, p = 1: V is 1024 KiB, B 1 KiB, the mixer's scratch 2 KiB.
    let scrypt = SCRYPT.replace("ln=6", "ln=10");
    assert_eq!(parse(&at(1024, 0), &scrypt), "scrypt_memory_kib");
    assert_eq!(parse(&at(1026, 0), &scrypt), "scrypt_memory_kib");
    assert_eq!(parse(&at(1027, 0), &scrypt), "ok");
    // yescrypt `j9T`: V = 16 MiB, B 4 KiB, XY 8 KiB, S-boxes 12 KiB.
    assert_eq!(parse(&at(0, 16_384), YESCRYPT), "yescrypt_kib");
    assert_eq!(parse(&at(0, 16_407), YESCRYPT), "yescrypt_kib");
    assert_eq!(parse(&at(0, 16_408), YESCRYPT), "ok");
    // The defaults admit 128 MiB of V (passlib's ln=17, libxcrypt's cost 8) with its buffers.
    let h = Hasher::for_tests();
    assert_eq!(parse(&h, &SCRYPT.replace("ln=6", "ln=17")), "ok");
    assert_eq!(parse(&h, &YESCRYPT.replace("$j9T$", "$jCT$")), "ok");
    assert_eq!(parse(&h, &SCRYPT.replace("ln=6", "ln=18")), "scrypt_kib");
}

/// A wrapped hash keyward wrote under one of OWASP's equivalent profiles still reads after a
/// move to another.
#[test]
fn wrapped_hashes_survive_a_move_between_equivalent_profiles() {
    let wrapped = |m: u32, t: u32| {
        format!(
            "$keyward-wrapped$v=1$md5,none${}",
            ARGON.replace("m=64,t=1", &format!("m={m},t={t}"))
        )
    };
    for from in keyward::Argon2Policy::OWASP_EQUIVALENT {
        let stored = wrapped(from.m_cost_kib(), from.t_cost());
        for to in keyward::Argon2Policy::OWASP_EQUIVALENT {
            let h = Hasher::new(to, HashLimits::DEFAULT);
            assert!(h.parse(&stored).is_ok(), "{from:?} -> {to:?}");
        }
    }
}
