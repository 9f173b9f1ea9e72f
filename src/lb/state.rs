//! The per-worker state layer: [`WorkerState`] implements
//! [`FlowState`] over the worker's own connection table, its scheduler
//! state, the shared persistence table and the shared service snapshot.
//!
//! Per packet: one connection-table lookup; the entry caches the server, so
//! the persistence table is consulted only when the entry is missing, and
//! the shared per-server counters change only when a connection is created,
//! changes between active and inactive, or expires.
//!
//! # Full tables (documented fallbacks)
//!
//! * **Connection table full** (the flow's window of lines holds live entries,
//!   `drop_entry` off; with it on, see below):
//!   the packet is forwarded without an entry and counted
//!   (`conn_table_full`). A persistent service uses (or creates) its template
//!   without holding a reference, refreshing it by traffic; other services
//!   use a stateless hash of the 5-tuple over the service's weighted table,
//!   so every packet of the flow reaches the same server while the server
//!   set is stable. For one established-timeout after the last failed
//!   insertion, a TCP non-SYN packet without an entry is treated the same
//!   way (it may belong to a flow that never got one) instead of being
//!   dropped as `TcpNotSyn`.
//! * **Persistence table full** (or its writer flag busy): the connection is
//!   scheduled and tracked without a template (`template_full`,
//!   `template_busy`); that client loses persistence until space frees up.
//!   Live templates are never evicted.
//!
//! # Table exhaustion (IPVS's `drop_entry` and `secure_tcp` defences)
//!
//! A flood of SYNs (or UDP datagrams) from spoofed sources creates an entry
//! per packet; without a defence a 1M table is full after 1M packets and
//! stays full for the SYN_RECV timeout. IPVS triggers its defences on free
//! memory; pmdlb's tables are fixed, so the trigger is each worker's own
//! table: it is *under pressure* from the moment it holds
//! `conn_high_water_pct` of its capacity — or earlier, when a new flow
//! finds its window full of live entries, which with two lines per entry
//! of capacity is rare below the capacity — until it has
//! shrunk by 5 % of its capacity below where pressure began (hysteresis;
//! each start is counted in `pressure_episodes`). Each defence is `off`,
//! `auto` (active under pressure) or `always` — IPVS's sysctl modes 0, 1/2
//! and 3 — and is checked when a new flow arrives and at every sweep, never
//! by a scan of the table. (For `drop_entry`, which only ever acts on full
//! windows, `auto` and `always` therefore behave alike.)
//!
//! * **`drop_entry`**: a new flow whose window is full of live
//!   entries evicts the embryonic entry there closest to expiry
//!   ([`ConnEntry::is_embryonic`]: SYN_RECV — for which the closest to
//!   expiry is the handshake that has waited longest — or a UDP-like flow
//!   of a single packet), counted in `conn_reclaimed`. ESTABLISHED,
//!   FIN_WAIT and every other state, and UDP flows that sent a second
//!   packet, are never evicted: their clients did more than send one
//!   packet, and a server change would break them, while an evicted SYN
//!   costs a spoofed source nothing and a real client at worst a SYN
//!   retransmission. FIN_WAIT is kept because a client's FIN half-closes:
//!   the server may still be sending, and the client's ACKs must keep
//!   reaching it. IPVS also drops some ESTABLISHED entries that saw few
//!   packets (`todrop_entry`); pmdlb does not, so an established client
//!   never loses its server to a flood. If the window holds no victim
//!   either, the new flow is refused (dropped as `TableFull`, counted in
//!   `conn_refused`), as IPVS drops a packet it cannot allocate a
//!   connection for: while the defence is on, forwarding without an entry
//!   would open the stateless full-table mode above, in which every TCP
//!   non-SYN without an entry is forwarded for an established-timeout — a
//!   flood of spoofed ACKs would then pass the director unfiltered — and a
//!   refused real client's TCP retransmits its SYN (after 1 s, 3 s, …) and
//!   gets in once an entry of its window has ended. With `drop_entry` off
//!   the stateless fallback above applies unchanged.
//! * **`secure_tcp`**: while active, a SYN_RECV entry expires
//!   `tcp_syn_recv_secure_s` after its last packet instead of
//!   `tcp_syn_recv_s` — existing entries included, on lookup, in the sweep
//!   and on reclaim — counted in `syn_recv_expired_early` when that ends it
//!   before its normal expiry. (IPVS's `secure_tcp` switches to a stricter
//!   state table; with input-only tracking there is nothing stricter to
//!   see, so pmdlb shortens the timeout, as IPVS's 2.4 defence table did.)
//!   Under pressure, with either defence configured, the sweep visits
//!   [`PRESSURE_SWEEP`] times as many groups of lines per call.
#![forbid(unsafe_code)]

mod sync;
#[cfg(all(test, not(loom)))]
mod sync_tests;

pub use sync::Installed;

use std::sync::Arc;

use crate::lb::clock::{secs, Clock};
use crate::lb::conn::{
    tcp_transition, ConnEntry, ConnState, ConnTable, Probe, StateTimeouts, F_CONFIRMED, F_SYNCED,
    F_TEMPLATE,
};
use crate::lb::counters::counter_set;
use crate::lb::flow::{FlowState, OnAssigned, StateDrop, Target};
use crate::lb::persist::{Held, PersistError, PersistTable, TemplateKey};
use crate::lb::realserver::RealServer;
use crate::lb::sched::{mh, stateless_pick, SchedCtx, SchedState};
use crate::lb::snapshot::Snapshot;
use crate::lb::spec::{DefenceMode, Persistence, StateFlags, Timeouts};
use crate::lb::sync_ring::{Outgoing, Producer, SyncRule};
use crate::lb::types::{ip_proto, Addr, FlowKey, RsId, ServiceId, TcpFlags};
use crate::sys::mem::{MemError, Memory, Placement};

counter_set! {
    /// Counters of one worker's state layer: plain integers written by the
    /// worker only (it publishes them whole with its other counters, see
    /// `dataplane::counters`).
    pub struct StateCounters {
        /// Connection entries created.
        conn_created,
        /// Connection entries removed, for any reason: expired (lazily, by the
        /// sweep, or reclaimed on insertion), evicted (`conn_reclaimed`),
        /// expired early (`syn_recv_expired_early`), server removed. Entries
        /// installed from sync count here too: the table holds
        /// `conn_created + sync_installed - conn_expired` entries.
        conn_expired,
        /// Connections dropped because their server was removed
        /// (`expire_nodest_conn`).
        conn_dest_removed,
        /// Packets forwarded without an entry because the table was full.
        conn_table_full,
        /// Live embryonic entries (SYN_RECV, single-packet UDP) evicted to make
        /// room for a new flow (`drop_entry`).
        conn_reclaimed,
        /// SYN_RECV entries that ended at the `secure_tcp` timeout, before
        /// their normal one.
        syn_recv_expired_early,
        /// New flows dropped: table full, `drop_entry` active and no embryonic
        /// entry in the flow's window.
        conn_refused,
        /// Times pressure started: the table reached its high-water mark, or a
        /// new flow found its window full.
        pressure_episodes,
        /// TCP state changes.
        tcp_transitions,
        /// TCP packets dropped: not a SYN, no entry, no template, not sloppy.
        tcp_not_syn,
        /// New flows dropped: the scheduler found no available server.
        no_real_server,
        /// Flows whose server (from an entry or template) has no MAC: dropped.
        no_mac,
        /// UDP datagrams of one-packet (`-o`) services scheduled on their
        /// own, without a connection entry.
        ops_scheduled,
        /// Persistence templates created by this worker.
        templates_created,
        /// Connections that reused an existing template (including races lost).
        templates_reused,
        /// Templates invalidated (server removed, or quiescent with
        /// `expire_quiescent_template`).
        templates_invalidated,
        /// Templates freed by this worker's sweeps.
        templates_expired,
        /// Connections tracked without a template: persistence table full.
        template_full,
        /// Connections tracked without a template: writer flag busy too long.
        template_busy,
        /// Connections queued for the sync daemon (to be sent to peers).
        sync_queued,
        /// Connections not queued for sync: the ring to the daemon was full.
        sync_ring_full,
        /// Entries installed from peers' sync records (new entries).
        sync_installed,
        /// Existing entries a sync record for the same server updated
        /// (state, expiry).
        sync_updated,
        /// Existing entries an active sync record moved to another server.
        sync_moved,
        /// Inactive sync records ignored: they disagree with the entry's
        /// server (the end of a connection already replaced).
        sync_ignored,
        /// Sync records not installed: the flow's window of the connection
        /// table was full of live entries.
        sync_install_full,
        /// Sync records not installed: their service or server is not in the
        /// current snapshot.
        sync_invalid,
        /// Entries installed from sync that a packet reached on this worker:
        /// counted in their server's connections from then on.
        sync_adopted,
        /// Counted entries a peer's record for the same server reached: the
        /// peer carries the flow now, so this worker's server counts let it
        /// go until a packet here adopts it again.
        sync_released,
    }
}

/// Sizes and settings of a worker's state.
#[derive(Clone, Copy, Debug)]
pub struct StateConfig {
    /// Connection-table capacity (entries) per worker.
    pub conn_capacity: usize,
    /// Per-state timeouts.
    pub timeouts: Timeouts,
    /// Behaviour switches.
    pub flags: StateFlags,
    /// Hash seed of the connection table.
    pub seed: u64,
}

/// How much harder the sweep works while the table is under pressure and
/// a defence is configured: groups of lines per call, times the normal number.
pub const PRESSURE_SWEEP: usize = 4;

