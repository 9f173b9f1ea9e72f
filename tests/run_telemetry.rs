//! Watching a running `pmdlb run` with DPDK's own tools, as an operator
//! would: `dpdk-telemetry.py -f PREFIX` reads the `/pmdlb/*` commands (and
//! DPDK's `/ethdev/stats`) over the telemetry socket, and `dpdk-dumpcap`
//! captures a port's traffic through pdump; tshark decodes the capture.
//! Neither client shares code with pmdlb.
//!
//! Deterministic by construction: the telemetry test reads once the known
//! input has been counted whole (rx and every outcome), so the counters no
//! longer move; the capture test feeds `net_pcap` with `infinite_rx=1`, so
//! frames keep arriving after dumpcap attached, and stops dumpcap after a
//! fixed count. Every wait is bounded; a guard kills and reaps whatever is
//! left and removes the prefix's files.
//!
//! The scenarios share two cores, so they run one at a time (a lock here for
//! `cargo test`, the `serial-dpdk` test group in `.config/nextest.toml`).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::running::{mac_str, parse_counters, reader, wait_bounded, write_pcap, Running};
use etherparse::PacketBuilder;
use serde_json::Value;

/// MAC of the first net_pcap device (fixed in DPDK 22.11).
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const ROUTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const VIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
const RS: [(&str, [u8; 6]); 2] = [
    ("10.0.1.11", [0x02, 0, 0, 0, 1, 0x0b]),
    ("10.0.1.12", [0x02, 0, 0, 0, 1, 0x0c]),
];

static SERIAL: Mutex<()> = Mutex::new(());

/// A UDP datagram from client `c` (10.1.0.c, port 1000 + c) to `dst:dport`.
fn udp(c: u8, dst: Ipv4Addr, dport: u16) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(ROUTER_MAC, PORT_MAC)
        .ipv4([10, 1, 0, c], dst.octets(), 64)
        .udp(1000 + u16::from(c), dport);
    let payload = [c; 18];
    let mut f = Vec::new();
    b.write(&mut f, &payload).unwrap();
    f
}

fn config(prefix: &str, eal: &str, vdevs: &[String], tx: &str) -> String {
    let vdevs = vdevs
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let servers: String = RS
        .iter()
        .map(|(a, m)| {
            format!(
                "[[service.server]]\naddr = \"{a}\"\nmac = \"{}\"\n",
                mac_str(m)
            )
        })
        .collect();
    format!(
        r#"[eal]
lcores = "0-1"
{eal}
file_prefix = "{prefix}"
vdevs = [{vdevs}]
log_level = "lib.eal:error"

[ports]
rx = "net_pcap0"
tx = "{tx}"
rx_desc = 256
tx_desc = 256
mbufs = 4095
mbuf_cache = 64

[workers]
count = 1
stats_interval_s = 0

[tables]
connections = 4096
persistence = 4096

[neighbours]
gratuitous_arp = false

[[service]]
vip = "{VIP}"
port = 53
proto = "udp"
scheduler = "rr"
{servers}"#
    )
}

