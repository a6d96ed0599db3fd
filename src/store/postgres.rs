//! The PostgreSQL store, for applications running on several servers.
//!
//! # Concurrency
//! Every atomic operation reads the user's row with its version (`xmin`), applies the shared
//! body from [`super::ops`] and writes the row back only if it is still at that version, in
//! autocommit: two round trips. If another writer got in between, the operation runs again as
//! one transaction that reads the row with `SELECT … FOR UPDATE`, so concurrent operations on
//! one user, from any number of processes, queue on the row lock and never lose an update. A
//! batch is one transaction.
//!
//! # Prepared statements
//! Each pooled connection prepares the fixed statements of the frequent operations (reads of
//! one user, the atomic steps, the plain writes, audit appends) once and reuses them. Behind a
//! connection pooler in transaction mode, use one that supports protocol-level prepared
//! statements (PgBouncer 1.21 or later with `max_prepared_statements`).
//!
//! # Sorting
//! The columns that are compared and sorted are `COLLATE "C"`: bytewise order on UTF-8, which
//! is the order of Rust's `String` that [`super::compare_for_sort`] uses.
//!
//! # Schema
//! Migrations are embedded and recorded in `keyward_schema_version`; concurrent first starts
//! serialize on an advisory lock. A database written by a newer keyward is refused with
//! [`StoreError::SchemaTooNew`]. The store may live in its own schema
//! ([`PostgresOptions::schema`]).
//!
//! # Async applications
//! The `postgres` client drives its own Tokio runtime and would panic if it were created,
//! used or dropped on a thread running an async runtime. This store notices such a thread and
//! runs the database work on a short-lived plain thread instead, so calling it from async code
//! is safe (if wasteful: prefer `tokio::task::spawn_blocking`, as for hashing).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::{ToSql, Type};
use postgres::{Client, Config, GenericClient, NoTls, Row, Statement, Transaction};
use r2d2::{ManageConnection, Pool, PooledConnection};

use super::ops::{Part, RecordBackend};
use super::sql::{self, SqlRow, Val, dollar_placeholders};
use super::{
    BatchWritten, CONFUSABLE_USERNAME, Creation, GroupQuery, GroupSummary, NewUser, Page,
    StoreError, TemporaryBatch, UserQuery, UserRecord, UserStore, fold, skeleton,
};
use time::OffsetDateTime;

use crate::audit::{AuditEvent, AuditQuery};
use crate::user::{SiteId, User, UserId};

/// The embedded migrations; migration `i` brings the schema to version `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("postgres/0001_initial.sql"),
    include_str!("postgres/0002_escrow.sql"),
    include_str!("postgres/0003_lock_epoch.sql"),
    include_str!("postgres/0004_unicode_keys.sql"),
    include_str!("postgres/0005_recovery_and_contact_codes.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Rows per multi-row `INSERT` of [`PostgresStore::import_users`] (PostgreSQL allows 65,535
/// parameters per statement).
const IMPORT_CHUNK: usize = 500;

/// Most prepared statements one pooled connection keeps (each holds a plan on the server).
/// Only the fixed statements of the frequent operations are cached (about twenty), so the
/// bound is a guard, not a working limit.
const MAX_CACHED_STATEMENTS: usize = 64;

type Conn = PooledConnection<Manager>;

/// The pool's connection manager: plain clients, each with its own statement cache.
#[derive(Debug)]
struct Manager {
    config: Config,
}

/// A pooled connection: the client and the statements prepared on it.
struct Pooled {
    client: Client,
    statements: Statements,
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Pooled, postgres::Error> {
        Ok(Pooled {
            client: self.config.connect(NoTls)?,
            statements: Statements::default(),
        })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(drop)
    }

    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.client.is_closed()
    }
}

/// Named prepared statements of one connection, by their SQL text (`?N` form) and parameter
/// types. An unprepared statement (`query_typed`) is parsed and planned by the server at every
/// execution; a prepared one is bound and executed, in the same single round trip, and after
/// a few executions PostgreSQL reuses a generic plan.
#[derive(Default)]
struct Statements(HashMap<String, (Vec<Type>, Statement)>);

impl Statements {
    /// The statement for `sql` with parameters of `types`, prepared on `c` the first time (one
    /// extra round trip per connection and statement); `None` when the cache is full.
    fn get(
        &mut self,
        c: &mut impl GenericClient,
        sql: &str,
        types: &[Type],
    ) -> Result<Option<Statement>, postgres::Error> {
        if let Some((known, statement)) = self.0.get(sql) {
            // A text with other parameter types (a null of another type) is prepared anew.
            if known.as_slice() == types {
                return Ok(Some(statement.clone()));
            }
        }
        if self.0.len() >= MAX_CACHED_STATEMENTS && !self.0.contains_key(sql) {
            return Ok(None);
        }
        let statement = c.prepare_typed(&dollar_placeholders(sql), types)?;
        self.0
            .insert(sql.to_owned(), (types.to_vec(), statement.clone()));
        Ok(Some(statement))
    }
}

/// How to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The schema holding keyward's tables, created if missing; `None` uses the server's
    /// `search_path` as configured.
    pub schema: Option<String>,
    /// Most pooled connections per store handle (default 8).
    pub max_connections: u32,
    /// How long to wait for a pooled connection (default 30 seconds).
    pub connection_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 8,
            connection_timeout: Duration::from_secs(30),
        }
    }
}

