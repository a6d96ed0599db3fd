//! The hashing core: scheme detection, bounded verification, upgrade to argon2id, and import
//! of hashes from other systems.
//!
//! [`Hasher`] is the one entry point. It writes argon2id under an [`Argon2Policy`], reads every
//! supported legacy format (see the table below), refuses hostile parameters above the
//! [`HashLimits`] *before* evaluating anything, and reports every successful verification of a
//! hash that is not a current keyward argon2id as [`Verification::MatchUpgraded`] carrying the
//! replacement hash.
//!
//! | scheme name        | stored form                                           |
//! |--------------------|-------------------------------------------------------|
//! | `argon2`           | `$argon2id$v=19$m=..,t=..,p=..$salt$hash` written by keyward (NFKC input) |
//! | `argon2-imported`  | `$keyward-import$v=1$argon2{id,i,d}$...` (exact input)  |
//! | `bcrypt`           | `$2a$`, `$2b$`, `$2y$` (first 72 bytes count)         |
//! | `des-crypt`        | 13 characters (first 8 bytes count)                   |
//! | `bsdi-crypt`       | `_` + 19 characters                                   |
//! | `md5-crypt`        | `$1$salt$hash`                                        |
//! | `sha256-crypt`     | `$5$[rounds=N$]salt$hash`                             |
//! | `sha512-crypt`     | `$6$[rounds=N$]salt$hash`                             |
//! | `phpass`           | `$P$` / `$H$` (WordPress, phpBB)                      |
//! | `wordpress-bcrypt` | `$wp$2y$...` (WordPress 6.8+)                         |
//! | `md5`              | 32 hex digits, unsalted                               |
//! | `salted-md5`, `salted-sha1`, `salted-sha256`, `salted-sha512` | `$keyward-salted$v=1$md5,suffix$<salt>$<hex>` |
//! | `yescrypt`         | `$y$params$salt$hash` (libxcrypt)                     |
//! | `scrypt`           | `$scrypt$ln=..,r=..,p=..$salt$hash` (passlib, PHC)    |
//! | `django-scrypt`    | `scrypt$N$salt$r$p$hash`                              |
//! | `django-pbkdf2-sha256`, `django-pbkdf2-sha1` | `pbkdf2_sha256$iterations$salt$hash` |
//! | `pbkdf2-sha1`, `pbkdf2-sha256`, `pbkdf2-sha512` | passlib `$pbkdf2[-sha256\|-sha512]$rounds$salt$hash` |
//! | `drupal7`          | `$S$` (passwords over 512 bytes never match) and `U$S$` (over md5(password) in hex) |
//! | `ldap-sha1`, `ldap-salted-sha1`, ... `ldap-salted-md5` | `{SHA}`, `{SSHA}`, `{SHA256}`, `{SSHA256}`, `{SHA512}`, `{SSHA512}`, `{MD5}`, `{SMD5}` + base64 |
//! | `ldap-crypt`       | `{CRYPT}` + any crypt(3) string above                 |
//! | `wrapped-legacy`   | `$keyward-wrapped$v=1$...`: a fast hash under argon2id ([`Hasher::wrap_fast`]) |
//!
//! Applications add in-house formats with [`Hasher::with_scheme`].

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfkc_quick};
use zeroize::Zeroizing;

use crate::secret::Password;
pub(crate) use argon2::Memory as HashMemory;
pub use error::{BackendError, HashError};
pub use import::ImportError;

mod argon2;
mod bcrypt;
mod canonical;
mod crypt;
mod drupal;
mod error;
pub mod import;
mod ldap;
mod pbkdf2;
mod salted;
mod scrypt;
mod wordpress;
mod wrap;
mod yescrypt;

pub use import::{HashingMethod, ImportRecord, SaltPosition};

/// Longest stored hash string [`Hasher::parse`] and [`Hasher::verify`] accept, in bytes (and
/// the longest `hashed_password` an import takes). Every built-in format fits well within it
/// (the longest, a salted digest with a 256-byte salt, under 600 bytes); the cap bounds the
/// work of the schemes whose cost grows with the salt (scrypt's PBKDF2, the salted digests),
/// in-house schemes included.
pub const MAX_STORED_BYTES: usize = 1024;

/// A validated stored hash string, as written to or read from the database.
///
/// Obtain one from [`Hasher::hash`], [`Hasher::parse`] or [`Hasher::import`]. `Debug` shows only
/// the scheme, never the salt or digest.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PasswordHash {
    encoded: String,
    scheme: &'static str,
}

