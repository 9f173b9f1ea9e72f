//! Validation of `[service.health]` and `[service.server.health]`:
//! keepalived's checkers (TCP_CHECK, HTTP_GET, SSL_GET, MISC_CHECK) and their
//! options. A server's value wins over its service's, a checker's own
//! timing over both; a server with no checker of its own gets its
//! service's checkers.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::raw::{RawCheck, RawHealth, StrOrInt};
use super::validate::Check;
use super::values::server_mac;
use crate::control::health::{CheckSpec, Probe, QuorumSpec, ServerChecks, Timing, Tls, Url};
use crate::lb::spec::{RealServerSpec, SchedulerKind, ServiceAddr, ServiceSpec};
use crate::lb::types::RsId;

/// keepalived's `delay_loop` default, seconds.
pub const DEFAULT_DELAY_LOOP_S: i64 = 60;
/// keepalived's `connect_timeout` default, seconds.
pub const DEFAULT_CONNECT_TIMEOUT_S: i64 = 5;
/// Largest timing value accepted, seconds (a day).
pub const MAX_HEALTH_S: i64 = 86_400;

/// The raw health tables of one service: its own, and each server's.
pub(super) type RawServiceHealth = (Option<RawHealth>, Vec<Option<RawHealth>>);

/// One value looked up checker → server → service.
fn pick<T: Copy>(
    f: impl Fn(&RawHealth) -> Option<T>,
    srv: Option<&RawHealth>,
    svc: Option<&RawHealth>,
) -> Option<T> {
    srv.and_then(&f).or_else(|| svc.and_then(&f))
}

fn secs(c: &mut Check, key: &str, v: Option<i64>, default: i64, lo: i64) -> Duration {
    Duration::from_secs(c.int(key, v, default, lo, MAX_HEALTH_S) as u64)
}

fn status_ranges(c: &mut Check, key: &str, raw: &[StrOrInt]) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    for (i, v) in raw.iter().enumerate() {
        let text = match v {
            StrOrInt::Int(n) => n.to_string(),
            StrOrInt::Str(s) => s.trim().to_owned(),
        };
        let (lo, hi) = match text.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>(), b.trim().parse::<u16>()),
            None => (text.parse::<u16>(), text.parse::<u16>()),
        };
        match (lo, hi) {
            (Ok(lo), Ok(hi)) if (100..=599).contains(&lo) && (lo..=599).contains(&hi) => {
                out.push((lo, hi))
            }
            _ => c.err(
                format!("{key}[{i}]"),
                format!("{text:?} is not a status code or range; write 200, \"200-299\" or [200, \"300-302\"] (codes 100..=599)"),
            ),
        }
    }
    out
}

fn digest(c: &mut Check, key: &str, d: &Option<String>) -> Option<String> {
    let d = d.as_ref()?.trim().to_ascii_lowercase();
    if d.len() == 32 && d.bytes().all(|b| b.is_ascii_hexdigit()) {
        Some(d)
    } else {
        c.err(
            key,
            format!("{d:?} is not an MD5 digest; give the 32 hex digits keepalived's genhash prints (or md5sum of the body)"),
        );
        None
    }
}

