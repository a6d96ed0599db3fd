//! Bulk import: 100,000 users with legacy hashes (salted md5, md5-crypt, sha512-crypt, bcrypt,
//! phpass) streamed from NDJSON into a SQLite file and into PostgreSQL, timed once each
//! (`KEYWARD_IMPORT_USERS` changes the count); then criterion runs of 2,000-user imports
//! against a reference that only reads and validates the same records, so the store's share
//! shows as a ratio.
//!
//! PostgreSQL runs when `KEYWARD_TEST_POSTGRES_URL` is set (in a throw-away schema).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use keyward::hash::Hasher;
use keyward::import::{self, ImportOptions};
use keyward::user::SiteId;
use keyward::{InMemoryStore, Keyward, SqliteStore, UserStore};

/// Hash strings from the test vectors (the password is `password` for each).
const HASHES: [(&str, &str); 5] = [
    (
        "5f4dcc3b5aa765d61d8327deb882cf99",
        r#", "hashing_method": "md5""#,
    ),
    ("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", ""),
    (
        "$6$rounds=1000$saltstring$EzTqOEb9gQc3Va/4p4pnqWqp/wIh1Otyhg9H9E8sV0eDyHGbNBkoMxYIM0ODHPBfmDNWb6wRiAvTriYxeDgb9.",
        "",
    ),
    (
        "$2b$04$84GNzyqnWf6aKcKXPw8xFOW1/.wIJuw8HvDUmraSD5uwVV3.kbQy2",
        "",
    ),
    ("$P$5fhItMt24X4XcphBDZZozYunemHfn6.", ""),
];

fn site() -> SiteId {
    SiteId::new("bench").unwrap()
}

/// `n` NDJSON lines, one user each, the hash schemes in turn.
fn ndjson(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * 220);
    for i in 0..n {
        let (hash, extra) = HASHES[i % HASHES.len()];
        let line = format!(
            r#"{{"username": "user{i:06}", "forename": "Fore{i}", "surname": "Sur{}", "groups": ["Year {}"], "date_of_birth": "2012-03-{:02}", "hashed_password": "{hash}"{extra}}}"#,
            i % 977,
            i % 13,
            i % 28 + 1
        );
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out
}

fn service(store: Arc<dyn UserStore>) -> Keyward {
    Keyward::builder(store).hasher(Hasher::for_tests()).build()
}

/// Users per transaction: `KEYWARD_IMPORT_BATCH`, default the API's default.
fn options() -> ImportOptions<'static> {
    match std::env::var("KEYWARD_IMPORT_BATCH")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        Some(batch) => ImportOptions::new().batch_size(batch),
        None => ImportOptions::new(),
    }
}

fn import_into(kw: &Keyward, input: &[u8]) -> u64 {
    let records = import::ndjson_records(input);
    let done = kw.import_users(None, &site(), records, options()).unwrap();
    assert_eq!(done.refused, 0);
    done.created
}

fn timed(label: &str, f: impl FnOnce() -> u64) {
    let start = Instant::now();
    let n = f();
    let took = start.elapsed();
    let rate = n as f64 / took.as_secs_f64();
    eprintln!("{label}: {n} users in {took:.2?} ({rate:.0} users/s)");
}

fn bench(c: &mut Criterion) {
    let users: usize = std::env::var("KEYWARD_IMPORT_USERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let big = ndjson(users);
    let dir = tempfile::tempdir().unwrap();
    let sqlite = service(Arc::new(
        SqliteStore::open(dir.path().join("big.db")).unwrap(),
    ));
    timed("sqlite file: import", || import_into(&sqlite, &big));
    timed("sqlite file: rerun, all existing", || {
        let records = import::ndjson_records(&big[..]);
        let options = ImportOptions::new();
        let done = sqlite
            .import_users(None, &site(), records, options)
            .unwrap();
        done.existing
    });
    #[cfg(feature = "postgres")]
    postgres_once(&big);

    let small = ndjson(2_000);
    let mut group = c.benchmark_group("import 2,000 users");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("reference: read and validate only", |b| {
        b.iter(|| {
            let n = import::ndjson_records(&small[..])
                .filter(|r| r.is_ok())
                .count();
            black_box(n)
        });
    });
    group.bench_function("memory store", |b| {
        b.iter(|| import_into(&service(Arc::new(InMemoryStore::new())), &small));
    });
    group.bench_function("sqlite file", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let path = dir.path().join(format!("small-{i}.db"));
                let kw = service(Arc::new(SqliteStore::open(&path).unwrap()));
                let start = Instant::now();
                black_box(import_into(&kw, &small));
                total += start.elapsed();
                drop(kw);
                std::fs::remove_file(&path).unwrap();
            }
            total
        });
    });
    group.finish();
}

#[cfg(feature = "postgres")]
fn postgres_once(input: &[u8]) {
    use keyward::PostgresStore;
    use keyward::store::postgres::PostgresOptions;
    let Ok(url) = std::env::var("KEYWARD_TEST_POSTGRES_URL") else {
        eprintln!("postgres: skipped (KEYWARD_TEST_POSTGRES_URL is not set)");
        return;
    };
    let schema = format!("kw_import_bench_{}", std::process::id());
    let options = PostgresOptions::default().schema(schema.clone());
    let store = PostgresStore::connect_with(&url, &options).unwrap();
    let kw = service(Arc::new(store));
    timed("postgres: import", || import_into(&kw, input));
    drop(kw);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

criterion_group!(benches, bench);
criterion_main!(benches);
