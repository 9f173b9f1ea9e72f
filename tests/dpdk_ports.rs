//! The real EAL on virtual devices: two multi-queue ports, bursts through
//! them, and every mbuf back in its pool afterwards. Each scenario runs in its
//! own process because EAL starts only once per process.

mod common;

use common::*;
use pmdlb::dpdk::{self, Eal, Mempool, Port, PortBuilder, PortConfig, QueueId, RxBurst, TxBuffer};

fn frame(i: usize) -> Vec<u8> {
    let mut f = vec![0u8; 60 + i % 40];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    for (k, b) in f[14..].iter_mut().enumerate() {
        *b = (i * 7 + k) as u8;
    }
    f
}

/// Sends 32 frames on each queue of both ring ports and reads them back.
fn ring_roundtrip_body() {
    let prefix = file_prefix("ring");
    let args = eal_args(
        &prefix,
        "0",
        &["--vdev", "net_ring0", "--vdev", "net_ring1"],
    );
    {
        let eal = Eal::init(&args).expect("EAL init on net_ring");
        let pool = Mempool::new("ring_pool", 4095, 0, 2176, -1).expect("pool");
        let cfg = PortConfig {
            rx_queues: 4,
            tx_queues: 4,
            rx_desc: 256,
            tx_desc: 256,
            ..Default::default()
        };
        let mut ports = Vec::new();
        for name in ["net_ring0", "net_ring1"] {
            let id = Port::find(name).expect("ring port");
            let mut p = PortBuilder::new(id)
                .expect("probe")
                .configure(&cfg, &pool)
                .expect("configure");
            p.start().expect("start");
            ports.push(p);
        }
        let base_avail = pool.available();
        assert_eq!(pool.in_use(), 0, "nothing allocated yet");
        let mut sent_total = 0;
        for p in &ports {
            for q in 0..4u16 {
                let mut tx = TxBuffer::new(p.id(), QueueId(q), 32);
                let mut expect = Vec::new();
                for i in 0..32 {
                    let f = frame(i + q as usize);
                    let mut m = pool.alloc().expect("alloc");
                    assert!(m.append(f.len() as u16));
                    m.data_mut().copy_from_slice(&f);
                    expect.push(f);
                    let fl = tx.push(m);
                    sent_total += fl.sent;
                    assert_eq!(fl.dropped, 0);
                }
                assert!(tx.is_empty(), "buffer flushed at its size");
                // net_ring loops a port's TX queue q back to its RX queue q.
                let mut burst = RxBurst::default();
                let mut got = Vec::new();
                for _ in 0..10 {
                    let n = burst.receive(p.id(), QueueId(q), 64);
                    for i in 0..n {
                        got.push(burst.data_mut(i).unwrap().to_vec());
                    }
                    if got.len() >= 32 {
                        break;
                    }
                }
                drop(burst);
                assert_eq!(got, expect, "{:?} queue {q}: frames differ", p.id());
            }
        }
        assert_eq!(sent_total, 2 * 4 * 32);
        assert_eq!(pool.in_use(), 0, "mbufs leaked");
        assert_eq!(pool.available(), base_avail);
        let st = ports[0].stats().expect("stats");
        assert_eq!(st.opackets, 4 * 32);
        assert_eq!(st.ipackets, 4 * 32);
        assert!(!ports[0].xstats().expect("xstats").is_empty());
        assert!(ports[0].link().expect("link").up);
        // Control-plane rings: owned mbufs in, the same mbufs out, the rest
        // freed when the ring is dropped.
        let ring = dpdk::MbufRing::new("ctl_ring", 8, dpdk::RingSync::Mpsc).expect("ring");
        for i in 0..7u8 {
            let mut m = pool.alloc().expect("alloc");
            assert!(m.append(1));
            m.data_mut()[0] = i;
            ring.enqueue(m).expect("room in ring");
        }
        let full = ring.enqueue(pool.alloc().unwrap());
        assert!(full.is_err(), "a full ring gives the mbuf back");
        drop(full);
        let mut seen = Vec::new();
        ring.drain(|m| seen.push(m.data()[0]));
        assert_eq!(seen.len(), 7, "a ring of 8 slots holds 7");
        assert_eq!(seen, (0..7).collect::<Vec<u8>>());
        ring.enqueue(pool.alloc().unwrap()).unwrap();
        drop(ring);
        assert_eq!(pool.in_use(), 0, "ring leaked mbufs");
        drop(ports);
        drop(pool);
        drop(eal);
    }
    cleanup_prefix(&prefix);
}

#[test]
fn ring_roundtrip() {
    if is_child("ring_roundtrip") {
        return ring_roundtrip_body();
    }
    child_must_pass("ring_roundtrip");
}

