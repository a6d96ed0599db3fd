//! Lockout: the policy (plain data) and a pure transition function
//! `(rule, state, event, now) -> (state, decision)`.
//!
//! Every store applies [`transition`] inside its own atomic operation
//! ([`crate::store::UserStore::apply_lock_event`]), under a row lock or a compare-and-swap, so
//! the rule lives here and nowhere else.
//!
//! # Why attempts are reserved before a password is evaluated
//! A sign-in first sends [`LockEvent::Attempt`]. The attempt is allowed only while
//! `failed_attempts + in_flight < max_failures`; allowing it reserves a slot (`in_flight + 1`).
//! The outcome then settles the slot: [`LockEvent::Failure`] turns it into a counted failure
//! and locks once `failed_attempts` reaches the maximum; [`LockEvent::Success`] clears the count.
//! Both name the [`LockState::epoch`] the reservation was taken in: an administrator's unlock
//! starts a new epoch but keeps the open reservations counted, and each of them, when it
//! settles, is only released — so an unlock neither lets more guesses run at once nor is undone
//! by failures that were being evaluated when it happened.
//! So however many app servers race on one account, at most `max_failures` passwords are ever
//! evaluated before the lock holds, while a few concurrent legitimate sign-ins are not refused:
//! only failures lock, reservations never do. A reservation that is never settled (a crashed
//! process) is forgotten with the rest of the count once the failure window has passed.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::text_enum::text_enum;
use crate::user::{User, UserId};

text_enum!(
    /// Why an account is locked.
    LockReason {
        /// Too many failed attempts.
        Failures => "failures",
        /// An administrator locked the account.
        Administrative => "administrative",
    }
);

/// Failure count and lock of one counter (password or TOTP) of one user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockState {
    /// Settled failures in the current window.
    pub failed_attempts: u32,
    /// Attempts allowed and not yet settled.
    pub in_flight: u32,
    /// The last attempt that was allowed.
    pub last_attempt_at: Option<OffsetDateTime>,
    /// The last settled failure.
    pub last_failure_at: Option<OffsetDateTime>,
    /// When the current lock began; `None` when not locked.
    pub locked_at: Option<OffsetDateTime>,
    /// Why the current lock began.
    pub lock_reason: Option<LockReason>,
    /// End of a temporary lock; `None` with `locked_at` set means until an administrator
    /// unlocks.
    pub locked_until: Option<OffsetDateTime>,
    /// Temporary locks since the last success or unlock (drives the growing wait).
    pub temporary_locks: u32,
    /// The administrator who last unlocked the account.
    pub unlocked_by: Option<UserId>,
    /// When the account was last unlocked by an administrator.
    pub unlocked_at: Option<OffsetDateTime>,
    /// Unlocks so far. An attempt's reservation belongs to the epoch it was taken in; one
    /// settled after an unlock is released without being counted (see [`transition`]).
    pub epoch: u32,
}

impl LockState {
    /// Whether the lock holds at `now`.
    #[must_use]
    pub fn is_locked(&self, now: OffsetDateTime) -> bool {
        self.locked_at.is_some() && self.locked_until.is_none_or(|until| now < until)
    }

    /// Whether an administrator locked the account by hand (and nobody has unlocked it):
    /// no self-service path (a password reset, a device code) lifts such a lock.
    #[must_use]
    pub fn is_locked_by_administrator(&self, now: OffsetDateTime) -> bool {
        self.is_locked(now) && self.lock_reason == Some(LockReason::Administrative)
    }

    /// Whether the lock holds until an administrator unlocks it.
    #[must_use]
    pub fn is_permanently_locked(&self) -> bool {
        self.locked_at.is_some() && self.locked_until.is_none()
    }
}

