//! Escrow of temporary passwords: "show password" on the unclaimed list.
//!
//! keyward stores passwords as hashes, so a printed list that is lost cannot be printed
//! again. An application that wants an administrator to be able to show a user's temporary
//! password once more opts in with a key ring
//! ([`KeywardBuilder::temporary_password_escrow`](crate::KeywardBuilder::temporary_password_escrow)).
//! Every temporary password issued from then on is also stored sealed (XChaCha20-Poly1305,
//! the construction TOTP secrets use, under its own domain), with the user id and the batch
//! id as associated data, so a sealed copy moved to another user or batch does not open.
//!
//! The sealed copy lives inside the temporary credential: it is gone the moment the user
//! claims the account or a new password (a new batch) replaces it. A reveal refuses an
//! expired or used password and erases its copy; [`Keyward::erase_expired_escrow`] erases
//! every expired copy of a site, for a scheduled job. Revealing needs
//! [`Permission::RevealTemporaryPassword`] (administrators only by default) and is audited
//! each time.

use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::permission::Permission;
use crate::secret::TemporaryPassword;
use crate::service::Keyward;
use crate::store::{Swap, UserQuery, UserRecord};
use crate::totp::{TotpError, TotpSealer};
use crate::user::{BatchId, PasswordCredential, SiteId, StoredSecret, TemporaryStatus, UserId};

/// Domain separation: an escrowed password's ciphertext means nothing as a TOTP secret.
const DOMAIN: &[u8] = b"keyward temporary password escrow v1\0";
const PREFIX: &str = "escrow:v1:";

/// The associated data of one escrowed password: the user, the batch and the hash of the
/// credential it belongs to, so a sealed copy opens only inside the very credential it was
/// made for (not another user's, another batch's, nor an older one of the same user).
fn context(user: &UserId, credential: &PasswordCredential) -> Vec<u8> {
    let batch = (credential.temporary.as_ref())
        .and_then(|t| t.batch.as_ref())
        .map_or("", BatchId::as_str);
    let mut context = Vec::new();
    for part in [user.as_str(), batch, credential.hash.as_str()] {
        context.extend_from_slice(part.as_bytes());
        context.push(0);
    }
    context
}

fn seal(
    keys: &TotpSealer,
    password: &TemporaryPassword,
    credential: &PasswordCredential,
    user: &UserId,
) -> Result<StoredSecret, TotpError> {
    let context = context(user, credential);
    let plaintext = password.expose_secret().as_bytes();
    let (key_id, blob) = keys.seal_bytes(DOMAIN, plaintext, &context)?;
    let encoded = data_encoding::BASE64URL_NOPAD.encode(&blob);
    Ok(StoredSecret::new(format!("{PREFIX}{key_id}:{encoded}")))
}

fn open(
    keys: &TotpSealer,
    stored: &StoredSecret,
    credential: &PasswordCredential,
    user: &UserId,
) -> Result<TemporaryPassword, TotpError> {
    let malformed = |reason| TotpError::MalformedStoredSecret { reason };
    let rest = stored
        .as_str()
        .strip_prefix(PREFIX)
        .ok_or(malformed("not an escrowed password"))?;
    let (key_id, data) = rest.split_once(':').ok_or(malformed("missing key id"))?;
    let blob = data_encoding::BASE64URL_NOPAD
        .decode(data.as_bytes())
        .map_err(|_| malformed("ciphertext is not unpadded base64url"))?;
    let plaintext = keys.open_bytes(DOMAIN, key_id, &blob, &context(user, credential))?;
    let text = std::str::from_utf8(&plaintext).map_err(|_| malformed("not text"))?;
    Ok(TemporaryPassword::new(text))
}

impl Keyward {
    /// With escrow on, stores a sealed copy of `password` in its new `credential`.
    pub(crate) fn escrow(
        &self,
        credential: &mut PasswordCredential,
        password: &TemporaryPassword,
        user: &UserId,
    ) -> Result<(), Error> {
        let Some(keys) = &self.escrow else {
            return Ok(());
        };
        let sealed = seal(keys, password, credential, user)?;
        if let Some(t) = credential.temporary.as_mut() {
            t.escrow = Some(sealed);
        }
        Ok(())
    }

    /// Whether `record`'s temporary password can be revealed now (escrow on, a live temporary
    /// password with a sealed copy).
    pub(crate) fn revealable(&self, record: &UserRecord) -> bool {
        self.escrow.is_some()
            && record.unconsumed_temporary().is_some_and(|t| {
                t.escrow.is_some() && t.status(self.now()) == TemporaryStatus::Live
            })
    }

