//! Launching work on EAL worker lcores. A closure runs pinned on its lcore;
//! a panic inside it is caught and returned to whoever waits for it.

use std::any::Any;
use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::error::{strerror, DpdkError, Result};
use super::LcoreId;
use crate::ffi;

type Job = Box<dyn FnOnce() + Send + 'static>;

struct Slot {
    job: Option<Job>,
    panic: Option<String>,
}

/// A closure running on a worker lcore; [`LcoreJob::wait`] joins it.
#[derive(Debug)]
pub struct LcoreJob {
    lcore: LcoreId,
    slot: *mut Slot,
}

// SAFETY: the slot is only touched by the lcore until rte_eal_wait_lcore
// returns, and by the owner of LcoreJob after that; never concurrently.
unsafe impl Send for LcoreJob {}

fn panic_text(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: arg is the Slot pointer from `launch`, valid until `wait`
    // reclaims it, which happens only after this function returned.
    let slot = unsafe { &mut *(arg as *mut Slot) };
    let Some(job) = slot.job.take() else {
        return -1;
    };
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(()) => 0,
        Err(p) => {
            slot.panic = Some(panic_text(&*p));
            -1
        }
    }
}

/// Runs `f` on worker `lcore`. The lcore must be a worker lcore known to EAL
/// and idle.
pub fn launch<F: FnOnce() + Send + 'static>(lcore: LcoreId, f: F) -> Result<LcoreJob> {
    let slot = Box::into_raw(Box::new(Slot {
        job: Some(Box::new(f)),
        panic: None,
    }));
    // SAFETY: trampoline is a valid extern "C" function; slot stays valid
    // until LcoreJob::wait (or drop) reclaims it after the lcore finished.
    let rc = unsafe { ffi::rte_eal_remote_launch(Some(trampoline), slot as *mut c_void, lcore.0) };
    if rc != 0 {
        // SAFETY: the launch failed, so no lcore holds the pointer.
        drop(unsafe { Box::from_raw(slot) });
        return Err(DpdkError::Launch {
            lcore,
            text: strerror(rc),
        });
    }
    Ok(LcoreJob { lcore, slot })
}

impl LcoreJob {
    /// Blocks until the job has finished; `Err` carries a panic message.
    pub fn wait(mut self) -> std::result::Result<(), String> {
        self.join()
    }

    fn join(&mut self) -> std::result::Result<(), String> {
        if self.slot.is_null() {
            return Ok(());
        }
        // SAFETY: waits for the lcore we launched on; EAL is running.
        unsafe { ffi::rte_eal_wait_lcore(self.lcore.0) };
        // SAFETY: the lcore has finished; we are the only owner of the slot.
        let slot = unsafe { Box::from_raw(self.slot) };
        self.slot = std::ptr::null_mut();
        match slot.panic {
            Some(msg) => Err(format!("{:?} panicked: {msg}", self.lcore)),
            None => Ok(()),
        }
    }
}

impl Drop for LcoreJob {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            eprintln!("pmdlb: {e}");
        }
    }
}

/// Jobs on worker lcores that share one stop flag: the loops they run poll
/// `stop` and return once it is set. Dropping the set — on any path,
/// including an error while launching a later job — sets the flag and waits
/// for every job already launched, so no lcore is left running a loop that
/// nobody will stop (and `rte_eal_cleanup` never races a running worker).
#[derive(Debug)]
pub struct LcoreJobs {
    stop: Arc<AtomicBool>,
    jobs: Vec<LcoreJob>,
}

impl LcoreJobs {
    /// An empty set whose jobs will watch `stop`.
    pub fn new(stop: Arc<AtomicBool>) -> LcoreJobs {
        LcoreJobs {
            stop,
            jobs: Vec::new(),
        }
    }

    /// The flag the jobs watch.
    pub fn stop_flag(&self) -> &Arc<AtomicBool> {
        &self.stop
    }

    /// Launches `f` on `lcore` (see [`launch`]) and keeps it in the set.
    pub fn launch<F: FnOnce() + Send + 'static>(&mut self, lcore: LcoreId, f: F) -> Result<()> {
        self.jobs.push(launch(lcore, f)?);
        Ok(())
    }

    /// Jobs launched.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job was launched.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Sets the stop flag and waits for every job, in launch order; returns
    /// `(index, panic message)` for each job that panicked.
    pub fn stop_and_wait(&mut self) -> Vec<(usize, String)> {
        self.stop.store(true, Ordering::Relaxed);
        let mut failed = Vec::new();
        for (i, j) in self.jobs.drain(..).enumerate() {
            if let Err(e) = j.wait() {
                failed.push((i, e));
            }
        }
        failed
    }
}

impl Drop for LcoreJobs {
    fn drop(&mut self) {
        for (i, e) in self.stop_and_wait() {
            eprintln!("pmdlb: worker {i}: {e}");
        }
    }
}

/// The lcore the calling thread runs on (`LcoreId::ANY` for non-EAL threads).
pub fn current() -> LcoreId {
    // SAFETY: reads a thread-local; no preconditions.
    LcoreId(unsafe { ffi::pmdlb_lcore_id() })
}
