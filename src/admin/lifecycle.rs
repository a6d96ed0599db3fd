//! The user lifecycle for administrators: profile changes, contact details, disabling and
//! enabling, role and managed sites, the PIN, deletion.
//!
//! Every operation here needs [`Permission::ManageUsers`] in the target's site and follows
//! the rank rules of [`Permissions::authorize`](crate::permission::Permissions::authorize)
//! twice: on the target as it is, and on the target as the change would leave it (so nobody
//! makes someone more powerful than themselves). The change is decided again on the record
//! read inside the write, which must still be as the checks saw it, and commits with its
//! audit event in one transaction ([`UserStore::change_profile_recorded`],
//! [`UserStore::delete_recorded`]). Refusals are audited.
//!
//! [`UserStore::change_profile_recorded`]: crate::store::UserStore::change_profile_recorded
//! [`UserStore::delete_recorded`]: crate::store::UserStore::delete_recorded

use time::Date;

use super::Channel;
use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::error::Error;
use crate::lockout;
use crate::permission::{DenyReason, Permission, PermissionDenied};
use crate::secret::{Password, Pin};
use crate::service::{Keyward, Pins, stored};
use crate::store::{OneTimeKind, UserRecord, ops};
use crate::user::{InvalidField, PinCredential, Role, SiteId, User, UserId, UserStatus};

/// A change to a user's profile for [`Keyward::update_user`]: each field left `None` stays
/// as it is. Contact details change through [`Keyward::set_contact`] (they must be verified
/// again), the role through [`Keyward::set_role`], the status through
/// [`Keyward::disable_user`] and [`Keyward::enable_user`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileChange {
    /// A new username (unique and unconfusable in the site, as at creation).
    pub username: Option<String>,
    /// A new given name.
    pub forename: Option<String>,
    /// A new family name.
    pub surname: Option<String>,
    /// A new date of birth, or `Some(None)` to remove it.
    pub date_of_birth: Option<Option<Date>>,
    /// A new user type (which selects the password policy).
    pub user_type: Option<String>,
    /// The new groups, replacing the old ones.
    pub groups: Option<Vec<String>>,
    /// Whether the user signs in through the organisation's directory.
    pub sso_linked: Option<bool>,
}

impl ProfileChange {
    /// No change yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Renames the user.
    #[must_use]
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the given name.
    #[must_use]
    pub fn forename(mut self, forename: impl Into<String>) -> Self {
        self.forename = Some(forename.into());
        self
    }

    /// Sets the family name.
    #[must_use]
    pub fn surname(mut self, surname: impl Into<String>) -> Self {
        self.surname = Some(surname.into());
        self
    }

    /// Sets or removes the date of birth.
    #[must_use]
    pub fn date_of_birth(mut self, date: Option<Date>) -> Self {
        self.date_of_birth = Some(date);
        self
    }

    /// Sets the user type.
    #[must_use]
    pub fn user_type(mut self, user_type: impl Into<String>) -> Self {
        self.user_type = Some(user_type.into());
        self
    }

    /// Replaces the groups.
    #[must_use]
    pub fn groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = Some(groups.into_iter().map(Into::into).collect());
        self
    }

    /// Links or unlinks the directory (SSO) sign-in.
    #[must_use]
    pub fn sso_linked(mut self, linked: bool) -> Self {
        self.sso_linked = Some(linked);
        self
    }

    /// Applies the change to `user`; returns the names of the fields that changed.
    fn apply(&self, user: &mut User) -> Vec<&'static str> {
        let mut changed = Vec::new();
        let mut set = |field: &'static str, differs: bool| {
            if differs {
                changed.push(field);
            }
        };
        if let Some(v) = &self.username {
            set("username", *v != user.username);
            user.username.clone_from(v);
        }
        if let Some(v) = &self.forename {
            set("forename", *v != user.forename);
            user.forename.clone_from(v);
        }
        if let Some(v) = &self.surname {
            set("surname", *v != user.surname);
            user.surname.clone_from(v);
        }
        if let Some(v) = self.date_of_birth {
            set("date_of_birth", v != user.date_of_birth);
            user.date_of_birth = v;
        }
        if let Some(v) = &self.user_type {
            set("user_type", *v != user.user_type);
            user.user_type.clone_from(v);
        }
        if let Some(v) = &self.groups {
            set("groups", *v != user.groups);
            user.groups.clone_from(v);
        }
        if let Some(v) = self.sso_linked {
            set("sso_linked", v != user.sso_linked);
            user.sso_linked = v;
        }
        changed
    }
}

