//! The connection and persistence sync daemon (IPVS's `ip_vs_sync`), on
//! the control plane: a sender thread (roles `master` and `both`) that
//! drains the workers' outgoing rings and sends IPVS sync v1 datagrams,
//! and a receiver thread (roles `backup` and `both`) that installs what
//! peers send — connections on every worker's install ring, templates in
//! the shared persistence table. Both threads only touch their sockets,
//! the rings (never waiting on a full one) and the shared tables, so
//! nothing here delays the control loop or a worker. [`SyncDaemon::stop`]
//! (also on drop) sends the last datagram and joins both.

#![forbid(unsafe_code)]

pub mod counters;
pub mod receive;
pub mod send;
pub mod socket;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::config::{SyncSettings, SyncTransport};
use crate::lb::live::Live;
use crate::lb::persist::PersistTable;
use crate::lb::sync_record::ConnInstall;
use crate::lb::sync_ring::{Consumer, Outgoing, Producer, SyncRing, SyncRule};
use crate::wire::ipvs_sync::{max_message_len, Role};

pub use counters::{SyncCounters, SyncStats};
pub use socket::SocketError;

/// The control plane's ends of the rings, one per worker each.
#[derive(Debug, Default)]
pub struct ControlEnds {
    /// Worker → daemon (roles that send).
    pub outgoing: Vec<Consumer<Outgoing>>,
    /// Daemon → worker (roles that receive).
    pub installs: Vec<Producer<ConnInstall>>,
}

/// One worker's ends of its rings.
#[derive(Debug, Default)]
pub struct WorkerEnds {
    /// What it reports (for `WorkerState::enable_sync`).
    pub outgoing: Option<Producer<Outgoing>>,
    /// What it installs (its `Worker::sync_in`).
    pub installs: Option<Consumer<ConnInstall>>,
    /// The send rule.
    pub rule: SyncRule,
}

/// The rings of `workers` workers for `s`: only those its role uses.
pub fn rings(s: &SyncSettings, workers: usize) -> (ControlEnds, Vec<WorkerEnds>) {
    let mut cp = ControlEnds::default();
    let mut ws = Vec::with_capacity(workers);
    let slots = s.ring as usize;
    for _ in 0..workers {
        let mut w = WorkerEnds {
            rule: SyncRule {
                threshold: s.threshold,
                period: s.period,
            },
            ..WorkerEnds::default()
        };
        if s.role.sends() {
            let (p, c) = SyncRing::<Outgoing>::split(slots);
            w.outgoing = Some(p);
            cp.outgoing.push(c);
        }
        if s.role.receives() {
            let (p, c) = SyncRing::<ConnInstall>::split(slots);
            w.installs = Some(c);
            cp.installs.push(p);
        }
        ws.push(w);
    }
    (cp, ws)
}

/// What the daemon runs against.
pub struct Context {
    /// The tables the workers forward with.
    pub live: Arc<Live>,
    /// The shared persistence table.
    pub persist: Arc<PersistTable>,
    /// The workers' clock, ms.
    pub now_ms: fn() -> u64,
}

/// The running daemon.
#[derive(Debug)]
pub struct SyncDaemon {
    settings: SyncSettings,
    counters: Arc<SyncCounters>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    /// Datagram bound of the sender and of the receiver.
    maxlen: (usize, usize),
}

impl SyncDaemon {
    /// Opens the sockets and starts the threads of `s.role`.
    pub fn start(s: &SyncSettings, ends: ControlEnds, cx: Context) -> Result<Self, SocketError> {
        let counters = Arc::new(SyncCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mtu = socket::interface_mtu(s.interface.as_deref());
        let maxlen = (
            max_message_len(Role::Master, mtu, false, s.maxlen),
            max_message_len(Role::Backup, mtu, false, s.maxlen),
        );
        let mut d = SyncDaemon {
            settings: s.clone(),
            counters,
            stop,
            threads: Vec::new(),
            started: Instant::now(),
            maxlen,
        };
        let mut own = None;
        if s.role.sends() {
            let (sock, dests) = socket::sender(s)?;
            own = sock.local_addr().ok();
            let sender = send::Sender {
                rings: ends.outgoing,
                live: Arc::clone(&cx.live),
                socket: sock,
                dests,
                batcher: send::Batcher::new(s.syncid, maxlen.0, u64::from(s.flush_ms)),
                counters: Arc::clone(&d.counters),
                stop: Arc::clone(&d.stop),
            };
            d.spawn("pmdlb-sync-tx", move || sender.run())?;
        }
        if s.role.receives() {
            let sock = socket::receiver(s)?;
            let peers: Vec<IpAddr> = match &s.transport {
                SyncTransport::Unicast { peers } => peers.iter().map(|p| p.ip()).collect(),
                SyncTransport::Multicast { .. } => Vec::new(),
            };
            let inst = receive::Installer {
                rings: ends.installs,
                persist: cx.persist,
                live: cx.live,
                now_ms: cx.now_ms,
                counters: Arc::clone(&d.counters),
                filter: receive::Filter {
                    syncid: s.syncid,
                    own,
                    peers,
                },
            };
            let stop = Arc::clone(&d.stop);
            d.spawn("pmdlb-sync-rx", move || receive::run(sock, inst, stop))?;
        }
        println!(
            "pmdlb: sync: {}",
            d.daemon_lines().trim_end().replace('\n', "; ")
        );
        Ok(d)
    }

    fn spawn(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), SocketError> {
        let h = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(f)
            .map_err(|err| SocketError::Io {
                what: format!("thread {name}"),
                err,
            })?;
        self.threads.push(h);
        Ok(())
    }

    /// The counters now.
    pub fn stats(&self) -> SyncStats {
        self.counters.read()
    }

    /// The configuration it runs with.
    pub fn settings(&self) -> &SyncSettings {
        &self.settings
    }

    /// Whether the VIPs may be announced: no receiver, or one that has
    /// run `announce_hold_ms`.
    pub fn ready(&self) -> bool {
        ready(&self.settings, self.started.elapsed())
    }

    /// `ipvsadm -L --daemon`.
    pub fn daemon_lines(&self) -> String {
        daemon_lines(&self.settings, self.maxlen)
    }

    /// Sends what is pending and joins the threads (idempotent).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                eprintln!("pmdlb: sync: a daemon thread panicked");
            }
        }
    }
}

