//! Sealing TOTP secrets at rest: [`TotpSealer`] and [`StoredTotpSecret`].

use std::fmt;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::TotpError;
use super::{MAX_SECRET_LEN, check_secret_len, os_random};
use crate::secret::TotpSecret;
use crate::user::StoredSecret;

const SEALED_PREFIX: &str = "sealed:v1:";
const PLAIN_PREFIX: &str = "plain:v1:";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 32;
/// Domain separation for the associated data, so these ciphertexts mean nothing elsewhere.
const AAD_DOMAIN: &[u8] = b"keyward totp secret v1\0";
/// Longest stored string the parser looks at.
const MAX_STORED_LEN: usize = 512;

struct KeyEntry {
    id: String,
    key: Zeroizing<[u8; 32]>,
}

/// A key ring for sealing TOTP secrets: one current key (seals and opens) and optional
/// previous keys (open only). Keys are zeroized on drop and never shown by `Debug`.
///
/// TOTP secrets must stay recoverable (the server recomputes codes), so they cannot be hashed.
/// When the application supplies a key, they are sealed with XChaCha20-Poly1305 under a
/// random 192-bit nonce, with the caller's context bytes (the user id) as associated data so
/// a sealed secret copied to another user's row does not open. The stored form is one
/// self-describing string:
///
/// ```text
/// sealed:v1:<key id>:<base64url, no padding: 24-byte nonce || ciphertext || 16-byte tag>
/// plain:v1:<base32, no padding: the raw secret>
/// ```
///
/// # Key rotation
/// A [`TotpSealer`] holds the *current* key, which seals, and any number of *previous* keys,
/// which only open. To rotate: add the new key as current and keep the old one as previous;
/// then, for every stored secret with [`TotpSealer::needs_reseal`], store the result of
/// [`TotpSealer::reseal`]; finally drop the old key.
///
/// # Unsealed storage (explicit opt-in)
/// An application without a key may store [`StoredTotpSecret::plain`]: the `plain:v1:` form
/// is the secret itself, merely encoded, so anyone who can read the database can generate the
/// users' codes. [`StoredTotpSecret::open_plain`] reads it back. A sealer refuses plain
/// secrets in [`TotpSealer::open`] (so a database writer cannot downgrade a user to a secret
/// of their choosing); moving to sealing later is [`TotpSealer::reseal`], which accepts the
/// plain form explicitly and returns it sealed under the current key.
pub struct TotpSealer {
    /// `keys[0]` is the current key.
    keys: Vec<KeyEntry>,
}

fn validate_key_id(id: &str) -> Result<(), TotpError> {
    let reason = if id.is_empty() {
        "empty"
    } else if id.len() > MAX_KEY_ID_LEN {
        "longer than 32 bytes"
    } else if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "only A-Z, a-z, 0-9, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(TotpError::InvalidKeyId { reason })
}

impl TotpSealer {
    /// A key ring whose current key is `key` (32 bytes from a secure random source or a KMS),
    /// named `key_id` in every secret it seals. The array is copied into zeroizing memory;
    /// clear the caller's copy if it is not already zeroizing.
    ///
    /// # Errors
    /// [`TotpError::InvalidKeyId`] unless `key_id` is 1 to 32 characters of `A-Z a-z 0-9 - _ .`.
    pub fn new(key_id: &str, key: &[u8; 32]) -> Result<Self, TotpError> {
        validate_key_id(key_id)?;
        Ok(Self {
            keys: vec![KeyEntry {
                id: key_id.to_owned(),
                key: Zeroizing::new(*key),
            }],
        })
    }

    /// Adds a previous key, which opens secrets sealed under `key_id` but never seals.
    ///
    /// # Errors
    /// [`TotpError::InvalidKeyId`] as for [`new`](Self::new), [`TotpError::DuplicateKeyId`] if
    /// the ring already holds `key_id`.
    pub fn with_previous_key(mut self, key_id: &str, key: &[u8; 32]) -> Result<Self, TotpError> {
        validate_key_id(key_id)?;
        if self.keys.iter().any(|k| k.id == key_id) {
            return Err(TotpError::DuplicateKeyId {
                key_id: key_id.to_owned(),
            });
        }
        self.keys.push(KeyEntry {
            id: key_id.to_owned(),
            key: Zeroizing::new(*key),
        });
        Ok(self)
    }

    /// Like [`new`](Self::new), with the key given as text: 64 hex digits, or 32 bytes in
    /// base64 (standard or URL-safe alphabet, padded or not), as environment variables and
    /// secret managers hold keys. Surrounding whitespace (a trailing newline) is ignored.
    ///
    /// # Errors
    /// [`TotpError::InvalidKeyId`] as for [`new`](Self::new); [`TotpError::InvalidKeyText`]
    /// when the text is neither form or does not hold exactly 32 bytes (the message never
    /// contains the text).
    pub fn from_text(key_id: &str, key: &str) -> Result<Self, TotpError> {
        Self::new(key_id, &*key_from_text(key)?)
    }

