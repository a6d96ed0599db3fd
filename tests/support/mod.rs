//! Shared fixtures for the flow tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keyward::admin::{IssueOptions, IssuedTemporaryPassword};
use keyward::audit::{AuditEvent, AuditQuery};
use keyward::hash::Hasher;
use keyward::notify::{Outbox, Recipient};
use keyward::store::{Page, UserRecord};
use keyward::totp::{self, TotpConfig, TotpSealer};
use keyward::user::{Role, SiteId, TemporaryMode, User, UserId, UserStatus};
use keyward::{
    Error, InMemoryStore, Keyward, KeywardBuilder, ManualClock, Password, Pin, SignIn,
    TemporaryPassword, UserStore,
};
use time::OffsetDateTime;
use time::macros::datetime;

#[cfg(feature = "postgres")]
pub mod pg;
pub mod spy;

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

/// A service builder on `store` with the cheap test hasher and nothing else configured.
pub fn builder(store: Arc<dyn UserStore>) -> KeywardBuilder {
    Keyward::builder(store).hasher(Hasher::for_tests())
}

/// The record of `user` in `kw`'s store, which must exist.
pub fn record_of(kw: &Keyward, user: &UserId) -> UserRecord {
    kw.store().get_user(user).unwrap().unwrap()
}

/// Enrolls `user` in TOTP outside sign-in, confirms the enrollment with the current code,
/// and returns the raw secret bytes for computing later codes.
pub fn enroll(kw: &Keyward, user: &UserId) -> Vec<u8> {
    let pending = kw.enroll_totp(user, None).unwrap();
    let secret = pending.enrollment().secret().expose_secret().to_vec();
    let code = totp::code_at(
        &TotpConfig::DEFAULT,
        pending.enrollment().secret(),
        kw.now(),
    )
    .unwrap();
    let added = kw.confirm_enrollment(pending, &code).unwrap();
    assert!(matches!(added, SignIn::AuthenticatorAdded(_)), "{added:?}");
    secret
}

/// A service on `store` with the cheap test hasher, a manual clock at `T0`, an outbox, a
/// sealing key, and one administrator; `configure` adds to or overrides those settings.
pub fn fx_with(
    store: Arc<dyn UserStore>,
    configure: impl FnOnce(KeywardBuilder) -> KeywardBuilder,
) -> Fx {
    let clock = Arc::new(ManualClock::new(T0));
    let outbox = Arc::new(Outbox::new());
    let base = builder(store.clone())
        .clock(clock.clone())
        .notifier(outbox.clone())
        .totp_sealer(sealer());
    let kw = configure(base).build();
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

/// [`fx_with`], hashing with `hasher`.
pub fn fx_on(store: Arc<dyn UserStore>, hasher: Hasher) -> Fx {
    fx_with(store, |b| b.hasher(hasher))
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

    /// The stored record of `user`, which must exist.
    pub fn record(&self, user: &UserId) -> UserRecord {
        record_of(&self.kw, user)
    }

    /// Disables `user` straight in the store.
    pub fn disable(&self, user: &UserId) {
        let mut profile = self.record(user).user;
        profile.status = UserStatus::Disabled;
        self.kw.store().update_profile(&profile).unwrap();
    }

    /// The audit events matching `query`, read straight from the store.
    pub fn audit(&self, query: &AuditQuery) -> Page<AuditEvent> {
        self.kw.store().query_audit(query).unwrap()
    }

    /// A fresh step-up of `user` with the standard user password.
    pub fn step_up(&self, user: &UserId) -> keyward::signin::StepUp {
        let proof = self.kw.reauthenticate(user, &Password::new(USER_PASSWORD));
        match proof.unwrap() {
            keyward::signin::Reauthentication::Confirmed(proof) => proof,
            other => panic!("expected a step-up, got {other:?}"),
        }
    }

    /// The events of `action` involving `user`, oldest first.
    pub fn events_of(&self, user: &UserId, action: keyward::audit::AuditAction) -> Vec<AuditEvent> {
        let all = self.audit(&AuditQuery::for_user(user.clone()).page(0, 1000));
        all.items
            .into_iter()
            .filter(|e| e.action == action)
            .collect()
    }

    /// Has the administrator issue a temporary password for `user` with `options`.
    pub fn issue(
        &self,
        user: &UserId,
        options: IssueOptions,
    ) -> Result<IssuedTemporaryPassword, Error> {
        self.kw
            .issue_temporary_password(&self.admin.id, user, options)
    }

    /// Has the administrator issue a generated temporary password (the policy's mode) and
    /// returns it.
    pub fn temporary_for(&self, user: &UserId) -> TemporaryPassword {
        let issued = self.issue(user, IssueOptions::generated()).unwrap();
        issued
            .password
            .expect("a generated password is shown to the admin")
    }

    /// Has the administrator issue a generated, reusable admin-managed temporary password
    /// and returns it.
    pub fn admin_managed_for(&self, user: &UserId) -> TemporaryPassword {
        let options = IssueOptions::generated().mode(TemporaryMode::AdminManaged);
        self.issue(user, options).unwrap().password.unwrap()
    }

    /// Signs `username` in with `password` and no PIN.
    pub fn sign_in(&self, username: &str, password: &Password) -> SignIn {
        self.kw
            .sign_in(&self.site, username, password, None)
            .unwrap()
    }

    /// Signs `username` in with `password` and `pin`.
    pub fn sign_in_with_pin(&self, username: &str, password: &Password, pin: &str) -> SignIn {
        self.kw
            .sign_in(&self.site, username, password, Some(&Pin::new(pin)))
            .unwrap()
    }

    /// Signs `username` in with the standard user password and no PIN.
    pub fn sign_in_as(&self, username: &str) -> SignIn {
        self.sign_in(username, &Password::new(USER_PASSWORD))
    }

    /// The newest message body sent to `email`.
    pub fn mail_to(&self, email: &str) -> String {
        let message = self
            .outbox
            .take_last_to(&Recipient::Email(email.to_owned()))
            .expect("a message");
        message.render_english().body.as_str().to_owned()
    }

    /// The password-reset token in the newest message to `email` (the message carries it as
    /// data; the English text must hold it too).
    pub fn reset_token_to(&self, email: &str) -> String {
        let message = self
            .outbox
            .take_last_to(&Recipient::Email(email.to_owned()))
            .expect("a message");
        let token = message.secret.expose_secret().to_owned();
        assert!(message.render_english().body.contains(&token));
        token
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

/// Every file of `dir` (a database and its write-ahead log), as raw bytes.
pub fn raw_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        all.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    all
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
