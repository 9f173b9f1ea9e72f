//! Ethernet ports: lookup by name, configuration (queues, descriptors, RSS,
//! promiscuous mode, MTU), start/stop, MAC address, link status and
//! statistics. A [`Port`] stops and closes its device when dropped.

use std::ffi::{c_char, CStr, CString};

use super::error::{strerror, DpdkError, Result};
use super::mempool::Mempool;
use super::PortId;
use crate::ffi;
use crate::wire::ethernet::MacAddr;

/// RSS over IPv4/IPv6 addresses and TCP/UDP/SCTP ports (the `RTE_ETH_RSS_*`
/// bits, which bindgen cannot evaluate).
pub const RSS_IP_L4: u64 = (1 << 2)  // IPV4
    | (1 << 3)  // FRAG_IPV4
    | (1 << 4)  // NONFRAG_IPV4_TCP
    | (1 << 5)  // NONFRAG_IPV4_UDP
    | (1 << 6)  // NONFRAG_IPV4_SCTP
    | (1 << 7)  // NONFRAG_IPV4_OTHER
    | (1 << 8)  // IPV6
    | (1 << 9)  // FRAG_IPV6
    | (1 << 10) // NONFRAG_IPV6_TCP
    | (1 << 11) // NONFRAG_IPV6_UDP
    | (1 << 12) // NONFRAG_IPV6_SCTP
    | (1 << 13) // NONFRAG_IPV6_OTHER
    | (1 << 15) // IPV6_EX
    | (1 << 16) // IPV6_TCP_EX
    | (1 << 17); // IPV6_UDP_EX

/// How to set up a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// RX queues (one per worker that receives on this port).
    pub rx_queues: u16,
    /// TX queues (one per worker that transmits on this port).
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread flows over RX queues by RSS (IP addresses and L4 ports).
    pub rss: bool,
    /// Receive every frame, whatever its destination MAC.
    pub promiscuous: bool,
    /// MTU to set, if any.
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: true,
            promiscuous: true,
            mtu: None,
        }
    }
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets transmitted.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes transmitted.
    pub obytes: u64,
    /// Packets the NIC dropped for lack of RX descriptors.
    pub imissed: u64,
    /// Erroneous packets received.
    pub ierrors: u64,
    /// Failed transmissions.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Device facts reported by the driver.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name.
    pub driver: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// RSS hash functions the device supports.
    pub rss_offloads: u64,
    /// Receive offloads the device supports (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offloads: u64,
}

/// `RTE_ETH_RX_OFFLOAD_IPV4_CKSUM` (a function-like macro bindgen cannot
/// read; `src/ffi/shim.c` checks the value at build time).
pub const RX_OFFLOAD_IPV4_CKSUM: u64 = 1 << 1;

impl PortInfo {
    /// Receive queues that get frames whether or not they are configured,
    /// for drivers whose queues exist from the device's creation:
    /// `net_af_packet` opens its `qpairs` sockets in one kernel fan-out
    /// group at probe, and the kernel hashes every frame to one of them;
    /// `net_pcap` reads one file or interface per `rx_pcap`/`rx_iface`.
    /// Every such queue must be configured and read, or what lands on it is
    /// lost. `None` for devices that deliver only to the queues they were
    /// configured with (real NICs, `net_null`, `net_memif`, `net_ring`).
    pub fn fixed_rx_queues(&self) -> Option<u16> {
        matches!(self.driver.as_str(), "net_af_packet" | "net_pcap").then_some(self.max_rx_queues)
    }
}

/// A configured port. Stopped and closed on drop.
#[derive(Debug)]
pub struct Port {
    id: PortId,
    name: String,
    info: PortInfo,
    rx_queues: u16,
    rss_active: bool,
    ip_cksum: bool,
    mtu_unsettable: bool,
    started: bool,
}

