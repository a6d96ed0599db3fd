//! Step-up: replacing an active authenticator takes a fresh re-authentication of the same
//! user (password or a code of the current authenticator), counted on the locks and audited;
//! a session alone cannot swap in another authenticator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyward::audit::{AuditAction, AuditOutcome, AuditQuery};
use keyward::signin::{Reauthentication, StepUp};
use keyward::totp::{self, TotpConfig};
use keyward::{DenialReason, Error, OneTimeCode, Password, SignIn, TotpSecret};
use support::*;
use time::Duration;

fn code(secret: &[u8], at: time::OffsetDateTime) -> OneTimeCode {
    let secret = TotpSecret::from_bytes(secret.to_vec());
    totp::code_at(&TotpConfig::DEFAULT, &secret, at).unwrap()
}

fn by_password(f: &Fx, user: &keyward::user::UserId, password: &str) -> Reauthentication {
    f.kw.reauthenticate(user, &Password::new(password)).unwrap()
}

fn proof(f: &Fx, user: &keyward::user::UserId) -> StepUp {
    by_password(f, user, USER_PASSWORD)
        .confirmed()
        .expect("confirmed")
}

#[test]
fn replacing_an_authenticator_needs_a_step_up() {
    let f = fx();
    let sam = f.user("sam");
    let old = enroll(&f.kw, &sam.id);
    // A session alone (the newcomer's finding) is refused.
    let err = f.kw.enroll_totp(&sam.id, None).unwrap_err();
    assert!(matches!(err, Error::StepUpRequired { .. }), "{err:?}");
    assert!(
        f.record(&sam.id).totp.pending_secret.is_none(),
        "nothing was staged"
    );
    // With the password re-verified, the new authenticator replaces the old one.
    let pending = f.kw.enroll_totp(&sam.id, Some(proof(&f, &sam.id))).unwrap();
    let new = pending.enrollment().secret().expose_secret().to_vec();
    f.clock.advance(Duration::seconds(60));
    let added = step!(
        f.kw.confirm_enrollment(pending, &code(&new, f.kw.now()))
            .unwrap(),
        SignIn::AuthenticatorAdded
    );
    assert_eq!(added.user(), &sam.id);
    assert!(
        f.kw.check_session(&sam.id, added.stamp())
            .unwrap()
            .is_current()
    );
    f.clock.advance(Duration::seconds(60));
    let pending = step!(f.sign_in_as("sam"), SignIn::TotpRequired);
    let pending = step!(
        f.kw.verify_totp(pending, &code(&old, f.kw.now())).unwrap(),
        SignIn::TotpRequired
    );
    step!(
        f.kw.verify_totp(pending, &code(&new, f.kw.now())).unwrap(),
        SignIn::Authenticated
    );
}

#[test]
fn a_code_of_the_current_authenticator_is_a_step_up_and_is_spent() {
    let f = fx();
    let sam = f.user("sam");
    let secret = enroll(&f.kw, &sam.id);
    f.clock.advance(Duration::seconds(60));
    let now_code = code(&secret, f.kw.now());
    let proof = f.kw.reauthenticate_with_totp(&sam.id, &now_code).unwrap();
    let proof = proof.confirmed().expect("the current code proves it");
    // The same code cannot finish a sign-in afterwards (replay).
    let pending = step!(f.sign_in_as("sam"), SignIn::TotpRequired);
    step!(
        f.kw.verify_totp(pending, &now_code).unwrap(),
        SignIn::TotpRequired
    );
    f.kw.enroll_totp(&sam.id, Some(proof)).unwrap();
    // A wrong code is a denial, counted on the TOTP lock.
    let wrong =
        f.kw.reauthenticate_with_totp(&sam.id, &OneTimeCode::new("000000"))
            .unwrap();
    let Reauthentication::Denied(denial) = wrong else {
        panic!("{wrong:?}");
    };
    assert_eq!(denial.reason(), DenialReason::WrongTotpCode);
    assert!(f.record(&sam.id).totp_lock.failed_attempts >= 1);
}

