//! The sign-in flow and its typed outcomes.
//!
//! [`Keyward::sign_in`] checks the first factor (password, and PIN where the user has one)
//! and returns a [`SignIn`]. Further steps are finished by the `Keyward` method named on each
//! pending type, which consumes it: [`PendingPasswordChange`] by
//! [`Keyward::complete_password_change`], [`PendingTotp`] by [`Keyward::verify_totp`],
//! [`PendingDeviceAuthorization`] by [`Keyward::authorize_device`] and
//! [`PendingEnrollment`] by [`Keyward::confirm_enrollment`].
//!
//! A failed sign-in is an ordinary outcome, [`SignIn::Denied`]; `Err` means the system
//! failed.

use std::fmt;

use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::error::Error;
use crate::lockout::{LockDecision, LockEvent};
use crate::notify::{Message, MessageKind, Recipient};
use crate::policy::PolicyViolation;
use crate::secret::{OneTimeCode, Password, Pin};
use crate::service::{FirstFactor, Keyward, PinCheck, stored};
use crate::store::{Consumed, LockCounter, OneTimeKind, OneTimeTry, StepAcceptance, Swap};
use crate::totp::{Enrollment, TotpCheck};
use crate::user::{
    OneTimeCredential, PasswordCredential, PinCredential, SiteId, StoredHash, TemporaryMode,
    TotpState, User, UserId, UserRecord, UserStatus,
};

/// The outcome of a sign-in step.
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug)]
pub enum SignIn {
    /// The user is signed in.
    Authenticated(Authenticated),
    /// A single-use temporary password was used: the user must set a new password now.
    PasswordChangeRequired(PendingPasswordChange),
    /// The user must give a code from their authenticator.
    TotpRequired(PendingTotp),
    /// After an authenticator reset: the user must give the code sent to their email.
    DeviceAuthorizationRequired(PendingDeviceAuthorization),
    /// After device authorization: the user must add the new secret to an authenticator and
    /// confirm it with a code.
    TotpEnrollmentRequired(PendingEnrollment),
    /// Sign-in refused.
    Denied(Denial),
}

/// A completed sign-in.
#[derive(Debug)]
#[non_exhaustive]
pub struct Authenticated {
    user: User,
    hash_upgraded: bool,
}

impl Authenticated {
    /// The signed-in user.
    #[must_use]
    pub fn user(&self) -> &User {
        &self.user
    }

    /// Whether a legacy or weaker hash was upgraded to the current argon2id policy during
    /// this sign-in.
    #[must_use]
    pub fn hash_upgraded(&self) -> bool {
        self.hash_upgraded
    }
}

/// Why a sign-in was refused. Shown to administrators and in the audit trail; end users see
/// only [`Denial::user_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenialReason {
    /// No user with that username in the site.
    UnknownUser,
    /// The account is disabled.
    Disabled,
    /// The user has no standard login (SSO-linked without a temporary password, or no
    /// password at all).
    NoPasswordLogin,
    /// Wrong password.
    WrongPassword,
    /// The PIN was missing or wrong.
    WrongPin,
    /// The temporary password was right but has expired.
    TemporaryPasswordExpired,
    /// The single-use temporary password was already used.
    TemporaryPasswordUsed,
    /// The account is locked.
    Locked {
        /// End of a temporary lock; `None` until an administrator unlocks.
        until: Option<OffsetDateTime>,
    },
    /// Refused without evaluation: as many attempts as may still fail were already being
    /// evaluated (a parallel guessing attack).
    TooManyAttempts,
    /// The TOTP code was wrong, malformed or already used.
    WrongTotpCode,
    /// Too many wrong TOTP codes: the second factor is locked.
    TotpLocked {
        /// End of a temporary lock; `None` until an administrator unlocks.
        until: Option<OffsetDateTime>,
    },
    /// The device-authorization code has expired; the next sign-in sends a new one.
    DeviceCodeExpired,
    /// The device-authorization code used up its tries; the next sign-in sends a new one.
    DeviceCodeExhausted,
    /// The authenticator was reset but the user has no verified email to receive a
    /// device-authorization code.
    NoVerifiedEmail,
    /// The pending step waited too long.
    StepExpired,
    /// The account changed while a step was pending (password changed or removed,
    /// authenticator reset, enrollment replaced): the sign-in must start again.
    AccountChanged,
}

