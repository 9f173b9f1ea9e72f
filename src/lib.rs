//! pmdlb: a Layer-4 load balancer with IPVS direct-routing semantics on a DPDK
//! poll-mode data plane.
//!
//! Module map (see `../shared/DESIGN.md` §3):
//! - [`ffi`]: bindgen output over DPDK and the C shim for its static inlines.
//! - [`dpdk`]: safe wrappers (EAL, lcores, mempools, mbufs, ports).
//! - [`wire`]: zero-copy views of the frames pmdlb parses and builds.
//! - [`lb`]: services, mark rules, connections, persistence, schedulers.
//! - [`dataplane`]: the per-packet decision, DR rewrite and the worker loop.
//! - [`control`]: configuration, validation, statistics, runtime commands.
//!
//! - [`sys`]: CPU and memory helpers (prefetch, cycle counter, huge-page hint).
//!
//! Only `ffi`, `dpdk` and `sys` may contain `unsafe`; every other module forbids it.
#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod dpdk;
#[allow(unsafe_code)]
pub mod ffi;
#[allow(unsafe_code)]
pub mod sys;

pub mod control;
pub mod dataplane;
pub mod lb;
pub mod wire;
