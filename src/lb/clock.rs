//! The coarse clock of the state layer: milliseconds, set by the worker once
//! per burst (from the TSC) and moved by hand in tests. Nothing in the state
//! layer reads the system time on the per-packet path.
#![forbid(unsafe_code)]

/// A coarse monotonic time in milliseconds. The owner decides the origin
/// (e.g. TSC at start); only differences matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Clock {
    now_ms: u64,
}

impl Clock {
    /// A clock reading `now_ms`.
    pub const fn at_ms(now_ms: u64) -> Self {
        Clock { now_ms }
    }

    /// The current time in milliseconds.
    #[inline]
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Set the time (once per burst). Going backwards is ignored so expiry
    /// arithmetic never sees time run in reverse.
    #[inline]
    pub fn set_ms(&mut self, now_ms: u64) {
        if now_ms > self.now_ms {
            self.now_ms = now_ms;
        }
    }

    /// Set the time from a cycle counter (TSC) and its rate in cycles per
    /// millisecond (`rte_get_tsc_hz() / 1000`). A zero rate is ignored.
    #[inline]
    pub fn set_from_cycles(&mut self, cycles: u64, cycles_per_ms: u64) {
        if let Some(ms) = cycles.checked_div(cycles_per_ms) {
            self.set_ms(ms);
        }
    }

    /// Move the time forward by `ms` (tests, simulations).
    pub fn advance_ms(&mut self, ms: u64) {
        self.now_ms = self.now_ms.saturating_add(ms);
    }
}

/// Seconds to milliseconds.
#[inline]
pub const fn secs(s: u32) -> u64 {
    s as u64 * 1000
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only() {
        let mut c = Clock::at_ms(10);
        c.set_ms(5);
        assert_eq!(c.now_ms(), 10);
        c.advance_ms(990);
        assert_eq!(c.now_ms(), 1000);
        c.set_from_cycles(3_000_000_000, 1_000_000);
        assert_eq!(c.now_ms(), 3000);
        assert_eq!(secs(2), 2000);
    }
}