impl DenialReason {
    /// The stable text recorded in the audit trail.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::NoPasswordLogin => "no_password_login",
            Self::WrongPassword => "wrong_password",
            Self::WrongPin => "wrong_pin",
            Self::TemporaryPasswordExpired => "temporary_password_expired",
            Self::TemporaryPasswordUsed => "temporary_password_used",
            Self::Locked { .. } => "locked",
            Self::TooManyAttempts => "too_many_attempts",
            Self::WrongTotpCode => "wrong_totp_code",
            Self::TotpLocked { .. } => "totp_locked",
            Self::DeviceCodeExpired => "device_code_expired",
            Self::DeviceCodeExhausted => "device_code_exhausted",
            Self::NoVerifiedEmail => "no_verified_email",
            Self::StepExpired => "step_expired",
            Self::AccountChanged => "account_changed",
        }
    }

    /// Whether this reason belongs to the first factor, where every reason must look the
    /// same to the person signing in.
    #[must_use]
    pub fn is_first_factor(self) -> bool {
        matches!(
            self,
            Self::UnknownUser
                | Self::Disabled
                | Self::NoPasswordLogin
                | Self::WrongPassword
                | Self::WrongPin
                | Self::TemporaryPasswordExpired
                | Self::TemporaryPasswordUsed
                | Self::Locked { .. }
                | Self::TooManyAttempts
        )
    }

    /// What an administrator should do about it, where there is something to do.
    #[must_use]
    pub fn admin_hint(self) -> Option<&'static str> {
        match self {
            Self::TemporaryPasswordExpired => Some("issue a new temporary password"),
            Self::TemporaryPasswordUsed => Some("issue a new temporary password"),
            Self::Locked { until: None } | Self::TotpLocked { until: None } => {
                Some("unlock the account after checking the audit trail")
            }
            Self::NoVerifiedEmail => Some(
                "add and verify the user's email address, or confirm the user's identity in \
                 person and reset their authenticator again once they can receive email",
            ),
            Self::NoPasswordLogin => Some("issue a temporary password if the directory is down"),
            Self::Disabled => Some("re-enable the account if it should sign in"),
            _ => None,
        }
    }
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused sign-in: one message for the end user, the precise reason for everyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Denial {
    reason: DenialReason,
    user: Option<UserId>,
}

/// The one message every first-factor denial shows (no account enumeration).
pub const FIRST_FACTOR_MESSAGE: &str = "The username or password is incorrect.";

impl Denial {
    fn new(reason: DenialReason, user: Option<UserId>) -> Self {
        Self { reason, user }
    }

    /// The precise reason: for logs, the audit trail and admin screens, never for the person
    /// signing in.
    #[must_use]
    pub fn reason(&self) -> DenialReason {
        self.reason
    }

    /// The user the attempt was for, when the username was known.
    #[must_use]
    pub fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }

    /// The message to show the person signing in. Every first-factor denial (unknown user,
    /// wrong password or PIN, expired temporary password, locked account) shows the same one.
    #[must_use]
    pub fn user_message(&self) -> &'static str {
        match self.reason {
            r if r.is_first_factor() => FIRST_FACTOR_MESSAGE,
            DenialReason::WrongTotpCode => "The code is incorrect.",
            DenialReason::TotpLocked { .. } => {
                "Too many incorrect codes. Please contact your administrator."
            }
            DenialReason::DeviceCodeExpired | DenialReason::DeviceCodeExhausted => {
                "The code can no longer be used. Sign in again to receive a new one."
            }
            DenialReason::NoVerifiedEmail => {
                "Your sign-in needs an administrator's help. Please contact them."
            }
            _ => "Please sign in again.",
        }
    }
}

macro_rules! pending {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[non_exhaustive]
        pub struct $name {
            ctx: Context,
            issued_at: OffsetDateTime,
            retry: bool,
            $($field: $ty,)*
        }

        impl $name {
            /// The user this step belongs to.
            #[must_use]
            pub fn user(&self) -> &UserId {
                &self.ctx.user
            }

            /// Whether this step is offered again because the previous answer was wrong.
            #[must_use]
            pub fn is_retry(&self) -> bool {
                self.retry
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("user", &self.ctx.user)
                    .field("issued_at", &self.issued_at)
                    .field("retry", &self.retry)
                    .finish_non_exhaustive()
            }
        }
    };
}

pending!(
    /// A single-use temporary password was used (and any second factor passed): the user must
    /// set a new password now; finish with [`Keyward::complete_password_change`].
    PendingPasswordChange {}
);
pending!(
    /// Waiting for a TOTP code; finish with [`Keyward::verify_totp`].
    PendingTotp {}
);
pending!(
    /// Waiting for the emailed device-authorization code; finish with
    /// [`Keyward::authorize_device`].
    PendingDeviceAuthorization { sent_to: String }
);
pending!(
    /// Waiting for the first code from a newly added authenticator; finish with
    /// [`Keyward::confirm_enrollment`].
    PendingEnrollment { enrollment: Enrollment }
);

