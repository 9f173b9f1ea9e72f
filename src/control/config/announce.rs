//! `[announce]`: the host routes pmdlb keeps in a kernel routing table for
//! a BGP daemon to export, validated into [`AnnounceSettings`].

#![forbid(unsafe_code)]

use std::net::IpAddr;

use super::raw::RawAnnounce;
use super::validate::Check;
use crate::lb::spec::VipSpec;

/// Default `announce.table`.
pub const DEFAULT_TABLE: u32 = 100;
/// Default `announce.protocol`: unassigned in iproute2's `rt_protos`.
pub const DEFAULT_PROTOCOL: u8 = 200;
/// Default `announce.device`.
pub const DEFAULT_DEVICE: &str = "pmdlb0";
/// BIRD's own route protocol number (`RTPROT_BIRD`): BIRD takes such
/// routes for its own and does not learn them.
const RTPROT_BIRD: i64 = 12;

/// `[announce]`: where the VIP host routes go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceSettings {
    /// Kernel routing table of the host routes.
    pub table: u32,
    /// Route protocol number the routes carry (`ip route … proto N`): what
    /// BIRD's kernel protocol filters on (`krt_source`).
    pub protocol: u8,
    /// Route metric (`ip route … metric N`).
    pub metric: u32,
    /// The interface the routes point at.
    pub device: String,
    /// pmdlb creates `device` (a TUN device that lives as long as the
    /// process, so the kernel removes the routes when pmdlb dies, SIGKILL
    /// included); `false`: `device` exists already (lo, a dummy).
    pub own_device: bool,
    /// Addresses pmdlb answers ARP/ND for on the RX NIC but never
    /// announces: the BGP next hops routers send VIP traffic to.
    pub next_hops: Vec<IpAddr>,
    /// On a stop, how long the workers keep forwarding after the routes
    /// are withdrawn (time for the routers to converge), milliseconds.
    pub stop_delay_ms: u32,
}

/// `[announce]`, if present; adds the next hops to `vips` (ARP and ping
/// answered). Problems are recorded in `c`.
pub(super) fn settings(
    c: &mut Check,
    raw: Option<&RawAnnounce>,
    vips: &mut Vec<VipSpec>,
) -> Option<AnnounceSettings> {
    let raw = raw?;
    let table = table(c, raw.table);
    let protocol = protocol(c, raw.protocol);
    let metric = c.int("announce.metric", raw.metric, 0, 0, i64::from(u32::MAX)) as u32;
    let device = raw.device.clone().unwrap_or_else(|| DEFAULT_DEVICE.into());
    if let Err(why) = check_device_name(&device) {
        c.err("announce.device", why);
    }
    let next_hops = next_hops(c, &raw.next_hops, vips);
    let stop_delay_ms = c.int("announce.stop_delay_ms", raw.stop_delay_ms, 0, 0, 60_000) as u32;
    Some(AnnounceSettings {
        table,
        protocol,
        metric,
        device,
        own_device: raw.own_device.unwrap_or(true),
        next_hops,
        stop_delay_ms,
    })
}

fn table(c: &mut Check, v: Option<i64>) -> u32 {
    let t = c.int(
        "announce.table",
        v,
        i64::from(DEFAULT_TABLE),
        1,
        i64::from(u32::MAX),
    );
    if (253..=255).contains(&t) {
        c.err(
            "announce.table",
            format!("{t} is one of the kernel's own tables (253 default, 254 main, 255 local); pick one no ip rule uses, e.g. 100"),
        );
    }
    t as u32
}

fn protocol(c: &mut Check, v: Option<i64>) -> u8 {
    let p = c.int("announce.protocol", v, i64::from(DEFAULT_PROTOCOL), 5, 255);
    if p == RTPROT_BIRD {
        c.err(
            "announce.protocol",
            "12 is BIRD's own (RTPROT_BIRD): BIRD would take the routes for its own and not learn them; use e.g. 200",
        );
    }
    p as u8
}