/// What an administrator's change does to the account beyond the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Also {
    /// Nothing.
    Nothing,
    /// Disabling: every code in flight is withdrawn (reset link, device code, contact code),
    /// since a disabled account must not be reachable through one, and the password counter
    /// starts a new epoch ([`lockout::new_epoch`]), so that the sessions of before stay
    /// stale once the account is enabled again.
    Disabling,
    /// A new address on this channel: the codes that went to the old one are withdrawn (the
    /// contact code; for an email also the reset link and the device code).
    NewContact(Channel),
}

/// One administrator's change to one user's profile, as [`Keyward::change_user`] commits it.
struct UserChange<'a> {
    action: AuditAction,
    /// The user as the change leaves them.
    next: User,
    details: Option<String>,
    reason: Option<&'a str>,
    also: Also,
}

impl Keyward {
    /// Changes a user's profile: names, username, date of birth, user type, groups, SSO link.
    /// Audited as `user_updated` with the names of the fields that changed (never their
    /// values); a change that changes nothing records nothing. Returns the user as stored.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); [`Error::InvalidUser`] for a field the profile
    /// rules refuse ([`User::validate`]); [`Error::Store`] with
    /// [`StoreError::Conflict`](crate::StoreError::Conflict) for a username taken or
    /// confusable; [`Error::ChangedMeanwhile`] when the user changed since it was read;
    /// store errors.
    pub fn update_user(
        &self,
        actor: &UserId,
        target: &UserId,
        change: &ProfileChange,
    ) -> Result<User, Error> {
        let _span = tracing::info_span!("keyward.update_user").entered();
        let (actor, record) = self.lifecycle_parties(actor, target, AuditAction::UserUpdated)?;
        let mut next = record.user.clone();
        let changed = change.apply(&mut next);
        if changed.is_empty() {
            return Ok(record.user);
        }
        let details = Some(format!("changed: {}", changed.join(", ")));
        self.change_user(
            &actor,
            &record,
            UserChange {
                action: AuditAction::UserUpdated,
                next,
                details,
                reason: None,
                also: Also::Nothing,
            },
        )
    }

    /// Sets, changes or removes a user's email address (`Channel::Email`) or phone number
    /// (`Channel::Sms`). A new value is unverified until the user types back the code
    /// [`send_contact_code`](Self::send_contact_code) sends to it; a code already sent to
    /// the old value is withdrawn. Setting the value the user already has changes nothing.
    /// Audited as `contact_changed` naming the channel (not the value).
    ///
    /// # Errors
    /// As [`update_user`](Self::update_user).
    pub fn set_contact(
        &self,
        actor: &UserId,
        target: &UserId,
        channel: Channel,
        value: Option<&str>,
    ) -> Result<User, Error> {
        let _span = tracing::info_span!("keyward.set_contact").entered();
        let action = AuditAction::ContactChanged;
        let (actor, record) = self.lifecycle_parties(actor, target, action)?;
        // One's own address is where reset links go: that change takes a step-up
        // (`change_own_contact`), which an administrator's session alone must not skip.
        self.refuse_own_account(&actor, &record, action)?;
        let mut next = record.user.clone();
        if !set_contact_of(&mut next, channel, value) {
            return Ok(record.user);
        }
        self.change_user(
            &actor,
            &record,
            UserChange {
                action,
                next,
                details: Some(format!("channel={}", channel_name(channel))),
                reason: None,
                also: Also::NewContact(channel),
            },
        )
    }

