//! The service table: virtual services, mark rules and VIPs of one
//! configuration snapshot, built once and looked up per packet.
//!
//! Lookup order is IPVS's (`ip_vs_service_find`): if a mark rule matches the
//! packet and a fwmark service exists for that mark, that service; else the
//! exact `(proto, VIP, port)` service; else the VIP's port-0 service for that
//! protocol. A mark with no fwmark service is no service: lookup falls
//! through to the address services, as IPVS does for a marked packet whose
//! mark is not a virtual service.
//!
//! Mark rules behave like a chain of `iptables -j MARK --set-mark` rules:
//! MARK does not stop the chain, so when several rules match, the **last**
//! matching rule (in configuration order) sets the mark.
//!
//! Everything is hashed at construction: exact services in one map, mark
//! rules per (prefix, prefix length, protocol) bucket with single ports in a
//! second map and wide port ranges in a short per-bucket list. Per packet a
//! lookup costs one hash probe per distinct mark-rule prefix length of the
//! family (none without mark rules) plus one or two probes for the address
//! services. Nothing allocates after construction.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::lb::spec::{MarkRuleSpec, ServiceAddr, ServiceSpec, VipSpec};
use crate::lb::types::{ip_proto, Addr, Family, ServiceId};

/// A small multiply-rotate hasher for the fixed-size keys of this table
/// (no allocation, no per-process seed: keys come from configuration, not
/// from packets an attacker could choose to collide).
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

const K: u64 = 0x517c_c1b7_2722_0a95;

impl Hasher for FastHasher {
    #[inline]
    fn finish(&self) -> u64 {
        // Final avalanche: hashbrown takes the bucket from the low bits and
        // the control byte from the top 7. A 64-bit multiply only carries
        // low bits upwards, so keys differing in high bits (IPv6 VIPs
        // 2001:db8:N::1, protocols in the meta word) shared a few buckets;
        // folding the 128-bit product brings every bit to both ends.
        let h = self.0 ^ (self.0 >> 32);
        let r = (h as u128).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (r as u64) ^ ((r >> 64) as u64)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(K);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// An address as two words plus family, protocol/port meta: the key shape
/// of every map here (hashes as three `u64` writes).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Key {
    hi: u64,
    lo: u64,
    /// family (bit 40) | prefix len (bits 32..40) | proto-or-any (bits 16..25) | port (0..16)
    meta: u64,
}

impl Hash for Key {
    /// One pre-mixed word: a single hasher round per lookup. Equality still
    /// compares all fields, so folding only costs collisions, not matches.
    #[inline(always)]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hi ^ self.lo.rotate_left(23) ^ self.meta.rotate_left(32));
    }
}

const ANY_PROTO: u16 = 0x100;

#[inline(always)]
fn key(family: Family, addr: &Addr, plen: u8, proto: u16, port: u16) -> Key {
    let a = &addr.0;
    Key {
        hi: u64::from_ne_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]),
        lo: u64::from_ne_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]),
        meta: ((matches!(family, Family::V6) as u64) << 40)
            | ((plen as u64) << 32)
            | ((proto as u64) << 16)
            | port as u64,
    }
}

/// What pmdlb does for one of its virtual addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipInfo {
    /// Answer ARP / neighbour solicitations for it.
    pub answer_arp: bool,
    /// Answer echo requests to it.
    pub answer_ping: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Bucket {
    /// Highest rule index matching any port here.
    any: Option<u32>,
    /// Wide port ranges: `ranges[start..start+len]`.
    range_start: u32,
    range_len: u32,
    /// Whether single-port entries exist for this bucket.
    has_ports: bool,
}

/// Port ranges wider than this go to the per-bucket range list instead of
/// being expanded into the single-port map.
const EXPAND_LIMIT: u32 = 256;

