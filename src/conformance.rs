//! The behaviours every [`UserStore`] must show: the executable form of the trait's
//! `# Contract`.
//!
//! Each behaviour is a public function taking a fresh, empty store. The concurrency behaviours
//! take a function that opens another handle on the *same* database (for a server database:
//! a new pool; for a file database: another open of the file), so races between application
//! servers are exercised, not only races between threads of one handle.
//!
//! The [`conformance_tests!`](crate::conformance_tests) macro expands one `#[test]` per
//! behaviour, so a failure names what broke:
//!
//! ```
//! // tests/my_store.rs — here with the in-memory store standing in for yours:
//! // `let db = MyStore::create_test_database(); move || MyStore::connect(&db)`.
//! mod my_store {
//!     keyward::conformance_tests!(|| {
//!         let store = keyward::InMemoryStore::new();
//!         move || store.clone()
//!     });
//! }
//! # fn main() {}
//! ```
//!
//! The argument is called once per test and returns an *opener*; each call of the opener
//! returns a new handle (any `UserStore + 'static`, or a `Box<dyn UserStore>`) on that test's
//! database. Drop-based cleanup of the test database belongs in the opener's captures: it is
//! dropped after every handle.
//!
//! Behaviours are test assertions: they panic with a message naming what broke.

// The functions here are assertions: a panic with a clear message is their failure report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicU32, Ordering};

use time::macros::{date, datetime, offset};
use time::{Duration, OffsetDateTime};

use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditQuery};
use crate::lockout::{
    self, LockDecision, LockEvent, LockReason, LockState, LockoutMode, LockoutRule,
};
use crate::store::{
    BatchEntry, BatchWritten, Consumed, Creation, GroupQuery, GroupSummary, LockCounter, MAX_PAGE,
    NewUser, OneTimeKind, OneTimeTry, StepAcceptance, StoreError, Swap, TemporaryBatch, UserQuery,
    UserRecord, UserSort, UserStore, compare_for_sort, ops,
};
use crate::user::{
    BatchId, OneTimeCredential, PasswordCredential, PinCredential, Role, SiteId, StoredHash,
    StoredSecret, TemporaryMode, TotpState, User, UserId, UserStatus,
};

/// A handle the suite can test: any store, or a boxed one.
pub trait StoreHandle: Send + 'static {
    /// The handle as a trait object.
    fn as_store(&self) -> &dyn UserStore;
    /// The handle boxed.
    fn into_boxed(self) -> Box<dyn UserStore>;
}

impl<S: UserStore + 'static> StoreHandle for S {
    fn as_store(&self) -> &dyn UserStore {
        self
    }

    fn into_boxed(self) -> Box<dyn UserStore> {
        Box::new(self)
    }
}

impl StoreHandle for Box<dyn UserStore> {
    fn as_store(&self) -> &dyn UserStore {
        &**self
    }

    fn into_boxed(self) -> Box<dyn UserStore> {
        self
    }
}

/// Expands one `#[test]` per behaviour of this module for a store.
///
/// - `conformance_tests!(make)`: every behaviour; `make()` returns an opener, a closure whose
///   every call opens a new handle on one fresh database.
/// - `conformance_tests!(optional make)`: as above, but `make()` returns `Option<opener>`;
///   `None` skips the test (print why in `make`).
/// - `conformance_tests!(single make)`: only the behaviours that need one handle (for a
///   database that a second handle cannot reach, such as a private in-memory one).
#[macro_export]
macro_rules! conformance_tests {
    (optional $make:expr) => {
        $crate::conformance_tests!(@single $make;
            create_get_find, duplicate_is_conflict_and_writes_nothing,
            missing_user_reads_none_and_writes_not_found, update_profile_and_rename,
            record_round_trips_exactly, search_text_prefix, search_filters, search_sorts,
            search_paging_and_total, invalid_limits_are_refused, list_groups,
            set_writes_only_its_part, lock_events_follow_transition, replace_password_cas, replace_pin_and_totp_cas,
            temporary_password_consumed_once, one_time_codes, totp_step_only_newer,
            replace_batch_all_or_nothing, replace_batch_skips_changed_users,
            audit_append_and_query, untrusted_text_with_nul_matches_nothing,
            create_users_skips_taken, create_users_decides_in_order,
            usernames_fold_and_lookalikes_are_refused, prune_audit_deletes_only_older_events,
            change_recorded_commits_change_and_events_together,
            profile_changes_commit_with_their_events, deletion_keeps_the_trail);
        $crate::conformance_tests!(@shared $make;
            concurrent_failures_lose_no_increment, concurrent_attempts_respect_max,
            concurrent_temporary_password_consumed_once, concurrent_one_time_consumed_once,
            concurrent_totp_step_accepted_once, concurrent_batch_and_claim,
            concurrent_create_users_once, concurrent_recorded_changes_lose_nothing,
            concurrent_profile_changes_and_deletion);
    };
    (single $make:expr) => {
        $crate::conformance_tests!(@single (|| ::core::option::Option::Some(($make)()));
            create_get_find, duplicate_is_conflict_and_writes_nothing,
            missing_user_reads_none_and_writes_not_found, update_profile_and_rename,
            record_round_trips_exactly, search_text_prefix, search_filters, search_sorts,
            search_paging_and_total, invalid_limits_are_refused, list_groups,
            set_writes_only_its_part, lock_events_follow_transition, replace_password_cas, replace_pin_and_totp_cas,
            temporary_password_consumed_once, one_time_codes, totp_step_only_newer,
            replace_batch_all_or_nothing, replace_batch_skips_changed_users,
            audit_append_and_query, untrusted_text_with_nul_matches_nothing,
            create_users_skips_taken, create_users_decides_in_order,
            usernames_fold_and_lookalikes_are_refused, prune_audit_deletes_only_older_events,
            change_recorded_commits_change_and_events_together,
            profile_changes_commit_with_their_events, deletion_keeps_the_trail);
    };
    (@single $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let ::core::option::Option::Some(open) = ($make)() else { return };
                let handle = open();
                $crate::conformance::$name($crate::conformance::StoreHandle::as_store(&handle));
            }
        )*
    };
    (@shared $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let ::core::option::Option::Some(open) = ($make)() else { return };
                let boxed = || $crate::conformance::StoreHandle::into_boxed(open());
                $crate::conformance::$name(&boxed);
            }
        )*
    };
    ($make:expr) => {
        $crate::conformance_tests!(optional (|| ::core::option::Option::Some(($make)())));
    };
}

/// Opens a new handle on the database under test.
pub type Opener<'a> = &'a dyn Fn() -> Box<dyn UserStore>;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const T0: OffsetDateTime = datetime!(2026-03-01 09:30:15.123_456_789 UTC);

fn site() -> SiteId {
    SiteId::new("site-a").unwrap()
}

fn other_site() -> SiteId {
    SiteId::new("site-b").unwrap()
}

fn admin() -> UserId {
    UserId::parse("admin-1").unwrap()
}

fn hash(text: &str) -> StoredHash {
    StoredHash::new(format!("$argon2id$v=19$m=19456,t=2,p=1${text}"))
}

/// A recovery-code digest as keyward stores one (the prefix and 64 hex digits).
fn recovery_digest(fill: char) -> StoredHash {
    StoredHash::new(format!("$sha256${}", fill.to_string().repeat(64)))
}

fn person(site: SiteId, username: &str, forename: &str, surname: &str) -> UserRecord {
    UserRecord::new(User::new(site, username, forename, surname, "student", T0))
}

fn create(store: &dyn UserStore, record: &UserRecord) {
    store
        .create_user(record)
        .unwrap_or_else(|e| panic!("create_user({}) failed: {e}", record.user.username));
}

fn get(store: &dyn UserStore, id: &UserId) -> UserRecord {
    match store.get_user(id) {
        Ok(Some(r)) => r,
        Ok(None) => panic!("get_user({id}) found nothing"),
        Err(e) => panic!("get_user({id}) failed: {e}"),
    }
}

fn all(site: SiteId) -> UserQuery {
    UserQuery::new(site, T0).page(0, MAX_PAGE)
}

fn ids(records: &[UserRecord]) -> Vec<UserId> {
    records.iter().map(|r| r.user.id.clone()).collect()
}

fn search_ids(store: &dyn UserStore, q: &UserQuery) -> Vec<UserId> {
    let page = store
        .search_users(q)
        .unwrap_or_else(|e| panic!("search_users({q:?}) failed: {e}"));
    assert_eq!(
        page.total,
        page.items.len() as u64,
        "total disagrees with a page holding every match of {q:?}"
    );
    ids(&page.items)
}

/// The matches of `q` among `records`, as [`UserQuery::matches`] and [`compare_for_sort`] say.
fn expected(records: &[UserRecord], q: &UserQuery) -> Vec<UserId> {
    let mut hits: Vec<&UserRecord> = records.iter().filter(|r| q.matches(r)).collect();
    hits.sort_by(|a, b| {
        let o = compare_for_sort(q.sort, a, b);
        if q.descending { o.reverse() } else { o }
    });
    hits.into_iter().map(|r| r.user.id.clone()).collect()
}

fn temporary(h: &str, mode: TemporaryMode, batch: Option<BatchId>) -> PasswordCredential {
    PasswordCredential::temporary(hash(h), T0, mode, T0 + Duration::days(7), admin(), batch)
}

/// The audit event of a batch entry for `target` (`None`: the batch's summary).
fn batch_event(target: Option<&UserId>) -> AuditEvent {
    let action = if target.is_some() {
        AuditAction::TemporaryPasswordSet
    } else {
        AuditAction::BulkRegenerated
    };
    AuditEvent::new(
        T0,
        Some(admin()),
        action,
        target.cloned(),
        site(),
        AuditOutcome::Succeeded,
    )
    .with_details("batch")
}

/// A batch entry for `user` planned against `expected`.
fn entry(user: &User, expected: Option<&str>, credential: PasswordCredential) -> BatchEntry {
    BatchEntry::new(
        user.clone(),
        expected.map(hash),
        credential,
        batch_event(Some(&user.id)),
    )
}

/// The audit events of one action, oldest first.
fn events_of(store: &dyn UserStore, action: AuditAction) -> Vec<AuditEvent> {
    store
        .query_audit(&AuditQuery::default().action(action).page(0, MAX_PAGE))
        .expect("query_audit failed")
        .items
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>, id: &UserId, what: &str) {
    match r {
        Err(StoreError::NotFound { user }) => assert_eq!(&user, id, "{what}: wrong id"),
        other => panic!("{what} on a missing user: expected NotFound, got {other:?}"),
    }
}

fn is_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::Conflict { .. })),
        "{what}: expected Conflict, got {r:?}"
    );
}

fn is_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(r, Err(StoreError::InvalidQuery { .. })),
        "{what}: expected InvalidQuery, got {r:?}"
    );
}

