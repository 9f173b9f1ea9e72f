//! The state layer's view of one service and one real server: the parts of
//! an immutable [`crate::lb::snapshot::Snapshot`]. Real servers carry the
//! run-time mutable parts as atomics shared by all workers and the control
//! plane — weight, MAC slot, removal flag and the active/inactive connection
//! counters the lc-family schedulers read.
//!
//! What a scheduler reads of a server is two words: the *gate* (weight,
//! MAC known, removed, health-down, overloaded) and the connection counts
//! (active in the high half, inactive in the low half), so the lc family
//! pays two loads per server, and a connection that changes between
//! active and inactive one atomic add.
//!
//! Counters change only when a connection is created, changes between
//! active and inactive, or expires — never per packet. The overload flag
//! follows IPVS: set when `active + inactive >= u_threshold`, cleared when the
//! total drops below `l_threshold` (or below 3/4 of `u_threshold` when no
//! lower threshold is set).
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use std::sync::Arc;

use crate::lb::sched::HashTables;
use crate::lb::spec::{
    Forwarding, Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr,
};
use crate::lb::types::{RsId, ServiceId};
use crate::wire::ethernet::MacAddr;

/// The gate's weight (bits 0..32).
const GATE_WEIGHT: u64 = 0xffff_ffff;
/// Gate bit: the next hop's MAC is known (mirrors the MAC slot's valid bit).
const GATE_MAC: u64 = 1 << 32;
/// Gate bit: removed by the control plane (final).
const GATE_REMOVED: u64 = 1 << 33;
/// Gate bit: taken out by a failed health check (without
/// `inhibit_on_failure`); cleared when the server is back.
const GATE_HEALTH: u64 = 1 << 34;
/// Gate bit: over the upper threshold (IPVS's OVERLOAD flag).
const GATE_OVERLOADED: u64 = 1 << 35;

/// One active connection in the `conns` word (inactive ones count from bit 0).
const ACTIVE_ONE: u64 = 1 << 32;

/// One load of a server's gate: whether it takes new clients, and its weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate(u64);

impl Gate {
    /// Current weight (0 = quiescent).
    #[inline(always)]
    pub fn weight(self) -> u32 {
        self.0 as u32
    }

    /// Weight > 0, MAC known, not removed or health-down, not overloaded.
    #[inline(always)]
    pub fn available(self) -> bool {
        self.usable_ignoring_weight() && self.weight() > 0
    }

    /// Available except for the weight test (ovf/wrr test weight themselves):
    /// of the bits above the weight, exactly "MAC known".
    #[inline(always)]
    pub fn usable_ignoring_weight(self) -> bool {
        self.0 & !GATE_WEIGHT == GATE_MAC
    }
}

/// The valid bit of a MAC slot (bits 0..48 hold the address).
const MAC_VALID: u64 = 1 << 48;

fn mac_to_word(mac: MacAddr) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(mac.as_bytes());
    u64::from_le_bytes(b) | MAC_VALID
}

/// As one 4-byte and one 2-byte piece: the MAC is later copied into the
/// frame as 4 + 2 bytes, and six byte-wide stores read back that way
/// failed store-to-load forwarding (perf: 13% of the worker on it).
#[inline(always)]
fn word_to_mac(w: u64) -> MacAddr {
    let mut m = [0u8; 6];
    m[..4].copy_from_slice(&(w as u32).to_le_bytes());
    m[4..].copy_from_slice(&((w >> 32) as u16).to_le_bytes());
    MacAddr(m)
}

/// A real server as every snapshot that lists it holds it: one object
/// across swaps, so its atomics (and the identity entries point at) stay.
pub type SharedServer = Arc<CachePadded<RealServer>>;

/// One real server of one service, shared by all workers.
#[derive(Debug)]
pub struct RealServer {
    /// Its identity (see [`crate::lb::snapshot`]).
    pub id: RsId,
    /// The server's address.
    pub addr: IpAddr,
    /// The service it belongs to.
    pub svc: ServiceId,
    /// Upper connection threshold (0 = none).
    u_threshold: AtomicU32,
    /// Lower connection threshold (0 = 3/4 of the upper one).
    l_threshold: AtomicU32,
    /// How packets reach it (immutable for the snapshot's life, so the
    /// worker reads it without any synchronisation).
    pub forward: Forwarding,
    /// The address whose MAC the MAC slot holds: the server itself, or the
    /// gateway towards a tunnel server in another subnet. Every server
    /// behind one gateway gets that gateway's MAC in its own slot, so the
    /// per-packet path reads one slot as for a DR server, and an
    /// unresolved gateway makes its servers unavailable.
    pub next_hop: IpAddr,
    mac: AtomicU64,
    /// The weight and the `GATE_*` bits: one load tells whether the
    /// server takes new clients, and at what weight ([`Gate`]).
    gate: AtomicU64,
    /// Active connections × [`ACTIVE_ONE`] + inactive ones.
    conns: AtomicU64,
}

