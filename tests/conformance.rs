//! The store conformance suite against every backend built here, and the tests that only
//! make sense for one backend (planted corrupt rows, newer schemas, async runtimes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(feature = "conformance")]
mod memory {
    use keyward::InMemoryStore;

    // Clones share one database: two clones behave like two application servers.
    keyward::conformance_tests!(|| {
        let store = InMemoryStore::new();
        move || store.clone()
    });
}

#[cfg(feature = "conformance")]
mod memory_boxed {
    use keyward::{InMemoryStore, UserStore};

    // The same, with the store behind `Box<dyn UserStore>`.
    keyward::conformance_tests!(|| {
        let store = InMemoryStore::new();
        move || -> Box<dyn UserStore> { Box::new(store.clone()) }
    });
}

#[cfg(all(feature = "conformance", feature = "sqlite"))]
mod sqlite_file {
    use keyward::SqliteStore;

    // Every handle is a separate `open` of the same file, like two processes.
    keyward::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        move || SqliteStore::open(dir.path().join("keyward.db")).unwrap()
    });
}

#[cfg(all(feature = "conformance", feature = "sqlite"))]
mod sqlite_memory {
    use keyward::SqliteStore;

    keyward::conformance_tests!(single || || SqliteStore::open_in_memory().unwrap());
}

mod support;
#[cfg(feature = "postgres")]
use support::pg;

#[cfg(all(feature = "conformance", feature = "postgres"))]
mod postgres_conformance {
    use super::pg::TestSchema;

    // Every handle is a separate pool on the same schema, like two application servers.
    keyward::conformance_tests!(
        optional || {
            let schema = TestSchema::new()?;
            Some(move || schema.open())
        }
    );
}

