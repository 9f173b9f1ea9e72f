//! Health checks with keepalived's semantics, confined to the control
//! plane (DESIGN.md §5): a scheduler thread (`runner`) keeps one state
//! machine per real server (`machine`), starts each due check on a
//! short-lived thread of its own (`probe`), runs `notify_up`/`notify_down`
//! and sends every result and state change over a channel the control loop
//! drains each tick. The control loop applies the effect ([`Effects`]):
//! with `inhibit_on_failure` weight 0 (quiescent), else the server's
//! health-down flag, which the schedulers honour for new clients only.
//! Checks use the kernel's network stack (a management interface routed to
//! the real servers), never a worker.
#![forbid(unsafe_code)]

pub mod machine;
pub mod probe;
pub mod runner;

use std::fmt::Write as _;
use std::time::SystemTime;

use crate::control::metrics::HealthSample;
use crate::lb::snapshot::Snapshot;
use crate::lb::types::{RsId, ServiceId};

pub use machine::{Kind, Timing};
pub use probe::{Outcome, Probe, Tls, Url};
pub use runner::{HealthEvent, Runner};

/// One configured checker of a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckSpec {
    /// What it does.
    pub probe: Probe,
    /// When and how long.
    pub timing: Timing,
}

/// The health checks of one real server (validated configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerChecks {
    /// Its checkers (at least one).
    pub checks: Vec<CheckSpec>,
    /// Start down until the first pass.
    pub alpha: bool,
    /// On failure set weight 0 instead of taking it out.
    pub inhibit_on_failure: bool,
    /// Run (by `sh -c`) when it comes up.
    pub notify_up: Option<String>,
    /// Run when it goes down.
    pub notify_down: Option<String>,
}

impl ServerChecks {
    /// For `pmdlb check`: one line per checker, then the options.
    pub fn describe(&self) -> String {
        let mut o = String::new();
        for c in &self.checks {
            let t = &c.timing;
            let what = match &c.probe {
                Probe::Tcp { target, .. } => format!("tcp {target}"),
                Probe::Http {
                    target,
                    urls,
                    tls,
                    fast_recovery,
                    ..
                } => {
                    let paths: Vec<&str> = urls.iter().map(|u| u.path.as_str()).collect();
                    let verify = if tls.is_some_and(|t| t.verify) {
                        " verify"
                    } else {
                        ""
                    };
                    let fast = if *fast_recovery { " fast_recovery" } else { "" };
                    format!(
                        "{} {target} {}{verify}{fast}",
                        c.probe.kind(),
                        paths.join(",")
                    )
                }
                Probe::Misc { path, dynamic } => {
                    format!("misc {path:?}{}", if *dynamic { " dynamic" } else { "" })
                }
            };
            let _ = writeln!(
                o,
                "     check {what}  every {}s  timeout {}s  retry {} after {}s  warmup {}s",
                t.delay_loop.as_secs(),
                t.connect_timeout.as_secs(),
                t.retry,
                t.delay_before_retry.as_secs(),
                t.warmup.as_secs()
            );
        }
        let _ = write!(
            o,
            "     on failure: {}{}",
            if self.inhibit_on_failure {
                "weight 0 (inhibit)"
            } else {
                "out of scheduling"
            },
            if self.alpha { "  alpha" } else { "" }
        );
        o
    }
}

/// A service's quorum (keepalived's `quorum`, `hysteresis`,
/// `sorry_server`), validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumSpec {
    /// Sum of live weights needed (default 1).
    pub quorum: u64,
    /// Lost below `quorum − hysteresis`, regained at `quorum + hysteresis`.
    pub hysteresis: u64,
    /// The sorry server: the last server of the service in the snapshot,
    /// which gets every new client while quorum is lost.
    pub sorry: Option<RsId>,
    /// A standby sorry server has weight 0 rather than being out.
    pub sorry_inhibit: bool,
    /// Run (by `sh -c`) when quorum is regained.
    pub quorum_up: Option<String>,
    /// Run when quorum is lost.
    pub quorum_down: Option<String>,
}

/// A server's health as the operator sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// No checker configured.
    Unchecked,
    /// Every checker up.
    Up,
    /// At least one checker down.
    Down,
}

