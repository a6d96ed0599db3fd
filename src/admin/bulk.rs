//! Bulk regeneration: new temporary passwords for whole groups at once, confirmed with the
//! administrator's own password, returned as a one-time printable list.

use time::OffsetDateTime;

use super::report::{PrintableList, PrintableRow};
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::guard::{FirstFactor, PinCheck};
use crate::permission::{DenyReason, Permission, PermissionDenied};
use crate::secret::Password;
use crate::service::{Keyward, stored};
use crate::store::{MAX_PAGE, TemporaryBatch, UserQuery, UserRecord};
use crate::user::{BatchId, Role, SiteId, UserId, UserStatus};

impl Keyward {
    /// Regenerates the temporary passwords of every user (role `user`) in `groups` of `site`,
    /// after confirming the administrator's own password, and returns the one-time printable
    /// list. The whole batch is written at once or not at all; it replaces the users'
    /// passwords, so the previous list stops working.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (also with [`DenyReason::ConfirmationFailed`] for a wrong
    /// confirmation password, which counts as a failed attempt on the administrator's own
    /// account); store and hashing errors.
    pub fn bulk_regenerate(
        &self,
        actor: &UserId,
        confirmation: &Password,
        site: &SiteId,
        groups: &[String],
    ) -> Result<PrintableList, Error> {
        let (permission, action) = (Permission::BulkRegenerate, AuditAction::BulkRegenerated);
        let actor_record = self.authorize(actor, permission, action, site, None)?;
        let actor_user = &actor_record.user;
        let confirmed = match &actor_record.password {
            Some(credential) if credential.temporary.is_none() => matches!(
                self.check_first_factor(
                    &actor_record,
                    confirmation,
                    PinCheck::Skip,
                    &credential.hash
                )?,
                FirstFactor::Passed { .. }
            ),
            _ => {
                self.hasher.verify_dummy(confirmation);
                false
            }
        };
        if !confirmed {
            let reason = DenyReason::ConfirmationFailed;
            let event = self.event(action, AuditOutcome::Denied, Some(actor), None, site);
            self.audit(event.with_reason(reason.as_str()))?;
            return Err(PermissionDenied {
                permission: Permission::BulkRegenerate,
                reason,
            }
            .into());
        }
        let now = self.now();
        // Collect the cohort: each user once, under the first selected group they are in.
        let mut picked: Vec<(String, UserRecord)> = Vec::new();
        for group in groups {
            let mut offset = 0u64;
            loop {
                let query = UserQuery::new(site.clone(), now)
                    .group(group.clone())
                    .page(offset, MAX_PAGE);
                let page = self.store.search_users(&query)?;
                let count = page.items.len() as u64;
                for record in page.items {
                    let eligible = record.user.role == Role::User
                        && record.user.status == UserStatus::Active
                        && self
                            .permissions
                            .authorize(
                                actor_user,
                                Permission::BulkRegenerate,
                                site,
                                Some(&record.user),
                            )
                            .is_ok();
                    if eligible && !picked.iter().any(|(_, r)| r.user.id == record.user.id) {
                        picked.push((group.clone(), record));
                    }
                }
                offset += count;
                if count == 0 || offset >= page.total {
                    break;
                }
            }
        }
        let batch = BatchId::generate();
        let mut rows = Vec::with_capacity(picked.len());
        let mut entries = Vec::with_capacity(picked.len());
        let mut expires_at: Option<OffsetDateTime> = None;
        for (group, record) in picked {
            let rules = self.temporary.temporary_rules(&record.user);
            let generated = rules.generate();
            let hash = self.hasher.hash(&generated.password.to_password())?;
            let (mode, batch_id) = (rules.mode, Some(batch.clone()));
            let credential = rules.issue(stored(&hash), now, mode, actor.clone(), batch_id);
            if let Some(expiry) = credential.temporary.as_ref().map(|t| t.expires_at) {
                expires_at = Some(expires_at.map_or(expiry, |e| e.min(expiry)));
            }
            entries.push((record.user.id.clone(), credential));
            rows.push(PrintableRow {
                name: format!("{} {}", record.user.forename, record.user.surname),
                username: record.user.username.clone(),
                group,
                password: generated.password,
                date_of_birth: record.user.date_of_birth,
            });
        }
        rows.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
        let targets: Vec<UserId> = entries.iter().map(|(id, _)| id.clone()).collect();
        self.store
            .replace_batch(&TemporaryBatch::new(batch.clone(), entries))?;
        let details = format!(
            "batch={}; groups={}; users={}",
            batch.as_str(),
            groups.join(", "),
            targets.len()
        );
        self.audit_admin(
            actor,
            AuditAction::BulkRegenerated,
            None,
            site,
            Some(details),
        )?;
        for target in &targets {
            let details = format!("batch={}", batch.as_str());
            self.audit_admin(
                actor,
                AuditAction::TemporaryPasswordSet,
                Some(target),
                site,
                Some(details),
            )?;
        }
        Ok(PrintableList {
            batch,
            generated_at: now,
            expires_at,
            rows,
        })
    }
}