/// Records used by the backend-specific tests below.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod fixtures {
    use keyward::store::{StoreError, UserRecord};
    use keyward::user::{PasswordCredential, SiteId, StoredHash, User};
    use time::macros::datetime;

    pub(crate) fn site() -> SiteId {
        SiteId::new("site-a").unwrap()
    }

    pub(crate) fn record(username: &str) -> UserRecord {
        let at = datetime!(2026-03-01 09:00:00.5 UTC);
        let mut r = UserRecord::new(User::new(site(), username, "Fore", "Sur", "student", at));
        r.password = Some(PasswordCredential::permanent(
            StoredHash::new("$x$hash"),
            at,
        ));
        r
    }

    /// Three users in three sites, to be moved into one site by raw SQL as a version-3
    /// database could hold them: `ada` (oldest), fullwidth `ＡＤＡ` and Cyrillic `аda`.
    pub(crate) fn legacy_trio(
        store: &dyn keyward::UserStore,
    ) -> (UserRecord, UserRecord, UserRecord) {
        let mut made = Vec::new();
        for (i, (name, site_name)) in [("ada", "a"), ("ＡＤＡ", "b"), ("\u{430}da", "c")]
            .iter()
            .enumerate()
        {
            let mut r = record(name);
            r.user.site = SiteId::new(site_name).unwrap();
            r.user.created_at += time::Duration::seconds(i as i64);
            store.create_user(&r).unwrap();
            made.push(r);
        }
        let lookalike = made.pop().unwrap();
        let newer = made.pop().unwrap();
        (made.pop().unwrap(), newer, lookalike)
    }

    /// The SQL that turns a current database holding [`legacy_trio`] into a version-3 one:
    /// no skeleton, the old keys (`trim().to_lowercase()`), all three in the first's site.
    /// What migration 5 added (recovery codes, contact codes), dropped again.
    pub(crate) const DROP_VERSION_5: &str = "ALTER TABLE users DROP COLUMN totp_recovery; \
         ALTER TABLE users DROP COLUMN cc_hash; ALTER TABLE users DROP COLUMN cc_issued_ns; \
         ALTER TABLE users DROP COLUMN cc_expires_ns; \
         ALTER TABLE users DROP COLUMN cc_failed_tries; ";

    pub(crate) fn back_to_version_3(
        older: &UserRecord,
        newer: &UserRecord,
        lookalike: &UserRecord,
        sqlite: bool,
    ) -> String {
        let site = older.user.site.as_str();
        let mut sql = String::from(
            "DROP INDEX users_skeleton; ALTER TABLE users DROP COLUMN username_skeleton; ",
        );
        sql.push_str(DROP_VERSION_5);
        for r in [newer, lookalike] {
            let old_key = r.user.username.trim().to_lowercase();
            sql.push_str(&format!(
                "UPDATE users SET site = '{site}', username_key = '{old_key}' WHERE id = '{}'; \
                 UPDATE user_groups SET site = '{site}' WHERE user_id = '{}'; ",
                r.user.id, r.user.id
            ));
        }
        sql.push_str(if sqlite {
            "PRAGMA user_version = 3;"
        } else {
            "DELETE FROM keyward_schema_version WHERE version > 3;"
        });
        sql
    }

    /// After migration 4: the oldest keeps `ada` (and fullwidth `ＡＤＡ` now finds it), the
    /// newer one that folds alike is parked (its row kept, no typed name reaches it), the
    /// lookalike still signs in by its own username.
    pub(crate) fn check_parked(
        store: &dyn keyward::UserStore,
        older: &UserRecord,
        newer: &UserRecord,
        lookalike: &UserRecord,
    ) {
        let site = &older.user.site;
        let found = |name: &str| store.find_user(site, name).unwrap().map(|r| r.user.id);
        assert_eq!(found("ada"), Some(older.user.id.clone()));
        assert_eq!(found("ＡＤＡ"), Some(older.user.id.clone()));
        assert_eq!(found("\u{430}da"), Some(lookalike.user.id.clone()));
        let parked = store
            .get_user(&newer.user.id)
            .unwrap()
            .expect("the row is kept");
        assert_eq!(parked.user.username, "ＡＤＡ");
        // A new user that looks like either is refused.
        let mut again = record("\u{430}DA");
        again.user.site = site.clone();
        assert!(matches!(
            store.create_user(&again),
            Err(StoreError::Conflict { .. })
        ));
    }

    pub(crate) fn is_corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>, what: &str) {
        assert!(
            matches!(r, Err(StoreError::Corrupt { .. })),
            "{what}: expected Corrupt, got {r:?}"
        );
    }

    /// Asserts that `opened` is the refusal of a schema at version 99, newer than the
    /// `supported` one.
    pub(crate) fn is_schema_too_new<T: std::fmt::Debug>(
        opened: Result<T, StoreError>,
        supported: i64,
    ) {
        match opened {
            Err(StoreError::SchemaTooNew {
                found: 99,
                supported: s,
            }) => assert_eq!(s, supported),
            other => panic!("expected SchemaTooNew, got {other:?}"),
        }
    }

    /// Planted corruptions: `(what, SQL SET clause)`; each makes a row unreadable.
    /// One well-formed recovery-code digest and a space.
    macro_rules! digest {
        () => {
            "$sha256$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
        };
    }
    /// Eight of them.
    macro_rules! eight {
        () => {
            concat!(
                digest!(),
                digest!(),
                digest!(),
                digest!(),
                digest!(),
                digest!(),
                digest!(),
                digest!()
            )
        };
    }
    /// 33 well-formed digests: one more than a set may hold.
    const MORE_DIGESTS_THAN_A_SET: &str = concat!(
        "totp_recovery = '",
        eight!(),
        eight!(),
        eight!(),
        eight!(),
        "$sha256$aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"
    );

    pub(crate) const CORRUPTIONS: &[(&str, &str)] = &[
        ("unknown role", "role = 'emperor'"),
        ("unknown status", "status = 'gone'"),
        ("unknown lock reason", "pl_lock_reason = 'cosmic_rays'"),
        (
            "unknown temporary mode",
            "pw_tmp_mode = 'forever', pw_tmp_expires_ns = 0, pw_tmp_issued_by = 'a'",
        ),
        ("negative counter", "pl_failed = -1"),
        ("counter above u32", "tl_in_flight = 4294967296"),
        ("negative TOTP step", "totp_last_step = -5"),
        ("missing timestamp", "pw_set_ns = NULL"),
        ("bad date", "date_of_birth = 999999999999"),
        ("bad id", "pl_unlocked_by = 'not an id!'"),
        ("bad site list", "managed_sites = 'a,,b'"),
        ("short unknown temporary mode", "pw_tmp_mode = 'x'"),
        (
            "not a recovery-code digest",
            "totp_recovery = '$sha256$abc'",
        ),
        (
            "a recovery code in plain",
            "totp_recovery = 'abcd-efgh-ijkl-mnop'",
        ),
        ("an empty recovery-code entry", "totp_recovery = ' '"),
        ("a contact code without its times", "cc_hash = 'x'"),
        (
            "more recovery-code digests than a set holds",
            MORE_DIGESTS_THAN_A_SET,
        ),
    ];
}

