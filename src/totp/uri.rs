//! The `otpauth://` Key URI format understood by authenticator apps: a printer and a parser
//! for untrusted input.
//!
//! Printed form (issuer optional; `ISSUER` and `ACCOUNT` percent-encoded, every byte outside
//! RFC 3986 `unreserved` escaped, so spaces, colons, `&`, `?`, `#`, `%` and non-ASCII text
//! all survive):
//!
//! ```text
//! otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER&algorithm=SHA1&digits=6&period=30
//! ```

use std::fmt;
use std::fmt::Write as _;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use zeroize::Zeroizing;

use super::error::{OtpauthUriError, TotpError};
use super::{TotpAlgorithm, TotpConfig, check_secret_len, validate_name};
use crate::secret::TotpSecret;

/// Longest URI the parser looks at, in bytes.
pub const MAX_URI_LEN: usize = 4096;

/// Everything but RFC 3986 `unreserved` is escaped.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A parsed or to-be-printed `otpauth://totp/` URI. `Debug` hides the secret.
///
/// The parser accepts what common authenticator apps and services emit: an optional issuer
/// prefix in the label (separated by `:` or `%3A`, optionally followed by spaces), parameters
/// in any order, `+` as a space in parameter values, lower-case or padded base32, and
/// unknown parameters (ignored). It rejects duplicate parameters, a label issuer that differs
/// from the `issuer` parameter, HOTP, digits other than 6 or 8, and secrets under 128 bits.
pub struct OtpauthUri {
    config: TotpConfig,
    account: String,
    secret: TotpSecret,
}

impl OtpauthUri {
    /// Assembles a URI from its parts. The issuer comes from `config`; its skew is not part
    /// of the URI format.
    ///
    /// # Errors
    /// [`TotpError::InvalidName`] for an invalid account name, [`TotpError::SecretLength`] for
    /// a secret outside 16..=128 bytes.
    pub fn new(config: TotpConfig, account: &str, secret: TotpSecret) -> Result<Self, TotpError> {
        validate_name("account name", account)?;
        check_secret_len(secret.expose_secret().len())?;
        Ok(Self {
            config,
            account: account.to_owned(),
            secret,
        })
    }

    /// The configuration (skew is the default, 1, for parsed URIs).
    #[must_use]
    pub fn config(&self) -> &TotpConfig {
        &self.config
    }

    /// The account name.
    #[must_use]
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The shared secret.
    #[must_use]
    pub fn secret(&self) -> &TotpSecret {
        &self.secret
    }

    /// Splits the URI into its configuration, account name and secret.
    #[must_use]
    pub fn into_parts(self) -> (TotpConfig, String, TotpSecret) {
        (self.config, self.account, self.secret)
    }

    /// The URI text. It contains the secret, hence the zeroizing wrapper.
    #[must_use]
    pub fn to_uri_string(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(128));
        out.push_str("otpauth://totp/");
        if let Some(issuer) = self.config.issuer() {
            out.extend(utf8_percent_encode(issuer, COMPONENT));
            out.push(':');
        }
        out.extend(utf8_percent_encode(&self.account, COMPONENT));
        out.push_str("?secret=");
        out.push_str(&self.secret.to_base32());
        if let Some(issuer) = self.config.issuer() {
            out.push_str("&issuer=");
            out.extend(utf8_percent_encode(issuer, COMPONENT));
        }
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "&algorithm={}&digits={}&period={}",
            self.config.algorithm().as_str(),
            self.config.digits(),
            self.config.period()
        );
        out
    }

    /// Parses untrusted text. Never panics; every rejection is typed.
    ///
    /// # Errors
    /// [`TotpError::InvalidUri`] for a malformed URI, [`TotpError::InvalidName`] for an
    /// unacceptable issuer or account name, [`TotpError::SecretLength`] for a secret outside
    /// 16..=128 bytes, [`TotpError::InvalidDigits`] / [`TotpError::InvalidPeriod`] for
    /// parameters keyward does not support.
    pub fn parse(input: &str) -> Result<Self, TotpError> {
        if input.len() > MAX_URI_LEN {
            return Err(OtpauthUriError::TooLong {
                len: input.len(),
                max: MAX_URI_LEN,
            }
            .into());
        }
        let rest = strip_prefix_ignore_case(input, "otpauth://").ok_or(OtpauthUriError::Scheme)?;
        let (kind, rest) = rest.split_once('/').unwrap_or((rest, ""));
        if !kind.eq_ignore_ascii_case("totp") {
            // Echo only a short word: a malformed URI may carry its query (and secret) in
            // what would be the type.
            let short_word = kind.len() <= 8 && kind.bytes().all(|b| b.is_ascii_alphanumeric());
            let found = if short_word {
                kind.to_owned()
            } else {
                String::new()
            };
            return Err(OtpauthUriError::UnsupportedType { found }.into());
        }
        // A fragment is not part of the key; our printer escapes every '#'.
        let rest = rest.split_once('#').map_or(rest, |(before, _)| before);
        let (label, query) = rest.split_once('?').unwrap_or((rest, ""));

        let mut params = Params::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            params.set(name, value)?;
        }

        let issuer_param = params
            .issuer
            .map(|v| decode_value("issuer", v))
            .transpose()?;
        let (label_issuer, account) = split_label(label, issuer_param.as_deref())?;
        let issuer = match (label_issuer, issuer_param) {
            (Some(a), Some(b)) if a != b => return Err(OtpauthUriError::IssuerMismatch.into()),
            (a, b) => b.or(a),
        };

        let secret = decode_secret(params.secret.ok_or(OtpauthUriError::MissingSecret)?)?;
        let algorithm = match params.algorithm {
            None => TotpAlgorithm::Sha1,
            Some(name) => {
                TotpAlgorithm::from_name(name).ok_or(OtpauthUriError::UnsupportedAlgorithm)?
            }
        };
        let digits = match params.digits {
            None => TotpConfig::DEFAULT.digits(),
            Some(v) => parse_number(v, "digits")?,
        };
        let period = match params.period {
            None => TotpConfig::DEFAULT.period(),
            Some(v) => parse_number(v, "period")?,
        };
        let mut config = TotpConfig::new(algorithm, digits, period, TotpConfig::DEFAULT.skew())?;
        if let Some(issuer) = issuer {
            config = config.with_issuer(issuer)?;
        }
        Self::new(config, &account, secret)
    }
}

