//! Delivery of messages to users. Sending email or SMS is the application's job: keyward
//! builds the message as data ([`Message`]: kind, recipient, the secret, its expiry, the
//! user's display name and site) and hands it to a [`Notifier`], which renders it in the
//! application's words and language ([`MessageKind::key`] names it for translations) or
//! takes the default English text ([`Message::render_english`]). [`Outbox`] keeps messages in
//! memory for tests and examples; without a notifier ([`NoNotifier`]) every delivery fails.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::user::{SiteId, User, UserId};

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipient {
    /// An email address.
    Email(String),
    /// A phone number for SMS.
    Sms(String),
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Email(address) => write!(f, "email {address}"),
            Self::Sms(number) => write!(f, "SMS {number}"),
        }
    }
}

/// What a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// A new temporary password.
    TemporaryPassword,
    /// A password-reset link or token.
    PasswordReset,
    /// A device-authorization code after an authenticator reset.
    DeviceCode,
    /// A code proving control of an email address or phone number.
    ContactVerification,
}

impl MessageKind {
    /// A stable key for the application's translations (`message.temporary_password`,
    /// `message.password_reset`, `message.device_code`, `message.contact_verification`).
    #[must_use]
    pub fn key(self) -> &'static str {
        match self {
            Self::TemporaryPassword => "message.temporary_password",
            Self::PasswordReset => "message.password_reset",
            Self::DeviceCode => "message.device_code",
            Self::ContactVerification => "message.contact_verification",
        }
    }
}

/// The secret a message delivers (a temporary password, a reset token, a device code):
/// zeroized on drop, never shown by `Debug`, read only through
/// [`expose_secret`](Self::expose_secret).
pub struct DeliveredSecret(Zeroizing<String>);

impl DeliveredSecret {
    pub(crate) fn new(secret: &str) -> Self {
        Self(Zeroizing::new(secret.to_owned()))
    }

    /// The secret itself, to put into the application's own text.
    #[must_use]
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for DeliveredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeliveredSecret(***)")
    }
}

/// A message for one user, as data: the application renders it in its own words and
/// language (or takes [`render_english`](Self::render_english)) and delivers it.
#[non_exhaustive]
pub struct Message {
    /// Where it goes.
    pub to: Recipient,
    /// What it is about.
    pub kind: MessageKind,
    /// The secret it delivers.
    pub secret: DeliveredSecret,
    /// When the secret stops working.
    pub expires_at: OffsetDateTime,
    /// The user it is for.
    pub user: UserId,
    /// The user's name as it should be shown ("Forename Surname").
    pub display_name: String,
    /// The user's site.
    pub site: SiteId,
}

/// A message rendered as text: a subject (no secret) and a body (holding the secret,
/// zeroized on drop).
#[non_exhaustive]
pub struct RenderedMessage {
    /// The subject line.
    pub subject: String,
    /// The body.
    pub body: Zeroizing<String>,
}

impl fmt::Debug for RenderedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RenderedMessage")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Concatenates `parts` (one or more of them secret) into one zeroizing buffer reserved up
/// front, so that no reallocation leaves a copy of the secret behind in freed memory.
pub(crate) fn secret_text(parts: &[&str]) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for part in parts {
        text.push_str(part);
    }
    text
}

impl Message {
    /// A message delivering `secret` to `to` for `user`, expiring at `expires_at`.
    #[must_use]
    pub fn new(
        to: Recipient,
        kind: MessageKind,
        secret: &str,
        expires_at: OffsetDateTime,
        user: &User,
    ) -> Self {
        Self {
            to,
            kind,
            secret: DeliveredSecret::new(secret),
            expires_at,
            user: user.id.clone(),
            display_name: format!("{} {}", user.forename, user.surname)
                .trim()
                .to_owned(),
            site: user.site.clone(),
        }
    }

