//! The bodies of the atomic store operations, as functions of one record.
//!
//! A backend that reads a whole [`UserRecord`] under its lock (a mutex, `BEGIN IMMEDIATE`,
//! `SELECT … FOR UPDATE`), applies one of these and writes the record back meets the atomic
//! part of the [`UserStore`](super::UserStore) contract without re-implementing a rule. The
//! built-in backends all do; a third-party backend may too.
//!
//! Inside keyward, each built-in backend implements the crate-private `RecordBackend` (its
//! atomic step and its plain write) and expands `record_store_methods!` in its `UserStore`
//! implementation, which writes the record-level store methods once for all of them.

use time::OffsetDateTime;

use super::{
    BatchEntry, BatchWritten, Consumed, LockCounter, OneTimeKind, OneTimeTry, StepAcceptance,
    StoreError, Swap, TemporaryBatch, UserRecord,
};
use crate::audit::AuditEvent;
use crate::lockout::{self, LockDecision, LockEvent, LockState, LockoutRule};
use crate::user::{
    CodeStatus, OneTimeCredential, PasswordCredential, PinCredential, StoredHash, TemporaryStatus,
    TotpState, UserId,
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
        OneTimeKind::ContactCode => &mut record.contact_code,
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
        Some(t) if p.hash == *expected && t.status(now) != TemporaryStatus::Used => {
            t.consumed_at = Some(now);
            // A used password is dead: its escrowed copy goes with it.
            t.escrow = None;
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
    let Some(c) = one_time_slot(r, kind).as_mut() else {
        return OneTimeTry::Absent;
    };
    match c.status(now, max_tries) {
        CodeStatus::Expired => OneTimeTry::Expired,
        CodeStatus::Exhausted => OneTimeTry::Exhausted,
        CodeStatus::Live => {
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

/// Applies one batch entry to its user's record: the credential is set if the user is still
/// as the batch saw them — the same password hash (nobody claimed the account or replaced its
/// password meanwhile) and the same site, role, status and SSO link (the facts that made the
/// user part of the batch). The body of each entry of
/// [`UserStore::replace_batch`](super::UserStore::replace_batch); `true` when written.
pub fn apply_batch_entry(r: &mut UserRecord, entry: &BatchEntry) -> bool {
    let (now, then) = (&r.user, &entry.profile);
    let same_standing = now.site == then.site
        && now.role == then.role
        && now.status == then.status
        && now.sso_linked == then.sso_linked;
    same_standing
        && swap_password(r, entry.expected.as_ref(), Some(&entry.credential)) == Swap::Swapped
}

/// The batch's summary event as stored: its details completed with the counts written and
/// skipped (`…; written=N; changed=M`).
#[must_use]
pub fn batch_summary(batch: &TemporaryBatch, written: &BatchWritten) -> AuditEvent {
    let mut event = batch.summary.clone();
    let counts = format!(
        "written={}; changed={}",
        written.written.len(),
        written.changed.len()
    );
    event.details = Some(match event.details.take() {
        Some(details) if !details.is_empty() => format!("{details}; {counts}"),
        _ => counts,
    });
    event
}

/// Runs a recorded change on one record: the body of
/// [`UserStore::change_recorded`](super::UserStore::change_recorded). A change that touched the
/// profile (beyond the last sign-in time, which a sign-in records with its event) is refused,
/// and the record is left as it was.
pub fn recorded(
    r: &mut UserRecord,
    change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
) -> Result<Vec<AuditEvent>, StoreError> {
    let before = r.clone();
    let events = change(r);
    let mut profile = r.user.clone();
    profile.last_sign_in_at = before.user.last_sign_in_at;
    if profile != before.user {
        *r = before;
        let reason = "a recorded change may not change the profile";
        return Err(StoreError::InvalidQuery {
            reason: reason.to_owned(),
        });
    }
    Ok(events)
}

/// Runs a recorded change that may touch the profile: the body of
/// [`UserStore::change_profile_recorded`](super::UserStore::change_profile_recorded). The id,
/// site and creation time are not the change's to make (refused, the record left as it was);
/// a change that records no event changes nothing.
pub fn profile_recorded(
    r: &mut UserRecord,
    change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
) -> Result<Vec<AuditEvent>, StoreError> {
    let before = r.clone();
    let events = change(r);
    let (now, then) = (&r.user, &before.user);
    if now.id != then.id || now.site != then.site || now.created_at != then.created_at {
        *r = before;
        let reason = "a profile change may not change the id, site or creation time";
        return Err(StoreError::InvalidQuery {
            reason: reason.to_owned(),
        });
    }
    if events.is_empty() {
        *r = before;
    }
    Ok(events)
}

/// One part of a record that a plain write overwrites (last writer wins), leaving the rest.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Part<'a> {
    /// The password credential.
    Password(Option<&'a PasswordCredential>),
    /// The PIN credential.
    Pin(Option<&'a PinCredential>),
    /// The whole TOTP state.
    Totp(&'a TotpState),
    /// One single-use code.
    OneTime(OneTimeKind, Option<&'a OneTimeCredential>),
    /// The time of the last successful sign-in.
    SignedIn(OffsetDateTime),
}

/// Overwrites one part of a record: the plain writes of a backend that holds whole records.
pub(crate) fn write_part(r: &mut UserRecord, part: Part<'_>) {
    match part {
        Part::Password(p) => r.password = p.cloned(),
        Part::Pin(p) => r.pin = p.cloned(),
        Part::Totp(t) => r.totp = t.clone(),
        Part::OneTime(kind, c) => *one_time_slot(r, kind) = c.cloned(),
        Part::SignedIn(at) => r.user.last_sign_in_at = Some(at),
    }
}

/// What a built-in backend provides so that [`record_store_methods!`] can write its
/// record-level store methods: one atomic step on one record, and one plain write.
pub(crate) trait RecordBackend {
    /// Reads the record of `id` under the backend's write lock, applies `f`, writes back what
    /// changed, as one atomic step ([`StoreError::NotFound`] for a missing user).
    ///
    /// `f` is one of this module's pure bodies. A backend may apply it more than once, each
    /// time to a freshly read record, and keep only the last application (the PostgreSQL
    /// store's optimistic step, retried under the row lock when the row changed meanwhile);
    /// the result is that of one atomic step on the record the last application saw.
    fn atomic<T: Send>(
        &self,
        context: &'static str,
        id: &UserId,
        f: impl FnMut(&mut UserRecord) -> T + Send,
    ) -> Result<T, StoreError>;

    /// Overwrites one part of the record of `id` ([`StoreError::NotFound`] for a missing user).
    fn write_part(&self, id: &UserId, part: Part<'_>) -> Result<(), StoreError>;

    /// [`atomic`](Self::atomic) for a step whose effect is transient: a lockout reservation
    /// ([`LockEvent::Attempt`]), which the settle that always follows releases. It must be as
    /// atomic and as visible to every other writer as any step, but a backend may commit it
    /// without waiting for it to be durable (the PostgreSQL store does): if the server crashes
    /// before the write reaches the disk, what is lost is a reservation, never a counted
    /// failure, because the settle's durable commit flushes everything written before it.
    fn atomic_transient<T: Send>(
        &self,
        context: &'static str,
        id: &UserId,
        f: impl FnMut(&mut UserRecord) -> T + Send,
    ) -> Result<T, StoreError> {
        self.atomic(context, id, f)
    }
}

/// The `UserStore` methods that every built-in backend implements the same way: the plain
/// writes through [`RecordBackend::write_part`], the atomic operations through
/// [`RecordBackend::atomic`] with their bodies from this module, one line each. Expanded inside
/// a backend's `impl UserStore` block; it uses nothing from the caller's scope but `self`.
macro_rules! record_store_methods {
    () => {
        $crate::store::ops::record_store_methods! { @writes
            set_password(credential: Option<&$crate::user::PasswordCredential>) => Password(credential);
            set_pin(pin: Option<&$crate::user::PinCredential>) => Pin(pin);
            set_totp(totp: &$crate::user::TotpState) => Totp(totp);
            set_one_time(
                kind: $crate::store::OneTimeKind,
                credential: Option<&$crate::user::OneTimeCredential>
            ) => OneTime(kind, credential);
            record_sign_in(at: ::time::OffsetDateTime) => SignedIn(at);
        }
        fn apply_lock_event(
            &self,
            id: &$crate::user::UserId,
            counter: $crate::store::LockCounter,
            rule: &$crate::lockout::LockoutRule,
            event: &$crate::lockout::LockEvent,
            now: ::time::OffsetDateTime,
        ) -> ::core::result::Result<
            ($crate::lockout::LockState, $crate::lockout::LockDecision),
            $crate::store::StoreError,
        > {
            let body = |r: &mut $crate::store::UserRecord| {
                $crate::store::ops::apply_lock_event_to(r, counter, rule, event, now)
            };
            let context = "applying a lock event";
            // A reservation is transient (its settle always follows); every other lock
            // event is a decision that must be durable when the call returns.
            if ::core::matches!(event, $crate::lockout::LockEvent::Attempt) {
                $crate::store::ops::RecordBackend::atomic_transient(self, context, id, body)
            } else {
                $crate::store::ops::RecordBackend::atomic(self, context, id, body)
            }
        }
        $crate::store::ops::record_store_methods! { @atomic
            replace_password(
                expected: Option<&$crate::user::StoredHash>,
                new: Option<&$crate::user::PasswordCredential>
            ) -> $crate::store::Swap = "replacing a password", swap_password;
            replace_pin(expected: &$crate::user::StoredHash, new: &$crate::user::PinCredential)
                -> $crate::store::Swap = "replacing a PIN", swap_pin;
            replace_totp(expected: &$crate::user::TotpState, new: &$crate::user::TotpState)
                -> $crate::store::Swap = "replacing the TOTP state", swap_totp;
            consume_temporary_password(
                expected: &$crate::user::StoredHash,
                now: ::time::OffsetDateTime
            ) -> $crate::store::Consumed = "consuming a temporary password", consume_temporary;
            try_one_time(
                kind: $crate::store::OneTimeKind,
                max_tries: u32,
                now: ::time::OffsetDateTime
            ) -> $crate::store::OneTimeTry = "trying a code", try_code;
            consume_one_time(kind: $crate::store::OneTimeKind, expected: &$crate::user::StoredHash)
                -> $crate::store::Consumed = "consuming a code", consume_code;
            accept_totp_step(step: u64)
                -> $crate::store::StepAcceptance = "accepting a TOTP step", accept_step;
        }
    };
    (@writes $($name:ident($($arg:ident: $ty:ty),* $(,)?) => $part:ident($($val:ident),*);)*) => {
        $(
            fn $name(
                &self,
                id: &$crate::user::UserId,
                $($arg: $ty),*
            ) -> ::core::result::Result<(), $crate::store::StoreError> {
                let part = $crate::store::ops::Part::$part($($val),*);
                $crate::store::ops::RecordBackend::write_part(self, id, part)
            }
        )*
    };
    (@atomic $(
        $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $out:ty = $context:literal, $body:ident;
    )*) => {
        $(
            fn $name(
                &self,
                id: &$crate::user::UserId,
                $($arg: $ty),*
            ) -> ::core::result::Result<$out, $crate::store::StoreError> {
                $crate::store::ops::RecordBackend::atomic(self, $context, id, |r| {
                    $crate::store::ops::$body(r, $($arg),*)
                })
            }
        )*
    };
}
pub(crate) use record_store_methods;
