//! Migrating from another system: setting an imported hash on an existing user, and
//! protecting fast legacy hashes at rest for users already imported.
//!
//! ```text
//! set_imported_password(actor, user, record)   Kinde's "set password" on an existing user
//! wrap_fast_hashes(actor, site, options)       resumable background job, page by page:
//!                                              md5/sha*/DES/md5-crypt/phpass/LDAP digests
//!                                              -> $keyward-wrapped$ (argon2id over them)
//! ```
//!
//! The job writes each user by compare-and-swap against the hash it read, so a user who signs
//! in (and is upgraded to argon2id) or whose password an administrator changes while it runs
//! keeps the newer hash and is counted in [`WrapReport::changed_meanwhile`]. Wrapped hashes are
//! not fast any more, so a rerun skips them: the job can be stopped ([`CancelToken`]) and run
//! again at any time until it reports nothing left to wrap. See [`Hasher::wrap_fast`] for the
//! construction and its cost.
//!
//! The job leaves temporary passwords alone ([`WrapReport::temporary`]). A temporary
//! credential changes without its hash changing (a sign-in consumes a single-use one by
//! marking it used), so a copy written back by compare-and-swap on the hash alone could undo
//! that: revive a consumed password, restore its escrowed copy. Fast hashes imported as
//! temporary passwords are protected at import instead, with
//! [`Hasher::wrapping_fast_imports`]; they are single-use and live at most their lifetime.
//!
//! # The old digests on disk
//! Wrapping replaces the fast hash in the row, not every copy of it: SQLite keeps the old
//! page contents in free pages unless `PRAGMA secure_delete = ON` was set before the write,
//! PostgreSQL keeps dead row versions until a vacuum reclaims them, and backups, replicas
//! and WAL archives keep what they held. After the job, on SQLite run
//! `PRAGMA secure_delete = ON;` then `VACUUM;`; on PostgreSQL `VACUUM FULL` the users table
//! (plain `VACUUM` marks the space reusable without overwriting it); and treat backups taken
//! before the job as holding the fast hashes (expire them as the retention policy allows).
//!
//! [`Hasher::wrap_fast`]: crate::hash::Hasher::wrap_fast
//! [`Hasher::wrapping_fast_imports`]: crate::hash::Hasher::wrapping_fast_imports

use std::fmt;

use time::OffsetDateTime;
use time::macros::datetime;

use crate::admin::CancelToken;
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::hash::{ImportError, ImportRecord, PasswordHash};
use crate::permission::Permission;
use crate::service::{Keyward, stored};
use crate::store::{MAX_PAGE, Swap, UserQuery};
use crate::user::{PasswordCredential, SiteId, TemporaryMode, User, UserId};

/// The expiry of an imported temporary password whose import says it never expires
/// ([`ImportRecord::temporary_password_never_expires`]): 2262-01-01, the latest instant every
/// store keeps (they count nanoseconds in 64 bits). It stays a single-use password: the
/// first sign-in must replace it. Only accounts the import creates get it (accounts nobody
/// has claimed yet, whose imported password is the one their owner knows): it is the one
/// exception to [`MAX_TEMPORARY_LIFETIME_DAYS`](crate::policy::MAX_TEMPORARY_LIFETIME_DAYS),
/// and [`Keyward::set_imported_password`] refuses it for an existing account.
pub const NO_EXPIRY: OffsetDateTime = datetime!(2262-01-01 00:00 UTC);

impl Keyward {
    /// The password credential an import record asks for: permanent, or a single-use
    /// temporary password with the user type's lifetime from now (or [`NO_EXPIRY`] when the
    /// record says it never expires), issued by `issued_by`. The one rule both
    /// [`import_user`](Self::import_user) and
    /// [`set_imported_password`](Self::set_imported_password) follow (the latter refuses
    /// [`NO_EXPIRY`] before it gets here).
    pub(crate) fn imported_credential(
        &self,
        user: &User,
        hash: &PasswordHash,
        record: &ImportRecord,
        issued_by: UserId,
    ) -> PasswordCredential {
        let now = self.now();
        if !record.is_temporary_password {
            return PasswordCredential::permanent(stored(hash), now);
        }
        let rules = self.temporary.temporary_rules(user);
        let mut credential =
            rules.issue(stored(hash), now, TemporaryMode::SingleUse, issued_by, None);
        if record.temporary_password_never_expires
            && let Some(temporary) = credential.temporary.as_mut()
        {
            temporary.expires_at = NO_EXPIRY;
        }
        credential
    }

