//! Bulk regeneration end to end against raw argon2id, in one bench.
//!
//! `keyward/regenerate` runs what an administrator's click runs: preview, generate and hash on
//! every core, one commit on a SQLite file, then the CSV and the printable HTML.
//! `raw/argon2id` hashes as many passwords with the `argon2` crate directly, over the same
//! number of threads at the same parameters, allocating each hash's working set as
//! `hash_password_into` does; `raw/argon2id_kept_memory` keeps one working set per thread, as
//! keyward does. The ratio raw / keyward is the share of the run that is hashing (goal: 0.90
//! or better against either). `profiles_*/*` hash a quarter as many passwords (kept memory) at
//! each of OWASP's equivalent-strength argon2id profiles over the same threads.
//!
//! `KEYWARD_BULK_USERS` sets the cohort size (default 2,000); each sample hashes that many
//! passwords, so a full run takes several minutes: `cargo bench --bench bulk`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use criterion::{Criterion, criterion_group, criterion_main};
use keyward::admin::RegenerationOptions;
use keyward::hash::{Argon2Policy, Hasher};
use keyward::store::UserRecord;
use keyward::user::{Role, SiteId, User};
use keyward::{Keyward, Password, SqliteStore};
use time::macros::date;

const ADMIN_PASSWORD: &str = "ochre-violet-anchor-93";

fn users() -> usize {
    std::env::var("KEYWARD_BULK_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

fn threads() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// `n` hashes of distinct passwords at `policy`, spread over `threads` threads the way a
/// regeneration spreads them (a shared counter). `kept` reuses one working set per thread, as
/// keyward's regeneration does; otherwise each hash allocates its own, as
/// `Argon2::hash_password_into` does.
fn raw_hashes(policy: &Argon2Policy, n: usize, threads: NonZeroUsize, kept: bool) {
    let params = Params::new(
        policy.m_cost_kib(),
        policy.t_cost(),
        policy.p_cost(),
        Some(32),
    )
    .unwrap();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.get() {
            s.spawn(|| {
                let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut out = [0u8; 32];
                let mut salt = [0u8; 16];
                let mut memory = vec![Block::new(); if kept { params.block_count() } else { 0 }];
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
                    let password = format!("Pw{i:010}xyz");
                    let pw = password.as_bytes();
                    if kept {
                        (argon.hash_password_into_with_memory(pw, &salt, &mut out, &mut memory))
                            .unwrap();
                    } else {
                        argon.hash_password_into(pw, &salt, &mut out).unwrap();
                    }
                    std::hint::black_box(&out);
                }
            });
        }
    });
}

/// A SQLite file with one administrator and `n` pupils of "Year 7" without a password.
fn cohort(dir: &std::path::Path, n: usize, hasher: Hasher) -> (Keyward, User, SiteId) {
    let store = SqliteStore::open(dir.join("bulk.db")).unwrap();
    let site = SiteId::new("northfield").unwrap();
    let now = time::OffsetDateTime::now_utc();
    let pupils: Vec<UserRecord> = (0..n)
        .map(|i| {
            let user = User::new(
                site.clone(),
                format!("pupil{i:05}"),
                format!("Forename{i}"),
                format!("Surname{}", i % 97),
                "student",
                now,
            )
            .with_groups(["Year 7"])
            .with_date_of_birth(date!(2014 - 03 - 14));
            UserRecord::new(user)
        })
        .collect();
    store.import_users(&pupils).unwrap();
    let kw = Keyward::builder(Arc::new(store)).hasher(hasher).build();
    let admin = User::new(site.clone(), "head", "Ada", "Admin", "staff", now)
        .with_role(Role::Administrator);
    let admin = kw
        .create_user(None, admin, Some(Password::new(ADMIN_PASSWORD)))
        .unwrap();
    (kw, admin, site)
}

fn regenerate(kw: &Keyward, admin: &User, site: &SiteId, threads: NonZeroUsize) -> usize {
    let groups = ["Year 7".to_owned()];
    let preview = kw.preview_regeneration(&admin.id, site, &groups).unwrap();
    let options = RegenerationOptions::new().threads(threads);
    let done = kw
        .regenerate(&admin.id, &Password::new(ADMIN_PASSWORD), preview, options)
        .unwrap();
    let csv = done.list.to_csv().unwrap();
    let html = done.list.to_html();
    std::hint::black_box((csv.len(), html.len()));
    done.list.rows.len()
}

/// How long `iters` runs of `run` take.
fn timed(iters: u64, mut run: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        run();
    }
    started.elapsed()
}

fn bulk(c: &mut Criterion) {
    let n = users();
    let threads = threads();
    let dir = tempfile::tempdir().unwrap();
    let (kw, admin, site) = cohort(dir.path(), n, Hasher::default());
    let mut g = c.benchmark_group(format!("bulk_{n}_users_{threads}_threads"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for (name, kept) in [("raw/argon2id", false), ("raw/argon2id_kept_memory", true)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                timed(iters, || {
                    raw_hashes(&Argon2Policy::DEFAULT, n, threads, kept)
                })
            })
        });
    }
    g.bench_function("keyward/regenerate", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                assert_eq!(regenerate(&kw, &admin, &site, threads), n)
            })
        })
    });
    g.finish();
    // The profiles: a quarter of the cohort each, which is enough to rank them.
    let quarter = (n / 4).max(1);
    let mut g = c.benchmark_group(format!("profiles_{quarter}_hashes_{threads}_threads"));
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(1));
    for policy in Argon2Policy::OWASP_EQUIVALENT {
        let name = format!("m{}_t{}", policy.m_cost_kib(), policy.t_cost());
        g.bench_function(name, |b| {
            b.iter_custom(|iters| timed(iters, || raw_hashes(&policy, quarter, threads, true)))
        });
    }
    g.finish();
}

criterion_group!(benches, bulk);
criterion_main!(benches);