impl PasswordHash {
    /// The stored string, to be written to the database as is.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.encoded
    }

    /// The name of the scheme the string was detected as (see the module table).
    #[must_use]
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// Consumes the hash, returning the stored string.
    #[must_use]
    pub fn into_string(self) -> String {
        self.encoded
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHash")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// The argon2id parameters keyward writes new hashes with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Argon2Policy {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl Argon2Policy {
    /// m = 19456 KiB (19 MiB), t = 2, p = 1: the OWASP Password Storage Cheat Sheet's minimum
    /// argon2id configuration, and the argon2 crate's default.
    pub const DEFAULT: Self = Self {
        m_cost_kib: 19_456,
        t_cost: 2,
        p_cost: 1,
    };

    /// A deliberately weak profile (m = 8 KiB, t = 1, p = 1) for unit tests only; see
    /// [`Hasher::for_tests`].
    pub const INSECURE_TEST: Self = Self {
        m_cost_kib: 8,
        t_cost: 1,
        p_cost: 1,
    };

    /// Smallest memory cost accepted by [`new`](Self::new): 8 MiB. Weaker settings are only
    /// available through the named [`INSECURE_TEST`](Self::INSECURE_TEST) profile.
    pub const MIN_M_COST_KIB: u32 = 8 * 1024;

    /// Validates a policy.
    ///
    /// # Errors
    /// [`HashError::ParamBelowMinimum`] when `m_cost_kib` is below
    /// [`MIN_M_COST_KIB`](Self::MIN_M_COST_KIB) or below `8 * p_cost`, or `t_cost`/`p_cost` is
    /// zero; [`HashError::ParamOutOfBounds`] when `p_cost` exceeds argon2's maximum (2^24 - 1).
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self, HashError> {
        if t_cost < 1 {
            return Err(HashError::ParamBelowMinimum {
                name: "t_cost",
                value: 0,
                min: 1,
            });
        }
        if p_cost < 1 {
            return Err(HashError::ParamBelowMinimum {
                name: "p_cost",
                value: 0,
                min: 1,
            });
        }
        if p_cost > ::argon2::Params::MAX_P_COST {
            return Err(HashError::ParamOutOfBounds {
                name: "p_cost",
                value: p_cost.into(),
                max: ::argon2::Params::MAX_P_COST.into(),
            });
        }
        let min_m = Self::MIN_M_COST_KIB.max(p_cost.saturating_mul(8));
        if m_cost_kib < min_m {
            return Err(HashError::ParamBelowMinimum {
                name: "m_cost_kib",
                value: m_cost_kib.into(),
                min: min_m.into(),
            });
        }
        Ok(Self {
            m_cost_kib,
            t_cost,
            p_cost,
        })
    }

    /// Memory cost in KiB.
    #[must_use]
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Number of passes.
    #[must_use]
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Degree of parallelism (lanes).
    #[must_use]
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    /// OWASP's argon2id configurations of equivalent strength (Password Storage Cheat Sheet):
    /// m = 47104 t = 1, m = 19456 t = 2 (the default), m = 12288 t = 3, m = 9216 t = 4,
    /// m = 7168 t = 5, all p = 1. Less memory with more passes costs an attacker as much, but
    /// runs better where several hashes run at once and their working sets overflow the
    /// cache: see [`fastest_in_parallel`](Self::fastest_in_parallel).
    pub const OWASP_EQUIVALENT: [Self; 5] = [
        Self {
            m_cost_kib: 47_104,
            t_cost: 1,
            p_cost: 1,
        },
        Self::DEFAULT,
        Self {
            m_cost_kib: 12_288,
            t_cost: 3,
            p_cost: 1,
        },
        Self {
            m_cost_kib: 9_216,
            t_cost: 4,
            p_cost: 1,
        },
        Self {
            m_cost_kib: 7_168,
            t_cost: 5,
            p_cost: 1,
        },
    ];

    /// Measures each profile of [`OWASP_EQUIVALENT`](Self::OWASP_EQUIVALENT) hashing on
    /// `threads` threads at once, `rounds` hashes per thread, and returns the fastest with
    /// every profile's time for its hashes. Run it at deployment on the host that will hash
    /// (a bulk regeneration uses every core), and store the answer with the configuration:
    /// it is a measurement, not a constant.
    ///
    /// # Errors
    /// [`HashError::Backend`] if a trial hash fails.
    pub fn fastest_in_parallel(
        threads: std::num::NonZeroUsize,
        rounds: u32,
    ) -> Result<(Self, Vec<(Self, Duration)>), HashError> {
        let mut timings = Vec::with_capacity(Self::OWASP_EQUIVALENT.len());
        for policy in Self::OWASP_EQUIVALENT {
            let started = Instant::now();
            std::thread::scope(|s| {
                let workers: Vec<_> = (0..threads.get())
                    .map(|_| {
                        s.spawn(move || {
                            (0..rounds).try_for_each(|_| {
                                argon2::dummy_hash(&policy, b"profile password").map(drop)
                            })
                        })
                    })
                    .collect();
                workers
                    .into_iter()
                    .try_for_each(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            })?;
            timings.push((policy, started.elapsed()));
        }
        let fastest = (timings.iter())
            .min_by_key(|(_, took)| *took)
            .map_or(Self::DEFAULT, |(policy, _)| *policy);
        Ok((fastest, timings))
    }

    /// Finds a policy whose hashing takes about `target` on this machine: starting from
    /// [`DEFAULT`](Self::DEFAULT), it raises `t_cost` up to 4 and then doubles the memory,
    /// never going below the default nor above `limits`.
    ///
    /// # Errors
    /// [`HashError::Backend`] if a trial hash fails.
    pub fn calibrate(target: Duration, limits: &HashLimits) -> Result<Self, HashError> {
        let mut policy = Self::DEFAULT;
        loop {
            let started = Instant::now();
            argon2::dummy_hash(&policy, b"calibration password")?;
            if started.elapsed() >= target {
                return Ok(policy);
            }
            let next = if policy.t_cost < 4 {
                Self {
                    t_cost: policy.t_cost + 1,
                    ..policy
                }
            } else {
                match policy.m_cost_kib.checked_mul(2) {
                    Some(m) if m <= limits.max_argon2_m_kib => Self {
                        m_cost_kib: m,
                        ..policy
                    },
                    _ => return Ok(policy),
                }
            };
            if next.t_cost > limits.max_argon2_t {
                return Ok(policy);
            }
            policy = next;
        }
    }
}

impl Default for Argon2Policy {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Upper bounds on the cost parameters of stored hashes. A stored string above any bound is
/// rejected with [`HashError::ParamOutOfBounds`] at parse, import *and* verify, before any
/// hashing: a hostile row must not make a sign-in run for minutes or allocate gigabytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashLimits {
    /// Largest bcrypt cost (log2 rounds).
    pub max_bcrypt_cost: u32,
    /// Largest SHA-crypt (`$5$`, `$6$`) `rounds=`.
    pub max_sha_crypt_rounds: u32,
    /// Largest BSDi extended-DES round count.
    pub max_bsdi_rounds: u32,
    /// Largest phpass iteration count, as log2.
    pub max_phpass_log2: u32,
    /// Largest argon2 memory cost, in KiB.
    pub max_argon2_m_kib: u32,
    /// Largest argon2 pass count.
    pub max_argon2_t: u32,
    /// Largest argon2 lane count.
    pub max_argon2_p: u32,
    /// Largest PBKDF2 iteration count (Django, passlib) with HMAC-SHA-1 or HMAC-SHA-256; an
    /// HMAC-SHA-512 iteration counts as four (it costs about four on 64-bit CPUs, which have
    /// SHA-256 but not SHA-512 instructions).
    pub max_pbkdf2_iterations: u32,
    /// Largest scrypt memory and work, in KiB: the memory, 128·N·r + 128·r·p + 256·r bytes
    /// (the V array, PBKDF2's output B, and the block mixer's scratch), and the work,
    /// 128·N·r·p bytes (p runs over V, one after the other), are each bounded by it.
    pub max_scrypt_kib: u32,
    /// Largest scrypt block size `r`.
    pub max_scrypt_r: u32,
    /// Largest scrypt parallelism `p`. With `max_scrypt_r` it bounds PBKDF2's output, 128·r·p
    /// bytes, which HMAC-SHA-256 computes 32 bytes at a time, each block hashing the salt
    /// again.
    pub max_scrypt_p: u32,
    /// Largest yescrypt memory, in KiB: 128·N·r + 128·r·p + 256·r bytes plus 12 KiB of
    /// S-boxes per lane.
    pub max_yescrypt_kib: u32,
    /// Largest yescrypt block size `r` (libxcrypt writes 32; 8 below cost 3).
    pub max_yescrypt_r: u32,
    /// Largest yescrypt `t` (extra time factor; libxcrypt writes 0).
    pub max_yescrypt_t: u32,
    /// Largest yescrypt `p` (lanes, run one after the other here).
    pub max_yescrypt_p: u32,
    /// Largest Drupal 7 `$S$` iteration count, as log2 (SHA-512 over up to 512 bytes each).
    pub max_drupal_log2: u32,
    /// Longest password accepted, in bytes.
    pub max_password_bytes: usize,
}

impl HashLimits {
    /// The defaults, each at most about a second of CPU on a current server core:
    ///
    /// - `max_bcrypt_cost = 14`: OWASP recommends 10 or more, deployments use 10–12; each
    ///   step doubles the work and 14 is about one second.
    /// - `max_sha_crypt_rounds = 1_000_000`: glibc's default is 5000, passlib's 535000–656000.
    /// - `max_bsdi_rounds = 1_000_000`: the BSD default is 7250.
    /// - `max_phpass_log2 = 20`: WordPress writes 8, phpBB 10, passlib 19.
    /// - `max_argon2_m_kib = 262_144` (256 MiB), `max_argon2_t = 10`, `max_argon2_p = 16`:
    ///   above RFC 9106's 64 MiB second recommendation and OWASP's 46 MiB profile, while keeping
    ///   a hostile row from allocating gigabytes (the first RFC recommendation, 2 GiB, needs
    ///   raised limits on purpose).
    /// - `max_pbkdf2_iterations = 2_000_000`: Django 5.2 writes 1 000 000 (PBKDF2-SHA256),
    ///   passlib 29 000; OWASP asks for 600 000. PBKDF2-SHA512 is admitted up to 500 000
    ///   (passlib writes 25 000).
    /// - `max_scrypt_kib = 132_096` (129 MiB: 128 MiB of V and up to 1 MiB of buffers),
    ///   `max_scrypt_r = 32`, `max_scrypt_p = 16`: passlib's default (N = 2^16, r = 8, p = 1)
    ///   is 64 MiB, Django's (N = 2^14, r = 8, p = 1) 16 MiB; both write r = 8 and p = 1.
    ///   PBKDF2's output is then at most 64 KiB.
    /// - `max_yescrypt_kib = 132_096` (129 MiB, as scrypt), `max_yescrypt_r = 32`,
    ///   `max_yescrypt_t = 2`, `max_yescrypt_p = 4`: libxcrypt's default (`$y$j9T$`,
    ///   N = 2^12, r = 32) is 16 MiB, its cost 8 (N = 2^15) 128 MiB, its largest cost setting
    ///   (11) 1 GiB, which needs raised limits on purpose.
    /// - `max_drupal_log2 = 18`: Drupal 7 writes 15; 2^18 rounds over a 512-byte password
    ///   (Drupal's longest) take about a third of a second.
    /// - `max_password_bytes = 4096`: WordPress's own limit; SHA-crypt's work grows with the
    ///   square of the password length.
    pub const DEFAULT: Self = Self {
        max_bcrypt_cost: 14,
        max_sha_crypt_rounds: 1_000_000,
        max_bsdi_rounds: 1_000_000,
        max_phpass_log2: 20,
        max_argon2_m_kib: 262_144,
        max_argon2_t: 10,
        max_argon2_p: 16,
        max_pbkdf2_iterations: 2_000_000,
        max_scrypt_kib: 132_096,
        max_scrypt_r: 32,
        max_scrypt_p: 16,
        max_yescrypt_kib: 132_096,
        max_yescrypt_r: 32,
        max_yescrypt_t: 2,
        max_yescrypt_p: 4,
        max_drupal_log2: 18,
        max_password_bytes: 4096,
    };

    /// Raises the argon2 limits so that hashes written under `policy` are always accepted.
    #[must_use]
    pub fn admitting(mut self, policy: &Argon2Policy) -> Self {
        self.max_argon2_m_kib = self.max_argon2_m_kib.max(policy.m_cost_kib);
        self.max_argon2_t = self.max_argon2_t.max(policy.t_cost);
        self.max_argon2_p = self.max_argon2_p.max(policy.p_cost);
        self
    }
}

impl Default for HashLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The answer of one [`HashScheme`] to a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeMatch {
    /// The password matches the stored hash.
    Match,
    /// It does not.
    NoMatch,
}

impl From<bool> for SchemeMatch {
    fn from(matched: bool) -> Self {
        if matched { Self::Match } else { Self::NoMatch }
    }
}

/// A stored-hash format. Built-in formats implement it, and applications register in-house
/// formats with [`Hasher::with_scheme`].
///
/// # Contract
/// - `detect` is cheap (prefix or length test), never evaluates anything, and is true for
///   every string the scheme owns, malformed ones included, so that they get a precise error.
/// - `check` parses and bounds-checks against `limits` without hashing.
/// - `verify` runs `check` first, then compares in constant time. It receives the password's
///   exact UTF-8 bytes.
pub trait HashScheme: Send + Sync + fmt::Debug {
    /// A short stable name (`"bcrypt"`), reported in [`PasswordHash::scheme`].
    fn name(&self) -> &'static str;

    /// Whether `stored` belongs to this scheme.
    fn detect(&self, stored: &str) -> bool;

    /// Parses `stored` and checks its parameters against `limits`, without hashing.
    ///
    /// # Errors
    /// [`HashError::Malformed`], [`HashError::UnsupportedVariant`] or
    /// [`HashError::ParamOutOfBounds`].
    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError>;

    /// Verifies `password` against `stored`.
    ///
    /// # Errors
    /// As [`check`](Self::check), plus [`HashError::Backend`].
    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError>;
}

/// The outcome of [`Hasher::verify`]. A wrong password is an outcome, not an error.
#[must_use = "a verification outcome must be checked"]
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The password matches a current keyward argon2id hash.
    Match,
    /// The password matches, and the stored hash should be replaced by `new_hash` (argon2id
    /// under the current policy). The replacement is the caller's to store.
    MatchUpgraded {
        /// The replacement hash.
        new_hash: PasswordHash,
        /// The scheme the matched hash was in.
        from_scheme: &'static str,
    },
    /// The password does not match.
    NoMatch,
}

