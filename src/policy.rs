//! Password and temporary-password policy per user type, the temporary-password generator,
//! and the limits of the one-time codes keyward sends.
//!
//! Policies are plain data with documented defaults ([`PasswordRules::DEFAULT`],
//! [`TemporaryRules::DEFAULT`], [`CodeRules::DEFAULT`]) behind two small traits
//! ([`PasswordPolicy`], [`TemporaryPolicy`]) so an application can look rules up per site or
//! user type without forking the crate. [`PolicySet`] is the data-driven default
//! implementation of both. The policy touches no storage.
//!
//! Every temporary password's expiry is computed in one place, [`TemporaryRules::issue`].

use std::collections::HashMap;
use std::fmt;

use rand::Rng;
use rand::TryRngCore;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::secret::{OneTimeCode, Password, TemporaryPassword};
use crate::user::{BatchId, PasswordCredential, StoredHash, TemporaryMode, User, UserId};

/// Character classes a password may be required to contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CharClass {
    /// `a`–`z` and other lowercase letters.
    Lowercase,
    /// `A`–`Z` and other uppercase letters.
    Uppercase,
    /// `0`–`9`.
    Digit,
    /// Anything that is not a letter or a digit.
    Symbol,
}

impl CharClass {
    fn contains(self, c: char) -> bool {
        match self {
            Self::Lowercase => c.is_lowercase(),
            Self::Uppercase => c.is_uppercase(),
            Self::Digit => c.is_ascii_digit(),
            Self::Symbol => !c.is_alphanumeric(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Lowercase => "lowercase letter",
            Self::Uppercase => "uppercase letter",
            Self::Digit => "digit",
            Self::Symbol => "symbol",
        }
    }
}

impl fmt::Display for CharClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rules a password chosen by a user (or an administrator) must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRules {
    /// Fewest characters (Unicode scalar values).
    pub min_length: usize,
    /// Most characters.
    pub max_length: usize,
    /// Classes that must each appear at least once.
    pub required_classes: Vec<CharClass>,
    /// Refuse passwords containing the username, forename, surname or the email's local
    /// part (case-insensitive; parts shorter than 3 characters are ignored).
    pub forbid_personal_info: bool,
    /// Refuse passwords found in a list of common passwords (the `zxcvbn` crate's list,
    /// including reversed and l33t variants).
    pub forbid_common: bool,
    /// Lowest `zxcvbn` strength score (0 to 4) accepted; 0 turns the estimate off. Catches
    /// what a list cannot: `password123456`, keyboard walks, names followed by years.
    pub min_strength: u8,
}

impl PasswordRules {
    /// The default: 12 to 128 characters, no composition rules, no personal information,
    /// no common passwords, and a `zxcvbn` strength score of at least 3 (an estimated
    /// 10^10 guesses or more, out of reach of online guessing and costly offline against
    /// argon2id).
    ///
    /// NIST SP 800-63B asks for length and a blocklist rather than composition rules, which
    /// push users to predictable patterns (`Password1!`). 12 sits between its minimum of 8
    /// (with a second factor) and 15 (password alone); 128 leaves room for passphrases while
    /// bounding hashing input.
    pub const DEFAULT: Self = Self {
        min_length: 12,
        max_length: 128,
        required_classes: Vec::new(),
        forbid_personal_info: true,
        forbid_common: true,
        min_strength: 3,
    };