    /// Disables an account, with a reason for the audit trail: every sign-in is refused from
    /// now on, every session's stamp goes stale
    /// ([`check_session`](Self::check_session)), and reset links, device codes and contact
    /// codes in flight are withdrawn. Nobody disables their own account. Disabling a
    /// disabled account changes nothing.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited; also for one's own account);
    /// [`Error::InvalidUser`] for an empty reason, one over 500 characters or one with
    /// control characters; [`Error::ChangedMeanwhile`]; store errors.
    pub fn disable_user(&self, actor: &UserId, target: &UserId, reason: &str) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.disable_user").entered();
        let reason = checked_reason(reason)?;
        self.set_status(actor, target, UserStatus::Disabled, Some(reason))
    }

    /// Enables a disabled account again. Its credentials are as they were; sessions from
    /// before the account was disabled stay stale. Enabling an active account changes
    /// nothing.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); [`Error::ChangedMeanwhile`]; store errors.
    pub fn enable_user(&self, actor: &UserId, target: &UserId) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.enable_user").entered();
        self.set_status(actor, target, UserStatus::Active, None)
    }

    /// Disables (refused on one's own account, with its codes and sessions ended) or enables
    /// an account; nothing when it already has that status.
    fn set_status(
        &self,
        actor: &UserId,
        target: &UserId,
        status: UserStatus,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        let (action, also) = match status {
            UserStatus::Disabled => (AuditAction::UserDisabled, Also::Disabling),
            _ => (AuditAction::UserEnabled, Also::Nothing),
        };
        let (actor, record) = self.lifecycle_parties(actor, target, action)?;
        if also == Also::Disabling {
            self.refuse_own_account(&actor, &record, action)?;
        }
        if record.user.status == status {
            return Ok(());
        }
        let mut next = record.user.clone();
        next.status = status;
        let change = UserChange {
            action,
            next,
            details: None,
            reason,
            also,
        };
        self.change_user(&actor, &record, change).map(drop)
    }

    /// Changes a user's role and the further sites they manage. The actor must be allowed to
    /// act on the user both before and after (a moderator never makes an administrator, and
    /// nobody hands out a site they do not manage themselves); only administrators and
    /// moderators manage further sites; nobody changes their own role. Audited as
    /// `role_changed` with the old and new role and sites.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); [`Error::InvalidUser`] for managed sites given
    /// to a plain user; [`Error::ChangedMeanwhile`]; store errors.
    pub fn set_role(
        &self,
        actor: &UserId,
        target: &UserId,
        role: Role,
        managed_sites: &[SiteId],
    ) -> Result<User, Error> {
        let _span = tracing::info_span!("keyward.set_role").entered();
        let action = AuditAction::RoleChanged;
        let (actor, record) = self.lifecycle_parties(actor, target, action)?;
        self.refuse_own_account(&actor, &record, action)?;
        let mut seen = std::collections::HashSet::new();
        let sites: Vec<SiteId> = (managed_sites.iter())
            .filter(|s| **s != record.user.site && seen.insert(*s))
            .cloned()
            .collect();
        if role == Role::User && !sites.is_empty() {
            let reason = "only administrators and moderators manage further sites";
            return Err(InvalidField {
                field: "managed_sites",
                reason,
            }
            .into());
        }
        let mut next = record.user.clone();
        if next.role == role && next.managed_sites == sites {
            return Ok(record.user);
        }
        next.role = role;
        next.managed_sites = sites;
        let list = |s: &[SiteId]| s.iter().map(SiteId::as_str).collect::<Vec<_>>().join(",");
        let details = format!(
            "from={} [{}]; to={} [{}]",
            record.user.role.as_str(),
            list(&record.user.managed_sites),
            next.role.as_str(),
            list(&next.managed_sites)
        );
        self.change_user(
            &actor,
            &record,
            UserChange {
                action,
                next,
                details: Some(details),
                reason: None,
                also: Also::Nothing,
            },
        )
    }

    /// Sets or removes a user's PIN for them (hashed like a password), as an administrator:
    /// audited as `pin_set` with the administrator as the actor. Users change their own with
    /// [`change_own_pin`](Self::change_own_pin).
    ///
    /// # Errors
    /// [`Error::PinsDisabled`] when the deployment does not use PINs
    /// ([`Pins::Off`]); removing one is always allowed.
    /// [`Error::PermissionDenied`] (audited); store and hashing errors.
    pub fn set_pin(&self, actor: &UserId, target: &UserId, pin: Option<&Pin>) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.set_pin").entered();
        if pin.is_some() && self.pins == Pins::Off {
            return Err(Error::PinsDisabled);
        }
        let action = AuditAction::PinSet;
        let (actor, record) = self.lifecycle_parties(actor, target, action)?;
        // One's own PIN takes the password (`change_own_pin`); a session alone does not do.
        self.refuse_own_account(&actor, &record, action)?;
        let site = record.user.site.clone();
        let event = self.admin_event(&actor.id, action, target, &site, None);
        let permissions = &self.permissions;
        let still = |user: &User| {
            permissions
                .authorize(&actor, Permission::ManageUsers, &site, Some(user))
                .is_ok()
        };
        if !self.write_pin(target, pin, event, still)? {
            return Err(Error::ChangedMeanwhile { what: "user" });
        }
        Ok(())
    }

    /// Hashes `pin` and stores it (or removes the PIN) with `event`, in one transaction, if
    /// `still` holds for the user as the transaction reads them; returns whether it did.
    pub(crate) fn write_pin(
        &self,
        user: &UserId,
        pin: Option<&Pin>,
        event: AuditEvent,
        still: impl Fn(&User) -> bool + Send + Sync,
    ) -> Result<bool, Error> {
        let credential = match pin {
            Some(pin) => {
                let hash = self.hasher.hash(&Password::new(pin.expose_secret()))?;
                Some(PinCredential::new(stored(&hash), self.now()))
            }
            None => None,
        };
        self.change_with_events(user, vec![event], |r| {
            if !still(&r.user) {
                return false;
            }
            r.pin.clone_from(&credential);
            true
        })
    }

    /// Deletes a user: the record, credentials and groups go, the username is free again,
    /// and the audit trail stays readable: the user's past events keep their id, and the
    /// `user_deleted` event records the username and name that id had. Nobody deletes their
    /// own account.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited; also for one's own account);
    /// [`Error::ChangedMeanwhile`] when the user changed since it was read; store errors.
    pub fn delete_user(&self, actor: &UserId, target: &UserId) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.delete_user").entered();
        let action = AuditAction::UserDeleted;
        let (actor, record) = self.lifecycle_parties(actor, target, action)?;
        self.refuse_own_account(&actor, &record, action)?;
        let user = &record.user;
        // Quoted (Rust string escapes), so no name can pose as another field.
        let who = format!(
            "username={:?}; name={:?}; role={}",
            user.username,
            format!("{} {}", user.forename, user.surname).trim(),
            user.role.as_str()
        );
        let event = self.admin_event(&actor.id, action, target, &user.site, Some(who));
        let seen = record.user.clone();
        let permissions = &self.permissions;
        let mut decide = |r: &UserRecord| {
            let allowed = permissions
                .authorize(&actor, Permission::ManageUsers, &seen.site, Some(&r.user))
                .is_ok();
            if allowed && same_profile(&r.user, &seen) {
                vec![event.clone()]
            } else {
                Vec::new()
            }
        };
        if !self.store.delete_recorded(target, &mut decide)? {
            return Err(Error::ChangedMeanwhile { what: "user" });
        }
        crate::audit::trace(&event);
        Ok(())
    }

    /// The actor and the target of a lifecycle operation, after the permission check on the
    /// target as it is (audited when refused).
    fn lifecycle_parties(
        &self,
        actor: &UserId,
        target: &UserId,
        action: AuditAction,
    ) -> Result<(User, UserRecord), Error> {
        let record = self.load(target)?;
        let site = &record.user.site;
        let actor = self.authorize(
            actor,
            Permission::ManageUsers,
            action,
            site,
            Some(&record.user),
        )?;
        Ok((actor.user, record))
    }

    /// Refuses (and audits) an administrator's disabling, deleting or re-ranking their own
    /// account: the last administrator of a site would lock everybody out.
    fn refuse_own_account(
        &self,
        actor: &User,
        record: &UserRecord,
        action: AuditAction,
    ) -> Result<(), Error> {
        if actor.id != record.user.id {
            return Ok(());
        }
        let reason = DenyReason::OwnAccount;
        let (id, site) = (Some(&actor.id), &record.user.site);
        let event = self.event(action, AuditOutcome::Denied, id, id, site);
        let permission = Permission::ManageUsers;
        self.audit(
            event
                .with_reason(reason.as_str())
                .with_details(permission.as_str()),
        )?;
        Err(PermissionDenied { permission, reason }.into())
    }

    /// Commits one administrator's change: the new profile is validated and checked against
    /// the rank rules (the actor must be allowed to act on the user as the change leaves
    /// them), then written with its event, in one transaction, on a record that is still as
    /// it was read and still within the actor's reach.
    fn change_user(
        &self,
        actor: &User,
        record: &UserRecord,
        change: UserChange<'_>,
    ) -> Result<User, Error> {
        change.next.validate()?;
        // The actor as stored right now: a concurrent demotion or disable of the actor wins
        // from here on (the window left is this read to the write; see DESIGN.md).
        let actor = &self.load(&actor.id)?.user;
        let site = &record.user.site;
        self.require(
            actor,
            Permission::ManageUsers,
            change.action,
            site,
            Some(&record.user),
        )?;
        self.require(
            actor,
            Permission::ManageUsers,
            change.action,
            site,
            Some(&change.next),
        )?;
        let target = &record.user.id;
        let mut event = self.admin_event(&actor.id, change.action, target, site, change.details);
        if let Some(reason) = change.reason {
            event = event.with_reason(reason);
        }
        let seen = &record.user;
        let permissions = &self.permissions;
        let mut after = None;
        let mut apply = |r: &mut UserRecord| {
            after = None;
            let allowed = permissions
                .authorize(actor, Permission::ManageUsers, site, Some(&r.user))
                .is_ok();
            if !allowed || !same_profile(&r.user, seen) {
                return Vec::new();
            }
            let last_sign_in_at = r.user.last_sign_in_at;
            r.user = change.next.clone();
            r.user.last_sign_in_at = last_sign_in_at;
            match change.also {
                Also::Nothing => {}
                Also::NewContact(channel) => withdraw_sent_to_old(r, channel),
                Also::Disabling => {
                    for kind in [
                        OneTimeKind::ResetToken,
                        OneTimeKind::DeviceCode,
                        OneTimeKind::ContactCode,
                    ] {
                        *ops::one_time_slot(r, kind) = None;
                    }
                    r.password_lock = lockout::new_epoch(&r.password_lock);
                }
            }
            after = Some(r.user.clone());
            vec![event.clone()]
        };
        self.store.change_profile_recorded(target, &mut apply)?;
        let Some(after) = after else {
            return Err(Error::ChangedMeanwhile { what: "user" });
        };
        crate::audit::trace(&event);
        Ok(after)
    }
}

