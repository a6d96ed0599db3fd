//! The in-memory store: the reference backend, for tests and examples.
//!
//! One mutex guards everything, which makes every operation trivially atomic. Clones share
//! the same data, so two clones behave like two application servers on one database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use super::ops;
use super::{
    Consumed, GroupQuery, GroupSummary, LockCounter, OneTimeKind, OneTimeTry, Page, StepAcceptance,
    StoreError, Swap, TemporaryBatch, UserQuery, UserStore, compare_for_sort, fold,
};
use crate::audit::{AuditEvent, AuditQuery};
use crate::lockout::{LockDecision, LockEvent, LockState, LockoutRule};
use crate::user::{
    OneTimeCredential, PasswordCredential, PinCredential, SiteId, StoredHash, TotpState, User,
    UserId, UserRecord,
};

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserId, UserRecord>,
    usernames: HashMap<(SiteId, String), UserId>,
    audit: Vec<AuditEvent>,
}

/// The in-memory store. Cloning gives another handle on the same data.
#[derive(Debug, Clone, Default)]
pub struct InMemoryStore {
    inner: Arc<Mutex<Inner>>,
}

impl InMemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change: every operation
        // computes first and writes last.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn with_user<T>(
        &self,
        id: &UserId,
        f: impl FnOnce(&mut UserRecord) -> T,
    ) -> Result<T, StoreError> {
        let mut inner = self.lock();
        let record = inner
            .users
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound { user: id.clone() })?;
        Ok(f(record))
    }
}

fn paginate<T>(items: Vec<T>, offset: u64, limit: u32) -> Page<T> {
    let total = items.len() as u64;
    let skip = usize::try_from(offset).unwrap_or(usize::MAX);
    let take = usize::try_from(limit).unwrap_or(usize::MAX);
    Page::new(items.into_iter().skip(skip).take(take).collect(), total)
}