/// Errors building a service table; each names what to fix in the config.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceTableError {
    /// Two services with the same address.
    #[error("service {0} is defined twice; remove one of them")]
    DuplicateService(String),
    /// Two fwmark services with the same mark.
    #[error("fwmark service {0} is defined twice; remove one of them")]
    DuplicateFwmark(u32),
    /// A service with a protocol pmdlb cannot balance.
    #[error("service {0}: protocol {1} is not supported; use tcp (6), udp (17) or sctp (132)")]
    BadProtocol(String, u8),
    /// A mark rule prefix longer than its address family allows.
    #[error("mark rule {index} ({dst}/{prefix_len}): prefix length is longer than the address ({max} bits)")]
    BadPrefix {
        /// Position of the rule in the configuration.
        index: usize,
        /// Its destination.
        dst: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
        /// Maximum for the family.
        max: u8,
    },
    /// A port range whose first port is above its last.
    #[error("mark rule {index}: port range {lo}-{hi} is reversed; write it as {hi}-{lo}")]
    ReversedPorts {
        /// Position of the rule in the configuration.
        index: usize,
        /// First port given.
        lo: u16,
        /// Last port given.
        hi: u16,
    },
    /// A VIP listed twice.
    #[error("VIP {0} is listed twice; keep one entry")]
    DuplicateVip(IpAddr),
    /// More services or rules than ids can hold.
    #[error("too many services or mark rules (more than 2^31)")]
    TooMany,
}

/// The lookup structure of one configuration snapshot.
#[derive(Debug, Clone, Default)]
pub struct ServiceTable {
    exact: FastMap<Key, ServiceId>,
    fwmark: FastMap<u32, ServiceId>,
    vips: FastMap<Key, VipInfo>,
    /// Candidate persistent services for non-first fragments, per VIP.
    frag_candidates: Vec<ServiceId>,
    frag_ranges: FastMap<Key, (u32, u32)>,
    buckets: FastMap<Key, Bucket>,
    port_rules: FastMap<Key, u32>,
    ranges: Vec<(u16, u16, u32)>,
    rule_marks: Vec<u32>,
    /// Distinct mark-rule prefix lengths, per family (v4, v6).
    plens_v4: Vec<u8>,
    plens_v6: Vec<u8>,
    n_services: usize,
    /// Names this build of the table: distinct for every table built
    /// ([`ServiceTable::with_ids`]; 0 for the empty default), shared by its
    /// clones. A memo of lookups keyed by it cannot outlive a change.
    id: u64,
}

fn service_name(a: &ServiceAddr) -> String {
    match a {
        ServiceAddr::Addr { proto, vip, port } => {
            let p = match *proto {
                ip_proto::TCP => "tcp".to_string(),
                ip_proto::UDP => "udp".to_string(),
                ip_proto::SCTP => "sctp".to_string(),
                o => format!("proto {o}"),
            };
            match vip {
                IpAddr::V4(v) => format!("{p} {v}:{port}"),
                IpAddr::V6(v) => format!("{p} [{v}]:{port}"),
            }
        }
        ServiceAddr::Fwmark(m) => format!("fwmark {m}"),
    }
}

impl ServiceTable {
    /// Builds the table. `ServiceId(i)` is `services[i]` (the ids of a
    /// first snapshot, `lb::snapshot`). VIPs are the addresses in `vips`
    /// plus every address a service uses (those answer neither ARP nor
    /// ping unless listed in `vips`).
    pub fn new(
        services: &[ServiceSpec],
        rules: &[MarkRuleSpec],
        vips: &[VipSpec],
    ) -> Result<Self, ServiceTableError> {
        let ids: Vec<ServiceId> = (0..services.len() as u32).map(ServiceId).collect();
        ServiceTable::with_ids(services, &ids, rules, vips)
    }