/// One worker's state layer.
#[derive(Debug)]
pub struct WorkerState {
    conns: ConnTable,
    /// By service slot: the scheduler state and the (id, version) it was
    /// made for; reset when a new snapshot rebuilt that service.
    scheds: Box<[(ServiceId, u64, SchedState)]>,
    snap: Arc<Snapshot>,
    persist: Arc<PersistTable>,
    clock: Clock,
    timeouts: Timeouts,
    /// `timeouts` per state in milliseconds, for the per-packet refresh.
    state_ms: StateTimeouts,
    flags: StateFlags,
    full_until: u64,
    defence: Defence,
    counters: StateCounters,
    /// Connections created per real server (indexed by server slot),
    /// allocated once: plain writes, published by the worker with its
    /// traffic.
    conns_by_rs: Box<[u64]>,
    /// The ring to the sync daemon, once [`WorkerState::enable_sync`].
    sync: Option<Producer<Outgoing>>,
    /// When connections are reported; its period also bounds the
    /// entries' packet counts (kept with sync off too).
    sync_rule: SyncRule,
}

/// A scheduler-state slot no service uses.
const NO_SCHED: (ServiceId, u64, SchedState) = (
    ServiceId(u32::MAX),
    u64::MAX,
    SchedState::Lc(crate::lb::sched::lc::Lc),
);

/// The defences' state: occupancy marks and what is active now.
#[derive(Clone, Copy, Debug, Default)]
struct Defence {
    /// Entries at which pressure starts.
    high_water: usize,
    /// Hysteresis: pressure stops this many entries (5 % of the capacity)
    /// below where it started.
    band: usize,
    /// Entries below which the current pressure stops.
    low_water: usize,
    /// Under pressure (between the marks, with hysteresis).
    pressure: bool,
    /// `drop_entry` acts now.
    drop_entry: bool,
    /// The expiry rule now (`secure_tcp`).
    expiry: Expiry,
}

/// When an entry ends: at `expires`, or — `secure_tcp` active — a SYN_RECV
/// entry `syn_cut` ms earlier (its timeout shortened to the secure one).
#[derive(Clone, Copy, Debug, Default)]
struct Expiry {
    syn_cut: u64,
    /// `syn_cut` while secure_tcp acts, else 0: what [`Expiry::deadline`]
    /// takes off a SYN_RECV entry, with no branch on the mode per packet.
    cut: u64,
}

impl Expiry {
    #[inline(always)]
    fn deadline(self, e: &ConnEntry) -> u64 {
        let cut = if e.state == ConnState::SynRecv {
            self.cut
        } else {
            0
        };
        e.expires.saturating_sub(cut)
    }
}

/// What the expiry bookkeeping needs, borrowed apart from the table.
struct Books<'a> {
    snap: &'a Snapshot,
    persist: &'a PersistTable,
    counters: &'a mut StateCounters,
}

impl Books<'_> {
    /// Undo a connection's effects and count its removal. `at` is when it
    /// ended (its expiry, or now when dropped early).
    fn release(&mut self, e: &ConnEntry, at: u64) {
        self.unbind(e, at);
        self.counters.conn_expired += 1;
    }

    /// Undo what binds a connection to its server: the server's counters
    /// (unless the entry is an unadopted synced one, which never took
    /// them) and its template reference.
    fn unbind(&mut self, e: &ConnEntry, at: u64) {
        if e.flags & F_SYNCED == 0 {
            if let Some(s) = self.snap.server(e.rs) {
                s.conn_released(e.is_active());
            }
        }
        if e.has_template() {
            let t = self.template_timeout(e.svc);
            self.persist.release(e.tpl_slot, at, t);
        }
    }

    /// Remove an entry that is past its deadline (or, `now` before the
    /// deadline, retired early for another reason) and count a SYN_RECV
    /// that `secure_tcp` ended before its normal expiry.
    fn retire(&mut self, e: &ConnEntry, now: u64, exp: Expiry) {
        let deadline = exp.deadline(e);
        if now >= deadline && now < e.expires {
            self.counters.syn_recv_expired_early += 1;
        }
        self.release(e, deadline.min(now));
    }

    /// A live entry evicted by `drop_entry`.
    fn evict(&mut self, e: &ConnEntry, now: u64) {
        self.counters.conn_reclaimed += 1;
        self.release(e, now);
    }

    fn template_timeout(&self, svc: ServiceId) -> u64 {
        self.snap
            .service(svc)
            .and_then(|s| s.persistence)
            .map_or(0, |p| secs(p.timeout_s))
    }
}

/// `assign_hashed`'s receiver of [`FlowState::assign_then`]:
/// keeps the result for a caller that wants it as a value.
struct Keep<'a>(&'a mut Result<Target, StateDrop>);

impl OnAssigned for Keep<'_> {
    #[inline(always)]
    fn assigned(self, assigned: Result<Target, StateDrop>) {
        *self.0 = assigned;
    }
}

#[inline(always)]
fn target(s: &RealServer, rs: RsId) -> Option<Target> {
    s.mac().map(|mac| Target {
        rs,
        mac,
        forward: s.forward,
    })
}

impl WorkerState {
    /// A worker's state over a shared snapshot and persistence table; the
    /// connection table is allocated here, once, on the heap.
    pub fn new(snap: Arc<Snapshot>, persist: Arc<PersistTable>, cfg: StateConfig) -> Self {
        Self::new_in(snap, persist, cfg, &Memory::heap()).expect("the heap has no backing to fail")
    }

    /// [`WorkerState::new`] with the connection table in `mem`; fails
    /// only when `mem` has no room and allows no fall-back.
    pub fn new_in(
        snap: Arc<Snapshot>,
        persist: Arc<PersistTable>,
        cfg: StateConfig,
        mem: &Memory,
    ) -> Result<Self, MemError> {
        let cap = snap.capacity();
        let scheds = (0..cap.services).map(|_| NO_SCHED).collect();
        let conns_by_rs = vec![0; cap.servers as usize].into_boxed_slice();
        let mut w = WorkerState {
            conns: ConnTable::new_in(cfg.conn_capacity, cfg.seed, mem)?,
            scheds,
            snap,
            persist,
            clock: Clock::default(),
            timeouts: cfg.timeouts,
            state_ms: StateTimeouts::new(&cfg.timeouts),
            flags: cfg.flags,
            full_until: 0,
            defence: Defence::default(),
            counters: StateCounters::default(),
            conns_by_rs,
            sync: None,
            sync_rule: SyncRule::default(),
        };
        w.configure_defence();
        w.reset_scheds();
        Ok(w)
    }

    /// Where the connection table's lines live, and their size in bytes.
    pub fn conn_memory(&self) -> (&Placement, usize) {
        self.conns.memory()
    }

    /// Fresh scheduler state for every service the snapshot built anew.
    fn reset_scheds(&mut self) {
        for st in self.snap.services() {
            let slot = self.snap.service_slot(st.id);
            let cur = &mut self.scheds[slot];
            if cur.0 != st.id || cur.1 != st.version {
                *cur = (st.id, st.version, SchedState::new(st.scheduler));
            }
        }
    }

    /// Switch to a newer snapshot of the same run (same capacity and
    /// persistence table): at a burst boundary, never inside one. Entries
    /// and templates keep their ids; services the snapshot rebuilt get a
    /// fresh scheduler state, the others keep theirs (an rr cursor goes on
    /// where it was). Allocates nothing; the old snapshot's `Arc` is
    /// returned so the caller decides where it is dropped.
    pub fn switch(&mut self, snap: Arc<Snapshot>) -> Arc<Snapshot> {
        debug_assert_eq!(snap.capacity(), self.snap.capacity());
        let old = std::mem::replace(&mut self.snap, snap);
        self.reset_scheds();
        old
    }

    /// Recompute the marks and the secure SYN_RECV cut from the flags and
    /// timeouts, then what is active.
    fn configure_defence(&mut self) {
        let cap = self.conns.capacity();
        let pct = usize::from(self.flags.conn_high_water_pct.min(100));
        let d = &mut self.defence;
        d.high_water = (cap * pct / 100).max(1);
        d.band = cap * 5 / 100;
        d.low_water = d.high_water.saturating_sub(d.band);
        d.expiry.syn_cut = secs(self.timeouts.tcp_syn_recv_s)
            .saturating_sub(secs(self.timeouts.tcp_syn_recv_secure_s));
        self.update_defence();
    }

    /// Pressure on or off by occupancy (hysteresis), and which defences
    /// act. Two comparisons: called for every new flow and every sweep.
    #[inline]
    fn update_defence(&mut self) {
        let len = self.conns.len();
        if !self.defence.pressure && len >= self.defence.high_water {
            self.start_pressure();
        } else if self.defence.pressure && len < self.defence.low_water {
            self.defence.pressure = false;
        }
        self.set_active();
    }

    /// Pressure starts: the table reached its high-water mark, or a new
    /// flow found its window full of live entries (rare below the
    /// capacity, so mostly the mark). It stops once the table has shrunk 5 % of its
    /// capacity below where it started.
    #[cold]
    fn start_pressure(&mut self) {
        let d = &mut self.defence;
        d.pressure = true;
        d.low_water = self.conns.len().min(d.high_water).saturating_sub(d.band);
        self.counters.pressure_episodes += 1;
        self.set_active();
    }

    #[inline]
    fn set_active(&mut self) {
        let d = &mut self.defence;
        d.drop_entry = self.flags.drop_entry.active(d.pressure);
        let secure = self.flags.secure_tcp.active(d.pressure);
        d.expiry.cut = if secure { d.expiry.syn_cut } else { 0 };
    }

    /// Whether the connection table is under pressure (at or above its
    /// high-water mark, and not yet back below the low one).
    pub fn under_pressure(&self) -> bool {
        self.defence.pressure
    }

    /// Set the time (ms), once per burst.
    #[inline]
    pub fn set_now(&mut self, now_ms: u64) {
        self.clock.set_ms(now_ms);
    }

    /// The current time (ms).
    #[inline]
    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The counters.
    pub fn counters(&self) -> &StateCounters {
        &self.counters
    }

    /// Connections created per real server, indexed by `RsId` (IPVS's
    /// per-destination `conns` counter, this worker's share).
    pub fn conns_by_rs(&self) -> &[u64] {
        &self.conns_by_rs
    }

