//! Migration: imported temporary passwords end to end, setting an imported hash on an existing
//! user, and the resumable job that wraps fast legacy hashes at rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use keyward::admin::CancelToken;
use keyward::audit::{AuditAction, AuditOutcome, AuditQuery};
use keyward::migrate::{NO_EXPIRY, WrapOptions, WrapProgress};
use keyward::signin::PasswordChange;
use keyward::store::StoreError;
use keyward::user::{Role, User, UserId};
use keyward::{DenialReason, Error, HashingMethod, ImportRecord, InMemoryStore, Password, SignIn};
use support::spy::Spy;
use support::{Fx, T0, USER_PASSWORD, fx};
use time::Duration;

/// Hashes of `USER_PASSWORD`, made by libxcrypt (crypt.crypt) and passlib 1.7.4.
const MD5_CRYPT: &str = "$1$kwsalt01$hi87xsDtnj7kS1nc0PCYN.";
const PHPASS: &str = "$P$6kwsalt01rgZTHqrTcLuGjHefb2tQW0";
const MD5_HEX: &str = "2a76ad29e0c5cb48aacb1b7c7f351f79";
const SSHA: &str = "{SSHA}HE762Ouoahy5/DlXnG+WZcSSNVBrd3Nh";
const DES: &str = "abef9PPqvxqFg";
const BCRYPT: &str = "$2b$04$abcdefghijklmnopqrstuuYv2uDRJ0u3667AzDo6lVJaI16Mn1EIW";

fn temporary(hash: &str) -> ImportRecord {
    ImportRecord {
        is_temporary_password: true,
        ..ImportRecord::new(hash)
    }
}

fn imported(f: &Fx, username: &str, record: &ImportRecord) -> User {
    let user = User::new(f.site.clone(), username, "Sam", username, "student", T0);
    f.kw.import_user(user, record).unwrap()
}

fn stored_hash(f: &Fx, user: &UserId) -> String {
    f.record(user).password.unwrap().hash.as_str().to_owned()
}

#[test]
fn an_imported_temporary_password_forces_a_change_at_first_sign_in() {
    let f = fx();
    imported(&f, "sam", &temporary(MD5_CRYPT));
    let pw = Password::new(USER_PASSWORD);
    let pending = step!(f.sign_in("sam", &pw), SignIn::PasswordChangeRequired);
    let new = "quartz-meadow-signal-77";
    let changed =
        f.kw.complete_password_change(pending, Password::new(new))
            .unwrap();
    let PasswordChange::Changed(outcome) = changed else {
        panic!("expected the change to go through, got {changed:?}")
    };
    assert!(matches!(outcome, SignIn::Authenticated(_)));
    // The imported password was single-use; the new one is a plain argon2id password.
    let again = step!(f.sign_in("sam", &pw), SignIn::Denied);
    assert_ne!(again.reason(), DenialReason::UnknownUser);
    step!(f.sign_in("sam", &Password::new(new)), SignIn::Authenticated);
    let user = f.kw.store().find_user(&f.site, "sam").unwrap().unwrap();
    assert!(stored_hash(&f, &user.user.id).starts_with("$argon2id$"));
}

#[test]
fn an_imported_temporary_password_expires_unless_the_import_says_it_never_does() {
    let f = fx();
    let expiring = imported(&f, "sam", &temporary(MD5_CRYPT));
    let lasting = ImportRecord {
        temporary_password_never_expires: true,
        ..temporary(MD5_CRYPT)
    };
    let forever = imported(&f, "kim", &lasting);
    let expires = |u: &User| {
        f.record(&u.id)
            .password
            .unwrap()
            .temporary
            .unwrap()
            .expires_at
    };
    assert_eq!(expires(&forever), NO_EXPIRY);
    assert!(expires(&expiring) < T0 + Duration::days(365));
    f.clock.advance(Duration::days(3650));
    let pw = Password::new(USER_PASSWORD);
    let denied = step!(f.sign_in("sam", &pw), SignIn::Denied);
    assert_eq!(denied.reason(), DenialReason::TemporaryPasswordExpired);
    step!(f.sign_in("kim", &pw), SignIn::PasswordChangeRequired);
}

