//! The SQLite store: the embedded default.
//!
//! # Concurrency
//! Every atomic operation is one `BEGIN IMMEDIATE` transaction that reads the row, applies the
//! shared body from [`super::ops`] and writes the row back. `IMMEDIATE` takes SQLite's write
//! lock before the read, so two handles, in one process or in two, can
//! never both read the same old row: no update is lost. A writer that finds the lock taken
//! waits up to the busy timeout (5 seconds by default).
//!
//! A handle keeps one writer connection behind a mutex (SQLite admits one writer at a time
//! anyway; queueing on a mutex is fairer and cheaper than spinning in SQLite's busy handler)
//! and, for a file database, a small pool of reader connections: in WAL mode readers never
//! block the writer nor each other, so searches run beside writes.
//!
//! # Schema
//! Migrations are embedded and versioned with `PRAGMA user_version`. A database written by a
//! newer keyward is refused with [`StoreError::SchemaTooNew`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
    params_from_iter,
};

use super::ops::{Part, RecordBackend};
use super::sql::{self, SqlRow, Val};
use super::{
    BatchWritten, CONFUSABLE_USERNAME, Creation, GroupQuery, GroupSummary, NewUser, Page,
    StoreError, TemporaryBatch, UserQuery, UserRecord, UserStore, fold, skeleton,
};
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditQuery};
use crate::user::{SiteId, User, UserId};

/// The embedded migrations; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("sqlite/0001_initial.sql"),
    include_str!("sqlite/0002_escrow.sql"),
    include_str!("sqlite/0003_lock_epoch.sql"),
    include_str!("sqlite/0004_unicode_keys.sql"),
    include_str!("sqlite/0005_recovery_and_contact_codes.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const IDLE_READERS: usize = 4;
/// Prepared statements each connection keeps (least recently used dropped first).
const STATEMENT_CACHE: usize = 64;

/// The SQLite store.
///
/// Open one handle per process and share it (`Arc<SqliteStore>`); several handles, in one
/// process or several, may use the same file at once.
pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// Reader connections for a file database; `None` in memory, where every connection
    /// would see its own database.
    readers: Option<Readers>,
}

struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.as_ref().map(|r| &r.path))
            .finish_non_exhaustive()
    }
}

fn be(context: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Val::Int(v) => ToSqlOutput::Owned(v.map_or(Value::Null, Value::Integer)),
            Val::Text(v) => match v {
                Some(s) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(s.as_bytes())),
                None => ToSqlOutput::Owned(Value::Null),
            },
            Val::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(*b))),
        })
    }
}

/// The index of `col` in `row` when it stands where [`sql::column_hints`] expects it.
fn hinted(row: &rusqlite::Row<'_>, col: &str) -> Option<usize> {
    let stmt = row.as_ref();
    (sql::column_hints(col).into_iter().flatten())
        .find(|&i| stmt.column_name(i).is_ok_and(|name| name == col))
}

/// Column `col` of `row`, found by its expected place first (see [`sql::column_hints`]).
fn get<T: rusqlite::types::FromSql>(row: &rusqlite::Row<'_>, col: &str) -> rusqlite::Result<T> {
    match hinted(row, col) {
        Some(i) => row.get(i),
        None => row.get(col),
    }
}

impl SqlRow for rusqlite::Row<'_> {
    fn int(&self, col: &'static str) -> Result<Option<i64>, StoreError> {
        get(self, col).map_err(|_| StoreError::corrupt(col, "not an integer"))
    }

    fn text(&self, col: &'static str) -> Result<Option<String>, StoreError> {
        get(self, col).map_err(|_| StoreError::corrupt(col, "not text"))
    }

    fn flag(&self, col: &'static str) -> Result<bool, StoreError> {
        match self.int(col)? {
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            _ => Err(StoreError::corrupt(col, "not a boolean")),
        }
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    // The writer runs some thirty fixed statements (rusqlite keeps 16 by default), and
    // searches add their own: with room for them all, the frequent ones stay prepared.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(be("setting the busy timeout"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(be("enabling foreign keys"))?;
    Ok(())
}

