//! Validation of the global sections: `[eal]`, `[workers]` and `[ports]`.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;

use super::raw::{LcoreList, RawEal, RawPorts, StrOrInt};
use super::validate::{Check, DEFAULT_MBUFS};
use super::values::{
    format_lcore_list, normalize_pci, parse_coremask, parse_lcore_list, server_mac,
};
use super::{
    min_mbufs, CoreSelection, EalSettings, PortSettings, TxVlan, WorkerSettings, DEFAULT_MBUF_SIZE,
    DEFAULT_MTU, FRAME_OVERHEAD, RTE_PKTMBUF_HEADROOM,
};

pub(super) fn eal(c: &mut Check, e: RawEal) -> EalSettings {
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
        (Some(LcoreList::Str(s)), None) if s.contains('@') => match parse_lcore_map(s) {
            Ok(ids) => (ids, CoreSelection::Map(s.split_whitespace().collect())),
            Err(m) => {
                c.err("eal.lcores", m);
                (vec![0], CoreSelection::List("0".into()))
            }
        },
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
    let telemetry = e.telemetry.unwrap_or(true);
    let pdump = e.pdump.unwrap_or(true);
    if pdump {
        if let Some(a) = e
            .extra_args
            .iter()
            .find(|a| *a == "--in-memory" || *a == "--no-shconf")
        {
            c.warn(
                "eal.pdump",
                format!(
                    "live capture needs EAL's shared files, which {a} turns off: dpdk-dumpcap cannot attach; \
                     set pdump = false or drop {a}"
                ),
            );
        }
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
        telemetry,
        pdump,
        extra_args: e.extra_args,
    }
}

/// The device name of a vdev string (before the first comma).
fn vdev_name(v: &str) -> &str {
    v.split(',').next().unwrap_or("").trim()
}