#[test]
fn never_expires_needs_a_temporary_password() {
    let record = ImportRecord {
        temporary_password_never_expires: true,
        ..ImportRecord::new(MD5_CRYPT)
    };
    let f = fx();
    let user = User::new(f.site.clone(), "sam", "Sam", "S", "student", T0);
    let err = f.kw.import_user(user, &record).unwrap_err();
    let Error::Import(err) = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.field(), "temporary_password_never_expires");
}

#[test]
fn an_administrator_sets_an_imported_hash_on_an_existing_user() {
    let f = fx();
    let sam = f.user("sam");
    let record = ImportRecord {
        hashing_method: Some(HashingMethod::Wordpress),
        ..ImportRecord::new(PHPASS)
    };
    f.kw.set_imported_password(&f.admin.id, &sam.id, &record)
        .unwrap();
    assert_eq!(stored_hash(&f, &sam.id), PHPASS);
    // The old password is gone; the imported one signs in and is upgraded.
    step!(
        f.sign_in("sam", &Password::new("river-lantern-copper-59")),
        SignIn::Denied
    );
    let ok = step!(f.sign_in_as("sam"), SignIn::Authenticated);
    assert!(ok.hash_upgraded());
    assert!(stored_hash(&f, &sam.id).starts_with("$argon2id$"));
    let events = f.audit(&AuditQuery::default().action(AuditAction::ImportedPasswordSet));
    let event = events.items.last().unwrap();
    assert_eq!(event.outcome, AuditOutcome::Succeeded);
    assert_eq!(event.details.as_deref(), Some("imported phpass hash"));
}

#[test]
fn setting_an_imported_hash_is_permission_checked_and_validated() {
    let f = fx();
    let sam = f.user("sam");
    let before = stored_hash(&f, &sam.id);
    let moderator = User::new(f.site.clone(), "mo", "Mo", "Mod", "staff", T0)
        .with_role(Role::Moderator)
        .with_managed_sites(vec![f.site.clone()]);
    let moderator =
        f.kw.create_user(Some(&f.admin.id), moderator, None)
            .unwrap();
    let err =
        f.kw.set_imported_password(&moderator.id, &sam.id, &ImportRecord::new(MD5_CRYPT))
            .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied(_)), "{err:?}");
    let denied = f.audit(&AuditQuery::default().action(AuditAction::ImportedPasswordSet));
    assert_eq!(denied.items.last().unwrap().outcome, AuditOutcome::Denied);
    // A bad record changes nothing and names its field.
    let bad = ImportRecord {
        salt: Some("other".into()),
        hashing_method: Some(HashingMethod::Crypt),
        ..ImportRecord::new(MD5_CRYPT)
    };
    let err =
        f.kw.set_imported_password(&f.admin.id, &sam.id, &bad)
            .unwrap_err();
    let Error::Import(err) = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.field(), "salt");
    assert_eq!(stored_hash(&f, &sam.id), before);
}

#[test]
fn a_salt_with_crypt_or_wordpress_must_be_the_one_inside() {
    let h = keyward::Hasher::for_tests();
    let with = |method, hash: &str, salt: &str| ImportRecord {
        hashing_method: Some(method),
        salt: Some(salt.into()),
        ..ImportRecord::new(hash)
    };
    let field = |r: &ImportRecord| h.import(r).map(drop).map_err(|e| e.field());
    assert_eq!(
        field(&with(HashingMethod::Crypt, MD5_CRYPT, "kwsalt01")),
        Ok(())
    );
    assert_eq!(field(&with(HashingMethod::Crypt, DES, "ab")), Ok(()));
    assert_eq!(
        field(&with(
            HashingMethod::Crypt,
            BCRYPT,
            "abcdefghijklmnopqrstuu"
        )),
        Ok(())
    );
    assert_eq!(
        field(&with(HashingMethod::Wordpress, PHPASS, "kwsalt01")),
        Ok(())
    );
    assert_eq!(
        field(&with(HashingMethod::Crypt, MD5_CRYPT, "kwsalt02")),
        Err("salt")
    );
    assert_eq!(
        field(&with(HashingMethod::Wordpress, MD5_HEX, "x")),
        Err("salt")
    );
    let placed = ImportRecord {
        salt_position: Some(keyward::SaltPosition::Prefix),
        ..with(HashingMethod::Crypt, MD5_CRYPT, "kwsalt01")
    };
    assert_eq!(field(&placed), Err("salt_position"));
    // Without a method a salt still needs one.
    let bare = ImportRecord {
        salt: Some("kwsalt01".into()),
        ..ImportRecord::new(MD5_CRYPT)
    };
    assert_eq!(field(&bare), Err("salt"));
}

