//! [`Keyward`]: the service an application holds, and its builder. It holds the store, the
//! hasher, the clock, the policies, the notifier and the TOTP settings; the flows that use
//! them live in their own files: [`crate::signin`], [`crate::admin`], [`crate::account`],
//! [`crate::recovery`], with the lockout protocol every guessable check follows in
//! `guard.rs`.

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::hash::{Hasher, PasswordHash};
use crate::lockout::{LockoutPolicy, LockoutRule};
use crate::notify::{NoNotifier, Notifier};
use crate::permission::Permissions;
use crate::policy::{CodeRules, PasswordPolicy, PolicySet, TemporaryPolicy};
use crate::store::{UserRecord, UserStore};
use crate::totp::{TotpConfig, TotpSealer};
use crate::user::{SiteId, StoredHash, UserId};

/// How TOTP secrets are kept at rest.
#[derive(Debug)]
pub(crate) enum SecretKeeping {
    /// Sealed with the application's key ring.
    Sealed(TotpSealer),
    /// Stored in plain base32: the application opted in explicitly.
    Plain,
    /// Neither: TOTP enrollment is refused with [`Error::TotpKeyMissing`].
    Refused,
}

/// The application's hook for failures keyward handles without returning them (see
/// [`KeywardBuilder::on_error`]).
#[derive(Clone)]
pub(crate) struct ErrorHook(Option<OnError>);

/// What [`KeywardBuilder::on_error`] takes.
pub type OnError = Arc<dyn Fn(&Error) + Send + Sync>;

impl ErrorHook {
    pub(crate) fn report(&self, error: &Error) {
        if let Some(hook) = &self.0 {
            hook(error);
        }
    }
}

impl fmt::Debug for ErrorHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ErrorHook(set)"
        } else {
            "ErrorHook(none)"
        })
    }
}

/// The credential service. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct Keyward {
    pub(crate) store: Arc<dyn UserStore>,
    pub(crate) hasher: Hasher,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) lockout: Arc<dyn LockoutPolicy>,
    pub(crate) passwords: Arc<dyn PasswordPolicy>,
    pub(crate) temporary: Arc<dyn TemporaryPolicy>,
    pub(crate) permissions: Permissions,
    pub(crate) notifier: Arc<dyn Notifier>,
    pub(crate) totp: TotpConfig,
    pub(crate) keeping: SecretKeeping,
    pub(crate) escrow: Option<TotpSealer>,
    pub(crate) codes: CodeRules,
    pub(crate) errors: ErrorHook,
    pub(crate) pins: Pins,
    /// Seals pending steps and keys security stamps.
    pub(crate) steps: TotpSealer,
    /// A user id nobody has (128 random bits, drawn when the service is built): the account a
    /// refused first factor "reserves" and "settles" on, so that an unknown username costs the
    /// store what a known one does (see `Keyward::first_factor_decoy`).
    pub(crate) decoy: UserId,
}

/// Whether a deployment uses PINs (a second secret beside the password, asked at every
/// sign-in of a user who has one: the SSO-outage case).
///
/// With PINs on, every first-factor check spends two verifications (the password, then the
/// PIN or a dummy), so that timing tells nobody who has a PIN. A deployment that never uses
/// PINs pays one: with [`Pins::Off`], setting a PIN is refused ([`Error::PinsDisabled`]) and a
/// sign-in verifies the password alone. A user who still holds a PIN from before is asked for
/// it all the same (turning PINs off never weakens an account); remove such PINs when turning
/// them off.
///
/// [`Error::PinsDisabled`]: crate::Error::PinsDisabled
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Pins {
    /// PINs may be set and are checked (the default).
    #[default]
    On,
    /// No PINs: one verification per sign-in.
    Off,
}

