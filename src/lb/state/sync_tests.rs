//! Tests of the worker's side of sync (`state::sync`): the send rule with
//! an injected clock, and installing received connections — counts,
//! adoption, moves and the full table.

use std::ops::ControlFlow;
use std::sync::Arc;

use super::tests::{counts, homed, setup, svc, tcp, udp, vip, worker_on, ACK, FIN, S0, SYN};
use super::*;
use crate::lb::conn::WINDOW;
use crate::lb::spec::{SchedulerKind, ServiceAddr, ServiceSpec};
use crate::lb::sync_record::ConnInstall;
use crate::lb::sync_ring::{Consumer, SyncRing};

fn udp_service(ops: bool) -> ServiceSpec {
    let mut spec = svc(vip(53), SchedulerKind::Rr, None, 2);
    spec.addr = ServiceAddr::Addr {
        proto: ip_proto::UDP,
        vip: "192.0.2.1".parse().unwrap(),
        port: 53,
    };
    spec.ops = ops;
    spec
}

/// A worker with sync on (IPVS's rule), its ring's consumer, the snapshot.
fn synced(specs: &[ServiceSpec], slots: usize) -> (WorkerState, Consumer<Outgoing>, Arc<Snapshot>) {
    let (mut w, snap) = setup(specs, StateFlags::default());
    let (p, c) = SyncRing::<Outgoing>::split(slots);
    w.enable_sync(p, SyncRule::default());
    (w, c, snap)
}

/// What one packet pushed (after the burst's flush).
fn packet(
    w: &mut WorkerState,
    c: &mut Consumer<Outgoing>,
    key: &FlowKey,
    tcp: Option<TcpFlags>,
) -> Vec<ConnEntry> {
    let _ = w.assign(S0, key, tcp);
    w.flush_sync();
    let mut got = Vec::new();
    c.drain(usize::MAX, |o| got.push(o.entry));
    got
}

fn record(key: FlowKey, rs: u32, state: ConnState, timeout_ms: u64) -> ConnInstall {
    ConnInstall {
        key,
        svc: S0,
        rs: RsId(rs),
        state,
        timeout_ms,
        inactive: state != ConnState::Established,
    }
}

/// The live entry of `key` and its deadline.
fn entry_of(w: &WorkerState, key: &FlowKey) -> Option<(ConnEntry, u64)> {
    let mut found = None;
    let mut at = Some(0);
    while let Some(from) = at {
        at = w.scan_live(from, 1 << 20, |e, d| {
            if e.key == *key {
                found = Some((*e, d));
            }
            ControlFlow::Continue(())
        });
    }
    found
}

#[test]
fn without_enable_sync_nothing_is_pushed_and_nothing_counted() {
    let (mut w, _snap) = setup(&[udp_service(false)], StateFlags::default());
    let k = udp([10, 0, 0, 1], 5000);
    for _ in 0..60 {
        w.assign(S0, &k, None).unwrap();
    }
    w.flush_sync();
    let c = w.counters();
    assert_eq!((c.sync_queued, c.sync_ring_full), (0, 0));
}

#[test]
fn udp_reports_on_the_3rd_and_53rd_packet_only() {
    let (mut w, mut c, _snap) = synced(&[udp_service(false)], 64);
    let k = udp([10, 0, 0, 1], 5000);
    let mut at = Vec::new();
    for n in 1..=102 {
        w.set_now(n * 10);
        let got = packet(&mut w, &mut c, &k, None);
        assert!(got.len() <= 1);
        if let Some(e) = got.first() {
            assert_eq!((e.key, e.state), (k, ConnState::Udp));
            at.push(n);
        }
    }
    assert_eq!(at, [3, 53]);
    assert_eq!(w.counters().sync_queued, 2);
}

#[test]
fn the_pushed_expiry_is_the_time_left() {
    let (mut w, mut c, _snap) = synced(&[udp_service(false)], 64);
    let k = udp([10, 0, 0, 1], 5000);
    w.set_now(1_000_000);
    packet(&mut w, &mut c, &k, None);
    packet(&mut w, &mut c, &k, None);
    w.set_now(1_000_500);
    let got = packet(&mut w, &mut c, &k, None);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].expires, 300_000, "ms left, not the deadline");
    assert_eq!(entry_of(&w, &k).unwrap().1, 1_300_500);
}