/// Starts `pmdlb run` on `frames` (as `in.pcap` in the scratch directory)
/// with the devices `vdevs` makes of that directory and the configuration
/// as `edit` changes it.
fn start(
    tag: &str,
    short: char,
    eal: &str,
    vdevs: impl Fn(&Path) -> Vec<String>,
    tx: &str,
    frames: &[Vec<u8>],
    edit: impl Fn(String) -> String,
) -> Running {
    let prefix = common::file_prefix(tag);
    // A short directory: with a longer rx_pcap path (48 characters
    // here), net_pcap fails to probe in dpdk-dumpcap's secondary
    // process (DPDK 22.11.11) and the port cannot be captured.
    let dir = std::env::temp_dir().join(format!("ptel{short}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    write_pcap(&dir.join("in.pcap"), frames);
    let cfg = dir.join("pmdlb.toml");
    std::fs::write(&cfg, edit(config(&prefix, eal, &vdevs(&dir), tx))).unwrap();
    Running::spawn(cfg, prefix, dir)
}

/// `pmdlb ctl stats` totals, or None while the control socket is not up.
fn ctl_stats(run: &mut Running) -> Option<BTreeMap<String, u64>> {
    run.ctl(&["stats"]).map(|t| parse_counters(&t))
}

/// Polls `pmdlb ctl stats` (bounded) until `done` holds.
fn wait_stats(
    run: &mut Running,
    limit: Duration,
    what: &str,
    done: impl Fn(&BTreeMap<String, u64>) -> bool,
) -> BTreeMap<String, u64> {
    run.wait_until(limit, what, |run| ctl_stats(run).filter(|s| done(s)))
}

/// Sends `commands` to `dpdk-telemetry.py -f PREFIX` on its standard
/// input; returns one JSON reply per command.
fn telemetry(run: &Running, commands: &[&str]) -> Vec<Value> {
    let mut c = Command::new("dpdk-telemetry.py")
        .args(["-f", run.prefix()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-telemetry.py (Debian package dpdk-dev)");
    let mut input = c.stdin.take().unwrap();
    for cmd in commands {
        writeln!(input, "{cmd}").unwrap();
    }
    drop(input);
    let out = reader(c.stdout.take().unwrap());
    let err = reader(c.stderr.take().unwrap());
    let st = wait_bounded(&mut c, Duration::from_secs(20), "dpdk-telemetry.py");
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        st.success(),
        "dpdk-telemetry.py failed ({st}):\n{out}\n{err}"
    );
    let replies: Vec<Value> = out
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(replies.len(), commands.len(), "replies:\n{out}\n{err}");
    replies
        .into_iter()
        .zip(commands)
        .map(|(mut r, cmd)| {
            let key = cmd.split(',').next().unwrap();
            r.get_mut(key)
                .map(Value::take)
                .unwrap_or_else(|| panic!("reply to {cmd} has no {key}: {r}"))
        })
        .collect()
}

/// SIGTERM, bounded wait, clean exit with nothing left behind; returns
/// stdout and stderr.
fn stop(run: Running) -> String {
    let stopped = run.stop();
    let (st, text) = (stopped.status, stopped.text());
    assert_eq!(st.code(), Some(0), "pmdlb exit status {st}\n{text}");
    assert!(text.contains("pmdlb: stopped cleanly"), "{text}");
    assert!(text.contains("mbufs: all"), "mbufs leaked\n{text}");
    assert!(
        !Path::new("/var/run/dpdk").join(stopped.prefix()).exists(),
        "runtime directory left behind"
    );
    assert!(
        !Path::new(&format!("/run/pmdlb/{}.sock", stopped.prefix())).exists(),
        "control socket left behind"
    );
    text
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no number {key} in {v}"))
}

/// After known traffic, `/pmdlb/stats` through DPDK's telemetry socket
/// says what `pmdlb ctl stats` says, counter by counter, total and per
/// worker; `/ethdev/stats,0` (DPDK's own) works alongside and agrees; the
/// services, servers and info commands describe the configuration.
#[test]
fn telemetry_stats_match_ctl_stats() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // 8 datagrams to the service, 3 to a port without service, 2 to an
    // address that is no VIP.
    let mut frames: Vec<Vec<u8>> = (1..=8).map(|c| udp(c, VIP, 53)).collect();
    frames.extend((9..=11).map(|c| udp(c, VIP, 54)));
    frames.extend((12..=13).map(|c| udp(c, Ipv4Addr::new(10, 0, 0, 7), 53)));
    let n = frames.len() as u64;
    let mut run = start(
        "tel-stats",
        's',
        "hugepages = false\nmemory_mb = 256",
        |d| {
            vec![
                format!(
                    "net_pcap0,rx_pcap={},tx_pcap={}",
                    d.join("in.pcap").display(),
                    d.join("rxout.pcap").display()
                ),
                format!("net_pcap1,tx_pcap={}", d.join("out.pcap").display()),
            ]
        },
        "net_pcap1",
        &frames,
        |c| c,
    );
    // Every frame received and accounted for: nothing moves any more.
    let before = wait_stats(
        &mut run,
        Duration::from_secs(15),
        "every frame counted",
        |s| {
            let g = |k: &str| s.get(k).copied().unwrap_or(0);
            g("rx") == n && g("forwarded") + g("drop.total") == n
        },
    );
    let r = telemetry(
        &run,
        &[
            "/pmdlb/stats",
            "/pmdlb/stats,0",
            "/ethdev/stats,0",
            "/ethdev/stats,1",
            "/pmdlb/services",
            "/pmdlb/servers",
            "/pmdlb/info",
            "/pmdlb/stats,7",
        ],
    );
    let after = ctl_stats(&mut run).expect("ctl stats");
    // Only the loop count moves on an idle worker.
    let still = |m: &BTreeMap<String, u64>| {
        let mut m = m.clone();
        m.remove("loops");
        m
    };
    assert_eq!(
        still(&before),
        still(&after),
        "counters moved while reading"
    );
    let (stats, w0, eth0, eth1, services, servers, info, bad) =
        (&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &r[7]);

    assert_eq!(u64_of(stats, "workers"), 1, "{stats}");
    let total = &stats["total"];
    assert_eq!(
        &stats["worker0"], total,
        "one worker: its counters are the total"
    );
    let no_loops = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("loops");
        v
    };
    assert_eq!(no_loops(w0), no_loops(total), "/pmdlb/stats,0 is worker 0");
    // Every row of ctl stats, under its telemetry name.
    for (name, v) in &after {
        let t = u64_of(total, &name.replace('.', "_"));
        if name == "loops" {
            assert!(
                before["loops"] <= t && t <= *v,
                "loops {t}: {before:?} {after:?}"
            );
        } else {
            assert_eq!(t, *v, "{name}: {total}");
        }
    }
    // Drop reasons ctl leaves out (zero) are zero in telemetry.
    for (k, v) in total.as_object().unwrap() {
        if k.starts_with("drop_") && !after.contains_key(&k.replacen('_', ".", 1)) {
            assert_eq!(v.as_u64(), Some(0), "{k}");
        }
    }
    assert_eq!(u64_of(total, "rx"), n);
    assert_eq!(u64_of(total, "forwarded"), 8);
    assert_eq!(u64_of(total, "drop_total"), 5);
    assert_eq!(u64_of(total, "conn_created"), 8);

    // DPDK's own port counters, through the same socket.
    assert_eq!(u64_of(eth0, "ipackets"), n, "{eth0}");
    assert_eq!(u64_of(eth1, "opackets"), 8, "{eth1}");

    let svc = &services["0"];
    assert_eq!(svc["name"], "UDP  10.0.0.100:53", "{services}");
    assert_eq!(svc["scheduler"], "rr");
    assert_eq!(u64_of(svc, "servers"), 2);
    assert_eq!(
        u64_of(svc, "inactive"),
        8,
        "UDP flows are inactive connections"
    );
    for (i, (addr, mac)) in RS.iter().enumerate() {
        let s = &servers[i.to_string()];
        assert_eq!(s["addr"], *addr, "{servers}");
        assert_eq!(s["mac"], mac_str(mac), "{servers}");
        assert_eq!(u64_of(s, "weight"), 1);
        assert_eq!(u64_of(s, "active"), 0);
        assert_eq!(u64_of(s, "inactive"), 4, "rr splits 8 flows 4/4: {servers}");
        assert_eq!(u64_of(s, "service"), 0);
    }
    assert_eq!(u64_of(info, "workers"), 1, "{info}");
    assert_eq!(info["rx_port"], "net_pcap0");
    assert_eq!(info["tx_port"], "net_pcap1");
    assert_eq!(info["live_capture"], "on");
    assert!(bad.is_null(), "a worker that does not exist: {bad}");

    let text = stop(run);
    assert!(
        text.contains(&format!("accounting: rx={n} unaccounted=0")),
        "{text}"
    );
}

/// One decoded frame of a capture.
#[derive(Debug)]
struct Captured {
    src: String,
    dst: String,
    ip_src: String,
    ip_dst: String,
    sport: String,
    dport: String,
    payload: String,
}

/// Decodes `file` (pcapng) with tshark.
fn tshark(file: &Path) -> Vec<Captured> {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e", "eth.src", "-e", "eth.dst", "-e", "ip.src", "-e", "ip.dst",
        ])
        .args([
            "-e",
            "udp.srcport",
            "-e",
            "udp.dstport",
            "-e",
            "udp.payload",
        ])
        .stderr(Stdio::null())
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark failed on {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<String> = l.split('|').map(str::to_string).collect();
            assert_eq!(f.len(), 7, "{l}");
            Captured {
                src: f[0].clone(),
                dst: f[1].clone(),
                ip_src: f[2].clone(),
                ip_dst: f[3].clone(),
                sport: f[4].clone(),
                dport: f[5].clone(),
                payload: f[6].replace(':', ""),
            }
        })
        .collect()
}

