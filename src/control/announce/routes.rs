//! The host routes themselves: a helper thread that makes the kernel
//! table hold exactly the wanted set, with `ip route replace` / `ip route
//! del` child processes (no netlink crate is in the dependency tree, and
//! `ip` is what an operator would type: its errors read as theirs). The
//! control loop only sends the wanted set and reads reports; a slow or
//! failing `ip` never delays it.

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::control::config::AnnounceSettings;

/// How soon a failed route command is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// What the thread reports after each pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The routes in the table now (as far as pmdlb knows).
    pub installed: Vec<IpAddr>,
    /// Route commands that failed so far.
    pub failures: u64,
    /// The last failure's text.
    pub last_error: Option<String>,
    /// The order this report answers (orders are numbered from 1).
    pub order: u64,
}

/// `ip` arguments that install the host route of `vip`.
pub fn replace_args(s: &AnnounceSettings, vip: IpAddr) -> Vec<String> {
    let mut a = route_args(s, "replace", vip);
    a.extend(["metric".into(), s.metric.to_string()]);
    a
}

/// `ip` arguments that remove the host route of `vip`.
pub fn del_args(s: &AnnounceSettings, vip: IpAddr) -> Vec<String> {
    route_args(s, "del", vip)
}

/// `ip` arguments that remove every route of pmdlb's protocol from its
/// table in one family (leftovers of an instance that did not stop).
pub fn flush_args(s: &AnnounceSettings, v6: bool) -> Vec<String> {
    let fam = if v6 { "-6" } else { "-4" };
    [fam, "route", "flush", "table"]
        .into_iter()
        .map(String::from)
        .chain([s.table.to_string(), "proto".into(), s.protocol.to_string()])
        .collect()
}

fn route_args(s: &AnnounceSettings, verb: &str, vip: IpAddr) -> Vec<String> {
    let (fam, len) = if vip.is_ipv6() {
        ("-6", 128)
    } else {
        ("-4", 32)
    };
    vec![
        fam.into(),
        "route".into(),
        verb.into(),
        format!("{vip}/{len}"),
        "dev".into(),
        s.device.clone(),
        "table".into(),
        s.table.to_string(),
        "proto".into(),
        s.protocol.to_string(),
    ]
}

/// Runs `ip ARGS`; the error names the command and quotes `ip`'s message.
fn ip(args: &[String]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// The thread's side.
struct Keeper {
    s: AnnounceSettings,
    wanted: Vec<IpAddr>,
    report: Report,
    link_up: bool,
}

impl Keeper {
    /// Brings the table to `wanted`; true when it is there.
    fn sync(&mut self) -> bool {
        if !self.link_up {
            let up = ["link", "set", "dev", &self.s.device, "up"].map(String::from);
            match ip(&up) {
                Ok(()) => self.link_up = true,
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            }
        }
        let mut ok = true;
        for vip in self.wanted.clone() {
            if self.report.installed.contains(&vip) {
                continue;
            }
            match ip(&replace_args(&self.s, vip)) {
                Ok(()) => self.report.installed.push(vip),
                Err(e) => {
                    ok = false;
                    self.fail(e);
                }
            }
        }
        for vip in self.report.installed.clone() {
            if self.wanted.contains(&vip) {
                continue;
            }
            match ip(&del_args(&self.s, vip)) {
                // Already gone (someone removed it): as good as deleted.
                Err(e) if !e.contains("No such process") => {
                    ok = false;
                    self.fail(e);
                }
                _ => self.report.installed.retain(|v| *v != vip),
            }
        }
        ok
    }

    fn fail(&mut self, e: String) {
        self.report.failures += 1;
        self.report.last_error = Some(e);
    }

    fn run(mut self, orders: Receiver<(u64, Vec<IpAddr>)>, reports: Sender<Report>) {
        for v6 in [false, true] {
            let _ = ip(&flush_args(&self.s, v6));
        }
        let mut synced = true;
        loop {
            match orders.recv_timeout(RETRY) {
                Ok((n, w)) => {
                    self.report.order = n;
                    self.wanted = w;
                }
                Err(RecvTimeoutError::Timeout) if synced => continue,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.wanted.clear();
                    self.sync();
                    let _ = reports.send(self.report.clone());
                    return;
                }
            }
            synced = self.sync();
            let _ = reports.send(self.report.clone());
        }
    }
}

/// The control loop's handle on the route thread. Dropping it withdraws
/// every route and joins the thread.
#[derive(Debug)]
pub struct Routes {
    orders: Option<Sender<(u64, Vec<IpAddr>)>>,
    /// Orders sent so far.
    sent: u64,
    reports: Receiver<Report>,
    last: Report,
    thread: Option<JoinHandle<()>>,
}

impl Routes {
    /// Starts the thread: it first flushes leftovers of pmdlb's protocol
    /// from the table, then waits for orders.
    pub fn start(s: &AnnounceSettings) -> std::io::Result<Routes> {
        let (otx, orx) = channel();
        let (rtx, rrx) = channel();
        let keeper = Keeper {
            s: s.clone(),
            wanted: Vec::new(),
            report: Report::default(),
            link_up: false,
        };
        let thread = std::thread::Builder::new()
            .name("pmdlb-announce".into())
            .spawn(move || keeper.run(orx, rtx))?;
        Ok(Routes {
            orders: Some(otx),
            sent: 0,
            reports: rrx,
            last: Report::default(),
            thread: Some(thread),
        })
    }

    /// Asks for exactly `wanted` in the table.
    pub fn want(&mut self, wanted: Vec<IpAddr>) {
        self.sent += 1;
        if let Some(o) = &self.orders {
            let _ = o.send((self.sent, wanted));
        }
    }

    /// The latest report (reads what arrived; never blocks).
    pub fn report(&mut self) -> &Report {
        while let Ok(r) = self.reports.try_recv() {
            self.last = r;
        }
        &self.last
    }

    /// Asks for an empty table and waits up to `within` (failed deletes
    /// are retried) until the thread reports it empty; true when it does.
    pub fn withdraw_all(&mut self, within: Duration) -> bool {
        self.want(Vec::new());
        let n = self.sent;
        let deadline = Instant::now() + within;
        loop {
            let r = self.report();
            if r.order >= n && r.installed.is_empty() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.reports.recv_timeout(left) {
                Ok(r) => self.last = r,
                Err(_) => return false,
            }
        }
    }
}

impl Drop for Routes {
    fn drop(&mut self) {
        drop(self.orders.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> AnnounceSettings {
        AnnounceSettings {
            table: 100,
            protocol: 200,
            metric: 5,
            device: "pmdlb0".into(),
            own_device: true,
            next_hops: Vec::new(),
            stop_delay_ms: 0,
        }
    }

    #[test]
    fn route_commands() {
        let s = settings();
        assert_eq!(
            replace_args(&s, "10.0.0.1".parse().unwrap()).join(" "),
            "-4 route replace 10.0.0.1/32 dev pmdlb0 table 100 proto 200 metric 5"
        );
        assert_eq!(
            del_args(&s, "fd00::1".parse().unwrap()).join(" "),
            "-6 route del fd00::1/128 dev pmdlb0 table 100 proto 200"
        );
        assert_eq!(
            flush_args(&s, true).join(" "),
            "-6 route flush table 100 proto 200"
        );
    }
}