impl Verification {
    /// Whether the password matched (with or without upgrade).
    #[must_use]
    pub fn is_match(&self) -> bool {
        matches!(self, Self::Match | Self::MatchUpgraded { .. })
    }
}

/// Where in the registry a scheme sits; keyward's own formats always come first.
#[derive(Debug, Clone)]
struct Inner {
    policy: Argon2Policy,
    limits: HashLimits,
    /// keyward's own formats: native argon2id, imported argon2, salted digests.
    own: Vec<Arc<dyn HashScheme>>,
    /// Application schemes, tried after keyward's own and before the legacy ones.
    custom: Vec<Arc<dyn HashScheme>>,
    /// Legacy formats.
    legacy: Vec<Arc<dyn HashScheme>>,
    /// Whether [`Hasher::import`] wraps fast legacy hashes (see [`Hasher::wrap_fast`]).
    wrap_imports: bool,
    /// A hash at the current policy that [`Hasher::verify_dummy`] verifies against (made at
    /// the first call; `None` if the policy cannot hash).
    dummy: std::sync::OnceLock<Option<PasswordHash>>,
}

/// Hashes, parses, verifies and imports passwords. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.schemes().map(|s| s.name()).collect();
        f.debug_struct("Hasher")
            .field("policy", &self.inner.policy)
            .field("limits", &self.inner.limits)
            .field("schemes", &names)
            .field("wrap_imports", &self.inner.wrap_imports)
            .finish()
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Self::new(Argon2Policy::DEFAULT, HashLimits::DEFAULT)
    }
}

