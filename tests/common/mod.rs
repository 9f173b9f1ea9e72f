//! Helpers shared by the integration tests: running one scenario in a child
//! process (EAL starts only once per process), EAL argument lists with a
//! unique file prefix, and cleanup of EAL's runtime files.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Environment variable that tells a re-executed test binary which scenario
/// to run in the child.
pub const CHILD_ENV: &str = "PMDLB_TEST_CHILD";

/// True when this process is the child for `name`.
pub fn is_child(name: &str) -> bool {
    std::env::var(CHILD_ENV).as_deref() == Ok(name)
}

/// Runs the test function `name` of the current test binary in a fresh
/// process and returns (success, stdout+stderr).
pub fn run_in_child(name: &str) -> (bool, String) {
    let exe = std::env::current_exe().expect("test binary path");
    let out = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, name)
        .output()
        .expect("spawn test child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Asserts that scenario `name` passes in a child process.
pub fn child_must_pass(name: &str) {
    let (ok, text) = run_in_child(name);
    assert!(ok, "child scenario {name} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child scenario {name} did not run:\n{text}"
    );
}

/// A unique EAL file prefix for this process.
pub fn file_prefix(tag: &str) -> String {
    format!("pmdlb-test-{tag}-{}", std::process::id())
}

/// EAL arguments without hugepages for `prefix`, plus `extra`.
pub fn eal_args(prefix: &str, lcores: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "pmdlb-test",
        "-l",
        lcores,
        "--no-huge",
        "-m",
        "256",
        "--no-pci",
        "--no-telemetry",
        "--log-level",
        "lib.eal:error",
        "--file-prefix",
        prefix,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Removes EAL's runtime directory and hugepage files for `prefix`.
pub fn cleanup_prefix(prefix: &str) {
    let _ = std::fs::remove_dir_all(PathBuf::from("/var/run/dpdk").join(prefix));
    if let Ok(dir) = std::fs::read_dir("/dev/hugepages") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// A scratch directory for this process.
pub fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pmdlb-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}
pub mod bgp;
pub mod netns;
pub mod running;
pub mod tunnel;
