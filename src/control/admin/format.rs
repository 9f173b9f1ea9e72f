//! What ipvsadm prints, byte for byte, from a plain view model that the
//! control plane fills from live state ([`ListView`], [`ServiceView`],
//! [`ServerView`], [`ConnView`]).
//!
//! The layouts are those of ipvsadm.c's `list_all`, `print_title`,
//! `print_service_entry`, `print_largenum`, `print_sched_flags`,
//! `print_tunnel_rule`, `list_conn`/`print_conn` and `list_timeout`:
//!
//! - `-L` prints `IP Virtual Server version 1.2.1 (size=N)` and a title;
//!   `-L SERVICE` the title only; `-S` neither.
//! - Services and servers are sorted as `ipvs_cmp_services` (fwmark,
//!   family, protocol, address, port; services with an address have mark 0
//!   and come first) and `ipvs_cmp_dests` (address, port) unless
//!   `--nosort`; `-S` always sorts. (ipvsadm compares addresses by `int`
//!   subtraction, which misorders addresses 2^31 or more apart; pmdlb
//!   sorts numerically.)
//! - The service column is cut to 33 characters and the server column to
//!   28, for IPv4 only, as ipvsadm does; lines keep their trailing spaces.
//! - With `--stats`/`--rate` numbers of 10^8 and more are abbreviated
//!   (K, M, G, T) unless `--exact`; a server's cps and pps are printed raw
//!   in `--rate`.
//! - Addresses and ports are always numeric: without `-n` ipvsadm would
//!   resolve names (DNS, /etc/services); pmdlb's control plane resolves
//!   nothing, so `-L` and `-Ln` print the same.
#![forbid(unsafe_code)]

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;

use crate::control::admin::args::{
    sched_flags_text, server_args, service_opts_args, ListOpts, ServerOpts, ServiceOpts, ServiceSel,
};
use crate::control::admin::rules::fwmark_is_v6;
use crate::control::config::values::{format_netmask, format_sockaddr, proto_name};
use crate::control::estimator::{Rates, Totals};
use crate::control::summary::scheduler_name;
use crate::lb::spec::{
    Forwarding, Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec,
    Timeouts, TunnelKind,
};

/// The IPVS version pmdlb reports (the kernel's `IP_VS_VERSION_CODE`).
pub const IPVS_VERSION: &str = "1.2.1";

/// Everything `ipvsadm -L` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListView {
    /// The connection table size in the header (`size=N`).
    pub conn_table_size: u32,
    /// The services, in table order.
    pub services: Vec<ServiceView>,
}

/// One service as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceView {
    /// How the service is addressed.
    pub addr: ServiceAddr,
    /// IPv6 (for a fwmark service: of its servers; see
    /// [`crate::control::admin::rules::fwmark_is_v6`]).
    pub v6: bool,
    /// Scheduler.
    pub scheduler: SchedulerKind,
    /// Scheduler flags.
    pub sched_flags: SchedFlags,
    /// Persistence.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling.
    pub ops: bool,
    /// Counters (`--stats`).
    pub stats: Totals,
    /// Rates (`--rate`).
    pub rates: Rates,
    /// Its real servers, in table order.
    pub servers: Vec<ServerView>,
}

/// One real server as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerView {
    /// Address.
    pub addr: IpAddr,
    /// Port: the service's (0 for fwmark services).
    pub port: u16,
    /// Forwarding method (Forward column, `-g`/`-i` in `-S`).
    pub forward: Forwarding,
    /// Weight.
    pub weight: u32,
    /// Active connections.
    pub active: u32,
    /// Inactive connections.
    pub inactive: u32,
    /// Upper threshold (0 = none).
    pub u_threshold: u32,
    /// Lower threshold (0 = none).
    pub l_threshold: u32,
    /// Persistence templates pointing at this server (`--persistent-conn`).
    pub persist_conns: u32,
    /// Counters.
    pub stats: Totals,
    /// Rates.
    pub rates: Rates,
}

impl ServerView {
    /// A server of a service whose servers get `port`, counters zero.
    pub fn from_spec(rs: &RealServerSpec, port: u16) -> Self {
        ServerView {
            addr: rs.addr,
            port,
            forward: rs.forward,
            weight: rs.weight,
            active: 0,
            inactive: 0,
            u_threshold: rs.u_threshold,
            l_threshold: rs.l_threshold,
            persist_conns: 0,
            stats: Totals::default(),
            rates: Rates::default(),
        }
    }
}