impl RealServer {
    /// A new server `id` of service `svc` from its spec: no MAC unless the
    /// spec gives one, in service, no connections.
    pub fn new(id: RsId, svc: ServiceId, rs: &RealServerSpec) -> Self {
        RealServer {
            id,
            addr: rs.addr,
            svc,
            u_threshold: AtomicU32::new(rs.u_threshold),
            l_threshold: AtomicU32::new(rs.l_threshold),
            forward: rs.forward,
            next_hop: rs.via.unwrap_or(rs.addr),
            mac: AtomicU64::new(rs.mac.map(mac_to_word).unwrap_or(0)),
            gate: AtomicU64::new(rs.weight as u64 | if rs.mac.is_some() { GATE_MAC } else { 0 }),
            conns: AtomicU64::new(0),
        }
    }

    /// `(u_threshold, l_threshold)` (0 = none).
    pub fn thresholds(&self) -> (u32, u32) {
        (
            self.u_threshold.load(Ordering::Relaxed),
            self.l_threshold.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn set_thresholds(&self, u: u32, l: u32) {
        self.u_threshold.store(u, Ordering::Relaxed);
        self.l_threshold.store(l, Ordering::Relaxed);
        if u == 0 {
            self.set_gate_bit(GATE_OVERLOADED, false);
        }
    }

    /// Sets or clears `bit` of the gate; the other bits and the weight stay.
    fn set_gate_bit(&self, bit: u64, on: bool) {
        if on {
            self.gate.fetch_or(bit, Ordering::Relaxed);
        } else {
            self.gate.fetch_and(!bit, Ordering::Relaxed);
        }
    }

    pub(crate) fn store_weight(&self, weight: u32) {
        // The control plane's, rare: the workers may set the overload bit
        // meanwhile, so the weight is replaced, not the word.
        let _ = self
            .gate
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |g| {
                Some(g & !GATE_WEIGHT | weight as u64)
            });
    }

    pub(crate) fn store_mac(&self, mac: Option<MacAddr>) {
        // The slot first, then the gate: a scheduler that sees the server
        // available finds its MAC. One writer at a time (the control
        // plane: neighbour resolution, snapshot builds); were two to race,
        // the gate's bit could disagree with the slot for a while, and the
        // verdict, which tests the slot's own bit, would count a `no_mac`
        // drop — never forward to a wrong address.
        self.mac
            .store(mac.map(mac_to_word).unwrap_or(0), Ordering::Relaxed);
        self.set_gate_bit(GATE_MAC, mac.is_some());
    }

    pub(crate) fn mark_removed(&self, removed: bool) {
        self.set_gate_bit(GATE_REMOVED, removed);
    }

    pub(crate) fn mark_health_down(&self, down: bool) {
        self.set_gate_bit(GATE_HEALTH, down);
    }

    /// The gate as one load: what a scheduler tests of a server.
    #[inline(always)]
    pub fn gate(&self) -> Gate {
        Gate(self.gate.load(Ordering::Relaxed))
    }

    /// Current weight (0 = quiescent).
    #[inline]
    pub fn weight(&self) -> u32 {
        self.gate().weight()
    }

    /// The next hop's MAC address (see [`RealServer::next_hop`]), if known.
    #[inline]
    pub fn mac(&self) -> Option<MacAddr> {
        let w = self.mac.load(Ordering::Relaxed);
        (w & MAC_VALID != 0).then(|| word_to_mac(w))
    }

    /// Whether the control plane removed this server.
    #[inline]
    pub fn is_removed(&self) -> bool {
        self.gate().0 & GATE_REMOVED != 0
    }

    /// Whether a failed health check took this server out (not set with
    /// `inhibit_on_failure`, which sets weight 0 instead).
    #[inline]
    pub fn is_health_down(&self) -> bool {
        self.gate().0 & GATE_HEALTH != 0
    }

    /// Removed or health-down: no new clients, its templates are invalid,
    /// and with `expire_nodest_conn` its connections are dropped. One load.
    #[inline]
    pub fn is_out(&self) -> bool {
        self.gate().0 & (GATE_REMOVED | GATE_HEALTH) != 0
    }

    /// Whether the server is over its upper threshold (IPVS OVERLOAD flag).
    #[inline]
    pub fn is_overloaded(&self) -> bool {
        self.gate().0 & GATE_OVERLOADED != 0
    }

    /// `(active, inactive)` connections, over all workers, as one load:
    /// active are ESTABLISHED, inactive every other state and UDP-like flows.
    #[inline(always)]
    pub fn conns(&self) -> (u32, u32) {
        let c = self.conns.load(Ordering::Relaxed);
        ((c >> 32) as u32, c as u32)
    }

    /// Active (ESTABLISHED) connections, over all workers.
    #[inline]
    pub fn active(&self) -> u32 {
        self.conns().0
    }

    /// Inactive (every other state, and UDP-like flows), over all workers.
    #[inline]
    pub fn inactive(&self) -> u32 {
        self.conns().1
    }

    /// Whether a scheduler may give this server a new client: weight > 0,
    /// MAC known, not removed or health-down, not overloaded.
    #[inline]
    pub fn available(&self) -> bool {
        self.gate().available()
    }

    /// A connection bound to this server was created.
    pub(crate) fn conn_created(&self, active: bool) {
        let one = if active { ACTIVE_ONE } else { 1 };
        let c = self
            .conns
            .fetch_add(one, Ordering::Relaxed)
            .wrapping_add(one);
        let u = self.u_threshold.load(Ordering::Relaxed);
        if u != 0 && total(c) >= u as u64 && !self.is_overloaded() {
            self.set_gate_bit(GATE_OVERLOADED, true);
        }
    }

    /// A connection moved between active and inactive: one add that moves
    /// one count from one half of the word to the other (the half it
    /// leaves holds that connection, so it never borrows).
    pub(crate) fn conn_changed(&self, to_active: bool) {
        if to_active {
            self.conns.fetch_add(ACTIVE_ONE - 1, Ordering::Relaxed);
        } else {
            self.conns.fetch_sub(ACTIVE_ONE - 1, Ordering::Relaxed);
        }
    }

    /// A connection bound to this server expired or was dropped.
    pub(crate) fn conn_released(&self, active: bool) {
        let one = if active { ACTIVE_ONE } else { 1 };
        let c = self
            .conns
            .fetch_sub(one, Ordering::Relaxed)
            .wrapping_sub(one);
        if self.is_overloaded() {
            let total = total(c) as u32;
            let (u, l) = self.thresholds();
            let clear = if l != 0 {
                total < l
            } else {
                (total as u64) * 4 < (u as u64) * 3
            };
            if clear {
                self.set_gate_bit(GATE_OVERLOADED, false);
            }
        }
    }
}

/// Active + inactive of a `conns` word.
#[inline(always)]
fn total(conns: u64) -> u64 {
    (conns >> 32) + (conns & 0xffff_ffff)
}

/// One service as the state layer sees it.
#[derive(Debug)]
pub struct ServiceState {
    /// How it is addressed.
    pub addr: ServiceAddr,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags.
    pub flags: SchedFlags,
    /// Persistence, if any.
    pub persistence: Option<Persistence>,
    /// Its identity (see [`crate::lb::snapshot`]).
    pub id: ServiceId,
    /// The epoch its tables were built in: workers reset their scheduler
    /// state for it when this changes.
    pub version: u64,
    /// One-packet scheduling (`-o`).
    pub ops: bool,
    /// Its real servers, in configuration order (a scheduler's local index
    /// is a position here).
    pub servers: Box<[SharedServer]>,
    /// The configured weights the tables were built with, by position.
    pub table_weights: Box<[u32]>,
    /// Static hash tables (sh/dh/mh, and the stateless fallback), shared
    /// by snapshots while the service does not change.
    pub tables: Arc<HashTables>,
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lb::snapshot::Snapshot;
    use crate::lb::spec::ServiceSpec;

