//! What the SQL backends share: the column layout of a [`UserRecord`], defensive parsing of
//! rows read back, the search query translated from [`UserQuery::matches`], and the bodies of
//! the atomic operations (run by each backend inside its own transaction).
//!
//! SQL is written with `?N` placeholders (SQLite's syntax); the PostgreSQL backend rewrites
//! them to `$N` with [`dollar_placeholders`].

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use time::{Date, OffsetDateTime};

use super::ops::Part;
use super::{
    BatchWritten, Creation, GroupQuery, GroupSummary, NewUser, OneTimeKind, StoreError,
    TemporaryBatch, UserQuery, UserRecord, UserSort, fold, skeleton, validate_limit,
};
use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditQuery};
use crate::lockout::{LockReason, LockState};
use crate::user::{
    BatchId, OneTimeCredential, PasswordCredential, PinCredential, Role, SiteId, StoredHash,
    StoredSecret, TemporaryInfo, TemporaryMode, TotpState, User, UserId, UserStatus,
};

/// A value bound to a statement. Nulls carry their type because PostgreSQL needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
}

impl Val {
    fn text(s: &str) -> Self {
        Self::Text(Some(s.to_owned()))
    }

    fn opt_text(s: Option<&str>) -> Self {
        Self::Text(s.map(str::to_owned))
    }
}

