//! Runtime commands over a Unix socket (`pmdlb ctl`). One request line per
//! connection, a text answer, then the server closes. The control plane
//! polls the listening socket from its own loop (non-blocking accept), so
//! commands never touch a worker core.
//!
//! Commands:
//! - `stats` — per-worker counters, totals and the real-server table
//! - `servers` — services and real servers (weight, connections, MAC), as `ipvsadm -Ln`
//! - `servers --stats [--exact]` — connections, packets and bytes per service
//!   and server, as `ipvsadm -Ln --stats [--exact]`
//! - `servers --rate` — estimated rates, as `ipvsadm -Ln --rate`
//! - `weight SERVICE SERVER WEIGHT` — set a weight (0 = quiescent)
//! - `remove SERVICE SERVER` — take a server out (`expire_nodest_conn` applies)
//! - `stop` — graceful stop, as SIGTERM
//!
//! SERVICE is `tcp:VIP:PORT`, `udp:VIP:PORT`, `sctp:VIP:PORT` (IPv6 VIP in
//! brackets: `tcp:[fd00::1]:80`) or `fwmark:N`; SERVER is an address.
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::IpAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lb::spec::ServiceAddr;
use crate::lb::types::ip_proto;

/// A parsed runtime command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Print statistics.
    Stats,
    /// List services and servers.
    Servers,
    /// Traffic counters per service and server (`ipvsadm -L --stats`).
    ServerStats {
        /// Full numbers, no K/M/G abbreviation (`--exact`).
        exact: bool,
    },
    /// Estimated rates per service and server (`ipvsadm -L --rate`).
    ServerRates,
    /// Set a real server's weight.
    Weight {
        /// The service.
        service: ServiceAddr,
        /// The server's address.
        server: IpAddr,
        /// New weight.
        weight: u32,
    },
    /// Remove a real server.
    Remove {
        /// The service.
        service: ServiceAddr,
        /// The server's address.
        server: IpAddr,
    },
    /// Stop pmdlb.
    Stop,
}

/// Parses `tcp:10.0.0.1:80`, `udp:[fd00::1]:53` or `fwmark:7`.
pub fn parse_service(s: &str) -> Result<ServiceAddr, String> {
    let (kind, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("service {s:?}: expected PROTO:VIP:PORT or fwmark:N"))?;
    let proto = match kind {
        "fwmark" => {
            let n = rest
                .parse::<u32>()
                .map_err(|_| format!("service {s:?}: fwmark must be a number"))?;
            return Ok(ServiceAddr::Fwmark(n));
        }
        "tcp" => ip_proto::TCP,
        "udp" => ip_proto::UDP,
        "sctp" => ip_proto::SCTP,
        other => {
            return Err(format!(
                "service {s:?}: unknown protocol {other:?} (tcp, udp, sctp or fwmark)"
            ))
        }
    };
    let sock: std::net::SocketAddr = rest.parse().map_err(|_| {
        format!("service {s:?}: expected VIP:PORT after the protocol ([v6]:port for IPv6)")
    })?;
    Ok(ServiceAddr::Addr {
        proto,
        vip: sock.ip(),
        port: sock.port(),
    })
}

/// Parses one request line.
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let addr = |w: &str| {
        w.parse::<IpAddr>()
            .map_err(|_| format!("{w:?} is not an IP address"))
    };
    match words.as_slice() {
        ["stats"] => Ok(Command::Stats),
        ["servers"] => Ok(Command::Servers),
        ["servers", "--stats" | "stats"] => Ok(Command::ServerStats { exact: false }),
        ["servers", "--stats" | "stats", "--exact" | "exact"]
        | ["servers", "--exact" | "exact", "--stats" | "stats"] => {
            Ok(Command::ServerStats { exact: true })
        }
        ["servers", "--rate" | "rate"] => Ok(Command::ServerRates),
        ["stop"] => Ok(Command::Stop),
        ["weight", svc, server, w] => Ok(Command::Weight {
            service: parse_service(svc)?,
            server: addr(server)?,
            weight: w.parse().map_err(|_| format!("weight {w:?} is not a number 0..=65535"))?,
        }),
        ["remove", svc, server] => Ok(Command::Remove { service: parse_service(svc)?, server: addr(server)? }),
        _ => Err(format!(
            "unknown command {line:?}; commands: stats | servers [--stats [--exact] | --rate] | weight SERVICE SERVER WEIGHT | remove SERVICE SERVER | stop"
        )),
    }
}