/// A record with every optional part filled, non-ASCII text and sub-second timestamps.
fn full_record() -> UserRecord {
    let at = |s: i64| T0 + Duration::nanoseconds(s * 1_000_000_007);
    let user = User::new(
        site(),
        "Zoë.Ångström",
        "Zoë",
        "Ångström-Łukasiewicz",
        "staff",
        at(1),
    )
    .with_email("Zoë@Example.ORG", true)
    .with_phone("+44 20 7946 0958", true)
    .with_groups(["Year 1", "Ünterricht", "staff room"])
    .with_role(Role::Administrator)
    .with_managed_sites(vec![other_site(), SiteId::new("site_c").unwrap()])
    .with_sso(true)
    .with_date_of_birth(date!(1987 - 02 - 28));
    let mut user = user;
    user.last_sign_in_at = Some(at(2).to_offset(offset!(+05:30)));
    let mut record = UserRecord::new(user);
    let mut password = temporary("pw", TemporaryMode::SingleUse, Some(BatchId::generate()));
    if let Some(t) = password.temporary.as_mut() {
        t.consumed_at = Some(at(3));
        t.escrow = Some(StoredSecret::new("escrow:v1:k:sealed"));
    }
    record.password = Some(password);
    record.pin = Some(PinCredential::new(hash("pin"), at(4)));
    let mut code = OneTimeCredential::new(hash("device"), at(5), at(500));
    code.failed_tries = 2;
    record.totp = TotpState {
        secret: Some(StoredSecret::new("sealed:v1:secret")),
        last_step: Some(59_000_123),
        reset_pending: true,
        pending_secret: Some(StoredSecret::new("sealed:v1:pending")),
        device_code: Some(code),
        recovery_codes: vec![recovery_digest('a'), recovery_digest('b')],
    };
    let mut token = OneTimeCredential::new(hash("reset"), at(6), at(600));
    token.failed_tries = 1;
    record.reset_token = Some(token);
    let mut contact = OneTimeCredential::new(hash("contact"), at(13), at(700));
    contact.failed_tries = 3;
    record.contact_code = Some(contact);
    record.password_lock = LockState {
        failed_attempts: 3,
        in_flight: 1,
        last_attempt_at: Some(at(7)),
        last_failure_at: Some(at(8)),
        locked_at: Some(at(9)),
        lock_reason: Some(LockReason::Failures),
        locked_until: Some(at(10)),
        temporary_locks: 2,
        unlocked_by: Some(admin()),
        unlocked_at: Some(at(11)),
        epoch: 4,
    };
    record.totp_lock = LockState {
        failed_attempts: 1,
        epoch: 7,
        locked_at: Some(at(12)),
        lock_reason: Some(LockReason::Administrative),
        ..LockState::default()
    };
    record
}

// ---------------------------------------------------------------------------------------------
// Single-handle behaviours
// ---------------------------------------------------------------------------------------------

/// Users are found by id and by username per site, case-insensitively; the same username may
/// exist in another site.
pub fn create_get_find(store: &dyn UserStore) {
    let alice = person(site(), "Alice.Smith", "Alice", "Smith");
    create(store, &alice);
    assert_eq!(
        get(store, &alice.user.id),
        alice,
        "get_user after create_user"
    );
    for name in ["Alice.Smith", "alice.smith", "ALICE.SMITH", " alice.smith "] {
        let found = store.find_user(&site(), name).expect("find_user failed");
        assert_eq!(found.as_ref(), Some(&alice), "find_user({name:?})");
    }
    assert_eq!(
        store
            .find_user(&other_site(), "alice.smith")
            .expect("find_user failed"),
        None,
        "find_user in another site"
    );
    let twin = person(other_site(), "ALICE.smith", "Alice", "Jones");
    create(store, &twin);
    assert_eq!(
        store
            .find_user(&other_site(), "Alice.Smith")
            .expect("find_user failed"),
        Some(twin),
        "same username in another site"
    );
    assert_eq!(
        store
            .find_user(&site(), "alice.smith")
            .expect("find_user failed"),
        Some(alice),
        "the first site's user after creating the twin"
    );
}

/// A taken username (after folding) or user id is a conflict, and nothing is written.
pub fn duplicate_is_conflict_and_writes_nothing(store: &dyn UserStore) {
    let alice = person(site(), "alice", "Alice", "Smith");
    create(store, &alice);
    let clash = person(site(), "ALICE", "Other", "Person").tap_groups(&["Clash group"]);
    is_conflict(
        store.create_user(&clash),
        "create_user with a taken username",
    );
    assert_eq!(
        store.get_user(&clash.user.id).expect("get_user failed"),
        None
    );
    let mut same_id = person(site(), "someone-else", "Some", "One");
    same_id.user.id = alice.user.id.clone();
    is_conflict(store.create_user(&same_id), "create_user with a taken id");
    assert_eq!(
        get(store, &alice.user.id),
        alice,
        "the first user after conflicts"
    );
    assert_eq!(
        store
            .find_user(&site(), "someone-else")
            .expect("find_user failed"),
        None
    );
    assert_eq!(search_ids(store, &all(site())), vec![alice.user.id.clone()]);
    let groups = store
        .list_groups(&GroupQuery::new(site()))
        .expect("list_groups failed");
    assert_eq!(groups.total, 0, "a refused user's groups were written");
}

trait TapGroups {
    fn tap_groups(self, groups: &[&str]) -> Self;
}

impl TapGroups for UserRecord {
    fn tap_groups(mut self, groups: &[&str]) -> Self {
        self.user.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        self
    }
}

/// Reads of a missing user return `None`; every write returns `NotFound`.
pub fn missing_user_reads_none_and_writes_not_found(store: &dyn UserStore) {
    let ghost = person(site(), "ghost", "G", "Host");
    let id = &ghost.user.id;
    assert_eq!(store.get_user(id).expect("get_user failed"), None);
    assert_eq!(
        store.find_user(&site(), "ghost").expect("find_user failed"),
        None
    );
    is_not_found(store.update_profile(&ghost.user), id, "update_profile");
    // Missing comes before a username clash.
    let taken = person(site(), "taken", "T", "Aken");
    create(store, &taken);
    let mut clashing = ghost.user.clone();
    clashing.username = "TAKEN".to_owned();
    is_not_found(
        store.update_profile(&clashing),
        id,
        "update_profile of a missing user with a taken username",
    );
    is_not_found(store.set_password(id, None), id, "set_password");
    is_not_found(store.set_pin(id, None), id, "set_pin");
    is_not_found(store.set_totp(id, &TotpState::default()), id, "set_totp");
    is_not_found(
        store.set_one_time(id, OneTimeKind::ResetToken, None),
        id,
        "set_one_time",
    );
    is_not_found(store.record_sign_in(id, T0), id, "record_sign_in");
    is_not_found(
        store.apply_lock_event(
            id,
            LockCounter::Password,
            &LockoutRule::DEFAULT,
            &LockEvent::Attempt,
            T0,
        ),
        id,
        "apply_lock_event",
    );
    is_not_found(
        store.replace_password(
            id,
            Some(&hash("a")),
            Some(&PasswordCredential::permanent(hash("b"), T0)),
        ),
        id,
        "replace_password",
    );
    is_not_found(
        store.replace_pin(id, &hash("a"), &PinCredential::new(hash("b"), T0)),
        id,
        "replace_pin",
    );
    is_not_found(
        store.replace_totp(id, &TotpState::default(), &TotpState::default()),
        id,
        "replace_totp",
    );
    is_not_found(
        store.consume_temporary_password(id, &hash("a"), T0),
        id,
        "consume_temporary_password",
    );
    is_not_found(
        store.try_one_time(id, OneTimeKind::DeviceCode, 3, T0),
        id,
        "try_one_time",
    );
    is_not_found(
        store.consume_one_time(id, OneTimeKind::ResetToken, &hash("a")),
        id,
        "consume_one_time",
    );
    is_not_found(store.accept_totp_step(id, 1), id, "accept_totp_step");
    is_not_found(
        store.replace_batch(&TemporaryBatch::new(
            BatchId::generate(),
            vec![entry(
                &User {
                    id: id.clone(),
                    ..taken.user.clone()
                },
                None,
                temporary("t", TemporaryMode::SingleUse, None),
            )],
            batch_event(None),
        )),
        id,
        "replace_batch",
    );
    assert_eq!(
        search_ids(store, &all(site())),
        vec![taken.user.id.clone()],
        "a write created a user"
    );
}

/// `update_profile` overwrites the profile only; a rename onto a taken username is a conflict.
pub fn update_profile_and_rename(store: &dyn UserStore) {
    let mut alice = person(site(), "alice", "Alice", "Smith").tap_groups(&["Year 1"]);
    alice.password = Some(PasswordCredential::permanent(hash("pw"), T0));
    let bob = person(site(), "bob", "Bob", "Brown");
    create(store, &alice);
    create(store, &bob);

    let mut profile = alice.user.clone();
    profile.username = "Alice.Jones".to_owned();
    profile.surname = "Jones".to_owned();
    profile.groups = vec!["Year 2".to_owned(), "Choir".to_owned()];
    profile.email = Some("alice@example.org".to_owned());
    profile.status = UserStatus::Disabled;
    store
        .update_profile(&profile)
        .expect("update_profile failed");
    let mut want = alice.clone();
    want.user = profile.clone();
    assert_eq!(
        get(store, &alice.user.id),
        want,
        "profile after update_profile"
    );
    assert_eq!(
        store
            .find_user(&site(), "alice.jones")
            .expect("find_user failed")
            .map(|r| r.user.id),
        Some(alice.user.id.clone())
    );
    assert_eq!(
        store.find_user(&site(), "alice").expect("find_user failed"),
        None,
        "old username still found"
    );

    let mut clash = profile.clone();
    clash.username = "BOB".to_owned();
    clash.forename = "Changed".to_owned();
    is_conflict(store.update_profile(&clash), "rename onto a taken username");
    assert_eq!(
        get(store, &alice.user.id),
        want,
        "a refused rename wrote something"
    );

    let mut recase = profile.clone();
    recase.username = "ALICE.JONES".to_owned();
    store
        .update_profile(&recase)
        .expect("changing only the case of a username failed");
    want.user = recase;
    assert_eq!(get(store, &alice.user.id), want);

    create(store, &person(site(), "alice", "New", "Alice"));
    assert_eq!(get(store, &bob.user.id), bob, "another user changed");
}

/// Every field of a record round-trips exactly, in both the filled and the empty shape, with
/// every enum value.
pub fn record_round_trips_exactly(store: &dyn UserStore) {
    let full = full_record();
    let empty = person(site(), "e", "", "");
    let mut other = full_record();
    other.user.id = UserId::generate();
    other.user.username = "other".to_owned();
    other.user.role = Role::Moderator;
    other.user.status = UserStatus::Disabled;
    other.user.email = None;
    other.user.phone = None;
    other.user.date_of_birth = Some(date!(2262 - 01 - 01));
    other.user.created_at = datetime!(1970-01-01 0:00 UTC) - Duration::nanoseconds(1);
    other.password = Some(temporary("admin", TemporaryMode::AdminManaged, None));
    other.totp = TotpState {
        last_step: Some(0),
        ..TotpState::default()
    };
    other.password_lock.lock_reason = Some(LockReason::Administrative);
    other.password_lock.locked_until = None;
    let mut third = person(site(), "third", "Ω", "日本語");
    third.user.role = Role::User;
    third.password = Some(PasswordCredential::permanent(hash("perm"), T0));
    for record in [&full, &empty, &other, &third] {
        create(store, record);
    }
    for record in [&full, &empty, &other, &third] {
        let back = get(store, &record.user.id);
        assert_eq!(
            &back, record,
            "record {} did not round-trip",
            record.user.username
        );
        // Exact instants, not only equal ones: the nanoseconds survive.
        assert_eq!(
            back.user.created_at.unix_timestamp_nanos(),
            record.user.created_at.unix_timestamp_nanos()
        );
    }
    let found = store
        .find_user(&site(), "zoë.ångström")
        .expect("find_user failed");
    assert_eq!(found.as_ref(), Some(&full), "non-ASCII username lookup");
    assert_eq!(search_ids(store, &all(site())).len(), 4);
}

