//! The editing commands applied to a rule set, as the kernel applies
//! ipvsadm's requests, and `-R` input parsed and applied all or nothing.
//!
//! Errors carry the text `ipvs_strerror` (libipvs.c) prints for the
//! request that failed, with ipvsadm's exit code 255:
//!
//! | command | service missing | server exists | server missing |
//! |---|---|---|---|
//! | `-A` | — (exists: "Service already exists") | | |
//! | `-E`, `-D`, `-Z` | "No such service" | | |
//! | `-a` | "Service not defined" | "Destination already exists" | |
//! | `-e`, `-d` | "Service not defined" | | "No such destination" |
//!
//! `-a` and `-e` with a lower threshold above the upper one fail as the
//! kernel's `ip_vs_add_dest`/`ip_vs_edit_dest` do (ERANGE, "Numerical
//! result out of range"); with no upper threshold (0) any lower one does.
//!
//! **Fwmark families.** IPVS keys a fwmark service by (mark, family), so
//! `-f 1` and `-f 1 -6` are two services. A pmdlb [`ServiceSpec`] has no
//! family: a fwmark service's family is its servers' (the config rejects
//! mixing), and one mark has one service. So `-f N [-6]` names the
//! service of mark N whose servers are of that family, or which has no
//! servers yet; a service of the other family is "not defined" for it, and
//! `-A` of the other family is refused as not supported. Without servers,
//! the family is remembered only by a persistence prefix longer than 32
//! ([`fwmark_is_v6`]), which `-S` uses to write `-6`.
//!
//! **Servers** are keyed by address alone: pmdlb stores no server port,
//! since DR and tunnels never rewrite it (a non-fwmark service's servers
//! always have its port; a fwmark service's port is accepted and ignored).
//! New services and servers are appended; `-E` keeps the servers; `-e`
//! keeps a server's static MAC and gateway, which only the config sets.
#![forbid(unsafe_code)]

use crate::control::admin::args::{self, AdminCmd, AdminError, Edit, ServerOpts, ServiceSel};
use crate::lb::spec::{RealServerSpec, ServiceAddr, ServiceSpec};

/// Whether a fwmark service is IPv6: its servers' family; without servers,
/// a persistence prefix longer than 32. Services with an address: the VIP's.
pub fn fwmark_is_v6(spec: &ServiceSpec) -> bool {
    match &spec.addr {
        ServiceAddr::Addr { vip, .. } => vip.is_ipv6(),
        ServiceAddr::Fwmark(_) => match spec.servers.first() {
            Some(r) => r.addr.is_ipv6(),
            None => spec.persistence.is_some_and(|p| p.prefix_len > 32),
        },
    }
}

/// The selector that names `spec` (with `-6` for an IPv6 fwmark service).
pub fn selector_of(spec: &ServiceSpec) -> ServiceSel {
    match spec.addr {
        ServiceAddr::Addr { proto, vip, port } => ServiceSel::Addr { proto, vip, port },
        ServiceAddr::Fwmark(mark) => ServiceSel::Fwmark {
            mark,
            v6: fwmark_is_v6(spec),
        },
    }
}

/// The index of the service `sel` names, if any (see the module doc for
/// fwmark families).
pub fn find_service(specs: &[ServiceSpec], sel: &ServiceSel) -> Option<usize> {
    let addr = sel.service_addr();
    specs.iter().position(|s| {
        s.addr == addr
            && match sel {
                ServiceSel::Addr { .. } => true,
                ServiceSel::Fwmark { v6, .. } => match s.servers.first() {
                    Some(r) => r.addr.is_ipv6() == *v6,
                    None => true,
                },
            }
    })
}

fn failed(msg: &str) -> AdminError {
    AdminError::failed(msg)
}

fn check_thresholds(s: &ServerOpts) -> Result<(), AdminError> {
    if s.l_threshold > s.u_threshold {
        return Err(failed("Numerical result out of range"));
    }
    Ok(())
}

