//! A process killed at random points never leaves a change without its audit event, nor an
//! event without its change: the child locks users and gives them temporary passwords on a
//! SQLite file until the parent kills it with SIGKILL; after every kill the file must hold
//! exactly one `locked` event per locked user and one `temporary_password_set` event per user
//! with a temporary password.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use keyward::admin::IssueOptions;
use keyward::audit::{AuditAction, AuditQuery};
use keyward::import::{ImportOptions, ImportedUser};
use keyward::store::{MAX_PAGE, UserQuery};
use keyward::user::{Role, User, UserId};
use keyward::{Keyward, Password, SqliteStore, UserStore};

const CHILD: &str = "KEYWARD_CRASH_CHILD_DB";
const USERS: usize = 1500;

fn service(path: &std::path::Path) -> Keyward {
    support::builder(Arc::new(SqliteStore::open(path).unwrap())).build()
}

fn admin_of(kw: &Keyward) -> UserId {
    kw.store()
        .find_user(&support::site(), "head")
        .unwrap()
        .unwrap()
        .user
        .id
}

/// The child: works through the users until killed. Does nothing in an ordinary test run.
#[test]
fn crash_child() {
    let Ok(path) = std::env::var(CHILD) else {
        return;
    };
    let kw = service(std::path::Path::new(&path));
    let admin = admin_of(&kw);
    for record in all_users(kw.store(), kw.now()) {
        let id = &record.user.id;
        if !record.password_lock.is_locked(kw.now()) {
            kw.lock_user(&admin, id, "crash test").unwrap();
        }
        if record
            .password
            .as_ref()
            .and_then(|p| p.temporary.as_ref())
            .is_none()
        {
            kw.issue_temporary_password(&admin, id, IssueOptions::generated())
                .unwrap();
        }
    }
}

fn all_users(store: &dyn UserStore, now: time::OffsetDateTime) -> Vec<keyward::store::UserRecord> {
    let mut out = Vec::new();
    loop {
        let query = UserQuery::new(support::site(), now)
            .role(Role::User)
            .page(out.len() as u64, MAX_PAGE);
        let page = store.search_users(&query).unwrap().items;
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

fn events_by_target(store: &dyn UserStore, action: AuditAction) -> BTreeMap<UserId, usize> {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let query = AuditQuery::default().action(action).page(offset, MAX_PAGE);
        let page = store.query_audit(&query).unwrap();
        for e in &page.items {
            *out.entry(e.target.clone().unwrap()).or_insert(0) += 1;
        }
        offset += page.items.len() as u64;
        if page.items.is_empty() {
            return out;
        }
    }
}

#[test]
fn a_killed_process_leaves_every_change_with_its_event() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let kw = service(&path);
    let head = User::new(support::site(), "head", "H", "Ead", "staff", kw.now())
        .with_role(Role::Administrator);
    kw.create_user(None, head, Some(Password::new(support::ADMIN_PASSWORD)))
        .unwrap();
    let records = (0..USERS).map(|i| Ok(ImportedUser::new(i as u64 + 1, format!("u{i:03}"))));
    let imported = kw
        .import_users(None, &support::site(), records, ImportOptions::new())
        .unwrap();
    assert_eq!(imported.created, USERS as u64);
    drop(kw);
    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    for round in 0..40 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rand::random_range(40..250)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL on Unix: no destructor, no rollback by the child
            kills += 1;
        }
        let _ = child.wait();
        let kw = service(&path);
        let store = kw.store();
        let locked = events_by_target(store, AuditAction::Locked);
        let issued = events_by_target(store, AuditAction::TemporaryPasswordSet);
        let mut done = 0;
        for r in all_users(store, kw.now()) {
            let id = &r.user.id;
            let is_locked = r.password_lock.is_locked(kw.now());
            let has_temporary = r
                .password
                .as_ref()
                .and_then(|p| p.temporary.as_ref())
                .is_some();
            assert_eq!(
                locked.get(id).copied().unwrap_or(0),
                usize::from(is_locked),
                "round {round}: {} lock",
                r.user.username
            );
            assert_eq!(
                issued.get(id).copied().unwrap_or(0),
                usize::from(has_temporary),
                "round {round}: {} temporary",
                r.user.username
            );
            done += usize::from(is_locked && has_temporary);
        }
        if done == USERS {
            break;
        }
    }
    assert!(kills > 0, "the child was never caught mid-way");
    eprintln!("{kills} kills before all {USERS} users were done");
}
