//! Tests of the ipvsadm argument parser: every option, default and
//! conflict, with the messages and exit codes of ipvsadm.c.

use super::*;
use crate::lb::spec::ServiceAddr;

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn ok(s: &str) -> AdminCmd {
    parse(&argv(s)).unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

fn err(s: &str) -> AdminError {
    match parse(&argv(s)) {
        Ok(c) => panic!("{s}: parsed as {c:?}"),
        Err(e) => e,
    }
}

fn usage_err(s: &str, msg: &str) {
    assert_eq!(err(s), AdminError::usage(msg), "{s}");
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(a: &str, port: u16) -> ServiceSel {
    ServiceSel::Addr {
        proto: ip_proto::TCP,
        vip: v4(a),
        port,
    }
}

fn add_service(s: &str) -> (ServiceSel, ServiceOpts) {
    match ok(s) {
        AdminCmd::Edit(Edit::AddService { svc, opts }) => (svc, opts),
        c => panic!("{s}: {c:?}"),
    }
}

fn add_server(s: &str) -> (ServiceSel, ServerOpts) {
    match ok(s) {
        AdminCmd::Edit(Edit::AddServer { svc, server }) => (svc, server),
        c => panic!("{s}: {c:?}"),
    }
}

#[test]
fn no_arguments_lists() {
    assert_eq!(
        parse(&[]),
        Ok(AdminCmd::List {
            what: ListWhat::All,
            opts: ListOpts::default()
        })
    );
}

#[test]
fn add_service_defaults() {
    let (svc, o) = add_service("-A -t 10.0.0.1:80");
    assert_eq!(svc, tcp("10.0.0.1", 80));
    assert_eq!(
        o,
        ServiceOpts {
            scheduler: SchedulerKind::Wlc,
            sched_flags: SchedFlags::default(),
            persistence: None,
            ops: false
        }
    );
    assert_eq!(
        svc.service_addr(),
        ServiceAddr::Addr {
            proto: 6,
            vip: v4("10.0.0.1"),
            port: 80
        }
    );
}

#[test]
fn long_short_attached_and_bundled_forms_agree() {
    let a = ok("-A -t 10.0.0.1:80 -s rr -p 300");
    assert_eq!(
        ok("--add-service --tcp-service 10.0.0.1:80 --scheduler rr --persistent 300"),
        a
    );
    assert_eq!(
        ok("--add-service --tcp-service=10.0.0.1:80 --scheduler=rr --persistent=300"),
        a
    );
    assert_eq!(ok("-At 10.0.0.1:80 -srr -p300"), a);
    assert_eq!(ok("-A -p 300 -s rr -t 10.0.0.1:80"), a);
    assert_eq!(ok("-Ln"), ok("-L -n"));
    assert_eq!(ok("-l --numeric"), ok("--list -n"));
    assert_eq!(ok("-L -n --sort"), ok("-L -n"));
}

#[test]
fn protocols_and_addresses() {
    let (svc, _) = add_service("-A -u 10.0.0.1:53");
    assert_eq!(
        svc,
        ServiceSel::Addr {
            proto: ip_proto::UDP,
            vip: v4("10.0.0.1"),
            port: 53
        }
    );
    let (svc, _) = add_service("-A --sctp-service 10.0.0.1:9");
    assert!(matches!(
        svc,
        ServiceSel::Addr {
            proto: ip_proto::SCTP,
            ..
        }
    ));
    let (svc, _) = add_service("-A -t [fd00::1]:443");
    assert_eq!(
        svc,
        ServiceSel::Addr {
            proto: 6,
            vip: "fd00::1".parse().unwrap(),
            port: 443
        }
    );
    // A bare IPv6 address has no port.
    let (svc, o) = add_service("-A -t fd00::1 -p");
    assert_eq!(svc.port(), 0);
    assert_eq!(o.persistence.unwrap().prefix_len, 128);
    for bad in [
        "80",
        "10.0.0.1:http",
        "[fd00::1]",
        "[fd00::1]80",
        "10.0.0.1:",
        "host.example:80",
        "10.0.0.1:65536",
    ] {
        usage_err(
            &format!("-A -t {bad}"),
            "illegal virtual server address[:port] specified",
        );
    }
}

#[test]
fn fwmark_and_ipv6_flag() {
    let (svc, _) = add_service("-A -f 1");
    assert_eq!(svc, ServiceSel::Fwmark { mark: 1, v6: false });
    let (svc, o) = add_service("-A -f 4294967295 -6 -p");
    assert_eq!(
        svc,
        ServiceSel::Fwmark {
            mark: u32::MAX,
            v6: true
        }
    );
    assert_eq!(o.persistence.unwrap().prefix_len, 128);
    for bad in ["0", "-1", "4294967296", "x", "1x"] {
        usage_err(
            &format!("-A -f {bad}"),
            &format!("invalid fwmark value `{bad}' specified"),
        );
    }
    usage_err("-A -6 -f 1", "-6 used before -f");
    usage_err("-A -t 10.0.0.1:80 -6", "-6 used before -f");
}

#[test]
fn persistence_defaults_and_range() {
    let p = |s: &str| add_service(s).1.persistence;
    assert_eq!(
        p("-A -t 10.0.0.1:80 -p"),
        Some(Persistence {
            timeout_s: 360,
            prefix_len: 32
        })
    );
    // The optional value is not taken from a word starting with '-'.
    assert_eq!(p("-A -t 10.0.0.1:80 -p -s rr").unwrap().timeout_s, 360);
    assert_eq!(p("-A -t 10.0.0.1:80 -p 1").unwrap().timeout_s, 1);
    assert_eq!(
        p("-A -t 10.0.0.1:80 -p 2678400").unwrap().timeout_s,
        2678400
    );
    for bad in ["0", "2678401", "x"] {
        usage_err(
            &format!("-A -t 10.0.0.1:80 -p {bad}"),
            &format!("invalid timeout value `{bad}' specified"),
        );
    }
    // A word that is not a timeout is taken as the value, as popt does.
    usage_err(
        "-A -t 10.0.0.1:80 -p rr",
        "invalid timeout value `rr' specified",
    );
}

#[test]
fn netmask() {
    let m = |s: &str| add_service(s).1.persistence.unwrap().prefix_len;
    assert_eq!(m("-A -t 10.0.0.1:80 -p -M 255.255.255.0"), 24);
    assert_eq!(m("-A -t 10.0.0.1:80 -M 255.255.0.0 -p"), 16);
    assert_eq!(m("-A -t 10.0.0.1:80 -p -M 24"), 24);
    assert_eq!(m("-A -t [fd00::1]:80 -p -M 64"), 64);
    assert_eq!(m("-A -f 3 -6 -p -M 48"), 48);
    usage_err(
        "-A -t 10.0.0.1:80 -p -M 255.0.255.0",
        "illegal virtual server persistent mask specified",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -p -M nonsense",
        "illegal virtual server persistent mask specified",
    );
    usage_err(
        "-A -t [fd00::1]:80 -p -M 0",
        "illegal ipv6 netmask specified",
    );
    usage_err(
        "-A -t [fd00::1]:80 -p -M 129",
        "illegal ipv6 netmask specified",
    );
    // -M without -p is accepted and has no effect (only persistence uses it).
    assert_eq!(
        add_service("-A -t 10.0.0.1:80 -M 255.0.0.0").1.persistence,
        None
    );
}

#[test]
fn schedulers() {
    for (name, k) in [
        ("rr", SchedulerKind::Rr),
        ("wrr", SchedulerKind::Wrr),
        ("lc", SchedulerKind::Lc),
        ("wlc", SchedulerKind::Wlc),
        ("sed", SchedulerKind::Sed),
        ("nq", SchedulerKind::Nq),
        ("sh", SchedulerKind::Sh),
        ("dh", SchedulerKind::Dh),
        ("mh", SchedulerKind::Mh),
        ("fo", SchedulerKind::Fo),
        ("ovf", SchedulerKind::Ovf),
    ] {
        assert_eq!(
            add_service(&format!("-A -t 10.0.0.1:80 -s {name}"))
                .1
                .scheduler,
            k
        );
    }
    for name in ["lblc", "lblcr"] {
        let e = err(&format!("-A -t 10.0.0.1:80 -s {name}"));
        assert_eq!(e.code, EXIT_USAGE);
        assert!(e.msg.contains("not supported by pmdlb"), "{e:?}");
    }
    assert_eq!(
        err("-A -t 10.0.0.1:80 -s bogus"),
        AdminError::failed("Scheduler or persistence engine not found")
    );
    usage_err(
        "-A -t 10.0.0.1:80 --pe sip",
        "--pe (persistence engines): not supported by pmdlb",
    );
}

#[test]
fn sched_flags() {
    let f = |s: &str| add_service(s).1.sched_flags;
    assert_eq!(
        f("-A -t 10.0.0.1:80 -s sh -b sh-port"),
        SchedFlags {
            fallback: false,
            port: true,
            ..SchedFlags::default()
        }
    );
    // -b before -s: the flags are checked against the final scheduler.
    assert_eq!(
        f("-A -t 10.0.0.1:80 -b sh-fallback,sh-port -s sh"),
        SchedFlags {
            fallback: true,
            port: true,
            ..SchedFlags::default()
        }
    );
    assert!(f("-A -t 10.0.0.1:80 -s mh -b mh-fallback").fallback);
    assert!(f("-A -t 10.0.0.1:80 -s wlc -p 300 -b mh-template").mh_template);
    usage_err(
        "-A -t 10.0.0.1:80 -s wlc -b mh-template",
        "scheduler flag `mh-template' needs a persistent service (-p)",
    );
    assert!(f("-A -t 10.0.0.1:80 -s mh --sched-flags mh-port").port);
    assert_eq!(
        f("-A -t 10.0.0.1:80 -s rr -b flag-1,flag-2"),
        SchedFlags {
            fallback: true,
            port: true,
            ..SchedFlags::default()
        }
    );
    usage_err(
        "-A -t 10.0.0.1:80 -b sh-port",
        "incompatible scheduler flag `sh-port'",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -s sh -b mh-port",
        "incompatible scheduler flag `mh-port'",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -s sh -b sh-port,frob",
        "invalid scheduler flag `frob'",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -b flag-3",
        "scheduler flag `flag-3': not supported by pmdlb",
    );
    // Flags are parsed before the table check, as in parse_options.
    usage_err(
        "-D -t 10.0.0.1:80 -b sh-port",
        "incompatible scheduler flag `sh-port'",
    );
}

#[test]
fn ops_only_for_udp_and_fwmark() {
    assert!(add_service("-A -u 10.0.0.1:53 -o").1.ops);
    assert!(add_service("-A -f 2 --ops").1.ops);
    usage_err(
        "-A -t 10.0.0.1:80 -o",
        "One-Packet Scheduling is only for UDP virtual services",
    );
    usage_err(
        "-E -t 10.0.0.1:80 -o",
        "One-Packet Scheduling is only for UDP virtual services",
    );
}

#[test]
fn port_zero_needs_persistence() {
    usage_err(
        "-A -t 10.0.0.1:0",
        "Zero port specified for non-persistent service",
    );
    usage_err(
        "-E -t 10.0.0.1",
        "Zero port specified for non-persistent service",
    );
    assert!(add_service("-A -t 10.0.0.1:0 -p 60")
        .1
        .persistence
        .is_some());
    assert!(add_service("-A -f 9").1.persistence.is_none());
}

#[test]
fn edit_and_delete_service() {
    assert!(matches!(
        ok("-E -t 10.0.0.1:80 -s rr"),
        AdminCmd::Edit(Edit::EditService { .. })
    ));
    assert_eq!(
        ok("-D -t 10.0.0.1:80"),
        AdminCmd::Edit(Edit::DelService {
            svc: tcp("10.0.0.1", 80)
        })
    );
    usage_err(
        "-D -t 10.0.0.1:80 -s rr",
        "Illegal 'scheduler' option with the 'delete-service' command",
    );
    usage_err(
        "-D -t 10.0.0.1:80 -p",
        "Illegal 'persistent' option with the 'delete-service' command",
    );
    usage_err(
        "-A -s rr",
        "You need to supply the 'service-address' option for the 'add-service' command",
    );
    usage_err(
        "-E -p",
        "You need to supply the 'service-address' option for the 'edit-service' command",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -r 10.0.1.1",
        "Illegal 'real-server' option with the 'add-service' command",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -w 2",
        "Illegal 'weight' option with the 'add-service' command",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -n",
        "Illegal 'numeric' option with the 'add-service' command",
    );
}

#[test]
fn add_server_defaults_and_port_rule() {
    let (svc, s) = add_server("-a -t 10.0.0.1:80 -r 10.0.1.1");
    assert_eq!(svc, tcp("10.0.0.1", 80));
    assert_eq!(
        s,
        ServerOpts {
            addr: v4("10.0.1.1"),
            port: 80,
            forward: Forwarding::Dr,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0
        }
    );
    // DR and tunnel servers take the service's port whatever -r says.
    assert_eq!(add_server("-a -t 10.0.0.1:80 -r 10.0.1.1:8080").1.port, 80);
    assert_eq!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -i").1.port,
        80
    );
    assert_eq!(add_server("-a -r 10.0.1.1 -t 10.0.0.1:80").1.port, 80);
    // Not for fwmark services.
    assert_eq!(add_server("-a -f 1 -r 10.0.1.1").1.port, 0);
    assert_eq!(add_server("-a -f 1 -r 10.0.1.1:443").1.port, 443);
    assert_eq!(
        add_server("-a -t [fd00::1]:80 -r [fd00::2]:80").1.addr,
        "fd00::2".parse::<IpAddr>().unwrap()
    );
    assert!(add_server("-a -f 1 -6 -r fd00::2").1.addr.is_ipv6());
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1:x",
        "illegal real server address[:port] specified",
    );
    usage_err(
        "-a -t 10.0.0.1:80",
        "You need to supply the 'real-server' option for the 'add-server' command",
    );
    usage_err(
        "-a -r 10.0.1.1",
        "You need to supply the 'service-address' option for the 'add-server' command",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -s rr",
        "Illegal 'scheduler' option with the 'add-server' command",
    );
}

