//! The queue layout against devices whose receive queues exist from the
//! device's creation (`net_pcap`: one queue per `rx_pcap`; `net_af_packet`:
//! `qpairs` sockets in one kernel fan-out group). Frames reach every such
//! queue whether pmdlb configured it or not, so pmdlb must read all of
//! them — on the TX NIC the control plane reads every queue for neighbour
//! answers — and refuse an RX NIC that has more such queues than workers.
//!
//! Deterministic by construction: a `net_pcap` queue is a file, so which
//! answer arrives on which queue is fixed by the test, not by a hash.

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cleanup_prefix, file_prefix, scratch};
use etherparse::PacketBuilder;
use pmdlb::wire::ethernet::MacAddr;

fn pmdlb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pmdlb"))
}

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::new(file).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_micros(i as u64);
        let pkt = pcap_file::pcap::PcapPacket::new(ts, f.len() as u32, f);
        w.write_packet(&pkt).unwrap();
    }
}

/// The TX segment as the test lays it out.
const TX_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const RS1: (Ipv4Addr, [u8; 6]) = (Ipv4Addr::new(10, 0, 1, 11), [2, 0, 0, 0, 1, 0x0b]);
const RS2: (Ipv4Addr, [u8; 6]) = (Ipv4Addr::new(10, 0, 1, 12), [2, 0, 0, 0, 1, 0x0c]);
const RS3: (Ipv6Addr, [u8; 6]) = (
    Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x13),
    [2, 0, 0, 0, 1, 0x13],
);

/// An unsolicited ARP reply from `(ip, mac)` to the broadcast address.
fn arp_reply((ip, mac): (Ipv4Addr, [u8; 6])) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&TX_ADDR.octets());
    f.resize(60, 0);
    f
}

/// An unsolicited neighbour advertisement (override flag) for `ip`, with a
/// target link-layer address option, to all nodes.
fn neighbour_advert((ip, mac): (Ipv6Addr, [u8; 6])) -> Vec<u8> {
    let mut body = ip.octets().to_vec();
    body.extend_from_slice(&[2, 1]);
    body.extend_from_slice(&mac);
    let b = PacketBuilder::ethernet2(mac, [0x33, 0x33, 0, 0, 0, 1])
        .ipv6(
            ip.octets(),
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1).octets(),
            255,
        )
        .icmpv6(etherparse::Icmpv6Type::Unknown {
            type_u8: 136,
            code_u8: 0,
            bytes5to8: [0x20, 0, 0, 0],
        });
    let mut f = Vec::new();
    b.write(&mut f, &body).unwrap();
    f
}

fn config(prefix: &str, vdevs: &[String], rx: &str, tx: Option<&str>, workers: u16) -> String {
    let vdevs = vdevs
        .iter()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let tx = tx.map_or(String::new(), |t| format!("tx = \"{t}\"\n"));
    format!(
        r#"[eal]
lcores = "0-{workers}"
hugepages = false
memory_mb = 256
file_prefix = "{prefix}"
vdevs = [{vdevs}]
extra_args = ["--no-telemetry"]

[ports]
rx = "{rx}"
{tx}rx_desc = 256
tx_desc = 256
mbufs = 4095
mbuf_cache = 64
tx_addr = "{TX_ADDR}"
tx_addr6 = "fd00:1::1"

[workers]
count = {workers}
stats_interval_s = 0

[tables]
connections = 4096
persistence = 4096

[neighbours]
gratuitous_arp = false
retry_ms = 200

[[service]]
vip = "10.0.0.100"
port = 80
[[service.server]]
addr = "{}"
[[service.server]]
addr = "{}"

[[service]]
vip = "fd00::100"
port = 80
[[service.server]]
addr = "{}"
"#,
        RS1.0, RS2.0, RS3.0
    )
}

/// Kills and reaps the child and removes the prefix's files, even when the
/// test fails half-way.
struct Cleanup {
    child: Option<std::process::Child>,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        cleanup_prefix(&self.prefix);
    }
}

