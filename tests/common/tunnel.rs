//! Tunnel real servers for the end-to-end tests: a namespace `PFX-rsN` in
//! its own subnet `10.100.N.0/24` behind the router namespace of
//! `scripts/netns.sh` (so its `down` removes it), the VIP on `lo`, a default
//! route via the router, and a decapsulator.
//!
//! This machine's kernel has no `ipip`, `fou`, `ip6tnl` or `gre` devices,
//! so the decapsulation is a small python program instead of the kernel's:
//! it receives IP protocol 4 on a raw socket (ipip) or UDP on the GUE port,
//! strips the outer headers (checking the GUE version-0 header) and writes
//! the inner packet into a TUN device, where the kernel's own TCP stack
//! takes it as a packet to the VIP; the replies leave by the default route,
//! directly to the client, as from a kernel-decapsulating server. Outer
//! IPv4 fragments are reassembled by the namespace's kernel before the raw
//! or UDP socket sees the datagram, as before a kernel decapsulation.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::netns::Topology;

const DECAP: &str = r#"
import fcntl, os, socket, struct, sys
kind, port = sys.argv[1], int(sys.argv[2])
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, 0x400454ca, struct.pack("16sH", b"tun0", 0x0001 | 0x1000))
if kind == "ipip":
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
while True:
    p = s.recv(65535)
    if kind == "ipip":
        p = p[(p[0] & 15) * 4:]
    else:
        if len(p) < 4 or p[0] != 0 or p[1] != 4:
            continue
        p = p[4:]
    os.write(tun, p)
"#;

/// Reads everything a client sends and answers with the byte count: an
/// upload large enough to need path-MTU discovery through the tunnel.
const SINK: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9000))
s.listen(8)
while True:
    c, _ = s.accept()
    n = 0
    while True:
        b = c.recv(65536)
        if not b:
            break
        n += len(b)
    c.sendall(str(n).encode())
    c.close()
"#;

/// Answers every UDP datagram to the VIP's port 9001 with its length (a
/// datagram too big for the tunnel arrives in outer fragments, which this
/// namespace's kernel reassembles before the decapsulator sees it). Bound
/// to the VIP, so the answer comes from it.
const UDP_LEN: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.100.0.100", 9001))
while True:
    b, peer = s.recvfrom(65535)
    s.sendto(str(len(b)).encode(), peer)
"#;

/// One tunnel server; its processes are stopped on drop (its namespace
/// goes with the topology).
pub struct TunnelServer {
    pub ns: String,
    pub addr: String,
    children: Vec<Child>,
    dir: PathBuf,
}

fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(st.success(), "{args:?} failed");
}

impl TunnelServer {
    /// Server `n` (namespace `PFX-rsN`, address 10.100.N.11, router side
    /// 10.100.N.1), decapsulating `kind` ("ipip" or "gue" on `port`), with
    /// HTTP on port 80 answering `rsN`, the byte-counting sink on 9000 and
    /// the UDP length answerer on 9001.
    pub fn up(t: &Topology, n: u8, kind: &str, port: u16) -> TunnelServer {
        let ns = t.ns(&format!("rs{n}"));
        let rt = t.ns("rt");
        let addr = format!("10.100.{n}.11");
        let dir = std::env::temp_dir().join(format!("{ns}-tun"));
        std::fs::create_dir_all(dir.join("www")).unwrap();
        std::fs::write(dir.join("www/index.html"), format!("rs{n}\n")).unwrap();
        std::fs::write(dir.join("decap.py"), DECAP).unwrap();
        std::fs::write(dir.join("sink.py"), SINK).unwrap();
        std::fs::write(dir.join("udp_len.py"), UDP_LEN).unwrap();
        let rt_dev = format!("rtc{n}");
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        sh(&[
            "ip", "link", "add", &rt_dev, "netns", &rt, "type", "veth", "peer", "name", "eth0",
            "netns", &ns,
        ]);
        for (n_, dev) in [(&rt, rt_dev.as_str()), (&ns, "eth0")] {
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", n_, "ethtool", "-K", dev, "tx", "off", "rx", "off",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            sh(&["ip", "-n", n_, "link", "set", dev, "up"]);
        }
        sh(&[
            "ip",
            "-n",
            &rt,
            "addr",
            "add",
            &format!("10.100.{n}.1/24"),
            "dev",
            &rt_dev,
        ]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "route",
            "add",
            "default",
            "via",
            &format!("10.100.{n}.1"),
        ]);
        sh(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            "10.100.0.100/32",
            "dev",
            "lo",
        ]);
        sh(&[
            "ip", "-n", &ns, "tuntap", "add", "mode", "tun", "dev", "tun0",
        ]);
        sh(&["ip", "-n", &ns, "link", "set", "tun0", "up"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "sysctl",
            "-qw",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
            "net.ipv4.conf.tun0.rp_filter=0",
            "net.ipv4.conf.eth0.rp_filter=0",
        ]);
        let spawn = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &ns])
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn in the tunnel server")
        };
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let children = vec![
            spawn(&["python3", &d("decap.py"), kind, &port.to_string()]),
            spawn(&[
                "python3",
                "-m",
                "http.server",
                "80",
                "--directory",
                &d("www"),
            ]),
            spawn(&["python3", &d("sink.py")]),
            spawn(&["python3", &d("udp_len.py")]),
        ];
        let s = TunnelServer {
            ns,
            addr,
            children,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("ip")
                .args(["netns", "exec", &s.ns, "ss", "-ltnu"])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains(":80 ") && text.contains(":9000 ") && text.contains(":9001 ") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "servers in {} did not start",
                s.ns
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }
}

impl Drop for TunnelServer {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
