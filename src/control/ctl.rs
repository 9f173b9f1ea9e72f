//! Runtime commands over a Unix socket (`pmdlb ctl`, later `pmdlb admin`):
//! the socket, its server thread and the wire protocol. The control loop
//! never touches a client: it takes complete requests with
//! [`CtlServer::try_next`] (never blocks) and answers each with
//! [`Request::reply`] (never blocks); client threads do all the reading and
//! writing, each under a size and a time bound.
//!
//! ## Socket
//! `/run/pmdlb/PREFIX.sock`, mode 0600, in a directory made (or fixed to)
//! mode 0700: only its owner (root) may send commands.
//!
//! ## Protocol (one request per connection)
//! - The client writes the request — a command line, then optionally a
//!   body of further lines (e.g. an `admin -R` rules file) — and shuts down
//!   its write side: end of file ends the request. At most
//!   [`MAX_REQUEST`] bytes (1 MiB), complete within [`REQUEST_TIME`]; UTF-8.
//! - The server answers with one status line, then the body, then closes:
//!   `STATUS\n` followed by the body. STATUS is a decimal exit status as
//!   ipvsadm's: 0 done, 1 the command failed (or the server is busy or
//!   stopping), 2 the request was not understood (unknown command, bad
//!   arguments, a body where none is taken, too large, too slow, not UTF-8).
//!   An error body starts with `error: `. Answers are at most
//!   [`MAX_ANSWER`] bytes and must be read within [`ANSWER_TIME`].
//! - At most [`MAX_CLIENTS`] clients are served at once (a thread each);
//!   one more is answered `1` / `error: … busy` at once.
//!
//! By hand: `printf stats | socat - UNIX-CONNECT:/run/pmdlb/PREFIX.sock`
//! (socat shuts down its write side at the end of its input).
//!
//! ## Commands
//! - `stats` — per-worker counters, totals and the real-server table
//! - `servers` — services and real servers (weight, connections, MAC), as `ipvsadm -Ln`
//! - `servers --stats [--exact]` — connections, packets and bytes per service
//!   and server, as `ipvsadm -Ln --stats [--exact]`
//! - `servers --rate` — estimated rates, as `ipvsadm -Ln --rate`
//! - `weight SERVICE SERVER WEIGHT` — set a weight (0 = quiescent)
//! - `remove SERVICE SERVER` — take a server out (`expire_nodest_conn` applies)
//! - `reload` — re-read the configuration and apply what may change (as SIGHUP)
//! - `stop` — graceful stop, as SIGTERM (VIP routes withdrawn first)
//! - `status` — the VIP announcement (`[announce]`): state, each VIP, counts
//! - `drain` — withdraw the VIP routes and keep forwarding (graceful drain
//!   before maintenance: routers move new flows to the other directors)
//! - `undrain` — announce the VIPs again
//!
//! SERVICE is `tcp:VIP:PORT`, `udp:VIP:PORT`, `sctp:VIP:PORT` (IPv6 VIP in
//! brackets: `tcp:[fd00::1]:80`) or `fwmark:N`; SERVER is an address.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::lb::spec::ServiceAddr;
use crate::lb::types::ip_proto;

/// A parsed runtime command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Print statistics.
    Stats,
    /// List services and servers.
    Servers,
    /// Traffic counters per service and server (`ipvsadm -L --stats`).
    ServerStats {
        /// Full numbers, no K/M/G abbreviation (`--exact`).
        exact: bool,
    },
    /// Estimated rates per service and server (`ipvsadm -L --rate`).
    ServerRates,
    /// Set a real server's weight.
    Weight {
        /// The service.
        service: ServiceAddr,
        /// The server's address.
        server: IpAddr,
        /// New weight.
        weight: u32,
    },
    /// Remove a real server.
    Remove {
        /// The service.
        service: ServiceAddr,
        /// The server's address.
        server: IpAddr,
    },
    /// Stop pmdlb.
    Stop,
    /// Re-read the configuration (as SIGHUP).
    Reload,
    /// The VIP announcement's state.
    Status,
    /// Withdraw the VIP routes, keep forwarding.
    Drain,
    /// Announce the VIPs again after a drain.
    Undrain,
    /// The sync daemon's settings and counters.
    Sync,
}

