//! Parsers for the string-valued keys of the configuration: lcore lists,
//! core masks, PCI addresses, MAC addresses, prefixes, netmasks and port
//! ranges. Each returns a message that says what to write instead.

#![forbid(unsafe_code)]

use std::net::IpAddr;

use crate::lb::spec::PortRange;
use crate::wire::ethernet::{MacAddr, ParseMacAddrError};

/// The highest lcore id accepted (DPDK's `RTE_MAX_LCORE` is at most 1024).
pub const MAX_LCORE: u32 = 1023;

/// Parses an lcore list such as `"0-2,4"` into sorted, distinct ids.
pub fn parse_lcore_list(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty lcore list; write e.g. \"0-2\" or \"0,2,4\"".into());
    }
    for item in trimmed.split(',') {
        let item = item.trim();
        let (lo, hi) = match item.split_once('-') {
            Some((a, b)) => (parse_lcore(a, text)?, parse_lcore(b, text)?),
            None => {
                let n = parse_lcore(item, text)?;
                (n, n)
            }
        };
        if lo > hi {
            return Err(format!(
                "range \"{item}\" in lcore list \"{text}\" runs backwards; write \"{hi}-{lo}\""
            ));
        }
        out.extend(lo..=hi);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

fn parse_lcore(s: &str, whole: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n <= MAX_LCORE => Ok(n),
        Ok(n) => Err(format!("lcore {n} is above {MAX_LCORE}")),
        Err(_) => Err(format!(
            "\"{}\" in lcore list \"{whole}\" is not an lcore id; write e.g. \"0-2,4\"",
            s.trim()
        )),
    }
}

/// Parses a hexadecimal core mask such as `"0x7"` into sorted lcore ids.
pub fn parse_coremask(text: &str) -> Result<Vec<u32>, String> {
    let t = text.trim();
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() {
        return Err("empty core mask; write a hexadecimal mask such as \"0x7\"".into());
    }
    let mut out = Vec::new();
    for (pos, c) in digits.chars().rev().enumerate() {
        let v = c.to_digit(16).ok_or_else(|| {
            format!("core mask \"{text}\" is not hexadecimal; write e.g. \"0x7\" for lcores 0-2")
        })?;
        for bit in 0..4 {
            if v & (1 << bit) != 0 {
                let id = (pos * 4 + bit) as u32;
                if id > MAX_LCORE {
                    return Err(format!(
                        "core mask \"{text}\" names lcore {id}, above {MAX_LCORE}"
                    ));
                }
                out.push(id);
            }
        }
    }
    if out.is_empty() {
        return Err(format!(
            "core mask \"{text}\" selects no lcore; set at least one bit"
        ));
    }
    out.sort_unstable();
    Ok(out)
}

