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
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::admin::client::decode_request;
use crate::control::admin::serve::Handled;
use crate::control::admin::AdminError;
use crate::control::announce::{AnnounceError, Announcer};
use crate::control::bringup::{start_eal, Director, Shared, Via};
use crate::control::config::Config;
use crate::control::ctl::{socket_path, Answer, Command, CtlServer};
use crate::control::current::Current;
use crate::control::health::{runner::HealthError, Effects, Runner};
use crate::control::layout::LayoutError;
use crate::control::neigh::Resolver;
use crate::control::stats::{compact_line, full_table, total};
use crate::control::summary::{service_line, service_name};
use crate::control::sync::{SocketError, SyncDaemon};
use crate::control::telemetry;
use crate::control::watch::{Gauges, Watch};
use crate::dataplane::counters::WorkerStats;
use crate::dataplane::neighbour::{gratuitous_arp, unsolicited_na};
use crate::dataplane::rewrite::TxVlan;
use crate::dpdk;
use crate::lb::persist::PersistTable;
use crate::lb::snapshot::Snapshot;
use crate::lb::spec::{ServiceAddr, ServiceSpec};
use crate::lb::types::RsId;
use crate::wire::ethernet::MacAddr;

mod announce;
mod conns;
mod host;
mod reload;

pub use reload::Reloader;

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
    /// The VIP announcement could not start.
    #[error(transparent)]
    Announce(#[from] AnnounceError),
    /// The sync daemon could not start.
    #[error(transparent)]
    Sync(#[from] SocketError),
    /// A worker stopped by itself (panic).
    #[error("{0}")]
    Worker(String),
    /// `[tables] memory = "dpdk"` and DPDK's heap had no room for a table.
    #[error("tables.memory = \"dpdk\": the {table}: {err}; {advice}, lower tables.connections or tables.persistence, or set tables.memory = \"auto\" to fall back to the process heap")]
    TableMemory {
        /// Which table ("connection table of worker 0").
        table: String,
        /// Where it did not fit.
        err: crate::sys::mem::MemError,
        /// How to make room.
        advice: &'static str,
    },
}

/// Options from the command line.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Extra EAL arguments (after `--`).
    pub extra_eal: Vec<String>,
    /// Statistics interval override (seconds, 0 = off).
    pub stats_interval_s: Option<u32>,
    /// Re-reads the configuration for SIGHUP / `ctl reload` (`None`: the
    /// instance cannot reload).
    pub reload: Option<Reloader>,
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
    for (svc, spec) in snap.services().zip(specs) {
        let _ = writeln!(out, "{}", service_line(spec));
        for rs in snap.servers_of(svc) {
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
                health.columns(rs.id)
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
        for r in s.servers.iter().filter(|r| r.addr == server) {
            out.push(r.id);
        }
    }
    out
}

/// Starts everything and runs until stopped. Returns after a clean stop.
pub fn run(cfg: &Config, opts: &RunOptions) -> Result<(), RunError> {
    // One flag for everyone: SIGINT/SIGTERM and `ctl stop` set it, the
    // workers and the control loop watch it, and the workers' guard sets it
    // on any exit path before joining them.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(RunError::Signals)?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .map_err(RunError::Signals)?;
    let prefix = cfg.eal().file_prefix.clone();
    let mut eal_started = false;
    let result = run_inner(cfg, opts, &stop, &hup, &mut eal_started);
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
    hup: &Arc<AtomicBool>,
    eal_started: &mut bool,
) -> Result<(), RunError> {
    let eal = start_eal(cfg, opts)?;
    *eal_started = true;
    let (director, tables) = Director::start(&eal, cfg, stop)?;
    let mut cp = ControlPlane::new(cfg, opts, stop, director, tables)?;
    cp.hup = Some(Arc::clone(hup));
    println!("pmdlb: running; control socket {}", cp.ctl_path.display());
    let ended = loop {
        if let ControlFlow::Break(why) = cp.tick(Instant::now()) {
            break why;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    cp.finish(ended)
    // EAL is cleaned up here, after everything that used it.
}

/// Why the control loop ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// SIGINT/SIGTERM or `ctl stop`.
    Asked,
    /// This worker's loop ended by itself (it panicked).
    Worker(usize),
}

/// Gratuitous ARP / unsolicited NA for the VIPs: at start and twice more,
/// a second apart.
#[derive(Debug)]
struct Announce {
    rounds: u32,
    last: Instant,
}

/// The periodic statistics line.
#[derive(Debug)]
struct StatsLine {
    interval: Duration,
    last: Instant,
    prev: WorkerStats,
}

/// The control plane on the main lcore: neighbour resolution, VIP
/// announcements, health results, runtime commands, metrics and
/// statistics, one [`tick`](ControlPlane::tick) at a time. It owns the
/// [`Director`] (last field: torn down last) and the one [`Current`] set of
/// tables everything else borrows per call.
pub struct ControlPlane<'a> {
    /// The configuration the instance started with.
    cfg: &'a Config,
    /// What run-time rule sets are checked against and built with: the
    /// starting configuration with the services, marks, VIPs, timeouts and
    /// switches of the last (re)load.
    rules_cfg: Config,
    /// The services of the last loaded file (reload keeps admin changes to
    /// services the file did not change).
    file_specs: Vec<ServiceSpec>,
    reloader: Option<&'a Reloader>,
    /// Set by SIGHUP.
    hup: Option<Arc<AtomicBool>>,
    stop: Arc<AtomicBool>,
    /// The control socket (its own threads; requests arrive each tick).
    ctl: CtlServer,
    ctl_path: std::path::PathBuf,
    /// What the workers forward with now.
    current: Current,
    persist: Arc<PersistTable>,
    health: Effects,
    /// The checks run on their own threads; their results arrive each tick.
    checks: Option<Runner>,
    resolver: Resolver,
    watch: Watch,
    announce: Announce,
    stats: StatsLine,
    started: Instant,
    rx_mac: MacAddr,
    buf: [u8; 128],
    /// `-L -c` requests waiting for the workers' connection dumps.
    listings: conns::Listings,
    /// The VIP routes for BGP (`[announce]`); withdrawn before the
    /// workers stop.
    announcer: Option<Announcer>,
    /// The connection sync daemon (`[sync]`); stopped before the workers.
    sync: Option<SyncDaemon>,
    director: Director<'a>,
}

impl<'a> ControlPlane<'a> {
    /// Starts telemetry, metrics, health checks and the control socket
    /// around a running `director`.
    pub fn new(
        cfg: &'a Config,
        opts: &'a RunOptions,
        stop: &Arc<AtomicBool>,
        mut director: Director<'a>,
        tables: Shared,
    ) -> Result<ControlPlane<'a>, RunError> {
        let Shared {
            current,
            persist,
            health,
        } = tables;
        let ps = cfg.ports();
        if cfg.eal().telemetry {
            telemetry::register(telemetry::Watched {
                published: director.workers.published.clone(),
                live: Arc::clone(&current.live),
                rx_port: director.ports.rx.name().to_owned(),
                tx_port: director.ports.tx_name().to_owned(),
                file_prefix: cfg.eal().file_prefix.clone(),
                pdump: director.pdump(),
                tables: director
                    .workers
                    .tables
                    .iter()
                    .map(|(name, place, bytes)| (name.clone(), place.to_string(), *bytes as u64))
                    .collect(),
            })?;
        }
        let nb = cfg.neighbours();
        let tx_tag = match ps.tx_vlan {
            TxVlan::Set(v) => Some(v),
            _ => None,
        };
        let rx_mac = director.rx_mac()?;
        let resolver = Resolver::new(
            current.snap(),
            director.tx_mac()?,
            ps.tx_addr,
            ps.tx_addr6,
            tx_tag,
            Duration::from_millis(u64::from(nb.retry_ms)),
            Duration::from_secs(u64::from(nb.refresh_s)),
        );
        let started = Instant::now();
        let watch = Watch::start(
            cfg.metrics().listen,
            current.snap(),
            director.workers.traffic.clone(),
            started,
        )?;
        if let Some(a) = watch.listening() {
            println!("pmdlb: metrics at http://{a}/metrics");
        }
        let checks = Runner::start(cfg.health())?;
        let sync = start_sync(cfg, &mut director, &current, &persist)?;
        let announcer = cfg.announce().map(Announcer::start).transpose()?;
        let ctl_path = socket_path(&cfg.eal().file_prefix);
        let ctl = CtlServer::bind(&ctl_path).map_err(|err| RunError::Ctl {
            path: ctl_path.display().to_string(),
            err,
        })?;
        let interval = Duration::from_secs(u64::from(
            opts.stats_interval_s
                .unwrap_or(cfg.workers().stats_interval_s),
        ));
        Ok(ControlPlane {
            cfg,
            rules_cfg: cfg.clone(),
            file_specs: cfg.services().to_vec(),
            reloader: opts.reload.as_ref(),
            hup: None,
            stop: Arc::clone(stop),
            ctl,
            ctl_path,
            current,
            persist,
            health,
            checks,
            resolver,
            watch,
            announce: Announce {
                rounds: 0,
                last: started - Duration::from_secs(10),
            },
            stats: StatsLine {
                interval,
                last: started,
                prev: WorkerStats::default(),
            },
            started,
            rx_mac,
            buf: [0u8; 128],
            listings: conns::Listings::default(),
            announcer,
            sync,
            director,
        })
    }

    /// The workers' clock (TSC milliseconds), for the persistence table.
    fn now_ms(&self) -> u64 {
        workers_now_ms()
    }

    /// `ctl stats`'s sync part: the daemon lines and every counter.
    fn sync_section(&self) -> String {
        self.sync.as_ref().map_or_else(String::new, |d| {
            format!("\nsync:\n{}{}", d.daemon_lines(), d.stats().table())
        })
    }

    /// Whether the sync receiver (if any) has run its announce hold.
    fn sync_ready(&self) -> bool {
        self.sync.as_ref().map_or(true, SyncDaemon::ready)
    }

    /// Persistence templates alive now.
    fn templates(&self) -> usize {
        self.persist.live(self.now_ms())
    }

    /// One round of the control loop; never blocks. Breaks when pmdlb
    /// must stop.
    pub fn tick(&mut self, now: Instant) -> ControlFlow<Ended> {
        if self.stop.load(Ordering::Relaxed) {
            return ControlFlow::Break(Ended::Asked);
        }
        self.announce_vips(now);
        while let Some(n) = self.resolver.next_request(now, &mut self.buf) {
            self.director.send(Via::TxPort, &self.buf[..n]);
        }
        // Neighbour answers: from the workers, and from the TX NIC's queues.
        let (resolver, snap) = (&mut self.resolver, &self.current.snap());
        self.director.neighbour_frames(|f| {
            resolver.on_frame(f, snap, now);
        });
        while let Some(req) = self.ctl.try_next() {
            let answer = match decode_request(req.command()) {
                Some(r) => match self.admin(r) {
                    Handled::Done(r) => admin_answer(r),
                    Handled::NeedsConnections(opts) => {
                        let dumps = &self.director.workers.dumps;
                        self.listings.add(req, opts, dumps, now);
                        continue;
                    }
                },
                None => match req.parse_command() {
                    Ok(c) => self.command(c),
                    Err(a) => a,
                },
            };
            req.reply(answer);
        }
        self.poll_listings(now);
        self.current.collect();
        if self
            .hup
            .as_ref()
            .is_some_and(|h| h.swap(false, Ordering::Relaxed))
        {
            println!("pmdlb: SIGHUP: reloading {}", self.cfg.origin());
            let _ = self.reload();
        }
        if let Some(i) = self.director.workers.ended_on_its_own() {
            return ControlFlow::Break(Ended::Worker(i));
        }
        if let Some(r) = &self.checks {
            let (health, snap) = (&mut self.health, &self.current.snap());
            r.drain(|ev| health.on_event(snap, ev));
        }
        self.announce_tick();
        let announce = self.announcer.as_mut().map(Announcer::sample);
        let templates = self.templates();
        let sync = self.sync.as_ref().map(SyncDaemon::stats);
        let (cfg, persist, director, resolver, health) = (
            self.cfg,
            &self.persist,
            &self.director,
            &self.resolver,
            &self.health,
        );
        self.watch
            .tick(now, &director.workers.published, || Gauges {
                conn_capacity: u64::from(cfg.tables().connections),
                templates: templates as u64,
                template_capacity: persist.capacity() as u64,
                mbufs_in_use: u64::from(director.mbufs_in_use()),
                mbufs: u64::from(director.mbufs()),
                stale: resolver.stale(now),
                health: health.samples(),
                announce,
                sync,
            });
        self.stats_line(now);
        if self.stop.load(Ordering::Relaxed) {
            return ControlFlow::Break(Ended::Asked);
        }
        ControlFlow::Continue(())
    }

    /// Answers the `-L -c` requests whose dumps are in (or overdue).
    fn poll_listings(&mut self, now: Instant) {
        let mut listings = std::mem::take(&mut self.listings);
        let dumps = &self.director.workers.dumps;
        listings.poll(dumps, now, |results| self.connection_rows(results));
        self.listings = listings;
    }

    /// Announces the VIPs: at start and twice more, a second apart.
    fn announce_vips(&mut self, now: Instant) {
        let a = &mut self.announce;
        if !self.cfg.neighbours().gratuitous_arp
            || a.rounds >= 3
            || now.duration_since(a.last) < Duration::from_secs(1)
        {
            return;
        }
        for v in self.current.vips.iter().filter(|v| v.answer_arp) {
            let n = match v.addr {
                IpAddr::V4(ip) => gratuitous_arp(&mut self.buf, self.rx_mac, ip.octets(), None),
                IpAddr::V6(ip) => unsolicited_na(&mut self.buf, self.rx_mac, ip.octets(), None),
            };
            if let Some(n) = n {
                self.director.send(Via::RxPort, &self.buf[..n]);
            }
        }
        a.rounds += 1;
        a.last = now;
    }

    /// The statistics line, every `interval` (0: never).
    fn stats_line(&mut self, now: Instant) {
        let s = &self.stats;
        if s.interval.is_zero() || now.duration_since(s.last) < s.interval {
            return;
        }
        let t = total(&self.director.workers.read());
        let secs = now.duration_since(s.last).as_secs_f64();
        let extra = format!(
            " templates={} rs_unresolved={} rs_stale={} rs_down={}",
            self.templates(),
            self.current.snap().servers_without_mac(),
            self.resolver.stale(now).len(),
            self.health.down()
        );
        println!("pmdlb: {}", compact_line(&t, &s.prev, secs, &extra));
        self.stats.prev = t;
        self.stats.last = now;
    }

    /// Runs one runtime command.
    fn command(&mut self, c: Command) -> Answer {
        match c {
            Command::Stop => {
                self.stop.store(true, Ordering::Relaxed);
                Answer::ok("stopping\n")
            }
            Command::Reload => self.reload(),
            Command::Status | Command::Drain | Command::Undrain => self.announce_command(&c),
            Command::Stats => Answer::ok(format!(
                "{}persistence templates live: {}\n{}\n{}\n{}{}",
                full_table(&self.director.workers.read()),
                self.templates(),
                self.servers_table(),
                self.watch.stats_table(false),
                self.watch.rate_table(),
                self.sync_section()
            )),
            Command::Sync => match &self.sync {
                Some(d) => Answer::ok(format!("{}{}", d.daemon_lines(), d.stats().table())),
                None => Answer::failed("no [sync] section in the configuration: no sync daemon"),
            },
            Command::Servers => Answer::ok(self.servers_table()),
            Command::ServerStats { exact } => Answer::ok(self.watch.stats_table(exact)),
            Command::ServerRates => Answer::ok(self.watch.rate_table()),
            Command::Weight {
                service,
                server,
                weight,
            } => self.set_weight(&service, server, weight),
            Command::Remove { service, server } => {
                let mut specs = self.current.specs.clone();
                let Some(s) = specs.iter_mut().find(|s| s.addr == service) else {
                    return no_server(&service, server);
                };
                let before = s.servers.len();
                s.servers.retain(|r| r.addr != server);
                if s.servers.len() == before {
                    return no_server(&service, server);
                }
                let t = self.current.tables.timeouts;
                match self.publish(specs, t, "ctl") {
                    Ok(_) => {
                        Answer::ok(format!("ok: {} {server} removed\n", service_name(&service)))
                    }
                    Err(e) => Answer::failed(e),
                }
            }
        }
    }

    /// `weight SERVICE SERVER WEIGHT`.
    fn set_weight(&mut self, service: &ServiceAddr, server: IpAddr, weight: u32) -> Answer {
        let snap = &self.current.snap();
        let ids = find_servers(snap, service, server);
        if ids.is_empty() {
            return no_server(service, server);
        }
        if weight > 65535 {
            return Answer::failed("weight must be 0..=65535");
        }
        // As `admin -e -w`: the rule set changes (so -S shows it and
        // sh/dh/mh tables are rebuilt), the health checks apply it.
        let mut specs = self.current.specs.clone();
        for s in specs.iter_mut().filter(|s| s.addr == *service) {
            for r in s.servers.iter_mut().filter(|r| r.addr == server) {
                r.weight = weight;
            }
        }
        let t = self.current.tables.timeouts;
        if let Err(e) = self.publish(specs, t, "ctl") {
            return Answer::failed(e);
        }
        let snap = self.current.snap();
        let mut held = false;
        for id in &ids {
            held |= snap.server(*id).is_some_and(|s| s.weight() != weight);
        }
        Answer::ok(format!(
            "ok: {} {server} weight {weight}{}\n",
            service_name(service),
            if held {
                " (now 0: health checks failing or quorum lost; set when it is back)"
            } else {
                ""
            }
        ))
    }

    fn servers_table(&self) -> String {
        servers_table(self.current.snap(), &self.current.specs, &self.health)
    }

    /// Stops: withdraws the VIP routes (while the workers still forward),
    /// stops and joins the workers, prints the final statistics,
    /// closes the control socket (answers already given, a `stop` answer
    /// included, still reach their clients; later requests hear that pmdlb
    /// is stopping) and tears the director down.
    pub fn finish(mut self, ended: Ended) -> Result<(), RunError> {
        self.withdraw_routes();
        drop(self.checks.take());
        if let Some(d) = self.sync.as_mut() {
            // Before the workers: the pending datagram leaves.
            d.stop();
            println!("pmdlb: sync: stopped; {}", sync_summary(&d.stats()));
        }
        let failure = self.director.workers.stop();
        self.print_final();
        let ControlPlane {
            ctl,
            current,
            watch,
            director,
            ..
        } = self;
        drop(ctl);
        drop(watch);
        drop(current);
        director.close();
        if let Some(e) = failure {
            return Err(RunError::Worker(e));
        }
        if let Ended::Worker(i) = ended {
            return Err(RunError::Worker(format!("worker {i} stopped unexpectedly")));
        }
        println!("pmdlb: stopped cleanly");
        Ok(())
    }

    /// The final statistics, once the workers have stopped.
    fn print_final(&mut self) {
        let t = total(&self.director.workers.read());
        println!(
            "pmdlb: final statistics after {:.1} s",
            self.started.elapsed().as_secs_f64()
        );
        print!("{}", full_table(&self.director.workers.read()));
        println!("persistence templates live: {}", self.templates());
        let r = &self.resolver;
        let rs = r.stats();
        println!(
            "neighbours: requests={} learned={} changed={} unresolved={} stale={} ignored={} not_neighbour={}",
            rs.requests,
            rs.learned,
            rs.changed,
            r.unresolved(),
            r.stale(Instant::now()).len(),
            rs.ignored,
            rs.not_neighbour
        );
        print!("{}", self.servers_table());
        print!("{}", self.watch.stats_table(false));
        let ports = &self.director.ports;
        if let Ok(s) = ports.rx.stats() {
            println!(
                "port {}: ipackets={} opackets={} imissed={} ierrors={} rx_nombuf={}",
                ports.rx.name(),
                s.ipackets,
                s.opackets,
                s.imissed,
                s.ierrors,
                s.rx_nombuf
            );
        }
        if let Some(p) = &ports.tx {
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
    }
}

/// The workers' clock (TSC milliseconds), for the persistence table.
fn workers_now_ms() -> u64 {
    let hz = dpdk::tsc_hz().max(1);
    crate::sys::rdtsc() / (hz / 1000).max(1)
}

/// Starts the sync daemon of `[sync]` on the rings bring-up made, after
/// the workers.
fn start_sync(
    cfg: &Config,
    director: &mut Director<'_>,
    current: &Current,
    persist: &Arc<PersistTable>,
) -> Result<Option<SyncDaemon>, RunError> {
    let (Some(s), Some(ends)) = (cfg.sync(), director.sync.take()) else {
        return Ok(None);
    };
    let cx = crate::control::sync::Context {
        live: Arc::clone(&current.live),
        persist: Arc::clone(persist),
        now_ms: workers_now_ms,
    };
    Ok(Some(SyncDaemon::start(s, ends, cx)?))
}

/// The sync counters' headline, one line.
fn sync_summary(s: &crate::control::sync::SyncStats) -> String {
    format!(
        "datagrams_sent={} records_sent={} send_errors={} datagrams_received={} records_received={} conns_handed={} templates_installed={} install_ring_full={}",
        s.datagrams_sent,
        s.records_sent(),
        s.send_errors,
        s.datagrams_received,
        s.records_received,
        s.conns_handed,
        s.templates_installed,
        s.install_ring_full
    )
}

fn admin_answer(r: Result<String, AdminError>) -> Answer {
    crate::control::admin::client::answer(r)
}

fn no_server(service: &ServiceAddr, server: IpAddr) -> Answer {
    Answer::failed(format_args!(
        "no real server {server} in service {}",
        service_name(service)
    ))
}
