//! The trace of every flow — sign-in with PIN, temporary password and forced change, TOTP
//! enrollment and codes, authenticator reset with device code and re-enrollment, sealed
//! steps, recovery codes, password reset, contact verification and the rest of the user
//! lifecycle, lock and unlock, bulk regeneration, import of legacy hashes and their
//! wrapping — captured at TRACE level with every span and field, holds each decision
//! and none of the secrets the flows handled.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use keyward::admin::RegenerationOptions;
use keyward::import::{self, ImportOptions};
use keyward::migrate::WrapOptions;
use keyward::signin::{PasswordChange, PendingStep};
use keyward::totp::{self, TotpConfig};
use keyward::{OneTimeCode, Password, Pin, SignIn, TotpSecret};
use support::*;
use time::Duration;
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything the subscriber wrote.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn code(secret: &[u8], at: time::OffsetDateTime) -> OneTimeCode {
    let secret = TotpSecret::from_bytes(secret.to_vec());
    totp::code_at(&TotpConfig::DEFAULT, &secret, at).unwrap()
}

/// Whether `needle` occurs in `text` as a word of its own (codes are short digit runs that
/// could otherwise match inside an id).
fn has_word(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + needle.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[test]
fn the_trace_of_every_flow_holds_its_decisions_and_no_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Global, so the bulk regeneration's worker threads are captured too.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::FULL)
        .with_ansi(false)
        .without_time()
        .with_writer(move || writer.clone())
        .init();

    let f = fx();
    // Every secret the flows handle goes in here; none may appear in the trace.
    let mut secrets: Vec<String> = vec![USER_PASSWORD.into(), ADMIN_PASSWORD.into()];
    let mut codes: Vec<String> = Vec::new();

    // Password and PIN; wrong and unknown.
    let sam = f.user("sam");
    let pin = "pin-of-sam-0429";
    f.kw.set_pin(&f.admin.id, &sam.id, Some(&Pin::new(pin)))
        .unwrap();
    secrets.push(pin.into());
    step!(
        f.sign_in_with_pin("sam", &Password::new(USER_PASSWORD), pin),
        SignIn::Authenticated
    );
    let wrong = "wrong-guess-password-31";
    secrets.push(wrong.into());
    step!(
        f.sign_in_with_pin("sam", &Password::new(wrong), pin),
        SignIn::Denied
    );
    step!(f.sign_in("nobody", &Password::new(wrong)), SignIn::Denied);
    let wrong_pin = "pin-guessed-7741";
    secrets.push(wrong_pin.into());
    step!(
        f.sign_in_with_pin("sam", &Password::new(USER_PASSWORD), wrong_pin),
        SignIn::Denied
    );

    // A temporary password and the forced change, through a sealed step.
    let kim = f.user("kim");
    let temporary = f.temporary_for(&kim.id);
    secrets.push(temporary.expose_secret().to_owned());
    let pending = step!(
        f.sign_in("kim", &Password::new(temporary.expose_secret())),
        SignIn::PasswordChangeRequired
    );
    let sealed = f.kw.seal_step(pending).unwrap();
    secrets.push(sealed.as_str().to_owned());
    let pending = match f.kw.open_step(sealed.as_str()).unwrap() {
        PendingStep::PasswordChange(p) => p,
        other => panic!("{other:?}"),
    };
    let chosen = "violet-harbour-engine-8";
    secrets.push(chosen.into());
    let changed =
        f.kw.complete_password_change(pending, Password::new(chosen))
            .unwrap();
    assert!(
        matches!(changed, PasswordChange::Changed(SignIn::Authenticated(_))),
        "{changed:?}"
    );
    let _ = f.kw.open_step("kws1.tampered.AAAA");

    // TOTP: enrollment, a wrong and a right code.
    let ada = f.user("ada");
    let secret = enroll(&f.kw, &ada.id);
    secrets.push(data_encoding::BASE32_NOPAD.encode(&secret));
    secrets.push(data_encoding::HEXLOWER.encode(&secret));
    f.clock.advance(Duration::seconds(60));
    let pending = step!(f.sign_in_as("ada"), SignIn::TotpRequired);
    let pending = step!(
        f.kw.verify_totp(pending, &OneTimeCode::new("000000"))
            .unwrap(),
        SignIn::TotpRequired
    );
    let right = code(&secret, f.kw.now());
    codes.push(right.expose_secret().to_owned());
    let done = step!(
        f.kw.verify_totp(pending, &right).unwrap(),
        SignIn::Authenticated
    );
    assert!(
        f.kw.check_session(&ada.id, done.stamp())
            .unwrap()
            .is_current()
    );

    // Authenticator reset: device code, re-enrollment.
    f.kw.reset_totp(&f.admin.id, &ada.id).unwrap();
    let device = step!(f.sign_in_as("ada"), SignIn::DeviceAuthorizationRequired);
    let device_code = digits_in(&f.mail_to("ada@example.org"), 8);
    secrets.push(device_code.clone());
    let enrollment = step!(
        f.kw.authorize_device(device, &OneTimeCode::new(device_code))
            .unwrap(),
        SignIn::TotpEnrollmentRequired
    );
    let new_secret = enrollment.enrollment().secret().expose_secret().to_vec();
    secrets.push(data_encoding::BASE32_NOPAD.encode(&new_secret));
    secrets.push(enrollment.enrollment().expose_uri().to_owned());
    let right = code(&new_secret, f.kw.now());
    codes.push(right.expose_secret().to_owned());
    let mut done = step!(
        f.kw.confirm_enrollment(enrollment, &right).unwrap(),
        SignIn::Authenticated
    );
    // Its recovery codes; one of them signs in, a wrong one is denied.
    let recovery: Vec<String> = (done.take_recovery_codes().unwrap())
        .expose_secrets()
        .map(str::to_owned)
        .collect();
    for code in &recovery {
        secrets.push(code.clone());
        secrets.push(code.replace('-', ""));
    }
    f.clock.advance(Duration::seconds(60));
    let pending = step!(f.sign_in_as("ada"), SignIn::TotpRequired);
    let wrong_recovery = keyward::RecoveryCode::new("zzzz-zzzz-zzzz-zzzz");
    secrets.push("zzzz-zzzz-zzzz-zzzz".into());
    let pending = step!(
        f.kw.verify_recovery_code(pending, &wrong_recovery).unwrap(),
        SignIn::TotpRequired
    );
    let used = keyward::RecoveryCode::new(recovery[0].as_str());
    step!(
        f.kw.verify_recovery_code(pending, &used).unwrap(),
        SignIn::Authenticated
    );

    // The lifecycle: a new email, verified by its code; disable, enable, role, delete.
    use keyward::admin::{Channel, ProfileChange};
    let email = "ada@new.example";
    f.kw.set_contact(&f.admin.id, &ada.id, Channel::Email, Some(email))
        .unwrap();
    let _ = f.kw.send_contact_code(&ada.id, Channel::Email).unwrap();
    let contact_code = digits_in(&f.mail_to(email), 8);
    secrets.push(contact_code.clone());
    let confirmed =
        f.kw.confirm_contact(&ada.id, Channel::Email, &OneTimeCode::new(contact_code))
            .unwrap();
    assert_eq!(confirmed, keyward::account::ContactConfirmation::Verified);
    let change = ProfileChange::new().surname("Lovelace");
    f.kw.update_user(&f.admin.id, &ada.id, &change).unwrap();
    f.kw.disable_user(&f.admin.id, &ada.id, "on leave").unwrap();
    f.kw.enable_user(&f.admin.id, &ada.id).unwrap();
    let moved = f.user("moved");
    let role = keyward::user::Role::Moderator;
    f.kw.set_role(&f.admin.id, &moved.id, role, &[]).unwrap();
    f.kw.delete_user(&f.admin.id, &moved.id).unwrap();

    // Password reset by token.
    f.kw.request_password_reset(&f.site, "sam").unwrap();
    let token = f.reset_token_to("sam@example.org");
    secrets.push(token.clone());
    let reset_to = "quiet-meadow-lantern-66";
    secrets.push(reset_to.into());
    let reset =
        f.kw.reset_password(&OneTimeCode::new(token), Password::new(reset_to));
    assert!(matches!(
        reset.unwrap(),
        keyward::recovery::PasswordReset::Done { .. }
    ));

    // Lock by failures, and unlock.
    for _ in 0..5 {
        step!(f.sign_in("kim", &Password::new(wrong)), SignIn::Denied);
    }
    f.kw.unlock(&f.admin.id, &kim.id).unwrap();
    f.kw.lock_user(&f.admin.id, &kim.id, "badge lost").unwrap();

    // Bulk regeneration of a cohort.
    for name in ["p1", "p2", "p3"] {
        let pupil = f.user(name);
        f.temporary_for(&pupil.id);
    }
    let groups = vec!["Year 7".to_owned()];
    let preview =
        f.kw.preview_regeneration(&f.admin.id, &f.site, &groups)
            .unwrap();
    let confirmation = Password::new(ADMIN_PASSWORD);
    let options = RegenerationOptions::new();
    let regenerated =
        f.kw.regenerate(&f.admin.id, &confirmation, preview, options)
            .unwrap();
    assert!(!regenerated.list.rows.is_empty());
    for row in &regenerated.list.rows {
        secrets.push(row.password.expose_secret().to_owned());
    }

    // Import of a legacy hash (md5-crypt of "password"), then wrapping it.
    let md5 = "$1$saltsalt$qjXMvbEw8oaL.CzflDugX/";
    let line = format!(
        r#"{{"username":"legacy","forename":"L","surname":"Egacy","hashed_password":"{md5}","hashing_method":"crypt"}}"#
    );
    let progress = (f.kw)
        .import_users(
            None,
            &f.site,
            import::ndjson_records(line.as_bytes()),
            ImportOptions::new(),
        )
        .unwrap();
    assert_eq!(progress.created, 1, "{progress:?}");
    f.kw.wrap_fast_hashes(None, &f.site, WrapOptions::new())
        .unwrap();
    secrets.push(md5.into());
    secrets.push("qjXMvbEw8oaL".into());

    // Every stored credential hash and sealed secret is secret material too.
    for user in [&sam, &kim, &ada] {
        let record = f.record(&user.id);
        if let Some(p) = &record.password {
            secrets.push(p.hash.as_str().to_owned());
        }
        if let Some(p) = &record.pin {
            secrets.push(p.hash.as_str().to_owned());
        }
        if let Some(t) = &record.totp.secret {
            secrets.push(t.as_str().to_owned());
        }
        for digest in &record.totp.recovery_codes {
            secrets.push(digest.as_str().to_owned());
        }
    }

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The trace holds the decisions (so this test sees what was written)...
    for expected in [
        "keyward.sign_in",
        "keyward.verify_totp",
        "keyward.authorize_device",
        "keyward.complete_password_change",
        "keyward.verify_recovery_code",
        "keyward.confirm_contact",
        "reason=\"wrong_recovery_code\"",
        "action=\"recovery_code_used\"",
        "action=\"contact_verified\"",
        "action=\"user_disabled\"",
        "action=\"role_changed\"",
        "action=\"user_deleted\"",
        "keyward.regenerate",
        "reason=\"wrong_password\"",
        "reason=\"wrong_pin\"",
        "reason=\"unknown_user\"",
        "reason=\"totp_required\"",
        "reason=\"wrong_totp_code\"",
        "reason=\"step_invalid\"",
        "account locked",
        "action=\"unlocked\"",
        "action=\"password_reset\"",
        "action=\"totp_enrolled\"",
        "bulk regeneration committed",
        "import batch committed",
        "action=\"fast_hashes_wrapped\"",
    ] {
        assert!(
            text.contains(expected),
            "the trace lacks {expected:?}:\n{text}"
        );
    }
    // ...and none of the secrets.
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret is in the trace: {secret:?}"
        );
    }
    for c in &codes {
        assert!(!has_word(&text, c), "a TOTP code is in the trace: {c}");
    }
}