/// Formats sorted lcore ids compactly: `[0,1,2,4]` → `"0-2,4"`.
pub fn format_lcore_list(ids: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let start = ids[i];
        let mut end = start;
        while i + 1 < ids.len() && ids[i + 1] == end + 1 {
            i += 1;
            end = ids[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Whether `s` (before any `,devargs`) is a PCI address
/// (`DDDD:BB:DD.F` or `BB:DD.F`, hexadecimal).
pub fn is_pci_addr(s: &str) -> bool {
    normalize_pci(s).is_some()
}

/// A PCI address with its domain (`0000:` added when absent), lowercase,
/// without device arguments; `None` if `s` is not a PCI address.
pub fn normalize_pci(s: &str) -> Option<String> {
    let addr = s.split(',').next().unwrap_or("").trim();
    let parts: Vec<&str> = addr.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0000", *b, *df),
        _ => return None,
    };
    let (dev, func) = devfn.split_once('.')?;
    let hex = |x: &str, max_len: usize| {
        !x.is_empty() && x.len() <= max_len && x.chars().all(|c| c.is_ascii_hexdigit())
    };
    if !(hex(domain, 4) && hex(bus, 2) && hex(dev, 2) && func.len() == 1 && hex(func, 1)) {
        return None;
    }
    let d = u32::from_str_radix(domain, 16).ok()?;
    let b = u32::from_str_radix(bus, 16).ok()?;
    let v = u32::from_str_radix(dev, 16).ok()?;
    let f = u32::from_str_radix(func, 16).ok()?;
    if v > 0x1f || f > 7 {
        return None;
    }
    Some(format!("{d:04x}:{b:02x}:{v:02x}.{f:x}"))
}

/// A real server's MAC as the configuration allows it: `MacAddr`'s own form
/// (surrounding space ignored), and neither all zeros nor a group address.
pub fn server_mac(text: &str) -> Result<MacAddr, String> {
    let text = text.trim();
    let mac: MacAddr = text.parse().map_err(|e: ParseMacAddrError| e.to_string())?;
    if mac.is_zero() {
        return Err(format!(
            "MAC {text} is all zeros; give the server's real MAC"
        ));
    }
    if mac.is_group() {
        return Err(format!(
            "MAC {text} is a multicast/broadcast address; give the server's unicast MAC"
        ));
    }
    Ok(mac)
}

/// Parses `"10.0.0.100"` or `"10.0.0.0/24"` (IPv4 or IPv6) into an address
/// and a prefix length (32/128 when none is given).
pub fn parse_prefix(text: &str) -> Result<(IpAddr, u8), String> {
    let t = text.trim();
    let (addr_s, len_s) = match t.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (t, None),
    };
    let addr: IpAddr = addr_s.parse().map_err(|_| {
        format!("\"{addr_s}\" is not an IP address; write e.g. \"10.0.0.100\" or \"10.0.0.0/24\"")
    })?;
    let max = max_prefix(&addr);
    let len = match len_s {
        None => max,
        Some(l) => {
            let n: u8 = l
                .parse()
                .map_err(|_| format!("prefix length \"/{l}\" in \"{text}\" is not a number"))?;
            if n > max {
                return Err(format!(
                    "prefix length /{n} is too long for {} address {addr}; use 0..={max}",
                    family_name(&addr)
                ));
            }
            n
        }
    };
    Ok((addr, len))
}

/// 32 for IPv4, 128 for IPv6.
pub fn max_prefix(addr: &IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// "IPv4" or "IPv6".
pub fn family_name(addr: &IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IPv4",
        IpAddr::V6(_) => "IPv6",
    }
}

/// `addr` with the bits beyond `len` cleared.
pub fn mask_addr(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// Parses a netmask string for a service of the given family: `"/24"`,
/// `"24"`, or (IPv4 only) a dotted mask such as `"255.255.255.0"`.
pub fn parse_netmask(text: &str, v6: bool) -> Result<u8, String> {
    let t = text.trim();
    let max: u8 = if v6 { 128 } else { 32 };
    let digits = t.strip_prefix('/').unwrap_or(t);
    if let Ok(n) = digits.parse::<u8>() {
        return check_prefix_len(i64::from(n), v6);
    }
    if v6 {
        return Err(format!(
            "netmask \"{text}\" is not a prefix length; IPv6 services take \"/64\" or 64 (0..=128)"
        ));
    }
    let ip: std::net::Ipv4Addr = t.parse().map_err(|_| {
        format!("netmask \"{text}\" is neither a dotted mask (\"255.255.255.0\") nor a prefix (\"/24\")")
    })?;
    let bits = u32::from(ip);
    let len = bits.leading_ones();
    if bits.checked_shl(len).unwrap_or(0) != 0 {
        return Err(format!(
            "netmask {text} is not contiguous; use a mask like 255.255.255.0 (/24)"
        ));
    }
    debug_assert!(len <= u32::from(max));
    Ok(len as u8)
}

/// Checks an integer prefix length against the family's maximum.
pub fn check_prefix_len(n: i64, v6: bool) -> Result<u8, String> {
    let max: i64 = if v6 { 128 } else { 32 };
    if (0..=max).contains(&n) {
        Ok(n as u8)
    } else {
        Err(format!(
            "netmask /{n} is out of range for an {} service; use 0..={max}",
            if v6 { "IPv6" } else { "IPv4" }
        ))
    }
}

/// Formats a prefix length the way ipvsadm prints persistence masks:
/// dotted for IPv4, a number for IPv6.
pub fn format_netmask(len: u8, v6: bool) -> String {
    if v6 {
        len.to_string()
    } else {
        let m = if len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(len))
        };
        std::net::Ipv4Addr::from(m).to_string()
    }
}

