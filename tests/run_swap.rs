//! Run-time changes under load (issue 10): the real `pmdlb run` forwards a
//! looping pcap (`net_pcap`, `infinite_rx=1`) while a driver thread changes
//! the rule set every 10 ms for 30 s through the control socket, with the
//! requests `pmdlb admin` sends (`client::encode_request` over
//! `ctl::request`): a server added and removed, weights edited (0 and
//! back), schedulers changed, a whole service added and deleted, the
//! timeouts set, and the saved set restored with `-R`.
//!
//! Traffic: 2,048 UDP clients to `udp VIP:53`, 1,024 TCP clients (SYN,
//! then ACK) to ports 80 and 443 of the persistent fwmark service (a
//! `[[mark]]` rule), and 1,024 TCP clients to `tcp VIP:8080`, the service
//! the driver deletes and re-creates (between the two its packets are
//! dropped as `no_service`, and counted).
//!
//! Real-server MACs: ipvsadm's command line has no MAC, so a server added
//! with `-a` is resolved by ARP. The TX port is a `net_pcap` whose input is
//! one ARP reply per address of a pool (read once at start); the resolver
//! keeps a binding while some service lists the address, so a holder
//! service (`udp VIP:9`, no traffic, never edited) lists the whole pool,
//! and every server the driver adds takes its MAC from that binding at
//! the swap. The fwmark service's servers have static MACs.
//!
//! Asserted: at least [`MIN_SWAPS`] swaps, every request answered 0; the
//! forwarded count rises between samples during the run; the re-created
//! service receives packets mid-run (`-L -n --stats`); `-S -n` equals the
//! restored base set at cycle ends and the last set at the end; after the
//! stop, exit status 0, nothing unaccounted, every mbuf back in the pool,
//! rx and forwarded above 0, no panic.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::running::{mac_str, parse_counters, write_pcap, Running};
use etherparse::PacketBuilder;
use pmdlb::control::admin::args;
use pmdlb::control::admin::client::encode_request;
use pmdlb::control::admin::rules::parse_restore;
use pmdlb::control::ctl;

/// MAC of the first net_pcap device (fixed in DPDK 22.11).
const PORT_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
const ROUTER_MAC: [u8; 6] = [0x02, 0xaa, 0, 0, 0, 0x01];
const VIP: &str = "10.0.0.100";
const TX_ADDR: [u8; 4] = [10, 0, 1, 1];
const MARK: u32 = 1;

/// Addresses resolved by ARP at start: `10.0.1.11..=18`, MAC `02:00:00:00:01:1N`.
const POOL: [u8; 8] = [11, 12, 13, 14, 15, 16, 17, 18];
/// The fwmark service's servers, static MACs.
const FWM: [u8; 3] = [21, 22, 23];

/// How long the driver changes rules, and how often.
const DRIVE: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(10);
/// A bound safe on a shared 2-core machine (3,000 is the cadence's count).
const MIN_SWAPS: u64 = 1000;

/// Schedulers the driver cycles `udp VIP:53` and the fwmark service through.
const SCHEDS: [&str; 11] = [
    "rr", "wrr", "lc", "wlc", "sed", "nq", "sh", "mh", "dh", "fo", "ovf",
];
const FWM_SCHEDS: [&str; 4] = ["wlc", "lc", "sh", "mh"];

fn pool_mac(n: u8) -> [u8; 6] {
    [2, 0, 0, 0, 1, n]
}

