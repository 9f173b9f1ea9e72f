//! Bring-up of the DPDK side of `pmdlb run`, in small steps — EAL (and
//! pdump), the mbuf pool, the ports with their queue layout, the tables, the
//! rings between the control plane and the workers, the workers — and its
//! teardown. [`Director`] owns all of it but EAL, which it borrows (pdump
//! borrows EAL, so EAL lives outside and outlasts it: [`start_eal`]); its
//! field order is the teardown order (Rust drops fields in declaration
//! order), so any exit path, an error half-way through [`Director::start`]
//! included, stops and joins the workers first and uninitialises pdump last,
//! before the caller's EAL is cleaned up.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::control::config::{Config, PortSettings, TableMemory};
use crate::control::current::Current;
use crate::control::health::Effects;
use crate::control::layout;
use crate::control::run::{RunError, RunOptions, CONTROL_RING, PERSIST_SHARDS};
use crate::control::sync::{self as sync_daemon, ControlEnds, WorkerEnds};
use crate::dataplane::counters::{Published, WorkerStats};
use crate::dataplane::decide::DecideCtx;
use crate::dataplane::dump::ConnDump;
use crate::dataplane::traffic::PublishedTraffic;
use crate::dataplane::tunnel::OuterIds;
use crate::dataplane::worker::{ControlTx, TunnelSrc, Worker};
use crate::dpdk::{
    self, DpdkMemory, Eal, LcoreId, LcoreJobs, Mbuf, MbufRing, Mempool, Pdump, Port, PortBuilder,
    PortId, QueueId, RingSync, RxBurst,
};
use crate::lb::live::{SeenEpoch, Tables as LiveTables};
use crate::lb::persist::PersistTable;
use crate::lb::service::ServiceTable;
use crate::lb::snapshot::Snapshot;
use crate::lb::state::{StateConfig, WorkerState};
use crate::lb::sync_record::ConnInstall;
use crate::lb::sync_ring::Consumer;
use crate::sys::mem::{mib, Memory, Placement};
use crate::wire::ethernet::MacAddr;

/// The tables built at start: what workers share with the control plane.
#[derive(Debug)]
pub struct Shared {
    /// The current services and real servers.
    pub current: Current,
    /// The persistence table all workers share.
    pub persist: Arc<PersistTable>,
    /// Health-check effects on weights (made before any worker runs, so
    /// alpha servers start out of service).
    pub health: Effects,
}

impl Shared {
    /// Builds the tables of `cfg`, the persistence table in `mem`.
    pub fn build(cfg: &Config, mem: &Memory) -> Result<Shared, RunError> {
        let services = ServiceTable::new(cfg.services(), cfg.marks(), cfg.vips())
            .map_err(|e| RunError::Services(e.to_string()))?;
        let t = cfg.tables();
        let snap = Snapshot::build(cfg.services(), t.mh_size, t.capacity())
            .map_err(|e| RunError::Services(e.to_string()))?;
        let tables = Arc::new(LiveTables {
            services,
            snap: Arc::new(snap),
            timeouts: cfg.timeouts(),
            flags: cfg.state_flags(),
        });
        let health = Effects::new(&tables.snap, cfg.health(), cfg.quorums());
        let persist = PersistTable::new_in(
            t.persistence as usize,
            PERSIST_SHARDS,
            crate::sys::rdtsc() | 1,
            mem,
        )
        .map_err(|err| RunError::TableMemory {
            table: "persistence table".into(),
            err,
            advice: memory_advice(cfg),
        })?;
        let persist = Arc::new(persist);
        Ok(Shared {
            current: Current::new(tables, cfg.services().to_vec(), cfg.vips().to_vec()),
            persist,
            health,
        })
    }
}

/// The RX NIC and, unless one-armed, the TX NIC: configured and started.
/// Field order: the TX NIC is closed first.
#[derive(Debug)]
pub struct Ports {
    /// The TX NIC (`None`: one-armed, the RX NIC transmits).
    pub tx: Option<Port>,
    /// The RX NIC.
    pub rx: Port,
}

