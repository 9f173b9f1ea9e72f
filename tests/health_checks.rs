//! The health checkers against local listeners on 127.0.0.1: targets that
//! hang, refuse, reset, answer garbage, a wrong status or a wrong digest
//! fail within their timeouts; a hanging target never delays another
//! check; and a thousand checks, some of them hanging, each start within
//! their interval round after round (lateness printed).
//! The https listeners serve a self-signed certificate made at test time
//! with the `openssl` CLI (native-tls's acceptor, on threads).
//! Time bounds are generous (the machine is shared); elapsed times are
//! printed for the record.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use native_tls::{Identity, TlsAcceptor};
use pmdlb::control::health::probe::{run, Outcome, Probe, Tls, Url};
use pmdlb::control::health::runner::BOOTSTRAP_DELAY;
use pmdlb::control::health::{CheckSpec, HealthEvent, Runner, ServerChecks, Timing};

/// Slack added to every "fails within its timeout" bound.
const SLACK: Duration = Duration::from_millis(1500);

/// A listener on 127.0.0.1 that answers every connection with `serve`,
/// on a thread of its own per connection; streams are kept open (so a
/// hanging target stays hanging) until the test process ends.
fn listener(serve: fn(TcpStream)) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            thread::spawn(move || serve(s));
        }
    });
    addr
}

fn read_request(s: &mut impl Read) {
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

fn answer(mut s: TcpStream, text: &[u8]) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    read_request(&mut s);
    let _ = s.write_all(text);
}

fn hang(s: TcpStream) {
    static KEPT: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());
    KEPT.lock().unwrap().push(s);
}

fn refused() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
    // dropped: nothing listens there any more
}

fn http(target: SocketAddr, path: &str, digest: Option<&str>) -> Probe {
    Probe::Http {
        target,
        bindto: None,
        urls: vec![Url {
            path: path.into(),
            status: vec![(200, 299)],
            digest: digest.map(str::to_owned),
        }],
        virtualhost: None,
        http11: false,
        tls: None,
        fast_recovery: false,
    }
}

/// Runs a check of its first url.
fn run_one(p: &Probe, timeout: Duration) -> Outcome {
    run(p, 0, timeout)
}

fn timed(p: &Probe, timeout: Duration) -> (Outcome, Duration) {
    let t0 = Instant::now();
    let o = run_one(p, timeout);
    (o, t0.elapsed())
}

const HELLO_MD5: &str = "5d41402abc4b2a76b9719d911017c592";

