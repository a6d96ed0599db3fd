//! The admin tool (`examples/admin.rs`) run as a process, end to end, on a SQLite file and on
//! PostgreSQL: init, import with bad lines, sign-in exit codes, lockout and unlock, temporary
//! passwords, bulk regeneration with both report files, break-glass recovery, audit. Secrets
//! travel in the environment only; none appears in the output of audit or in any error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `init` of the site's first administrator, `head`.
const INIT: [&str; 7] = [
    "init",
    "--admin",
    "head",
    "--forename",
    "Ada",
    "--surname",
    "Head",
];
const ADMIN_PASSWORD: &str = "ochre-violet-anchor-93";
const NEW_ADMIN_PASSWORD: &str = "saffron-kettle-mosaic-24";
const MISPLACED: &str = "hunter2-misplaced";
/// The application's keys, as an operator exports them (64 hex digits each).
const SEALING_KEY: &str = "0707070707070707070707070707070707070707070707070707070707070707";
const ESCROW_KEY: &str = "0909090909090909090909090909090909090909090909090909090909090909";

/// The example binary, built by `cargo test` beside this test's own executable.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir
        .join("examples")
        .join(format!("admin{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: `cargo test` builds it; alone, run `cargo build --example admin` first",
        path.display()
    );
    path
}

