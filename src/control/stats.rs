//! Statistics as the operator reads them: the control plane sums what the
//! workers publish (`dataplane::counters`) and prints one compact line
//! periodically and the full table at exit or on `pmdlb ctl stats`.
#![forbid(unsafe_code)]

use crate::dataplane::counters::{WorkerCounters, WorkerStats};
use crate::dataplane::verdict::DropReason;
use crate::lb::state::StateCounters;
use std::fmt::Write as _;

/// Sum of several workers.
pub fn total(per_worker: &[WorkerStats]) -> WorkerStats {
    let mut t = WorkerStats::default();
    for w in per_worker {
        t.add(w);
    }
    t
}

/// The one-line periodic summary: totals plus rates since `prev` (and,
/// once a tunnelled packet was sent in fragments, how many were). `conns`
/// is the live entries, `new` the connections created (their rate is what
/// a new-client flood measures).
pub fn compact_line(now: &WorkerStats, prev: &WorkerStats, secs: f64, extra: &str) -> String {
    let rate = |a: u64, b: u64| {
        if secs > 0.0 {
            (a.saturating_sub(b)) as f64 / secs
        } else {
            0.0
        }
    };
    let mut top = String::new();
    let mut drops: Vec<(usize, u64)> = now
        .drops
        .counts
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, v)| v > 0)
        .collect();
    drops.sort_by_key(|d| std::cmp::Reverse(d.1));
    for (i, v) in drops.iter().take(3) {
        let _ = write!(top, " {}={}", DropReason::ALL[*i].name(), v);
    }
    let fragmented = match now.io.tunnel_fragmented {
        0 => String::new(),
        n => format!(" tunnel_fragmented={n}"),
    };
    format!(
        "rx={} ({:.0}/s) fwd={} ({:.0}/s) reply={} drop={}{}{} tx_refused={} conns={} new={} ({:.0}/s){}",
        now.io.rx,
        rate(now.io.rx, prev.io.rx),
        now.io.forwarded,
        rate(now.io.forwarded, prev.io.forwarded),
        now.io.replies,
        now.dropped(),
        if top.is_empty() {
            String::new()
        } else {
            format!(" [{}]", top.trim_start())
        },
        fragmented,
        now.io.tx_refused,
        now.io.conns,
        now.state.conn_created,
        rate(now.state.conn_created, prev.state.conn_created),
        extra
    )
}

/// The full table: one column per worker and a total column.
pub fn full_table(per_worker: &[WorkerStats]) -> String {
    let t = total(per_worker);
    let mut out = String::new();
    let _ = write!(out, "{:<24}", "counter");
    for i in 0..per_worker.len() {
        let _ = write!(out, " {:>14}", format!("worker{i}"));
    }
    let _ = writeln!(out, " {:>14}", "total");
    let row = |out: &mut String, name: &str, vals: &mut dyn Iterator<Item = u64>, total: u64| {
        let _ = write!(out, "{name:<24}");
        for v in vals {
            let _ = write!(out, " {v:>14}");
        }
        let _ = writeln!(out, " {total:>14}");
    };
    let io: Vec<_> = per_worker.iter().map(|w| w.io.values()).collect();
    let tio = t.io.values();
    for (k, name) in WorkerCounters::NAMES.iter().enumerate() {
        row(&mut out, name, &mut io.iter().map(|v| v[k]), tio[k]);
    }
    let st: Vec<_> = per_worker.iter().map(|w| w.state.values()).collect();
    let tst = t.state.values();
    for (k, name) in StateCounters::NAMES.iter().enumerate() {
        row(&mut out, name, &mut st.iter().map(|v| v[k]), tst[k]);
    }
    for r in DropReason::ALL {
        let i = r.as_index();
        if t.drops.counts[i] == 0 {
            continue;
        }
        row(
            &mut out,
            &format!("drop.{}", r.name()),
            &mut per_worker.iter().map(|w| w.drops.counts[i]),
            t.drops.counts[i],
        );
    }
    row(
        &mut out,
        "drop.total",
        &mut per_worker.iter().map(|w| w.dropped()),
        t.dropped(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_formats() {
        let mut s = WorkerStats::default();
        s.io.rx = 10;
        s.io.forwarded = 7;
        s.io.replies = 1;
        s.state.tcp_not_syn = 3;
        s.drops.counts[DropReason::NoService.as_index()] = 2;
        assert_eq!(s.unaccounted(), 0);
        let t = total(&[s, s]);
        assert_eq!(t.io.rx, 20);
        assert_eq!(t.state.tcp_not_syn, 6);
        assert_eq!(t.dropped(), 4);
        let table = full_table(&[s, s]);
        assert!(table.contains("drop.no_service"));
        let row = |name: &str| {
            table
                .lines()
                .find(|l| l.split_whitespace().next() == Some(name))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>())
        };
        assert_eq!(row("rx"), Some(vec!["10", "10", "20"]));
        // Every counter of both sets has its row.
        for name in WorkerCounters::NAMES.iter().chain(StateCounters::NAMES) {
            assert!(row(name).is_some(), "no row {name}:\n{table}");
        }
        assert_eq!(row("tcp_not_syn"), Some(vec!["3", "3", "6"]));
        let line = compact_line(&t, &WorkerStats::default(), 2.0, "");
        assert!(line.starts_with("rx=20 (10/s) fwd=14"), "{line}");
        assert!(line.contains("no_service=4"), "{line}");
        assert!(!line.contains("tunnel_fragmented"), "{line}");
        let mut n = t;
        n.state.conn_created = 8;
        let line = compact_line(&n, &t, 2.0, "");
        assert!(line.contains(" new=8 (4/s)"), "{line}");
        let mut f = t;
        f.io.tunnel_fragmented = 3;
        let line = compact_line(&f, &WorkerStats::default(), 2.0, "");
        assert!(line.contains("] tunnel_fragmented=3 tx_refused="), "{line}");
    }
}