/// Users with one hash each, imported permanently; returns them in creation order.
fn cohort(f: &Fx) -> Vec<(User, &'static str)> {
    let hashes = [MD5_CRYPT, PHPASS, MD5_HEX, SSHA, DES, BCRYPT];
    let mut users = Vec::new();
    for (i, hash) in hashes.into_iter().enumerate() {
        let user = imported(f, &format!("u{i}"), &ImportRecord::new(hash));
        users.push((user, hash));
    }
    users
}

#[test]
fn the_wrap_job_protects_fast_hashes_and_keeps_them_verifying() {
    let f = fx();
    let users = cohort(&f);
    let argon_user = f.user("native");
    let mut seen = Vec::new();
    let mut on_progress = |p: WrapProgress| seen.push(p);
    let options = WrapOptions::new().batch(2).on_progress(&mut on_progress);
    let report =
        f.kw.wrap_fast_hashes(Some(&f.admin.id), &f.site, options)
            .unwrap();
    // Fast: md5-crypt, phpass, md5, {SSHA}, DES; not fast: bcrypt, and the argon2 users.
    assert_eq!(report.wrapped, 5, "{report}");
    assert_eq!(report.not_fast, 3, "{report}"); // bcrypt, the native user, the admin
    assert_eq!(report.examined, 8);
    assert!(!report.cancelled);
    assert_eq!(seen.len(), 8);
    assert_eq!(seen.last().map(|p| p.examined), Some(8));
    for (user, hash) in &users {
        let now = stored_hash(&f, &user.id);
        if *hash == BCRYPT {
            assert_eq!(now, BCRYPT);
        } else {
            assert!(now.starts_with("$keyward-wrapped$v=1$"), "{now}");
            assert!(!now.contains(&hash[hash.len() - 10..]), "{now}");
        }
    }
    assert!(stored_hash(&f, &argon_user.id).starts_with("$argon2id$"));
    // A rerun has nothing left to do.
    let again =
        f.kw.wrap_fast_hashes(None, &f.site, WrapOptions::new())
            .unwrap();
    assert_eq!(again.wrapped, 0);
    // Wrapped users sign in with their old password, once more upgraded to plain argon2id.
    for (user, _) in &users {
        let ok = step!(f.sign_in_as(&user.username), SignIn::Authenticated);
        assert!(ok.hash_upgraded());
        assert!(stored_hash(&f, &user.id).starts_with("$argon2id$"));
        step!(
            f.sign_in(&user.username, &Password::new("wrong-password-0")),
            SignIn::Denied
        );
    }
    // One event per page: four pages of two, then the rerun's single page.
    let events = f.audit(&AuditQuery::default().action(AuditAction::FastHashesWrapped));
    let details: Vec<&str> = (events.items.iter())
        .map(|e| e.details.as_deref().unwrap())
        .collect();
    assert_eq!(details.len(), 5, "{details:?}");
    let wrapped: u64 = (details.iter().take(4))
        .map(|d| count_in(d, "wrapped"))
        .sum();
    assert_eq!(wrapped, 5, "{details:?}");
    assert!(details[0].starts_with("page at 0: "), "{details:?}");
    assert!(details[4].contains("wrapped=0"), "{details:?}");
}

/// The value of `name=` in an audit event's details.
fn count_in(details: &str, name: &str) -> u64 {
    let found = (details.split("; "))
        .find_map(|part| part.rsplit(": ").next()?.strip_prefix(&format!("{name}=")));
    found
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{details}"))
}

#[test]
fn the_wrap_job_can_be_cancelled_and_resumed() {
    let f = fx();
    let users = cohort(&f);
    let token = CancelToken::new();
    let cancel = token.clone();
    let mut on_progress = |p: WrapProgress| {
        if p.wrapped == 2 {
            cancel.cancel();
        }
    };
    let options = WrapOptions::new()
        .batch(3)
        .on_progress(&mut on_progress)
        .cancel_with(token);
    let first = f.kw.wrap_fast_hashes(None, &f.site, options).unwrap();
    assert!(first.cancelled);
    assert_eq!(first.wrapped, 2);
    let second =
        f.kw.wrap_fast_hashes(None, &f.site, WrapOptions::new())
            .unwrap();
    assert!(!second.cancelled);
    assert_eq!(first.wrapped + second.wrapped, 5);
    for (user, hash) in &users {
        assert_eq!(
            stored_hash(&f, &user.id).starts_with("$keyward-wrapped$"),
            *hash != BCRYPT
        );
    }
}