/// Runs `dpdk-dumpcap` against the running pmdlb on `iface` until it has
/// `count` packets (bounded); returns the decoded capture.
fn dumpcap(run: &mut Running, iface: &str, count: u32) -> Vec<Captured> {
    let file = run.dir().join(format!("{iface}.pcapng"));
    let child = Command::new("dpdk-dumpcap")
        .arg(format!("--file-prefix={}", run.prefix()))
        .args(["-i", iface, "-p", "-q", "-c", &count.to_string(), "-w"])
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dpdk-dumpcap (Debian package dpdk-dev)");
    let c = run.add_helper(child);
    let out = reader(c.stdout.take().unwrap());
    let err = reader(c.stderr.take().unwrap());
    let st = wait_bounded(c, Duration::from_secs(30), "dpdk-dumpcap");
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        st.success(),
        "dpdk-dumpcap -i {iface} failed ({st}):\n{out}\n{err}"
    );
    tshark(&file)
}

/// `dpdk-dumpcap` attached to a running pmdlb captures its RX port's
/// received frames — each one of the frames sent — and its TX port's
/// forwards: the same datagram with the real server's MAC as destination
/// and the TX port's as source, each flow always to the same server.
#[test]
fn dumpcap_captures_rx_and_tx() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let clients = 1..=4u8;
    let frames: Vec<Vec<u8>> = clients.clone().map(|c| udp(c, VIP, 53)).collect();
    // Secondary processes need the primary's memory in shared hugepage
    // files: a --no-huge primary cannot be attached to.
    let mut run = start(
        "tel-dumpcap",
        'd',
        "hugepages = true\nmemory_mb = 128",
        |d| {
            vec![
                format!(
                    "net_pcap0,rx_pcap={},infinite_rx=1",
                    d.join("in.pcap").display()
                ),
                // no-rx: the TX port receives nothing, so its capture holds
                // only what pmdlb sent.
                "net_null0,no-rx=1".to_string(),
            ]
        },
        "net_null0",
        &frames,
        |c| c,
    );
    wait_stats(
        &mut run,
        Duration::from_secs(20),
        "a frame forwarded",
        |s| s.get("forwarded").copied().unwrap_or(0) > 0,
    );

    let expected = |c: u8| {
        (
            format!("10.1.0.{c}"),
            VIP.to_string(),
            (1000 + u16::from(c)).to_string(),
            "53".to_string(),
            mac_str(&[c; 18]).replace(':', ""),
        )
    };
    let known: HashMap<_, _> = clients.clone().map(|c| (expected(c), c)).collect();
    let key = |f: &Captured| {
        (
            f.ip_src.clone(),
            f.ip_dst.clone(),
            f.sport.clone(),
            f.dport.clone(),
            f.payload.clone(),
        )
    };

    let rx = dumpcap(&mut run, "net_pcap0", 64);
    // dumpcap writes whole bursts: at least the count asked for.
    assert!(rx.len() >= 64, "dumpcap -c 64 on the RX port: {}", rx.len());
    for f in &rx {
        assert!(known.contains_key(&key(f)), "not a frame sent: {f:?}");
        assert_eq!(f.src, mac_str(&ROUTER_MAC), "{f:?}");
        assert_eq!(f.dst, mac_str(&PORT_MAC), "{f:?}");
    }

    let tx = dumpcap(&mut run, "net_null0", 64);
    assert!(tx.len() >= 64, "dumpcap -c 64 on the TX port: {}", tx.len());
    let rs_macs: Vec<String> = RS.iter().map(|(_, m)| mac_str(m)).collect();
    let mut server_of: HashMap<u8, String> = HashMap::new();
    let tx_src = tx[0].src.clone();
    for f in &tx {
        let c = *known
            .get(&key(f))
            .unwrap_or_else(|| panic!("not a forward of a frame sent: {f:?}"));
        assert!(rs_macs.contains(&f.dst), "not a real server's MAC: {f:?}");
        assert_eq!(f.src, tx_src, "one source MAC, the TX port's: {f:?}");
        let s = server_of.entry(c).or_insert_with(|| f.dst.clone());
        assert_eq!(*s, f.dst, "client {c} moved between servers");
    }

    let text = stop(run);
    let tx_line = text
        .lines()
        .find(|l| l.starts_with("pmdlb: RX "))
        .unwrap_or("");
    assert!(
        tx_line.contains(&format!("TX net_null0 {tx_src}")),
        "forwards' source MAC {tx_src} is not the TX port's:\n{tx_line}"
    );
}

