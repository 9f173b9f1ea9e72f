//! VIP announcement for several directors behind ECMP routers: pmdlb does
//! not speak BGP; it keeps one host route per VIP (/32, /128) in a kernel
//! routing table of its own (`[announce] table`, `protocol`), and a BGP
//! daemon on the same host (BIRD 2's `kernel` protocol with `learn`,
//! importing `krt_source = PROTOCOL` from that table) exports those routes
//! to the routers. A route present means "send me this VIP's clients".
//!
//! - **When.** Every control tick [`decide`](decide::decide) looks at the
//!   drain switch, the stop flag, the ports' links, the workers and each
//!   service's health (quorum where configured); a VIP is announced while
//!   none of them holds it back. Each change is counted and logged once.
//! - **How.** A helper thread ([`routes::Routes`]) runs `ip route
//!   replace/del`, so the control loop never waits on a child process.
//! - **Stop and drain.** On SIGTERM/SIGINT/`ctl stop` the routes are
//!   withdrawn (and the thread's answer awaited) before the workers stop;
//!   `ctl drain` withdraws them and keeps forwarding, `ctl undrain` brings
//!   them back.
//! - **Death.** With `own_device` (the default) the routes point at a TUN
//!   interface pmdlb creates and never makes persistent: when pmdlb dies,
//!   SIGKILL included, the kernel deletes the interface and its routes,
//!   BIRD sees them gone and withdraws the VIPs.

#![forbid(unsafe_code)]

pub mod decide;
pub mod routes;

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use crate::control::config::AnnounceSettings;
use crate::control::metrics::AnnounceSample;
use crate::sys::tun::TunDevice;
use decide::{decide, Hold, Inputs};
use routes::Routes;

/// Why the announcement could not start.
#[derive(Debug, thiserror::Error)]
pub enum AnnounceError {
    /// The TUN interface could not be created.
    #[error("announce.device {device:?}: cannot create the TUN interface: {err} (another pmdlb holding it, or an interface of that name that is not pmdlb's? set own_device = false to use an existing one)")]
    Device {
        /// The name.
        device: String,
        /// Why.
        err: std::io::Error,
    },
    /// The route thread could not start.
    #[error("announce: cannot start the route thread: {0}")]
    Thread(std::io::Error),
}

/// The announcement: the decision, the drain switch and the route thread.
#[derive(Debug)]
pub struct Announcer {
    settings: AnnounceSettings,
    drained: bool,
    /// The last decision (empty before the first tick).
    decided: Vec<(IpAddr, Option<Hold>)>,
    changes: u64,
    routes: Routes,
    /// Last field: the interface goes after the routes through it.
    device: Option<TunDevice>,
}

impl Announcer {
    /// Creates the interface (with `own_device`) and starts the route
    /// thread; nothing is announced before the first [`Announcer::tick`].
    pub fn start(s: &AnnounceSettings) -> Result<Announcer, AnnounceError> {
        let device = if s.own_device {
            Some(
                TunDevice::create(&s.device).map_err(|err| AnnounceError::Device {
                    device: s.device.clone(),
                    err,
                })?,
            )
        } else {
            None
        };
        Ok(Announcer {
            settings: s.clone(),
            drained: false,
            decided: Vec::new(),
            changes: 0,
            routes: Routes::start(s).map_err(AnnounceError::Thread)?,
            device,
        })
    }

    /// Decides again (the drain switch is the announcer's own) and, on a
    /// change, logs it and sends the new set to the route thread.
    pub fn tick(&mut self, inputs: Inputs) {
        let now = decide(&Inputs {
            drained: self.drained,
            ..inputs
        });
        if now == self.decided {
            return;
        }
        for (vip, hold) in &now {
            let was = self.decided.iter().find(|(v, _)| v == vip).map(|d| d.1);
            let (was_on, is_on) = (was.is_some_and(|h| h.is_none()), hold.is_none());
            if was_on != is_on {
                self.changes += 1;
            }
            match (hold, was_on != is_on, was.is_none()) {
                (None, true, _) => println!("pmdlb: announce: {vip} announced"),
                (Some(h), true, _) => println!("pmdlb: announce: {vip} withdrawn ({h})"),
                (Some(h), false, true) => println!("pmdlb: announce: {vip} not announced ({h})"),
                _ => {}
            }
        }
        for (vip, _) in self
            .decided
            .iter()
            .filter(|(v, h)| h.is_none() && !now.iter().any(|(n, _)| n == v))
        {
            self.changes += 1;
            println!("pmdlb: announce: {vip} withdrawn (no longer a VIP)");
        }
        self.decided = now;
        let wanted = self.wanted();
        self.routes.want(wanted);
    }

    fn wanted(&self) -> Vec<IpAddr> {
        self.decided
            .iter()
            .filter(|(_, h)| h.is_none())
            .map(|(v, _)| *v)
            .collect()
    }

    /// `ctl drain` / `ctl undrain`; applied at the next tick.
    pub fn set_drained(&mut self, drained: bool) {
        self.drained = drained;
    }

    /// Whether `ctl drain` is in effect.
    pub fn drained(&self) -> bool {
        self.drained
    }

    /// Withdraws every route and waits up to `within` until they are gone.
    pub fn withdraw_all(&mut self, within: Duration) -> bool {
        self.decided.clear();
        self.routes.withdraw_all(within)
    }

    /// For the metrics.
    pub fn sample(&mut self) -> AnnounceSample {
        let wanted = self.wanted();
        let r = self.routes.report();
        AnnounceSample {
            announcing: !wanted.is_empty() && wanted.iter().all(|v| r.installed.contains(v)),
            drained: self.drained,
            routes: r.installed.len() as u64,
            changes: self.changes,
            failures: r.failures,
        }
    }

    /// The `ctl status` text.
    pub fn status(&mut self) -> String {
        let s = self.sample();
        let r = self.routes.report().clone();
        let c = &self.settings;
        let mut o = String::new();
        let state = match (s.drained, s.announcing) {
            (true, _) => "drained (routes withdrawn, forwarding continues)",
            (false, true) => "announcing",
            (false, false) => "not announcing",
        };
        let _ = writeln!(o, "announce: {state}");
        let _ = writeln!(
            o,
            "  table {} proto {} metric {} dev {}{}",
            c.table,
            c.protocol,
            c.metric,
            c.device,
            if self.device.is_some() {
                " (pmdlb's own TUN: gone when pmdlb dies)"
            } else {
                ""
            }
        );
        for (vip, hold) in &self.decided {
            let installed = r.installed.contains(vip);
            let what = match (hold, installed) {
                (None, true) => "announced".to_owned(),
                (None, false) => "announcing (route pending)".to_owned(),
                (Some(h), false) => format!("withdrawn ({h})"),
                (Some(h), true) => format!("withdrawing ({h})"),
            };
            let _ = writeln!(o, "  {vip:<40} {what}");
        }
        let _ = writeln!(
            o,
            "  routes {} changes {} failures {}",
            s.routes, s.changes, s.failures
        );
        if let Some(e) = &r.last_error {
            let _ = writeln!(o, "  last failure: {e}");
        }
        o
    }
}
