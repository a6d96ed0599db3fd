//! Timing that must not tell anything: a dummy verification (an unknown user) against a real
//! one, a whole sign-in of a known user with a wrong password against one of an unknown
//! username (on the in-memory store under Criterion, and on every backend measured interleaved
//! in `known_vs_unknown`), and the store's share of a sign-in. The ratio is what matters (goal
//! 0.97–1.03).
//!
//! These used to be a timed assertion in the test suite, which failed under load (a loaded
//! machine slows one side and not the other); a bench measures them where that is the point.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use keyward::hash::Hasher;
use keyward::lockout::{LockoutMode, LockoutRule};
use keyward::service::Pins;
use keyward::user::{SiteId, User};
use keyward::{InMemoryStore, Keyward, Password};

fn bench(c: &mut Criterion) {
    let hasher = Hasher::default();
    let password = Password::new("correct horse battery staple");
    let stored = hasher.hash(&password).unwrap();
    let mut group = c.benchmark_group("verification (default argon2id)");
    group.sample_size(30);
    group.bench_function("real", |b| {
        b.iter(|| black_box(hasher.verify(&password, &stored).unwrap()));
    });
    group.bench_function("dummy (unknown user)", |b| {
        b.iter(|| hasher.verify_dummy(black_box(&password)));
    });
    group.finish();

    // A lockout that never trips, so every iteration verifies.
    let never = LockoutRule::new(
        u32::MAX,
        time::Duration::hours(1),
        LockoutMode::UntilUnlocked,
    )
    .unwrap();
    let kw = Keyward::builder(Arc::new(InMemoryStore::new()))
        .lockout(Arc::new(never))
        .build();
    let site = SiteId::new("bench").unwrap();
    let user = User::new(site.clone(), "known", "Kay", "Known", "staff", kw.now());
    kw.create_user(None, user, Some(Password::new("analytical-engine-1843")))
        .unwrap();
    let wrong = Password::new("not the password");
    let mut group = c.benchmark_group("sign-in, memory store");
    group.sample_size(30);
    group.bench_function("known user, wrong password", |b| {
        b.iter(|| black_box(kw.sign_in(&site, "known", &wrong, None).unwrap()));
    });
    group.bench_function("unknown username", |b| {
        b.iter(|| black_box(kw.sign_in(&site, "nobody", &wrong, None).unwrap()));
    });
    group.finish();

    // What a whole sign-in costs against one raw verification, with and without PINs.
    let right = Password::new("analytical-engine-1843");
    let off = Keyward::builder(Arc::new(InMemoryStore::new()))
        .pins(Pins::Off)
        .build();
    let user = User::new(site.clone(), "known", "Kay", "Known", "staff", off.now());
    off.create_user(None, user, Some(Password::new("analytical-engine-1843")))
        .unwrap();
    let mut group = c.benchmark_group("sign-in against one raw verify");
    group.sample_size(30);
    group.bench_function("raw argon2id verify", |b| {
        b.iter(|| black_box(hasher.verify(&password, &stored).unwrap()));
    });
    group.bench_function("sign-in, PINs off", |b| {
        b.iter(|| black_box(off.sign_in(&site, "known", &right, None).unwrap()));
    });
    group.bench_function("sign-in, PINs on (default)", |b| {
        b.iter(|| black_box(kw.sign_in(&site, "known", &right, None).unwrap()));
    });
    group.finish();
}

/// The store's share of a sign-in: a successful sign-in with the cheap test hash (argon2id at
/// 8 KiB, t = 1: microseconds), against the same hash verified alone, on each backend.
fn store_cost(c: &mut Criterion) {
    let site = SiteId::new("bench").unwrap();
    let password = Password::new("analytical-engine-1843");
    let dir = tempfile::tempdir().unwrap();
    let (stores, schema) = backends(dir.path(), "kw_timing");
    let mut group = c.benchmark_group("sign-in beyond hashing (cheap test hash)");
    group.sample_size(50);
    let hasher = Hasher::for_tests();
    let stored = hasher.hash(&password).unwrap();
    group.bench_function("the hash alone", |b| {
        b.iter(|| black_box(hasher.verify(&password, &stored).unwrap()));
    });
    for (name, store) in stores {
        let kw = Keyward::builder(store.clone())
            .hasher(Hasher::for_tests())
            .pins(Pins::Off)
            .build();
        let user = User::new(site.clone(), "known", "Kay", "Known", "staff", kw.now());
        kw.create_user(None, user, Some(Password::new("analytical-engine-1843")))
            .unwrap();
        group.bench_function(format!("{name}: successful sign-in"), |b| {
            b.iter(|| black_box(kw.sign_in(&site, "known", &password, None).unwrap()));
        });
        // The store work a wrong guess costs, for a known and an unknown username: what
        // `known_vs_unknown` must not let show.
        let kw = Keyward::builder(store)
            .hasher(Hasher::for_tests())
            .pins(Pins::Off)
            .lockout(Arc::new(
                LockoutRule::new(
                    u32::MAX,
                    time::Duration::hours(1),
                    LockoutMode::UntilUnlocked,
                )
                .unwrap(),
            ))
            .build();
        let wrong = Password::new("not the password");
        group.bench_function(format!("{name}: known user, wrong password"), |b| {
            b.iter(|| black_box(kw.sign_in(&site, "known", &wrong, None).unwrap()));
        });
        group.bench_function(format!("{name}: unknown username"), |b| {
            b.iter(|| black_box(kw.sign_in(&site, "nobody", &wrong, None).unwrap()));
        });
    }
    group.finish();
    drop_schema(schema);
}

