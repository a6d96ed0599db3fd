//! [`Keyward`]: the service an application holds. It ties the store, the hasher, the clock,
//! the policies, the notifier and the TOTP settings together; the flows live in
//! [`crate::signin`], [`crate::admin`] and [`crate::recovery`].

use std::fmt;
use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use crate::admin::{Permission, Permissions};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome};
use crate::clock::{Clock, SystemClock};
use crate::error::Error;
use crate::hash::{Hasher, PasswordHash, Verification};
use crate::lockout::{LockDecision, LockEvent, LockoutPolicy, LockoutRule};
use crate::notify::{Notifier, Outbox};
use crate::policy::{PasswordPolicy, PolicySet, TemporaryPolicy};
use crate::secret::Password;
use crate::store::{LockCounter, UserStore};
use crate::totp::{TotpConfig, TotpSealer};
use crate::user::{SiteId, StoredHash, User, UserId, UserRecord};

/// Limits of the one-time codes keyward sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRules {
    /// How long a device-authorization code lives (default 10 minutes).
    pub device_code_lifetime: Duration,
    /// Wrong tries a device-authorization code allows before a new one is needed (default 5).
    pub device_code_max_tries: u32,
    /// Digits of a device-authorization code (default 8).
    pub device_code_digits: u32,
    /// How long a password-reset token lives (default 1 hour).
    pub reset_token_lifetime: Duration,
    /// Wrong tries a reset token allows (default 5).
    pub reset_token_max_tries: u32,
    /// How long a pending sign-in step (password change, TOTP, device code, enrollment) may
    /// wait for the user (default 15 minutes).
    pub pending_step_lifetime: Duration,
}

impl CodeRules {
    /// The defaults listed on each field.
    pub const DEFAULT: Self = Self {
        device_code_lifetime: Duration::minutes(10),
        device_code_max_tries: 5,
        device_code_digits: 8,
        reset_token_lifetime: Duration::hours(1),
        reset_token_max_tries: 5,
        pending_step_lifetime: Duration::minutes(15),
    };
}

impl Default for CodeRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How TOTP secrets are kept at rest.
#[derive(Debug)]
enum SecretKeeping {
    /// Sealed with the application's key ring.
    Sealed(TotpSealer),
    /// Stored in plain base32: the application opted in explicitly.
    Plain,
    /// Neither: TOTP enrollment is refused with [`Error::TotpKeyMissing`].
    Refused,
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
    keeping: SecretKeeping,
    pub(crate) codes: CodeRules,
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
    codes: CodeRules,
}

impl KeywardBuilder {
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

    /// Where messages go (default: an in-memory [`Outbox`] nobody reads: set a real one).
    pub fn notifier(mut self, notifier: Arc<dyn Notifier>) -> Self {
        self.notifier = notifier;
        self
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

    /// Limits of one-time codes (default: [`CodeRules::DEFAULT`]).
    pub fn codes(mut self, codes: CodeRules) -> Self {
        self.codes = codes;
        self
    }

    /// Builds the service.
    pub fn build(self) -> Keyward {
        Keyward {
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
            codes: self.codes,
        }
    }
}

/// Whether a first-factor check includes the PIN.
#[derive(Debug, Clone, Copy)]
pub(crate) enum PinCheck<'a> {
    /// A sign-in: the PIN the user gave, if any.
    Given(Option<&'a crate::secret::Pin>),
    /// A confirmation by password alone.
    Skip,
}

/// The result of checking a password (and PIN) under the lockout protocol.
#[derive(Debug)]
pub(crate) enum FirstFactor {
    /// Both matched; the lock counter was cleared.
    Passed {
        upgraded: Option<PasswordHash>,
        pin_upgraded: Option<PasswordHash>,
    },
    /// Refused without evaluation.
    Locked { until: Option<OffsetDateTime> },
    /// Refused without evaluation: as many attempts as may fail are in flight.
    Busy,
    /// The password was wrong.
    WrongPassword { now_locked: bool },
    /// The PIN was missing or wrong.
    WrongPin { now_locked: bool },
    /// Both matched but a concurrent failure locked the account meanwhile.
    LockedMeanwhile,
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
            notifier: Arc::new(Outbox::new()),
            totp: TotpConfig::DEFAULT,
            keeping: SecretKeeping::Refused,
            codes: CodeRules::DEFAULT,
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