impl Hasher {
    /// A hasher writing argon2id under `policy` and refusing stored hashes above `limits`.
    /// The argon2 limits are raised to admit `policy` itself (see [`HashLimits::admitting`]).
    #[must_use]
    pub fn new(policy: Argon2Policy, limits: HashLimits) -> Self {
        let own: Vec<Arc<dyn HashScheme>> = vec![
            Arc::new(argon2::Native),
            Arc::new(argon2::Imported),
            Arc::new(salted::Salted::MD5),
            Arc::new(salted::Salted::SHA1),
            Arc::new(salted::Salted::SHA256),
            Arc::new(salted::Salted::SHA512),
            Arc::new(wrap::Wrapped::new(policy)),
        ];
        let mut legacy: Vec<Arc<dyn HashScheme>> = vec![
            Arc::new(bcrypt::Bcrypt),
            Arc::new(wordpress::WpBcrypt),
            Arc::new(wordpress::Phpass),
            Arc::new(crypt::Md5Crypt),
            Arc::new(crypt::ShaCrypt::SHA256),
            Arc::new(crypt::ShaCrypt::SHA512),
            Arc::new(crypt::BsdiCrypt),
            Arc::new(crypt::DesCrypt),
            Arc::new(yescrypt::Yescrypt),
            Arc::new(scrypt::Scrypt::PHC),
            Arc::new(scrypt::Scrypt::DJANGO),
            Arc::new(drupal::Drupal),
            Arc::new(pbkdf2::Pbkdf2::DJANGO_SHA256),
            Arc::new(pbkdf2::Pbkdf2::DJANGO_SHA1),
            Arc::new(pbkdf2::Pbkdf2::PASSLIB_SHA1),
            Arc::new(pbkdf2::Pbkdf2::PASSLIB_SHA256),
            Arc::new(pbkdf2::Pbkdf2::PASSLIB_SHA512),
            Arc::new(ldap::LdapCrypt),
            Arc::new(salted::PlainMd5),
        ];
        for scheme in ldap::LdapDigest::ALL {
            legacy.push(Arc::new(scheme));
        }
        Self {
            inner: Arc::new(Inner {
                policy,
                limits: limits.admitting(&policy),
                own,
                custom: Vec::new(),
                legacy,
                wrap_imports: false,
                dummy: std::sync::OnceLock::new(),
            }),
        }
    }

