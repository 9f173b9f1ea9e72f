//! The atomics the shared persistence table is built on: `std`'s in normal
//! builds, `loom`'s under `--cfg loom` so the concurrent core can be model
//! checked. Nothing else in the crate goes through this shim.
#![forbid(unsafe_code)]

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, Ordering};

/// A spin-wait hint that lets loom schedule another thread.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}