    /// The snapshot in use.
    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snap
    }

    /// Live connection entries (including expired ones not yet swept).
    pub fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Visit the connection entries a lookup would still find now — not
    /// past their deadline (with `secure_tcp` active, a SYN_RECV entry's
    /// shortened one), not of a removed server under
    /// `expire_nodest_conn` — from line `from` on, at most `max_buckets`
    /// groups of [`crate::lb::conn::GROUP`] lines; `f` gets each entry and its deadline (ms, this worker's
    /// clock). Expired entries the sweep has not reached yet are skipped.
    /// A slow job (`ipvsadm -L -c`), never per packet; see
    /// [`ConnTable::scan`] for the cursor and `Break`.
    pub fn scan_live(
        &self,
        from: usize,
        max_buckets: usize,
        mut f: impl FnMut(&ConnEntry, u64) -> std::ops::ControlFlow<()>,
    ) -> Option<usize> {
        let now = self.clock.now_ms();
        let exp = self.defence.expiry;
        let nodest = self.flags.expire_nodest_conn;
        let snap = &*self.snap;
        self.conns.scan(from, max_buckets, |e| {
            let deadline = exp.deadline(e);
            let gone = nodest && snap.server(e.rs).map_or(true, |s| s.is_out());
            if now >= deadline || gone {
                return std::ops::ControlFlow::Continue(());
            }
            f(e, deadline)
        })
    }

    /// The connection table's home line for a flow (hash a burst first
    /// and prefetch; see [`ConnTable::home_of`]).
    #[inline]
    pub fn home_of(&self, key: &FlowKey) -> usize {
        self.conns.home_of(key)
    }

    /// Change timeouts at run time (`ipvsadm --set`); existing entries keep
    /// their expiry until their next packet.
    pub fn set_timeouts(&mut self, t: Timeouts) {
        self.timeouts = t;
        self.state_ms = StateTimeouts::new(&t);
        self.configure_defence();
    }

    /// Change the behaviour switches at run time.
    pub fn set_flags(&mut self, f: StateFlags) {
        self.flags = f;
        self.configure_defence();
    }

    /// Slow job: expire up to `max_buckets` groups of connection lines
    /// ([`PRESSURE_SWEEP`] times as many under pressure with a defence
    /// configured) and `max_buckets` persistence-table buckets. With
    /// `expire_nodest_conn`, entries of removed servers go too. Returns the
    /// connections removed.
    pub fn sweep(&mut self, max_buckets: usize) -> usize {
        let now = self.clock.now_ms();
        let nodest = self.flags.expire_nodest_conn;
        let defended =
            self.flags.drop_entry != DefenceMode::Off || self.flags.secure_tcp != DefenceMode::Off;
        let conn_buckets = if self.defence.pressure && defended {
            max_buckets.saturating_mul(PRESSURE_SWEEP)
        } else {
            max_buckets
        };
        let exp = self.defence.expiry;
        let snap = &*self.snap;
        let mut books = Books {
            snap,
            persist: &self.persist,
            counters: &mut self.counters,
        };
        let mut removed_dest = 0;
        let persist = &*self.persist;
        let n = self.conns.sweep(
            conn_buckets,
            |e| {
                // a template reference an expiry will give back
                if e.has_template() && now >= exp.deadline(e) {
                    persist.prefetch_slot(e.tpl_slot);
                }
            },
            |e| {
                now >= exp.deadline(e) || (nodest && snap.server(e.rs).map_or(true, |s| s.is_out()))
            },
            |e| {
                if now < exp.deadline(e) {
                    removed_dest += 1;
                }
                books.retire(e, now, exp);
            },
        );
        self.counters.conn_dest_removed += removed_dest;
        self.counters.templates_expired += self.persist.sweep(max_buckets, now) as u64;
        self.update_defence();
        n
    }

    /// Whether a template's server may still be used.
    fn template_valid(&self, rs: RsId) -> bool {
        let quiescent_expires = self.flags.expire_quiescent_template;
        self.snap.server(rs).is_some_and(|s| {
            !s.is_out() && s.mac().is_some() && !(quiescent_expires && s.weight() == 0)
        })
    }

    fn schedule(&mut self, svc: ServiceId, key: &FlowKey) -> Option<RsId> {
        let st = self.snap.service(svc)?;
        let ctx = SchedCtx {
            servers: self.snap.servers_of(st),
            tables: &st.tables,
            flags: st.flags,
            weights_gen: self.snap.weights_gen(),
        };
        let slot = self.snap.service_slot(svc);
        let i = self.scheds[slot].2.pick(&ctx, key)?;
        Some(st.servers[i].id)
    }

    /// The server of a new template: the scheduler's pick, or with
    /// `mh-template` the Maglev slot of the template key.
    fn schedule_template(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        tk: &TemplateKey,
    ) -> Option<RsId> {
        let st = self.snap.service(svc)?;
        if !st.flags.mh_template {
            return self.schedule(svc, key);
        }
        let ctx = SchedCtx {
            servers: self.snap.servers_of(st),
            tables: &st.tables,
            flags: st.flags,
            weights_gen: self.snap.weights_gen(),
        };
        mh::template_pick(&ctx, &tk.client).map(|i| st.servers[i].id)
    }

    fn stateless(&self, svc: ServiceId, key: &FlowKey) -> Option<RsId> {
        let st = self.snap.service(svc)?;
        let ctx = SchedCtx {
            servers: self.snap.servers_of(st),
            tables: &st.tables,
            flags: st.flags,
            weights_gen: self.snap.weights_gen(),
        };
        stateless_pick(&ctx, key).map(|i| st.servers[i].id)
    }

    /// The connection is gone: drop it now (removed server).
    fn drop_entry(&mut self, idx: usize) {
        let now = self.clock.now_ms();
        let e = self.conns.entry(idx);
        let mut books = Books {
            snap: &self.snap,
            persist: &self.persist,
            counters: &mut self.counters,
        };
        books.release(&e, now.min(e.expires));
        self.conns.remove(idx);
    }

    /// Whether a TCP SYN (without ACK) that found entry `e` opens a new
    /// connection to be scheduled anew instead of following the entry, as
    /// IPVS's `conn_reuse_mode` 1 does: the old connection is over (CLOSE,
    /// TIME_WAIT) and no template controls it, or its server takes no new
    /// connections any more (removed, or down by its health checks). A
    /// client that reuses a source port must not land on a dead server.
    #[inline]
    fn syn_reschedules(&self, e: &ConnEntry, tcp: Option<TcpFlags>) -> bool {
        let Some(f) = tcp else { return false };
        if !f.has(TcpFlags::SYN) || f.has(TcpFlags::ACK) {
            return false;
        }
        let closed = matches!(e.state, ConnState::Close | ConnState::TimeWait);
        (closed && !e.has_template()) || !self.snap.server(e.rs).is_some_and(|s| !s.is_out())
    }

    /// Existing entry: advance state, refresh, return the target.
    #[inline(always)]
    fn existing(&mut self, idx: usize, tcp: Option<TcpFlags>) -> Result<Target, StateDrop> {
        let now = self.clock.now_ms();
        let e = self.conns.entry(idx);
        let Some(srv) = self.snap.server(e.rs) else {
            self.drop_entry(idx);
            return Err(StateDrop::DestRemoved);
        };
        if self.flags.expire_nodest_conn && srv.is_out() {
            self.drop_entry(idx);
            self.counters.conn_dest_removed += 1;
            return Err(StateDrop::DestRemoved);
        }
        let synced = e.flags & F_SYNCED != 0;
        let mut state = e.state;
        let mut changed = false;
        if let Some(f) = tcp {
            let ns = tcp_transition(state, f);
            if ns != state {
                self.counters.tcp_transitions += 1;
                let (was, is) = (
                    state == ConnState::Established,
                    ns == ConnState::Established,
                );
                if was != is && !synced {
                    srv.conn_changed(is);
                }
                state = ns;
                changed = true;
            }
        }
        let expires = now + self.state_ms.ms(state);
        // The packet count only matters to the sync rule: without sync the
        // update stays the plain one.
        let pkts = if self.sync.is_some() {
            let period = self.sync_rule.period;
            self.conns
                .update_counted(idx, state, F_CONFIRMED, expires, period)
        } else {
            self.conns.update(idx, state, F_CONFIRMED, expires);
            0
        };
        if synced {
            // Adopted: counted from now on, with the state it has now.
            self.conns.clear_flags(idx, F_SYNCED);
            srv.conn_created(state == ConnState::Established);
            self.counters.sync_adopted += 1;
        }
        if self.sync.is_some() && sync::needed(e.key.proto(), state, changed, pkts, self.sync_rule)
        {
            Self::queue_sync(&mut self.sync, &self.conns, &mut self.counters, now, idx);
        }
        // Built after the call above, so it need not live across it: 3–4
        // instructions per packet fewer than building it before (callgrind,
        // `decide/hot`). (The stall this alone did not remove was the merge
        // of the found and new paths' results: see `FlowState::assign_then`.)
        match target(srv, e.rs) {
            Some(t) => Ok(t),
            None => {
                self.counters.no_mac += 1;
                Err(StateDrop::NoRealServer)
            }
        }
    }

    /// A persistent service's template for a new connection: found (with a
    /// reference) or created from a scheduler pick. `Ok(None)` when the
    /// template could not be stored (the pick is used without one).
    fn template_for(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        tk: &TemplateKey,
        may_create: bool,
        take_ref: bool,
        timeout: u64,
    ) -> Result<(RsId, Option<Held>), StateDrop> {
        let now = self.clock.now_ms();
        let quiescent_expires = self.flags.expire_quiescent_template;
        let snap = &*self.snap;
        let valid = |rs: RsId| {
            snap.server(rs).is_some_and(|s| {
                !s.is_out() && s.mac().is_some() && !(quiescent_expires && s.weight() == 0)
            })
        };
        let mut invalid = false;
        let found = self.persist.acquire_or_miss(tk, now, |rs| {
            let ok = valid(rs);
            invalid |= !ok;
            ok
        });
        if invalid {
            self.counters.templates_invalidated += 1;
        }
        let miss = match found {
            Ok(h) => {
                self.counters.templates_reused += 1;
                if !take_ref {
                    self.persist.touch(h.slot, now, timeout);
                    self.persist.release(h.slot, now, timeout);
                    return Ok((h.rs, None));
                }
                return Ok((h.rs, Some(h)));
            }
            Err(miss) => miss,
        };
        if !may_create {
            self.counters.tcp_not_syn += 1;
            return Err(StateDrop::TcpNotSyn);
        }
        let Some(rs) = self.schedule_template(svc, key, tk) else {
            self.counters.no_real_server += 1;
            return Err(StateDrop::NoRealServer);
        };
        match self
            .persist
            .insert_after(miss, tk, rs, now, timeout, take_ref)
        {
            Ok(h) => {
                if h.created {
                    self.counters.templates_created += 1;
                } else {
                    self.counters.templates_reused += 1;
                }
                Ok((h.rs, take_ref.then_some(h)))
            }
            Err(PersistError::Full) => {
                self.counters.template_full += 1;
                Ok((rs, None))
            }
            Err(PersistError::Busy) => {
                self.counters.template_busy += 1;
                Ok((rs, None))
            }
        }
    }

    #[cold]
    fn new_flow(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        h: u64,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop> {
        let now = self.clock.now_ms();
        let Some(st) = self.snap.service(svc) else {
            self.counters.no_real_server += 1;
            return Err(StateDrop::NoRealServer);
        };
        let persistence = st.persistence;
        if st.ops && key.proto() == ip_proto::UDP {
            return self.one_packet(svc, key, persistence);
        }
        self.update_defence();
        let is_tcp = key.proto() == ip_proto::TCP;
        let flags = tcp.unwrap_or_default();
        if is_tcp && flags.has(TcpFlags::RST) {
            self.counters.tcp_not_syn += 1;
            return Err(StateDrop::TcpNotSyn);
        }
        let syn_ok = !is_tcp || flags.has(TcpFlags::SYN) || self.flags.sloppy_tcp;
        let full_mode = now < self.full_until;
        if !syn_ok && persistence.is_none() && !full_mode {
            self.counters.tcp_not_syn += 1;
            return Err(StateDrop::TcpNotSyn);
        }

        // Reserve an entry first: a full table changes how we pick.
        let mut books = Books {
            snap: &self.snap,
            persist: &self.persist,
            counters: &mut self.counters,
        };
        // A non-SYN without entry that got here is in full mode: it may
        // belong to a flow forwarded statelessly, so it stays stateless.
        let stateless_only = !syn_ok && persistence.is_none();
        let exp = self.defence.expiry;
        let reserved = if stateless_only {
            None
        } else {
            self.conns
                .reserve_with(h, |e| now >= exp.deadline(e), |e| books.retire(e, now, exp))
        };
        let reserved = match reserved {
            None if !stateless_only => {
                // Both buckets full of live entries: exhaustion where it
                // matters, whatever the occupancy says.
                if !self.defence.pressure {
                    self.start_pressure();
                }
                if self.defence.drop_entry {
                    let mut books = Books {
                        snap: &self.snap,
                        persist: &self.persist,
                        counters: &mut self.counters,
                    };
                    self.conns
                        .evict(h, |e| e.is_embryonic(), |e| books.evict(e, now))
                } else {
                    None
                }
            }
            r => r,
        };
        let Some(slot) = reserved else {
            if self.defence.drop_entry && !stateless_only {
                // Nothing to reclaim: refuse, as IPVS (see the module doc).
                self.counters.conn_refused += 1;
                return Err(StateDrop::TableFull);
            }
            if !stateless_only {
                self.full_until = now + secs(self.timeouts.tcp_established_s);
            }
            self.counters.conn_table_full += 1;
            let rs = match persistence {
                Some(p) => {
                    let tk = TemplateKey::new(svc, key.client(), p.prefix_len);
                    self.template_for(svc, key, &tk, true, false, secs(p.timeout_s))?
                        .0
                }
                None => match self.stateless(svc, key) {
                    Some(rs) => rs,
                    None => {
                        self.counters.no_real_server += 1;
                        return Err(StateDrop::NoRealServer);
                    }
                },
            };
            return self.finish_target(rs);
        };

        let (rs, held) = match persistence {
            Some(p) => {
                let tk = TemplateKey::new(svc, key.client(), p.prefix_len);
                self.template_for(svc, key, &tk, syn_ok, true, secs(p.timeout_s))?
            }
            None => match self.schedule(svc, key) {
                Some(rs) => (rs, None),
                None => {
                    self.counters.no_real_server += 1;
                    return Err(StateDrop::NoRealServer);
                }
            },
        };
        let Some(srv) = self.snap.server(rs) else {
            self.counters.no_real_server += 1;
            return Err(StateDrop::NoRealServer);
        };
        let Some(t) = target(srv, rs) else {
            if let Some(h) = held {
                let to = Books {
                    snap: &self.snap,
                    persist: &self.persist,
                    counters: &mut self.counters,
                }
                .template_timeout(svc);
                self.persist.release(h.slot, now, to);
            }
            self.counters.no_mac += 1;
            return Err(StateDrop::NoRealServer);
        };
        let state = if is_tcp {
            tcp_transition(ConnState::None, flags)
        } else {
            ConnState::Udp
        };
        let e = ConnEntry {
            key: *key,
            state,
            flags: if held.is_some() { F_TEMPLATE } else { 0 },
            svc,
            rs,
            tpl_slot: held.map_or(0, |h| h.slot),
            expires: now + self.state_ms.ms(state),
        };
        let idx = self.conns.insert(slot, e);
        srv.conn_created(e.is_active());
        self.counters.conn_created += 1;
        let slot = self.snap.server_slot(rs);
        self.conns_by_rs[slot] += 1;
        // The creating packet: a TCP entry's change from NONE, count 1.
        if self.sync.is_some() && sync::needed(key.proto(), state, is_tcp, 1, self.sync_rule) {
            Self::queue_sync(&mut self.sync, &self.conns, &mut self.counters, now, idx);
        }
        Ok(t)
    }

    /// A datagram of a one-packet service (IPVS `IP_VS_CONN_F_ONE_PACKET`):
    /// scheduled on its own (through the template when persistent), counted
    /// as a connection of its server, and forgotten.
    fn one_packet(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        persistence: Option<Persistence>,
    ) -> Result<Target, StateDrop> {
        let rs = match persistence {
            Some(p) => {
                let tk = TemplateKey::new(svc, key.client(), p.prefix_len);
                self.template_for(svc, key, &tk, true, false, secs(p.timeout_s))?
                    .0
            }
            None => match self.schedule(svc, key) {
                Some(rs) => rs,
                None => {
                    self.counters.no_real_server += 1;
                    return Err(StateDrop::NoRealServer);
                }
            },
        };
        let t = self.finish_target(rs)?;
        self.counters.ops_scheduled += 1;
        let slot = self.snap.server_slot(rs);
        self.conns_by_rs[slot] += 1;
        Ok(t)
    }

    /// An entry found for a packet that cannot use it — expired (lazily),
    /// re-keyed to another service, or a new connection on a reused
    /// 4-tuple: undo its effects and remove it. Out of line: the entry is
    /// read again here, so the hot path never builds a copy of it.
    #[cold]
    #[inline(never)]
    fn retire_at(&mut self, idx: usize, now: u64, exp: Expiry) {
        let e = self.conns.entry(idx);
        let mut books = Books {
            snap: &self.snap,
            persist: &self.persist,
            counters: &mut self.counters,
        };
        books.retire(&e, now, exp);
        self.conns.remove(idx);
    }

    /// Prefetches the home bucket of the flow's template, if its service
    /// is persistent.
    #[inline(always)]
    fn prefetch_template(&self, svc: ServiceId, key: &FlowKey) {
        if let Some(p) = self.snap.service(svc).and_then(|s| s.persistence) {
            self.persist
                .prefetch(&TemplateKey::new(svc, key.client(), p.prefix_len));
        }
    }

    fn finish_target(&mut self, rs: RsId) -> Result<Target, StateDrop> {
        match self.snap.server(rs).and_then(|s| target(s, rs)) {
            Some(t) => Ok(t),
            None => {
                self.counters.no_mac += 1;
                Err(StateDrop::NoRealServer)
            }
        }
    }
}