#[test]
fn tcp_reports_state_changes_at_once_and_the_threshold_count_in_sync_states() {
    let (mut w, mut c, _snap) = synced(&[svc(vip(80), SchedulerKind::Rr, None, 2)], 64);
    let k = tcp([10, 0, 0, 1], 1000, 80);
    assert!(
        packet(&mut w, &mut c, &k, SYN).is_empty(),
        "SYN_RECV: never"
    );
    assert!(
        packet(&mut w, &mut c, &k, SYN).is_empty(),
        "a SYN retransmission: SYN_RECV still"
    );
    // packet 3 would be the threshold, but SYN_RECV does not sync
    let est = packet(&mut w, &mut c, &k, ACK);
    assert_eq!(est.len(), 1, "into ESTABLISHED: at once");
    assert_eq!(est[0].state, ConnState::Established);
    assert_eq!(est[0].expires, 900_000);
    let mut at = Vec::new();
    for n in 4..=60 {
        if !packet(&mut w, &mut c, &k, ACK).is_empty() {
            at.push(n);
        }
    }
    assert_eq!(at, [53], "then on the count");
    let fin = packet(&mut w, &mut c, &k, FIN);
    assert_eq!(fin.len(), 1, "into FIN_WAIT: at once");
    assert_eq!(
        (fin[0].state, fin[0].expires),
        (ConnState::FinWait, 120_000)
    );
    assert!(packet(&mut w, &mut c, &k, ACK).is_empty(), "FIN_WAIT stays");
}

#[test]
fn tcp_threshold_in_established_after_a_plain_handshake() {
    let (mut w, mut c, _snap) = synced(&[svc(vip(80), SchedulerKind::Rr, None, 2)], 64);
    let k = tcp([10, 0, 0, 1], 1000, 80);
    let pushed: Vec<usize> = [SYN, ACK, ACK, ACK]
        .iter()
        .map(|f| packet(&mut w, &mut c, &k, *f).len())
        .collect();
    assert_eq!(pushed, [0, 1, 1, 0], "ESTABLISHED at once, then the 3rd");
}

#[test]
fn one_packet_service_never_reports() {
    let (mut w, mut c, _snap) = synced(&[udp_service(true)], 64);
    let k = udp([10, 0, 0, 1], 5000);
    for _ in 0..120 {
        assert!(packet(&mut w, &mut c, &k, None).is_empty());
    }
    assert_eq!(w.counters().ops_scheduled, 120);
    assert_eq!(w.counters().sync_queued, 0);
}

#[test]
fn a_full_ring_is_counted_and_never_waited_on() {
    let (mut w, mut c, _snap) = synced(&[udp_service(false)], 2);
    let keys: Vec<FlowKey> = (0..5).map(|i| udp([10, 0, 0, i], 5000)).collect();
    for _ in 0..3 {
        for k in &keys {
            w.assign(S0, k, None).unwrap();
        }
    }
    w.flush_sync();
    let cn = w.counters();
    assert_eq!((cn.sync_queued, cn.sync_ring_full), (2, 3));
    let mut got = Vec::new();
    c.drain(usize::MAX, |o| got.push(o.entry.key));
    assert_eq!(got, keys[..2], "the first two, in order");
    // room again: the next report goes through
    let k = udp([10, 0, 1, 1], 5000);
    for _ in 0..3 {
        w.assign(S0, &k, None).unwrap();
    }
    w.flush_sync();
    assert_eq!(c.len(), 1);
    assert_eq!(w.counters().sync_queued, 3);
}

#[test]
fn install_inserts_an_unadopted_entry_and_reports_nothing() {
    let (mut w, c, snap) = synced(&[svc(vip(80), SchedulerKind::Rr, None, 2)], 64);
    w.set_now(1000);
    let k = tcp([10, 0, 0, 1], 1000, 80);
    assert_eq!(
        w.install(&record(k, 1, ConnState::Established, 500_000)),
        Installed::Inserted
    );
    w.flush_sync();
    assert!(c.is_empty(), "installing reports nothing");
    let (e, deadline) = entry_of(&w, &k).unwrap();
    assert_eq!(
        (e.rs, e.state, deadline),
        (RsId(1), ConnState::Established, 501_000)
    );
    assert!(e.flags & F_SYNCED != 0 && !e.has_template());
    assert_eq!(counts(&snap, 1), (0, 0), "not counted before adoption");
    let cn = w.counters();
    assert_eq!((cn.sync_installed, cn.conn_created), (1, 0));
    assert_eq!(w.conn_count(), 1);
}

#[test]
fn a_synced_entry_forwards_a_non_syn_packet_to_its_server() {
    let (mut w, _c, snap) = synced(&[svc(vip(80), SchedulerKind::Rr, None, 2)], 64);
    let k = tcp([10, 0, 0, 1], 1000, 80);
    assert_eq!(
        w.assign(S0, &k, ACK),
        Err(StateDrop::TcpNotSyn),
        "sloppy_tcp off"
    );
    w.install(&record(k, 1, ConnState::Established, 900_000));
    // rr would give a new flow server 0 first: the entry decides
    let t = w.assign(S0, &k, ACK).unwrap();
    assert_eq!(t.rs, RsId(1));
    assert_eq!(w.lookup_conn(&k), Some(t));
    assert_eq!(counts(&snap, 1), (1, 0), "adopted: counted, active");
}

