//! The user lifecycle through `Keyward`: profile changes, contact details and their
//! verification by code, disabling and enabling, role and managed sites, the PIN, deletion.
//! Each is permission-checked (site scope, rank), audited with its change, and refused or
//! retried cleanly when the user changed meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use keyward::account::{ContactCodeSending, ContactConfirmation};
use keyward::admin::{Channel, ProfileChange};
use keyward::audit::{AuditAction, AuditOutcome, AuditQuery};
use keyward::notify::Recipient;
use keyward::permission::{DenyReason, PermissionDenied};
use keyward::store::{OneTimeKind, StoreError};
use keyward::user::{Role, SiteId, User, UserStatus};
use keyward::{
    DenialReason, Error, InMemoryStore, OneTimeCode, Password, Pin, SessionCheck, SignIn, UserStore,
};
use support::spy::Spy;
use support::{ADMIN_PASSWORD, Fx, T0, USER_PASSWORD, fx, fx_with};
use time::Duration;

fn denied_because(result: Result<impl std::fmt::Debug, Error>, reason: DenyReason) {
    match result {
        Err(Error::PermissionDenied(PermissionDenied { reason: r, .. })) => assert_eq!(r, reason),
        other => panic!("expected a refusal ({reason:?}), got {other:?}"),
    }
}