    /// Shows `target`'s temporary password again, from its escrowed copy. Needs
    /// [`Permission::RevealTemporaryPassword`]; every reveal is audited
    /// (`temporary_password_revealed`).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); [`Error::EscrowDisabled`] when escrow is off;
    /// [`Error::NothingToReveal`] when the user claimed the account, or the temporary password
    /// expired, was used or predates escrow (an expired copy is erased then); a copy no key of
    /// the ring opens ([`Error::Totp`]); store errors.
    pub fn reveal_temporary_password(
        &self,
        actor: &UserId,
        target: &UserId,
    ) -> Result<TemporaryPassword, Error> {
        let _span = tracing::info_span!("keyward.reveal_temporary_password").entered();
        let record = self.load(target)?;
        let site = &record.user.site;
        let (permission, action) = (
            Permission::RevealTemporaryPassword,
            AuditAction::TemporaryPasswordRevealed,
        );
        self.authorize(actor, permission, action, site, Some(&record.user))?;
        let refuse = |error: Error, reason: &str| -> Result<TemporaryPassword, Error> {
            let event = self.event(
                action,
                AuditOutcome::Denied,
                Some(actor),
                Some(target),
                site,
            );
            self.audit(event.with_reason(reason))?;
            Err(error)
        };
        let Some(keys) = &self.escrow else {
            return refuse(Error::EscrowDisabled, "escrow_disabled");
        };
        let nothing = || Error::NothingToReveal {
            user: target.clone(),
        };
        let found = record.password.as_ref().and_then(|credential| {
            let t = credential.temporary.as_ref()?;
            Some((credential, t, t.escrow.as_ref()?))
        });
        let Some((credential, t, stored)) = found else {
            return refuse(nothing(), "nothing_to_reveal");
        };
        if t.status(self.now()) != TemporaryStatus::Live {
            let reason = if self.erase_escrow(&record)? {
                "expired_copy_erased"
            } else {
                "nothing_to_reveal"
            };
            return refuse(nothing(), reason);
        }
        let password = match open(keys, stored, credential, target) {
            Ok(password) => password,
            Err(e) => return refuse(e.into(), "copy_does_not_open"),
        };
        let batch = t.batch.as_ref().map_or("none", BatchId::as_str);
        let event = self.event(
            action,
            AuditOutcome::Succeeded,
            Some(actor),
            Some(target),
            site,
        );
        self.audit(event.with_details(format!("batch={batch}")))?;
        Ok(password)
    }

    /// Erases the escrowed copies of every temporary password of `site` that expired or was
    /// used, and returns how many; run it from a scheduled job so that no copy outlives its
    /// password for long. Audited (`temporary_password_removed`, details `escrow erased=N`)
    /// when anything was erased.
    ///
    /// # Errors
    /// Store errors.
    pub fn erase_expired_escrow(&self, site: &SiteId) -> Result<u64, Error> {
        let _span = tracing::info_span!("keyward.erase_expired_escrow").entered();
        let mut erased = 0;
        let temporary = UserQuery::new(site.clone(), self.now()).temporary_password_only();
        self.each_user(temporary, |record| {
            let stale = (record.unconsumed_temporary()).is_some_and(|t| {
                t.escrow.is_some() && t.status(self.now()) != TemporaryStatus::Live
            });
            if stale && self.erase_escrow(&record)? {
                erased += 1;
            }
            Ok(())
        })?;
        if erased > 0 {
            let (action, outcome) = (
                AuditAction::TemporaryPasswordRemoved,
                AuditOutcome::Succeeded,
            );
            let event = self.event(action, outcome, None, None, site);
            self.audit(event.with_details(format!("escrow erased={erased}")))?;
        }
        Ok(erased)
    }

    /// Removes the escrowed copy from `record`'s credential (compare-and-swap: a password
    /// changed meanwhile is left alone). Whether it was removed.
    fn erase_escrow(&self, record: &UserRecord) -> Result<bool, Error> {
        let Some(current) = &record.password else {
            return Ok(false);
        };
        let mut next = current.clone();
        if let Some(t) = next.temporary.as_mut() {
            t.escrow = None;
        }
        let swap =
            self.store
                .replace_password(&record.user.id, Some(&current.hash), Some(&next))?;
        Ok(swap == Swap::Swapped)
    }
}
