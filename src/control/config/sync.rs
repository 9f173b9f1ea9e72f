//! `[sync]`: connection and persistence sync between directors (IPVS's
//! sync daemon), validated into [`SyncSettings`].

#![forbid(unsafe_code)]

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::announce::check_device_name;
use super::raw::RawSync;
use super::validate::Check;
use crate::wire::ipvs_sync::{MCAST_GROUP, MCAST_PORT};

/// Default `sync.flush_ms` (IPVS waits up to 2 s, `IPVS_SYNC_FLUSH_TIME`).
pub const DEFAULT_FLUSH_MS: u32 = 100;
/// Default `sync.ring`: slots of each worker's two rings.
pub const DEFAULT_RING: u32 = 8192;
/// Default `sync.announce_hold_ms`.
pub const DEFAULT_ANNOUNCE_HOLD_MS: u32 = 3000;
/// Largest UDP payload over IPv4 (65535 − 20 − 8).
pub const MAX_MAXLEN: u32 = 65507;

/// What this director does in the sync: IPVS's master sends, its backup
/// receives; `Both` is active-active, every director sends and receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncRole {
    /// Sends its connections to the peers.
    Master,
    /// Installs what the peers send.
    Backup,
    /// Both at once (active-active).
    Both,
}

impl SyncRole {
    /// Whether this role sends.
    pub fn sends(self) -> bool {
        matches!(self, SyncRole::Master | SyncRole::Both)
    }

    /// Whether this role receives.
    pub fn receives(self) -> bool {
        matches!(self, SyncRole::Backup | SyncRole::Both)
    }
}

impl fmt::Display for SyncRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SyncRole::Master => "master",
            SyncRole::Backup => "backup",
            SyncRole::Both => "both",
        })
    }
}

/// Where sync datagrams go and come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncTransport {
    /// IPVS's way: one multicast group on one interface.
    Multicast {
        /// The group.
        group: Ipv4Addr,
    },
    /// Unicast: sent to each peer; received on `port` from these peers'
    /// addresses only.
    Unicast {
        /// The peers.
        peers: Vec<SocketAddr>,
    },
}

/// `[sync]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// Master, backup or both.
    pub role: SyncRole,
    /// Cluster id sent in every message; a receiver takes only its own (0:
    /// any).
    pub syncid: u8,
    /// Multicast group or unicast peers.
    pub transport: SyncTransport,
    /// The kernel interface (IPVS's `mcast_ifn`): multicast goes out and is
    /// joined on it; its MTU gives the default `maxlen`.
    pub interface: Option<String>,
    /// UDP port received on (and the group's port).
    pub port: u16,
    /// IP TTL of sent datagrams.
    pub ttl: u8,
    /// Local address the sockets bind to.
    pub source: Option<IpAddr>,
    /// Largest datagram payload (IPVS's `sync_maxlen`); 0: from the MTU.
    pub maxlen: u32,
    /// A flow is sent when its packet count modulo `period` is this.
    pub threshold: u8,
    /// See `threshold`.
    pub period: u8,
    /// Longest a record waits for its datagram to fill, ms.
    pub flush_ms: u32,
    /// Slots of each worker's two sync rings.
    pub ring: u32,
    /// With `[announce]` and a receiving role, VIPs are held back until
    /// the receiver has run this long, ms.
    pub announce_hold_ms: u32,
}