    /// Like [`with_previous_key`](Self::with_previous_key), with the key given as text (see
    /// [`from_text`](Self::from_text)).
    ///
    /// # Errors
    /// As for [`with_previous_key`](Self::with_previous_key) and
    /// [`from_text`](Self::from_text).
    pub fn with_previous_key_text(self, key_id: &str, key: &str) -> Result<Self, TotpError> {
        self.with_previous_key(key_id, &*key_from_text(key)?)
    }

    /// A ring holding one random key that lives only in this process (what a [`Keyward`]
    /// seals its pending steps with when the application gives it no key).
    ///
    /// [`Keyward`]: crate::Keyward
    pub(crate) fn ephemeral() -> Self {
        // The thread-local CSPRNG (seeded from the operating system) cannot fail, so building
        // a service never does.
        let mut key = Zeroizing::new([0_u8; 32]);
        rand::RngCore::fill_bytes(&mut rand::rng(), key.as_mut_slice());
        Self {
            keys: vec![KeyEntry {
                id: "ephemeral".to_owned(),
                key,
            }],
        }
    }

    /// HMAC-SHA256 of `data` under the key `key_id` names, through a subkey derived for
    /// `domain` (so a MAC key is never also an encryption key). `None` when the ring does not
    /// hold that key.
    pub(crate) fn mac(&self, domain: &[u8], key_id: &str, data: &[u8]) -> Option<[u8; 32]> {
        let entry = self.keys.iter().find(|k| k.id == key_id)?;
        let mut derive =
            <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(entry.key.as_slice()).ok()?;
        derive.update(b"keyward mac subkey v1\0");
        derive.update(domain);
        let subkey = Zeroizing::new(<[u8; 32]>::from(derive.finalize().into_bytes()));
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(subkey.as_slice()).ok()?;
        mac.update(data);
        Some(mac.finalize().into_bytes().into())
    }

    /// The id of the key that seals.
    #[must_use]
    pub fn current_key_id(&self) -> &str {
        self.current().id.as_str()
    }

    fn current(&self) -> &KeyEntry {
        // `new` creates the ring with one key and nothing removes keys.
        &self.keys[0]
    }

    /// Seals `secret` under the current key, binding it to `context` (for example the user
    /// id's bytes: the same bytes must be given to open it).
    ///
    /// # Errors
    /// [`TotpError::SecretLength`] for a secret outside 16..=128 bytes, [`TotpError::Random`]
    /// if the random source fails.
    pub fn seal(&self, secret: &TotpSecret, context: &[u8]) -> Result<StoredTotpSecret, TotpError> {
        let plaintext = secret.expose_secret();
        check_secret_len(plaintext.len())?;
        let (key_id, blob) = self.seal_bytes(AAD_DOMAIN, plaintext, context)?;
        Ok(StoredTotpSecret(Repr::Sealed { key_id, blob }))
    }

    /// Seals `plaintext` under the current key with `domain` and `context` as associated
    /// data: the one AEAD construction behind every sealed value (TOTP secrets, escrowed
    /// temporary passwords), kept apart by their domains. Returns the key id and
    /// `nonce || ciphertext || tag`.
    pub(crate) fn seal_bytes(
        &self,
        domain: &[u8],
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<(String, Vec<u8>), TotpError> {
        let entry = self.current();
        let mut nonce = [0_u8; NONCE_LEN];
        os_random(&mut nonce)?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(entry.key.as_slice()));
        let aad = associated_data(domain, &entry.id, context);
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // Only fails for messages near 256 GiB; the length was checked above.
            .map_err(|_| TotpError::SecretLength {
                len: plaintext.len(),
                min: super::MIN_SECRET_LEN,
                max: MAX_SECRET_LEN,
            })?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok((entry.id.clone(), blob))
    }

    /// Opens what [`seal_bytes`](Self::seal_bytes) sealed under the key `key_id` names.
    pub(crate) fn open_bytes(
        &self,
        domain: &[u8],
        key_id: &str,
        blob: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TotpError> {
        let entry =
            (self.keys.iter().find(|k| k.id == key_id)).ok_or_else(|| TotpError::UnknownKeyId {
                key_id: key_id.to_owned(),
            })?;
        let failed = || TotpError::OpenFailed {
            key_id: key_id.to_owned(),
        };
        let (nonce, ciphertext) = blob.split_at_checked(NONCE_LEN).ok_or_else(failed)?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(entry.key.as_slice()));
        let aad = associated_data(domain, key_id, context);
        let payload = Payload {
            msg: ciphertext,
            aad: &aad,
        };
        (cipher.decrypt(XNonce::from_slice(nonce), payload))
            .map(Zeroizing::new)
            .map_err(|_| failed())
    }

