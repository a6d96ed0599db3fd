//! Cohort onboarding: unclaimed-only bulk regeneration with preview, confirmation, progress,
//! cancellation, the claim race, the printable list, the unclaimed list with escrow, group
//! reset emails and the group picker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroUsize;
use std::sync::Arc;

use keyward::admin::{CancelToken, Progress, RegenerationOptions, SkipReason, UnclaimedUser};
use keyward::audit::{AuditAction, AuditEvent, AuditOutcome, AuditQuery};
use keyward::hash::Hasher;
use keyward::notify::Outbox;
use keyward::permission::{DenyReason, PermissionDenied};
use keyward::signin::PasswordChange;
use keyward::store::{GroupQuery, MAX_PAGE, UserQuery};
use keyward::totp::TotpSealer;
use keyward::user::{Role, SiteId, User, UserId};
use keyward::{Error, InMemoryStore, Keyward, ManualClock, Password, SignIn, UserStore};
use time::macros::{date, datetime};
use time::{Date, Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-09-01 08:00 UTC);
const ADMIN_PASSWORD: &str = "ochre-violet-anchor-93";
const OWN_PASSWORD: &str = "river-lantern-copper-58";

struct Fx {
    kw: Keyward,
    clock: Arc<ManualClock>,
    outbox: Arc<Outbox>,
    site: SiteId,
    admin: UserId,
}

fn site() -> SiteId {
    SiteId::new("northfield").unwrap()
}

fn escrow_keys() -> TotpSealer {
    TotpSealer::new("escrow-1", &[9u8; 32]).unwrap()
}

fn fx_with(store: Arc<dyn UserStore>, escrow: bool) -> Fx {
    let clock = Arc::new(ManualClock::new(T0));
    let outbox = Arc::new(Outbox::new());
    let mut builder = Keyward::builder(store)
        .hasher(Hasher::for_tests())
        .clock(clock.clone())
        .notifier(outbox.clone());
    if escrow {
        builder = builder.temporary_password_escrow(escrow_keys());
    }
    let kw = builder.build();
    let admin =
        User::new(site(), "head", "Ada", "Admin", "staff", T0).with_role(Role::Administrator);
    let admin = kw
        .create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap()
        .id;
    Fx {
        kw,
        clock,
        outbox,
        site: site(),
        admin,
    }
}

fn fx() -> Fx {
    fx_with(Arc::new(InMemoryStore::new()), false)
}

impl Fx {
    /// A pupil of `group` born on `dob`, with no password (unclaimed).
    fn pupil(&self, username: &str, surname: &str, group: &str, dob: Date) -> UserId {
        let user = User::new(self.site.clone(), username, "Pupil", surname, "student", T0)
            .with_groups([group])
            .with_date_of_birth(dob);
        self.kw.create_user(None, user, None).unwrap().id
    }

    fn create(&self, user: User, password: Option<&str>) -> UserId {
        self.kw
            .create_user(None, user, password.map(Password::new))
            .unwrap()
            .id
    }

    fn user(&self, username: &str, group: &str) -> User {
        User::new(self.site.clone(), username, "Fore", username, "student", T0).with_groups([group])
    }

    /// Regenerates `groups` with the administrator's password and the default options.
    fn regenerate_groups(&self, groups: &[&str]) -> keyward::admin::PrintableList {
        let groups = Fx::groups(groups);
        let confirmation = Password::new(ADMIN_PASSWORD);
        (self.kw)
            .bulk_regenerate(&self.admin, &confirmation, &self.site, &groups)
            .unwrap()
    }

    fn preview(&self, groups: &[&str]) -> keyward::admin::RegenerationPreview {
        let groups = Fx::groups(groups);
        (self.kw)
            .preview_regeneration(&self.admin, &self.site, &groups)
            .unwrap()
    }

    /// Runs `preview` confirmed with the administrator's password.
    fn run(
        &self,
        preview: keyward::admin::RegenerationPreview,
        options: RegenerationOptions<'_>,
    ) -> Result<keyward::admin::Regenerated, Error> {
        let confirmation = Password::new(ADMIN_PASSWORD);
        self.kw
            .regenerate(&self.admin, &confirmation, preview, options)
    }

