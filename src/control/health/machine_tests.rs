//! The state machine with an injected clock: keepalived's epilogs step by
//! step (retry counts, delay_before_retry, alpha, one url per round,
//! fast_recovery, several checkers) and quorum with hysteresis.

use super::*;

fn t(retry: u32) -> Timing {
    Timing {
        delay_loop: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(5),
        retry,
        delay_before_retry: Duration::from_secs(3),
        warmup: Duration::ZERO,
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

const HTTP1: Kind = Kind::Http {
    urls: 1,
    fast_recovery: false,
};

/// A result that took no time: started and arrived at `at`.
fn feed(c: &mut Checker, ok: bool, at: Instant) -> Option<bool> {
    c.on_result(ok, at, at)
}

#[test]
fn down_after_retry_plus_one_failures_spaced_by_delay_before_retry() {
    for kind in [Kind::Tcp, Kind::Misc, HTTP1] {
        let t0 = Instant::now();
        let mut c = Checker::new(t(2), kind, false, t0);
        assert!(c.is_up());
        assert_eq!(feed(&mut c, false, t0), None, "{kind:?}");
        assert_eq!(c.next_due(), t0 + s(3), "{kind:?}");
        assert_eq!(c.retries(), 1);
        assert_eq!(feed(&mut c, false, t0 + s(3)), None);
        assert_eq!(c.next_due(), t0 + s(6));
        assert_eq!(
            feed(&mut c, false, t0 + s(6)),
            Some(false),
            "{kind:?}: third failure"
        );
        assert_eq!(c.next_due(), t0 + s(66), "{kind:?}: down: delay_loop");
    }
}

#[test]
fn tcp_a_success_resets_the_count_and_one_success_brings_it_up() {
    let t0 = Instant::now();
    let mut c = Checker::new(t(1), Kind::Tcp, false, t0);
    feed(&mut c, false, t0);
    assert_eq!(feed(&mut c, true, t0 + s(3)), None);
    assert_eq!(c.retries(), 0);
    assert_eq!(c.next_due(), t0 + s(63));
    // Not down after one more failure: the count started again.
    assert_eq!(feed(&mut c, false, t0 + s(63)), None);
    assert_eq!(feed(&mut c, false, t0 + s(66)), Some(false));
    // Down: checked every delay_loop, no retries (tcp_epilog).
    assert_eq!(feed(&mut c, false, t0 + s(126)), None);
    assert_eq!(c.next_due(), t0 + s(186));
    assert_eq!(c.retries(), 0);
    assert_eq!(feed(&mut c, true, t0 + s(186)), Some(true));
    assert_eq!(c.next_due(), t0 + s(246));
}

#[test]
fn misc_is_timed_from_the_start_of_the_script() {
    let t0 = Instant::now();
    let mut c = Checker::new(t(1), Kind::Misc, false, t0);
    assert_eq!(c.on_result(true, t0, t0 + s(2)), None);
    assert_eq!(c.next_due(), t0 + s(60), "from its start, not its end");
    assert_eq!(c.on_result(false, t0 + s(60), t0 + s(61)), None);
    assert_eq!(c.next_due(), t0 + s(63));
    assert_eq!(c.on_result(false, t0 + s(63), t0 + s(64)), Some(false));
    // Down: every delay_loop, and one success brings it up.
    assert_eq!(c.on_result(false, t0 + s(123), t0 + s(124)), None);
    assert_eq!(c.next_due(), t0 + s(183));
    assert_eq!(c.on_result(true, t0 + s(183), t0 + s(184)), Some(true));
}

#[test]
fn retry_zero_goes_down_at_the_first_failure() {
    for kind in [Kind::Tcp, Kind::Misc, HTTP1] {
        let t0 = Instant::now();
        let mut c = Checker::new(t(0), kind, false, t0);
        assert_eq!(feed(&mut c, false, t0), Some(false), "{kind:?}");
        assert_eq!(c.next_due(), t0 + s(60), "{kind:?}");
    }
}

#[test]
fn alpha_starts_down_until_the_first_pass() {
    for kind in [Kind::Tcp, Kind::Misc] {
        let t0 = Instant::now();
        let mut srv = Server::new(&[(t(1), kind, t0)], true);
        assert!(!srv.is_alive());
        assert_eq!(srv.on_result(0, false, t0, t0), None);
        assert_eq!(srv.on_result(0, false, t0 + s(3), t0 + s(3)), None);
        assert_eq!(
            srv.on_result(0, true, t0 + s(63), t0 + s(63)),
            Some(true),
            "{kind:?}"
        );
    }
    let plain = Server::new(&[(t(1), Kind::Tcp, Instant::now())], false);
    assert!(plain.is_alive(), "without alpha a server starts up");
}

#[test]
fn http_fetches_one_url_per_delay_loop() {
    let t0 = Instant::now();
    let kind = Kind::Http {
        urls: 3,
        fast_recovery: false,
    };
    let mut c = Checker::new(t(1), kind, false, t0);
    let mut at = t0;
    for round in 0..2 {
        for u in 0..3 {
            assert_eq!(c.url(), u, "round {round}");
            assert_eq!(feed(&mut c, true, at), None, "already up");
            at += s(60);
            assert_eq!(c.next_due(), at);
        }
    }
    // Url 1 fails: retried (same url) after delay_before_retry, then the
    // checker goes down with url 1 as its failed url.
    assert_eq!(c.url(), 0);
    feed(&mut c, true, at);
    at += s(60);
    assert_eq!(feed(&mut c, false, at), None);
    assert_eq!((c.url(), c.next_due()), (1, at + s(3)));
    at += s(3);
    assert_eq!(feed(&mut c, false, at), Some(false));
    assert_eq!((c.url(), c.failed_url()), (1, Some(1)));
    assert_eq!(
        c.next_due(),
        at + s(60),
        "max(delay_before_retry, delay_loop)"
    );
    // Down: the failed url every max(...), nothing else.
    at += s(60);
    assert_eq!(feed(&mut c, false, at), None);
    assert_eq!((c.url(), c.next_due()), (1, at + s(60)));
    // It passes: all three again from the first, one per delay_loop; up
    // after the last.
    at += s(60);
    assert_eq!(feed(&mut c, true, at), None);
    assert_eq!(
        (c.url(), c.failed_url(), c.next_due()),
        (0, None, at + s(60))
    );
    for u in 0..3 {
        at += s(60);
        assert_eq!(c.url(), u);
        let want = (u == 2).then_some(true);
        assert_eq!(feed(&mut c, true, at), want, "url {u}");
    }
    assert_eq!(c.url(), 0);
}

#[test]
fn http_single_url_comes_back_after_two_passes() {
    let t0 = Instant::now();
    let mut c = Checker::new(t(0), HTTP1, false, t0);
    feed(&mut c, true, t0);
    assert_eq!(feed(&mut c, false, t0 + s(60)), Some(false));
    assert_eq!(
        feed(&mut c, true, t0 + s(120)),
        None,
        "the failed url passes"
    );
    assert_eq!(c.next_due(), t0 + s(180));
    assert_eq!(feed(&mut c, true, t0 + s(180)), Some(true), "all urls pass");
}

#[test]
fn http_down_failures_without_a_failed_url_retry_after_delay_before_retry() {
    // Back from a failed url, a later url fails while the checker is
    // still down: keepalived retries it every delay_before_retry and
    // counts nothing.
    let t0 = Instant::now();
    let kind = Kind::Http {
        urls: 2,
        fast_recovery: false,
    };
    let mut c = Checker::new(t(0), kind, false, t0);
    assert_eq!(feed(&mut c, false, t0), Some(false));
    assert_eq!(feed(&mut c, true, t0 + s(60)), None);
    assert_eq!(feed(&mut c, true, t0 + s(120)), None);
    assert_eq!(c.url(), 1);
    assert_eq!(feed(&mut c, false, t0 + s(180)), None);
    assert_eq!((c.url(), c.failed_url()), (1, None));
    assert_eq!(c.next_due(), t0 + s(183));
    assert_eq!(feed(&mut c, true, t0 + s(183)), Some(true));
}

#[test]
fn http_alpha_and_fast_recovery() {
    let t0 = Instant::now();
    let slow = Kind::Http {
        urls: 3,
        fast_recovery: false,
    };
    let fast = Kind::Http {
        urls: 3,
        fast_recovery: true,
    };
    // alpha: down until every url passed, one per delay_loop…
    let mut c = Checker::new(t(1), slow, true, t0);
    assert_eq!(feed(&mut c, true, t0), None);
    assert_eq!(feed(&mut c, true, t0 + s(60)), None);
    assert_eq!(feed(&mut c, true, t0 + s(120)), Some(true));
    assert_eq!(c.next_due(), t0 + s(180));
    // …or at once with fast_recovery.
    let mut c = Checker::new(t(1), fast, true, t0);
    assert_eq!(feed(&mut c, true, t0), None);
    assert_eq!(c.next_due(), t0, "no delay while starting");
    assert_eq!(feed(&mut c, true, t0), None);
    assert_eq!(feed(&mut c, true, t0), Some(true));
    assert_eq!(c.next_due(), t0 + s(60), "up: delay_loop again");
    // Recovery: the failed url is still re-fetched every delay_loop, then
    // the rest without delay.
    feed(&mut c, false, t0 + s(60));
    assert_eq!(feed(&mut c, false, t0 + s(63)), Some(false));
    assert_eq!(c.next_due(), t0 + s(123));
    assert_eq!(feed(&mut c, true, t0 + s(123)), None);
    assert_eq!(c.next_due(), t0 + s(123), "no failed url known: at once");
    assert_eq!(feed(&mut c, true, t0 + s(124)), None);
    assert_eq!(feed(&mut c, true, t0 + s(124)), None);
    assert_eq!(feed(&mut c, true, t0 + s(125)), Some(true));
}

#[test]
fn http_first_round_has_no_retries_after_a_partial_pass() {
    // keepalived sets retry_it = retry after a url passes before the
    // checker has run a whole round: a failure then goes down at once.
    let t0 = Instant::now();
    let kind = Kind::Http {
        urls: 2,
        fast_recovery: false,
    };
    let mut c = Checker::new(t(3), kind, false, t0);
    assert_eq!(feed(&mut c, true, t0), None);
    assert_eq!(feed(&mut c, false, t0 + s(60)), Some(false));
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
    let mut srv = Server::new(&[(t(0), Kind::Tcp, t0), (t(0), HTTP1, t0)], false);
    assert!(srv.is_alive());
    assert_eq!(
        srv.on_result(0, false, t0, t0),
        Some(false),
        "first failure pulls it"
    );
    assert_eq!(srv.on_result(1, false, t0, t0), None, "already down");
    let t1 = t0 + s(60);
    assert_eq!(srv.on_result(0, true, t1, t1), None, "one still down");
    let t2 = t0 + s(120);
    assert_eq!(srv.on_result(1, true, t1, t1), None, "http: the failed url");
    assert_eq!(
        srv.on_result(1, true, t2, t2),
        Some(true),
        "last one recovers"
    );
    assert_eq!(srv.on_result(7, true, t0, t0), None, "unknown checker");
}
