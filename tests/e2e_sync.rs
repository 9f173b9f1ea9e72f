//! Failover that keeps established TCP connections and persistent clients,
//! end to end (issue 14): two pmdlb directors behind the ECMP router of
//! scripts/netns-bgp.sh, both with every real server, rr scheduling (not
//! mh: a survivor must not be able to guess a flow's server by itself),
//! `sloppy_tcp` off (a non-SYN packet without an entry is dropped) and
//! IPVS-style sync in both roles over the servers' segment (their kernel
//! interfaces `lbhc`). Only sync can carry an established connection or a
//! persistence template from one director to the other.
//!
//! Long paced downloads (port 8081, not persistent) and persistent
//! clients (port 8080, `persistent = 300`, a request every 300 ms) run
//! through both directors; one that carries downloads is SIGKILLed;
//! the router loses its path within the BGP hold time; every download
//! finishes whole on the survivor and every persistent answer comes from
//! the client's first server. Then the killed director is started again:
//! it receives state while it holds its announcement back
//! (`announce_hold_ms`), announces, and the flows ECMP hashes back to it
//! continue through it without a drop.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::bgp::{director_base, http_get, servers_toml, wait_for, BgpTopology, Director, VIP};

/// The BGP hold time in scripts/netns-bgp.sh.
const HOLD: Duration = Duration::from_secs(3);
/// What a bounded wait for a withdrawal allows (the hold time and a
/// margin for a loaded 2-core machine); the figure measured is printed.
const WITHDRAW_WAIT: Duration = Duration::from_secs(6);
/// `[sync] announce_hold_ms` of both directors.
const ANNOUNCE_HOLD: Duration = Duration::from_millis(3000);
/// The real servers (rs1.. in the topology), on both directors.
const SERVERS: [&str; 3] = ["10.210.9.11", "10.210.9.12", "10.210.9.13"];
/// Downloads: client addresses 10.210.0.2.., one each, from local ports
/// chosen before they start (so every flow's 5-tuple is known): from
/// [`first_sport`], which differs from run to run, so runs see different
/// ECMP splits.
const DOWNLOADS: usize = 8;

/// The first download's local port: 41000 + 8 × (pid mod 1000) + 1.
fn first_sport() -> u16 {
    41001 + (std::process::id() % 1000) as u16 * DOWNLOADS as u16
}
/// Persistent clients: the addresses after the downloads'.
const PERSISTENT: usize = 4;
const PERSIST_PORT: u16 = 8080;
/// The downloads' service port (scripts/paced-http.py on the servers).
const DL_PORT: u16 = 8081;
/// The download: pseudo-random bytes (so a reordered or repeated segment
/// changes the MD5), sent by the servers at `RATE` bytes/s per download:
/// about 40 s, twice what the kill and the rejoin take.
const FILE: &str = "sync-big";
const SIZE: usize = 12 << 20;
const RATE: u64 = 300 << 10;
/// A moved download must have at least this much left when its director
/// dies — more than any TCP window — so that finishing proves the survivor
/// forwarded its ACKs.
const LEFT_AT_KILL: u64 = 2 << 20;

/// One director of the pair.
#[derive(Clone, Copy)]
struct Side {
    name: &'static str,
    role: &'static str,
    /// Its `announce.next_hops` (the router's next hop through it).
    hop: &'static str,
    /// Its kernel address on the servers' segment (lbhc): sync goes there.
    mgmt: &'static str,
}

const A: Side = Side {
    name: "A",
    role: "da",
    hop: "10.210.1.2",
    mgmt: "10.210.9.4",
};
const B: Side = Side {
    name: "B",
    role: "db",
    hop: "10.210.2.2",
    mgmt: "10.210.9.5",
};

