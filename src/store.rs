//! The store contract and its backends.
//!
//! A store keeps [`UserRecord`]s and audit events. It takes no decisions of its own: where a
//! decision must be taken inside a transaction (the lock decision on a failed attempt), the
//! store calls the same pure function the rest of keyward uses ([`lockout::transition`](crate::lockout::transition)).
//!
//! Backends: [`memory::InMemoryStore`] (always built, the reference),
//! `sqlite::SqliteStore` (feature `sqlite`, the embedded default) and
//! `postgres::PostgresStore` (feature `postgres`).
//!
//! The trait is synchronous and `Send + Sync`. Async applications call keyward through
//! `tokio::task::spawn_blocking` (hashing is CPU-bound anyway).

use std::fmt;

use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditQuery};
use crate::lockout::{LockDecision, LockEvent, LockState, LockoutRule};
use crate::user::{
    BatchId, OneTimeCredential, PasswordCredential, PinCredential, Role, SiteId, StoredHash,
    TemporaryInfo, TemporaryMode, TotpState, User, UserId, UserStatus,
};
pub use error::StoreError;
pub use ops::apply_lock_event_to;

mod error;
pub mod memory;
pub mod ops;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// Everything a store keeps for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserRecord {
    /// The profile.
    pub user: User,
    /// The password, if standard login is possible.
    pub password: Option<PasswordCredential>,
    /// The PIN, if the user must give one.
    pub pin: Option<PinCredential>,
    /// The second factor.
    pub totp: TotpState,
    /// The outstanding password-reset token (the newest voids older ones).
    pub reset_token: Option<OneTimeCredential>,
    /// The outstanding code sent to verify an email address or phone number; its digest is
    /// bound to the channel and the address it went to (the newest voids older ones).
    pub contact_code: Option<OneTimeCredential>,
    /// Password failures and lock.
    pub password_lock: LockState,
    /// TOTP code failures and lock, counted apart from password failures.
    pub totp_lock: LockState,
}

impl UserRecord {
    /// A record for a new user with no credentials.
    #[must_use]
    pub fn new(user: User) -> Self {
        Self {
            user,
            password: None,
            pin: None,
            totp: TotpState::default(),
            reset_token: None,
            contact_code: None,
            password_lock: LockState::default(),
            totp_lock: LockState::default(),
        }
    }
}

impl UserRecord {
    /// Whether the user has never set a password of their own: the password slot is empty or
    /// holds a temporary password (issued by an administrator, or imported as temporary).
    /// Setting one's own password by any path — the forced change after a temporary password,
    /// a reset link, a self-service change, an import of a real hash, or a permanent password
    /// given at creation — claims the account. This is the one definition of "unclaimed":
    /// the search filter ([`UserQuery::unclaimed_only`]), bulk regeneration, the unclaimed list
    /// and the group picker all use it.
    #[must_use]
    pub fn is_unclaimed(&self) -> bool {
        self.password.as_ref().is_none_or(|p| p.temporary.is_some())
    }

    /// Whether the user holds an admin-managed temporary password (unused, expired or not):
    /// only an administrator changes or removes it, so neither a reset link nor a self-service
    /// path replaces it.
    #[must_use]
    pub fn holds_admin_managed_password(&self) -> bool {
        self.unconsumed_temporary()
            .is_some_and(|t| t.mode == TemporaryMode::AdminManaged)
    }

    /// The temporary password the user holds and has not used, expired or not: it occupies
    /// the password slot (an administrator replacing it *changes* a temporary password, and
    /// admin screens list it) until it is used, replaced or removed. Whether it still signs
    /// the user in is [`TemporaryInfo::status`].
    #[must_use]
    pub fn unconsumed_temporary(&self) -> Option<&TemporaryInfo> {
        self.password
            .as_ref()
            .and_then(|p| p.temporary.as_ref())
            .filter(|t| !t.is_consumed())
    }
}

/// The largest page a query may ask for.
pub const MAX_PAGE: u32 = 1000;

