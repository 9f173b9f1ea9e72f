//! Validation: turns the raw TOML tables into a [`Config`], collecting
//! every problem (key path + what to fix) and every warning on the way.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;

use super::raw::{BoolOrInt, LcoreList, RawConfig, RawEal, RawPorts, RawService, StrOrInt};
use super::values::{
    check_prefix_len, family_name, format_lcore_list, format_sockaddr, mask_addr, max_prefix,
    normalize_pci, parse_coremask, parse_lcore_list, parse_mac, parse_netmask, parse_port_range,
    parse_prefix, parse_proto, proto_name,
};
use super::{
    min_mbufs, Config, ConfigError, CoreSelection, EalSettings, NeighbourSettings, PortSettings,
    Problem, TableSettings, TxVlan, Warning, WorkerSettings,
};
use crate::lb::spec::{
    MarkRuleSpec, Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec,
    StateFlags, Timeouts, VipSpec,
};

/// ipvsadm's default persistence timeout, seconds.
pub const DEFAULT_PERSISTENT_S: u32 = 300;
/// Largest timeout accepted, seconds (2^31).
pub const MAX_TIMEOUT_S: i64 = 1 << 31;
/// Default `ports.mbufs`.
pub const DEFAULT_MBUFS: u32 = 16383;

/// Problems and warnings found so far.
struct Check {
    problems: Vec<Problem>,
    warnings: Vec<(String, String)>,
}

