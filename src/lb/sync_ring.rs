//! The rings between the workers and the sync daemon: a worker reports the
//! connections it wants sent to peers ([`Outgoing`], worker → control
//! plane), and the control plane hands each worker the connections peers
//! sent ([`ConnInstall`], control plane → worker).
//!
//! One producer and one consumer per ring, a fixed power-of-two number of
//! slots allocated at start, each slot eight `u64` words written and read
//! with plain (relaxed) atomic stores and loads, so the ring needs no
//! `unsafe`. The producer publishes its head with one release store per
//! batch ([`Producer::publish`], once per burst), the consumer its tail
//! with one release store per drain: no read-modify-write, no lock, and
//! the only shared lines a worker writes are its own ring's slots and
//! head. A full ring refuses the item (the caller counts it); nobody ever
//! waits.
#![forbid(unsafe_code)]

use std::marker::PhantomData;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::lb::conn::{ConnEntry, ConnState};
use crate::lb::hash::addr_words;
use crate::lb::sync::{AtomicU64, Ordering};
use crate::lb::sync_record::ConnInstall;
use crate::lb::types::{Addr, Family, FlowKey, RsId, ServiceId};

/// Words in a slot.
pub const WORDS: usize = 8;

/// A `Copy` item that fits a slot.
pub trait Item: Copy {
    /// The item as a slot's words.
    fn to_words(&self) -> [u64; WORDS];
    /// The item back from a slot's words.
    fn from_words(w: &[u64; WORDS]) -> Self;
}

/// A connection a worker wants sent: its entry, with `entry.expires`
/// holding the milliseconds it had **left** when it was reported (not a
/// deadline: the worker's clock means nothing to the control plane), so
/// `sync_record::conn_record(&o.entry, snap, 0)` gives its record.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing {
    /// The entry; `expires` is the time left, ms.
    pub entry: ConnEntry,
}

/// When a worker reports a connection (IPVS's `sync_threshold` sysctl,
/// the pair `threshold period`): on the packet whose count modulo
/// `period` equals `threshold` — the 3rd, 53rd, 103rd … with the
/// defaults — besides the TCP state changes that report at once (see
/// `lb::state`'s sync module). `threshold` must be below `period`, and
/// `period` at least 1 (IPVS's `sync_period` 0, "once only", is not
/// offered); [`SyncRule::sanitized`] makes any pair so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncRule {
    /// The count, within a period, at which a connection is reported.
    pub threshold: u8,
    /// Packets per period (1..=255).
    pub period: u8,
}

impl Default for SyncRule {
    /// IPVS's defaults: `DEFAULT_SYNC_THRESHOLD` 3, `DEFAULT_SYNC_PERIOD` 50.
    fn default() -> Self {
        SyncRule {
            threshold: 3,
            period: 50,
        }
    }
}

impl SyncRule {
    /// The rule with `period` at least 1 and `threshold` below it.
    pub fn sanitized(self) -> Self {
        let period = self.period.max(1);
        SyncRule {
            threshold: self.threshold.min(period - 1),
            period,
        }
    }
}

struct Slot([AtomicU64; WORDS]);

/// A single-producer single-consumer ring of `T`.
pub struct SyncRing<T> {
    slots: Box<[Slot]>,
    mask: u64,
    /// Next slot the producer fills (published).
    head: CachePadded<AtomicU64>,
    /// Next slot the consumer reads (published).
    tail: CachePadded<AtomicU64>,
    _t: PhantomData<T>,
}

impl<T> std::fmt::Debug for SyncRing<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncRing({} slots)", self.slots.len())
    }
}

