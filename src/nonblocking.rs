//! The async face of [`Keyward`] for tokio applications (feature `tokio`).
//!
//! keyward's flows are blocking code: argon2id is seconds of CPU per hundred verifications
//! and the stores do blocking I/O. [`AsyncKeyward`] runs every operation on tokio's blocking
//! pool ([`tokio::task::spawn_blocking`]) so that no runtime worker thread ever stalls on a
//! hash or a query, and it bounds how many hash evaluations run at once.
//!
//! # The bound
//! Each argon2id evaluation holds its working memory (m KiB: 19 MiB at the default policy)
//! while it runs, and the blocking pool grows up to 512 threads by default: 64 sign-ins
//! arriving together would otherwise hold 64 working sets, 1.2 GiB, and share the cores so
//! that each finishes only about when all do, where queued they finish one core's turn apart. The face holds a semaphore of *hash permits* (default: one per
//! core, [`std::thread::available_parallelism`]; set with [`AsyncKeyward::with_permits`]). An
//! operation that may hash takes one permit before its blocking work starts and holds it
//! until the work ends, so at most `permits` operations that hash run at once and hashing
//! memory stays at `permits × m`. The rule is per operation, not per evaluation, because an
//! operation's evaluations run one after the other on its thread (a sign-in's password and
//! PIN, an upgrade's new hash): one permit covers them all. The one operation that hashes on
//! several threads, [`regenerate`](AsyncKeyward::regenerate), takes one permit per thread.
//!
//! The permits bound the working sets alive at once. Whether freed ones leave the resident
//! set is the allocator's business: glibc's malloc by default keeps them in the arenas of the
//! threads that hashed. So the single-permit operations (sign-ins and their steps) run on
//! threads of the face's own, one per permit, not on tokio's growing blocking pool; that
//! halves resident memory under load, but it still grows past `permits × m` unless malloc's
//! mmap threshold is fixed below m (`MALLOC_MMAP_THRESHOLD_=131072`); the README's
//! performance section has the measurements.
//!
//! Operations that never hash (lookups, searches, unlocks, audit reads, password-reset
//! sends, session checks) still run on the blocking pool, because store I/O blocks, but take
//! no permit: a slow query or mail server does not hold back sign-ins. Which operation takes a
//! permit is written next to each in the source and said in its documentation; where a flow
//! only may hash (a TOTP step that can go on to send an argon2id-hashed device code) it takes
//! one. [`seal_step`](AsyncKeyward::seal_step) and [`open_step`](AsyncKeyward::open_step) run
//! on the calling task: microseconds of AEAD, no store, no hash.
//!
//! # A cancelled future
//! Dropping the future of an operation (a client went away, a `select!` took another branch,
//! a timeout fired) has two cases:
//! - **while it waits for a permit**: nothing has started, nothing happens, and the place in
//!   the queue is given up;
//! - **once its blocking work has started**: tokio cannot stop a blocking task, so the work
//!   runs to its end and its effects in the store commit exactly as if the caller had waited
//!   (a wrong password is counted and may lock the account; a password change is written;
//!   an audit event is recorded). Only the answer is lost. The permit belongs to the blocking
//!   work, not to the future: it is released when the work ends, so the bound holds also
//!   while cancelled work finishes. A cancelled sign-in is therefore never a free guess.
//!
//! A panic in the blocking work resumes in the awaiting task, as a panic in the blocking call
//! would. If the runtime shuts down before the blocking work starts, the operation returns
//! [`Error::Cancelled`] and nothing ran.
//!
//! # Async notifiers
//! An application whose mail client is async passes it with
//! [`KeywardBuilder::async_notifier`](crate::KeywardBuilder::async_notifier) (see
//! [`AsyncNotifier`](crate::notify::AsyncNotifier)): the blocking flows block their pool
//! thread on each delivery, which is allowed there.

use std::io::Write;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;
use tokio::sync::{Semaphore, mpsc, watch};