    /// Checks `password` for `user`.
    ///
    /// # Errors
    /// The first [`PolicyViolation`] found, naming the rule broken.
    pub fn check(&self, password: &Password, user: &User) -> Result<(), PolicyViolation> {
        let text = password.expose_secret();
        let length = text.chars().count();
        if length < self.min_length {
            return Err(PolicyViolation::TooShort {
                min: self.min_length,
                actual: length,
            });
        }
        if length > self.max_length {
            return Err(PolicyViolation::TooLong {
                max: self.max_length,
                actual: length,
            });
        }
        for class in &self.required_classes {
            if !text.chars().any(|c| class.contains(c)) {
                return Err(PolicyViolation::MissingClass { class: *class });
            }
        }
        if self.forbid_personal_info {
            let folded = text.to_lowercase();
            let local_part = user
                .email
                .as_deref()
                .map(|e| e.split('@').next().unwrap_or(e));
            let fields = [
                ("username", Some(user.username.as_str())),
                ("forename", Some(user.forename.as_str())),
                ("surname", Some(user.surname.as_str())),
                ("email", local_part),
            ];
            for (field, value) in fields {
                let Some(value) = value else { continue };
                let value = value.trim().to_lowercase();
                if value.chars().count() >= 3 && folded.contains(&value) {
                    return Err(PolicyViolation::ContainsPersonalInfo { field });
                }
            }
        }
        if self.forbid_common && is_common_password(text) {
            return Err(PolicyViolation::CommonPassword);
        }
        if self.min_strength > 0 {
            let inputs: Vec<&str> = [
                Some(user.username.as_str()),
                Some(user.forename.as_str()),
                Some(user.surname.as_str()),
                user.email.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect();
            let score = u8::from(zxcvbn::zxcvbn(text, &inputs).score());
            if score < self.min_strength {
                return Err(PolicyViolation::TooGuessable {
                    score,
                    min: self.min_strength,
                });
            }
        }
        Ok(())
    }
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Whether the whole password is one entry of the common-password list (ignoring case,
/// reversal and l33t substitutions), as matched by `zxcvbn`.
#[must_use]
pub fn is_common_password(password: &str) -> bool {
    if password.is_empty() {
        return true;
    }
    let entropy = zxcvbn::zxcvbn(password, &[]);
    let length = password.chars().count();
    entropy.sequence().iter().any(|m| {
        m.i == 0
            && m.j + 1 == length
            && matches!(
                &m.pattern,
                zxcvbn::matching::patterns::MatchPattern::Dictionary(d)
                    // zxcvbn does not export its `DictionaryType`; its default variant is
                    // the password list (`Passwords`), which the tests below pin down.
                    if d.dictionary_name == Default::default()
            )
    })
}

/// A password rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyViolation {
    /// Too few characters.
    #[error("the password must have at least {min} characters (it has {actual})")]
    TooShort {
        /// The minimum.
        min: usize,
        /// The password's length.
        actual: usize,
    },
    /// Too many characters.
    #[error("the password must have at most {max} characters (it has {actual})")]
    TooLong {
        /// The maximum.
        max: usize,
        /// The password's length.
        actual: usize,
    },
    /// A required character class is missing.
    #[error("the password must contain at least one {class}")]
    MissingClass {
        /// The missing class.
        class: CharClass,
    },
    /// The password contains the user's name, username or email.
    #[error("the password must not contain the user's {field}")]
    ContainsPersonalInfo {
        /// Which field.
        field: &'static str,
    },
    /// The password is on the list of common passwords.
    #[error("the password is too common")]
    CommonPassword,
    /// The password is too easy to guess (a common word with digits, a keyboard walk, …).
    #[error("the password is too easy to guess (strength {score} of 4, at least {min} needed)")]
    TooGuessable {
        /// The password's `zxcvbn` score.
        score: u8,
        /// The lowest accepted score.
        min: u8,
    },
    /// The new password is the temporary password it replaces.
    #[error("the new password must differ from the temporary password")]
    SameAsTemporary,
    /// The policy does not let administrators choose temporary passwords for this user type.
    #[error("temporary passwords for this user type must be generated")]
    ChosenNotAllowed,
    /// A temporary password's expiry set by an administrator is not in the future.
    #[error("the expiry must lie in the future")]
    ExpiryInThePast,
    /// A temporary password's expiry set by an administrator is further away than
    /// [`MAX_TEMPORARY_LIFETIME_DAYS`].
    #[error("the expiry may be at most {max_days} days away")]
    ExpiryTooFar {
        /// The limit in days.
        max_days: i64,
    },
}

impl PolicyViolation {
    /// A stable key for the application's translations, e.g. `password.too_short`; the
    /// variant's fields (`min`, `actual`, `class`, `field`, `score`, `max_days`) are the
    /// values to put into the translated text.
    #[must_use]
    pub fn key(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password.too_short",
            Self::TooLong { .. } => "password.too_long",
            Self::MissingClass { .. } => "password.missing_class",
            Self::ContainsPersonalInfo { .. } => "password.contains_personal_info",
            Self::CommonPassword => "password.common",
            Self::TooGuessable { .. } => "password.too_guessable",
            Self::SameAsTemporary => "password.same_as_temporary",
            Self::ChosenNotAllowed => "temporary_password.chosen_not_allowed",
            Self::ExpiryInThePast => "temporary_password.expiry_in_the_past",
            Self::ExpiryTooFar { .. } => "temporary_password.expiry_too_far",
        }
    }
}

/// The furthest an administrator may set a temporary password's expiry: a year and a day (a
/// school year's cohort, an SSO outage); a password that must live longer is not temporary.
pub const MAX_TEMPORARY_LIFETIME_DAYS: i64 = 366;

/// How temporary passwords are generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeneratorStyle {
    /// Random characters from the chosen classes, each class at least once.
    Random {
        /// Number of characters.
        length: usize,
        /// Leave out characters easily confused in print: `0 O o 1 l I i`, and quotes.
        exclude_ambiguous: bool,
        /// Include symbols (`!#%+=?@*-`).
        symbols: bool,
    },
    /// Short common words and digits (`tulip-crisp-47`), for young users.
    Memorable {
        /// Number of words from the EFF short word list (1,296 words).
        words: usize,
        /// Number of digits at the end.
        digits: usize,
    },
}

/// Rules for temporary passwords of one user type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemporaryRules {
    /// How long a temporary password lives.
    pub lifetime: Duration,
    /// Single-use (forced change) or admin-managed.
    pub mode: TemporaryMode,
    /// How they are generated.
    pub generator: GeneratorStyle,
    /// Whether an administrator may type one in instead of generating it.
    pub allow_chosen: bool,
    /// Rules a chosen temporary password must meet.
    pub chosen_rules: PasswordRules,
}

