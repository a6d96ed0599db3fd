//! The in-memory store: the reference backend, for tests and examples.
//!
//! One mutex guards everything, which makes every operation trivially atomic. Clones share
//! the same data, so two clones behave like two application servers on one database.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use time::OffsetDateTime;

use super::ops::{self, Part, RecordBackend};
use super::{
    BatchWritten, CONFUSABLE_USERNAME, Creation, GroupQuery, GroupSummary, NewUser, Page,
    StoreError, TemporaryBatch, UserQuery, UserRecord, UserStore, compare_for_sort, fold, skeleton,
};
use crate::audit::{AuditEvent, AuditQuery};
use crate::user::{SiteId, User, UserId};

#[derive(Debug, Default)]
struct Inner {
    users: HashMap<UserId, UserRecord>,
    usernames: HashMap<(SiteId, String), UserId>,
    /// Username skeletons per site ([`skeleton`]), one user each.
    skeletons: HashMap<(SiteId, String), UserId>,
    audit: Vec<AuditEvent>,
}

impl Inner {
    /// Why `user` may not take its username (as a new user, or renamed), if it may not.
    fn username_refused(&self, user: &User) -> Option<Creation> {
        let key = (user.site.clone(), fold(&user.username));
        let looks = (user.site.clone(), skeleton(&user.username));
        if self.usernames.get(&key).is_some_and(|id| *id != user.id) {
            Some(Creation::UsernameTaken)
        } else if self.skeletons.get(&looks).is_some_and(|id| *id != user.id) {
            Some(Creation::UsernameConfusable)
        } else {
            None
        }
    }

    /// Records `user`'s username and skeleton (after [`username_refused`] said yes).
    fn claim_username(&mut self, user: &User) {
        let key = (user.site.clone(), fold(&user.username));
        let looks = (user.site.clone(), skeleton(&user.username));
        self.usernames.insert(key, user.id.clone());
        self.skeletons.insert(looks, user.id.clone());
    }

    fn release_username(&mut self, user: &User) {
        self.usernames
            .remove(&(user.site.clone(), fold(&user.username)));
        self.skeletons
            .remove(&(user.site.clone(), skeleton(&user.username)));
    }
}

fn conflict(refused: Creation) -> StoreError {
    let what = match refused {
        Creation::UsernameConfusable => CONFUSABLE_USERNAME,
        Creation::IdTaken => "user id",
        _ => "username",
    };
    StoreError::Conflict { what }
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
}

impl RecordBackend for InMemoryStore {
    fn atomic<T: Send>(
        &self,
        _context: &'static str,
        id: &UserId,
        f: impl FnOnce(&mut UserRecord) -> T + Send,
    ) -> Result<T, StoreError> {
        let mut inner = self.lock();
        let record = inner
            .users
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound { user: id.clone() })?;
        Ok(f(record))
    }

    fn write_part(&self, id: &UserId, part: Part<'_>) -> Result<(), StoreError> {
        self.atomic("writing a user", id, |r| ops::write_part(r, part))
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
        if inner.users.contains_key(&record.user.id) {
            return Err(conflict(Creation::IdTaken));
        }
        if let Some(refused) = inner.username_refused(&record.user) {
            return Err(conflict(refused));
        }
        inner.claim_username(&record.user);
        inner.users.insert(record.user.id.clone(), record.clone());
        Ok(())
    }

    fn create_users(&self, users: &[NewUser]) -> Result<Vec<Creation>, StoreError> {
        let mut inner = self.lock();
        let mut out = Vec::with_capacity(users.len());
        for NewUser { record, event } in users {
            let creation = if inner.users.contains_key(&record.user.id) {
                Creation::IdTaken
            } else if let Some(refused) = inner.username_refused(&record.user) {
                refused
            } else {
                inner.claim_username(&record.user);
                inner.users.insert(record.user.id.clone(), record.clone());
                inner.audit.push(event.clone());
                Creation::Created
            };
            out.push(creation);
        }
        Ok(out)
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
        let old = (inner.users.get(&user.id))
            .map(|r| r.user.clone())
            .ok_or_else(|| StoreError::NotFound {
                user: user.id.clone(),
            })?;
        if let Some(refused) = inner.username_refused(user) {
            return Err(conflict(refused));
        }
        inner.release_username(&old);
        inner.claim_username(user);
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

    super::ops::record_store_methods!();

    fn replace_batch(&self, batch: &TemporaryBatch) -> Result<BatchWritten, StoreError> {
        let mut inner = self.lock();
        if let Some(missing) = batch
            .entries
            .iter()
            .find(|e| !inner.users.contains_key(&e.user))
        {
            return Err(StoreError::NotFound {
                user: missing.user.clone(),
            });
        }
        let mut out = BatchWritten::default();
        for entry in &batch.entries {
            let written = (inner.users.get_mut(&entry.user))
                .is_some_and(|record| ops::apply_batch_entry(record, entry));
            if written {
                inner.audit.push(entry.event.clone());
                out.written.push(entry.user.clone());
            } else {
                out.changed.push(entry.user.clone());
            }
        }
        inner.audit.push(ops::batch_summary(batch, &out));
        Ok(out)
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.lock().audit.push(event.clone());
        Ok(())
    }

    fn change_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let record = inner
            .users
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound { user: id.clone() })?;
        let events = ops::recorded(record, change)?;
        inner.audit.extend(events);
        Ok(())
    }

    fn change_profile_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let mut record = (inner.users.get(id).cloned())
            .ok_or_else(|| StoreError::NotFound { user: id.clone() })?;
        let old = record.user.clone();
        let events = ops::profile_recorded(&mut record, change)?;
        if events.is_empty() {
            return Ok(());
        }
        if let Some(refused) = inner.username_refused(&record.user) {
            return Err(conflict(refused));
        }
        inner.release_username(&old);
        inner.claim_username(&record.user);
        inner.users.insert(id.clone(), record);
        inner.audit.extend(events);
        Ok(())
    }

    fn delete_recorded(
        &self,
        id: &UserId,
        decide: &mut (dyn FnMut(&UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<bool, StoreError> {
        let mut inner = self.lock();
        let record =
            (inner.users.get(id)).ok_or_else(|| StoreError::NotFound { user: id.clone() })?;
        let events = decide(record);
        if events.is_empty() {
            return Ok(false);
        }
        let user = record.user.clone();
        inner.release_username(&user);
        inner.users.remove(id);
        inner.audit.extend(events);
        Ok(true)
    }

    fn prune_audit(&self, site: &SiteId, before: OffsetDateTime) -> Result<u64, StoreError> {
        let mut inner = self.lock();
        let was = inner.audit.len();
        inner.audit.retain(|e| &e.site != site || e.at >= before);
        Ok((was - inner.audit.len()) as u64)
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
