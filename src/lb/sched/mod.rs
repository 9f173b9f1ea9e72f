//! The IPVS schedulers, one algorithm per file behind the small
//! [`Scheduler`] trait and dispatched by the [`SchedState`] enum (no `dyn`
//! on the per-packet path). A scheduler picks a *local* index into its
//! service's real servers; the caller turns it into an `RsId`.
//!
//! Every scheduler skips servers that are not available (weight 0, no MAC,
//! removed, or overloaded per IPVS's `u_threshold`/`l_threshold` rule); wrr
//! and ovf test the weight themselves. Mutable scheduler state (the rr/wrr
//! cursor) lives in the worker; the connection counters the lc family reads
//! are the shared atomics of [`crate::lb::realserver::RealServer`].
#![forbid(unsafe_code)]

use crate::lb::hash::hash_addr;
use crate::lb::realserver::SharedServer;
use crate::lb::spec::{SchedFlags, SchedulerKind};
use crate::lb::types::{Addr, FlowKey};

pub mod dh;
pub mod fo;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod wlc;
pub mod wrr;

/// Size of the sh/dh hash table (IPVS `IP_VS_SH_TAB_SIZE`, 2^8).
pub const HASH_TAB_SIZE: usize = 256;
/// Marks an empty sh/dh table slot.
pub const NONE: u32 = u32::MAX;
/// Fixed seed of the scheduler hashes: every worker must agree.
pub(crate) const SCHED_SEED: u64 = 0x5eed_0f5c_4ed0_1e55;

/// What a scheduler sees of its service.
#[derive(Clone, Copy)]
pub struct SchedCtx<'a> {
    /// The service's real servers (local index = position).
    pub servers: &'a [SharedServer],
    /// The service's static hash tables.
    pub tables: &'a HashTables,
    /// Scheduler flags (fallback, port).
    pub flags: SchedFlags,
    /// The snapshot's weight generation (wrr recomputes on change).
    pub weights_gen: u64,
}

/// One scheduling algorithm.
pub trait Scheduler {
    /// Choose a server for a new connection (or template) of `key`: a local
    /// index into `ctx.servers`, or `None` if no server is available.
    fn pick(&mut self, ctx: &SchedCtx<'_>, key: &FlowKey) -> Option<usize>;
}

/// Per-worker scheduler state of one service, dispatched statically.
#[derive(Clone, Debug)]
pub enum SchedState {
    /// Round robin.
    Rr(rr::Rr),
    /// Weighted round robin.
    Wrr(wrr::Wrr),
    /// Least connection.
    Lc(lc::Lc),
    /// Weighted least connection.
    Wlc(wlc::Wlc),
    /// Shortest expected delay.
    Sed(sed::Sed),
    /// Never queue.
    Nq(nq::Nq),
    /// Source hashing.
    Sh(sh::Sh),
    /// Destination hashing.
    Dh(dh::Dh),
    /// Maglev hashing.
    Mh(mh::Mh),
    /// Weighted failover.
    Fo(fo::Fo),
    /// Weighted overflow.
    Ovf(ovf::Ovf),
}

impl SchedState {
    /// Fresh state for a scheduler kind.
    pub fn new(kind: SchedulerKind) -> Self {
        match kind {
            SchedulerKind::Rr => SchedState::Rr(rr::Rr::default()),
            SchedulerKind::Wrr => SchedState::Wrr(wrr::Wrr::default()),
            SchedulerKind::Lc => SchedState::Lc(lc::Lc),
            SchedulerKind::Wlc => SchedState::Wlc(wlc::Wlc),
            SchedulerKind::Sed => SchedState::Sed(sed::Sed),
            SchedulerKind::Nq => SchedState::Nq(nq::Nq),
            SchedulerKind::Sh => SchedState::Sh(sh::Sh),
            SchedulerKind::Dh => SchedState::Dh(dh::Dh),
            SchedulerKind::Mh => SchedState::Mh(mh::Mh),
            SchedulerKind::Fo => SchedState::Fo(fo::Fo),
            SchedulerKind::Ovf => SchedState::Ovf(ovf::Ovf),
        }
    }