/// Switches the file to WAL (a persistent setting). SQLite answers "busy" at once, without
/// its busy handler, when another connection holds a lock during the switch, as happens when
/// several processes open a new file together: retry until the busy timeout.
fn enable_wal(conn: &Connection) -> Result<(), StoreError> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    loop {
        // Where a file system cannot do WAL, SQLite keeps its rollback journal and says so:
        // slower, equally correct, so the answer is not checked.
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(StoreError::backend("enabling WAL", e)),
        }
    }
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(be("starting the migration"))?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(be("reading the schema version"))?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let done = usize::try_from(found).unwrap_or(0);
    for (version, migration) in (1_i64..).zip(MIGRATIONS).skip(done) {
        tx.execute_batch(migration)
            .map_err(be("applying a migration"))?;
        if version == 4 {
            rekey(&tx)?;
        }
    }
    if found != SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(be("writing the schema version"))?;
    }
    tx.commit().map_err(be("committing the migration"))
}

/// Migration 4's Rust step: every key recomputed ([`sql::rekey`]), then the skeleton index.
fn rekey(tx: &Connection) -> Result<(), StoreError> {
    let context = "recomputing the username keys";
    let rows = {
        let mut stmt = tx.prepare(sql::REKEY_SELECT).map_err(be(context))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(sql::KeyRow {
                    id: r.get(0)?,
                    site: r.get(1)?,
                    username: r.get(2)?,
                    forename: r.get(3)?,
                    surname: r.get(4)?,
                    email: r.get(5)?,
                })
            })
            .map_err(be(context))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(be(context))?
    };
    tx.execute(
        "UPDATE users SET username_key = ?1 || id",
        [sql::REKEY_PARKED],
    )
    .map_err(be(context))?;
    let (plan, _parked) = sql::rekey(&rows);
    for (id, cols) in plan {
        update(
            tx,
            cols,
            &UserId::parse(&id).map_err(|_| StoreError::corrupt("id", "not an id"))?,
        )?;
    }
    let groups = {
        let mut stmt = tx.prepare(sql::REKEY_GROUPS).map_err(be(context))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(be(context))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(be(context))?
    };
    let mut rename = tx
        .prepare_cached("UPDATE user_groups SET name_key = ?1 WHERE user_id = ?2 AND position = ?3")
        .map_err(be(context))?;
    for (user, position, name) in groups {
        rename
            .execute(rusqlite::params![fold(&name), user, position])
            .map_err(be(context))?;
    }
    drop(rename);
    tx.execute_batch(sql::SKELETON_INDEX).map_err(be(context))
}

impl SqliteStore {
    /// Runs a paged query in one read transaction: the count, then the page, each row parsed.
    fn paged<T>(
        &self,
        context: &'static str,
        q: &sql::Paged,
        parse: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        self.read(context, |conn| {
            let total = count(conn, q)?;
            Ok(Page::new(query_rows(conn, context, q, parse)?, total))
        })
    }

