//! The immutable set of services and real servers the workers read, and
//! how one set follows another without disturbing what a change does not
//! concern.
//!
//! **Identities.** A service is a `ServiceId`, a real server an `RsId`:
//! opaque numbers whose low bits are a slot in fixed-capacity arrays
//! (`id & mask`; capacities are powers of two fixed at start, so every
//! per-worker array indexed by slot is allocated once). A slot's next
//! occupant gets the old id plus the capacity, so an id is never reused
//! while anything could still hold it: a stale id finds a slot whose
//! occupant has another id, and [`Snapshot::server`] answers `None`.
//! Connection entries and persistence templates store ids, so a service or
//! server that survives a change keeps its entries and templates, and one
//! that is deleted and re-created does not inherit the old ones' templates.
//!
//! **Shared parts.** A real server is an `Arc` shared by every snapshot it
//! appears in; its atomics (weight, MAC, out bits, connection counters,
//! thresholds) are the same object across swaps. A service's hash tables
//! (sh/dh/mh) are rebuilt only when the service changed.
//!
//! **What a change concerns** ([`Snapshot::next`], IPVS rules): a server no
//! longer listed is marked removed — it gets no new clients, its templates
//! are invalid, its connections flow until they expire (or are dropped at
//! once with `expire_nodest_conn`) — and stays in its slot, *draining*,
//! until it has no connection left and every worker has passed a snapshot
//! in which it was removed; only then is the slot free. A draining server
//! listed again (same service, address and forwarding) is revived with its
//! connections, as IPVS takes a destination back from its trash.
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::lb::realserver::{RealServer, ServiceState, SharedServer};
use crate::lb::sched::mh::TableSize;
use crate::lb::sched::HashTables;
use crate::lb::spec::{RealServerSpec, ServiceAddr, ServiceSpec};
use crate::lb::types::{Addr, RsId, ServiceId};
use crate::wire::ethernet::MacAddr;

/// Slots for services and real servers, fixed at start (`[tables]
/// max_services`, `max_servers`). Both are powers of two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// Service slots.
    pub services: u32,
    /// Real-server slots (servers of every service, draining ones included).
    pub servers: u32,
}

impl Capacity {
    /// Defaults: 256 services, 4096 real servers.
    pub const DEFAULT: Capacity = Capacity {
        services: 256,
        servers: 4096,
    };

    /// Rounded up to powers of two (at least 1).
    pub fn new(services: u32, servers: u32) -> Capacity {
        Capacity {
            services: services.max(1).next_power_of_two(),
            servers: servers.max(1).next_power_of_two(),
        }
    }

    /// The default, grown to hold `specs` (tests and benches).
    pub fn fit(specs: &[ServiceSpec]) -> Capacity {
        let n: usize = specs.iter().map(|s| s.servers.len()).sum();
        Capacity::new(
            Capacity::DEFAULT.services.max(specs.len() as u32),
            Capacity::DEFAULT.servers.max(n as u32),
        )
    }
}

/// A change the capacity cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// More services than service slots.
    #[error("too many services: {0} slots ([tables] max_services), all in use")]
    Services(u32),
    /// More real servers (draining ones included) than server slots.
    #[error("too many real servers: {0} slots ([tables] max_servers), all in use (removed servers keep theirs until their last connection ends)")]
    Servers(u32),
}

/// One difference between two snapshots, for the log (one line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new service.
    ServiceAdded(ServiceAddr),
    /// A service is gone.
    ServiceRemoved(ServiceAddr),
    /// A service's scheduler, flags, persistence or ops changed.
    ServiceEdited(ServiceAddr),
    /// A new real server (or a draining one revived).
    ServerAdded(ServiceAddr, IpAddr),
    /// A real server is gone (draining until its connections end).
    ServerRemoved(ServiceAddr, IpAddr),
    /// A surviving server's configured weight changed: the caller applies
    /// it (health checks may hold the effective weight at 0).
    WeightChanged {
        /// The service.
        service: ServiceAddr,
        /// The server.
        server: RsId,
        /// Its address.
        addr: IpAddr,
        /// The new configured weight.
        weight: u32,
    },
    /// A surviving server's thresholds changed (applied).
    ThresholdsChanged(ServiceAddr, IpAddr),
}

