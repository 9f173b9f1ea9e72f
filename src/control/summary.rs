//! The text `pmdlb check` prints for a valid configuration: EAL arguments,
//! ports, workers, tables, timeouts, then the services in the style of
//! `ipvsadm -Ln`, the mark rules and the VIPs. Deterministic: file order.

#![forbid(unsafe_code)]

use std::fmt::Write;

use crate::control::config::values::{
    format_netmask, format_port_ranges, format_sockaddr, proto_name,
};
use crate::control::config::Config;
use crate::lb::conn::ConnTable;
use crate::lb::persist::PersistTable;
use crate::lb::spec::{Forwarding, SchedulerKind, ServiceAddr, ServiceSpec, TunnelKind};
use crate::sys::mem::mib;

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// The lowercase name ipvsadm uses for a scheduler.
pub fn scheduler_name(s: SchedulerKind) -> &'static str {
    s.name()
}

/// How `ipvsadm -Ln` names a service: `TCP  10.0.0.100:80` or `FWM  1`.
pub fn service_name(a: &ServiceAddr) -> String {
    match a {
        ServiceAddr::Addr { proto, vip, port } => {
            format!("{}  {}", proto_name(*proto), format_sockaddr(vip, *port))
        }
        ServiceAddr::Fwmark(m) => format!("FWM  {m}"),
    }
}

/// The service's header line, as `ipvsadm -Ln` prints it
/// (`TCP  10.0.0.100:80 wlc persistent 300 mask 255.255.255.0`).
pub fn service_line(s: &ServiceSpec) -> String {
    let head = service_name(&s.addr);
    let v6 = match &s.addr {
        ServiceAddr::Addr { vip, .. } => vip.is_ipv6(),
        ServiceAddr::Fwmark(_) => s.servers.first().is_some_and(|r| r.addr.is_ipv6()),
    };
    let mut line = format!("{head} {}", scheduler_name(s.scheduler));
    let prefix = if s.scheduler == SchedulerKind::Mh {
        "mh"
    } else {
        "sh"
    };
    let mut flags = Vec::new();
    if s.sched_flags.fallback {
        flags.push(format!("{prefix}-fallback"));
    }
    if s.sched_flags.port {
        flags.push(format!("{prefix}-port"));
    }
    if !flags.is_empty() {
        let _ = write!(line, " ({})", flags.join(","));
    }
    if let Some(p) = &s.persistence {
        let _ = write!(line, " persistent {}", p.timeout_s);
        // As ipvsadm: the mask only when it groups more than one address.
        if p.prefix_len < if v6 { 128 } else { 32 } {
            let _ = write!(line, " mask {}", format_netmask(p.prefix_len, v6));
        }
    }
    if s.ops {
        line.push_str(" ops");
    }
    line
}

