//! Several-directors harness: the topology of `scripts/netns-bgp.sh` (a
//! router running BIRD with ECMP, two director namespaces each with its own
//! BIRD, real servers, clients), python HTTP servers on the real servers,
//! and one pmdlb per director on net_af_packet. Everything — namespaces,
//! BIRD daemons, pmdlb processes, EAL files — is removed on drop, also
//! when a test fails.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The VIP of the topology.
pub const VIP: &str = "10.210.100.100";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Waits until `f` gives `Some`, retrying every 50 ms, up to `within`;
/// returns the value and how long it took, or `None` on timeout.
pub fn wait_for<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<(T, Duration)> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some((v, start.elapsed()));
        }
        if start.elapsed() > within {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One HTTP GET with curl in namespace `ns` from `client` (one of its
/// addresses), at most `max` for the whole transfer: the body, trimmed,
/// or an empty string on failure. Needs no topology borrowed, so threads
/// can use it.
pub fn http_get(ns: &str, client: &str, url: &str, max: Duration) -> String {
    let max = format!("{:.1}", max.as_secs_f64());
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "curl", "-s", "-m", &max])
        .args(["--interface", client, url])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The topology, its BIRD daemons and its HTTP servers.
pub struct BgpTopology {
    pub pfx: String,
    /// BIRD's configurations, sockets, pid files and logs.
    pub dir: PathBuf,
    www: PathBuf,
    servers: Vec<Child>,
    /// HTTP servers on further ports ([`BgpTopology::serve_port`]).
    extra: Vec<Child>,
}

impl BgpTopology {
    /// Builds the topology with `servers` real servers (10.210.9.1N) and
    /// `clients` client addresses (10.210.0.2 ..), starts BIRD in the
    /// router and both directors and an HTTP server on port 80 of every
    /// real server answering its own name (and a 16 MiB `big` file).
    pub fn up(tag: &str, servers: usize, clients: usize) -> BgpTopology {
        let pfx = format!("pb{}{}", tag, std::process::id() % 10000);
        let dir = std::env::temp_dir().join(format!("{pfx}-bird"));
        let www = std::env::temp_dir().join(format!("{pfx}-www"));
        let mut t = BgpTopology {
            pfx,
            dir,
            www,
            servers: Vec::new(),
            extra: Vec::new(),
        };
        t.script(&["up", &servers.to_string(), &clients.to_string()]);
        for s in 1..=servers {
            let d = t.www.join(format!("rs{s}"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("index.html"), format!("rs{s}\n")).unwrap();
            std::fs::write(d.join("big"), vec![b'x'; 16 << 20]).unwrap();
            let child = t.spawn_http(s, 80);
            t.servers.push(child);
        }
        for s in 1..=servers {
            t.wait_listen(s, 80, true);
        }
        t
    }

    /// The directory real server `s` (1-based) serves its files from.
    pub fn www(&self, s: usize) -> PathBuf {
        self.www.join(format!("rs{s}"))
    }

    /// Starts a further HTTP server on `port` of every real server (the
    /// same files) and waits until they all listen; stopped on drop.
    pub fn serve_port(&mut self, port: u16) {
        for s in 1..=self.servers.len() {
            let child = self.spawn_http(s, port);
            self.extra.push(child);
        }
        for s in 1..=self.servers.len() {
            self.wait_listen(s, port, true);
        }
    }

    /// As [`BgpTopology::serve_port`], but every response body is paced by
    /// the server at `bytes_per_s` (scripts/paced-http.py): a download
    /// lasts size / rate, with the client's ACKs flowing all along.
    pub fn serve_paced(&mut self, port: u16, bytes_per_s: u64) {
        for s in 1..=self.servers.len() {
            let child = Command::new("ip")
                .args(["netns", "exec", &self.ns(&format!("rs{s}"))])
                .arg(repo().join("scripts/paced-http.py"))
                .arg(port.to_string())
                .arg(self.www(s))
                .arg(bytes_per_s.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start scripts/paced-http.py");
            self.extra.push(child);
        }
        for s in 1..=self.servers.len() {
            self.wait_listen(s, port, true);
        }
    }

    /// The next hop the router's multipath route picks for the TCP flow
    /// `client:sport → vip:dport` arriving from the clients, as the kernel
    /// hashes it (`ip route get … ipproto tcp sport … dport …`); `None`
    /// without a route. The path the flow's packets take only because the
    /// router hashes the 5-tuple alone (scripts/netns-bgp.sh sets policy
    /// 3; with policy 1 a packet's socket hash decides).
    pub fn route_of_flow(&self, client: &str, sport: u16, vip: &str, dport: u16) -> Option<String> {
        let out = Command::new("ip")
            .args(["-n", &self.ns("rt"), "route", "get", vip, "from", client])
            .args(["iif", "rtc", "ipproto", "tcp"])
            .args(["sport", &sport.to_string(), "dport", &dport.to_string()])
            .output()
            .expect("ip route get");
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == "via")
            .map(|w| w[1].to_owned())
    }

    fn script(&self, args: &[&str]) {
        let st = Command::new(repo().join("scripts/netns-bgp.sh"))
            .args(args)
            .env("PMDLB_NS_PREFIX", &self.pfx)
            .env("PMDLB_BGP_DIR", &self.dir)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/netns-bgp.sh");
        assert!(st.success(), "scripts/netns-bgp.sh {args:?} failed");
    }

    /// The namespace of `role` (cl, rt, da, db, rs1, ...).
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.pfx)
    }

    /// `birdc -s SOCKET ARGS` for the BIRD of `role` (rt, da, db).
    pub fn birdc(&self, role: &str, args: &str) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.join(format!("{role}.ctl")))
            .args(args.split_whitespace())
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the router's BGP sessions to both directors are up.
    pub fn sessions_established(&self) -> bool {
        let p = self.birdc("rt", "show protocols");
        p.lines()
            .filter(|l| l.starts_with("da ") || l.starts_with("db "))
            .filter(|l| l.contains("Established"))
            .count()
            == 2
    }

    /// The next hops of the router's kernel route to `vip` (empty: none).
    pub fn router_paths(&self, vip: &str) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-n", &self.ns("rt"), "route", "show", vip])
            .output()
            .expect("ip route show");
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        words
            .windows(2)
            .filter(|w| w[0] == "via")
            .map(|w| w[1].to_owned())
            .collect()
    }

    /// Waits (bounded) until the router's route to `vip` has exactly
    /// `hops` as next hops (sorted); returns how long it took.
    pub fn wait_paths(&self, vip: &str, hops: &[&str], within: Duration) -> Option<Duration> {
        let mut want: Vec<String> = hops.iter().map(|h| h.to_string()).collect();
        want.sort();
        wait_for(within, || {
            let mut got = self.router_paths(vip);
            got.sort();
            (got == want).then_some(())
        })
        .map(|r| r.1)
    }

    /// One HTTP GET from `client` (an address of the client namespace):
    /// the body, or an empty string on failure.
    pub fn get(&self, client: &str, url: &str) -> String {
        self.get_within(client, url, Duration::from_secs(3))
    }

    /// [`BgpTopology::get`] with curl's whole-transfer limit `max`.
    pub fn get_within(&self, client: &str, url: &str, max: Duration) -> String {
        http_get(&self.ns("cl"), client, url, max)
    }

    /// Starts the BIRD of `role` again (after [`BgpTopology::kill_bird`]).
    pub fn start_bird(&self, role: &str) {
        self.script(&["bird", role]);
    }

    /// Stops the HTTP server of real server `s` (1-based) and waits until
    /// nothing listens on its port 80.
    pub fn stop_server(&mut self, s: usize) {
        let _ = self.servers[s - 1].kill();
        let _ = self.servers[s - 1].wait();
        self.wait_listen(s, 80, false);
    }

    /// Starts the HTTP server of real server `s` again and waits until it
    /// listens.
    pub fn start_server(&mut self, s: usize) {
        self.servers[s - 1] = self.spawn_http(s, 80);
        self.wait_listen(s, 80, true);
    }

    fn spawn_http(&self, s: usize, port: u16) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("rs{s}"))])
            .args(["python3", "-m", "http.server", &port.to_string()])
            .arg("--directory")
            .arg(self.www.join(format!("rs{s}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start http.server")
    }

    fn wait_listen(&self, s: usize, port: u16, listening: bool) {
        let ns = self.ns(&format!("rs{s}"));
        let done = wait_for(Duration::from_secs(10), || {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "ss", "-ltn"])
                .output()
                .ok()?;
            let want = format!(":{port} ");
            (String::from_utf8_lossy(&out.stdout).contains(&want) == listening).then_some(())
        });
        assert!(done.is_some(), "{ns}: port {port} listening != {listening}");
    }

    /// SIGKILLs the BIRD of `role`.
    pub fn kill_bird(&self, role: &str) {
        let pid =
            std::fs::read_to_string(self.dir.join(format!("{role}.pid"))).expect("bird pid file");
        let st = Command::new("kill")
            .args(["-KILL", pid.trim()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -KILL bird {role}");
    }
}

impl Drop for BgpTopology {
    fn drop(&mut self) {
        for c in self.servers.iter_mut().chain(self.extra.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.script(&["down"]);
        let _ = std::fs::remove_dir_all(&self.www);
    }
}

/// One director's part of a pmdlb configuration: its ports, its TX
/// address on the server segment, its next hop, `[announce]` and one
/// service on the VIP port 80 with `servers` (addresses; several: the mh
/// scheduler and sloppy_tcp, so directors with the same servers pick the
/// same one for a flow, also mid-connection); `health` is appended to the
/// service (e.g. a `[service.health]` table).
pub fn director_config(prefix: &str, role: &str, servers: &[&str], health: &str) -> String {
    let (scheduler, sloppy) = if servers.len() > 1 {
        ("mh", true)
    } else {
        ("rr", false)
    };
    format!(
        "{}[[service]]\nvip = \"{VIP}\"\nport = 80\nscheduler = \"{scheduler}\"\n{}{health}",
        director_base(prefix, role, sloppy),
        servers_toml(servers)
    )
}

/// `[[service.server]]` tables for `servers` (addresses).
pub fn servers_toml(servers: &[&str]) -> String {
    servers
        .iter()
        .map(|s| format!("[[service.server]]\naddr = \"{s}\"\n"))
        .collect()
}

/// Everything of a director's configuration but its services: EAL, the
/// ports and TX address of director `role` (da, db), tables, `[ipvs]`
/// with `sloppy_tcp` and `[announce]` with its next hop. Services and
/// further sections are appended by the caller.
pub fn director_base(prefix: &str, role: &str, sloppy: bool) -> String {
    let (tx_addr, next_hop) = match role {
        "da" => ("10.210.9.2", "10.210.1.2"),
        _ => ("10.210.9.3", "10.210.2.2"),
    };
    format!(
        r#"[eal]
lcores = "0-1"
hugepages = false
memory_mb = 256
file_prefix = "{prefix}"
vdevs = ["net_af_packet0,iface=lbrx,qpairs=1", "net_af_packet1,iface=lbtx,qpairs=1"]

[ports]
rx = "net_af_packet0"
tx = "net_af_packet1"
tx_addr = "{tx_addr}"

[workers]
stats_interval_s = 0

[tables]
connections = 65536
persistence = 65536

[neighbours]
retry_ms = 200

[ipvs]
sloppy_tcp = {sloppy}

[announce]
table = 100
protocol = 200
next_hops = ["{next_hop}"]
stop_delay_ms = 500

"#
    )
}

/// A running pmdlb in a director namespace.
pub struct Director {
    child: Option<Child>,
    pub config: PathBuf,
    pub prefix: String,
    out: PathBuf,
}

impl Director {
    /// Writes `config` and starts `pmdlb run` in the namespace of `role`;
    /// waits until its servers are resolved.
    pub fn start(t: &BgpTopology, role: &str, prefix: &str, config: &str) -> Director {
        let cfg = t.dir.join(format!("{prefix}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let mut d = Director {
            child: None,
            config: cfg,
            prefix: prefix.to_string(),
            out: t.dir.join(format!("{prefix}.log")),
        };
        d.spawn(t, role);
        d
    }

    /// Starts pmdlb again with the same configuration after it stopped
    /// or was killed (its leftover EAL files and socket removed first);
    /// its output is appended to the same log. Waits as
    /// [`Director::start`] does.
    pub fn restart(&mut self, t: &BgpTopology, role: &str) {
        self.kill();
        remove_eal_files(&self.prefix);
        self.spawn(t, role);
    }

    fn spawn(&mut self, t: &BgpTopology, role: &str) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.out)
            .unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns(role)])
            .arg(env!("CARGO_BIN_EXE_pmdlb"))
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pmdlb");
        self.child = Some(child);
        let ready = wait_for(Duration::from_secs(20), || {
            let s = self.ctl("servers").ok()?;
            (s.contains("->") && !s.contains("unresolved")).then_some(())
        });
        assert!(
            ready.is_some(),
            "pmdlb in {role} did not resolve its servers:\n{}",
            self.log()
        );
    }

    /// Runs `pmdlb admin` (ipvsadm's command line) with `args` against
    /// this director, bounded by `pmdlb`'s own dump limits.
    pub fn admin(&self, args: &str) -> Result<String, String> {
        self.pmdlb("admin", args)
    }

    /// Runs `pmdlb SUB --config THIS_CONFIG ARGS…`: its standard output, or
    /// with its standard error when it failed.
    fn pmdlb(&self, sub: &str, args: &str) -> Result<String, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_pmdlb"))
            .args([sub, "--config"])
            .arg(&self.config)
            .args(args.split_whitespace())
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Every `name … value` line of `pmdlb ctl stats` whose last word is a
    /// number: the worker counter table's totals and the control plane's
    /// counters (a name seen twice keeps its first value).
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        let text = self.ctl("stats").unwrap_or_default();
        let mut m = std::collections::BTreeMap::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if let (Some(name), Some(Ok(v))) = (words.first(), words.last().map(|w| w.parse())) {
                if words.len() >= 2 {
                    m.entry(name.trim_end_matches(':').to_string()).or_insert(v);
                }
            }
        }
        m
    }

    /// Runs `pmdlb ctl` with `cmd`.
    pub fn ctl(&self, cmd: &str) -> Result<String, String> {
        self.pmdlb("ctl", cmd)
    }

    /// Everything pmdlb printed so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.out) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// SIGKILLs pmdlb and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_term(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
    }

    /// Whether pmdlb has not exited yet.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then waits (bounded) for the exit; the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // `ip netns exec` execs pmdlb: the child pid is pmdlb's.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let done = wait_for(Duration::from_secs(15), || child.try_wait().ok().flatten());
        match done {
            Some((st, _)) => st.code(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }
}

impl Drop for Director {
    fn drop(&mut self) {
        self.terminate();
        remove_eal_files(&self.prefix);
    }
}

/// EAL's runtime directory, any hugepage files and the control socket of
/// `prefix` (a SIGKILLed pmdlb leaves them).
fn remove_eal_files(prefix: &str) {
    let _ = std::fs::remove_file(format!("/run/pmdlb/{prefix}.sock"));
    let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(prefix));
    if let Ok(dir) = std::fs::read_dir("/dev/hugepages") {
        for e in dir.flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}
