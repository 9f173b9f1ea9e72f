//! The per-worker connection table: 5-tuple → real server, TCP state,
//! expiry and the persistence template the connection holds a reference on.
//!
//! Layout: power-of-two buckets of [`WAYS`] entries; a key may live in two
//! buckets (two-choice hashing), chosen from one hash. Each bucket has an
//! 8-byte tag array (a byte of the hash per way, 0 = empty) matched with a
//! SWAR compare, and entries are one cache line each, so a hit costs the
//! tag word plus one entry line. Capacity is fixed at construction; nothing
//! allocates afterwards. The table is owned by one worker (RSS keeps a flow
//! on one queue), so it uses no atomics at all.
//!
//! Expiry is lazy (the owner checks `expires` on lookup) plus an incremental
//! [`ConnTable::sweep`] of a few buckets per call, and on insertion into a
//! full bucket pair expired entries are reclaimed first. When both buckets
//! are full of live entries, [`ConnTable::reserve`] fails; the owner may
//! then [`ConnTable::evict`] an embryonic entry of the same two buckets
//! ([`ConnEntry::is_embryonic`]: the `drop_entry` defence, never a scan
//! beyond those 16 ways) or apply its documented fallback (see `state.rs`).
//!
//! TCP follows IPVS's input-only state table (`tcp_states`, INPUT-ONLY rows),
//! since a DR director sees only client→server packets.
#![forbid(unsafe_code)]

use crate::lb::hash::hash_flow;
use crate::lb::spec::Timeouts;
use crate::lb::types::{FlowKey, RsId, ServiceId, TcpFlags};

/// Entries per bucket.
pub const WAYS: usize = 8;

/// Connection states: IPVS's TCP states, plus one state for UDP-like flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(u8)]
pub enum ConnState {
    /// sNO: no packet seen yet.
    #[default]
    None = 0,
    /// sES: ESTABLISHED (counts as active).
    Established,
    /// sSS: SYN_SENT.
    SynSent,
    /// sSR: SYN_RECV.
    SynRecv,
    /// sFW: FIN_WAIT.
    FinWait,
    /// sTW: TIME_WAIT.
    TimeWait,
    /// sCL: CLOSE.
    Close,
    /// sCW: CLOSE_WAIT.
    CloseWait,
    /// sLA: LAST_ACK.
    LastAck,
    /// sLI: LISTEN.
    Listen,
    /// sSA: SYN_ACK.
    SynAck,
    /// A UDP, SCTP or other port-based flow without a state machine.
    Udp,
}

use ConnState as S;

impl ConnState {
    /// The state's name in `/proc/net/ip_vs_conn` and `ipvsadm -L -c`
    /// for a connection of IP protocol `proto`: IPVS's `tcp_state_name_table`
    /// for TCP, `UDP` for UDP (`udp_state_name_table`). pmdlb tracks no
    /// SCTP states, so an SCTP flow shows `NONE`, IPVS's name for "no state".
    pub fn ipvs_name(self, proto: u8) -> &'static str {
        match self {
            S::None => "NONE",
            S::Established => "ESTABLISHED",
            S::SynSent => "SYN_SENT",
            S::SynRecv => "SYN_RECV",
            S::FinWait => "FIN_WAIT",
            S::TimeWait => "TIME_WAIT",
            S::Close => "CLOSE",
            S::CloseWait => "CLOSE_WAIT",
            S::LastAck => "LAST_ACK",
            S::Listen => "LISTEN",
            S::SynAck => "SYNACK",
            S::Udp if proto == crate::lb::types::ip_proto::UDP => "UDP",
            S::Udp => "NONE",
        }
    }
}

