//! Hashing benches (filled in by the hashing core).
fn main() {}