impl Check {
    fn err(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn warn(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.warnings.push((key.into(), message.into()));
    }

    /// `value` if within `lo..=hi`, else records a problem and returns `default`.
    fn int(&mut self, key: &str, value: Option<i64>, default: i64, lo: i64, hi: i64) -> i64 {
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
    fn ring(&mut self, key: &str, value: Option<i64>) -> u16 {
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

    /// A table capacity: 1024..=2^26, rounded up to a power of two.
    fn table(&mut self, key: &str, value: Option<i64>) -> u32 {
        let v = self.int(key, value, 1 << 20, 1024, 1 << 26);
        (v as u32).next_power_of_two()
    }
}

/// Validates `raw`; `origin` names the file in messages.
pub fn validate(raw: RawConfig, origin: &str) -> Result<(Config, Vec<Warning>), ConfigError> {
    let mut c = Check {
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let eal = eal(&mut c, raw.eal.unwrap_or_default());
    let workers = workers(&mut c, &raw.workers, &eal);
    let ports = ports(&mut c, raw.ports.unwrap_or_default(), &eal, &workers);
    let tables = TableSettings {
        connections: c.table("tables.connections", raw.tables.connections),
        persistence: c.table("tables.persistence", raw.tables.persistence),
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
    };
    let state_flags = StateFlags {
        sloppy_tcp: raw.ipvs.sloppy_tcp.unwrap_or(false),
        expire_quiescent_template: raw.ipvs.expire_quiescent_template.unwrap_or(false),
        expire_nodest_conn: raw.ipvs.expire_nodest_conn.unwrap_or(false),
    };
    let n = &raw.neighbours;
    let neighbours = NeighbourSettings {
        refresh_s: c.int("neighbours.refresh_s", n.refresh_s, 30, 1, 86_400) as u32,
        retry_ms: c.int("neighbours.retry_ms", n.retry_ms, 1000, 10, 60_000) as u32,
        gratuitous_arp: n.gratuitous_arp.unwrap_or(true),
    };
    let marks = marks(&mut c, &raw.mark);
    let services = services(&mut c, raw.service, &marks, &ports);
    let vips = vips(&mut c, &raw.vip, &services, &marks);
    cross_checks(&mut c, &services, &marks, &ports);

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
            vips,
            marks,
            services,
        },
        warnings,
    ))
}

fn eal(c: &mut Check, e: RawEal) -> EalSettings {
    let (lcores, cores) = match (&e.lcores, &e.coremask) {
        (Some(_), Some(_)) => {
            c.err(
                "eal.coremask",
                "set either eal.lcores or eal.coremask, not both; remove one",
            );
            (vec![0], CoreSelection::List("0".into()))
        }
        (None, None) => {
            c.err(
                "eal.lcores",
                "missing; set lcores = \"0-1\" (main lcore + one worker) or coremask = \"0x3\"",
            );
            (vec![0], CoreSelection::List("0".into()))
        }
        (Some(l), None) => {
            let parsed = match l {
                LcoreList::Str(s) => parse_lcore_list(s),
                LcoreList::List(v) if v.is_empty() => {
                    Err("empty lcore list; write e.g. \"0-2\" or [0, 1, 2]".into())
                }
                LcoreList::List(v) => {
                    let mut ids = Vec::new();
                    let mut bad = None;
                    for &n in v {
                        match u32::try_from(n) {
                            Ok(n) if n <= super::values::MAX_LCORE => ids.push(n),
                            _ => bad = Some(n),
                        }
                    }
                    ids.sort_unstable();
                    ids.dedup();
                    match bad {
                        Some(n) => Err(format!(
                            "lcore {n} is out of range; use 0..={}",
                            super::values::MAX_LCORE
                        )),
                        None => Ok(ids),
                    }
                }
            };
            match parsed {
                Ok(ids) => {
                    let s = format_lcore_list(&ids);
                    (ids, CoreSelection::List(s))
                }
                Err(m) => {
                    c.err("eal.lcores", m);
                    (vec![0], CoreSelection::List("0".into()))
                }
            }
        }
        (None, Some(m)) => {
            let parsed = match m {
                StrOrInt::Str(s) => parse_coremask(s),
                StrOrInt::Int(n) if *n > 0 => parse_coremask(&format!("{n:x}")),
                StrOrInt::Int(n) => Err(format!(
                    "core mask {n} selects no lcore; write a hexadecimal string such as \"0x7\""
                )),
            };
            match parsed {
                Ok(ids) => {
                    let mut mask = vec![0u8; (*ids.last().unwrap_or(&0) as usize) / 4 + 1];
                    for &id in &ids {
                        mask[id as usize / 4] |= 1 << (id % 4);
                    }
                    let hex: String = mask
                        .iter()
                        .rev()
                        .map(|d| char::from_digit(u32::from(*d), 16).unwrap_or('0'))
                        .collect();
                    (ids, CoreSelection::Mask(format!("0x{hex}")))
                }
                Err(m) => {
                    c.err("eal.coremask", m);
                    (vec![0], CoreSelection::List("0".into()))
                }
            }
        }
    };
    let lowest = lcores.first().copied().unwrap_or(0);
    let main_lcore = match e.main_lcore {
        None => lowest,
        Some(m) if m >= 0 && lcores.contains(&(m as u32)) => m as u32,
        Some(m) => {
            c.err(
                "eal.main_lcore",
                format!(
                    "lcore {m} is not one of the EAL lcores ({}); pick one of them",
                    format_lcore_list(&lcores)
                ),
            );
            lowest
        }
    };
    let memory_channels = e
        .memory_channels
        .map(|n| c.int("eal.memory_channels", Some(n), 4, 1, 32) as u32);
    let hugepages = e.hugepages.unwrap_or(true);
    let memory_mb = match e.memory_mb {
        Some(n) => Some(c.int("eal.memory_mb", Some(n), 1024, 16, 1 << 24) as u32),
        None if !hugepages => {
            c.err(
                "eal.memory_mb",
                "required with hugepages = false (EAL gets --no-huge -m N); add e.g. memory_mb = 1024",
            );
            None
        }
        None => None,
    };
    let file_prefix = e.file_prefix.unwrap_or_else(|| "pmdlb".into());
    if file_prefix.is_empty()
        || !file_prefix
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "_-.".contains(ch))
    {
        c.err(
            "eal.file_prefix",
            format!(
                "\"{file_prefix}\" is not a usable prefix; use letters, digits, '_', '-' or '.'"
            ),
        );
    }
    let mut seen = HashMap::new();
    for (i, p) in e.pci_allow.iter().enumerate() {
        let key = format!("eal.pci_allow[{i}]");
        match normalize_pci(p) {
            None => c.err(
                key,
                format!("\"{p}\" is not a PCI address; write e.g. \"0000:01:00.0\""),
            ),
            Some(n) => {
                if let Some(j) = seen.insert(n.clone(), i) {
                    c.err(
                        key,
                        format!("PCI device {n} is also eal.pci_allow[{j}]; remove one"),
                    );
                }
            }
        }
    }
    let mut seen = HashMap::new();
    for (i, v) in e.vdevs.iter().enumerate() {
        let name = vdev_name(v);
        let key = format!("eal.vdevs[{i}]");
        if name.is_empty() || name.contains(char::is_whitespace) {
            c.err(
                key,
                format!("\"{v}\" is not a vdev; write e.g. \"net_af_packet0,iface=eth1\""),
            );
        } else if let Some(j) = seen.insert(name.to_owned(), i) {
            c.err(
                key,
                format!("vdev name {name} is also used by eal.vdevs[{j}]; number them (net_pcap0, net_pcap1)"),
            );
        }
    }
    if let Some(l) = &e.log_level {
        if l.trim().is_empty() {
            c.err(
                "eal.log_level",
                "empty; write e.g. \"notice\" or \"pmd.net.*:debug\"",
            );
        }
    }
    if !hugepages && e.extra_args.iter().any(|a| a == "--in-memory") {
        c.err(
            "eal.extra_args",
            "--in-memory cannot be combined with --no-huge (hugepages = false); remove it",
        );
    }
    EalSettings {
        lcores,
        cores,
        main_lcore,
        memory_channels,
        hugepages,
        memory_mb,
        file_prefix,
        pci_allow: e.pci_allow,
        vdevs: e.vdevs,
        log_level: e.log_level,
        extra_args: e.extra_args,
    }
}