impl Health {
    /// `up`, `down`, `unchecked`.
    pub fn name(self) -> &'static str {
        match self {
            Health::Unchecked => "unchecked",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The control plane's record of one checked server.
#[derive(Clone, Debug)]
pub struct ServerView {
    /// Configured weight.
    pub configured: u32,
    /// Weight set with `pmdlb ctl weight` (wins over the configured one).
    pub admin: Option<u32>,
    /// Weight from a misc_dynamic check.
    pub dynamic: Option<u32>,
    /// Quiesce (weight 0) rather than take out.
    pub inhibit: bool,
    /// Alive.
    pub up: bool,
    /// Last result: passed, which checker, why.
    pub last: Option<(bool, String)>,
    /// When `up` last changed (start time until then).
    pub changed: SystemTime,
    /// Checks run.
    pub run: u64,
    /// Checks failed.
    pub failed: u64,
}

impl ServerView {
    /// The weight the server should have now.
    pub fn effective_weight(&self) -> u32 {
        if !self.up && self.inhibit {
            0
        } else {
            self.dynamic.or(self.admin).unwrap_or(self.configured)
        }
    }
}

/// The control plane's side: what the health checks have decided, and its
/// effect on the snapshot's atomics.
#[derive(Debug)]
pub struct Effects {
    views: Vec<Option<ServerView>>,
    /// Per service: its quorum and whether it has it now.
    quorums: Vec<Option<(QuorumSpec, bool)>>,
    /// Per server: its service index.
    svc_of: Vec<usize>,
    scripts: Vec<std::process::Child>,
}

impl Effects {
    /// One entry per real server (`RsId` order; `None` = unchecked) with
    /// its configured weight. Servers whose checks start down (alpha) get
    /// their effect at once.
    pub fn new(
        snap: &Snapshot,
        checks: &[Option<ServerChecks>],
        quorums: &[Option<QuorumSpec>],
    ) -> Effects {
        let now = SystemTime::now();
        let views = checks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let c = c.as_ref()?;
                let configured = snap.server(RsId(i as u32)).map_or(0, |s| s.weight());
                Some(ServerView {
                    configured,
                    admin: None,
                    dynamic: None,
                    inhibit: c.inhibit_on_failure,
                    up: !c.alpha,
                    last: None,
                    changed: now,
                    run: 0,
                    failed: 0,
                })
            })
            .collect();
        let mut e = Effects {
            views,
            quorums: (0..snap.service_count())
                .map(|i| quorums.get(i).cloned().flatten().map(|q| (q, true)))
                .collect(),
            svc_of: snap.servers().map(|s| s.svc.0 as usize).collect(),
            scripts: Vec::new(),
        };
        for i in 0..snap.service_count() {
            e.update_quorum(snap, i);
        }
        let ids: Vec<RsId> = snap.servers().map(|s| s.id).collect();
        for id in ids {
            e.apply(snap, id);
        }
        e
    }

    /// `Some(quorum lost)` for a service with a sorry server.
    fn sorry_state(&self, svc: usize) -> Option<(RsId, bool, bool)> {
        match self.quorums.get(svc) {
            Some(Some((q, has))) => q.sorry.map(|rs| (rs, !*has, q.sorry_inhibit)),
            _ => None,
        }
    }

    fn apply(&self, snap: &Snapshot, rs: RsId) {
        let Some(srv) = snap.server(rs) else {
            return;
        };
        // Written only on a change: workers read these lines when they
        // schedule.
        let set_out = |down: bool| {
            if srv.is_health_down() != down {
                snap.set_health_down(rs, down);
            }
        };
        let sorry = self.sorry_state(srv.svc.0 as usize);
        let set_weight = |w: u32| {
            if srv.weight() != w {
                snap.set_weight(rs, w);
            }
        };
        match sorry {
            // The sorry server itself: in while quorum is lost.
            Some((s, lost, inhibit)) if s == rs => {
                if lost {
                    set_weight(1);
                    set_out(false);
                } else if inhibit {
                    set_weight(0);
                    set_out(false);
                } else {
                    set_out(true);
                }
                return;
            }
            _ => {}
        }
        // Quorum lost with a sorry server: the live servers go too
        // (quiesced with inhibit_on_failure).
        let lost = sorry.is_some_and(|(_, lost, _)| lost);
        match self.views.get(rs.0 as usize) {
            Some(Some(v)) => {
                let w = if lost && v.inhibit {
                    0
                } else {
                    v.effective_weight()
                };
                set_weight(w);
                set_out(!v.inhibit && (lost || !v.up));
            }
            _ => {
                set_out(lost);
            }
        }
    }

