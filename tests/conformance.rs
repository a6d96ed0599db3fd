//! The store conformance suite against every backend built here.
#![cfg(feature = "conformance")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod memory {
    use keyward::InMemoryStore;

    // Clones share one database: two clones behave like two application servers.
    keyward::conformance_tests!(|| {
        let store = InMemoryStore::new();
        move || store.clone()
    });
}

mod memory_boxed {
    use keyward::{InMemoryStore, UserStore};

    // The same, with the store behind `Box<dyn UserStore>`.
    keyward::conformance_tests!(|| {
        let store = InMemoryStore::new();
        move || -> Box<dyn UserStore> { Box::new(store.clone()) }
    });
}

#[cfg(feature = "sqlite")]
mod sqlite_file {
    use keyward::SqliteStore;

    // Every handle is a separate `open` of the same file, like two processes.
    keyward::conformance_tests!(|| {
        let dir = tempfile::tempdir().unwrap();
        move || SqliteStore::open(dir.path().join("keyward.db")).unwrap()
    });
}

#[cfg(feature = "sqlite")]
mod sqlite_memory {
    use keyward::SqliteStore;

    keyward::conformance_tests!(single || || SqliteStore::open_in_memory().unwrap());
}
