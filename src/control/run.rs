//! `pmdlb run`: brings up EAL, the mbuf pool and the ports, builds the
//! service tables and the state layer, launches one pinned worker per
//! worker lcore, and runs the control plane on the main lcore — neighbour
//! resolution, gratuitous ARP, runtime commands and statistics — until
//! SIGINT/SIGTERM (or `pmdlb ctl stop`). Then the workers finish their burst
//! and drain their TX buffers, final statistics are printed, ports are
//! stopped and closed, EAL is cleaned up and the process's hugepage files are
//! removed.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::config::Config;
use crate::control::ctl::{socket_path, Answer, Command, CtlServer};
use crate::control::health::{runner::HealthError, Effects, Runner};
use crate::control::layout::{self, LayoutError};
use crate::control::neigh::Resolver;
use crate::control::stats::{compact_line, full_table, total};
use crate::control::summary::{service_line, service_name};
use crate::control::telemetry;
use crate::control::watch::{Gauges, Watch};
use crate::dataplane::counters::{Published, WorkerStats};
use crate::dataplane::decide::DecideCtx;
use crate::dataplane::neighbour::{gratuitous_arp, unsolicited_na};
use crate::dataplane::rewrite::TxVlan;
use crate::dataplane::traffic::PublishedTraffic;
use crate::dataplane::worker::{ControlTx, TunnelSrc, Worker};
use crate::dpdk::{
    self, Eal, Mbuf, MbufRing, Mempool, Pdump, Port, PortBuilder, PortId, QueueId, RingSync,
    RxBurst,
};
use crate::lb::persist::PersistTable;
use crate::lb::realserver::Snapshot;
use crate::lb::service::ServiceTable;
use crate::lb::spec::{ServiceAddr, ServiceSpec};
use crate::lb::state::{StateConfig, WorkerState};
use crate::lb::types::RsId;

/// Data room of each mbuf (headroom included): DPDK's default.
pub const MBUF_DATA_ROOM: u16 = 2176;
/// Shards of the persistence table.
pub const PERSIST_SHARDS: usize = 64;
/// Slots of the worker → control-plane ring.
pub const CONTROL_RING: u32 = 1024;