/// Reads typed columns out of one result row; every failure is [`StoreError::Corrupt`].
pub(crate) trait SqlRow {
    /// An integer column.
    fn int(&self, col: &'static str) -> Result<Option<i64>, StoreError>;
    /// A text column.
    fn text(&self, col: &'static str) -> Result<Option<String>, StoreError>;
    /// A boolean column.
    fn flag(&self, col: &'static str) -> Result<bool, StoreError>;
}

/// The columns of the `users` table, in the order of every `SELECT`.
pub(crate) const USER_COLUMNS: &[&str] = &[
    "id",
    "site",
    "username",
    "username_key",
    "email",
    "email_key",
    "email_verified",
    "phone",
    "phone_verified",
    "forename",
    "forename_key",
    "surname",
    "surname_key",
    "date_of_birth",
    "user_type",
    "role",
    "managed_sites",
    "status",
    "sso_linked",
    "created_ns",
    "last_sign_in_ns",
    "pw_hash",
    "pw_set_ns",
    "pw_tmp_mode",
    "pw_tmp_expires_ns",
    "pw_tmp_issued_by",
    "pw_tmp_batch",
    "pw_tmp_consumed_ns",
    "pw_tmp_escrow",
    "pin_hash",
    "pin_set_ns",
    "totp_secret",
    "totp_last_step",
    "totp_reset_pending",
    "totp_pending_secret",
    "dc_hash",
    "dc_issued_ns",
    "dc_expires_ns",
    "dc_failed_tries",
    "rt_hash",
    "rt_issued_ns",
    "rt_expires_ns",
    "rt_failed_tries",
    "pl_failed",
    "pl_in_flight",
    "pl_last_attempt_ns",
    "pl_last_failure_ns",
    "pl_locked_ns",
    "pl_lock_reason",
    "pl_locked_until_ns",
    "pl_temporary_locks",
    "pl_unlocked_by",
    "pl_unlocked_ns",
    "pl_epoch",
    "tl_failed",
    "tl_in_flight",
    "tl_last_attempt_ns",
    "tl_last_failure_ns",
    "tl_locked_ns",
    "tl_lock_reason",
    "tl_locked_until_ns",
    "tl_temporary_locks",
    "tl_unlocked_by",
    "tl_unlocked_ns",
    "tl_epoch",
    "totp_recovery",
    "cc_hash",
    "cc_issued_ns",
    "cc_expires_ns",
    "cc_failed_tries",
];

/// Where a column of [`USER_COLUMNS`] or [`AUDIT_NAMES`] stands in the statements that read
/// them in that order: the places to try before looking the name up. Looking a column up by
/// name compares it with every column name of the row (for SQLite, each fetched through the
/// C API), which for a record of 65 columns read by name is some 2,000 comparisons; a hint
/// checked against the row's own name for that place is one.
pub(crate) fn column_hints(col: &str) -> [Option<usize>; 2] {
    static PLACES: LazyLock<[HashMap<&'static str, usize>; 2]> = LazyLock::new(|| {
        let places =
            |cols: &[&'static str]| cols.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        [places(USER_COLUMNS), places(&AUDIT_NAMES)]
    });
    let [user, audit] = &*PLACES;
    [user.get(col).copied(), audit.get(col).copied()]
}

/// The columns of the `audit` table, in the order of every `SELECT`.
pub(crate) const AUDIT_COLUMNS: &str =
    "at_ns, actor, action, target, site, outcome, reason, details";

/// [`AUDIT_COLUMNS`] one by one, to pair with [`audit_values`].
pub(crate) const AUDIT_NAMES: [&str; 8] = [
    "at_ns", "actor", "action", "target", "site", "outcome", "reason", "details",
];

/// `INSERT INTO audit (...) VALUES (?1, ...)`, for [`audit_values`].
pub(crate) fn audit_insert_sql() -> String {
    format!("INSERT INTO audit ({AUDIT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
}

/// `USER_COLUMNS` joined for a `SELECT`.
pub(crate) fn user_select_list() -> String {
    USER_COLUMNS.join(", ")
}

/// A column list with its values.
pub(crate) type Cols = Vec<(&'static str, Val)>;

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Unix nanoseconds, the storage form of every timestamp (UTC, lossless).
///
/// # Errors
/// [`StoreError::InvalidQuery`] for instants outside the years 1677 to 2262, which 64 bits of
/// nanoseconds cannot hold.
pub(crate) fn ts(t: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| StoreError::InvalidQuery {
        reason: format!("timestamp {t} is outside the storable range (years 1677 to 2262)"),
    })
}

fn opt_ts(t: Option<OffsetDateTime>) -> Result<Val, StoreError> {
    Ok(Val::Int(t.map(ts).transpose()?))
}

/// A timestamp used as a query bound: clamped, since a bound outside the storable range
/// selects the same rows as the range's end.
pub(crate) fn ts_bound(t: OffsetDateTime) -> i64 {
    let n = t.unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

fn count(n: u32) -> Val {
    Val::Int(Some(i64::from(n)))
}

/// The profile columns (everything [`crate::UserStore::update_profile`] writes).
pub(crate) fn profile_cols(u: &User) -> Result<Cols, StoreError> {
    let sites: Vec<&str> = u.managed_sites.iter().map(SiteId::as_str).collect();
    Ok(vec![
        ("site", Val::text(u.site.as_str())),
        ("username", Val::text(&u.username)),
        ("username_key", Val::Text(Some(fold(&u.username)))),
        ("username_skeleton", Val::Text(Some(skeleton(&u.username)))),
        ("email", Val::opt_text(u.email.as_deref())),
        ("email_key", Val::Text(u.email.as_deref().map(fold))),
        ("email_verified", Val::Bool(u.email_verified)),
        ("phone", Val::opt_text(u.phone.as_deref())),
        ("phone_verified", Val::Bool(u.phone_verified)),
        ("forename", Val::text(&u.forename)),
        ("forename_key", Val::Text(Some(fold(&u.forename)))),
        ("surname", Val::text(&u.surname)),
        ("surname_key", Val::Text(Some(fold(&u.surname)))),
        (
            "date_of_birth",
            Val::Int(u.date_of_birth.map(|d| i64::from(d.to_julian_day()))),
        ),
        ("user_type", Val::text(&u.user_type)),
        ("role", Val::text(u.role.as_str())),
        ("managed_sites", Val::Text(Some(sites.join(",")))),
        ("status", Val::text(u.status.as_str())),
        ("sso_linked", Val::Bool(u.sso_linked)),
        ("created_ns", Val::Int(Some(ts(u.created_at)?))),
        ("last_sign_in_ns", opt_ts(u.last_sign_in_at)?),
    ])
}

/// The password columns.
pub(crate) fn password_cols(p: Option<&PasswordCredential>) -> Result<Cols, StoreError> {
    let t = p.and_then(|p| p.temporary.as_ref());
    Ok(vec![
        ("pw_hash", Val::opt_text(p.map(|p| p.hash.as_str()))),
        ("pw_set_ns", opt_ts(p.map(|p| p.set_at))?),
        ("pw_tmp_mode", Val::opt_text(t.map(|t| t.mode.as_str()))),
        ("pw_tmp_expires_ns", opt_ts(t.map(|t| t.expires_at))?),
        (
            "pw_tmp_issued_by",
            Val::opt_text(t.map(|t| t.issued_by.as_str())),
        ),
        (
            "pw_tmp_batch",
            Val::opt_text(t.and_then(|t| t.batch.as_ref()).map(BatchId::as_str)),
        ),
        ("pw_tmp_consumed_ns", opt_ts(t.and_then(|t| t.consumed_at))?),
        (
            "pw_tmp_escrow",
            Val::opt_text(t.and_then(|t| t.escrow.as_ref()).map(StoredSecret::as_str)),
        ),
    ])
}

/// The PIN columns.
pub(crate) fn pin_cols(p: Option<&PinCredential>) -> Result<Cols, StoreError> {
    Ok(vec![
        ("pin_hash", Val::opt_text(p.map(|p| p.hash.as_str()))),
        ("pin_set_ns", opt_ts(p.map(|p| p.set_at))?),
    ])
}

fn one_time_cols(
    names: [&'static str; 4],
    c: Option<&OneTimeCredential>,
) -> Result<Cols, StoreError> {
    let [hash, issued, expires, tries] = names;
    Ok(vec![
        (hash, Val::opt_text(c.map(|c| c.hash.as_str()))),
        (issued, opt_ts(c.map(|c| c.issued_at))?),
        (expires, opt_ts(c.map(|c| c.expires_at))?),
        (tries, Val::Int(c.map(|c| i64::from(c.failed_tries)))),
    ])
}

const DEVICE_CODE: [&str; 4] = [
    "dc_hash",
    "dc_issued_ns",
    "dc_expires_ns",
    "dc_failed_tries",
];
const RESET_TOKEN: [&str; 4] = [
    "rt_hash",
    "rt_issued_ns",
    "rt_expires_ns",
    "rt_failed_tries",
];
const CONTACT_CODE: [&str; 4] = [
    "cc_hash",
    "cc_issued_ns",
    "cc_expires_ns",
    "cc_failed_tries",
];

/// The recovery-code digests as one column: space-separated (a digest holds no space), `NULL`
/// for none.
fn recovery_text(digests: &[StoredHash]) -> Val {
    let joined = digests
        .iter()
        .map(StoredHash::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    Val::opt_text((!joined.is_empty()).then_some(joined.as_str()))
}

/// Reads the recovery-code column back: each entry must be a digest as keyward writes it
/// ([`recovery_codes::is_digest`](crate::totp::recovery_codes::is_digest)), anything else is
/// a corrupt row.
fn parse_recovery(text: Option<String>) -> Result<Vec<StoredHash>, StoreError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    // Never more than a set holds: a planted column of a million digests is corrupt, not a
    // million comparisons on every sign-in.
    if text.split(' ').count() > crate::totp::recovery_codes::MAX_CODES {
        return Err(StoreError::corrupt(
            "totp_recovery",
            "more digests than a set holds",
        ));
    }
    text.split(' ')
        .map(|digest| {
            if crate::totp::recovery_codes::is_digest(digest) {
                Ok(StoredHash::new(digest))
            } else {
                Err(StoreError::corrupt(
                    "totp_recovery",
                    "not a recovery-code digest",
                ))
            }
        })
        .collect()
}

/// The columns of one single-use code.
pub(crate) fn one_time_kind_cols(
    kind: OneTimeKind,
    c: Option<&OneTimeCredential>,
) -> Result<Cols, StoreError> {
    match kind {
        OneTimeKind::ResetToken => one_time_cols(RESET_TOKEN, c),
        OneTimeKind::DeviceCode => one_time_cols(DEVICE_CODE, c),
        OneTimeKind::ContactCode => one_time_cols(CONTACT_CODE, c),
    }
}

/// The TOTP columns (including the device code).
pub(crate) fn totp_cols(t: &TotpState) -> Result<Cols, StoreError> {
    let last_step = t
        .last_step
        .map(|s| {
            i64::try_from(s).map_err(|_| StoreError::InvalidQuery {
                reason: format!("TOTP step {s} is too large to store"),
            })
        })
        .transpose()?;
    let mut cols = vec![
        (
            "totp_secret",
            Val::opt_text(t.secret.as_ref().map(StoredSecret::as_str)),
        ),
        ("totp_last_step", Val::Int(last_step)),
        ("totp_reset_pending", Val::Bool(t.reset_pending)),
        (
            "totp_pending_secret",
            Val::opt_text(t.pending_secret.as_ref().map(StoredSecret::as_str)),
        ),
    ];
    cols.extend(one_time_cols(DEVICE_CODE, t.device_code.as_ref())?);
    cols.push(("totp_recovery", recovery_text(&t.recovery_codes)));
    Ok(cols)
}

/// The columns of one lock counter, named after the [`LockState`] fields they hold.
struct LockColumns {
    failed_attempts: &'static str,
    in_flight: &'static str,
    last_attempt_at: &'static str,
    last_failure_at: &'static str,
    locked_at: &'static str,
    lock_reason: &'static str,
    locked_until: &'static str,
    temporary_locks: &'static str,
    unlocked_by: &'static str,
    unlocked_at: &'static str,
    epoch: &'static str,
}

const PASSWORD_LOCK: LockColumns = LockColumns {
    failed_attempts: "pl_failed",
    in_flight: "pl_in_flight",
    last_attempt_at: "pl_last_attempt_ns",
    last_failure_at: "pl_last_failure_ns",
    locked_at: "pl_locked_ns",
    lock_reason: "pl_lock_reason",
    locked_until: "pl_locked_until_ns",
    temporary_locks: "pl_temporary_locks",
    unlocked_by: "pl_unlocked_by",
    unlocked_at: "pl_unlocked_ns",
    epoch: "pl_epoch",
};

const TOTP_LOCK: LockColumns = LockColumns {
    failed_attempts: "tl_failed",
    in_flight: "tl_in_flight",
    last_attempt_at: "tl_last_attempt_ns",
    last_failure_at: "tl_last_failure_ns",
    locked_at: "tl_locked_ns",
    lock_reason: "tl_lock_reason",
    locked_until: "tl_locked_until_ns",
    temporary_locks: "tl_temporary_locks",
    unlocked_by: "tl_unlocked_by",
    unlocked_at: "tl_unlocked_ns",
    epoch: "tl_epoch",
};

fn lock_cols(c: &LockColumns, s: &LockState) -> Result<Cols, StoreError> {
    Ok(vec![
        (c.failed_attempts, count(s.failed_attempts)),
        (c.in_flight, count(s.in_flight)),
        (c.last_attempt_at, opt_ts(s.last_attempt_at)?),
        (c.last_failure_at, opt_ts(s.last_failure_at)?),
        (c.locked_at, opt_ts(s.locked_at)?),
        (
            c.lock_reason,
            Val::opt_text(s.lock_reason.map(LockReason::as_str)),
        ),
        (c.locked_until, opt_ts(s.locked_until)?),
        (c.temporary_locks, count(s.temporary_locks)),
        (
            c.unlocked_by,
            Val::opt_text(s.unlocked_by.as_ref().map(UserId::as_str)),
        ),
        (c.unlocked_at, opt_ts(s.unlocked_at)?),
        (c.epoch, count(s.epoch)),
    ])
}

/// Everything but the profile: what the atomic operations write back.
pub(crate) fn credential_cols(r: &UserRecord) -> Result<Cols, StoreError> {
    let mut cols = password_cols(r.password.as_ref())?;
    cols.extend(pin_cols(r.pin.as_ref())?);
    cols.extend(totp_cols(&r.totp)?);
    cols.extend(one_time_cols(RESET_TOKEN, r.reset_token.as_ref())?);
    cols.extend(one_time_cols(CONTACT_CODE, r.contact_code.as_ref())?);
    cols.extend(lock_cols(&PASSWORD_LOCK, &r.password_lock)?);
    cols.extend(lock_cols(&TOTP_LOCK, &r.totp_lock)?);
    // The one profile column an atomic step may write: a sign-in records its time together
    // with its settle and its event.
    cols.push(("last_sign_in_ns", opt_ts(r.user.last_sign_in_at)?));
    Ok(cols)
}

/// Every column of a new row.
pub(crate) fn all_cols(r: &UserRecord) -> Result<Cols, StoreError> {
    let mut cols = vec![("id", Val::text(r.user.id.as_str()))];
    cols.extend(profile_cols(&r.user)?);
    // The profile columns already hold the last sign-in time.
    let credentials = credential_cols(r)?.into_iter();
    cols.extend(credentials.filter(|(name, _)| *name != "last_sign_in_ns"));
    Ok(cols)
}

/// `INSERT INTO users (...) VALUES (?1, ...)`.
pub(crate) fn insert_sql(cols: &Cols) -> String {
    let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO users ({}) VALUES ({})",
        names.join(", "),
        marks.join(", ")
    )
}

/// `UPDATE users SET a = ?1, ... WHERE id = ?N`; the id is pushed as the last value.
pub(crate) fn update_sql(cols: &Cols) -> String {
    format!("{} WHERE id = ?{}", update_set_sql(cols), cols.len() + 1)
}

/// `UPDATE users SET a = ?1, ...` without its condition.
pub(crate) fn update_set_sql(cols: &Cols) -> String {
    let sets: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (n, _))| format!("{n} = ?{}", i + 1))
        .collect();
    format!("UPDATE users SET {}", sets.join(", "))
}

/// The values of `cols` followed by the user id (for [`update_sql`]).
pub(crate) fn update_values(cols: Cols, id: &UserId) -> Vec<Val> {
    let mut vals: Vec<Val> = cols.into_iter().map(|(_, v)| v).collect();
    vals.push(Val::text(id.as_str()));
    vals
}

/// Rows of the `user_groups` table for a user: `(position, name, name_key)`.
pub(crate) fn group_rows(u: &User) -> Vec<(i64, &str, String)> {
    u.groups
        .iter()
        .enumerate()
        .map(|(i, g)| (i64::try_from(i).unwrap_or(i64::MAX), g.as_str(), fold(g)))
        .collect()
}

/// The audit columns of an event, in [`AUDIT_COLUMNS`] order.
pub(crate) fn audit_values(e: &AuditEvent) -> Result<Vec<Val>, StoreError> {
    Ok(vec![
        Val::Int(Some(ts(e.at)?)),
        Val::opt_text(e.actor.as_ref().map(UserId::as_str)),
        Val::text(e.action.as_str()),
        Val::opt_text(e.target.as_ref().map(UserId::as_str)),
        Val::text(e.site.as_str()),
        Val::text(e.outcome.as_str()),
        Val::opt_text(e.reason.as_deref()),
        Val::opt_text(e.details.as_deref()),
    ])
}

// ---------------------------------------------------------------------------------------------
// Decoding: every value read back is checked.
// ---------------------------------------------------------------------------------------------

fn need<T>(v: Option<T>, col: &'static str) -> Result<T, StoreError> {
    v.ok_or_else(|| StoreError::corrupt(col, "missing value"))
}

fn req_text(row: &dyn SqlRow, col: &'static str) -> Result<String, StoreError> {
    need(row.text(col)?, col)
}

fn parse_time(n: i64, col: &'static str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(n))
        .map_err(|_| StoreError::corrupt(col, "timestamp out of range"))
}

fn opt_time(row: &dyn SqlRow, col: &'static str) -> Result<Option<OffsetDateTime>, StoreError> {
    row.int(col)?.map(|n| parse_time(n, col)).transpose()
}

fn req_time(row: &dyn SqlRow, col: &'static str) -> Result<OffsetDateTime, StoreError> {
    need(opt_time(row, col)?, col)
}

fn parse_count(n: i64, col: &'static str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::corrupt(col, "counter out of range"))
}

fn req_count(row: &dyn SqlRow, col: &'static str) -> Result<u32, StoreError> {
    parse_count(need(row.int(col)?, col)?, col)
}

fn user_id(text: &str, col: &'static str) -> Result<UserId, StoreError> {
    UserId::parse(text).map_err(|_| StoreError::corrupt(col, "invalid user id"))
}

fn site_id(text: &str, col: &'static str) -> Result<SiteId, StoreError> {
    SiteId::new(text).map_err(|_| StoreError::corrupt(col, "invalid site id"))
}

fn opt_user_id(row: &dyn SqlRow, col: &'static str) -> Result<Option<UserId>, StoreError> {
    row.text(col)?.map(|t| user_id(&t, col)).transpose()
}

fn enum_text<T>(
    row: &dyn SqlRow,
    col: &'static str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>, StoreError> {
    row.text(col)?
        .map(|t| parse(&t).ok_or_else(|| StoreError::corrupt(col, "unknown value")))
        .transpose()
}

fn parse_user(row: &dyn SqlRow, groups: Vec<String>) -> Result<User, StoreError> {
    let managed = req_text(row, "managed_sites")?;
    let managed_sites = if managed.is_empty() {
        Vec::new()
    } else {
        managed
            .split(',')
            .map(|s| site_id(s, "managed_sites"))
            .collect::<Result<_, _>>()?
    };
    let date_of_birth = row
        .int("date_of_birth")?
        .map(|d| {
            i32::try_from(d)
                .ok()
                .and_then(|d| Date::from_julian_day(d).ok())
                .ok_or_else(|| StoreError::corrupt("date_of_birth", "date out of range"))
        })
        .transpose()?;
    Ok(User {
        id: user_id(&req_text(row, "id")?, "id")?,
        site: site_id(&req_text(row, "site")?, "site")?,
        username: req_text(row, "username")?,
        email: row.text("email")?,
        email_verified: row.flag("email_verified")?,
        phone: row.text("phone")?,
        phone_verified: row.flag("phone_verified")?,
        forename: req_text(row, "forename")?,
        surname: req_text(row, "surname")?,
        date_of_birth,
        user_type: req_text(row, "user_type")?,
        groups,
        role: need(enum_text(row, "role", Role::parse)?, "role")?,
        managed_sites,
        status: need(enum_text(row, "status", UserStatus::parse)?, "status")?,
        sso_linked: row.flag("sso_linked")?,
        created_at: req_time(row, "created_ns")?,
        last_sign_in_at: opt_time(row, "last_sign_in_ns")?,
    })
}

fn parse_password(row: &dyn SqlRow) -> Result<Option<PasswordCredential>, StoreError> {
    let Some(hash) = row.text("pw_hash")? else {
        return Ok(None);
    };
    let temporary = match enum_text(row, "pw_tmp_mode", TemporaryMode::parse)? {
        None => None,
        Some(mode) => Some(TemporaryInfo {
            mode,
            expires_at: req_time(row, "pw_tmp_expires_ns")?,
            issued_by: user_id(&req_text(row, "pw_tmp_issued_by")?, "pw_tmp_issued_by")?,
            batch: row
                .text("pw_tmp_batch")?
                .map(|b| {
                    BatchId::parse(&b)
                        .map_err(|_| StoreError::corrupt("pw_tmp_batch", "invalid batch id"))
                })
                .transpose()?,
            consumed_at: opt_time(row, "pw_tmp_consumed_ns")?,
            escrow: row.text("pw_tmp_escrow")?.map(StoredSecret::new),
        }),
    };
    Ok(Some(PasswordCredential {
        hash: StoredHash::new(hash),
        set_at: req_time(row, "pw_set_ns")?,
        temporary,
    }))
}

fn parse_one_time(
    row: &dyn SqlRow,
    names: [&'static str; 4],
) -> Result<Option<OneTimeCredential>, StoreError> {
    let [hash, issued, expires, tries] = names;
    let Some(h) = row.text(hash)? else {
        return Ok(None);
    };
    Ok(Some(OneTimeCredential {
        hash: StoredHash::new(h),
        issued_at: req_time(row, issued)?,
        expires_at: req_time(row, expires)?,
        failed_tries: req_count(row, tries)?,
    }))
}

fn parse_lock(row: &dyn SqlRow, c: &LockColumns) -> Result<LockState, StoreError> {
    Ok(LockState {
        failed_attempts: req_count(row, c.failed_attempts)?,
        in_flight: req_count(row, c.in_flight)?,
        last_attempt_at: opt_time(row, c.last_attempt_at)?,
        last_failure_at: opt_time(row, c.last_failure_at)?,
        locked_at: opt_time(row, c.locked_at)?,
        lock_reason: enum_text(row, c.lock_reason, LockReason::parse)?,
        locked_until: opt_time(row, c.locked_until)?,
        temporary_locks: req_count(row, c.temporary_locks)?,
        unlocked_by: opt_user_id(row, c.unlocked_by)?,
        unlocked_at: opt_time(row, c.unlocked_at)?,
        epoch: req_count(row, c.epoch)?,
    })
}

/// Parses a `users` row (selected with [`USER_COLUMNS`]) and the user's groups.
pub(crate) fn parse_record(
    row: &dyn SqlRow,
    groups: Vec<String>,
) -> Result<UserRecord, StoreError> {
    let last_step = row
        .int("totp_last_step")?
        .map(|s| {
            u64::try_from(s).map_err(|_| StoreError::corrupt("totp_last_step", "negative step"))
        })
        .transpose()?;
    Ok(UserRecord {
        user: parse_user(row, groups)?,
        password: parse_password(row)?,
        pin: match row.text("pin_hash")? {
            None => None,
            Some(h) => Some(PinCredential {
                hash: StoredHash::new(h),
                set_at: req_time(row, "pin_set_ns")?,
            }),
        },
        totp: TotpState {
            secret: row.text("totp_secret")?.map(StoredSecret::new),
            last_step,
            reset_pending: row.flag("totp_reset_pending")?,
            pending_secret: row.text("totp_pending_secret")?.map(StoredSecret::new),
            device_code: parse_one_time(row, DEVICE_CODE)?,
            recovery_codes: parse_recovery(row.text("totp_recovery")?)?,
        },
        reset_token: parse_one_time(row, RESET_TOKEN)?,
        contact_code: parse_one_time(row, CONTACT_CODE)?,
        password_lock: parse_lock(row, &PASSWORD_LOCK)?,
        totp_lock: parse_lock(row, &TOTP_LOCK)?,
    })
}

/// Parses an `audit` row selected with [`AUDIT_COLUMNS`].
pub(crate) fn parse_audit(row: &dyn SqlRow) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        at: req_time(row, "at_ns")?,
        actor: opt_user_id(row, "actor")?,
        action: need(enum_text(row, "action", AuditAction::parse)?, "action")?,
        target: opt_user_id(row, "target")?,
        site: site_id(&req_text(row, "site")?, "site")?,
        outcome: need(enum_text(row, "outcome", AuditOutcome::parse)?, "outcome")?,
        reason: row.text("reason")?,
        details: row.text("details")?,
    })
}

/// Parses a group-listing row count.
pub(crate) fn parse_total(n: i64, col: &'static str) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::corrupt(col, "negative count"))
}

// ---------------------------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------------------------

/// A `WHERE` clause under construction with its bound values.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    /// ` AND `-joined conditions.
    pub(crate) conds: Vec<String>,
    /// Values for `?1`, `?2`, ...
    pub(crate) vals: Vec<Val>,
    /// A bound text held a NUL character, which no stored value holds (profiles are
    /// validated): the query matches nothing, on every backend alike (PostgreSQL refuses NUL
    /// in text outright).
    unmatchable: bool,
}

