//! Weighted round robin (`ip_vs_wrr`): a current weight `cw` steps down from
//! the maximum weight by the gcd of all weights each time the cursor wraps;
//! a server is chosen when its weight is at least `cw`. Over `sum(weights)/gcd`
//! picks every server is chosen `weight/gcd` times.
#![forbid(unsafe_code)]

use super::{gcd, SchedCtx, Scheduler};
use crate::lb::types::FlowKey;

/// Per-worker cursor, current weight and cached max/gcd of the weights.
#[derive(Clone, Debug)]
pub struct Wrr {
    i: usize,
    cw: i64,
    mw: i64,
    di: i64,
    gen: u64,
}

impl Default for Wrr {
    fn default() -> Self {
        Wrr {
            i: usize::MAX,
            cw: 0,
            mw: 0,
            di: 1,
            gen: u64::MAX,
        }
    }
}

impl Wrr {
    fn refresh(&mut self, ctx: &SchedCtx<'_>) {
        let mut mw = 0u32;
        let mut g = 0u32;
        for s in ctx.servers {
            let w = s.weight();
            if w > 0 {
                mw = mw.max(w);
                g = gcd(w, g);
            }
        }
        self.mw = mw as i64;
        self.di = g.max(1) as i64;
        self.gen = ctx.weights_gen;
        if self.cw > self.mw {
            self.cw = self.mw;
        }
    }
}

impl Scheduler for Wrr {
    fn pick(&mut self, ctx: &SchedCtx<'_>, _key: &FlowKey) -> Option<usize> {
        if self.gen != ctx.weights_gen {
            self.refresh(ctx);
        }
        let n = ctx.servers.len();
        if self.mw == 0 || n == 0 {
            return None;
        }
        let steps = n * (self.mw / self.di) as usize + n;
        for _ in 0..steps {
            self.i = if self.i >= n - 1 { 0 } else { self.i + 1 };
            if self.i == 0 {
                self.cw -= self.di;
                if self.cw <= 0 {
                    self.cw = self.mw;
                }
            }
            let gate = ctx.servers[self.i].gate();
            let w = gate.weight() as i64;
            if w > 0 && w >= self.cw && gate.usable_ignoring_weight() {
                return Some(self.i);
            }
        }
        None
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use crate::lb::types::RsId;

    #[test]
    fn ipvs_sequence_and_proportions() {
        let s = snap(SchedulerKind::Wrr, &[4, 3, 2], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Wrr);
        let c = ctx(&s);
        let seq: Vec<usize> = (0..9).map(|i| st.pick(&c, &key(i)).unwrap()).collect();
        // cw = 4: a; 3: a b; 2: a b c; 1: a b c
        assert_eq!(seq, vec![0, 0, 1, 0, 1, 2, 0, 1, 2]);
        assert_eq!(distribution(&mut st, &s, 9000), vec![4000, 3000, 2000]);
    }

    #[test]
    fn gcd_steps_and_runtime_weight_change() {
        let s = snap(SchedulerKind::Wrr, &[100, 200, 0], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Wrr);
        assert_eq!(distribution(&mut st, &s, 300), vec![100, 200, 0]);
        s.set_weight(RsId(2), 300);
        assert_eq!(distribution(&mut st, &s, 6000), vec![1000, 2000, 3000]);
    }
}
