//! Audit events: every admin action and every sign-in decision leaves one.

use time::OffsetDateTime;

use crate::text_enum::text_enum;
use crate::user::{SiteId, UserId};

text_enum!(
    /// What was done.
    AuditAction {
        /// A sign-in step was decided (see the outcome and reason).
        SignIn => "sign_in",
        /// A user changed their password.
        PasswordChanged => "password_changed",
        /// A stored legacy or weaker hash was upgraded to the current argon2id policy.
        HashUpgraded => "hash_upgraded",
        /// A user was created.
        UserCreated => "user_created",
        /// A user's profile was changed.
        UserUpdated => "user_updated",
        /// A temporary password was created or changed.
        TemporaryPasswordSet => "temporary_password_set",
        /// A temporary password was removed.
        TemporaryPasswordRemoved => "temporary_password_removed",
        /// A temporary password was sent to the user's phone or email.
        TemporaryPasswordSent => "temporary_password_sent",
        /// The temporary passwords of a set of groups were regenerated.
        BulkRegenerated => "bulk_regenerated",
        /// An account was unlocked.
        Unlocked => "unlocked",
        /// An account was locked by an administrator.
        Locked => "locked",
        /// A user's authenticator was reset.
        TotpReset => "totp_reset",
        /// A new authenticator was enrolled.
        TotpEnrolled => "totp_enrolled",
        /// A device-authorization code was sent.
        DeviceCodeSent => "device_code_sent",
        /// A password-reset link was sent.
        PasswordResetSent => "password_reset_sent",
        /// A password was reset with a reset token.
        PasswordReset => "password_reset",
        /// A user's PIN was set or removed.
        PinSet => "pin_set",
        /// Users or their audit trail were viewed (audited when refused).
        UsersViewed => "users_viewed",
        /// An escrowed temporary password was revealed to an administrator.
        TemporaryPasswordRevealed => "temporary_password_revealed",
        /// An administrator was recovered through direct database access (break-glass).
        AdministratorRecovered => "administrator_recovered",
        /// Audit events before a date were exported and deleted (retention).
        AuditPruned => "audit_pruned",
        /// A hash imported from another system was set on an existing user.
        ImportedPasswordSet => "imported_password_set",
        /// A run protecting fast legacy hashes at rest (argon2id over them) ended.
        FastHashesWrapped => "fast_hashes_wrapped",
        /// A signed-in user re-authenticated (step-up) before a sensitive action.
        Reauthenticated => "reauthenticated",
        /// A new set of recovery codes was made (the old set is void); the details give the
        /// count.
        RecoveryCodesGenerated => "recovery_codes_generated",
        /// A recovery code signed a user in in place of a TOTP code; the details give how
        /// many remain.
        RecoveryCodeUsed => "recovery_code_used",
        /// An email address or phone number was set, changed or removed (it is unverified
        /// until its code comes back).
        ContactChanged => "contact_changed",
        /// A code to verify an email address or phone number was sent.
        ContactCodeSent => "contact_code_sent",
        /// An email address or phone number was verified with its code.
        ContactVerified => "contact_verified",
        /// An account was disabled: every sign-in and session ends.
        UserDisabled => "user_disabled",
        /// A disabled account was enabled again.
        UserEnabled => "user_enabled",
        /// A user's role or managed sites were changed.
        RoleChanged => "role_changed",
        /// A user was deleted; the event keeps who it was, the rest of their trail stays.
        UserDeleted => "user_deleted",
    }
);

text_enum!(
    /// How it ended.
    AuditOutcome {
        /// The action was carried out, or the sign-in succeeded.
        Succeeded => "succeeded",
        /// The sign-in moved on to a further step (password change, TOTP, device code).
        Continued => "continued",
        /// The action or sign-in was refused; nothing changed.
        Denied => "denied",
        /// The action was cancelled before it changed anything.
        Cancelled => "cancelled",
    }
);

