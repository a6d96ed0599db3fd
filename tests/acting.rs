//! Admin operations taken with the actor's signed-in session: refused once the session is
//! stale, even through a handle taken before, and nothing changes then.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyward::audit::{AuditAction, AuditQuery};
use keyward::user::Role;
use keyward::{Error, Password, SecurityStamp, SignIn};
use support::*;

fn admin_session(f: &Fx) -> SecurityStamp {
    let done = step!(
        f.sign_in("head", &Password::new(ADMIN_PASSWORD)),
        SignIn::Authenticated
    );
    done.stamp().clone()
}

#[test]
fn a_current_session_acts_and_a_stale_one_cannot() {
    let f = fx();
    let sam = f.user("sam");
    let stamp = admin_session(&f);
    let acting = f.kw.acting(&f.admin.id, &stamp).unwrap();
    assert_eq!(acting.actor(), &f.admin.id);
    acting.lock_user(&sam.id, "checking a report").unwrap();
    let summary = acting.user_summary(&sam.id).unwrap();
    assert_eq!(summary.user.id, sam.id);
    let locked = f.audit(&AuditQuery::default().action(AuditAction::Locked));
    assert_eq!(locked.items[0].actor.as_ref(), Some(&f.admin.id));

    // The administrator is demoted: the handle taken before refuses, and so does a new one.
    let mut profile = f.record(&f.admin.id).user;
    profile.role = Role::User;
    f.kw.store().update_profile(&profile).unwrap();
    let err = acting.unlock(&sam.id).unwrap_err();
    assert!(matches!(err, Error::StaleSession { .. }), "{err:?}");
    assert!(
        f.record(&sam.id).password_lock.locked_at.is_some(),
        "nothing changed"
    );
    let err = f.kw.acting(&f.admin.id, &stamp).unwrap_err();
    assert!(matches!(err, Error::StaleSession { .. }), "{err:?}");
    let unlocked = f.audit(&AuditQuery::default().action(AuditAction::Unlocked));
    assert!(unlocked.items.is_empty());
}

#[test]
fn a_password_reset_or_another_users_stamp_ends_the_right_to_act() {
    let f = fx();
    let kim = f.user("kim");
    let stamp = admin_session(&f);
    // Someone else's stamp for the administrator's id.
    let kims = step!(f.sign_in_as("kim"), SignIn::Authenticated);
    let err = f.kw.acting(&f.admin.id, kims.stamp()).unwrap_err();
    assert!(matches!(err, Error::StaleSession { .. }));
    // A second administrator resets the first one's password: the old session is over.
    let second = keyward::user::User::new(f.site.clone(), "deputy", "Dee", "Puty", "staff", T0)
        .with_role(Role::Administrator);
    let second =
        f.kw.create_user(
            Some(&f.admin.id),
            second,
            Some(Password::new(ADMIN_PASSWORD)),
        )
        .unwrap();
    let acting = f.kw.acting(&f.admin.id, &stamp).unwrap();
    f.kw.issue_temporary_password(
        &second.id,
        &f.admin.id,
        keyward::admin::IssueOptions::generated(),
    )
    .unwrap();
    let err = acting.reset_totp(&kim.id).unwrap_err();
    assert!(matches!(err, Error::StaleSession { .. }), "{err:?}");
}
