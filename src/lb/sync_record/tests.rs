//! Records of connections and templates (normal, port-0 and fwmark
//! services, IPv4 and IPv6), what received records install, and what is
//! refused.

use super::*;
use crate::lb::spec::{
    Persistence, RealServerSpec, SchedFlags, SchedulerKind, ServiceSpec, Tunnel, TunnelKind,
};
use crate::wire::ipvs_sync::{Message, MessageBuilder};

const NOW: u64 = 1_000_000;

fn server(a: &str, forward: Forwarding) -> RealServerSpec {
    RealServerSpec {
        addr: a.parse().unwrap(),
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        mac: None,
        forward,
        via: None,
    }
}

fn service(addr: ServiceAddr, persistent: Option<u8>, rs: RealServerSpec) -> ServiceSpec {
    ServiceSpec {
        addr,
        scheduler: SchedulerKind::Rr,
        sched_flags: SchedFlags::default(),
        persistence: persistent.map(|prefix_len| Persistence {
            timeout_s: 360,
            prefix_len,
        }),
        ops: false,
        servers: vec![rs],
    }
}

fn vip(proto: u8, a: &str, port: u16) -> ServiceAddr {
    ServiceAddr::Addr {
        proto,
        vip: a.parse().unwrap(),
        port,
    }
}

const TUN: Forwarding = Forwarding::Tunnel(Tunnel {
    kind: TunnelKind::Ipip,
    port: 0,
    csum: false,
});

/// svc0 TCP :80 (rs0), svc1 TCP :443 persistent /24 (rs1), svc2 TCP port 0
/// persistent (rs2), svc3 fwmark 5 persistent /24 (rs3), svc4 UDP [v6]:53
/// tunnel (rs4), svc5 TCP [v6]:443 persistent /64 (rs5), svc6 fwmark 9
/// IPv6 persistent (rs6), svc7 SCTP :9 (rs7), svc8 UDP :53 not persistent
/// (rs8).
fn snapshot() -> Snapshot {
    let dr = Forwarding::Dr;
    Snapshot::new(&[
        service(vip(6, "192.168.0.10", 80), None, server("10.1.0.11", dr)),
        service(
            vip(6, "192.168.0.10", 443),
            Some(24),
            server("10.1.0.12", dr),
        ),
        service(vip(6, "192.168.0.20", 0), Some(32), server("10.1.0.13", dr)),
        service(ServiceAddr::Fwmark(5), Some(24), server("10.1.0.14", dr)),
        service(
            vip(17, "2001:db8::80", 53),
            None,
            server("2001:db8:1::b", TUN),
        ),
        service(
            vip(6, "2001:db8::80", 443),
            Some(64),
            server("2001:db8:1::c", dr),
        ),
        service(
            ServiceAddr::Fwmark(9),
            Some(128),
            server("2001:db8:1::d", dr),
        ),
        service(vip(132, "192.168.0.10", 9), None, server("10.1.0.15", dr)),
        service(vip(17, "192.168.0.10", 53), None, server("10.1.0.16", dr)),
    ])
}

fn ip(a: &str) -> Addr {
    Addr::from_ip(a.parse().unwrap()).1
}

fn flow(proto: u8, c: &str, cport: u16, v: &str, vport: u16) -> FlowKey {
    let (family, client) = Addr::from_ip(c.parse().unwrap());
    FlowKey::new(family, proto, client, cport, ip(v), vport)
}

fn conn(key: FlowKey, svc: u32, state: ConnState, left_ms: u64) -> ConnEntry {
    ConnEntry {
        key,
        state,
        flags: 0,
        svc: ServiceId(svc),
        rs: RsId(svc),
        tpl_slot: 0,
        expires: NOW + left_ms,
    }
}

fn template(svc: u32, client: &str, prefix: u8, refs: u32, left_ms: u64) -> TemplateEntry {
    TemplateEntry {
        key: TemplateKey::new(ServiceId(svc), ip(client), prefix),
        rs: RsId(svc),
        refs,
        expires: NOW + left_ms,
    }
}

fn addrs(c: &str, v: &str, d: &str) -> SyncAddrs {
    SyncAddrs::new(c.parse().unwrap(), v.parse().unwrap(), d.parse().unwrap()).unwrap()
}

/// The fields of a template record: `(protocol, vport, dport, fwmark, addrs)`.
fn tpl_fields(c: &SyncConn) -> (u8, u16, u16, u32, SyncAddrs) {
    (c.protocol, c.vport, c.dport, c.fwmark, c.addrs)
}

const TPL_DR: u32 = flags::TEMPLATE | flags::INACTIVE | flags::NOOUTPUT | flags::DROUTE;

