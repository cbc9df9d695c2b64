//! Test-only stand-in for a step binary.
fn main() {}