fn config(prefix: &str, dir: &Path) -> String {
    let fwm: String = FWM
        .iter()
        .map(|n| {
            format!(
                "[[service.server]]\naddr = \"10.0.2.{n}\"\nmac = \"{}\"\n",
                mac_str(&[2, 0, 0, 0, 2, *n])
            )
        })
        .collect();
    let pool = |ns: &mut dyn Iterator<Item = u8>| -> String {
        ns.map(|n| format!("[[service.server]]\naddr = \"10.0.1.{n}\"\n"))
            .collect()
    };
    format!(
        r#"[eal]
lcores = "0-1"
hugepages = false
memory_mb = 256
file_prefix = "{prefix}"
vdevs = ["net_pcap0,rx_pcap={inp},infinite_rx=1", "net_pcap1,rx_pcap={arp},tx_pcap=/dev/null"]
extra_args = ["--no-telemetry"]

[ports]
rx = "net_pcap0"
tx = "net_pcap1"
mbufs = 16383
mbuf_cache = 64
tx_addr = "{tx_addr}"

[workers]
count = 1
stats_interval_s = 0

[tables]
connections = 65536
persistence = 65536

[neighbours]
gratuitous_arp = false
refresh_s = 86400

[[vip]]
addr = "{VIP}"

[[mark]]
dst = "{VIP}"
proto = "tcp"
ports = [80, 443]
mark = {MARK}

[[service]]
vip = "{VIP}"
port = 9
proto = "udp"
scheduler = "rr"
{holder}
[[service]]
vip = "{VIP}"
port = 53
proto = "udp"
scheduler = "wlc"
{udp}
[[service]]
fwmark = {MARK}
scheduler = "wlc"
persistent = 300
{fwm}
[[service]]
vip = "{VIP}"
port = 8080
proto = "tcp"
scheduler = "rr"
{web}"#,
        inp = dir.join("in.pcap").display(),
        arp = dir.join("arp.pcap").display(),
        tx_addr = Ipv4Addr::from(TX_ADDR),
        holder = pool(&mut POOL.into_iter()),
        udp = pool(&mut (11..=14)),
        web = pool(&mut (16..=17)),
    )
}

/// A client frame to the RX port, padded to 60 bytes.
fn frame(src: Ipv4Addr, build: impl FnOnce(PacketBuilderIp) -> Vec<u8>) -> Vec<u8> {
    let vip: Ipv4Addr = VIP.parse().unwrap();
    let b = PacketBuilder::ethernet2(ROUTER_MAC, PORT_MAC).ipv4(src.octets(), vip.octets(), 64);
    let mut f = build(b);
    f.resize(f.len().max(60), 0);
    f
}

type PacketBuilderIp = etherparse::PacketBuilderStep<etherparse::IpHeaders>;

fn tcp_pair(client: Ipv4Addr, sport: u16, dport: u16) -> [Vec<u8>; 2] {
    let syn = frame(client, |b| {
        let mut v = Vec::new();
        b.tcp(sport, dport, 1000, 64240)
            .syn()
            .write(&mut v, &[])
            .unwrap();
        v
    });
    let ack = frame(client, |b| {
        let mut v = Vec::new();
        b.tcp(sport, dport, 1001, 64240)
            .ack(1)
            .write(&mut v, &[])
            .unwrap();
        v
    });
    [syn, ack]
}

/// The looping input: UDP, fwmark TCP and port-8080 TCP interleaved.
fn traffic() -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    for i in 0..1024u32 {
        for k in 0..2u32 {
            let c = Ipv4Addr::from(0x0a10_0000 + 2 * i + k);
            frames.push(frame(c, |b| {
                let mut v = Vec::new();
                b.udp(40_000 + k as u16, 53)
                    .write(&mut v, &[0x5a; 8])
                    .unwrap();
                v
            }));
        }
        let c = Ipv4Addr::from(0x0a20_0000 + i);
        frames.extend(tcp_pair(c, 50_000, if i % 2 == 0 { 80 } else { 443 }));
        let c = Ipv4Addr::from(0x0a30_0000 + i);
        frames.extend(tcp_pair(c, 51_000, 8080));
    }
    frames
}

/// One ARP reply per pool address, to the TX port's address.
fn arp_replies() -> Vec<Vec<u8>> {
    POOL.iter()
        .map(|&n| {
            let mac = pool_mac(n);
            let mut f = Vec::with_capacity(60);
            f.extend_from_slice(&[0xff; 6]);
            f.extend_from_slice(&mac);
            f.extend_from_slice(&[0x08, 0x06]);
            f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 2]);
            f.extend_from_slice(&mac);
            f.extend_from_slice(&[10, 0, 1, n]);
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&TX_ADDR);
            f.resize(60, 0);
            f
        })
        .collect()
}