    /// Re-evaluates a service's quorum; on a change applies it to all its
    /// servers and runs quorum_up / quorum_down.
    fn update_quorum(&mut self, snap: &Snapshot, svc: usize) {
        let Some(Some((q, has))) = self.quorums.get(svc) else {
            return;
        };
        let Some(st) = snap.service(ServiceId(svc as u32)) else {
            return;
        };
        let mut sum = 0u64;
        for rs in st.servers.iter().map(|r| r.id) {
            if Some(rs) == q.sorry {
                continue;
            }
            sum += match self.views.get(rs.0 as usize) {
                Some(Some(v)) if v.up => u64::from(v.effective_weight()),
                Some(Some(_)) => 0,
                _ => snap.server(rs).map_or(0, |s| u64::from(s.weight())),
            };
        }
        let now = machine::quorum_step(*has, sum, q.quorum, q.hysteresis);
        if now == *has {
            return;
        }
        let script = if now { &q.quorum_up } else { &q.quorum_down };
        if let Some(cmd) = script {
            match std::process::Command::new("sh")
                .args(["-c", cmd])
                .stdin(std::process::Stdio::null())
                .spawn()
            {
                Ok(c) => self.scripts.push(c),
                Err(e) => eprintln!("pmdlb: health: cannot run {cmd:?}: {e}"),
            }
        }
        if let Some(Some((_, has))) = self.quorums.get_mut(svc) {
            *has = now;
        }
        for rs in st.servers.iter().map(|r| r.id) {
            self.apply(snap, rs);
        }
    }

    /// Whether a service has its quorum (`None`: no quorum configured).
    pub fn has_quorum(&self, svc: usize) -> Option<bool> {
        self.quorums.get(svc)?.as_ref().map(|q| q.1)
    }

    /// Whether a service can take clients, for the VIP announcement: its
    /// quorum where one is configured; else, where any of its servers is
    /// checked, at least one checked server up or one unchecked server
    /// (keepalived's default quorum of 1); a service with no checks is.
    pub fn service_healthy(&self, snap: &Snapshot, svc: usize) -> bool {
        if let Some(has) = self.has_quorum(svc) {
            return has;
        }
        let Some(st) = snap.service(ServiceId(svc as u32)) else {
            return true;
        };
        let mut checked = false;
        for rs in st.servers.iter().map(|r| r.id) {
            match self.view(rs) {
                Some(v) if v.up => return true,
                Some(_) => checked = true,
                None => return true,
            }
        }
        !checked
    }

    fn after(&mut self, snap: &Snapshot, rs: RsId) {
        self.apply(snap, rs);
        if let Some(&svc) = self.svc_of.get(rs.0 as usize) {
            self.update_quorum(snap, svc);
        }
        self.scripts
            .retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }

    /// Applies one event from the runner.
    pub fn on_event(&mut self, snap: &Snapshot, ev: HealthEvent) {
        match ev {
            HealthEvent::Result {
                rs,
                checker,
                kind,
                outcome,
                ..
            } => {
                if let Some(Some(v)) = self.views.get_mut(rs.0 as usize) {
                    v.run += 1;
                    if !outcome.ok {
                        v.failed += 1;
                    }
                    if outcome.weight.is_some() {
                        v.dynamic = outcome.weight;
                    }
                    v.last = Some((outcome.ok, format!("{kind}#{checker}: {}", outcome.reason)));
                }
                self.after(snap, rs);
            }
            HealthEvent::Server { rs, up } => {
                if let Some(Some(v)) = self.views.get_mut(rs.0 as usize) {
                    v.up = up;
                    v.changed = SystemTime::now();
                }
                self.after(snap, rs);
            }
        }
    }

