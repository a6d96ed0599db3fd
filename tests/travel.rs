//! Pending steps that travel: sealed on one server, resumed on another sharing the SQLite
//! file and the step keys; tamper-proof, expiring, bound to the account, finished once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use keyward::notify::Outbox;
use keyward::signin::{PasswordChange, PendingStep, SealedStep};
use keyward::totp::{self, TotpConfig, TotpSealer};
use keyward::user::User;
use keyward::{
    DenialReason, Keyward, ManualClock, OneTimeCode, Password, SignIn, SqliteStore, TotpSecret,
    UserStore,
};
use support::*;
use time::Duration;

fn step_keys() -> TotpSealer {
    TotpSealer::from_text("steps-1", &"ab".repeat(32)).unwrap()
}

/// Two servers on one SQLite file with the same keys and clock.
struct Servers {
    a: Keyward,
    b: Keyward,
    clock: Arc<ManualClock>,
    outbox: Arc<Outbox>,
    _dir: tempfile::TempDir,
}

fn servers() -> Servers {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.db");
    let clock = Arc::new(ManualClock::new(T0));
    let outbox = Arc::new(Outbox::new());
    let server = || {
        let store: Arc<dyn UserStore> = Arc::new(SqliteStore::open(&path).unwrap());
        builder(store)
            .clock(clock.clone())
            .notifier(outbox.clone())
            .totp_sealer(sealer())
            .step_keys(step_keys())
            .build()
    };
    let (a, b) = (server(), server());
    Servers {
        a,
        b,
        clock,
        outbox,
        _dir: dir,
    }
}

fn code(secret: &[u8], at: time::OffsetDateTime) -> OneTimeCode {
    let secret = TotpSecret::from_bytes(secret.to_vec());
    totp::code_at(&TotpConfig::DEFAULT, &secret, at).unwrap()
}

/// Creates `username` on server A with the standard password and an email.
fn user(kw: &Keyward, username: &str) -> User {
    let user = User::new(site(), username, "Sam", username, "student", T0)
        .with_email(format!("{username}@example.org"), true);
    kw.create_user(None, user, Some(Password::new(USER_PASSWORD)))
        .unwrap()
}

fn sign_in(kw: &Keyward, username: &str) -> SignIn {
    kw.sign_in(&site(), username, &Password::new(USER_PASSWORD), None)
        .unwrap()
}

/// The site's administrator, created on `kw`.
fn administrator(kw: &Keyward) -> User {
    let admin = User::new(site(), "head", "Ada", "Admin", "staff", T0)
        .with_role(keyward::user::Role::Administrator);
    kw.create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap()
}

/// A TOTP user signed in on A up to the TOTP step, sealed. Returns the string and secret.
fn sealed_totp_step(s: &Servers, username: &str) -> (SealedStep, Vec<u8>) {
    let sam = user(&s.a, username);
    let secret = enroll(&s.a, &sam.id);
    s.clock.advance(Duration::seconds(60));
    let pending = step!(sign_in(&s.a, username), SignIn::TotpRequired);
    (s.a.seal_step(pending).unwrap(), secret)
}

fn open_totp(kw: &Keyward, sealed: &str) -> keyward::signin::PendingTotp {
    step!(kw.open_step(sealed).unwrap(), PendingStep::Totp)
}

#[test]
fn a_totp_sign_in_alternates_between_two_servers() {
    let s = servers();
    let (sealed, secret) = sealed_totp_step(&s, "sam");
    // A wrong code on B hands the step back; sealed again, it finishes on A.
    let pending = open_totp(&s.b, sealed.as_str());
    let retry = step!(
        s.b.verify_totp(pending, &OneTimeCode::new("000000"))
            .unwrap(),
        SignIn::TotpRequired
    );
    assert!(retry.is_retry());
    let resealed = s.b.seal_step(retry).unwrap();
    let pending = open_totp(&s.a, resealed.as_str());
    assert!(pending.is_retry());
    let done = step!(
        s.a.verify_totp(pending, &code(&secret, s.a.now())).unwrap(),
        SignIn::Authenticated
    );
    // The session's stamp holds on both servers.
    for kw in [&s.a, &s.b] {
        assert!(
            kw.check_session(&done.user().id, done.stamp())
                .unwrap()
                .is_current()
        );
    }
}

