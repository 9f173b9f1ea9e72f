//! The TOML configuration file: parsing, validation and the validated
//! [`Config`] the runtime starts from (EAL arguments, ports, workers, table
//! capacities, timeouts, VIPs, mark rules, services and real servers).
//! Every key is documented in `dpdk-config/reference.toml`; every key is set
//! at start.

#![forbid(unsafe_code)]

mod announce;
mod health;
mod raw;
mod services;
mod settings;
mod sync;
mod validate;
pub mod values;

#[cfg(test)]
mod tests;

use std::fmt;

pub use announce::{check_device_name, AnnounceSettings};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
pub use sync::{SyncRole, SyncSettings, SyncTransport};

use crate::control::health::{QuorumSpec, ServerChecks};
use crate::control::layout::NicQueues;
use crate::dpdk::port::PortConfig;
pub use crate::lb::sched::mh::TableSize as MhTableSize;
use crate::lb::spec::{MarkRuleSpec, ServiceSpec, StateFlags, Timeouts, VipSpec};
use crate::wire::ethernet::MacAddr;

/// The program name pmdlb passes to EAL as `argv[0]`.
pub const PROGRAM_NAME: &str = "pmdlb";

/// How the EAL lcores were given, kept so `eal_args` passes them the same way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CoreSelection {
    /// `lcores = "0-2,4"` → `-l 0-2,4` (normalised).
    List(String),
    /// `coremask = "0x7"` → `-c 0x7` (normalised, lowercase).
    Mask(String),
    /// `lcores = "0@0,1@1,2@1"` → `--lcores 0@0,1@1,2@1`: EAL's lcore-to-CPU
    /// mapping (several lcores may share a CPU).
    Map(String),
}

/// `[eal]`: how EAL is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EalSettings {
    /// Every EAL lcore, sorted (the main lcore included).
    pub lcores: Vec<u32>,
    /// How the lcores are passed to EAL.
    pub cores: CoreSelection,
    /// The main (control-plane) lcore; `--main-lcore`.
    pub main_lcore: u32,
    /// `-n`: memory channels, if set.
    pub memory_channels: Option<u32>,
    /// Use hugepages; `false` → `--no-huge`.
    pub hugepages: bool,
    /// Memory in MiB (`-m`); always set when `hugepages` is false.
    pub memory_mb: Option<u32>,
    /// `--file-prefix` (default `pmdlb`).
    pub file_prefix: String,
    /// PCI devices to probe (`-a`); empty → `--no-pci`.
    pub pci_allow: Vec<String>,
    /// Virtual devices (`--vdev`).
    pub vdevs: Vec<String>,
    /// `--log-level`, if set.
    pub log_level: Option<String>,
    /// DPDK's telemetry socket (`/pmdlb/*` commands); `false` →
    /// `--no-telemetry`.
    pub telemetry: bool,
    /// Serve live captures (`rte_pdump_init`) to `dpdk-dumpcap`.
    pub pdump: bool,
    /// Further EAL arguments, appended as given.
    pub extra_args: Vec<String>,
}

impl EalSettings {
    /// The EAL lcores other than the main lcore, in id order.
    pub fn worker_lcores(&self) -> Vec<u32> {
        self.lcores
            .iter()
            .copied()
            .filter(|&l| l != self.main_lcore)
            .collect()
    }
}

/// `ports.tx_vlan`: the data plane's own policy type.
pub use crate::dataplane::rewrite::TxVlan;