/// One admin request; `Ok(stdout)` for status 0.
fn admin(sock: &Path, line: &str, restore: Option<&str>) -> Result<String, String> {
    let words: Vec<String> = line.split_whitespace().map(str::to_owned).collect();
    let cmd = args::parse(&words).map_err(|e| format!("{line}: {}", e.msg))?;
    let edits = restore
        .map(parse_restore)
        .transpose()
        .map_err(|e| format!("{line}: restore input: {}", e.msg))?;
    let req = encode_request(&cmd, edits.as_deref());
    match ctl::request(sock, &req) {
        Ok(a) if a.status == 0 => Ok(a.body),
        Ok(a) => Err(format!("{line}: status {}: {}", a.status, a.body)),
        Err(e) => Err(format!("{line}: {e}")),
    }
}

/// The swaps of cycle `k`, in order: `(command, restore input)`. The last
/// one restores `base` (`-C` first, in the same swap).
fn cycle(k: usize, base: &str) -> Vec<(String, Option<String>)> {
    let u = format!("-u {VIP}:53");
    let t = format!("-t {VIP}:8080");
    let f = format!("-f {MARK}");
    let mut v: Vec<String> = vec![
        format!("-a {u} -r 10.0.1.15 -w 2"),
        format!("-e {u} -r 10.0.1.11 -w {}", 1 + k % 4),
        format!("-E {u} -s {}", SCHEDS[k % SCHEDS.len()]),
        format!("-D {t}"),
        format!("-e {f} -r 10.0.2.21 -w 0"),
        format!("-d {u} -r 10.0.1.15"),
        format!("-A {t} -s rr"),
        format!("-a {t} -r 10.0.1.16"),
        format!("-a {t} -r 10.0.1.18 -w 3"),
        format!("-E {f} -s {} -p 300", FWM_SCHEDS[k % FWM_SCHEDS.len()]),
        format!("-e {f} -r 10.0.2.21 -w 1"),
        format!("--set 900 120 {}", 300 + k % 2),
    ];
    if k % 2 == 1 {
        v.push(format!("-e {u} -r 10.0.1.12 -w 0"));
    }
    let mut out: Vec<(String, Option<String>)> = v.into_iter().map(|c| (c, None)).collect();
    out.push(("-R".into(), Some(format!("-C\n{base}"))));
    out
}

/// `InPkts` of the service row of `-L -n --stats --exact -t VIP:8080`.
fn web_inpkts(listing: &str) -> Option<u64> {
    listing
        .lines()
        .find(|l| l.starts_with("TCP") && l.contains(&format!("{VIP}:8080")))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
}

/// What the driver did.
#[derive(Debug, Default)]
struct Driven {
    swaps: u64,
    cycles: u64,
    failures: Vec<String>,
    /// `-S -n` after a cycle's restore that differed from the base set.
    mismatches: Vec<String>,
    /// `InPkts` of the re-created service, sampled mid-run.
    web_samples: Vec<u64>,
    /// The last rule set set, as restore input.
    last_set: String,
}

