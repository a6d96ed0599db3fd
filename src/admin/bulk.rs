//! Bulk regeneration: new temporary passwords for the unclaimed users of whole groups,
//! previewed first, confirmed with the administrator's own password, generated and hashed in
//! parallel with progress and cancellation, committed in one transaction with its audit
//! events, and returned as a one-time printable list.
//!
//! ```text
//! preview_regeneration(actor, site, groups)      counts per group, skipped by reason
//!   -> regenerate(actor, password, preview, opts) generate + hash on a pool -> one commit
//!   -> Regenerated { list, changed_meanwhile }   the list: CSV or printable HTML
//! ```
//!
//! Nobody loses a password they chose: each user's new temporary password is written only if
//! the user is still as the preview saw them — the same password hash, site, role, status and
//! SSO link (compare-and-swap per user, inside the one transaction) — so a user who claims
//! their account while the run hashes keeps their own and is reported in
//! [`Regenerated::changed_meanwhile`].

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use std::{fmt, thread};

use time::OffsetDateTime;

use super::cohort::{GroupCount, Member, SkipCounts, SkipReason, distinct};
use super::report::{PrintableList, PrintableRow};
use crate::audit::{AuditAction, AuditOutcome};
use crate::error::Error;
use crate::guard::{FirstFactor, PinCheck};
use crate::hash::HashMemory;
use crate::permission::{DenyReason, Permission, PermissionDenied};
use crate::secret::{Password, TemporaryPassword};
use crate::service::{Keyward, stored};
use crate::store::{BatchEntry, TemporaryBatch, fold};
use crate::user::{BatchId, PasswordCredential, SiteId, TemporaryMode, UserId};

/// What a regeneration of some groups would do. Nothing is generated and nothing changes until
/// it is handed to [`Keyward::regenerate`], which regenerates exactly the users counted here
/// (less any who claim their account meanwhile).
#[must_use = "a preview does nothing until it is handed to Keyward::regenerate"]
pub struct RegenerationPreview {
    site: SiteId,
    groups: Vec<String>,
    per_group: Vec<GroupCount>,
    skipped: SkipCounts,
    members: Vec<Member>,
}

impl fmt::Debug for RegenerationPreview {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegenerationPreview")
            .field("site", &self.site)
            .field("per_group", &self.per_group)
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl RegenerationPreview {
    /// The site.
    #[must_use]
    pub fn site(&self) -> &SiteId {
        &self.site
    }

    /// The chosen groups, in the order given.
    #[must_use]
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    /// How many passwords each chosen group would get regenerated.
    #[must_use]
    pub fn per_group(&self) -> &[GroupCount] {
        &self.per_group
    }

    /// How many passwords would be regenerated in all.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.members.len() as u64
    }

    /// Users of the chosen groups who would be left out, by reason.
    #[must_use]
    pub fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }
}

/// How far a regeneration has come: `done` of `total` passwords generated and hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Passwords generated and hashed so far.
    pub done: u64,
    /// Passwords to generate.
    pub total: u64,
}

/// Stops a running regeneration: cancelled before the commit, nothing changes. Clones share
/// one flag, so a clone can be handed to another thread (a Ctrl-C handler, a web request).
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token not yet cancelled.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the regeneration holding this token to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// How a regeneration runs.
#[derive(Default)]
#[must_use]
pub struct RegenerationOptions<'a> {
    threads: Option<NonZeroUsize>,
    progress: Option<&'a mut dyn FnMut(Progress)>,
    cancel: Option<CancelToken>,
}

impl fmt::Debug for RegenerationOptions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegenerationOptions")
            .field("threads", &self.threads)
            .field("progress", &self.progress.is_some())
            .field("cancel", &self.cancel)
            .finish()
    }
}

impl<'a> RegenerationOptions<'a> {
    /// Every core, no progress reports, no cancellation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Generates and hashes on `threads` threads (default: every core, as
    /// [`std::thread::available_parallelism`] reports). Each thread holds one argon2id working
    /// set (19 MiB at the default policy) while it hashes.
    pub fn threads(mut self, threads: NonZeroUsize) -> Self {
        self.threads = Some(threads);
        self
    }

    /// Calls `report` on the calling thread as passwords are hashed: at every whole percent and
    /// at least every 250 ms, and once more with `done == total` before the commit.
    pub fn on_progress(mut self, report: &'a mut dyn FnMut(Progress)) -> Self {
        self.progress = Some(report);
        self
    }