/// Withdraws the codes sent to the old address of `channel`: the contact code, and for an
/// email the reset link and the device code (a mailbox given up may be someone else's).
pub(crate) fn withdraw_sent_to_old(r: &mut UserRecord, channel: Channel) {
    r.contact_code = None;
    if channel == Channel::Email {
        r.reset_token = None;
        r.totp.device_code = None;
    }
}

/// Whether two profiles are the same but for the last sign-in time (which a sign-in may
/// record at any moment and no administrator's change depends on).
pub(crate) fn same_profile(a: &User, b: &User) -> bool {
    let mut a = a.clone();
    a.last_sign_in_at = b.last_sign_in_at;
    a == *b
}

/// Sets `user`'s address for `channel` to `value`, unverified; `false` when it is already
/// that.
pub(crate) fn set_contact_of(user: &mut User, channel: Channel, value: Option<&str>) -> bool {
    let (slot, verified) = match channel {
        Channel::Email => (&mut user.email, &mut user.email_verified),
        Channel::Sms => (&mut user.phone, &mut user.phone_verified),
    };
    if slot.as_deref() == value {
        return false;
    }
    *slot = value.map(str::to_owned);
    *verified = false;
    true
}

/// The stable name of a contact channel in the audit trail.
pub(crate) fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "phone",
    }
}

/// A reason recorded with an administrator's lock or disable: 1 to 500 characters without
/// control characters, trimmed.
pub(crate) fn checked_reason(reason: &str) -> Result<&str, Error> {
    let trimmed = reason.trim();
    if trimmed.is_empty() || reason.chars().count() > 500 || reason.chars().any(char::is_control) {
        let reason = "must be 1 to 500 characters without control characters";
        return Err(InvalidField {
            field: "reason",
            reason,
        }
        .into());
    }
    Ok(trimmed)
}