#[allow(clippy::too_many_arguments)]
fn checker(
    c: &mut Check,
    key: &str,
    k: &RawCheck,
    srv: Option<&RawHealth>,
    svc: Option<&RawHealth>,
    rs: IpAddr,
    svc_port: Option<u16>,
) -> Option<CheckSpec> {
    let kind = match k
        .kind
        .as_deref()
        .map(str::trim)
        .map(str::to_ascii_lowercase)
    {
        Some(t) if matches!(t.as_str(), "tcp" | "tcp_check") => "tcp",
        Some(t) if matches!(t.as_str(), "http" | "http_get") => "http",
        Some(t) if matches!(t.as_str(), "https" | "ssl_get") => "https",
        Some(t) if matches!(t.as_str(), "misc" | "misc_check") => "misc",
        Some(t) => {
            c.err(
                format!("{key}.type"),
                format!("unknown checker {t:?}; use \"tcp\", \"http\", \"https\" or \"misc\""),
            );
            return None;
        }
        None => {
            c.err(
                format!("{key}.type"),
                "missing; set type = \"tcp\", \"http\", \"https\" or \"misc\"",
            );
            return None;
        }
    };
    let delay_loop = secs(
        c,
        &format!("{key}.delay_loop"),
        k.delay_loop.or(pick(|h| h.delay_loop, srv, svc)),
        DEFAULT_DELAY_LOOP_S,
        1,
    );
    let connect_timeout = secs(
        c,
        &format!("{key}.connect_timeout"),
        k.connect_timeout.or(pick(|h| h.connect_timeout, srv, svc)),
        DEFAULT_CONNECT_TIMEOUT_S,
        1,
    );
    let retry = c.int(
        &format!("{key}.retry"),
        k.retry.or(pick(|h| h.retry, srv, svc)),
        if kind == "misc" { 0 } else { 1 },
        0,
        1000,
    ) as u32;
    let delay_before_retry = secs(
        c,
        &format!("{key}.delay_before_retry"),
        k.delay_before_retry
            .or(pick(|h| h.delay_before_retry, srv, svc)),
        if matches!(kind, "http" | "https") {
            3
        } else {
            1
        },
        0,
    );
    let warmup = secs(
        c,
        &format!("{key}.warmup"),
        k.warmup.or(pick(|h| h.warmup, srv, svc)),
        delay_loop.as_secs() as i64,
        0,
    );
    let mut timing = Timing {
        delay_loop,
        connect_timeout,
        retry,
        delay_before_retry,
        warmup,
    };
    let only = |c: &mut Check, field: &str, set: bool, kinds: &str| {
        if set {
            c.err(
                format!("{key}.{field}"),
                format!("does not apply to a {kind} check (only {kinds}); remove it"),
            );
        }
    };
    let http_only = k.path.is_some()
        || k.digest.is_some()
        || !k.status_code.is_empty()
        || k.virtualhost.is_some()
        || k.http_protocol.is_some()
        || k.fast_recovery.is_some()
        || !k.url.is_empty();
    if !matches!(kind, "http" | "https") {
        only(
            c,
            "path/url/status_code/digest/virtualhost/http_protocol/fast_recovery",
            http_only,
            "http and https",
        );
    }
    if kind != "https" {
        only(c, "verify", k.verify.is_some(), "https");
    }
    if kind == "misc" {
        only(
            c,
            "connect_ip/connect_port/bindto",
            k.connect_ip.is_some() || k.connect_port.is_some() || k.bindto.is_some(),
            "tcp, http and https",
        );
        let Some(path) = k.misc_path.as_ref().filter(|p| !p.trim().is_empty()) else {
            c.err(
                format!("{key}.misc_path"),
                "missing; give the script to run, e.g. misc_path = \"/etc/pmdlb/check-db.sh 10.0.0.1\"",
            );
            return None;
        };
        timing.connect_timeout = secs(
            c,
            &format!("{key}.misc_timeout"),
            k.misc_timeout,
            delay_loop.as_secs() as i64,
            1,
        );
        return Some(CheckSpec {
            probe: Probe::Misc {
                path: path.clone(),
                dynamic: k.misc_dynamic.unwrap_or(false),
            },
            timing,
        });
    }
    only(
        c,
        "misc_path/misc_timeout/misc_dynamic",
        k.misc_path.is_some() || k.misc_timeout.is_some() || k.misc_dynamic.is_some(),
        "misc",
    );
    let ip = match &k.connect_ip {
        None => rs,
        Some(a) => match a.trim().parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => {
                c.err(
                    format!("{key}.connect_ip"),
                    format!("{a:?} is not an IP address; leave it out to check the server's own address"),
                );
                rs
            }
        },
    };
    let port = match (k.connect_port, svc_port) {
        (Some(p), _) if (1..=65535).contains(&p) => p as u16,
        (Some(p), _) => {
            c.err(
                format!("{key}.connect_port"),
                format!("{p} is out of range; use 1..=65535"),
            );
            1
        }
        (None, Some(p)) => p,
        (None, None) => {
            c.err(
                format!("{key}.connect_port"),
                "missing: the service has no single port (fwmark or port 0) to default to; set connect_port = N",
            );
            1
        }
    };
    let bindto = match &k.bindto {
        None => None,
        Some(a) => match a.trim().parse::<IpAddr>() {
            Ok(b) if b.is_ipv6() == ip.is_ipv6() => Some(b),
            Ok(b) => {
                c.err(
                    format!("{key}.bindto"),
                    format!("{b} and the check target {ip} are of different families; bind an address of the target's family"),
                );
                None
            }
            Err(_) => {
                c.err(
                    format!("{key}.bindto"),
                    format!("{a:?} is not an IP address of this host"),
                );
                None
            }
        },
    };
    let target = SocketAddr::new(ip, port);
    if kind == "tcp" {
        return Some(CheckSpec {
            probe: Probe::Tcp { target, bindto },
            timing,
        });
    }
    let default_status = if k.status_code.is_empty() {
        vec![(200, 299)]
    } else {
        status_ranges(c, &format!("{key}.status_code"), &k.status_code)
    };
    let mut urls = Vec::new();
    if k.path.is_some() && !k.url.is_empty() {
        c.err(
            format!("{key}.path"),
            "given together with [[...url]] tables; put every path in a url table",
        );
    } else if k.digest.is_some() && !k.url.is_empty() {
        c.err(
            format!("{key}.digest"),
            "belongs to a url: set digest inside each [[...url]] table",
        );
    } else if k.url.is_empty() {
        // The shorthand: one url, `/` unless `path` says otherwise.
        urls.push(Url {
            path: k.path.clone().unwrap_or_else(|| "/".into()),
            status: default_status.clone(),
            digest: digest(c, &format!("{key}.digest"), &k.digest),
        });
    }
    for (j, u) in k.url.iter().enumerate() {
        let uk = format!("{key}.url[{j}]");
        let Some(p) = &u.path else {
            c.err(
                format!("{uk}.path"),
                "missing; give the path, e.g. path = \"/health\"",
            );
            continue;
        };
        let status = if u.status_code.is_empty() {
            default_status.clone()
        } else {
            status_ranges(c, &format!("{uk}.status_code"), &u.status_code)
        };
        urls.push(Url {
            path: p.clone(),
            status,
            digest: digest(c, &format!("{uk}.digest"), &u.digest),
        });
    }
    for (j, u) in urls.iter().enumerate() {
        if !u.path.starts_with('/') || u.path.bytes().any(|b| b.is_ascii_whitespace()) {
            c.err(
                format!("{key}.url[{j}].path"),
                format!(
                    "{:?} is not a request path; write it as \"/health\" (no host, no spaces)",
                    u.path
                ),
            );
        }
    }
    if let Some(v) = &k.virtualhost {
        if v.is_empty()
            || v.bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            c.err(
                format!("{key}.virtualhost"),
                format!("{v:?} is not a host name; write it as \"www.example.com\" (sent as Host: and, for https, as the TLS server name)"),
            );
        }
    }
    let http11 = match k.http_protocol.as_deref().map(str::trim) {
        None | Some("1.0") | Some("1.0C") => false,
        Some("1.1") => true,
        Some(other) => {
            c.err(
                format!("{key}.http_protocol"),
                format!("{other:?}: use \"1.0\" (default) or \"1.1\""),
            );
            false
        }
    };
    Some(CheckSpec {
        probe: Probe::Http {
            target,
            bindto,
            urls,
            virtualhost: k.virtualhost.clone(),
            http11,
            tls: (kind == "https").then(|| Tls {
                verify: k.verify.unwrap_or(false),
            }),
            fast_recovery: k.fast_recovery.unwrap_or(false),
        },
        timing,
    })
}

