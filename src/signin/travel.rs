//! Pending steps that travel: sealed into an opaque string for a cookie or a session store,
//! opened again by any server that shares the store and the step keys.
//!
//! A sealed step is `kws1.<key id>.<base64url: 24-byte nonce || ciphertext || tag>`:
//! XChaCha20-Poly1305 under the current key of the application's step key ring
//! ([`KeywardBuilder::step_keys`](crate::KeywardBuilder::step_keys), the same ring type and
//! rotation as for TOTP secrets, with a domain of its own in the associated data). The
//! plaintext is a small JSON document: the kind of step, the user and site, when it was
//! issued, the sign-in's flags, the step's binding to the account
//! (`stamp::binding`), and for an enrollment the new secret and its account name.
//! The client can neither read it nor change it.
//!
//! Opening checks the seal and the expiry only (no store read). Finishing the step checks the
//! binding against the account as it is then: a password change, a TOTP reset, an enrollment
//! replaced, disabling or locking the account void the step, and finishing a step changes
//! what it is bound to (a TOTP step accepted, a device code consumed, a secret confirmed, a
//! password set), so the same string cannot finish twice.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::outcome::{
    Context, Denial, DenialReason, PendingDeviceAuthorization, PendingEnrollment,
    PendingPasswordChange, PendingTotp,
};
use crate::error::Error;
use crate::secret::TotpSecret;
use crate::service::Keyward;
use crate::totp::Enrollment;
use crate::user::{SiteId, UserId};

const PREFIX: &str = "kws1.";
/// Domain of the associated data, so a sealed step means nothing as any other sealed value.
const AAD_DOMAIN: &[u8] = b"keyward pending step v1\0";
/// Longest string `open_step` looks at; a sealed enrollment is well under 1 KiB.
pub const MAX_SEALED_STEP_LEN: usize = 4096;
/// Room for the plaintext: a fixed, zeroized buffer, so the bytes holding an enrollment's
/// secret are never reallocated (which would leave a copy behind in freed memory).
const PLAINTEXT_CAPACITY: usize = 4096;

/// A pending sign-in step of any kind: what [`Keyward::seal_step`] takes and
/// [`Keyward::open_step`] gives back.
#[derive(Debug)]
#[non_exhaustive]
pub enum PendingStep {
    /// A new password is due after a single-use temporary password.
    PasswordChange(PendingPasswordChange),
    /// A TOTP code is due.
    Totp(PendingTotp),
    /// The emailed device-authorization code is due.
    DeviceAuthorization(PendingDeviceAuthorization),
    /// The first code of a new authenticator is due.
    Enrollment(PendingEnrollment),
}

impl PendingStep {
    /// The user the step belongs to.
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.ctx().user
    }

    fn ctx(&self) -> &Context {
        match self {
            Self::PasswordChange(p) => &p.ctx,
            Self::Totp(p) => &p.ctx,
            Self::DeviceAuthorization(p) => &p.ctx,
            Self::Enrollment(p) => &p.ctx,
        }
    }
}

macro_rules! into_step {
    ($($ty:ident => $variant:ident),*) => {$(
        impl From<$ty> for PendingStep {
            fn from(step: $ty) -> Self {
                Self::$variant(step)
            }
        }
    )*};
}
into_step!(
    PendingPasswordChange => PasswordChange,
    PendingTotp => Totp,
    PendingDeviceAuthorization => DeviceAuthorization,
    PendingEnrollment => Enrollment
);

/// A sealed pending step: opaque text to keep in a cookie or a session store. `Debug` shows
/// its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedStep(String);

