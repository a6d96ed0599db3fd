//! Password reset by emailed token.
//!
//! A reset token is `<user id>.<secret>`: 256 random bits in unpadded base32 after the user id
//! (so the token finds its user without a lookup table). Only SHA-256 of the secret is stored:
//! with 256 bits of entropy a slow hash adds nothing. Tokens expire (default 1 hour), are
//! single-use, allow a bounded number of wrong tries, and the newest voids older ones.

use rand::{Rng, TryRngCore};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::notify::{
    DeliveryReceipt, Message, MessageKind, Recipient, secret_text as secret_text_of,
};
use crate::permission::Permission;
use crate::policy::PolicyViolation;
use crate::secret::{OneTimeCode, Password};
use crate::service::{Keyward, stored};
use crate::store::{Consumed, LockCounter, OneTimeKind, OneTimeTry, Swap, ops};
use crate::user::{
    OneTimeCredential, PasswordCredential, SiteId, StoredHash, User, UserId, UserStatus,
};

const TOKEN_HASH_PREFIX: &str = "$sha256$";

fn token_digest(secret: &str) -> String {
    format!(
        "{TOKEN_HASH_PREFIX}{}",
        data_encoding::HEXLOWER.encode(&Sha256::digest(secret.as_bytes()))
    )
}

/// The outcome of [`Keyward::reset_password`].
#[must_use = "every outcome must be handled"]
#[derive(Debug)]
#[non_exhaustive]
pub enum PasswordReset {
    /// The new password is set and the password lock is cleared.
    Done {
        /// The user.
        user: UserId,
    },
    /// The token is unknown, wrong, used, expired or out of tries.
    InvalidToken,
    /// The new password breaks a rule; the token stays valid for another try.
    Rejected(PolicyViolation),
}

