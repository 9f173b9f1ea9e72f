//! The checks themselves, each a blocking function bounded by its
//! timeout, run on a short-lived thread of its own (see `super::runner`):
//! a target that hangs, refuses, resets or answers garbage costs its own
//! thread at most the timeout and never delays another check.
//!
//! - `tcp` (TCP_CHECK): the connect succeeds within `connect_timeout`.
//! - `http` (HTTP_GET): a GET of one of its URLs over plain TCP (the state
//!   machine says which: keepalived fetches one url per check); the
//!   exchange (connect, request, whole response) within `connect_timeout`;
//!   the status must be in the URL's list and, with a `digest`, the MD5 of
//!   the body (as keepalived's `genhash` prints it) must match.
//! - `https` (SSL_GET): the same over TLS (native-tls, the system's
//!   OpenSSL); the handshake counts in the exchange's `connect_timeout`.
//!   The virtualhost is also the SNI name. Certificates are not verified
//!   (keepalived's behaviour) unless `verify` is set.
//! - `misc` (MISC_CHECK): `sh -c misc_path`; exit 0 up, 1 down, killed
//!   after `misc_timeout`; with `misc_dynamic` exit 2..=255 is up with
//!   weight exit−2.
#![forbid(unsafe_code)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use native_tls::{HandshakeError, TlsConnector};

use super::machine::Kind;
use socket2::{Domain, Socket, Type};

/// Largest response read (headers + body); more is a failure.
pub const MAX_RESPONSE: usize = 4 << 20;

/// A status-code range, inclusive.
pub type StatusRange = (u16, u16);

/// One URL of an HTTP check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// The path requested (`/`, `/health?x=1`).
    pub path: String,
    /// Accepted status codes (keepalived's default 200-299).
    pub status: Vec<StatusRange>,
    /// The body's MD5, lowercase hex, if checked.
    pub digest: Option<String>,
}

/// The TLS of an `https` check (keepalived's SSL_GET).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// Verify the server's certificate: a chain to a CA the system trusts
    /// (OpenSSL's default store), valid now, and naming the virtualhost (the
    /// target address when there is none). Off by default: keepalived's
    /// SSL_GET accepts any certificate.
    pub verify: bool,
}

/// What a checker does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// Connect.
    Tcp {
        /// Where.
        target: SocketAddr,
        /// Source address.
        bindto: Option<IpAddr>,
    },
    /// GET every URL, over TLS when `tls` is set (`https`).
    Http {
        /// Where.
        target: SocketAddr,
        /// Source address.
        bindto: Option<IpAddr>,
        /// The URLs, all of which must pass (one fetched per check).
        urls: Vec<Url>,
        /// `Host:` (and the TLS SNI name); the target address when not set.
        virtualhost: Option<String>,
        /// HTTP/1.1 (else 1.0, keepalived's default).
        http11: bool,
        /// Over TLS: an `https` check.
        tls: Option<Tls>,
        /// keepalived's `fast_recovery`: no `delay_loop` between urls
        /// while the checker is not up and knows of no failed url.
        fast_recovery: bool,
    },
    /// Run a script.
    Misc {
        /// The command line, run by `sh -c`.
        path: String,
        /// Weight from the exit status (2..=255 → status − 2).
        dynamic: bool,
    },
}

impl Probe {
    /// The keepalived epilog its checker follows.
    pub fn epilog(&self) -> Kind {
        match self {
            Probe::Tcp { .. } => Kind::Tcp,
            Probe::Misc { .. } => Kind::Misc,
            Probe::Http {
                urls,
                fast_recovery,
                ..
            } => Kind::Http {
                urls: urls.len().max(1),
                fast_recovery: *fast_recovery,
            },
        }
    }

    /// `tcp`, `http`, `https` or `misc`.
    pub fn kind(&self) -> &'static str {
        match self {
            Probe::Tcp { .. } => "tcp",
            Probe::Http { tls: None, .. } => "http",
            Probe::Http { tls: Some(_), .. } => "https",
            Probe::Misc { .. } => "misc",
        }
    }
}

