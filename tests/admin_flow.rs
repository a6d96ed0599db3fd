//! Admin operations through the service: permission and site checks with audit, delivery,
//! bulk regeneration with its one-time list.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use keyward::admin::{Channel, IssueOptions};
use keyward::audit::{AuditAction, AuditOutcome, AuditQuery};
use keyward::notify::{MessageKind, Recipient};
use keyward::permission::{DenyReason, PermissionDenied};
use keyward::user::{Role, SiteId, TemporaryMode, User};
use keyward::{DenialReason, Error, Password, SignIn};
use support::*;

fn denied_reason(result: Result<impl std::fmt::Debug, Error>) -> DenyReason {
    match result {
        Err(Error::PermissionDenied(PermissionDenied { reason, .. })) => reason,
        other => panic!("expected a permission denial, got {other:?}"),
    }
}

/// The refusal of an action the moderator role is not granted.
const MODERATOR_LACKS_PERMISSION: DenyReason = DenyReason::MissingPermission {
    role: Role::Moderator,
};

/// Creates the moderator `mod`.
fn moderator(f: &Fx, password: Option<Password>) -> User {
    let moderator =
        User::new(f.site.clone(), "mod", "Mo", "Derator", "staff", T0).with_role(Role::Moderator);
    f.kw.create_user(None, moderator, password).unwrap()
}

/// Creates the student `pat`, who has a verified phone and no email.
fn pat(f: &Fx, password: Option<Password>) -> User {
    let user = User::new(f.site.clone(), "pat", "Pat", "Phone", "student", T0)
        .with_phone("+44 7700 900123", true);
    f.kw.create_user(None, user, password).unwrap()
}

/// A staff profile in another site, `southfield`.
fn elsewhere(username: &str, forename: &str, surname: &str) -> User {
    let southfield = SiteId::new("southfield").unwrap();
    User::new(southfield, username, forename, surname, "staff", T0)
}

#[test]
fn refused_admin_actions_change_nothing_and_are_audited() {
    let f = fx();
    let moderator = moderator(&f, Some(Password::new(USER_PASSWORD)));
    let before = f.record(&f.admin.id);
    // A moderator cannot act on an administrator.
    let reason = denied_reason(f.kw.issue_temporary_password(
        &moderator.id,
        &f.admin.id,
        IssueOptions::generated(),
    ));
    assert_eq!(reason, DenyReason::TargetOutranksActor);
    assert_eq!(
        denied_reason(f.kw.reset_totp(&moderator.id, &f.admin.id)),
        DenyReason::TargetOutranksActor
    );
    assert_eq!(f.record(&f.admin.id), before, "nothing changed");
    // Nor regenerate a cohort (not in the default moderator permissions).
    let reason = denied_reason(f.kw.bulk_regenerate(
        &moderator.id,
        &Password::new(USER_PASSWORD),
        &f.site,
        &["Year 7".into()],
    ));
    assert_eq!(reason, MODERATOR_LACKS_PERMISSION);
    // An administrator of another site cannot act here.
    let other = elsewhere("head2", "Ed", "Other").with_role(Role::Administrator);
    let other =
        f.kw.create_user(None, other, Some(Password::new(USER_PASSWORD)))
            .unwrap();
    let sam = f.user("sam");
    assert_eq!(
        denied_reason(f.kw.unlock(&other.id, &sam.id)),
        DenyReason::OtherSite
    );
    // Each refusal is in the audit trail with its reason.
    let denials: Vec<_> = f
        .audit(&AuditQuery::default())
        .items
        .into_iter()
        .filter(|e| e.outcome == AuditOutcome::Denied)
        .map(|e| (e.action, e.reason.unwrap()))
        .collect();
    assert_eq!(
        denials,
        [
            (
                AuditAction::TemporaryPasswordSet,
                "target_outranks_actor".to_owned()
            ),
            (AuditAction::TotpReset, "target_outranks_actor".to_owned()),
            (
                AuditAction::BulkRegenerated,
                "missing_permission".to_owned()
            ),
            (AuditAction::Unlocked, "other_site".to_owned()),
        ]
    );
}

#[test]
fn temporary_password_delivered_to_a_verified_phone() {
    let f = fx();
    let pat = pat(&f, None);
    let issued = f
        .issue(&pat.id, IssueOptions::generated().deliver(Channel::Sms))
        .unwrap();
    assert!(
        issued.password.is_none(),
        "a delivered password is not shown to the admin"
    );
    assert_eq!(
        issued.receipt.unwrap().to,
        Recipient::Sms("+44 7700 900123".into())
    );
    let message = f
        .outbox
        .take_last_to(&Recipient::Sms("+44 7700 900123".into()))
        .unwrap();
    assert_eq!(message.kind, MessageKind::TemporaryPassword);
    // The message carries the secret as data; the English text has it too.
    let body = message.render_english().body;
    let password = message.secret.expose_secret().to_owned();
    assert!(body.contains(&password));
    assert!(body.starts_with("Hello Pat "), "{}", body.as_str());
    assert!(matches!(
        f.sign_in("pat", &Password::new(password)),
        SignIn::PasswordChangeRequired(_)
    ));
    // No verified email: a clear error, nothing sent.
    let err = f
        .issue(&pat.id, IssueOptions::generated().deliver(Channel::Email))
        .unwrap_err();
    assert!(matches!(err, Error::NoVerifiedContact { channel: "email" }));
    assert!(f.outbox.is_empty());
}

