//! Tests of the configuration: defaults, every validation error, EAL
//! arguments, and that every example in `dpdk-config/` loads.

use super::*;
use crate::lb::spec::{DefenceMode, PortRange, SchedulerKind, ServiceAddr};

/// The smallest valid configuration.
const MIN: &str = "[eal]\nlcores = \"0-1\"\n[ports]\nrx = \"net_null0\"\n";

/// A one-service configuration plus `extra` (the sections' own tests).
pub(super) fn load_one_service(extra: &str) -> Result<Config, String> {
    Config::from_str(
        &format!("{MIN}[[service]]\nvip = \"10.0.0.1\"\nport = 80\n{extra}"),
        "t.toml",
    )
    .map(|c| c.0)
    .map_err(|e| e.to_string())
}

fn ok(text: &str) -> (Config, Vec<Warning>) {
    match Config::from_str(text, "t.toml") {
        Ok(v) => v,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

/// The full error text for an invalid config.
fn err(text: &str) -> String {
    match Config::from_str(text, "t.toml") {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// MIN plus `extra`, with tx_addr set so IPv4 servers resolve.
fn with(extra: &str) -> String {
    format!("{MIN}tx_addr = \"10.0.1.1\"\ntx_addr6 = \"fd00::1\"\n{extra}")
}

fn assert_err(text: &str, parts: &[&str]) {
    let e = err(text);
    for p in parts {
        assert!(e.contains(p), "error lacks {p:?}:\n{e}");
    }
    assert!(
        e.starts_with("t.toml: "),
        "error does not name the file:\n{e}"
    );
}

#[test]
fn defaults() {
    let (c, w) = ok(MIN);
    assert_eq!(w.len(), 1, "{w:?}"); // net_null0 not in eal.vdevs
    let e = c.eal();
    assert_eq!(e.lcores, vec![0, 1]);
    assert_eq!(e.main_lcore, 0);
    assert_eq!(e.memory_channels, None);
    assert!(e.hugepages);
    assert_eq!(e.memory_mb, None);
    assert_eq!(e.file_prefix, "pmdlb");
    assert!(e.pci_allow.is_empty() && e.vdevs.is_empty() && e.extra_args.is_empty());
    assert_eq!(e.log_level, None);
    let p = c.ports();
    assert_eq!(p.rx, "net_null0");
    assert_eq!(p.tx, "net_null0");
    assert!(p.one_armed());
    assert_eq!((p.rx_desc, p.tx_desc), (1024, 1024));
    assert_eq!(p.mtu, None);
    assert!(p.promiscuous);
    assert_eq!(p.mbufs, 16383);
    assert_eq!(p.mbuf_cache, 256);
    assert_eq!(p.mbuf_size, 2176);
    assert_eq!(p.tx_vlan, TxVlan::Keep);
    assert_eq!((p.tx_addr, p.tx_addr6), (None, None));
    let w = c.workers();
    assert_eq!(w.count, 1);
    assert_eq!(w.lcores, vec![1]);
    assert_eq!(w.burst, 32);
    assert_eq!(w.drain_us, 100);
    assert_eq!(w.stats_interval_s, 5);
    assert_eq!(w.sweep_per_loop, 64);
    assert_eq!(
        *c.tables(),
        TableSettings {
            connections: 1 << 20,
            persistence: 1 << 20,
            mh_size: MhTableSize::DEFAULT,
            max_services: 256,
            max_servers: 4096,
            memory: TableMemory::Auto,
        }
    );
    assert_eq!(c.timeouts(), crate::lb::spec::Timeouts::default());
    assert_eq!(c.state_flags(), crate::lb::spec::StateFlags::default());
    assert_eq!(
        *c.neighbours(),
        NeighbourSettings {
            refresh_s: 30,
            retry_ms: 1000,
            gratuitous_arp: true
        }
    );
    assert!(c.services().is_empty() && c.marks().is_empty() && c.vips().is_empty());
    assert_eq!(c.origin(), "t.toml");
}

#[test]
fn service_defaults() {
    let (c, _) = ok(&with(
        "[[service]]\nvip = \"10.0.0.100\"\nport = 80\n[[service.server]]\naddr = \"10.0.1.11\"\n",
    ));
    let s = &c.services()[0];
    assert_eq!(
        s.addr,
        ServiceAddr::Addr {
            proto: 6,
            vip: "10.0.0.100".parse().unwrap(),
            port: 80
        }
    );
    assert_eq!(s.scheduler, SchedulerKind::Wlc);
    assert_eq!(s.sched_flags, Default::default());
    assert_eq!(s.persistence, None);
    let r = &s.servers[0];
    assert_eq!(
        (r.weight, r.u_threshold, r.l_threshold, r.mac),
        (1, 0, 0, None)
    );
    // The VIP is auto-added with ARP and ping on.
    assert_eq!(c.vips().len(), 1);
    assert!(c.vips()[0].answer_arp && c.vips()[0].answer_ping);
}

#[test]
fn every_key_set() {
    let (c, w) = ok(r#"
[eal]
coremask = "0x1e"
main_lcore = 2
memory_channels = 4
hugepages = true
memory_mb = 2048
file_prefix = "lb1"
pci_allow = ["3b:00.0", "0000:3b:00.1,rxq_cqe_comp_en=1"]
vdevs = []
log_level = "debug"
extra_args = ["--huge-unlink"]
[ports]
rx = "0000:3b:00.0"
tx = "3b:00.1"
rx_desc = 512
tx_desc = 4096
mtu = 9000
promiscuous = false
mbufs = 65535
mbuf_cache = 128
tx_vlan = 100
tx_addr = "10.0.1.1"
tx_addr6 = "fd00::1"
[workers]
count = 2
burst = 64
drain_us = 50
stats_interval_s = 0
sweep_per_loop = 128
[tables]
connections = 3000
persistence = 1024
[timeouts]
tcp = 1
tcp_syn_recv = 2
tcp_fin = 3
tcp_close = 4
udp = 5
[ipvs]
sloppy_tcp = true
expire_quiescent_template = true
expire_nodest_conn = true
drop_entry = "auto"
secure_tcp = 3
conn_high_water = 75
[neighbours]
refresh_s = 5
retry_ms = 100
gratuitous_arp = false
"#);
    assert!(w.iter().any(|w| w.key == "workers.count"), "{w:?}");
    let e = c.eal();
    assert_eq!(e.lcores, vec![1, 2, 3, 4]);
    assert_eq!(e.cores, CoreSelection::Mask("0x1e".into()));
    assert_eq!(e.worker_lcores(), vec![1, 3, 4]);
    assert_eq!(c.workers().lcores, vec![1, 3]);
    let p = c.ports();
    assert_eq!(p.rx, "0000:3b:00.0");
    assert_eq!(p.tx, "0000:3b:00.1");
    assert!(!p.one_armed());
    assert_eq!(p.tx_vlan, TxVlan::Set(100));
    assert_eq!(p.mtu, Some(9000));
    // unset, the mbuf size grows to hold a jumbo frame after the headroom
    assert_eq!(p.mbuf_size, 128 + 9000 + 18);
    assert_eq!(p.mbufs, 65535);
    let pc = p.port_config(crate::control::layout::NicQueues {
        rx: 2,
        tx: 3,
        rss: true,
    });
    assert_eq!(
        (pc.rx_queues, pc.tx_queues, pc.rx_desc, pc.tx_desc),
        (2, 3, 512, 4096)
    );
    assert!(!pc.promiscuous && pc.rss);
    assert_eq!(c.tables().connections, 4096); // rounded up
    assert_eq!(c.timeouts().udp_s, 5);
    assert_eq!(c.timeouts().tcp_established_s, 1);
    assert!(c.state_flags().sloppy_tcp && c.state_flags().expire_nodest_conn);
    let f = c.state_flags();
    assert_eq!(
        (f.drop_entry, f.secure_tcp, f.conn_high_water_pct),
        (DefenceMode::Auto, DefenceMode::Always, 75)
    );
    // the secure SYN_RECV timeout defaults to 10 s, at most tcp_syn_recv
    assert_eq!(c.timeouts().tcp_syn_recv_secure_s, 2);
    assert!(!c.neighbours().gratuitous_arp);
    assert_eq!(
        c.eal_args(&["--telemetry".into()]),
        [
            "pmdlb",
            "-c",
            "0x1e",
            "--main-lcore",
            "2",
            "-n",
            "4",
            "-m",
            "2048",
            "--file-prefix",
            "lb1",
            "-a",
            "3b:00.0",
            "-a",
            "0000:3b:00.1,rxq_cqe_comp_en=1",
            "--log-level",
            "debug",
            "--huge-unlink",
            "--telemetry",
        ]
    );
}

#[test]
fn eal_args_from_lcores() {
    let (c, _) = ok(
        "[eal]\nlcores = \"4,0-2\"\nhugepages = false\nmemory_mb = 256\n\
         vdevs = [\"net_null0\", \"net_pcap0,rx_pcap=a.pcap\"]\n[ports]\nrx = \"net_null0\"\n",
    );
    assert_eq!(c.eal().cores, CoreSelection::List("0-2,4".into()));
    assert_eq!(c.workers().count, 3);
    assert_eq!(
        c.eal_args(&[]),
        [
            "pmdlb",
            "-l",
            "0-2,4",
            "--main-lcore",
            "0",
            "--no-huge",
            "-m",
            "256",
            "--file-prefix",
            "pmdlb",
            "--no-pci",
            "--vdev",
            "net_null0",
            "--vdev",
            "net_pcap0,rx_pcap=a.pcap",
        ]
    );
    let (c, _) = ok("[eal]\nlcores = [3, 1]\n[ports]\nrx = \"net_null0\"\n");
    assert_eq!(c.eal().lcores, vec![1, 3]);
    assert_eq!(c.eal().main_lcore, 1);
    assert_eq!(c.eal_args(&[])[1..3], ["-l", "1,3"]);
    let (c, _) = ok("[eal]\ncoremask = \"0X3\"\n[ports]\nrx = \"net_null0\"\n");
    assert_eq!(c.eal_args(&[])[1..3], ["-c", "0x3"]);
}

#[test]
fn eal_errors() {
    assert_err(
        "[ports]\nrx = \"x\"\n",
        &["eal.lcores", "missing", "lcores = \"0-1\""],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\ncoremask = \"0x3\"\n[ports]\nrx = \"x\"\n",
        &["eal.coremask", "not both"],
    );
    assert_err(
        "[eal]\nlcores = \"0\"\n[ports]\nrx = \"x\"\n",
        &["eal.lcores", "no worker lcore"],
    );
    assert_err(
        "[eal]\nlcores = \"1-0\"\n[ports]\nrx = \"x\"\n",
        &["eal.lcores", "backwards"],
    );
    assert_err(
        "[eal]\ncoremask = \"0xz\"\n[ports]\nrx = \"x\"\n",
        &["eal.coremask", "hexadecimal"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\nmain_lcore = 5\n[ports]\nrx = \"x\"\n",
        &["eal.main_lcore", "not one of the EAL lcores (0-1)"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\nhugepages = false\n[ports]\nrx = \"x\"\n",
        &["eal.memory_mb", "required with hugepages = false"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\nfile_prefix = \"a/b\"\n[ports]\nrx = \"x\"\n",
        &["eal.file_prefix"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\npci_allow = [\"eth0\"]\n[ports]\nrx = \"x\"\n",
        &["eal.pci_allow[0]", "not a PCI address"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\npci_allow = [\"01:00.0\", \"0000:01:00.0\"]\n[ports]\nrx = \"x\"\n",
        &["eal.pci_allow[1]", "also eal.pci_allow[0]"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\nvdevs = [\"net_null0\", \"net_null0,size=64\"]\n[ports]\nrx = \"x\"\n",
        &["eal.vdevs[1]", "net_null0"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\nhugepages = false\nmemory_mb = 64\nextra_args = [\"--in-memory\"]\n[ports]\nrx = \"x\"\n",
        &["eal.extra_args", "--in-memory"],
    );
    assert_err(
        "[eal]\nlcores = \"0-1\"\nmemory_channels = 0\n[ports]\nrx = \"x\"\n",
        &["eal.memory_channels", "1..=32"],
    );
}

#[test]
fn worker_errors() {
    assert_err(
        &format!("{MIN}[workers]\ncount = 2\n"),
        &["workers.count", "use 1..=1"],
    );
    assert_err(&format!("{MIN}[workers]\ncount = 0\n"), &["workers.count"]);
    assert_err(
        &format!("{MIN}[workers]\nburst = 65\n"),
        &["workers.burst", "1..=64"],
    );
    assert_err(
        &format!("{MIN}[workers]\ndrain_us = 0\n"),
        &["workers.drain_us"],
    );
    assert_err(
        &format!("{MIN}[workers]\nstats_interval_s = -1\n"),
        &["workers.stats_interval_s"],
    );
    assert_err(
        &format!("{MIN}[workers]\nsweep_per_loop = 0\n"),
        &["workers.sweep_per_loop"],
    );
}

#[test]
fn port_errors() {
    assert_err("[eal]\nlcores = \"0-1\"\n", &["ports.rx", "missing"]);
    assert_err(
        "[eal]\nlcores = \"0-1\"\n[ports]\nrx = \"0000:01:00.0\"\n",
        &["ports.rx", "not in eal.pci_allow", "add \"0000:01:00.0\""],
    );
    assert_err(
        &format!("{MIN}rx_desc = 1000\n"),
        &["ports.rx_desc", "power of two; use 512 or 1024"],
    );
    assert_err(
        &format!("{MIN}tx_desc = 32\n"),
        &["ports.tx_desc", "64..=16384"],
    );
    assert_err(&format!("{MIN}mtu = 10000\n"), &["ports.mtu", "68..=9600"]);
    assert_err(
        &format!("{MIN}mbufs = 1000\n"),
        &["ports.mbufs", "at least 3680"],
    );
    assert_err(
        &format!("{MIN}mbuf_size = 1600\n"),
        &[
            "ports.mbuf_size",
            "1518-byte frame",
            "at least 1646",
            "lower ports.mtu",
        ],
    );
    assert_err(
        &format!("{MIN}mtu = 200\nmbuf_size = 300\n"),
        &["ports.mbuf_size", "MTU 200", "at least 346"],
    );
    let small = Config::from_str(&format!("{MIN}mtu = 200\nmbuf_size = 346\n"), "t.toml")
        .expect("an mbuf of headroom plus one MTU frame");
    assert_eq!(small.0.ports().mbuf_size, 346);
    assert_err(
        &format!("{MIN}mbuf_size = 70000\n"),
        &["ports.mbuf_size", "1646..=65535"],
    );
    assert_err(
        &format!("{MIN}mbuf_cache = 513\n"),
        &["ports.mbuf_cache", "0..=512"],
    );
    assert_err(
        &format!("{MIN}tx_vlan = 4095\n"),
        &["ports.tx_vlan", "1..=4094"],
    );
    assert_err(
        &format!("{MIN}tx_vlan = \"strip\"\n"),
        &["ports.tx_vlan", "\"keep\""],
    );
    assert_err(
        &format!("{MIN}tx_addr = \"fd00::1\"\n"),
        &["ports.tx_addr", "tx_addr6"],
    );
    assert_err(
        &format!("{MIN}tx_addr6 = \"10.0.0.1\"\n"),
        &["ports.tx_addr6", "IPv4"],
    );
    assert_err(
        &format!("{MIN}tx_addr = \"x\"\n"),
        &["ports.tx_addr", "not an IPv4"],
    );
    // tx_vlan forms.
    let (c, _) = ok(&format!("{MIN}tx_vlan = \"none\"\n"));
    assert_eq!(c.ports().tx_vlan, TxVlan::Untagged);
}

#[test]
fn mbufs_default_grows_to_minimum() {
    let (c, _) = ok(
        "[eal]\nlcores = \"0-4\"\n[ports]\nrx = \"net_null0\"\ntx = \"net_null1\"\nrx_desc = 4096\ntx_desc = 4096\n",
    );
    let need = min_mbufs(4, 32, 4096, 4096, 256, false);
    assert!(c.ports().mbufs >= need);
    assert_eq!(c.ports().mbufs, 65535);
    assert_eq!(min_mbufs(1, 32, 1024, 1024, 256, true), 3680);
}

#[test]
fn table_memory() {
    assert_eq!(ok(MIN).0.tables().memory, TableMemory::Auto);
    for (word, m) in [
        ("auto", TableMemory::Auto),
        ("dpdk", TableMemory::Dpdk),
        ("heap", TableMemory::Heap),
    ] {
        let (c, _) = ok(&format!("{MIN}[tables]\nmemory = \"{word}\"\n"));
        assert_eq!(c.tables().memory, m);
        assert_eq!(m.as_str(), word);
    }
    for bad in ["hugepages", "DPDK", ""] {
        assert_err(
            &format!("{MIN}[tables]\nmemory = \"{bad}\"\n"),
            &[
                "tables.memory",
                &format!("{bad:?} is not a place"),
                "\"auto\"",
                "\"dpdk\" or \"heap\"",
            ],
        );
    }
}

#[test]
fn mh_table_size() {
    assert_eq!(ok(MIN).0.tables().mh_size.get(), 65_537);
    for size in crate::lb::sched::mh::TABLE_SIZES {
        let (c, _) = ok(&format!("{MIN}[tables]\nmh_size = {size}\n"));
        assert_eq!(c.tables().mh_size.get(), size);
    }
    for bad in ["65536", "65539", "0", "-1", "1099511627776"] {
        assert_err(
            &format!("{MIN}[tables]\nmh_size = {bad}\n"),
            &[
                "tables.mh_size",
                &format!("{bad} is not"),
                "251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 65537 or 131071",
                "default 65537",
            ],
        );
    }
    // IPVS refuses more servers than slots
    let servers = |n: usize| {
        (0..n)
            .map(|i| {
                format!(
                    "[[service.server]]\naddr = \"10.0.{}.{}\"\n",
                    2 + i / 250,
                    1 + i % 250
                )
            })
            .collect::<String>()
    };
    let mh = |size: u32, n: usize| {
        with(&format!(
            "[tables]\nmh_size = {size}\n{SVC}scheduler = \"mh\"\n{}",
            servers(n)
        ))
    };
    ok(&mh(251, 251));
    assert_err(
        &mh(251, 252),
        &[
            "service[0]",
            "252 real servers",
            "tables.mh_size = 251",
            "at most 251",
        ],
    );
    let (c, _) = ok(&with(&format!(
        "[tables]\nmh_size = 251\n{SVC}scheduler = \"wlc\"\n{}",
        servers(300)
    )));
    assert_eq!(c.services()[0].servers.len(), 300, "only mh is limited");
}

#[test]
fn table_and_timeout_ranges() {
    assert_err(
        &format!("{MIN}[tables]\nconnections = 1000\n"),
        &["tables.connections", "1024..=67108864"],
    );
    assert_err(
        &format!("{MIN}[tables]\npersistence = 67108865\n"),
        &["tables.persistence"],
    );
    let (c, _) = ok(&format!(
        "{MIN}[tables]\nconnections = 67108864\npersistence = 1025\n"
    ));
    assert_eq!(c.tables().connections, 1 << 26);
    assert_eq!(c.tables().persistence, 2048);
    for k in ["tcp", "tcp_syn_recv", "tcp_fin", "tcp_close", "udp"] {
        assert_err(
            &format!("{MIN}[timeouts]\n{k} = 0\n"),
            &[&format!("timeouts.{k}"), "1..=2147483648"],
        );
    }
    assert_err(
        &format!("{MIN}[timeouts]\ntcp_syn_recv_secure = 61\n"),
        &["timeouts.tcp_syn_recv_secure", "1..=60 (default 10)"],
    );
    let (c, _) = ok(&format!("{MIN}[timeouts]\ntcp_syn_recv_secure = 3\n"));
    assert_eq!(c.timeouts().tcp_syn_recv_secure_s, 3);
    for (k, v, msg) in [
        (
            "drop_entry",
            "\"sometimes\"",
            "use \"off\", \"auto\" or \"always\"",
        ),
        ("secure_tcp", "4", "\"4\" is not a mode"),
        ("conn_high_water", "9", "10..=100 (default 90)"),
    ] {
        assert_err(
            &format!("{MIN}[ipvs]\n{k} = {v}\n"),
            &[&format!("ipvs.{k}"), msg],
        );
    }
    for (v, mode) in [
        ("\"off\"", DefenceMode::Off),
        ("0", DefenceMode::Off),
        ("1", DefenceMode::Auto),
        ("2", DefenceMode::Auto),
        ("\"always\"", DefenceMode::Always),
    ] {
        let (c, _) = ok(&format!("{MIN}[ipvs]\ndrop_entry = {v}\n"));
        assert_eq!(c.state_flags().drop_entry, mode, "{v}");
    }
    assert_err(
        &format!("{MIN}[neighbours]\nrefresh_s = 0\n"),
        &["neighbours.refresh_s"],
    );
    assert_err(
        &format!("{MIN}[neighbours]\nretry_ms = 1\n"),
        &["neighbours.retry_ms", "10..=60000"],
    );
    assert_err(
        &format!("{MIN}[metrics]\nlisten = \"localhost\"\n"),
        &["metrics.listen", "ADDRESS:PORT"],
    );
}

#[test]
fn metrics_listener_is_off_unless_given() {
    let c = Config::from_str(MIN, "t").unwrap().0;
    assert_eq!(c.metrics().listen, None);
    let c = Config::from_str(
        &format!("{MIN}[metrics]\nlisten = \"127.0.0.1:9469\"\n"),
        "t",
    )
    .unwrap()
    .0;
    assert_eq!(c.metrics().listen, Some("127.0.0.1:9469".parse().unwrap()));
}

#[test]
fn syntax_errors_carry_position() {
    let e = err(&format!("{MIN}rxx = 1\n"));
    assert!(e.starts_with("t.toml: "), "{e}");
    assert!(
        e.contains("unknown field `rxx`") && e.contains("line 5"),
        "{e}"
    );
    let e = err("[eal]\nlcores = \"0-1\"\n[port]\nrx = \"x\"\n");
    assert!(
        e.contains("unknown field `port`") && e.contains("line 3"),
        "{e}"
    );
    let e = err(&format!("{MIN}promiscuous = \"yes\"\n"));
    assert!(e.contains("line 5") && e.contains("bool"), "{e}");
    let e = err(&with("[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[[service.server]]\naddr = \"10.0.1.11\"\nwieght = 2\n"));
    assert!(
        e.contains("unknown field `wieght`") && e.contains("weight"),
        "{e}"
    );
    let e = err(&format!(
        "{MIN}\n[[mark]]\ndst = \"10.0.0.1\"\nports = [true]\nmark = 1\n"
    ));
    assert!(
        e.contains("line 8") && e.contains("expected an integer or a string"),
        "{e}"
    );
    let e = err(&with("[[service]]\nfwmark = 1\npersistent = \"yes\"\n"));
    assert!(
        e.contains("line 9") && e.contains("true (300 s) or false"),
        "{e}"
    );
    let e = err("[eal]\nlcores = 3\n");
    assert!(
        e.contains("line 2") && e.contains("\"0-2,4\" or a list"),
        "{e}"
    );
    let e = err("[eal\n");
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn mark_rules() {
    let (c, w) = ok(&with(
        "[[mark]]\ndst = \"10.0.0.0/24\"\nports = [80, \"443\", \"8000-8100\"]\nmark = 7\n\
         [[mark]]\ndst = \"2001:db8::5/64\"\nproto = \"udp\"\nmark = 8\n",
    ));
    let m = &c.marks()[0];
    assert_eq!(m.prefix_len, 24);
    assert_eq!(m.proto, None);
    assert_eq!(
        m.ports,
        vec![
            PortRange { lo: 80, hi: 80 },
            PortRange { lo: 443, hi: 443 },
            PortRange { lo: 8000, hi: 8100 }
        ]
    );
    let m6 = &c.marks()[1];
    assert_eq!(m6.dst, "2001:db8::".parse::<std::net::IpAddr>().unwrap());
    assert_eq!((m6.prefix_len, m6.proto, m6.ports.len()), (64, Some(17), 0));
    assert!(
        w.iter()
            .any(|w| w.key == "mark[1].dst" && w.message.contains("host bits")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.key == "mark[0].mark" && w.message.contains("fwmark = 7")),
        "{w:?}"
    );
    assert!(
        w.iter()
            .any(|w| w.key == "mark[0].dst" && w.message.contains("no [[vip]]")),
        "{w:?}"
    );
    // Prefix rules add no VIP.
    assert!(c.vips().is_empty());

    assert_err(
        &with("[[mark]]\ndst = \"10.0.0.0/33\"\nmark = 1\n"),
        &["mark[0].dst", "0..=32"],
    );
    assert_err(
        &with("[[mark]]\ndst = \"2001:db8::/129\"\nmark = 1\n"),
        &["mark[0].dst", "0..=128"],
    );
    assert_err(
        &with("[[mark]]\ndst = \"10.0.0.1\"\nmark = 0\n"),
        &["mark[0].mark", "1..=4294967295"],
    );
    assert_err(
        &with("[[mark]]\ndst = \"10.0.0.1\"\n"),
        &["mark[0].mark", "missing"],
    );
    assert_err(&with("[[mark]]\nmark = 1\n"), &["mark[0].dst", "missing"]);
    assert_err(
        &with("[[mark]]\ndst = \"10.0.0.1\"\nproto = \"icmp\"\nmark = 1\n"),
        &["mark[0].proto", "any"],
    );
    assert_err(
        &with("[[mark]]\ndst = \"10.0.0.1\"\nports = [80, \"90-85\", 0]\nmark = 1\n"),
        &[
            "mark[0].ports[1]",
            "backwards",
            "mark[0].ports[2]",
            "1..=65535",
        ],
    );
    assert_err(
        &with("[[mark]]\ndst = \"10.0.0.1\"\nports = [80]\nmark = 1\n[[mark]]\ndst = \"10.0.0.1/32\"\nports = [\"80\"]\nmark = 2\n"),
        &["mark[1]", "same traffic as mark[0]"],
    );
}

const SVC: &str = "[[service]]\nvip = \"10.0.0.100\"\nport = 80\n";
const RS: &str = "[[service.server]]\naddr = \"10.0.1.11\"\n";

#[test]
fn persistence_and_netmask_forms() {
    let p = |extra: &str| {
        let (c, _) = ok(&with(&format!("{SVC}{extra}{RS}")));
        c.services()[0].persistence
    };
    assert_eq!(p(""), None);
    assert_eq!(p("persistent = false\n"), None);
    let d = p("persistent = true\n").unwrap();
    assert_eq!((d.timeout_s, d.prefix_len), (360, 32));
    assert_eq!(
        p("persistent = 60\nnetmask = \"255.255.255.0\"\n")
            .unwrap()
            .prefix_len,
        24
    );
    assert_eq!(
        p("persistent = 60\nnetmask = \"/16\"\n")
            .unwrap()
            .prefix_len,
        16
    );
    assert_eq!(p("persistent = 60\nnetmask = 8\n").unwrap().prefix_len, 8);
    let (c, _) = ok(&with(
        "[[service]]\nvip = \"2001:db8::1\"\nport = 443\npersistent = 30\nnetmask = \"/64\"\n\
         [[service.server]]\naddr = \"2001:db8:1::11\"\n",
    ));
    let v6 = c.services()[0].persistence.unwrap();
    assert_eq!((v6.timeout_s, v6.prefix_len), (30, 64));
    let (c, _) = ok(&with(
        "[[service]]\nvip = \"2001:db8::1\"\nport = 443\npersistent = true\n[[service.server]]\naddr = \"2001:db8:1::11\"\n",
    ));
    assert_eq!(c.services()[0].persistence.unwrap().prefix_len, 128);

    assert_err(
        &with(&format!("{SVC}netmask = 24\n{RS}")),
        &["service[0].netmask", "only to persistent"],
    );
    assert_err(
        &with(&format!("{SVC}persistent = false\nnetmask = 24\n{RS}")),
        &["service[0].netmask", "only to persistent"],
    );
    assert_err(
        &with(&format!("{SVC}persistent = 0\n{RS}")),
        &["service[0].persistent", "true for 300"],
    );
    assert_err(
        &with(&format!(
            "{SVC}persistent = 1\nnetmask = \"255.0.255.0\"\n{RS}"
        )),
        &["service[0].netmask", "(tcp 10.0.0.100:80)", "contiguous"],
    );
    assert_err(
        &with("[[service]]\nvip = \"2001:db8::1\"\nport = 1\npersistent = 1\nnetmask = \"255.255.0.0\"\n[[service.server]]\naddr = \"2001:db8:1::11\"\n"),
        &["service[0].netmask", "IPv6"],
    );
}

#[test]
fn schedulers_and_flags() {
    for (name, kind) in [
        ("rr", SchedulerKind::Rr),
        ("wrr", SchedulerKind::Wrr),
        ("lc", SchedulerKind::Lc),
        ("wlc", SchedulerKind::Wlc),
        ("sed", SchedulerKind::Sed),
        ("nq", SchedulerKind::Nq),
        ("sh", SchedulerKind::Sh),
        ("dh", SchedulerKind::Dh),
        ("mh", SchedulerKind::Mh),
        ("fo", SchedulerKind::Fo),
        ("ovf", SchedulerKind::Ovf),
    ] {
        let (c, _) = ok(&with(&format!("{SVC}scheduler = \"{name}\"\n{RS}")));
        assert_eq!(c.services()[0].scheduler, kind);
    }
    let (c, _) = ok(&with(&format!(
        "{SVC}scheduler = \"sh\"\nflags = [\"sh-port\"]\n{RS}"
    )));
    assert!(c.services()[0].sched_flags.port && !c.services()[0].sched_flags.fallback);
    let (c, _) = ok(&with(&format!(
        "{SVC}scheduler = \"mh\"\nflags = [\"mh-fallback\", \"mh-port\"]\n{RS}"
    )));
    assert!(c.services()[0].sched_flags.port && c.services()[0].sched_flags.fallback);
    assert_err(
        &with(&format!("{SVC}scheduler = \"lblc\"\n{RS}")),
        &["service[0].scheduler", "unknown scheduler \"lblc\""],
    );
    assert_err(
        &with(&format!(
            "{SVC}scheduler = \"wlc\"\nflags = [\"sh-port\"]\n{RS}"
        )),
        &["service[0].flags[0]", "needs scheduler = \"sh\""],
    );
    assert_err(
        &with(&format!(
            "{SVC}scheduler = \"sh\"\nflags = [\"mh-port\"]\n{RS}"
        )),
        &["service[0].flags[0]", "needs scheduler = \"mh\""],
    );
    assert_err(
        &with(&format!("{SVC}flags = [\"fast\"]\n{RS}")),
        &["service[0].flags[0]", "unknown flag"],
    );
    let (c, _) = ok(&with(&format!(
        "{SVC}scheduler = \"wlc\"\npersistent = 300\nflags = [\"mh-template\"]\n{RS}"
    )));
    assert!(c.services()[0].sched_flags.mh_template);
    assert_err(
        &with(&format!("{SVC}flags = [\"mh-template\"]\n{RS}")),
        &[
            "service[0].flags[0]",
            "mh-template needs a persistent service",
        ],
    );
}

#[test]
fn service_errors() {
    assert_err(
        &with(&format!("{SVC}{RS}[[service.server]]\naddr = \"10.0.1.11\"\n")),
        &["t.toml: service[0].server[1].addr: (tcp 10.0.0.100:80): real server 10.0.1.11 listed twice"],
    );
    assert_err(
        &with(&format!("{SVC}{RS}{SVC}{RS}")),
        &["service[1]", "defined twice (also service[0])", "merge"],
    );
    assert_err(
        &with(&format!(
            "{SVC}[[service.server]]\naddr = \"2001:db8::11\"\n"
        )),
        &["service[0].server[0].addr", "IPv6 but the service is IPv4"],
    );
    assert_err(
        &with("[[service]]\nport = 80\n"),
        &["service[0]", "neither vip nor fwmark"],
    );
    assert_err(
        &with("[[service]]\nvip = \"10.0.0.1\"\nfwmark = 1\nport = 80\n"),
        &["service[0]", "both vip and fwmark"],
    );
    assert_err(
        &with("[[service]]\nfwmark = 1\nport = 80\n"),
        &["service[0]", "do not apply to a fwmark"],
    );
    assert_err(
        &with("[[service]]\nfwmark = 0\n"),
        &["service[0].fwmark", "1..=4294967295"],
    );
    assert_err(
        &with("[[service]]\nvip = \"10.0.0.1\"\n"),
        &["service[0].port", "missing", "0 = every port"],
    );
    assert_err(
        &with("[[service]]\nvip = \"10.0.0.1\"\nport = 70000\n"),
        &["service[0].port", "0..=65535"],
    );
    assert_err(
        &with("[[service]]\nvip = \"10.0.0\"\nport = 1\n"),
        &["service[0].vip", "not an IP address"],
    );
    assert_err(
        &with("[[service]]\nvip = \"10.0.0.1\"\nport = 1\nproto = \"icmp\"\n"),
        &["service[0].proto"],
    );
    assert_err(
        &with(&format!("{SVC}[[service.server]]\nweight = 1\n")),
        &["service[0].server[0].addr", "missing"],
    );
    assert_err(
        &with(&format!("{SVC}[[service.server]]\naddr = \"10.0.0.100\"\n")),
        &["server[0].addr", "the VIP itself"],
    );
    assert_err(
        &with(&format!("{SVC}[[service.server]]\naddr = \"10.0.1.1\"\n")),
        &["server[0].addr", "tx_addr"],
    );
    assert_err(
        &with(&format!("{SVC}{RS}weight = 65536\n")),
        &["service[0].server[0].weight", "0..=65535"],
    );
    assert_err(
        &with(&format!("{SVC}{RS}u_threshold = 10\nl_threshold = 20\n")),
        &["service[0].server[0].l_threshold", "above u_threshold 10"],
    );
    assert_err(
        &with(&format!("{SVC}{RS}mac = \"02:00:00:00:01\"\n")),
        &["service[0].server[0].mac", "six hex pairs"],
    );
    assert_err(
        &with(&format!(
            "{SVC}{RS}mac = \"02:00:00:00:01:0b\"\n[[service]]\nvip = \"10.0.0.100\"\nport = 81\n{RS}mac = \"02:00:00:00:01:0c\"\n"
        )),
        &["service[1].server[0].mac", "different mac in service[0].server[0]"],
    );
    assert_err(
        &with("[[service]]\nfwmark = 3\n[[service.server]]\naddr = \"10.0.1.11\"\n[[service.server]]\naddr = \"2001:db8::11\"\n"),
        &["service[0].server[1].addr", "mixes no IPv4 and IPv6", "its own mark"],
    );
    // Every problem is reported, not only the first.
    let e = err(&with(&format!("{SVC}scheduler = \"x\"\n{RS}weight = -1\n")));
    assert_eq!(e.lines().count(), 2, "{e}");
}

#[test]
fn tx_addr_requirements() {
    assert_err(
        &format!("{MIN}{SVC}{RS}"),
        &[
            "ports.tx_addr",
            "service[0] has IPv4 real servers without a static mac",
        ],
    );
    assert_err(
        &format!("{MIN}tx_addr = \"10.0.1.1\"\n[[service]]\nvip = \"2001:db8::1\"\nport = 1\n[[service.server]]\naddr = \"2001:db8::11\"\n"),
        &["ports.tx_addr6", "IPv6 real servers"],
    );
    // Static MACs need no tx_addr.
    ok(&format!("{MIN}{SVC}{RS}mac = \"02:00:00:00:01:0b\"\n"));
}

#[test]
fn warnings() {
    let (_, w) = ok(&with(
        "[[service]]\nfwmark = 9\n[[service.server]]\naddr = \"10.0.1.11\"\n",
    ));
    let fw = w
        .iter()
        .find(|w| w.key == "service[0].fwmark")
        .expect("fwmark warning");
    assert!(
        fw.message.contains("no [[mark]] rule sets mark 9"),
        "{fw:?}"
    );
    assert_eq!(
        fw.to_string(),
        format!("t.toml: warning: service[0].fwmark: {}", fw.message)
    );
    let (_, w) = ok(&with(SVC));
    assert!(
        w.iter()
            .any(|w| w.key == "service[0]" && w.message.contains("no real server")),
        "{w:?}"
    );
    let (_, w) = ok(&with("[[vip]]\naddr = \"10.9.9.9\"\n"));
    assert!(
        w.iter()
            .any(|w| w.key == "vip[0].addr" && w.message.contains("no service")),
        "{w:?}"
    );
    let (_, w) = ok(&with(
        "[[mark]]\ndst = \"2001:db8::1\"\nmark = 4\n[[service]]\nfwmark = 4\n[[service.server]]\naddr = \"10.0.1.11\"\n",
    ));
    assert!(
        w.iter()
            .any(|w| w.key == "service[0].fwmark" && w.message.contains("IPv6 traffic")),
        "{w:?}"
    );
}

#[test]
fn vips_listed_and_auto_added() {
    let (c, w) = ok(&with(&format!(
        "[[vip]]\naddr = \"10.0.0.100\"\nping = false\n[[vip]]\naddr = \"10.0.0.7\"\narp = false\n\
         [[mark]]\ndst = \"10.0.0.200\"\nports = [80]\nmark = 1\n[[mark]]\ndst = \"10.0.0.0/24\"\nports = [81]\nmark = 1\n\
         [[service]]\nfwmark = 1\n{RS}{SVC}{RS}\
         [[service]]\nvip = \"10.0.0.101\"\nport = 0\nproto = \"udp\"\n{RS}"
    )));
    let v: Vec<_> = c
        .vips()
        .iter()
        .map(|v| (v.addr.to_string(), v.answer_arp, v.answer_ping))
        .collect();
    assert_eq!(
        v,
        [
            ("10.0.0.100".to_owned(), true, false),
            ("10.0.0.7".to_owned(), false, true),
            ("10.0.0.101".to_owned(), true, true),
            ("10.0.0.200".to_owned(), true, true),
        ]
    );
    // 10.0.0.7 lies in the /24 rule: no "unused VIP" warning for it.
    assert!(!w.iter().any(|w| w.key.starts_with("vip[")), "{w:?}");
    assert_err(
        &with("[[vip]]\naddr = \"10.0.0.1\"\n[[vip]]\naddr = \"10.0.0.1\"\n"),
        &["vip[1].addr", "listed twice"],
    );
    assert_err(&with("[[vip]]\narp = true\n"), &["vip[0].addr", "missing"]);
}

#[test]
fn all_example_files_load() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dpdk-config");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dpdk-config/ exists") {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let (cfg, warnings) = match Config::load(&path) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        };
        assert!(warnings.is_empty(), "{}: {warnings:?}", path.display());
        assert!(!cfg.services().is_empty(), "{}", path.display());
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "af_packet.toml",
            "baremetal.toml",
            "bgp-director.toml",
            "memif.toml",
            "pcap.toml",
            "reference.toml",
            "sync-director.toml",
            "tunnel.toml"
        ]
    );
}

#[test]
fn example_af_packet_is_the_demo() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dpdk-config/af_packet.toml");
    let (c, _) = Config::load(path).unwrap();
    assert_eq!(
        (c.ports().rx.as_str(), c.ports().tx.as_str()),
        ("net_af_packet0", "net_af_packet1")
    );
    assert!(c.eal().vdevs.iter().any(|v| v.contains("iface=lbrx")));
    assert!(c.eal().vdevs.iter().any(|v| v.contains("iface=lbtx")));
    assert_eq!(c.services()[0].addr, ServiceAddr::Fwmark(1));
    assert_eq!(c.services()[0].persistence.unwrap().timeout_s, 300);
    assert_eq!(c.marks()[0].ports.len(), 2);
    assert_eq!(c.services()[1].scheduler, SchedulerKind::Wrr);
    assert_eq!(c.services()[1].servers.len(), 3);
    assert_eq!(c.vips()[0].addr.to_string(), "10.100.0.100");
}

#[test]
fn load_reports_missing_file() {
    let e = Config::load("/nonexistent/pmdlb.toml").unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(
        e.to_string()
            .starts_with("/nonexistent/pmdlb.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn lcore_map_form_passes_through_as_lcores() {
    let text = "[eal]\nlcores = \"0@0,1@1,2@1\"\nhugepages = false\nmemory_mb = 64\n\n[ports]\nrx = \"net_null0\"\n";
    let (c, _) = Config::from_str(text, "m.toml").unwrap();
    assert_eq!(c.eal().lcores, vec![0, 1, 2]);
    assert_eq!(c.eal().cores, CoreSelection::Map("0@0,1@1,2@1".into()));
    assert_eq!(c.workers().count, 2);
    let args = c.eal_args(&[]);
    let i = args.iter().position(|a| a == "--lcores").unwrap();
    assert_eq!(args[i + 1], "0@0,1@1,2@1");
    let (c, _) = Config::from_str(&text.replace("0@0,1@1,2@1", "0@0,(1-2)@1"), "m.toml").unwrap();
    assert_eq!(c.eal().lcores, vec![0, 1, 2]);
    let err = Config::from_str(&text.replace("0@0,1@1,2@1", "0@0,1"), "m.toml").unwrap_err();
    assert!(err.to_string().contains("no @CPU"), "{err}");
}

#[test]
fn telemetry_and_pdump_keys() {
    let base =
        "[eal]\nlcores = \"0-1\"\nhugepages = false\nmemory_mb = 64\n[ports]\nrx = \"net_null0\"\n";
    let (c, w) = ok(base);
    assert!(c.eal().telemetry && c.eal().pdump, "both on by default");
    assert!(!c.eal_args(&[]).iter().any(|a| a == "--no-telemetry"));
    assert!(!w.iter().any(|w| w.key == "eal.pdump"), "{w:?}");
    let (c, _) = ok(&base.replace("[ports]", "telemetry = false\npdump = false\n[ports]"));
    assert!(!c.eal().telemetry && !c.eal().pdump);
    assert_eq!(
        c.eal_args(&[])
            .iter()
            .filter(|a| *a == "--no-telemetry")
            .count(),
        1
    );
    // Live capture cannot work without EAL's shared files: a warning.
    let (_, w) = ok(&base
        .replace(
            "[ports]",
            "hugepages = true\nextra_args = [\"--in-memory\"]\n[ports]",
        )
        .replace("hugepages = false\n", ""));
    assert!(
        w.iter()
            .any(|w| w.key == "eal.pdump" && w.message.contains("--in-memory")),
        "{w:?}"
    );
    assert!(err(&base.replace("[ports]", "pdump = 1\n[ports]")).contains("pdump"));
}

#[test]
fn tunnel_servers() {
    use crate::lb::spec::{Forwarding, Tunnel, TunnelKind};
    let svc = "[[service]]\nvip = \"10.0.0.100\"\nport = 80\n";
    let (c, _) = ok(&with(&format!(
        "gateway = \"10.0.1.254\"\ngateway_mac = \"02:00:00:00:00:fe\"\ntunnel_addr = \"10.0.1.2\"\n\
         {svc}[[service.server]]\naddr = \"10.0.1.11\"\n\
         [[service.server]]\naddr = \"10.9.0.1\"\nforward = \"tunnel\"\n\
         [[service.server]]\naddr = \"10.9.0.2\"\nforward = \"tunnel\"\ntun_type = \"gue\"\ntun_port = 6080\ntun_csum = true\n"
    )));
    let p = c.ports();
    assert_eq!(p.tunnel_src4(), Some("10.0.1.2".parse().unwrap()));
    assert_eq!(
        p.tunnel_src6(),
        Some("fd00::1".parse().unwrap()),
        "tx_addr6 by default"
    );
    assert_eq!(p.tx_mtu(), 1500);
    let s = &c.services()[0].servers;
    assert_eq!((s[0].forward, s[0].via), (Forwarding::Dr, None));
    assert_eq!(
        s[1].forward,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Ipip,
            port: 0,
            csum: false
        })
    );
    assert_eq!(s[1].via, Some("10.0.1.254".parse().unwrap()));
    assert_eq!(s[1].mac, Some("02:00:00:00:00:fe".parse().unwrap()));
    assert_eq!(
        s[2].forward,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Gue,
            port: 6080,
            csum: true
        })
    );
    // No gateway: the tunnel server is its own next hop.
    let (c, _) = ok(&with(&format!(
        "{svc}[[service.server]]\naddr = \"10.0.1.11\"\nforward = \"tunnel\"\n"
    )));
    assert_eq!(c.services()[0].servers[0].via, None);
    assert!(summary_has(&c, "forward Tunnel ipip  mac resolve"));
}

fn summary_has(c: &Config, text: &str) -> bool {
    let s = crate::control::summary::summary(c);
    s.contains(text) || panic!("summary lacks {text:?}:\n{s}")
}

#[test]
fn tunnel_errors() {
    let svc =
        "[[service]]\nvip = \"10.0.0.100\"\nport = 80\n[[service.server]]\naddr = \"10.9.0.1\"\n";
    assert_err(
        &with(&format!("{svc}forward = \"nat\"\n")),
        &[
            "service[0].server[0].forward",
            "\"nat\" is not a forwarding method",
        ],
    );
    assert_err(
        &with(&format!("{svc}tun_type = \"gue\"\n")),
        &[
            "service[0].server[0].tun_type",
            "only for forward = \"tunnel\"",
        ],
    );
    assert_err(
        &with(&format!("{svc}forward = \"tunnel\"\ntun_type = \"gre\"\n")),
        &[
            "service[0].server[0].tun_type",
            "\"gre\" is not a tunnel type",
        ],
    );
    assert_err(
        &with(&format!("{svc}forward = \"tunnel\"\ntun_type = \"gue\"\n")),
        &["service[0].server[0].tun_port", "missing"],
    );
    assert_err(
        &with(&format!(
            "{svc}forward = \"tunnel\"\ntun_type = \"gue\"\ntun_port = 70000\n"
        )),
        &["service[0].server[0].tun_port"],
    );
    assert_err(
        &with(&format!("{svc}forward = \"tunnel\"\ntun_port = 6080\n")),
        &["service[0].server[0].tun_port", "ipip has no port"],
    );
    assert_err(
        &with(&format!("{svc}forward = \"tunnel\"\ntun_csum = true\n")),
        &["service[0].server[0].tun_csum"],
    );
    assert_err(
        &with(&format!(
            "gateway = \"10.0.1.254\"\n{svc}forward = \"tunnel\"\nmac = \"02:00:00:00:00:01\"\n"
        )),
        &["service[0].server[0].mac", "ports.gateway_mac"],
    );
    assert_err(
        &with("gateway_mac = \"02:00:00:00:00:01\"\n"),
        &["ports.gateway_mac", "ports.gateway is not"],
    );
    assert_err(
        &with("gateway = \"fd00::fe\"\n"),
        &["ports.gateway", "not an IPv4 address"],
    );
    assert_err(
        &with("gateway6 = \"ff02::1\"\n"),
        &["ports.gateway6", "not a unicast address"],
    );
    assert_err(
        &format!("{MIN}{svc}forward = \"tunnel\"\nmac = \"02:00:00:00:00:01\"\n"),
        &["ports.tunnel_addr", "missing"],
    );
    assert_err(
        &with(
            "mtu = 1300\n[[service]]\nvip = \"2001:db8::64\"\nport = 80\n[[service.server]]\naddr = \"fd00:9::1\"\nforward = \"tunnel\"\n",
        ),
        &["ports.mtu", "leaves 1260 bytes inside the ipip tunnel", "IPv6 minimum of 1280"],
    );
}

#[test]
fn rules_file_adds_ipvsadm_save_services_after_the_toml_ones() {
    let dir = std::env::temp_dir().join(format!("pmdlb-rules-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("rules");
    // As `ipvsadm-save -n` writes them (leading "ipvsadm" words and
    // comments allowed too).
    std::fs::write(
        &rules,
        "# from a kernel director\n-A -f 1 -s rr -p 360\n-a -f 1 -r 10.0.1.1:0 -g -w 1\nipvsadm -A -u 10.0.0.2:53 -s mh -o -b mh-port\n-a -u 10.0.0.2:53 -r 10.0.1.3:53 -g -w 0\n",
    )
    .unwrap();
    let text = format!(
        "{}[control]\nrules = \"{}\"\n[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[[service.server]]\naddr = \"10.0.1.9\"\n",
        with(""),
        rules.display()
    );
    let (c, _) = ok(&text);
    let s = c.services();
    assert_eq!(s.len(), 3);
    assert_eq!(s[1].addr, ServiceAddr::Fwmark(1));
    assert_eq!(s[1].persistence.unwrap().timeout_s, 360);
    assert!(s[2].ops && s[2].sched_flags.port);
    assert_eq!(s[2].servers[0].weight, 0);
    assert!(c
        .vips()
        .iter()
        .any(|v| v.addr == "10.0.0.2".parse::<std::net::IpAddr>().unwrap()));
    // A bad line names the file and the line; a service in both is refused.
    std::fs::write(&rules, "-A -f 1 -s rr\n-a -f 1 -r 10.0.1.1 -w 70000\n").unwrap();
    let e = err(&text);
    assert!(e.contains("control.rules") && e.contains("line 2"), "{e}");
    std::fs::write(&rules, "-A -t 10.0.0.1:80 -s rr\n").unwrap();
    let e = err(&text);
    assert!(e.contains("control.rules"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