impl PostgresOptions {
    /// Puts keyward's tables in `schema` (lowercase ASCII letters, digits and `_`, at most
    /// 63 bytes, not starting with a digit).
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Sets the pool size.
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Sets how long to wait for a pooled connection.
    #[must_use]
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }
}

fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The PostgreSQL store: a pool of connections.
///
/// Open one handle per process and share it (`Arc<PostgresStore>`).
pub struct PostgresStore {
    /// Always `Some` until dropped (taken in `drop` to release it off any async runtime).
    pool: Option<Pool<Manager>>,
    schema: Option<String>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            off_runtime(move || drop(pool));
        }
    }
}

/// Runs `f` on a plain thread when the current thread runs an async runtime, where the
/// synchronous client must not create, block on or drop its own runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| match s.spawn(f).join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    } else {
        f()
    }
}

fn be(context: &'static str) -> impl FnOnce(postgres::Error) -> StoreError {
    move |e| write_error(context, e)
}

/// Maps a unique violation to [`StoreError::Conflict`], anything else to a backend error.
fn write_error(context: &'static str, e: postgres::Error) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        let what = match e.as_db_error().and_then(|d| d.constraint()) {
            Some("users_pkey") => "user id",
            Some("users_skeleton") => CONFUSABLE_USERNAME,
            _ => "username",
        };
        return StoreError::Conflict { what };
    }
    StoreError::backend(context, e)
}

/// Parameters with their types: typed statements skip the round trip that would ask the
/// server for them.
fn typed(vals: &[Val]) -> Vec<(&(dyn ToSql + Sync), Type)> {
    vals.iter()
        .map(|v| -> (&(dyn ToSql + Sync), Type) {
            match v {
                Val::Int(i) => (i, Type::INT8),
                Val::Text(t) => (t, Type::TEXT),
                Val::Bool(b) => (b, Type::BOOL),
            }
        })
        .collect()
}

fn query(
    c: &mut impl GenericClient,
    context: &'static str,
    sql: &str,
    vals: &[Val],
) -> Result<Vec<Row>, StoreError> {
    c.query_typed(dollar_placeholders(sql).as_str(), &typed(vals))
        .map_err(be(context))
}

fn execute(
    c: &mut impl GenericClient,
    context: &'static str,
    sql: &str,
    vals: &[Val],
) -> Result<u64, StoreError> {
    c.execute_typed(dollar_placeholders(sql).as_str(), &typed(vals))
        .map_err(be(context))
}

/// As [`query`], with the statement prepared once per connection: for the fixed statements of
/// frequent operations (never for SQL built around a variable number of values, which would
/// fill the cache with statements used once).
fn cached_query(
    c: &mut impl GenericClient,
    statements: &mut Statements,
    context: &'static str,
    sql: &str,
    vals: &[Val],
) -> Result<Vec<Row>, StoreError> {
    let params = typed(vals);
    let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
    match statements.get(c, sql, &types).map_err(be(context))? {
        Some(statement) => {
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
            c.query(&statement, &refs).map_err(be(context))
        }
        None => query(c, context, sql, vals),
    }
}

/// As [`execute`], with the statement prepared once per connection (see [`cached_query`]).
fn cached_execute(
    c: &mut impl GenericClient,
    statements: &mut Statements,
    context: &'static str,
    sql: &str,
    vals: &[Val],
) -> Result<u64, StoreError> {
    let params = typed(vals);
    let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
    match statements.get(c, sql, &types).map_err(be(context))? {
        Some(statement) => {
            let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
            c.execute(&statement, &refs).map_err(be(context))
        }
        None => execute(c, context, sql, vals),
    }
}

/// Column `col` of `row`, found by its expected place first (see [`sql::column_hints`]).
fn get<'a, T: postgres::types::FromSql<'a>>(row: &'a Row, col: &str) -> Result<T, postgres::Error> {
    let hinted = (sql::column_hints(col).into_iter().flatten())
        .find(|&i| row.columns().get(i).is_some_and(|c| c.name() == col));
    match hinted {
        Some(i) => row.try_get(i),
        None => row.try_get(col),
    }
}

impl SqlRow for Row {
    fn int(&self, col: &'static str) -> Result<Option<i64>, StoreError> {
        get(self, col).map_err(|_| StoreError::corrupt(col, "not an integer"))
    }

    fn text(&self, col: &'static str) -> Result<Option<String>, StoreError> {
        get(self, col).map_err(|_| StoreError::corrupt(col, "not text"))
    }

    fn flag(&self, col: &'static str) -> Result<bool, StoreError> {
        get(self, col).map_err(|_| StoreError::corrupt(col, "not a boolean"))
    }
}