impl ServiceView {
    /// The view of a rule, counters zero; the caller fills in counters.
    pub fn from_spec(spec: &ServiceSpec) -> Self {
        let port = match spec.addr {
            ServiceAddr::Addr { port, .. } => port,
            ServiceAddr::Fwmark(_) => 0,
        };
        ServiceView {
            addr: spec.addr.clone(),
            v6: fwmark_is_v6(spec),
            scheduler: spec.scheduler,
            sched_flags: spec.sched_flags,
            persistence: spec.persistence,
            ops: spec.ops,
            stats: Totals::default(),
            rates: Rates::default(),
            servers: spec
                .servers
                .iter()
                .map(|r| ServerView::from_spec(r, port))
                .collect(),
        }
    }

    fn selector(&self) -> ServiceSel {
        match self.addr {
            ServiceAddr::Addr { proto, vip, port } => ServiceSel::Addr { proto, vip, port },
            ServiceAddr::Fwmark(mark) => ServiceSel::Fwmark { mark, v6: self.v6 },
        }
    }
}

/// One connection entry (`-c`), as /proc/net/ip_vs_conn describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnView {
    /// `TCP`, `UDP`, `SCTP` (`IP` for a fwmark template).
    pub proto: String,
    /// Seconds until it expires.
    pub expire_s: u32,
    /// State name: `ESTABLISHED`, `SYN_RECV`, `FIN_WAIT`, `CLOSE`, `NONE`, `UDP`, …
    pub state: String,
    /// Client address and port.
    pub client: (IpAddr, u16),
    /// Virtual address and port.
    pub virt: (IpAddr, u16),
    /// Real server address and port.
    pub dest: (IpAddr, u16),
}

fn addr_key(a: &IpAddr) -> (u8, u128) {
    match a {
        IpAddr::V4(v) => (0, u128::from(u32::from(*v))),
        IpAddr::V6(v) => (1, u128::from(*v)),
    }
}

/// `ipvs_cmp_services`: fwmark, family, protocol, address, port.
pub fn cmp_services(a: &ServiceView, b: &ServiceView) -> Ordering {
    let key = |s: &ServiceView| match &s.addr {
        ServiceAddr::Addr { proto, vip, port } => (0u32, s.v6, *proto, addr_key(vip), *port),
        ServiceAddr::Fwmark(m) => (*m, s.v6, 0, (0, 0), 0),
    };
    key(a).cmp(&key(b))
}

/// `ipvs_cmp_dests`: address, port.
pub fn cmp_servers(a: &ServerView, b: &ServerView) -> Ordering {
    (addr_key(&a.addr), a.port).cmp(&(addr_key(&b.addr), b.port))
}

/// `print_largenum`: 9 columns; from 10^8 on K, M, G or T unless `exact`
/// (then as wide as needed, at least 9, with one leading space).
pub fn largenum(v: u64, exact: bool) -> String {
    if exact {
        let s = v.to_string();
        let w = if s.len() <= 8 { 9 } else { s.len() + 1 };
        return format!("{s:>w$}");
    }
    match v {
        0..=99_999_999 => format!("{v:>9}"),
        100_000_000..=999_999_999 => format!("{:>8}K", v / 1_000),
        1_000_000_000..=99_999_999_999 => format!("{:>8}M", v / 1_000_000),
        100_000_000_000..=99_999_999_999_999 => format!("{:>8}G", v / 1_000_000_000),
        _ => format!("{:>8}T", v / 1_000_000_000_000),
    }
}

