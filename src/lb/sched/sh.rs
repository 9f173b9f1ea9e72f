//! Source hashing (`ip_vs_sh`): the client address (and, with the `port`
//! flag, its port) hashed into a 256-bucket table where each server holds
//! buckets in proportion to its weight. With the `fallback` flag an
//! unavailable server's bucket moves on to the next available one;
//! without it such clients get no server.
#![forbid(unsafe_code)]

use super::{table_pick, SchedCtx, Scheduler, HASH_TAB_SIZE, NONE, SCHED_SEED};
use crate::lb::hash::hash_addr;
use crate::lb::types::FlowKey;

/// Fill the table: servers in order, each taking `weight` consecutive
/// buckets per round until all buckets are assigned; weight-0 servers get
/// none. All zero: an empty table.
pub fn build_table(weights: &[u32]) -> Vec<u32> {
    let mut t = vec![NONE; HASH_TAB_SIZE];
    if weights.iter().all(|&w| w == 0) {
        return t;
    }
    let mut i = 0usize;
    let mut taken = 0u32;
    for slot in t.iter_mut() {
        while weights[i] == 0 {
            i = (i + 1) % weights.len();
        }
        *slot = i as u32;
        taken += 1;
        if taken >= weights[i] {
            i = (i + 1) % weights.len();
            taken = 0;
        }
    }
    t
}

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Sh;

impl Scheduler for Sh {
    fn pick(&mut self, ctx: &SchedCtx<'_>, key: &FlowKey) -> Option<usize> {
        let port = if ctx.flags.port {
            key.cport() as u64
        } else {
            0
        };
        let h = hash_addr(&key.client(), port, SCHED_SEED);
        table_pick(&ctx.tables.hashed, ctx.servers, h, ctx.flags.fallback)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use crate::lb::types::RsId;

    #[test]
    fn weighted_and_stable() {
        let s = snap(SchedulerKind::Sh, &[1, 3], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Sh);
        let d = distribution(&mut st, &s, 40_000);
        assert!((9_000..11_000).contains(&d[0]), "{d:?}");
        let c = ctx(&s);
        for i in 0..100 {
            assert_eq!(st.pick(&c, &key(i)), st.pick(&c, &key(i)));
        }
    }

    #[test]
    fn fallback_flag() {
        let flags = SchedFlags {
            fallback: true,
            port: false,
            ..SchedFlags::default()
        };
        let s = snap(SchedulerKind::Sh, &[1, 1], flags);
        let mut st = SchedState::new(SchedulerKind::Sh);
        let before: Vec<_> = (0..200).map(|i| st.pick(&ctx(&s), &key(i))).collect();
        s.set_weight(RsId(0), 0);
        for i in 0..200u32 {
            let now = st.pick(&ctx(&s), &key(i));
            assert_eq!(now, Some(1));
            if before[i as usize] == Some(1) {
                assert_eq!(now, before[i as usize]);
            }
        }
        let s2 = snap(SchedulerKind::Sh, &[1, 1], SchedFlags::default());
        s2.set_weight(RsId(0), 0);
        let none = (0..200)
            .filter(|&i| st.pick(&ctx(&s2), &key(i)).is_none())
            .count();
        assert!(none > 50, "no fallback: clients of server 0 get nothing");
    }
}
