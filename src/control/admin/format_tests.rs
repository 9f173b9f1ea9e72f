//! Golden tests of ipvsadm's output. Every expected string was made by
//! applying ipvsadm.c's printf format (quoted above it, with the function
//! it is in) to the arguments by hand, with a C-printf implementation
//! (Python's `%`), never from this module's own output.

use super::*;
use crate::lb::spec::Tunnel;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn server(addr: &str, port: u16, weight: u32) -> ServerView {
    ServerView {
        addr: ip(addr),
        port,
        forward: Forwarding::Dr,
        weight,
        active: 0,
        inactive: 0,
        u_threshold: 0,
        l_threshold: 0,
        persist_conns: 0,
        stats: Totals::default(),
        rates: Rates::default(),
    }
}

fn service(addr: ServiceAddr, sched: SchedulerKind, servers: Vec<ServerView>) -> ServiceView {
    ServiceView {
        v6: matches!(&addr, ServiceAddr::Addr { vip, .. } if vip.is_ipv6()),
        addr,
        scheduler: sched,
        sched_flags: SchedFlags::default(),
        persistence: None,
        ops: false,
        stats: Totals::default(),
        rates: Rates::default(),
        servers,
    }
}

fn tcp(vip: &str, port: u16) -> ServiceAddr {
    ServiceAddr::Addr {
        proto: 6,
        vip: ip(vip),
        port,
    }
}

fn udp(vip: &str, port: u16) -> ServiceAddr {
    ServiceAddr::Addr {
        proto: 17,
        vip: ip(vip),
        port,
    }
}

/// Three services given out of ipvsadm's order, servers too.
fn view() -> ListView {
    let mut a = service(tcp("10.0.0.1", 80), SchedulerKind::Wlc, vec![]);
    let mut s2 = server("10.0.1.2", 80, 0);
    s2.forward = Forwarding::Tunnel(Tunnel {
        kind: TunnelKind::Ipip,
        port: 0,
        csum: false,
    });
    let mut s1 = server("10.0.1.1", 80, 1);
    s1.active = 12;
    s1.inactive = 34;
    a.servers = vec![s2, s1];
    let mut b = service(tcp("10.0.0.2", 443), SchedulerKind::Sh, vec![]);
    b.sched_flags.port = true;
    b.persistence = Some(Persistence {
        timeout_s: 300,
        prefix_len: 24,
    });
    let mut b1 = server("10.0.1.1", 443, 100);
    b1.active = 3;
    b1.inactive = 1;
    b.servers = vec![b1];
    let mut f = service(ServiceAddr::Fwmark(1), SchedulerKind::Rr, vec![]);
    f.persistence = Some(Persistence {
        timeout_s: 360,
        prefix_len: 32,
    });
    f.servers = vec![server("10.0.1.1", 0, 1)];
    ListView {
        conn_table_size: 4096,
        services: vec![f, b, a],
    }
}

#[test]
fn list_as_list_all() {
    let got = list(&view(), &ListOpts::default());
    let want = concat!(
        // list_all: "IP Virtual Server version %d.%d.%d (size=%d)\n" (1, 2, 1, 4096)
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        // print_title, default branch
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
        // print_service_entry: "%-4s %s" ("TCP", "10.0.0.1:80"), then "%s %s" (name, "wlc")
        "TCP  10.0.0.1:80 wlc\n",
        // "  -> %-28s %-7s %-6d %-10u %-10u\n" ("10.0.1.1:80", "Route", 1, 12, 34)
        "  -> 10.0.1.1:80                  Route   1      12         34        \n",
        // same format ("10.0.1.2:80", "Tunnel", 0, 0, 0)
        "  -> 10.0.1.2:80                  Tunnel  0      0          0         \n",
        // "%s %s" + " (" flags ")" + " persistent %u" + " mask %s"
        "TCP  10.0.0.2:443 sh (sh-port) persistent 300 mask 255.255.255.0\n",
        // ("10.0.1.1:443", "Route", 100, 3, 1)
        "  -> 10.0.1.1:443                 Route   100    3          1         \n",
        // "FWM  %u" (1), " persistent %u" (360); /32 prints no mask
        "FWM  1 rr persistent 360\n",
        // ("10.0.1.1:0", "Route", 1, 0, 0)
        "  -> 10.0.1.1:0                   Route   1      0          0         \n",
    );
    assert_eq!(got, want);
}

#[test]
fn nosort_keeps_table_order() {
    let o = ListOpts {
        nosort: true,
        ..ListOpts::default()
    };
    let got = list(&view(), &o);
    let lines: Vec<&str> = got.lines().collect();
    assert_eq!(lines[3], "FWM  1 rr persistent 360");
    assert_eq!(lines[7], "TCP  10.0.0.1:80 wlc");
    assert_eq!(
        lines[8],
        "  -> 10.0.1.2:80                  Tunnel  0      0          0         "
    );
}

