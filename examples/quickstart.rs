//! keyward quickstart (filled in as the crate grows).
fn main() {}