#[cfg(feature = "sqlite")]
mod sqlite_specific {
    use keyward::audit::{AuditAction, AuditEvent, AuditOutcome, AuditQuery};
    use keyward::lockout::{LockEvent, LockoutRule};
    use keyward::store::{LockCounter, StoreError, UserQuery};
    use keyward::{SqliteStore, UserStore};
    use time::macros::datetime;

    use super::fixtures::{CORRUPTIONS, is_corrupt, is_schema_too_new, record, site};

    #[test]
    fn bad_rows_are_corrupt_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let store = SqliteStore::open(&path).unwrap();
        let raw = rusqlite::Connection::open(&path).unwrap();
        for (i, (what, set)) in CORRUPTIONS.iter().enumerate() {
            let r = record(&format!("user{i}"));
            store.create_user(&r).unwrap();
            raw.execute(
                &format!("UPDATE users SET {set} WHERE id = ?1"),
                [r.user.id.as_str()],
            )
            .unwrap();
            let id = &r.user.id;
            is_corrupt(store.get_user(id), what);
            is_corrupt(store.find_user(&site(), &r.user.username), what);
            is_corrupt(
                store.apply_lock_event(
                    id,
                    LockCounter::Password,
                    &LockoutRule::DEFAULT,
                    &LockEvent::Attempt,
                    datetime!(2026-03-02 0:00 UTC),
                ),
                what,
            );
            is_corrupt(
                store.search_users(&UserQuery::new(site(), datetime!(2026-03-02 0:00 UTC))),
                what,
            );
            raw.execute("DELETE FROM users WHERE id = ?1", [id.as_str()])
                .unwrap();
        }
        let event = AuditEvent::new(
            datetime!(2026-03-01 0:00 UTC),
            None,
            AuditAction::SignIn,
            None,
            site(),
            AuditOutcome::Denied,
        );
        store.append_audit(&event).unwrap();
        raw.execute("UPDATE audit SET action = 'explode'", [])
            .unwrap();
        is_corrupt(
            store.query_audit(&AuditQuery::default()),
            "unknown audit action",
        );
    }

    #[test]
    fn a_version_1_database_migrates_and_keeps_its_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let r = record("old");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.create_user(&r).unwrap();
        }
        // Back to version 1: the escrow and epoch columns did not exist yet.
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.execute_batch(&format!(
            "{}ALTER TABLE users DROP COLUMN pw_tmp_escrow; \
             ALTER TABLE users DROP COLUMN pl_epoch; \
             ALTER TABLE users DROP COLUMN tl_epoch; \
             DROP INDEX users_role; DROP INDEX users_skeleton; \
             ALTER TABLE users DROP COLUMN username_skeleton",
            super::fixtures::DROP_VERSION_5
        ))
        .unwrap();
        raw.pragma_update(None, "user_version", 1).unwrap();
        drop(raw);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.get_user(&r.user.id).unwrap(), Some(r));
        let raw = rusqlite::Connection::open(&path).unwrap();
        let version: i64 = raw
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap();
        assert_eq!(version, keyward::store::sqlite::SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        drop(SqliteStore::open(&path).unwrap());
        let raw = rusqlite::Connection::open(&path).unwrap();
        raw.pragma_update(None, "user_version", 99).unwrap();
        is_schema_too_new(
            SqliteStore::open(&path),
            keyward::store::sqlite::SCHEMA_VERSION,
        );
    }

    #[test]
    fn unstorable_instants_are_refused_and_nothing_written() {
        let store = SqliteStore::open_in_memory().unwrap();
        let mut r = record("far");
        r.user.created_at = datetime!(2300-01-01 0:00 UTC);
        assert!(
            matches!(store.create_user(&r), Err(StoreError::InvalidQuery { .. })),
            "a year-2300 instant was accepted"
        );
        assert_eq!(store.get_user(&r.user.id).unwrap(), None);
        let ok = record("near");
        store.create_user(&ok).unwrap();
        assert!(matches!(
            store.record_sign_in(&ok.user.id, datetime!(1600-01-01 0:00 UTC)),
            Err(StoreError::InvalidQuery { .. })
        ));
        assert_eq!(store.get_user(&ok.user.id).unwrap(), Some(ok));
    }

    #[test]
    fn version_3_usernames_that_now_fold_alike_are_parked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let store = SqliteStore::open(&path).unwrap();
        let (older, newer, lookalike) = super::fixtures::legacy_trio(&store);
        drop(store);
        let raw = rusqlite::Connection::open(&path).unwrap();
        let sql = super::fixtures::back_to_version_3(&older, &newer, &lookalike, true);
        raw.execute_batch(&sql).unwrap();
        drop(raw);
        super::fixtures::check_parked(
            &SqliteStore::open(&path).unwrap(),
            &older,
            &newer,
            &lookalike,
        );
    }

    #[test]
    fn concurrent_first_opens_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        std::thread::scope(|s| {
            let opens: Vec<_> = (0..8)
                .map(|_| s.spawn(|| SqliteStore::open(&path)))
                .collect();
            for open in opens {
                open.join().unwrap().unwrap();
            }
        });
    }

    #[test]
    fn reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.db");
        let r = record("keep");
        SqliteStore::open(&path).unwrap().create_user(&r).unwrap();
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.get_user(&r.user.id).unwrap(), Some(r));
    }
}

