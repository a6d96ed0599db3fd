//! The user model: identities, the profile and the credentials a user holds.
//!
//! These are plain data, each answering at most the one question about itself that several
//! places ask (is this temporary password live, is this code live). Decisions live elsewhere:
//! the lockout rules in [`crate::lockout`], password rules and expiries in [`crate::policy`],
//! the sign-in flow in [`crate::signin`]. [`crate::store::UserRecord`] puts a profile, its
//! credentials and its lock state together as a store keeps them.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

use crate::text_enum::text_enum;

/// A user's identifier: 128 random bits, shown as 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// A fresh identifier from the OS random source.
    #[must_use]
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(data_encoding::HEXLOWER.encode(&bytes))
    }

    /// Wraps an identifier read back from a store or given by the application.
    ///
    /// # Errors
    /// [`InvalidId`] when the text is empty, longer than 64 bytes, or holds anything but ASCII
    /// letters, digits, `-` and `_`.
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        validate_id(text).map(|()| Self(text.to_owned()))
    }

    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A site (tenant). Every user belongs to one; administrators may manage several.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SiteId(String);

impl SiteId {
    /// Wraps a site identifier.
    ///
    /// # Errors
    /// [`InvalidId`] under the same rules as [`UserId::parse`].
    pub fn new(text: &str) -> Result<Self, InvalidId> {
        validate_id(text).map(|()| Self(text.to_owned()))
    }

    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An identifier was empty, too long or held characters outside `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid identifier ({len} bytes): only 1 to 64 ASCII letters, digits, '-' and '_' are allowed"
)]
pub struct InvalidId {
    /// Length of the rejected text in bytes.
    pub len: usize,
}

fn validate_id(text: &str) -> Result<(), InvalidId> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(InvalidId { len: text.len() })
    }
}

text_enum!(
    /// What a user may do beyond signing in. Permissions per role are configured in
    /// [`crate::permission::Permissions`].
    #[derive(PartialOrd, Ord, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    Role {
        /// An ordinary user.
        User => "user",
        /// A moderator: may act on users, never on administrators.
        Moderator => "moderator",
        /// An administrator of one or more sites.
        Administrator => "administrator",
    }
);

text_enum!(
    /// Whether an account may sign in at all.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    UserStatus {
        /// The account can sign in.
        Active => "active",
        /// The account is switched off by an administrator.
        Disabled => "disabled",
    }
);

/// A user's profile: everything but credentials and lock state.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct User {
    /// Identifier, unique across all sites.
    pub id: UserId,
    /// The site the user belongs to.
    pub site: SiteId,
    /// Sign-in name, unique per site without regard to case.
    pub username: String,
    /// Email address, if any.
    pub email: Option<String>,
    /// Whether the user has proven control of `email`.
    pub email_verified: bool,
    /// Phone number, if any.
    pub phone: Option<String>,
    /// Whether the user has proven control of `phone`.
    pub phone_verified: bool,
    /// Given name.
    pub forename: String,
    /// Family name.
    pub surname: String,
    /// Date of birth, if known (shown as day of birth on printed cohort lists).
    pub date_of_birth: Option<Date>,
    /// User type, e.g. `student` or `staff`: selects the password and temporary-password policy.
    pub user_type: String,
    /// Groups, e.g. `Year 1`.
    pub groups: Vec<String>,
    /// The user's role.
    pub role: Role,
    /// Further sites an administrator or moderator manages beside `site`.
    pub managed_sites: Vec<SiteId>,
    /// Active or disabled.
    pub status: UserStatus,
    /// The user normally signs in through the organisation's directory (SSO).
    pub sso_linked: bool,
    /// When the account was created.
    pub created_at: OffsetDateTime,
    /// The last successful sign-in; `None` means the account is unclaimed.
    pub last_sign_in_at: Option<OffsetDateTime>,
}

impl User {
    /// A new active user with role [`Role::User`], no groups, no contact details.
    #[must_use]
    pub fn new(
        site: SiteId,
        username: impl Into<String>,
        forename: impl Into<String>,
        surname: impl Into<String>,
        user_type: impl Into<String>,
        created_at: OffsetDateTime,
    ) -> Self {
        Self {
            id: UserId::generate(),
            site,
            username: username.into(),
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            forename: forename.into(),
            surname: surname.into(),
            date_of_birth: None,
            user_type: user_type.into(),
            groups: Vec::new(),
            role: Role::User,
            managed_sites: Vec::new(),
            status: UserStatus::Active,
            sso_linked: false,
            created_at,
            last_sign_in_at: None,
        }
    }

    /// Sets the email address and whether it is verified.
    #[must_use]
    pub fn with_email(mut self, email: impl Into<String>, verified: bool) -> Self {
        self.email = Some(email.into());
        self.email_verified = verified;
        self
    }

    /// Sets the phone number and whether it is verified.
    #[must_use]
    pub fn with_phone(mut self, phone: impl Into<String>, verified: bool) -> Self {
        self.phone = Some(phone.into());
        self.phone_verified = verified;
        self
    }

    /// Sets the groups.
    #[must_use]
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the role.
    #[must_use]
    pub fn with_role(mut self, role: Role) -> Self {
        self.role = role;
        self
    }

    /// Adds further managed sites.
    #[must_use]
    pub fn with_managed_sites(mut self, sites: Vec<SiteId>) -> Self {
        self.managed_sites = sites;
        self
    }

    /// Marks the user as signing in through the organisation's directory.
    #[must_use]
    pub fn with_sso(mut self, sso_linked: bool) -> Self {
        self.sso_linked = sso_linked;
        self
    }

    /// Sets the date of birth.
    #[must_use]
    pub fn with_date_of_birth(mut self, date: Date) -> Self {
        self.date_of_birth = Some(date);
        self
    }

    /// Whether this user manages `site` (its own site or one of `managed_sites`).
    #[must_use]
    pub fn manages_site(&self, site: &SiteId) -> bool {
        &self.site == site || self.managed_sites.contains(site)
    }

    /// The username folded for uniqueness and lookup: Unicode lowercase.
    #[must_use]
    pub fn username_key(&self) -> String {
        username_key(&self.username)
    }
}

/// A profile field that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
#[non_exhaustive]
pub struct InvalidField {
    /// The field, e.g. `username`.
    pub field: &'static str,
    /// What is wrong with it (never the value itself).
    pub reason: &'static str,
}

/// Refuses characters that make a username look like another: default-ignorable ones
/// (zero-width space and joiners, soft hyphen, the bidi embeddings, overrides and isolates,
/// variation selectors) and non-characters. What remains is compared by [`fold`] and
/// [`skeleton`](crate::store::skeleton).
///
/// [`fold`]: crate::store::fold
fn check_username(username: &str) -> Result<(), InvalidField> {
    use unicode_security::GeneralSecurityProfile;
    use unicode_security::general_security_profile::IdentifierType;
    let hidden = username.chars().any(|c| {
        let noncharacter = (u32::from(c) & 0xFFFE) == 0xFFFE || ('\u{FDD0}'..='\u{FDEF}').contains(&c);
        noncharacter
            || matches!(
                c.identifier_type(),
                Some(IdentifierType::Default_Ignorable | IdentifierType::Not_Character)
            )
            || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
    });
    if hidden {
        return Err(InvalidField {
            field: "username",
            reason: "contains invisible or text-direction characters",
        });
    }
    Ok(())
}

fn check_text(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<(), InvalidField> {
    let fail = |reason| Err(InvalidField { field, reason });
    let chars = value.chars().count();
    if chars < min {
        return fail("is empty");
    }
    if chars > max {
        return fail("is too long");
    }
    if value.chars().any(char::is_control) {
        return fail("contains control characters");
    }
    if value.trim() != value {
        return fail("has leading or trailing whitespace");
    }
    Ok(())
}

impl User {
    /// Checks the profile before it is stored: a username of 1 to 254 characters, names
    /// and user type of at most 200 and 64 characters, no control characters or outer
    /// whitespace anywhere, a plausible email (`local@domain`, at most 254 characters) and
    /// phone number (digits, spaces and `+-()`, at most 32 characters), at most 100 groups
    /// of 1 to 100 characters, at most 100 managed sites.
    ///
    /// # Errors
    /// [`InvalidField`] naming the first field that fails.
    pub fn validate(&self) -> Result<(), InvalidField> {
        check_text("username", &self.username, 1, 254)?;
        check_username(&self.username)?;
        check_text("forename", &self.forename, 0, 200)?;
        check_text("surname", &self.surname, 0, 200)?;
        check_text("user_type", &self.user_type, 1, 64)?;
        if let Some(email) = &self.email {
            check_text("email", email, 3, 254)?;
            let plausible = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            }) && !email.chars().any(char::is_whitespace);
            if !plausible {
                return Err(InvalidField {
                    field: "email",
                    reason: "is not of the form local@domain",
                });
            }
        }
        if let Some(phone) = &self.phone {
            check_text("phone", phone, 3, 32)?;
            let allowed = |c: char| c.is_ascii_digit() || " +-()".contains(c);
            if !phone.chars().all(allowed) || !phone.chars().any(|c| c.is_ascii_digit()) {
                return Err(InvalidField {
                    field: "phone",
                    reason: "may hold only digits, spaces and +-()",
                });
            }
        }
        if self.managed_sites.len() > 100 {
            return Err(InvalidField {
                field: "managed_sites",
                reason: "more than 100 sites",
            });
        }
        if self.groups.len() > 100 {
            return Err(InvalidField {
                field: "groups",
                reason: "more than 100 groups",
            });
        }
        for group in &self.groups {
            check_text("groups", group, 1, 100)?;
        }
        Ok(())
    }
}

/// Folds a username for case-insensitive uniqueness and lookup.
#[must_use]
pub fn username_key(username: &str) -> String {
    username.trim().to_lowercase()
}

/// A stored hash string (password, PIN, code or token), opaque to the store.
///
/// `Debug` shows only the leading scheme tag: hashes are not plaintext, but there is no reason
/// to spread them through logs either.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredHash(String);

impl StoredHash {
    /// Wraps a hash string.
    #[must_use]
    pub fn new(hash: impl Into<String>) -> Self {
        Self(hash.into())
    }

    /// The hash string, for the hasher or the store.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Show the scheme tag only (`$argon2id$…`); anything long or odd is not shown at all.
        let scheme = self.0.split('$').nth(1).unwrap_or("");
        let scheme = if scheme.len() <= 24 && scheme.bytes().all(|b| b.is_ascii_graphic()) {
            scheme
        } else {
            "?"
        };
        write!(f, "StoredHash(${scheme}$…)")
    }
}

text_enum!(
    /// How a temporary password may be used.
    #[derive(Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    TemporaryMode {
        /// Valid for one sign-in, which must set a new password.
        SingleUse => "single_use",
        /// Reusable until it expires or an administrator removes it; the user cannot change it.
        AdminManaged => "admin_managed",
    }
);

/// Identifies one bulk regeneration; regenerating replaces the whole batch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BatchId(String);

impl BatchId {
    /// A fresh batch identifier.
    #[must_use]
    pub fn generate() -> Self {
        Self(UserId::generate().0)
    }

    /// Wraps a stored batch identifier.
    ///
    /// # Errors
    /// [`InvalidId`] under the rules of [`UserId::parse`].
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        validate_id(text).map(|()| Self(text.to_owned()))
    }

    /// The identifier as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The details of a temporary password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemporaryInfo {
    /// Single-use or admin-managed.
    pub mode: TemporaryMode,
    /// After this instant the temporary password is refused.
    pub expires_at: OffsetDateTime,
    /// The administrator or moderator who issued it.
    pub issued_by: UserId,
    /// The bulk regeneration it came from, if any.
    pub batch: Option<BatchId>,
    /// When a single-use temporary password was used; it is dead from then on.
    pub consumed_at: Option<OffsetDateTime>,
    /// The password itself, sealed under the application's escrow key, when escrow is on
    /// (see [`crate::KeywardBuilder::temporary_password_escrow`]); it goes with the
    /// credential when the user claims the account or a new password replaces it.
    pub escrow: Option<StoredSecret>,
}

/// Where a temporary password stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TemporaryStatus {
    /// Unused and not expired: it signs the user in.
    Live,
    /// Unused but past its expiry: refused, though it still occupies the password slot until
    /// an administrator replaces or removes it.
    Expired,
    /// A single-use temporary password that was used: dead from then on.
    Used,
}

impl TemporaryInfo {
    /// Where this temporary password stands at `now`: the one definition of "live" that the
    /// sign-in, the store's consumption and the admin screens share.
    #[must_use]
    pub fn status(&self, now: OffsetDateTime) -> TemporaryStatus {
        if self.consumed_at.is_some() {
            TemporaryStatus::Used
        } else if now >= self.expires_at {
            TemporaryStatus::Expired
        } else {
            TemporaryStatus::Live
        }
    }

    /// Whether it was used (a single-use password after its sign-in). An unconsumed one,
    /// expired or not, still holds the user's password slot.
    #[must_use]
    pub fn is_consumed(&self) -> bool {
        self.consumed_at.is_some()
    }
}

/// A password credential: a hash and what kind of password it is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PasswordCredential {
    /// The hash, in any format the hashing core knows.
    pub hash: StoredHash,
    /// When it was set.
    pub set_at: OffsetDateTime,
    /// `None` for a permanent password.
    pub temporary: Option<TemporaryInfo>,
}

impl PasswordCredential {
    /// A permanent password.
    #[must_use]
    pub fn permanent(hash: StoredHash, set_at: OffsetDateTime) -> Self {
        Self {
            hash,
            set_at,
            temporary: None,
        }
    }

    /// A temporary password.
    #[must_use]
    pub fn temporary(
        hash: StoredHash,
        set_at: OffsetDateTime,
        mode: TemporaryMode,
        expires_at: OffsetDateTime,
        issued_by: UserId,
        batch: Option<BatchId>,
    ) -> Self {
        Self {
            hash,
            set_at,
            temporary: Some(TemporaryInfo {
                mode,
                expires_at,
                issued_by,
                batch,
                consumed_at: None,
                escrow: None,
            }),
        }
    }
}

/// A hashed PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PinCredential {
    /// The PIN's hash.
    pub hash: StoredHash,
    /// When it was set.
    pub set_at: OffsetDateTime,
}

impl PinCredential {
    /// A PIN credential.
    #[must_use]
    pub fn new(hash: StoredHash, set_at: OffsetDateTime) -> Self {
        Self { hash, set_at }
    }
}

/// A hashed single-use code with an expiry and a bounded number of wrong tries
/// (password-reset tokens, device-authorization codes).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OneTimeCredential {
    /// The code's hash.
    pub hash: StoredHash,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// After this instant it is refused.
    pub expires_at: OffsetDateTime,
    /// Wrong tries so far.
    pub failed_tries: u32,
}

impl OneTimeCredential {
    /// A fresh code credential with no failed tries.
    #[must_use]
    pub fn new(hash: StoredHash, issued_at: OffsetDateTime, expires_at: OffsetDateTime) -> Self {
        Self {
            hash,
            issued_at,
            expires_at,
            failed_tries: 0,
        }
    }
}

/// Where a single-use code stands at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeStatus {
    /// Not expired and tries left: it may be tried.
    Live,
    /// Past its expiry.
    Expired,
    /// Its wrong tries reached the limit.
    Exhausted,
}

impl OneTimeCredential {
    /// Where this code stands at `now` when it allows `max_tries` wrong tries: the one
    /// definition of a live code, used when a code is tried and when a live one is reused
    /// rather than sent again.
    #[must_use]
    pub fn status(&self, now: OffsetDateTime, max_tries: u32) -> CodeStatus {
        if now >= self.expires_at {
            CodeStatus::Expired
        } else if self.failed_tries >= max_tries {
            CodeStatus::Exhausted
        } else {
            CodeStatus::Live
        }
    }
}

/// A user's second factor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TotpState {
    /// The confirmed secret, sealed (see [`crate::totp`]); `None` when TOTP is off.
    pub secret: Option<StoredSecret>,
    /// The last accepted time step: a code from this step or an older one is a replay.
    pub last_step: Option<u64>,
    /// An administrator reset the authenticator: device authorization then enrollment follow.
    pub reset_pending: bool,
    /// A secret offered during enrollment, active only once confirmed with a valid code.
    pub pending_secret: Option<StoredSecret>,
    /// The outstanding device-authorization code after a reset.
    pub device_code: Option<OneTimeCredential>,
    /// The digests of the recovery codes not used yet (see
    /// [`crate::totp::recovery_codes`]): each signs in once in place of a TOTP code. A new set,
    /// a reset or a new authenticator replaces them all.
    pub recovery_codes: Vec<StoredHash>,
}

/// A sealed (or explicitly plain) TOTP secret as stored; opaque to the store.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret(String);

impl StoredSecret {
    /// Wraps the stored text.
    #[must_use]
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The stored text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoredSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn user() -> User {
        let site = SiteId::new("s").unwrap();
        User::new(
            site,
            "ada",
            "Ada",
            "Lovelace",
            "staff",
            datetime!(2026-01-01 0:00 UTC),
        )
    }

    #[test]
    fn profiles_are_validated_field_by_field() {
        assert_eq!(user().validate(), Ok(()));
        let field = |u: User| u.validate().unwrap_err().field;
        let mut u = user();
        u.username = String::new();
        assert_eq!(field(u), "username");
        let mut u = user();
        u.username = " ada".into();
        assert_eq!(field(u), "username");
        let mut u = user();
        u.surname = "Love\u{0}lace".into();
        assert_eq!(field(u), "surname");
        assert_eq!(field(user().with_email("no-at-sign", true)), "email");
        assert_eq!(field(user().with_email("a@b@c", true)), "email");
        assert_eq!(field(user().with_phone("call me", true)), "phone");
        assert_eq!(field(user().with_groups([""])), "groups");
        assert_eq!(
            field(user().with_groups((0..101).map(|i| i.to_string()))),
            "groups"
        );
        assert_eq!(
            user()
                .with_email("ada@example.org", true)
                .with_phone("+44 (0)20 7946-0000", true)
                .validate(),
            Ok(())
        );
    }

    #[test]
    fn ids_refuse_odd_text() {
        assert!(UserId::parse("abc_DEF-123").is_ok());
        for bad in ["", "a b", "ä", "a/b", &"x".repeat(65)] {
            assert!(UserId::parse(bad).is_err(), "{bad:?}");
            assert!(SiteId::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(UserId::generate().as_str().len(), 32);
    }
}
