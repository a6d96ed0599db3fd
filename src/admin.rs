//! Administrator and moderator operations, each checked against [`Permissions`] and the
//! actor's sites, and each audited — also when refused, in which case nothing changes.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use time::{Date, OffsetDateTime};
use zeroize::Zeroizing;

use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::error::Error;
use crate::lockout::LockEvent;
use crate::lockout::LockState;
use crate::notify::{DeliveryReceipt, Message, MessageKind, Recipient};
use crate::policy::PolicyViolation;
use crate::secret::{Password, TemporaryPassword};
use crate::service::{FirstFactor, Keyward, PinCheck, stored};
use crate::store::{LockCounter, MAX_PAGE, Page, TemporaryBatch, UserQuery, has_live_temporary};
use crate::user::{
    BatchId, PasswordCredential, Role, SiteId, TemporaryInfo, TemporaryMode, TotpState, User,
    UserId, UserRecord, UserStatus,
};

/// Something an administrator or moderator may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// Search and view users, groups and the audit trail.
    ViewUsers,
    /// Give a user a temporary password who has none.
    CreateTemporaryPassword,
    /// Replace a user's temporary password.
    ChangeTemporaryPassword,
    /// Remove a user's temporary password.
    RemoveTemporaryPassword,
    /// Send a temporary password to the user's verified phone or email.
    SendTemporaryPassword,
    /// Unlock a locked account.
    Unlock,
    /// Reset a user's authenticator (TOTP).
    ResetTotp,
    /// Send a password-reset link.
    SendPasswordReset,
    /// Regenerate the temporary passwords of whole groups.
    BulkRegenerate,
    /// Create users.
    ManageUsers,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Self; 10] = [
        Self::ViewUsers,
        Self::CreateTemporaryPassword,
        Self::ChangeTemporaryPassword,
        Self::RemoveTemporaryPassword,
        Self::SendTemporaryPassword,
        Self::Unlock,
        Self::ResetTotp,
        Self::SendPasswordReset,
        Self::BulkRegenerate,
        Self::ManageUsers,
    ];

    /// The stable text used in the audit trail.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ViewUsers => "view_users",
            Self::CreateTemporaryPassword => "create_temporary_password",
            Self::ChangeTemporaryPassword => "change_temporary_password",
            Self::RemoveTemporaryPassword => "remove_temporary_password",
            Self::SendTemporaryPassword => "send_temporary_password",
            Self::Unlock => "unlock",
            Self::ResetTotp => "reset_totp",
            Self::SendPasswordReset => "send_password_reset",
            Self::BulkRegenerate => "bulk_regenerate",
            Self::ManageUsers => "manage_users",
        }
    }
}

/// Permissions per role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    by_role: HashMap<Role, BTreeSet<Permission>>,
}

impl Default for Permissions {
    /// Administrators: everything. Moderators: everything but bulk regeneration and
    /// creating users. Users: nothing.
    fn default() -> Self {
        let all: BTreeSet<Permission> = Permission::ALL.into_iter().collect();
        let mut moderator = all.clone();
        moderator.remove(&Permission::BulkRegenerate);
        moderator.remove(&Permission::ManageUsers);
        Self::none()
            .with_role(Role::Administrator, all)
            .with_role(Role::Moderator, moderator)
    }
}

impl Permissions {
    /// No role may do anything.
    #[must_use]
    pub fn none() -> Self {
        Self {
            by_role: HashMap::new(),
        }
    }

    /// Sets the permissions of one role.
    #[must_use]
    pub fn with_role(
        mut self,
        role: Role,
        permissions: impl IntoIterator<Item = Permission>,
    ) -> Self {
        self.by_role.insert(role, permissions.into_iter().collect());
        self
    }

    /// Whether `role` holds `permission`.
    #[must_use]
    pub fn allows(&self, role: Role, permission: Permission) -> bool {
        self.by_role
            .get(&role)
            .is_some_and(|set| set.contains(&permission))
    }