#[test]
fn the_wrap_job_skips_a_user_whose_password_changed_meanwhile() {
    let f = fx();
    let users = cohort(&f);
    let last = users[4].0.id.clone(); // DES, read in the same page as the first
    let store = f.store.clone();
    let admin = f.admin.id.clone();
    let kw = &f.kw;
    let mut changed = false;
    let mut on_progress = |_: WrapProgress| {
        if !changed {
            changed = true;
            let record = ImportRecord::new(BCRYPT);
            kw.set_imported_password(&admin, &last, &record).unwrap();
        }
    };
    let options = WrapOptions::new().batch(100).on_progress(&mut on_progress);
    let report = f.kw.wrap_fast_hashes(None, &f.site, options).unwrap();
    assert_eq!(report.changed_meanwhile, 1, "{report}");
    assert_eq!(report.wrapped, 4, "{report}");
    let now = store.get_user(&last).unwrap().unwrap().password.unwrap();
    assert_eq!(now.hash.as_str(), BCRYPT);
}

#[test]
fn wrapping_at_import_is_a_hasher_setting() {
    let h = keyward::Hasher::for_tests().wrapping_fast_imports();
    assert!(h.wraps_fast_imports());
    for hash in [MD5_CRYPT, PHPASS, MD5_HEX, SSHA, DES] {
        let stored = h.import(&ImportRecord::new(hash)).unwrap();
        assert_eq!(stored.scheme(), "wrapped-legacy", "{hash}");
        let pw = Password::new(USER_PASSWORD);
        assert!(h.verify(&pw, &stored).unwrap().is_match(), "{hash}");
        assert!(
            !h.verify(&Password::new("nope"), &stored)
                .unwrap()
                .is_match()
        );
    }
    assert_eq!(
        h.import(&ImportRecord::new(BCRYPT)).unwrap().scheme(),
        "bcrypt"
    );
}

#[test]
fn an_existing_user_gets_no_never_expiring_temporary_password() {
    // Finding: NO_EXPIRY went around the 366-day cap on temporary passwords.
    let f = fx();
    let sam = f.user("sam");
    let before = f.record(&sam.id).password;
    let lasting = ImportRecord {
        temporary_password_never_expires: true,
        ..temporary(MD5_CRYPT)
    };
    let err =
        f.kw.set_imported_password(&f.admin.id, &sam.id, &lasting)
            .unwrap_err();
    let Error::Import(err) = err else {
        panic!("{err:?}")
    };
    assert_eq!(err.field(), "temporary_password_never_expires");
    assert_eq!(f.record(&sam.id).password, before);
    // An expiring temporary password is fine, within the cap.
    f.kw.set_imported_password(&f.admin.id, &sam.id, &temporary(MD5_CRYPT))
        .unwrap();
    let temporary = f.record(&sam.id).password.unwrap().temporary.unwrap();
    let max = Duration::days(keyward::policy::MAX_TEMPORARY_LIFETIME_DAYS);
    assert!(temporary.expires_at <= T0 + max);
}

#[test]
fn the_wrap_job_never_touches_a_temporary_password() {
    let f = fx();
    let temps: Vec<User> = [MD5_CRYPT, PHPASS, MD5_HEX]
        .into_iter()
        .enumerate()
        .map(|(i, hash)| imported(&f, &format!("t{i}"), &temporary(hash)))
        .collect();
    let issued = f.user("issued");
    f.issue(&issued.id, keyward::admin::IssueOptions::default())
        .unwrap();
    let permanent = imported(&f, "p0", &ImportRecord::new(MD5_HEX));
    let before: Vec<_> = (temps.iter().chain([&issued]))
        .map(|u| f.record(&u.id).password.unwrap())
        .collect();
    let report =
        f.kw.wrap_fast_hashes(None, &f.site, WrapOptions::new())
            .unwrap();
    assert_eq!(report.temporary, 4, "{report}");
    assert_eq!(report.wrapped, 1, "{report}");
    let after: Vec<_> = (temps.iter().chain([&issued]))
        .map(|u| f.record(&u.id).password.unwrap())
        .collect();
    assert_eq!(after, before);
    assert!(stored_hash(&f, &permanent.id).starts_with("$keyward-wrapped$"));
}

