//! Importing users in bulk from another system.
//!
//! Records stream in from NDJSON or CSV ([`ndjson_records`], [`csv_records`]) or from the
//! application's own source, are validated one by one, and are written in batched
//! transactions, each user with its `user_created` audit event
//! ([`Keyward::import_users`]). A bad record is reported with its line and the field at fault,
//! never with a value (a password pasted into the wrong column must not reach a log), and
//! nothing of it is written; the others go in. Users already present (same username in the
//! site) are skipped, so an interrupted import can simply be run again.
//!
//! # Fields
//! `username` (required), `forename`, `surname`, `user_type` (default `user`), `groups` (a
//! JSON array, or one text with groups separated by `;`), `role` (`user`, `moderator`,
//! `administrator`; default `user`), `email`, `email_verified`, `phone`, `phone_verified`,
//! `date_of_birth` (`YYYY-MM-DD`), `sso_linked`, and a legacy hash in Kinde's columns:
//! `hashed_password`, `hashing_method`, `salt`, `salt_position`, `is_temporary_password`,
//! `temporary_password_never_expires` (see [`ImportRecord`]). Flags are JSON booleans or the texts `true`/`false`, `yes`/`no`,
//! `1`/`0`; an empty text or `null` is the field's default. A user without
//! `hashed_password` is imported without a password (unclaimed: give them a temporary one).

use std::fmt;
use std::io::{BufRead, Read};

use serde_json::{Map, Value};
use time::Date;
use time::macros::format_description;

use crate::admin::CancelToken;
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::hash::{HashError, HashingMethod, ImportError, ImportRecord, SaltPosition};
use crate::permission::Permission;
use crate::service::Keyward;
use crate::store::{Creation, NewUser, StoreError, UserRecord};
use crate::user::{Role, SiteId, User, UserId};

/// One user read from an import file, before it is given a site and an id.
///
/// `Debug` shows the line and the username only: any other field may hold a value that was
/// put in the wrong column.
#[derive(Clone)]
#[non_exhaustive]
pub struct ImportedUser {
    /// The line the record starts on (1 is the first line of the file).
    pub line: u64,
    /// Sign-in name.
    pub username: String,
    /// Given name.
    pub forename: String,
    /// Family name.
    pub surname: String,
    /// User type (selects the password policies).
    pub user_type: String,
    /// Groups, in order.
    pub groups: Vec<String>,
    /// Role.
    pub role: Role,
    /// Email address.
    pub email: Option<String>,
    /// Whether the other system verified `email`.
    pub email_verified: bool,
    /// Phone number.
    pub phone: Option<String>,
    /// Whether the other system verified `phone`.
    pub phone_verified: bool,
    /// Date of birth.
    pub date_of_birth: Option<Date>,
    /// Signs in through the organisation's directory.
    pub sso_linked: bool,
    /// The legacy hash, if the record carries one.
    pub password: Option<ImportRecord>,
}

impl fmt::Debug for ImportedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedUser")
            .field("line", &self.line)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ImportedUser {
    /// A record with only a username (user type `user`, role `user`), as on line `line`.
    #[must_use]
    pub fn new(line: u64, username: impl Into<String>) -> Self {
        Self {
            line,
            username: username.into(),
            forename: String::new(),
            surname: String::new(),
            user_type: "user".to_owned(),
            groups: Vec::new(),
            role: Role::User,
            email: None,
            email_verified: false,
            phone: None,
            phone_verified: false,
            date_of_birth: None,
            sso_linked: false,
            password: None,
        }
    }

    /// The user this record creates in `site`, with a new id.
    fn into_user(self, site: &SiteId, now: time::OffsetDateTime) -> (User, Option<ImportRecord>) {
        let mut user = User::new(
            site.clone(),
            self.username,
            self.forename,
            self.surname,
            self.user_type,
            now,
        );
        user.groups = self.groups;
        user.role = self.role;
        user.email = self.email;
        user.email_verified = self.email_verified;
        user.phone = self.phone;
        user.phone_verified = self.phone_verified;
        user.date_of_birth = self.date_of_birth;
        user.sso_linked = self.sso_linked;
        (user, self.password)
    }
}

