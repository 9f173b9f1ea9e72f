#!/usr/bin/env bash
# Runs every test pmdlb has, after installing whatever is missing.
# Exits non-zero on any failure. Needs root (DPDK, hugepages, namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
scripts/setup-hugepages.sh 512

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

echo "== build"
cargo build --release --locked --bins

echo "== loom model checks of the persistence table's concurrent core"
RUSTFLAGS="--cfg loom" cargo test --release --locked --lib --target-dir target/loom persist

echo "== doc tests"
cargo test --locked --doc

# 1.5 million fixed-seed mutations of fuzz/corpus/decide, checked by
# tests/decide_fuzz/oracle.rs (about 20 s). A debug build, so arithmetic
# overflow panics too; the binary is the one nextest runs next. The test is
# #[ignore]d, so the nextest run below does not repeat it.
echo "== bounded fuzz of the decision over the corpus"
cargo test --locked --test decide_fuzz -- --ignored --exact bounded_fuzz_over_the_corpus --nocapture

# Last, so the runner's summary closes the log.
echo "== unit, property, DPDK and end-to-end tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast
else
  cargo test --locked --no-fail-fast
fi

echo "test.sh: all tests passed"
