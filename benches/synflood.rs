//! SYN-flood demonstration (not a criterion bench, not a test): the real
//! `WorkerState` behind the real burst decision (`decide_burst`, parse →
//! service lookup → connection table → DR rewrite), one worker, a table of
//! 1,048,576 entries, 10,000 established TCP clients, then 10,000,000 SYNs
//! from distinct spoofed sources interleaved with the established clients'
//! packets (one burst of 32 established-client ACKs after every 10 bursts
//! of 32 spoofed SYNs) and a few real new clients (a SYN, then its ACK
//! 100 bursts later).
//!
//! Checked, not assumed: every established-client packet, before, during
//! and after the flood, is forwarded to the server it was given at its SYN
//! (a mismatch or a drop is counted and fails the run), and every
//! established flow's entry is looked up once more at the end.
//!
//! Measured in the same run, on the same core: the established clients'
//! forwarding rate without the flood (phase A: their bursts back to back),
//! under the flood (phase B: only the time spent in their bursts, each
//! timed with `Instant`, ≈1 ns per packet), and after it (phase C: the
//! table full of flood entries); the flood rate; resident memory (VmRSS)
//! before the table, after it is allocated, after the flood, and the peak.
//!
//! Time is simulated: the clock advances so the flood arrives at 1 M SYN/s
//! (10 s for 10 M SYNs), and the worker's slow job (`sweep(64)`) runs every
//! 64 bursts, as in `dataplane::worker`.
//!
//! `cargo bench --bench synflood [-- --mode auto|off|always|all]
//! [--syns N] [--table N] [--flows N] [--rate SYN_PER_S]`; default
//! `--mode all` runs the defences `auto` then `off`.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use etherparse::PacketBuilder;
use pmdlb::dataplane::decide::{decide_burst, DecideCtx};
use pmdlb::dataplane::rewrite::TxVlan;
use pmdlb::dataplane::verdict::{DropReason, Verdict};
use pmdlb::lb::flow::FlowState;
use pmdlb::lb::persist::PersistTable;
use pmdlb::lb::service::ServiceTable;
use pmdlb::lb::snapshot::Snapshot;
use pmdlb::lb::spec::{
    DefenceMode, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec, StateFlags,
    Timeouts, VipSpec,
};
use pmdlb::lb::state::{StateConfig, WorkerState};
use pmdlb::lb::types::{Addr, Family, FlowKey};
use pmdlb::wire::ethernet::MacAddr;

const BURST: usize = 32;
const FRAME: usize = 60;
const RX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const TX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const VIP: [u8; 4] = [10, 0, 0, 100];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
/// Flood bursts per established-client burst.
const FLOOD_PER_EST: usize = 10;
/// Bursts between a real new client's SYN and its ACK.
const LEGIT_DELAY: usize = 100;
/// Bursts between slow jobs, and buckets per sweep (the worker's defaults).
const SLOW_EVERY: u64 = 64;
const SWEEP_BUCKETS: usize = 64;

struct Args {
    modes: Vec<DefenceMode>,
    syns: u64,
    table: usize,
    flows: u32,
    rate: u64,
}

fn args() -> Args {
    let mut a = Args {
        modes: vec![DefenceMode::Auto, DefenceMode::Off],
        syns: 10_000_000,
        table: 1 << 20,
        flows: 10_000,
        rate: 1_000_000,
    };
    let v: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < v.len() {
        let val = v.get(i + 1).cloned().unwrap_or_default();
        match v[i].as_str() {
            "--mode" => {
                a.modes = match val.as_str() {
                    "all" => vec![DefenceMode::Auto, DefenceMode::Off],
                    m => vec![m.parse().expect("--mode auto|off|always|all")],
                };
                i += 1;
            }
            "--syns" => {
                a.syns = val.parse().expect("--syns N");
                i += 1;
            }
            "--table" => {
                a.table = val.parse().expect("--table N");
                i += 1;
            }
            "--flows" => {
                a.flows = val.parse().expect("--flows N");
                i += 1;
            }
            "--rate" => {
                a.rate = val.parse().expect("--rate SYN_PER_S");
                i += 1;
            }
            _ => {} // cargo bench passes --bench
        }
        i += 1;
    }
    a
}

