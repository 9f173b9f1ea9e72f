//! What the decision benches (`decide`, `swap`) share: their services, one
//! burst template, client addresses and the in-place patch that turns the
//! template into client `i`'s frame.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use etherparse::PacketBuilder;
use pmdlb::lb::spec::{
    MarkRuleSpec, Persistence, PortRange, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr,
    ServiceSpec, VipSpec,
};
use pmdlb::wire::ethernet::MacAddr;

/// Frames per burst.
pub const BURST: usize = 32;
/// Bytes per frame (60: the Ethernet minimum without FCS).
pub const FRAME: usize = 60;
/// The RX NIC's MAC (frames are addressed to it).
pub const RX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The TX NIC's MAC.
pub const TX_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The VIP every frame goes to.
pub const VIP: [u8; 4] = [10, 0, 0, 100];

/// A burst buffer of 32 frames to `VIP:dport` from a placeholder client.
pub fn template(dport: u16) -> Vec<[u8; FRAME]> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 9, 9], RX_MAC)
        .ipv4([10, 1, 0, 0], VIP, 64)
        .udp(40000, dport)
        .write(&mut v, &[0u8; FRAME - 42])
        .expect("frame");
    let mut f = [0u8; FRAME];
    f.copy_from_slice(&v);
    vec![f; BURST]
}

/// Client `i`'s address (10.16.0.0/12 and up; distinct for i < 2^28).
#[inline(always)]
pub fn client(i: u32) -> u32 {
    0x0a10_0000u32.wrapping_add(i)
}

/// Writes client `ip` into a frame: destination MAC back, source address,
/// IPv4 header checksum recomputed incrementally from the template's.
#[inline(always)]
pub fn patch(f: &mut [u8; FRAME], ip: u32, base_sum: u16) {
    f[0..6].copy_from_slice(&RX_MAC);
    f[26..30].copy_from_slice(&ip.to_be_bytes());
    // RFC 1624: HC' = ~(~HC + ~m + m'); template source is 10.1.0.0.
    let old = 0x0a01u32;
    let new = (ip >> 16) + (ip & 0xffff);
    let mut s = u32::from(!base_sum) + (!old & 0xffff) + new;
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    f[24..26].copy_from_slice(&(!(s as u16)).to_be_bytes());
}

/// A fixed pseudo-random permutation step over 2^k clients (odd multiplier
/// mod 2^k visits each once per cycle, far apart in the tables).
#[inline(always)]
pub fn permute(i: u32, mask: u32) -> u32 {
    i.wrapping_mul(0x9e37_79b1) & mask
}

/// The three service kinds: (name, destination port).
pub const KINDS: [(&str, u16); 3] = [
    ("nonpersistent", 53),
    ("persistent", 54),
    ("fwmark_persistent", 443),
];

/// The benches' services: UDP :53, persistent UDP :54 and a persistent
/// fwmark service (ports 80 and 443), 8 servers each (wlc, static MACs);
/// the first server weighs `w0`.
pub fn specs(persist_s: u32, w0: u32) -> (Vec<ServiceSpec>, Vec<MarkRuleSpec>, Vec<VipSpec>) {
    let servers: Vec<RealServerSpec> = (0..8u8)
        .map(|i| RealServerSpec {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 10 + i)),
            weight: if i == 0 { w0 } else { 1 },
            u_threshold: 0,
            l_threshold: 0,
            mac: Some(MacAddr([2, 0, 0, 0, 1, 10 + i])),
            forward: Default::default(),
            via: None,
        })
        .collect();
    let vip = IpAddr::V4(VIP.into());
    let p = Some(Persistence {
        timeout_s: persist_s,
        prefix_len: 32,
    });
    let svc = |addr, persistence| ServiceSpec {
        ops: false,
        addr,
        scheduler: SchedulerKind::Wlc,
        sched_flags: SchedFlags::default(),
        persistence,
        servers: servers.clone(),
    };
    let services = vec![
        svc(
            ServiceAddr::Addr {
                proto: 17,
                vip,
                port: 53,
            },
            None,
        ),
        svc(
            ServiceAddr::Addr {
                proto: 17,
                vip,
                port: 54,
            },
            p,
        ),
        svc(ServiceAddr::Fwmark(1), p),
    ];
    let rules = vec![MarkRuleSpec {
        dst: vip,
        prefix_len: 32,
        proto: Some(17),
        ports: vec![PortRange { lo: 80, hi: 80 }, PortRange { lo: 443, hi: 443 }],
        mark: 1,
    }];
    let vips = vec![VipSpec {
        addr: vip,
        answer_arp: true,
        answer_ping: true,
    }];
    (services, rules, vips)
}
