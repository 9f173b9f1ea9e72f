//! The configuration file exactly as TOML gives it: every key optional,
//! unknown keys rejected, numbers kept wide so that range errors name the
//! key. [`super::Config`] is built from these by validation.

#![forbid(unsafe_code)]

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

/// A value written either as a string or as an integer (`ports`,
/// `netmask`, `tx_vlan`, `lcores`, `coremask`, `drop_entry`, `secure_tcp`).
#[derive(Clone, Debug, PartialEq)]
pub enum StrOrInt {
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
}

/// `persistent = 300` or `persistent = true|false`.
#[derive(Clone, Debug, PartialEq)]
pub enum BoolOrInt {
    /// `true` = ipvsadm's default, `false` = not persistent.
    Bool(bool),
    /// Seconds.
    Int(i64),
}

/// `lcores = "0-2,4"` or `lcores = [0, 1, 2, 4]`.
#[derive(Clone, Debug, PartialEq)]
pub enum LcoreList {
    /// A DPDK-style list.
    Str(String),
    /// Lcore ids.
    List(Vec<i64>),
}

// Hand-written visitors instead of `#[serde(untagged)]`, so that a wrong
// type is reported as "expected an integer or a string" at its line and
// column rather than "did not match any variant".

struct StrOrIntVisitor;

impl Visitor<'_> for StrOrIntVisitor {
    type Value = StrOrInt;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<StrOrInt, E> {
        Ok(StrOrInt::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<StrOrInt, E> {
        Ok(StrOrInt::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<StrOrInt, E> {
        Ok(StrOrInt::Str(v.to_owned()))
    }
}

impl<'de> Deserialize<'de> for StrOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrIntVisitor)
    }
}

struct BoolOrIntVisitor;

impl Visitor<'_> for BoolOrIntVisitor {
    type Value = BoolOrInt;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number of seconds, true (300 s) or false")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<BoolOrInt, E> {
        Ok(BoolOrInt::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<BoolOrInt, E> {
        Ok(BoolOrInt::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<BoolOrInt, E> {
        Ok(BoolOrInt::Int(i64::try_from(v).unwrap_or(i64::MAX)))
    }
}

impl<'de> Deserialize<'de> for BoolOrInt {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BoolOrIntVisitor)
    }
}

struct LcoreListVisitor;

impl<'de> Visitor<'de> for LcoreListVisitor {
    type Value = LcoreList;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string like \"0-2,4\" or a list of lcore ids")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<LcoreList, E> {
        Ok(LcoreList::Str(v.to_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LcoreList, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<i64>()? {
            out.push(v);
        }
        Ok(LcoreList::List(out))
    }
}

impl<'de> Deserialize<'de> for LcoreList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(LcoreListVisitor)
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub eal: Option<RawEal>,
    pub ports: Option<RawPorts>,
    #[serde(default)]
    pub workers: RawWorkers,
    #[serde(default)]
    pub tables: RawTables,
    #[serde(default)]
    pub timeouts: RawTimeouts,
    #[serde(default)]
    pub ipvs: RawIpvs,
    #[serde(default)]
    pub neighbours: RawNeighbours,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub control: RawControl,
    pub announce: Option<RawAnnounce>,
    pub sync: Option<RawSync>,
    #[serde(default)]
    pub vip: Vec<RawVip>,
    #[serde(default)]
    pub mark: Vec<RawMark>,
    #[serde(default)]
    pub service: Vec<RawService>,
}

/// `[control]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawControl {
    pub rules: Option<String>,
}

/// `[eal]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEal {
    pub lcores: Option<LcoreList>,
    pub coremask: Option<StrOrInt>,
    pub main_lcore: Option<i64>,
    pub memory_channels: Option<i64>,
    pub hugepages: Option<bool>,
    pub memory_mb: Option<i64>,
    pub file_prefix: Option<String>,
    #[serde(default)]
    pub pci_allow: Vec<String>,
    #[serde(default)]
    pub vdevs: Vec<String>,
    pub log_level: Option<String>,
    pub telemetry: Option<bool>,
    pub pdump: Option<bool>,
    #[serde(default)]
    pub extra_args: Vec<String>,
}

/// `[ports]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPorts {
    pub rx: Option<String>,
    pub tx: Option<String>,
    pub rx_desc: Option<i64>,
    pub tx_desc: Option<i64>,
    pub mtu: Option<i64>,
    pub promiscuous: Option<bool>,
    pub mbufs: Option<i64>,
    pub mbuf_cache: Option<i64>,
    pub mbuf_size: Option<i64>,
    pub tx_vlan: Option<StrOrInt>,
    pub tx_addr: Option<String>,
    pub tx_addr6: Option<String>,
    pub tunnel_addr: Option<String>,
    pub tunnel_addr6: Option<String>,
    pub gateway: Option<String>,
    pub gateway6: Option<String>,
    pub gateway_mac: Option<String>,
    pub gateway6_mac: Option<String>,
}

/// `[workers]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkers {
    pub count: Option<i64>,
    pub burst: Option<i64>,
    pub drain_us: Option<i64>,
    pub stats_interval_s: Option<i64>,
    pub sweep_per_loop: Option<i64>,
}