/// The device name of a vdev string (before the first comma).
fn vdev_name(v: &str) -> &str {
    v.split(',').next().unwrap_or("").trim()
}

fn workers(c: &mut Check, w: &super::raw::RawWorkers, eal: &EalSettings) -> WorkerSettings {
    let available = eal.worker_lcores();
    if available.is_empty() {
        c.err(
            "eal.lcores",
            format!(
                "lcores {} leave no worker lcore besides main lcore {}; add one, e.g. \"{}-{}\"",
                format_lcore_list(&eal.lcores),
                eal.main_lcore,
                eal.main_lcore,
                eal.main_lcore + 1
            ),
        );
    }
    let max = available.len().max(1) as i64;
    let count = match w.count {
        None => max,
        Some(n) if (1..=max).contains(&n) => n,
        Some(n) => {
            c.err(
                "workers.count",
                format!(
                    "{n} workers need {n} worker lcores but eal gives {} ({}); use 1..={max} or add lcores",
                    available.len(),
                    format_lcore_list(&available)
                ),
            );
            max
        }
    };
    let lcores: Vec<u32> = available.iter().copied().take(count as usize).collect();
    if lcores.len() < available.len() {
        c.warn(
            "workers.count",
            format!(
                "lcores {} stay idle ({count} workers on {} worker lcores)",
                format_lcore_list(&available[lcores.len()..]),
                available.len()
            ),
        );
    }
    WorkerSettings {
        count: count as u16,
        lcores,
        burst: c.int("workers.burst", w.burst, 32, 1, 64) as u16,
        drain_us: c.int("workers.drain_us", w.drain_us, 100, 1, 100_000) as u32,
        stats_interval_s: c.int("workers.stats_interval_s", w.stats_interval_s, 5, 0, 86_400)
            as u32,
        sweep_per_loop: c.int("workers.sweep_per_loop", w.sweep_per_loop, 64, 1, 1 << 20) as u32,
    }
}

/// Checks a port name and returns it normalised (PCI addresses with domain).
fn port_name(c: &mut Check, key: &str, name: &str, eal: &EalSettings) -> String {
    let name = name.trim();
    if let Some(pci) = normalize_pci(name) {
        if !eal
            .pci_allow
            .iter()
            .any(|p| normalize_pci(p).as_deref() == Some(pci.as_str()))
        {
            c.err(
                key,
                format!("PCI device {pci} is not in eal.pci_allow; add \"{pci}\" there"),
            );
        }
        pci
    } else {
        if name.is_empty() {
            c.err(key, "empty; name a vdev from eal.vdevs or a PCI address");
        } else if !eal.vdevs.iter().any(|v| vdev_name(v) == name) {
            c.warn(
                key,
                format!(
                    "{name} is neither in eal.vdevs nor a PCI address; it must come from arguments after `--`"
                ),
            );
        }
        name.to_owned()
    }
}