/// Why one record of an import was refused: its line, the field at fault and what is wrong,
/// never the field's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {field}: {reason}")]
#[non_exhaustive]
pub struct RecordError {
    /// The line the record starts on.
    pub line: u64,
    /// The field at fault: its name, `column N` for a bad CSV header, `(unknown field)` for a
    /// JSON key keyward does not import, `record` when the record as a whole is unreadable.
    pub field: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl RecordError {
    fn new(line: u64, field: impl Into<String>, reason: &'static str) -> Self {
        Self {
            line,
            field: field.into(),
            reason,
        }
    }

    fn record(line: u64, reason: &'static str) -> Self {
        Self::new(line, "record", reason)
    }
}

/// The fields keyward reads; any other is refused, so a misspelt column is not silently lost.
const FIELDS: [&str; 18] = [
    "username",
    "forename",
    "surname",
    "user_type",
    "groups",
    "role",
    "email",
    "email_verified",
    "phone",
    "phone_verified",
    "date_of_birth",
    "sso_linked",
    "hashed_password",
    "hashing_method",
    "salt",
    "salt_position",
    "is_temporary_password",
    "temporary_password_never_expires",
];

/// The fields of one record, taken out one by one so each error names its field.
struct Fields {
    line: u64,
    map: Map<String, Value>,
}

impl Fields {
    fn error(&self, field: &str, reason: &'static str) -> RecordError {
        RecordError::new(self.line, field, reason)
    }

    /// The field as text; `null` and the empty text are absent.
    fn text(&mut self, field: &str) -> Result<Option<String>, RecordError> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.error(field, "must be text")),
        }
    }

    fn flag(&mut self, field: &str) -> Result<bool, RecordError> {
        match self.map.remove(field) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::String(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" | "false" | "no" | "0" => Ok(false),
                "true" | "yes" | "1" => Ok(true),
                _ => Err(self.error(field, "must be true or false")),
            },
            Some(_) => Err(self.error(field, "must be true or false")),
        }
    }

    fn list(&mut self, field: &str) -> Result<Vec<String>, RecordError> {
        let items: Vec<String> = match self.map.remove(field) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s.split(';').map(|g| g.trim().to_owned()).collect(),
            Some(Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_owned()),
                    _ => Err(self.error(field, "must be a list of texts")),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => Err(self.error(field, "must be a list of texts"))?,
        };
        Ok(items.into_iter().filter(|g| !g.is_empty()).collect())
    }

    fn parsed<T>(
        &mut self,
        field: &str,
        reason: &'static str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<Option<T>, RecordError> {
        match self.text(field)? {
            None => Ok(None),
            Some(text) => parse(text.trim())
                .map(Some)
                .ok_or_else(|| self.error(field, reason)),
        }
    }

    /// Reads the record; the first field at fault is the error.
    fn into_user(mut self) -> Result<ImportedUser, RecordError> {
        if self.map.keys().any(|k| !FIELDS.contains(&k.as_str())) {
            // Not named: a key could be a value put where a name belongs.
            return Err(self.error("(unknown field)", "is not a field keyward imports"));
        }
        let username = self
            .text("username")?
            .ok_or_else(|| self.error("username", "is required"))?;
        let mut user = ImportedUser::new(self.line, username);
        user.forename = self.text("forename")?.unwrap_or_default();
        user.surname = self.text("surname")?.unwrap_or_default();
        if let Some(user_type) = self.text("user_type")? {
            user.user_type = user_type;
        }
        user.groups = self.list("groups")?;
        let role = self.parsed(
            "role",
            "must be user, moderator or administrator",
            Role::parse,
        )?;
        user.role = role.unwrap_or(Role::User);
        user.email = self.text("email")?;
        user.email_verified = self.flag("email_verified")?;
        user.phone = self.text("phone")?;
        user.phone_verified = self.flag("phone_verified")?;
        let day = format_description!("[year]-[month]-[day]");
        user.date_of_birth = self.parsed("date_of_birth", "must be a date YYYY-MM-DD", |t| {
            Date::parse(t, &day).ok()
        })?;
        user.sso_linked = self.flag("sso_linked")?;
        user.password = self.password()?;
        Ok(user)
    }

    fn password(&mut self) -> Result<Option<ImportRecord>, RecordError> {
        let method = self.parsed(
            "hashing_method",
            "is not a hashing method keyward knows",
            |t| serde_json::from_value::<HashingMethod>(Value::String(t.to_ascii_lowercase())).ok(),
        )?;
        let position = self.parsed("salt_position", "must be prefix or suffix", |t| {
            serde_json::from_value::<SaltPosition>(Value::String(t.to_ascii_lowercase())).ok()
        })?;
        let salt = self.text("salt")?;
        let temporary = self.flag("is_temporary_password")?;
        let never_expires = self.flag("temporary_password_never_expires")?;
        let Some(hash) = self.text("hashed_password")? else {
            if method.is_some()
                || salt.is_some()
                || position.is_some()
                || temporary
                || never_expires
            {
                return Err(self.error("hashed_password", "is required with the other hash fields"));
            }
            return Ok(None);
        };
        let mut record = ImportRecord::new(hash);
        record.hashing_method = method;
        record.salt = salt;
        record.salt_position = position;
        record.is_temporary_password = temporary;
        record.temporary_password_never_expires = never_expires;
        Ok(Some(record))
    }
}

