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
use crate::store::{Consumed, LockCounter, OneTimeKind, OneTimeTry, StepAcceptance};
use crate::totp::{Enrollment, TotpCheck};
use crate::user::{
    OneTimeCredential, PasswordCredential, SiteId, StoredHash, TemporaryMode, TotpState, User,
    UserId, UserRecord, UserStatus,
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
            user: UserId,
            site: SiteId,
            issued_at: OffsetDateTime,
            hash_upgraded: bool,
            retry: bool,
            $($field: $ty,)*
        }

        impl $name {
            /// The user this step belongs to.
            #[must_use]
            pub fn user(&self) -> &UserId {
                &self.user
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
                    .field("user", &self.user)
                    .field("issued_at", &self.issued_at)
                    .field("retry", &self.retry)
                    .finish_non_exhaustive()
            }
        }
    };
}

pending!(
    /// A single-use temporary password was used; finish with
    /// [`Keyward::complete_password_change`].
    PendingPasswordChange { temporary_hash: StoredHash }
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
    /// The step waited too long or the account changed meanwhile.
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

struct Context {
    user: UserId,
    site: SiteId,
    hash_upgraded: bool,
}

impl Keyward {
    /// Signs a user in with a password and, where the user has one, a PIN.
    ///
    /// Unknown users, wrong passwords or PINs, expired temporary passwords and locked
    /// accounts all come back as [`SignIn::Denied`] with the same
    /// [`user_message`](Denial::user_message) and after the same hashing work; the precise
    /// reason is in [`Denial::reason`] and in the audit trail.
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
                if user.sso_linked && c.temporary.is_none() {
                    None
                } else {
                    Some(c)
                }
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
        if let Some(temporary) = &credential.temporary {
            if temporary.consumed_at.is_some() {
                return self.deny(site, Some(user), DenialReason::TemporaryPasswordUsed);
            }
            if now >= temporary.expires_at {
                return self.deny(site, Some(user), DenialReason::TemporaryPasswordExpired);
            }
            if temporary.mode == TemporaryMode::SingleUse {
                // Dead after first use, even when two sign-ins race: only one consumes it.
                return match self.store.consume_temporary_password(
                    &user.id,
                    &credential.hash,
                    now,
                )? {
                    Consumed::Now => {
                        self.audit_sign_in(
                            Some(user),
                            site,
                            AuditOutcome::Continued,
                            "password_change_required",
                        )?;
                        Ok(SignIn::PasswordChangeRequired(PendingPasswordChange {
                            user: user.id.clone(),
                            site: site.clone(),
                            issued_at: now,
                            hash_upgraded: false,
                            retry: false,
                            temporary_hash: credential.hash.clone(),
                        }))
                    }
                    Consumed::AlreadyGone => {
                        self.deny(site, Some(user), DenialReason::TemporaryPasswordUsed)
                    }
                };
            }
        }
        let mut hash_upgraded = false;
        if let Some(new_hash) = upgraded {
            // Compare-and-swap: an administrator's change made meanwhile wins.
            let upgraded = PasswordCredential {
                hash: stored(&new_hash),
                ..credential.clone()
            };
            let swap = self
                .store
                .replace_password(&user.id, &credential.hash, &upgraded)?;
            if swap == crate::store::Swap::Swapped {
                hash_upgraded = true;
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
            let credential = crate::user::PinCredential::new(stored(&new_hash), pin.set_at);
            self.store.set_pin(&user.id, Some(&credential))?;
        }
        self.second_factor(
            &record,
            Context {
                user: user.id.clone(),
                site: site.clone(),
                hash_upgraded,
            },
        )
    }

    /// After the first factor (and any password change): TOTP, device authorization after a
    /// reset, or done.
    fn second_factor(&self, record: &UserRecord, ctx: Context) -> Result<SignIn, Error> {
        let now = self.now();
        let user = &record.user;
        if record.totp.reset_pending {
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
            self.audit_sign_in(
                Some(user),
                &ctx.site,
                AuditOutcome::Continued,
                "device_authorization_required",
            )?;
            return Ok(SignIn::DeviceAuthorizationRequired(
                PendingDeviceAuthorization {
                    user: ctx.user,
                    site: ctx.site,
                    issued_at: now,
                    hash_upgraded: ctx.hash_upgraded,
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
                user: ctx.user,
                site: ctx.site,
                issued_at: now,
                hash_upgraded: ctx.hash_upgraded,
                retry: false,
            }));
        }
        self.finish(record, ctx.hash_upgraded)
    }

    fn finish(&self, record: &UserRecord, hash_upgraded: bool) -> Result<SignIn, Error> {
        let now = self.now();
        self.store.record_sign_in(&record.user.id, now)?;
        self.audit_sign_in(
            Some(&record.user),
            &record.user.site,
            AuditOutcome::Succeeded,
            "authenticated",
        )?;
        let mut user = record.user.clone();
        user.last_sign_in_at = Some(now);
        Ok(SignIn::Authenticated(Authenticated {
            user,
            hash_upgraded,
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

    /// Loads the user of a pending step, refusing a step that waited too long.
    fn resume(
        &self,
        user: &UserId,
        site: &SiteId,
        issued_at: OffsetDateTime,
    ) -> Result<Result<UserRecord, SignIn>, Error> {
        let record = self.load(user)?;
        if self.now() >= issued_at.saturating_add(self.codes.pending_step_lifetime) {
            return self
                .deny(site, Some(&record.user), DenialReason::StepExpired)
                .map(Err);
        }
        if record.user.status != UserStatus::Active {
            return self
                .deny(site, Some(&record.user), DenialReason::Disabled)
                .map(Err);
        }
        Ok(Ok(record))
    }

    /// Sets the new password after a single-use temporary password. The new password must
    /// meet the user's password policy and differ from the temporary one.
    ///
    /// # Errors
    /// Store and hashing failures.
    pub fn complete_password_change(
        &self,
        pending: PendingPasswordChange,
        new_password: Password,
    ) -> Result<PasswordChange, Error> {
        let record = match self.resume(&pending.user, &pending.site, pending.issued_at)? {
            Ok(record) => record,
            Err(SignIn::Denied(denial)) => return Ok(PasswordChange::Denied(denial)),
            Err(other) => return Ok(PasswordChange::Changed(other)),
        };
        // The temporary password must still be the one this step was issued for: an
        // administrator may have replaced or removed it meanwhile.
        if record.password.as_ref().map(|p| &p.hash) != Some(&pending.temporary_hash) {
            let denial = Denial::new(
                DenialReason::TemporaryPasswordUsed,
                Some(pending.user.clone()),
            );
            self.audit_sign_in(
                Some(&record.user),
                &pending.site,
                AuditOutcome::Denied,
                "temporary_password_replaced",
            )?;
            return Ok(PasswordChange::Denied(denial));
        }
        let rules = self.passwords.password_rules(&record.user);
        if let Err(violation) = rules.check(&new_password, &record.user) {
            return Ok(PasswordChange::Rejected(pending, violation));
        }
        let temporary = self.parse_hash(&pending.temporary_hash)?;
        if self.hasher.verify(&new_password, &temporary)?.is_match() {
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
            .replace_password(&pending.user, &pending.temporary_hash, &credential)?
            != crate::store::Swap::Swapped
        {
            let denial = Denial::new(
                DenialReason::TemporaryPasswordUsed,
                Some(pending.user.clone()),
            );
            return Ok(PasswordChange::Denied(denial));
        }
        self.audit(AuditEvent::new(
            now,
            Some(pending.user.clone()),
            AuditAction::PasswordChanged,
            Some(pending.user.clone()),
            pending.site.clone(),
            AuditOutcome::Succeeded,
        ))?;
        let record = self.load(&pending.user)?;
        let ctx = Context {
            user: pending.user,
            site: pending.site,
            hash_upgraded: pending.hash_upgraded,
        };
        Ok(PasswordChange::Changed(self.second_factor(&record, ctx)?))
    }

    /// Checks a TOTP code. A code is accepted at most once (the store's atomic step
    /// acceptance); wrong codes count against the TOTP lock, apart from password failures.
    /// A wrong code hands the step back ([`PendingTotp::is_retry`]) until the lock holds.
    ///
    /// # Errors
    /// Store failures; a stored secret that cannot be opened (wrong or missing key).
    pub fn verify_totp(&self, pending: PendingTotp, code: &OneTimeCode) -> Result<SignIn, Error> {
        let record = match self.resume(&pending.user, &pending.site, pending.issued_at)? {
            Ok(record) => record,
            Err(outcome) => return Ok(outcome),
        };
        let Some(secret) = &record.totp.secret else {
            return self.deny(&pending.site, Some(&record.user), DenialReason::StepExpired);
        };
        let secret = self.open_secret(secret, &record.user.id)?;
        let accepted = self.totp_attempt(&record, &pending.site, |now| {
            Ok(match crate::totp::verify(&self.totp, &secret, code, now)? {
                TotpCheck::Matched { step } => {
                    self.store.accept_totp_step(&record.user.id, step)? == StepAcceptance::Accepted
                }
                _ => false,
            })
        })?;
        match accepted {
            TotpAttempt::Accepted => self.finish(&record, pending.hash_upgraded),
            TotpAttempt::Refused(denial) => Ok(SignIn::Denied(denial)),
            TotpAttempt::Wrong => Ok(SignIn::TotpRequired(PendingTotp {
                retry: true,
                ..pending
            })),
        }
    }

    /// Runs one TOTP code check under the TOTP lock counter (reserve, check, settle), with
    /// the same protocol as passwords.
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
            _ => return locked(None),
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
        let credential = OneTimeCredential::new(
            stored(&hash),
            now,
            now.saturating_add(self.codes.device_code_lifetime),
        );
        self.store
            .set_one_time(&user.id, OneTimeKind::DeviceCode, Some(&credential))?;
        let minutes = self.codes.device_code_lifetime.whole_minutes();
        let body = format!(
            "Your sign-in code is {}. It expires in {minutes} minutes. If you did not try to \
             sign in, tell your administrator.",
            code.expose_secret()
        );
        let message = Message::new(
            Recipient::Email(email.to_owned()),
            MessageKind::DeviceCode,
            "Your sign-in code",
            body,
        );
        let receipt = self.notifier.send(message)?;
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
    /// is single-use, expires, and allows a bounded number of wrong tries; a right code moves
    /// on to enrolling a new authenticator.
    ///
    /// # Errors
    /// Store, hashing and TOTP failures ([`Error::TotpKeyMissing`] when no sealing key is
    /// configured).
    pub fn authorize_device(
        &self,
        pending: PendingDeviceAuthorization,
        code: &OneTimeCode,
    ) -> Result<SignIn, Error> {
        let record = match self.resume(&pending.user, &pending.site, pending.issued_at)? {
            Ok(record) => record,
            Err(outcome) => return Ok(outcome),
        };
        let now = self.now();
        let id = &record.user.id;
        let max = self.codes.device_code_max_tries;
        let credential = match self
            .store
            .try_one_time(id, OneTimeKind::DeviceCode, max, now)?
        {
            OneTimeTry::Available(credential) => credential,
            OneTimeTry::Expired | OneTimeTry::Absent => {
                return self.deny(
                    &pending.site,
                    Some(&record.user),
                    DenialReason::DeviceCodeExpired,
                );
            }
            OneTimeTry::Exhausted => {
                return self.deny(
                    &pending.site,
                    Some(&record.user),
                    DenialReason::DeviceCodeExhausted,
                );
            }
        };
        let given = Password::new(code.expose_secret().trim());
        let matched = self
            .hasher
            .verify(&given, &self.parse_hash(&credential.hash)?)?
            .is_match();
        if !matched {
            self.audit_sign_in(
                Some(&record.user),
                &pending.site,
                AuditOutcome::Denied,
                "wrong_device_code",
            )?;
            if credential.failed_tries >= max {
                return self.deny(
                    &pending.site,
                    Some(&record.user),
                    DenialReason::DeviceCodeExhausted,
                );
            }
            return Ok(SignIn::DeviceAuthorizationRequired(
                PendingDeviceAuthorization {
                    retry: true,
                    ..pending
                },
            ));
        }
        if self
            .store
            .consume_one_time(id, OneTimeKind::DeviceCode, &credential.hash)?
            != Consumed::Now
        {
            return self.deny(
                &pending.site,
                Some(&record.user),
                DenialReason::DeviceCodeExpired,
            );
        }
        self.audit_sign_in(
            Some(&record.user),
            &pending.site,
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
        let mut totp = record.totp.clone();
        totp.pending_secret = Some(sealed);
        totp.device_code = None;
        self.store.set_totp(id, &totp)?;
        self.audit_sign_in(
            Some(&record.user),
            &pending.site,
            AuditOutcome::Continued,
            "totp_enrollment_required",
        )?;
        Ok(SignIn::TotpEnrollmentRequired(PendingEnrollment {
            user: pending.user,
            site: pending.site,
            issued_at: now,
            hash_upgraded: pending.hash_upgraded,
            retry: false,
            enrollment,
        }))
    }

    /// Starts adding an authenticator for a signed-in user (self-service enrollment). The
    /// secret is stored sealed as pending and becomes active only when
    /// [`confirm_enrollment`](Self::confirm_enrollment) accepts a code from it.
    ///
    /// # Errors
    /// [`Error::TotpKeyMissing`] when no sealing key is configured; store and TOTP failures.
    pub fn enroll_totp(&self, user: &UserId) -> Result<PendingEnrollment, Error> {
        let record = self.load(user)?;
        let account = record
            .user
            .email
            .clone()
            .unwrap_or_else(|| record.user.username.clone());
        let enrollment = crate::totp::enroll(&self.totp, &account)?;
        let mut totp = record.totp.clone();
        totp.pending_secret = Some(self.seal_secret(enrollment.secret(), user)?);
        self.store.set_totp(user, &totp)?;
        Ok(PendingEnrollment {
            user: user.clone(),
            site: record.user.site,
            issued_at: self.now(),
            hash_upgraded: false,
            retry: false,
            enrollment,
        })
    }

    /// Confirms a new authenticator with its first code: the secret becomes active and the
    /// sign-in completes. A wrong code hands the step back until the TOTP lock holds.
    ///
    /// # Errors
    /// Store and TOTP failures.
    pub fn confirm_enrollment(
        &self,
        pending: PendingEnrollment,
        code: &OneTimeCode,
    ) -> Result<SignIn, Error> {
        let record = match self.resume(&pending.user, &pending.site, pending.issued_at)? {
            Ok(record) => record,
            Err(outcome) => return Ok(outcome),
        };
        let Some(sealed) = record.totp.pending_secret.clone() else {
            return self.deny(&pending.site, Some(&record.user), DenialReason::StepExpired);
        };
        let secret = self.open_secret(&sealed, &record.user.id)?;
        let mut matched_step = None;
        let accepted = self.totp_attempt(&record, &pending.site, |now| {
            Ok(match crate::totp::verify(&self.totp, &secret, code, now)? {
                TotpCheck::Matched { step } => {
                    matched_step = Some(step);
                    true
                }
                _ => false,
            })
        })?;
        match accepted {
            TotpAttempt::Accepted => {}
            TotpAttempt::Refused(denial) => return Ok(SignIn::Denied(denial)),
            TotpAttempt::Wrong => {
                return Ok(SignIn::TotpEnrollmentRequired(PendingEnrollment {
                    retry: true,
                    ..pending
                }));
            }
        }
        let totp = TotpState {
            secret: Some(sealed),
            last_step: matched_step,
            reset_pending: false,
            pending_secret: None,
            device_code: None,
        };
        self.store.set_totp(&record.user.id, &totp)?;
        self.audit(AuditEvent::new(
            self.now(),
            Some(record.user.id.clone()),
            AuditAction::TotpEnrolled,
            Some(record.user.id.clone()),
            pending.site.clone(),
            AuditOutcome::Succeeded,
        ))?;
        self.finish(&record, pending.hash_upgraded)
    }
}
