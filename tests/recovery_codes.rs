//! Recovery codes: made when an authenticator is confirmed and on demand, shown once, kept as
//! digests, each accepted once in place of a TOTP code (also when sign-ins race on several
//! servers), counted on the TOTP lock, voided by a new set or a reset, every use audited, the
//! remaining count visible to administrators.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Barrier};

use keyward::audit::{AuditAction, AuditOutcome};
use keyward::policy::CodeRules;
use keyward::signin::PendingTotp;
use keyward::totp::{self, TotpConfig};
use keyward::{
    DenialReason, Error, InMemoryStore, Password, RecoveryCode, SignIn, TotpSecret, UserStore,
};
use support::{Fx, USER_PASSWORD, fx, fx_with};
use time::Duration;

/// Enrolls `user` by self-service and returns the secret and the recovery codes shown.
fn enroll(f: &Fx, user: &keyward::user::UserId) -> (Vec<u8>, Vec<String>) {
    let pending = f.kw.enroll_totp(user, None).unwrap();
    let secret = pending.enrollment().secret().expose_secret().to_vec();
    let code = totp::code_at(
        &TotpConfig::DEFAULT,
        pending.enrollment().secret(),
        f.kw.now(),
    )
    .unwrap();
    let mut added = step!(
        f.kw.confirm_enrollment(pending, &code).unwrap(),
        SignIn::AuthenticatorAdded
    );
    let codes = added
        .take_recovery_codes()
        .expect("a set with the new authenticator");
    let codes: Vec<String> = codes.expose_secrets().map(str::to_owned).collect();
    assert!(added.take_recovery_codes().is_none(), "shown once");
    (secret, codes)
}

/// Signs `username` in up to the TOTP step.
fn totp_step(f: &Fx, username: &str) -> PendingTotp {
    step!(f.sign_in_as(username), SignIn::TotpRequired)
}

#[test]
fn a_self_service_enrollment_shows_ten_codes_once_and_keeps_only_digests() {
    let f = fx();
    let sam = f.user("sam");
    let (_, codes) = enroll(&f, &sam.id);
    assert_eq!(codes.len(), 10, "the default set");
    let stored = f.record(&sam.id).totp.recovery_codes;
    assert_eq!(stored.len(), 10);
    let digests = format!("{stored:?}");
    for code in &codes {
        assert!(!digests.contains(code.as_str()));
        assert!(!digests.contains(&code.replace('-', "")));
    }
    let generated = f.events_of(&sam.id, AuditAction::RecoveryCodesGenerated);
    assert_eq!(generated.len(), 1);
    assert_eq!(generated[0].details.as_deref(), Some("count=10"));
    let summary = f.kw.user_summary(&f.admin.id, &sam.id).unwrap();
    assert_eq!(summary.recovery_codes_remaining, 10);
}

#[test]
fn a_code_signs_in_once_and_is_audited_with_what_remains() {
    let f = fx();
    let sam = f.user("sam");
    let (_, codes) = enroll(&f, &sam.id);
    // Typed as the user might: upper case, spaces for dashes.
    let typed = RecoveryCode::new(codes[3].to_uppercase().replace('-', " "));
    let done = step!(
        f.kw.verify_recovery_code(totp_step(&f, "sam"), &typed)
            .unwrap(),
        SignIn::Authenticated
    );
    assert_eq!(done.user().id, sam.id);
    let used = f.events_of(&sam.id, AuditAction::RecoveryCodeUsed);
    assert_eq!(used.len(), 1);
    assert_eq!(used[0].outcome, AuditOutcome::Succeeded);
    assert_eq!(used[0].details.as_deref(), Some("remaining=9"));
    let summary = f.kw.user_summary(&f.admin.id, &sam.id).unwrap();
    assert_eq!(summary.recovery_codes_remaining, 9);
    // The same code again: a wrong code, the step handed back.
    let again = step!(
        f.kw.verify_recovery_code(totp_step(&f, "sam"), &RecoveryCode::new(codes[3].as_str()))
            .unwrap(),
        SignIn::TotpRequired
    );
    assert!(again.is_retry());
    let denied = f
        .events_of(&sam.id, AuditAction::SignIn)
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("wrong_recovery_code"))
        .count();
    assert_eq!(denied, 1);
    // Another code still works.
    let other = RecoveryCode::new(codes[0].as_str());
    let _ = step!(
        f.kw.verify_recovery_code(again, &other).unwrap(),
        SignIn::Authenticated
    );
    assert_eq!(f.record(&sam.id).totp.recovery_codes.len(), 8);
}