#[test]
fn http_passes_with_the_right_status_and_digest() {
    let ok = listener(|s| answer(s, b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"));
    let (o, _) = timed(&http(ok, "/", Some(HELLO_MD5)), Duration::from_secs(2));
    assert!(o.ok, "{o:?}");
    let chunked = listener(|s| {
        answer(
            s,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n",
        )
    });
    let (o, _) = timed(&http(chunked, "/", Some(HELLO_MD5)), Duration::from_secs(2));
    assert!(o.ok, "chunked body digested whole: {o:?}");
    let (o, _) = timed(
        &Probe::Tcp {
            target: ok,
            bindto: Some("127.0.0.1".parse().unwrap()),
        },
        Duration::from_secs(2),
    );
    assert!(o.ok, "tcp with bindto: {o:?}");
}

#[test]
fn http_fetches_the_url_it_is_given() {
    // 200 for /a, 404 for anything else.
    let by_path = listener(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        let n = s.read(&mut buf).unwrap_or(0);
        let text: &[u8] = if buf[..n].starts_with(b"GET /a ") {
            b"HTTP/1.0 200 OK\r\n\r\na"
        } else {
            b"HTTP/1.0 404 Not Found\r\n\r\n"
        };
        let _ = s.write_all(text);
    });
    let mut p = http(by_path, "/a", None);
    if let Probe::Http { urls, .. } = &mut p {
        urls.push(Url {
            path: "/b".into(),
            status: vec![(200, 299)],
            digest: None,
        });
    }
    let t = Duration::from_secs(2);
    let (first, second) = (run(&p, 0, t), run(&p, 1, t));
    assert!(first.ok && first.reason == "/a: ok", "{first:?}");
    assert!(
        !second.ok && second.reason == "/b: status 404",
        "{second:?}"
    );
    assert!(run(&p, 9, t).ok, "out of range: the first url");
}

#[test]
fn bad_targets_fail_within_their_timeouts() {
    let timeout = Duration::from_millis(700);
    let hanging = listener(hang);
    let reset = listener(|s| {
        let s = socket2::Socket::from(s);
        let _ = s.set_linger(Some(Duration::ZERO));
        drop(s);
    });
    let garbage = listener(|s| answer(s, b"\x00\x01garbage\xff\r\n\r\nmore"));
    let status = listener(|s| answer(s, b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy"));
    let digest = listener(|s| answer(s, b"HTTP/1.0 200 OK\r\n\r\nbye"));
    let silent_close = listener(|mut s| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        read_request(&mut s)
    });
    let no = refused();
    let cases: Vec<(&str, Probe, &str)> = vec![
        (
            "tcp refused",
            Probe::Tcp {
                target: no,
                bindto: None,
            },
            "connect",
        ),
        ("http refused", http(no, "/", None), "connect"),
        ("http hang", http(hanging, "/", None), "timed out"),
        ("http reset", http(reset, "/", None), ""),
        ("http garbage", http(garbage, "/", None), "HTTP"),
        ("http 503", http(status, "/", None), "status 503"),
        ("http digest", http(digest, "/", Some(HELLO_MD5)), "digest"),
        (
            "http closed",
            http(silent_close, "/", None),
            "empty response",
        ),
    ];
    // All at once: none waits for another.
    let t0 = Instant::now();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, p, want)| thread::spawn(move || (name, want, timed(&p, timeout))))
        .collect();
    for h in handles {
        let (name, want, (o, took)) = h.join().unwrap();
        println!("{name}: {took:?} {o:?}");
        assert!(!o.ok, "{name} passed: {o:?}");
        assert!(o.reason.contains(want), "{name}: {o:?}");
        assert!(took <= timeout + SLACK, "{name} took {took:?}");
    }
    assert!(
        t0.elapsed() <= timeout + SLACK,
        "run together: {:?}",
        t0.elapsed()
    );
}

/// A self-signed certificate for CN=rs and its key (PEM), made once per
/// test process by the `openssl` CLI in a scratch directory.
fn identity() -> Identity {
    static PEMS: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    let (cert, key) = PEMS.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pmdlb-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes"])
            .args(["-subj", "/CN=rs", "-days", "1", "-keyout"])
            .arg(dir.join("k.pem"))
            .arg("-out")
            .arg(dir.join("c.pem"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("the openssl CLI (scripts/install-deps.sh installs it)");
        assert!(st.success(), "openssl req: {st}");
        let pems = (
            std::fs::read(dir.join("c.pem")).unwrap(),
            std::fs::read(dir.join("k.pem")).unwrap(),
        );
        let _ = std::fs::remove_dir_all(&dir);
        pems
    });
    Identity::from_pkcs8(cert, key).unwrap()
}

/// An HTTPS listener on 127.0.0.1 that answers every request with `text`,
/// then closes with a TLS close_notify or, as many servers do, without.
fn https_listener(text: &'static [u8], close_notify: bool) -> SocketAddr {
    let acceptor = Arc::new(TlsAcceptor::new(identity()).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let acceptor = Arc::clone(&acceptor);
            thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let Ok(mut s) = acceptor.accept(s) else {
                    return;
                };
                read_request(&mut s);
                let _ = s.write_all(text);
                if close_notify {
                    let _ = s.shutdown();
                }
            });
        }
    });
    addr
}