/// Reports a committed audit event as a `tracing` event (target `keyward::audit`, level
/// INFO; a denial at WARN when it locked an account): the decision, its reason and the ids,
/// which is everything an event holds. Audit events never hold secret material, so neither
/// does the trace.
pub(crate) fn trace(event: &AuditEvent) {
    let actor = event.actor.as_ref().map(UserId::as_str);
    let target = event.target.as_ref().map(UserId::as_str);
    let reason = event.reason.as_deref();
    let details = event.details.as_deref();
    tracing::info!(
        target: "keyward::audit",
        action = event.action.as_str(),
        outcome = event.outcome.as_str(),
        reason,
        site = event.site.as_str(),
        actor,
        target_user = target,
        details,
        "{} {}",
        event.action.as_str(),
        event.outcome.as_str(),
    );
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When it happened.
    pub at: OffsetDateTime,
    /// Who acted: an administrator, or the user themself; `None` when nobody could be named
    /// (a sign-in attempt for an unknown username).
    pub actor: Option<UserId>,
    /// What was done.
    pub action: AuditAction,
    /// Whom it was done to.
    pub target: Option<UserId>,
    /// The site it happened in.
    pub site: SiteId,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// The precise reason (for example `wrong_password`, `temporary_password_expired`).
    pub reason: Option<String>,
    /// Free-form details for admin screens (never secret material).
    pub details: Option<String>,
}

impl AuditEvent {
    /// A new event with no reason and no details.
    #[must_use]
    pub fn new(
        at: OffsetDateTime,
        actor: Option<UserId>,
        action: AuditAction,
        target: Option<UserId>,
        site: SiteId,
        outcome: AuditOutcome,
    ) -> Self {
        Self {
            at,
            actor,
            action,
            target,
            site,
            outcome,
            reason: None,
            details: None,
        }
    }

    /// Adds the precise reason.
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Adds details.
    #[must_use]
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

/// Which audit events to return, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Only events of this site.
    pub site: Option<SiteId>,
    /// Only events where this user is the actor or the target (a profile page).
    pub user: Option<UserId>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only events at or after this instant.
    pub from: Option<OffsetDateTime>,
    /// Only events before this instant.
    pub to: Option<OffsetDateTime>,
    /// Events whose actor or target is one of these are left out (the admin screens leave
    /// out whom the actor may not see).
    pub excluded: Vec<UserId>,
    /// Events to skip.
    pub offset: u64,
    /// Most events to return (at most [`crate::store::MAX_PAGE`]).
    pub limit: u32,
}

impl Default for AuditQuery {
    fn default() -> Self {
        Self {
            site: None,
            user: None,
            action: None,
            from: None,
            to: None,
            excluded: Vec::new(),
            offset: 0,
            limit: 50,
        }
    }
}

impl AuditQuery {
    /// Every event involving `user`.
    #[must_use]
    pub fn for_user(user: UserId) -> Self {
        Self {
            user: Some(user),
            ..Self::default()
        }
    }

    /// Keeps only events of `action`.
    #[must_use]
    pub fn action(mut self, action: AuditAction) -> Self {
        self.action = Some(action);
        self
    }

    /// Keeps only events of `site`.
    #[must_use]
    pub fn site(mut self, site: SiteId) -> Self {
        self.site = Some(site);
        self
    }

    /// Keeps only events in `[from, to)`.
    #[must_use]
    pub fn between(mut self, from: OffsetDateTime, to: OffsetDateTime) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Sets the page.
    #[must_use]
    pub fn page(mut self, offset: u64, limit: u32) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }

    /// Whether `event` passes the filters (paging aside). Backends that filter in memory use
    /// this; SQL backends translate the same rules.
    #[must_use]
    pub fn matches(&self, event: &AuditEvent) -> bool {
        self.site.as_ref().is_none_or(|s| &event.site == s)
            && self
                .user
                .as_ref()
                .is_none_or(|u| event.actor.as_ref() == Some(u) || event.target.as_ref() == Some(u))
            && self.action.is_none_or(|a| event.action == a)
            && self.from.is_none_or(|f| event.at >= f)
            && self.to.is_none_or(|t| event.at < t)
            && !(event.actor.iter().chain(&event.target)).any(|u| self.excluded.contains(u))
    }
}
