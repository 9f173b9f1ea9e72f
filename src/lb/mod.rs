//! Load-balancing logic: virtual services and mark rules, the per-worker
//! connection table, the shared persistence table and the IPVS schedulers.
//!
//! # Several directors (in progress, issue 14)
//!
//! State sync between directors speaks IPVS's sync protocol version 1, so
//! its records mean what IPVS's mean. What exists:
//!
//! * [`crate::wire::ipvs_sync`]: the message codec — header, IPv4/IPv6
//!   records, options, the kernel's padding and size rules, every malformed
//!   datagram a typed error, never a panic.
//! * [`sync_record`]: connection entries and persistence templates as
//!   records (templates keyed as `ip_vs_sched_persist` keys them: normal,
//!   port-0 and fwmark services), and a received record as the flow or
//!   template pmdlb would install, or why not.
//!
//! What the sync daemon needs next:
//!
//! * **Workers → control plane** (built: `state`'s sync module). A
//!   packet that meets the send rule pushes its entry (an
//!   [`sync_ring::Outgoing`], the time left as its expiry) on the worker's
//!   own ring, published once per burst; nothing else per packet but a
//!   byte increment in the entry's line. The rule follows
//!   `ip_vs_sync_conn_needed`: TCP only in ESTABLISHED, FIN_WAIT, CLOSE,
//!   CLOSE_WAIT and TIME_WAIT — at once on a change into one of them
//!   (ESTABLISHED included, unlike IPVS), otherwise when the entry's
//!   packet count modulo the period (50) equals the threshold (3); UDP-like
//!   flows on that count alone; never one-packet flows. An entry holding a
//!   template is pushed alone: the daemon derives the template's record.
//!   A full ring is counted, not waited on.
//! * **Control plane.** Drains the rings, turns items into records with
//!   the current snapshot, packs them with `MessageBuilder` (flushed when
//!   full or at most 2 s after the first record, as `IPVS_SYNC_FLUSH_TIME`)
//!   and sends through the kernel's UDP stack on a management interface:
//!   multicast 224.0.0.81:8848 with TTL 1 as IPVS, or unicast peers.
//!   Receiving checks the sync id (`Message::accepts_syncid`), decodes, maps
//!   each record with `install_of` and counts sent, received, installed and
//!   dropped by reason. Master/backup as IPVS, or both roles at once.
//! * **Installation** (the worker side is built: `WorkerState::install`).
//!   The control plane cannot know which worker's queue a flow reaches, so
//!   every worker gets every connection record through its control →
//!   worker ring and installs it at a slow job (moving an entry to another
//!   server only for an active record, as `ip_vs_proc_conn`); an installed
//!   entry counts in its server's connections only once a packet reaches
//!   it on that worker (adoption). Templates go into the shared persistence
//!   table directly, with the received timeout and no reference. The
//!   snapshot's service lookup by address is a linear scan today; a
//!   receiver at volume wants an index.

pub mod clock;
pub mod conn;
pub mod counters;
pub mod flow;
pub mod hash;
pub mod live;
pub mod persist;
pub mod realserver;
pub mod sched;
pub mod service;
pub mod snapshot;
pub mod spec;
pub mod state;
pub(crate) mod sync;
pub mod sync_record;
pub mod sync_ring;
pub mod types;