/// The configuration of director `me`: both services with all servers,
/// and sync with the other director in both roles (multicast on lbhc).
fn config(prefix: &str, me: Side) -> String {
    let servers = servers_toml(&SERVERS);
    format!(
        r#"{base}[[service]]
vip = "{VIP}"
port = {DL_PORT}
scheduler = "rr"
{servers}
[[service]]
vip = "{VIP}"
port = {PERSIST_PORT}
scheduler = "rr"
persistent = 300
{servers}
[sync]
role = "both"
syncid = 14
interface = "lbhc"
source = "{mgmt}"
group = "224.0.0.81"
port = 8848
ttl = 1
flush_ms = 100
announce_hold_ms = {hold}
"#,
        base = director_base(prefix, me.role, false),
        mgmt = me.mgmt,
        hold = ANNOUNCE_HOLD.as_millis(),
    )
}

/// 12 MiB of xorshift64 output: every 8-byte word distinct in practice.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// The name a real server answers with (`rs2`) for its address.
fn server_name(addr: &str) -> String {
    let i = SERVERS.iter().position(|s| *s == addr).expect(addr);
    format!("rs{}", i + 1)
}

/// One row of `pmdlb admin -L -c -n`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Conn {
    proto: String,
    state: String,
    client: String,
    virt: String,
    dest: String,
}

/// The connection entries and templates of director `d`.
fn listing(d: &Director) -> Vec<Conn> {
    let Ok(text) = d.admin("-L -c -n") else {
        return Vec::new();
    };
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 6).then(|| Conn {
                proto: w[0].into(),
                state: w[2].into(),
                client: w[3].into(),
                virt: w[4].into(),
                dest: w[5].into(),
            })
        })
        .collect()
}

/// Packets director `d` forwarded for service VIP:`port` since it started
/// (`pmdlb admin -L -n --stats --exact`, the service row's InPkts).
fn in_pkts(d: &Director, port: u16) -> u64 {
    let text = d.admin("-L -n --stats --exact").unwrap_or_default();
    let service = format!("{VIP}:{port}");
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|w| w.len() >= 4 && w[0] == "TCP" && w[1] == service)
        .and_then(|w| w[3].parse().ok())
        .unwrap_or_else(|| panic!("no row for {service} in\n{text}"))
}

/// The active connections director `d` counts for service VIP:`port`
/// (`pmdlb admin -L -n`, its servers' ActiveConn summed). Entries
/// installed from sync are not counted until a packet reaches them
/// (adoption): this is the number of established flows `d` itself carries.
fn active_conns(d: &Director, port: u16) -> u64 {
    let text = d.admin("-L -n").unwrap_or_default();
    let service = format!("{VIP}:{port}");
    text.lines()
        .skip_while(|l| !l.starts_with(&format!("TCP  {service} ")))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("->"))
        .filter_map(|l| l.split_whitespace().nth(4)?.parse::<u64>().ok())
        .sum()
}

/// Whether director `role`'s kernel table 100 holds the VIP route (what
/// its BIRD exports).
fn announcing(t: &BgpTopology, role: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", &t.ns(role), "route", "show", "table", "100"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(VIP)
}

/// `pmdlb ctl sync` of `d` (the daemon's settings and counters), or why
/// not.
fn sync_text(d: &Director) -> String {
    d.ctl("sync").unwrap_or_else(|e| e)
}

/// A counter of `c`, 0 when absent.
fn get(c: &BTreeMap<String, u64>, name: &str) -> u64 {
    c.get(name).copied().unwrap_or(0)
}

