//! Tests of rule edits (with the kernel's errors) and of `-R`.

use super::*;
use crate::control::admin::args::{parse, EXIT_FAILED, EXIT_USAGE};
use crate::control::admin::format::save;
use crate::lb::spec::{Forwarding, SchedulerKind, Tunnel, TunnelKind};

fn edit(s: &str) -> Edit {
    let words: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
    match parse(&words) {
        Ok(AdminCmd::Edit(e)) => e,
        other => panic!("{s}: {other:?}"),
    }
}

fn run(specs: &mut Vec<ServiceSpec>, s: &str) -> Result<(), AdminError> {
    apply(specs, &edit(s))
}

fn fails(specs: &mut Vec<ServiceSpec>, s: &str, msg: &str) {
    let before = specs.clone();
    assert_eq!(run(specs, s), Err(AdminError::failed(msg)), "{s}");
    assert_eq!(*specs, before, "{s} changed the rules");
}

#[test]
fn service_errors() {
    let mut v = Vec::new();
    run(&mut v, "-A -t 10.0.0.1:80").unwrap();
    fails(&mut v, "-A -t 10.0.0.1:80 -s rr", "Service already exists");
    fails(&mut v, "-E -t 10.0.0.2:80", "No such service");
    fails(&mut v, "-D -u 10.0.0.1:80", "No such service");
    fails(
        &mut v,
        "-a -t 10.0.0.2:80 -r 10.0.1.1",
        "Service not defined",
    );
    fails(
        &mut v,
        "-e -t 10.0.0.2:80 -r 10.0.1.1",
        "Service not defined",
    );
    fails(
        &mut v,
        "-d -t 10.0.0.2:80 -r 10.0.1.1",
        "Service not defined",
    );
    fails(
        &mut v,
        "-e -t 10.0.0.1:80 -r 10.0.1.1",
        "No such destination",
    );
    fails(
        &mut v,
        "-d -t 10.0.0.1:80 -r 10.0.1.1",
        "No such destination",
    );
    run(&mut v, "-a -t 10.0.0.1:80 -r 10.0.1.1").unwrap();
    fails(
        &mut v,
        "-a -t 10.0.0.1:80 -r 10.0.1.1 -w 5",
        "Destination already exists",
    );
    // ip_vs_add_dest / ip_vs_edit_dest: l_threshold > u_threshold is ERANGE.
    fails(
        &mut v,
        "-a -t 10.0.0.1:80 -r 10.0.1.2 -x 5 -y 6",
        "Numerical result out of range",
    );
    fails(
        &mut v,
        "-e -t 10.0.0.1:80 -r 10.0.1.1 -y 1",
        "Numerical result out of range",
    );
    assert_eq!(
        run(&mut v, "-A -t 10.0.0.1:80").unwrap_err().code,
        EXIT_FAILED
    );
}

