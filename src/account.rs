//! Accounts: creating users, importing them with a hash from another system, and their PIN.

use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::hash::ImportRecord;
use crate::permission::Permission;
use crate::secret::{Password, Pin};
use crate::service::{Keyward, stored};
use crate::store::{NewUser, UserRecord};
use crate::user::{PasswordCredential, PinCredential, User, UserId};

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

    /// Sets or removes a user's PIN (hashed like a password).
    ///
    /// # Errors
    /// [`Error::PinsDisabled`] when the deployment does not use PINs
    /// ([`Pins::Off`](crate::service::Pins::Off)); removing one is always allowed. Store and
    /// hashing errors; [`Error::UserNotFound`].
    pub fn set_pin(&self, user: &UserId, pin: Option<&Pin>) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.set_pin").entered();
        if pin.is_some() && self.pins == crate::service::Pins::Off {
            return Err(Error::PinsDisabled);
        }
        let now = self.now();
        let record = self.load(user)?;
        let credential = match pin {
            Some(pin) => {
                let hash = self.hasher.hash(&Password::new(pin.expose_secret()))?;
                Some(PinCredential::new(stored(&hash), now))
            }
            None => None,
        };
        let event = self.own_event(AuditAction::PinSet, user, &record.user.site);
        self.change_with_events(user, vec![event], |r| {
            r.pin.clone_from(&credential);
            true
        })?;
        Ok(())
    }
}