#[test]
fn a_finished_totp_step_cannot_be_finished_again() {
    let s = servers();
    let (sealed, secret) = sealed_totp_step(&s, "sam");
    let pending = open_totp(&s.a, sealed.as_str());
    step!(
        s.a.verify_totp(pending, &code(&secret, s.a.now())).unwrap(),
        SignIn::Authenticated
    );
    // The same string, a minute later, with a fresh valid code, on the other server.
    s.clock.advance(Duration::seconds(60));
    let again = open_totp(&s.b, sealed.as_str());
    let denial = step!(
        s.b.verify_totp(again, &code(&secret, s.b.now())).unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::AccountChanged);
}

#[test]
fn device_authorization_and_enrollment_travel_and_finish_once() {
    let s = servers();
    let admin = administrator(&s.a);
    let sam = user(&s.a, "sam");
    enroll(&s.a, &sam.id);
    s.a.reset_totp(&admin.id, &sam.id).unwrap();
    let device = step!(sign_in(&s.a, "sam"), SignIn::DeviceAuthorizationRequired);
    let sealed_device = s.a.seal_step(device).unwrap();
    let mail = s
        .outbox
        .take_last_to(&keyward::notify::Recipient::Email("sam@example.org".into()))
        .unwrap();
    let device_code = mail.secret.expose_secret().to_owned();
    // Device code on B.
    let device = step!(
        s.b.open_step(sealed_device.as_str()).unwrap(),
        PendingStep::DeviceAuthorization
    );
    assert_eq!(device.sent_to(), "sam@example.org");
    let enrollment = step!(
        s.b.authorize_device(device, &OneTimeCode::new(device_code.clone()))
            .unwrap(),
        SignIn::TotpEnrollmentRequired
    );
    let uri = enrollment.enrollment().expose_uri().to_owned();
    let new_secret = enrollment.enrollment().secret().expose_secret().to_vec();
    let sealed_enrollment = s.b.seal_step(enrollment).unwrap();
    // Small enough for a cookie (4 KiB with its name and attributes).
    eprintln!(
        "sealed enrollment: {} bytes",
        sealed_enrollment.as_str().len()
    );
    assert!(sealed_enrollment.as_str().len() < 1024);
    // The secret is nowhere in the string, in any encoding.
    let text = sealed_enrollment.as_str();
    let base32 = data_encoding::BASE32_NOPAD.encode(&new_secret);
    assert!(!text.contains(&base32[..16]) && !uri.contains(text));
    for encoding in [data_encoding::HEXLOWER, data_encoding::BASE64URL_NOPAD] {
        assert!(!text.contains(&encoding.encode(&new_secret)[..16]));
    }
    let blob = data_encoding::BASE64URL_NOPAD
        .decode(text.rsplit('.').next().unwrap().as_bytes())
        .unwrap();
    assert!(!contains(&blob, &new_secret[..8]));
    assert!(!contains(&blob, &base32.as_bytes()[..8]));
    // The same device-code string again: its code was consumed, the step moved on.
    let device_again = step!(
        s.a.open_step(sealed_device.as_str()).unwrap(),
        PendingStep::DeviceAuthorization
    );
    let denial = step!(
        s.a.authorize_device(device_again, &OneTimeCode::new(device_code))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::AccountChanged);
    // The enrollment opens on A with the same QR code and finishes there.
    let enrollment = step!(
        s.a.open_step(sealed_enrollment.as_str()).unwrap(),
        PendingStep::Enrollment
    );
    assert_eq!(enrollment.enrollment().expose_uri(), uri);
    let done = step!(
        s.a.confirm_enrollment(enrollment, &code(&new_secret, s.a.now()))
            .unwrap(),
        SignIn::Authenticated
    );
    assert!(
        s.b.check_session(&sam.id, done.stamp())
            .unwrap()
            .is_current()
    );
    // And cannot be confirmed a second time.
    s.clock.advance(Duration::seconds(60));
    let again = step!(
        s.b.open_step(sealed_enrollment.as_str()).unwrap(),
        PendingStep::Enrollment
    );
    let denial = step!(
        s.b.confirm_enrollment(again, &code(&new_secret, s.b.now()))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::AccountChanged);
}