    /// A cheap and **insecure** hasher for unit tests: argon2id with m = 8 KiB, t = 1, p = 1
    /// ([`Argon2Policy::INSECURE_TEST`]) and the default limits. Never use it in production.
    #[must_use]
    pub fn for_tests() -> Self {
        Self::new(Argon2Policy::INSECURE_TEST, HashLimits::DEFAULT)
    }

    /// Registers an in-house scheme. It is tried after keyward's own formats (argon2id,
    /// imported argon2, salted digests) and before the legacy ones, so it may claim strings a
    /// legacy detector would also claim (bare hex, for example). Hashes verified through it
    /// are always upgraded to argon2id.
    #[must_use]
    pub fn with_scheme(mut self, scheme: impl HashScheme + 'static) -> Self {
        Arc::make_mut(&mut self.inner).custom.push(Arc::new(scheme));
        self
    }

    /// Makes [`import`](Self::import) wrap every fast legacy hash it accepts (see
    /// [`wrap_fast`](Self::wrap_fast)), so imported users are protected at rest from the
    /// first write. Each such import then costs one argon2id hash under the policy.
    #[must_use]
    pub fn wrapping_fast_imports(mut self) -> Self {
        Arc::make_mut(&mut self.inner).wrap_imports = true;
        self
    }

    /// Whether [`import`](Self::import) wraps fast legacy hashes.
    #[must_use]
    pub fn wraps_fast_imports(&self) -> bool {
        self.inner.wrap_imports
    }

    /// Whether `stored` is a fast legacy hash that [`wrap_fast`](Self::wrap_fast) protects: a
    /// plain or salted md5/sha1/sha256/sha512 digest (bare, `$keyward-salted$` or LDAP), DES
    /// crypt, md5-crypt or phpass (also inside `{CRYPT}`).
    #[must_use]
    pub fn is_fast(&self, stored: &PasswordHash) -> bool {
        wrap::split(stored.scheme(), stored.as_str()).is_some_and(|r| r.is_ok())
    }

    /// Protects a fast legacy hash at rest: returns `$keyward-wrapped$v=1$...`, argon2id
    /// (under the current policy) over the legacy digest, which verifies the same passwords
    /// and is upgraded to plain argon2id at the next successful sign-in. `None` when `stored`
    /// is not a fast legacy hash (already wrapped, argon2, bcrypt, ...).
    ///
    /// The string is `$keyward-wrapped$v=1$<legacy>$<setting>$<argon2id PHC>`: `<legacy>` is
    /// `<alg>,<position>` for a plain or salted digest or `des-crypt`/`md5-crypt`/`phpass`,
    /// `<setting>` the salt or crypt setting in unpadded base64url, and the PHC string is
    /// argon2id over the legacy digest (its raw bytes, or its crypt-base64 text for the
    /// crypt-style schemes). Verifying computes the legacy digest, then argon2id: about one
    /// argon2id verify (20 ms at the default policy); wrapping costs one argon2id hash.
    ///
    /// # Errors
    /// As [`parse`](Self::parse) for a string that no longer parses, and
    /// [`HashError::Backend`] if argon2 fails.
    pub fn wrap_fast(&self, stored: &PasswordHash) -> Result<Option<PasswordHash>, HashError> {
        let Some(split) = wrap::split(stored.scheme(), stored.as_str()) else {
            return Ok(None);
        };
        let (legacy, digest) = split?;
        let encoded = wrap::wrap(&legacy, &digest, &self.inner.policy)?;
        Ok(Some(PasswordHash {
            encoded,
            scheme: wrap::NAME,
        }))
    }