#[cfg(feature = "postgres")]
mod postgres_specific {
    use keyward::lockout::{LockDecision, LockEvent, LockoutRule};
    use keyward::store::{LockCounter, UserQuery};
    use keyward::{PostgresStore, UserStore};
    use time::macros::datetime;

    use super::fixtures::{CORRUPTIONS, is_corrupt, is_schema_too_new, record, site};
    use super::pg::TestSchema;

    #[test]
    fn bad_rows_are_corrupt_not_panics() {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        let store = schema.open();
        for (i, (what, set)) in CORRUPTIONS.iter().enumerate() {
            let r = record(&format!("user{i}"));
            store.create_user(&r).unwrap();
            schema.execute(&format!(
                "UPDATE users SET {set} WHERE id = '{}'",
                r.user.id
            ));
            is_corrupt(store.get_user(&r.user.id), what);
            is_corrupt(
                store.search_users(&UserQuery::new(site(), datetime!(2026-03-02 0:00 UTC))),
                what,
            );
            schema.execute(&format!("DELETE FROM users WHERE id = '{}'", r.user.id));
        }
    }

    #[test]
    fn a_version_1_database_migrates_and_keeps_its_users() {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        let r = record("old");
        {
            let store = schema.open();
            store.create_user(&r).unwrap();
        }
        schema.execute(&format!(
            "{}ALTER TABLE users DROP COLUMN pw_tmp_escrow, DROP COLUMN pl_epoch, \
             DROP COLUMN tl_epoch, DROP COLUMN username_skeleton; DROP INDEX users_role; \
             DELETE FROM keyward_schema_version WHERE version > 1",
            super::fixtures::DROP_VERSION_5
        ));
        let store = schema.open();
        assert_eq!(store.get_user(&r.user.id).unwrap(), Some(r));
    }