#[test]
fn adoption_counts_once_and_expiry_releases_once() {
    let (mut w, mut c, snap) = synced(&[svc(vip(80), SchedulerKind::Rr, None, 2)], 64);
    let k = tcp([10, 0, 0, 1], 1000, 80);
    w.install(&record(k, 0, ConnState::Established, 900_000));
    let mut pushed = 0;
    for _ in 0..50 {
        pushed += packet(&mut w, &mut c, &k, ACK).len();
    }
    assert_eq!(counts(&snap, 0), (1, 0));
    assert_eq!(w.counters().sync_adopted, 1);
    assert_eq!(
        pushed, 1,
        "an adopted entry reports by the rule: a period after its install"
    );
    // a state change of an adopted entry moves its count, as any entry's
    packet(&mut w, &mut c, &k, FIN);
    assert_eq!(counts(&snap, 0), (0, 1));
    w.set_now(120_000);
    assert_eq!(w.sweep(1 << 20), 1);
    assert_eq!(counts(&snap, 0), (0, 0));
}

#[test]
fn unadopted_entries_leave_the_counts_at_zero_when_they_end() {
    let flags = StateFlags {
        expire_nodest_conn: true,
        ..Default::default()
    };
    let (mut w, snap) = setup(&[svc(vip(80), SchedulerKind::Rr, None, 3)], flags);
    let a = tcp([10, 0, 0, 1], 1000, 80);
    let b = tcp([10, 0, 0, 2], 1000, 80);
    let z = tcp([10, 0, 0, 3], 1000, 80);
    w.install(&record(a, 0, ConnState::Established, 10_000));
    w.install(&record(b, 1, ConnState::FinWait, 900_000));
    w.install(&record(z, 2, ConnState::Established, 900_000));
    // the sweep expires one
    w.set_now(10_000);
    assert_eq!(w.sweep(1 << 20), 1);
    assert_eq!(counts(&snap, 0), (0, 0));
    // lazy expiry on a new connection's SYN: only the new one counts
    w.install(&record(a, 0, ConnState::Established, 1_000));
    w.set_now(20_000);
    let t = w.assign(S0, &a, SYN).unwrap();
    assert_eq!(counts(&snap, t.rs.0), (0, 1));
    // a removed server, with expire_nodest_conn: by the sweep and by a packet
    snap.remove(RsId(1));
    snap.remove(RsId(2));
    assert_eq!(w.assign(S0, &z, ACK), Err(StateDrop::DestRemoved));
    w.sweep(1 << 20);
    assert_eq!(counts(&snap, 1), (0, 0));
    assert_eq!(counts(&snap, 2), (0, 0));
    let cn = *w.counters();
    assert_eq!(
        w.conn_count() as u64,
        cn.conn_created + cn.sync_installed - cn.conn_expired
    );
}

#[test]
fn a_record_for_the_same_server_updates_state_and_keeps_the_later_expiry() {
    let (mut w, snap) = setup(
        &[svc(vip(80), SchedulerKind::Rr, None, 2)],
        StateFlags::default(),
    );
    let k = tcp([10, 0, 0, 1], 1000, 80);
    let t = w.assign(S0, &k, SYN).unwrap();
    w.assign(S0, &k, ACK).unwrap();
    assert_eq!(counts(&snap, t.rs.0), (1, 0));
    // shorter than what the entry has left: the entry's expiry stays
    assert_eq!(
        w.install(&record(k, t.rs.0, ConnState::FinWait, 1_000)),
        Installed::Updated
    );
    let (e, deadline) = entry_of(&w, &k).unwrap();
    assert_eq!((e.state, deadline), (ConnState::FinWait, 900_000));
    assert_eq!(
        counts(&snap, t.rs.0),
        (0, 0),
        "a peer carries the flow now: this worker no longer counts it"
    );
    assert_eq!(w.counters().sync_released, 1);
    // longer: the record's; still not counted here (and not released twice)
    w.set_now(100);
    w.install(&record(k, t.rs.0, ConnState::Established, 2_000_000));
    let (e, deadline) = entry_of(&w, &k).unwrap();
    assert_eq!((e.state, deadline), (ConnState::Established, 2_000_100));
    assert_eq!(counts(&snap, t.rs.0), (0, 0));
    assert_eq!(w.counters().sync_updated, 2);
    assert_eq!(w.counters().sync_released, 1);
    // the flow comes back here: the next packet adopts it again, once
    assert_eq!(w.assign(S0, &k, ACK).map(|x| x.rs), Ok(t.rs));
    w.assign(S0, &k, ACK).unwrap();
    assert_eq!(counts(&snap, t.rs.0), (1, 0));
    assert_eq!(w.counters().sync_adopted, 1);
    // it ends: released once
    w.set_now(3_000_000);
    assert_eq!(w.sweep(1 << 20), 1);
    assert_eq!(counts(&snap, t.rs.0), (0, 0));
    // an unadopted entry's update counts nothing
    let u = tcp([10, 0, 0, 2], 1000, 80);
    w.install(&record(u, 1, ConnState::Established, 5_000));
    w.install(&record(u, 1, ConnState::FinWait, 5_000));
    assert_eq!(entry_of(&w, &u).unwrap().0.state, ConnState::FinWait);
    assert_eq!(counts(&snap, 1), (0, 0));
    assert_eq!(w.counters().sync_released, 1);
}

