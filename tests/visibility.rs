//! Admin screens show only whom the actor may act on: a moderator's search and audit trail
//! leave out administrators, and nobody sees a peer who manages a site they do not — in the
//! page and in the total alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyward::audit::{AuditAction, AuditOutcome, AuditQuery};
use keyward::permission::{DenyReason, PermissionDenied};
use keyward::store::{MAX_PAGE, UserQuery};
use keyward::user::{Role, SiteId, User, UserId};
use keyward::{Error, Password};
use support::*;

struct Staff {
    moderator: UserId,
    deputy: UserId,
    wide: UserId,
    pupils: Vec<UserId>,
}

fn staff(f: &Fx) -> Staff {
    let create = |username: &str, role: Role, sites: Vec<SiteId>| {
        let user = User::new(f.site.clone(), username, "Staff", username, "staff", T0)
            .with_role(role)
            .with_managed_sites(sites)
            .with_email(format!("{username}@example.org"), true);
        let password = Some(Password::new(USER_PASSWORD));
        f.kw.create_user(None, user, password).unwrap().id
    };
    let other = SiteId::new("southfield").unwrap();
    Staff {
        moderator: create("mod", Role::Moderator, Vec::new()),
        deputy: create("deputy", Role::Administrator, Vec::new()),
        wide: create("wide", Role::Moderator, vec![other]),
        pupils: (0..3).map(|i| f.user(&format!("pupil{i}")).id).collect(),
    }
}

fn found(f: &Fx, actor: &UserId, query: &UserQuery) -> (Vec<UserId>, u64) {
    let page = f.kw.search_users(actor, query).unwrap();
    (
        page.items.into_iter().map(|s| s.user.id).collect(),
        page.total,
    )
}

#[test]
fn searches_leave_out_whom_the_actor_may_not_see_in_page_and_total() {
    let f = fx();
    let s = staff(&f);
    let all = UserQuery::new(f.site.clone(), T0).page(0, MAX_PAGE);
    let (ids, total) = found(&f, &s.moderator, &all);
    assert_eq!(total, ids.len() as u64);
    for hidden in [&f.admin.id, &s.deputy, &s.wide] {
        assert!(!ids.contains(hidden), "a moderator saw {hidden}");
    }
    for shown in s.pupils.iter().chain([&s.moderator]) {
        assert!(ids.contains(shown), "a moderator missed {shown}");
    }
    assert_eq!(total, 4, "three pupils and the moderator");
    // Paging counts the same users: two pages of two.
    let first = found(&f, &s.moderator, &all.clone().page(0, 2));
    let second = found(&f, &s.moderator, &all.clone().page(2, 2));
    assert_eq!((first.1, second.1), (4, 4));
    assert_eq!(first.0.len() + second.0.len(), 4);
    // An administrator sees every administrator and moderator of the site, but not a peer
    // managing a site the administrator does not.
    let (ids, total) = found(&f, &f.admin.id, &all);
    assert!(ids.contains(&s.deputy) && ids.contains(&s.moderator));
    assert!(!ids.contains(&s.wide));
    assert_eq!(total, 6);
}

#[test]
fn audit_trails_leave_out_events_of_whom_the_actor_may_not_see() {
    let f = fx();
    let s = staff(&f);
    // The deputy administrator acts on a pupil and is acted on.
    let _ =
        f.kw.issue_temporary_password(&s.deputy, &s.pupils[0], Default::default())
            .unwrap();
    f.kw.unlock(&f.admin.id, &s.deputy).unwrap();
    let site_trail = AuditQuery::default().site(f.site.clone()).page(0, MAX_PAGE);
    let seen = f.kw.audit_trail(&s.moderator, &site_trail).unwrap();
    assert_eq!(seen.total, seen.items.len() as u64);
    let admins = [&f.admin.id, &s.deputy, &s.wide];
    for e in &seen.items {
        for who in e.actor.iter().chain(&e.target) {
            assert!(!admins.contains(&who), "a moderator saw {e:?}");
        }
    }
    let by_admin = f.kw.audit_trail(&f.admin.id, &site_trail).unwrap();
    assert!(by_admin.total > seen.total, "the administrator sees more");
    assert!(
        by_admin
            .items
            .iter()
            .any(|e| e.target.as_ref() == Some(&s.deputy))
    );
    // The deputy's own trail is refused to the moderator, and the refusal is audited.
    let deputy_trail = AuditQuery::for_user(s.deputy.clone()).site(f.site.clone());
    match f.kw.audit_trail(&s.moderator, &deputy_trail) {
        Err(Error::PermissionDenied(PermissionDenied { reason, .. })) => {
            assert_eq!(reason, DenyReason::TargetOutranksActor)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let refusals =
        f.kw.audit_trail(&f.admin.id, &site_trail.action(AuditAction::UsersViewed))
            .unwrap();
    assert!(refusals.items.iter().any(|e| {
        e.outcome == AuditOutcome::Denied
            && e.actor.as_ref() == Some(&s.moderator)
            && e.target.as_ref() == Some(&s.deputy)
    }));
}
