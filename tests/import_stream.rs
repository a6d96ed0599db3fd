//! Importing users in bulk: records streamed from NDJSON and CSV, refused records named by
//! line and field (never by value), batched transactions with one event per user, reruns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use keyward::admin::CancelToken;
use keyward::audit::{AuditAction, AuditQuery};
use keyward::import::{self, ImportOptions, ImportProgress, ImportedUser, RecordError};
use keyward::store::MAX_PAGE;
use keyward::user::{Role, User};
use keyward::{Password, SignIn, SqliteStore, UserStore};
use support::{Fx, fx, fx_with, site};

const MD5_HEX: &str = "5f4dcc3b5aa765d61d8327deb882cf99"; // md5("password")
/// A value that must never appear in an error: it stands for a password typed in a wrong
/// column.
const SECRET: &str = "hunter2-in-the-wrong-column";

/// Runs an import as the application, collecting refusals and progress reports.
fn run(
    fx: &Fx,
    records: impl IntoIterator<Item = Result<ImportedUser, RecordError>>,
    batch: usize,
) -> (ImportProgress, Vec<RecordError>, Vec<ImportProgress>) {
    let (mut refused, mut progress) = (Vec::new(), Vec::new());
    let mut on_refused = |e: &RecordError| refused.push(e.clone());
    let mut on_progress = |p: &ImportProgress| progress.push(*p);
    let options = ImportOptions::new()
        .batch_size(batch)
        .on_refused(&mut on_refused)
        .on_progress(&mut on_progress);
    let done = fx
        .kw
        .import_users(None, &fx.site, records, options)
        .unwrap();
    (done, refused, progress)
}

fn ndjson(text: &str) -> impl Iterator<Item = Result<ImportedUser, RecordError>> + '_ {
    import::ndjson_records(text.as_bytes())
}

fn created_events(fx: &Fx) -> Vec<keyward::audit::AuditEvent> {
    let query = AuditQuery::default()
        .site(fx.site.clone())
        .action(AuditAction::UserCreated)
        .page(0, MAX_PAGE);
    fx.audit(&query)
        .items
        .into_iter()
        .filter(|e| e.target.as_ref() != Some(&fx.admin.id))
        .collect()
}

#[test]
fn ndjson_imports_good_records_and_names_each_bad_one() {
    let fx = fx();
    let input = format!(
        r#"{{"username": "ada", "forename": "Ada", "surname": "Byron", "groups": ["Year 7", "Choir"], "email": "ada@example.org", "email_verified": true, "date_of_birth": "2013-05-17", "hashed_password": "{MD5_HEX}", "hashing_method": "md5"}}
{{"username": "bob", "email_verified": "{SECRET}"}}

{{"username": "cy", "date_of_birth": "{SECRET}"}}
{{"username": "di", "hashed_password": "$1${SECRET}", "hashing_method": "md5"}}
not json {SECRET}
{{"username": "ed", "{SECRET}": 1}}
{{"username": "fay", "role": "{SECRET}"}}
{{"forename": "{SECRET}"}}
{{"username": "gil", "surname": "Gill", "user_type": "staff", "role": "moderator", "sso_linked": "yes"}}
{{"username": "hal", "hashed_password": "{SECRET}"}}
"#
    );
    let (done, refused, _) = run(&fx, ndjson(&input), 500);
    let found: Vec<(u64, &str)> = refused.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(
        found,
        vec![
            (2, "email_verified"),
            (4, "date_of_birth"),
            (5, "hashing_method"),
            (6, "record"),
            (7, "(unknown field)"),
            (8, "role"),
            (9, "username"),
            (11, "hashed_password"),
        ]
    );
    for error in &refused {
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains("hunter2"), "a value was echoed: {shown}");
    }
    let counts = (done.read, done.created, done.existing, done.refused);
    assert_eq!(counts, (10, 2, 0, 8));
    assert!(!done.cancelled);
    let ada = fx.kw.store().find_user(&fx.site, "ADA").unwrap().unwrap();
    assert_eq!(ada.user.groups, ["Year 7", "Choir"]);
    assert!(ada.user.email_verified);
    assert_eq!(ada.user.date_of_birth.unwrap().to_string(), "2013-05-17");
    assert_eq!(ada.user.user_type, "user", "the default user type");
    let gil = fx.kw.store().find_user(&fx.site, "gil").unwrap().unwrap();
    assert_eq!(
        (gil.user.role, gil.user.sso_linked),
        (Role::Moderator, true)
    );
    assert!(gil.password.is_none(), "imported without a password");
    // The imported hash verifies and is upgraded at the first sign-in.
    let done = step!(
        fx.sign_in("ada", &Password::new("password")),
        SignIn::Authenticated
    );
    assert!(done.hash_upgraded());
    // One event per created user, naming what was imported.
    let events = created_events(&fx);
    let details: Vec<_> = events.iter().map(|e| e.details.as_deref()).collect();
    assert_eq!(
        details,
        [
            Some("imported salted-md5 hash"),
            Some("imported without a password")
        ]
    );
}

