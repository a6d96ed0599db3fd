//! keyward quickstart: the stories keyward exists for, end to end on the embedded SQLite
//! store.
//!
//! 1. Migrating users bring legacy hashes; each is upgraded to argon2id at the next sign-in.
//! 2. The directory (SSO) is down: an admin gives an SSO user a temporary password; the PIN is
//!    still needed; later the admin removes it.
//! 3. A single-use temporary password forces a change at the next sign-in.
//! 4. Five wrong passwords lock the account; the admin sees why and unlocks it.
//! 5. A user loses their phone: the admin resets TOTP, the user proves control of their email
//!    with a device code, enrolls a new authenticator and confirms it.
//! 6. A cohort's temporary passwords are regenerated as a one-time printable list.
//!
//! Each step prints what an admin screen would show. Time is a manual clock so the story can
//! skip ahead; a real application uses the default system clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keyward::admin::IssueOptions;
use keyward::hash::ImportRecord;
use keyward::notify::{Outbox, Recipient};
use keyward::signin::PasswordChange;
use keyward::store::UserQuery;
use keyward::store::UserRecord;
use keyward::totp::{TotpConfig, TotpSealer};
use keyward::user::{Role, SiteId, TemporaryMode, User};
use keyward::{Keyward, ManualClock, OneTimeCode, Password, Pin, SignIn, SqliteStore};
use time::Duration;
use time::macros::datetime;