#[test]
fn wrong_codes_count_on_the_totp_lock() {
    let f = fx();
    let sam = f.user("sam");
    let (_, codes) = enroll(&f, &sam.id);
    let mut pending = totp_step(&f, "sam");
    let mut locked = None;
    for i in 0..20 {
        // Well-formed, but nobody's code.
        let last = char::from(b'a' + i);
        let wrong = RecoveryCode::new(format!("aaaa-bbbb-cccc-ddd{last}"));
        match f.kw.verify_recovery_code(pending, &wrong).unwrap() {
            SignIn::TotpRequired(next) => pending = next,
            SignIn::Denied(denial) => {
                locked = Some((i, denial));
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    let (tries, denial) = locked.expect("the TOTP lock holds at last");
    assert!(
        matches!(denial.reason(), DenialReason::TotpLocked { .. }),
        "{denial:?}"
    );
    assert_eq!(
        u32::from(tries) + 1,
        f.record(&sam.id).totp_lock.failed_attempts
    );
    // Locked: even a right code is refused, before it is looked at, and stays unused.
    let d = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert!(matches!(d.reason(), DenialReason::TotpLocked { .. }));
    assert_eq!(f.record(&sam.id).totp.recovery_codes.len(), codes.len());
}

#[test]
fn malformed_and_hostile_input_is_a_wrong_code() {
    let f = fx();
    let sam = f.user("sam");
    let _ = enroll(&f, &sam.id);
    let mut pending = totp_step(&f, "sam");
    // Four, each a counted wrong code (the fifth wrong one would lock).
    let long = "x".repeat(100_000);
    for typed in ["", "\0", "ünïcödé-ünïc-ödé!-ünïc", long.as_str()] {
        pending = step!(
            f.kw.verify_recovery_code(pending, &RecoveryCode::new(typed))
                .unwrap(),
            SignIn::TotpRequired
        );
    }
    let lock = f.record(&sam.id).totp_lock;
    assert_eq!((lock.failed_attempts, lock.in_flight), (4, 0));
}

#[test]
fn a_new_set_needs_a_step_up_and_voids_the_old_one() {
    let f = fx();
    let sam = f.user("sam");
    let (_, old) = enroll(&f, &sam.id);
    // A step-up of someone else, or a stale one, does not do.
    let kim = f.user("kim");
    let kims = f.step_up(&kim.id);
    assert!(matches!(
        f.kw.regenerate_recovery_codes(&sam.id, kims),
        Err(Error::StepUpRequired { .. })
    ));
    let stale = f.step_up(&sam.id);
    f.clock.advance(Duration::minutes(6));
    assert!(matches!(
        f.kw.regenerate_recovery_codes(&sam.id, stale),
        Err(Error::StepUpRequired { .. })
    ));
    let fresh =
        f.kw.regenerate_recovery_codes(&sam.id, f.step_up(&sam.id))
            .unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(!format!("{fresh:?}").contains(fresh.expose_secrets().next().unwrap()));
    let new: Vec<String> = fresh.expose_secrets().map(str::to_owned).collect();
    // An old code is dead; a new one works.
    let pending = step!(
        f.kw.verify_recovery_code(totp_step(&f, "sam"), &RecoveryCode::new(old[0].as_str()))
            .unwrap(),
        SignIn::TotpRequired
    );
    let _ = step!(
        f.kw.verify_recovery_code(pending, &RecoveryCode::new(new[0].as_str()))
            .unwrap(),
        SignIn::Authenticated
    );
    assert_eq!(
        f.events_of(&sam.id, AuditAction::RecoveryCodesGenerated)
            .len(),
        2
    );
}

#[test]
fn no_set_without_an_authenticator_or_when_turned_off() {
    let f = fx();
    let sam = f.user("sam");
    assert!(matches!(
        f.kw.regenerate_recovery_codes(&sam.id, f.step_up(&sam.id)),
        Err(Error::NoAuthenticator { .. })
    ));
    let off = fx_with(Arc::new(InMemoryStore::new()), |b| {
        b.codes(CodeRules {
            recovery_codes: 0,
            ..CodeRules::DEFAULT
        })
    });
    let kim = off.user("kim");
    let pending = off.kw.enroll_totp(&kim.id, None).unwrap();
    let code = totp::code_at(
        &TotpConfig::DEFAULT,
        pending.enrollment().secret(),
        off.kw.now(),
    )
    .unwrap();
    let mut added = step!(
        off.kw.confirm_enrollment(pending, &code).unwrap(),
        SignIn::AuthenticatorAdded
    );
    assert!(added.take_recovery_codes().is_none());
    assert!(off.record(&kim.id).totp.recovery_codes.is_empty());
    assert!(matches!(
        off.kw
            .regenerate_recovery_codes(&kim.id, off.step_up(&kim.id)),
        Err(Error::RecoveryCodesOff)
    ));
}

#[test]
fn an_authenticator_reset_voids_the_codes_and_the_new_enrollment_brings_a_set() {
    let f = fx();
    let sam = f.user("sam");
    let (_, old) = enroll(&f, &sam.id);
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    assert!(f.record(&sam.id).totp.recovery_codes.is_empty());
    assert_eq!(
        f.kw.user_summary(&f.admin.id, &sam.id)
            .unwrap()
            .recovery_codes_remaining,
        0
    );
    // The sign-in after the reset: device code, enrollment, then the new set with the
    // completed sign-in (no step in between carried it).
    let device = step!(f.sign_in_as("sam"), SignIn::DeviceAuthorizationRequired);
    let code = keyward::OneTimeCode::new(support::digits_in(&f.mail_to("sam@example.org"), 8));
    let enrolling = step!(
        f.kw.authorize_device(device, &code).unwrap(),
        SignIn::TotpEnrollmentRequired
    );
    // The enrollment step travels (sealed) and is resumed: the codes still come at the end.
    let sealed = f.kw.seal_step(enrolling).unwrap();
    let enrolling = match f.kw.open_step(sealed.as_str()).unwrap() {
        keyward::PendingStep::Enrollment(p) => p,
        other => panic!("{other:?}"),
    };
    let secret = TotpSecret::from_bytes(enrolling.enrollment().secret().expose_secret().to_vec());
    let code = totp::code_at(&TotpConfig::DEFAULT, &secret, f.kw.now()).unwrap();
    let mut done = step!(
        f.kw.confirm_enrollment(enrolling, &code).unwrap(),
        SignIn::Authenticated
    );
    let codes = done
        .take_recovery_codes()
        .expect("a set with the new authenticator");
    assert_eq!(codes.len(), 10);
    assert!(!format!("{done:?}").contains(codes.expose_secrets().next().unwrap()));
    let stored = f.record(&sam.id).totp.recovery_codes;
    assert_eq!(stored.len(), 10);
    // The old set stays dead.
    let pending = step!(
        f.kw.verify_recovery_code(totp_step(&f, "sam"), &RecoveryCode::new(old[1].as_str()))
            .unwrap(),
        SignIn::TotpRequired
    );
    let first = RecoveryCode::new(codes.expose_secrets().next().unwrap());
    let _ = step!(
        f.kw.verify_recovery_code(pending, &first).unwrap(),
        SignIn::Authenticated
    );
}

#[test]
fn a_sealed_totp_step_finishes_with_a_recovery_code_once() {
    let f = fx();
    let sam = f.user("sam");
    let (_, codes) = enroll(&f, &sam.id);
    let sealed = f.kw.seal_step(totp_step(&f, "sam")).unwrap();
    let open = |s: &str| match f.kw.open_step(s).unwrap() {
        keyward::PendingStep::Totp(p) => p,
        other => panic!("{other:?}"),
    };
    let code = RecoveryCode::new(codes[2].as_str());
    let _ = step!(
        f.kw.verify_recovery_code(open(sealed.as_str()), &code)
            .unwrap(),
        SignIn::Authenticated
    );
    // The same string again, with another right code: the step is spent.
    let d = step!(
        f.kw.verify_recovery_code(open(sealed.as_str()), &RecoveryCode::new(codes[4].as_str()))
            .unwrap(),
        SignIn::Denied
    );
    assert_eq!(d.reason(), DenialReason::AccountChanged);
    assert_eq!(f.record(&sam.id).totp.recovery_codes.len(), 9);
}

/// Eight sign-ins on two store handles race with the same code: exactly one passes.
fn racing_sign_ins_accept_a_code_once(a: Arc<dyn UserStore>, b: Arc<dyn UserStore>) {
    let f = fx_with(a, |b| b);
    // A second server: its own store handle, the same keys and clock.
    let other = support::builder(b)
        .clock(f.clock.clone())
        .notifier(f.outbox.clone())
        .totp_sealer(support::sealer())
        .build();
    let sam = f.user("sam");
    let (_, codes) = enroll(&f, &sam.id);
    let code = codes[5].clone();
    // The eight sign-ins reach their TOTP step one after another (eight first factors at
    // once would meet the password lock's in-flight bound), then race on the code.
    let pending: Vec<(usize, PendingTotp)> = (0..8)
        .map(|i| {
            let kw = if i % 2 == 0 { &f.kw } else { &other };
            let signed = kw.sign_in(&f.site, "sam", &Password::new(USER_PASSWORD), None);
            (i, step!(signed.unwrap(), SignIn::TotpRequired))
        })
        .collect();
    let barrier = Barrier::new(8);
    let outcomes: Vec<SignIn> = std::thread::scope(|s| {
        let handles: Vec<_> = pending
            .into_iter()
            .map(|(i, pending)| {
                let kw = if i % 2 == 0 { &f.kw } else { &other };
                let (barrier, code) = (&barrier, &code);
                s.spawn(move || {
                    barrier.wait();
                    kw.verify_recovery_code(pending, &RecoveryCode::new(code.as_str()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let passed = outcomes
        .iter()
        .filter(|o| matches!(o, SignIn::Authenticated(_)))
        .count();
    // The others: the code was gone (a wrong code, counted, the step handed back, or the
    // lock once five such failures add up), their step was void once the winner changed the
    // account, or they met the TOTP counter's in-flight bound (denied without evaluation).
    for outcome in &outcomes {
        match outcome {
            SignIn::Authenticated(_) | SignIn::TotpRequired(_) => {}
            SignIn::Denied(d) => assert!(
                matches!(
                    d.reason(),
                    DenialReason::TooManyAttempts
                        | DenialReason::AccountChanged
                        | DenialReason::TotpLocked { .. }
                ),
                "{d:?}"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(passed, 1, "one code, one sign-in");
    assert_eq!(f.record(&sam.id).totp.recovery_codes.len(), 9);
    assert_eq!(f.events_of(&sam.id, AuditAction::RecoveryCodeUsed).len(), 1);
}

#[test]
fn racing_sign_ins_accept_a_code_once_in_memory() {
    let store = Arc::new(InMemoryStore::new());
    racing_sign_ins_accept_a_code_once(store.clone(), store);
}

#[cfg(feature = "sqlite")]
#[test]
fn racing_sign_ins_accept_a_code_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.db");
    let a = keyward::SqliteStore::open(&path).unwrap();
    let b = keyward::SqliteStore::open(&path).unwrap();
    racing_sign_ins_accept_a_code_once(Arc::new(a), Arc::new(b));
}

#[cfg(feature = "postgres")]
#[test]
fn racing_sign_ins_accept_a_code_once_on_postgres() {
    let Some(schema) = support::pg::TestSchema::new() else {
        return;
    };
    racing_sign_ins_accept_a_code_once(Arc::new(schema.open()), Arc::new(schema.open()));
}

#[cfg(feature = "sqlite")]
#[test]
fn no_code_is_in_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyward::SqliteStore::open(dir.path().join("keyward.db")).unwrap();
    let f = fx_with(Arc::new(store), |b| b);
    let sam = f.user("sam");
    let (_, codes) = enroll(&f, &sam.id);
    let bytes = support::raw_bytes(dir.path());
    for code in &codes {
        assert!(!support::contains(&bytes, code.as_bytes()));
        assert!(!support::contains(&bytes, code.replace('-', "").as_bytes()));
    }
    assert_eq!(f.record(&sam.id).totp.recovery_codes.len(), 10);
}
