//! Dry-runs an import: reads NDJSON from stdin, one import record plus `"password"` per line,
//! and writes one JSON result per input line, in order:
//!
//! ```text
//! {"line": N, "verified": true|false, "scheme": "<name>", "needs_upgrade": true|false}
//! {"line": N, "error": "<message>"}
//! ```
//!
//! Every line is processed (bad JSON and invalid UTF-8 included) and the exit status is 0.
//!
//! ```text
//! echo '{"hashed_password": "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", "password": "test12345"}' \
//!   | cargo run --example verify_import
//! ```

use std::io::{self, BufRead, Write};

use keyward::Hasher;
use keyward::hash::import::dry_run_line;

fn main() -> io::Result<()> {
    let hasher = Hasher::default();
    let stdin = io::stdin().lock();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    for (index, line) in stdin.split(b'\n').enumerate() {
        let mut line = line?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        writeln!(stdout, "{}", dry_run_line(&hasher, index + 1, &line))?;
    }
    stdout.flush()
}
