//! Memory hints for the big per-worker tables: ask the kernel to back them
//! with transparent huge pages, so random probes of a 100 MB table do not
//! pay a page walk each (the 2 MB pages fit in the TLB).

/// Size of an x86-64 (and arm64 4K-granule) transparent huge page.
pub const HUGE_PAGE: usize = 2 << 20;

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
