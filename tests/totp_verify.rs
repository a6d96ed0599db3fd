//! The verification window and malformed input, walked at fixed instants.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use keyward::totp::{self, TotpAlgorithm, TotpCheck, TotpConfig};
use keyward::totp::{MalformedCode, TotpError};
use keyward::{Clock, ManualClock, OneTimeCode, TotpSecret};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

fn secret() -> TotpSecret {
    TotpSecret::from_bytes(b"12345678901234567890".to_vec())
}

/// 2005-03-18 01:58:29 UTC = 1111111109 s, in step 37037036 (which starts 19 s earlier).
const NOW: OffsetDateTime = datetime!(2005-03-18 01:58:29 UTC);
const STEP: u64 = 37_037_036;

fn code_for_step(config: &TotpConfig, step: u64) -> OneTimeCode {
    let seconds = i64::try_from(step * u64::from(config.period())).unwrap();
    totp::code_at(
        config,
        &secret(),
        OffsetDateTime::from_unix_timestamp(seconds).unwrap(),
    )
    .unwrap()
}

#[test]
fn window_accepts_one_step_either_side_and_reports_it() {
    let config = TotpConfig::DEFAULT;
    assert_eq!(totp::step_at(&config, NOW).unwrap(), STEP);
    for step in [STEP - 1, STEP, STEP + 1] {
        let code = code_for_step(&config, step);
        assert_eq!(
            totp::verify(&config, &secret(), &code, NOW).unwrap(),
            TotpCheck::Matched { step },
            "step {step}"
        );
    }
    for step in [STEP - 2, STEP + 2, STEP - 3, STEP + 3] {
        let code = code_for_step(&config, step);
        assert_eq!(
            totp::verify(&config, &secret(), &code, NOW).unwrap(),
            TotpCheck::Mismatch,
            "step {step}"
        );
    }
}

#[test]
fn zero_skew_accepts_only_the_current_step() {
    let config = TotpConfig::new(TotpAlgorithm::Sha1, 6, 30, 0).unwrap();
    let check = |step| totp::verify(&config, &secret(), &code_for_step(&config, step), NOW);
    assert_eq!(check(STEP).unwrap(), TotpCheck::Matched { step: STEP });
    assert_eq!(check(STEP - 1).unwrap(), TotpCheck::Mismatch);
    assert_eq!(check(STEP + 1).unwrap(), TotpCheck::Mismatch);
}

#[test]
fn step_boundaries_with_a_manual_clock() {
    let config = TotpConfig::DEFAULT;
    // The last second of step STEP+1 still accepts STEP's code; the first of STEP+2 does not.
    let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(1_111_111_080).unwrap());
    let code = code_for_step(&config, STEP);
    clock.advance(Duration::seconds(59)); // 1111111139: last second of STEP+1
    assert_eq!(
        totp::verify(&config, &secret(), &code, clock.now()).unwrap(),
        TotpCheck::Matched { step: STEP }
    );
    clock.advance(Duration::seconds(1)); // 1111111140: first second of STEP+2
    assert_eq!(
        totp::verify(&config, &secret(), &code, clock.now()).unwrap(),
        TotpCheck::Mismatch
    );
}

#[test]
fn window_at_the_epoch_does_not_underflow() {
    let config = TotpConfig::DEFAULT;
    let epoch = OffsetDateTime::UNIX_EPOCH;
    let code = code_for_step(&config, 0);
    assert_eq!(
        totp::verify(&config, &secret(), &code, epoch).unwrap(),
        TotpCheck::Matched { step: 0 }
    );
    assert!(matches!(
        totp::verify(&config, &secret(), &code, epoch - Duration::seconds(1)),
        Err(TotpError::TimeBeforeEpoch)
    ));
}

#[test]
fn spaces_are_ignored_in_user_input() {
    let config = TotpConfig::DEFAULT;
    let code = code_for_step(&config, STEP);
    let typed = format!(
        " {} {}\t",
        &code.expose_secret()[..3],
        &code.expose_secret()[3..]
    );
    assert_eq!(
        totp::verify(&config, &secret(), &OneTimeCode::new(typed), NOW).unwrap(),
        TotpCheck::Matched { step: STEP }
    );
}

#[test]
fn malformed_codes_are_typed_outcomes() {
    let config = TotpConfig::DEFAULT;
    let wrong_length =
        |found| TotpCheck::Malformed(MalformedCode::WrongLength { expected: 6, found });
    let cases: &[(&str, TotpCheck)] = &[
        ("", wrong_length(0)),
        ("   ", wrong_length(0)),
        ("12345", wrong_length(5)),
        ("1234567", wrong_length(7)),
        ("12345678", wrong_length(8)),
        ("12345x", TotpCheck::Malformed(MalformedCode::NotDigits)),
        ("-12345", TotpCheck::Malformed(MalformedCode::NotDigits)),
        ("+12345", TotpCheck::Malformed(MalformedCode::NotDigits)),
        ("12-345", TotpCheck::Malformed(MalformedCode::NotDigits)),
        (
            "１２３４５６",
            TotpCheck::Malformed(MalformedCode::NotDigits),
        ),
        ("123\u{0}56", TotpCheck::Malformed(MalformedCode::NotDigits)),
    ];
    for (input, expected) in cases {
        assert_eq!(
            totp::verify(&config, &secret(), &OneTimeCode::new(*input), NOW).unwrap(),
            *expected,
            "{input:?}"
        );
    }
    let huge = "9".repeat(1 << 20);
    assert_eq!(
        totp::verify(&config, &secret(), &OneTimeCode::new(huge), NOW).unwrap(),
        wrong_length(1 << 20)
    );
}

#[test]
fn eight_digit_config_rejects_six_digit_codes() {
    let config = TotpConfig::new(TotpAlgorithm::Sha256, 8, 30, 1).unwrap();
    assert_eq!(
        totp::verify(&config, &secret(), &OneTimeCode::new("123456"), NOW).unwrap(),
        TotpCheck::Malformed(MalformedCode::WrongLength {
            expected: 8,
            found: 6
        })
    );
}

#[test]
fn short_secret_is_an_error_not_a_mismatch() {
    let short = TotpSecret::from_bytes(vec![7; 10]);
    assert!(matches!(
        totp::verify(
            &TotpConfig::DEFAULT,
            &short,
            &OneTimeCode::new("123456"),
            NOW
        ),
        Err(TotpError::SecretLength {
            len: 10,
            min: 16,
            ..
        })
    ));
}

#[test]
fn errors_never_echo_the_code() {
    let err = totp::normalize_code(&TotpConfig::DEFAULT, "98765x").unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains("98765"), "{shown}");
}
