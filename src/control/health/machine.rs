//! The health-check state machine, exactly as keepalived's checkers: pure,
//! driven by results and the time they arrived, so it is tested with an
//! injected clock. Each checker type follows its own keepalived epilog:
//!
//! - **tcp** (`check_tcp.c` `tcp_epilog`): a success resets the retry
//!   count and brings a down checker up. A failure of an up checker with
//!   retries left is retried after `delay_before_retry`; with none left the
//!   checker goes down. So it goes down after `retry + 1` consecutive
//!   failures. A down checker is checked every `delay_loop` (no retries).
//! - **misc** (`check_misc.c`): the same, except that the next run is timed
//!   from when the script *started*, not from when it ended.
//! - **http/https** (`check_http.c` `epilog`, `timeout_epilog`): one url is
//!   fetched per check, the next url `delay_loop` later, so an up checker
//!   with n urls takes n rounds of `delay_loop` to fetch them all. A
//!   failing url is retried (same url) after `delay_before_retry`; after
//!   `retry + 1` consecutive failures the checker goes down and that url is
//!   the failed url, re-fetched every `max(delay_before_retry, delay_loop)`.
//!   When it passes, every url is fetched again from the first, one per
//!   `delay_loop`, and the checker comes up once all have passed: a single
//!   url needs two passes, `delay_loop` apart. With `fast_recovery` a
//!   checker that is not up and knows of no failed url (start, alpha,
//!   recovery) fetches the next url at once.
//! - A checker starts up, or down with `alpha` (the server is added only
//!   after a pass).
//! - A server is alive only while every one of its checkers is up
//!   (`ipwrapper.c` `update_svr_checker_state`).
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
    /// The first check starts a random share of this (plus a second)
    /// after start, so many checks do not all start at once (keepalived's
    /// `warmup`, default `delay_loop`).
    pub warmup: Duration,
}

/// Which keepalived epilog a checker follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TCP_CHECK.
    Tcp,
    /// MISC_CHECK.
    Misc,
    /// HTTP_GET / SSL_GET with `urls` urls (at least one).
    Http {
        /// How many urls it fetches, one per check.
        urls: usize,
        /// No delay between urls while not up and no url is known failed.
        fast_recovery: bool,
    },
}

/// One checker's state.
#[derive(Clone, Debug)]
pub struct Checker {
    timing: Timing,
    kind: Kind,
    up: bool,
    has_run: bool,
    retry_it: u32,
    url_it: usize,
    failed_url: Option<usize>,
    next: Instant,
}

impl Checker {
    /// A checker whose first check is due at `first`; up unless `alpha`.
    pub fn new(timing: Timing, kind: Kind, alpha: bool, first: Instant) -> Checker {
        Checker {
            timing,
            kind,
            up: !alpha,
            has_run: false,
            retry_it: 0,
            url_it: 0,
            failed_url: None,
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

    /// The url the next check fetches (http; 0 otherwise).
    pub fn url(&self) -> usize {
        self.url_it
    }

    /// The url that made it go down, while it is still failing (http).
    pub fn failed_url(&self) -> Option<usize> {
        self.failed_url
    }

    /// Feed one result: the check started at `started` and its result
    /// arrived at `now`. Schedules the next check and returns `Some(new
    /// state)` when the checker changed state.
    pub fn on_result(&mut self, ok: bool, started: Instant, now: Instant) -> Option<bool> {
        let was = self.up;
        match self.kind {
            Kind::Tcp => self.tcp_epilog(ok, now),
            Kind::Misc => self.misc_epilog(ok, started),
            Kind::Http {
                urls,
                fast_recovery,
            } => self.http_epilog(ok, urls, fast_recovery, now),
        }
        (was != self.up).then_some(self.up)
    }

    fn tcp_epilog(&mut self, ok: bool, now: Instant) {
        let t = self.timing;
        let mut delay = t.delay_loop;
        if ok || ((self.up || !self.has_run) && self.retry_it >= t.retry) {
            self.retry_it = 0;
            if ok {
                self.up = true;
            } else if self.up || !self.has_run {
                self.up = false;
            }
        } else if self.up {
            delay = t.delay_before_retry;
            self.retry_it += 1;
        }
        self.has_run = true;
        self.next = now + delay;
    }

    fn misc_epilog(&mut self, ok: bool, started: Instant) {
        let t = self.timing;
        if ok {
            self.retry_it = 0;
            self.up = true;
        } else if self.up || !self.has_run {
            if self.retry_it < t.retry {
                self.retry_it += 1;
            } else {
                self.retry_it = 0;
                self.up = false;
            }
        }
        let delay = if self.retry_it > 0 {
            t.delay_before_retry
        } else {
            t.delay_loop
        };
        self.has_run = true;
        self.next = started + delay;
    }

    /// keepalived's `timeout_epilog` and `epilog` (see the module doc).
    fn http_epilog(&mut self, ok: bool, urls: usize, fast_recovery: bool, now: Instant) {
        #[derive(PartialEq)]
        enum Method {
            New,
            Retry,
            Failed,
        }
        let t = self.timing;
        let method = if ok {
            Method::New
        } else if self.up || !self.has_run {
            self.has_run = true;
            Method::Retry
        } else {
            Method::Failed
        };
        // `None`: past the last url.
        let mut url_it = Some(self.url_it);
        match method {
            Method::New => {
                url_it = Some(self.url_it + 1).filter(|&u| u < urls);
                self.retry_it = 0;
            }
            Method::Retry => self.retry_it += 1,
            Method::Failed => {}
        }
        if method == Method::New && url_it.is_none() && self.failed_url.is_none() {
            // Every url passed.
            self.up = true;
            self.has_run = true;
            url_it = Some(0);
            self.retry_it = 0;
        } else if method == Method::Retry && self.retry_it > t.retry {
            self.up = false;
            self.failed_url = url_it;
        } else if method == Method::New && self.failed_url.is_some() {
            // The failed url passes: fetch them all again.
            self.failed_url = None;
            url_it = Some(0);
            self.retry_it = 0;
        }
        self.url_it = url_it.unwrap_or(0);
        let delay = if method == Method::New {
            if !self.has_run {
                self.retry_it = t.retry;
            }
            t.delay_loop
        } else if self.failed_url.is_some() {
            t.delay_before_retry.max(t.delay_loop)
        } else {
            t.delay_before_retry
        };
        let hurry = fast_recovery && (!self.has_run || (!self.up && self.failed_url.is_none()));
        self.next = if hurry { now } else { now + delay };
    }
}

/// A server's checkers together.
#[derive(Clone, Debug)]
pub struct Server {
    checkers: Vec<Checker>,
}

impl Server {
    /// A server with these checkers, each with the time its first check
    /// is due.
    pub fn new(checkers: &[(Timing, Kind, Instant)], alpha: bool) -> Server {
        Server {
            checkers: checkers
                .iter()
                .map(|&(t, k, first)| Checker::new(t, k, alpha, first))
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

    /// Feed a result of checker `idx` (see [`Checker::on_result`]); returns `Some(alive)` when the
    /// server's state changed (pulled at the first checker failure,
    /// restored when the last one recovers).
    pub fn on_result(
        &mut self,
        idx: usize,
        ok: bool,
        started: Instant,
        now: Instant,
    ) -> Option<bool> {
        let was = self.is_alive();
        self.checkers.get_mut(idx)?.on_result(ok, started, now);
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
#[path = "machine_tests.rs"]
mod tests;
