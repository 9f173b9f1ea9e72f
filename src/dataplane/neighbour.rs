//! Builders for the frames the control plane sends when a VIP comes up:
//! gratuitous ARP (IPv4) and unsolicited neighbour advertisement (IPv6), so
//! routers on the RX segment learn (or update) the VIP's MAC address.
#![forbid(unsafe_code)]

use crate::wire::ethernet::{self, EtherType, MacAddr};
use crate::wire::{arp, icmpv6, ipv6, IpProtocol};

/// All-nodes multicast address ff02::1.
pub const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// Ethernet address of ff02::1.
pub const ALL_NODES_MAC: MacAddr = MacAddr([0x33, 0x33, 0, 0, 0, 1]);

/// Length of a gratuitous ARP frame (untagged; +4 with a tag). The NIC pads
/// it to the 60-byte minimum.
pub const GARP_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;
/// Length of an unsolicited NA frame (untagged; +4 with a tag).
pub const UNSOLICITED_NA_LEN: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;

/// Writes the Ethernet header (and tag) and returns the L3 offset, or
/// `None` if `buf` is shorter than `needed` L3 bytes after it.
fn eth_header(
    buf: &mut [u8],
    dst: MacAddr,
    src: MacAddr,
    vlan: Option<u16>,
    ty: EtherType,
    needed: usize,
) -> Option<usize> {
    let l3 = if vlan.is_some() { 18 } else { 14 };
    if buf.len() < l3 + needed {
        return None;
    }
    let mut f = ethernet::Frame::new_unchecked(&mut *buf);
    f.set_dst_addr(dst);
    f.set_src_addr(src);
    match vlan {
        Some(vid) => {
            f.set_ethertype(EtherType::Vlan);
            buf[14..16].copy_from_slice(&(vid & 0x0fff).to_be_bytes());
            buf[16..18].copy_from_slice(&u16::from(ty).to_be_bytes());
        }
        None => f.set_ethertype(ty),
    }
    Some(l3)
}

/// Builds a gratuitous ARP request for `vip` from `mac` (sender and target
/// address both the VIP, broadcast) at the start of `buf`, tagged with
/// `vlan` if given. Returns the frame length, or `None` if `buf` is too
/// short.
pub fn gratuitous_arp(
    buf: &mut [u8],
    mac: MacAddr,
    vip: [u8; 4],
    vlan: Option<u16>,
) -> Option<usize> {
    arp_request(buf, mac, vip, vip, vlan)
}

/// Builds an unsolicited neighbour advertisement for `vip` (override flag,
/// target link-layer option = `mac`, to all nodes) at the start of `buf`.
/// Returns the frame length, or `None` if `buf` is too short.
pub fn unsolicited_na(
    buf: &mut [u8],
    mac: MacAddr,
    vip: [u8; 16],
    vlan: Option<u16>,
) -> Option<usize> {
    let icmp_len = icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;
    let l3 = eth_header(
        buf,
        ALL_NODES_MAC,
        mac,
        vlan,
        EtherType::Ipv6,
        ipv6::HEADER_LEN + icmp_len,
    )?;
    write_na(
        &mut buf[l3..],
        mac,
        vip,
        ALL_NODES,
        icmpv6::NA_FLAG_OVERRIDE,
        true,
    );
    Some(l3 + ipv6::HEADER_LEN + icmp_len)
}