fn text_val(s: &str) -> Val {
    Val::Text(Some(s.to_owned()))
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL or a key-value connection string) with default
    /// options and brings the schema up to date.
    ///
    /// # Errors
    /// [`StoreError::SchemaTooNew`] when the database was written by a newer keyward;
    /// [`StoreError::Backend`] when the server cannot be reached or the migration fails.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, &PostgresOptions::default())
    }

    /// Connects with `options`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); [`StoreError::InvalidQuery`] for an invalid schema name
    /// or connection string.
    pub fn connect_with(url: &str, options: &PostgresOptions) -> Result<Self, StoreError> {
        let mut config: Config = url.parse().map_err(|_| StoreError::InvalidQuery {
            reason: "invalid PostgreSQL connection string".to_owned(),
        })?;
        if let Some(schema) = &options.schema {
            if !valid_schema(schema) {
                return Err(StoreError::InvalidQuery {
                    reason: "invalid schema name: use lowercase ASCII letters, digits and '_'"
                        .to_owned(),
                });
            }
            config.options(&format!("-c search_path={schema}"));
        }
        config.application_name("keyward");
        let manager = Manager { config };
        let max = options.max_connections.max(1);
        let timeout = options.connection_timeout;
        let schema = options.schema.clone();
        // Everything that creates or drops a client runs off any async runtime.
        off_runtime(move || {
            let pool = Pool::builder()
                .max_size(max)
                .min_idle(Some(0))
                // A broken connection is noticed by the failing statement (and discarded by
                // the pool); a health-check round trip before every operation would double
                // the latency of the short ones.
                .test_on_check_out(false)
                .connection_timeout(timeout)
                .build(manager)
                .map_err(|e| StoreError::backend("creating the connection pool", e))?;
            let store = Self {
                pool: Some(pool),
                schema,
            };
            store.migrate()?;
            Ok(store)
        })
    }

    fn conn(&self) -> Result<Conn, StoreError> {
        let Some(pool) = &self.pool else {
            return Err(StoreError::InvalidQuery {
                reason: "store is closed".to_owned(),
            });
        };
        pool.get()
            .map_err(|e| StoreError::backend("getting a connection", e))
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let mut tx = (conn.client.transaction()).map_err(be("starting the migration"))?;
        let lock_key = format!("keyward-migrate:{}", self.schema.as_deref().unwrap_or(""));
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&lock_key])
            .map_err(be("locking the migration"))?;
        if let Some(schema) = &self.schema {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .map_err(be("creating the schema"))?;
        }
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS keyward_schema_version (version BIGINT PRIMARY KEY)",
        )
        .map_err(be("creating the version table"))?;
        let found: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM keyward_schema_version",
                &[],
            )
            .and_then(|r| r.try_get(0))
            .map_err(be("reading the schema version"))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        for (version, migration) in (1_i64..)
            .zip(MIGRATIONS)
            .skip(usize::try_from(found).unwrap_or(0))
        {
            tx.batch_execute(migration)
                .map_err(be("applying a migration"))?;
            if version == 4 {
                rekey(&mut tx)?;
            }
            tx.execute(
                "INSERT INTO keyward_schema_version (version) VALUES ($1)",
                &[&version],
            )
            .map_err(be("recording the schema version"))?;
        }
        tx.commit().map_err(be("committing the migration"))
    }

    /// Runs `f` in a read-write transaction, committed when `f` returns `Ok`.
    fn write<T: Send>(
        &self,
        context: &'static str,
        f: impl FnOnce(&mut Transaction<'_>) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut conn = self.conn()?;
            let mut tx = conn.client.transaction().map_err(be(context))?;
            let out = f(&mut tx)?;
            tx.commit().map_err(be(context))?;
            Ok(out)
        })
    }

    /// Reads at most one whole record with one cached statement: one round trip, in
    /// autocommit (a single statement sees one snapshot, groups included).
    fn read_one(&self, sql: &str, vals: &[Val]) -> Result<Option<UserRecord>, StoreError> {
        off_runtime(|| {
            let mut conn = self.conn()?;
            let Pooled { client, statements } = &mut *conn;
            let rows = cached_query(client, statements, "reading a user", sql, vals)?;
            Ok(records(&rows)?.pop())
        })
    }

    /// Runs a paged query whose page selects the total as its last column (`total`, from
    /// [`TOTAL`]): the page and the total in one statement (one snapshot, one round trip); only
    /// a page past the end needs the count on its own.
    fn paged<T: Send>(
        &self,
        context: &'static str,
        q: &sql::Paged,
        offset: u64,
        parse: impl FnOnce(&[Row]) -> Result<Vec<T>, StoreError> + Send,
    ) -> Result<Page<T>, StoreError> {
        off_runtime(move || {
            let client = &mut self.conn()?.client;
            let rows = query(client, context, &q.select, &q.vals)?;
            let total = match rows.first() {
                Some(row) => sql::parse_total(row.int("total")?.unwrap_or(0), "total")?,
                None if offset == 0 => 0,
                None => count(client, q)?,
            };
            Ok(Page::new(parse(&rows)?, total))
        })
    }

    /// Creates many users in one transaction with multi-row inserts, all or none (an initial
    /// import).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when an id or username is taken (nothing is written);
    /// backend failures.
    pub fn import_users(&self, records: &[UserRecord]) -> Result<(), StoreError> {
        let rows = records
            .iter()
            .map(sql::all_cols)
            .collect::<Result<Vec<_>, _>>()?;
        self.write("importing users", |tx| {
            for chunk in rows.chunks(IMPORT_CHUNK) {
                insert_rows(tx, "users", chunk, "")?;
            }
            insert_groups(tx, records.iter().map(|r| &r.user))
        })
    }
}

impl RecordBackend for PostgresStore {
    /// Reads the row of `id` with its version, applies `f` and writes back what changed only
    /// if the row is still at that version: two round trips (the read, then the conditional
    /// update in autocommit) instead of four (`BEGIN`, `SELECT … FOR UPDATE`, `UPDATE`,
    /// `COMMIT`). When another writer changed the row in between, the update matches nothing
    /// and the operation runs again the pessimistic way, queueing on the row lock, so a contended
    /// user costs one wasted read and never starves. `f` is the pure body from [`super::ops`]:
    /// running it again on the fresh record is running the operation once, on that record.
    fn atomic<T: Send>(
        &self,
        context: &'static str,
        id: &UserId,
        f: impl FnMut(&mut UserRecord) -> T + Send,
    ) -> Result<T, StoreError> {
        self.optimistic(context, id, Commit::Durable, f)
    }

