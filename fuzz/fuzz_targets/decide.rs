//! Fuzz target: any byte string, decided against a small service table with
//! every kind of service, must yield a verdict without panicking; forwarded
//! frames must keep their length and everything after the MAC addresses
//! unless a VLAN tag was rewritten.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pmdlb::dataplane::{decide, DecideCtx, TxVlan, Verdict};
use pmdlb::lb::flow::{FlowState, StateDrop, Target};
use pmdlb::lb::service::ServiceTable;
use pmdlb::lb::spec::{
    MarkRuleSpec, Persistence, PortRange, SchedFlags, SchedulerKind, ServiceAddr, ServiceSpec,
    VipSpec,
};
use pmdlb::lb::types::{Addr, FlowKey, RsId, ServiceId, TcpFlags};
use pmdlb::wire::ethernet::MacAddr;

/// A stand-in for the state layer: bounded maps, servers picked by port.
#[derive(Default)]
struct FuzzState {
    conns: HashMap<FlowKey, Target>,
    templates: HashMap<(ServiceId, Addr), Target>,
}

impl FlowState for FuzzState {
    fn assign(&mut self, svc: ServiceId, key: &FlowKey, tcp: Option<TcpFlags>) -> Result<Target, StateDrop> {
        if self.conns.len() > 4096 {
            self.conns.clear();
            self.templates.clear();
        }
        if let Some(t) = self.conns.get(key) {
            return Ok(*t);
        }
        if tcp.is_some_and(|f| !f.has(TcpFlags::SYN)) {
            return Err(StateDrop::TcpNotSyn);
        }
        let i = (key.cport % 3) as u8;
        let t = Target { rs: RsId(i as u32), mac: MacAddr([2, 0, 0, 0, 1, i]) };
        self.conns.insert(*key, t);
        self.templates.insert((svc, key.client), t);
        Ok(t)
    }
    fn lookup_conn(&self, key: &FlowKey) -> Option<Target> {
        self.conns.get(key).copied()
    }
    fn lookup_template(&self, svc: ServiceId, client: Addr) -> Option<Target> {
        self.templates.get(&(svc, client)).copied()
    }
}

fn table() -> &'static ServiceTable {
    static T: OnceLock<ServiceTable> = OnceLock::new();
    T.get_or_init(|| {
        let s = |addr, p: bool| ServiceSpec {
            addr,
            scheduler: SchedulerKind::Rr,
            sched_flags: SchedFlags::default(),
            persistence: p.then_some(Persistence { timeout_s: 300, prefix_len: 32 }),
            servers: vec![],
        };
        let v4: std::net::IpAddr = "10.0.0.100".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::64".parse().unwrap();
        ServiceTable::new(
            &[
                s(ServiceAddr::Addr { proto: 6, vip: v4, port: 80 }, false),
                s(ServiceAddr::Addr { proto: 17, vip: v4, port: 0 }, true),
                s(ServiceAddr::Addr { proto: 6, vip: v6, port: 443 }, false),
                s(ServiceAddr::Fwmark(1), true),
            ],
            &[MarkRuleSpec {
                dst: "10.0.0.0".parse().unwrap(),
                prefix_len: 24,
                proto: None,
                ports: vec![PortRange { lo: 1000, hi: 2000 }],
                mark: 1,
            }],
            &[
                VipSpec { addr: v4, answer_arp: true, answer_ping: true },
                VipSpec { addr: v6, answer_arp: true, answer_ping: true },
            ],
        )
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let tx_vlan = match sel % 3 {
        0 => TxVlan::Keep,
        1 => TxVlan::Set(7),
        _ => TxVlan::Untagged,
    };
    let ctx = DecideCtx {
        rx_mac: MacAddr([0x02, 0, 0, 0, 0, 0xaa]),
        tx_mac: MacAddr([0x02, 0, 0, 0, 0, 0xbb]),
        tx_vlan,
    };
    let mut frame = rest.to_vec();
    // Half the inputs get our MAC so the fuzzer reaches the IP layers fast.
    if sel & 0x80 != 0 && frame.len() >= 6 {
        frame[..6].copy_from_slice(ctx.rx_mac.as_bytes());
    }
    let mut st = FuzzState::default();
    match decide(&mut frame, &ctx, table(), &mut st) {
        Verdict::Forward { target, .. } => {
            assert_eq!(frame.len(), rest.len());
            assert_eq!(&frame[..6], target.mac.as_bytes());
            assert_eq!(&frame[6..12], ctx.tx_mac.as_bytes());
            if tx_vlan == TxVlan::Keep {
                assert_eq!(&frame[12..], &rest[12..]);
            }
        }
        Verdict::Reply { len } => assert!(len <= frame.len()),
        Verdict::Neighbour | Verdict::Drop(_) => {}
    }
});