#[test]
fn a_forced_password_change_travels_and_finishes_once() {
    let s = servers();
    let admin = administrator(&s.a);
    let sam = user(&s.a, "sam");
    let issued =
        s.a.issue_temporary_password(
            &admin.id,
            &sam.id,
            keyward::admin::IssueOptions::generated(),
        )
        .unwrap();
    let temporary = issued.password.unwrap();
    let pending = step!(
        s.a.sign_in(
            &site(),
            "sam",
            &Password::new(temporary.expose_secret()),
            None
        )
        .unwrap(),
        SignIn::PasswordChangeRequired
    );
    let sealed = s.a.seal_step(pending).unwrap();
    let pending = step!(
        s.b.open_step(sealed.as_str()).unwrap(),
        PendingStep::PasswordChange
    );
    let changed =
        s.b.complete_password_change(pending, Password::new("a-new-passphrase-of-mine-4"))
            .unwrap();
    let PasswordChange::Changed(SignIn::Authenticated(_)) = changed else {
        panic!("{changed:?}");
    };
    let again = step!(
        s.a.open_step(sealed.as_str()).unwrap(),
        PendingStep::PasswordChange
    );
    let changed =
        s.a.complete_password_change(again, Password::new("the-attackers-choice-99"))
            .unwrap();
    let PasswordChange::Denied(denial) = changed else {
        panic!("{changed:?}");
    };
    assert_eq!(denial.reason(), DenialReason::AccountChanged);
    step!(
        s.a.sign_in(
            &site(),
            "sam",
            &Password::new("a-new-passphrase-of-mine-4"),
            None
        )
        .unwrap(),
        SignIn::Authenticated
    );
}

#[test]
fn account_changes_void_a_sealed_step() {
    let f = fx_with(Arc::new(keyward::InMemoryStore::new()), |b| {
        b.step_keys(step_keys())
    });
    type Change = Box<dyn Fn(&Fx, &User)>;
    let changes: Vec<(&str, DenialReason, Change)> = vec![
        (
            "temporary password issued",
            DenialReason::AccountChanged,
            Box::new(|f, u| {
                f.temporary_for(&u.id);
            }),
        ),
        (
            "authenticator reset",
            DenialReason::AccountChanged,
            Box::new(|f, u| f.kw.reset_totp(&f.admin.id, &u.id).unwrap()),
        ),
        (
            "disabled",
            DenialReason::Disabled,
            Box::new(|f, u| f.disable(&u.id)),
        ),
        (
            "locked by hand",
            DenialReason::Locked { until: None },
            Box::new(|f, u| f.kw.lock_user(&f.admin.id, &u.id, "lost badge").unwrap()),
        ),
        (
            "PIN set",
            DenialReason::AccountChanged,
            Box::new(|f, u| {
                f.kw.set_pin(&f.admin.id, &u.id, Some(&keyward::Pin::new("4711")))
                    .unwrap()
            }),
        ),
    ];
    for (i, (what, reason, change)) in changes.iter().enumerate() {
        let user = f.user(&format!("user{i}"));
        let secret = enroll(&f.kw, &user.id);
        f.clock.advance(Duration::seconds(60));
        let pending = step!(f.sign_in_as(&user.username), SignIn::TotpRequired);
        let sealed = f.kw.seal_step(pending).unwrap();
        change(&f, &user);
        let pending = open_totp(&f.kw, sealed.as_str());
        let denial = step!(
            f.kw.verify_totp(pending, &code(&secret, f.kw.now()))
                .unwrap(),
            SignIn::Denied
        );
        assert_eq!(denial.reason(), *reason, "{what}");
    }
}

#[test]
fn tampered_truncated_foreign_and_expired_strings_are_denied() {
    let s = servers();
    let (sealed, _) = sealed_totp_step(&s, "sam");
    let text = sealed.as_str();
    let invalid = |kw: &Keyward, candidate: &str| {
        let denial = kw.open_step(candidate).unwrap_err();
        assert_eq!(denial.reason(), DenialReason::StepInvalid, "{candidate:?}");
        assert_eq!(denial.user(), None);
    };
    // Every truncation, and every single-character change.
    for len in 0..text.len() {
        invalid(&s.a, &text[..len]);
    }
    for i in 0..text.len() {
        let mut bytes = text.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        invalid(&s.a, &String::from_utf8(bytes).unwrap());
    }
    for junk in [
        "",
        "kws1.",
        "kws1..",
        "kws1.steps-1.",
        "kws2.steps-1.AAAA",
        "\0",
        "é",
    ] {
        invalid(&s.a, junk);
    }
    invalid(&s.a, &format!("{text}{}", "A".repeat(5000)));
    // A server whose ring holds another key, or the same id with another key.
    let store: Arc<dyn UserStore> = Arc::new(keyward::InMemoryStore::new());
    let other = builder(store.clone())
        .step_keys(TotpSealer::new("steps-1", &[9; 32]).unwrap())
        .build();
    invalid(&other, text);
    let unknown = builder(store.clone())
        .step_keys(TotpSealer::new("steps-2", &[9; 32]).unwrap())
        .build();
    invalid(&unknown, text);
    // A server with no keys at all makes its own: it cannot open another's steps.
    invalid(&builder(store.clone()).build(), text);
    // After a rotation that keeps the old key as previous, it still opens.
    let rotated = TotpSealer::new("steps-2", &[9; 32])
        .unwrap()
        .with_previous_key_text("steps-1", &"ab".repeat(32))
        .unwrap();
    let rotated = builder(store)
        .clock(s.clock.clone())
        .step_keys(rotated)
        .build();
    step!(rotated.open_step(text).unwrap(), PendingStep::Totp);
    // Expired: refused at opening, and when finishing an already opened step.
    let opened = open_totp(&s.b, text);
    s.clock.advance(Duration::minutes(15));
    let denial = s.a.open_step(text).unwrap_err();
    assert_eq!(denial.reason(), DenialReason::StepExpired);
    let denial = step!(
        s.b.verify_totp(opened, &OneTimeCode::new("123456"))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::StepExpired);
}