fn ports(c: &mut Check, p: RawPorts, eal: &EalSettings, w: &WorkerSettings) -> PortSettings {
    let rx = match &p.rx {
        Some(r) => port_name(c, "ports.rx", r, eal),
        None => {
            c.err(
                "ports.rx",
                "missing; name the receive NIC: a vdev from eal.vdevs (e.g. \"net_af_packet0\") or a PCI address from eal.pci_allow",
            );
            String::new()
        }
    };
    let tx = match &p.tx {
        Some(t) => port_name(c, "ports.tx", t, eal),
        None => rx.clone(),
    };
    let rx_desc = c.ring("ports.rx_desc", p.rx_desc);
    let tx_desc = c.ring("ports.tx_desc", p.tx_desc);
    let mtu = p
        .mtu
        .map(|m| c.int("ports.mtu", Some(m), 1500, 68, 9600) as u16);
    let mbuf_cache = c.int("ports.mbuf_cache", p.mbuf_cache, 256, 0, 512) as u32;
    let need = min_mbufs(
        u32::from(w.count),
        u32::from(w.burst),
        u32::from(rx_desc),
        u32::from(tx_desc),
        mbuf_cache,
        rx == tx,
    );
    let mbufs = match p.mbufs {
        None => {
            // Grow the default to the next 2^n - 1 (mempool's best size).
            let mut n = DEFAULT_MBUFS;
            while n < need {
                n = n * 2 + 1;
            }
            n
        }
        Some(m) if m < i64::from(need) => {
            c.err(
                "ports.mbufs",
                format!(
                    "{m} is below the {need} mbufs {} workers' queues and buffers need; raise it to at least {need}, or lower rx_desc/tx_desc",
                    w.count
                ),
            );
            need
        }
        Some(m) => c.int("ports.mbufs", Some(m), i64::from(DEFAULT_MBUFS), 1, 1 << 30) as u32,
    };
    let tx_vlan = match &p.tx_vlan {
        None => TxVlan::Keep,
        Some(StrOrInt::Str(s)) if s == "keep" => TxVlan::Keep,
        Some(StrOrInt::Str(s)) if s == "none" => TxVlan::Untagged,
        Some(v) => {
            let n = match v {
                StrOrInt::Int(n) => Some(*n),
                StrOrInt::Str(s) => s.trim().parse::<i64>().ok(),
            };
            match n {
                Some(n) if (1..=4094).contains(&n) => TxVlan::Tag(n as u16),
                _ => {
                    c.err(
                        "ports.tx_vlan",
                        format!("{v:?} is not valid; use \"keep\", \"none\" or a VLAN id 1..=4094")
                            .replace("Str(", "")
                            .replace("Int(", "")
                            .replace(')', ""),
                    );
                    TxVlan::Keep
                }
            }
        }
    };
    let tx_addr = p
        .tx_addr
        .as_deref()
        .and_then(|s| match s.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(a)) => Some(a),
            Ok(IpAddr::V6(_)) => {
                c.err(
                    "ports.tx_addr",
                    format!("{s} is IPv6; put it in ports.tx_addr6"),
                );
                None
            }
            Err(_) => {
                c.err(
                    "ports.tx_addr",
                    format!("\"{s}\" is not an IPv4 address; write e.g. \"10.100.1.1\""),
                );
                None
            }
        });
    let tx_addr6 = p
        .tx_addr6
        .as_deref()
        .and_then(|s| match s.trim().parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => Some(a),
            Ok(IpAddr::V4(_)) => {
                c.err(
                    "ports.tx_addr6",
                    format!("{s} is IPv4; put it in ports.tx_addr"),
                );
                None
            }
            Err(_) => {
                c.err(
                    "ports.tx_addr6",
                    format!("\"{s}\" is not an IPv6 address; write e.g. \"fd00:1::1\""),
                );
                None
            }
        });
    PortSettings {
        rx,
        tx,
        rx_desc,
        tx_desc,
        mtu,
        promiscuous: p.promiscuous.unwrap_or(true),
        mbufs,
        mbuf_cache,
        tx_vlan,
        tx_addr,
        tx_addr6,
    }
}

