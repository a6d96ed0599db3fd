//! The second factor at sign-in: which step follows the first factor, a TOTP code, and the
//! device authorization (an emailed code) after an administrator reset the authenticator.

use time::OffsetDateTime;

use super::outcome::{
    Context, Denial, DenialReason, PendingDeviceAuthorization, PendingEnrollment, PendingTotp,
    SignIn,
};
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::guard::{FailureLock, Guarded, Settled};
use crate::notify::{Message, MessageKind, Recipient};
use crate::secret::{OneTimeCode, Password, TotpSecret};
use crate::service::{Keyward, stored};
use crate::stamp;
use crate::store::{
    Consumed, LockCounter, OneTimeKind, OneTimeTry, StepAcceptance, UserRecord, ops,
};
use crate::totp::TotpCheck;
use crate::user::{CodeStatus, OneTimeCredential, SiteId, User};

/// How one code check under the TOTP lock counter ended.
pub(super) enum TotpAttempt {
    /// The code was right (and its step newer than the last accepted one).
    Accepted,
    /// The code was wrong; the step may be retried.
    Wrong,
    /// The TOTP counter is locked: the sign-in is denied.
    Refused(Denial),
}

impl Keyward {
    /// After the first factor: device authorization after a reset, a TOTP code, or on to
    /// `complete`.
    pub(super) fn second_factor(&self, record: &UserRecord, ctx: Context) -> Result<SignIn, Error> {
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
            let max_tries = self.codes.device_code_max_tries;
            let live = (record.totp.device_code.as_ref())
                .is_some_and(|c| c.status(now, max_tries) == CodeStatus::Live);
            if !live {
                self.send_device_code(user, &email)?;
            }
            let ctx = match self.issue(ctx, record)? {
                Ok(ctx) => ctx,
                Err(denial) => return Ok(SignIn::Denied(denial)),
            };
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
            let ctx = match self.issue(ctx, record)? {
                Ok(ctx) => ctx,
                Err(denial) => return Ok(SignIn::Denied(denial)),
            };
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

    /// Checks a TOTP code. A code is accepted at most once (the store's atomic step
    /// acceptance); wrong codes count against the TOTP lock, apart from password failures.
    /// A wrong code hands the step back ([`PendingTotp::is_retry`]) until the lock holds.
    ///
    /// # Errors
    /// Store failures; a stored secret that cannot be opened (wrong or missing key, or a
    /// plain secret where a key is configured).
    pub fn verify_totp(&self, pending: PendingTotp, code: &OneTimeCode) -> Result<SignIn, Error> {
        let _span = tracing::info_span!("keyward.verify_totp").entered();
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
        let attempt = self.current_code_attempt(&record, &pending.ctx.site, &secret, code)?;
        match attempt {
            TotpAttempt::Accepted => {
                // A secret sealed under a previous key moves to the current one; the sign-in
                // goes on with the secret as it is stored now (the same secret, sealed anew).
                let mut record = record;
                if let Some(resealed) = self.reseal_if_rotated(&record.user.id) {
                    record.totp.secret = resealed.secret;
                    record.totp.pending_secret = resealed.pending_secret;
                }
                self.complete(&record, pending.ctx)
            }
            TotpAttempt::Refused(denial) => Ok(SignIn::Denied(denial)),
            TotpAttempt::Wrong => Ok(SignIn::TotpRequired(PendingTotp {
                retry: true,
                ..pending
            })),
        }
    }

    /// Checks a code of the user's current authenticator under the TOTP lock: right only if it
    /// matches and its time step is newer than the last accepted one (the store's atomic step
    /// acceptance), so a code is accepted once, whatever it was given for.
    pub(super) fn current_code_attempt(
        &self,
        record: &UserRecord,
        site: &SiteId,
        secret: &TotpSecret,
        code: &OneTimeCode,
    ) -> Result<TotpAttempt, Error> {
        self.totp_attempt(record, site, DenialReason::WrongTotpCode, |now| {
            Ok(match crate::totp::verify(&self.totp, secret, code, now)? {
                TotpCheck::Matched { step } => {
                    self.store.accept_totp_step(&record.user.id, step)? == StepAcceptance::Accepted
                }
                _ => false,
            })
        })
    }

    /// Runs one second-factor check (a TOTP code, a device code) under the TOTP lock counter
    /// with the protocol every guessable check follows ([`Keyward::guarded`]). Wrong answers
    /// of every kind count against the same lock, so fresh device codes do not buy fresh
    /// guesses. A wrong answer is denied with `wrong` until the lock holds.
    pub(super) fn totp_attempt(
        &self,
        record: &UserRecord,
        site: &SiteId,
        wrong: DenialReason,
        check: impl FnOnce(OffsetDateTime) -> Result<bool, Error>,
    ) -> Result<TotpAttempt, Error> {
        let user = &record.user;
        // A wrong code's denial commits with its counted failure.
        let id = Some(&user.id);
        let denied = self.event(AuditAction::SignIn, AuditOutcome::Denied, id, id, site);
        let failed_reason = |lock: FailureLock| match lock.holds() {
            None => wrong,
            Some(until) => DenialReason::TotpLocked { until },
        };
        let mut on_settle = |settled: &Settled<'_, ()>, _: &mut UserRecord| match settled {
            Settled::Failed { lock, .. } => {
                vec![denied.clone().with_reason(failed_reason(*lock).as_str())]
            }
            _ => Vec::new(),
        };
        let evaluate = |now| Ok((check(now)?, ()));
        let guarded = self.guarded(user, LockCounter::Totp, evaluate, &mut on_settle)?;
        let reason = match guarded {
            Guarded::Passed(()) => return Ok(TotpAttempt::Accepted),
            Guarded::Failed { lock, .. } => {
                let reason = failed_reason(lock);
                if lock.holds().is_none() {
                    return Ok(TotpAttempt::Wrong);
                }
                return Ok(TotpAttempt::Refused(Denial::new(
                    reason,
                    Some(user.id.clone()),
                )));
            }
            Guarded::Locked { until } => DenialReason::TotpLocked { until },
            Guarded::PassedWhileLocked => DenialReason::TotpLocked { until: None },
            // As many codes as may still fail are being checked right now.
            Guarded::Busy => DenialReason::TooManyAttempts,
        };
        Ok(TotpAttempt::Refused(self.denial(
            site,
            Some(user),
            reason,
        )?))
    }

