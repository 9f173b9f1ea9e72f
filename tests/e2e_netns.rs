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

/// Health checks (keepalived's HTTP_GET semantics) take a stopped server
/// out of scheduling and put it back: under a continuous curl loop rs2's
/// HTTP server is stopped → within delay_loop × (retry + 1) +
/// connect_timeout plus one interval no new client lands on rs2; started
/// again → rs2 receives new clients within one delay_loop (plus slack):
/// the check has `fast_recovery`, without which keepalived's HTTP_GET
/// needs a second pass one delay_loop after the failed url passes (that
/// path runs in `health_inhibit_misc_digest_and_quorum_hysteresis`).
/// The checks reach the servers through the lb namespace's kernel on a
/// management veth (bare metal: a management NIC routed to the servers).
#[test]
fn health_check_takes_a_stopped_server_out_and_back() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    let _g = lock();
    let mut t = Topology::up("h", 3, 4);
    t.add_management("10.100.1.3/24");
    let (delay_loop, retry, connect_timeout) = (1u64, 1u64, 1u64);
    let cfg = config_text(
        "pmdlb-e2e-h",
        &format!(
            "[metrics]\nlisten = \"127.0.0.1:9479\"\n\
             [[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\n\
             [service.health]\ndelay_loop = {delay_loop}\nconnect_timeout = {connect_timeout}\n\
             retry = {retry}\ndelay_before_retry = 1\n\
             sorry_server = \"10.100.1.13\"\n\
             [[service.health.check]]\ntype = \"http\"\npath = \"/index.html\"\nstatus_code = [200]\n\
             fast_recovery = true\n\
             [[service.server]]\naddr = \"10.100.1.11\"\n[[service.server]]\naddr = \"10.100.1.12\"\n"
        ),
    );
    let lb = Lb::start(&t, "pmdlb-e2e-h", &cfg);
    // Every server checked up at least once.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = lb.ctl("servers").unwrap();
        if s.matches(" up checks=").count() == 2
            && !s.contains("checks=0 ")
            && s.contains("sorry server standby")
        {
            break;
        }
        assert!(Instant::now() < deadline, "servers not checked up:\n{s}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The curl loop: (when it was sent, who answered; "" = failed).
    let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let looper = {
        let (log, stop, ns) = (Arc::clone(&log), Arc::clone(&stop), t.ns("cl"));
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let sent = Instant::now();
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns, "curl", "-sS", "-m", "2"])
                    .args(["--interface", &client(i % 4), &format!("http://{VIP}/")])
                    .output()
                    .unwrap();
                let mut who = String::from_utf8_lossy(&out.stdout).trim().to_string();
                if who.is_empty() {
                    // curl's exit 7 (cannot connect: refused, reset), 52
                    // (empty reply) or 56 (reset while receiving): the SYN
                    // reached a server with nothing on port 80 — a client
                    // landed on a stopped server. 28 is a timeout, which
                    // says nothing about where it landed.
                    who = match out.status.code() {
                        Some(7 | 52 | 56) => "REFUSED".into(),
                        c => format!("TIMEOUT exit {c:?}"),
                    };
                }
                log.lock().unwrap().push((sent, who));
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let t_stop = Instant::now();
    t.stop_server(2, "80");
    // Detection as the control plane reports it.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lb.ctl("servers").unwrap().contains(" down checks=") {
        assert!(
            Instant::now() < deadline,
            "rs2 never reported down\n{}",
            lb.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let detected = t_stop.elapsed();
    let bound = Duration::from_secs(delay_loop * (retry + 1) + connect_timeout + delay_loop);
    std::thread::sleep(bound.saturating_sub(detected) + Duration::from_secs(2));
    let servers_down = lb.ctl("servers").unwrap();
    assert!(
        servers_down.contains("last=fail http#0: /index.html: connect"),
        "{servers_down}"
    );

    // The exposition says so too (rendered once a second), and promtool
    // accepts it.
    let deadline = Instant::now() + Duration::from_secs(5);
    let metrics = loop {
        let out = Command::new("ip")
            .args(["netns", "exec", &t.ns("lb"), "curl", "-s", "-m", "2"])
            .arg("http://127.0.0.1:9479/metrics")
            .output()
            .unwrap();
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        let health: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with("pmdlb_backend_health{"))
            .collect();
        if health.len() == 2
            && health.iter().all(|l| {
                l.ends_with(if l.contains("\"10.100.1.12\"") {
                    " 0"
                } else {
                    " 1"
                })
            })
        {
            break body;
        }
        assert!(Instant::now() < deadline, "pmdlb_backend_health:\n{body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(metrics.contains("pmdlb_backend_health_check_failures_total{"));
    let mut p = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    {
        use std::io::Write;
        p.stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
    }
    let out = p.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let t_start = Instant::now();
    t.start_server(2, "80");
    let listening = t_start.elapsed();
    let t_up = Instant::now();
    let deadline = t_up + Duration::from_secs(10);
    let back = loop {
        if let Some((at, _)) = log
            .lock()
            .unwrap()
            .iter()
            .find(|(at, who)| *at >= t_up && who == "rs2")
        {
            break at.duration_since(t_up);
        }
        assert!(Instant::now() < deadline, "rs2 got no new client again");
        std::thread::sleep(Duration::from_millis(20));
    };

    // All real servers down → quorum (1) lost: the sorry server rs3 gets
    // every new client; rs1 back → quorum restored, rs3 on standby again.
    std::thread::sleep(Duration::from_millis(500));
    t.stop_server(1, "80");
    t.stop_server(2, "80");
    let t_all_down = Instant::now();
    let deadline = t_all_down + Duration::from_secs(15);
    while !lb.ctl("servers").unwrap().contains("sorry server in") {
        assert!(
            Instant::now() < deadline,
            "quorum never lost\n{}",
            lb.ctl("servers").unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sorry_in = t_all_down.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let t_sorry = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    t.start_server(1, "80");
    let t_rs1 = Instant::now();
    let deadline = t_rs1 + Duration::from_secs(10);
    let rs1_back = loop {
        if let Some((at, _)) = log
            .lock()
            .unwrap()
            .iter()
            .find(|(at, who)| *at >= t_rs1 && who == "rs1")
        {
            break *at;
        }
        assert!(Instant::now() < deadline, "rs1 got no new client again");
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    looper.join().unwrap();

    let log = log.lock().unwrap();
    let after_stop: Vec<&(Instant, String)> = log.iter().filter(|(at, _)| *at >= t_stop).collect();
    let last_failure = after_stop
        .iter()
        .filter(|(at, who)| who == "REFUSED" && *at < t_up)
        .map(|(at, _)| at.duration_since(t_stop))
        .max()
        .unwrap_or_default();
    let late: Vec<String> = after_stop
        .iter()
        .filter(|(at, who)| *at >= t_stop + bound && *at < t_start && who == "REFUSED")
        .map(|(at, who)| format!("{:?}:{who:?}", at.duration_since(t_stop)))
        .collect();
    let during: usize = after_stop
        .iter()
        .filter(|(at, who)| *at >= t_stop + bound && *at < t_start && who.starts_with("rs"))
        .count();
    println!(
        "health e2e: down reported after {detected:?}, last failed request {last_failure:?} after the stop \
         (bound {bound:?}); {during} requests answered while rs2 was out; rs2 listening again after \
         {listening:?}, first new client on rs2 {back:?} later (delay_loop {delay_loop} s)"
    );
    assert!(detected <= bound, "detection {detected:?} over {bound:?}");
    assert!(late.is_empty(), "requests failed after the bound: {late:?}");
    assert!(during >= 5, "too few requests to show anything: {during}");
    assert!(
        !after_stop
            .iter()
            .any(|(at, who)| *at >= t_stop + bound && *at < t_start && who == "rs2"),
        "rs2 answered while stopped?"
    );
    assert!(
        back <= Duration::from_secs(delay_loop) + Duration::from_secs(2),
        "rs2 back after {back:?}"
    );
    let timeouts: Vec<String> = log
        .iter()
        .filter(|(_, who)| who.starts_with("TIMEOUT"))
        .map(|(at, who)| format!("{:?} {who}", at.duration_since(t_stop)))
        .take(10)
        .collect();
    let landed = |from: Instant, to: Option<Instant>| -> Vec<&String> {
        log.iter()
            .filter(|(at, who)| {
                *at >= from && to.map_or(true, |t| *at < t) && !who.starts_with("TIMEOUT")
            })
            .map(|(_, who)| who)
            .collect()
    };
    let sorry_phase = landed(t_sorry, Some(t_rs1));
    let after_rs1 = landed(rs1_back + Duration::from_millis(1), None);
    println!("health e2e: {} of {} requests timed out (lost, not scheduled anywhere observable): {timeouts:?}", timeouts.len(), log.len());
    assert!(
        timeouts.len() <= 3,
        "too many timeouts to judge: {timeouts:?}"
    );
    println!(
        "health e2e: all real servers down → sorry server in after {sorry_in:?}; {} requests to it; \
         rs1 back {:?} after listening, then {} requests",
        sorry_phase.len(),
        rs1_back.duration_since(t_rs1),
        after_rs1.len()
    );
    assert!(
        sorry_phase.len() >= 3 && sorry_phase.iter().all(|w| *w == "rs3"),
        "quorum lost: only the sorry server answers: {sorry_phase:?}"
    );
    assert!(
        after_rs1.len() >= 3 && after_rs1.iter().all(|w| *w == "rs1"),
        "quorum back: the sorry server gets no new client: {after_rs1:?}"
    );
    let stats = lb.log();
    assert!(
        stats.contains("rs_down=1"),
        "the statistics line shows rs2 down"
    );
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// The row of real server `addr` under the service on `port` in `ctl
/// servers` (empty if none).
fn server_row(table: &str, port: u16, addr: &str) -> String {
    let mut in_svc = false;
    for line in table.lines() {
        if let Some(rest) = line.strip_prefix("  -> ") {
            if in_svc && rest.split_whitespace().next() == Some(addr) {
                return line.to_string();
            }
        } else {
            in_svc = line.contains(&format!(":{port} "));
        }
    }
    String::new()
}

/// The weight column of a `ctl servers` row.
fn row_weight(row: &str) -> u32 {
    row.split_whitespace()
        .nth(3)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no weight in {row:?}"))
}

/// Who answered `svc` among the requests sent in `from..to`.
fn answered(
    load: &Load,
    svc: &str,
    from: std::time::Instant,
    to: std::time::Instant,
) -> Vec<String> {
    load.answers()
        .into_iter()
        .filter(|a| a.svc == svc && a.sent >= from && a.sent < to && !a.who.is_empty())
        .map(|a| a.who)
        .collect()
}

/// A TCP server on port 9000 that accepts every connection and never
/// answers (nor closes).
const HANG: &str = "import socket\n\
s = socket.socket()\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', 9000))\n\
s.listen(64)\n\
kept = []\n\
while True:\n    kept.append(s.accept()[0])\n";

/// While port 8081's first check hangs (it started with pmdlb and has
/// no result until its 30 s timeout), `ctl servers` answers (measured:
/// about 0.1 s; bound 5 s) and a statistics line comes every second: a
/// hanging target holds its own check thread, nothing else.
fn control_plane_while_a_check_hangs(lb: &Lb) {
    use std::time::Instant;

    let hung = || server_row(&lb.ctl("servers").unwrap(), 8081, "10.100.1.13");
    let lines = |log: &str| log.matches("rs_down=").count();
    let before = lines(&lb.log());
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    while t0.elapsed() < Duration::from_secs(4) {
        let t = Instant::now();
        lb.ctl("servers").unwrap();
        worst = worst.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = lines(&lb.log()) - before;
    let row = hung();
    println!(
        "health e2e (hanging target): ctl servers took at most {worst:?} over 4 s of hanging \
         checks; {stats} statistics lines; {row}"
    );
    // Far below the 30 s the check hangs, with room for a busy machine.
    assert!(worst < Duration::from_secs(5), "ctl servers took {worst:?}");
    assert!(stats >= 3, "{stats} statistics lines in 4 s");
    assert!(
        row.contains(" up checks=0 "),
        "the check did not hang through the window: {row}"
    );
}

/// A child process killed (even if stopped) when the test lets go of it,
/// also when it fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A rate-limited download of `/dl` through the VIP from `client`, running
/// in the background into `out`; `/dl` exists on rs2 only, so an attempt
/// that lands elsewhere fails at once (404) and is tried again. Returns
/// once bytes from rs2 flow.
fn download_from_rs2(t: &Topology, client: &str, out: &std::path::Path) -> KillOnDrop {
    for _ in 0..20 {
        let _ = std::fs::remove_file(out);
        let mut child = Command::new("ip")
            .args(["netns", "exec", &t.ns("cl"), "curl", "-s", "-f"])
            .args(["--limit-rate", "1M", "--interface", client, "-o"])
            .arg(out)
            .arg(format!("http://{VIP}/dl"))
            .spawn()
            .expect("curl");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if std::fs::metadata(out).map_or(0, |m| m.len()) > 0 {
                return KillOnDrop(child);
            }
            if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("no download landed on rs2 in 20 attempts");
}

/// keepalived semantics end to end, under curl loops on two services.
///
/// Port 80, `inhibit_on_failure`, a MISC_CHECK per server whose script
/// fails while a flag file exists: while an 8 MiB download at 1 MiB/s runs
/// from rs2 (its client paused, so it surely spans the change), rs2's
/// script starts failing → within `delay_loop × (retry + 1) +
/// misc_timeout` plus one interval rs2 is at weight 0 and gets no new
/// client; resumed, the download finishes whole (size and MD5) through the
/// quiesced rs2. A SIGHUP reload and an admin change of rs1 leave rs2 down;
/// the script passing again brings rs2 back to new clients.
///
/// Port 8080, an HTTP_GET with status 200 and a digest, rs1 weight 2, rs2
/// weight 1, quorum 2 with hysteresis 1 (lost below 1, regained at 3),
/// sorry server rs3: rs1's body changes (digest mismatch) → rs1 out, quorum
/// kept (1 ≥ 1); rs2's url is deleted (404) → quorum lost, only rs3
/// answers; rs1 back (sum 2 < 3) → still only rs3; rs2 back (3) → rs1 and
/// rs2 again, rs3 on standby.
///
/// Port 8081: an HTTP_GET of a target that accepts and never answers (30 s
/// timeout): while its first check hangs, `ctl servers` answers promptly
/// and the statistics line keeps coming every second; the check then fails
/// with a timeout.
#[test]
fn health_inhibit_misc_digest_and_quorum_hysteresis() {
    let _g = lock();
    let mut t = Topology::up("k", 3, 4);
    t.spawn_in("rs3", &["python3", "-c", HANG]);
    wait_for("the hanging target listens", 10, || {
        let out = Command::new("ip")
            .args(["netns", "exec", &t.ns("rs3"), "ss", "-ltn"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains(":9000 ")
    });
    t.add_management("10.100.1.3/24");
    let flags = t.scratch();
    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    t.write_www(2, "dl", &big);
    for s in 1..=2 {
        t.write_www(s, "health.html", b"ok\n");
    }
    let misc = |s: usize| {
        format!(
            "[[service.server]]\naddr = \"10.100.1.1{s}\"\n\
             [[service.server.health.check]]\ntype = \"misc\"\nmisc_timeout = 1\n\
             misc_path = \"test ! -e {}\"\n",
            flags.join(format!("rs{s}.down")).display()
        )
    };
    let ok_md5 = format!("{:x}", md5::compute(b"ok\n"));
    let cfg = config_text(
        "pmdlb-e2e-k",
        &format!(
            "[[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\n\
             [service.health]\ndelay_loop = 1\nretry = 1\ndelay_before_retry = 1\n\
             inhibit_on_failure = true\n{}{}\n\
             [[service]]\nvip = \"{VIP}\"\nport = 8080\nscheduler = \"rr\"\n\
             [service.health]\ndelay_loop = 1\nconnect_timeout = 1\nretry = 0\n\
             delay_before_retry = 1\nquorum = 2\nhysteresis = 1\nsorry_server = \"10.100.1.13\"\n\
             [[service.health.check]]\ntype = \"http\"\npath = \"/health.html\"\n\
             status_code = [200]\ndigest = \"{ok_md5}\"\n\
             [[service.server]]\naddr = \"10.100.1.11\"\nweight = 2\n\
             [[service.server]]\naddr = \"10.100.1.12\"\n\
             [[service]]\nvip = \"{VIP}\"\nport = 8081\n\
             [service.health]\ndelay_loop = 1\nconnect_timeout = 30\nretry = 0\n\
             [[service.health.check]]\ntype = \"http\"\nconnect_port = 9000\n\
             [[service.server]]\naddr = \"10.100.1.13\"\n",
            misc(1),
            misc(2)
        ),
    );
    let lb = Lb::start(&t, "pmdlb-e2e-k", &cfg);
    wait_for("every server checked but the hanging one", 20, || {
        let s = lb.ctl("servers").unwrap();
        s.matches(" up checks=").count() == 5 && s.matches("checks=0 ").count() == 1
    });
    control_plane_while_a_check_hangs(&lb);
    let mut load = Load::new(&t);
    for c in 0..2 {
        load.spawn("A", client(c), format!("http://{VIP}/"));
    }
    for c in 2..4 {
        load.spawn("B", client(c), format!("http://{VIP}:8080/"));
    }
    inhibit_under_a_download(&t, &lb, &load, &flags, &big);
    quorum_with_hysteresis(&t, &lb, &load);
    drop(load);
    wait_for("the hanging check fails at its timeout", 40, || {
        let row = server_row(&lb.ctl("servers").unwrap(), 8081, "10.100.1.13");
        row.contains(" down checks=1 ") && row.contains("last=fail http#0: /: response: timed out")
    });
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
}

/// Port 80's part of [`health_inhibit_misc_digest_and_quorum_hysteresis`].
fn inhibit_under_a_download(
    t: &Topology,
    lb: &Lb,
    load: &Load,
    flags: &std::path::Path,
    big: &[u8],
) {
    use std::time::Instant;

    let (delay_loop, retry, misc_timeout) = (1u64, 1u64, 1u64);
    let bound = Duration::from_secs(delay_loop * (retry + 1) + misc_timeout + delay_loop);
    let rs2 = || server_row(&lb.ctl("servers").unwrap(), 80, "10.100.1.12");
    wait_for("rs2 answers port 80", 10, || {
        load.answers()
            .iter()
            .any(|a| a.svc == "A" && a.who == "rs2")
    });
    let out = t.scratch().join("dl.out");
    let mut dl = download_from_rs2(t, &client(3), &out);
    // The client pauses (its kernel keeps the connection, advertising a
    // closed window) so the download is surely still running when rs2
    // goes down, however fast curl's rate limit lets it start.
    let signal = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &dl.0.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig} curl");
    };
    signal("-STOP");
    let t_flip = Instant::now();
    std::fs::write(flags.join("rs2.down"), b"").unwrap();
    wait_for("rs2 reported down at weight 0", 15, || {
        let r = rs2();
        r.contains(" down checks=") && row_weight(&r) == 0
    });
    let detected = t_flip.elapsed();
    let partial = std::fs::metadata(&out).map_or(0, |m| m.len());
    let row = rs2();
    assert!(row.contains("last=fail misc#0: exit 1"), "{row}");
    // A reload and a change of rs1 do not concern rs2: it stays down.
    lb.signal("HUP");
    wait_for("the reload", 10, || {
        lb.log().contains("pmdlb: SIGHUP: reloading")
    });
    admin_ok(
        lb,
        &[
            "-e",
            "-t",
            &format!("{VIP}:80"),
            "-r",
            "10.100.1.11:80",
            "-w",
            "3",
        ],
        "",
    );
    let (r1, r2) = (
        server_row(&lb.ctl("servers").unwrap(), 80, "10.100.1.11"),
        rs2(),
    );
    assert!(row_weight(&r1) == 3 && r1.contains(" up checks="), "{r1}");
    assert!(row_weight(&r2) == 0 && r2.contains(" down checks="), "{r2}");
    signal("-CONT");
    let t_cont = Instant::now();
    let st = dl.0.wait().unwrap();
    let rest = t_cont.elapsed();
    let done = t_flip.elapsed();
    let got = std::fs::read(&out).unwrap_or_default();
    println!(
        "health e2e (inhibit): rs2's misc check failing → down at weight 0 after {detected:?} \
         (bound {bound:?}); the download from rs2 had {partial} bytes then, and finished {done:?} after \
         the flip ({rest:?} after the client resumed): {} of {} bytes, {st}",
        got.len(),
        big.len()
    );
    assert!(detected <= bound, "detection {detected:?} over {bound:?}");
    assert!(
        partial < big.len() as u64,
        "the download was over before rs2 went down"
    );
    assert!(st.success(), "the download from quiesced rs2 failed: {st}");
    assert!(
        got.len() == big.len() && md5::compute(&got) == md5::compute(big),
        "the download arrived damaged: {} bytes",
        got.len()
    );
    wait_for("five port-80 answers after the bound", 15, || {
        answered(load, "A", t_flip + bound, Instant::now()).len() >= 5
    });
    let since_bound = answered(load, "A", t_flip + bound, Instant::now());
    assert!(
        !since_bound.iter().any(|w| w == "rs2"),
        "new clients on rs2 while it is down: {since_bound:?}"
    );
    let t_back = Instant::now();
    std::fs::remove_file(flags.join("rs2.down")).unwrap();
    wait_for("rs2 gets new clients again", 10, || {
        load.answers()
            .iter()
            .any(|a| a.svc == "A" && a.sent >= t_back && a.who == "rs2")
    });
    let back = t_back.elapsed();
    println!(
        "health e2e (inhibit): rs2's script passing again → a new client on rs2 after {back:?}"
    );
    assert!(
        back <= Duration::from_secs(delay_loop + 2),
        "rs2 back after {back:?}: over one delay_loop (plus slack)"
    );
    assert!(
        row_weight(&rs2()) == 1,
        "back at its configured weight: {}",
        rs2()
    );
}

/// Port 8080's part of [`health_inhibit_misc_digest_and_quorum_hysteresis`].
fn quorum_with_hysteresis(t: &Topology, lb: &Lb, load: &Load) {
    use std::time::Instant;

    let table = || lb.ctl("servers").unwrap();
    let row = |addr: &str| server_row(&table(), 8080, addr);
    let (rs1, rs2, rs3) = ("10.100.1.11", "10.100.1.12", "10.100.1.13");
    // Only `who` answers requests sent from now on (after a short grace
    // for those already scheduled), at least three of them.
    let only = |what: &str, who: &[&str]| {
        let from = Instant::now() + Duration::from_millis(300);
        wait_for(what, 10, || {
            answered(load, "B", from, Instant::now()).len() >= 3
        });
        std::thread::sleep(Duration::from_millis(600));
        let got = answered(load, "B", from, Instant::now());
        assert!(
            got.iter().all(|w| who.contains(&w.as_str())),
            "{what}: {got:?}"
        );
        got
    };
    // The digest no longer matches: rs1 out; 1 ≥ 2 − 1 keeps the quorum.
    t.write_www(1, "health.html", b"changed\n");
    wait_for("rs1 down on its digest", 10, || {
        row(rs1).contains(" down checks=")
    });
    assert!(row(rs1).contains("/health.html: digest "), "{}", row(rs1));
    assert!(row(rs3).contains("sorry server standby"), "{}", table());
    only("rs1 out, quorum kept", &["rs2"]);
    // The url is gone (404): rs2 out, the sum 0 < 1 loses the quorum.
    t.remove_www(2, "health.html");
    wait_for("quorum lost", 10, || row(rs3).contains("sorry server in"));
    assert!(
        row(rs2).contains("/health.html: status 404"),
        "{}",
        row(rs2)
    );
    only("quorum lost: the sorry server", &["rs3"]);
    // rs1 back: 2 < 2 + 1, the sorry server stays.
    t.write_www(1, "health.html", b"ok\n");
    wait_for("rs1 up again", 10, || row(rs1).contains(" up checks="));
    let held = only("hysteresis: still the sorry server", &["rs3"]);
    assert!(row(rs3).contains("sorry server in"), "{}", table());
    // rs2 back: 3 ≥ 3, the real servers again.
    t.write_www(2, "health.html", b"ok\n");
    let t_rs2 = Instant::now();
    wait_for("quorum regained", 10, || {
        row(rs3).contains("sorry server standby")
    });
    let regained = t_rs2.elapsed();
    let after = only("quorum regained: the real servers", &["rs1", "rs2"]);
    println!(
        "health e2e (quorum): {} requests to the sorry server while rs1 alone was back \
         (hysteresis), quorum regained {regained:?} after rs2's url came back, then {:?}",
        held.len(),
        count(&after)
    );
}

/// Tunnel servers in other subnets behind the router, next to a DR server
/// on the TX segment: curl through the VIP reaches all three over real TCP
/// (ipip and GUE decapsulated in the servers' namespaces, see
/// `tests/common/tunnel.rs`), and an upload in 1460-byte segments, too big
/// for the ipip tunnel, completes after the client's kernel took pmdlb's
/// fragmentation-needed (path-MTU discovery); a 1500-byte UDP datagram
/// without DF, too big for the tunnel, reaches the ipip server as outer
/// fragments that its kernel reassembles.
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
         [[service.server]]\naddr = \"{}\"\nforward = \"tunnel\"\n\n\
         [[service]]\nvip = \"{VIP}\"\nport = 9001\nproto = \"udp\"\nscheduler = \"rr\"\n\
         [[service.server]]\naddr = \"{}\"\nforward = \"tunnel\"\n",
        ipip.addr, gue.addr, ipip.addr, ipip.addr
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

    // A UDP datagram of 1500 bytes without DF (IP_PMTUDISC_OMIT: no DF,
    // no local fragmenting at a learned path MTU) is 1520 once in ipip:
    // pmdlb sends it as two outer fragments, the server's kernel
    // reassembles, the server answers with the length it got. Sent again
    // if no answer comes within 2 s (UDP), at most 5 times.
    let udp = Command::new("ip")
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
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.setsockopt(socket.IPPROTO_IP, 10, 5)\ns.settimeout(2)\n\
             s.connect(('{VIP}', 9001))\n\
             for _ in range(5):\n    s.send(b'f' * 1472)\n    \
             try:\n        print(s.recv(100).decode())\n        break\n    \
             except socket.timeout:\n        pass\n"
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&udp.stdout).trim(),
        "1472",
        "a non-DF datagram through the tunnel in outer fragments: {}\n{}",
        String::from_utf8_lossy(&udp.stderr),
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
    let total = |name: &str| {
        stats
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let too_big = total("too_big_sent");
    assert!(too_big >= 1, "no fragmentation-needed was sent:\n{stats}");
    let fragmented = total("tunnel_fragmented");
    assert!(
        fragmented >= 1,
        "no packet went in outer fragments:\n{stats}"
    );
    assert_eq!(total("drop.tunnel_fragment_failed"), 0, "{stats}");
    eprintln!(
        "tunnel e2e: servers {c:?}, a 1500-byte UDP datagram without DF in outer fragments \
         ({fragmented} sent), upload of 1 MiB after {too_big} fragmentation-needed"
    );
    drop((ipip, gue));
    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("unaccounted=0"), "{log}");
}

/// What one request of a load loop saw: the service (`P`, `Q`, `R`), the
/// client address, when it was sent and answered, and who answered (empty:
/// it failed).
#[derive(Clone, Debug)]
struct Answered {
    svc: &'static str,
    client: String,
    sent: std::time::Instant,
    done: std::time::Instant,
    who: String,
}

/// Curl loops in the client namespace, one thread each, recording every
/// answer until stopped.
struct Load {
    ns: String,
    log: std::sync::Arc<std::sync::Mutex<Vec<Answered>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn new(t: &Topology) -> Load {
        Load {
            ns: t.ns("cl"),
            log: Default::default(),
            stop: Default::default(),
            threads: Vec::new(),
        }
    }

    fn spawn(&mut self, svc: &'static str, client: String, url: String) {
        let (ns, log, stop) = (
            self.ns.clone(),
            std::sync::Arc::clone(&self.log),
            std::sync::Arc::clone(&self.stop),
        );
        self.threads.push(std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = std::time::Instant::now();
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns, "curl", "-s", "-m", "10"])
                    .args(["--interface", &client, &url])
                    .output()
                    .unwrap();
                let who = String::from_utf8_lossy(&out.stdout).trim().to_string();
                let ok = out.status.success() && who.starts_with("rs");
                log.lock().unwrap().push(Answered {
                    svc,
                    client: client.clone(),
                    sent,
                    done: std::time::Instant::now(),
                    who: if ok { who } else { String::new() },
                });
                std::thread::sleep(Duration::from_millis(200));
            }
        }));
    }

    fn answers(&self) -> Vec<Answered> {
        self.log.lock().unwrap().clone()
    }

    fn finish(mut self) -> Vec<Answered> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in self.threads.drain(..) {
            h.join().unwrap();
        }
        self.answers()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in self.threads.drain(..) {
            let _ = h.join();
        }
    }
}