impl<T: Item> SyncRing<T> {
    /// A ring of at least `count` slots (rounded up to a power of two, at
    /// least 2), split into its two ends.
    pub fn split(count: usize) -> (Producer<T>, Consumer<T>) {
        let n = count.max(2).next_power_of_two();
        let slots = (0..n)
            .map(|_| Slot(std::array::from_fn(|_| AtomicU64::new(0))))
            .collect();
        let ring = Arc::new(SyncRing {
            slots,
            mask: n as u64 - 1,
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            _t: PhantomData,
        });
        (
            Producer {
                ring: Arc::clone(&ring),
                head: 0,
                tail_seen: 0,
                published: 0,
            },
            Consumer { ring, tail: 0 },
        )
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// The producing end (one thread).
pub struct Producer<T> {
    ring: Arc<SyncRing<T>>,
    /// Next slot to fill (ahead of the published head until `publish`).
    head: u64,
    /// The consumer's tail as last read.
    tail_seen: u64,
    published: u64,
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Producer({:?}, head {})", self.ring, self.head)
    }
}

impl<T: Item> Producer<T> {
    /// Writes `item` into the next slot; `false` (nothing written) when
    /// the ring is full. The consumer sees it after [`Producer::publish`].
    #[inline]
    pub fn push(&mut self, item: &T) -> bool {
        let cap = self.ring.slots.len() as u64;
        if self.head - self.tail_seen >= cap {
            self.tail_seen = self.ring.tail.load(Ordering::Acquire);
            if self.head - self.tail_seen >= cap {
                return false;
            }
        }
        let slot = &self.ring.slots[(self.head & self.ring.mask) as usize];
        for (w, v) in slot.0.iter().zip(item.to_words()) {
            w.store(v, Ordering::Relaxed);
        }
        self.head += 1;
        true
    }

    /// Makes every pushed item visible to the consumer (one release store,
    /// none when nothing was pushed since the last call).
    #[inline]
    pub fn publish(&mut self) {
        if self.head != self.published {
            self.ring.head.store(self.head, Ordering::Release);
            self.published = self.head;
        }
    }

    /// Slots.
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

/// The consuming end (one thread).
pub struct Consumer<T> {
    ring: Arc<SyncRing<T>>,
    tail: u64,
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Consumer({:?}, tail {})", self.ring, self.tail)
    }
}

impl<T: Item> Consumer<T> {
    /// Reads up to `max` published items in order, calling `f` on each,
    /// then frees their slots (one release store). Returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(T)) -> usize {
        let head = self.ring.head.load(Ordering::Acquire);
        let n = (head - self.tail).min(max as u64);
        for i in 0..n {
            let slot = &self.ring.slots[((self.tail + i) & self.ring.mask) as usize];
            let w: [u64; WORDS] = std::array::from_fn(|k| slot.0[k].load(Ordering::Relaxed));
            f(T::from_words(&w));
        }
        if n > 0 {
            self.tail += n;
            self.ring.tail.store(self.tail, Ordering::Release);
        }
        n as usize
    }