/// Starts pmdlb on `frames` from net_pcap0 to net_pcap1 with `eal` and
/// `tables` (the `[tables]` keys) in its configuration.
fn with_tables(tag: &str, short: char, eal: &str, frames: &[Vec<u8>], tables: &str) -> Running {
    start(
        tag,
        short,
        eal,
        |d| {
            vec![
                format!("net_pcap0,rx_pcap={}", d.join("in.pcap").display()),
                format!("net_pcap1,tx_pcap={}", d.join("out.pcap").display()),
            ]
        },
        "net_pcap1",
        frames,
        |c| c.replace("connections = 4096\npersistence = 4096\n", tables),
    )
}

/// DPDK's own accounting of its heap (`/eal/heap_info` through
/// dpdk-telemetry.py) over every heap: bytes allocated.
fn dpdk_allocated(run: &Running) -> u64 {
    let heaps = telemetry(run, &["/eal/heap_list"]).remove(0);
    let ids: Vec<u64> = heaps
        .as_array()
        .unwrap_or_else(|| panic!("heap list {heaps}"))
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let cmds: Vec<String> = ids.iter().map(|i| format!("/eal/heap_info,{i}")).collect();
    let cmds: Vec<&str> = cmds.iter().map(String::as_str).collect();
    telemetry(run, &cmds)
        .iter()
        .map(|h| u64_of(h, "Alloc_size"))
        .sum()
}