impl Ports {
    /// Configures and starts the NICs for `nq` workers. Queue layout
    /// (control::layout): the RX NIC has one RX and one TX queue per
    /// worker; a separate TX NIC has one TX queue per worker and the RX
    /// queues the control plane reads for neighbour answers. The control
    /// plane sends its own frames through worker 0.
    fn open(ps: &PortSettings, pool: &Mempool, nq: u16) -> Result<Ports, RunError> {
        let rx_b = PortBuilder::new(Port::find(&ps.rx)?)?;
        let rx_q = layout::rx_nic(rx_b.name(), rx_b.info(), nq)?;
        let tx_b = if ps.one_armed() {
            None
        } else {
            let b = PortBuilder::new(Port::find(&ps.tx)?)?;
            let q = layout::tx_nic(b.name(), b.info(), nq)?;
            Some((b, q))
        };
        let mut rx = rx_b.configure(&ps.port_config(rx_q), pool)?;
        let mut tx = match tx_b {
            Some((b, q)) => Some(b.configure(&ps.port_config(q), pool)?),
            None => None,
        };
        rx.start()?;
        if let Some(p) = tx.as_mut() {
            p.start()?;
        }
        Ok(Ports { tx, rx })
    }

    /// The transmitting NIC's id.
    pub fn tx_id(&self) -> PortId {
        self.tx.as_ref().map_or(self.rx.id(), |p| p.id())
    }

    /// The transmitting NIC's name.
    pub fn tx_name(&self) -> &str {
        self.tx.as_ref().map_or(self.rx.name(), |p| p.name())
    }
}

/// Which NIC a control-plane frame leaves on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// The RX NIC (gratuitous ARP, unsolicited NA for the VIPs).
    RxPort,
    /// The TX NIC (neighbour requests for real servers).
    TxPort,
}

/// The launched workers and what they publish. Dropping it stops and joins
/// them (see [`LcoreJobs`]).
#[derive(Debug)]
pub struct Workers {
    jobs: LcoreJobs,
    /// Each worker's counters, in worker order.
    pub published: Vec<Arc<Published>>,
    /// Each worker's per-real-server traffic, in worker order.
    pub traffic: Vec<Arc<PublishedTraffic>>,
    /// Set by each worker when its loop ends (returned or panicked).
    done: Vec<Arc<AtomicBool>>,
    /// The epoch each worker runs on.
    pub seen: Vec<Arc<SeenEpoch>>,
    /// Each worker's connection dump channel (`ipvsadm -L -c`), in worker
    /// order.
    pub dumps: Vec<Arc<ConnDump>>,
    /// Where each table went: its name ("persistence", "worker 0
    /// connections"), place and bytes.
    pub tables: Vec<(String, Placement, usize)>,
}

/// Sets a flag when dropped: tells the control plane a worker has ended,
/// whether it returned or panicked.
struct DoneGuard(Arc<AtomicBool>);

impl Drop for DoneGuard {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Everything the workers are launched with but their own state.
struct Launch<'a> {
    cfg: &'a Config,
    lcores: &'a [LcoreId],
    ports: &'a Ports,
    ctx: DecideCtx,
    tables: &'a Shared,
    to_control: &'a Arc<MbufRing>,
    control_tx: &'a Arc<ControlTx>,
    /// Each worker's ends of the sync rings (empty without `[sync]`).
    sync: Vec<WorkerEnds>,
    /// Where the connection tables go.
    memory: &'a Memory,
}