/// Parses one port item: `"80"`, `"8000-8100"`.
pub fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let t = text.trim();
    let port = |s: &str| -> Result<u16, String> {
        match s.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            _ => Err(format!(
                "\"{}\" is not a port; use 1..=65535, e.g. \"443\" or \"8000-8100\"",
                s.trim()
            )),
        }
    };
    let (lo, hi) = match t.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(t)?;
            (p, p)
        }
    };
    if lo > hi {
        return Err(format!(
            "port range \"{t}\" runs backwards; write \"{hi}-{lo}\""
        ));
    }
    Ok(PortRange { lo, hi })
}

/// Formats port ranges as `80,443,8000-8100`.
pub fn format_port_ranges(ranges: &[PortRange]) -> String {
    ranges
        .iter()
        .map(|r| {
            if r.lo == r.hi {
                r.lo.to_string()
            } else {
                format!("{}-{}", r.lo, r.hi)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses a protocol name into its IP protocol number.
pub fn parse_proto(text: &str) -> Result<u8, String> {
    use crate::lb::types::ip_proto;
    match text.trim().to_ascii_lowercase().as_str() {
        "tcp" => Ok(ip_proto::TCP),
        "udp" => Ok(ip_proto::UDP),
        "sctp" => Ok(ip_proto::SCTP),
        _ => Err(format!(
            "unknown protocol \"{text}\"; use \"tcp\", \"udp\" or \"sctp\""
        )),
    }
}

/// The name of a protocol number, as ipvsadm prints it (`TCP`, `UDP`, `SCTP`).
pub fn proto_name(proto: u8) -> &'static str {
    use crate::lb::types::ip_proto;
    match proto {
        ip_proto::TCP => "TCP",
        ip_proto::UDP => "UDP",
        ip_proto::SCTP => "SCTP",
        _ => "?",
    }
}

/// `addr:port`, with IPv6 addresses in brackets.
pub fn format_sockaddr(addr: &IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcore_lists() {
        assert_eq!(parse_lcore_list("0-2,4").unwrap(), vec![0, 1, 2, 4]);
        assert_eq!(parse_lcore_list(" 3, 1 ,1-2").unwrap(), vec![1, 2, 3]);
        assert!(parse_lcore_list("2-1").unwrap_err().contains("backwards"));
        assert!(parse_lcore_list("a")
            .unwrap_err()
            .contains("not an lcore id"));
        assert!(parse_lcore_list("").is_err());
        assert!(parse_lcore_list("5000").unwrap_err().contains("above"));
        assert_eq!(format_lcore_list(&[0, 1, 2, 4, 6, 7]), "0-2,4,6-7");
        assert_eq!(format_lcore_list(&[3]), "3");
    }

    #[test]
    fn coremasks() {
        assert_eq!(parse_coremask("0x7").unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_coremask("0X16").unwrap(), vec![1, 2, 4]);
        assert_eq!(parse_coremask("f0").unwrap(), vec![4, 5, 6, 7]);
        assert!(parse_coremask("0x0").unwrap_err().contains("no lcore"));
        assert!(parse_coremask("0xg").unwrap_err().contains("hexadecimal"));
        assert!(parse_coremask("0x").is_err());
    }

    #[test]
    fn pci_addresses() {
        assert_eq!(
            normalize_pci("0000:01:00.0").as_deref(),
            Some("0000:01:00.0")
        );
        assert_eq!(normalize_pci("01:00.1").as_deref(), Some("0000:01:00.1"));
        assert_eq!(
            normalize_pci("0000:3B:00.0,foo=1").as_deref(),
            Some("0000:3b:00.0")
        );
        assert!(!is_pci_addr("net_af_packet0"));
        assert!(!is_pci_addr("01:00.8"));
        assert!(!is_pci_addr("01:20.0"));
    }

    #[test]
    fn server_macs() {
        assert_eq!(
            server_mac(" 02:00:00:00:01:0b ").unwrap(),
            MacAddr([2, 0, 0, 0, 1, 0x0b])
        );
        assert!(server_mac("02:00:00:00:01")
            .unwrap_err()
            .contains("six hex pairs"));
        assert_eq!(
            server_mac("00:00:00:00:00:00").unwrap_err(),
            "MAC 00:00:00:00:00:00 is all zeros; give the server's real MAC"
        );
        assert!(server_mac("ff:ff:ff:ff:ff:ff")
            .unwrap_err()
            .contains("unicast"));
        assert!(server_mac("33:33:00:00:00:01")
            .unwrap_err()
            .contains("multicast"));
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            parse_prefix("10.0.0.100").unwrap(),
            ("10.0.0.100".parse().unwrap(), 32)
        );
        assert_eq!(parse_prefix("10.0.0.0/24").unwrap().1, 24);
        assert_eq!(parse_prefix("2001:db8::/64").unwrap().1, 64);
        assert_eq!(parse_prefix("2001:db8::1").unwrap().1, 128);
        assert!(parse_prefix("10.0.0.0/33").unwrap_err().contains("0..=32"));
        assert!(parse_prefix("10.0.0/8").is_err());
        assert_eq!(
            mask_addr("10.1.2.3".parse().unwrap(), 24),
            "10.1.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask_addr("2001:db8::1".parse().unwrap(), 64),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            mask_addr("10.1.2.3".parse().unwrap(), 0),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn netmask_forms() {
        assert_eq!(parse_netmask("255.255.255.0", false).unwrap(), 24);
        assert_eq!(parse_netmask("255.255.0.0", false).unwrap(), 16);
        assert_eq!(parse_netmask("255.255.255.255", false).unwrap(), 32);
        assert_eq!(parse_netmask("0.0.0.0", false).unwrap(), 0);
        assert_eq!(parse_netmask("/24", false).unwrap(), 24);
        assert_eq!(parse_netmask("24", false).unwrap(), 24);
        assert_eq!(parse_netmask("/64", true).unwrap(), 64);
        assert!(parse_netmask("255.0.255.0", false)
            .unwrap_err()
            .contains("contiguous"));
        assert!(parse_netmask("/33", false).unwrap_err().contains("0..=32"));
        assert!(parse_netmask("ffff:ffff::", true)
            .unwrap_err()
            .contains("IPv6"));
        assert!(parse_netmask("/129", true).is_err());
        assert_eq!(format_netmask(24, false), "255.255.255.0");
        assert_eq!(format_netmask(0, false), "0.0.0.0");
        assert_eq!(format_netmask(64, true), "64");
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            parse_port_range("80").unwrap(),
            PortRange { lo: 80, hi: 80 }
        );
        assert_eq!(
            parse_port_range("8000-8100").unwrap(),
            PortRange { lo: 8000, hi: 8100 }
        );
        assert!(parse_port_range("0").unwrap_err().contains("1..=65535"));
        assert!(parse_port_range("70000").is_err());
        assert!(parse_port_range("90-80").unwrap_err().contains("backwards"));
        assert!(parse_port_range("http").is_err());
        assert_eq!(
            format_port_ranges(&[PortRange { lo: 80, hi: 80 }, PortRange { lo: 1, hi: 9 }]),
            "80,1-9"
        );
    }

    #[test]
    fn protos() {
        assert_eq!(parse_proto("TCP").unwrap(), 6);
        assert_eq!(parse_proto("udp").unwrap(), 17);
        assert_eq!(parse_proto("sctp").unwrap(), 132);
        assert!(parse_proto("icmp").is_err());
        assert_eq!(proto_name(17), "UDP");
        assert_eq!(format_sockaddr(&"::1".parse().unwrap(), 80), "[::1]:80");
    }
}