    fn groups(names: &[&str]) -> Vec<String> {
        names.iter().map(|g| (*g).to_owned()).collect()
    }

    fn events(&self, action: AuditAction) -> Vec<AuditEvent> {
        let query = AuditQuery::default()
            .site(self.site.clone())
            .action(action)
            .page(0, MAX_PAGE);
        self.kw.audit_trail(&self.admin, &query).unwrap().items
    }

    fn password_hash(&self, id: &UserId) -> Option<String> {
        let record = self.kw.store().get_user(id).unwrap().unwrap();
        record.password.map(|p| p.hash.as_str().to_owned())
    }

    fn sign_in(&self, username: &str, password: &str) -> SignIn {
        (self.kw)
            .sign_in(&self.site, username, &Password::new(password), None)
            .unwrap()
    }

    /// Signs in with a single-use temporary password and sets `OWN_PASSWORD`: claims.
    fn claim(&self, username: &str, temporary: &str) {
        let SignIn::PasswordChangeRequired(pending) = self.sign_in(username, temporary) else {
            panic!("{username} could not sign in with the temporary password");
        };
        let changed = self
            .kw
            .complete_password_change(pending, Password::new(OWN_PASSWORD));
        assert!(matches!(
            changed.unwrap(),
            PasswordChange::Changed(SignIn::Authenticated(_))
        ));
    }
}

fn denied(result: Result<impl std::fmt::Debug, Error>) -> DenyReason {
    match result {
        Err(Error::PermissionDenied(PermissionDenied { reason, .. })) => reason,
        other => panic!("expected a permission denial, got {other:?}"),
    }
}

#[test]
fn preview_counts_per_group_and_every_skip_by_reason() {
    let f = fx();
    let amy = f.create(
        f.user("amy", "Year 7").with_groups(["Year 7", "Year 8"]),
        None,
    );
    f.create(f.user("ben", "Year 7"), None);
    let _ =
        f.kw.issue_temporary_password(&f.admin, &amy, Default::default())
            .unwrap();
    f.create(f.user("cal", "Year 7"), Some(OWN_PASSWORD)); // claimed
    f.create(f.user("dee", "Year 7").with_sso(true), None);
    let mut eve = f.user("eve", "Year 7");
    eve.status = keyward::user::UserStatus::Disabled;
    f.create(eve, None);
    f.create(f.user("mo", "Year 7").with_role(Role::Moderator), None);
    let other = SiteId::new("southfield").unwrap();
    f.create(
        f.user("wide", "Year 8")
            .with_role(Role::Moderator)
            .with_managed_sites(vec![other]),
        None,
    );
    f.create(f.user("fay", "Year 8"), None);
    f.create(f.user("gus", "Year 9"), None);
    let preview = (f.kw)
        .preview_regeneration(&f.admin, &f.site, &Fx::groups(&["Year 7", "Year 8"]))
        .unwrap();
    let per_group: Vec<_> = preview
        .per_group()
        .iter()
        .map(|g| (g.name.as_str(), g.picked))
        .collect();
    // amy (temporary) and ben (no password) in Year 7; amy counts once, under Year 7.
    assert_eq!(per_group, [("Year 7", 2), ("Year 8", 1)]);
    assert_eq!(preview.total(), 3);
    let skipped: Vec<_> = preview.skipped().iter().map(|(r, n)| (*r, *n)).collect();
    assert_eq!(
        skipped,
        [
            (SkipReason::OutOfReach, 1),
            (SkipReason::StaffRole, 1),
            (SkipReason::Disabled, 1),
            (SkipReason::SsoLinked, 1),
            (SkipReason::Claimed, 1),
        ]
    );
    // Nothing changed: the preview generated nothing.
    assert!(f.events(AuditAction::TemporaryPasswordSet).len() == 1);
    // Moderators may not regenerate, nor preview.
    let moderator = f.create(
        f.user("mod2", "Staff").with_role(Role::Moderator),
        Some(OWN_PASSWORD),
    );
    let refused =
        f.kw.preview_regeneration(&moderator, &f.site, &Fx::groups(&["Year 7"]));
    assert!(matches!(
        denied(refused),
        DenyReason::MissingPermission { .. }
    ));
}

