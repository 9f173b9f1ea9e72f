//! The worker loop, one per worker lcore, run to completion in l3fwd's
//! order: drain TX buffers when the drain interval has passed, receive a
//! burst, prefetch the frames, decide the burst (`decide_burst_hinted`: a
//! pipeline that parses and prefetches a frame's connection line 16 frames
//! before it assigns it, in order), buffer per TX port, flush
//! full buffers, free (in bulk) and count whatever was dropped. A
//! `Verdict::Fragment` (IPv4 without DF, too big for its tunnel) leaves as
//! outer IPv4 fragments: the first in the received mbuf, the others in
//! mbufs taken from the same pool (`dataplane::fragment` does the bytes). Slow jobs —
//! connection-table sweep slices, counter publishing and, when the control
//! plane asked, a bounded slice of a connection dump (`dataplane::dump`) —
//! run every `SLOW_EVERY` loops, and so does installing (a bounded number
//! of) connections peer directors sent; the connections this worker reports
//! to them are published once per burst. Per-real-server packets and bytes are counted in
//! worker-local arrays (`dataplane::traffic`). The per-packet path allocates nothing, takes no lock,
//! makes no system call and does not log.
#![forbid(unsafe_code)]

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::dataplane::counters::{Published, WorkerStats};
use crate::dataplane::decide::{decide_burst_hinted, DecideCtx, ServiceMemo};
use crate::dataplane::dump::ConnDump;
use crate::dataplane::fragment::{Split, MAX_FRAGMENTS};
use crate::dataplane::rewrite::{begin_vlan_remove, finish_vlan_insert};
use crate::dataplane::traffic::{PublishedTraffic, TrafficCounters};
use crate::dataplane::tunnel::{self, Outer, OuterIds};
use crate::dataplane::verdict::{DropReason, Verdict, VlanAction};
use crate::dpdk::{Flushed, Mbuf, MbufRing, PortId, QueueId, RxBurst, TxBuffer, MAX_BURST};
use crate::lb::live::{Live, SeenEpoch, Tables};
use crate::lb::spec::{Forwarding, Tunnel};
use crate::lb::state::WorkerState;
use crate::lb::sync_record::ConnInstall;
use crate::lb::sync_ring::Consumer;
use crate::sys::rdtsc;

/// Loops between slow jobs.
pub const SLOW_EVERY: u64 = 64;

/// Connections from peers (sync records) installed per slow job, at most:
/// bounds the time a slow job takes however fast peers send.
pub const SYNC_INSTALLS_PER_JOB: usize = 256;

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
    /// Where the outer IPv4 identifications of this worker's non-DF
    /// tunnelled packets come from.
    pub outer_ids: OuterIds,
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
    /// Connections peers sent, for this worker's table (every worker gets
    /// every record; see `lb::state`'s sync module), installed a bounded
    /// number per slow job. `None`: no sync.
    pub sync_in: Option<Consumer<ConnInstall>>,
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

/// The worker's two TX buffers: towards the real servers (the TX NIC) and
/// back towards the clients (the RX NIC; the same buffer when one-armed).
struct Lanes {
    dr: TxBuffer,
    reply: TxBuffer,
    one_armed: bool,
}

impl Lanes {
    /// A frame for the RX NIC (ARP/ND and ICMP replies, control frames).
    #[inline(always)]
    fn push_reply(&mut self, m: Mbuf) -> Flushed {
        if self.one_armed {
            self.dr.push(m)
        } else {
            self.reply.push(m)
        }
    }

    /// Sends whatever is buffered.
    fn flush(&mut self, st: &mut WorkerStats) {
        count_flush(st, self.dr.flush());
        if !self.one_armed {
            count_flush(st, self.reply.flush());
        }
    }
}

/// What the loop carries from burst to burst besides the worker itself.
struct LoopState {
    rx: RxBurst,
    lanes: Lanes,
    st: WorkerStats,
    traffic: TrafficCounters,
    verdicts: [Verdict; MAX_BURST],
    ids: OuterIds,
    /// The last service lookup, kept from burst to burst.
    memo: ServiceMemo,
}

