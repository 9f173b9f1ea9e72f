//! What the decision tells the worker to do with a frame, and why a frame
//! was dropped.
#![forbid(unsafe_code)]

use crate::lb::flow::{StateDrop, Target};

/// A change of the frame's 802.1Q tag that alters its length; the worker
/// applies it on the mbuf (see [`crate::dataplane::rewrite`]). Tag changes
/// that keep the length (a new VLAN id in an existing tag) are already done
/// in place by the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VlanAction {
    /// Leave the frame's length as it is.
    None,
    /// Insert a tag with this TCI after the MAC addresses (4 bytes longer).
    Insert(u16),
    /// Remove the tag after the MAC addresses (4 bytes shorter).
    Remove,
}

/// The verdict for one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Send the frame on the TX port to `target`. The MAC addresses are
    /// already rewritten (to the next hop's); the IP packet is untouched;
    /// apply `vlan` first. When `target.forward` is a tunnel, the worker
    /// then encapsulates (the packet is known to fit the TX MTU once
    /// encapsulated): [`crate::dataplane::tunnel::encapsulate`].
    Forward {
        /// The real server.
        target: Target,
        /// A length-changing tag operation still to apply.
        vlan: VlanAction,
        /// The IP packet's length (header and payload; no Ethernet header,
        /// tag or padding): what IPVS counts as incoming bytes.
        ip_len: u32,
    },
    /// As `Forward` to a tunnel server, but the packet is IPv4 without DF
    /// and would not fit the TX MTU once encapsulated: the worker
    /// encapsulates, then sends the outer packet as IPv4 fragments
    /// ([`crate::dataplane::fragment`]), as IPVS does. Kept apart from
    /// `Forward` so the common case pays nothing for it.
    Fragment {
        /// The real server (a tunnel server).
        target: Target,
        /// A length-changing tag operation still to apply.
        vlan: VlanAction,
        /// The IP packet's length, as for `Forward`.
        ip_len: u32,
    },
    /// Send the frame back out of the RX port: an ARP reply, a neighbour
    /// advertisement or an echo reply was built in place. `len` is the new
    /// frame length (never more than the received length): trim the mbuf to
    /// it.
    Reply {
        /// New frame length in bytes.
        len: usize,
    },
    /// The packet is for a tunnel server but would not fit the TX MTU once
    /// encapsulated: an ICMP fragmentation-needed / packet-too-big for its
    /// sender was built in place (see [`crate::dataplane::tunnel`]). Send it
    /// back out of the RX port as a `Reply` of `len` bytes, and count
    /// [`DropReason::TunnelTooBig`]: the packet itself is not forwarded.
    TooBig {
        /// New frame length in bytes (never more than the received length).
        len: usize,
    },
    /// An ARP reply, gratuitous ARP or neighbour advertisement: information
    /// for the control plane's neighbour cache (one-armed setups see real
    /// servers' answers on the RX port). Hand it over, or free it and count.
    Neighbour,
    /// Free the frame and count the reason.
    Drop(DropReason),
}

macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $name:ident = $text:literal, )*) => {
        /// Why a frame was dropped. One counter per value: the worker keeps
        /// `[u64; DropReason::COUNT]` indexed by [`DropReason::as_index`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $name, )*
        }

        impl DropReason {
            /// Every reason, in index order.
            pub const ALL: &'static [DropReason] = &[$(DropReason::$name,)*];
            /// Number of reasons.
            pub const COUNT: usize = Self::ALL.len();

            /// The counter index of this reason (`0..COUNT`).
            #[inline(always)]
            pub const fn as_index(self) -> usize {
                self as u8 as usize
            }

            /// A stable snake_case name for statistics output.
            pub const fn name(self) -> &'static str {
                match self {
                    $(DropReason::$name => $text,)*
                }
            }
        }
    };
}