#[test]
fn weights_and_thresholds() {
    assert_eq!(add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -w 0").1.weight, 0);
    assert_eq!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -w 65535")
            .1
            .weight,
        65535
    );
    for bad in ["-1", "65536", "x", ""] {
        usage_err(
            &format!("-a -t 10.0.0.1:80 -r 10.0.1.1 --weight={bad}"),
            "illegal weight specified",
        );
    }
    let s = add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -x 2147483647 -y 7").1;
    assert_eq!((s.u_threshold, s.l_threshold), (2147483647, 7));
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -x 2147483648",
        "illegal u_threshold specified",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -y -1",
        "illegal l_threshold specified",
    );
    usage_err(
        "-d -t 10.0.0.1:80 -r 10.0.1.1 -w 1",
        "Illegal 'weight' option with the 'delete-server' command",
    );
}

#[test]
fn forwarding_methods() {
    assert_eq!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -g").1.forward,
        Forwarding::Dr
    );
    assert_eq!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 --ipip").1.forward,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Ipip,
            port: 0,
            csum: false
        })
    );
    let e = err("-a -t 10.0.0.1:80 -r 10.0.1.1 -m");
    assert_eq!(e.code, EXIT_USAGE);
    assert!(e
        .msg
        .contains("not supported: pmdlb forwards by direct routing or tunnel"));
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -g -i",
        "multiple 'forwarding-method' options specified",
    );
    usage_err(
        "-d -t 10.0.0.1:80 -r 10.0.1.1 -g",
        "Illegal 'forwarding-method' option with the 'delete-server' command",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r [fd00::1]:80",
        "Different address family is allowed only for tunneling servers",
    );
    usage_err(
        "-a -f 1 -r fd00::1",
        "Different address family is allowed only for tunneling servers",
    );
    let e = err("-a -t 10.0.0.1:80 -r fd00::1 -i");
    assert!(e.msg.contains("another address family"), "{e:?}");
}

