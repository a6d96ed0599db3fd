//! Import: salted digest vectors, the canonical wrapper, and whole-record validation that names
//! the offending field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::hash::import::{DryRunOutcome, DryRunSummary, dry_run_line, dry_run_outcome};
use keyward::{HashError, Hasher, ImportError, ImportRecord, Password, Verification};
use serde::Deserialize;

#[derive(Deserialize)]
struct SaltedVector {
    record: ImportRecord,
    password: String,
    canonical: String,
    #[serde(rename = "match")]
    matches: bool,
}

#[test]
fn salted_digest_vectors() {
    salted_vectors("salted.generated.txt");
}

#[test]
fn salted_sha1_and_sha512_vectors() {
    salted_vectors("salted-sha.generated.txt");
}

fn salted_vectors(file: &str) {
    let path = format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
    let hasher = Hasher::for_tests();
    let mut n = 0;
    for line in std::fs::read_to_string(path).unwrap().lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let v: SaltedVector = serde_json::from_str(line).unwrap();
        let hash = hasher.import(&v.record).unwrap();
        assert_eq!(hash.as_str(), v.canonical, "{:?}", v.record);
        // The canonical string parses back to itself.
        assert_eq!(hasher.parse(&v.canonical).unwrap(), hash);
        let outcome = hasher
            .verify(&Password::new(v.password.as_str()), &hash)
            .unwrap();
        assert_eq!(outcome.is_match(), v.matches, "{line}");
        n += 1;
    }
    assert!(n > 100);
}

fn record(json: &str) -> ImportRecord {
    serde_json::from_str(json).unwrap()
}

fn field_of(json: &str) -> &'static str {
    let err = Hasher::for_tests().import(&record(json)).unwrap_err();
    // Display never echoes the stored value.
    assert!(!err.to_string().contains("abcdef0123"), "{err}");
    err.field()
}

const MD5_HEX: &str = "5f4dcc3b5aa765d61d8327deb882cf99"; // md5("password")
const MD5_CRYPT: &str = "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/";