#[test]
fn csv_reads_groups_and_flags_and_reports_lines() {
    let fx = fx();
    let input = format!(
        "username,forename,surname,groups,email,email_verified,phone,phone_verified,date_of_birth,is_temporary_password,hashed_password,hashing_method,salt,salt_position\n\
         eve,Eve,Ng,Year 8; Orchestra ,eve@example.org,1,+441234,no,2012-01-31,true,{MD5_HEX},md5,,\n\
         \"fin\",Fin,\"O'Neill, Jr\",Year 8,,,,,2012-02-30,,,,,\n\
         gus,Gus,Lee,,,,,,,,{MD5_HEX},md5,{SECRET},\n\
         too,few\n"
    );
    let (done, refused, _) = run(&fx, import::csv_records(input.as_bytes()), 500);
    let found: Vec<(u64, &str)> = refused.iter().map(|e| (e.line, e.field.as_str())).collect();
    // fin: 30 February; gus: a salt without its position; the last row is short.
    assert_eq!(
        found,
        [(3, "date_of_birth"), (4, "salt_position"), (5, "record")]
    );
    assert!(refused.iter().all(|e| !e.to_string().contains("hunter2")));
    assert_eq!((done.created, done.refused), (1, 3));
    let eve = fx.kw.store().find_user(&fx.site, "eve").unwrap().unwrap();
    assert_eq!(eve.user.groups, ["Year 8", "Orchestra"]);
    assert!(eve.user.email_verified && !eve.user.phone_verified);
    // An imported temporary password: the first sign-in asks for a new one.
    let _ = step!(
        fx.sign_in("eve", &Password::new("password")),
        SignIn::PasswordChangeRequired
    );
}

#[test]
fn csv_header_naming_a_field_twice_or_an_unknown_one_refuses_the_file() {
    let fx = fx();
    for (header, field) in [
        ("username,username", "column 2"),
        ("username,hunter2", "column 2"),
        (" username ,forename,passwd", "column 3"),
    ] {
        let input = format!("{header}\nada,ada,ada\nbob,bob,bob\n");
        let (done, refused, _) = run(&fx, import::csv_records(input.as_bytes()), 500);
        assert_eq!(refused.len(), 1, "{header}");
        assert_eq!((refused[0].line, refused[0].field.as_str()), (1, field));
        assert_eq!(done.created, 0);
    }
}

#[test]
fn batches_commit_in_order_and_a_rerun_skips_what_is_there() {
    let fx = fx();
    let lines: String = (0..7)
        .map(|i| format!("{{\"username\": \"pupil-{i}\", \"groups\": \"Year 9\"}}\n"))
        .collect();
    let half: String = lines.lines().take(3).map(|l| format!("{l}\n")).collect();
    let (done, refused, progress) = run(&fx, ndjson(&half), 2);
    assert!(refused.is_empty());
    let first = done.created;
    assert_eq!(first, 3);
    assert_eq!(
        progress.len() as u64,
        first.div_ceil(2),
        "a report per batch"
    );
    assert!(progress.windows(2).all(|w| w[0].created < w[1].created));
    // The whole file again: what is there is skipped, the rest imported.
    let (again, _, _) = run(&fx, ndjson(&lines), 2);
    assert_eq!((again.created, again.existing), (7 - first, first));
    assert_eq!(
        created_events(&fx).len(),
        7,
        "one event per user, none for skips"
    );
    let (third, _, _) = run(&fx, ndjson(&lines), 3);
    assert_eq!((third.created, third.existing), (0, 7));
}

