//! The worker loop, one per worker lcore, run to completion in l3fwd's
//! order: drain TX buffers when the drain interval has passed, receive a
//! burst, prefetch the frames, decide the burst (`decide_burst`: parse and
//! prefetch table buckets for all, then assign in order), buffer per TX port, flush
//! full buffers, free (in bulk) and count whatever was dropped. Slow jobs —
//! connection-table sweep slices, counter publishing and, when the control
//! plane asked, a bounded slice of a connection dump (`dataplane::dump`) —
//! run every `SLOW_EVERY` loops. Per-real-server packets and bytes are counted in
//! worker-local arrays (`dataplane::traffic`). The per-packet path allocates nothing, takes no lock,
//! makes no system call and does not log.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::dataplane::counters::{Published, WorkerStats};
use crate::dataplane::decide::{decide_burst, DecideCtx};
use crate::dataplane::dump::ConnDump;
use crate::dataplane::rewrite::{begin_vlan_remove, finish_vlan_insert};
use crate::dataplane::traffic::{PublishedTraffic, TrafficCounters};
use crate::dataplane::tunnel::{self, Outer};
use crate::dataplane::verdict::{DropReason, Verdict, VlanAction};
use crate::dpdk::{Flushed, Mbuf, MbufRing, PortId, QueueId, RxBurst, TxBuffer, MAX_BURST};
use crate::lb::live::{Live, SeenEpoch, Tables};
use crate::lb::spec::{Forwarding, Tunnel};
use crate::lb::state::WorkerState;
use crate::sys::rdtsc;

/// Loops between slow jobs.
pub const SLOW_EVERY: u64 = 64;

/// Frames the control plane hands a worker to send (ARP requests for real
/// servers on the TX port, gratuitous ARP / unsolicited NA on the RX port).
#[derive(Debug)]
pub struct ControlTx {
    /// Frames for the TX port.
    pub to_tx_port: MbufRing,
    /// Frames for the RX port.
    pub to_rx_port: MbufRing,
}

/// Everything one worker owns or shares.
pub struct Worker {
    /// Worker index (= RX queue and TX queue index).
    pub index: u16,
    /// RX port.
    pub rx_port: PortId,
    /// TX port (may equal `rx_port`: one-armed).
    pub tx_port: PortId,
    /// Frames per `rx_burst`.
    pub burst: usize,
    /// TSC cycles between forced TX drains.
    pub drain_cycles: u64,
    /// TSC cycles per millisecond (for the state layer's clock).
    pub cycles_per_ms: u64,
    /// Connection-table buckets swept per slow job.
    pub sweep_buckets: usize,
    /// Decision context (port MACs, VLAN policy).
    pub ctx: DecideCtx,
    /// Outer source addresses of tunnelled packets.
    pub tunnel_src: TunnelSrc,
    /// The published tables; the worker follows swaps at burst boundaries.
    pub live: Arc<Live>,
    /// The tables in use (service lookup; `state` holds their snapshot).
    pub tables: Arc<Tables>,
    /// Where the worker announces the epoch it runs on.
    pub seen: Arc<SeenEpoch>,
    /// Connection table, schedulers and the shared persistence table.
    pub state: WorkerState,
    /// Where neighbour frames go (the control plane drains it).
    pub to_control: Arc<MbufRing>,
    /// Frames the control plane wants sent through this worker (worker 0).
    pub control_tx: Option<Arc<ControlTx>>,
    /// Where counters are published.
    pub published: Arc<Published>,
    /// Where per-real-server traffic counters are published.
    pub traffic: Arc<PublishedTraffic>,
    /// Where connection entries are copied when the control plane asks
    /// (`ipvsadm -L -c`), a bounded slice per slow job.
    pub dump: Arc<ConnDump>,
    /// Set by the control plane to stop the loop.
    pub stop: Arc<AtomicBool>,
}

/// The director's outer source addresses for tunnel servers (`None`: no
/// tunnel server of that family, the configuration made sure of it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelSrc {
    /// For IPv4 tunnel servers.
    pub v4: Option<[u8; 4]>,
    /// For IPv6 tunnel servers.
    pub v6: Option<[u8; 16]>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Worker({}: {:?} -> {:?})",
            self.index, self.rx_port, self.tx_port
        )
    }
}