/// The text `pmdlb check` prints.
pub fn summary(cfg: &Config) -> String {
    let mut o = String::new();
    let e = cfg.eal();
    let _ = writeln!(o, "EAL        {}", cfg.eal_args(&[]).join(" "));
    let _ = writeln!(
        o,
        "Watching   telemetry {}  live capture (pdump) {}",
        on_off(e.telemetry),
        on_off(e.pdump)
    );
    let p = cfg.ports();
    let arms = if p.one_armed() {
        "one-armed".to_owned()
    } else {
        format!("tx {}", p.tx)
    };
    let _ = writeln!(
        o,
        "Ports      rx {} {arms}  rx_desc {} tx_desc {}  mtu {}  promiscuous {}",
        p.rx,
        p.rx_desc,
        p.tx_desc,
        p.mtu.map_or("device default".to_owned(), |m| m.to_string()),
        on_off(p.promiscuous)
    );
    let _ = writeln!(
        o,
        "           mbufs {} cache {} size {}  tx_vlan {}  tx_addr {}  tx_addr6 {}",
        p.mbufs,
        p.mbuf_cache,
        p.mbuf_size,
        p.tx_vlan,
        p.tx_addr.map_or("-".to_owned(), |a| a.to_string()),
        p.tx_addr6.map_or("-".to_owned(), |a| a.to_string())
    );
    let tunnels = cfg
        .services()
        .iter()
        .flat_map(|s| &s.servers)
        .any(|r| matches!(r.forward, Forwarding::Tunnel(_)));
    if tunnels {
        let opt = |a: Option<String>| a.unwrap_or_else(|| "-".to_owned());
        let gw = |a: Option<String>, m: Option<crate::wire::ethernet::MacAddr>| match a {
            None => "on-link".to_owned(),
            Some(a) => format!(
                "{a} mac {}",
                m.map_or("resolve".to_owned(), |m| m.to_string())
            ),
        };
        let _ = writeln!(
            o,
            "           tunnel src {} src6 {}  gateway {}  gateway6 {}  mtu {}",
            opt(p.tunnel_src4().map(|a| a.to_string())),
            opt(p.tunnel_src6().map(|a| a.to_string())),
            gw(p.gateway.map(|a| a.to_string()), p.gateway_mac),
            gw(p.gateway6.map(|a| a.to_string()), p.gateway6_mac),
            p.tx_mtu()
        );
    }
    let w = cfg.workers();
    let lcores: Vec<String> = w.lcores.iter().map(|l| l.to_string()).collect();
    let _ = writeln!(
        o,
        "Workers    {} on lcores {} (main lcore {})  burst {}  drain {} us  stats {}  sweep {}/loop",
        w.count,
        lcores.join(","),
        e.main_lcore,
        w.burst,
        w.drain_us,
        if w.stats_interval_s == 0 {
            "off".to_owned()
        } else {
            format!("every {} s", w.stats_interval_s)
        },
        w.sweep_per_loop
    );
    let t = cfg.tables();
    let _ = writeln!(
        o,
        "Tables     connections {} per worker  persistence {}  mh {} slots",
        t.connections, t.persistence, t.mh_size
    );
    let conns = ConnTable::bytes_for(t.connections as usize);
    let persist = PersistTable::bytes_for(t.persistence as usize);
    let workers = usize::from(cfg.workers().count);
    let _ = writeln!(
        o,
        "           memory {}: {workers} x {} + {} = {}",
        t.memory.as_str(),
        mib(conns),
        mib(persist),
        mib(workers * conns + persist)
    );
    let to = cfg.timeouts();
    let _ = writeln!(
        o,
        "Timeouts   tcp {} tcp_syn_recv {} tcp_fin {} tcp_close {} udp {} tcp_syn_recv_secure {} (s)",
        to.tcp_established_s,
        to.tcp_syn_recv_s,
        to.tcp_fin_wait_s,
        to.tcp_close_s,
        to.udp_s,
        to.tcp_syn_recv_secure_s
    );
    let f = cfg.state_flags();
    let _ = writeln!(
        o,
        "IPVS       sloppy_tcp {}  expire_quiescent_template {}  expire_nodest_conn {}",
        on_off(f.sloppy_tcp),
        on_off(f.expire_quiescent_template),
        on_off(f.expire_nodest_conn)
    );
    let _ = writeln!(
        o,
        "           drop_entry {}  secure_tcp {}  conn_high_water {}%",
        f.drop_entry, f.secure_tcp, f.conn_high_water_pct
    );
    let n = cfg.neighbours();
    let _ = writeln!(
        o,
        "Neighbours refresh {} s  retry {} ms  gratuitous_arp {}",
        n.refresh_s,
        n.retry_ms,
        on_off(n.gratuitous_arp)
    );
    if let Some(a) = cfg.announce() {
        let hops: Vec<String> = a.next_hops.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(
            o,
            "Announce  table {} proto {} metric {} dev {} ({})  next hops {}",
            a.table,
            a.protocol,
            a.metric,
            a.device,
            if a.own_device {
                "pmdlb's TUN"
            } else {
                "existing"
            },
            if hops.is_empty() {
                "none".to_owned()
            } else {
                hops.join(", ")
            }
        );
    }

    let _ = writeln!(o, "\nServices ({})", cfg.services().len());
    let mut rs_id = 0usize;
    for (si, s) in cfg.services().iter().enumerate() {
        let sorry = cfg
            .quorums()
            .get(si)
            .and_then(Option::as_ref)
            .and_then(|q| q.sorry);
        let _ = writeln!(o, "{}", service_line(s));
        let port = match s.addr {
            ServiceAddr::Addr { port, .. } => port,
            ServiceAddr::Fwmark(_) => 0,
        };
        for r in &s.servers {
            let mut line = format!(
                "  -> {}  weight {}",
                format_sockaddr(&r.addr, port),
                r.weight
            );
            if r.u_threshold > 0 {
                let _ = write!(line, "  u_threshold {}", r.u_threshold);
            }
            if r.l_threshold > 0 {
                let _ = write!(line, "  l_threshold {}", r.l_threshold);
            }
            let _ = write!(line, "  forward {}", r.forward.ipvsadm_name());
            if let Forwarding::Tunnel(t) = r.forward {
                let _ = write!(line, " {}", t.kind);
                if t.kind == TunnelKind::Gue {
                    let csum = if t.csum { "csum" } else { "nocsum" };
                    let _ = write!(line, " port {} {csum}", t.port);
                }
                if let Some(gw) = r.via {
                    let _ = write!(line, " via {gw}");
                }
            }
            let _ = write!(
                line,
                "  mac {}",
                r.mac.map_or("resolve".to_owned(), |m| m.to_string())
            );
            if sorry.is_some_and(|id| id.0 as usize == rs_id) {
                line.push_str("  (sorry server)");
            }
            let _ = writeln!(o, "{line}");
            if let Some(Some(h)) = cfg.health().get(rs_id) {
                let _ = writeln!(o, "{}", h.describe());
            }
            rs_id += 1;
        }
        if let Some(Some(q)) = cfg.quorums().get(si) {
            let _ = writeln!(o, "  quorum {} hysteresis {}", q.quorum, q.hysteresis);
        }
    }

    let _ = writeln!(o, "\nMark rules ({})", cfg.marks().len());
    for m in cfg.marks() {
        let proto = m
            .proto
            .map_or("any".to_owned(), |p| proto_name(p).to_ascii_lowercase());
        let ports = if m.ports.is_empty() {
            "any".to_owned()
        } else {
            format_port_ranges(&m.ports)
        };
        let _ = writeln!(
            o,
            "  dst {}/{} proto {proto} ports {ports} -> mark {}",
            m.dst, m.prefix_len, m.mark
        );
    }

    let _ = writeln!(o, "\nVIPs ({})", cfg.vips().len());
    for v in cfg.vips() {
        let _ = writeln!(
            o,
            "  {}  arp {}  ping {}",
            v.addr,
            on_off(v.answer_arp),
            on_off(v.answer_ping)
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
[eal]
lcores = "0-1"
hugepages = false
memory_mb = 256
vdevs = ["net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"]

[ports]
rx = "net_pcap0"
tx_addr = "10.0.1.1"

[[mark]]
dst = "10.0.0.100"
proto = "tcp"
ports = [80, "443", "8000-8100"]
mark = 1

[[service]]
fwmark = 1
scheduler = "mh"
flags = ["mh-port", "mh-fallback"]
persistent = 300
netmask = "255.255.255.0"
[[service.server]]
addr = "10.0.1.11"
[[service.server]]
addr = "10.0.1.12"
weight = 3
mac = "02:00:00:00:01:0c"
u_threshold = 100
l_threshold = 50

[[service]]
vip = "2001:db8::100"
port = 53
proto = "udp"
scheduler = "rr"
persistent = true
netmask = 64
[[service.server]]
addr = "2001:db8:1::11"
mac = "02:00:00:00:01:0d"

[[vip]]
addr = "10.0.0.100"
ping = false
"#;

    #[test]
    fn summary_is_deterministic_and_ipvsadm_like() {
        let (cfg, _) = Config::from_str(CFG, "t.toml").unwrap();
        let text = summary(&cfg);
        assert_eq!(text, summary(&cfg));
        let expected = "\
EAL        pmdlb -l 0-1 --main-lcore 0 --no-huge -m 256 --file-prefix pmdlb --no-pci --vdev net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap
Watching   telemetry on  live capture (pdump) on
Ports      rx net_pcap0 one-armed  rx_desc 1024 tx_desc 1024  mtu device default  promiscuous on
           mbufs 16383 cache 256 size 2176  tx_vlan keep  tx_addr 10.0.1.1  tx_addr6 -
Workers    1 on lcores 1 (main lcore 0)  burst 32  drain 100 us  stats every 5 s  sweep 64/loop
Tables     connections 1048576 per worker  persistence 1048576  mh 65537 slots
           memory auto: 1 x 128.0 MiB + 84.0 MiB = 212.0 MiB
Timeouts   tcp 900 tcp_syn_recv 60 tcp_fin 120 tcp_close 10 udp 300 tcp_syn_recv_secure 10 (s)
IPVS       sloppy_tcp off  expire_quiescent_template off  expire_nodest_conn off
           drop_entry off  secure_tcp off  conn_high_water 90%
Neighbours refresh 30 s  retry 1000 ms  gratuitous_arp on

Services (2)
FWM  1 mh (mh-fallback,mh-port) persistent 300 mask 255.255.255.0
  -> 10.0.1.11:0  weight 1  forward Route  mac resolve
  -> 10.0.1.12:0  weight 3  u_threshold 100  l_threshold 50  forward Route  mac 02:00:00:00:01:0c
UDP  [2001:db8::100]:53 rr persistent 360 mask 64
  -> [2001:db8:1::11]:53  weight 1  forward Route  mac 02:00:00:00:01:0d

Mark rules (1)
  dst 10.0.0.100/32 proto tcp ports 80,443,8000-8100 -> mark 1

VIPs (2)
  10.0.0.100  arp on  ping off
  2001:db8::100  arp on  ping on
";
        assert_eq!(text, expected, "got:\n{text}");
    }

    #[test]
    fn service_lines() {
        let (cfg, _) = Config::from_str(
            "[eal]\nlcores=\"0-1\"\n[ports]\nrx=\"net_null0\"\ntx_addr=\"10.0.1.1\"\n\
             [[service]]\nvip=\"10.0.0.100\"\nport=80\n[[service.server]]\naddr=\"10.0.1.11\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(service_line(&cfg.services()[0]), "TCP  10.0.0.100:80 wlc");
        let text = summary(&cfg);
        assert!(
            text.contains("  -> 10.0.1.11:80  weight 1  forward Route  mac resolve\n"),
            "{text}"
        );
    }
}