/// Parses `tcp:10.0.0.1:80`, `udp:[fd00::1]:53` or `fwmark:7`.
pub fn parse_service(s: &str) -> Result<ServiceAddr, String> {
    let (kind, rest) = s
        .split_once(':')
        .ok_or_else(|| format!("service {s:?}: expected PROTO:VIP:PORT or fwmark:N"))?;
    let proto = match kind {
        "fwmark" => {
            let n = rest
                .parse::<u32>()
                .map_err(|_| format!("service {s:?}: fwmark must be a number"))?;
            return Ok(ServiceAddr::Fwmark(n));
        }
        "tcp" => ip_proto::TCP,
        "udp" => ip_proto::UDP,
        "sctp" => ip_proto::SCTP,
        other => {
            return Err(format!(
                "service {s:?}: unknown protocol {other:?} (tcp, udp, sctp or fwmark)"
            ))
        }
    };
    let sock: std::net::SocketAddr = rest.parse().map_err(|_| {
        format!("service {s:?}: expected VIP:PORT after the protocol ([v6]:port for IPv6)")
    })?;
    Ok(ServiceAddr::Addr {
        proto,
        vip: sock.ip(),
        port: sock.port(),
    })
}

/// Parses one request line.
pub fn parse(line: &str) -> Result<Command, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let addr = |w: &str| {
        w.parse::<IpAddr>()
            .map_err(|_| format!("{w:?} is not an IP address"))
    };
    match words.as_slice() {
        ["stats"] => Ok(Command::Stats),
        ["servers"] => Ok(Command::Servers),
        ["servers", "--stats" | "stats"] => Ok(Command::ServerStats { exact: false }),
        ["servers", "--stats" | "stats", "--exact" | "exact"]
        | ["servers", "--exact" | "exact", "--stats" | "stats"] => {
            Ok(Command::ServerStats { exact: true })
        }
        ["servers", "--rate" | "rate"] => Ok(Command::ServerRates),
        ["stop"] => Ok(Command::Stop),
        ["reload"] => Ok(Command::Reload),
        ["status"] => Ok(Command::Status),
        ["drain"] => Ok(Command::Drain),
        ["undrain"] => Ok(Command::Undrain),
        ["sync"] => Ok(Command::Sync),
        ["weight", svc, server, w] => Ok(Command::Weight {
            service: parse_service(svc)?,
            server: addr(server)?,
            weight: w.parse().map_err(|_| format!("weight {w:?} is not a number 0..=65535"))?,
        }),
        ["remove", svc, server] => Ok(Command::Remove { service: parse_service(svc)?, server: addr(server)? }),
        _ => Err(format!(
            "unknown command {line:?}; commands: stats | servers [--stats [--exact] | --rate] | weight SERVICE SERVER WEIGHT | remove SERVICE SERVER | reload | status | drain | undrain | sync | stop"
        )),
    }
}

/// The control socket path for an EAL file prefix.
pub fn socket_path(file_prefix: &str) -> PathBuf {
    PathBuf::from(format!("/run/pmdlb/{file_prefix}.sock"))
}

/// Largest request (command line and body), in bytes.
pub const MAX_REQUEST: usize = 1 << 20;
/// Largest answer body, in bytes.
pub const MAX_ANSWER: usize = 64 << 20;
/// Time a client has to send its whole request.
pub const REQUEST_TIME: Duration = Duration::from_secs(5);
/// Time the control loop has to answer a request.
pub const CONTROL_TIME: Duration = Duration::from_secs(30);
/// Time a client has to read its whole answer.
pub const ANSWER_TIME: Duration = Duration::from_secs(5);
/// Clients served at once (one thread each).
pub const MAX_CLIENTS: usize = 64;
/// How often idle threads look at the stop flag.
const POLL: Duration = Duration::from_millis(5);