#[test]
fn tunnel_options() {
    assert_eq!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gue --tun-port 6080")
            .1
            .forward,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Gue,
            port: 6080,
            csum: false
        })
    );
    assert_eq!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gue --tun-port 1 --tun-csum")
            .1
            .forward,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Gue,
            port: 1,
            csum: true
        })
    );
    assert!(matches!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gue --tun-port 5 --tun-nocsum")
            .1
            .forward,
        Forwarding::Tunnel(Tunnel { csum: false, .. })
    ));
    assert!(matches!(
        add_server("-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type ipip")
            .1
            .forward,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Ipip,
            ..
        })
    ));
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 --tun-type gue --tun-port 1",
        "Tunnel options conflict with forward method",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gue",
        "You need to supply the 'tun-port' option for the 'gue' tunnel type",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-port 6080",
        "Illegal 'tun-port' option with the 'ipip' tunnel type",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-csum",
        "Illegal 'tun-csum' option with the 'ipip' tunnel type",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gue --tun-port 1 --tun-nocsum --tun-csum",
        "The option 'tun-csum' conflicts with the 'tun-nocsum' option in the 'gue' tunnel type",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gre",
        "--tun-type gre (pmdlb tunnels are ipip and gue): not supported by pmdlb",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gue --tun-port 1 --tun-remcsum",
        "--tun-remcsum: not supported by pmdlb",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type vxlan",
        "illegal tunnel type specified",
    );
    usage_err(
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -i --tun-type gue --tun-port 0",
        "illegal tunnel port specified",
    );
}