use crate::account::{ContactCodeSending, ContactConfirmation, OwnChange};
use crate::admin::{
    Archived, CancelToken, Channel, GroupChoice, GroupResets, IssueOptions,
    IssuedTemporaryPassword, PrintableList, ProfileChange, Progress, Regenerated,
    RegenerationOptions, RegenerationPreview, UnclaimedUser, UserSummary,
};
use crate::audit::{AuditEvent, AuditQuery};
use crate::error::Error;
use crate::hash::ImportRecord;
use crate::import::{ImportOptions, ImportProgress, ImportedUser, RecordError};
use crate::migrate::{WrapOptions, WrapProgress, WrapReport};
use crate::notify::DeliveryReceipt;
use crate::recovery::PasswordReset;
use crate::secret::{OneTimeCode, Password, Pin, RecoveryCode, TemporaryPassword};
use crate::service::Keyward;
use crate::signin::{
    Denial, PasswordChange, PendingDeviceAuthorization, PendingEnrollment, PendingPasswordChange,
    PendingStep, PendingTotp, Reauthentication, SealedStep, SignIn, StepUp,
};
use crate::stamp::{SecurityStamp, SessionCheck};
use crate::store::{GroupQuery, Page, UserQuery};
use crate::totp::recovery_codes::RecoveryCodes;
use crate::user::{Role, SiteId, User, UserId};

/// [`Keyward`] for async code: every operation on tokio's blocking pool, hash evaluations
/// bounded by a semaphore of hash permits (see the [module documentation](self) for the
/// bound and for what a cancelled future does).
///
/// Cheap to clone (two `Arc`s); clones share the service and the permits. The futures borrow
/// `self`: to spawn one, clone the face into the task. Arguments are owned, because the
/// blocking work outlives any borrow the future could hold; secrets move into the work and
/// are zeroized there.
#[derive(Debug, Clone)]
pub struct AsyncKeyward {
    keyward: Arc<Keyward>,
    gate: Arc<Semaphore>,
    permits: u32,
    hashers: Arc<HashThreads>,
}

/// The most hash threads a face starts: four per core, at most 256.
fn thread_cap() -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    u32::try_from(cores.saturating_mul(4).min(256)).unwrap_or(256)
}

/// A job for the hash threads.
type Job = Box<dyn FnOnce() + Send>;

/// One thread per permit that runs the single-permit work, so that the threads that hash, and
/// with them the allocator arenas their working sets are freed into, are as many as the
/// permits: resident hashing memory stays at about `permits × m` with glibc's default malloc,
/// where tokio's growing blocking pool spreads freed working sets over dozens of arenas. No
/// crate does this small piece (a fixed pool feeding tokio futures) without bringing a
/// runtime of its own: it is a channel and `permits` threads.
struct HashThreads {
    jobs: Mutex<Option<std::sync::mpsc::Sender<Job>>>,
}

impl HashThreads {
    fn start(count: u32) -> Self {
        let (send, receive) = std::sync::mpsc::channel::<Job>();
        let receive = Arc::new(Mutex::new(receive));
        for i in 0..count {
            let receive = Arc::clone(&receive);
            let spawned = std::thread::Builder::new()
                .name(format!("keyward-hash-{i}"))
                .spawn(move || {
                    loop {
                        // One job at a time per thread; the lock is held only to take it.
                        let job = receive
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(),
                            // Every `AsyncKeyward` sharing these threads is gone.
                            Err(_) => break,
                        }
                    }
                });
            // Without a thread of its own the work still runs: `run` falls back to the
            // blocking pool when the channel has no receiver left.
            drop(spawned);
        }
        Self {
            jobs: Mutex::new(Some(send)),
        }
    }

    /// Hands `job` to a hash thread; gives it back when none is running.
    fn submit(&self, job: Job) -> Result<(), Job> {
        let jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        match jobs.as_ref() {
            Some(sender) => sender
                .send(job)
                .map_err(|std::sync::mpsc::SendError(job)| job),
            None => Err(job),
        }
    }
}

impl std::fmt::Debug for HashThreads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HashThreads").finish_non_exhaustive()
    }
}