impl PendingDeviceAuthorization {
    /// The email address the code went to (for "we sent a code to …").
    #[must_use]
    pub fn sent_to(&self) -> &str {
        &self.sent_to
    }
}

impl PendingEnrollment {
    /// The new secret's `otpauth://` URI and QR code, to show the user.
    #[must_use]
    pub fn enrollment(&self) -> &Enrollment {
        &self.enrollment
    }
}

/// The outcome of [`Keyward::complete_password_change`].
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug)]
pub enum PasswordChange {
    /// The new password is set; the sign-in continues (TOTP steps may follow).
    Changed(SignIn),
    /// The new password breaks a rule; the pending change is handed back to try again.
    Rejected(PendingPasswordChange, PolicyViolation),
    /// The step waited too long, or the account changed meanwhile.
    Denied(Denial),
}

/// How one TOTP code check under the lock counter ended.
enum TotpAttempt {
    /// The code was right (and its step newer than the last accepted one).
    Accepted,
    /// The code was wrong; the step may be retried.
    Wrong,
    /// The TOTP counter is locked: the sign-in is denied.
    Refused(Denial),
}

/// What a sign-in has established so far; carried by every pending step.
#[derive(Debug, Clone)]
struct Context {
    user: UserId,
    site: SiteId,
    hash_upgraded: bool,
    /// The password hash the first factor matched (for self-service enrollment: the one the
    /// user had). A pending step is void once the password changed.
    credential: Option<StoredHash>,
    /// A single-use temporary password was used: a new password is due once any second
    /// factor has passed.
    change_password: bool,
    /// `false` for self-service enrollment by a user who is already signed in.
    signing_in: bool,
}

impl Keyward {
    /// Signs a user in with a password and, where the user has one, a PIN.
    ///
    /// Unknown users, wrong passwords or PINs, expired temporary passwords and locked
    /// accounts all come back as [`SignIn::Denied`] with the same
    /// [`user_message`](Denial::user_message) and after the same hashing work; the precise
    /// reason is in [`Denial::reason`] and in the audit trail.
    ///
    /// The steps that may follow come in this order: device authorization and enrollment
    /// (after an authenticator reset) or a TOTP code, then — after a single-use temporary
    /// password — the password change. A temporary password alone never sets a permanent
    /// password for a user with a second factor.
    ///
    /// # Errors
    /// Store, hashing and delivery failures (never a wrong password).
    pub fn sign_in(
        &self,
        site: &SiteId,
        username: &str,
        password: &Password,
        pin: Option<&Pin>,
    ) -> Result<SignIn, Error> {
        let now = self.now();
        let Some(record) = self.store.find_user(site, username)? else {
            self.first_factor_dummy(password);
            return self.deny(site, None, DenialReason::UnknownUser);
        };
        let user = &record.user;
        let credential = match &record.password {
            Some(c) if user.status == UserStatus::Active => {
                // SSO-linked users have standard login only through a temporary password.
                (!user.sso_linked || c.temporary.is_some()).then_some(c)
            }
            _ => None,
        };
        let Some(credential) = credential else {
            self.first_factor_dummy(password);
            let reason = if user.status == UserStatus::Active {
                DenialReason::NoPasswordLogin
            } else {
                DenialReason::Disabled
            };
            return self.deny(site, Some(user), reason);
        };
        let checked =
            self.check_first_factor(&record, password, PinCheck::Given(pin), &credential.hash)?;
        let (upgraded, pin_upgraded) = match checked {
            FirstFactor::Passed {
                upgraded,
                pin_upgraded,
            } => (upgraded, pin_upgraded),
            FirstFactor::Locked { until } => {
                return self.deny(site, Some(user), DenialReason::Locked { until });
            }
            FirstFactor::LockedMeanwhile => {
                return self.deny(site, Some(user), DenialReason::Locked { until: None });
            }
            FirstFactor::Busy => return self.deny(site, Some(user), DenialReason::TooManyAttempts),
            FirstFactor::WrongPassword { now_locked } => {
                return self.deny_failure(site, user, DenialReason::WrongPassword, now_locked);
            }
            FirstFactor::WrongPin { now_locked } => {
                return self.deny_failure(site, user, DenialReason::WrongPin, now_locked);
            }
        };
        let mut ctx = Context {
            user: user.id.clone(),
            site: site.clone(),
            hash_upgraded: false,
            credential: Some(credential.hash.clone()),
            change_password: false,
            signing_in: true,
        };
        if let Some(temporary) = &credential.temporary {
            if temporary.consumed_at.is_some() {
                return self.deny(site, Some(user), DenialReason::TemporaryPasswordUsed);
            }
            if now >= temporary.expires_at {
                return self.deny(site, Some(user), DenialReason::TemporaryPasswordExpired);
            }
            // A single-use temporary password is consumed once every other factor has
            // passed (see `complete`), so a user short of their authenticator keeps it.
            ctx.change_password = temporary.mode == TemporaryMode::SingleUse;
        }
        if let Some(new_hash) = upgraded.filter(|_| !ctx.change_password) {
            // Compare-and-swap: an administrator's change made meanwhile wins.
            let new = PasswordCredential {
                hash: stored(&new_hash),
                ..credential.clone()
            };
            if self
                .store
                .replace_password(&user.id, Some(&credential.hash), Some(&new))?
                == Swap::Swapped
            {
                ctx.hash_upgraded = true;
                ctx.credential = Some(new.hash);
                self.audit(
                    AuditEvent::new(
                        now,
                        Some(user.id.clone()),
                        AuditAction::HashUpgraded,
                        Some(user.id.clone()),
                        site.clone(),
                        AuditOutcome::Succeeded,
                    )
                    .with_details(format!("password hash upgraded to {}", new_hash.scheme())),
                )?;
            }
        }
        if let (Some(new_hash), Some(pin)) = (pin_upgraded, &record.pin) {
            let new = PinCredential::new(stored(&new_hash), pin.set_at);
            // Compare-and-swap, so a PIN changed meanwhile is not overwritten.
            let _ = self.store.replace_pin(&user.id, &pin.hash, &new)?;
        }
        self.second_factor(&record, ctx)
    }

