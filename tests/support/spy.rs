//! A store that calls a hook, with the method's name, before every operation it passes on:
//! to count store calls or to inject failures.
#![allow(dead_code, unreachable_pub)]

use std::fmt;
use std::sync::Arc;

use keyward::UserStore;
use keyward::audit::{AuditEvent, AuditQuery};
use keyward::lockout::{LockDecision, LockEvent, LockState, LockoutRule};
use keyward::store::{
    BatchWritten, Consumed, Creation, GroupQuery, GroupSummary, LockCounter, NewUser, OneTimeKind,
    OneTimeTry, Page, StepAcceptance, StoreError, Swap, TemporaryBatch, UserQuery, UserRecord,
};
use keyward::user::{
    OneTimeCredential, PasswordCredential, PinCredential, SiteId, StoredHash, TotpState, User,
    UserId,
};
use time::OffsetDateTime;

/// What [`Spy`] calls before each operation; an `Err` is returned instead of the operation.
pub type Hook = Box<dyn Fn(&'static str) -> Result<(), StoreError> + Send + Sync>;

/// Passes every operation on to `inner` after calling `hook` with the operation's name.
pub struct Spy {
    pub inner: Arc<dyn UserStore>,
    hook: Hook,
}

impl Spy {
    pub fn new(inner: Arc<dyn UserStore>, hook: Hook) -> Self {
        Self { inner, hook }
    }
}

impl fmt::Debug for Spy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spy")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl UserStore for Spy {
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        (self.hook)("create_user")?;
        self.inner.create_user(record)
    }
    fn create_users(&self, users: &[NewUser]) -> Result<Vec<Creation>, StoreError> {
        (self.hook)("create_users")?;
        self.inner.create_users(users)
    }
    fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        (self.hook)("get_user")?;
        self.inner.get_user(id)
    }
    fn find_user(&self, site: &SiteId, username: &str) -> Result<Option<UserRecord>, StoreError> {
        (self.hook)("find_user")?;
        self.inner.find_user(site, username)
    }
    fn update_profile(&self, user: &User) -> Result<(), StoreError> {
        (self.hook)("update_profile")?;
        self.inner.update_profile(user)
    }
    fn search_users(&self, query: &UserQuery) -> Result<Page<UserRecord>, StoreError> {
        (self.hook)("search_users")?;
        self.inner.search_users(query)
    }
    fn list_groups(&self, query: &GroupQuery) -> Result<Page<GroupSummary>, StoreError> {
        (self.hook)("list_groups")?;
        self.inner.list_groups(query)
    }
    fn set_password(
        &self,
        id: &UserId,
        credential: Option<&PasswordCredential>,
    ) -> Result<(), StoreError> {
        (self.hook)("set_password")?;
        self.inner.set_password(id, credential)
    }
    fn set_pin(&self, id: &UserId, pin: Option<&PinCredential>) -> Result<(), StoreError> {
        (self.hook)("set_pin")?;
        self.inner.set_pin(id, pin)
    }
    fn set_totp(&self, id: &UserId, totp: &TotpState) -> Result<(), StoreError> {
        (self.hook)("set_totp")?;
        self.inner.set_totp(id, totp)
    }
    fn set_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        credential: Option<&OneTimeCredential>,
    ) -> Result<(), StoreError> {
        (self.hook)("set_one_time")?;
        self.inner.set_one_time(id, kind, credential)
    }
    fn record_sign_in(&self, id: &UserId, at: OffsetDateTime) -> Result<(), StoreError> {
        (self.hook)("record_sign_in")?;
        self.inner.record_sign_in(id, at)
    }
    fn apply_lock_event(
        &self,
        id: &UserId,
        counter: LockCounter,
        rule: &LockoutRule,
        event: &LockEvent,
        now: OffsetDateTime,
    ) -> Result<(LockState, LockDecision), StoreError> {
        (self.hook)("apply_lock_event")?;
        self.inner.apply_lock_event(id, counter, rule, event, now)
    }
    fn replace_password(
        &self,
        id: &UserId,
        expected: Option<&StoredHash>,
        new: Option<&PasswordCredential>,
    ) -> Result<Swap, StoreError> {
        (self.hook)("replace_password")?;
        self.inner.replace_password(id, expected, new)
    }
    fn replace_pin(
        &self,
        id: &UserId,
        expected: &StoredHash,
        new: &PinCredential,
    ) -> Result<Swap, StoreError> {
        (self.hook)("replace_pin")?;
        self.inner.replace_pin(id, expected, new)
    }
    fn replace_totp(
        &self,
        id: &UserId,
        expected: &TotpState,
        new: &TotpState,
    ) -> Result<Swap, StoreError> {
        (self.hook)("replace_totp")?;
        self.inner.replace_totp(id, expected, new)
    }
    fn consume_temporary_password(
        &self,
        id: &UserId,
        expected: &StoredHash,
        now: OffsetDateTime,
    ) -> Result<Consumed, StoreError> {
        (self.hook)("consume_temporary_password")?;
        self.inner.consume_temporary_password(id, expected, now)
    }
    fn try_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        max_tries: u32,
        now: OffsetDateTime,
    ) -> Result<OneTimeTry, StoreError> {
        (self.hook)("try_one_time")?;
        self.inner.try_one_time(id, kind, max_tries, now)
    }
    fn consume_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        expected: &StoredHash,
    ) -> Result<Consumed, StoreError> {
        (self.hook)("consume_one_time")?;
        self.inner.consume_one_time(id, kind, expected)
    }
    fn accept_totp_step(&self, id: &UserId, step: u64) -> Result<StepAcceptance, StoreError> {
        (self.hook)("accept_totp_step")?;
        self.inner.accept_totp_step(id, step)
    }
    fn replace_batch(&self, batch: &TemporaryBatch) -> Result<BatchWritten, StoreError> {
        (self.hook)("replace_batch")?;
        self.inner.replace_batch(batch)
    }
    fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        (self.hook)("append_audit")?;
        self.inner.append_audit(event)
    }
    fn query_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError> {
        (self.hook)("query_audit")?;
        self.inner.query_audit(query)
    }
    fn prune_audit(&self, site: &SiteId, before: OffsetDateTime) -> Result<u64, StoreError> {
        (self.hook)("prune_audit")?;
        self.inner.prune_audit(site, before)
    }
    fn change_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        (self.hook)("change_recorded")?;
        self.inner.change_recorded(id, change)
    }
    fn change_profile_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        (self.hook)("change_profile_recorded")?;
        self.inner.change_profile_recorded(id, change)
    }
    fn delete_recorded(
        &self,
        id: &UserId,
        decide: &mut (dyn FnMut(&UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<bool, StoreError> {
        (self.hook)("delete_recorded")?;
        self.inner.delete_recorded(id, decide)
    }
}
