//! The command line as an operator meets it: `check` on good and bad
//! configurations, `run` refusing an invalid configuration before touching
//! anything, a second instance on a busy file prefix failing without
//! disturbing the first, and `ctl` against nothing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::scratch;

fn pmdlb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pmdlb"))
}

fn null_config(prefix: &str) -> String {
    format!(
        r#"[eal]
lcores = "0-1"
hugepages = false
memory_mb = 128
file_prefix = "{prefix}"
vdevs = ["net_null0"]

[ports]
rx = "net_null0"
rx_desc = 256
tx_desc = 256

[workers]
stats_interval_s = 0

[tables]
connections = 4096
persistence = 4096

[[service]]
vip = "10.0.0.100"
port = 80
[[service.server]]
addr = "10.0.1.11"
mac = "02:00:00:00:01:0b"
"#
    )
}

#[test]
fn check_accepts_examples_and_names_bad_keys() {
    for f in [
        "af_packet",
        "baremetal",
        "memif",
        "pcap",
        "reference",
        "tunnel",
    ] {
        let out = pmdlb()
            .args([
                "check",
                "--config",
                &format!("{}/dpdk-config/{f}.toml", env!("CARGO_MANIFEST_DIR")),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
    }
    let dir = scratch("clicheck");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        null_config("pmdlb-clicheck").replace(
            "addr = \"10.0.1.11\"",
            "addr = \"10.0.1.11\"\nweight = 70000",
        ),
    )
    .unwrap();
    let out = pmdlb()
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(78),
        "invalid config must exit 78 (EX_CONFIG)"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("service[0].server[0].weight"),
        "{err}"
    );

    // run refuses it too, before EAL: no runtime directory appears.
    let out = pmdlb()
        .args(["run", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(!std::path::Path::new("/var/run/dpdk/pmdlb-clicheck").exists());

    let out = pmdlb()
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn second_instance_on_a_busy_prefix_fails_cleanly() {
    let _g = common::netns::SERIAL
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let prefix = format!("pmdlb-clidup-{}", std::process::id());
    let dir = scratch("clidup");
    let cfg = dir.join("a.toml");
    std::fs::write(&cfg, null_config(&prefix)).unwrap();
    let mut first = pmdlb()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let runtime = std::path::PathBuf::from(format!("/var/run/dpdk/{prefix}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ok = pmdlb()
            .args(["ctl", "--config"])
            .arg(&cfg)
            .arg("servers")
            .output()
            .unwrap();
        if ok.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "first instance did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(runtime.exists());

    let second = pmdlb()
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "second instance must fail");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("EAL initialisation failed"), "{err}");
    // The first one is untouched: its runtime directory and socket remain.
    assert!(
        runtime.exists(),
        "the failed instance removed the running one's files"
    );
    let stats = pmdlb()
        .args(["ctl", "--config"])
        .arg(&cfg)
        .arg("stats")
        .output()
        .unwrap();
    assert!(stats.status.success());
    assert!(
        String::from_utf8_lossy(&stats.stdout).contains("drop.not_for_us"),
        "net_null frames are counted"
    );

    let bad = pmdlb()
        .args(["ctl", "--config"])
        .arg(&cfg)
        .args(["weight", "tcp:10.0.0.100:80", "10.9.9.9", "0"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stdout).contains("no real server 10.9.9.9"));

    let stop = pmdlb()
        .args(["ctl", "--config"])
        .arg(&cfg)
        .arg("stop")
        .output()
        .unwrap();
    assert!(stop.status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = first.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "ctl stop did not stop pmdlb");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        !runtime.exists(),
        "runtime directory left after a clean stop"
    );

    let gone = pmdlb()
        .args(["ctl", "--config"])
        .arg(&cfg)
        .arg("stats")
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("is pmdlb running?"));
    let _ = std::fs::remove_dir_all(dir);
}