    /// After the first factor: device authorization after a reset, a TOTP code, or on to
    /// [`complete`](Self::complete).
    fn second_factor(&self, record: &UserRecord, ctx: Context) -> Result<SignIn, Error> {
        let now = self.now();
        let user = &record.user;
        let has_second_factor = record.totp.reset_pending || record.totp.secret.is_some();
        if has_second_factor && record.totp_lock.is_locked(now) {
            // Refuse before anything is sent or asked for.
            let until = record.totp_lock.locked_until;
            return self.deny(&ctx.site, Some(user), DenialReason::TotpLocked { until });
        }
        if record.totp.reset_pending {
            if !self.can_store_totp_secrets() {
                // A configuration error: fail before a code is sent that could lead nowhere.
                return Err(Error::TotpKeyMissing);
            }
            let email = match (&user.email, user.email_verified) {
                (Some(email), true) => email.clone(),
                _ => return self.deny(&ctx.site, Some(user), DenialReason::NoVerifiedEmail),
            };
            // Reuse a live code (the user may sign in twice before reading the mail); send a
            // new one when there is none, or it expired or used up its tries.
            let live = record.totp.device_code.as_ref().is_some_and(|c| {
                now < c.expires_at && c.failed_tries < self.codes.device_code_max_tries
            });
            if !live {
                self.send_device_code(user, &email)?;
            }
            let reason = "device_authorization_required";
            self.audit_sign_in(Some(user), &ctx.site, AuditOutcome::Continued, reason)?;
            return Ok(SignIn::DeviceAuthorizationRequired(
                PendingDeviceAuthorization {
                    ctx,
                    issued_at: now,
                    retry: false,
                    sent_to: email,
                },
            ));
        }
        if record.totp.secret.is_some() {
            self.audit_sign_in(
                Some(user),
                &ctx.site,
                AuditOutcome::Continued,
                "totp_required",
            )?;
            return Ok(SignIn::TotpRequired(PendingTotp {
                ctx,
                issued_at: now,
                retry: false,
            }));
        }
        self.complete(record, ctx)
    }

    /// After every factor: the password change a single-use temporary password asks for, or
    /// done.
    fn complete(&self, record: &UserRecord, ctx: Context) -> Result<SignIn, Error> {
        if ctx.change_password {
            // Dead after first use, even when two sign-ins race: only one consumes it.
            let now = self.now();
            let consumed = match &ctx.credential {
                Some(hash) => self
                    .store
                    .consume_temporary_password(&ctx.user, hash, now)?,
                None => Consumed::AlreadyGone,
            };
            if consumed != Consumed::Now {
                let reason = DenialReason::TemporaryPasswordUsed;
                return self.deny(&ctx.site, Some(&record.user), reason);
            }
            let reason = "password_change_required";
            self.audit_sign_in(
                Some(&record.user),
                &ctx.site,
                AuditOutcome::Continued,
                reason,
            )?;
            return Ok(SignIn::PasswordChangeRequired(PendingPasswordChange {
                ctx,
                issued_at: self.now(),
                retry: false,
            }));
        }
        self.finish(record, &ctx)
    }

