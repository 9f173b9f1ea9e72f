//! Finds DPDK with pkg-config, generates Rust bindings with bindgen over the
//! headers in `src/ffi/wrapper.h`, and compiles the C shim for DPDK's static
//! inline functions. All include, link and library flags come from pkg-config.

use std::env;
use std::path::{Path, PathBuf};

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: {msg}\n");
    std::process::exit(1);
}

fn libclang_present() -> bool {
    if let Ok(p) = env::var("LIBCLANG_PATH") {
        return Path::new(&p).exists();
    }
    let dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
    ];
    let has_clang = |d: &Path| {
        std::fs::read_dir(d)
            .map(|it| {
                it.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("libclang"))
            })
            .unwrap_or(false)
    };
    if dirs.iter().any(|d| has_clang(Path::new(d))) {
        return true;
    }
    std::fs::read_dir("/usr/lib")
        .map(|it| {
            it.flatten().any(|e| {
                e.file_name().to_string_lossy().starts_with("llvm-")
                    && has_clang(&e.path().join("lib"))
            })
        })
        .unwrap_or(false)
}

fn main() {
    println!("cargo:rerun-if-changed=src/ffi/wrapper.h");
    println!("cargo:rerun-if-changed=src/ffi/shim.h");
    println!("cargo:rerun-if-changed=src/ffi/shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let dpdk = pkg_config::Config::new()
        .atleast_version("21.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            fail(&format!(
                "DPDK not found by pkg-config (package `libdpdk`): {e}\n\
                 Install it with `scripts/install-deps.sh` (Debian package libdpdk-dev)."
            ))
        });
    if !libclang_present() {
        fail(
            "libclang not found; bindgen needs it to generate the DPDK bindings.\n\
             Install it with `scripts/install-deps.sh` (Debian package libclang-dev) \
             or set LIBCLANG_PATH.",
        );
    }

    // pkg-config's cflags carry defines and -include rte_config.h; keep them
    // for both the shim and bindgen (minus -march for clang's parser).
    let cflags = pkg_config::get_variable("libdpdk", "cflags").ok();
    let raw_cflags = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .or(cflags)
        .unwrap_or_default();
    let flags: Vec<String> = raw_cflags.split_whitespace().map(str::to_owned).collect();

    let mut cc = cc::Build::new();
    cc.file("src/ffi/shim.c")
        .include("src/ffi")
        .opt_level(3)
        .warnings(false);
    for f in &flags {
        cc.flag(f);
    }
    cc.compile("pmdlb_shim");

    let mut clang_args: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    let mut it = flags.iter();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                clang_args.push("-include".into());
                clang_args.push(h.clone());
            }
        } else if f.starts_with("-D") || f.starts_with("-march") {
            clang_args.push(f.clone());
        }
    }
    clang_args.push("-Isrc/ffi".into());

    let builder = bindgen::Builder::default()
        .header("src/ffi/wrapper.h")
        .clang_args(&clang_args)
        .use_core()
        .layout_tests(false)
        .derive_default(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .allowlist_function("rte_eal_.*|rte_lcore_.*|rte_get_main_lcore|rte_get_next_lcore")
        .allowlist_function("rte_socket_id|rte_lcore_count|rte_strerror|rte_version")
        .allowlist_function("rte_eth_.*|rte_pktmbuf_pool_create|rte_pktmbuf_free_bulk")
        .allowlist_function("rte_mempool_(avail|in_use)_count|rte_mempool_free|rte_mempool_lookup")
        .allowlist_function("rte_ring_(create|free|lookup)")
        .allowlist_function("rte_dev_probe|rte_dev_remove|rte_vdev_(init|uninit)")
        .allowlist_function("rte_telemetry_.*|rte_tel_data_.*|rte_pdump_(init|uninit)")
        .allowlist_function("rte_delay_us_block|rte_zmalloc_socket|rte_free")
        .allowlist_function("pmdlb_.*")
        .allowlist_type("rte_mbuf|rte_mempool|rte_ring|rte_eth_.*|rte_ether_addr")
        .allowlist_var("RTE_ETH_.*|RTE_MAX_LCORE|RTE_MAX_ETHPORTS|RTE_PKTMBUF_HEADROOM")
        .allowlist_var("RTE_MBUF_DEFAULT_BUF_SIZE|RTE_MBUF_DEFAULT_DATAROOM|SOCKET_ID_ANY")
        .allowlist_var("RING_F_.*|RTE_ETHER_.*|RTE_LCORE_ANY")
        .opaque_type("rte_l2tpv2_.*|rte_gtp_.*|rte_arp_.*")
        .blocklist_function("rte_eth_.*_burst|rte_eth_rx_queue_count|rte_eth_.*_descriptor_status")
        .blocklist_function("rte_eth_tx_prepare|rte_eth_recycle_.*|rte_eth_call_.*")
        .default_enum_style(bindgen::EnumVariation::Consts)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));

    let bindings =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate())) {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => fail(&format!(
                "bindgen could not parse the DPDK headers: {e}\n\
             Check that libdpdk-dev and libclang-dev are installed (scripts/install-deps.sh)."
            )),
            Err(_) => fail(
                "bindgen failed to load libclang; install libclang-dev (scripts/install-deps.sh) \
             or set LIBCLANG_PATH",
            ),
        };
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    bindings
        .write_to_file(out.join("dpdk_bindings.rs"))
        .unwrap_or_else(|e| fail(&format!("cannot write bindings: {e}")));
}