impl Keyward {
    /// Self-service: sends a reset token to the user's verified email, if the username exists
    /// and has one. Always returns `Ok(())` for unknown users too, so the answer reveals
    /// nothing; the audit trail records what happened. The message goes through your
    /// [`Notifier`](crate::notify::Notifier) in-line: make it hand messages to a queue, so
    /// that the response time does not tell known usernames from unknown ones either.
    ///
    /// A message that cannot be delivered changes nothing in the answer either: the token is
    /// withdrawn, the audit trail records `delivery_failed`, and the error goes to the hook set
    /// with [`KeywardBuilder::on_error`](crate::KeywardBuilder::on_error).
    ///
    /// # Errors
    /// Store failures (never a delivery failure, never anything about the username).
    pub fn request_password_reset(&self, site: &SiteId, username: &str) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.request_password_reset").entered();
        match self.store.find_user(site, username)? {
            Some(record)
                if record.user.status == UserStatus::Active
                    && !record.holds_admin_managed_password()
                    && !record.password_lock.is_locked_by_administrator(self.now()) =>
            {
                match self.send_reset(&record.user, None) {
                    // Undelivered: the caller hears the same `Ok` as for anyone else; the
                    // audit trail and the application's hook hear the truth.
                    Err(error @ Error::Notify(_)) => {
                        let (action, outcome) =
                            (AuditAction::PasswordResetSent, AuditOutcome::Denied);
                        let target = Some(&record.user.id);
                        let event = self.event(action, outcome, None, target, site);
                        self.audit(event.with_reason("delivery_failed"))?;
                        self.errors.report(&error);
                    }
                    other => drop(other?),
                }
            }
            found => {
                let reason = match &found {
                    None => "unknown_user",
                    Some(r) if r.user.status != UserStatus::Active => "disabled",
                    Some(r) if r.holds_admin_managed_password() => "admin_managed_password",
                    Some(_) => "locked_by_administrator",
                };
                let (action, outcome) = (AuditAction::PasswordResetSent, AuditOutcome::Denied);
                let target = found.as_ref().map(|r| &r.user.id);
                let event = self.event(action, outcome, None, target, site);
                self.audit(event.with_reason(reason))?;
            }
        }
        Ok(())
    }

    /// An administrator sends a reset token to `target`'s verified email.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`]; [`Error::NoVerifiedContact`]; store and delivery errors.
    pub fn send_password_reset(
        &self,
        actor: &UserId,
        target: &UserId,
    ) -> Result<DeliveryReceipt, Error> {
        let _span = tracing::info_span!("keyward.send_password_reset").entered();
        let record = self.load(target)?;
        let (permission, action) = (
            Permission::SendPasswordReset,
            AuditAction::PasswordResetSent,
        );
        self.authorize(
            actor,
            permission,
            action,
            &record.user.site,
            Some(&record.user),
        )?;
        if record.user.status != UserStatus::Active {
            return Err(Error::UserDisabled {
                user: target.clone(),
            });
        }
        if record.holds_admin_managed_password() {
            return Err(Error::AdminManagedPassword {
                user: target.clone(),
            });
        }
        self.send_reset(&record.user, Some(actor))?
            .ok_or(Error::NoVerifiedContact { channel: "email" })
    }

    pub(crate) fn send_reset(
        &self,
        user: &User,
        actor: Option<&UserId>,
    ) -> Result<Option<DeliveryReceipt>, Error> {
        let now = self.now();
        let Some(email) = user.email.as_ref().filter(|_| user.email_verified) else {
            let (action, outcome) = (AuditAction::PasswordResetSent, AuditOutcome::Denied);
            let event = self.event(action, outcome, actor, Some(&user.id), &user.site);
            self.audit(event.with_reason("no_verified_email"))?;
            return Ok(None);
        };
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.unwrap_err().fill(&mut secret);
        let secret_text = zeroize::Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&secret));
        zeroize::Zeroize::zeroize(&mut secret);
        // The buffer moves into the code (no copy); the emptied wrapper has nothing to clear.
        let mut token = secret_text_of(&[user.id.as_str(), ".", &secret_text]);
        let token = OneTimeCode::new(std::mem::take(&mut *token));
        let credential = OneTimeCredential::new(
            StoredHash::new(token_digest(&secret_text)),
            now,
            now.saturating_add(self.codes.reset_token_lifetime),
        );
        self.store
            .set_one_time(&user.id, OneTimeKind::ResetToken, Some(&credential))?;
        let message = Message::new(
            Recipient::Email(email.clone()),
            MessageKind::PasswordReset,
            token.expose_secret(),
            credential.expires_at,
            user,
        );
        let receipt = match self.notifier.send(message) {
            Ok(receipt) => receipt,
            Err(e) => {
                // An undelivered token is withdrawn: nobody can hold it.
                let _ = (self.store).consume_one_time(
                    &user.id,
                    OneTimeKind::ResetToken,
                    &credential.hash,
                );
                return Err(e.into());
            }
        };
        let (action, outcome) = (AuditAction::PasswordResetSent, AuditOutcome::Succeeded);
        let event = self.event(action, outcome, actor, Some(&user.id), &user.site);
        self.audit(event.with_details(format!("sent to {}", receipt.to)))?;
        Ok(Some(receipt))
    }

    /// Sets a new password with a reset token. A valid token is consumed only when the new
    /// password is accepted; the password lock is cleared (proving control of the email is
    /// the way back in after a lock).
    ///
    /// # Errors
    /// Store and hashing failures.
    pub fn reset_password(
        &self,
        token: &OneTimeCode,
        new_password: Password,
    ) -> Result<PasswordReset, Error> {
        let _span = tracing::info_span!("keyward.reset_password").entered();
        let Some((id, secret)) = token.expose_secret().trim().split_once('.') else {
            return Ok(PasswordReset::InvalidToken);
        };
        let Ok(id) = UserId::parse(id) else {
            return Ok(PasswordReset::InvalidToken);
        };
        let Some(record) = self.store.get_user(&id)? else {
            return Ok(PasswordReset::InvalidToken);
        };
        if record.user.status != UserStatus::Active {
            return Ok(PasswordReset::InvalidToken);
        }
        let now = self.now();
        let deny = |reason: &str| -> Result<PasswordReset, Error> {
            let (action, outcome) = (AuditAction::PasswordReset, AuditOutcome::Denied);
            let event = self.event(action, outcome, Some(&id), Some(&id), &record.user.site);
            self.audit(event.with_reason(reason))?;
            Ok(PasswordReset::InvalidToken)
        };
        if record.holds_admin_managed_password() {
            return deny("admin_managed_password");
        }
        // A reset lifts a lock of failures (proving control of the email is the way back),
        // never one an administrator set by hand.
        if record.password_lock.is_locked_by_administrator(now) {
            return deny("locked_by_administrator");
        }
        let credential = match self.store.try_one_time(
            &id,
            OneTimeKind::ResetToken,
            self.codes.reset_token_max_tries,
            now,
        )? {
            OneTimeTry::Available(credential) => credential,
            OneTimeTry::Absent => return deny("no_token"),
            OneTimeTry::Expired => return deny("token_expired"),
            OneTimeTry::Exhausted => return deny("token_exhausted"),
        };
        let presented = token_digest(secret);
        if !bool::from(
            presented
                .as_bytes()
                .ct_eq(credential.hash.as_str().as_bytes()),
        ) {
            return deny("wrong_token");
        }
        if let Err(violation) = self
            .passwords
            .password_rules(&record.user)
            .check(&new_password, &record.user)
        {
            return Ok(PasswordReset::Rejected(violation));
        }
        let hash = self.hasher.hash(&new_password)?;
        if self
            .store
            .consume_one_time(&id, OneTimeKind::ResetToken, &credential.hash)?
            != Consumed::Now
        {
            return deny("token_used");
        }
        // Compare-and-swap against the password this reset saw: a change an administrator
        // made meanwhile wins.
        let seen = record.password.as_ref().map(|p| p.hash.clone());
        let new = PasswordCredential::permanent(stored(&hash), now);
        let event = self.own_event(AuditAction::PasswordReset, &id, &record.user.site);
        // The new password, the cleared lock and the event: one transaction.
        let mut unlock = self.unlocking(&record.user, &id, &[LockCounter::Password]);
        let reset = self.change_with_events(&id, vec![event], |r| {
            ops::swap_password(r, seen.as_ref(), Some(&new)) == Swap::Swapped && unlock(r)
        })?;
        if !reset {
            return deny("password_changed_meanwhile");
        }
        Ok(PasswordReset::Done { user: id })
    }
}