fn moderator(f: &Fx) -> User {
    let user =
        User::new(f.site.clone(), "mod", "Mo", "Derator", "staff", T0).with_role(Role::Moderator);
    f.kw.create_user(Some(&f.admin.id), user, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap()
}

/// Runs `check` on memory, SQLite and PostgreSQL.
fn on_every_backend(check: fn(Fx)) {
    check(fx());
    #[cfg(feature = "sqlite")]
    {
        let dir = tempfile::tempdir().unwrap();
        let store = keyward::SqliteStore::open(dir.path().join("k.db")).unwrap();
        check(fx_with(Arc::new(store), |b| b));
    }
    #[cfg(feature = "postgres")]
    if let Some(schema) = support::pg::TestSchema::new() {
        check(fx_with(Arc::new(schema.open()), |b| b));
    }
}

#[test]
fn a_profile_change_is_written_and_audited_by_field_name() {
    on_every_backend(profile_change);
}

fn profile_change(f: Fx) {
    let sam = f.user("sam");
    let change = ProfileChange::new()
        .username("samuel")
        .surname("Okafor")
        .groups(["Year 8", "Choir"])
        .date_of_birth(Some(time::macros::date!(2013 - 05 - 17)));
    let after = f.kw.update_user(&f.admin.id, &sam.id, &change).unwrap();
    assert_eq!(after.username, "samuel");
    assert_eq!(after.groups, vec!["Year 8", "Choir"]);
    assert_eq!(f.record(&sam.id).user, after);
    // The new username signs in; the old one is unknown.
    let _ = step!(f.sign_in_as("samuel"), SignIn::Authenticated);
    let old = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert_eq!(old.reason(), DenialReason::UnknownUser);
    let updated = f.events_of(&sam.id, AuditAction::UserUpdated);
    assert_eq!(updated.len(), 1);
    assert_eq!(updated[0].actor.as_ref(), Some(&f.admin.id));
    assert_eq!(
        updated[0].details.as_deref(),
        Some("changed: username, surname, date_of_birth, groups")
    );
    assert!(!updated[0].details.as_deref().unwrap().contains("Okafor"));
    // A change that changes nothing records nothing.
    let same = f.kw.update_user(&f.admin.id, &sam.id, &change).unwrap();
    assert_eq!(same, f.record(&sam.id).user);
    assert_eq!(f.events_of(&sam.id, AuditAction::UserUpdated).len(), 1);
}

#[test]
fn a_bad_or_taken_username_changes_nothing() {
    let f = fx();
    let sam = f.user("sam");
    let _kim = f.user("kim");
    let before = f.record(&sam.id);
    let taken =
        f.kw.update_user(&f.admin.id, &sam.id, &ProfileChange::new().username("KIM"));
    assert!(
        matches!(taken, Err(Error::Store(StoreError::Conflict { .. }))),
        "{taken:?}"
    );
    let confusable = ProfileChange::new().username("k\u{456}m");
    let confusable = f.kw.update_user(&f.admin.id, &sam.id, &confusable);
    assert!(
        matches!(confusable, Err(Error::Store(StoreError::Conflict { .. }))),
        "{confusable:?}"
    );
    for bad in ["", " sam", "s\u{200B}am", "s\u{202E}am", &"x".repeat(300)] {
        let result =
            f.kw.update_user(&f.admin.id, &sam.id, &ProfileChange::new().username(bad));
        assert!(
            matches!(result, Err(Error::InvalidUser(_))),
            "{bad:?}: {result:?}"
        );
    }
    assert_eq!(f.record(&sam.id), before);
    assert!(f.events_of(&sam.id, AuditAction::UserUpdated).is_empty());
}

#[test]
fn moderators_and_other_sites_may_not_manage_users() {
    let f = fx();
    let sam = f.user("sam");
    let moderator = moderator(&f);
    let change = ProfileChange::new().surname("X");
    let missing = DenyReason::MissingPermission {
        role: Role::Moderator,
    };
    denied_because(f.kw.update_user(&moderator.id, &sam.id, &change), missing);
    denied_because(f.kw.disable_user(&moderator.id, &sam.id, "no"), missing);
    denied_because(f.kw.delete_user(&moderator.id, &sam.id), missing);
    denied_because(
        f.kw.set_role(&moderator.id, &sam.id, Role::Moderator, &[]),
        missing,
    );
    denied_because(
        f.kw.set_contact(
            &moderator.id,
            &sam.id,
            Channel::Email,
            Some("x@example.org"),
        ),
        missing,
    );
    denied_because(
        f.kw.set_pin(&moderator.id, &sam.id, Some(&Pin::new("1234"))),
        missing,
    );
    // An administrator of another site.
    let elsewhere = SiteId::new("southfield").unwrap();
    let other =
        User::new(elsewhere, "south", "So", "Uth", "staff", T0).with_role(Role::Administrator);
    let other =
        f.kw.create_user(None, other, Some(Password::new(ADMIN_PASSWORD)))
            .unwrap();
    denied_because(
        f.kw.update_user(&other.id, &sam.id, &change),
        DenyReason::OtherSite,
    );
    denied_because(f.kw.delete_user(&other.id, &sam.id), DenyReason::OtherSite);
    // Every refusal is in the trail, and nothing changed.
    let refused = f
        .audit(&AuditQuery::for_user(sam.id.clone()).page(0, 100))
        .items
        .into_iter()
        .filter(|e| e.outcome == AuditOutcome::Denied)
        .count();
    assert_eq!(refused, 8);
    assert_eq!(f.record(&sam.id).user, sam);
}

#[test]
fn disabling_ends_sign_ins_sessions_and_codes_in_flight() {
    on_every_backend(disabling);
}

fn disabling(f: Fx) {
    let sam = f.user("sam");
    let session = step!(f.sign_in_as("sam"), SignIn::Authenticated);
    // A reset link in flight.
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    assert!(f.record(&sam.id).reset_token.is_some());
    f.kw.disable_user(&f.admin.id, &sam.id, "left the school")
        .unwrap();
    let record = f.record(&sam.id);
    assert_eq!(record.user.status, UserStatus::Disabled);
    assert!(record.reset_token.is_none(), "the link is withdrawn");
    let d = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert_eq!(d.reason(), DenialReason::Disabled);
    assert!(matches!(
        f.kw.check_session(&sam.id, session.stamp()).unwrap(),
        SessionCheck::Stale
    ));
    let disabled = f.events_of(&sam.id, AuditAction::UserDisabled);
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0].reason.as_deref(), Some("left the school"));
    // Twice changes nothing; enabling brings sign-in back, not the old session.
    f.kw.disable_user(&f.admin.id, &sam.id, "again").unwrap();
    assert_eq!(f.events_of(&sam.id, AuditAction::UserDisabled).len(), 1);
    f.kw.enable_user(&f.admin.id, &sam.id).unwrap();
    let fresh = step!(f.sign_in_as("sam"), SignIn::Authenticated);
    assert!(matches!(
        f.kw.check_session(&sam.id, fresh.stamp()).unwrap(),
        SessionCheck::Current(_)
    ));
    assert!(
        matches!(
            f.kw.check_session(&sam.id, session.stamp()).unwrap(),
            SessionCheck::Stale
        ),
        "a session from before the account was disabled stays stale"
    );
    assert_eq!(f.events_of(&sam.id, AuditAction::UserEnabled).len(), 1);
    // A reason must be given.
    assert!(matches!(
        f.kw.disable_user(&f.admin.id, &sam.id, "  "),
        Err(Error::InvalidUser(_))
    ));
}