/// The result of one check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Passed.
    pub ok: bool,
    /// A weight the check asks for (misc_dynamic).
    pub weight: Option<u32>,
    /// What happened, for the operator ("connect: refused", "status 503").
    pub reason: String,
}

impl Outcome {
    fn pass(reason: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            weight: None,
            reason: reason.into(),
        }
    }

    fn fail(reason: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            weight: None,
            reason: reason.into(),
        }
    }
}

/// Runs `probe` with `timeout` (connect timeout, or the script's timeout);
/// an http check fetches its url number `url` (the first if out of range).
pub fn run(probe: &Probe, url: usize, timeout: Duration) -> Outcome {
    match probe {
        Probe::Tcp { target, bindto } => match connect(*target, *bindto, timeout) {
            Ok(_) => Outcome::pass("connected"),
            Err(e) => Outcome::fail(format!("connect: {e}")),
        },
        Probe::Http {
            target,
            bindto,
            urls,
            virtualhost,
            http11,
            tls,
            ..
        } => {
            let host = Host {
                header: virtualhost.clone().unwrap_or_else(|| match target.ip() {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                }),
                // An address is never sent as SNI; with `verify` it is
                // matched against the certificate's IP addresses.
                tls_name: virtualhost
                    .clone()
                    .unwrap_or_else(|| target.ip().to_string()),
            };
            let Some(u) = urls.get(url).or(urls.first()) else {
                return Outcome::pass("no url");
            };
            match http_get(*target, *bindto, &host, u, *http11, *tls, timeout) {
                Ok(()) => Outcome::pass(format!("{}: ok", u.path)),
                Err(e) => Outcome::fail(format!("{}: {e}", u.path)),
            }
        }
        Probe::Misc { path, dynamic } => misc(path, *dynamic, timeout),
    }
}

fn connect(
    target: SocketAddr,
    bindto: Option<IpAddr>,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
    if let Some(b) = bindto {
        s.bind(&SocketAddr::new(b, 0).into())?;
    }
    s.connect_timeout(&target.into(), timeout)?;
    Ok(s.into())
}

fn io_kind(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".into(),
        _ => e.to_string(),
    }
}

/// The names an HTTP(S) check gives the server.
struct Host {
    /// `Host:`.
    header: String,
    /// The TLS server name: SNI, and what `verify` matches.
    tls_name: String,
}

/// A TCP stream each of whose reads and writes ends by `deadline`: the
/// whole exchange (TLS handshake, request, response) is bounded however
/// the peer paces its bytes. A timeout is `TimedOut`, never `WouldBlock`
/// (which TLS would take for "try again").
struct Bounded {
    s: TcpStream,
    deadline: Instant,
}

impl Bounded {
    fn left(&self) -> io::Result<Duration> {
        let d = self.deadline.saturating_duration_since(Instant::now());
        if d.is_zero() {
            Err(io::ErrorKind::TimedOut.into())
        } else {
            Ok(d)
        }
    }
}

fn timed_out(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock => io::ErrorKind::TimedOut.into(),
        _ => e,
    }
}

impl Read for Bounded {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.s.set_read_timeout(Some(self.left()?))?;
        self.s.read(buf).map_err(timed_out)
    }
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.s.set_write_timeout(Some(self.left()?))?;
        self.s.write(buf).map_err(timed_out)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.s.flush()
    }
}

