//! The queue layout of DESIGN.md §2, decided from what each driver reports
//! before any device is configured: how many RX and TX queues each NIC
//! gets, and which layouts are refused because frames would be lost.
//!
//! Every worker owns RX queue *i* of the RX NIC and TX queue *i* of both
//! NICs. A separate TX NIC's receive queues carry the real servers'
//! neighbour answers; the control plane reads every one of them. On a real
//! NIC pmdlb gives the TX NIC one RX queue without RSS, so every frame
//! lands on it; on a device whose receive queues exist from its creation
//! (see [`PortInfo::fixed_rx_queues`]) it configures and reads them all. An
//! RX NIC with more such queues than workers cannot work (nobody would read
//! the rest) and is refused.
#![forbid(unsafe_code)]

use crate::dpdk::PortInfo;

/// Which NIC a message is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The NIC clients reach the VIPs on (also the TX NIC when one-armed).
    Rx,
    /// The separate NIC towards the real servers.
    Tx,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Rx => "RX NIC",
            Role::Tx => "TX NIC",
        })
    }
}

/// A layout that cannot work on these devices.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// More fixed receive queues than workers to read them.
    #[error(
        "{role} {name} ({driver}) receives on all of its {queues} receive queues, \
         but {workers} worker(s) read only {workers}: frames on the others would be lost. {fix}"
    )]
    UnreadQueues {
        /// Which NIC.
        role: Role,
        /// Its device name.
        name: String,
        /// Its driver.
        driver: String,
        /// Its fixed receive queues.
        queues: u16,
        /// Workers configured.
        workers: u16,
        /// What to change.
        fix: String,
    },
    /// Fewer receive or transmit queues than workers.
    #[error(
        "{role} {name} ({driver}) has {queues} {dir} queue(s), but each of the {workers} workers \
         needs its own. {fix}"
    )]
    TooFewQueues {
        /// Which NIC.
        role: Role,
        /// Its device name.
        name: String,
        /// Its driver.
        driver: String,
        /// `receive` or `transmit`.
        dir: &'static str,
        /// Queues it has.
        queues: u16,
        /// Workers configured.
        workers: u16,
        /// What to change.
        fix: String,
    },
}

/// The queues pmdlb configures on one NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NicQueues {
    /// Receive queues (each read by a worker or the control plane).
    pub rx: u16,
    /// Transmit queues (one per worker).
    pub tx: u16,
    /// Spread flows over the receive queues by RSS.
    pub rss: bool,
}

/// How to change the device's queue count, in its own vocabulary.
fn queue_fix(info: &PortInfo, want: u16) -> String {
    match info.driver.as_str() {
        "net_af_packet" => {
            format!("Set qpairs={want} in its vdev string, or change workers.count to match.")
        }
        "net_pcap" => format!(
            "Give it {want} rx_pcap/rx_iface (and tx_pcap/tx_iface) queue(s), or change \
             workers.count to match."
        ),
        _ => "Lower workers.count, or use a device with more queues.".into(),
    }
}

fn check_tx(role: Role, name: &str, info: &PortInfo, workers: u16) -> Result<(), LayoutError> {
    if info.max_tx_queues < workers {
        return Err(LayoutError::TooFewQueues {
            role,
            name: name.into(),
            driver: info.driver.clone(),
            dir: "transmit",
            queues: info.max_tx_queues,
            workers,
            fix: queue_fix(info, workers),
        });
    }
    Ok(())
}

/// The RX NIC (also the TX NIC when one-armed): one RX queue per worker,
/// spread by RSS, and one TX queue per worker.
pub fn rx_nic(name: &str, info: &PortInfo, workers: u16) -> Result<NicQueues, LayoutError> {
    let fix = queue_fix(info, workers);
    if let Some(q) = info.fixed_rx_queues() {
        if q > workers {
            return Err(LayoutError::UnreadQueues {
                role: Role::Rx,
                name: name.into(),
                driver: info.driver.clone(),
                queues: q,
                workers,
                fix,
            });
        }
    }
    if info.max_rx_queues < workers {
        return Err(LayoutError::TooFewQueues {
            role: Role::Rx,
            name: name.into(),
            driver: info.driver.clone(),
            dir: "receive",
            queues: info.max_rx_queues,
            workers,
            fix,
        });
    }
    check_tx(Role::Rx, name, info, workers)?;
    Ok(NicQueues {
        rx: workers,
        tx: workers,
        rss: true,
    })
}

/// A separate TX NIC: one TX queue per worker, and as RX queues either all
/// the device's fixed ones or a single one without RSS. The control plane
/// reads every RX queue.
pub fn tx_nic(name: &str, info: &PortInfo, workers: u16) -> Result<NicQueues, LayoutError> {
    check_tx(Role::Tx, name, info, workers)?;
    Ok(NicQueues {
        rx: info.fixed_rx_queues().unwrap_or(1).max(1),
        tx: workers,
        rss: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(driver: &str, rx: u16, tx: u16) -> PortInfo {
        PortInfo {
            driver: driver.into(),
            max_rx_queues: rx,
            max_tx_queues: tx,
            rss_offloads: 0,
            rx_offloads: 0,
        }
    }

    #[test]
    fn real_nic_tx_side_gets_one_rx_queue_without_rss() {
        let q = tx_nic("0000:3b:00.1", &info("net_ice", 256, 256), 4).unwrap();
        assert_eq!(
            q,
            NicQueues {
                rx: 1,
                tx: 4,
                rss: false
            }
        );
        let q = rx_nic("0000:3b:00.0", &info("net_ice", 256, 256), 4).unwrap();
        assert_eq!(
            q,
            NicQueues {
                rx: 4,
                tx: 4,
                rss: true
            }
        );
    }

    #[test]
    fn fixed_queues_on_the_tx_nic_are_all_read() {
        for (driver, n) in [("net_af_packet", 2), ("net_pcap", 3)] {
            let q = tx_nic("dev", &info(driver, n, n), 2).unwrap();
            assert_eq!(q.rx, n, "{driver}");
            assert_eq!(q.tx, 2, "{driver}");
        }
        // Devices that deliver only to configured queues keep one.
        for driver in ["net_null", "net_memif", "net_ring"] {
            assert_eq!(tx_nic("dev", &info(driver, 1024, 1024), 2).unwrap().rx, 1);
        }
    }

    #[test]
    fn unread_fixed_queues_on_the_rx_nic_are_refused() {
        let e = rx_nic("net_af_packet0", &info("net_af_packet", 2, 2), 1).unwrap_err();
        let text = e.to_string();
        assert!(matches!(
            e,
            LayoutError::UnreadQueues {
                queues: 2,
                workers: 1,
                ..
            }
        ));
        assert!(text.contains("qpairs=1"), "{text}");
        assert!(text.contains("RX NIC net_af_packet0"), "{text}");
        assert!(rx_nic("net_af_packet0", &info("net_af_packet", 2, 2), 2).is_ok());
    }

    #[test]
    fn too_few_queues_name_the_fix() {
        let e = rx_nic("p", &info("net_af_packet", 1, 1), 2).unwrap_err();
        assert!(matches!(
            e,
            LayoutError::TooFewQueues {
                dir: "receive",
                queues: 1,
                ..
            }
        ));
        assert!(e.to_string().contains("qpairs=2"), "{e}");
        let e = tx_nic("p", &info("net_pcap", 2, 1), 2).unwrap_err();
        assert!(matches!(
            e,
            LayoutError::TooFewQueues {
                dir: "transmit",
                queues: 1,
                ..
            }
        ));
        assert!(e.to_string().contains("TX NIC p"), "{e}");
    }
}