/// What happens after the maximum number of failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockoutMode {
    /// Lock until an administrator unlocks.
    UntilUnlocked,
    /// Lock for a growing wait: `base * factor^(k-1)` for the k-th lock, at most `max`.
    Temporary {
        /// The first wait.
        base: Duration,
        /// Growth per further lock (1 keeps the wait constant).
        factor: u32,
        /// The longest wait.
        max: Duration,
    },
    /// Temporary locks as above; the lock after `permanent_after` temporary ones is permanent.
    TemporaryThenPermanent {
        /// The first wait.
        base: Duration,
        /// Growth per further lock.
        factor: u32,
        /// The longest wait.
        max: Duration,
        /// Temporary locks allowed before the next lock is permanent.
        permanent_after: u32,
    },
}

/// A lockout rule: plain data with documented defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LockoutRule {
    /// Failures that lock (the "number of failed attempts before automatic lock").
    pub max_failures: u32,
    /// Failures are forgotten once this long has passed since the last attempt.
    pub failure_window: Duration,
    /// What the lock looks like.
    pub mode: LockoutMode,
}

/// A lockout rule that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LockoutRuleError {
    /// `max_failures` must be at least 1.
    #[error("max_failures must be at least 1")]
    ZeroFailures,
    /// A duration must be positive.
    #[error("{name} must be positive")]
    NonPositive {
        /// Which duration.
        name: &'static str,
    },
    /// The growth factor must be at least 1.
    #[error("factor must be at least 1")]
    ZeroFactor,
}

impl LockoutRule {
    /// The default: lock after 5 consecutive failures until an administrator unlocks; failures
    /// are forgotten after 1 hour without attempts.
    ///
    /// Five guesses against a policy-checked password give an online attacker almost nothing,
    /// and an administrator sees every lock with its reason. The cost is that anyone who knows
    /// a username can lock that user out with five wrong passwords: applications where that
    /// denial of service matters more (public sign-up, no administrator on call) should use
    /// [`LockoutMode::Temporary`] or [`LockoutMode::TemporaryThenPermanent`], which bound the
    /// damage to a wait.
    pub const DEFAULT: Self = Self {
        max_failures: 5,
        failure_window: Duration::hours(1),
        mode: LockoutMode::UntilUnlocked,
    };

    /// A validated rule.
    ///
    /// # Errors
    /// [`LockoutRuleError`] when `max_failures` is 0, a duration is not positive, or a factor
    /// is 0.
    pub fn new(
        max_failures: u32,
        failure_window: Duration,
        mode: LockoutMode,
    ) -> Result<Self, LockoutRuleError> {
        if max_failures == 0 {
            return Err(LockoutRuleError::ZeroFailures);
        }
        if !failure_window.is_positive() {
            return Err(LockoutRuleError::NonPositive {
                name: "failure_window",
            });
        }
        match mode {
            LockoutMode::UntilUnlocked => {}
            LockoutMode::Temporary { base, factor, max }
            | LockoutMode::TemporaryThenPermanent {
                base, factor, max, ..
            } => {
                if !base.is_positive() {
                    return Err(LockoutRuleError::NonPositive { name: "base" });
                }
                if !max.is_positive() {
                    return Err(LockoutRuleError::NonPositive { name: "max" });
                }
                if factor == 0 {
                    return Err(LockoutRuleError::ZeroFactor);
                }
            }
        }
        Ok(Self {
            max_failures,
            failure_window,
            mode,
        })
    }

    /// The end of the `k`-th temporary lock (1-based) begun at `now`, or `None` for a
    /// permanent lock.
    fn lock_until(&self, k: u32, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let (base, factor, max) = match self.mode {
            LockoutMode::UntilUnlocked => return None,
            LockoutMode::Temporary { base, factor, max } => (base, factor, max),
            LockoutMode::TemporaryThenPermanent {
                base,
                factor,
                max,
                permanent_after,
            } => {
                if k > permanent_after {
                    return None;
                }
                (base, factor, max)
            }
        };
        let mut wait = base;
        for _ in 1..k {
            // Saturate at `max`: growth never overflows.
            wait = wait
                .checked_mul(i32::try_from(factor).unwrap_or(i32::MAX))
                .unwrap_or(max);
            if wait >= max {
                break;
            }
        }
        Some(now.saturating_add(wait.min(max)))
    }
}

