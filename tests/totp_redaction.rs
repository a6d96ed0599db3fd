//! No secret, URI secret, key or code ever appears in `Debug` (plain or pretty) or `Display`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::TotpSecret;
use keyward::totp::{self, OtpauthUri, StoredTotpSecret, TotpConfig, TotpSealer};

const B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn secret() -> TotpSecret {
    TotpSecret::from_bytes(b"12345678901234567890".to_vec())
}

fn assert_hidden(shown: &str, needles: &[&str]) {
    for needle in needles {
        assert!(!shown.contains(needle), "{needle:?} leaked in {shown}");
    }
}

#[test]
fn secrets_never_appear_in_debug() {
    let config = TotpConfig::DEFAULT.with_issuer("Example").unwrap();
    let needles = [B32, "1234567890", "49, 50, 51"];

    let enrollment = totp::Enrollment::from_secret(&config, "alice", secret()).unwrap();
    let uri = OtpauthUri::new(config.clone(), "alice", secret()).unwrap();
    let plain = StoredTotpSecret::plain(&secret()).unwrap();
    let shown = format!(
        "{:?} {:#?} {enrollment:?} {enrollment:#?} {uri:?} {uri:#?} {plain:?} {plain:#?}",
        secret(),
        secret()
    );
    assert_hidden(&shown, &needles);
    assert_hidden(&shown, &["otpauth", "secret=", "<svg"]);
    assert!(
        shown.contains("alice"),
        "non-secret context is still shown: {shown}"
    );

    // A fresh enrollment's own secret.
    let fresh = totp::enroll(&config, "bob").unwrap();
    let b32 = fresh.secret().to_base32();
    assert_hidden(&format!("{fresh:?} {fresh:#?}"), &[b32.as_str()]);
}

#[test]
fn keys_never_appear_in_debug() {
    let ring = TotpSealer::new("current", &[0xAB; 32])
        .unwrap()
        .with_previous_key("old", &[0xCD; 32])
        .unwrap();
    let sealed = ring.seal(&secret(), b"user:1").unwrap();
    let stored_text = sealed.to_storage_string();
    let blob = stored_text.rsplit_once(':').unwrap().1;
    let shown = format!("{ring:?} {ring:#?} {sealed:?} {sealed:#?}");
    assert_hidden(&shown, &["171", "205", "0xab", "0xAB", "AB, AB", blob, B32]);
    assert!(
        shown.contains("current") && shown.contains("old"),
        "{shown}"
    );
}

#[test]
fn errors_never_show_secret_material() {
    let ring = TotpSealer::new("k1", &[7; 32]).unwrap();
    let sealed = ring.seal(&secret(), b"user:1").unwrap();
    let text = sealed.to_storage_string();
    let errors = [
        ring.open(&sealed, b"user:2").unwrap_err(),
        StoredTotpSecret::parse(&format!("{}!", text.as_str())).unwrap_err(),
        StoredTotpSecret::parse("plain:v1:GEZDGNBVGY3TQOJQGEZDG!").unwrap_err(),
        OtpauthUri::parse(&format!("otpauth://totp/a?secret={B32}&digits=x")).unwrap_err(),
        OtpauthUri::parse(&format!("otpauth://hotp/a?secret={B32}")).unwrap_err(),
        OtpauthUri::parse(&format!("otpauth://x?secret={B32}")).unwrap_err(),
        OtpauthUri::parse(&format!("otpauth://{B32}")).unwrap_err(),
    ];
    let blob = text.rsplit_once(':').unwrap().1;
    for err in errors {
        assert_hidden(&format!("{err} {err:?}"), &[B32, "GEZDGNBV", &blob[..12]]);
    }
}