#[test]
fn five_wrong_confirmations_lock_the_administrator_and_are_audited() {
    let f = fx();
    f.pupil("amy", "Adams", "Year 7", date!(2014 - 03 - 14));
    let groups = Fx::groups(&["Year 7"]);
    for _ in 0..5 {
        let preview =
            f.kw.preview_regeneration(&f.admin, &f.site, &groups)
                .unwrap();
        let wrong = Password::new("not-my-password-at-all");
        let result =
            f.kw.regenerate(&f.admin, &wrong, preview, RegenerationOptions::new());
        assert_eq!(denied(result), DenyReason::ConfirmationFailed);
    }
    let record = f.kw.store().get_user(&f.admin).unwrap().unwrap();
    assert!(
        record.password_lock.is_locked(f.kw.now()),
        "five wrong confirmations must lock"
    );
    // Now even the right password is refused, and nothing was regenerated.
    let preview =
        f.kw.preview_regeneration(&f.admin, &f.site, &groups)
            .unwrap();
    let right = Password::new(ADMIN_PASSWORD);
    let result =
        f.kw.regenerate(&f.admin, &right, preview, RegenerationOptions::new());
    assert_eq!(denied(result), DenyReason::ConfirmationFailed);
    let refusals: Vec<_> = f
        .events(AuditAction::BulkRegenerated)
        .into_iter()
        .map(|e| (e.outcome, e.reason))
        .collect();
    assert_eq!(refusals.len(), 6);
    assert!(
        refusals
            .iter()
            .all(|r| *r == (AuditOutcome::Denied, Some("confirmation_failed".to_owned())))
    );
    assert!(f.events(AuditAction::TemporaryPasswordSet).is_empty());
}

#[test]
fn a_user_who_claims_meanwhile_keeps_their_password_and_is_reported() {
    let f = fx();
    let amy = f.pupil("amy", "Adams", "Year 7", date!(2014 - 03 - 14));
    let ben = f.pupil("ben", "Brown", "Year 7", date!(2014 - 05 - 02));
    let groups = Fx::groups(&["Year 7"]);
    let first =
        f.kw.bulk_regenerate(&f.admin, &Password::new(ADMIN_PASSWORD), &f.site, &groups)
            .unwrap();
    let amy_first = first.rows.iter().find(|r| r.username == "amy").unwrap();
    // The preview sees both as unclaimed ...
    let preview =
        f.kw.preview_regeneration(&f.admin, &f.site, &groups)
            .unwrap();
    assert_eq!(preview.total(), 2);
    // ... then amy claims her account before the run commits.
    f.claim("amy", amy_first.password.expose_secret());
    let amy_own = f.password_hash(&amy);
    let done = (f.kw)
        .regenerate(
            &f.admin,
            &Password::new(ADMIN_PASSWORD),
            preview,
            RegenerationOptions::new(),
        )
        .unwrap();
    assert_eq!(done.changed_meanwhile, vec![amy.clone()]);
    assert_eq!(done.skipped.get(&SkipReason::ChangedMeanwhile), Some(&1));
    let listed: Vec<_> = done.list.rows.iter().map(|r| r.username.as_str()).collect();
    assert_eq!(listed, ["ben"]);
    assert_eq!(
        f.password_hash(&amy),
        amy_own,
        "amy's own password was replaced"
    );
    assert!(matches!(
        f.sign_in("amy", OWN_PASSWORD),
        SignIn::Authenticated(_)
    ));
    let ben_new = &done.list.rows[0].password;
    assert!(matches!(
        f.sign_in("ben", ben_new.expose_secret()),
        SignIn::PasswordChangeRequired(_)
    ));
    // One event per written user, and the run's event counts what happened.
    let set = f.events(AuditAction::TemporaryPasswordSet);
    let batch = format!("batch={}", done.list.batch.as_str());
    let in_batch: Vec<_> = set
        .iter()
        .filter(|e| e.details.as_deref() == Some(&batch))
        .collect();
    assert_eq!(in_batch.len(), 1);
    assert_eq!(in_batch[0].target.as_ref(), Some(&ben));
    let run = f.events(AuditAction::BulkRegenerated).pop().unwrap();
    let details = run.details.unwrap();
    assert!(details.contains(&batch), "{details}");
    assert!(details.contains("groups=[\"Year 7\"]"), "{details}");
    assert!(
        details.ends_with("planned=2; written=1; changed=1"),
        "{details}"
    );
    assert_eq!(run.actor.as_ref(), Some(&f.admin));
}