    /// Items published and not yet drained.
    pub fn len(&self) -> usize {
        (self.ring.head.load(Ordering::Acquire) - self.tail) as usize
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn addr_of(lo: u64, hi: u64) -> Addr {
    Addr((lo as u128 | (hi as u128) << 64).to_le_bytes())
}

fn state_of(b: u8) -> ConnState {
    ConnState::from_repr(b).unwrap_or(ConnState::None)
}

/// Words 0..4: the addresses; word 4: ports, protocol, family, state and a
/// flag byte; word 5: service and server.
fn key_words(k: &FlowKey, state: ConnState, flags: u8, svc: ServiceId, rs: RsId) -> [u64; 6] {
    let (c0, c1) = addr_words(&k.client());
    let (v0, v1) = addr_words(&k.vip());
    let fam = matches!(k.family(), Family::V6) as u64;
    let w4 = k.cport() as u64
        | (k.vport() as u64) << 16
        | (k.proto() as u64) << 32
        | fam << 40
        | (state as u64) << 48
        | (flags as u64) << 56;
    [c0, c1, v0, v1, w4, svc.0 as u64 | (rs.0 as u64) << 32]
}

fn key_of(w: &[u64; WORDS]) -> (FlowKey, ConnState, u8, ServiceId, RsId) {
    let k = FlowKey::new(
        if (w[4] >> 40) as u8 & 1 == 1 {
            Family::V6
        } else {
            Family::V4
        },
        (w[4] >> 32) as u8,
        addr_of(w[0], w[1]),
        w[4] as u16,
        addr_of(w[2], w[3]),
        (w[4] >> 16) as u16,
    );
    (
        k,
        state_of((w[4] >> 48) as u8),
        (w[4] >> 56) as u8,
        ServiceId(w[5] as u32),
        RsId((w[5] >> 32) as u32),
    )
}

impl Item for Outgoing {
    fn to_words(&self) -> [u64; WORDS] {
        let e = &self.entry;
        let k = key_words(&e.key, e.state, e.flags, e.svc, e.rs);
        [
            k[0],
            k[1],
            k[2],
            k[3],
            k[4],
            k[5],
            e.tpl_slot as u64,
            e.expires,
        ]
    }

    fn from_words(w: &[u64; WORDS]) -> Self {
        let (key, state, flags, svc, rs) = key_of(w);
        Outgoing {
            entry: ConnEntry {
                key,
                state,
                flags,
                svc,
                rs,
                tpl_slot: w[6] as u32,
                expires: w[7],
            },
        }
    }
}

impl Item for ConnInstall {
    fn to_words(&self) -> [u64; WORDS] {
        let k = key_words(
            &self.key,
            self.state,
            self.inactive as u8,
            self.svc,
            self.rs,
        );
        [k[0], k[1], k[2], k[3], k[4], k[5], 0, self.timeout_ms]
    }

    fn from_words(w: &[u64; WORDS]) -> Self {
        let (key, state, flags, svc, rs) = key_of(w);
        ConnInstall {
            key,
            svc,
            rs,
            state,
            timeout_ms: w[7],
            inactive: flags & 1 != 0,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn key(i: u32, family: Family) -> FlowKey {
        let client = match family {
            Family::V4 => Addr::v4(i.to_be_bytes()),
            Family::V6 => Addr::v6([i as u8; 16]),
        };
        FlowKey::new(family, 6, client, i as u16, Addr::v4([10, 0, 0, 1]), 443)
    }

    fn install(i: u32) -> ConnInstall {
        ConnInstall {
            key: key(i, if i % 2 == 0 { Family::V4 } else { Family::V6 }),
            svc: ServiceId(i % 7),
            rs: RsId(i % 5),
            state: state_of((i % 12) as u8),
            timeout_ms: 1000 + i as u64,
            inactive: i % 3 == 0,
        }
    }

    #[test]
    fn items_survive_their_words() {
        for i in 0..50 {
            let c = install(i);
            assert_eq!(ConnInstall::from_words(&c.to_words()), c);
            let e = ConnEntry {
                key: c.key,
                state: c.state,
                flags: i as u8,
                svc: c.svc,
                rs: c.rs,
                tpl_slot: i * 3,
                expires: 77 + i as u64,
            };
            let back = Outgoing::from_words(&Outgoing { entry: e }.to_words()).entry;
            assert_eq!(
                (back.key, back.state, back.flags, back.svc, back.rs),
                (e.key, e.state, e.flags, e.svc, e.rs)
            );
            assert_eq!((back.tpl_slot, back.expires), (e.tpl_slot, e.expires));
        }
    }

    #[test]
    fn full_ring_refuses_and_unpublished_items_stay_hidden() {
        let (mut p, mut c) = SyncRing::<ConnInstall>::split(3);
        assert_eq!(p.capacity(), 4);
        for i in 0..4 {
            assert!(p.push(&install(i)));
        }
        assert!(!p.push(&install(9)), "a full ring refuses");
        assert_eq!(c.drain(10, |_| panic!("nothing published yet")), 0);
        p.publish();
        let mut got = Vec::new();
        assert_eq!(c.drain(3, |x| got.push(x)), 3);
        assert!(p.push(&install(4)) && p.push(&install(5)) && p.push(&install(6)));
        assert!(!p.push(&install(7)));
        p.publish();
        assert_eq!(c.len(), 4);
        c.drain(usize::MAX, |x| got.push(x));
        let want: Vec<_> = (0..7).map(install).collect();
        assert_eq!(got, want, "in order, none lost, none twice");
        assert!(c.is_empty());
    }

    #[test]
    fn two_threads_pass_every_item_once_in_order() {
        let (mut p, mut c) = SyncRing::<ConnInstall>::split(64);
        const N: u32 = 200_000;
        let t = std::thread::spawn(move || {
            let mut i = 0;
            while i < N {
                if p.push(&install(i)) {
                    i += 1;
                    if i % 16 == 0 {
                        p.publish();
                    }
                } else {
                    p.publish();
                    std::thread::yield_now();
                }
            }
            p.publish();
        });
        let mut next = 0;
        while next < N {
            c.drain(32, |x| {
                assert_eq!(x, install(next));
                next += 1;
            });
        }
        t.join().unwrap();
    }
}
