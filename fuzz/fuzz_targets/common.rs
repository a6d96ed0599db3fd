use keyward::hash::HashLimits;
use keyward::{Argon2Policy, Hasher};

/// `Hasher::for_tests()`'s cheap argon2 profile with limits low enough that a fuzzer-made hash
/// verifies in milliseconds. Parsing is fuzzed with the real defaults too; verify re-checks
/// bounds, so anything above these limits is refused instead of slowing the fuzzer down.
pub fn cheap() -> Hasher {
    Hasher::new(
        Argon2Policy::INSECURE_TEST,
        HashLimits {
            max_bcrypt_cost: 5,
            max_sha_crypt_rounds: 5_000,
            max_bsdi_rounds: 5_000,
            max_phpass_log2: 10,
            max_argon2_m_kib: 64,
            max_argon2_t: 2,
            max_argon2_p: 2,
            max_pbkdf2_iterations: 5_000,
            max_scrypt_kib: 1_024,
            max_scrypt_r: 8,
            max_scrypt_p: 2,
            max_yescrypt_kib: 1_024,
            max_yescrypt_r: 8,
            max_yescrypt_t: 1,
            max_yescrypt_p: 2,
            max_drupal_log2: 10,
            max_password_bytes: 256,
        },
    )
}