#[test]
fn sealed_steps_say_nothing_in_debug() {
    let s = servers();
    let (sealed, _) = sealed_totp_step(&s, "sam");
    eprintln!("sealed TOTP step: {} bytes", sealed.as_str().len());
    assert!(sealed.as_str().len() < 512);
    let debug = format!("{sealed:?}");
    assert!(!debug.contains(&sealed.as_str()[10..30]), "{debug}");
    assert!(debug.contains("len"), "{debug}");
}

#[test]
fn keys_load_from_hex_and_base64_text_alike() {
    let key = [0x5a_u8; 32];
    let forms = [
        data_encoding::HEXLOWER.encode(&key),
        data_encoding::HEXUPPER.encode(&key),
        data_encoding::BASE64.encode(&key),
        data_encoding::BASE64_NOPAD.encode(&key),
        data_encoding::BASE64URL.encode(&key),
        format!("  {}\n", data_encoding::BASE64URL_NOPAD.encode(&key)),
    ];
    let reference = TotpSealer::new("k", &key).unwrap();
    let secret = TotpSecret::from_bytes(vec![1; 20]);
    let sealed = reference.seal(&secret, b"ctx").unwrap();
    for form in &forms {
        let ring = TotpSealer::from_text("k", form).unwrap();
        let opened = ring.open(&sealed, b"ctx").unwrap();
        assert_eq!(opened.expose_secret(), secret.expose_secret(), "{form:?}");
    }
    let too_short = data_encoding::HEXLOWER.encode(&[1; 31]);
    let too_long = data_encoding::BASE64.encode(&[1; 33]);
    for bad in [
        "",
        "zz",
        "not a key at all",
        too_short.as_str(),
        too_long.as_str(),
    ] {
        let err = TotpSealer::from_text("k", bad).unwrap_err();
        assert!(
            matches!(err, keyward::totp::TotpError::InvalidKeyText { .. }),
            "{bad:?}"
        );
        if bad.len() > 4 {
            assert!(
                !err.to_string().contains(bad),
                "the message never echoes the key"
            );
        }
    }
}

#[test]
fn a_key_id_with_dots_seals_steps_and_stamps_that_open() {
    // Key ids may hold dots (`steps.2026-12`): the separators must not be confused with them.
    let store: Arc<dyn UserStore> = Arc::new(keyward::InMemoryStore::new());
    let keys = || TotpSealer::new("steps.2026.12", &[4; 32]).unwrap();
    let kw = builder(store.clone())
        .totp_sealer(sealer())
        .step_keys(keys())
        .build();
    let sam = user(&kw, "sam");
    enroll(&kw, &sam.id);
    let pending = step!(sign_in(&kw, "sam"), SignIn::TotpRequired);
    let sealed = kw.seal_step(pending).unwrap();
    let other = builder(store)
        .totp_sealer(sealer())
        .step_keys(keys())
        .build();
    step!(other.open_step(sealed.as_str()).unwrap(), PendingStep::Totp);
    let plain = user(&kw, "kim");
    let done = step!(sign_in(&kw, "kim"), SignIn::Authenticated);
    assert!(
        other
            .check_session(&plain.id, done.stamp())
            .unwrap()
            .is_current()
    );
    assert!(format!("{:?}", done.stamp()).contains("steps.2026.12"));
}