#[test]
fn nobody_disables_deletes_or_reranks_their_own_account() {
    let f = fx();
    denied_because(
        f.kw.disable_user(&f.admin.id, &f.admin.id, "oops"),
        DenyReason::OwnAccount,
    );
    denied_because(
        f.kw.delete_user(&f.admin.id, &f.admin.id),
        DenyReason::OwnAccount,
    );
    denied_because(
        f.kw.set_role(&f.admin.id, &f.admin.id, Role::User, &[]),
        DenyReason::OwnAccount,
    );
    // Nor their own contact details or PIN by the administrator's path, which would skip the
    // step-up and the password the self-service paths ask for.
    denied_because(
        f.kw.set_contact(
            &f.admin.id,
            &f.admin.id,
            Channel::Email,
            Some("x@evil.example"),
        ),
        DenyReason::OwnAccount,
    );
    denied_because(
        f.kw.set_pin(&f.admin.id, &f.admin.id, None),
        DenyReason::OwnAccount,
    );
    assert_eq!(f.record(&f.admin.id).user, f.admin);
    let refused = f
        .audit(&AuditQuery::for_user(f.admin.id.clone()).page(0, 100))
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("own_account"))
        .count();
    assert_eq!(refused, 5);
}

#[test]
fn roles_change_within_the_actors_reach_and_end_sessions() {
    let f = fx();
    let sam = f.user("sam");
    let session = step!(f.sign_in_as("sam"), SignIn::Authenticated);
    let after =
        f.kw.set_role(&f.admin.id, &sam.id, Role::Moderator, &[])
            .unwrap();
    assert_eq!(after.role, Role::Moderator);
    assert!(matches!(
        f.kw.check_session(&sam.id, session.stamp()).unwrap(),
        SessionCheck::Stale
    ));
    let changed = f.events_of(&sam.id, AuditAction::RoleChanged);
    assert_eq!(
        changed[0].details.as_deref(),
        Some("from=user []; to=moderator []")
    );
    // Nobody hands out a site they do not manage.
    let elsewhere = SiteId::new("southfield").unwrap();
    denied_because(
        f.kw.set_role(
            &f.admin.id,
            &sam.id,
            Role::Moderator,
            std::slice::from_ref(&elsewhere),
        ),
        DenyReason::TargetOutranksActor,
    );
    assert!(f.record(&sam.id).user.managed_sites.is_empty());
    // At most 100 further sites.
    let many: Vec<SiteId> = (0..101)
        .map(|i| SiteId::new(&format!("s{i}")).unwrap())
        .collect();
    assert!(matches!(
        f.kw.set_role(&f.admin.id, &sam.id, Role::Moderator, &many),
        Err(Error::InvalidUser(_))
    ));
    // A plain user manages no further site.
    assert!(matches!(
        f.kw.set_role(&f.admin.id, &sam.id, Role::User, &[elsewhere]),
        Err(Error::InvalidUser(_))
    ));
    // The moderator sam now is cannot make an administrator (or do anything of the kind).
    let kim = f.user("kim");
    denied_because(
        f.kw.set_role(&sam.id, &kim.id, Role::Administrator, &[]),
        DenyReason::MissingPermission {
            role: Role::Moderator,
        },
    );
    let back =
        f.kw.set_role(&f.admin.id, &sam.id, Role::User, &[])
            .unwrap();
    assert_eq!(back.role, Role::User);
}

