//! The web example (`examples/web.rs`) as two real server processes on one SQLite file with
//! the same keys, driven by a real HTTP client whose steps alternate between them: a TOTP
//! sign-in, a forced password change and sign-out, the device code and enrollment after an
//! authenticator reset, and a session signed out by a change made on the file.
//!
//! The test builds the example itself (`cargo build --example web`), since `cargo test --test`
//! does not; under a full `cargo test` it is already built and the build is a no-op.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod web;

use keyward::signin::FIRST_FACTOR_MESSAGE;
use keyward::store::UserRecord;
use web::*;

/// A TOTP sign-in: password on A, the code page on B, a wrong code on A, the retry on B, the
/// right code on A; signed in on both. A second browser holding the finished step cannot use
/// it; a form posted from another site is refused; and a password change made on the file
/// signs the session out on both servers.
#[test]
fn a_totp_sign_in_alternates_between_two_servers() {
    let d = Deployment::start();
    let sam = d.seed("sam");
    let secret = d.enroll(&sam);
    let mut browser = Client::new();
    // Signed out: every page leads to the sign-in form.
    let home = browser.get(&d.a, "/");
    assert_eq!(home.location(), Some("/sign-in"));
    let form = browser.get(&d.a, "/sign-in");
    assert!(form.body.contains(r#"action="/sign-in""#), "{}", form.body);
    assert!(form.served_by(&d.a));
    // A wrong password: the one first-factor message, no step.
    let wrong = browser.post(
        &d.a,
        "/sign-in",
        &[("username", "sam"), ("password", "nope")],
    );
    assert_eq!(wrong.status, 200);
    assert!(wrong.body.contains(FIRST_FACTOR_MESSAGE), "{}", wrong.body);
    assert!(!browser.has("kw_step") && !browser.has("kw_session"));
    // The password on A.
    let step = browser.post(&d.a, "/sign-in", &sam.credentials());
    assert_eq!(step.location(), Some("/step"));
    assert!(browser.has("kw_step") && !browser.has("kw_session"));
    // The code page on B.
    let page = browser.get(&d.b, "/step");
    assert!(page.body.contains("Enter your code"), "{}", page.body);
    assert!(page.served_by(&d.b) && !page.body.contains("incorrect"));
    // A wrong code on A hands the step back; B shows the retry.
    let code = next_code(&secret);
    let wrong = browser.post(&d.a, "/step", &[("code", &wrong_code(&secret))]);
    assert_eq!(wrong.location(), Some("/step"));
    let retry = browser.get(&d.b, "/step");
    assert!(
        retry.body.contains("The code is incorrect"),
        "{}",
        retry.body
    );
    // Someone who copied the step cookie now.
    let mut copy = browser.clone();
    // The right code on A: signed in, the step cookie gone.
    let done = browser.post(&d.a, "/step", &[("code", &code)]);
    assert_eq!(done.location(), Some("/"));
    assert!(browser.has("kw_session") && !browser.has("kw_step"));
    for server in [&d.b, &d.a] {
        let home = browser.get(server, "/");
        assert_eq!(home.status, 200);
        assert!(home.body.contains("Signed in as"), "{}", home.body);
        assert!(home.body.contains("(sam)") && home.served_by(server));
    }
    // The copied step, with the same code, on B: finished already.
    let replay = copy.post(&d.b, "/step", &[("code", &code)]);
    assert!(!copy.has("kw_session"), "a finished step signed in again");
    assert!(replay.body.contains("Sign in"), "{}", replay.body);
    // Replacing the authenticator asks for the password first (a step-up): a wrong one is
    // refused with the one message, the right one opens the set-up.
    let ask = browser.post(&d.a, "/authenticator", &[]);
    assert!(
        ask.body.contains("Enter your password to replace it"),
        "{}",
        ask.body
    );
    assert!(!browser.has("kw_step"), "no set-up without the step-up");
    let refused = browser.post(&d.b, "/authenticator", &[("password", "not-it")]);
    assert!(
        refused.body.contains(FIRST_FACTOR_MESSAGE),
        "{}",
        refused.body
    );
    let password = sam.credentials()[1].1.to_owned();
    let setup = browser.post(&d.a, "/authenticator", &[("password", &password)]);
    assert_eq!(setup.location(), Some("/step"), "{}", setup.body);
    assert!(
        browser
            .get(&d.b, "/step")
            .body
            .contains("Set up your authenticator")
    );
    let cancelled = browser.post(&d.b, "/step/cancel", &[]);
    assert_eq!(cancelled.location(), Some("/"));
    // A form posted from another site is refused, whatever it carries.
    let foreign = browser.post_from(&d.b, "/sign-out", &[], "http://elsewhere.example");
    assert_eq!(foreign.status, 403);
    assert!(browser.has("kw_session"));
    // An administrator issues a temporary password on the file: the stamp goes stale, and the
    // next request on either server signs the session out.
    d.issue_temporary(&sam);
    let stale = browser.get(&d.b, "/");
    assert_eq!(stale.location(), Some("/sign-in"));
    assert!(stale.removes("kw_session"), "{:?}", stale.set_cookies);
    assert!(!browser.has("kw_session"));
    // The old cookie, kept by someone else, is refused on A too.
    let mut kept = copy;
    kept.set("kw_session", done.cookie("kw_session").unwrap());
    assert_eq!(kept.get(&d.a, "/").location(), Some("/sign-in"));
}

/// A single-use temporary password: sign-in on A, the new-password page on B, a password the
/// policy refuses on A, two passwords that differ on B, a good one on A; signed in on B. Then
/// an authenticator set up while signed in (its QR page on A, confirmed on B), sign-out on A,
/// and the new password signs in again (now asking for the new authenticator's code).
#[test]
fn a_forced_password_change_and_sign_out_alternate_between_two_servers() {
    let d = Deployment::start();
    let lee = d.seed("lee");
    let temporary = d.issue_temporary(&lee);
    let mut browser = Client::new();
    let step = browser.post(
        &d.a,
        "/sign-in",
        &[("username", "lee"), ("password", &temporary)],
    );
    assert_eq!(step.location(), Some("/step"));
    let page = browser.get(&d.b, "/step");
    assert!(page.body.contains("Choose a new password"), "{}", page.body);
    let weak = browser.post(
        &d.a,
        "/step",
        &[("new_password", "short"), ("confirm_password", "short")],
    );
    assert_eq!(weak.status, 200);
    assert!(
        weak.body.contains("Please choose another password"),
        "{}",
        weak.body
    );
    assert!(browser.has("kw_step") && !browser.has("kw_session"));
    let new = "quartz-meadow-lantern-41";
    let differ = browser.post(
        &d.b,
        "/step",
        &[
            ("new_password", new),
            ("confirm_password", "quartz-meadow-lantern-42"),
        ],
    );
    assert!(
        differ.body.contains("The two passwords differ"),
        "{}",
        differ.body
    );
    let done = browser.post(
        &d.a,
        "/step",
        &[("new_password", new), ("confirm_password", new)],
    );
    assert_eq!(done.location(), Some("/"));
    let home = browser.get(&d.b, "/");
    assert!(home.body.contains("(lee)"), "{}", home.body);
    let before = browser.cookie("kw_session").unwrap();

    // Set up an authenticator while signed in: the QR page on A, confirmed on B.
    let start = browser.post(&d.a, "/authenticator", &[]);
    assert_eq!(start.location(), Some("/step"));
    let page = browser.get(&d.a, "/step");
    assert!(page.body.contains("<svg"), "{}", page.body);
    let secret = enrollment_secret(&page.body);
    // The set-up step without the session (a copy of the step cookie alone) signs no one in.
    let mut step_only = Client::new();
    step_only.set("kw_step", browser.cookie("kw_step").unwrap());
    let refused = step_only.post(&d.b, "/step", &[("code", &current_code(&secret))]);
    assert_eq!(refused.location(), Some("/sign-in"));
    assert!(!step_only.has("kw_session") && !step_only.has("kw_step"));
    let confirmed = browser.post(&d.b, "/step", &[("code", &current_code(&secret))]);
    // Signed in, and shown the new authenticator's recovery codes once.
    let codes = recovery_codes_in(&confirmed.body);
    assert_eq!(codes.len(), 10, "{}", confirmed.body);
    // The enrollment changed the stamp; the new session cookie carries the new one.
    assert_ne!(browser.cookie("kw_session").unwrap(), before);
    assert!(browser.get(&d.a, "/").body.contains("(lee)"));
    let mut old = Client::new();
    old.set("kw_session", before);
    assert_eq!(old.get(&d.b, "/").location(), Some("/sign-in"));

    // Sign-out on A clears both cookies; every page on B is signed out.
    let out = browser.post(&d.a, "/sign-out", &[]);
    assert_eq!(out.location(), Some("/sign-in"));
    assert!(out.removes("kw_session"), "{:?}", out.set_cookies);
    assert!(!browser.has("kw_session") && !browser.has("kw_step"));
    assert_eq!(browser.get(&d.b, "/").location(), Some("/sign-in"));
    // The new password, and now the authenticator's code.
    let again = browser.post(&d.b, "/sign-in", &[("username", "lee"), ("password", new)]);
    assert_eq!(again.location(), Some("/step"));
    let code = browser.post(&d.a, "/step", &[("code", &next_code(&secret))]);
    assert_eq!(code.location(), Some("/"));
    assert!(browser.get(&d.b, "/").body.contains("(lee)"));

    // The authenticator lost: a recovery code at the TOTP step, on the other server; the
    // same code again is refused.
    let _ = browser.post(&d.a, "/sign-out", &[]);
    let again = browser.post(&d.a, "/sign-in", &[("username", "lee"), ("password", new)]);
    assert_eq!(again.location(), Some("/step"));
    assert!(browser.get(&d.b, "/step").body.contains("recovery code"));
    let used = browser.post(&d.b, "/step", &[("recovery_code", &codes[0])]);
    assert_eq!(used.location(), Some("/"), "{}", used.body);
    assert!(browser.get(&d.a, "/").body.contains("(lee)"));
    let _ = browser.post(&d.a, "/sign-out", &[]);
    let again = browser.post(&d.b, "/sign-in", &[("username", "lee"), ("password", new)]);
    assert_eq!(again.location(), Some("/step"));
    let reused = browser.post(&d.a, "/step", &[("recovery_code", &codes[0])]);
    assert_eq!(
        reused.location(),
        Some("/step"),
        "handed back as a wrong code"
    );
    assert!(browser.get(&d.b, "/step").body.contains("incorrect"));
    assert!(!browser.has("kw_session"));
}

/// The recovery codes listed on a page.
fn recovery_codes_in(body: &str) -> Vec<String> {
    body.split("<li><code>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</code>").map(|(code, _)| code.to_owned()))
        .collect()
}

/// After an administrator's authenticator reset: the password on A, the emailed device code
/// entered on B (read from the mail drop), the enrollment page with its QR code on A, the
/// first code of the new secret (from the page's otpauth URI) on B; signed in on A. The
/// device-code step, replayed, is refused.
#[test]
fn device_code_and_enrollment_alternate_between_two_servers() {
    let d = Deployment::start();
    let kim = d.seed("kim");
    d.enroll(&kim);
    d.reset_totp(&kim);
    let mut browser = Client::new();
    let step = browser.post(&d.a, "/sign-in", &kim.credentials());
    assert_eq!(step.location(), Some("/step"));
    let page = browser.get(&d.b, "/step");
    assert!(page.body.contains("Check your email"), "{}", page.body);
    assert!(page.body.contains("kim@example.org"), "{}", page.body);
    let device_code = d.device_code_for("kim@example.org");
    let mut copy = browser.clone();
    let enrollment = browser.post(&d.b, "/step", &[("code", &device_code)]);
    assert_eq!(enrollment.location(), Some("/step"));
    let page = browser.get(&d.a, "/step");
    assert!(
        page.body.contains("Set up your authenticator"),
        "{}",
        page.body
    );
    assert!(page.body.contains("<svg") && !page.body.contains("<?xml"));
    assert!(page.served_by(&d.a));
    let secret = enrollment_secret(&page.body);
    // The same device code again, from the copied step: refused, no session, no enrollment.
    let replay = copy.post(&d.a, "/step", &[("code", &device_code)]);
    assert!(replay.body.contains("Sign in"), "{}", replay.body);
    assert!(!copy.has("kw_session") && !copy.has("kw_step"));
    // The new authenticator's first code on B.
    let done = browser.post(&d.b, "/step", &[("code", &current_code(&secret))]);
    assert_eq!(recovery_codes_in(&done.body).len(), 10, "{}", done.body);
    let home = browser.get(&d.a, "/");
    assert!(home.body.contains("(kim)"), "{}", home.body);
    let record: UserRecord = d.kw.store().get_user(&kim.id).unwrap().unwrap();
    assert!(!record.totp.reset_pending, "the reset is finished");
}