    /// `pmdlb ctl weight`: the weight to keep (and restore after a
    /// failure). An inhibited down server stays at 0 until it is back.
    pub fn set_admin_weight(&mut self, snap: &Snapshot, rs: RsId, weight: u32) {
        match self.views.get_mut(rs.0 as usize) {
            Some(Some(v)) => {
                v.admin = Some(weight);
                v.dynamic = None;
            }
            _ => {
                snap.set_weight(rs, weight);
            }
        }
        self.after(snap, rs);
    }

    /// A server's health.
    pub fn health(&self, rs: RsId) -> Health {
        match self.views.get(rs.0 as usize) {
            Some(Some(v)) if v.up => Health::Up,
            Some(Some(_)) => Health::Down,
            _ => Health::Unchecked,
        }
    }

    /// A server's record, if checked.
    pub fn view(&self, rs: RsId) -> Option<&ServerView> {
        self.views.get(rs.0 as usize).and_then(Option::as_ref)
    }

    /// For the exposition: per server, its health if checked.
    pub fn samples(&self) -> Vec<Option<HealthSample>> {
        self.views
            .iter()
            .map(|v| {
                v.as_ref().map(|v| HealthSample {
                    up: v.up,
                    run: v.run,
                    failed: v.failed,
                })
            })
            .collect()
    }

    /// Checked servers that are down.
    pub fn down(&self) -> usize {
        self.views.iter().flatten().filter(|v| !v.up).count()
    }

    /// Whether any server is checked.
    pub fn any(&self) -> bool {
        self.views.iter().any(Option::is_some)
    }

