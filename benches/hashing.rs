//! Hashing benches: verify per scheme at realistic costs, keyward's overhead over calling the
//! backends directly on the same hash, and the cost of detection + parsing per string.
//!
//! Run with `cargo bench --bench hashing`; short measurement times keep the whole run to a
//! couple of minutes.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Duration;

use argon2::PasswordVerifier;
use criterion::{Criterion, criterion_group, criterion_main};
use keyward::{Hasher, ImportRecord, Password};

const PW: &str = "correct horse battery staple";
/// An arbitrary 32-byte digest in unpadded base64: a wrong password costs as much as the
/// right one.
const TAG: &str = "55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM";
/// bcrypt cost 10, from pyca/bcrypt.
const BCRYPT_10: &str = "$2b$10$UukF2EgGpjW8MBzh7ZD.TelN8m8UuYpCciRndUDUuS6WhW1VlVfPa";
/// sha512-crypt, default 5000 rounds, from libxcrypt.
const SHA512: &str = "$6$saltsaltsalt$ST/mWEmUvGaF8bR7RgZUdh5cwHaiiTTLMzdmz6VYMGgVtDKO8Huz6GcoOtpj0X0zfFtfnn1aYJnZLSFBw4K2p0";

fn slow(c: &mut Criterion) {
    let hasher = Hasher::default(); // m = 19456 KiB, t = 2, p = 1
    let pw = Password::new(PW);
    let argon = hasher.hash(&pw).unwrap();
    let bcrypt_hash = hasher.parse(BCRYPT_10).unwrap();
    assert!(
        hasher.verify(&pw, &bcrypt_hash).unwrap().is_match(),
        "bench vector"
    );

    let mut g = c.benchmark_group("verify_overhead");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_millis(500));
    g.bench_function("argon2id_default/keyward", |b| {
        b.iter(|| {
            hasher
                .verify_scheme(black_box(&pw), black_box(&argon))
                .unwrap()
        })
    });
    g.bench_function("argon2id_default/direct", |b| {
        b.iter(|| {
            let phc = argon2::PasswordHash::new(black_box(argon.as_str())).unwrap();
            argon2::Argon2::default()
                .verify_password(PW.as_bytes(), &phc)
                .is_ok()
        })
    });
    g.bench_function("bcrypt_10/keyward", |b| {
        b.iter(|| {
            hasher
                .verify_scheme(black_box(&pw), black_box(&bcrypt_hash))
                .unwrap()
        })
    });
    g.bench_function("bcrypt_10/direct", |b| {
        b.iter(|| bcrypt::verify(PW.as_bytes(), black_box(BCRYPT_10)).unwrap())
    });
    g.finish();
}

fn per_scheme(c: &mut Criterion) {
    let hasher = Hasher::default();
    let pw = Password::new(PW);
    let wp_md5 = hasher
        .import(&ImportRecord::new("5f4dcc3b5aa765d61d8327deb882cf99"))
        .unwrap();
    let salted = hasher
        .import(
            &serde_json::from_str(
                r#"{"hashed_password":"5f4dcc3b5aa765d61d8327deb882cf99","hashing_method":"md5","salt":"NaCl","salt_position":"prefix"}"#,
            )
            .unwrap(),
        )
        .unwrap();
    let cases = [
        ("sha512-crypt_5000", hasher.parse(SHA512).unwrap()),
        (
            "md5-crypt",
            hasher.parse("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/").unwrap(),
        ),
        ("des-crypt", hasher.parse("abJnggxhB/yWI").unwrap()),
        (
            "phpass_log2_8",
            hasher.parse("$P$612345678si5M0DDyPpmRCmcltU/YW/").unwrap(),
        ),
        ("md5", wp_md5),
        ("salted-md5", salted),
    ];
    // Scheme verification only (no upgrade re-hash), wrong or right password alike.
    let mut g = c.benchmark_group("verify_scheme");
    g.sample_size(20)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(300));
    for (name, stored) in &cases {
        g.bench_function(*name, |b| {
            b.iter(|| hasher.verify(black_box(&pw), black_box(stored)).unwrap())
        });
    }
    g.finish();
}

