//! Arbitrary bytes as an NDJSON and as a CSV import file, through the record readers and
//! `Keyward::import_users` into the in-memory store: never a panic, every refusal names a
//! line and a field, and the counts add up.
#![no_main]

use std::sync::{Arc, LazyLock};

use keyward::import::{self, ImportOptions, ImportProgress, RecordError};
use keyward::user::SiteId;
use keyward::{InMemoryStore, Keyward};
use libfuzzer_sys::fuzz_target;

mod common;

static SITE: LazyLock<SiteId> = LazyLock::new(|| SiteId::new("fuzz").expect("a valid id"));

fn check(kw: &Keyward, records: impl Iterator<Item = Result<import::ImportedUser, RecordError>>) {
    let mut refused = 0u64;
    let mut on_refused = |e: &RecordError| {
        assert!(e.line >= 1 || e.field == "record", "{e:?}");
        assert!(!e.field.is_empty());
        refused += 1;
    };
    let options = ImportOptions::new().batch_size(3).on_refused(&mut on_refused);
    let done: ImportProgress = kw
        .import_users(None, &SITE, records, options)
        .expect("the in-memory store does not fail");
    assert_eq!(done.created + done.existing + done.refused, done.read);
    assert_eq!(done.refused, refused);
}

fuzz_target!(|data: &[u8]| {
    let kw = Keyward::builder(Arc::new(InMemoryStore::new()))
        .hasher(common::cheap())
        .build();
    check(&kw, import::ndjson_records(data));
    check(&kw, import::csv_records(data));
});
