//! The health-check state machine, exactly as keepalived's checkers
//! (`check_tcp.c` `tcp_epilog`, `check_http.c` `epilog`, `ipwrapper.c`
//! `update_svr_checker_state`): pure, driven by results and the time they
//! arrived, so it is tested with an injected clock.
//!
//! - A success resets the retry count; a down checker comes up at once.
//! - A failure with retries left schedules a retry after
//!   `delay_before_retry`; with none left an up checker goes down (and the
//!   count starts again). So an up checker goes down after `retry + 1`
//!   consecutive failures.
//! - Otherwise the next check is `delay_loop` after this one.
//! - A checker starts up, or down with `alpha` (the server is added only
//!   after a pass).
//! - A server is alive only while every one of its checkers is up.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

/// The timing of one checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Between two checks of a healthy (or settled) checker.
    pub delay_loop: Duration,
    /// Connect (and whole exchange) timeout; the misc script's timeout.
    pub connect_timeout: Duration,
    /// Failures tolerated before going down (down after `retry + 1`).
    pub retry: u32,
    /// Between a failure and its retry.
    pub delay_before_retry: Duration,
}

/// One checker's state.
#[derive(Clone, Debug)]
pub struct Checker {
    timing: Timing,
    up: bool,
    retry_it: u32,
    next: Instant,
}

impl Checker {
    /// A checker whose first check is due at `first`; up unless `alpha`.
    pub fn new(timing: Timing, alpha: bool, first: Instant) -> Checker {
        Checker {
            timing,
            up: !alpha,
            retry_it: 0,
            next: first,
        }
    }

    /// Whether the checker is up.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// When the next check is due.
    pub fn next_due(&self) -> Instant {
        self.next
    }

    /// Failures counted towards going down so far.
    pub fn retries(&self) -> u32 {
        self.retry_it
    }

    /// Feed one result that arrived at `now`; schedules the next check and
    /// returns `Some(new state)` when the checker changed state.
    pub fn on_result(&mut self, ok: bool, now: Instant) -> Option<bool> {
        let was = self.up;
        if ok {
            self.retry_it = 0;
            self.up = true;
            self.next = now + self.timing.delay_loop;
        } else if self.retry_it < self.timing.retry {
            self.retry_it += 1;
            self.next = now + self.timing.delay_before_retry;
        } else {
            self.retry_it = 0;
            self.up = false;
            self.next = now + self.timing.delay_loop;
        }
        (was != self.up).then_some(self.up)
    }
}

/// A server's checkers together.
#[derive(Clone, Debug)]
pub struct Server {
    checkers: Vec<Checker>,
}

impl Server {
    /// A server with these checkers (all due at `first`).
    pub fn new(timings: &[Timing], alpha: bool, first: Instant) -> Server {
        Server {
            checkers: timings
                .iter()
                .map(|t| Checker::new(*t, alpha, first))
                .collect(),
        }
    }

    /// Alive: every checker up.
    pub fn is_alive(&self) -> bool {
        self.checkers.iter().all(Checker::is_up)
    }

    /// The checkers.
    pub fn checkers(&self) -> &[Checker] {
        &self.checkers
    }

    /// Feed a result of checker `idx`; returns `Some(alive)` when the
    /// server's state changed (pulled at the first checker failure,
    /// restored when the last one recovers).
    pub fn on_result(&mut self, idx: usize, ok: bool, now: Instant) -> Option<bool> {
        let was = self.is_alive();
        self.checkers.get_mut(idx)?.on_result(ok, now);
        let is = self.is_alive();
        (was != is).then_some(is)
    }
}

