//! The per-worker connection table: 5-tuple → real server, TCP state,
//! expiry and the persistence template the connection holds a reference on.
//!
//! Layout: one entry per cache line, the key first, so a lookup of a
//! flow that is where it belongs touches one line. A hash picks the
//! flow's *home line* among a power of two; an entry lives in its home
//! line or one of the next [`WINDOW`]` - 1` (linear probing inside a
//! bounded window; the table ends with that many overflow lines, so a
//! probe never wraps). Every line also keeps, as a property of its
//! position, the *reach* of the entries homed there: a lookup probes lines
//! `home ..= home + reach` and no further, and a new flow whose home line
//! has reach 0 and another occupant is known to be new after one line.
//! Removing an entry lowers its home line's reach to the next entry still
//! there, so reach stays exact under churn. With [`LINES_PER_ENTRY`] home
//! lines per entry of capacity the table is at most half full: almost
//! every entry sits in its home line or the next (measured in
//! `benches/README.md`). The stored key carries a byte of the hash (the
//! tag, 0 = free line) and its line's distance from home in bits of its
//! tail word no flow uses (`FlowKey::placed`), so a probe of one line
//! is one compare of the key's words: two for an IPv4 flow, whose key is
//! packed in two (see [`FlowKey`]). The burst pipeline probes a flow's home line
//! ([`ConnTable::probe`]) some frames before it decides the flow; the
//! [`Probe`] it keeps stays good while the table's generation (bumped by
//! every insertion and removal) is unchanged, so the decision does not
//! probe again. Capacity is fixed at construction; nothing
//! allocates afterwards. The table is owned by one worker (RSS keeps a
//! flow on one queue), so it uses no atomics at all.
//!
//! Expiry is lazy (the owner checks `expires` on lookup) plus an incremental
//! [`ConnTable::sweep`] of a few groups of lines per call, and on insertion into a
//! full window expired entries of the window are reclaimed first. When the window is full of live entries,
//! [`ConnTable::reserve`] fails; the owner may then [`ConnTable::evict`] an
//! embryonic entry of the same window ([`ConnEntry::is_embryonic`]: the
//! `drop_entry` defence, never a scan beyond those [`WINDOW`] lines) or
//! apply its documented fallback (see `state.rs`).
//!
//! TCP follows IPVS's input-only state table (`tcp_states`, INPUT-ONLY rows),
//! since a DR director sees only client→server packets.
#![forbid(unsafe_code)]

use crate::lb::hash::hash_flow;
use crate::lb::spec::Timeouts;
use crate::lb::types::{FlowKey, RsId, ServiceId, TcpFlags};
use crate::sys::mem::{BigArray, MemError, Memory, Placement};

/// Lines a key may live in: its home line and the next `WINDOW - 1`.
pub const WINDOW: usize = 16;
/// Home lines allocated per entry of capacity: at most half of the lines
/// are in use when the table is full, so nearly every entry sits in its
/// home line or the next, and a window is almost never full first.
pub const LINES_PER_ENTRY: usize = 2;
/// Lines per step of [`ConnTable::scan`] and [`ConnTable::sweep`].
pub const GROUP: usize = 8;

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
    /// Every state, in discriminant order.
    pub const ALL: [ConnState; 12] = [
        S::None,
        S::Established,
        S::SynSent,
        S::SynRecv,
        S::FinWait,
        S::TimeWait,
        S::Close,
        S::CloseWait,
        S::LastAck,
        S::Listen,
        S::SynAck,
        S::Udp,
    ];

    /// The state whose discriminant is `b` (`state as u8` back).
    pub fn from_repr(b: u8) -> Option<ConnState> {
        Self::ALL.get(b as usize).copied()
    }

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

/// [`timeout_ms`] of every state, worked out once when the timeouts are
/// set: the per-packet refresh is one indexed load instead of a branch on
/// the state and a multiplication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateTimeouts([u64; STATES]);

/// Number of [`ConnState`]s.
const STATES: usize = ConnState::ALL.len();

impl StateTimeouts {
    /// The table for `t`.
    pub fn new(t: &Timeouts) -> Self {
        StateTimeouts(ConnState::ALL.map(|st| timeout_ms(st, t)))
    }

