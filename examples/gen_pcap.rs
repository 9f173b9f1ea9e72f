//! Writes a pcap of 60-byte frames (64 on the wire with the FCS) from
//! distinct clients to one VIP, for `scripts/bench.sh`:
//!
//! ```text
//! cargo run --release --example gen_pcap -- OUT.pcap --clients N
//!     [--proto udp|tcp|syn] [--dport P] [--dst-mac MAC] [--vip A.B.C.D]
//! ```
//!
//! Clients are 10.16.0.0 + i, source port 40000 + (i % 16). UDP writes one
//! frame per client. TCP writes a SYN and then an ACK per client (2N
//! frames, all SYNs first): a TCP non-SYN without a connection is dropped
//! by design, so every flow opens with a SYN; when the pcap loops
//! (`infinite_rx=1`) the SYN hits the existing entry, as a retransmission
//! would. `syn` writes one SYN per client: a SYN flood, every packet a new
//! connection once the clients' SYN_RECV entries expire.
#![allow(missing_docs)]

use std::fs::File;
use std::io::BufWriter;
use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

const SRC_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x09, 0x09];
const FRAME: usize = 60;

fn mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("MAC byte in hex"))
        .collect();
    v.try_into().expect("MAC of 6 bytes")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut out = None;
    let mut clients = 1u32;
    let mut proto = "udp".to_string();
    let mut dport = 53u16;
    let mut dst_mac = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
    let mut vip = Ipv4Addr::new(10, 0, 0, 100);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| panic!("{a} needs a value"));
        match a.as_str() {
            "--clients" => clients = val().parse().expect("--clients N"),
            "--proto" => proto = val(),
            "--dport" => dport = val().parse().expect("--dport P"),
            "--dst-mac" => dst_mac = mac(&val()),
            "--vip" => vip = val().parse().expect("--vip A.B.C.D"),
            _ if out.is_none() && !a.starts_with("--") => out = Some(a),
            _ => panic!("unknown argument {a}"),
        }
    }
    let out = out.expect("usage: gen_pcap OUT.pcap --clients N [--proto udp|tcp|syn] ...");
    let file = BufWriter::new(File::create(&out).expect("create pcap"));
    let mut w = PcapWriter::new(file).expect("pcap header");
    let mut buf = Vec::with_capacity(FRAME);
    let passes: &[Option<bool>] = match proto.as_str() {
        "udp" => &[None],
        "tcp" => &[Some(true), Some(false)],
        "syn" => &[Some(true)],
        p => panic!("--proto udp|tcp|syn, not {p}"),
    };
    let mut n = 0u64;
    for &syn in passes {
        for i in 0..clients {
            buf.clear();
            let src = Ipv4Addr::from(0x0a10_0000u32 + i).octets();
            let sport = 40000 + (i % 16) as u16;
            let b = PacketBuilder::ethernet2(SRC_MAC, dst_mac).ipv4(src, vip.octets(), 64);
            match syn {
                None => b.udp(sport, dport).write(&mut buf, &[0u8; FRAME - 42]),
                Some(true) => b
                    .tcp(sport, dport, 1, 65535)
                    .syn()
                    .write(&mut buf, &[0u8; FRAME - 54]),
                Some(false) => b
                    .tcp(sport, dport, 2, 65535)
                    .ack(1)
                    .write(&mut buf, &[0u8; FRAME - 54]),
            }
            .expect("frame");
            let ts = Duration::from_micros(n);
            w.write_packet(&PcapPacket::new(ts, buf.len() as u32, &buf))
                .expect("write packet");
            n += 1;
        }
    }
    eprintln!("gen_pcap: {out}: {n} frames, {clients} clients, {proto} dport {dport}");
}