    /// The `ctl servers` columns of a server (after two spaces): health,
    /// checks run/failed, when it last changed, the last result; `unchecked`
    /// when other servers are checked; nothing when no server is.
    pub fn columns(&self, rs: RsId) -> String {
        let mut s = String::new();
        let svc = self
            .svc_of
            .get(rs.0 as usize)
            .copied()
            .unwrap_or(usize::MAX);
        if let Some((sorry, lost, _)) = self.sorry_state(svc) {
            if sorry == rs {
                let what = if lost { "in (quorum lost)" } else { "standby" };
                return format!("  sorry server {what}");
            }
        }
        match self.view(rs) {
            None if self.any() => s.push_str("  unchecked"),
            None => {}
            Some(v) => {
                s.push_str("  ");
                let ago = SystemTime::now()
                    .duration_since(v.changed)
                    .map_or(0, |d| d.as_secs());
                let since = v
                    .changed
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let _ = write!(
                    s,
                    "{} checks={} failed={} changed={} ({}s ago)",
                    self.health(rs).name(),
                    v.run,
                    v.failed,
                    since,
                    ago
                );
                if let Some((ok, why)) = &v.last {
                    let _ = write!(s, " last={} {why}", if *ok { "ok" } else { "fail" });
                }
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::spec::{RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec};
    use crate::wire::ethernet::MacAddr;
    use std::time::Duration;

    fn snap() -> Snapshot {
        Snapshot::new(&[snap_spec()])
    }

    fn snap_spec() -> ServiceSpec {
        ServiceSpec {
            ops: false,
            addr: ServiceAddr::Fwmark(1),
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            servers: (0..3)
                .map(|i| RealServerSpec {
                    addr: format!("10.0.0.{}", i + 1).parse().unwrap(),
                    weight: 5,
                    u_threshold: 0,
                    l_threshold: 0,
                    mac: Some(MacAddr([2, 0, 0, 0, 0, i as u8])),
                    forward: Default::default(),
                    via: None,
                })
                .collect(),
        }
    }

    fn checks(alpha: bool, inhibit: bool) -> Option<ServerChecks> {
        Some(ServerChecks {
            checks: vec![CheckSpec {
                probe: Probe::Misc {
                    path: "true".into(),
                    dynamic: true,
                },
                timing: Timing {
                    delay_loop: Duration::from_secs(1),
                    connect_timeout: Duration::from_secs(1),
                    retry: 0,
                    delay_before_retry: Duration::from_secs(1),
                    warmup: Duration::ZERO,
                },
            }],
            alpha,
            inhibit_on_failure: inhibit,
            notify_up: None,
            notify_down: None,
        })
    }

    fn result(rs: u32, ok: bool, weight: Option<u32>) -> HealthEvent {
        HealthEvent::Result {
            rs: RsId(rs),
            checker: 0,
            kind: "misc",
            outcome: Outcome {
                ok,
                weight,
                reason: "test".into(),
            },
            late: Duration::ZERO,
        }
    }

    fn server(rs: u32, up: bool) -> HealthEvent {
        HealthEvent::Server { rs: RsId(rs), up }
    }

    #[test]
    fn inhibit_sets_weight_zero_removal_takes_it_out() {
        let s = snap();
        let mut e = Effects::new(&s, &[checks(false, true), checks(false, false), None], &[]);
        e.on_event(&s, server(0, false));
        e.on_event(&s, server(1, false));
        let (r0, r1) = (s.server(RsId(0)).unwrap(), s.server(RsId(1)).unwrap());
        assert_eq!(r0.weight(), 0, "inhibit: quiescent");
        assert!(!r0.is_health_down() && !r0.available());
        assert_eq!(r1.weight(), 5, "removal keeps the weight");
        assert!(r1.is_health_down() && !r1.available());
        assert_eq!(e.down(), 2);
        assert_eq!(e.health(RsId(2)), Health::Unchecked);
        e.on_event(&s, server(0, true));
        e.on_event(&s, server(1, true));
        assert_eq!(r0.weight(), 5);
        assert!(r0.available() && r1.available());
        assert_eq!(e.down(), 0);
    }

    #[test]
    fn a_service_is_healthy_for_the_announcement_while_a_checked_server_is_up() {
        let s = snap();
        assert!(Effects::new(&s, &[None, None, None], &[]).service_healthy(&s, 0));
        let two = [checks(false, false), checks(false, false), None];
        let mut e = Effects::new(&s, &[two[0].clone(), two[1].clone(), None], &[]);
        e.on_event(&s, server(0, false));
        e.on_event(&s, server(1, false));
        assert!(e.service_healthy(&s, 0), "the unchecked server counts");
        let mut e = Effects::new(&s, &[two[0].clone(), two[1].clone(), two[0].clone()], &[]);
        e.on_event(&s, server(0, false));
        e.on_event(&s, server(1, false));
        assert!(e.service_healthy(&s, 0), "rs2 still up");
        e.on_event(&s, server(2, false));
        assert!(!e.service_healthy(&s, 0), "every checked server down");
        e.on_event(&s, server(1, true));
        assert!(e.service_healthy(&s, 0));
    }

    #[test]
    fn a_service_with_quorum_is_healthy_while_it_has_it() {
        let (s, q) = with_sorry(10, 0, false, None);
        let c = checks(false, false);
        let mut e = Effects::new(&s, &[c.clone(), c.clone(), c, None], &q);
        assert!(e.service_healthy(&s, 0), "15 of quorum 10");
        e.on_event(&s, server(0, false));
        assert!(e.service_healthy(&s, 0), "10 of 10");
        e.on_event(&s, server(1, false));
        assert!(!e.service_healthy(&s, 0), "5 of 10: lost");
    }

    #[test]
    fn alpha_servers_start_out_of_service() {
        let s = snap();
        let e = Effects::new(
            &s,
            &[
                checks(true, false),
                checks(true, true),
                checks(false, false),
            ],
            &[],
        );
        assert!(s.server(RsId(0)).unwrap().is_health_down());
        assert_eq!(s.server(RsId(1)).unwrap().weight(), 0);
        assert!(s.server(RsId(2)).unwrap().available());
        assert_eq!(e.down(), 2);
    }

    /// Three servers of weight 5 and a sorry server (the fourth).
    fn with_sorry(
        quorum: u64,
        hysteresis: u64,
        inhibit: bool,
        down: Option<String>,
    ) -> (Snapshot, Vec<Option<QuorumSpec>>) {
        let mut spec = snap_spec();
        spec.servers.push(RealServerSpec {
            addr: "10.0.0.99".parse().unwrap(),
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 99])),
            forward: Default::default(),
            via: None,
        });
        let q = QuorumSpec {
            quorum,
            hysteresis,
            sorry: Some(RsId(3)),
            sorry_inhibit: inhibit,
            quorum_up: None,
            quorum_down: down,
        };
        (Snapshot::new(&[spec]), vec![Some(q)])
    }