    /// Sets a hash brought from another system on an existing user (Kinde's "set password"
    /// with `hashed_password`): validated as [`Hasher::import`](crate::hash::Hasher::import)
    /// does, verified and upgraded at the user's next successful sign-in; temporary when the
    /// record says so, with the user type's lifetime: an existing account gets no temporary
    /// password that never expires (that is for accounts created by the import and never
    /// claimed, see [`NO_EXPIRY`]), as an administrator's issue is capped at
    /// [`MAX_TEMPORARY_LIFETIME_DAYS`](crate::policy::MAX_TEMPORARY_LIFETIME_DAYS). Replaces
    /// exactly the password the permission check saw. Needs [`Permission::ManageUsers`] in
    /// the user's site; audited as `imported_password_set` (also when refused).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); [`Error::Import`] naming the offending field,
    /// `temporary_password_never_expires` when it is set (nothing changes);
    /// [`Error::UserNotFound`]; [`Error::ChangedMeanwhile`] when the password changed meanwhile;
    /// store errors.
    pub fn set_imported_password(
        &self,
        actor: &UserId,
        user: &UserId,
        record: &ImportRecord,
    ) -> Result<(), Error> {
        let _span = tracing::info_span!("keyward.set_imported_password").entered();
        let target = self.load(user)?;
        let site = &target.user.site;
        let action = AuditAction::ImportedPasswordSet;
        let permission = Permission::ManageUsers;
        self.authorize(actor, permission, action, site, Some(&target.user))?;
        if record.temporary_password_never_expires {
            return Err(ImportError::InvalidField {
                field: "temporary_password_never_expires",
                reason: "is not available for an existing user (temporary passwords expire)",
            }
            .into());
        }
        let hash = self.hasher.import(record)?;
        let credential = self.imported_credential(&target.user, &hash, record, actor.clone());
        let seen = target.password.as_ref().map(|p| &p.hash);
        if self.store.replace_password(user, seen, Some(&credential))? != Swap::Swapped {
            return Err(Error::ChangedMeanwhile { what: "password" });
        }
        let mut details = format!("imported {} hash", hash.scheme());
        if record.is_temporary_password {
            details.push_str("; temporary");
        }
        self.audit_admin(actor, action, Some(user), site, Some(details))
    }

    /// Protects every fast legacy hash of `site` at rest (see
    /// [`Hasher::wrap_fast`](crate::hash::Hasher::wrap_fast)), page by page, leaving
    /// temporary passwords alone (see the [module docs](self)). With an `actor`, needs
    /// [`Permission::ManageUsers`] in the site; `None` is the application itself (a
    /// maintenance job). Each page read is audited as one `fast_hashes_wrapped` event with
    /// that page's counts, also a page cut short by a cancel or an error (its details then
    /// end in `; stopped by an error`), so the trail accounts for every user written. Safe to
    /// rerun and to cancel: every user is written alone, by compare-and-swap. Copies of the
    /// fast hashes the store keeps outside the row are the operator's to purge (see the
    /// [module docs](self#the-old-digests-on-disk)).
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); store and hashing errors (users written before
    /// the error stay written and audited; a rerun continues).
    pub fn wrap_fast_hashes(
        &self,
        actor: Option<&UserId>,
        site: &SiteId,
        options: WrapOptions<'_>,
    ) -> Result<WrapReport, Error> {
        let _span = tracing::info_span!("keyward.wrap_fast_hashes").entered();
        let action = AuditAction::FastHashesWrapped;
        if let Some(actor) = actor {
            self.authorize(actor, Permission::ManageUsers, action, site, None)?;
        }
        let WrapOptions {
            batch,
            mut progress,
            cancel,
        } = options;
        let mut report = WrapReport::default();
        let mut offset = 0u64;
        loop {
            let query = UserQuery::new(site.clone(), self.now()).page(offset, batch);
            let page = self.store.search_users(&query)?;
            let count = page.items.len() as u64;
            let mut counts = WrapReport {
                total: page.total,
                ..WrapReport::default()
            };
            let done = self.wrap_page(&page.items, &report, &mut counts, &mut progress, &cancel);
            report.add(&counts);
            let details = format!("page at {offset}: {counts}");
            let event = |details| {
                (self.event(action, AuditOutcome::Succeeded, actor, None, site))
                    .with_details(details)
            };
            if let Err(error) = done {
                // The caller needs the error more than the event; an audit failing with it
                // most likely fails for the same reason.
                let _ = self.audit(event(format!("{details}; stopped by an error")));
                return Err(error);
            }
            self.audit(event(details))?;
            offset += count;
            if counts.cancelled || count == 0 || offset >= page.total {
                break;
            }
        }
        Ok(report)
    }

    /// Wraps one page of users, counting into `counts` (`before`: the pages already done).
    fn wrap_page(
        &self,
        users: &[crate::store::UserRecord],
        before: &WrapReport,
        counts: &mut WrapReport,
        progress: &mut Option<&mut dyn FnMut(WrapProgress)>,
        cancel: &Option<CancelToken>,
    ) -> Result<(), Error> {
        for record in users {
            if cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                counts.cancelled = true;
                return Ok(());
            }
            counts.examined += 1;
            self.wrap_one(record, counts)?;
            if let Some(report_progress) = progress.as_mut() {
                report_progress(WrapProgress {
                    examined: before.examined + counts.examined,
                    wrapped: before.wrapped + counts.wrapped,
                    total: counts.total,
                });
            }
        }
        Ok(())
    }

    /// Wraps one user's password if it is a fast legacy hash.
    fn wrap_one(
        &self,
        record: &crate::store::UserRecord,
        report: &mut WrapReport,
    ) -> Result<(), Error> {
        let Some(credential) = &record.password else {
            report.no_password += 1;
            return Ok(());
        };
        if credential.temporary.is_some() {
            // Its liveness changes without its hash changing: writing back a copy could
            // revive a consumed single-use password (see the module docs).
            report.temporary += 1;
            return Ok(());
        }
        let Ok(parsed) = self.hasher.parse(credential.hash.as_str()) else {
            // Unreadable here (unknown format, above this hasher's limits): left alone, as
            // sign-in will refuse it anyway.
            report.unreadable += 1;
            return Ok(());
        };
        let Some(wrapped) = self.hasher.wrap_fast(&parsed)? else {
            report.not_fast += 1;
            return Ok(());
        };
        let mut replacement = credential.clone();
        replacement.hash = stored(&wrapped);
        let swap = (self.store).replace_password(
            &record.user.id,
            Some(&credential.hash),
            Some(&replacement),
        )?;
        match swap {
            Swap::Swapped => report.wrapped += 1,
            _ => report.changed_meanwhile += 1,
        }
        Ok(())
    }
}

