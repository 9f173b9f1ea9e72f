//! The metrics HTTP listener: a small HTTP/1.1 responder on a helper
//! thread of the control plane (never a worker core). It serves the last
//! exposition the control plane published ([`MetricsBody`]) at
//! `GET /metrics`, one request per connection (`Connection: close`).
//! A slow or stuck client costs only this thread, and at most the read
//! and write timeouts; the control plane never waits for it: it swaps a
//! new body in with `try_lock` and skips a refresh rather than block.
#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a client may take to send its request or read the answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest request head read.
const MAX_REQUEST: usize = 8192;
/// How often the accept loop looks at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Errors starting the listener.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address could not be bound.
    #[error(
        "metrics.listen {addr}: cannot listen: {err}; pick a free port or an address of this host"
    )]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// Why.
        err: std::io::Error,
    },
    /// The helper thread could not be started.
    #[error("metrics listener: cannot start its thread: {0}")]
    Thread(std::io::Error),
}

/// The text served at `/metrics`, published by the control plane.
#[derive(Debug, Default)]
pub struct MetricsBody(Mutex<Arc<String>>);

impl MetricsBody {
    /// Control plane: replaces the body unless the server holds the lock
    /// at this instant (then this refresh is skipped; the next one comes).
    pub fn publish(&self, text: String) -> bool {
        match self.0.try_lock() {
            Ok(mut g) => {
                *g = Arc::new(text);
                true
            }
            Err(_) => false,
        }
    }

    fn current(&self) -> Arc<String> {
        match self.0.lock() {
            Ok(g) => Arc::clone(&g),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }
}

/// The running listener; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` (here, so a bad address stops the start) and starts
    /// serving `body`.
    pub fn start(addr: SocketAddr, body: Arc<MetricsBody>) -> Result<MetricsServer, HttpError> {
        let listener = TcpListener::bind(addr).map_err(|err| HttpError::Bind { addr, err })?;
        let bound = listener.local_addr().unwrap_or(addr);
        listener
            .set_nonblocking(true)
            .map_err(|err| HttpError::Bind { addr, err })?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pmdlb-metrics".into())
            .spawn(move || serve(&listener, &body, &flag))
            .map_err(HttpError::Thread)?;
        Ok(MetricsServer {
            addr: bound,
            stop,
            thread: Some(thread),
        })
    }

    /// The address actually bound (port 0 in the config picks one).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: &TcpListener, body: &MetricsBody, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                let _ = answer(s, body);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    Index,
    NotFound,
    BadMethod,
    BadRequest,
}

fn route(head: &str) -> Route {
    let mut it = head.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (it.next(), it.next(), it.next()) else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::BadMethod,
    };
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => Route::Metrics { head_only },
        "/" => Route::Index,
        _ => Route::NotFound,
    }
}

fn answer(mut s: TcpStream, body: &MetricsBody) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    s.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut buf = [0u8; MAX_REQUEST];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        if n == buf.len() {
            break;
        }
        match s.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    let text = String::from_utf8_lossy(&buf[..n]);
    let first = text.lines().next().unwrap_or("");
    let (status, ctype, content, head_only): (&str, &str, Arc<String>, bool) = match route(first) {
        Route::Metrics { head_only } => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            body.current(),
            head_only,
        ),
        Route::Index => (
            "200 OK",
            "text/plain; charset=utf-8",
            Arc::new("pmdlb: metrics at /metrics\n".into()),
            false,
        ),
        Route::NotFound => (
            "404 Not Found",
            "text/plain",
            Arc::new("not found; try /metrics\n".into()),
            false,
        ),
        Route::BadMethod => (
            "405 Method Not Allowed",
            "text/plain",
            Arc::new("only GET and HEAD\n".into()),
            false,
        ),
        Route::BadRequest => (
            "400 Bad Request",
            "text/plain",
            Arc::new("bad request\n".into()),
            false,
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    );
    s.write_all(head.as_bytes())?;
    if !head_only {
        s.write_all(content.as_bytes())?;
    }
    s.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route("GET /metrics HTTP/1.1"),
            Route::Metrics { head_only: false }
        );
        assert_eq!(
            route("HEAD /metrics?x=1 HTTP/1.0"),
            Route::Metrics { head_only: true }
        );
        assert_eq!(route("GET / HTTP/1.1"), Route::Index);
        assert_eq!(route("GET /x HTTP/1.1"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1"), Route::BadMethod);
        assert_eq!(route("garbage"), Route::BadRequest);
    }

    #[test]
    fn serves_the_published_body_and_survives_a_silent_client() {
        let body = Arc::new(MetricsBody::default());
        assert!(body.publish("a_metric 1\n".into()));
        let srv = MetricsServer::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&body)).unwrap();
        // A client that connects and says nothing holds the thread for at
        // most CLIENT_TIMEOUT; the next client is still served.
        let _silent = TcpStream::connect(srv.local_addr()).unwrap();
        let mut c = TcpStream::connect(srv.local_addr()).unwrap();
        c.set_read_timeout(Some(CLIENT_TIMEOUT * 5)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert!(got.starts_with("HTTP/1.1 200 OK\r\n"), "{got}");
        assert!(got.contains("text/plain; version=0.0.4"), "{got}");
        assert!(got.ends_with("\r\n\r\na_metric 1\n"), "{got}");
    }
}