#[test]
fn progress_is_reported_at_every_percent_and_ends_at_the_total() {
    let f = fx();
    for i in 0..150 {
        f.pupil(
            &format!("p{i:03}"),
            "Pupil",
            "Year 7",
            date!(2014 - 01 - 01),
        );
    }
    let preview = f.preview(&["Year 7"]);
    let mut seen: Vec<Progress> = Vec::new();
    let mut report = |p: Progress| seen.push(p);
    let options = RegenerationOptions::new()
        .threads(NonZeroUsize::new(3).unwrap())
        .on_progress(&mut report);
    let done = f.run(preview, options).unwrap();
    assert_eq!(done.list.rows.len(), 150);
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((150, 150)));
    assert!(seen.iter().all(|p| p.total == 150));
    for pair in seen.windows(2) {
        assert!(pair[0].done <= pair[1].done, "progress went back: {pair:?}");
        // 1 % of 150 is 1.5 users: no report may skip more than 2.
        assert!(
            pair[1].done - pair[0].done <= 2,
            "a percent was skipped: {pair:?}"
        );
    }
}

#[test]
fn cancelled_before_the_commit_nothing_changes() {
    let f = fx();
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(f.pupil(
            &format!("p{i:02}"),
            "Pupil",
            "Year 7",
            date!(2014 - 01 - 01),
        ));
    }
    let groups = Fx::groups(&["Year 7"]);
    let before: Vec<_> = ids.iter().map(|id| f.password_hash(id)).collect();
    let preview =
        f.kw.preview_regeneration(&f.admin, &f.site, &groups)
            .unwrap();
    let token = CancelToken::new();
    let handle = token.clone();
    let mut report = |p: Progress| {
        if p.done >= 10 {
            handle.cancel();
        }
    };
    let options = RegenerationOptions::new()
        .threads(NonZeroUsize::new(2).unwrap())
        .on_progress(&mut report)
        .cancel_with(token);
    let result = f.run(preview, options);
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    let after: Vec<_> = ids.iter().map(|id| f.password_hash(id)).collect();
    assert_eq!(before, after, "a cancelled run changed a password");
    assert!(f.events(AuditAction::TemporaryPasswordSet).is_empty());
    let runs = f.events(AuditAction::BulkRegenerated);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, AuditOutcome::Cancelled);
    // A token cancelled before the run starts stops it before any hashing.
    let preview =
        f.kw.preview_regeneration(&f.admin, &f.site, &groups)
            .unwrap();
    let early = CancelToken::new();
    early.cancel();
    let options = RegenerationOptions::new().cancel_with(early);
    let result = f.run(preview, options);
    assert!(matches!(result, Err(Error::Cancelled)));
}