/// One page of results and the total number of matches.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items on this page.
    pub items: Vec<T>,
    /// Matches over all pages.
    pub total: u64,
}

impl<T> Page<T> {
    /// A page.
    #[must_use]
    pub fn new(items: Vec<T>, total: u64) -> Self {
        Self { items, total }
    }
}

/// Sort order of a user search; ties are broken by user id so paging is stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum UserSort {
    /// Surname, then forename, then username (case-insensitive).
    #[default]
    Surname,
    /// Forename, then surname, then username (case-insensitive).
    Forename,
    /// Username (case-insensitive).
    Username,
    /// Creation time.
    Created,
}

/// A user search for admin screens.
///
/// `text` matches, case-insensitively, users whose forename, surname, username or email
/// *starts with* it (prefix search keeps every backend on an index).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserQuery {
    /// The site to search.
    pub site: SiteId,
    /// Prefix of forename, surname, username or email.
    pub text: Option<String>,
    /// Only members of this group (exact name).
    pub group: Option<String>,
    /// Only this user type.
    pub user_type: Option<String>,
    /// Only this status.
    pub status: Option<UserStatus>,
    /// Only this role.
    pub role: Option<Role>,
    /// Only users who are (`true`) or are not (`false`) SSO-linked.
    pub sso_linked: Option<bool>,
    /// Users left out by id (the admin screens leave out whom the actor may not see).
    pub excluded: Vec<UserId>,
    /// Only users whose password or TOTP lock holds at `as_of`.
    pub locked_only: bool,
    /// Only unclaimed users ([`UserRecord::is_unclaimed`]).
    pub unclaimed_only: bool,
    /// Only users holding an unconsumed temporary password (expired ones included, so admins
    /// see them).
    pub temporary_password_only: bool,
    /// The instant at which "locked" is judged.
    pub as_of: OffsetDateTime,
    /// Sort order.
    pub sort: UserSort,
    /// Reverse the sort order.
    pub descending: bool,
    /// Matches to skip.
    pub offset: u64,
    /// Most matches to return (at most [`MAX_PAGE`]).
    pub limit: u32,
}

impl UserQuery {
    /// All users of `site`, sorted by surname, first page of 50.
    #[must_use]
    pub fn new(site: SiteId, as_of: OffsetDateTime) -> Self {
        Self {
            site,
            text: None,
            group: None,
            user_type: None,
            status: None,
            role: None,
            sso_linked: None,
            excluded: Vec::new(),
            locked_only: false,
            unclaimed_only: false,
            temporary_password_only: false,
            as_of,
            sort: UserSort::Surname,
            descending: false,
            offset: 0,
            limit: 50,
        }
    }

    /// Prefix text search.
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Group filter.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// User-type filter.
    #[must_use]
    pub fn user_type(mut self, user_type: impl Into<String>) -> Self {
        self.user_type = Some(user_type.into());
        self
    }

    /// Role filter.
    #[must_use]
    pub fn role(mut self, role: Role) -> Self {
        self.role = Some(role);
        self
    }

    /// Only locked users.
    #[must_use]
    pub fn locked_only(mut self) -> Self {
        self.locked_only = true;
        self
    }

    /// Only unclaimed users.
    #[must_use]
    pub fn unclaimed_only(mut self) -> Self {
        self.unclaimed_only = true;
        self
    }

    /// Only users with a temporary password.
    #[must_use]
    pub fn temporary_password_only(mut self) -> Self {
        self.temporary_password_only = true;
        self
    }

    /// Sort order.
    #[must_use]
    pub fn sort(mut self, sort: UserSort, descending: bool) -> Self {
        self.sort = sort;
        self.descending = descending;
        self
    }