#[test]
fn conn_states_are_ipvs_numbers() {
    for (n, s) in TCP_STATES.iter().enumerate() {
        assert_eq!(*s as u16, n as u16);
    }
    assert_eq!(ConnState::Established as u16, state::TCP_ESTABLISHED);
    assert_eq!(ConnState::SynRecv as u16, state::TCP_SYN_RECV);
    assert_eq!(ConnState::FinWait as u16, state::TCP_FIN_WAIT);
    assert_eq!(ConnState::Close as u16, state::TCP_CLOSE);
    assert_eq!(ConnState::SynAck as u16, state::TCP_SYNACK);
}

#[test]
fn tcp_connection_record() {
    let s = snapshot();
    let key = flow(6, "10.0.0.1", 50000, "192.168.0.10", 80);
    let rec = conn_record(&conn(key, 0, ConnState::Established, 899_001), &s, NOW).unwrap();
    assert_eq!(
        rec,
        SyncConn {
            protocol: 6,
            flags: flags::DROUTE | flags::NOOUTPUT,
            state: state::TCP_ESTABLISHED,
            cport: 50000,
            vport: 80,
            dport: 80,
            fwmark: 0,
            timeout: 900,
            addrs: addrs("10.0.0.1", "192.168.0.10", "10.1.0.11"),
            seq: None,
            pe: None,
        }
    );
    let syn = conn_record(&conn(key, 0, ConnState::SynRecv, 10), &s, NOW).unwrap();
    assert_eq!(syn.flags, flags::DROUTE | flags::NOOUTPUT | flags::INACTIVE);
    assert_eq!((syn.state, syn.timeout), (state::TCP_SYN_RECV, 1));
}

#[test]
fn udp_v6_tunnel_and_sctp_records() {
    let s = snapshot();
    let key = flow(17, "2001:db8::1", 5000, "2001:db8::80", 53);
    let rec = conn_record(&conn(key, 4, ConnState::Udp, 300_000), &s, NOW).unwrap();
    assert_eq!(rec.flags, flags::TUNNEL | flags::NOOUTPUT | flags::INACTIVE);
    assert_eq!((rec.state, rec.timeout), (state::UDP_NORMAL, 300));
    assert_eq!(
        rec.addrs,
        addrs("2001:db8::1", "2001:db8::80", "2001:db8:1::b")
    );
    let key = flow(132, "10.0.0.1", 7, "192.168.0.10", 9);
    let rec = conn_record(&conn(key, 7, ConnState::Udp, 1_000), &s, NOW).unwrap();
    assert_eq!(rec.state, state::SCTP_ESTABLISHED);
    let Ok(Install::Conn(c)) = install_of(&rec, &s, &Timeouts::default()) else {
        panic!("an SCTP record installs a connection");
    };
    assert_eq!((c.key, c.state), (key, ConnState::Udp));
}

#[test]
fn fwmark_connection_record_carries_the_mark() {
    let s = snapshot();
    let key = flow(6, "10.0.0.1", 40000, "192.168.0.30", 8443);
    let rec = conn_record(&conn(key, 3, ConnState::Established, 5_000), &s, NOW).unwrap();
    assert_eq!((rec.fwmark, rec.vport, rec.dport), (5, 8443, 8443));
    let Ok(Install::Conn(c)) = install_of(&rec, &s, &Timeouts::default()) else {
        panic!("installs a connection");
    };
    assert_eq!((c.svc, c.rs), (ServiceId(3), RsId(3)));
}

#[test]
fn template_key_of_a_normal_service() {
    let s = snapshot();
    let rec = template_record(&template(1, "10.0.0.77", 24, 0, 30_500), &s, NOW).unwrap();
    assert_eq!(
        tpl_fields(&rec),
        (
            6,
            443,
            443,
            0,
            addrs("10.0.0.0", "192.168.0.10", "10.1.0.12")
        )
    );
    assert_eq!(
        (rec.flags, rec.state, rec.cport),
        (TPL_DR, state::CTPL_NONE, 0)
    );
    assert_eq!(rec.timeout, 31);
    // With connections it lives at least the persistence timeout.
    let held = template_record(&template(1, "10.0.0.77", 24, 2, 0), &s, NOW).unwrap();
    assert_eq!(held.timeout, 360);
}

#[test]
fn template_key_of_a_port_zero_service() {
    let s = snapshot();
    let rec = template_record(&template(2, "10.0.0.5", 32, 1, 0), &s, NOW).unwrap();
    assert_eq!(
        tpl_fields(&rec),
        (6, 0, 0, 0, addrs("10.0.0.5", "192.168.0.20", "10.1.0.13"))
    );
}