    /// The default English text. The body's buffer is reserved up front and zeroized, so
    /// the secret leaves no copy in freed memory.
    #[must_use]
    pub fn render_english(&self) -> RenderedMessage {
        let secret = self.secret.expose_secret();
        let date = self.expires_at.date().to_string();
        let time = format!(
            "{:02}:{:02} UTC",
            self.expires_at.hour(),
            self.expires_at.minute()
        );
        let greeting = format!("Hello {},\n\n", self.display_name);
        let (subject, parts): (&str, Vec<&str>) = match self.kind {
            MessageKind::TemporaryPassword => (
                "Your temporary password",
                vec![
                    &greeting,
                    "Your temporary password is ",
                    secret,
                    ". It expires on ",
                    &date,
                    ".",
                ],
            ),
            MessageKind::PasswordReset => (
                "Reset your password",
                vec![
                    &greeting,
                    "Use this code to choose a new password: ",
                    secret,
                    "\nIt works once and expires on ",
                    &date,
                    " at ",
                    &time,
                    ".",
                ],
            ),
            MessageKind::DeviceCode => (
                "Your sign-in code",
                vec![
                    &greeting,
                    "Your sign-in code is ",
                    secret,
                    ". It expires at ",
                    &time,
                    ". If you did not try to sign in, tell your administrator.",
                ],
            ),
            MessageKind::ContactVerification => (
                "Confirm your contact details",
                vec![
                    &greeting,
                    "Your confirmation code is ",
                    secret,
                    ". It expires at ",
                    &time,
                    ". If you did not ask for it, you can ignore this message.",
                ],
            ),
        };
        RenderedMessage {
            subject: subject.to_owned(),
            body: secret_text(&parts),
        }
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .field("site", &self.site)
            .finish_non_exhaustive()
    }
}

/// The application's confirmation that a message was handed over for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeliveryReceipt {
    /// Where it went.
    pub to: Recipient,
    /// The delivery service's reference, if any.
    pub reference: Option<String>,
}

impl DeliveryReceipt {
    /// A receipt.
    #[must_use]
    pub fn new(to: Recipient, reference: Option<String>) -> Self {
        Self { to, reference }
    }
}

/// Delivery failed.
#[derive(Debug, thiserror::Error)]
#[error("delivery to {to} failed: {reason}")]
#[non_exhaustive]
pub struct NotifyError {
    /// Where it should have gone.
    pub to: Recipient,
    /// Why it failed (never the message body).
    pub reason: String,
}

impl NotifyError {
    /// A delivery failure.
    #[must_use]
    pub fn new(to: Recipient, reason: impl Into<String>) -> Self {
        Self {
            to,
            reason: reason.into(),
        }
    }
}

/// Sends messages. Implement it with the application's email or SMS service.
pub trait Notifier: Send + Sync + fmt::Debug {
    /// Sends one message.
    ///
    /// # Errors
    /// [`NotifyError`] when the message could not be handed over.
    fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError>;
}

/// What a service built without [`KeywardBuilder::notifier`](crate::KeywardBuilder::notifier)
/// delivers with: nothing. Every message fails with a [`NotifyError`] naming the missing
/// setting, so an operation that must deliver a code (a device code, a reset link, a
/// temporary password sent by email) fails loudly instead of the code vanishing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError> {
        let reason = "no notifier is configured (see KeywardBuilder::notifier)";
        Err(NotifyError::new(message.to, reason))
    }
}

/// Sends messages from async code: the [`Notifier`] of an application whose email or SMS
/// client is async (feature `tokio`). keyward's flows are blocking code, so they reach it
/// through a [`BlockingBridge`], which [`KeywardBuilder::async_notifier`] sets up.
///
/// Implement it with `async fn send(&self, message: Message) -> Result<..>`; the future must
/// be `Send`, as every future a multi-thread runtime may move is.
///
/// [`KeywardBuilder::async_notifier`]: crate::KeywardBuilder::async_notifier
#[cfg(feature = "tokio")]
pub trait AsyncNotifier: Send + Sync + fmt::Debug {
    /// Sends one message.
    ///
    /// # Errors
    /// [`NotifyError`] when the message could not be handed over.
    fn send(
        &self,
        message: Message,
    ) -> impl Future<Output = Result<DeliveryReceipt, NotifyError>> + Send;
}

/// A [`Notifier`] that drives an [`AsyncNotifier`] to completion on a tokio runtime, with
/// [`Handle::block_on`](tokio::runtime::Handle::block_on), from the blocking thread that
/// called it (feature `tokio`).
///
/// Blocking a thread on a future is what tokio allows on its blocking pool and on plain
/// threads, which is where keyward runs when driven through
/// [`AsyncKeyward`](crate::nonblocking::AsyncKeyward). It is what tokio forbids on a runtime's
/// own worker threads: calling the blocking [`Keyward`](crate::Keyward) straight from an async
/// task (not through the async face, nor through `spawn_blocking`) with this notifier
/// panics there, when a message is sent. The message, and the secret in it, moves into the
/// future and is zeroized when the future drops it.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub struct BlockingBridge<N> {
    handle: tokio::runtime::Handle,
    notifier: N,
}

