//! The `pmdlb` command line.

fn main() {
    println!("pmdlb {}", env!("CARGO_PKG_VERSION"));
}
