//! The packet-capture server of DPDK's pdump library: once [`Pdump::init`]
//! has run in the primary process, a secondary such as `dpdk-dumpcap
//! --file-prefix PREFIX -i PORT` can ask it to copy the packets of a port's
//! RX and TX queues into the secondary's ring (RX and TX callbacks DPDK adds
//! on request and removes when the capture stops). While nobody captures,
//! nothing runs per packet.
//!
//! It needs EAL's multi-process channel: with `--in-memory` (or
//! `--no-shconf`) init still succeeds but no secondary can attach.

use std::marker::PhantomData;

use super::eal::Eal;
use super::error::{strerror, DpdkError, Result};
use crate::ffi;

/// pdump serving captures. Dropping it calls `rte_pdump_uninit`; drop it
/// after the ports are stopped (a capture's callbacks use what init
/// reserved) and before EAL.
#[derive(Debug)]
pub struct Pdump<'eal> {
    _eal: PhantomData<&'eal Eal>,
}

impl<'eal> Pdump<'eal> {
    /// Starts serving captures (`rte_pdump_init`, after `rte_eal_init`).
    pub fn init(_eal: &'eal Eal) -> Result<Pdump<'eal>> {
        // SAFETY: EAL is running (we borrow its handle); init reserves a
        // memzone and registers a multi-process action, once per process.
        let rc = unsafe { ffi::rte_pdump_init() };
        if rc < 0 {
            return Err(DpdkError::Pdump {
                text: strerror(crate::dpdk::error::last_errno()),
            });
        }
        Ok(Pdump { _eal: PhantomData })
    }
}

impl Drop for Pdump<'_> {
    fn drop(&mut self) {
        // SAFETY: init succeeded; the owner drops this after the ports and
        // before EAL, so no capture callback runs any more.
        unsafe {
            ffi::rte_pdump_uninit();
        }
    }
}
