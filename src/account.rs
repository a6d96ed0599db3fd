//! Accounts: creating users, importing them with a hash from another system, and the
//! self-service changes of one's own password and PIN; `account/contact.rs` holds one's own
//! contact details and their verification by code.

mod contact;

pub use contact::{ContactCodeSending, ContactConfirmation, RESEND_AFTER};

use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::guard::{FirstFactor, PinCheck};
use crate::hash::ImportRecord;
use crate::permission::Permission;
use crate::policy::PolicyViolation;
use crate::secret::{Password, Pin};
use crate::service::{Keyward, stored};
use crate::store::{NewUser, Swap, UserRecord, ops};
use crate::user::{PasswordCredential, StoredHash, User, UserId};

impl Keyward {
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
        let _span = tracing::info_span!("keyward.create_user").entered();
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
            record.password = Some(PasswordCredential::permanent(stored(&hash), now));
        }
        let (action, outcome) = (AuditAction::UserCreated, AuditOutcome::Succeeded);
        let (target, site) = (Some(&record.user.id), &record.user.site);
        let event = self.event(action, outcome, actor, target, site);
        // The user and the event recording them commit together.
        self.create_one(NewUser::new(record, event))
    }

    /// Imports a user with a hash brought from another system (see
    /// [`Hasher::import`](crate::hash::Hasher::import)): verified and upgraded to argon2id at
    /// the user's next successful sign-in.
    ///
    /// # Errors
    /// [`Error::Import`] naming the offending field (nothing is stored); store errors.
    pub fn import_user(&self, user: User, record: &ImportRecord) -> Result<User, Error> {
        let _span = tracing::info_span!("keyward.import_user").entered();
        self.create_one(self.imported(None, user, Some(record))?)
    }

    /// Self-service: a signed-in user changes their own password. The current one is checked
    /// first, counted on the password lock like a sign-in (so a stolen session cannot guess
    /// it); the new one must meet the user's password policy. A temporary password cannot be
    /// changed this way (the forced change after it is the path), nor can an SSO-linked user's.
    /// The new password and its event commit together, by compare-and-swap on the password
    /// that was checked.
    ///
    /// # Errors
    /// [`Error::ChangedMeanwhile`] when the password changed between the check and the write;
    /// [`Error::UserNotFound`]; store and hashing failures.
    pub fn change_password(
        &self,
        user: &UserId,
        current: &Password,
        new_password: Password,
    ) -> Result<OwnChange, Error> {
        let _span = tracing::info_span!("keyward.change_password").entered();
        let Some((record, checked)) = self.own_password_checked(user, current)? else {
            return Ok(OwnChange::Denied);
        };
        let rules = self.passwords.password_rules(&record.user);
        if let Err(violation) = rules.check(&new_password, &record.user) {
            return Ok(OwnChange::Rejected(violation));
        }
        let hash = self.hasher.hash(&new_password)?;
        let credential = PasswordCredential::permanent(stored(&hash), self.now());
        let event = self.own_event(AuditAction::PasswordChanged, user, &record.user.site);
        let swapped = self.change_with_events(user, vec![event], |r| {
            ops::swap_password(r, Some(&checked), Some(&credential)) == Swap::Swapped
        })?;
        if !swapped {
            return Err(Error::ChangedMeanwhile { what: "password" });
        }
        Ok(OwnChange::Changed)
    }

    /// Self-service: a signed-in user sets, changes or removes their own PIN, giving their
    /// password (counted on the password lock). Audited as `pin_set` by the user.
    ///
    /// # Errors
    /// [`Error::PinsDisabled`] (setting one where PINs are off); [`Error::UserNotFound`]; store
    /// and hashing failures.
    pub fn change_own_pin(
        &self,
        user: &UserId,
        password: &Password,
        pin: Option<&Pin>,
    ) -> Result<OwnChange, Error> {
        let _span = tracing::info_span!("keyward.change_own_pin").entered();
        if pin.is_some() && self.pins == crate::service::Pins::Off {
            return Err(Error::PinsDisabled);
        }
        let Some((record, _)) = self.own_password_checked(user, password)? else {
            return Ok(OwnChange::Denied);
        };
        let event = self.own_event(AuditAction::PinSet, user, &record.user.site);
        if !self.write_pin(user, pin, event, |_| true)? {
            return Err(Error::ChangedMeanwhile { what: "user" });
        }
        Ok(OwnChange::Changed)
    }

    /// The user's record and checked permanent password hash when `password` is their current
    /// password (an ordinary denial otherwise, audited, counted on the lock).
    fn own_password_checked(
        &self,
        user: &UserId,
        password: &Password,
    ) -> Result<Option<(UserRecord, StoredHash)>, Error> {
        let record = self.load(user)?;
        let usable = (record.password.as_ref())
            .filter(|c| c.temporary.is_none() && !record.user.sso_linked)
            .filter(|_| record.user.status == crate::user::UserStatus::Active)
            .map(|c| c.hash.clone());
        let checked = match &usable {
            Some(hash) => self.check_first_factor(&record, password, PinCheck::Skip, hash)?,
            None => {
                self.hasher.verify_dummy(password);
                FirstFactor::WrongPassword
            }
        };
        if let (FirstFactor::Passed { .. }, Some(hash)) = (&checked, usable) {
            return Ok(Some((record, hash)));
        }
        let id = Some(user);
        let event = self.event(
            AuditAction::PasswordChanged,
            AuditOutcome::Denied,
            id,
            id,
            &record.user.site,
        );
        self.audit(event.with_reason("current_password_wrong"))?;
        Ok(None)
    }
}

/// The outcome of a self-service change ([`Keyward::change_password`],
/// [`Keyward::change_own_pin`]).
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnChange {
    /// Done.
    Changed,
    /// The current password was wrong (or the account cannot change it this way: a temporary
    /// password, SSO, disabled, locked); counted on the lock and audited.
    Denied,
    /// The new password breaks a rule; nothing changed.
    Rejected(PolicyViolation),
}
