//! Arbitrary text as a username: validation never panics; folding is idempotent and agrees
//! with the skeleton; a username that validates is created and found again by itself, by its
//! folded form, and refused a second time, case or compatibility forms notwithstanding.
#![no_main]

use std::sync::Arc;

use keyward::store::{fold, skeleton};
use keyward::user::{SiteId, User};
use keyward::{InMemoryStore, Keyward, UserStore};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Ok(name) = std::str::from_utf8(data) else {
        return;
    };
    let folded = fold(name);
    assert_eq!(fold(&folded), folded, "fold is idempotent");
    assert_eq!(skeleton(&folded), skeleton(name), "the skeleton is of the folded form");
    let site = SiteId::new("fuzz").expect("a valid id");
    let user = User::new(site.clone(), name, "F", "S", "user", OffsetDateTime::UNIX_EPOCH);
    if user.validate().is_err() {
        return;
    }
    let kw = Keyward::builder(Arc::new(InMemoryStore::new())).build();
    let created = kw.create_user(None, user, None).expect("a valid user in an empty store");
    let store = kw.store();
    let found = |n: &str| store.find_user(&site, n).expect("memory").map(|r| r.user.id);
    assert_eq!(found(name), Some(created.id.clone()));
    assert_eq!(found(&folded), Some(created.id.clone()));
    let again = User::new(site, name.to_uppercase(), "F", "S", "user", OffsetDateTime::UNIX_EPOCH);
    if again.validate().is_ok() && fold(&again.username) == folded {
        assert!(kw.create_user(None, again, None).is_err(), "a second {name:?}");
    }
});
