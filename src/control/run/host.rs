//! The control loop's side of run-time changes: publishing a new rule set
//! (and everything that follows a swap), and `pmdlb admin` requests.
#![forbid(unsafe_code)]

use crate::control::admin::args::AdminError;
use crate::control::admin::client::AdminRequest;
use crate::control::admin::format::{ListView, ServerView, ServiceView};
use crate::control::admin::serve::{self, Handled, Host};
use crate::lb::snapshot::Change;
use crate::lb::spec::{ServiceAddr, ServiceSpec, StateFlags, Timeouts};

use super::ControlPlane;

impl ControlPlane<'_> {
    /// Publishes `specs` (and `timeouts`) as one swap: validated whole,
    /// built from the current snapshot, picked up by the workers at their
    /// next burst. Then the neighbour resolver, the traffic book and the
    /// health effects follow the new snapshot, configured weight changes go
    /// through the health checks (which may hold a server at 0), new VIPs
    /// are announced, and every change is logged on its own line.
    pub(super) fn publish(
        &mut self,
        specs: Vec<ServiceSpec>,
        timeouts: Timeouts,
        origin: &str,
    ) -> Result<Vec<Change>, String> {
        let flags = self.current.tables.flags;
        self.publish_with(specs, timeouts, flags, origin)
    }

    /// [`ControlPlane::publish`] with new behaviour switches too (reload).
    pub(super) fn publish_with(
        &mut self,
        specs: Vec<ServiceSpec>,
        timeouts: Timeouts,
        flags: StateFlags,
        origin: &str,
    ) -> Result<Vec<Change>, String> {
        let old_vips = self.current.vips.clone();
        let changes = self
            .current
            .swap_with(&self.rules_cfg, specs, timeouts, flags)?;
        let snap = std::sync::Arc::clone(self.current.snap());
        self.resolver.sync(&snap);
        self.watch.sync(&snap);
        for c in &changes {
            if let Change::WeightChanged { server, weight, .. } = c {
                self.health.set_admin_weight(&snap, *server, *weight);
            }
            println!("pmdlb: {origin}: {c}");
        }
        if self.current.vips.iter().any(|v| !old_vips.contains(v)) {
            self.announce.rounds = 0;
        }
        Ok(changes)
    }

    /// One `pmdlb admin` request (already decoded); `-L -c` is answered
    /// later (see `conns`).
    pub(super) fn admin(&mut self, req: Result<AdminRequest, AdminError>) -> Handled {
        match req {
            Ok(r) => serve::handle(self, r),
            Err(e) => Handled::Done(Err(e)),
        }
    }

    /// The rows of `-L -c` from the workers' dumps, the templates scanned
    /// now and the current snapshot.
    pub(super) fn connection_rows(
        &self,
        dumps: &[Option<crate::dataplane::dump::DumpResult>],
    ) -> (Vec<crate::control::admin::format::ConnView>, Vec<String>) {
        let now = self.now_ms();
        let mut templates = Vec::new();
        self.persist.templates(now, |t| templates.push(t));
        super::conns::rows(dumps, &templates, self.current.snap(), now)
    }
}

impl Host for ControlPlane<'_> {
    fn daemon(&self) -> String {
        self.sync
            .as_ref()
            .map_or_else(String::new, |d| d.daemon_lines())
    }

    fn specs(&self) -> &[ServiceSpec] {
        &self.current.specs
    }

    fn apply(&mut self, specs: Vec<ServiceSpec>) -> Result<(), String> {
        let t = self.current.tables.timeouts;
        self.publish(specs, t, "admin").map(|_| ())
    }

    fn view(&mut self) -> ListView {
        self.watch.refresh();
        let snap = self.current.snap();
        let book = self.watch.book();
        // `--persistent-conn`: live templates per server.
        let mut templates = std::collections::HashMap::new();
        self.persist.templates(self.now_ms(), |t| {
            *templates.entry(t.rs).or_insert(0u32) += 1;
        });
        let services = snap
            .services()
            .zip(&self.current.specs)
            .map(|(st, spec)| {
                let mut v = ServiceView::from_spec(spec);
                v.stats = book.service(st.id);
                v.rates = book.service_rates(st.id);
                for (sv, rs) in v.servers.iter_mut().zip(st.servers.iter()) {
                    fill_server(sv, rs, book.server(rs.id), book.server_rates(rs.id));
                    sv.persist_conns = templates.get(&rs.id).copied().unwrap_or(0);
                }
                v
            })
            .collect();
        ListView {
            conn_table_size: self
                .cfg
                .tables()
                .connections
                .saturating_mul(u32::from(self.cfg.workers().count)),
            services,
        }
    }

    fn timeouts(&self) -> Timeouts {
        self.current.tables.timeouts
    }

    fn set_timeouts(&mut self, t: Timeouts) -> Result<(), String> {
        let specs = self.current.specs.clone();
        self.publish(specs, t, "admin --set").map(|_| ())
    }

    fn zero(&mut self, service: Option<&ServiceAddr>) {
        let snap = std::sync::Arc::clone(self.current.snap());
        match service.and_then(|a| snap.find_service(a)) {
            None => self.watch.zero(&[], &[]),
            Some(st) => {
                let servers: Vec<_> = st.servers.iter().map(|r| r.id).collect();
                self.watch.zero(&servers, &[st.id]);
            }
        }
    }
}

fn fill_server(
    v: &mut ServerView,
    rs: &crate::lb::realserver::RealServer,
    stats: crate::control::estimator::Totals,
    rates: crate::control::estimator::Rates,
) {
    v.weight = rs.weight();
    v.active = rs.active();
    v.inactive = rs.inactive();
    let (u, l) = rs.thresholds();
    v.u_threshold = u;
    v.l_threshold = l;
    v.stats = stats;
    v.rates = rates;
}