fn marks(c: &mut Check, raw: &[super::raw::RawMark]) -> Vec<MarkRuleSpec> {
    let mut out: Vec<MarkRuleSpec> = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let key = format!("mark[{i}]");
        let Some(dst) = &m.dst else {
            c.err(
                format!("{key}.dst"),
                "missing; give the destination, e.g. dst = \"10.0.0.100\" or \"10.0.0.0/24\"",
            );
            continue;
        };
        let (addr, prefix_len) = match parse_prefix(dst) {
            Ok(v) => v,
            Err(e) => {
                c.err(format!("{key}.dst"), e);
                continue;
            }
        };
        let masked = mask_addr(addr, prefix_len);
        if masked != addr {
            c.warn(
                format!("{key}.dst"),
                format!("{dst} has host bits set; using {masked}/{prefix_len}"),
            );
        }
        let proto = match &m.proto {
            None => None,
            Some(p) => match parse_proto(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    c.err(
                        format!("{key}.proto"),
                        format!("{e}, or leave it out for any"),
                    );
                    None
                }
            },
        };
        let mut ports = Vec::new();
        for (j, p) in m.ports.iter().enumerate() {
            let r = match p {
                StrOrInt::Str(s) => parse_port_range(s),
                StrOrInt::Int(n) => parse_port_range(&n.to_string()),
            };
            match r {
                Ok(r) => ports.push(r),
                Err(e) => c.err(format!("{key}.ports[{j}]"), e),
            }
        }
        let mark = match m.mark {
            None => {
                c.err(
                    format!("{key}.mark"),
                    "missing; set mark = N (1..=4294967295)",
                );
                continue;
            }
            Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => n as u32,
            Some(n) => {
                c.err(
                    format!("{key}.mark"),
                    format!("{n} is out of range; use 1..=4294967295 (0 means unmarked)"),
                );
                continue;
            }
        };
        let rule = MarkRuleSpec {
            dst: masked,
            prefix_len,
            proto,
            ports,
            mark,
        };
        if let Some(j) = out.iter().position(|r| {
            r.dst == rule.dst
                && r.prefix_len == rule.prefix_len
                && r.proto == rule.proto
                && r.ports == rule.ports
        }) {
            c.err(
                key,
                format!("matches exactly the same traffic as mark[{j}]; remove one or merge them"),
            );
        }
        out.push(rule);
    }
    out
}

/// `tcp 10.0.0.100:80` / `fwmark 1`, for messages.
fn service_label(addr: &ServiceAddr) -> String {
    match addr {
        ServiceAddr::Addr { proto, vip, port } => format!(
            "{} {}",
            proto_name(*proto).to_ascii_lowercase(),
            format_sockaddr(vip, *port)
        ),
        ServiceAddr::Fwmark(m) => format!("fwmark {m}"),
    }
}

fn parse_scheduler(s: &str) -> Option<SchedulerKind> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "rr" => SchedulerKind::Rr,
        "wrr" => SchedulerKind::Wrr,
        "lc" => SchedulerKind::Lc,
        "wlc" => SchedulerKind::Wlc,
        "sed" => SchedulerKind::Sed,
        "nq" => SchedulerKind::Nq,
        "sh" => SchedulerKind::Sh,
        "dh" => SchedulerKind::Dh,
        "mh" => SchedulerKind::Mh,
        "fo" => SchedulerKind::Fo,
        "ovf" => SchedulerKind::Ovf,
        _ => return None,
    })
}