impl fmt::Debug for OtpauthUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtpauthUri")
            .field("config", &self.config)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Params<'a> {
    secret: Option<&'a str>,
    issuer: Option<&'a str>,
    algorithm: Option<&'a str>,
    digits: Option<&'a str>,
    period: Option<&'a str>,
}

impl<'a> Params<'a> {
    fn set(&mut self, name: &str, value: &'a str) -> Result<(), OtpauthUriError> {
        let (slot, name) = match name {
            "secret" => (&mut self.secret, "secret"),
            "issuer" => (&mut self.issuer, "issuer"),
            "algorithm" => (&mut self.algorithm, "algorithm"),
            "digits" => (&mut self.digits, "digits"),
            "period" => (&mut self.period, "period"),
            _ => return Ok(()), // unknown parameters (image, color, ...) are ignored
        };
        if slot.replace(value).is_some() {
            return Err(OtpauthUriError::DuplicateParameter { name });
        }
        Ok(())
    }
}

fn strip_prefix_ignore_case<'a>(input: &'a str, prefix: &str) -> Option<&'a str> {
    let head = input.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &input[prefix.len()..])
}

fn decode_label_part(raw: &str) -> Result<String, OtpauthUriError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| OtpauthUriError::BadEncoding { field: "label" })
}

/// Query values: `+` means a space (form encoding), then percent-decoding.
fn decode_value(field: &'static str, raw: &str) -> Result<String, OtpauthUriError> {
    let raw = raw.replace('+', " ");
    percent_decode_str(&raw)
        .decode_utf8()
        .map(std::borrow::Cow::into_owned)
        .map_err(|_| OtpauthUriError::BadEncoding { field })
}

/// Returns (issuer from the label, account name).
fn split_label(
    raw: &str,
    issuer_param: Option<&str>,
) -> Result<(Option<String>, String), OtpauthUriError> {
    if raw.is_empty() {
        return Err(OtpauthUriError::MissingAccount);
    }
    // A literal ':' separates issuer and account; colons inside either are escaped.
    let (issuer, account) = if let Some((issuer, account)) = raw.split_once(':') {
        (
            Some(decode_label_part(issuer)?),
            decode_label_part(account)?,
        )
    } else {
        let label = decode_label_part(raw)?;
        // Some issuers escape the separator itself (`Issuer%3Aaccount`): split there only
        // when the issuer parameter confirms it.
        match issuer_param.and_then(|i| label.strip_prefix(i)?.strip_prefix(':')) {
            Some(account) => (issuer_param.map(str::to_owned), account.to_owned()),
            None => (None, label),
        }
    };
    // The format allows spaces after the separator; names never start with whitespace.
    let account = account.trim_start_matches(' ').to_owned();
    if account.is_empty() {
        return Err(OtpauthUriError::MissingAccount);
    }
    Ok((issuer, account))
}

fn decode_secret(raw: &str) -> Result<TotpSecret, TotpError> {
    // Base32 of 128 bytes is 205 characters; anything far longer is not worth decoding.
    if raw.len() > 4 * super::MAX_SECRET_LEN {
        return Err(TotpError::SecretLength {
            len: raw.len() * 5 / 8,
            min: super::MIN_SECRET_LEN,
            max: super::MAX_SECRET_LEN,
        });
    }
    let mut text = Zeroizing::new(decode_value("secret", raw)?);
    text.retain(|c| c != '=' && c != ' ');
    text.make_ascii_uppercase();
    let bytes = data_encoding::BASE32_NOPAD
        .decode(text.as_bytes())
        .map_err(|_| OtpauthUriError::SecretEncoding)?;
    let secret = TotpSecret::from_bytes(bytes);
    check_secret_len(secret.expose_secret().len())?;
    Ok(secret)
}

fn parse_number<T: std::str::FromStr>(raw: &str, name: &'static str) -> Result<T, TotpError> {
    if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(OtpauthUriError::NotANumber { name }.into());
    }
    raw.parse()
        .map_err(|_| OtpauthUriError::NotANumber { name }.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_escaped_components() {
        let config = TotpConfig::DEFAULT.with_issuer("A&B: C?").expect("valid");
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let uri = OtpauthUri::new(config, "j%d#x é", secret).expect("valid");
        assert_eq!(
            uri.to_uri_string().as_str(),
            "otpauth://totp/A%26B%3A%20C%3F:j%25d%23x%20%C3%A9\
             ?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=A%26B%3A%20C%3F\
             &algorithm=SHA1&digits=6&period=30"
        );
    }
}