    /// Creates a user, optionally with a permanent password (checked against the password
    /// policy). With an `actor`, the actor needs [`Permission::ManageUsers`] in the new
    /// user's site (and the usual rank rules apply to the new user's role); `None` is the
    /// application itself (onboarding jobs, tests). Audited as `user_created`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); [`Error::Policy`] if the password breaks the
    /// policy; store errors.
    pub fn create_user(
        &self,
        actor: Option<&UserId>,
        user: User,
        password: Option<Password>,
    ) -> Result<User, Error> {
        user.validate()?;
        if let Some(actor) = actor {
            let (permission, action) = (Permission::ManageUsers, AuditAction::UserCreated);
            self.authorize(actor, permission, action, &user.site, Some(&user))?;
        }
        let now = self.now();
        let mut record = UserRecord::new(user);
        if let Some(password) = password {
            self.passwords
                .password_rules(&record.user)
                .check(&password, &record.user)?;
            let hash = self.hasher.hash(&password)?;
            record.password = Some(crate::user::PasswordCredential::permanent(
                stored(&hash),
                now,
            ));
        }
        self.store.create_user(&record)?;
        self.audit(AuditEvent::new(
            now,
            actor.cloned(),
            AuditAction::UserCreated,
            Some(record.user.id.clone()),
            record.user.site.clone(),
            AuditOutcome::Succeeded,
        ))?;
        Ok(record.user)
    }

    /// Imports a user with a hash brought from another system (see [`Hasher::import`]):
    /// verified and upgraded to argon2id at the user's next successful sign-in.
    ///
    /// # Errors
    /// [`Error::Import`] naming the offending field (nothing is stored); store errors.
    pub fn import_user(
        &self,
        user: User,
        record: &crate::hash::ImportRecord,
    ) -> Result<User, Error> {
        user.validate()?;
        let hash = self.hasher.import(record)?;
        let now = self.now();
        let mut stored_record = UserRecord::new(user);
        stored_record.password = Some(if record.is_temporary_password {
            // An imported temporary password: single-use, default lifetime, issued by nobody
            // in this system (the user themself).
            let rules = self.temporary.temporary_rules(&stored_record.user);
            crate::user::PasswordCredential::temporary(
                stored(&hash),
                now,
                crate::user::TemporaryMode::SingleUse,
                now.saturating_add(rules.lifetime),
                stored_record.user.id.clone(),
                None,
            )
        } else {
            crate::user::PasswordCredential::permanent(stored(&hash), now)
        });
        self.store.create_user(&stored_record)?;
        self.audit(
            AuditEvent::new(
                now,
                None,
                AuditAction::UserCreated,
                Some(stored_record.user.id.clone()),
                stored_record.user.site.clone(),
                AuditOutcome::Succeeded,
            )
            .with_details(format!("imported {} hash", hash.scheme())),
        )?;
        Ok(stored_record.user)
    }

    /// Sets or removes a user's PIN (hashed like a password).
    ///
    /// # Errors
    /// Store and hashing errors; [`Error::UserNotFound`].
    pub fn set_pin(&self, user: &UserId, pin: Option<&crate::secret::Pin>) -> Result<(), Error> {
        let now = self.now();
        let record = self.load(user)?;
        let credential = match pin {
            Some(pin) => {
                let hash = self.hasher.hash(&Password::new(pin.expose_secret()))?;
                Some(crate::user::PinCredential::new(stored(&hash), now))
            }
            None => None,
        };
        self.store.set_pin(user, credential.as_ref())?;
        self.audit(AuditEvent::new(
            now,
            Some(user.clone()),
            AuditAction::PinSet,
            Some(user.clone()),
            record.user.site,
            AuditOutcome::Succeeded,
        ))
    }

    pub(crate) fn load(&self, id: &UserId) -> Result<UserRecord, Error> {
        self.store
            .get_user(id)?
            .ok_or_else(|| Error::UserNotFound { user: id.clone() })
    }

    pub(crate) fn audit(&self, event: AuditEvent) -> Result<(), Error> {
        self.store.append_audit(&event).map_err(Error::from)
    }

    pub(crate) fn audit_sign_in(
        &self,
        user: Option<&User>,
        site: &SiteId,
        outcome: AuditOutcome,
        reason: &str,
    ) -> Result<(), Error> {
        let id = user.map(|u| u.id.clone());
        self.audit(
            AuditEvent::new(
                self.now(),
                id.clone(),
                AuditAction::SignIn,
                id,
                site.clone(),
                outcome,
            )
            .with_reason(reason),
        )
    }

    pub(crate) fn parse_hash(&self, hash: &StoredHash) -> Result<PasswordHash, Error> {
        Ok(self.hasher.parse(hash.as_str())?)
    }