/// `[tables]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTables {
    pub connections: Option<i64>,
    pub persistence: Option<i64>,
    pub mh_size: Option<i64>,
    pub max_services: Option<i64>,
    pub max_servers: Option<i64>,
    pub memory: Option<String>,
}

/// `[timeouts]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    pub tcp: Option<i64>,
    pub tcp_syn_recv: Option<i64>,
    pub tcp_fin: Option<i64>,
    pub tcp_close: Option<i64>,
    pub udp: Option<i64>,
    pub tcp_syn_recv_secure: Option<i64>,
}

/// `[ipvs]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIpvs {
    pub sloppy_tcp: Option<bool>,
    pub expire_quiescent_template: Option<bool>,
    pub expire_nodest_conn: Option<bool>,
    pub drop_entry: Option<StrOrInt>,
    pub secure_tcp: Option<StrOrInt>,
    pub conn_high_water: Option<i64>,
}

/// `[neighbours]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNeighbours {
    pub refresh_s: Option<i64>,
    pub retry_ms: Option<i64>,
    pub gratuitous_arp: Option<bool>,
}

/// `[metrics]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
}

/// `[announce]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnnounce {
    pub table: Option<i64>,
    pub protocol: Option<i64>,
    pub metric: Option<i64>,
    pub device: Option<String>,
    pub own_device: Option<bool>,
    #[serde(default)]
    pub next_hops: Vec<String>,
    pub stop_delay_ms: Option<i64>,
}

/// `[sync]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    pub role: Option<String>,
    pub syncid: Option<i64>,
    pub interface: Option<String>,
    pub group: Option<String>,
    pub port: Option<i64>,
    pub ttl: Option<i64>,
    pub peers: Option<Vec<String>>,
    pub source: Option<String>,
    pub maxlen: Option<i64>,
    pub threshold: Option<i64>,
    pub period: Option<i64>,
    pub flush_ms: Option<i64>,
    pub ring: Option<i64>,
    pub announce_hold_ms: Option<i64>,
}

/// `[[vip]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVip {
    pub addr: Option<String>,
    pub arp: Option<bool>,
    pub ping: Option<bool>,
}

/// `[[mark]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMark {
    pub dst: Option<String>,
    pub proto: Option<String>,
    #[serde(default)]
    pub ports: Vec<StrOrInt>,
    pub mark: Option<i64>,
}

/// `[[service]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub vip: Option<String>,
    pub port: Option<i64>,
    pub proto: Option<String>,
    pub fwmark: Option<i64>,
    pub scheduler: Option<String>,
    #[serde(default)]
    pub flags: Vec<String>,
    pub persistent: Option<BoolOrInt>,
    pub netmask: Option<StrOrInt>,
    pub ops: Option<bool>,
    pub health: Option<RawHealth>,
    #[serde(default)]
    pub server: Vec<RawServer>,
}

/// `[[service.server]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub addr: Option<String>,
    pub weight: Option<i64>,
    pub u_threshold: Option<i64>,
    pub l_threshold: Option<i64>,
    pub mac: Option<String>,
    pub forward: Option<String>,
    pub tun_type: Option<String>,
    pub tun_port: Option<i64>,
    pub tun_csum: Option<bool>,
    pub health: Option<RawHealth>,
}

/// `[service.health]` and `[service.server.health]`: checker defaults,
/// the server effect options and the checkers (keepalived's keywords).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub delay_loop: Option<i64>,
    pub connect_timeout: Option<i64>,
    pub retry: Option<i64>,
    pub delay_before_retry: Option<i64>,
    pub warmup: Option<i64>,
    pub alpha: Option<bool>,
    pub inhibit_on_failure: Option<bool>,
    pub notify_up: Option<String>,
    pub notify_down: Option<String>,
    pub quorum: Option<i64>,
    pub hysteresis: Option<i64>,
    pub sorry_server: Option<String>,
    pub sorry_server_mac: Option<String>,
    pub sorry_server_inhibit: Option<bool>,
    pub quorum_up: Option<String>,
    pub quorum_down: Option<String>,
    #[serde(default)]
    pub check: Vec<RawCheck>,
}

/// `[[service.health.check]]` / `[[service.server.health.check]]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub connect_ip: Option<String>,
    pub connect_port: Option<i64>,
    pub bindto: Option<String>,
    pub delay_loop: Option<i64>,
    pub connect_timeout: Option<i64>,
    pub retry: Option<i64>,
    pub delay_before_retry: Option<i64>,
    pub warmup: Option<i64>,
    pub path: Option<String>,
    pub digest: Option<String>,
    #[serde(default)]
    pub status_code: Vec<StrOrInt>,
    pub virtualhost: Option<String>,
    pub http_protocol: Option<String>,
    pub verify: Option<bool>,
    pub fast_recovery: Option<bool>,
    #[serde(default)]
    pub url: Vec<RawUrl>,
    pub misc_path: Option<String>,
    pub misc_timeout: Option<i64>,
    pub misc_dynamic: Option<bool>,
}

/// `[[...check.url]]`: one URL of an http check.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUrl {
    pub path: Option<String>,
    pub digest: Option<String>,
    #[serde(default)]
    pub status_code: Vec<StrOrInt>,
}