impl Filter {
    /// Binds a value and returns its placeholder.
    pub(crate) fn bind(&mut self, v: Val) -> String {
        let v = match v {
            Val::Text(Some(t)) if t.contains('\0') => {
                self.unmatchable = true;
                Val::Text(Some(String::new()))
            }
            other => other,
        };
        self.vals.push(v);
        format!("?{}", self.vals.len())
    }

    /// Binds every id and returns the placeholders, comma-separated (for `IN (...)`).
    pub(crate) fn id_list(&mut self, ids: &[UserId]) -> String {
        let marks: Vec<String> = ids
            .iter()
            .map(|id| self.bind(Val::text(id.as_str())))
            .collect();
        marks.join(", ")
    }

    /// `WHERE ...` (or nothing).
    pub(crate) fn clause(&self) -> String {
        let mut conds = self.conds.clone();
        if self.unmatchable {
            conds.push("1 = 0".to_owned());
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }

    /// Conditions on `column` selecting exactly the strings that start with `prefix`, as a
    /// half-open range `[prefix, successor)` so an index on `column` serves it. No escaping is
    /// needed: `%` and `_` are plain characters in a range. The order is bytewise on UTF-8,
    /// which is code-point order, which is Rust's `String` order.
    pub(crate) fn prefix(&mut self, column: &str, prefix: &str) -> String {
        let lo = self.bind(Val::text(prefix));
        match successor(prefix) {
            Some(hi) => {
                let hi = self.bind(Val::Text(Some(hi)));
                format!("({column} >= {lo} AND {column} < {hi})")
            }
            None => format!("{column} >= {lo}"),
        }
    }
}

/// The least string greater than every string starting with `prefix`, if there is one.
fn successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// The lookup key of a typed username, or `None` when it cannot name any user (it holds a NUL
/// character, which no stored username holds): the SQL backends answer "no such user" without
/// asking the database, as the in-memory store does.
pub(crate) fn username_lookup(username: &str) -> Option<String> {
    (!username.contains('\0')).then(|| fold(username))
}

/// The `WHERE` clause of a user search (the SQL form of [`UserQuery::matches`]).
pub(crate) fn user_filter(q: &UserQuery) -> Filter {
    let mut f = Filter::default();
    let site = f.bind(Val::text(q.site.as_str()));
    if let Some(text) = q.text_key() {
        // The site is repeated inside every alternative so that each one is a range on one
        // `(site, *_key)` index: SQLite then unions four index ranges ("multi-index OR") and
        // PostgreSQL ORs four bitmap scans, instead of scanning the whole site.
        let parts: Vec<String> = ["forename_key", "surname_key", "username_key", "email_key"]
            .iter()
            .map(|c| format!("(site = {site} AND {})", f.prefix(c, &text)))
            .collect();
        f.conds.push(format!("({})", parts.join(" OR ")));
    } else {
        f.conds.push(format!("site = {site}"));
    }
    if let Some(group) = &q.group {
        let g = f.bind(Val::text(group));
        f.conds.push(format!(
            "EXISTS (SELECT 1 FROM user_groups g WHERE g.user_id = users.id AND g.name = {g})"
        ));
    }
    if let Some(t) = &q.user_type {
        let t = f.bind(Val::text(t));
        f.conds.push(format!("user_type = {t}"));
    }
    if let Some(s) = q.status {
        let s = f.bind(Val::text(s.as_str()));
        f.conds.push(format!("status = {s}"));
    }
    if q.locked_only {
        let now = f.bind(Val::Int(Some(ts_bound(q.as_of))));
        f.conds.push(format!(
            "((pl_locked_ns IS NOT NULL AND (pl_locked_until_ns IS NULL OR pl_locked_until_ns > {now})) \
             OR (tl_locked_ns IS NOT NULL AND (tl_locked_until_ns IS NULL OR tl_locked_until_ns > {now})))"
        ));
    }
    if let Some(s) = q.sso_linked {
        let s = f.bind(Val::Bool(s));
        f.conds.push(format!("sso_linked = {s}"));
    }
    if !q.excluded.is_empty() {
        let ids = f.id_list(&q.excluded);
        f.conds.push(format!("id NOT IN ({ids})"));
    }
    if let Some(r) = q.role {
        let r = f.bind(Val::text(r.as_str()));
        f.conds.push(format!("role = {r}"));
    }
    if q.unclaimed_only {
        // `UserRecord::is_unclaimed`: no password, or a temporary one.
        f.conds
            .push("(pw_hash IS NULL OR pw_tmp_mode IS NOT NULL)".to_owned());
    }
    if q.temporary_password_only {
        f.conds.push(
            "(pw_hash IS NOT NULL AND pw_tmp_mode IS NOT NULL AND pw_tmp_consumed_ns IS NULL)"
                .to_owned(),
        );
    }
    f
}

/// `ORDER BY ...` of a user search, matching [`super::compare_for_sort`].
pub(crate) fn user_order(q: &UserQuery) -> String {
    let cols: &[&str] = match q.sort {
        UserSort::Surname => &["surname_key", "forename_key", "username_key", "id"],
        UserSort::Forename => &["forename_key", "surname_key", "username_key", "id"],
        UserSort::Username => &["username_key", "id"],
        UserSort::Created => &["created_ns", "id"],
    };
    let dir = if q.descending { " DESC" } else { "" };
    let mut out = String::from(" ORDER BY ");
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{c}{dir}");
    }
    out
}

