//! Real-server MAC resolution on the TX segment, run by the control plane:
//! ARP requests (IPv6: neighbour solicitations) for every server without a
//! static MAC at start, retried every `retry_ms` until answered, then
//! refreshed every `refresh_s`. Answers arrive as frames the workers hand
//! over (one-armed) or that the control plane reads from the TX NIC's own
//! RX queue; each teaches a binding that is installed in the snapshot for
//! every real-server id with that address. A server that stops answering
//! keeps its last MAC (its flows keep going) and is reported as stale.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::dataplane::neighbour::{arp_request, learn, neighbour_solicit, Learned};
use crate::lb::snapshot::Snapshot;
use crate::lb::types::RsId;
use crate::wire::ethernet::MacAddr;

/// One address being resolved.
#[derive(Clone, Debug)]
pub struct Neighbour {
    /// The address.
    pub addr: IpAddr,
    /// Real-server ids whose next hop this is (one per service a server
    /// serves; every tunnel server behind a gateway shares its entry).
    pub ids: Vec<RsId>,
    /// The MAC learned, if any.
    pub mac: Option<MacAddr>,
    /// When the last request went out.
    pub last_request: Option<Instant>,
    /// When the last answer came in.
    pub last_answer: Option<Instant>,
    /// Requests sent.
    pub requests: u64,
}

/// Counters of the resolver.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResolverStats {
    /// ARP requests / solicitations sent.
    pub requests: u64,
    /// Bindings learned or refreshed for real servers.
    pub learned: u64,
    /// MAC changes of already-resolved servers.
    pub changed: u64,
    /// Neighbour frames that concerned no real server.
    pub ignored: u64,
    /// Frames that were no ARP packet or neighbour advertisement (the TX
    /// NIC's RX queue sees all traffic of its segment).
    pub not_neighbour: u64,
}

/// The resolver.
#[derive(Debug)]
pub struct Resolver {
    entries: Vec<Neighbour>,
    index: HashMap<IpAddr, usize>,
    tx_mac: MacAddr,
    tx_addr: Option<Ipv4Addr>,
    tx_addr6: Option<Ipv6Addr>,
    vlan: Option<u16>,
    retry: Duration,
    refresh: Duration,
    stats: ResolverStats,
}

impl Resolver {
    /// A resolver for every server of `snap` without a MAC (static MACs are
    /// already installed by the snapshot). Requests leave from `tx_mac` with
    /// `tx_addr` / `tx_addr6` as sender, tagged with `vlan` if given.
    pub fn new(
        snap: &Snapshot,
        tx_mac: MacAddr,
        tx_addr: Option<Ipv4Addr>,
        tx_addr6: Option<Ipv6Addr>,
        vlan: Option<u16>,
        retry: Duration,
        refresh: Duration,
    ) -> Resolver {
        let mut r = Resolver {
            entries: Vec::new(),
            index: HashMap::new(),
            tx_mac,
            tx_addr,
            tx_addr6,
            vlan,
            retry,
            refresh,
            stats: ResolverStats::default(),
        };
        r.sync(snap);
        r
    }

    /// Follow a new snapshot: every server without a MAC is resolved (a
    /// server added behind a neighbour already known gets its MAC at once),
    /// servers with a static MAC are left alone, and neighbours no server
    /// uses any more are forgotten.
    pub fn sync(&mut self, snap: &Snapshot) {
        for e in &mut self.entries {
            e.ids.clear();
        }
        for rs in snap.servers() {
            let known = self.index.get(&rs.next_hop).copied();
            if rs.mac().is_some() && known.is_none() {
                continue; // a static MAC
            }
            let slot = match known {
                Some(i) => i,
                None => {
                    self.entries.push(Neighbour {
                        addr: rs.next_hop,
                        ids: Vec::new(),
                        mac: None,
                        last_request: None,
                        last_answer: None,
                        requests: 0,
                    });
                    self.index.insert(rs.next_hop, self.entries.len() - 1);
                    self.entries.len() - 1
                }
            };
            let e = &mut self.entries[slot];
            e.ids.push(rs.id);
            if rs.mac().is_none() && e.mac.is_some() {
                snap.set_mac(rs.id, e.mac);
            }
        }
        if self.entries.iter().any(|e| e.ids.is_empty()) {
            self.entries.retain(|e| !e.ids.is_empty());
            self.index = self
                .entries
                .iter()
                .enumerate()
                .map(|(i, e)| (e.addr, i))
                .collect();
        }
    }

