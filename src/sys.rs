//! CPU and memory helpers that the data path, the tables and the DPDK
//! wrappers all use, with no DPDK in them: a cache-line prefetch, the cycle
//! counter, and the transparent-huge-page hint for the big tables. One of
//! the three modules allowed `unsafe`; each block says why it is sound.
//! [`mem`]: the big tables' memory, from the heap or a backing such as
//! DPDK's hugepage heap. [`tun`]: the process-lived interface the VIP
//! announcement routes use.

pub mod mem;
pub mod tun;

/// Size of an x86-64 (and arm64 4K-granule) transparent huge page.
pub const HUGE_PAGE: usize = 2 << 20;

/// Issues a prefetch of the cache line at `p` into all cache levels.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Reads the cycle counter: the TSC on x86-64, the virtual counter on
/// arm64 (what DPDK's `rte_rdtsc` reads there by default), so its rate is
/// EAL's `rte_get_tsc_hz()` on both.
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(target_arch = "aarch64")]
    {
        let v: u64;
        // SAFETY: reading CNTVCT_EL0 is allowed at EL0 on Linux and has no
        // side effects.
        unsafe { core::arch::asm!("mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack)) };
        v
    }
}

/// Advises `MADV_HUGEPAGE` for the 2 MB-aligned pages inside
/// `[ptr, ptr + len)`. Call it before the memory is first written (the
/// kernel then faults in huge pages directly). A hint: failures (THP
/// disabled, not Linux) are ignored.
pub fn advise_hugepages(ptr: *const u8, len: usize) {
    let start = (ptr as usize).next_multiple_of(HUGE_PAGE);
    let end = (ptr as usize).saturating_add(len) & !(HUGE_PAGE - 1);
    if end <= start {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: MADV_HUGEPAGE only changes how the kernel backs the pages of
    // the range (which lies inside the caller's allocation, page-aligned by
    // construction); it never changes their contents or validity.
    unsafe {
        libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_counter_moves_forward() {
        let a = rdtsc();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(rdtsc() > a);
    }
}