/// An HTTPS listener that completes the handshake, reads the request and
/// never answers.
fn https_mute() -> SocketAddr {
    let acceptor = Arc::new(TlsAcceptor::new(identity()).unwrap());
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    thread::spawn(move || {
        for s in l.incoming().flatten() {
            let acceptor = Arc::clone(&acceptor);
            thread::spawn(move || {
                if let Ok(mut s) = acceptor.accept(s) {
                    read_request(&mut s);
                    thread::sleep(Duration::from_secs(30));
                }
            });
        }
    });
    addr
}

fn https(target: SocketAddr, digest: Option<&str>) -> Probe {
    match http(target, "/", digest) {
        Probe::Http {
            target,
            bindto,
            urls,
            virtualhost,
            http11,
            fast_recovery,
            ..
        } => Probe::Http {
            target,
            bindto,
            urls,
            virtualhost,
            http11,
            tls: Some(Tls::default()),
            fast_recovery,
        },
        p => p,
    }
}

#[test]
fn https_passes_with_the_right_status_and_digest() {
    let ok = https_listener(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", true);
    let (o, took) = timed(&https(ok, Some(HELLO_MD5)), Duration::from_secs(2));
    println!("https: {took:?} {o:?}");
    assert!(o.ok, "{o:?}");
    let abrupt = https_listener(b"HTTP/1.0 200 OK\r\n\r\nhello", false);
    let (o, _) = timed(&https(abrupt, Some(HELLO_MD5)), Duration::from_secs(2));
    assert!(o.ok, "a close without close_notify ends the body: {o:?}");
    // verify = true: a self-signed certificate (for CN=rs, not the
    // address) is refused.
    let mut strict = https(ok, None);
    if let Probe::Http { tls, .. } = &mut strict {
        *tls = Some(Tls { verify: true });
    }
    let (o, _) = timed(&strict, Duration::from_secs(2));
    println!("verify: {o:?}");
    assert!(
        !o.ok && o.reason.contains("tls handshake") && o.reason.contains("certificate"),
        "{o:?}"
    );
    assert_eq!(strict.kind(), "https");
}

#[test]
fn bad_https_targets_fail_within_their_timeouts() {
    let timeout = Duration::from_millis(700);
    let hanging = listener(hang);
    let mute = https_mute();
    let status = https_listener(b"HTTP/1.0 503 Service Unavailable\r\n\r\nbusy", true);
    let digest = https_listener(b"HTTP/1.0 200 OK\r\n\r\nbye", true);
    // A plain HTTP server answers the ClientHello as a bad request.
    let plain = listener(|mut s| {
        let _ = s.read(&mut [0u8; 2048]);
        let _ = s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    });
    let cases: Vec<(&str, Probe, &str)> = vec![
        ("https refused", https(refused(), None), "connect"),
        (
            "https silent tcp",
            https(hanging, None),
            "tls handshake: timed out",
        ),
        ("https mute", https(mute, None), "response: timed out"),
        ("https 503", https(status, None), "status 503"),
        ("https digest", https(digest, Some(HELLO_MD5)), "digest"),
        (
            "https to plain http",
            https(plain, None),
            "tls handshake: error",
        ),
    ];
    let t0 = Instant::now();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, p, want)| thread::spawn(move || (name, want, timed(&p, timeout))))
        .collect();
    for h in handles {
        let (name, want, (o, took)) = h.join().unwrap();
        println!("{name}: {took:?} {o:?}");
        assert!(!o.ok, "{name} passed: {o:?}");
        assert!(o.reason.contains(want), "{name}: {o:?}");
        assert!(took <= timeout + SLACK, "{name} took {took:?}");
    }
    assert!(
        t0.elapsed() <= timeout + SLACK,
        "run together: {:?}",
        t0.elapsed()
    );
}