    /// A reservation commits without waiting for the WAL flush (`synchronous_commit = off`
    /// for its own statement only): visible to every other server at once, as atomic as any
    /// update, and half a millisecond cheaper. A crash of the server may lose it, never a
    /// counted failure: the settle's commit is durable and flushes the WAL up to itself.
    fn atomic_transient<T: Send>(
        &self,
        context: &'static str,
        id: &UserId,
        f: impl FnMut(&mut UserRecord) -> T + Send,
    ) -> Result<T, StoreError> {
        self.optimistic(context, id, Commit::Transient, f)
    }

    fn write_part(&self, id: &UserId, part: Part<'_>) -> Result<(), StoreError> {
        let cols = sql::part_cols(part)?;
        // One statement: autocommit, one round trip (a transaction around it would add two).
        off_runtime(|| {
            let mut conn = self.conn()?;
            let Pooled { client, statements } = &mut *conn;
            cached_update(client, statements, cols, id)
        })
    }
}

/// Whether a write waits for its commit to be durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// The default: the commit returns once its WAL is on disk.
    Durable,
    /// A transient step (a lockout reservation): the commit returns once it is visible.
    Transient,
}

impl PostgresStore {
    /// The optimistic atomic step of [`RecordBackend::atomic`], committed as `commit` says.
    fn optimistic<T: Send>(
        &self,
        context: &'static str,
        id: &UserId,
        commit: Commit,
        mut f: impl FnMut(&mut UserRecord) -> T + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| {
            let mut conn = self.conn()?;
            let Pooled { client, statements } = &mut *conn;
            let (mut record, version) = versioned_read(client, statements, context, id)?;
            let before = record.clone();
            let out = f(&mut record);
            if record == before {
                // Nothing to write: the answer is that of the committed row just read.
                return Ok(out);
            }
            let cols = sql::credential_cols(&record)?;
            let update = match commit {
                Commit::Durable => versioned_update_sql(&cols),
                Commit::Transient => transient_update_sql(&cols),
            };
            let mut vals = sql::update_values(cols, id);
            vals.push(Val::Text(Some(version)));
            if cached_execute(client, statements, context, &update, &vals)? == 1 {
                return Ok(out);
            }
            // Changed (or deleted) since the read: under the row lock this time.
            let mut tx = client.transaction().map_err(be(context))?;
            let out = sql::atomic_in(
                &mut CachedTx {
                    tx: &mut tx,
                    statements,
                },
                id,
                f,
            )?;
            tx.commit().map_err(be(context))?;
            Ok(out)
        })
    }
}

/// Inserts the group rows of `users`, many rows per statement.
fn insert_groups<'a>(
    tx: &mut Transaction<'_>,
    users: impl IntoIterator<Item = &'a User>,
) -> Result<(), StoreError> {
    const ROWS: usize = IMPORT_CHUNK * 10;
    let mut vals = Vec::new();
    let mut tuples = Vec::new();
    for u in users {
        for (position, name, key) in sql::group_rows(u) {
            let n = vals.len();
            let marks: Vec<String> = (n + 1..=n + 5).map(|i| format!("?{i}")).collect();
            tuples.push(format!("({})", marks.join(", ")));
            vals.extend([
                text_val(u.id.as_str()),
                Val::Int(Some(position)),
                text_val(u.site.as_str()),
                text_val(name),
                Val::Text(Some(key)),
            ]);
            if tuples.len() == ROWS {
                insert_group_rows(tx, &tuples, &vals)?;
                tuples.clear();
                vals.clear();
            }
        }
    }
    if tuples.is_empty() {
        return Ok(());
    }
    insert_group_rows(tx, &tuples, &vals)
}

/// Migration 4's Rust step: every key recomputed ([`sql::rekey`]), then the skeleton index.
fn rekey(tx: &mut Transaction<'_>) -> Result<(), StoreError> {
    let context = "recomputing the username keys";
    let rows = query(tx, context, sql::REKEY_SELECT, &[])?
        .iter()
        .map(|r| {
            Ok(sql::KeyRow {
                id: r.try_get("id")?,
                site: r.try_get("site")?,
                username: r.try_get("username")?,
                forename: r.try_get("forename")?,
                surname: r.try_get("surname")?,
                email: r.try_get("email")?,
            })
        })
        .collect::<Result<Vec<_>, postgres::Error>>()
        .map_err(be(context))?;
    let parked = [text_val(sql::REKEY_PARKED)];
    execute(
        tx,
        context,
        "UPDATE users SET username_key = ?1 || id",
        &parked,
    )?;
    let (plan, _parked) = sql::rekey(&rows);
    for (id, cols) in plan {
        let id = UserId::parse(&id).map_err(|_| StoreError::corrupt("id", "not an id"))?;
        update(tx, cols, &id)?;
    }
    for row in query(tx, context, sql::REKEY_GROUPS, &[])? {
        let (user, position, name): (String, i64, String) = (
            row.try_get("user_id").map_err(be(context))?,
            row.try_get("position").map_err(be(context))?,
            row.try_get("name").map_err(be(context))?,
        );
        let vals = [
            text_val(&fold(&name)),
            text_val(&user),
            Val::Int(Some(position)),
        ];
        let sql = "UPDATE user_groups SET name_key = ?1 WHERE user_id = ?2 AND position = ?3";
        execute(tx, context, sql, &vals)?;
    }
    tx.batch_execute(sql::SKELETON_INDEX).map_err(be(context))
}

