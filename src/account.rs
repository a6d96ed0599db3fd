//! Accounts: creating users, importing them with a hash from another system, and their PIN.

use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::hash::ImportRecord;
use crate::permission::Permission;
use crate::secret::{Password, Pin};
use crate::service::{Keyward, stored};
use crate::store::UserRecord;
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
        self.store.create_user(&record)?;
        let (action, outcome) = (AuditAction::UserCreated, AuditOutcome::Succeeded);
        let (target, site) = (Some(&record.user.id), &record.user.site);
        self.audit(self.event(action, outcome, actor, target, site))?;
        Ok(record.user)
    }

    /// Imports a user with a hash brought from another system (see
    /// [`Hasher::import`](crate::hash::Hasher::import)): verified and upgraded to argon2id at
    /// the user's next successful sign-in.
    ///
    /// # Errors
    /// [`Error::Import`] naming the offending field (nothing is stored); store errors.
    pub fn import_user(&self, user: User, record: &ImportRecord) -> Result<User, Error> {
        user.validate()?;
        let hash = self.hasher.import(record)?;
        let mut stored_record = UserRecord::new(user);
        // Issued by nobody in this system: the user themself.
        let issuer = stored_record.user.id.clone();
        let credential = self.imported_credential(&stored_record.user, &hash, record, issuer);
        stored_record.password = Some(credential);
        self.store.create_user(&stored_record)?;
        let (action, outcome) = (AuditAction::UserCreated, AuditOutcome::Succeeded);
        let (target, site) = (Some(&stored_record.user.id), &stored_record.user.site);
        let event = self.event(action, outcome, None, target, site);
        self.audit(event.with_details(format!("imported {} hash", hash.scheme())))?;
        Ok(stored_record.user)
    }

    /// Sets or removes a user's PIN (hashed like a password).
    ///
    /// # Errors
    /// Store and hashing errors; [`Error::UserNotFound`].
    pub fn set_pin(&self, user: &UserId, pin: Option<&Pin>) -> Result<(), Error> {
        let now = self.now();
        let record = self.load(user)?;
        let credential = match pin {
            Some(pin) => {
                let hash = self.hasher.hash(&Password::new(pin.expose_secret()))?;
                Some(PinCredential::new(stored(&hash), now))
            }
            None => None,
        };
        self.store.set_pin(user, credential.as_ref())?;
        self.audit(self.own_event(AuditAction::PinSet, user, &record.user.site))
    }
}
