//! What a sign-in step returns: [`SignIn`] and its pending steps, [`Denial`] with its
//! [`DenialReason`], and [`PasswordChange`]. Plain types; the flows live in
//! [`crate::signin`].

use std::fmt;

use time::OffsetDateTime;

use crate::policy::PolicyViolation;
use crate::stamp::SecurityStamp;
use crate::totp::Enrollment;
use crate::totp::recovery_codes::RecoveryCodes;
use crate::user::{SiteId, User, UserId};

/// The outcome of a sign-in step.
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug)]
pub enum SignIn {
    /// The user is signed in.
    Authenticated(Authenticated),
    /// A single-use temporary password was used: the user must set a new password now.
    PasswordChangeRequired(PendingPasswordChange),
    /// The user must give a code from their authenticator.
    TotpRequired(PendingTotp),
    /// After an authenticator reset: the user must give the code sent to their email.
    DeviceAuthorizationRequired(PendingDeviceAuthorization),
    /// After device authorization: the user must add the new secret to an authenticator and
    /// confirm it with a code.
    TotpEnrollmentRequired(PendingEnrollment),
    /// Self-service enrollment only (never a sign-in): the new authenticator is active.
    /// The account's stamp changed with it: keep the new one with the session.
    AuthenticatorAdded(AuthenticatorAdded),
    /// Sign-in refused.
    Denied(Denial),
}

/// A signed-in user's new authenticator is active ([`SignIn::AuthenticatorAdded`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthenticatorAdded {
    pub(super) user: UserId,
    pub(super) stamp: SecurityStamp,
    pub(super) recovery_codes: Option<RecoveryCodes>,
}

impl AuthenticatorAdded {
    /// The user.
    #[must_use]
    pub fn user(&self) -> &UserId {
        &self.user
    }

    /// The account's new security stamp, to replace the session's.
    #[must_use]
    pub fn stamp(&self) -> &SecurityStamp {
        &self.stamp
    }

    /// The recovery codes made for the new authenticator (the old set is void), to show the
    /// user now: this is the only time they can be read. `None` where
    /// [`CodeRules::recovery_codes`](crate::policy::CodeRules::recovery_codes) is 0.
    pub fn take_recovery_codes(&mut self) -> Option<RecoveryCodes> {
        self.recovery_codes.take()
    }
}

/// A completed sign-in.
#[derive(Debug)]
#[non_exhaustive]
pub struct Authenticated {
    pub(super) user: User,
    pub(super) hash_upgraded: bool,
    pub(super) stamp: SecurityStamp,
    /// Boxed: rare, and it would grow every `SignIn`.
    pub(super) recovery_codes: Option<Box<RecoveryCodes>>,
}

impl Authenticated {
    /// The signed-in user.
    #[must_use]
    pub fn user(&self) -> &User {
        &self.user
    }

    /// Whether a legacy or weaker hash was upgraded to the current argon2id policy during
    /// this sign-in.
    #[must_use]
    pub fn hash_upgraded(&self) -> bool {
        self.hash_upgraded
    }

    /// The account's security stamp as the sign-in left it: keep it with the session and
    /// check it on each request with [`Keyward::check_session`](crate::Keyward::check_session),
    /// which says when a password, PIN, TOTP, role, site, status or lock change has ended the
    /// session.
    #[must_use]
    pub fn stamp(&self) -> &SecurityStamp {
        &self.stamp
    }

    /// The recovery codes made when this sign-in enrolled a new authenticator (after an
    /// authenticator reset), to show the user now: this is the only time they can be read.
    /// `None` for every other sign-in.
    pub fn take_recovery_codes(&mut self) -> Option<RecoveryCodes> {
        self.recovery_codes.take().map(|codes| *codes)
    }
}

