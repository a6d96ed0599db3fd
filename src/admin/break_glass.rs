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
use crate::store::{LockCounter, Swap, ops};
use crate::user::{Role, SiteId, TemporaryMode, TotpState, UserId, UserStatus};

impl Keyward {
    /// Recovers the administrator `username` of `site`: both lock counters are cleared and a
    /// generated single-use temporary password replaces their password (shown once, here;
    /// never escrowed or delivered), so the next sign-in forces a new one; with `reset_totp`
    /// their authenticator is reset too (a lost device). Audited as `administrator_recovered`
    /// with no actor, refusals included.
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
        reset_totp: bool,
    ) -> Result<TemporaryPassword, Error> {
        let _span = tracing::info_span!("keyward.recover_administrator").entered();
        let action = AuditAction::AdministratorRecovered;
        let refuse = |target: Option<&UserId>, reason: &str, error: Error| {
            let event = self.event(action, AuditOutcome::Denied, None, target, site);
            self.audit(event.with_reason(reason))?;
            Err(error)
        };
        let Some(record) = self.store.find_user(site, username)? else {
            let error = Error::UsernameNotFound { site: site.clone() };
            return refuse(None, "unknown_user", error);
        };
        let user = &record.user;
        if user.role != Role::Administrator {
            let error = Error::NotAnAdministrator {
                user: user.id.clone(),
            };
            return refuse(Some(&user.id), "not_an_administrator", error);
        }
        if user.status != UserStatus::Active {
            let error = Error::UserDisabled {
                user: user.id.clone(),
            };
            return refuse(Some(&user.id), "disabled", error);
        }
        let rules = self.temporary.temporary_rules(user);
        let generated = rules.generate();
        let hash = self.hasher.hash(&generated.password.to_password())?;
        let now = self.now();
        let mode = TemporaryMode::SingleUse;
        let credential = rules.issue(stored(&hash), now, mode, user.id.clone(), None);
        let event = self.event(action, AuditOutcome::Succeeded, None, Some(&user.id), site);
        let expires_at = credential.temporary.as_ref().map_or(now, |t| t.expires_at);
        let details = format!("break-glass; totp_reset={reset_totp}; expires_at={expires_at}");
        let event = event
            .with_reason("direct database access")
            .with_details(details);
        // The password, the unlock, the authenticator reset and the event: one transaction.
        let seen = record.password.as_ref().map(|p| p.hash.clone());
        let mut unlock =
            self.unlocking(user, &user.id, &[LockCounter::Password, LockCounter::Totp]);
        let recovered = self.change_with_events(&user.id, vec![event], |r| {
            if ops::swap_password(r, seen.as_ref(), Some(&credential)) != Swap::Swapped {
                return false;
            }
            if reset_totp {
                // As an administrator's reset: the next sign-in asks for an emailed device
                // code, then a new enrollment.
                r.totp = TotpState {
                    reset_pending: true,
                    ..TotpState::default()
                };
            }
            unlock(r)
        })?;
        if !recovered {
            return Err(Error::ChangedMeanwhile { what: "password" });
        }
        Ok(generated.password)
    }
}
