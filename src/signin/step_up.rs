//! Step-up: a signed-in user proves again who they are before a sensitive action (replacing
//! their authenticator, or the application's own: changing an email address, a payout
//! account, ...). The proof is the password (counted on the password lock, like a sign-in)
//! or a code of the current authenticator (counted on the TOTP lock, replay-safe).

use std::fmt;

use time::OffsetDateTime;

use super::outcome::{Denial, DenialReason};
use super::second_factor::TotpAttempt;
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::guard::{FirstFactor, PinCheck};
use crate::secret::{OneTimeCode, Password};
use crate::service::Keyward;
use crate::stamp;
use crate::store::UserRecord;
use crate::user::{TemporaryStatus, UserId, UserStatus};

/// Proof that a user re-authenticated a moment ago: hand it to the sensitive action, which
/// consumes it. Not `Clone`; it holds for
/// [`CodeRules::step_up_lifetime`](crate::policy::CodeRules::step_up_lifetime) and only while
/// the account stays as it was (a password, TOTP, role or status change voids it).
#[must_use = "a step-up proves nothing unless the action checks it"]
pub struct StepUp {
    user: UserId,
    at: OffsetDateTime,
    binding: [u8; 32],
}

impl StepUp {
    /// The user who re-authenticated.
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// When.
    #[must_use]
    pub fn at(&self) -> OffsetDateTime {
        self.at
    }

    /// What the account was bound to when the user proved it: an action re-checks it inside
    /// its own transaction.
    pub(crate) fn binding(&self) -> [u8; 32] {
        self.binding
    }
}

impl fmt::Debug for StepUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepUp")
            .field("user", &self.user)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// The outcome of [`Keyward::reauthenticate`] and
/// [`Keyward::reauthenticate_with_totp`].
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug)]
pub enum Reauthentication {
    /// The user proved it: go on with the action.
    Confirmed(StepUp),
    /// Refused (wrong password or code, locked, disabled): do not go on.
    Denied(Denial),
}

impl Reauthentication {
    /// The proof, when confirmed.
    #[must_use]
    pub fn confirmed(self) -> Option<StepUp> {
        match self {
            Self::Confirmed(proof) => Some(proof),
            Self::Denied(_) => None,
        }
    }
}

impl Keyward {
    /// Re-verifies a signed-in user's password before a sensitive action. Counted on the
    /// password lock like a sign-in (five wrong tries lock the account), audited, and
    /// spending the same hashing work whatever the outcome. The PIN is not asked for.
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; store and hashing failures.
    pub fn reauthenticate(
        &self,
        user: &UserId,
        password: &Password,
    ) -> Result<Reauthentication, Error> {
        let _span = tracing::info_span!("keyward.reauthenticate").entered();
        let record = self.load(user)?;
        // The password sign-in would accept: active account, no SSO link unless through a
        // temporary password, a temporary password only while it is live.
        let now = self.now();
        let credential = (record.password.as_ref())
            .filter(|_| record.user.status == UserStatus::Active)
            .filter(|c| !record.user.sso_linked || c.temporary.is_some())
            .filter(|c| {
                (c.temporary.as_ref()).is_none_or(|t| t.status(now) == TemporaryStatus::Live)
            })
            .cloned();
        let Some(credential) = credential else {
            self.hasher.verify_dummy(password);
            let reason = if record.user.status == UserStatus::Active {
                DenialReason::NoPasswordLogin
            } else {
                DenialReason::Disabled
            };
            return self.step_up_denied(&record, "password", reason);
        };
        let checked =
            self.check_first_factor(&record, password, PinCheck::Skip, &credential.hash)?;
        let reason = match checked {
            FirstFactor::Passed { .. } => return self.step_up_confirmed(&record, "password"),
            FirstFactor::Locked { until } => DenialReason::Locked { until },
            FirstFactor::LockedMeanwhile => DenialReason::Locked { until: None },
            FirstFactor::Busy => DenialReason::TooManyAttempts,
            FirstFactor::WrongPassword | FirstFactor::WrongPin => DenialReason::WrongPassword,
        };
        self.step_up_denied(&record, "password", reason)
    }