/// `[tables] memory = "dpdk"` puts the connection and persistence tables
/// in DPDK's hugepage heap: DPDK's own telemetry counts them there (the
/// difference against `memory = "heap"`, the same configuration
/// otherwise) at their documented sizes (connections: a 64-byte line per
/// entry, two lines per entry of capacity, 16 overflow lines;
/// persistence: 84 bytes a template), and
/// the run forwards and stops cleanly with the tables freed before EAL.
#[test]
fn tables_in_dpdk_memory_show_in_its_heap() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let frames: Vec<Vec<u8>> = (1..=4).map(|c| udp(c, VIP, 53)).collect();
    let connections = 65_536u64;
    let conn_bytes = 64 * (2 * connections + 16);
    let mut allocated = BTreeMap::new();
    for (memory, short) in [("dpdk", 'm'), ("heap", 'n')] {
        let mut run = with_tables(
            &format!("tel-mem-{memory}"),
            short,
            "hugepages = true\nmemory_mb = 128",
            &frames,
            &format!(
                "connections = {connections}\npersistence = {connections}\nmemory = \"{memory}\"\n"
            ),
        );
        wait_stats(
            &mut run,
            Duration::from_secs(15),
            "the frames forwarded",
            |s| s.get("forwarded") == Some(&4),
        );
        allocated.insert(memory, dpdk_allocated(&run));
        let info = telemetry(&run, &["/pmdlb/info"]).remove(0);
        let tables = &info["tables"];
        assert_eq!(
            u64_of(tables, "worker_0_connections_bytes"),
            conn_bytes,
            "{info}"
        );
        assert_eq!(
            u64_of(tables, "persistence_bytes"),
            84 * connections,
            "{info}"
        );
        let place = if memory == "dpdk" {
            "DPDK hugepage memory on "
        } else {
            "the process heap"
        };
        for t in ["worker_0_connections_memory", "persistence_memory"] {
            let m = tables[t]
                .as_str()
                .unwrap_or_else(|| panic!("no {t}: {info}"));
            assert!(m.starts_with(place), "{t}: {m}");
        }
        let text = stop(run);
        let placed = text
            .lines()
            .find(|l| l.starts_with("pmdlb: tables in "))
            .unwrap_or_else(|| panic!("no tables line\n{text}"));
        let want = if memory == "dpdk" {
            "pmdlb: tables in DPDK hugepage memory on "
        } else {
            "pmdlb: tables in the process heap: "
        };
        assert!(placed.starts_with(want), "{placed}");
        assert!(
            placed.ends_with(": persistence 5.2 MiB, worker 0 connections 8.0 MiB"),
            "{placed}"
        );
        assert!(!text.contains("warning: "), "{text}");
    }
    let grown = allocated["dpdk"] - allocated["heap"];
    // The persistence table: 84 bytes a template of capacity (documented);
    // DPDK adds a header of some 128 bytes to each allocation.
    let tables = conn_bytes + 84 * connections;
    assert!(
        grown >= tables && grown < tables + 4096,
        "DPDK's heap grew by {grown} bytes, the tables are {tables}: {allocated:?}"
    );
}