fn svc_name(a: &ServiceAddr) -> String {
    match a {
        ServiceAddr::Fwmark(m) => format!("fwmark {m}"),
        ServiceAddr::Addr { proto, vip, port } => {
            let p = match *proto {
                6 => "tcp",
                17 => "udp",
                132 => "sctp",
                _ => "proto",
            };
            match vip {
                IpAddr::V4(v) => format!("{p} {v}:{port}"),
                IpAddr::V6(v) => format!("{p} [{v}]:{port}"),
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::ServiceAdded(s) => write!(f, "service {} added", svc_name(s)),
            Change::ServiceRemoved(s) => write!(f, "service {} removed", svc_name(s)),
            Change::ServiceEdited(s) => write!(f, "service {} edited", svc_name(s)),
            Change::ServerAdded(s, a) => write!(f, "service {}: server {a} added", svc_name(s)),
            Change::ServerRemoved(s, a) => {
                write!(f, "service {}: server {a} removed", svc_name(s))
            }
            Change::WeightChanged {
                service,
                addr,
                weight,
                ..
            } => write!(
                f,
                "service {}: server {addr} weight {weight}",
                svc_name(service)
            ),
            Change::ThresholdsChanged(s, a) => {
                write!(f, "service {}: server {a} thresholds changed", svc_name(s))
            }
        }
    }
}

/// A removed server still holding its slot.
#[derive(Debug, Clone)]
struct Draining {
    server: SharedServer,
    /// The epoch of the first snapshot without it.
    since: u64,
}

/// An immutable set of services and real servers with atomically mutable
/// run-time fields. Built by the control plane, shared by `Arc` with every
/// worker; a change is a new snapshot from [`Snapshot::next`], published
/// and picked up by the workers at a burst boundary.
#[derive(Debug)]
pub struct Snapshot {
    epoch: u64,
    cap: Capacity,
    mh_size: TableSize,
    /// By slot.
    services: Box<[Option<ServiceState>]>,
    /// By slot: every listed server and every draining one.
    servers: Box<[Option<SharedServer>]>,
    /// Service ids in configuration order.
    order: Vec<ServiceId>,
    draining: Vec<Draining>,
    /// The id the next occupant of each slot gets.
    next_svc_id: Box<[u32]>,
    next_rs_id: Box<[u32]>,
    weights_gen: Arc<AtomicU64>,
}

impl Snapshot {
    /// Build from validated specs with Maglev tables of the default size;
    /// see [`Snapshot::with_mh_size`].
    pub fn new(specs: &[ServiceSpec]) -> Self {
        Snapshot::with_mh_size(specs, TableSize::DEFAULT)
    }

    /// Build from validated specs with a capacity that fits them.
    /// `ServiceId(i)` is `specs[i]`; real server ids are dense over all
    /// services in configuration order. Static MACs are installed; other
    /// servers have no MAC until [`Snapshot::set_mac`].
    pub fn with_mh_size(specs: &[ServiceSpec], mh_size: TableSize) -> Self {
        Snapshot::build(specs, mh_size, Capacity::fit(specs))
            .expect("Capacity::fit holds the specs")
    }

    /// The first snapshot: ids are slots, in configuration order.
    pub fn build(
        specs: &[ServiceSpec],
        mh_size: TableSize,
        cap: Capacity,
    ) -> Result<Self, SnapshotError> {
        let cap = Capacity::new(cap.services, cap.servers);
        // The empty predecessor's epoch is the one before 0, so the first
        // snapshot and the versions of its services are epoch 0.
        let empty = Snapshot {
            epoch: u64::MAX,
            cap,
            mh_size,
            services: (0..cap.services).map(|_| None).collect(),
            servers: (0..cap.servers).map(|_| None).collect(),
            order: Vec::new(),
            draining: Vec::new(),
            next_svc_id: (0..cap.services).collect(),
            next_rs_id: (0..cap.servers).collect(),
            weights_gen: Arc::new(AtomicU64::new(0)),
        };
        Ok(empty.next(specs, 0)?.0)
    }

    /// The snapshot that follows this one for `specs` (validated), and what
    /// changed. `quiescent` is the oldest epoch a worker still uses: a
    /// draining server whose removal every worker has seen and that has no
    /// connection left gives up its slot. Servers no longer listed are
    /// marked removed here, at once (also in this snapshot, which shares
    /// them): no worker schedules them from now on.
    pub fn next(
        &self,
        specs: &[ServiceSpec],
        quiescent: u64,
    ) -> Result<(Snapshot, Vec<Change>), SnapshotError> {
        Builder::new(self, quiescent).run(specs)
    }

    /// This snapshot's epoch (0 for the first; +1 per [`Snapshot::next`]).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Slots for services and servers.
    pub fn capacity(&self) -> Capacity {
        self.cap
    }

    /// The Maglev table size of mh services.
    pub fn mh_size(&self) -> TableSize {
        self.mh_size
    }

    /// A service id's slot (index of per-worker arrays).
    #[inline(always)]
    pub fn service_slot(&self, svc: ServiceId) -> usize {
        (svc.0 & (self.cap.services - 1)) as usize
    }

    /// A server id's slot (index of per-worker arrays).
    #[inline(always)]
    pub fn server_slot(&self, rs: RsId) -> usize {
        (rs.0 & (self.cap.servers - 1)) as usize
    }

    /// The services, in configuration order.
    pub fn services(&self) -> impl Iterator<Item = &ServiceState> + '_ {
        self.order.iter().filter_map(|id| self.service(*id))
    }

    /// How many services.
    pub fn service_count(&self) -> usize {
        self.order.len()
    }

    /// One service.
    #[inline]
    pub fn service(&self, svc: ServiceId) -> Option<&ServiceState> {
        match &self.services[self.service_slot(svc)] {
            Some(s) if s.id == svc => Some(s),
            _ => None,
        }
    }

    /// The service with this address.
    pub fn find_service(&self, addr: &ServiceAddr) -> Option<&ServiceState> {
        self.services().find(|s| s.addr == *addr)
    }

    /// Every real server holding a slot: the listed ones, then the
    /// draining ones.
    pub fn servers(&self) -> impl Iterator<Item = &RealServer> + '_ {
        self.services()
            .flat_map(|s| s.servers.iter().map(|r| &***r))
            .chain(self.draining.iter().map(|d| &**d.server))
    }

    /// One real server (listed or draining).
    #[inline]
    pub fn server(&self, rs: RsId) -> Option<&RealServer> {
        match &self.servers[self.server_slot(rs)] {
            Some(s) if s.id == rs => Some(s),
            _ => None,
        }
    }

    /// The real servers of a service, in configuration order.
    #[inline]
    pub fn servers_of<'a>(&self, svc: &'a ServiceState) -> &'a [SharedServer] {
        &svc.servers
    }

    /// Removed servers still holding a slot.
    pub fn draining(&self) -> impl Iterator<Item = &RealServer> + '_ {
        self.draining.iter().map(|d| &**d.server)
    }

    /// Bumped on every weight change; wrr recomputes its gcd/max on change.
    /// Shared by every snapshot of a run.
    #[inline]
    pub fn weights_gen(&self) -> u64 {
        self.weights_gen.load(Ordering::Acquire)
    }

    /// Control plane: change a server's weight (0 = quiescent). Returns
    /// `false` for an unknown id. The sh/dh/mh tables keep the weights they
    /// were built with until the service's next rebuild; a weight of 0
    /// makes the server unavailable in them.
    pub fn set_weight(&self, rs: RsId, weight: u32) -> bool {
        match self.server(rs) {
            Some(s) => {
                s.store_weight(weight);
                self.weights_gen.fetch_add(1, Ordering::Release);
                true
            }
            None => false,
        }
    }

    /// Control plane: install (after ARP/ND) or forget a server's MAC.
    /// A server without a MAC is never chosen.
    pub fn set_mac(&self, rs: RsId, mac: Option<MacAddr>) -> bool {
        self.server(rs).map(|s| s.store_mac(mac)).is_some()
    }

    /// Control plane: take a server out for good (`ctl remove`). It gets no
    /// new clients; its existing flows are dropped at once with
    /// `expire_nodest_conn`, else kept until they expire. The next snapshot
    /// built from a spec that still lists it revives it.
    pub fn remove(&self, rs: RsId) -> bool {
        self.server(rs).map(|s| s.mark_removed(true)).is_some()
    }

    /// Control plane (health checks): take a server out of scheduling for
    /// new clients (`down`), or put it back. Existing connections follow
    /// `expire_nodest_conn` as for a removed server; templates pointing at
    /// it are not used while it is down.
    pub fn set_health_down(&self, rs: RsId, down: bool) -> bool {
        self.server(rs).map(|s| s.mark_health_down(down)).is_some()
    }

    /// How many listed real servers have no MAC yet (for the statistics).
    pub fn servers_without_mac(&self) -> usize {
        self.services()
            .flat_map(|s| s.servers.iter())
            .filter(|s| s.mac().is_none())
            .count()
    }
}