#[test]
fn list_one_service_has_no_header() {
    let v = view();
    let got = list_service(&v.services[2], &ListOpts::default());
    assert!(got.starts_with("Prot LocalAddress:Port Scheduler Flags\n"));
    assert_eq!(got.lines().count(), 5);
}

#[test]
fn ops_ipv6_and_fwmark_ipv6_service_lines() {
    let mut u = service(udp("fd00::1", 53), SchedulerKind::Rr, vec![]);
    u.ops = true;
    u.persistence = Some(Persistence {
        timeout_s: 60,
        prefix_len: 64,
    });
    let mut s = server("fd00::2", 53, 5);
    s.inactive = 7;
    u.servers = vec![s];
    let mut f = service(ServiceAddr::Fwmark(7), SchedulerKind::Mh, vec![]);
    f.v6 = true;
    f.sched_flags.fallback = true;
    let got = list(
        &ListView {
            conn_table_size: 1,
            services: vec![f, u],
        },
        &ListOpts::default(),
    );
    let lines: Vec<&str> = got.lines().collect();
    // "%-4s %s" ("UDP", "[fd00::1]:53") "%s %s", " persistent %u", " mask %i" (64), " ops"
    assert_eq!(lines[3], "UDP  [fd00::1]:53 rr persistent 60 mask 64 ops");
    // "  -> %-28s %-7s %-6d %-10u %-10u\n" ("[fd00::2]:53", "Route", 5, 0, 7)
    assert_eq!(
        lines[4],
        "  -> [fd00::2]:53                 Route   5      0          7         "
    );
    // "FWM  %u IPv6" (7), then " (" "mh-fallback" ")"
    assert_eq!(lines[5], "FWM  7 IPv6 mh (mh-fallback)");
}

#[test]
fn flag_names_follow_the_scheduler() {
    let mut s = service(tcp("10.0.0.1", 80), SchedulerKind::Rr, vec![]);
    s.sched_flags = SchedFlags {
        fallback: true,
        port: true,
        ..SchedFlags::default()
    };
    let got = list_service(&s, &ListOpts::default());
    // print_sched_flags for neither sh nor mh: "flag-1," "flag-2,", last comma cut
    assert!(
        got.ends_with("TCP  10.0.0.1:80 rr (flag-1,flag-2)\n"),
        "{got}"
    ); // pmdlb's own flag goes after ipvsadm's (not an ipvsadm name)
    s.sched_flags.mh_template = true;
    let got = list_service(&s, &ListOpts::default());
    assert!(
        got.ends_with("TCP  10.0.0.1:80 rr (flag-1,flag-2,mh-template)\n"),
        "{got}"
    );
}

fn stats_view() -> ListView {
    let mut s = service(tcp("10.0.0.1", 80), SchedulerKind::Wlc, vec![]);
    s.stats = Totals {
        conns: 14209,
        in_pkts: 111769,
        out_pkts: 0,
        in_bytes: 720_717_412,
        out_bytes: 0,
    };
    let mut r = server("10.0.1.1", 80, 1);
    r.stats = Totals {
        conns: 14209,
        in_pkts: 111769,
        out_pkts: 0,
        in_bytes: 7_207_174_123,
        out_bytes: 0,
    };
    r.rates = Rates {
        cps: 123_456_789,
        in_pps: 12,
        out_pps: 0,
        in_bps: 123_456_789,
        out_bps: 0,
    };
    s.rates = Rates {
        cps: 5,
        in_pps: 12,
        out_pps: 0,
        in_bps: 1500,
        out_bps: 0,
    };
    s.servers = vec![r];
    ListView {
        conn_table_size: 4096,
        services: vec![s],
    }
}

#[test]
fn stats_abbreviated_and_exact() {
    let o = ListOpts {
        stats: true,
        ..ListOpts::default()
    };
    let got = list(&stats_view(), &o);
    let want = concat!(
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        // print_title: "%-33s %8s %8s %8s %8s %8s\n  -> RemoteAddress:Port\n"
        "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
        "  -> RemoteAddress:Port\n",
        // "%-33s" then print_largenum: "%9llu" x3, "%8lluK" (720717412/1000), "%9llu"
        "TCP  10.0.0.1:80                     14209   111769        0  720717K        0\n",
        // "  -> %-28s" then "%9llu" x3, "%8lluM" (7207174123/10^6), "%9llu"
        "  -> 10.0.1.1:80                     14209   111769        0    7207M        0\n",
    );
    assert_eq!(got, want);
    let exact = list(&stats_view(), &ListOpts { exact: true, ..o });
    // --exact: "%*llu" with width len+1 when longer than 8 digits, else 9
    assert_eq!(
        exact.lines().nth(4).unwrap(),
        "  -> 10.0.1.1:80                     14209   111769        0 7207174123        0"
    );
    assert_eq!(
        exact.lines().nth(3).unwrap(),
        "TCP  10.0.0.1:80                     14209   111769        0 720717412        0"
    );
}

