//! Adding an authenticator: self-service enrollment, the confirmation that activates a new
//! secret (also the last step of a sign-in after an authenticator reset), and how TOTP secrets
//! are kept at rest (sealed under the application's key ring, re-sealed after a rotation).

use super::outcome::{AuthenticatorAdded, Context, DenialReason, PendingEnrollment, SignIn};
use super::second_factor::TotpAttempt;
use super::step_up::StepUp;
use crate::audit::AuditAction;
use crate::error::Error;
use crate::secret::{OneTimeCode, TotpSecret};
use crate::service::{Keyward, SecretKeeping};
use crate::store::{Swap, ops};
use crate::totp::{Enrollment, StoredTotpSecret, TotpCheck};
use crate::user::{StoredSecret, TotpState, User, UserId};

impl Keyward {
    /// Starts adding an authenticator for a signed-in user (self-service enrollment). The
    /// secret is stored sealed as pending and becomes active only when
    /// [`confirm_enrollment`](Self::confirm_enrollment) accepts a code from it, which answers
    /// [`SignIn::AuthenticatorAdded`] (no new sign-in is recorded).
    ///
    /// Replacing an authenticator the user already has takes a fresh `step_up` of the same
    /// user ([`reauthenticate`](Self::reauthenticate) with the password, or
    /// [`reauthenticate_with_totp`](Self::reauthenticate_with_totp) with a code of the current
    /// authenticator): a stolen session alone must not swap in the thief's authenticator. A
    /// first authenticator needs none.
    ///
    /// # Errors
    /// [`Error::StepUpRequired`] when replacing without a step-up that still holds;
    /// [`Error::TotpResetPending`] after an administrator reset (the user must go through
    /// device authorization at sign-in instead); [`Error::TotpKeyMissing`] when no sealing
    /// key is configured; [`Error::ChangedMeanwhile`] when the TOTP
    /// state changed meanwhile; store and TOTP failures.
    pub fn enroll_totp(
        &self,
        user: &UserId,
        step_up: Option<StepUp>,
    ) -> Result<PendingEnrollment, Error> {
        let _span = tracing::info_span!("keyward.enroll_totp").entered();
        let record = self.load(user)?;
        if record.totp.reset_pending {
            return Err(Error::TotpResetPending { user: user.clone() });
        }
        if record.totp.secret.is_some() {
            let holds = match &step_up {
                Some(proof) => self.step_up_holds_on(&record, proof),
                None => false,
            };
            if !holds {
                tracing::info!(
                    user = user.as_str(),
                    "replacing an authenticator refused: no step-up"
                );
                return Err(Error::StepUpRequired { user: user.clone() });
            }
        }
        let (enrollment, sealed) = self.new_secret(&record.user)?;
        let next = TotpState {
            pending_secret: Some(sealed),
            ..record.totp.clone()
        };
        if self.store.replace_totp(user, &record.totp, &next)? != Swap::Swapped {
            return Err(Error::ChangedMeanwhile { what: "TOTP state" });
        }
        let ctx = Context {
            user: user.clone(),
            site: record.user.site.clone(),
            hash_upgraded: false,
            binding: [0; 32],
            change_password: false,
            signing_in: false,
            recovery_codes_due: false,
        };
        let ctx = match self.issue(ctx, &record)? {
            Ok(ctx) => ctx,
            Err(_) => return Err(Error::ChangedMeanwhile { what: "account" }),
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
        let _span = tracing::info_span!("keyward.confirm_enrollment").entered();
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
        let wrong = DenialReason::WrongTotpCode;
        let attempt = self.totp_attempt(&record, site, wrong, |now| {
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
        // A new authenticator voids the old recovery codes. A self-service enrollment gets
        // its new set with the secret; a sign-in gets it when it completes (`finish`).
        let id = &record.user.id;
        let fresh = if pending.ctx.signing_in {
            None
        } else {
            self.new_recovery_codes(id)?
        };
        let (codes, recovery_codes) = match fresh {
            Some((codes, digests)) => (Some(codes), digests),
            None => (None, Vec::new()),
        };
        let next = TotpState {
            secret: Some(sealed),
            last_step: matched_step,
            reset_pending: false,
            pending_secret: None,
            device_code: None,
            recovery_codes,
        };
        // Only the pending secret this step showed may be promoted: a reset or another
        // enrollment meanwhile wins. The new secret and its event commit together.
        let mut events = vec![self.own_event(AuditAction::TotpEnrolled, id, site)];
        if let Some(codes) = &codes {
            events.push(self.recovery_codes_event(id, site, codes.len()));
        }
        let seen = record.totp.clone();
        let promoted = self.change_with_events(&record.user.id, events, |r| {
            ops::swap_totp(r, &seen, &next) == Swap::Swapped
        })?;
        if !promoted {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        }
        // The sign-in goes on with the secret it just confirmed.
        let mut record = record;
        record.totp = next;
        if !pending.ctx.signing_in {
            // Self-service: its own outcome, with the stamp the new secret brought.
            let now = self.load(&record.user.id)?;
            return Ok(SignIn::AuthenticatorAdded(AuthenticatorAdded {
                stamp: self.stamp_of(&now)?,
                user: now.user.id,
                recovery_codes: codes,
            }));
        }
        let ctx = Context {
            recovery_codes_due: true,
            ..pending.ctx
        };
        self.complete(&record, ctx)
    }

    /// A new secret for `user` (labelled with their email, or their username): the
    /// enrollment to show, and the secret as it is stored.
    pub(super) fn new_secret(&self, user: &User) -> Result<(Enrollment, StoredSecret), Error> {
        let account = user.email.as_ref().unwrap_or(&user.username);
        let enrollment = crate::totp::enroll(&self.totp, account)?;
        let sealed = self.seal_secret(enrollment.secret(), &user.id)?;
        Ok((enrollment, sealed))
    }

    fn seal_secret(&self, secret: &TotpSecret, user: &UserId) -> Result<StoredSecret, Error> {
        let stored = match &self.keeping {
            SecretKeeping::Sealed(sealer) => sealer.seal(secret, user.as_str().as_bytes())?,
            SecretKeeping::Plain => StoredTotpSecret::plain(secret)?,
            SecretKeeping::Refused => return Err(Error::TotpKeyMissing),
        };
        Ok(StoredSecret::new(stored.to_storage_string().as_str()))
    }

    pub(super) fn open_secret(
        &self,
        stored: &StoredSecret,
        user: &UserId,
    ) -> Result<TotpSecret, Error> {
        let parsed = StoredTotpSecret::parse(stored.as_str())?;
        match &self.keeping {
            // With a key, every stored secret goes through the sealer, which refuses `plain:`
            // values: someone who can write the column cannot plant a secret of their own.
            SecretKeeping::Sealed(sealer) => Ok(sealer.open(&parsed, user.as_str().as_bytes())?),
            SecretKeeping::Plain if !parsed.is_sealed() => Ok(parsed.open_plain()?),
            SecretKeeping::Plain | SecretKeeping::Refused => Err(Error::TotpKeyMissing),
        }
    }

    /// Re-seals a user's TOTP secrets (the active one and a pending one) under the current
    /// key of the configured [`TotpSealer`](crate::totp::TotpSealer): after a key rotation
    /// (the old key kept with
    /// [`TotpSealer::with_previous_key`](crate::totp::TotpSealer::with_previous_key)), or to
    /// move secrets stored plain into sealing.
    /// Secrets sealed under a previous key are also re-sealed automatically at the user's
    /// next successful TOTP sign-in; plain ones only through this call, because at sign-in a
    /// plain value where a key is configured is treated as tampering and refused. Returns
    /// whether anything changed.
    ///
    /// # Errors
    /// [`Error::TotpKeyMissing`] without a sealing key; a secret no known key opens;
    /// [`Error::ChangedMeanwhile`] when the TOTP state changed
    /// meanwhile; store errors.
    pub fn reseal_totp_secret(&self, user: &UserId) -> Result<bool, Error> {
        Ok(self.reseal(user, true)?.is_some())
    }

    /// The automatic part of [`reseal_totp_secret`](Self::reseal_totp_secret): sealed
    /// secrets only, and a concurrent change simply wins.
    /// Best effort: it runs after a code was accepted, so nothing here may fail the sign-in.
    /// A secret that cannot be re-sealed now stays as it is and is tried again next time.
    /// Returns the TOTP state it wrote, if it resealed.
    pub(crate) fn reseal_if_rotated(&self, user: &UserId) -> Option<TotpState> {
        if !matches!(self.keeping, SecretKeeping::Sealed(_)) {
            return None;
        }
        self.reseal(user, false).unwrap_or(None)
    }

    /// Whether TOTP secrets can be stored (a sealing key, or the plain opt-in).
    pub(crate) fn can_store_totp_secrets(&self) -> bool {
        !matches!(self.keeping, SecretKeeping::Refused)
    }

    fn reseal(&self, user: &UserId, include_plain: bool) -> Result<Option<TotpState>, Error> {
        let SecretKeeping::Sealed(sealer) = &self.keeping else {
            return Err(Error::TotpKeyMissing);
        };
        let current = self.load(user)?.totp;
        let context = user.as_str().as_bytes();
        let mut next = current.clone();
        for slot in [&mut next.secret, &mut next.pending_secret] {
            let Some(stored) = slot.as_ref() else {
                continue;
            };
            let parsed = StoredTotpSecret::parse(stored.as_str())?;
            let wanted = if parsed.is_sealed() {
                sealer.needs_reseal(&parsed)
            } else {
                include_plain
            };
            if wanted {
                let resealed = sealer.reseal(&parsed, context)?;
                *slot = Some(StoredSecret::new(resealed.to_storage_string().as_str()));
            }
        }
        if next == current {
            return Ok(None);
        }
        match self.store.replace_totp(user, &current, &next)? {
            Swap::Swapped => Ok(Some(next)),
            _ => Err(Error::ChangedMeanwhile { what: "TOTP state" }),
        }
    }
}