#[cfg(feature = "tokio")]
impl<N: AsyncNotifier> BlockingBridge<N> {
    /// Runs `notifier`'s futures on the runtime of `handle` (usually
    /// `tokio::runtime::Handle::current()`, taken inside the runtime at start-up).
    #[must_use]
    pub fn new(handle: tokio::runtime::Handle, notifier: N) -> Self {
        Self { handle, notifier }
    }

    /// The async notifier it drives.
    #[must_use]
    pub fn notifier(&self) -> &N {
        &self.notifier
    }
}

#[cfg(feature = "tokio")]
impl<N: AsyncNotifier> Notifier for BlockingBridge<N> {
    fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError> {
        self.handle.block_on(self.notifier.send(message))
    }
}

/// An in-memory outbox: keeps every message, for tests and examples.
#[derive(Debug, Default)]
pub struct Outbox {
    messages: Mutex<Vec<Message>>,
}

impl Outbox {
    /// An empty outbox.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Removes and returns every message sent so far.
    pub fn take_all(&self) -> Vec<Message> {
        std::mem::take(&mut *self.messages.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Removes and returns the newest message to `to`, if any.
    pub fn take_last_to(&self, to: &Recipient) -> Option<Message> {
        let mut messages = self.messages.lock().unwrap_or_else(PoisonError::into_inner);
        let index = messages.iter().rposition(|m| &m.to == to)?;
        Some(messages.remove(index))
    }

    /// Number of messages waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no message is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Notifier for Outbox {
    fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError> {
        let receipt = DeliveryReceipt::new(message.to.clone(), None);
        self.messages
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message);
        Ok(receipt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn message(kind: MessageKind, secret: &str) -> Message {
        let site = SiteId::new("north").unwrap_or_else(|_| unreachable!());
        let user = User::new(
            site,
            "ada",
            "Ada",
            "Lovelace",
            "staff",
            datetime!(2026-01-01 0:00 UTC),
        );
        let to = Recipient::Email("a@example.org".into());
        Message::new(to, kind, secret, datetime!(2026-01-02 9:30 UTC), &user)
    }

    #[test]
    fn debug_hides_the_secret() {
        let m = message(MessageKind::DeviceCode, "73921654");
        for shown in [format!("{m:?}"), format!("{:?}", m.render_english())] {
            assert!(!shown.contains("73921654"), "{shown}");
        }
        assert!(format!("{m:?}").contains("a@example.org"));
    }

    #[test]
    fn the_english_rendering_names_the_user_the_secret_and_the_expiry() {
        let m = message(MessageKind::PasswordReset, "uid.TOKEN");
        assert_eq!(m.display_name, "Ada Lovelace");
        assert_eq!(m.secret.expose_secret(), "uid.TOKEN");
        let text = m.render_english();
        assert_eq!(text.subject, "Reset your password");
        for part in ["Hello Ada Lovelace", "uid.TOKEN", "2026-01-02", "09:30 UTC"] {
            assert!(text.body.contains(part), "{part}: {}", text.body.as_str());
        }
        let keys = [
            MessageKind::TemporaryPassword,
            MessageKind::PasswordReset,
            MessageKind::DeviceCode,
        ]
        .map(MessageKind::key);
        assert_eq!(
            keys,
            [
                "message.temporary_password",
                "message.password_reset",
                "message.device_code"
            ]
        );
    }

    #[test]
    fn outbox_keeps_messages_in_order() {
        let outbox = Outbox::new();
        for secret in ["one", "two"] {
            outbox
                .send(message(MessageKind::TemporaryPassword, secret))
                .unwrap();
        }
        assert_eq!(outbox.len(), 2);
        let to = Recipient::Email("a@example.org".into());
        assert_eq!(
            outbox.take_last_to(&to).unwrap().secret.expose_secret(),
            "two"
        );
        assert_eq!(outbox.take_all().len(), 1);
        assert!(outbox.is_empty());
    }
}
