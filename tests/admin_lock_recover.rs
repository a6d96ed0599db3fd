//! Locking by hand, a temporary password's expiry set by the administrator, and break-glass
//! recovery of a locked-out administrator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyward::admin::IssueOptions;
use keyward::audit::{AuditAction, AuditQuery};
use keyward::policy::PolicyViolation;
use keyward::signin::DenialReason;
use keyward::user::{Role, TemporaryMode, User};
use keyward::{Error, Password, SignIn};
use support::{ADMIN_PASSWORD, T0, USER_PASSWORD, fx, site};
use time::Duration;

fn moderator(fx: &support::Fx) -> User {
    let m = User::new(site(), "mod", "Mo", "Derator", "staff", T0).with_role(Role::Moderator);
    let password = Some(Password::new("cobalt-heron-lamp-71"));
    fx.kw.create_user(Some(&fx.admin.id), m, password).unwrap()
}

#[test]
fn a_hand_lock_refuses_sign_in_until_unlocked_and_records_its_reason() {
    let fx = fx();
    let pupil = fx.user("pupil");
    fx.kw
        .lock_user(&fx.admin.id, &pupil.id, " lost badge reported ")
        .unwrap();
    let denied = step!(fx.sign_in_as("pupil"), SignIn::Denied);
    assert_eq!(denied.reason(), DenialReason::Locked { until: None });
    let events = fx
        .audit(&AuditQuery::for_user(pupil.id.clone()).action(AuditAction::Locked))
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason.as_deref(), Some("lost badge reported"));
    assert_eq!(events[0].actor.as_ref(), Some(&fx.admin.id));
    fx.kw.unlock(&fx.admin.id, &pupil.id).unwrap();
    let _ = step!(fx.sign_in_as("pupil"), SignIn::Authenticated);
}

#[test]
fn a_moderator_may_not_lock_an_administrator() {
    let fx = fx();
    let m = moderator(&fx);
    let err = fx.kw.lock_user(&m.id, &fx.admin.id, "nope").unwrap_err();
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
    let _ = step!(
        fx.sign_in("head", &Password::new(ADMIN_PASSWORD)),
        SignIn::Authenticated
    );
    let pupil = fx.user("pupil");
    fx.kw
        .lock_user(&m.id, &pupil.id, "moderator may lock a user")
        .unwrap();
}

#[test]
fn an_expiry_set_by_the_administrator_replaces_the_policy_lifetime() {
    let fx = fx();
    let pupil = fx.user("pupil");
    let at = T0 + Duration::days(30);
    let options = IssueOptions::generated()
        .mode(TemporaryMode::AdminManaged)
        .expires_at(at);
    let issued = fx.issue(&pupil.id, options).unwrap();
    assert_eq!(issued.expires_at, at);
    let password = issued.password.unwrap();
    fx.clock.advance(Duration::days(29));
    let _ = step!(
        fx.sign_in("pupil", &password.to_password()),
        SignIn::Authenticated
    );
    fx.clock.advance(Duration::days(1));
    let denied = step!(fx.sign_in("pupil", &password.to_password()), SignIn::Denied);
    assert_eq!(denied.reason(), DenialReason::TemporaryPasswordExpired);
    // An expiry in the past is refused, audited, and changes nothing.
    let past = IssueOptions::generated().expires_at(fx.kw.now());
    let err = fx.issue(&pupil.id, past).unwrap_err();
    assert!(
        matches!(err, Error::Policy(PolicyViolation::ExpiryInThePast)),
        "{err:?}"
    );
}

#[test]
fn break_glass_recovers_a_locked_out_administrator_with_a_single_use_password() {
    let fx = fx();
    let pupil = fx.user("pupil");
    fx.kw
        .lock_user(&fx.admin.id, &fx.admin.id, "locked themself out")
        .unwrap();
    let denied = step!(
        fx.sign_in("head", &Password::new(ADMIN_PASSWORD)),
        SignIn::Denied
    );
    assert!(matches!(denied.reason(), DenialReason::Locked { .. }));
    let temporary = fx
        .kw
        .recover_administrator(&fx.site, "HEAD", false)
        .unwrap();
    // The old password no longer works; the printed one does, once, and forces a change.
    let denied = step!(
        fx.sign_in("head", &Password::new(ADMIN_PASSWORD)),
        SignIn::Denied
    );
    assert_eq!(denied.reason(), DenialReason::WrongPassword);
    let change = step!(
        fx.sign_in("head", &temporary.to_password()),
        SignIn::PasswordChangeRequired
    );
    let done = fx
        .kw
        .complete_password_change(change, Password::new("saffron-kettle-mosaic-24"))
        .unwrap();
    let next = step!(done, keyward::signin::PasswordChange::Changed);
    let _ = step!(next, SignIn::Authenticated);
    let events = fx
        .audit(
            &AuditQuery::for_user(fx.admin.id.clone()).action(AuditAction::AdministratorRecovered),
        )
        .items;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor, None);
    assert_eq!(events[0].reason.as_deref(), Some("direct database access"));
    // Only administrators, and only existing ones.
    let err = fx
        .kw
        .recover_administrator(&fx.site, "pupil", false)
        .unwrap_err();
    assert!(
        matches!(err, Error::NotAnAdministrator { ref user } if *user == pupil.id),
        "{err:?}"
    );
    let err = fx
        .kw
        .recover_administrator(&fx.site, "nobody", false)
        .unwrap_err();
    assert!(matches!(err, Error::UsernameNotFound { .. }), "{err:?}");
    let _ = step!(fx.sign_in_as("pupil"), SignIn::Authenticated);
    let _ = USER_PASSWORD;
}