impl Drop for HashThreads {
    fn drop(&mut self) {
        // Closing the channel ends the threads once the jobs queued are done.
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

/// What an operation holds while its blocking work runs.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// It may hash: this many permits (one per thread it hashes on).
    Hashing(u32),
    /// It never hashes: store I/O only, no permit.
    Store,
}

/// The progress and cancel of a long run through the async face (a regeneration, a wrap,
/// an import): the owned counterpart of the callbacks of [`RegenerationOptions`],
/// [`WrapOptions`] and [`ImportOptions`]. Progress goes to a [`watch`] channel, which keeps
/// the latest report for whoever awaits it; reports nobody reads cost nothing.
#[derive(Debug)]
#[must_use]
pub struct LongRun<P> {
    progress: Option<watch::Sender<P>>,
    cancel: Option<CancelToken>,
}

impl<P> Default for LongRun<P> {
    fn default() -> Self {
        Self {
            progress: None,
            cancel: None,
        }
    }
}

impl<P> LongRun<P> {
    /// No progress reports, no cancellation.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sends every progress report to `progress` (replacing the one before).
    pub fn progress(mut self, progress: watch::Sender<P>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Stops the run when `token` is cancelled, as the blocking options' `cancel_with` does.
    /// This, not dropping the future, is how to stop a long run (see the
    /// [module documentation](self#a-cancelled-future)).
    pub fn cancel_with(mut self, token: CancelToken) -> Self {
        self.cancel = Some(token);
        self
    }

    /// The report callback for the blocking options.
    fn reporter(progress: Option<watch::Sender<P>>) -> impl FnMut(P) {
        move |report| {
            if let Some(sender) = &progress {
                sender.send_replace(report);
            }
        }
    }
}

impl Keyward {
    /// This service behind the async face, with one hash permit per core (see
    /// [`AsyncKeyward::new`]).
    #[must_use]
    pub fn into_async(self) -> AsyncKeyward {
        AsyncKeyward::new(Arc::new(self))
    }
}

impl AsyncKeyward {
    /// The async face of `keyward`, with one hash permit per core
    /// ([`std::thread::available_parallelism`]; 1 if it cannot tell): hashing then uses every
    /// core and its memory stays at cores × the policy's m.
    #[must_use]
    pub fn new(keyward: Arc<Keyward>) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::with_permits(
            keyward,
            NonZeroUsize::new(cores).unwrap_or(NonZeroUsize::MIN),
        )
    }

    /// The async face of `keyward` with `permits` hash permits: at most that many operations
    /// that hash run at once (capped at `u32::MAX`).
    #[must_use]
    pub fn with_permits(keyward: Arc<Keyward>, permits: NonZeroUsize) -> Self {
        let permits = u32::try_from(permits.get()).unwrap_or(u32::MAX);
        Self {
            keyward,
            gate: Arc::new(Semaphore::new(permits as usize)),
            permits,
            // More threads than cores only queue on the cores; at most 4 per core (and 256)
            // keeps a huge permit count from spawning a thread per permit.
            hashers: Arc::new(HashThreads::start(permits.min(thread_cap()))),
        }
    }

    /// The blocking service, for its cheap accessors ([`Keyward::store`],
    /// [`Keyward::hasher`], [`Keyward::now`]). Calling its operations from an async task
    /// blocks a worker thread: use the face's.
    #[must_use]
    pub fn keyward(&self) -> &Arc<Keyward> {
        &self.keyward
    }

    /// The number of hash permits.
    #[must_use]
    pub fn permits(&self) -> usize {
        self.permits as usize
    }

    /// [`permits`](Self::permits), as a thread count.
    fn all_permits(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.permits()).unwrap_or(NonZeroUsize::MIN)
    }

    /// The hash permits free at this instant (for metrics; stale as soon as it is read).
    #[must_use]
    pub fn available_permits(&self) -> usize {
        self.gate.available_permits()
    }