/// VmRSS and VmHWM of this process, KiB.
fn rss_kib() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

struct Fixture {
    services: ServiceTable,
    state: WorkerState,
    ctx: DecideCtx,
}

fn fixture(table: usize, mode: DefenceMode) -> Fixture {
    let servers: Vec<RealServerSpec> = (0..8u8)
        .map(|i| RealServerSpec {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 10 + i)),
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            mac: Some(MacAddr([2, 0, 0, 0, 1, 10 + i])),
            forward: Default::default(),
            via: None,
        })
        .collect();
    let vip = IpAddr::V4(VIP.into());
    let s = vec![ServiceSpec {
        ops: false,
        addr: ServiceAddr::Addr {
            proto: 6,
            vip,
            port: 80,
        },
        scheduler: SchedulerKind::Wlc,
        sched_flags: SchedFlags::default(),
        persistence: None,
        servers,
    }];
    let v = vec![VipSpec {
        addr: vip,
        answer_arp: true,
        answer_ping: true,
    }];
    let services = ServiceTable::new(&s, &[], &v).expect("services");
    let snap = Arc::new(Snapshot::new(&s));
    let persist = Arc::new(PersistTable::new(1024, 8, 11));
    let state = WorkerState::new(
        snap,
        persist,
        StateConfig {
            conn_capacity: table,
            timeouts: Timeouts::default(),
            flags: StateFlags {
                drop_entry: mode,
                secure_tcp: mode,
                ..StateFlags::default()
            },
            seed: 0x5eed,
        },
    );
    Fixture {
        services,
        state,
        ctx: DecideCtx {
            rx_mac: MacAddr(RX_MAC),
            tx_mac: MacAddr(TX_MAC),
            tx_vlan: TxVlan::Keep,
            tunnel_mtu: 1500,
        },
    }
}

/// A burst buffer of 32 TCP frames to VIP:80 from a placeholder client.
fn template() -> (Vec<[u8; FRAME]>, u16) {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 9, 9], RX_MAC)
        .ipv4([10, 1, 0, 0], VIP, 64)
        .tcp(40000, 80, 1, 64240)
        .write(&mut v, &[0u8; FRAME - 54])
        .expect("frame");
    let mut f = [0u8; FRAME];
    f.copy_from_slice(&v);
    let base = u16::from_be_bytes([f[24], f[25]]);
    (vec![f; BURST], base)
}