#[test]
fn an_administrators_pin_change_is_audited_as_theirs() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.set_pin(&f.admin.id, &sam.id, Some(&Pin::new("4711")))
        .unwrap();
    let set = f.events_of(&sam.id, AuditAction::PinSet);
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].actor.as_ref(), Some(&f.admin.id));
    assert_eq!(set[0].target.as_ref(), Some(&sam.id));
    let _ = step!(
        f.sign_in_with_pin("sam", &Password::new(USER_PASSWORD), "4711"),
        SignIn::Authenticated
    );
}

#[test]
fn a_deleted_user_is_gone_but_their_trail_stays_readable() {
    on_every_backend(deletion);
}

fn deletion(f: Fx) {
    let sam = f.user("sam");
    let _ = step!(f.sign_in_as("sam"), SignIn::Authenticated);
    f.kw.delete_user(&f.admin.id, &sam.id).unwrap();
    assert!(f.kw.store().get_user(&sam.id).unwrap().is_none());
    let d = step!(f.sign_in_as("sam"), SignIn::Denied);
    assert_eq!(d.reason(), DenialReason::UnknownUser);
    // The trail, through the permission-checked face.
    let trail =
        f.kw.audit_trail(
            &f.admin.id,
            &AuditQuery::for_user(sam.id.clone())
                .site(f.site.clone())
                .page(0, 100),
        )
        .unwrap();
    let actions: Vec<AuditAction> = trail.items.iter().map(|e| e.action).collect();
    assert!(actions.contains(&AuditAction::UserCreated));
    assert!(actions.contains(&AuditAction::SignIn));
    let deleted = trail.items.last().unwrap();
    assert_eq!(deleted.action, AuditAction::UserDeleted);
    assert_eq!(deleted.actor.as_ref(), Some(&f.admin.id));
    assert_eq!(
        deleted.details.as_deref(),
        Some(r#"username="sam"; name="Sam sam"; role=user"#)
    );
    // The username is free again, for a new account with a new id.
    let again = f.user("sam");
    assert_ne!(again.id, sam.id);
    assert!(matches!(
        f.kw.delete_user(&f.admin.id, &sam.id),
        Err(Error::UserNotFound { .. })
    ));
}

#[test]
fn an_email_is_verified_by_the_code_sent_to_it() {
    on_every_backend(email_verification);
}

fn email_verification(f: Fx) {
    let sam = f.user("sam");
    let after =
        f.kw.set_contact(
            &f.admin.id,
            &sam.id,
            Channel::Email,
            Some("sam@new.example"),
        )
        .unwrap();
    assert_eq!(after.email.as_deref(), Some("sam@new.example"));
    assert!(!after.email_verified, "a new address is unverified");
    let changed = f.events_of(&sam.id, AuditAction::ContactChanged);
    assert_eq!(changed[0].details.as_deref(), Some("channel=email"));
    let sent = f.kw.send_contact_code(&sam.id, Channel::Email).unwrap();
    assert!(matches!(sent, ContactCodeSending::Sent { .. }));
    let message = f
        .outbox
        .take_last_to(&Recipient::Email("sam@new.example".into()))
        .unwrap();
    assert_eq!(message.kind.key(), "message.contact_verification");
    let code = message.secret.expose_secret().to_owned();
    assert!(message.render_english().body.contains(&code));
    assert!(!format!("{message:?}").contains(&code));
    // The code is stored hashed.
    let stored = f.record(&sam.id).contact_code.unwrap();
    assert!(!stored.hash.as_str().contains(&code));
    // A wrong code first, then the right one.
    let wrong =
        f.kw.confirm_contact(&sam.id, Channel::Email, &OneTimeCode::new("00000000"))
            .unwrap();
    assert_eq!(wrong, ContactConfirmation::WrongCode);
    // The code is for the email, not the phone.
    let other_channel =
        f.kw.confirm_contact(&sam.id, Channel::Sms, &OneTimeCode::new(code.as_str()))
            .unwrap();
    assert_eq!(other_channel, ContactConfirmation::NoLiveCode);
    let right =
        f.kw.confirm_contact(&sam.id, Channel::Email, &OneTimeCode::new(code.as_str()))
            .unwrap();
    assert_eq!(right, ContactConfirmation::Verified);
    let record = f.record(&sam.id);
    assert!(record.user.email_verified);
    assert!(record.contact_code.is_none(), "used up");
    let verified = f.events_of(&sam.id, AuditAction::ContactVerified);
    let outcomes: Vec<AuditOutcome> = verified.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        vec![AuditOutcome::Denied, AuditOutcome::Succeeded]
    );
    // Once more: nothing to verify.
    assert_eq!(
        f.kw.send_contact_code(&sam.id, Channel::Email).unwrap(),
        ContactCodeSending::AlreadyVerified
    );
}