impl TemporaryRules {
    /// The default: single-use, valid for 7 days, 12 random characters without ambiguous
    /// ones (about 68 bits of entropy), chosen passwords not allowed.
    ///
    /// Seven days covers a week of absence between issue and first sign-in; schools
    /// onboarding a cohort may prefer 28. Generated passwords avoid the weak choices people
    /// make when typing one in under time pressure.
    pub const DEFAULT: Self = Self {
        lifetime: Duration::days(7),
        mode: TemporaryMode::SingleUse,
        generator: GeneratorStyle::Random {
            length: 12,
            exclude_ambiguous: true,
            symbols: false,
        },
        allow_chosen: false,
        chosen_rules: PasswordRules::DEFAULT,
    };

    /// Generates a temporary password from the OS random source.
    #[must_use]
    pub fn generate(&self) -> Generated {
        generate(self.generator)
    }

    /// The credential of a temporary password with hash `hash` issued at `now` by
    /// `issued_by` (in `batch`, for a bulk regeneration): it expires `lifetime` after `now`.
    /// Every temporary password keyward stores is made here.
    #[must_use]
    pub fn issue(
        &self,
        hash: StoredHash,
        now: OffsetDateTime,
        mode: TemporaryMode,
        issued_by: UserId,
        batch: Option<BatchId>,
    ) -> PasswordCredential {
        let expires_at = now.saturating_add(self.lifetime);
        PasswordCredential::temporary(hash, now, mode, expires_at, issued_by, batch)
    }
}

impl Default for TemporaryRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A generated temporary password and its entropy.
#[derive(Debug)]
#[non_exhaustive]
pub struct Generated {
    /// The password.
    pub password: TemporaryPassword,
    /// Its entropy in bits, given the generator (a lower bound for `Random`).
    pub entropy_bits: f64,
}

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const UPPER: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &str = "0123456789";
const SYMBOLS: &str = "!#%+=?@*-";
const AMBIGUOUS: &str = "0Oo1lIi";
/// Characters a generated password never starts with: a spreadsheet would take a cell
/// starting with one for a formula, and the printable list's CSV neutralises such cells, which
/// would change the password a user reads.
const FORMULA_START: &str = "=+-@";