/// The sync counters (names with "sync") of a counter map, for printing.
fn sync_counters(c: &BTreeMap<String, u64>) -> String {
    c.iter()
        .filter(|(k, _)| k.contains("sync"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One long download by curl from the client namespace.
struct Download {
    client: String,
    sport: u16,
    file: PathBuf,
    child: Option<Child>,
    result: Option<String>,
}

impl Download {
    fn start(t: &BgpTopology, dir: &Path, i: usize) -> Download {
        let client = format!("10.210.0.{}", 2 + i);
        let sport = first_sport() + i as u16;
        let file = dir.join(format!("dl{i}"));
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns("cl"), "curl", "-s", "-o"])
            .arg(&file)
            .args(["-w", "%{http_code} %{size_download}", "-m", "85"])
            .args(["--interface", &client])
            .args(["--local-port", &sport.to_string()])
            .arg(format!("http://{VIP}:{DL_PORT}/{FILE}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start curl");
        Download {
            client,
            sport,
            file,
            child: Some(child),
            result: None,
        }
    }

    /// `client:port` as listings print it.
    fn flow(&self) -> String {
        format!("{}:{}", self.client, self.sport)
    }

    /// Bytes curl has written so far.
    fn size(&self) -> u64 {
        std::fs::metadata(&self.file).map(|m| m.len()).unwrap_or(0)
    }

    /// Whether curl has exited; keeps its `code size` line.
    fn done(&mut self) -> bool {
        if self.result.is_some() {
            return true;
        }
        let Some(c) = self.child.as_mut() else {
            return true;
        };
        if !matches!(c.try_wait(), Ok(Some(_))) {
            return false;
        }
        let mut out = String::new();
        if let Some(mut s) = c.stdout.take() {
            use std::io::Read;
            let _ = s.read_to_string(&mut out);
        }
        self.child = None;
        self.result = Some(out);
        true
    }
}

impl Drop for Download {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.file);
    }
}

/// The real server holding the TCP connection of `client:sport` to the
/// VIP, and how many bytes its peer has acknowledged (`ss -ti`
/// `bytes_acked` in the server's namespace). The director sees only
/// client → server packets, so this grows only while some director
/// forwards the client's ACKs.
fn server_acked(t: &BgpTopology, client: &str, sport: u16) -> Option<(usize, u64)> {
    for s in 1..=SERVERS.len() {
        let out = Command::new("ip")
            .args(["netns", "exec", &t.ns(&format!("rs{s}"))])
            .args(["ss", "-tniH", "state", "established"])
            .args(["dst", &format!("{client}:{sport}")])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(v) = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("bytes_acked:"))
        {
            return Some((s, v.parse().ok()?));
        }
    }
    None
}

/// Every real server's TCP sockets (`ss -tnai`), for failure messages.
fn server_sockets(t: &BgpTopology) -> String {
    (1..=SERVERS.len())
        .map(|s| {
            let out = Command::new("ip")
                .args(["netns", "exec", &t.ns(&format!("rs{s}")), "ss", "-tnai"])
                .output()
                .unwrap();
            format!("rs{s}:\n{}", String::from_utf8_lossy(&out.stdout))
        })
        .collect()
}

/// The phase a persistent answer came in.
const BEFORE_KILL: usize = 0;
const AFTER_KILL: usize = 1;
const AFTER_REJOIN: usize = 2;

/// Every persistent client's answers: (phase, body) in order.
type Answers = BTreeMap<String, Vec<(usize, String)>>;

/// Persistent clients, each asking for `/` on port 8080 every 300 ms in
/// its own thread and noting (phase, answer); an empty answer is a failed
/// request.
struct PersistentClients {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicUsize>,
    answers: Arc<Mutex<Answers>>,
    threads: Vec<JoinHandle<()>>,
}

impl PersistentClients {
    fn start(t: &BgpTopology, clients: &[String]) -> PersistentClients {
        let mut p = PersistentClients {
            stop: Arc::new(AtomicBool::new(false)),
            phase: Arc::new(AtomicUsize::new(BEFORE_KILL)),
            answers: Arc::new(Mutex::new(BTreeMap::new())),
            threads: Vec::new(),
        };
        for c in clients {
            let (stop, phase, answers) = (p.stop.clone(), p.phase.clone(), p.answers.clone());
            let (ns, c) = (t.ns("cl"), c.clone());
            p.threads.push(std::thread::spawn(move || {
                let url = format!("http://{VIP}:{PERSIST_PORT}/");
                while !stop.load(Ordering::Relaxed) {
                    // Long enough for SYN retransmissions across a failover.
                    let body = http_get(&ns, &c, &url, Duration::from_secs(10));
                    let ph = phase.load(Ordering::Relaxed);
                    answers
                        .lock()
                        .unwrap()
                        .entry(c.clone())
                        .or_default()
                        .push((ph, body));
                    std::thread::sleep(Duration::from_millis(300));
                }
            }));
        }
        p
    }

