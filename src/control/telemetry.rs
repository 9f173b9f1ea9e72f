//! pmdlb's DPDK telemetry commands, answered on DPDK's telemetry threads
//! (`dpdk-telemetry.py -f PREFIX`):
//!
//! - `/pmdlb/info`: versions, ports, workers, whether live capture is on.
//! - `/pmdlb/stats`: every counter `pmdlb ctl stats` prints, summed
//!   (`total`) and per worker (`worker0`, …, while all fit in DPDK's 16 KiB
//!   reply: 6 workers with today's counters); `/pmdlb/stats,N`: worker N's alone. Drops are
//!   `drop_<reason>` for every reason, and `drop_total`.
//! - `/pmdlb/services`: one dict per service, keyed by its index.
//! - `/pmdlb/servers`: one dict per real server, keyed by its id (weight,
//!   active/inactive connections, MAC or `unresolved`);
//!   `/pmdlb/servers,S`: the servers of service S.
//!
//! The handlers read only what is shared anyway: the counters the workers
//! publish ([`Published`]) and the real servers' atomics in the
//! [`Snapshot`](crate::lb::snapshot::Snapshot). They never touch a worker's own state, take no lock a
//! worker takes and cannot delay one. What they read is set once, by
//! [`register`], in a process-wide [`OnceLock`] (EAL, and so telemetry,
//! runs once per process).
#![forbid(unsafe_code)]

use std::sync::{Arc, OnceLock};

use crate::control::stats::total;
use crate::control::summary::{scheduler_name, service_name};
use crate::dataplane::counters::{Published, WorkerCounters, WorkerStats};
use crate::dataplane::verdict::DropReason;
use crate::dpdk::telemetry::{self as tel, TelemetryDict, TelemetryError, TelemetryWrite};
use crate::dpdk::{DpdkError, Eal};
use crate::lb::live::Live;
use crate::lb::state::StateCounters;

/// What the telemetry commands read.
#[derive(Debug)]
pub struct Watched {
    /// Each worker's published counters, in worker order.
    pub published: Vec<Arc<Published>>,
    /// The published tables: every request reads the current snapshot.
    pub live: Arc<Live>,
    /// The RX NIC's device name.
    pub rx_port: String,
    /// The TX NIC's device name (the RX NIC's when one-armed).
    pub tx_port: String,
    /// EAL's file prefix.
    pub file_prefix: String,
    /// Whether live capture (pdump) is served.
    pub pdump: bool,
    /// Each table's name, where it lives and its bytes.
    pub tables: Vec<(String, String, u64)>,
}

static WATCHED: OnceLock<Watched> = OnceLock::new();

fn watched() -> Result<&'static Watched, TelemetryError> {
    WATCHED.get().ok_or(TelemetryError::BadParams)
}

/// The commands and their help texts.
const COMMANDS: &[(&str, &str, Handler)] = &[
    (
        "/pmdlb/info",
        "pmdlb and DPDK versions, ports, workers, live capture, where the tables live.",
        info,
    ),
    (
        "/pmdlb/stats",
        "Counters of pmdlb ctl stats: total and per worker. Parameter: a worker index.",
        stats,
    ),
    (
        "/pmdlb/services",
        "Virtual services by index: name, scheduler, persistence, servers, connections.",
        services,
    ),
    (
        "/pmdlb/servers",
        "Real servers by id: address, weight, active/inactive, MAC. Parameter: a service index.",
        servers,
    ),
];

