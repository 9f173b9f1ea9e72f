//! The house rule on layers, checked on the sources: arrows go one way —
//! control → dataplane → lb → wire, and dataplane/control → dpdk → ffi — so
//! wire knows nothing of load balancing, lb needs no DPDK, and the data path
//! never imports the control plane. `unsafe` lives only in ffi, dpdk and
//! sys.

use std::path::{Path, PathBuf};

fn sources(dir: &str) -> Vec<PathBuf> {
    fn walk(p: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let mut out = Vec::new();
    if root.is_dir() {
        walk(&root, &mut out);
    } else {
        out.push(root.with_extension("rs"));
    }
    assert!(!out.is_empty(), "no sources under {}", root.display());
    out
}

/// Whether `code` names `crate::m` as a path (`crate::m::x`, `crate::m;`)
/// or inside a grouped import (`crate::{m, …}`, `crate::{m::x, …}`).
fn names_module(code: &str, m: &str) -> bool {
    let direct = [":", ";", ",", "}", " "]
        .iter()
        .any(|end| code.contains(&format!("crate::{m}{end}")));
    let grouped = code.split("crate::{").skip(1).any(|rest| {
        rest.split('}').next().unwrap_or("").split(',').any(|item| {
            let item = item.trim();
            item == m || item.starts_with(&format!("{m}::"))
        })
    });
    direct || grouped
}

/// Lines of `dir`'s sources that name any of `forbidden` modules.
fn offenders(dir: &str, forbidden: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for f in sources(dir) {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if forbidden.iter().any(|m| names_module(code, m)) {
                bad.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    bad
}

#[test]
fn wire_knows_nothing_above_it() {
    let bad = offenders("wire", &["lb", "dataplane", "control", "dpdk", "ffi"]);
    assert!(
        bad.is_empty(),
        "wire imports a higher layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn lb_needs_no_dpdk() {
    let bad = offenders("lb", &["dataplane", "control", "dpdk", "ffi"]);
    assert!(
        bad.is_empty(),
        "lb imports DPDK or a higher layer:\n{}",
        bad.join("\n")
    );
}

#[test]
fn data_path_never_imports_the_control_plane() {
    let bad = offenders("dataplane", &["control", "ffi"]);
    assert!(
        bad.is_empty(),
        "dataplane imports control:\n{}",
        bad.join("\n")
    );
    let bad = offenders(
        "sys",
        &["lb", "dataplane", "control", "dpdk", "ffi", "wire"],
    );
    assert!(
        bad.is_empty(),
        "sys imports another module:\n{}",
        bad.join("\n")
    );
}

#[test]
fn unsafe_only_in_ffi_dpdk_and_sys() {
    for dir in ["wire", "lb", "dataplane", "control"] {
        for f in sources(dir) {
            let text = std::fs::read_to_string(&f).unwrap();
            let code: Vec<&str> = text
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect();
            assert!(
                !code
                    .iter()
                    .any(|l| l.contains("unsafe ") || l.contains("unsafe{")),
                "{}: unsafe outside ffi/dpdk/sys",
                f.display()
            );
        }
    }
}