/// A service's servers and the configured weight of each.
type ServerList = (Box<[SharedServer]>, Box<[u32]>);

/// Builds the next snapshot from the previous one. Nothing shared is
/// touched until the whole set fits ([`Builder::commit`]): a change the
/// capacity refuses leaves the running snapshot exactly as it was.
struct Builder<'a> {
    prev: &'a Snapshot,
    quiescent: u64,
    epoch: u64,
    services: Box<[Option<ServiceState>]>,
    servers: Box<[Option<SharedServer>]>,
    next_svc_id: Box<[u32]>,
    next_rs_id: Box<[u32]>,
    svc_cursor: usize,
    rs_cursor: usize,
    changes: Vec<Change>,
    /// Slots no new id may take: survivors' and draining servers'.
    reserved_rs: HashSet<usize>,
    reserved_svc: HashSet<usize>,
    /// Deferred effects on shared servers.
    retire: Vec<SharedServer>,
    revive: Vec<SharedServer>,
    thresholds: Vec<(SharedServer, u32, u32)>,
    macs: Vec<(SharedServer, MacAddr)>,
}

impl<'a> Builder<'a> {
    fn new(prev: &'a Snapshot, quiescent: u64) -> Self {
        let cap = prev.cap;
        Builder {
            prev,
            quiescent,
            epoch: prev.epoch.wrapping_add(1),
            services: (0..cap.services).map(|_| None).collect(),
            servers: (0..cap.servers).map(|_| None).collect(),
            next_svc_id: prev.next_svc_id.clone(),
            next_rs_id: prev.next_rs_id.clone(),
            svc_cursor: 0,
            rs_cursor: 0,
            changes: Vec::new(),
            reserved_rs: HashSet::new(),
            reserved_svc: HashSet::new(),
            retire: Vec::new(),
            revive: Vec::new(),
            thresholds: Vec::new(),
            macs: Vec::new(),
        }
    }

