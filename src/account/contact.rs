//! A user's own contact details: changing them (with a step-up) and proving control of an
//! email address or phone number with a code sent there.
//!
//! A contact code follows the device-code rules of [`CodeRules`](crate::policy::CodeRules)
//! (8 digits, 10 minutes, 5 wrong tries by default); the newest voids an older one. It is
//! hashed like a password together with the channel and the address it went to, so a code
//! verifies only the address it was sent to: once the address changes, the code is dead.

use zeroize::Zeroizing;

use crate::admin::Channel;
use crate::admin::lifecycle::{channel_name, same_profile, set_contact_of, withdraw_sent_to_old};
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::notify::{Message, MessageKind, Recipient};
use crate::secret::{OneTimeCode, Password};
use crate::service::{Keyward, stored};
use crate::signin::StepUp;
use crate::stamp;
use crate::store::{Consumed, OneTimeKind, OneTimeTry, UserRecord, ops};
use crate::user::{InvalidField, OneTimeCredential, User, UserId};

/// The answer of [`Keyward::send_contact_code`].
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactCodeSending {
    /// A code went to the address; it works until `expires_at`.
    Sent {
        /// When the code stops working.
        expires_at: time::OffsetDateTime,
    },
    /// The address is verified already: nothing was sent.
    AlreadyVerified,
    /// A code went out less than [`RESEND_AFTER`] ago: nothing was sent (so that nobody can
    /// flood an address with messages); the code sent then still works.
    TooSoon {
        /// When a new code may be sent.
        retry_at: time::OffsetDateTime,
    },
}

/// How long after one contact code the next may be sent (one minute).
pub const RESEND_AFTER: time::Duration = time::Duration::minutes(1);

/// The answer of [`Keyward::confirm_contact`].
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactConfirmation {
    /// The address is verified.
    Verified,
    /// The code was wrong; the user may try again while tries remain.
    WrongCode,
    /// No code can verify this address any more (none sent, expired, out of tries, or the
    /// address changed since): send a new one.
    NoLiveCode,
}

impl Keyward {
    /// Self-service: a signed-in user sets, changes or removes their own email address or
    /// phone number. Takes a fresh `step_up` of the same user: the email address is where
    /// password-reset links and device codes go, so a stolen session alone must not redirect
    /// them. The new value is unverified until its code comes back
    /// ([`send_contact_code`](Self::send_contact_code), [`confirm_contact`](Self::confirm_contact));
    /// a code sent to the old value is withdrawn. Audited as `contact_changed` by the user.
    ///
    /// # Errors
    /// [`Error::StepUpRequired`] without a step-up that still holds, or when the account
    /// changed since; [`Error::InvalidUser`] for a value the profile rules refuse;
    /// store errors.
    pub fn change_own_contact(
        &self,
        user: &UserId,
        step_up: StepUp,
        channel: Channel,
        value: Option<&str>,
    ) -> Result<User, Error> {
        let _span = tracing::info_span!("keyward.change_own_contact").entered();
        let record = self.load(user)?;
        if !self.step_up_holds_on(&record, &step_up) {
            return Err(Error::StepUpRequired { user: user.clone() });
        }
        let mut next = record.user.clone();
        if !set_contact_of(&mut next, channel, value) {
            return Ok(record.user);
        }
        next.validate()?;
        let event = self.own_event(AuditAction::ContactChanged, user, &record.user.site);
        let event = event.with_details(format!("channel={}", channel_name(channel)));
        let proof = step_up.binding();
        let mut after = None;
        let mut apply = |r: &mut UserRecord| {
            after = None;
            let holds = stamp::same_binding(&stamp::binding(r), &proof);
            if !holds || !same_profile(&r.user, &record.user) {
                return Vec::new();
            }
            let last_sign_in_at = r.user.last_sign_in_at;
            r.user = next.clone();
            r.user.last_sign_in_at = last_sign_in_at;
            withdraw_sent_to_old(r, channel);
            after = Some(r.user.clone());
            vec![event.clone()]
        };
        self.store.change_profile_recorded(user, &mut apply)?;
        let Some(after) = after else {
            return Err(Error::StepUpRequired { user: user.clone() });
        };
        crate::audit::trace(&event);
        Ok(after)
    }

