//! Break-glass recovery of a site whose administrators cannot sign in.
//!
//! Five wrong confirmations of a bulk regeneration lock an administrator, and a locked-out
//! last administrator leaves nobody who may unlock anyone. Recovery needs no actor: whoever
//! can call it already holds the database (the store handle), which is the real authority
//! over every account in it. It is still audited, as recovery, so it never goes unseen.

use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::secret::TemporaryPassword;
use crate::service::{Keyward, stored};
use crate::store::{LockCounter, StoreError, Swap};
use crate::user::{Role, SiteId, TemporaryMode, UserStatus};

impl Keyward {
    /// Recovers the administrator `username` of `site`: both lock counters are cleared and a
    /// generated single-use temporary password replaces their password (shown once, here;
    /// never escrowed or delivered), so the next sign-in forces a new one. Audited as
    /// `administrator_recovered` with no actor.
    ///
    /// For operators with direct access to the database only (the admin tool's `recover`):
    /// an application must not expose it to its users.
    ///
    /// # Errors
    /// [`Error::UsernameNotFound`]; [`Error::NotAnAdministrator`] for any other role;
    /// [`Error::UserDisabled`] for a disabled administrator (enabling is a decision, not a
    /// recovery); store and hashing errors.
    pub fn recover_administrator(
        &self,
        site: &SiteId,
        username: &str,
    ) -> Result<TemporaryPassword, Error> {
        let Some(record) = self.store.find_user(site, username)? else {
            return Err(Error::UsernameNotFound { site: site.clone() });
        };
        let user = &record.user;
        if user.role != Role::Administrator {
            return Err(Error::NotAnAdministrator {
                user: user.id.clone(),
            });
        }
        if user.status != UserStatus::Active {
            return Err(Error::UserDisabled {
                user: user.id.clone(),
            });
        }
        let rules = self.temporary.temporary_rules(user);
        let generated = rules.generate();
        let hash = self.hasher.hash(&generated.password.to_password())?;
        let now = self.now();
        let mode = TemporaryMode::SingleUse;
        let credential = rules.issue(stored(&hash), now, mode, user.id.clone(), None);
        let seen = record.password.as_ref().map(|p| &p.hash);
        if self
            .store
            .replace_password(&user.id, seen, Some(&credential))?
            != Swap::Swapped
        {
            let what = "password (changed meanwhile)";
            return Err(StoreError::Conflict { what }.into());
        }
        for counter in [LockCounter::Password, LockCounter::Totp] {
            self.unlock_counter(user, counter, &user.id)?;
        }
        let (action, outcome) = (AuditAction::AdministratorRecovered, AuditOutcome::Succeeded);
        let event = self.event(action, outcome, None, Some(&user.id), site);
        let details = format!(
            "break-glass; temporary password expires_at={}",
            credential.temporary.as_ref().map_or(now, |t| t.expires_at)
        );
        self.audit(
            event
                .with_reason("direct database access")
                .with_details(details),
        )?;
        Ok(generated.password)
    }
}