#[test]
fn a_username_twice_in_one_file_creates_one_user() {
    let fx = fx();
    let input = "{\"username\": \"zoe\"}\n{\"username\": \"ZOE\"}\n";
    let (done, _, _) = run(&fx, ndjson(input), 500);
    assert_eq!((done.created, done.existing), (1, 1));
}

#[test]
fn a_moderator_imports_users_but_cannot_grant_higher_roles() {
    // Moderators may not manage users by default; this deployment lets them.
    let all = keyward::permission::Permission::ALL;
    let permissions = keyward::permission::Permissions::default().with_role(Role::Moderator, all);
    let fx = fx_with(Arc::new(keyward::InMemoryStore::new()), |b| {
        b.permissions(permissions)
    });
    let moderator =
        User::new(site(), "mod", "Mo", "Derator", "staff", fx.kw.now()).with_role(Role::Moderator);
    let moderator = fx
        .kw
        .create_user(
            Some(&fx.admin.id),
            moderator,
            Some(Password::new("cobalt-heron-lamp-71")),
        )
        .unwrap();
    let input = "{\"username\": \"u1\"}\n{\"username\": \"boss\", \"role\": \"administrator\"}\n";
    let mut refused = Vec::new();
    let mut on_refused = |e: &RecordError| refused.push(e.clone());
    let options = ImportOptions::new().on_refused(&mut on_refused);
    let done = fx
        .kw
        .import_users(Some(&moderator.id), &fx.site, ndjson(input), options)
        .unwrap();
    assert_eq!((done.created, done.refused), (1, 1));
    assert_eq!((refused[0].line, refused[0].field.as_str()), (2, "role"));
    assert!(fx.kw.store().find_user(&fx.site, "boss").unwrap().is_none());
    let denied = AuditQuery::default()
        .site(fx.site.clone())
        .action(AuditAction::UserCreated);
    let events = fx.audit(&denied.page(0, MAX_PAGE)).items;
    assert!(
        events
            .iter()
            .any(|e| e.actor.as_ref() == Some(&moderator.id) && e.outcome.as_str() == "denied"),
        "the refused grant is audited"
    );
    // A plain user may not import at all: nothing is written.
    let pupil = fx.kw.store().find_user(&fx.site, "u1").unwrap().unwrap();
    let err = fx
        .kw
        .import_users(
            Some(&pupil.user.id),
            &fx.site,
            ndjson("{\"username\":\"x\"}\n"),
            ImportOptions::new(),
        )
        .unwrap_err();
    assert!(
        matches!(err, keyward::Error::PermissionDenied(_)),
        "{err:?}"
    );
    assert!(fx.kw.store().find_user(&fx.site, "x").unwrap().is_none());
}

#[test]
fn a_cancel_stops_before_the_next_batch() {
    let fx = fx();
    let lines: String = (0..10)
        .map(|i| format!("{{\"username\": \"c-{i}\"}}\n"))
        .collect();
    let token = CancelToken::new();
    let stopper = token.clone();
    let mut on_progress = |p: &ImportProgress| {
        if p.created >= 4 {
            stopper.cancel();
        }
    };
    let options = ImportOptions::new()
        .batch_size(2)
        .on_progress(&mut on_progress)
        .cancel_with(token);
    let done = fx
        .kw
        .import_users(None, &fx.site, ndjson(&lines), options)
        .unwrap();
    assert!(done.cancelled);
    assert_eq!(done.created, 4);
    assert_eq!(created_events(&fx).len(), 4);
}