/// How [`Keyward::wrap_fast_hashes`] runs.
#[must_use]
pub struct WrapOptions<'a> {
    batch: u32,
    progress: Option<&'a mut dyn FnMut(WrapProgress)>,
    cancel: Option<CancelToken>,
}

impl Default for WrapOptions<'_> {
    fn default() -> Self {
        Self {
            batch: 200,
            progress: None,
            cancel: None,
        }
    }
}

impl fmt::Debug for WrapOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrapOptions")
            .field("batch", &self.batch)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl<'a> WrapOptions<'a> {
    /// Pages of 200 users, no progress reports, no cancellation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads users `batch` at a time (1 to [`MAX_PAGE`]; clamped).
    pub fn batch(mut self, batch: u32) -> Self {
        self.batch = batch.clamp(1, MAX_PAGE);
        self
    }

    /// Calls `report` after each user examined.
    pub fn on_progress(mut self, report: &'a mut dyn FnMut(WrapProgress)) -> Self {
        self.progress = Some(report);
        self
    }

    /// Stops before the next user once `token` is cancelled; users already wrapped stay so.
    pub fn cancel_with(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }
}

/// Where a [`Keyward::wrap_fast_hashes`] run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WrapProgress {
    /// Users examined so far.
    pub examined: u64,
    /// Of them, hashes wrapped.
    pub wrapped: u64,
    /// Users of the site.
    pub total: u64,
}

/// What a [`Keyward::wrap_fast_hashes`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WrapReport {
    /// Users of the site when the run last read a page.
    pub total: u64,
    /// Users examined.
    pub examined: u64,
    /// Fast hashes wrapped.
    pub wrapped: u64,
    /// Users whose password was already not a fast hash (argon2, bcrypt, already wrapped).
    pub not_fast: u64,
    /// Users without a password.
    pub no_password: u64,
    /// Users whose password is a temporary one (left alone: see the [module docs](self)).
    pub temporary: u64,
    /// Users whose stored hash does not parse under this hasher (left alone).
    pub unreadable: u64,
    /// Users whose password changed between the read and the write (left as they are).
    pub changed_meanwhile: u64,
    /// Whether the run was cancelled before examining every user.
    pub cancelled: bool,
}

impl WrapReport {
    /// Adds the counts of one page.
    fn add(&mut self, page: &Self) {
        self.total = page.total;
        self.examined += page.examined;
        self.wrapped += page.wrapped;
        self.not_fast += page.not_fast;
        self.no_password += page.no_password;
        self.temporary += page.temporary;
        self.unreadable += page.unreadable;
        self.changed_meanwhile += page.changed_meanwhile;
        self.cancelled |= page.cancelled;
    }
}

impl fmt::Display for WrapReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "examined={}/{}; wrapped={}; not_fast={}; no_password={}; temporary={}; \
             unreadable={}; changed_meanwhile={}; cancelled={}",
            self.examined,
            self.total,
            self.wrapped,
            self.not_fast,
            self.no_password,
            self.temporary,
            self.unreadable,
            self.changed_meanwhile,
            self.cancelled
        )
    }
}