    fn avail(s: &Snapshot) -> Vec<bool> {
        s.servers().map(|r| r.available()).collect()
    }

    #[test]
    fn quorum_lost_sends_new_clients_to_the_sorry_server() {
        let (s, q) = with_sorry(10, 0, false, None);
        let c = [
            checks(false, false),
            checks(false, false),
            checks(false, false),
            None,
        ];
        let mut e = Effects::new(&s, &c, &q);
        assert_eq!(
            avail(&s),
            [true, true, true, false],
            "sorry server on standby"
        );
        assert!(e.columns(RsId(3)).contains("sorry server standby"));
        e.on_event(&s, server(0, false));
        assert_eq!(e.has_quorum(0), Some(true), "10 live of quorum 10");
        e.on_event(&s, server(1, false));
        assert_eq!(e.has_quorum(0), Some(false));
        assert_eq!(
            avail(&s),
            [false, false, false, true],
            "all new clients to the sorry server"
        );
        assert!(e.columns(RsId(3)).contains("in (quorum lost)"));
        e.on_event(&s, server(0, true));
        assert_eq!(e.has_quorum(0), Some(true));
        assert_eq!(avail(&s), [true, false, true, false]);
    }

    #[test]
    fn quorum_hysteresis_and_sorry_server_inhibit() {
        let (s, q) = with_sorry(10, 5, true, None);
        let c = [
            checks(false, false),
            checks(false, true),
            checks(false, false),
            None,
        ];
        let mut e = Effects::new(&s, &c, &q);
        let sorry = s.server(RsId(3)).unwrap();
        assert!(
            !sorry.is_health_down() && sorry.weight() == 0,
            "inhibited standby: weight 0"
        );
        e.on_event(&s, server(0, false));
        e.on_event(&s, server(2, false));
        assert_eq!(e.has_quorum(0), Some(true), "5 is not below 10 - 5");
        e.on_event(&s, server(1, false));
        assert_eq!(e.has_quorum(0), Some(false), "0 < 5");
        assert_eq!(sorry.weight(), 1);
        assert_eq!(avail(&s), [false, false, false, true]);
        e.on_event(&s, server(0, true));
        e.on_event(&s, server(1, true));
        assert_eq!(e.has_quorum(0), Some(false), "10 < 10 + 5");
        assert_eq!(
            s.server(RsId(1)).unwrap().weight(),
            0,
            "inhibit: quiesced while quorum is lost"
        );
        e.on_event(&s, server(2, true));
        assert_eq!(e.has_quorum(0), Some(true), "15 >= 15");
        assert_eq!(avail(&s), [true, true, true, false]);
        assert_eq!(
            (sorry.weight(), s.server(RsId(1)).unwrap().weight()),
            (0, 5)
        );
    }