/// `memory = "dpdk"` without room is a start-up error that names the
/// table, its size in bytes (the documented 64 × (2 × connections + 16))
/// and what to change; nothing is left behind. `auto` in the same place
/// starts with that table on the process heap and says so. The room is
/// EAL's own limit, `--socket-limit=64` (MiB), on hugepages.
#[test]
fn tables_without_room_in_dpdk_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let frames: Vec<Vec<u8>> = (1..=2).map(|c| udp(c, VIP, 53)).collect();
    let bytes = 64 * (2 * 1_048_576 + 16);
    for memory in ["dpdk", "auto"] {
        let mut run = with_tables(
            &format!("tel-room-{memory}"),
            'r',
            "hugepages = true\nextra_args = [\"--socket-limit=64\"]",
            &frames,
            &format!("connections = 1048576\npersistence = 4096\nmemory = \"{memory}\"\n"),
        );
        if memory == "dpdk" {
            let stopped = run.wait_exit(Duration::from_secs(30), "pmdlb without room");
            let text = stopped.text();
            assert_eq!(stopped.status.code(), Some(1), "{text}");
            assert!(
                text.contains(
                    "tables.memory = \"dpdk\": the connection table of worker 0: DPDK hugepage memory on "
                ) && text.contains(&format!(
                    "has no room for {bytes} bytes (128.0 MiB); reserve more hugepages"
                )),
                "{text}"
            );
            assert!(
                !Path::new("/var/run/dpdk").join(stopped.prefix()).exists(),
                "runtime directory left behind"
            );
        } else {
            wait_stats(
                &mut run,
                Duration::from_secs(15),
                "the frames forwarded",
                |s| s.get("forwarded") == Some(&2),
            );
            let text = stop(run);
            assert!(
                text.contains("pmdlb: warning: worker 0 connections (128.0 MiB) in the process heap: DPDK hugepage memory on "),
                "{text}"
            );
            assert!(
                text.contains("had no room; reserve more hugepages"),
                "{text}"
            );
        }
    }
}
