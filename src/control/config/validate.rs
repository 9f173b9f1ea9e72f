//! Validation: turns the raw TOML tables into a [`Config`], collecting
//! every problem (key path + what to fix) and every warning on the way.

#![forbid(unsafe_code)]

use super::raw::{RawConfig, StrOrInt};
use super::{announce, health, services, settings, sync};
use super::{
    Config, ConfigError, MetricsSettings, MhTableSize, NeighbourSettings, Problem, TableMemory,
    TableSettings, Warning,
};
use crate::control::admin;
use crate::lb::sched::mh;
use crate::lb::spec::{
    DefenceMode, ServiceAddr, ServiceSpec, StateFlags, Timeouts, DEFAULT_CONN_HIGH_WATER_PCT,
};

/// ipvsadm's default persistence timeout, seconds (`-p` without a value:
/// `IPVS_SVC_PERSISTENT_TIMEOUT` in its code; its man page says 300).
pub const DEFAULT_PERSISTENT_S: u32 = 360;
/// Largest timeout accepted, seconds (2^31).
pub const MAX_TIMEOUT_S: i64 = 1 << 31;
/// Default `ports.mbufs`.
pub const DEFAULT_MBUFS: u32 = 16383;

/// Problems and warnings found so far.
pub(super) struct Check {
    problems: Vec<Problem>,
    warnings: Vec<(String, String)>,
}

impl Check {
    pub(super) fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push((key.into(), message.into()));
    }

    /// `value` if within `lo..=hi`, else records a problem and returns `default`.
    pub(super) fn int(
        &mut self,
        key: &str,
        value: Option<i64>,
        default: i64,
        lo: i64,
        hi: i64,
    ) -> i64 {
        match value {
            None => default,
            Some(v) if (lo..=hi).contains(&v) => v,
            Some(v) => {
                self.err(
                    key,
                    format!("{v} is out of range; use {lo}..={hi} (default {default})"),
                );
                default
            }
        }
    }

    /// A power-of-two ring size in 64..=16384.
    pub(super) fn ring(&mut self, key: &str, value: Option<i64>) -> u16 {
        let v = self.int(key, value, 1024, 64, 16384);
        if (v as u64).is_power_of_two() {
            v as u16
        } else {
            let up = (v as u64).next_power_of_two();
            self.err(
                key,
                format!(
                    "{v} is not a power of two; use {} or {}",
                    up / 2,
                    up.min(16384)
                ),
            );
            1024
        }
    }

    /// A defence mode: "off" | "auto" | "always", or IPVS's sysctl value
    /// 0..=3; default off.
    pub(super) fn defence(&mut self, key: &str, value: &Option<StrOrInt>) -> DefenceMode {
        let text = match value {
            None => return DefenceMode::Off,
            Some(StrOrInt::Str(s)) => s.clone(),
            Some(StrOrInt::Int(i)) => i.to_string(),
        };
        text.parse().unwrap_or_else(|()| {
            self.err(
                key,
                format!(
                    "{text:?} is not a mode; use \"off\", \"auto\" or \"always\" \
                     (IPVS's 0, 1 and 3; default \"off\")"
                ),
            );
            DefenceMode::Off
        })
    }

    /// A table capacity: 1024..=2^26, rounded up to a power of two.
    pub(super) fn table(&mut self, key: &str, value: Option<i64>) -> u32 {
        let v = self.int(key, value, 1 << 20, 1024, 1 << 26);
        (v as u32).next_power_of_two()
    }

    /// Where the tables live: "auto" | "dpdk" | "heap"; default auto.
    pub(super) fn table_memory(&mut self, key: &str, value: Option<&str>) -> TableMemory {
        let all = [TableMemory::Auto, TableMemory::Dpdk, TableMemory::Heap];
        match value {
            None => TableMemory::Auto,
            Some(v) => all.into_iter().find(|m| m.as_str() == v).unwrap_or_else(|| {
                self.err(
                    key,
                    format!(
                        "{v:?} is not a place; use \"auto\" (DPDK memory on the RX port's NUMA node, \
                         else the process heap; the default), \"dpdk\" or \"heap\""
                    ),
                );
                TableMemory::Auto
            }),
        }
    }

    /// A Maglev table size: one of [`mh::TABLE_SIZES`].
    pub(super) fn mh_size(&mut self, key: &str, value: Option<i64>) -> MhTableSize {
        let Some(v) = value else {
            return MhTableSize::DEFAULT;
        };
        match u32::try_from(v).ok().and_then(MhTableSize::new) {
            Some(size) => size,
            None => {
                let n = mh::TABLE_SIZES.len();
                let mut list = String::new();
                for (i, size) in mh::TABLE_SIZES.iter().enumerate() {
                    if i > 0 {
                        list.push_str(if i + 1 == n { " or " } else { ", " });
                    }
                    list.push_str(&size.to_string());
                }
                self.err(
                    key,
                    format!(
                        "{v} is not one of the Maglev table sizes; use {list} (primes; default {})",
                        MhTableSize::DEFAULT
                    ),
                );
                MhTableSize::DEFAULT
            }
        }
    }
}