fn services(
    c: &mut Check,
    raw: Vec<RawService>,
    marks: &[MarkRuleSpec],
    ports: &PortSettings,
) -> Vec<ServiceSpec> {
    let mut out: Vec<ServiceSpec> = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("service[{i}]");
        let addr = match (&s.vip, s.fwmark) {
            (Some(_), Some(_)) => {
                c.err(
                    &key,
                    "has both vip and fwmark; a service is either vip + port + proto or fwmark",
                );
                continue;
            }
            (None, None) => {
                c.err(
                    &key,
                    "has neither vip nor fwmark; add vip = \"10.0.0.100\" + port, or fwmark = N",
                );
                continue;
            }
            (None, Some(m)) => {
                if s.port.is_some() || s.proto.is_some() {
                    c.err(
                        &key,
                        "port and proto do not apply to a fwmark service (its [[mark]] rules select the traffic); remove them",
                    );
                }
                if !(1..=i64::from(u32::MAX)).contains(&m) {
                    c.err(
                        format!("{key}.fwmark"),
                        format!("{m} is out of range; use 1..=4294967295"),
                    );
                    continue;
                }
                ServiceAddr::Fwmark(m as u32)
            }
            (Some(v), None) => {
                let vip: IpAddr = match v.trim().parse() {
                    Ok(a) => a,
                    Err(_) => {
                        c.err(
                            format!("{key}.vip"),
                            format!("\"{v}\" is not an IP address; write e.g. \"10.0.0.100\""),
                        );
                        continue;
                    }
                };
                let port = match s.port {
                    None => {
                        c.err(
                            format!("{key}.port"),
                            "missing; set port = N (0 = every port of the VIP)",
                        );
                        continue;
                    }
                    Some(p) if (0..=65535).contains(&p) => p as u16,
                    Some(p) => {
                        c.err(
                            format!("{key}.port"),
                            format!("{p} is out of range; use 0..=65535 (0 = every port)"),
                        );
                        continue;
                    }
                };
                let proto = match s.proto.as_deref().map(parse_proto).unwrap_or(Ok(6)) {
                    Ok(p) => p,
                    Err(e) => {
                        c.err(format!("{key}.proto"), e);
                        continue;
                    }
                };
                ServiceAddr::Addr { proto, vip, port }
            }
        };
        let label = service_label(&addr);
        let scheduler = match s.scheduler.as_deref() {
            None => SchedulerKind::Wlc,
            Some(n) => parse_scheduler(n).unwrap_or_else(|| {
                c.err(
                    format!("{key}.scheduler"),
                    format!("({label}): unknown scheduler \"{n}\"; use rr, wrr, lc, wlc, sed, nq, sh, dh, mh, fo or ovf"),
                );
                SchedulerKind::Wlc
            }),
        };
        let mut sched_flags = SchedFlags::default();
        for (j, f) in s.flags.iter().enumerate() {
            let (needs, fallback) = match f.trim() {
                "sh-fallback" => (SchedulerKind::Sh, true),
                "sh-port" => (SchedulerKind::Sh, false),
                "mh-fallback" => (SchedulerKind::Mh, true),
                "mh-port" => (SchedulerKind::Mh, false),
                other => {
                    c.err(
                        format!("{key}.flags[{j}]"),
                        format!("({label}): unknown flag \"{other}\"; use sh-fallback, sh-port, mh-fallback or mh-port"),
                    );
                    continue;
                }
            };
            if scheduler != needs {
                c.err(
                    format!("{key}.flags[{j}]"),
                    format!(
                        "({label}): {f} needs scheduler = \"{}\"; remove the flag or change the scheduler",
                        if needs == SchedulerKind::Sh { "sh" } else { "mh" }
                    ),
                );
            }
            if fallback {
                sched_flags.fallback = true;
            } else {
                sched_flags.port = true;
            }
        }
        // The service family: the VIP's, or for fwmark its servers' (else its
        // mark rules', else IPv4).
        let v6 = match &addr {
            ServiceAddr::Addr { vip, .. } => vip.is_ipv6(),
            ServiceAddr::Fwmark(m) => {
                let from_servers = s.server.iter().find_map(|r| {
                    r.addr
                        .as_deref()
                        .and_then(|a| a.trim().parse::<IpAddr>().ok())
                });
                match from_servers {
                    Some(a) => a.is_ipv6(),
                    None => marks
                        .iter()
                        .find(|r| r.mark == *m)
                        .is_some_and(|r| r.dst.is_ipv6()),
                }
            }
        };
        let full: u8 = if v6 { 128 } else { 32 };
        let persistent_s = match &s.persistent {
            None | Some(BoolOrInt::Bool(false)) => None,
            Some(BoolOrInt::Bool(true)) => Some(DEFAULT_PERSISTENT_S),
            Some(BoolOrInt::Int(n)) if (1..=MAX_TIMEOUT_S).contains(n) => Some(*n as u32),
            Some(BoolOrInt::Int(n)) => {
                c.err(
                    format!("{key}.persistent"),
                    format!("({label}): {n} is out of range; use 1..={MAX_TIMEOUT_S} seconds, or true for 300"),
                );
                None
            }
        };
        let prefix_len = match &s.netmask {
            None => full,
            Some(_) if persistent_s.is_none() && s.persistent.is_none() => {
                c.err(
                    format!("{key}.netmask"),
                    format!("({label}): netmask applies only to persistent services; add persistent = 300 or remove netmask"),
                );
                full
            }
            Some(m) => {
                let r = match m {
                    StrOrInt::Int(n) => check_prefix_len(*n, v6),
                    StrOrInt::Str(t) => parse_netmask(t, v6),
                };
                r.unwrap_or_else(|e| {
                    c.err(format!("{key}.netmask"), format!("({label}): {e}"));
                    full
                })
            }
        };
        let persistence = persistent_s.map(|timeout_s| Persistence {
            timeout_s,
            prefix_len,
        });
        let servers = servers(c, &key, &label, &addr, v6, &s, ports);
        if servers.is_empty() {
            c.warn(
                &key,
                format!("({label}) has no real server; its traffic is dropped (add [[service.server]] entries)"),
            );
        }
        let spec = ServiceSpec {
            addr,
            scheduler,
            sched_flags,
            persistence,
            servers,
        };
        if let Some(j) = out.iter().position(|o| o.addr == spec.addr) {
            c.err(
                &key,
                format!(
                    "({label}) is defined twice (also service[{j}]); merge their servers into one"
                ),
            );
        }
        out.push(spec);
    }
    out
}