#[test]
fn edits_change_what_they_say() {
    let mut v = Vec::new();
    run(&mut v, "-A -t 10.0.0.1:80 -s rr -p 60").unwrap();
    run(&mut v, "-A -u 10.0.0.1:53 -s wrr -o").unwrap();
    run(&mut v, "-a -t 10.0.0.1:80 -r 10.0.1.1 -w 3 -x 9 -y 2").unwrap();
    run(&mut v, "-a -t 10.0.0.1:80 -r 10.0.1.2").unwrap();
    assert_eq!(v.len(), 2);
    assert_eq!(
        v[1].addr,
        ServiceAddr::Addr {
            proto: 17,
            vip: "10.0.0.1".parse().unwrap(),
            port: 53
        }
    );
    assert!(v[1].ops);
    let s = &v[0];
    assert_eq!(s.servers.len(), 2);
    assert_eq!(
        (
            s.servers[0].weight,
            s.servers[0].u_threshold,
            s.servers[0].l_threshold
        ),
        (3, 9, 2)
    );
    assert_eq!(s.servers[1].weight, 1);
    // -E replaces every service option and keeps the servers.
    run(&mut v, "-E -t 10.0.0.1:80 -s sh -b sh-port").unwrap();
    assert_eq!(v[0].scheduler, SchedulerKind::Sh);
    assert!(v[0].sched_flags.port);
    assert_eq!(v[0].persistence, None);
    assert_eq!(v[0].servers.len(), 2);
    // -e replaces the server's options, keeping config-only fields.
    v[0].servers[0].mac = Some(crate::wire::ethernet::MacAddr([2, 0, 0, 0, 0, 9]));
    run(&mut v, "-e -t 10.0.0.1:80 -r 10.0.1.1 -i -w 0").unwrap();
    let r = &v[0].servers[0];
    assert_eq!((r.weight, r.u_threshold, r.l_threshold), (0, 0, 0));
    assert!(matches!(r.forward, Forwarding::Tunnel(_)));
    assert!(r.mac.is_some());
    run(&mut v, "-d -t 10.0.0.1:80 -r 10.0.1.1").unwrap();
    assert_eq!(v[0].servers.len(), 1);
    run(&mut v, "-D -t 10.0.0.1:80").unwrap();
    assert_eq!(v.len(), 1);
    run(&mut v, "-C").unwrap();
    assert!(v.is_empty());
}

#[test]
fn fwmark_families() {
    let mut v = Vec::new();
    run(&mut v, "-A -f 1 -s rr").unwrap();
    // An empty fwmark service answers to either family...
    run(&mut v, "-a -f 1 -6 -r fd00::2").unwrap();
    // ...and then is the IPv6 one.
    assert!(fwmark_is_v6(&v[0]));
    fails(&mut v, "-a -f 1 -r 10.0.1.1", "Service not defined");
    fails(&mut v, "-E -f 1 -s wrr", "No such service");
    fails(&mut v, "-A -f 1 -6", "Service already exists");
    let e = run(&mut v, "-A -f 1 -s rr").unwrap_err();
    assert!(e.msg.contains("not supported by pmdlb"), "{e:?}");
    run(&mut v, "-E -f 1 -6 -s wrr").unwrap();
    assert_eq!(v[0].scheduler, SchedulerKind::Wrr);
    run(&mut v, "-d -f 1 -6 -r [fd00::2]:0").unwrap();
    // Empty again: the family comes from the persistence prefix, if any.
    assert!(!fwmark_is_v6(&v[0]));
    run(&mut v, "-E -f 1 -6 -p").unwrap();
    assert!(fwmark_is_v6(&v[0]));
    assert_eq!(selector_of(&v[0]), ServiceSel::Fwmark { mark: 1, v6: true });
}

#[test]
fn fwmark_server_ports_are_ignored() {
    let mut v = Vec::new();
    run(&mut v, "-A -f 5").unwrap();
    run(&mut v, "-a -f 5 -r 10.0.1.1:80").unwrap();
    fails(
        &mut v,
        "-a -f 5 -r 10.0.1.1:443",
        "Destination already exists",
    );
    run(&mut v, "-d -f 5 -r 10.0.1.1").unwrap();
}

const RULES: &str = "\
-A -t 10.0.0.1:80 -s wlc
-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 1
-a -t 10.0.0.1:80 -r 10.0.1.2:80 -g -w 0
-a -t 10.0.0.1:80 -r 10.0.1.3:80 -i -w 2 --tun-type ipip
-a -t 10.0.0.1:80 -r 10.0.1.4:80 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum
-A -t 10.0.0.2:0 -s sh -p 300 -M 255.255.255.0 -b sh-port
-a -t 10.0.0.2:0 -r 10.0.1.1:0 -g -w 100
-A -u 10.0.0.3:53 -s rr -o
-a -u 10.0.0.3:53 -r 10.0.1.1:53 -g -w 1
-A -t [fd00::1]:443 -s mh -p 60 -M 64 -b mh-fallback,mh-port
-a -t [fd00::1]:443 -r [fd00::2]:443 -g -w 7
-a -t [fd00::1]:443 -r [fd00::3]:443 -i -w 1 --tun-type gue --tun-port 5555 --tun-nocsum
-A -f 1 -s rr -p 360
-a -f 1 -r 10.0.1.1:0 -g -w 1
-A -f 2 -6 -s wrr -o
-a -f 2 -6 -r [fd00::2]:0 -g -w 1
-A -f 3 -6 -s lc -p 100 -M 48
";

