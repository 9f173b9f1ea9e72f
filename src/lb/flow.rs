//! The interface between the per-packet decision (`dataplane`) and the state
//! layer (connections, persistence, schedulers). The decision parses a frame,
//! finds its service and then asks a [`FlowState`] which real server gets it;
//! the state layer never sees bytes and the decision never sees tables.

use crate::lb::spec::Forwarding;
use crate::lb::types::{Addr, FlowKey, RsId, ServiceId, TcpFlags};
use crate::wire::ethernet::MacAddr;

/// Where a packet goes: a real server, the Ethernet address of its next
/// hop and how the packet reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The chosen real server.
    pub rs: RsId,
    /// The next hop's MAC address (static or resolved by ARP/ND): the
    /// server's own, or its gateway's for a tunnel server in another subnet.
    pub mac: MacAddr,
    /// Direct routing, or the tunnel to encapsulate the packet in.
    pub forward: Forwarding,
}

/// Why the state layer refused a packet. Each maps to its own drop counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StateDrop {
    /// The scheduler found no available server (all weight 0, no MAC, or
    /// over threshold).
    NoRealServer,
    /// A TCP packet that is not a SYN, with no connection entry, no
    /// persistence template and `sloppy_tcp` off.
    TcpNotSyn,
    /// The flow's server was removed and `expire_nodest_conn` is on.
    DestRemoved,
    /// The connection or persistence table was full and the documented
    /// fallback is to drop.
    TableFull,
}

/// What the per-packet decision needs from the state layer. One value per
/// worker; methods never block, allocate or take locks. Time is set by the
/// owner (once per burst) through the implementation's own clock API.
pub trait FlowState {
    /// A packet of flow `key` for service `svc`, unfragmented or the first
    /// fragment. `tcp` holds the TCP flags for TCP packets, `None` otherwise.
    /// Finds or creates the connection entry (and the persistence template for
    /// persistent services), advances TCP state and returns the target.
    fn assign(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop>;

    /// The target of an existing client→VIP connection, without creating or
    /// refreshing anything (used for ICMP errors whose embedded packet was
    /// sent by a real server; the caller reverses the embedded tuple first).
    fn lookup_conn(&self, key: &FlowKey) -> Option<Target>;

    /// The target of a live persistence template of `svc` for `client`,
    /// without creating anything (used for non-first fragments, which carry
    /// no ports). `None` when the service is not persistent or no template
    /// exists.
    fn lookup_template(&self, svc: ServiceId, client: Addr) -> Option<Target>;

    /// Burst pipeline, step 1: the hash [`FlowState::assign_hashed`] wants
    /// for `key`, with the table lines it will read prefetched. The burst
    /// decision calls it for every flow of a burst before assigning any, so
    /// the cache misses of a burst overlap. Default: no hash, no prefetch.
    #[inline(always)]
    fn prepare(&self, key: &FlowKey) -> u64 {
        let _ = key;
        0
    }

    /// Burst pipeline, step 2 (optional): with the lines of step 1 arrived,
    /// prefetch the entry the flow of service `svc` will hit (or, for a
    /// new flow, what creating it will read). Returns a hint for
    /// [`FlowState::assign_hashed`] (what the probe found, in the
    /// implementation's terms; 0: nothing). Default: nothing, 0.
    #[inline(always)]
    fn prefetch_entry(&self, svc: ServiceId, key: &FlowKey, hash: u64) -> u64 {
        let _ = (svc, key, hash);
        0
    }

    /// [`FlowState::assign`] with the hash [`FlowState::prepare`] returned
    /// for `key` and the hint [`FlowState::prefetch_entry`] returned (0 if
    /// it was not called). State may have changed since: an implementation
    /// uses the hint only if it can tell it still holds. Default: `assign`.
    #[inline(always)]
    fn assign_hashed(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        hash: u64,
        hint: u64,
        tcp: Option<TcpFlags>,
    ) -> Result<Target, StateDrop> {
        let _ = (hash, hint);
        self.assign(svc, key, tcp)
    }

    /// [`FlowState::assign_hashed`] that hands its result to `then`. An
    /// implementation may hand it over on each of its paths (found, new)
    /// instead of once from a result merged from both: the merged result
    /// lives in memory, built with narrow stores that the caller's copy of
    /// the target reads back whole, a failed store forwarding on every
    /// packet. Default: `then` of `assign_hashed`.
    #[inline(always)]
    fn assign_then(
        &mut self,
        svc: ServiceId,
        key: &FlowKey,
        hashed: (u64, u64),
        tcp: Option<TcpFlags>,
        then: impl OnAssigned,
    ) {
        then.assigned(self.assign_hashed(svc, key, hashed.0, hashed.1, tcp))
    }
}

/// What [`FlowState::assign_then`] hands its result to: the burst
/// decision's verdict writer. A trait rather than a closure so that its
/// one method is inlined into every path that calls it.
pub trait OnAssigned {
    /// Takes the result of the assignment (called once).
    fn assigned(self, assigned: Result<Target, StateDrop>);
}