/// The server rows of service `head` (`"TCP  10.100.0.100:80"`) in an
/// ipvsadm listing, each split into its columns without the `->`.
fn listing_rows(listing: &str, head: &str) -> Vec<Vec<String>> {
    let mut lines = listing
        .lines()
        .skip_while(|l| !(l.starts_with(head) && l[head.len()..].starts_with(' ')));
    if lines.next().is_none() {
        return Vec::new();
    }
    lines
        .take_while(|l| l.starts_with("  -> "))
        .map(|l| l[5..].split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn col(row: &[String], i: usize) -> u64 {
    row[i]
        .parse()
        .unwrap_or_else(|_| panic!("column {i} of {row:?}"))
}

/// Live state the steps must not disturb: P's connection entries
/// (ActiveConn + InActConn of `-L -n`) and persistence templates
/// (PersistConn of `--persistent-conn`), and the datagrams every UDP
/// receiver counted.
#[derive(Clone, Debug)]
struct Sample {
    p_conns: u64,
    p_templates: u64,
    udp: Vec<u64>,
}

fn admin_ok(lb: &Lb, args: &[&str], stdin: &str) -> String {
    let (code, out, err) = lb.admin(args, stdin);
    assert_eq!(code, 0, "pmdlb admin {args:?}: {err}{out}");
    out
}

fn sample(lb: &Lb, t: &Topology) -> Sample {
    let head = format!("TCP  {VIP}:80");
    // -L -n: RemoteAddress:Port Forward Weight ActiveConn InActConn.
    let list = admin_ok(lb, &["-L", "-n"], "");
    let p_conns = listing_rows(&list, &head)
        .iter()
        .map(|r| col(r, 3) + col(r, 4))
        .sum();
    // --persistent-conn: RemoteAddress:Port Weight PersistConn ActiveConn InActConn.
    let pc = admin_ok(lb, &["-L", "-n", "--persistent-conn"], "");
    let p_templates = listing_rows(&pc, &head).iter().map(|r| col(r, 2)).sum();
    let udp = (1..=3).map(|s| t.udp_count(s).unwrap_or(0)).collect();
    Sample {
        p_conns,
        p_templates,
        udp,
    }
}

/// The workers' `templates_created` counter (`pmdlb ctl stats`).
fn templates_created(lb: &Lb) -> u64 {
    let stats = lb.ctl("stats").unwrap();
    stats
        .lines()
        .find(|l| l.starts_with("templates_created "))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no templates_created:\n{stats}"))
}

/// Waits (bounded, polling) until `cond` holds; panics with `what`.
fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One run-time change while the load runs.
#[derive(Debug)]
struct Step {
    name: String,
    /// The services (`P Q R U`) whose requests may fail during it.
    may_fail: &'static str,
    from: std::time::Instant,
    to: std::time::Instant,
}

/// Issue 10 end to end: run-time changes through `pmdlb admin` (ipvsadm's
/// command line) and SIGHUP under continuous load on three services —
/// persistent TCP P (the one the changes do not concern, until -C/-R),
/// TCP Q (the one they edit) and UDP U (a steady datagram stream) — plus R,
/// added at run time. Every step is sampled before and after: what a step
/// does not concern keeps working, keeps its connection entries and
/// templates, and keeps its persistent clients on their servers.
#[test]
fn admin_and_reload_under_load() {
    use std::time::Instant;

    let _g = lock();
    let mut t = Topology::up("r", 4, 6);
    t.serve_http(2, "8081");
    t.serve_http(3, "8081");
    t.udp_receivers(1..=3, 5353);
    let server = |s: usize| format!("[[service.server]]\naddr = \"10.100.1.1{s}\"\n");
    let q_servers = |list: &[usize]| list.iter().map(|&s| server(s)).collect::<String>();
    // Long FIN_WAIT / CLOSE timeouts: no entry of the test expires during
    // it, so P's entry count can only grow while nothing disturbs it.
    let services = |q: &[usize]| {
        format!(
            "[timeouts]\ntcp_fin = 900\ntcp_close = 900\n\n\
             [[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"rr\"\npersistent = 300\n{p}\n\
             [[service]]\nvip = \"{VIP}\"\nport = 8080\nscheduler = \"rr\"\n{q}\n\
             [[service]]\nvip = \"{VIP}\"\nport = 5353\nproto = \"udp\"\nscheduler = \"rr\"\n{p}\n",
            p = q_servers(&[1, 2, 3]),
            q = q_servers(q),
        )
    };
    let cfg = config_text("pmdlb-e2e-r", &services(&[1, 2, 3]));
    let lb = Lb::start(&t, "pmdlb-e2e-r", &cfg);
    let t0 = Instant::now();

    // The UDP stream: six flows (source ports) from one client, 20
    // datagrams a second each; rr puts two on every server.
    const SEND: &str = "import socket, sys, time\n\
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(6)]\n\
        for s in socks:\n    s.bind((sys.argv[1], 0))\n\
        while True:\n    for s in socks:\n        s.sendto(b'x', (sys.argv[2], 5353))\n    time.sleep(0.05)\n";
    t.spawn_in("cl", &["python3", "-c", SEND, &client(5), VIP]);

    let mut load = Load::new(&t);
    let p_clients: Vec<String> = (0..4).map(client).collect();
    for c in &p_clients {
        load.spawn("P", c.clone(), format!("http://{VIP}/"));
    }
    load.spawn("Q", client(4), format!("http://{VIP}:8080/"));

    // Everything flows before the first step: every P client answered,
    // Q too, and every UDP receiver counts.
    wait_for("first answers on P and Q", 20, || {
        let a = load.answers();
        p_clients
            .iter()
            .all(|c| a.iter().any(|x| &x.client == c && !x.who.is_empty()))
            && a.iter().any(|x| x.svc == "Q" && !x.who.is_empty())
    });
    wait_for("UDP at every server", 20, || {
        (1..=3).all(|s| t.udp_count(s).unwrap_or(0) > 0)
    });
    std::thread::sleep(Duration::from_secs(1));
    let base = sample(&lb, &t);
    assert!(
        base.p_templates >= p_clients.len() as u64 && base.p_conns > 0,
        "P's templates and entries before the steps: {base:?}"
    );

    let settle = Duration::from_millis(1500);
    let mut steps: Vec<Step> = Vec::new();
    // One step: sample, act, settle, sample; what the step does not
    // concern (`concerns`: P and/or U) must not lose entries, templates
    // or datagrams.
    let mut step = |name: &str, concerns: &str, may_fail: &'static str, act: &mut dyn FnMut()| {
        let before = sample(&lb, &t);
        let from = Instant::now();
        act();
        let to = Instant::now();
        std::thread::sleep(settle);
        if !concerns.contains('U') {
            // Every UDP flow keeps its server: all three keep counting.
            wait_for(
                &format!("{name}: UDP kept arriving at every server"),
                10,
                || {
                    let now = sample(&lb, &t);
                    now.udp.iter().zip(&before.udp).all(|(a, b)| a > b)
                },
            );
        }
        let after = sample(&lb, &t);
        if !concerns.contains('P') {
            assert!(
                after.p_conns >= before.p_conns && after.p_templates >= before.p_templates,
                "{name}: P lost entries or templates: {before:?} → {after:?}"
            );
        }
        eprintln!("admin e2e: {name}: {before:?} → {after:?}");
        steps.push(Step {
            name: name.to_string(),
            may_fail,
            from,
            to,
        });
        to
    };
    let vip = |port: u16| format!("{VIP}:{port}");

    // 1. A new service R, answering.
    step("-A R, -a two servers", "", "", &mut || {
        admin_ok(&lb, &["-A", "-t", &vip(8081), "-s", "rr"], "");
        for rs in ["10.100.1.12", "10.100.1.13"] {
            admin_ok(&lb, &["-a", "-t", &vip(8081), "-r", rs], "");
        }
        wait_for("R answers", 20, || {
            t.get(&client(5), &format!("http://{}/", vip(8081)))
                .starts_with("rs")
        });
    });
    load.spawn("R", client(5), format!("http://{}/", vip(8081)));

    // 2.-5. Q's servers and scheduler.
    step("-e Q rs1 -w 3", "", "", &mut || {
        admin_ok(
            &lb,
            &["-e", "-t", &vip(8080), "-r", "10.100.1.11", "-w", "3"],
            "",
        );
    });
    let q_rs2_out = std::cell::Cell::new((Instant::now(), Instant::now()));
    step("-d Q rs2", "", "", &mut || {
        admin_ok(&lb, &["-d", "-t", &vip(8080), "-r", "10.100.1.12"], "");
        q_rs2_out.set((Instant::now(), Instant::now()));
    });
    step("-a Q rs2 back", "", "", &mut || {
        let (from, _) = q_rs2_out.get();
        q_rs2_out.set((from, Instant::now()));
        admin_ok(&lb, &["-a", "-t", &vip(8080), "-r", "10.100.1.12"], "");
    });
    step("-E Q -s wrr", "", "", &mut || {
        admin_ok(&lb, &["-E", "-t", &vip(8080), "-s", "wrr"], "");
    });
    let list = admin_ok(&lb, &["-L", "-n"], "");
    let q_rows = listing_rows(&list, &format!("TCP  {}", vip(8080)));
    assert!(
        list.contains(&format!("TCP  {} wrr\n", vip(8080)))
            && q_rows.len() == 3
            && q_rows
                .iter()
                .any(|r| r[0] == "10.100.1.11:8080" && r[2] == "3"),
        "Q after its edits:\n{list}"
    );

    // 6. An unrelated service added and deleted.
    step("-A/-a/-D an unrelated service", "", "", &mut || {
        admin_ok(&lb, &["-A", "-t", &vip(9090), "-s", "wlc"], "");
        admin_ok(&lb, &["-a", "-t", &vip(9090), "-r", "10.100.1.14"], "");
        admin_ok(&lb, &["-D", "-t", &vip(9090)], "");
    });

    // 7. -S, -C, -R: every service goes and comes back, so every service
    // may fail in this window, and P's templates are gone after -C (as in
    // IPVS, flushing services flushes their templates): its clients are
    // scheduled afresh after -R.
    let saved = admin_ok(&lb, &["-S", "-n"], "");
    assert!(
        saved.contains(&format!("-A -t {} -s rr -p 300", vip(80))),
        "{saved}"
    );
    let created_before = templates_created(&lb);
    let c_from = Instant::now();
    let r_done = step("-C … -R of the saved rules", "PU", "PQRU", &mut || {
        admin_ok(&lb, &["-C"], "");
        let list = admin_ok(&lb, &["-L", "-n"], "");
        assert!(!list.contains("TCP "), "after -C:\n{list}");
        std::thread::sleep(Duration::from_millis(500));
        admin_ok(&lb, &["-R"], &saved);
    });
    assert_eq!(
        admin_ok(&lb, &["-S", "-n"], ""),
        saved,
        "-S after -R of -S's output"
    );
    let restored_from = Instant::now();
    wait_for("P answers every client after -R", 20, || {
        let a = load.answers();
        p_clients.iter().all(|c| {
            a.iter()
                .any(|x| &x.client == c && x.sent >= restored_from && !x.who.is_empty())
        })
    });
    wait_for("P's templates back after -R", 20, || {
        sample(&lb, &t).p_templates >= p_clients.len() as u64
    });
    // The old templates belonged to the deleted P: none was reused, every
    // client got a new one.
    assert!(
        templates_created(&lb) >= created_before + p_clients.len() as u64,
        "P's clients were not scheduled afresh after -C/-R"
    );
    // The restored U: its flows are pinned again; which servers they land
    // on after the restore is rr's business, but each must keep counting.
    wait_for("UDP after -R", 20, || {
        let a = sample(&lb, &t).udp.iter().sum::<u64>();
        std::thread::sleep(Duration::from_millis(500));
        sample(&lb, &t).udp.iter().sum::<u64>() > a
    });

    // 8. SIGHUP after the file changed Q's servers (rs1 out, rs4 in) and
    // left P (and U) as they were: P and U keep their running form.
    std::fs::write(
        &lb.config,
        config_text("pmdlb-e2e-r", &services(&[2, 3, 4])),
    )
    .unwrap();
    let reloaded = step("SIGHUP: Q's servers from the file", "", "", &mut || {
        lb.signal("HUP");
        wait_for("the reload", 20, || {
            let list = admin_ok(&lb, &["-L", "-n"], "");
            let q: BTreeSet<String> = listing_rows(&list, &format!("TCP  {}", vip(8080)))
                .into_iter()
                .map(|r| r[0].clone())
                .collect();
            q == ["10.100.1.12:8080", "10.100.1.13:8080", "10.100.1.14:8080"]
                .map(String::from)
                .into()
        });
    });
    wait_for("rs4 answers Q after the reload", 20, || {
        load.answers()
            .iter()
            .any(|x| x.svc == "Q" && x.sent >= reloaded && x.who == "rs4")
    });
    std::thread::sleep(Duration::from_secs(1));
    let end = sample(&lb, &t);
    let answers = load.finish();
    let elapsed = t0.elapsed();

    // Failures only where a step allows them.
    let failed: Vec<String> = answers
        .iter()
        .filter(|a| a.who.is_empty())
        .filter(|a| {
            !steps
                .iter()
                .any(|s| s.may_fail.contains(a.svc) && a.sent <= s.to && a.done >= s.from)
        })
        .map(|a| format!("{} {} at {:?}", a.svc, a.client, a.sent.duration_since(t0)))
        .collect();
    let in_window = answers
        .iter()
        .filter(|a| a.who.is_empty() && a.sent <= r_done && a.done >= c_from)
        .count();
    // Every P client on one server before -C, and on one server after -R.
    for c in &p_clients {
        for (phase, range) in [
            ("before -C", (t0, c_from)),
            ("after -R", (r_done, Instant::now())),
        ] {
            let got: BTreeSet<&String> = answers
                .iter()
                .filter(|a| {
                    &a.client == c
                        && a.svc == "P"
                        && !a.who.is_empty()
                        && a.sent >= range.0
                        && a.done <= range.1
                })
                .map(|a| &a.who)
                .collect();
            assert_eq!(got.len(), 1, "P client {c} {phase}: {got:?}\n{}", lb.log());
        }
    }
    let per_svc = |svc: &str| answers.iter().filter(|a| a.svc == svc).count();
    let q_while_rs2_out: Vec<&Answered> = {
        let (out_from, out_to) = q_rs2_out.get();
        answers
            .iter()
            .filter(|a| {
                a.svc == "Q" && a.sent > out_from + Duration::from_millis(200) && a.done < out_to
            })
            .collect()
    };
    let q_after_reload: BTreeSet<&String> = answers
        .iter()
        .filter(|a| a.svc == "Q" && a.sent > reloaded + Duration::from_millis(200))
        .map(|a| &a.who)
        .collect();
    let r_servers: BTreeSet<&String> = answers
        .iter()
        .filter(|a| a.svc == "R" && !a.who.is_empty())
        .map(|a| &a.who)
        .collect();
    eprintln!(
        "admin e2e: {:?}; {} P, {} Q, {} R requests, {in_window} failed in the -C/-R window; \
         UDP per server {:?}; end {end:?}; steps {:?}",
        elapsed,
        per_svc("P"),
        per_svc("Q"),
        per_svc("R"),
        end.udp,
        steps
            .iter()
            .map(|s| (&s.name, s.to.duration_since(s.from)))
            .collect::<Vec<_>>()
    );
    assert!(
        failed.is_empty(),
        "requests failed outside their window: {failed:?}\n{}",
        lb.log()
    );
    assert!(
        q_while_rs2_out.iter().all(|a| a.who != "rs2"),
        "a new Q connection went to the deleted rs2: {q_while_rs2_out:?}"
    );
    assert!(
        !q_after_reload.contains(&"rs1".to_string()),
        "Q still schedules rs1 after the reload: {q_after_reload:?}"
    );
    assert_eq!(
        r_servers.into_iter().cloned().collect::<Vec<_>>(),
        ["rs2", "rs3"],
        "R's two servers answered"
    );
    let hup_log = lb.log();
    assert!(hup_log.contains("pmdlb: SIGHUP: reloading"), "{hup_log}");

    let (code, log) = lb.stop();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("unaccounted=0"), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("mbufs: all ") && l.ends_with(" back in the pool")),
        "{log}"
    );
}
