//! Criterion benches of frame parsing: the zero-copy views over a 60-byte
//! IPv4/UDP frame, a 74-byte IPv4/TCP SYN and a 78-byte IPv6/TCP frame —
//! Ethernet header, IPv4 length and header-checksum check, IPv6 header,
//! transport ports — as the decision reads them.
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use pmdlb::wire::{ethernet, ipv4, ipv6, tcp, udp};

const SRC: [u8; 6] = [2, 0, 0, 0, 9, 9];
const DST: [u8; 6] = [2, 0, 0, 0, 0, 1];

fn udp4() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 1, 2, 3], [10, 0, 0, 100], 64)
        .udp(40000, 53)
        .write(&mut v, &[0u8; 18])
        .unwrap();
    v
}

fn tcp4() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv4([10, 1, 2, 3], [10, 0, 0, 100], 64)
        .tcp(40000, 80, 1, 65535)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

fn tcp6() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2(SRC, DST)
        .ipv6([0x20; 16], [0x30; 16], 64)
        .tcp(40000, 80, 1, 65535)
        .syn()
        .write(&mut v, &[])
        .unwrap();
    v
}

/// Parses a frame down to its ports; returns a value depending on all of it.
#[inline(never)]
fn parse(frame: &[u8]) -> u64 {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return 0;
    };
    let et = u16::from(eth.ethertype());
    let l3 = eth.payload();
    match et {
        0x0800 => {
            let Ok(ip) = ipv4::Packet::new_checked(l3) else {
                return 1;
            };
            if !ip.verify_checksum() {
                return 2;
            }
            let proto = ip.protocol_number();
            let src = u32::from_be_bytes(ip.src_addr()) as u64;
            let l4 = ip.payload();
            let ports = match proto {
                6 => tcp::Packet::new_checked(l4)
                    .map(|t| (t.src_port(), t.dst_port()))
                    .unwrap_or_default(),
                17 => udp::Packet::new_checked(l4)
                    .map(|u| (u.src_port(), u.dst_port()))
                    .unwrap_or_default(),
                _ => (0, 0),
            };
            src ^ (ports.0 as u64) << 32 ^ (ports.1 as u64) << 48
        }
        0x86dd => {
            let Ok(ip) = ipv6::Packet::new_checked(l3) else {
                return 3;
            };
            let src = ip.src_addr();
            let Ok(t) = ip.transport() else {
                return 5;
            };
            let l4 = ip.packet().get(t.offset..).unwrap_or(&[]);
            let ports = tcp::Packet::new_checked(l4)
                .map(|t| (t.src_port(), t.dst_port()))
                .unwrap_or_default();
            u64::from(src[15]) ^ (ports.0 as u64) << 32 ^ (ports.1 as u64) << 48
        }
        _ => 4,
    }
}

fn wire(c: &mut Criterion) {
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(1));
    for (name, f) in [("udp4", udp4()), ("tcp4_syn", tcp4()), ("tcp6_syn", tcp6())] {
        g.bench_function(name, |b| b.iter(|| parse(black_box(&f))));
    }
    let f = udp4();
    g.bench_function("ipv4_checksum_only", |b| {
        b.iter(|| ipv4::Packet::new_unchecked(black_box(&f[14..])).verify_checksum())
    });
    g.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