/// One multi-row `INSERT INTO table` of `rows` (all with the same columns), with `suffix`
/// appended (`ON CONFLICT …`, `RETURNING …`); the rows it returns.
fn insert_rows(
    tx: &mut Transaction<'_>,
    table: &str,
    rows: &[sql::Cols],
    suffix: &str,
) -> Result<Vec<Row>, StoreError> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Vec<&str> = first.iter().map(|(n, _)| *n).collect();
    let width = names.len();
    let mut vals = Vec::with_capacity(rows.len() * width);
    let mut tuples = Vec::with_capacity(rows.len());
    for row in rows {
        let marks: Vec<String> = (vals.len() + 1..=vals.len() + width)
            .map(|i| format!("?{i}"))
            .collect();
        tuples.push(format!("({})", marks.join(", ")));
        vals.extend(row.iter().map(|(_, v)| v.clone()));
    }
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES {}{suffix}",
        names.join(", "),
        tuples.join(", ")
    );
    query(tx, "inserting rows", &sql, &vals)
}

/// The longest run of `users` from the start in which no id, no username and no username
/// skeleton (in its site) comes twice: inserting such a run in one statement decides each entry as inserting them
/// one after the other would.
fn distinct_run(users: &[NewUser]) -> usize {
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    let mut looks = HashSet::new();
    users
        .iter()
        .position(|u| {
            let user = &u.record.user;
            !ids.insert(&user.id)
                || !names.insert((&user.site, fold(&user.username)))
                || !looks.insert((&user.site, skeleton(&user.username)))
        })
        .unwrap_or(users.len())
}

/// `create_users` in set form: each run of distinct entries is one multi-row insert that skips
/// taken rows and returns the ids it wrote, then one insert of the run's groups and one of its
/// events, so a batch of 500 users costs a handful of round trips instead of 2,000.
fn create_users_in(
    tx: &mut Transaction<'_>,
    users: &[NewUser],
) -> Result<Vec<Creation>, StoreError> {
    let mut out = Vec::with_capacity(users.len());
    let mut rest = users;
    while !rest.is_empty() {
        let run_len = distinct_run(rest).clamp(1, IMPORT_CHUNK);
        let (run, after) = rest.split_at(run_len);
        rest = after;
        let rows = run
            .iter()
            .map(|u| sql::all_cols(&u.record))
            .collect::<Result<Vec<_>, _>>()?;
        let suffix = " ON CONFLICT DO NOTHING RETURNING id";
        let written: HashSet<String> = insert_rows(tx, "users", &rows, suffix)?
            .iter()
            .map(|r| r.try_get::<_, String>("id"))
            .collect::<Result<_, _>>()
            .map_err(be("creating users"))?;
        let is_written = |u: &NewUser| written.contains(u.record.user.id.as_str());
        let skipped: Vec<Val> = (run.iter().filter(|u| !is_written(u)))
            .map(|u| text_val(u.record.user.id.as_str()))
            .collect();
        let mut id_taken = HashSet::new();
        let mut key_taken = HashSet::new();
        if !skipped.is_empty() {
            let mut f = sql::Filter::default();
            let list = skipped.into_iter().map(|v| f.bind(v)).collect::<Vec<_>>();
            let sql = format!("SELECT id FROM users WHERE id IN ({})", list.join(", "));
            for row in query(tx, "creating users", &sql, &f.vals)? {
                id_taken.insert(
                    row.try_get::<_, String>("id")
                        .map_err(be("creating users"))?,
                );
            }
            // Of the rest, those whose username key is taken; the others met a skeleton.
            let mut f = sql::Filter::default();
            let pairs: Vec<String> = (run.iter().filter(|u| !is_written(u)))
                .map(|u| {
                    let site = f.bind(text_val(u.record.user.site.as_str()));
                    let key = f.bind(Val::Text(Some(fold(&u.record.user.username))));
                    format!("(site = {site} AND username_key = {key})")
                })
                .collect();
            let sql = format!(
                "SELECT site, username_key FROM users WHERE {}",
                pairs.join(" OR ")
            );
            for row in query(tx, "creating users", &sql, &f.vals)? {
                let site: String = row.try_get("site").map_err(be("creating users"))?;
                let key: String = row.try_get("username_key").map_err(be("creating users"))?;
                key_taken.insert((site, key));
            }
        }
        let created: Vec<&NewUser> = run.iter().filter(|u| is_written(u)).collect();
        insert_groups(tx, created.iter().map(|u| &u.record.user))?;
        let events =
            (created.iter().map(|u| sql::audit_values(&u.event))).collect::<Result<Vec<_>, _>>()?;
        let events: Vec<sql::Cols> = events
            .into_iter()
            .map(|vals| sql::AUDIT_NAMES.iter().copied().zip(vals).collect())
            .collect();
        insert_rows(tx, "audit", &events, "")?;
        out.extend(run.iter().map(|u| {
            let user = &u.record.user;
            let key = (user.site.as_str().to_owned(), fold(&user.username));
            match () {
                () if is_written(u) => Creation::Created,
                () if id_taken.contains(user.id.as_str()) => Creation::IdTaken,
                () if key_taken.contains(&key) => Creation::UsernameTaken,
                () => Creation::UsernameConfusable,
            }
        }));
    }
    Ok(out)
}

