//! What the control loop does for observers: samples the traffic
//! estimators every 2 seconds, renders the Prometheus exposition once a
//! second for the HTTP listener (when `[metrics] listen` is set), and
//! answers the `ctl` views of the traffic tables. `run` calls
//! [`Watch::tick`] from its loop; nothing here runs on a worker.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::http::{HttpError, MetricsBody, MetricsServer};
use crate::control::metrics::{AnnounceSample, Exposition, HealthSample};
use crate::control::traffic::{rate_table, stats_table, TrafficBook};
use crate::dataplane::counters::{Published, WorkerStats};
use crate::dataplane::traffic::PublishedTraffic;
use crate::lb::snapshot::Snapshot;
use crate::lb::types::{RsId, ServiceId};

/// How often the exposition is rendered.
pub const RENDER_INTERVAL: Duration = Duration::from_secs(1);

/// The values an exposition reads besides the traffic book, gathered only
/// when one is rendered.
#[derive(Debug)]
pub struct Gauges {
    /// Connection-table capacity of each worker.
    pub conn_capacity: u64,
    /// Live persistence templates.
    pub templates: u64,
    /// Persistence-table capacity.
    pub template_capacity: u64,
    /// Mbufs in use.
    pub mbufs_in_use: u64,
    /// Mbufs in the pool.
    pub mbufs: u64,
    /// Addresses that stopped answering ARP/ND.
    pub stale: Vec<IpAddr>,
    /// Health of each checked server (`RsId` order).
    pub health: Vec<Option<HealthSample>>,
    /// The VIP announcement (`None`: not configured).
    pub announce: Option<AnnounceSample>,
    /// The sync daemon's counters (`None`: no `[sync]`).
    pub sync: Option<crate::control::sync::SyncStats>,
}

/// The observers' side of the control loop.
#[derive(Debug)]
pub struct Watch {
    book: TrafficBook,
    snap: Arc<Snapshot>,
    body: Arc<MetricsBody>,
    server: Option<MetricsServer>,
    next_render: Instant,
}

impl Watch {
    /// Starts the HTTP listener on `listen` (if given) and a traffic book
    /// over the workers' `traffic` blocks.
    pub fn start(
        listen: Option<std::net::SocketAddr>,
        snap: &Arc<Snapshot>,
        traffic: Vec<Arc<PublishedTraffic>>,
        now: Instant,
    ) -> Result<Watch, HttpError> {
        let body = Arc::new(MetricsBody::default());
        let server = match listen {
            Some(a) => Some(MetricsServer::start(a, Arc::clone(&body))?),
            None => None,
        };
        Ok(Watch {
            book: TrafficBook::new(snap, traffic, now),
            snap: Arc::clone(snap),
            body,
            server,
            next_render: now,
        })
    }

    /// Where metrics are served, if anywhere.
    pub fn listening(&self) -> Option<std::net::SocketAddr> {
        self.server.as_ref().map(MetricsServer::local_addr)
    }

    /// Call every loop: estimator samples when due; with a listener, a new
    /// exposition once a second (`gauges` is called only then).
    pub fn tick(
        &mut self,
        now: Instant,
        workers: &[Arc<Published>],
        gauges: impl FnOnce() -> Gauges,
    ) {
        self.book.tick(now);
        if self.server.is_none() || now < self.next_render {
            return;
        }
        self.next_render = now + RENDER_INTERVAL;
        self.book.refresh();
        let per: Vec<WorkerStats> = workers.iter().map(|p| p.read()).collect();
        let g = gauges();
        let text = Exposition {
            workers: &per,
            snap: &self.snap,
            traffic: &self.book,
            conn_capacity: g.conn_capacity,
            templates: g.templates,
            template_capacity: g.template_capacity,
            mbufs_in_use: g.mbufs_in_use,
            mbufs: g.mbufs,
            stale: &g.stale,
            health: &g.health,
            announce: g.announce,
            sync: g.sync,
        }
        .render();
        self.body.publish(text);
    }

    /// Follow a new snapshot (after a swap).
    pub fn sync(&mut self, snap: &Arc<Snapshot>) {
        self.snap = Arc::clone(snap);
        self.book.sync(snap);
    }

    /// Re-read the workers' counters now.
    pub fn refresh(&mut self) {
        self.book.refresh();
    }

    /// The traffic book.
    pub fn book(&self) -> &TrafficBook {
        &self.book
    }

    /// `ipvsadm -Z`: see [`TrafficBook::zero`].
    pub fn zero(&mut self, servers: &[RsId], services: &[ServiceId]) {
        self.book.zero(servers, services);
    }

    /// The `ipvsadm -Ln --stats` table, from fresh sums.
    pub fn stats_table(&mut self, exact: bool) -> String {
        self.book.refresh();
        stats_table(&self.book, &self.snap, exact)
    }

    /// The `ipvsadm -Ln --rate` table (rates as of the last sample).
    pub fn rate_table(&self) -> String {
        rate_table(&self.book, &self.snap)
    }
}