    /// Decides whether `actor` may do `permission` in `site`, to `target` if any.
    ///
    /// # Errors
    /// [`PermissionDenied`] with the precise reason.
    pub fn authorize(
        &self,
        actor: &User,
        permission: Permission,
        site: &SiteId,
        target: Option<&User>,
    ) -> Result<(), PermissionDenied> {
        let deny = |reason| Err(PermissionDenied { permission, reason });
        if actor.status != UserStatus::Active {
            return deny(DenyReason::ActorDisabled);
        }
        if !self.allows(actor.role, permission) {
            return deny(DenyReason::MissingPermission { role: actor.role });
        }
        if !actor.manages_site(site) {
            return deny(DenyReason::OtherSite);
        }
        if let Some(target) = target {
            if &target.site != site {
                return deny(DenyReason::OtherSite);
            }
            if actor.role == Role::Moderator && target.role == Role::Administrator {
                return deny(DenyReason::TargetOutranksActor);
            }
            // A peer with power over more sites is out of reach: acting on their account
            // would hand the actor that power.
            let reaches_further = target
                .managed_sites
                .iter()
                .any(|other| !actor.manages_site(other));
            if target.role != Role::User && reaches_further {
                return deny(DenyReason::TargetOutranksActor);
            }
        }
        Ok(())
    }
}

/// Why an admin action was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenyReason {
    /// The actor's account is disabled.
    ActorDisabled,
    /// The actor's role lacks the permission.
    MissingPermission {
        /// The actor's role.
        role: Role,
    },
    /// The site (or the target's site) is not one the actor manages.
    OtherSite,
    /// A moderator cannot act on an administrator, nor anyone on an administrator or
    /// moderator who manages a site the actor does not.
    TargetOutranksActor,
    /// The actor's own password, asked for as confirmation, was wrong (or the actor is
    /// locked).
    ConfirmationFailed,
}

impl DenyReason {
    /// The stable text recorded in the audit trail.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ActorDisabled => "actor_disabled",
            Self::MissingPermission { .. } => "missing_permission",
            Self::OtherSite => "other_site",
            Self::TargetOutranksActor => "target_outranks_actor",
            Self::ConfirmationFailed => "confirmation_failed",
        }
    }
}

/// An admin action was refused; nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} refused: {}", permission.as_str(), reason.as_str())]
#[non_exhaustive]
pub struct PermissionDenied {
    /// What was attempted.
    pub permission: Permission,
    /// Why it was refused.
    pub reason: DenyReason,
}

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
    /// Password failures and lock.
    pub password_lock: LockState,
    /// TOTP failures and lock.
    pub totp_lock: LockState,
}