    /// Spends what a first-factor check spends (two verifications: password and PIN) without
    /// checking anything: for unknown, disabled and locked accounts.
    pub(crate) fn first_factor_dummy(&self, password: &Password) {
        self.hasher.verify_dummy(password);
        self.hasher.verify_dummy(password);
    }

    /// Checks a password and the PIN under the lockout protocol: reserve an attempt, evaluate,
    /// settle. Every check spends exactly two verifications: the password, then the PIN or a
    /// dummy when the user has no PIN or gave none, so that timing tells neither which part
    /// was wrong nor whether the account has a PIN. With [`PinCheck::Skip`] (an
    /// administrator confirming an action with their own password) only the password counts.
    pub(crate) fn check_first_factor(
        &self,
        record: &UserRecord,
        password: &Password,
        pin: PinCheck<'_>,
        password_hash: &StoredHash,
    ) -> Result<FirstFactor, Error> {
        let now = self.now();
        let id = &record.user.id;
        let rule = self.lockout.password_rule(&record.user);
        let (_, decision) = self.store.apply_lock_event(
            id,
            LockCounter::Password,
            &rule,
            &LockEvent::Attempt,
            now,
        )?;
        match decision {
            LockDecision::Proceed => {}
            LockDecision::Locked { until } => {
                self.first_factor_dummy(password);
                return Ok(FirstFactor::Locked { until });
            }
            _ => {
                self.first_factor_dummy(password);
                return Ok(FirstFactor::Busy);
            }
        }
        let evaluated = self.evaluate_first_factor(record, password, pin, password_hash);
        let (verification, pin_result) = match evaluated {
            Ok(results) => results,
            Err(e) => {
                // Settle the reservation before reporting the failure: a broken stored hash
                // must not leave the slot taken.
                let _ = self.store.apply_lock_event(
                    id,
                    LockCounter::Password,
                    &rule,
                    &LockEvent::Failure,
                    now,
                );
                return Err(e);
            }
        };
        let password_ok = verification.is_match();
        let pin_ok = pin_result.as_ref().is_none_or(Verification::is_match);
        if password_ok && pin_ok {
            let (_, decision) = self.store.apply_lock_event(
                id,
                LockCounter::Password,
                &rule,
                &LockEvent::Success,
                now,
            )?;
            if decision == LockDecision::SuccessWhileLocked {
                return Ok(FirstFactor::LockedMeanwhile);
            }
            let upgraded = match verification {
                Verification::MatchUpgraded { new_hash, .. } => Some(new_hash),
                _ => None,
            };
            let pin_upgraded = match pin_result {
                Some(Verification::MatchUpgraded { new_hash, .. }) => Some(new_hash),
                _ => None,
            };
            return Ok(FirstFactor::Passed {
                upgraded,
                pin_upgraded,
            });
        }
        let (_, decision) = self.store.apply_lock_event(
            id,
            LockCounter::Password,
            &rule,
            &LockEvent::Failure,
            now,
        )?;
        let now_locked = matches!(decision, LockDecision::NowLocked { .. });
        Ok(if password_ok {
            FirstFactor::WrongPin { now_locked }
        } else {
            FirstFactor::WrongPassword { now_locked }
        })
    }

    /// Verifies `given` against a stored hash; input the hasher refuses outright (longer
    /// than its limit) is a non-match after the same work, never an error, so that it looks
    /// like any wrong password. A stored hash that cannot be read is an error.
    fn verify_input(&self, given: &Password, stored: &StoredHash) -> Result<Verification, Error> {
        let hash = self.parse_hash(stored)?;
        match self.hasher.verify(given, &hash) {
            Err(crate::error::HashError::PasswordTooLong { .. }) => {
                self.hasher.verify_dummy(given);
                Ok(Verification::NoMatch)
            }
            other => Ok(other?),
        }
    }

    /// The two verifications of a first-factor check (see
    /// [`check_first_factor`](Self::check_first_factor)).
    fn evaluate_first_factor(
        &self,
        record: &UserRecord,
        password: &Password,
        pin: PinCheck<'_>,
        password_hash: &StoredHash,
    ) -> Result<(Verification, Option<Verification>), Error> {
        let verification = self.verify_input(password, password_hash)?;
        let pin_result = match pin {
            PinCheck::Skip => None,
            PinCheck::Given(given) => match (&record.pin, given) {
                (Some(credential), Some(given)) => {
                    let given = Password::new(given.expose_secret());
                    Some(self.verify_input(&given, &credential.hash)?)
                }
                (Some(_), None) => {
                    self.hasher.verify_dummy(password);
                    Some(Verification::NoMatch)
                }
                (None, _) => {
                    // No PIN to check (a PIN nobody asked for is ignored): spend the same.
                    self.hasher.verify_dummy(password);
                    None
                }
            },
        };
        Ok((verification, pin_result))
    }

