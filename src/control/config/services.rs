//! Validation of `[[mark]]`, `[[service]]` (with their servers) and
//! `[[vip]]`, and the checks across them and `[ports]`.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;

use super::raw::{BoolOrInt, RawService, StrOrInt};
use super::validate::{Check, DEFAULT_PERSISTENT_S, MAX_TIMEOUT_S};
use super::values::{
    check_prefix_len, family_name, format_sockaddr, mask_addr, max_prefix, parse_netmask,
    parse_port_range, parse_prefix, parse_proto, proto_name, server_mac,
};
use super::{MhTableSize, PortSettings};
use crate::lb::spec::{
    Forwarding, MarkRuleSpec, Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr,
    ServiceSpec, Tunnel, TunnelKind, VipSpec,
};
use crate::wire::ethernet::MacAddr;

pub(super) fn marks(c: &mut Check, raw: &[super::raw::RawMark]) -> Vec<MarkRuleSpec> {
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
pub(super) fn service_label(addr: &ServiceAddr) -> String {
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
    SchedulerKind::from_name(&s.trim().to_ascii_lowercase())
}

pub(super) fn services(
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
            if f.trim() == "mh-template" {
                sched_flags.mh_template = true;
                if matches!(s.persistent, None | Some(BoolOrInt::Bool(false))) {
                    c.err(
                        format!("{key}.flags[{j}]"),
                        format!("({label}): mh-template needs a persistent service; set persistent or remove the flag"),
                    );
                }
                continue;
            }
            let (needs, fallback) = match f.trim() {
                "sh-fallback" => (SchedulerKind::Sh, true),
                "sh-port" => (SchedulerKind::Sh, false),
                "mh-fallback" => (SchedulerKind::Mh, true),
                "mh-port" => (SchedulerKind::Mh, false),
                other => {
                    c.err(
                        format!("{key}.flags[{j}]"),
                        format!("({label}): unknown flag \"{other}\"; use sh-fallback, sh-port, mh-fallback, mh-port or mh-template"),
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
            Some(_) if matches!(s.persistent, None | Some(BoolOrInt::Bool(false))) => {
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
        let ops = s.ops.unwrap_or(false);
        if ops
            && !matches!(
                addr,
                ServiceAddr::Addr {
                    proto: crate::lb::types::ip_proto::UDP,
                    ..
                }
            )
        {
            c.err(
                format!("{key}.ops"),
                format!("({label}): one-packet scheduling applies to UDP services only (as ipvsadm -o); remove ops"),
            );
        }
        let spec = ServiceSpec {
            ops,
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
            Some(m) => match server_mac(m) {
                Ok(m) => Some(m),
                Err(e) => {
                    c.err(format!("{k}.mac"), format!("({label}): {e}"));
                    None
                }
            },
        };
        let forward = forwarding(c, &k, label, r);
        let mut via = None;
        let mut mac = mac;
        if let Forwarding::Tunnel(_) = forward {
            let (gw, gw_mac, key) = match ip {
                IpAddr::V4(_) => (ports.gateway.map(IpAddr::V4), ports.gateway_mac, "gateway"),
                IpAddr::V6(_) => (
                    ports.gateway6.map(IpAddr::V6),
                    ports.gateway6_mac,
                    "gateway6",
                ),
            };
            if let Some(gw) = gw {
                if mac.is_some() {
                    c.err(
                        format!("{k}.mac"),
                        format!("({label}): tunnel server {ip} is reached through ports.{key} {gw}, whose MAC this would be; set ports.{key}_mac instead"),
                    );
                }
                via = Some(gw);
                mac = gw_mac;
            }
        }
        out.push(RealServerSpec {
            addr: ip,
            weight,
            u_threshold,
            l_threshold,
            mac,
            forward,
            via,
        });
    }
    out
}

/// `forward`, `tun_type`, `tun_port`, `tun_csum` of one server.
fn forwarding(c: &mut Check, k: &str, label: &str, r: &super::raw::RawServer) -> Forwarding {
    let tunnel = match r.forward.as_deref().map(str::trim) {
        None | Some("dr") => false,
        Some("tunnel") => true,
        Some(other) => {
            c.err(
                format!("{k}.forward"),
                format!("({label}): \"{other}\" is not a forwarding method; use \"dr\" (direct routing, the default) or \"tunnel\""),
            );
            false
        }
    };
    if !tunnel {
        for (key, set) in [
            ("tun_type", r.tun_type.is_some()),
            ("tun_port", r.tun_port.is_some()),
            ("tun_csum", r.tun_csum.is_some()),
        ] {
            if set {
                c.err(
                    format!("{k}.{key}"),
                    format!("({label}): only for forward = \"tunnel\"; remove it or set forward"),
                );
            }
        }
        return Forwarding::Dr;
    }
    let kind = match r.tun_type.as_deref().map(str::trim) {
        None | Some("ipip") => TunnelKind::Ipip,
        Some("gue") => TunnelKind::Gue,
        Some(other) => {
            c.err(
                format!("{k}.tun_type"),
                format!("({label}): \"{other}\" is not a tunnel type pmdlb builds; use \"ipip\" (the default) or \"gue\""),
            );
            TunnelKind::Ipip
        }
    };
    let port = match (kind, r.tun_port) {
        (TunnelKind::Gue, None) => {
            c.err(
                format!("{k}.tun_port"),
                format!("({label}): missing; a gue tunnel needs the server's GUE UDP port (its fou listener), e.g. 6080"),
            );
            0
        }
        (TunnelKind::Gue, Some(p)) => c.int(&format!("{k}.tun_port"), Some(p), 0, 1, 65535) as u16,
        (TunnelKind::Ipip, Some(_)) => {
            c.err(
                format!("{k}.tun_port"),
                format!("({label}): only for tun_type = \"gue\"; ipip has no port"),
            );
            0
        }
        (TunnelKind::Ipip, None) => 0,
    };
    if kind == TunnelKind::Ipip && r.tun_csum.is_some() {
        c.err(
            format!("{k}.tun_csum"),
            format!("({label}): only for tun_type = \"gue\"; ipip has no UDP checksum"),
        );
    }
    Forwarding::Tunnel(Tunnel {
        kind,
        port,
        csum: kind == TunnelKind::Gue && r.tun_csum.unwrap_or(false),
    })
}

pub(super) fn vips(
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

pub(super) fn cross_checks(
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
    // Tunnelled packets need an outer source address.
    let tunnels = |six: bool| {
        services.iter().position(|s| {
            s.servers
                .iter()
                .any(|r| matches!(r.forward, Forwarding::Tunnel(_)) && r.addr.is_ipv6() == six)
        })
    };
    if ports.tunnel_src4().is_none() {
        if let Some(i) = tunnels(false) {
            c.err(
                "ports.tunnel_addr",
                format!("missing, but service[{i}] has IPv4 tunnel servers; set tunnel_addr (or tx_addr) to the director's IPv4 address the servers accept tunnelled packets from"),
            );
        }
    }
    if ports.tunnel_src6().is_none() {
        if let Some(i) = tunnels(true) {
            c.err(
                "ports.tunnel_addr6",
                format!("missing, but service[{i}] has IPv6 tunnel servers; set tunnel_addr6 (or tx_addr6) to the director's IPv6 address the servers accept tunnelled packets from"),
            );
        }
    }
    // The inner MTU a tunnel leaves must be one the family allows (IPVS
    // refuses to tunnel below it, `__ip_vs_get_out_rt`).
    for (i, s) in services.iter().enumerate() {
        for (j, r) in s.servers.iter().enumerate() {
            let Forwarding::Tunnel(t) = r.forward else {
                continue;
            };
            let v6 = r.addr.is_ipv6();
            let inner =
                i64::from(ports.tx_mtu()) - crate::dataplane::tunnel::overhead(t.kind, v6) as i64;
            let min = if v6 { 1280 } else { 68 };
            if inner < min {
                c.err(
                    "ports.mtu",
                    format!(
                        "{} leaves {inner} bytes inside the {} tunnel of service[{i}].server[{j}] ({}), below the {} minimum of {min}; raise mtu",
                        ports.tx_mtu(),
                        t.kind,
                        r.addr,
                        family_name(&r.addr)
                    ),
                );
            }
        }
    }
    // One next hop, one MAC.
    let mut macs: HashMap<IpAddr, (String, MacAddr)> = HashMap::new();
    for (i, s) in services.iter().enumerate() {
        for (j, r) in s.servers.iter().enumerate() {
            if let Some(m) = r.mac {
                let here = format!("service[{i}].server[{j}]");
                match macs.get(&r.via.unwrap_or(r.addr)) {
                    Some((there, other)) if *other != m => c.err(
                        format!("{here}.mac"),
                        format!(
                            "real server {} has a different mac in {there}; one address has one MAC",
                            r.addr
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        macs.insert(r.via.unwrap_or(r.addr), (here, m));
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

/// An mh service spreads its servers over `mh_size` slots of `u16` server
/// indices: more servers than slots (IPVS refuses those too) or than a
/// `u16` indexes is an error.
pub(super) fn mh_limits(c: &mut Check, services: &[ServiceSpec], mh_size: MhTableSize) {
    for (i, s) in services.iter().enumerate() {
        let n = s.servers.len();
        if s.scheduler == SchedulerKind::Mh && n > mh_size.max_servers() {
            c.err(
                format!("service[{i}]"),
                format!(
                    "({}): scheduler mh spreads {n} real servers over tables.mh_size = {mh_size} slots, at most {} fit; raise tables.mh_size or use fewer servers",
                    service_label(&s.addr),
                    mh_size.max_servers()
                ),
            );
        }
    }
}