/// The longest record the readers take (an NDJSON line, a CSV record): far above any real
/// user, low enough that a file without line breaks cannot fill memory.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Reads one line of at most [`MAX_RECORD_BYTES`] into `buf` (without the newline); the rest
/// of a longer line is skipped. `Ok(None)` at the end of the input; `Ok(Some(false))` for a
/// line that was too long.
fn bounded_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>) -> std::io::Result<Option<bool>> {
    buf.clear();
    let mut fits = true;
    let mut read_any = false;
    loop {
        let available = match reader.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(read_any.then_some(fits));
        }
        read_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..end], Some(end + 1)),
            None => (available, None),
        };
        if fits && buf.len() + chunk.len() <= MAX_RECORD_BYTES {
            buf.extend_from_slice(chunk);
        } else {
            fits = false;
        }
        let used = done.unwrap_or(available.len());
        reader.consume(used);
        if done.is_some() {
            return Ok(Some(fits));
        }
    }
}

/// Reads NDJSON: one JSON object per line, blank lines ignored, a UTF-8 byte-order mark on
/// the first line allowed. Streams: one line (at most [`MAX_RECORD_BYTES`]) in memory at a
/// time. A read error is reported once, on the line it happened, and ends the records.
pub fn ndjson_records<R: BufRead>(
    mut reader: R,
) -> impl Iterator<Item = Result<ImportedUser, RecordError>> {
    let mut buf = Vec::new();
    let mut line = 0u64;
    let mut ended = false;
    std::iter::from_fn(move || {
        while !ended {
            line += 1;
            let fits = match bounded_line(&mut reader, &mut buf) {
                Ok(Some(fits)) => fits,
                Ok(None) => return None,
                Err(_) => {
                    ended = true;
                    return Some(Err(RecordError::record(line, "could not be read")));
                }
            };
            if !fits {
                return Some(Err(RecordError::record(line, "is longer than 64 KiB")));
            }
            let bytes = match (line, buf.strip_prefix(b"\xEF\xBB\xBF")) {
                (1, Some(rest)) => rest,
                _ => &buf[..],
            };
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Some(ndjson_record(line, bytes));
        }
        None
    })
}