/// An answer: an exit status and a text body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// 0 done, 1 failed, 2 not understood (ipvsadm's exit statuses).
    pub status: u8,
    /// The text, as `pmdlb ctl` prints it.
    pub body: String,
}

impl Answer {
    /// Status 0 with `body`.
    pub fn ok(body: impl Into<String>) -> Answer {
        Answer {
            status: 0,
            body: body.into(),
        }
    }

    /// Status 1 (the command failed): `error: {why}`.
    pub fn failed(why: impl std::fmt::Display) -> Answer {
        Answer {
            status: 1,
            body: format!("error: {why}\n"),
        }
    }

    /// Status 2 (the request was not understood): `error: {why}`.
    pub fn not_understood(why: impl std::fmt::Display) -> Answer {
        Answer {
            status: 2,
            body: format!("error: {why}\n"),
        }
    }

    /// The bytes on the wire: status line, then body.
    fn encode(&self) -> Vec<u8> {
        if self.body.len() > MAX_ANSWER {
            return Answer::failed(format_args!(
                "the answer has {} bytes, more than the {MAX_ANSWER} the control socket sends",
                self.body.len()
            ))
            .encode();
        }
        let mut out = format!("{}\n", self.status).into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    /// Parses what a server sent.
    pub fn decode(raw: &str) -> Result<Answer, String> {
        let (status, body) = raw.split_once('\n').unwrap_or((raw, ""));
        let status = status
            .parse::<u8>()
            .map_err(|_| format!("not a pmdlb control answer: {:?}", truncate(raw, 60)))?;
        Ok(Answer {
            status,
            body: body.to_owned(),
        })
    }
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A complete request from one client, waiting for its answer.
#[derive(Debug)]
pub struct Request {
    text: String,
    reply: SyncSender<Answer>,
}

impl Request {
    /// The command line (the first line, without its newline).
    pub fn command(&self) -> &str {
        self.text.split('\n').next().unwrap_or("")
    }

    /// Everything after the command line (empty when there is none).
    pub fn body(&self) -> &str {
        self.text.split_once('\n').map_or("", |(_, b)| b)
    }

    /// The command line parsed, refusing a body: none of today's commands
    /// takes one.
    pub fn parse_command(&self) -> Result<Command, Answer> {
        if !self.body().trim().is_empty() {
            return Err(Answer::not_understood(format_args!(
                "{:?} takes no body ({} bytes after the command line)",
                self.command(),
                self.body().len()
            )));
        }
        parse(self.command().trim()).map_err(Answer::not_understood)
    }

    /// Sends the answer to the client's thread. Never blocks; an answer for
    /// a client that gave up is dropped.
    pub fn reply(self, answer: Answer) {
        let _ = self.reply.try_send(answer);
    }

    /// A request as if read from a client, and where its answer goes
    /// (tests of code that keeps requests waiting; those are not built
    /// under loom).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn for_test(text: &str) -> (Request, Receiver<Answer>) {
        let (reply, rx) = sync_channel(1);
        (
            Request {
                text: text.to_owned(),
                reply,
            },
            rx,
        )
    }
}

/// The control socket and its server thread.
#[derive(Debug)]
pub struct CtlServer {
    path: PathBuf,
    requests: Receiver<Request>,
    stop: Arc<AtomicBool>,
    clients: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

impl CtlServer {
    /// Binds `path` (replacing a stale socket file) with mode 0600 in its
    /// directory, which is created or set to mode 0700 — the directory is the
    /// socket's own — and starts the server thread.
    pub fn bind(path: &Path) -> std::io::Result<CtlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        if path.exists() {
            // A live pmdlb with the same prefix answers; a stale file does not.
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use by another pmdlb (use another file_prefix)",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        // One slot per client thread: a send never waits.
        let (to_control, requests) = sync_channel(MAX_CLIENTS);
        let stop = Arc::new(AtomicBool::new(false));
        let clients = Arc::new(AtomicUsize::new(0));
        let acceptor = {
            let (stop, clients) = (Arc::clone(&stop), Arc::clone(&clients));
            std::thread::Builder::new()
                .name("pmdlb-ctl".into())
                .spawn(move || accept_loop(listener, to_control, stop, clients))?
        };
        Ok(CtlServer {
            path: path.to_owned(),
            requests,
            stop,
            clients,
            acceptor: Some(acceptor),
        })
    }