/// Writes an IPv6 neighbour advertisement for `target` (from `target` to
/// `dst`) at the start of `l3`, with a target link-layer option if
/// `with_option`. `l3` must hold 40 + 24 (+ 8) bytes.
pub(crate) fn write_na(
    l3: &mut [u8],
    mac: MacAddr,
    target: [u8; 16],
    dst: [u8; 16],
    flags: u8,
    with_option: bool,
) -> usize {
    let icmp_len = icmpv6::ND_LEN
        + if with_option {
            icmpv6::LLADDR_OPT_LEN
        } else {
            0
        };
    let (ip, rest) = l3.split_at_mut(ipv6::HEADER_LEN);
    let mut p = ipv6::Packet::new_unchecked(ip);
    p.set_version();
    p.set_payload_len(icmp_len as u16);
    p.set_next_header(IpProtocol::Icmpv6);
    p.set_hop_limit(255);
    p.set_src_addr(target);
    p.set_dst_addr(dst);
    let mut n = icmpv6::Packet::new_unchecked(&mut rest[..icmp_len]);
    n.set_msg_type(icmpv6::Message::NeighborAdvert);
    n.set_code(0);
    n.set_nd_flags(flags);
    n.set_nd_target(target);
    if with_option {
        n.set_nd_lladdr_option(icmpv6::OPT_TARGET_LLADDR, mac);
    }
    n.fill_checksum(&target, &dst);
    ipv6::HEADER_LEN + icmp_len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garp() {
        let mut buf = [0u8; 64];
        let n =
            gratuitous_arp(&mut buf, MacAddr([2, 0, 0, 0, 0, 9]), [10, 0, 0, 100], None).unwrap();
        assert_eq!(n, 42);
        let a = arp::Packet::new_checked(&buf[14..n]).unwrap();
        assert!(a.is_ethernet_ipv4());
        assert_eq!(a.sender_ip(), a.target_ip());
        assert_eq!(&buf[..6], MacAddr::BROADCAST.as_bytes());
        let n = gratuitous_arp(
            &mut buf,
            MacAddr([2, 0, 0, 0, 0, 9]),
            [10, 0, 0, 100],
            Some(7),
        )
        .unwrap();
        assert_eq!(n, 46);
        assert_eq!(&buf[12..18], &[0x81, 0, 0, 7, 0x08, 0x06]);
        assert!(gratuitous_arp(&mut buf[..45], MacAddr([0; 6]), [0; 4], Some(7)).is_none());
    }

    #[test]
    fn na() {
        let mut buf = [0u8; 128];
        let vip = [
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
        ];
        let n = unsolicited_na(&mut buf, MacAddr([2, 0, 0, 0, 0, 9]), vip, None).unwrap();
        assert_eq!(n, UNSOLICITED_NA_LEN);
        let ip = ipv6::Packet::new_checked(&buf[14..n]).unwrap();
        assert_eq!(ip.hop_limit(), 255);
        let icmp = icmpv6::Packet::new_checked(&buf[54..n]).unwrap();
        icmp.check_nd_len().unwrap();
        assert_eq!(icmp.msg_type(), icmpv6::Message::NeighborAdvert);
        assert!(icmp.verify_checksum(&vip, &ALL_NODES));
        assert_eq!(icmp.nd_target(), vip);
        assert_eq!(
            icmp.nd_lladdr_option(icmpv6::OPT_TARGET_LLADDR),
            Some(MacAddr([2, 0, 0, 0, 0, 9]))
        );
        assert!(unsolicited_na(&mut buf[..85], MacAddr([0; 6]), vip, None).is_none());
        assert_eq!(GARP_LEN, 42);
    }
}

/// Length of an ARP request frame (untagged; +4 with a tag).
pub const ARP_REQUEST_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;
/// Length of a neighbour solicitation frame (untagged; +4 with a tag).
pub const NS_LEN: usize =
    ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;

