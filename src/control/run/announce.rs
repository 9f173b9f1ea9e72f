//! The control loop's side of the VIP announcement: what it feeds the
//! decision each tick, `ctl status` / `drain` / `undrain`, and the
//! withdrawal at stop.

#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::ControlPlane;
use crate::control::announce::decide::{service_vips, Inputs};
use crate::control::ctl::{Answer, Command};

/// How long a stop waits for the routes to be withdrawn.
const WITHDRAW_TIME: Duration = Duration::from_secs(3);

impl ControlPlane<'_> {
    /// Decides again what to announce (every tick).
    pub(super) fn announce_tick(&mut self) {
        let sync_ready = self.sync_ready();
        let Some(a) = self.announcer.as_mut() else {
            return;
        };
        let snap = self.current.snap();
        let vips = &self.current.vips;
        let marks = self.rules_cfg.marks();
        let services: Vec<(Vec<IpAddr>, bool)> = snap
            .services()
            .enumerate()
            .map(|(i, s)| {
                let healthy = self.health.service_healthy(snap, i);
                (service_vips(&s.addr, marks, vips), healthy)
            })
            .collect();
        let next_hops = self.cfg.announce().map_or(&[][..], |s| &s.next_hops[..]);
        a.tick(Inputs {
            drained: a.drained(),
            stopping: self.stop.load(Ordering::Relaxed),
            ports_up: self.director.links_up(),
            workers_running: self.director.workers.ended_on_its_own().is_none(),
            sync_ready,
            vips,
            next_hops,
            services: &services,
        });
    }

    /// `status`, `drain`, `undrain`.
    pub(super) fn announce_command(&mut self, c: &Command) -> Answer {
        let Some(a) = self.announcer.as_mut() else {
            return Answer::failed(
                "no [announce] section in the configuration: pmdlb announces nothing",
            );
        };
        match c {
            Command::Drain | Command::Undrain => {
                let drain = *c == Command::Drain;
                if a.drained() != drain {
                    println!(
                        "pmdlb: announce: {} (ctl)",
                        if drain { "drain" } else { "undrain" }
                    );
                }
                a.set_drained(drain);
                self.announce_tick();
                Answer::ok(if drain {
                    "ok: draining: VIP routes withdrawn, forwarding continues\n"
                } else {
                    "ok: undrained: VIPs announced again where healthy\n"
                })
            }
            _ => Answer::ok(a.status()),
        }
    }

    /// Withdraws every VIP route before the workers stop.
    pub(super) fn withdraw_routes(&mut self) {
        let Some(a) = self.announcer.as_mut() else {
            return;
        };
        let t = Instant::now();
        if a.withdraw_all(WITHDRAW_TIME) {
            println!(
                "pmdlb: announce: routes withdrawn in {} ms, before the workers stop",
                t.elapsed().as_millis()
            );
            let delay = self.cfg.announce().map_or(0, |s| s.stop_delay_ms);
            if delay > 0 {
                // The workers still forward what the routers send while
                // they converge; nothing else is left for this loop to do.
                println!("pmdlb: announce: forwarding {delay} ms more (announce.stop_delay_ms)");
                std::thread::sleep(Duration::from_millis(u64::from(delay)));
            }
        } else {
            eprintln!(
                "pmdlb: announce: routes not confirmed withdrawn after {} s; stopping anyway",
                WITHDRAW_TIME.as_secs()
            );
        }
    }
}
