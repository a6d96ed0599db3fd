//! Untrusted strings where a sealed pending step is expected: `open_step` never panics, and
//! anything other than the genuine string opens to nothing but a denial. Half the inputs are
//! the genuine string with the fuzzer's bytes XORed in, so the AEAD and parser paths past the
//! prefix are reached too.
#![no_main]

use std::sync::{Arc, OnceLock};

use keyward::signin::PendingStep;
use keyward::totp::TotpSealer;
use keyward::user::{SiteId, User};
use keyward::{DenialReason, InMemoryStore, Keyward, ManualClock, Password};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

mod common;

struct Fixture {
    kw: Keyward,
    genuine: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let clock = Arc::new(ManualClock::new(OffsetDateTime::UNIX_EPOCH));
        let kw = Keyward::builder(Arc::new(InMemoryStore::new()))
            .hasher(common::cheap())
            .clock(clock)
            .step_keys(TotpSealer::new("fuzz", &[7; 32]).expect("a valid key id"))
            .totp_sealer(TotpSealer::new("totp", &[8; 32]).expect("a valid key id"))
            .build();
        let site = SiteId::new("fuzz").expect("a valid id");
        let user = User::new(site.clone(), "sam", "S", "S", "user", kw.now());
        let password = Password::new("correct horse battery staple");
        let user = kw.create_user(None, user, Some(password)).expect("created");
        // A self-service enrollment: the richest step (it carries the new secret).
        let pending = kw.enroll_totp(&user.id, None).expect("enrollment");
        let genuine = kw.seal_step(pending).expect("sealed").into_string();
        Fixture { kw, genuine }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let candidate = match data.split_first() {
        Some((0, mask)) => {
            let mut bytes = f.genuine.clone().into_bytes();
            for (b, m) in bytes.iter_mut().zip(mask) {
                *b ^= m;
            }
            match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => return,
            }
        }
        _ => match std::str::from_utf8(data) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        },
    };
    match f.kw.open_step(&candidate) {
        Ok(step) => {
            assert_eq!(candidate, f.genuine, "only the genuine string opens");
            assert!(matches!(step, PendingStep::Enrollment(_)));
        }
        Err(denial) => {
            assert_ne!(candidate, f.genuine, "the genuine string opens");
            assert_eq!(denial.reason(), DenialReason::StepInvalid);
        }
    }
});
