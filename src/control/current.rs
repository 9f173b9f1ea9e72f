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
use crate::lb::spec::{ServiceSpec, StateFlags, Timeouts, VipSpec};

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
        self.swap_with(cfg, specs, self.tables.timeouts, self.tables.flags)
    }

    /// [`Current::swap`] with new connection timeouts and behaviour
    /// switches too.
    pub fn swap_with(
        &mut self,
        cfg: &Config,
        specs: Vec<ServiceSpec>,
        timeouts: Timeouts,
        flags: StateFlags,
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
            flags,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::types::{Addr, Family};

    const TOML: &str = r#"
[eal]
lcores = "0-1"
vdevs = ["net_null0", "net_null1"]
[ports]
rx = "net_null0"
tx = "net_null1"
tx_addr = "10.0.1.2"
[[service]]
vip = "10.0.0.100"
port = 80
persistent = 300
[[service.server]]
addr = "10.0.1.11"
[[service]]
vip = "10.0.0.100"
port = 8080
[[service.server]]
addr = "10.0.1.12"
[[service]]
vip = "10.0.0.100"
port = 5353
proto = "udp"
[[service.server]]
addr = "10.0.1.13"
"#;

    fn current(cfg: &Config) -> Current {
        let t = cfg.tables();
        let snap = Snapshot::build(cfg.services(), t.mh_size, t.capacity()).unwrap();
        let services = ServiceTable::new(cfg.services(), cfg.marks(), cfg.vips()).unwrap();
        let tables = Arc::new(LiveTables {
            services,
            snap: Arc::new(snap),
            timeouts: cfg.timeouts(),
            flags: cfg.state_flags(),
        });
        Current::new(tables, cfg.services().to_vec(), cfg.vips().to_vec())
    }

    /// Every service the lookup finds is the snapshot's service of that
    /// address (by id, not by position).
    fn assert_lookup_matches(c: &Current) {
        for st in c.snap().services() {
            let crate::lb::spec::ServiceAddr::Addr { proto, vip, port } = st.addr else {
                continue;
            };
            let (_, a) = Addr::from_ip(vip);
            assert_eq!(
                c.tables.services.lookup(Family::V4, proto, &a, port),
                Some(st.id),
                "{:?}",
                st.addr
            );
        }
    }

    /// `-C` then `-R` of the same rules (pmdlb admin), and `-D` of a service
    /// in the middle: the snapshot gives the re-created or surviving
    /// services ids other than their positions, and the lookup the workers
    /// use must answer those ids (it answered positions: after -C/-R every
    /// packet was `no_real_server`, found by tests/e2e_netns.rs
    /// `admin_and_reload_under_load`).
    #[test]
    fn lookup_follows_the_snapshot_ids_after_clear_restore_and_delete() {
        let (cfg, _) = Config::from_str(TOML, "test").unwrap();
        let mut c = current(&cfg);
        assert_lookup_matches(&c);
        let specs = c.specs.clone();
        c.swap(&cfg, Vec::new()).unwrap();
        c.swap(&cfg, specs.clone()).unwrap();
        assert!(
            c.snap()
                .services()
                .enumerate()
                .any(|(i, s)| s.id.0 as usize != i),
            "the restored services got new ids"
        );
        assert_lookup_matches(&c);
        c.swap(&cfg, vec![specs[0].clone(), specs[2].clone()])
            .unwrap();
        assert_lookup_matches(&c);
    }
}
