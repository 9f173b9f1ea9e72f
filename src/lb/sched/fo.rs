//! Weighted failover (`ip_vs_fo`): the available server with the highest
//! weight; the first found wins ties.
#![forbid(unsafe_code)]

use super::{SchedCtx, Scheduler};
use crate::lb::types::FlowKey;

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Fo;

impl Scheduler for Fo {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, s) in ctx.servers.iter().enumerate() {
            let gate = s.gate();
            let w = gate.weight();
            if gate.available() && best.map_or(true, |(_, hw)| w > hw) {
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
    use crate::lb::types::RsId;

    #[test]
    fn highest_weight_then_failover() {
        let s = snap(SchedulerKind::Fo, &[5, 10, 10, 1], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Fo);
        assert_eq!(distribution(&mut st, &s, 10), vec![0, 10, 0, 0]);
        s.set_weight(RsId(1), 0);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(2));
        s.set_mac(RsId(2), None);
        assert_eq!(st.pick(&ctx(&s), &key(0)), Some(0));
    }
}