type Handler = fn(Option<&str>, &mut TelemetryDict<'_>) -> Result<(), TelemetryError>;

/// Stores `w` for the handlers and registers the `/pmdlb/*` commands.
/// Once per process.
pub fn register(w: Watched) -> Result<(), DpdkError> {
    WATCHED.set(w).map_err(|_| DpdkError::Telemetry {
        cmd: "/pmdlb/*".into(),
        text: "already registered in this process".into(),
    })?;
    for &(cmd, help, h) in COMMANDS {
        tel::register(cmd, help, h)?;
    }
    Ok(())
}

/// Every counter of `s` under the names `pmdlb ctl stats` uses (`drop.x`
/// becomes `drop_x`: telemetry keys cannot hold a dot).
pub fn fill_stats(out: &mut impl TelemetryWrite, s: &WorkerStats) -> Result<(), TelemetryError> {
    for (name, v) in WorkerCounters::NAMES.iter().zip(s.io.values()) {
        out.add_u64(name, v)?;
    }
    for (name, v) in StateCounters::NAMES.iter().zip(s.state.values()) {
        out.add_u64(name, v)?;
    }
    for r in DropReason::ALL {
        out.add_u64(&format!("drop_{}", r.name()), s.drops.counts[r.as_index()])?;
    }
    out.add_u64("drop_total", s.dropped())
}

fn info(_: Option<&str>, d: &mut TelemetryDict<'_>) -> Result<(), TelemetryError> {
    let w = watched()?;
    d.add_str("version", env!("CARGO_PKG_VERSION"))?;
    d.add_str("dpdk", &Eal::version())?;
    d.add_str("file_prefix", &w.file_prefix)?;
    d.add_str("rx_port", &w.rx_port)?;
    d.add_str("tx_port", &w.tx_port)?;
    d.add_u64("workers", w.published.len() as u64)?;
    let snap = &w.live.load().snap;
    d.add_u64("services", snap.service_count() as u64)?;
    d.add_u64("servers", snap.servers().count() as u64)?;
    d.add_str("live_capture", if w.pdump { "on" } else { "off" })?;
    d.add_dict("tables", |v| {
        for (name, memory, bytes) in &w.tables {
            let key = name.replace(' ', "_");
            v.add_u64(&format!("{key}_bytes"), *bytes)?;
            v.add_str(&format!("{key}_memory"), memory)?;
        }
        Ok(())
    })
}

fn stats(params: Option<&str>, d: &mut TelemetryDict<'_>) -> Result<(), TelemetryError> {
    let w = watched()?;
    let per: Vec<WorkerStats> = w.published.iter().map(|p| p.read()).collect();
    if let Some(p) = params {
        let i: usize = p.trim().parse().map_err(|_| TelemetryError::BadParams)?;
        let s = per.get(i).ok_or(TelemetryError::BadParams)?;
        return fill_stats(d, s);
    }
    d.add_u64("workers", per.len() as u64)?;
    let t = total(&per);
    d.add_dict("total", |v| fill_stats(v, &t))?;
    // DPDK silently leaves out what does not fit in its reply: give the
    // per-worker sets only when all of them fit, else none (and say so).
    if (per.len() + 1) * stats_set_max_len() + 256 > REPLY_MAX {
        return d.add_str(
            "per_worker",
            "too many workers for one reply; ask /pmdlb/stats,N",
        );
    }
    for (i, s) in per.iter().enumerate() {
        d.add_dict(&format!("worker{i}"), |v| fill_stats(v, s))?;
    }
    Ok(())
}

/// DPDK 22.11's largest telemetry reply, in bytes.
const REPLY_MAX: usize = 16384;

/// The most JSON one [`fill_stats`] set can take: every name quoted with a
/// colon, a 20-digit value and a separator, plus the dict's own key and
/// braces.
fn stats_set_max_len() -> usize {
    let names = WorkerCounters::NAMES.iter().chain(StateCounters::NAMES);
    let plain: usize = names.map(|n| n.len() + 4 + 20).sum();
    let drops: usize = DropReason::ALL
        .iter()
        .map(|r| r.name().len() + 5 + 4 + 20)
        .sum();
    plain + drops + "drop_total".len() + 4 + 20 + "\"worker000\":{}".len()
}

fn services(_: Option<&str>, d: &mut TelemetryDict<'_>) -> Result<(), TelemetryError> {
    let w = watched()?;
    let snap = &w.live.load().snap;
    for (i, svc) in snap.services().enumerate() {
        d.add_dict(&i.to_string(), |v| {
            v.add_str("name", &service_name(&svc.addr))?;
            v.add_str("scheduler", scheduler_name(svc.scheduler))?;
            v.add_u64(
                "persistent_s",
                svc.persistence.map_or(0, |p| u64::from(p.timeout_s)),
            )?;
            let rs = snap.servers_of(svc);
            v.add_u64("servers", rs.len() as u64)?;
            v.add_u64("active", rs.iter().map(|r| u64::from(r.active())).sum())?;
            v.add_u64("inactive", rs.iter().map(|r| u64::from(r.inactive())).sum())
        })?;
    }
    Ok(())
}

fn servers(params: Option<&str>, d: &mut TelemetryDict<'_>) -> Result<(), TelemetryError> {
    let w = watched()?;
    let tables = w.live.load();
    let snap = &tables.snap;
    let only = match params {
        None => None,
        Some(p) => {
            let i: usize = p.trim().parse().map_err(|_| TelemetryError::BadParams)?;
            if i >= snap.service_count() {
                return Err(TelemetryError::BadParams);
            }
            Some(i)
        }
    };
    // Numbered in listing order: services as configured, their servers in
    // order (draining servers of removed services are not listed).
    let listed = snap
        .services()
        .enumerate()
        .flat_map(|(i, st)| st.servers.iter().map(move |rs| (i, st, rs)));
    for (id, (svc, state, rs)) in listed.enumerate() {
        if only.is_some_and(|s| s != svc) {
            continue;
        }
        d.add_dict(&id.to_string(), |v| {
            v.add_u64("service", svc as u64)?;
            v.add_str("service_name", &service_name(&state.addr))?;
            v.add_str("addr", &rs.addr.to_string())?;
            v.add_u64("weight", u64::from(rs.weight()))?;
            v.add_u64("active", u64::from(rs.active()))?;
            v.add_u64("inactive", u64::from(rs.inactive()))?;
            let mac = rs
                .mac()
                .map_or_else(|| "unresolved".into(), |m| m.to_string());
            v.add_str("mac", &mac)?;
            v.add_u64("removed", u64::from(rs.is_removed()))?;
            v.add_u64("overloaded", u64::from(rs.is_overloaded()))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_worker_sets_fit_for_a_few_workers() {
        let n = REPLY_MAX / stats_set_max_len();
        // Total + 4 workers fit; the estimate is not absurdly large.
        assert!(n >= 5, "{} bytes per set", stats_set_max_len());
        assert!(stats_set_max_len() < 4096);
    }
}
