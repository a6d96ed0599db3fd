//! A sign-in racing an administrator's change: the change wins. The administrator's write
//! lands while the guess is evaluated (a store that writes it when the attempt is reserved, or
//! when the TOTP step is accepted); the sign-in must not complete on state it never verified,
//! nor hand out a stamp that passes for the new state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use keyward::hash::Hasher;
use keyward::totp::{self, TotpConfig};
use keyward::user::{PasswordCredential, StoredHash, User, UserId, UserStatus};
use keyward::{DenialReason, InMemoryStore, Password, SignIn, TotpSecret, UserStore};
use support::spy::Spy;
use support::*;
use time::Duration;

type Write = Box<dyn FnOnce(&dyn UserStore) + Send>;
/// The write to make, and the operation that sets it off.
type Armed = Arc<Mutex<Option<(&'static str, Write)>>>;

/// A store that runs `write` the next time `operation` begins.
fn racing() -> (Arc<Spy>, Armed) {
    let inner: Arc<dyn UserStore> = Arc::new(InMemoryStore::new());
    let armed: Armed = Arc::default();
    let (store, trigger) = (inner.clone(), armed.clone());
    let hook = move |operation: &'static str| {
        let mut slot = trigger.lock().unwrap();
        if slot.as_ref().is_some_and(|(on, _)| *on == operation) {
            let (_, write) = slot.take().unwrap();
            drop(slot);
            write(&*store);
        }
        Ok(())
    };
    (Arc::new(Spy::new(inner, Box::new(hook))), armed)
}

fn another_password() -> StoredHash {
    let hash = Hasher::for_tests()
        .hash(&Password::new("someone-elses-choice-12"))
        .unwrap();
    StoredHash::new(hash.as_str())
}

fn assert_denied_changed(f: &Fx, outcome: SignIn, user: &UserId) {
    let SignIn::Denied(denial) = outcome else {
        panic!("the sign-in completed on state it never verified: {outcome:?}");
    };
    assert_eq!(denial.reason(), DenialReason::AccountChanged);
    assert!(
        f.record(user).user.last_sign_in_at.is_none(),
        "no sign-in was recorded"
    );
}

#[test]
fn an_administrators_change_during_the_first_factor_wins() {
    let (store, armed) = racing();
    let f = fx_with(store.clone(), |b| b);
    type Change = Box<dyn Fn(UserId) -> Write>;
    let changes: Vec<(&str, Change)> = vec![
        (
            "password replaced",
            Box::new(|id| {
                Box::new(move |s: &dyn UserStore| {
                    let new = PasswordCredential::permanent(another_password(), T0);
                    s.set_password(&id, Some(&new)).unwrap();
                })
            }),
        ),
        (
            "disabled",
            Box::new(|id| {
                Box::new(move |s: &dyn UserStore| {
                    let mut user = s.get_user(&id).unwrap().unwrap().user;
                    user.status = UserStatus::Disabled;
                    s.update_profile(&user).unwrap();
                })
            }),
        ),
        (
            "authenticator turned on",
            Box::new(|id| {
                Box::new(move |s: &dyn UserStore| {
                    let mut totp = s.get_user(&id).unwrap().unwrap().totp;
                    totp.secret = Some(keyward::user::StoredSecret::new("sealed:v1:k1:AAAA"));
                    s.set_totp(&id, &totp).unwrap();
                })
            }),
        ),
    ];
    for (i, (what, change)) in changes.iter().enumerate() {
        let user: User = f.user(&format!("user{i}"));
        *armed.lock().unwrap() = Some(("apply_lock_event", change(user.id.clone())));
        let outcome = f.sign_in(&user.username, &Password::new(USER_PASSWORD));
        assert!(
            armed.lock().unwrap().is_none(),
            "{what}: the write did not race"
        );
        assert_denied_changed(&f, outcome, &user.id);
    }
}

#[test]
fn an_authenticator_reset_during_the_totp_step_wins() {
    let (store, armed) = racing();
    let f = fx_with(store.clone(), |b| b);
    let sam = f.user("sam");
    let secret = enroll(&f.kw, &sam.id);
    f.clock.advance(Duration::seconds(60));
    let pending = step!(f.sign_in_as("sam"), SignIn::TotpRequired);
    let id = sam.id.clone();
    let reset: Write = Box::new(move |s: &dyn UserStore| {
        let mut totp = s.get_user(&id).unwrap().unwrap().totp;
        totp.secret = None;
        totp.reset_pending = true;
        s.set_totp(&id, &totp).unwrap();
    });
    *armed.lock().unwrap() = Some(("accept_totp_step", reset));
    let secret = TotpSecret::from_bytes(secret);
    let code = totp::code_at(&TotpConfig::DEFAULT, &secret, f.kw.now()).unwrap();
    let outcome = f.kw.verify_totp(pending, &code).unwrap();
    assert_denied_changed(&f, outcome, &sam.id);
}