/// Why a sign-in was refused. Shown to administrators and in the audit trail; end users see
/// only [`Denial::user_message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DenialReason {
    /// No user with that username in the site.
    UnknownUser,
    /// The account is disabled.
    Disabled,
    /// The user has no standard login (SSO-linked without a temporary password, or no
    /// password at all).
    NoPasswordLogin,
    /// Wrong password.
    WrongPassword,
    /// The PIN was missing or wrong.
    WrongPin,
    /// The temporary password was right but has expired.
    TemporaryPasswordExpired,
    /// The single-use temporary password was already used.
    TemporaryPasswordUsed,
    /// The account is locked.
    Locked {
        /// End of a temporary lock; `None` until an administrator unlocks.
        until: Option<OffsetDateTime>,
    },
    /// Refused without evaluation: as many attempts as may still fail were already being
    /// evaluated (a parallel guessing attack).
    TooManyAttempts,
    /// The TOTP code was wrong, malformed or already used.
    WrongTotpCode,
    /// The recovery code was wrong, malformed or already used (counted on the TOTP lock).
    WrongRecoveryCode,
    /// Too many wrong TOTP codes: the second factor is locked.
    TotpLocked {
        /// End of a temporary lock; `None` until an administrator unlocks.
        until: Option<OffsetDateTime>,
    },
    /// The device-authorization code has expired; the next sign-in sends a new one.
    DeviceCodeExpired,
    /// The device-authorization code used up its tries; the next sign-in sends a new one.
    DeviceCodeExhausted,
    /// The authenticator was reset but the user has no verified email to receive a
    /// device-authorization code.
    NoVerifiedEmail,
    /// The pending step waited too long.
    StepExpired,
    /// The account changed while a step was pending (password changed or removed,
    /// authenticator reset, enrollment replaced, or the step was already finished): the
    /// sign-in must start again.
    AccountChanged,
    /// A sealed step could not be opened: tampered, truncated, sealed under a key the ring
    /// does not hold, or not a sealed step at all.
    StepInvalid,
}

impl DenialReason {
    /// The stable text recorded in the audit trail.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownUser => "unknown_user",
            Self::Disabled => "disabled",
            Self::NoPasswordLogin => "no_password_login",
            Self::WrongPassword => "wrong_password",
            Self::WrongPin => "wrong_pin",
            Self::TemporaryPasswordExpired => "temporary_password_expired",
            Self::TemporaryPasswordUsed => "temporary_password_used",
            Self::Locked { .. } => "locked",
            Self::TooManyAttempts => "too_many_attempts",
            Self::WrongTotpCode => "wrong_totp_code",
            Self::WrongRecoveryCode => "wrong_recovery_code",
            Self::TotpLocked { .. } => "totp_locked",
            Self::DeviceCodeExpired => "device_code_expired",
            Self::DeviceCodeExhausted => "device_code_exhausted",
            Self::NoVerifiedEmail => "no_verified_email",
            Self::StepExpired => "step_expired",
            Self::AccountChanged => "account_changed",
            Self::StepInvalid => "step_invalid",
        }
    }

    /// Whether this reason belongs to the first factor, where every reason must look the
    /// same to the person signing in.
    #[must_use]
    pub fn is_first_factor(self) -> bool {
        matches!(
            self,
            Self::UnknownUser
                | Self::Disabled
                | Self::NoPasswordLogin
                | Self::WrongPassword
                | Self::WrongPin
                | Self::TemporaryPasswordExpired
                | Self::TemporaryPasswordUsed
                | Self::Locked { .. }
                | Self::TooManyAttempts
        )
    }

    /// A stable key for the application's translation of [`admin_hint`](Self::admin_hint):
    /// `admin_hint.` followed by what to do (`admin_hint.issue_temporary_password`, ...).
    #[must_use]
    pub fn admin_hint_key(self) -> Option<&'static str> {
        Some(match self {
            Self::TemporaryPasswordExpired | Self::TemporaryPasswordUsed => {
                "admin_hint.issue_temporary_password"
            }
            Self::Locked { until: None } | Self::TotpLocked { until: None } => {
                "admin_hint.unlock_after_checking"
            }
            Self::NoVerifiedEmail => "admin_hint.verify_email_or_reset_in_person",
            Self::NoPasswordLogin => "admin_hint.temporary_password_for_outage",
            Self::Disabled => "admin_hint.enable_account",
            _ => return None,
        })
    }

    /// What an administrator should do about it, where there is something to do.
    #[must_use]
    pub fn admin_hint(self) -> Option<&'static str> {
        match self {
            Self::TemporaryPasswordExpired => Some("issue a new temporary password"),
            Self::TemporaryPasswordUsed => Some("issue a new temporary password"),
            Self::Locked { until: None } | Self::TotpLocked { until: None } => {
                Some("unlock the account after checking the audit trail")
            }
            Self::NoVerifiedEmail => Some(
                "add and verify the user's email address, or confirm the user's identity in \
                 person and reset their authenticator again once they can receive email",
            ),
            Self::NoPasswordLogin => Some("issue a temporary password if the directory is down"),
            Self::Disabled => Some("re-enable the account if it should sign in"),
            _ => None,
        }
    }
}