/// keepalived's `update_quorum_state`: a service with quorum loses it when
/// the sum of its live servers' weights drops below `quorum − hysteresis`,
/// and one without regains it at `quorum + hysteresis` or more. Returns
/// the new state.
pub fn quorum_step(has_quorum: bool, weight_sum: u64, quorum: u64, hysteresis: u64) -> bool {
    if has_quorum {
        weight_sum >= quorum.saturating_sub(hysteresis)
    } else {
        weight_sum >= quorum.saturating_add(hysteresis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(retry: u32) -> Timing {
        Timing {
            delay_loop: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            retry,
            delay_before_retry: Duration::from_secs(3),
        }
    }

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn down_after_retry_plus_one_failures_spaced_by_delay_before_retry() {
        let t0 = Instant::now();
        let mut c = Checker::new(t(2), false, t0);
        assert!(c.is_up());
        assert_eq!(c.on_result(false, t0), None);
        assert_eq!(c.next_due(), t0 + s(3));
        assert_eq!(c.retries(), 1);
        assert_eq!(c.on_result(false, t0 + s(3)), None);
        assert_eq!(c.next_due(), t0 + s(6));
        assert_eq!(c.on_result(false, t0 + s(6)), Some(false), "third failure");
        assert_eq!(c.next_due(), t0 + s(66), "down: back to delay_loop");
        assert_eq!(c.retries(), 0);
    }

    #[test]
    fn a_success_resets_the_count_and_one_success_brings_it_up() {
        let t0 = Instant::now();
        let mut c = Checker::new(t(1), false, t0);
        c.on_result(false, t0);
        assert_eq!(c.on_result(true, t0 + s(3)), None);
        assert_eq!(c.retries(), 0);
        assert_eq!(c.next_due(), t0 + s(63));
        // Not down after one more failure: the count started again.
        assert_eq!(c.on_result(false, t0 + s(63)), None);
        assert_eq!(c.on_result(false, t0 + s(66)), Some(false));
        // Down: failures retry (as keepalived) but change nothing.
        assert_eq!(c.on_result(false, t0 + s(126)), None);
        assert_eq!(c.next_due(), t0 + s(129));
        assert_eq!(c.on_result(true, t0 + s(129)), Some(true));
    }

    #[test]
    fn retry_zero_goes_down_at_the_first_failure() {
        let t0 = Instant::now();
        let mut c = Checker::new(t(0), false, t0);
        assert_eq!(c.on_result(false, t0), Some(false));
        assert_eq!(c.next_due(), t0 + s(60));
    }

    #[test]
    fn alpha_starts_down_until_the_first_pass() {
        let t0 = Instant::now();
        let mut srv = Server::new(&[t(1)], true, t0);
        assert!(!srv.is_alive());
        assert_eq!(srv.on_result(0, false, t0), None);
        assert_eq!(srv.on_result(0, false, t0 + s(3)), None);
        assert_eq!(srv.on_result(0, true, t0 + s(63)), Some(true));
        let plain = Server::new(&[t(1)], false, t0);
        assert!(plain.is_alive(), "without alpha a server starts up");
    }

    #[test]
    fn quorum_with_hysteresis() {
        // quorum 4, hysteresis 1: lost below 3, regained at 5.
        let mut q = true;
        let mut trace = Vec::new();
        for sum in [6, 4, 3, 2, 3, 4, 5, 4, 3, 2] {
            q = quorum_step(q, sum, 4, 1);
            trace.push(q);
        }
        assert_eq!(
            trace,
            [true, true, true, false, false, false, true, true, true, false]
        );
        assert!(
            quorum_step(true, 0, 1, 1),
            "quorum - hysteresis = 0: never lost"
        );
        assert!(
            !quorum_step(true, 0, 1, 0),
            "the default quorum 1: lost at 0"
        );
        assert!(quorum_step(false, 1, 1, 0));
    }

    #[test]
    fn several_checkers_server_alive_only_while_all_are_up() {
        let t0 = Instant::now();
        let mut srv = Server::new(&[t(0), t(0)], false, t0);
        assert!(srv.is_alive());
        assert_eq!(
            srv.on_result(0, false, t0),
            Some(false),
            "first failure pulls it"
        );
        assert_eq!(srv.on_result(1, false, t0), None, "already down");
        assert_eq!(srv.on_result(0, true, t0 + s(60)), None, "one still down");
        assert_eq!(
            srv.on_result(1, true, t0 + s(60)),
            Some(true),
            "last one recovers"
        );
        assert_eq!(srv.on_result(7, true, t0), None, "unknown checker");
    }
}