fn port_name(id: PortId) -> String {
    let mut buf = [0 as c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes as the API requires.
    let rc = unsafe { ffi::rte_eth_dev_get_name_by_port(id.0, buf.as_mut_ptr()) };
    if rc != 0 {
        return format!("{id:?}");
    }
    // SAFETY: DPDK wrote a NUL-terminated name into buf.
    unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// Names of every port EAL probed.
pub fn port_names() -> Vec<(PortId, String)> {
    let mut out = Vec::new();
    for id in 0..ffi::RTE_MAX_ETHPORTS as u16 {
        // SAFETY: any id may be asked about.
        if unsafe { ffi::rte_eth_dev_is_valid_port(id) } == 1 {
            out.push((PortId(id), port_name(PortId(id))));
        }
    }
    out
}

/// A probed port that is not configured yet: what the driver reports, and
/// nothing to undo. [`PortBuilder::configure`] turns it into a [`Port`],
/// which alone owns the device from then on (so no error path ever closes a
/// device it did not configure).
#[derive(Debug)]
pub struct PortBuilder {
    id: PortId,
    name: String,
    info: PortInfo,
}

impl PortBuilder {
    /// Asks the driver of `id` what it can do.
    pub fn new(id: PortId) -> Result<PortBuilder> {
        let name = port_name(id);
        let mut dev_info = ffi::rte_eth_dev_info::default();
        // SAFETY: dev_info is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_info_get(id.0, &mut dev_info) };
        if rc != 0 {
            return Err(DpdkError::Port {
                port: id,
                name,
                op: "rte_eth_dev_info_get",
                text: strerror(rc),
            });
        }
        let driver = if dev_info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string.
            unsafe { CStr::from_ptr(dev_info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortBuilder {
            id,
            name,
            info: PortInfo {
                driver,
                max_rx_queues: dev_info.max_rx_queues,
                max_tx_queues: dev_info.max_tx_queues,
                rss_offloads: dev_info.flow_type_rss_offloads,
                rx_offloads: dev_info.rx_offload_capa,
            },
        })
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Driver facts.
    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    fn limit(&self, what: String) -> DpdkError {
        DpdkError::PortLimit {
            port: self.id,
            name: self.name.clone(),
            what,
        }
    }

    /// Configures the port with `cfg`, RX queues drawing from `pool`. The
    /// port is left stopped; call [`Port::start`]. Once the device is
    /// configured, the returned (or, on a later error, dropped) [`Port`]
    /// closes it.
    pub fn configure(self, cfg: &PortConfig, pool: &Mempool) -> Result<Port> {
        let info = &self.info;
        if cfg.rx_queues == 0 || cfg.rx_queues > info.max_rx_queues {
            return Err(self.limit(format!(
                "{} RX queues asked, device supports 1..={}",
                cfg.rx_queues, info.max_rx_queues
            )));
        }
        if cfg.tx_queues == 0 || cfg.tx_queues > info.max_tx_queues {
            return Err(self.limit(format!(
                "{} TX queues asked, device supports 1..={}",
                cfg.tx_queues, info.max_tx_queues
            )));
        }
        let mut conf = ffi::rte_eth_conf::default();
        let rss_hf = RSS_IP_L4 & info.rss_offloads;
        let rss_active = cfg.rss && cfg.rx_queues > 1 && rss_hf != 0;
        if rss_active {
            conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // The IPv4 header checksum checked by the NIC where it can: the
        // worker then trusts RTE_MBUF_F_RX_IP_CKSUM_GOOD and verifies the
        // rest in software (net_pcap, net_null, … cannot).
        let ip_cksum = info.rx_offloads & RX_OFFLOAD_IPV4_CKSUM != 0;
        if ip_cksum {
            conf.rxmode.offloads |= RX_OFFLOAD_IPV4_CKSUM;
        }
        let id = self.id;
        // SAFETY: conf is a valid, fully initialised configuration.
        let rc = unsafe { ffi::rte_eth_dev_configure(id.0, cfg.rx_queues, cfg.tx_queues, &conf) };
        if rc != 0 {
            return Err(DpdkError::Port {
                port: id,
                name: self.name,
                op: "rte_eth_dev_configure",
                text: strerror(rc),
            });
        }
        // From here on the device is configured: the Port owns it.
        let mut port = Port {
            id,
            name: self.name,
            info: self.info,
            rx_queues: cfg.rx_queues,
            rss_active,
            ip_cksum,
            mtu_unsettable: false,
            started: false,
        };
        port.setup_queues(cfg, pool)?;
        Ok(port)
    }
}

impl Port {
    /// Finds a port by device name: a vdev name such as `net_pcap0` or a
    /// PCI address such as `0000:01:00.0`.
    pub fn find(name: &str) -> Result<PortId> {
        let cname = CString::new(name).map_err(|_| DpdkError::BadArgument(name.to_owned()))?;
        let mut id = 0u16;
        // SAFETY: cname is a valid C string and id a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        if rc != 0 {
            let known = port_names().into_iter().map(|(_, n)| n).collect::<Vec<_>>();
            let known = if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            };
            return Err(DpdkError::NoSuchPort {
                name: name.to_owned(),
                known,
            });
        }
        Ok(PortId(id))
    }

    fn err(&self, op: &'static str, rc: i32) -> DpdkError {
        DpdkError::Port {
            port: self.id,
            name: self.name.clone(),
            op,
            text: strerror(rc),
        }
    }

    /// Sets up the queues, MTU and promiscuous mode of a configured port.
    fn setup_queues(&mut self, cfg: &PortConfig, pool: &Mempool) -> Result<()> {
        let id = self.id;
        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: both are valid in/out pointers.
        let rc = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut nb_rx, &mut nb_tx) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_adjust_nb_rx_tx_desc", rc));
        }
        // SAFETY: plain query.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(id.0) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..cfg.rx_queues {
            // SAFETY: pool is a live mbuf pool; NULL rx_conf means driver defaults.
            let rc = unsafe {
                ffi::rte_eth_rx_queue_setup(id.0, q, nb_rx, socket, std::ptr::null(), pool.as_ptr())
            };
            if rc != 0 {
                return Err(self.err("rte_eth_rx_queue_setup", rc));
            }
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: NULL tx_conf means driver defaults.
            let rc =
                unsafe { ffi::rte_eth_tx_queue_setup(id.0, q, nb_tx, socket, std::ptr::null()) };
            if rc != 0 {
                return Err(self.err("rte_eth_tx_queue_setup", rc));
            }
        }
        if let Some(mtu) = cfg.mtu {
            // SAFETY: plain setter.
            let rc = unsafe { ffi::rte_eth_dev_set_mtu(id.0, mtu) };
            // A device without an MTU setter (net_pcap, net_null) takes
            // frames of whatever length it is given: not an error, but the
            // caller is told (mtu_unsettable).
            if rc == -libc::ENOTSUP {
                self.mtu_unsettable = true;
            } else if rc != 0 {
                return Err(self.err("rte_eth_dev_set_mtu", rc));
            }
        }
        if cfg.promiscuous {
            // SAFETY: plain setter. Some virtual devices do not support it;
            // that is not an error for pmdlb (they pass every frame anyway).
            let _ = unsafe { ffi::rte_eth_promiscuous_enable(id.0) };
        }
        Ok(())
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: the port was configured with queues.
        let rc = unsafe { ffi::rte_eth_dev_start(self.id.0) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_start", rc));
        }
        self.started = true;
        Ok(())
    }

    /// Stops the port (idempotent).
    pub fn stop(&mut self) -> Result<()> {
        if !self.started {
            return Ok(());
        }
        self.started = false;
        // SAFETY: the port is started; workers no longer poll it.
        let rc = unsafe { ffi::rte_eth_dev_stop(self.id.0) };
        if rc != 0 {
            return Err(self.err("rte_eth_dev_stop", rc));
        }
        Ok(())
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// The NUMA node the device is attached to (`None` when the device
    /// does not say: virtual devices, or a NUMA-less machine).
    pub fn socket(&self) -> Option<u32> {
        self.id.socket()
    }

    /// The device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Driver facts.
    pub fn info(&self) -> &PortInfo {
        &self.info
    }

    /// RX queues configured.
    pub fn rx_queues(&self) -> u16 {
        self.rx_queues
    }

    /// Whether RSS spreads flows over the RX queues.
    pub fn rss_active(&self) -> bool {
        self.rss_active
    }

    /// Whether the device checks received IPv4 header checksums (the
    /// offload was requested because it offers it).
    pub fn ip_cksum_offload(&self) -> bool {
        self.ip_cksum
    }

    /// Whether the configured MTU could not be set because the device has
    /// no MTU setter (`-ENOTSUP`: net_pcap, net_null).
    pub fn mtu_unsettable(&self) -> bool {
        self.mtu_unsettable
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<MacAddr> {
        let mut a = ffi::rte_ether_addr::default();
        // SAFETY: a is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_macaddr_get(self.id.0, &mut a) };
        if rc != 0 {
            return Err(self.err("rte_eth_macaddr_get", rc));
        }
        Ok(MacAddr(a.addr_bytes))
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut l = ffi::rte_eth_link::default();
        // SAFETY: l is a valid out-pointer.
        let rc = unsafe { ffi::rte_eth_link_get_nowait(self.id.0, &mut l) };
        if rc != 0 {
            return Err(self.err("rte_eth_link_get_nowait", rc));
        }
        Ok(LinkStatus {
            up: l.link_status() == ffi::RTE_ETH_LINK_UP as u16,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() == 1,
        })
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        stats(self.id).map_err(|rc| self.err("rte_eth_stats_get", rc))
    }

    /// Extended statistics as (name, value) pairs.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        // SAFETY: NULL with size 0 asks for the count.
        let n = unsafe { ffi::rte_eth_xstats_get_names(self.id.0, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(self.err("rte_eth_xstats_get_names", n));
        }
        let n = n as usize;
        let mut names = vec![ffi::rte_eth_xstat_name::default(); n];
        let mut vals = vec![ffi::rte_eth_xstat::default(); n];
        // SAFETY: names has room for n entries.
        let got = unsafe { ffi::rte_eth_xstats_get_names(self.id.0, names.as_mut_ptr(), n as u32) };
        if got < 0 {
            return Err(self.err("rte_eth_xstats_get_names", got));
        }
        // SAFETY: vals has room for n entries.
        let got2 = unsafe { ffi::rte_eth_xstats_get(self.id.0, vals.as_mut_ptr(), n as u32) };
        if got2 < 0 {
            return Err(self.err("rte_eth_xstats_get", got2));
        }
        let m = (got as usize).min(got2 as usize).min(n);
        Ok(vals[..m]
            .iter()
            .map(|v| {
                let idx = v.id as usize;
                let name = names.get(idx).map_or_else(String::new, |nm| {
                    // SAFETY: DPDK NUL-terminates every xstat name within its array.
                    unsafe { CStr::from_ptr(nm.name.as_ptr()) }
                        .to_string_lossy()
                        .into_owned()
                });
                (name, v.value)
            })
            .collect())
    }
}

/// Basic counters of any port (also usable where no `Port` handle is held).
pub fn stats(id: PortId) -> std::result::Result<PortStats, i32> {
    let mut s = ffi::rte_eth_stats::default();
    // SAFETY: s is a valid out-pointer.
    let rc = unsafe { ffi::rte_eth_stats_get(id.0, &mut s) };
    if rc != 0 {
        return Err(rc);
    }
    Ok(PortStats {
        ipackets: s.ipackets,
        opackets: s.opackets,
        ibytes: s.ibytes,
        obytes: s.obytes,
        imissed: s.imissed,
        ierrors: s.ierrors,
        oerrors: s.oerrors,
        rx_nombuf: s.rx_nombuf,
    })
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("pmdlb: {e}");
        }
        // SAFETY: the port is stopped; closing releases its queues.
        let _ = unsafe { ffi::rte_eth_dev_close(self.id.0) };
    }
}