/// `text` is a case-insensitive prefix of forename, surname, username or email, exactly as
/// [`UserQuery::matches`] says; `%` and `_` are plain characters.
pub fn search_text_prefix(store: &dyn UserStore) {
    let records = vec![
        person(site(), "ezola", "Émile", "Zola").email("E.Zola@Example.org"),
        person(site(), "aodegaard", "Anna", "Ödegaard"),
        person(site(), "b_smith", "Bob", "Smith%_x"),
        person(site(), "bbrown", "Bobby", "Brown").email("bobby@b.org"),
        person(site(), "b%rown", "Carl", "Ivory"),
        person(other_site(), "anna", "Anna", "Other"),
    ];
    for r in &records {
        create(store, r);
    }
    let probes = [
        "émile",
        "ÉMI",
        "É",
        "zo",
        "ZOLA",
        "ödE",
        "AODE",
        "e.zola@",
        "E.ZOLA@EXAMPLE.ORG",
        "bob",
        "b_",
        "b%",
        "smith%",
        "smith%_",
        "smith_",
        "x",
        "anna",
        "  Bob ",
        "bobby@",
        "i",
        "z",
        "ö",
        "\u{10FFFF}",
        "",
    ];
    for text in probes {
        let q = all(site()).text(text);
        let mut got = search_ids(store, &q);
        let mut want = expected(&records, &q);
        got.sort();
        want.sort();
        assert_eq!(got, want, "search text {text:?}");
    }
    assert_eq!(
        search_ids(store, &all(site()).text("b_")).len(),
        1,
        "`_` matched as a wildcard"
    );
    assert_eq!(
        search_ids(store, &all(site()).text("b%")).len(),
        1,
        "`%` matched as a wildcard"
    );
    assert_eq!(search_ids(store, &all(site()).text("ÖDEGAARD")).len(), 1);
    assert_eq!(
        search_ids(store, &all(site()).text("anna")).len(),
        1,
        "search crossed sites"
    );
}

trait Email {
    fn email(self, email: &str) -> Self;
}

impl Email for UserRecord {
    fn email(mut self, email: &str) -> Self {
        self.user.email = Some(email.to_owned());
        self
    }
}

/// Each filter selects what [`UserQuery::matches`] selects.
pub fn search_filters(store: &dyn UserStore) {
    let mut records = Vec::new();
    let mut add = |mut r: UserRecord, f: &dyn Fn(&mut UserRecord)| {
        f(&mut r);
        records.push(r);
    };
    add(
        person(site(), "u1", "A", "One").tap_groups(&["Year 1", "Choir"]),
        &|_| {},
    );
    add(
        person(site(), "u2", "B", "Two").tap_groups(&["year 1"]),
        &|r| {
            r.user.user_type = "staff".to_owned();
            r.user.last_sign_in_at = Some(T0);
        },
    );
    add(person(site(), "u3", "C", "Three"), &|r| {
        r.user.status = UserStatus::Disabled;
        r.user.role = Role::Moderator;
        r.password_lock.locked_at = Some(T0 - Duration::hours(1));
        r.password_lock.lock_reason = Some(LockReason::Failures);
    });
    add(person(site(), "u4", "D", "Four"), &|r| {
        r.user.sso_linked = true;
        // A temporary lock that ran out before `as_of`.
        r.totp_lock.locked_at = Some(T0 - Duration::hours(2));
        r.totp_lock.locked_until = Some(T0);
        r.password = Some(temporary("t4", TemporaryMode::SingleUse, None));
    });
    add(person(site(), "u5", "E", "Five"), &|r| {
        r.totp_lock.locked_at = Some(T0 - Duration::hours(2));
        r.totp_lock.locked_until = Some(T0 + Duration::nanoseconds(1));
        let mut p = temporary("t5", TemporaryMode::AdminManaged, None);
        if let Some(t) = p.temporary.as_mut() {
            t.consumed_at = Some(T0);
        }
        r.password = Some(p);
    });
    add(person(site(), "u6", "F", "Six"), &|r| {
        // A password of their own and no sign-in yet: claimed all the same.
        r.password = Some(PasswordCredential::permanent(hash("p6"), T0));
    });
    add(person(site(), "u7", "G", "Seven"), &|r| {
        let mut p = temporary("t7", TemporaryMode::AdminManaged, None);
        if let Some(t) = p.temporary.as_mut() {
            t.expires_at = T0 - Duration::days(1);
        }
        r.password = Some(p);
    });
    add(
        person(other_site(), "u1", "A", "One").tap_groups(&["Year 1"]),
        &|_| {},
    );
    for r in &records {
        create(store, r);
    }
    let mut queries = vec![
        ("group", all(site()).group("Year 1"), 1),
        ("group, exact case", all(site()).group("year 1"), 1),
        ("group, none", all(site()).group("Year"), 0),
        ("user type", all(site()).user_type("staff"), 1),
        ("locked", all(site()).locked_only(), 2),
        ("unclaimed", all(site()).unclaimed_only(), 6),
        ("role moderator", all(site()).role(Role::Moderator), 1),
        ("role user", all(site()).role(Role::User), 6),
        ("temporary", all(site()).temporary_password_only(), 2),
        (
            "combined",
            all(site())
                .unclaimed_only()
                .temporary_password_only()
                .group("Year 1"),
            0,
        ),
    ];
    let mut status = all(site());
    status.status = Some(UserStatus::Disabled);
    queries.push(("status disabled", status, 1));
    let mut active = all(site());
    active.status = Some(UserStatus::Active);
    queries.push(("status active", active, 6));
    let mut sso = all(site());
    sso.sso_linked = Some(true);
    queries.push(("sso linked", sso, 1));
    let mut not_sso = all(site());
    not_sso.sso_linked = Some(false);
    queries.push(("not sso linked", not_sso, 6));
    let mut excluding = all(site());
    excluding.excluded = vec![records[0].user.id.clone(), records[1].user.id.clone()];
    queries.push(("excluded", excluding, 5));
    let mut later = all(site()).locked_only();
    later.as_of = T0 + Duration::hours(1);
    queries.push(("locked, later", later, 1));
    for (what, q, n) in queries {
        let mut got = search_ids(store, &q);
        let mut want = expected(&records, &q);
        assert_eq!(want.len(), n, "fixture for {what}");
        got.sort();
        want.sort();
        assert_eq!(got, want, "filter {what}");
    }
}

/// Untrusted text holding a NUL character (a typed username, search text, a group or user
/// type filter, a group-picker prefix) names nothing: every backend answers "no such user" or
/// an empty page, never an error.
pub fn untrusted_text_with_nul_matches_nothing(store: &dyn UserStore) {
    let ada = person(site(), "ada", "Ada", "Lovelace").tap_groups(&["Year 1"]);
    create(store, &ada);
    for typed in ["ada\0", "\0", "\0ada", "ad\0a"] {
        let found = store.find_user(&site(), typed);
        assert!(matches!(found, Ok(None)), "find_user({typed:?}): {found:?}");
    }
    let mut queries = vec![
        all(site()).text("a\0"),
        all(site()).text("\0"),
        all(site()).group("Year 1\0"),
        all(site()).user_type("student\0"),
    ];
    queries.push(all(site()).text("ada").group("\0"));
    for q in queries {
        let page = store.search_users(&q);
        let page = page.unwrap_or_else(|e| panic!("search_users({q:?}) failed: {e}"));
        assert_eq!((page.items.len(), page.total), (0, 0), "{q:?}");
    }
    let groups = store.list_groups(&GroupQuery::new(site()).text("Year\0"));
    let groups = groups.unwrap_or_else(|e| panic!("list_groups failed: {e}"));
    assert_eq!((groups.items.len(), groups.total), (0, 0));
    // The same store still finds what exists.
    assert!(store.find_user(&site(), "ADA").unwrap().is_some());
}

/// Each sort, ascending and descending, orders as [`compare_for_sort`] with ties by id.
pub fn search_sorts(store: &dyn UserStore) {
    let at = |m: i64| T0 + Duration::minutes(m);
    let mut records = vec![
        person(site(), "zed", "Anna", "Smith"),
        person(site(), "Amy", "anna", "smith"),
        person(site(), "amy2", "Anna", "SMITH"),
        person(site(), "odin", "Ödön", "Zola"),
        person(site(), "Émile", "Émile", "Ångström"),
        person(site(), "bob", "Bob", "Brown"),
        person(site(), "bob_", "Bob", "Brown"),
        person(site(), "Bob-", "bob", "brown"),
        person(site(), "upper", "Zed", "zed"),
    ];
    for (i, r) in records.iter_mut().enumerate() {
        // Pairs of equal creation times exercise the tie-break.
        r.user.created_at = at(i64::try_from(i / 2).unwrap_or(0));
        create(store, r);
    }
    for sort in [
        UserSort::Surname,
        UserSort::Forename,
        UserSort::Username,
        UserSort::Created,
    ] {
        for descending in [false, true] {
            let q = all(site()).sort(sort, descending);
            assert_eq!(
                search_ids(store, &q),
                expected(&records, &q),
                "sort {sort:?}, descending {descending}"
            );
        }
    }
}

/// Pages partition the sorted matches; `total` counts every match.
pub fn search_paging_and_total(store: &dyn UserStore) {
    let mut records = Vec::new();
    for i in 0..7 {
        let r = person(site(), &format!("user{i}"), "Same", "Name");
        create(store, &r);
        records.push(r);
    }
    create(store, &person(other_site(), "x", "Same", "Name"));
    let q = all(site());
    let want = expected(&records, &q);
    let mut seen = Vec::new();
    for offset in [0, 3, 6] {
        let page = store
            .search_users(&q.clone().page(offset, 3))
            .expect("search_users failed");
        assert_eq!(page.total, 7, "total at offset {offset}");
        seen.extend(ids(&page.items));
    }
    assert_eq!(seen, want, "pages did not partition the sorted matches");
    let beyond = store
        .search_users(&q.clone().page(50, 10))
        .expect("search_users failed");
    assert!(beyond.items.is_empty());
    assert_eq!(beyond.total, 7, "total past the last page");
    let filtered = store
        .search_users(&all(site()).text("user1").page(0, 1))
        .expect("search_users failed");
    assert_eq!(filtered.total, 1);
}

/// A `limit` of 0 or above [`MAX_PAGE`] is refused by every query; [`MAX_PAGE`] is allowed.
pub fn invalid_limits_are_refused(store: &dyn UserStore) {
    for limit in [0, MAX_PAGE + 1, u32::MAX] {
        is_invalid(
            store.search_users(&all(site()).page(0, limit)),
            "search_users",
        );
        is_invalid(
            store.list_groups(&GroupQuery::new(site()).page(0, limit)),
            "list_groups",
        );
        is_invalid(
            store.query_audit(&AuditQuery::default().page(0, limit)),
            "query_audit",
        );
    }
    store
        .search_users(&all(site()).page(0, MAX_PAGE))
        .expect("limit MAX_PAGE refused");
    store
        .list_groups(&GroupQuery::new(site()).page(0, MAX_PAGE))
        .expect("limit MAX_PAGE refused");
    store
        .query_audit(&AuditQuery::default().page(0, MAX_PAGE))
        .expect("limit MAX_PAGE refused");
}

