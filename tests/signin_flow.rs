//! The sign-in flow end to end on the in-memory store: uniform denials, hash upgrade,
//! temporary passwords, SSO outage, PINs, lockout and its bound under parallel attack.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keyward::admin::IssueOptions;
use keyward::audit::{AuditAction, AuditOutcome, AuditQuery};
use keyward::hash::{HashError, HashLimits, HashScheme, Hasher, ImportRecord, SchemeMatch};
use keyward::lockout::{LockoutMode, LockoutRule};
use keyward::signin::{FIRST_FACTOR_MESSAGE, PasswordChange};
use keyward::store::{UserQuery, UserRecord};
use keyward::user::{PasswordCredential, StoredHash, TemporaryMode, User};
use keyward::{DenialReason, Error, InMemoryStore, Keyward, Password, Pin, SignIn, UserStore};
use support::*;
use time::Duration;

fn denied(outcome: SignIn) -> keyward::Denial {
    step!(outcome, SignIn::Denied)
}

fn authenticated(outcome: SignIn) -> keyward::signin::Authenticated {
    step!(outcome, SignIn::Authenticated)
}

#[test]
fn first_factor_denials_look_alike_but_carry_the_reason() {
    let f = fx();
    let sam = f.user("sam");
    let pw = |s: &str| Password::new(s);
    let unknown = denied(f.sign_in("nobody", &pw(USER_PASSWORD)));
    let wrong = denied(f.sign_in("sam", &pw("wrong-password-123")));
    assert_eq!(unknown.reason(), DenialReason::UnknownUser);
    assert_eq!(wrong.reason(), DenialReason::WrongPassword);
    assert_eq!(wrong.user(), Some(&sam.id));
    assert_eq!(unknown.user_message(), FIRST_FACTOR_MESSAGE);
    assert_eq!(wrong.user_message(), FIRST_FACTOR_MESSAGE);
    // The audit trail has the precise reasons.
    let events = f.audit(&AuditQuery::default().action(AuditAction::SignIn));
    let reasons: Vec<_> = events
        .items
        .iter()
        .map(|e| e.reason.clone().unwrap())
        .collect();
    assert_eq!(reasons, ["unknown_user", "wrong_password"]);
    assert!(
        events
            .items
            .iter()
            .all(|e| e.outcome == AuditOutcome::Denied)
    );
    // Usernames are case-insensitive.
    let ok = authenticated(f.sign_in("SAM", &pw(USER_PASSWORD)));
    assert_eq!(ok.user().id, sam.id);
    assert!(!ok.hash_upgraded());
    assert_eq!(ok.user().last_sign_in_at, Some(T0));
}

#[test]
fn legacy_hash_is_upgraded_at_the_next_sign_in() {
    let f = fx();
    // md5-crypt of "password" with salt "saltsalt" (libxcrypt), see tests/vectors.
    let user = User::new(f.site.clone(), "legacy", "Lee", "Gacy", "staff", T0);
    let user =
        f.kw.import_user(
            user,
            &ImportRecord::new("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"),
        )
        .unwrap();
    let wrong = denied(f.sign_in("legacy", &Password::new("passwore")));
    assert_eq!(wrong.reason(), DenialReason::WrongPassword);
    let ok = authenticated(f.sign_in("legacy", &Password::new("password")));
    assert!(ok.hash_upgraded());
    let stored = f.record(&user.id).password.unwrap().hash;
    assert!(stored.as_str().starts_with("$argon2id$"), "{stored:?}");
    let again = authenticated(f.sign_in("legacy", &Password::new("password")));
    assert!(!again.hash_upgraded());
    let upgrades = f.audit(&AuditQuery::for_user(user.id).action(AuditAction::HashUpgraded));
    assert_eq!(upgrades.total, 1);
}

#[test]
fn a_wrong_import_is_refused_before_anything_is_stored() {
    let f = fx();
    let user = User::new(f.site.clone(), "bad", "B", "Ad", "staff", T0);
    let mut record = ImportRecord::new("5f4dcc3b5aa765d61d8327deb882cf99");
    record.salt = Some("pepper".into()); // a salt without a position
    let err = f.kw.import_user(user, &record).unwrap_err();
    assert!(matches!(err, Error::Import(_)), "{err:?}");
    assert!(f.kw.store().find_user(&f.site, "bad").unwrap().is_none());
}

/// An in-house legacy format registered by the application: `$rot$` + the password with
/// every byte plus one. Counts its verifications.
#[derive(Debug, Default)]
struct Rot {
    verifications: Arc<AtomicUsize>,
}