/// Validates `raw`; `origin` names the file in messages.
pub fn validate(mut raw: RawConfig, origin: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    let mut c = Check {
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let eal = settings::eal(&mut c, raw.eal.unwrap_or_default());
    let workers = settings::workers(&mut c, &raw.workers, &eal);
    let ports = settings::ports(&mut c, raw.ports.unwrap_or_default(), &eal, &workers);
    let tables = TableSettings {
        connections: c.table("tables.connections", raw.tables.connections),
        persistence: c.table("tables.persistence", raw.tables.persistence),
        mh_size: c.mh_size("tables.mh_size", raw.tables.mh_size),
        max_services: c.int(
            "tables.max_services",
            raw.tables.max_services,
            256,
            1,
            65536,
        ) as u32,
        max_servers: c.int(
            "tables.max_servers",
            raw.tables.max_servers,
            4096,
            1,
            1 << 20,
        ) as u32,
        memory: c.table_memory("tables.memory", raw.tables.memory.as_deref()),
    };
    let t = &raw.timeouts;
    let d = Timeouts::default();
    let mut timeout = |key: &str, v: Option<i64>, def: u32| {
        c.int(key, v, i64::from(def), 1, MAX_TIMEOUT_S) as u32
    };
    let timeouts = Timeouts {
        tcp_established_s: timeout("timeouts.tcp", t.tcp, d.tcp_established_s),
        tcp_syn_recv_s: timeout("timeouts.tcp_syn_recv", t.tcp_syn_recv, d.tcp_syn_recv_s),
        tcp_fin_wait_s: timeout("timeouts.tcp_fin", t.tcp_fin, d.tcp_fin_wait_s),
        tcp_close_s: timeout("timeouts.tcp_close", t.tcp_close, d.tcp_close_s),
        udp_s: timeout("timeouts.udp", t.udp, d.udp_s),
        tcp_syn_recv_secure_s: 0,
    };
    // The secure SYN_RECV timeout is at most the normal one.
    let syn_recv = timeouts.tcp_syn_recv_s;
    let secure_default = d.tcp_syn_recv_secure_s.min(syn_recv);
    let timeouts = Timeouts {
        tcp_syn_recv_secure_s: c.int(
            "timeouts.tcp_syn_recv_secure",
            t.tcp_syn_recv_secure,
            i64::from(secure_default),
            1,
            i64::from(syn_recv),
        ) as u32,
        ..timeouts
    };
    let state_flags = StateFlags {
        sloppy_tcp: raw.ipvs.sloppy_tcp.unwrap_or(false),
        expire_quiescent_template: raw.ipvs.expire_quiescent_template.unwrap_or(false),
        expire_nodest_conn: raw.ipvs.expire_nodest_conn.unwrap_or(false),
        drop_entry: c.defence("ipvs.drop_entry", &raw.ipvs.drop_entry),
        secure_tcp: c.defence("ipvs.secure_tcp", &raw.ipvs.secure_tcp),
        conn_high_water_pct: c.int(
            "ipvs.conn_high_water",
            raw.ipvs.conn_high_water,
            i64::from(DEFAULT_CONN_HIGH_WATER_PCT),
            10,
            100,
        ) as u8,
    };
    let n = &raw.neighbours;
    let neighbours = NeighbourSettings {
        refresh_s: c.int("neighbours.refresh_s", n.refresh_s, 30, 1, 86_400) as u32,
        retry_ms: c.int("neighbours.retry_ms", n.retry_ms, 1000, 10, 60_000) as u32,
        gratuitous_arp: n.gratuitous_arp.unwrap_or(true),
    };
    let metrics = MetricsSettings {
        listen: match raw.metrics.listen.as_deref() {
            None | Some("") => None,
            Some(a) => match a.parse() {
                Ok(sock) => Some(sock),
                Err(_) => {
                    c.err(
                        "metrics.listen",
                        format!("{a:?} is not ADDRESS:PORT; write e.g. \"127.0.0.1:9469\" or \"[::1]:9469\", or leave it out to serve no metrics"),
                    );
                    None
                }
            },
        },
    };
    let marks = services::marks(&mut c, &raw.mark);
    let health_raw: Vec<health::RawServiceHealth> = raw
        .service
        .iter_mut()
        .map(|s| {
            (
                s.health.take(),
                s.server.iter_mut().map(|r| r.health.take()).collect(),
            )
        })
        .collect();
    let shape: Vec<usize> = health_raw.iter().map(|h| h.1.len()).collect();
    let mut services = services::services(&mut c, raw.service, &marks, &ports);
    // Health keys are checked against the servers they belong to; when a
    // service or server was rejected the indices no longer line up, and the
    // health checks wait for the other problems to be fixed.
    let (health, quorums) = if services
        .iter()
        .map(|s| s.servers.len())
        .eq(shape.iter().copied())
    {
        health::checks(&mut c, &health_raw, &mut services)
    } else {
        (Vec::new(), Vec::new())
    };
    if let Some(path) = &raw.control.rules {
        rules_file(&mut c, origin, path, &mut services);
    }
    let mut vips = services::vips(&mut c, &raw.vip, &services, &marks);
    let announce = announce::settings(&mut c, raw.announce.as_ref(), &mut vips);
    let sync = sync::settings(&mut c, raw.sync.as_ref());
    services::cross_checks(&mut c, &services, &marks, &ports);
    services::mh_limits(&mut c, &services, tables.mh_size);
    let cap = tables.capacity();
    let n_servers: usize = services.iter().map(|s| s.servers.len()).sum();
    if services.len() > cap.services as usize {
        c.err(
            "tables.max_services",
            format!(
                "{} slots hold fewer than the {} services configured; raise it",
                cap.services,
                services.len()
            ),
        );
    }
    if n_servers > cap.servers as usize {
        c.err(
            "tables.max_servers",
            format!(
                "{} slots hold fewer than the {n_servers} real servers configured; raise it",
                cap.servers
            ),
        );
    }

    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            origin: origin.to_owned(),
            problems: c.problems,
        });
    }
    let warnings = c
        .warnings
        .into_iter()
        .map(|(key, message)| Warning {
            origin: origin.to_owned(),
            key,
            message,
        })
        .collect();
    Ok((
        Config {
            origin: origin.to_owned(),
            eal,
            ports,
            workers,
            tables,
            timeouts,
            state_flags,
            neighbours,
            metrics,
            announce,
            sync,
            vips,
            marks,
            services,
            health,
            quorums,
        },
        warnings,
    ))
}