/// Errors that stop `pmdlb run`.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A DPDK call failed.
    #[error(transparent)]
    Dpdk(#[from] dpdk::DpdkError),
    /// The NICs cannot carry the queue layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// The service table could not be built.
    #[error("service table: {0}")]
    Services(String),
    /// Not enough worker lcores.
    #[error("{wanted} workers configured but EAL has {have} worker lcores; widen the core list or lower workers.count")]
    Lcores {
        /// Workers configured.
        wanted: usize,
        /// Worker lcores EAL knows.
        have: usize,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The control socket could not be bound.
    #[error("control socket {path}: {err}")]
    Ctl {
        /// The socket path.
        path: String,
        /// Why.
        err: std::io::Error,
    },
    /// The metrics listener could not start.
    #[error(transparent)]
    Metrics(#[from] crate::control::http::HttpError),
    /// The health checks could not start.
    #[error(transparent)]
    Health(#[from] HealthError),
    /// A worker stopped by itself (panic).
    #[error("{0}")]
    Worker(String),
}

/// Options from the command line.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Extra EAL arguments (after `--`).
    pub extra_eal: Vec<String>,
    /// Statistics interval override (seconds, 0 = off).
    pub stats_interval_s: Option<u32>,
}

/// Removes EAL's runtime directory and hugepage files of `prefix`.
pub fn remove_eal_files(prefix: &str) {
    let _ = std::fs::remove_dir_all(std::path::Path::new("/var/run/dpdk").join(prefix));
    if let Ok(dir) = std::fs::read_dir("/dev/hugepages") {
        for e in dir.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(&format!("{prefix}map_")) || name.starts_with(&format!("{prefix}_"))
            {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Sets a flag when dropped: tells the control plane a worker has ended,
/// whether it returned or panicked.
struct DoneGuard(Arc<AtomicBool>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The `ipvsadm -Ln`-like server table, with each server's health.
/// `specs` are the services the snapshot was built from (same order).
pub fn servers_table(snap: &Snapshot, specs: &[ServiceSpec], health: &Effects) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:<7} {:>6} {:>9} {:>9}  mac{}",
        "service / real server",
        "forward",
        "weight",
        "active",
        "inactive",
        if health.any() { "  health" } else { "" }
    );
    for (svc, spec) in snap.services().iter().zip(specs) {
        let _ = writeln!(out, "{}", service_line(spec));
        for (k, rs) in snap.servers_of(svc).iter().enumerate() {
            let _ = writeln!(
                out,
                "  -> {:<29} {:<7} {:>6} {:>9} {:>9}  {}{}{}",
                rs.addr,
                rs.forward.ipvsadm_name(),
                rs.weight(),
                rs.active(),
                rs.inactive(),
                rs.mac()
                    .map_or_else(|| "unresolved".to_owned(), |m| m.to_string()),
                if rs.is_removed() { " removed" } else { "" },
                health.columns(RsId(svc.first + k as u32))
            );
        }
    }
    out
}

fn find_servers(snap: &Snapshot, svc: &ServiceAddr, server: IpAddr) -> Vec<RsId> {
    let mut out = Vec::new();
    for s in snap.services() {
        if &s.addr != svc {
            continue;
        }
        for i in s.first..s.first + s.count {
            if snap.server(RsId(i)).is_some_and(|r| r.addr == server) {
                out.push(RsId(i));
            }
        }
    }
    out
}

/// Starts everything and runs until stopped. Returns after a clean stop.
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<(), RunError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(RunError::Signals)?;
    }
    let prefix = cfg.eal().file_prefix.clone();
    let mut eal_started = false;
    let result = run_inner(cfg, opts, &stop, &mut eal_started);
    // Only our own files: when EAL failed to start (for instance because
    // another pmdlb holds this prefix), they belong to someone else.
    if eal_started {
        remove_eal_files(&prefix);
    }
    result
}

fn run_inner(
    cfg: &Config,
    opts: &RunOptions,
    stop: &Arc<AtomicBool>,
    eal_started: &mut bool,
) -> Result<(), RunError> {
    let args = cfg.eal_args(&opts.extra_eal);
    println!("pmdlb: EAL {}", args[1..].join(" "));
    let eal = Eal::init(&args)?;
    *eal_started = true;
    // Declared right after EAL: dropped after the ports, before EAL.
    let pdump = cfg.eal().pdump.then(|| Pdump::init(&eal)).transpose()?;
    let ctl_path = socket_path(&cfg.eal().file_prefix);
    let ctl = CtlServer::bind(&ctl_path).map_err(|err| RunError::Ctl {
        path: ctl_path.display().to_string(),
        err,
    })?;

    let lcores = eal.worker_lcores();
    let nworkers = usize::from(cfg.workers().count);
    if lcores.len() < nworkers || nworkers == 0 {
        return Err(RunError::Lcores {
            wanted: nworkers,
            have: lcores.len(),
        });
    }
    let ps = cfg.ports();
    let pool = Mempool::new("pmdlb_mbufs", ps.mbufs, ps.mbuf_cache, MBUF_DATA_ROOM, -1)?;

    // Queue layout (control::layout): the RX NIC has one RX and one TX
    // queue per worker; a separate TX NIC has one TX queue per worker and
    // the RX queues the control plane reads for neighbour answers. The
    // control plane sends its own frames through worker 0.
    let nq = nworkers as u16;
    let rx_b = PortBuilder::new(Port::find(&ps.rx)?)?;
    let rx_q = layout::rx_nic(rx_b.name(), rx_b.info(), nq)?;
    let tx_b = if ps.one_armed() {
        None
    } else {
        let b = PortBuilder::new(Port::find(&ps.tx)?)?;
        let q = layout::tx_nic(b.name(), b.info(), nq)?;
        Some((b, q))
    };
    let rx_id = rx_b.id();
    let mut rx_port = rx_b.configure(&ps.port_config(rx_q), &pool)?;
    let mut tx_port = match tx_b {
        Some((b, q)) => Some(b.configure(&ps.port_config(q), &pool)?),
        None => None,
    };
    rx_port.start()?;
    if let Some(p) = tx_port.as_mut() {
        p.start()?;
    }
    let rx_mac = rx_port.mac()?;
    let tx_id: PortId = tx_port.as_ref().map_or(rx_id, |p| p.id());
    let tx_mac = tx_port.as_ref().map_or(Ok(rx_mac), |p| p.mac())?;
    println!(
        "pmdlb: RX {} ({}) {} rss={} | TX {} {} rxq={} | {} workers on {:?}",
        rx_port.name(),
        rx_port.info().driver,
        rx_mac,
        rx_port.rss_active(),
        tx_port.as_ref().map_or("(same port)", |p| p.name()),
        tx_mac,
        tx_port.as_ref().map_or(0, |p| p.rx_queues()),
        nworkers,
        &lcores[..nworkers]
    );

    let services = Arc::new(
        ServiceTable::new(cfg.services(), cfg.marks(), cfg.vips())
            .map_err(|e| RunError::Services(e.to_string()))?,
    );
    let snap = Arc::new(Snapshot::with_mh_size(cfg.services(), cfg.tables().mh_size));
    // Before any worker runs: alpha servers start out of service.
    let mut health = Effects::new(&snap, cfg.health(), cfg.quorums());
    let persist = Arc::new(PersistTable::new(
        cfg.tables().persistence as usize,
        PERSIST_SHARDS,
        crate::sys::rdtsc() | 1,
    ));
    let ctx = DecideCtx {
        rx_mac,
        tx_mac,
        tx_vlan: ps.tx_vlan,
        tunnel_mtu: ps.tx_mtu(),
    };
    let tunnel_src = TunnelSrc {
        v4: ps.tunnel_src4().map(|a| a.octets()),
        v6: ps.tunnel_src6().map(|a| a.octets()),
    };
    let to_control = Arc::new(MbufRing::new("pmdlb_to_ctl", CONTROL_RING, RingSync::Mpsc)?);
    let control_tx = Arc::new(ControlTx {
        to_tx_port: MbufRing::new("pmdlb_ctl_tx", 256, RingSync::Spsc)?,
        to_rx_port: MbufRing::new("pmdlb_ctl_rx", 256, RingSync::Spsc)?,
    });

    let hz = dpdk::tsc_hz().max(1);
    let w = cfg.workers();
    let mut published = Vec::new();
    let mut traffic = Vec::new();
    let mut done_flags = Vec::new();
    let mut jobs = Vec::new();
    let worker_stop = Arc::new(AtomicBool::new(false));
    for (i, &lcore) in lcores.iter().take(nworkers).enumerate() {
        let pubd = Arc::new(Published::default());
        let tpub = Arc::new(PublishedTraffic::new(snap.servers().len()));
        let done = Arc::new(AtomicBool::new(false));
        let state = WorkerState::new(
            Arc::clone(&snap),
            Arc::clone(&persist),
            StateConfig {
                conn_capacity: cfg.tables().connections as usize,
                timeouts: cfg.timeouts(),
                flags: cfg.state_flags(),
                seed: crate::sys::rdtsc().rotate_left(17 * i as u32 + 5) | 1,
            },
        );
        let worker = Worker {
            index: i as u16,
            rx_port: rx_id,
            tx_port: tx_id,
            burst: usize::from(w.burst),
            drain_cycles: hz / 1_000_000 * u64::from(w.drain_us),
            cycles_per_ms: hz / 1000,
            sweep_buckets: w.sweep_per_loop as usize,
            ctx,
            tunnel_src,
            services: Arc::clone(&services),
            state,
            to_control: Arc::clone(&to_control),
            control_tx: (i == 0).then(|| Arc::clone(&control_tx)),
            published: Arc::clone(&pubd),
            traffic: Arc::clone(&tpub),
            stop: Arc::clone(&worker_stop),
        };
        let guard_flag = Arc::clone(&done);
        jobs.push(dpdk::launch(lcore, move || {
            let _guard = DoneGuard(guard_flag);
            worker.run();
        })?);
        published.push(pubd);
        traffic.push(tpub);
        done_flags.push(done);
    }

    if cfg.eal().telemetry {
        telemetry::register(telemetry::Watched {
            published: published.clone(),
            snap: Arc::clone(&snap),
            specs: cfg.services().to_vec(),
            rx_port: rx_port.name().to_owned(),
            tx_port: tx_port
                .as_ref()
                .map_or(rx_port.name(), |p| p.name())
                .to_owned(),
            file_prefix: cfg.eal().file_prefix.clone(),
            pdump: pdump.is_some(),
        })?;
    }

    // Control plane.
    let nb = cfg.neighbours();
    let tx_tag = match ps.tx_vlan {
        TxVlan::Set(v) => Some(v),
        _ => None,
    };
    let mut resolver = Resolver::new(
        &snap,
        tx_mac,
        ps.tx_addr,
        ps.tx_addr6,
        tx_tag,
        Duration::from_millis(u64::from(nb.retry_ms)),
        Duration::from_secs(u64::from(nb.refresh_s)),
    );
    let interval = Duration::from_secs(u64::from(
        opts.stats_interval_s.unwrap_or(w.stats_interval_s),
    ));
    let started = Instant::now();
    let mut watch = Watch::start(cfg.metrics().listen, &snap, traffic, started)?;
    if let Some(a) = watch.listening() {
        println!("pmdlb: metrics at http://{a}/metrics");
    }
    // The checks run on their own threads; their results arrive each tick.
    let checks = Runner::start(cfg.health())?;
    let mut last_stats = Instant::now();
    let mut prev = WorkerStats::default();
    let mut garp_rounds = 0u32;
    let mut last_garp = Instant::now() - Duration::from_secs(10);
    let mut ctl_stop = false;
    let mut worker_failed = None;
    let mut ctl_burst = RxBurst::default();
    let mut buf = [0u8; 128];

    let send = |ring: &MbufRing, frame: &[u8]| -> bool {
        let Some(mut m) = pool.alloc() else {
            return false;
        };
        // Pad to the 60-byte Ethernet minimum.
        let len = frame.len().max(60);
        if !m.append(len as u16) {
            return false;
        }
        let d = m.data_mut();
        d[..frame.len()].copy_from_slice(frame);
        d[frame.len()..].fill(0);
        ring.enqueue(m).is_ok()
    };

    println!("pmdlb: running; control socket {}", ctl_path.display());
    while !stop.load(Ordering::Relaxed) && !ctl_stop {
        let now = Instant::now();
        // Announce the VIPs: at start and twice more, a second apart.
        if nb.gratuitous_arp
            && garp_rounds < 3
            && now.duration_since(last_garp) >= Duration::from_secs(1)
        {
            for v in cfg.vips().iter().filter(|v| v.answer_arp) {
                let n = match v.addr {
                    IpAddr::V4(a) => gratuitous_arp(&mut buf, rx_mac, a.octets(), None),
                    IpAddr::V6(a) => unsolicited_na(&mut buf, rx_mac, a.octets(), None),
                };
                if let Some(n) = n {
                    send(&control_tx.to_rx_port, &buf[..n]);
                }
            }
            garp_rounds += 1;
            last_garp = now;
        }
        while let Some(n) = resolver.next_request(now, &mut buf) {
            send(&control_tx.to_tx_port, &buf[..n]);
        }
        // Neighbour answers: from the workers, and from the TX NIC's queue.
        to_control.drain(|m: Mbuf| {
            resolver.on_frame(m.data(), &snap, now);
        });
        if let Some(p) = &tx_port {
            for q in 0..p.rx_queues() {
                let n = ctl_burst.receive(p.id(), QueueId(q), 32);
                for i in 0..n {
                    if let Some(f) = ctl_burst.data_mut(i) {
                        resolver.on_frame(f, &snap, now);
                    }
                }
                ctl_burst.clear();
            }
        }
        let mut handle = |c: Command| -> String {
            match c {
                Command::Stop => {
                    ctl_stop = true;
                    "stopping\n".into()
                }
                Command::Stats => {
                    let per: Vec<WorkerStats> = published.iter().map(|p| p.read()).collect();
                    format!(
                        "{}persistence templates live: {}\n{}\n{}\n{}",
                        full_table(&per),
                        persist.live(crate::sys::rdtsc() / (hz / 1000).max(1)),
                        servers_table(&snap, cfg.services(), &health),
                        watch.stats_table(false),
                        watch.rate_table()
                    )
                }
                Command::Servers => servers_table(&snap, cfg.services(), &health),
                Command::ServerStats { exact } => watch.stats_table(exact),
                Command::ServerRates => watch.rate_table(),
                Command::Weight {
                    service,
                    server,
                    weight,
                } => {
                    let ids = find_servers(&snap, &service, server);
                    if ids.is_empty() {
                        return format!(
                            "error: no real server {server} in service {}\n",
                            service_name(&service)
                        );
                    }
                    if weight > 65535 {
                        return "error: weight must be 0..=65535\n".into();
                    }
                    let mut held = false;
                    for id in &ids {
                        health.set_admin_weight(&snap, *id, weight);
                        held |= snap.server(*id).is_some_and(|s| s.weight() != weight);
                    }
                    format!(
                        "ok: {} {server} weight {weight}{}\n",
                        service_name(&service),
                        if held {
                            " (now 0: health checks failing or quorum lost; set when it is back)"
                        } else {
                            ""
                        }
                    )
                }
                Command::Remove { service, server } => {
                    let ids = find_servers(&snap, &service, server);
                    if ids.is_empty() {
                        return format!(
                            "error: no real server {server} in service {}\n",
                            service_name(&service)
                        );
                    }
                    for id in &ids {
                        snap.remove(*id);
                    }
                    format!("ok: {} {server} removed\n", service_name(&service))
                }
            }
        };
        while let Some(req) = ctl.try_next() {
            let answer = match req.parse_command() {
                Err(a) => a,
                Ok(c) => match handle(c) {
                    e if e.starts_with("error") => Answer { status: 1, body: e },
                    a => Answer::ok(a),
                },
            };
            req.reply(answer);
        }
        if let Some(i) = done_flags.iter().position(|d| d.load(Ordering::Acquire)) {
            worker_failed = Some(i);
            break;
        }
        if let Some(r) = &checks {
            r.drain(|ev| health.on_event(&snap, ev));
        }
        watch.tick(now, &published, || Gauges {
            conn_capacity: u64::from(cfg.tables().connections),
            templates: persist.live(crate::sys::rdtsc() / (hz / 1000).max(1)) as u64,
            template_capacity: persist.capacity() as u64,
            mbufs_in_use: u64::from(pool.in_use()),
            mbufs: u64::from(pool.size()),
            stale: resolver.stale(now),
            health: health.samples(),
        });
        if !interval.is_zero() && now.duration_since(last_stats) >= interval {
            let per: Vec<WorkerStats> = published.iter().map(|p| p.read()).collect();
            let t = total(&per);
            let secs = now.duration_since(last_stats).as_secs_f64();
            let extra = format!(
                " templates={} rs_unresolved={} rs_stale={} rs_down={}",
                persist.live(crate::sys::rdtsc() / (hz / 1000).max(1)),
                snap.servers_without_mac(),
                resolver.stale(now).len(),
                health.down()
            );
            println!("pmdlb: {}", compact_line(&t, &prev, secs, &extra));
            prev = t;
            last_stats = now;
        }
        std::thread::sleep(Duration::from_millis(1));
    }

    // Stop: workers finish their burst and drain their buffers.
    worker_stop.store(true, Ordering::Relaxed);
    let mut failure = None;
    for (i, j) in jobs.into_iter().enumerate() {
        if let Err(e) = j.wait() {
            eprintln!("pmdlb: worker {i}: {e}");
            failure = Some(e);
        }
    }
    drop(ctl_burst);
    let per: Vec<WorkerStats> = published.iter().map(|p| p.read()).collect();
    let t = total(&per);
    println!(
        "pmdlb: final statistics after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    print!("{}", full_table(&per));
    println!(
        "persistence templates live: {}",
        persist.live(crate::sys::rdtsc() / (hz / 1000).max(1))
    );
    let rs = resolver.stats();
    println!(
        "neighbours: requests={} learned={} changed={} unresolved={} stale={} ignored={} not_neighbour={}",
        rs.requests,
        rs.learned,
        rs.changed,
        resolver.unresolved(),
        resolver.stale(Instant::now()).len(),
        rs.ignored,
        rs.not_neighbour
    );
    drop(checks);
    print!("{}", servers_table(&snap, cfg.services(), &health));
    print!("{}", watch.stats_table(false));
    drop(watch);
    if let Ok(s) = rx_port.stats() {
        println!(
            "port {}: ipackets={} opackets={} imissed={} ierrors={} rx_nombuf={}",
            rx_port.name(),
            s.ipackets,
            s.opackets,
            s.imissed,
            s.ierrors,
            s.rx_nombuf
        );
    }
    if let Some(p) = &tx_port {
        if let Ok(s) = p.stats() {
            println!(
                "port {}: ipackets={} opackets={} oerrors={}",
                p.name(),
                s.ipackets,
                s.opackets,
                s.oerrors
            );
        }
    }
    println!("accounting: rx={} unaccounted={}", t.io.rx, t.unaccounted());

    drop(control_tx);
    drop(to_control);
    drop(tx_port);
    drop(rx_port);
    drop(services);
    let in_use = pool.in_use();
    if in_use != 0 {
        eprintln!("pmdlb: warning: {in_use} mbufs still in use at exit");
    } else {
        println!("mbufs: all {} back in the pool", pool.size());
    }
    drop(pool);
    drop(ctl);
    drop(pdump);
    drop(eal);
    if let Some(e) = failure {
        return Err(RunError::Worker(e));
    }
    if let Some(i) = worker_failed {
        return Err(RunError::Worker(format!("worker {i} stopped unexpectedly")));
    }
    println!("pmdlb: stopped cleanly");
    Ok(())
}
