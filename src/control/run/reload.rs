//! SIGHUP and `pmdlb ctl reload`: re-read the configuration, validate it,
//! and apply what may change at run time as one swap.
//!
//! **What a reload changes**: services (and their servers), mark rules,
//! VIPs, timeouts and the IPVS switches. Sections that cannot change while
//! running (`[eal]`, `[ports]`, `[workers]`, `[tables]`, `[neighbours]`,
//! `[metrics]`, health checks) are compared with the running ones; a
//! difference is reported as "needs a restart" and left as it was.
//!
//! **Admin changes survive a reload** unless the file itself changes the
//! service: a service whose definition in the file (TOML and rules file)
//! is the same as at the last load keeps its running form, `admin` edits
//! included; a service the file changed, added or removed follows the
//! file; a service only `admin` made stays.
#![forbid(unsafe_code)]

use std::sync::Arc;

use crate::control::config::{Config, ConfigError, Warning};
use crate::control::ctl::Answer;
use crate::lb::spec::ServiceSpec;

use super::ControlPlane;

/// Re-reads the configuration the instance was started with (same command
/// line overrides).
#[derive(Clone)]
pub struct Reloader(pub Arc<LoadFn>);

/// What a [`Reloader`] calls.
pub type LoadFn = dyn Fn() -> Result<(Config, Vec<Warning>), ConfigError> + Send + Sync;

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reloader")
    }
}

/// The rule set after a reload: see the module doc.
pub fn merge(
    running: &[ServiceSpec],
    old_file: &[ServiceSpec],
    new_file: &[ServiceSpec],
) -> Vec<ServiceSpec> {
    let find =
        |set: &[ServiceSpec], s: &ServiceSpec| set.iter().find(|o| o.addr == s.addr).cloned();
    let mut out = Vec::with_capacity(running.len().max(new_file.len()));
    for s in running {
        let (was, now) = (find(old_file, s), find(new_file, s));
        if was == now {
            out.push(s.clone());
        } else if let Some(n) = now {
            out.push(n);
        }
    }
    for n in new_file {
        let unchanged = find(old_file, n).as_ref() == Some(n);
        // Not yet there, and new or changed in the file (an unchanged one
        // missing from the running set was deleted by admin: it stays so).
        if !unchanged && !out.iter().any(|o| o.addr == n.addr) {
            out.push(n.clone());
        }
    }
    out
}

impl ControlPlane<'_> {
    /// One reload; the answer (and the log) says what changed.
    pub(super) fn reload(&mut self) -> Answer {
        let Some(reloader) = &self.reloader else {
            return Answer::failed("this instance cannot reload (no configuration file)");
        };
        let (new, warnings) = match (reloader.0)() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("pmdlb: reload refused, nothing changed:\n{e}");
                return Answer::failed(format!("reload refused, nothing changed:\n{e}"));
            }
        };
        for w in &warnings {
            eprintln!("{w}");
        }
        let mut report = String::new();
        for section in self.cfg.needs_restart(&new) {
            let line =
                format!("reload: {section} changed in the file: needs a restart, left as it was");
            println!("pmdlb: {line}");
            report.push_str(&line);
            report.push('\n');
        }
        let specs = merge(&self.current.specs, &self.file_specs, new.services());
        let before = std::mem::replace(&mut self.rules_cfg, self.cfg.reloaded(&new));
        match self.publish_with(specs, new.timeouts(), new.state_flags(), "reload") {
            Ok(changes) => {
                self.file_specs = new.services().to_vec();
                for c in &changes {
                    report.push_str(&format!("reload: {c}\n"));
                }
                if changes.is_empty() {
                    report.push_str("reload: no change to the services\n");
                }
                Answer::ok(report)
            }
            Err(e) => {
                self.rules_cfg = before;
                eprintln!("pmdlb: reload refused, nothing changed: {e}");
                Answer::failed(format!("reload refused, nothing changed: {e}\n"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::spec::{SchedFlags, SchedulerKind, ServiceAddr};

    fn svc(mark: u32, sched: SchedulerKind) -> ServiceSpec {
        ServiceSpec {
            ops: false,
            addr: ServiceAddr::Fwmark(mark),
            scheduler: sched,
            sched_flags: SchedFlags::default(),
            persistence: None,
            servers: Vec::new(),
        }
    }

    #[test]
    fn admin_edits_survive_unless_the_file_changes_the_service() {
        use SchedulerKind::*;
        let old_file = vec![svc(1, Rr), svc(2, Rr), svc(3, Rr), svc(5, Rr)];
        // admin: edited 1 and 2, added 9, deleted 5.
        let running = vec![svc(1, Wlc), svc(2, Wlc), svc(3, Rr), svc(9, Sh)];
        // file: 1 and 5 unchanged, 2 changed, 3 removed, 4 added.
        let new_file = vec![svc(1, Rr), svc(2, Lc), svc(4, Rr), svc(5, Rr)];
        let out = merge(&running, &old_file, &new_file);
        assert_eq!(out, vec![svc(1, Wlc), svc(2, Lc), svc(9, Sh), svc(4, Rr)]);
    }
}
