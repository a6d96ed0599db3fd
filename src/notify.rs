//! Delivery of messages to users. Sending email or SMS is the application's job: keyward
//! builds the message and hands it to a [`Notifier`]. [`Outbox`] keeps messages in memory
//! for tests and examples.

use std::fmt;
use std::sync::{Mutex, PoisonError};

use zeroize::Zeroizing;

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
}

/// A message for one user. Its body carries a secret: it is zeroized on drop and never shown
/// by `Debug`.
#[non_exhaustive]
pub struct Message {
    /// Where it goes.
    pub to: Recipient,
    /// What it is about.
    pub kind: MessageKind,
    /// Subject line (no secrets).
    pub subject: String,
    body: Zeroizing<String>,
}

/// Concatenates `parts` (one or more of them secret) into one buffer reserved up front, so
/// that no reallocation leaves a copy of the secret behind in freed memory; the result goes
/// straight into a [`Message`], which zeroizes it.
pub(crate) fn secret_text(parts: &[&str]) -> String {
    let mut text = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for part in parts {
        text.push_str(part);
    }
    text
}

impl Message {
    /// A message.
    #[must_use]
    pub fn new(to: Recipient, kind: MessageKind, subject: impl Into<String>, body: String) -> Self {
        Self {
            to,
            kind,
            subject: subject.into(),
            body: Zeroizing::new(body),
        }
    }

    /// The body, which contains the secret being delivered.
    #[must_use]
    pub fn expose_body(&self) -> &str {
        &self.body
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("to", &self.to)
            .field("kind", &self.kind)
            .field("subject", &self.subject)
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

    #[test]
    fn debug_hides_the_body() {
        let m = Message::new(
            Recipient::Email("a@example.org".into()),
            MessageKind::DeviceCode,
            "Your code",
            "Your code is 73921654".into(),
        );
        let shown = format!("{m:?}");
        assert!(!shown.contains("73921654"), "{shown}");
        assert!(shown.contains("a@example.org"));
    }

    #[test]
    fn outbox_keeps_messages_in_order() {
        let outbox = Outbox::new();
        let to = Recipient::Sms("+441234".into());
        for body in ["one", "two"] {
            outbox
                .send(Message::new(
                    to.clone(),
                    MessageKind::TemporaryPassword,
                    "s",
                    body.into(),
                ))
                .unwrap();
        }
        assert_eq!(outbox.len(), 2);
        assert_eq!(outbox.take_last_to(&to).unwrap().expose_body(), "two");
        assert_eq!(outbox.take_all().len(), 1);
        assert!(outbox.is_empty());
    }
}
