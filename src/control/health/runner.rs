//! The scheduler thread: owns the state machines, starts each due check on
//! a thread of its own (so a hanging target delays nothing else), feeds
//! the results to the machines, runs the notify scripts, and reports every
//! result and change to the control loop over a channel.
#![forbid(unsafe_code)]

use std::hash::BuildHasher as _;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::machine::{Checker, Server, Timing};
use super::probe::{self, Outcome, Probe};
use super::ServerChecks;
use crate::lb::types::RsId;

/// Stack of a check thread: a check needs little.
const CHECK_STACK: usize = 128 << 10;
/// The scheduler wakes at least this often (to see a stop).
const MAX_SLEEP: Duration = Duration::from_millis(100);
/// Every checker's first check is at least this long after start, plus a
/// random share of its `warmup` (keepalived's `BOOTSTRAP_DELAY` in
/// `register_checkers_thread`).
pub const BOOTSTRAP_DELAY: Duration = Duration::from_secs(1);

/// When a checker's first check is due: [`BOOTSTRAP_DELAY`] plus the
/// share `seed / 2^64` of its warmup.
fn first_due(start: Instant, t: &Timing, seed: u64) -> Instant {
    let share = (seed >> 11) as f64 / (1u64 << 53) as f64;
    start + BOOTSTRAP_DELAY + t.warmup.mul_f64(share)
}

/// What the runner tells the control loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// One check finished.
    Result {
        /// The server.
        rs: RsId,
        /// Which of its checkers.
        checker: usize,
        /// `tcp`, `http`, `https`, `misc`.
        kind: &'static str,
        /// What happened.
        outcome: Outcome,
        /// How late the check started after it was due (the scheduler's
        /// own delay: thread start, a busy machine).
        late: Duration,
    },
    /// The server came up or went down.
    Server {
        /// The server.
        rs: RsId,
        /// Alive now.
        up: bool,
    },
}

/// Why the runner could not start.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// No thread.
    #[error(
        "cannot start the health-check thread: {0}; raise the process's thread limit (ulimit -u)"
    )]
    Thread(std::io::Error),
}

struct Entry {
    rs: RsId,
    machine: Server,
    probes: Vec<(Probe, Timing)>,
    /// Per checker: when the check in flight started, and how late.
    in_flight: Vec<Option<(Instant, Duration)>>,
    notify_up: Option<String>,
    notify_down: Option<String>,
}

/// The running health checks; stops (and joins the scheduler) on drop.
#[derive(Debug)]
pub struct Runner {
    events: Receiver<HealthEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Runner {
    /// Starts checking every server with checks (`checks[i]` is `RsId(i)`).
    /// Returns `None` when nothing is checked.
    pub fn start(checks: &[Option<ServerChecks>]) -> Result<Option<Runner>, HealthError> {
        let now = Instant::now();
        let random = std::hash::RandomState::new();
        let entries: Vec<Entry> = checks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let c = c.as_ref()?;
                let kinds: Vec<_> = c
                    .checks
                    .iter()
                    .enumerate()
                    .map(|(j, k)| {
                        let seed = random.hash_one((i, j));
                        (k.timing, k.probe.epilog(), first_due(now, &k.timing, seed))
                    })
                    .collect();
                Some(Entry {
                    rs: RsId(i as u32),
                    machine: Server::new(&kinds, c.alpha),
                    probes: c
                        .checks
                        .iter()
                        .map(|k| (k.probe.clone(), k.timing))
                        .collect(),
                    in_flight: vec![None; c.checks.len()],
                    notify_up: c.notify_up.clone(),
                    notify_down: c.notify_down.clone(),
                })
            })
            .collect();
        if entries.is_empty() {
            return Ok(None);
        }
        let (tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pmdlb-health".into())
            .spawn(move || schedule(entries, tx, &flag))
            .map_err(HealthError::Thread)?;
        Ok(Some(Runner {
            events,
            stop,
            thread: Some(thread),
        }))
    }