fn ndjson_record(line: u64, bytes: &[u8]) -> Result<ImportedUser, RecordError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| RecordError::record(line, "is not valid UTF-8"))?;
    // The parse error's message is not used: it can quote the input.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Fields { line, map }.into_user(),
        Ok(_) => Err(RecordError::record(line, "is not a JSON object")),
        Err(_) => Err(RecordError::record(line, "is not valid JSON")),
    }
}

/// Reads CSV with a header row naming the fields (any order; groups separated by `;`).
/// Streams: one record in memory at a time. A header that cannot be read, names a field
/// keyward does not import or names one twice is one error on line 1, and nothing is read.
pub fn csv_records<R: Read>(reader: R) -> impl Iterator<Item = Result<ImportedUser, RecordError>> {
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(reader);
    let header: Result<Vec<String>, RecordError> = match csv.headers() {
        Ok(h) => {
            let names: Vec<String> = h.iter().map(|n| n.trim().to_owned()).collect();
            let mut seen = std::collections::HashSet::new();
            // A bad column is named by its position: a header row that is really data must
            // not be echoed.
            let bad = names
                .iter()
                .position(|n| !FIELDS.contains(&n.as_str()) || !seen.insert(n));
            match bad {
                Some(i) => {
                    let reason = "is not a field keyward imports, or appears twice";
                    Err(RecordError::new(1, format!("column {}", i + 1), reason))
                }
                None => Ok(names),
            }
        }
        Err(_) => Err(RecordError::record(1, "header row could not be read")),
    };
    let mut records = csv.into_records();
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let header = match &header {
            Ok(header) => header,
            Err(e) => {
                failed = true;
                return Some(Err(e.clone()));
            }
        };
        let next = records.next()?;
        let record = match next {
            Ok(record) => record,
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                // A read error ends the records; a bad row (invalid UTF-8 too) does not.
                if matches!(e.kind(), csv::ErrorKind::UnequalLengths { .. }) {
                    return Some(Err(RecordError::record(
                        line,
                        "has the wrong number of fields",
                    )));
                }
                failed = matches!(e.kind(), csv::ErrorKind::Io(_));
                return Some(Err(RecordError::record(
                    line,
                    "could not be read as CSV text",
                )));
            }
        };
        let line = record.position().map_or(0, csv::Position::line);
        if record.as_slice().len() > MAX_RECORD_BYTES {
            // An unclosed quote swallows the rest of the file into one record: say so.
            let reason = "is longer than 64 KiB (an unclosed quote swallows the lines after it)";
            return Some(Err(RecordError::record(line, reason)));
        }
        let map = header
            .iter()
            .zip(record.iter())
            .map(|(name, cell)| (name.clone(), Value::String(cell.to_owned())))
            .collect();
        Some(Fields { line, map }.into_user())
    })
}

/// Counts of an import so far (given to the progress callback after every batch) or at its
/// end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportProgress {
    /// Records read.
    pub read: u64,
    /// Users created.
    pub created: u64,
    /// Records skipped because the site already has the username (or the id is used).
    /// A username that only looks like one the site has is refused instead.
    pub existing: u64,
    /// Records refused (each reported to the refusal callback).
    pub refused: u64,
    /// The import stopped at a cancel; everything counted as created is written.
    pub cancelled: bool,
}

/// How [`Keyward::import_users`] runs.
pub struct ImportOptions<'a> {
    batch_size: usize,
    on_progress: Option<&'a mut dyn FnMut(&ImportProgress)>,
    on_refused: Option<&'a mut dyn FnMut(&RecordError)>,
    cancel: Option<CancelToken>,
}

