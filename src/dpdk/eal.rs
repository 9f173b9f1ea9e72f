//! The Environment Abstraction Layer: initialisation from an argument list,
//! and cleanup when the [`Eal`] handle is dropped. EAL starts once per process.

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use super::error::{last_errno, strerror, DpdkError, Result};
use super::LcoreId;
use crate::ffi;

static STARTED: AtomicBool = AtomicBool::new(false);

/// A running EAL. Dropping it calls `rte_eal_cleanup` (ports must be
/// stopped and pools freed first, which their own handles do on drop).
pub struct Eal {
    // EAL may keep pointers into argv (e.g. device arguments): keep the
    // strings alive as long as EAL runs.
    _args: Vec<CString>,
    _argv: Vec<*mut c_char>,
}

impl std::fmt::Debug for Eal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Eal").finish_non_exhaustive()
    }
}

impl Eal {
    /// Starts EAL with `args` (the program name first, as in `argv`).
    /// Fails with DPDK's reason on bad arguments, missing hugepages or
    /// devices, and with [`DpdkError::EalAlready`] on a second call.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::EalAlready);
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        for a in args {
            let a = a.as_ref();
            owned.push(CString::new(a).map_err(|_| DpdkError::BadArgument(a.to_owned()))?);
        }
        if owned.is_empty() {
            owned.push(CString::new("pmdlb").expect("literal has no NUL"));
        }
        let mut argv: Vec<*mut c_char> = owned.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        let argc = (argv.len() - 1) as c_int;
        // SAFETY: argv holds argc valid NUL-terminated strings followed by a
        // NULL, all kept alive in `Eal` for as long as EAL runs. EAL may
        // permute the pointer array, which we own.
        let rc = unsafe { ffi::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            let err = last_errno();
            let text = if err == libc::EALREADY {
                return Err(DpdkError::EalAlready);
            } else {
                strerror(err)
            };
            let args = args
                .iter()
                .map(|a| a.as_ref())
                .collect::<Vec<_>>()
                .join(" ");
            return Err(DpdkError::EalInit { args, text });
        }
        Ok(Eal {
            _args: owned,
            _argv: argv,
        })
    }

    /// The main lcore (the control plane runs here).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: EAL is initialised (we hold the handle).
        LcoreId(unsafe { ffi::rte_get_main_lcore() })
    }

    /// The worker lcores, in id order.
    pub fn worker_lcores(&self) -> Vec<LcoreId> {
        let mut out = Vec::new();
        // SAFETY: EAL is initialised; rte_get_next_lcore only reads its config.
        let mut id = unsafe { ffi::rte_get_next_lcore(u32::MAX, 1, 0) };
        while id < ffi::RTE_MAX_LCORE {
            out.push(LcoreId(id));
            // SAFETY: as above.
            id = unsafe { ffi::rte_get_next_lcore(id, 1, 0) };
        }
        out
    }

    /// The DPDK version string.
    pub fn version() -> String {
        // SAFETY: rte_version returns a static NUL-terminated string.
        let p = unsafe { ffi::rte_version() };
        // SAFETY: p is static and NUL-terminated.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: EAL was initialised by this handle and every worker has
        // been waited for by the owner before the handle goes away.
        unsafe {
            ffi::rte_eal_mp_wait_lcore();
            ffi::rte_eal_cleanup();
        }
    }
}
