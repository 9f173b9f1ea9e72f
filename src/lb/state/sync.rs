//! The worker's side of connection sync between directors: which packets
//! report their connection to the sync daemon (IPVS's
//! `ip_vs_sync_conn_needed`), and installing the connections peers sent
//! (IPVS's `ip_vs_proc_conn`).
//!
//! # Which packets report (the send rule)
//!
//! With sync enabled ([`WorkerState::enable_sync`]), a packet that found
//! or created an entry pushes that entry (an [`Outgoing`], its `expires`
//! the milliseconds left) onto the worker's ring when:
//!
//! * **TCP**: the entry is, after the packet, in ESTABLISHED, FIN_WAIT,
//!   CLOSE, CLOSE_WAIT or TIME_WAIT (never in SYN_RECV or another state),
//!   and either the packet changed its state (at once), or the entry's
//!   packet count modulo the period equals the threshold;
//! * **every other protocol** (UDP-like flows; pmdlb keeps no SCTP
//!   states): the count modulo the period equals the threshold — the 3rd,
//!   53rd, 103rd … packet with IPVS's 3 and 50.
//!
//! One-packet (`ops`) datagrams have no entry and never report; a SYN
//! that only created a SYN_RECV entry does not either. Installing a
//! received entry reports nothing; its count starts at the threshold (as
//! IPVS sets `in_pkts`), so it reports a period later, once adopted. A
//! full ring is counted (`sync_ring_full`), never waited on; the ring is
//! published once per burst ([`WorkerState::flush_sync`]). An entry with
//! `F_TEMPLATE` is pushed alone: the daemon derives its template's record.
//!
//! Where this differs from the kernel (with `sync_refresh_period` 0,
//! IPVS's default): IPVS does *not* report a change into ESTABLISHED at
//! once — the ACK that completes the handshake waits for the threshold
//! count, normally the next packet. pmdlb reports it at once, so a
//! director lost right after a handshake has told its peers already; the
//! cost is a second record on the 3rd packet of most connections. IPVS's
//! `sync_period` 0 ("report once only") is not offered (a period is at
//! least 1), nor is `sync_persist_mode`; templates are not reported on
//! their own packet counts but with the connections they control, and the
//! rule acts on packets only (IPVS also reports from its timers).
//!
//! # Installing (broadcast and adoption)
//!
//! The control plane cannot know which worker a flow's packets will reach,
//! so every worker gets every record. [`WorkerState::install`]: a live
//! entry with the record's server takes the record's state (fixing the
//! server's counts if the entry is counted) and the later expiry of its
//! own and the record's; one on another server moves to the record's
//! server if the record is active (its old server's counts and template
//! reference released) and is left alone if it is inactive; no entry: a
//! new one, in the flow's window (expired lines reclaimed, live ones
//! never evicted), with `F_SYNCED` and no template reference. An
//! `F_SYNCED` entry is not counted in its server's active/inactive
//! connections: only one worker will ever see its packets. The first
//! packet that reaches it *adopts* it (`existing`): the flag goes, the
//! server counts it with its state then, and from then on it is an
//! ordinary entry that reports by the rule above — so the surviving
//! director announces the flows it took over. Everything that removes an
//! entry goes through `Books::unbind`, which releases counts only of
//! entries that took them (the sweep, lazy expiry, reclaim, eviction,
//! `expire_nodest_conn`, the removed-server drop); a snapshot switch does
//! not touch entries or counts. A moved entry becomes unadopted again, and
//! so does a counted entry (adopted, or created here) that a record for
//! the same server reaches: a peer only reports flows whose packets it
//! sees, so ECMP now sends this one there (a rejoined director took its
//! flows back) and this director's server counts let it go
//! (`sync_released`); its template reference stays until it ends, and a
//! packet here adopts it again.
#![forbid(unsafe_code)]

use super::{Books, StateCounters, WorkerState};
use crate::lb::conn::{ConnEntry, ConnState, ConnTable, F_CONFIRMED, F_SYNCED};
use crate::lb::sync_record::ConnInstall;
use crate::lb::sync_ring::{Outgoing, Producer, SyncRule};
use crate::lb::types::ip_proto;

/// What [`WorkerState::install`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Installed {
    /// A new entry (`F_SYNCED`, counted by its server once adopted).
    Inserted,
    /// The flow's entry, on the record's server, took its state and
    /// expiry.
    Updated,
    /// The flow's entry was on another server and the record is active:
    /// it moved to the record's server.
    Moved,
    /// The flow's entry is on another server and the record is inactive
    /// (the end of a connection already replaced): nothing changed.
    Ignored,
    /// The flow's window of the connection table is full of live entries.
    Full,
    /// The record's service or server is not in the current snapshot.
    Invalid,
}

/// Whether a packet that left its entry in `state`, with packet count
/// `pkts` (modulo the period), reports it; `changed`: the packet changed
/// the entry's TCP state (or created the entry). See the module doc.
#[inline(always)]
pub(super) fn needed(proto: u8, state: ConnState, changed: bool, pkts: u8, rule: SyncRule) -> bool {
    if proto == ip_proto::TCP {
        use ConnState as S;
        let syncs = matches!(
            state,
            S::Established | S::FinWait | S::Close | S::CloseWait | S::TimeWait
        );
        if !syncs {
            return false;
        }
        if changed {
            return true;
        }
    }
    pkts == rule.threshold
}