/// Groups of a site are listed by name with member counts, filtered by a case-insensitive
/// prefix and paged.
pub fn list_groups(store: &dyn UserStore) {
    let records = [
        person(site(), "a", "A", "A").tap_groups(&["Year 1", "Choir", "Year 1"]),
        person(site(), "b", "B", "B").tap_groups(&["Year 1", "year 10"]),
        person(site(), "c", "C", "C").tap_groups(&["Year 2", "Ärzte"]),
        person(site(), "d", "D", "D"),
        person(other_site(), "a", "A", "A").tap_groups(&["Year 1", "Year 3"]),
    ];
    for r in &records {
        create(store, r);
    }
    let g = |name: &str, n: u64| GroupSummary::new(name.to_owned(), n);
    let list = |q: GroupQuery| store.list_groups(&q).expect("list_groups failed");
    let every = list(GroupQuery::new(site()));
    assert_eq!(
        every.items,
        vec![
            g("Choir", 1),
            g("Year 1", 2),
            g("Year 2", 1),
            g("year 10", 1),
            g("Ärzte", 1)
        ],
        "all groups by name, bytewise"
    );
    assert_eq!(every.total, 5);
    let year = list(GroupQuery::new(site()).text("YEAR"));
    assert_eq!(
        year.items,
        vec![g("Year 1", 2), g("Year 2", 1), g("year 10", 1)]
    );
    assert_eq!(year.total, 3);
    let paged = list(GroupQuery::new(site()).text("year").page(1, 1));
    assert_eq!(paged.items, vec![g("Year 2", 1)]);
    assert_eq!(paged.total, 3);
    assert_eq!(
        list(GroupQuery::new(site()).text("är")).items,
        vec![g("Ärzte", 1)]
    );
    assert_eq!(list(GroupQuery::new(site()).text("%")).total, 0);
    let other = list(GroupQuery::new(other_site()));
    assert_eq!(other.items, vec![g("Year 1", 1), g("Year 3", 1)]);
}

/// Each `set_*` and `record_sign_in` writes only its own part of the record.
pub fn set_writes_only_its_part(store: &dyn UserStore) {
    let mut want = full_record();
    let neighbour = person(site(), "neighbour", "N", "B");
    create(store, &want);
    create(store, &neighbour);
    let id = want.user.id.clone();
    let check = |want: &UserRecord, what: &str| {
        assert_eq!(&get(store, &id), want, "after {what}");
    };

    store.set_password(&id, None).expect("set_password failed");
    want.password = None;
    check(&want, "set_password(None)");
    let p = PasswordCredential::permanent(hash("new"), T0 + Duration::seconds(1));
    store
        .set_password(&id, Some(&p))
        .expect("set_password failed");
    want.password = Some(p);
    check(&want, "set_password(Some)");

    store.set_pin(&id, None).expect("set_pin failed");
    want.pin = None;
    check(&want, "set_pin(None)");
    let pin = PinCredential::new(hash("pin2"), T0 + Duration::milliseconds(1));
    store.set_pin(&id, Some(&pin)).expect("set_pin failed");
    want.pin = Some(pin);
    check(&want, "set_pin(Some)");

    let totp = TotpState {
        secret: Some(StoredSecret::new("sealed:new")),
        ..TotpState::default()
    };
    store.set_totp(&id, &totp).expect("set_totp failed");
    want.totp = totp;
    check(&want, "set_totp");

    store
        .set_one_time(&id, OneTimeKind::ResetToken, None)
        .expect("set_one_time failed");
    want.reset_token = None;
    check(&want, "set_one_time(ResetToken, None)");
    let code = OneTimeCredential::new(hash("dc"), T0, T0 + Duration::minutes(15));
    store
        .set_one_time(&id, OneTimeKind::DeviceCode, Some(&code))
        .expect("set_one_time failed");
    want.totp.device_code = Some(code.clone());
    check(&want, "set_one_time(DeviceCode, Some)");
    store
        .set_one_time(&id, OneTimeKind::ResetToken, Some(&code))
        .expect("set_one_time failed");
    want.reset_token = Some(code);
    check(&want, "set_one_time(ResetToken, Some)");

    let at = T0 + Duration::nanoseconds(987_654_321);
    store
        .record_sign_in(&id, at)
        .expect("record_sign_in failed");
    want.user.last_sign_in_at = Some(at);
    check(&want, "record_sign_in");
    assert_eq!(
        get(store, &neighbour.user.id),
        neighbour,
        "another user changed"
    );
}

/// Lock events reach exactly the states and decisions of [`lockout::transition`], on the
/// counter asked for only.
pub fn lock_events_follow_transition(store: &dyn UserStore) {
    let r = person(site(), "locky", "L", "Ocky");
    create(store, &r);
    let id = &r.user.id;
    let temporary_rule = LockoutRule::new(
        3,
        Duration::minutes(30),
        LockoutMode::TemporaryThenPermanent {
            base: Duration::minutes(5),
            factor: 2,
            max: Duration::hours(1),
            permanent_after: 1,
        },
    )
    .expect("valid rule");
    /// A step of the script: an event, or a settle in the current epoch or the one before.
    enum Step {
        Event(LockEvent),
        Fail,
        Succeed,
        StaleFail,
    }
    let mut script: Vec<(LockoutRule, Step)> = Vec::new();
    for rule in [LockoutRule::DEFAULT, temporary_rule] {
        for _ in 0..6 {
            script.push((rule, Step::Event(LockEvent::Attempt)));
            script.push((rule, Step::Fail));
        }
        script.push((rule, Step::Event(LockEvent::Attempt)));
        script.push((rule, Step::Succeed));
        script.push((rule, Step::Event(LockEvent::Unlock { by: admin() })));
        script.push((rule, Step::Event(LockEvent::Attempt)));
        script.push((rule, Step::Succeed));
        script.push((rule, Step::Event(LockEvent::Lock)));
        script.push((rule, Step::Event(LockEvent::Attempt)));
        script.push((rule, Step::Event(LockEvent::Unlock { by: admin() })));
        // An attempt still being evaluated when an administrator unlocks settles stale.
        script.push((rule, Step::Event(LockEvent::Attempt)));
        script.push((rule, Step::Event(LockEvent::Unlock { by: admin() })));
        script.push((rule, Step::StaleFail));
        script.push((rule, Step::Event(LockEvent::Attempt)));
        script.push((rule, Step::Fail));
    }
    for counter in [LockCounter::Password, LockCounter::Totp] {
        let mut state = LockState::default();
        let mut now = T0;
        for (i, (rule, step)) in script.iter().enumerate() {
            // Uneven steps cross the temporary lock's end and the failure window.
            now += Duration::seconds(if i % 5 == 0 { 400 } else { 7 }) + Duration::nanoseconds(13);
            let reserved_in = state.epoch;
            let event = &match step {
                Step::Event(event) => event.clone(),
                Step::Fail => LockEvent::Failure { reserved_in },
                Step::Succeed => LockEvent::Success { reserved_in },
                Step::StaleFail => LockEvent::Failure {
                    reserved_in: reserved_in.wrapping_sub(1),
                },
            };
            let (want_state, want_decision) = lockout::transition(rule, &state, event, now);
            if matches!(step, Step::StaleFail) {
                assert_eq!(want_decision, LockDecision::Stale, "step {i}");
            }
            let (got_state, got_decision) = store
                .apply_lock_event(id, counter, rule, event, now)
                .expect("apply_lock_event failed");
            assert_eq!(
                got_decision, want_decision,
                "{counter:?} step {i} ({event:?}): decision"
            );
            assert_eq!(
                got_state, want_state,
                "{counter:?} step {i} ({event:?}): returned state"
            );
            state = want_state;
            let stored = get(store, id);
            let (mine, theirs) = match counter {
                LockCounter::Password => (&stored.password_lock, &stored.totp_lock),
                _ => (&stored.totp_lock, &stored.password_lock),
            };
            assert_eq!(
                mine, &state,
                "{counter:?} step {i} ({event:?}): stored state"
            );
            if counter == LockCounter::Password {
                assert_eq!(theirs, &LockState::default(), "the TOTP counter moved");
            }
        }
    }
}

/// `replace_password` swaps the whole credential only when the stored hash is the expected
/// one.
pub fn replace_password_cas(store: &dyn UserStore) {
    let mut r = person(site(), "cas", "C", "As");
    r.password = Some(temporary("old", TemporaryMode::AdminManaged, None));
    let bare = person(site(), "bare", "B", "Are");
    create(store, &r);
    create(store, &bare);
    let id = &r.user.id;
    let upgraded = PasswordCredential {
        hash: hash("new"),
        ..temporary("old", TemporaryMode::AdminManaged, None)
    };
    assert_eq!(
        store
            .replace_password(id, Some(&hash("wrong")), Some(&upgraded))
            .expect("cas failed"),
        Swap::Changed
    );
    assert_eq!(get(store, id), r, "a failed swap wrote something");
    assert_eq!(
        store
            .replace_password(id, Some(&hash("old")), Some(&upgraded))
            .expect("cas failed"),
        Swap::Swapped
    );
    r.password = Some(upgraded);
    assert_eq!(get(store, id), r, "after a swap");
    let permanent = PasswordCredential::permanent(hash("newer"), T0);
    assert_eq!(
        store
            .replace_password(id, Some(&hash("old")), Some(&permanent))
            .expect("cas failed"),
        Swap::Changed
    );
    assert_eq!(
        store
            .replace_password(id, Some(&hash("new")), Some(&permanent))
            .expect("cas failed"),
        Swap::Swapped,
        "a temporary credential is replaced by a permanent one"
    );
    r.password = Some(permanent.clone());
    assert_eq!(get(store, id), r);
    assert_eq!(
        store
            .replace_password(&bare.user.id, Some(&hash("old")), Some(&permanent))
            .expect("cas failed"),
        Swap::Changed,
        "swap without a password"
    );
    assert_eq!(get(store, &bare.user.id), bare);
    // `None` expects no password; `None` as the new value removes it.
    let first = PasswordCredential::permanent(hash("first"), T0);
    let swap = store
        .replace_password(&bare.user.id, None, Some(&first))
        .expect("cas failed");
    assert_eq!(swap, Swap::Swapped, "setting a first password");
    let swap = store
        .replace_password(&bare.user.id, None, Some(&permanent))
        .expect("cas failed");
    assert_eq!(swap, Swap::Changed, "a password appeared meanwhile");
    let swap = store
        .replace_password(id, Some(&hash("stale")), None)
        .expect("cas failed");
    assert_eq!(swap, Swap::Changed, "removing what is no longer there");
    assert!(get(store, id).password.is_some());
    let swap = store
        .replace_password(id, Some(&hash("newer")), None)
        .expect("cas failed");
    assert_eq!(swap, Swap::Swapped, "removing the password");
    assert!(get(store, id).password.is_none());
}