    /// Opens (creating if needed) the database at `path` in WAL mode and brings its schema up
    /// to date.
    ///
    /// Durability: `synchronous = NORMAL`, so a commit survives a crash of the application
    /// and the file stays consistent on power loss or an operating-system crash, but the last
    /// commits before such a loss may be lost (they are not synced one by one).
    ///
    /// # Errors
    /// [`StoreError::SchemaTooNew`] when the file was written by a newer keyward;
    /// [`StoreError::Backend`] when the file cannot be opened or migrated.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let mut conn = Connection::open(&path).map_err(be("opening the database"))?;
        configure(&conn)?;
        enable_wal(&conn)?;
        // WAL with synchronous=NORMAL is durable against application crashes and keeps the
        // database consistent on power loss (the last commits may be lost).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(be("setting synchronous"))?;
        // The writer keeps up to 32 MiB of pages (SQLite's default is 2 MiB): past about
        // 20,000 users the indexes outgrow the default and every insert of an import reads
        // pages back (measured: 100,000 users took 16 s with the default).
        conn.pragma_update(None, "cache_size", -32_768)
            .map_err(be("setting cache_size"))?;
        migrate(&mut conn)?;
        Ok(Self {
            writer: Mutex::new(conn),
            readers: Some(Readers {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Opens a private in-memory database (for tests and examples).
    ///
    /// # Errors
    /// [`StoreError::Backend`] when SQLite fails.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory().map_err(be("opening the database"))?;
        configure(&conn)?;
        migrate(&mut conn)?;
        Ok(Self {
            writer: Mutex::new(conn),
            readers: None,
        })
    }

    /// Creates many users in one transaction, all or none (an initial import).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when an id or username is taken (nothing is written);
    /// backend failures.
    pub fn import_users(&self, records: &[UserRecord]) -> Result<(), StoreError> {
        self.write("importing users", |tx| {
            for record in records {
                insert_user(tx, record)?;
            }
            Ok(())
        })
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the connection dropped the open transaction, which rolled it
        // back: the connection is clean.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, committed when `f` returns `Ok`.
    fn write<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(be(context))?;
        let out = f(&tx)?;
        tx.commit().map_err(be(context))?;
        Ok(out)
    }

    /// Runs `f` in a read transaction on a reader connection (so that several statements see
    /// one snapshot).
    fn read<T>(
        &self,
        context: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_reader(|conn| {
            let tx = conn.unchecked_transaction().map_err(be(context))?;
            let out = f(&tx)?;
            tx.finish().map_err(be(context))?;
            Ok(out)
        })
    }

    /// Runs `f` on a reader connection (the writer for an in-memory database), outside any
    /// transaction: for a single statement, which is its own read transaction.
    fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let Some(readers) = &self.readers else {
            return f(&self.writer());
        };
        let idle = readers
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &readers.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(be("opening a reader"))?;
                configure(&conn)?;
                conn.pragma_update(None, "query_only", true)
                    .map_err(be("opening a reader"))?;
                conn
            }
        };
        let out = f(&conn)?;
        let mut idle = readers.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        Ok(out)
    }
}

impl RecordBackend for SqliteStore {
    /// Reads the row of `id` under the write lock, applies `f`, writes back what changed.
    fn atomic<T: Send>(
        &self,
        context: &'static str,
        id: &UserId,
        f: impl FnOnce(&mut UserRecord) -> T + Send,
    ) -> Result<T, StoreError> {
        self.write(context, |tx| sql::atomic_in(&mut Tx(tx), id, f))
    }

    fn write_part(&self, id: &UserId, part: Part<'_>) -> Result<(), StoreError> {
        let cols = sql::part_cols(part)?;
        // One statement is atomic on its own: in autocommit it takes the write lock (waiting
        // up to the busy timeout like `BEGIN IMMEDIATE`) and commits, without the two extra
        // statements of a transaction around it.
        update(&self.writer(), cols, id)
    }
}

fn not_found(id: &UserId) -> StoreError {
    StoreError::NotFound { user: id.clone() }
}

/// The credential part of a record, read inside a write transaction (which holds SQLite's
/// write lock): the row an atomic operation changes.
fn locked(tx: &Connection, id: &UserId) -> Result<UserRecord, StoreError> {
    load_with(tx, &SELECT_USER_BY_ID, &[id.as_str()], false)?.ok_or_else(|| not_found(id))
}

/// A write transaction, as the shared SQL bodies see it.
struct Tx<'a>(&'a Connection);

impl sql::WriteTx for Tx<'_> {
    fn locked(&mut self, id: &UserId) -> Result<UserRecord, StoreError> {
        locked(self.0, id)
    }

    fn update(&mut self, cols: sql::Cols, id: &UserId) -> Result<(), StoreError> {
        update(self.0, cols, id)
    }

    fn insert_audit(&mut self, vals: &[Val]) -> Result<(), StoreError> {
        insert_audit(self.0, vals)
    }

    fn insert_new(&mut self, record: &UserRecord) -> Result<Creation, StoreError> {
        let u = &record.user;
        let cols = sql::all_cols(record)?;
        let inserted = self
            .0
            .prepare_cached(&sql::insert_new_sql(&cols))
            .and_then(|mut s| s.execute(params_from_iter(cols.iter().map(|(_, v)| v))))
            .map_err(be("creating a user"))?;
        if inserted == 0 {
            let id = [u.id.as_str()];
            let id_exists = exists(self.0, "SELECT 1 FROM users WHERE id = ?1", &id)?;
            let key = [u.site.as_str(), &fold(&u.username)];
            let sql = "SELECT 1 FROM users WHERE site = ?1 AND username_key = ?2";
            let key_exists = exists(self.0, sql, &key)?;
            return Ok(sql::taken(id_exists, key_exists));
        }
        write_groups(self.0, u)?;
        Ok(Creation::Created)
    }
}

