//! How keyward checks anything an attacker could guess: a password, a PIN, a TOTP code, a
//! device-authorization code.
//!
//! Every such check follows one protocol under one lock counter of the account
//! ([`LockCounter::Password`] for passwords and PINs, [`LockCounter::Totp`] for codes):
//!
//! 1. **reserve**: [`LockEvent::Attempt`] takes a slot, or refuses without evaluating anything
//!    when the counter is locked or as many attempts as may still fail are in flight;
//! 2. **evaluate** the guess;
//! 3. **settle**: [`LockEvent::Success`] or [`LockEvent::Failure`] releases the slot, also when
//!    the evaluation itself failed, so that a broken stored hash never leaves a slot taken.
//!
//! [`Keyward::guarded`] is that protocol, written once. The rest of this file keeps the
//! cost of a check uniform: the first factor always spends two verifications (password, then
//! PIN or dummy), input the hasher refuses outright is a wrong answer after the same work, and
//! a refused attempt spends what an evaluated one would.

use time::OffsetDateTime;

use crate::audit::AuditEvent;
use crate::error::Error;
use crate::hash::{HashError, PasswordHash, Verification};
use crate::lockout::{LockDecision, LockEvent, LockoutRule};
use crate::secret::{Password, Pin};
use crate::service::Keyward;
use crate::service::Pins;
use crate::store::{LockCounter, UserRecord, ops};
use crate::user::{StoredHash, User};

/// How a guarded check ended.
#[derive(Debug)]
pub(crate) enum Guarded<T> {
    /// Refused without evaluation: the counter is locked.
    Locked {
        /// End of a temporary lock; `None` until an administrator unlocks.
        until: Option<OffsetDateTime>,
    },
    /// Refused without evaluation: as many attempts as may still fail are being evaluated.
    Busy,
    /// Right; the counter was cleared.
    Passed(T),
    /// Right, but a concurrent failure locked the counter meanwhile: the lock stands.
    PassedWhileLocked,
    /// Wrong; the failure was counted.
    Failed {
        /// What the evaluation found.
        found: T,
        /// What the failure did to the counter.
        lock: FailureLock,
    },
}

