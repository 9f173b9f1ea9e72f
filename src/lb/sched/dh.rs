//! Destination hashing (`ip_vs_dh`): the destination (virtual) address
//! hashed into the weighted 256-bucket table; an unavailable server means
//! no server (IPVS dh has no fallback).
#![forbid(unsafe_code)]

use super::{table_pick, SchedCtx, Scheduler, SCHED_SEED};
use crate::lb::hash::hash_addr;
use crate::lb::types::FlowKey;

/// Stateless.
#[derive(Clone, Debug, Default)]
pub struct Dh;

impl Scheduler for Dh {
    fn pick(&mut self, ctx: &SchedCtx<'_>, key: &FlowKey) -> Option<usize> {
        let h = hash_addr(&key.vip(), 0, SCHED_SEED ^ 0xd);
        table_pick(&ctx.tables.hashed, ctx.servers, h, false)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::super::testutil::*;
    use super::super::*;
    use crate::lb::types::Addr;

    #[test]
    fn same_destination_same_server() {
        let s = snap(SchedulerKind::Dh, &[1, 1, 1], SchedFlags::default());
        let mut st = SchedState::new(SchedulerKind::Dh);
        let c = ctx(&s);
        let first = st.pick(&c, &key(0));
        for i in 0..100 {
            assert_eq!(st.pick(&c, &key(i)), first);
        }
        let mut seen = std::collections::HashSet::new();
        for v in 0..200u8 {
            let k = key(0);
            let k = FlowKey::new(
                k.family(),
                k.proto(),
                k.client(),
                k.cport(),
                Addr::v4([198, 51, 100, v]),
                k.vport(),
            );
            seen.insert(st.pick(&c, &k));
        }
        assert_eq!(seen.len(), 3);
    }
}