fn main() {
    if let Err(e) = run() {
        eprintln!("quickstart failed: {e}");
        let mut source = e.source();
        while let Some(cause) = source {
            eprintln!("  caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("keyward-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("keyward.db");
    let store = Arc::new(SqliteStore::open(&db)?);
    let clock = Arc::new(ManualClock::new(datetime!(2026-09-01 08:00 UTC)));
    let outbox = Arc::new(Outbox::new());
    // A real application loads its 32-byte key from a secret manager.
    let sealer = TotpSealer::new("2026-09", &[42u8; 32])?;
    let kw = Keyward::builder(store)
        .clock(clock.clone())
        .notifier(outbox.clone())
        .totp(TotpConfig::DEFAULT.with_issuer("Northfield School")?)
        .totp_sealer(sealer)
        .build();
    let site = SiteId::new("northfield").expect("valid site id");
    println!("keyward quickstart: SQLite store at {}\n", db.display());

    let admin = kw.create_user(
        None,
        User::new(site.clone(), "head", "Ada", "Lovelace", "staff", kw.now())
            .with_role(Role::Administrator),
        Some(Password::new("ochre-violet-anchor-93")),
    )?;

    // ---------------------------------------------------------------------------------------
    println!("== 1. Legacy hashes, verified and upgraded to argon2id at the next sign-in");
    let legacy = [
        ("unix", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", "password"),
        (
            "blowfish",
            "$2b$04$84GNzyqnWf6aKcKXPw8xFOW1/.wIJuw8HvDUmraSD5uwVV3.kbQy2",
            "password",
        ),
        (
            "wordpress",
            "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0",
            "test12345",
        ),
    ];
    for (username, hash, password) in legacy {
        let user = User::new(
            site.clone(),
            username,
            "Legacy",
            username,
            "staff",
            kw.now(),
        );
        kw.import_user(user, &ImportRecord::new(hash))?;
        let outcome = kw.sign_in(&site, username, &Password::new(password), None)?;
        match outcome {
            SignIn::Authenticated(a) => {
                let stored = stored_hash(&kw, &a.user().id)?;
                println!(
                    "  {username:<10} imported {:<22} signed in, upgraded: {} -> now {}",
                    short(hash),
                    a.hash_upgraded(),
                    short(&stored)
                );
            }
            other => println!("  {username:<10} unexpected: {other:?}"),
        }
    }
    // A salted md5 export: digest of password + salt, salt given separately (Kinde's fields).
    // md5("correct horse battery staple" + "pepper"), computed with Python's hashlib.
    let mut salted = ImportRecord::new("0ae3598da678330a09af2845085de5de");
    salted.hashing_method = Some(keyward::hash::HashingMethod::Md5);
    salted.salt = Some("pepper".into());
    salted.salt_position = Some(keyward::hash::SaltPosition::Suffix);
    let user = User::new(site.clone(), "salty", "Sal", "Ted", "staff", kw.now());
    let imported = kw.import_user(user, &salted)?;
    println!(
        "  salty      salted md5 stored as {}",
        short(&stored_hash(&kw, &imported.id)?)
    );
    let outcome = kw.sign_in(
        &site,
        "salty",
        &Password::new("correct horse battery staple"),
        None,
    )?;
    println!(
        "  salty      sign-in: {} -> now {}",
        describe(&outcome),
        short(&stored_hash(&kw, &imported.id)?)
    );
    let mut wrong = salted.clone();
    wrong.salt_position = None;
    if let Err(e) = kw.hasher().import(&wrong) {
        println!("  an import record without salt_position is refused: {e}");
    }

    // ---------------------------------------------------------------------------------------
    println!("\n== 2. Directory outage: a temporary password for an SSO user (PIN still needed)");
    let sso = kw.create_user(
        Some(&admin.id),
        User::new(site.clone(), "grace", "Grace", "Hopper", "staff", kw.now()).with_sso(true),
        None,
    )?;
    kw.set_pin(&admin.id, &sso.id, Some(&Pin::new("4711")))?;
    let issued = kw.issue_temporary_password(
        &admin.id,
        &sso.id,
        IssueOptions::generated().mode(TemporaryMode::AdminManaged),
    )?;
    let temporary = issued.password.expect("shown to the admin");
    println!(
        "  admin screen: grace holds an admin-managed temporary password until {} ({:.0} bits)",
        issued.expires_at.date(),
        issued.entropy_bits.unwrap_or_default()
    );
    let without_pin = kw.sign_in(&site, "grace", &temporary.to_password(), None)?;
    println!("  sign-in without PIN: {}", describe(&without_pin));
    let with_pin = kw.sign_in(
        &site,
        "grace",
        &temporary.to_password(),
        Some(&Pin::new("4711")),
    )?;
    println!("  sign-in with PIN:    {}", describe(&with_pin));
    kw.remove_temporary_password(&admin.id, &sso.id)?;
    let after = kw.sign_in(
        &site,
        "grace",
        &temporary.to_password(),
        Some(&Pin::new("4711")),
    )?;
    println!(
        "  directory back, temporary password removed: {}",
        describe(&after)
    );

    // ---------------------------------------------------------------------------------------
    println!("\n== 3. Single-use temporary password with a forced change");
    let alan = kw.create_user(
        Some(&admin.id),
        User::new(site.clone(), "alan", "Alan", "Turing", "student", kw.now())
            .with_email("alan@example.org", true),
        None,
    )?;
    let issued = kw.issue_temporary_password(&admin.id, &alan.id, IssueOptions::generated())?;
    let temporary = issued.password.expect("shown to the admin");
    print_admin_screen(
        &kw,
        &admin,
        &site,
        "temporary passwords",
        UserQuery::new(site.clone(), kw.now()).temporary_password_only(),
    )?;
    match kw.sign_in(&site, "alan", &temporary.to_password(), None)? {
        SignIn::PasswordChangeRequired(pending) => {
            println!("  sign-in with the temporary password: password change required");
            match kw.complete_password_change(pending, Password::new("enigma"))? {
                PasswordChange::Rejected(pending, why) => {
                    println!("  new password 'enigma' rejected: {why}");
                    let done = kw.complete_password_change(
                        pending,
                        Password::new("bombe-rotor-plugboard-1940"),
                    )?;
                    if let PasswordChange::Changed(outcome) = done {
                        println!("  new password accepted: {}", describe(&outcome));
                    }
                }
                other => println!("  unexpected: {other:?}"),
            }
        }
        other => println!("  unexpected: {}", describe(&other)),
    }
    let reused = kw.sign_in(&site, "alan", &temporary.to_password(), None)?;
    println!("  the temporary password again: {}", describe(&reused));

    // ---------------------------------------------------------------------------------------
    println!("\n== 4. Five wrong passwords lock the account; the admin unlocks it");
    // A success clears the failure the reused temporary password just counted.
    let fresh = kw.sign_in(
        &site,
        "alan",
        &Password::new("bombe-rotor-plugboard-1940"),
        None,
    )?;
    println!(
        "  alan signs in with his new password: {}",
        describe(&fresh)
    );
    for i in 1..=5 {
        let outcome = kw.sign_in(&site, "alan", &Password::new(format!("guess-{i}")), None)?;
        println!("  wrong password {i}: {}", describe(&outcome));
    }
    let right = kw.sign_in(
        &site,
        "alan",
        &Password::new("bombe-rotor-plugboard-1940"),
        None,
    )?;
    println!("  the right password while locked: {}", describe(&right));
    print_admin_screen(
        &kw,
        &admin,
        &site,
        "locked users",
        UserQuery::new(site.clone(), kw.now()).locked_only(),
    )?;
    kw.unlock(&admin.id, &alan.id)?;
    let summary = kw.user_summary(&admin.id, &alan.id)?;
    let unlocked_by = match &summary.password_lock.unlocked_by {
        Some(id) => kw.user_summary(&admin.id, id)?.user.username,
        None => String::new(),
    };
    println!(
        "  unlocked by {unlocked_by} at {}",
        summary
            .password_lock
            .unlocked_at
            .map(|t| t.to_string())
            .unwrap_or_default()
    );
    let again = kw.sign_in(
        &site,
        "alan",
        &Password::new("bombe-rotor-plugboard-1940"),
        None,
    )?;
    println!("  sign-in after unlock: {}", describe(&again));

    // ---------------------------------------------------------------------------------------
    println!("\n== 5. Lost phone: TOTP reset, device authorization by email, new enrollment");
    // Alan had an authenticator (enrolled here in two lines).
    let pending = kw.enroll_totp(&alan.id, None)?;
    let code = keyward::totp::code_at(
        &TotpConfig::DEFAULT,
        pending.enrollment().secret(),
        kw.now(),
    )?;
    let _ = kw.confirm_enrollment(pending, &code)?;
    clock.advance(Duration::minutes(1));
    println!(
        "  alan's sign-in asks for a code: {}",
        describe(&kw.sign_in(
            &site,
            "alan",
            &Password::new("bombe-rotor-plugboard-1940"),
            None
        )?)
    );
    kw.reset_totp(&admin.id, &alan.id)?;
    println!("  admin reset alan's authenticator");
    let SignIn::DeviceAuthorizationRequired(pending) = kw.sign_in(
        &site,
        "alan",
        &Password::new("bombe-rotor-plugboard-1940"),
        None,
    )?
    else {
        println!("  unexpected outcome");
        return Ok(());
    };
    let mail = outbox
        .take_last_to(&Recipient::Email("alan@example.org".into()))
        .expect("a code was sent");
    let text = mail.render_english();
    println!("  outbox -> {}: {}", pending.sent_to(), text.body.as_str());
    let device_code = mail.secret.expose_secret().to_owned();
    let SignIn::TotpEnrollmentRequired(enrollment) =
        kw.authorize_device(pending, &OneTimeCode::new(device_code))?
    else {
        println!("  unexpected outcome");
        return Ok(());
    };
    // Written outside the throw-away database folder, so it can be opened afterwards.
    let svg_path = std::env::temp_dir().join("keyward-quickstart-totp.svg");
    std::fs::write(&svg_path, enrollment.enrollment().expose_qr_svg())?;
    println!(
        "  new authenticator URI: {}",
        enrollment.enrollment().expose_uri()
    );
    println!("  QR code written to {}", svg_path.display());
    let code = keyward::totp::code_at(
        &TotpConfig::DEFAULT,
        enrollment.enrollment().secret(),
        kw.now(),
    )?;
    println!(
        "  code from the new authenticator: {}",
        code.expose_secret()
    );
    let mut confirmed = kw.confirm_enrollment(enrollment, &code)?;
    println!("  confirm: {}", describe(&confirmed));
    if let SignIn::Authenticated(done) = &mut confirmed
        && let Some(codes) = done.take_recovery_codes()
    {
        // Shown once (print or download them); keyward keeps only their digests.
        println!(
            "  {} recovery codes to keep, each signs in once instead of a TOTP code",
            codes.len()
        );
    }

    // ---------------------------------------------------------------------------------------
    println!("\n== 6. A cohort: preview, confirm, progress, printable list, unclaimed list");
    let pupils = [
        ("ann", "Ann", "Avery", 17, None),
        ("bob", "Bob", "Brown", 3, None),
        (
            "cat",
            "Cat",
            "Carter",
            25,
            Some("kestrel-harbour-quartz-71"),
        ),
    ];
    let mut ids = Vec::new();
    for (username, forename, surname, day, own) in pupils {
        let dob = time::Date::from_calendar_date(2014, time::Month::May, day)?;
        let user = User::new(
            site.clone(),
            username,
            forename,
            surname,
            "student",
            kw.now(),
        )
        .with_groups(["Year 7"])
        .with_date_of_birth(dob);
        ids.push(
            kw.create_user(Some(&admin.id), user, own.map(Password::new))?
                .id,
        );
    }
    // Bob's teacher gave him a temporary password last week.
    let bob_letter = kw.issue_temporary_password(&admin.id, &ids[1], IssueOptions::generated())?;
    let groups = ["Year 7".to_owned()];
    let preview = kw.preview_regeneration(&admin.id, &site, &groups)?;
    for group in preview.per_group() {
        println!(
            "  preview: {} passwords to regenerate in {}",
            group.picked, group.name
        );
    }
    for (reason, count) in preview.skipped() {
        println!("  preview: {count} skipped ({reason})");
    }
    // While the administrator reads the preview, Bob claims his account.
    let bob_temporary = bob_letter.password.expect("shown to the admin");
    if let SignIn::PasswordChangeRequired(pending) =
        kw.sign_in(&site, "bob", &bob_temporary.to_password(), None)?
    {
        let _ = kw.complete_password_change(pending, Password::new("meadow-falcon-ember-26"))?;
        println!("  bob set a password of his own");
    }
    let mut report = |p: keyward::admin::Progress| println!("  progress {}/{}", p.done, p.total);
    let options = keyward::admin::RegenerationOptions::new().on_progress(&mut report);
    let done = kw.regenerate(
        &admin.id,
        &Password::new("ochre-violet-anchor-93"),
        preview,
        options,
    )?;
    if done.changed_meanwhile.contains(&ids[1]) {
        println!("  skipped bob: he claimed his account meanwhile and keeps his password");
    }
    let list = &done.list;
    print!("{}", list.to_csv()?.as_str());
    let html_path = std::env::temp_dir().join("keyward-quickstart-list.html");
    std::fs::write(&html_path, list.to_html().as_bytes())?;
    println!(
        "  {} new temporary password(s), batch {}; printable list written to {} (regenerating voids it)",
        list.rows.len(),
        list.batch.as_str(),
        html_path.display()
    );
    let unclaimed = kw.unclaimed_users(&admin.id, &UserQuery::new(site.clone(), kw.now()))?;
    for u in &unclaimed.items {
        let expires = u.summary.temporary.as_ref().map(|t| t.expires_at.date());
        println!(
            "  unclaimed: {} (expires {expires:?})",
            u.summary.user.username
        );
    }

    // ---------------------------------------------------------------------------------------
    println!("\n== Audit trail of alan (newest last)");
    let query = keyward::audit::AuditQuery::for_user(alan.id.clone())
        .site(site.clone())
        .page(0, 100);
    let events = kw.audit_trail(&admin.id, &query)?;
    for e in events.items.iter().rev().take(8).rev() {
        println!(
            "  {} {:<26} {:<10} {}",
            e.at.time(),
            e.action.as_str(),
            e.outcome.as_str(),
            e.reason.as_deref().unwrap_or("")
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn stored_hash(kw: &Keyward, id: &keyward::user::UserId) -> Result<String, keyward::Error> {
    let record: UserRecord = kw.store().get_user(id)?.expect("exists");
    Ok(record
        .password
        .map(|p| p.hash.as_str().to_owned())
        .unwrap_or_default())
}

/// The scheme tag and a few characters of a hash: enough to see the format.
fn short(hash: &str) -> String {
    let shown: String = hash.chars().take(16).collect();
    format!("{shown}…")
}

/// One line per outcome: the admin's view (precise reason) beside the user's message.
fn describe(outcome: &SignIn) -> String {
    match outcome {
        SignIn::Authenticated(a) => format!("authenticated as {}", a.user().username),
        SignIn::PasswordChangeRequired(_) => "password change required".into(),
        SignIn::TotpRequired(_) => "TOTP code required".into(),
        SignIn::DeviceAuthorizationRequired(p) => format!("device code sent to {}", p.sent_to()),
        SignIn::TotpEnrollmentRequired(_) => "new authenticator enrollment required".into(),
        SignIn::Denied(d) => format!(
            "denied — user sees \"{}\", admin sees reason `{}`{}",
            d.user_message(),
            d.reason(),
            d.reason()
                .admin_hint()
                .map(|h| format!(" (hint: {h})"))
                .unwrap_or_default()
        ),
        _ => "other outcome".into(),
    }
}

fn print_admin_screen(
    kw: &Keyward,
    admin: &User,
    site: &SiteId,
    title: &str,
    query: UserQuery,
) -> Result<(), keyward::Error> {
    let page = kw.search_users(&admin.id, &query)?;
    println!("  admin screen — {title} ({} found):", page.total);
    for record in page.items {
        let temporary = record
            .temporary
            .as_ref()
            .map(|t| {
                format!(
                    "temporary ({}) until {}",
                    t.mode.as_str(),
                    t.expires_at.date()
                )
            })
            .unwrap_or_else(|| "-".into());
        let lock = &record.password_lock;
        let locked = match (lock.locked_at, lock.lock_reason) {
            (Some(at), Some(reason)) => format!("locked at {} ({})", at.time(), reason.as_str()),
            _ => format!("{} failed attempts", lock.failed_attempts),
        };
        println!(
            "    {:<8} {:<18} {:<40} {}  [{}]",
            record.user.username,
            format!("{} {}", record.user.forename, record.user.surname),
            temporary,
            locked,
            site
        );
    }
    Ok(())
}