impl sql::ProfileTx for Tx<'_> {
    fn locked_whole(&mut self, id: &UserId) -> Result<UserRecord, StoreError> {
        locked_whole(self.0, id)
    }

    fn write_profile(&mut self, user: &User) -> Result<(), StoreError> {
        write_profile(self.0, user)
    }

    fn delete_rows(&mut self, sql: &str, id: &UserId) -> Result<(), StoreError> {
        self.0
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([id.as_str()]))
            .map_err(be("deleting a user"))
            .map(drop)
    }
}

fn insert_audit(tx: &Connection, vals: &[Val]) -> Result<(), StoreError> {
    tx.prepare_cached(&sql::audit_insert_sql())
        .and_then(|mut s| s.execute(params_from_iter(vals.iter())))
        .map_err(be("appending an audit event"))?;
    Ok(())
}

fn update(tx: &Connection, cols: sql::Cols, id: &UserId) -> Result<(), StoreError> {
    let sql = sql::update_sql(&cols);
    let vals = sql::update_values(cols, id);
    let n = tx
        .prepare_cached(&sql)
        .and_then(|mut s| s.execute(params_from_iter(vals.iter())))
        .map_err(|e| {
            if is_constraint(&e) {
                StoreError::Conflict { what: "username" }
            } else {
                StoreError::backend("writing a user", e)
            }
        })?;
    if n == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

fn exists(conn: &Connection, sql: &str, args: &[&str]) -> Result<bool, StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.exists(params_from_iter(args.iter())))
        .map_err(be("checking uniqueness"))
}

fn insert_user(tx: &Connection, record: &UserRecord) -> Result<(), StoreError> {
    let u = &record.user;
    if exists(tx, "SELECT 1 FROM users WHERE id = ?1", &[u.id.as_str()])? {
        return Err(StoreError::Conflict { what: "user id" });
    }
    let key = fold(&u.username);
    if exists(
        tx,
        "SELECT 1 FROM users WHERE site = ?1 AND username_key = ?2",
        &[u.site.as_str(), &key],
    )? {
        return Err(StoreError::Conflict { what: "username" });
    }
    if confusable(tx, u)? {
        return Err(StoreError::Conflict {
            what: CONFUSABLE_USERNAME,
        });
    }
    let cols = sql::all_cols(record)?;
    let sql = sql::insert_sql(&cols);
    tx.prepare_cached(&sql)
        .and_then(|mut s| s.execute(params_from_iter(cols.iter().map(|(_, v)| v))))
        .map_err(|e| {
            if is_constraint(&e) {
                StoreError::Conflict { what: "username" }
            } else {
                StoreError::backend("creating a user", e)
            }
        })?;
    write_groups(tx, u)
}

/// The whole record of `id` (groups included), read inside a write transaction.
fn locked_whole(tx: &Connection, id: &UserId) -> Result<UserRecord, StoreError> {
    load_with(tx, &SELECT_WHOLE_USER_BY_ID, &[id.as_str()], true)?.ok_or_else(|| not_found(id))
}

/// Overwrites the profile columns and groups of `user.id` inside a write transaction, after
/// checking that the username stays unique and unconfusable in the site.
fn write_profile(tx: &Connection, user: &User) -> Result<(), StoreError> {
    let key = fold(&user.username);
    if exists(
        tx,
        "SELECT 1 FROM users WHERE site = ?1 AND username_key = ?2 AND id <> ?3",
        &[user.site.as_str(), &key, user.id.as_str()],
    )? {
        return Err(StoreError::Conflict { what: "username" });
    }
    if confusable(tx, user)? {
        return Err(StoreError::Conflict {
            what: CONFUSABLE_USERNAME,
        });
    }
    update(tx, sql::profile_cols(user)?, &user.id)?;
    write_groups(tx, user)
}

/// Whether another user of `u`'s site has `u`'s username skeleton.
fn confusable(tx: &Connection, u: &User) -> Result<bool, StoreError> {
    exists(
        tx,
        "SELECT 1 FROM users WHERE site = ?1 AND username_skeleton = ?2 AND id <> ?3",
        &[u.site.as_str(), &skeleton(&u.username), u.id.as_str()],
    )
}