/// The process's TLS client of each kind, built once (OpenSSL context,
/// the trusted CAs loaded once).
fn connector(tls: Tls) -> Result<&'static TlsConnector, String> {
    static LAX: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    static VERIFYING: OnceLock<Result<TlsConnector, String>> = OnceLock::new();
    let cell = if tls.verify { &VERIFYING } else { &LAX };
    cell.get_or_init(|| {
        TlsConnector::builder()
            .danger_accept_invalid_certs(!tls.verify)
            .danger_accept_invalid_hostnames(!tls.verify)
            .build()
            .map_err(|e| format!("cannot set up TLS: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

fn http_get(
    target: SocketAddr,
    bindto: Option<IpAddr>,
    host: &Host,
    url: &Url,
    http11: bool,
    tls: Option<Tls>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let s = connect(target, bindto, timeout).map_err(|e| format!("connect: {e}"))?;
    let s = Bounded { s, deadline };
    let req = format!(
        "GET {} HTTP/1.{}\r\nHost: {}\r\nUser-Agent: pmdlb-health\r\nConnection: close\r\n\r\n",
        url.path,
        u8::from(http11),
        host.header,
    );
    let buf = match tls {
        None => exchange(s, &req, false)?,
        Some(t) => {
            let tls = connector(t)?
                .connect(&host.tls_name, s)
                .map_err(|e| match e {
                    HandshakeError::Failure(_) if Instant::now() >= deadline => {
                        "tls handshake: timed out".to_owned()
                    }
                    HandshakeError::Failure(e) => format!("tls handshake: {e}"),
                    HandshakeError::WouldBlock(_) => "tls handshake: timed out".to_owned(),
                })?;
            exchange(tls, &req, true)?
        }
    };
    let (status, body) = parse_response(&buf)?;
    if !url
        .status
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&status))
    {
        return Err(format!("status {status}"));
    }
    if let Some(want) = &url.digest {
        let got = format!("{:x}", md5::compute(body));
        if &got != want {
            return Err(format!("digest {got}, expected {want}"));
        }
    }
    Ok(())
}

/// Sends `req` and reads the whole response, until the server closes.
/// Over TLS a close without close_notify ends the response as well, once
/// some of it came (as keepalived, and most servers, do).
fn exchange(mut s: impl Read + Write, req: &str, tls: bool) -> Result<Vec<u8>, String> {
    s.write_all(req.as_bytes())
        .and_then(|()| s.flush())
        .map_err(|e| format!("send: {}", io_kind(&e)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => return Ok(buf),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > MAX_RESPONSE {
                    return Err(format!("response over {MAX_RESPONSE} bytes"));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if tls && !buf.is_empty() && e.kind() != io::ErrorKind::TimedOut => {
                return Ok(buf)
            }
            Err(e) => return Err(format!("response: {}", io_kind(&e))),
        }
    }
}

/// The status code and body of a whole (connection-closed) response;
/// chunked bodies are decoded.
pub fn parse_response(buf: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            if buf.is_empty() {
                "empty response".to_owned()
            } else {
                "not an HTTP response (no header end)".to_owned()
            }
        })?;
    let head = std::str::from_utf8(&buf[..end])
        .map_err(|_| "not an HTTP response (the header is not text)".to_owned())?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or_default();
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .filter(|_| version.starts_with("HTTP/1."))
        .ok_or_else(|| {
            format!(
                "not an HTTP status line: {:?}",
                &status_line[..status_line.len().min(40)]
            )
        })?;
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let raw = &buf[end + 4..];
    let body = if chunked { dechunk(raw)? } else { raw.to_vec() };
    Ok((status, body))
}

fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let nl = raw
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk")?;
        let size_text = std::str::from_utf8(&raw[..nl]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| "bad chunk size")?;
        raw = &raw[nl + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).ok_or("truncated chunk")?;
    }
}

fn misc(path: &str, dynamic: bool, timeout: Duration) -> Outcome {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let mut child = match Command::new("sh")
        .args(["-c", path])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Outcome::fail(format!("cannot run sh: {e}")),
    };
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() >= deadline => {
                // The whole process group: the script and what it started.
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Outcome::fail(format!("timed out after {:?}", timeout));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Outcome::fail(format!("wait: {e}")),
        }
    };
    match status.code() {
        Some(0) => Outcome::pass("exit 0"),
        Some(c) if dynamic && (2..=255).contains(&c) => Outcome {
            ok: true,
            weight: Some(c as u32 - 2),
            reason: format!("exit {c}: weight {}", c - 2),
        },
        Some(c) => Outcome::fail(format!("exit {c}")),
        None => Outcome::fail(format!("killed by signal {}", status.signal().unwrap_or(0))),
    }
}