    /// Page.
    #[must_use]
    pub fn page(mut self, offset: u64, limit: u32) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }

    /// Checks the page size.
    ///
    /// # Errors
    /// [`StoreError::InvalidQuery`] when `limit` is 0 or above [`MAX_PAGE`].
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_limit(self.limit)
    }

    /// The lowercased search text, if any. Backends compare it against lowercased columns.
    #[must_use]
    pub fn text_key(&self) -> Option<String> {
        self.text.as_deref().map(fold).filter(|t| !t.is_empty())
    }

    /// Whether `record` passes the filters (paging and sorting aside). The in-memory backend
    /// uses this; SQL backends translate the same rules, and the conformance suite checks
    /// that they agree.
    #[must_use]
    pub fn matches(&self, record: &UserRecord) -> bool {
        let u = &record.user;
        let text_ok = self.text_key().is_none_or(|t| {
            [
                Some(u.forename.as_str()),
                Some(u.surname.as_str()),
                Some(u.username.as_str()),
                u.email.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|field| fold(field).starts_with(&t))
        });
        text_ok
            && u.site == self.site
            && self.group.as_ref().is_none_or(|g| u.groups.contains(g))
            && self.user_type.as_ref().is_none_or(|t| &u.user_type == t)
            && self.status.is_none_or(|s| u.status == s)
            && self.role.is_none_or(|r| u.role == r)
            && self.sso_linked.is_none_or(|s| u.sso_linked == s)
            && !self.excluded.contains(&u.id)
            && (!self.locked_only
                || record.password_lock.is_locked(self.as_of)
                || record.totp_lock.is_locked(self.as_of))
            && (!self.unclaimed_only || record.is_unclaimed())
            && (!self.temporary_password_only || record.unconsumed_temporary().is_some())
    }
}

/// The key of every case-insensitive comparison (usernames, names, emails, groups, search
/// text): compatibility-normalized and case-folded, NFKC(casefold(NFKD(text))), trimmed, so
/// fullwidth `ＡＤＡ` is `ada`, `ΣΑΣ` is `σασ` and a decomposed `josé` is the composed one.
#[must_use]
pub fn fold(text: &str) -> String {
    use caseless::Caseless;
    use unicode_normalization::UnicodeNormalization;
    let folded: String = text.nfkd().default_case_fold().nfkc().collect();
    // Trimmed after normalizing: a compatibility decomposition can start with a space
    // (spacing tilde U+02DC is " \u{303}"), and folding twice must change nothing (found by
    // the `usernames` fuzz target).
    match folded.trim() {
        trimmed if trimmed.len() == folded.len() => folded,
        trimmed => trimmed.to_owned(),
    }
}

/// The confusable skeleton of a username (UTS #39 `skeleton` of its [`fold`]): two usernames
/// with the same skeleton look alike (Latin `ada` and Cyrillic `аda`), and a site holds at
/// most one of them.
#[must_use]
pub fn skeleton(username: &str) -> String {
    unicode_security::skeleton(&fold(username)).collect()
}

/// [`StoreError::Conflict`]'s `what` for a username that looks like one the site has.
pub const CONFUSABLE_USERNAME: &str = "username (confusable with an existing one)";

fn validate_limit(limit: u32) -> Result<(), StoreError> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(StoreError::InvalidQuery {
            reason: format!("limit must be between 1 and {MAX_PAGE}, got {limit}"),
        });
    }
    Ok(())
}

/// A group-picker query: groups of a site whose name starts with `text` (case-insensitive),
/// sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupQuery {
    /// The site.
    pub site: SiteId,
    /// Prefix of the group name.
    pub text: Option<String>,
    /// Groups to skip.
    pub offset: u64,
    /// Most groups to return (at most [`MAX_PAGE`]).
    pub limit: u32,
}

impl GroupQuery {
    /// All groups of `site`, first page of 50.
    #[must_use]
    pub fn new(site: SiteId) -> Self {
        Self {
            site,
            text: None,
            offset: 0,
            limit: 50,
        }
    }

    /// Prefix filter.
    #[must_use]
    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    /// Page.
    #[must_use]
    pub fn page(mut self, offset: u64, limit: u32) -> Self {
        self.offset = offset;
        self.limit = limit;
        self
    }