#[test]
fn https_sends_the_virtualhost_as_sni() {
    // A plain listener that keeps the ClientHello and closes: the SNI
    // name travels in it in the clear.
    let hello = |virtualhost: Option<&str>| -> Vec<u8> {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = l.local_addr().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            buf.truncate(n);
            tx.send(buf).unwrap();
        });
        let mut p = https(target, None);
        if let Probe::Http { virtualhost: v, .. } = &mut p {
            *v = virtualhost.map(str::to_owned);
        }
        let (o, _) = timed(&p, Duration::from_secs(2));
        assert!(!o.ok);
        rx.recv_timeout(Duration::from_secs(2)).unwrap()
    };
    let named = hello(Some("rs.example.test"));
    assert_eq!(named.first(), Some(&0x16), "a TLS handshake record");
    assert!(
        named.windows(15).any(|w| w == b"rs.example.test"),
        "the SNI name is in the ClientHello"
    );
    let bare = hello(None);
    assert!(
        !bare.windows(9).any(|w| w == b"127.0.0.1"),
        "an address is not sent as SNI"
    );
}

#[test]
fn tcp_to_an_unrouted_address_times_out() {
    // TEST-NET-1 is never routed; the connect hangs until the timeout (or
    // fails at once where there is no route at all).
    let p = Probe::Tcp {
        target: "192.0.2.1:80".parse().unwrap(),
        bindto: None,
    };
    let (o, took) = timed(&p, Duration::from_millis(500));
    assert!(
        !o.ok && took <= Duration::from_millis(500) + SLACK,
        "{took:?} {o:?}"
    );
}

#[test]
fn misc_exit_codes_dynamic_weight_and_timeout() {
    let misc = |path: &str, dynamic: bool| Probe::Misc {
        path: path.into(),
        dynamic,
    };
    let t = Duration::from_secs(5);
    assert!(run_one(&misc("exit 0", false), t).ok);
    assert!(!run_one(&misc("exit 1", true), t).ok);
    assert!(
        !run_one(&misc("exit 7", false), t).ok,
        "7 without misc_dynamic is down"
    );
    let o = run_one(&misc("exit 7", true), t);
    assert!(o.ok && o.weight == Some(5), "{o:?}");
    let o = run_one(&misc("exit 2", true), t);
    assert_eq!(o.weight, Some(0));
    let (o, took) = timed(&misc("sleep 30", false), Duration::from_millis(300));
    assert!(!o.ok && o.reason.contains("timed out"), "{o:?}");
    assert!(took <= Duration::from_millis(300) + SLACK, "{took:?}");
}

fn timing(delay_loop: u64, timeout_ms: u64) -> Timing {
    Timing {
        delay_loop: Duration::from_secs(delay_loop),
        connect_timeout: Duration::from_millis(timeout_ms),
        retry: 0,
        delay_before_retry: Duration::from_secs(1),
        warmup: Duration::ZERO,
    }
}

fn server(probe: Probe, t: Timing) -> Option<ServerChecks> {
    Some(ServerChecks {
        checks: vec![CheckSpec { probe, timing: t }],
        alpha: false,
        inhibit_on_failure: false,
        notify_up: None,
        notify_down: None,
    })
}

/// The time each server's first result arrived (and whether it passed);
/// `None` where none came before the deadline.
type Firsts = Vec<Option<(Duration, bool)>>;

/// Collects the runner's first result per server until all `n` came, or
/// the deadline; also counts the servers reported down.
fn first_results(r: &Runner, n: usize, deadline: Duration) -> (Firsts, usize) {
    let t0 = Instant::now();
    let mut got = vec![None; n];
    let mut left = n;
    let mut downs = 0;
    while left > 0 && t0.elapsed() < deadline {
        r.drain(|ev| match ev {
            HealthEvent::Result { rs, outcome, .. } => {
                let slot = &mut got[rs.0 as usize];
                if slot.is_none() {
                    *slot = Some((t0.elapsed(), outcome.ok));
                    left -= 1;
                }
            }
            HealthEvent::Server { up, .. } => downs += usize::from(!up),
        });
        thread::sleep(Duration::from_millis(5));
    }
    (got, downs)
}