/// A paged query: one statement counting every match (one column, `count`) and one selecting
/// a page.
#[derive(Debug)]
pub(crate) struct Paged {
    /// `SELECT <count> AS count FROM ...`.
    pub(crate) count: String,
    /// The values of `count`.
    pub(crate) count_vals: Vec<Val>,
    /// `SELECT ... LIMIT ... OFFSET ...`.
    pub(crate) select: String,
    /// The values of `select`.
    pub(crate) vals: Vec<Val>,
}

impl Paged {
    fn new(
        table: &str,
        counted: &str,
        columns: &str,
        mut f: Filter,
        tail: &str,
        q: (u64, u32),
    ) -> Self {
        let clause = f.clause();
        let count = format!("SELECT {counted} AS count FROM {table}{clause}");
        let count_vals = f.vals.clone();
        let page = paging(&mut f, q.0, q.1);
        let select = format!("SELECT {columns} FROM {table}{clause}{tail}{page}");
        Self {
            count,
            count_vals,
            select,
            vals: f.vals,
        }
    }
}

/// A user search selecting [`USER_COLUMNS`] and then `extra_columns` (`", a, b"` or `""`).
pub(crate) fn users_page(q: &UserQuery, extra_columns: &str) -> Result<Paged, StoreError> {
    q.validate()?;
    let columns = format!("{}{extra_columns}", user_select_list());
    let order = user_order(q);
    Ok(Paged::new(
        "users",
        "COUNT(*)",
        &columns,
        user_filter(q),
        &order,
        (q.offset, q.limit),
    ))
}

