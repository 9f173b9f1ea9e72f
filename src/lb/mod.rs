//! Load-balancing logic: virtual services and mark rules, the per-worker
//! connection table, the shared persistence table and the IPVS schedulers.
//!
//! # Several directors (issue 14)
//!
//! State sync between directors speaks IPVS's sync protocol version 1, so
//! its records mean what IPVS's mean. The parts, bottom up:
//!
//! * [`crate::wire::ipvs_sync`]: the message codec — header, IPv4/IPv6
//!   records, options, the kernel's padding and size rules, every malformed
//!   datagram a typed error, never a panic.
//! * [`sync_record`]: connection entries and persistence templates as
//!   records (templates keyed as `ip_vs_sched_persist` keys them: normal,
//!   port-0 and fwmark services), and a received record as the flow or
//!   template pmdlb installs, or why not.
//! * [`sync_ring`]: the single-producer rings between each worker and the
//!   daemon, both ways.
//! * `state`'s sync module: the send rule (`ip_vs_sync_conn_needed`; a
//!   packet that meets it pushes its entry, published once per burst) and
//!   [`state::WorkerState::install`] (`ip_vs_proc_conn`: update, move,
//!   ignore, insert). Every worker gets every received connection; an
//!   installed entry counts in its server's connections only once a packet
//!   reaches it on that worker (adoption), and stops counting when a
//!   peer's record shows the peer carries the flow again.
//! * `control::sync`: the daemon — the sender and receiver threads on the
//!   control plane, UDP multicast or unicast through the kernel,
//!   templates into the shared [`persist::PersistTable`], counters.
//! * `mh-template` ([`spec::SchedFlags::mh_template`]): templates from
//!   Maglev over the template key, so directors agree before any sync.
//!
//! The snapshot's service lookup by address for received records is a
//! linear scan; a receiver at volume wants an index.

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
