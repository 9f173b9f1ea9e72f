//! The receiver: reads sync datagrams (with a timeout, so a stop is seen),
//! checks them in the kernel's order (size, then sync id, then version and
//! records), maps each record with the current snapshot and installs it —
//! a connection on every worker's install ring (RSS decides which worker
//! its packets reach; the others' copies age out unused), a template in
//! the shared persistence table. Everything refused is counted by reason.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::counters::SyncCounters;
use crate::lb::live::Live;
use crate::lb::persist::PersistTable;
use crate::lb::sync_record::{install_of, ConnInstall, Install};
use crate::lb::sync_ring::Producer;
use crate::wire::ipvs_sync::{Message, HEADER_LEN, MAX_MESSAGE_LEN};

/// Who may send to this receiver.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// The sync id taken (0: any).
    pub syncid: u8,
    /// The local address of this director's own sender, if it has one.
    pub own: Option<SocketAddr>,
    /// Unicast: the peers' addresses (empty: anyone, multicast).
    pub peers: Vec<IpAddr>,
}

impl Filter {
    /// Whether `from` is this director's own sender: same port, and the
    /// same address (or a loopback one when the sender is bound to any).
    fn is_own(&self, from: &SocketAddr) -> bool {
        self.own.is_some_and(|o| {
            o.port() == from.port()
                && (o.ip() == from.ip() || (o.ip().is_unspecified() && from.ip().is_loopback()))
        })
    }
}

/// What installing reads and writes.
pub struct Installer {
    /// One producer per worker.
    pub rings: Vec<Producer<ConnInstall>>,
    /// The shared persistence table.
    pub persist: Arc<PersistTable>,
    /// The tables the workers forward with.
    pub live: Arc<Live>,
    /// The workers' clock, ms (for the persistence table).
    pub now_ms: fn() -> u64,
    /// Shared counters.
    pub counters: Arc<SyncCounters>,
    /// Who is listened to.
    pub filter: Filter,
}

impl Installer {
    /// Handles one datagram from `from`.
    pub fn datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        let c = Arc::clone(&self.counters);
        SyncCounters::add(&c.datagrams_received, 1);
        if self.filter.is_own(&from) {
            return SyncCounters::add(&c.drop_own, 1);
        }
        if !self.filter.peers.is_empty() && !self.filter.peers.contains(&from.ip()) {
            return SyncCounters::add(&c.drop_not_peer, 1);
        }
        // The kernel checks the sync id after the size and before the
        // version (`ip_vs_process_message`).
        let raw = Message::new_unchecked(bytes);
        if bytes.len() >= HEADER_LEN
            && raw.size() as usize == bytes.len()
            && !raw.accepts_syncid(self.filter.syncid)
        {
            return SyncCounters::add(&c.drop_syncid, 1);
        }
        let m = match Message::new_checked(bytes) {
            Ok(m) => m,
            Err(e) => return c.dropped(e),
        };
        let tables = self.live.load();
        let now = (self.now_ms)();
        for r in m.records() {
            SyncCounters::add(&c.records_received, 1);
            let conn = match r.to_conn() {
                Ok(conn) => conn,
                Err(e) => {
                    c.dropped(e);
                    continue;
                }
            };
            match install_of(&conn, &tables.snap, &tables.timeouts) {
                Err(why) => c.not_installed(why),
                Ok(Install::Conn(ci)) => self.hand_out(&ci),
                Ok(Install::Template(t)) => {
                    match self.persist.insert(&t.key, t.rs, now, t.timeout_ms, false) {
                        Ok(_) => SyncCounters::add(&c.templates_installed, 1),
                        Err(_) => SyncCounters::add(&c.templates_failed, 1),
                    }
                }
            }
        }
        for ring in &mut self.rings {
            ring.publish();
        }
    }

    /// A connection to every worker.
    fn hand_out(&mut self, ci: &ConnInstall) {
        let c = &self.counters;
        for ring in &mut self.rings {
            if !ring.push(ci) {
                SyncCounters::add(&c.install_ring_full, 1);
            }
        }
        SyncCounters::add(&c.conns_handed, 1);
    }
}

