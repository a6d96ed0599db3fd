//! Untrusted TOTP inputs: `otpauth://` URIs, user-typed codes and recovery codes, and stored
//! (sealed or plain) secrets. Nothing may panic; whatever parses must print back to something that parses to
//! the same value.
#![no_main]

use keyward::totp::{self, OtpauthUri, StoredTotpSecret, TotpConfig, TotpSealer};
use keyward::{OneTimeCode, TotpSecret};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // otpauth URI parser, with a print -> parse round trip for anything accepted.
    if let Ok(uri) = OtpauthUri::parse(text) {
        let printed = uri.to_uri_string();
        let again = OtpauthUri::parse(&printed).expect("a printed URI parses");
        assert_eq!(again.config(), uri.config());
        assert_eq!(again.account(), uri.account());
        assert_eq!(again.secret().expose_secret(), uri.secret().expose_secret());
        assert_eq!(again.to_uri_string().as_str(), printed.as_str());
    }

    // A typed recovery code: a digest only for 16 code characters, the same digest whatever
    // the case and separators.
    let user = keyward::user::UserId::generate();
    let typed = keyward::RecoveryCode::new(text);
    if let Some(digest) = totp::recovery_codes::digest_typed(&user, &typed) {
        let letters: String = text.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).collect();
        assert_eq!(letters.len(), 16);
        let lower = keyward::RecoveryCode::new(letters.to_lowercase());
        assert_eq!(totp::recovery_codes::digest_typed(&user, &lower), Some(digest));
    }

    // Code normalizer and verifier, for both code lengths.
    let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
    let now = OffsetDateTime::from_unix_timestamp(1_111_111_109).expect("valid time");
    for config in [
        TotpConfig::DEFAULT,
        TotpConfig::new(totp::TotpAlgorithm::Sha512, 8, 30, 1).expect("valid config"),
    ] {
        if let Ok(code) = totp::normalize_code(&config, text) {
            assert_eq!(code.expose_secret().len(), usize::from(config.digits()));
            assert!(code.expose_secret().bytes().all(|b| b.is_ascii_digit()));
        }
        let _ = totp::verify(&config, &secret, &OneTimeCode::new(text), now)
            .expect("verification of any input is an outcome");
    }

    // Stored-secret parser and opener.
    if let Ok(stored) = StoredTotpSecret::parse(text) {
        assert_eq!(stored.to_storage_string().as_str(), text, "the stored form is canonical");
        let sealer = TotpSealer::new("k1", &[7; 32])
            .expect("valid key id")
            .with_previous_key("k0", &[9; 32])
            .expect("distinct key ids");
        let _ = sealer.open(&stored, b"user:1");
        let _ = sealer.reseal(&stored, b"user:1");
        let _ = stored.open_plain();
    }
});
