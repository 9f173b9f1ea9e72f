//! Rate estimation as IPVS does it (`ip_vs_est.c`): every 2 seconds the
//! control plane samples the cumulative counters of a service, a real
//! server or the whole director, turns the difference into a per-second
//! rate and folds it into an exponentially weighted average that gives
//! each new sample a weight of 1/4. Averages are kept in fixed point like
//! the kernel's — counts per second scaled by 2^10, bytes per second by
//! 2^5 — and rounded to the nearest unit when read, so `--rate` figures match what IPVS
//! would show for the same traffic.
#![forbid(unsafe_code)]

use std::time::Duration;

/// How often [`Estimator::sample`] is meant to be called.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(2);

/// Fixed-point fraction bits of a packet or connection rate.
const COUNT_FRAC: u32 = 10;
/// Fixed-point fraction bits of a byte rate (bytes grow fast: fewer bits).
const BYTE_FRAC: u32 = 5;
/// A new sample's weight is 2^-WEIGHT_SHIFT.
const WEIGHT_SHIFT: u32 = 2;
/// Seconds per sample, as a shift (2 s = 2^1).
const INTERVAL_SHIFT: u32 = 1;

/// Cumulative counters of one object, as the ipvsadm `--stats` columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Connections.
    pub conns: u64,
    /// Incoming packets.
    pub in_pkts: u64,
    /// Outgoing packets (0 in DR).
    pub out_pkts: u64,
    /// Incoming bytes.
    pub in_bytes: u64,
    /// Outgoing bytes (0 in DR).
    pub out_bytes: u64,
}

/// Estimated rates per second, as the ipvsadm `--rate` columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rates {
    /// Connections per second.
    pub cps: u64,
    /// Incoming packets per second.
    pub in_pps: u64,
    /// Outgoing packets per second.
    pub out_pps: u64,
    /// Incoming bytes per second.
    pub in_bps: u64,
    /// Outgoing bytes per second.
    pub out_bps: u64,
}

/// One exponentially weighted average in fixed point with `frac` bits.
#[derive(Clone, Copy, Debug, Default)]
struct Ewma {
    scaled: i64,
}

impl Ewma {
    /// Folds in the counter's growth over one sample interval.
    fn update(&mut self, delta: u64, frac: u32) {
        // delta / 2 s, scaled by 2^frac: delta << (frac - 1).
        let rate = (delta << (frac - INTERVAL_SHIFT)) as i64;
        self.scaled += (rate - self.scaled) >> WEIGHT_SHIFT;
    }

    /// The average per second, rounded to the nearest unit (halves down).
    fn read(&self, frac: u32) -> u64 {
        let round = (1i64 << (frac - 1)) - 1;
        (self.scaled.max(0) + round) as u64 >> frac
    }
}

/// The estimator of one object (a service, a real server, the total).
#[derive(Clone, Copy, Debug, Default)]
pub struct Estimator {
    last: Totals,
    cps: Ewma,
    in_pps: Ewma,
    out_pps: Ewma,
    in_bps: Ewma,
    out_bps: Ewma,
}

impl Estimator {
    /// Starts estimating from the counters' current values (rates 0).
    pub fn new(start: Totals) -> Self {
        Estimator {
            last: start,
            ..Estimator::default()
        }
    }

    /// One sample, [`SAMPLE_INTERVAL`] after the previous one. A counter
    /// that went backwards (zeroed) counts as no growth.
    pub fn sample(&mut self, now: Totals) {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        self.cps.update(d(now.conns, self.last.conns), COUNT_FRAC);
        self.in_pps
            .update(d(now.in_pkts, self.last.in_pkts), COUNT_FRAC);
        self.out_pps
            .update(d(now.out_pkts, self.last.out_pkts), COUNT_FRAC);
        self.in_bps
            .update(d(now.in_bytes, self.last.in_bytes), BYTE_FRAC);
        self.out_bps
            .update(d(now.out_bytes, self.last.out_bytes), BYTE_FRAC);
        self.last = now;
    }

    /// The current estimates.
    pub fn rates(&self) -> Rates {
        Rates {
            cps: self.cps.read(COUNT_FRAC),
            in_pps: self.in_pps.read(COUNT_FRAC),
            out_pps: self.out_pps.read(COUNT_FRAC),
            in_bps: self.in_bps.read(BYTE_FRAC),
            out_bps: self.out_bps.read(BYTE_FRAC),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(pkts: u64, bytes: u64) -> Totals {
        Totals {
            conns: pkts / 10,
            in_pkts: pkts,
            in_bytes: bytes,
            ..Totals::default()
        }
    }

    #[test]
    fn first_sample_weighs_a_quarter() {
        // 2000 packets in 2 s = 1000 pps; the average moves 1/4 of the way.
        let mut e = Estimator::new(at(0, 0));
        e.sample(at(2000, 200_000));
        let r = e.rates();
        assert_eq!(r.in_pps, 250);
        assert_eq!(r.in_bps, 25_000);
        assert_eq!(r.cps, 25);
        assert_eq!((r.out_pps, r.out_bps), (0, 0));
    }

    #[test]
    fn steady_rate_converges_geometrically() {
        // Constant 1000 pps: the error shrinks by 3/4 per sample, so after
        // n samples the estimate is 1000 * (1 - (3/4)^n).
        let mut e = Estimator::new(Totals::default());
        let mut last = 0;
        for n in 1..=30u32 {
            e.sample(at(2000 * u64::from(n), 0));
            let got = e.rates().in_pps;
            let real = 1000.0 * (1.0 - 0.75f64.powi(n as i32));
            // Fixed point truncates each step and rounds the reading.
            assert!(
                (got as f64 - real).abs() <= 1.0,
                "sample {n}: {got} vs {real}"
            );
            last = got;
        }
        assert_eq!(last, 1000);
    }

    #[test]
    fn decays_to_zero_when_traffic_stops() {
        let mut e = Estimator::new(Totals::default());
        for n in 1..=40 {
            e.sample(at(2000 * n, 64_000 * n));
        }
        assert_eq!(e.rates().in_pps, 1000);
        assert_eq!(e.rates().in_bps, 32_000);
        let stop = at(2000 * 40, 64_000 * 40);
        e.sample(stop);
        assert_eq!(e.rates().in_pps, 750);
        for _ in 0..60 {
            e.sample(stop);
        }
        assert_eq!(e.rates(), Rates::default());
    }

    #[test]
    fn counters_going_backwards_count_as_idle() {
        let mut e = Estimator::new(at(5000, 5000));
        e.sample(at(10, 10));
        assert_eq!(e.rates(), Rates::default());
        e.sample(at(2010, 10));
        assert_eq!(e.rates().in_pps, 250);
    }
}