fn servers(
    c: &mut Check,
    key: &str,
    label: &str,
    addr: &ServiceAddr,
    v6: bool,
    s: &RawService,
    ports: &PortSettings,
) -> Vec<RealServerSpec> {
    let mut out: Vec<RealServerSpec> = Vec::new();
    let fam = |six: bool| if six { "IPv6" } else { "IPv4" };
    for (j, r) in s.server.iter().enumerate() {
        let k = format!("{key}.server[{j}]");
        let Some(a) = &r.addr else {
            c.err(
                format!("{k}.addr"),
                format!("({label}): missing; give the real server's address"),
            );
            continue;
        };
        let ip: IpAddr = match a.trim().parse() {
            Ok(ip) => ip,
            Err(_) => {
                c.err(
                    format!("{k}.addr"),
                    format!("({label}): \"{a}\" is not an IP address"),
                );
                continue;
            }
        };
        if ip.is_ipv6() != v6 && matches!(addr, ServiceAddr::Fwmark(_)) {
            c.err(
                format!("{k}.addr"),
                format!(
                    "({label}): real server {ip} is {} but the service's servers are {}; a fwmark service mixes no IPv4 and IPv6 servers, give the {} traffic its own mark and service",
                    family_name(&ip),
                    fam(v6),
                    family_name(&ip)
                ),
            );
            continue;
        }
        if ip.is_ipv6() != v6 {
            c.err(
                format!("{k}.addr"),
                format!(
                    "({label}): real server {ip} is {} but the service is {}; DR cannot change the family, use an {} server",
                    family_name(&ip),
                    fam(v6),
                    fam(v6)
                ),
            );
            continue;
        }
        if let ServiceAddr::Addr { vip, .. } = addr {
            if *vip == ip {
                c.err(
                    format!("{k}.addr"),
                    format!("({label}): real server {ip} is the VIP itself; give the server's own address"),
                );
            }
        }
        if Some(ip) == ports.tx_addr.map(IpAddr::V4) || Some(ip) == ports.tx_addr6.map(IpAddr::V6) {
            c.err(
                format!("{k}.addr"),
                format!("({label}): real server {ip} is the director's own ports.tx_addr; give the server's address"),
            );
        }
        if let Some(first) = out.iter().position(|o| o.addr == ip) {
            c.err(
                format!("{k}.addr"),
                format!(
                    "({label}): real server {ip} listed twice (also server[{first}]); remove one"
                ),
            );
            continue;
        }
        let weight = c.int(&format!("{k}.weight"), r.weight, 1, 0, 65535) as u32;
        let u_threshold = c.int(
            &format!("{k}.u_threshold"),
            r.u_threshold,
            0,
            0,
            i64::from(u32::MAX),
        ) as u32;
        let l_threshold = c.int(
            &format!("{k}.l_threshold"),
            r.l_threshold,
            0,
            0,
            i64::from(u32::MAX),
        ) as u32;
        if u_threshold > 0 && l_threshold > u_threshold {
            c.err(
                format!("{k}.l_threshold"),
                format!("({label}): {l_threshold} is above u_threshold {u_threshold}; the lower threshold must not exceed the upper"),
            );
        }
        let mac = match &r.mac {
            None => None,
            Some(m) => match parse_mac(m) {
                Ok(m) => Some(m),
                Err(e) => {
                    c.err(format!("{k}.mac"), format!("({label}): {e}"));
                    None
                }
            },
        };
        out.push(RealServerSpec {
            addr: ip,
            weight,
            u_threshold,
            l_threshold,
            mac,
        });
    }
    out
}