#[test]
fn wrong_passwords_at_step_up_count_on_the_lockout() {
    let f = fx();
    let sam = f.user("sam");
    for _ in 0..5 {
        let Reauthentication::Denied(d) = by_password(&f, &sam.id, "not-the-password") else {
            panic!("a wrong password was accepted");
        };
        assert!(
            matches!(d.reason(), DenialReason::WrongPassword),
            "{:?}",
            d.reason()
        );
    }
    // The account is now locked: the right password is refused, at sign-in too.
    let Reauthentication::Denied(d) = by_password(&f, &sam.id, USER_PASSWORD) else {
        panic!("a locked account re-authenticated");
    };
    assert!(matches!(d.reason(), DenialReason::Locked { .. }));
    let denied = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert!(matches!(denied.reason(), DenialReason::Locked { .. }));
    let events = f.audit(&AuditQuery::default().action(AuditAction::Reauthenticated));
    let denied = (events.items.iter())
        .filter(|e| e.outcome == AuditOutcome::Denied)
        .count();
    assert_eq!(denied, 6, "every refusal is audited");
}

#[test]
fn a_step_up_holds_for_its_user_for_minutes_while_the_account_stays_the_same() {
    let f = fx();
    let sam = f.user("sam");
    let kim = f.user("kim");
    enroll(&f.kw, &sam.id);
    // Another user's proof.
    let err =
        f.kw.enroll_totp(&sam.id, Some(proof(&f, &kim.id)))
            .unwrap_err();
    assert!(matches!(err, Error::StepUpRequired { .. }));
    // Too old (the default lifetime is five minutes).
    let old = proof(&f, &sam.id);
    f.clock.advance(Duration::minutes(5));
    let err = f.kw.enroll_totp(&sam.id, Some(old)).unwrap_err();
    assert!(matches!(err, Error::StepUpRequired { .. }));
    // The account changed after the proof (an administrator set a temporary password).
    let fresh = proof(&f, &sam.id);
    f.temporary_for(&sam.id);
    let err = f.kw.enroll_totp(&sam.id, Some(fresh)).unwrap_err();
    assert!(matches!(err, Error::StepUpRequired { .. }));
    let events = f.audit(&AuditQuery::default().action(AuditAction::Reauthenticated));
    let succeeded = (events.items.iter())
        .filter(|e| {
            e.outcome == AuditOutcome::Succeeded && e.details.as_deref() == Some("by password")
        })
        .count();
    assert_eq!(succeeded, 3);
}

#[test]
fn a_disabled_user_cannot_step_up() {
    let f = fx();
    let sam = f.user("sam");
    f.disable(&sam.id);
    let Reauthentication::Denied(d) = by_password(&f, &sam.id, USER_PASSWORD) else {
        panic!("a disabled user re-authenticated");
    };
    assert_eq!(d.reason(), DenialReason::Disabled);
}

#[test]
fn an_application_checks_its_own_step_up_and_an_account_change_voids_it() {
    let f = fx();
    let sam = f.user("sam");
    assert!(f.kw.check_step_up(&sam.id, proof(&f, &sam.id)).unwrap());
    let kim = f.user("kim");
    assert!(
        !f.kw.check_step_up(&kim.id, proof(&f, &sam.id)).unwrap(),
        "another user's"
    );
    let before = proof(&f, &sam.id);
    f.temporary_for(&sam.id);
    assert!(
        !f.kw.check_step_up(&sam.id, before).unwrap(),
        "the password changed since"
    );
}

#[test]
fn a_step_up_takes_only_a_password_sign_in_would_take() {
    let f = fx();
    // An expired temporary password, and a used single-use one.
    let sam = f.user("sam");
    let temporary = f.temporary_for(&sam.id);
    f.clock.advance(Duration::days(8));
    let Reauthentication::Denied(_) = by_password(&f, &sam.id, temporary.expose_secret()) else {
        panic!("an expired temporary password stepped up");
    };
    // An SSO-linked user's leftover password.
    let kim = f.user("kim");
    let mut profile = f.record(&kim.id).user;
    profile.sso_linked = true;
    f.kw.store().update_profile(&profile).unwrap();
    let Reauthentication::Denied(d) = by_password(&f, &kim.id, USER_PASSWORD) else {
        panic!("an SSO-linked user's password stepped up");
    };
    assert_eq!(d.reason(), DenialReason::NoPasswordLogin);
}