/// `replace_pin` and `replace_totp` swap only when the stored value is the expected one.
pub fn replace_pin_and_totp_cas(store: &dyn UserStore) {
    let mut r = person(site(), "pincas", "P", "In");
    r.pin = Some(PinCredential::new(hash("pin-old"), T0));
    r.totp = TotpState {
        reset_pending: true,
        ..TotpState::default()
    };
    create(store, &r);
    let id = &r.user.id;
    let pin = PinCredential::new(hash("pin-new"), T0 + Duration::seconds(1));
    let swap = store
        .replace_pin(id, &hash("pin-wrong"), &pin)
        .expect("cas failed");
    assert_eq!(swap, Swap::Changed);
    assert_eq!(get(store, id), r, "a failed PIN swap wrote something");
    let swap = store
        .replace_pin(id, &hash("pin-old"), &pin)
        .expect("cas failed");
    assert_eq!(swap, Swap::Swapped);
    r.pin = Some(pin);
    assert_eq!(get(store, id), r, "after a PIN swap");

    let enrolled = TotpState {
        secret: Some(StoredSecret::new("sealed:v1:k:abc")),
        last_step: Some(42),
        ..TotpState::default()
    };
    let stale = TotpState::default();
    let swap = store
        .replace_totp(id, &stale, &enrolled)
        .expect("cas failed");
    assert_eq!(
        swap,
        Swap::Changed,
        "a stale TOTP state must not be replaced"
    );
    assert_eq!(get(store, id), r);
    let swap = store
        .replace_totp(id, &r.totp, &enrolled)
        .expect("cas failed");
    assert_eq!(swap, Swap::Swapped);
    r.totp = enrolled.clone();
    assert_eq!(get(store, id), r, "after a TOTP swap");
    // An accepted step changes the state: a swap expecting the old one fails.
    assert_eq!(
        store.accept_totp_step(id, 43).expect("accept failed"),
        StepAcceptance::Accepted
    );
    let swap = store
        .replace_totp(id, &enrolled, &TotpState::default())
        .expect("cas failed");
    assert_eq!(
        swap,
        Swap::Changed,
        "a swap rolled back the last accepted step"
    );
}

/// A single-use temporary password is consumed once, only with its own hash.
pub fn temporary_password_consumed_once(store: &dyn UserStore) {
    let mut r = person(site(), "temp", "T", "Emp");
    r.password = Some(temporary("tmp", TemporaryMode::SingleUse, None));
    let mut perm = person(site(), "perm", "P", "Erm");
    perm.password = Some(PasswordCredential::permanent(hash("tmp"), T0));
    create(store, &r);
    create(store, &perm);
    let id = &r.user.id;
    let now = T0 + Duration::nanoseconds(1_500_000_001);
    let consume = |id: &UserId, h: &str| {
        store
            .consume_temporary_password(id, &hash(h), now)
            .expect("consume failed")
    };
    assert_eq!(consume(id, "other"), Consumed::AlreadyGone, "wrong hash");
    assert_eq!(get(store, id), r);
    assert_eq!(consume(id, "tmp"), Consumed::Now);
    assert_eq!(consume(id, "tmp"), Consumed::AlreadyGone, "consumed twice");
    if let Some(t) = r.password.as_mut().and_then(|p| p.temporary.as_mut()) {
        t.consumed_at = Some(now);
    }
    assert_eq!(get(store, id), r, "after consuming");
    assert_eq!(
        consume(&perm.user.id, "tmp"),
        Consumed::AlreadyGone,
        "a permanent password was consumed"
    );
    assert_eq!(get(store, &perm.user.id), perm);
}

/// Single-use codes count tries, expire, run out, and are consumed once; the two kinds are
/// separate.
pub fn one_time_codes(store: &dyn UserStore) {
    let r = person(site(), "codes", "C", "Odes");
    create(store, &r);
    let id = &r.user.id;
    let expires = T0 + Duration::minutes(10);
    let code = OneTimeCredential::new(hash("code"), T0, expires);
    for kind in ONE_TIME_KINDS {
        let t = |max: u32, now| {
            store
                .try_one_time(id, kind, max, now)
                .expect("try_one_time failed")
        };
        assert_eq!(t(3, T0), OneTimeTry::Absent, "{kind:?} before issue");
        store
            .set_one_time(id, kind, Some(&code))
            .expect("set_one_time failed");
        for n in 1..=3 {
            let mut want = code.clone();
            want.failed_tries = n;
            assert_eq!(t(3, T0), OneTimeTry::Available(want), "{kind:?} try {n}");
        }
        assert_eq!(t(3, T0), OneTimeTry::Exhausted, "{kind:?} after 3 tries");
        // A larger allowance admits one more try, up to the last instant before expiry.
        let mut want = code.clone();
        want.failed_tries = 4;
        assert_eq!(
            t(4, expires - Duration::nanoseconds(1)),
            OneTimeTry::Available(want),
            "{kind:?} last instant"
        );
        assert_eq!(t(10, expires), OneTimeTry::Expired, "{kind:?} at expiry");
        let stored = get(store, id);
        let slot = slot_of(&stored, kind);
        assert_eq!(
            slot.map(|c| c.failed_tries),
            Some(4),
            "{kind:?} stored tries"
        );
        let consume = |h: &str| {
            store
                .consume_one_time(id, kind, &hash(h))
                .expect("consume_one_time failed")
        };
        assert_eq!(
            consume("nope"),
            Consumed::AlreadyGone,
            "{kind:?} wrong hash"
        );
        assert_eq!(consume("code"), Consumed::Now, "{kind:?} consume");
        assert_eq!(
            consume("code"),
            Consumed::AlreadyGone,
            "{kind:?} consumed twice"
        );
        assert_eq!(t(3, T0), OneTimeTry::Absent, "{kind:?} after consuming");
    }
    let stored = get(store, id);
    assert_eq!(stored.reset_token, None);
    assert_eq!(stored.totp.device_code, None);
    assert_eq!(stored.contact_code, None);
    // The kinds do not share a slot: each set lands in its own, and touches no other.
    for kind in ONE_TIME_KINDS {
        store
            .set_one_time(id, kind, Some(&code))
            .expect("set_one_time failed");
        let stored = get(store, id);
        for other in ONE_TIME_KINDS {
            let want = (other == kind).then(|| code.clone());
            assert_eq!(
                slot_of(&stored, other),
                want,
                "{kind:?} set, {other:?} read"
            );
        }
        store
            .set_one_time(id, kind, None)
            .expect("set_one_time failed");
    }
}

/// Every kind of single-use code.
const ONE_TIME_KINDS: [OneTimeKind; 3] = [
    OneTimeKind::ResetToken,
    OneTimeKind::DeviceCode,
    OneTimeKind::ContactCode,
];

/// The slot of `kind` in a record.
fn slot_of(record: &UserRecord, kind: OneTimeKind) -> Option<OneTimeCredential> {
    match kind {
        OneTimeKind::ResetToken => record.reset_token.clone(),
        OneTimeKind::DeviceCode => record.totp.device_code.clone(),
        _ => record.contact_code.clone(),
    }
}

/// A TOTP step is accepted only if newer than the last accepted one.
pub fn totp_step_only_newer(store: &dyn UserStore) {
    let r = person(site(), "totp", "T", "Otp");
    create(store, &r);
    let id = &r.user.id;
    let a = |s: u64| {
        store
            .accept_totp_step(id, s)
            .expect("accept_totp_step failed")
    };
    assert_eq!(a(0), StepAcceptance::Accepted, "first step 0");
    assert_eq!(a(0), StepAcceptance::Replayed);
    assert_eq!(a(100), StepAcceptance::Accepted);
    assert_eq!(a(100), StepAcceptance::Replayed);
    assert_eq!(a(99), StepAcceptance::Replayed);
    assert_eq!(a(101), StepAcceptance::Accepted);
    let stored = get(store, id);
    assert_eq!(stored.totp.last_step, Some(101));
    let mut want = r.clone();
    want.totp.last_step = Some(101);
    assert_eq!(stored, want, "accepting a step changed something else");
}

/// A batch replaces every listed credential or none, and writes its audit events with it.
pub fn replace_batch_all_or_nothing(store: &dyn UserStore) {
    let mut users = Vec::new();
    for name in ["a", "b", "c"] {
        let mut r = person(site(), name, name, name);
        r.password = Some(PasswordCredential::permanent(hash(name), T0));
        create(store, &r);
        users.push(r);
    }
    let first = BatchId::generate();
    let cred = |h: &str, b: &BatchId| temporary(h, TemporaryMode::AdminManaged, Some(b.clone()));
    let batch = TemporaryBatch::new(
        first.clone(),
        vec![
            entry(&users[0].user, Some("a"), cred("a1", &first)),
            entry(&users[1].user, Some("b"), cred("b1", &first)),
        ],
        batch_event(None),
    );
    let written = store.replace_batch(&batch).expect("replace_batch failed");
    assert_eq!(
        written.written,
        vec![users[0].user.id.clone(), users[1].user.id.clone()]
    );
    assert!(written.changed.is_empty(), "{written:?}");
    let mut want = users.clone();
    want[0].password = Some(cred("a1", &first));
    want[1].password = Some(cred("b1", &first));
    for w in &want {
        assert_eq!(&get(store, &w.user.id), w, "after the first batch");
    }
    let set = events_of(store, AuditAction::TemporaryPasswordSet);
    assert_eq!(
        set,
        vec![
            batch.entries[0].event.clone(),
            batch.entries[1].event.clone()
        ]
    );
    let summary = events_of(store, AuditAction::BulkRegenerated);
    assert_eq!(summary, vec![ops::batch_summary(&batch, &written)]);
    assert_eq!(
        summary[0].details.as_deref(),
        Some("batch; written=2; changed=0"),
        "summary details"
    );
    let second = BatchId::generate();
    let ghost = person(site(), "ghost", "G", "Host").user;
    let failing = TemporaryBatch::new(
        second.clone(),
        vec![
            entry(&users[0].user, Some("a1"), cred("a2", &second)),
            entry(&ghost, None, cred("g2", &second)),
            entry(&users[1].user, Some("b1"), cred("b2", &second)),
        ],
        batch_event(None),
    );
    is_not_found(
        store.replace_batch(&failing),
        &ghost.id,
        "replace_batch with a missing user",
    );
    for w in &want {
        assert_eq!(&get(store, &w.user.id), w, "a failed batch wrote something");
    }
    assert_eq!(
        events_of(store, AuditAction::TemporaryPasswordSet).len(),
        2,
        "a failed batch wrote an audit event"
    );
    assert_eq!(events_of(store, AuditAction::BulkRegenerated).len(), 1);
    let empty = store
        .replace_batch(&TemporaryBatch::new(second, Vec::new(), batch_event(None)))
        .expect("an empty batch failed");
    assert_eq!(empty, BatchWritten::default());
}

