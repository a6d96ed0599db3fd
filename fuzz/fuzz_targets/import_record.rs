//! Arbitrary JSON into `ImportRecord`, import, verify, and the dry-run line processor.
#![no_main]

use std::sync::LazyLock;

use keyward::hash::import::dry_run_line;
use keyward::{Hasher, ImportRecord, Password};
use libfuzzer_sys::fuzz_target;

mod common;

static DEFAULTS: LazyLock<Hasher> = LazyLock::new(Hasher::for_tests);
static CHEAP: LazyLock<Hasher> = LazyLock::new(common::cheap);

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = serde_json::from_slice::<ImportRecord>(data) {
        let _ = DEFAULTS.import(&record);
        if let Ok(hash) = CHEAP.import(&record) {
            assert_eq!(CHEAP.parse(hash.as_str()).ok().as_ref(), Some(&hash));
            let _ = CHEAP.verify(&Password::new("password"), &hash);
        }
    }
    let line = dry_run_line(&CHEAP, 1, data);
    assert!(serde_json::from_str::<serde_json::Value>(&line).is_ok());
});