/// Changes the rules every [`EVERY`] until [`DRIVE`] has passed or `stop`.
fn drive(sock: PathBuf, base: String, stop: Arc<AtomicBool>) -> Driven {
    let mut d = Driven::default();
    let start = Instant::now();
    let mut next = start;
    let mut k = 0;
    'run: while start.elapsed() < DRIVE && !stop.load(Ordering::Relaxed) {
        for (cmd, restore) in cycle(k, &base) {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next += EVERY;
            match admin(&sock, &cmd, restore.as_deref()) {
                Ok(_) => d.swaps += 1,
                Err(e) => d.failures.push(e),
            }
            if d.failures.len() > 10 || stop.load(Ordering::Relaxed) {
                break 'run;
            }
            // Every 8th cycle: the re-created service, 10 ms after its last
            // server came in.
            if k % 8 == 0 && cmd.contains("-r 10.0.1.18") {
                std::thread::sleep(EVERY);
                match admin(&sock, &format!("-L -n --stats --exact -t {VIP}:8080"), None) {
                    Ok(l) => d.web_samples.push(web_inpkts(&l).unwrap_or(0)),
                    Err(e) => d.failures.push(e),
                }
            }
        }
        d.cycles += 1;
        if k % 16 == 0 {
            match admin(&sock, "-S -n", None) {
                Ok(s) if s == base => {}
                Ok(s) => d.mismatches.push(s),
                Err(e) => d.failures.push(e),
            }
        }
        k += 1;
    }
    // The last set differs from the base: another scheduler, a weight, a
    // fourth server for the re-created service (`-S -n`'s own order).
    let last = base
        .replace(
            &format!("-A -u {VIP}:53 -s wlc\n"),
            &format!("-A -u {VIP}:53 -s sed\n"),
        )
        .replace("-r 10.0.1.11:53 -g -w 1\n", "-r 10.0.1.11:53 -g -w 4\n")
        .replace(
            "-r 10.0.1.17:8080 -g -w 1\n",
            &format!("-r 10.0.1.17:8080 -g -w 1\n-a -t {VIP}:8080 -r 10.0.1.18:8080 -g -w 2\n"),
        );
    assert_ne!(last, base);
    match admin(&sock, "-R", Some(&format!("-C\n{last}"))) {
        Ok(_) => d.swaps += 1,
        Err(e) => d.failures.push(e),
    }
    d.last_set = last;
    d
}