impl HashScheme for Rot {
    fn name(&self) -> &'static str {
        "rot"
    }
    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$rot$")
    }
    fn check(&self, stored: &str, _: &HashLimits) -> Result<(), HashError> {
        if stored.len() > 5 + 256 {
            return Err(HashError::Malformed {
                scheme: "rot",
                reason: "too long",
            });
        }
        Ok(())
    }
    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        self.check(stored, limits)?;
        self.verifications.fetch_add(1, Ordering::SeqCst);
        // Give racing threads a chance to interleave.
        std::thread::sleep(std::time::Duration::from_millis(2));
        let shifted: Vec<u8> = password.iter().map(|b| b.wrapping_add(1)).collect();
        Ok((shifted == stored.as_bytes()[5..]).into())
    }
}

fn rot(password: &str) -> StoredHash {
    let shifted: String = password.bytes().map(|b| char::from(b + 1)).collect();
    StoredHash::new(format!("$rot${shifted}"))
}

#[test]
fn a_custom_scheme_signs_in_and_upgrades() {
    let scheme = Rot::default();
    let f = fx_on(
        Arc::new(InMemoryStore::new()),
        Hasher::for_tests().with_scheme(scheme),
    );
    let mut record = UserRecord::new(User::new(f.site.clone(), "acme", "A", "Cme", "staff", T0));
    record.password = Some(PasswordCredential::permanent(rot("hunter2-legacy"), T0));
    f.kw.store().create_user(&record).unwrap();
    let ok = authenticated(f.sign_in("acme", &Password::new("hunter2-legacy")));
    assert!(ok.hash_upgraded());
    let stored = f.record(&record.user.id).password.unwrap().hash;
    assert!(stored.as_str().starts_with("$argon2id$"));
}

/// 64 parallel wrong passwords on one account over two app servers (two store handles, two
/// services): at most 5 passwords are evaluated before the lock holds.
pub fn parallel_attack_is_bounded(server_a: Arc<dyn UserStore>, server_b: Arc<dyn UserStore>) {
    let verifications = Arc::new(AtomicUsize::new(0));
    let make = |store: Arc<dyn UserStore>| {
        let hasher = Hasher::for_tests().with_scheme(Rot {
            verifications: verifications.clone(),
        });
        Keyward::builder(store).hasher(hasher).build()
    };
    let (a, b) = (make(server_a), make(server_b));
    let mut record = UserRecord::new(User::new(site(), "target", "T", "Arget", "staff", T0));
    record.password = Some(PasswordCredential::permanent(rot("the-right-password"), T0));
    a.store().create_user(&record).unwrap();
    let locked_denials = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for i in 0..64 {
            let kw = if i % 2 == 0 { &a } else { &b };
            let locked_denials = &locked_denials;
            s.spawn(move || {
                let outcome = kw
                    .sign_in(
                        &site(),
                        "target",
                        &Password::new(format!("guess-{i}")),
                        None,
                    )
                    .unwrap();
                let d = denied(outcome);
                if d.reason() != DenialReason::WrongPassword {
                    locked_denials.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    let evaluated = verifications.load(Ordering::SeqCst);
    assert!(evaluated <= 5, "{evaluated} passwords evaluated");
    assert_eq!(
        evaluated, 5,
        "exactly the allowed number should have been tried"
    );
    assert_eq!(locked_denials.load(Ordering::SeqCst), 64 - 5);
    let state = a
        .store()
        .get_user(&record.user.id)
        .unwrap()
        .unwrap()
        .password_lock;
    assert!(state.is_permanently_locked(), "{state:?}");
    // Now even the right password is refused without evaluation.
    let d = denied(
        b.sign_in(
            &site(),
            "target",
            &Password::new("the-right-password"),
            None,
        )
        .unwrap(),
    );
    assert!(matches!(d.reason(), DenialReason::Locked { until: None }));
    assert_eq!(verifications.load(Ordering::SeqCst), 5);
}

#[test]
fn parallel_attack_is_bounded_in_memory() {
    let store = InMemoryStore::new();
    parallel_attack_is_bounded(Arc::new(store.clone()), Arc::new(store));
}

#[test]
fn concurrent_legitimate_sign_ins_are_not_refused() {
    let f = fx();
    f.user("busy");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                authenticated(f.sign_in_as("busy"));
            });
        }
    });
}