    /// Stops the run when `token` is cancelled, as long as the commit has not begun.
    pub fn cancel_with(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }
}

/// A finished regeneration.
#[derive(Debug)]
#[non_exhaustive]
pub struct Regenerated {
    /// The one-time printable list: every user whose temporary password was regenerated.
    pub list: PrintableList,
    /// Users the preview picked who changed before the commit (they claimed their account,
    /// another administrator replaced their password, or they were disabled, moved, promoted
    /// or linked to SSO): they keep what they have and are not on the list.
    pub changed_meanwhile: Vec<UserId>,
    /// Users of the chosen groups left out, by reason: the preview's counts, plus
    /// [`SkipReason::ChangedMeanwhile`] and, for a preview another administrator made,
    /// [`SkipReason::OutOfReach`].
    pub skipped: SkipCounts,
}

/// One generated password, hashed, waiting for the commit.
struct Generated {
    index: usize,
    password: TemporaryPassword,
    credential: PasswordCredential,
}

/// How often progress is reported at the least.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

impl Keyward {
    /// Previews a regeneration of the temporary passwords of `groups` in `site`: who would get
    /// a new one (the unclaimed users of role `user` within the actor's reach, active, not
    /// SSO-linked), counted per group, and who would be skipped, counted by reason. Needs
    /// [`Permission::BulkRegenerate`]; changes nothing.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited); store errors.
    pub fn preview_regeneration(
        &self,
        actor: &UserId,
        site: &SiteId,
        groups: &[String],
    ) -> Result<RegenerationPreview, Error> {
        let _span = tracing::info_span!("keyward.preview_regeneration").entered();
        let (permission, action) = (Permission::BulkRegenerate, AuditAction::BulkRegenerated);
        let actor = self.authorize(actor, permission, action, site, None)?;
        let cohort = self.cohort(&actor.user, permission, site, groups)?;
        Ok(RegenerationPreview {
            site: site.clone(),
            groups: distinct(groups),
            per_group: cohort.per_group,
            skipped: cohort.skipped,
            members: cohort.members,
        })
    }