drop_reasons! {
    /// Destination MAC is neither the RX port's nor an accepted group
    /// address, or the destination IP is not a VIP and no mark rule matched.
    NotForUs = "not_for_us",
    /// Shorter than an Ethernet header.
    TruncatedEthernet = "truncated_ethernet",
    /// An 802.1Q tag cut short.
    TruncatedVlan = "truncated_vlan",
    /// Two VLAN tags (QinQ / 802.1ad): not supported.
    QinQ = "qinq",
    /// An EtherType other than IPv4, IPv6 or ARP.
    UnknownEthertype = "unknown_ethertype",
    /// ARP that is not Ethernet/IPv4, truncated, or an unknown operation.
    ArpMalformed = "arp_malformed",
    /// ARP request for an address that is not a VIP answering ARP.
    ArpNotForVip = "arp_not_for_vip",
    /// IPv4 header truncated or shorter than its total length says.
    Ipv4Truncated = "ipv4_truncated",
    /// IPv4 version or header length invalid.
    Ipv4Malformed = "ipv4_malformed",
    /// IPv4 header checksum wrong.
    Ipv4BadChecksum = "ipv4_bad_checksum",
    /// IPv6 header or extension headers truncated.
    Ipv6Truncated = "ipv6_truncated",
    /// IPv6 version wrong, or too many / repeated extension headers.
    Ipv6Malformed = "ipv6_malformed",
    /// TTL or hop limit 0 (pmdlb does not decrement it, as IPVS DR).
    TtlExpired = "ttl_expired",
    /// TCP header shorter than 20 bytes, data offset below 5, or a header
    /// (options included) longer than the IP payload. Here and below, the
    /// IP payload is what the IPv4 total length or IPv6 payload length
    /// says, not the rest of the frame (which may carry Ethernet padding).
    TcpBadHeader = "tcp_bad_header",
    /// UDP header shorter than 8 bytes, or a length field below 8 or (in an
    /// unfragmented datagram) longer than the IP payload.
    UdpBadLength = "udp_bad_length",
    /// SCTP: the IP payload is shorter than the 12-byte common header.
    SctpTruncated = "sctp_truncated",
    /// An IP protocol pmdlb does not balance (not TCP/UDP/SCTP/ICMP).
    UnknownL4Proto = "unknown_l4_proto",
    /// To a VIP, but no service matches the protocol and port.
    NoService = "no_service",
    /// A later fragment (no ports) with no persistence template to follow.
    NonFirstFragment = "non_first_fragment",
    /// A fragmented ICMP/ICMPv6 message (neither answered nor relayed).
    IcmpFragment = "icmp_fragment",
    /// ICMP/ICMPv6 truncated, or an error whose inner packet is unusable.
    IcmpMalformed = "icmp_malformed",
    /// ICMP/ICMPv6 checksum wrong (checked on echo requests and ND).
    IcmpBadChecksum = "icmp_bad_checksum",
    /// ICMP type pmdlb neither answers nor relays, or echo to a VIP that
    /// does not answer ping.
    IcmpNotHandled = "icmp_not_handled",
    /// ICMP error whose inner packet matches no connection.
    IcmpNoConnection = "icmp_no_connection",
    /// Neighbour solicitation invalid (hop limit not 255, code not 0, bad options).
    NdMalformed = "nd_malformed",
    /// Neighbour solicitation for an address that is not a VIP answering it.
    NdNotForVip = "nd_not_for_vip",
    /// State layer: no real server available.
    NoRealServer = "no_real_server",
    /// State layer: TCP without SYN and no connection or template.
    TcpNotSyn = "tcp_not_syn",
    /// State layer: the connection's server was removed.
    DestRemoved = "dest_removed",
    /// State layer: connection or persistence table full.
    TableFull = "table_full",
    /// For a tunnel server, too big for the TX MTU once encapsulated: an
    /// ICMP error went back instead ([`Verdict::TooBig`]), or none is due
    /// (the packet is an ICMP error or a non-first fragment).
    TunnelTooBig = "tunnel_too_big",
    /// For a tunnel server, IPv4 without DF too big once encapsulated
    /// ([`Verdict::Fragment`]), and the outer packet could not be sent as
    /// fragments: the mbuf pool had none left for them, a fragment did not
    /// fit one, or it would take more than
    /// [`crate::dataplane::fragment::MAX_FRAGMENTS`]. Counted by the worker.
    TunnelFragmentFailed = "tunnel_fragment_failed",
}

impl From<StateDrop> for DropReason {
    #[inline]
    fn from(d: StateDrop) -> Self {
        match d {
            StateDrop::NoRealServer => DropReason::NoRealServer,
            StateDrop::TcpNotSyn => DropReason::TcpNotSyn,
            StateDrop::DestRemoved => DropReason::DestRemoved,
            StateDrop::TableFull => DropReason::TableFull,
        }
    }
}

/// Per-worker drop counters, one per [`DropReason`]. Plain writes by the
/// owning worker; the control plane reads a published copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropCounters {
    /// Count per reason, indexed by [`DropReason::as_index`].
    pub counts: [u64; DropReason::COUNT],
}

impl Default for DropCounters {
    fn default() -> Self {
        DropCounters {
            counts: [0; DropReason::COUNT],
        }
    }
}

impl DropCounters {
    /// Counts one drop.
    #[inline(always)]
    pub fn inc(&mut self, r: DropReason) {
        // `as_index() < COUNT` by construction; `get_mut` keeps it panic-free.
        if let Some(c) = self.counts.get_mut(r.as_index()) {
            *c += 1;
        }
    }

    /// The count of one reason.
    #[inline]
    pub fn get(&self, r: DropReason) -> u64 {
        self.counts.get(r.as_index()).copied().unwrap_or(0)
    }

    /// `(name, count)` for every reason, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL.iter().map(|r| (r.name(), self.get(*r)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_dense_and_names_unique() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.as_index(), i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn state_drops_map_one_to_one() {
        let all = [
            StateDrop::NoRealServer,
            StateDrop::TcpNotSyn,
            StateDrop::DestRemoved,
            StateDrop::TableFull,
        ];
        let mut mapped: Vec<DropReason> = all.iter().map(|&d| d.into()).collect();
        mapped.dedup();
        assert_eq!(mapped.len(), 4);
    }

    #[test]
    fn counters() {
        let mut c = DropCounters::default();
        c.inc(DropReason::NoService);
        c.inc(DropReason::NoService);
        c.inc(DropReason::TableFull);
        assert_eq!(c.get(DropReason::NoService), 2);
        assert_eq!(c.iter().filter(|(_, n)| *n > 0).count(), 2);
        assert_eq!(DropReason::QinQ.name(), "qinq");
    }
}