impl Default for LockoutRule {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Chooses the lockout rule for a user: implement it to look rules up per site or user type.
/// [`LockoutRule`] itself is the data-driven default (the same rule for everyone).
pub trait LockoutPolicy: Send + Sync + fmt::Debug {
    /// The rule for password failures of `user`.
    fn password_rule(&self, user: &User) -> LockoutRule;
    /// The rule for TOTP code failures of `user` (counted apart from password failures).
    fn totp_rule(&self, user: &User) -> LockoutRule {
        self.password_rule(user)
    }
}

impl LockoutPolicy for LockoutRule {
    fn password_rule(&self, _user: &User) -> LockoutRule {
        *self
    }
}

/// What happened to a counter.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockEvent {
    /// A sign-in wants to evaluate a credential.
    Attempt,
    /// The evaluated credential was wrong.
    Failure {
        /// The [`LockState::epoch`] the attempt's reservation was taken in.
        reserved_in: u32,
    },
    /// The evaluated credential was right.
    Success {
        /// The [`LockState::epoch`] the attempt's reservation was taken in.
        reserved_in: u32,
    },
    /// An administrator unlocks the account.
    Unlock {
        /// The administrator.
        by: UserId,
    },
    /// An administrator locks the account.
    Lock,
}

/// The decision that comes with a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum LockDecision {
    /// The attempt may evaluate the credential; its slot is reserved.
    Proceed,
    /// The account is locked: do not evaluate anything.
    Locked {
        /// End of a temporary lock; `None` until an administrator unlocks.
        until: Option<OffsetDateTime>,
    },
    /// As many attempts as may still fail are already being evaluated: refuse this one
    /// without evaluating it.
    Busy,
    /// The failure was counted; the account is not locked.
    FailureCounted {
        /// Failures left before the lock.
        remaining: u32,
    },
    /// The failure locked the account.
    NowLocked {
        /// End of a temporary lock; `None` until an administrator unlocks.
        until: Option<OffsetDateTime>,
    },
    /// The count was cleared by a success.
    Cleared,
    /// A success arrived after a concurrent failure locked the account: the lock stands.
    SuccessWhileLocked,
    /// An administrator unlocked the account.
    Unlocked,
    /// An administrator locked the account.
    AdminLocked,
    /// The settled attempt was reserved before an unlock: its slot is released, its outcome
    /// neither counts nor clears anything.
    Stale,
}

/// Starts a new epoch of a counter without changing its lock or counts: what disabling an
/// account does. Guesses already being evaluated settle without counting (as after an
/// unlock), and every session stamp made before goes stale for good, because the stamp holds
/// the epoch: enabling the account again does not bring those sessions back.
#[must_use]
pub fn new_epoch(state: &LockState) -> LockState {
    LockState {
        epoch: state.epoch.wrapping_add(1),
        ..state.clone()
    }
}