    #[test]
    fn version_3_usernames_that_now_fold_alike_are_parked() {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        let store = schema.open();
        let (older, newer, lookalike) = super::fixtures::legacy_trio(&store);
        drop(store);
        schema.execute(&super::fixtures::back_to_version_3(
            &older, &newer, &lookalike, false,
        ));
        super::fixtures::check_parked(&schema.open(), &older, &newer, &lookalike);
    }

    #[test]
    fn newer_schema_is_refused() {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        drop(schema.open());
        schema.execute("INSERT INTO keyward_schema_version (version) VALUES (99)");
        is_schema_too_new(
            PostgresStore::connect_with(&schema.url, &schema.options()),
            keyward::store::postgres::SCHEMA_VERSION,
        );
    }

    #[test]
    fn concurrent_first_connects_migrate_once() {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        std::thread::scope(|s| {
            let opens: Vec<_> = (0..4)
                .map(|_| s.spawn(|| PostgresStore::connect_with(&schema.url, &schema.options())))
                .collect();
            for open in opens {
                open.join().unwrap().unwrap();
            }
        });
    }

    /// Creates, uses and drops a store on a thread that runs an async runtime.
    fn use_inside_runtime(schema: &TestSchema) {
        let store = schema.open();
        let r = record("async");
        store.create_user(&r).unwrap();
        assert_eq!(store.get_user(&r.user.id).unwrap(), Some(r.clone()));
        let (_, d) = store
            .apply_lock_event(
                &r.user.id,
                LockCounter::Password,
                &LockoutRule::DEFAULT,
                &LockEvent::Attempt,
                datetime!(2026-03-02 0:00 UTC),
            )
            .unwrap();
        assert_eq!(d, LockDecision::Proceed);
        let page = store
            .search_users(&UserQuery::new(site(), datetime!(2026-03-02 0:00 UTC)))
            .unwrap();
        assert_eq!(page.total, 1);
        drop(store);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn usable_inside_a_multi_thread_runtime() {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        use_inside_runtime(&schema);
        // And from a spawned task on a worker thread.
        let handle = tokio::spawn(async move {
            use_inside_runtime(&TestSchema::new().unwrap());
            drop(schema);
        });
        handle.await.unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn usable_inside_a_current_thread_runtime() {
        let Some(schema) = TestSchema::new() else {
            return;
        };
        use_inside_runtime(&schema);
    }
}

/// The SQL translation of searches agrees with the in-memory reference on random data.
#[cfg(feature = "sqlite")]
mod sql_agrees_with_memory {
    use keyward::store::UserRecord;
    use keyward::store::{GroupQuery, UserQuery, UserSort};
    use keyward::user::{SiteId, User, UserStatus};
    use keyward::{InMemoryStore, SqliteStore, UserStore};
    use proptest::prelude::*;
    use proptest::test_runner::{TestCaseError, TestRunner};
    use time::Duration;
    use time::macros::datetime;

    /// Short names over an alphabet of case pairs, non-ASCII, `%`, `_` and spaces.
    const NAME: &str = "[aAbBäÄİı%_ z]{0,4}";

    #[derive(Debug, Clone)]
    struct Spec {
        names: (String, String, String, Option<String>),
        groups: Vec<String>,
        disabled: bool,
        created: i64,
        other_site: bool,
    }

    #[derive(Debug, Clone)]
    struct Case {
        specs: Vec<Spec>,
        text: Option<String>,
        group_text: Option<String>,
        sort: usize,
        descending: bool,
        status: Option<bool>,
        offset: u64,
        limit: u32,
    }

    fn spec() -> impl Strategy<Value = Spec> {
        (
            (NAME, NAME, NAME, proptest::option::of(NAME)),
            proptest::collection::vec(NAME, 0..3),
            any::<bool>(),
            0..3_i64,
            proptest::bool::weighted(0.2),
        )
            .prop_map(|(names, groups, disabled, created, other_site)| Spec {
                names,
                groups,
                disabled,
                created,
                other_site,
            })
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            proptest::collection::vec(spec(), 1..20),
            proptest::option::of(NAME),
            proptest::option::of(NAME),
            (
                0..4_usize,
                any::<bool>(),
                proptest::option::of(any::<bool>()),
            ),
            (0..25_u64, 1..25_u32),
        )
            .prop_map(
                |(specs, text, group_text, (sort, descending, status), (offset, limit))| Case {
                    specs,
                    text,
                    group_text,
                    sort,
                    descending,
                    status,
                    offset,
                    limit,
                },
            )
    }

    fn record(i: usize, s: &Spec) -> UserRecord {
        let site = SiteId::new(if s.other_site { "b" } else { "a" }).unwrap();
        let at = datetime!(2026-03-01 0:00 UTC) + Duration::seconds(s.created);
        let (forename, surname, username, email) = &s.names;
        // A numeric suffix keeps usernames unique after folding.
        let mut u = User::new(site, format!("{username}{i}"), forename, surname, "t", at)
            .with_groups(s.groups.clone());
        u.email = email.clone();
        if s.disabled {
            u.status = UserStatus::Disabled;
        }
        UserRecord::new(u)
    }

    /// Loads the case into a fresh memory store and into `sql` (emptied by the caller), and
    /// compares a search and a group listing.
    fn check(sql: &dyn UserStore, c: &Case) -> Result<(), TestCaseError> {
        let memory = InMemoryStore::new();
        for (i, s) in c.specs.iter().enumerate() {
            let r = record(i, s);
            memory.create_user(&r).unwrap();
            sql.create_user(&r).unwrap();
        }
        let sorts = [
            UserSort::Surname,
            UserSort::Forename,
            UserSort::Username,
            UserSort::Created,
        ];
        let mut q = UserQuery::new(SiteId::new("a").unwrap(), datetime!(2026-03-02 0:00 UTC))
            .sort(sorts[c.sort], c.descending)
            .page(c.offset, c.limit);
        q.text.clone_from(&c.text);
        q.status = c.status.map(|d| {
            if d {
                UserStatus::Disabled
            } else {
                UserStatus::Active
            }
        });
        prop_assert_eq!(
            sql.search_users(&q).unwrap(),
            memory.search_users(&q).unwrap(),
            "{:?}",
            q
        );
        let mut g = GroupQuery::new(SiteId::new("a").unwrap()).page(c.offset % 5, c.limit);
        g.text.clone_from(&c.group_text);
        prop_assert_eq!(
            sql.list_groups(&g).unwrap(),
            memory.list_groups(&g).unwrap(),
            "{:?}",
            g
        );
        Ok(())
    }

    #[test]
    fn sqlite_searches_and_group_listings_agree() {
        TestRunner::new(ProptestConfig::with_cases(128))
            .run(&case(), |c| {
                check(&SqliteStore::open_in_memory().unwrap(), &c)
            })
            .unwrap();
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_searches_and_group_listings_agree() {
        let Some(schema) = super::pg::TestSchema::new() else {
            return;
        };
        let store = schema.open();
        TestRunner::new(ProptestConfig::with_cases(64))
            .run(&case(), |c| {
                schema.execute("DELETE FROM user_groups; DELETE FROM users");
                check(&store, &c)
            })
            .unwrap();
    }
}