/// Writes a client (address, port) and TCP flags into a frame: destination
/// MAC back, IPv4 header checksum recomputed incrementally from the
/// template's (source 10.1.0.0). The TCP checksum is left stale: DR
/// forwards the segment unchanged and pmdlb does not check it.
#[inline(always)]
fn patch(f: &mut [u8; FRAME], ip: u32, port: u16, flags: u8, base_sum: u16) {
    f[0..6].copy_from_slice(&RX_MAC);
    f[26..30].copy_from_slice(&ip.to_be_bytes());
    let old = 0x0a01u32;
    let new = (ip >> 16) + (ip & 0xffff);
    let mut s = u32::from(!base_sum) + (!old & 0xffff) + new;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    f[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
    f[34..36].copy_from_slice(&port.to_be_bytes());
    f[47] = flags;
}

fn run_burst(fx: &mut Fixture, frames: &mut [[u8; FRAME]], out: &mut [Verdict; BURST]) {
    let mut refs: [&mut [u8]; BURST] = Default::default();
    for (r, f) in refs.iter_mut().zip(frames.iter_mut()) {
        *r = &mut f[..];
    }
    decide_burst(&mut refs, out, &fx.ctx, &fx.services, &mut fx.state);
}

/// Established client `i`: 10.16.0.0 + i, port 40000.
fn est_ip(i: u32) -> u32 {
    0x0a10_0000 + i
}

/// A real new client `i`: 10.32.0.0 + i, port 50000.
fn legit_ip(i: u32) -> u32 {
    0x0a20_0000 + i
}

/// Spoofed source `i`: a bijective mix of `i` spread over 100.64.0.0/12
/// (address) × 4096 ports, so 10 M SYNs are 10 M distinct flows.
fn spoofed(i: u32) -> (u32, u16) {
    let mut m = i.wrapping_mul(0x9e37_79b1);
    m ^= m >> 15;
    m = m.wrapping_mul(0x85eb_ca6b);
    m ^= m >> 13;
    (0x6440_0000 + (m >> 12), 1024 + (m & 0xfff) as u16)
}

fn flow(ip: u32, port: u16) -> FlowKey {
    FlowKey::new(
        Family::V4,
        6,
        Addr::v4(ip.to_be_bytes()),
        port,
        Addr::v4(VIP),
        80,
    )
}

/// Mpps of bursts of 32 from their timings: the median burst (robust to
/// the preemptions of a shared machine) and the mean.
fn rates(samples: &mut [u32]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort_unstable();
    let median = f64::from(samples[samples.len() / 2]).max(1.0);
    let total: u64 = samples.iter().map(|&n| u64::from(n)).sum();
    let per = |ns: f64| BURST as f64 / ns * 1e3;
    (per(median), per(total as f64 / samples.len() as f64))
}

/// What the established clients' packets met.
#[derive(Default)]
struct EstCheck {
    packets: u64,
    samples: Vec<u32>,
    wrong_server: u64,
    not_forwarded: u64,
}

impl EstCheck {
    /// (median, mean) Mpps.
    fn mpps(&mut self) -> (f64, f64) {
        rates(&mut self.samples)
    }
}

/// One burst of 32 ACKs from established clients (`cursor` walks them in a
/// pseudo-random order), timed and checked against their servers.
fn est_burst(
    fx: &mut Fixture,
    frames: &mut [[u8; FRAME]],
    base: u16,
    servers: &[MacAddr],
    cursor: &mut u32,
    check: &mut EstCheck,
) {
    let n = servers.len() as u32;
    let mut who = [0u32; BURST];
    for (f, w) in frames.iter_mut().zip(who.iter_mut()) {
        *cursor = cursor.wrapping_add(1);
        *w = cursor.wrapping_mul(0x9e37_79b1) % n;
        patch(f, est_ip(*w), 40000, ACK, base);
    }
    let mut out = [Verdict::Neighbour; BURST];
    let t0 = Instant::now();
    run_burst(fx, frames, &mut out);
    let ns = t0.elapsed().as_nanos();
    check.samples.push(u32::try_from(ns).unwrap_or(u32::MAX));
    check.packets += BURST as u64;
    for (v, &w) in out.iter().zip(who.iter()) {
        match v {
            Verdict::Forward { target, .. } => {
                if target.mac != servers[w as usize] {
                    check.wrong_server += 1;
                }
            }
            _ => check.not_forwarded += 1,
        }
    }
}

fn run(a: &Args, mode: DefenceMode) -> bool {
    println!("== defences {mode} (drop_entry and secure_tcp), table {} entries, {} established clients, {} spoofed SYNs at a simulated {} SYN/s", a.table, a.flows, a.syns, a.rate);
    // The harness's own timing arrays, touched now so that they do not show
    // up as growth later.
    let est_bursts = a.syns.div_ceil((BURST * FLOOD_PER_EST) as u64 - 1).max(1) as usize;
    let touched = |n: usize| {
        // (not zeros: a zeroed allocation is mapped lazily)
        let mut v = vec![u32::MAX; n + 16];
        v.clear();
        v
    };
    let mut before = EstCheck {
        samples: touched(est_bursts),
        ..EstCheck::default()
    };
    let mut during = EstCheck {
        samples: touched(est_bursts),
        ..EstCheck::default()
    };
    let mut after = EstCheck {
        samples: touched(est_bursts),
        ..EstCheck::default()
    };
    let mut flood_samples = touched(est_bursts * FLOOD_PER_EST);
    let (rss_start, _) = rss_kib();
    let mut fx = fixture(a.table, mode);
    let (rss_table, _) = rss_kib();
    let (mut frames, base) = template();
    let mut out = [Verdict::Neighbour; BURST];

    // Establish the clients: a SYN, then an ACK; remember their servers.
    let mut servers: Vec<MacAddr> = Vec::with_capacity(a.flows as usize);
    let mut i = 0u32;
    while i < a.flows {
        let n = (a.flows - i).min(BURST as u32) as usize;
        for flags in [SYN, ACK] {
            for (k, f) in frames[..n].iter_mut().enumerate() {
                patch(f, est_ip(i + k as u32), 40000, flags, base);
            }
            let mut refs: Vec<&mut [u8]> = frames[..n].iter_mut().map(|f| &mut f[..]).collect();
            decide_burst(
                &mut refs,
                &mut out[..n],
                &fx.ctx,
                &fx.services,
                &mut fx.state,
            );
            for (k, v) in out[..n].iter().enumerate() {
                let Verdict::Forward { target, .. } = v else {
                    panic!("setup: client {} not forwarded: {v:?}", i + k as u32);
                };
                if flags == SYN {
                    servers.push(target.mac);
                } else {
                    assert_eq!(target.mac, servers[(i as usize) + k], "setup ACK");
                }
            }
        }
        i += n as u32;
    }
    let mut cursor = 0u32;

    // Phase A: the established clients alone.
    for _ in 0..est_bursts {
        est_burst(
            &mut fx,
            &mut frames,
            base,
            &servers,
            &mut cursor,
            &mut before,
        );
    }

    // Phase B: the flood, with the established clients and a few real
    // new clients in between.
    let ms_per_burst = BURST as f64 * 1000.0 / a.rate as f64;
    let mut sim_ms = 0.0f64;
    let mut flood_fwd = 0u64;
    let mut flood_refused = 0u64;
    let mut flood_other = 0u64;
    let mut spoof = 0u32;
    // real new clients: (index, server their SYN went to, had an entry)
    let mut pending: std::collections::VecDeque<(u32, usize, MacAddr, bool)> = Default::default();
    let (mut legit, mut legit_entry, mut legit_ok, mut legit_bad) = (0u32, 0u64, 0u64, 0u64);
    let t_flood = Instant::now();
    let mut b = 0usize;
    while u64::from(spoof) < a.syns {
        sim_ms += ms_per_burst;
        fx.state.set_now(sim_ms as u64);
        // A real client's ACK, due now, or a new real client's SYN, takes
        // the first slot of every 10th flood burst.
        let mut legit_slot = None;
        if b % FLOOD_PER_EST == 0 {
            if pending.front().is_some_and(|p| p.1 + LEGIT_DELAY <= b) {
                let p = pending.pop_front().unwrap();
                patch(&mut frames[0], legit_ip(p.0), 50000, ACK, base);
                legit_slot = Some((p.0, Some(p.2)));
            } else {
                patch(&mut frames[0], legit_ip(legit), 50000, SYN, base);
                legit_slot = Some((legit, None));
                legit += 1;
            }
        }
        let first = usize::from(legit_slot.is_some());
        for f in frames[first..].iter_mut() {
            let (ip, port) = spoofed(spoof);
            spoof = spoof.wrapping_add(1);
            patch(f, ip, port, SYN, base);
        }
        let t0 = Instant::now();
        run_burst(&mut fx, &mut frames, &mut out);
        let ns = t0.elapsed().as_nanos();
        flood_samples.push(u32::try_from(ns).unwrap_or(u32::MAX));
        for v in &out[first..] {
            match v {
                Verdict::Forward { .. } => flood_fwd += 1,
                Verdict::Drop(DropReason::TableFull) => flood_refused += 1,
                _ => flood_other += 1,
            }
        }
        if let Some((who, syn_server)) = legit_slot {
            let got = match out[0] {
                Verdict::Forward { target, .. } => Some(target.mac),
                _ => None,
            };
            match syn_server {
                None => {
                    let entry = fx.state.lookup_conn(&flow(legit_ip(who), 50000)).is_some();
                    legit_entry += u64::from(entry);
                    match got {
                        Some(mac) => pending.push_back((who, b, mac, entry)),
                        None => legit_bad += 1,
                    }
                }
                Some(mac) => {
                    if got == Some(mac) {
                        legit_ok += 1;
                    } else {
                        legit_bad += 1;
                    }
                }
            }
        }
        if b % FLOOD_PER_EST == FLOOD_PER_EST - 1 {
            est_burst(
                &mut fx,
                &mut frames,
                base,
                &servers,
                &mut cursor,
                &mut during,
            );
        }
        if b as u64 % SLOW_EVERY == 0 {
            fx.state.sweep(SWEEP_BUCKETS);
        }
        b += 1;
    }
    let flood_bursts = b as u64;
    let flood_wall = t_flood.elapsed();
    let (rss_flood, _) = rss_kib();

    // Phase C: the established clients alone again, the table full of
    // flood entries.
    for _ in 0..est_bursts {
        est_burst(
            &mut fx,
            &mut frames,
            base,
            &servers,
            &mut cursor,
            &mut after,
        );
    }
    // Every established flow, once more, by lookup.
    let mut lost = 0u64;
    for (i, mac) in servers.iter().enumerate() {
        match fx.state.lookup_conn(&flow(est_ip(i as u32), 40000)) {
            Some(t) if t.mac == *mac => {}
            _ => lost += 1,
        }
    }
    let (rss_end, hwm) = rss_kib();
    let c = *fx.state.counters();

    let flood_pkts = flood_bursts * BURST as u64;
    let (a_med, a_mean) = before.mpps();
    let (b_med, b_mean) = during.mpps();
    let (c_med, c_mean) = after.mpps();
    let (f_med, f_mean) = rates(&mut flood_samples);
    println!(
        "established clients: {} of {} keep their server (lookup after the flood); packets to a wrong server {}, not forwarded {}",
        a.flows as u64 - lost,
        a.flows,
        before.wrong_server + during.wrong_server + after.wrong_server,
        before.not_forwarded + during.not_forwarded + after.not_forwarded
    );
    println!(
        "established forwarding, Mpps (median burst / mean): A no flood {a_med:.2} / {a_mean:.2}  B under flood {b_med:.2} / {b_mean:.2}  C after {c_med:.2} / {c_mean:.2}  (B/A {:.2} / {:.2}, C/A {:.2} / {:.2}; {} packets each)",
        b_med / a_med,
        b_mean / a_mean,
        c_med / a_med,
        c_mean / a_mean,
        during.packets
    );
    println!(
        "flood: {} SYNs in {:.2} s wall ({f_med:.2} / {f_mean:.2} Mpps median / mean in their bursts, {:.2} Mpps all packets of phase B incl. harness), {} forwarded, {} refused, {} other drops; simulated {:.1} s",
        spoof,
        flood_wall.as_secs_f64(),
        (flood_pkts + during.packets) as f64 / flood_wall.as_nanos().max(1) as f64 * 1e3,
        flood_fwd,
        flood_refused,
        flood_other,
        sim_ms / 1000.0
    );
    println!(
        "real new clients during the flood: {} SYNs, {} got an entry; {} ACKs went to the SYN's server, {} did not, {} still due",
        legit,
        legit_entry,
        legit_ok,
        legit_bad,
        pending.len()
    );
    println!(
        "memory VmRSS MiB: start {:.1}  table allocated {:.1}  after flood {:.1}  end {:.1}  peak {:.1}",
        mib(rss_start),
        mib(rss_table),
        mib(rss_flood),
        mib(rss_end),
        mib(hwm)
    );
    println!(
        "table: {} entries of {}, under pressure {}; counters: created {} expired {} reclaimed {} syn_recv_expired_early {} refused {} table_full {} pressure_episodes {}",
        fx.state.conn_count(),
        a.table,
        fx.state.under_pressure(),
        c.conn_created,
        c.conn_expired,
        c.conn_reclaimed,
        c.syn_recv_expired_early,
        c.conn_refused,
        c.conn_table_full,
        c.pressure_episodes
    );
    let wrong = before.wrong_server + during.wrong_server + after.wrong_server;
    let dropped = before.not_forwarded + during.not_forwarded + after.not_forwarded;
    lost == 0 && wrong == 0 && dropped == 0
}

fn main() {
    let a = args();
    let mut all_ok = true;
    for &mode in &a.modes {
        all_ok &= run(&a, mode);
    }
    assert!(all_ok, "an established client lost its server");
}
