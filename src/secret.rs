//! Secret values: passwords, PINs, temporary passwords, one-time codes and TOTP secrets.
//!
//! Every type here zeroizes its memory on drop, prints as `Name(***)` under `Debug`, and
//! implements neither `Clone`, `Display`, `Serialize` nor `PartialEq`: the only way from a
//! secret to its text is the explicit, greppable [`expose_secret`](Password::expose_secret).
//! Comparisons between secrets go through [`subtle`] in constant time.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

macro_rules! secret_string {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        pub struct $name(Zeroizing<String>);

        impl $name {
            /// Wraps a secret string. The string is moved, not copied, and zeroized on drop.
            #[must_use]
            pub fn new(secret: impl Into<String>) -> Self {
                Self(Zeroizing::new(secret.into()))
            }

            /// The secret as text. Every call site is a place where the secret leaves its box:
            /// keep them few and never pass the result to a logger.
            #[must_use]
            pub fn expose_secret(&self) -> &str {
                self.0.as_str()
            }

            /// Length of the secret in Unicode scalar values (not bytes).
            #[must_use]
            pub fn char_len(&self) -> usize {
                self.0.chars().count()
            }

            /// Constant-time equality of the two secrets' bytes (the length is not hidden).
            #[must_use]
            pub fn ct_eq(&self, other: &Self) -> bool {
                self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }

        impl From<String> for $name {
            fn from(secret: String) -> Self {
                Self::new(secret)
            }
        }

        impl From<&str> for $name {
            fn from(secret: &str) -> Self {
                Self::new(secret)
            }
        }
    };
}

secret_string!(
    /// A user's password as typed, verified byte-exact against legacy hashes.
    Password
);
secret_string!(
    /// A PIN that some users must give beside their password (for example during an SSO outage).
    Pin
);
secret_string!(
    /// A temporary password issued by an administrator or generated for a cohort.
    TemporaryPassword
);
secret_string!(
    /// A one-time code or token: a password-reset token, a device-authorization code, a TOTP code.
    OneTimeCode
);
secret_string!(
    /// A recovery code as the user typed it, given in place of a TOTP code
    /// ([`crate::totp::recovery_codes`]). Case, spaces and dashes do not matter.
    RecoveryCode
);

impl TemporaryPassword {
    /// Views this temporary password as a [`Password`] for hashing and verification.
    #[must_use]
    pub fn to_password(&self) -> Password {
        Password::new(self.expose_secret())
    }
}

/// The raw bytes of a TOTP shared secret (RFC 6238 `K`).
pub struct TotpSecret(Zeroizing<Vec<u8>>);

impl TotpSecret {
    /// Wraps raw secret bytes.
    #[must_use]
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The raw secret bytes.
    #[must_use]
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The secret in unpadded RFC 4648 base32, as authenticator apps expect it.
    #[must_use]
    pub fn to_base32(&self) -> Zeroizing<String> {
        Zeroizing::new(data_encoding::BASE32_NOPAD.encode(&self.0))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(***)")
    }
}

impl Drop for TotpSecret {
    fn drop(&mut self) {
        // `Zeroizing` already clears the buffer; clearing here too keeps the promise explicit
        // should the field type ever change.
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret() {
        let text = "correct horse battery staple";
        assert_eq!(format!("{:?}", Password::new(text)), "Password(***)");
        assert_eq!(format!("{:?}", Pin::new("4711")), "Pin(***)");
        assert_eq!(
            format!("{:?}", TemporaryPassword::new(text)),
            "TemporaryPassword(***)"
        );
        assert_eq!(
            format!("{:?}", OneTimeCode::new("123456")),
            "OneTimeCode(***)"
        );
        let totp = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let shown = format!("{totp:?} {:#?}", Password::new(text));
        assert!(!shown.contains("1234"));
        assert!(!shown.contains("horse"));
    }

    #[test]
    fn constant_time_equality_compares_content() {
        assert!(Pin::new("1234").ct_eq(&Pin::new("1234")));
        assert!(!Pin::new("1234").ct_eq(&Pin::new("1235")));
        assert!(!Pin::new("1234").ct_eq(&Pin::new("12345")));
    }

    #[test]
    fn base32_matches_rfc4648() {
        // RFC 4648 section 10: BASE32("foobar") = "MZXW6YTBOI======".
        let s = TotpSecret::from_bytes(b"foobar".to_vec());
        assert_eq!(s.to_base32().as_str(), "MZXW6YTBOI");
    }
}