/// Frames from a pcap through net_pcap, forwarded to a second pcap port's
/// TX file, and to net_null; the output pcap holds exactly the input frames.
fn pcap_forward_body() {
    let prefix = file_prefix("pcap");
    let dir = scratch("pcap");
    let input = dir.join("in.pcap");
    let output = dir.join("out.pcap");
    let frames: Vec<Vec<u8>> = (0..100).map(frame).collect();
    write_pcap(&input, &frames);
    let vdev_in = format!(
        "net_pcap0,rx_pcap={},tx_pcap={}",
        input.display(),
        dir.join("unused.pcap").display()
    );
    let vdev_out = format!(
        "net_pcap1,rx_pcap={},tx_pcap={}",
        dir.join("empty.pcap").display(),
        output.display()
    );
    write_pcap(&dir.join("empty.pcap"), &[]);
    let args = eal_args(
        &prefix,
        "0",
        &[
            "--vdev",
            &vdev_in,
            "--vdev",
            &vdev_out,
            "--vdev",
            "net_null0",
        ],
    );
    {
        let eal = Eal::init(&args).expect("EAL init on net_pcap");
        let pool = Mempool::new("pcap_pool", 1023, 0, 2176, -1).expect("pool");
        // net_pcap offers one queue per rx_pcap/tx_pcap argument.
        let cfg = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 128,
            tx_desc: 128,
            ..Default::default()
        };
        let mut ports = Vec::new();
        for name in ["net_pcap0", "net_pcap1", "net_null0"] {
            let id = Port::find(name).expect("port");
            let mut p = PortBuilder::new(id)
                .expect("probe")
                .configure(&cfg, &pool)
                .expect("configure");
            p.start().expect("start");
            ports.push(p);
        }
        let mut to_pcap = TxBuffer::new(ports[1].id(), QueueId(0), 32);
        let mut to_null = TxBuffer::new(ports[2].id(), QueueId(0), 32);
        let mut burst = RxBurst::default();
        let mut forwarded = 0;
        for _ in 0..1000 {
            let n = burst.receive(ports[0].id(), QueueId(0), 32);
            if n == 0 && forwarded >= frames.len() {
                break;
            }
            for i in 0..n {
                let m = burst.take(i).expect("packet");
                let copy = pool.alloc().map(|mut c| {
                    assert!(c.append(m.len() as u16));
                    c.data_mut().copy_from_slice(m.data());
                    c
                });
                to_pcap.push(m);
                if let Some(c) = copy {
                    to_null.push(c);
                }
                forwarded += 1;
            }
        }
        let a = to_pcap.flush();
        let b = to_null.flush();
        assert_eq!(a.dropped + b.dropped, 0);
        drop(burst);
        assert_eq!(forwarded, frames.len());
        assert_eq!(pool.in_use(), 0, "mbufs leaked");
        assert_eq!(ports[2].stats().unwrap().opackets, frames.len() as u64);
        drop(to_pcap);
        drop(to_null);
        drop(ports); // closes the pcap dumper
        drop(pool);
        drop(eal);
    }
    let got = read_pcap(&output);
    assert_eq!(got, frames, "output pcap differs from input");
    let _ = std::fs::remove_dir_all(&dir);
    cleanup_prefix(&prefix);
}

#[test]
fn pcap_forward() {
    if is_child("pcap_forward") {
        return pcap_forward_body();
    }
    child_must_pass("pcap_forward");
}

/// Writes a classic pcap (little-endian, Ethernet link type).
fn write_pcap(path: &std::path::Path, frames: &[Vec<u8>]) {
    let mut w = pcap_file::pcap::PcapWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let pkt = pcap_file::pcap::PcapPacket::new(
            std::time::Duration::from_micros(i as u64),
            f.len() as u32,
            f,
        );
        w.write_packet(&pkt).unwrap();
    }
}

/// Reads every frame of a pcap with the pcap-file crate.
fn read_pcap(path: &std::path::Path) -> Vec<Vec<u8>> {
    let mut r = pcap_file::pcap::PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// A panic inside a closure on a worker lcore comes back as an error.
fn lcore_panic_body() {
    let prefix = file_prefix("lcore");
    let args = eal_args(&prefix, "0-1", &[]);
    {
        let eal = Eal::init(&args).expect("EAL init");
        let workers = eal.worker_lcores();
        assert_eq!(workers.len(), 1);
        let ok = dpdk::launch(workers[0], || {
            assert_eq!(dpdk::lcore::current(), dpdk::LcoreId(1));
        })
        .unwrap();
        assert_eq!(ok.wait(), Ok(()));
        let bad = dpdk::launch(workers[0], || panic!("worker exploded")).unwrap();
        let err = bad.wait().unwrap_err();
        assert!(
            err.contains("worker exploded") && err.contains("lcore1"),
            "{err}"
        );
        assert!(Eal::init(&args).is_err(), "second EAL init must fail");
        drop(eal);
    }
    cleanup_prefix(&prefix);
}

#[test]
fn lcore_panic_is_reported() {
    if is_child("lcore_panic_is_reported") {
        return lcore_panic_body();
    }
    child_must_pass("lcore_panic_is_reported");
}

/// EAL on real 2 MiB hugepages (scripts/setup-hugepages.sh reserves them):
/// a pool lives in hugepage memory, and after cleanup no hugepage file with
/// this process's prefix is left behind.
fn hugepages_body() {
    let prefix = file_prefix("huge");
    let args: Vec<String> = [
        "pmdlb-test",
        "-l",
        "0",
        "-m",
        "64",
        "--no-pci",
        "--no-telemetry",
        "--log-level",
        "lib.eal:error",
        "--file-prefix",
        &prefix,
        "--vdev",
        "net_null0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    {
        let eal = Eal::init(&args).expect("EAL init on hugepages (run scripts/setup-hugepages.sh)");
        let pool = Mempool::new("huge_pool", 2047, 32, 2176, -1).expect("pool in hugepages");
        let files = hugepage_files(&prefix);
        assert!(
            !files.is_empty(),
            "EAL mapped no hugepage file for {prefix}"
        );
        let mut m = pool.alloc().expect("alloc");
        assert!(m.append(64));
        assert!(m.headroom() >= 128);
        drop(m);
        assert_eq!(pool.in_use(), 0);
        drop(pool);
        drop(eal);
    }
    cleanup_prefix(&prefix);
    assert!(
        hugepage_files(&prefix).is_empty(),
        "hugepage files left behind"
    );
}

fn hugepage_files(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/dev/hugepages")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn hugepages_no_leftovers() {
    if is_child("hugepages_no_leftovers") {
        return hugepages_body();
    }
    child_must_pass("hugepages_no_leftovers");
}