/// IPVS `tcp_states` INPUT-ONLY rows, indexed `[event][state]` with events
/// syn, fin, ack, rst and states in [`ConnState`] order (sNO..sSA).
const INPUT_ONLY: [[ConnState; 11]; 4] = [
    // sNO  sES             sSS             sSR        sFW        sTW        sCL        sCW         sLA        sLI        sSA
    [
        S::SynRecv,
        S::Established,
        S::Established,
        S::SynRecv,
        S::SynRecv,
        S::SynRecv,
        S::SynRecv,
        S::SynRecv,
        S::SynRecv,
        S::SynRecv,
        S::SynRecv,
    ], // syn
    [
        S::Close,
        S::FinWait,
        S::SynSent,
        S::TimeWait,
        S::FinWait,
        S::TimeWait,
        S::Close,
        S::CloseWait,
        S::LastAck,
        S::Listen,
        S::TimeWait,
    ], // fin
    [
        S::Close,
        S::Established,
        S::SynSent,
        S::Established,
        S::FinWait,
        S::TimeWait,
        S::Close,
        S::CloseWait,
        S::Close,
        S::Listen,
        S::Established,
    ], // ack
    [
        S::Close,
        S::Close,
        S::Close,
        S::SynRecv,
        S::Close,
        S::Close,
        S::Close,
        S::Close,
        S::LastAck,
        S::Listen,
        S::Close,
    ], // rst
];

/// The next TCP state for a packet with `flags` (IPVS `tcp_state_idx`: rst,
/// then syn, then fin, then ack; no such flag: no change).
#[inline]
pub fn tcp_transition(state: ConnState, flags: TcpFlags) -> ConnState {
    let ev = if flags.has(TcpFlags::RST) {
        3
    } else if flags.has(TcpFlags::SYN) {
        0
    } else if flags.has(TcpFlags::FIN) {
        1
    } else if flags.has(TcpFlags::ACK) {
        2
    } else {
        return state;
    };
    let st = state as usize;
    if st >= 11 {
        return state;
    }
    INPUT_ONLY[ev][st]
}

/// Timeout of a state in milliseconds: the settable ones from `Timeouts`,
/// the rest IPVS's defaults.
#[inline]
pub fn timeout_ms(state: ConnState, t: &Timeouts) -> u64 {
    let s = match state {
        S::None => 2,
        S::Established => t.tcp_established_s,
        S::SynSent => 120,
        S::SynRecv => t.tcp_syn_recv_s,
        S::FinWait => t.tcp_fin_wait_s,
        S::TimeWait => 120,
        S::Close => t.tcp_close_s,
        S::CloseWait => 60,
        S::LastAck => 30,
        S::Listen => 120,
        S::SynAck => 120,
        S::Udp => t.udp_s,
    };
    s as u64 * 1000
}

/// Entry flag: the connection holds a reference on a persistence template.
pub const F_TEMPLATE: u8 = 1;
/// Entry flag: a packet after the first was seen. A DR director never sees
/// replies, so for a UDP-like flow this is the only sign that it is more
/// than one unanswered datagram (a spoofed source sends one and is gone).
pub const F_CONFIRMED: u8 = 2;

/// One connection, one cache line.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
pub struct ConnEntry {
    /// The flow.
    pub key: FlowKey,
    /// TCP state (or `Udp`).
    pub state: ConnState,
    /// `F_*` flags.
    pub flags: u8,
    /// Its service.
    pub svc: ServiceId,
    /// Its real server (cached: no template lookup per packet).
    pub rs: RsId,
    /// The persistence-table slot it holds a reference on (`F_TEMPLATE`).
    pub tpl_slot: u32,
    /// Expiry, ms.
    pub expires: u64,
}

const _: () = assert!(std::mem::size_of::<ConnEntry>() == 64);

impl ConnEntry {
    /// Whether the entry counts as active (ESTABLISHED) for its server.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.state == ConnState::Established
    }

    /// Whether it holds a template reference.
    #[inline]
    pub fn has_template(&self) -> bool {
        self.flags & F_TEMPLATE != 0
    }

    /// Whether the entry is embryonic — a TCP handshake the client has not
    /// completed (SYN_RECV; SYN_ACK as IPVS, though the input-only table
    /// never enters it), or a UDP-like flow of a single packet — and so
    /// may be evicted for a new flow under the `drop_entry` defence. Every
    /// other state (ESTABLISHED, FIN_WAIT, …, a confirmed UDP flow) belongs
    /// to a client that did more than send one packet, possibly from a
    /// spoofed address, and is never evicted.
    #[inline]
    pub fn is_embryonic(&self) -> bool {
        match self.state {
            ConnState::SynRecv | ConnState::SynAck => true,
            ConnState::Udp => self.flags & F_CONFIRMED == 0,
            _ => false,
        }
    }
}

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Bitmask (high bit of each matching byte) of ways whose tag equals `tag`;
/// may have false positives above a true match, never false negatives.
#[inline(always)]
fn match_tag(tags: [u8; WAYS], tag: u8) -> u64 {
    let x = u64::from_le_bytes(tags) ^ (LO * tag as u64);
    x.wrapping_sub(LO) & !x & HI
}