    /// Builds the table with `ids[i]` as the id of `services[i]`: the ids
    /// the snapshot gave them (after a run-time change a service's id is
    /// its stable identity, not its position). `ids` has one id per service.
    pub fn with_ids(
        services: &[ServiceSpec],
        ids: &[ServiceId],
        rules: &[MarkRuleSpec],
        vips: &[VipSpec],
    ) -> Result<Self, ServiceTableError> {
        if services.len() > i32::MAX as usize || rules.len() > i32::MAX as usize {
            return Err(ServiceTableError::TooMany);
        }
        assert_eq!(ids.len(), services.len(), "one id per service");
        // 1, 2, …: a table is built by the control plane, never per packet
        static BUILT: AtomicU64 = AtomicU64::new(1);
        let mut t = ServiceTable {
            n_services: services.len(),
            id: BUILT.fetch_add(1, Ordering::Relaxed),
            ..Default::default()
        };
        for (s, &id) in services.iter().zip(ids) {
            match &s.addr {
                ServiceAddr::Addr { proto, vip, port } => {
                    if !matches!(*proto, ip_proto::TCP | ip_proto::UDP | ip_proto::SCTP) {
                        return Err(ServiceTableError::BadProtocol(
                            service_name(&s.addr),
                            *proto,
                        ));
                    }
                    let (fam, a) = Addr::from_ip(*vip);
                    let k = key(fam, &a, 0, *proto as u16, *port);
                    if t.exact.insert(k, id).is_some() {
                        return Err(ServiceTableError::DuplicateService(service_name(&s.addr)));
                    }
                }
                ServiceAddr::Fwmark(m) => {
                    if t.fwmark.insert(*m, id).is_some() {
                        return Err(ServiceTableError::DuplicateFwmark(*m));
                    }
                }
            }
        }
        for (index, r) in rules.iter().enumerate() {
            t.add_rule(index, r)?;
        }
        t.plens_v4.sort_unstable_by(|a, b| b.cmp(a));
        t.plens_v6.sort_unstable_by(|a, b| b.cmp(a));

        // VIPs: listed ones first (their flags), then service addresses.
        let mut vip_list: Vec<(Family, Addr, bool, bool)> = Vec::new();
        let mut seen: FastMap<Key, ()> = FastMap::default();
        for v in vips {
            let (fam, a) = Addr::from_ip(v.addr);
            if seen.insert(key(fam, &a, 0, 0, 0), ()).is_some() {
                return Err(ServiceTableError::DuplicateVip(v.addr));
            }
            vip_list.push((fam, a, v.answer_arp, v.answer_ping));
        }
        for s in services {
            if let ServiceAddr::Addr { vip, .. } = &s.addr {
                let (fam, a) = Addr::from_ip(*vip);
                if seen.insert(key(fam, &a, 0, 0, 0), ()).is_none() {
                    vip_list.push((fam, a, false, false));
                }
            }
        }
        // Non-first fragment candidates: persistent fwmark services whose
        // rules cover the VIP, then the VIP's persistent address services.
        let mut fw_rules = Vec::new();
        for r in rules {
            if let Some(&id) = t.fwmark.get(&r.mark) {
                let i = ids.iter().position(|&x| x == id).expect("an id of ours");
                if services[i].persistence.is_some() {
                    let (rf, ra) = Addr::from_ip(r.dst);
                    fw_rules.push((rf, ra.masked(r.prefix_len), r.prefix_len, r.proto, id));
                }
            }
        }
        let mut addr_persistent: FastMap<Key, Vec<ServiceId>> = FastMap::default();
        for (s, &id) in services.iter().zip(ids) {
            if let (ServiceAddr::Addr { proto, vip, .. }, Some(_)) = (&s.addr, s.persistence) {
                let (fam, a) = Addr::from_ip(*vip);
                addr_persistent
                    .entry(key(fam, &a, 0, *proto as u16, 0))
                    .or_default()
                    .push(id);
            }
        }
        for (fam, a, answer_arp, answer_ping) in vip_list {
            for proto in [ip_proto::TCP, ip_proto::UDP, ip_proto::SCTP] {
                let start = t.frag_candidates.len();
                for &(rf, ref ra, plen, rproto, id) in &fw_rules {
                    if rf == fam
                        && a.masked(plen) == *ra
                        && rproto.map_or(true, |p| p == proto)
                        && !t.frag_candidates[start..].contains(&id)
                    {
                        t.frag_candidates.push(id);
                    }
                }
                let k = key(fam, &a, 0, proto as u16, 0);
                if let Some(ids) = addr_persistent.get(&k) {
                    t.frag_candidates.extend_from_slice(ids);
                }
                let len = t.frag_candidates.len() - start;
                if len > 0 {
                    t.frag_ranges.insert(k, (start as u32, len as u32));
                }
            }
            t.vips.insert(
                key(fam, &a, 0, 0, 0),
                VipInfo {
                    answer_arp,
                    answer_ping,
                },
            );
        }
        Ok(t)
    }

