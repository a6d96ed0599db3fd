//! Sealing TOTP secrets at rest: round trip, wrong key, tampering, wrong context, rotation,
//! the plain opt-in and malformed stored strings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::TotpSecret;
use keyward::totp::TotpError;
use keyward::totp::{StoredTotpSecret, TotpSealer};

const K1: [u8; 32] = [0x11; 32];
const K2: [u8; 32] = [0x22; 32];
const ALICE: &[u8] = b"user:1";
const BOB: &[u8] = b"user:2";

fn secret() -> TotpSecret {
    TotpSecret::from_bytes(b"12345678901234567890".to_vec())
}

/// A key ring of one key, `k1`.
fn k1() -> TotpSealer {
    TotpSealer::new("k1", &K1).unwrap()
}

/// Seals the test secret for `ALICE` under `k1`, then opens it with `ring`.
fn open_k1_seal_with(ring: &TotpSealer) -> Result<TotpSecret, TotpError> {
    let stored = k1().seal(&secret(), ALICE).unwrap();
    ring.open(&stored, ALICE)
}

/// Whether opening the stored string `text` for `ALICE` with `sealer` fails authentication.
fn open_fails(sealer: &TotpSealer, text: &str) -> bool {
    let stored = StoredTotpSecret::parse(text).unwrap();
    matches!(
        sealer.open(&stored, ALICE),
        Err(TotpError::OpenFailed { .. })
    )
}

fn reparse(stored: &StoredTotpSecret) -> StoredTotpSecret {
    StoredTotpSecret::parse(&stored.to_storage_string()).unwrap()
}

#[test]
fn seal_and_open_round_trip_through_the_stored_string() {
    let sealer = k1();
    let stored = sealer.seal(&secret(), ALICE).unwrap();
    let text = stored.to_storage_string();
    assert!(text.starts_with("sealed:v1:k1:"), "{}", text.as_str());
    assert!(!text.contains("GEZDGNBV"));
    let parsed = StoredTotpSecret::parse(&text).unwrap();
    assert_eq!(parsed.to_storage_string().as_str(), text.as_str());
    assert!(parsed.is_sealed());
    assert_eq!(parsed.key_id(), Some("k1"));
    let opened = sealer.open(&parsed, ALICE).unwrap();
    assert_eq!(opened.expose_secret(), secret().expose_secret());

    // Through the store's opaque column type.
    let column = stored.to_stored();
    assert_eq!(column.as_str(), text.as_str());
    let back = StoredTotpSecret::from_stored(&column).unwrap();
    assert_eq!(
        sealer.open(&back, ALICE).unwrap().expose_secret(),
        secret().expose_secret()
    );
}

#[test]
fn nonces_are_fresh() {
    let sealer = k1();
    let a = sealer.seal(&secret(), ALICE).unwrap().to_storage_string();
    let b = sealer.seal(&secret(), ALICE).unwrap().to_storage_string();
    assert_ne!(a.as_str(), b.as_str());
}

#[test]
fn wrong_key_with_the_same_id_fails() {
    let impostor = TotpSealer::new("k1", &K2).unwrap();
    assert!(
        matches!(open_k1_seal_with(&impostor), Err(TotpError::OpenFailed { key_id }) if key_id == "k1")
    );
}

#[test]
fn unknown_key_id_fails() {
    let other = TotpSealer::new("k2", &K2).unwrap();
    assert!(
        matches!(open_k1_seal_with(&other), Err(TotpError::UnknownKeyId { key_id }) if key_id == "k1")
    );
}

#[test]
fn sealed_secret_cannot_move_to_another_user() {
    let sealer = k1();
    let stored = sealer.seal(&secret(), ALICE).unwrap();
    assert!(matches!(
        sealer.open(&stored, BOB),
        Err(TotpError::OpenFailed { .. })
    ));
    assert!(matches!(
        sealer.open(&stored, b""),
        Err(TotpError::OpenFailed { .. })
    ));
}