fn write_groups(tx: &Connection, u: &User) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM user_groups WHERE user_id = ?1")
        .and_then(|mut s| s.execute([u.id.as_str()]))
        .map_err(be("writing groups"))?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO user_groups (user_id, position, site, name, name_key) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .map_err(be("writing groups"))?;
    for (position, name, key) in sql::group_rows(u) {
        insert
            .execute(rusqlite::params![
                u.id.as_str(),
                position,
                u.site.as_str(),
                name,
                key
            ])
            .map_err(be("writing groups"))?;
    }
    Ok(())
}

/// The user columns, for reading a record's credentials in a write transaction.
static SELECT_USER_BY_ID: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM users WHERE id = ?1",
        sql::user_select_list()
    )
});

/// The user columns and the user's groups in order, as a JSON array named `groups`: one
/// statement reads a whole record, and a single statement reads one snapshot, so no
/// transaction is needed around it. A group name that is not text comes out as `null`, which
/// [`parse_groups`] reports as corrupt.
fn select_whole_user(clause: &str) -> String {
    format!(
        "SELECT {}, (SELECT json_group_array(CASE WHEN typeof(g.name) = 'text' THEN g.name END \
         ORDER BY g.position) FROM user_groups g WHERE g.user_id = users.id) AS groups \
         FROM users WHERE {clause}",
        sql::user_select_list()
    )
}

static SELECT_WHOLE_USER_BY_ID: LazyLock<String> = LazyLock::new(|| select_whole_user("id = ?1"));
static SELECT_WHOLE_USER_BY_NAME: LazyLock<String> =
    LazyLock::new(|| select_whole_user("site = ?1 AND username_key = ?2"));

/// The groups of a row selected with [`select_whole_user`].
fn parse_groups(row: &rusqlite::Row<'_>) -> Result<Vec<String>, StoreError> {
    let corrupt = || StoreError::corrupt("user_groups.name", "not text");
    let json = row.text("groups")?.ok_or_else(corrupt)?;
    serde_json::from_str(&json).map_err(|_| corrupt())
}

/// Reads at most one user with `sql` (a [`SELECT_USER_BY_ID`] or, with `with_groups`, a
/// [`select_whole_user`] statement).
fn load_with(
    conn: &Connection,
    sql: &str,
    args: &[&str],
    with_groups: bool,
) -> Result<Option<UserRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(be("reading a user"))?;
    let row = stmt
        .query_row(params_from_iter(args.iter()), |row| {
            let groups = if with_groups {
                parse_groups(row)
            } else {
                Ok(Vec::new())
            };
            Ok(groups.and_then(|groups| sql::parse_record(row, groups)))
        })
        .optional()
        .map_err(be("reading a user"))?;
    row.transpose()
}

fn query_records(
    conn: &Connection,
    sql: &str,
    vals: &[Val],
) -> Result<Vec<UserRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(be("searching users"))?;
    let mut rows = stmt
        .query(params_from_iter(vals.iter()))
        .map_err(be("searching users"))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(be("searching users"))? {
        out.push(sql::parse_record(row, Vec::new())?);
    }
    // Groups of the whole page in one query.
    if !out.is_empty() {
        let marks: Vec<String> = (1..=out.len()).map(|i| format!("?{i}")).collect();
        let sql = format!(
            "SELECT user_id, name FROM user_groups WHERE user_id IN ({}) ORDER BY user_id, position",
            marks.join(", ")
        );
        let ids: Vec<&str> = out.iter().map(|r| r.user.id.as_str()).collect();
        // Cached too: pages mostly have the same few sizes.
        let mut stmt = conn.prepare_cached(&sql).map_err(be("reading groups"))?;
        let mut rows = stmt
            .query(params_from_iter(ids.iter()))
            .map_err(be("reading groups"))?;
        while let Some(row) = rows.next().map_err(be("reading groups"))? {
            let (Some(user), Some(name)) = (row.text("user_id")?, row.text("name")?) else {
                return Err(StoreError::corrupt("user_groups", "missing value"));
            };
            if let Some(r) = out.iter_mut().find(|r| r.user.id.as_str() == user) {
                r.user.groups.push(name);
            }
        }
    }
    Ok(out)
}