/// The quorum keys of a service; appends its sorry server (if any) to its
/// servers, so it is resolved by ARP/ND like them (or has its
/// `sorry_server_mac`). `first` is the service's first `RsId`.
fn quorum(
    c: &mut Check,
    key: &str,
    h: &RawHealth,
    spec: &mut ServiceSpec,
    first: u32,
) -> Option<QuorumSpec> {
    let any = h.quorum.is_some()
        || h.hysteresis.is_some()
        || h.sorry_server.is_some()
        || h.sorry_server_mac.is_some()
        || h.sorry_server_inhibit.is_some()
        || h.quorum_up.is_some()
        || h.quorum_down.is_some();
    if !any {
        return None;
    }
    let quorum = c.int(
        &format!("{key}.quorum"),
        h.quorum,
        1,
        1,
        i64::from(u32::MAX),
    ) as u64;
    let hysteresis = c.int(
        &format!("{key}.hysteresis"),
        h.hysteresis,
        0,
        0,
        i64::from(u32::MAX),
    ) as u64;
    let mut sorry = None;
    if let Some(a) = &h.sorry_server {
        let k = format!("{key}.sorry_server");
        match a.trim().parse::<IpAddr>() {
            Err(_) => c.err(&k, format!("{a:?} is not an IP address; give the sorry server's address")),
            Ok(ip) if spec.servers.iter().any(|r| r.addr == ip) => c.err(
                &k,
                format!("{ip} is also a real server of this service; the sorry server stands in for them, give another address"),
            ),
            Ok(ip) if spec.servers.first().is_some_and(|r| r.addr.is_ipv6() != ip.is_ipv6()) => c.err(
                &k,
                format!("{ip} is not of the family of the service's servers; DR cannot change the family"),
            ),
            Ok(ip) => {
                if matches!(spec.scheduler, SchedulerKind::Sh | SchedulerKind::Dh | SchedulerKind::Mh) {
                    c.err(
                        &k,
                        "needs a scheduler that does not hash (rr, wrr, lc, wlc, sed, nq, fo, ovf): sh, dh and mh tables are fixed at start and never pick a standby server",
                    );
                }
                let mac = match &h.sorry_server_mac {
                    None => None,
                    Some(m) => match server_mac(m) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            c.err(format!("{key}.sorry_server_mac"), e);
                            None
                        }
                    },
                };
                // Without a mac it is resolved like the servers (cross_checks
                // asks for ports.tx_addr then).
                sorry = Some(RsId(first + spec.servers.len() as u32));
                spec.servers.push(RealServerSpec {
                    addr: ip,
                    weight: 1,
                    u_threshold: 0,
                    l_threshold: 0,
                    mac,
                    forward: Default::default(),
                    via: None,
                });
            }
        }
    } else if h.sorry_server_mac.is_some() || h.sorry_server_inhibit.is_some() {
        c.err(
            format!("{key}.sorry_server"),
            "missing, but sorry_server_mac or sorry_server_inhibit is set; give the address or remove them",
        );
    }
    Some(QuorumSpec {
        quorum,
        hysteresis,
        sorry,
        sorry_inhibit: h.sorry_server_inhibit.unwrap_or(false),
        quorum_up: h.quorum_up.clone(),
        quorum_down: h.quorum_down.clone(),
    })
}