    /// Re-verifies a signed-in user with a code of their current authenticator. Counted on
    /// the TOTP lock; a code is accepted once (the same code cannot also finish a sign-in).
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; store failures; a stored secret that cannot be opened.
    pub fn reauthenticate_with_totp(
        &self,
        user: &UserId,
        code: &OneTimeCode,
    ) -> Result<Reauthentication, Error> {
        let _span = tracing::info_span!("keyward.reauthenticate_with_totp").entered();
        let record = self.load(user)?;
        let secret = match &record.totp.secret {
            Some(s) if record.user.status == UserStatus::Active => s.clone(),
            _ => return self.step_up_denied(&record, "totp", DenialReason::AccountChanged),
        };
        let secret = self.open_secret(&secret, &record.user.id)?;
        let site = record.user.site.clone();
        let attempt = self.current_code_attempt(&record, &site, &secret, code)?;
        match attempt {
            TotpAttempt::Accepted => self.step_up_confirmed(&record, "totp"),
            TotpAttempt::Refused(denial) => Ok(Reauthentication::Denied(denial)),
            TotpAttempt::Wrong => self.step_up_denied(&record, "totp", DenialReason::WrongTotpCode),
        }
    }

    /// Whether `proof` still stands for `user` — the same user, recent enough
    /// ([`CodeRules::step_up_lifetime`](crate::policy::CodeRules::step_up_lifetime)), the
    /// account unchanged since (no password, PIN, TOTP, role, status or lock change, no code
    /// accepted) — consuming it: the application's own sensitive actions check their step-up
    /// here, right before they act.
    ///
    /// # Errors
    /// [`Error::UserNotFound`]; store failures.
    pub fn check_step_up(&self, user: &UserId, proof: StepUp) -> Result<bool, Error> {
        self.step_up_holds(user, &proof)
    }

    /// [`check_step_up`](Self::check_step_up) without consuming the proof.
    pub(crate) fn step_up_holds(&self, user: &UserId, proof: &StepUp) -> Result<bool, Error> {
        Ok(self.step_up_holds_on(&self.load(user)?, proof))
    }

    /// Whether `proof` holds for the account as `record` holds it now: the same user, young
    /// enough, the account unchanged since (for a caller that has just read the record).
    pub(crate) fn step_up_holds_on(&self, record: &UserRecord, proof: &StepUp) -> bool {
        let now = self.now();
        proof.user == record.user.id
            && now >= proof.at
            && now < proof.at.saturating_add(self.codes.step_up_lifetime)
            && stamp::same_binding(&stamp::binding(record), &proof.binding)
    }

    fn step_up_confirmed(&self, record: &UserRecord, by: &str) -> Result<Reauthentication, Error> {
        let id = &record.user.id;
        let event = self.own_event(AuditAction::Reauthenticated, id, &record.user.site);
        self.audit(event.with_details(format!("by {by}")))?;
        // Bound to the account as the check left it (the TOTP step accepted, counters
        // settled).
        let now = self.load(id)?;
        Ok(Reauthentication::Confirmed(StepUp {
            user: id.clone(),
            at: self.now(),
            binding: stamp::binding(&now),
        }))
    }

    fn step_up_denied(
        &self,
        record: &UserRecord,
        by: &str,
        reason: DenialReason,
    ) -> Result<Reauthentication, Error> {
        let id = Some(&record.user.id);
        let (action, outcome) = (AuditAction::Reauthenticated, AuditOutcome::Denied);
        let event = self.event(action, outcome, id, id, &record.user.site);
        let event = event
            .with_reason(reason.as_str())
            .with_details(format!("by {by}"));
        self.audit(event)?;
        Ok(Reauthentication::Denied(Denial::new(
            reason,
            Some(record.user.id.clone()),
        )))
    }
}
