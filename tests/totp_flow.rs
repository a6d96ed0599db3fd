//! TOTP in the sign-in flow: enrollment, replay-safe verification, its own lockout, admin
//! reset with device authorization by email, and password reset tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use keyward::audit::{AuditAction, AuditQuery};
use keyward::recovery::PasswordReset;
use keyward::signin::{PendingDeviceAuthorization, PendingEnrollment, PendingTotp};
use keyward::totp::{self, TotpConfig};
use keyward::user::{User, UserId};
use keyward::{
    Denial, DenialReason, InMemoryStore, Keyward, ManualClock, OneTimeCode, Password, SignIn,
    UserStore,
};
use support::*;
use time::Duration;

fn code_for(pending: &PendingEnrollment, at: time::OffsetDateTime) -> OneTimeCode {
    totp::code_at(&TotpConfig::DEFAULT, pending.enrollment().secret(), at).unwrap()
}

/// A service on `store` with the test hasher, `clock` and the TOTP key ring `sealer`.
fn sealed_service(
    store: Arc<dyn UserStore>,
    clock: Arc<ManualClock>,
    sealer: keyward::TotpSealer,
) -> Keyward {
    builder(store).clock(clock).totp_sealer(sealer).build()
}

/// A service storing TOTP secrets plain (the explicit opt-in), with user `p` enrolled.
/// Returns the service, the store, the clock, the user and the raw secret.
fn plain_setup() -> (
    Keyward,
    Arc<dyn UserStore>,
    Arc<ManualClock>,
    UserId,
    Vec<u8>,
) {
    let store: Arc<dyn UserStore> = Arc::new(InMemoryStore::new());
    let clock = Arc::new(ManualClock::new(T0));
    let kw = builder(store.clone())
        .clock(clock.clone())
        .insecure_plain_totp_secrets()
        .build();
    let user = User::new(site(), "p", "P", "Lain", "staff", T0);
    let user = kw
        .create_user(None, user, Some(Password::new(USER_PASSWORD)))
        .unwrap()
        .id;
    let secret = enroll(&kw, &user);
    (kw, store, clock, user, secret)
}