    fn add_rule(&mut self, index: usize, r: &MarkRuleSpec) -> Result<(), ServiceTableError> {
        let (fam, a) = Addr::from_ip(r.dst);
        let max = if fam == Family::V4 { 32 } else { 128 };
        if r.prefix_len > max {
            return Err(ServiceTableError::BadPrefix {
                index,
                dst: r.dst,
                prefix_len: r.prefix_len,
                max,
            });
        }
        for p in &r.ports {
            if p.lo > p.hi {
                return Err(ServiceTableError::ReversedPorts {
                    index,
                    lo: p.lo,
                    hi: p.hi,
                });
            }
        }
        let idx = index as u32;
        self.rule_marks.push(r.mark);
        let plens = if fam == Family::V4 {
            &mut self.plens_v4
        } else {
            &mut self.plens_v6
        };
        if !plens.contains(&r.prefix_len) {
            plens.push(r.prefix_len);
        }
        let masked = a.masked(r.prefix_len);
        // Ports only exist for port protocols: a rule with ports and no
        // protocol covers TCP, UDP and SCTP.
        let protos: &[u16] = match (r.proto, r.ports.is_empty()) {
            (Some(p), _) => &[p as u16][..],
            (None, true) => &[ANY_PROTO][..],
            (None, false) => &[6, 17, 132][..],
        };
        // Protocol numbers are u8; build an owned copy to satisfy lifetimes.
        let protos: Vec<u16> = protos.to_vec();
        for proto in protos {
            let bk = key(fam, &masked, r.prefix_len, proto, 0);
            let mut b = self.buckets.get(&bk).copied().unwrap_or_default();
            if r.ports.is_empty() {
                b.any = Some(idx);
            } else {
                for p in &r.ports {
                    if (p.hi as u32 - p.lo as u32) < EXPAND_LIMIT {
                        for port in p.lo..=p.hi {
                            self.port_rules
                                .insert(key(fam, &masked, r.prefix_len, proto, port), idx);
                        }
                        b.has_ports = true;
                    } else {
                        // Keep each bucket's ranges contiguous: move them to the end.
                        let old = b.range_start as usize..(b.range_start + b.range_len) as usize;
                        let mut mine: Vec<_> = self.ranges[old].to_vec();
                        mine.push((p.lo, p.hi, idx));
                        b.range_start = self.ranges.len() as u32;
                        b.range_len = mine.len() as u32;
                        self.ranges.extend(mine);
                    }
                }
            }
            self.buckets.insert(bk, b);
        }
        Ok(())
    }

    /// Number of services.
    #[inline]
    pub fn len(&self) -> usize {
        self.n_services
    }