#[test]
fn every_tampered_byte_is_detected() {
    let sealer = k1();
    let text = sealer.seal(&secret(), ALICE).unwrap().to_storage_string();
    let (head, data) = text.rsplit_once(':').unwrap();
    let blob = data_encoding::BASE64URL_NOPAD
        .decode(data.as_bytes())
        .unwrap();
    for i in 0..blob.len() {
        let mut bad = blob.clone();
        bad[i] ^= 0x01;
        let tampered = format!("{head}:{}", data_encoding::BASE64URL_NOPAD.encode(&bad));
        assert!(open_fails(&sealer, &tampered), "byte {i}");
    }
    // Truncation (dropping the last tag byte) is detected too.
    let short = format!(
        "{head}:{}",
        data_encoding::BASE64URL_NOPAD.encode(&blob[..blob.len() - 1])
    );
    assert!(open_fails(&sealer, &short));
}

#[test]
fn relabelled_key_id_fails_even_with_both_keys() {
    // The key id is bound into the associated data: moving a ciphertext to another id fails.
    let ring = TotpSealer::new("k2", &K1)
        .unwrap()
        .with_previous_key("k1", &K1)
        .unwrap();
    let text = ring.seal(&secret(), ALICE).unwrap().to_storage_string();
    let moved = text.replacen("sealed:v1:k2:", "sealed:v1:k1:", 1);
    assert!(open_fails(&ring, &moved));
}

#[test]
fn rotation_opens_old_seals_new_and_reseals() {
    let old = TotpSealer::new("2025", &K1).unwrap();
    let stored_old = old.seal(&secret(), ALICE).unwrap();

    let ring = TotpSealer::new("2026", &K2)
        .unwrap()
        .with_previous_key("2025", &K1)
        .unwrap();
    assert_eq!(ring.current_key_id(), "2026");
    assert_eq!(
        ring.open(&stored_old, ALICE).unwrap().expose_secret(),
        secret().expose_secret()
    );
    assert!(ring.needs_reseal(&stored_old));

    let stored_new = ring.reseal(&reparse(&stored_old), ALICE).unwrap();
    assert_eq!(stored_new.key_id(), Some("2026"));
    assert!(!ring.needs_reseal(&stored_new));

    // Once every secret is resealed the old key can go.
    let new_only = TotpSealer::new("2026", &K2).unwrap();
    let opened = new_only.open(&reparse(&stored_new), ALICE).unwrap();
    assert_eq!(opened.expose_secret(), secret().expose_secret());
    assert!(matches!(
        new_only.open(&stored_old, ALICE),
        Err(TotpError::UnknownKeyId { .. })
    ));

    // Resealing with the wrong context does not launder a secret to another user.
    assert!(matches!(
        ring.reseal(&stored_old, BOB),
        Err(TotpError::OpenFailed { .. })
    ));
}

#[test]
fn key_ring_validation() {
    assert!(matches!(
        TotpSealer::new("", &K1),
        Err(TotpError::InvalidKeyId { .. })
    ));
    assert!(matches!(
        TotpSealer::new("a:b", &K1),
        Err(TotpError::InvalidKeyId { .. })
    ));
    assert!(matches!(
        TotpSealer::new(&"k".repeat(33), &K1),
        Err(TotpError::InvalidKeyId { .. })
    ));
    assert!(TotpSealer::new(&"k".repeat(32), &K1).is_ok());
    assert!(matches!(
        k1().with_previous_key("k1", &K2),
        Err(TotpError::DuplicateKeyId { .. })
    ));
}

