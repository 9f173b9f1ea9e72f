//! The validated description of virtual services, mark rules and real
//! servers: what the configuration produces and what the service lookup
//! ([`crate::lb::service`]) and the state layer build their tables from.
//! Plain data; the config module validates it before anything is built.

use std::net::IpAddr;

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

/// Scheduler flags (`ipvsadm -b`): sh-fallback, sh-port, mh-fallback, mh-port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedFlags {
    /// sh/mh: if the hashed server is unavailable, try the next one.
    pub fallback: bool,
    /// sh/mh: include the client port in the hash.
    pub port: bool,
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
    /// A static MAC; when absent pmdlb resolves it by ARP/ND.
    pub mac: Option<MacAddr>,
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
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            tcp_established_s: 900,
            tcp_syn_recv_s: 60,
            tcp_fin_wait_s: 120,
            tcp_close_s: 10,
            udp_s: 300,
        }
    }
}

/// Behaviour switches, as the IPVS sysctls of the same names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateFlags {
    /// Schedule TCP packets that are not SYN when no entry exists.
    pub sloppy_tcp: bool,
    /// Expire templates whose server became quiescent (weight 0).
    pub expire_quiescent_template: bool,
    /// Drop connections of a removed server at once (else keep until expiry).
    pub expire_nodest_conn: bool,
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