impl Drop for SyncDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// [`SyncDaemon::ready`] after running `ran`.
pub fn ready(s: &SyncSettings, ran: Duration) -> bool {
    !s.role.receives() || ran >= Duration::from_millis(u64::from(s.announce_hold_ms))
}

/// ipvsadm's `list_daemon` lines: `master sync daemon (mcast=%s,
/// syncid=%d, maxlen=%u, group=%s, port=%u, ttl=%u)` and the `backup`
/// one, as the kernel reports them (both for role `both`). `mcast` is the
/// interface; unicast has no group and adds `peers=…` (pmdlb's own).
pub fn daemon_lines(s: &SyncSettings, maxlen: (usize, usize)) -> String {
    let mut out = String::new();
    let ifn = s.interface.as_deref().unwrap_or("");
    let mut line = |kind: &str, maxlen: usize| {
        let _ = write!(
            out,
            "{kind} sync daemon (mcast={ifn}, syncid={}, maxlen={maxlen}",
            s.syncid
        );
        match &s.transport {
            SyncTransport::Multicast { group } => {
                let _ = write!(out, ", group={group}");
            }
            SyncTransport::Unicast { .. } => {}
        }
        let _ = write!(out, ", port={}, ttl={}", s.port, s.ttl);
        if let SyncTransport::Unicast { peers } = &s.transport {
            let list: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
            let _ = write!(out, ", peers={}", list.join(","));
        }
        out.push_str(")\n");
    };
    if s.role.sends() {
        line("master", maxlen.0);
    }
    if s.role.receives() {
        line("backup", maxlen.1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::Config;

    fn settings(sync: &str) -> SyncSettings {
        let text = format!(
            "[eal]\nlcores = \"0-1\"\n[ports]\nrx = \"net_null0\"\n\
             [[service]]\nvip = \"10.0.0.1\"\nport = 80\n[sync]\n{sync}\n"
        );
        Config::from_str(&text, "t.toml")
            .unwrap()
            .0
            .sync()
            .unwrap()
            .clone()
    }

    #[test]
    fn daemon_lines_follow_ipvsadm() {
        let s = settings("role = \"both\"\ninterface = \"eth1\"\nsyncid = 7");
        assert_eq!(
            daemon_lines(&s, (1472, 1472)),
            "master sync daemon (mcast=eth1, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n\
             backup sync daemon (mcast=eth1, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        );
        let s = settings("role = \"master\"\npeers = [\"10.1.0.2:9000\"]");
        assert_eq!(
            daemon_lines(&s, (1472, 1472)),
            "master sync daemon (mcast=, syncid=0, maxlen=1472, port=8848, ttl=1, peers=10.1.0.2:9000)\n"
        );
    }

    #[test]
    fn rings_follow_the_role_and_the_hold_only_a_receiver() {
        let s =
            settings("role = \"master\"\npeers = [\"10.1.0.2:9000\"]\nthreshold = 2\nperiod = 9");
        let (cp, ws) = rings(&s, 3);
        assert_eq!((cp.outgoing.len(), cp.installs.len(), ws.len()), (3, 0, 3));
        assert!(ws
            .iter()
            .all(|w| w.outgoing.is_some() && w.installs.is_none()));
        assert_eq!((ws[0].rule.threshold, ws[0].rule.period), (2, 9));
        assert!(ready(&s, Duration::ZERO), "a master never holds");
        let b = settings("role = \"backup\"\npeers = [\"10.1.0.2:9000\"]\nannounce_hold_ms = 500");
        let (cp, _) = rings(&b, 2);
        assert_eq!((cp.outgoing.len(), cp.installs.len()), (0, 2));
        assert!(!ready(&b, Duration::from_millis(499)));
        assert!(ready(&b, Duration::from_millis(500)));
    }
}