fn insert_group_rows(
    tx: &mut Transaction<'_>,
    tuples: &[String],
    vals: &[Val],
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO user_groups (user_id, position, site, name, name_key) VALUES {}",
        tuples.join(", ")
    );
    execute(tx, "writing groups", &sql, vals).map(drop)
}

fn not_found(id: &UserId) -> StoreError {
    StoreError::NotFound { user: id.clone() }
}

/// The credential part of a record, read with `FOR UPDATE`: the row lock an atomic operation
/// holds until its transaction ends.
fn locked(
    tx: &mut Transaction<'_>,
    statements: Option<&mut Statements>,
    context: &'static str,
    id: &UserId,
) -> Result<UserRecord, StoreError> {
    let vals = [text_val(id.as_str())];
    let rows = match statements {
        Some(statements) => cached_query(tx, statements, context, &LOCKED_SELECT, &vals)?,
        None => query(tx, context, &LOCKED_SELECT, &vals)?,
    };
    let row = rows.first().ok_or_else(|| not_found(id))?;
    sql::parse_record(row, Vec::new())
}

/// The whole record of `id` (groups included) under the row lock: what a profile change or a
/// deletion decides on.
fn locked_whole(tx: &mut Transaction<'_>, id: &UserId) -> Result<UserRecord, StoreError> {
    let rows = query(
        tx,
        "reading a user",
        &LOCKED_WHOLE_SELECT,
        &[text_val(id.as_str())],
    )?;
    records(&rows)?.pop().ok_or_else(|| not_found(id))
}

/// The read of [`locked_whole`].
static LOCKED_WHOLE_SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, {GROUPS} FROM users WHERE id = ?1 FOR UPDATE",
        sql::user_select_list()
    )
});

/// The read of [`locked`].
static LOCKED_SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {} FROM users WHERE id = ?1 FOR UPDATE",
        sql::user_select_list()
    )
});

/// The read of the optimistic atomic step: the credential columns and the row's version.
/// `xmin`, the id of the transaction that wrote this version of the row, changes with every
/// update by another transaction (a new row version), so it tells whether the row is still as
/// read; it is compared as text, the one form of `xid` a client can bind.
static VERSIONED_SELECT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {}, xmin::text AS row_version FROM users WHERE id = ?1",
        sql::user_select_list()
    )
});

/// `UPDATE users SET … WHERE id = ?N AND xmin::text = ?N+1`, for [`sql::update_values`] and
/// the version read by [`VERSIONED_SELECT`]. Under read committed an update that waited for a
/// concurrent writer re-checks the condition on the row that writer left, so it matches
/// nothing then.
fn versioned_update_sql(cols: &sql::Cols) -> String {
    format!(
        "{} AND xmin::text = ?{}",
        sql::update_sql(cols),
        cols.len() + 2
    )
}

/// [`versioned_update_sql`] for a transient step: the statement turns `synchronous_commit`
/// off for its own implicit transaction (`set_config(…, true)` lasts until that transaction
/// ends, and its commit reads the setting), so its commit does not wait for the WAL flush.
fn transient_update_sql(cols: &sql::Cols) -> String {
    format!(
        "{} FROM (SELECT set_config('synchronous_commit', 'off', true)) AS transient \
         WHERE users.id = ?{} AND users.xmin::text = ?{}",
        sql::update_set_sql(cols),
        cols.len() + 1,
        cols.len() + 2
    )
}

/// The record of `id` and its row version ([`VERSIONED_SELECT`]), for an optimistic step.
fn versioned_read(
    client: &mut Client,
    statements: &mut Statements,
    context: &'static str,
    id: &UserId,
) -> Result<(UserRecord, String), StoreError> {
    let vals = [text_val(id.as_str())];
    let rows = cached_query(client, statements, context, &VERSIONED_SELECT, &vals)?;
    let row = rows.first().ok_or_else(|| not_found(id))?;
    let version: String = row
        .try_get("row_version")
        .map_err(|_| StoreError::corrupt("xmin", "not text"))?;
    Ok((sql::parse_record(row, Vec::new())?, version))
}

/// The one statement of an optimistic recorded change: the update of `cols` if the row is
/// still at `version`, and the insert of `events` only if the update happened; it answers
/// how many rows were updated (0 or 1).
fn recorded_statement(
    cols: &sql::Cols,
    id: &UserId,
    version: String,
    events: &[AuditEvent],
) -> Result<(String, Vec<Val>), StoreError> {
    let update = versioned_update_sql(cols);
    let mut vals = sql::update_values(cols.clone(), id);
    vals.push(Val::Text(Some(version)));
    let mut statement = format!("WITH u AS ({update} RETURNING 1)");
    if !events.is_empty() {
        let mut tuples = Vec::with_capacity(events.len());
        for event in events {
            let event_vals = sql::audit_values(event)?;
            let first = vals.len() + 1;
            let marks: Vec<String> = (first..first + event_vals.len())
                .map(|i| format!("?{i}"))
                .collect();
            tuples.push(format!("({})", marks.join(", ")));
            vals.extend(event_vals);
        }
        statement.push_str(&format!(
            ", e AS (INSERT INTO audit ({}) SELECT * FROM (VALUES {}) AS v \
             WHERE EXISTS (SELECT 1 FROM u))",
            sql::AUDIT_COLUMNS,
            tuples.join(", ")
        ));
    }
    statement.push_str(" SELECT count(*) FROM u");
    Ok((statement, vals))
}

/// A write transaction using the connection's statement cache for the statements of the
/// atomic step.
struct CachedTx<'a, 'b> {
    tx: &'a mut Transaction<'b>,
    statements: &'a mut Statements,
}