/// A batch entry is written only while the user's password is still the one it was planned
/// against and their standing (site, role, status, SSO link) is unchanged: a user who set
/// their own password meanwhile keeps it, a user disabled or promoted meanwhile gets nothing;
/// both are reported as changed and get no event; the others are written.
pub fn replace_batch_skips_changed_users(store: &dyn UserStore) {
    let mut users = Vec::new();
    let names = [
        ("a", None),
        ("b", Some("old-b")),
        ("c", Some("old-c")),
        ("d", None),
        ("e", None),
    ];
    for (name, password) in names {
        let mut r = person(site(), name, name, name);
        r.password = password.map(|p| temporary(p, TemporaryMode::SingleUse, None));
        create(store, &r);
        users.push(r);
    }
    // b claims the account after the batch was planned.
    let own = PasswordCredential::permanent(hash("b-own"), T0);
    let b = &users[1].user.id;
    let claimed = store.replace_password(b, Some(&hash("old-b")), Some(&own));
    assert_eq!(claimed.expect("replace_password failed"), Swap::Swapped);
    // d is disabled and e promoted to moderator after the batch was planned.
    let mut d = users[3].user.clone();
    d.status = UserStatus::Disabled;
    store.update_profile(&d).expect("update_profile failed");
    let mut e = users[4].user.clone();
    e.role = Role::Moderator;
    store.update_profile(&e).expect("update_profile failed");
    let id = BatchId::generate();
    let cred = |h: &str| temporary(h, TemporaryMode::SingleUse, Some(id.clone()));
    let batch = TemporaryBatch::new(
        id.clone(),
        vec![
            entry(&users[0].user, None, cred("a1")),
            entry(&users[1].user, Some("old-b"), cred("b1")),
            entry(&users[2].user, Some("old-c"), cred("c1")),
            entry(&users[3].user, None, cred("d1")),
            entry(&users[4].user, None, cred("e1")),
        ],
        batch_event(None),
    );
    let written = store.replace_batch(&batch).expect("replace_batch failed");
    assert_eq!(
        written.written,
        vec![users[0].user.id.clone(), users[2].user.id.clone()]
    );
    assert_eq!(
        written.changed,
        vec![
            b.clone(),
            users[3].user.id.clone(),
            users[4].user.id.clone()
        ]
    );
    assert_eq!(
        get(store, &users[3].user.id).password,
        None,
        "a disabled user got a password"
    );
    assert_eq!(
        get(store, &users[4].user.id).password,
        None,
        "a moderator got a password"
    );
    assert_eq!(get(store, &users[0].user.id).password, Some(cred("a1")));
    assert_eq!(
        get(store, b).password,
        Some(own),
        "a claimed password was overwritten"
    );
    assert_eq!(get(store, &users[2].user.id).password, Some(cred("c1")));
    let set = events_of(store, AuditAction::TemporaryPasswordSet);
    assert_eq!(
        set,
        vec![
            batch.entries[0].event.clone(),
            batch.entries[2].event.clone()
        ]
    );
    let summary = events_of(store, AuditAction::BulkRegenerated);
    assert_eq!(
        summary
            .iter()
            .map(|e| e.details.as_deref())
            .collect::<Vec<_>>(),
        vec![Some("batch; written=2; changed=3")]
    );
}

/// Audit events come back oldest first (insertion order among equal times), filtered by user
/// (actor or target), action, time range and site, and paged with a total.
pub fn audit_append_and_query(store: &dyn UserStore) {
    let alice = UserId::parse("alice").unwrap();
    let bob = UserId::parse("bob").unwrap();
    let at = |s: i64| T0 + Duration::nanoseconds(s * 1_000_000_001);
    let ev = |t: i64, actor: Option<&UserId>, action, target: Option<&UserId>, site: SiteId| {
        AuditEvent::new(
            at(t),
            actor.cloned(),
            action,
            target.cloned(),
            site,
            AuditOutcome::Succeeded,
        )
    };
    let mut events = vec![
        ev(
            5,
            Some(&admin()),
            AuditAction::UserCreated,
            Some(&alice),
            site(),
        )
        .with_details("Zoë"),
        ev(1, None, AuditAction::SignIn, None, site()).with_reason("unknown_user"),
        ev(5, Some(&alice), AuditAction::SignIn, Some(&alice), site()),
        ev(
            3,
            Some(&admin()),
            AuditAction::Unlocked,
            Some(&bob),
            other_site(),
        ),
        ev(
            5,
            Some(&bob),
            AuditAction::PasswordChanged,
            Some(&bob),
            site(),
        ),
        ev(
            9,
            Some(&admin()),
            AuditAction::TotpReset,
            Some(&alice),
            other_site(),
        ),
    ];
    events[2].outcome = AuditOutcome::Denied;
    events[4].outcome = AuditOutcome::Continued;
    for e in &events {
        store.append_audit(e).expect("append_audit failed");
    }
    for (i, action) in AuditAction::ALL.iter().enumerate() {
        let e = ev(
            20 + i64::try_from(i).unwrap_or(0),
            Some(&bob),
            *action,
            None,
            site(),
        );
        store.append_audit(&e).expect("append_audit failed");
        events.push(e);
    }
    let queries = [
        ("everything", AuditQuery::default().page(0, MAX_PAGE)),
        (
            "alice",
            AuditQuery::for_user(alice.clone()).page(0, MAX_PAGE),
        ),
        ("bob", AuditQuery::for_user(bob.clone()).page(0, MAX_PAGE)),
        (
            "sign-ins",
            AuditQuery::default()
                .action(AuditAction::SignIn)
                .page(0, MAX_PAGE),
        ),
        (
            "range",
            AuditQuery::default()
                .between(at(3), at(9))
                .page(0, MAX_PAGE),
        ),
        (
            "other site",
            AuditQuery::default().site(other_site()).page(0, MAX_PAGE),
        ),
        (
            "combined",
            AuditQuery::for_user(alice.clone())
                .site(site())
                .between(at(5), at(6))
                .page(0, MAX_PAGE),
        ),
    ];
    let mut without_alice = AuditQuery::default().page(0, MAX_PAGE);
    without_alice.excluded = vec![alice.clone(), UserId::parse("nobody").unwrap()];
    let mut without_both = without_alice.clone();
    without_both.excluded.push(bob.clone());
    let excluding = [
        ("without alice", without_alice),
        ("without both", without_both),
    ];
    for (what, q) in queries.into_iter().chain(excluding) {
        let mut want: Vec<AuditEvent> = events.iter().filter(|e| q.matches(e)).cloned().collect();
        want.sort_by_key(|e| e.at);
        let page = store.query_audit(&q).expect("query_audit failed");
        assert_eq!(page.items, want, "audit query {what}");
        assert_eq!(page.total, want.len() as u64, "audit total {what}");
    }
    let mut sorted = events.clone();
    sorted.sort_by_key(|e| e.at);
    let page = store
        .query_audit(&AuditQuery::default().page(2, 3))
        .expect("query_audit failed");
    assert_eq!(page.items, sorted[2..5].to_vec(), "audit page");
    assert_eq!(page.total, events.len() as u64);
}

/// The event recording the creation of `record`'s user.
fn created_event(record: &UserRecord) -> AuditEvent {
    let (site, target) = (record.user.site.clone(), Some(record.user.id.clone()));
    AuditEvent::new(
        T0,
        None,
        AuditAction::UserCreated,
        target,
        site,
        AuditOutcome::Succeeded,
    )
    .with_details(record.user.username.clone())
}

fn new_user(record: &UserRecord) -> NewUser {
    NewUser::new(record.clone(), created_event(record))
}

/// `create_users` writes each free entry with its event, in order, and skips (reporting why)
/// an entry whose id or username is taken in the store or by an earlier entry of the call.
pub fn create_users_skips_taken(store: &dyn UserStore) {
    let existing = person(site(), "Existing", "E", "Xisting");
    create(store, &existing);
    let fresh = full_record();
    let fresh_again = person(site(), &fresh.user.username.to_uppercase(), "F", "Again");
    let other_site = person(other_site(), "existing", "O", "Ther");
    let same_id = {
        let mut r = person(site(), "same-id", "S", "Ame");
        r.user.id = existing.user.id.clone();
        r
    };
    let taken_name = person(site(), "EXISTING", "T", "Aken");
    let batch = [&fresh, &taken_name, &fresh_again, &same_id, &other_site].map(new_user);
    let done = store.create_users(&batch).expect("create_users failed");
    assert_eq!(
        done,
        vec![
            Creation::Created,
            Creation::UsernameTaken,
            Creation::UsernameTaken,
            Creation::IdTaken,
            Creation::Created
        ]
    );
    assert_eq!(
        get(store, &fresh.user.id),
        fresh,
        "created exactly as given"
    );
    assert_eq!(get(store, &other_site.user.id), other_site);
    assert_eq!(
        get(store, &existing.user.id),
        existing,
        "a taken row is untouched"
    );
    assert_eq!(
        store.get_user(&taken_name.user.id).expect("get failed"),
        None
    );
    let events = events_of(store, AuditAction::UserCreated);
    let recorded: Vec<_> = events.iter().map(|e| e.target.clone()).collect();
    let expected = vec![
        Some(fresh.user.id.clone()),
        Some(other_site.user.id.clone()),
    ];
    assert_eq!(recorded, expected, "one event per created user, in order");
    assert_eq!(events[0], created_event(&fresh));
    assert_eq!(store.create_users(&[]).expect("empty call failed"), vec![]);
}

/// `create_users` decides each entry as inserting them one after the other would: an entry
/// skipped for its id leaves its username free for a later one; the same id twice in one call
/// creates the first; a call longer than any backend's internal chunk is decided whole.
pub fn create_users_decides_in_order(store: &dyn UserStore) {
    let existing = person(site(), "existing", "E", "X");
    create(store, &existing);
    let mut reused_id = person(site(), "free-name", "R", "Eused");
    reused_id.user.id = existing.user.id.clone();
    let later = person(site(), "FREE-NAME", "L", "Ater");
    let first = person(site(), "first", "F", "Irst");
    let mut same_id = person(site(), "second", "S", "Econd");
    same_id.user.id = first.user.id.clone();
    let batch = [&reused_id, &later, &first, &same_id].map(new_user);
    let done = store.create_users(&batch).expect("create_users failed");
    let expected = [
        Creation::IdTaken,
        Creation::Created,
        Creation::Created,
        Creation::IdTaken,
    ];
    assert_eq!(done, expected);
    assert_eq!(get(store, &later.user.id).user.username, "FREE-NAME");
    assert_eq!(get(store, &first.user.id).user.username, "first");
    let many: Vec<NewUser> = (0..900)
        .map(|i| new_user(&person(other_site(), &format!("many-{i}"), "M", "Any")))
        .collect();
    let done = store.create_users(&many).expect("create_users failed");
    assert!(done.iter().all(|c| *c == Creation::Created));
    let events = events_of(store, AuditAction::UserCreated);
    assert_eq!(events.len(), 2 + 900, "one event per created user");
    let order: Vec<_> = events[2..].iter().map(|e| e.target.clone()).collect();
    let expected: Vec<_> = many
        .iter()
        .map(|u| Some(u.record.user.id.clone()))
        .collect();
    assert_eq!(order, expected, "events in the call's order");
}

