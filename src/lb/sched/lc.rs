//! Least connection (`ip_vs_lc`): the smallest overhead
//! `active * 256 + inactive`; the first server found wins ties.
#![forbid(unsafe_code)]

use super::{SchedCtx, Scheduler};
use crate::lb::realserver::RealServer;
use crate::lb::types::FlowKey;

/// IPVS's connection overhead of a server.
#[inline]
pub fn overhead(s: &RealServer) -> u64 {
    let (active, inactive) = s.conns();
    ((active as u64) << 8) + inactive as u64
}

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Lc;

impl Scheduler for Lc {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u64)> = None;
        for (i, s) in ctx.servers.iter().enumerate() {
            if !s.available() {
                continue;
            }
            let oh = overhead(s);
            if best.map_or(true, |(_, b)| oh < b) {
                best = Some((i, oh));
            }
        }
        best.map(|b| b.0)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    #[test]
    fn least_overhead_first_wins_ties() {
        let s = snap(SchedulerKind::Lc, &[1, 9, 1, 1], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Lc);
        set_conns(&s, 0, 1, 0); // 256
        set_conns(&s, 1, 0, 300); // 300
        set_conns(&s, 2, 0, 256); // 256
        set_conns(&s, 3, 1, 1); // 257
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(0));
        set_conns(&s, 0, 0, 1);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(2));
    }
}
