//! argon2: keyward's own argon2id hashes and argon2 hashes imported from elsewhere.
//!
//! Both are PHC strings evaluated by the `argon2` crate. They differ in what they are computed
//! over: keyward writes hashes over NFKC(password), other systems over whatever bytes they were
//! given. An imported string is therefore stored behind the [`IMPORT_PREFIX`] wrapper, verified
//! over the exact bytes, and upgraded once.

use ::argon2::password_hash::phc::PasswordHash as Phc;
use ::argon2::{Algorithm, Argon2, Params, Version};

use super::error::BackendError;
use super::{
    Argon2Policy, HashError, HashLimits, HashScheme, SchemeMatch, bounded, ct_eq, malformed,
};

/// Scheme name of keyward's own argon2id hashes.
pub(super) const NATIVE: &str = "argon2";
/// Scheme name of imported argon2 hashes.
pub(super) const IMPORTED: &str = "argon2-imported";
/// The wrapper in front of an imported argon2 PHC string.
pub(super) const IMPORT_PREFIX: &str = "$keyward-import$v=1";

/// Output length keyward writes.
const OUTPUT_LEN: usize = 32;
/// Salt length keyward writes (the PHC recommendation).
const SALT_LEN: usize = 16;
/// Fixed salt for [`dummy_hash`]: its output is discarded.
const DUMMY_SALT: [u8; SALT_LEN] = *b"keyward-dummy-sl";

fn backend(err: ::argon2::Error) -> HashError {
    HashError::Backend {
        scheme: NATIVE,
        source: BackendError::new(err),
    }
}

fn params_for(policy: &Argon2Policy) -> Result<Params, HashError> {
    Params::new(
        policy.m_cost_kib,
        policy.t_cost,
        policy.p_cost,
        Some(OUTPUT_LEN),
    )
    .map_err(backend)
}

/// A new argon2id PHC string over `password` (already normalized) with a random salt.
pub(super) fn hash_new(policy: &Argon2Policy, password: &[u8]) -> Result<String, HashError> {
    let mut salt = [0u8; SALT_LEN];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let ctx = Argon2::new(Algorithm::Argon2id, Version::V0x13, params_for(policy)?);
    let phc =
        ::argon2::PasswordHasher::hash_password_with_salt(&ctx, password, &salt).map_err(|e| {
            HashError::Backend {
                scheme: NATIVE,
                source: BackendError::new(e),
            }
        })?;
    Ok(phc.to_string())
}

/// argon2 working memory kept by a thread that hashes many passwords in a row (a bulk
/// regeneration): one allocation serves every hash. Allocating m_cost KiB per hash, between
/// the small allocations such a run keeps, fragments the allocator's arenas until memory grows
/// with every hash (measured: about 2 MiB per password over two threads). Zeroized on drop.
#[derive(Default)]
pub(crate) struct Memory(Vec<::argon2::Block>);

impl Drop for Memory {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.0);
    }
}

/// [`hash_new`] with the caller's working memory: the same PHC string, no allocation of
/// m_cost per call.
pub(super) fn hash_new_in(
    policy: &Argon2Policy,
    password: &[u8],
    memory: &mut Memory,
) -> Result<String, HashError> {
    use ::argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
    let params = params_for(policy)?;
    let blocks = params.block_count();
    if memory.0.len() < blocks {
        memory.0.resize(blocks, ::argon2::Block::new());
    }
    let mut salt = [0u8; SALT_LEN];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
    let ctx = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = zeroize::Zeroizing::new([0u8; OUTPUT_LEN]);
    ctx.hash_password_into_with_memory(password, &salt, &mut *out, &mut memory.0[..blocks])
        .map_err(backend)?;
    let phc_error = |e: ::argon2::password_hash::phc::Error| HashError::Backend {
        scheme: NATIVE,
        source: BackendError::new(e),
    };
    let phc = PasswordHash {
        algorithm: ::argon2::ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| HashError::Backend {
            scheme: NATIVE,
            source: BackendError::new(e),
        })?,
        salt: Some(Salt::new(&salt).map_err(phc_error)?),
        hash: Some(Output::new(&*out).map_err(phc_error)?),
    };
    Ok(phc.to_string())
}

/// One argon2id evaluation under `policy` with a fixed salt (for timing equalization).
pub(super) fn dummy_hash(
    policy: &Argon2Policy,
    password: &[u8],
) -> Result<[u8; OUTPUT_LEN], HashError> {
    let ctx = Argon2::new(Algorithm::Argon2id, Version::V0x13, params_for(policy)?);
    let mut out = [0u8; OUTPUT_LEN];
    ctx.hash_password_into(password, &DUMMY_SALT, &mut out)
        .map_err(backend)?;
    Ok(out)
}

/// A parsed and bounds-checked argon2 PHC string, ready to evaluate.
struct Parsed {
    algorithm: Algorithm,
    version: Version,
    params: Params,
    phc: Phc,
}