#[test]
fn a_temporary_password_consumed_while_the_job_runs_stays_consumed() {
    // Finding: the job wrote back the credential it had read, reviving a single-use
    // temporary password consumed by a sign-in between its read and its write.
    let f = fx();
    cohort(&f);
    let temp = imported(&f, "zz-temp", &temporary(MD5_CRYPT));
    let pw = Password::new(USER_PASSWORD);
    let mut consumed = false;
    let mut on_progress = |_: WrapProgress| {
        if !consumed {
            consumed = true;
            // The page is read: the sign-in consumes the password the job holds a copy of.
            step!(f.sign_in("zz-temp", &pw), SignIn::PasswordChangeRequired);
        }
    };
    let options = WrapOptions::new().batch(100).on_progress(&mut on_progress);
    let report = f.kw.wrap_fast_hashes(None, &f.site, options).unwrap();
    assert!(consumed);
    let credential = f.record(&temp.id).password.unwrap();
    assert!(credential.temporary.unwrap().consumed_at.is_some());
    let again = step!(f.sign_in("zz-temp", &pw), SignIn::Denied);
    assert_eq!(again.reason(), DenialReason::TemporaryPasswordUsed);
    assert_eq!(credential.hash.as_str(), MD5_CRYPT);
    assert_eq!(report.temporary, 1, "{report}");
}

#[test]
fn a_wrap_job_stopped_by_an_error_has_audited_what_it_wrote() {
    // Finding: the job audited only at its end, so an error midway left rewritten users
    // with nothing in the audit trail.
    let store = FailingStore::new(2);
    let f = support::fx_with(store.spy.clone(), |b| b);
    let users = cohort(&f);
    store.arm();
    let options = WrapOptions::new().batch(4);
    let err = f.kw.wrap_fast_hashes(None, &f.site, options).unwrap_err();
    assert!(matches!(err, Error::Store(_)), "{err:?}");
    let wrapped = (users.iter())
        .filter(|(u, _)| stored_hash(&f, &u.id).starts_with("$keyward-wrapped$"))
        .count();
    assert_eq!(wrapped, 2);
    let events = f.audit(&AuditQuery::default().action(AuditAction::FastHashesWrapped));
    let details: Vec<&str> = (events.items.iter())
        .map(|e| e.details.as_deref().unwrap())
        .collect();
    let audited: u64 = details.iter().map(|d| count_in(d, "wrapped")).sum();
    assert_eq!(audited, 2, "{details:?}");
    assert!(
        details.last().unwrap().ends_with("; stopped by an error"),
        "{details:?}"
    );
    // A rerun picks up where it stopped.
    store.disarm();
    let rest =
        f.kw.wrap_fast_hashes(None, &f.site, WrapOptions::new())
            .unwrap();
    assert_eq!(rest.wrapped, 3, "{rest}");
}

/// A memory store whose `replace_password` fails once `allowed` writes have gone through
/// after [`arm`](Self::arm).
#[derive(Debug)]
struct FailingStore {
    spy: Arc<Spy>,
    state: Arc<Arming>,
}

#[derive(Debug, Default)]
struct Arming {
    armed: AtomicBool,
    writes: AtomicU32,
}

impl FailingStore {
    fn new(allowed: u32) -> Self {
        let state = Arc::new(Arming::default());
        let arming = state.clone();
        let hook = move |operation: &'static str| {
            if operation == "replace_password"
                && arming.armed.load(Ordering::SeqCst)
                && arming.writes.fetch_add(1, Ordering::SeqCst) >= allowed
            {
                return Err(StoreError::Corrupt {
                    location: "test",
                    reason: "injected failure".into(),
                });
            }
            Ok(())
        };
        let spy = Arc::new(Spy::new(Arc::new(InMemoryStore::new()), Box::new(hook)));
        Self { spy, state }
    }

    fn arm(&self) {
        self.state.writes.store(0, Ordering::SeqCst);
        self.state.armed.store(true, Ordering::SeqCst);
    }

    fn disarm(&self) {
        self.state.armed.store(false, Ordering::SeqCst);
    }
}