#[inline(always)]
fn count_flush(st: &mut WorkerStats, f: Flushed) {
    st.io.tx_sent += u64::from(f.sent);
    st.io.tx_refused += u64::from(f.dropped);
}

impl Worker {
    /// Runs until `stop` is set, then drains its TX buffers and publishes
    /// its final counters.
    pub fn run(mut self) {
        let q = QueueId(self.index);
        let one_armed = self.rx_port == self.tx_port;
        let mut tx_dr = TxBuffer::new(self.tx_port, q, self.burst);
        let mut tx_reply = TxBuffer::new(self.rx_port, q, self.burst);
        let mut rx = RxBurst::default();
        let mut st = WorkerStats::default();
        let mut traffic = TrafficCounters::new(self.state.snapshot().capacity().servers as usize);
        let mut last_drain = rdtsc();
        let cpm = self.cycles_per_ms.max(1);
        self.seen.set(self.tables.epoch());
        // arc-swap registers a reader thread on its first load (its only
        // allocation): do it here, before the first burst, not at a swap.
        drop(self.live.load());

        while !self.stop.load(Ordering::Relaxed) {
            if self.live.epoch() != self.tables.epoch() {
                self.pick_up();
            }
            let now = rdtsc();
            if now.wrapping_sub(last_drain) >= self.drain_cycles {
                last_drain = now;
                count_flush(&mut st, tx_dr.flush());
                if !one_armed {
                    count_flush(&mut st, tx_reply.flush());
                }
                if let Some(ctl) = &self.control_tx {
                    ctl.to_tx_port.drain(|m| {
                        st.io.control_sent += 1;
                        count_flush(&mut st, tx_dr.push(m));
                    });
                    ctl.to_rx_port.drain(|m| {
                        st.io.control_sent += 1;
                        let f = if one_armed {
                            tx_dr.push(m)
                        } else {
                            tx_reply.push(m)
                        };
                        count_flush(&mut st, f);
                    });
                }
            }
            self.state.set_now(now / cpm);

            let n = rx.receive(self.rx_port, q, self.burst);
            st.io.loops += 1;
            if n > 0 {
                st.io.bursts += 1;
                st.io.rx += n as u64;
                for i in 0..n {
                    rx.prefetch_data(i);
                }
                let mut verdicts = [Verdict::Neighbour; MAX_BURST];
                {
                    let mut frames: [&mut [u8]; MAX_BURST] =
                        std::array::from_fn(|_| <&mut [u8]>::default());
                    let k = rx.frames_mut(&mut frames);
                    decide_burst(
                        &mut frames[..k],
                        &mut verdicts[..k],
                        &self.ctx,
                        &self.tables.services,
                        &mut self.state,
                    );
                }
                for (i, &verdict) in verdicts.iter().enumerate().take(n) {
                    match verdict {
                        Verdict::Forward {
                            target,
                            vlan,
                            ip_len,
                        } => {
                            let Some(m) = rx.take(i) else { continue };
                            let m = match target.forward {
                                Forwarding::Dr => apply_vlan(m, vlan),
                                Forwarding::Tunnel(t) => {
                                    let snap = self.state.snapshot();
                                    let dst = snap.server(target.rs).map(|s| s.addr);
                                    match apply_vlan(m, vlan) {
                                        Some(m) => {
                                            match encap(m, t, dst, self.tunnel_src, ip_len) {
                                                Some(m) => Some(m),
                                                None => {
                                                    st.io.tunnel_failed += 1;
                                                    continue;
                                                }
                                            }
                                        }
                                        None => None,
                                    }
                                }
                            };
                            match m {
                                Some(m) => {
                                    st.io.forwarded += 1;
                                    traffic.forwarded(target.rs, ip_len);
                                    count_flush(&mut st, tx_dr.push(m));
                                }
                                None => st.io.vlan_no_headroom += 1,
                            }
                        }
                        Verdict::Reply { len } | Verdict::TooBig { len } => {
                            let Some(mut m) = rx.take(i) else { continue };
                            let extra = m.len().saturating_sub(len);
                            if extra > 0 {
                                m.trim(extra as u16);
                            }
                            if let Verdict::TooBig { .. } = verdict {
                                st.drops.inc(DropReason::TunnelTooBig);
                                st.io.too_big_sent += 1;
                            } else {
                                st.io.replies += 1;
                            }
                            let f = if one_armed {
                                tx_dr.push(m)
                            } else {
                                tx_reply.push(m)
                            };
                            count_flush(&mut st, f);
                        }
                        Verdict::Neighbour => {
                            let Some(m) = rx.take(i) else { continue };
                            match self.to_control.enqueue(m) {
                                Ok(()) => st.io.to_control += 1,
                                Err(m) => {
                                    drop(m);
                                    st.io.control_ring_full += 1;
                                }
                            }
                        }
                        Verdict::Drop(r) => st.drops.inc(r),
                    }
                }
                // Dropped frames are still in the burst: free them in bulk.
                rx.clear();
            }

            if st.io.loops % SLOW_EVERY == 0 {
                self.state.sweep(self.sweep_buckets);
                fill_state_stats(&self.state, &mut st);
                self.published.publish(&st);
                self.publish_traffic(&traffic);
                self.dump.step(&self.state);
            }
        }

        count_flush(&mut st, tx_dr.flush());
        count_flush(&mut st, tx_reply.flush());
        fill_state_stats(&self.state, &mut st);
        self.published.publish(&st);
        self.publish_traffic(&traffic);
    }

