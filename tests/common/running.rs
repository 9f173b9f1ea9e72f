//! Running the real `pmdlb` binary: pcap files in and out, `pmdlb run
//! --config F` with its stdout and stderr collected, `pmdlb ctl` polled
//! against a deadline, a SIGTERM stop with a bounded wait, and a guard that
//! kills and reaps whatever is left and removes every file of the run, also
//! when a test fails half-way.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long `stop` waits for pmdlb to exit after SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// The `pmdlb` binary under test.
pub fn pmdlb() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pmdlb"))
}

/// Writes `frames` to a pcap file, one microsecond apart.
pub fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = pcap_file::pcap::PcapWriter::new(file).unwrap();
    for (i, f) in frames.iter().enumerate() {
        let ts = Duration::from_micros(i as u64);
        let pkt = pcap_file::pcap::PcapPacket::new(ts, f.len() as u32, f);
        w.write_packet(&pkt).unwrap();
    }
}

/// The frames of a pcap file.
pub fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("{} not written: {e}", path.display()));
    let mut r = pcap_file::pcap::PcapReader::new(file).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// Reads `r` to its end on a thread.
pub fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = r.read_to_string(&mut s);
        s
    })
}

/// Reads `r` to its end on a thread, also sending every line on `lines`.
fn line_reader(r: impl Read + Send + 'static, lines: mpsc::Sender<String>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf);
            all.push_str(&line);
            let _ = lines.send(line.trim_end_matches('\n').to_owned());
            buf.clear();
        }
        all
    })
}

/// Polls `child` until it exits or `limit` has passed (`None`; the child
/// keeps running).
/// Waits at most `limit` for a short-lived `child` (stdout/stderr piped)
/// and returns its output; kills it and panics, naming `what`, after that.
#[allow(dead_code)]
pub fn wait_output(mut child: Child, limit: Duration, what: &str) -> std::process::Output {
    let out = reader(child.stdout.take().expect("piped stdout"));
    let err = reader(child.stderr.take().expect("piped stderr"));
    let Some(status) = exited_within(&mut child, limit) else {
        kill(&mut child);
        panic!("{what}: still running after {limit:?}; killed");
    };
    std::process::Output {
        status,
        stdout: out.join().unwrap_or_default().into_bytes(),
        stderr: err.join().unwrap_or_default().into_bytes(),
    }
}