    /// The addresses being resolved.
    pub fn entries(&self) -> &[Neighbour] {
        &self.entries
    }

    /// Counters.
    pub fn stats(&self) -> ResolverStats {
        self.stats
    }

    /// Addresses still without a MAC.
    pub fn unresolved(&self) -> usize {
        self.entries.iter().filter(|e| e.mac.is_none()).count()
    }

    /// Resolved addresses that have not answered for three refresh periods.
    pub fn stale(&self, now: Instant) -> Vec<IpAddr> {
        self.entries
            .iter()
            .filter(|e| e.mac.is_some())
            .filter(|e| {
                e.last_answer
                    .is_some_and(|t| now.duration_since(t) > self.refresh * 3)
            })
            .map(|e| e.addr)
            .collect()
    }

    /// Builds, into `buf`, the next request that is due at `now` and
    /// returns its length; call until `None`. Unresolved addresses are due
    /// every `retry`, resolved ones every `refresh`. Addresses of a family
    /// without a sender address are skipped.
    pub fn next_request(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        for e in &mut self.entries {
            let period = if e.mac.is_some() {
                self.refresh
            } else {
                self.retry
            };
            if e.last_request
                .is_some_and(|t| now.duration_since(t) < period)
            {
                continue;
            }
            let len = match e.addr {
                IpAddr::V4(a) => {
                    let Some(src) = self.tx_addr else { continue };
                    arp_request(buf, self.tx_mac, src.octets(), a.octets(), self.vlan)
                }
                IpAddr::V6(a) => {
                    let Some(src) = self.tx_addr6 else { continue };
                    neighbour_solicit(buf, self.tx_mac, src.octets(), a.octets(), self.vlan)
                }
            };
            e.last_request = Some(now);
            if let Some(n) = len {
                e.requests += 1;
                self.stats.requests += 1;
                return Some(n);
            }
        }
        None
    }