/// The title lines of `print_title` (none for `-S`).
fn title(o: &ListOpts) -> String {
    let head = "Prot LocalAddress:Port";
    let srv = "  -> RemoteAddress:Port";
    if o.stats {
        format!(
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{srv}\n",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if o.rate {
        format!(
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{srv}\n",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if o.thresholds {
        format!(
            "{head:<33} {:<10} {:<10} {:<10} {:<10}\n{srv}\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if o.persistent_conn {
        format!(
            "{head:<33} {:<9} {:<11} {:<10} {:<10}\n{srv}\n",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if o.tun_info {
        format!("{head} Scheduler Flags\n{srv}           Forward TunnelInfo    Weight ActiveConn InActConn\n")
    } else {
        format!("{head} Scheduler Flags\n{srv}           Forward Weight ActiveConn InActConn\n")
    }
}

/// The listing's service name: `TCP  10.0.0.1:80` (cut to 33 for IPv4),
/// `FWM  1`, `FWM  1 IPv6`.
fn service_name(s: &ServiceView) -> String {
    match &s.addr {
        ServiceAddr::Addr { proto, vip, port } => {
            let mut n = format!("{:<4} {}", proto_name(*proto), format_sockaddr(vip, *port));
            if !vip.is_ipv6() {
                n.truncate(33);
            }
            n
        }
        ServiceAddr::Fwmark(m) if s.v6 => format!("FWM  {m} IPv6"),
        ServiceAddr::Fwmark(m) => format!("FWM  {m}"),
    }
}

/// A server's address column (cut to 28 for IPv4).
fn server_name(r: &ServerView) -> String {
    let mut n = format_sockaddr(&r.addr, r.port);
    if r.addr.is_ipv4() {
        n.truncate(28);
    }
    n
}

/// `fwd_tun_info`: `ipip`, `gue:PORT:-c|+c`, or `n/a` for DR.
fn tun_info(f: &Forwarding) -> String {
    match f {
        Forwarding::Dr => "n/a".into(),
        Forwarding::Tunnel(t) => match t.kind {
            TunnelKind::Ipip => "ipip".into(),
            TunnelKind::Gue => format!("gue:{}:{}", t.port, if t.csum { "+c" } else { "-c" }),
        },
    }
}

fn service_line(out: &mut String, s: &ServiceView, o: &ListOpts) {
    let name = service_name(s);
    if o.stats || o.rate {
        let t = &s.stats;
        let r = &s.rates;
        let vals = if o.stats {
            [t.conns, t.in_pkts, t.out_pkts, t.in_bytes, t.out_bytes]
        } else {
            [r.cps, r.in_pps, r.out_pps, r.in_bps, r.out_bps]
        };
        let _ = write!(out, "{name:<33}");
        for v in vals {
            out.push_str(&largenum(v, o.exact));
        }
    } else {
        let _ = write!(out, "{name} {}", scheduler_name(s.scheduler));
        if let Some(f) = sched_flags_text(s.scheduler, s.sched_flags) {
            let _ = write!(out, " ({f})");
        }
        if let Some(p) = s.persistence {
            let _ = write!(out, " persistent {}", p.timeout_s);
            if p.prefix_len != if s.v6 { 128 } else { 32 } {
                let _ = write!(out, " mask {}", format_netmask(p.prefix_len, s.v6));
            }
        }
        if s.ops {
            out.push_str(" ops");
        }
    }
    out.push('\n');
}

fn server_line(out: &mut String, r: &ServerView, o: &ListOpts) {
    let d = server_name(r);
    if o.stats {
        let t = &r.stats;
        let _ = write!(out, "  -> {d:<28}");
        for v in [t.conns, t.in_pkts, t.out_pkts, t.in_bytes, t.out_bytes] {
            out.push_str(&largenum(v, o.exact));
        }
        out.push('\n');
    } else if o.rate {
        let x = &r.rates;
        let _ = writeln!(
            out,
            "  -> {d:<28} {:>8} {:>8} {:>8}{}{}",
            x.cps,
            x.in_pps,
            x.out_pps,
            largenum(x.in_bps, o.exact),
            largenum(x.out_bps, o.exact)
        );
    } else if o.thresholds {
        let _ = writeln!(
            out,
            "  -> {d:<28} {:<10} {:<10} {:<10} {:<10}",
            r.u_threshold, r.l_threshold, r.active, r.inactive
        );
    } else if o.persistent_conn {
        let _ = writeln!(
            out,
            "  -> {d:<28} {:<9} {:<11} {:<10} {:<10}",
            r.weight, r.persist_conns, r.active, r.inactive
        );
    } else if o.tun_info {
        let _ = writeln!(
            out,
            "  -> {d:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
            r.forward.ipvsadm_name(),
            tun_info(&r.forward),
            r.weight,
            r.active,
            r.inactive
        );
    } else {
        let _ = writeln!(
            out,
            "  -> {d:<28} {:<7} {:<6} {:<10} {:<10}",
            r.forward.ipvsadm_name(),
            r.weight,
            r.active,
            r.inactive
        );
    }
}

fn service_entry(out: &mut String, s: &ServiceView, o: &ListOpts) {
    service_line(out, s, o);
    let mut servers: Vec<&ServerView> = s.servers.iter().collect();
    if !o.nosort {
        servers.sort_by(|a, b| cmp_servers(a, b));
    }
    for r in servers {
        server_line(out, r, o);
    }
}

/// `ipvsadm -L [options]`: header, title, every service.
pub fn list(view: &ListView, o: &ListOpts) -> String {
    let mut out = format!(
        "IP Virtual Server version {IPVS_VERSION} (size={})\n",
        view.conn_table_size
    );
    out.push_str(&title(o));
    let mut services: Vec<&ServiceView> = view.services.iter().collect();
    if !o.nosort {
        services.sort_by(|a, b| cmp_services(a, b));
    }
    for s in services {
        service_entry(&mut out, s, o);
    }
    out
}

/// `ipvsadm -L SERVICE [options]`: title and that service, no header.
pub fn list_service(s: &ServiceView, o: &ListOpts) -> String {
    let mut out = title(o);
    service_entry(&mut out, s, o);
    out
}

/// `ipvsadm -S [-n]` of views (sorted, as ipvsadm always sorts here).
pub fn save_views(services: &[ServiceView]) -> String {
    let mut services: Vec<&ServiceView> = services.iter().collect();
    services.sort_by(|a, b| cmp_services(a, b));
    let mut out = String::new();
    for s in services {
        let sel = s.selector();
        let svc = sel.to_args().join(" ");
        let opts = ServiceOpts {
            scheduler: s.scheduler,
            sched_flags: s.sched_flags,
            persistence: s.persistence,
            ops: s.ops,
        };
        let _ = writeln!(out, "-A {svc} {}", service_opts_args(&sel, &opts).join(" "));
        let mut servers: Vec<&ServerView> = s.servers.iter().collect();
        servers.sort_by(|a, b| cmp_servers(a, b));
        for r in servers {
            let so = ServerOpts {
                addr: r.addr,
                port: r.port,
                forward: r.forward,
                weight: r.weight,
                u_threshold: r.u_threshold,
                l_threshold: r.l_threshold,
            };
            // ipvsadm-save never writes -x/-y.
            let _ = writeln!(out, "-a {svc} {}", server_args(&so, false).join(" "));
        }
    }
    out
}

/// `ipvsadm -S [-n]` of a rule set.
pub fn save(specs: &[ServiceSpec]) -> String {
    save_views(&specs.iter().map(ServiceView::from_spec).collect::<Vec<_>>())
}

/// `ipvsadm -L -c [--persistent-conn]`. pmdlb has no persistence engines,
/// so rows never carry pe columns; `--persistent-conn` changes the title
/// only, as in ipvsadm for entries without pe data.
pub fn list_connections(conns: &[ConnView], o: &ListOpts) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if o.persistent_conn {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        );
    } else {
        let _ = writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        );
    }
    for c in conns {
        let expire = format!("{:02}:{:02}", c.expire_s / 60, c.expire_s % 60);
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.proto,
            expire,
            c.state,
            format_sockaddr(&c.client.0, c.client.1),
            format_sockaddr(&c.virt.0, c.virt.1),
            format_sockaddr(&c.dest.0, c.dest.1)
        );
    }
    out
}

/// `ipvsadm -L --timeout`: TCP established, TCP FIN_WAIT, UDP.
pub fn list_timeouts(t: &Timeouts) -> String {
    format!(
        "Timeout (tcp tcpfin udp): {} {} {}\n",
        t.tcp_established_s, t.tcp_fin_wait_s, t.udp_s
    )
}

/// `pmdlb admin -v`.
pub fn version() -> String {
    format!(
        "pmdlb admin {} (the ipvsadm v1.31 command line over IPVS v{IPVS_VERSION} semantics)\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `pmdlb admin -h` (pmdlb's own summary of the subset it implements).
pub fn usage() -> String {
    let mut s = version();
    s.push_str(
        "\
Usage (as ipvsadm; SERVICE is -t|-u|--sctp-service ADDR:PORT or -f MARK [-6]):
  pmdlb admin -A|-E SERVICE [-s SCHED] [-p [TIMEOUT]] [-M NETMASK] [-b FLAGS] [-o]
  pmdlb admin -D SERVICE
  pmdlb admin -C
  pmdlb admin -R                 rules from standard input (ipvsadm-save syntax)
  pmdlb admin -S [-n]
  pmdlb admin -a|-e SERVICE -r ADDR[:PORT] [-g|-i [--tun-type ipip|gue --tun-port P --tun-csum|--tun-nocsum]] [-w W] [-x U] [-y L]
  pmdlb admin -d SERVICE -r ADDR[:PORT]
  pmdlb admin -L|-l [SERVICE] [-n] [--exact] [--stats|--rate|--thresholds|--persistent-conn|--tun-info] [--nosort]
  pmdlb admin -L -c | -L --timeout
  pmdlb admin -Z [SERVICE]
  pmdlb admin --set TCP TCPFIN UDP     (0 keeps a value)
  pmdlb admin -h | -v

Schedulers: rr wrr lc wlc (default) sed nq sh dh mh fo ovf.
Scheduler flags: sh-fallback sh-port (sh), mh-fallback mh-port (mh), flag-1 flag-2.
-p without a value is 360 s. Forwarding is direct routing (-g, default) or a
tunnel (-i); masquerading, persistence engines, lblc/lblcr, gre tunnels and
--start-daemon/--stop-daemon are not supported (the sync daemon is the [sync]
section; -L --daemon shows it). Addresses and ports are numeric only.
",
    );
    s
}

#[cfg(test)]
#[path = "format_tests.rs"]
mod tests;