impl sql::WriteTx for CachedTx<'_, '_> {
    fn locked(&mut self, id: &UserId) -> Result<UserRecord, StoreError> {
        locked(self.tx, Some(self.statements), "locking a user", id)
    }

    fn update(&mut self, cols: sql::Cols, id: &UserId) -> Result<(), StoreError> {
        cached_update(self.tx, self.statements, cols, id)
    }

    fn insert_audit(&mut self, vals: &[Val]) -> Result<(), StoreError> {
        let sql = sql::audit_insert_sql();
        let context = "appending an audit event";
        cached_execute(self.tx, self.statements, context, &sql, vals).map(drop)
    }

    fn insert_new(&mut self, record: &UserRecord) -> Result<Creation, StoreError> {
        sql::WriteTx::insert_new(self.tx, record)
    }
}

impl sql::WriteTx for Transaction<'_> {
    fn locked(&mut self, id: &UserId) -> Result<UserRecord, StoreError> {
        locked(self, None, "locking a user", id)
    }

    fn update(&mut self, cols: sql::Cols, id: &UserId) -> Result<(), StoreError> {
        update(self, cols, id)
    }

    fn insert_audit(&mut self, vals: &[Val]) -> Result<(), StoreError> {
        insert_audit(self, vals)
    }

    fn insert_new(&mut self, record: &UserRecord) -> Result<Creation, StoreError> {
        let u = &record.user;
        let cols = sql::all_cols(record)?;
        let vals: Vec<Val> = cols.iter().map(|(_, v)| v.clone()).collect();
        if execute(self, "creating a user", &sql::insert_new_sql(&cols), &vals)? == 0 {
            let id = [text_val(u.id.as_str())];
            let rows = query(
                self,
                "creating a user",
                "SELECT 1 FROM users WHERE id = ?1",
                &id,
            )?;
            let key = [
                text_val(u.site.as_str()),
                Val::Text(Some(fold(&u.username))),
            ];
            let sql = "SELECT 1 FROM users WHERE site = ?1 AND username_key = ?2";
            let keys = query(self, "creating a user", sql, &key)?;
            return Ok(sql::taken(!rows.is_empty(), !keys.is_empty()));
        }
        write_groups(self, u)?;
        Ok(Creation::Created)
    }
}

impl sql::ProfileTx for Transaction<'_> {
    fn locked_whole(&mut self, id: &UserId) -> Result<UserRecord, StoreError> {
        locked_whole(self, id)
    }

    /// The unique indexes on the username key and skeleton refuse a taken or confusable
    /// username ([`write_error`] names which).
    fn write_profile(&mut self, user: &User) -> Result<(), StoreError> {
        update(self, sql::profile_cols(user)?, &user.id)?;
        write_groups(self, user)
    }

    fn delete_rows(&mut self, sql: &str, id: &UserId) -> Result<(), StoreError> {
        execute(self, "deleting a user", sql, &[text_val(id.as_str())]).map(drop)
    }
}

fn insert_audit(c: &mut impl GenericClient, vals: &[Val]) -> Result<(), StoreError> {
    execute(
        c,
        "appending an audit event",
        &sql::audit_insert_sql(),
        vals,
    )
    .map(drop)
}