fn exited_within(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills and reaps `child` unless it has exited already.
fn kill(child: &mut Child) {
    if child.try_wait().ok().flatten().is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Waits at most `limit` for `child` to exit; kills it after that.
pub fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    exited_within(child, limit).unwrap_or_else(|| {
        kill(child);
        panic!("{what} still running after {limit:?}; killed");
    })
}

/// What a run leaves on disk; dropping it removes all of it.
struct Leftovers {
    prefix: String,
    dir: PathBuf,
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        super::cleanup_prefix(&self.prefix);
        // A killed pmdlb leaves its control socket.
        let _ = std::fs::remove_file(format!("/run/pmdlb/{}.sock", self.prefix));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running `pmdlb run --config F`; dropping it kills and reaps it and
/// every helper process still running, then removes the EAL prefix's files,
/// the control socket and the scratch directory.
pub struct Running {
    pmdlb: Child,
    helpers: Vec<Child>,
    cfg: PathBuf,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    /// stdout, line by line, as it comes.
    lines: mpsc::Receiver<String>,
    /// The last successful `pmdlb ctl`: its words and its output.
    last_ctl: Option<(String, String)>,
    /// `None` only once handed on to `Stopped`.
    files: Option<Leftovers>,
}

/// A pmdlb that has exited; dropping it removes the run's files.
pub struct Stopped {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    files: Leftovers,
}

impl Stopped {
    /// stdout and stderr, each under a `--- ` heading.
    pub fn text(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }

    /// The scratch directory, still there until this is dropped.
    pub fn dir(&self) -> &Path {
        &self.files.dir
    }

    /// The EAL file prefix.
    pub fn prefix(&self) -> &str {
        &self.files.prefix
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in self
            .helpers
            .iter_mut()
            .chain(std::iter::once(&mut self.pmdlb))
        {
            kill(c);
        }
        // `files` is dropped after this, once every process is gone.
    }
}

impl Running {
    /// Starts `pmdlb run --config cfg`. The run owns `dir` (the scratch
    /// directory, removed at the end) and `prefix` (the EAL file prefix the
    /// configuration names).
    pub fn spawn(cfg: PathBuf, prefix: String, dir: PathBuf) -> Running {
        let files = Leftovers { prefix, dir };
        let mut pmdlb = pmdlb()
            .args(["run", "--config"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pmdlb run");
        let (tx, lines) = mpsc::channel();
        let out = Some(line_reader(pmdlb.stdout.take().unwrap(), tx));
        let err = Some(reader(pmdlb.stderr.take().unwrap()));
        Running {
            pmdlb,
            helpers: Vec::new(),
            cfg,
            out,
            err,
            lines,
            last_ctl: None,
            files: Some(files),
        }
    }

    pub fn cfg(&self) -> &Path {
        &self.cfg
    }

    pub fn dir(&self) -> &Path {
        &self.files().dir
    }

    pub fn prefix(&self) -> &str {
        &self.files().prefix
    }

    fn files(&self) -> &Leftovers {
        self.files.as_ref().expect("files of a running pmdlb")
    }

    /// Keeps `child` to be killed and reaped with the run; returns it.
    pub fn add_helper(&mut self, child: Child) -> &mut Child {
        self.helpers.push(child);
        self.helpers.last_mut().unwrap()
    }

    /// `pmdlb ctl --config F words…`: its stdout, or `None` while it fails
    /// (the control socket is not up yet). Panics if pmdlb has exited.
    pub fn ctl(&mut self, words: &[&str]) -> Option<String> {
        self.assert_running();
        let o = pmdlb()
            .args(["ctl", "--config"])
            .arg(&self.cfg)
            .args(words)
            .output()
            .unwrap();
        let text = o
            .status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())?;
        self.last_ctl = Some((words.join(" "), text.clone()));
        Some(text)
    }

    /// Polls `f` every 50 ms until it returns `Some`, for at most `limit`.
    /// On timeout pmdlb is stopped and the panic names `what`, shows the
    /// last `pmdlb ctl` output and pmdlb's own. Panics if pmdlb exits.
    pub fn wait_until<T>(
        &mut self,
        limit: Duration,
        what: &str,
        mut f: impl FnMut(&mut Running) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            self.assert_running();
            if let Some(v) = f(self) {
                return v;
            }
            if Instant::now() >= deadline {
                let last = match self.last_ctl.take() {
                    Some((words, text)) => format!("--- last `pmdlb ctl {words}`\n{text}"),
                    None => "--- no `pmdlb ctl` answered".to_owned(),
                };
                // SIGTERM first: pmdlb's final statistics help.
                self.sigterm();
                if exited_within(&mut self.pmdlb, STOP_LIMIT).is_none() {
                    kill(&mut self.pmdlb);
                }
                panic!("not within {limit:?}: {what}\n{last}\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits at most `limit` for pmdlb to print `line` on stdout. Panics if
    /// it does not, or exits first.
    pub fn wait_for_line(&mut self, limit: Duration, line: &str) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l == line => return,
                Ok(_) => {}
                Err(e) => {
                    kill(&mut self.pmdlb);
                    panic!("no {line:?} within {limit:?} ({e}):\n{}", self.output());
                }
            }
        }
    }

    /// SIGTERM, then a wait of at most 10 s for pmdlb to exit.
    pub fn stop(self) -> Stopped {
        assert!(self.sigterm(), "kill -TERM {}", self.pmdlb.id());
        self.wait_exit(STOP_LIMIT, "pmdlb after SIGTERM")
    }

    /// Waits at most `limit` for pmdlb to exit by itself (a refused
    /// configuration); kills it and panics, naming `what`, after that.
    pub fn wait_exit(mut self, limit: Duration, what: &str) -> Stopped {
        let Some(status) = exited_within(&mut self.pmdlb, limit) else {
            kill(&mut self.pmdlb);
            panic!(
                "{what}: still running after {limit:?}; killed\n{}",
                self.output()
            );
        };
        let (stdout, stderr) = self.collect();
        Stopped {
            status,
            stdout,
            stderr,
            files: self.files.take().unwrap(),
        }
    }

    /// Sends SIGTERM to pmdlb; false if `kill` failed.
    fn sigterm(&self) -> bool {
        let pid = self.pmdlb.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|st| st.success())
    }

    fn assert_running(&mut self) {
        if let Some(st) = self.pmdlb.try_wait().unwrap() {
            panic!("pmdlb exited early ({st}):\n{}", self.output());
        }
    }

    /// stdout and stderr of an exited pmdlb.
    fn collect(&mut self) -> (String, String) {
        let join = |h: Option<JoinHandle<String>>| h.map(|h| h.join().unwrap()).unwrap_or_default();
        (join(self.out.take()), join(self.err.take()))
    }

    fn output(&mut self) -> String {
        let (out, err) = self.collect();
        format!("--- stdout\n{out}\n--- stderr\n{err}")
    }
}

/// `name → total` rows of pmdlb's counter table (`counter … total` up to
/// `drop.total`), as `pmdlb ctl stats` and the exit report print it.
pub fn parse_counters(text: &str) -> std::collections::BTreeMap<String, u64> {
    let mut m = std::collections::BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("counter ") && line.trim_end().ends_with("total") {
            inside = true;
            continue;
        }
        if !inside {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if let (Some(name), Some(Ok(v))) = (words.first(), words.last().map(|w| w.parse())) {
            m.insert(name.to_string(), v);
        }
        if line.starts_with("drop.total") {
            break;
        }
    }
    m
}

/// A MAC address as pmdlb prints it (`02:00:00:00:01:0b`), written
/// independently of pmdlb's own formatter.
pub fn mac_str(m: &[u8]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
