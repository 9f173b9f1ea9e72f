//! What an IPVS sync record means to pmdlb: a connection entry or a
//! persistence template as a [`SyncConn`] (with the addresses of its
//! service and server from the snapshot), and a received record as what
//! pmdlb would install — a flow with its state, server and timeout, or a
//! template key with its server and timeout.
//!
//! # The mapping, field by field (IPVS's meaning first)
//!
//! * **Connection** (`ip_vs_sync_conn` of an `ip_vs_conn`): protocol and
//!   the 5-tuple of the flow; `daddr` the server; `dport` the virtual port
//!   (a DR server's port is the service's, and a port-0 or fwmark service's
//!   server has port 0, so IPVS forwards to the packet's port); `fwmark` the
//!   service's mark for a fwmark service, else 0; `state` IPVS's number
//!   (pmdlb's [`ConnState`] is in `IP_VS_TCP_S_*` order; a UDP flow is
//!   `IP_VS_UDP_S_NORMAL`, an SCTP flow, which pmdlb does not track, is
//!   sent as `IP_VS_SCTP_S_ESTABLISHED`); flags the forwarding method,
//!   `NOOUTPUT` (every method but NAT) and `INACTIVE` unless ESTABLISHED,
//!   as `__ip_vs_update_dest` and the TCP state handler leave them.
//! * **Template** (`ip_vs_sched_persist`): flag `TEMPLATE` (plus the
//!   method, `NOOUTPUT`, `INACTIVE`), state `IP_VS_CTPL_S_NONE`, client port
//!   0 and the masked client address, then by service kind:
//!   * `(proto, VIP, port)`: `<proto, client, 0, VIP, port, server, port>`;
//!   * port 0: `<proto, client, 0, VIP, 0, server, 0>`;
//!   * `fwmark N`: `<IPPROTO_IP, client, 0, N as an address, 0, server, 0>`
//!     with `fwmark` = N (the address is N big-endian in its first 4 bytes,
//!     the rest zero, for IPv4 and IPv6 alike: `union nf_inet_addr`'s `.ip`).
//!
//!   IPVS gives an FTP service (port 21) a port-0 template; pmdlb has no
//!   FTP helper and keys port 21 like any port.
//! * **Timeout** (seconds): IPVS sends the entry's whole timeout for its
//!   state, sent when a packet has just re-armed it; pmdlb sends the time
//!   left (rounded up, at least 1 s), which is the same at that moment and
//!   exact afterwards. A template with connections sends the service's
//!   persistence timeout (it lives at least that long after the last). A
//!   received 0 means the receiver's default: the state's timeout, or 180 s
//!   for a template (`ip_vs_proc_conn`).
//!
//! # Receiving (`ip_vs_proc_sync_conn`, `ip_vs_proc_conn`, `ip_vs_find_dest`)
//!
//! The service is the fwmark service of a non-zero `fwmark` if there is
//! one, else `(proto, vaddr, vport)`, else the port-0 service of `vaddr`.
//! The server is the service's server with address `daddr` (pmdlb servers
//! have no port); its forwarding method is pmdlb's own, whatever the record
//! says, as a synced IPVS entry inherits its destination's. A connection
//! of an unknown protocol or with a state outside its protocol's table is
//! refused, as is a record with persistence-engine data (pmdlb has no
//! engine; the kernel refuses one it has not loaded). IPVS keeps a record
//! with no matching server as an unbound entry; pmdlb has nothing to
//! forward it to and refuses it. Sequence-adjustment data (NAT only) is
//! ignored.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::lb::conn::{timeout_ms, ConnEntry, ConnState};
use crate::lb::persist::{TemplateEntry, TemplateKey};
use crate::lb::realserver::{RealServer, ServiceState};
use crate::lb::snapshot::Snapshot;
use crate::lb::spec::{Forwarding, ServiceAddr, Timeouts};
use crate::lb::types::{ip_proto, Addr, Family, FlowKey, RsId, ServiceId};
use crate::wire::ipvs_sync::{flags, state, SyncAddrs, SyncConn};

/// A template's timeout when its record says 0 (`ip_vs_proc_conn`).
pub const DEFAULT_TEMPLATE_TIMEOUT_MS: u64 = 3 * 60 * 1000;

/// Why an entry is not turned into a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotSent {
    /// The snapshot no longer has its service.
    #[error("its service is no longer configured")]
    NoService,
    /// The snapshot no longer has its server.
    #[error("its real server is no longer configured")]
    NoServer,
    /// A template of a service that is not (or no longer) persistent.
    #[error("its service is not persistent")]
    NotPersistent,
    /// A protocol IPVS keeps no state table for.
    #[error("protocol {0} has no IPVS state table")]
    Protocol(u8),
    /// Already expired.
    #[error("already expired")]
    Expired,
    /// The server's family is not the flow's.
    #[error("the server's address family is not the flow's")]
    MixedFamily,
}