/// Usernames are compared after Unicode compatibility normalization and case folding, and a
/// username that looks like one the site has (the same UTS #39 skeleton) is refused, on
/// creation, in `create_users` and on a rename; another site may hold it.
pub fn usernames_fold_and_lookalikes_are_refused(store: &dyn UserStore) {
    let found = |name: &str| {
        store
            .find_user(&site(), name)
            .expect("find failed")
            .map(|r| r.user.id)
    };
    let ada = person(site(), "ada", "A", "Da");
    create(store, &ada);
    assert_eq!(
        found("\u{FF21}\u{FF24}\u{FF21}"),
        Some(ada.user.id.clone()),
        "fullwidth ＡＤＡ"
    );
    let cyrillic = person(site(), "\u{430}da", "C", "Yrillic");
    is_conflict(
        store.create_user(&cyrillic),
        crate::store::CONFUSABLE_USERNAME,
    );
    let done = store
        .create_users(&[new_user(&cyrillic)])
        .expect("create_users failed");
    assert_eq!(done, [Creation::UsernameConfusable]);
    let elsewhere = person(other_site(), "\u{430}da", "C", "Yrillic");
    create(store, &elsewhere);
    let jose = person(site(), "jos\u{E9}", "J", "Ose");
    create(store, &jose);
    assert_eq!(
        found("jose\u{301}"),
        Some(jose.user.id.clone()),
        "decomposed é"
    );
    is_conflict(
        store.create_user(&person(site(), "JOSE\u{301}", "J", "2")),
        "username",
    );
    let sigma = person(site(), "\u{3A3}\u{391}\u{3A3}", "S", "Igma");
    create(store, &sigma);
    assert_eq!(
        found("\u{3C3}\u{3B1}\u{3C3}"),
        Some(sigma.user.id.clone()),
        "σασ"
    );
    assert_eq!(
        found("\u{3C3}\u{3B1}\u{3C2}"),
        Some(sigma.user.id.clone()),
        "σας"
    );
    let mut bob = person(site(), "bob", "B", "Ob");
    create(store, &bob);
    bob.user.username = "\u{430}DA".into();
    is_conflict(
        store.update_profile(&bob.user),
        crate::store::CONFUSABLE_USERNAME,
    );
    bob.user.username = "ADA".into();
    is_conflict(store.update_profile(&bob.user), "username");
    bob.user.username = "BOB".into();
    store
        .update_profile(&bob.user)
        .expect("renaming to its own look is fine");
    assert_eq!(found("bob"), Some(bob.user.id.clone()));
}

/// `prune_audit` deletes a site's events before the instant and nothing else.
pub fn prune_audit_deletes_only_older_events(store: &dyn UserStore) {
    let at = |minutes: i64, site: SiteId| {
        let mut e = batch_event(None);
        e.at = T0 + Duration::minutes(minutes);
        e.site = site;
        e
    };
    for (m, s) in [
        (0, site()),
        (1, site()),
        (2, other_site()),
        (3, site()),
        (5, site()),
    ] {
        store.append_audit(&at(m, s)).expect("append failed");
    }
    let pruned = store
        .prune_audit(&site(), T0 + Duration::minutes(3))
        .expect("prune failed");
    assert_eq!(pruned, 2, "the two events of the site before minute 3");
    let left = store
        .query_audit(&AuditQuery::default().page(0, MAX_PAGE))
        .expect("query failed")
        .items;
    let kept: Vec<(i64, &str)> = left
        .iter()
        .map(|e| (((e.at - T0).whole_minutes()), e.site.as_str()))
        .collect();
    let expected = [(2, other_site()), (3, site()), (5, site())];
    let expected: Vec<(i64, &str)> = expected.iter().map(|(m, s)| (*m, s.as_str())).collect();
    assert_eq!(kept, expected);
    assert_eq!(store.prune_audit(&site(), T0).expect("prune failed"), 0);
}

/// `change_recorded` writes the credential change and the events it returns together; a
/// change that returns no events writes its change alone; one that touches the profile is
/// refused and writes nothing; a missing user is `NotFound`.
pub fn change_recorded_commits_change_and_events_together(store: &dyn UserStore) {
    let r = person(site(), "recorded", "R", "Ecorded");
    create(store, &r);
    let id = r.user.id.clone();
    let new = PasswordCredential::permanent(hash("new"), T0);
    let event = batch_event(Some(&id));
    let mut change = |rec: &mut UserRecord| {
        rec.password = Some(new.clone());
        vec![event.clone(), event.clone()]
    };
    store
        .change_recorded(&id, &mut change)
        .expect("change_recorded failed");
    assert_eq!(get(store, &id).password, Some(new.clone()));
    assert_eq!(events_of(store, AuditAction::TemporaryPasswordSet).len(), 2);
    let mut touches_profile = |rec: &mut UserRecord| {
        rec.password = None;
        rec.user.surname = "Changed".into();
        vec![event.clone()]
    };
    let refused = store.change_recorded(&id, &mut touches_profile);
    assert!(
        matches!(refused, Err(StoreError::InvalidQuery { .. })),
        "{refused:?}"
    );
    assert_eq!(
        get(store, &id),
        {
            let mut expected = r.clone();
            expected.password = Some(new.clone());
            expected
        },
        "nothing of a refused change is written"
    );
    assert_eq!(events_of(store, AuditAction::TemporaryPasswordSet).len(), 2);
    let mut silent = |rec: &mut UserRecord| {
        rec.pin = Some(PinCredential::new(hash("pin"), T0));
        Vec::new()
    };
    store
        .change_recorded(&id, &mut silent)
        .expect("change_recorded failed");
    assert!(get(store, &id).pin.is_some());
    let missing = UserId::generate();
    let mut nothing = |_: &mut UserRecord| Vec::new();
    is_not_found(
        store.change_recorded(&missing, &mut nothing),
        &missing,
        "change_recorded",
    );
    // A sign-in records its time with its event: the one profile field a recorded change may
    // write.
    let signed_in = T0 + Duration::minutes(5);
    let mut sign_in = |rec: &mut UserRecord| {
        rec.user.last_sign_in_at = Some(signed_in);
        vec![event.clone()]
    };
    store
        .change_recorded(&id, &mut sign_in)
        .expect("change_recorded failed");
    assert_eq!(get(store, &id).user.last_sign_in_at, Some(signed_in));
    assert_eq!(events_of(store, AuditAction::TemporaryPasswordSet).len(), 3);
}

/// A change a store must refuse, named.
type Refusal = (&'static str, fn(&mut UserRecord));

/// `change_profile_recorded` writes the profile (username, groups, role, status, contact
/// details) with the credentials and its events in one transaction; a taken or confusable
/// username, or a change of id, site or creation time, writes nothing at all; a change with no
/// events changes nothing.
pub fn profile_changes_commit_with_their_events(store: &dyn UserStore) {
    let r = person(site(), "profiled", "Pro", "Filed");
    let other = person(site(), "taken", "Tak", "En");
    create(store, &r);
    create(store, &other);
    let id = r.user.id.clone();
    let event = batch_event(Some(&id));
    let mut want = r.clone();
    want.user.username = "Renamed".into();
    want.user.surname = "Ünchanged".into();
    want.user.groups = vec!["Year 9".into(), "Choir".into()];
    want.user.role = Role::Moderator;
    want.user.managed_sites = vec![other_site()];
    want.user.status = UserStatus::Disabled;
    want.user.email = Some("new@example.org".into());
    want.user.email_verified = true;
    want.contact_code = Some(OneTimeCredential::new(
        hash("contact"),
        T0,
        T0 + Duration::hours(1),
    ));
    let target = want.clone();
    let mut change = |rec: &mut UserRecord| {
        rec.user = target.user.clone();
        rec.contact_code.clone_from(&target.contact_code);
        vec![event.clone()]
    };
    store
        .change_profile_recorded(&id, &mut change)
        .expect("change_profile_recorded failed");
    assert_eq!(get(store, &id), want, "the change as written");
    assert!(store.find_user(&site(), "renamed").expect("find").is_some());
    assert!(
        store
            .find_user(&site(), "profiled")
            .expect("find")
            .is_none(),
        "old name freed"
    );
    assert_eq!(events_of(store, AuditAction::TemporaryPasswordSet).len(), 1);

    let refusals: [Refusal; 5] = [
        ("a taken username", |rec| rec.user.username = "TAKEN".into()),
        ("a confusable username", |rec| {
            rec.user.username = "t\u{430}ken".into()
        }),
        ("another id", |rec| rec.user.id = UserId::generate()),
        ("another site", |rec| rec.user.site = other_site()),
        ("another creation time", |rec| {
            rec.user.created_at = T0 + Duration::days(1)
        }),
    ];
    for (what, refused) in &refusals {
        let mut change = |rec: &mut UserRecord| {
            rec.user.groups = vec!["Should not stay".into()];
            rec.pin = Some(PinCredential::new(hash("pin"), T0));
            refused(rec);
            vec![event.clone()]
        };
        let result = store.change_profile_recorded(&id, &mut change);
        assert!(
            matches!(
                result,
                Err(StoreError::Conflict { .. } | StoreError::InvalidQuery { .. })
            ),
            "{what}: {result:?}"
        );
        assert_eq!(get(store, &id), want, "{what}: nothing is written");
        assert_eq!(
            events_of(store, AuditAction::TemporaryPasswordSet).len(),
            1,
            "{what}: no event is written"
        );
    }
    let mut silent = |rec: &mut UserRecord| {
        rec.user.forename = "Silent".into();
        Vec::new()
    };
    store
        .change_profile_recorded(&id, &mut silent)
        .expect("change_profile_recorded failed");
    assert_eq!(
        get(store, &id),
        want,
        "a change with no events changes nothing"
    );
    let missing = UserId::generate();
    let mut nothing = |_: &mut UserRecord| vec![event.clone()];
    is_not_found(
        store.change_profile_recorded(&missing, &mut nothing),
        &missing,
        "change_profile_recorded",
    );
}

/// `delete_recorded` removes the user (record, groups, username) with its events in one
/// transaction and leaves the user's past events; a decision with no events deletes nothing.
pub fn deletion_keeps_the_trail(store: &dyn UserStore) {
    let mut r = person(site(), "leaving", "Lea", "Ving");
    r.user.groups = vec!["Year 11".into()];
    r.password = Some(PasswordCredential::permanent(hash("pw"), T0));
    create(store, &r);
    let id = r.user.id.clone();
    let earlier = batch_event(Some(&id));
    store.append_audit(&earlier).expect("append_audit failed");
    let mut keep = |seen: &UserRecord| {
        assert_eq!(
            seen.user.groups,
            vec!["Year 11".to_owned()],
            "the whole record is seen"
        );
        Vec::new()
    };
    assert!(
        !store
            .delete_recorded(&id, &mut keep)
            .expect("delete_recorded failed")
    );
    assert_eq!(
        get(store, &id),
        r,
        "a decision without events deletes nothing"
    );
    let mut gone = AuditEvent::new(
        T0,
        None,
        AuditAction::UserDeleted,
        Some(id.clone()),
        site(),
        AuditOutcome::Succeeded,
    );
    gone.details = Some("username=leaving".into());
    let mut delete = |_: &UserRecord| vec![gone.clone()];
    assert!(
        store
            .delete_recorded(&id, &mut delete)
            .expect("delete_recorded failed")
    );
    assert!(store.get_user(&id).expect("get_user").is_none());
    assert!(store.find_user(&site(), "leaving").expect("find").is_none());
    let groups = store
        .list_groups(&GroupQuery::new(site()))
        .expect("list_groups failed");
    assert!(
        groups.items.iter().all(|g| g.name != "Year 11"),
        "groups go with the user"
    );
    let trail = store
        .query_audit(&AuditQuery::for_user(id.clone()).page(0, 100))
        .expect("query_audit failed");
    let actions: Vec<AuditAction> = trail.items.iter().map(|e| e.action).collect();
    assert_eq!(
        actions,
        vec![AuditAction::TemporaryPasswordSet, AuditAction::UserDeleted]
    );
    // The username is free again.
    create(store, &person(site(), "leaving", "New", "Comer"));
    is_not_found(
        store.delete_recorded(&id, &mut delete),
        &id,
        "delete_recorded",
    );
}

/// Two handles race: 8 threads rename one user's groups through `change_profile_recorded`
/// (one event each) while 8 threads try to delete it: it is deleted exactly once, and no
/// profile change is stored without its event or after the deletion.
pub fn concurrent_profile_changes_and_deletion(open: Opener<'_>) {
    let r = seeded(open, |_| {});
    let id = r.user.id.clone();
    let event = batch_event(Some(&id));
    let deleted = race(open, 16, |store| {
        let mut n = 0;
        for i in 0..4 {
            let mut change = |rec: &mut UserRecord| {
                rec.user.groups = vec![format!("Group {i}")];
                vec![event.clone()]
            };
            match store.change_profile_recorded(&id, &mut change) {
                Ok(()) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => panic!("change_profile_recorded failed: {e:?}"),
            }
            let mut delete = |_: &UserRecord| {
                let mut gone = event.clone();
                gone.action = AuditAction::UserDeleted;
                vec![gone]
            };
            match store.delete_recorded(&id, &mut delete) {
                Ok(true) => n += 1,
                Ok(false) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => panic!("delete_recorded failed: {e:?}"),
            }
        }
        n
    });
    assert_eq!(deleted.iter().sum::<u32>(), 1, "deleted exactly once");
    let store = open();
    assert!(store.get_user(&id).expect("get_user").is_none());
    assert_eq!(events_of(&*store, AuditAction::UserDeleted).len(), 1);
    let trail = store
        .query_audit(&AuditQuery::for_user(id.clone()).page(0, 1000))
        .expect("query_audit failed");
    let last = trail.items.last().expect("events");
    assert_eq!(
        last.action,
        AuditAction::UserDeleted,
        "no change after the deletion"
    );
}

/// 16 threads over two handles each count 8 failures through `change_recorded`, with the
/// lock rule applied inside the change and one event each: no failure and no event is lost,
/// and every event belongs to a failure that was stored.
pub fn concurrent_recorded_changes_lose_nothing(open: Opener<'_>) {
    const THREADS: u32 = 16;
    const EACH: u32 = 8;
    let r = seeded(open, |_| {});
    let rule =
        LockoutRule::new(1000, Duration::hours(1), LockoutMode::UntilUnlocked).expect("valid rule");
    let event = batch_event(Some(&r.user.id));
    race(open, THREADS as usize, |store| {
        for _ in 0..EACH {
            let mut change = |rec: &mut UserRecord| {
                let counter = LockCounter::Password;
                let _ = ops::apply_lock_event_to(rec, counter, &rule, &LockEvent::Attempt, T0);
                let failure = LockEvent::Failure { reserved_in: 0 };
                let _ = ops::apply_lock_event_to(rec, counter, &rule, &failure, T0);
                vec![event.clone()]
            };
            store
                .change_recorded(&r.user.id, &mut change)
                .expect("change_recorded failed");
        }
    });
    let store = open();
    let state = get(&*store, &r.user.id).password_lock;
    assert_eq!(state.failed_attempts, THREADS * EACH, "failures were lost");
    assert_eq!(state.in_flight, 0, "reservations were lost");
    let events = events_of(&*store, AuditAction::TemporaryPasswordSet);
    assert_eq!(
        events.len() as u32,
        THREADS * EACH,
        "events were lost or doubled"
    );
}

// ---------------------------------------------------------------------------------------------
// Concurrency behaviours: two handles on one database, many threads.
// ---------------------------------------------------------------------------------------------

fn race<T: Send>(
    open: Opener<'_>,
    threads: usize,
    op: impl Fn(&dyn UserStore) -> T + Sync,
) -> Vec<T> {
    let handles = [open(), open()];
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let store = &*handles[i % 2];
                let op = &op;
                s.spawn(move || op(store))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a racing thread panicked"))
            .collect()
    })
}

