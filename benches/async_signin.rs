//! The async face under load: 64 concurrent sign-ins through `AsyncKeyward` (memory store,
//! `Pins::Off` so that a sign-in is one verification, the default argon2id policy
//! m = 19456 KiB, t = 2, p = 1) against 64 raw `argon2` verifications of the same policy,
//! spawned the same way on the same kind of runtime's blocking pool behind a semaphore of
//! the same size (one permit per core, the face's default).
//!
//! Throughput: criterion, one iteration = 64 operations, flat sampling (each is about a
//! second). Peak memory: each arm runs again in a child process of its own (this binary with
//! `KEYWARD_ASYNC_BENCH_ARM` set), which reports its VmHWM (peak resident set, from
//! `/proc/self/status`) after setting up and after three rounds of 64, so neither arm's
//! peak hides in the other's and the setup's share is shown apart.
//!
//! `cargo bench --features tokio --bench async_signin`

use std::hint::black_box;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use argon2::PasswordVerifier;
use criterion::{Criterion, SamplingMode};
use keyward::service::Pins;
use keyward::user::{SiteId, User};
use keyward::{AsyncKeyward, Hasher, InMemoryStore, Keyward, Password, SignIn};
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

/// Concurrent operations per round.
const N: usize = 64;
const PASSWORD: &str = "saffron-glacier-window-44";
/// Set to `face` or `raw` in the child processes that measure peak memory.
const ARM_VAR: &str = "KEYWARD_ASYNC_BENCH_ARM";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .build()
        .expect("a runtime")
}

/// The face over `N` users with `PASSWORD`, one permit per core.
fn face_setup() -> (AsyncKeyward, SiteId) {
    let kw = Keyward::builder(Arc::new(InMemoryStore::new()))
        .hasher(Hasher::default())
        .pins(Pins::Off)
        .build();
    let site = SiteId::new("bench").expect("valid id");
    for i in 0..N {
        let user = User::new(
            site.clone(),
            format!("u{i}"),
            "Kay",
            "Known",
            "staff",
            kw.now(),
        );
        kw.create_user(None, user, Some(Password::new(PASSWORD)))
            .expect("created");
    }
    (kw.into_async(), site)
}

/// A PHC string of `PASSWORD` at the default policy, and a semaphore of `permits`.
fn raw_setup(permits: usize) -> (Arc<String>, Arc<Semaphore>) {
    let hash = Hasher::default()
        .hash(&Password::new(PASSWORD))
        .expect("hashed");
    (
        Arc::new(hash.into_string()),
        Arc::new(Semaphore::new(permits)),
    )
}

/// One round through the face: `N` sign-ins spawned at once, each checked.
async fn face_round(face: &AsyncKeyward, site: &SiteId) {
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (face, site) = (face.clone(), site.clone());
            tokio::spawn(async move {
                let password = Password::new(PASSWORD);
                face.sign_in(site, format!("u{i}"), password, None).await
            })
        })
        .collect();
    for task in tasks {
        let outcome = task.await.expect("joined").expect("signed in");
        assert!(matches!(outcome, SignIn::Authenticated(_)), "{outcome:?}");
    }
}

/// One raw round: `N` verifications spawned at once, each taking a permit and holding it
/// inside its blocking work, as the face does.
async fn raw_round(phc: &Arc<String>, gate: &Arc<Semaphore>) {
    let tasks: Vec<_> = (0..N)
        .map(|_| {
            let (phc, gate) = (Arc::clone(phc), Arc::clone(gate));
            tokio::spawn(async move {
                let permit = gate.acquire_owned().await.expect("open");
                tokio::task::spawn_blocking(move || {
                    let _permit = permit;
                    let parsed = argon2::PasswordHash::new(black_box(phc.as_str())).expect("phc");
                    argon2::Argon2::default()
                        .verify_password(PASSWORD.as_bytes(), &parsed)
                        .is_ok()
                })
                .await
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.expect("joined").expect("verified"));
    }
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let (face, site) = face_setup();
    let (phc, gate) = raw_setup(face.permits());
    let mut group = c.benchmark_group(format!("{N} concurrent, {} permits", face.permits()));
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(15));
    group.bench_function("sign-ins through the async face", |b| {
        b.iter(|| rt.block_on(face_round(&face, &site)));
    });
    group.bench_function("raw argon2id verifications, same pool and gate", |b| {
        b.iter(|| rt.block_on(raw_round(&phc, &gate)));
    });
    group.finish();
}

/// VmHWM and VmRSS of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// In a child process: set `arm` up, run three rounds, print the peaks.
fn run_arm(arm: &str) {
    let rt = runtime();
    let permits = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (setup, after) = match arm {
        "face" => {
            let (face, site) = face_setup();
            let setup = memory_kib().0;
            for _ in 0..3 {
                rt.block_on(face_round(&face, &site));
            }
            (setup, memory_kib())
        }
        _ => {
            let (phc, gate) = raw_setup(permits);
            let setup = memory_kib().0;
            for _ in 0..3 {
                rt.block_on(raw_round(&phc, &gate));
            }
            (setup, memory_kib())
        }
    };
    println!("{arm} {permits} {setup} {} {}", after.0, after.1);
}

/// Runs each arm in a child process and prints its peak resident set.
fn peak_memory() {
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    println!("\npeak memory, a child process per arm (3 rounds of {N}):");
    for arm in ["face", "raw"] {
        let out = Command::new(&exe).env(ARM_VAR, arm).output();
        let Ok(out) = out else {
            println!("  {arm}: could not run the child");
            continue;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<u64> = text
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        if let [permits, setup, hwm, rss] = fields[..] {
            let mib = |kib: u64| kib as f64 / 1024.0;
            println!(
                "  {arm:>4}: VmHWM {:.1} MiB (after setup {:.1} MiB, so the rounds added {:.1} MiB; \
                 {permits} permits), VmRSS at the end {:.1} MiB",
                mib(hwm),
                mib(setup),
                mib(hwm.saturating_sub(setup)),
                mib(rss)
            );
        } else {
            println!("  {arm}: unexpected child output {text:?}");
        }
    }
}

fn main() {
    if let Ok(arm) = std::env::var(ARM_VAR) {
        run_arm(&arm);
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    throughput(&mut c);
    c.final_summary();
    peak_memory();
}
