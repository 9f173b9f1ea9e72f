//! End to end with real TCP: curl clients in one namespace reach real
//! python HTTP servers (each answers its own name) through pmdlb on
//! net_af_packet, in the topology of scripts/netns.sh. No static ARP entry
//! anywhere: pmdlb answers ARP/ND for the VIP and resolves the servers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::netns::{config_text, config_text_mem, Lb, Topology, SERIAL};

const VIP: &str = "10.100.0.100";

fn client(i: usize) -> String {
    format!("10.100.0.{}", i + 2)
}

fn servers_block(prefix6: bool) -> String {
    (1..=3)
        .map(|s| {
            if prefix6 {
                format!("[[service.server]]\naddr = \"fd00:101::1{s}\"\n")
            } else {
                format!("[[service.server]]\naddr = \"10.100.1.1{s}\"\n")
            }
        })
        .collect()
}

fn count<'a>(names: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for n in names {
        *m.entry(n.clone()).or_insert(0) += 1;
    }
    m
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn balancing_persistence_and_fwmark_grouping() {
    let _g = lock();
    let t = Topology::up("a", 3, 12);
    let cfg = config_text(
        "pmdlb-e2e-a",
        &format!(
            "[[mark]]\ndst = \"{VIP}\"\nproto = \"tcp\"\nports = [80, 443]\nmark = 1\n\n\
             [[service]]\nfwmark = 1\nscheduler = \"rr\"\npersistent = 300\n{s}\n\
             [[service]]\nvip = \"{VIP}\"\nport = 8080\nscheduler = \"rr\"\n{s}\n\
             [[service]]\nvip = \"fd00:100::100\"\nport = 80\nscheduler = \"rr\"\n{s6}\n",
            s = servers_block(false),
            s6 = servers_block(true)
        ),
    );
    let lb = Lb::start(&t, "pmdlb-e2e-a", &cfg);

    // Twelve clients on the persistent fwmark service: spread over all three.
    let mut first = Vec::new();
    for i in 0..12 {
        let got = t.get(&client(i), &format!("http://{VIP}/"));
        assert!(
            got.starts_with("rs"),
            "client {} got {got:?}\n{}",
            client(i),
            lb.log()
        );
        first.push(got);
    }
    let spread = count(&first);
    assert_eq!(
        spread.len(),
        3,
        "clients not spread over 3 servers: {spread:?}"
    );
    assert!(
        spread.values().all(|&n| n >= 3),
        "rr should spread 12 clients evenly: {spread:?}"
    );

    // Persistence and fwmark grouping: each client keeps its server on 80 and 443.
    for (i, want) in first.iter().enumerate().take(6) {
        for _ in 0..3 {
            assert_eq!(
                &t.get(&client(i), &format!("http://{VIP}/")),
                want,
                "port 80 moved"
            );
            assert_eq!(
                &t.get(&client(i), &format!("http://{VIP}:443/")),
                want,
                "443 not grouped with 80"
            );
        }
    }

    // A non-persistent service schedules each connection on its own.
    let per_conn: Vec<String> = (0..9)
        .map(|_| t.get(&client(0), &format!("http://{VIP}:8080/")))
        .collect();
    let c = count(&per_conn);
    assert_eq!(
        c.len(),
        3,
        "non-persistent rr should use every server: {c:?}"
    );

    // IPv6 VIP.
    let v6: BTreeSet<String> = (0..6)
        .map(|_| {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &t.ns("cl"),
                    "curl",
                    "-s",
                    "-g",
                    "-m",
                    "5",
                    "http://[fd00:100::100]/",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    assert!(
        v6.iter().all(|s| s.starts_with("rs")) && v6.len() >= 2,
        "IPv6: {v6:?}"
    );

    // The client learned the VIP's MAC by ARP (pmdlb answered); nothing static.
    let neigh = t.client_neighbours();
    assert!(
        neigh.contains(VIP),
        "no neighbour entry for the VIP:\n{neigh}"
    );
    assert!(
        !neigh.contains("PERMANENT"),
        "static neighbour entries:\n{neigh}"
    );

    let stats = lb.ctl("stats").unwrap();
    assert!(stats.contains("forwarded"), "{stats}");
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("accounting:") && log.contains("unaccounted=0"),
        "{log}"
    );
}

#[test]
fn persistence_netmask_groups_a_subnet() {
    let _g = lock();
    let t = Topology::up("b", 3, 8);
    let cfg = config_text(
        "pmdlb-e2e-b",
        &format!(
            "[[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\npersistent = 300\nnetmask = \"255.255.255.0\"\n{}",
            servers_block(false)
        ),
    );
    let lb = Lb::start(&t, "pmdlb-e2e-b", &cfg);
    let got: Vec<String> = (0..8)
        .map(|i| t.get(&client(i), &format!("http://{VIP}/")))
        .collect();
    let c = count(&got);
    assert_eq!(
        c.len(),
        1,
        "a /24 persistence netmask keeps the whole subnet on one server: {c:?}\n{}",
        lb.log()
    );
    assert!(got[0].starts_with("rs"));
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn persistence_timeout_allows_rescheduling() {
    let _g = lock();
    let t = Topology::up("c", 3, 2);
    let cfg = config_text(
        "pmdlb-e2e-c",
        &format!(
            "[timeouts]\ntcp = 3\ntcp_fin = 1\ntcp_close = 1\n\n\
             [[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\npersistent = 2\n{}",
            servers_block(false)
        ),
    );
    let lb = Lb::start(&t, "pmdlb-e2e-c", &cfg);
    let a = t.get(&client(0), &format!("http://{VIP}/"));
    for _ in 0..3 {
        assert_eq!(
            t.get(&client(0), &format!("http://{VIP}/")),
            a,
            "within the timeout the client stays"
        );
    }
    // Silence longer than the connection timeouts plus the template timeout.
    std::thread::sleep(Duration::from_secs(7));
    let b = t.get(&client(0), &format!("http://{VIP}/"));
    assert!(b.starts_with("rs"), "{b:?}\n{}", lb.log());
    assert_ne!(
        a,
        b,
        "after the template expired rr must pick the next server\n{}",
        lb.log()
    );
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn weight_zero_is_quiescent() {
    let _g = lock();
    let t = Topology::up("d", 3, 12);
    let cfg = config_text(
        "pmdlb-e2e-d",
        &format!(
            "[[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\npersistent = 300\n{}",
            servers_block(false)
        ),
    );
    let lb = Lb::start(&t, "pmdlb-e2e-d", &cfg);
    let victim = t.get(&client(0), &format!("http://{VIP}/"));
    let victim_addr = format!("10.100.1.1{}", &victim[2..]);

    // An established connection to the victim: a 4 MiB download at 1 MiB/s.
    let dl = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns("cl"),
            "curl",
            "-s",
            "-m",
            "30",
            "--limit-rate",
            "1M",
        ])
        .args([
            "--interface",
            &client(0),
            "-o",
            "/dev/null",
            "-w",
            "%{size_download} %{http_code}",
        ])
        .arg(format!("http://{VIP}/big"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let ans = lb
        .ctl(&format!("weight tcp:{VIP}:80 {victim_addr} 0"))
        .unwrap();
    assert!(ans.starts_with("ok"), "{ans}");

    // New clients never land on the quiescent server.
    let fresh: Vec<String> = (1..12)
        .map(|i| t.get(&client(i), &format!("http://{VIP}/")))
        .collect();
    assert!(
        fresh.iter().all(|s| s.starts_with("rs") && *s != victim),
        "{victim} got new clients: {fresh:?}"
    );
    // The established download finishes, and the persistent client keeps its server.
    let out = dl.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), format!("{} 200", 4 << 20), "download cut off");
    assert_eq!(
        t.get(&client(0), &format!("http://{VIP}/")),
        victim,
        "template of a quiescent server continues"
    );
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
}

#[test]
fn sigterm_during_traffic_exits_cleanly() {
    let _g = lock();
    let t = Topology::up("e", 3, 4);
    // On real hugepages, to show no hugepage file is left behind.
    let cfg = config_text_mem(
        "pmdlb-e2e-e",
        true,
        &format!(
            "[[service]]\nvip = \"{VIP}\"\nport = 8080\nscheduler = \"wlc\"\n{}",
            servers_block(false)
        ),
    );
    let lb = Lb::start(&t, "pmdlb-e2e-e", &cfg);
    // Traffic in the background: a loop of requests from every client.
    let load = Command::new("ip")
        .args(["netns", "exec", &t.ns("cl"), "bash", "-c"])
        .arg(format!(
            "for i in $(seq 1 200); do for c in 2 3 4 5; do curl -s -m 2 --interface 10.100.0.$c http://{VIP}:8080/ >/dev/null & done; wait; done"
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let prefix = lb.prefix.clone();
    let mapped = std::fs::read_dir("/dev/hugepages")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        })
        .unwrap_or(0);
    assert!(mapped > 0, "pmdlb should run on hugepages here");
    let (code, log) = lb.stop();
    let mut load = load;
    let _ = load.kill();
    let _ = load.wait();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("pmdlb: stopped cleanly"), "{log}");
    assert!(log.contains("mbufs: all"), "mbufs leaked:\n{log}");
    assert!(log.contains("unaccounted=0"), "{log}");
    let fwd = log
        .lines()
        .find(|l| l.starts_with("forwarded"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(fwd > 0, "no traffic was forwarded before the stop:\n{log}");
    let left: Vec<_> = std::fs::read_dir("/dev/hugepages")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "hugepage files left: {left:?}");
    assert!(
        !std::path::Path::new(&format!("/run/pmdlb/{prefix}.sock")).exists(),
        "control socket left"
    );
    assert!(
        !std::path::Path::new(&format!("/var/run/dpdk/{prefix}")).exists(),
        "EAL runtime dir left"
    );
}

/// Two workers (EAL lcores 1 and 2 share CPU 1 on this 2-core machine),
/// each owning one af_packet queue; the kernel's fanout hash spreads flows
/// over them as RSS would. Connections of one client land on both workers,
/// yet the shared persistence table keeps the client on one server.
#[test]
fn two_workers_share_persistence() {
    let _g = lock();
    let t = Topology::up("f", 3, 6);
    let cfg = config_text(
        "pmdlb-e2e-f",
        &format!(
            "[[mark]]\ndst = \"{VIP}\"\nproto = \"tcp\"\nports = [80, 443]\nmark = 1\n\n\
             [[service]]\nfwmark = 1\nscheduler = \"rr\"\npersistent = 300\n{}",
            servers_block(false)
        ),
    )
    .replace("lcores = \"0-1\"", "lcores = \"0@0,1@1,2@1\"")
    .replace("qpairs=1", "qpairs=2");
    let lb = Lb::start(&t, "pmdlb-e2e-f", &cfg);
    for i in 0..6 {
        let got: Vec<String> = (0..8)
            .map(|k| {
                let port = if k % 2 == 0 { 80 } else { 443 };
                t.get(&client(i), &format!("http://{VIP}:{port}/"))
            })
            .collect();
        let c = count(&got);
        assert_eq!(
            c.len(),
            1,
            "client {} moved between servers: {c:?}\n{}",
            client(i),
            lb.log()
        );
        assert!(got[0].starts_with("rs"), "{got:?}");
    }
    let stats = lb.ctl("stats").unwrap();
    let rx: Vec<u64> = stats
        .lines()
        .find(|l| l.starts_with("rx "))
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(rx.len(), 3, "two worker columns and a total:\n{stats}");
    assert!(
        rx[0] > 0 && rx[1] > 0,
        "both workers must have received traffic:\n{stats}"
    );
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("unaccounted=0"), "{log}");
}