impl Workers {
    /// Launches one worker per lcore. If a launch fails, the workers already
    /// running are stopped and joined before the error returns.
    fn launch(mut l: Launch<'_>, stop: &Arc<AtomicBool>) -> Result<Workers, RunError> {
        let cfg = l.cfg;
        let hz = dpdk::tsc_hz().max(1);
        let w = cfg.workers();
        let ps = cfg.ports();
        let tunnel_src = TunnelSrc {
            v4: ps.tunnel_src4().map(|a| a.octets()),
            v6: ps.tunnel_src6().map(|a| a.octets()),
        };
        let current = &l.tables.current;
        let snap = current.snap();
        let mut out = Workers {
            jobs: LcoreJobs::new(Arc::clone(stop)),
            published: Vec::new(),
            traffic: Vec::new(),
            done: Vec::new(),
            seen: Vec::new(),
            dumps: Vec::new(),
            tables: Vec::new(),
        };
        let mut sync_ends = std::mem::take(&mut l.sync).into_iter();
        let (place, bytes) = l.tables.persist.memory();
        out.tables
            .push(("persistence".into(), place.clone(), bytes));
        for (i, &lcore) in l.lcores.iter().enumerate() {
            let pubd = Arc::new(Published::default());
            let tpub = Arc::new(PublishedTraffic::new(snap.capacity().servers as usize));
            let seen = Arc::new(SeenEpoch::default());
            seen.set(snap.epoch());
            let done = Arc::new(AtomicBool::new(false));
            let dump = Arc::new(ConnDump::new(cfg.tables().connections as usize));
            let mut state = WorkerState::new_in(
                Arc::clone(snap),
                Arc::clone(&l.tables.persist),
                StateConfig {
                    conn_capacity: cfg.tables().connections as usize,
                    timeouts: cfg.timeouts(),
                    flags: cfg.state_flags(),
                    seed: crate::sys::rdtsc().rotate_left(17 * i as u32 + 5) | 1,
                },
                l.memory,
            )
            .map_err(|err| RunError::TableMemory {
                table: format!("connection table of worker {i}"),
                err,
                advice: memory_advice(cfg),
            })?;
            let (place, bytes) = state.conn_memory();
            out.tables
                .push((format!("worker {i} connections"), place.clone(), bytes));
            let sync_in = attach_sync(&mut state, sync_ends.next());
            let worker = Worker {
                index: i as u16,
                rx_port: l.ports.rx.id(),
                tx_port: l.ports.tx_id(),
                burst: usize::from(w.burst),
                drain_cycles: hz / 1_000_000 * u64::from(w.drain_us),
                cycles_per_ms: hz / 1000,
                sweep_buckets: w.sweep_per_loop as usize,
                ctx: l.ctx,
                tunnel_src,
                outer_ids: OuterIds::new(
                    i as u16,
                    l.lcores.len() as u16,
                    crate::sys::rdtsc().rotate_left(23 * i as u32 + 3),
                ),
                live: Arc::clone(&current.live),
                tables: Arc::clone(&current.tables),
                seen: Arc::clone(&seen),
                state,
                to_control: Arc::clone(l.to_control),
                control_tx: (i == 0).then(|| Arc::clone(l.control_tx)),
                published: Arc::clone(&pubd),
                traffic: Arc::clone(&tpub),
                dump: Arc::clone(&dump),
                sync_in,
                stop: Arc::clone(stop),
            };
            let guard_flag = Arc::clone(&done);
            out.jobs.launch(lcore, move || {
                let _guard = DoneGuard(guard_flag);
                worker.run();
            })?;
            out.seen.push(seen);
            out.published.push(pubd);
            out.traffic.push(tpub);
            out.done.push(done);
            out.dumps.push(dump);
        }
        report_tables(&out.tables, memory_advice(cfg));
        Ok(out)
    }

    /// The first worker whose loop has ended although nobody asked it to
    /// stop (a panic).
    pub fn ended_on_its_own(&self) -> Option<usize> {
        let i = self.done.iter().position(|d| d.load(Ordering::Acquire))?;
        // A worker ends by itself only by panicking, or once it saw the
        // stop flag; read the flag after its `done`.
        (!self.jobs.stop_flag().load(Ordering::Relaxed)).then_some(i)
    }

    /// Every worker's counters now.
    pub fn read(&self) -> Vec<WorkerStats> {
        self.published.iter().map(|p| p.read()).collect()
    }

    /// Stops the workers (they finish their burst and drain their TX
    /// buffers) and joins them; returns the last failure, each one printed.
    pub fn stop(&mut self) -> Option<String> {
        let mut failure = None;
        for (i, e) in self.jobs.stop_and_wait() {
            eprintln!("pmdlb: worker {i}: {e}");
            failure = Some(e);
        }
        failure
    }
}

/// A worker's side of `[sync]`: its outgoing ring on its state (roles
/// that send, with the threshold/period rule); returns its install ring,
/// its `sync_in` (roles that receive).
fn attach_sync(state: &mut WorkerState, ends: Option<WorkerEnds>) -> Option<Consumer<ConnInstall>> {
    let ends = ends?;
    if let Some(out) = ends.outgoing {
        state.enable_sync(out, ends.rule);
    }
    ends.installs
}