fn update(tx: &mut impl GenericClient, cols: sql::Cols, id: &UserId) -> Result<(), StoreError> {
    let sql = sql::update_sql(&cols);
    let vals = sql::update_values(cols, id);
    if execute(tx, "writing a user", &sql, &vals)? == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

/// As [`update`], for the fixed column sets of the atomic steps and the plain writes.
fn cached_update(
    c: &mut impl GenericClient,
    statements: &mut Statements,
    cols: sql::Cols,
    id: &UserId,
) -> Result<(), StoreError> {
    let sql = sql::update_sql(&cols);
    let vals = sql::update_values(cols, id);
    if cached_execute(c, statements, "writing a user", &sql, &vals)? == 0 {
        return Err(not_found(id));
    }
    Ok(())
}

fn write_groups(tx: &mut Transaction<'_>, u: &User) -> Result<(), StoreError> {
    execute(
        tx,
        "writing groups",
        "DELETE FROM user_groups WHERE user_id = ?1",
        &[text_val(u.id.as_str())],
    )?;
    insert_groups(tx, [u])
}

/// The total number of matches of a paged query, as its last column: counted over the whole
/// result before `LIMIT` and `OFFSET` (over the groups, for a group listing).
const TOTAL: &str = ", COUNT(*) OVER () AS total";

/// The groups of the row's user, in order, as an array column named `groups`.
const GROUPS: &str = "ARRAY(SELECT g.name FROM user_groups g WHERE g.user_id = users.id \
                      ORDER BY g.position) AS groups";

/// The user columns and the groups: one statement reads whole records.
fn select_users() -> String {
    format!("SELECT {}, {GROUPS} FROM users", sql::user_select_list())
}

/// Parses rows selected with [`select_users`].
fn records(rows: &[Row]) -> Result<Vec<UserRecord>, StoreError> {
    rows.iter()
        .map(|r| {
            let groups: Vec<String> = r
                .try_get("groups")
                .map_err(|_| StoreError::corrupt("user_groups.name", "not text"))?;
            sql::parse_record(r, groups)
        })
        .collect()
}

/// Runs the count of a paged query.
fn count(tx: &mut impl GenericClient, q: &sql::Paged) -> Result<u64, StoreError> {
    let rows = query(tx, "counting", &q.count, &q.count_vals)?;
    rows.first().map_or(Ok(0), |r| sql::parse_count_row(r))
}

impl UserStore for PostgresStore {
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        let cols = sql::all_cols(record)?;
        self.write("creating a user", |tx| {
            let sql = sql::insert_sql(&cols);
            let vals: Vec<Val> = cols.iter().map(|(_, v)| v.clone()).collect();
            execute(tx, "creating a user", &sql, &vals)?;
            write_groups(tx, &record.user)
        })
    }

    fn create_users(&self, users: &[NewUser]) -> Result<Vec<Creation>, StoreError> {
        self.write("creating users", |tx| create_users_in(tx, users))
    }

    fn get_user(&self, id: &UserId) -> Result<Option<UserRecord>, StoreError> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("{} WHERE id = ?1", select_users()));
        self.read_one(&SQL, &[text_val(id.as_str())])
    }

    fn find_user(&self, site: &SiteId, username: &str) -> Result<Option<UserRecord>, StoreError> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| format!("{} WHERE site = ?1 AND username_key = ?2", select_users()));
        let Some(key) = sql::username_lookup(username) else {
            return Ok(None);
        };
        self.read_one(&SQL, &[text_val(site.as_str()), Val::Text(Some(key))])
    }

    fn update_profile(&self, user: &User) -> Result<(), StoreError> {
        let cols = sql::profile_cols(user)?;
        self.write("updating a profile", |tx| {
            update(tx, cols, &user.id)?;
            write_groups(tx, user)
        })
    }

    fn search_users(&self, search: &UserQuery) -> Result<Page<UserRecord>, StoreError> {
        // The page and the total in one statement (one snapshot, one round trip); only a page
        // past the end needs the count on its own.
        let q = sql::users_page(search, &format!(", {GROUPS}{TOTAL}"))?;
        self.paged("searching users", &q, search.offset, records)
    }

    fn list_groups(&self, listing: &GroupQuery) -> Result<Page<GroupSummary>, StoreError> {
        let q = sql::groups_page(listing, TOTAL)?;
        self.paged("listing groups", &q, listing.offset, |rows| {
            rows.iter().map(|r| sql::parse_group(r)).collect()
        })
    }

    super::ops::record_store_methods!();

    fn replace_batch(&self, batch: &TemporaryBatch) -> Result<BatchWritten, StoreError> {
        self.write("replacing a batch", |tx| sql::replace_batch_in(tx, batch))
    }

    fn append_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let vals = sql::audit_values(event)?;
        off_runtime(|| {
            let mut conn = self.conn()?;
            let Pooled { client, statements } = &mut *conn;
            let (context, sql) = ("appending an audit event", sql::audit_insert_sql());
            cached_execute(client, statements, context, &sql, &vals).map(drop)
        })
    }

    /// Optimistic, like the atomic steps (`RecordBackend::atomic`): the versioned read, then
    /// the conditional update and the events' insert in one statement (a data-modifying
    /// `WITH`, so both or neither), in autocommit: two round trips and one commit instead of
    /// five round trips.
    /// When the row changed since the read, the change runs again under the row lock.
    fn change_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        let context = "recording a change";
        let done = off_runtime(|| {
            let mut conn = self.conn()?;
            let Pooled { client, statements } = &mut *conn;
            let (mut record, version) = versioned_read(client, statements, context, id)?;
            let before = record.clone();
            let events = super::ops::recorded(&mut record, change)?;
            if record == before && events.is_empty() {
                return Ok(true);
            }
            let cols = sql::credential_cols(&record)?;
            let (statement, vals) = recorded_statement(&cols, id, version, &events)?;
            let rows = cached_query(client, statements, context, &statement, &vals)?;
            let updated: i64 = (rows.first())
                .ok_or_else(|| StoreError::corrupt("recorded change", "no row"))?
                .try_get(0)
                .map_err(|_| StoreError::corrupt("recorded change", "not a count"))?;
            Ok::<_, StoreError>(updated == 1)
        })?;
        if done {
            return Ok(());
        }
        // Changed (or deleted) since the read: under the row lock this time.
        self.write(context, |tx| sql::change_recorded_in(tx, id, change))
    }

    fn change_profile_recorded(
        &self,
        id: &UserId,
        change: &mut (dyn FnMut(&mut UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<(), StoreError> {
        self.write("recording a profile change", |tx| {
            sql::change_profile_recorded_in(tx, id, change)
        })
    }

    fn delete_recorded(
        &self,
        id: &UserId,
        decide: &mut (dyn FnMut(&UserRecord) -> Vec<AuditEvent> + Send),
    ) -> Result<bool, StoreError> {
        self.write("deleting a user", |tx| {
            sql::delete_recorded_in(tx, id, decide)
        })
    }

    fn prune_audit(&self, site: &SiteId, before: OffsetDateTime) -> Result<u64, StoreError> {
        let vals = [text_val(site.as_str()), Val::Int(Some(sql::ts(before)?))];
        let sql = "DELETE FROM audit WHERE site = ?1 AND at_ns < ?2";
        self.write("pruning the audit trail", |tx| {
            execute(tx, "pruning the audit trail", sql, &vals)
        })
    }

    fn query_audit(&self, audit: &AuditQuery) -> Result<Page<AuditEvent>, StoreError> {
        let q = sql::audit_page(audit, TOTAL)?;
        self.paged("querying the audit log", &q, audit.offset, |rows| {
            rows.iter().map(|r| sql::parse_audit(r)).collect()
        })
    }
}
