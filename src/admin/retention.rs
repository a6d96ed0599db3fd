//! Audit retention: the trail of a site exported up to a date, then deleted up to it, so it
//! does not grow without bound.

use std::io::Write;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditAction, AuditEvent, AuditOutcome, AuditQuery};
use crate::error::Error;
use crate::permission::Permission;
use crate::service::Keyward;
use crate::store::MAX_PAGE;
use crate::user::{SiteId, UserId};

/// What [`Keyward::archive_audit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Archived {
    /// Events written to the export.
    pub exported: u64,
    /// Events deleted from the store (the same events).
    pub pruned: u64,
}

fn output(source: Box<dyn std::error::Error + Send + Sync>) -> Error {
    Error::Output {
        format: "audit export",
        source,
    }
}

/// One event as an export line: a JSON object with the event's fields, instants in RFC 3339.
fn export_line(e: &AuditEvent) -> Result<String, Error> {
    let at = e.at.format(&Rfc3339).map_err(|e| output(Box::new(e)))?;
    Ok(serde_json::json!({
        "at": at,
        "actor": e.actor.as_ref().map(UserId::as_str),
        "action": e.action.as_str(),
        "target": e.target.as_ref().map(UserId::as_str),
        "site": e.site.as_str(),
        "outcome": e.outcome.as_str(),
        "reason": e.reason,
        "details": e.details,
    })
    .to_string())
}

impl Keyward {
    /// Exports the audit events of `site` before `before` to `out` (one JSON object per line,
    /// oldest first), then deletes exactly those from the store, and records the pruning as
    /// `audit_pruned` (that event is new, so it stays). Nothing is deleted unless the whole
    /// export was written and flushed: a failed write leaves the trail as it was.
    ///
    /// `before` must lie in the past; events that arrive meanwhile are later still, so they
    /// are neither exported nor deleted.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] without [`Permission::PruneAudit`] in `site` (audited);
    /// [`Error::Output`] when writing the export fails (nothing deleted);
    /// [`Error::InvalidUser`] for a `before` that is not in the past; store errors.
    pub fn archive_audit(
        &self,
        actor: &UserId,
        site: &SiteId,
        before: OffsetDateTime,
        out: &mut dyn Write,
    ) -> Result<Archived, Error> {
        let _span = tracing::info_span!("keyward.archive_audit").entered();
        let action = AuditAction::AuditPruned;
        self.authorize(actor, Permission::PruneAudit, action, site, None)?;
        if before > self.now() {
            let reason = "must lie in the past";
            return Err(crate::user::InvalidField {
                field: "before",
                reason,
            }
            .into());
        }
        let query = AuditQuery::default().site(site.clone()).between(
            OffsetDateTime::UNIX_EPOCH - time::Duration::days(365 * 1000),
            before,
        );
        let mut exported = 0u64;
        loop {
            let page = self
                .store
                .query_audit(&query.clone().page(exported, MAX_PAGE))?;
            for event in &page.items {
                let line = export_line(event)?;
                writeln!(out, "{line}").map_err(|e| output(Box::new(e)))?;
            }
            exported += page.items.len() as u64;
            if page.items.is_empty() || exported >= page.total {
                break;
            }
        }
        out.flush().map_err(|e| output(Box::new(e)))?;
        let pruned = self.store.prune_audit(site, before)?;
        let details = format!("before={before}; exported={exported}; pruned={pruned}");
        let event = self.event(action, AuditOutcome::Succeeded, Some(actor), None, site);
        self.audit(event.with_details(details))?;
        Ok(Archived { exported, pruned })
    }
}