    /// A burst boundary after a swap: run on the new tables from now on.
    /// The old ones are dropped here, but the control plane still holds
    /// them (`lb::live::Retired`), so nothing is freed on this core.
    #[cold]
    fn pick_up(&mut self) {
        let t = self.live.load();
        drop(self.state.switch(Arc::clone(&t.snap)));
        if t.timeouts != self.tables.timeouts {
            self.state.set_timeouts(t.timeouts);
        }
        if t.flags != self.tables.flags {
            self.state.set_flags(t.flags);
        }
        self.tables = t;
        self.seen.set(self.tables.epoch());
    }

    /// The traffic counters of every server that holds a slot.
    fn publish_traffic(&self, traffic: &TrafficCounters) {
        let snap = self.state.snapshot();
        let slots = snap.servers().map(|s| snap.server_slot(s.id));
        self.traffic
            .publish(traffic, self.state.conns_by_rs(), slots);
    }
}

/// Copies the state layer's counters, whole, into the published block.
fn fill_state_stats(state: &WorkerState, st: &mut WorkerStats) {
    st.io.conns = state.conn_count() as u64;
    st.state = *state.counters();
}

/// Applies a length-changing VLAN action to an mbuf; `None` (frame freed)
/// when there is no headroom for a tag or the frame is too short.
#[inline]
fn apply_vlan(mut m: Mbuf, action: VlanAction) -> Option<Mbuf> {
    match action {
        VlanAction::None => Some(m),
        VlanAction::Insert(tci) => {
            if !m.prepend(4) {
                return None;
            }
            finish_vlan_insert(m.data_mut(), tci).ok()?;
            Some(m)
        }
        VlanAction::Remove => {
            begin_vlan_remove(m.data_mut()).ok()?;
            if !m.adj(4) {
                return None;
            }
            Some(m)
        }
    }
}

/// Encapsulates a forwarded frame for tunnel `t` to `dst` (see
/// [`crate::dataplane::tunnel`]); `None` (frame freed) without headroom,
/// without a source address of the server's family, or for a frame that
/// does not hold its IP packet.
#[inline]
fn encap(mut m: Mbuf, t: Tunnel, dst: Option<IpAddr>, src: TunnelSrc, ip_len: u32) -> Option<Mbuf> {
    let outer = match (dst?, src) {
        (IpAddr::V4(d), TunnelSrc { v4: Some(s), .. }) => Outer::V4 {
            src: s,
            dst: d.octets(),
        },
        (IpAddr::V6(d), TunnelSrc { v6: Some(s), .. }) => Outer::V6 {
            src: s,
            dst: d.octets(),
        },
        _ => return None,
    };
    let h = tunnel::overhead(t.kind, outer.is_v6());
    if !m.prepend(h as u16) {
        return None;
    }
    let len = tunnel::encapsulate(m.data_mut(), &outer, t, ip_len as usize).ok()?;
    let extra = m.len().saturating_sub(len);
    if extra > 0 && !m.trim(extra as u16) {
        return None;
    }
    Some(m)
}
