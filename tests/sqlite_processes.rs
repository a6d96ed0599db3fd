//! Two real processes on one SQLite file: no lost update, and a single-use temporary password
//! is consumed by exactly one of them.
//!
//! The test re-runs its own binary as the second process (`KEYWARD_CHILD_DB` tells the child
//! which file and user to hammer), so it needs nothing but the test harness.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use keyward::lockout::{LockEvent, LockoutMode, LockoutRule};
use keyward::store::{Consumed, LockCounter, UserRecord};
use keyward::user::{PasswordCredential, SiteId, StoredHash, TemporaryMode, User, UserId};
use keyward::{SqliteStore, UserStore};
use time::Duration;
use time::macros::datetime;

const T0: time::OffsetDateTime = datetime!(2026-10-01 12:00 UTC);
const ROUNDS: u32 = 400;

fn rule() -> LockoutRule {
    // High enough never to lock: this counts increments.
    LockoutRule::new(1_000_000, Duration::days(1), LockoutMode::UntilUnlocked).unwrap()
}

/// One process's share: `ROUNDS` attempt+failure pairs, then one try at consuming the
/// temporary password. Prints how many consumptions it won.
fn hammer(path: &str, id: &UserId) -> u32 {
    let store = SqliteStore::open(path).unwrap();
    for _ in 0..ROUNDS {
        let _ = store
            .apply_lock_event(id, LockCounter::Password, &rule(), &LockEvent::Attempt, T0)
            .unwrap();
        let _ = store
            .apply_lock_event(
                id,
                LockCounter::Password,
                &rule(),
                &LockEvent::Failure { reserved_in: 0 },
                T0,
            )
            .unwrap();
    }
    let won = store
        .consume_temporary_password(id, &StoredHash::new("$x$temp"), T0)
        .unwrap();
    u32::from(won == Consumed::Now)
}

#[test]
fn two_processes_lose_no_update() {
    if let Ok(spec) = std::env::var("KEYWARD_CHILD_DB") {
        let (path, id) = spec.split_once('|').unwrap();
        let won = hammer(path, &UserId::parse(id).unwrap());
        println!("KEYWARD_CHILD_WON={won}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let path_text = path.to_str().unwrap().to_owned();
    let store = SqliteStore::open(&path).unwrap();
    let mut record = UserRecord::new(User::new(
        SiteId::new("s").unwrap(),
        "u",
        "U",
        "Ser",
        "staff",
        T0,
    ));
    record.password = Some(PasswordCredential::temporary(
        StoredHash::new("$x$temp"),
        T0,
        TemporaryMode::SingleUse,
        T0 + Duration::days(1),
        record.user.id.clone(),
        None,
    ));
    store.create_user(&record).unwrap();
    let id = record.user.id.clone();

    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "two_processes_lose_no_update",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KEYWARD_CHILD_DB", format!("{path_text}|{id}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let won_here = hammer(&path_text, &id);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the second process failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let won_there: u32 = stdout
        .lines()
        .find_map(|l| l.split("KEYWARD_CHILD_WON=").nth(1))
        .unwrap_or_else(|| panic!("the child did not report: {stdout}"))
        .trim()
        .parse()
        .unwrap();

    let state = store.get_user(&id).unwrap().unwrap().password_lock;
    assert_eq!(
        state.failed_attempts,
        2 * ROUNDS,
        "an increment was lost between processes"
    );
    assert_eq!(state.in_flight, 0);
    assert_eq!(
        won_here + won_there,
        1,
        "the single-use password was consumed {} times",
        won_here + won_there
    );
}