#[test]
fn an_active_record_moves_an_entry_and_an_inactive_one_is_ignored() {
    let snap = Arc::new(Snapshot::new(&[svc(
        vip(80),
        SchedulerKind::Rr,
        Some((300, 32)),
        2,
    )]));
    let pt = Arc::new(PersistTable::new(64, 1, 1));
    let mut w = worker_on(&snap, &pt, StateFlags::default(), 1024);
    let k = tcp([10, 0, 0, 1], 1000, 80);
    let t = w.assign(S0, &k, SYN).unwrap();
    w.assign(S0, &k, ACK).unwrap();
    let (e, _) = entry_of(&w, &k).unwrap();
    assert!(e.has_template());
    assert_eq!(pt.refs_of(e.tpl_slot), 1);
    let other = 1 - t.rs.0;
    // inactive and disagreeing: the end of a connection already replaced
    assert_eq!(
        w.install(&record(k, other, ConnState::FinWait, 9_000)),
        Installed::Ignored
    );
    assert_eq!(entry_of(&w, &k).unwrap().0.rs, t.rs);
    // active: the peer's server wins
    assert_eq!(
        w.install(&record(k, other, ConnState::Established, 9_000)),
        Installed::Moved
    );
    let (m, deadline) = entry_of(&w, &k).unwrap();
    assert_eq!((m.rs, deadline), (RsId(other), 9_000));
    assert!(!m.has_template() && m.flags & F_SYNCED != 0);
    assert_eq!(pt.refs_of(e.tpl_slot), 0, "its template reference released");
    assert_eq!(counts(&snap, t.rs.0), (0, 0), "the old server released");
    assert_eq!(
        counts(&snap, other),
        (0, 0),
        "the new one counts on adoption"
    );
    assert_eq!(w.assign(S0, &k, ACK).unwrap().rs, RsId(other));
    assert_eq!(counts(&snap, other), (1, 0));
    let cn = w.counters();
    assert_eq!((cn.sync_ignored, cn.sync_moved, cn.sync_adopted), (1, 1, 1));
}

#[test]
fn a_full_window_refuses_the_record_and_evicts_nothing() {
    let snap = Arc::new(Snapshot::new(&[svc(vip(80), SchedulerKind::Rr, None, 2)]));
    let pt = Arc::new(PersistTable::new(64, 1, 1));
    let mut w = worker_on(&snap, &pt, StateFlags::default(), 8);
    let keys = homed(&w, 3, WINDOW + 1, |i| {
        tcp([10, 0, (i >> 8) as u8, i as u8], 1, 80)
    });
    for k in &keys[..WINDOW] {
        w.assign(S0, k, SYN).unwrap(); // embryonic, yet never evicted
    }
    let r = record(keys[WINDOW], 0, ConnState::Established, 9_000);
    assert_eq!(w.install(&r), Installed::Full);
    assert_eq!(w.counters().sync_install_full, 1);
    assert_eq!(w.conn_count(), WINDOW);
    // expired lines are reclaimed for it
    w.set_now(60_000);
    assert_eq!(w.install(&r), Installed::Inserted);
    assert_eq!(w.conn_count(), WINDOW);
    assert_eq!(w.counters().conn_expired, 1);
}

#[test]
fn records_for_unknown_services_or_servers_are_invalid() {
    let (mut w, _snap) = setup(
        &[
            svc(vip(80), SchedulerKind::Rr, None, 2),
            svc(vip(443), SchedulerKind::Rr, None, 2),
        ],
        StateFlags::default(),
    );
    let k = tcp([10, 0, 0, 1], 1000, 80);
    let mut r = record(k, 7, ConnState::Established, 9_000);
    assert_eq!(w.install(&r), Installed::Invalid, "no such server");
    r.rs = RsId(2);
    assert_eq!(
        w.install(&r),
        Installed::Invalid,
        "another service's server"
    );
    r.svc = ServiceId(9);
    assert_eq!(w.install(&r), Installed::Invalid, "no such service");
    assert_eq!(w.counters().sync_invalid, 3);
    assert_eq!(w.conn_count(), 0);
}