impl SealedStep {
    /// The text to keep.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text to keep, owned.
    #[must_use]
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for SealedStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SealedStep")
            .field("len", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// The sealed plaintext. Short keys: the string travels in a cookie.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload<'a> {
    /// Kind: `p`assword change, `t`otp, `d`evice authorization, `e`nrollment.
    k: char,
    #[serde(borrow)]
    u: Cow<'a, str>,
    #[serde(borrow)]
    s: Cow<'a, str>,
    /// Issued at, Unix nanoseconds.
    t: i64,
    r: bool,
    h: bool,
    c: bool,
    i: bool,
    /// Recovery codes are due when the sign-in completes (it enrolled an authenticator).
    #[serde(default)]
    n: bool,
    /// The binding, unpadded base64url.
    #[serde(borrow)]
    b: Cow<'a, str>,
    /// Device authorization: where the code went.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    e: Option<Cow<'a, str>>,
    /// Enrollment: the account name.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    a: Option<Cow<'a, str>>,
    /// Enrollment: the new secret, unpadded base32. Borrowed from the zeroizing plaintext
    /// when opened (base32 never needs a JSON escape), so no copy of it is made.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    x: Option<&'a str>,
}

impl Keyward {
    /// Seals a pending step into an opaque string (see the module documentation in
    /// `signin/travel.rs`, or DESIGN.md, "Steps that travel"), to be resumed with
    /// [`open_step`](Self::open_step) by this or any server sharing the store and the step
    /// keys. Seal the step a call hands back after a wrong answer again: it replaces the
    /// previous string.
    ///
    /// # Errors
    /// [`Error::Totp`] if the random source fails.
    pub fn seal_step(&self, step: impl Into<PendingStep>) -> Result<SealedStep, Error> {
        let step = step.into();
        let ctx = step.ctx();
        let (kind, issued_at, retry) = match &step {
            PendingStep::PasswordChange(p) => ('p', p.issued_at, p.retry),
            PendingStep::Totp(p) => ('t', p.issued_at, p.retry),
            PendingStep::DeviceAuthorization(p) => ('d', p.issued_at, p.retry),
            PendingStep::Enrollment(p) => ('e', p.issued_at, p.retry),
        };
        let secret = match &step {
            PendingStep::Enrollment(p) => Some(p.enrollment.secret().to_base32()),
            _ => None,
        };
        let binding = data_encoding::BASE64URL_NOPAD.encode(&ctx.binding);
        let payload = Payload {
            k: kind,
            u: Cow::Borrowed(ctx.user.as_str()),
            s: Cow::Borrowed(ctx.site.as_str()),
            t: nanos(issued_at),
            r: retry,
            h: ctx.hash_upgraded,
            c: ctx.change_password,
            i: ctx.signing_in,
            n: ctx.recovery_codes_due,
            b: Cow::Owned(binding),
            e: match &step {
                PendingStep::DeviceAuthorization(p) => Some(Cow::Borrowed(p.sent_to.as_str())),
                _ => None,
            },
            a: match &step {
                PendingStep::Enrollment(p) => Some(Cow::Borrowed(p.enrollment.account())),
                _ => None,
            },
            x: secret.as_ref().map(|s| s.as_str()),
        };
        // A fixed buffer: a payload that does not fit is an error, never a reallocation.
        let mut buffer = Zeroizing::new([0_u8; PLAINTEXT_CAPACITY]);
        let mut writer = std::io::Cursor::new(&mut buffer[..]);
        serde_json::to_writer(&mut writer, &payload).map_err(|_| Error::StepTooLarge)?;
        let len = usize::try_from(writer.position()).map_err(|_| Error::StepTooLarge)?;
        let plaintext = buffer.get(..len).ok_or(Error::StepTooLarge)?;
        let (key_id, blob) = self.steps.seal_bytes(AAD_DOMAIN, plaintext, b"")?;
        let text = data_encoding::BASE64URL_NOPAD.encode(&blob);
        Ok(SealedStep(format!("{PREFIX}{key_id}.{text}")))
    }