    /// Timeout of `state` in milliseconds.
    #[inline(always)]
    pub fn ms(&self, state: ConnState) -> u64 {
        self.0[state as usize]
    }
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
/// Entry flag: installed from a peer director's sync record and not yet
/// *adopted* — no packet of the flow has reached this worker since. Such
/// an entry is not counted in its server's active/inactive connections
/// (the control plane hands every record to every worker, and only the
/// one its flow reaches may count it); the first packet clears the flag
/// and counts it (see `lb::state`'s sync module).
pub const F_SYNCED: u8 = 4;

/// One connection, as the table hands it out (it stores it in a line
/// with its own bytes).
#[derive(Clone, Copy, Debug)]
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

/// One stored connection: the entry's fields, its hash tag, its
/// displacement and the reach, in one cache line. The key leads, carrying
/// tag and displacement in its tail word ([`FlowKey::placed`]), so a
/// lookup compares key, tag and place at once, in the first words of the
/// line it probes: two words for an IPv4 flow.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line {
    /// The key, placed: tagged with a byte of its hash (never 0 while the
    /// line is in use; 0 = free) and how far the line is from its home.
    key: FlowKey,
    state: ConnState,
    flags: u8,
    /// How far from this line (as a home line) its farthest entry sits:
    /// a lookup homed here probes lines `0..=reach` ahead and no further.
    /// A property of the position, kept whatever occupies the line.
    reach: u8,
    /// Packets of the entry modulo the sync period (IPVS's `in_pkts`):
    /// 1 after the creating packet, bumped by [`ConnTable::update_counted`]
    /// in the line it writes anyway.
    pkts: u8,
    svc: ServiceId,
    rs: RsId,
    tpl_slot: u32,
    expires: u64,
}

const _: () = assert!(std::mem::size_of::<Line>() == 64);

impl Line {
    const FREE: Line = Line {
        key: FlowKey::NONE,
        state: ConnState::None,
        flags: 0,
        reach: 0,
        pkts: 0,
        svc: ServiceId(0),
        rs: RsId(0),
        tpl_slot: 0,
        expires: 0,
    };

    #[inline(always)]
    fn entry(&self) -> ConnEntry {
        ConnEntry {
            key: self.key.unplaced(),
            state: self.state,
            flags: self.flags,
            svc: self.svc,
            rs: self.rs,
            tpl_slot: self.tpl_slot,
            expires: self.expires,
        }
    }

    #[inline(always)]
    fn in_use(&self) -> bool {
        self.key.tag() != 0
    }

    #[inline(always)]
    fn disp(&self) -> u8 {
        self.key.disp()
    }
}

/// The fixed-capacity table.
pub struct ConnTable {
    lines: BigArray<Line>,
    /// Home lines (a power of two); [`WINDOW`]` - 1` overflow lines follow
    /// them, so a probe never wraps.
    mask: usize,
    /// The configured capacity.
    limit: usize,
    seed: u64,
    len: usize,
    cursor: usize,
    /// Bumped (wrapping) by every insertion and removal: see [`Probe`].
    generation: u32,
}

impl std::fmt::Debug for ConnTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnTable")
            .field("capacity", &self.capacity())
            .field("len", &self.len)
            .finish()
    }
}

/// What a probe of a flow's home line found, tied to the table's
/// generation (bumped by every insertion and removal): a flow's line, or
/// the certainty that the flow is not in the table, holds only while the
/// generation is the same. The burst pipeline probes a flow some frames
/// before it decides it, and frames in between may add or remove entries.
/// `u64` inside, 0 meaning "look again", so it passes through
/// [`crate::lb::flow::FlowState`] as a plain word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe(u64);

impl Probe {
    /// Nothing known: look the flow up.
    pub const UNKNOWN: Probe = Probe(0);
    const ABSENT: u64 = 1;

    #[inline(always)]
    fn at(generation: u32, idx: usize) -> Probe {
        match u32::try_from(idx + 2) {
            Ok(at) => Probe((generation as u64) << 32 | at as u64),
            Err(_) => Probe::UNKNOWN, // beyond 2^32 lines: look again
        }
    }

    #[inline(always)]
    fn absent(generation: u32) -> Probe {
        Probe((generation as u64) << 32 | Self::ABSENT)
    }

    /// Whether the flow was found in its home line (when probed).
    #[inline(always)]
    pub fn is_found(self) -> bool {
        self.0 as u32 >= 2
    }

    /// The probe as a word, and back.
    #[inline(always)]
    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// See [`Probe::to_bits`].
    #[inline(always)]
    pub fn from_bits(b: u64) -> Probe {
        Probe(b)
    }

    /// `Some(found)` when the probe still holds at `generation`.
    #[inline(always)]
    fn found(self, generation: u32) -> Option<Option<usize>> {
        if self.0 as u32 == 0 || (self.0 >> 32) as u32 != generation {
            return None;
        }
        Some(self.index())
    }

