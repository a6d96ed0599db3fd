//! Security stamps: a session's stamp goes stale with every change of what the session rests
//! on (password, PIN, TOTP state, role, managed sites, status, lock), and stays current
//! through everything else; checking it is one store read and no hashing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use keyward::admin::IssueOptions;
use keyward::hash::Hasher;
use keyward::user::{Role, SiteId, User, UserStatus};
use keyward::{InMemoryStore, Keyward, Password, Pin, SecurityStamp, SessionCheck, SignIn};
use support::spy::Spy;
use support::*;
use time::Duration;

/// Signs `sam` in and returns the stamp the sign-in handed out.
fn signed_in(f: &Fx, username: &str) -> SecurityStamp {
    let done = step!(f.sign_in_as(username), SignIn::Authenticated);
    let stamp = done.stamp().clone();
    assert!(
        f.kw.check_session(&done.user().id, &stamp)
            .unwrap()
            .is_current()
    );
    stamp
}

fn is_current(f: &Fx, user: &User, stamp: &SecurityStamp) -> bool {
    f.kw.check_session(&user.id, stamp).unwrap().is_current()
}

/// Changes `user`'s profile straight in the store (the lifecycle API is not the point here).
fn change_profile(f: &Fx, user: &User, change: impl FnOnce(&mut User)) {
    let mut profile = f.record(&user.id).user;
    change(&mut profile);
    f.kw.store().update_profile(&profile).unwrap();
}

#[test]
fn every_change_a_session_rests_on_makes_its_stamp_stale() {
    let f = fx();
    type Change = Box<dyn Fn(&Fx, &User)>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "temporary password issued",
            Box::new(|f, u| {
                f.issue(&u.id, IssueOptions::generated()).unwrap();
            }),
        ),
        (
            "password reset by the user",
            Box::new(|f, u| {
                f.kw.request_password_reset(&f.site, &u.username).unwrap();
                let token = f.reset_token_to(u.email.as_deref().unwrap());
                let new = Password::new("a-brand-new-passphrase-77");
                let reset = f.kw.reset_password(&keyward::OneTimeCode::new(token), new);
                assert!(matches!(
                    reset.unwrap(),
                    keyward::recovery::PasswordReset::Done { .. }
                ));
            }),
        ),
        (
            "PIN set",
            Box::new(|f, u| {
                f.kw.set_pin(&f.admin.id, &u.id, Some(&Pin::new("4711")))
                    .unwrap()
            }),
        ),
        (
            "TOTP enrolled",
            Box::new(|f, u| {
                enroll(&f.kw, &u.id);
            }),
        ),
        (
            "role changed",
            Box::new(|f, u| change_profile(f, u, |p| p.role = Role::Moderator)),
        ),
        (
            "managed sites changed",
            Box::new(|f, u| {
                let south = SiteId::new("southfield").unwrap();
                change_profile(f, u, |p| p.managed_sites = vec![south]);
            }),
        ),
        (
            "disabled",
            Box::new(|f, u| change_profile(f, u, |p| p.status = UserStatus::Disabled)),
        ),
        (
            "locked by an administrator",
            Box::new(|f, u| f.kw.lock_user(&f.admin.id, &u.id, "lost badge").unwrap()),
        ),
        (
            "locked by failed attempts",
            Box::new(|f, u| {
                for _ in 0..5 {
                    let wrong = Password::new("not-the-password");
                    step!(f.sign_in(&u.username, &wrong), SignIn::Denied);
                }
                assert!(f.record(&u.id).password_lock.locked_at.is_some());
            }),
        ),
    ];
    for (i, (what, change)) in changes.iter().enumerate() {
        let user = f.user(&format!("user{i}"));
        let stamp = signed_in(&f, &user.username);
        change(&f, &user);
        assert!(
            !is_current(&f, &user, &stamp),
            "{what} left the stamp current"
        );
    }
}

#[test]
fn a_totp_reset_makes_the_stamp_of_a_totp_sign_in_stale() {
    let f = fx();
    let sam = f.user("sam");
    let secret = enroll(&f.kw, &sam.id);
    f.clock.advance(Duration::seconds(60));
    let pending = step!(f.sign_in_as("sam"), SignIn::TotpRequired);
    let code = keyward::totp::code_at(
        &keyward::totp::TotpConfig::DEFAULT,
        &keyward::TotpSecret::from_bytes(secret),
        f.kw.now(),
    )
    .unwrap();
    let done = step!(
        f.kw.verify_totp(pending, &code).unwrap(),
        SignIn::Authenticated
    );
    assert!(is_current(&f, &sam, done.stamp()));
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    assert!(!is_current(&f, &sam, done.stamp()));
}

#[test]
fn unlocking_and_removing_a_temporary_password_make_stamps_stale_too() {
    let f = fx();
    let sam = f.user("sam");
    // A temporary password signs in (admin-managed: no forced change), then is removed.
    let temporary = f.admin_managed_for(&sam.id);
    let done = step!(
        f.sign_in("sam", &Password::new(temporary.expose_secret())),
        SignIn::Authenticated
    );
    let stamp = done.stamp().clone();
    assert!(is_current(&f, &sam, &stamp));
    f.kw.remove_temporary_password(&f.admin.id, &sam.id)
        .unwrap();
    assert!(!is_current(&f, &sam, &stamp));

    // A stamp taken while an expired temporary lock was on record goes stale at the unlock.
    let kim = f.user("kim");
    let before = signed_in(&f, "kim");
    f.kw.lock_user(&f.admin.id, &kim.id, "checking").unwrap();
    let locked = f.record(&kim.id);
    let after_lock = f.kw.check_session(&kim.id, &before).unwrap();
    assert!(matches!(after_lock, SessionCheck::Stale));
    f.kw.unlock(&f.admin.id, &kim.id).unwrap();
    assert_ne!(f.record(&kim.id).password_lock, locked.password_lock);
    // The session from before the lock stays dead after the unlock.
    assert!(!is_current(&f, &kim, &before));
    let again = signed_in(&f, "kim");
    assert_ne!(again, before, "the stamp after the unlock is a new one");
}