fn vips(
    c: &mut Check,
    raw: &[super::raw::RawVip],
    services: &[ServiceSpec],
    marks: &[MarkRuleSpec],
) -> Vec<VipSpec> {
    let mut out: Vec<VipSpec> = Vec::new();
    let used: Vec<IpAddr> = services
        .iter()
        .filter_map(|s| match &s.addr {
            ServiceAddr::Addr { vip, .. } => Some(*vip),
            ServiceAddr::Fwmark(_) => None,
        })
        .chain(
            marks
                .iter()
                .filter(|m| m.prefix_len == max_prefix(&m.dst))
                .map(|m| m.dst),
        )
        .collect();
    for (i, v) in raw.iter().enumerate() {
        let key = format!("vip[{i}].addr");
        let Some(a) = &v.addr else {
            c.err(
                key,
                "missing; give the virtual IP, e.g. addr = \"10.0.0.100\"",
            );
            continue;
        };
        let addr: IpAddr = match a.trim().parse() {
            Ok(ip) => ip,
            Err(_) => {
                c.err(key, format!("\"{a}\" is not an IP address"));
                continue;
            }
        };
        if let Some(j) = out.iter().position(|o| o.addr == addr) {
            c.err(
                key,
                format!("VIP {addr} listed twice (also vip[{j}]); remove one"),
            );
            continue;
        }
        let in_prefix = marks
            .iter()
            .any(|m| mask_addr(addr, m.prefix_len) == m.dst && addr.is_ipv6() == m.dst.is_ipv6());
        if !used.contains(&addr) && !in_prefix {
            c.warn(
                key,
                format!(
                    "no service or mark rule uses VIP {addr}; pmdlb only answers ARP/ping for it"
                ),
            );
        }
        out.push(VipSpec {
            addr,
            answer_arp: v.arp.unwrap_or(true),
            answer_ping: v.ping.unwrap_or(true),
        });
    }
    for addr in used {
        if !out.iter().any(|o| o.addr == addr) {
            out.push(VipSpec {
                addr,
                answer_arp: true,
                answer_ping: true,
            });
        }
    }
    for (i, m) in marks.iter().enumerate() {
        if m.prefix_len != max_prefix(&m.dst)
            && !out.iter().any(|v| {
                mask_addr(v.addr, m.prefix_len) == m.dst && v.addr.is_ipv6() == m.dst.is_ipv6()
            })
        {
            c.warn(
                format!("mark[{i}].dst"),
                format!(
                    "{}/{} is a prefix and no [[vip]] lies in it; pmdlb answers ARP only for listed VIPs, so list them",
                    m.dst, m.prefix_len
                ),
            );
        }
    }
    out
}

fn cross_checks(
    c: &mut Check,
    services: &[ServiceSpec],
    marks: &[MarkRuleSpec],
    ports: &PortSettings,
) {
    let needs = |six: bool| {
        services.iter().position(|s| {
            s.servers
                .iter()
                .any(|r| r.mac.is_none() && r.addr.is_ipv6() == six)
        })
    };
    if ports.tx_addr.is_none() {
        if let Some(i) = needs(false) {
            c.err(
                "ports.tx_addr",
                format!("missing, but service[{i}] has IPv4 real servers without a static mac; set tx_addr to the director's IPv4 address on the TX segment (the ARP sender), or give every server a mac"),
            );
        }
    }
    if ports.tx_addr6.is_none() {
        if let Some(i) = needs(true) {
            c.err(
                "ports.tx_addr6",
                format!("missing, but service[{i}] has IPv6 real servers without a static mac; set tx_addr6 to the director's IPv6 address on the TX segment (the ND source), or give every server a mac"),
            );
        }
    }
    // One address, one MAC.
    let mut macs: HashMap<IpAddr, (String, [u8; 6])> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        for (j, r) in s.servers.iter().enumerate() {
            if let Some(m) = r.mac {
                let here = format!("service[{i}].server[{j}]");
                match macs.get(&r.addr) {
                    Some((there, other)) if *other != m => c.err(
                        format!("{here}.mac"),
                        format!(
                            "real server {} has a different mac in {there}; one address has one MAC",
                            r.addr
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        macs.insert(r.addr, (here, m));
                    }
                }
            }
        }
    }
    for (i, s) in services.iter().enumerate() {
        if let ServiceAddr::Fwmark(m) = s.addr {
            let fed: Vec<&MarkRuleSpec> = marks.iter().filter(|r| r.mark == m).collect();
            if fed.is_empty() {
                c.warn(
                    format!("service[{i}].fwmark"),
                    format!("no [[mark]] rule sets mark {m}, so no traffic reaches this service; add one"),
                );
            }
            if let Some(r) = s.servers.first() {
                if let Some(bad) = fed.iter().find(|f| f.dst.is_ipv6() != r.addr.is_ipv6()) {
                    c.warn(
                        format!("service[{i}].fwmark"),
                        format!(
                            "mark {m} is set for {} traffic ({}/{}) but the servers are {}; that traffic finds no server",
                            family_name(&bad.dst),
                            bad.dst,
                            bad.prefix_len,
                            family_name(&r.addr)
                        ),
                    );
                }
            }
        }
    }
    for (i, r) in marks.iter().enumerate() {
        if !services
            .iter()
            .any(|s| s.addr == ServiceAddr::Fwmark(r.mark))
        {
            c.warn(
                format!("mark[{i}].mark"),
                format!(
                    "no [[service]] has fwmark = {}; marked packets fall back to address services",
                    r.mark
                ),
            );
        }
    }
}