/// How a guarded check settled, as the settle's transaction sees it.
#[derive(Debug)]
pub(crate) enum Settled<'a, T> {
    /// Right; the counter was cleared.
    Passed(&'a T),
    /// Right, but a concurrent failure locked the counter meanwhile.
    PassedWhileLocked,
    /// Wrong; counted, with what the failure did to the lock.
    Failed { found: &'a T, lock: FailureLock },
}

/// What commits with a settle (see [`Keyward::guarded`]).
pub(crate) type OnSettle<'a, T> =
    dyn FnMut(&Settled<'_, T>, &mut UserRecord) -> Vec<AuditEvent> + Send + 'a;

/// What a counted failure did to the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailureLock {
    /// Counted; the counter is not locked.
    Counted,
    /// This failure locked the counter.
    NowLocked { until: Option<OffsetDateTime> },
    /// A concurrent failure had locked the counter already.
    AlreadyLocked { until: Option<OffsetDateTime> },
}

impl FailureLock {
    /// What the settle of a wrong guess decided.
    fn of(decision: &LockDecision) -> Self {
        match *decision {
            LockDecision::NowLocked { until } => Self::NowLocked { until },
            LockDecision::Locked { until } => Self::AlreadyLocked { until },
            _ => Self::Counted,
        }
    }

    /// The end of the lock that holds after this failure, if one holds.
    pub(crate) fn holds(self) -> Option<Option<OffsetDateTime>> {
        match self {
            Self::Counted => None,
            Self::NowLocked { until } | Self::AlreadyLocked { until } => Some(until),
        }
    }
}

/// Whether a first-factor check includes the PIN.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PinCheck<'a> {
    /// A sign-in: the PIN the user gave, if any.
    Given(Option<&'a Pin>),
    /// A confirmation by password alone.
    Skip,
}

/// The result of checking a password (and PIN) under the lockout protocol.
#[derive(Debug)]
pub(crate) enum FirstFactor {
    /// Both matched; the lock counter was cleared.
    Passed {
        upgraded: Option<PasswordHash>,
        pin_upgraded: Option<PasswordHash>,
    },
    /// Refused without evaluation.
    Locked { until: Option<OffsetDateTime> },
    /// Refused without evaluation: as many attempts as may fail are in flight.
    Busy,
    /// The password was wrong.
    WrongPassword,
    /// The PIN was missing or wrong.
    WrongPin,
    /// Both matched but a concurrent failure locked the account meanwhile.
    LockedMeanwhile,
}

/// What the two verifications of a first-factor check found.
#[derive(Debug)]
pub(crate) struct FirstFactorFound {
    password: Verification,
    /// `None` when no PIN was checked (none set, or a confirmation by password alone).
    pin: Option<Verification>,
}

impl FirstFactorFound {
    /// Whether the password matched (so a failure was the PIN's).
    pub(crate) fn password_matched(&self) -> bool {
        self.password.is_match()
    }

    /// Whether a match carries a hash to upgrade (the password's or the PIN's).
    pub(crate) fn upgrade_due(&self) -> bool {
        let due = |v: &Verification| matches!(v, Verification::MatchUpgraded { .. });
        due(&self.password) || self.pin.as_ref().is_some_and(due)
    }
}

impl Keyward {
    /// The lockout rule of one counter of `user`.
    pub(crate) fn lockout_rule(&self, user: &User, counter: LockCounter) -> LockoutRule {
        match counter {
            LockCounter::Password => self.lockout.password_rule(user),
            LockCounter::Totp => self.lockout.totp_rule(user),
        }
    }

    /// Runs one guessable check of `user` under `counter`: reserve, evaluate, settle.
    /// `evaluate` gets the instant of the attempt and returns whether the guess was right,
    /// with whatever else it found.
    ///
    /// `on_settle` runs inside the settle's transaction: it
    /// sees how the check settled and the record after the lock event, may set the last
    /// sign-in time (a sign-in that ends here), and names the audit events that commit with
    /// the settle (the denial of a wrong guess, the success of a sign-in). It may run more
    /// than once (see [`UserStore::change_recorded`](crate::UserStore::change_recorded)); it
    /// must only compute.
    pub(crate) fn guarded<T: Sync>(
        &self,
        user: &User,
        counter: LockCounter,
        evaluate: impl FnOnce(OffsetDateTime) -> Result<(bool, T), Error>,
        on_settle: &mut OnSettle<'_, T>,
    ) -> Result<Guarded<T>, Error> {
        let now = self.now();
        let rule = self.lockout_rule(user, counter);
        let apply = |event: &LockEvent| {
            let store = &self.store;
            store.apply_lock_event(&user.id, counter, &rule, event, now)
        };
        let (reserved, decision) = apply(&LockEvent::Attempt)?;
        let counter_name = match counter {
            LockCounter::Password => "password",
            LockCounter::Totp => "totp",
        };
        match decision {
            LockDecision::Proceed => {}
            LockDecision::Locked { until } => {
                tracing::debug!(counter = counter_name, "attempt refused: locked");
                return Ok(Guarded::Locked { until });
            }
            _ => {
                tracing::debug!(
                    counter = counter_name,
                    "attempt refused: too many in flight"
                );
                return Ok(Guarded::Busy);
            }
        }
        // The settle names the epoch of this reservation: if an administrator unlocks while
        // the guess is evaluated, the guess neither counts nor re-locks.
        let reserved_in = reserved.epoch;
        let (right, found) = match evaluate(now) {
            Ok(result) => result,
            Err(e) => {
                // Settle the reservation before reporting the failure.
                let _ = apply(&LockEvent::Failure { reserved_in });
                return Err(e);
            }
        };
        let settle = if right {
            LockEvent::Success { reserved_in }
        } else {
            LockEvent::Failure { reserved_in }
        };
        // The settle, what `on_settle` adds and its events: one transaction.
        let mut decision = LockDecision::Proceed;
        let mut committed = Vec::new();
        let mut body = |r: &mut UserRecord| {
            let (_, d) = ops::apply_lock_event_to(r, counter, &rule, &settle, now);
            let settled = match (&d, right) {
                (LockDecision::SuccessWhileLocked, _) => Settled::PassedWhileLocked,
                (_, true) => Settled::Passed(&found),
                (_, false) => Settled::Failed {
                    found: &found,
                    lock: FailureLock::of(&d),
                },
            };
            let events = on_settle(&settled, r);
            decision = d;
            committed.clone_from(&events);
            events
        };
        self.store.change_recorded(&user.id, &mut body)?;
        committed.iter().for_each(crate::audit::trace);
        if right {
            return Ok(match decision {
                LockDecision::SuccessWhileLocked => Guarded::PassedWhileLocked,
                _ => Guarded::Passed(found),
            });
        }
        let lock = FailureLock::of(&decision);
        if let FailureLock::NowLocked { .. } = lock {
            let user = user.id.as_str();
            tracing::warn!(counter = counter_name, user, "account locked");
        }
        tracing::debug!(counter = counter_name, "failure counted");
        Ok(Guarded::Failed { found, lock })
    }

    /// Spends what a counted first-factor check spends — the reserve, the verifications and
    /// the settle — without checking anything: for an unknown username, and for an account
    /// that cannot sign in with a password (disabled, SSO only). The reserve and the settle go
    /// to a user id nobody has (`Keyward::decoy`): each reads the store as the real steps do,
    /// finds nothing and writes nothing (measured in `benches/timing.rs`, `known_vs_unknown`;
    /// before, a known account's two store steps showed beside the hashing on PostgreSQL).
    pub(crate) fn first_factor_decoy(&self, password: &Password) {
        let now = self.now();
        let rule = LockoutRule::DEFAULT;
        let (decoy, counter) = (&self.decoy, LockCounter::Password);
        // `NotFound` is the expected answer; any other failure would have stopped the real
        // check just as well, and the sign-in is refused either way.
        let _ = (self.store).apply_lock_event(decoy, counter, &rule, &LockEvent::Attempt, now);
        self.first_factor_dummy(password);
        let _ = self.store.change_recorded(decoy, &mut |_| Vec::new());
    }

    /// Spends what a first-factor check spends (two verifications: password and PIN) without
    /// checking anything: for unknown, disabled and locked accounts.
    pub(crate) fn first_factor_dummy(&self, password: &Password) {
        self.hasher.verify_dummy(password);
        if self.pins == Pins::On {
            self.hasher.verify_dummy(password);
        }
    }

    /// Checks a password and the PIN under the lockout protocol. Every check spends exactly
    /// two verifications: the password, then the PIN or a dummy when the user has no PIN or
    /// gave none, so that timing tells neither which part was wrong nor whether the account
    /// has a PIN; a refused attempt spends the same. With [`PinCheck::Skip`] (an
    /// administrator confirming an action with their own password) only the password counts.
    pub(crate) fn check_first_factor(
        &self,
        record: &UserRecord,
        password: &Password,
        pin: PinCheck<'_>,
        password_hash: &StoredHash,
    ) -> Result<FirstFactor, Error> {
        let mut nothing = |_: &Settled<'_, FirstFactorFound>, _: &mut UserRecord| Vec::new();
        self.check_first_factor_recorded(record, password, pin, password_hash, &mut nothing)
    }

    /// [`check_first_factor`](Self::check_first_factor), with `on_settle` committing with the
    /// settle (see [`guarded`](Self::guarded)).
    pub(crate) fn check_first_factor_recorded(
        &self,
        record: &UserRecord,
        password: &Password,
        pin: PinCheck<'_>,
        password_hash: &StoredHash,
        on_settle: &mut OnSettle<'_, FirstFactorFound>,
    ) -> Result<FirstFactor, Error> {
        let evaluate = |_| {
            let found = self.evaluate_first_factor(record, password, pin, password_hash)?;
            let right =
                found.password.is_match() && found.pin.as_ref().is_none_or(|p| p.is_match());
            Ok((right, found))
        };
        let guarded = self.guarded(&record.user, LockCounter::Password, evaluate, on_settle)?;
        Ok(match guarded {
            Guarded::Locked { until } => {
                self.first_factor_dummy(password);
                FirstFactor::Locked { until }
            }
            Guarded::Busy => {
                self.first_factor_dummy(password);
                FirstFactor::Busy
            }
            Guarded::PassedWhileLocked => FirstFactor::LockedMeanwhile,
            Guarded::Passed(found) => FirstFactor::Passed {
                upgraded: upgrade_of(found.password),
                pin_upgraded: found.pin.and_then(upgrade_of),
            },
            // Whether this failure locked the account is for the settle's event
            // (`Settled::Failed`), which commits with it.
            Guarded::Failed { found, .. } => {
                if found.password.is_match() {
                    FirstFactor::WrongPin
                } else {
                    FirstFactor::WrongPassword
                }
            }
        })
    }

    /// The two verifications of a first-factor check.
    fn evaluate_first_factor(
        &self,
        record: &UserRecord,
        password: &Password,
        pin: PinCheck<'_>,
        password_hash: &StoredHash,
    ) -> Result<FirstFactorFound, Error> {
        let verification = self.verify_secret(password, password_hash)?;
        let pin_result = match pin {
            PinCheck::Skip => None,
            PinCheck::Given(given) => match (&record.pin, given) {
                (Some(credential), Some(given)) => {
                    let given = Password::new(given.expose_secret());
                    Some(self.verify_secret(&given, &credential.hash)?)
                }
                (Some(_), None) => {
                    self.hasher.verify_dummy(password);
                    Some(Verification::NoMatch)
                }
                (None, _) => {
                    // No PIN to check (a PIN nobody asked for is ignored): spend the same,
                    // where PINs are in use at all.
                    if self.pins == Pins::On {
                        self.hasher.verify_dummy(password);
                    }
                    None
                }
            },
        };
        Ok(FirstFactorFound {
            password: verification,
            pin: pin_result,
        })
    }

    /// Verifies `given` against a stored hash. Input the hasher refuses outright (longer than
    /// its limit) is a non-match after the same work, never an error, so that it looks like
    /// any wrong answer. A stored hash that cannot be read is an error.
    pub(crate) fn verify_secret(
        &self,
        given: &Password,
        stored: &StoredHash,
    ) -> Result<Verification, Error> {
        let hash = self.parse_hash(stored)?;
        match self.hasher.verify(given, &hash) {
            Err(HashError::PasswordTooLong { .. }) => {
                self.hasher.verify_dummy(given);
                Ok(Verification::NoMatch)
            }
            other => Ok(other?),
        }
    }

    /// Reads a stored hash.
    pub(crate) fn parse_hash(&self, hash: &StoredHash) -> Result<PasswordHash, Error> {
        Ok(self.hasher.parse(hash.as_str())?)
    }
}

/// The upgraded hash a match carries, if any.
fn upgrade_of(verification: Verification) -> Option<PasswordHash> {
    match verification {
        Verification::MatchUpgraded { new_hash, .. } => Some(new_hash),
        _ => None,
    }
}