/// Known and unknown usernames on every backend, measured interleaved: `PAIRS` rounds of one
/// sign-in of a known user with a wrong password and one of an unknown username, in
/// alternating order, so that a machine getting busier or quieter slows both alike. Prints
/// the ratio of the medians (goal 0.97–1.03) with the default argon2id, PINs on (the default)
/// and off.
fn known_vs_unknown(_: &mut Criterion) {
    const PAIRS: usize = 101;
    let dir = tempfile::tempdir().unwrap();
    let (stores, schema) = backends(dir.path(), "kw_known");
    let never = LockoutRule::new(
        u32::MAX,
        time::Duration::hours(1),
        LockoutMode::UntilUnlocked,
    )
    .unwrap();
    let site = SiteId::new("bench").unwrap();
    let wrong = Password::new("not the password");
    for (name, store) in stores {
        for pins in [Pins::Off, Pins::On] {
            let kw = Keyward::builder(store.clone())
                .lockout(Arc::new(never))
                .pins(pins)
                .build();
            let username = format!("known-{pins:?}").to_lowercase();
            if store.find_user(&site, &username).unwrap().is_none() {
                let user = User::new(site.clone(), &username, "Kay", "Known", "staff", kw.now());
                kw.create_user(None, user, Some(Password::new("analytical-engine-1843")))
                    .unwrap();
            }
            let time = |who: &str| {
                let start = std::time::Instant::now();
                let _ = black_box(kw.sign_in(&site, who, &wrong, None).unwrap());
                start.elapsed().as_secs_f64()
            };
            // Warm up both paths (connections, caches).
            for _ in 0..3 {
                time(&username);
                time("nobody");
            }
            let (mut known, mut unknown) = (Vec::new(), Vec::new());
            for i in 0..PAIRS {
                if i % 2 == 0 {
                    known.push(time(&username));
                    unknown.push(time("nobody"));
                } else {
                    unknown.push(time("nobody"));
                    known.push(time(&username));
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            let (k, u) = (median(&mut known), median(&mut unknown));
            println!(
                "known vs unknown, {name}, PINs {pins:?}: known {:.2} ms, unknown {:.2} ms, \
                 ratio {:.3} ({PAIRS} interleaved pairs)",
                k * 1e3,
                u * 1e3,
                k / u
            );
        }
    }
    drop_schema(schema);
}

/// Every backend to measure: memory, a SQLite file in `dir`, and PostgreSQL in a schema of its
/// own when `KEYWARD_TEST_POSTGRES_URL` is set (with what `drop_schema` needs to remove it).
type Backends = Vec<(&'static str, Arc<dyn keyward::UserStore>)>;

fn backends(dir: &std::path::Path, prefix: &str) -> (Backends, Option<(String, String)>) {
    let file = dir.join(format!("{prefix}.db"));
    #[allow(unused_mut)]
    let mut stores: Backends = vec![
        ("memory", Arc::new(InMemoryStore::new())),
        (
            "sqlite file",
            Arc::new(keyward::SqliteStore::open(file).unwrap()),
        ),
    ];
    #[cfg(feature = "postgres")]
    if let Ok(url) = std::env::var("KEYWARD_TEST_POSTGRES_URL") {
        let name = format!("{prefix}_{}", std::process::id());
        let options = keyward::store::postgres::PostgresOptions::default().schema(name.clone());
        let store = keyward::PostgresStore::connect_with(&url, &options).unwrap();
        stores.push(("postgres", Arc::new(store)));
        return (stores, Some((url, name)));
    }
    (stores, None)
}

/// Removes the PostgreSQL schema `backends` made.
fn drop_schema(schema: Option<(String, String)>) {
    #[cfg(feature = "postgres")]
    if let Some((url, name)) = schema {
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
            .unwrap();
    }
    #[cfg(not(feature = "postgres"))]
    let _ = schema;
}

criterion_group!(benches, bench, store_cost, known_vs_unknown);
criterion_main!(benches);
