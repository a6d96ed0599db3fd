//! Administrator and moderator operations, each checked against
//! [`Permissions`](crate::permission::Permissions) and the actor's sites, and each audited —
//! also when refused, in which case nothing changes.
//!
//! This file holds the operations on one user (search, audit trail, temporary passwords,
//! lock and unlock, authenticator reset) and the audited permission check every admin action
//! goes through; `admin/bulk.rs` holds bulk regeneration and `admin/report.rs` its printable
//! list, `admin/break_glass.rs` the recovery of a site whose administrators are locked out.

use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditQuery};
use crate::error::Error;
use crate::lockout::{LockEvent, LockState};
use crate::notify::{DeliveryReceipt, Message, MessageKind, Recipient};
use crate::permission::{DenyReason, Permission, PermissionDenied};
use crate::policy::PolicyViolation;
use crate::secret::TemporaryPassword;
use crate::service::{Keyward, stored};
use crate::store::{LockCounter, MAX_PAGE, OneTimeKind, Page, Swap, UserQuery, UserRecord, ops};
use crate::user::{Role, SiteId, TemporaryInfo, TemporaryMode, TotpState, User, UserId};

mod break_glass;
mod bulk;
mod cohort;
mod escrow;
pub(crate) mod lifecycle;
pub mod report;
mod retention;
mod session;

pub use bulk::{CancelToken, Progress, Regenerated, RegenerationOptions, RegenerationPreview};
pub use cohort::{GroupChoice, GroupCount, GroupResets, SkipCounts, SkipReason, UnclaimedUser};
pub use lifecycle::ProfileChange;
pub use report::{PrintableList, PrintableRow};
pub use retention::Archived;
pub use session::Acting;

/// A user as an admin screen shows it: the profile, what kind of credentials the user holds
/// and the lock state — and no credential material (no hashes, secrets or codes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserSummary {
    /// The profile.
    pub user: User,
    /// Whether the user has a password (permanent or temporary).
    pub has_password: bool,
    /// The temporary password's details (mode, expiry, issuer, batch), if the password is
    /// temporary.
    pub temporary: Option<TemporaryInfo>,
    /// Whether the user must give a PIN.
    pub has_pin: bool,
    /// Whether an authenticator is enrolled.
    pub totp_enabled: bool,
    /// Whether an authenticator reset awaits device authorization.
    pub totp_reset_pending: bool,
    /// Recovery codes the user has not used yet (0 without an authenticator).
    pub recovery_codes_remaining: usize,
    /// Password failures and lock.
    pub password_lock: LockState,
    /// TOTP failures and lock.
    pub totp_lock: LockState,
}

impl From<UserRecord> for UserSummary {
    fn from(record: UserRecord) -> Self {
        let temporary = record.password.as_ref().and_then(|p| p.temporary.clone());
        Self {
            has_password: record.password.is_some(),
            // The escrowed copy is credential material: it stays in the store.
            temporary: temporary.map(|t| TemporaryInfo { escrow: None, ..t }),
            has_pin: record.pin.is_some(),
            totp_enabled: record.totp.secret.is_some(),
            totp_reset_pending: record.totp.reset_pending,
            recovery_codes_remaining: record.totp.recovery_codes.len(),
            password_lock: record.password_lock,
            totp_lock: record.totp_lock,
            user: record.user,
        }
    }
}

/// How a temporary password is issued.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct IssueOptions {
    /// Single-use or admin-managed; `None` takes the user type's policy.
    pub mode: Option<TemporaryMode>,
    /// A password the administrator typed; `None` generates one (the default).
    pub chosen: Option<TemporaryPassword>,
    /// Deliver it to the user's verified contact instead of showing it to the administrator.
    pub deliver: Option<Channel>,
    /// An expiry the administrator sets instead of the policy's lifetime (LockSelf's optional
    /// expiration date); it must lie in the future, and at most
    /// [`MAX_TEMPORARY_LIFETIME_DAYS`](crate::policy::MAX_TEMPORARY_LIFETIME_DAYS) away.
    pub expires_at: Option<OffsetDateTime>,
}

