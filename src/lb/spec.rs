//! The validated description of virtual services, mark rules and real
//! servers: what the configuration produces and what the service lookup
//! ([`crate::lb::service`]) and the state layer build their tables from.
//! Plain data; the config module validates it before anything is built.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::wire::ethernet::MacAddr;

/// How a virtual service is addressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServiceAddr {
    /// `(proto, VIP, port)`; port 0 means every port of the VIP.
    Addr {
        /// IP protocol number (TCP, UDP or SCTP).
        proto: u8,
        /// The virtual IP.
        vip: IpAddr,
        /// The virtual port; 0 = all ports.
        port: u16,
    },
    /// A firewall-mark service (`ipvsadm -f N`): packets a mark rule gave
    /// mark N, whatever their protocol and port.
    Fwmark(u32),
}

/// The IPVS schedulers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchedulerKind {
    /// Round robin.
    Rr,
    /// Weighted round robin.
    Wrr,
    /// Least connection.
    Lc,
    /// Weighted least connection (IPVS default).
    Wlc,
    /// Shortest expected delay.
    Sed,
    /// Never queue.
    Nq,
    /// Source hashing.
    Sh,
    /// Destination hashing.
    Dh,
    /// Maglev hashing.
    Mh,
    /// Weighted failover.
    Fo,
    /// Weighted overflow.
    Ovf,
}

impl SchedulerKind {
    /// Every scheduler, in ipvsadm's order of names.
    pub const ALL: [SchedulerKind; 11] = [
        SchedulerKind::Rr,
        SchedulerKind::Wrr,
        SchedulerKind::Lc,
        SchedulerKind::Wlc,
        SchedulerKind::Sed,
        SchedulerKind::Nq,
        SchedulerKind::Sh,
        SchedulerKind::Dh,
        SchedulerKind::Mh,
        SchedulerKind::Fo,
        SchedulerKind::Ovf,
    ];

    /// The lowercase name IPVS and ipvsadm use.
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::Rr => "rr",
            SchedulerKind::Wrr => "wrr",
            SchedulerKind::Lc => "lc",
            SchedulerKind::Wlc => "wlc",
            SchedulerKind::Sed => "sed",
            SchedulerKind::Nq => "nq",
            SchedulerKind::Sh => "sh",
            SchedulerKind::Dh => "dh",
            SchedulerKind::Mh => "mh",
            SchedulerKind::Fo => "fo",
            SchedulerKind::Ovf => "ovf",
        }
    }

    /// The scheduler of that name (exact, lowercase).
    pub fn from_name(name: &str) -> Option<SchedulerKind> {
        SchedulerKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Scheduler flags (`ipvsadm -b`): sh-fallback, sh-port, mh-fallback,
/// mh-port, and pmdlb's own mh-template.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedFlags {
    /// sh/mh: if the hashed server is unavailable, try the next one.
    pub fallback: bool,
    /// sh/mh: include the client port in the hash.
    pub port: bool,
    /// A persistent service's new templates take their server from Maglev
    /// hashing of the template key (the masked client address), whatever
    /// the scheduler: directors with the same configuration and server
    /// states create the same template for a client, so a client that ECMP
    /// moves to another director before its template was synced keeps its
    /// server. Not in IPVS (`mh-template`).
    pub mh_template: bool,
}

/// Persistence (`ipvsadm -p TIMEOUT -M NETMASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// Seconds a template lives after the last packet or connection it controls.
    pub timeout_s: u32,
    /// Client prefix length the template key keeps (/32 or /128 = per address).
    pub prefix_len: u8,
}

/// One real server of a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealServerSpec {
    /// The server's address on the TX segment (same family as the VIP).
    pub addr: IpAddr,
    /// Weight; 0 = quiescent (no new clients).
    pub weight: u32,
    /// Upper connection threshold (0 = none), as `ipvsadm -x`.
    pub u_threshold: u32,
    /// Lower connection threshold (0 = none), as `ipvsadm -y`.
    pub l_threshold: u32,
    /// A static MAC of the next hop (the server itself, or for a tunnel
    /// server its gateway); when absent pmdlb resolves it by ARP/ND.
    pub mac: Option<MacAddr>,
    /// How packets reach the server: direct routing or a tunnel.
    pub forward: Forwarding,
    /// The next hop when it is not the server itself: the gateway towards
    /// a tunnel server in another subnet (`None` = on the TX segment).
    pub via: Option<IpAddr>,
}

/// How a real server is reached (ipvsadm's forwarding method).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Forwarding {
    /// Direct routing (`ipvsadm -g`, the default): only the destination MAC
    /// changes; the server is on the TX segment.
    #[default]
    Dr,
    /// IP tunnelling (`ipvsadm -i`): the packet is encapsulated to the
    /// server's address.
    Tunnel(Tunnel),
}

impl Forwarding {
    /// ipvsadm's name in the Forward column: `Route` or `Tunnel`.
    pub fn ipvsadm_name(self) -> &'static str {
        match self {
            Forwarding::Dr => "Route",
            Forwarding::Tunnel(_) => "Tunnel",
        }
    }
}

/// The encapsulation of a tunnel server (`--tun-type`, `--tun-port`,
/// `--tun-nocsum` / `--tun-csum`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// IPIP or GUE.
    pub kind: TunnelKind,
    /// GUE: the server's UDP port (0 for IPIP).
    pub port: u16,
    /// GUE: fill the outer UDP checksum over IPv4 (IPv6 always has one).
    pub csum: bool,
}