/// `[sync]`, if present. Problems are recorded in `c`.
pub(super) fn settings(c: &mut Check, raw: Option<&RawSync>) -> Option<SyncSettings> {
    let raw = raw?;
    let role = role(c, raw.role.as_deref());
    let syncid = c.int("sync.syncid", raw.syncid, 0, 0, 255) as u8;
    let port = c.int("sync.port", raw.port, i64::from(MCAST_PORT), 1, 65535) as u16;
    let ttl = c.int("sync.ttl", raw.ttl, 1, 1, 255) as u8;
    let interface = raw.interface.clone();
    if let Some(Err(why)) = interface.as_deref().map(check_device_name) {
        c.err("sync.interface", why);
    }
    let transport = transport(c, raw, interface.is_some());
    let source = raw
        .source
        .as_deref()
        .and_then(|s| match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Some(IpAddr::V4(a)),
            Ok(IpAddr::V6(_)) => {
                c.err(
                    "sync.source",
                    "IPv6 sync is not supported; use an IPv4 address",
                );
                None
            }
            Err(_) => {
                c.err("sync.source", format!("{s:?} is not an IP address"));
                None
            }
        });
    let maxlen = maxlen(c, raw.maxlen);
    let period = c.int("sync.period", raw.period, 50, 1, 255) as u8;
    let threshold = c.int("sync.threshold", raw.threshold, 3, 0, 254) as u8;
    if threshold >= period {
        c.err(
            "sync.threshold",
            format!(
                "{threshold} is not below sync.period ({period}); IPVS's defaults are 3 and 50"
            ),
        );
    }
    let flush_ms = c.int(
        "sync.flush_ms",
        raw.flush_ms,
        i64::from(DEFAULT_FLUSH_MS),
        1,
        2000,
    ) as u32;
    let ring = c.int("sync.ring", raw.ring, i64::from(DEFAULT_RING), 64, 1 << 20) as u32;
    let announce_hold_ms = c.int(
        "sync.announce_hold_ms",
        raw.announce_hold_ms,
        i64::from(DEFAULT_ANNOUNCE_HOLD_MS),
        0,
        600_000,
    ) as u32;
    Some(SyncSettings {
        role,
        syncid,
        transport,
        interface,
        port,
        ttl,
        source,
        maxlen,
        threshold,
        period,
        flush_ms,
        ring: ring.next_power_of_two(),
        announce_hold_ms,
    })
}

fn role(c: &mut Check, v: Option<&str>) -> SyncRole {
    match v {
        Some("master") => SyncRole::Master,
        Some("backup") => SyncRole::Backup,
        Some("both") => SyncRole::Both,
        Some(other) => {
            c.err(
                "sync.role",
                format!("{other:?} is not a role; use \"master\" (send), \"backup\" (receive) or \"both\" (active-active)"),
            );
            SyncRole::Backup
        }
        None => {
            c.err(
                "sync.role",
                "missing; use \"master\" (send), \"backup\" (receive) or \"both\" (active-active)",
            );
            SyncRole::Backup
        }
    }
}

/// Multicast (the default) needs an interface; `peers` makes it unicast
/// and excludes `group`.
fn transport(c: &mut Check, raw: &RawSync, has_interface: bool) -> SyncTransport {
    if let Some(list) = &raw.peers {
        if raw.group.is_some() {
            c.err(
                "sync.peers",
                "peers (unicast) and group (multicast) exclude each other; keep one",
            );
        }
        if list.is_empty() {
            c.err(
                "sync.peers",
                "empty; list \"ip:port\" peers, or remove the key for multicast",
            );
        }
        let mut peers = Vec::new();
        for (i, p) in list.iter().enumerate() {
            match p.trim().parse::<SocketAddr>() {
                Ok(SocketAddr::V4(a)) if a.port() != 0 => peers.push(SocketAddr::V4(a)),
                Ok(_) => c.err(
                    format!("sync.peers[{i}]"),
                    format!("{p:?}: use an IPv4 address and a port other than 0, e.g. \"10.1.0.2:8848\""),
                ),
                Err(_) => c.err(
                    format!("sync.peers[{i}]"),
                    format!("{p:?} is not \"ip:port\", e.g. \"10.1.0.2:8848\""),
                ),
            }
        }
        return SyncTransport::Unicast { peers };
    }
    let group = match raw.group.as_deref().map(str::parse::<Ipv4Addr>) {
        None => MCAST_GROUP,
        Some(Ok(g)) if g.is_multicast() => g,
        Some(_) => {
            c.err(
                "sync.group",
                format!(
                    "{:?} is not an IPv4 multicast address (224.0.0.0/4); IPVS uses {MCAST_GROUP}",
                    raw.group.as_deref().unwrap_or_default()
                ),
            );
            MCAST_GROUP
        }
    };
    if !has_interface {
        c.err(
            "sync.interface",
            "missing: multicast sync needs the kernel interface to send and join on (IPVS's --mcast-interface), or set peers for unicast",
        );
    }
    SyncTransport::Multicast { group }
}