    pub(crate) fn seal_secret(
        &self,
        secret: &crate::secret::TotpSecret,
        user: &UserId,
    ) -> Result<crate::user::StoredSecret, Error> {
        let stored = match &self.keeping {
            SecretKeeping::Sealed(sealer) => sealer.seal(secret, user.as_str().as_bytes())?,
            SecretKeeping::Plain => crate::totp::StoredTotpSecret::plain(secret)?,
            SecretKeeping::Refused => return Err(Error::TotpKeyMissing),
        };
        Ok(crate::user::StoredSecret::new(
            stored.to_storage_string().as_str(),
        ))
    }

    pub(crate) fn open_secret(
        &self,
        stored: &crate::user::StoredSecret,
        user: &UserId,
    ) -> Result<crate::secret::TotpSecret, Error> {
        let parsed = crate::totp::StoredTotpSecret::parse(stored.as_str())?;
        match &self.keeping {
            // With a key, every stored secret goes through the sealer, which refuses `plain:`
            // values: someone who can write the column cannot plant a secret of their own.
            SecretKeeping::Sealed(sealer) => Ok(sealer.open(&parsed, user.as_str().as_bytes())?),
            SecretKeeping::Plain if !parsed.is_sealed() => Ok(parsed.open_plain()?),
            SecretKeeping::Plain | SecretKeeping::Refused => Err(Error::TotpKeyMissing),
        }
    }
}

impl Keyward {
    /// Re-seals a user's TOTP secrets (the active one and a pending one) under the current
    /// key of the configured [`TotpSealer`]: after a key rotation (the old key kept with
    /// [`TotpSealer::with_previous_key`]), or to move secrets stored plain into sealing.
    /// Secrets sealed under a previous key are also re-sealed automatically at the user's
    /// next successful TOTP sign-in; plain ones only through this call, because at sign-in a
    /// plain value where a key is configured is treated as tampering and refused. Returns
    /// whether anything changed.
    ///
    /// # Errors
    /// [`Error::TotpKeyMissing`] without a sealing key; a secret no known key opens;
    /// [`StoreError::Conflict`](crate::StoreError::Conflict) when the TOTP state changed
    /// meanwhile; store errors.
    pub fn reseal_totp_secret(&self, user: &UserId) -> Result<bool, Error> {
        self.reseal(user, true)
    }

    /// The automatic part of [`reseal_totp_secret`](Self::reseal_totp_secret): sealed
    /// secrets only, and a concurrent change simply wins.
    /// Best effort: it runs after a code was accepted, so nothing here may fail the sign-in.
    /// A secret that cannot be re-sealed now stays as it is and is tried again next time.
    pub(crate) fn reseal_if_rotated(&self, user: &UserId) -> bool {
        matches!(self.keeping, SecretKeeping::Sealed(_))
            && self.reseal(user, false).unwrap_or(false)
    }

    /// Whether TOTP secrets can be stored (a sealing key, or the plain opt-in).
    pub(crate) fn can_store_totp_secrets(&self) -> bool {
        !matches!(self.keeping, SecretKeeping::Refused)
    }

    fn reseal(&self, user: &UserId, include_plain: bool) -> Result<bool, Error> {
        let SecretKeeping::Sealed(sealer) = &self.keeping else {
            return Err(Error::TotpKeyMissing);
        };
        let current = self.load(user)?.totp;
        let context = user.as_str().as_bytes();
        let mut next = current.clone();
        for slot in [&mut next.secret, &mut next.pending_secret] {
            let Some(stored) = slot.as_ref() else {
                continue;
            };
            let parsed = crate::totp::StoredTotpSecret::parse(stored.as_str())?;
            let wanted = if parsed.is_sealed() {
                sealer.needs_reseal(&parsed)
            } else {
                include_plain
            };
            if wanted {
                let resealed = sealer.reseal(&parsed, context)?;
                *slot = Some(crate::user::StoredSecret::new(
                    resealed.to_storage_string().as_str(),
                ));
            }
        }
        if next == current {
            return Ok(false);
        }
        match self.store.replace_totp(user, &current, &next)? {
            crate::store::Swap::Swapped => Ok(true),
            _ => Err(crate::StoreError::Conflict { what: "TOTP state" }.into()),
        }
    }
}

/// The stored form of a hash.
pub(crate) fn stored(hash: &PasswordHash) -> StoredHash {
    StoredHash::new(hash.as_str())
}