    /// Regenerates the temporary passwords `preview` counted, after confirming the acting
    /// administrator's own password, and returns the one-time printable list.
    ///
    /// Passwords are generated and hashed in parallel ([`RegenerationOptions::threads`]),
    /// reporting progress and stopping when cancelled. The commit is one transaction: every
    /// new temporary password, one `temporary_password_set` audit event per user and the
    /// `bulk_regenerated` event of the run, or nothing. A user whose password changed since
    /// the preview (they claimed their account) keeps it and is reported in
    /// [`Regenerated::changed_meanwhile`]. Each regenerated user's previous temporary password
    /// stops working, which voids any earlier list.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] (audited), also with [`DenyReason::ConfirmationFailed`]
    /// for a wrong confirmation password, which counts as a failed attempt on the
    /// administrator's own account; [`Error::Cancelled`] when cancelled before the commit
    /// (nothing changed); store and hashing errors (nothing changed). Nothing that can fail
    /// runs after the commit.
    pub fn regenerate(
        &self,
        actor: &UserId,
        confirmation: &Password,
        mut preview: RegenerationPreview,
        options: RegenerationOptions<'_>,
    ) -> Result<Regenerated, Error> {
        let _span = tracing::info_span!("keyward.regenerate").entered();
        let site = &preview.site.clone();
        let (permission, action) = (Permission::BulkRegenerate, AuditAction::BulkRegenerated);
        let actor_record = self.authorize(actor, permission, action, site, None)?;
        let confirmed = match &actor_record.password {
            Some(credential) if credential.temporary.is_none() => {
                let hash = &credential.hash;
                let checked =
                    self.check_first_factor(&actor_record, confirmation, PinCheck::Skip, hash)?;
                matches!(checked, FirstFactor::Passed { .. })
            }
            _ => {
                self.hasher.verify_dummy(confirmation);
                false
            }
        };
        if !confirmed {
            let reason = DenyReason::ConfirmationFailed;
            let event = self.event(action, AuditOutcome::Denied, Some(actor), None, site);
            self.audit(event.with_reason(reason.as_str()))?;
            return Err(PermissionDenied { permission, reason }.into());
        }
        // The preview may come from another administrator's screen: everyone on it must be
        // within this actor's reach too.
        let reachable = |m: &Member| {
            let user = Some(&m.user);
            self.permissions
                .authorize(&actor_record.user, permission, site, user)
                .is_ok()
        };
        let before = preview.members.len();
        preview.members.retain(reachable);
        let out_of_reach = (before - preview.members.len()) as u64;
        if out_of_reach > 0 {
            *preview.skipped.entry(SkipReason::OutOfReach).or_default() += out_of_reach;
        }
        let now = self.now();
        let batch = BatchId::generate();
        let cancel = options.cancel.clone().unwrap_or_default();
        let generated = self.generate_all(&preview.members, actor, &batch, now, options)?;
        let Some(generated) = generated.filter(|_| !cancel.is_cancelled()) else {
            let details = format!("groups={:?}", preview.groups);
            let event = self.event(action, AuditOutcome::Cancelled, Some(actor), None, site);
            self.audit(event.with_details(details))?;
            return Err(Error::Cancelled);
        };
        let entries = generated
            .iter()
            .map(|g| {
                let member = &preview.members[g.index];
                let target = Some(&member.user.id);
                let (action, outcome) =
                    (AuditAction::TemporaryPasswordSet, AuditOutcome::Succeeded);
                let event = self.event(action, outcome, Some(actor), target, site);
                BatchEntry::new(
                    member.user.clone(),
                    member.expected.clone(),
                    g.credential.clone(),
                    event.with_details(format!("batch={}", batch.as_str())),
                )
            })
            .collect();
        let details = format!(
            "batch={}; groups={:?}; planned={}",
            batch.as_str(),
            preview.groups,
            generated.len()
        );
        let summary = self.event(action, AuditOutcome::Succeeded, Some(actor), None, site);
        let summary = summary.with_details(details);
        let written = (self.store).replace_batch(&TemporaryBatch::new(
            batch.clone(),
            entries,
            summary.clone(),
        ))?;
        // The run's event; the per-user events it committed with are counted, not repeated.
        crate::audit::trace(&summary);
        tracing::info!(
            target: "keyward::audit",
            written = written.written.len(),
            changed_meanwhile = written.changed.len(),
            "bulk regeneration committed"
        );
        // From here on nothing can fail: the list is the only copy of the passwords.
        // Only what the store wrote goes on the list.
        let stored: std::collections::HashSet<&UserId> = written.written.iter().collect();
        let mut rows: Vec<PrintableRow> = generated
            .into_iter()
            .filter_map(|g| {
                let member = &preview.members[g.index];
                (stored.contains(&member.user.id))
                    .then(|| PrintableRow::new(member, g.password, &g.credential, now))
            })
            .collect();
        // By group in the order chosen (as the printed sections), then surname, forename.
        let position = |group: &str| preview.groups.iter().position(|g| g == group);
        rows.sort_by_cached_key(|r| {
            let names = (fold(&r.surname), fold(&r.forename), r.username.clone());
            (position(&r.group), names)
        });
        let expires_at = rows.iter().map(|r| r.expires_at).min();
        let mut skipped = preview.skipped;
        if !written.changed.is_empty() {
            let changed = written.changed.len() as u64;
            *skipped.entry(SkipReason::ChangedMeanwhile).or_default() += changed;
        }
        Ok(Regenerated {
            list: PrintableList {
                batch,
                site: preview.site,
                groups: preview.groups,
                generated_at: now,
                expires_at,
                rows,
            },
            changed_meanwhile: written.changed,
            skipped,
        })
    }

    /// Shorthand for [`preview_regeneration`](Self::preview_regeneration) and
    /// [`regenerate`](Self::regenerate) with the default options, returning the list.
    ///
    /// # Errors
    /// As for those two.
    pub fn bulk_regenerate(
        &self,
        actor: &UserId,
        confirmation: &Password,
        site: &SiteId,
        groups: &[String],
    ) -> Result<PrintableList, Error> {
        let preview = self.preview_regeneration(actor, site, groups)?;
        let done = self.regenerate(actor, confirmation, preview, RegenerationOptions::new())?;
        Ok(done.list)
    }