    /// The policy new hashes are written with.
    #[must_use]
    pub fn policy(&self) -> &Argon2Policy {
        &self.inner.policy
    }

    /// The bounds stored hashes are checked against.
    #[must_use]
    pub fn limits(&self) -> &HashLimits {
        &self.inner.limits
    }

    fn schemes(&self) -> impl Iterator<Item = &Arc<dyn HashScheme>> {
        self.inner
            .own
            .iter()
            .chain(&self.inner.custom)
            .chain(&self.inner.legacy)
    }

    /// The first scheme that claims `stored`, and whether it is keyward's native argon2id.
    /// A string longer than [`MAX_STORED_BYTES`] is refused before any scheme sees it.
    fn resolve(&self, stored: &str) -> Result<(&dyn HashScheme, bool), HashError> {
        if stored.len() > MAX_STORED_BYTES {
            return Err(HashError::StoredTooLong {
                len: stored.len(),
                max: MAX_STORED_BYTES,
            });
        }
        if argon2::Native.detect(stored) {
            return Ok((&argon2::Native, true));
        }
        self.schemes()
            .find(|s| s.detect(stored))
            .map(|s| (s.as_ref(), false))
            .ok_or(HashError::UnknownFormat)
    }

    fn check_len(&self, password: &[u8]) -> Result<(), HashError> {
        let max = self.inner.limits.max_password_bytes;
        if password.len() > max {
            return Err(HashError::PasswordTooLong {
                len: password.len(),
                max,
            });
        }
        Ok(())
    }

    /// Hashes `password` (after NFKC normalization) with argon2id under the current policy.
    ///
    /// # Errors
    /// [`HashError::PasswordTooLong`], or [`HashError::Backend`] if argon2 fails.
    pub fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        self.check_len(password.expose_secret().as_bytes())?;
        let normalized = nfkc(password.expose_secret());
        let encoded = argon2::hash_new(&self.inner.policy, normalized.as_bytes())?;
        Ok(PasswordHash {
            encoded,
            scheme: argon2::NATIVE,
        })
    }

    /// [`hash`](Self::hash) with working memory the caller keeps across many hashes on one
    /// thread (bulk regeneration).
    pub(crate) fn hash_in(
        &self,
        password: &Password,
        memory: &mut HashMemory,
    ) -> Result<PasswordHash, HashError> {
        self.check_len(password.expose_secret().as_bytes())?;
        let normalized = nfkc(password.expose_secret());
        let encoded = argon2::hash_new_in(&self.inner.policy, normalized.as_bytes(), memory)?;
        Ok(PasswordHash {
            encoded,
            scheme: argon2::NATIVE,
        })
    }

    /// Parses an untrusted stored string: detects its scheme and checks its parameters against
    /// the limits, without hashing anything.
    ///
    /// # Errors
    /// [`HashError::StoredTooLong`] over [`MAX_STORED_BYTES`]; [`HashError::UnknownFormat`]
    /// if no scheme claims it; otherwise the claiming scheme's [`HashError::Malformed`],
    /// [`HashError::UnsupportedVariant`] or [`HashError::ParamOutOfBounds`].
    pub fn parse(&self, stored: &str) -> Result<PasswordHash, HashError> {
        let (scheme, _) = self.resolve(stored)?;
        scheme.check(stored, &self.inner.limits)?;
        Ok(PasswordHash {
            encoded: stored.to_owned(),
            scheme: scheme.name(),
        })
    }

    /// Verifies `password` against `stored`. keyward's own argon2id hashes are verified over
    /// NFKC(password); every other scheme over the password's exact UTF-8 bytes. Bounds are
    /// checked again before hashing. A match of anything but a keyward argon2id hash at the
    /// current policy is [`Verification::MatchUpgraded`] and carries the replacement.
    ///
    /// # Errors
    /// As [`parse`](Self::parse), plus [`HashError::PasswordTooLong`] and
    /// [`HashError::Backend`]. A wrong password is [`Verification::NoMatch`], not an error.
    pub fn verify(
        &self,
        password: &Password,
        stored: &PasswordHash,
    ) -> Result<Verification, HashError> {
        match self.verify_scheme(password, stored)? {
            SchemeMatch::NoMatch => Ok(Verification::NoMatch),
            SchemeMatch::Match if !self.needs_upgrade(stored) => Ok(Verification::Match),
            SchemeMatch::Match => Ok(Verification::MatchUpgraded {
                new_hash: self.hash(password)?,
                from_scheme: stored.scheme(),
            }),
        }
    }

    /// Verification alone: no upgrade decision and no new hash.
    ///
    /// # Errors
    /// As [`verify`](Self::verify).
    pub fn verify_scheme(
        &self,
        password: &Password,
        stored: &PasswordHash,
    ) -> Result<SchemeMatch, HashError> {
        let limits = &self.inner.limits;
        let raw = password.expose_secret();
        self.check_len(raw.as_bytes())?;
        let (scheme, native) = self.resolve(stored.as_str())?;
        if native {
            let normalized = nfkc(raw);
            scheme.verify(normalized.as_bytes(), stored.as_str(), limits)
        } else {
            scheme.verify(raw.as_bytes(), stored.as_str(), limits)
        }
    }

    /// Whether `stored` should be replaced after a successful verification: true for anything
    /// but a keyward argon2id hash with exactly the current policy's parameters.
    #[must_use]
    pub fn needs_upgrade(&self, stored: &PasswordHash) -> bool {
        !(argon2::Native.detect(stored.as_str())
            && argon2::is_current(stored.as_str(), &self.inner.policy))
    }

    /// Spends the same work as verifying a current-policy hash and discards the result: call it
    /// for unknown users so that response times do not reveal which accounts exist.
    pub fn verify_dummy(&self, password: &Password) {
        let raw = password.expose_secret();
        // Cut over-long input at the limit, on a character boundary (never the whole input).
        let mut take = raw.len().min(self.inner.limits.max_password_bytes);
        while !raw.is_char_boundary(take) {
            take -= 1;
        }
        let cut = Password::new(raw.get(..take).unwrap_or_default());
        // The very path of a real verification (normalize, parse, argon2id, compare), against
        // a hash at the current policy: the same cost, not merely a similar one (deriving a
        // fresh hash measured 9 % slower than verifying one).
        let dummy = self
            .inner
            .dummy
            .get_or_init(|| self.hash(&Password::new("keyward dummy verification")).ok());
        match dummy {
            Some(hash) => {
                let _ = std::hint::black_box(self.verify(&cut, hash));
            }
            None => {
                let normalized = nfkc(cut.expose_secret());
                let outcome = argon2::dummy_hash(&self.inner.policy, normalized.as_bytes());
                // Compare against a constant so the work cannot be optimized away.
                let _ = outcome.map(|out| out.ct_eq(&[0u8; 32]));
            }
        }
    }

    /// Validates a whole import record (every field, against the named method and the limits)
    /// and returns the hash to store. Nothing is hashed and nothing need be stored when it
    /// fails.
    ///
    /// # Errors
    /// An [`ImportError`] naming the offending field ([`ImportError::field`]).
    pub fn import(&self, record: &ImportRecord) -> Result<PasswordHash, ImportError> {
        let hash = import::import(self, record)?;
        if !self.inner.wrap_imports {
            return Ok(hash);
        }
        match self.wrap_fast(&hash) {
            Ok(wrapped) => Ok(wrapped.unwrap_or(hash)),
            Err(source) => Err(ImportError::InvalidHash { source }),
        }
    }
}