#[test]
fn plain_form_is_explicit_and_migrates_to_sealed() {
    let plain = StoredTotpSecret::plain(&secret()).unwrap();
    let text = plain.to_storage_string();
    assert_eq!(text.as_str(), "plain:v1:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    let plain = StoredTotpSecret::parse(&text).unwrap();
    assert!(!plain.is_sealed());
    assert_eq!(plain.key_id(), None);
    assert_eq!(
        plain.open_plain().unwrap().expose_secret(),
        secret().expose_secret()
    );

    // With sealing configured, plain is refused on the normal path...
    let sealer = k1();
    assert!(matches!(
        sealer.open(&plain, ALICE),
        Err(TotpError::PlainNotAllowed)
    ));
    assert!(sealer.needs_reseal(&plain));
    // ...and migrated explicitly.
    let sealed = sealer.reseal(&plain, ALICE).unwrap();
    assert!(sealed.is_sealed());
    assert_eq!(
        sealer.open(&sealed, ALICE).unwrap().expose_secret(),
        secret().expose_secret()
    );
    assert!(
        matches!(sealed.open_plain(), Err(TotpError::SealedWithoutKey { key_id }) if key_id == "k1")
    );

    assert!(matches!(
        StoredTotpSecret::plain(&TotpSecret::from_bytes(vec![1; 8])),
        Err(TotpError::SecretLength { len: 8, .. })
    ));
}

#[test]
fn malformed_stored_strings_are_typed_errors() {
    let malformed = [
        "",
        "sealed",
        "sealed:v2:k1:AAAA",
        "sealed:v1:",
        "sealed:v1:k1",
        "sealed:v1::AAAA",
        "sealed:v1:k 1:AAAA",
        "sealed:v1:k1:not base64!",
        "sealed:v1:k1:AAAA",
        "sealed:v1:k1:AAAA=",
        "plain:v1:1!1",
        "plain:v1:gezdgnbvgy3tqojqgezdgnbvgy3tqojq",
        "PLAIN:v1:GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    ];
    for text in malformed {
        assert!(
            matches!(
                StoredTotpSecret::parse(text),
                Err(TotpError::MalformedStoredSecret { .. })
            ),
            "{text:?}"
        );
    }
    assert!(matches!(
        StoredTotpSecret::parse("plain:v1:GEZDGNBV"),
        Err(TotpError::SecretLength { len: 5, .. })
    ));
    let long = format!("sealed:v1:k1:{}", "A".repeat(1000));
    assert!(matches!(
        StoredTotpSecret::parse(&long),
        Err(TotpError::MalformedStoredSecret { .. })
    ));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sealed_form_round_trips(
            bytes in proptest::collection::vec(any::<u8>(), 16..=128),
            key in any::<[u8; 32]>(),
            key_id in "[A-Za-z0-9._-]{1,32}",
            context in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let sealer = TotpSealer::new(&key_id, &key).unwrap();
            let sealed = sealer.seal(&TotpSecret::from_bytes(bytes.clone()), &context).unwrap();
            let text = sealed.to_storage_string();
            let parsed = StoredTotpSecret::parse(&text).unwrap();
            let reprinted = parsed.to_storage_string();
            prop_assert_eq!(reprinted.as_str(), text.as_str());
            prop_assert_eq!(parsed.key_id(), Some(key_id.as_str()));
            let opened = sealer.open(&parsed, &context).unwrap();
            prop_assert_eq!(opened.expose_secret(), bytes.as_slice());
        }

        #[test]
        fn plain_form_round_trips(bytes in proptest::collection::vec(any::<u8>(), 16..=128)) {
            let plain = StoredTotpSecret::plain(&TotpSecret::from_bytes(bytes.clone())).unwrap();
            let text = plain.to_storage_string();
            let parsed = StoredTotpSecret::parse(&text).unwrap();
            let reprinted = parsed.to_storage_string();
            prop_assert_eq!(reprinted.as_str(), text.as_str());
            let opened = parsed.open_plain().unwrap();
            prop_assert_eq!(opened.expose_secret(), bytes.as_slice());
        }

        #[test]
        fn stored_parser_never_panics(input in "\\PC{0,300}") {
            let _ = StoredTotpSecret::parse(&input);
            let _ = StoredTotpSecret::parse(&format!("sealed:v1:{input}"));
            let _ = StoredTotpSecret::parse(&format!("plain:v1:{input}"));
        }
    }
}