    #[test]
    fn alpha_starts_without_quorum_and_quorum_down_runs() {
        let f = std::env::temp_dir().join(format!("pmdlb-quorum-{}", std::process::id()));
        let _ = std::fs::remove_file(&f);
        let (s, q) = with_sorry(1, 0, false, Some(format!("echo lost > {}", f.display())));
        let c = [
            checks(true, false),
            checks(true, false),
            checks(true, false),
            None,
        ];
        let e = Effects::new(&s, &c, &q);
        assert_eq!(e.has_quorum(0), Some(false));
        assert_eq!(avail(&s), [false, false, false, true]);
        let t0 = std::time::Instant::now();
        while std::fs::read_to_string(&f).unwrap_or_default() != "lost\n" {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "quorum_down did not run"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn admin_weight_is_restored_after_a_failure() {
        let s = snap();
        let mut e = Effects::new(&s, &[checks(false, true), None, None], &[]);
        e.set_admin_weight(&s, RsId(0), 9);
        assert_eq!(s.server(RsId(0)).unwrap().weight(), 9);
        e.on_event(&s, server(0, false));
        e.set_admin_weight(&s, RsId(0), 7);
        assert_eq!(
            s.server(RsId(0)).unwrap().weight(),
            0,
            "stays quiesced while down"
        );
        e.on_event(&s, server(0, true));
        assert_eq!(s.server(RsId(0)).unwrap().weight(), 7);
        e.set_admin_weight(&s, RsId(1), 3);
        assert_eq!(
            s.server(RsId(1)).unwrap().weight(),
            3,
            "unchecked: set directly"
        );
    }

    #[test]
    fn misc_dynamic_weights_and_counters() {
        let s = snap();
        let mut e = Effects::new(&s, &[checks(false, false), None, None], &[]);
        e.on_event(&s, result(0, true, Some(40)));
        assert_eq!(s.server(RsId(0)).unwrap().weight(), 40);
        e.on_event(&s, result(0, true, Some(0)));
        assert_eq!(s.server(RsId(0)).unwrap().weight(), 0, "exit 2: weight 0");
        e.on_event(&s, result(0, false, None));
        let v = e.view(RsId(0)).unwrap();
        assert_eq!((v.run, v.failed), (3, 1));
        assert!(e.columns(RsId(0)).contains("checks=3 failed=1"));
        assert!(e.columns(RsId(0)).contains("last=fail misc#0: test"));
        assert_eq!(
            e.samples()[0],
            Some(HealthSample {
                up: true,
                run: 3,
                failed: 1
            })
        );
    }
}

#[cfg(test)]
mod exposition_tests {
    use super::tests_support::snap3;
    use super::*;
    use crate::control::metrics::Exposition;
    use crate::control::traffic::TrafficBook;
    use std::time::Instant;

    #[test]
    fn health_families_only_for_checked_backends() {
        let snap = snap3();
        let book = TrafficBook::new(&snap, Vec::new(), Instant::now());
        let render = |health: &[Option<HealthSample>]| {
            Exposition {
                workers: &[],
                snap: &snap,
                traffic: &book,
                conn_capacity: 0,
                templates: 0,
                template_capacity: 0,
                mbufs_in_use: 0,
                mbufs: 0,
                stale: &[],
                health,
                announce: None,
                sync: None,
            }
            .render()
        };
        assert!(
            !render(&[]).contains("pmdlb_backend_health"),
            "nothing checked"
        );
        let text = render(&[
            Some(HealthSample {
                up: false,
                run: 7,
                failed: 2,
            }),
            None,
            Some(HealthSample {
                up: true,
                run: 3,
                failed: 0,
            }),
        ]);
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("pmdlb_backend_health"))
            .collect();
        assert_eq!(lines.len(), 6, "{lines:#?}");
        assert!(lines[0].contains("remote_address=\"10.0.0.1\"") && lines[0].ends_with(" 0"));
        assert!(lines[1].contains("remote_address=\"10.0.0.3\"") && lines[1].ends_with(" 1"));
        assert!(
            lines[2].starts_with("pmdlb_backend_health_checks_total{") && lines[2].ends_with(" 7")
        );
        assert!(
            lines[5].starts_with("pmdlb_backend_health_check_failures_total{")
                && lines[5].ends_with(" 0")
        );
        assert!(text.contains("# TYPE pmdlb_backend_health gauge"));
        assert!(text.contains("# TYPE pmdlb_backend_health_checks_total counter"));
    }
}

#[cfg(test)]
mod tests_support {
    use crate::lb::snapshot::Snapshot;
    use crate::lb::spec::{RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec};

    /// One fwmark service with servers 10.0.0.1..=3.
    pub fn snap3() -> Snapshot {
        Snapshot::new(&[ServiceSpec {
            ops: false,
            addr: ServiceAddr::Fwmark(1),
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: None,
            servers: (1..=3)
                .map(|i| RealServerSpec {
                    addr: format!("10.0.0.{i}").parse().unwrap(),
                    weight: 1,
                    u_threshold: 0,
                    l_threshold: 0,
                    mac: None,
                    forward: Default::default(),
                    via: None,
                })
                .collect(),
        }])
    }
}
