//! The one-time printable list of a bulk regeneration, and its two outputs: CSV for a
//! spreadsheet, and a self-contained HTML page designed to be printed on A4 and cut into
//! strips, one per user.
//!
//! The list carries the day of the month of each date of birth, never the full date, so that
//! a mislaid printout does not disclose it: the day only tells namesakes apart.

use std::fmt;

use maud::{DOCTYPE, Markup, html};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::secret::TemporaryPassword;
use crate::user::{BatchId, SiteId, TemporaryMode};

/// The columns of [`PrintableList::to_csv`], in order.
pub const CSV_COLUMNS: [&str; 7] = [
    "forename",
    "surname",
    "username",
    "group",
    "password",
    "day_of_birth",
    "expires",
];

/// One row of a printable cohort list.
#[non_exhaustive]
pub struct PrintableRow {
    /// Given name.
    pub forename: String,
    /// Family name.
    pub surname: String,
    /// Username.
    pub username: String,
    /// The selected group the user was picked through.
    pub group: String,
    /// The new temporary password.
    pub password: TemporaryPassword,
    /// The day of the month of the date of birth (1 to 31), to tell apart people of the same
    /// name; never the full date.
    pub day_of_birth: Option<u8>,
    /// When the password stops working.
    pub expires_at: OffsetDateTime,
    /// Single-use (the user must choose their own at the first sign-in) or admin-managed.
    pub mode: TemporaryMode,
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
/// voids this one. Not `Clone`; the passwords are zeroized on drop.
#[non_exhaustive]
pub struct PrintableList {
    /// The batch every password in the list belongs to.
    pub batch: BatchId,
    /// The site.
    pub site: SiteId,
    /// The groups that were selected, in the order given.
    pub groups: Vec<String>,
    /// When it was generated.
    pub generated_at: OffsetDateTime,
    /// When the passwords expire (the earliest expiry if user types differ); `None` for an
    /// empty list.
    pub expires_at: Option<OffsetDateTime>,
    /// One row per user, sorted by group (in the order selected), surname, forename.
    pub rows: Vec<PrintableRow>,
}

impl fmt::Debug for PrintableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrintableList")
            .field("batch", &self.batch)
            .field("site", &self.site)
            .field("rows", &self.rows.len())
            .finish_non_exhaustive()
    }
}

/// The CSV writer failed.
fn csv_failed(source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Output {
        format: "CSV",
        source: Box::new(source),
    }
}

/// A cell a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or
/// a carriage return) gets a leading `'`, the usual neutralisation (OWASP, "CSV Injection").
/// Generated temporary passwords never start with one of these, so no password is altered.
fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// `2026-09-01 08:00 UTC`.
fn when(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    utc.format(format)
        .unwrap_or_else(|_| utc.format(&Rfc3339).unwrap_or_default())
}

impl PrintableList {
    /// The list as CSV with the columns [`CSV_COLUMNS`]
    /// (`forename,surname,username,group,password,day_of_birth,expires`) and nothing else;
    /// `expires` is RFC 3339. Cells a spreadsheet would run as a formula are neutralised.
    ///
    /// # Errors
    /// Only if the CSV writer fails, which it does not for in-memory output.
    pub fn to_csv(&self) -> Result<Zeroizing<String>, Error> {
        // Reserve generously up front so the output buffer is rarely reallocated (each
        // reallocation leaves an unzeroized copy behind). Best effort: the CSV writer's own
        // internal buffer is not zeroized either.
        let capacity = 160 * (self.rows.len() + 1);
        let mut writer = csv::Writer::from_writer(Vec::with_capacity(capacity));
        writer.write_record(CSV_COLUMNS).map_err(csv_failed)?;
        for row in &self.rows {
            let day = row.day_of_birth.map(|d| d.to_string()).unwrap_or_default();
            let expires = row.expires_at.format(&Rfc3339).unwrap_or_default();
            let cells = [
                neutralise(&row.forename),
                neutralise(&row.surname),
                neutralise(&row.username),
                neutralise(&row.group),
                neutralise(row.password.expose_secret()),
                neutralise(&day),
                neutralise(&expires),
            ];
            writer
                .write_record(cells.iter().map(|c| c.as_bytes()))
                .map_err(csv_failed)?;
        }
        let bytes = writer
            .into_inner()
            .map_err(|e| csv_failed(e.into_error()))?;
        let text = String::from_utf8(bytes).map_err(csv_failed)?;
        Ok(Zeroizing::new(text))
    }