#[test]
fn edit_and_delete_server() {
    assert!(matches!(
        ok("-e -t 10.0.0.1:80 -r 10.0.1.1 -w 0"),
        AdminCmd::Edit(Edit::EditServer {
            server: ServerOpts { weight: 0, .. },
            ..
        })
    ));
    assert_eq!(
        ok("-d -t 10.0.0.1:80 -r 10.0.1.1:99"),
        AdminCmd::Edit(Edit::DelServer {
            svc: tcp("10.0.0.1", 80),
            addr: v4("10.0.1.1"),
            port: 80
        })
    );
    usage_err(
        "-d -t 10.0.0.1:80",
        "You need to supply the 'real-server' option for the 'delete-server' command",
    );
    usage_err(
        "-e -t 10.0.0.1:80 -r 10.0.1.1 -r 10.0.1.2",
        "multiple 'real-server' options specified",
    );
}

#[test]
fn repeated_options() {
    usage_err(
        "-A -t 10.0.0.1:80 -t 10.0.0.2:80",
        "multiple 'service-address' options specified",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -f 1",
        "multiple 'service-address' options specified",
    );
    usage_err(
        "-A -t 10.0.0.1:80 -s rr -s wrr",
        "multiple 'scheduler' options specified",
    );
    usage_err("-L -n -n", "multiple 'numeric' options specified");
}