/// `[control] rules`: an ipvsadm-save file (`ipvsadm-save -n > FILE` on a
/// kernel director) whose services are added after the TOML ones. A path
/// is relative to the configuration file's directory. Its services get no
/// health checks (they have no TOML keys).
fn rules_file(c: &mut Check, origin: &str, path: &str, services: &mut Vec<ServiceSpec>) {
    let p = std::path::Path::new(path);
    let full = if p.is_relative() {
        std::path::Path::new(origin)
            .parent()
            .map_or_else(|| p.to_path_buf(), |d| d.join(p))
    } else {
        p.to_path_buf()
    };
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        Err(e) => {
            c.err(
                "control.rules",
                format!("cannot read {}: {e}", full.display()),
            );
            return;
        }
    };
    let all = admin::rules::parse_restore(&text)
        .and_then(|edits| admin::rules::apply_all(services, &edits));
    match all {
        Ok(all) => {
            family_checks(c, &all[services.len()..], services.len());
            *services = all;
        }
        Err(e) => c.err("control.rules", format!("{}: {}", full.display(), e.msg)),
    }
}

/// One address family per service (the VIP's, or a fwmark service's first
/// server's).
fn family_checks(c: &mut Check, services: &[ServiceSpec], first_index: usize) {
    for (i, s) in services.iter().enumerate() {
        let v6 = match &s.addr {
            ServiceAddr::Addr { vip, .. } => Some(vip.is_ipv6()),
            ServiceAddr::Fwmark(_) => s.servers.first().map(|r| r.addr.is_ipv6()),
        };
        if let Some(v6) = v6 {
            if let Some(r) = s.servers.iter().find(|r| r.addr.is_ipv6() != v6) {
                c.err(
                    format!("service[{}]", first_index + i),
                    format!(
                        "({}): real server {} is of the other address family; DR cannot change the family",
                        services::service_label(&s.addr),
                        r.addr
                    ),
                );
            }
        }
    }
}

/// The checks a rule set changed at run time (`admin`, `-R`, a rules file)
/// must pass on top of ipvsadm's own, against this configuration's ports
/// and tables: one address family per service, what the TX side needs
/// for the servers (ND source, tunnel source), Maglev and slot limits.
/// Problems name the service as ipvsadm would.
pub(super) fn check_rules(cfg: &Config, services: &[ServiceSpec]) -> Vec<Problem> {
    let mut c = Check {
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    family_checks(&mut c, services, 0);
    services::cross_checks(&mut c, services, &cfg.marks, &cfg.ports);
    services::mh_limits(&mut c, services, cfg.tables.mh_size);
    let cap = cfg.tables.capacity();
    if services.len() > cap.services as usize {
        c.err(
            "tables.max_services",
            format!(
                "{} slots hold fewer than the {} services asked for; raise it (needs a restart)",
                cap.services,
                services.len()
            ),
        );
    }
    c.problems
}
