//! Store benches over 100,000 users per backend: lookup by username, a surname-prefix search,
//! and the atomic failed-attempt operation.
//!
//! PostgreSQL runs when `KEYWARD_TEST_POSTGRES_URL` is set (in a throw-away schema).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use keyward::lockout::{LockEvent, LockoutMode, LockoutRule};
use keyward::store::UserRecord;
use keyward::store::{LockCounter, UserQuery};
use keyward::user::{SiteId, User, UserId};
use keyward::{InMemoryStore, SqliteStore, UserStore};
use time::OffsetDateTime;
use time::macros::datetime;

const USERS: usize = 100_000;
const NOW: OffsetDateTime = datetime!(2026-03-01 09:00 UTC);
const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ne", "ro", "sa", "tu", "vi", "ber", "dan", "fel", "gor", "han", "jor",
    "kel", "mar", "nor", "pet", "ric", "son", "tal", "wen",
];

fn site() -> SiteId {
    SiteId::new("bench").unwrap()
}

/// Deterministic synthetic users: about 10,000 distinct surnames of three syllables.
fn users() -> Vec<UserRecord> {
    let n = SYLLABLES.len();
    (0..USERS)
        .map(|i| {
            let surname: String = [i % n, (i / n) % n, (i / (n * n)) % n]
                .iter()
                .map(|&s| SYLLABLES[s])
                .collect();
            let forename = SYLLABLES[(i * 7) % n].repeat(2);
            let mut u = User::new(
                site(),
                format!("user{i}"),
                forename,
                surname,
                "student",
                NOW,
            )
            .with_email(format!("user{i}@example.org"), true)
            .with_groups([format!("Year {}", i % 13)]);
            u.id = UserId::parse(&format!("u{i:08}")).unwrap();
            UserRecord::new(u)
        })
        .collect()
}

fn bench_backend(c: &mut Criterion, name: &str, store: &dyn UserStore) {
    let mut group = c.benchmark_group(name);
    let mut i = 0usize;
    group.bench_function("find_user", |b| {
        b.iter(|| {
            i = (i + 7919) % USERS;
            black_box(store.find_user(&site(), &format!("USER{i}")).unwrap())
        });
    });
    // "marka" selects about 0.2% of users (≈200), of which the first page of 50 is returned.
    let query = UserQuery::new(site(), NOW).text("Marka");
    let hits = store.search_users(&query).unwrap().total;
    eprintln!("{name}: surname prefix \"Marka\" matches {hits} of {USERS}");
    group.bench_function("search_surname_prefix", |b| {
        b.iter(|| black_box(store.search_users(&query).unwrap()));
    });
    let rule = LockoutRule::new(
        u32::MAX,
        time::Duration::hours(1),
        LockoutMode::UntilUnlocked,
    )
    .unwrap();
    let id = UserId::parse("u00000042").unwrap();
    group.bench_function("failed_attempt", |b| {
        b.iter(|| {
            for event in [LockEvent::Attempt, LockEvent::Failure { reserved_in: 0 }] {
                let out = store
                    .apply_lock_event(&id, LockCounter::Password, &rule, &event, NOW)
                    .unwrap();
                black_box(&out);
            }
        });
    });
    group.finish();
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    eprintln!("{what}: {:.2?}", start.elapsed());
    out
}

fn stores(c: &mut Criterion) {
    let records = users();

    let memory = InMemoryStore::new();
    timed("memory: populate 100,000 users", || {
        for r in &records {
            memory.create_user(r).unwrap();
        }
    });
    bench_backend(c, "memory", &memory);
    drop(memory);

    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(dir.path().join("bench.db")).unwrap();
    timed("sqlite: populate 100,000 users", || {
        sqlite.import_users(&records).unwrap();
    });
    bench_backend(c, "sqlite", &sqlite);
    drop(sqlite);

    #[cfg(feature = "postgres")]
    postgres_bench(c, &records);
}

#[cfg(feature = "postgres")]
fn postgres_bench(c: &mut Criterion, records: &[UserRecord]) {
    use keyward::PostgresStore;
    use keyward::store::postgres::PostgresOptions;

    let Ok(url) = std::env::var("KEYWARD_TEST_POSTGRES_URL") else {
        eprintln!("postgres: skipped (KEYWARD_TEST_POSTGRES_URL is not set)");
        return;
    };
    let schema = format!("kw_bench_{}", UserId::generate());
    let options = PostgresOptions::default().schema(schema.clone());
    let store = PostgresStore::connect_with(&url, &options).unwrap();
    timed("postgres: populate 100,000 users", || {
        store.import_users(records).unwrap();
    });
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client
        .batch_execute(&format!(
            "ANALYZE {schema}.users; ANALYZE {schema}.user_groups"
        ))
        .unwrap();
    bench_backend(c, "postgres", &store);
    drop(store);
    client
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = stores
}
criterion_main!(benches);