/// The receiver thread: `socket` has a read timeout.
pub fn run(socket: UdpSocket, mut inst: Installer, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; MAX_MESSAGE_LEN];
    while !stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => inst.datagram(&buf[..n], from),
            Err(e) if crate::control::is_retry(&e) => {}
            Err(e) => {
                eprintln!("pmdlb: sync: receive: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::bringup::Shared;
    use crate::control::config::Config;
    use crate::lb::sync_ring::SyncRing;
    use crate::wire::ipvs_sync::{flags, MessageBuilder, SyncAddrs, SyncConn};
    use std::net::Ipv4Addr;

    const CFG: &str = "[eal]\nlcores = \"0-1\"\n[ports]\nrx = \"net_null0\"\n\
        [[service]]\nvip = \"10.0.0.1\"\nport = 53\nproto = \"udp\"\n\
        [[service.server]]\naddr = \"10.0.1.1\"\nmac = \"02:00:00:00:01:01\"\n";

    fn conn(client: u8, template: bool) -> SyncConn {
        SyncConn {
            protocol: 17,
            flags: flags::DROUTE | if template { flags::TEMPLATE } else { 0 },
            state: 0,
            cport: if template { 0 } else { 4000 },
            vport: 53,
            dport: 53,
            fwmark: 0,
            timeout: 30,
            addrs: SyncAddrs::V4 {
                client: Ipv4Addr::new(192, 0, 2, client),
                virt: Ipv4Addr::new(10, 0, 0, 1),
                dest: Ipv4Addr::new(10, 0, 1, 1),
            },
            seq: None,
            pe: None,
        }
    }

    fn message(syncid: u8, recs: &[SyncConn]) -> Vec<u8> {
        let mut b = MessageBuilder::new(syncid, 1472);
        for r in recs {
            b.push(r).unwrap();
        }
        b.take().unwrap()
    }

    #[test]
    fn checks_in_the_kernels_order_and_hands_connections_to_every_worker() {
        let cfg = Config::from_str(CFG, "t.toml").unwrap().0;
        let shared = Shared::build(&cfg, &crate::sys::mem::Memory::heap()).unwrap();
        let (p0, mut c0) = SyncRing::<ConnInstall>::split(64);
        let (p1, mut c1) = SyncRing::<ConnInstall>::split(64);
        let peer: SocketAddr = "10.1.0.2:40000".parse().unwrap();
        let own: SocketAddr = "0.0.0.0:41000".parse().unwrap();
        let mut inst = Installer {
            rings: vec![p0, p1],
            persist: Arc::clone(&shared.persist),
            live: Arc::clone(&shared.current.live),
            now_ms: || 1000,
            counters: Arc::new(SyncCounters::default()),
            filter: Filter {
                syncid: 5,
                own: Some(own),
                peers: vec![peer.ip()],
            },
        };
        inst.datagram(&message(5, &[conn(1, false), conn(2, true)]), peer);
        inst.datagram(&message(6, &[conn(3, false)]), peer);
        inst.datagram(
            &message(5, &[conn(4, false)]),
            "10.1.0.9:40000".parse().unwrap(),
        );
        inst.datagram(
            &message(5, &[conn(5, false)]),
            "127.0.0.1:41000".parse().unwrap(),
        );
        let mut bad = message(6, &[conn(6, false)]);
        bad.push(0);
        inst.datagram(&bad, peer);
        let s = inst.counters.read();
        assert_eq!(s.datagrams_received, 5);
        assert_eq!(
            (
                s.drop_syncid,
                s.drop_not_peer,
                s.drop_own,
                s.drop_size_mismatch
            ),
            (1, 1, 1, 1),
            "the size is checked before the sync id, as the kernel does"
        );
        assert_eq!(
            (s.records_received, s.conns_handed, s.templates_installed),
            (2, 1, 0),
            "a template of a non-persistent service is refused"
        );
        assert_eq!(s.not_installed_not_persistent, 1);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        c0.drain(10, |x| a.push(x));
        c1.drain(10, |x| b.push(x));
        assert_eq!(a.len(), 1);
        assert_eq!(a, b, "every worker gets the connection");
        assert_eq!((a[0].key.cport(), a[0].timeout_ms), (4000, 30_000));
    }
}