/// Why a received record is not installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotInstalled {
    /// A connection of a protocol pmdlb does not balance.
    #[error("protocol {0} is not balanced")]
    Protocol(u8),
    /// A state outside the protocol's table.
    #[error("protocol {proto}: no state {state}")]
    State {
        /// IP protocol.
        proto: u8,
        /// The record's state.
        state: u16,
    },
    /// No service matches.
    #[error("no matching virtual service")]
    NoService,
    /// The service has no server with that address.
    #[error("the service has no such real server")]
    NoServer,
    /// A template for a service that is not persistent.
    #[error("a template for a service that is not persistent")]
    NotPersistent,
    /// Persistence-engine data (pmdlb has no persistence engine).
    #[error("persistence-engine data (no engine here)")]
    PersistenceEngine,
}

/// A connection to install from a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnInstall {
    /// The flow.
    pub key: FlowKey,
    /// Its service.
    pub svc: ServiceId,
    /// Its server.
    pub rs: RsId,
    /// Its state.
    pub state: ConnState,
    /// Time to live from reception, ms.
    pub timeout_ms: u64,
    /// The record's `INACTIVE` flag. IPVS lets an active record move an
    /// existing entry to another server, and ignores an inactive one that
    /// disagrees (the expiry of a connection already replaced).
    pub inactive: bool,
}

/// A template to install from a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateInstall {
    /// Its key (the client masked with the service's netmask).
    pub key: TemplateKey,
    /// Its server.
    pub rs: RsId,
    /// Time to live from reception, ms.
    pub timeout_ms: u64,
}

/// What a received record installs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// A connection entry.
    Conn(ConnInstall),
    /// A persistence template.
    Template(TemplateInstall),
}

/// The record of connection `e` at time `now_ms`.
pub fn conn_record(e: &ConnEntry, snap: &Snapshot, now_ms: u64) -> Result<SyncConn, NotSent> {
    let st = snap.service(e.svc).ok_or(NotSent::NoService)?;
    let rs = snap.server(e.rs).ok_or(NotSent::NoServer)?;
    let k = &e.key;
    let addrs = SyncAddrs::new(
        k.client().to_ip(k.family()),
        k.vip().to_ip(k.family()),
        rs.addr,
    )
    .ok_or(NotSent::MixedFamily)?;
    let inactive = if e.state == ConnState::Established {
        0
    } else {
        flags::INACTIVE
    };
    Ok(SyncConn {
        protocol: k.proto(),
        flags: forwarding_flags(rs) | inactive,
        state: ipvs_state(k.proto(), e.state)?,
        cport: k.cport(),
        vport: k.vport(),
        dport: k.vport(),
        fwmark: fwmark_of(st),
        timeout: seconds_left(e.expires, now_ms)?,
        addrs,
        seq: None,
        pe: None,
    })
}

/// The record of template `t` at time `now_ms`.
pub fn template_record(
    t: &TemplateEntry,
    snap: &Snapshot,
    now_ms: u64,
) -> Result<SyncConn, NotSent> {
    let st = snap.service(t.key.svc).ok_or(NotSent::NoService)?;
    let p = st.persistence.ok_or(NotSent::NotPersistent)?;
    let rs = snap.server(t.rs).ok_or(NotSent::NoServer)?;
    let family = Addr::from_ip(rs.addr).0;
    let timeout = match t.refs {
        0 => seconds_left(t.expires, now_ms)?,
        _ => p.timeout_s.max(1),
    };
    let (protocol, vaddr, port) = match st.addr {
        ServiceAddr::Addr { proto, vip, port } => (proto, vip, port),
        ServiceAddr::Fwmark(m) => (0, fwmark_addr(m, family), 0),
    };
    let client = t.key.client.to_ip(family);
    Ok(SyncConn {
        protocol,
        flags: flags::TEMPLATE | forwarding_flags(rs) | flags::INACTIVE,
        state: state::CTPL_NONE,
        cport: 0,
        vport: port,
        dport: port,
        fwmark: fwmark_of(st),
        timeout,
        addrs: SyncAddrs::new(client, vaddr, rs.addr).ok_or(NotSent::MixedFamily)?,
        seq: None,
        pe: None,
    })
}

/// What record `c` installs, with timeouts `t` for a record without one.
pub fn install_of(c: &SyncConn, snap: &Snapshot, t: &Timeouts) -> Result<Install, NotInstalled> {
    if c.pe.is_some() {
        return Err(NotInstalled::PersistenceEngine);
    }
    let st = find_service(c, snap).ok_or(NotInstalled::NoService)?;
    let (client, _, dest) = c.addrs.get();
    let rs = st
        .servers
        .iter()
        .find(|s| s.addr == dest)
        .ok_or(NotInstalled::NoServer)?
        .id;
    if c.flags & flags::TEMPLATE != 0 {
        let p = st.persistence.ok_or(NotInstalled::NotPersistent)?;
        let timeout_ms = ms_or(c.timeout, DEFAULT_TEMPLATE_TIMEOUT_MS);
        let key = TemplateKey::new(st.id, Addr::from_ip(client).1, p.prefix_len);
        return Ok(Install::Template(TemplateInstall {
            key,
            rs,
            timeout_ms,
        }));
    }
    let state = conn_state(c.protocol, c.state)?;
    Ok(Install::Conn(ConnInstall {
        key: flow_key(c),
        svc: st.id,
        rs,
        state,
        timeout_ms: ms_or(c.timeout, timeout_ms(state, t)),
        inactive: c.flags & flags::INACTIVE != 0,
    }))
}