impl IssueOptions {
    /// Generate, per the policy's mode, and show it to the administrator.
    #[must_use]
    pub fn generated() -> Self {
        Self::default()
    }

    /// Sets the mode.
    #[must_use]
    pub fn mode(mut self, mode: TemporaryMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Uses a password the administrator chose (only where the policy allows it).
    #[must_use]
    pub fn chosen(mut self, password: TemporaryPassword) -> Self {
        self.chosen = Some(password);
        self
    }

    /// Delivers it through the notifier.
    #[must_use]
    pub fn deliver(mut self, channel: Channel) -> Self {
        self.deliver = Some(channel);
        self
    }

    /// Expires it at `at` instead of after the policy's lifetime.
    #[must_use]
    pub fn expires_at(mut self, at: OffsetDateTime) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// A delivery channel: for a temporary password, and the contact detail (email address or
/// phone number) a lifecycle operation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Channel {
    /// The user's verified email.
    Email,
    /// The user's verified phone, by SMS.
    Sms,
}

/// A temporary password just issued.
#[derive(Debug)]
#[non_exhaustive]
pub struct IssuedTemporaryPassword {
    /// The password, to show the administrator once; `None` when it was delivered to the
    /// user directly.
    pub password: Option<TemporaryPassword>,
    /// Single-use or admin-managed.
    pub mode: TemporaryMode,
    /// When it stops working.
    pub expires_at: OffsetDateTime,
    /// Entropy in bits of a generated password; `None` for a chosen one.
    pub entropy_bits: Option<f64>,
    /// The notifier's confirmation, when delivered.
    pub receipt: Option<DeliveryReceipt>,
}

impl Keyward {
    /// Loads the actor and checks `permission` in `site` (on `target`, if any); a refusal is
    /// audited and returned as [`Error::PermissionDenied`]. Returns the actor's record.
    pub(crate) fn authorize(
        &self,
        actor: &UserId,
        permission: Permission,
        action: AuditAction,
        site: &SiteId,
        target: Option<&User>,
    ) -> Result<UserRecord, Error> {
        let actor_record = self.load(actor)?;
        self.require(&actor_record.user, permission, action, site, target)?;
        Ok(actor_record)
    }

    /// [`authorize`](Self::authorize) for an actor already loaded.
    pub(crate) fn require(
        &self,
        actor: &User,
        permission: Permission,
        action: AuditAction,
        site: &SiteId,
        target: Option<&User>,
    ) -> Result<(), Error> {
        let Err(denied) = self.permissions.authorize(actor, permission, site, target) else {
            return Ok(());
        };
        let target = target.map(|t| &t.id);
        let event = self.event(action, AuditOutcome::Denied, Some(&actor.id), target, site);
        let event = event.with_reason(denied.reason.as_str());
        self.audit(event.with_details(permission.as_str()))?;
        Err(denied.into())
    }

    /// An administrator's successful action on `target`, happening now.
    pub(crate) fn admin_event(
        &self,
        actor: &UserId,
        action: AuditAction,
        target: &UserId,
        site: &SiteId,
        details: Option<String>,
    ) -> AuditEvent {
        let mut event = self.event(
            action,
            AuditOutcome::Succeeded,
            Some(actor),
            Some(target),
            site,
        );
        event.details = details;
        event
    }

    /// A change clearing `counters` of `user` as an unlock by `by` does (for
    /// [`change_with_events`](Self::change_with_events)).
    pub(crate) fn unlocking(
        &self,
        user: &User,
        by: &UserId,
        counters: &[LockCounter],
    ) -> impl FnMut(&mut UserRecord) -> bool + Send + use<> {
        let now = self.now();
        let event = LockEvent::Unlock { by: by.clone() };
        let rules: Vec<_> = counters
            .iter()
            .map(|&c| (c, self.lockout_rule(user, c)))
            .collect();
        move |r: &mut UserRecord| {
            for (counter, rule) in &rules {
                let _ = ops::apply_lock_event_to(r, *counter, rule, &event, now);
            }
            true
        }
    }