    /// Reads one neighbour frame; installs what it teaches about a real
    /// server into `snap`. Returns the binding learned for a real server.
    pub fn on_frame(&mut self, frame: &[u8], snap: &Snapshot, now: Instant) -> Option<Learned> {
        let Some(l) = learn(frame) else {
            self.stats.not_neighbour += 1;
            return None;
        };
        let Some(&i) = self.index.get(&l.addr) else {
            self.stats.ignored += 1;
            return None;
        };
        let e = &mut self.entries[i];
        if e.mac.is_some_and(|m| m != l.mac) {
            self.stats.changed += 1;
        }
        e.mac = Some(l.mac);
        e.last_answer = Some(now);
        for &id in &e.ids {
            snap.set_mac(id, Some(l.mac));
        }
        self.stats.learned += 1;
        Some(l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataplane::neighbour::unsolicited_na;
    use crate::lb::spec::{RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec};

    fn rs(addr: &str, mac: Option<MacAddr>) -> RealServerSpec {
        RealServerSpec {
            addr: addr.parse().unwrap(),
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            mac,
            forward: Default::default(),
            via: None,
        }
    }

    fn svc(servers: Vec<RealServerSpec>) -> ServiceSpec {
        ServiceSpec {
            ops: false,
            addr: ServiceAddr::Fwmark(1),
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            servers,
        }
    }

    #[test]
    fn resolves_shared_addresses_and_retries() {
        let snap = Snapshot::new(&[
            svc(vec![
                rs("10.0.1.11", None),
                rs("10.0.1.12", Some(MacAddr([2, 0, 0, 0, 0, 12]))),
            ]),
            svc(vec![rs("10.0.1.11", None), rs("fd00::11", None)]),
        ]);
        let me = MacAddr([2, 0, 0, 0, 0, 1]);
        let mut r = Resolver::new(
            &snap,
            me,
            Some("10.0.1.1".parse().unwrap()),
            Some("fd00::1".parse().unwrap()),
            None,
            Duration::from_millis(100),
            Duration::from_secs(30),
        );
        assert_eq!(
            r.entries().len(),
            2,
            "static MAC skipped, shared address once"
        );
        let t0 = Instant::now();
        let mut buf = [0u8; 128];
        let mut sent = 0;
        while r.next_request(t0, &mut buf).is_some() {
            sent += 1;
        }
        assert_eq!(sent, 2);
        assert!(r
            .next_request(t0 + Duration::from_millis(50), &mut buf)
            .is_none());
        assert!(
            r.next_request(t0 + Duration::from_millis(150), &mut buf)
                .is_some(),
            "retry"
        );

        // The server answers (an ARP request from it teaches as well as a reply).
        let srv = MacAddr([2, 0, 0, 0, 0, 11]);
        let n = arp_request(&mut buf, srv, [10, 0, 1, 11], [10, 0, 1, 1], None).unwrap();
        let l = r.on_frame(&buf[..n], &snap, t0).unwrap();
        assert_eq!(l.mac, srv);
        assert_eq!(snap.server(RsId(0)).unwrap().mac(), Some(srv));
        assert_eq!(snap.server(RsId(2)).unwrap().mac(), Some(srv));
        assert_eq!(r.unresolved(), 1);

        let n = unsolicited_na(
            &mut buf,
            MacAddr([2, 0, 0, 0, 0, 0x66]),
            "fd00::11".parse::<Ipv6Addr>().unwrap().octets(),
            None,
        )
        .unwrap();
        r.on_frame(&buf[..n], &snap, t0).unwrap();
        assert_eq!(
            snap.server(RsId(3)).unwrap().mac(),
            Some(MacAddr([2, 0, 0, 0, 0, 0x66]))
        );
        assert_eq!(r.unresolved(), 0);
        assert_eq!(snap.servers_without_mac(), 0);

        // Unrelated bindings are ignored.
        let n = arp_request(&mut buf, srv, [10, 9, 9, 9], [10, 0, 1, 1], None).unwrap();
        assert!(r.on_frame(&buf[..n], &snap, t0).is_none());
        assert_eq!(r.stats().ignored, 1);
        assert!(r.stale(t0 + Duration::from_secs(100)).len() == 2);
        assert!(r.on_frame(&[0u8; 20], &snap, t0).is_none());
        assert_eq!(r.stats().not_neighbour, 1);
    }

    #[test]
    fn tunnel_servers_behind_a_gateway_share_its_mac() {
        use crate::lb::spec::{Forwarding, Tunnel, TunnelKind};
        let tunnel = |addr: &str| RealServerSpec {
            forward: Forwarding::Tunnel(Tunnel {
                kind: TunnelKind::Ipip,
                port: 0,
                csum: false,
            }),
            via: Some("10.0.1.254".parse().unwrap()),
            ..rs(addr, None)
        };
        let snap = Snapshot::new(&[svc(vec![
            rs("10.0.1.11", None),
            tunnel("10.9.0.1"),
            tunnel("10.9.0.2"),
        ])]);
        let mut r = Resolver::new(
            &snap,
            MacAddr([2, 0, 0, 0, 0, 1]),
            Some("10.0.1.1".parse().unwrap()),
            None,
            None,
            Duration::from_millis(100),
            Duration::from_secs(30),
        );
        let addrs: Vec<IpAddr> = r.entries().iter().map(|e| e.addr).collect();
        assert_eq!(
            addrs,
            [
                "10.0.1.11".parse::<IpAddr>().unwrap(),
                "10.0.1.254".parse().unwrap()
            ],
            "the gateway is resolved once, the tunnel servers never"
        );
        let gw = MacAddr([2, 0, 0, 0, 0, 0xfe]);
        let mut buf = [0u8; 128];
        let n = arp_request(&mut buf, gw, [10, 0, 1, 254], [10, 0, 1, 1], None).unwrap();
        r.on_frame(&buf[..n], &snap, Instant::now()).unwrap();
        assert_eq!(snap.server(RsId(0)).unwrap().mac(), None);
        assert_eq!(snap.server(RsId(1)).unwrap().mac(), Some(gw));
        assert_eq!(snap.server(RsId(2)).unwrap().mac(), Some(gw));
        assert!(snap.server(RsId(2)).unwrap().available());
    }
}