/// The DPDK side of a running pmdlb. Field order is teardown order: workers
/// are stopped and joined first, then the control plane's burst and the
/// rings give their mbufs back, the ports are stopped and closed, the pool
/// is freed, pdump is uninitialised; then the caller drops EAL.
/// [`Director::close`] follows the same order, checking on the way that
/// every mbuf came back.
#[derive(Debug)]
pub struct Director<'eal> {
    /// The launched workers.
    pub workers: Workers,
    /// The control plane's ends of the sync rings, for the sync daemon
    /// (taken when it starts).
    pub sync: Option<ControlEnds>,
    /// The control plane's burst for the TX NIC's RX queues.
    burst: RxBurst,
    /// Frames the control plane sends through worker 0.
    control_tx: Arc<ControlTx>,
    /// Neighbour frames the workers pass to the control plane.
    to_control: Arc<MbufRing>,
    /// The NICs.
    pub ports: Ports,
    /// The mbuf pool.
    pool: Mempool,
    /// Live capture, when `[eal] pdump` is on.
    pdump: Option<Pdump<'eal>>,
}

// ports.mbuf_size's minimum assumes DPDK's headroom: the build's own.
const _: () = assert!(crate::dpdk::mbuf::HEADROOM == crate::control::config::RTE_PKTMBUF_HEADROOM);

/// A warning for each worker whose lcore sits on another NUMA node than
/// the RX NIC (`workers`: lcore and its node, in worker order): its
/// packets, pool and tables are the NIC's node's memory, so every access
/// crosses the interconnect. Nothing when the NIC's node is unknown.
pub fn numa_warnings(
    rx: &str,
    rx_socket: Option<u32>,
    workers: &[(u32, Option<u32>)],
) -> Vec<String> {
    let Some(nic) = rx_socket else {
        return Vec::new();
    };
    workers
        .iter()
        .enumerate()
        .filter_map(|(i, &(lcore, node))| {
            let node = node.filter(|&n| n != nic)?;
            Some(format!(
                "worker {i} runs on lcore {lcore} of NUMA node {node}, but {rx} is on node {nic}: its packets, mbufs and tables cross the interconnect; pick lcores of node {nic} (lscpu shows each CPU's node)"
            ))
        })
        .collect()
}

/// Where `[tables] memory` puts the connection and persistence tables:
/// DPDK's heap on the RX NIC's NUMA node (any node when the device does
/// not say), with or without the process heap behind it. `auto` under
/// `--no-huge` takes the heap: DPDK's memory is then plain 4 KiB pages,
/// where the heap at least gets the transparent-huge-page hint.
fn table_memory(eal: &Eal, cfg: &Config, rx: &Port) -> Memory {
    let dpdk = DpdkMemory::new(eal, rx.socket());
    match cfg.tables().memory {
        TableMemory::Heap => Memory::heap(),
        TableMemory::Auto if !dpdk.hugepages() => Memory::heap(),
        m => Memory::from(Arc::new(dpdk), m == TableMemory::Auto),
    }
}

/// What to do when DPDK's heap is short: on hugepages the heap grows
/// into free hugepages up to `--socket-limit` (`-m` only reserves at
/// start); under `--no-huge` it has `-m`, no more.
fn memory_advice(cfg: &Config) -> &'static str {
    if cfg.eal().hugepages {
        "reserve more hugepages (scripts/setup-hugepages.sh PAGES) or raise --socket-limit if eal.extra_args sets one"
    } else {
        "raise eal.memory_mb (with hugepages = false EAL has that much, no more)"
    }
}

/// Prints where the tables went: one line when they all went to one
/// place, a line each otherwise; a warning for each that fell back to the
/// heap.
fn report_tables(placed: &[(String, Placement, usize)], advice: &str) {
    let Some((_, first, _)) = placed.first() else {
        return;
    };
    let size = |(what, _, bytes): &(String, Placement, usize)| format!("{what} {}", mib(*bytes));
    if placed.iter().all(|(_, p, _)| p == first) {
        let all: Vec<String> = placed.iter().map(size).collect();
        println!("pmdlb: tables in {first}: {}", all.join(", "));
    } else {
        for t in placed {
            println!("pmdlb: tables: {} in {}", size(t), t.1);
        }
    }
    for (what, p, bytes) in placed {
        if let Placement::FellBack(d) = p {
            println!(
                "pmdlb: warning: {what} ({}) in the process heap: {d} had no room; {advice} or lower the table's size in [tables] (tables.memory = \"dpdk\" makes this a start-up error)",
                mib(*bytes)
            );
        }
    }
}

