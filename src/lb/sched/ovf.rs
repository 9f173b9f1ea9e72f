//! Weighted overflow (`ip_vs_ovf`): the highest-weight available server
//! whose active connections are below its weight; first found wins ties.
#![forbid(unsafe_code)]

use super::{SchedCtx, Scheduler};
use crate::lb::types::FlowKey;

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Ovf;

impl Scheduler for Ovf {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, s) in ctx.servers.iter().enumerate() {
            let gate = s.gate();
            let w = gate.weight();
            if !gate.available() || s.active() >= w {
                continue;
            }
            if best.map_or(true, |(_, hw)| w > hw) {
                best = Some((i, w));
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
    fn overflows_to_next_weight() {
        let s = snap(SchedulerKind::Ovf, &[2, 3, 3], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Ovf);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(1));
        set_conns(&s, 1, 3, 0);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(2));
        set_conns(&s, 2, 3, 0);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(0));
        set_conns(&s, 0, 2, 0);
        assert_eq!(st.pick(&ctx(&s), &key(0)), None);
    }
}