#[test]
fn rate_rows() {
    let o = ListOpts {
        rate: true,
        ..ListOpts::default()
    };
    let got = list(&stats_view(), &o);
    let lines: Vec<&str> = got.lines().collect();
    // print_title: "%-33s %8s %8s %8s %8s %8s\n" with CPS InPPS OutPPS InBPS OutBPS
    assert_eq!(
        lines[1],
        "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
    );
    // "%-33s" + print_largenum x5 (5, 12, 0, 1500, 0)
    assert_eq!(
        lines[3],
        "TCP  10.0.0.1:80                         5       12        0     1500        0"
    );
    // "  -> %-28s %8llu %8llu %8llu" (cps raw) + "%8lluK" (123456789/1000) + "%9llu"
    assert_eq!(
        lines[4],
        "  -> 10.0.1.1:80                  123456789       12        0  123456K        0"
    );
}

#[test]
fn thresholds_persistent_conn_and_tun_info() {
    let mut s = service(tcp("10.0.0.1", 80), SchedulerKind::Wlc, vec![]);
    let mut r1 = server("10.0.1.1", 80, 1);
    r1.u_threshold = 100;
    r1.l_threshold = 10;
    r1.active = 12;
    r1.inactive = 34;
    r1.persist_conns = 3;
    let mut r2 = server("10.0.1.2", 80, 2);
    r2.forward = Forwarding::Tunnel(Tunnel {
        kind: TunnelKind::Gue,
        port: 6080,
        csum: true,
    });
    let mut r3 = server("10.0.1.3", 80, 3);
    r3.forward = Forwarding::Tunnel(Tunnel {
        kind: TunnelKind::Ipip,
        port: 0,
        csum: false,
    });
    s.servers = vec![r3, r2, r1];
    let th = list_service(
        &s,
        &ListOpts {
            thresholds: true,
            ..ListOpts::default()
        },
    );
    let want = concat!(
        // print_title: "%-33s %-10s %-10s %-10s %-10s\n  -> RemoteAddress:Port\n"
        "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn \n",
        "  -> RemoteAddress:Port\n",
        // the service line is the default one
        "TCP  10.0.0.1:80 wlc\n",
        // "  -> %-28s %-10u %-10u %-10u %-10u\n" ("10.0.1.1:80", 100, 10, 12, 34)
        "  -> 10.0.1.1:80                  100        10         12         34        \n",
    );
    assert!(th.starts_with(want), "{th}");
    let pc = list_service(
        &s,
        &ListOpts {
            persistent_conn: true,
            ..ListOpts::default()
        },
    );
    let lines: Vec<&str> = pc.lines().collect();
    // "%-33s %-9s %-11s %-10s %-10s\n"
    assert_eq!(
        lines[0],
        "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn "
    );
    // "  -> %-28s %-9u %-11u %-10u %-10u\n" ("10.0.1.1:80", 1, 3, 12, 34)
    assert_eq!(
        lines[3],
        "  -> 10.0.1.1:80                  1         3           12         34        "
    );
    let ti = list_service(
        &s,
        &ListOpts {
            tun_info: true,
            ..ListOpts::default()
        },
    );
    let lines: Vec<&str> = ti.lines().collect();
    assert_eq!(
        lines[1],
        "  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn"
    );
    // "  -> %-28s %-7s %-13s %-6d %-10u %-10u\n"; fwd_tun_info: NA, "%s:%d:%s", "%s"
    assert_eq!(
        lines[3],
        "  -> 10.0.1.1:80                  Route   n/a           1      12         34        "
    );
    assert_eq!(
        lines[4],
        "  -> 10.0.1.2:80                  Tunnel  gue:6080:+c   2      0          0         "
    );
    assert_eq!(
        lines[5],
        "  -> 10.0.1.3:80                  Tunnel  ipip          3      0          0         "
    );
}

