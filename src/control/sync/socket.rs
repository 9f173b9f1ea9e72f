//! The sync daemon's UDP sockets through the kernel's stack (socket2): a
//! sender (multicast out of `interface` with the TTL and loopback off, as
//! IPVS's `make_send_sock`; or unicast), and a receiver bound to `port`
//! that joins the group on `interface` (`make_receive_sock`), with a read
//! timeout so its thread notices a stop. Interface facts (its IPv4 address
//! for IP_MULTICAST_IF and the join, its MTU for `maxlen`) come from
//! `ip -o -4 addr` and sysfs.

#![forbid(unsafe_code)]

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::control::config::{SyncSettings, SyncTransport};

/// The receiver's read timeout: how soon a stop is noticed.
pub const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Why a socket could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The interface has no IPv4 address (or `ip` failed).
    #[error("sync.interface {0}: no IPv4 address found (ip -o -4 addr show dev {0}); give the management interface an address")]
    NoAddress(String),
    /// A socket call failed.
    #[error("sync socket: {what}: {err}")]
    Io {
        /// The call.
        what: String,
        /// Why.
        err: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SocketError {
    let what = what.into();
    move |err| SocketError::Io { what, err }
}

/// The first IPv4 address of interface `name`.
pub fn interface_addr(name: &str) -> Result<Ipv4Addr, SocketError> {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", name])
        .output()
        .map_err(|_| SocketError::NoAddress(name.to_owned()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "inet" {
            if let Some(a) = words.next().and_then(|a| a.split('/').next()) {
                if let Ok(ip) = a.parse() {
                    return Ok(ip);
                }
            }
        }
    }
    Err(SocketError::NoAddress(name.to_owned()))
}

/// The MTU of interface `name` (1500 when it cannot be read).
pub fn interface_mtu(name: Option<&str>) -> u32 {
    name.and_then(|n| std::fs::read_to_string(format!("/sys/class/net/{n}/mtu")).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

fn udp() -> Result<Socket, SocketError> {
    Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).map_err(io_err("socket"))
}

fn source_v4(s: &SyncSettings) -> Ipv4Addr {
    match s.source {
        Some(IpAddr::V4(a)) => a,
        _ => Ipv4Addr::UNSPECIFIED,
    }
}

/// The sending socket and where its datagrams go.
pub fn sender(s: &SyncSettings) -> Result<(UdpSocket, Vec<SocketAddr>), SocketError> {
    let sock = udp()?;
    let bind = SocketAddrV4::new(source_v4(s), 0);
    sock.bind(&bind.into())
        .map_err(io_err(format!("bind {bind}")))?;
    let dests = match &s.transport {
        SyncTransport::Multicast { group } => {
            let ifname = s.interface.as_deref().unwrap_or_default();
            let ifaddr = interface_addr(ifname)?;
            sock.set_multicast_if_v4(&ifaddr)
                .map_err(io_err(format!("IP_MULTICAST_IF {ifname} ({ifaddr})")))?;
            sock.set_multicast_ttl_v4(u32::from(s.ttl))
                .map_err(io_err("IP_MULTICAST_TTL"))?;
            sock.set_multicast_loop_v4(false)
                .map_err(io_err("IP_MULTICAST_LOOP"))?;
            vec![SocketAddr::V4(SocketAddrV4::new(*group, s.port))]
        }
        SyncTransport::Unicast { peers } => {
            sock.set_ttl_v4(u32::from(s.ttl))
                .map_err(io_err("IP_TTL"))?;
            peers.clone()
        }
    };
    Ok((sock.into(), dests))
}

/// The receiving socket, bound to `port` (joined to the group).
pub fn receiver(s: &SyncSettings) -> Result<UdpSocket, SocketError> {
    let sock = udp()?;
    sock.set_reuse_address(true)
        .map_err(io_err("SO_REUSEADDR"))?;
    let bind_ip = match s.transport {
        SyncTransport::Multicast { .. } => Ipv4Addr::UNSPECIFIED,
        SyncTransport::Unicast { .. } => source_v4(s),
    };
    let bind = SocketAddrV4::new(bind_ip, s.port);
    sock.bind(&bind.into())
        .map_err(io_err(format!("bind {bind}")))?;
    if let SyncTransport::Multicast { group } = &s.transport {
        let ifname = s.interface.as_deref().unwrap_or_default();
        let ifaddr = interface_addr(ifname)?;
        sock.join_multicast_v4(group, &ifaddr)
            .map_err(io_err(format!("join {group} on {ifname} ({ifaddr})")))?;
    }
    sock.set_read_timeout(Some(READ_TIMEOUT))
        .map_err(io_err("SO_RCVTIMEO"))?;
    // Bursts of a busy master wait here rather than in the NIC.
    let _ = sock.set_recv_buffer_size(4 << 20);
    Ok(sock.into())
}