impl fmt::Display for DenialReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused sign-in: one message for the end user, the precise reason for everyone else.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Denial {
    reason: DenialReason,
    user: Option<UserId>,
}

/// The one message every first-factor denial shows (no account enumeration).
pub const FIRST_FACTOR_MESSAGE: &str = "The username or password is incorrect.";

impl Denial {
    pub(super) fn new(reason: DenialReason, user: Option<UserId>) -> Self {
        Self { reason, user }
    }

    /// The precise reason: for logs, the audit trail and admin screens, never for the person
    /// signing in.
    #[must_use]
    pub fn reason(&self) -> DenialReason {
        self.reason
    }

    /// The user the attempt was for, when the username was known.
    #[must_use]
    pub fn user(&self) -> Option<&UserId> {
        self.user.as_ref()
    }

    /// A stable key for the application's translation of
    /// [`user_message`](Self::user_message): every first-factor denial has the same one
    /// (`signin.first_factor`).
    #[must_use]
    pub fn user_message_key(&self) -> &'static str {
        match self.reason {
            r if r.is_first_factor() => "signin.first_factor",
            DenialReason::WrongTotpCode | DenialReason::WrongRecoveryCode => "signin.wrong_code",
            DenialReason::TotpLocked { .. } => "signin.second_factor_locked",
            DenialReason::DeviceCodeExpired | DenialReason::DeviceCodeExhausted => {
                "signin.device_code_spent"
            }
            DenialReason::NoVerifiedEmail => "signin.needs_administrator",
            _ => "signin.start_again",
        }
    }

    /// The message to show the person signing in. Every first-factor denial (unknown user,
    /// wrong password or PIN, expired temporary password, locked account) shows the same one.
    #[must_use]
    pub fn user_message(&self) -> &'static str {
        match self.reason {
            r if r.is_first_factor() => FIRST_FACTOR_MESSAGE,
            DenialReason::WrongTotpCode | DenialReason::WrongRecoveryCode => {
                "The code is incorrect."
            }
            DenialReason::TotpLocked { .. } => {
                "Too many incorrect codes. Please contact your administrator."
            }
            DenialReason::DeviceCodeExpired | DenialReason::DeviceCodeExhausted => {
                "The code can no longer be used. Sign in again to receive a new one."
            }
            DenialReason::NoVerifiedEmail => {
                "Your sign-in needs an administrator's help. Please contact them."
            }
            _ => "Please sign in again.",
        }
    }
}

/// Declares a pending step: opaque, not `Clone`, carrying the sign-in's [`Context`], when it
/// was issued and whether it is a retry, plus the fields given. Every path is written in full.
macro_rules! pending {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[non_exhaustive]
        pub struct $name {
            pub(super) ctx: $crate::signin::outcome::Context,
            pub(super) issued_at: ::time::OffsetDateTime,
            pub(super) retry: bool,
            $(pub(super) $field: $ty,)*
        }

        impl $name {
            /// The user this step belongs to.
            #[must_use]
            pub fn user(&self) -> &$crate::user::UserId {
                &self.ctx.user
            }

            /// Whether this step is offered again because the previous answer was wrong.
            #[must_use]
            pub fn is_retry(&self) -> bool {
                self.retry
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("user", &self.ctx.user)
                    .field("issued_at", &self.issued_at)
                    .field("retry", &self.retry)
                    .finish_non_exhaustive()
            }
        }
    };
}

pending!(
    /// A single-use temporary password was used (and any second factor passed): the user must
    /// set a new password now; finish with
    /// [`Keyward::complete_password_change`](crate::Keyward::complete_password_change).
    PendingPasswordChange {}
);
pending!(
    /// Waiting for a TOTP code; finish with
    /// [`Keyward::verify_totp`](crate::Keyward::verify_totp).
    PendingTotp {}
);
pending!(
    /// Waiting for the emailed device-authorization code; finish with
    /// [`Keyward::authorize_device`](crate::Keyward::authorize_device).
    PendingDeviceAuthorization { sent_to: String }
);
pending!(
    /// Waiting for the first code from a newly added authenticator; finish with
    /// [`Keyward::confirm_enrollment`](crate::Keyward::confirm_enrollment).
    PendingEnrollment { enrollment: Enrollment }
);