/// `[ports]`: the NICs and their rings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSettings {
    /// The receive NIC: a vdev name (`net_af_packet0`) or a PCI address
    /// (normalised to `DDDD:BB:DD.F`).
    pub rx: String,
    /// The NIC towards the real servers; equal to `rx` when one-armed.
    pub tx: String,
    /// RX descriptors per queue (power of two, 64..=16384).
    pub rx_desc: u16,
    /// TX descriptors per queue (power of two, 64..=16384).
    pub tx_desc: u16,
    /// MTU to set on both NICs, if any (68..=9600).
    pub mtu: Option<u16>,
    /// Put the NICs in promiscuous mode.
    pub promiscuous: bool,
    /// Mbufs in the packet pool (at least [`min_mbufs`]).
    pub mbufs: u32,
    /// Per-lcore mempool cache size (0..=512).
    pub mbuf_cache: u32,
    /// Data room of each mbuf, headroom included (testpmd's `--mbuf-size`):
    /// at least [`RTE_PKTMBUF_HEADROOM`] plus an MTU-sized frame.
    pub mbuf_size: u16,
    /// VLAN handling on frames sent to real servers.
    pub tx_vlan: TxVlan,
    /// The director's IPv4 address on the TX segment (ARP sender address).
    pub tx_addr: Option<Ipv4Addr>,
    /// The director's IPv6 address on the TX segment (ND source address).
    pub tx_addr6: Option<Ipv6Addr>,
    /// Outer IPv4 source of tunnelled packets, if not `tx_addr`.
    pub tunnel_addr: Option<Ipv4Addr>,
    /// Outer IPv6 source of tunnelled packets, if not `tx_addr6`.
    pub tunnel_addr6: Option<Ipv6Addr>,
    /// The IPv4 gateway on the TX segment towards tunnel servers in other
    /// subnets (`None`: IPv4 tunnel servers are on the TX segment).
    pub gateway: Option<Ipv4Addr>,
    /// The IPv6 gateway towards tunnel servers (`None`: on-link).
    pub gateway6: Option<Ipv6Addr>,
    /// A static MAC for `gateway` (else resolved by ARP).
    pub gateway_mac: Option<MacAddr>,
    /// A static MAC for `gateway6` (else resolved by ND).
    pub gateway6_mac: Option<MacAddr>,
}

/// The MTU assumed on the TX NIC when `ports.mtu` is not set.
pub const DEFAULT_MTU: u16 = 1500;
/// Data room of each mbuf when `ports.mbuf_size` is not set, headroom
/// included: DPDK's `RTE_MBUF_DEFAULT_BUF_SIZE`.
pub const DEFAULT_MBUF_SIZE: u16 = 2176;
/// DPDK's `RTE_PKTMBUF_HEADROOM` (Debian's build: 128 bytes), the front of
/// every mbuf's data room that a received frame does not use (bring-up
/// checks at compile time that the DPDK headers agree).
pub const RTE_PKTMBUF_HEADROOM: u16 = 128;
/// The largest frame of an MTU: Ethernet header plus one 802.1Q tag.
pub const FRAME_OVERHEAD: u16 = 18;

impl PortSettings {
    /// The outer IPv4 source of tunnelled packets: `tunnel_addr`, else
    /// `tx_addr`.
    pub fn tunnel_src4(&self) -> Option<Ipv4Addr> {
        self.tunnel_addr.or(self.tx_addr)
    }

    /// The outer IPv6 source of tunnelled packets: `tunnel_addr6`, else
    /// `tx_addr6`.
    pub fn tunnel_src6(&self) -> Option<Ipv6Addr> {
        self.tunnel_addr6.or(self.tx_addr6)
    }

    /// The MTU a tunnelled packet must fit after encapsulation: `mtu`, else
    /// [`DEFAULT_MTU`].
    pub fn tx_mtu(&self) -> u16 {
        self.mtu.unwrap_or(DEFAULT_MTU)
    }

    /// One NIC for both directions ("one-armed" DR).
    pub fn one_armed(&self) -> bool {
        self.rx == self.tx
    }

    /// A [`PortConfig`] with these rings, promiscuous mode and MTU, RSS on,
    /// and the given queue counts.
    pub fn port_config(&self, q: NicQueues) -> PortConfig {
        PortConfig {
            rx_queues: q.rx,
            tx_queues: q.tx,
            rx_desc: self.rx_desc,
            tx_desc: self.tx_desc,
            rss: q.rss,
            promiscuous: self.promiscuous,
            mtu: self.mtu,
        }
    }
}

