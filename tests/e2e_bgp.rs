//! Several directors behind an ECMP router, end to end: two pmdlb
//! directors announce the VIP through their own BIRD (BGP, hold time 3 s)
//! to a router running BIRD with merged paths; curl clients behind the
//! router reach real HTTP servers. Director A forwards to rs1 only and
//! director B to rs2 only, so every answer names the director that carried
//! it. Topology: scripts/netns-bgp.sh.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::bgp::{director_config, wait_for, BgpTopology, Director, VIP};
use common::netns::SERIAL;

/// Next hop of director A / B (their announce.next_hops).
const HOP_A: &str = "10.210.1.2";
const HOP_B: &str = "10.210.2.2";
/// The BGP hold time in scripts/netns-bgp.sh.
const HOLD: Duration = Duration::from_secs(3);
/// What a bounded wait for a withdrawal allows: the hold time and a
/// margin for a loaded 2-core machine. The figure measured is printed.
const WITHDRAW_WAIT: Duration = Duration::from_secs(6);

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Both directors running and announcing (A's service with `health_a`);
/// the router with both paths.
fn two_directors(tag: &str, health_a: &str) -> (BgpTopology, Director, Director) {
    let t = BgpTopology::up(tag, 2, 8);
    let pa = format!("{}-a", t.pfx);
    let pb = format!("{}-b", t.pfx);
    let ca = director_config(&pa, "da", &["10.210.9.11"], health_a);
    let a = Director::start(&t, "da", &pa, &ca);
    let b = Director::start(
        &t,
        "db",
        &pb,
        &director_config(&pb, "db", &["10.210.9.12"], ""),
    );
    let took = t.wait_paths(VIP, &[HOP_A, HOP_B], Duration::from_secs(20));
    assert!(
        took.is_some(),
        "router has no two paths to {VIP}: {:?}\nrouter BIRD:\n{}\nA:\n{}\nB:\n{}",
        t.router_paths(VIP),
        t.birdc("rt", "show route all"),
        a.log(),
        b.log()
    );
    (t, a, b)
}

/// The servers that answered `n` new connections from the clients.
fn answers(t: &BgpTopology, n: usize) -> BTreeSet<String> {
    (0..n)
        .map(|i| {
            t.get(
                &format!("10.210.0.{}", 2 + i % 8),
                &format!("http://{VIP}/"),
            )
        })
        .collect()
}

/// Waits until new connections are answered by `want` only.
fn only(t: &BgpTopology, want: &[&str]) -> BTreeSet<String> {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let got = answers(t, 16);
    assert_eq!(got, want, "answers from {got:?}, wanted {want:?}");
    got
}

/// Both paths in use: answers from both directors' servers (16 new
/// connections hashed on L4: all on one path has odds 2^-15; retried).
fn both_answer(t: &BgpTopology) {
    let all: BTreeSet<String> = ["rs1", "rs2"].iter().map(|s| s.to_string()).collect();
    let ok = wait_for(Duration::from_secs(10), || {
        (answers(t, 16) == all).then_some(())
    });
    assert!(
        ok.is_some(),
        "not both directors answered: {:?}",
        answers(t, 16)
    );
}

fn table100(t: &BgpTopology, role: &str) -> String {
    let out = std::process::Command::new("ip")
        .args(["-n", &t.ns(role), "route", "show", "table", "100"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn drain_moves_new_clients_to_the_other_director_and_a_stop_withdraws_first() {
    let _g = lock();
    let (t, mut a, b) = two_directors("d", "");
    both_answer(&t);
    let st = a.ctl("status").unwrap();
    assert!(st.contains("announce: announcing"), "{st}");
    assert!(st.contains(VIP) && st.contains("announced"), "{st}");
    assert!(
        !st.contains(HOP_A),
        "the next hop is never announced:\n{st}"
    );
    assert!(table100(&t, "da").contains(&format!("{VIP} dev pmdlb0 proto 200")));

    // Drain A: its route goes, the router keeps B's path only.
    let t0 = Instant::now();
    let ok = a.ctl("drain").unwrap();
    assert!(ok.contains("draining"), "{ok}");
    let took = t.wait_paths(VIP, &[HOP_B], WITHDRAW_WAIT);
    assert!(
        took.is_some(),
        "drain: router still has {:?}",
        t.router_paths(VIP)
    );
    println!(
        "drain: router down to one path after {} ms (hold time {} s)",
        t0.elapsed().as_millis(),
        HOLD.as_secs()
    );
    assert!(
        t0.elapsed() < HOLD,
        "a drain is a BGP withdraw, not a hold-time expiry"
    );
    only(&t, &["rs2"]);
    let st = a.ctl("status").unwrap();
    assert!(
        st.contains("announce: drained") && st.contains("withdrawn (drained)"),
        "{st}"
    );
    assert!(table100(&t, "da").is_empty(), "{}", table100(&t, "da"));
    assert!(a
        .log()
        .contains(&format!("pmdlb: announce: {VIP} withdrawn (drained)")));

    // Undrain: both paths again, and A still forwards.
    a.ctl("undrain").unwrap();
    assert!(
        t.wait_paths(VIP, &[HOP_A, HOP_B], WITHDRAW_WAIT).is_some(),
        "undrain: router has {:?}",
        t.router_paths(VIP)
    );
    both_answer(&t);
    let st = b.ctl("status").unwrap();
    assert!(st.contains("changes 1 "), "B announced once:\n{st}");

    // A clean stop withdraws the route before the workers stop: the
    // router is down to B's path while A still runs (stop_delay_ms 500).
    let t0 = Instant::now();
    a.send_term();
    let took = t.wait_paths(VIP, &[HOP_B], WITHDRAW_WAIT);
    let alive = a.running();
    assert!(took.is_some(), "stop: router has {:?}", t.router_paths(VIP));
    println!(
        "stop: router down to one path {} ms after SIGTERM, pmdlb still running: {alive}",
        t0.elapsed().as_millis()
    );
    assert!(alive, "pmdlb exited before the router lost its path");
    assert_eq!(a.terminate(), Some(0), "{}", a.log());
    let log = a.log();
    let withdrawn = log.find("routes withdrawn in").expect(&log);
    let delay = log.find("forwarding 500 ms more").expect(&log);
    let final_stats = log.find("final statistics").expect(&log);
    assert!(
        withdrawn < delay && delay < final_stats,
        "withdrawn after the workers stopped:\n{log}"
    );
    only(&t, &["rs2"]);
}

#[test]
fn a_dead_director_or_bird_loses_its_path_within_the_hold_time() {
    let _g = lock();
    let (t, _a, mut b) = two_directors("k", "");
    both_answer(&t);

    // A's BIRD frozen: no keepalives, the router's hold timer expires.
    let pid = std::fs::read_to_string(t.dir.join("da.pid")).unwrap();
    let signal = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, pid.trim()])
            .status()
            .unwrap();
        assert!(st.success(), "kill {sig} bird da");
    };
    signal("-STOP");
    let took = t.wait_paths(VIP, &[HOP_B], HOLD + WITHDRAW_WAIT);
    signal("-CONT");
    let took = took.expect("router kept the path of a silent BIRD");
    println!(
        "frozen BIRD: path gone after {} ms (hold time {} s)",
        took.as_millis(),
        HOLD.as_secs()
    );
    assert!(took <= HOLD + Duration::from_secs(2), "{took:?}");
    only(&t, &["rs2"]);
    assert!(
        t.wait_paths(VIP, &[HOP_A, HOP_B], Duration::from_secs(20))
            .is_some(),
        "A's BIRD did not come back: {}",
        t.birdc("rt", "show protocols")
    );

    // A's BIRD killed: its session closes, the path goes within the hold time.
    t.kill_bird("da");
    let took = t
        .wait_paths(VIP, &[HOP_B], WITHDRAW_WAIT)
        .expect("path of a dead BIRD kept");
    println!("killed BIRD: path gone after {} ms", took.as_millis());
    assert!(took <= HOLD, "{took:?}");
    only(&t, &["rs2"]);
    t.start_bird("da");
    assert!(
        t.wait_paths(VIP, &[HOP_A, HOP_B], Duration::from_secs(20))
            .is_some(),
        "A's BIRD did not come back: {}",
        t.birdc("rt", "show protocols")
    );

    // pmdlb B SIGKILLed: its TUN interface and routes vanish with it, its
    // BIRD withdraws, the router keeps A's path; new clients reach A.
    let t0 = Instant::now();
    b.kill();
    let took = t.wait_paths(VIP, &[HOP_A], WITHDRAW_WAIT);
    assert!(
        took.is_some(),
        "SIGKILL: router has {:?}",
        t.router_paths(VIP)
    );
    println!(
        "SIGKILLed pmdlb: path gone after {} ms",
        t0.elapsed().as_millis()
    );
    assert!(t0.elapsed() <= HOLD, "{:?}", t0.elapsed());
    assert!(table100(&t, "db").is_empty(), "{}", table100(&t, "db"));
    only(&t, &["rs1"]);
}

#[test]
fn a_director_whose_service_loses_its_quorum_withdraws_and_announces_again_when_it_is_back() {
    let _g = lock();
    // A checks rs1 over its kernel interface on the server segment (lbhc):
    // down after one failed connect (retry 0), back after one pass.
    let health = "[service.health]\ndelay_loop = 1\nconnect_timeout = 1\nretry = 0\n\
                  delay_before_retry = 1\nquorum = 1\n[[service.health.check]]\ntype = \"tcp\"\n";
    let (mut t, a, _b) = two_directors("q", health);
    both_answer(&t);
    let t0 = Instant::now();
    t.stop_server(1);
    let took = t.wait_paths(VIP, &[HOP_B], Duration::from_secs(10));
    assert!(
        took.is_some(),
        "quorum lost: router has {:?}\n{}",
        t.router_paths(VIP),
        a.log()
    );
    println!(
        "quorum lost: A's path gone {} ms after rs1 stopped",
        t0.elapsed().as_millis()
    );
    let st = a.ctl("status").unwrap();
    assert!(st.contains("withdrawn (a service lost its quorum)"), "{st}");
    only(&t, &["rs2"]);
    let t0 = Instant::now();
    t.start_server(1);
    let took = t.wait_paths(VIP, &[HOP_A, HOP_B], Duration::from_secs(10));
    assert!(
        took.is_some(),
        "quorum back: router has {:?}\n{}",
        t.router_paths(VIP),
        a.log()
    );
    println!(
        "quorum back: A's path back {} ms after rs1 started",
        t0.elapsed().as_millis()
    );
    both_answer(&t);
    assert!(a.ctl("status").unwrap().contains("announce: announcing"));
}

/// Packets director `d` has transmitted (`ctl stats`, tx_sent total).
fn tx_sent(d: &Director) -> u64 {
    let st = d.ctl("stats").unwrap();
    st.lines()
        .find(|l| l.starts_with("tx_sent "))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tx_sent in\n{st}"))
}

#[test]
fn with_maglev_and_sloppy_tcp_a_download_survives_its_director_being_drained() {
    let _g = lock();
    // Both directors with both servers, mh and sloppy_tcp: the same choice
    // for a flow wherever ECMP sends it.
    let t = BgpTopology::up("m", 2, 8);
    let (pa, pb) = (format!("{}-a", t.pfx), format!("{}-b", t.pfx));
    let both = ["10.210.9.11", "10.210.9.12"];
    let a = Director::start(&t, "da", &pa, &director_config(&pa, "da", &both, ""));
    let b = Director::start(&t, "db", &pb, &director_config(&pb, "db", &both, ""));
    b.ctl("drain").unwrap();
    assert!(t
        .wait_paths(VIP, &[HOP_A], Duration::from_secs(20))
        .is_some());
    // A 16 MiB download at 2 MB/s (8 s), started through A only.
    let dl = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &t.ns("cl"),
            "curl",
            "-s",
            "-o",
            "/dev/null",
        ])
        .args(["-w", "%{http_code} %{size_download}", "-m", "30"])
        .args(["--limit-rate", "2M", "--interface", "10.210.0.2"])
        .arg(format!("http://{VIP}/big"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // B back, A drained: the router moves the flow to B mid-download.
    let b_before = tx_sent(&b);
    b.ctl("undrain").unwrap();
    assert!(t.wait_paths(VIP, &[HOP_A, HOP_B], WITHDRAW_WAIT).is_some());
    a.ctl("drain").unwrap();
    assert!(t.wait_paths(VIP, &[HOP_B], WITHDRAW_WAIT).is_some());
    let a_after = tx_sent(&a);
    let out = dl.wait_with_output().unwrap();
    let got = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(got, format!("200 {}", 16 << 20), "the download broke");
    let b_carried = tx_sent(&b) - b_before;
    let a_carried = tx_sent(&a) - a_after;
    println!(
        "moved download: completed; B forwarded {b_carried} packets since the move, A {a_carried} after its drain"
    );
    assert!(
        b_carried > 50,
        "the flow did not move to B ({b_carried} packets)"
    );
    assert!(
        a_carried < 10,
        "A still carried the flow ({a_carried} packets)"
    );
}
