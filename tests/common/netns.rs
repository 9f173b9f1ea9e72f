//! End-to-end harness: the network-namespace topology of `scripts/netns.sh`,
//! real HTTP servers (python3 http.server) on the real servers, pmdlb on
//! net_af_packet inside the lb namespace, and curl clients. Everything is
//! removed on drop, also when a test fails.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// End-to-end tests share the two cores: run them one at a time even under
/// `cargo test`'s threads (nextest also puts them in a serial group).
pub static SERIAL: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A topology with its own namespace prefix.
pub struct Topology {
    pub pfx: String,
    www: PathBuf,
    servers: Vec<Child>,
}

impl Topology {
    /// Builds the topology with `servers` real servers and `clients`
    /// client addresses (10.100.0.2 ..), and starts HTTP servers on ports
    /// 80, 443 and 8080 of every real server, each answering its own name.
    pub fn up(tag: &str, servers: usize, clients: usize) -> Topology {
        let pfx = format!("pt{}{}", tag, std::process::id() % 10000);
        let www = std::env::temp_dir().join(format!("{pfx}-www"));
        let mut t = Topology {
            pfx,
            www,
            servers: Vec::new(),
        };
        t.netns(&["up", &servers.to_string(), &clients.to_string()]);
        for s in 1..=servers {
            let dir = t.www.join(format!("rs{s}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("index.html"), format!("rs{s}\n")).unwrap();
            // A larger file for connections that must stay open a while.
            std::fs::write(dir.join("big"), vec![b'x'; 4 << 20]).unwrap();
            for port in ["80", "443", "8080"] {
                let child = Command::new("ip")
                    .args(["netns", "exec", &format!("{}-rs{s}", t.pfx)])
                    .args([
                        "python3",
                        "-m",
                        "http.server",
                        port,
                        "--bind",
                        "::",
                        "--directory",
                    ])
                    .arg(&dir)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start http.server");
                t.servers.push(child);
            }
        }
        // Wait for every server to listen.
        for s in 1..=servers {
            let ns = format!("{}-rs{s}", t.pfx);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let out = Command::new("ip")
                    .args(["netns", "exec", &ns, "ss", "-ltn"])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                if [":80 ", ":443 ", ":8080 "].iter().all(|p| text.contains(p)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "http servers in {ns} did not start"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        t
    }

    fn netns(&self, args: &[&str]) {
        let st = Command::new(repo().join("scripts/netns.sh"))
            .args(args)
            .env("PMDLB_NS_PREFIX", &self.pfx)
            .stdout(Stdio::null())
            .status()
            .expect("run scripts/netns.sh");
        assert!(st.success(), "scripts/netns.sh {args:?} failed");
    }

    /// The namespace name for `role` (cl, lb, rs1, ...).
    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.pfx)
    }

    /// One HTTP GET from `client` (an address of the client namespace);
    /// returns the body (the server's name) or an empty string on failure.
    pub fn get(&self, client: &str, url: &str) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("cl"),
                "curl",
                "-s",
                "-g",
                "-m",
                "5",
                "--interface",
                client,
                url,
            ])
            .output()
            .expect("run curl");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Kills the HTTP server on `port` of real server `s` (1-based) and
    /// waits (bounded) until nothing listens there.
    pub fn stop_server(&mut self, s: usize, port: &str) {
        let i = (s - 1) * 3
            + ["80", "443", "8080"]
                .iter()
                .position(|p| *p == port)
                .unwrap();
        let _ = self.servers[i].kill();
        let _ = self.servers[i].wait();
        self.wait_listen(s, port, false);
    }

    /// Starts the HTTP server on `port` of real server `s` again (after
    /// [`Topology::stop_server`]) and waits until it listens.
    pub fn start_server(&mut self, s: usize, port: &str) {
        let i = (s - 1) * 3
            + ["80", "443", "8080"]
                .iter()
                .position(|p| *p == port)
                .unwrap();
        self.servers[i] = self.spawn_http(s, port);
        self.wait_listen(s, port, true);
    }