impl fmt::Debug for ImportOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportOptions")
            .field("batch_size", &self.batch_size)
            .field("on_progress", &self.on_progress.is_some())
            .field("on_refused", &self.on_refused.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl Default for ImportOptions<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> ImportOptions<'a> {
    /// Batches of 2,000 users, no callbacks, no cancel.
    #[must_use]
    pub fn new() -> Self {
        Self {
            batch_size: 2000,
            on_progress: None,
            on_refused: None,
            cancel: None,
        }
    }

    /// Users per transaction (at least 1).
    #[must_use]
    pub fn batch_size(mut self, users: usize) -> Self {
        self.batch_size = users.max(1);
        self
    }

    /// Called after every committed batch with the counts so far.
    #[must_use]
    pub fn on_progress(mut self, report: &'a mut dyn FnMut(&ImportProgress)) -> Self {
        self.on_progress = Some(report);
        self
    }

    /// Called for every refused record, as it is refused.
    #[must_use]
    pub fn on_refused(mut self, report: &'a mut dyn FnMut(&RecordError)) -> Self {
        self.on_refused = Some(report);
        self
    }

    /// Stops before the next batch once `token` is cancelled.
    #[must_use]
    pub fn cancel_with(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }
}

/// A hashing-core refusal as a reason that never quotes the stored string.
fn hash_reason(error: &HashError) -> &'static str {
    match error {
        HashError::UnknownFormat => "is not a hash format keyward knows",
        HashError::Malformed { .. } => "is malformed",
        HashError::UnsupportedVariant { .. } => {
            "is a variant of its scheme keyward does not support"
        }
        HashError::ParamOutOfBounds { .. } => "has a cost parameter over keyward's limit",
        HashError::ParamBelowMinimum { .. } => "has a cost parameter below the minimum",
        _ => "was refused by the hashing core",
    }
}

/// An import refusal as a record error on `line`.
fn import_refusal(line: u64, error: &ImportError) -> RecordError {
    let reason = match error {
        ImportError::InvalidField { reason, .. } => reason,
        ImportError::MethodMismatch { .. } => "does not match the scheme of hashed_password",
        ImportError::InvalidHash { source } => hash_reason(source),
    };
    RecordError::new(line, error.field(), reason)
}

impl Keyward {
    /// The record and event creating `user` with an optional imported hash (shared by
    /// [`import_user`](Self::import_user) and [`import_users`](Self::import_users)).
    pub(crate) fn imported(
        &self,
        actor: Option<&UserId>,
        user: User,
        hash: Option<&ImportRecord>,
    ) -> Result<NewUser, Error> {
        user.validate()?;
        let mut record = UserRecord::new(user);
        let details = match hash {
            None => "imported without a password".to_owned(),
            Some(import) => {
                let hash = self.hasher.import(import)?;
                // Issued by nobody in this system: the user themself.
                let issuer = record.user.id.clone();
                let credential = self.imported_credential(&record.user, &hash, import, issuer);
                record.password = Some(credential);
                format!("imported {} hash", hash.scheme())
            }
        };
        let (action, outcome) = (AuditAction::UserCreated, AuditOutcome::Succeeded);
        let (target, site) = (Some(&record.user.id), &record.user.site);
        let event = self.event(action, outcome, actor, target, site);
        Ok(NewUser::new(record, event.with_details(details)))
    }

    /// Creates one user with its event in one transaction; a taken username or id is
    /// [`StoreError::Conflict`].
    pub(crate) fn create_one(&self, new: NewUser) -> Result<User, Error> {
        match self.store.create_users(std::slice::from_ref(&new))?.first() {
            Some(Creation::Created) => Ok(new.record.user),
            Some(Creation::IdTaken) => Err(StoreError::Conflict { what: "user id" }.into()),
            Some(Creation::UsernameConfusable) => Err(StoreError::Conflict {
                what: crate::store::CONFUSABLE_USERNAME,
            }
            .into()),
            _ => Err(StoreError::Conflict { what: "username" }.into()),
        }
    }