    /// Generates and hashes one temporary password per member on a pool of threads; `None`
    /// when cancelled. Progress is reported on this thread.
    fn generate_all(
        &self,
        members: &[Member],
        actor: &UserId,
        batch: &BatchId,
        now: OffsetDateTime,
        options: RegenerationOptions<'_>,
    ) -> Result<Option<Vec<Generated>>, Error> {
        let total = members.len();
        let threads = options
            .threads
            .or_else(|| thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get)
            .min(total.max(1));
        let cancel = options.cancel.unwrap_or_default();
        let mut report = options.progress;
        let next = AtomicUsize::new(0);
        // Set when a worker fails, so that the others stop too.
        let failed = AtomicBool::new(false);
        let results = thread::scope(|scope| {
            let (tx, rx) = mpsc::channel::<bool>();
            let workers: Vec<_> = (0..threads)
                .map(|_| {
                    let tx = tx.clone();
                    let (next, failed, cancel) = (&next, &failed, &cancel);
                    scope.spawn(move || {
                        // Tells the coordinator this worker is gone, also on a panic (which
                        // stops the other workers too).
                        let _exit = ExitSignal(tx.clone(), failed);
                        let mut out = Vec::new();
                        let mut memory = HashMemory::default();
                        while !cancel.is_cancelled() && !failed.load(Ordering::SeqCst) {
                            let index = next.fetch_add(1, Ordering::SeqCst);
                            let Some(member) = members.get(index) else {
                                break;
                            };
                            match self.generate_one(index, member, actor, batch, now, &mut memory) {
                                Ok(one) => out.push(one),
                                Err(e) => {
                                    failed.store(true, Ordering::SeqCst);
                                    return Err(e);
                                }
                            }
                            let _ = tx.send(true);
                        }
                        Ok(out)
                    })
                })
                .collect();
            drop(tx);
            coordinate(&rx, threads, total, &mut report);
            workers
                .into_iter()
                .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        });
        let mut generated = Vec::with_capacity(total);
        for result in results {
            generated.extend(result?);
        }
        if cancel.is_cancelled() || generated.len() != total {
            return Ok(None);
        }
        generated.sort_by_key(|g| g.index);
        Ok(Some(generated))
    }

    fn generate_one(
        &self,
        index: usize,
        member: &Member,
        actor: &UserId,
        batch: &BatchId,
        now: OffsetDateTime,
        memory: &mut HashMemory,
    ) -> Result<Generated, Error> {
        let rules = self.temporary.temporary_rules(&member.user);
        let generated = rules.generate();
        let hash = self
            .hasher
            .hash_in(&generated.password.to_password(), memory)?;
        let (mode, batch) = (rules.mode, Some(batch.clone()));
        let mut credential = rules.issue(stored(&hash), now, mode, actor.clone(), batch);
        self.escrow(&mut credential, &generated.password, &member.user.id)?;
        Ok(Generated {
            index,
            password: generated.password,
            credential,
        })
    }
}

/// Sent when a worker thread ends, however it ends; a panicking worker also stops the others.
struct ExitSignal<'a>(mpsc::Sender<bool>, &'a AtomicBool);

impl Drop for ExitSignal<'_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.1.store(true, Ordering::SeqCst);
        }
        let _ = self.0.send(false);
    }
}

/// Receives the workers' signals (`true`: one password done; `false`: a worker ended) and
/// reports progress at every whole percent and at least every [`PROGRESS_EVERY`], until every
/// worker has ended.
fn coordinate(
    rx: &mpsc::Receiver<bool>,
    threads: usize,
    total: usize,
    report: &mut Option<&mut dyn FnMut(Progress)>,
) {
    let total_u64 = total as u64;
    let percent = |done: u64| done * 100 / total_u64.max(1);
    let (mut done, mut ended) = (0u64, 0usize);
    let mut reported: Option<(u64, Instant)> = None;
    while ended < threads {
        let signal = rx.recv_timeout(PROGRESS_EVERY);
        match signal {
            Ok(true) => done += 1,
            Ok(false) => ended += 1,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let Some(report) = report.as_mut() else {
            continue;
        };
        let due = match reported {
            None => true,
            Some((last, at)) => percent(done) > percent(last) || at.elapsed() >= PROGRESS_EVERY,
        };
        if due && reported.is_none_or(|(last, _)| last != done || signal.is_err()) {
            report(Progress {
                done,
                total: total_u64,
            });
            reported = Some((done, Instant::now()));
        }
    }
}

impl PrintableRow {
    fn new(
        member: &Member,
        password: TemporaryPassword,
        credential: &PasswordCredential,
        now: OffsetDateTime,
    ) -> Self {
        let user = &member.user;
        let temporary = credential.temporary.as_ref();
        let expires_at = temporary.map_or(now, |t| t.expires_at);
        let mode = temporary.map_or(TemporaryMode::SingleUse, |t| t.mode);
        Self {
            forename: user.forename.clone(),
            surname: user.surname.clone(),
            username: user.username.clone(),
            group: member.group.clone(),
            password,
            day_of_birth: user.date_of_birth.map(|d| d.day()),
            expires_at,
            mode,
        }
    }
}