    /// Opens a sealed secret with the key its id names, current or previous.
    ///
    /// # Errors
    /// [`TotpError::UnknownKeyId`] if the ring lacks that key, [`TotpError::OpenFailed`] for a
    /// wrong key, tampered data or a different `context`, [`TotpError::PlainNotAllowed`] for
    /// the unsealed form (see [`reseal`](Self::reseal)).
    pub fn open(&self, stored: &StoredTotpSecret, context: &[u8]) -> Result<TotpSecret, TotpError> {
        match &stored.0 {
            Repr::Plain(_) => Err(TotpError::PlainNotAllowed),
            Repr::Sealed { key_id, blob } => {
                let mut plaintext = self.open_bytes(AAD_DOMAIN, key_id, blob, context)?;
                Ok(TotpSecret::from_bytes(std::mem::take(&mut *plaintext)))
            }
        }
    }

    /// Whether `stored` should be rewritten with [`reseal`](Self::reseal): it is plain, or
    /// sealed under a key other than the current one.
    #[must_use]
    pub fn needs_reseal(&self, stored: &StoredTotpSecret) -> bool {
        stored.key_id() != Some(self.current_key_id())
    }

    /// Opens `stored` (plain, or sealed under any key of the ring) and seals it again under the
    /// current key with a fresh nonce: the migration path from plain storage and the rotation
    /// path between keys. Accepting plain input here is the explicit opt-in.
    ///
    /// # Errors
    /// As for [`open`](Self::open) (except that plain input is accepted) and
    /// [`seal`](Self::seal).
    pub fn reseal(
        &self,
        stored: &StoredTotpSecret,
        context: &[u8],
    ) -> Result<StoredTotpSecret, TotpError> {
        let secret = match &stored.0 {
            Repr::Plain(secret) => TotpSecret::from_bytes(secret.expose_secret().to_vec()),
            Repr::Sealed { .. } => self.open(stored, context)?,
        };
        self.seal(&secret, context)
    }
}