/// A hand lock holds against every self-service path: a reset link sent before the lock is
/// withdrawn, and one asked for afterwards is not sent (the request answers as for anyone).
#[test]
fn a_password_reset_does_not_lift_a_hand_lock() {
    let fx = fx();
    let pupil = fx.user("pupil");
    fx.kw.request_password_reset(&fx.site, "pupil").unwrap();
    let early = fx.reset_token_to("pupil@example.org");
    fx.kw
        .lock_user(&fx.admin.id, &pupil.id, "investigation")
        .unwrap();
    let new = || Password::new("glacier-lantern-orbit-61");
    let done = fx
        .kw
        .reset_password(&keyward::OneTimeCode::new(early), new())
        .unwrap();
    assert!(
        matches!(done, keyward::recovery::PasswordReset::InvalidToken),
        "{done:?}"
    );
    fx.kw.request_password_reset(&fx.site, "pupil").unwrap();
    assert!(
        fx.outbox
            .take_last_to(&keyward::notify::Recipient::Email(
                "pupil@example.org".into()
            ))
            .is_none(),
        "no link is sent to a hand-locked account"
    );
    let denied = step!(fx.sign_in_as("pupil"), SignIn::Denied);
    assert_eq!(denied.reason(), DenialReason::Locked { until: None });
    let refusals = fx
        .audit(&AuditQuery::for_user(pupil.id.clone()).action(AuditAction::PasswordResetSent))
        .items;
    assert!(
        refusals
            .iter()
            .any(|e| e.reason.as_deref() == Some("locked_by_administrator"))
    );
    // A lock of failures is still lifted by a reset (that is what resets are for).
    fx.kw.unlock(&fx.admin.id, &pupil.id).unwrap();
    for _ in 0..5 {
        let _ = fx.sign_in("pupil", &Password::new("wrong"));
    }
    fx.kw.request_password_reset(&fx.site, "pupil").unwrap();
    let token = fx.reset_token_to("pupil@example.org");
    let done = fx
        .kw
        .reset_password(&keyward::OneTimeCode::new(token), new())
        .unwrap();
    assert!(
        matches!(done, keyward::recovery::PasswordReset::Done { .. }),
        "{done:?}"
    );
    let _ = step!(fx.sign_in("pupil", &new()), SignIn::Authenticated);
}

#[test]
fn a_lock_reason_is_checked_and_an_expiry_is_bounded() {
    let fx = fx();
    let pupil = fx.user("pupil");
    for bad in ["", "   ", "line\nbreak", &"x".repeat(501)] {
        let err = fx.kw.lock_user(&fx.admin.id, &pupil.id, bad).unwrap_err();
        assert!(matches!(err, Error::InvalidUser(_)), "{bad:?}: {err:?}");
    }
    let _ = step!(fx.sign_in_as("pupil"), SignIn::Authenticated);
    let far = IssueOptions::generated().expires_at(T0 + Duration::days(367));
    let err = fx.issue(&pupil.id, far).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Policy(PolicyViolation::ExpiryTooFar { max_days: 366 })
        ),
        "{err:?}"
    );
    let refused = fx
        .audit(&AuditQuery::for_user(pupil.id.clone()).action(AuditAction::TemporaryPasswordSet))
        .items;
    assert_eq!(refused.len(), 1, "the refusal is audited");
    assert_eq!(refused[0].reason.as_deref(), Some("expiry_too_far"));
    assert!(
        fx.record(&pupil.id).password.unwrap().temporary.is_none(),
        "nothing changed"
    );
}