    /// Imports users into `site` from a stream of records (see [`ndjson_records`] and
    /// [`csv_records`]), in transactions of [`ImportOptions::batch_size`] users, each user
    /// written with its `user_created` event. A refused record (unreadable, an invalid field,
    /// a hash keyward refuses, a role the actor may not grant) is reported to
    /// [`ImportOptions::on_refused`] and nothing of it is written; users whose username the
    /// site already has are counted as existing and left alone, so a rerun after an
    /// interruption imports only the rest.
    ///
    /// With an `actor`, the actor needs [`Permission::ManageUsers`] in `site`, and each
    /// record's role is checked with the usual rank rules (a refusal is audited); `None` is the
    /// application itself. Memory stays at one batch, whatever the length of the stream.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] when the actor may not create users in `site` at all
    /// (nothing is written); store errors (the batches before it stay written: run the import
    /// again to finish it).
    pub fn import_users<I>(
        &self,
        actor: Option<&UserId>,
        site: &SiteId,
        records: I,
        mut options: ImportOptions<'_>,
    ) -> Result<ImportProgress, Error>
    where
        I: IntoIterator<Item = Result<ImportedUser, RecordError>>,
    {
        let _span = tracing::info_span!("keyward.import_users").entered();
        let (permission, action) = (Permission::ManageUsers, AuditAction::UserCreated);
        let actor_user = match actor {
            Some(actor) => Some(self.authorize(actor, permission, action, site, None)?.user),
            None => None,
        };
        let mut counts = ImportProgress::default();
        let mut batch = Vec::with_capacity(options.batch_size);
        let mut lines = Vec::with_capacity(options.batch_size);
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            if options
                .cancel
                .as_ref()
                .is_some_and(CancelToken::is_cancelled)
            {
                counts.cancelled = true;
                break;
            }
            for next in records.by_ref().take(options.batch_size) {
                counts.read += 1;
                let line = next.as_ref().map_or(0, |r| r.line);
                match self.import_entry(actor_user.as_ref(), site, next)? {
                    Ok(entry) => {
                        lines.push(line);
                        batch.push(entry);
                    }
                    Err(refused) => {
                        counts.refused += 1;
                        if let Some(report) = options.on_refused.as_mut() {
                            report(&refused);
                        }
                    }
                }
            }
            for (creation, line) in self.store.create_users(&batch)?.into_iter().zip(&lines) {
                match creation {
                    Creation::Created => counts.created += 1,
                    Creation::UsernameConfusable => {
                        counts.refused += 1;
                        let reason = "looks like a username the site already has";
                        if let Some(report) = options.on_refused.as_mut() {
                            report(&RecordError::new(*line, "username", reason));
                        }
                    }
                    _ => counts.existing += 1,
                }
            }
            tracing::info!(
                target: "keyward::audit",
                site = site.as_str(),
                created = counts.created,
                existing = counts.existing,
                refused = counts.refused,
                "import batch committed"
            );
            batch.clear();
            lines.clear();
            if let Some(report) = options.on_progress.as_mut() {
                report(&counts);
            }
        }
        Ok(counts)
    }

    /// One record checked and turned into its store entry, or the reason it is refused.
    fn import_entry(
        &self,
        actor: Option<&User>,
        site: &SiteId,
        next: Result<ImportedUser, RecordError>,
    ) -> Result<Result<NewUser, RecordError>, Error> {
        let imported = match next {
            Ok(imported) => imported,
            Err(refused) => return Ok(Err(refused)),
        };
        let line = imported.line;
        let (user, hash) = imported.into_user(site, self.now());
        if let Some(actor) = actor {
            let (permission, action) = (Permission::ManageUsers, AuditAction::UserCreated);
            match self.require(actor, permission, action, site, Some(&user)) {
                Ok(()) => {}
                Err(Error::PermissionDenied(_)) => {
                    let reason = "may not be granted by the importer";
                    return Ok(Err(RecordError::new(line, "role", reason)));
                }
                Err(system) => return Err(system),
            }
        }
        let actor = actor.map(|a| &a.id);
        match self.imported(actor, user, hash.as_ref()) {
            Ok(entry) => Ok(Ok(entry)),
            Err(Error::InvalidUser(invalid)) => {
                Ok(Err(RecordError::new(line, invalid.field, invalid.reason)))
            }
            Err(Error::Import(import)) => Ok(Err(import_refusal(line, &import))),
            Err(system) => Err(system),
        }
    }
}