/// Builds a broadcast ARP request "who has `target`? tell `sender`" from
/// `mac`, for resolving a real server on the TX segment. Returns the frame
/// length, or `None` if `buf` is too short.
pub fn arp_request(
    buf: &mut [u8],
    mac: MacAddr,
    sender: [u8; 4],
    target: [u8; 4],
    vlan: Option<u16>,
) -> Option<usize> {
    let l3 = eth_header(
        buf,
        MacAddr::BROADCAST,
        mac,
        vlan,
        EtherType::Arp,
        arp::PACKET_LEN,
    )?;
    let mut a = arp::Packet::new_unchecked(&mut buf[l3..l3 + arp::PACKET_LEN]);
    a.set_ethernet_ipv4();
    a.set_operation(arp::Operation::Request);
    a.set_sender_hw(mac);
    a.set_sender_ip(sender);
    a.set_target_hw(MacAddr([0; 6]));
    a.set_target_ip(target);
    Some(l3 + arp::PACKET_LEN)
}

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: [u8; 16]) -> [u8; 16] {
    let mut s = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    s[13..16].copy_from_slice(&a[13..16]);
    s
}

/// Builds a neighbour solicitation for `target` from `src` (with a source
/// link-layer option = `mac`) to the target's solicited-node group. Returns
/// the frame length, or `None` if `buf` is too short.
pub fn neighbour_solicit(
    buf: &mut [u8],
    mac: MacAddr,
    src: [u8; 16],
    target: [u8; 16],
    vlan: Option<u16>,
) -> Option<usize> {
    let icmp_len = icmpv6::ND_LEN + icmpv6::LLADDR_OPT_LEN;
    let dst = solicited_node(target);
    let dst_mac = MacAddr([0x33, 0x33, dst[12], dst[13], dst[14], dst[15]]);
    let l3 = eth_header(
        buf,
        dst_mac,
        mac,
        vlan,
        EtherType::Ipv6,
        ipv6::HEADER_LEN + icmp_len,
    )?;
    let (ip, rest) = buf[l3..].split_at_mut(ipv6::HEADER_LEN);
    let mut p = ipv6::Packet::new_unchecked(ip);
    p.set_version();
    p.set_payload_len(icmp_len as u16);
    p.set_next_header(IpProtocol::Icmpv6);
    p.set_hop_limit(255);
    p.set_src_addr(src);
    p.set_dst_addr(dst);
    let mut n = icmpv6::Packet::new_unchecked(&mut rest[..icmp_len]);
    n.set_msg_type(icmpv6::Message::NeighborSolicit);
    n.set_code(0);
    n.set_nd_flags(0);
    n.set_nd_target(target);
    n.set_nd_lladdr_option(icmpv6::OPT_SOURCE_LLADDR, mac);
    n.fill_checksum(&src, &dst);
    Some(l3 + ipv6::HEADER_LEN + icmp_len)
}

/// What a neighbour frame says: `addr` is at `mac`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learned {
    /// The IP address.
    pub addr: std::net::IpAddr,
    /// Its Ethernet address.
    pub mac: MacAddr,
}

