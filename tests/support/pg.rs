//! A throw-away PostgreSQL schema per test, dropped at the end.
use keyward::PostgresStore;
use keyward::store::postgres::PostgresOptions;

const URL_VAR: &str = "KEYWARD_TEST_POSTGRES_URL";

/// A schema of its own for one test. Creating and dropping it runs on a plain thread, so
/// tests inside an async runtime can hold one too.
pub(crate) struct TestSchema {
    pub(crate) url: String,
    pub(crate) name: String,
}

fn client(url: &str) -> Result<postgres::Client, postgres::Error> {
    let mut config: postgres::Config = url.parse()?;
    config.connect_timeout(std::time::Duration::from_secs(3));
    config.connect(postgres::NoTls)
}

fn unavailable(why: &str) -> Option<TestSchema> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "PostgreSQL tests cannot run in CI: {why}"
    );
    eprintln!("skipping a PostgreSQL test: {why} (set {URL_VAR} to run it)");
    None
}

impl TestSchema {
    /// A fresh schema, or `None` (with a notice) when no server is configured or reachable
    /// outside CI; in CI (`CI=true`) that is a failure.
    pub(crate) fn new() -> Option<Self> {
        std::thread::spawn(|| {
            let Ok(url) = std::env::var(URL_VAR) else {
                return unavailable(&format!("{URL_VAR} is not set"));
            };
            let mut c = match client(&url) {
                Ok(c) => c,
                Err(e) => return unavailable(&format!("cannot connect to {URL_VAR}: {e}")),
            };
            let name = format!("kw_test_{}", keyward::user::UserId::generate());
            c.batch_execute(&format!("CREATE SCHEMA {name}")).unwrap();
            Some(Self { url, name })
        })
        .join()
        .unwrap()
    }

    pub(crate) fn options(&self) -> PostgresOptions {
        PostgresOptions::default()
            .schema(self.name.clone())
            .max_connections(4)
    }

    pub(crate) fn open(&self) -> PostgresStore {
        PostgresStore::connect_with(&self.url, &self.options()).unwrap()
    }

    /// Runs raw SQL in the schema (to plant bad data).
    pub(crate) fn execute(&self, sql: &str) {
        let (url, sql) = (
            self.url.clone(),
            format!("SET search_path = {}; {sql}", self.name),
        );
        std::thread::spawn(move || client(&url).unwrap().batch_execute(&sql).unwrap())
            .join()
            .unwrap();
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(mut c) = client(&url) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
            }
        })
        .join();
    }
}