/// Applies one editing command to `specs`.
pub fn apply(specs: &mut Vec<ServiceSpec>, cmd: &Edit) -> Result<(), AdminError> {
    match cmd {
        Edit::AddService { svc, opts } => {
            if find_service(specs, svc).is_some() {
                return Err(failed("Service already exists"));
            }
            if let ServiceSel::Fwmark { mark, v6 } = svc {
                if specs.iter().any(|s| s.addr == ServiceAddr::Fwmark(*mark)) {
                    return Err(failed(&format!(
                        "fwmark {mark} already has an {} service: not supported by pmdlb, one mark serves one address family (give the {} traffic its own mark)",
                        if *v6 { "IPv4" } else { "IPv6" },
                        if *v6 { "IPv6" } else { "IPv4" },
                    )));
                }
            }
            specs.push(ServiceSpec {
                addr: svc.service_addr(),
                scheduler: opts.scheduler,
                sched_flags: opts.sched_flags,
                persistence: opts.persistence,
                ops: opts.ops,
                servers: Vec::new(),
            });
        }
        Edit::EditService { svc, opts } => {
            let i = find_service(specs, svc).ok_or_else(|| failed("No such service"))?;
            let s = &mut specs[i];
            s.scheduler = opts.scheduler;
            s.sched_flags = opts.sched_flags;
            s.persistence = opts.persistence;
            s.ops = opts.ops;
        }
        Edit::DelService { svc } => {
            let i = find_service(specs, svc).ok_or_else(|| failed("No such service"))?;
            specs.remove(i);
        }
        Edit::AddServer { svc, server } => {
            let i = find_service(specs, svc).ok_or_else(|| failed("Service not defined"))?;
            check_thresholds(server)?;
            let s = &mut specs[i];
            if s.servers.iter().any(|r| r.addr == server.addr) {
                return Err(failed("Destination already exists"));
            }
            s.servers.push(RealServerSpec {
                addr: server.addr,
                weight: server.weight,
                u_threshold: server.u_threshold,
                l_threshold: server.l_threshold,
                mac: None,
                forward: server.forward,
                via: None,
            });
        }
        Edit::EditServer { svc, server } => {
            let i = find_service(specs, svc).ok_or_else(|| failed("Service not defined"))?;
            check_thresholds(server)?;
            let r = specs[i]
                .servers
                .iter_mut()
                .find(|r| r.addr == server.addr)
                .ok_or_else(|| failed("No such destination"))?;
            r.weight = server.weight;
            r.u_threshold = server.u_threshold;
            r.l_threshold = server.l_threshold;
            r.forward = server.forward;
        }
        Edit::DelServer { svc, addr, .. } => {
            let i = find_service(specs, svc).ok_or_else(|| failed("Service not defined"))?;
            let s = &mut specs[i];
            let k = s
                .servers
                .iter()
                .position(|r| r.addr == *addr)
                .ok_or_else(|| failed("No such destination"))?;
            s.servers.remove(k);
        }
        Edit::Clear => specs.clear(),
    }
    Ok(())
}

/// Parses `-R` input: one ipvsadm command per line (ipvsadm-save's output),
/// an optional leading `ipvsadm` word, blank lines and `#` comment lines.
/// Only the editing commands may appear. The first bad line is reported as
/// `line N: …` with that line's exit code.
pub fn parse_restore(input: &str) -> Result<Vec<Edit>, AdminError> {
    let mut edits = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let n = n + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut words: Vec<String> = t.split_whitespace().map(str::to_owned).collect();
        if words.first().is_some_and(|w| w == "ipvsadm") {
            words.remove(0);
        }
        if words.is_empty() {
            continue;
        }
        let at = |e: AdminError| AdminError {
            code: e.code,
            msg: format!("line {n}: {}", e.msg),
        };
        match args::parse(&words).map_err(at)? {
            AdminCmd::Edit(e) => edits.push(e),
            AdminCmd::Restore => {
                return Err(at(AdminError::failed(
                    "-R cannot be nested in restore input",
                )))
            }
            _ => {
                return Err(at(AdminError::usage(format!(
                    "`{t}' does not change rules; restore input takes only -A -E -D -a -e -d -C"
                ))))
            }
        }
    }
    Ok(edits)
}

/// Applies `edits` in order to a copy of `specs` and returns the result;
/// on the first failure returns its error (naming the command) and
/// `specs` is untouched. (ipvsadm -R keeps what earlier lines did; pmdlb
/// publishes a restore as one snapshot or not at all.)
pub fn apply_all(specs: &[ServiceSpec], edits: &[Edit]) -> Result<Vec<ServiceSpec>, AdminError> {
    let mut out = specs.to_vec();
    for e in edits {
        apply(&mut out, e).map_err(|err| AdminError {
            code: err.code,
            msg: format!("{}: {}", e.to_args().join(" "), err.msg),
        })?;
    }
    Ok(out)
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