    /// Checks the page size.
    ///
    /// # Errors
    /// [`StoreError::InvalidQuery`] when `limit` is 0 or above [`MAX_PAGE`].
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_limit(self.limit)
    }
}

/// A group and how many users of the site are in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupSummary {
    /// The group's name.
    pub name: String,
    /// Members in the site.
    pub members: u64,
}

impl GroupSummary {
    /// A summary.
    #[must_use]
    pub fn new(name: String, members: u64) -> Self {
        Self { name, members }
    }
}

/// Which failure counter of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockCounter {
    /// Password (and PIN) failures.
    Password,
    /// TOTP code failures.
    Totp,
}

/// Which single-use code of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OneTimeKind {
    /// The password-reset token.
    ResetToken,
    /// The device-authorization code after a TOTP reset.
    DeviceCode,
    /// The code proving control of an email address or phone number
    /// ([`UserRecord::contact_code`]).
    ContactCode,
}

/// The result of taking a try at a single-use code.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum OneTimeTry {
    /// A try was counted; compare the presented code against this credential.
    Available(OneTimeCredential),
    /// There is no such code (never issued, consumed, or voided).
    Absent,
    /// The code has expired.
    Expired,
    /// The code has used up its tries; a new one is needed.
    Exhausted,
}

/// The result of consuming a single-use credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Consumed {
    /// This call consumed it: the caller may proceed.
    Now,
    /// It was already consumed, replaced or removed: the caller must not proceed.
    AlreadyGone,
}

/// The result of offering a TOTP time step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum StepAcceptance {
    /// The step was newer than the last accepted one and is now the last accepted one.
    Accepted,
    /// The step was the last accepted one or older: a replay.
    Replayed,
}

/// The result of a compare-and-swap on a password hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Swap {
    /// The stored hash was the expected one and is now the new one.
    Swapped,
    /// The stored hash had changed meanwhile; nothing was written.
    Changed,
}

/// One user's new temporary password in a [`TemporaryBatch`], with the audit event that
/// records it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchEntry {
    /// The user.
    pub user: UserId,
    /// The password hash the batch was planned against (`None`: the user had no password).
    /// The entry is written only while the user's password hash is still this one.
    pub expected: Option<StoredHash>,
    /// The profile the batch was planned against: the entry is written only while the user's
    /// site, role, status and SSO link are still these (see
    /// [`ops::apply_batch_entry`]).
    pub profile: User,
    /// The new credential.
    pub credential: PasswordCredential,
    /// Recorded with the entry, and only if the entry is written.
    pub event: AuditEvent,
}

impl BatchEntry {
    /// An entry for `profile`'s user.
    #[must_use]
    pub fn new(
        profile: User,
        expected: Option<StoredHash>,
        credential: PasswordCredential,
        event: AuditEvent,
    ) -> Self {
        Self {
            user: profile.id.clone(),
            expected,
            profile,
            credential,
            event,
        }
    }
}

/// Temporary passwords for a set of users, each written only if that user's password is still
/// the one the batch was planned against, together with the audit events recording them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemporaryBatch {
    /// The batch identifier written into every credential.
    pub batch: BatchId,
    /// One entry per user.
    pub entries: Vec<BatchEntry>,
    /// The event recording the whole batch, written with it; the store completes its details
    /// with what was written ([`ops::batch_summary`]).
    pub summary: AuditEvent,
}

impl TemporaryBatch {
    /// A batch.
    #[must_use]
    pub fn new(batch: BatchId, entries: Vec<BatchEntry>, summary: AuditEvent) -> Self {
        Self {
            batch,
            entries,
            summary,
        }
    }
}

/// What [`UserStore::replace_batch`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BatchWritten {
    /// Users whose new credential and event were written, in the batch's order.
    pub written: Vec<UserId>,
    /// Users skipped because they changed since the batch was planned (their password, or
    /// their site, role, status or SSO link).
    pub changed: Vec<UserId>,
}

