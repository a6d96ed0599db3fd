//! The sign-in flow: first factor, then the steps that follow, then done.
//!
//! [`Keyward::sign_in`] checks the first factor (password, and PIN where the user has one)
//! and returns a [`SignIn`]. Further steps are finished by the `Keyward` method named on each
//! pending type, which consumes it: [`PendingPasswordChange`] by
//! [`Keyward::complete_password_change`] (in this file), [`PendingTotp`] by
//! [`Keyward::verify_totp`] and [`PendingDeviceAuthorization`] by
//! [`Keyward::authorize_device`] (in `signin/second_factor.rs`), [`PendingEnrollment`] by
//! [`Keyward::confirm_enrollment`] (in `signin/enrollment.rs`). The types themselves are in
//! `signin/outcome.rs`.
//!
//! A failed sign-in is an ordinary outcome, [`SignIn::Denied`]; `Err` means the system
//! failed.

use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::guard::{FailureLock, FirstFactor, FirstFactorFound, PinCheck, Settled};
use crate::policy::PolicyViolation;
use crate::secret::{Password, Pin};
use crate::service::{Keyward, stored};
use crate::stamp;
use crate::store::{Consumed, Swap, UserRecord, ops};
use crate::user::{
    PasswordCredential, PinCredential, SiteId, TemporaryMode, TemporaryStatus, User, UserStatus,
};

mod enrollment;
mod outcome;
mod recovery_codes;
mod second_factor;
mod step_up;
mod travel;