    fn set_phase(&self, phase: usize) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// Stops the clients (bounded by curl's own limit) and returns what
    /// each got.
    fn finish(mut self) -> Answers {
        self.stop.store(true, Ordering::Relaxed);
        for th in self.threads.drain(..) {
            let _ = th.join();
        }
        std::mem::take(&mut *self.answers.lock().unwrap())
    }
}

impl Drop for PersistentClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for th in self.threads.drain(..) {
            let _ = th.join();
        }
    }
}

#[test]
fn a_sigkilled_directors_downloads_and_persistent_clients_continue_on_the_other_and_it_rejoins_with_their_state(
) {
    let started = Instant::now();
    let mut t = BgpTopology::up("s", SERVERS.len(), DOWNLOADS + PERSISTENT);
    // Which director carries a flow is read from the router's route for
    // its 5-tuple: true only with a hash of the 5-tuple alone (policy 3).
    let policy = Command::new("ip")
        .args(["netns", "exec", &t.ns("rt"), "sysctl", "-n"])
        .arg("net.ipv4.fib_multipath_hash_policy")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&policy.stdout).trim(),
        "3",
        "the router needs the custom 5-tuple multipath hash (Linux 5.12+)"
    );
    t.serve_port(PERSIST_PORT);
    t.serve_paced(DL_PORT, RATE);
    let data = pseudo_random(SIZE);
    let want_md5 = md5::compute(&data);
    for s in 1..=SERVERS.len() {
        std::fs::write(t.www(s).join(FILE), &data).unwrap();
    }
    let scratch = t.dir.join("downloads");
    std::fs::create_dir_all(&scratch).unwrap();

    let (pa, pb) = (format!("{}-a", t.pfx), format!("{}-b", t.pfx));
    let mut dirs = [
        Director::start(&t, A.role, &pa, &config(&pa, A)),
        Director::start(&t, B.role, &pb, &config(&pb, B)),
    ];
    let sides = [A, B];
    let took = t.wait_paths(VIP, &[A.hop, B.hop], Duration::from_secs(20));
    assert!(
        took.is_some(),
        "router has no two paths to {VIP}: {:?}\nA:\n{}\nB:\n{}",
        t.router_paths(VIP),
        dirs[0].log(),
        dirs[1].log()
    );

    // Persistent clients: a first answer each (whichever director the
    // SYN's hash reaches schedules it), then their templates on both
    // directors — the scheduling one's own and its peer's through sync —
    // before the clients go on, so no later request is scheduled afresh.
    let pclients: Vec<String> = (0..PERSISTENT)
        .map(|i| format!("10.210.0.{}", 2 + DOWNLOADS + i))
        .collect();
    let mut original: BTreeMap<String, String> = BTreeMap::new();
    for c in &pclients {
        let url = format!("http://{VIP}:{PERSIST_PORT}/");
        let first = t.get_within(c, &url, Duration::from_secs(5));
        assert!(first.starts_with("rs"), "{c}: first answer {first:?}");
        original.insert(c.clone(), first);
    }
    let templates_synced = wait_for(Duration::from_secs(10), || {
        dirs.iter()
            .all(|d| {
                let l = listing(d);
                original.iter().all(|(c, s)| {
                    l.iter().any(|e| {
                        e.state == "NONE"
                            && e.client == format!("{c}:0")
                            && e.virt == format!("{VIP}:{PERSIST_PORT}")
                            && server_name(e.dest.split(':').next().unwrap()) == *s
                    })
                })
            })
            .then_some(())
    });
    assert!(
        templates_synced.is_some(),
        "persistence templates not on both directors\nclients {original:?}\nA:\n{:?}\nB:\n{:?}",
        listing(&dirs[0]),
        listing(&dirs[1])
    );
    let persistent = PersistentClients::start(&t, &pclients);

    // Downloads, established and synced: every flow ESTABLISHED in both
    // directors' tables with the same server.
    let mut downloads: Vec<Download> = (0..DOWNLOADS)
        .map(|i| Download::start(&t, &scratch, i))
        .collect();
    let synced = wait_for(Duration::from_secs(15), || {
        let (la, lb) = (listing(&dirs[0]), listing(&dirs[1]));
        downloads
            .iter()
            .map(|d| {
                let find = |l: &[Conn]| {
                    l.iter()
                        .find(|e| {
                            e.client == d.flow()
                                && e.virt == format!("{VIP}:{DL_PORT}")
                                && e.state == "ESTABLISHED"
                        })
                        .map(|e| e.dest.clone())
                };
                let (a, b) = (find(&la), find(&lb));
                (d.size() > 0 && a.is_some() && a == b).then(|| a.unwrap())
            })
            .collect::<Option<Vec<String>>>()
    });
    let Some((dests, sync_took)) = synced else {
        panic!(
            "downloads not established on both directors\nA:\n{:?}\nB:\n{:?}\nA sync:\n{}\nB sync:\n{}\nA log:\n{}\nB log:\n{}",
            listing(&dirs[0]),
            listing(&dirs[1]),
            sync_text(&dirs[0]),
            sync_text(&dirs[1]),
            dirs[0].log(),
            dirs[1].log()
        );
    };

    // Who carries what: the router's own multipath choice per flow.
    let carrier: Vec<usize> = downloads
        .iter()
        .map(|d| {
            let hop = t
                .route_of_flow(&d.client, d.sport, VIP, DL_PORT)
                .expect("router route of a download");
            sides.iter().position(|s| s.hop == hop).expect(&hop)
        })
        .collect();
    let carried = [0, 1].map(|i| carrier.iter().filter(|&&c| c == i).count());
    // pmdlb's own books agree: each director counts as active exactly the
    // downloads it carries (the peer's synced copies are not adopted).
    let counted = wait_for(Duration::from_secs(5), || {
        let c = [0, 1].map(|i| active_conns(&dirs[i], DL_PORT));
        (c == carried.map(|n| n as u64)).then_some(c)
    });
    assert!(
        counted.is_some(),
        "active download connections A {} B {}, the router's split {carried:?}",
        active_conns(&dirs[0], DL_PORT),
        active_conns(&dirs[1], DL_PORT)
    );
    // The victim carries at least one download: the only one that does,
    // or, when both do, A or B by the pid's parity (both sides over runs).
    let v = match carried {
        [0, _] => 1,
        [_, 0] => 0,
        _ => (std::process::id() % 2) as usize,
    };
    let s = 1 - v;
    let (victim, survivor) = (sides[v], sides[s]);
    let moved: Vec<usize> = (0..DOWNLOADS).filter(|&i| carrier[i] == v).collect();
    println!(
        "setup: {:.1} s; downloads synced to both directors {} ms after they started; carried: A {} B {}; servers {:?}; persistent clients {:?}",
        started.elapsed().as_secs_f64(),
        sync_took.as_millis(),
        carried[0],
        carried[1],
        dests,
        original
    );
    for &i in &moved {
        let left = SIZE as u64 - downloads[i].size();
        assert!(
            left > LEFT_AT_KILL,
            "download {i} too far along at the kill ({left} bytes left): the test timing does not hold here"
        );
    }
    let surv_before = dirs[s].counters();

    // SIGKILL the victim: its path goes within the hold time.
    let t_kill = Instant::now();
    dirs[v].kill();
    persistent.set_phase(AFTER_KILL);
    let withdrawn = t.wait_paths(VIP, &[survivor.hop], WITHDRAW_WAIT);
    assert!(
        withdrawn.is_some(),
        "after SIGKILL of {}: router has {:?}",
        victim.name,
        t.router_paths(VIP)
    );
    let withdraw_ms = t_kill.elapsed();
    assert!(withdraw_ms <= HOLD, "withdrawn after {withdraw_ms:?}");
    // From here on only the survivor can carry the moved flows' ACKs: the
    // servers' acknowledged bytes growing is the survivor forwarding them.
    let acked_at: Vec<(usize, u64)> = moved
        .iter()
        .map(|&i| {
            let d = &downloads[i];
            let found = wait_for(Duration::from_secs(2), || {
                server_acked(&t, &d.client, d.sport)
            });
            found.map(|r| r.0).unwrap_or_else(|| {
                panic!(
                    "no server socket for {} ({} bytes received):\n{}",
                    downloads[i].flow(),
                    downloads[i].size(),
                    server_sockets(&t)
                )
            })
        })
        .collect();
    let resumed = wait_for(Duration::from_secs(20), || {
        moved
            .iter()
            .zip(&acked_at)
            .all(|(&i, &(srv, at))| {
                server_acked(&t, &downloads[i].client, downloads[i].sport)
                    .is_some_and(|(s2, now)| s2 == srv && now > at)
            })
            .then_some(())
    });
    assert!(
        resumed.is_some(),
        "moved downloads did not resume on {}\n{}",
        survivor.name,
        dirs[s].log()
    );
    let resume_ms = t_kill.elapsed();
    println!(
        "kill {}: path withdrawn after {} ms (hold {} s); its {} downloads progress again {} ms after the kill",
        victim.name,
        withdraw_ms.as_millis(),
        HOLD.as_secs(),
        moved.len(),
        resume_ms.as_millis()
    );
    // Every moved flow adopted: the survivor counts all downloads now.
    let all = wait_for(Duration::from_secs(5), || {
        (active_conns(&dirs[s], DL_PORT) == DOWNLOADS as u64).then_some(())
    });
    assert!(
        all.is_some(),
        "survivor counts {} active downloads, not {DOWNLOADS}",
        active_conns(&dirs[s], DL_PORT)
    );
    let surv_after = dirs[s].counters();
    println!(
        "survivor {} before the kill: {}\nsurvivor {} after:          {}",
        survivor.name,
        sync_counters(&surv_before),
        survivor.name,
        sync_counters(&surv_after)
    );
    assert!(
        get(&surv_after, "sync_installed") > 0,
        "survivor installed nothing from sync: {surv_after:?}"
    );
    assert!(
        get(&surv_after, "sync_adopted") - get(&surv_before, "sync_adopted") >= moved.len() as u64,
        "survivor adopted fewer synced entries than flows moved ({}): {surv_after:?}",
        moved.len()
    );
    assert_eq!(
        get(&surv_after, "tcp_not_syn"),
        get(&surv_before, "tcp_not_syn"),
        "the survivor dropped moved packets for want of an entry"
    );

    // Bring the victim back: it receives state and holds its
    // announcement for announce_hold_ms, then announces.
    let t_start = Instant::now();
    dirs[v].restart(&t, victim.role);
    let mut last_held = BTreeMap::new();
    let mut held_for_sync = false;
    let mut learned_while_held = false;
    let back = wait_for(Duration::from_secs(25), || {
        // Read before the check, so a reading kept is one from before
        // the route existed.
        let now = dirs[v].counters();
        let st = dirs[v].ctl("status").unwrap_or_default();
        let rows = listing(&dirs[v]);
        if !announcing(&t, victim.role) {
            last_held = now;
            held_for_sync |= st.contains("announce_hold_ms");
            // Every download, with its server, in its table already.
            learned_while_held |= downloads.iter().zip(&dests).all(|(d, dest)| {
                rows.iter()
                    .any(|e| e.client == d.flow() && e.state == "ESTABLISHED" && e.dest == *dest)
            });
            return None;
        }
        let mut paths = t.router_paths(VIP);
        paths.sort();
        let mut want = vec![A.hop.to_string(), B.hop.to_string()];
        want.sort();
        (paths == want).then(|| t_start.elapsed())
    });
    let Some((back_after, _)) = back else {
        panic!(
            "{} did not announce again: router {:?}\n{}",
            victim.name,
            t.router_paths(VIP),
            dirs[v].log()
        );
    };
    persistent.set_phase(AFTER_REJOIN);
    let victim_back = dirs[v].counters();
    println!(
        "restart {}: router has both paths {} ms after the restart (announce_hold_ms {}); counters while held: {}",
        victim.name,
        back_after.as_millis(),
        ANNOUNCE_HOLD.as_millis(),
        sync_counters(&last_held)
    );
    assert!(
        back_after >= ANNOUNCE_HOLD,
        "{} announced {back_after:?} after its restart",
        victim.name
    );
    assert!(
        held_for_sync,
        "{}'s status never said it held its VIPs for sync",
        victim.name
    );
    assert!(
        get(&last_held, "sync_installed") > 0,
        "{} announced before it installed any synced state: {last_held:?}",
        victim.name
    );
    assert!(
        learned_while_held,
        "{} announced before every download was in its table",
        victim.name
    );

    // The flows ECMP hashes to the victim again are the ones it carried
    // (the hash depends on the flow and the set of next hops only), and
    // they go on through it: its download service forwards packets (only
    // downloads use it), and their servers see ACKs.
    let back_flows: Vec<usize> = (0..DOWNLOADS)
        .filter(|&i| {
            t.route_of_flow(&downloads[i].client, downloads[i].sport, VIP, DL_PORT)
                .as_deref()
                == Some(victim.hop)
        })
        .collect();
    assert_eq!(back_flows, moved, "ECMP moved other flows back");
    let pkts_back = in_pkts(&dirs[v], DL_PORT);
    let acked_back: Vec<(usize, u64)> = moved
        .iter()
        .map(|&i| server_acked(&t, &downloads[i].client, downloads[i].sport).unwrap_or((0, 0)))
        .collect();
    let through_victim = wait_for(Duration::from_secs(10), || {
        let still = moved.iter().any(|&i| !downloads[i].done());
        let fwd = in_pkts(&dirs[v], DL_PORT) > pkts_back;
        (fwd || !still).then_some(fwd)
    });
    assert_eq!(
        through_victim.map(|r| r.0),
        Some(true),
        "{} forwarded nothing for the flows hashed back to it (downloads still running: {:?})\n{}",
        victim.name,
        moved
            .iter()
            .map(|&i| downloads[i].size())
            .collect::<Vec<_>>(),
        dirs[v].log()
    );
    // It adopted every flow hashed back (they are its own active ones).
    let adopted_back = wait_for(Duration::from_secs(5), || {
        let n = active_conns(&dirs[v], DL_PORT);
        let still = moved.iter().all(|&i| !downloads[i].done());
        (n == moved.len() as u64 || !still).then_some(n)
    });
    assert_eq!(
        adopted_back.map(|r| r.0),
        Some(moved.len() as u64),
        "{} counts other active downloads than the flows hashed back to it",
        victim.name
    );
    // And the survivor let them go: the rejoined director's records for
    // them tell it a peer carries them now (`sync_released`), so only the
    // flows still hashed to it count there.
    let stays = (DOWNLOADS - moved.len()) as u64;
    let let_go = wait_for(Duration::from_secs(5), || {
        let n = active_conns(&dirs[s], DL_PORT);
        let still = moved.iter().all(|&i| !downloads[i].done());
        (n == stays || !still).then_some(n)
    });
    assert_eq!(
        let_go.map(|r| r.0),
        Some(stays),
        "{} still counts flows that went back to {}",
        survivor.name,
        victim.name
    );
    let survivor_counts = active_conns(&dirs[s], DL_PORT);
    let rows = listing(&dirs[v]);
    let established_back = moved
        .iter()
        .filter(|&&i| {
            rows.iter().any(|e| {
                e.client == downloads[i].flow() && e.state == "ESTABLISHED" && e.dest == dests[i]
            })
        })
        .count();
    assert!(established_back > 0, "{rows:?}");
    let acked_more = moved
        .iter()
        .zip(&acked_back)
        .filter(|(&i, &(_, at))| {
            server_acked(&t, &downloads[i].client, downloads[i].sport).is_some_and(|r| r.1 > at)
        })
        .count();

    // Every download finishes whole.
    let finished = wait_for(Duration::from_secs(70), || {
        downloads.iter_mut().all(|d| d.done()).then_some(())
    });
    assert!(
        finished.is_some(),
        "downloads still running: {:?}",
        downloads.iter().map(|d| d.size()).collect::<Vec<_>>()
    );
    for (i, d) in downloads.iter().enumerate() {
        let got = d.result.clone().unwrap_or_default();
        assert_eq!(got, format!("200 {SIZE}"), "download {i} ({})", d.flow());
        let body = std::fs::read(&d.file).unwrap();
        assert_eq!(md5::compute(&body), want_md5, "download {i}: MD5");
    }
    let (end_a, end_b) = (dirs[0].counters(), dirs[1].counters());
    let victim_end = if v == 0 { &end_a } else { &end_b };
    assert_eq!(
        get(victim_end, "tcp_not_syn"),
        0,
        "the rejoined director dropped packets for want of an entry"
    );
    assert!(
        get(victim_end, "sync_adopted") > 0,
        "the rejoined director adopted no synced entry: {victim_end:?}"
    );

    // Every persistent answer came from the client's first server, and
    // every client was answered in every phase.
    let answers = persistent.finish();
    let mut failed = 0;
    for (c, first) in &original {
        let got = answers.get(c).cloned().unwrap_or_default();
        for phase in [BEFORE_KILL, AFTER_KILL, AFTER_REJOIN] {
            assert!(
                got.iter().any(|(p, a)| *p == phase && a == first),
                "{c}: no answer in phase {phase}: {got:?}"
            );
        }
        failed += got.iter().filter(|(_, a)| a.is_empty()).count();
        let wrong: Vec<&(usize, String)> = got
            .iter()
            .filter(|(_, a)| !a.is_empty() && a != first)
            .collect();
        assert!(wrong.is_empty(), "{c} (first {first}) moved: {wrong:?}");
    }
    let total: usize = answers.values().map(Vec::len).sum();
    println!(
        "rejoin: {} of {} flows hashed back ESTABLISHED on {}, {} of them acknowledged through it; {} download packets forwarded by it since announcing; {} still counts {} active downloads",
        established_back,
        moved.len(),
        victim.name,
        acked_more,
        in_pkts(&dirs[v], DL_PORT) - pkts_back,
        survivor.name,
        survivor_counts
    );
    println!(
        "persistent: {total} requests, {failed} failed, every answer from the first server; at the end A: {}\n  B: {}\n  victim at announce: {}",
        sync_counters(&end_a),
        sync_counters(&end_b),
        sync_counters(&victim_back)
    );
    println!(
        "A sync:\n{}\nB sync:\n{}",
        sync_text(&dirs[0]),
        sync_text(&dirs[1])
    );
    assert_eq!(failed, 0, "persistent requests failed: {answers:?}");
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}