/// Generates a password in `style` from the OS random source.
///
/// # Panics
/// Only if the operating system's random source fails, in which case no secret can be
/// made safely at all.
#[must_use]
pub fn generate(style: GeneratorStyle) -> Generated {
    let mut rng = rand::rngs::OsRng.unwrap_err();
    match style {
        GeneratorStyle::Random {
            length,
            exclude_ambiguous,
            symbols,
        } => {
            let keep = |set: &str| -> Vec<char> {
                set.chars()
                    .filter(|c| !exclude_ambiguous || !AMBIGUOUS.contains(*c))
                    .collect()
            };
            let mut classes = vec![keep(LOWER), keep(UPPER), keep(DIGITS)];
            if symbols {
                classes.push(keep(SYMBOLS));
            }
            let alphabet: Vec<char> = classes.concat();
            let length = length.max(classes.len());
            // Draw until every class appears and the first character cannot start a
            // spreadsheet formula: rejection keeps the distribution uniform over the passwords
            // that meet the rule.
            // Every candidate, kept or rejected, is zeroized when dropped.
            let chars = loop {
                let candidate: Zeroizing<Vec<char>> = Zeroizing::new(
                    (0..length)
                        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                        .collect(),
                );
                let starts_formula = candidate
                    .first()
                    .is_some_and(|c| FORMULA_START.contains(*c));
                if !starts_formula
                    && classes
                        .iter()
                        .all(|class| candidate.iter().any(|c| class.contains(c)))
                {
                    break candidate;
                }
            };
            let entropy_bits = entropy_random(&classes, length, FORMULA_START);
            // One buffer of the final size: no reallocation leaves a copy behind.
            let mut text = String::with_capacity(chars.iter().map(|c| c.len_utf8()).sum());
            text.extend(chars.iter());
            Generated {
                password: TemporaryPassword::new(text),
                entropy_bits,
            }
        }
        GeneratorStyle::Memorable { words, digits } => {
            let list = eff_wordlist::short::LIST;
            let mut parts: Zeroizing<Vec<String>> = Zeroizing::new(
                (0..words.max(1))
                    .map(|_| list[rng.random_range(0..list.len())].1.to_owned())
                    .collect(),
            );
            let number = random_digits(&mut rng, digits);
            if !number.is_empty() {
                parts.push(number);
            }
            // `join` sizes its buffer once.
            let entropy_bits =
                words.max(1) as f64 * (list.len() as f64).log2() + digits as f64 * 10f64.log2();
            Generated {
                password: TemporaryPassword::new(parts.join("-")),
                entropy_bits,
            }
        }
    }
}

/// `n` random decimal digits.
fn random_digits(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

/// Limits of the one-time codes keyward sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeRules {
    /// How long a device-authorization code lives (default 10 minutes).
    pub device_code_lifetime: Duration,
    /// Wrong tries a device-authorization code allows before a new one is needed (default 5).
    pub device_code_max_tries: u32,
    /// Digits of a device-authorization code (default 8).
    pub device_code_digits: u32,
    /// How long a password-reset token lives (default 1 hour).
    pub reset_token_lifetime: Duration,
    /// Wrong tries a reset token allows (default 5).
    pub reset_token_max_tries: u32,
    /// How long a pending sign-in step (password change, TOTP, device code, enrollment) may
    /// wait for the user (default 15 minutes).
    pub pending_step_lifetime: Duration,
    /// How long a step-up ([`crate::signin::StepUp`]) holds for the action that needs it
    /// (default 5 minutes).
    pub step_up_lifetime: Duration,
    /// Recovery codes in a set (default 10, at most
    /// [`recovery_codes::MAX_CODES`](crate::totp::recovery_codes::MAX_CODES)); 0 turns
    /// recovery codes off: none are made and asking for a set is refused. A larger value is
    /// taken as that maximum.
    pub recovery_codes: u32,
}

impl CodeRules {
    /// The defaults listed on each field.
    pub const DEFAULT: Self = Self {
        device_code_lifetime: Duration::minutes(10),
        device_code_max_tries: 5,
        device_code_digits: 8,
        reset_token_lifetime: Duration::hours(1),
        reset_token_max_tries: 5,
        pending_step_lifetime: Duration::minutes(15),
        step_up_lifetime: Duration::minutes(5),
        recovery_codes: 10,
    };

    /// A fresh device-authorization code (`device_code_digits` digits, at least one) from
    /// the OS random source.
    #[must_use]
    pub fn device_code(&self) -> OneTimeCode {
        let digits = usize::try_from(self.device_code_digits.max(1)).unwrap_or(usize::MAX);
        OneTimeCode::new(random_digits(&mut rand::rngs::OsRng.unwrap_err(), digits))
    }

    /// Whether a pending step issued at `issued_at` has waited too long at `now`.
    #[must_use]
    pub fn step_expired(&self, issued_at: OffsetDateTime, now: OffsetDateTime) -> bool {
        now >= issued_at.saturating_add(self.pending_step_lifetime)
    }
}