#[test]
fn a_new_email_withdraws_what_went_to_the_old_one() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    let mut record = f.record(&sam.id);
    assert!(record.reset_token.is_some());
    // A device code sent there too (planted: the flow that sends one is the sign-in's).
    record.totp.device_code = record.reset_token.clone();
    f.kw.store().set_totp(&sam.id, &record.totp).unwrap();
    f.kw.set_contact(
        &f.admin.id,
        &sam.id,
        Channel::Email,
        Some("sam@new.example"),
    )
    .unwrap();
    let record = f.record(&sam.id);
    assert!(
        record.reset_token.is_none(),
        "the reset link went to the old mailbox"
    );
    assert!(record.totp.device_code.is_none(), "so did the device code");
    // A new phone number leaves the email's reset link alone (planted: the new email is
    // unverified, so no link goes out now).
    let token = keyward::user::OneTimeCredential::new(
        keyward::user::StoredHash::new("$sha256$00"),
        T0,
        T0 + Duration::hours(1),
    );
    f.kw.store()
        .set_one_time(&sam.id, OneTimeKind::ResetToken, Some(&token))
        .unwrap();
    f.kw.set_contact(&f.admin.id, &sam.id, Channel::Sms, Some("+44 1234 567890"))
        .unwrap();
    assert!(f.record(&sam.id).reset_token.is_some());
}

#[test]
fn contact_codes_are_sent_once_a_minute_at_most() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.set_contact(&f.admin.id, &sam.id, Channel::Sms, Some("+44 1234 567890"))
        .unwrap();
    let first = f.kw.send_contact_code(&sam.id, Channel::Sms).unwrap();
    assert!(matches!(first, ContactCodeSending::Sent { .. }));
    f.clock.advance(Duration::seconds(59));
    let again = f.kw.send_contact_code(&sam.id, Channel::Sms).unwrap();
    let retry_at = T0 + Duration::minutes(1);
    assert_eq!(again, ContactCodeSending::TooSoon { retry_at });
    assert_eq!(f.events_of(&sam.id, AuditAction::ContactCodeSent).len(), 1);
    f.clock.advance(Duration::seconds(1));
    let later = f.kw.send_contact_code(&sam.id, Channel::Sms).unwrap();
    assert!(matches!(later, ContactCodeSending::Sent { .. }));
}

