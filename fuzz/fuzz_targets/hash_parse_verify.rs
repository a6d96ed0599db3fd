//! Parse + verify arbitrary stored strings: `password \n stored`.
#![no_main]

use std::sync::LazyLock;

use keyward::{Hasher, Password};
use libfuzzer_sys::fuzz_target;

mod common;

static DEFAULTS: LazyLock<Hasher> = LazyLock::new(Hasher::for_tests);
static CHEAP: LazyLock<Hasher> = LazyLock::new(common::cheap);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (password, stored) = text.split_once('\n').unwrap_or(("password", text));
    let password = Password::new(password);
    if let Ok(parsed) = DEFAULTS.parse(stored) {
        // Whatever parses re-parses to the same thing.
        assert_eq!(DEFAULTS.parse(parsed.as_str()).ok().as_ref(), Some(&parsed));
        let _ = CHEAP.verify(&password, &parsed);
    }
    if let Ok(parsed) = CHEAP.parse(stored) {
        let _ = CHEAP.verify(&password, &parsed);
    }
});