    /// `python3 -m http.server PORT` in real server `s`'s namespace,
    /// serving its name.
    fn spawn_http(&self, s: usize, port: &str) -> std::process::Child {
        Command::new("ip")
            .args(["netns", "exec", &self.ns(&format!("rs{s}"))])
            .args([
                "python3",
                "-m",
                "http.server",
                port,
                "--bind",
                "::",
                "--directory",
            ])
            .arg(self.www.join(format!("rs{s}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start http.server")
    }

    /// Starts one more HTTP server on `port` of real server `s` (1-based),
    /// answering its name like the others, and waits until it listens.
    /// Stopped with the topology.
    pub fn serve_http(&mut self, s: usize, port: &str) {
        let child = self.spawn_http(s, port);
        // After the three per server that `stop_server` indexes.
        self.servers.push(child);
        self.wait_listen(s, port, true);
    }

    /// Writes `name` in the directory real server `s` (1-based) serves on
    /// all its HTTP ports (replacing it atomically: a request sees the old
    /// or the new content, never part of one).
    pub fn write_www(&self, s: usize, name: &str, bytes: &[u8]) {
        let dir = self.www.join(format!("rs{s}"));
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }

    /// Removes `name` from the directory real server `s` serves (a 404).
    pub fn remove_www(&self, s: usize, name: &str) {
        let _ = std::fs::remove_file(self.www.join(format!("rs{s}")).join(name));
    }

    /// A scratch directory of the topology (removed with it).
    pub fn scratch(&self) -> PathBuf {
        let d = self.www.join("scratch");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Starts a UDP receiver on `port` of every real server in `servers`:
    /// it counts the datagrams it gets and keeps the count in a file that
    /// [`Topology::udp_count`] reads. Waits until each one listens.
    pub fn udp_receivers(&mut self, servers: std::ops::RangeInclusive<usize>, port: u16) {
        const RECV: &str = r#"
import os, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.settimeout(0.1)
path, n, last = sys.argv[2], 0, 0.0
while True:
    try:
        s.recvfrom(2048)
        n += 1
    except socket.timeout:
        pass
    now = time.monotonic()
    if now - last >= 0.1:
        with open(path + '.tmp', 'w') as f:
            f.write(str(n))
        os.replace(path + '.tmp', path)
        last = now
"#;
        std::fs::create_dir_all(&self.www).unwrap();
        for s in servers.clone() {
            let child = Command::new("ip")
                .args(["netns", "exec", &self.ns(&format!("rs{s}"))])
                .args(["python3", "-c", RECV, &port.to_string()])
                .arg(self.udp_count_file(s))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the UDP receiver");
            self.servers.push(child);
        }
        for s in servers {
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.udp_count(s).is_none() {
                assert!(
                    Instant::now() < deadline,
                    "UDP receiver on rs{s} did not start"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn udp_count_file(&self, s: usize) -> PathBuf {
        self.www.join(format!("udp-rs{s}"))
    }

    /// Datagrams real server `s`'s UDP receiver counted so far (`None`
    /// before it started).
    pub fn udp_count(&self, s: usize) -> Option<u64> {
        std::fs::read_to_string(self.udp_count_file(s))
            .ok()
            .and_then(|t| t.trim().parse().ok())
    }

    /// Runs `cmd` in the namespace of `role` in the background, stopped
    /// with the topology.
    pub fn spawn_in(&mut self, role: &str, cmd: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role)])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in a namespace");
        self.servers.push(child);
    }

    fn wait_listen(&self, s: usize, port: &str, listening: bool) {
        let ns = self.ns(&format!("rs{s}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "ss", "-ltn"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains(&format!(":{port} ")) == listening {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{ns} port {port} listening != {listening}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Gives the lb namespace's kernel an address on the server segment
    /// (a veth `lbmg` on brB), as a management NIC routed to the real
    /// servers on bare metal: pmdlb's health checks go out through it.
    pub fn add_management(&self, addr_cidr: &str) {
        let run = |ns: &str, args: &[&str]| {
            let st = Command::new("ip")
                .args(["netns", "exec", ns])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(st.success(), "{ns}: {args:?}");
        };
        let st = Command::new("ip")
            .args([
                "link",
                "add",
                "lbmg",
                "netns",
                &self.ns("lb"),
                "type",
                "veth",
            ])
            .args(["peer", "name", "swlbmg", "netns", &self.ns("sw")])
            .status()
            .unwrap();
        assert!(st.success(), "cannot add the management veth");
        let (lb, sw) = (self.ns("lb"), self.ns("sw"));
        run(&lb, &["sysctl", "-qw", "net.ipv6.conf.lbmg.disable_ipv6=1"]);
        let _ = Command::new("ip")
            .args([
                "netns", "exec", &lb, "ethtool", "-K", "lbmg", "tx", "off", "rx", "off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        run(&lb, &["ip", "addr", "add", addr_cidr, "dev", "lbmg"]);
        run(&lb, &["ip", "link", "set", "lbmg", "up"]);
        run(&sw, &["ip", "link", "set", "swlbmg", "master", "brB"]);
        run(&sw, &["ip", "link", "set", "swlbmg", "up"]);
    }

    /// The client namespace's neighbour table (to show nothing is static).
    pub fn client_neighbours(&self) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.ns("cl"), "ip", "neigh", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for c in &mut self.servers {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.netns(&["down"]);
        let _ = std::fs::remove_dir_all(&self.www);
    }
}

/// A running pmdlb in the lb namespace.
pub struct Lb {
    child: Option<Child>,
    pub config: PathBuf,
    pub prefix: String,
    out: PathBuf,
}

/// The af_packet part of a config (no hugepages); `extra` is appended.
pub fn config_text(prefix: &str, extra: &str) -> String {
    config_text_mem(prefix, false, extra)
}

/// As [`config_text`], on 2 MiB hugepages when `hugepages` is set.
pub fn config_text_mem(prefix: &str, hugepages: bool, extra: &str) -> String {
    format!(
        r#"[eal]
lcores = "0-1"
hugepages = {hugepages}
memory_mb = 256
file_prefix = "{prefix}"
vdevs = ["net_af_packet0,iface=lbrx,qpairs=1", "net_af_packet1,iface=lbtx,qpairs=1"]

[ports]
rx = "net_af_packet0"
tx = "net_af_packet1"
tx_addr = "10.100.1.2"
tx_addr6 = "fd00:101::2"

[workers]
stats_interval_s = 1

[tables]
connections = 65536
persistence = 65536

[neighbours]
retry_ms = 200

{extra}
"#
    )
}

impl Lb {
    /// Writes `config` and starts `pmdlb run` on it; waits until every real
    /// server's MAC is resolved (pmdlb resolves them by ARP/ND itself).
    pub fn start(t: &Topology, prefix: &str, config: &str) -> Lb {
        let dir = std::env::temp_dir().join(format!("{}-lb", t.pfx));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join(format!("{prefix}.toml"));
        std::fs::write(&cfg, config).unwrap();
        let out = dir.join(format!("{prefix}.log"));
        let log = std::fs::File::create(&out).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &t.ns("lb")])
            .arg(env!("CARGO_BIN_EXE_pmdlb"))
            .args(["run", "--config"])
            .arg(&cfg)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pmdlb");
        let lb = Lb {
            child: Some(child),
            config: cfg,
            prefix: prefix.to_string(),
            out,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = lb.ctl("servers") {
                if s.contains("->") && !s.contains("unresolved") {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "pmdlb did not resolve its servers:\n{}",
                lb.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        lb
    }

    /// Runs `pmdlb ctl` with `cmd`.
    pub fn ctl(&self, cmd: &str) -> Result<String, String> {
        let out = Command::new(env!("CARGO_BIN_EXE_pmdlb"))
            .args(["ctl", "--config"])
            .arg(&self.config)
            .args(cmd.split_whitespace())
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Runs `pmdlb admin --config FILE ARGS…` (ipvsadm's command line)
    /// with `stdin` as its standard input; returns the exit code and
    /// standard output and error.
    pub fn admin(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        use std::io::Write;
        let mut child = Command::new(env!("CARGO_BIN_EXE_pmdlb"))
            .args(["admin", "--config"])
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pmdlb admin");
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(stdin.as_bytes());
        drop(input);
        let out = child.wait_with_output().expect("pmdlb admin output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to pmdlb.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("pmdlb runs").id();
        let st = Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(st.success(), "kill -{signal} {pid}");
    }

    /// Everything pmdlb printed so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.out) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the exit
    /// code and the output.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let code = self.terminate();
        (code, self.log())
    }

    fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        // `ip netns exec` execs pmdlb, so the child pid is pmdlb's.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(st)) = child.try_wait() {
                return st.code();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lb {
    fn drop(&mut self) {
        self.terminate();
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
        let _ = std::fs::remove_file(&self.config);
        let _ = std::fs::remove_file(&self.out);
        if let Some(dir) = self.config.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