/// Signs `username` in with the standard password and a code from `secret`, a minute later.
fn totp_sign_in(kw: &Keyward, clock: &ManualClock, username: &str, secret: &[u8]) -> SignIn {
    clock.advance(Duration::seconds(60));
    let pending = step!(
        kw.sign_in(&site(), username, &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::TotpRequired
    );
    kw.verify_totp(pending, &code(secret, kw.now())).unwrap()
}

fn code(secret: &[u8], at: time::OffsetDateTime) -> OneTimeCode {
    totp::code_at(
        &TotpConfig::DEFAULT,
        &keyward::TotpSecret::from_bytes(secret.to_vec()),
        at,
    )
    .unwrap()
}

fn totp_step(f: &Fx, username: &str) -> PendingTotp {
    step!(f.sign_in_as(username), SignIn::TotpRequired)
}

fn device_step(f: &Fx, username: &str) -> PendingDeviceAuthorization {
    step!(f.sign_in_as(username), SignIn::DeviceAuthorizationRequired)
}

/// Has the administrator reset `user`'s authenticator, then signs them in up to device
/// authorization. Returns that step and the code mailed for it.
fn device_step_after_reset(f: &Fx, user: &User) -> (PendingDeviceAuthorization, String) {
    f.kw.reset_totp(&f.admin.id, &user.id).unwrap();
    let pending = device_step(f, &user.username);
    let code = digits_in(&f.mail_to(user.email.as_deref().unwrap()), 8);
    (pending, code)
}

/// Five wrong device codes in a row: the first four hand the step back, the fifth is denied.
fn five_wrong_device_codes(kw: &Keyward, mut pending: PendingDeviceAuthorization) -> Denial {
    for _ in 0..4 {
        pending = step!(
            kw.authorize_device(pending, &OneTimeCode::new("11111111"))
                .unwrap(),
            SignIn::DeviceAuthorizationRequired
        );
    }
    step!(
        kw.authorize_device(pending, &OneTimeCode::new("11111111"))
            .unwrap(),
        SignIn::Denied
    )
}

/// Creates `sam`, enrolls them in TOTP and has the administrator issue them a generated
/// temporary password, then lets a minute pass. Returns the raw secret and the password.
fn enrolled_with_temporary(f: &Fx) -> (Vec<u8>, keyward::TemporaryPassword) {
    let sam = f.user("sam");
    let secret = enroll(&f.kw, &sam.id);
    let temporary = f.temporary_for(&sam.id);
    f.clock.advance(Duration::seconds(60));
    (secret, temporary)
}

/// Redeems the password-reset `token` for `password`.
fn reset(f: &Fx, token: &str, password: &str) -> PasswordReset {
    f.kw.reset_password(&OneTimeCode::new(token), Password::new(password))
        .unwrap()
}

#[test]
fn enrollment_then_replay_safe_codes() {
    let f = fx();
    let sam = f.user("sam");
    let secret = enroll(&f.kw, &sam.id);
    // The stored secret is sealed: neither raw nor base32 appears in the record.
    let stored = f.record(&sam.id).totp.secret.unwrap();
    let b32 = data_encoding::BASE32_NOPAD.encode(&secret);
    assert!(
        stored.as_str().starts_with("sealed:"),
        "{}",
        stored.as_str()
    );
    assert!(!stored.as_str().contains(&b32));
    // The enrollment code's step is used: the same code is refused as a replay.
    f.clock.advance(Duration::seconds(30));
    let pending = totp_step(&f, "sam");
    let now = f.kw.now();
    let first = f.kw.verify_totp(pending, &code(&secret, now)).unwrap();
    assert!(matches!(first, SignIn::Authenticated(_)), "{first:?}");
    let pending = totp_step(&f, "sam");
    match f.kw.verify_totp(pending, &code(&secret, now)).unwrap() {
        SignIn::TotpRequired(p) => assert!(p.is_retry()),
        other => panic!("a replayed code must be refused: {other:?}"),
    }
    // An older step inside the window is refused too once a newer one was accepted.
    f.clock.advance(Duration::seconds(30));
    let pending = totp_step(&f, "sam");
    let fresh = f.kw.now();
    assert!(matches!(
        f.kw.verify_totp(pending, &code(&secret, fresh)).unwrap(),
        SignIn::Authenticated(_)
    ));
    let pending = totp_step(&f, "sam");
    assert!(matches!(
        f.kw.verify_totp(pending, &code(&secret, fresh - Duration::seconds(30)))
            .unwrap(),
        SignIn::TotpRequired(_)
    ));
}

#[test]
fn racing_submissions_of_one_code_succeed_once() {
    let f = fx();
    let sam = f.user("sam");
    let secret = enroll(&f.kw, &sam.id);
    f.clock.advance(Duration::seconds(60));
    let pendings: Vec<PendingTotp> = (0..4).map(|_| totp_step(&f, "sam")).collect();
    let the_code = code(&secret, f.kw.now());
    let wins = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for pending in pendings {
            let (f, the_code, wins) = (&f, &the_code, &wins);
            s.spawn(move || {
                let code = OneTimeCode::new(the_code.expose_secret());
                if let SignIn::Authenticated(_) = f.kw.verify_totp(pending, &code).unwrap() {
                    wins.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(wins.into_inner(), 1);
}

#[test]
fn wrong_codes_lock_the_second_factor_apart_from_passwords() {
    let f = fx();
    let sam = f.user("sam");
    let _ = enroll(&f.kw, &sam.id);
    let mut pending = totp_step(&f, "sam");
    for i in 0..4 {
        pending = match f
            .kw
            .verify_totp(pending, &OneTimeCode::new("000000"))
            .unwrap()
        {
            SignIn::TotpRequired(p) => p,
            other => panic!("try {i}: {other:?}"),
        };
    }
    let denial = step!(
        f.kw.verify_totp(pending, &OneTimeCode::new("000000"))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::TotpLocked { until: None });
    let record = f.record(&sam.id);
    assert!(record.totp_lock.is_locked(f.kw.now()));
    assert_eq!(
        record.password_lock.failed_attempts, 0,
        "password failures are counted apart"
    );
    // The password still passes, but a locked second factor ends the sign-in there.
    let denial = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert_eq!(denial.reason(), DenialReason::TotpLocked { until: None });
    f.kw.unlock(&f.admin.id, &sam.id).unwrap();
    assert!(!f.record(&sam.id).totp_lock.is_locked(f.kw.now()));
}

#[test]
fn lost_phone_reset_device_code_and_new_enrollment() {
    let f = fx();
    let sam = f.user("sam");
    let old_secret = enroll(&f.kw, &sam.id);
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    let record = f.record(&sam.id);
    assert!(record.totp.reset_pending && record.totp.secret.is_none());

    let pending = device_step(&f, "sam");
    assert_eq!(pending.sent_to(), "sam@example.org");
    let mail = f.mail_to("sam@example.org");
    let device_code = digits_in(&mail, 8);
    // The code is stored only as a hash.
    let stored = f.record(&sam.id).totp.device_code.unwrap();
    assert!(!stored.hash.as_str().contains(&device_code));
    // A wrong code hands the step back; the right one moves on to enrollment.
    let pending = step!(
        f.kw.authorize_device(pending, &OneTimeCode::new("00000000"))
            .unwrap(),
        SignIn::DeviceAuthorizationRequired
    );
    let enrollment = step!(
        f.kw.authorize_device(pending, &OneTimeCode::new(device_code.clone()))
            .unwrap(),
        SignIn::TotpEnrollmentRequired
    );
    let uri = enrollment.enrollment().expose_uri().to_owned();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(enrollment.enrollment().expose_qr_svg().contains("<svg"));
    assert_ne!(
        enrollment.enrollment().secret().expose_secret(),
        old_secret.as_slice()
    );
    // The old authenticator no longer works, the new one does.
    let wrong = code(&old_secret, f.kw.now());
    let enrollment = step!(
        f.kw.confirm_enrollment(enrollment, &wrong).unwrap(),
        SignIn::TotpEnrollmentRequired
    );
    let right = code_for(&enrollment, f.kw.now());
    assert!(matches!(
        f.kw.confirm_enrollment(enrollment, &right).unwrap(),
        SignIn::Authenticated(_)
    ));
    let record = f.record(&sam.id);
    assert!(
        !record.totp.reset_pending
            && record.totp.secret.is_some()
            && record.totp.device_code.is_none()
    );
    // Every step is audited.
    let actions: Vec<_> = f
        .audit(&AuditQuery::for_user(sam.id.clone()))
        .items
        .into_iter()
        .map(|e| e.action)
        .collect();
    for expected in [
        AuditAction::TotpReset,
        AuditAction::DeviceCodeSent,
        AuditAction::TotpEnrolled,
    ] {
        assert!(
            actions.contains(&expected),
            "{expected:?} missing from {actions:?}"
        );
    }
    // The used code is gone.
    let again = totp_step(&f, "sam");
    drop(again);
}

#[test]
fn device_codes_expire_and_run_out_of_tries() {
    let f = fx();
    let sam = f.user("sam");
    let (pending, first_code) = device_step_after_reset(&f, &sam);
    // A second sign-in within the lifetime reuses the live code: nothing new is sent.
    let _ = device_step(&f, "sam");
    assert!(f.outbox.is_empty());
    f.clock.advance(Duration::minutes(15));
    let denial = step!(
        f.kw.authorize_device(pending, &OneTimeCode::new(first_code.clone()))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(
        denial.reason(),
        DenialReason::StepExpired,
        "the pending step outlived its code"
    );
    // A fresh sign-in sends a fresh code. Wrong codes count against the TOTP lock, so
    // fresh codes buy no fresh guesses: the fifth wrong code locks the second factor.
    let pending = device_step(&f, "sam");
    let fresh = digits_in(&f.mail_to("sam@example.org"), 8);
    let denial = five_wrong_device_codes(&f.kw, pending);
    assert_eq!(denial.reason(), DenialReason::TotpLocked { until: None });
    // While the second factor is locked, sign-in stops before any code is sent.
    let denial = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert_eq!(denial.reason(), DenialReason::TotpLocked { until: None });
    assert!(f.outbox.is_empty());
    let _ = fresh;
    // After the administrator unlocks, the next sign-in sends a new code that works.
    f.kw.unlock(&f.admin.id, &sam.id).unwrap();
    let pending = device_step(&f, "sam");
    let newest = digits_in(&f.mail_to("sam@example.org"), 8);
    assert!(matches!(
        f.kw.authorize_device(pending, &OneTimeCode::new(newest))
            .unwrap(),
        SignIn::TotpEnrollmentRequired(_)
    ));
}

#[test]
fn device_codes_are_exhausted_under_a_looser_totp_rule() {
    use keyward::lockout::{LockoutMode, LockoutRule};
    let rule = LockoutRule::new(50, Duration::hours(1), LockoutMode::UntilUnlocked).unwrap();
    let f = fx_with(Arc::new(InMemoryStore::new()), |b| {
        b.lockout(Arc::new(rule))
    });
    let (pending, code) = device_step_after_reset(&f, &f.user("zoe"));
    let denial = five_wrong_device_codes(&f.kw, pending);
    assert_eq!(denial.reason(), DenialReason::DeviceCodeExhausted);
    // The right code no longer works: five tries per code.
    let pending = device_step(&f, "zoe");
    let outcome =
        f.kw.authorize_device(pending, &OneTimeCode::new(code))
            .unwrap();
    assert!(
        matches!(
            outcome,
            SignIn::DeviceAuthorizationRequired(_) | SignIn::Denied(_)
        ),
        "{outcome:?}"
    );
    assert!(!matches!(outcome, SignIn::TotpEnrollmentRequired(_)));
}

#[test]
fn expired_device_code_within_a_live_step() {
    let f = fx();
    let (pending, device_code) = device_step_after_reset(&f, &f.user("sam"));
    // Codes live 10 minutes; pending steps 15: at minute 10 the code is dead, the step not.
    f.clock.advance(Duration::minutes(10));
    let denial = step!(
        f.kw.authorize_device(pending, &OneTimeCode::new(device_code))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::DeviceCodeExpired);
}

#[test]
fn reset_without_verified_email_tells_the_admin_what_to_do() {
    let f = fx();
    let user = User::new(f.site.clone(), "noemail", "No", "Email", "student", T0);
    let u =
        f.kw.create_user(None, user, Some(Password::new(USER_PASSWORD)))
            .unwrap();
    f.kw.reset_totp(&f.admin.id, &u.id).unwrap();
    let denial = step!(f.sign_in_as("noemail"), SignIn::Denied);
    assert_eq!(denial.reason(), DenialReason::NoVerifiedEmail);
    assert!(
        denial
            .reason()
            .admin_hint()
            .unwrap()
            .contains("verify the user's email")
    );
    assert!(f.outbox.is_empty());
}

#[test]
fn enrollment_without_a_key_is_refused_unless_opted_in() {
    let store = Arc::new(InMemoryStore::new());
    let kw = builder(store.clone()).build();
    let user = kw
        .create_user(None, User::new(site(), "k", "K", "Ey", "staff", T0), None)
        .unwrap();
    assert!(matches!(
        kw.enroll_totp(&user.id, None),
        Err(keyward::Error::TotpKeyMissing)
    ));
    let plain = builder(store).insecure_plain_totp_secrets().build();
    let pending = plain.enroll_totp(&user.id, None).unwrap();
    let stored = record_of(&plain, &user.id).totp.pending_secret.unwrap();
    assert!(stored.as_str().starts_with("plain:"));
    drop(pending);
}

#[test]
fn password_reset_token_is_single_use_expiring_and_newest_wins() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.request_password_reset(&f.site, "nobody").unwrap(); // unknown: same answer
    assert!(f.outbox.is_empty());
    f.kw.request_password_reset(&f.site, "sam").unwrap();
    let old_token = f.reset_token_to("sam@example.org");
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    let token = f.reset_token_to("sam@example.org");
    assert!(
        token.len() > 32 + 50,
        "token carries at least 256 bits: {}",
        token.len()
    );
    // The stored form is a hash.
    let stored = f.record(&sam.id).reset_token.unwrap();
    assert!(
        !stored
            .hash
            .as_str()
            .contains(token.split('.').nth(1).unwrap())
    );
    // The newest voids the older one.
    assert!(matches!(
        reset(&f, &old_token, "a-fresh-passphrase-9"),
        PasswordReset::InvalidToken
    ));
    // A weak password is rejected and the token stays valid.
    assert!(matches!(
        reset(&f, &token, "short"),
        PasswordReset::Rejected(_)
    ));
    assert!(matches!(
        reset(&f, &token, "a-fresh-passphrase-9"),
        PasswordReset::Done { .. }
    ));
    assert!(matches!(
        f.sign_in("sam", &Password::new("a-fresh-passphrase-9")),
        SignIn::Authenticated(_)
    ));
    // Single use.
    assert!(matches!(
        reset(&f, &token, "another-passphrase-77"),
        PasswordReset::InvalidToken
    ));
    // Expiry at one hour.
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    let token = f.reset_token_to("sam@example.org");
    f.clock.advance(Duration::hours(1));
    assert!(matches!(
        reset(&f, &token, "another-passphrase-77"),
        PasswordReset::InvalidToken
    ));
    // Garbage tokens are just invalid.
    for junk in ["", ".", "x.y", "not-a-token", "ZZZZ.", &"a".repeat(10_000)] {
        assert!(matches!(
            reset(&f, junk, "another-passphrase-77"),
            PasswordReset::InvalidToken
        ));
    }
}

#[test]
fn a_planted_plain_secret_is_refused_when_a_key_is_configured() {
    let f = fx();
    let sam = f.user("sam");
    let _ = enroll(&f.kw, &sam.id);
    // Someone with write access to the store swaps in a secret of their choosing.
    let mut totp = f.record(&sam.id).totp;
    let planted = keyward::TotpSecret::from_bytes(vec![1; 20]);
    totp.secret = Some(
        keyward::StoredTotpSecret::plain(&planted)
            .unwrap()
            .to_stored(),
    );
    f.kw.store().set_totp(&sam.id, &totp).unwrap();
    f.clock.advance(Duration::seconds(60));
    let pending = totp_step(&f, "sam");
    let outcome = f.kw.verify_totp(pending, &code(&[1; 20], f.kw.now()));
    assert!(
        outcome.is_err(),
        "a plain secret must not open under a sealing key: {outcome:?}"
    );
}

#[test]
fn a_single_use_password_asks_for_the_second_factor_before_the_change() {
    let f = fx();
    let (secret, temporary) = enrolled_with_temporary(&f);
    // Someone holding only the temporary password cannot set a permanent one.
    let pending = match f.sign_in("sam", &temporary.to_password()) {
        SignIn::TotpRequired(p) => p,
        other => panic!("the second factor must come first: {other:?}"),
    };
    let change = step!(
        f.kw.verify_totp(pending, &code(&secret, f.kw.now()))
            .unwrap(),
        SignIn::PasswordChangeRequired
    );
    let changed =
        f.kw.complete_password_change(change, Password::new("after-the-code-comes-this"))
            .unwrap();
    assert!(
        matches!(
            changed,
            keyward::signin::PasswordChange::Changed(SignIn::Authenticated(_))
        ),
        "{changed:?}"
    );
}

#[test]
fn pending_steps_die_when_the_account_changes() {
    let f = fx();
    let user = User::new(f.site.clone(), "sso", "Sue", "Sso", "staff", T0)
        .with_sso(true)
        .with_email("sso@example.org", true);
    let sue = f.kw.create_user(None, user, None).unwrap();
    let temporary = f.admin_managed_for(&sue.id).to_password();
    let secret = enroll(&f.kw, &sue.id);
    f.clock.advance(Duration::seconds(60));
    let pending = step!(f.sign_in("sso", &temporary), SignIn::TotpRequired);
    // The directory is back: the admin removes the temporary password mid-sign-in.
    f.kw.remove_temporary_password(&f.admin.id, &sue.id)
        .unwrap();
    match f
        .kw
        .verify_totp(pending, &code(&secret, f.kw.now()))
        .unwrap()
    {
        SignIn::Denied(d) => assert_eq!(d.reason(), DenialReason::AccountChanged),
        other => panic!("a pending step outlived the password it began with: {other:?}"),
    }
}

#[test]
fn self_service_enrollment_is_refused_during_a_reset_and_records_no_sign_in() {
    let f = fx();
    let sam = f.user("sam");
    let _ = enroll(&f.kw, &sam.id);
    assert_eq!(f.record(&sam.id).user.last_sign_in_at, None);
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    assert!(matches!(
        f.kw.enroll_totp(&sam.id, None),
        Err(keyward::Error::TotpResetPending { .. })
    ));
}

#[test]
fn an_admin_reset_during_enrollment_wins() {
    let f = fx();
    let sam = f.user("sam");
    let pending = f.kw.enroll_totp(&sam.id, None).unwrap();
    let c = code_for(&pending, f.kw.now());
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    let denial = step!(
        f.kw.confirm_enrollment(pending, &c).unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::AccountChanged);
    let totp = f.record(&sam.id).totp;
    assert!(
        totp.reset_pending && totp.secret.is_none(),
        "the reset was undone: {totp:?}"
    );
}

#[test]
fn a_disabled_account_cannot_be_reset() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    let token = f.reset_token_to("sam@example.org");
    f.disable(&sam.id);
    let outcome = reset(&f, &token, "a-fresh-passphrase-9");
    assert!(
        matches!(outcome, PasswordReset::InvalidToken),
        "{outcome:?}"
    );
    assert!(matches!(
        f.kw.send_password_reset(&f.admin.id, &sam.id),
        Err(keyward::Error::UserDisabled { .. })
    ));
}

fn rotated(f: &Fx) -> Keyward {
    let sealer = keyward::TotpSealer::new("k2", &[8u8; 32])
        .unwrap()
        .with_previous_key("k1", &[7u8; 32])
        .unwrap();
    sealed_service(f.store.clone(), f.clock.clone(), sealer)
}

#[test]
fn key_rotation_reseals_at_the_next_sign_in() {
    let f = fx();
    let sam = f.user("sam");
    let secret = enroll(&f.kw, &sam.id);
    let key_of = |kw: &Keyward| {
        let stored = record_of(kw, &sam.id).totp.secret.unwrap();
        keyward::StoredTotpSecret::parse(stored.as_str())
            .unwrap()
            .key_id()
            .map(str::to_owned)
    };
    assert_eq!(key_of(&f.kw).as_deref(), Some("k1"));
    let kw = rotated(&f);
    assert!(matches!(
        totp_sign_in(&kw, &f.clock, "sam", &secret),
        SignIn::Authenticated(_)
    ));
    assert_eq!(
        key_of(&kw).as_deref(),
        Some("k2"),
        "the secret moved to the current key"
    );
    // The old key alone can no longer open it.
    f.clock.advance(Duration::seconds(60));
    let pending = totp_step(&f, "sam");
    assert!(
        f.kw.verify_totp(pending, &code(&secret, f.kw.now()))
            .is_err()
    );
}

#[test]
fn plain_secrets_move_into_sealing_only_by_an_explicit_reseal() {
    let (_plain, store, clock, user, secret) = plain_setup();
    let sealed = sealed_service(store.clone(), clock.clone(), sealer());
    assert!(sealed.reseal_totp_secret(&user).unwrap());
    assert!(
        !sealed.reseal_totp_secret(&user).unwrap(),
        "nothing left to do"
    );
    let stored = store.get_user(&user).unwrap().unwrap().totp.secret.unwrap();
    assert!(stored.as_str().starts_with("sealed:"));
    let outcome = totp_sign_in(&sealed, &clock, "p", &secret);
    assert!(matches!(outcome, SignIn::Authenticated(_)), "{outcome:?}");
}

#[test]
fn plain_storage_signs_in_with_totp() {
    let (kw, _store, clock, _user, secret) = plain_setup();
    let outcome = totp_sign_in(&kw, &clock, "p", &secret);
    assert!(matches!(outcome, SignIn::Authenticated(_)), "{outcome:?}");
}

#[test]
fn a_temporary_password_survives_an_unfinished_second_factor() {
    let f = fx();
    let (secret, temporary) = enrolled_with_temporary(&f);
    // The user has no phone to hand the first time: the step is abandoned.
    let abandoned = step!(
        f.sign_in("sam", &temporary.to_password()),
        SignIn::TotpRequired
    );
    drop(abandoned);
    // The temporary password still works; only the completed sign-in uses it up.
    let pending = match f.sign_in("sam", &temporary.to_password()) {
        SignIn::TotpRequired(p) => p,
        other => panic!("the temporary password was used up early: {other:?}"),
    };
    assert!(matches!(
        f.kw.verify_totp(pending, &code(&secret, f.kw.now()))
            .unwrap(),
        SignIn::PasswordChangeRequired(_)
    ));
    let denial = step!(f.sign_in("sam", &temporary.to_password()), SignIn::Denied);
    assert_eq!(denial.reason(), DenialReason::TemporaryPasswordUsed);
}

#[test]
fn only_the_secret_a_step_showed_can_be_confirmed() {
    let f = fx();
    let sam = f.user("sam");
    let older = f.kw.enroll_totp(&sam.id, None).unwrap();
    let newer = f.kw.enroll_totp(&sam.id, None).unwrap();
    let newer_code = code_for(&newer, f.kw.now());
    let denial = step!(
        f.kw.confirm_enrollment(older, &newer_code).unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::AccountChanged);
    assert!(matches!(
        f.kw.confirm_enrollment(newer, &newer_code).unwrap(),
        SignIn::AuthenticatorAdded(_)
    ));
}

#[test]
fn without_a_notifier_a_due_code_fails_loudly_instead_of_vanishing() {
    // The builder's default delivers nothing: every send fails, naming the missing setting.
    let store: Arc<dyn UserStore> = Arc::new(InMemoryStore::new());
    let reported = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hook_sink = reported.clone();
    let kw = builder(store)
        .totp_sealer(sealer())
        .on_error(Arc::new(move |e: &keyward::Error| {
            hook_sink.lock().unwrap().push(e.to_string());
        }))
        .build();
    let admin = User::new(site(), "head", "Ada", "Admin", "staff", kw.now())
        .with_role(keyward::user::Role::Administrator);
    let admin = kw
        .create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap();
    let sam = User::new(site(), "sam", "Sam", "S", "student", kw.now())
        .with_email("sam@example.org", true);
    let sam = kw
        .create_user(Some(&admin.id), sam, Some(Password::new(USER_PASSWORD)))
        .unwrap();
    enroll(&kw, &sam.id);
    kw.reset_totp(&admin.id, &sam.id).unwrap();
    let err = kw
        .sign_in(&site(), "sam", &Password::new(USER_PASSWORD), None)
        .unwrap_err();
    assert!(matches!(err, keyward::Error::Notify(_)), "{err:?}");
    assert!(
        err.to_string().contains("no notifier is configured"),
        "{err}"
    );
    // The undelivered code was withdrawn, and both its issue and its withdrawal are on record.
    assert!(record_of(&kw, &sam.id).totp.device_code.is_none());
    let query = AuditQuery::for_user(sam.id.clone()).action(AuditAction::DeviceCodeSent);
    let events = kw.store().query_audit(&query).unwrap().items;
    let reasons: Vec<_> = events.iter().map(|e| e.reason.as_deref()).collect();
    assert_eq!(reasons, [None, Some("delivery_failed")], "{events:?}");
    // The unauthenticated reset request answers as always; the failure reaches the hook.
    kw.request_password_reset(&site(), "sam").unwrap();
    let reported = reported.lock().unwrap();
    assert!(
        reported.iter().any(|e| e.contains("no notifier")),
        "{reported:?}"
    );
}

#[test]
fn two_right_device_codes_racing_stage_one_enrollment() {
    let f = fx();
    let sam = f.user("sam");
    enroll(&f.kw, &sam.id);
    let (first, code) = device_step_after_reset(&f, &sam);
    // A second sign-in reuses the live code: two steps, one code.
    let second = device_step(&f, "sam");
    let outcomes: Vec<SignIn> = std::thread::scope(|s| {
        let runs: Vec<_> = [first, second]
            .into_iter()
            .map(|pending| {
                let (kw, code) = (&f.kw, code.clone());
                s.spawn(move || {
                    kw.authorize_device(pending, &OneTimeCode::new(code))
                        .unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let staged = (outcomes.iter())
        .filter(|o| matches!(o, SignIn::TotpEnrollmentRequired(_)))
        .count();
    assert_eq!(staged, 1, "{outcomes:?}");
    let events = f.audit(&AuditQuery::default().action(AuditAction::SignIn));
    let authorized = (events.items.iter())
        .filter(|e| e.reason.as_deref() == Some("device_authorized"))
        .count();
    assert_eq!(authorized, 1, "one acceptance, one event");
}
