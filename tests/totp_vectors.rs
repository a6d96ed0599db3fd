//! Known-answer tests: RFC 6238 Appendix B and RFC 4226 Appendix D.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::totp::{self, TotpAlgorithm, TotpCheck, TotpConfig};
use keyward::{OneTimeCode, TotpSecret};
use time::OffsetDateTime;

fn rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
}

fn seed(algorithm: TotpAlgorithm) -> TotpSecret {
    let digits = b"1234567890";
    let bytes = digits
        .iter()
        .copied()
        .cycle()
        .take(algorithm.secret_len())
        .collect();
    TotpSecret::from_bytes(bytes)
}

#[test]
fn rfc6238_appendix_b() {
    let text = include_str!("vectors/totp_rfc6238.txt");
    let mut seen = 0;
    for row in rows(text) {
        let algorithm = match row[0] {
            "SHA1" => TotpAlgorithm::Sha1,
            "SHA256" => TotpAlgorithm::Sha256,
            "SHA512" => TotpAlgorithm::Sha512,
            other => panic!("unknown mode {other}"),
        };
        let seconds: i64 = row[1].parse().unwrap();
        let at = OffsetDateTime::from_unix_timestamp(seconds).unwrap();
        let config = TotpConfig::new(algorithm, 8, 30, 1).unwrap();
        let secret = seed(algorithm);

        let code = totp::code_at(&config, &secret, at).unwrap();
        assert_eq!(code.expose_secret(), row[2], "{} at {seconds}", row[0]);

        let expected_step = u64::try_from(seconds).unwrap() / 30;
        assert_eq!(totp::step_at(&config, at).unwrap(), expected_step);
        assert_eq!(
            totp::verify(&config, &secret, &OneTimeCode::new(row[2]), at).unwrap(),
            TotpCheck::Matched {
                step: expected_step
            }
        );
        seen += 1;
    }
    assert_eq!(seen, 18, "6 times x 3 hashes");
}

#[test]
fn rfc4226_appendix_d_as_one_second_totp() {
    let text = include_str!("vectors/totp_rfc4226.txt");
    let config = TotpConfig::new(TotpAlgorithm::Sha1, 6, 1, 0).unwrap();
    let secret = seed(TotpAlgorithm::Sha1);
    let mut seen = 0;
    for row in rows(text) {
        let counter: i64 = row[0].parse().unwrap();
        let at = OffsetDateTime::from_unix_timestamp(counter).unwrap();
        let code = totp::code_at(&config, &secret, at).unwrap();
        assert_eq!(code.expose_secret(), row[1], "counter {counter}");
        assert_eq!(
            totp::verify(&config, &secret, &OneTimeCode::new(row[1]), at).unwrap(),
            TotpCheck::Matched {
                step: u64::try_from(counter).unwrap()
            }
        );
        seen += 1;
    }
    assert_eq!(seen, 10);
}