/// What the health keys give: one entry per real server in `RsId` order
/// (services in order, their servers in order; `None` for a server
/// without checkers) and one per service (its quorum, if set). A sorry
/// server is appended to its service's servers (unchecked).
pub(super) fn checks(
    c: &mut Check,
    raw: &[RawServiceHealth],
    services: &mut [ServiceSpec],
) -> (Vec<Option<ServerChecks>>, Vec<Option<QuorumSpec>>) {
    let mut out = Vec::new();
    let mut quorums = Vec::new();
    for (i, (spec, (svc_h, srv_hs))) in services.iter_mut().zip(raw).enumerate() {
        for (j, h) in srv_hs.iter().enumerate() {
            if let Some(h) = h {
                if h.quorum.is_some()
                    || h.hysteresis.is_some()
                    || h.sorry_server.is_some()
                    || h.sorry_server_mac.is_some()
                    || h.sorry_server_inhibit.is_some()
                    || h.quorum_up.is_some()
                    || h.quorum_down.is_some()
                {
                    c.err(
                        format!("service[{i}].server[{j}].health"),
                        "quorum, hysteresis, sorry_server* and quorum_up/down belong to the service: move them to [service.health]",
                    );
                }
            }
        }
        let svc_port = match spec.addr {
            ServiceAddr::Addr { port, .. } if port != 0 => Some(port),
            _ => None,
        };
        let svc_h = svc_h.as_ref();
        for (j, rs) in spec.servers.iter().enumerate() {
            let srv_h = srv_hs.get(j).and_then(Option::as_ref);
            let (base, list) = match srv_h {
                Some(h) if !h.check.is_empty() => {
                    (format!("service[{i}].server[{j}].health"), &h.check)
                }
                _ => match svc_h {
                    Some(h) => (format!("service[{i}].health"), &h.check),
                    None => {
                        out.push(None);
                        continue;
                    }
                },
            };
            if list.is_empty() {
                if srv_h.is_some() || svc_h.is_some() {
                    c.warn(
                        format!("service[{i}].server[{j}].health"),
                        "health options but no [[...health.check]]: the server is not checked",
                    );
                }
                out.push(None);
                continue;
            }
            let checks: Vec<CheckSpec> = list
                .iter()
                .enumerate()
                .filter_map(|(n, k)| {
                    checker(
                        c,
                        &format!("{base}.check[{n}]"),
                        k,
                        srv_h,
                        svc_h,
                        rs.addr,
                        svc_port,
                    )
                })
                .collect();
            let script = |f: fn(&RawHealth) -> Option<&String>| {
                srv_h.and_then(f).or_else(|| svc_h.and_then(f)).cloned()
            };
            out.push(Some(ServerChecks {
                checks,
                alpha: pick(|h| h.alpha, srv_h, svc_h).unwrap_or(false),
                inhibit_on_failure: pick(|h| h.inhibit_on_failure, srv_h, svc_h).unwrap_or(false),
                notify_up: script(|h| h.notify_up.as_ref()),
                notify_down: script(|h| h.notify_down.as_ref()),
            }));
        }
        let first = (out.len() - spec.servers.len()) as u32;
        let q = svc_h.and_then(|h| quorum(c, &format!("service[{i}].health"), h, spec, first));
        if q.as_ref().is_some_and(|q| q.sorry.is_some()) {
            out.push(None);
        }
        quorums.push(q);
    }
    (out, quorums)
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    const HEAD: &str =
        "[eal]\nlcores = \"0-1\"\n[ports]\nrx = \"net_null0\"\ntx_addr = \"10.0.1.1\"\n";

    fn load(svc: &str) -> Result<Config, String> {
        Config::from_str(&format!("{HEAD}{svc}"), "t.toml")
            .map(|(c, _)| c)
            .map_err(|e| e.to_string())
    }

    const TWO: &str =
        "[[service.server]]\naddr = \"10.0.1.11\"\n[[service.server]]\naddr = \"10.0.1.12\"\n";

    #[test]
    fn defaults_are_keepalived_s_and_servers_inherit() {
        let c = load(&format!(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[service.health]\n[[service.health.check]]\ntype = \"http\"\n\
             [[service.health.check]]\ntype = \"tcp\"\n{TWO}\
             [[service]]\nvip = \"10.0.0.1\"\nport = 81\n[[service.server]]\naddr = \"10.0.1.11\"\n"
        ))
        .unwrap();
        let h = c.health();
        assert_eq!(h.len(), 3);
        assert!(h[2].is_none(), "a service without health is unchecked");
        let s = h[1].as_ref().unwrap();
        assert!(!s.alpha && !s.inhibit_on_failure);
        let http = &s.checks[0];
        assert_eq!(
            http.timing,
            Timing {
                delay_loop: Duration::from_secs(60),
                connect_timeout: Duration::from_secs(5),
                retry: 1,
                delay_before_retry: Duration::from_secs(3),
                warmup: Duration::from_secs(60),
            }
        );
        match &http.probe {
            Probe::Http {
                target,
                urls,
                http11,
                ..
            } => {
                assert_eq!(target.to_string(), "10.0.1.12:80");
                assert_eq!(urls[0].path, "/");
                assert_eq!(urls[0].status, vec![(200, 299)]);
                assert!(!http11);
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(
            s.checks[1].timing.delay_before_retry,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn server_values_win_and_its_own_checks_replace_the_service_s() {
        let c = load(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[service.health]\ndelay_loop = 10\nretry = 3\n\
             [[service.health.check]]\ntype = \"tcp\"\n\
             [[service.server]]\naddr = \"10.0.1.11\"\n[service.server.health]\nretry = 0\ninhibit_on_failure = true\nalpha = true\nwarmup = 0\n\
             [[service.server]]\naddr = \"10.0.1.12\"\n[service.server.health]\n\
             [[service.server.health.check]]\ntype = \"misc\"\nmisc_path = \"true\"\nmisc_dynamic = true\n\
             [[service.server.health.check]]\ntype = \"http\"\nconnect_port = 8080\ndelay_loop = 2\n\
             [[service.server.health.check.url]]\npath = \"/a\"\nstatus_code = [\"200-204\", 301]\n\
             [[service.server.health.check.url]]\npath = \"/b\"\ndigest = \"9B3A0C85A887A256D6939DA88AABD8CD\"\n",
        )
        .unwrap();
        let a = c.health()[0].as_ref().unwrap();
        assert!(a.alpha && a.inhibit_on_failure);
        assert_eq!(a.checks.len(), 1);
        assert_eq!(a.checks[0].timing.retry, 0);
        assert_eq!(a.checks[0].timing.delay_loop, Duration::from_secs(10));
        let b = c.health()[1].as_ref().unwrap();
        assert_eq!(b.checks.len(), 2);
        assert_eq!(b.checks[0].timing.retry, 3, "the service's retry");
        assert_eq!(
            b.checks[0].timing.connect_timeout,
            Duration::from_secs(10),
            "misc_timeout = delay_loop"
        );
        assert_eq!(
            b.checks[0].probe,
            Probe::Misc {
                path: "true".into(),
                dynamic: true
            }
        );
        match &b.checks[1].probe {
            Probe::Http { target, urls, .. } => {
                assert_eq!(target.port(), 8080);
                assert_eq!(urls[0].status, vec![(200, 204), (301, 301)]);
                assert_eq!(
                    urls[1].digest.as_deref(),
                    Some("9b3a0c85a887a256d6939da88aabd8cd")
                );
            }
            p => panic!("{p:?}"),
        }
        assert_eq!(b.checks[1].timing.delay_loop, Duration::from_secs(2));
        assert_eq!(a.checks[0].timing.warmup, Duration::ZERO, "the server's");
        assert_eq!(
            b.checks[1].timing.warmup,
            Duration::from_secs(2),
            "warmup defaults to the checker's delay_loop"
        );
    }

    #[test]
    fn https_is_http_over_tls_with_keepalived_s_defaults() {
        let c = load(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 443\n[service.health]\n\
             [[service.health.check]]\ntype = \"SSL_GET\"\nvirtualhost = \"www.example.com\"\n\
             fast_recovery = true\n\
             [[service.health.check.url]]\npath = \"/health\"\nstatus_code = [204]\n\
             digest = \"9b3a0c85a887a256d6939da88aabd8cd\"\n\
             [[service.health.check]]\ntype = \"https\"\nconnect_port = 8443\nverify = true\n\
             [[service.server]]\naddr = \"10.0.1.11\"\n",
        )
        .unwrap();
        let s = c.health()[0].as_ref().unwrap();
        let (a, b) = (&s.checks[0], &s.checks[1]);
        assert_eq!(a.probe.kind(), "https");
        assert_eq!(
            a.timing,
            Timing {
                delay_loop: Duration::from_secs(60),
                connect_timeout: Duration::from_secs(5),
                retry: 1,
                delay_before_retry: Duration::from_secs(3),
                warmup: Duration::from_secs(60),
            }
        );
        assert_eq!(
            a.probe,
            Probe::Http {
                target: "10.0.1.11:443".parse().unwrap(),
                bindto: None,
                urls: vec![Url {
                    path: "/health".into(),
                    status: vec![(204, 204)],
                    digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
                }],
                virtualhost: Some("www.example.com".into()),
                http11: false,
                tls: Some(Tls { verify: false }),
                fast_recovery: true,
            },
            "the service's port; certificates not verified; fast_recovery"
        );
        match &b.probe {
            Probe::Http {
                target, urls, tls, ..
            } => {
                assert_eq!(target.port(), 8443);
                assert_eq!(urls[0].path, "/");
                assert_eq!(*tls, Some(Tls { verify: true }));
            }
            p => panic!("{p:?}"),
        }
        assert!(s.describe().contains("https 10.0.1.11:8443 / verify"));
    }

    #[test]
    fn quorum_and_the_sorry_server() {
        let c = load(&format!(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 80\nscheduler = \"rr\"\n[service.health]\nquorum = 2\nhysteresis = 1\n\
             sorry_server = \"10.0.1.99\"\nsorry_server_mac = \"02:00:00:00:00:99\"\nsorry_server_inhibit = true\n\
             quorum_down = \"logger lost\"\n[[service.health.check]]\ntype = \"tcp\"\n{TWO}\
             [[service]]\nvip = \"10.0.0.1\"\nport = 81\n[[service.server]]\naddr = \"10.0.1.11\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.services()[0].servers.len(),
            3,
            "the sorry server is the last"
        );
        assert_eq!(c.services()[0].servers[2].addr.to_string(), "10.0.1.99");
        assert!(c.health()[2].is_none() && c.health()[3].is_none());
        assert_eq!(c.health().len(), 4);
        let q = c.quorums()[0].as_ref().unwrap();
        assert_eq!(
            (q.quorum, q.hysteresis, q.sorry, q.sorry_inhibit),
            (2, 1, Some(RsId(2)), true)
        );
        assert_eq!(q.quorum_down.as_deref(), Some("logger lost"));
        assert!(c.quorums()[1].is_none());
        for (keys, want) in [
            ("sorry_server = \"10.0.1.11\"", "also a real server"),
            ("sorry_server = \"fd00::9\"", "family"),
            ("sorry_server_inhibit = true", "sorry_server: missing"),
            ("quorum = 0", "quorum: 0 is out of range"),
        ] {
            let e = load(&format!(
                "[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[service.health]\n{keys}\n{TWO}"
            ))
            .unwrap_err();
            assert!(
                e.contains("service[0].health.") && e.contains(want),
                "{keys}: {e}"
            );
        }
        let e = load(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 80\nscheduler = \"mh\"\n[service.health]\nsorry_server = \"10.0.1.9\"\n[[service.server]]\naddr = \"10.0.1.11\"\n",
        )
        .unwrap_err();
        assert!(e.contains("does not hash"), "{e}");
        let e = load(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[[service.server]]\naddr = \"10.0.1.11\"\n[service.server.health]\nquorum = 2\n",
        )
        .unwrap_err();
        assert!(
            e.contains("service[0].server[0].health") && e.contains("[service.health]"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_the_key_and_what_to_write() {
        let cases: &[(&str, &[&str])] = &[
            (
                "type = \"smtp\"",
                &[
                    "service[0].health.check[0].type",
                    "unknown checker",
                    "\"tcp\"",
                ],
            ),
            (
                "type = \"http\"\nverify = true",
                &["check[0].verify", "does not apply to a http check", "https"],
            ),
            (
                "type = \"ssl_get\"\nmisc_path = \"true\"",
                &[
                    "check[0].misc_path/misc_timeout/misc_dynamic",
                    "https check",
                ],
            ),
            (
                "type = \"https\"\nvirtualhost = \"a b\"",
                &["check[0].virtualhost", "host name"],
            ),
            (
                "connect_timeout = 0\ntype = \"tcp\"",
                &["check[0].connect_timeout", "1..=86400"],
            ),
            (
                "type = \"http\"\nstatus_code = [\"200-99\"]",
                &["check[0].status_code[0]", "range"],
            ),
            (
                "type = \"http\"\ndigest = \"abc\"",
                &["check[0].digest", "MD5"],
            ),
            ("type = \"http\"\npath = \"health\"", &["path", "/health"]),
            (
                "type = \"tcp\"\npath = \"/\"",
                &["does not apply to a tcp check"],
            ),
            ("type = \"misc\"", &["check[0].misc_path", "missing"]),
            (
                "type = \"tcp\"\nbindto = \"::1\"",
                &["check[0].bindto", "families"],
            ),
            (
                "type = \"http\"\nhttp_protocol = \"2\"",
                &["http_protocol", "1.1"],
            ),
            (
                "type = \"tcp\"\nfast_recovery = true",
                &["fast_recovery", "does not apply to a tcp check"],
            ),
        ];
        for (check, want) in cases {
            let e = load(&format!(
                "[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[service.health]\n[[service.health.check]]\n{check}\n{TWO}"
            ))
            .err()
            .unwrap_or_else(|| panic!("{check:?} was accepted"));
            for w in *want {
                assert!(e.contains(w), "{check:?}: {e}");
            }
        }
        let e = load(&format!(
            "[[service]]\nfwmark = 1\n[service.health]\n[[service.health.check]]\ntype = \"tcp\"\n{TWO}"
        ))
        .unwrap_err();
        assert!(
            e.contains("check[0].connect_port") && e.contains("set connect_port"),
            "{e}"
        );
        let e = load(&format!(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 80\n[service.health]\nretries = 1\n{TWO}"
        ))
        .unwrap_err();
        assert!(e.contains("unknown field `retries`"), "{e}");
    }
}
