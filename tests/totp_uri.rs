//! `otpauth://` URIs: escaping, parsing of untrusted input, and a print -> parse round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::TotpSecret;
use keyward::totp::{self, OtpauthUri, TotpAlgorithm, TotpConfig};
use keyward::totp::{OtpauthUriError, TotpError};
use proptest::prelude::*;

const RFC_B32: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn secret() -> TotpSecret {
    TotpSecret::from_bytes(b"12345678901234567890".to_vec())
}

fn print(issuer: Option<&str>, account: &str) -> String {
    let mut config = TotpConfig::DEFAULT;
    if let Some(issuer) = issuer {
        config = config.with_issuer(issuer).unwrap();
    }
    OtpauthUri::new(config, account, secret())
        .unwrap()
        .to_uri_string()
        .to_string()
}

fn uri_err(input: &str) -> OtpauthUriError {
    match OtpauthUri::parse(input) {
        Err(TotpError::InvalidUri(e)) => e,
        other => panic!("{input}: expected a URI error, got {other:?}"),
    }
}

#[test]
fn plain_names_print_as_the_key_uri_format_shows() {
    assert_eq!(
        print(Some("Example"), "alice@google.com"),
        format!(
            "otpauth://totp/Example:alice%40google.com?secret={RFC_B32}&issuer=Example\
             &algorithm=SHA1&digits=6&period=30"
        )
    );
    assert_eq!(
        print(None, "alice"),
        format!("otpauth://totp/alice?secret={RFC_B32}&algorithm=SHA1&digits=6&period=30")
    );
}

#[test]
fn special_characters_are_escaped_and_survive() {
    let cases = [
        ("ACME Co", "john doe"),
        ("a:b", "c:d"),
        ("R&D", "x&secret=AAAA"),
        ("Q?", "who?#frag"),
        ("100%", "50%25"),
        ("Bücher GmbH", "jürgen@bücher.de"),
        ("東京", "ユーザー"),
        ("emoji 🦀", "+plus+"),
        ("slash/back\\slash", "a=b;c,d'e\"f<g>"),
    ];
    for (issuer, account) in cases {
        let text = print(Some(issuer), account);
        let after_scheme = &text["otpauth://totp/".len()..];
        let (label, query) = after_scheme.split_once('?').unwrap();
        assert_eq!(label.matches(':').count(), 1, "{text}");
        assert!(
            !label.contains(['?', '#', '&', ' ']) && !query.contains(['#', ' ']),
            "{text}"
        );
        assert!(text.is_ascii(), "{text}");
        let parsed = OtpauthUri::parse(&text).unwrap();
        assert_eq!(parsed.config().issuer(), Some(issuer));
        assert_eq!(parsed.account(), account);
        assert_eq!(parsed.secret().expose_secret(), secret().expose_secret());
    }
}

#[test]
fn parses_what_other_issuers_emit() {
    // Google's Key Uri Format example, lower-case scheme and type variations.
    let u = OtpauthUri::parse(
        "otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example",
    );
    // JBSWY3DPEHPK3PXP is only 10 bytes: below the RFC 4226 minimum of 128 bits.
    assert!(matches!(u, Err(TotpError::SecretLength { len: 10, .. })));

    let u = OtpauthUri::parse(&format!(
        "OTPAUTH://TOTP/ACME%20Co:%20%20john.doe%40email.com?period=60&digits=8\
         &algorithm=sha256&issuer=ACME+Co&image=https%3A%2F%2Fx&secret={}====",
        RFC_B32.to_lowercase()
    ))
    .unwrap();
    assert_eq!(u.config().issuer(), Some("ACME Co"));
    assert_eq!(u.account(), "john.doe@email.com");
    assert_eq!(u.config().algorithm(), TotpAlgorithm::Sha256);
    assert_eq!(u.config().digits(), 8);
    assert_eq!(u.config().period(), 60);

    // Separator escaped as %3A, confirmed by the issuer parameter.
    let u = OtpauthUri::parse(&format!(
        "otpauth://totp/Big%20Corp%3Abob?secret={RFC_B32}&issuer=Big%20Corp"
    ))
    .unwrap();
    assert_eq!(
        (u.config().issuer(), u.account()),
        (Some("Big Corp"), "bob")
    );

    // No issuer anywhere; defaults apply.
    let u = OtpauthUri::parse(&format!("otpauth://totp/bob?secret={RFC_B32}")).unwrap();
    assert_eq!(u.config(), &TotpConfig::DEFAULT);
    assert_eq!(u.account(), "bob");

    // Issuer only in the label.
    let u = OtpauthUri::parse(&format!("otpauth://totp/Corp:bob?secret={RFC_B32}")).unwrap();
    assert_eq!(u.config().issuer(), Some("Corp"));
}

