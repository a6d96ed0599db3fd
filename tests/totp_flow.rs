//! TOTP in the sign-in flow: enrollment, replay-safe verification, its own lockout, admin
//! reset with device authorization by email, and password reset tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyward::audit::{AuditAction, AuditQuery};
use keyward::recovery::PasswordReset;
use keyward::signin::{PendingEnrollment, PendingTotp};
use keyward::totp::{self, TotpConfig};
use keyward::user::{User, UserId};
use keyward::{DenialReason, OneTimeCode, Password, SignIn};
use support::*;
use time::Duration;

fn code_for(pending: &PendingEnrollment, at: time::OffsetDateTime) -> OneTimeCode {
    totp::code_at(&TotpConfig::DEFAULT, pending.enrollment().secret(), at).unwrap()
}

/// Enrolls `user` outside sign-in and returns the raw secret bytes for computing codes.
fn enrolled(f: &Fx, user: &UserId) -> Vec<u8> {
    enroll_with(&f.kw, user)
}

fn enroll_with(kw: &keyward::Keyward, user: &UserId) -> Vec<u8> {
    let pending = kw.enroll_totp(user).unwrap();
    let secret = pending.enrollment().secret().expose_secret().to_vec();
    let code = code_for(&pending, kw.now());
    assert!(matches!(
        kw.confirm_enrollment(pending, &code).unwrap(),
        SignIn::Authenticated(_)
    ));
    secret
}

/// A service storing TOTP secrets plain (the explicit opt-in), with user `p` enrolled.
/// Returns the service, the store, the clock, the user and the raw secret.
fn plain_setup() -> (
    keyward::Keyward,
    std::sync::Arc<dyn keyward::UserStore>,
    std::sync::Arc<keyward::ManualClock>,
    UserId,
    Vec<u8>,
) {
    let store: std::sync::Arc<dyn keyward::UserStore> =
        std::sync::Arc::new(keyward::InMemoryStore::new());
    let clock = std::sync::Arc::new(keyward::ManualClock::new(T0));
    let kw = keyward::Keyward::builder(store.clone())
        .hasher(keyward::hash::Hasher::for_tests())
        .clock(clock.clone())
        .insecure_plain_totp_secrets()
        .build();
    let user = User::new(site(), "p", "P", "Lain", "staff", T0);
    let user = kw
        .create_user(None, user, Some(Password::new(USER_PASSWORD)))
        .unwrap()
        .id;
    let secret = enroll_with(&kw, &user);
    (kw, store, clock, user, secret)
}

/// Signs `username` in with the standard password and a code from `secret`, a minute later.
fn totp_sign_in(
    kw: &keyward::Keyward,
    clock: &keyward::ManualClock,
    username: &str,
    secret: &[u8],
) -> SignIn {
    clock.advance(Duration::seconds(60));
    let SignIn::TotpRequired(pending) = kw
        .sign_in(&site(), username, &Password::new(USER_PASSWORD), None)
        .unwrap()
    else {
        panic!("expected the TOTP step");
    };
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
    match f
        .kw
        .sign_in(&f.site, username, &Password::new(USER_PASSWORD), None)
        .unwrap()
    {
        SignIn::TotpRequired(p) => p,
        other => panic!("expected the TOTP step, got {other:?}"),
    }
}

#[test]
fn enrollment_then_replay_safe_codes() {
    let f = fx();
    let sam = f.user("sam");
    let secret = enrolled(&f, &sam.id);
    // The stored secret is sealed: neither raw nor base32 appears in the record.
    let stored =
        f.kw.store()
            .get_user(&sam.id)
            .unwrap()
            .unwrap()
            .totp
            .secret
            .unwrap();
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
    let secret = enrolled(&f, &sam.id);
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
    let _ = enrolled(&f, &sam.id);
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
    let record = f.kw.store().get_user(&sam.id).unwrap().unwrap();
    assert!(record.totp_lock.is_locked(f.kw.now()));
    assert_eq!(
        record.password_lock.failed_attempts, 0,
        "password failures are counted apart"
    );
    // The password still passes, but a locked second factor ends the sign-in there.
    match f
        .kw
        .sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None)
        .unwrap()
    {
        SignIn::Denied(d) => assert_eq!(d.reason(), DenialReason::TotpLocked { until: None }),
        other => panic!("{other:?}"),
    }
    f.kw.unlock(&f.admin.id, &sam.id).unwrap();
    assert!(
        !f.kw
            .store()
            .get_user(&sam.id)
            .unwrap()
            .unwrap()
            .totp_lock
            .is_locked(f.kw.now())
    );
}