    /// The next complete request, if one is waiting. Never blocks.
    pub fn try_next(&self) -> Option<Request> {
        self.requests.try_recv().ok()
    }

    /// Clients being served now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }
}

impl Drop for CtlServer {
    /// Stops accepting, lets client threads deliver the answers they hold
    /// (bounded: idle clients are cut off), removes the socket file.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
        let deadline = Instant::now() + ANSWER_TIME + Duration::from_secs(1);
        loop {
            // Requests still coming will not be answered: their clients hear so.
            while let Ok(r) = self.requests.try_recv() {
                r.reply(Answer::failed("pmdlb is stopping"));
            }
            if self.clients.load(Ordering::Acquire) == 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// Counts a client thread; the count drops when the thread ends, however.
struct ClientSlot(Arc<AtomicUsize>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(
    listener: UnixListener,
    to_control: SyncSender<Request>,
    stop: Arc<AtomicBool>,
    clients: Arc<AtomicUsize>,
) {
    while !stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL);
                continue;
            }
            Err(_) => {
                std::thread::sleep(POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
            clients.fetch_sub(1, Ordering::AcqRel);
            // A fresh socket's buffer takes a short answer without waiting.
            let _ = stream.set_write_timeout(Some(POLL));
            let busy = Answer::failed(format_args!(
                "the control socket is busy ({MAX_CLIENTS} clients); try again"
            ));
            let _ = (&stream).write_all(&busy.encode());
            continue;
        }
        let slot = ClientSlot(Arc::clone(&clients));
        let (to_control, stop) = (to_control.clone(), Arc::clone(&stop));
        let spawned = std::thread::Builder::new()
            .name("pmdlb-ctl-client".into())
            .stack_size(256 << 10)
            .spawn(move || {
                let _slot = slot;
                serve(&stream, &to_control, &stop);
            });
        // On failure the closure, its slot included, is dropped.
        drop(spawned);
    }
}

/// One client: read the request, hand it over, wait for the answer, write it.
fn serve(stream: &UnixStream, to_control: &SyncSender<Request>, stop: &AtomicBool) {
    let answer = match read_request(stream, stop) {
        Err(a) => a,
        Ok(text) => {
            let (reply, answer) = sync_channel(1);
            match to_control.try_send(Request { text, reply }) {
                Err(_) => Answer::failed("pmdlb is stopping"),
                Ok(()) => wait_answer(&answer, stop),
            }
        }
    };
    let _ = write_by(stream, &answer.encode(), Instant::now() + ANSWER_TIME);
    let _ = stream.shutdown(Shutdown::Both);
}

/// The control loop's answer, by [`CONTROL_TIME`]; sooner when the server
/// stops.
fn wait_answer(answer: &Receiver<Answer>, stop: &AtomicBool) -> Answer {
    let deadline = Instant::now() + CONTROL_TIME;
    loop {
        match answer.recv_timeout(Duration::from_millis(50)) {
            Ok(a) => return a,
            Err(RecvTimeoutError::Disconnected) => return Answer::failed("pmdlb is stopping"),
            Err(RecvTimeoutError::Timeout) if stop.load(Ordering::Relaxed) => {
                return answer
                    .try_recv()
                    .unwrap_or_else(|_| Answer::failed("pmdlb is stopping"));
            }
            Err(RecvTimeoutError::Timeout) if Instant::now() >= deadline => {
                return Answer::failed(format_args!(
                    "the control plane did not answer within {} s",
                    CONTROL_TIME.as_secs()
                ));
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
}

/// Reads until end of file, at most [`MAX_REQUEST`] bytes, by [`REQUEST_TIME`].
fn read_request(stream: &UnixStream, stop: &AtomicBool) -> Result<String, Answer> {
    let deadline = Instant::now() + REQUEST_TIME;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Answer::not_understood(format_args!(
                "the request was not complete within {} s (end it by shutting down the write side)",
                REQUEST_TIME.as_secs()
            )));
        }
        if stop.load(Ordering::Relaxed) {
            return Err(Answer::failed("pmdlb is stopping"));
        }
        let _ = stream.set_read_timeout(Some(left.min(Duration::from_millis(100))));
        match (&*stream).read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                if buf.len() + n > MAX_REQUEST {
                    return Err(Answer::not_understood(format_args!(
                        "the request is larger than {MAX_REQUEST} bytes"
                    )));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if crate::control::is_retry(&e) => {}
            Err(e) => return Err(Answer::failed(format_args!("cannot read the request: {e}"))),
        }
    }
    String::from_utf8(buf).map_err(|_| Answer::not_understood("the request is not UTF-8"))
}

/// Writes all of `bytes` unless `deadline` passes first.
fn write_by(stream: &UnixStream, mut bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    while !bytes.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        stream.set_write_timeout(Some(left))?;
        match (&*stream).write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if crate::control::is_retry(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Client side: sends `request` (a command line, optionally followed by a
/// body) and returns the decoded answer. Bounded: connecting, sending and
/// reading each give up after a few seconds (`read_time` for the answer).
pub fn request(path: &Path, request: &str) -> std::io::Result<Answer> {
    request_within(path, request, CONTROL_TIME + Duration::from_secs(5))
}

/// [`request`] waiting at most `read_time` for the answer.
pub fn request_within(path: &Path, request: &str, read_time: Duration) -> std::io::Result<Answer> {
    let mut s = UnixStream::connect(path)?;
    s.set_write_timeout(Some(REQUEST_TIME))?;
    s.set_read_timeout(Some(read_time))?;
    let mut text = request.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    // A server that refuses the request (too large) closes early: its
    // answer is still there to read.
    let sent = s
        .write_all(text.as_bytes())
        .and_then(|()| s.shutdown(Shutdown::Write));
    let mut out = Vec::new();
    let read = (&s).take(MAX_ANSWER as u64 + 64).read_to_end(&mut out);
    if out.is_empty() {
        sent?;
        read?;
    }
    let out = String::from_utf8_lossy(&out);
    Answer::decode(&out).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands() {
        assert_eq!(parse("stats"), Ok(Command::Stats));
        assert_eq!(
            parse("servers --stats"),
            Ok(Command::ServerStats { exact: false })
        );
        assert_eq!(
            parse("servers --exact --stats"),
            Ok(Command::ServerStats { exact: true })
        );
        assert_eq!(parse("servers --rate"), Ok(Command::ServerRates));
        assert_eq!(parse("drain"), Ok(Command::Drain));
        assert_eq!(parse("undrain"), Ok(Command::Undrain));
        assert_eq!(parse("status"), Ok(Command::Status));
        assert_eq!(parse("sync"), Ok(Command::Sync));
        assert!(parse("drain now").is_err());
        assert_eq!(
            parse("weight tcp:10.0.0.1:80 10.0.1.11 0"),
            Ok(Command::Weight {
                service: ServiceAddr::Addr {
                    proto: 6,
                    vip: "10.0.0.1".parse().unwrap(),
                    port: 80
                },
                server: "10.0.1.11".parse().unwrap(),
                weight: 0
            })
        );
        assert_eq!(
            parse("remove fwmark:3 fd00::1"),
            Ok(Command::Remove {
                service: ServiceAddr::Fwmark(3),
                server: "fd00::1".parse().unwrap()
            })
        );
        assert!(parse("weight tcp:[fd00::1]:443 fd00::2 5").is_ok());
        assert!(parse("weight icmp:1.2.3.4:1 1.1.1.1 1")
            .unwrap_err()
            .contains("unknown protocol"));
        assert!(parse("frobnicate").unwrap_err().contains("commands:"));
        assert!(parse("weight tcp:1.2.3.4:80 1.1.1.1 x")
            .unwrap_err()
            .contains("weight"));
    }

    /// A private directory for one test's socket, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!("pmdlb-ctl-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            Scratch(d)
        }
        fn sock(&self) -> PathBuf {
            self.0.join("t.sock")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Answers every request `got COMMAND` until `done`, as the control
    /// loop would: `try_next` only, never a blocking call. Bounded.
    fn answer_until(srv: &CtlServer, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(Instant::now() < deadline, "not done within 20 s");
            while let Some(r) = srv.try_next() {
                let a = match r.parse_command() {
                    Ok(c) => Answer::ok(format!("got {c:?}\n")),
                    Err(a) => a,
                };
                r.reply(a);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn in_thread<T: Send + 'static>(
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        std::thread::spawn(f)
    }

    #[test]
    fn socket_roundtrip_and_modes() {
        let dir = Scratch::new("modes");
        std::fs::create_dir_all(&dir.0).unwrap();
        // An existing directory with loose modes is tightened.
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.sock();
        let srv = CtlServer::bind(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.0), 0o700);
        assert_eq!(mode(&path), 0o600);
        let p2 = path.clone();
        let client = in_thread(move || request(&p2, "stats").unwrap());
        answer_until(&srv, || client.is_finished());
        assert_eq!(client.join().unwrap(), Answer::ok("got Stats\n"));
        // A second server on a live socket is refused.
        let err = CtlServer::bind(&path).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
        drop(srv);
        assert!(!path.exists());
    }

    #[test]
    fn statuses_and_bodies() {
        let dir = Scratch::new("status");
        let path = dir.sock();
        let srv = CtlServer::bind(&path).unwrap();
        let p2 = path.clone();
        let client = in_thread(move || {
            (
                request(&p2, "frobnicate").unwrap(),
                request(&p2, "stats\nwith a body\n").unwrap(),
                request(&p2, "servers --rate\n\n").unwrap(),
            )
        });
        answer_until(&srv, || client.is_finished());
        let (unknown, body, blank) = client.join().unwrap();
        assert_eq!(unknown.status, 2);
        assert!(
            unknown.body.starts_with("error: unknown command"),
            "{unknown:?}"
        );
        assert_eq!(body.status, 2);
        assert!(body.body.contains("takes no body"), "{body:?}");
        assert_eq!(blank, Answer::ok("got ServerRates\n"));
    }

    #[test]
    fn body_reaches_the_control_loop() {
        let dir = Scratch::new("body");
        let path = dir.sock();
        let srv = CtlServer::bind(&path).unwrap();
        let p2 = path.clone();
        let client = in_thread(move || request(&p2, "restore\n-A -t 1.2.3.4:80\n-a x\n").unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        let req = loop {
            if let Some(r) = srv.try_next() {
                break r;
            }
            assert!(Instant::now() < deadline, "no request within 20 s");
            std::thread::sleep(Duration::from_millis(1));
        };
        assert_eq!(req.command(), "restore");
        assert_eq!(req.body(), "-A -t 1.2.3.4:80\n-a x\n");
        req.reply(Answer::failed("no such thing"));
        let a = client.join().unwrap();
        assert_eq!(a.status, 1);
        assert_eq!(a.body, "error: no such thing\n");
    }

    #[test]
    fn idle_clients_do_not_delay_others() {
        let dir = Scratch::new("idle");
        let path = dir.sock();
        let srv = CtlServer::bind(&path).unwrap();
        // 50 clients that connect and send nothing, and one that sends a
        // line without newline and never ends it.
        let idle: Vec<UnixStream> = (0..50)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        let mut half = UnixStream::connect(&path).unwrap();
        half.write_all(b"stats").unwrap();
        let p2 = path.clone();
        let t = Instant::now();
        let client = in_thread(move || request(&p2, "servers").unwrap());
        answer_until(&srv, || client.is_finished());
        assert_eq!(client.join().unwrap(), Answer::ok("got Servers\n"));
        assert!(
            t.elapsed() < REQUEST_TIME,
            "a waiting client delayed another by {:?}",
            t.elapsed()
        );
        // The half-sent request is refused once its time is up, not served.
        half.set_read_timeout(Some(REQUEST_TIME + Duration::from_secs(10)))
            .unwrap();
        let mut out = String::new();
        half.read_to_string(&mut out).unwrap();
        let a = Answer::decode(&out).unwrap();
        assert_eq!(a.status, 2);
        assert!(a.body.contains("not complete within"), "{a:?}");
        drop(idle);
    }

    #[test]
    fn oversize_request_is_refused() {
        let dir = Scratch::new("big");
        let path = dir.sock();
        let srv = CtlServer::bind(&path).unwrap();
        let p2 = path.clone();
        // One line of 1 MiB and more, no newline until the end.
        let client = in_thread(move || request(&p2, &"x".repeat(MAX_REQUEST + 10)).unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while !client.is_finished() {
            assert!(
                srv.try_next().is_none(),
                "an oversize request was handed on"
            );
            assert!(Instant::now() < deadline, "no answer within 20 s");
            std::thread::sleep(Duration::from_millis(1));
        }
        let a = client.join().unwrap();
        assert_eq!(a.status, 2);
        assert!(a.body.contains("larger than 1048576 bytes"), "{a:?}");
    }

    #[test]
    fn too_many_clients_are_told_at_once() {
        let dir = Scratch::new("many");
        let path = dir.sock();
        let srv = CtlServer::bind(&path).unwrap();
        let idle: Vec<UnixStream> = (0..MAX_CLIENTS)
            .map(|_| UnixStream::connect(&path).unwrap())
            .collect();
        // Wait (bounded) until every one of them has its thread.
        let deadline = Instant::now() + Duration::from_secs(20);
        while srv.clients() < MAX_CLIENTS {
            assert!(
                Instant::now() < deadline,
                "{} client threads",
                srv.clients()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let a = request_within(&path, "stats", Duration::from_secs(2)).unwrap();
        assert_eq!(a.status, 1);
        assert!(a.body.contains("busy"), "{a:?}");
        drop(idle);
        // Their threads end (end of file: an empty request) and free slots.
        answer_until(&srv, || srv.clients() == 0);
    }

    #[test]
    fn stopping_server_answers_waiting_clients() {
        let dir = Scratch::new("stop");
        let path = dir.sock();
        let srv = CtlServer::bind(&path).unwrap();
        let p2 = path.clone();
        let client = in_thread(move || request(&p2, "stats").unwrap());
        let deadline = Instant::now() + Duration::from_secs(20);
        while srv.clients() == 0 && !client.is_finished() {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        let t = Instant::now();
        drop(srv);
        assert!(t.elapsed() < ANSWER_TIME + Duration::from_secs(2));
        let a = client.join().unwrap();
        assert_eq!(a.status, 1);
        assert!(a.body.contains("stopping"), "{a:?}");
        assert!(!path.exists());
    }
}