pub(super) fn workers(
    c: &mut Check,
    w: &super::raw::RawWorkers,
    eal: &EalSettings,
) -> WorkerSettings {
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
                    "{n} workers need {n} worker lcores but eal gives {} (lcores {}); use 1..={max} or add lcores",
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

pub(super) fn ports(
    c: &mut Check,
    p: RawPorts,
    eal: &EalSettings,
    w: &WorkerSettings,
) -> PortSettings {
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
    let mbuf_size = mbuf_size(c, p.mbuf_size, mtu);
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
                Some(n) if (1..=4094).contains(&n) => TxVlan::Set(n as u16),
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
    let v4 = |c: &mut Check, key: &str, v: &Option<String>| match addr_of(c, key, v, false) {
        Some(IpAddr::V4(a)) => Some(a),
        _ => None,
    };
    let v6 = |c: &mut Check, key: &str, v: &Option<String>| match addr_of(c, key, v, true) {
        Some(IpAddr::V6(a)) => Some(a),
        _ => None,
    };
    let tunnel_addr = v4(c, "ports.tunnel_addr", &p.tunnel_addr);
    let tunnel_addr6 = v6(c, "ports.tunnel_addr6", &p.tunnel_addr6);
    let gateway = v4(c, "ports.gateway", &p.gateway);
    let gateway6 = v6(c, "ports.gateway6", &p.gateway6);
    let mac_of = |c: &mut Check, key: &str, v: &Option<String>, gw: bool| {
        let m = v.as_deref()?;
        if !gw {
            c.err(
                key,
                format!(
                    "set, but {} is not; a gateway MAC needs its gateway address",
                    key.trim_end_matches("_mac")
                ),
            );
            return None;
        }
        match server_mac(m) {
            Ok(m) => Some(m),
            Err(e) => {
                c.err(key, e.replace("server", "gateway"));
                None
            }
        }
    };
    let gateway_mac = mac_of(c, "ports.gateway_mac", &p.gateway_mac, gateway.is_some());
    let gateway6_mac = mac_of(c, "ports.gateway6_mac", &p.gateway6_mac, gateway6.is_some());
    PortSettings {
        rx,
        tx,
        rx_desc,
        tx_desc,
        mtu,
        promiscuous: p.promiscuous.unwrap_or(true),
        mbufs,
        mbuf_cache,
        mbuf_size,
        tx_vlan,
        tx_addr,
        tx_addr6,
        tunnel_addr,
        tunnel_addr6,
        gateway,
        gateway6,
        gateway_mac,
        gateway6_mac,
    }
}

/// `ports.mbuf_size`: an mbuf holds the headroom and an MTU-sized frame
/// (pmdlb receives into one segment). Unset, DPDK's default, grown for a
/// jumbo MTU; below the minimum, an error naming it.
fn mbuf_size(c: &mut Check, v: Option<i64>, mtu: Option<u16>) -> u16 {
    let mtu = mtu.unwrap_or(DEFAULT_MTU);
    let need = RTE_PKTMBUF_HEADROOM + mtu + FRAME_OVERHEAD;
    match v {
        None => DEFAULT_MBUF_SIZE.max(need),
        Some(m) if m < i64::from(need) => {
            c.err(
                "ports.mbuf_size",
                format!(
                    "{m} cannot hold a {}-byte frame (MTU {mtu}) after the {RTE_PKTMBUF_HEADROOM}-byte headroom; use at least {need}, or lower ports.mtu",
                    mtu + FRAME_OVERHEAD
                ),
            );
            need
        }
        Some(m) => c.int(
            "ports.mbuf_size",
            Some(m),
            i64::from(DEFAULT_MBUF_SIZE),
            i64::from(need),
            i64::from(u16::MAX),
        ) as u16,
    }
}

/// An address key of one family (`v6`): a unicast address, or an error
/// naming the key.
fn addr_of(c: &mut Check, key: &str, value: &Option<String>, v6: bool) -> Option<IpAddr> {
    let s = value.as_deref()?;
    let (want, example) = if v6 {
        ("IPv6", "fd00:1::1")
    } else {
        ("IPv4", "10.100.1.1")
    };
    match s.trim().parse::<IpAddr>() {
        Ok(a) if a.is_ipv6() != v6 => {
            c.err(
                key,
                format!("{s} is not an {want} address; the other family has its own key"),
            );
            None
        }
        Ok(a) if a.is_unspecified() || a.is_multicast() => {
            c.err(key, format!("{s} is not a unicast address"));
            None
        }
        Ok(a) => Some(a),
        Err(_) => {
            c.err(
                key,
                format!("\"{s}\" is not an {want} address; write e.g. \"{example}\""),
            );
            None
        }
    }
}

/// Parses EAL's lcore-to-CPU mapping form, `"0@0,1@1,2@1"` or
/// `"0@0,(1-2)@1"`: returns the lcore ids (sorted, distinct). The CPU side is
/// left to EAL, which names a missing CPU itself.
pub(super) fn parse_lcore_map(s: &str) -> Result<Vec<u32>, String> {
    let mut ids = Vec::new();
    let compact: String = s.split_whitespace().collect();
    // Split on commas that are not inside parentheses.
    let mut depth = 0i32;
    let mut items = Vec::new();
    let mut cur = String::new();
    for ch in compact.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    items.push(cur);
    for item in items {
        let Some((l, cpu)) = item.split_once('@') else {
            return Err(format!(
                "\"{item}\" in \"{s}\" has no @CPU; write lcore@cpu items such as \"0@0,1@1,2@1\""
            ));
        };
        if cpu.is_empty() {
            return Err(format!("\"{item}\" in \"{s}\" names no CPU after @"));
        }
        let l = l.trim_start_matches('(').trim_end_matches(')');
        ids.extend(parse_lcore_list(l).map_err(|m| format!("lcores \"{s}\": {m}"))?);
    }
    ids.sort_unstable();
    ids.dedup();
    Ok(ids)
}