/// A group listing selecting `name`, `members` and then `extra_columns` (`", a, b"` or `""`;
/// parse rows with [`parse_group`]).
pub(crate) fn groups_page(q: &GroupQuery, extra_columns: &str) -> Result<Paged, StoreError> {
    q.validate()?;
    let columns = format!("name, COUNT(DISTINCT user_id) AS members{extra_columns}");
    let tail = " GROUP BY name ORDER BY name";
    let (f, page) = (group_filter(q), (q.offset, q.limit));
    Ok(Paged::new(
        "user_groups",
        "COUNT(DISTINCT name)",
        &columns,
        f,
        tail,
        page,
    ))
}

/// An audit query selecting [`AUDIT_COLUMNS`] and then `extra_columns`, oldest first.
pub(crate) fn audit_page(q: &AuditQuery, extra_columns: &str) -> Result<Paged, StoreError> {
    validate_limit(q.limit)?;
    let columns = format!("{AUDIT_COLUMNS}{extra_columns}");
    let tail = " ORDER BY at_ns, seq";
    let (f, page) = (audit_filter(q), (q.offset, q.limit));
    Ok(Paged::new("audit", "COUNT(*)", &columns, f, tail, page))
}

/// Parses a row of [`groups_page`].
pub(crate) fn parse_group(row: &dyn SqlRow) -> Result<GroupSummary, StoreError> {
    let name = req_text(row, "name")?;
    let members = need(row.int("members")?, "members")?;
    Ok(GroupSummary::new(name, parse_total(members, "members")?))
}