impl Worker {
    /// Runs until `stop` is set, then drains its TX buffers and publishes
    /// its final counters.
    pub fn run(mut self) {
        let q = QueueId(self.index);
        let mut ls = LoopState {
            rx: RxBurst::default(),
            lanes: Lanes {
                dr: TxBuffer::new(self.tx_port, q, self.burst),
                reply: TxBuffer::new(self.rx_port, q, self.burst),
                one_armed: self.rx_port == self.tx_port,
            },
            st: WorkerStats::default(),
            traffic: TrafficCounters::new(self.state.snapshot().capacity().servers as usize),
            verdicts: [Verdict::Neighbour; MAX_BURST],
            ids: self.outer_ids.clone(),
            memo: ServiceMemo::default(),
        };
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
                self.drain(&mut ls);
            }
            self.state.set_now(now / cpm);
            let n = ls.rx.receive(self.rx_port, q, self.burst);
            ls.st.io.loops += 1;
            if n > 0 {
                self.burst(&mut ls, n);
            }
            if ls.st.io.loops % SLOW_EVERY == 0 {
                self.slow_job(&mut ls);
            }
        }

        count_flush(&mut ls.st, ls.lanes.dr.flush());
        count_flush(&mut ls.st, ls.lanes.reply.flush());
        fill_state_stats(&self.state, &mut ls.st);
        self.published.publish(&ls.st);
        self.publish_traffic(&ls.traffic);
    }

    /// The drain interval passed: flush the buffers, then send what the
    /// control plane queued through this worker.
    fn drain(&self, ls: &mut LoopState) {
        let (lanes, st) = (&mut ls.lanes, &mut ls.st);
        lanes.flush(st);
        if let Some(ctl) = &self.control_tx {
            ctl.to_tx_port.drain(|m| {
                st.io.control_sent += 1;
                count_flush(st, lanes.dr.push(m));
            });
            ctl.to_rx_port.drain(|m| {
                st.io.control_sent += 1;
                count_flush(st, lanes.push_reply(m));
            });
        }
    }

    /// One received burst of `n` frames: decide all, then act on each.
    #[inline(always)]
    fn burst(&mut self, ls: &mut LoopState, n: usize) {
        ls.st.io.bursts += 1;
        ls.st.io.rx += n as u64;
        for i in 0..n {
            ls.rx.prefetch_data(i);
        }
        {
            let mut frames: [&mut [u8]; MAX_BURST] =
                std::array::from_fn(|_| <&mut [u8]>::default());
            let good = ls.rx.ip_cksum_good();
            let k = ls.rx.frames_mut(&mut frames);
            decide_burst_hinted(
                &mut frames[..k],
                good,
                &mut ls.verdicts[..k],
                &self.ctx,
                &self.tables.services,
                &mut self.state,
                &mut ls.memo,
            );
        }
        self.state.flush_sync();
        for i in 0..n {
            let verdict = ls.verdicts[i];
            self.act(ls, i, verdict);
        }
        // Dropped frames are still in the burst: free them in bulk.
        ls.rx.clear();
    }

    /// What a verdict says to do with frame `i` of the burst.
    #[inline(always)]
    fn act(&self, ls: &mut LoopState, i: usize, verdict: Verdict) {
        let st = &mut ls.st;
        match verdict {
            Verdict::Forward {
                target,
                vlan,
                ip_len,
            }
            | Verdict::Fragment {
                target,
                vlan,
                ip_len,
            } => {
                let Some(m) = ls.rx.take(i) else { return };
                let Some(m) = self.rewrite(m, target, vlan, ip_len, st, &mut ls.ids) else {
                    return;
                };
                if matches!(verdict, Verdict::Fragment { .. }) {
                    self.send_fragments(ls, m, target, ip_len);
                    return;
                }
                st.io.forwarded += 1;
                ls.traffic.forwarded(target.rs, ip_len);
                count_flush(st, ls.lanes.dr.push(m));
            }
            Verdict::Reply { len } | Verdict::TooBig { len } => {
                let Some(mut m) = ls.rx.take(i) else { return };
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
                count_flush(st, ls.lanes.push_reply(m));
            }
            Verdict::Neighbour => {
                let Some(m) = ls.rx.take(i) else { return };
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

    /// The VLAN action and, for a tunnel server, the encapsulation. `None`
    /// when the frame was freed (counted).
    #[inline(always)]
    fn rewrite(
        &self,
        m: Mbuf,
        target: crate::lb::flow::Target,
        vlan: VlanAction,
        ip_len: u32,
        st: &mut WorkerStats,
        ids: &mut OuterIds,
    ) -> Option<Mbuf> {
        let Some(m) = apply_vlan(m, vlan) else {
            st.io.vlan_no_headroom += 1;
            return None;
        };
        match target.forward {
            Forwarding::Dr => Some(m),
            Forwarding::Tunnel(t) => {
                let dst = self.state.snapshot().server(target.rs).map(|s| s.addr);
                let out = encap(m, t, dst, self.tunnel_src, ip_len, ids);
                if out.is_none() {
                    st.io.tunnel_failed += 1;
                }
                out
            }
        }
    }

    /// Sends an encapsulated frame too big for the TX MTU as outer IPv4
    /// fragments: the others first written into fresh mbufs from the
    /// frame's pool (all or none), then the frame itself cut down to the
    /// first; all in order to the TX buffer. On any failure every mbuf is
    /// freed and the packet counted as `tunnel_fragment_failed`.
    #[cold]
    #[inline(never)]
    fn send_fragments(
        &self,
        ls: &mut LoopState,
        mut m: Mbuf,
        target: crate::lb::flow::Target,
        ip_len: u32,
    ) {
        let st = &mut ls.st;
        let mut rest: [Option<Mbuf>; MAX_FRAGMENTS - 1] = std::array::from_fn(|_| None);
        let planned = Split::plan(m.data(), self.ctx.tunnel_mtu).ok();
        let Some(split) = planned.filter(|s| fill_fragments(&m, s, &mut rest)) else {
            st.drops.inc(DropReason::TunnelFragmentFailed);
            return;
        };
        let len = split.first(m.data_mut());
        let extra = m.len().saturating_sub(len);
        if extra > 0 && !m.trim(extra as u16) {
            st.drops.inc(DropReason::TunnelFragmentFailed);
            return;
        }
        st.io.forwarded += 1;
        st.io.tunnel_fragmented += 1;
        ls.traffic.forwarded(target.rs, ip_len);
        count_flush(st, ls.lanes.dr.push(m));
        for f in rest.iter_mut().filter_map(Option::take) {
            count_flush(st, ls.lanes.dr.push(f));
        }
    }

    /// Every `SLOW_EVERY` loops: expiry, connections from peers, counters,
    /// a step of a dump.
    #[cold]
    fn slow_job(&mut self, ls: &mut LoopState) {
        self.state.sweep(self.sweep_buckets);
        if let Some(sync_in) = &mut self.sync_in {
            let state = &mut self.state;
            sync_in.drain(SYNC_INSTALLS_PER_JOB, |c| {
                state.install(&c);
            });
        }
        fill_state_stats(&self.state, &mut ls.st);
        self.published.publish(&ls.st);
        self.publish_traffic(&ls.traffic);
        self.dump.step(&self.state);
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

/// Writes fragments `1..` of the encapsulated frame `m`, as `split` plans
/// them, into fresh mbufs from its pool, in `rest[0..]` (the first is
/// still to be made of `m`). `false` — whatever was taken is freed with
/// `rest` — when the pool is short or a fragment does not fit an mbuf.
fn fill_fragments(m: &Mbuf, split: &Split, rest: &mut [Option<Mbuf>]) -> bool {
    let Some(rest) = rest.get_mut(..split.count() - 1) else {
        return false;
    };
    if !m.alloc_bulk_like(rest) {
        return false;
    }
    rest.iter_mut().enumerate().all(|(k, slot)| {
        slot.as_mut().is_some_and(|f| {
            f.append(split.frame_len(k + 1) as u16) && split.write(m.data(), k + 1, f.data_mut())
        })
    })
}

/// Encapsulates a forwarded frame for tunnel `t` to `dst` (see
/// [`crate::dataplane::tunnel`]); `None` (frame freed) without headroom,
/// without a source address of the server's family, or for a frame that
/// does not hold its IP packet.
#[inline]
fn encap(
    mut m: Mbuf,
    t: Tunnel,
    dst: Option<IpAddr>,
    src: TunnelSrc,
    ip_len: u32,
    ids: &mut OuterIds,
) -> Option<Mbuf> {
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
    let len = tunnel::encapsulate(m.data_mut(), &outer, t, ip_len as usize, ids).ok()?;
    let extra = m.len().saturating_sub(len);
    if extra > 0 && !m.trim(extra as u16) {
        return None;
    }
    Some(m)
}