/// A user to create together with the event recording the creation: one entry of
/// [`UserStore::create_users`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewUser {
    /// The user with their credentials and lock state.
    pub record: UserRecord,
    /// Recorded with the user, and only if the user is created.
    pub event: AuditEvent,
}

impl NewUser {
    /// An entry creating `record`'s user, recorded by `event`.
    #[must_use]
    pub fn new(record: UserRecord, event: AuditEvent) -> Self {
        Self { record, event }
    }
}

/// What [`UserStore::create_users`] did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Creation {
    /// The user and their event were written.
    Created,
    /// Skipped: the site already has a user with this username (after folding), or an
    /// earlier entry of the same call took it.
    UsernameTaken,
    /// Skipped: the user id is already used.
    IdTaken,
    /// Skipped: the username is confusable with one the site has (the same [`skeleton`]),
    /// or with an earlier entry's.
    UsernameConfusable,
}

/// The store contract.
///
/// # Contract
/// Every backend must meet all of the following; [`crate::conformance`] checks them.
///
/// - **Uniqueness.** A user id is unique; a username is unique per site after case folding
///   ([`fold`]), and so is its confusable [`skeleton`] ([`CONFUSABLE_USERNAME`]). Breaking either is [`StoreError::Conflict`], and nothing is written
///   ([`create_users`](Self::create_users) instead skips and reports the entry).
/// - **Missing rows.** Reads of a missing user return `Ok(None)`; writes to a missing user
///   return [`StoreError::NotFound`].
/// - **Atomic operations.** Each of [`apply_lock_event`](Self::apply_lock_event),
///   [`replace_password`](Self::replace_password), [`replace_pin`](Self::replace_pin),
///   [`replace_totp`](Self::replace_totp),
///   [`consume_temporary_password`](Self::consume_temporary_password),
///   [`try_one_time`](Self::try_one_time), [`consume_one_time`](Self::consume_one_time),
///   [`accept_totp_step`](Self::accept_totp_step) and
///   [`replace_batch`](Self::replace_batch) and [`create_users`](Self::create_users) is one
///   atomic step, also across processes sharing the backend: no increment is lost, a
///   single-use credential is consumed exactly once, a TOTP step is accepted exactly once, and
///   a batch is written whole (less the users whose password changed since it was planned, or
///   whose username is taken) with its audit events, or not at all.
/// - **Rules live elsewhere.** `apply_lock_event` calls [`lockout::transition`](crate::lockout::transition) (through
///   [`apply_lock_event_to`]) on the stored state; a backend never re-implements the rule.
/// - **Plain writes.** `set_*`, `update_profile` and `record_sign_in` overwrite their part of
///   the record (last writer wins) and leave every other part untouched.
/// - **Untrusted rows.** Data read back that does not parse (a corrupted row, an unknown enum
///   value) is [`StoreError::Corrupt`], never a panic.
/// - **Queries.** Searches follow [`UserQuery::matches`] and [`AuditQuery::matches`], return
///   the total count of matches, sort as documented with ties broken by id (users) or by
///   insertion order (audit events, oldest first), and refuse a `limit` of 0 or above
///   [`MAX_PAGE`].
pub trait UserStore: Send + Sync + fmt::Debug {
    /// Creates a user with the credentials and lock state in `record`.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] for a used id or username; backend failures.
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError>;

    /// Creates users with the events recording them, in one transaction: an entry whose id
    /// or username is already taken (in the store, or by an earlier entry of the same call)
    /// is skipped and reported, every other entry is written with its event, in order. On an
    /// error nothing is written.
    ///
    /// # Errors
    /// Backend failures (nothing of the call is written then).
    fn create_users(&self, users: &[NewUser]) -> Result<Vec<Creation>, StoreError>;

    /// Reads a user by id.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for unreadable rows; backend failures.
    fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError>;

