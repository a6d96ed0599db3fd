//! Cohorts: the users of some groups who have not yet claimed their account, as bulk
//! regeneration, the group picker and group password-reset emails see them.
//!
//! Who is picked is decided by one function, `Keyward::cohort_member`: a user within the
//! actor's reach, of role `user`, active, not SSO-linked, and unclaimed
//! ([`UserRecord::is_unclaimed`]). Everyone else in the chosen groups is skipped and counted
//! under its [`SkipReason`], the first that applies in that order.

use std::collections::BTreeMap;

use crate::admin::UserSummary;
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::notify::DeliveryReceipt;
use crate::permission::Permission;
use crate::service::Keyward;
use crate::store::{GroupQuery, Page, UserQuery, UserRecord};
use crate::text_enum::text_enum;
use crate::user::{Role, SiteId, StoredHash, User, UserId, UserStatus};

text_enum!(
    /// Why a user of a chosen group is left out of a cohort.
    #[derive(PartialOrd, Ord)]
    SkipReason {
        /// Outside the actor's reach (a peer who manages a site the actor does not, or a
        /// permission the actor lacks for this user).
        OutOfReach => "out_of_reach",
        /// An administrator or moderator: staff accounts are never regenerated in bulk.
        StaffRole => "staff_role",
        /// The account is disabled.
        Disabled => "disabled",
        /// The user signs in through the organisation's directory (SSO).
        SsoLinked => "sso_linked",
        /// The user has set a password of their own.
        Claimed => "claimed",
        /// Picked by the preview, then changed before the commit: claimed the account (or
        /// another administrator replaced the password), or was disabled, moved, promoted or
        /// linked to SSO. Such a user keeps what they have.
        ChangedMeanwhile => "changed_meanwhile",
    }
);

/// Counts of skipped users by reason (reasons with no user are absent).
pub type SkipCounts = BTreeMap<SkipReason, u64>;

/// One chosen group and how many of its users a cohort takes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupCount {
    /// The group's name.
    pub name: String,
    /// Users picked through this group (a user in two chosen groups counts under the first).
    pub picked: u64,
}

/// A cohort member: the user and the password hash the cohort saw (`None`: no password).
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub(crate) group: String,
    pub(crate) user: User,
    pub(crate) expected: Option<StoredHash>,
}

/// The cohort of some groups: who is picked, per group, and who is skipped and why.
#[derive(Debug, Clone)]
pub(crate) struct Cohort {
    pub(crate) members: Vec<Member>,
    pub(crate) per_group: Vec<GroupCount>,
    pub(crate) skipped: SkipCounts,
}

/// A group as the group picker shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupChoice {
    /// The group's name.
    pub name: String,
    /// Members of the group in the site.
    pub members: u64,
    /// How many of them a regeneration of this group alone would give a new temporary
    /// password (the unclaimed users within the actor's reach).
    pub unclaimed: u64,
}

/// What [`Keyward::send_group_password_resets`] did.
#[derive(Debug)]
#[non_exhaustive]
pub struct GroupResets {
    /// The users a reset link was sent to, with the notifier's receipts.
    pub sent: Vec<(UserId, DeliveryReceipt)>,
    /// Cohort members without a verified email: print temporary passwords for them instead.
    pub without_email: Vec<UserSummary>,
    /// Users of the groups left out, by reason.
    pub skipped: SkipCounts,
}

/// An unclaimed user as the unclaimed list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnclaimedUser {
    /// The user, without credential material.
    pub summary: UserSummary,
    /// Whether an escrowed copy of the temporary password can be revealed
    /// ([`Keyward::reveal_temporary_password`]).
    pub revealable: bool,
}

/// `groups` without repeats, in the order given.
pub(crate) fn distinct(groups: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(groups.len());
    for group in groups {
        if !out.contains(group) {
            out.push(group.clone());
        }
    }
    out
}

impl Keyward {
    /// Whether `record` belongs to a cohort of `actor`, or why not: the one rule for bulk
    /// regeneration, the group picker and group reset emails.
    pub(crate) fn cohort_member(
        &self,
        actor: &User,
        permission: Permission,
        record: &UserRecord,
    ) -> Result<(), SkipReason> {
        let user = &record.user;
        let site = &user.site;
        if self
            .permissions
            .authorize(actor, permission, site, Some(user))
            .is_err()
        {
            return Err(SkipReason::OutOfReach);
        }
        if user.role != Role::User {
            return Err(SkipReason::StaffRole);
        }
        if user.status != UserStatus::Active {
            return Err(SkipReason::Disabled);
        }
        if user.sso_linked {
            return Err(SkipReason::SsoLinked);
        }
        if !record.is_unclaimed() {
            return Err(SkipReason::Claimed);
        }
        Ok(())
    }