/// The tunnel types pmdlb builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// IPv4-in-IPv4 (protocol 4) or IPv6-in-IPv6 (next header 41), as
    /// IPVS's `ipip` type.
    Ipip,
    /// Generic UDP Encapsulation: UDP, a 4-byte GUE header (version 0),
    /// the inner IP packet.
    Gue,
}

impl fmt::Display for TunnelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gue => "gue",
        })
    }
}

/// One virtual service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// How the service is addressed.
    pub addr: ServiceAddr,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags.
    pub sched_flags: SchedFlags,
    /// Persistence, if the service is persistent.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (`ipvsadm -o`): every UDP datagram is
    /// scheduled on its own and leaves no connection entry.
    pub ops: bool,
    /// Real servers, in configuration order.
    pub servers: Vec<RealServerSpec>,
}

/// An inclusive range of ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

/// A mark rule: the equivalent of
/// `iptables -t mangle -A PREROUTING -d PREFIX -p PROTO --dport PORTS -j MARK --set-mark N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkRuleSpec {
    /// Destination address.
    pub dst: IpAddr,
    /// Destination prefix length (32/128 = one address).
    pub prefix_len: u8,
    /// Protocol, or `None` for any.
    pub proto: Option<u8>,
    /// Destination ports; empty = any port.
    pub ports: Vec<PortRange>,
    /// The mark to set.
    pub mark: u32,
}

/// Global state-layer settings (`ipvsadm --set` and the IPVS sysctls).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP ESTABLISHED, seconds (IPVS 900).
    pub tcp_established_s: u32,
    /// TCP SYN_RECV, seconds (IPVS 60).
    pub tcp_syn_recv_s: u32,
    /// TCP FIN_WAIT, seconds (IPVS 120).
    pub tcp_fin_wait_s: u32,
    /// TCP CLOSE, seconds (IPVS 10).
    pub tcp_close_s: u32,
    /// UDP, seconds (IPVS 300).
    pub udp_s: u32,
    /// TCP SYN_RECV while the `secure_tcp` defence is active, seconds
    /// (pmdlb 10; no effect when not shorter than `tcp_syn_recv_s`).
    pub tcp_syn_recv_secure_s: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established_s: 900,
            tcp_syn_recv_s: 60,
            tcp_fin_wait_s: 120,
            tcp_close_s: 10,
            udp_s: 300,
            tcp_syn_recv_secure_s: 10,
        }
    }
}

/// When a connection-table defence acts: IPVS's sysctl modes for
/// `drop_entry` and `secure_tcp` (0 off; 1 auto, shown as 2 while active;
/// 3 always), with the table's occupancy as the trigger instead of free
/// memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DefenceMode {
    /// Never (IPVS 0).
    #[default]
    Off,
    /// While the worker's table holds at least `conn_high_water_pct` of its
    /// capacity (IPVS 1 and 2).
    Auto,
    /// All the time (IPVS 3).
    Always,
}

impl DefenceMode {
    /// Whether the defence acts, given whether the table is under pressure.
    #[inline]
    pub fn active(self, pressure: bool) -> bool {
        match self {
            DefenceMode::Off => false,
            DefenceMode::Auto => pressure,
            DefenceMode::Always => true,
        }
    }
}

impl fmt::Display for DefenceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DefenceMode::Off => "off",
            DefenceMode::Auto => "auto",
            DefenceMode::Always => "always",
        })
    }
}

impl FromStr for DefenceMode {
    type Err = ();

    /// `off`, `auto`, `always`, or IPVS's sysctl values `0`, `1`, `2`, `3`.
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "off" | "0" => Ok(DefenceMode::Off),
            "auto" | "1" | "2" => Ok(DefenceMode::Auto),
            "always" | "3" => Ok(DefenceMode::Always),
            _ => Err(()),
        }
    }
}

/// Default [`StateFlags::conn_high_water_pct`].
pub const DEFAULT_CONN_HIGH_WATER_PCT: u8 = 90;

/// Behaviour switches, as the IPVS sysctls of the same names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateFlags {
    /// Schedule TCP packets that are not SYN when no entry exists.
    pub sloppy_tcp: bool,
    /// Expire templates whose server became quiescent (weight 0).
    pub expire_quiescent_template: bool,
    /// Drop connections of a removed server at once (else keep until expiry).
    pub expire_nodest_conn: bool,
    /// When a new flow finds its buckets full, evict an embryonic entry
    /// (SYN_RECV, single-packet UDP) there, and refuse the flow if there is
    /// none (IPVS `drop_entry`).
    pub drop_entry: DefenceMode,
    /// Expire SYN_RECV entries after `Timeouts::tcp_syn_recv_secure_s`
    /// (IPVS `secure_tcp`).
    pub secure_tcp: DefenceMode,
    /// Occupancy of a worker's connection table, percent of its capacity,
    /// at which `auto` defences start (pmdlb's `amemthresh`; a new flow
    /// that finds its buckets full starts them earlier); they stop once the
    /// table has shrunk 5 points below where they started.
    pub conn_high_water_pct: u8,
}

impl Default for StateFlags {
    fn default() -> Self {
        StateFlags {
            sloppy_tcp: false,
            expire_quiescent_template: false,
            expire_nodest_conn: false,
            drop_entry: DefenceMode::Off,
            secure_tcp: DefenceMode::Off,
            conn_high_water_pct: DEFAULT_CONN_HIGH_WATER_PCT,
        }
    }
}

/// A virtual IP pmdlb answers for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipSpec {
    /// The address.
    pub addr: IpAddr,
    /// Answer ARP (IPv6: neighbour solicitation) for it on the RX NIC and
    /// announce it at start.
    pub answer_arp: bool,
    /// Answer ICMP/ICMPv6 echo requests to it.
    pub answer_ping: bool,
}