    /// Opens a step sealed by [`seal_step`](Self::seal_step), on this or any server with the
    /// same step keys; finish it with the method its kind names. No store read: the step's
    /// binding to the account is checked when it is finished.
    ///
    /// The string is untrusted: anything tampered, truncated, sealed under a key the ring
    /// does not hold (current or previous) or not a sealed step is
    /// [`DenialReason::StepInvalid`]; a step older than
    /// [`CodeRules::pending_step_lifetime`](crate::policy::CodeRules::pending_step_lifetime)
    /// is [`DenialReason::StepExpired`]. Neither writes an audit event (the string cannot be
    /// trusted to name a user); show [`Denial::user_message`] and start the sign-in again.
    ///
    /// # Errors
    /// A [`Denial`] as above.
    pub fn open_step(&self, sealed: &str) -> Result<PendingStep, Denial> {
        let _span = tracing::info_span!("keyward.open_step").entered();
        let Some((step, issued_at)) = self.open_payload(sealed) else {
            tracing::info!(
                reason = "step_invalid",
                len = sealed.len(),
                "sealed step refused"
            );
            return Err(Denial::new(DenialReason::StepInvalid, None));
        };
        if self.codes.step_expired(issued_at, self.now()) {
            let user = step.user().clone();
            tracing::info!(
                reason = "step_expired",
                user = user.as_str(),
                "sealed step refused"
            );
            return Err(Denial::new(DenialReason::StepExpired, Some(user)));
        }
        Ok(step)
    }

    /// The step inside a sealed string, or `None` for anything that does not open and parse.
    fn open_payload(&self, sealed: &str) -> Option<(PendingStep, OffsetDateTime)> {
        if sealed.len() > MAX_SEALED_STEP_LEN {
            return None;
        }
        // The key id may hold dots; unpadded base64url never does.
        let (key_id, data) = sealed.strip_prefix(PREFIX)?.rsplit_once('.')?;
        let blob = data_encoding::BASE64URL_NOPAD
            .decode(data.as_bytes())
            .ok()?;
        let plaintext = self.steps.open_bytes(AAD_DOMAIN, key_id, &blob, b"").ok()?;
        let p: Payload<'_> = serde_json::from_slice(&plaintext).ok()?;
        let issued_at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(p.t)).ok()?;
        let mut binding = [0_u8; 32];
        let decoded = data_encoding::BASE64URL_NOPAD.decode(p.b.as_bytes()).ok()?;
        binding.copy_from_slice(decoded.get(..32).filter(|_| decoded.len() == 32)?);
        let ctx = Context {
            user: UserId::parse(p.u.as_ref()).ok()?,
            site: SiteId::new(p.s.as_ref()).ok()?,
            hash_upgraded: p.h,
            binding,
            change_password: p.c,
            signing_in: p.i,
            recovery_codes_due: p.n,
        };
        let retry = p.r;
        let step = match (p.k, p.e, p.a, p.x) {
            ('p', None, None, None) => PendingStep::PasswordChange(PendingPasswordChange {
                ctx,
                issued_at,
                retry,
            }),
            ('t', None, None, None) => PendingStep::Totp(PendingTotp {
                ctx,
                issued_at,
                retry,
            }),
            ('d', Some(sent_to), None, None) => {
                PendingStep::DeviceAuthorization(PendingDeviceAuthorization {
                    ctx,
                    issued_at,
                    retry,
                    sent_to: sent_to.into_owned(),
                })
            }
            ('e', None, Some(account), Some(secret)) => {
                let bytes = data_encoding::BASE32_NOPAD.decode(secret.as_bytes()).ok()?;
                let secret = TotpSecret::from_bytes(bytes);
                let enrollment = Enrollment::from_secret(&self.totp, &account, secret).ok()?;
                PendingStep::Enrollment(PendingEnrollment {
                    ctx,
                    issued_at,
                    retry,
                    enrollment,
                })
            }
            _ => return None,
        };
        Some((step, issued_at))
    }
}

/// Unix nanoseconds of an instant; saturates outside the years 1677 to 2262, which only a
/// broken clock reaches (and then the step is simply expired or early).
fn nanos(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos()).unwrap_or(if at.unix_timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}