#[test]
fn the_list_prints_the_day_of_birth_only_sorted_with_neutralised_cells() {
    let f = fx();
    f.pupil("zed", "Zola", "Year 8", date!(2013 - 11 - 30));
    f.pupil("amy", "Adams", "Year 7", date!(2014 - 03 - 14));
    let eq = User::new(
        f.site.clone(),
        "eq",
        "=HYPERLINK(\"x\")",
        "Baker",
        "student",
        T0,
    )
    .with_groups(["Year 7"])
    .with_date_of_birth(date!(2014 - 07 - 09));
    f.create(eq, None);
    let tag = User::new(
        f.site.clone(),
        "tag",
        "<b>Zoë & co</b>",
        "Adams",
        "student",
        T0,
    )
    .with_groups(["Year 7"]);
    f.create(tag, None);
    // A group chosen twice counts once.
    let list = f.regenerate_groups(&["Year 8", "Year 7", "Year 8"]);
    assert_eq!(list.groups, ["Year 8", "Year 7"]);
    let order: Vec<_> = list.rows.iter().map(|r| r.username.as_str()).collect();
    // Group in the order chosen, then surname, then forename ("<b>…" sorts before "Pupil").
    assert_eq!(order, ["zed", "tag", "amy", "eq"]);
    assert_eq!(list.generated_at, T0);
    assert_eq!(list.expires_at, Some(T0 + Duration::days(7)));
    let csv = list.to_csv().unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("forename,surname,username,group,password,day_of_birth,expires")
    );
    let zed = lines.next().unwrap();
    assert!(zed.starts_with("Pupil,Zola,zed,Year 8,"), "{zed}");
    let amy = &list.rows[2];
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "<b>Zoë & co</b>,Adams,tag,Year 7,{},,2026-09-08T08:00:00Z",
                list.rows[1].password.expose_secret()
            )
            .as_str()
        )
    );
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "Pupil,Adams,amy,Year 7,{},14,2026-09-08T08:00:00Z",
                amy.password.expose_secret()
            )
            .as_str()
        )
    );
    let eq_line = lines.next().unwrap();
    assert!(
        eq_line.starts_with("\"'=HYPERLINK(\"\"x\"\")\",Baker,eq,"),
        "{eq_line}"
    );
    assert!(eq_line.contains(",9,"), "{eq_line}");
    assert!(!csv.contains("2014"), "a year of birth is in the CSV");
    assert!(!csv.contains("2013"), "a year of birth is in the CSV");
    let html = list.to_html();
    assert!(html.contains("@page { size: A4"));
    assert!(
        html.contains("&lt;b&gt;Zoë &amp; co&lt;/b&gt;"),
        "names must be escaped"
    );
    assert!(!html.contains("<b>Zoë"), "an unescaped name");
    assert!(html.contains("Destroy this list after distribution"));
    assert_eq!(html.matches("class=\"strip\"").count(), 4);
    assert_eq!(html.matches("<section class=\"group\">").count(), 2);
    assert!(
        !html.contains("2014") && !html.contains("2013"),
        "a year of birth is in the HTML"
    );
    for row in &list.rows {
        assert!(html.contains(row.password.expose_secret()));
    }
    assert!(!format!("{list:?}").contains(amy.password.expose_secret()));
}

