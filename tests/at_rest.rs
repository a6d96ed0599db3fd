//! No plaintext secret at rest: known passwords, PINs, temporary passwords, reset tokens,
//! device codes and TOTP secrets are written through the library into a SQLite file, then
//! the file's raw bytes (database and write-ahead log) are searched for them.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use keyward::hash::Hasher;
use keyward::user::User;
use keyward::{Password, Pin, SignIn, SqliteStore};
use support::*;

/// Every stored value that could hold a secret, read back through the store, without the
/// 32-hex-digit identifiers. Short numeric secrets (a 6-digit PIN, an 8-digit code) occur by
/// chance inside hex identifiers and binary integers, so they are looked for here rather than
/// in the raw bytes.
fn stored_values(path: &std::path::Path) -> Vec<String> {
    let store = SqliteStore::open(path).unwrap();
    let mut values = Vec::new();
    let query = keyward::store::UserQuery::new(site(), T0).page(0, 1000);
    for r in keyward::UserStore::search_users(&store, &query)
        .unwrap()
        .items
    {
        let hashes = [
            &r.password.as_ref().map(|p| p.hash.clone()),
            &r.pin.as_ref().map(|p| p.hash.clone()),
        ];
        values.extend(hashes.into_iter().flatten().map(|h| h.as_str().to_owned()));
        let codes = [&r.totp.device_code, &r.reset_token];
        values.extend(
            codes
                .into_iter()
                .flatten()
                .map(|c| c.hash.as_str().to_owned()),
        );
        let secrets = [&r.totp.secret, &r.totp.pending_secret];
        values.extend(secrets.into_iter().flatten().map(|s| s.as_str().to_owned()));
        let u = r.user;
        values.extend([u.username, u.forename, u.surname, u.user_type]);
        values.extend(u.email.into_iter().chain(u.phone).chain(u.groups));
    }
    let audit = keyward::audit::AuditQuery::default().page(0, 1000);
    for e in keyward::UserStore::query_audit(&store, &audit)
        .unwrap()
        .items
    {
        values.extend(e.reason.into_iter().chain(e.details));
    }
    values.retain(|v| !(v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit())));
    values
}

#[test]
fn no_secret_is_stored_in_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.db");
    let f = fx_on(
        Arc::new(SqliteStore::open(&path).unwrap()),
        Hasher::for_tests(),
    );
    let mut plain: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut short: Vec<(&str, String)> = Vec::new();

    // A password and a PIN.
    let sam = f.user("sam");
    plain.push(("password", USER_PASSWORD.as_bytes().to_vec()));
    f.kw.set_pin(&f.admin.id, &sam.id, Some(&Pin::new("730519")))
        .unwrap();
    short.push(("pin", "730519".into()));
    plain.push(("admin password", ADMIN_PASSWORD.as_bytes().to_vec()));

    // A temporary password (admin-managed, so it stays in place).
    let other =
        f.kw.create_user(
            None,
            User::new(f.site.clone(), "tia", "Tia", "Temp", "student", T0),
            None,
        )
        .unwrap();
    let temporary = f.admin_managed_for(&other.id);
    plain.push((
        "temporary password",
        temporary.expose_secret().as_bytes().to_vec(),
    ));

    // A password-reset token.
    f.kw.send_password_reset(&f.admin.id, &sam.id).unwrap();
    let token = f.reset_token_to("sam@example.org");
    plain.push((
        "reset token secret",
        token.split('.').nth(1).unwrap().as_bytes().to_vec(),
    ));

    // A TOTP secret (sealed), then a reset and a pending device code.
    let secret = enroll(&f.kw, &sam.id);
    plain.push(("TOTP secret (raw)", secret.clone()));
    plain.push((
        "TOTP secret (base32)",
        data_encoding::BASE32_NOPAD.encode(&secret).into_bytes(),
    ));
    let tia_pending = f.kw.enroll_totp(&other.id, None).unwrap();
    let tia_secret = tia_pending.enrollment().secret().expose_secret().to_vec();
    plain.push((
        "pending TOTP secret (base32)",
        data_encoding::BASE32_NOPAD.encode(&tia_secret).into_bytes(),
    ));
    f.kw.reset_totp(&f.admin.id, &sam.id).unwrap();
    let SignIn::DeviceAuthorizationRequired(_pending) =
        f.sign_in_with_pin("sam", &Password::new(USER_PASSWORD), "730519")
    else {
        panic!("expected device authorization");
    };
    let device_code = digits_in(&f.mail_to("sam@example.org"), 8);
    short.push(("device code", device_code));
    drop(f);

    let bytes = raw_bytes(dir.path());
    assert!(bytes.len() > 4096, "the database was written");
    for (what, secret) in &plain {
        assert!(
            !contains(&bytes, secret),
            "{what} found in plaintext in the SQLite files"
        );
    }
    let values = stored_values(&path);
    assert!(
        values.iter().any(|v| v.starts_with("$argon2id$")),
        "the values were read"
    );
    for (what, secret) in &short {
        assert!(
            !values.iter().any(|v| v.contains(secret.as_str())),
            "{what} found in a stored value"
        );
    }
}

/// The search above can fail: with plain storage opted into, the base32 TOTP secret is in the
/// file.
#[test]
fn the_search_finds_a_secret_that_is_stored_plain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let kw = builder(store).insecure_plain_totp_secrets().build();
    let user = kw
        .create_user(None, User::new(site(), "p", "P", "Lain", "staff", T0), None)
        .unwrap();
    let pending = kw.enroll_totp(&user.id, None).unwrap();
    let b32 = data_encoding::BASE32_NOPAD.encode(pending.enrollment().secret().expose_secret());
    drop(kw);
    assert!(contains(&raw_bytes(dir.path()), b32.as_bytes()));
}