#[test]
fn break_glass_can_reset_a_lost_authenticator_and_audits_refusals() {
    let fx = fx();
    let _ = fx
        .kw
        .recover_administrator(&fx.site, "nobody", false)
        .unwrap_err();
    let refused = fx
        .audit(&AuditQuery::default().action(AuditAction::AdministratorRecovered))
        .items;
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].reason.as_deref(), Some("unknown_user"));
    support::enroll(&fx.kw, &fx.admin.id);
    let mut profile = fx.record(&fx.admin.id).user;
    profile.email = Some("head@example.org".into());
    profile.email_verified = true;
    fx.kw.store().update_profile(&profile).unwrap();
    let temporary = fx.kw.recover_administrator(&fx.site, "head", true).unwrap();
    assert!(fx.record(&fx.admin.id).totp.reset_pending);
    // The emailed device code comes first (the authenticator was reset), as after an
    // administrator's reset.
    let _ = step!(
        fx.sign_in("head", &temporary.to_password()),
        SignIn::DeviceAuthorizationRequired
    );
}

/// With PINs off, setting one is refused and a sign-in verifies the password alone.
#[test]
fn pins_off_refuses_pins() {
    let fx = support::fx_with(std::sync::Arc::new(keyward::InMemoryStore::new()), |b| {
        b.pins(keyward::service::Pins::Off)
    });
    let pupil = fx.user("pupil");
    let err = fx
        .kw
        .set_pin(&fx.admin.id, &pupil.id, Some(&keyward::Pin::new("4321")))
        .unwrap_err();
    assert!(matches!(err, Error::PinsDisabled), "{err:?}");
    fx.kw.set_pin(&fx.admin.id, &pupil.id, None).unwrap();
    assert!(fx.record(&pupil.id).pin.is_none());
    let _ = step!(fx.sign_in_as("pupil"), SignIn::Authenticated);
    let _ = step!(
        fx.sign_in_with_pin("pupil", &Password::new(USER_PASSWORD), "1"),
        SignIn::Authenticated
    );
    // A PIN set while PINs were on is still asked for: turning them off weakens nobody.
    let on = support::builder(fx.store.clone()).build();
    on.set_pin(&fx.admin.id, &pupil.id, Some(&keyward::Pin::new("4321")))
        .unwrap();
    let denied = step!(fx.sign_in_as("pupil"), SignIn::Denied);
    assert_eq!(denied.reason(), DenialReason::WrongPin);
    let _ = step!(
        fx.sign_in_with_pin("pupil", &Password::new(USER_PASSWORD), "4321"),
        SignIn::Authenticated
    );
}

/// Audit retention: export, then prune exactly what was exported; a failed export deletes
/// nothing; moderators may not.
#[test]
fn audit_archive_exports_then_prunes() {
    let fx = fx();
    let pupil = fx.user("pupil");
    fx.kw
        .lock_user(&fx.admin.id, &pupil.id, "old business")
        .unwrap();
    fx.clock.advance(Duration::days(400));
    fx.kw.unlock(&fx.admin.id, &pupil.id).unwrap();
    let cutoff = fx.kw.now() - Duration::days(1);
    let site = fx.site.clone();
    let all = |fx: &support::Fx| {
        fx.audit(&AuditQuery::default().site(site.clone()).page(0, 1000))
            .items
    };
    let before = all(&fx);
    let old = before.iter().filter(|e| e.at < cutoff).count() as u64;
    assert!(old >= 3, "creations and the lock are old");
    // A writer that fails: nothing is deleted.
    struct Full;
    impl std::io::Write for Full {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let err = fx
        .kw
        .archive_audit(&fx.admin.id, &site, cutoff, &mut Full)
        .unwrap_err();
    assert!(matches!(err, Error::Output { .. }), "{err:?}");
    assert_eq!(all(&fx).len(), before.len());
    let mut out = Vec::new();
    let done = fx
        .kw
        .archive_audit(&fx.admin.id, &site, cutoff, &mut out)
        .unwrap();
    assert_eq!((done.exported, done.pruned), (old, old));
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, old);
    assert!(
        lines
            .iter()
            .any(|l| l["action"] == "locked" && l["reason"] == "old business")
    );
    let after = all(&fx);
    assert!(after.iter().all(|e| e.at >= cutoff));
    assert!(after.iter().any(|e| e.action == AuditAction::AuditPruned));
    assert!(
        after.iter().any(|e| e.action == AuditAction::Unlocked),
        "recent events stay"
    );
    // Not in the future, not by a moderator.
    let future = fx.kw.now() + Duration::days(1);
    assert!(
        fx.kw
            .archive_audit(&fx.admin.id, &site, future, &mut Vec::new())
            .is_err()
    );
    let m = moderator(&fx);
    let err = fx
        .kw
        .archive_audit(&m.id, &site, cutoff, &mut Vec::new())
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
}