    /// The line the flow was found in, whatever the generation.
    #[inline(always)]
    fn index(self) -> Option<usize> {
        (self.0 as u32).checked_sub(2).map(|i| i as usize)
    }
}

/// A position in the table where an entry may be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    idx: usize,
    tag: u8,
    disp: u8,
}

impl ConnTable {
    /// A table for `capacity` entries: at least [`LINES_PER_ENTRY`] home
    /// lines per entry (a power of two), so that a window rarely fills
    /// before the table does; `seed` keys the hash. On the heap.
    pub fn new(capacity: usize, seed: u64) -> Self {
        Self::new_in(capacity, seed, &Memory::heap()).expect("the heap has no backing to fail")
    }

    /// The bytes of a table for `capacity` entries: a 64-byte line per
    /// home line, [`LINES_PER_ENTRY`] home lines per entry (a power of
    /// two), and [`WINDOW`] overflow lines.
    pub fn bytes_for(capacity: usize) -> usize {
        (Self::homes_for(capacity) + WINDOW) * std::mem::size_of::<Line>()
    }

    fn homes_for(capacity: usize) -> usize {
        (capacity.max(1) * LINES_PER_ENTRY).next_power_of_two()
    }

    /// [`ConnTable::new`] in `mem`; fails only when `mem` has no room and
    /// allows no fall-back.
    pub fn new_in(capacity: usize, seed: u64, mem: &Memory) -> Result<Self, MemError> {
        let homes = Self::homes_for(capacity);
        let lines = BigArray::from_fn(mem, homes + WINDOW, |_| Line::FREE)?;
        Ok(ConnTable {
            lines,
            mask: homes - 1,
            limit: capacity.max(1),
            seed,
            len: 0,
            cursor: 0,
            generation: 0,
        })
    }

    /// Where the lines live, and their size in bytes.
    pub fn memory(&self) -> (&Placement, usize) {
        (self.lines.placement(), self.lines.bytes())
    }

    /// The entries the table was sized for ([`LINES_PER_ENTRY`] lines
    /// each); pressure marks and statistics count against it. A new flow
    /// is refused only when its window is full: rare at this many entries,
    /// more frequent beyond, certain only when all lines are in use.
    pub fn capacity(&self) -> usize {
        self.limit
    }

