//! Shortest expected delay (`ip_vs_sed`): the smallest
//! `(active + 1) / weight`, compared as cross products; first found wins ties.
#![forbid(unsafe_code)]

use super::{SchedCtx, Scheduler};
use crate::lb::types::FlowKey;

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Sed;

impl Scheduler for Sed {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u64, u64)> = None;
        for (i, s) in ctx.servers.iter().enumerate() {
            let gate = s.gate();
            if !gate.available() {
                continue;
            }
            let (doh, dw) = (s.active() as u64 + 1, gate.weight() as u64);
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
    fn expected_delay() {
        let s = snap(SchedulerKind::Sed, &[1, 4], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Sed);
        // (0+1)/1 = 1 vs (0+1)/4: the heavier server even when both idle
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(1));
        set_conns(&s, 1, 3, 100); // (3+1)/4 = 1: tie, first wins
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(0));
        set_conns(&s, 0, 1, 0); // 2/1 vs 1
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(1));
    }
}