/// The fewest mbufs the pool needs so that no ring or buffer starves,
/// assuming the layout of DESIGN.md §2: on the RX NIC one RX queue per worker
/// and one TX queue per worker plus one for the control plane; on a separate
/// TX NIC one RX queue (neighbour replies; the devices with several fixed
/// RX queues, net_af_packet and net_pcap, hold no mbufs in descriptors) and
/// one TX queue per worker plus
/// one; per worker a burst in hand and two TX buffers; one mempool cache per
/// lcore (workers and main).
pub fn min_mbufs(
    workers: u32,
    burst: u32,
    rx_desc: u32,
    tx_desc: u32,
    cache: u32,
    one_armed: bool,
) -> u32 {
    let mut n = workers * rx_desc + (workers + 1) * tx_desc;
    if !one_armed {
        n += rx_desc + (workers + 1) * tx_desc;
    }
    n + 3 * workers * burst + (workers + 1) * cache
}

/// `[workers]`: the forwarding lcores and their loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerSettings {
    /// Number of workers (one RX queue each).
    pub count: u16,
    /// The lcores the workers run on (the first `count` worker lcores).
    pub lcores: Vec<u32>,
    /// Packets per `rx_burst` (1..=64).
    pub burst: u16,
    /// TX buffers are flushed at least this often, microseconds.
    pub drain_us: u32,
    /// Seconds between one-line statistics; 0 = off.
    pub stats_interval_s: u32,
    /// Connection-table buckets each worker sweeps for expiry per loop.
    pub sweep_per_loop: u32,
}

/// `[tables]`: sizes of the tables allocated at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSettings {
    /// Connection entries per worker (a power of two).
    pub connections: u32,
    /// Persistence templates, shared by all workers (a power of two).
    pub persistence: u32,
    /// Slots of each mh service's Maglev lookup table.
    pub mh_size: MhTableSize,
    /// Service slots (a power of two): services added at run time count.
    pub max_services: u32,
    /// Real-server slots (a power of two): servers added at run time
    /// count, and a removed server keeps its slot until its last
    /// connection ends.
    pub max_servers: u32,
    /// Where the connection and persistence tables are allocated.
    pub memory: TableMemory,
}

/// `[tables] memory`: where the connection and persistence tables live.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TableMemory {
    /// DPDK's heap on the RX port's NUMA node when it has room, else the
    /// process heap with a warning (the default).
    #[default]
    Auto,
    /// DPDK's heap on the RX port's NUMA node; start fails without room.
    Dpdk,
    /// The process heap, with the transparent-huge-page hint.
    Heap,
}

impl TableMemory {
    /// The configuration's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            TableMemory::Auto => "auto",
            TableMemory::Dpdk => "dpdk",
            TableMemory::Heap => "heap",
        }
    }
}

impl TableSettings {
    /// The snapshot capacity.
    pub fn capacity(&self) -> crate::lb::snapshot::Capacity {
        crate::lb::snapshot::Capacity::new(self.max_services, self.max_servers)
    }
}

/// `[neighbours]`: ARP/ND resolution of real servers and VIP announcements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighbourSettings {
    /// Re-resolve every known real-server MAC this often, seconds.
    pub refresh_s: u32,
    /// Retry an unanswered request after this long, milliseconds.
    pub retry_ms: u32,
    /// Send gratuitous ARP / unsolicited NA for the VIPs at start.
    pub gratuitous_arp: bool,
}

/// `[metrics]`: the Prometheus exposition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Where the HTTP listener serves `/metrics`; `None`: no listener.
    pub listen: Option<std::net::SocketAddr>,
}

/// A validated configuration. Build it with [`Config::load`] or
/// [`Config::from_str`]; nothing in it needs checking again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    origin: String,
    eal: EalSettings,
    ports: PortSettings,
    workers: WorkerSettings,
    tables: TableSettings,
    timeouts: Timeouts,
    state_flags: StateFlags,
    neighbours: NeighbourSettings,
    metrics: MetricsSettings,
    announce: Option<AnnounceSettings>,
    sync: Option<SyncSettings>,
    vips: Vec<VipSpec>,
    marks: Vec<MarkRuleSpec>,
    services: Vec<ServiceSpec>,
    health: Vec<Option<ServerChecks>>,
    quorums: Vec<Option<QuorumSpec>>,
}

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key path, e.g. `service[2].server[1].addr`.
    pub key: String,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Something in a valid configuration that is probably not what was meant