/// The control socket path for an EAL file prefix.
pub fn socket_path(file_prefix: &str) -> PathBuf {
    PathBuf::from(format!("/run/pmdlb/{file_prefix}.sock"))
}

/// The listening side, polled by the control plane.
#[derive(Debug)]
pub struct CtlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl CtlServer {
    /// Binds `path` (replacing a stale socket file).
    pub fn bind(path: &Path) -> std::io::Result<CtlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            // A live pmdlb with the same prefix answers; a stale file does not.
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use by another pmdlb (use another file_prefix)",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(CtlServer {
            listener,
            path: path.to_owned(),
        })
    }

    /// Serves at most one pending request with `handle`; returns whether one
    /// was served.
    pub fn poll(&self, mut handle: impl FnMut(Result<Command, String>) -> String) -> bool {
        let Ok((stream, _)) = self.listener.accept() else {
            return false;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
        let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
        let mut line = String::new();
        let mut reader = BufReader::new(&stream);
        let answer = match reader.read_line(&mut line) {
            Ok(_) => handle(parse(line.trim())),
            Err(e) => format!("error: cannot read request: {e}\n"),
        };
        let mut w = &stream;
        let _ = w.write_all(answer.as_bytes());
        true
    }
}

impl Drop for CtlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Client side: sends `request` and returns the answer.
pub fn request(path: &Path, request: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request.as_bytes())?;
    s.write_all(b"\n")?;
    let mut out = String::new();
    std::io::Read::read_to_string(&mut s, &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("stats"), Ok(Command::Stats));
        assert_eq!(
            parse("servers --stats"),
            Ok(Command::ServerStats { exact: false })
        );
        assert_eq!(
            parse("servers --exact --stats"),
            Ok(Command::ServerStats { exact: true })
        );
        assert_eq!(parse("servers --rate"), Ok(Command::ServerRates));
        assert_eq!(
            parse("weight tcp:10.0.0.1:80 10.0.1.11 0"),
            Ok(Command::Weight {
                service: ServiceAddr::Addr {
                    proto: 6,
                    vip: "10.0.0.1".parse().unwrap(),
                    port: 80
                },
                server: "10.0.1.11".parse().unwrap(),
                weight: 0
            })
        );
        assert_eq!(
            parse("remove fwmark:3 fd00::1"),
            Ok(Command::Remove {
                service: ServiceAddr::Fwmark(3),
                server: "fd00::1".parse().unwrap()
            })
        );
        assert!(parse("weight tcp:[fd00::1]:443 fd00::2 5").is_ok());
        assert!(parse("weight icmp:1.2.3.4:1 1.1.1.1 1")
            .unwrap_err()
            .contains("unknown protocol"));
        assert!(parse("frobnicate").unwrap_err().contains("commands:"));
        assert!(parse("weight tcp:1.2.3.4:80 1.1.1.1 x")
            .unwrap_err()
            .contains("weight"));
    }

    #[test]
    fn socket_roundtrip() {
        let dir = std::env::temp_dir().join(format!("pmdlb-ctl-{}", std::process::id()));
        let path = dir.join("t.sock");
        let srv = CtlServer::bind(&path).unwrap();
        let p2 = path.clone();
        let client = std::thread::spawn(move || request(&p2, "stats").unwrap());
        // Bounded by time, not by a count of polls: a loaded machine may
        // take a while to schedule the client thread.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let mut served = false;
        while !served && std::time::Instant::now() < deadline {
            served = srv.poll(|c| format!("got {c:?}\n"));
            std::thread::sleep(Duration::from_millis(2));
        }
        assert!(served, "the client's request did not arrive within 20 s");
        assert_eq!(client.join().unwrap(), "got Ok(Stats)\n");
        drop(srv);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(dir);
    }
}