impl FlowState for WorkerState {
    #[inline]
    fn assign(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop> {
        let h = self.conns.hash(key);
        self.assign_hashed(svc, key, h, 0, tcp)
    }

    #[inline(always)]
    fn prepare(&self, key: &FlowKey) -> u64 {
        let h = self.conns.hash(key);
        self.conns.prefetch(h);
        h
    }

    #[inline(always)]
    fn prefetch_entry(&self, svc: ServiceId, key: &FlowKey, hash: u64) -> u64 {
        let probe = self.conns.probe(key, hash);
        if !probe.is_found() {
            // Not in its home line, so most likely a new flow (an old one
            // further on is rare): a persistent service will look its
            // template up.
            self.prefetch_template(svc, key);
        } else if let Some(slot) = self.conns.expired_template(probe, self.clock.now_ms()) {
            // A client back after its entry expired (every packet of a
            // new-client flood): retiring the entry releases its template,
            // then the new connection looks the client's template up.
            self.persist.prefetch_slot(slot);
            self.prefetch_template(svc, key);
        }
        probe.to_bits()
    }

    #[inline(always)]
    fn assign_hashed(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        h: u64,
        hint: u64,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop> {
        let mut assigned = Err(StateDrop::NoRealServer); // always overwritten
        self.assign_then(svc, key, (h, hint), tcp, Keep(&mut assigned));
        assigned
    }

    #[inline(always)]
    fn assign_then(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        (h, hint): (u64, u64),
        tcp: Option<TcpFlags>,
        then: impl OnAssigned,
    ) {
        if let Some(idx) = self.conns.find_probed(key, h, Probe::from_bits(hint)) {
            let e = self.conns.entry(idx);
            let exp = self.defence.expiry;
            let now = self.clock.now_ms();
            if now < exp.deadline(&e) && e.svc == svc && !self.syn_reschedules(&e, tcp) {
                return then.assigned(self.existing(idx, tcp));
            }
            self.retire_at(idx, now, exp);
        }
        // a copy for the call out of line: the key of the burst decision
        // then stays in registers on the found path, written to memory
        // only here, when the flow is new
        let key = *key;
        then.assigned(self.new_flow(svc, &key, h, tcp))
    }

    #[inline]
    fn lookup_conn(&self, key: &FlowKey) -> Option<Target> {
        let idx = self.conns.find(key, self.conns.hash(key))?;
        let e = self.conns.entry(idx);
        if self.clock.now_ms() >= self.defence.expiry.deadline(&e) {
            return None;
        }
        let s = self.snap.server(e.rs)?;
        if self.flags.expire_nodest_conn && s.is_out() {
            return None;
        }
        target(s, e.rs)
    }

    #[inline]
    fn lookup_template(&self, svc: ServiceId, client: Addr) -> Option<Target> {
        let p = self.snap.service(svc)?.persistence?;
        let rs = self.persist.get(
            &TemplateKey::new(svc, client, p.prefix_len),
            self.clock.now_ms(),
        )?;
        if !self.template_valid(rs) {
            return None;
        }
        target(self.snap.server(rs)?, rs)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lb::spec::{
        Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec,
    };
    use crate::lb::types::Family;
    use crate::wire::ethernet::MacAddr;

    pub(super) const SYN: Option<TcpFlags> = Some(TcpFlags(TcpFlags::SYN));
    pub(super) const ACK: Option<TcpFlags> = Some(TcpFlags(TcpFlags::ACK));
    pub(super) const FIN: Option<TcpFlags> = Some(TcpFlags(TcpFlags::FIN | TcpFlags::ACK));
    pub(super) const RST: Option<TcpFlags> = Some(TcpFlags(TcpFlags::RST));

    pub(super) fn servers(n: usize) -> Vec<RealServerSpec> {
        (0..n)
            .map(|i| RealServerSpec {
                addr: format!("10.9.0.{}", i + 1).parse().unwrap(),
                weight: 1,
                u_threshold: 0,
                l_threshold: 0,
                mac: Some(MacAddr([2, 0, 0, 0, 0, i as u8 + 1])),
                forward: Default::default(),
                via: None,
            })
            .collect()
    }

    pub(super) fn svc(
        addr: ServiceAddr,
        sched: SchedulerKind,
        p: Option<(u32, u8)>,
        n: usize,
    ) -> ServiceSpec {
        ServiceSpec {
            ops: false,
            addr,
            scheduler: sched,
            sched_flags: SchedFlags::default(),
            persistence: p.map(|(timeout_s, prefix_len)| Persistence {
                timeout_s,
                prefix_len,
            }),
            servers: servers(n),
        }
    }

    pub(super) fn vip(port: u16) -> ServiceAddr {
        ServiceAddr::Addr {
            proto: 6,
            vip: "192.0.2.1".parse().unwrap(),
            port,
        }
    }

    pub(super) fn worker_on(
        snap: &Arc<Snapshot>,
        pt: &Arc<PersistTable>,
        flags: StateFlags,
        cap: usize,
    ) -> WorkerState {
        WorkerState::new(
            Arc::clone(snap),
            Arc::clone(pt),
            StateConfig {
                conn_capacity: cap,
                timeouts: Timeouts::default(),
                flags,
                seed: 9,
            },
        )
    }

    pub(super) fn setup(specs: &[ServiceSpec], flags: StateFlags) -> (WorkerState, Arc<Snapshot>) {
        let snap = Arc::new(Snapshot::new(specs));
        let pt = Arc::new(PersistTable::new(1024, 4, 1));
        (worker_on(&snap, &pt, flags, 4096), snap)
    }

    pub(super) fn tcp(client: [u8; 4], cport: u16, vport: u16) -> FlowKey {
        FlowKey::v4(ip_proto::TCP, client, cport, [192, 0, 2, 1], vport)
    }

    pub(super) fn udp(client: [u8; 4], cport: u16) -> FlowKey {
        FlowKey::v4(ip_proto::UDP, client, cport, [192, 0, 2, 1], 53)
    }

    pub(super) const S0: ServiceId = ServiceId(0);

    /// `n` flows `make(i)` whose home line in `w`'s connection table is
    /// `home`: `conn::WINDOW` of them fill one window, as keys chosen by
    /// an attacker who knew the hash would.
    pub(super) fn homed(
        w: &WorkerState,
        home: usize,
        n: usize,
        make: impl Fn(u32) -> FlowKey,
    ) -> Vec<FlowKey> {
        (0..)
            .map(make)
            .filter(|k| w.home_of(k) == home)
            .take(n)
            .collect()
    }

    pub(super) fn counts(snap: &Snapshot, rs: u32) -> (u32, u32) {
        let s = snap.server(RsId(rs)).unwrap();
        (s.active(), s.inactive())
    }

    #[test]
    fn a_swap_keeps_untouched_flows_templates_and_a_removed_servers_connections() {
        let specs = vec![
            svc(vip(80), SchedulerKind::Rr, Some((300, 32)), 2),
            svc(vip(443), SchedulerKind::Rr, None, 2),
        ];
        let (mut w, s0) = setup(&specs, StateFlags::default());
        let syn = Some(TcpFlags(TcpFlags::SYN));
        let ack = Some(TcpFlags(TcpFlags::ACK));
        let persistent = w.assign(S0, &tcp([10, 0, 0, 1], 1000, 80), syn).unwrap().rs;
        let plain_key = tcp([10, 0, 0, 2], 1000, 443);
        let plain = w.assign(ServiceId(1), &plain_key, syn).unwrap().rs;
        // Remove the 443 service's server the flow is on; edit nothing else.
        let mut next = specs.clone();
        next[1]
            .servers
            .retain(|r| Some(r.addr) != s0.server(plain).map(|s| s.addr));
        let (s1, _) = s0.next(&next, 0).unwrap();
        drop(w.switch(Arc::new(s1)));
        // The established flow on the removed server keeps flowing ...
        assert_eq!(w.assign(ServiceId(1), &plain_key, ack).unwrap().rs, plain);
        // ... but a new connection goes to the remaining server.
        let other = w
            .assign(ServiceId(1), &tcp([10, 0, 0, 3], 1, 443), syn)
            .unwrap()
            .rs;
        assert_ne!(other, plain);
        // The persistent client's template survives: a new connection
        // lands on the same server.
        let again = w.assign(S0, &tcp([10, 0, 0, 1], 2000, 80), syn).unwrap().rs;
        assert_eq!(again, persistent);
    }

    #[test]
    fn tcp_transitions_timeouts_and_counters() {
        let (mut w, snap) = setup(
            &[svc(vip(80), SchedulerKind::Rr, None, 1)],
            StateFlags::default(),
        );
        let k = tcp([10, 0, 0, 1], 1000, 80);
        let t = w.assign(S0, &k, SYN).unwrap();
        assert_eq!(t.rs, RsId(0));
        assert_eq!(counts(&snap, 0), (0, 1), "SYN_RECV is inactive");
        // SYN_RECV lives 60 s
        w.set_now(59_999);
        assert!(w.lookup_conn(&k).is_some());
        w.assign(S0, &k, ACK).unwrap();
        assert_eq!(counts(&snap, 0), (1, 0), "ESTABLISHED is active");
        w.set_now(59_999 + 899_999);
        assert!(w.lookup_conn(&k).is_some());
        w.set_now(59_999 + 900_000);
        assert!(w.lookup_conn(&k).is_none(), "ESTABLISHED expires at 900 s");
        assert_eq!(w.sweep(1 << 20), 1);
        assert_eq!(counts(&snap, 0), (0, 0));

        // FIN_WAIT 120 s, CLOSE 10 s
        let k2 = tcp([10, 0, 0, 1], 1001, 80);
        let t0 = w.now();
        w.assign(S0, &k2, SYN).unwrap();
        w.assign(S0, &k2, ACK).unwrap();
        w.assign(S0, &k2, FIN).unwrap();
        assert_eq!(counts(&snap, 0), (0, 1), "FIN_WAIT is inactive");
        w.set_now(t0 + 119_999);
        assert!(w.lookup_conn(&k2).is_some());
        w.set_now(t0 + 120_000);
        assert!(w.lookup_conn(&k2).is_none());
        let k3 = tcp([10, 0, 0, 1], 1002, 80);
        let t1 = w.now();
        w.assign(S0, &k3, SYN).unwrap();
        w.assign(S0, &k3, ACK).unwrap();
        w.assign(S0, &k3, RST).unwrap();
        w.set_now(t1 + 9_999);
        assert!(w.lookup_conn(&k3).is_some());
        w.set_now(t1 + 10_000);
        assert!(w.lookup_conn(&k3).is_none());
        w.sweep(1 << 20);
        assert_eq!(counts(&snap, 0), (0, 0));
        assert_eq!(w.counters().conn_created, 3);
        // All three went to the one server; later packets of a flow are
        // not new connections.
        assert_eq!(w.conns_by_rs().iter().sum::<u64>(), 3);
        assert_eq!(w.counters().conn_expired, 3);
    }

    #[test]
    fn settable_timeouts() {
        let (mut w, _) = setup(
            &[svc(vip(80), SchedulerKind::Rr, None, 1)],
            StateFlags::default(),
        );
        w.set_timeouts(Timeouts {
            tcp_syn_recv_s: 5,
            ..Timeouts::default()
        });
        let k = tcp([10, 0, 0, 1], 1000, 80);
        w.assign(S0, &k, SYN).unwrap();
        w.set_now(4_999);
        assert!(w.lookup_conn(&k).is_some());
        w.set_now(5_000);
        assert!(w.lookup_conn(&k).is_none());
    }

    #[test]
    fn udp_timeout_exact() {
        let (mut w, snap) = setup(
            &[svc(vip(53), SchedulerKind::Rr, None, 2)],
            StateFlags::default(),
        );
        let k = udp([10, 0, 0, 1], 5353);
        let t = w.assign(S0, &k, None).unwrap();
        assert_eq!(counts(&snap, t.rs.0), (0, 1), "UDP counts inactive");
        w.set_now(200_000);
        assert_eq!(w.assign(S0, &k, None).unwrap(), t, "refresh by traffic");
        w.set_now(499_999);
        assert_eq!(w.lookup_conn(&k), Some(t));
        w.set_now(500_000);
        assert_eq!(w.lookup_conn(&k), None);
        // lazily expired on the next packet, then scheduled anew (rr moves on)
        let t2 = w.assign(S0, &k, None).unwrap();
        assert_ne!(t2.rs, t.rs);
        assert_eq!(w.counters().conn_expired, 1);
        assert_eq!(counts(&snap, t.rs.0), (0, 0));
    }

    #[test]
    fn scan_live_skips_expired_entries_and_reports_deadlines() {
        let (mut w, _snap) = setup(
            &[svc(vip(53), SchedulerKind::Rr, None, 2)],
            StateFlags::default(),
        );
        let old = udp([10, 0, 0, 1], 1000);
        w.assign(S0, &old, None).unwrap();
        w.set_now(200_000);
        let new = udp([10, 0, 0, 2], 2000);
        w.assign(S0, &new, None).unwrap();
        let scan = |w: &WorkerState| {
            let mut got = Vec::new();
            let end = w.scan_live(0, usize::MAX, |e, deadline| {
                got.push((e.key, e.state, deadline));
                std::ops::ControlFlow::Continue(())
            });
            assert_eq!(end, None);
            got.sort_by_key(|g| g.2);
            got
        };
        assert_eq!(
            scan(&w),
            [
                (old, ConnState::Udp, 300_000),
                (new, ConnState::Udp, 500_000)
            ]
        );
        // past its deadline, not swept yet: still in the table, not listed
        w.set_now(300_000);
        assert_eq!(w.conn_count(), 2);
        assert_eq!(scan(&w), [(new, ConnState::Udp, 500_000)]);
    }

    #[test]
    fn non_syn_dropped_unless_sloppy() {
        let specs = [svc(vip(80), SchedulerKind::Rr, None, 1)];
        let (mut w, _) = setup(&specs, StateFlags::default());
        let k = tcp([10, 0, 0, 1], 1000, 80);
        assert_eq!(w.assign(S0, &k, ACK), Err(StateDrop::TcpNotSyn));
        assert_eq!(w.assign(S0, &k, RST), Err(StateDrop::TcpNotSyn));
        assert_eq!(w.counters().tcp_not_syn, 2);
        assert_eq!(w.conn_count(), 0);
        let (mut s, _) = setup(
            &specs,
            StateFlags {
                sloppy_tcp: true,
                ..Default::default()
            },
        );
        assert!(s.assign(S0, &k, ACK).is_ok());
        assert_eq!(s.conn_count(), 1);
        assert_eq!(s.assign(S0, &k, RST).map(|t| t.rs), Ok(RsId(0)));
    }

    #[test]
    fn persistence_32_and_24() {
        for (prefix, same) in [(32u8, false), (24, true)] {
            let (mut w, _) = setup(
                &[svc(vip(80), SchedulerKind::Rr, Some((300, prefix)), 3)],
                StateFlags::default(),
            );
            let a1 = w.assign(S0, &tcp([10, 0, 0, 1], 1000, 80), SYN).unwrap();
            let a2 = w.assign(S0, &tcp([10, 0, 0, 1], 2000, 80), SYN).unwrap();
            assert_eq!(a1, a2, "same client, same server (/{prefix})");
            let b = w.assign(S0, &tcp([10, 0, 0, 77], 1000, 80), SYN).unwrap();
            assert_eq!(a1 == b, same, "/{prefix}");
            let c = w.assign(S0, &tcp([10, 0, 1, 1], 1000, 80), SYN).unwrap();
            assert_ne!(a1, c);
            // a non-SYN from a client with a template is accepted (DESIGN §1)
            assert_eq!(w.assign(S0, &tcp([10, 0, 0, 1], 3000, 80), ACK), Ok(a1));
        }
    }

    #[test]
    fn mh_template_makes_two_directors_create_the_same_templates() {
        // Two directors: separate snapshots, persistence tables and
        // workers from one configuration (wlc, /24 persistence).
        let mut spec = svc(vip(80), SchedulerKind::Wlc, Some((300, 24)), 5);
        spec.sched_flags.mh_template = true;
        let (mut d1, _) = setup(std::slice::from_ref(&spec), StateFlags::default());
        let (mut d2, _) = setup(std::slice::from_ref(&spec), StateFlags::default());
        // Different clients of each /24, in opposite orders, so nothing but
        // the template key decides.
        let on_d1: Vec<_> = (0..200u8)
            .map(|n| {
                d1.assign(S0, &tcp([10, 1, n, 1], 1000, 80), SYN)
                    .unwrap()
                    .rs
            })
            .collect();
        for n in (0..200u8).rev() {
            let t = d2.assign(S0, &tcp([10, 1, n, 77], 2000, 80), SYN).unwrap();
            assert_eq!(t.rs, on_d1[n as usize], "10.1.{n}.0/24");
        }
        let used: std::collections::BTreeSet<_> = on_d1.iter().collect();
        assert_eq!(used.len(), 5, "every server gets templates");
        // A server taken out: both rehash its clients the same way, and
        // nobody else's template moves.
        let (mut d3, s3) = setup(std::slice::from_ref(&spec), StateFlags::default());
        s3.set_weight(on_d1[0], 0);
        for n in 0..200u8 {
            let a = d3
                .assign(S0, &tcp([10, 1, n, 9], 3000, 80), SYN)
                .unwrap()
                .rs;
            assert_ne!(a, on_d1[0]);
            if on_d1[n as usize] != on_d1[0] {
                assert_eq!(a, on_d1[n as usize], "10.1.{n}.0/24 kept its server");
            }
        }
    }

    #[test]
    fn persistence_ipv6_64() {
        let spec = svc(
            ServiceAddr::Addr {
                proto: 6,
                vip: "2001:db8::1".parse().unwrap(),
                port: 443,
            },
            SchedulerKind::Rr,
            Some((300, 64)),
            3,
        );
        let (mut w, _) = setup(&[spec], StateFlags::default());
        let k = |last: u8, sub: u8, port| {
            FlowKey::new(
                Family::V6,
                6,
                Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, sub, 0, 0, 0, 0, 0, 0, 0, last]),
                port,
                Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                443,
            )
        };
        let a = w.assign(S0, &k(1, 1, 1000), SYN).unwrap();
        assert_eq!(w.assign(S0, &k(0xff, 1, 1001), SYN).unwrap(), a);
        assert_ne!(w.assign(S0, &k(1, 2, 1000), SYN).unwrap(), a);
        let c = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9]);
        assert_eq!(w.lookup_template(S0, c), Some(a));
    }

    #[test]
    fn fwmark_and_port0_group_ports() {
        // The dataplane maps 80 and 443 (mark rule) to the fwmark service,
        // and any port of the VIP to the port-0 service: one ServiceId each.
        for addr in [ServiceAddr::Fwmark(7), vip(0)] {
            let (mut w, _) = setup(
                &[svc(addr, SchedulerKind::Rr, Some((300, 32)), 4)],
                StateFlags::default(),
            );
            let web = w.assign(S0, &tcp([10, 0, 0, 1], 1000, 80), SYN).unwrap();
            let tls = w.assign(S0, &tcp([10, 0, 0, 1], 1001, 443), SYN).unwrap();
            let other = w.assign(S0, &tcp([10, 0, 0, 1], 1002, 8443), SYN).unwrap();
            assert_eq!(web, tls);
            assert_eq!(web, other);
            assert_ne!(
                w.assign(S0, &tcp([10, 0, 0, 2], 1000, 80), SYN).unwrap(),
                web
            );
        }
    }

    #[test]
    fn template_expires_timeout_after_last_connection() {
        let (mut w, _) = setup(
            &[svc(vip(53), SchedulerKind::Rr, Some((60, 32)), 3)],
            StateFlags::default(),
        );
        let client = Addr::v4([10, 0, 0, 1]);
        let a = w.assign(S0, &udp([10, 0, 0, 1], 1), None).unwrap();
        // the UDP connection lives 300 s; the template 60 s after that
        w.set_now(359_999);
        assert_eq!(w.lookup_template(S0, client), Some(a));
        w.sweep(1 << 20);
        assert_eq!(w.lookup_template(S0, client), Some(a));
        w.set_now(360_000);
        assert_eq!(w.lookup_template(S0, client), None);
        // sweeping both tables frees it
        w.sweep(1 << 20);
        assert_eq!(w.counters().templates_expired, 1);
    }

    #[test]
    fn template_kept_alive_by_long_connection() {
        let (mut w, _) = setup(
            &[svc(vip(80), SchedulerKind::Rr, Some((60, 32)), 3)],
            StateFlags::default(),
        );
        let client = Addr::v4([10, 0, 0, 1]);
        let k = tcp([10, 0, 0, 1], 1000, 80);
        let a = w.assign(S0, &k, SYN).unwrap();
        w.assign(S0, &k, ACK).unwrap();
        for step in 1..=30u64 {
            w.set_now(step * 100_000);
            w.sweep(1 << 20);
            assert_eq!(w.assign(S0, &k, ACK).unwrap(), a);
            assert_eq!(w.lookup_template(S0, client), Some(a), "t={step}00 s");
        }
        // another client moves rr on; our client keeps its server
        w.assign(S0, &tcp([10, 0, 0, 2], 1, 80), SYN).unwrap();
        assert_eq!(w.assign(S0, &tcp([10, 0, 0, 1], 2000, 80), SYN).unwrap(), a);
        // silence: the conn ends at 3000 + 900 s, the template 60 s later
        let end = 3_000_000 + 900_000;
        w.set_now(end + 59_999);
        w.sweep(1 << 20);
        assert_eq!(w.lookup_template(S0, client), Some(a));
        w.set_now(end + 60_000);
        assert_eq!(w.lookup_template(S0, client), None);
    }

    #[test]
    fn quiescent_server() {
        for expire_q in [false, true] {
            let flags = StateFlags {
                expire_quiescent_template: expire_q,
                ..Default::default()
            };
            let (mut w, snap) = setup(
                &[svc(vip(80), SchedulerKind::Rr, Some((300, 32)), 2)],
                flags,
            );
            let k = tcp([10, 0, 0, 1], 1000, 80);
            let a = w.assign(S0, &k, SYN).unwrap();
            snap.set_weight(a.rs, 0);
            // existing connection continues
            assert_eq!(w.assign(S0, &k, ACK).unwrap(), a);
            // same client, new connection: template continues unless expired
            let again = w.assign(S0, &tcp([10, 0, 0, 1], 1001, 80), SYN).unwrap();
            assert_eq!(
                again == a,
                !expire_q,
                "expire_quiescent_template={expire_q}"
            );
            // new clients never go to the quiescent server
            for i in 2..20 {
                assert_ne!(
                    w.assign(S0, &tcp([10, 0, 0, i], 1, 80), SYN).unwrap().rs,
                    a.rs
                );
            }
        }
    }

    #[test]
    fn removed_server() {
        for nodest in [false, true] {
            let flags = StateFlags {
                expire_nodest_conn: nodest,
                ..Default::default()
            };
            let (mut w, snap) = setup(&[svc(vip(80), SchedulerKind::Rr, None, 2)], flags);
            let k = tcp([10, 0, 0, 1], 1000, 80);
            let a = w.assign(S0, &k, SYN).unwrap();
            w.assign(S0, &k, ACK).unwrap();
            snap.remove(a.rs);
            if nodest {
                assert_eq!(w.assign(S0, &k, ACK), Err(StateDrop::DestRemoved));
                assert_eq!(counts(&snap, a.rs.0), (0, 0));
                assert_eq!(w.counters().conn_dest_removed, 1);
            } else {
                assert_eq!(w.assign(S0, &k, ACK), Ok(a));
            }
            for i in 2..10 {
                assert_ne!(
                    w.assign(S0, &tcp([10, 0, 0, i], 1, 80), SYN).unwrap().rs,
                    a.rs
                );
            }
        }
    }

    #[test]
    fn a_syn_on_a_reused_tuple_of_a_server_that_is_out_is_rescheduled() {
        // Removed or down by health checks; expire_nodest_conn off, so the
        // old connection's own packets would still follow it.
        for health in [false, true] {
            let (mut w, snap) = setup(
                &[svc(vip(80), SchedulerKind::Rr, None, 2)],
                StateFlags::default(),
            );
            let k = tcp([10, 0, 0, 1], 1000, 80);
            let a = w.assign(S0, &k, SYN).unwrap();
            w.assign(S0, &k, ACK).unwrap();
            w.assign(S0, &k, FIN).unwrap();
            if health {
                assert!(snap.set_health_down(a.rs, true));
            } else {
                snap.remove(a.rs);
            }
            assert_eq!(
                w.assign(S0, &k, ACK),
                Ok(a),
                "the old connection follows its entry"
            );
            let b = w.assign(S0, &k, SYN).unwrap();
            assert_ne!(
                b.rs, a.rs,
                "a new connection never lands on a server that is out"
            );
            assert_eq!(
                w.assign(S0, &k, ACK),
                Ok(b),
                "and then follows its new entry"
            );
        }
    }

    #[test]
    fn a_syn_on_a_closed_entry_is_scheduled_anew() {
        let (mut w, _snap) = setup(
            &[svc(vip(80), SchedulerKind::Rr, None, 2)],
            StateFlags::default(),
        );
        let k = tcp([10, 0, 0, 1], 1000, 80);
        let a = w.assign(S0, &k, SYN).unwrap();
        w.assign(S0, &k, ACK).unwrap();
        w.assign(S0, &k, RST).unwrap();
        // CLOSE: the next SYN is a new connection; rr picks the other server.
        let b = w.assign(S0, &k, SYN).unwrap();
        assert_ne!(b.rs, a.rs);
        // A SYN retransmission of a live handshake keeps its server.
        assert_eq!(w.assign(S0, &k, SYN), Ok(b));
        // So does a SYN on an entry in FIN_WAIT (conn_reuse_mode 1).
        w.assign(S0, &k, ACK).unwrap();
        w.assign(S0, &k, FIN).unwrap();
        assert_eq!(w.assign(S0, &k, SYN), Ok(b));
    }

    #[test]
    fn removed_server_swept_with_nodest() {
        let flags = StateFlags {
            expire_nodest_conn: true,
            ..Default::default()
        };
        let (mut w, snap) = setup(&[svc(vip(80), SchedulerKind::Rr, None, 1)], flags);
        w.assign(S0, &tcp([10, 0, 0, 1], 1, 80), SYN).unwrap();
        snap.remove(RsId(0));
        assert_eq!(w.sweep(1 << 20), 1);
        assert_eq!(counts(&snap, 0), (0, 0));
    }

    #[test]
    fn servers_without_mac_never_chosen() {
        let mut spec = svc(vip(80), SchedulerKind::Rr, None, 3);
        spec.servers[0].mac = None;
        spec.servers[2].mac = None;
        let (mut w, snap) = setup(&[spec], StateFlags::default());
        assert_eq!(snap.servers_without_mac(), 2);
        for i in 0..20 {
            let t = w.assign(S0, &tcp([10, 0, 0, i], 1, 80), SYN).unwrap();
            assert_eq!(t.rs, RsId(1));
        }
        snap.set_mac(RsId(1), None);
        assert_eq!(
            w.assign(S0, &tcp([10, 1, 0, 1], 1, 80), SYN),
            Err(StateDrop::NoRealServer)
        );
        snap.set_mac(RsId(2), Some(MacAddr([2, 2, 2, 2, 2, 2])));
        assert_eq!(
            w.assign(S0, &tcp([10, 1, 0, 2], 1, 80), SYN).map(|t| t.mac),
            Ok(MacAddr([2, 2, 2, 2, 2, 2]))
        );
    }

    #[test]
    fn conn_table_full_falls_back_statelessly() {
        use crate::lb::conn::WINDOW;
        let snap = Arc::new(Snapshot::new(&[svc(vip(80), SchedulerKind::Rr, None, 3)]));
        let pt = Arc::new(PersistTable::new(64, 1, 1));
        let mut w = worker_on(&snap, &pt, StateFlags::default(), 8);
        let keys = homed(&w, 3, WINDOW + 2, |i| {
            tcp([10, 0, (i >> 8) as u8, i as u8], 1, 80)
        });
        for k in &keys[..WINDOW] {
            w.assign(S0, k, SYN).unwrap();
        }
        assert_eq!(w.conn_count(), WINDOW);
        let k = keys[WINDOW];
        let first = w.assign(S0, &k, SYN).unwrap();
        assert_eq!(w.counters().conn_table_full, 1);
        // later packets of that flow (no entry) follow the same stateless pick
        for _ in 0..5 {
            assert_eq!(w.assign(S0, &k, ACK), Ok(first));
        }
        // once the entries expire the window takes new flows again
        w.set_now(61_000);
        w.assign(S0, &keys[WINDOW + 1], SYN).unwrap();
        assert_eq!(w.counters().conn_expired, 1);
    }

    #[test]
    fn persistence_table_full_tracks_without_template() {
        let snap = Arc::new(Snapshot::new(&[svc(
            vip(80),
            SchedulerKind::Rr,
            Some((300, 32)),
            3,
        )]));
        let pt = Arc::new(PersistTable::new(1, 1, 1));
        let cap = pt.capacity() as u8;
        let mut w = worker_on(&snap, &pt, StateFlags::default(), 1024);
        for i in 0..cap {
            w.assign(S0, &tcp([10, 0, 0, i], 1, 80), SYN).unwrap();
        }
        assert_eq!(w.counters().templates_created, cap as u64);
        assert!(w.assign(S0, &tcp([10, 0, 1, 1], 1, 80), SYN).is_ok());
        assert_eq!(w.counters().template_full, 1);
        assert_eq!(pt.live(w.now()), cap as usize, "no live template evicted");
    }

    #[test]
    fn two_workers_share_templates_and_counters() {
        let snap = Arc::new(Snapshot::new(&[svc(
            vip(80),
            SchedulerKind::Wlc,
            Some((300, 32)),
            2,
        )]));
        let pt = Arc::new(PersistTable::new(1024, 2, 1));
        let mut w1 = worker_on(&snap, &pt, StateFlags::default(), 1024);
        let mut w2 = worker_on(&snap, &pt, StateFlags::default(), 1024);
        let a = w1.assign(S0, &tcp([10, 0, 0, 1], 1, 80), SYN).unwrap();
        // the other worker sees the template (another 5-tuple on its queue)
        assert_eq!(w2.assign(S0, &tcp([10, 0, 0, 1], 2, 80), SYN).unwrap(), a);
        // wlc on the other worker sees the shared counters: the next client
        // goes to the other server
        let b = w2.assign(S0, &tcp([10, 0, 0, 2], 1, 80), SYN).unwrap();
        assert_ne!(a.rs, b.rs);
        assert_eq!(counts(&snap, a.rs.0), (0, 2));
    }

    fn defended(drop_entry: DefenceMode, secure_tcp: DefenceMode, pct: u8) -> StateFlags {
        StateFlags {
            drop_entry,
            secure_tcp,
            conn_high_water_pct: pct,
            ..Default::default()
        }
    }

    /// A spoofed source: a distinct address and port per `i`.
    fn spoofed(i: u32) -> FlowKey {
        let b = i.to_be_bytes();
        tcp(
            [172, 16 | (b[1] & 15), b[2], b[3]],
            1024 + (i % 50_000) as u16,
            80,
        )
    }

    /// Active and inactive connections over all servers of the snapshot.
    fn totals(snap: &Snapshot, n: u32) -> (u32, u32) {
        (0..n).fold((0, 0), |(a, i), rs| {
            let (x, y) = counts(snap, rs);
            (a + x, i + y)
        })
    }

    #[test]
    fn syn_flood_keeps_established_servers_and_admits_new_clients() {
        let snap = Arc::new(Snapshot::new(&[svc(vip(80), SchedulerKind::Rr, None, 4)]));
        let pt = Arc::new(PersistTable::new(64, 1, 1));
        let flags = defended(DefenceMode::Auto, DefenceMode::Off, 90);
        let mut w = worker_on(&snap, &pt, flags, 256);
        let mut est: Vec<(FlowKey, Target)> = (0..10)
            .map(|i| {
                let k = tcp([10, 0, 0, i], 1000, 80);
                let t = w.assign(S0, &k, SYN).unwrap();
                assert_eq!(w.assign(S0, &k, ACK), Ok(t));
                (k, t)
            })
            .collect();
        // 10,000 spoofed SYNs, one per ms, into a table of 256
        for i in 0..10_000u32 {
            w.set_now(u64::from(i));
            assert!(w.assign(S0, &spoofed(i), SYN).is_ok());
            if i % 100 == 0 {
                for (k, t) in &est {
                    assert_eq!(w.assign(S0, k, ACK), Ok(*t), "established at {i}");
                }
            }
            if i % 1000 == 500 {
                // a real client: its SYN gets an entry, its ACK (after
                // more spoofed SYNs) the same server
                let k = tcp([10, 1, (i >> 8) as u8, i as u8], 2000, 80);
                let t = w.assign(S0, &k, SYN).unwrap();
                assert_eq!(w.lookup_conn(&k), Some(t), "new client at {i}");
                for j in 0..4 {
                    w.assign(S0, &spoofed(1_000_000 + i * 4 + j), SYN).unwrap();
                }
                assert_eq!(w.assign(S0, &k, ACK), Ok(t));
                est.push((k, t));
            }
        }
        for (k, t) in &est {
            assert_eq!(w.lookup_conn(k), Some(*t));
        }
        assert!(w.under_pressure());
        let c = *w.counters();
        assert_eq!((c.conn_table_full, c.conn_refused), (0, 0), "{c:?}");
        assert_eq!(c.pressure_episodes, 1);
        assert!(c.conn_reclaimed > 9_000, "{c:?}");
        assert_eq!(w.conn_count() as u64, c.conn_created - c.conn_expired);
        // the servers' counters saw every eviction
        let (active, inactive) = totals(&snap, 4);
        assert_eq!(active as usize, est.len());
        assert_eq!((active + inactive) as usize, w.conn_count());
    }

    #[test]
    fn drop_entry_refuses_a_new_flow_when_only_established_entries_are_left() {
        use crate::lb::conn::WINDOW;
        let snap = Arc::new(Snapshot::new(&[svc(vip(80), SchedulerKind::Rr, None, 3)]));
        let pt = Arc::new(PersistTable::new(64, 1, 1));
        let flags = defended(DefenceMode::Always, DefenceMode::Off, 90);
        let mut w = worker_on(&snap, &pt, flags, 8);
        let keys = homed(&w, 3, WINDOW + 1, |i| {
            tcp([10, 0, (i >> 8) as u8, i as u8], 1, 80)
        });
        let est: Vec<(FlowKey, Target)> = keys[..WINDOW]
            .iter()
            .map(|k| {
                let t = w.assign(S0, k, SYN).unwrap();
                assert_eq!(w.assign(S0, k, ACK), Ok(t));
                (*k, t)
            })
            .collect();
        let k = keys[WINDOW];
        assert_eq!(w.assign(S0, &k, SYN), Err(StateDrop::TableFull));
        // refusing opens no stateless mode: its ACK is not a SYN
        assert_eq!(w.assign(S0, &k, ACK), Err(StateDrop::TcpNotSyn));
        let c = *w.counters();
        assert_eq!(
            (c.conn_refused, c.conn_table_full, c.conn_reclaimed),
            (1, 0, 0)
        );
        for (k, t) in &est {
            assert_eq!(w.assign(S0, k, ACK), Ok(*t));
        }
    }

    #[test]
    fn drop_entry_reclaims_single_packet_udp_flows_only() {
        use crate::lb::conn::WINDOW;
        let mut spec = svc(vip(53), SchedulerKind::Rr, None, 3);
        spec.addr = ServiceAddr::Addr {
            proto: ip_proto::UDP,
            vip: "192.0.2.1".parse().unwrap(),
            port: 53,
        };
        let snap = Arc::new(Snapshot::new(&[spec]));
        let pt = Arc::new(PersistTable::new(64, 1, 1));
        let flags = defended(DefenceMode::Auto, DefenceMode::Off, 90);
        let mut w = worker_on(&snap, &pt, flags, 8);
        let keys = homed(&w, 3, WINDOW + 20, |i| {
            udp([10, 0, (i >> 8) as u8, i as u8], 5000)
        });
        let (confirmed, rest) = keys.split_at(WINDOW / 2);
        let (single, new) = rest.split_at(WINDOW / 2);
        let confirmed: Vec<(FlowKey, Target)> = confirmed
            .iter()
            .map(|k| {
                let t = w.assign(S0, k, None).unwrap();
                assert_eq!(w.assign(S0, k, None), Ok(t));
                (*k, t)
            })
            .collect();
        for k in single {
            w.assign(S0, k, None).unwrap();
        }
        for (i, k) in new.iter().enumerate() {
            w.set_now(i as u64 + 1);
            let t = w.assign(S0, k, None).unwrap();
            assert_eq!(w.lookup_conn(k), Some(t), "a new flow gets an entry");
        }
        assert_eq!(w.counters().conn_reclaimed, 20);
        assert_eq!(w.counters().conn_table_full, 0);
        for (k, t) in &confirmed {
            assert_eq!(
                w.lookup_conn(k),
                Some(*t),
                "a confirmed flow keeps its entry"
            );
        }
    }

    #[test]
    fn secure_tcp_shortens_syn_recv_under_pressure() {
        let snap = Arc::new(Snapshot::new(&[svc(vip(80), SchedulerKind::Rr, None, 2)]));
        let pt = Arc::new(PersistTable::new(64, 1, 1));
        let flags = defended(DefenceMode::Off, DefenceMode::Auto, 50);
        let mut w = worker_on(&snap, &pt, flags, 64); // pressure from 32 entries
        let k = tcp([10, 0, 0, 1], 1000, 80);
        let t = w.assign(S0, &k, SYN).unwrap();
        w.assign(S0, &k, ACK).unwrap();
        for i in 0..40 {
            w.assign(S0, &spoofed(i), SYN).unwrap();
        }
        assert!(w.under_pressure());
        w.set_now(9_999);
        assert!(w.lookup_conn(&spoofed(0)).is_some());
        w.set_now(10_000);
        assert_eq!(w.lookup_conn(&spoofed(0)), None, "secure SYN_RECV timeout");
        assert_eq!(w.lookup_conn(&k), Some(t), "ESTABLISHED is not shortened");
        // a retransmitted SYN finds its entry expired (lazily) and starts anew
        assert!(w.assign(S0, &spoofed(1), SYN).is_ok());
        assert_eq!(w.counters().syn_recv_expired_early, 1);
        assert_eq!(w.sweep(1 << 20), 39);
        let c = *w.counters();
        assert_eq!((c.syn_recv_expired_early, c.conn_expired), (40, 40));
        assert!(!w.under_pressure(), "2 entries: below the low-water mark");
        // without pressure SYN_RECV has its normal 60 s again
        let k2 = tcp([10, 0, 0, 2], 1000, 80);
        w.assign(S0, &k2, SYN).unwrap();
        w.set_now(10_000 + 59_999);
        assert!(w.lookup_conn(&k2).is_some());
        w.set_now(10_000 + 60_000);
        assert!(w.lookup_conn(&k2).is_none());
        assert_eq!(w.counters().syn_recv_expired_early, 40);
    }

    #[test]
    fn secure_tcp_always_acts_on_an_empty_table_and_off_never() {
        for (mode, lives_ms) in [(DefenceMode::Always, 10_000), (DefenceMode::Off, 60_000)] {
            let (mut w, _) = setup(
                &[svc(vip(80), SchedulerKind::Rr, None, 1)],
                defended(DefenceMode::Off, mode, 90),
            );
            let k = tcp([10, 0, 0, 1], 1000, 80);
            w.assign(S0, &k, SYN).unwrap();
            w.set_now(lives_ms - 1);
            assert!(w.lookup_conn(&k).is_some(), "{mode}");
            w.set_now(lives_ms);
            assert!(w.lookup_conn(&k).is_none(), "{mode}");
            assert!(!w.under_pressure());
        }
    }

    #[test]
    fn sweep_works_harder_under_pressure() {
        let mut spec = svc(vip(53), SchedulerKind::Rr, None, 1);
        spec.addr = ServiceAddr::Addr {
            proto: ip_proto::UDP,
            vip: "192.0.2.1".parse().unwrap(),
            port: 53,
        };
        let snap = Arc::new(Snapshot::new(&[spec]));
        let pt = Arc::new(PersistTable::new(64, 1, 1));
        let mut defended_w = worker_on(
            &snap,
            &pt,
            defended(DefenceMode::Auto, DefenceMode::Auto, 30),
            64,
        );
        let mut plain_w = worker_on(&snap, &pt, StateFlags::default(), 64);
        for w in [&mut defended_w, &mut plain_w] {
            for i in 0..24 {
                w.assign(S0, &udp([10, 0, 0, i], 5000), None).unwrap();
            }
            assert_eq!(w.conn_count(), 24);
            w.set_now(300_000);
        }
        assert!(defended_w.under_pressure());
        // one call under pressure covers the buckets of PRESSURE_SWEEP calls
        let plain: usize = (0..PRESSURE_SWEEP).map(|_| plain_w.sweep(1)).sum();
        assert_eq!(defended_w.sweep(1), plain);
    }
}