#[test]
fn the_command_comes_first() {
    let hint = AdminError::failed("Try `ipvsadm -h' or 'ipvsadm --help' for more information.");
    assert_eq!(err("-n -L"), hint);
    assert_eq!(err("-t 10.0.0.1:80 -A"), hint);
    assert_eq!(err("--bogus"), hint);
    assert_eq!(err("foo"), hint);
    usage_err("-A -t 10.0.0.1:80 -L", "invalid option `-L'");
    usage_err("-L -h", "invalid option `-h'");
    assert_eq!(
        err("-L --bogus"),
        AdminError::failed("--bogus: unknown option")
    );
    assert_eq!(err("-L -q"), AdminError::failed("-q: unknown option"));
    assert_eq!(err("-A -t"), AdminError::failed("-t: missing argument"));
    assert_eq!(
        err("-C --clear=1"),
        AdminError::failed("--clear=1: option does not take an argument")
    );
    // Leftover words before the command are still leftovers.
    usage_err("foo -L", "unexpected argument foo");
    usage_err("-L -n bar", "unexpected argument bar");
    usage_err("-L -- -n", "unexpected argument -n");
}

#[test]
fn help_version_clear_restore_save() {
    assert_eq!(ok("-h"), AdminCmd::Help);
    assert_eq!(ok("--help -L whatever"), AdminCmd::Help);
    assert_eq!(ok("-v"), AdminCmd::Version);
    assert_eq!(ok("-C"), AdminCmd::Edit(Edit::Clear));
    assert_eq!(ok("--clear"), AdminCmd::Edit(Edit::Clear));
    usage_err(
        "-C -t 10.0.0.1:80",
        "Illegal 'service-address' option with the 'flush' command",
    );
    assert_eq!(ok("-R"), AdminCmd::Restore);
    usage_err(
        "-R -n",
        "Illegal 'numeric' option with the 'restore' command",
    );
    assert_eq!(ok("-S"), AdminCmd::Save { numeric: false });
    assert_eq!(ok("--save -n"), AdminCmd::Save { numeric: true });
    usage_err(
        "-S --nosort",
        "Illegal 'nosort' option with the 'save' command",
    );
    usage_err(
        "-S -t 10.0.0.1:80",
        "Illegal 'service-address' option with the 'save' command",
    );
}

#[test]
fn zero_and_set() {
    assert_eq!(ok("-Z"), AdminCmd::Zero(None));
    assert_eq!(
        ok("--zero -t 10.0.0.1:80"),
        AdminCmd::Zero(Some(tcp("10.0.0.1", 80)))
    );
    usage_err("-Z -n", "Illegal 'numeric' option with the 'zero' command");
    assert_eq!(
        ok("--set 900 0 300"),
        AdminCmd::SetTimeouts {
            tcp: 900,
            tcpfin: 0,
            udp: 300
        }
    );
    usage_err("--set 900 120", "--set option requires 3 timeout values");
    usage_err("--set 900 120 300 7", "unexpected argument 7");
    usage_err("--set 900 x 300", "invalid timeout value `x' specified");
    usage_err(
        "--set 900 120 2678401",
        "invalid timeout value `2678401' specified",
    );
    usage_err(
        "--set 1 2 3 -n",
        "Illegal 'numeric' option with the 'set' command",
    );
}

