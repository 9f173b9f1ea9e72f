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
//! * **Workers → control plane.** On a connection's creation and on a
//!   state change, a worker enqueues a small `Copy` item (the entry and its
//!   template, if any) on its own single-producer ring; nothing else per
//!   packet. Which events are sent follows `ip_vs_sync_conn_needed`: TCP
//!   only in ESTABLISHED, FIN_WAIT, CLOSE, CLOSE_WAIT and TIME_WAIT — at
//!   once on a change into one of them but ESTABLISHED, otherwise when the
//!   entry's packet count modulo `sync_period` (50) equals
//!   `sync_threshold` (3); UDP-like flows on that count alone; never
//!   one-packet flows; a template with each connection it controls. The
//!   count needs a byte in `ConnEntry` (its line has 4 bytes of padding
//!   left). A full ring is counted, not waited on.
//! * **Control plane.** Drains the rings, turns items into records with
//!   the current snapshot, packs them with `MessageBuilder` (flushed when
//!   full or at most 2 s after the first record, as `IPVS_SYNC_FLUSH_TIME`)
//!   and sends through the kernel's UDP stack on a management interface:
//!   multicast 224.0.0.81:8848 with TTL 1 as IPVS, or unicast peers.
//!   Receiving checks the sync id (`Message::accepts_syncid`), decodes, maps
//!   each record with `install_of` and counts sent, received, installed and
//!   dropped by reason. Master/backup as IPVS, or both roles at once.
//! * **Installation.** A connection belongs in the table of the worker its
//!   flow's RSS hash reaches, so received connections go to that worker
//!   through a control → worker ring and are inserted at a burst boundary
//!   (moving an entry to another server only for an active record, as
//!   `ip_vs_proc_conn`); templates go into the shared persistence table
//!   directly, with the received timeout and no reference. The snapshot's
//!   service lookup by address is a linear scan today; a receiver at
//!   volume wants an index.

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
