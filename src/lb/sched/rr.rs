//! Round robin (`ip_vs_rr`): the next available server after the last one
//! chosen, weights ignored except that weight 0 is skipped.
#![forbid(unsafe_code)]

use super::{SchedCtx, Scheduler};
use crate::lb::types::FlowKey;

/// Per-worker cursor.
#[derive(Clone, Debug, Default)]
pub struct Rr {
    last: usize,
}

impl Scheduler for Rr {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        let n = ctx.servers.len();
        for k in 1..=n {
            let i = (self.last + k) % n;
            if ctx.servers[i].available() {
                self.last = i;
                return Some(i);
            }
        }
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testutil::*;
    use super::super::*;

    #[test]
    fn cycles_and_skips_quiescent() {
        let s = snap(SchedulerKind::Rr, &[1, 5, 0, 1], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Rr);
        assert_eq!(distribution(&mut st, &s, 300), vec![100, 100, 0, 100]);
    }
}