    fn finish(&self, record: &UserRecord, ctx: &Context) -> Result<SignIn, Error> {
        let mut user = record.user.clone();
        if ctx.signing_in {
            let now = self.now();
            self.store.record_sign_in(&user.id, now)?;
            let reason = "authenticated";
            self.audit_sign_in(Some(&user), &ctx.site, AuditOutcome::Succeeded, reason)?;
            user.last_sign_in_at = Some(now);
        }
        Ok(SignIn::Authenticated(Authenticated {
            user,
            hash_upgraded: ctx.hash_upgraded,
        }))
    }

    /// A counted failure; the audit event says when it locked the account.
    fn deny_failure(
        &self,
        site: &SiteId,
        user: &User,
        reason: DenialReason,
        now_locked: bool,
    ) -> Result<SignIn, Error> {
        let mut event = AuditEvent::new(
            self.now(),
            Some(user.id.clone()),
            AuditAction::SignIn,
            Some(user.id.clone()),
            site.clone(),
            AuditOutcome::Denied,
        )
        .with_reason(reason.as_str());
        if now_locked {
            event = event.with_details("this failure locked the account");
        }
        self.audit(event)?;
        Ok(SignIn::Denied(Denial::new(reason, Some(user.id.clone()))))
    }

    fn deny(
        &self,
        site: &SiteId,
        user: Option<&User>,
        reason: DenialReason,
    ) -> Result<SignIn, Error> {
        self.denial(site, user, reason).map(SignIn::Denied)
    }

    /// Audits a denial and returns it.
    fn denial(
        &self,
        site: &SiteId,
        user: Option<&User>,
        reason: DenialReason,
    ) -> Result<Denial, Error> {
        self.audit_sign_in(user, site, AuditOutcome::Denied, reason.as_str())?;
        Ok(Denial::new(reason, user.map(|u| u.id.clone())))
    }

    /// Loads the user of a pending step. The step is void when it waited too long, or when
    /// the account changed since it was issued: disabled, password changed or removed (an
    /// administrator removing a leaked temporary password ends the sign-ins it began), or
    /// the password lock holds.
    fn resume(
        &self,
        ctx: &Context,
        issued_at: OffsetDateTime,
    ) -> Result<Result<UserRecord, Denial>, Error> {
        let now = self.now();
        let record = self.load(&ctx.user)?;
        let user = Some(&record.user);
        let reason = if now >= issued_at.saturating_add(self.codes.pending_step_lifetime) {
            DenialReason::StepExpired
        } else if record.user.status != UserStatus::Active {
            DenialReason::Disabled
        } else if record.password_lock.is_locked(now) {
            DenialReason::Locked {
                until: record.password_lock.locked_until,
            }
        } else if record.password.as_ref().map(|p| &p.hash) != ctx.credential.as_ref() {
            DenialReason::AccountChanged
        } else {
            return Ok(Ok(record));
        };
        self.denial(&ctx.site, user, reason).map(Err)
    }

    /// Sets the new password after a single-use temporary password (and after any second
    /// factor). The new password must meet the user's password policy and differ from the
    /// temporary one.
    ///
    /// # Errors
    /// Store and hashing failures.
    pub fn complete_password_change(
        &self,
        pending: PendingPasswordChange,
        new_password: Password,
    ) -> Result<PasswordChange, Error> {
        let record = match self.resume(&pending.ctx, pending.issued_at)? {
            Ok(record) => record,
            Err(denial) => return Ok(PasswordChange::Denied(denial)),
        };
        let Some(temporary_hash) = pending.ctx.credential.clone() else {
            let denial = self.denial(
                &pending.ctx.site,
                Some(&record.user),
                DenialReason::AccountChanged,
            )?;
            return Ok(PasswordChange::Denied(denial));
        };
        let rules = self.passwords.password_rules(&record.user);
        if let Err(violation) = rules.check(&new_password, &record.user) {
            return Ok(PasswordChange::Rejected(pending, violation));
        }
        if self
            .hasher
            .verify(&new_password, &self.parse_hash(&temporary_hash)?)?
            .is_match()
        {
            return Ok(PasswordChange::Rejected(
                pending,
                PolicyViolation::SameAsTemporary,
            ));
        }
        let now = self.now();
        let hash = self.hasher.hash(&new_password)?;
        // Compare-and-swap against the temporary hash, so a concurrent admin change wins.
        let credential = PasswordCredential::permanent(stored(&hash), now);
        if self
            .store
            .replace_password(&record.user.id, Some(&temporary_hash), Some(&credential))?
            != Swap::Swapped
        {
            let denial = self.denial(
                &pending.ctx.site,
                Some(&record.user),
                DenialReason::AccountChanged,
            )?;
            return Ok(PasswordChange::Denied(denial));
        }
        self.audit(AuditEvent::new(
            now,
            Some(record.user.id.clone()),
            AuditAction::PasswordChanged,
            Some(record.user.id.clone()),
            pending.ctx.site.clone(),
            AuditOutcome::Succeeded,
        ))?;
        Ok(PasswordChange::Changed(self.finish(&record, &pending.ctx)?))
    }