impl Default for CodeRules {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// log2 of the number of strings of `length` over the union of `classes` that contain every
/// class and do not start with a character of `not_first`, by inclusion-exclusion over the
/// classes left out.
fn entropy_random(classes: &[Vec<char>], length: usize, not_first: &str) -> f64 {
    let n = classes.len();
    let mut count = 0f64;
    for mask in 0u32..(1 << n) {
        let missing = mask.count_ones();
        let kept = || (0..n).filter(|i| mask & (1 << i) == 0).map(|i| &classes[i]);
        let size: usize = kept().map(Vec::len).sum();
        let first: usize = kept()
            .map(|class| class.iter().filter(|c| !not_first.contains(**c)).count())
            .sum();
        let rest = (size as f64).powi(i32::try_from(length.saturating_sub(1)).unwrap_or(i32::MAX));
        let term = first as f64 * rest;
        if missing % 2 == 0 {
            count += term
        } else {
            count -= term
        }
    }
    count.max(1.0).log2()
}

/// Chooses password rules per user: implement it to look rules up per site or user type.
pub trait PasswordPolicy: Send + Sync + fmt::Debug {
    /// Rules a new password of `user` must meet.
    fn password_rules(&self, user: &User) -> PasswordRules;
}

/// Chooses temporary-password rules per user.
pub trait TemporaryPolicy: Send + Sync + fmt::Debug {
    /// Rules for temporary passwords of `user`.
    fn temporary_rules(&self, user: &User) -> TemporaryRules;
}

/// The data-driven default policy: rules per user type, with a fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicySet {
    /// Password rules for user types without an entry.
    pub default_password: PasswordRules,
    /// Temporary-password rules for user types without an entry.
    pub default_temporary: TemporaryRules,
    /// Password rules per user type.
    pub password_by_type: HashMap<String, PasswordRules>,
    /// Temporary-password rules per user type.
    pub temporary_by_type: HashMap<String, TemporaryRules>,
}

impl PolicySet {
    /// The defaults for every user type.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the password rules of one user type.
    #[must_use]
    pub fn with_password_rules(
        mut self,
        user_type: impl Into<String>,
        rules: PasswordRules,
    ) -> Self {
        self.password_by_type.insert(user_type.into(), rules);
        self
    }

    /// Sets the temporary-password rules of one user type.
    #[must_use]
    pub fn with_temporary_rules(
        mut self,
        user_type: impl Into<String>,
        rules: TemporaryRules,
    ) -> Self {
        self.temporary_by_type.insert(user_type.into(), rules);
        self
    }
}

impl PasswordPolicy for PolicySet {
    fn password_rules(&self, user: &User) -> PasswordRules {
        self.password_by_type
            .get(&user.user_type)
            .unwrap_or(&self.default_password)
            .clone()
    }
}