    /// A free slot's next id, searching round-robin so that reuse spreads.
    fn alloc<T>(
        slots: &[Option<T>],
        reserved: &HashSet<usize>,
        next: &mut [u32],
        cursor: &mut usize,
    ) -> Option<u32> {
        let n = slots.len();
        for k in 0..n {
            let i = (*cursor + k) % n;
            if slots[i].is_none() && !reserved.contains(&i) {
                *cursor = (i + 1) % n;
                let id = next[i];
                next[i] = id.wrapping_add(n as u32);
                return Some(id);
            }
        }
        None
    }

    fn run(mut self, specs: &[ServiceSpec]) -> Result<(Snapshot, Vec<Change>), SnapshotError> {
        let prev = self.prev;
        let survivors: Vec<Option<&ServiceState>> =
            specs.iter().map(|s| prev.find_service(&s.addr)).collect();
        for s in survivors.iter().flatten() {
            self.reserved_svc.insert(prev.service_slot(s.id));
            for r in s.servers.iter() {
                self.reserved_rs.insert(prev.server_slot(r.id));
            }
        }
        let mut draining = self.carry_draining(specs, &survivors);
        for d in &draining {
            self.reserved_rs.insert(prev.server_slot(d.server.id));
        }
        let mut order = Vec::with_capacity(specs.len());
        for (spec, old) in specs.iter().zip(&survivors) {
            let id = match old {
                Some(o) => o.id,
                None => {
                    let id = Self::alloc(
                        &self.services,
                        &self.reserved_svc,
                        &mut self.next_svc_id,
                        &mut self.svc_cursor,
                    )
                    .ok_or(SnapshotError::Services(prev.cap.services))?;
                    self.changes.push(Change::ServiceAdded(spec.addr.clone()));
                    ServiceId(id)
                }
            };
            let (servers, weights) = self.servers_for(id, spec, *old)?;
            let st = self.service_state(id, spec, *old, servers, weights);
            self.services[prev.service_slot(id)] = Some(st);
            order.push(id);
        }
        for old in prev.services() {
            if !order.contains(&old.id) {
                self.changes.push(Change::ServiceRemoved(old.addr.clone()));
                self.retire.extend(old.servers.iter().cloned());
            }
        }
        draining.extend(self.retire.iter().map(|s| Draining {
            server: Arc::clone(s),
            since: self.epoch,
        }));
        for d in &draining {
            let slot = prev.server_slot(d.server.id);
            if self.servers[slot].is_some() {
                // A revived server's slot is taken by itself; anything else
                // would be a bookkeeping error: keep the listed one.
                continue;
            }
            self.servers[slot] = Some(Arc::clone(&d.server));
        }
        self.commit();
        let snap = Snapshot {
            epoch: self.epoch,
            cap: prev.cap,
            mh_size: prev.mh_size,
            services: self.services,
            servers: self.servers,
            order,
            draining,
            next_svc_id: self.next_svc_id,
            next_rs_id: self.next_rs_id,
            weights_gen: Arc::clone(&prev.weights_gen),
        };
        Ok((snap, self.changes))
    }