    fn spec(n: usize, u: u32, l: u32) -> ServiceSpec {
        ServiceSpec {
            ops: false,
            addr: ServiceAddr::Fwmark(1),
            scheduler: SchedulerKind::Wlc,
            sched_flags: SchedFlags::default(),
            persistence: None,
            servers: (0..n)
                .map(|i| RealServerSpec {
                    addr: format!("10.0.0.{}", i + 1).parse().unwrap(),
                    weight: 1,
                    u_threshold: u,
                    l_threshold: l,
                    mac: if i == 0 {
                        None
                    } else {
                        Some(MacAddr([2, 0, 0, 0, 0, i as u8]))
                    },
                    forward: Default::default(),
                    via: None,
                })
                .collect(),
        }
    }

    #[test]
    fn mac_slots_and_setters() {
        let s = Snapshot::new(&[spec(2, 0, 0), spec(1, 0, 0)]);
        assert_eq!(s.servers().count(), 3);
        assert_eq!(s.server(RsId(2)).unwrap().svc, ServiceId(1));
        assert_eq!(s.servers_without_mac(), 2);
        assert!(!s.server(RsId(0)).unwrap().available());
        assert!(s.set_mac(RsId(0), Some(MacAddr([1, 2, 3, 4, 5, 6]))));
        assert_eq!(
            s.server(RsId(0)).unwrap().mac(),
            Some(MacAddr([1, 2, 3, 4, 5, 6]))
        );
        assert!(s.server(RsId(0)).unwrap().available());
        let g = s.weights_gen();
        s.set_weight(RsId(0), 0);
        assert!(s.weights_gen() > g);
        assert!(!s.server(RsId(0)).unwrap().available());
        s.set_weight(RsId(1), 5);
        s.remove(RsId(1));
        assert!(!s.server(RsId(1)).unwrap().available());
        assert!(s.server(RsId(1)).unwrap().is_removed());
        s.set_mac(RsId(2), Some(MacAddr([2, 0, 0, 0, 0, 9])));
        s.set_health_down(RsId(2), true);
        let r2 = s.server(RsId(2)).unwrap();
        assert!(r2.is_health_down() && r2.is_out() && !r2.available() && !r2.is_removed());
        assert_eq!(r2.weight(), 1, "health-down leaves the weight alone");
        s.set_health_down(RsId(2), false);
        assert!(r2.available());
        s.set_health_down(RsId(1), false);
        assert!(s.server(RsId(1)).unwrap().is_removed(), "removal is final");
        assert!(!s.set_weight(RsId(9), 1));
    }

