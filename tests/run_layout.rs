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

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use common::running::{write_pcap, Running};
use common::{file_prefix, scratch};
use etherparse::PacketBuilder;
use pmdlb::wire::ethernet::MacAddr;

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

    let mut run = Running::spawn(cfg, prefix, dir);

    // Bounded wait for the three bindings (the pcap files are read at once).
    let want = [
        (RS1.0.to_string(), MacAddr(RS1.1).to_string()),
        (RS2.0.to_string(), MacAddr(RS2.1).to_string()),
        (RS3.0.to_string(), MacAddr(RS3.1).to_string()),
    ];
    let servers = run.wait_until(
        Duration::from_secs(15),
        "every server resolved (an RX queue of the TX NIC unread?)",
        |run| {
            let last = run.ctl(&["servers"])?;
            want.iter()
                .all(|(addr, mac)| {
                    last.lines()
                        .any(|l| l.contains(&format!("-> {addr} ")) && l.ends_with(mac.as_str()))
                })
                .then_some(last)
        },
    );

    let stopped = run.stop();
    let stdout = &stopped.stdout;
    let ctx = format!("--- servers\n{servers}\n{}", stopped.text());
    assert_eq!(stopped.status.code(), Some(0), "{ctx}");
    assert!(
        stdout.contains("learned=3 ") && stdout.contains("unresolved=0 "),
        "{ctx}"
    );
    assert!(stdout.contains("mbufs: all"), "mbufs leaked\n{ctx}");
}

/// Runs `pmdlb run` on a configuration that must be refused at start;
/// returns (exit code, stderr).
fn refused(tag: &str, vdevs: &[String], rx: &str, tx: Option<&str>, workers: u16) -> (i32, String) {
    let prefix = file_prefix(tag);
    let dir = scratch(tag);
    let cfg = dir.join("pmdlb.toml");
    std::fs::write(&cfg, config(&prefix, vdevs, rx, tx, workers)).unwrap();
    let run = Running::spawn(cfg, prefix, dir);
    let stopped = run.wait_exit(Duration::from_secs(15), &format!("{tag}: not refused"));
    (stopped.status.code().unwrap_or(-1), stopped.stderr)
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