impl WorkerState {
    /// Start reporting connections to the sync daemon through `out`, by
    /// `rule` ([`SyncRule::sanitized`] first). Until called, nothing is
    /// pushed and nothing else changes.
    pub fn enable_sync(&mut self, out: Producer<Outgoing>, rule: SyncRule) {
        self.sync = Some(out);
        self.sync_rule = rule.sanitized();
    }

    /// Make what this burst pushed visible to the daemon: once per burst
    /// (one release store when something was pushed, none otherwise).
    #[inline]
    pub fn flush_sync(&mut self) {
        if let Some(out) = &mut self.sync {
            out.publish();
        }
    }

    /// Push the entry at `idx`, with the time it has left, or count a full
    /// ring. A function of the fields it uses rather than of the whole
    /// state, so that a caller can keep a borrowed server across it and
    /// build the packet's target after the call (see `existing`).
    #[inline(never)]
    pub(super) fn queue_sync(
        sync: &mut Option<Producer<Outgoing>>,
        conns: &ConnTable,
        counters: &mut StateCounters,
        now: u64,
        idx: usize,
    ) {
        let Some(out) = sync else { return };
        let mut entry = conns.entry(idx);
        entry.expires = entry.expires.saturating_sub(now);
        if out.push(&Outgoing { entry }) {
            counters.sync_queued += 1;
        } else {
            counters.sync_ring_full += 1;
        }
    }

    /// Install a connection a peer sent (a slow job, at a burst boundary):
    /// see the module doc. Counted by outcome (`sync_installed`,
    /// `sync_updated`, `sync_moved`, `sync_ignored`, `sync_install_full`,
    /// `sync_invalid`).
    pub fn install(&mut self, c: &ConnInstall) -> Installed {
        let known = self.snap.service(c.svc).is_some()
            && self.snap.server(c.rs).is_some_and(|s| s.svc == c.svc);
        if !known {
            self.counters.sync_invalid += 1;
            return Installed::Invalid;
        }
        let now = self.clock.now_ms();
        let exp = self.defence.expiry;
        let expires = now.saturating_add(c.timeout_ms);
        let h = self.conns.hash(&c.key);
        if let Some(idx) = self.conns.find(&c.key, h) {
            let e = self.conns.entry(idx);
            if now < exp.deadline(&e) {
                return self.install_over(idx, &e, c, expires);
            }
            self.books().retire(&e, now, exp);
            self.conns.remove(idx);
        }
        let mut books = Books {
            snap: &self.snap,
            persist: &self.persist,
            counters: &mut self.counters,
        };
        let reserved =
            self.conns
                .reserve_with(h, |e| now >= exp.deadline(e), |e| books.retire(e, now, exp));
        let Some(r) = reserved else {
            self.counters.sync_install_full += 1;
            return Installed::Full;
        };
        self.conns
            .insert_counted(r, synced_entry(c, expires), self.sync_rule.threshold);
        self.counters.sync_installed += 1;
        self.update_defence();
        Installed::Inserted
    }

    /// A record for a flow with a live entry `e` at `idx`: see the module doc.
    fn install_over(
        &mut self,
        idx: usize,
        e: &ConnEntry,
        c: &ConnInstall,
        expires: u64,
    ) -> Installed {
        let threshold = self.sync_rule.threshold;
        if e.rs == c.rs {
            if e.flags & F_SYNCED == 0 {
                // A peer saw the flow's packets: ECMP sends them there now
                // (the flow went back to a rejoined director). Stop
                // counting it here; a packet here adopts it again.
                if let Some(s) = self.snap.server(e.rs) {
                    s.conn_released(e.is_active());
                }
                self.counters.sync_released += 1;
            }
            let n = ConnEntry {
                state: c.state,
                expires: e.expires.max(expires),
                flags: e.flags | F_SYNCED,
                ..*e
            };
            self.conns.rewrite(idx, &n, threshold);
            self.counters.sync_updated += 1;
            return Installed::Updated;
        }
        if c.inactive {
            self.counters.sync_ignored += 1;
            return Installed::Ignored;
        }
        let now = self.clock.now_ms();
        self.books().unbind(e, now);
        self.conns
            .rewrite(idx, &synced_entry(c, expires), threshold);
        self.counters.sync_moved += 1;
        Installed::Moved
    }

    fn books(&mut self) -> Books<'_> {
        Books {
            snap: &self.snap,
            persist: &self.persist,
            counters: &mut self.counters,
        }
    }
}

/// The entry a record installs: unadopted, confirmed (a peer saw more
/// than its first packet: never evicted as embryonic unless its TCP state
/// is), no template reference.
fn synced_entry(c: &ConnInstall, expires: u64) -> ConnEntry {
    ConnEntry {
        key: c.key,
        state: c.state,
        flags: F_SYNCED | F_CONFIRMED,
        svc: c.svc,
        rs: c.rs,
        tpl_slot: 0,
        expires,
    }
}