    /// Runs `work` on the blocking pool holding `hash_permits` permits (at most all of them):
    /// for what the face has no method for, such as an import with its own batch size or a
    /// regeneration with options built by hand. Give it one permit per thread `work` hashes
    /// on, and none only if it never hashes; the bound holds only for work that keeps to that.
    ///
    /// # Errors
    /// `work`'s; [`Error::Cancelled`] if the runtime shut down before it started.
    pub async fn blocking<T: Send + 'static>(
        &self,
        hash_permits: u32,
        work: impl FnOnce(&Keyward) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let holds = match hash_permits {
            0 => Work::Store,
            n => Work::Hashing(n),
        };
        self.run(holds, work).await
    }

    /// The one path of every operation: wait for the permits `holds` names, then run `work`
    /// on the blocking pool with them.
    async fn run<T: Send + 'static>(
        &self,
        holds: Work,
        work: impl FnOnce(&Keyward) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let permit = match holds {
            Work::Store => None,
            Work::Hashing(n) => {
                // Waiting here is the only cancellable part: dropped now, nothing ran. A
                // request for more permits than there are would wait forever: clamp it.
                let wanted = n.clamp(1, self.permits);
                let gate = Arc::clone(&self.gate);
                // The gate is never closed, so this cannot fail; were it closed, nothing ran.
                let permit = gate.acquire_many_owned(wanted).await;
                Some(permit.map_err(|_| Error::Cancelled)?)
            }
        };
        let keyward = Arc::clone(&self.keyward);
        if matches!(holds, Work::Hashing(1)) {
            // Single-permit work runs on the hash threads (see `HashThreads`), with the same
            // rule: the permit drops when the work returns.
            let (done, result) = tokio::sync::oneshot::channel();
            let job: Job = Box::new(move || {
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&keyward)));
                // The permit goes back before the answer does, as when a blocking task ends.
                drop(permit);
                let _ = done.send(outcome);
            });
            if let Err(job) = self.hashers.submit(job) {
                // No hash thread is left (it could not be spawned): the blocking pool runs it.
                let task = tokio::task::spawn_blocking(job);
                let _ = task.await;
            }
            return match result.await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(panic)) => std::panic::resume_unwind(panic),
                // The job was dropped unrun (the threads are shutting down).
                Err(_) => Err(Error::Cancelled),
            };
        }
        let task = tokio::task::spawn_blocking(move || {
            // The permit moves into the blocking work and drops when the work returns, not
            // when the awaiting future is dropped: cancelled work still counts against the
            // bound until it has finished.
            let _permit = permit;
            work(&keyward)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            // Only a runtime shutting down cancels a blocking task, and only before it runs.
            Err(_) => Err(Error::Cancelled),
        }
    }

    /// [`Keyward::seal_step`], on the calling task: microseconds of AEAD, no store, no hash.
    ///
    /// # Errors
    /// As [`Keyward::seal_step`].
    pub fn seal_step(&self, step: impl Into<PendingStep>) -> Result<SealedStep, Error> {
        self.keyward.seal_step(step)
    }

    /// [`Keyward::open_step`], on the calling task: no store read, no hash.
    ///
    /// # Errors
    /// As [`Keyward::open_step`].
    pub fn open_step(&self, sealed: &str) -> Result<PendingStep, Denial> {
        self.keyward.open_step(sealed)
    }

    /// [`Keyward::regenerate`] on `threads` threads (at most the number of permits), holding
    /// one hash permit per thread until the run ends; sign-ins share the permits left. Stop it
    /// with [`LongRun::cancel_with`].
    ///
    /// # Errors
    /// As [`Keyward::regenerate`]; [`Error::Cancelled`] also if the runtime shut down before
    /// the work started.
    pub async fn regenerate(
        &self,
        actor: UserId,
        confirmation: Password,
        preview: RegenerationPreview,
        threads: NonZeroUsize,
        run: LongRun<Progress>,
    ) -> Result<Regenerated, Error> {
        let threads = threads.min(self.all_permits());
        let holds = Work::Hashing(u32::try_from(threads.get()).unwrap_or(self.permits));
        self.run(holds, move |kw| {
            let mut report = LongRun::reporter(run.progress);
            let mut options = RegenerationOptions::new()
                .threads(threads)
                .on_progress(&mut report);
            if let Some(token) = run.cancel {
                options = options.cancel_with(token);
            }
            kw.regenerate(&actor, &confirmation, preview, options)
        })
        .await
    }

    /// [`Keyward::bulk_regenerate`] (preview and regeneration in one blocking call) on as
    /// many threads as there are permits, every permit held until the run ends: sign-ins wait
    /// meanwhile. On a live server prefer [`regenerate`](Self::regenerate) with fewer threads.
    ///
    /// # Errors
    /// As [`Keyward::bulk_regenerate`]; [`Error::Cancelled`] also if the runtime shut down
    /// before the work started.
    pub async fn bulk_regenerate(
        &self,
        actor: UserId,
        confirmation: Password,
        site: SiteId,
        groups: Vec<String>,
    ) -> Result<PrintableList, Error> {
        let threads = self.all_permits();
        self.run(Work::Hashing(self.permits), move |kw| {
            let preview = kw.preview_regeneration(&actor, &site, &groups)?;
            let options = RegenerationOptions::new().threads(threads);
            Ok(kw.regenerate(&actor, &confirmation, preview, options)?.list)
        })
        .await
    }

    /// [`Keyward::wrap_fast_hashes`] with pages of 200 users, holding one hash permit until
    /// the run ends (it wraps one user at a time). Stop it with [`LongRun::cancel_with`].
    ///
    /// # Errors
    /// As [`Keyward::wrap_fast_hashes`]; [`Error::Cancelled`] also if the runtime shut down
    /// before the work started.
    pub async fn wrap_fast_hashes(
        &self,
        actor: Option<UserId>,
        site: SiteId,
        run: LongRun<WrapProgress>,
    ) -> Result<WrapReport, Error> {
        self.run(Work::Hashing(1), move |kw| {
            let mut report = LongRun::reporter(run.progress);
            let mut options = WrapOptions::new().on_progress(&mut report);
            if let Some(token) = run.cancel {
                options = options.cancel_with(token);
            }
            kw.wrap_fast_hashes(actor.as_ref(), &site, options)
        })
        .await
    }

    /// [`Keyward::import_users`] in batches of 2,000 users, holding one hash permit until the
    /// run ends (an import may wrap fast hashes, one at a time). `records` is read on the
    /// blocking thread; each refused record is sent to `refused`, if given. Stop it with
    /// [`LongRun::cancel_with`].
    ///
    /// # Errors
    /// As [`Keyward::import_users`]; [`Error::Cancelled`] also if the runtime shut down before
    /// the work started.
    pub async fn import_users<I>(
        &self,
        actor: Option<UserId>,
        site: SiteId,
        records: I,
        refused: Option<mpsc::UnboundedSender<RecordError>>,
        run: LongRun<ImportProgress>,
    ) -> Result<ImportProgress, Error>
    where
        I: IntoIterator<Item = Result<ImportedUser, RecordError>> + Send + 'static,
    {
        self.run(Work::Hashing(1), move |kw| {
            let mut report = LongRun::reporter(run.progress);
            let mut on_progress = |p: &ImportProgress| report(*p);
            let mut on_refused = |e: &RecordError| {
                if let Some(sender) = &refused {
                    // A receiver that went away reads no more refusals; the import goes on.
                    let _ = sender.send(e.clone());
                }
            };
            let mut options = ImportOptions::new()
                .on_progress(&mut on_progress)
                .on_refused(&mut on_refused);
            if let Some(token) = run.cancel {
                options = options.cancel_with(token);
            }
            kw.import_users(actor.as_ref(), &site, records, options)
        })
        .await
    }

    /// [`Keyward::archive_audit`] into `out`, on the blocking pool without a hash permit;
    /// hands `out` back with the result, as the blocking call left it.
    ///
    /// # Errors
    /// As [`Keyward::archive_audit`] (`out` is dropped with the error); [`Error::Cancelled`]
    /// also if the runtime shut down before the work started.
    pub async fn archive_audit<W: Write + Send + 'static>(
        &self,
        actor: UserId,
        site: SiteId,
        before: OffsetDateTime,
        mut out: W,
    ) -> Result<(Archived, W), Error> {
        self.run(Work::Store, move |kw| {
            let archived = kw.archive_audit(&actor, &site, before, &mut out)?;
            Ok((archived, out))
        })
        .await
    }
}