/// The pure lockout machine. Never panics; all arithmetic saturates.
pub fn transition(
    rule: &LockoutRule,
    state: &LockState,
    event: &LockEvent,
    now: OffsetDateTime,
) -> (LockState, LockDecision) {
    let mut s = state.clone();
    match event {
        LockEvent::Attempt => {
            if s.is_locked(now) {
                let until = s.locked_until;
                return (s, LockDecision::Locked { until });
            }
            if s.locked_at.is_some() {
                // A temporary lock has run out: a new cycle begins.
                s.locked_at = None;
                s.lock_reason = None;
                s.locked_until = None;
                s.failed_attempts = 0;
                s.in_flight = 0;
            }
            let last_seen = s.last_attempt_at.max(s.last_failure_at);
            if last_seen.is_some_and(|t| now >= t.saturating_add(rule.failure_window)) {
                s.failed_attempts = 0;
                s.in_flight = 0;
            }
            if s.failed_attempts.saturating_add(s.in_flight) >= rule.max_failures {
                return (s, LockDecision::Busy);
            }
            s.in_flight = s.in_flight.saturating_add(1);
            s.last_attempt_at = Some(now);
            (s, LockDecision::Proceed)
        }
        LockEvent::Failure { reserved_in } | LockEvent::Success { reserved_in }
            if *reserved_in != s.epoch =>
        {
            // Reserved before an unlock: the unlock kept the slot counted (so that it could not
            // widen the bound), and now it is released; its failure must not re-lock what an
            // administrator unlocked.
            s.in_flight = s.in_flight.saturating_sub(1);
            (s, LockDecision::Stale)
        }
        LockEvent::Failure { .. } => {
            s.in_flight = s.in_flight.saturating_sub(1);
            s.failed_attempts = s.failed_attempts.saturating_add(1);
            s.last_failure_at = Some(now);
            if s.is_locked(now) {
                let until = s.locked_until;
                return (s, LockDecision::Locked { until });
            }
            if s.failed_attempts >= rule.max_failures {
                s.temporary_locks = s.temporary_locks.saturating_add(1);
                let until = rule.lock_until(s.temporary_locks, now);
                s.locked_at = Some(now);
                s.lock_reason = Some(LockReason::Failures);
                s.locked_until = until;
                return (s, LockDecision::NowLocked { until });
            }
            let remaining = rule.max_failures - s.failed_attempts;
            (s, LockDecision::FailureCounted { remaining })
        }
        LockEvent::Success { .. } => {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.is_locked(now) {
                return (s, LockDecision::SuccessWhileLocked);
            }
            s.failed_attempts = 0;
            s.temporary_locks = 0;
            s.last_failure_at = None;
            (s, LockDecision::Cleared)
        }
        LockEvent::Unlock { by } => {
            // Reservations still being evaluated stay counted, so an unlock does not let as many
            // again start beside them; they belong to the old epoch and will not count.
            let cleared = LockState {
                unlocked_by: Some(by.clone()),
                unlocked_at: Some(now),
                in_flight: s.in_flight,
                epoch: s.epoch.wrapping_add(1),
                ..LockState::default()
            };
            (cleared, LockDecision::Unlocked)
        }
        LockEvent::Lock => {
            s.locked_at = Some(now);
            s.lock_reason = Some(LockReason::Administrative);
            s.locked_until = None;
            (s, LockDecision::AdminLocked)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);

    fn admin() -> UserId {
        UserId::parse("admin1").unwrap()
    }

    /// Runs attempt + failure and returns the failure's decision.
    fn fail(rule: &LockoutRule, s: &mut LockState, now: OffsetDateTime) -> LockDecision {
        let (next, d) = transition(rule, s, &LockEvent::Attempt, now);
        *s = next;
        if d != LockDecision::Proceed {
            return d;
        }
        let (next, d) = transition(
            rule,
            s,
            &LockEvent::Failure {
                reserved_in: s.epoch,
            },
            now,
        );
        *s = next;
        d
    }

    #[test]
    fn five_failures_lock_until_unlocked_and_unlock_clears() {
        let rule = LockoutRule::DEFAULT;
        let mut s = LockState::default();
        for i in 1..=4 {
            let d = fail(&rule, &mut s, T0 + Duration::minutes(i));
            assert_eq!(
                d,
                LockDecision::FailureCounted {
                    remaining: 5 - u32::try_from(i).unwrap()
                }
            );
        }
        let t5 = T0 + Duration::minutes(5);
        assert_eq!(
            fail(&rule, &mut s, t5),
            LockDecision::NowLocked { until: None }
        );
        assert_eq!(s.locked_at, Some(t5));
        assert_eq!(s.lock_reason, Some(LockReason::Failures));
        // Locked: refused without evaluation, the count does not grow, time does not unlock.
        let years_later = t5 + Duration::days(3650);
        let (after, d) = transition(&rule, &s, &LockEvent::Attempt, years_later);
        assert_eq!(d, LockDecision::Locked { until: None });
        assert_eq!(after, s);
        // Unlock clears everything and records who.
        let t6 = t5 + Duration::hours(2);
        let (s2, d) = transition(&rule, &s, &LockEvent::Unlock { by: admin() }, t6);
        assert_eq!(d, LockDecision::Unlocked);
        assert!(!s2.is_locked(t6));
        assert_eq!(s2.failed_attempts, 0);
        assert_eq!(s2.unlocked_by, Some(admin()));
        assert_eq!(s2.unlocked_at, Some(t6));
        assert_eq!(
            transition(&rule, &s2, &LockEvent::Attempt, t6).1,
            LockDecision::Proceed
        );
    }

    #[test]
    fn an_unlock_neither_widens_the_bound_nor_is_undone_by_stale_failures() {
        let rule = LockoutRule::DEFAULT;
        let mut s = LockState::default();
        // Five guesses are being evaluated when the administrator unlocks.
        for _ in 0..5 {
            let (next, d) = transition(&rule, &s, &LockEvent::Attempt, T0);
            assert_eq!(d, LockDecision::Proceed);
            s = next;
        }
        let (unlocked, d) = transition(&rule, &s, &LockEvent::Unlock { by: admin() }, T0);
        assert_eq!(d, LockDecision::Unlocked);
        assert_eq!((unlocked.in_flight, unlocked.epoch), (5, 1));
        // No five more may start beside them.
        let (_, d) = transition(&rule, &unlocked, &LockEvent::Attempt, T0);
        assert_eq!(d, LockDecision::Busy);
        // Their five failures settle: released, not counted, no lock.
        let mut s = unlocked;
        for _ in 0..5 {
            let (next, d) = transition(&rule, &s, &LockEvent::Failure { reserved_in: 0 }, T0);
            assert_eq!(d, LockDecision::Stale);
            s = next;
        }
        assert!(!s.is_locked(T0));
        assert_eq!((s.failed_attempts, s.in_flight), (0, 0));
        // And the unlocked account takes attempts again, counted in the new epoch.
        assert_eq!(
            fail(&rule, &mut s, T0),
            LockDecision::FailureCounted { remaining: 4 }
        );
    }

    #[test]
    fn success_resets_the_count() {
        let rule = LockoutRule::DEFAULT;
        let mut s = LockState::default();
        for _ in 0..4 {
            let _ = fail(&rule, &mut s, T0);
        }
        let (s1, d) = transition(&rule, &s, &LockEvent::Attempt, T0);
        assert_eq!(d, LockDecision::Proceed);
        let (s2, d) = transition(&rule, &s1, &LockEvent::Success { reserved_in: 0 }, T0);
        assert_eq!(d, LockDecision::Cleared);
        assert_eq!((s2.failed_attempts, s2.in_flight), (0, 0));
    }

    #[test]
    fn the_window_forgets_old_failures() {
        let rule = LockoutRule::DEFAULT;
        let mut s = LockState::default();
        for _ in 0..4 {
            let _ = fail(&rule, &mut s, T0);
        }
        // One second before the window closes the count stands...
        let just_before = T0 + Duration::hours(1) - Duration::seconds(1);
        let mut probe = s.clone();
        assert_eq!(
            fail(&rule, &mut probe, just_before),
            LockDecision::NowLocked { until: None }
        );
        // ...at the window's end it is forgotten.
        let at_end = T0 + Duration::hours(1);
        assert_eq!(
            fail(&rule, &mut s, at_end),
            LockDecision::FailureCounted { remaining: 4 }
        );
    }

    #[test]
    fn temporary_locks_grow_and_expire() {
        let rule = LockoutRule::new(
            3,
            Duration::hours(1),
            LockoutMode::Temporary {
                base: Duration::minutes(1),
                factor: 4,
                max: Duration::minutes(10),
            },
        )
        .unwrap();
        let mut s = LockState::default();
        let mut now = T0;
        for (k, expected_wait) in [(1, 1), (2, 4), (3, 10), (4, 10)] {
            let _ = fail(&rule, &mut s, now);
            let _ = fail(&rule, &mut s, now);
            let d = fail(&rule, &mut s, now);
            let until = now + Duration::minutes(expected_wait);
            assert_eq!(
                d,
                LockDecision::NowLocked { until: Some(until) },
                "lock {k}"
            );
            assert_eq!(s.temporary_locks, k);
            let almost = until - Duration::seconds(1);
            assert_eq!(
                transition(&rule, &s, &LockEvent::Attempt, almost).1,
                LockDecision::Locked { until: Some(until) }
            );
            now = until;
            assert_eq!(
                transition(&rule, &s, &LockEvent::Attempt, now).1,
                LockDecision::Proceed
            );
        }
    }

    #[test]
    fn temporary_then_permanent() {
        let rule = LockoutRule::new(
            2,
            Duration::hours(1),
            LockoutMode::TemporaryThenPermanent {
                base: Duration::minutes(5),
                factor: 2,
                max: Duration::hours(1),
                permanent_after: 2,
            },
        )
        .unwrap();
        let mut s = LockState::default();
        let mut now = T0;
        for expected in [Some(5), Some(10), None] {
            let _ = fail(&rule, &mut s, now);
            let d = fail(&rule, &mut s, now);
            let until = expected.map(|m| now + Duration::minutes(m));
            assert_eq!(d, LockDecision::NowLocked { until });
            now += Duration::minutes(30);
        }
        assert!(s.is_permanently_locked());
        assert!(s.is_locked(now + Duration::days(10_000)));
    }

    #[test]
    fn reservations_bound_concurrent_evaluations() {
        let rule = LockoutRule::DEFAULT;
        let mut s = LockState::default();
        let mut proceeded = 0;
        for _ in 0..64 {
            let (next, d) = transition(&rule, &s, &LockEvent::Attempt, T0);
            s = next;
            if d == LockDecision::Proceed {
                proceeded += 1;
            } else {
                assert_eq!(d, LockDecision::Busy);
            }
        }
        assert_eq!(proceeded, 5);
        // Four fail and one succeeds: the success clears, nothing locks.
        for _ in 0..4 {
            let (next, _) = transition(&rule, &s, &LockEvent::Failure { reserved_in: 0 }, T0);
            s = next;
        }
        let (s, d) = transition(&rule, &s, &LockEvent::Success { reserved_in: 0 }, T0);
        assert_eq!(d, LockDecision::Cleared);
        assert!(!s.is_locked(T0));
    }

    #[test]
    fn administrative_lock_holds_until_unlock() {
        let rule = LockoutRule::DEFAULT;
        let (s, d) = transition(&rule, &LockState::default(), &LockEvent::Lock, T0);
        assert_eq!(d, LockDecision::AdminLocked);
        assert_eq!(s.lock_reason, Some(LockReason::Administrative));
        let later = T0 + Duration::days(400);
        assert_eq!(
            transition(&rule, &s, &LockEvent::Attempt, later).1,
            LockDecision::Locked { until: None }
        );
    }

    #[test]
    fn invalid_rules_are_refused() {
        assert_eq!(
            LockoutRule::new(0, Duration::hours(1), LockoutMode::UntilUnlocked),
            Err(LockoutRuleError::ZeroFailures)
        );
        assert!(LockoutRule::new(3, Duration::ZERO, LockoutMode::UntilUnlocked).is_err());
        assert!(
            LockoutRule::new(
                3,
                Duration::hours(1),
                LockoutMode::Temporary {
                    base: Duration::minutes(1),
                    factor: 0,
                    max: Duration::hours(1)
                }
            )
            .is_err()
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Attempt,
        Settle(bool),
        Unlock,
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Attempt),
            4 => any::<bool>().prop_map(Op::Settle),
            1 => Just(Op::Unlock),
            2 => (0i64..7200).prop_map(Op::Wait),
        ]
    }

    fn rules() -> impl Strategy<Value = LockoutRule> {
        (1u32..8, 0usize..3).prop_map(|(n, mode)| {
            let mode = match mode {
                0 => LockoutMode::UntilUnlocked,
                1 => LockoutMode::Temporary {
                    base: Duration::minutes(1),
                    factor: 2,
                    max: Duration::minutes(30),
                },
                _ => LockoutMode::TemporaryThenPermanent {
                    base: Duration::minutes(1),
                    factor: 3,
                    max: Duration::minutes(30),
                    permanent_after: 2,
                },
            };
            LockoutRule::new(n, Duration::hours(1), mode).unwrap()
        })
    }

    proptest! {
        /// Invariants over random event sequences: never more than N evaluated failures per
        /// lock cycle, never more than N attempts evaluated at once (an unlock included), an
        /// unlock always clears, stale settles never count, time never lifts a permanent lock.
        #[test]
        fn invariants_hold(rule in rules(), ops in proptest::collection::vec(op(), 0..200)) {
            let mut s = LockState::default();
            let mut now = T0;
            // Attempts allowed and not yet settled, with the epoch each was reserved in.
            let mut pending: Vec<u32> = Vec::new();
            let mut failures_this_cycle = 0u32;
            for op in ops {
                match op {
                    Op::Attempt => {
                        let was_permanent = s.is_permanently_locked();
                        let (next, d) = transition(&rule, &s, &LockEvent::Attempt, now);
                        if was_permanent {
                            prop_assert_eq!(d, LockDecision::Locked { until: None });
                        }
                        let proceeded = u32::from(d == LockDecision::Proceed);
                        let forgot = next.failed_attempts < s.failed_attempts
                            || next.in_flight < s.in_flight + proceeded;
                        if forgot || (s.locked_at.is_some() && next.locked_at.is_none()) {
                            // A new cycle: a temporary lock ran out or the window passed. Any
                            // reservation still open is modelled as a crashed process.
                            failures_this_cycle = 0;
                            pending.clear();
                        }
                        if proceeded == 1 {
                            pending.push(next.epoch);
                        }
                        prop_assert!(next.in_flight <= rule.max_failures);
                        prop_assert!(pending.len() as u32 <= rule.max_failures);
                        s = next;
                    }
                    Op::Settle(ok) if !pending.is_empty() => {
                        let reserved_in = pending.remove(0);
                        let event = if ok {
                            LockEvent::Success { reserved_in }
                        } else {
                            LockEvent::Failure { reserved_in }
                        };
                        let (next, d) = transition(&rule, &s, &event, now);
                        if reserved_in != s.epoch {
                            prop_assert_eq!(d, LockDecision::Stale);
                            prop_assert_eq!(next.failed_attempts, s.failed_attempts);
                            prop_assert_eq!(next.locked_at, s.locked_at);
                        } else if ok && d == LockDecision::Cleared {
                            failures_this_cycle = 0;
                        } else if !ok {
                            failures_this_cycle += 1;
                            prop_assert!(failures_this_cycle <= rule.max_failures);
                        }
                        s = next;
                    }
                    Op::Settle(_) => {}
                    Op::Unlock => {
                        let (next, _) = transition(&rule, &s, &LockEvent::Unlock { by: admin() }, now);
                        prop_assert!(!next.is_locked(now));
                        prop_assert_eq!(next.failed_attempts, 0);
                        prop_assert_eq!(next.in_flight, s.in_flight);
                        prop_assert_eq!(next.epoch, s.epoch.wrapping_add(1));
                        s = next;
                        failures_this_cycle = 0;
                    }
                    Op::Wait(secs) => {
                        let permanent = s.is_permanently_locked();
                        now += Duration::seconds(secs);
                        if permanent {
                            prop_assert!(s.is_locked(now));
                        }
                    }
                }
            }
        }
    }
}