use outcome::Context;
pub use outcome::{
    Authenticated, AuthenticatorAdded, Denial, DenialReason, FIRST_FACTOR_MESSAGE, PasswordChange,
    PendingDeviceAuthorization, PendingEnrollment, PendingPasswordChange, PendingTotp, SignIn,
};
pub use step_up::{Reauthentication, StepUp};
pub use travel::{MAX_SEALED_STEP_LEN, PendingStep, SealedStep};

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
        let _span = tracing::info_span!("keyward.sign_in").entered();
        let now = self.now();
        let Some(mut record) = self.store.find_user(site, username)? else {
            self.first_factor_decoy(password);
            return self.deny(site, None, DenialReason::UnknownUser);
        };
        let user = &record.user;
        let credential = match &record.password {
            Some(c) if user.status == UserStatus::Active => {
                // SSO-linked users have standard login only through a temporary password.
                (!user.sso_linked || c.temporary.is_some()).then(|| c.clone())
            }
            _ => None,
        };
        let Some(credential) = credential else {
            self.first_factor_decoy(password);
            let reason = if user.status == UserStatus::Active {
                DenialReason::NoPasswordLogin
            } else {
                DenialReason::Disabled
            };
            return self.deny(site, Some(user), reason);
        };
        // A sign-in that ends with the first factor (no second factor, no forced change, no
        // hash to upgrade) records its time and its event with the settle: one transaction.
        let completes_here = !record.totp.reset_pending
            && record.totp.secret.is_none()
            && credential.temporary.as_ref().is_none_or(|t| {
                t.mode == TemporaryMode::AdminManaged && t.status(now) == TemporaryStatus::Live
            });
        let id = Some(&user.id);
        let success = self.event(AuditAction::SignIn, AuditOutcome::Succeeded, id, id, site);
        let success = success.with_reason("authenticated");
        let denied = self.event(AuditAction::SignIn, AuditOutcome::Denied, id, id, site);
        let mut signed_in: Option<UserRecord> = None;
        let mut changed_meanwhile = false;
        let verified = &record;
        let mut on_settle = |settled: &Settled<'_, FirstFactorFound>, r: &mut UserRecord| {
            signed_in = None;
            // An administrator's change made while the guess was evaluated (a new password,
            // TOTP turned on or reset, the account disabled) wins: the sign-in does not
            // complete on state it never verified.
            changed_meanwhile = !stamp::same_credentials(verified, r);
            match settled {
                Settled::Passed(_) if changed_meanwhile => Vec::new(),
                Settled::Passed(found) if completes_here && !found.upgrade_due() => {
                    r.user.last_sign_in_at = Some(now);
                    signed_in = Some(r.clone());
                    vec![success.clone()]
                }
                // Every counted failure settles here, so its denial commits with it.
                Settled::Failed { found, lock } => {
                    let reason = if found.password_matched() {
                        DenialReason::WrongPin
                    } else {
                        DenialReason::WrongPassword
                    };
                    let now_locked = matches!(lock, FailureLock::NowLocked { .. });
                    vec![failure_event(&denied, reason, now_locked)]
                }
                _ => Vec::new(),
            }
        };
        let checked = self.check_first_factor_recorded(
            &record,
            password,
            PinCheck::Given(pin),
            &credential.hash,
            &mut on_settle,
        )?;
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
            // Audited with the settle (`on_settle`).
            FirstFactor::WrongPassword => {
                let reason = DenialReason::WrongPassword;
                return Ok(SignIn::Denied(Denial::new(reason, Some(user.id.clone()))));
            }
            FirstFactor::WrongPin => {
                let reason = DenialReason::WrongPin;
                return Ok(SignIn::Denied(Denial::new(reason, Some(user.id.clone()))));
            }
        };
        if changed_meanwhile {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        }
        if let Some(after) = signed_in {
            // Recorded with the settle: done, with the stamp of the record as it committed.
            return Ok(SignIn::Authenticated(Authenticated {
                stamp: self.stamp_of(&after)?,
                user: after.user,
                hash_upgraded: false,
                recovery_codes: None,
            }));
        }
        let mut ctx = Context {
            user: user.id.clone(),
            site: site.clone(),
            hash_upgraded: false,
            // Bound to the account when a step is issued (`issue`).
            binding: [0; 32],
            change_password: false,
            signing_in: true,
            recovery_codes_due: false,
        };
        if let Some(temporary) = &credential.temporary {
            let reason = match temporary.status(now) {
                TemporaryStatus::Live => None,
                TemporaryStatus::Expired => Some(DenialReason::TemporaryPasswordExpired),
                TemporaryStatus::Used => Some(DenialReason::TemporaryPasswordUsed),
            };
            if let Some(reason) = reason {
                return self.deny(site, Some(user), reason);
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
            // The new hash and its event commit together.
            let details = format!("password hash upgraded to {}", new_hash.scheme());
            let event = self.own_event(AuditAction::HashUpgraded, &user.id, site);
            let old = credential.hash.clone();
            let swapped =
                self.change_with_events(&user.id, vec![event.with_details(details)], |r| {
                    ops::swap_password(r, Some(&old), Some(&new)) == Swap::Swapped
                })?;
            if !swapped {
                // The password changed since it was verified: that change wins.
                return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
            }
            ctx.hash_upgraded = true;
            // The steps that follow rest on the password as it is now.
            record.password = Some(new);
        }
        if let (Some(new_hash), Some(pin)) = (pin_upgraded, &record.pin) {
            let new = PinCredential::new(stored(&new_hash), pin.set_at);
            // Compare-and-swap, so a PIN changed meanwhile is not overwritten.
            if self.store.replace_pin(&record.user.id, &pin.hash, &new)? == Swap::Swapped {
                record.pin = Some(new);
            }
        }
        self.second_factor(&record, ctx)
    }

    /// After every factor: the password change a single-use temporary password asks for, or
    /// done.
    fn complete(&self, record: &UserRecord, ctx: Context) -> Result<SignIn, Error> {
        if ctx.change_password {
            // Dead after first use, even when two sign-ins race: only one consumes it.
            let now = self.now();
            // Consumed together with the event saying the sign-in goes on to a new password.
            let id = Some(&record.user.id);
            let event = self.event(
                AuditAction::SignIn,
                AuditOutcome::Continued,
                id,
                id,
                &ctx.site,
            );
            let event = event.with_reason("password_change_required");
            // The record in hand is the one the first factor matched, or one a resumed step
            // was bound to: its password is the temporary password that was used.
            let consumed = match record.password.as_ref().map(|p| &p.hash) {
                Some(hash) => self.change_with_events(&ctx.user, vec![event], |r| {
                    ops::consume_temporary(r, hash, now) == Consumed::Now
                })?,
                None => false,
            };
            if !consumed {
                let reason = DenialReason::TemporaryPasswordUsed;
                return self.deny(&ctx.site, Some(&record.user), reason);
            }
            return Ok(match self.issue(ctx, record)? {
                Ok(ctx) => SignIn::PasswordChangeRequired(PendingPasswordChange {
                    ctx,
                    issued_at: self.now(),
                    retry: false,
                }),
                Err(denial) => SignIn::Denied(denial),
            });
        }
        self.finish(record, &ctx)
    }

    /// Binds a step about to be issued to the account as it is now (one store read: the
    /// steps so far may have changed it), after checking that it still holds what the sign-in
    /// verified in `verified` ([`stamp::same_credentials`], as the settle and `finish` do). An
    /// administrator's change in between denies the sign-in.
    fn issue(
        &self,
        mut ctx: Context,
        verified: &UserRecord,
    ) -> Result<Result<Context, Denial>, Error> {
        let record = self.load(&ctx.user)?;
        if !stamp::same_credentials(verified, &record) {
            let reason = DenialReason::AccountChanged;
            return self.denial(&ctx.site, Some(&record.user), reason).map(Err);
        }
        ctx.binding = stamp::binding(&record);
        Ok(Ok(ctx))
    }

    /// Done: records the sign-in (its time and its event, together) on the account as
    /// `record` holds it, what the steps verified and changed. If an administrator changed
    /// the credentials, TOTP, status or role meanwhile, that change wins and the sign-in is
    /// denied; the stamp is that of the record the sign-in committed on.
    fn finish(&self, record: &UserRecord, ctx: &Context) -> Result<SignIn, Error> {
        let id = &record.user.id;
        let now = self.now();
        let (who, site) = (Some(id), &ctx.site);
        let event = self.event(AuditAction::SignIn, AuditOutcome::Succeeded, who, who, site);
        let mut events = if ctx.signing_in {
            vec![event.with_reason("authenticated")]
        } else {
            Vec::new()
        };
        // A sign-in that enrolled a new authenticator gets its recovery codes now, with the
        // sign-in, so that no pending step ever carried them.
        let codes = if ctx.recovery_codes_due {
            self.new_recovery_codes(id)?
        } else {
            None
        };
        if let Some((codes, _)) = &codes {
            // Recorded before the sign-in it completes.
            events.insert(0, self.recovery_codes_event(id, site, codes.len()));
        }
        let mut after = None;
        let current = self.change_with_events(id, events, |r| {
            if !stamp::same_credentials(record, r) {
                return false;
            }
            if ctx.signing_in {
                r.user.last_sign_in_at = Some(now);
            }
            if let Some((_, digests)) = &codes {
                r.totp.recovery_codes.clone_from(digests);
            }
            after = Some(r.clone());
            true
        })?;
        let Some(after) = after.filter(|_| current) else {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        };
        Ok(SignIn::Authenticated(Authenticated {
            stamp: self.stamp_of(&after)?,
            user: after.user,
            hash_upgraded: ctx.hash_upgraded,
            recovery_codes: codes.map(|(codes, _)| Box::new(codes)),
        }))
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
        let reason = if self.codes.step_expired(issued_at, now) {
            DenialReason::StepExpired
        } else if record.user.status != UserStatus::Active {
            DenialReason::Disabled
        } else if record.password_lock.is_locked(now) {
            DenialReason::Locked {
                until: record.password_lock.locked_until,
            }
        } else if !stamp::same_binding(&stamp::binding(&record), &ctx.binding) {
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
        let _span = tracing::info_span!("keyward.complete_password_change").entered();
        let record = match self.resume(&pending.ctx, pending.issued_at)? {
            Ok(record) => record,
            Err(denial) => return Ok(PasswordChange::Denied(denial)),
        };
        // The step's binding held, so this is the temporary password the sign-in used.
        let Some(temporary_hash) = record.password.as_ref().map(|p| p.hash.clone()) else {
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
            .verify_secret(&new_password, &temporary_hash)?
            .is_match()
        {
            return Ok(PasswordChange::Rejected(
                pending,
                PolicyViolation::SameAsTemporary,
            ));
        }
        let now = self.now();
        let hash = self.hasher.hash(&new_password)?;
        // Compare-and-swap against the temporary hash, so a concurrent admin change wins; the
        // new password and its event commit together.
        let credential = PasswordCredential::permanent(stored(&hash), now);
        let (id, site) = (&record.user.id, &pending.ctx.site);
        let event = self.own_event(AuditAction::PasswordChanged, id, site);
        let swapped = self.change_with_events(id, vec![event], |r| {
            ops::swap_password(r, Some(&temporary_hash), Some(&credential)) == Swap::Swapped
        })?;
        if !swapped {
            let reason = DenialReason::AccountChanged;
            let denial = self.denial(site, Some(&record.user), reason)?;
            return Ok(PasswordChange::Denied(denial));
        }
        // The sign-in finishes on the password it just set.
        let mut record = record;
        record.password = Some(credential);
        Ok(PasswordChange::Changed(self.finish(&record, &pending.ctx)?))
    }

    /// Audits a sign-in decision.
    fn audit_sign_in(
        &self,
        user: Option<&User>,
        site: &SiteId,
        outcome: AuditOutcome,
        reason: &str,
    ) -> Result<(), Error> {
        let id = user.map(|u| &u.id);
        let event = self.event(AuditAction::SignIn, outcome, id, id, site);
        self.audit(event.with_reason(reason))
    }
}

/// The audit event of a counted first-factor failure: `denied` with its reason, and a note
/// when this failure locked the account.
fn failure_event(denied: &AuditEvent, reason: DenialReason, now_locked: bool) -> AuditEvent {
    let event = denied.clone().with_reason(reason.as_str());
    if now_locked {
        event.with_details("this failure locked the account")
    } else {
        event
    }
}
