//! Recovery codes at sign-in and on demand: a code accepted once in place of a TOTP code,
//! under the TOTP lock counter, and a new set for a user who proved who they are. The codes
//! themselves (making, typing back, digests) are in [`crate::totp::recovery_codes`].

use super::outcome::{DenialReason, PendingTotp, SignIn};
use super::second_factor::TotpAttempt;
use super::step_up::StepUp;
use crate::audit::{AuditAction, AuditEvent};
use crate::error::Error;
use crate::secret::RecoveryCode;
use crate::service::Keyward;
use crate::stamp;
use crate::store::UserRecord;
use crate::totp::recovery_codes::{self, RecoveryCodes};
use crate::user::{SiteId, StoredHash, UserId};

impl Keyward {
    /// Finishes a TOTP step with a recovery code instead of a code from the authenticator
    /// (the user lost it). The code is accepted once: it is removed, with its audit event
    /// (which gives how many remain), in one transaction, so two sign-ins racing with the
    /// same code cannot both pass. Wrong codes count on the TOTP lock like wrong TOTP codes
    /// and hand the step back ([`PendingTotp::is_retry`]) until the lock holds.
    ///
    /// A sign-in with a recovery code leaves the authenticator as it is; the user should
    /// replace it ([`enroll_totp`](Self::enroll_totp)) and make new codes once few remain
    /// ([`regenerate_recovery_codes`](Self::regenerate_recovery_codes)).
    ///
    /// # Errors
    /// Store failures.
    pub fn verify_recovery_code(
        &self,
        pending: PendingTotp,
        code: &RecoveryCode,
    ) -> Result<SignIn, Error> {
        let _span = tracing::info_span!("keyward.verify_recovery_code").entered();
        let record = match self.resume(&pending.ctx, pending.issued_at)? {
            Ok(record) => record,
            Err(denial) => return Ok(SignIn::Denied(denial)),
        };
        let site = &pending.ctx.site;
        if record.totp.secret.is_none() {
            return self.deny(site, Some(&record.user), DenialReason::AccountChanged);
        }
        let wrong = DenialReason::WrongRecoveryCode;
        let attempt = self.totp_attempt(&record, site, wrong, |_| {
            self.use_recovery_code(&record, site, code)
        })?;
        match attempt {
            TotpAttempt::Accepted => self.complete(&record, pending.ctx),
            TotpAttempt::Refused(denial) => Ok(SignIn::Denied(denial)),
            TotpAttempt::Wrong => Ok(SignIn::TotpRequired(PendingTotp {
                retry: true,
                ..pending
            })),
        }
    }

    /// Removes the code `typed` names from the user's set, with its event, in one
    /// transaction; `false` when it is none of theirs (any more).
    fn use_recovery_code(
        &self,
        record: &UserRecord,
        site: &SiteId,
        typed: &RecoveryCode,
    ) -> Result<bool, Error> {
        let id = &record.user.id;
        let Some(digest) = recovery_codes::digest_typed(id, typed) else {
            return Ok(false);
        };
        let used = self.own_event(AuditAction::RecoveryCodeUsed, id, site);
        let mut committed = None;
        let mut take = |r: &mut UserRecord| {
            committed = None;
            let codes = &mut r.totp.recovery_codes;
            let Some(i) = recovery_codes::position(codes, &digest) else {
                return Vec::new();
            };
            codes.remove(i);
            let event = used
                .clone()
                .with_details(format!("remaining={}", codes.len()));
            committed = Some(event.clone());
            vec![event]
        };
        self.store.change_recorded(id, &mut take)?;
        if let Some(event) = &committed {
            crate::audit::trace(event);
        }
        Ok(committed.is_some())
    }

    /// Makes a new set of recovery codes for a signed-in user, to show them once; the old
    /// set is void from now on. Takes a fresh `step_up` of the same user
    /// ([`reauthenticate`](Self::reauthenticate) or
    /// [`reauthenticate_with_totp`](Self::reauthenticate_with_totp)): a stolen session alone
    /// must not get a way in that outlives it. The new digests and their event commit
    /// together, and only while the account is as the step-up left it.
    ///
    /// # Errors
    /// [`Error::StepUpRequired`] without a step-up that still holds;
    /// [`Error::NoAuthenticator`] when the user has no active authenticator (recovery codes
    /// stand in for one); [`Error::RecoveryCodesOff`] when
    /// [`CodeRules::recovery_codes`](crate::policy::CodeRules::recovery_codes) is 0; store
    /// failures.
    pub fn regenerate_recovery_codes(
        &self,
        user: &UserId,
        step_up: StepUp,
    ) -> Result<RecoveryCodes, Error> {
        let _span = tracing::info_span!("keyward.regenerate_recovery_codes").entered();
        let record = self.load(user)?;
        if !self.step_up_holds_on(&record, &step_up) {
            tracing::info!(
                user = user.as_str(),
                "new recovery codes refused: no step-up"
            );
            return Err(Error::StepUpRequired { user: user.clone() });
        }
        if record.totp.secret.is_none() || record.totp.reset_pending {
            return Err(Error::NoAuthenticator { user: user.clone() });
        }
        let Some((codes, digests)) = self.new_recovery_codes(user)? else {
            return Err(Error::RecoveryCodesOff);
        };
        let event = self.recovery_codes_event(user, &record.user.site, codes.len());
        let proof = step_up.binding();
        let replaced = self.change_with_events(user, vec![event], |r| {
            // Checked again in the transaction: nothing may have changed since the step-up.
            if !stamp::same_binding(&stamp::binding(r), &proof) || r.totp.secret.is_none() {
                return false;
            }
            r.totp.recovery_codes.clone_from(&digests);
            true
        })?;
        if !replaced {
            return Err(Error::StepUpRequired { user: user.clone() });
        }
        Ok(codes)
    }

    /// A new set of recovery codes for `user` and its digests, or `None` when recovery codes
    /// are off.
    pub(super) fn new_recovery_codes(
        &self,
        user: &UserId,
    ) -> Result<Option<(RecoveryCodes, Vec<StoredHash>)>, Error> {
        let count = usize::try_from(self.codes.recovery_codes).unwrap_or(usize::MAX);
        if count == 0 {
            return Ok(None);
        }
        Ok(Some(recovery_codes::generate(user, count)?))
    }

    /// The event recording a new set of `count` codes.
    pub(super) fn recovery_codes_event(
        &self,
        user: &UserId,
        site: &SiteId,
        count: usize,
    ) -> AuditEvent {
        let event = self.own_event(AuditAction::RecoveryCodesGenerated, user, site);
        event.with_details(format!("count={count}"))
    }
}