    /// Checks a TOTP code. A code is accepted at most once (the store's atomic step
    /// acceptance); wrong codes count against the TOTP lock, apart from password failures.
    /// A wrong code hands the step back ([`PendingTotp::is_retry`]) until the lock holds.
    ///
    /// # Errors
    /// Store failures; a stored secret that cannot be opened (wrong or missing key, or a
    /// plain secret where a key is configured).
    pub fn verify_totp(&self, pending: PendingTotp, code: &OneTimeCode) -> Result<SignIn, Error> {
        let record = match self.resume(&pending.ctx, pending.issued_at)? {
            Ok(record) => record,
            Err(denial) => return Ok(SignIn::Denied(denial)),
        };
        let Some(secret) = &record.totp.secret else {
            return self.deny(
                &pending.ctx.site,
                Some(&record.user),
                DenialReason::AccountChanged,
            );
        };
        let secret = self.open_secret(secret, &record.user.id)?;
        let attempt = self.totp_attempt(&record, &pending.ctx.site, |now| {
            Ok(match crate::totp::verify(&self.totp, &secret, code, now)? {
                TotpCheck::Matched { step } => {
                    self.store.accept_totp_step(&record.user.id, step)? == StepAcceptance::Accepted
                }
                _ => false,
            })
        })?;
        match attempt {
            TotpAttempt::Accepted => {
                // A secret sealed under a previous key moves to the current one.
                let _ = self.reseal_if_rotated(&record.user.id);
                self.complete(&record, pending.ctx)
            }
            TotpAttempt::Refused(denial) => Ok(SignIn::Denied(denial)),
            TotpAttempt::Wrong => Ok(SignIn::TotpRequired(PendingTotp {
                retry: true,
                ..pending
            })),
        }
    }

    /// Runs one second-factor check (a TOTP code, a device code) under the TOTP lock
    /// counter: reserve, check, settle — the protocol passwords use. Wrong answers of every
    /// kind count against the same lock, so fresh device codes do not buy fresh guesses.
    fn totp_attempt(
        &self,
        record: &UserRecord,
        site: &SiteId,
        check: impl FnOnce(OffsetDateTime) -> Result<bool, Error>,
    ) -> Result<TotpAttempt, Error> {
        let now = self.now();
        let user = &record.user;
        let rule = self.lockout.totp_rule(user);
        let apply = |event: &LockEvent| {
            self.store
                .apply_lock_event(&user.id, LockCounter::Totp, &rule, event, now)
        };
        let locked = |until| -> Result<TotpAttempt, Error> {
            let denial = self.denial(site, Some(user), DenialReason::TotpLocked { until })?;
            Ok(TotpAttempt::Refused(denial))
        };
        match apply(&LockEvent::Attempt)?.1 {
            LockDecision::Proceed => {}
            LockDecision::Locked { until } => return locked(until),
            _ => {
                // As many codes as may still fail are being checked right now.
                let denial = self.denial(site, Some(user), DenialReason::TooManyAttempts)?;
                return Ok(TotpAttempt::Refused(denial));
            }
        }
        let ok = match check(now) {
            Ok(ok) => ok,
            Err(e) => {
                // Settle the reservation before reporting the failure.
                let _ = apply(&LockEvent::Failure);
                return Err(e);
            }
        };
        let event = if ok {
            LockEvent::Success
        } else {
            LockEvent::Failure
        };
        match apply(&event)?.1 {
            LockDecision::Cleared => Ok(TotpAttempt::Accepted),
            LockDecision::NowLocked { until } | LockDecision::Locked { until } => locked(until),
            LockDecision::SuccessWhileLocked => locked(None),
            _ => {
                let reason = DenialReason::WrongTotpCode.as_str();
                self.audit_sign_in(Some(user), site, AuditOutcome::Denied, reason)?;
                Ok(TotpAttempt::Wrong)
            }
        }
    }