/// Tunnel servers in other subnets behind the router, next to a DR server
/// on the TX segment: curl through the VIP reaches all three over real TCP
/// (ipip and GUE decapsulated in the servers' namespaces, see
/// `tests/common/tunnel.rs`), and an upload in 1460-byte segments, too big
/// for the ipip tunnel, completes after the client's kernel took pmdlb's
/// fragmentation-needed (path-MTU discovery).
#[test]
fn tunnel_servers_behind_a_router() {
    use common::tunnel::TunnelServer;
    let _g = lock();
    let t = Topology::up("t", 1, 2);
    let ipip = TunnelServer::up(&t, 8, "ipip", 0);
    let gue = TunnelServer::up(&t, 9, "gue", 6080);
    let services = format!(
        "[[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\n\
         [[service.server]]\naddr = \"10.100.1.11\"\n\
         [[service.server]]\naddr = \"{}\"\nforward = \"tunnel\"\n\
         [[service.server]]\naddr = \"{}\"\nforward = \"tunnel\"\ntun_type = \"gue\"\ntun_port = 6080\n\n\
         [[service]]\nvip = \"{VIP}\"\nport = 9000\nscheduler = \"rr\"\n\
         [[service.server]]\naddr = \"{}\"\nforward = \"tunnel\"\n",
        ipip.addr, gue.addr, ipip.addr
    );
    let cfg = config_text("pmdlb-e2e-t", &services).replace(
        "tx_addr6 = \"fd00:101::2\"\n",
        "tx_addr6 = \"fd00:101::2\"\ngateway = \"10.100.1.1\"\n",
    );
    let lb = Lb::start(&t, "pmdlb-e2e-t", &cfg);
    let got: Vec<String> = (0..9)
        .map(|i| t.get(&client(i % 2), &format!("http://{VIP}/")))
        .collect();
    let c = count(&got);
    assert_eq!(
        c.keys().cloned().collect::<Vec<_>>(),
        ["rs1", "rs8", "rs9"],
        "rr over one DR and two tunnel servers: {c:?}\n{}",
        lb.log()
    );

    // 1 MiB upload: the client's first full-size segments (1500-byte
    // packets with DF) do not fit the ipip tunnel; pmdlb answers with
    // fragmentation-needed (MTU 1480), the client's kernel lowers its path
    // MTU to the VIP and the upload completes.
    let up = Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns("cl"),
            "timeout",
            "20",
            "python3",
            "-c",
        ])
        .arg(format!(
            "import socket\ns = socket.create_connection(('{VIP}', 9000), timeout=15)\n\
             s.sendall(b'u' * (1 << 20))\ns.shutdown(socket.SHUT_WR)\nprint(s.recv(100).decode())"
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&up.stdout).trim(),
        (1u32 << 20).to_string(),
        "upload through the tunnel: {}\n{}",
        String::from_utf8_lossy(&up.stderr),
        lb.log()
    );
    let stats = lb.ctl("stats").unwrap();
    let too_big = stats
        .lines()
        .find(|l| l.starts_with("too_big_sent"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(too_big >= 1, "no fragmentation-needed was sent:\n{stats}");
    eprintln!("tunnel e2e: servers {c:?}, upload of 1 MiB after {too_big} fragmentation-needed");
    drop((ipip, gue));
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("unaccounted=0"), "{log}");
}