/// A Linux interface name: 1..=15 bytes, no `/`, `:`, whitespace, not `.` or `..`.
pub fn check_device_name(name: &str) -> Result<(), String> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|ch| ch == '/' || ch == ':' || ch.is_whitespace() || !ch.is_ascii());
    if bad {
        Err(format!(
            "{name:?} is not an interface name; use 1 to 15 ASCII characters without '/', ':' or spaces, e.g. \"{DEFAULT_DEVICE}\""
        ))
    } else {
        Ok(())
    }
}

fn next_hops(c: &mut Check, raw: &[String], vips: &mut Vec<VipSpec>) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let key = format!("announce.next_hops[{i}]");
        let Ok(addr) = a.trim().parse::<IpAddr>() else {
            c.err(key, format!("{a:?} is not an IP address"));
            continue;
        };
        if vips.iter().any(|v| v.addr == addr) {
            c.err(
                key,
                format!("{addr} is a VIP; a next hop is an address of this director's own, never announced"),
            );
            continue;
        }
        vips.push(VipSpec {
            addr,
            answer_arp: true,
            answer_ping: true,
        });
        out.push(addr);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::config::Config;

    fn load(extra: &str) -> Result<Config, String> {
        crate::control::config::tests::load_one_service(extra)
    }

    #[test]
    fn absent_means_off_present_means_defaults() {
        assert_eq!(load("").unwrap().announce(), None);
        let c = load("[announce]\n").unwrap();
        let a = c.announce().unwrap();
        assert_eq!(
            (
                a.table,
                a.protocol,
                a.metric,
                a.device.as_str(),
                a.own_device
            ),
            (100, 200, 0, "pmdlb0", true)
        );
        assert!(a.next_hops.is_empty());
    }

    #[test]
    fn next_hops_are_answered_for_and_kept_apart_from_vips() {
        let c = load("[announce]\nnext_hops = [\"10.9.0.2\"]\n").unwrap();
        let hop: IpAddr = "10.9.0.2".parse().unwrap();
        assert_eq!(c.announce().unwrap().next_hops, vec![hop]);
        assert!(c.vips().iter().any(|v| v.addr == hop && v.answer_arp));
        let e = load("[announce]\nnext_hops = [\"10.0.0.1\"]\n").unwrap_err();
        assert!(
            e.contains("announce.next_hops[0]") && e.contains("is a VIP"),
            "{e}"
        );
        let e = load("[announce]\nnext_hops = [\"x\"]\n").unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (extra, parts) in [
            ("table = 254", &["announce.table", "main"][..]),
            ("table = 0", &["announce.table", "out of range"]),
            ("protocol = 12", &["announce.protocol", "BIRD"]),
            ("protocol = 3", &["announce.protocol", "5..=255"]),
            ("metric = -1", &["announce.metric"]),
            (
                "stop_delay_ms = 60001",
                &["announce.stop_delay_ms", "0..=60000"],
            ),
            ("device = \"a b\"", &["announce.device", "interface name"]),
            ("peer = 1", &["unknown field"]),
        ] {
            let e = load(&format!("[announce]\n{extra}\n")).unwrap_err();
            for p in parts {
                assert!(e.contains(p), "{extra}: {p:?} not in {e}");
            }
        }
    }

    #[test]
    fn a_change_needs_a_restart() {
        let a = load("[announce]\n").unwrap();
        let b = load("[announce]\ntable = 101\n").unwrap();
        assert_eq!(a.needs_restart(&b), vec!["[announce]"]);
    }

    #[test]
    fn interface_names() {
        assert!(check_device_name("pmdlb0").is_ok());
        assert!(check_device_name("lo").is_ok());
        for bad in ["", ".", "..", "a/b", "a:1", "a b", "sixteen-chars-xx"] {
            assert!(check_device_name(bad).is_err(), "{bad:?}");
        }
    }
}