    /// The cohort of `groups` in `site` for `actor`: each user once, under the first chosen
    /// group they are in.
    pub(crate) fn cohort(
        &self,
        actor: &User,
        permission: Permission,
        site: &SiteId,
        groups: &[String],
    ) -> Result<Cohort, Error> {
        let mut seen = std::collections::HashSet::new();
        let groups = distinct(groups);
        let mut cohort = Cohort {
            members: Vec::new(),
            per_group: Vec::new(),
            skipped: SkipCounts::new(),
        };
        for group in &groups {
            let mut picked = 0;
            let members = UserQuery::new(site.clone(), self.now()).group(group.as_str());
            self.each_user(members, |record| {
                if !seen.insert(record.user.id.clone()) {
                    return Ok(());
                }
                match self.cohort_member(actor, permission, &record) {
                    Ok(()) => {
                        picked += 1;
                        cohort.members.push(Member {
                            group: group.clone(),
                            expected: record.password.map(|p| p.hash),
                            user: record.user,
                        });
                    }
                    Err(reason) => *cohort.skipped.entry(reason).or_default() += 1,
                }
                Ok(())
            })?;
            let name = group.clone();
            cohort.per_group.push(GroupCount { name, picked });
        }
        Ok(cohort)
    }

    /// The group picker: the groups of `query.site` (searchable by name prefix, paged), each
    /// with its members and how many of them a regeneration would give a new temporary
    /// password. Needs [`Permission::ViewUsers`].
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); store errors.
    pub fn cohort_groups(
        &self,
        actor: &UserId,
        query: &GroupQuery,
    ) -> Result<Page<GroupChoice>, Error> {
        let action = AuditAction::UsersViewed;
        let actor = self.authorize(actor, Permission::ViewUsers, action, &query.site, None)?;
        let page = self.store.list_groups(query)?;
        let mut items = Vec::with_capacity(page.items.len());
        for group in page.items {
            let name = std::slice::from_ref(&group.name);
            let permission = Permission::BulkRegenerate;
            let cohort = self.cohort(&actor.user, permission, &query.site, name)?;
            let unclaimed = cohort.members.len() as u64;
            let (name, members) = (group.name, group.members);
            items.push(GroupChoice {
                name,
                members,
                unclaimed,
            });
        }
        Ok(Page::new(items, page.total))
    }

    /// The unclaimed list: the users of role `user` in `query.site`, not SSO-linked, who have
    /// not claimed their account ([`UserRecord::is_unclaimed`]), searchable and paged with
    /// every filter of [`UserQuery`] (its `unclaimed_only`, `role` and `sso_linked` are set
    /// here). Each row carries the
    /// temporary password's expiry and batch ([`UserSummary::temporary`]) and whether it can
    /// be revealed. Needs [`Permission::ViewUsers`].
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); store errors.
    pub fn unclaimed_users(
        &self,
        actor: &UserId,
        query: &UserQuery,
    ) -> Result<Page<UnclaimedUser>, Error> {
        let (permission, action) = (Permission::ViewUsers, AuditAction::UsersViewed);
        let actor = self.authorize(actor, permission, action, &query.site, None)?;
        let may_reveal = self
            .permissions
            .authorize(
                &actor.user,
                Permission::RevealTemporaryPassword,
                &query.site,
                None,
            )
            .is_ok();
        let mut query = query.clone();
        query.unclaimed_only = true;
        query.role = Some(Role::User);
        query.sso_linked = Some(false);
        query.status = Some(UserStatus::Active);
        let page = self.store.search_users(&query)?;
        let items = (page.items.into_iter())
            .map(|record| UnclaimedUser {
                revealable: may_reveal && self.revealable(&record),
                summary: UserSummary::from(record),
            })
            .collect();
        Ok(Page::new(items, page.total))
    }

    /// SIMS's alternative to printed passwords: sends a password-reset link to every cohort
    /// member of `groups` with a verified email, and returns the members without one so the
    /// administrator can print temporary passwords for them instead. Each link is audited as
    /// `password_reset_sent`, and the run as a whole too. Needs
    /// [`Permission::SendPasswordReset`].
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); store and delivery errors (links sent before a
    /// delivery failure stay sent and audited).
    pub fn send_group_password_resets(
        &self,
        actor: &UserId,
        site: &SiteId,
        groups: &[String],
    ) -> Result<GroupResets, Error> {
        let _span = tracing::info_span!("keyward.send_group_password_resets").entered();
        let (permission, action) = (
            Permission::SendPasswordReset,
            AuditAction::PasswordResetSent,
        );
        let actor_record = self.authorize(actor, permission, action, site, None)?;
        let cohort = self.cohort(&actor_record.user, permission, site, groups)?;
        let mut resets = GroupResets {
            sent: Vec::new(),
            without_email: Vec::new(),
            skipped: cohort.skipped,
        };
        for member in cohort.members {
            match self.send_reset(&member.user, Some(actor))? {
                Some(receipt) => resets.sent.push((member.user.id, receipt)),
                None => {
                    if let Some(record) = self.store.get_user(&member.user.id)? {
                        resets.without_email.push(UserSummary::from(record));
                    }
                }
            }
        }
        let details = format!(
            "groups={groups:?}; sent={}; without_email={}",
            resets.sent.len(),
            resets.without_email.len()
        );
        let event = self.event(action, AuditOutcome::Succeeded, Some(actor), None, site);
        self.audit(event.with_details(details))?;
        Ok(resets)
    }
}