#[test]
fn a_code_verifies_only_the_address_it_went_to_and_only_while_live() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.set_contact(&f.admin.id, &sam.id, Channel::Sms, Some("+44 20 7946 0000"))
        .unwrap();
    let _ = f.kw.send_contact_code(&sam.id, Channel::Sms).unwrap();
    let message = f
        .outbox
        .take_last_to(&Recipient::Sms("+44 20 7946 0000".into()))
        .unwrap();
    let code = OneTimeCode::new(message.secret.expose_secret());
    // The number changes before the code comes back: the code is dead.
    f.kw.set_contact(&f.admin.id, &sam.id, Channel::Sms, Some("+44 20 7946 1111"))
        .unwrap();
    assert!(
        f.record(&sam.id).contact_code.is_none(),
        "withdrawn with the old number"
    );
    let late = f.kw.confirm_contact(&sam.id, Channel::Sms, &code).unwrap();
    assert_eq!(late, ContactConfirmation::NoLiveCode);
    assert!(!f.record(&sam.id).user.phone_verified);
    // A fresh code expires.
    let _ = f.kw.send_contact_code(&sam.id, Channel::Sms).unwrap();
    let message = f
        .outbox
        .take_last_to(&Recipient::Sms("+44 20 7946 1111".into()))
        .unwrap();
    let code = OneTimeCode::new(message.secret.expose_secret());
    f.clock.advance(Duration::minutes(11));
    let expired = f.kw.confirm_contact(&sam.id, Channel::Sms, &code).unwrap();
    assert_eq!(expired, ContactConfirmation::NoLiveCode);
    // And runs out of tries.
    let _ = f.kw.send_contact_code(&sam.id, Channel::Sms).unwrap();
    let message = f
        .outbox
        .take_last_to(&Recipient::Sms("+44 20 7946 1111".into()))
        .unwrap();
    let code = OneTimeCode::new(message.secret.expose_secret());
    for _ in 0..5 {
        let wrong =
            f.kw.confirm_contact(&sam.id, Channel::Sms, &OneTimeCode::new("1"))
                .unwrap();
        assert_eq!(wrong, ContactConfirmation::WrongCode);
    }
    let spent = f.kw.confirm_contact(&sam.id, Channel::Sms, &code).unwrap();
    assert_eq!(spent, ContactConfirmation::NoLiveCode);
    assert!(!f.record(&sam.id).user.phone_verified);
}

#[test]
fn an_undelivered_contact_code_is_withdrawn_and_audited() {
    let f = fx_with(Arc::new(InMemoryStore::new()), |b| {
        b.notifier(Arc::new(keyward::notify::NoNotifier))
    });
    let sam = f.user("sam");
    f.kw.set_contact(
        &f.admin.id,
        &sam.id,
        Channel::Email,
        Some("sam@new.example"),
    )
    .unwrap();
    let result = f.kw.send_contact_code(&sam.id, Channel::Email);
    assert!(matches!(result, Err(Error::Notify(_))), "{result:?}");
    assert!(f.record(&sam.id).contact_code.is_none());
    let sent = f.events_of(&sam.id, AuditAction::ContactCodeSent);
    let outcomes: Vec<(AuditOutcome, Option<&str>)> = sent
        .iter()
        .map(|e| (e.outcome, e.reason.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (AuditOutcome::Succeeded, None),
            (AuditOutcome::Denied, Some("delivery_failed"))
        ]
    );
    // Without an address there is nothing to send to.
    f.kw.set_contact(&f.admin.id, &sam.id, Channel::Email, None)
        .unwrap();
    assert!(matches!(
        f.kw.send_contact_code(&sam.id, Channel::Email),
        Err(Error::InvalidUser(_))
    ));
}

#[test]
fn a_users_own_contact_change_needs_a_step_up() {
    let f = fx();
    let sam = f.user("sam");
    let kim = f.user("kim");
    let kims = f.step_up(&kim.id);
    assert!(matches!(
        f.kw.change_own_contact(&sam.id, kims, Channel::Email, Some("thief@example.org")),
        Err(Error::StepUpRequired { .. })
    ));
    let proof = f.step_up(&sam.id);
    // The account changes after the step-up (an administrator resets the password): void.
    f.kw.lock_user(&f.admin.id, &sam.id, "check").unwrap();
    f.kw.unlock(&f.admin.id, &sam.id).unwrap();
    assert!(matches!(
        f.kw.change_own_contact(&sam.id, proof, Channel::Email, Some("thief@example.org")),
        Err(Error::StepUpRequired { .. })
    ));
    assert_eq!(
        f.record(&sam.id).user.email.as_deref(),
        Some("sam@example.org")
    );
    let after =
        f.kw.change_own_contact(
            &sam.id,
            f.step_up(&sam.id),
            Channel::Email,
            Some("sam@home.example"),
        )
        .unwrap();
    assert_eq!(after.email.as_deref(), Some("sam@home.example"));
    assert!(!after.email_verified);
    let changed = f.events_of(&sam.id, AuditAction::ContactChanged);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].actor.as_ref(), Some(&sam.id));
    // An invalid address is refused.
    assert!(matches!(
        f.kw.change_own_contact(&sam.id, f.step_up(&sam.id), Channel::Email, Some("no-at")),
        Err(Error::InvalidUser(_))
    ));
}