#[test]
fn chosen_temporary_passwords_need_the_policy_and_pass_its_checks() {
    use keyward::policy::{PolicySet, PolicyViolation, TemporaryRules};
    let f = fx();
    let sam = f.user("sam");
    let chosen = keyward::TemporaryPassword::new("welcome-to-school-2026");
    let err = f
        .issue(&sam.id, IssueOptions::generated().chosen(chosen))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Policy(PolicyViolation::ChosenNotAllowed)
    ));
    // With a policy that allows it, a common password is still refused.
    let rules = TemporaryRules {
        allow_chosen: true,
        ..TemporaryRules::DEFAULT
    };
    let kw = builder(f.store.clone())
        .policies(PolicySet::new().with_temporary_rules("student", rules))
        .build();
    let err = kw
        .issue_temporary_password(
            &f.admin.id,
            &sam.id,
            IssueOptions::generated().chosen(keyward::TemporaryPassword::new("password123456")),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Policy(PolicyViolation::CommonPassword | PolicyViolation::TooGuessable { .. })
        ),
        "{err:?}"
    );
    let ok = kw
        .issue_temporary_password(
            &f.admin.id,
            &sam.id,
            IssueOptions::generated()
                .chosen(keyward::TemporaryPassword::new("maple-orbit-canvas-71")),
        )
        .unwrap();
    assert_eq!(ok.entropy_bits, None);
}

#[test]
fn bulk_regeneration_confirms_lists_and_voids_the_previous_list() {
    let f = fx();
    let dob = time::macros::date!(2014 - 03 - 14);
    let mut ids = Vec::new();
    for (name, group) in [
        ("amy", "Year 7"),
        ("ben", "Year 7"),
        ("cat", "Year 8"),
        ("dan", "Year 9"),
    ] {
        let user = User::new(
            f.site.clone(),
            name,
            name.to_uppercase(),
            "Pupil",
            "student",
            T0,
        )
        .with_groups([group])
        .with_date_of_birth(dob);
        ids.push(f.kw.create_user(None, user, None).unwrap().id);
    }
    let groups = ["Year 7".to_owned(), "Year 8".to_owned()];
    // The administrator's own password confirms the action (their PIN is not asked for).
    let own = f.kw.change_own_pin(
        &f.admin.id,
        &Password::new(ADMIN_PASSWORD),
        Some(&keyward::Pin::new("2468")),
    );
    assert_eq!(own.unwrap(), keyward::account::OwnChange::Changed);
    let regenerate = |confirmation: &str| {
        f.kw.bulk_regenerate(&f.admin.id, &Password::new(confirmation), &f.site, &groups)
    };
    let reason = denied_reason(regenerate("not-my-password"));
    assert_eq!(reason, DenyReason::ConfirmationFailed);
    let first = regenerate(ADMIN_PASSWORD).unwrap();
    let names: Vec<_> = first
        .rows
        .iter()
        .map(|r| (r.username.as_str(), r.group.as_str()))
        .collect();
    assert_eq!(
        names,
        [("amy", "Year 7"), ("ben", "Year 7"), ("cat", "Year 8")]
    );
    let csv = first.to_csv().unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("forename,surname,username,group,password,day_of_birth,expires")
    );
    let amy = lines.next().unwrap();
    assert!(amy.starts_with("AMY,Pupil,amy,Year 7,"), "{amy}");
    // The day of birth only, never the full date.
    assert!(amy.ends_with(",14,2026-09-08T08:00:00Z"), "{amy}");
    assert!(!csv.contains("2014"), "a year of birth in the CSV");
    assert!(!format!("{first:?}").contains(first.rows[0].password.expose_secret()));
    // Every listed password signs in (single-use: a change is required).
    for row in &first.rows {
        let outcome =
            f.kw.sign_in(&f.site, &row.username, &row.password.to_password(), None)
                .unwrap();
        assert!(
            matches!(outcome, SignIn::PasswordChangeRequired(_)),
            "{}: {outcome:?}",
            row.username
        );
    }
    // Regenerating voids the previous list.
    let second = regenerate(ADMIN_PASSWORD).unwrap();
    assert_ne!(second.batch, first.batch);
    let amy_old = &first.rows[0].password;
    let d = step!(f.sign_in("amy", &amy_old.to_password()), SignIn::Denied);
    assert_eq!(d.reason(), DenialReason::WrongPassword);
    let record = f.record(&ids[0]);
    let info = record.password.unwrap().temporary.unwrap();
    assert_eq!(info.batch.as_ref(), Some(&second.batch));
    assert_eq!(info.mode, TemporaryMode::SingleUse);
    assert_eq!(info.issued_by, f.admin.id);
    // Year 9 was not selected.
    assert!(f.record(&ids[3]).password.is_none());
    let audit = f.audit(&AuditQuery::default().action(AuditAction::BulkRegenerated));
    assert_eq!(audit.items.last().unwrap().outcome, AuditOutcome::Succeeded);
}