#[test]
fn connections() {
    let conns = vec![
        ConnView {
            proto: "TCP".into(),
            expire_s: 899,
            state: "ESTABLISHED".into(),
            client: (ip("192.0.2.7"), 40000),
            virt: (ip("10.0.0.1"), 80),
            dest: (ip("10.0.1.1"), 80),
        },
        ConnView {
            proto: "UDP".into(),
            expire_s: 5,
            state: "UDP".into(),
            client: (ip("2001:db8::7"), 5353),
            virt: (ip("fd00::1"), 53),
            dest: (ip("fd00::2"), 53),
        },
    ];
    let got = list_connections(&conns, &ListOpts::default());
    let want = concat!(
        // list_conn
        "IPVS connection entries\n",
        // "pro expire %-11s %-18s %-18s %s\n"
        "pro expire state       source             virtual            destination\n",
        // print_conn: "%-3s %-6s %-11s %-18s %-18s %s\n", expire "%02d:%02d" (14, 59)
        "TCP 14:59  ESTABLISHED 192.0.2.7:40000    10.0.0.1:80        10.0.1.1:80\n",
        "UDP 00:05  UDP         [2001:db8::7]:5353 [fd00::1]:53       [fd00::2]:53\n",
    );
    assert_eq!(got, want);
    let pc = list_connections(
        &[],
        &ListOpts {
            persistent_conn: true,
            ..ListOpts::default()
        },
    );
    // "pro expire %-11s %-18s %-18s %-18s %-16s %s\n"
    assert_eq!(
        pc,
        "IPVS connection entries\npro expire state       source             virtual            destination        pe name          pe_data\n"
    );
}

#[test]
fn timeouts() {
    // list_timeout: "Timeout (tcp tcpfin udp): %d %d %d\n"
    assert_eq!(
        list_timeouts(&Timeouts::default()),
        "Timeout (tcp tcpfin udp): 900 120 300\n"
    );
}

#[test]
fn save_as_ipvsadm_save() {
    let mut v = view();
    v.services[2].servers[1].u_threshold = 10;
    let mut gue = server("10.0.1.5", 80, 2);
    gue.forward = Forwarding::Tunnel(Tunnel {
        kind: TunnelKind::Gue,
        port: 6080,
        csum: false,
    });
    v.services[2].servers.push(gue);
    let mut u = service(
        udp("fd00::1", 53),
        SchedulerKind::Rr,
        vec![server("fd00::2", 53, 0)],
    );
    u.ops = true;
    u.persistence = Some(Persistence {
        timeout_s: 60,
        prefix_len: 64,
    });
    v.services.push(u);
    let got = save_views(&v.services);
    let want = concat!(
        // print_service_entry, FMT_RULE: "-A %s -s %s" with "%s %s" ("-t", "10.0.0.1:80")
        "-A -t 10.0.0.1:80 -s wlc\n",
        // "-a %s -r %s %s -w %d\n"; -x/-y are never saved
        "-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1\n",
        // print_tunnel_rule, ipip: "-a %s -r %s %s -w %d --tun-type %s\n"
        "-a -t 10.0.0.1:80 -r 10.0.1.2:80 -i -w 0 --tun-type ipip\n",
        // gue: "-a %s -r %s %s -w %d --tun-type %s --tun-port %d %s\n"
        "-a -t 10.0.0.1:80 -r 10.0.1.5:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum\n",
        // " -p %u", " -M %s" (inet_ntoa), " -b " print_sched_flags
        "-A -t 10.0.0.2:443 -s sh -p 300 -M 255.255.255.0 -b sh-port\n",
        "-a -t 10.0.0.2:443 -r 10.0.1.1:443 -g -w 100\n",
        // AF_INET6 sorts after AF_INET: " -p %u", " -M %i", " -o"
        "-A -u [fd00::1]:53 -s rr -p 60 -M 64 -o\n",
        "-a -u [fd00::1]:53 -r [fd00::2]:53 -g -w 0\n",
        // fwmark services last (ipvs_cmp_services compares the mark first): "-f %u"
        "-A -f 1 -s rr -p 360\n",
        "-a -f 1 -r 10.0.1.1:0 -g -w 1\n",
    );
    assert_eq!(got, want);
}

#[test]
fn largenum_boundaries() {
    // print_largenum: "%9llu" below 10^8, then "%8lluK|M|G|T"
    assert_eq!(largenum(99_999_999, false), " 99999999");
    assert_eq!(largenum(100_000_000, false), "  100000K");
    assert_eq!(largenum(999_999_999, false), "  999999K");
    assert_eq!(largenum(1_000_000_000, false), "    1000M");
    assert_eq!(largenum(99_999_999_999, false), "   99999M");
    assert_eq!(largenum(100_000_000_000, false), "     100G");
    assert_eq!(largenum(100_000_000_000_000, false), "     100T");
    // FMT_EXACT: "%*llu", width 9 up to 8 digits, else len+1
    assert_eq!(largenum(12_345_678, true), " 12345678");
    assert_eq!(largenum(123_456_789, true), " 123456789");
}