/// The service a record belongs to (`ip_vs_service_find`): the fwmark
/// service first, then the exact service, then the port-0 one.
fn find_service<'a>(c: &SyncConn, snap: &'a Snapshot) -> Option<&'a ServiceState> {
    let by_mark = (c.fwmark != 0)
        .then(|| snap.find_service(&ServiceAddr::Fwmark(c.fwmark)))
        .flatten();
    let vip = c.addrs.get().1;
    let by_addr = |port| {
        snap.find_service(&ServiceAddr::Addr {
            proto: c.protocol,
            vip,
            port,
        })
    };
    by_mark.or_else(|| by_addr(c.vport)).or_else(|| by_addr(0))
}

fn flow_key(c: &SyncConn) -> FlowKey {
    let (client, vip, _) = c.addrs.get();
    let (family, client) = Addr::from_ip(client);
    FlowKey::new(
        family,
        c.protocol,
        client,
        c.cport,
        Addr::from_ip(vip).1,
        c.vport,
    )
}

/// IPVS's state number of a pmdlb state for protocol `proto`.
fn ipvs_state(proto: u8, s: ConnState) -> Result<u16, NotSent> {
    match (proto, s) {
        (ip_proto::TCP, ConnState::Udp) => Err(NotSent::Protocol(proto)),
        (ip_proto::TCP, s) => Ok(s as u16),
        (ip_proto::UDP, _) => Ok(state::UDP_NORMAL),
        (ip_proto::SCTP, _) => Ok(state::SCTP_ESTABLISHED),
        _ => Err(NotSent::Protocol(proto)),
    }
}

/// pmdlb's state of an IPVS state number, refused outside the protocol's
/// table as the kernel refuses it (`state >= pp->num_states`).
fn conn_state(proto: u8, s: u16) -> Result<ConnState, NotInstalled> {
    let bad = NotInstalled::State { proto, state: s };
    match proto {
        ip_proto::TCP => TCP_STATES.get(s as usize).copied().ok_or(bad),
        ip_proto::UDP if s < state::UDP_LAST => Ok(ConnState::Udp),
        ip_proto::SCTP if s < state::SCTP_LAST => Ok(ConnState::Udp),
        ip_proto::UDP | ip_proto::SCTP => Err(bad),
        _ => Err(NotInstalled::Protocol(proto)),
    }
}

/// pmdlb's TCP states by IPVS number (`IP_VS_TCP_S_NONE` ..
/// `IP_VS_TCP_S_SYNACK`).
const TCP_STATES: [ConnState; state::TCP_LAST as usize] = [
    ConnState::None,
    ConnState::Established,
    ConnState::SynSent,
    ConnState::SynRecv,
    ConnState::FinWait,
    ConnState::TimeWait,
    ConnState::Close,
    ConnState::CloseWait,
    ConnState::LastAck,
    ConnState::Listen,
    ConnState::SynAck,
];

/// The forwarding method's flags as a destination gives them to its
/// entries (`__ip_vs_update_dest`): the method and `NOOUTPUT`.
fn forwarding_flags(rs: &RealServer) -> u32 {
    let method = match rs.forward {
        Forwarding::Dr => flags::DROUTE,
        Forwarding::Tunnel(_) => flags::TUNNEL,
    };
    method | flags::NOOUTPUT
}

fn fwmark_of(st: &ServiceState) -> u32 {
    match st.addr {
        ServiceAddr::Fwmark(m) => m,
        ServiceAddr::Addr { .. } => 0,
    }
}

/// A fwmark as a template's virtual address (`{ .ip = htonl(fwmark) }`).
fn fwmark_addr(mark: u32, family: Family) -> IpAddr {
    match family {
        Family::V4 => Ipv4Addr::from(mark).into(),
        Family::V6 => Ipv6Addr::from((mark as u128) << 96).into(),
    }
}

/// Whole seconds until `expires` (rounded up, at least 1).
fn seconds_left(expires: u64, now_ms: u64) -> Result<u32, NotSent> {
    let left = expires.checked_sub(now_ms).filter(|&l| l > 0);
    let left = left.ok_or(NotSent::Expired)?;
    Ok(left.div_ceil(1000).min(u32::MAX as u64) as u32)
}

fn ms_or(seconds: u32, default_ms: u64) -> u64 {
    match seconds {
        0 => default_ms,
        s => s as u64 * 1000,
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