#[test]
fn lockout_lock_list_and_unlock() {
    let f = fx();
    let sam = f.user("sam");
    for i in 0..5 {
        let d = denied(f.sign_in("sam", &Password::new(format!("nope-{i}"))));
        assert_eq!(d.reason(), DenialReason::WrongPassword);
    }
    // Locked: the right password is refused, with the same message.
    let d = denied(f.sign_in_as("sam"));
    assert_eq!(d.reason(), DenialReason::Locked { until: None });
    assert_eq!(d.user_message(), FIRST_FACTOR_MESSAGE);
    let record = f.record(&sam.id);
    assert_eq!(record.password_lock.locked_at, Some(T0));
    assert_eq!(record.password_lock.failed_attempts, 5);
    // Admins list locked users.
    let locked =
        f.kw.search_users(
            &f.admin.id,
            &UserQuery::new(f.site.clone(), f.kw.now()).locked_only(),
        )
        .unwrap();
    assert_eq!(
        locked
            .items
            .iter()
            .map(|r| r.user.username.as_str())
            .collect::<Vec<_>>(),
        ["sam"]
    );
    // Time never lifts the default lock.
    f.clock.advance(Duration::days(30));
    assert!(matches!(
        denied(f.sign_in_as("sam")).reason(),
        DenialReason::Locked { .. }
    ));
    f.kw.unlock(&f.admin.id, &sam.id).unwrap();
    let record = f.record(&sam.id);
    assert_eq!(record.password_lock.unlocked_by, Some(f.admin.id.clone()));
    assert_eq!(
        record.password_lock.unlocked_at,
        Some(T0 + Duration::days(30))
    );
    assert_eq!(record.password_lock.failed_attempts, 0);
    authenticated(f.sign_in_as("sam"));
    let unlocks = f.audit(&AuditQuery::for_user(sam.id).action(AuditAction::Unlocked));
    assert_eq!(unlocks.items[0].actor, Some(f.admin.id.clone()));
}

#[test]
fn temporary_locks_expire_at_fixed_times() {
    let store = Arc::new(InMemoryStore::new());
    let clock = Arc::new(keyward::ManualClock::new(T0));
    let rule = LockoutRule::new(
        3,
        Duration::hours(1),
        LockoutMode::Temporary {
            base: Duration::minutes(5),
            factor: 2,
            max: Duration::hours(1),
        },
    )
    .unwrap();
    let kw = builder(store)
        .clock(clock.clone())
        .lockout(Arc::new(rule))
        .build();
    let user = User::new(site(), "tim", "Tim", "Porary", "staff", T0);
    kw.create_user(None, user, Some(Password::new(USER_PASSWORD)))
        .unwrap();
    for _ in 0..3 {
        let _ = kw
            .sign_in(&site(), "tim", &Password::new("wrong-wrong-wrong"), None)
            .unwrap();
    }
    let until = T0 + Duration::minutes(5);
    clock.advance(Duration::minutes(5) - Duration::seconds(1));
    let d = denied(
        kw.sign_in(&site(), "tim", &Password::new(USER_PASSWORD), None)
            .unwrap(),
    );
    assert_eq!(d.reason(), DenialReason::Locked { until: Some(until) });
    clock.advance(Duration::seconds(1));
    authenticated(
        kw.sign_in(&site(), "tim", &Password::new(USER_PASSWORD), None)
            .unwrap(),
    );
}