/// One bucket: its tag line followed by its entries, so a lookup touches
/// one page (one TLB entry) for the tags and the entry of its first bucket.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Bucket {
    tags: [u8; WAYS],
    entries: [ConnEntry; WAYS],
}

/// The fixed-capacity table.
pub struct ConnTable {
    buckets: Box<[Bucket]>,
    mask: usize,
    seed: u64,
    len: usize,
    cursor: usize,
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .finish()
    }
}

/// A position in the table where an entry may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    idx: usize,
    tag: u8,
}

impl ConnTable {
    /// A table for `capacity` entries (rounded up to a power-of-two number of
    /// buckets of [`WAYS`]); `seed` keys the hash.
    pub fn new(capacity: usize, seed: u64) -> Self {
        let nb = capacity.max(WAYS).div_ceil(WAYS).next_power_of_two();
        let blank = ConnEntry {
            key: FlowKey {
                client: Default::default(),
                vip: Default::default(),
                cport: 0,
                vport: 0,
                proto: 0,
                family: crate::lb::types::Family::V4,
            },
            state: ConnState::None,
            flags: 0,
            svc: ServiceId(0),
            rs: RsId(0),
            tpl_slot: 0,
            expires: 0,
        };
        // Reserve untouched memory, ask for huge pages, then fill: random
        // probes of a large table otherwise miss the TLB on nearly every
        // packet (perf: the bucket prefetches stalled on page walks).
        let mut buckets = Vec::with_capacity(nb);
        crate::sys::advise_hugepages(
            buckets.as_ptr() as *const u8,
            nb * std::mem::size_of::<Bucket>(),
        );
        buckets.resize(
            nb,
            Bucket {
                tags: [0; WAYS],
                entries: [blank; WAYS],
            },
        );
        ConnTable {
            buckets: buckets.into_boxed_slice(),
            mask: nb - 1,
            seed,
            len: 0,
            cursor: 0,
        }
    }