/// Writes the async counterparts of [`Keyward`] methods, one entry each:
///
/// `hashing|store fn name(owned args) -> Output = |kw| call;`
///
/// `hashing` takes one hash permit for the whole blocking call, `store` none (the method never
/// hashes); `kw` names the `&Keyward` the call is made on, and the call borrows the owned
/// arguments, which moved into the blocking work.
macro_rules! async_face {
    ($(
        $holds:ident fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $out:ty
            = |$kw:ident| $call:expr;
    )*) => {
        impl AsyncKeyward {$(
            #[doc = concat!(
                "[`Keyward::", stringify!($name), "`] on tokio's blocking pool, ",
                async_face!(@doc $holds), "."
            )]
            ///
            /// # Errors
            #[doc = concat!(
                "As [`Keyward::", stringify!($name), "`]; [`Error::Cancelled`] if the ",
                "runtime shut down before the work started (nothing ran)."
            )]
            pub async fn $name(&self, $($arg: $ty),*) -> Result<$out, Error> {
                self.run(async_face!(@work $holds), move |$kw: &Keyward| $call).await
            }
        )*}
    };
    (@doc hashing) => { "holding one hash permit until it ends" };
    (@doc store) => { "without a hash permit (it never hashes)" };
    (@work hashing) => { Work::Hashing(1) };
    (@work store) => { Work::Store };
}