    /// Lines (entry positions) the table has, its overflow lines included:
    /// the range of the indices [`ConnTable::scan`] walks.
    pub fn lines(&self) -> usize {
        self.lines.len()
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

    /// The home line of a flow (where a lookup looks first).
    #[inline(always)]
    pub fn home_of(&self, key: &FlowKey) -> usize {
        self.hash(key) as usize & self.mask
    }

    #[inline(always)]
    fn home(&self, h: u64) -> (usize, u8) {
        let t = (h >> 56) as u8;
        (h as usize & self.mask, if t == 0 { 1 } else { t })
    }

    /// Prefetch the home line of hash `h` (burst pipeline, first step).
    #[inline(always)]
    pub fn prefetch(&self, h: u64) {
        crate::sys::prefetch(&self.lines[h as usize & self.mask]);
    }

    /// Second step, once the home line has arrived: what the home line
    /// says about `key`, as a [`Probe`] that [`ConnTable::find_probed`]
    /// trusts while no entry was inserted or removed since. Further lines
    /// to look at are prefetched.
    #[inline(always)]
    pub fn probe(&self, key: &FlowKey, h: u64) -> Probe {
        let (home, tag) = self.home(h);
        let l = &self.lines[home];
        if l.key == key.placed(tag, 0) {
            return Probe::at(self.generation, home);
        }
        let reach = l.reach;
        for d in 1..=reach as usize {
            crate::sys::prefetch(&self.lines[home + d]);
        }
        if reach == 0 {
            Probe::absent(self.generation)
        } else {
            Probe::UNKNOWN
        }
    }

    /// The template slot held by the entry a [`ConnTable::probe`] found in
    /// its home line, when that entry expired by `now`: retiring it will
    /// release that template (the burst pipeline prefetches the slot). A
    /// hint, read from the line the probe just compared: `None` otherwise.
    #[inline(always)]
    pub fn expired_template(&self, p: Probe, now: u64) -> Option<u32> {
        let l = self.lines.get(p.index()?)?;
        // the expiry first: a live entry (the common case) stops there
        (l.expires <= now && l.flags & F_TEMPLATE != 0).then_some(l.tpl_slot)
    }

    /// [`ConnTable::find`] that takes a [`ConnTable::probe`]'s word for it
    /// when the table has not changed since (no line looked at again).
    #[inline(always)]
    pub fn find_probed(&self, key: &FlowKey, h: u64, p: Probe) -> Option<usize> {
        match p.found(self.generation) {
            Some(found) => found,
            None => self.find(key, h),
        }
    }

    /// Find a flow with precomputed hash `h`: its entry index.
    #[inline(always)]
    pub fn find(&self, key: &FlowKey, h: u64) -> Option<usize> {
        let (home, tag) = self.home(h);
        let reach = self.lines[home].reach;
        (0..=reach).find_map(|d| {
            let i = home + d as usize;
            (self.lines[i].key == key.placed(tag, d)).then_some(i)
        })
    }

    /// The entry at `idx` (a copy: the line also holds the table's own
    /// bytes).
    #[inline(always)]
    pub fn entry(&self, idx: usize) -> ConnEntry {
        self.lines[idx].entry()
    }

    /// Record a packet of the entry at `idx`: its new state, flags added,
    /// its new expiry.
    #[inline(always)]
    pub fn update(&mut self, idx: usize, state: ConnState, add_flags: u8, expires: u64) {
        let l = &mut self.lines[idx];
        l.state = state;
        l.flags |= add_flags;
        l.expires = expires;
    }

    /// [`ConnTable::update`] that also counts the packet: the entry's
    /// packet count goes up by one modulo `period` (1..=255; the count
    /// wraps to 0 on reaching it) and the new count is returned. The
    /// count lives in the line `update` writes, so no other line is
    /// touched.
    #[inline(always)]
    pub fn update_counted(
        &mut self,
        idx: usize,
        state: ConnState,
        add_flags: u8,
        expires: u64,
        period: u8,
    ) -> u8 {
        let l = &mut self.lines[idx];
        l.state = state;
        l.flags |= add_flags;
        l.expires = expires;
        let n = l.pkts.wrapping_add(1);
        l.pkts = if n >= period { 0 } else { n };
        l.pkts
    }

    /// Clear `flags` of the entry at `idx`.
    #[inline]
    pub fn clear_flags(&mut self, idx: usize, flags: u8) {
        self.lines[idx].flags &= !flags;
    }

    /// The packet count of the entry at `idx` (modulo the period it was
    /// counted with).
    #[inline]
    pub fn pkts(&self, idx: usize) -> u8 {
        self.lines[idx].pkts
    }

    /// Overwrite the entry at `idx` with `e` (same key: a flow whose
    /// server, state, flags or expiry a sync record changed), and set its
    /// packet count to `pkts`. The line stays where it is.
    #[inline]
    pub fn rewrite(&mut self, idx: usize, e: &ConnEntry, pkts: u8) {
        let l = &mut self.lines[idx];
        debug_assert!(l.in_use() && l.key.unplaced() == e.key);
        l.state = e.state;
        l.flags = e.flags;
        l.svc = e.svc;
        l.rs = e.rs;
        l.tpl_slot = e.tpl_slot;
        l.expires = e.expires;
        l.pkts = pkts;
    }

    /// Remove the entry at `idx` (the caller has done its accounting).
    #[inline]
    pub fn remove(&mut self, idx: usize) {
        let l = &mut self.lines[idx];
        if !l.in_use() {
            return;
        }
        let disp = l.disp();
        l.key = l.key.unplaced();
        self.len -= 1;
        self.generation = self.generation.wrapping_add(1);
        let home = idx - disp as usize;
        if disp != 0 && self.lines[home].reach == disp {
            // the farthest entry of its home line left: find the next one
            let reach = (1..disp)
                .rev()
                .find(|&d| {
                    let o = &self.lines[home + d as usize];
                    o.in_use() && o.disp() == d
                })
                .unwrap_or(0);
            self.lines[home].reach = reach;
        }
    }

    /// Find a free line for a new flow with hash `h` in its window,
    /// reclaiming an expired entry there (`on_expire` does its accounting)
    /// if the window is full. `None`: full of live entries.
    #[inline]
    pub fn reserve(
        &mut self,
        h: u64,
        now: u64,
        on_expire: impl FnMut(&ConnEntry),
    ) -> Option<Reserved> {
        self.reserve_with(h, |e| now >= e.expires, on_expire)
    }

    /// [`ConnTable::reserve`] with the owner's notion of expiry: if the
    /// window is full, the first entry of the window for which
    /// `expired` says so is reclaimed (after `on_expire`).
    #[inline]
    pub fn reserve_with(
        &mut self,
        h: u64,
        mut expired: impl FnMut(&ConnEntry) -> bool,
        mut on_expire: impl FnMut(&ConnEntry),
    ) -> Option<Reserved> {
        let (home, tag) = self.home(h);
        if let Some(d) = (0..WINDOW).find(|&d| !self.lines[home + d].in_use()) {
            return Some(Reserved {
                idx: home + d,
                tag,
                disp: d as u8,
            });
        }
        (0..WINDOW)
            .find(|&d| self.reclaim(home + d, &mut expired, &mut on_expire))
            .map(|d| Reserved {
                idx: home + d,
                tag,
                disp: d as u8,
            })
    }

    /// Remove the entry at `idx` if it is in use and `expired` says so
    /// (after `on_expire` did its accounting); whether it did.
    #[inline]
    fn reclaim(
        &mut self,
        idx: usize,
        expired: &mut impl FnMut(&ConnEntry) -> bool,
        on_expire: &mut impl FnMut(&ConnEntry),
    ) -> bool {
        if !self.lines[idx].in_use() {
            return false;
        }
        let e = self.lines[idx].entry();
        if !expired(&e) {
            return false;
        }
        on_expire(&e);
        self.remove(idx);
        true
    }

    /// Make room for a new flow with hash `h` whose window is full of live
    /// entries (after [`ConnTable::reserve`] failed): of the
    /// entries of the window for which `victim` says yes, evict the one
    /// closest to expiry (for SYN_RECV entries: the handshake that has
    /// waited longest), after `on_evict` did its accounting. Looks at those
    /// [`WINDOW`] lines only, never further. `None`: no victim there.
    #[inline]
    pub fn evict(
        &mut self,
        h: u64,
        mut victim: impl FnMut(&ConnEntry) -> bool,
        on_evict: impl FnOnce(&ConnEntry),
    ) -> Option<Reserved> {
        let (home, tag) = self.home(h);
        let mut best: Option<(usize, ConnEntry)> = None;
        for idx in home..home + WINDOW {
            if !self.lines[idx].in_use() {
                continue;
            }
            let e = self.lines[idx].entry();
            if victim(&e) && best.map_or(true, |(_, b)| e.expires < b.expires) {
                best = Some((idx, e));
            }
        }
        let (idx, e) = best?;
        on_evict(&e);
        self.remove(idx);
        Some(Reserved {
            idx,
            tag,
            disp: (idx - home) as u8,
        })
    }

    /// Write a new entry where [`ConnTable::reserve`] said; returns its
    /// index. Its packet count starts at 1: the creating packet counts.
    #[inline]
    pub fn insert(&mut self, r: Reserved, e: ConnEntry) -> usize {
        self.insert_counted(r, e, 1)
    }

    /// [`ConnTable::insert`] with the packet count to start from (an
    /// entry installed from a sync record starts at the sync threshold,
    /// as IPVS sets `in_pkts`, so its next send is a period away).
    #[inline]
    pub fn insert_counted(&mut self, r: Reserved, e: ConnEntry, pkts: u8) -> usize {
        let reach = self.lines[r.idx].reach;
        debug_assert!(!self.lines[r.idx].in_use());
        self.generation = self.generation.wrapping_add(1);
        self.lines[r.idx] = Line {
            // unplaced first: an entry copied out of a table is already
            key: e.key.unplaced().placed(r.tag, r.disp),
            state: e.state,
            flags: e.flags,
            reach,
            pkts,
            svc: e.svc,
            rs: e.rs,
            tpl_slot: e.tpl_slot,
            expires: e.expires,
        };
        let home = &mut self.lines[r.idx - r.disp as usize];
        home.reach = home.reach.max(r.disp);
        self.len += 1;
        r.idx
    }

    /// Visit the entries in use from line index `from` on, at most
    /// `max_groups` groups of [`GROUP`] lines, in line order, without
    /// changing anything (`ipvsadm -L -c`, a few groups per slow job). `f`
    /// says `Break` to stop before an entry it cannot take (a full buffer).
    /// Returns where to go on next time, or `None` once the table's end
    /// was reached. Entries do not move, so a scan spread over several
    /// calls sees every entry that stayed in the table throughout.
    pub fn scan(
        &self,
        from: usize,
        max_groups: usize,
        mut f: impl FnMut(&ConnEntry) -> std::ops::ControlFlow<()>,
    ) -> Option<usize> {
        let n = self.lines.len();
        let end = from.saturating_add(max_groups.saturating_mul(GROUP)).min(n);
        for idx in from..end {
            let l = &self.lines[idx];
            if l.in_use() && f(&l.entry()).is_break() {
                return Some(idx);
            }
        }
        (end < n).then_some(end)
    }

    /// Visit the next `max_groups` groups of [`GROUP`] lines and remove the
    /// entries for which `expired` says so, after `on_expire` did their
    /// accounting. `ahead` sees every entry of a group before any of the
    /// group is removed (to prefetch what their removal will touch).
    /// Returns the number removed.
    pub fn sweep(
        &mut self,
        max_groups: usize,
        mut ahead: impl FnMut(&ConnEntry),
        mut expired: impl FnMut(&ConnEntry) -> bool,
        mut on_expire: impl FnMut(&ConnEntry),
    ) -> usize {
        let n = self.lines.len();
        let mut removed = 0;
        for _ in 0..max_groups.min(n.div_ceil(GROUP)) {
            let start = self.cursor;
            let end = n.min(start + GROUP);
            self.cursor = if end == n { 0 } else { end };
            // first what the group's removals will touch elsewhere, so
            // those misses overlap instead of stalling one by one
            for l in &self.lines[start..end] {
                if l.in_use() {
                    ahead(&l.entry());
                }
            }
            for idx in start..end {
                if self.reclaim(idx, &mut expired, &mut on_expire) {
                    removed += 1;
                }
            }
        }
        removed
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::lb::types::{Addr, Family};

    fn key(i: u32) -> FlowKey {
        FlowKey::new(
            Family::V4,
            6,
            Addr::v4(i.to_be_bytes()),
            (i % 60000) as u16,
            Addr::v4([192, 0, 2, 1]),
            80,
        )
    }

    fn entry(k: FlowKey, expires: u64) -> ConnEntry {
        ConnEntry {
            key: k,
            state: ConnState::Established,
            flags: 0,
            svc: ServiceId(0),
            rs: RsId(k.client().0[3] as u32),
            tpl_slot: 0,
            expires,
        }
    }

    #[test]
    fn bytes_for_is_what_a_table_takes() {
        for cap in [1, 1000, 1024, 65_536] {
            let t = ConnTable::new(cap, 1);
            assert_eq!(t.memory().1, ConnTable::bytes_for(cap));
            assert_eq!(t.memory().0, &Placement::Heap);
        }
        assert_eq!(ConnTable::bytes_for(1 << 20), 64 * ((2 << 20) + 16));
    }

    #[test]
    fn every_state_comes_back_from_its_discriminant() {
        for (i, st) in ConnState::ALL.into_iter().enumerate() {
            assert_eq!(st as usize, i);
            assert_eq!(ConnState::from_repr(i as u8), Some(st));
        }
        assert_eq!(ConnState::from_repr(ConnState::ALL.len() as u8), None);
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
        let table = StateTimeouts::new(&t);
        for st in ConnState::ALL {
            assert_eq!(table.ms(st), timeout_ms(st, &t));
        }
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
    fn a_probe_holds_only_while_no_entry_comes_or_goes() {
        let mut t = ConnTable::new(64, 7);
        let (a, b) = (key(1), key(2));
        let (ha, hb) = (t.hash(&a), t.hash(&b));
        // absent: believed while nothing changed, looked up again after
        let absent = t.probe(&a, ha);
        assert_eq!(absent.found(t.generation), Some(None));
        assert_eq!(t.find_probed(&a, ha, absent), None);
        let r = t.reserve(ha, 0, |_| unreachable!()).unwrap();
        let ia = t.insert(r, entry(a, 100));
        assert_eq!(t.find_probed(&a, ha, absent), Some(ia));
        // found: its line, until the entry leaves and another takes it
        let found = t.probe(&a, ha);
        assert_eq!(t.find_probed(&a, ha, found), Some(ia));
        t.remove(ia);
        assert_eq!(t.find_probed(&a, ha, found), None);
        let r = t.reserve(hb, 0, |_| unreachable!()).unwrap();
        let ib = t.insert(r, entry(b, 100));
        assert_eq!(t.find_probed(&a, ha, found), None);
        assert_eq!(t.find_probed(&b, hb, Probe::UNKNOWN), Some(ib));
        // updates keep a probe valid
        let pb = t.probe(&b, hb);
        t.update(ib, S::Established, F_CONFIRMED, 200);
        assert_eq!(pb.found(t.generation), Some(Some(ib)));
        assert_eq!(Probe::from_bits(pb.to_bits()), pb);
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
        let n = t.sweep(1 << 20, |_| {}, |e| e.expires <= 500, |_| gone += 1);
        assert_eq!(n, 401 - 1);
        assert_eq!(gone, n);
        assert_eq!(t.len(), 399);
    }

    /// Keys whose home line is `home` in `t`, as many as asked for.
    fn homed_at(t: &ConnTable, home: usize, n: usize) -> Vec<FlowKey> {
        (1000..)
            .map(key)
            .filter(|k| t.home_of(k) == home)
            .take(n)
            .collect()
    }

    /// A table whose window at line 5 is full: `WINDOW` keys homed there
    /// with expiry `exp(i)`, in lines 5.. in order.
    fn full_window(exp: impl Fn(usize) -> ConnEntry) -> (ConnTable, Vec<FlowKey>, u64) {
        let mut t = ConnTable::new(1024, 1);
        let keys = homed_at(&t, 5, WINDOW + 1);
        for (i, k) in keys[..WINDOW].iter().enumerate() {
            let h = t.hash(k);
            let r = t.reserve(h, 0, |_| panic!("nothing expired")).unwrap();
            let mut e = exp(i);
            e.key = *k;
            assert_eq!(t.insert(r, e), 5 + i, "linear probing in the window");
        }
        let h = t.hash(&keys[WINDOW]);
        (t, keys, h)
    }

    #[test]
    fn reach_grows_and_shrinks_exactly() {
        let mut t = ConnTable::new(1024, 3);
        let ks = homed_at(&t, 9, 3);
        let idx: Vec<usize> = ks
            .iter()
            .map(|k| {
                let h = t.hash(k);
                let r = t.reserve(h, 0, |_| {}).unwrap();
                t.insert(r, entry(*k, 100))
            })
            .collect();
        assert_eq!(idx, [9, 10, 11]);
        assert_eq!(t.lines[9].reach, 2);
        // a key homed at 10 goes past 11
        let other = homed_at(&t, 10, 1)[0];
        let r = t.reserve(t.hash(&other), 0, |_| {}).unwrap();
        assert_eq!(t.insert(r, entry(other, 100)), 12);
        assert_eq!(t.lines[10].reach, 2);
        t.remove(idx[2]);
        assert_eq!(
            t.lines[9].reach, 1,
            "the farthest left: the next one counts"
        );
        t.remove(idx[0]);
        assert_eq!(t.lines[9].reach, 1, "a nearer one left: unchanged");
        t.remove(idx[1]);
        assert_eq!(t.lines[9].reach, 0);
        assert!(t.find(&other, t.hash(&other)).is_some());
        for k in &ks {
            assert_eq!(t.find(k, t.hash(k)), None);
        }
        // a flow homed at 9 now finds line 9 free again
        let r = t.reserve(t.hash(&ks[1]), 0, |_| {}).unwrap();
        assert_eq!(t.insert(r, entry(ks[1], 100)), 9);
    }

    #[test]
    fn holds_at_least_its_capacity() {
        for seed in 0..20 {
            let mut t = ConnTable::new(1000, seed);
            assert_eq!(t.capacity(), 1000);
            assert!(t.lines() >= 2000 + WINDOW);
            let mut n = 0;
            for i in 0..2000 {
                let k = key(i);
                let h = t.hash(&k);
                if let Some(r) = t.reserve(h, 0, |_| panic!("nothing expired")) {
                    t.insert(r, entry(k, 1000));
                    n += 1;
                }
                if n == 1000 {
                    break;
                }
            }
            assert_eq!((n, t.len()), (1000, 1000), "seed {seed}");
        }
    }

    #[test]
    fn full_window_reclaims_expired_or_fails() {
        let (mut t, keys, h) = full_window(|i| entry(key(0), 10 + i as u64));
        assert!(t.reserve(h, 5, |_| {}).is_none());
        let mut reclaimed = None;
        let r = t.reserve(h, 10, |e| reclaimed = Some(e.key)).unwrap();
        assert_eq!(reclaimed, Some(keys[0]), "the first expired line");
        t.insert(r, entry(keys[WINDOW], 1000));
        assert_eq!(t.find(&keys[WINDOW], h), Some(5));
        assert!(t.find(&keys[0], t.hash(&keys[0])).is_none());
        for k in &keys[1..] {
            assert!(t.find(k, t.hash(k)).is_some());
        }
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
    fn evict_takes_the_victim_closest_to_expiry_in_the_window_only() {
        // even: established; odd: SYN_RECV, expiring at 999, 997, …
        let (mut t, keys, h) = full_window(|i| {
            let mut e = entry(key(0), 1000 - i as u64);
            if i % 2 == 1 {
                e.state = S::SynRecv;
            }
            e
        });
        // a SYN_RECV entry outside the window, closer to expiry: not taken
        let out = homed_at(&t, 600, 1)[0];
        let r = t.reserve(t.hash(&out), 0, |_| {}).unwrap();
        let mut e = entry(out, 1);
        e.state = S::SynRecv;
        t.insert(r, e);
        assert!(t.reserve(h, 0, |_| panic!("nothing expired")).is_none());
        // no victim: nothing happens
        assert!(t.evict(h, |_| false, |_| panic!("no victim")).is_none());
        assert_eq!(t.len(), WINDOW + 1);
        let mut gone = None;
        let r = t
            .evict(h, |e| e.is_embryonic(), |e| gone = Some(e.key))
            .unwrap();
        assert_eq!(
            gone,
            Some(keys[WINDOW - 1]),
            "the SYN_RECV entry expiring first"
        );
        assert_eq!(t.len(), WINDOW);
        t.insert(r, entry(keys[WINDOW], 5000));
        assert!(t.find(&keys[WINDOW], h).is_some());
        assert!(t
            .find(&keys[WINDOW - 1], t.hash(&keys[WINDOW - 1]))
            .is_none());
        // established entries are never chosen
        for j in 0..WINDOW as u32 / 2 - 1 {
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
        for k in keys[..WINDOW].iter().step_by(2).chain([&out]) {
            assert!(t.find(k, t.hash(k)).is_some());
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
        // slices of 16 groups: every entry exactly once
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
        assert_eq!(calls, t.lines().div_ceil(GROUP * 16));
        seen.sort_by_key(|k| k.client());
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
    fn packet_count_starts_at_one_and_wraps_at_the_period() {
        let mut t = ConnTable::new(64, 5);
        let k = key(1);
        let r = t.reserve(t.hash(&k), 0, |_| {}).unwrap();
        let idx = t.insert(r, entry(k, 10));
        assert_eq!(t.pkts(idx), 1, "the creating packet counts");
        let seen: Vec<u8> = (0..6)
            .map(|_| t.update_counted(idx, S::Established, 0, 20, 4))
            .collect();
        assert_eq!(seen, [2, 3, 0, 1, 2, 3]);
        assert_eq!(t.entry(idx).expires, 20);
        // the largest period a byte holds
        t.rewrite(idx, &entry(k, 30), 253);
        assert_eq!(t.update_counted(idx, S::Established, 0, 40, 255), 254);
        assert_eq!(t.update_counted(idx, S::Established, 0, 40, 255), 0);
        assert_eq!(t.entry(idx).expires, 40);
    }

    #[test]
    fn reserve_with_uses_the_owners_expiry() {
        let (mut t, keys, h) = full_window(|_| entry(key(0), 1000));
        assert!(t.reserve(h, 999, |_| {}).is_none());
        let mut reclaimed = None;
        let r = t.reserve_with(h, |e| e.key == keys[3], |e| reclaimed = Some(e.key));
        assert!(r.is_some());
        assert_eq!(reclaimed, Some(keys[3]));
    }

    /// Random inserts and removals against a map: every key inserted and
    /// not removed is found, every removed one is not, and each home
    /// line's reach is exactly the farthest entry homed there.
    #[test]
    fn churn_against_a_model() {
        use std::collections::HashMap;
        let mut t = ConnTable::new(4096, 9);
        let mut model: HashMap<u32, usize> = HashMap::new();
        let mut x = 0x2545_f491u32;
        for step in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let id = x % 12_000;
            let k = key(id);
            let h = t.hash(&k);
            match model.get(&id) {
                Some(&idx) => {
                    assert_eq!(t.find(&k, h), Some(idx), "step {step}");
                    t.remove(idx);
                    model.remove(&id);
                }
                None => {
                    assert_eq!(t.find(&k, h), None, "step {step}");
                    if let Some(r) = t.reserve(h, 0, |_| panic!("nothing expires")) {
                        model.insert(id, t.insert(r, entry(k, 1)));
                    }
                }
            }
        }
        assert_eq!(t.len(), model.len());
        for home in 0..=t.mask {
            let far = (0..WINDOW)
                .filter(|&d| {
                    let l = &t.lines[home + d];
                    l.in_use() && l.disp() as usize == d
                })
                .max()
                .unwrap_or(0);
            assert_eq!(t.lines[home].reach as usize, far, "home {home}");
        }
    }
}