    fn send_device_code(&self, user: &User, email: &str) -> Result<(), Error> {
        let now = self.now();
        let code = crate::recovery::numeric_code(self.codes.device_code_digits);
        let hash = self.hasher.hash(&Password::new(code.expose_secret()))?;
        let expires_at = now.saturating_add(self.codes.device_code_lifetime);
        let credential = OneTimeCredential::new(stored(&hash), now, expires_at);
        self.store
            .set_one_time(&user.id, OneTimeKind::DeviceCode, Some(&credential))?;
        let minutes = self.codes.device_code_lifetime.whole_minutes();
        let body = format!(
            "Your sign-in code is {}. It expires in {minutes} minutes. If you did not try to \
             sign in, tell your administrator.",
            code.expose_secret()
        );
        let to = Recipient::Email(email.to_owned());
        let message = Message::new(to, MessageKind::DeviceCode, "Your sign-in code", body);
        let receipt = match self.notifier.send(message) {
            Ok(receipt) => receipt,
            Err(e) => {
                // An undelivered code must not count as live and block a resend.
                let _ = self.store.consume_one_time(
                    &user.id,
                    OneTimeKind::DeviceCode,
                    &credential.hash,
                );
                return Err(e.into());
            }
        };
        self.audit(
            AuditEvent::new(
                now,
                None,
                AuditAction::DeviceCodeSent,
                Some(user.id.clone()),
                user.site.clone(),
                AuditOutcome::Succeeded,
            )
            .with_details(format!("sent to {}", receipt.to)),
        )
    }

    /// Checks the emailed device-authorization code after an authenticator reset. The code
    /// is single-use, expires, and allows a bounded number of wrong tries; wrong codes also
    /// count against the TOTP lock, so new codes do not buy an attacker new guesses. A right
    /// code moves on to enrolling a new authenticator.
    ///
    /// # Errors
    /// Store, hashing and TOTP failures ([`Error::TotpKeyMissing`] when no sealing key is
    /// configured).
    pub fn authorize_device(
        &self,
        pending: PendingDeviceAuthorization,
        code: &OneTimeCode,
    ) -> Result<SignIn, Error> {
        let record = match self.resume(&pending.ctx, pending.issued_at)? {
            Ok(record) => record,
            Err(denial) => return Ok(SignIn::Denied(denial)),
        };
        let id = &record.user.id;
        let max = self.codes.device_code_max_tries;
        let mut tried = None;
        let attempt = self.totp_attempt(&record, &pending.ctx.site, |now| {
            let outcome = self
                .store
                .try_one_time(id, OneTimeKind::DeviceCode, max, now)?;
            let matched = match &outcome {
                OneTimeTry::Available(credential) => {
                    let given = Password::new(code.expose_secret().trim());
                    self.verify_input_code(&given, &credential.hash)?
                        && self.store.consume_one_time(
                            id,
                            OneTimeKind::DeviceCode,
                            &credential.hash,
                        )? == Consumed::Now
                }
                _ => false,
            };
            tried = Some(outcome);
            Ok(matched)
        })?;
        let site = &pending.ctx.site;
        match attempt {
            TotpAttempt::Refused(denial) => return Ok(SignIn::Denied(denial)),
            TotpAttempt::Wrong => {
                return match tried {
                    Some(OneTimeTry::Expired | OneTimeTry::Absent) => {
                        self.deny(site, Some(&record.user), DenialReason::DeviceCodeExpired)
                    }
                    Some(OneTimeTry::Available(c)) if c.failed_tries < max => Ok(
                        SignIn::DeviceAuthorizationRequired(PendingDeviceAuthorization {
                            retry: true,
                            ..pending
                        }),
                    ),
                    _ => self.deny(site, Some(&record.user), DenialReason::DeviceCodeExhausted),
                };
            }
            TotpAttempt::Accepted => {}
        }
        self.audit_sign_in(
            Some(&record.user),
            site,
            AuditOutcome::Continued,
            "device_authorized",
        )?;
        let account = record
            .user
            .email
            .clone()
            .unwrap_or_else(|| record.user.username.clone());
        let enrollment = crate::totp::enroll(&self.totp, &account)?;
        let sealed = self.seal_secret(enrollment.secret(), id)?;
        // Compare-and-swap on the TOTP state as it is now (the code was just consumed), so a
        // concurrent administrator reset is not undone.
        let current = self.load(id)?.totp;
        let next = TotpState {
            pending_secret: Some(sealed),
            device_code: None,
            ..current.clone()
        };
        if self.store.replace_totp(id, &current, &next)? != Swap::Swapped {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        }
        let reason = "totp_enrollment_required";
        self.audit_sign_in(Some(&record.user), site, AuditOutcome::Continued, reason)?;
        Ok(SignIn::TotpEnrollmentRequired(PendingEnrollment {
            ctx: pending.ctx,
            issued_at: self.now(),
            retry: false,
            enrollment,
        }))
    }