#[test]
fn what_a_session_does_not_rest_on_leaves_the_stamp_current() {
    let f = fx();
    let sam = f.user("sam");
    let stamp = signed_in(&f, "sam");
    // A wrong guess (short of the lock), a sign-in on another device, a profile edit, time.
    let wrong = Password::new("not-the-password");
    step!(f.sign_in("sam", &wrong), SignIn::Denied);
    let other = signed_in(&f, "sam");
    assert_eq!(other, stamp, "a second sign-in hands out the same stamp");
    change_profile(&f, &sam, |p| p.forename = "Samuel".into());
    f.clock.advance(Duration::days(30));
    assert!(is_current(&f, &sam, &stamp));
    let SessionCheck::Current(user) = f.kw.check_session(&sam.id, &stamp).unwrap() else {
        panic!("stale");
    };
    assert_eq!(
        user.forename, "Samuel",
        "the check returns the user as stored now"
    );
}

#[test]
fn malformed_foreign_and_unknown_stamps_are_stale() {
    let f = fx();
    let sam = f.user("sam");
    let stamp = signed_in(&f, "sam");
    let text = stamp.as_str();
    let mut cases: Vec<String> = vec![
        String::new(),
        ".".into(),
        "k1".into(),
        "k1.".into(),
        "nokey.AAAA".into(),
        format!("{text}A"),
        text[..text.len() - 1].to_owned(),
        "x".repeat(10_000),
        format!("{text}\0"),
    ];
    // Every single-character change.
    for i in 0..text.len() {
        let mut bytes = text.as_bytes().to_vec();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        cases.push(String::from_utf8(bytes).unwrap());
    }
    for case in cases {
        let check =
            f.kw.check_session(&sam.id, &SecurityStamp::new(case.clone()));
        assert!(matches!(check, Ok(SessionCheck::Stale)), "{case:?}");
    }
    // Another user's stamp does not fit.
    let kim = f.user("kim");
    assert!(!is_current(&f, &kim, &stamp));
    // A deleted (unknown) user.
    let ghost = keyward::user::UserId::generate();
    assert!(!f.kw.check_session(&ghost, &stamp).unwrap().is_current());
    // Debug shows the key id, not the MAC.
    let debug = format!("{stamp:?}");
    let mac = text.split_once('.').unwrap().1;
    assert!(!debug.contains(mac), "{debug}");
}

#[test]
fn stamps_hold_across_servers_and_key_rotation_and_die_with_their_key() {
    let store: Arc<dyn keyward::UserStore> = Arc::new(InMemoryStore::new());
    let old = keyward::TotpSealer::new("s1", &[1; 32]).unwrap();
    let f = fx_with(store.clone(), |b| b.step_keys(old));
    let sam = f.user("sam");
    let stamp = signed_in(&f, "sam");
    let server = |keys| builder(store.clone()).step_keys(keys).build();
    // Another server with the same key.
    let same = server(keyward::TotpSealer::new("s1", &[1; 32]).unwrap());
    assert!(same.check_session(&sam.id, &stamp).unwrap().is_current());
    // After a rotation that keeps the old key as previous.
    let rotated = keyward::TotpSealer::new("s2", &[2; 32])
        .unwrap()
        .with_previous_key("s1", &[1; 32])
        .unwrap();
    let rotated = server(rotated);
    assert!(rotated.check_session(&sam.id, &stamp).unwrap().is_current());
    // Once the old key is gone, or on a server with another key under the same id.
    let dropped = server(keyward::TotpSealer::new("s2", &[2; 32]).unwrap());
    assert!(!dropped.check_session(&sam.id, &stamp).unwrap().is_current());
    let foreign = server(keyward::TotpSealer::new("s1", &[9; 32]).unwrap());
    assert!(!foreign.check_session(&sam.id, &stamp).unwrap().is_current());
}

#[test]
fn checking_a_stamp_is_one_store_read() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let hook = move |operation: &'static str| {
        counted.fetch_add(1, Ordering::SeqCst);
        assert_eq!(
            operation, "get_user",
            "checking a stamp only reads the user"
        );
        Ok(())
    };
    let spy = Arc::new(Spy::new(Arc::new(InMemoryStore::new()), Box::new(hook)));
    // Set up through the inner store, then count only the check.
    let keys = || keyward::TotpSealer::new("s1", &[3; 32]).unwrap();
    let kw = Keyward::builder(spy.inner.clone())
        .hasher(Hasher::for_tests())
        .step_keys(keys())
        .build();
    let user = User::new(site(), "sam", "Sam", "S", "student", kw.now());
    let user = kw
        .create_user(None, user, Some(Password::new(USER_PASSWORD)))
        .unwrap();
    let done = step!(
        kw.sign_in(&site(), "sam", &Password::new(USER_PASSWORD), None)
            .unwrap(),
        SignIn::Authenticated
    );
    // The same keys, on the counting store.
    let checker = Keyward::builder(spy.clone()).step_keys(keys()).build();
    calls.store(0, Ordering::SeqCst);
    assert!(
        checker
            .check_session(&user.id, done.stamp())
            .unwrap()
            .is_current()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