/// Reads an ARP packet (reply, request or gratuitous) or a neighbour
/// advertisement and returns the sender's binding. Anything else, or a
/// malformed frame, is `None`. Used by the control plane only.
pub fn learn(frame: &[u8]) -> Option<Learned> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let (ty, l3) = match eth.ethertype() {
        EtherType::Vlan => {
            let tag = frame.get(14..18)?;
            (EtherType::from(u16::from_be_bytes([tag[2], tag[3]])), 18)
        }
        t => (t, 14),
    };
    let l3b = frame.get(l3..)?;
    match ty {
        EtherType::Arp => {
            let a = arp::Packet::new_checked(l3b).ok()?;
            if !a.is_ethernet_ipv4() || a.sender_ip() == [0; 4] || a.sender_hw().is_group() {
                return None;
            }
            Some(Learned {
                addr: std::net::Ipv4Addr::from(a.sender_ip()).into(),
                mac: a.sender_hw(),
            })
        }
        EtherType::Ipv6 => {
            let ip = ipv6::Packet::new_checked(l3b).ok()?;
            if ip.next_header() != IpProtocol::Icmpv6 || ip.hop_limit() != 255 {
                return None;
            }
            let body = l3b.get(ipv6::HEADER_LEN..ipv6::HEADER_LEN + ip.payload_len() as usize)?;
            let n = icmpv6::Packet::new_checked(body).ok()?;
            if n.msg_type() != icmpv6::Message::NeighborAdvert || n.check_nd_len().is_err() {
                return None;
            }
            if !n.verify_checksum(&ip.src_addr(), &ip.dst_addr()) {
                return None;
            }
            let mac = n
                .nd_lladdr_option(icmpv6::OPT_TARGET_LLADDR)
                .unwrap_or_else(|| eth.src_addr());
            Some(Learned {
                addr: std::net::Ipv6Addr::from(n.nd_target()).into(),
                mac,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod resolver_tests {
    use super::*;

    const MAC: MacAddr = MacAddr([0x02, 0, 0, 0, 0, 0x10]);

    #[test]
    fn arp_request_decodes_with_etherparse_and_learns() {
        let mut buf = [0u8; 64];
        let n = arp_request(&mut buf, MAC, [10, 0, 1, 1], [10, 0, 1, 11], None).unwrap();
        assert_eq!(n, ARP_REQUEST_LEN);
        let eth = etherparse::Ethernet2HeaderSlice::from_slice(&buf[..n]).unwrap();
        assert_eq!(eth.destination(), [0xff; 6]);
        assert_eq!(eth.ether_type(), etherparse::EtherType::ARP);
        // A request teaches its sender's binding too.
        assert_eq!(
            learn(&buf[..n]),
            Some(Learned {
                addr: "10.0.1.1".parse().unwrap(),
                mac: MAC
            })
        );
        let mut t = [0u8; 64];
        let n = arp_request(&mut t, MAC, [10, 0, 1, 1], [10, 0, 1, 11], Some(7)).unwrap();
        assert_eq!(n, ARP_REQUEST_LEN + 4);
        assert_eq!(learn(&t[..n]).unwrap().mac, MAC);
    }

    #[test]
    fn ns_checksum_is_valid_and_na_is_learned() {
        let src: [u8; 16] = "fd00::1".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let tgt: [u8; 16] = "fd00::11".parse::<std::net::Ipv6Addr>().unwrap().octets();
        let mut buf = [0u8; 128];
        let n = neighbour_solicit(&mut buf, MAC, src, tgt, None).unwrap();
        let p = etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(etherparse::NetSlice::Ipv6(ip)) = p.net else {
            panic!("not IPv6")
        };
        assert_eq!(ip.header().destination(), solicited_node(tgt));
        let Some(etherparse::TransportSlice::Icmpv6(icmp)) = p.transport else {
            panic!("not ICMPv6")
        };
        let computed = icmp
            .icmp_type()
            .calc_checksum(
                ip.header().source(),
                ip.header().destination(),
                icmp.payload(),
            )
            .unwrap();
        assert_eq!(computed, icmp.checksum());
        assert_eq!(learn(&buf[..n]), None, "a solicitation is not learned");
        // An unsolicited NA for the target is learned.
        let mut na = [0u8; 128];
        let n = unsolicited_na(&mut na, MAC, tgt, None).unwrap();
        assert_eq!(
            learn(&na[..n]),
            Some(Learned {
                addr: "fd00::11".parse().unwrap(),
                mac: MAC
            })
        );
    }

    /// The ARP fields of an Ethernet payload (RFC 826 offsets), read
    /// without pmdlb's `wire::arp`: (operation, sender MAC, sender IP,
    /// target MAC, target IP).
    fn arp_fields(p: &[u8]) -> (u16, [u8; 6], [u8; 4], [u8; 6], [u8; 4]) {
        assert_eq!(&p[0..6], &[0, 1, 0x08, 0x00, 6, 4], "Ethernet/IPv4 ARP");
        let b = |r: std::ops::Range<usize>| p[r].to_vec();
        (
            u16::from_be_bytes([p[6], p[7]]),
            b(8..14).try_into().unwrap(),
            b(14..18).try_into().unwrap(),
            b(18..24).try_into().unwrap(),
            b(24..28).try_into().unwrap(),
        )
    }

    /// Every builder refuses every buffer shorter than its frame and fills
    /// exactly its frame length otherwise; `learn` refuses every proper
    /// truncation of a frame it learns from whole (also when the NIC padded
    /// it to 60 bytes). The frames are checked with etherparse.
    #[test]
    fn learn_refuses_every_truncation() {
        let vip6 = [0xfd; 16];
        let mut buf = [0u8; 128];
        // Unsolicited NA, tagged.
        let n = unsolicited_na(&mut buf, MAC, vip6, Some(3)).unwrap();
        assert_eq!(n, UNSOLICITED_NA_LEN + 4);
        for short in 0..n {
            assert_eq!(
                unsolicited_na(&mut [0u8; 128][..short], MAC, vip6, Some(3)),
                None
            );
        }
        let p = etherparse::SlicedPacket::from_ethernet(&buf[..n]).unwrap();
        let Some(etherparse::VlanSlice::SingleVlan(tag)) = &p.vlan else {
            panic!("not tagged: {:?}", p.vlan)
        };
        assert_eq!(tag.vlan_identifier().value(), 3);
        let Some(etherparse::NetSlice::Ipv6(ip)) = &p.net else {
            panic!("not IPv6")
        };
        assert_eq!(ip.header().source(), vip6);
        assert_eq!(ip.header().destination(), ALL_NODES);
        assert_eq!(ip.header().hop_limit(), 255);
        let Some(etherparse::TransportSlice::Icmpv6(na)) = &p.transport else {
            panic!("not ICMPv6")
        };
        assert_eq!(na.type_u8(), 136);
        assert_eq!(na.slice()[4], 0x20, "override, not solicited");
        let sum = na
            .icmp_type()
            .calc_checksum(vip6, ALL_NODES, na.payload())
            .unwrap();
        assert_eq!(sum, na.checksum());
        assert_eq!(&na.payload()[..16], &vip6, "target address");
        assert_eq!(
            &na.payload()[16..],
            &[2, 1, 2, 0, 0, 0, 0, 0x10],
            "target lladdr option"
        );
        let na_binding = Some(Learned {
            addr: std::net::Ipv6Addr::from(vip6).into(),
            mac: MAC,
        });
        assert_eq!(learn(&buf[..n]), na_binding);
        for len in 0..n {
            assert_eq!(learn(&buf[..len]), None, "NA cut to {len} of {n} bytes");
        }

        // ARP request, untagged, then padded to the Ethernet minimum.
        let mut buf = [0u8; 60];
        let n = arp_request(&mut buf, MAC, [1, 2, 3, 4], [5, 6, 7, 8], None).unwrap();
        assert_eq!(n, ARP_REQUEST_LEN);
        for short in 0..n {
            assert_eq!(
                arp_request(
                    &mut [0u8; 60][..short],
                    MAC,
                    [1, 2, 3, 4],
                    [5, 6, 7, 8],
                    None
                ),
                None
            );
        }
        let eth = etherparse::Ethernet2Slice::from_slice_without_fcs(&buf[..n]).unwrap();
        assert_eq!(eth.destination(), MacAddr::BROADCAST.0);
        assert_eq!(eth.source(), MAC.0);
        assert_eq!(eth.ether_type(), etherparse::EtherType::ARP);
        assert_eq!(
            arp_fields(eth.payload_slice()),
            (1, MAC.0, [1, 2, 3, 4], [0; 6], [5, 6, 7, 8])
        );
        let arp_binding = Some(Learned {
            addr: "1.2.3.4".parse().unwrap(),
            mac: MAC,
        });
        assert_eq!(learn(&buf[..n]), arp_binding);
        assert_eq!(learn(&buf[..60]), arp_binding, "padded to 60 bytes");
        for len in 0..n {
            assert_eq!(learn(&buf[..len]), None, "ARP cut to {len} of {n} bytes");
        }
    }
}