    /// Verifies a short code against its stored hash; input the hasher refuses outright is
    /// simply wrong.
    fn verify_input_code(&self, given: &Password, stored: &StoredHash) -> Result<bool, Error> {
        match self.hasher.verify(given, &self.parse_hash(stored)?) {
            Ok(v) => Ok(v.is_match()),
            Err(crate::error::HashError::PasswordTooLong { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Starts adding an authenticator for a signed-in user (self-service enrollment). The
    /// secret is stored sealed as pending and becomes active only when
    /// [`confirm_enrollment`](Self::confirm_enrollment) accepts a code from it; that records
    /// no new sign-in.
    ///
    /// # Errors
    /// [`Error::TotpResetPending`] after an administrator reset (the user must go through
    /// device authorization at sign-in instead); [`Error::TotpKeyMissing`] when no sealing
    /// key is configured; [`StoreError::Conflict`](crate::StoreError::Conflict) when the TOTP
    /// state changed meanwhile; store and TOTP failures.
    pub fn enroll_totp(&self, user: &UserId) -> Result<PendingEnrollment, Error> {
        let record = self.load(user)?;
        if record.totp.reset_pending {
            return Err(Error::TotpResetPending { user: user.clone() });
        }
        let account = record
            .user
            .email
            .clone()
            .unwrap_or_else(|| record.user.username.clone());
        let enrollment = crate::totp::enroll(&self.totp, &account)?;
        let sealed = self.seal_secret(enrollment.secret(), user)?;
        let next = TotpState {
            pending_secret: Some(sealed),
            ..record.totp.clone()
        };
        if self.store.replace_totp(user, &record.totp, &next)? != Swap::Swapped {
            return Err(crate::StoreError::Conflict { what: "TOTP state" }.into());
        }
        let ctx = Context {
            user: user.clone(),
            site: record.user.site.clone(),
            hash_upgraded: false,
            credential: record.password.map(|p| p.hash),
            change_password: false,
            signing_in: false,
        };
        Ok(PendingEnrollment {
            ctx,
            issued_at: self.now(),
            retry: false,
            enrollment,
        })
    }

    /// Confirms a new authenticator with its first code: the secret becomes active (its
    /// step counts as used) and the sign-in continues. A wrong code hands the step back until
    /// the TOTP lock holds.
    ///
    /// # Errors
    /// Store and TOTP failures.
    pub fn confirm_enrollment(
        &self,
        pending: PendingEnrollment,
        code: &OneTimeCode,
    ) -> Result<SignIn, Error> {
        let record = match self.resume(&pending.ctx, pending.issued_at)? {
            Ok(record) => record,
            Err(denial) => return Ok(SignIn::Denied(denial)),
        };
        let site = &pending.ctx.site;
        let Some(sealed) = record.totp.pending_secret.clone() else {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        };
        let secret = self.open_secret(&sealed, &record.user.id)?;
        // Only the secret this step showed may be confirmed: a later enrollment replaced it.
        let shown = pending.enrollment.secret().expose_secret();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(secret.expose_secret(), shown)) {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        }
        let mut matched_step = None;
        let attempt = self.totp_attempt(&record, site, |now| {
            Ok(match crate::totp::verify(&self.totp, &secret, code, now)? {
                TotpCheck::Matched { step } => {
                    matched_step = Some(step);
                    true
                }
                _ => false,
            })
        })?;
        match attempt {
            TotpAttempt::Accepted => {}
            TotpAttempt::Refused(denial) => return Ok(SignIn::Denied(denial)),
            TotpAttempt::Wrong => {
                return Ok(SignIn::TotpEnrollmentRequired(PendingEnrollment {
                    retry: true,
                    ..pending
                }));
            }
        }
        let next = TotpState {
            secret: Some(sealed),
            last_step: matched_step,
            reset_pending: false,
            pending_secret: None,
            device_code: None,
        };
        // Only the pending secret this step showed may be promoted: a reset or another
        // enrollment meanwhile wins.
        if self
            .store
            .replace_totp(&record.user.id, &record.totp, &next)?
            != Swap::Swapped
        {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        }
        self.audit(AuditEvent::new(
            self.now(),
            Some(record.user.id.clone()),
            AuditAction::TotpEnrolled,
            Some(record.user.id.clone()),
            site.clone(),
            AuditOutcome::Succeeded,
        ))?;
        self.complete(&record, pending.ctx)
    }
}