    /// Reads a user by site and username (case-insensitive).
    ///
    /// # Errors
    /// As [`get_user`](Self::get_user).
    fn find_user(&self, site: &SiteId, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Overwrites the profile of `user.id` (credentials and lock state stay).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Conflict`] when the new username is taken.
    fn update_profile(&self, user: &User) -> Result<(), StoreError>;

    /// Searches users of a site.
    ///
    /// # Errors
    /// [`StoreError::InvalidQuery`]; backend failures.
    fn search_users(&self, query: &UserQuery) -> Result<Page<UserRecord>, StoreError>;

    /// Lists the groups of a site with member counts.
    ///
    /// # Errors
    /// [`StoreError::InvalidQuery`]; backend failures.
    fn list_groups(&self, query: &GroupQuery) -> Result<Page<GroupSummary>, StoreError>;

    /// Sets or removes the password credential.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn set_password(
        &self,
        id: &UserId,
        credential: Option<&PasswordCredential>,
    ) -> Result<(), StoreError>;

    /// Sets or removes the PIN.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn set_pin(&self, id: &UserId, pin: Option<&PinCredential>) -> Result<(), StoreError>;

    /// Overwrites the TOTP state.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn set_totp(&self, id: &UserId, totp: &TotpState) -> Result<(), StoreError>;

    /// Sets or removes a single-use code (the newest voids the older one).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn set_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        credential: Option<&OneTimeCredential>,
    ) -> Result<(), StoreError>;

    /// Records a successful sign-in time.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn record_sign_in(&self, id: &UserId, at: OffsetDateTime) -> Result<(), StoreError>;

    /// Atomically applies `event` to one lock counter with [`lockout::transition`](crate::lockout::transition) and
    /// returns the new state and the decision.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn apply_lock_event(
        &self,
        id: &UserId,
        counter: LockCounter,
        rule: &LockoutRule,
        event: &LockEvent,
        now: OffsetDateTime,
    ) -> Result<(LockState, LockDecision), StoreError>;

    /// Atomically replaces (or, with `new` = `None`, removes) the whole password credential
    /// if its hash is still `expected` (`None`: the user still has no password). Used for the
    /// hash upgrade at sign-in, the change after a temporary password, and admin changes that
    /// must not overwrite what they did not see.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn replace_password(
        &self,
        id: &UserId,
        expected: Option<&StoredHash>,
        new: Option<&PasswordCredential>,
    ) -> Result<Swap, StoreError>;

    /// Atomically replaces the PIN credential if its hash is still `expected` (hash upgrade
    /// at sign-in).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn replace_pin(
        &self,
        id: &UserId,
        expected: &StoredHash,
        new: &PinCredential,
    ) -> Result<Swap, StoreError>;

    /// Atomically replaces the whole TOTP state if it still equals `expected` (enrollment
    /// steps, which must not undo a concurrent reset or roll back the last accepted step).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn replace_totp(
        &self,
        id: &UserId,
        expected: &TotpState,
        new: &TotpState,
    ) -> Result<Swap, StoreError>;

    /// Atomically marks a single-use temporary password with hash `expected` as consumed at
    /// `now`, exactly once.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn consume_temporary_password(
        &self,
        id: &UserId,
        expected: &StoredHash,
        now: OffsetDateTime,
    ) -> Result<Consumed, StoreError>;

    /// Atomically takes a try at a single-use code: when one exists, has not expired at `now`
    /// and has fewer than `max_tries` failed tries, counts this try and returns the code.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn try_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        max_tries: u32,
        now: OffsetDateTime,
    ) -> Result<OneTimeTry, StoreError>;

    /// Atomically removes the single-use code if its hash is still `expected`, exactly once.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn consume_one_time(
        &self,
        id: &UserId,
        kind: OneTimeKind,
        expected: &StoredHash,
    ) -> Result<Consumed, StoreError>;

    /// Atomically accepts a TOTP time step only if it is newer than the last accepted one.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures.
    fn accept_totp_step(&self, id: &UserId, step: u64) -> Result<StepAcceptance, StoreError>;

    /// In one atomic step: for every entry of `batch` whose user is still as the batch saw
    /// them ([`ops::apply_batch_entry`]: the same password hash, site, role, status and SSO
    /// link), sets `entry.credential` and appends `entry.event`; skips the others (reported
    /// as changed); then appends the batch's summary event completed by
    /// [`ops::batch_summary`]. If any user is missing or any write fails, nothing is written
    /// at all: no credential, no event.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] naming a missing user; backend failures.
    fn replace_batch(&self, batch: &TemporaryBatch) -> Result<BatchWritten, StoreError>;

    /// Appends an audit event.
    ///
    /// # Errors
    /// Backend failures.
    fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError>;

    /// Queries audit events, oldest first.
    ///
    /// # Errors
    /// [`StoreError::InvalidQuery`]; backend failures.
    fn query_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError>;

    /// Deletes the audit events of `site` before `before` (audit retention); returns how many
    /// went. Events of other sites and later events stay.
    ///
    /// # Errors
    /// [`StoreError::InvalidQuery`] for an instant the store cannot hold; backend failures.
    fn prune_audit(&self, site: &SiteId, before: OffsetDateTime) -> Result<u64, StoreError>;

    /// Reads the record of `id` under the write lock, lets `change` change its credentials,
    /// lock state and last sign-in time (never the rest of its profile) and return the audit
    /// events recording what it did, and writes the record and the events in one transaction:
    /// a change is never stored without its events, nor an event without its change. `change`
    /// decides from the record it is given (a rule from [`ops`], a compare-and-swap); it
    /// returns no events to record nothing. A backend may call `change` more than once, each
    /// time on a freshly read record, and keep only the last call (an optimistic write retried
    /// under the row lock); what it stores is that of one call on the record that call saw.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::InvalidQuery`] when `change` touched the
    /// profile (nothing is written); backend failures (nothing is written).
    fn change_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError>;