#[test]
fn a_user_can_read_their_own_audit_trail() {
    let f = fx();
    let sam = f.user("sam");
    let _ = f.sign_in("sam", &Password::new("wrong-password-xyz"));
    let _ = f.sign_in_as("sam");
    f.issue(&sam.id, IssueOptions::generated()).unwrap();
    let page =
        f.kw.audit_trail(&sam.id, &AuditQuery::for_user(sam.id.clone()))
            .unwrap();
    // Someone else's trail needs the view permission and a site.
    let other = f.user("other");
    assert!(
        f.kw.audit_trail(&other.id, &AuditQuery::for_user(sam.id.clone()))
            .is_err()
    );
    let by_admin = AuditQuery::for_user(sam.id.clone()).site(f.site.clone());
    let seen_by_admin = f.kw.audit_trail(&f.admin.id, &by_admin).unwrap();
    // The refused look is itself on sam's trail.
    assert_eq!(seen_by_admin.total, page.total + 1);
    let refused = seen_by_admin.items.last().unwrap();
    assert_eq!(
        (refused.action, refused.outcome),
        (AuditAction::UsersViewed, AuditOutcome::Denied)
    );
    assert_eq!(refused.actor, Some(other.id.clone()));
    let seen: Vec<_> = page.items.iter().map(|e| (e.action, e.outcome)).collect();
    assert_eq!(
        seen,
        [
            (AuditAction::UserCreated, AuditOutcome::Succeeded),
            (AuditAction::SignIn, AuditOutcome::Denied),
            (AuditAction::SignIn, AuditOutcome::Succeeded),
            (AuditAction::TemporaryPasswordSet, AuditOutcome::Succeeded),
        ]
    );
    assert!(
        page.items
            .iter()
            .all(|e| e.target.as_ref() == Some(&sam.id))
    );
}

/// A notifier whose delivery always fails.
#[derive(Debug)]
struct Down;

impl keyward::notify::Notifier for Down {
    fn send(
        &self,
        message: keyward::notify::Message,
    ) -> Result<keyward::notify::DeliveryReceipt, keyward::notify::NotifyError> {
        Err(keyward::notify::NotifyError::new(
            message.to.clone(),
            "gateway down",
        ))
    }
}

#[test]
fn failed_delivery_keeps_the_old_password() {
    let f = fx();
    let pat = pat(&f, Some(Password::new(USER_PASSWORD)));
    let kw = builder(f.store.clone())
        .notifier(std::sync::Arc::new(Down))
        .build();
    let deliver = |channel| {
        kw.issue_temporary_password(
            &f.admin.id,
            &pat.id,
            IssueOptions::generated().deliver(channel),
        )
    };
    let before = f.record(&pat.id).password;
    let err = deliver(Channel::Sms).unwrap_err();
    assert!(matches!(err, Error::Notify(_)), "{err:?}");
    assert_eq!(f.record(&pat.id).password, before);
    assert!(matches!(
        kw.sign_in(&f.site, "pat", &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::Authenticated(_)
    ));
    // Refusals of the request itself are audited.
    let _ = deliver(Channel::Email).unwrap_err();
    let denied =
        f.audit(&AuditQuery::for_user(pat.id.clone()).action(AuditAction::TemporaryPasswordSet));
    assert_eq!(
        denied.items.last().unwrap().reason.as_deref(),
        Some("no_verified_email")
    );
}

#[test]
fn creating_users_needs_the_permission_in_that_site() {
    let f = fx();
    let moderator = moderator(&f, None);
    let new_admin =
        User::new(f.site.clone(), "boss", "Bo", "Ss", "staff", T0).with_role(Role::Administrator);
    let reason = denied_reason(f.kw.create_user(Some(&moderator.id), new_admin, None));
    assert_eq!(reason, MODERATOR_LACKS_PERMISSION);
    let far = elsewhere("far", "F", "Ar");
    assert_eq!(
        denied_reason(f.kw.create_user(Some(&f.admin.id), far, None)),
        DenyReason::OtherSite
    );
    assert!(f.kw.store().find_user(&f.site, "boss").unwrap().is_none());
    // Profiles are validated before anything is stored.
    let blank = User::new(f.site.clone(), "", "B", "Lank", "staff", T0);
    let err =
        f.kw.create_user(Some(&f.admin.id), blank, None)
            .unwrap_err();
    assert!(
        matches!(err, Error::InvalidUser(ref e) if e.field == "username"),
        "{err:?}"
    );
    let audit = f.audit(&AuditQuery::default().action(AuditAction::UserCreated));
    assert_eq!(
        audit
            .items
            .iter()
            .filter(|e| e.outcome == AuditOutcome::Denied)
            .count(),
        2
    );
}
