//! The async face (feature `tokio`): outcomes through the blocking pool, the bound on
//! concurrent hash evaluations, what a cancelled future leaves behind, async notifiers.
//!
//! Concurrency is observed by a registered hash scheme, `Probe`, that counts the
//! verifications running inside it: a hook in the hasher, independent of the face's
//! semaphore. It never sleeps: where a test needs verifications to overlap or to stay
//! running, the probe holds them at a rendezvous until the test has seen what it needs.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use keyward::hash::{HashLimits, HashScheme, SchemeMatch};
use keyward::notify::{AsyncNotifier, DeliveryReceipt, Message, MessageKind, NotifyError};
use keyward::recovery::PasswordReset;
use keyward::user::{User, UserId};
use keyward::{
    AsyncKeyward, DenialReason, Error, HashError, Hasher, ImportRecord, InMemoryStore, OneTimeCode,
    Password, SignIn,
};
use support::*;

/// How long the probe waits at a rendezvous before it gives up: only a guard against a
/// hung test (a face that never lets enough verifications run), never a measurement.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// How long the first wave stays inside the probe after its rendezvous, giving a face that
/// does not bound hashing the chance to let more in. No assertion depends on it: a face that
/// keeps the bound passes however long it is; one that breaks it is caught the more surely
/// the longer it is (on the bare pool the next verifications enter within microseconds).
const FIRST_WAVE_STAYS: Duration = Duration::from_millis(200);

#[derive(Debug, Default)]
struct ProbeState {
    /// Verifications inside the probe now.
    running: usize,
    /// The most that were ever inside at once.
    peak: usize,
    /// Verifications that entered, in all.
    entered: usize,
    /// Entrants wait until this many are inside at once (once reached, nobody waits for it).
    rendezvous: usize,
    met: bool,
    /// Whether the first wave stays for [`FIRST_WAVE_STAYS`] after the rendezvous.
    linger: bool,
    /// Entrants wait while the test holds them.
    held: bool,
}

/// A hash scheme, `$probe$` + a cheap argon2id hash, that counts the verifications running
/// in it. Its first entrants wait until `rendezvous` of them are inside together, which
/// proves that many can run at once; the peak then shows whether more ever did.
#[derive(Debug, Clone)]
struct Probe {
    state: Arc<(Mutex<ProbeState>, Condvar)>,
    inner: Hasher,
}

const PREFIX: &str = "$probe$";

impl Probe {
    fn new(rendezvous: usize) -> Self {
        Self::with_state(ProbeState {
            rendezvous,
            ..ProbeState::default()
        })
    }

    /// A probe whose first `rendezvous` verifications wait for each other, then stay inside
    /// a while longer (see [`FIRST_WAVE_STAYS`]).
    fn lingering(rendezvous: usize) -> Self {
        Self::with_state(ProbeState {
            rendezvous,
            linger: true,
            ..ProbeState::default()
        })
    }

    fn with_state(state: ProbeState) -> Self {
        Self {
            state: Arc::new((Mutex::new(state), Condvar::new())),
            inner: Hasher::for_tests(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, ProbeState> {
        self.state.0.lock().unwrap()
    }

    /// The stored form of `password` in this scheme.
    fn stored(&self, password: &str) -> String {
        let hash = self.inner.hash(&Password::new(password)).unwrap();
        format!("{PREFIX}{}", hash.as_str())
    }

    fn peak(&self) -> usize {
        self.lock().peak
    }

    fn entered(&self) -> usize {
        self.lock().entered
    }

    /// Makes entrants wait until [`release`](Self::release).
    fn hold(&self) {
        self.lock().held = true;
    }

    fn release(&self) {
        self.lock().held = false;
        self.state.1.notify_all();
    }

    /// Blocks until `n` verifications have entered in all.
    fn wait_entered(&self, n: usize) {
        let (state, timeout) = (self.state.1)
            .wait_timeout_while(self.lock(), HANG_GUARD, |s| s.entered < n)
            .unwrap();
        drop(state);
        assert!(!timeout.timed_out(), "fewer than {n} verifications entered");
    }

    /// Counts one verification in, and waits at the rendezvous or while held.
    fn enter(&self) -> Inside<'_> {
        let mut s = self.lock();
        s.running += 1;
        s.entered += 1;
        s.peak = s.peak.max(s.running);
        if s.running >= s.rendezvous {
            s.met = true;
        }
        self.state.1.notify_all();
        let (s, timeout) = (self.state.1)
            .wait_timeout_while(s, HANG_GUARD, |s| !s.met || s.held)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} of {} verifications ran at once (or the test never released them)",
            s.running,
            s.rendezvous
        );
        if s.linger && s.entered <= s.rendezvous {
            // Timing out is the expected end of this wait (see FIRST_WAVE_STAYS).
            let (s, _) = (self.state.1)
                .wait_timeout_while(s, FIRST_WAVE_STAYS, |s| s.running <= s.rendezvous)
                .unwrap();
            drop(s);
        }
        Inside(self)
    }
}