impl TemporaryPolicy for PolicySet {
    fn temporary_rules(&self, user: &User) -> TemporaryRules {
        self.temporary_by_type
            .get(&user.user_type)
            .unwrap_or(&self.default_temporary)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::SiteId;
    use time::macros::datetime;

    fn user() -> User {
        User::new(
            SiteId::new("school").unwrap(),
            "jsmith",
            "Jane",
            "Smithson",
            "student",
            datetime!(2026-01-01 0:00 UTC),
        )
        .with_email("jane.s@example.org", true)
    }

    fn check(rules: &PasswordRules, pw: &str) -> Result<(), PolicyViolation> {
        rules.check(&Password::new(pw), &user())
    }

    #[test]
    fn each_rule_names_itself() {
        let rules = PasswordRules::DEFAULT;
        assert_eq!(
            check(&rules, "short"),
            Err(PolicyViolation::TooShort { min: 12, actual: 5 })
        );
        assert_eq!(
            check(&rules, &"x".repeat(129)),
            Err(PolicyViolation::TooLong {
                max: 128,
                actual: 129
            })
        );
        assert_eq!(
            check(&rules, "my name is jsmith ok"),
            Err(PolicyViolation::ContainsPersonalInfo { field: "username" })
        );
        assert_eq!(
            check(&rules, "SMITHSON rules the day"),
            Err(PolicyViolation::ContainsPersonalInfo { field: "surname" })
        );
        assert_eq!(
            check(&rules, "jane.s is my mail"),
            Err(PolicyViolation::ContainsPersonalInfo { field: "forename" })
        );
        assert_eq!(
            check(&rules, "password1234"),
            Err(PolicyViolation::CommonPassword)
        );
        assert_eq!(check(&rules, "correct horse battery staple"), Ok(()));
        let strict = PasswordRules {
            required_classes: vec![CharClass::Digit, CharClass::Symbol],
            ..PasswordRules::DEFAULT
        };
        assert_eq!(
            check(&strict, "correct horse battery staple"),
            Err(PolicyViolation::MissingClass {
                class: CharClass::Digit
            })
        );
        assert_eq!(check(&strict, "correct horse battery staple 9"), Ok(()));
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let rules = PasswordRules {
            min_length: 4,
            forbid_common: false,
            min_strength: 0,
            ..PasswordRules::DEFAULT
        };
        assert_eq!(
            check(&rules, "ééé"),
            Err(PolicyViolation::TooShort { min: 4, actual: 3 })
        );
        assert_eq!(check(&rules, "éééé"), Ok(()));
    }

    #[test]
    fn common_list_catches_variants() {
        assert!(is_common_password("password"));
        assert!(is_common_password("P@ssw0rd"));
        assert!(is_common_password("123456"));
        assert!(!is_common_password("tulip-crisp-47-anvil"));
    }

    #[test]
    fn random_generator_follows_the_rules() {
        let style = GeneratorStyle::Random {
            length: 12,
            exclude_ambiguous: true,
            symbols: true,
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let g = generate(style);
            let text = g.password.expose_secret().to_owned();
            assert_eq!(text.chars().count(), 12);
            assert!(
                !text.chars().any(|c| AMBIGUOUS.contains(c)),
                "{text} has an ambiguous char"
            );
            assert!(text.chars().any(|c| c.is_ascii_lowercase()));
            assert!(text.chars().any(|c| c.is_ascii_uppercase()));
            assert!(text.chars().any(|c| c.is_ascii_digit()));
            assert!(text.chars().any(|c| SYMBOLS.contains(c)));
            assert!(g.entropy_bits > 70.0 && g.entropy_bits < 12.0 * 64f64.log2());
            seen.insert(text);
        }
        assert_eq!(seen.len(), 200, "generated passwords repeat");
    }

    #[test]
    fn generated_passwords_never_start_a_formula() {
        let style = GeneratorStyle::Random {
            length: 8,
            exclude_ambiguous: true,
            symbols: true,
        };
        for _ in 0..2000 {
            let g = generate(style);
            let first = g.password.expose_secret().chars().next();
            assert!(
                first.is_some_and(|c| !FORMULA_START.contains(c)),
                "{first:?}"
            );
        }
    }

    #[test]
    fn entropy_counts_exactly_the_accepted_strings() {
        // Brute force over a small alphabet: every class present, first not '+'.
        let classes = vec![vec!['a', 'b'], vec!['C'], vec!['+', '!']];
        let alphabet: Vec<char> = classes.concat();
        let length = 4;
        let mut accepted = 0u32;
        for n in 0..alphabet.len().pow(4) {
            let mut k = n;
            let s: Vec<char> = (0..length)
                .map(|_| {
                    let c = alphabet[k % alphabet.len()];
                    k /= alphabet.len();
                    c
                })
                .collect();
            let all_classes = classes.iter().all(|cl| s.iter().any(|c| cl.contains(c)));
            if all_classes && s[0] != '+' {
                accepted += 1;
            }
        }
        let bits = entropy_random(&classes, length, "+");
        assert!(
            (bits - f64::from(accepted).log2()).abs() < 1e-9,
            "{bits} vs {accepted}"
        );
    }

    #[test]
    fn entropy_of_the_default_generator() {
        // 23 lowercase + 24 uppercase + 8 digits = 55 symbols; 12 characters, every class.
        let g = TemporaryRules::DEFAULT.generate();
        assert!(
            (g.entropy_bits - 68.9).abs() < 0.5,
            "entropy {}",
            g.entropy_bits
        );
    }

    #[test]
    fn memorable_generator() {
        let g = generate(GeneratorStyle::Memorable {
            words: 2,
            digits: 2,
        });
        let text = g.password.expose_secret();
        let parts: Vec<&str> = text.split('-').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts[2].len() == 2 && parts[2].chars().all(|c| c.is_ascii_digit()));
        let expected = 2.0 * 1296f64.log2() + 2.0 * 10f64.log2();
        assert!((g.entropy_bits - expected).abs() < 1e-9);
    }

    #[test]
    fn policy_set_picks_rules_by_user_type() {
        let young = TemporaryRules {
            lifetime: Duration::days(28),
            generator: GeneratorStyle::Memorable {
                words: 2,
                digits: 2,
            },
            ..TemporaryRules::DEFAULT
        };
        let set = PolicySet::new().with_temporary_rules("student", young.clone());
        assert_eq!(set.temporary_rules(&user()), young);
        let mut staff = user();
        staff.user_type = "staff".into();
        assert_eq!(set.temporary_rules(&staff), TemporaryRules::DEFAULT);
    }
}