impl From<UserRecord> for UserSummary {
    fn from(record: UserRecord) -> Self {
        Self {
            has_password: record.password.is_some(),
            temporary: record.password.and_then(|p| p.temporary),
            has_pin: record.pin.is_some(),
            totp_enabled: record.totp.secret.is_some(),
            totp_reset_pending: record.totp.reset_pending,
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
}

/// A delivery channel for a temporary password.
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

/// One row of a printable cohort list.
#[non_exhaustive]
pub struct PrintableRow {
    /// Forename and surname.
    pub name: String,
    /// Username.
    pub username: String,
    /// The selected group the user was picked through.
    pub group: String,
    /// The new temporary password.
    pub password: TemporaryPassword,
    /// Date of birth, to tell apart people of the same name.
    pub date_of_birth: Option<Date>,
}

impl fmt::Debug for PrintableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrintableRow")
            .field("username", &self.username)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The one-time printable list of a bulk regeneration. It exists only in memory: keyward
/// stores hashes, so the list cannot be printed again — regenerating makes a new one and
/// voids this one. Not `Clone`; zeroized on drop.
#[non_exhaustive]
pub struct PrintableList {
    /// The batch every password in the list belongs to.
    pub batch: BatchId,
    /// When it was generated.
    pub generated_at: OffsetDateTime,
    /// When the passwords expire (the earliest expiry if user types differ).
    pub expires_at: Option<OffsetDateTime>,
    /// One row per user, sorted by group, surname, forename.
    pub rows: Vec<PrintableRow>,
}

impl fmt::Debug for PrintableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrintableList")
            .field("batch", &self.batch)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl PrintableList {
    /// The list as CSV with the columns `name,username,group,password,date_of_birth`, and
    /// nothing else.
    ///
    /// # Errors
    /// Only if the CSV writer fails, which it does not for in-memory output.
    pub fn to_csv(&self) -> Result<Zeroizing<String>, Error> {
        // Reserve generously up front so the output buffer is rarely reallocated (each
        // reallocation leaves an unzeroized copy behind). Best effort: the CSV writer's own
        // internal buffer is not zeroized either.
        let capacity = 128 * (self.rows.len() + 1);
        let mut writer = csv::Writer::from_writer(Vec::with_capacity(capacity));
        let io = |e: csv::Error| Error::Output {
            reason: e.to_string(),
        };
        writer
            .write_record(["name", "username", "group", "password", "date_of_birth"])
            .map_err(io)?;
        for row in &self.rows {
            let dob = row.date_of_birth.map(|d| d.to_string()).unwrap_or_default();
            writer
                .write_record([
                    row.name.as_str(),
                    row.username.as_str(),
                    row.group.as_str(),
                    row.password.expose_secret(),
                    dob.as_str(),
                ])
                .map_err(io)?;
        }
        let bytes = writer.into_inner().map_err(|e| Error::Output {
            reason: e.to_string(),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Output {
            reason: e.to_string(),
        })?;
        Ok(Zeroizing::new(text))
    }
}

impl Keyward {
    /// Loads the actor and target and authorizes; a refusal is audited and returned as
    /// [`Error::PermissionDenied`].
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
        self.audit(
            AuditEvent::new(
                self.now(),
                Some(actor.id.clone()),
                action,
                target.map(|t| t.id.clone()),
                site.clone(),
                AuditOutcome::Denied,
            )
            .with_reason(denied.reason.as_str())
            .with_details(permission.as_str()),
        )?;
        Err(denied.into())
    }

    fn audit_admin(
        &self,
        actor: &UserId,
        action: AuditAction,
        target: Option<&UserId>,
        site: &SiteId,
        details: Option<String>,
    ) -> Result<(), Error> {
        let mut event = AuditEvent::new(
            self.now(),
            Some(actor.clone()),
            action,
            target.cloned(),
            site.clone(),
            AuditOutcome::Succeeded,
        );
        event.details = details;
        self.audit(event)
    }

    /// Searches users of a site for an admin screen (needs [`Permission::ViewUsers`]). The
    /// results carry no credential material: no hashes, no TOTP secrets, no codes.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); store errors.
    pub fn search_users(
        &self,
        actor: &UserId,
        query: &UserQuery,
    ) -> Result<Page<UserSummary>, Error> {
        self.authorize(
            actor,
            Permission::ViewUsers,
            AuditAction::UsersViewed,
            &query.site,
            None,
        )?;
        let page = self.store.search_users(query)?;
        let items = page.items.into_iter().map(UserSummary::from).collect();
        Ok(Page::new(items, page.total))
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
        query: &crate::audit::AuditQuery,
    ) -> Result<Page<AuditEvent>, Error> {
        if query.user.as_ref() != Some(actor) {
            let Some(site) = &query.site else {
                let actor_site = self.load(actor)?.user.site;
                let denied = PermissionDenied {
                    permission: Permission::ViewUsers,
                    reason: DenyReason::OtherSite,
                };
                self.audit(
                    AuditEvent::new(
                        self.now(),
                        Some(actor.clone()),
                        AuditAction::UsersViewed,
                        query.user.clone(),
                        actor_site,
                        AuditOutcome::Denied,
                    )
                    .with_reason(denied.reason.as_str())
                    .with_details("an audit query without a site"),
                )?;
                return Err(denied.into());
            };
            self.authorize(
                actor,
                Permission::ViewUsers,
                AuditAction::UsersViewed,
                site,
                None,
            )?;
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
        let record = self.load(target)?;
        let site = &record.user.site;
        let permission = if has_live_temporary(&record) {
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
            let event = AuditEvent::new(
                self.now(),
                Some(actor.clone()),
                AuditAction::TemporaryPasswordSet,
                Some(target.clone()),
                user.site.clone(),
                AuditOutcome::Denied,
            )
            .with_reason(reason);
            self.audit(event)?;
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
        let mode = options.mode.unwrap_or(rules.mode);
        let expires_at = now.saturating_add(rules.lifetime);
        let hash = self.hasher.hash(&password.to_password())?;
        let credential = PasswordCredential::temporary(
            stored(&hash),
            now,
            mode,
            expires_at,
            actor.clone(),
            None,
        );
        // Deliver first: if delivery fails, the user keeps the password they had.
        let (shown, receipt) = match recipient {
            None => (Some(password), None),
            Some(to) => {
                let body = format!(
                    "Your temporary password is {}. It expires on {}.",
                    password.expose_secret(),
                    expires_at.date()
                );
                let kind = MessageKind::TemporaryPassword;
                let message = Message::new(to, kind, "Your temporary password", body);
                (None, Some(self.notifier.send(message)?))
            }
        };
        // Replace exactly what the permission check saw (Create or Change).
        let seen = record.password.as_ref().map(|p| &p.hash);
        if self
            .store
            .replace_password(target, seen, Some(&credential))?
            != crate::store::Swap::Swapped
        {
            return Err(crate::StoreError::Conflict {
                what: "password (changed meanwhile)",
            }
            .into());
        }
        let details = format!("mode={}; expires_at={expires_at}", mode.as_str());
        let action = AuditAction::TemporaryPasswordSet;
        self.audit_admin(actor, action, Some(target), &user.site, Some(details))?;
        if let Some(sent) = &receipt {
            let details = format!("sent to {}", sent.to);
            let action = AuditAction::TemporaryPasswordSent;
            self.audit_admin(actor, action, Some(target), &user.site, Some(details))?;
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
        // meantime stays.
        let swap = self
            .store
            .replace_password(target, Some(&temporary.hash), None)?;
        if swap != crate::store::Swap::Swapped {
            return Err(crate::StoreError::Conflict {
                what: "password (changed meanwhile)",
            }
            .into());
        }
        self.audit_admin(actor, action, Some(target), site, None)
    }

    /// Unlocks an account: both the password and the TOTP counters are cleared, and the
    /// unlocking administrator is recorded.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; store errors.
    pub fn unlock(&self, actor: &UserId, target: &UserId) -> Result<(), Error> {
        let record = self.load(target)?;
        let site = &record.user.site;
        self.authorize(
            actor,
            Permission::Unlock,
            AuditAction::Unlocked,
            site,
            Some(&record.user),
        )?;
        let now = self.now();
        let event = LockEvent::Unlock { by: actor.clone() };
        let rule = self.lockout.password_rule(&record.user);
        let _ = self
            .store
            .apply_lock_event(target, LockCounter::Password, &rule, &event, now)?;
        let rule = self.lockout.totp_rule(&record.user);
        let _ = self
            .store
            .apply_lock_event(target, LockCounter::Totp, &rule, &event, now)?;
        self.audit_admin(actor, AuditAction::Unlocked, Some(target), site, None)
    }

    /// Resets a user's authenticator: the secret is cleared and the user is marked
    /// reset-pending, so the next sign-in asks for an emailed device-authorization code and
    /// then a new enrollment. The TOTP lock is cleared too.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; store errors.
    pub fn reset_totp(&self, actor: &UserId, target: &UserId) -> Result<(), Error> {
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
        let state = TotpState {
            reset_pending: true,
            ..TotpState::default()
        };
        self.store.set_totp(target, &state)?;
        let rule = self.lockout.totp_rule(&record.user);
        let event = LockEvent::Unlock { by: actor.clone() };
        let _ =
            self.store
                .apply_lock_event(target, LockCounter::Totp, &rule, &event, self.now())?;
        let note = (!record.user.email_verified || record.user.email.is_none())
            .then(|| "user has no verified email: device authorization will be refused".to_owned());
        self.audit_admin(actor, action, Some(target), site, note)
    }

    /// Regenerates the temporary passwords of every user (role `user`) in `groups` of `site`,
    /// after confirming the administrator's own password, and returns the one-time printable
    /// list. The whole batch is written at once or not at all; it replaces the users'
    /// passwords, so the previous list stops working.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (also with [`DenyReason::ConfirmationFailed`] for a wrong
    /// confirmation password, which counts as a failed attempt on the administrator's own
    /// account); store and hashing errors.
    pub fn bulk_regenerate(
        &self,
        actor: &UserId,
        confirmation: &Password,
        site: &SiteId,
        groups: &[String],
    ) -> Result<PrintableList, Error> {
        let (permission, action) = (Permission::BulkRegenerate, AuditAction::BulkRegenerated);
        let actor_record = self.authorize(actor, permission, action, site, None)?;
        let actor_user = &actor_record.user;
        let confirmed = match &actor_record.password {
            Some(credential) if credential.temporary.is_none() => matches!(
                self.check_first_factor(
                    &actor_record,
                    confirmation,
                    PinCheck::Skip,
                    &credential.hash
                )?,
                FirstFactor::Passed { .. }
            ),
            _ => {
                self.hasher.verify_dummy(confirmation);
                false
            }
        };
        if !confirmed {
            let reason = DenyReason::ConfirmationFailed;
            self.audit(
                AuditEvent::new(
                    self.now(),
                    Some(actor.clone()),
                    AuditAction::BulkRegenerated,
                    None,
                    site.clone(),
                    AuditOutcome::Denied,
                )
                .with_reason(reason.as_str()),
            )?;
            return Err(PermissionDenied {
                permission: Permission::BulkRegenerate,
                reason,
            }
            .into());
        }
        let now = self.now();
        // Collect the cohort: each user once, under the first selected group they are in.
        let mut picked: Vec<(String, UserRecord)> = Vec::new();
        for group in groups {
            let mut offset = 0u64;
            loop {
                let query = UserQuery::new(site.clone(), now)
                    .group(group.clone())
                    .page(offset, MAX_PAGE);
                let page = self.store.search_users(&query)?;
                let count = page.items.len() as u64;
                for record in page.items {
                    let eligible = record.user.role == Role::User
                        && record.user.status == UserStatus::Active
                        && self
                            .permissions
                            .authorize(
                                actor_user,
                                Permission::BulkRegenerate,
                                site,
                                Some(&record.user),
                            )
                            .is_ok();
                    if eligible && !picked.iter().any(|(_, r)| r.user.id == record.user.id) {
                        picked.push((group.clone(), record));
                    }
                }
                offset += count;
                if count == 0 || offset >= page.total {
                    break;
                }
            }
        }
        let batch = BatchId::generate();
        let mut rows = Vec::with_capacity(picked.len());
        let mut entries = Vec::with_capacity(picked.len());
        let mut expires_at: Option<OffsetDateTime> = None;
        for (group, record) in picked {
            let rules = self.temporary.temporary_rules(&record.user);
            let generated = rules.generate();
            let hash = self.hasher.hash(&generated.password.to_password())?;
            let expiry = now.saturating_add(rules.lifetime);
            expires_at = Some(expires_at.map_or(expiry, |e| e.min(expiry)));
            let credential = PasswordCredential::temporary(
                stored(&hash),
                now,
                rules.mode,
                expiry,
                actor.clone(),
                Some(batch.clone()),
            );
            entries.push((record.user.id.clone(), credential));
            rows.push(PrintableRow {
                name: format!("{} {}", record.user.forename, record.user.surname),
                username: record.user.username.clone(),
                group,
                password: generated.password,
                date_of_birth: record.user.date_of_birth,
            });
        }
        rows.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        let targets: Vec<UserId> = entries.iter().map(|(id, _)| id.clone()).collect();
        self.store
            .replace_batch(&TemporaryBatch::new(batch.clone(), entries))?;
        let details = format!(
            "batch={}; groups={}; users={}",
            batch.as_str(),
            groups.join(", "),
            targets.len()
        );
        self.audit_admin(
            actor,
            AuditAction::BulkRegenerated,
            None,
            site,
            Some(details),
        )?;
        for target in &targets {
            let details = format!("batch={}", batch.as_str());
            self.audit_admin(
                actor,
                AuditAction::TemporaryPasswordSet,
                Some(target),
                site,
                Some(details),
            )?;
        }
        Ok(PrintableList {
            batch,
            generated_at: now,
            expires_at,
            rows,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn person(site: &str, role: Role) -> User {
        User::new(
            SiteId::new(site).unwrap(),
            "x",
            "X",
            "Y",
            "staff",
            datetime!(2026-01-01 0:00 UTC),
        )
        .with_role(role)
    }

    /// The full allow/deny matrix of the default permissions: role x action x same/other site
    /// x target role. Each line lists, for one actor role and one permission, the verdict on a
    /// target in the same site with role user, moderator, administrator, then the same three
    /// in another site ('Y' allowed, '.' denied).
    #[test]
    fn default_permission_matrix() {
        #[rustfmt::skip]
        let table: &[(Role, Permission, &str)] = &[
            (Role::Administrator, Permission::ViewUsers,               "YYY ..."),
            (Role::Administrator, Permission::CreateTemporaryPassword, "YYY ..."),
            (Role::Administrator, Permission::ChangeTemporaryPassword, "YYY ..."),
            (Role::Administrator, Permission::RemoveTemporaryPassword, "YYY ..."),
            (Role::Administrator, Permission::SendTemporaryPassword,   "YYY ..."),
            (Role::Administrator, Permission::Unlock,                  "YYY ..."),
            (Role::Administrator, Permission::ResetTotp,               "YYY ..."),
            (Role::Administrator, Permission::SendPasswordReset,       "YYY ..."),
            (Role::Administrator, Permission::BulkRegenerate,          "YYY ..."),
            (Role::Administrator, Permission::ManageUsers,             "YYY ..."),
            (Role::Moderator,     Permission::ViewUsers,               "YY. ..."),
            (Role::Moderator,     Permission::CreateTemporaryPassword, "YY. ..."),
            (Role::Moderator,     Permission::ChangeTemporaryPassword, "YY. ..."),
            (Role::Moderator,     Permission::RemoveTemporaryPassword, "YY. ..."),
            (Role::Moderator,     Permission::SendTemporaryPassword,   "YY. ..."),
            (Role::Moderator,     Permission::Unlock,                  "YY. ..."),
            (Role::Moderator,     Permission::ResetTotp,               "YY. ..."),
            (Role::Moderator,     Permission::SendPasswordReset,       "YY. ..."),
            (Role::Moderator,     Permission::BulkRegenerate,          "... ..."),
            (Role::Moderator,     Permission::ManageUsers,             "... ..."),
            (Role::User,          Permission::ViewUsers,               "... ..."),
            (Role::User,          Permission::CreateTemporaryPassword, "... ..."),
            (Role::User,          Permission::ChangeTemporaryPassword, "... ..."),
            (Role::User,          Permission::RemoveTemporaryPassword, "... ..."),
            (Role::User,          Permission::SendTemporaryPassword,   "... ..."),
            (Role::User,          Permission::Unlock,                  "... ..."),
            (Role::User,          Permission::ResetTotp,               "... ..."),
            (Role::User,          Permission::SendPasswordReset,       "... ..."),
            (Role::User,          Permission::BulkRegenerate,          "... ..."),
            (Role::User,          Permission::ManageUsers,             "... ..."),
        ];
        assert_eq!(table.len(), 3 * Permission::ALL.len());
        let permissions = Permissions::default();
        let home = SiteId::new("home").unwrap();
        for (role, permission, expected) in table {
            let actor = person("home", *role);
            let mut verdicts = String::new();
            for site in ["home", "other"] {
                if site == "other" {
                    verdicts.push(' ');
                }
                for target_role in [Role::User, Role::Moderator, Role::Administrator] {
                    let target = person(site, target_role);
                    let target_site = SiteId::new(site).unwrap();
                    let ok = permissions
                        .authorize(&actor, *permission, &target_site, Some(&target))
                        .is_ok();
                    verdicts.push(if ok { 'Y' } else { '.' });
                }
            }
            assert_eq!(&verdicts, expected, "{role:?} {permission:?}");
            // Without a target, only role and site count.
            let untargeted = permissions
                .authorize(&actor, *permission, &home, None)
                .is_ok();
            assert_eq!(
                untargeted,
                expected.starts_with('Y'),
                "{role:?} {permission:?} untargeted"
            );
        }
    }

    #[test]
    fn denials_name_their_reason() {
        let permissions = Permissions::default();
        let site = SiteId::new("home").unwrap();
        let moderator = person("home", Role::Moderator);
        let admin = person("home", Role::Administrator);
        let err = permissions
            .authorize(&moderator, Permission::Unlock, &site, Some(&admin))
            .unwrap_err();
        assert_eq!(err.reason, DenyReason::TargetOutranksActor);
        let err = permissions
            .authorize(&moderator, Permission::BulkRegenerate, &site, None)
            .unwrap_err();
        assert_eq!(
            err.reason,
            DenyReason::MissingPermission {
                role: Role::Moderator
            }
        );
        let mut disabled = admin.clone();
        disabled.status = UserStatus::Disabled;
        let err = permissions
            .authorize(&disabled, Permission::Unlock, &site, None)
            .unwrap_err();
        assert_eq!(err.reason, DenyReason::ActorDisabled);
        // A site administered besides the home site counts as managed.
        let other = SiteId::new("other").unwrap();
        let multi = admin.with_managed_sites(vec![other.clone()]);
        assert!(
            permissions
                .authorize(
                    &multi,
                    Permission::Unlock,
                    &other,
                    Some(&person("other", Role::User))
                )
                .is_ok()
        );
    }

    #[test]
    fn peers_managing_more_sites_are_out_of_reach() {
        let permissions = Permissions::default();
        let (a, b) = (SiteId::new("home").unwrap(), SiteId::new("other").unwrap());
        let admin = person("home", Role::Administrator);
        let wider_admin = person("home", Role::Administrator).with_managed_sites(vec![b.clone()]);
        let wider_moderator = person("home", Role::Moderator).with_managed_sites(vec![b.clone()]);
        for target in [&wider_admin, &wider_moderator] {
            let err = permissions.authorize(&admin, Permission::ResetTotp, &a, Some(target));
            assert_eq!(err.unwrap_err().reason, DenyReason::TargetOutranksActor);
        }
        // An administrator of both sites may act on them.
        let both = admin.clone().with_managed_sites(vec![b]);
        assert!(
            permissions
                .authorize(&both, Permission::ResetTotp, &a, Some(&wider_admin))
                .is_ok()
        );
        // Ordinary users' site lists do not matter.
        let user = person("home", Role::User).with_managed_sites(vec![SiteId::new("x").unwrap()]);
        assert!(
            permissions
                .authorize(&admin, Permission::Unlock, &a, Some(&user))
                .is_ok()
        );
    }

    #[test]
    fn custom_permissions_replace_the_defaults() {
        let permissions =
            Permissions::default().with_role(Role::Moderator, [Permission::ViewUsers]);
        let site = SiteId::new("home").unwrap();
        let moderator = person("home", Role::Moderator);
        assert!(
            permissions
                .authorize(&moderator, Permission::ViewUsers, &site, None)
                .is_ok()
        );
        assert!(
            permissions
                .authorize(&moderator, Permission::Unlock, &site, None)
                .is_err()
        );
    }
}