#[test]
fn single_use_temporary_password_forces_a_change_once() {
    let f = fx();
    let sam = f.user("sam");
    let issued = f.issue(&sam.id, IssueOptions::generated()).unwrap();
    assert_eq!(issued.mode, TemporaryMode::SingleUse);
    assert_eq!(issued.expires_at, T0 + Duration::days(7));
    assert!(issued.entropy_bits.unwrap() > 60.0);
    let temporary = issued.password.unwrap();
    // The old password no longer works.
    assert_eq!(
        denied(f.sign_in_as("sam")).reason(),
        DenialReason::WrongPassword
    );
    // The listing shows the temporary password and its expiry.
    let listed =
        f.kw.search_users(
            &f.admin.id,
            &UserQuery::new(f.site.clone(), T0).temporary_password_only(),
        )
        .unwrap();
    assert_eq!(listed.total, 1);
    let info = listed.items[0].temporary.clone().unwrap();
    assert_eq!(info.expires_at, T0 + Duration::days(7));
    // Admin screens get no credential material.
    assert!(!format!("{:?}", listed.items[0]).contains("$argon2"));

    let pending = step!(
        f.sign_in("sam", &temporary.to_password()),
        SignIn::PasswordChangeRequired
    );
    // Dead after first use.
    assert_eq!(
        denied(f.sign_in("sam", &temporary.to_password())).reason(),
        DenialReason::TemporaryPasswordUsed
    );
    // The change must satisfy the policy and differ from the temporary password.
    let pending = match f
        .kw
        .complete_password_change(pending, Password::new("short"))
        .unwrap()
    {
        PasswordChange::Rejected(p, v) => {
            assert!(matches!(
                v,
                keyward::policy::PolicyViolation::TooShort { .. }
            ));
            p
        }
        other => panic!("{other:?}"),
    };
    let f_user = sam.clone();
    let _ = f_user;
    let same = Password::new(temporary.expose_secret());
    let pending = match f.kw.complete_password_change(pending, same).unwrap() {
        PasswordChange::Rejected(p, keyward::policy::PolicyViolation::SameAsTemporary) => p,
        PasswordChange::Rejected(_, v) => panic!("unexpected violation {v}"),
        other => panic!("{other:?}"),
    };
    match f
        .kw
        .complete_password_change(pending, Password::new("a-brand-new-passphrase"))
        .unwrap()
    {
        PasswordChange::Changed(SignIn::Authenticated(a)) => assert_eq!(a.user().id, sam.id),
        other => panic!("{other:?}"),
    }
    authenticated(f.sign_in("sam", &Password::new("a-brand-new-passphrase")));
}

#[test]
fn racing_sign_ins_consume_a_single_use_password_once() {
    let f = fx();
    let sam = f.user("sam");
    let temporary = f.temporary_for(&sam.id);
    let changes = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                if let SignIn::PasswordChangeRequired(_) =
                    f.sign_in("sam", &temporary.to_password())
                {
                    changes.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    assert_eq!(changes.load(Ordering::SeqCst), 1);
}

#[test]
fn expired_temporary_password_is_its_own_reason() {
    let f = fx();
    let sam = f.user("sam");
    let temporary = f.temporary_for(&sam.id);
    f.clock.advance(Duration::days(7));
    let d = denied(f.sign_in("sam", &temporary.to_password()));
    assert_eq!(d.reason(), DenialReason::TemporaryPasswordExpired);
    assert_eq!(d.user_message(), FIRST_FACTOR_MESSAGE);
    assert_eq!(
        d.reason().admin_hint(),
        Some("issue a new temporary password")
    );
}

#[test]
fn sso_outage_admin_managed_password_with_pin() {
    let f = fx();
    let user = User::new(f.site.clone(), "sso", "Sue", "Sso", "staff", T0).with_sso(true);
    let sue =
        f.kw.create_user(None, user, Some(Password::new(USER_PASSWORD)))
            .unwrap();
    f.kw.set_pin(&f.admin.id, &sue.id, Some(&Pin::new("4711")))
        .unwrap();
    // An SSO user has no standard login with a permanent password.
    let d = denied(f.sign_in_with_pin("sso", &Password::new(USER_PASSWORD), "4711"));
    assert_eq!(d.reason(), DenialReason::NoPasswordLogin);
    let temporary = f.admin_managed_for(&sue.id).to_password();
    // The PIN is still needed.
    assert_eq!(
        denied(f.sign_in("sso", &temporary)).reason(),
        DenialReason::WrongPin
    );
    assert_eq!(
        denied(f.sign_in_with_pin("sso", &temporary, "0000")).reason(),
        DenialReason::WrongPin
    );
    // Reusable.
    for _ in 0..3 {
        authenticated(f.sign_in_with_pin("sso", &temporary, "4711"));
    }
    // Removing it turns standard login off again.
    f.kw.remove_temporary_password(&f.admin.id, &sue.id)
        .unwrap();
    let d = denied(f.sign_in_with_pin("sso", &temporary, "4711"));
    assert_eq!(d.reason(), DenialReason::NoPasswordLogin);
    assert!(matches!(
        f.kw.remove_temporary_password(&f.admin.id, &sue.id),
        Err(Error::NoTemporaryPassword { .. })
    ));
}

#[test]
fn disabled_users_are_refused() {
    let f = fx();
    let sam = f.user("sam");
    f.disable(&sam.id);
    let d = denied(f.sign_in_as("sam"));
    assert_eq!(d.reason(), DenialReason::Disabled);
}

#[cfg(feature = "sqlite")]
#[test]
fn parallel_attack_is_bounded_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.db");
    // Two separate opens of one file: two app servers (or processes).
    let a = keyward::SqliteStore::open(&path).unwrap();
    let b = keyward::SqliteStore::open(&path).unwrap();
    parallel_attack_is_bounded(Arc::new(a), Arc::new(b));
}