    /// Whether there are no services.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.n_services == 0
    }

    /// The mark the mark rules give a packet, if any rule matches.
    #[inline]
    pub fn mark(&self, family: Family, proto: u8, dst: &Addr, dport: u16) -> Option<u32> {
        let plens = match family {
            Family::V4 => &self.plens_v4,
            Family::V6 => &self.plens_v6,
        };
        if plens.is_empty() {
            return None;
        }
        let mut best: Option<u32> = None;
        for &plen in plens {
            let m = dst.masked(plen);
            for p in [proto as u16, ANY_PROTO] {
                let Some(b) = self.buckets.get(&key(family, &m, plen, p, 0)) else {
                    continue;
                };
                best = best.max(b.any);
                let start = b.range_start as usize;
                let end = start + b.range_len as usize;
                if let Some(rs) = self.ranges.get(start..end) {
                    for &(lo, hi, idx) in rs {
                        if lo <= dport && dport <= hi {
                            best = best.max(Some(idx));
                        }
                    }
                }
                if b.has_ports {
                    if let Some(&idx) = self.port_rules.get(&key(family, &m, plen, p, dport)) {
                        best = best.max(Some(idx));
                    }
                }
            }
        }
        best.and_then(|i| self.rule_marks.get(i as usize).copied())
    }

    /// What names this build of the table (see the field): two tables with
    /// the same id give the same answer to every lookup.
    #[inline(always)]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The service of a packet: mark rules, then `(proto, dst, dport)`, then
    /// `(proto, dst, 0)`.
    #[inline]
    pub fn lookup(&self, family: Family, proto: u8, dst: &Addr, dport: u16) -> Option<ServiceId> {
        if let Some(mark) = self.mark(family, proto, dst, dport) {
            if let Some(&id) = self.fwmark.get(&mark) {
                return Some(id);
            }
        }
        if let Some(&id) = self.exact.get(&key(family, dst, 0, proto as u16, dport)) {
            return Some(id);
        }
        if dport != 0 {
            return self
                .exact
                .get(&key(family, dst, 0, proto as u16, 0))
                .copied();
        }
        None
    }

    /// The fwmark service for `mark`, if any.
    #[inline]
    pub fn fwmark_service(&self, mark: u32) -> Option<ServiceId> {
        self.fwmark.get(&mark).copied()
    }

    /// Whether `addr` is one of pmdlb's VIPs, and what to answer for it.
    #[inline]
    pub fn vip(&self, family: Family, addr: &Addr) -> Option<VipInfo> {
        self.vips.get(&key(family, addr, 0, 0, 0)).copied()
    }

    /// Persistent services a non-first fragment of protocol `proto` to
    /// `vip` may belong to: fwmark services whose mark rules cover the VIP
    /// and protocol, then the VIP's address services of that protocol.
    /// Empty for unknown addresses or when none is persistent.
    #[inline]
    pub fn fragment_candidates(&self, family: Family, proto: u8, vip: &Addr) -> &[ServiceId] {
        match self.frag_ranges.get(&key(family, vip, 0, proto as u16, 0)) {
            Some(&(s, l)) => self
                .frag_candidates
                .get(s as usize..(s + l) as usize)
                .unwrap_or(&[]),
            None => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lb::spec::{Persistence, PortRange, SchedFlags, SchedulerKind};

    fn svc(addr: ServiceAddr, persistent: bool) -> ServiceSpec {
        ServiceSpec {
            ops: false,
            addr,
            scheduler: SchedulerKind::Wlc,
            sched_flags: SchedFlags::default(),
            persistence: persistent.then_some(Persistence {
                timeout_s: 300,
                prefix_len: 32,
            }),
            servers: vec![],
        }
    }

    fn a(proto: u8, vip: &str, port: u16) -> ServiceAddr {
        ServiceAddr::Addr {
            proto,
            vip: vip.parse().unwrap(),
            port,
        }
    }

    fn rule(
        dst: &str,
        plen: u8,
        proto: Option<u8>,
        ports: &[(u16, u16)],
        mark: u32,
    ) -> MarkRuleSpec {
        MarkRuleSpec {
            dst: dst.parse().unwrap(),
            prefix_len: plen,
            proto,
            ports: ports.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect(),
            mark,
        }
    }

    fn ad(s: &str) -> (Family, Addr) {
        Addr::from_ip(s.parse().unwrap())
    }

    #[test]
    fn exact_then_port_zero() {
        let t = ServiceTable::new(
            &[
                svc(a(6, "10.0.0.100", 80), false),
                svc(a(6, "10.0.0.100", 0), false),
                svc(a(17, "10.0.0.100", 53), false),
            ],
            &[],
            &[],
        )
        .unwrap();
        let (f, v) = ad("10.0.0.100");
        assert_eq!(t.lookup(f, 6, &v, 80), Some(ServiceId(0)));
        assert_eq!(t.lookup(f, 6, &v, 443), Some(ServiceId(1)));
        assert_eq!(t.lookup(f, 17, &v, 53), Some(ServiceId(2)));
        assert_eq!(t.lookup(f, 17, &v, 54), None);
        let (f2, other) = ad("10.0.0.101");
        assert_eq!(t.lookup(f2, 6, &other, 80), None);
        assert!(t.vip(f, &v).is_some());
        assert!(t.vip(f2, &other).is_none());
        assert_eq!(t.len(), 3);
    }

    /// After a run-time change the snapshot's ids are identities, not
    /// positions: the lookup answers the ids it was given, fwmark and
    /// port-0 services included.
    #[test]
    fn with_ids_answers_the_given_ids() {
        let ids = [ServiceId(257), ServiceId(3), ServiceId(0)];
        let t = ServiceTable::with_ids(
            &[
                svc(a(17, "10.0.0.100", 53), false),
                svc(ServiceAddr::Fwmark(1), true),
                svc(a(6, "10.0.0.100", 0), false),
            ],
            &ids,
            &[rule("10.0.0.100", 32, Some(6), &[(80, 80)], 1)],
            &[],
        )
        .unwrap();
        let (f, v) = ad("10.0.0.100");
        assert_eq!(t.lookup(f, 17, &v, 53), Some(ServiceId(257)));
        assert_eq!(t.lookup(f, 6, &v, 80), Some(ServiceId(3)));
        assert_eq!(t.fwmark_service(1), Some(ServiceId(3)));
        assert_eq!(t.fragment_candidates(f, 6, &v), &[ServiceId(3)]);
        assert_eq!(t.lookup(f, 6, &v, 22), Some(ServiceId(0)));
        assert_eq!(t.lookup(f, 17, &v, 54), None);
    }

    #[test]
    fn ipv6_vips_and_family_separation() {
        let t = ServiceTable::new(
            &[
                svc(a(6, "2001:db8::64", 443), false),
                svc(a(6, "10.0.0.1", 443), false),
            ],
            &[],
            &[],
        )
        .unwrap();
        let (f, v) = ad("2001:db8::64");
        assert_eq!(t.lookup(f, 6, &v, 443), Some(ServiceId(0)));
        // An IPv6 address whose first 4 bytes equal an IPv4 VIP is not it.
        let (_, v4) = ad("10.0.0.1");
        assert_eq!(t.lookup(Family::V6, 6, &v4, 443), None);
        assert_eq!(t.lookup(Family::V4, 6, &v4, 443), Some(ServiceId(1)));
    }

    #[test]
    fn marks_before_services() {
        let t = ServiceTable::new(
            &[
                svc(a(6, "10.0.0.100", 80), false),
                svc(ServiceAddr::Fwmark(7), true),
                svc(a(6, "2001:db8::1", 80), false),
            ],
            &[
                rule("10.0.0.0", 24, Some(6), &[(80, 80), (443, 443)], 7),
                rule("2001:db8::", 64, None, &[(1000, 2000)], 7),
                rule("10.0.0.100", 32, Some(6), &[(8080, 8080)], 99),
            ],
            &[],
        )
        .unwrap();
        let (f, v) = ad("10.0.0.100");
        assert_eq!(t.lookup(f, 6, &v, 80), Some(ServiceId(1)));
        assert_eq!(t.lookup(f, 6, &v, 443), Some(ServiceId(1)));
        assert_eq!(t.lookup(f, 17, &v, 80), None);
        assert_eq!(t.mark(f, 6, &v, 8080), Some(99));
        // Mark 99 has no service: falls through to the address lookup (none).
        assert_eq!(t.lookup(f, 6, &v, 8080), None);
        let (f6, v6) = ad("2001:db8::1");
        assert_eq!(t.lookup(f6, 6, &v6, 80), Some(ServiceId(2)));
        assert_eq!(t.lookup(f6, 17, &v6, 1500), Some(ServiceId(1)));
        assert_eq!(t.lookup(f6, 132, &v6, 2000), Some(ServiceId(1)));
        assert_eq!(t.lookup(f6, 17, &v6, 2001), None);
        // Non-first fragment candidates: fwmark 7 is persistent and covers the VIP.
        assert_eq!(t.fragment_candidates(f, 6, &v), &[ServiceId(1)]);
        assert_eq!(t.fragment_candidates(f, 17, &v), &[]);
        assert_eq!(t.fwmark_service(7), Some(ServiceId(1)));
    }

    #[test]
    fn fragment_candidates_of_port_zero_and_exact_services() {
        let t = ServiceTable::new(
            &[
                svc(a(6, "10.0.0.1", 0), true),
                svc(a(6, "10.0.0.1", 80), true),
                svc(a(6, "10.0.0.1", 81), false),
                svc(a(17, "10.0.0.1", 53), false),
            ],
            &[],
            &[],
        )
        .unwrap();
        let (f, v) = ad("10.0.0.1");
        assert_eq!(
            t.fragment_candidates(f, 6, &v),
            &[ServiceId(0), ServiceId(1)]
        );
        assert_eq!(t.fragment_candidates(f, 17, &v), &[]);
        let (_, other) = ad("10.0.0.2");
        assert_eq!(t.fragment_candidates(f, 6, &other), &[]);
    }

    #[test]
    fn last_matching_rule_wins() {
        let t = ServiceTable::new(
            &[],
            &[
                rule("10.0.0.0", 8, None, &[], 1),
                rule("10.1.0.0", 16, Some(17), &[(1, 65535)], 2),
                rule("10.1.2.3", 32, Some(17), &[(53, 53)], 3),
            ],
            &[],
        )
        .unwrap();
        let (f, x) = ad("10.1.2.3");
        assert_eq!(t.mark(f, 17, &x, 53), Some(3));
        assert_eq!(t.mark(f, 17, &x, 54), Some(2));
        assert_eq!(t.mark(f, 6, &x, 54), Some(1));
        assert_eq!(t.mark(f, 1, &x, 0), Some(1));
        let (f, y) = ad("11.0.0.1");
        assert_eq!(t.mark(f, 6, &y, 1), None);
    }

    #[test]
    fn construction_errors() {
        let e = ServiceTable::new(
            &[
                svc(a(6, "10.0.0.1", 80), false),
                svc(a(6, "10.0.0.1", 80), false),
            ],
            &[],
            &[],
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "service tcp 10.0.0.1:80 is defined twice; remove one of them"
        );
        let e = ServiceTable::new(&[svc(a(1, "10.0.0.1", 0), false)], &[], &[]).unwrap_err();
        assert!(matches!(e, ServiceTableError::BadProtocol(_, 1)));
        let e = ServiceTable::new(&[], &[rule("10.0.0.1", 33, None, &[], 1)], &[]).unwrap_err();
        assert!(e.to_string().contains("longer than the address (32 bits)"));
        let e =
            ServiceTable::new(&[], &[rule("10.0.0.1", 32, None, &[(9, 1)], 1)], &[]).unwrap_err();
        assert!(e.to_string().contains("reversed"));
        let v = VipSpec {
            addr: "10.0.0.1".parse().unwrap(),
            answer_arp: true,
            answer_ping: true,
        };
        let e = ServiceTable::new(&[], &[], &[v, v]).unwrap_err();
        assert_eq!(e, ServiceTableError::DuplicateVip(v.addr));
        let e = ServiceTable::new(
            &[
                svc(ServiceAddr::Fwmark(3), false),
                svc(ServiceAddr::Fwmark(3), false),
            ],
            &[],
            &[],
        )
        .unwrap_err();
        assert_eq!(e, ServiceTableError::DuplicateFwmark(3));
    }

    #[test]
    fn vip_flags() {
        let t = ServiceTable::new(
            &[svc(a(6, "10.0.0.1", 80), false)],
            &[],
            &[VipSpec {
                addr: "10.0.0.2".parse().unwrap(),
                answer_arp: true,
                answer_ping: false,
            }],
        )
        .unwrap();
        let (f, v1) = ad("10.0.0.1");
        let (_, v2) = ad("10.0.0.2");
        let i1 = t.vip(f, &v1).unwrap();
        let i2 = t.vip(f, &v2).unwrap();
        assert!(!i1.answer_arp && !i1.answer_ping);
        assert!(i2.answer_arp && !i2.answer_ping);
    }

    #[test]
    fn ten_thousand_services_and_rules() {
        let mut services = Vec::new();
        let mut rules = Vec::new();
        for i in 0..10_000u32 {
            let vip = format!("10.{}.{}.1", i / 256, i % 256);
            services.push(svc(a(6, &vip, 80), false));
            services.push(svc(ServiceAddr::Fwmark(i + 1), false));
            let v6 = format!("2001:db8:{:x}::1", i);
            rules.push(rule(
                &v6,
                128,
                Some(17),
                &[(i as u16 % 60000 + 1, i as u16 % 60000 + 1)],
                i + 1,
            ));
        }
        let t = ServiceTable::new(&services, &rules, &[]).unwrap();
        for i in (0..10_000u32).step_by(97) {
            let (f, v) = ad(&format!("10.{}.{}.1", i / 256, i % 256));
            assert_eq!(t.lookup(f, 6, &v, 80), Some(ServiceId(2 * i)));
            assert_eq!(t.lookup(f, 6, &v, 81), None);
            let (f6, v6) = ad(&format!("2001:db8:{:x}::1", i));
            let port = i as u16 % 60000 + 1;
            assert_eq!(t.lookup(f6, 17, &v6, port), Some(ServiceId(2 * i + 1)));
            assert_eq!(t.lookup(f6, 17, &v6, port + 1), None);
        }
    }

    /// How `hashes` fill a hashbrown-style table of `hashes.len() / 4`
    /// buckets (a power of two): the bucket is the low bits, the control
    /// byte the top 7 bits. Returns (fullest bucket, empty buckets,
    /// distinct control bytes).
    fn occupancy(hashes: &[u64]) -> (usize, usize, usize) {
        let buckets = hashes.len() / 4;
        assert!(buckets.is_power_of_two());
        let mut load = vec![0usize; buckets];
        let mut h2 = std::collections::HashSet::new();
        for &h in hashes {
            load[h as usize & (buckets - 1)] += 1;
            h2.insert(h >> 57);
        }
        let max = *load.iter().max().unwrap();
        let empty = load.iter().filter(|&&n| n == 0).count();
        (max, empty, h2.len())
    }

    fn hash_of<T: Hash>(v: &T) -> u64 {
        let mut h = FastHasher::default();
        v.hash(&mut h);
        h.finish()
    }

    /// Key shapes a configuration really has (consecutive VIPs, one VIP
    /// with many ports, IPv6 VIPs that differ in either address word,
    /// fwmarks, prefix lengths), and every write path of the hasher, spread
    /// over a table four keys per bucket on average as a random hash
    /// would: no bucket above 16 (a Poisson(4) bucket exceeds 16 with
    /// probability ~1e-6), at most 64 empty of 1024 (expected ~19), and
    /// every control byte used. A hash that ignores part of its input, or
    /// leaves the low or the top bits unmixed, piles the keys into a few
    /// buckets or control bytes and fails: the finisher before this test
    /// left 960 of 1024 buckets empty for IPv6 VIPs 2001:db8:N::1.
    #[test]
    fn hasher_spreads_keys() {
        const N: u32 = 4096;
        let v6 = |hi: u16, lo: u16| {
            let mut a = [0u8; 16];
            a[0..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            a[4..6].copy_from_slice(&hi.to_be_bytes());
            a[14..16].copy_from_slice(&lo.to_be_bytes());
            Addr::v6(a)
        };
        let vip = Addr::v4([10, 0, 0, 100]);
        let sets: Vec<(&str, Vec<u64>)> = vec![
            (
                "consecutive IPv4 VIPs",
                (0..N)
                    .map(|i| {
                        hash_of(&key(
                            Family::V4,
                            &Addr::v4((0x0a00_0000 + i).to_be_bytes()),
                            0,
                            6,
                            80,
                        ))
                    })
                    .collect(),
            ),
            (
                "one VIP, every port",
                (0..N)
                    .map(|i| hash_of(&key(Family::V4, &vip, 0, 17, i as u16)))
                    .collect(),
            ),
            (
                "IPv6 VIPs, low word",
                (0..N)
                    .map(|i| hash_of(&key(Family::V6, &v6(0, i as u16), 0, 6, 443)))
                    .collect(),
            ),
            (
                "IPv6 VIPs, high word",
                (0..N)
                    .map(|i| hash_of(&key(Family::V6, &v6(i as u16, 1), 0, 6, 443)))
                    .collect(),
            ),
            (
                "prefixes and protocols",
                (0..N)
                    .map(|i| {
                        // Every (prefix length, protocol, network) once.
                        let plen = (i % 33) as u8;
                        let proto = [6, 17, 132, ANY_PROTO][(i / 33 % 4) as usize];
                        let a = Addr::v4([10, (i / 132) as u8, 0, 0]);
                        hash_of(&key(Family::V4, &a, plen, proto, 0))
                    })
                    .collect(),
            ),
            (
                "fwmarks (write_u32)",
                (1..=N).map(|m| hash_of(&m)).collect(),
            ),
            ("write_u16", (0..N).map(|i| hash_of(&(i as u16))).collect()),
            (
                "write_usize",
                (0..N).map(|i| hash_of(&(i as usize))).collect(),
            ),
            (
                "write (bytes)",
                (0..N)
                    .map(|i| {
                        let mut h = FastHasher::default();
                        h.write(&i.to_be_bytes());
                        h.finish()
                    })
                    .collect(),
            ),
            (
                "write_u8 pairs",
                (0..N)
                    .map(|i| {
                        let mut h = FastHasher::default();
                        h.write_u8((i >> 8) as u8);
                        h.write_u8(i as u8);
                        h.finish()
                    })
                    .collect(),
            ),
        ];
        for (name, hashes) in &sets {
            let (max, empty, h2) = occupancy(hashes);
            assert!(max <= 16, "{name}: a bucket holds {max} of {N} keys");
            assert!(empty <= 64, "{name}: {empty} of 1024 buckets empty");
            assert_eq!(h2, 128, "{name}: only {h2} of 128 control bytes used");
        }
    }
}
