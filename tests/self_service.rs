//! Self-service: changing one's own password (the current one checked and counted on the
//! lockout, the new one against the policy) and one's own PIN (with the password).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyward::account::OwnChange;
use keyward::audit::{AuditAction, AuditOutcome, AuditQuery};
use keyward::{DenialReason, Error, Password, Pin, SignIn};
use support::*;

const NEW: &str = "violet-harbour-engine-8";

#[test]
fn a_user_changes_their_password_with_the_current_one() {
    let f = fx();
    let sam = f.user("sam");
    let session = step!(f.sign_in_as("sam"), SignIn::Authenticated);
    let changed =
        f.kw.change_password(&sam.id, &Password::new(USER_PASSWORD), Password::new(NEW))
            .unwrap();
    assert_eq!(changed, OwnChange::Changed);
    step!(f.sign_in("sam", &Password::new(NEW)), SignIn::Authenticated);
    let old = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert_eq!(old.reason(), DenialReason::WrongPassword);
    assert!(
        !f.kw
            .check_session(&sam.id, session.stamp())
            .unwrap()
            .is_current()
    );
    let events = f.audit(&AuditQuery::default().action(AuditAction::PasswordChanged));
    assert_eq!(events.items.len(), 1);
    assert_eq!(events.items[0].outcome, AuditOutcome::Succeeded);
}

#[test]
fn a_wrong_current_password_is_counted_and_a_weak_new_one_refused() {
    let f = fx();
    let sam = f.user("sam");
    let wrong = Password::new("not-my-password");
    for _ in 0..5 {
        let out =
            f.kw.change_password(&sam.id, &wrong, Password::new(NEW))
                .unwrap();
        assert_eq!(out, OwnChange::Denied);
    }
    // Locked now, like after five wrong sign-ins: the right one is refused too.
    assert!(f.record(&sam.id).password_lock.locked_at.is_some());
    let out =
        f.kw.change_password(&sam.id, &Password::new(USER_PASSWORD), Password::new(NEW))
            .unwrap();
    assert_eq!(out, OwnChange::Denied);
    let denied = f.audit(&AuditQuery::default().action(AuditAction::PasswordChanged));
    assert_eq!(denied.items.len(), 6);

    let kim = f.user("kim");
    let before = f.record(&kim.id).password;
    let weak =
        f.kw.change_password(
            &kim.id,
            &Password::new(USER_PASSWORD),
            Password::new("short"),
        )
        .unwrap();
    assert!(matches!(weak, OwnChange::Rejected(_)), "{weak:?}");
    assert_eq!(f.record(&kim.id).password, before, "nothing changed");
}

#[test]
fn a_temporary_password_is_not_changed_this_way() {
    let f = fx();
    let sam = f.user("sam");
    let temporary = f.temporary_for(&sam.id);
    let out =
        f.kw.change_password(
            &sam.id,
            &Password::new(temporary.expose_secret()),
            Password::new(NEW),
        )
        .unwrap();
    assert_eq!(out, OwnChange::Denied);
}

#[test]
fn a_user_sets_their_pin_with_their_password() {
    let f = fx();
    let sam = f.user("sam");
    let wrong =
        f.kw.change_own_pin(
            &sam.id,
            &Password::new("nope-nope-nope"),
            Some(&Pin::new("4711")),
        )
        .unwrap();
    assert_eq!(wrong, OwnChange::Denied);
    assert!(f.record(&sam.id).pin.is_none());
    let set =
        f.kw.change_own_pin(
            &sam.id,
            &Password::new(USER_PASSWORD),
            Some(&Pin::new("4711")),
        )
        .unwrap();
    assert_eq!(set, OwnChange::Changed);
    step!(
        f.sign_in_with_pin("sam", &Password::new(USER_PASSWORD), "4711"),
        SignIn::Authenticated
    );
    // Where PINs are off, setting one is refused.
    let off = fx_with(std::sync::Arc::new(keyward::InMemoryStore::new()), |b| {
        b.pins(keyward::service::Pins::Off)
    });
    let kim = off.user("kim");
    let err = off
        .kw
        .change_own_pin(
            &kim.id,
            &Password::new(USER_PASSWORD),
            Some(&Pin::new("4711")),
        )
        .unwrap_err();
    assert!(matches!(err, Error::PinsDisabled));
}