/// The slowest stored hash each second-wave scheme admits under the default limits (and the
/// fast-hash wrapper), against the default argon2id verify: one unauthenticated verification
/// should stay within a small multiple of it. Strings from hashlib (OpenSSL) and libxcrypt at
/// the limits; Drupal's with a 512-byte password (Drupal refuses longer ones).
fn worst_admitted(c: &mut Criterion) {
    let hasher = Hasher::default();
    let pw = Password::new(PW);
    let argon = hasher.hash(&pw).unwrap();
    let phpass = hasher.parse("$P$612345678si5M0DDyPpmRCmcltU/YW/").unwrap();
    let cases = [
        ("argon2id_default (reference)", argon, PW.to_owned()),
        (
            "pbkdf2-sha256_2000000",
            hasher.parse("$pbkdf2-sha256$2000000$c2FsdHNhbHQ$PIE5I7fgSE/elMrgtQ7Xuyijhw.oCO30gkW/1FNST10").unwrap(),
            PW.to_owned(),
        ),
        (
            "pbkdf2-sha512_500000",
            hasher.parse("$pbkdf2-sha512$500000$c2FsdHNhbHQ$MrXU7QIMQ5892LVAG8uksQLDmvMvhTIm8Tv2MOHtHzLYo2VMH7Lu/rWVBtpecrP05UpunPW5j9wrfANu4LZVkQ").unwrap(),
            PW.to_owned(),
        ),
        (
            "pbkdf2-sha1_2000000",
            hasher.parse("$pbkdf2$2000000$c2FsdHNhbHQ$J7tdDI7tA6Stt8wP2Bi8ukUfOyk").unwrap(),
            PW.to_owned(),
        ),
        (
            "scrypt_ln17_r8_p1 (128 MiB)",
            hasher.parse("$scrypt$ln=17,r=8,p=1$c2FsdHNhbHQ$VAQBApU9bcQU8/siCjjYPJjAc6pUz9Jn/2PMmrj7irg").unwrap(),
            PW.to_owned(),
        ),
        (
            "yescrypt_N2^15_r32 (128 MiB)",
            hasher.parse("$y$jCT$saltsaltsalt$LyvxpmE2CU74GiWUbnScTFy5tk9D1A/endadB2nJOG6").unwrap(),
            PW.to_owned(),
        ),
        (
            "yescrypt_N2^15_r32_t2 (128 MiB)",
            hasher.parse("$y$jCT//$saltsaltsalt$MiNPWliRwMTqIXD.nLw/Vv3w8YzMOxe6o3ZsXNpBmZ/").unwrap(),
            PW.to_owned(),
        ),
        // Review findings: the worst cases the r, p, salt and flavor bounds still admit.
        (
            "scrypt_ln13_r8_p16 (128 MiB of work in p)",
            hasher.parse(&format!("$scrypt$ln=13,r=8,p=16$c2FsdHNhbHQ${TAG}")).unwrap(),
            PW.to_owned(),
        ),
        (
            "scrypt_ln1_r32_p16_salt64 (PBKDF2 at its largest)",
            hasher.parse(&format!("$scrypt$ln=1,r=32,p=16${}${TAG}", "A".repeat(86))).unwrap(),
            PW.to_owned(),
        ),
        (
            "yescrypt_N2^15_r32_p4_t2 (128 MiB)",
            hasher.parse("$y$jCT00/$saltsaltsalt$LyvxpmE2CU74GiWUbnScTFy5tk9D1A/endadB2nJOG6").unwrap(),
            PW.to_owned(),
        ),
        (
            "wrapped_md5_m77824_t8_p4 (4 x the default policy)",
            hasher.parse(&format!("$keyward-wrapped$v=1$md5,none$$argon2id$v=19$m=77824,t=8,p=4$c2FsdHNhbHQ${TAG}")).unwrap(),
            PW.to_owned(),
        ),
        (
            "yescrypt_libxcrypt_default",
            hasher.parse("$y$j9T$saltsaltsalt$Sq1kqbJbFN7YfV2MqrFeATLs2I0LdD7jIoz3m0GQ2lB").unwrap(),
            PW.to_owned(),
        ),
        (
            "drupal7_log2_18_pw512",
            hasher.parse("$S$G33783772bRXEx1aCsvY.dqgaaSu76XmVlKrW9Qu8IQlvxHlmzLf").unwrap(),
            "p".repeat(512),
        ),
        (
            "wrapped_phpass_log2_8",
            hasher.wrap_fast(&phpass).unwrap().unwrap(),
            PW.to_owned(),
        ),
        (
            "wrapped_md5",
            hasher
                .wrap_fast(&hasher.parse("5f4dcc3b5aa765d61d8327deb882cf99").unwrap())
                .unwrap()
                .unwrap(),
            PW.to_owned(),
        ),
    ];
    let mut g = c.benchmark_group("worst_admitted");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(300));
    for (name, stored, password) in &cases {
        let password = Password::new(password.as_str());
        g.bench_function(*name, |b| {
            b.iter(|| {
                hasher
                    .verify_scheme(black_box(&password), black_box(stored))
                    .unwrap()
            })
        });
    }
    // Wrapping costs one argon2id hash under the policy (the background job, per user).
    g.bench_function("wrap_fast(md5)", |b| {
        let md5 = hasher.parse("5f4dcc3b5aa765d61d8327deb882cf99").unwrap();
        b.iter(|| hasher.wrap_fast(black_box(&md5)).unwrap())
    });
    g.finish();
}