#[test]
fn unclaimed_list_shows_expiry_and_batch_and_reveals_only_with_escrow() {
    let f = fx_with(Arc::new(InMemoryStore::new()), true);
    let amy = f.pupil("amy", "Adams", "Year 7", date!(2014 - 03 - 14));
    let ben = f.pupil("ben", "Brown", "Year 7", date!(2014 - 05 - 02));
    f.create(f.user("cal", "Year 7"), Some(OWN_PASSWORD));
    let mut dee = f.user("dee", "Year 7");
    dee.status = keyward::user::UserStatus::Disabled;
    f.create(dee, None);
    let moderator = f.create(
        f.user("mod", "Staff").with_role(Role::Moderator),
        Some(OWN_PASSWORD),
    );
    let list = f.regenerate_groups(&["Year 7"]);
    let query = UserQuery::new(f.site.clone(), T0);
    let page = f.kw.unclaimed_users(&f.admin, &query).unwrap();
    let names: Vec<_> = page
        .items
        .iter()
        .map(|u| u.summary.user.username.as_str())
        .collect();
    assert_eq!(
        names,
        ["amy", "ben"],
        "cal claimed; dee is disabled; staff are not listed"
    );
    assert_eq!(page.total, 2);
    for UnclaimedUser {
        summary,
        revealable,
        ..
    } in &page.items
    {
        let t = summary.temporary.as_ref().unwrap();
        assert_eq!(t.batch.as_ref(), Some(&list.batch));
        assert_eq!(t.expires_at, T0 + Duration::days(7));
        assert!(revealable);
    }
    // Searchable and paged.
    let ben_only =
        f.kw.unclaimed_users(&f.admin, &query.clone().text("bro"))
            .unwrap();
    assert_eq!(ben_only.items.len(), 1);
    let second =
        f.kw.unclaimed_users(&f.admin, &query.clone().page(1, 1))
            .unwrap();
    assert_eq!((second.items.len(), second.total), (1, 2));
    // Moderators see the list, cannot reveal.
    let seen = f.kw.unclaimed_users(&moderator, &query).unwrap();
    assert!(seen.items.iter().all(|u| !u.revealable));
    assert!(matches!(
        denied(f.kw.reveal_temporary_password(&moderator, &amy)),
        DenyReason::MissingPermission { .. }
    ));
    // The administrator reveals the very password on the list, audited each time.
    let amy_listed = list.rows.iter().find(|r| r.username == "amy").unwrap();
    for _ in 0..2 {
        let shown = f.kw.reveal_temporary_password(&f.admin, &amy).unwrap();
        assert_eq!(shown.expose_secret(), amy_listed.password.expose_secret());
    }
    let reveals = f.events(AuditAction::TemporaryPasswordRevealed);
    let outcomes: Vec<_> = reveals
        .iter()
        .map(|e| (e.outcome, e.target.clone()))
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o.0 == AuditOutcome::Succeeded)
            .count(),
        2
    );
    assert!(
        outcomes
            .iter()
            .any(|o| o.0 == AuditOutcome::Denied && o.1 == Some(amy.clone()))
    );
    // A new batch replaces the copy: a reveal shows the new password, never the old one.
    let again = f.regenerate_groups(&["Year 7"]);
    let amy_again = again.rows.iter().find(|r| r.username == "amy").unwrap();
    let shown = f.kw.reveal_temporary_password(&f.admin, &amy).unwrap();
    assert_eq!(shown.expose_secret(), amy_again.password.expose_secret());
    assert_ne!(shown.expose_secret(), amy_listed.password.expose_secret());
    // Claiming erases the copy.
    f.claim("amy", amy_again.password.expose_secret());
    assert!(matches!(
        f.kw.reveal_temporary_password(&f.admin, &amy),
        Err(Error::NothingToReveal { .. })
    ));
    // Expiry: refused, and the copy is erased.
    f.clock.advance(Duration::days(8));
    assert!(matches!(
        f.kw.reveal_temporary_password(&f.admin, &ben),
        Err(Error::NothingToReveal { .. })
    ));
    let record = f.kw.store().get_user(&ben).unwrap().unwrap();
    assert_eq!(record.password.unwrap().temporary.unwrap().escrow, None);
    // Without escrow there is nothing to show.
    let plain = fx();
    let dee = plain.pupil("dee", "Dunn", "Year 7", date!(2014 - 01 - 01));
    plain
        .kw
        .bulk_regenerate(
            &plain.admin,
            &Password::new(ADMIN_PASSWORD),
            &plain.site,
            &Fx::groups(&["Year 7"]),
        )
        .unwrap();
    let page = plain
        .kw
        .unclaimed_users(&plain.admin, &UserQuery::new(plain.site.clone(), T0))
        .unwrap();
    assert!(page.items.iter().all(|u| !u.revealable));
    assert!(matches!(
        plain.kw.reveal_temporary_password(&plain.admin, &dee),
        Err(Error::EscrowDisabled)
    ));
}