impl fmt::Debug for Keyward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyward")
            .field("store", &self.store)
            .field("hasher", &self.hasher)
            .field("totp", &self.totp)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Keyward`]. Every setting has a secure default.
#[derive(Debug)]
#[must_use]
pub struct KeywardBuilder {
    store: Arc<dyn UserStore>,
    hasher: Option<Hasher>,
    clock: Arc<dyn Clock>,
    lockout: Arc<dyn LockoutPolicy>,
    passwords: Arc<dyn PasswordPolicy>,
    temporary: Arc<dyn TemporaryPolicy>,
    permissions: Permissions,
    notifier: Arc<dyn Notifier>,
    totp: TotpConfig,
    keeping: SecretKeeping,
    escrow: Option<TotpSealer>,
    codes: CodeRules,
    errors: ErrorHook,
    pins: Pins,
    steps: Option<TotpSealer>,
}

impl KeywardBuilder {
    /// The key ring that seals pending steps ([`Keyward::seal_step`]) and keys security
    /// stamps ([`Keyward::check_session`]): the same ring type as for TOTP secrets (load keys
    /// with [`TotpSealer::from_text`], rotate by adding the new key as current and keeping the
    /// old one as previous until the steps and sessions it made are over). Give it a key of
    /// its own, shared by every server of the deployment.
    ///
    /// Without one, the service makes a random key at [`build`](Self::build) that lives only
    /// in this process: steps and stamps then hold on this server until it restarts, which
    /// suits one process and tests, never several servers.
    pub fn step_keys(mut self, keys: TotpSealer) -> Self {
        self.steps = Some(keys);
        self
    }

    /// Whether the deployment uses PINs (default [`Pins::On`]; see [`Pins`]).
    pub fn pins(mut self, pins: Pins) -> Self {
        self.pins = pins;
        self
    }

    /// The hasher (default: [`Hasher::default`], argon2id m=19456 KiB, t=2, p=1).
    pub fn hasher(mut self, hasher: Hasher) -> Self {
        self.hasher = Some(hasher);
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The lockout policy (default: [`LockoutRule::DEFAULT`] for everyone).
    pub fn lockout(mut self, policy: Arc<dyn LockoutPolicy>) -> Self {
        self.lockout = policy;
        self
    }

    /// The password policy (default: [`PolicySet::default`]).
    pub fn password_policy(mut self, policy: Arc<dyn PasswordPolicy>) -> Self {
        self.passwords = policy;
        self
    }

    /// The temporary-password policy (default: [`PolicySet::default`]).
    pub fn temporary_policy(mut self, policy: Arc<dyn TemporaryPolicy>) -> Self {
        self.temporary = policy;
        self
    }

    /// Sets both policies from one [`PolicySet`].
    pub fn policies(self, set: PolicySet) -> Self {
        let set = Arc::new(set);
        self.password_policy(set.clone()).temporary_policy(set)
    }

    /// Permissions per role (default: [`Permissions::default`]).
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// Where messages go. There is no working default: without one, every delivery fails
    /// with [`NotifyError`](crate::notify::NotifyError) ([`NoNotifier`]), so a device code
    /// or a reset link never vanishes unnoticed. Tests and examples use an
    /// [`Outbox`](crate::notify::Outbox).
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    /// Delivers messages through an async notifier (feature `tokio`): sets the notifier to a
    /// [`BlockingBridge`](crate::notify::BlockingBridge) that runs `notifier`'s futures on the
    /// runtime of `handle`. Drive the service through
    /// [`AsyncKeyward`](crate::nonblocking::AsyncKeyward) (or from threads outside the
    /// runtime): the bridge blocks its thread on each delivery, which tokio forbids on the
    /// runtime's worker threads.
    #[cfg(feature = "tokio")]
    pub fn async_notifier(
        self,
        handle: tokio::runtime::Handle,
        notifier: impl crate::notify::AsyncNotifier + 'static,
    ) -> Self {
        let bridge = crate::notify::BlockingBridge::new(handle, notifier);
        self.notifier(Arc::new(bridge))
    }

    /// TOTP settings (default: [`TotpConfig::DEFAULT`]).
    pub fn totp(mut self, config: TotpConfig) -> Self {
        self.totp = config;
        self
    }

    /// Seals TOTP secrets at rest with this key ring.
    pub fn totp_sealer(mut self, sealer: TotpSealer) -> Self {
        self.keeping = SecretKeeping::Sealed(sealer);
        self
    }

    /// Stores TOTP secrets unsealed (plain base32). Anyone who can read the database can
    /// then mint codes: use it only where the database itself is the protected asset, and
    /// move to [`totp_sealer`](Self::totp_sealer) when a key can be managed.
    pub fn insecure_plain_totp_secrets(mut self) -> Self {
        self.keeping = SecretKeeping::Plain;
        self
    }

    /// Keeps every issued temporary password also sealed under `keys` (the same
    /// XChaCha20-Poly1305 key ring as for TOTP secrets, with its own domain in the associated
    /// data; give it a key of its own), bound to the user and the batch, so that an
    /// administrator holding [`Permission::RevealTemporaryPassword`](crate::permission::Permission::RevealTemporaryPassword)
    /// can show it again until the user claims the account, the password expires or a new
    /// one replaces it (each reveal audited). Off by default: without escrow nothing can be
    /// shown again, and the answer to a lost list is to regenerate.
    pub fn temporary_password_escrow(mut self, keys: TotpSealer) -> Self {
        self.escrow = Some(keys);
        self
    }

    /// Called with failures keyward does not return, so that the answer to an unauthenticated
    /// caller stays the same whatever happened: today, a password-reset message that could
    /// not be delivered (the request still answers `Ok`, and the audit trail records
    /// `delivery_failed`). Log or alert from it; it must not block.
    pub fn on_error(mut self, hook: OnError) -> Self {
        self.errors = ErrorHook(Some(hook));
        self
    }

    /// Limits of one-time codes (default: [`CodeRules::DEFAULT`]).
    pub fn codes(mut self, codes: CodeRules) -> Self {
        self.codes = codes;
        self
    }

    /// Builds the service.
    pub fn build(self) -> Keyward {
        let steps = self.steps.unwrap_or_else(TotpSealer::ephemeral);
        Keyward {
            steps,
            store: self.store,
            hasher: self.hasher.unwrap_or_default(),
            clock: self.clock,
            lockout: self.lockout,
            passwords: self.passwords,
            temporary: self.temporary,
            permissions: self.permissions,
            notifier: self.notifier,
            totp: self.totp,
            keeping: self.keeping,
            escrow: self.escrow,
            codes: self.codes,
            errors: self.errors,
            pins: self.pins,
            decoy: UserId::generate(),
        }
    }
}

impl Keyward {
    /// Starts building a service on `store`.
    pub fn builder(store: Arc<dyn UserStore>) -> KeywardBuilder {
        KeywardBuilder {
            store,
            hasher: None,
            clock: Arc::new(SystemClock),
            lockout: Arc::new(LockoutRule::DEFAULT),
            passwords: Arc::new(PolicySet::default()),
            temporary: Arc::new(PolicySet::default()),
            permissions: Permissions::default(),
            notifier: Arc::new(NoNotifier),
            totp: TotpConfig::DEFAULT,
            keeping: SecretKeeping::Refused,
            escrow: None,
            codes: CodeRules::DEFAULT,
            errors: ErrorHook(None),
            pins: Pins::On,
            steps: None,
        }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &dyn UserStore {
        &*self.store
    }

    /// The hasher.
    #[must_use]
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    /// The current time by the injected clock.
    #[must_use]
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    pub(crate) fn load(&self, id: &UserId) -> Result<UserRecord, Error> {
        self.store
            .get_user(id)?
            .ok_or_else(|| Error::UserNotFound { user: id.clone() })
    }

    pub(crate) fn audit(&self, event: AuditEvent) -> Result<(), Error> {
        self.store.append_audit(&event)?;
        crate::audit::trace(&event);
        Ok(())
    }

    /// Applies `change` to the record of `id` and, when it says it changed something, records
    /// `events` in the same transaction ([`UserStore::change_recorded`]): the change and its
    /// events commit together or not at all. Returns whether `change` applied.
    pub(crate) fn change_with_events(
        &self,
        id: &UserId,
        events: Vec<AuditEvent>,
        mut change: impl FnMut(&mut UserRecord) -> bool + Send,
    ) -> Result<bool, Error> {
        let mut applied = false;
        let mut recorded = |r: &mut UserRecord| {
            applied = change(r);
            if applied { events.clone() } else { Vec::new() }
        };
        self.store.change_recorded(id, &mut recorded)?;
        if applied {
            events.iter().for_each(crate::audit::trace);
        }
        Ok(applied)
    }

    /// An audit event happening now: `actor` did `action` to `target` in `site`.
    pub(crate) fn event(
        &self,
        action: AuditAction,
        outcome: AuditOutcome,
        actor: Option<&UserId>,
        target: Option<&UserId>,
        site: &SiteId,
    ) -> AuditEvent {
        let (actor, target) = (actor.cloned(), target.cloned());
        AuditEvent::new(self.now(), actor, action, target, site.clone(), outcome)
    }

    /// What a user did to their own account in `site`, succeeded, happening now.
    pub(crate) fn own_event(
        &self,
        action: AuditAction,
        user: &UserId,
        site: &SiteId,
    ) -> AuditEvent {
        let id = Some(user);
        self.event(action, AuditOutcome::Succeeded, id, id, site)
    }
}

/// The stored form of a hash.
pub(crate) fn stored(hash: &PasswordHash) -> StoredHash {
    StoredHash::new(hash.as_str())
}