impl fmt::Debug for TotpSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TotpSealer")
            .field("current_key_id", &self.current_key_id())
            .field(
                "previous_key_ids",
                &self.keys[1..].iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// Decodes a 32-byte key from hex or base64 text into zeroizing memory.
fn key_from_text(text: &str) -> Result<Zeroizing<[u8; 32]>, TotpError> {
    use data_encoding::{BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD, HEXLOWER_PERMISSIVE};
    let text = text.trim().as_bytes();
    let invalid = |reason| TotpError::InvalidKeyText { reason };
    // Every form is decoded into this buffer only, so no copy of the key is left behind.
    let mut buf = Zeroizing::new([0_u8; 64]);
    let decoded = if text.len() == 64 {
        HEXLOWER_PERMISSIVE.decode_mut(text, &mut buf[..32]).ok()
    } else {
        [BASE64, BASE64_NOPAD, BASE64URL, BASE64URL_NOPAD]
            .iter()
            .find_map(|encoding| {
                let len = encoding.decode_len(text.len()).ok()?;
                encoding.decode_mut(text, buf.get_mut(..len)?).ok()
            })
    };
    match decoded {
        Some(32) => {
            let mut key = Zeroizing::new([0_u8; 32]);
            key.copy_from_slice(&buf[..32]);
            Ok(key)
        }
        Some(_) => Err(invalid("the key must be exactly 32 bytes")),
        None => Err(invalid("expected 64 hex digits or 32 bytes in base64")),
    }
}

/// Unambiguous associated data: domain, length-prefixed key id, then the caller's context.
fn associated_data(domain: &[u8], key_id: &str, context: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(domain.len() + 1 + key_id.len() + context.len());
    aad.extend_from_slice(domain);
    // Key ids are at most 32 bytes, so the length fits in one byte.
    aad.push(u8::try_from(key_id.len()).unwrap_or(u8::MAX));
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(context);
    aad
}

/// A TOTP secret as stored: sealed under a key (`sealed:v1:`) or, by explicit opt-in,
/// unsealed (`plain:v1:`). See [`TotpSealer`] for the formats.
///
/// `Debug` shows the form and key id only.
pub struct StoredTotpSecret(Repr);

enum Repr {
    Sealed { key_id: String, blob: Vec<u8> },
    Plain(TotpSecret),
}

impl StoredTotpSecret {
    /// The unsealed form, for applications that chose to run without a sealing key. Anyone
    /// who can read it can generate the user's codes; see [`TotpSealer`] for moving to
    /// sealing later.
    ///
    /// # Errors
    /// [`TotpError::SecretLength`] for a secret outside 16..=128 bytes.
    pub fn plain(secret: &TotpSecret) -> Result<Self, TotpError> {
        check_secret_len(secret.expose_secret().len())?;
        Ok(Self(Repr::Plain(TotpSecret::from_bytes(
            secret.expose_secret().to_vec(),
        ))))
    }

    /// Parses a stored string (untrusted: never panics).
    ///
    /// # Errors
    /// [`TotpError::MalformedStoredSecret`] for an unknown prefix or version, a bad key id, bad
    /// base64url/base32 or a blob too short to hold a nonce and tag;
    /// [`TotpError::SecretLength`] for a plain secret outside 16..=128 bytes.
    pub fn parse(text: &str) -> Result<Self, TotpError> {
        let malformed = |reason| TotpError::MalformedStoredSecret { reason };
        if text.len() > MAX_STORED_LEN {
            return Err(malformed("too long"));
        }
        if let Some(rest) = text.strip_prefix(SEALED_PREFIX) {
            let (key_id, data) = rest.split_once(':').ok_or(malformed("missing key id"))?;
            validate_key_id(key_id).map_err(|_| malformed("invalid key id"))?;
            let blob = data_encoding::BASE64URL_NOPAD
                .decode(data.as_bytes())
                .map_err(|_| malformed("ciphertext is not unpadded base64url"))?;
            if blob.len() < NONCE_LEN + TAG_LEN + super::MIN_SECRET_LEN {
                return Err(malformed("ciphertext too short"));
            }
            Ok(Self(Repr::Sealed {
                key_id: key_id.to_owned(),
                blob,
            }))
        } else if let Some(data) = text.strip_prefix(PLAIN_PREFIX) {
            let bytes = data_encoding::BASE32_NOPAD
                .decode(data.as_bytes())
                .map_err(|_| malformed("secret is not unpadded base32"))?;
            let secret = TotpSecret::from_bytes(bytes);
            check_secret_len(secret.expose_secret().len())?;
            Ok(Self(Repr::Plain(secret)))
        } else {
            Err(malformed(
                "unknown format; expected sealed:v1: or plain:v1:",
            ))
        }
    }

    /// The string to store. For the plain form it contains the secret, hence the zeroizing
    /// wrapper.
    #[must_use]
    pub fn to_storage_string(&self) -> Zeroizing<String> {
        Zeroizing::new(match &self.0 {
            Repr::Sealed { key_id, blob } => format!(
                "{SEALED_PREFIX}{key_id}:{}",
                data_encoding::BASE64URL_NOPAD.encode(blob)
            ),
            Repr::Plain(secret) => format!("{PLAIN_PREFIX}{}", secret.to_base32().as_str()),
        })
    }

    /// The store's opaque form of this value ([`crate::user::StoredSecret`]).
    #[must_use]
    pub fn to_stored(&self) -> StoredSecret {
        StoredSecret::new(self.to_storage_string().as_str())
    }

    /// Parses the store's opaque form; see [`parse`](Self::parse).
    ///
    /// # Errors
    /// As for [`parse`](Self::parse).
    pub fn from_stored(stored: &StoredSecret) -> Result<Self, TotpError> {
        Self::parse(stored.as_str())
    }

    /// Whether the secret is sealed under a key.
    #[must_use]
    pub fn is_sealed(&self) -> bool {
        matches!(self.0, Repr::Sealed { .. })
    }

    /// The id of the sealing key, or `None` for the plain form.
    #[must_use]
    pub fn key_id(&self) -> Option<&str> {
        match &self.0 {
            Repr::Sealed { key_id, .. } => Some(key_id),
            Repr::Plain(_) => None,
        }
    }

    /// Reads the plain form back (for applications running without a key).
    ///
    /// # Errors
    /// [`TotpError::SealedWithoutKey`] if the secret is sealed: open it with a
    /// [`TotpSealer`].
    pub fn open_plain(&self) -> Result<TotpSecret, TotpError> {
        match &self.0 {
            Repr::Plain(secret) => Ok(TotpSecret::from_bytes(secret.expose_secret().to_vec())),
            Repr::Sealed { key_id, .. } => Err(TotpError::SealedWithoutKey {
                key_id: key_id.clone(),
            }),
        }
    }
}

impl fmt::Debug for StoredTotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Sealed { key_id, .. } => f
                .debug_struct("StoredTotpSecret::Sealed")
                .field("key_id", key_id)
                .finish_non_exhaustive(),
            Repr::Plain(_) => f.write_str("StoredTotpSecret::Plain(***)"),
        }
    }
}
