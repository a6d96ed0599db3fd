//! Security stamps: what a signed-in session rests on, in a value an application can keep
//! and check cheaply.
//!
//! A successful sign-in hands out a [`SecurityStamp`]: a MAC, under the application's step
//! keys, over the parts of the account that a session depends on. It changes whenever one of
//! them changes: the password (a new hash, a temporary password set or removed), the PIN, the
//! TOTP state (secret, reset), the role, the site and managed sites, the status, a lock of
//! either counter beginning or ending. [`Keyward::check_session`] recomputes it from one store
//! read, with no password hashing, and says whether the session still stands.
//!
//! Nothing is stored: the stamp is derived, so no write path can forget to renew it. The MAC
//! is keyed because the account state includes password hashes, some of them unsalted legacy
//! digests; a plain digest handed to a client would be an offline oracle for the password.
//!
//! The same account state, plus the progress of a sign-in (the last accepted TOTP step, the
//! pending secret, the device code, the recovery codes left), is what a pending step is bound
//! to (its *binding*): any of those changing voids the step, and finishing a step changes one
//! of them, so a step cannot be finished twice.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::Error;
use crate::lockout::LockState;
use crate::service::Keyward;
use crate::store::UserRecord;
use crate::totp::TotpSealer;
use crate::user::{StoredHash, User, UserId};

/// Domain of the stamp's MAC.
const STAMP_DOMAIN: &[u8] = b"keyward security stamp v1";
/// Domain of a pending step's binding digest.
const BINDING_DOMAIN: &[u8] = b"keyward step binding v1\0";
/// Longest stamp text looked at (a key id of at most 32 bytes, a dot, 43 base64 characters).
const MAX_STAMP_LEN: usize = 80;

/// A value that changes whenever the security state of an account changes; see the
/// [module documentation](self). Keep it with the session (it is not a secret, but it is
/// meaningless outside keyward) and check it with [`Keyward::check_session`].
///
/// Its text form is `<key id>.<base64url MAC>`; [`SecurityStamp::new`] takes that form back
/// from a session store (untrusted: anything malformed simply does not match).
#[derive(Clone, PartialEq, Eq)]
pub struct SecurityStamp(String);

impl SecurityStamp {
    /// Takes a stamp back from where the application kept it.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The text to keep with the session.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecurityStamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = self.0.rsplit_once('.').map_or("?", |(k, _)| k);
        f.debug_struct("SecurityStamp")
            .field("key_id", &key)
            .finish_non_exhaustive()
    }
}

/// The answer of [`Keyward::check_session`].
#[must_use = "a stale session must be ended"]
#[non_exhaustive]
#[derive(Debug)]
pub enum SessionCheck {
    /// Nothing the session rests on changed: the user as stored now.
    Current(Box<User>),
    /// The account changed (or is gone, or the stamp was made under a key the ring no longer
    /// holds): end the session and ask the user to sign in again.
    Stale,
}

impl SessionCheck {
    /// The user, when the session still stands.
    #[must_use]
    pub fn user(&self) -> Option<&User> {
        match self {
            Self::Current(user) => Some(user),
            Self::Stale => None,
        }
    }

    /// Whether the session still stands.
    #[must_use]
    pub fn is_current(&self) -> bool {
        matches!(self, Self::Current(_))
    }
}

/// Canonical, unambiguous encoding of the account state: every field length-prefixed.
struct State(Vec<u8>);

impl State {
    fn bytes(&mut self, bytes: &[u8]) {
        // Every field is far below 4 GiB (store rows are bounded); saturate all the same.
        let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(bytes);
    }