/// (a fwmark service no mark rule feeds, a service without servers, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The file (or origin name) the configuration came from.
    pub origin: String,
    /// The key path.
    pub key: String,
    /// What looks wrong.
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: warning: {}: {}",
            self.origin, self.key, self.message
        )
    }
}

/// Why a configuration was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: cannot read the configuration: {source}")]
    Io {
        /// The path given.
        path: String,
        /// The reason.
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, a value of the wrong type, or an unknown key; the message
    /// carries the line and column.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file (or origin name).
        origin: String,
        /// The parser's message, with line and column.
        message: String,
    },
    /// Well-formed TOML that does not describe a valid setup; every problem
    /// found is listed.
    #[error("{}", format_problems(.origin, .problems))]
    Invalid {
        /// The file (or origin name).
        origin: String,
        /// The problems, in file order.
        problems: Vec<Problem>,
    },
}

fn format_problems(origin: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{origin}: {}: {}", p.key, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

impl Config {
    /// Reads and validates the file at `path`. Returns the configuration and
    /// the warnings it raised (print them; they do not stop a start).
    pub fn load(path: impl AsRef<Path>) -> Result<(Config, Vec<Warning>), ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: origin.clone(),
            source,
        })?;
        Config::from_str(&text, &origin)
    }

    /// Parses and validates `text`; `origin` names it in messages (usually
    /// the file name).
    pub fn from_str(text: &str, origin: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        validate::validate(raw, origin)
    }

    /// Checks a rule set made at run time against this configuration (see
    /// `validate::check_rules`); `Err` lists every problem, one per line.
    pub fn check_rules(&self, services: &[ServiceSpec]) -> Result<(), String> {
        let p = validate::check_rules(self, services);
        if p.is_empty() {
            return Ok(());
        }
        Err(p
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect::<Vec<_>>()
            .join("\n"))
    }

    /// This (running) configuration with what a reload of `new` may change
    /// at run time: services, mark rules, VIPs, timeouts and the IPVS
    /// switches. Everything else stays as it started.
    pub fn reloaded(&self, new: &Config) -> Config {
        Config {
            marks: new.marks.clone(),
            vips: new.vips.clone(),
            services: new.services.clone(),
            timeouts: new.timeouts,
            state_flags: new.state_flags,
            ..self.clone()
        }
    }

    /// The sections of `new` that differ from this running configuration
    /// and cannot change without a restart.
    pub fn needs_restart(&self, new: &Config) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut diff = |name, same: bool| {
            if !same {
                out.push(name);
            }
        };
        diff("[eal]", self.eal == new.eal);
        diff("[ports]", self.ports == new.ports);
        diff("[workers]", self.workers == new.workers);
        diff("[tables]", self.tables == new.tables);
        diff("[neighbours]", self.neighbours == new.neighbours);
        diff("[metrics]", self.metrics == new.metrics);
        diff("[announce]", self.announce == new.announce);
        diff("[sync]", self.sync == new.sync);
        diff(
            "health checks",
            self.health == new.health && self.quorums == new.quorums,
        );
        out
    }

    /// The VIPs for a rule set: the configured ones, then every VIP a
    /// service uses that is not among them (answering ARP and ping, as a
    /// VIP the configuration derives from a service).
    pub fn vips_for(&self, services: &[ServiceSpec]) -> Vec<VipSpec> {
        let mut out = self.vips.clone();
        for s in services {
            if let crate::lb::spec::ServiceAddr::Addr { vip, .. } = s.addr {
                if !out.iter().any(|v| v.addr == vip) {
                    out.push(VipSpec {
                        addr: vip,
                        answer_arp: true,
                        answer_ping: true,
                    });
                }
            }
        }
        out
    }

    /// The `eal.file_prefix` a configuration file names (default `pmdlb`),
    /// read without validating the rest: `ctl` and `admin` find the
    /// running instance even while its file is being edited into an
    /// invalid state (a reload then reports the problems).
    pub fn file_prefix_of(path: impl AsRef<Path>) -> Result<String, ConfigError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: origin.clone(),
            source,
        })?;
        let v: toml::Value = toml::from_str(&text).map_err(|e| ConfigError::Syntax {
            origin,
            message: e.to_string().trim_end().to_owned(),
        })?;
        Ok(v.get("eal")
            .and_then(|e| e.get("file_prefix"))
            .and_then(|p| p.as_str())
            .unwrap_or("pmdlb")
            .to_owned())
    }

    /// The file (or origin name) this configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `[eal]`.
    pub fn eal(&self) -> &EalSettings {
        &self.eal
    }

    /// `[ports]`.
    pub fn ports(&self) -> &PortSettings {
        &self.ports
    }

    /// `[workers]`.
    pub fn workers(&self) -> &WorkerSettings {
        &self.workers
    }

    /// `[tables]`.
    pub fn tables(&self) -> &TableSettings {
        &self.tables
    }

    /// `[timeouts]`.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// `[ipvs]`.
    pub fn state_flags(&self) -> StateFlags {
        self.state_flags
    }

    /// `[neighbours]`.
    pub fn neighbours(&self) -> &NeighbourSettings {
        &self.neighbours
    }

    /// `[metrics]`.
    pub fn metrics(&self) -> &MetricsSettings {
        &self.metrics
    }

    /// `[announce]`: the VIP host routes for BGP (`None`: not announced).
    pub fn announce(&self) -> Option<&AnnounceSettings> {
        self.announce.as_ref()
    }

    /// `[sync]`: connection and persistence sync between directors
    /// (`None`: no sync daemon).
    pub fn sync(&self) -> Option<&SyncSettings> {
        self.sync.as_ref()
    }

    /// Every VIP pmdlb answers for: the `[[vip]]` entries first, then the
    /// VIPs of services and single-address mark rules not listed there
    /// (ARP and ping answered).
    pub fn vips(&self) -> &[VipSpec] {
        &self.vips
    }

    /// The mark rules, in file order.
    pub fn marks(&self) -> &[MarkRuleSpec] {
        &self.marks
    }

    /// The virtual services, in file order.
    pub fn services(&self) -> &[ServiceSpec] {
        &self.services
    }

    /// The health checks of each real server, in `RsId` order (services
    /// in order, their servers in order); `None` (or a short list) for
    /// servers without checkers.
    pub fn health(&self) -> &[Option<ServerChecks>] {
        &self.health
    }

    /// Each service's quorum and sorry server (`None`, or a short list,
    /// where not set). A sorry server is the last of its service's servers.
    pub fn quorums(&self) -> &[Option<QuorumSpec>] {
        &self.quorums
    }

    /// The EAL argument list, program name first: lcores, main lcore,
    /// memory, file prefix, devices, log level, `--no-telemetry` if
    /// telemetry is off, `eal.extra_args`, then
    /// `extra_cli` (the arguments after `--` on the command line).
    pub fn eal_args(&self, extra_cli: &[String]) -> Vec<String> {
        let e = &self.eal;
        let mut a: Vec<String> = vec![PROGRAM_NAME.into()];
        match &e.cores {
            CoreSelection::List(l) => a.extend(["-l".into(), l.clone()]),
            CoreSelection::Mask(m) => a.extend(["-c".into(), m.clone()]),
            CoreSelection::Map(m) => a.extend(["--lcores".into(), m.clone()]),
        }
        a.extend(["--main-lcore".into(), e.main_lcore.to_string()]);
        if let Some(n) = e.memory_channels {
            a.extend(["-n".into(), n.to_string()]);
        }
        if !e.hugepages {
            a.push("--no-huge".into());
        }
        if let Some(mb) = e.memory_mb {
            a.extend(["-m".into(), mb.to_string()]);
        }
        a.extend(["--file-prefix".into(), e.file_prefix.clone()]);
        if e.pci_allow.is_empty() {
            a.push("--no-pci".into());
        }
        for p in &e.pci_allow {
            a.extend(["-a".into(), p.clone()]);
        }
        for v in &e.vdevs {
            a.extend(["--vdev".into(), v.clone()]);
        }
        if let Some(l) = &e.log_level {
            a.extend(["--log-level".into(), l.clone()]);
        }
        if !e.telemetry {
            a.push("--no-telemetry".into());
        }
        a.extend(e.extra_args.iter().cloned());
        a.extend(extra_cli.iter().cloned());
        a
    }
}