#[test]
fn invalid_records_name_the_field() {
    let cases: &[(&str, &str)] = &[
        (r#"{"hashed_password": ""}"#, "hashed_password"),
        (r#"{"hashed_password": " $2b$04$abc"}"#, "hashed_password"),
        (
            r#"{"hashed_password": "not a hash at all"}"#,
            "hashed_password",
        ),
        // salt given for bcrypt
        (
            r#"{"hashed_password": "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "hashing_method": "bcrypt", "salt": "x", "salt_position": "prefix"}"#,
            "salt",
        ),
        // salt without any method
        (
            &format!(
                r#"{{"hashed_password": "{MD5_HEX}", "salt": "x", "salt_position": "prefix"}}"#
            ),
            "salt",
        ),
        // salted md5 without salt_position
        (
            &format!(r#"{{"hashed_password": "{MD5_HEX}", "hashing_method": "md5", "salt": "x"}}"#),
            "salt_position",
        ),
        // salt_position without salt
        (
            &format!(
                r#"{{"hashed_password": "{MD5_HEX}", "hashing_method": "md5", "salt_position": "suffix"}}"#
            ),
            "salt_position",
        ),
        // empty salt
        (
            &format!(
                r#"{{"hashed_password": "{MD5_HEX}", "hashing_method": "md5", "salt": "", "salt_position": "suffix"}}"#
            ),
            "salt",
        ),
        // method says bcrypt, string is md5-crypt
        (
            &format!(r#"{{"hashed_password": "{MD5_CRYPT}", "hashing_method": "bcrypt"}}"#),
            "hashing_method",
        ),
        // method says md5, string is md5-crypt
        (
            &format!(r#"{{"hashed_password": "{MD5_CRYPT}", "hashing_method": "md5"}}"#),
            "hashing_method",
        ),
        // method says sha256, digest is an md5 one
        (
            &format!(r#"{{"hashed_password": "{MD5_HEX}", "hashing_method": "sha256"}}"#),
            "hashing_method",
        ),
        // method says sha256, digest is neither hex nor base64 of the right size
        (
            r#"{"hashed_password": "abcdef0123", "hashing_method": "sha256"}"#,
            "hashed_password",
        ),
        // method says argon2, string is bcrypt
        (
            r#"{"hashed_password": "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "hashing_method": "argon2"}"#,
            "hashing_method",
        ),
        // $2x$ is refused
        (
            r#"{"hashed_password": "$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", "hashing_method": "bcrypt"}"#,
            "hashed_password",
        ),
        // hostile cost is refused at import
        (
            r#"{"hashed_password": "$2b$31$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW"}"#,
            "hashed_password",
        ),
        (
            r#"{"hashed_password": "$argon2id$v=19$m=4194304,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM", "hashing_method": "argon2"}"#,
            "hashed_password",
        ),
        // wordpress method with a sha512-crypt string
        (
            r#"{"hashed_password": "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.", "hashing_method": "wordpress"}"#,
            "hashing_method",
        ),
    ];
    for (json, field) in cases {
        assert_eq!(field_of(json), *field, "{json}");
    }
}

#[test]
fn unsupported_variant_is_explicit() {
    let err = Hasher::for_tests()
        .import(&ImportRecord::new(
            "$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e",
        ))
        .unwrap_err();
    let ImportError::InvalidHash {
        source: HashError::UnsupportedVariant { variant, .. },
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(variant, "2x");
    assert_eq!(
        err.to_string(),
        "invalid hashed_password: unsupported bcrypt variant `2x`"
    );
}

#[test]
fn methods_accept_their_formats() {
    let h = Hasher::for_tests();
    let ok = |json: &str, scheme: &str| {
        let hash = h
            .import(&record(json))
            .unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(hash.scheme(), scheme, "{json}");
    };
    ok(
        &format!(r#"{{"hashed_password": "{MD5_CRYPT}", "hashing_method": "crypt"}}"#),
        "md5-crypt",
    );
    ok(
        &format!(r#"{{"hashed_password": "{MD5_CRYPT}"}}"#),
        "md5-crypt",
    );
    ok(
        &format!(r#"{{"hashed_password": "{MD5_HEX}", "hashing_method": "wordpress"}}"#),
        "md5",
    );
    ok(
        &format!(r#"{{"hashed_password": "{MD5_HEX}", "hashing_method": "md5"}}"#),
        "salted-md5",
    );
    ok(
        r#"{"hashed_password": "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", "hashing_method": "wordpress"}"#,
        "phpass",
    );
    ok(
        r#"{"hashed_password": "abJnggxhB/yWI", "hashing_method": "crypt", "is_temporary_password": true}"#,
        "des-crypt",
    );
}

#[test]
fn a_wrong_import_does_not_look_like_a_wrong_password() {
    // The salted digest is md5("password" + "NaCl"); importing it with the wrong algorithm or
    // shape fails at import, not later at sign-in.
    let h = Hasher::for_tests();
    let err = h
        .import(&record(&format!(
            r#"{{"hashed_password": "{MD5_HEX}", "hashing_method": "sha256", "salt": "NaCl", "salt_position": "suffix"}}"#
        )))
        .unwrap_err();
    assert_eq!(err.field(), "hashing_method");
    assert_eq!(
        err.to_string(),
        "invalid hashing_method: it says sha256 but hashed_password is a md5 hash"
    );
    let hash = h.import(&ImportRecord::new(MD5_HEX)).unwrap();
    assert!(matches!(
        h.verify(&Password::new("password"), &hash).unwrap(),
        Verification::MatchUpgraded {
            from_scheme: "md5",
            ..
        }
    ));
}

#[test]
fn record_debug_is_redacted() {
    let r = record(&format!(
        r#"{{"hashed_password": "{MD5_CRYPT}", "salt": "pepper-secret", "salt_position": "prefix"}}"#
    ));
    let shown = format!("{r:?}");
    assert!(shown.contains("\"$1$s\""), "{shown}");
    assert!(!shown.contains("qjXMvbEw8oaL"), "{shown}");
    assert!(!shown.contains("pepper"), "{shown}");
}

#[test]
fn dry_run_lines() {
    let h = Hasher::for_tests();
    let line = |n, s: &[u8]| -> serde_json::Value {
        serde_json::from_str(&dry_run_line(&h, n, s)).unwrap()
    };
    let ok = line(
        1,
        format!(r#"{{"hashed_password": "{MD5_CRYPT}", "password": "password"}}"#).as_bytes(),
    );
    assert_eq!(
        ok,
        serde_json::json!({"line": 1, "verified": true, "scheme": "md5-crypt", "needs_upgrade": true})
    );
    let v = line(
        2,
        br#"{"hashed_password": "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", "hashing_method": "wordpress", "password": "test12345"}"#,
    );
    assert_eq!(
        v,
        serde_json::json!({"line": 2, "verified": true, "scheme": "phpass", "needs_upgrade": true})
    );
    let bad_json = line(3, b"{not json");
    assert_eq!(bad_json["line"], 3);
    assert!(
        bad_json["error"]
            .as_str()
            .unwrap()
            .starts_with("invalid record")
    );
    let bad_utf8 = line(4, b"\xff\xfe{}");
    assert_eq!(bad_utf8["error"], "line is not valid UTF-8");
    // A password in the wrong place is not echoed back.
    let misplaced = line(
        5,
        br#"{"hashed_password": ["hunter2-secret"], "password": "x"}"#,
    );
    assert!(!misplaced.to_string().contains("hunter2"));
    let import_err = line(6, br#"{"hashed_password": "$2x$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e", "password": "x"}"#);
    assert_eq!(
        import_err["error"],
        "invalid hashed_password: a variant of bcrypt keyward does not verify"
    );
    let empty = line(7, b"");
    assert!(empty["error"].is_string());
}

/// Review finding: the dry run's `"error"` was the error's `Display`, which quotes an
/// unsupported variant's tag, a parameter's value, a password's length. Nothing taken from
/// the record appears in a refused line now.
#[test]
fn dry_run_errors_quote_nothing_from_the_record() {
    let h = Hasher::for_tests();
    let tag = "55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM";
    let lines = [
        // A misplaced secret where an argon2 variant's name goes.
        format!(r#"{{"hashed_password": "$argon2-hunter2x$v=19$m=64,t=1,p=1$c2FsdHNhbHQ${tag}"}}"#),
        format!(r#"{{"hashed_password": "$argon2id$v=98765$m=64,t=1,p=1$c2FsdHNhbHQ${tag}"}}"#),
        // ...where a bcrypt variant goes, and a cost parameter.
        r#"{"hashed_password": "$2hunter2$05$/OK.fbVrR/bpIqNJ5ianF.CE5elHaaO4EbggVDjb8P19RukzXSM3e"}"#.to_owned(),
        r#"{"hashed_password": "$5$rounds=987654321$salt$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"}"#.to_owned(),
        // A password of 4321 bytes: its length is not reported either.
        format!(
            r#"{{"hashed_password": "$1$kwsalt01$hi87xsDtnj7kS1nc0PCYN.", "password": "{}"}}"#,
            "p".repeat(4321)
        ),
    ];
    for (n, text) in lines.iter().enumerate() {
        let shown = dry_run_line(&h, n + 1, text.as_bytes());
        let value: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert!(value["error"].is_string(), "{shown}");
        assert!(value["problem"].is_string(), "{shown}");
        for marker in ["hunter2", "98765", "987654321", "4321"] {
            assert!(!shown.contains(marker), "{marker} in {shown}");
        }
    }
}

#[test]
fn dry_run_without_passwords_validates_and_summarizes() {
    let h = Hasher::for_tests();
    let lines: [&[u8]; 7] = [
        br#"{"hashed_password": "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0"}"#,
        br#"{"hashed_password": "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC"}"#,
        br#"{"hashed_password": "{SSHA}eHWWKH4GYHGwmVWejRf42o5spGteOECB"}"#,
        br#"{"hashed_password": "$P$zIQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0"}"#,
        br#"{"hashed_password": "$P$yIQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0"}"#,
        br#"{"hashed_password": "nope"}"#,
        b"{not json",
    ];
    let mut summary = DryRunSummary::default();
    let outcomes: Vec<DryRunOutcome> = lines.iter().map(|l| dry_run_outcome(&h, l)).collect();
    outcomes.iter().for_each(|o| summary.add(o));
    let first: serde_json::Value = serde_json::from_str(&outcomes[0].to_json(1)).unwrap();
    assert_eq!(
        first,
        serde_json::json!({"line": 1, "valid": true, "scheme": "phpass", "needs_upgrade": true})
    );
    let hostile: serde_json::Value = serde_json::from_str(&dry_run_line(&h, 4, lines[3])).unwrap();
    assert_eq!(
        hostile["problem"],
        "hashed_password: phpass_log2 above the limit"
    );
    assert_eq!(summary.lines, 7);
    assert_eq!(summary.unchecked, 3);
    assert_eq!(summary.verified + summary.not_verified, 0);
    assert_eq!(summary.refused(), 4);
    assert_eq!(summary.by_scheme.get("yescrypt"), Some(&1));
    assert_eq!(summary.by_scheme.get("ldap-salted-sha1"), Some(&1));
    // Two hostile phpass costs are one problem, counted twice.
    assert_eq!(
        summary
            .by_problem
            .get("hashed_password: phpass_log2 above the limit"),
        Some(&2)
    );
    assert_eq!(
        summary.by_problem.get("hashed_password: unknown format"),
        Some(&1)
    );
    assert_eq!(
        summary.by_problem.get("invalid record: syntax error"),
        Some(&1)
    );
    let shown = summary.to_string();
    assert!(shown.contains("7 lines: 3 valid, 4 refused"), "{shown}");
    assert!(shown.contains("       1  yescrypt"), "{shown}");
}

/// The dry run answers every generated and published vector (through import, as the tool does).
#[test]
fn dry_run_answers_every_vector() {
    let h = Hasher::for_tests();
    let dir = format!("{}/tests/vectors", env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".txt") || name.starts_with("totp") || name.starts_with("salted") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            if line.starts_with('#')
                || line.trim().is_empty()
                || line.contains("rounds=77777")
                || line.contains("rounds=123456")
            {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let input =
                serde_json::json!({"hashed_password": v["hash"], "password": v["password"]});
            let out: serde_json::Value =
                serde_json::from_str(&dry_run_line(&h, 1, input.to_string().as_bytes())).unwrap();
            assert_eq!(out["verified"], v["match"], "{name}: {line} -> {out}");
            n += 1;
        }
    }
    assert!(n > 450, "{n}");
}