#[test]
fn restore_round_trip() {
    let edits = parse_restore(RULES).unwrap();
    let specs = apply_all(&[], &edits).unwrap();
    assert_eq!(specs.len(), 7);
    let saved = save(&specs);
    assert_eq!(saved, RULES);
    let again = apply_all(&[], &parse_restore(&saved).unwrap()).unwrap();
    assert_eq!(again, specs);
    // Thresholds survive apply (ipvsadm-save leaves them out of -S).
    let with_x = apply_all(
        &specs,
        &parse_restore("-e -t 10.0.0.1:80 -r 10.0.1.1 -w 1 -x 50 -y 5").unwrap(),
    )
    .unwrap();
    assert_eq!(with_x[0].servers[0].u_threshold, 50);
    assert_eq!(save(&with_x), RULES);
    let t = &specs[0].servers[3].forward;
    assert_eq!(
        *t,
        Forwarding::Tunnel(Tunnel {
            kind: TunnelKind::Gue,
            port: 6080,
            csum: true
        })
    );
}

#[test]
fn restore_syntax() {
    let input = "\n# saved by ipvsadm-save\nipvsadm -A -t 10.0.0.1:80\n   \n\tipvsadm\n-a -t 10.0.0.1:80 -r 10.0.1.1\n";
    let edits = parse_restore(input).unwrap();
    assert_eq!(edits.len(), 2);
    let e = parse_restore("-A -t 10.0.0.1:80\n\n-a -t 10.0.0.1:80 -w 1 -r 10.0.1.1 -s rr\n")
        .unwrap_err();
    assert_eq!(
        e,
        AdminError::usage("line 3: Illegal 'scheduler' option with the 'add-server' command")
    );
    let e = parse_restore("-L -n\n").unwrap_err();
    assert_eq!(e.code, EXIT_USAGE);
    assert!(e.msg.starts_with("line 1: "), "{e:?}");
    let e = parse_restore("-C\n-R\n").unwrap_err();
    assert!(e.msg.starts_with("line 2: "), "{e:?}");
    assert_eq!(
        parse_restore("-A -t 10.0.0.1:80 -p bogus").unwrap_err().msg,
        "line 1: invalid timeout value `bogus' specified"
    );
}

#[test]
fn apply_all_is_all_or_nothing() {
    let base = apply_all(&[], &parse_restore("-A -t 10.0.0.1:80\n").unwrap()).unwrap();
    let edits = parse_restore(
        "-C\n-A -t 10.0.0.2:80\n-a -t 10.0.0.2:80 -r 10.0.1.1\n-a -t 10.0.0.2:80 -r 10.0.1.1\n",
    )
    .unwrap();
    let e = apply_all(&base, &edits).unwrap_err();
    assert_eq!(e.code, EXIT_FAILED);
    assert_eq!(
        e.msg,
        "-a -t 10.0.0.2:80 -r 10.0.1.1:80 -g -w 1: Destination already exists"
    );
    assert_eq!(base.len(), 1);
    // The ipvsadm-restore idiom: flush, then the saved rules.
    let mut flush_then = parse_restore("-C\n").unwrap();
    flush_then.extend(parse_restore(RULES).unwrap());
    let restored = apply_all(&base, &flush_then).unwrap();
    assert_eq!(save(&restored), RULES);
}