    /// The list as one self-contained HTML page, designed to be printed: A4 pages, a header
    /// with the site, the groups, the generation time, the expiry and a "destroy after
    /// distribution" note, then one strip per user between dashed cut lines, each group
    /// starting on a new page. Every value is HTML-escaped by the template engine (maud).
    #[must_use]
    pub fn to_html(&self) -> Zeroizing<String> {
        Zeroizing::new(self.page().into_string())
    }

    fn page(&self) -> Markup {
        let expires = self.expires_at.map(when);
        let groups = self.groups.join(", ");
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="robots" content="noindex";
                    title { "Temporary passwords — " (self.site) }
                    style { (maud::PreEscaped(STYLE)) }
                }
                body {
                    header {
                        h1 { "Temporary passwords" }
                        dl {
                            dt { "Site" } dd { (self.site) }
                            dt { "Groups" } dd { (groups) }
                            dt { "Generated" } dd { (when(self.generated_at)) }
                            @if let Some(expires) = &expires {
                                dt { "Expires" } dd { (expires) }
                            }
                            dt { "Users" } dd { (self.rows.len()) }
                        }
                        p.warning {
                            "Confidential. Cut along the dashed lines and hand each person their \
                             own strip. Destroy this list after distribution: it cannot be \
                             printed again, and regenerating voids it."
                        }
                    }
                    @for group in self.groups.iter().filter(|g| self.rows.iter().any(|r| &r.group == *g)) {
                        section.group {
                            h2 { (group) " — " (self.site) }
                            @for row in self.rows.iter().filter(|r| &r.group == group) {
                                (strip(row))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn strip(row: &PrintableRow) -> Markup {
    html! {
        div.strip {
            div.name { (row.surname) ", " (row.forename) }
            div.field { span.label { "Username" } span.value { (row.username) } }
            div.field {
                span.label { "Temporary password" }
                span.value.password { (row.password.expose_secret()) }
            }
            div.field {
                span.label { "Day of birth" }
                span.value { (row.day_of_birth.map(|d| d.to_string()).unwrap_or_else(|| "—".to_owned())) }
            }
            div.field { span.label { "Expires" } span.value { (when(row.expires_at)) } }
            div.hint {
                @if row.mode == TemporaryMode::SingleUse {
                    "Sign in with this password; you will be asked to choose your own."
                } @else {
                    "Sign in with this password until it expires."
                }
            }
        }
    }
}

/// The print stylesheet: A4, one group per page run, strips that never split across pages.
const STYLE: &str = "
@page { size: A4; margin: 12mm; }
* { box-sizing: border-box; }
body { font-family: 'DejaVu Sans', Arial, sans-serif; font-size: 10pt; color: #000; margin: 0; }
header { border-bottom: 2px solid #000; padding-bottom: 3mm; margin-bottom: 4mm; }
h1 { font-size: 16pt; margin: 0 0 2mm; }
h2 { font-size: 12pt; margin: 0 0 2mm; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.5mm 4mm; margin: 0; }
dt { font-weight: bold; }
dd { margin: 0; }
.warning { font-weight: bold; margin: 2mm 0 0; }
.group + .group { break-before: page; }
.strip { display: grid; grid-template-columns: 1fr 1fr; gap: 1mm 6mm; padding: 3mm 2mm;
  border-top: 1px dashed #000; break-inside: avoid; }
.strip:last-child { border-bottom: 1px dashed #000; }
.name { grid-column: 1 / -1; font-size: 12pt; font-weight: bold; }
.label { display: block; font-size: 7.5pt; text-transform: uppercase; letter-spacing: 0.05em; }
.value { font-size: 11pt; }
.password { font-family: 'DejaVu Sans Mono', 'Courier New', monospace; font-size: 13pt;
  letter-spacing: 0.08em; }
.hint { grid-column: 1 / -1; font-size: 8pt; }
@media screen { body { max-width: 190mm; margin: 8mm auto; } }
";

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn every_formula_start_is_neutralised_and_nothing_else() {
        for start in ['=', '+', '-', '@', '\t', '\r'] {
            let cell = format!("{start}SUM(A1)");
            assert_eq!(neutralise(&cell), format!("'{cell}"), "{start:?}");
        }
        for plain in ["", "Ann", "7", "'quoted", " =lead"] {
            assert_eq!(neutralise(plain), plain);
        }
    }
}
