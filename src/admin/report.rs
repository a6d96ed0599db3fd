//! The one-time printable list of a bulk regeneration, and its outputs.

use std::fmt;

use time::{Date, OffsetDateTime};
use zeroize::Zeroizing;

use crate::error::Error;
use crate::secret::TemporaryPassword;
use crate::user::BatchId;

/// The CSV writer failed.
fn csv_failed(source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Output {
        format: "CSV",
        source: Box::new(source),
    }
}

/// One row of a printable cohort list.
#[non_exhaustive]
pub struct PrintableRow {
    /// Forename and surname.
    pub name: String,
    /// Username.
    pub username: String,
    /// The selected group the user was picked through.
    pub group: String,
    /// The new temporary password.
    pub password: TemporaryPassword,
    /// Date of birth, to tell apart people of the same name.
    pub date_of_birth: Option<Date>,
}

impl fmt::Debug for PrintableRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrintableRow")
            .field("username", &self.username)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

/// The one-time printable list of a bulk regeneration. It exists only in memory: keyward
/// stores hashes, so the list cannot be printed again — regenerating makes a new one and
/// voids this one. Not `Clone`; zeroized on drop.
#[non_exhaustive]
pub struct PrintableList {
    /// The batch every password in the list belongs to.
    pub batch: BatchId,
    /// When it was generated.
    pub generated_at: OffsetDateTime,
    /// When the passwords expire (the earliest expiry if user types differ).
    pub expires_at: Option<OffsetDateTime>,
    /// One row per user, sorted by group, surname, forename.
    pub rows: Vec<PrintableRow>,
}

impl fmt::Debug for PrintableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrintableList")
            .field("batch", &self.batch)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

impl PrintableList {
    /// The list as CSV with the columns `name,username,group,password,date_of_birth`, and
    /// nothing else.
    ///
    /// # Errors
    /// Only if the CSV writer fails, which it does not for in-memory output.
    pub fn to_csv(&self) -> Result<Zeroizing<String>, Error> {
        // Reserve generously up front so the output buffer is rarely reallocated (each
        // reallocation leaves an unzeroized copy behind). Best effort: the CSV writer's own
        // internal buffer is not zeroized either.
        let capacity = 128 * (self.rows.len() + 1);
        let mut writer = csv::Writer::from_writer(Vec::with_capacity(capacity));
        writer
            .write_record(["name", "username", "group", "password", "date_of_birth"])
            .map_err(csv_failed)?;
        for row in &self.rows {
            let dob = row.date_of_birth.map(|d| d.to_string()).unwrap_or_default();
            writer
                .write_record([
                    row.name.as_str(),
                    row.username.as_str(),
                    row.group.as_str(),
                    row.password.expose_secret(),
                    dob.as_str(),
                ])
                .map_err(csv_failed)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| csv_failed(e.into_error()))?;
        let text = String::from_utf8(bytes).map_err(csv_failed)?;
        Ok(Zeroizing::new(text))
    }
}