/// The target changes between the permission check and the write (a second administrator):
/// the write refuses, names what changed, and writes nothing.
#[test]
fn a_change_made_meanwhile_wins() {
    let store = Arc::new(InMemoryStore::new());
    let armed = Arc::new(std::sync::Mutex::new(None::<User>));
    let (inner, slot) = (store.clone(), armed.clone());
    let changes = std::sync::atomic::AtomicUsize::new(0);
    let hook = move |op: &'static str| {
        let ours = op == "change_profile_recorded" || op == "delete_recorded";
        // Taken only by the write it is meant for (the reads before it pass).
        let taken = if ours {
            slot.lock().unwrap().take()
        } else {
            None
        };
        if let Some(mut user) = taken {
            let n = changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            user.surname = format!("Meanwhile {n}");
            inner.update_profile(&user).unwrap();
        }
        Ok(())
    };
    let spy = Arc::new(Spy::new(store.clone(), Box::new(hook)));
    let f = fx_with(spy, |b| b);
    let sam = f.user("sam");
    for attempt in 0..4 {
        *armed.lock().unwrap() = Some(f.record(&sam.id).user);
        let result = match attempt {
            0 => {
                f.kw.update_user(&f.admin.id, &sam.id, &ProfileChange::new().forename("X"))
                    .map(drop)
            }
            1 => f.kw.disable_user(&f.admin.id, &sam.id, "gone"),
            2 => {
                f.kw.set_role(&f.admin.id, &sam.id, Role::Moderator, &[])
                    .map(drop)
            }
            _ => f.kw.delete_user(&f.admin.id, &sam.id),
        };
        assert!(
            matches!(result, Err(Error::ChangedMeanwhile { what: "user" })),
            "{attempt}: {result:?}"
        );
    }
    let record = f.record(&sam.id);
    assert!(record.user.surname.starts_with("Meanwhile"));
    assert_eq!(
        (record.user.status, record.user.role),
        (UserStatus::Active, Role::User)
    );
    for action in [
        AuditAction::UserUpdated,
        AuditAction::UserDisabled,
        AuditAction::RoleChanged,
        AuditAction::UserDeleted,
    ] {
        assert!(f.events_of(&sam.id, action).is_empty(), "{action:?}");
    }
}

/// A revoked administrator's session cannot act: `acting` checks the stamp before each of
/// the lifecycle operations too.
#[test]
fn a_stale_administrator_session_cannot_delete() {
    let f = fx();
    let sam = f.user("sam");
    let deputy = User::new(f.site.clone(), "deputy", "De", "Puty", "staff", T0)
        .with_role(Role::Administrator);
    let deputy =
        f.kw.create_user(
            Some(&f.admin.id),
            deputy,
            Some(Password::new(ADMIN_PASSWORD)),
        )
        .unwrap();
    let signed =
        f.kw.sign_in(&f.site, "deputy", &Password::new(ADMIN_PASSWORD), None)
            .unwrap();
    let signed = step!(signed, SignIn::Authenticated);
    let acting = f.kw.acting(&deputy.id, signed.stamp()).unwrap();
    f.kw.set_role(&f.admin.id, &deputy.id, Role::User, &[])
        .unwrap();
    assert!(matches!(
        acting.delete_user(&sam.id),
        Err(Error::StaleSession { .. })
    ));
    assert!(f.kw.store().get_user(&sam.id).unwrap().is_some());
}

#[test]
fn contact_codes_are_kept_apart_from_reset_links() {
    // A contact code and a reset link are different slots: sending one leaves the other.
    let f = fx();
    let sam = f.user("sam");
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    f.kw.set_contact(&f.admin.id, &sam.id, Channel::Sms, Some("+44 1234 567890"))
        .unwrap();
    let _ = f.kw.send_contact_code(&sam.id, Channel::Sms).unwrap();
    let record = f.record(&sam.id);
    assert!(record.reset_token.is_some() && record.contact_code.is_some());
}