/// The real servers' MACs are in answers spread over both receive queues
/// of the TX NIC (queue 0: rs1; queue 1: rs2's ARP reply and rs3's
/// neighbour advertisement). Every server must be resolved: the control
/// plane reads every queue of the TX NIC, not only queue 0.
#[test]
fn tx_nic_every_rx_queue_is_read() {
    let tag = "layout-txq";
    let prefix = file_prefix(tag);
    let dir = scratch(tag);
    let (empty, q0, q1) = (
        dir.join("empty.pcap"),
        dir.join("q0.pcap"),
        dir.join("q1.pcap"),
    );
    write_pcap(&empty, &[]);
    write_pcap(&q0, &[arp_reply(RS1)]);
    write_pcap(&q1, &[arp_reply(RS2), neighbour_advert(RS3)]);
    let vdevs = [
        format!(
            "net_pcap0,rx_pcap={},tx_pcap={}",
            empty.display(),
            dir.join("rxout.pcap").display()
        ),
        format!(
            "net_pcap1,rx_pcap={},rx_pcap={},tx_pcap={}",
            q0.display(),
            q1.display(),
            dir.join("txout.pcap").display()
        ),
    ];
    let cfg = dir.join("pmdlb.toml");
    std::fs::write(
        &cfg,
        config(&prefix, &vdevs, "net_pcap0", Some("net_pcap1"), 1),
    )
    .unwrap();

    let child = pmdlb()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pmdlb run");
    let pid = child.id();
    let mut guard = Cleanup {
        child: Some(child),
        prefix: prefix.clone(),
    };
    let c = guard.child.as_mut().unwrap();
    let mut so = c.stdout.take().unwrap();
    let mut se = c.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = so.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });

    // Bounded wait for the three bindings (the pcap files are read at once).
    let want = [
        (RS1.0.to_string(), MacAddr(RS1.1).to_string()),
        (RS2.0.to_string(), MacAddr(RS2.1).to_string()),
        (RS3.0.to_string(), MacAddr(RS3.1).to_string()),
    ];
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = String::new();
    let resolved = loop {
        if let Some(st) = c.try_wait().unwrap() {
            panic!(
                "pmdlb exited early ({st}):\n{}\n{}",
                out.join().unwrap(),
                err.join().unwrap()
            );
        }
        let o = pmdlb()
            .args(["ctl", "--config"])
            .arg(&cfg)
            .arg("servers")
            .output()
            .unwrap();
        if o.status.success() {
            last = String::from_utf8_lossy(&o.stdout).into_owned();
            let ok = want.iter().all(|(addr, mac)| {
                last.lines()
                    .any(|l| l.contains(&format!("-> {addr} ")) && l.ends_with(mac.as_str()))
            });
            if ok {
                break true;
            }
        }
        if Instant::now() >= deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "pmdlb did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap();
    let stderr = err.join().unwrap();
    let ctx = format!("--- servers\n{last}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    assert!(
        resolved,
        "not every server resolved within 15 s (an RX queue of the TX NIC unread?)\n{ctx}"
    );
    assert_eq!(status.code(), Some(0), "{ctx}");
    assert!(
        stdout.contains("learned=3 ") && stdout.contains("unresolved=0 "),
        "{ctx}"
    );
    assert!(stdout.contains("mbufs: all"), "mbufs leaked\n{ctx}");
    drop(guard);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Runs `pmdlb run` on a configuration that must be refused at start;
/// returns (exit code, stderr).
fn refused(tag: &str, vdevs: &[String], rx: &str, tx: Option<&str>, workers: u16) -> (i32, String) {
    let prefix = file_prefix(tag);
    let dir = scratch(tag);
    let cfg = dir.join("pmdlb.toml");
    std::fs::write(&cfg, config(&prefix, vdevs, rx, tx, workers)).unwrap();
    let mut guard = Cleanup {
        child: None,
        prefix,
    };
    let mut child = pmdlb()
        .args(["run", "--config"])
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut se = child.stderr.take().unwrap();
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    guard.child = Some(child);
    let c = guard.child.as_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(guard);
    let err = err.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let status =
        status.unwrap_or_else(|| panic!("{tag}: still running after 15 s, not refused\n{err}"));
    (status.code().unwrap_or(-1), err)
}

/// An RX NIC with two file queues and one worker: the second file would
/// never be read. Refused with a message that says why and what to change.
#[test]
fn rx_nic_with_more_fixed_queues_than_workers_is_refused() {
    let dir = scratch("layout-rxq-files");
    let (a, b) = (dir.join("a.pcap"), dir.join("b.pcap"));
    write_pcap(&a, &[arp_reply(RS1)]);
    write_pcap(&b, &[arp_reply(RS2)]);
    let vdevs = [
        format!(
            "net_pcap0,rx_pcap={},rx_pcap={},tx_pcap={}",
            a.display(),
            b.display(),
            dir.join("out.pcap").display()
        ),
        "net_null0".to_string(),
    ];
    let (code, err) = refused("layout-rxq", &vdevs, "net_pcap0", Some("net_null0"), 1);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("net_pcap0") && err.contains("2 receive queues") && err.contains("1 worker"),
        "the message must name the port, its queues and the workers:\n{err}"
    );
}

/// The same for `net_af_packet` with `qpairs=2` (the kernel's fan-out would
/// hash frames to a socket nobody reads), on the loopback interface and as
/// a one-armed NIC.
#[test]
fn af_packet_qpairs_above_workers_is_refused() {
    let vdevs = ["net_af_packet0,iface=lo,qpairs=2".to_string()];
    let (code, err) = refused("layout-afp", &vdevs, "net_af_packet0", None, 1);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("net_af_packet0") && err.contains("qpairs=1"),
        "the message must say which qpairs would work:\n{err}"
    );
}
