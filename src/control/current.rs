//! The rule set the workers forward with, and how it changes at run time:
//! the one [`Current`] value the control plane owns. A change (an `admin`
//! command, a `-R` input, a reload) is a whole new list of service specs;
//! [`Current::swap`] validates it, builds the successor snapshot and
//! publishes it (`lb::live`), and says what changed.
#![forbid(unsafe_code)]

use std::sync::Arc;

use crate::control::config::Config;
use crate::lb::live::{Live, Retired, SeenEpoch, Tables as LiveTables};
use crate::lb::service::ServiceTable;
use crate::lb::snapshot::{Change, Snapshot};
use crate::lb::spec::{ServiceSpec, Timeouts, VipSpec};

/// What the workers forward with now, and where a change is published:
/// the current tables (service lookup and snapshot), the services as
/// specified (same order), the tables retired by a swap until no worker
/// holds them, and the epochs the workers announce. One value the control
/// plane owns and its consumers borrow per call.
#[derive(Debug)]
pub struct Current {
    /// What the workers read.
    pub live: Arc<Live>,
    /// The tables published last.
    pub tables: Arc<LiveTables>,
    /// The services as configured, in the snapshot's order.
    pub specs: Vec<ServiceSpec>,
    /// Tables replaced by a swap, freed here once no worker holds them.
    pub retired: Retired,
    /// The epoch each worker runs on.
    pub seen: Vec<Arc<SeenEpoch>>,
    /// The VIPs of the current rule set.
    pub vips: Vec<VipSpec>,
}

impl Current {
    /// The tables the workers start with.
    pub fn new(tables: Arc<LiveTables>, specs: Vec<ServiceSpec>, vips: Vec<VipSpec>) -> Self {
        Current {
            live: Arc::new(Live::new(Arc::clone(&tables))),
            tables,
            specs,
            retired: Retired::default(),
            seen: Vec::new(),
            vips,
        }
    }

    /// Publishes `specs` as the rule set: validated whole against `cfg`,
    /// built as the successor of the current snapshot (identities kept,
    /// see `lb::snapshot`) and swapped in; the workers pick it up at their
    /// next burst. On `Err` nothing changed. Returns what changed.
    pub fn swap(&mut self, cfg: &Config, specs: Vec<ServiceSpec>) -> Result<Vec<Change>, String> {
        self.swap_with(cfg, specs, self.tables.timeouts)
    }

    /// [`Current::swap`] with new connection timeouts too.
    pub fn swap_with(
        &mut self,
        cfg: &Config,
        specs: Vec<ServiceSpec>,
        timeouts: Timeouts,
    ) -> Result<Vec<Change>, String> {
        cfg.check_rules(&specs)?;
        let vips = cfg.vips_for(&specs);
        // Built (and so validated) before `next`, which marks removed
        // servers at once: on `Err` nothing may have changed.
        let mut services =
            ServiceTable::new(&specs, cfg.marks(), &vips).map_err(|e| e.to_string())?;
        let (snap, changes) = self
            .snap()
            .next(&specs, self.quiescent())
            .map_err(|e| e.to_string())?;
        // The lookup must answer the snapshot's ids: once services were
        // added, deleted or reordered, a service's id is its identity, not
        // its position in `specs`.
        let ids: Vec<_> = snap.services().map(|s| s.id).collect();
        if ids.iter().enumerate().any(|(i, id)| id.0 as usize != i) {
            services = ServiceTable::with_ids(&specs, &ids, cfg.marks(), &vips)
                .expect("the same rule set built above");
        }
        let t = Arc::new(LiveTables {
            services,
            snap: Arc::new(snap),
            timeouts,
        });
        self.retired.push(self.live.publish(Arc::clone(&t)));
        self.tables = t;
        self.specs = specs;
        self.vips = vips;
        Ok(changes)
    }

    /// Frees the retired tables no worker holds any more.
    pub fn collect(&mut self) {
        self.retired.collect();
    }

    /// The current snapshot.
    pub fn snap(&self) -> &Arc<Snapshot> {
        &self.tables.snap
    }

    /// The oldest epoch a worker still runs on.
    pub fn quiescent(&self) -> u64 {
        crate::lb::live::quiescent(&self.seen)
    }
}