/// The tool as a process, without any `KEYWARD_` variable of this test's environment.
fn clean_command() -> Command {
    let mut cmd = Command::new(binary());
    for (key, _) in std::env::vars() {
        if key.starts_with("KEYWARD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// One database (a SQLite file, or a PostgreSQL schema) and the tool pointed at it.
struct Tool {
    dir: tempfile::TempDir,
    store_args: Vec<String>,
}

/// What one run printed and how it ended.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
            .collect()
    }

    fn expect(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

impl Tool {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("keyward.db").display().to_string();
        Self {
            dir,
            store_args: vec!["--db".into(), db],
        }
    }

    /// A SQLite file whose site has its first administrator, `head`.
    fn sqlite_with_admin() -> Self {
        let tool = Self::sqlite();
        tool.admin(&INIT).expect(0);
        tool
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs the tool as the acting admin `head` with `env`, in site `northfield`.
    fn run(&self, env: &[(&str, &str)], args: &[&str]) -> Run {
        self.run_as("head", env, args)
    }

    /// Runs the tool as `actor`.
    fn run_as(&self, actor: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
        let mut cmd = clean_command();
        cmd.args(&self.store_args)
            .args(["--site", "northfield", "--as", actor, "--json"])
            .arg("--mail-dir")
            .arg(self.path("mail"))
            .args(args)
            .env("KEYWARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("KEYWARD_SEALING_KEY", SEALING_KEY)
            .env("KEYWARD_ESCROW_KEY", ESCROW_KEY)
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null());
        let run = Run::from(cmd.output().unwrap());
        // Whatever the command, no secret ever reaches the output by way of an argument.
        for arg in args {
            assert!(!arg.contains(ADMIN_PASSWORD));
        }
        run
    }

    fn admin(&self, args: &[&str]) -> Run {
        self.run(&[], args)
    }

    fn sign_in(&self, username: &str, password: &str) -> Run {
        self.run(&[("KEYWARD_PASSWORD", password)], &["sign-in", username])
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

const PUPILS_NDJSON: &str = r#"{"username": "ada", "forename": "Ada", "surname": "Byron", "groups": ["Year 7"], "date_of_birth": "2013-05-17", "email": "ada@example.org", "email_verified": true, "hashed_password": "5f4dcc3b5aa765d61d8327deb882cf99", "hashing_method": "md5"}
{"username": "bob", "forename": "Bob", "surname": "Stone", "groups": "Year 7", "date_of_birth": "2013-02-03"}
{"username": "cy", "forename": "Cy", "surname": "Wren", "groups": ["Year 7"], "email_verified": "hunter2-misplaced"}
{"username": "dee", "forename": "Dee", "surname": "Hart", "groups": ["Year 7"], "date_of_birth": "2013-11-30"}
this line is broken hunter2-misplaced
{"username": "eve", "forename": "Eve", "surname": "Ng", "groups": ["Year 8"], "hashed_password": "5f4dcc3b5aa765d61d8327deb882cf99", "hashing_method": "md5", "is_temporary_password": true}
"#;

fn story(tool: &Tool) {
    // init, once only.
    let out = tool.admin(&INIT).expect(0);
    assert_eq!(out.json()[0]["username"], "head");
    tool.admin(&INIT).expect(1);

    // import: good records in, bad ones named by line and field, never by value.
    write(&tool.path("pupils.ndjson"), PUPILS_NDJSON);
    let out = tool
        .admin(&["import", tool.path("pupils.ndjson").to_str().unwrap()])
        .expect(2);
    let lines = out.json();
    let refused: Vec<(u64, &str)> = lines
        .iter()
        .filter(|l| l.get("field").is_some())
        .map(|l| (l["line"].as_u64().unwrap(), l["field"].as_str().unwrap()))
        .collect();
    assert_eq!(refused, [(3, "email_verified"), (5, "record")]);
    let summary = lines.last().unwrap();
    assert_eq!(
        (summary["imported"].as_u64(), summary["refused"].as_u64()),
        (Some(4), Some(2))
    );
    assert!(!out.stdout.contains(MISPLACED) && !out.stderr.contains(MISPLACED));
    // Rerun: nothing new, the same refusals.
    let out = tool
        .admin(&["import", tool.path("pupils.ndjson").to_str().unwrap()])
        .expect(2);
    assert_eq!(out.json().last().unwrap()["existing"].as_u64(), Some(4));
    // A clean CSV goes in with exit 0.
    write(
        &tool.path("more.csv"),
        "username,forename,surname,groups\nfay,Fay,Lee,Year 7;Choir\n",
    );
    tool.admin(&["import", tool.path("more.csv").to_str().unwrap()])
        .expect(0);

    // sign-in exit codes: the imported md5 hash verifies (0), a wrong one is denied with both
    // messages (20), an imported temporary password asks for a change (10).
    let out = tool.sign_in("ada", "password").expect(0);
    assert_eq!(out.json()[0]["hash_upgraded"], true);
    let out = tool.sign_in("ada", "wrong-password").expect(20);
    let denied = &out.json()[0];
    assert_eq!(denied["reason"], "wrong_password");
    assert!(denied["user_message"].as_str().unwrap().len() > 5);
    let out = tool.sign_in("eve", "password").expect(10);
    assert_eq!(out.json()[0]["step"], "password_change");

    // lockout and unlock.
    let mut last = 0;
    for _ in 0..6 {
        last = tool.sign_in("ada", "wrong-password").code;
    }
    assert_eq!(last, 20);
    let out = tool.sign_in("ada", "password").expect(20);
    assert_eq!(out.json()[0]["reason"], "locked");
    let out = tool.admin(&["search", "--locked"]).expect(0);
    let locked = out.json();
    assert_eq!(locked.len(), 1);
    assert_eq!(locked[0]["username"], "ada");
    assert!(locked[0]["locked"]["at"].is_string());
    tool.admin(&["unlock", "ada"]).expect(0);
    tool.sign_in("ada", "password").expect(0);
    // lock by hand with a reason.
    tool.admin(&["lock", "bob", "--reason", "left the school"])
        .expect(0);
    let out = tool
        .admin(&["search", "--locked", "--text", "bo"])
        .expect(0);
    assert_eq!(out.json()[0]["locked"]["reason"], "administrative");

    // temporary passwords: admin-managed with an expiry (its last day 60 days from now),
    // then removed.
    let last = time::OffsetDateTime::now_utc().date() + time::Duration::days(60);
    let last_day = last.to_string();
    let day_after = (last + time::Duration::days(1)).to_string();
    let out = tool
        .admin(&["temp", "set", "dee", "--managed", "--expires", &last_day])
        .expect(0);
    let issued = &out.json()[0];
    assert_eq!(issued["mode"], "admin_managed");
    assert!(
        issued["expires_at"]
            .as_str()
            .unwrap()
            .starts_with(&day_after)
    );
    let dee_password = issued["password"].as_str().unwrap().to_owned();
    tool.sign_in("dee", &dee_password).expect(0);
    let out = tool.admin(&["search", "--temporary"]).expect(0);
    assert!(out.json().iter().any(|r| r["username"] == "dee"));
    tool.admin(&["temp", "remove", "dee"]).expect(0);
    tool.sign_in("dee", &dee_password).expect(20);
    // Sending needs a verified contact.
    tool.admin(&["temp", "set", "fay", "--send", "email"])
        .expect(1);
    let out = tool.admin(&["reset-link", "ada"]).expect(0);
    assert!(
        out.json()[0]["sent_to"]
            .as_str()
            .unwrap()
            .contains("ada@example.org")
    );
    let mail: Vec<_> = std::fs::read_dir(tool.path("mail"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(mail.len(), 1, "the reset link was dropped for delivery");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&tool.path("mail")), 0o700);
        assert_eq!(mode(&mail[0].path()), 0o600);
    }
    // Group reset links: the unclaimed users of a group with a verified email get one; the
    // others are listed for a temporary password instead.
    let out = tool.admin(&["reset-link", "--group", "Year 8"]).expect(0);
    let listed = out.json();
    assert!(
        listed
            .iter()
            .all(|l| l["sent_to"].is_null() && l["reason"] == "no_verified_email"),
        "{listed:?}"
    );
    // An authenticator reset: the next sign-in asks for an emailed device code.
    tool.admin(&["reset-totp", "ada"]).expect(0);
    let out = tool.sign_in("ada", "password").expect(10);
    assert_eq!(out.json()[0]["step"], "device_code");
    let mail = std::fs::read_dir(tool.path("mail")).unwrap().count();
    assert_eq!(mail, 2, "the device code went to ada's verified email");

    // groups and bulk regeneration with both report files.
    let out = tool.admin(&["groups"]).expect(0);
    let year7 = out
        .json()
        .into_iter()
        .find(|g| g["group"] == "Year 7")
        .unwrap();
    let unclaimed = year7["unclaimed"].as_u64().unwrap();
    assert!(unclaimed >= 2, "{year7}");
    let (csv, html) = (tool.path("list.csv"), tool.path("list.html"));
    let out = tool
        .admin(&[
            "bulk-regenerate",
            "--group",
            "Year 7",
            "--csv",
            csv.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
            "--yes",
        ])
        .expect(0);
    let done = out
        .json()
        .into_iter()
        .find(|l| l.get("regenerated").is_some())
        .unwrap();
    let count = done["regenerated"].as_u64().unwrap();
    assert_eq!(count, unclaimed);
    #[cfg(unix)]
    for file in [&csv, &html] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{} is readable by others", file.display());
    }
    let list = std::fs::read_to_string(&csv).unwrap();
    let mut rows = csv::Reader::from_reader(list.as_bytes());
    let header = rows.headers().unwrap().clone();
    let password_at = header.iter().position(|h| h == "password").unwrap();
    let user_at = header.iter().position(|h| h == "username").unwrap();
    let rows: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
    assert_eq!(rows.len() as u64, count);
    let html_text = std::fs::read_to_string(&html).unwrap();
    for row in &rows {
        assert!(
            html_text.contains(&row[password_at]),
            "the HTML lists every password"
        );
    }
    let fay = rows.iter().find(|r| &r[user_at] == "fay").unwrap();
    // "Show password" from the escrow (administrators only, audited) is the printed one.
    let out = tool.admin(&["unclaimed", "--reveal", "fay"]).expect(0);
    assert_eq!(out.json()[0]["password"].as_str(), Some(&fay[password_at]));
    tool.sign_in("fay", &fay[password_at]).expect(10);
    let out = tool.admin(&["unclaimed"]).expect(0);
    assert!(out.json().iter().any(|u| u["username"] == "dee"));
    // A report path that exists (or is a planted link) is refused before anything changes.
    let before = tool
        .admin(&["search", "--temporary"])
        .expect(0)
        .json()
        .len();
    let again = [
        "bulk-regenerate",
        "--group",
        "Year 7",
        "--csv",
        csv.to_str().unwrap(),
        "--yes",
    ];
    tool.admin(&again).expect(1);
    let out = tool.admin(&["unclaimed", "--reveal", "dee"]).expect(0);
    let dee_row = rows.iter().find(|r| &r[user_at] == "dee").unwrap();
    assert_eq!(
        out.json()[0]["password"].as_str(),
        Some(&dee_row[password_at]),
        "the list holds"
    );
    assert_eq!(
        tool.admin(&["search", "--temporary"])
            .expect(0)
            .json()
            .len(),
        before
    );
    // Without a report file nothing runs: the passwords would be lost.
    tool.admin(&["bulk-regenerate", "--group", "Year 7", "--yes"])
        .expect(1);

    // Permission: a pupil cannot act.
    let pupil = tool.run_as(
        "ada",
        &[("KEYWARD_ADMIN_PASSWORD", "password")],
        &["search"],
    );
    assert_eq!(pupil.code, 20, "{}", pupil.stderr);

    // break-glass: the administrator locks themself out, recovery needs no actor.
    for _ in 0..6 {
        tool.run(&[("KEYWARD_ADMIN_PASSWORD", "not-it")], &["search"]);
    }
    tool.admin(&["search"]).expect(20);
    let out = tool.admin(&["recover", "--admin", "head"]).expect(0);
    let temporary = out.json()[0]["password"].as_str().unwrap().to_owned();
    let out = tool.run(
        &[
            ("KEYWARD_ADMIN_PASSWORD", &temporary),
            ("KEYWARD_NEW_PASSWORD", NEW_ADMIN_PASSWORD),
        ],
        &["search", "--text", "ada"],
    );
    let out = out.expect(0);
    assert_eq!(out.json()[0]["username"], "ada");

    // audit: every step is there; no password of any kind is.
    let out = tool
        .run(
            &[("KEYWARD_ADMIN_PASSWORD", NEW_ADMIN_PASSWORD)],
            &["audit", "--limit", "1000"],
        )
        .expect(0);
    let actions: Vec<String> = out
        .json()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    for action in [
        "user_created",
        "sign_in",
        "unlocked",
        "locked",
        "temporary_password_set",
        "temporary_password_removed",
        "password_reset_sent",
        "bulk_regenerated",
        "administrator_recovered",
        "temporary_password_revealed",
    ] {
        assert!(
            actions.iter().any(|a| a == action),
            "no {action} in the audit trail"
        );
    }
    let reason = out
        .json()
        .into_iter()
        .find(|e| e["action"] == "locked")
        .unwrap();
    assert_eq!(reason["reason"], "left the school");
    for secret in [
        ADMIN_PASSWORD,
        NEW_ADMIN_PASSWORD,
        &temporary,
        &dee_password,
    ] {
        assert!(
            !out.stdout.contains(secret),
            "the audit output shows a password"
        );
    }
    for row in &rows {
        assert!(!out.stdout.contains(&row[password_at]));
    }
    // On SQLite, the file itself (PostgreSQL rows are scanned in the at-rest tests).
    let stored = match std::fs::read(tool.path("keyward.db")) {
        Ok(bytes) => bytes,
        Err(_) => {
            assert!(
                tool.store_args[0] == "--postgres",
                "the SQLite file is missing"
            );
            Vec::new()
        }
    };
    for row in &rows {
        let password = row[password_at].as_bytes();
        assert!(
            !stored.windows(password.len()).any(|w| w == password),
            "a plaintext password in the database file"
        );
    }
    let since = tool
        .run(
            &[("KEYWARD_ADMIN_PASSWORD", NEW_ADMIN_PASSWORD)],
            &["audit", "--user", "bob", "--since", "2000-01-01"],
        )
        .expect(0);
    let events = since.json();
    assert!(
        events.iter().any(|e| e["action"] == "locked"),
        "bob's lock is in his trail"
    );
    assert!(
        events
            .iter()
            .all(|e| e["username"] == "bob" || e["actor"] == "bob")
    );
    let future = tool
        .run(
            &[("KEYWARD_ADMIN_PASSWORD", NEW_ADMIN_PASSWORD)],
            &["audit", "--user", "bob", "--since", "2999-01-01"],
        )
        .expect(0);
    assert!(
        future.json().is_empty(),
        "--since leaves out what came before"
    );

    // Retention: everything so far exported to a new owner-only file, then deleted.
    let now = time::OffsetDateTime::now_utc();
    let before = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let export = tool.path("audit-export.ndjson");
    let admin = [("KEYWARD_ADMIN_PASSWORD", NEW_ADMIN_PASSWORD)];
    let args = [
        "audit-archive",
        "--before",
        &before,
        "--out",
        export.to_str().unwrap(),
    ];
    let out = tool.run(&admin, &args).expect(0);
    let exported = out.json()[0]["exported"].as_u64().unwrap();
    assert!(exported > 20, "{exported}");
    let lines = std::fs::read_to_string(&export).unwrap();
    assert_eq!(lines.lines().count() as u64, exported);
    assert!(!lines.contains(NEW_ADMIN_PASSWORD) && !lines.contains(&temporary));
    let left = tool
        .run(&admin, &["audit", "--limit", "1000"])
        .expect(0)
        .json();
    assert!(left.iter().any(|e| e["action"] == "audit_pruned"));
    assert!(left.len() < 10, "{} events left", left.len());
    tool.run(&admin, &args).expect(1);
}

#[test]
fn the_whole_story_on_a_sqlite_file() {
    story(&Tool::sqlite());
}

#[cfg(feature = "postgres")]
#[test]
fn the_whole_story_on_postgres() {
    let Some(schema) = support::pg::TestSchema::new() else {
        return;
    };
    let url = format!("{}?options=-c%20search_path%3D{}", schema.url, schema.name);
    let tool = Tool {
        dir: tempfile::tempdir().unwrap(),
        store_args: vec!["--postgres".into(), url],
    };
    story(&tool);
}

#[test]
fn usage_errors_and_help() {
    let tool = Tool::sqlite();
    let help = tool.admin(&["--help"]).expect(0);
    assert!(help.stdout.contains("bulk-regenerate") && help.stdout.contains("Exit codes"));
    tool.admin(&["no-such-command"]).expect(64);
    // The environment's values never show in the help: a URL may hold a password.
    let url = ("KEYWARD_POSTGRES_URL", "postgres://u:s3cret-pw@db/x");
    let help = tool.run(&[url], &["--help"]).expect(0);
    assert!(!help.stdout.contains("s3cret-pw"), "{}", help.stdout);
    // A missing --site is a usage error.
    let mut cmd = clean_command();
    cmd.args(&tool.store_args)
        .args(["--as", "head", "search"])
        .env_remove("KEYWARD_SITE");
    assert_eq!(cmd.output().unwrap().status.code(), Some(64));
    // No password and no terminal: a clear error, not a hang.
    let mut cmd = clean_command();
    cmd.args(&tool.store_args)
        .args(["--site", "northfield", "--as", "head", "search"])
        .env_remove("KEYWARD_ADMIN_PASSWORD")
        .stdin(std::process::Stdio::null());
    let out = Run::from(cmd.output().unwrap());
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("KEYWARD_ADMIN_PASSWORD"),
        "{}",
        out.stderr
    );
}

/// An administrator with an authenticator: the tool asks for the code (here from
/// `KEYWARD_TOTP`) and refuses without the right one.
#[test]
fn an_acting_administrator_with_totp_gives_a_code() {
    use std::sync::Arc;

    use keyward::totp::{self, TotpConfig, TotpSealer};
    use keyward::{Keyward, ManualClock, SqliteStore};
    use time::OffsetDateTime;

    let tool = Tool::sqlite_with_admin();
    // Enroll through the library on the same file, a minute and a half in the past, so the
    // code of the present moment is a newer step than the one the enrollment used.
    let store = SqliteStore::open(tool.path("keyward.db")).unwrap();
    let then = OffsetDateTime::now_utc() - time::Duration::seconds(90);
    let kw = Keyward::builder(Arc::new(store))
        .clock(Arc::new(ManualClock::new(then)))
        .totp_sealer(TotpSealer::new("k1", &[7u8; 32]).unwrap())
        .build();
    let site = keyward::user::SiteId::new("northfield").unwrap();
    let head = kw
        .store()
        .find_user(&site, "head")
        .unwrap()
        .unwrap()
        .user
        .id;
    let pending = kw.enroll_totp(&head, None).unwrap();
    let secret = pending.enrollment().secret();
    let now_code = totp::code_at(&TotpConfig::DEFAULT, secret, OffsetDateTime::now_utc()).unwrap();
    let then_code = totp::code_at(&TotpConfig::DEFAULT, secret, then).unwrap();
    assert!(matches!(
        kw.confirm_enrollment(pending, &then_code).unwrap(),
        keyward::SignIn::AuthenticatorAdded(_)
    ));
    drop(kw);
    let wrong = if now_code.expose_secret() == "000000" {
        "111111"
    } else {
        "000000"
    };
    let out = tool.run(&[("KEYWARD_TOTP", wrong)], &["search"]).expect(20);
    assert!(out.stdout.contains("not accepted"), "{}", out.stdout);
    let out = tool
        .run(&[("KEYWARD_TOTP", now_code.expose_secret())], &["search"])
        .expect(0);
    assert_eq!(out.json()[0]["username"], "head");
    // Without a code and without a terminal: a clear error.
    let out = tool.admin(&["search"]).expect(1);
    assert!(out.stdout.contains("KEYWARD_TOTP"), "{}", out.stdout);
}

/// Ctrl-C during a bulk regeneration cancels before the commit: nothing changes.
#[cfg(unix)]
#[test]
fn ctrl_c_before_the_commit_cancels_cleanly() {
    let tool = Tool::sqlite_with_admin();
    let lines: String = (0..400)
        .map(|i| format!("{{\"username\": \"p{i}\", \"groups\": [\"Year 9\"]}}\n"))
        .collect();
    write(&tool.path("cohort.ndjson"), &lines);
    tool.admin(&["import", tool.path("cohort.ndjson").to_str().unwrap()])
        .expect(0);
    let csv = tool.path("y9.csv");
    let mut cmd = clean_command();
    cmd.args(&tool.store_args)
        .args([
            "--site",
            "northfield",
            "--as",
            "head",
            "--json",
            "bulk-regenerate",
        ])
        .args(["--group", "Year 9", "--yes", "--csv", csv.to_str().unwrap()])
        .env("KEYWARD_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().unwrap();
    // 400 argon2id hashes take seconds; interrupt well before the end.
    std::thread::sleep(std::time::Duration::from_millis(700));
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let run = Run::from(child.wait_with_output().unwrap());
    let run = run.expect(1);
    assert!(
        run.stdout.contains("cancelled") || run.stderr.contains("cancelled"),
        "{}",
        run.stderr
    );
    assert!(!csv.exists(), "no list is written for a cancelled run");
    let out = tool.admin(&["search", "--temporary"]).expect(0);
    assert!(out.json().is_empty(), "a cancelled run changed passwords");
    let out = tool.admin(&["audit", "--limit", "1000"]).expect(0);
    let cancelled = out
        .json()
        .into_iter()
        .filter(|e| e["action"] == "bulk_regenerated")
        .collect::<Vec<_>>();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["outcome"], "cancelled");
}

/// Fast legacy hashes wrapped at import (`--wrap-fast`) and by the job (`wrap-fast`): the
/// stored string is argon2id over the legacy digest, and the user signs in as before.
#[test]
fn fast_hashes_are_wrapped_at_import_and_by_the_job() {
    let tool = Tool::sqlite_with_admin();
    let md5 = r#""hashed_password": "5f4dcc3b5aa765d61d8327deb882cf99", "hashing_method": "md5""#;
    write(
        &tool.path("a.ndjson"),
        &format!("{{\"username\": \"ann\", {md5}}}\n"),
    );
    write(
        &tool.path("b.ndjson"),
        &format!("{{\"username\": \"ben\", {md5}}}\n"),
    );
    tool.admin(&["import", tool.path("a.ndjson").to_str().unwrap()])
        .expect(0);
    tool.admin(&[
        "import",
        "--wrap-fast",
        tool.path("b.ndjson").to_str().unwrap(),
    ])
    .expect(0);
    let out = tool.admin(&["wrap-fast"]).expect(0);
    assert_eq!(
        out.json()[0]["wrapped"],
        1,
        "ann's md5, ben's was wrapped at import"
    );
    let again = tool.admin(&["wrap-fast"]).expect(0);
    assert_eq!(again.json()[0]["wrapped"], 0, "a rerun finds nothing left");
    let store = keyward::SqliteStore::open(tool.path("keyward.db")).unwrap();
    let site = keyward::user::SiteId::new("northfield").unwrap();
    for name in ["ann", "ben"] {
        use keyward::UserStore as _;
        let record = store.find_user(&site, name).unwrap().unwrap();
        let stored = record.password.unwrap().hash;
        assert!(
            !stored.as_str().contains("5f4dcc3b"),
            "{name}: the md5 digest is still readable"
        );
    }
    drop(store);
    for name in ["ann", "ben"] {
        let out = tool.sign_in(name, "password").expect(0);
        assert_eq!(out.json()[0]["hash_upgraded"], true);
    }
}