#[test]
fn expired_escrow_copies_are_erased_by_the_sweep() {
    let f = fx_with(Arc::new(InMemoryStore::new()), true);
    let amy = f.pupil("amy", "Adams", "Year 7", date!(2014 - 03 - 14));
    f.regenerate_groups(&["Year 7"]);
    assert_eq!(
        f.kw.erase_expired_escrow(&f.site).unwrap(),
        0,
        "a live copy was erased"
    );
    f.clock.advance(Duration::days(7));
    assert_eq!(f.kw.erase_expired_escrow(&f.site).unwrap(), 1);
    let record = f.kw.store().get_user(&amy).unwrap().unwrap();
    assert_eq!(record.password.unwrap().temporary.unwrap().escrow, None);
    let swept = f
        .events(AuditAction::TemporaryPasswordRemoved)
        .pop()
        .unwrap();
    assert_eq!(swept.details.as_deref(), Some("escrow erased=1"));
}

#[test]
fn group_reset_emails_go_to_verified_addresses_and_return_the_rest() {
    let f = fx();
    let with = f.user("amy", "Year 7").with_email("amy@example.org", true);
    let amy = f.create(with, None);
    let unverified = f.user("ben", "Year 7").with_email("ben@example.org", false);
    let ben = f.create(unverified, None);
    f.create(f.user("cal", "Year 7"), Some(OWN_PASSWORD));
    let resets = (f.kw)
        .send_group_password_resets(&f.admin, &f.site, &Fx::groups(&["Year 7"]))
        .unwrap();
    assert_eq!(
        resets.sent.iter().map(|(id, _)| id).collect::<Vec<_>>(),
        [&amy]
    );
    let without: Vec<_> = resets.without_email.iter().map(|s| &s.user.id).collect();
    assert_eq!(without, [&ben]);
    assert_eq!(resets.skipped.get(&SkipReason::Claimed), Some(&1));
    assert!(
        f.outbox
            .take_last_to(&keyward::notify::Recipient::Email("amy@example.org".into()))
            .is_some()
    );
    let sent = f.events(AuditAction::PasswordResetSent);
    let run = sent.last().unwrap();
    assert_eq!(
        run.details.as_deref(),
        Some("groups=[\"Year 7\"]; sent=1; without_email=1")
    );
    assert!(
        sent.iter()
            .any(|e| e.target.as_ref() == Some(&amy) && e.outcome == AuditOutcome::Succeeded)
    );
}

#[test]
fn the_group_picker_counts_what_a_regeneration_would_touch() {
    let f = fx();
    f.create(f.user("amy", "Year 7"), None);
    f.create(f.user("ben", "Year 7"), Some(OWN_PASSWORD));
    f.create(f.user("cal", "Year 8"), None);
    f.create(f.user("dee", "Choir"), None);
    let page =
        f.kw.cohort_groups(&f.admin, &GroupQuery::new(f.site.clone()).text("year"))
            .unwrap();
    let groups: Vec<_> = page
        .items
        .iter()
        .map(|g| (g.name.as_str(), g.members, g.unclaimed))
        .collect();
    assert_eq!(groups, [("Year 7", 2, 1), ("Year 8", 1, 1)]);
    assert_eq!(page.total, 2);
    let user = f.create(f.user("eve", "Year 7"), Some(OWN_PASSWORD));
    assert!(matches!(
        denied(f.kw.cohort_groups(&user, &GroupQuery::new(f.site.clone()))),
        DenyReason::MissingPermission { .. }
    ));
}

#[test]
fn the_unclaimed_search_filter_follows_the_claim_definition() {
    let f = fx();
    let amy = f.pupil("amy", "Adams", "Year 7", date!(2014 - 03 - 14));
    f.create(f.user("ben", "Year 7"), Some(OWN_PASSWORD));
    let list = f.regenerate_groups(&["Year 7"]);
    let unclaimed = |f: &Fx| -> Vec<String> {
        let q = UserQuery::new(f.site.clone(), T0)
            .unclaimed_only()
            .role(Role::User);
        let page = f.kw.search_users(&f.admin, &q).unwrap();
        page.items.into_iter().map(|s| s.user.username).collect()
    };
    assert_eq!(unclaimed(&f), ["amy"]);
    // Signing in with the temporary password does not claim; setting one's own does.
    let temporary = list.rows[0].password.expose_secret().to_owned();
    let SignIn::PasswordChangeRequired(pending) = f.sign_in("amy", &temporary) else {
        panic!()
    };
    assert_eq!(unclaimed(&f), ["amy"]);
    let _ =
        f.kw.complete_password_change(pending, Password::new(OWN_PASSWORD))
            .unwrap();
    assert!(unclaimed(&f).is_empty());
    let _ = amy;
}

