//! The bodies of the atomic store operations, as functions of one record.
//!
//! A backend that reads a whole [`UserRecord`] under its lock (a mutex, `BEGIN IMMEDIATE`,
//! `SELECT … FOR UPDATE`), applies one of these and writes the record back meets the atomic
//! part of the [`UserStore`](super::UserStore) contract without re-implementing a rule. The
//! built-in backends all do; a third-party backend may too.

use time::OffsetDateTime;

use super::{Consumed, LockCounter, OneTimeKind, OneTimeTry, StepAcceptance, Swap};
use crate::lockout::{self, LockDecision, LockEvent, LockState, LockoutRule};
use crate::user::{
    OneTimeCredential, PasswordCredential, PinCredential, StoredHash, TotpState, UserRecord,
};

/// Applies a lock event to one counter of a record with [`lockout::transition`]: the body of
/// [`UserStore::apply_lock_event`](super::UserStore::apply_lock_event).
pub fn apply_lock_event_to(
    record: &mut UserRecord,
    counter: LockCounter,
    rule: &LockoutRule,
    event: &LockEvent,
    now: OffsetDateTime,
) -> (LockState, LockDecision) {
    let state = match counter {
        LockCounter::Password => &mut record.password_lock,
        LockCounter::Totp => &mut record.totp_lock,
    };
    let (next, decision) = lockout::transition(rule, state, event, now);
    *state = next.clone();
    (next, decision)
}

/// The single-use code slot of a record.
pub fn one_time_slot(record: &mut UserRecord, kind: OneTimeKind) -> &mut Option<OneTimeCredential> {
    match kind {
        OneTimeKind::ResetToken => &mut record.reset_token,
        OneTimeKind::DeviceCode => &mut record.totp.device_code,
    }
}

/// Compare-and-swap of the whole password credential: the body of
/// [`UserStore::replace_password`](super::UserStore::replace_password).
pub fn swap_password(
    r: &mut UserRecord,
    expected: Option<&StoredHash>,
    new: Option<&PasswordCredential>,
) -> Swap {
    if r.password.as_ref().map(|p| &p.hash) == expected {
        r.password = new.cloned();
        Swap::Swapped
    } else {
        Swap::Changed
    }
}

/// Marks a live single-use temporary password as consumed: the body of
/// [`UserStore::consume_temporary_password`](super::UserStore::consume_temporary_password).
pub fn consume_temporary(
    r: &mut UserRecord,
    expected: &StoredHash,
    now: OffsetDateTime,
) -> Consumed {
    let Some(p) = r.password.as_mut() else {
        return Consumed::AlreadyGone;
    };
    match p.temporary.as_mut() {
        Some(t) if p.hash == *expected && t.consumed_at.is_none() => {
            t.consumed_at = Some(now);
            Consumed::Now
        }
        _ => Consumed::AlreadyGone,
    }
}

/// Takes a try at a single-use code: the body of
/// [`UserStore::try_one_time`](super::UserStore::try_one_time).
pub fn try_code(
    r: &mut UserRecord,
    kind: OneTimeKind,
    max_tries: u32,
    now: OffsetDateTime,
) -> OneTimeTry {
    match one_time_slot(r, kind).as_mut() {
        None => OneTimeTry::Absent,
        Some(c) if now >= c.expires_at => OneTimeTry::Expired,
        Some(c) if c.failed_tries >= max_tries => OneTimeTry::Exhausted,
        Some(c) => {
            c.failed_tries = c.failed_tries.saturating_add(1);
            OneTimeTry::Available(c.clone())
        }
    }
}

/// Removes a single-use code whose hash is still `expected`: the body of
/// [`UserStore::consume_one_time`](super::UserStore::consume_one_time).
pub fn consume_code(r: &mut UserRecord, kind: OneTimeKind, expected: &StoredHash) -> Consumed {
    let slot = one_time_slot(r, kind);
    if slot.as_ref().is_some_and(|c| &c.hash == expected) {
        *slot = None;
        Consumed::Now
    } else {
        Consumed::AlreadyGone
    }
}

/// Accepts a TOTP step only if newer than the last one: the body of
/// [`UserStore::accept_totp_step`](super::UserStore::accept_totp_step).
pub fn accept_step(r: &mut UserRecord, step: u64) -> StepAcceptance {
    if r.totp.last_step.is_some_and(|last| step <= last) {
        StepAcceptance::Replayed
    } else {
        r.totp.last_step = Some(step);
        StepAcceptance::Accepted
    }
}

/// Compare-and-swap of the PIN credential: the body of
/// [`UserStore::replace_pin`](super::UserStore::replace_pin).
pub fn swap_pin(r: &mut UserRecord, expected: &StoredHash, new: &PinCredential) -> Swap {
    match r.pin.as_ref() {
        Some(p) if &p.hash == expected => {
            r.pin = Some(new.clone());
            Swap::Swapped
        }
        _ => Swap::Changed,
    }
}

/// Compare-and-swap of the whole TOTP state: the body of
/// [`UserStore::replace_totp`](super::UserStore::replace_totp).
pub fn swap_totp(r: &mut UserRecord, expected: &TotpState, new: &TotpState) -> Swap {
    if &r.totp == expected {
        r.totp = new.clone();
        Swap::Swapped
    } else {
        Swap::Changed
    }
}