/// Parses the row of a [`Paged::count`] statement.
pub(crate) fn parse_count_row(row: &dyn SqlRow) -> Result<u64, StoreError> {
    parse_total(need(row.int("count")?, "count")?, "count")
}

/// `LIMIT ?a OFFSET ?b`.
pub(crate) fn paging(f: &mut Filter, offset: u64, limit: u32) -> String {
    let l = f.bind(Val::Int(Some(i64::from(limit))));
    let o = f.bind(Val::Int(Some(i64::try_from(offset).unwrap_or(i64::MAX))));
    format!(" LIMIT {l} OFFSET {o}")
}

/// The `WHERE` clause of a group listing.
pub(crate) fn group_filter(q: &GroupQuery) -> Filter {
    let mut f = Filter::default();
    let site = f.bind(Val::text(q.site.as_str()));
    f.conds.push(format!("site = {site}"));
    let prefix = q.text.as_deref().map(fold).unwrap_or_default();
    if !prefix.is_empty() {
        let cond = f.prefix("name_key", &prefix);
        f.conds.push(cond);
    }
    f
}

/// The `WHERE` clause of an audit query (the SQL form of [`AuditQuery::matches`]).
pub(crate) fn audit_filter(q: &AuditQuery) -> Filter {
    let mut f = Filter::default();
    if let Some(site) = &q.site {
        let s = f.bind(Val::text(site.as_str()));
        f.conds.push(format!("site = {s}"));
    }
    if !q.excluded.is_empty() {
        let ids = f.id_list(&q.excluded);
        f.conds.push(format!(
            "(actor IS NULL OR actor NOT IN ({ids})) AND (target IS NULL OR target NOT IN ({ids}))"
        ));
    }
    if let Some(user) = &q.user {
        let u = f.bind(Val::text(user.as_str()));
        f.conds.push(format!("(actor = {u} OR target = {u})"));
    }
    if let Some(action) = q.action {
        let a = f.bind(Val::text(action.as_str()));
        f.conds.push(format!("action = {a}"));
    }
    if let Some(from) = q.from {
        let t = f.bind(Val::Int(Some(ts_bound(from))));
        f.conds.push(format!("at_ns >= {t}"));
    }
    if let Some(to) = q.to {
        // `at < to`: with `to` clamped above the storable range every stored event is before it.
        let n = to.unix_timestamp_nanos();
        if n <= i128::from(i64::MAX) {
            let t = f.bind(Val::Int(Some(ts_bound(to))));
            f.conds.push(format!("at_ns < {t}"));
        }
    }
    f
}