#[test]
fn hanging_targets_do_not_delay_other_checks() {
    let hanging = listener(hang);
    let ok = listener(|s| answer(s, b"HTTP/1.0 200 OK\r\n\r\nhello"));
    let mut servers: Vec<Option<ServerChecks>> = (0..20)
        .map(|_| server(http(hanging, "/", None), timing(60, 3000)))
        .collect();
    servers.push(server(http(ok, "/", None), timing(60, 3000)));
    servers.push(server(
        Probe::Tcp {
            target: ok,
            bindto: None,
        },
        timing(60, 3000),
    ));
    let r = Runner::start(&servers).unwrap().unwrap();
    let (got, mut downs) = first_results(&r, servers.len(), Duration::from_secs(10));
    println!("{:?}", &got[18..]);
    for (i, g) in got.iter().enumerate().skip(20) {
        let (at, ok) = g.expect("the healthy checks answered");
        assert!(
            ok && at < BOOTSTRAP_DELAY + Duration::from_millis(1500),
            "check {i}: {at:?}"
        );
    }
    for g in &got[..20] {
        let (at, ok) = g.expect("the hanging checks end at their timeout");
        assert!(
            !ok && at >= BOOTSTRAP_DELAY + Duration::from_millis(2900)
                && at < BOOTSTRAP_DELAY + Duration::from_millis(3000) + SLACK
        );
    }
    // The runner also reports the state change of the failed servers.
    let t0 = Instant::now();
    while downs < 20 && t0.elapsed() < Duration::from_secs(5) {
        r.drain(|ev| downs += usize::from(matches!(ev, HealthEvent::Server { up: false, .. })));
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(downs, 20, "retry 0: every hanging server goes down");
}

/// One check's result as the runner reported it.
struct Ran {
    rs: usize,
    at: Duration,
    ok: bool,
    late: Duration,
}

/// Every result the runner reports during `window`.
fn results_for(r: &Runner, window: Duration) -> Vec<Ran> {
    let t0 = Instant::now();
    let mut got = Vec::new();
    while t0.elapsed() < window {
        r.drain(|ev| {
            if let HealthEvent::Result {
                rs, outcome, late, ..
            } = ev
            {
                got.push(Ran {
                    rs: rs.0 as usize,
                    at: t0.elapsed(),
                    ok: outcome.ok,
                    late,
                });
            }
        });
        thread::sleep(Duration::from_millis(5));
    }
    got
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

/// A thousand checks in one process over several rounds of a 2 s
/// delay_loop, all first due at the same instant (warmup 0): 500 tcp checks of listeners, 200 of a refused port, 150
/// http checks of a target that accepts and never answers (each holds its
/// thread for the whole 1.5 s timeout) and 150 http checks that pass. How
/// late each check started after it was due is printed (median, 99th
/// percentile, worst) and must stay below delay_loop: every check runs
/// within its interval however many hang.
#[test]
fn a_thousand_checks_run_within_their_intervals() {
    let up: Vec<SocketAddr> = (0..4).map(|_| listener(drop)).collect();
    let no = refused();
    let slow = listener(|s| {
        thread::sleep(Duration::from_secs(3));
        drop(s)
    });
    let ok = listener(|s| answer(s, b"HTTP/1.0 200 OK\r\n\r\nhello"));
    let delay_loop = Duration::from_secs(2);
    let t = Timing {
        delay_loop,
        connect_timeout: Duration::from_millis(1500),
        retry: 1,
        delay_before_retry: Duration::from_secs(1),
        // The worst case: all thousand due at the same instant (keepalived's
        // default warmup, delay_loop, would spread them over 2 s).
        warmup: Duration::ZERO,
    };
    let tcp = |target| Probe::Tcp {
        target,
        bindto: None,
    };
    let servers: Vec<Option<ServerChecks>> = (0..1000)
        .map(|i| match i {
            0..=499 => server(tcp(up[i % 4]), t),
            500..=699 => server(tcp(no), t),
            700..=849 => server(http(slow, "/", None), t),
            _ => server(http(ok, "/", Some(HELLO_MD5)), t),
        })
        .collect();
    let window = Duration::from_secs(10);
    let r = Runner::start(&servers).unwrap().unwrap();
    let ran = results_for(&r, window);
    drop(r);
    let mut late: Vec<Duration> = ran.iter().map(|x| x.late).collect();
    late.sort();
    let mut per_server = vec![0usize; 1000];
    for x in &ran {
        per_server[x.rs] += 1;
    }
    let kinds = [
        ("tcp up", 0..500),
        ("tcp refused", 500..700),
        ("http hanging", 700..850),
        ("http ok", 850..1000),
    ];
    println!(
        "1000 checks, delay_loop {delay_loop:?}, {} results in {window:?}: start lateness median {:?}, p99 {:?}, max {:?}",
        ran.len(),
        percentile(&late, 50),
        percentile(&late, 99),
        late.last().copied().unwrap_or_default()
    );
    for (name, range) in kinds.clone() {
        let of: Vec<&Ran> = ran.iter().filter(|x| range.contains(&x.rs)).collect();
        let mut l: Vec<Duration> = of.iter().map(|x| x.late).collect();
        l.sort();
        let first_round_done = range
            .clone()
            .filter_map(|rs| ran.iter().find(|x| x.rs == rs).map(|x| x.at))
            .max()
            .unwrap_or_default();
        println!(
            "  {name}: {} results ({} passed), runs per check {}..={}, lateness max {:?}, first round complete after {first_round_done:?}",
            of.len(),
            of.iter().filter(|x| x.ok).count(),
            per_server[range.clone()].iter().min().unwrap(),
            per_server[range.clone()].iter().max().unwrap(),
            l.last().copied().unwrap_or_default()
        );
    }
    for (name, range) in kinds {
        // First due 1 s after start (the bootstrap delay), then every 2 s
        // after a result (hanging: 1.5 s each, a retry 1 s after the
        // first, down, then every 2 s: results at 2.5, 5 and 8.5 s): at
        // least three runs each within the 10 s window.
        let fewest = per_server[range].iter().min().copied().unwrap_or(0);
        assert!(fewest >= 3, "{name}: a check ran only {fewest} times");
    }
    assert!(
        late.last().is_some_and(|&l| l < delay_loop),
        "a check started a whole delay_loop late"
    );
    assert!(
        ran.iter().filter(|x| x.rs >= 850).all(|x| x.ok),
        "the answering http target passed every check"
    );
}

#[test]
fn notify_scripts_run_on_state_changes() {
    let dir = std::env::temp_dir().join(format!("pmdlb-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = |n: &str| dir.join(n);
    let misc = |p: &str| Probe::Misc {
        path: p.into(),
        dynamic: false,
    };
    let with = |probe: Probe, alpha: bool| {
        let mut s = server(probe, timing(60, 2000)).unwrap();
        s.alpha = alpha;
        s.notify_up = Some(format!("echo up >> {}", file("up").display()));
        s.notify_down = Some(format!("echo down >> {}", file("down").display()));
        Some(s)
    };
    // An alpha server that passes comes up; a plain one that fails goes down.
    let servers = vec![with(misc("exit 0"), true), with(misc("exit 1"), false)];
    let r = Runner::start(&servers).unwrap().unwrap();
    let t0 = Instant::now();
    let mut events = Vec::new();
    let read = |n: &str| std::fs::read_to_string(file(n)).unwrap_or_default();
    while (read("up") != "up\n" || read("down") != "down\n")
        && t0.elapsed() < Duration::from_secs(10)
    {
        r.drain(|ev| {
            if let HealthEvent::Server { rs, up } = ev {
                events.push((rs.0, up));
            }
        });
        thread::sleep(Duration::from_millis(20));
    }
    // The events were sent before the scripts ran.
    r.drain(|ev| {
        if let HealthEvent::Server { rs, up } = ev {
            events.push((rs.0, up));
        }
    });
    drop(r);
    let (up, down) = (read("up"), read("down"));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        (up.as_str(), down.as_str()),
        ("up\n", "down\n"),
        "{events:?}"
    );
    events.sort();
    assert_eq!(events, [(0, true), (1, false)]);
}
