//! Connection dumps for `ipvsadm -L -c`: how the control plane reads a
//! worker's connection table, which only that worker may touch.
//!
//! Each worker has one [`ConnDump`], shared with the control plane:
//!
//! * **Asking.** The control plane stores a new, increasing epoch in
//!   `request` (its own cache line). Nothing else is shared per dump.
//! * **Copying.** In its slow jobs (every `SLOW_EVERY` loops) the worker
//!   sees `request != done` and copies the live entries of at most
//!   [`DUMP_BUCKETS_PER_JOB`] groups of table lines, at most [`DUMP_ENTRIES_PER_JOB`] of
//!   them, into the dump's buffer, going on from a cursor in the next slow
//!   job; so no loop iteration copies more than a bounded amount. Entries
//!   past their deadline but not swept yet are skipped
//!   ([`WorkerState::scan_live`]). The buffer is allocated once at start
//!   with room for `capacity` entries (at most [`DUMP_MAX_ENTRIES`]); when
//!   it is full and live entries are left, the dump ends `truncated`.
//! * **Done.** When the scan reached the table's end (or the buffer is
//!   full) the worker records its clock and table size in the buffer and
//!   stores the epoch in `done` (its own cache line, `Release`).
//! * **Reading.** The control plane, seeing `done == epoch` (`Acquire`),
//!   copies the buffer out ([`ConnDump::take`]); it may also take a dump
//!   that is not finished (what arrived before its deadline).
//!
//! The buffer sits behind a `Mutex` that both sides only ever `try_lock`:
//! the worker skips a slow job's dump step when the control plane is
//! reading, the control plane retries in a later tick when the worker is
//! copying; nobody waits, so the unlock never has a waiter to wake (no
//! system call). Nothing here runs on the per-packet path.
//!
//! A dump spread over several slow jobs is not an atomic snapshot: an
//! entry created in a part already copied is missed, one retired before
//! its part is reached is not listed (as reading `/proc/net/ip_vs_conn`
//! while the kernel works). Entries never move in the table, so every
//! entry that lives throughout the dump is listed exactly once.
#![forbid(unsafe_code)]

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, TryLockError};

use crossbeam_utils::CachePadded;

use crate::lb::conn::ConnState;
use crate::lb::state::WorkerState;
use crate::lb::types::{FlowKey, RsId, ServiceId};

/// Most entries one worker's dump holds (its buffer's size at most).
pub const DUMP_MAX_ENTRIES: usize = 65_536;
/// Most entries copied in one slow job.
pub const DUMP_ENTRIES_PER_JOB: usize = 2_048;
/// Most connection-table buckets visited in one slow job.
pub const DUMP_BUCKETS_PER_JOB: usize = 512;

/// One connection entry as a dump carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DumpEntry {
    /// The flow.
    pub key: FlowKey,
    /// Its state.
    pub state: ConnState,
    /// Its service.
    pub svc: ServiceId,
    /// Its real server (resolved by the control plane).
    pub rs: RsId,
    /// When it ends (ms, the worker's clock).
    pub deadline_ms: u64,
}

/// A dump handed to the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DumpResult {
    /// The entries copied, in table order.
    pub entries: Vec<DumpEntry>,
    /// The worker's clock (ms) when the dump ended (or when it last
    /// copied, for an unfinished one).
    pub now_ms: u64,
    /// The buffer filled up before the table's end.
    pub truncated: bool,
    /// The worker finished this dump (else: what arrived so far).
    pub complete: bool,
    /// Entries in the worker's table when it ended (expired ones not yet
    /// swept included).
    pub table_len: usize,
}

#[derive(Debug)]
struct Buf {
    /// The epoch the content belongs to (0: none yet).
    epoch: u64,
    /// Next slot to visit.
    cursor: usize,
    entries: Vec<DumpEntry>,
    now_ms: u64,
    truncated: bool,
    table_len: usize,
}

/// One worker's dump channel (see the module doc).
#[derive(Debug)]
pub struct ConnDump {
    request: CachePadded<AtomicU64>,
    done: CachePadded<AtomicU64>,
    capacity: usize,
    buf: Mutex<Buf>,
}