    pub(crate) fn audit_admin(
        &self,
        actor: &UserId,
        action: AuditAction,
        target: Option<&UserId>,
        site: &SiteId,
        details: Option<String>,
    ) -> Result<(), Error> {
        let mut event = self.event(action, AuditOutcome::Succeeded, Some(actor), target, site);
        event.details = details;
        self.audit(event)
    }

    /// Calls `f` with every user `query` matches, page by page (its paging is ignored).
    pub(crate) fn each_user(
        &self,
        query: UserQuery,
        mut f: impl FnMut(UserRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut offset = 0u64;
        loop {
            let page = self
                .store
                .search_users(&query.clone().page(offset, MAX_PAGE))?;
            let count = page.items.len() as u64;
            page.items.into_iter().try_for_each(&mut f)?;
            offset += count;
            if count == 0 || offset >= page.total {
                return Ok(());
            }
        }
    }

    /// The staff of `site` whom `actor` may not see under the rank rules of
    /// [`Permissions::authorize`](crate::permission::Permissions::authorize) (a moderator never
    /// sees an administrator; nobody sees a peer who manages a site they do not): left out of
    /// searches, counts and audit trails.
    fn hidden_from(&self, actor: &User, site: &SiteId) -> Result<Vec<UserId>, Error> {
        let mut hidden = Vec::new();
        for role in [Role::Moderator, Role::Administrator] {
            let staff = UserQuery::new(site.clone(), self.now()).role(role);
            self.each_user(staff, |record| {
                let viewable = (self.permissions)
                    .authorize(actor, Permission::ViewUsers, site, Some(&record.user))
                    .is_ok();
                if !viewable {
                    hidden.push(record.user.id);
                }
                Ok(())
            })?;
        }
        Ok(hidden)
    }

    /// Searches users of a site for an admin screen (needs [`Permission::ViewUsers`]). The
    /// results carry no credential material: no hashes, no TOTP secrets, no codes. Users the
    /// actor may not act on for their rank (administrators for a moderator, peers who manage
    /// more sites) are left out of the page and the total.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); store errors.
    pub fn search_users(
        &self,
        actor: &UserId,
        query: &UserQuery,
    ) -> Result<Page<UserSummary>, Error> {
        let _span = tracing::info_span!("keyward.search_users").entered();
        let actor = self.authorize(
            actor,
            Permission::ViewUsers,
            AuditAction::UsersViewed,
            &query.site,
            None,
        )?;
        let mut query = query.clone();
        query
            .excluded
            .extend(self.hidden_from(&actor.user, &query.site)?);
        let page = self.store.search_users(&query)?;
        let items = page.items.into_iter().map(UserSummary::from).collect();
        Ok(Page::new(items, page.total))
    }

    /// Looks a user up by username, as an admin screen would (the user typed in a search box):
    /// [`Permission::ViewUsers`] in `site`, and the target within the actor's rank. A user the
    /// actor may not see answers as an unknown one, so the lookup tells nothing the search
    /// would not.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] when the actor may not view users in `site` (audited);
    /// [`Error::UsernameNotFound`]; store errors.
    pub fn lookup_user(
        &self,
        actor: &UserId,
        site: &SiteId,
        username: &str,
    ) -> Result<UserSummary, Error> {
        let _span = tracing::info_span!("keyward.lookup_user").entered();
        let (permission, action) = (Permission::ViewUsers, AuditAction::UsersViewed);
        let actor = self.authorize(actor, permission, action, site, None)?;
        let not_found = || Error::UsernameNotFound { site: site.clone() };
        let record = self
            .store
            .find_user(site, username)?
            .ok_or_else(not_found)?;
        let visible = record.user.id == actor.user.id
            || (self.permissions)
                .authorize(&actor.user, permission, site, Some(&record.user))
                .is_ok();
        if !visible {
            return Err(not_found());
        }
        Ok(record.into())
    }

    /// A user by id: oneself always, anyone else with [`Permission::ViewUsers`] in their site
    /// and within the actor's rank (a refusal is audited).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::UserNotFound`]; store errors.
    pub fn user_summary(&self, actor: &UserId, user: &UserId) -> Result<UserSummary, Error> {
        let record = self.load(user)?;
        if actor != user {
            let (permission, action) = (Permission::ViewUsers, AuditAction::UsersViewed);
            let site = &record.user.site;
            self.authorize(actor, permission, action, site, Some(&record.user))?;
        }
        Ok(record.into())
    }

    /// Reads the audit trail. Every user may read their own events (`query.user` set to
    /// themself: a profile page); anything else needs [`Permission::ViewUsers`] and
    /// `query.site` set to a site the actor manages.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; store errors.
    pub fn audit_trail(
        &self,
        actor: &UserId,
        query: &AuditQuery,
    ) -> Result<Page<AuditEvent>, Error> {
        let _span = tracing::info_span!("keyward.audit_trail").entered();
        if query.user.as_ref() != Some(actor) {
            let Some(site) = &query.site else {
                let actor_site = self.load(actor)?.user.site;
                let denied = PermissionDenied {
                    permission: Permission::ViewUsers,
                    reason: DenyReason::OtherSite,
                };
                let (action, outcome) = (AuditAction::UsersViewed, AuditOutcome::Denied);
                let target = query.user.as_ref();
                let event = self.event(action, outcome, Some(actor), target, &actor_site);
                let event = event.with_reason(denied.reason.as_str());
                self.audit(event.with_details("an audit query without a site"))?;
                return Err(denied.into());
            };
            let actor_record = self.authorize(
                actor,
                Permission::ViewUsers,
                AuditAction::UsersViewed,
                site,
                None,
            )?;
            let hidden = self.hidden_from(&actor_record.user, site)?;
            if let Some(user) = query.user.as_ref().filter(|u| hidden.contains(u)) {
                // The trail of someone the actor may not see is refused, and audited.
                let reason = DenyReason::TargetOutranksActor;
                let (action, outcome) = (AuditAction::UsersViewed, AuditOutcome::Denied);
                let event = self.event(action, outcome, Some(actor), Some(user), site);
                self.audit(event.with_reason(reason.as_str()))?;
                let permission = Permission::ViewUsers;
                return Err(PermissionDenied { permission, reason }.into());
            }
            let mut query = query.clone();
            query.excluded.extend(hidden);
            return Ok(self.store.query_audit(&query)?);
        }
        Ok(self.store.query_audit(query)?)
    }

    /// Gives `target` a temporary password: generated by default from the user type's policy,
    /// or chosen by the administrator where the policy allows it (then checked against the
    /// policy and the common-password list). It replaces the user's password; for an
    /// SSO-linked user it turns standard login on until it expires or is removed.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::Policy`] for a refused chosen password;
    /// [`Error::NoVerifiedContact`] when delivery was asked for and the contact is missing
    /// or unverified; store, hashing and delivery errors.
    pub fn issue_temporary_password(
        &self,
        actor: &UserId,
        target: &UserId,
        options: IssueOptions,
    ) -> Result<IssuedTemporaryPassword, Error> {
        let _span = tracing::info_span!("keyward.issue_temporary_password").entered();
        let record = self.load(target)?;
        let site = &record.user.site;
        let permission = if record.unconsumed_temporary().is_some() {
            Permission::ChangeTemporaryPassword
        } else {
            Permission::CreateTemporaryPassword
        };
        let action = AuditAction::TemporaryPasswordSet;
        let actor_record = self.authorize(actor, permission, action, site, Some(&record.user))?;
        if options.deliver.is_some() {
            let (permission, action) = (
                Permission::SendTemporaryPassword,
                AuditAction::TemporaryPasswordSent,
            );
            self.require(
                &actor_record.user,
                permission,
                action,
                site,
                Some(&record.user),
            )?;
        }
        let user = &record.user;
        let refuse = |error: Error, reason: &str| -> Result<IssuedTemporaryPassword, Error> {
            let (action, outcome) = (AuditAction::TemporaryPasswordSet, AuditOutcome::Denied);
            let event = self.event(action, outcome, Some(actor), Some(target), &user.site);
            self.audit(event.with_reason(reason))?;
            Err(error)
        };
        let rules = self.temporary.temporary_rules(user);
        let recipient = match options.deliver {
            None => None,
            Some(Channel::Email) => match (&user.email, user.email_verified) {
                (Some(email), true) => Some(Recipient::Email(email.clone())),
                _ => {
                    let error = Error::NoVerifiedContact { channel: "email" };
                    return refuse(error, "no_verified_email");
                }
            },
            Some(Channel::Sms) => match (&user.phone, user.phone_verified) {
                (Some(phone), true) => Some(Recipient::Sms(phone.clone())),
                _ => {
                    let error = Error::NoVerifiedContact { channel: "phone" };
                    return refuse(error, "no_verified_phone");
                }
            },
        };
        let (password, entropy_bits) = match options.chosen {
            Some(chosen) => {
                if !rules.allow_chosen {
                    return refuse(
                        PolicyViolation::ChosenNotAllowed.into(),
                        "chosen_not_allowed",
                    );
                }
                if let Err(violation) = rules.chosen_rules.check(&chosen.to_password(), user) {
                    return refuse(violation.into(), "chosen_password_refused");
                }
                (chosen, None)
            }
            None => {
                let generated = rules.generate();
                (generated.password, Some(generated.entropy_bits))
            }
        };
        let now = self.now();
        if options.expires_at.is_some_and(|at| at <= now) {
            return refuse(
                PolicyViolation::ExpiryInThePast.into(),
                "expiry_in_the_past",
            );
        }
        let max_days = crate::policy::MAX_TEMPORARY_LIFETIME_DAYS;
        if options
            .expires_at
            .is_some_and(|at| at > now + time::Duration::days(max_days))
        {
            return refuse(
                PolicyViolation::ExpiryTooFar { max_days }.into(),
                "expiry_too_far",
            );
        }
        let mode = options.mode.unwrap_or(rules.mode);
        let hash = self.hasher.hash(&password.to_password())?;
        let mut credential = rules.issue(stored(&hash), now, mode, actor.clone(), None);
        if let (Some(at), Some(temporary)) = (options.expires_at, credential.temporary.as_mut()) {
            temporary.expires_at = at;
        }
        self.escrow(&mut credential, &password, target)?;
        let expires_at = credential.temporary.as_ref().map_or(now, |t| t.expires_at);
        // Deliver first: if delivery fails, the user keeps the password they had.
        let (shown, receipt) = match recipient {
            None => (Some(password), None),
            Some(to) => {
                let kind = MessageKind::TemporaryPassword;
                let message = Message::new(to, kind, password.expose_secret(), expires_at, user);
                (None, Some(self.notifier.send(message)?))
            }
        };
        // Replace exactly what the permission check saw (Create or Change), together with the
        // events recording it.
        let details = format!("mode={}; expires_at={expires_at}", mode.as_str());
        let action = AuditAction::TemporaryPasswordSet;
        let mut events = vec![self.admin_event(actor, action, target, &user.site, Some(details))];
        if let Some(sent) = &receipt {
            let details = format!("sent to {}", sent.to);
            let action = AuditAction::TemporaryPasswordSent;
            events.push(self.admin_event(actor, action, target, &user.site, Some(details)));
        }
        let seen = record.password.as_ref().map(|p| p.hash.clone());
        let set = self.change_with_events(target, events, |r| {
            ops::swap_password(r, seen.as_ref(), Some(&credential)) == Swap::Swapped
        })?;
        if !set {
            return Err(Error::ChangedMeanwhile { what: "password" });
        }
        Ok(IssuedTemporaryPassword {
            password: shown,
            mode,
            expires_at,
            entropy_bits,
            receipt,
        })
    }

    /// Removes a user's temporary password; standard login is off again until a new
    /// password is set.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::NoTemporaryPassword`] when the user's password
    /// is not temporary; store errors.
    pub fn remove_temporary_password(&self, actor: &UserId, target: &UserId) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.remove_temporary_password").entered();
        let record = self.load(target)?;
        let site = &record.user.site;
        let action = AuditAction::TemporaryPasswordRemoved;
        let permission = Permission::RemoveTemporaryPassword;
        self.authorize(actor, permission, action, site, Some(&record.user))?;
        let temporary = record.password.as_ref().filter(|p| p.temporary.is_some());
        let Some(temporary) = temporary else {
            return Err(Error::NoTemporaryPassword {
                user: target.clone(),
            });
        };
        // Only the temporary password seen here is removed: a password the user set in the
        // meantime stays. The removal and its event commit together.
        let expected = temporary.hash.clone();
        let event = self.admin_event(actor, action, target, site, None);
        let removed = self.change_with_events(target, vec![event], |r| {
            ops::swap_password(r, Some(&expected), None) == Swap::Swapped
        })?;
        if !removed {
            return Err(Error::ChangedMeanwhile { what: "password" });
        }
        Ok(())
    }