    fn text(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn opt(&mut self, text: Option<&str>) {
        match text {
            Some(t) => {
                self.0.push(1);
                self.text(t);
            }
            None => self.0.push(0),
        }
    }

    fn flag(&mut self, flag: bool) {
        self.0.push(u8::from(flag));
    }

    fn instant(&mut self, at: Option<time::OffsetDateTime>) {
        let n = at.map_or(i128::MIN, time::OffsetDateTime::unix_timestamp_nanos);
        self.0.extend_from_slice(&n.to_be_bytes());
    }

    fn hash(&mut self, hash: Option<&StoredHash>) {
        self.opt(hash.map(StoredHash::as_str));
    }

    fn lock(&mut self, lock: &LockState) {
        // When a lock began and why: not the failure counts, which change with every wrong
        // guess (an attacker's guesses must not end the user's sessions until they lock).
        self.instant(lock.locked_at);
        self.opt(lock.lock_reason.map(|r| r.as_str()));
        // Unlocks so far: an administrator's unlock ends a lock for good, so a session from
        // before the lock does not come back to life with it.
        self.0.extend_from_slice(&lock.epoch.to_be_bytes());
    }
}

/// What a session rests on.
fn account_state(record: &UserRecord) -> State {
    let mut s = credential_state(record);
    s.lock(&record.password_lock);
    s.lock(&record.totp_lock);
    s
}

/// What a session rests on, but for the locks.
fn credential_state(record: &UserRecord) -> State {
    let mut s = State(Vec::with_capacity(512));
    let user = &record.user;
    s.text(user.id.as_str());
    s.text(user.site.as_str());
    s.text(user.role.as_str());
    let mut sites: Vec<&str> = user.managed_sites.iter().map(|m| m.as_str()).collect();
    sites.sort_unstable();
    s.0.extend_from_slice(&(sites.len() as u64).to_be_bytes());
    for site in sites {
        s.text(site);
    }
    s.text(user.status.as_str());
    s.flag(user.sso_linked);
    match &record.password {
        Some(p) => {
            s.flag(true);
            s.hash(Some(&p.hash));
            // A temporary password and its mode; not its consumption, which the forced change
            // that follows it replaces anyway.
            s.opt(p.temporary.as_ref().map(|t| t.mode.as_str()));
        }
        None => s.flag(false),
    }
    s.hash(record.pin.as_ref().map(|p| &p.hash));
    s.opt(record.totp.secret.as_ref().map(|t| t.as_str()));
    s.flag(record.totp.reset_pending);
    s
}

/// What a pending step is bound to: the account state and the sign-in's progress. Kept inside
/// the step (sealed when it travels), never shown.
pub(crate) fn binding(record: &UserRecord) -> [u8; 32] {
    let mut s = account_state(record);
    s.0.extend_from_slice(&record.totp.last_step.map_or(u64::MAX, |n| n).to_be_bytes());
    s.flag(record.totp.last_step.is_some());
    s.opt(record.totp.pending_secret.as_ref().map(|t| t.as_str()));
    s.hash(record.totp.device_code.as_ref().map(|c| &c.hash));
    // The recovery codes left: using one, or a new set, voids a step (a step-up too).
    let codes = &record.totp.recovery_codes;
    s.0.extend_from_slice(&(codes.len() as u64).to_be_bytes());
    codes.iter().for_each(|c| s.hash(Some(c)));
    let mut digest = Sha256::new();
    digest.update(BINDING_DOMAIN);
    digest.update(&s.0);
    digest.finalize().into()
}

/// Whether `now` still holds what a sign-in verified in `then`: the same password hash and
/// temporary mode, PIN, TOTP secret and reset, status, SSO link, role, site and managed sites.
/// Lock counters and sign-in progress may differ (the settle itself changes them). A sign-in
/// whose account changed in this sense while its guess was evaluated must not complete on the
/// new state.
pub(crate) fn same_credentials(then: &UserRecord, now: &UserRecord) -> bool {
    credential_state(then).0 == credential_state(now).0
}

/// Whether two bindings are equal, in constant time.
pub(crate) fn same_binding(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

/// The stamp of `record` under the key `key_id` names.
fn stamp_under(keys: &TotpSealer, key_id: &str, record: &UserRecord) -> Option<[u8; 32]> {
    keys.mac(STAMP_DOMAIN, key_id, &account_state(record).0)
}

impl Keyward {
    /// The current stamp of an account (under the current step key).
    pub(crate) fn stamp_of(&self, record: &UserRecord) -> Result<SecurityStamp, Error> {
        let key_id = self.steps.current_key_id();
        // The current key is always in its ring; the error is the type's, never expected.
        let mac = stamp_under(&self.steps, key_id, record).ok_or_else(|| {
            Error::Totp(crate::totp::TotpError::UnknownKeyId {
                key_id: key_id.to_owned(),
            })
        })?;
        let text = data_encoding::BASE64URL_NOPAD.encode(&mac);
        Ok(SecurityStamp(format!("{key_id}.{text}")))
    }

    /// Whether a signed-in session still stands: `stamp` (from
    /// [`Authenticated::stamp`](crate::signin::Authenticated::stamp)) still matches the
    /// account. One store read, no password hashing; compare in constant time.
    ///
    /// [`SessionCheck::Stale`] when the password, PIN, TOTP state, role, site or managed
    /// sites, status or a lock changed since the stamp was made, when the user is gone or is
    /// disabled or locked now, and for a stamp that is malformed or made under a key no longer
    /// in the ring.
    ///
    /// # Errors
    /// Store failures.
    pub fn check_session(
        &self,
        user: &UserId,
        stamp: &SecurityStamp,
    ) -> Result<SessionCheck, Error> {
        let _span = tracing::info_span!("keyward.check_session").entered();
        let text = stamp.as_str();
        // The key id may hold dots; the base64url MAC never does.
        let Some((key_id, mac)) = text
            .rsplit_once('.')
            .filter(|_| text.len() <= MAX_STAMP_LEN)
        else {
            return Ok(SessionCheck::Stale);
        };
        let Ok(given) = data_encoding::BASE64URL_NOPAD.decode(mac.as_bytes()) else {
            return Ok(SessionCheck::Stale);
        };
        let Some(record) = self.store.get_user(user)? else {
            return Ok(SessionCheck::Stale);
        };
        let Some(expected) = stamp_under(&self.steps, key_id, &record) else {
            return Ok(SessionCheck::Stale);
        };
        // Defence in depth: whatever stamp is presented, a disabled or locked account has no
        // current session.
        let now = self.now();
        let usable = record.user.status == crate::user::UserStatus::Active
            && !record.password_lock.is_locked(now)
            && !record.totp_lock.is_locked(now);
        if bool::from(expected.as_slice().ct_eq(given.as_slice())) && usable {
            Ok(SessionCheck::Current(Box::new(record.user)))
        } else {
            Ok(SessionCheck::Stale)
        }
    }
}
