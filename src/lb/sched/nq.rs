//! Never queue (`ip_vs_nq`): the first server with no active connection;
//! otherwise shortest expected delay `(active + 1) / weight`.
#![forbid(unsafe_code)]

use super::{SchedCtx, Scheduler};
use crate::lb::types::FlowKey;

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Nq;

impl Scheduler for Nq {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u64, u64)> = None;
        for (i, s) in ctx.servers.iter().enumerate() {
            let gate = s.gate();
            if !gate.available() {
                continue;
            }
            let active = s.active();
            if active == 0 {
                return Some(i);
            }
            let (doh, dw) = (active as u64 + 1, gate.weight() as u64);
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
    fn idle_first_then_sed() {
        let s = snap(SchedulerKind::Nq, &[1, 10, 1], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Nq);
        set_conns(&s, 0, 1, 0);
        set_conns(&s, 1, 1, 0);
        // server 2 is idle (inactive conns do not count): chosen over weight 10
        set_conns(&s, 2, 0, 50);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(2));
        set_conns(&s, 2, 1, 0);
        // all busy: (1+1)/1, (1+1)/10, (1+1)/1 -> server 1
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(1));
    }
}