impl UserStore for InMemoryStore {
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let key = (record.user.site.clone(), fold(&record.user.username));
        if inner.users.contains_key(&record.user.id) {
            return Err(StoreError::Conflict { what: "user id" });
        }
        if inner.usernames.contains_key(&key) {
            return Err(StoreError::Conflict { what: "username" });
        }
        inner.usernames.insert(key, record.user.id.clone());
        inner.users.insert(record.user.id.clone(), record.clone());
        Ok(())
    }

    fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.lock().users.get(id).cloned())
    }

    fn find_user(&self, site: &SiteId, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let inner = self.lock();
        let id = inner.usernames.get(&(site.clone(), fold(username)));
        Ok(id.and_then(|id| inner.users.get(id)).cloned())
    }

    fn update_profile(&self, user: &User) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let old = inner
            .users
            .get(&user.id)
            .map(|r| (r.user.site.clone(), fold(&r.user.username)))
            .ok_or_else(|| StoreError::NotFound {
                user: user.id.clone(),
            })?;
        let new = (user.site.clone(), fold(&user.username));
        if new != old {
            if inner.usernames.contains_key(&new) {
                return Err(StoreError::Conflict { what: "username" });
            }
            inner.usernames.remove(&old);
            inner.usernames.insert(new, user.id.clone());
        }
        if let Some(record) = inner.users.get_mut(&user.id) {
            record.user = user.clone();
        }
        Ok(())
    }

    fn search_users(&self, query: &UserQuery) -> Result<Page<UserRecord>, StoreError> {
        query.validate()?;
        let inner = self.lock();
        let mut hits: Vec<UserRecord> = inner
            .users
            .values()
            .filter(|r| query.matches(r))
            .cloned()
            .collect();
        hits.sort_by(|a, b| {
            let order = compare_for_sort(query.sort, a, b);
            if query.descending {
                order.reverse()
            } else {
                order
            }
        });
        Ok(paginate(hits, query.offset, query.limit))
    }

    fn list_groups(&self, query: &GroupQuery) -> Result<Page<GroupSummary>, StoreError> {
        query.validate()?;
        let prefix = query.text.as_deref().map(fold).unwrap_or_default();
        let inner = self.lock();
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for record in inner.users.values().filter(|r| r.user.site == query.site) {
            let mut seen: Vec<&str> = Vec::new();
            for group in &record.user.groups {
                if fold(group).starts_with(&prefix) && !seen.contains(&group.as_str()) {
                    seen.push(group);
                    *counts.entry(group).or_default() += 1;
                }
            }
        }
        let groups = counts
            .into_iter()
            .map(|(name, n)| GroupSummary::new(name.to_owned(), n))
            .collect();
        Ok(paginate(groups, query.offset, query.limit))
    }

    fn set_password(
        &self,
        id: &UserId,
        credential: Option<&PasswordCredential>,
    ) -> Result<(), StoreError> {
        self.with_user(id, |r| r.password = credential.cloned())
    }

    fn set_pin(&self, id: &UserId, pin: Option<&PinCredential>) -> Result<(), StoreError> {
        self.with_user(id, |r| r.pin = pin.cloned())
    }

    fn set_totp(&self, id: &UserId, totp: &TotpState) -> Result<(), StoreError> {
        self.with_user(id, |r| r.totp = totp.clone())
    }

    fn set_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        credential: Option<&OneTimeCredential>,
    ) -> Result<(), StoreError> {
        self.with_user(id, |r| *ops::one_time_slot(r, kind) = credential.cloned())
    }

    fn record_sign_in(&self, id: &UserId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.with_user(id, |r| r.user.last_sign_in_at = Some(at))
    }

    fn apply_lock_event(
        &self,
        id: &UserId,
        counter: LockCounter,
        rule: &LockoutRule,
        event: &LockEvent,
        now: OffsetDateTime,
    ) -> Result<(LockState, LockDecision), StoreError> {
        self.with_user(id, |r| {
            ops::apply_lock_event_to(r, counter, rule, event, now)
        })
    }

    fn replace_password(
        &self,
        id: &UserId,
        expected: Option<&StoredHash>,
        new: Option<&PasswordCredential>,
    ) -> Result<Swap, StoreError> {
        self.with_user(id, |r| ops::swap_password(r, expected, new))
    }

    fn replace_pin(
        &self,
        id: &UserId,
        expected: &StoredHash,
        new: &PinCredential,
    ) -> Result<Swap, StoreError> {
        self.with_user(id, |r| ops::swap_pin(r, expected, new))
    }

    fn replace_totp(
        &self,
        id: &UserId,
        expected: &TotpState,
        new: &TotpState,
    ) -> Result<Swap, StoreError> {
        self.with_user(id, |r| ops::swap_totp(r, expected, new))
    }

    fn consume_temporary_password(
        &self,
        id: &UserId,
        expected: &StoredHash,
        now: OffsetDateTime,
    ) -> Result<Consumed, StoreError> {
        self.with_user(id, |r| ops::consume_temporary(r, expected, now))
    }

    fn try_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        max_tries: u32,
        now: OffsetDateTime,
    ) -> Result<OneTimeTry, StoreError> {
        self.with_user(id, |r| ops::try_code(r, kind, max_tries, now))
    }

    fn consume_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        expected: &StoredHash,
    ) -> Result<Consumed, StoreError> {
        self.with_user(id, |r| ops::consume_code(r, kind, expected))
    }

    fn accept_totp_step(&self, id: &UserId, step: u64) -> Result<StepAcceptance, StoreError> {
        self.with_user(id, |r| ops::accept_step(r, step))
    }

    fn replace_batch(&self, batch: &TemporaryBatch) -> Result<(), StoreError> {
        let mut inner = self.lock();
        if let Some((missing, _)) = batch
            .entries
            .iter()
            .find(|(id, _)| !inner.users.contains_key(id))
        {
            return Err(StoreError::NotFound {
                user: missing.clone(),
            });
        }
        for (id, credential) in &batch.entries {
            if let Some(record) = inner.users.get_mut(id) {
                record.password = Some(credential.clone());
            }
        }
        Ok(())
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.lock().audit.push(event.clone());
        Ok(())
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError> {
        super::validate_limit(query.limit)?;
        let inner = self.lock();
        let mut hits: Vec<AuditEvent> = inner
            .audit
            .iter()
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        // Stable sort: equal times keep insertion order.
        hits.sort_by_key(|e| e.at);
        Ok(paginate(hits, query.offset, query.limit))
    }
}