/// Rewrites `?N` placeholders to PostgreSQL's `$N`.
#[cfg(feature = "postgres")]
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '?' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

/// The columns one plain write overwrites.
pub(crate) fn part_cols(part: Part<'_>) -> Result<Cols, StoreError> {
    match part {
        Part::Password(p) => password_cols(p),
        Part::Pin(p) => pin_cols(p),
        Part::Totp(t) => totp_cols(t),
        Part::OneTime(kind, c) => one_time_kind_cols(kind, c),
        Part::SignedIn(at) => Ok(vec![("last_sign_in_ns", Val::Int(Some(ts(at)?)))]),
    }
}

/// Migration 4's last step, once every key is recomputed: one username skeleton per site.
pub(crate) const SKELETON_INDEX: &str =
    "CREATE UNIQUE INDEX users_skeleton ON users (site, username_skeleton)";

/// Migration 4 sets every username key to this plus the id first, so that recomputing the
/// keys row by row never runs into a key another row is about to give up.
pub(crate) const REKEY_PARKED: &str = "\u{2}";

/// One user as migration 4 reads it, oldest account first.
#[derive(Debug)]
pub(crate) struct KeyRow {
    pub(crate) id: String,
    pub(crate) site: String,
    pub(crate) username: String,
    pub(crate) forename: String,
    pub(crate) surname: String,
    pub(crate) email: Option<String>,
}

/// Migration 4 (Unicode folding and confusable skeletons): every key of every user
/// recomputed with [`fold`] and [`skeleton`]. Where two accounts of a site now fold alike
/// (`ＡＤＡ` and `ada` were apart under the old folding), the older keeps the username and the
/// newer gets a key no typed username folds to (`\u{1}` and its id): it can no longer sign in
/// by username until an administrator renames it, and is never merged into the older one.
/// Where two only look alike, the newer keeps its key and gets a parked skeleton, so it still
/// signs in but blocks no one. Returns each user's new key columns and how many were parked.
pub(crate) fn rekey(rows: &[KeyRow]) -> (Vec<(String, Cols)>, usize) {
    let mut keys = std::collections::HashSet::new();
    let mut skeletons = std::collections::HashSet::new();
    let mut parked = 0;
    let plan = rows
        .iter()
        .map(|r| {
            let parked_key = format!("\u{1}{}", r.id);
            let mut key = fold(&r.username);
            let mut skel = skeleton(&r.username);
            if !keys.insert((r.site.clone(), key.clone())) {
                key.clone_from(&parked_key);
                skel.clone_from(&parked_key);
                parked += 1;
            } else if !skeletons.insert((r.site.clone(), skel.clone())) {
                skel.clone_from(&parked_key);
                parked += 1;
            }
            let cols: Cols = vec![
                ("username_key", Val::Text(Some(key))),
                ("username_skeleton", Val::Text(Some(skel))),
                ("forename_key", Val::Text(Some(fold(&r.forename)))),
                ("surname_key", Val::Text(Some(fold(&r.surname)))),
                ("email_key", Val::Text(r.email.as_deref().map(fold))),
            ];
            (r.id.clone(), cols)
        })
        .collect();
    (plan, parked)
}

/// The `SELECT` of migration 4's rows, oldest account first.
pub(crate) const REKEY_SELECT: &str =
    "SELECT id, site, username, forename, surname, email FROM users ORDER BY created_ns, id";

/// The `SELECT` of migration 4's group rows.
pub(crate) const REKEY_GROUPS: &str = "SELECT user_id, position, name FROM user_groups";

/// What a SQL backend's write transaction offers the shared body of
/// [`UserStore::replace_batch`](super::UserStore::replace_batch).
pub(crate) trait WriteTx {
    /// The record of `id`, read under the transaction's write lock (`NotFound` if missing).
    fn locked(&mut self, id: &UserId) -> Result<UserRecord, StoreError>;
    /// Overwrites columns of the row of `id`.
    fn update(&mut self, cols: Cols, id: &UserId) -> Result<(), StoreError>;
    /// Appends one audit event (values in [`AUDIT_COLUMNS`] order).
    fn insert_audit(&mut self, vals: &[Val]) -> Result<(), StoreError>;
    /// Inserts a new user with their groups unless the id or the username is taken
    /// ([`insert_new_sql`] leaves a taken row alone; [`taken`] names which).
    fn insert_new(&mut self, record: &UserRecord) -> Result<Creation, StoreError>;
}

/// What a SQL backend's write transaction offers the shared bodies of the profile change and
/// the deletion, beside [`WriteTx`].
pub(crate) trait ProfileTx: WriteTx {
    /// The whole record of `id`, groups included, under the write lock (`NotFound` if
    /// missing).
    fn locked_whole(&mut self, id: &UserId) -> Result<UserRecord, StoreError>;
    /// Overwrites the profile columns and groups of `user.id`; a username taken or
    /// confusable in the site is [`StoreError::Conflict`].
    fn write_profile(&mut self, user: &User) -> Result<(), StoreError>;
    /// Runs one statement of [`DELETE_USER_ROWS`] with the user id as `?1`.
    fn delete_rows(&mut self, sql: &str, id: &UserId) -> Result<(), StoreError>;
}