#[test]
fn list_options() {
    let l = |s: &str| match ok(s) {
        AdminCmd::List { what, opts } => (what, opts),
        c => panic!("{c:?}"),
    };
    let (w, o) = l("-L -n --exact --stats --nosort");
    assert_eq!(w, ListWhat::All);
    assert!(o.numeric && o.exact && o.stats && o.nosort && !o.rate);
    assert!(l("-L --rate").1.rate);
    assert!(l("-L --thresholds").1.thresholds);
    assert!(l("-L --persistent-conn").1.persistent_conn);
    assert!(l("-L --tun-info").1.tun_info);
    assert!(l("-L -X").1.exact);
    assert_eq!(
        l("-L -t 10.0.0.1:80").0,
        ListWhat::Service(tcp("10.0.0.1", 80))
    );
    assert_eq!(l("-L -c").0, ListWhat::Connections);
    assert_eq!(l("-Lnc").0, ListWhat::Connections);
    assert_eq!(
        l("-L --connection --persistent-conn").0,
        ListWhat::Connections
    );
    assert_eq!(l("-L --timeout").0, ListWhat::Timeouts);
    usage_err(
        "-L -c --timeout",
        "The option 'timeout' conflicts with the 'connection' option in the 'list' command",
    );
    usage_err(
        "-L -t 10.0.0.1:80 -c",
        "The option 'service-address' conflicts with the 'connection' option in the 'list' command",
    );
    usage_err(
        "-L -t 10.0.0.1:80 --timeout",
        "The option 'timeout' conflicts with the 'service-address' option in the 'list' command",
    );
    usage_err("-L -c --stats", "options conflicts in the list command");
    usage_err(
        "-L --timeout --rate",
        "options conflicts in the list command",
    );
    usage_err(
        "-L --timeout --persistent-conn",
        "options conflicts in the list command",
    );
    usage_err(
        "-L -s rr",
        "Illegal 'scheduler' option with the 'list' command",
    );
    usage_err("-L -o", "Illegal 'ops' option with the 'list' command");
    assert_eq!(
        ok("-L --daemon"),
        AdminCmd::List {
            what: ListWhat::Daemon,
            opts: ListOpts::default()
        }
    );
    usage_err(
        "-L --daemon --stats",
        "options conflicts in the list command",
    );
}

#[test]
fn daemon_commands_are_refused() {
    usage_err(
        "--start-daemon foo",
        "illegal start-daemon parameter specified",
    );
    usage_err("--stop-daemon foo", "illegal start_daemon specified");
    let e = err("--start-daemon master --mcast-interface eth1 --syncid 3");
    assert_eq!(e.code, EXIT_USAGE);
    assert!(e.msg.contains("not supported"), "{e:?}");
    usage_err(
        "--stop-daemon backup --syncid 256",
        "illegal syncid specified",
    );
    usage_err(
        "--stop-daemon backup --mcast-interface eth0",
        "Illegal 'mcast-interface' option with the 'stop-daemon' command",
    );
}

#[test]
fn canonical_args_parse_back() {
    for line in [
        "-A -t 10.0.0.1:80",
        "-A -t 10.0.0.2:443 -s sh -p 300 -M 255.255.255.0 -b sh-port",
        "-E -u [fd00::1]:53 -s rr -p -M 64 -o",
        "-A -f 1 -s rr -p 360",
        "-A -f 2 -6 -s mh -b mh-fallback,mh-port",
        "-D --sctp-service 10.0.0.1:9",
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -w 0 -x 10 -y 5",
        "-e -f 1 -r 10.0.1.1:8080 -i --tun-type gue --tun-port 6080 --tun-csum",
        "-d -f 1 -6 -r [fd00::9]:0",
        "-C",
        "-L",
        "-L -t 10.0.0.1:80 -n --exact --stats --nosort",
        "-L -c --persistent-conn",
        "-L --timeout",
        "-Z -f 3",
        "--set 1 2 3",
        "-S -n",
        "-R",
        "-h",
        "-v",
    ] {
        let cmd = ok(line);
        let args = cmd.to_args();
        assert_eq!(parse(&args), Ok(cmd.clone()), "{line} -> {args:?}");
    }
}