/// Starts EAL with the configuration's arguments (printing them).
pub fn start_eal(cfg: &Config, opts: &RunOptions) -> Result<Eal, RunError> {
    let args = cfg.eal_args(&opts.extra_eal);
    println!("pmdlb: EAL {}", args[1..].join(" "));
    Ok(Eal::init(&args)?)
}

impl<'eal> Director<'eal> {
    /// Brings everything up on a running `eal` and launches the workers,
    /// which watch `stop` (the flag SIGINT/SIGTERM set).
    pub fn start(
        eal: &'eal Eal,
        cfg: &Config,
        stop: &Arc<AtomicBool>,
    ) -> Result<(Director<'eal>, Shared), RunError> {
        let pdump = cfg.eal().pdump.then(|| Pdump::init(eal)).transpose()?;
        let lcores = eal.worker_lcores();
        let nworkers = usize::from(cfg.workers().count);
        if lcores.len() < nworkers || nworkers == 0 {
            return Err(RunError::Lcores {
                wanted: nworkers,
                have: lcores.len(),
            });
        }
        let lcores = &lcores[..nworkers];
        let ps = cfg.ports();
        // The pool on the RX NIC's node (any node when it does not say):
        // the NIC writes every packet into it and the workers read it.
        let rx_socket = Port::find(&ps.rx)?.socket();
        let pool_socket = rx_socket.map_or(-1, |s| s as i32);
        let pool = Mempool::new(
            "pmdlb_mbufs",
            ps.mbufs,
            ps.mbuf_cache,
            ps.mbuf_size,
            pool_socket,
        )?;
        let ports = Ports::open(ps, &pool, nworkers as u16)?;
        let rx_mac = ports.rx.mac()?;
        let tx_mac = ports.tx.as_ref().map_or(Ok(rx_mac), |p| p.mac())?;
        println!(
            "pmdlb: RX {} ({}) {} socket={} rss={} ip_cksum={} | TX {} {} rxq={} | {} workers on {:?}",
            ports.rx.name(),
            ports.rx.info().driver,
            rx_mac,
            rx_socket.map_or("any".to_string(), |s| s.to_string()),
            ports.rx.rss_active(),
            if ports.rx.ip_cksum_offload() {
                "nic"
            } else {
                "software"
            },
            ports.tx.as_ref().map_or("(same port)", |p| p.name()),
            tx_mac,
            ports.tx.as_ref().map_or(0, |p| p.rx_queues()),
            nworkers,
            lcores
        );
        for p in std::iter::once(&ports.rx).chain(&ports.tx) {
            if p.mtu_unsettable() {
                println!(
                    "pmdlb: warning: {} ({}) cannot set its MTU; ports.mtu still bounds tunnelled packets and ports.mbuf_size, but the device delivers frames of any length (one longer than an mbuf is dropped as truncated)",
                    p.name(),
                    p.info().driver
                );
            }
        }
        let workers_at: Vec<_> = lcores.iter().map(|l| (l.0, l.socket())).collect();
        for w in numa_warnings(ports.rx.name(), rx_socket, &workers_at) {
            println!("pmdlb: warning: {w}");
        }
        let memory = table_memory(eal, cfg, &ports.rx);
        let mut tables = Shared::build(cfg, &memory)?;
        let to_control = Arc::new(MbufRing::new("pmdlb_to_ctl", CONTROL_RING, RingSync::Mpsc)?);
        let control_tx = Arc::new(ControlTx {
            to_tx_port: MbufRing::new("pmdlb_ctl_tx", 256, RingSync::Spsc)?,
            to_rx_port: MbufRing::new("pmdlb_ctl_rx", 256, RingSync::Spsc)?,
        });
        let ctx = DecideCtx {
            rx_mac,
            tx_mac,
            tx_vlan: ps.tx_vlan,
            tunnel_mtu: ps.tx_mtu(),
        };
        let (sync_cp, sync_ws) = match cfg.sync() {
            Some(s) => {
                let (cp, ws) = sync_daemon::rings(s, nworkers);
                (Some(cp), ws)
            }
            None => (None, Vec::new()),
        };
        let launch = Launch {
            cfg,
            lcores,
            ports: &ports,
            ctx,
            tables: &tables,
            to_control: &to_control,
            control_tx: &control_tx,
            sync: sync_ws,
            memory: &memory,
        };
        let workers = Workers::launch(launch, stop)?;
        tables.current.seen = workers.seen.clone();
        let director = Director {
            workers,
            sync: sync_cp,
            burst: RxBurst::default(),
            control_tx,
            to_control,
            ports,
            pool,
            pdump,
        };
        Ok((director, tables))
    }