/// CPU amplification: phpass and SHA-crypt hash the whole password in every round, so their
/// work is rounds × length. Each case is the costliest one the joint bound admits (see
/// `FULL_ROUNDS_PASSWORD_BYTES`): the largest round count at 128 bytes, and the largest the
/// bound leaves at 4096 bytes (`max_password_bytes`). Digests are arbitrary: a wrong password
/// costs the same. bcrypt cost 14 (about 16 × the cost 10 of `verify_overhead`) and BSDi at
/// its limit (about 10 × the 100 000 rounds here) are left out to keep the group short.
fn amplification(c: &mut Criterion) {
    let hasher = Hasher::default();
    let d86 = "x".repeat(86);
    let d43 = "x".repeat(43);
    let cases = [
        (
            "phpass_2^20/pw128",
            format!("$P$Isaltsalt{}", "x".repeat(22)),
            128,
        ),
        (
            "phpass_2^15/pw4096",
            format!("$P$Dsaltsalt{}", "x".repeat(22)),
            4096,
        ),
        (
            "sha512-crypt_1000000/pw128",
            format!("$6$rounds=1000000$saltsalt${d86}"),
            128,
        ),
        (
            "sha512-crypt_46153/pw4096",
            format!("$6$rounds=46153$saltsalt${d86}"),
            4096,
        ),
        (
            "sha256-crypt_1000000/pw128",
            format!("$5$rounds=1000000$saltsalt${d43}"),
            128,
        ),
        (
            "sha256-crypt_46153/pw4096",
            format!("$5$rounds=46153$saltsalt${d43}"),
            4096,
        ),
        (
            "md5-crypt/pw4096",
            format!("$1$saltsalt${}", "x".repeat(22)),
            4096,
        ),
        (
            "bsdi-crypt_100000/pw4096",
            "_UOM.saltxxxxxxxxxxx".to_owned(),
            4096,
        ),
        ("drupal7_2^18/pw512", format!("$S$Gsaltsalt{d43}"), 512),
    ];
    let mut g = c.benchmark_group("amplification");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(100));
    for (name, s, len) in &cases {
        let stored = hasher.parse(s).unwrap();
        let password = Password::new("p".repeat(*len));
        hasher.verify_scheme(&password, &stored).unwrap();
        g.bench_function(*name, |b| {
            b.iter(|| {
                hasher
                    .verify_scheme(black_box(&password), black_box(&stored))
                    .unwrap()
            })
        });
    }
    g.finish();
}

fn parsing(c: &mut Criterion) {
    let hasher = Hasher::for_tests();
    let strings = [
        (
            "argon2id",
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$55PWTvddWPUD1GMbKxSff4ASfF85k9ibHJt4HlHQtBM",
        ),
        ("bcrypt", BCRYPT_10),
        ("sha512-crypt", SHA512),
        ("phpass", "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0"),
        (
            "wp-bcrypt",
            "$wp$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW",
        ),
        (
            "salted",
            "$keyward-salted$v=1$md5,prefix$TmFDbA$5f4dcc3b5aa765d61d8327deb882cf99",
        ),
        ("md5", "5f4dcc3b5aa765d61d8327deb882cf99"),
        ("unknown", "this is not a hash at all, just some text"),
    ];
    let mut g = c.benchmark_group("parse");
    g.sample_size(50)
        .measurement_time(Duration::from_millis(800))
        .warm_up_time(Duration::from_millis(200));
    for (name, s) in strings {
        g.bench_function(name, |b| b.iter(|| hasher.parse(black_box(s)).is_ok()));
    }
    g.finish();
}

criterion_group!(
    benches,
    slow,
    per_scheme,
    worst_admitted,
    amplification,
    parsing
);
criterion_main!(benches);