/// `(Conns, InPkts)` of each service row of `-L -n --stats --exact`.
fn service_rows(listing: &str) -> Vec<(String, u64, u64)> {
    listing
        .lines()
        .filter(|l| ["TCP", "UDP", "FWM"].iter().any(|p| l.starts_with(p)))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((
                format!("{} {}", w[0], w[1]),
                w.get(2)?.parse().ok()?,
                w.get(3)?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn rules_swapped_every_10ms_under_load() {
    let prefix = common::file_prefix("swap");
    let dir = common::scratch("run-swap");
    write_pcap(&dir.join("in.pcap"), &traffic());
    write_pcap(&dir.join("arp.pcap"), &arp_replies());
    let cfg = dir.join("pmdlb.toml");
    std::fs::write(&cfg, config(&prefix, &dir)).unwrap();
    let sock = ctl::socket_path(&prefix);
    let mut run = Running::spawn(cfg, prefix, dir);

    // Up, forwarding, and every pool address resolved.
    run.wait_until(Duration::from_secs(20), "forwarding, pool resolved", |r| {
        let servers = r.ctl(&["servers"])?;
        let resolved = POOL
            .iter()
            .all(|&n| servers.contains(&mac_str(&pool_mac(n))));
        let fwd = parse_counters(&r.ctl(&["stats"])?)
            .get("forwarded")
            .copied()
            .unwrap_or(0);
        (resolved && fwd > 0).then_some(())
    });
    let base = admin(&sock, "-S -n", None).expect("-S -n");
    assert!(base.contains(&format!("-A -t {VIP}:8080")), "{base}");
    eprintln!("base set:\n{base}");

    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (sock, base, stop) = (sock.clone(), base.clone(), Arc::clone(&stop));
        std::thread::spawn(move || drive(sock, base, stop))
    };
    // Forwarded, once a second while the driver runs.
    let mut forwarded = Vec::new();
    let t0 = Instant::now();
    while !driver.is_finished() && t0.elapsed() < DRIVE + Duration::from_secs(10) {
        std::thread::sleep(Duration::from_secs(1));
        if let Some(s) = run.ctl(&["stats"]) {
            forwarded.push(parse_counters(&s).get("forwarded").copied().unwrap_or(0));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let d = driver.join().expect("driver thread");
    eprintln!(
        "driver: {} swaps in {} cycles, {} failures, re-created service InPkts samples {:?}",
        d.swaps,
        d.cycles,
        d.failures.len(),
        d.web_samples
    );
    eprintln!("forwarded per second: {forwarded:?}");

    // The last set, as pmdlb saves it, and the service the restore
    // re-created receives packets.
    let last = admin(&sock, "-S -n", None).expect("-S -n");
    let web = run.wait_until(
        Duration::from_secs(5),
        "the re-created service receives packets",
        |_| {
            let l = admin(&sock, &format!("-L -n --stats --exact -t {VIP}:8080"), None).ok()?;
            web_inpkts(&l).filter(|&n| n > 0)
        },
    );
    // Each service got its own traffic: the holder none, the others some
    // (a lookup answering positions instead of the snapshot's ids sent the
    // port-8080 flows to the holder's servers after the first restore).
    let listing = admin(&sock, "-L -n --stats --exact", None).expect("-L -n --stats");
    let rows = service_rows(&listing);
    eprintln!("final listing:\n{listing}");
    let stats = run.ctl(&["stats"]).expect("ctl stats");
    let stopped = run.stop();
    let ctx = stopped.text();

    assert!(d.failures.is_empty(), "failed requests: {:#?}", d.failures);
    assert!(
        d.mismatches.is_empty(),
        "-S -n after restore: {:#?}\nbase:\n{base}",
        d.mismatches
    );
    assert!(d.swaps >= MIN_SWAPS, "only {} swaps in {DRIVE:?}", d.swaps);
    assert_eq!(last, d.last_set, "final -S -n is not the last set");
    assert!(web > 0);
    let row = |name: &str| {
        rows.iter()
            .find(|r| r.0 == name)
            .unwrap_or_else(|| panic!("no {name} in\n{listing}"))
    };
    assert_eq!(row(&format!("UDP {VIP}:9")).2, 0, "{listing}");
    for name in [format!("UDP {VIP}:53"), format!("FWM {MARK}")] {
        assert!(row(&name).2 > 0, "{name}: no packets\n{listing}");
    }
    // Every server the driver added took its MAC from the pool's binding
    // at the swap. (`no_real_server` is not 0: between `-A` and its first
    // `-a` the re-created service has no server, as in IPVS.)
    let c = parse_counters(&stats);
    assert_eq!(c.get("no_mac"), Some(&0), "{stats}");
    assert!(
        c.get("drop.no_service").copied().unwrap_or(0) > 0,
        "{stats}"
    );
    assert!(
        d.web_samples.iter().filter(|&&n| n > 0).count() * 2 >= d.web_samples.len()
            && !d.web_samples.is_empty(),
        "the re-created service got no packets mid-run: {:?}",
        d.web_samples
    );
    let rising = forwarded.windows(2).filter(|w| w[1] > w[0]).count();
    assert!(
        forwarded.len() >= 20 && rising + 1 >= forwarded.len(),
        "forwarded did not keep rising: {forwarded:?}"
    );

    assert_eq!(stopped.status.code(), Some(0), "{ctx}");
    let counters = parse_counters(&stopped.stdout);
    let rx = counters.get("rx").copied().unwrap_or(0);
    assert!(rx > 0, "{ctx}");
    assert!(counters.get("forwarded").copied().unwrap_or(0) > 0, "{ctx}");
    assert!(
        stopped
            .stdout
            .contains(&format!("accounting: rx={rx} unaccounted=0")),
        "{ctx}"
    );
    assert!(
        stopped
            .stdout
            .lines()
            .any(|l| l.starts_with("mbufs: all ") && l.ends_with(" back in the pool")),
        "mbufs not all back in the pool\n{ctx}"
    );
    assert!(stopped.stdout.contains("pmdlb: stopped cleanly"), "{ctx}");
    assert!(!stopped.stderr.contains("panic"), "{ctx}");
}