#[test]
fn lost_phone_reset_device_code_and_new_enrollment() {
    let f = fx();
    let sam = f.user("sam");
    let old_secret = enrolled(&f, &sam.id);
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    let record = f.kw.store().get_user(&sam.id).unwrap().unwrap();
    assert!(record.totp.reset_pending && record.totp.secret.is_none());

    let pending = step!(
        f.kw.sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::DeviceAuthorizationRequired
    );
    assert_eq!(pending.sent_to(), "sam@example.org");
    let mail = f.mail_to("sam@example.org");
    let device_code = digits_in(&mail, 8);
    // The code is stored only as a hash.
    let stored =
        f.kw.store()
            .get_user(&sam.id)
            .unwrap()
            .unwrap()
            .totp
            .device_code
            .unwrap();
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
    let record = f.kw.store().get_user(&sam.id).unwrap().unwrap();
    assert!(
        !record.totp.reset_pending
            && record.totp.secret.is_some()
            && record.totp.device_code.is_none()
    );
    // Every step is audited.
    let actions: Vec<_> =
        f.kw.store()
            .query_audit(&AuditQuery::for_user(sam.id.clone()))
            .unwrap()
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
    let again = step!(
        f.kw.sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::TotpRequired
    );
    drop(again);
}

#[test]
fn device_codes_expire_and_run_out_of_tries() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    let sign_in = || {
        step!(
            f.kw.sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None)
                .unwrap(),
            SignIn::DeviceAuthorizationRequired
        )
    };
    let pending = sign_in();
    let first_code = digits_in(&f.mail_to("sam@example.org"), 8);
    // A second sign-in within the lifetime reuses the live code: nothing new is sent.
    let _ = sign_in();
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
    let mut pending = sign_in();
    let fresh = digits_in(&f.mail_to("sam@example.org"), 8);
    for _ in 0..4 {
        pending = step!(
            f.kw.authorize_device(pending, &OneTimeCode::new("11111111"))
                .unwrap(),
            SignIn::DeviceAuthorizationRequired
        );
    }
    let denial = step!(
        f.kw.authorize_device(pending, &OneTimeCode::new("11111111"))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::TotpLocked { until: None });
    // While the second factor is locked, sign-in stops before any code is sent.
    let outcome =
        f.kw.sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None)
            .unwrap();
    match outcome {
        SignIn::Denied(d) => assert_eq!(d.reason(), DenialReason::TotpLocked { until: None }),
        other => panic!("{other:?}"),
    }
    assert!(f.outbox.is_empty());
    let _ = fresh;
    // After the administrator unlocks, the next sign-in sends a new code that works.
    f.kw.unlock(&f.admin.id, &sam.id).unwrap();
    let pending = sign_in();
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
    let store = std::sync::Arc::new(keyward::InMemoryStore::new());
    let clock = std::sync::Arc::new(keyward::ManualClock::new(T0));
    let outbox = std::sync::Arc::new(keyward::notify::Outbox::new());
    let rule = LockoutRule::new(50, Duration::hours(1), LockoutMode::UntilUnlocked).unwrap();
    let kw = keyward::Keyward::builder(store)
        .hasher(keyward::hash::Hasher::for_tests())
        .clock(clock)
        .notifier(outbox.clone())
        .lockout(std::sync::Arc::new(rule))
        .totp_sealer(sealer())
        .build();
    let admin = User::new(site(), "adm", "A", "Dm", "staff", T0)
        .with_role(keyward::user::Role::Administrator);
    let admin = kw
        .create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap();
    let user =
        User::new(site(), "zoe", "Zoe", "Zed", "student", T0).with_email("zoe@example.org", true);
    let zoe = kw
        .create_user(None, user, Some(Password::new(USER_PASSWORD)))
        .unwrap();
    kw.reset_totp(&admin.id, &zoe.id).unwrap();
    let SignIn::DeviceAuthorizationRequired(mut pending) = kw
        .sign_in(&site(), "zoe", &Password::new(USER_PASSWORD), None)
        .unwrap()
    else {
        panic!("expected device authorization");
    };
    let code = digits_in(outbox.take_all()[0].expose_body(), 8);
    for _ in 0..4 {
        pending = step!(
            kw.authorize_device(pending, &OneTimeCode::new("11111111"))
                .unwrap(),
            SignIn::DeviceAuthorizationRequired
        );
    }
    let denial = step!(
        kw.authorize_device(pending, &OneTimeCode::new("11111111"))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(denial.reason(), DenialReason::DeviceCodeExhausted);
    // The right code no longer works: five tries per code.
    let SignIn::DeviceAuthorizationRequired(pending) = kw
        .sign_in(&site(), "zoe", &Password::new(USER_PASSWORD), None)
        .unwrap()
    else {
        panic!("expected device authorization");
    };
    let outcome = kw
        .authorize_device(pending, &OneTimeCode::new(code))
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
    let sam = f.user("sam");
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    let pending = step!(
        f.kw.sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::DeviceAuthorizationRequired
    );
    let device_code = digits_in(&f.mail_to("sam@example.org"), 8);
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
    let denial = step!(
        f.kw.sign_in(&f.site, "noemail", &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::Denied
    );
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
    let store = std::sync::Arc::new(keyward::InMemoryStore::new());
    let kw = keyward::Keyward::builder(store.clone())
        .hasher(keyward::hash::Hasher::for_tests())
        .build();
    let user = kw
        .create_user(None, User::new(site(), "k", "K", "Ey", "staff", T0), None)
        .unwrap();
    assert!(matches!(
        kw.enroll_totp(&user.id),
        Err(keyward::Error::TotpKeyMissing)
    ));
    let plain = keyward::Keyward::builder(store)
        .hasher(keyward::hash::Hasher::for_tests())
        .insecure_plain_totp_secrets()
        .build();
    let pending = plain.enroll_totp(&user.id).unwrap();
    let stored = plain
        .store()
        .get_user(&user.id)
        .unwrap()
        .unwrap()
        .totp
        .pending_secret
        .unwrap();
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
    let old_token = f
        .mail_to("sam@example.org")
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    let token = f
        .mail_to("sam@example.org")
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    assert!(
        token.len() > 32 + 50,
        "token carries at least 256 bits: {}",
        token.len()
    );
    // The stored form is a hash.
    let stored =
        f.kw.store()
            .get_user(&sam.id)
            .unwrap()
            .unwrap()
            .reset_token
            .unwrap();
    assert!(
        !stored
            .hash
            .as_str()
            .contains(token.split('.').nth(1).unwrap())
    );
    // The newest voids the older one.
    assert!(matches!(
        f.kw.reset_password(
            &OneTimeCode::new(old_token),
            Password::new("a-fresh-passphrase-9")
        )
        .unwrap(),
        PasswordReset::InvalidToken
    ));
    // A weak password is rejected and the token stays valid.
    assert!(matches!(
        f.kw.reset_password(&OneTimeCode::new(token.clone()), Password::new("short"))
            .unwrap(),
        PasswordReset::Rejected(_)
    ));
    assert!(matches!(
        f.kw.reset_password(
            &OneTimeCode::new(token.clone()),
            Password::new("a-fresh-passphrase-9")
        )
        .unwrap(),
        PasswordReset::Done { .. }
    ));
    assert!(matches!(
        f.kw.sign_in(&f.site, "sam", &Password::new("a-fresh-passphrase-9"), None)
            .unwrap(),
        SignIn::Authenticated(_)
    ));
    // Single use.
    assert!(matches!(
        f.kw.reset_password(
            &OneTimeCode::new(token),
            Password::new("another-passphrase-77")
        )
        .unwrap(),
        PasswordReset::InvalidToken
    ));
    // Expiry at one hour.
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    let token = f
        .mail_to("sam@example.org")
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    f.clock.advance(Duration::hours(1));
    assert!(matches!(
        f.kw.reset_password(
            &OneTimeCode::new(token),
            Password::new("another-passphrase-77")
        )
        .unwrap(),
        PasswordReset::InvalidToken
    ));
    // Garbage tokens are just invalid.
    for junk in ["", ".", "x.y", "not-a-token", "ZZZZ.", &"a".repeat(10_000)] {
        assert!(matches!(
            f.kw.reset_password(
                &OneTimeCode::new(junk),
                Password::new("another-passphrase-77")
            )
            .unwrap(),
            PasswordReset::InvalidToken
        ));
    }
}

#[test]
fn a_planted_plain_secret_is_refused_when_a_key_is_configured() {
    let f = fx();
    let sam = f.user("sam");
    let _ = enrolled(&f, &sam.id);
    // Someone with write access to the store swaps in a secret of their choosing.
    let mut totp = f.kw.store().get_user(&sam.id).unwrap().unwrap().totp;
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
    let sam = f.user("sam");
    let secret = enrolled(&f, &sam.id);
    let temporary = f.temporary_for(&sam.id);
    f.clock.advance(Duration::seconds(60));
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
    let issued =
        f.kw.issue_temporary_password(
            &f.admin.id,
            &sue.id,
            keyward::admin::IssueOptions::generated()
                .mode(keyward::user::TemporaryMode::AdminManaged),
        )
        .unwrap();
    let temporary = issued.password.unwrap().to_password();
    let secret = {
        let pending = f.kw.enroll_totp(&sue.id).unwrap();
        let secret = pending.enrollment().secret().expose_secret().to_vec();
        let c = code_for(&pending, f.kw.now());
        assert!(matches!(
            f.kw.confirm_enrollment(pending, &c).unwrap(),
            SignIn::Authenticated(_)
        ));
        secret
    };
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
    let _ = enrolled(&f, &sam.id);
    assert_eq!(
        f.kw.store()
            .get_user(&sam.id)
            .unwrap()
            .unwrap()
            .user
            .last_sign_in_at,
        None
    );
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    assert!(matches!(
        f.kw.enroll_totp(&sam.id),
        Err(keyward::Error::TotpResetPending { .. })
    ));
}

#[test]
fn an_admin_reset_during_enrollment_wins() {
    let f = fx();
    let sam = f.user("sam");
    let pending = f.kw.enroll_totp(&sam.id).unwrap();
    let c = code_for(&pending, f.kw.now());
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    match f.kw.confirm_enrollment(pending, &c).unwrap() {
        SignIn::Denied(d) => assert_eq!(d.reason(), DenialReason::AccountChanged),
        other => panic!("{other:?}"),
    }
    let totp = f.kw.store().get_user(&sam.id).unwrap().unwrap().totp;
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
    let token = f
        .mail_to("sam@example.org")
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    let mut user = f.kw.store().get_user(&sam.id).unwrap().unwrap().user;
    user.status = keyward::user::UserStatus::Disabled;
    f.kw.store().update_profile(&user).unwrap();
    let outcome =
        f.kw.reset_password(
            &OneTimeCode::new(token),
            Password::new("a-fresh-passphrase-9"),
        )
        .unwrap();
    assert!(
        matches!(outcome, PasswordReset::InvalidToken),
        "{outcome:?}"
    );
    assert!(matches!(
        f.kw.send_password_reset(&f.admin.id, &sam.id),
        Err(keyward::Error::UserDisabled { .. })
    ));
}

fn rotated(f: &Fx) -> keyward::Keyward {
    let sealer = keyward::TotpSealer::new("k2", &[8u8; 32])
        .unwrap()
        .with_previous_key("k1", &[7u8; 32])
        .unwrap();
    keyward::Keyward::builder(f.store.clone())
        .hasher(keyward::hash::Hasher::for_tests())
        .clock(f.clock.clone())
        .totp_sealer(sealer)
        .build()
}

#[test]
fn key_rotation_reseals_at_the_next_sign_in() {
    let f = fx();
    let sam = f.user("sam");
    let secret = enrolled(&f, &sam.id);
    let key_of = |kw: &keyward::Keyward| {
        let stored = kw
            .store()
            .get_user(&sam.id)
            .unwrap()
            .unwrap()
            .totp
            .secret
            .unwrap();
        keyward::StoredTotpSecret::parse(stored.as_str())
            .unwrap()
            .key_id()
            .map(str::to_owned)
    };
    assert_eq!(key_of(&f.kw).as_deref(), Some("k1"));
    let kw = rotated(&f);
    f.clock.advance(Duration::seconds(60));
    let pending = step!(
        kw.sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::TotpRequired
    );
    assert!(matches!(
        kw.verify_totp(pending, &code(&secret, kw.now())).unwrap(),
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
    let sealed = keyward::Keyward::builder(store.clone())
        .hasher(keyward::hash::Hasher::for_tests())
        .clock(clock.clone())
        .totp_sealer(sealer())
        .build();
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
    let sam = f.user("sam");
    let secret = enrolled(&f, &sam.id);
    let temporary = f.temporary_for(&sam.id);
    f.clock.advance(Duration::seconds(60));
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
    match f.sign_in("sam", &temporary.to_password()) {
        SignIn::Denied(d) => assert_eq!(d.reason(), DenialReason::TemporaryPasswordUsed),
        other => panic!("{other:?}"),
    }
}

#[test]
fn only_the_secret_a_step_showed_can_be_confirmed() {
    let f = fx();
    let sam = f.user("sam");
    let older = f.kw.enroll_totp(&sam.id).unwrap();
    let newer = f.kw.enroll_totp(&sam.id).unwrap();
    let newer_code = code_for(&newer, f.kw.now());
    match f.kw.confirm_enrollment(older, &newer_code).unwrap() {
        SignIn::Denied(d) => assert_eq!(d.reason(), DenialReason::AccountChanged),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.kw.confirm_enrollment(newer, &newer_code).unwrap(),
        SignIn::Authenticated(_)
    ));
}