/// The statements deleting a user: their groups, then their row (audit events stay).
pub(crate) const DELETE_USER_ROWS: [&str; 2] = [
    "DELETE FROM user_groups WHERE user_id = ?1",
    "DELETE FROM users WHERE id = ?1",
];

/// The body of `change_profile_recorded` inside one write transaction: the whole record
/// through [`ops::profile_recorded`](super::ops::profile_recorded), the profile and the
/// credential columns written back if they changed, then the events; nothing without events.
pub(crate) fn change_profile_recorded_in(
    tx: &mut impl ProfileTx,
    id: &UserId,
    change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
) -> Result<(), StoreError> {
    let mut record = tx.locked_whole(id)?;
    let before = record.clone();
    let events = super::ops::profile_recorded(&mut record, change)?;
    if events.is_empty() {
        return Ok(());
    }
    if record.user != before.user {
        tx.write_profile(&record.user)?;
    }
    if record != before {
        tx.update(credential_cols(&record)?, id)?;
    }
    for event in &events {
        tx.insert_audit(&audit_values(event)?)?;
    }
    Ok(())
}

/// The body of `delete_recorded` inside one write transaction: the whole record to `decide`
/// on, then the rows deleted and the events appended, or nothing.
pub(crate) fn delete_recorded_in(
    tx: &mut impl ProfileTx,
    id: &UserId,
    decide: &mut (dyn FnMut(&UserRecord) -> Vec<AuditEvent> + Send),
) -> Result<bool, StoreError> {
    let record = tx.locked_whole(id)?;
    let events = decide(&record);
    if events.is_empty() {
        return Ok(false);
    }
    for sql in DELETE_USER_ROWS {
        tx.delete_rows(sql, id)?;
    }
    for event in &events {
        tx.insert_audit(&audit_values(event)?)?;
    }
    Ok(true)
}

/// The insert of [`WriteTx::insert_new`]: one statement that writes nothing when the id or
/// the username is taken (so a PostgreSQL transaction is not aborted by the conflict).
pub(crate) fn insert_new_sql(cols: &Cols) -> String {
    format!("{} ON CONFLICT DO NOTHING", insert_sql(cols))
}

/// Which uniqueness a skipped [`insert_new_sql`] ran into, from whether the id and the
/// username key exist (if neither, it was the skeleton).
pub(crate) fn taken(id_exists: bool, key_exists: bool) -> Creation {
    match (id_exists, key_exists) {
        (true, _) => Creation::IdTaken,
        (false, true) => Creation::UsernameTaken,
        (false, false) => Creation::UsernameConfusable,
    }
}

/// The body of `create_users` inside one write transaction: each entry inserted unless taken,
/// each created entry's event appended after it.
pub(crate) fn create_users_in(
    tx: &mut impl WriteTx,
    users: &[NewUser],
) -> Result<Vec<Creation>, StoreError> {
    let mut out = Vec::with_capacity(users.len());
    for NewUser { record, event } in users {
        let creation = tx.insert_new(record)?;
        if creation == Creation::Created {
            tx.insert_audit(&audit_values(event)?)?;
        }
        out.push(creation);
    }
    Ok(out)
}

/// The body of every atomic operation inside one write transaction: the record of `id` read
/// under the lock, `f` applied, the credential columns written back if anything changed.
pub(crate) fn atomic_in<T>(
    tx: &mut impl WriteTx,
    id: &UserId,
    f: impl FnOnce(&mut UserRecord) -> T,
) -> Result<T, StoreError> {
    let mut record = tx.locked(id)?;
    let before = record.clone();
    let out = f(&mut record);
    if record != before {
        tx.update(credential_cols(&record)?, id)?;
    }
    Ok(out)
}

/// The body of `change_recorded` inside one write transaction: the change through
/// [`atomic_in`] (a refused change writes nothing: the transaction is not committed), then its
/// events.
pub(crate) fn change_recorded_in(
    tx: &mut impl WriteTx,
    id: &UserId,
    change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
) -> Result<(), StoreError> {
    let events = atomic_in(tx, id, |r| super::ops::recorded(r, change))??;
    for event in &events {
        tx.insert_audit(&audit_values(event)?)?;
    }
    Ok(())
}

/// The body of `replace_batch` inside one write transaction: every entry through
/// [`ops::apply_batch_entry`](super::ops::apply_batch_entry), each written entry's event,
/// then the summary. Rows are locked in id order, so two batches over the same users queue
/// rather than deadlock; the result lists users in the batch's order.
pub(crate) fn replace_batch_in(
    tx: &mut impl WriteTx,
    batch: &TemporaryBatch,
) -> Result<BatchWritten, StoreError> {
    let events = batch
        .entries
        .iter()
        .map(|e| audit_values(&e.event))
        .collect::<Result<Vec<_>, _>>()?;
    let mut order: Vec<usize> = (0..batch.entries.len()).collect();
    order.sort_by(|&a, &b| batch.entries[a].user.cmp(&batch.entries[b].user));
    let mut written = vec![false; batch.entries.len()];
    for i in order {
        let entry = &batch.entries[i];
        let mut record = tx.locked(&entry.user)?;
        if super::ops::apply_batch_entry(&mut record, entry) {
            tx.update(credential_cols(&record)?, &entry.user)?;
            written[i] = true;
        }
    }
    // Events in the batch's order, as every backend appends them.
    let mut out = BatchWritten::default();
    for ((entry, written), event) in batch.entries.iter().zip(written).zip(&events) {
        if written {
            tx.insert_audit(event)?;
            out.written.push(entry.user.clone());
        } else {
            out.changed.push(entry.user.clone());
        }
    }
    tx.insert_audit(&audit_values(&super::ops::batch_summary(batch, &out))?)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn successor_is_the_least_upper_bound_of_a_prefix() {
        assert_eq!(successor("ab").as_deref(), Some("ac"));
        assert_eq!(successor("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(successor("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(successor("\u{10FFFF}"), None);
        assert_eq!(successor(""), None);
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn placeholders_are_rewritten() {
        assert_eq!(
            dollar_placeholders("a = ?1 AND b = ?12 OR c ?"),
            "a = $1 AND b = $12 OR c ?"
        );
    }
}