#[test]
fn import_on_a_sqlite_file_writes_users_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn UserStore> = Arc::new(SqliteStore::open(dir.path().join("kw.db")).unwrap());
    let fx = fx_with(store, |b| b);
    let lines: String = (0..25)
        .map(|i| {
            format!(
                "{{\"username\": \"s-{i}\", \"groups\": [\"G{}\"]}}\n",
                i % 3
            )
        })
        .collect();
    let (done, _, _) = run(&fx, ndjson(&lines), 10);
    assert_eq!(done.created, 25);
    assert_eq!(created_events(&fx).len(), 25);
    let again = run(&fx, ndjson(&lines), 10).0;
    assert_eq!(again.existing, 25);
}

/// A reader whose every read fails (a directory opened as a file does this).
struct Broken;

impl std::io::Read for Broken {
    fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("broken"))
    }
}

#[test]
fn a_read_error_is_reported_once_and_ends_the_records() {
    let records: Vec<_> = import::ndjson_records(std::io::BufReader::new(Broken))
        .take(5)
        .collect();
    assert_eq!(records.len(), 1, "one error, then the end");
    assert_eq!(records[0].as_ref().unwrap_err().field, "record");
}

#[test]
fn a_byte_order_mark_is_allowed_and_an_endless_line_is_refused() {
    let fx = fx();
    let huge = format!(
        "{{\"username\": \"{}\"}}",
        "x".repeat(import::MAX_RECORD_BYTES)
    );
    let input = format!("\u{FEFF}{{\"username\": \"bom\"}}\n{huge}\n{{\"username\": \"after\"}}\n");
    let (done, refused, _) = run(&fx, ndjson(&input), 500);
    assert_eq!((done.created, done.refused), (2, 1));
    assert_eq!((refused[0].line, refused[0].field.as_str()), (2, "record"));
    assert!(fx.kw.store().find_user(&fx.site, "bom").unwrap().is_some());
    assert!(
        fx.kw
            .store()
            .find_user(&fx.site, "after")
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_username_that_looks_like_another_is_refused_by_line() {
    let fx = fx();
    fx.user("ada");
    // Cyrillic а; fullwidth ＡＤＡ folds to ada itself (already there).
    let input = "{\"username\": \"\u{430}da\"}\n{\"username\": \"\u{FF21}\u{FF24}\u{FF21}\"}\n{\"username\": \"a\u{200B}da\"}\n";
    let (done, refused, _) = run(&fx, ndjson(input), 500);
    assert_eq!((done.created, done.existing, done.refused), (0, 1, 2));
    let found: Vec<(u64, &str)> = refused.iter().map(|e| (e.line, e.field.as_str())).collect();
    assert_eq!(found, [(3, "username"), (1, "username")]);
}

#[test]
fn debug_of_a_record_shows_only_line_and_username() {
    let mut user = ImportedUser::new(7, "ada");
    user.forename = SECRET.to_owned();
    let shown = format!("{user:?}");
    assert!(
        shown.contains("ada") && !shown.contains("hunter2"),
        "{shown}"
    );
}

#[test]
fn usernames_with_invisible_or_direction_characters_are_refused() {
    let make = |name: &str| User::new(site(), name, "F", "S", "student", support::T0);
    for name in [
        "a\u{200B}da", // zero-width space
        "a\u{00AD}da", // soft hyphen
        "ad\u{200D}a", // zero-width joiner
        "\u{202E}ada", // right-to-left override
        "ada\u{2066}", // left-to-right isolate
        "ada\u{200F}", // right-to-left mark
        "ada\u{FE0F}", // variation selector
        "ada\u{FFFF}", // non-character
    ] {
        let err = make(name)
            .validate()
            .expect_err(&format!("{:?} accepted", name.escape_unicode().to_string()));
        assert_eq!(err.field, "username", "{name:?}");
    }
    for name in [
        "ada",
        "josé",
        "jose\u{301}",
        "ΣΑΣ",
        "Müller-Lüdenscheidt",
        "李小龍",
        "o'neill",
    ] {
        make(name)
            .validate()
            .unwrap_or_else(|e| panic!("{name:?}: {e}"));
    }
}