    fn send_device_code(&self, user: &User, email: &str) -> Result<(), Error> {
        let now = self.now();
        let code = self.codes.device_code();
        let hash = self.hasher.hash(&Password::new(code.expose_secret()))?;
        let expires_at = now.saturating_add(self.codes.device_code_lifetime);
        let credential = OneTimeCredential::new(stored(&hash), now, expires_at);
        // The code and its event commit together, before the message goes out: a crash after
        // the commit leaves a code nobody received (it expires), never an unrecorded one.
        let (action, id) = (AuditAction::DeviceCodeSent, Some(&user.id));
        let issued = self.event(action, AuditOutcome::Succeeded, None, id, &user.site);
        let issued = issued.with_details(format!("sent to email {email}"));
        self.change_with_events(&user.id, vec![issued], |r| {
            *ops::one_time_slot(r, OneTimeKind::DeviceCode) = Some(credential.clone());
            true
        })?;
        let to = Recipient::Email(email.to_owned());
        let kind = MessageKind::DeviceCode;
        let message = Message::new(to, kind, code.expose_secret(), expires_at, user);
        if let Err(e) = self.notifier.send(message) {
            // An undelivered code must not count as live and block a resend: withdrawn, with
            // the event saying why.
            let failed = self.event(action, AuditOutcome::Denied, None, id, &user.site);
            let failed = failed.with_reason("delivery_failed");
            let _ = self.change_with_events(&user.id, vec![failed], |r| {
                ops::consume_code(r, OneTimeKind::DeviceCode, &credential.hash) == Consumed::Now
            });
            return Err(e.into());
        }
        Ok(())
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
        let _span = tracing::info_span!("keyward.authorize_device").entered();
        let record = match self.resume(&pending.ctx, pending.issued_at)? {
            Ok(record) => record,
            Err(denial) => return Ok(SignIn::Denied(denial)),
        };
        let id = &record.user.id;
        let max = self.codes.device_code_max_tries;
        let mut tried = None;
        let mut matched_code = None;
        let wrong = DenialReason::WrongTotpCode;
        let attempt = self.totp_attempt(&record, &pending.ctx.site, wrong, |now| {
            let outcome = self
                .store
                .try_one_time(id, OneTimeKind::DeviceCode, max, now)?;
            let matched = match &outcome {
                OneTimeTry::Available(credential) => {
                    let given = Password::new(code.expose_secret().trim());
                    let right = self.verify_secret(&given, &credential.hash)?.is_match();
                    if right {
                        matched_code = Some(credential.hash.clone());
                    }
                    right
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
        let Some(code_hash) = matched_code else {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        };
        let (enrollment, sealed) = self.new_secret(&record.user)?;
        // One change: the code consumed (once, even when two right answers race), the new
        // secret staged, and the events saying so. An administrator's change since the step
        // was resumed (a new reset, a disable) wins.
        let who = Some(id);
        let continued = self.event(AuditAction::SignIn, AuditOutcome::Continued, who, who, site);
        let events = vec![
            continued.clone().with_reason("device_authorized"),
            continued.with_reason("totp_enrollment_required"),
        ];
        let staged = self.change_with_events(id, events, |r| {
            if !stamp::same_credentials(&record, r)
                || ops::consume_code(r, OneTimeKind::DeviceCode, &code_hash) != Consumed::Now
            {
                return false;
            }
            r.totp.pending_secret = Some(sealed.clone());
            r.totp.device_code = None;
            true
        })?;
        if !staged {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        }
        let ctx = match self.issue(pending.ctx, &record)? {
            Ok(ctx) => ctx,
            Err(denial) => return Ok(SignIn::Denied(denial)),
        };
        Ok(SignIn::TotpEnrollmentRequired(PendingEnrollment {
            ctx,
            issued_at: self.now(),
            retry: false,
            enrollment,
        }))
    }
}