    /// The set fits: apply the deferred effects on shared servers.
    fn commit(&self) {
        for s in &self.retire {
            s.mark_removed(true);
        }
        for s in &self.revive {
            s.mark_removed(false);
        }
        for (s, u, l) in &self.thresholds {
            s.set_thresholds(*u, *l);
        }
        for (s, m) in &self.macs {
            s.store_mac(Some(*m));
        }
    }

    /// The previous snapshot's draining servers that still hold their slot:
    /// not yet drained, and not revived by `specs`.
    fn carry_draining(
        &self,
        specs: &[ServiceSpec],
        survivors: &[Option<&ServiceState>],
    ) -> Vec<Draining> {
        let revived = |d: &Draining| {
            specs.iter().zip(survivors).any(|(spec, old)| {
                old.is_some_and(|o| o.id == d.server.svc)
                    && spec.servers.iter().any(|r| same_server(&d.server, r))
            })
        };
        self.prev
            .draining
            .iter()
            .filter(|d| {
                let drained =
                    d.server.active() + d.server.inactive() == 0 && self.quiescent >= d.since;
                !drained && !revived(d)
            })
            .cloned()
            .collect()
    }

    /// The servers of service `id` for `spec`: each survivor (listed or
    /// draining before) keeps its `Arc`; new ones get fresh ids. Listed
    /// servers the spec drops are queued to retire.
    fn servers_for(
        &mut self,
        id: ServiceId,
        spec: &ServiceSpec,
        old: Option<&ServiceState>,
    ) -> Result<ServerList, SnapshotError> {
        let prev = self.prev;
        let mut out: Vec<SharedServer> = Vec::with_capacity(spec.servers.len());
        let mut weights = Vec::with_capacity(spec.servers.len());
        for r in &spec.servers {
            let listed = old.and_then(|o| {
                o.servers
                    .iter()
                    .position(|s| same_server(s, r))
                    .map(|i| (&o.servers[i], o.table_weights[i]))
            });
            let revived = || {
                prev.draining
                    .iter()
                    .map(|d| &d.server)
                    .find(|s| s.svc == id && same_server(s, r))
                    .map(|s| (s, s.weight()))
            };
            let shared = match listed.or_else(revived) {
                Some((s, old_weight)) => {
                    if s.is_removed() {
                        self.revive.push(Arc::clone(s));
                        self.changes
                            .push(Change::ServerAdded(spec.addr.clone(), r.addr));
                    }
                    self.edit(spec, s, old_weight, r);
                    Arc::clone(s)
                }
                None => {
                    let rid = Self::alloc(
                        &self.servers,
                        &self.reserved_rs,
                        &mut self.next_rs_id,
                        &mut self.rs_cursor,
                    )
                    .ok_or(SnapshotError::Servers(prev.cap.servers))?;
                    self.changes
                        .push(Change::ServerAdded(spec.addr.clone(), r.addr));
                    let srv = RealServer::new(RsId(rid), id, r);
                    if srv.mac().is_none() {
                        // A next hop already known (another service's
                        // server, or this one before it was deleted) has
                        // the same MAC: no wait for ARP/ND.
                        let known = prev.servers().find(|s| s.next_hop == srv.next_hop);
                        srv.store_mac(known.and_then(|s| s.mac()));
                    }
                    Arc::new(CachePadded::new(srv))
                }
            };
            if out.iter().any(|o| Arc::ptr_eq(o, &shared)) {
                continue; // validated specs list a server once
            }
            self.servers[prev.server_slot(shared.id)] = Some(Arc::clone(&shared));
            out.push(shared);
            weights.push(r.weight);
        }
        if let Some(o) = old {
            for s in o.servers.iter() {
                if !out.iter().any(|n| Arc::ptr_eq(n, s)) {
                    self.changes
                        .push(Change::ServerRemoved(spec.addr.clone(), s.addr));
                    self.retire.push(Arc::clone(s));
                }
            }
        }
        Ok((out.into_boxed_slice(), weights.into_boxed_slice()))
    }