fn seeded(open: Opener<'_>, f: impl FnOnce(&mut UserRecord)) -> UserRecord {
    let store = open();
    let mut r = person(site(), "racer", "R", "Acer");
    f(&mut r);
    create(&*store, &r);
    r
}

/// 32 threads on two handles each record an attempt and a failure: none is lost.
pub fn concurrent_failures_lose_no_increment(open: Opener<'_>) {
    let r = seeded(open, |_| {});
    let rule =
        LockoutRule::new(1000, Duration::hours(1), LockoutMode::UntilUnlocked).expect("valid rule");
    let proceeded = AtomicU32::new(0);
    race(open, 32, |store| {
        let (_, d) = store
            .apply_lock_event(
                &r.user.id,
                LockCounter::Password,
                &rule,
                &LockEvent::Attempt,
                T0,
            )
            .expect("apply_lock_event failed");
        assert_eq!(d, LockDecision::Proceed, "an attempt was refused");
        proceeded.fetch_add(1, Ordering::Relaxed);
        let (_, _decision) = store
            .apply_lock_event(
                &r.user.id,
                LockCounter::Password,
                &rule,
                &LockEvent::Failure { reserved_in: 0 },
                T0,
            )
            .expect("apply_lock_event failed");
    });
    let state = get(&*open(), &r.user.id).password_lock;
    assert_eq!(proceeded.load(Ordering::Relaxed), 32);
    assert_eq!(state.failed_attempts, 32, "failures were lost");
    assert_eq!(state.in_flight, 0, "reservations were lost");
}

/// 64 threads race an attempt with `max_failures` 5: exactly 5 proceed.
pub fn concurrent_attempts_respect_max(open: Opener<'_>) {
    let r = seeded(open, |_| {});
    let rule = LockoutRule::DEFAULT;
    let decisions = race(open, 64, |store| {
        store
            .apply_lock_event(
                &r.user.id,
                LockCounter::Password,
                &rule,
                &LockEvent::Attempt,
                T0,
            )
            .expect("apply_lock_event failed")
            .1
    });
    let proceeded = decisions
        .iter()
        .filter(|d| **d == LockDecision::Proceed)
        .count();
    assert_eq!(proceeded, 5, "attempts allowed: {decisions:?}");
    let state = get(&*open(), &r.user.id).password_lock;
    assert_eq!(state.in_flight, 5);
}

/// A single-use temporary password consumed by 32 racing threads succeeds exactly once.
pub fn concurrent_temporary_password_consumed_once(open: Opener<'_>) {
    let r = seeded(open, |r| {
        r.password = Some(temporary("tmp", TemporaryMode::SingleUse, None))
    });
    let results = race(open, 32, |store| {
        store
            .consume_temporary_password(&r.user.id, &hash("tmp"), T0)
            .expect("consume_temporary_password failed")
    });
    assert_eq!(
        results.iter().filter(|c| **c == Consumed::Now).count(),
        1,
        "{results:?}"
    );
}

/// A single-use code consumed by 32 racing threads succeeds exactly once.
pub fn concurrent_one_time_consumed_once(open: Opener<'_>) {
    let code = OneTimeCredential::new(hash("code"), T0, T0 + Duration::minutes(10));
    let r = seeded(open, |r| {
        r.reset_token = Some(code.clone());
        r.totp.device_code = Some(code.clone());
        r.contact_code = Some(code.clone());
    });
    for kind in ONE_TIME_KINDS {
        let results = race(open, 32, |store| {
            store
                .consume_one_time(&r.user.id, kind, &hash("code"))
                .expect("consume_one_time failed")
        });
        assert_eq!(
            results.iter().filter(|c| **c == Consumed::Now).count(),
            1,
            "{kind:?}: {results:?}"
        );
    }
}

/// A user claims their account (compare-and-swap from the temporary password to their own)
/// while a batch planned against the temporary password commits, 20 times over two handles:
/// every time exactly one of the two wins, and the loser changes nothing.
pub fn concurrent_batch_and_claim(open: Opener<'_>) {
    let store = open();
    for round in 0..20 {
        let name = format!("claimer-{round}");
        let mut r = person(site(), &name, "C", "Laimer");
        r.password = Some(temporary("tmp", TemporaryMode::SingleUse, None));
        create(&*store, &r);
        let id = r.user.id.clone();
        let own = PasswordCredential::permanent(hash("own"), T0);
        let batch_id = BatchId::generate();
        let new = temporary("new", TemporaryMode::SingleUse, Some(batch_id.clone()));
        let batch = TemporaryBatch::new(
            batch_id,
            vec![entry(&r.user, Some("tmp"), new.clone())],
            batch_event(None),
        );
        let handles = [open(), open()];
        let (claim, written) = std::thread::scope(|s| {
            let claim = s.spawn(|| {
                handles[0]
                    .replace_password(&id, Some(&hash("tmp")), Some(&own))
                    .expect("replace_password failed")
            });
            let batch = s.spawn(|| {
                handles[1]
                    .replace_batch(&batch)
                    .expect("replace_batch failed")
            });
            (
                claim.join().expect("the claim panicked"),
                batch.join().expect("the batch panicked"),
            )
        });
        let stored = get(&*store, &id).password;
        match claim {
            Swap::Swapped => {
                assert_eq!(written.changed, vec![id.clone()], "round {round}");
                assert_eq!(
                    stored,
                    Some(own),
                    "round {round}: the claim was overwritten"
                );
            }
            Swap::Changed => {
                assert_eq!(written.written, vec![id.clone()], "round {round}");
                assert_eq!(stored, Some(new), "round {round}");
            }
        }
    }
}

/// Eight threads on two handles import the same 40 users in overlapping batches: each user
/// is created once, with exactly one event.
pub fn concurrent_create_users_once(open: Opener<'_>) {
    let records: Vec<UserRecord> = (0..40)
        .map(|i| person(site(), &format!("importee-{i}"), "I", "Mportee"))
        .collect();
    let outcomes = race(open, 8, |store| {
        // Each thread gives the users fresh ids, as separate import runs would.
        let batch: Vec<NewUser> = records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.user.id = UserId::generate();
                new_user(&r)
            })
            .collect();
        let mut done = Vec::new();
        for chunk in batch.chunks(7) {
            done.extend(store.create_users(chunk).expect("create_users failed"));
        }
        done
    });
    for i in 0..records.len() {
        let created = outcomes
            .iter()
            .filter(|o| o[i] == Creation::Created)
            .count();
        assert_eq!(created, 1, "importee-{i} created {created} times");
        assert!(outcomes.iter().all(|o| o[i] != Creation::IdTaken));
    }
    let store = open();
    let events = events_of(&*store, AuditAction::UserCreated);
    assert_eq!(events.len(), records.len(), "one event per created user");
    for event in &events {
        let id = event.target.as_ref().expect("the event names the user");
        assert!(
            store.get_user(id).expect("get failed").is_some(),
            "event without its user"
        );
    }
}

/// A TOTP step offered by 32 racing threads is accepted exactly once.
pub fn concurrent_totp_step_accepted_once(open: Opener<'_>) {
    let r = seeded(open, |r| r.totp.last_step = Some(41));
    let results = race(open, 32, |store| {
        store
            .accept_totp_step(&r.user.id, 42)
            .expect("accept_totp_step failed")
    });
    assert_eq!(
        results
            .iter()
            .filter(|c| **c == StepAcceptance::Accepted)
            .count(),
        1,
        "{results:?}"
    );
}