    /// Everything that happened since the last call (never blocks).
    pub fn drain(&self, mut f: impl FnMut(HealthEvent)) {
        while let Ok(ev) = self.events.try_recv() {
            f(ev);
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn notify(children: &mut Vec<Child>, script: &Option<String>) {
    if let Some(s) = script {
        match Command::new("sh")
            .args(["-c", s])
            .stdin(Stdio::null())
            .spawn()
        {
            Ok(c) => children.push(c),
            Err(e) => eprintln!("pmdlb: health: cannot run notify script {s:?}: {e}"),
        }
    }
}

fn schedule(mut entries: Vec<Entry>, out: Sender<HealthEvent>, stop: &AtomicBool) {
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let mut notifiers: Vec<Child> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let mut next = now + MAX_SLEEP;
        for (e, entry) in entries.iter_mut().enumerate() {
            next = next.min(start_due(e, entry, now, &done_tx));
        }
        let wait = next.saturating_duration_since(Instant::now());
        let mut first = match done_rx.recv_timeout(wait) {
            Ok(r) => Some(r),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while let Some(done) = first.take().or_else(|| done_rx.try_recv().ok()) {
            if !finish(&mut entries[done.0], done, &out, &mut notifiers) {
                return;
            }
        }
        notifiers.retain_mut(|c| !matches!(c.try_wait(), Ok(Some(_)) | Err(_)));
    }
}

/// A finished check: entry, checker, result.
type Done = (usize, usize, Outcome);

/// Starts every due check of `entry` (number `e`) on a thread of its own;
/// returns when the next of its idle checkers is due.
fn start_due(e: usize, entry: &mut Entry, now: Instant, done: &Sender<Done>) -> Instant {
    let mut next = now + MAX_SLEEP;
    for c in 0..entry.probes.len() {
        if entry.in_flight[c].is_some() {
            continue;
        }
        let checker: &Checker = &entry.machine.checkers()[c];
        let due = checker.next_due();
        if due > now {
            next = next.min(due);
            continue;
        }
        let url = checker.url();
        let (probe, timing) = entry.probes[c].clone();
        let tx = done.clone();
        let started = std::thread::Builder::new()
            .name("pmdlb-check".into())
            .stack_size(CHECK_STACK)
            .spawn(move || {
                let o = probe::run(&probe, url, timing.connect_timeout);
                let _ = tx.send((e, c, o));
            });
        if let Err(err) = started {
            // Counted as a failed check; tried again per the machine.
            let _ = done.send((
                e,
                c,
                Outcome {
                    ok: false,
                    weight: None,
                    reason: format!("no thread for the check: {err}"),
                },
            ));
        }
        entry.in_flight[c] = Some((now, now.saturating_duration_since(due)));
    }
    next
}

/// Feeds one result to its machine and reports it (and a state change,
/// running the notify script); false when the control loop is gone.
fn finish(
    entry: &mut Entry,
    (_, c, outcome): Done,
    out: &Sender<HealthEvent>,
    notifiers: &mut Vec<Child>,
) -> bool {
    let Some((started, late)) = entry.in_flight[c].take() else {
        return true;
    };
    let ok = outcome.ok;
    let rs = entry.rs;
    let ev = HealthEvent::Result {
        rs,
        checker: c,
        kind: entry.probes[c].0.kind(),
        outcome,
        late,
    };
    if out.send(ev).is_err() {
        return false;
    }
    if let Some(up) = entry.machine.on_result(c, ok, started, Instant::now()) {
        let _ = out.send(HealthEvent::Server { rs, up });
        let script = if up {
            &entry.notify_up
        } else {
            &entry.notify_down
        };
        notify(notifiers, script);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_checks_are_spread_over_bootstrap_plus_warmup() {
        let t0 = Instant::now();
        let t = Timing {
            delay_loop: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            retry: 1,
            delay_before_retry: Duration::from_secs(3),
            warmup: Duration::from_secs(60),
        };
        assert_eq!(first_due(t0, &t, 0), t0 + BOOTSTRAP_DELAY);
        assert_eq!(
            first_due(t0, &t, 1 << 63),
            t0 + BOOTSTRAP_DELAY + Duration::from_secs(30)
        );
        let last = first_due(t0, &t, u64::MAX);
        assert!(last <= t0 + Duration::from_secs(61) && last > t0 + Duration::from_secs(60));
        let random = std::hash::RandomState::new();
        let dues: Vec<Instant> = (0..1000)
            .map(|i| first_due(t0, &t, random.hash_one(i)))
            .collect();
        let early = dues
            .iter()
            .filter(|&&d| d < t0 + Duration::from_secs(31))
            .count();
        assert!(
            (300..=700).contains(&early),
            "{early} of 1000 in the first half"
        );
        let none = Timing {
            warmup: Duration::ZERO,
            ..t
        };
        assert_eq!(first_due(t0, &none, u64::MAX), t0 + BOOTSTRAP_DELAY);
    }
}