/// NFKC(password): borrowed when already normalized (always so for ASCII), else an owned
/// copy zeroized on drop.
enum Normalized<'a> {
    Borrowed(&'a str),
    Owned(Zeroizing<String>),
}

impl Normalized<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Borrowed(s) => s.as_bytes(),
            Self::Owned(s) => s.as_bytes(),
        }
    }
}

fn nfkc(password: &str) -> Normalized<'_> {
    if password.is_ascii() || is_nfkc_quick(password.chars()) == IsNormalized::Yes {
        Normalized::Borrowed(password)
    } else {
        Normalized::Owned(Zeroizing::new(password.nfkc().collect()))
    }
}

/// `Malformed` for `scheme` with `reason`.
fn malformed(scheme: &'static str, reason: &'static str) -> HashError {
    HashError::Malformed { scheme, reason }
}

/// Fails with `ParamOutOfBounds` when `value > max`.
fn bounded(name: &'static str, value: u64, max: u64) -> Result<(), HashError> {
    if value > max {
        return Err(HashError::ParamOutOfBounds { name, value, max });
    }
    Ok(())
}

/// Password length up to which every admitted round count is evaluated: the round limits
/// (`max_sha_crypt_rounds`, `max_phpass_log2`) are the limits for passwords of up to this many
/// bytes. 128 bytes covers generated passwords and passphrases.
pub const FULL_ROUNDS_PASSWORD_BYTES: u64 = 128;
/// The fixed work of one round, in password bytes (measured: a SHA-crypt or phpass round
/// costs about as much as hashing 50–70 more password bytes).
const ROUND_OVERHEAD_BYTES: u64 = 64;

/// The rule against CPU amplification in schemes whose every round hashes the whole password
/// (phpass, SHA-crypt): the work, rounds × (password bytes + the round's fixed work), may not
/// exceed that of `max_rounds` over a [`FULL_ROUNDS_PASSWORD_BYTES`]-byte password. So no
/// password of up to 128 bytes is ever refused for a hash the limits admit, a hash with the
/// legacy defaults (glibc's 5000 rounds, WordPress's 2^8) verifies every password up to
/// `max_password_bytes`, and one verification never costs more than `max_rounds` at 128
/// bytes, whatever the length. A longer password against a costlier hash is refused with
/// `ParamOutOfBounds { name: "rounds_for_password_length", value: rounds, max }` before any
/// hashing.
fn bounded_work(rounds: u64, max_rounds: u64, password_len: usize) -> Result<(), HashError> {
    let len = u64::try_from(password_len).unwrap_or(u64::MAX);
    let budget = max_rounds.saturating_mul(FULL_ROUNDS_PASSWORD_BYTES + ROUND_OVERHEAD_BYTES);
    let per_round = len.saturating_add(ROUND_OVERHEAD_BYTES);
    bounded("rounds_for_password_length", rounds, budget / per_round)
}