    /// As [`change_recorded`](Self::change_recorded), but `change` may also change the
    /// profile (username, names, contact details, groups, role, managed sites, status): the
    /// administrator's and the user's own changes to an account. It gets the whole record,
    /// groups included, and may not change the id, the site or the creation time. A change
    /// that returns no events changes nothing. A new username must stay unique and
    /// unconfusable in the site, as at [`create_user`](Self::create_user).
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Conflict`] for a username taken or confusable
    /// (nothing is written); [`StoreError::InvalidQuery`] when `change` touched the id, site
    /// or creation time (nothing is written); backend failures (nothing is written).
    fn change_profile_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError>;

    /// Reads the record of `id` (groups included) under the write lock and asks `decide` for
    /// the audit events recording its deletion. With events, deletes the user (record and
    /// groups) and appends the events in one transaction; with none, changes nothing. Returns
    /// whether the user was deleted. Audit events already naming the user stay as they are,
    /// and the username is free again.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; backend failures (nothing is deleted or written).
    fn delete_recorded(
        &self,
        id: &UserId,
        decide: &mut (dyn FnMut(&UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<bool, StoreError>;
}

/// Compares two records by the query's sort order (ties by id), for in-memory sorting.
#[must_use]
pub fn compare_for_sort(sort: UserSort, a: &UserRecord, b: &UserRecord) -> std::cmp::Ordering {
    let (a, b) = (&a.user, &b.user);
    let key = |u: &User| -> (String, String, String) {
        match sort {
            UserSort::Surname => (fold(&u.surname), fold(&u.forename), fold(&u.username)),
            UserSort::Forename => (fold(&u.forename), fold(&u.surname), fold(&u.username)),
            UserSort::Username | UserSort::Created => {
                (fold(&u.username), String::new(), String::new())
            }
        }
    };
    let primary = if sort == UserSort::Created {
        a.created_at.cmp(&b.created_at)
    } else {
        key(a).cmp(&key(b))
    };
    primary.then_with(|| a.id.cmp(&b.id))
}