    #[test]
    fn counts_and_gate_bits_keep_each_other() {
        let s = Snapshot::new(&[spec(2, 2, 0)]);
        let r = s.server(RsId(1)).unwrap();
        r.conn_created(false);
        r.conn_created(false);
        assert_eq!(r.conns(), (0, 2));
        assert!(r.is_overloaded(), "2 >= u_threshold 2");
        r.conn_changed(true);
        assert_eq!(r.conns(), (1, 1), "one add moves a count between halves");
        r.conn_changed(false);
        r.conn_changed(true);
        r.conn_changed(true);
        assert_eq!(r.conns(), (2, 0));
        // The weight is replaced beside the workers' overload bit, not over it.
        s.set_weight(RsId(1), 7);
        assert_eq!(r.gate().weight(), 7);
        assert!(r.is_overloaded() && !r.available());
        r.conn_released(true);
        assert_eq!(r.conns(), (1, 0));
        assert!(!r.is_overloaded(), "1 is below 3/4 of 2");
        assert!(r.available() && r.gate().available());
        s.set_health_down(RsId(1), true);
        assert_eq!((r.weight(), r.is_out(), r.available()), (7, true, false));
    }

    #[test]
    fn overload_hysteresis() {
        let s = Snapshot::new(&[spec(2, 4, 2)]);
        let r = s.server(RsId(1)).unwrap();
        for _ in 0..3 {
            r.conn_created(false);
        }
        assert!(!r.is_overloaded());
        r.conn_created(true);
        assert!(r.is_overloaded());
        r.conn_changed(false);
        assert_eq!((r.active(), r.inactive()), (0, 4));
        r.conn_released(false);
        r.conn_released(false);
        assert!(r.is_overloaded(), "2 is not below l_threshold 2");
        r.conn_released(false);
        assert!(!r.is_overloaded());
    }
}
