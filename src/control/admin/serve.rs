//! `pmdlb admin` on the server side: one decoded request against the
//! running instance, behind the small [`Host`] trait the control loop
//! implements (so this file knows nothing of workers or sockets).
//!
//! Every editing command is applied to a copy of the current rule set and
//! the result is handed to [`Host::apply`] whole: one snapshot swap per
//! command, and for `-R` one swap for the whole input. A request that
//! fails changes nothing.
//!
//! Every command is answered at once but `-L -c`: the connection entries
//! live in the workers' own tables, so [`handle`] returns
//! [`Handled::NeedsConnections`] and the control loop gathers them over
//! the next ticks (`control::run::conns`) before it formats the answer
//! with [`format::list_connections`].
#![forbid(unsafe_code)]

use crate::control::admin::args::{AdminCmd, AdminError, ListOpts, ListWhat, EXIT_LIST_FAILED};
use crate::control::admin::client::AdminRequest;
use crate::control::admin::format::{self, ListView};
use crate::control::admin::rules;
use crate::lb::spec::{ServiceAddr, ServiceSpec, Timeouts};

/// What the control loop offers an admin request.
pub trait Host {
    /// The current rule set, in table order.
    fn specs(&self) -> &[ServiceSpec];
    /// Publish a new rule set (validated against the configuration first);
    /// `Err` is the reason, and nothing changed.
    fn apply(&mut self, specs: Vec<ServiceSpec>) -> Result<(), String>;
    /// The current services with their counters, for listing.
    fn view(&mut self) -> ListView;
    /// The current timeouts.
    fn timeouts(&self) -> Timeouts;
    /// `--set`: new timeouts for every worker.
    fn set_timeouts(&mut self, t: Timeouts) -> Result<(), String>;
    /// `-L --daemon`: ipvsadm's sync daemon lines (empty: none runs).
    fn daemon(&self) -> String;
    /// `-Z`: zero the counters of one service (its servers too) or all.
    fn zero(&mut self, service: Option<&ServiceAddr>);
}

/// What became of a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// Answered: `Ok` is what ipvsadm prints on standard output.
    Done(Result<String, AdminError>),
    /// `-L -c`: to be answered once the workers' connection entries are
    /// in, formatted with these options.
    NeedsConnections(ListOpts),
}

/// Runs one request.
pub fn handle(host: &mut impl Host, req: AdminRequest) -> Handled {
    if let AdminCmd::List {
        what: ListWhat::Connections,
        opts,
    } = req.cmd
    {
        return Handled::NeedsConnections(opts);
    }
    Handled::Done(run(host, req))
}

fn run(host: &mut impl Host, req: AdminRequest) -> Result<String, AdminError> {
    match req.cmd {
        AdminCmd::Edit(e) => {
            let mut specs = host.specs().to_vec();
            rules::apply(&mut specs, &e)?;
            host.apply(specs).map_err(AdminError::failed)?;
            Ok(String::new())
        }
        AdminCmd::Restore => {
            let edits = req.restore.unwrap_or_default();
            let specs = rules::apply_all(host.specs(), &edits)?;
            host.apply(specs).map_err(AdminError::failed)?;
            Ok(String::new())
        }
        AdminCmd::List { what, opts } => match what {
            ListWhat::All => Ok(format::list(&host.view(), &opts)),
            ListWhat::Service(sel) => {
                let addr = sel.service_addr();
                let Some(i) = rules::find_service(host.specs(), &sel) else {
                    return Err(AdminError {
                        code: EXIT_LIST_FAILED,
                        msg: "No such service".into(),
                    });
                };
                let view = host.view();
                let s = view
                    .services
                    .iter()
                    .find(|s| s.addr == addr)
                    .or_else(|| view.services.get(i))
                    .ok_or_else(|| AdminError::failed("No such service"))?;
                Ok(format::list_service(s, &opts))
            }
            // `handle` returned `NeedsConnections` before coming here.
            ListWhat::Connections => Err(AdminError::failed("-L -c is answered asynchronously")),
            ListWhat::Timeouts => Ok(format::list_timeouts(&host.timeouts())),
            ListWhat::Daemon => Ok(host.daemon()),
        },
        AdminCmd::Zero(sel) => {
            match sel {
                None => host.zero(None),
                Some(sel) => {
                    if rules::find_service(host.specs(), &sel).is_none() {
                        return Err(AdminError::failed("No such service"));
                    }
                    host.zero(Some(&sel.service_addr()));
                }
            }
            Ok(String::new())
        }
        AdminCmd::SetTimeouts { tcp, tcpfin, udp } => {
            // ipvsadm: 0 keeps the current value.
            let mut t = host.timeouts();
            let keep = |new: u32, old: u32| if new == 0 { old } else { new };
            t.tcp_established_s = keep(tcp, t.tcp_established_s);
            t.tcp_fin_wait_s = keep(tcpfin, t.tcp_fin_wait_s);
            t.udp_s = keep(udp, t.udp_s);
            host.set_timeouts(t).map_err(AdminError::failed)?;
            Ok(String::new())
        }
        AdminCmd::Save { .. } => Ok(format::save(host.specs())),
        AdminCmd::Help => Ok(format::usage()),
        AdminCmd::Version => Ok(format::version()),
    }
}