#[test]
fn template_key_of_a_fwmark_service() {
    let s = snapshot();
    let rec = template_record(&template(3, "10.0.0.77", 24, 1, 0), &s, NOW).unwrap();
    assert_eq!(
        tpl_fields(&rec),
        (0, 0, 0, 5, addrs("10.0.0.0", "0.0.0.5", "10.1.0.14"))
    );
    assert_eq!(rec.flags, TPL_DR);
}

#[test]
fn template_keys_of_ipv6_services() {
    let s = snapshot();
    let rec = template_record(&template(5, "2001:db8:5:6:7::1", 64, 1, 0), &s, NOW).unwrap();
    assert_eq!(
        tpl_fields(&rec),
        (
            6,
            443,
            443,
            0,
            addrs("2001:db8:5:6::", "2001:db8::80", "2001:db8:1::c")
        )
    );
    let rec = template_record(&template(6, "2001:db8::1", 128, 1, 0), &s, NOW).unwrap();
    // The mark in the first 4 bytes of the address, as `.ip` of the union.
    assert_eq!(
        tpl_fields(&rec),
        (0, 0, 0, 9, addrs("2001:db8::1", "0:9::", "2001:db8:1::d"))
    );
}

#[test]
fn templates_install_under_their_key() {
    let s = snapshot();
    let t = Timeouts::default();
    for (svc, client, prefix) in [
        (1, "10.0.0.77", 24),
        (2, "10.0.0.5", 32),
        (3, "10.0.0.77", 24),
        (5, "2001:db8:5:6:7::1", 64),
        (6, "2001:db8::1", 128),
    ] {
        let tpl = template(svc, client, prefix, 0, 42_000);
        let rec = template_record(&tpl, &s, NOW).unwrap();
        let want = TemplateInstall {
            key: tpl.key,
            rs: tpl.rs,
            timeout_ms: 42_000,
        };
        assert_eq!(
            install_of(&rec, &s, &t),
            Ok(Install::Template(want)),
            "svc{svc}"
        );
    }
}

#[test]
fn received_template_client_is_masked_with_our_netmask() {
    let s = snapshot();
    let mut rec = template_record(&template(1, "10.0.0.77", 24, 1, 0), &s, NOW).unwrap();
    rec.addrs = addrs("10.0.0.77", "192.168.0.10", "10.1.0.12");
    let Ok(Install::Template(t)) = install_of(&rec, &s, &Timeouts::default()) else {
        panic!("installs a template");
    };
    assert_eq!(t.key.client, ip("10.0.0.0"));
}

#[test]
fn connections_round_trip_through_the_wire() {
    let s = snapshot();
    let t = Timeouts::default();
    let entries = [
        conn(
            flow(6, "10.0.0.1", 50000, "192.168.0.10", 80),
            0,
            ConnState::FinWait,
            120_000,
        ),
        conn(
            flow(6, "10.0.0.9", 1234, "192.168.0.20", 8080),
            2,
            ConnState::Established,
            5_000,
        ),
        conn(
            flow(17, "2001:db8::1", 5000, "2001:db8::80", 53),
            4,
            ConnState::Udp,
            300_000,
        ),
    ];
    let mut b = MessageBuilder::new(1, 1472);
    for e in &entries {
        b.push(&conn_record(e, &s, NOW).unwrap()).unwrap();
    }
    let bytes = b.take().unwrap();
    let m = Message::new_checked(&bytes[..]).unwrap();
    for (e, r) in entries.iter().zip(m.records()) {
        let want = ConnInstall {
            key: e.key,
            svc: e.svc,
            rs: e.rs,
            state: e.state,
            timeout_ms: e.expires - NOW,
            inactive: e.state != ConnState::Established,
        };
        let got = install_of(&r.to_conn().unwrap(), &s, &t);
        assert_eq!(got, Ok(Install::Conn(want)));
    }
}

#[test]
fn zero_timeout_takes_the_receivers_default() {
    let s = snapshot();
    let t = Timeouts::default();
    let key = flow(6, "10.0.0.1", 50000, "192.168.0.10", 80);
    let mut rec = conn_record(&conn(key, 0, ConnState::Established, 1), &s, NOW).unwrap();
    rec.timeout = 0;
    let Ok(Install::Conn(c)) = install_of(&rec, &s, &t) else {
        panic!("installs a connection");
    };
    assert_eq!(c.timeout_ms, t.tcp_established_s as u64 * 1000);
    let mut rec = template_record(&template(1, "10.0.0.7", 24, 1, 0), &s, NOW).unwrap();
    rec.timeout = 0;
    let Ok(Install::Template(tpl)) = install_of(&rec, &s, &t) else {
        panic!("installs a template");
    };
    assert_eq!(tpl.timeout_ms, DEFAULT_TEMPLATE_TIMEOUT_MS);
}