    /// A surviving server's settings follow its spec: thresholds and a
    /// static MAC here; a weight change is reported for the caller to apply
    /// (health checks may hold the effective weight at 0).
    fn edit(&mut self, spec: &ServiceSpec, s: &SharedServer, old_weight: u32, r: &RealServerSpec) {
        if old_weight != r.weight {
            self.changes.push(Change::WeightChanged {
                service: spec.addr.clone(),
                server: s.id,
                addr: r.addr,
                weight: r.weight,
            });
        }
        if s.thresholds() != (r.u_threshold, r.l_threshold) {
            self.thresholds
                .push((Arc::clone(s), r.u_threshold, r.l_threshold));
            self.changes
                .push(Change::ThresholdsChanged(spec.addr.clone(), r.addr));
        }
        if let Some(mac) = r.mac {
            if s.mac() != Some(mac) {
                self.macs.push((Arc::clone(s), mac));
            }
        }
    }

    /// The service's state: the old one's tables when nothing they depend
    /// on changed, else rebuilt with a new version (workers then reset
    /// their scheduler state for it).
    fn service_state(
        &mut self,
        id: ServiceId,
        spec: &ServiceSpec,
        old: Option<&ServiceState>,
        servers: Box<[SharedServer]>,
        weights: Box<[u32]>,
    ) -> ServiceState {
        let settings_same = |o: &ServiceState| {
            o.scheduler == spec.scheduler
                && o.flags == spec.sched_flags
                && o.persistence == spec.persistence
                && o.ops == spec.ops
        };
        let servers_same = |o: &ServiceState| {
            o.servers.len() == servers.len()
                && o.servers
                    .iter()
                    .zip(servers.iter())
                    .all(|(a, b)| Arc::ptr_eq(a, b))
                && *o.table_weights == *weights
        };
        let mut tables = None;
        let mut version = self.epoch;
        if let Some(o) = old {
            if !settings_same(o) {
                self.changes.push(Change::ServiceEdited(spec.addr.clone()));
            } else if servers_same(o) {
                tables = Some(Arc::clone(&o.tables));
                version = o.version;
            }
        }
        let tables = tables.unwrap_or_else(|| {
            let hashed: Vec<(Addr, u32)> = servers
                .iter()
                .zip(weights.iter())
                .map(|(r, w)| (Addr::from_ip(r.addr).1, *w))
                .collect();
            Arc::new(HashTables::build(
                spec.scheduler,
                spec.sched_flags,
                &hashed,
                self.prev.mh_size,
            ))
        });
        ServiceState {
            id,
            version,
            addr: spec.addr.clone(),
            scheduler: spec.scheduler,
            flags: spec.sched_flags,
            persistence: spec.persistence,
            ops: spec.ops,
            servers,
            table_weights: weights,
            tables,
        }
    }
}