    /// Number of entry slots.
    pub fn capacity(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Entries in use (including expired ones not yet reclaimed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no entry is in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hash of a flow with this table's seed.
    #[inline(always)]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        hash_flow(key, self.seed)
    }

    /// The primary bucket of a flow: the worker hashes a burst first and
    /// prefetches `tags[b]` and the entries `b * WAYS ..` before deciding.
    #[inline(always)]
    pub fn bucket_of(&self, key: &FlowKey) -> usize {
        self.hash(key) as usize & self.mask
    }

    #[inline(always)]
    fn buckets(&self, h: u64) -> (usize, usize, u8) {
        let b1 = h as usize & self.mask;
        let b2 = b1 ^ (((h >> 40) as usize | 1) & self.mask);
        let t = (h >> 56) as u8;
        (b1, b2, if t == 0 { 1 } else { t })
    }

    /// Prefetch the tag lines of both candidate buckets of hash `h` (burst
    /// pipeline, step 1).
    #[inline(always)]
    pub fn prefetch_buckets(&self, h: u64) {
        let (b1, b2, _) = self.buckets(h);
        crate::sys::prefetch(&self.buckets[b1].tags);
        crate::sys::prefetch(&self.buckets[b2].tags);
    }

    /// Prefetch the first entry whose tag matches hash `h`, without
    /// comparing keys (burst pipeline, step 2, once the tag lines arrived).
    /// `false`: no tag matches, the flow is new.
    #[inline(always)]
    pub fn prefetch_entry(&self, h: u64) -> bool {
        let (b1, b2, tag) = self.buckets(h);
        for b in [b1, b2] {
            let m = match_tag(self.buckets[b].tags, tag);
            if m != 0 {
                let way = (m.trailing_zeros() / 8) as usize & (WAYS - 1);
                crate::sys::prefetch(&self.buckets[b].entries[way]);
                return true;
            }
        }
        false
    }

    /// Find a flow with precomputed hash `h`: its entry index.
    #[inline(always)]
    pub fn find(&self, key: &FlowKey, h: u64) -> Option<usize> {
        let (b1, b2, tag) = self.buckets(h);
        for b in [b1, b2] {
            let mut m = match_tag(self.buckets[b].tags, tag);
            while m != 0 {
                let way = (m.trailing_zeros() / 8) as usize;
                let idx = b * WAYS + way;
                if self.buckets[b].tags[way] == tag && self.buckets[b].entries[way].key == *key {
                    return Some(idx);
                }
                m &= m - 1;
            }
            if b1 == b2 {
                break;
            }
        }
        None
    }

    /// The entry at `idx`.
    #[inline]
    pub fn entry(&self, idx: usize) -> &ConnEntry {
        &self.buckets[idx / WAYS].entries[idx % WAYS]
    }

    /// The entry at `idx`, mutably.
    #[inline]
    pub fn entry_mut(&mut self, idx: usize) -> &mut ConnEntry {
        &mut self.buckets[idx / WAYS].entries[idx % WAYS]
    }

    /// Remove the entry at `idx` (the caller has done its accounting).
    #[inline]
    pub fn remove(&mut self, idx: usize) {
        let (b, w) = (idx / WAYS, idx % WAYS);
        if self.buckets[b].tags[w] != 0 {
            self.buckets[b].tags[w] = 0;
            self.len -= 1;
        }
    }

    /// Find a free way for a new flow with hash `h`, reclaiming expired
    /// entries of its two buckets (`on_expire` does their accounting) if
    /// both are full. `None`: full of live entries.
    #[inline]
    pub fn reserve(
        &mut self,
        h: u64,
        now: u64,
        on_expire: impl FnMut(&ConnEntry),
    ) -> Option<Reserved> {
        self.reserve_with(h, |e| now >= e.expires, on_expire)
    }

    /// [`ConnTable::reserve`] with the owner's notion of expiry: if both
    /// buckets are full, the first entry for which `expired` says so is
    /// reclaimed (after `on_expire`).
    #[inline]
    pub fn reserve_with(
        &mut self,
        h: u64,
        mut expired: impl FnMut(&ConnEntry) -> bool,
        mut on_expire: impl FnMut(&ConnEntry),
    ) -> Option<Reserved> {
        let (b1, b2, tag) = self.buckets(h);
        // exact empty-way masks (no SWAR false positives for tag 0)
        let empty = |t: [u8; WAYS]| {
            let x = u64::from_le_bytes(t);
            !((x | ((x & !HI) + !HI)) & HI) & HI
        };
        let (m1, m2) = (empty(self.buckets[b1].tags), empty(self.buckets[b2].tags));
        // the less loaded of the two buckets (power of two choices)
        let (b, m) = if m2.count_ones() > m1.count_ones() {
            (b2, m2)
        } else {
            (b1, m1)
        };
        if m != 0 {
            let way = (m.trailing_zeros() / 8) as usize;
            return Some(Reserved {
                idx: b * WAYS + way,
                tag,
            });
        }
        for b in [b1, b2] {
            for way in 0..WAYS {
                let idx = b * WAYS + way;
                if expired(&self.buckets[b].entries[way]) {
                    on_expire(&self.buckets[b].entries[way]);
                    self.buckets[b].tags[way] = 0;
                    self.len -= 1;
                    return Some(Reserved { idx, tag });
                }
            }
        }
        None
    }

    /// Make room for a new flow with hash `h` whose two buckets are full of
    /// live entries (after [`ConnTable::reserve`] failed): of the entries
    /// there for which `victim` says yes, evict the one closest to expiry
    /// (for SYN_RECV entries: the handshake that has waited longest), after
    /// `on_evict` did its accounting. Looks at those 16 ways only, never
    /// further. `None`: no victim there.
    #[inline]
    pub fn evict(
        &mut self,
        h: u64,
        mut victim: impl FnMut(&ConnEntry) -> bool,
        on_evict: impl FnOnce(&ConnEntry),
    ) -> Option<Reserved> {
        let (b1, b2, tag) = self.buckets(h);
        let mut best: Option<(usize, u64)> = None;
        for b in [b1, b2] {
            for way in 0..WAYS {
                let e = &self.buckets[b].entries[way];
                if self.buckets[b].tags[way] != 0
                    && victim(e)
                    && best.map_or(true, |(_, exp)| e.expires < exp)
                {
                    best = Some((b * WAYS + way, e.expires));
                }
            }
            if b1 == b2 {
                break;
            }
        }
        let (idx, _) = best?;
        let (b, w) = (idx / WAYS, idx % WAYS);
        on_evict(&self.buckets[b].entries[w]);
        self.buckets[b].tags[w] = 0;
        self.len -= 1;
        Some(Reserved { idx, tag })
    }

    /// Write a new entry where [`ConnTable::reserve`] said; returns its index.
    #[inline]
    pub fn insert(&mut self, r: Reserved, e: ConnEntry) -> usize {
        let (b, w) = (r.idx / WAYS, r.idx % WAYS);
        debug_assert_eq!(self.buckets[b].tags[w], 0);
        self.buckets[b].tags[w] = r.tag;
        self.buckets[b].entries[w] = e;
        self.len += 1;
        r.idx
    }

    /// Visit the entries in use from slot index `from` on, at most
    /// `max_buckets` buckets, in slot order, without changing anything
    /// (`ipvsadm -L -c`, a few buckets per slow job). `f` says
    /// `Break` to stop before an entry it cannot take (a full buffer).
    /// Returns where to go on next time, or `None` once the table's end
    /// was reached. Entries do not move, so a scan spread over several
    /// calls sees every entry that stayed in the table throughout.
    pub fn scan(
        &self,
        from: usize,
        max_buckets: usize,
        mut f: impl FnMut(&ConnEntry) -> std::ops::ControlFlow<()>,
    ) -> Option<usize> {
        let slots = self.capacity();
        let end = from
            .saturating_add(max_buckets.saturating_mul(WAYS))
            .min(slots);
        let mut idx = from;
        while idx < end {
            let (b, w) = (idx / WAYS, idx % WAYS);
            if self.buckets[b].tags[w] != 0 && f(&self.buckets[b].entries[w]).is_break() {
                return Some(idx);
            }
            idx += 1;
        }
        (end < slots).then_some(end)
    }

    /// Visit the next `max_buckets` buckets and remove the entries for which
    /// `expired` says so, after `on_expire` did their accounting. Returns the
    /// number removed.
    pub fn sweep(
        &mut self,
        max_buckets: usize,
        mut expired: impl FnMut(&ConnEntry) -> bool,
        mut on_expire: impl FnMut(&ConnEntry),
    ) -> usize {
        let mut n = 0;
        for _ in 0..max_buckets.min(self.mask + 1) {
            let b = self.cursor;
            self.cursor = (self.cursor + 1) & self.mask;
            for way in 0..WAYS {
                if self.buckets[b].tags[way] != 0 {
                    let e = &self.buckets[b].entries[way];
                    if expired(e) {
                        on_expire(e);
                        self.buckets[b].tags[way] = 0;
                        self.len -= 1;
                        n += 1;
                    }
                }
            }
        }
        n
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lb::types::{Addr, Family};

    fn key(i: u32) -> FlowKey {
        FlowKey {
            client: Addr::v4(i.to_be_bytes()),
            vip: Addr::v4([192, 0, 2, 1]),
            cport: (i % 60000) as u16,
            vport: 80,
            proto: 6,
            family: Family::V4,
        }
    }

    fn entry(k: FlowKey, expires: u64) -> ConnEntry {
        ConnEntry {
            key: k,
            state: ConnState::Established,
            flags: 0,
            svc: ServiceId(0),
            rs: RsId(k.client.0[3] as u32),
            tpl_slot: 0,
            expires,
        }
    }

    #[test]
    fn input_only_table() {
        let f = |b| TcpFlags(b);
        let (syn, ack, fin, rst) = (TcpFlags::SYN, TcpFlags::ACK, TcpFlags::FIN, TcpFlags::RST);
        assert_eq!(tcp_transition(S::None, f(syn)), S::SynRecv);
        assert_eq!(tcp_transition(S::SynRecv, f(ack)), S::Established);
        assert_eq!(tcp_transition(S::Established, f(ack | fin)), S::FinWait);
        assert_eq!(tcp_transition(S::FinWait, f(ack)), S::FinWait);
        assert_eq!(tcp_transition(S::Established, f(rst | ack)), S::Close);
        assert_eq!(tcp_transition(S::SynRecv, f(rst)), S::SynRecv);
        assert_eq!(tcp_transition(S::None, f(ack)), S::Close);
        assert_eq!(tcp_transition(S::Close, f(syn)), S::SynRecv);
        assert_eq!(tcp_transition(S::Established, f(0x08)), S::Established);
        let t = Timeouts::default();
        assert_eq!(timeout_ms(S::Established, &t), 900_000);
        assert_eq!(timeout_ms(S::SynRecv, &t), 60_000);
        assert_eq!(timeout_ms(S::FinWait, &t), 120_000);
        assert_eq!(timeout_ms(S::Close, &t), 10_000);
        assert_eq!(timeout_ms(S::Udp, &t), 300_000);
    }

    #[test]
    fn ipvs_state_names() {
        use crate::lb::types::ip_proto;
        assert_eq!(S::SynRecv.ipvs_name(ip_proto::TCP), "SYN_RECV");
        assert_eq!(S::SynAck.ipvs_name(ip_proto::TCP), "SYNACK");
        assert_eq!(S::FinWait.ipvs_name(ip_proto::TCP), "FIN_WAIT");
        assert_eq!(S::Udp.ipvs_name(ip_proto::UDP), "UDP");
        assert_eq!(S::Udp.ipvs_name(ip_proto::SCTP), "NONE");
    }

    #[test]
    fn insert_find_remove_sweep() {
        let mut t = ConnTable::new(1024, 42);
        for i in 0..800 {
            let k = key(i);
            let h = t.hash(&k);
            assert_eq!(t.find(&k, h), None);
            let r = t.reserve(h, 0, |_| panic!("nothing expired")).unwrap();
            t.insert(r, entry(k, 100 + i as u64));
        }
        assert_eq!(t.len(), 800);
        for i in 0..800 {
            let k = key(i);
            let idx = t.find(&k, t.hash(&k)).unwrap();
            assert_eq!(t.entry(idx).key, k);
        }
        let idx = t.find(&key(5), t.hash(&key(5))).unwrap();
        t.remove(idx);
        assert_eq!(t.find(&key(5), t.hash(&key(5))), None);
        let mut gone = 0;
        let n = t.sweep(1 << 20, |e| e.expires <= 500, |_| gone += 1);
        assert_eq!(n, 401 - 1);
        assert_eq!(gone, n);
        assert_eq!(t.len(), 399);
    }

    #[test]
    fn full_pair_reclaims_expired_or_fails() {
        let mut t = ConnTable::new(WAYS, 1); // one bucket
        for i in 0..WAYS as u32 {
            let h = t.hash(&key(i));
            let r = t.reserve(h, 0, |_| {}).unwrap();
            t.insert(r, entry(key(i), 10 + i as u64));
        }
        let h = t.hash(&key(99));
        assert!(t.reserve(h, 5, |_| {}).is_none());
        let mut reclaimed = None;
        let r = t.reserve(h, 10, |e| reclaimed = Some(e.key)).unwrap();
        assert_eq!(reclaimed, Some(key(0)));
        t.insert(r, entry(key(99), 1000));
        assert!(t.find(&key(99), h).is_some());
        assert!(t.find(&key(0), t.hash(&key(0))).is_none());
    }

    #[test]
    fn embryonic_states() {
        let mut e = entry(key(1), 0);
        for (state, embryonic) in [
            (S::SynRecv, true),
            (S::SynAck, true),
            (S::Udp, true),
            (S::Established, false),
            (S::FinWait, false),
            (S::TimeWait, false),
            (S::Close, false),
            (S::None, false),
        ] {
            e.state = state;
            assert_eq!(e.is_embryonic(), embryonic, "{state:?}");
        }
        e.state = S::Udp;
        e.flags = F_CONFIRMED | F_TEMPLATE;
        assert!(!e.is_embryonic(), "a UDP flow with a second packet");
    }

    #[test]
    fn evict_takes_the_victim_closest_to_expiry_in_the_pair_only() {
        let mut t = ConnTable::new(WAYS, 1); // one bucket
        for i in 0..WAYS as u32 {
            let h = t.hash(&key(i));
            let r = t.reserve(h, 0, |_| {}).unwrap();
            let mut e = entry(key(i), 1000 - i as u64);
            // even: established; odd: SYN_RECV, expiring at 999, 997, 995, 993
            if i % 2 == 1 {
                e.state = S::SynRecv;
            }
            t.insert(r, e);
        }
        let h = t.hash(&key(99));
        assert!(t.reserve(h, 0, |_| panic!("nothing expired")).is_none());
        // no victim: nothing happens
        assert!(t.evict(h, |_| false, |_| panic!("no victim")).is_none());
        assert_eq!(t.len(), WAYS);
        let mut gone = None;
        let r = t
            .evict(h, |e| e.is_embryonic(), |e| gone = Some(e.key))
            .unwrap();
        assert_eq!(gone, Some(key(7)), "the SYN_RECV entry expiring first");
        assert_eq!(t.len(), WAYS - 1);
        t.insert(r, entry(key(99), 5000));
        assert!(t.find(&key(99), h).is_some());
        assert!(t.find(&key(7), t.hash(&key(7))).is_none());
        // established entries are never chosen
        for j in 0..3 {
            let r = t.evict(
                h,
                |e| e.is_embryonic(),
                |e| {
                    assert_eq!(e.state, S::SynRecv);
                },
            );
            t.insert(r.unwrap(), entry(key(100 + j), 5000));
        }
        assert!(t.evict(h, |e| e.is_embryonic(), |_| {}).is_none());
        for i in (0..WAYS as u32).step_by(2) {
            assert!(t.find(&key(i), t.hash(&key(i))).is_some());
        }
    }

    #[test]
    fn scan_in_slices_sees_every_entry_once_and_stops_where_told() {
        use std::ops::ControlFlow;
        let mut t = ConnTable::new(1024, 7);
        for i in 0..300 {
            let k = key(i);
            let h = t.hash(&k);
            let r = t.reserve(h, 0, |_| {}).unwrap();
            t.insert(r, entry(k, 1000));
        }
        // slices of 16 buckets: every entry exactly once
        let mut seen = Vec::new();
        let mut at = Some(0);
        let mut calls = 0;
        while let Some(from) = at {
            at = t.scan(from, 16, |e| {
                seen.push(e.key);
                ControlFlow::Continue(())
            });
            calls += 1;
        }
        assert_eq!(calls, t.capacity() / WAYS / 16);
        seen.sort_by_key(|k| k.client);
        seen.dedup();
        assert_eq!(seen.len(), 300);
        // a full buffer: stop before the 11th, resume there
        let mut n = 0;
        let next = t.scan(0, usize::MAX, |_| {
            if n == 10 {
                return ControlFlow::Break(());
            }
            n += 1;
            ControlFlow::Continue(())
        });
        let from = next.unwrap();
        let mut rest = 0;
        assert_eq!(
            t.scan(from, usize::MAX, |_| {
                rest += 1;
                ControlFlow::Continue(())
            }),
            None
        );
        assert_eq!(n + rest, 300);
    }

    #[test]
    fn reserve_with_uses_the_owners_expiry() {
        let mut t = ConnTable::new(WAYS, 1);
        for i in 0..WAYS as u32 {
            let h = t.hash(&key(i));
            let r = t.reserve(h, 0, |_| {}).unwrap();
            t.insert(r, entry(key(i), 1000));
        }
        let h = t.hash(&key(99));
        assert!(t.reserve(h, 999, |_| {}).is_none());
        let mut reclaimed = None;
        let r = t.reserve_with(h, |e| e.key == key(3), |e| reclaimed = Some(e.key));
        assert!(r.is_some());
        assert_eq!(reclaimed, Some(key(3)));
    }
}