/// Runs the count of a paged query.
fn count(conn: &Connection, q: &sql::Paged) -> Result<u64, StoreError> {
    conn.prepare_cached(&q.count)
        .and_then(|mut s| {
            s.query_row(params_from_iter(q.count_vals.iter()), |r| {
                Ok(sql::parse_count_row(r))
            })
        })
        .map_err(be("counting"))?
}

/// Runs the page of a paged query, parsing each row.
fn query_rows<T>(
    conn: &Connection,
    context: &'static str,
    q: &sql::Paged,
    parse: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(&q.select).map_err(be(context))?;
    let mut rows = stmt
        .query(params_from_iter(q.vals.iter()))
        .map_err(be(context))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(be(context))? {
        items.push(parse(row)?);
    }
    Ok(items)
}

impl UserStore for SqliteStore {
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        self.write("creating a user", |tx| insert_user(tx, record))
    }

    fn create_users(&self, users: &[NewUser]) -> Result<Vec<Creation>, StoreError> {
        self.write("creating users", |tx| {
            sql::create_users_in(&mut Tx(tx), users)
        })
    }

    fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        self.with_reader(|conn| load_with(conn, &SELECT_WHOLE_USER_BY_ID, &[id.as_str()], true))
    }

    fn find_user(&self, site: &SiteId, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let Some(key) = sql::username_lookup(username) else {
            return Ok(None);
        };
        self.with_reader(|conn| {
            let args = [site.as_str(), key.as_str()];
            load_with(conn, &SELECT_WHOLE_USER_BY_NAME, &args, true)
        })
    }

    fn update_profile(&self, user: &User) -> Result<(), StoreError> {
        self.write("updating a profile", |tx| {
            if !exists(tx, "SELECT 1 FROM users WHERE id = ?1", &[user.id.as_str()])? {
                return Err(not_found(&user.id));
            }
            write_profile(tx, user)
        })
    }

    fn search_users(&self, query: &UserQuery) -> Result<Page<UserRecord>, StoreError> {
        let q = sql::users_page(query, "")?;
        self.read("searching users", |conn| {
            let total = count(conn, &q)?;
            let items = query_records(conn, &q.select, &q.vals)?;
            Ok(Page::new(items, total))
        })
    }

    fn list_groups(&self, query: &GroupQuery) -> Result<Page<GroupSummary>, StoreError> {
        self.paged("listing groups", &sql::groups_page(query, "")?, |r| {
            sql::parse_group(r)
        })
    }

    super::ops::record_store_methods!();

    fn replace_batch(&self, batch: &TemporaryBatch) -> Result<BatchWritten, StoreError> {
        self.write("replacing a batch", |tx| {
            sql::replace_batch_in(&mut Tx(tx), batch)
        })
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let vals = sql::audit_values(event)?;
        // One statement, in autocommit (see `write_part`).
        insert_audit(&self.writer(), &vals)
    }

    fn change_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        self.write("recording a change", |tx| {
            sql::change_recorded_in(&mut Tx(tx), id, change)
        })
    }

    fn change_profile_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        self.write("recording a profile change", |tx| {
            sql::change_profile_recorded_in(&mut Tx(tx), id, change)
        })
    }

    fn delete_recorded(
        &self,
        id: &UserId,
        decide: &mut (dyn FnMut(&UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<bool, StoreError> {
        self.write("deleting a user", |tx| {
            sql::delete_recorded_in(&mut Tx(tx), id, decide)
        })
    }

    fn prune_audit(&self, site: &SiteId, before: OffsetDateTime) -> Result<u64, StoreError> {
        let before = sql::ts(before)?;
        self.write("pruning the audit trail", |tx| {
            let n = tx
                .prepare_cached("DELETE FROM audit WHERE site = ?1 AND at_ns < ?2")
                .and_then(|mut s| s.execute(rusqlite::params![site.as_str(), before]))
                .map_err(be("pruning the audit trail"))?;
            Ok(n as u64)
        })
    }

    fn query_audit(&self, query: &AuditQuery) -> Result<Page<AuditEvent>, StoreError> {
        let q = sql::audit_page(query, "")?;
        self.paged("querying the audit log", &q, |r| sql::parse_audit(r))
    }
}