    /// Unlocks an account: both the password and the TOTP counters are cleared, and the
    /// unlocking administrator is recorded.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; store errors.
    pub fn unlock(&self, actor: &UserId, target: &UserId) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.unlock").entered();
        let record = self.load(target)?;
        let site = &record.user.site;
        self.authorize(
            actor,
            Permission::Unlock,
            AuditAction::Unlocked,
            site,
            Some(&record.user),
        )?;
        let event = self.admin_event(actor, AuditAction::Unlocked, target, site, None);
        let unlock = self.unlocking(
            &record.user,
            actor,
            &[LockCounter::Password, LockCounter::Totp],
        );
        self.change_with_events(target, vec![event], unlock)?;
        Ok(())
    }

    /// Locks an account by hand (until an administrator unlocks it), with a reason recorded
    /// in the audit trail. Sign-ins are refused as locked from now on, pending reset links
    /// and device codes are withdrawn, and no self-service path (a password reset) lifts
    /// the lock; the TOTP counter is left alone (a locked password stops every sign-in).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (locking is part of [`Permission::Unlock`]);
    /// [`Error::InvalidUser`] for an empty reason, one over 500 characters or one with
    /// control characters; store errors.
    pub fn lock_user(&self, actor: &UserId, target: &UserId, reason: &str) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.lock_user").entered();
        let record = self.load(target)?;
        let site = &record.user.site;
        let (permission, action) = (Permission::Unlock, AuditAction::Locked);
        self.authorize(actor, permission, action, site, Some(&record.user))?;
        let reason = lifecycle::checked_reason(reason)?;
        let counter = LockCounter::Password;
        let rule = self.lockout_rule(&record.user, counter);
        let now = self.now();
        let event = self.admin_event(actor, action, target, site, None);
        let event = event.with_reason(reason);
        self.change_with_events(target, vec![event], |r| {
            let _ = ops::apply_lock_event_to(r, counter, &rule, &LockEvent::Lock, now);
            // Codes already sent would let the user around the lock: they go.
            for kind in [OneTimeKind::ResetToken, OneTimeKind::DeviceCode] {
                *ops::one_time_slot(r, kind) = None;
            }
            true
        })?;
        Ok(())
    }

    /// Resets a user's authenticator: the secret is cleared and the user is marked
    /// reset-pending, so the next sign-in asks for an emailed device-authorization code and
    /// then a new enrollment. The TOTP lock is cleared too.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; store errors.
    pub fn reset_totp(&self, actor: &UserId, target: &UserId) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.reset_totp").entered();
        let record = self.load(target)?;
        let site = &record.user.site;
        let action = AuditAction::TotpReset;
        self.authorize(
            actor,
            Permission::ResetTotp,
            action,
            site,
            Some(&record.user),
        )?;
        let note = (!record.user.email_verified || record.user.email.is_none())
            .then(|| "user has no verified email: device authorization will be refused".to_owned());
        let event = self.admin_event(actor, action, target, site, note);
        let mut unlock = self.unlocking(&record.user, actor, &[LockCounter::Totp]);
        self.change_with_events(target, vec![event], |r| {
            r.totp = TotpState {
                reset_pending: true,
                ..TotpState::default()
            };
            unlock(r)
        })?;
        Ok(())
    }
}