/// Constant-time equality of two byte strings (the lengths are not hidden).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Whether every byte of `s` is in the crypt(3) base64 alphabet `./0-9A-Za-z`.
fn is_crypt64(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashing_in_kept_memory_writes_the_same_phc_strings() {
        let hasher = Hasher::default();
        let pw = Password::new("correct horse battery staple");
        let mut memory = HashMemory::default();
        for _ in 0..2 {
            let kept = hasher.hash_in(&pw, &mut memory).unwrap();
            let fresh = hasher.hash(&pw).unwrap();
            let shape = |h: &PasswordHash| h.as_str().rsplitn(3, '$').nth(2).map(str::to_owned);
            assert_eq!(shape(&kept), shape(&fresh));
            assert_eq!(kept.scheme(), fresh.scheme());
            assert!(
                hasher
                    .verify(&pw, &hasher.parse(kept.as_str()).unwrap())
                    .unwrap()
                    .is_match()
            );
            assert!(
                !hasher
                    .verify(&Password::new("wrong"), &kept)
                    .unwrap()
                    .is_match()
            );
        }
    }

    #[test]
    fn the_fastest_parallel_profile_is_the_one_measured_fastest() {
        let one = std::num::NonZeroUsize::MIN;
        let (fastest, timings) = Argon2Policy::fastest_in_parallel(one, 1).unwrap();
        let policies: Vec<_> = timings.iter().map(|(p, _)| *p).collect();
        assert_eq!(policies, Argon2Policy::OWASP_EQUIVALENT);
        let min = timings.iter().map(|(_, t)| *t).min().unwrap();
        assert_eq!(
            timings.iter().find(|(p, _)| *p == fastest).map(|(_, t)| *t),
            Some(min)
        );
        // Every profile keeps the same memory-time product, within OWASP's rounding.
        for p in Argon2Policy::OWASP_EQUIVALENT {
            let product = u64::from(p.m_cost_kib()) * u64::from(p.t_cost());
            assert!((35_840..=47_104).contains(&product), "{p:?}");
        }
    }

    #[test]
    fn debug_hides_digest() {
        let h = Hasher::for_tests().hash(&Password::new("pw")).unwrap();
        let shown = format!("{h:?}");
        assert_eq!(shown, "PasswordHash { scheme: \"argon2\", .. }");
    }

    #[test]
    fn policy_validation() {
        assert!(Argon2Policy::new(19_456, 2, 1).is_ok());
        assert!(matches!(
            Argon2Policy::new(1024, 2, 1),
            Err(HashError::ParamBelowMinimum {
                name: "m_cost_kib",
                ..
            })
        ));
        assert!(Argon2Policy::new(19_456, 0, 1).is_err());
        assert!(Argon2Policy::new(19_456, 1, 0).is_err());
        assert_eq!(Argon2Policy::default(), Argon2Policy::DEFAULT);
    }

    #[test]
    fn work_is_bounded_jointly_with_the_password_length() {
        // Up to 128 bytes, every admitted round count.
        for len in [0, 16, 128] {
            assert!(bounded_work(1_000_000, 1_000_000, len).is_ok());
        }
        // Longer: the rounds shrink as the password grows, linearly.
        assert!(bounded_work(1_000_000, 1_000_000, 129).is_err());
        let allowed = |len| match bounded_work(u64::MAX, 1_000_000, len) {
            Err(HashError::ParamOutOfBounds { max, .. }) => max,
            other => panic!("{other:?}"),
        };
        assert_eq!(allowed(128), 1_000_000);
        assert_eq!(allowed(4096), 1_000_000 * 192 / 4160);
        // glibc's default rounds and WordPress's 2^8 verify any password keyward accepts.
        assert!(bounded_work(5000, 1_000_000, 4096).is_ok());
        assert!(bounded_work(1 << 8, 1 << 20, 4096).is_ok());
        assert!(bounded_work(1 << 19, 1 << 20, 4096).is_err());
        // passlib's defaults: sha512-crypt 656 000 rounds up to 228 bytes, phpass 2^19 to 320.
        assert!(bounded_work(656_000, 1_000_000, 228).is_ok());
        assert!(bounded_work(656_000, 1_000_000, 229).is_err());
        assert!(bounded_work(1 << 19, 1 << 20, 320).is_ok());
        assert!(bounded_work(1 << 19, 1 << 20, 321).is_err());
        assert!(bounded_work(1, 1, usize::MAX).is_err());
    }

    #[test]
    fn nfkc_borrows_ascii() {
        assert!(matches!(nfkc("abc"), Normalized::Borrowed(_)));
        assert_eq!(nfkc("\u{FB01}").as_bytes(), b"fi");
    }
}