    /// The RX NIC's MAC address.
    pub fn rx_mac(&self) -> Result<MacAddr, RunError> {
        Ok(self.ports.rx.mac()?)
    }

    /// The transmitting NIC's MAC address.
    pub fn tx_mac(&self) -> Result<MacAddr, RunError> {
        Ok(match &self.ports.tx {
            Some(p) => p.mac()?,
            None => self.ports.rx.mac()?,
        })
    }

    /// Whether every port's link is up (a port whose state cannot be read
    /// counts as down).
    pub fn links_up(&self) -> bool {
        let up = |p: &dpdk::port::Port| p.link().is_ok_and(|l| l.up);
        up(&self.ports.rx) && self.ports.tx.as_ref().map_or(true, up)
    }

    /// Whether live capture is served.
    pub fn pdump(&self) -> bool {
        self.pdump.is_some()
    }

    /// Hands `frame` (padded to the 60-byte Ethernet minimum) to worker 0
    /// for `via`; false when no mbuf or ring slot was free.
    pub fn send(&self, via: Via, frame: &[u8]) -> bool {
        let Some(mut m) = self.pool.alloc() else {
            return false;
        };
        let len = frame.len().max(60);
        if !m.append(len as u16) {
            return false;
        }
        let d = m.data_mut();
        d[..frame.len()].copy_from_slice(frame);
        d[frame.len()..].fill(0);
        let ring = match via {
            Via::RxPort => &self.control_tx.to_rx_port,
            Via::TxPort => &self.control_tx.to_tx_port,
        };
        ring.enqueue(m).is_ok()
    }

    /// Passes every neighbour frame waiting — from the workers, and from
    /// the TX NIC's RX queues — to `f`.
    pub fn neighbour_frames(&mut self, mut f: impl FnMut(&[u8])) {
        self.to_control.drain(|m: Mbuf| f(m.data()));
        if let Some(p) = &self.ports.tx {
            for q in 0..p.rx_queues() {
                let n = self.burst.receive(p.id(), QueueId(q), 32);
                for i in 0..n {
                    if let Some(frame) = self.burst.data_mut(i) {
                        f(frame);
                    }
                }
                self.burst.clear();
            }
        }
    }

    /// Mbufs taken from the pool now.
    pub fn mbufs_in_use(&self) -> u32 {
        self.pool.in_use()
    }

    /// Mbufs in the pool.
    pub fn mbufs(&self) -> u32 {
        self.pool.size()
    }

    /// Tears down in field order (the workers must have been stopped, or
    /// are stopped here), saying whether every mbuf came back to the pool.
    pub fn close(self) {
        let Director {
            mut workers,
            sync,
            burst,
            control_tx,
            to_control,
            ports,
            pool,
            pdump,
        } = self;
        workers.stop();
        drop(workers);
        drop(sync);
        drop(burst);
        drop(control_tx);
        drop(to_control);
        drop(ports);
        let in_use = pool.in_use();
        if in_use != 0 {
            eprintln!("pmdlb: warning: {in_use} mbufs still in use at exit");
        } else {
            println!("mbufs: all {} back in the pool", pool.size());
        }
        drop(pool);
        drop(pdump);
    }
}

#[cfg(test)]
mod tests {
    use super::numa_warnings;

    #[test]
    fn a_worker_on_another_node_than_the_nic_is_warned_of() {
        let w = numa_warnings(
            "0000:3b:00.0",
            Some(0),
            &[(1, Some(0)), (17, Some(1)), (18, None)],
        );
        assert_eq!(
            w,
            ["worker 1 runs on lcore 17 of NUMA node 1, but 0000:3b:00.0 is on node 0: its packets, mbufs and tables cross the interconnect; pick lcores of node 0 (lscpu shows each CPU's node)"]
        );
        assert!(numa_warnings("net_pcap0", None, &[(1, Some(1))]).is_empty());
    }
}