/// One verification inside the probe; counted out when dropped, however it ends.
struct Inside<'a>(&'a Probe);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
        self.0.state.1.notify_all();
    }
}

impl HashScheme for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn detect(&self, stored: &str) -> bool {
        stored.starts_with(PREFIX)
    }

    fn check(&self, stored: &str, _: &HashLimits) -> Result<(), HashError> {
        self.inner.parse(&stored[PREFIX.len()..]).map(drop)
    }

    fn verify(
        &self,
        password: &[u8],
        stored: &str,
        _: &HashLimits,
    ) -> Result<SchemeMatch, HashError> {
        let inner = self.inner.parse(&stored[PREFIX.len()..])?;
        let text = std::str::from_utf8(password).map_err(|_| HashError::Malformed {
            scheme: "probe",
            reason: "not UTF-8",
        })?;
        let _inside = self.enter();
        self.inner.verify_scheme(&Password::new(text), &inner)
    }
}

/// The fixture on a memory store, hashing with the cheap test hasher plus `probe`.
fn fx_probed(probe: &Probe) -> Fx {
    let probe = probe.clone();
    let store = Arc::new(InMemoryStore::new());
    fx_with(store, move |b| {
        b.hasher(Hasher::for_tests().with_scheme(probe))
    })
}

/// Imports `username` with `password` stored in the probe's scheme.
fn import_probed(fx: &Fx, probe: &Probe, username: &str, password: &str) -> User {
    let user = User::new(fx.site.clone(), username, "Pat", username, "staff", T0);
    let record = ImportRecord::new(probe.stored(password));
    fx.kw.import_user(user, &record).unwrap()
}

fn permits(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap()
}

/// What one of the concurrent sign-ins must come to.
#[derive(Debug, Clone)]
enum Expect {
    Authenticated(UserId),
    WrongPassword(UserId),
    UnknownUser,
}

fn check(expect: &Expect, outcome: SignIn) {
    match (expect, outcome) {
        (Expect::Authenticated(id), SignIn::Authenticated(done)) => {
            assert_eq!(&done.user().id, id);
            // The probe's hash was verified and replaced by argon2id.
            assert!(done.hash_upgraded());
        }
        (Expect::WrongPassword(id), SignIn::Denied(denial)) => {
            assert_eq!(denial.reason(), DenialReason::WrongPassword);
            assert_eq!(denial.user(), Some(id));
        }
        (Expect::UnknownUser, SignIn::Denied(denial)) => {
            assert_eq!(denial.reason(), DenialReason::UnknownUser);
        }
        (expect, other) => panic!("expected {expect:?}, got {other:?}"),
    }
}

