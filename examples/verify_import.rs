//! Dry-runs an import: reads NDJSON from stdin, one import record per line, with or without a
//! `"password"` to try, and writes one JSON result per input line, in order:
//!
//! ```text
//! {"line": N, "verified": true|false, "scheme": "<name>", "needs_upgrade": true|false}
//! {"line": N, "valid": true, "scheme": "<name>", "needs_upgrade": true|false}   (no password)
//! {"line": N, "error": "<message>", "problem": "<category>"}
//! ```
//!
//! At the end it prints to stderr a summary by format and by problem, so an export without
//! any plaintext password can be checked whole before it is imported. Every line is processed
//! (bad JSON and invalid UTF-8 included) and the exit status is 0.
//!
//! Every format `Hasher::import` reads is answered: bcrypt, crypt(3) (DES, BSDi, md5-crypt,
//! SHA-crypt, yescrypt), phpass and WordPress, Drupal 7, argon2, scrypt, PBKDF2 (Django and
//! passlib), LDAP `{SSHA}`-style digests and `{CRYPT}`, bare or salted md5/sha1/sha256/sha512.
//!
//! ```text
//! echo '{"hashed_password": "$P$9IQRaTwmfeRo7ud9Fh4E2PdI0S3r.L0", "password": "test12345"}' \
//!   | cargo run --example verify_import
//! echo '{"hashed_password": "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$tnSYvahCwPBHKZUspmcxMfb0.WiB9W.zEaKlOBL35rC"}' \
//!   | cargo run --example verify_import
//! ```

use std::io::{self, BufRead, Write};

use keyward::Hasher;
use keyward::hash::import::{DryRunSummary, dry_run_outcome};

fn main() -> io::Result<()> {
    let hasher = Hasher::default();
    let stdin = io::stdin().lock();
    let mut stdout = io::BufWriter::new(io::stdout().lock());
    let mut summary = DryRunSummary::default();
    for (index, line) in stdin.split(b'\n').enumerate() {
        let mut line = line?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        let outcome = dry_run_outcome(&hasher, &line);
        summary.add(&outcome);
        writeln!(stdout, "{}", outcome.to_json(index + 1))?;
    }
    stdout.flush()?;
    eprint!("{summary}");
    Ok(())
}