#[test]
fn rejects_malformed_uris_with_typed_errors() {
    use OtpauthUriError as E;
    let s = RFC_B32;
    let typed = [
        ("https://totp/a?secret=x".to_owned(), E::Scheme),
        (String::new(), E::Scheme),
        ("otpauth:/".to_owned(), E::Scheme),
        (format!("otpauth://totp/?secret={s}"), E::MissingAccount),
        (format!("otpauth://totp/I:?secret={s}"), E::MissingAccount),
        ("otpauth://totp".to_owned(), E::MissingAccount),
        ("otpauth://totp/a".to_owned(), E::MissingSecret),
        ("otpauth://totp/a?secret=1!1".to_owned(), E::SecretEncoding),
        (
            format!("otpauth://totp/a?secret={s}&secret={s}"),
            E::DuplicateParameter { name: "secret" },
        ),
        (
            format!("otpauth://totp/a%FF?secret={s}"),
            E::BadEncoding { field: "label" },
        ),
        (
            format!("otpauth://totp/A:b?secret={s}&issuer=B"),
            E::IssuerMismatch,
        ),
        (
            format!("otpauth://totp/a?secret={s}&algorithm=MD5"),
            E::UnsupportedAlgorithm,
        ),
        (
            format!("otpauth://totp/a?secret={s}&digits=-6"),
            E::NotANumber { name: "digits" },
        ),
        (
            format!("otpauth://totp/a?secret={s}&period=99999999999999999999"),
            E::NotANumber { name: "period" },
        ),
    ];
    for (input, expected) in typed {
        assert_eq!(uri_err(&input), expected, "{input}");
    }
    assert!(matches!(
        uri_err(&format!("otpauth://hotp/a?secret={s}&counter=1")),
        OtpauthUriError::UnsupportedType { .. }
    ));
    assert!(matches!(
        uri_err(&format!(
            "otpauth://totp/a?secret={s}&x={}",
            "y".repeat(5000)
        )),
        OtpauthUriError::TooLong { max: 4096, .. }
    ));
    assert!(matches!(
        OtpauthUri::parse(&format!("otpauth://totp/a?secret={s}&digits=7")),
        Err(TotpError::InvalidDigits { digits: 7 })
    ));
    assert!(matches!(
        OtpauthUri::parse(&format!("otpauth://totp/a?secret={s}&period=0")),
        Err(TotpError::InvalidPeriod { period: 0, .. })
    ));
    assert!(matches!(
        OtpauthUri::parse(&format!("otpauth://totp/a%0Ab?secret={s}")),
        Err(TotpError::InvalidName { .. })
    ));
    assert!(matches!(
        OtpauthUri::parse(&format!("otpauth://totp/a?secret={}", "A".repeat(600))),
        Err(TotpError::SecretLength { .. })
    ));
}

#[test]
fn uri_errors_never_show_the_secret() {
    let input = format!("otpauth://totp/a?secret={RFC_B32}&digits=x");
    let err = OtpauthUri::parse(&input).unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(RFC_B32), "{shown}");
    let uri = OtpauthUri::parse(&format!("otpauth://totp/a?secret={RFC_B32}")).unwrap();
    assert!(!format!("{uri:?} {uri:#?}").contains(RFC_B32));
}

#[test]
fn enrollment_uri_parses_back_to_the_enrollment() {
    let config = TotpConfig::new(TotpAlgorithm::Sha512, 8, 60, 1)
        .unwrap()
        .with_issuer("Keyward Test: R&D")
        .unwrap();
    let e = totp::enroll(&config, "mary o'brien #2").unwrap();
    let parsed = OtpauthUri::parse(e.expose_uri()).unwrap();
    assert_eq!(parsed.config(), &config);
    assert_eq!(parsed.account(), "mary o'brien #2");
    assert_eq!(parsed.secret().expose_secret(), e.secret().expose_secret());
    assert!(e.expose_qr_svg().contains("<svg"));
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof!["[ -~]{1,24}", "[a-z :&?#%=+/@éü東🦀]{1,24}", "\\PC{1,16}",]
        .prop_filter("names have no outer whitespace", |s| {
            s.trim() == s && !s.is_empty()
        })
}

proptest! {
    #[test]
    fn print_parse_round_trip(
        issuer in proptest::option::of(name()),
        account in name(),
        secret in proptest::collection::vec(any::<u8>(), 16..=64),
        algorithm in prop_oneof![
            Just(TotpAlgorithm::Sha1), Just(TotpAlgorithm::Sha256), Just(TotpAlgorithm::Sha512)
        ],
        digits in prop_oneof![Just(6_u8), Just(8_u8)],
        period in 1_u32..=300,
    ) {
        let mut config = TotpConfig::new(algorithm, digits, period, 1).unwrap();
        if let Some(issuer) = &issuer {
            config = config.with_issuer(issuer.clone()).unwrap();
        }
        let uri = OtpauthUri::new(config.clone(), &account, TotpSecret::from_bytes(secret.clone()))
            .unwrap();
        let text = uri.to_uri_string();
        let parsed = OtpauthUri::parse(&text).unwrap();
        prop_assert_eq!(parsed.config(), &config);
        prop_assert_eq!(parsed.account(), account.as_str());
        prop_assert_eq!(parsed.secret().expose_secret(), secret.as_slice());
        let again = parsed.to_uri_string();
        prop_assert_eq!(again.as_str(), text.as_str());
    }

    #[test]
    fn parser_never_panics(input in "\\PC{0,200}") {
        let _ = OtpauthUri::parse(&input);
        let _ = OtpauthUri::parse(&format!("otpauth://totp/{input}"));
    }
}