/// 64 sign-ins: 16 users with the right password (each once: a right answer upgrades the
/// hash out of the probe), 16 users twice with a wrong one (below the lockout of 5), 16
/// unknown usernames. Returns the sign-ins to make and what each must come to.
fn sixty_four(fx: &Fx, probe: &Probe) -> Vec<(String, &'static str, Expect)> {
    let mut plan = Vec::new();
    for i in 0..16 {
        let right = import_probed(fx, probe, &format!("right{i}"), "maple-harbour-quartz-17");
        let wrong = import_probed(fx, probe, &format!("wrong{i}"), "maple-harbour-quartz-17");
        // Interleaved, so that every kind is in flight at every moment.
        plan.push((
            format!("right{i}"),
            "maple-harbour-quartz-17",
            Expect::Authenticated(right.id),
        ));
        plan.push((
            format!("wrong{i}"),
            "maple-harbour-quartz-18",
            Expect::WrongPassword(wrong.id.clone()),
        ));
        plan.push((
            format!("nobody{i}"),
            "maple-harbour-quartz-17",
            Expect::UnknownUser,
        ));
        plan.push((
            format!("wrong{i}"),
            "not-it-at-all",
            Expect::WrongPassword(wrong.id),
        ));
    }
    plan
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_sign_ins_are_right_and_never_exceed_the_permits() {
    const PERMITS: usize = 4;
    // The first four verifications wait for each other (the face must let four run at once),
    // then stay a while, during which a face that did not bound hashing would let more in.
    let probe = Probe::lingering(PERMITS);
    let fx = fx_probed(&probe);
    let plan = sixty_four(&fx, &probe);
    let site = fx.site.clone();
    let face = AsyncKeyward::with_permits(Arc::new(fx.kw), permits(PERMITS));
    assert_eq!(face.permits(), PERMITS);

    let mut running = Vec::new();
    for (username, password, expect) in plan {
        let (face, site) = (face.clone(), site.clone());
        let task = tokio::spawn(async move {
            let password = Password::new(password);
            face.sign_in(site, username, password, None).await
        });
        running.push((expect, task));
    }
    for (expect, task) in running {
        check(&expect, task.await.unwrap().unwrap());
    }

    // 16 right + 32 wrong answers went through the probe; 4 at once at the rendezvous,
    // and never more than the permits (with PINs on, each sign-in also spends a dummy
    // verification inside its permit, outside the probe).
    assert_eq!(probe.entered(), 48);
    assert_eq!(probe.peak(), PERMITS);
    assert_eq!(face.available_permits(), PERMITS);
    for i in 0..16 {
        let wrong = face
            .keyward()
            .store()
            .find_user(&site, &format!("wrong{i}"));
        let lock = wrong.unwrap().unwrap().password_lock;
        assert_eq!((lock.failed_attempts, lock.in_flight), (2, 0));
    }
}

/// The control for the test above: the same 64 sign-ins on the bare blocking pool overlap
/// well past 4 in the probe (its rendezvous of 12 fills), so the probe would see a face that
/// did not bound them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_face_the_probe_sees_more_than_the_permits() {
    let probe = Probe::new(12);
    let fx = fx_probed(&probe);
    let plan = sixty_four(&fx, &probe);
    let (kw, site) = (Arc::new(fx.kw), fx.site.clone());
    let mut running = Vec::new();
    for (username, password, expect) in plan {
        let (kw, site) = (kw.clone(), site.clone());
        let task = tokio::task::spawn_blocking(move || {
            kw.sign_in(&site, &username, &Password::new(password), None)
        });
        running.push((expect, task));
    }
    for (expect, task) in running {
        check(&expect, task.await.unwrap().unwrap());
    }
    assert!(probe.peak() >= 12, "peak {}", probe.peak());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_sign_in_still_counts_and_holds_its_permit_until_its_work_ends() {
    let probe = Probe::new(1);
    let fx = fx_probed(&probe);
    let amy = import_probed(&fx, &probe, "amy", "maple-harbour-quartz-17");
    let site = fx.site.clone();
    let face = AsyncKeyward::with_permits(Arc::new(fx.kw), permits(1));

    // A wrong password, held inside its verification.
    probe.hold();
    let task = tokio::spawn({
        let (face, site) = (face.clone(), site.clone());
        async move {
            let password = Password::new("wrong-guess-number-1");
            face.sign_in(site, "amy".into(), password, None).await
        }
    });
    let waiter = probe.clone();
    tokio::task::spawn_blocking(move || waiter.wait_entered(1))
        .await
        .unwrap();
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    // The future is gone; its blocking work is not, and it still holds the only permit.
    assert_eq!(face.available_permits(), 0);

    // A second guess dropped while it waits for the permit never runs.
    {
        let guess = Password::new("wrong-guess-number-2");
        let waiting = face.sign_in(site.clone(), "amy".into(), guess, None);
        tokio::pin!(waiting);
        tokio::select! {
            biased;
            outcome = &mut waiting => panic!("ran without a permit: {outcome:?}"),
            () = std::future::ready(()) => {}
        }
    }

    probe.release();
    // The next sign-in gets the permit only once the cancelled work has ended, settled
    // included: by then its failure is in the store.
    let other = face
        .sign_in(site, "nobody".into(), Password::new("x"), None)
        .await
        .unwrap();
    check(&Expect::UnknownUser, other);
    let lock = face
        .keyward()
        .store()
        .get_user(&amy.id)
        .unwrap()
        .unwrap()
        .password_lock;
    assert_eq!((lock.failed_attempts, lock.in_flight), (1, 0));
    assert_eq!(probe.entered(), 1, "the dropped waiter verified");
    assert_eq!(face.available_permits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_is_one_permit_per_core() {
    let face = builder(Arc::new(InMemoryStore::new())).build().into_async();
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!((face.permits(), face.available_permits()), (cores, cores));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_that_never_hash_run_while_every_permit_is_taken() {
    let probe = Probe::new(1);
    let fx = fx_probed(&probe);
    let amy = import_probed(&fx, &probe, "amy", "maple-harbour-quartz-17");
    let sam = fx.user("sam");
    let (site, admin) = (fx.site.clone(), fx.admin.id.clone());
    let face = AsyncKeyward::with_permits(Arc::new(fx.kw), permits(1));

    // A sign-in holds the only permit, held inside its verification.
    probe.hold();
    let signing_in = tokio::spawn({
        let face = face.clone();
        async move {
            let password = Password::new("wrong-guess-number-1");
            face.sign_in(site, "amy".into(), password, None).await
        }
    });
    let waiter = probe.clone();
    tokio::task::spawn_blocking(move || waiter.wait_entered(1))
        .await
        .unwrap();
    assert_eq!(face.available_permits(), 0);
    // A lookup takes no permit: it is answered meanwhile.
    let summary = face.user_summary(admin, sam.id.clone()).await.unwrap();
    assert_eq!(summary.user.id, sam.id);

    probe.release();
    let outcome = signing_in.await.unwrap().unwrap();
    check(&Expect::WrongPassword(amy.id), outcome);
}

/// An async mail client: yields to the runtime before it keeps the message.
#[derive(Debug, Clone, Default)]
struct AsyncMail {
    sent: Arc<tokio::sync::Mutex<Vec<Message>>>,
    fail: bool,
}

impl AsyncNotifier for AsyncMail {
    async fn send(&self, message: Message) -> Result<DeliveryReceipt, NotifyError> {
        tokio::task::yield_now().await;
        if self.fail {
            return Err(NotifyError::new(message.to.clone(), "mail server down"));
        }
        let mut sent = self.sent.lock().await;
        let receipt = DeliveryReceipt::new(message.to.clone(), Some(format!("m{}", sent.len())));
        sent.push(message);
        Ok(receipt)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_notifier_delivers_through_the_face() {
    let mail = AsyncMail::default();
    let handle = tokio::runtime::Handle::current();
    let bridge = mail.clone();
    let fx = fx_with(Arc::new(InMemoryStore::new()), move |b| {
        b.async_notifier(handle, bridge)
    });
    let sam = fx.user("sam");
    let admin = fx.admin.id.clone();
    let face = fx.kw.into_async();

    let receipt = face
        .send_password_reset(admin, sam.id.clone())
        .await
        .unwrap();
    assert_eq!(receipt.reference.as_deref(), Some("m0"));
    let message = mail.sent.lock().await.pop().unwrap();
    assert_eq!(message.kind, MessageKind::PasswordReset);
    // The token it carried works.
    let token = message.secret.expose_secret();
    let new_password = Password::new("saffron-glacier-window-44");
    let reset = face
        .reset_password(OneTimeCode::new(token), new_password)
        .await
        .unwrap();
    assert!(matches!(reset, PasswordReset::Done { .. }), "{reset:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_notifier_failure_is_the_operation_error() {
    let mail = AsyncMail {
        fail: true,
        ..AsyncMail::default()
    };
    let handle = tokio::runtime::Handle::current();
    let fx = fx_with(Arc::new(InMemoryStore::new()), move |b| {
        b.async_notifier(handle, mail)
    });
    let sam = fx.user("sam");
    let admin = fx.admin.id.clone();
    let face = fx.kw.into_async();
    let err = face
        .send_password_reset(admin, sam.id.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Notify(_)), "{err:?}");
    // The undelivered token was withdrawn.
    let record = face.keyward().store().get_user(&sam.id).unwrap().unwrap();
    assert!(record.reset_token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_permit_count_starts_a_bounded_number_of_threads() {
    let kw = builder(Arc::new(InMemoryStore::new())).build();
    let permits = std::num::NonZeroUsize::new(1 << 30).unwrap();
    // Building returns at once (before: one thread per permit) and the face works.
    let face = keyward::nonblocking::AsyncKeyward::with_permits(Arc::new(kw), permits);
    let site = keyward::user::SiteId::new("northfield").unwrap();
    let outcome = face
        .sign_in(site, "nobody".into(), Password::new("x"), None)
        .await
        .unwrap();
    assert!(matches!(outcome, keyward::SignIn::Denied(_)), "{outcome:?}");
}