impl ConnDump {
    /// A dump channel whose buffer holds `capacity` entries (at most
    /// [`DUMP_MAX_ENTRIES`]), allocated here, once.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, DUMP_MAX_ENTRIES);
        ConnDump {
            request: CachePadded::new(AtomicU64::new(0)),
            done: CachePadded::new(AtomicU64::new(0)),
            capacity,
            buf: Mutex::new(Buf {
                epoch: 0,
                cursor: 0,
                entries: Vec::with_capacity(capacity),
                now_ms: 0,
                truncated: false,
                table_len: 0,
            }),
        }
    }

    /// Entries the buffer holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Control plane: ask for a new dump. `epoch` must be greater than
    /// every epoch asked before; a dump still running is abandoned.
    pub fn request(&self, epoch: u64) {
        self.request.store(epoch, Ordering::Release);
    }

    /// Control plane: whether the worker finished dump `epoch`.
    pub fn is_done(&self, epoch: u64) -> bool {
        self.done.load(Ordering::Acquire) == epoch
    }

    /// Control plane: a copy of dump `epoch` — finished, or what arrived
    /// so far. `None` while the worker is copying (try again later) or has
    /// not started on `epoch`.
    pub fn take(&self, epoch: u64) -> Option<DumpResult> {
        let complete = self.is_done(epoch);
        let b = match self.buf.try_lock() {
            Ok(b) => b,
            Err(TryLockError::WouldBlock) => return None,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        (b.epoch == epoch).then(|| DumpResult {
            entries: b.entries.clone(),
            now_ms: b.now_ms,
            truncated: b.truncated,
            complete,
            table_len: b.table_len,
        })
    }

    /// Worker, slow job: one bounded step of the dump asked for, if any.
    /// Never waits. Returns whether it finished a dump.
    pub fn step(&self, state: &WorkerState) -> bool {
        let req = self.request.load(Ordering::Acquire);
        if req == self.done.load(Ordering::Relaxed) {
            return false;
        }
        let mut b = match self.buf.try_lock() {
            Ok(b) => b,
            Err(TryLockError::WouldBlock) => return false,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if b.epoch != req {
            b.epoch = req;
            b.cursor = 0;
            b.entries.clear();
            b.truncated = false;
        }
        let cap = self.capacity;
        let b = &mut *b;
        let (entries, truncated) = (&mut b.entries, &mut b.truncated);
        let mut copied = 0;
        let next = state.scan_live(b.cursor, DUMP_BUCKETS_PER_JOB, |e, deadline| {
            if entries.len() >= cap {
                *truncated = true;
                return ControlFlow::Break(());
            }
            if copied >= DUMP_ENTRIES_PER_JOB {
                return ControlFlow::Break(());
            }
            entries.push(DumpEntry {
                key: e.key,
                state: e.state,
                svc: e.svc,
                rs: e.rs,
                deadline_ms: deadline,
            });
            copied += 1;
            ControlFlow::Continue(())
        });
        b.now_ms = state.now();
        match next {
            Some(at) if !b.truncated => {
                b.cursor = at;
                false
            }
            _ => {
                b.table_len = state.conn_count();
                self.done.store(req, Ordering::Release);
                true
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::lb::flow::FlowState;
    use crate::lb::persist::PersistTable;
    use crate::lb::snapshot::Snapshot;
    use crate::lb::spec::{
        RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec, StateFlags, Timeouts,
    };
    use crate::lb::state::StateConfig;
    use crate::lb::types::{ip_proto, Addr, Family, TcpFlags};
    use crate::wire::ethernet::MacAddr;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            addr: ServiceAddr::Addr {
                proto: ip_proto::TCP,
                vip: "192.0.2.1".parse().unwrap(),
                port: 80,
            },
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            ops: false,
            servers: (0..2)
                .map(|i| RealServerSpec {
                    addr: format!("10.0.1.{}", i + 1).parse().unwrap(),
                    weight: 1,
                    u_threshold: 0,
                    l_threshold: 0,
                    mac: Some(MacAddr([2, 0, 0, 0, 0, i + 1])),
                    forward: Default::default(),
                    via: None,
                })
                .collect(),
        }
    }

    fn worker(cap: usize) -> WorkerState {
        let snap = Arc::new(Snapshot::new(&[spec()]));
        let pt = Arc::new(PersistTable::new(64, 1, 1));
        WorkerState::new(
            snap,
            pt,
            StateConfig {
                conn_capacity: cap,
                timeouts: Timeouts::default(),
                flags: StateFlags::default(),
                seed: 3,
            },
        )
    }

    fn flow(i: u32) -> FlowKey {
        FlowKey::new(
            Family::V4,
            ip_proto::TCP,
            Addr::v4((0x0a00_0000 + i).to_be_bytes()),
            1024 + (i % 50_000) as u16,
            Addr::v4([192, 0, 2, 1]),
            80,
        )
    }

    fn fill(w: &mut WorkerState, n: u32) {
        for i in 0..n {
            let syn = Some(TcpFlags(TcpFlags::SYN));
            w.assign(ServiceId(0), &flow(i), syn).unwrap();
        }
    }

    /// Steps until done; returns the number of steps.
    fn run(d: &ConnDump, w: &WorkerState) -> usize {
        let mut steps = 1;
        while !d.step(w) {
            steps += 1;
            assert!(steps < 100_000, "the dump never ends");
        }
        steps
    }

    #[test]
    fn nothing_asked_nothing_done() {
        let w = worker(1024);
        let d = ConnDump::new(1024);
        assert!(!d.step(&w));
        assert!(d.take(1).is_none());
    }

    #[test]
    fn a_dump_lists_every_live_entry_over_bounded_steps() {
        let mut w = worker(65_536);
        fill(&mut w, 5_000);
        let d = ConnDump::new(DUMP_MAX_ENTRIES);
        d.request(1);
        assert!(!d.is_done(1));
        let steps = run(&d, &w);
        // 65,536 entries = 8,192 buckets: at least 16 slices of 512
        assert!(steps >= 8_192 / DUMP_BUCKETS_PER_JOB, "{steps} steps");
        assert!(d.is_done(1));
        let r = d.take(1).unwrap();
        assert!(r.complete && !r.truncated);
        assert_eq!((r.entries.len(), r.table_len), (5_000, 5_000));
        let mut keys: Vec<_> = r.entries.iter().map(|e| e.key).collect();
        keys.sort_by_key(|k| k.client());
        keys.dedup();
        assert_eq!(keys.len(), 5_000);
        let e = r.entries[0];
        assert_eq!(e.state, ConnState::SynRecv);
        assert_eq!(e.deadline_ms, 60_000);
        assert!(e.rs == RsId(0) || e.rs == RsId(1));
        // done: further steps do nothing until the next request
        assert!(!d.step(&w));
    }

    #[test]
    fn no_step_copies_more_than_its_bound() {
        let mut w = worker(16_384);
        fill(&mut w, 10_000);
        let d = ConnDump::new(DUMP_MAX_ENTRIES);
        d.request(7);
        let mut before = 0;
        loop {
            let done = d.step(&w);
            // what arrived so far is readable while the dump runs
            let r = d.take(7).unwrap();
            assert!(r.entries.len() - before <= DUMP_ENTRIES_PER_JOB);
            before = r.entries.len();
            if done {
                assert!(r.complete);
                break;
            }
            assert!(!r.complete);
        }
        assert_eq!(before, 10_000);
    }

    #[test]
    fn a_full_buffer_truncates_and_a_new_request_starts_over() {
        let mut w = worker(4_096);
        fill(&mut w, 3_000);
        let d = ConnDump::new(1_000);
        d.request(1);
        run(&d, &w);
        let r = d.take(1).unwrap();
        assert!(r.truncated && r.complete);
        assert_eq!((r.entries.len(), r.table_len), (1_000, 3_000));
        // expired entries are skipped; the next dump starts from scratch
        w.set_now(60_000);
        d.request(2);
        assert!(
            d.take(1).is_some_and(|r| r.complete),
            "still there until the worker starts anew"
        );
        run(&d, &w);
        assert!(d.take(1).is_none(), "gone once the worker started anew");
        let r = d.take(2).unwrap();
        assert!(!r.truncated && r.entries.is_empty());
        assert_eq!((r.now_ms, r.table_len), (60_000, 3_000));
    }

    #[test]
    fn a_reader_holding_the_buffer_delays_the_worker_without_blocking_it() {
        let mut w = worker(1_024);
        fill(&mut w, 10);
        let d = ConnDump::new(1_024);
        d.request(1);
        {
            let _held = d.buf.lock().unwrap();
            assert!(!d.step(&w), "the worker skips the step");
            assert!(!d.is_done(1));
        }
        run(&d, &w);
        assert_eq!(d.take(1).unwrap().entries.len(), 10);
    }
}
