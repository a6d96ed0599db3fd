//! Shared fixtures for the flow tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keyward::hash::Hasher;
use keyward::notify::{Outbox, Recipient};
use keyward::totp::TotpSealer;
use keyward::user::{Role, SiteId, User};
use keyward::{InMemoryStore, Keyward, ManualClock, Password, UserStore};
use time::OffsetDateTime;
use time::macros::datetime;

#[cfg(feature = "postgres")]
pub mod pg;

/// Unwraps one variant of an outcome enum, or fails naming what came instead:
/// `step!(kw.sign_in(..).unwrap(), SignIn::TotpRequired)`.
#[macro_export]
macro_rules! step {
    ($outcome:expr, $variant:path) => {
        match $outcome {
            $variant(inner) => inner,
            other => panic!("expected {}, got {other:?}", stringify!($variant)),
        }
    };
}

pub const T0: OffsetDateTime = datetime!(2026-09-01 08:00 UTC);
pub const ADMIN_PASSWORD: &str = "ochre-violet-anchor-93";
pub const USER_PASSWORD: &str = "river-lantern-copper-58";

pub struct Fx {
    pub kw: Keyward,
    pub clock: Arc<ManualClock>,
    pub outbox: Arc<Outbox>,
    pub store: Arc<dyn UserStore>,
    pub site: SiteId,
    pub admin: User,
}

pub fn site() -> SiteId {
    SiteId::new("northfield").unwrap()
}

pub fn sealer() -> TotpSealer {
    TotpSealer::new("k1", &[7u8; 32]).unwrap()
}

/// A service on `store` with a cheap hasher, a manual clock at `T0`, an outbox, a sealing
/// key, and one administrator.
pub fn fx_on(store: Arc<dyn UserStore>, hasher: Hasher) -> Fx {
    let clock = Arc::new(ManualClock::new(T0));
    let outbox = Arc::new(Outbox::new());
    let kw = Keyward::builder(store.clone())
        .hasher(hasher)
        .clock(clock.clone())
        .notifier(outbox.clone())
        .totp_sealer(sealer())
        .build();
    let admin =
        User::new(site(), "head", "Ada", "Admin", "staff", T0).with_role(Role::Administrator);
    let admin = kw
        .create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap();
    Fx {
        kw,
        clock,
        outbox,
        store,
        site: site(),
        admin,
    }
}

pub fn fx() -> Fx {
    fx_on(Arc::new(InMemoryStore::new()), Hasher::for_tests())
}

impl Fx {
    /// Creates a user with role `user` and the standard password.
    pub fn user(&self, username: &str) -> User {
        let user = User::new(self.site.clone(), username, "Sam", username, "student", T0)
            .with_email(format!("{username}@example.org"), true)
            .with_groups(["Year 7"]);
        self.kw
            .create_user(
                Some(&self.admin.id),
                user,
                Some(Password::new(USER_PASSWORD)),
            )
            .unwrap()
    }

    /// Has the administrator issue a generated temporary password (the policy's mode) and
    /// returns it.
    pub fn temporary_for(&self, user: &keyward::user::UserId) -> keyward::TemporaryPassword {
        let options = keyward::admin::IssueOptions::generated();
        let issued = self
            .kw
            .issue_temporary_password(&self.admin.id, user, options)
            .unwrap();
        issued
            .password
            .expect("a generated password is shown to the admin")
    }

    /// Signs `username` in with `password` and no PIN.
    pub fn sign_in(&self, username: &str, password: &Password) -> keyward::SignIn {
        self.kw
            .sign_in(&self.site, username, password, None)
            .unwrap()
    }

    /// The newest message body sent to `email`.
    pub fn mail_to(&self, email: &str) -> String {
        let message = self
            .outbox
            .take_last_to(&Recipient::Email(email.to_owned()))
            .expect("a message");
        message.expose_body().to_owned()
    }
}

/// The first run of `digits` consecutive ASCII digits in `text`.
pub fn digits_in(text: &str, digits: usize) -> String {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(digits)
        .find(|w| w.iter().all(char::is_ascii_digit))
        .map(|w| w.iter().collect())
        .expect("a code in the message")
}