#[cfg(feature = "postgres")]
#[test]
fn parallel_attack_is_bounded_on_postgres() {
    let Some(schema) = support::pg::TestSchema::new() else {
        return;
    };
    // Two pools on one schema: two app servers.
    parallel_attack_is_bounded(Arc::new(schema.open()), Arc::new(schema.open()));
}

#[test]
fn oversized_input_is_a_wrong_password_not_an_error() {
    let f = fx();
    let sam = f.user("sam");
    f.kw.set_pin(&f.admin.id, &sam.id, Some(&Pin::new("2468")))
        .unwrap();
    let huge = "x".repeat(5000);
    // An over-long password looks like any wrong password, for known and unknown users.
    let d = denied(f.sign_in_with_pin("sam", &Password::new(huge.clone()), "2468"));
    assert_eq!(d.reason(), DenialReason::WrongPassword);
    let d = denied(f.sign_in("nobody", &Password::new(huge.clone())));
    assert_eq!(d.reason(), DenialReason::UnknownUser);
    // An over-long PIN is a wrong PIN and settles its attempt (no slot left taken).
    let d = denied(f.sign_in_with_pin("sam", &Password::new(USER_PASSWORD), &huge));
    assert_eq!(d.reason(), DenialReason::WrongPin);
    let lock = f.record(&sam.id).password_lock;
    assert_eq!((lock.failed_attempts, lock.in_flight), (2, 0));
}

#[test]
fn the_failure_that_locks_says_so_in_its_event() {
    let f = fx();
    let sam = f.user("sam");
    for _ in 0..5 {
        step!(
            f.sign_in("sam", &Password::new("not-the-password")),
            SignIn::Denied
        );
    }
    let events = f.audit(&AuditQuery::for_user(sam.id.clone()).action(AuditAction::SignIn));
    let denials: Vec<_> = (events.items.iter())
        .filter(|e| e.outcome == AuditOutcome::Denied)
        .map(|e| (e.reason.as_deref(), e.details.as_deref()))
        .collect();
    let locking = Some("this failure locked the account");
    let mut expected = vec![(Some("wrong_password"), None); 4];
    expected.push((Some("wrong_password"), locking));
    assert_eq!(denials, expected);
}

/// An unknown username, a disabled account and a known account with a wrong password ask the
/// store for the same steps (find, reserve, settle), so that the store's time does not tell
/// them apart; the unknown and refused ones write nothing but their denial.
#[test]
fn refused_and_unknown_sign_ins_cost_the_store_what_a_wrong_password_does() {
    let calls: Arc<std::sync::Mutex<Vec<&'static str>>> = Arc::default();
    let log = calls.clone();
    let hook = move |op: &'static str| {
        log.lock().unwrap().push(op);
        Ok(())
    };
    let inner: Arc<dyn UserStore> = Arc::new(InMemoryStore::new());
    let spy = Arc::new(support::spy::Spy::new(inner.clone(), Box::new(hook)));
    let f = fx_with(spy, |b| b.pins(keyward::service::Pins::Off));
    let sam = f.user("sam");
    let gone = f.user("gone");
    f.kw.disable_user(&f.admin.id, &gone.id, "left").unwrap();
    let before = inner
        .search_users(&UserQuery::new(f.site.clone(), T0))
        .unwrap()
        .items;
    let steps = |username: &str| {
        calls.lock().unwrap().clear();
        let _ = step!(f.sign_in(username, &Password::new("wrong")), SignIn::Denied);
        calls.lock().unwrap().clone()
    };
    let known = steps("sam");
    let unknown = steps("nobody");
    let disabled = steps("gone");
    assert_eq!(
        known,
        vec!["find_user", "apply_lock_event", "change_recorded"]
    );
    // The same steps, then the denial (the known one's commits with its settle).
    let refused = vec![
        "find_user",
        "apply_lock_event",
        "change_recorded",
        "append_audit",
    ];
    assert_eq!(unknown, refused);
    assert_eq!(disabled, refused);
    // Nothing was written but the denials: the users are as they were (but sam's count).
    let after = inner
        .search_users(&UserQuery::new(f.site.clone(), T0))
        .unwrap()
        .items;
    assert_eq!(after.len(), before.len());
    for (a, b) in after.iter().zip(&before) {
        if a.user.id != sam.id {
            assert_eq!(a, b);
        }
    }
}
