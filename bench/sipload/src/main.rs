//! sipload: placeholder, being written.
fn main() {}
