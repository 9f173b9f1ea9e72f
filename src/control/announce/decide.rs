//! Which VIPs this director should announce now, and why the others are
//! held back: a pure function of what the control loop sees.

#![forbid(unsafe_code)]

use std::fmt;
use std::net::IpAddr;

use crate::control::config::values::mask_addr;
use crate::lb::spec::{MarkRuleSpec, ServiceAddr, VipSpec};

/// Why a VIP is not announced, in the order they are checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// `pmdlb ctl drain`.
    Drained,
    /// pmdlb is stopping.
    Stopping,
    /// An RX or TX port's link is down.
    PortDown,
    /// A worker is not running.
    WorkerStopped,
    /// The sync receiver has not yet run `sync.announce_hold_ms`: a
    /// restarted director learns the live flows before ECMP sends it any.
    SyncPending,
    /// One of the VIP's services has lost its quorum (or every checked
    /// server is down).
    Unhealthy,
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hold::Drained => "drained",
            Hold::Stopping => "stopping",
            Hold::PortDown => "port link down",
            Hold::WorkerStopped => "worker not running",
            Hold::SyncPending => "sync receiver still learning (sync.announce_hold_ms)",
            Hold::Unhealthy => "a service lost its quorum",
        })
    }
}

/// What the decision reads.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// `pmdlb ctl drain` in effect.
    pub drained: bool,
    /// pmdlb is stopping.
    pub stopping: bool,
    /// Every port's link is up.
    pub ports_up: bool,
    /// Every worker runs.
    pub workers_running: bool,
    /// The sync receiver (if any) has run `sync.announce_hold_ms`; true
    /// without a receiving `[sync]`.
    pub sync_ready: bool,
    /// The VIPs of the current rule set.
    pub vips: &'a [VipSpec],
    /// Addresses never announced (`announce.next_hops`).
    pub next_hops: &'a [IpAddr],
    /// Per service: the VIPs it serves and whether it can take clients.
    pub services: &'a [(Vec<IpAddr>, bool)],
}

/// Each announceable VIP with `None` (announce it) or why not.
pub fn decide(i: &Inputs) -> Vec<(IpAddr, Option<Hold>)> {
    let global = if i.drained {
        Some(Hold::Drained)
    } else if i.stopping {
        Some(Hold::Stopping)
    } else if !i.ports_up {
        Some(Hold::PortDown)
    } else if !i.workers_running {
        Some(Hold::WorkerStopped)
    } else if !i.sync_ready {
        Some(Hold::SyncPending)
    } else {
        None
    };
    i.vips
        .iter()
        .map(|v| v.addr)
        .filter(|a| !i.next_hops.contains(a))
        .map(|a| {
            let sick = i
                .services
                .iter()
                .any(|(vips, healthy)| !healthy && vips.contains(&a));
            (a, global.or(sick.then_some(Hold::Unhealthy)))
        })
        .collect()
}

/// The VIPs a service serves: its own for an address service; for a
/// fwmark service, the VIPs its mark rules' destinations cover.
pub fn service_vips(addr: &ServiceAddr, marks: &[MarkRuleSpec], vips: &[VipSpec]) -> Vec<IpAddr> {
    match addr {
        ServiceAddr::Addr { vip, .. } => vec![*vip],
        ServiceAddr::Fwmark(m) => vips
            .iter()
            .map(|v| v.addr)
            .filter(|a| {
                marks.iter().any(|r| {
                    r.mark == *m
                        && r.dst.is_ipv6() == a.is_ipv6()
                        && mask_addr(*a, r.prefix_len) == r.dst
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(a: &str) -> VipSpec {
        VipSpec {
            addr: a.parse().unwrap(),
            answer_arp: true,
            answer_ping: true,
        }
    }

    fn ip(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    fn inputs<'a>(
        vips: &'a [VipSpec],
        hops: &'a [IpAddr],
        svcs: &'a [(Vec<IpAddr>, bool)],
    ) -> Inputs<'a> {
        Inputs {
            drained: false,
            stopping: false,
            ports_up: true,
            workers_running: true,
            sync_ready: true,
            vips,
            next_hops: hops,
            services: svcs,
        }
    }

    #[test]
    fn healthy_vips_are_announced_next_hops_never() {
        let vips = [vip("10.0.0.1"), vip("10.0.0.2"), vip("10.9.0.2")];
        let hops = [ip("10.9.0.2")];
        let svcs = [(vec![ip("10.0.0.1")], true), (vec![ip("10.0.0.2")], false)];
        let d = decide(&inputs(&vips, &hops, &svcs));
        assert_eq!(
            d,
            vec![
                (ip("10.0.0.1"), None),
                (ip("10.0.0.2"), Some(Hold::Unhealthy))
            ]
        );
    }

    #[test]
    fn global_reasons_hold_every_vip_drain_first() {
        let vips = [vip("10.0.0.1"), vip("fd00::1")];
        let svcs = [(vec![ip("10.0.0.1")], false)];
        let mut i = inputs(&vips, &[], &svcs);
        i.ports_up = false;
        assert!(decide(&i).iter().all(|(_, h)| *h == Some(Hold::PortDown)));
        i.drained = true;
        i.stopping = true;
        assert!(decide(&i).iter().all(|(_, h)| *h == Some(Hold::Drained)));
        i = inputs(&vips, &[], &svcs);
        i.workers_running = false;
        assert!(decide(&i)
            .iter()
            .all(|(_, h)| *h == Some(Hold::WorkerStopped)));
    }

    #[test]
    fn sync_pending_holds_every_vip_until_ready() {
        let vips = [vip("10.0.0.1"), vip("10.0.0.2")];
        let svcs = [(vec![ip("10.0.0.1")], false)];
        let mut i = inputs(&vips, &[], &svcs);
        i.sync_ready = false;
        assert!(decide(&i)
            .iter()
            .all(|(_, h)| *h == Some(Hold::SyncPending)));
        i.workers_running = false;
        assert!(
            decide(&i)
                .iter()
                .all(|(_, h)| *h == Some(Hold::WorkerStopped)),
            "a stopped worker is the stronger reason"
        );
        i = inputs(&vips, &[], &svcs);
        assert_eq!(
            decide(&i),
            vec![
                (ip("10.0.0.1"), Some(Hold::Unhealthy)),
                (ip("10.0.0.2"), None)
            ],
            "ready: the per-VIP reasons again"
        );
    }

    #[test]
    fn fwmark_services_cover_the_vips_of_their_mark_rules() {
        let vips = [vip("10.0.0.1"), vip("10.0.1.1"), vip("fd00::1")];
        let marks = [MarkRuleSpec {
            dst: ip("10.0.0.0"),
            prefix_len: 24,
            proto: None,
            ports: Vec::new(),
            mark: 7,
        }];
        assert_eq!(
            service_vips(&ServiceAddr::Fwmark(7), &marks, &vips),
            vec![ip("10.0.0.1")]
        );
        assert!(service_vips(&ServiceAddr::Fwmark(8), &marks, &vips).is_empty());
    }
}