/// Whether a live server is the one a spec describes: same address and
/// the same way of reaching it (a changed forwarding method or gateway is
/// a new server; its old connections keep the old method, as IPVS copies
/// the method into each connection).
fn same_server(s: &RealServer, r: &RealServerSpec) -> bool {
    s.addr == r.addr && s.forward == r.forward && s.next_hop == r.via.unwrap_or(r.addr)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lb::spec::{SchedFlags, SchedulerKind};

    fn rs(a: &str, w: u32) -> RealServerSpec {
        RealServerSpec {
            addr: a.parse().unwrap(),
            weight: w,
            u_threshold: 0,
            l_threshold: 0,
            mac: None,
            forward: Default::default(),
            via: None,
        }
    }

    fn svc(mark: u32, sched: SchedulerKind, servers: Vec<RealServerSpec>) -> ServiceSpec {
        ServiceSpec {
            ops: false,
            addr: ServiceAddr::Fwmark(mark),
            scheduler: sched,
            sched_flags: SchedFlags::default(),
            persistence: None,
            servers,
        }
    }

    fn id_of(s: &Snapshot, mark: u32, addr: &str) -> RsId {
        let st = s.find_service(&ServiceAddr::Fwmark(mark)).unwrap();
        let a: IpAddr = addr.parse().unwrap();
        st.servers.iter().find(|r| r.addr == a).unwrap().id
    }

    #[test]
    fn first_snapshot_ids_are_slots_in_order() {
        let s = Snapshot::new(&[
            svc(
                1,
                SchedulerKind::Rr,
                vec![rs("10.0.0.1", 1), rs("10.0.0.2", 1)],
            ),
            svc(2, SchedulerKind::Rr, vec![rs("10.0.0.3", 1)]),
        ]);
        assert_eq!(s.epoch(), 0);
        let ids: Vec<u32> = s.servers().map(|r| r.id.0).collect();
        assert_eq!(ids, [0, 1, 2]);
        let svcs: Vec<u32> = s.services().map(|x| x.id.0).collect();
        assert_eq!(svcs, [0, 1]);
        assert_eq!(s.server(RsId(2)).unwrap().svc, ServiceId(1));
    }

    #[test]
    fn survivors_keep_identity_and_tables_changed_services_rebuild() {
        let a = svc(
            1,
            SchedulerKind::Mh,
            vec![rs("10.0.0.1", 1), rs("10.0.0.2", 1)],
        );
        let b = svc(2, SchedulerKind::Rr, vec![rs("10.0.1.1", 1)]);
        let s0 = Snapshot::new(&[a.clone(), b.clone()]);
        let b_id = id_of(&s0, 2, "10.0.1.1");
        let a1 = id_of(&s0, 1, "10.0.0.1");
        // Add a server to a: a rebuilds, b is untouched.
        let mut a2 = a.clone();
        a2.servers.push(rs("10.0.0.3", 1));
        let (s1, ch) = s0.next(&[a2.clone(), b.clone()], 0).unwrap();
        assert_eq!(s1.epoch(), 1);
        assert_eq!(id_of(&s1, 2, "10.0.1.1"), b_id);
        assert_eq!(id_of(&s1, 1, "10.0.0.1"), a1);
        assert!(
            std::ptr::eq(s0.server(a1).unwrap(), s1.server(a1).unwrap()),
            "same object"
        );
        let (sa0, sa1) = (
            s0.find_service(&a.addr).unwrap(),
            s1.find_service(&a.addr).unwrap(),
        );
        assert_ne!(sa0.version, sa1.version);
        let (sb0, sb1) = (
            s0.find_service(&b.addr).unwrap(),
            s1.find_service(&b.addr).unwrap(),
        );
        assert_eq!(sb0.version, sb1.version);
        assert!(Arc::ptr_eq(&sb0.tables, &sb1.tables));
        assert_eq!(
            ch,
            vec![Change::ServerAdded(
                a.addr.clone(),
                "10.0.0.3".parse().unwrap()
            )]
        );
        // A weight change rebuilds the tables and is reported, not applied.
        let mut a3 = a2.clone();
        a3.servers[0].weight = 5;
        let (s2, ch) = s1.next(&[a3, b.clone()], 1).unwrap();
        assert!(matches!(ch[..], [Change::WeightChanged { weight: 5, .. }]));
        assert_eq!(s2.server(a1).unwrap().weight(), 1);
        assert_ne!(s2.find_service(&a.addr).unwrap().version, sa1.version);
    }

    #[test]
    fn removed_server_drains_then_frees_its_slot_under_a_new_id() {
        let cap = Capacity::new(4, 2);
        let two = svc(
            1,
            SchedulerKind::Rr,
            vec![rs("10.0.0.1", 1), rs("10.0.0.2", 1)],
        );
        let s0 = Snapshot::build(std::slice::from_ref(&two), TableSize::DEFAULT, cap).unwrap();
        let gone = id_of(&s0, 1, "10.0.0.2");
        s0.server(gone).unwrap().conn_created(true);
        let one = svc(1, SchedulerKind::Rr, vec![rs("10.0.0.1", 1)]);
        let (s1, ch) = s0.next(std::slice::from_ref(&one), 0).unwrap();
        assert_eq!(
            ch,
            vec![Change::ServerRemoved(
                one.addr.clone(),
                "10.0.0.2".parse().unwrap()
            )]
        );
        let srv = s1.server(gone).expect("draining servers stay reachable");
        assert!(srv.is_removed() && s0.server(gone).unwrap().is_removed());
        assert_eq!(s1.draining().count(), 1);
        // Full: the draining server holds the second slot.
        let mut three = one.clone();
        three.servers.push(rs("10.0.0.9", 1));
        assert_eq!(
            s1.next(&[three.clone()], 1).unwrap_err(),
            SnapshotError::Servers(2)
        );
        assert!(srv.is_removed(), "a refused change touches nothing");
        // Its connection ends and every worker has seen epoch 1: freed.
        srv.conn_released(true);
        let (s2, _) = s1.next(std::slice::from_ref(&one), 1).unwrap();
        assert_eq!(s2.draining().count(), 0);
        assert!(s2.server(gone).is_none());
        let (s3, _) = s2.next(&[three], 2).unwrap();
        let new = id_of(&s3, 1, "10.0.0.9");
        assert_eq!(s3.server_slot(new), s1.server_slot(gone));
        assert_ne!(new, gone, "a reused slot gets a new id");
        assert!(s3.server(gone).is_none());
    }

    #[test]
    fn a_draining_server_listed_again_is_revived_with_its_connections() {
        let two = svc(
            1,
            SchedulerKind::Rr,
            vec![rs("10.0.0.1", 1), rs("10.0.0.2", 1)],
        );
        let s0 = Snapshot::new(std::slice::from_ref(&two));
        let id = id_of(&s0, 1, "10.0.0.2");
        s0.server(id).unwrap().conn_created(true);
        let one = svc(1, SchedulerKind::Rr, vec![rs("10.0.0.1", 1)]);
        let (s1, _) = s0.next(&[one], 0).unwrap();
        assert!(s1.server(id).unwrap().is_removed());
        let (s2, ch) = s1.next(std::slice::from_ref(&two), 1).unwrap();
        assert_eq!(id_of(&s2, 1, "10.0.0.2"), id);
        assert!(!s2.server(id).unwrap().is_removed());
        assert_eq!(s2.server(id).unwrap().active(), 1);
        assert_eq!(s2.draining().count(), 0);
        assert_eq!(
            ch,
            vec![Change::ServerAdded(two.addr, "10.0.0.2".parse().unwrap())]
        );
    }

    #[test]
    fn health_state_and_macs_survive_a_change_that_does_not_concern_the_server() {
        let a = svc(
            1,
            SchedulerKind::Rr,
            vec![rs("10.0.0.1", 1), rs("10.0.0.2", 1)],
        );
        let b = svc(2, SchedulerKind::Rr, vec![rs("10.0.0.3", 1)]);
        let s0 = Snapshot::new(&[a.clone(), b.clone()]);
        let id = id_of(&s0, 1, "10.0.0.2");
        s0.set_health_down(id, true);
        s0.set_mac(id, Some(MacAddr([2, 0, 0, 0, 0, 2])));
        s0.set_weight(id, 0); // inhibit_on_failure, say
        let mut b2 = b.clone();
        b2.servers.push(rs("10.0.0.4", 1));
        let (s1, _) = s0.next(&[a, b2], 0).unwrap();
        let r = s1.server(id).unwrap();
        assert!(r.is_health_down() && !r.is_removed());
        assert_eq!(
            (r.weight(), r.mac()),
            (0, Some(MacAddr([2, 0, 0, 0, 0, 2])))
        );
    }

    #[test]
    fn a_new_server_behind_a_known_next_hop_gets_its_mac_at_once() {
        let mut static_mac = rs("10.0.0.1", 1);
        static_mac.mac = Some(MacAddr([2, 0, 0, 0, 0, 1]));
        let a = svc(1, SchedulerKind::Rr, vec![static_mac]);
        let s0 = Snapshot::new(std::slice::from_ref(&a));
        // The same address added to another service (as admin -a gives it,
        // without a MAC), and an unknown one.
        let b = svc(
            2,
            SchedulerKind::Rr,
            vec![rs("10.0.0.1", 1), rs("10.0.0.9", 1)],
        );
        let (s1, _) = s0.next(&[a, b], 0).unwrap();
        assert_eq!(
            s1.server(id_of(&s1, 2, "10.0.0.1")).unwrap().mac(),
            Some(MacAddr([2, 0, 0, 0, 0, 1]))
        );
        assert_eq!(s1.server(id_of(&s1, 2, "10.0.0.9")).unwrap().mac(), None);
    }

    #[test]
    fn deleted_service_recreated_gets_a_new_id() {
        let a = svc(1, SchedulerKind::Rr, vec![rs("10.0.0.1", 1)]);
        let b = svc(2, SchedulerKind::Rr, vec![rs("10.0.0.2", 1)]);
        let s0 = Snapshot::build(
            &[a.clone(), b.clone()],
            TableSize::DEFAULT,
            Capacity::new(2, 8),
        )
        .unwrap();
        let a_id = s0.find_service(&a.addr).unwrap().id;
        let (s1, ch) = s0.next(std::slice::from_ref(&b), 0).unwrap();
        assert_eq!(ch, vec![Change::ServiceRemoved(a.addr.clone())]);
        assert!(s1.service(a_id).is_none());
        let (s2, _) = s1.next(&[b, a.clone()], 1).unwrap();
        let again = s2.find_service(&a.addr).unwrap().id;
        assert_ne!(again, a_id);
        assert_eq!(s2.service_slot(again), s0.service_slot(a_id));
        let order: Vec<_> = s2.services().map(|s| s.addr.clone()).collect();
        assert_eq!(order[1], a.addr, "configuration order");
    }
}
