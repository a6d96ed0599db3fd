//! A compare-and-swap that loses (someone changed the password between the service's read
//! and its write) is its own error, `Error::ChangedMeanwhile`, apart from a store's uniqueness
//! `Conflict`; nothing of the lost change is written, its audit event included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use keyward::admin::IssueOptions;
use keyward::audit::{AuditAction, AuditQuery};
use keyward::store::StoreError;
use keyward::user::{PasswordCredential, StoredHash, User, UserId};
use keyward::{Error, InMemoryStore, Password, UserStore};
use support::spy::Spy;
use support::*;

/// A store that, the next time a recorded change begins, first replaces the password of the
/// user it was armed with: the race an administrator loses to another.
fn racing_store() -> (Arc<Spy>, Arc<Mutex<Option<UserId>>>) {
    let inner: Arc<dyn UserStore> = Arc::new(InMemoryStore::new());
    let armed: Arc<Mutex<Option<UserId>>> = Arc::default();
    let (writer, trigger) = (inner.clone(), armed.clone());
    let hook = move |operation: &'static str| {
        let armed = (operation == "change_recorded").then(|| trigger.lock().unwrap().take());
        if let Some(id) = armed.flatten() {
            let other = PasswordCredential::permanent(
                StoredHash::new("$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$b3RoZXJoYXNo"),
                T0,
            );
            writer.set_password(&id, Some(&other))?;
        }
        Ok(())
    };
    (Arc::new(Spy::new(inner, Box::new(hook))), armed)
}

#[test]
fn a_lost_compare_and_swap_is_changed_meanwhile_and_writes_nothing() {
    let (store, armed) = racing_store();
    let f = fx_with(store.clone(), |b| b);
    let sam = f.user("sam");
    *armed.lock().unwrap() = Some(sam.id.clone());
    let err = f.issue(&sam.id, IssueOptions::generated()).unwrap_err();
    assert!(
        matches!(err, Error::ChangedMeanwhile { what: "password" }),
        "{err:?}"
    );
    assert!(err.to_string().contains("changed meanwhile"), "{err}");
    // The other writer's password stands; no temporary password and no event were written.
    let record = f.record(&sam.id);
    assert!(record.password.unwrap().temporary.is_none());
    let events = f.audit(&AuditQuery::default().action(AuditAction::TemporaryPasswordSet));
    assert!(events.items.is_empty(), "{:?}", events.items);
    // A taken username is the store's uniqueness conflict, a different error.
    let twin = User::new(f.site.clone(), "sam", "Sam", "Twin", "student", T0);
    let taken =
        f.kw.create_user(Some(&f.admin.id), twin, Some(Password::new(USER_PASSWORD)))
            .unwrap_err();
    assert!(
        matches!(taken, Error::Store(StoreError::Conflict { .. })),
        "{taken:?}"
    );
}