impl PendingDeviceAuthorization {
    /// The email address the code went to (for "we sent a code to …").
    #[must_use]
    pub fn sent_to(&self) -> &str {
        &self.sent_to
    }
}

impl PendingEnrollment {
    /// The new secret's `otpauth://` URI and QR code, to show the user.
    #[must_use]
    pub fn enrollment(&self) -> &Enrollment {
        &self.enrollment
    }
}

/// The outcome of [`Keyward::complete_password_change`](crate::Keyward::complete_password_change).
#[must_use = "every outcome must be handled"]
#[non_exhaustive]
#[derive(Debug)]
pub enum PasswordChange {
    /// The new password is set; the sign-in continues (TOTP steps may follow).
    Changed(SignIn),
    /// The new password breaks a rule; the pending change is handed back to try again.
    Rejected(PendingPasswordChange, PolicyViolation),
    /// The step waited too long, or the account changed meanwhile.
    Denied(Denial),
}

/// What a sign-in has established so far; carried by every pending step (sealed, when the
/// step travels: see `signin/travel.rs`).
#[derive(Debug, Clone)]
pub(super) struct Context {
    pub(super) user: UserId,
    pub(super) site: SiteId,
    pub(super) hash_upgraded: bool,
    /// The account state and sign-in progress the step was issued on
    /// (`stamp::binding`): the step is void once any of it changed, and finishing it
    /// changes it.
    pub(super) binding: [u8; 32],
    /// A single-use temporary password was used: a new password is due once any second
    /// factor has passed.
    pub(super) change_password: bool,
    /// `false` for self-service enrollment by a user who is already signed in.
    pub(super) signing_in: bool,
    /// The sign-in enrolled a new authenticator: its recovery codes are made when it
    /// completes (so that no step carries them).
    pub(super) recovery_codes_due: bool,
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ALL: [DenialReason; 19] = [
        DenialReason::UnknownUser,
        DenialReason::Disabled,
        DenialReason::NoPasswordLogin,
        DenialReason::WrongPassword,
        DenialReason::WrongRecoveryCode,
        DenialReason::WrongPin,
        DenialReason::TemporaryPasswordExpired,
        DenialReason::TemporaryPasswordUsed,
        DenialReason::Locked { until: None },
        DenialReason::TooManyAttempts,
        DenialReason::WrongTotpCode,
        DenialReason::TotpLocked { until: None },
        DenialReason::DeviceCodeExpired,
        DenialReason::DeviceCodeExhausted,
        DenialReason::NoVerifiedEmail,
        DenialReason::StepExpired,
        DenialReason::AccountChanged,
        DenialReason::StepInvalid,
        DenialReason::Locked {
            until: Some(time::OffsetDateTime::UNIX_EPOCH),
        },
    ];

    #[test]
    fn one_key_per_message_and_per_hint() {
        let mut messages: HashMap<&str, &str> = HashMap::new();
        let mut hints: HashMap<&str, &str> = HashMap::new();
        for reason in ALL {
            let denial = Denial::new(reason, None);
            let (key, text) = (denial.user_message_key(), denial.user_message());
            assert_eq!(*messages.entry(key).or_insert(text), text, "{reason}");
            assert_eq!(
                reason.admin_hint().is_some(),
                reason.admin_hint_key().is_some()
            );
            if let (Some(key), Some(hint)) = (reason.admin_hint_key(), reason.admin_hint()) {
                assert_eq!(*hints.entry(key).or_insert(hint), hint, "{reason}");
            }
        }
        // Distinct texts have distinct keys.
        let texts: std::collections::HashSet<&str> = messages.values().copied().collect();
        assert_eq!(texts.len(), messages.len());
        assert_eq!(messages.len(), 6);
        assert_eq!(
            Denial::new(DenialReason::WrongPin, None).user_message_key(),
            "signin.first_factor"
        );
    }
}