mod support;

use support::{contains, raw_bytes};

/// Regenerates three pupils' passwords with escrow on `store`; returns the list's passwords.
fn escrowed_cohort(store: Arc<dyn UserStore>) -> Vec<String> {
    let f = fx_with(store, true);
    for name in ["amy", "ben", "cal"] {
        f.pupil(name, "Pupil", "Year 7", date!(2014 - 03 - 14));
    }
    let list = f.regenerate_groups(&["Year 7"]);
    // The copies exist and open: a reveal returns the listed password.
    let amy = f.kw.store().find_user(&f.site, "amy").unwrap().unwrap();
    let shown =
        f.kw.reveal_temporary_password(&f.admin, &amy.user.id)
            .unwrap();
    let listed = list.rows.iter().find(|r| r.username == "amy").unwrap();
    assert_eq!(shown.expose_secret(), listed.password.expose_secret());
    list.rows
        .iter()
        .map(|r| r.password.expose_secret().to_owned())
        .collect()
}

#[test]
fn escrowed_passwords_are_sealed_in_the_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = keyward::SqliteStore::open(dir.path().join("kw.db")).unwrap();
    let passwords = escrowed_cohort(Arc::new(store));
    let bytes = raw_bytes(dir.path());
    assert!(
        contains(&bytes, b"escrow:v1:escrow-1:"),
        "no sealed copy was stored"
    );
    for password in &passwords {
        assert!(
            !contains(&bytes, password.as_bytes()),
            "a temporary password is in the file"
        );
    }
}

#[cfg(feature = "postgres")]
#[test]
fn escrowed_passwords_are_sealed_in_postgresql_rows() {
    let Some(schema) = support::pg::TestSchema::new() else {
        return;
    };
    let passwords = escrowed_cohort(Arc::new(schema.open()));
    let (url, name) = (schema.url.clone(), schema.name.clone());
    let rows = std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let sql = format!(
            "SELECT t::text FROM {name}.users t UNION ALL SELECT a::text FROM {name}.audit a"
        );
        let rows = client.query(sql.as_str(), &[]).unwrap();
        rows.iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    })
    .join()
    .unwrap();
    assert!(
        rows.contains("escrow:v1:escrow-1:"),
        "no sealed copy was stored"
    );
    for password in &passwords {
        assert!(
            !rows.contains(password.as_str()),
            "a temporary password is in a row"
        );
    }
}

#[test]
fn a_user_disabled_or_promoted_after_the_preview_gets_no_password() {
    let f = fx();
    let amy = f.pupil("amy", "Adams", "Year 7", date!(2014 - 03 - 14));
    let ben = f.pupil("ben", "Brown", "Year 7", date!(2014 - 05 - 02));
    f.pupil("cal", "Cole", "Year 7", date!(2014 - 06 - 01));
    let preview = f.preview(&["Year 7"]);
    assert_eq!(preview.total(), 3);
    let store = f.kw.store();
    let mut disabled = store.get_user(&amy).unwrap().unwrap().user;
    disabled.status = keyward::user::UserStatus::Disabled;
    store.update_profile(&disabled).unwrap();
    let mut promoted = store.get_user(&ben).unwrap().unwrap().user;
    promoted.role = Role::Moderator;
    store.update_profile(&promoted).unwrap();
    let done = f.run(preview, RegenerationOptions::new()).unwrap();
    let listed: Vec<_> = done.list.rows.iter().map(|r| r.username.as_str()).collect();
    assert_eq!(listed, ["cal"]);
    let mut changed = done.changed_meanwhile.clone();
    changed.sort();
    let mut want = vec![amy.clone(), ben.clone()];
    want.sort();
    assert_eq!(changed, want);
    assert_eq!(f.password_hash(&amy), None);
    assert_eq!(f.password_hash(&ben), None);
}