fn parse(scheme: &'static str, s: &str, limits: &HashLimits) -> Result<Parsed, HashError> {
    let phc = Phc::new(s).map_err(|_| malformed(scheme, "not a valid PHC string"))?;
    let algorithm =
        Algorithm::new(phc.algorithm.as_str()).map_err(|_| HashError::UnsupportedVariant {
            scheme,
            variant: phc.algorithm.to_string(),
        })?;
    // PHC: an absent `v=` means version 1.0 (0x10), as in the reference implementation.
    let version = match phc.version {
        None => Version::V0x10,
        Some(v) => Version::try_from(v).map_err(|_| HashError::UnsupportedVariant {
            scheme,
            variant: format!("v={v}"),
        })?,
    };
    let (Some(salt), Some(hash)) = (&phc.salt, &phc.hash) else {
        return Err(malformed(scheme, "missing salt or hash"));
    };
    if salt.is_empty() {
        return Err(malformed(scheme, "empty salt"));
    }
    // One pass over the parameters; `Params::try_from` re-parses only for keyid/data.
    let (mut m, mut t, mut p, mut extra) = (None, None, None, false);
    for (ident, value) in phc.params.iter() {
        let slot = match ident.as_str() {
            "m" => &mut m,
            "t" => &mut t,
            "p" => &mut p,
            _ => {
                extra = true;
                continue;
            }
        };
        *slot = Some(
            value
                .decimal()
                .map_err(|_| malformed(scheme, "m, t, p must be decimal"))?,
        );
    }
    let (Some(m), Some(t), Some(p)) = (m, t, p) else {
        return Err(malformed(scheme, "missing m, t or p"));
    };
    bounded("m_cost", m.into(), limits.max_argon2_m_kib.into())?;
    bounded("t_cost", t.into(), limits.max_argon2_t.into())?;
    bounded("p_cost", p.into(), limits.max_argon2_p.into())?;
    let params = if extra {
        Params::try_from(&phc).map_err(|_| ())
    } else {
        Params::new(m, t, p, Some(hash.len())).map_err(|_| ())
    }
    .map_err(|()| malformed(scheme, "invalid parameters"))?;
    Ok(Parsed {
        algorithm,
        version,
        params,
        phc,
    })
}

fn evaluate(parsed: &Parsed, password: &[u8]) -> Result<SchemeMatch, HashError> {
    let (Some(salt), Some(expected)) = (&parsed.phc.salt, &parsed.phc.hash) else {
        return Ok(SchemeMatch::NoMatch);
    };
    let ctx = Argon2::new(parsed.algorithm, parsed.version, parsed.params.clone());
    let mut out = zeroize::Zeroizing::new(vec![0u8; expected.len()]);
    ctx.hash_password_into(password, salt.as_ref(), &mut out)
        .map_err(backend)?;
    Ok(ct_eq(&out, expected.as_bytes()).into())
}

/// Parses and bounds a PHC string of the shape keyward writes (argon2id, v=19, a 32-byte tag)
/// inside another format (reported as `scheme`), without evaluating it.
pub(super) fn check_written(
    scheme: &'static str,
    s: &str,
    limits: &HashLimits,
) -> Result<(), HashError> {
    parse_written(scheme, s, limits).map(drop)
}

/// Parses, bounds and evaluates such a PHC string over `input`.
pub(super) fn verify_written(
    scheme: &'static str,
    input: &[u8],
    s: &str,
    limits: &HashLimits,
) -> Result<SchemeMatch, HashError> {
    evaluate(&parse_written(scheme, s, limits)?, input)
}

fn parse_written(scheme: &'static str, s: &str, limits: &HashLimits) -> Result<Parsed, HashError> {
    let parsed = parse(scheme, s, limits)?;
    if parsed.algorithm != Algorithm::Argon2id || parsed.version != Version::V0x13 {
        return Err(malformed(scheme, "the inner hash must be argon2id v=19"));
    }
    if parsed.phc.hash.as_ref().map(|h| h.len()) != Some(OUTPUT_LEN) {
        return Err(malformed(scheme, "the inner hash must have a 32-byte tag"));
    }
    Ok(parsed)
}

/// Whether `s` is an argon2id v19 hash with exactly `policy`'s parameters.
pub(super) fn is_current(s: &str, policy: &Argon2Policy) -> bool {
    let Ok(phc) = Phc::new(s) else { return false };
    phc.algorithm.as_str() == "argon2id"
        && phc.version == Some(0x13)
        && phc.params.get_decimal("m") == Some(policy.m_cost_kib)
        && phc.params.get_decimal("t") == Some(policy.t_cost)
        && phc.params.get_decimal("p") == Some(policy.p_cost)
        && phc.params.iter().count() == 3
        && phc.hash.as_ref().map(|h| h.len()) == Some(OUTPUT_LEN)
}

/// keyward's own argon2 hashes: a bare `$argon2id$`/`$argon2i$`/`$argon2d$` PHC string.
#[derive(Debug, Clone, Copy)]
pub(super) struct Native;

impl HashScheme for Native {
    fn name(&self) -> &'static str {
        NATIVE
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$argon2")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        parse(NATIVE, stored, limits).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        evaluate(&parse(NATIVE, stored, limits)?, password)
    }
}

/// An imported argon2 PHC string behind `$keyward-import$v=1`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Imported;

impl Imported {
    fn inner(stored: &str) -> Result<&str, HashError> {
        stored
            .strip_prefix(IMPORT_PREFIX)
            .filter(|rest| rest.starts_with("$argon2"))
            .ok_or(malformed(
                IMPORTED,
                "expected $keyward-import$v=1$argon2...",
            ))
    }

    /// Wraps a foreign argon2 string after checking it.
    pub(super) fn wrap(foreign: &str, limits: &HashLimits) -> Result<String, HashError> {
        parse(IMPORTED, foreign, limits)?;
        Ok(format!("{IMPORT_PREFIX}{foreign}"))
    }
}

impl HashScheme for Imported {
    fn name(&self) -> &'static str {
        IMPORTED
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with("$keyward-import$")
    }

    fn check(&self, stored: &str, limits: &HashLimits) -> Result<(), HashError> {
        parse(IMPORTED, Self::inner(stored)?, limits).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        limits: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        evaluate(&parse(IMPORTED, Self::inner(stored)?, limits)?, password)
    }
}