    /// Sends a code to the user's email address (`Channel::Email`) or phone number
    /// (`Channel::Sms`) through the notifier, to prove they control it. The code and its
    /// `contact_code_sent` event commit before the message goes out; an undelivered code is
    /// withdrawn again (with a `delivery_failed` event) and the delivery error returned. One
    /// code per [`RESEND_AFTER`] at most.
    ///
    /// # Errors
    /// [`Error::InvalidUser`] when the user has no address on that channel;
    /// [`Error::Notify`] when delivery fails; store and hashing errors.
    pub fn send_contact_code(
        &self,
        user: &UserId,
        channel: Channel,
    ) -> Result<ContactCodeSending, Error> {
        let _span = tracing::info_span!("keyward.send_contact_code").entered();
        let record = self.load(user)?;
        let Some((address, verified)) = contact_of(&record.user, channel) else {
            let field = channel_name(channel);
            return Err(InvalidField {
                field,
                reason: "is not set",
            }
            .into());
        };
        if verified {
            return Ok(ContactCodeSending::AlreadyVerified);
        }
        let now = self.now();
        if let Some(last) = &record.contact_code {
            let retry_at = last.issued_at.saturating_add(RESEND_AFTER);
            if now < retry_at {
                return Ok(ContactCodeSending::TooSoon { retry_at });
            }
        }
        let code = self.codes.device_code();
        let hash = self
            .hasher
            .hash(&bound_code(channel, &address, code.expose_secret()))?;
        let expires_at = now.saturating_add(self.codes.device_code_lifetime);
        let credential = OneTimeCredential::new(stored(&hash), now, expires_at);
        let (action, site, id) = (AuditAction::ContactCodeSent, &record.user.site, Some(user));
        let details = format!("channel={}", channel_name(channel));
        let sent = self.event(action, AuditOutcome::Succeeded, id, id, site);
        self.change_with_events(user, vec![sent.with_details(details.clone())], |r| {
            *ops::one_time_slot(r, OneTimeKind::ContactCode) = Some(credential.clone());
            true
        })?;
        let to = match channel {
            Channel::Email => Recipient::Email(address),
            Channel::Sms => Recipient::Sms(address),
        };
        let kind = MessageKind::ContactVerification;
        let message = Message::new(to, kind, code.expose_secret(), expires_at, &record.user);
        if let Err(e) = self.notifier.send(message) {
            let failed = self.event(action, AuditOutcome::Denied, id, id, site);
            let failed = failed.with_reason("delivery_failed").with_details(details);
            let _ = self.change_with_events(user, vec![failed], |r| {
                ops::consume_code(r, OneTimeKind::ContactCode, &credential.hash) == Consumed::Now
            });
            return Err(e.into());
        }
        Ok(ContactCodeSending::Sent { expires_at })
    }

    /// Checks a code sent by [`send_contact_code`](Self::send_contact_code): when it is right
    /// for the address the user has now on `channel`, the address is verified (the code is
    /// used up, with a `contact_verified` event, in one transaction). Wrong codes count
    /// against the code's tries.
    ///
    /// # Errors
    /// Store and hashing errors.
    pub fn confirm_contact(
        &self,
        user: &UserId,
        channel: Channel,
        code: &OneTimeCode,
    ) -> Result<ContactConfirmation, Error> {
        let _span = tracing::info_span!("keyward.confirm_contact").entered();
        let record = self.load(user)?;
        let site = &record.user.site;
        let Some((address, verified)) = contact_of(&record.user, channel) else {
            return Ok(ContactConfirmation::NoLiveCode);
        };
        if verified {
            return Ok(ContactConfirmation::NoLiveCode);
        }
        let now = self.now();
        let max_tries = self.codes.device_code_max_tries;
        let kind = OneTimeKind::ContactCode;
        let credential = match self.store.try_one_time(user, kind, max_tries, now)? {
            OneTimeTry::Available(credential) => credential,
            _ => return Ok(ContactConfirmation::NoLiveCode),
        };
        let given = bound_code(channel, &address, code.expose_secret());
        let matched = self.verify_secret(&given, &credential.hash)?;
        let (action, id) = (AuditAction::ContactVerified, Some(user));
        let details = format!("channel={}", channel_name(channel));
        if !matched.is_match() {
            let event = self.event(action, AuditOutcome::Denied, id, id, site);
            self.audit(event.with_reason("wrong_code").with_details(details))?;
            return Ok(ContactConfirmation::WrongCode);
        }
        let event = self.event(action, AuditOutcome::Succeeded, id, id, site);
        let event = event.with_details(details);
        let mut done = false;
        let mut apply = |r: &mut UserRecord| {
            done = false;
            // The same code, for the same address, used once.
            let still = contact_of(&r.user, channel).is_some_and(|(a, _)| a == address);
            let consumed = still
                && ops::consume_code(r, OneTimeKind::ContactCode, &credential.hash)
                    == Consumed::Now;
            if !consumed {
                return Vec::new();
            }
            match channel {
                Channel::Email => r.user.email_verified = true,
                Channel::Sms => r.user.phone_verified = true,
            }
            done = true;
            vec![event.clone()]
        };
        self.store.change_profile_recorded(user, &mut apply)?;
        if !done {
            return Ok(ContactConfirmation::NoLiveCode);
        }
        crate::audit::trace(&event);
        Ok(ContactConfirmation::Verified)
    }
}

/// The user's address on `channel` and whether it is verified.
fn contact_of(user: &User, channel: Channel) -> Option<(String, bool)> {
    match channel {
        Channel::Email => user.email.clone().map(|e| (e, user.email_verified)),
        Channel::Sms => user.phone.clone().map(|p| (p, user.phone_verified)),
    }
}

/// What a contact code is hashed as: the channel, the address and the code, so that it
/// verifies only the address it was sent to. Built in a buffer of its final size, zeroized.
fn bound_code(channel: Channel, address: &str, code: &str) -> Password {
    let name = channel_name(channel);
    let mut text = Zeroizing::new(String::with_capacity(
        name.len() + address.len() + code.len() + 2,
    ));
    text.push_str(name);
    text.push('\0');
    text.push_str(address);
    text.push('\0');
    text.push_str(code);
    Password::new(std::mem::take(&mut *text))
}
