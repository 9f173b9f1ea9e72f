//! Weighted least connection (`ip_vs_wlc`, the IPVS default): the smallest
//! `overhead / weight`, compared as cross products
//! (`overhead_a * weight_b > overhead_b * weight_a`); first found wins ties.
#![forbid(unsafe_code)]

use super::lc::overhead;
use super::{SchedCtx, Scheduler};
use crate::lb::types::FlowKey;

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Wlc;

impl Scheduler for Wlc {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u64, u64)> = None;
        for (i, s) in ctx.servers.iter().enumerate() {
            let gate = s.gate();
            if !gate.available() {
                continue;
            }
            let (doh, dw) = (overhead(s), gate.weight() as u64);
            match best {
                Some((_, loh, lw)) if loh * dw <= doh * lw => {}
                _ => best = Some((i, doh, dw)),
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
    fn overhead_over_weight() {
        let s = snap(SchedulerKind::Wlc, &[1, 3, 2], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Wlc);
        set_conns(&s, 0, 1, 0); // 256/1
        set_conns(&s, 1, 3, 10); // 778/3 = 259.3
        set_conns(&s, 2, 2, 0); // 512/2 = 256: tie with server 0, first wins
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(0));
        set_conns(&s, 0, 0, 1); // 257
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(2));
    }

    #[test]
    fn idle_servers_proportional_start() {
        let s = snap(SchedulerKind::Wlc, &[1, 1], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Wlc);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(0));
    }
}