    /// Dispatch to the algorithm.
    #[inline]
    pub fn pick(&mut self, ctx: &SchedCtx<'_>, key: &FlowKey) -> Option<usize> {
        match self {
            SchedState::Rr(s) => s.pick(ctx, key),
            SchedState::Wrr(s) => s.pick(ctx, key),
            SchedState::Lc(s) => s.pick(ctx, key),
            SchedState::Wlc(s) => s.pick(ctx, key),
            SchedState::Sed(s) => s.pick(ctx, key),
            SchedState::Nq(s) => s.pick(ctx, key),
            SchedState::Sh(s) => s.pick(ctx, key),
            SchedState::Dh(s) => s.pick(ctx, key),
            SchedState::Mh(s) => s.pick(ctx, key),
            SchedState::Fo(s) => s.pick(ctx, key),
            SchedState::Ovf(s) => s.pick(ctx, key),
        }
    }
}

/// Static, weight-proportional hash tables of one service, built with the
/// snapshot: the sh/dh table (also the stateless fallback when the
/// connection table is full) and the Maglev table for mh.
#[derive(Clone, Debug, Default)]
pub struct HashTables {
    /// sh/dh buckets: local server index or [`NONE`].
    pub hashed: Vec<u32>,
    /// Maglev lookup table (mh, or any scheduler with `mh-template`;
    /// empty otherwise).
    pub maglev: mh::MaglevTable,
}

impl HashTables {
    /// Build for `servers` = (address, weight) in configuration order; the
    /// Maglev table of an mh or `mh-template` service gets `mh_size` slots.
    pub fn build(
        kind: SchedulerKind,
        flags: SchedFlags,
        servers: &[(Addr, u32)],
        mh_size: mh::TableSize,
    ) -> Self {
        let weights: Vec<u32> = servers.iter().map(|s| s.1).collect();
        HashTables {
            hashed: sh::build_table(&weights),
            maglev: if kind == SchedulerKind::Mh || flags.mh_template {
                mh::MaglevTable::build(mh_size, servers)
            } else {
                mh::MaglevTable::default()
            },
        }
    }
}

/// Look up `hash` in a table; if that server is unavailable and `fallback`
/// is set, walk on to the next available one. `None` if nothing fits.
#[inline]
pub(crate) fn table_pick(
    table: &[u32],
    servers: &[SharedServer],
    hash: u64,
    fallback: bool,
) -> Option<usize> {
    if table.is_empty() {
        return None;
    }
    let n = table.len();
    let start = (hash % n as u64) as usize;
    let tries = if fallback { n } else { 1 };
    for off in 0..tries {
        let idx = table[(start + off) % n];
        if idx != NONE && servers[idx as usize].available() {
            return Some(idx as usize);
        }
    }
    None
}

/// The documented stateless choice used when the connection table is full:
/// the flow's 5-tuple hashed over the weighted sh table with fallback, so
/// every packet of a flow reaches the same server while the set is stable.
#[inline]
pub fn stateless_pick(ctx: &SchedCtx<'_>, key: &FlowKey) -> Option<usize> {
    let h = hash_addr(
        &key.client(),
        key.cport() as u64 | (key.vport() as u64) << 16 | (key.proto() as u64) << 32,
        SCHED_SEED,
    );
    table_pick(&ctx.tables.hashed, ctx.servers, h, true)
}

/// Greatest common divisor.
pub(crate) fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(all(test, not(loom)))]
pub(crate) mod testutil {
    //! Building blocks for scheduler tests.
    use super::*;
    use crate::lb::snapshot::Snapshot;
    use crate::lb::spec::{RealServerSpec, ServiceAddr, ServiceSpec};
    use crate::lb::types::{Family, ServiceId};
    use crate::wire::ethernet::MacAddr;

    /// A snapshot with one service of `weights.len()` servers (all with MACs).
    pub fn snap(kind: SchedulerKind, weights: &[u32], flags: SchedFlags) -> Snapshot {
        Snapshot::new(&[ServiceSpec {
            ops: false,
            addr: ServiceAddr::Fwmark(1),
            scheduler: kind,
            sched_flags: flags,
            persistence: None,
            servers: weights
                .iter()
                .enumerate()
                .map(|(i, &w)| RealServerSpec {
                    addr: format!("10.1.{}.{}", i / 250, i % 250 + 1).parse().unwrap(),
                    weight: w,
                    u_threshold: 0,
                    l_threshold: 0,
                    mac: Some(MacAddr([2, 0, 0, 0, 0, i as u8])),
                    forward: Default::default(),
                    via: None,
                })
                .collect(),
        }])
    }

    /// The context of service 0 of `s`.
    pub fn ctx(s: &Snapshot) -> SchedCtx<'_> {
        let svc = s.service(ServiceId(0)).unwrap();
        SchedCtx {
            servers: s.servers_of(svc),
            tables: &svc.tables,
            flags: svc.flags,
            weights_gen: s.weights_gen(),
        }
    }

    /// A flow from client number `i`.
    pub fn key(i: u32) -> FlowKey {
        FlowKey::new(
            Family::V4,
            6,
            Addr::v4((0x0b00_0000 + i).to_be_bytes()),
            40000 + (i % 1000) as u16,
            Addr::v4([192, 0, 2, 1]),
            80,
        )
    }

    /// Counts of picks per server over `n` new flows.
    pub fn distribution(st: &mut SchedState, s: &Snapshot, n: u32) -> Vec<u32> {
        let c = ctx(s);
        let mut out = vec![0; c.servers.len()];
        for i in 0..n {
            out[st.pick(&c, &key(i)).unwrap()] += 1;
        }
        out
    }

    /// Set the counters of local server `i`.
    pub fn set_conns(s: &Snapshot, i: usize, active: u32, inactive: u32) {
        let r = s.server(crate::lb::types::RsId(i as u32)).unwrap();
        for _ in 0..active {
            r.conn_created(true);
        }
        for _ in 0..inactive {
            r.conn_created(false);
        }
    }
}