#[test]
fn service_lookup_order_is_fwmark_exact_port_zero() {
    let s = snapshot();
    let t = Timeouts::default();
    let key = flow(6, "10.0.0.1", 50000, "192.168.0.10", 80);
    let mut rec = conn_record(&conn(key, 0, ConnState::Established, 1_000), &s, NOW).unwrap();
    // A mark of a fwmark service wins over the exact service...
    rec.fwmark = 5;
    rec.addrs = addrs("10.0.0.1", "192.168.0.10", "10.1.0.14");
    let svc_of = |r: &SyncConn| match install_of(r, &s, &t) {
        Ok(Install::Conn(c)) => Ok(c.svc),
        Ok(Install::Template(_)) => panic!("not a template"),
        Err(e) => Err(e),
    };
    assert_eq!(svc_of(&rec), Ok(ServiceId(3)));
    // ...a mark without a service does not.
    rec.fwmark = 77;
    assert_eq!(svc_of(&rec), Err(NotInstalled::NoServer));
    rec.addrs = addrs("10.0.0.1", "192.168.0.10", "10.1.0.11");
    assert_eq!(svc_of(&rec), Ok(ServiceId(0)));
    // Any port of a VIP with a port-0 service.
    rec.addrs = addrs("10.0.0.1", "192.168.0.20", "10.1.0.13");
    rec.vport = 9999;
    assert_eq!(svc_of(&rec), Ok(ServiceId(2)));
}

#[test]
fn refused_records() {
    let s = snapshot();
    let t = Timeouts::default();
    let key = flow(6, "10.0.0.1", 50000, "192.168.0.10", 80);
    let good = conn_record(&conn(key, 0, ConnState::Established, 1_000), &s, NOW).unwrap();
    let refused = |f: &dyn Fn(&mut SyncConn)| {
        let mut r = good.clone();
        f(&mut r);
        install_of(&r, &s, &t).unwrap_err()
    };
    use NotInstalled::*;
    assert_eq!(
        refused(&|r| r.state = 11),
        State {
            proto: 6,
            state: 11
        }
    );
    assert_eq!(refused(&|r| r.protocol = 1), NoService);
    assert_eq!(
        refused(&|r| {
            r.protocol = 17;
            r.vport = 53;
            r.state = 1;
            r.addrs = addrs("10.0.0.1", "192.168.0.10", "10.1.0.16");
        }),
        State {
            proto: 17,
            state: 1
        }
    );
    assert_eq!(
        refused(&|r| r.addrs = addrs("10.0.0.1", "192.168.0.99", "10.1.0.11")),
        NoService
    );
    assert_eq!(
        refused(&|r| r.addrs = addrs("10.0.0.1", "192.168.0.10", "10.1.0.99")),
        NoServer
    );
    assert_eq!(refused(&|r| r.flags |= flags::TEMPLATE), NotPersistent);
    assert_eq!(
        refused(&|r| {
            r.pe = Some(crate::wire::ipvs_sync::PeOption {
                data: b"id".to_vec(),
                name: b"sip".to_vec(),
            })
        }),
        PersistenceEngine
    );
    // A fwmark service's record of another protocol: no state table.
    let mut icmp = good.clone();
    icmp.protocol = 1;
    icmp.fwmark = 5;
    icmp.addrs = addrs("10.0.0.1", "192.168.0.10", "10.1.0.14");
    assert_eq!(install_of(&icmp, &s, &t), Err(Protocol(1)));
}

#[test]
fn entries_not_sent() {
    let s = snapshot();
    let key = flow(6, "10.0.0.1", 50000, "192.168.0.10", 80);
    let mut e = conn(key, 0, ConnState::Established, 0);
    assert_eq!(conn_record(&e, &s, NOW), Err(NotSent::Expired));
    e.expires = NOW + 1;
    e.svc = ServiceId(99);
    assert_eq!(conn_record(&e, &s, NOW), Err(NotSent::NoService));
    let icmp = conn(
        flow(1, "10.0.0.1", 0, "192.168.0.30", 0),
        3,
        ConnState::Udp,
        9,
    );
    assert_eq!(conn_record(&icmp, &s, NOW), Err(NotSent::Protocol(1)));
    let tpl = template(0, "10.0.0.1", 32, 1, 0);
    assert_eq!(template_record(&tpl, &s, NOW), Err(NotSent::NotPersistent));
    let tpl = template(1, "10.0.0.1", 32, 0, 0);
    assert_eq!(template_record(&tpl, &s, NOW), Err(NotSent::Expired));
}