async_face! {
    // Sign-in and its steps. The TOTP steps may go on to send a device code, which is
    // hashed with argon2id: they take a permit.
    hashing fn sign_in(site: SiteId, username: String, password: Password, pin: Option<Pin>)
        -> SignIn = |kw| kw.sign_in(&site, &username, &password, pin.as_ref());
    hashing fn complete_password_change(pending: PendingPasswordChange, new_password: Password)
        -> PasswordChange = |kw| kw.complete_password_change(pending, new_password);
    hashing fn verify_totp(pending: PendingTotp, code: OneTimeCode)
        -> SignIn = |kw| kw.verify_totp(pending, &code);
    hashing fn authorize_device(pending: PendingDeviceAuthorization, code: OneTimeCode)
        -> SignIn = |kw| kw.authorize_device(pending, &code);
    hashing fn confirm_enrollment(pending: PendingEnrollment, code: OneTimeCode)
        -> SignIn = |kw| kw.confirm_enrollment(pending, &code);
    store fn enroll_totp(user: UserId, step_up: Option<StepUp>)
        -> PendingEnrollment = |kw| kw.enroll_totp(&user, step_up);
    hashing fn reauthenticate(user: UserId, password: Password)
        -> Reauthentication = |kw| kw.reauthenticate(&user, &password);
    hashing fn reauthenticate_with_totp(user: UserId, code: OneTimeCode)
        -> Reauthentication = |kw| kw.reauthenticate_with_totp(&user, &code);
    store fn reseal_totp_secret(user: UserId) -> bool = |kw| kw.reseal_totp_secret(&user);
    store fn check_session(user: UserId, stamp: SecurityStamp)
        -> SessionCheck = |kw| kw.check_session(&user, &stamp);

    // Accounts.
    hashing fn create_user(actor: Option<UserId>, user: User, password: Option<Password>)
        -> User = |kw| kw.create_user(actor.as_ref(), user, password);
    hashing fn import_user(user: User, record: ImportRecord)
        -> User = |kw| kw.import_user(user, &record);
    hashing fn set_pin(actor: UserId, target: UserId, pin: Option<Pin>)
        -> () = |kw| kw.set_pin(&actor, &target, pin.as_ref());
    hashing fn change_password(user: UserId, current: Password, new_password: Password)
        -> OwnChange = |kw| kw.change_password(&user, &current, new_password);
    hashing fn change_own_pin(user: UserId, password: Password, pin: Option<Pin>)
        -> OwnChange = |kw| kw.change_own_pin(&user, &password, pin.as_ref());
    hashing fn set_imported_password(actor: UserId, user: UserId, record: ImportRecord)
        -> () = |kw| kw.set_imported_password(&actor, &user, &record);

    // Recovery: reset tokens are SHA-256 digests, so only setting the new password hashes.
    store fn request_password_reset(site: SiteId, username: String)
        -> () = |kw| kw.request_password_reset(&site, &username);
    store fn send_password_reset(actor: UserId, target: UserId)
        -> DeliveryReceipt = |kw| kw.send_password_reset(&actor, &target);
    hashing fn reset_password(token: OneTimeCode, new_password: Password)
        -> PasswordReset = |kw| kw.reset_password(&token, new_password);

    // Administration.
    store fn search_users(actor: UserId, query: UserQuery)
        -> Page<UserSummary> = |kw| kw.search_users(&actor, &query);
    store fn lookup_user(actor: UserId, site: SiteId, username: String)
        -> UserSummary = |kw| kw.lookup_user(&actor, &site, &username);
    store fn user_summary(actor: UserId, user: UserId)
        -> UserSummary = |kw| kw.user_summary(&actor, &user);
    store fn audit_trail(actor: UserId, query: AuditQuery)
        -> Page<AuditEvent> = |kw| kw.audit_trail(&actor, &query);
    hashing fn issue_temporary_password(actor: UserId, target: UserId, options: IssueOptions)
        -> IssuedTemporaryPassword = |kw| kw.issue_temporary_password(&actor, &target, options);
    store fn remove_temporary_password(actor: UserId, target: UserId)
        -> () = |kw| kw.remove_temporary_password(&actor, &target);
    store fn unlock(actor: UserId, target: UserId) -> () = |kw| kw.unlock(&actor, &target);
    store fn lock_user(actor: UserId, target: UserId, reason: String)
        -> () = |kw| kw.lock_user(&actor, &target, &reason);
    store fn reset_totp(actor: UserId, target: UserId) -> () = |kw| kw.reset_totp(&actor, &target);
    hashing fn recover_administrator(site: SiteId, username: String, reset_totp: bool)
        -> TemporaryPassword = |kw| kw.recover_administrator(&site, &username, reset_totp);
    store fn preview_regeneration(actor: UserId, site: SiteId, groups: Vec<String>)
        -> RegenerationPreview = |kw| kw.preview_regeneration(&actor, &site, &groups);
    store fn cohort_groups(actor: UserId, query: GroupQuery)
        -> Page<GroupChoice> = |kw| kw.cohort_groups(&actor, &query);
    store fn unclaimed_users(actor: UserId, query: UserQuery)
        -> Page<UnclaimedUser> = |kw| kw.unclaimed_users(&actor, &query);
    store fn send_group_password_resets(actor: UserId, site: SiteId, groups: Vec<String>)
        -> GroupResets = |kw| kw.send_group_password_resets(&actor, &site, &groups);
    store fn reveal_temporary_password(actor: UserId, target: UserId)
        -> TemporaryPassword = |kw| kw.reveal_temporary_password(&actor, &target);
    store fn erase_expired_escrow(site: SiteId) -> u64 = |kw| kw.erase_expired_escrow(&site);
    store fn verify_recovery_code(pending: PendingTotp, code: RecoveryCode)
        -> SignIn = |kw| kw.verify_recovery_code(pending, &code);
    store fn regenerate_recovery_codes(user: UserId, step_up: StepUp)
        -> RecoveryCodes = |kw| kw.regenerate_recovery_codes(&user, step_up);
    store fn update_user(actor: UserId, target: UserId, change: ProfileChange)
        -> User = |kw| kw.update_user(&actor, &target, &change);
    store fn set_contact(actor: UserId, target: UserId, channel: Channel, value: Option<String>)
        -> User = |kw| kw.set_contact(&actor, &target, channel, value.as_deref());
    store fn disable_user(actor: UserId, target: UserId, reason: String)
        -> () = |kw| kw.disable_user(&actor, &target, &reason);
    store fn enable_user(actor: UserId, target: UserId)
        -> () = |kw| kw.enable_user(&actor, &target);
    store fn set_role(actor: UserId, target: UserId, role: Role, managed_sites: Vec<SiteId>)
        -> User = |kw| kw.set_role(&actor, &target, role, &managed_sites);
    store fn delete_user(actor: UserId, target: UserId)
        -> () = |kw| kw.delete_user(&actor, &target);
    store fn change_own_contact(user: UserId, step_up: StepUp, channel: Channel, value: Option<String>)
        -> User = |kw| kw.change_own_contact(&user, step_up, channel, value.as_deref());
    hashing fn send_contact_code(user: UserId, channel: Channel)
        -> ContactCodeSending = |kw| kw.send_contact_code(&user, channel);
    hashing fn confirm_contact(user: UserId, channel: Channel, code: OneTimeCode)
        -> ContactConfirmation = |kw| kw.confirm_contact(&user, channel, &code);
}