fn maxlen(c: &mut Check, v: Option<i64>) -> u32 {
    match v {
        None | Some(0) => 0,
        Some(n) if (1024..=i64::from(MAX_MAXLEN)).contains(&n) => n as u32,
        Some(n) => {
            c.err(
                "sync.maxlen",
                format!("{n} is out of range; use 1024..={MAX_MAXLEN}, or 0 for the interface MTU − 28 (default)"),
            );
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        crate::control::config::tests::load_one_service(extra)
    }

    #[test]
    fn absent_means_off_present_means_ipvs_defaults() {
        assert_eq!(load("").unwrap().sync(), None);
        let c = load("[sync]\nrole = \"master\"\ninterface = \"eth1\"\n").unwrap();
        let s = c.sync().unwrap();
        assert_eq!(
            s.transport,
            SyncTransport::Multicast {
                group: Ipv4Addr::new(224, 0, 0, 81)
            }
        );
        assert_eq!(
            (s.role, s.syncid, s.port, s.ttl, s.maxlen),
            (SyncRole::Master, 0, 8848, 1, 0)
        );
        assert_eq!(
            (
                s.threshold,
                s.period,
                s.flush_ms,
                s.ring,
                s.announce_hold_ms
            ),
            (3, 50, 100, 8192, 3000)
        );
        assert!(s.role.sends() && !s.role.receives());
        assert!(SyncRole::Both.sends() && SyncRole::Both.receives());
    }

    #[test]
    fn peers_make_it_unicast() {
        let c = load("[sync]\nrole = \"both\"\npeers = [\"127.0.0.1:9000\", \"10.1.0.2:8848\"]\nring = 100\n")
            .unwrap();
        let s = c.sync().unwrap();
        assert_eq!(s.ring, 128, "rounded up to a power of two");
        let SyncTransport::Unicast { peers } = &s.transport else {
            panic!("{s:?}")
        };
        assert_eq!(peers.len(), 2);
    }

    #[test]
    fn bad_values_name_their_key() {
        for (extra, parts) in [
            ("interface = \"eth0\"", &["sync.role", "missing"][..]),
            (
                "role = \"primary\"\ninterface = \"eth0\"",
                &["sync.role", "\"both\""],
            ),
            ("role = \"master\"", &["sync.interface", "peers"]),
            ("role = \"backup\"", &["sync.interface", "missing"]),
            (
                "role = \"master\"\ninterface = \"a b\"",
                &["sync.interface", "interface name"],
            ),
            (
                "role = \"master\"\ninterface = \"eth0\"\nsyncid = 256",
                &["sync.syncid", "0..=255"],
            ),
            (
                "role = \"master\"\ninterface = \"eth0\"\ngroup = \"10.0.0.1\"",
                &["sync.group", "multicast"],
            ),
            ("role = \"master\"\npeers = []", &["sync.peers", "empty"]),
            (
                "role = \"master\"\npeers = [\"1.2.3.4\"]",
                &["sync.peers[0]", "ip:port"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:0\"]",
                &["sync.peers[0]", "port other than 0"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\ngroup = \"224.0.0.81\"",
                &["sync.peers", "exclude"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nthreshold = 50",
                &["sync.threshold", "below sync.period"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nperiod = 0",
                &["sync.period", "1..=255"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nperiod = 256",
                &["sync.period"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nmaxlen = 100",
                &["sync.maxlen", "1024..=65507"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nflush_ms = 0",
                &["sync.flush_ms", "1..=2000"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nsource = \"x\"",
                &["sync.source", "not an IP"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nport = 0",
                &["sync.port"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nttl = 0",
                &["sync.ttl"],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nring = 8",
                &["sync.ring", "64..="],
            ),
            (
                "role = \"master\"\npeers = [\"1.2.3.4:1\"]\nmcast = 1",
                &["unknown field"],
            ),
        ] {
            let e = load(&format!("[sync]\n{extra}\n")).unwrap_err();
            for p in parts {
                assert!(e.contains(p), "{extra}: {p:?} not in {e}");
            }
        }
    }

    #[test]
    fn a_change_needs_a_restart() {
        let a = load("[sync]\nrole = \"backup\"\ninterface = \"eth0\"\n").unwrap();
        let b = load("[sync]\nrole = \"backup\"\ninterface = \"eth0\"\nsyncid = 4\n").unwrap();
        assert_eq!(a.needs_restart(&b), vec!["[sync]"]);
    }
}
