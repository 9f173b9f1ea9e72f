//! The IPVS connection-synchronisation protocol, version 1: the UDP payload
//! that `ipvsadm --start-daemon` exchanges between directors (Linux
//! `net/netfilter/ipvs/ip_vs_sync.c`). Bytes only: what a record *means* to
//! pmdlb (services, servers, TCP states) is `lb::sync_record`'s business.
//!
//! A message is an 8-byte header (`struct ip_vs_sync_mesg`) followed by
//! `nr_conns` connection records (`struct ip_vs_sync_v4`, 36 bytes, or
//! `struct ip_vs_sync_v6`, 72 bytes), each optionally followed by
//! type-length-value options, each record after the first starting on a
//! 4-byte boundary. Every multi-byte field is big-endian.
//!
//! Decoding follows the kernel's receiver (`ip_vs_process_message`,
//! `ip_vs_proc_sync_conn`): [`Message::check_len`] applies every check that
//! makes the kernel drop the *whole* datagram, over the whole datagram
//! before any record is used: a malformed message installs nothing (the
//! kernel installs the records before the first bad one, then stops). Two
//! conditions drop only one record, as
//! in the kernel: an unknown option without the "optional" bit
//! ([`SyncError::UnknownMandatoryOption`]) and persistence-engine data
//! without an engine name ([`SyncError::PeDataWithoutName`]); both come
//! from [`Record::to_conn`]. The syncid filter is the caller's:
//! [`Message::accepts_syncid`] states the kernel's rule.
//!
//! Encoding follows the kernel's sender (`ip_vs_sync_conn`,
//! `ip_vs_sync_buff_create`): [`MessageBuilder`] pads before each record
//! that would start off a 4-byte boundary, refuses a record that would take
//! a non-empty message past its size bound, and always takes a record into
//! an empty message (as the kernel sizes its buffer to hold at least one).
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{be16, put16};

/// Byte offsets, from the kernel's struct definitions (all fields packed:
/// every one is naturally aligned, so the C layout has no holes).
mod field {
    use crate::wire::Field;

    // struct ip_vs_sync_mesg (the version-1 message header)
    /// `__u8 reserved`: 0, so a version-0 receiver (whose first byte is
    /// `nr_conns`) sees an empty message and drops it.
    pub const RESERVED: usize = 0;
    /// `__u8 syncid`.
    pub const SYNCID: usize = 1;
    /// `__be16 size`: the whole datagram, header included.
    pub const SIZE: Field = 2..4;
    /// `__u8 nr_conns`.
    pub const NR_CONNS: usize = 4;
    /// `__s8 version`: `SYNC_PROTO_VER` = 1.
    pub const VERSION: usize = 5;
    /// `__u16 spare`: 0.
    pub const SPARE: Field = 6..8;

    // struct ip_vs_sync_v4 / ip_vs_sync_v6, offsets from the record start
    /// `__u8 type`: bit 0 (`STYPE_F_INET6`) = IPv6.
    pub const TYPE: usize = 0;
    /// `__u8 protocol`.
    pub const PROTOCOL: usize = 1;
    /// `__be16 ver_size`: version in the top 4 bits, length in the low 12.
    pub const VER_SIZE: Field = 2..4;
    /// `__be32 flags` (`IP_VS_CONN_F_*`).
    pub const FLAGS: Field = 4..8;
    /// `__be16 state`.
    pub const STATE: Field = 8..10;
    /// `__be16 cport`.
    pub const CPORT: Field = 10..12;
    /// `__be16 vport`.
    pub const VPORT: Field = 12..14;
    /// `__be16 dport`.
    pub const DPORT: Field = 14..16;
    /// `__be32 fwmark`.
    pub const FWMARK: Field = 16..20;
    /// `__be32 timeout`, seconds.
    pub const TIMEOUT: Field = 20..24;
    /// `caddr`, `vaddr`, `daddr`: 3 × 4 bytes (v4) or 3 × 16 bytes (v6).
    pub const ADDRS: usize = 24;
}

/// Length of the message header.
pub const HEADER_LEN: usize = field::SPARE.end;
/// Length of an IPv4 record without options (`sizeof(struct ip_vs_sync_v4)`).
pub const V4_LEN: usize = field::ADDRS + 3 * 4;
/// Length of an IPv6 record without options (`sizeof(struct ip_vs_sync_v6)`).
pub const V6_LEN: usize = field::ADDRS + 3 * 16;
/// The protocol version in the header (`SYNC_PROTO_VER`).
pub const VERSION: u8 = 1;
/// Largest record length `ver_size` can state (`SVER_MASK`).
pub const MAX_RECORD_LEN: usize = 0x0fff;
/// Largest message (the `size` field is 16 bits).
pub const MAX_MESSAGE_LEN: usize = u16::MAX as usize;
/// The multicast group IPVS uses by default (`IP_VS_SYNC_GROUP`).
pub const MCAST_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
/// The UDP port IPVS uses by default (`IP_VS_SYNC_PORT`); sync thread `i`
/// of `sync_ports` uses this + `i`.
pub const MCAST_PORT: u16 = 8848;

const STYPE_F_INET6: u8 = 1;
const SVER_SHIFT: u32 = 12;

/// Option types (`IPVS_OPT_*`) and the "optional" bit.
pub mod opt {
    /// In/out TCP sequence adjustment (NAT only): 24 bytes.
    pub const SEQ_DATA: u8 = 1;
    /// Persistence-engine data (`--pe sip`: the Call-ID), up to 255 bytes.
    pub const PE_DATA: u8 = 2;
    /// Persistence-engine name, up to 16 bytes.
    pub const PE_NAME: u8 = 3;
    /// Set in the type byte: a receiver that does not know the option may
    /// skip it (`IPVS_OPT_F_PARAM`, `1 << (IPVS_OPT_PARAM - 1)`). Without
    /// it an unknown option drops its record.
    pub const F_PARAM: u8 = 1 << (7 - 1);
    /// Data length of `SEQ_DATA` (`sizeof(struct ip_vs_sync_conn_options)`:
    /// two `struct ip_vs_seq` of three `__u32`).
    pub const SEQ_DATA_LEN: usize = 24;
    /// Largest `PE_DATA` (`IP_VS_PEDATA_MAXLEN`).
    pub const PE_DATA_MAXLEN: usize = 255;
    /// Largest `PE_NAME` (`IP_VS_PENAME_MAXLEN`).
    pub const PE_NAME_MAXLEN: usize = 16;
}

/// Connection flags (`IP_VS_CONN_F_*`, `include/uapi/linux/ip_vs.h`). Only
/// bits 0..15 are ever sent.
pub mod flags {
    /// Mask of the forwarding method.
    pub const FWD_MASK: u32 = 0x0007;
    /// Forwarding: masquerading (NAT).
    pub const MASQ: u32 = 0x0000;
    /// Forwarding: the director itself.
    pub const LOCALNODE: u32 = 0x0001;
    /// Forwarding: IP tunnel.
    pub const TUNNEL: u32 = 0x0002;
    /// Forwarding: direct routing.
    pub const DROUTE: u32 = 0x0003;
    /// Forwarding: cache bypass.
    pub const BYPASS: u32 = 0x0004;
    /// The entry was created by sync (set by the receiver).
    pub const SYNC: u32 = 0x0020;
    /// Hashed entry (never sent).
    pub const HASHED: u32 = 0x0040;
    /// No output packets (every method but NAT).
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established: counts as an inactive connection.
    pub const INACTIVE: u32 = 0x0100;
    /// Output sequence adjustment.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Input sequence adjustment.
    pub const IN_SEQ: u32 = 0x0400;
    /// Both sequence-adjustment bits.
    pub const SEQ_MASK: u32 = 0x0600;
    /// No client port set yet.
    pub const NO_CPORT: u32 = 0x0800;
    /// A persistence template, not a connection.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling.
    pub const ONE_PACKET: u32 = 0x2000;
    /// The bits a receiver keeps from a record (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
    /// The bits a record may change in an existing entry
    /// (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
    pub const BACKUP_UPD_MASK: u32 = INACTIVE | SEQ_MASK;

    /// The flags a receiver works with: the record's, masked with
    /// [`BACKUP_MASK`], plus [`SYNC`] (`ip_vs_proc_sync_conn`).
    pub const fn received(raw: u32) -> u32 {
        (raw & BACKUP_MASK) | SYNC
    }
}

/// Values of the `state` field (`include/net/ip_vs.h`). Its meaning depends
/// on the record's protocol; a template's state is one of the `CTPL_*`.
pub mod state {
    /// TCP: no state (`IP_VS_TCP_S_NONE`).
    pub const TCP_NONE: u16 = 0;
    /// TCP: ESTABLISHED.
    pub const TCP_ESTABLISHED: u16 = 1;
    /// TCP: SYN_SENT.
    pub const TCP_SYN_SENT: u16 = 2;
    /// TCP: SYN_RECV.
    pub const TCP_SYN_RECV: u16 = 3;
    /// TCP: FIN_WAIT.
    pub const TCP_FIN_WAIT: u16 = 4;
    /// TCP: TIME_WAIT.
    pub const TCP_TIME_WAIT: u16 = 5;
    /// TCP: CLOSE.
    pub const TCP_CLOSE: u16 = 6;
    /// TCP: CLOSE_WAIT.
    pub const TCP_CLOSE_WAIT: u16 = 7;
    /// TCP: LAST_ACK.
    pub const TCP_LAST_ACK: u16 = 8;
    /// TCP: LISTEN.
    pub const TCP_LISTEN: u16 = 9;
    /// TCP: SYNACK.
    pub const TCP_SYNACK: u16 = 10;
    /// TCP: number of states (`IP_VS_TCP_S_LAST`); a receiver drops a TCP
    /// record with a state at or above it.
    pub const TCP_LAST: u16 = 11;
    /// UDP: the only state (`IP_VS_UDP_S_NORMAL`).
    pub const UDP_NORMAL: u16 = 0;
    /// UDP: number of states.
    pub const UDP_LAST: u16 = 1;
    /// SCTP: ESTABLISHED (`enum ip_vs_sctp_states` as renumbered in Linux
    /// 3.x: NONE, INIT1, INIT, COOKIE_SENT, COOKIE_REPLIED, COOKIE_WAIT,
    /// COOKIE, COOKIE_ECHOED, ESTABLISHED, …).
    pub const SCTP_ESTABLISHED: u16 = 8;
    /// SCTP: number of states (`IP_VS_SCTP_S_LAST`).
    pub const SCTP_LAST: u16 = 14;
    /// Template: not assured (`IP_VS_CTPL_S_NONE`).
    pub const CTPL_NONE: u16 = 0;
    /// Template: assured (`IP_VS_CTPL_S_ASSURED`).
    pub const CTPL_ASSURED: u16 = 1;
}

/// Why a sync datagram, or one record of it, is not accepted. The
/// message-level kinds (all but the last two) drop the whole datagram, as
/// the kernel does; `index` is the record's position in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// Shorter than the 8-byte header.
    #[error("sync message of {len} bytes is shorter than the 8-byte header")]
    HeaderTruncated {
        /// Datagram length.
        len: usize,
    },
    /// The header's `size` is not the datagram's length.
    #[error("sync message header says {size} bytes, datagram has {len}")]
    SizeMismatch {
        /// The `size` field.
        size: u16,
        /// Datagram length.
        len: usize,
    },
    /// Not a version-1 message: a version-0 message (its first byte is a
    /// connection count) or garbage.
    #[error("not an IPVS sync v1 message (reserved {reserved}, version {version}, spare {spare})")]
    NotVersion1 {
        /// First byte (0 in version 1).
        reserved: u8,
        /// Version byte.
        version: u8,
        /// Spare field (0 in version 1).
        spare: u16,
    },
    /// More records announced than the datagram could hold at 36 bytes each.
    #[error("sync message announces {count} records but has room for {room}")]
    TooManyRecords {
        /// `nr_conns`.
        count: u8,
        /// Records of the smallest size the datagram could hold.
        room: usize,
    },
    /// Fewer than 36 bytes left where a record should start.
    #[error("sync record {index} is truncated")]
    RecordTruncated {
        /// Record position.
        index: u8,
    },
    /// The record's length runs past the end of the datagram.
    #[error("sync record {index} says {size} bytes, past the end of the message")]
    RecordOverrun {
        /// Record position.
        index: u8,
        /// Its length field.
        size: u16,
    },
    /// The record's version nibble is not 0.
    #[error("sync record {index} has version {version}, not 0")]
    RecordVersion {
        /// Record position.
        index: u8,
        /// The top 4 bits of `ver_size`.
        version: u8,
    },
    /// The record's type is neither 0 (IPv4) nor has the IPv6 bit.
    #[error("sync record {index} has unknown type {kind}")]
    RecordType {
        /// Record position.
        index: u8,
        /// The type byte.
        kind: u8,
    },
    /// The record's length is smaller than its fixed part (36 or 72 bytes).
    #[error("sync record {index} says {size} bytes, less than its fixed part")]
    RecordTooShort {
        /// Record position.
        index: u8,
        /// Its length field.
        size: u16,
    },
    /// An option's header or data runs past the record, or its length is 0.
    #[error("sync record {index}: option truncated or of length 0")]
    OptionTruncated {
        /// Record position.
        index: u8,
    },
    /// A known option of the wrong length, or given twice.
    #[error("sync record {index}: option {kind} has a bad length or appears twice")]
    BadOption {
        /// Record position.
        index: u8,
        /// The option type byte.
        kind: u8,
    },
    /// Record-level: an option type this receiver does not know, without
    /// [`opt::F_PARAM`]. The kernel drops this record and goes on.
    #[error("sync record {index}: unknown mandatory option {kind}")]
    UnknownMandatoryOption {
        /// Record position.
        index: u8,
        /// The option type byte.
        kind: u8,
    },
    /// Record-level: persistence-engine data without the engine's name.
    /// The kernel drops this record and goes on.
    #[error("sync record {index}: persistence-engine data without a name")]
    PeDataWithoutName {
        /// Record position.
        index: u8,
    },
}

/// A result of parsing.
pub type Result<T> = core::result::Result<T, SyncError>;

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// `n` rounded up to a multiple of 4 (the record alignment).
#[inline]
const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The size bound of a sync message the kernel derives in
/// `start_sync_thread` (`sync_maxlen`): the UDP payload that fits the
/// interface MTU (a master assumes 1500, a backup uses the device's, at
/// least 1500), or the configured `--sync-maxlen` clamped to
/// `[1 (master) or 1024 (backup), 65535 - headers]`.
pub fn max_message_len(role: Role, dev_mtu: u32, ipv6: bool, configured: u32) -> usize {
    let headers: u32 = if ipv6 { 40 + 8 } else { 20 + 8 };
    let (mtu, min) = match role {
        Role::Master => (1500, 1),
        Role::Backup => (dev_mtu.clamp(1500, 65535), 1024),
    };
    let len = if configured == 0 {
        mtu - headers
    } else {
        configured.clamp(min, 65535 - headers)
    };
    len as usize
}

/// The sync daemon's role, for [`max_message_len`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends.
    Master,
    /// Receives.
    Backup,
}

/// A view of one sync message.
#[derive(Debug, Clone)]
pub struct Message<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Message<T> {
    /// A view without checking anything.
    pub const fn new_unchecked(buffer: T) -> Self {
        Message { buffer }
    }

    /// A view of a datagram that passed [`Message::check_len`].
    pub fn new_checked(buffer: T) -> Result<Self> {
        let m = Self::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    /// `Ok` when the datagram is a well-formed version-1 message: the
    /// kernel's header checks (length ≥ header, `size` = datagram length,
    /// reserved 0, version 1, spare 0), then every record's checks in
    /// order (36 bytes present, length within the datagram, version 0,
    /// known type, length ≥ its fixed part, options well formed). Bytes
    /// after the last record are ignored, as by the kernel. Once this is
    /// `Ok`, no accessor of the message, its records or their options
    /// panics.
    pub fn check_len(&self) -> Result<()> {
        self.check_header()?;
        let b = self.buffer.as_ref();
        let mut at = HEADER_LEN;
        for index in 0..self.nr_conns() {
            let rest = b.get(at..).unwrap_or(&[]);
            at += align4(check_record(rest, index)?);
        }
        Ok(())
    }

    /// The header checks of [`Message::check_len`], and a record count
    /// the datagram can hold at 36 bytes a record.
    fn check_header(&self) -> Result<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(SyncError::HeaderTruncated { len: b.len() });
        }
        if self.size() as usize != b.len() {
            return Err(SyncError::SizeMismatch {
                size: self.size(),
                len: b.len(),
            });
        }
        let (reserved, version, spare) = (b[field::RESERVED], self.version(), self.spare());
        if reserved != 0 || version != VERSION || spare != 0 {
            return Err(SyncError::NotVersion1 {
                reserved,
                version,
                spare,
            });
        }
        let room = (b.len() - HEADER_LEN) / V4_LEN;
        let count = self.nr_conns();
        if count as usize > room {
            return Err(SyncError::TooManyRecords { count, room });
        }
        Ok(())
    }

    /// The sender's sync id (cluster id).
    pub fn syncid(&self) -> u8 {
        self.buffer.as_ref()[field::SYNCID]
    }

    /// Whether a receiver configured with `ours` takes this message: the
    /// kernel's rule, a receiver with sync id 0 takes every message.
    pub fn accepts_syncid(&self, ours: u8) -> bool {
        ours == 0 || self.syncid() == ours
    }

    /// The `size` field.
    pub fn size(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SIZE.start)
    }

    /// The number of records.
    pub fn nr_conns(&self) -> u8 {
        self.buffer.as_ref()[field::NR_CONNS]
    }

    /// The version byte.
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION]
    }

    fn spare(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SPARE.start)
    }

    /// The records, in order.
    pub fn records(&self) -> Records<'_> {
        Records {
            rest: self.buffer.as_ref().get(HEADER_LEN..).unwrap_or(&[]),
            left: self.nr_conns(),
            index: 0,
        }
    }
}

/// Checks one record at the start of `rest`; returns its length.
fn check_record(rest: &[u8], index: u8) -> Result<usize> {
    if rest.len() < V4_LEN {
        return Err(SyncError::RecordTruncated { index });
    }
    let ver_size = be16(rest, field::VER_SIZE.start);
    let size = (ver_size as usize) & MAX_RECORD_LEN;
    if size > rest.len() {
        return Err(SyncError::RecordOverrun {
            index,
            size: size as u16,
        });
    }
    if ver_size >> SVER_SHIFT != 0 {
        let version = (ver_size >> SVER_SHIFT) as u8;
        return Err(SyncError::RecordVersion { index, version });
    }
    let base = base_len(rest[field::TYPE]).ok_or(SyncError::RecordType {
        index,
        kind: rest[field::TYPE],
    })?;
    if size < base {
        return Err(SyncError::RecordTooShort {
            index,
            size: size as u16,
        });
    }
    check_options(&rest[base..size], index)?;
    Ok(size)
}

/// The fixed length of a record of this type, `None` for an unknown type.
/// As the kernel, the IPv6 bit wins over any other bit.
fn base_len(kind: u8) -> Option<usize> {
    if kind & STYPE_F_INET6 != 0 {
        Some(V6_LEN)
    } else if kind == 0 {
        Some(V4_LEN)
    } else {
        None
    }
}

/// The kernel's option walk (`ip_vs_proc_sync_conn`): stops at the first
/// unknown mandatory option, which drops the record but not the message.
fn check_options(mut opts: &[u8], index: u8) -> Result<()> {
    let mut seen = 0u8;
    while !opts.is_empty() {
        let (kind, data, rest) = split_option(opts).ok_or(SyncError::OptionTruncated { index })?;
        let bit = match kind & !opt::F_PARAM {
            opt::SEQ_DATA if data.len() == opt::SEQ_DATA_LEN => 1,
            opt::SEQ_DATA => return Err(SyncError::BadOption { index, kind }),
            opt::PE_DATA => 2,
            opt::PE_NAME if data.len() <= opt::PE_NAME_MAXLEN => 4,
            opt::PE_NAME => return Err(SyncError::BadOption { index, kind }),
            _ if kind & opt::F_PARAM == 0 => return Ok(()),
            _ => 0,
        };
        if seen & bit != 0 {
            return Err(SyncError::BadOption { index, kind });
        }
        seen |= bit;
        opts = rest;
    }
    Ok(())
}

/// `(type, data, rest)` of the option at the start of `opts`; `None` when
/// its header or data is cut off or its length is 0.
fn split_option(opts: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&kind, tail) = opts.split_first()?;
    let (&len, tail) = tail.split_first()?;
    if len == 0 || tail.len() < len as usize {
        return None;
    }
    let (data, rest) = tail.split_at(len as usize);
    Some((kind, data, rest))
}

/// The records of a checked message.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: u8,
    index: u8,
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.left == 0 || self.rest.len() < V4_LEN {
            return None;
        }
        // Re-checked so that even a view that skipped `check_len` only
        // yields records holding their fixed part.
        let size = (be16(self.rest, field::VER_SIZE.start) as usize) & MAX_RECORD_LEN;
        if size < base_len(self.rest[field::TYPE])? {
            return None;
        }
        let bytes = self.rest.get(..size)?;
        self.rest = self.rest.get(align4(size)..).unwrap_or(&[]);
        let index = self.index;
        self.left -= 1;
        self.index += 1;
        Some(Record { bytes, index })
    }
}

/// A view of one record of a checked message: exactly its `size` bytes.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    bytes: &'a [u8],
    index: u8,
}

impl<'a> Record<'a> {
    /// Its position in the message.
    pub fn index(&self) -> u8 {
        self.index
    }

    /// Whether it is an IPv6 record.
    pub fn is_ipv6(&self) -> bool {
        self.bytes[field::TYPE] & STYPE_F_INET6 != 0
    }

    /// IP protocol number (0, `IPPROTO_IP`, for a fwmark template).
    pub fn protocol(&self) -> u8 {
        self.bytes[field::PROTOCOL]
    }

    /// The flags as sent (see [`flags::received`]).
    pub fn flags(&self) -> u32 {
        be32(self.bytes, field::FLAGS.start)
    }

    /// Connection or template state ([`state`]).
    pub fn state(&self) -> u16 {
        be16(self.bytes, field::STATE.start)
    }

    /// Client port.
    pub fn cport(&self) -> u16 {
        be16(self.bytes, field::CPORT.start)
    }

    /// Virtual port.
    pub fn vport(&self) -> u16 {
        be16(self.bytes, field::VPORT.start)
    }

    /// Destination (real server) port.
    pub fn dport(&self) -> u16 {
        be16(self.bytes, field::DPORT.start)
    }

    /// Firewall mark.
    pub fn fwmark(&self) -> u32 {
        be32(self.bytes, field::FWMARK.start)
    }

    /// Timeout in seconds (the sender's timeout for the entry's state; 0
    /// means "the receiver's default").
    pub fn timeout(&self) -> u32 {
        be32(self.bytes, field::TIMEOUT.start)
    }

    /// Client, virtual and destination addresses.
    pub fn addrs(&self) -> SyncAddrs {
        let a = &self.bytes[field::ADDRS..];
        if self.is_ipv6() {
            let at = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[i * 16..i * 16 + 16]);
                Ipv6Addr::from(o)
            };
            SyncAddrs::V6 {
                client: at(0),
                virt: at(1),
                dest: at(2),
            }
        } else {
            let at = |i: usize| Ipv4Addr::new(a[i * 4], a[i * 4 + 1], a[i * 4 + 2], a[i * 4 + 3]);
            SyncAddrs::V4 {
                client: at(0),
                virt: at(1),
                dest: at(2),
            }
        }
    }

    /// The options, in order; ends after an unknown mandatory one.
    pub fn options(&self) -> Options<'a> {
        let base = if self.is_ipv6() { V6_LEN } else { V4_LEN };
        Options {
            rest: self.bytes.get(base..).unwrap_or(&[]),
        }
    }

    /// The record as an owned value; options the kernel skips are left
    /// out. Errors are the two record-level kinds of [`SyncError`].
    pub fn to_conn(&self) -> Result<SyncConn> {
        let (seq, pe) = self.known_options()?;
        Ok(SyncConn {
            protocol: self.protocol(),
            flags: self.flags(),
            state: self.state(),
            cport: self.cport(),
            vport: self.vport(),
            dport: self.dport(),
            fwmark: self.fwmark(),
            timeout: self.timeout(),
            addrs: self.addrs(),
            seq,
            pe,
        })
    }

    fn known_options(&self) -> Result<(Option<SeqOption>, Option<PeOption>)> {
        let index = self.index;
        let (mut seq, mut data, mut name) = (None, None, None);
        for o in self.options() {
            match o {
                SyncOption::Seq(s) => seq = Some(s),
                SyncOption::PeData(d) => data = Some(d),
                SyncOption::PeName(n) => name = Some(n),
                SyncOption::Skipped { .. } => {}
                SyncOption::UnknownMandatory(kind) => {
                    return Err(SyncError::UnknownMandatoryOption { index, kind })
                }
            }
        }
        let pe = match (data, name) {
            (Some(_), None) => return Err(SyncError::PeDataWithoutName { index }),
            (Some(d), Some(n)) => Some(PeOption {
                data: d.to_vec(),
                name: n.to_vec(),
            }),
            (None, _) => None,
        };
        Ok((seq, pe))
    }
}

/// The options of a record.
#[derive(Debug, Clone)]
pub struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = SyncOption<'a>;

    fn next(&mut self) -> Option<SyncOption<'a>> {
        let (kind, data, rest) = split_option(self.rest)?;
        self.rest = rest;
        Some(match kind & !opt::F_PARAM {
            opt::SEQ_DATA if data.len() == opt::SEQ_DATA_LEN => {
                SyncOption::Seq(SeqOption::from_bytes(data))
            }
            opt::PE_DATA => SyncOption::PeData(data),
            opt::PE_NAME => SyncOption::PeName(data),
            _ if kind & opt::F_PARAM == 0 => {
                self.rest = &[];
                SyncOption::UnknownMandatory(kind)
            }
            _ => SyncOption::Skipped { kind, data },
        })
    }
}

/// One option of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncOption<'a> {
    /// `IPVS_OPT_SEQ_DATA`.
    Seq(SeqOption),
    /// `IPVS_OPT_PE_DATA`.
    PeData(&'a [u8]),
    /// `IPVS_OPT_PE_NAME`.
    PeName(&'a [u8]),
    /// An unknown option with [`opt::F_PARAM`]: skipped.
    Skipped {
        /// Its type byte.
        kind: u8,
        /// Its data.
        data: &'a [u8],
    },
    /// An unknown option without [`opt::F_PARAM`] (its type byte): the
    /// record must be dropped; nothing after it is read.
    UnknownMandatory(u8),
}

/// One direction's TCP sequence adjustment (`struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqData {
    /// Add the delta from this sequence number on.
    pub init_seq: u32,
    /// Delta in sequence numbers.
    pub delta: u32,
    /// Delta before the last resized packet.
    pub previous_delta: u32,
}

/// `IPVS_OPT_SEQ_DATA`: the input then the output adjustment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqOption {
    /// Client→server.
    pub in_seq: SeqData,
    /// Server→client.
    pub out_seq: SeqData,
}

impl SeqOption {
    fn from_bytes(d: &[u8]) -> Self {
        let seq = |at: usize| SeqData {
            init_seq: be32(d, at),
            delta: be32(d, at + 4),
            previous_delta: be32(d, at + 8),
        };
        SeqOption {
            in_seq: seq(0),
            out_seq: seq(12),
        }
    }

    fn write(&self, d: &mut [u8]) {
        for (at, s) in [(0, self.in_seq), (12, self.out_seq)] {
            put32(d, at, s.init_seq);
            put32(d, at + 4, s.delta);
            put32(d, at + 8, s.previous_delta);
        }
    }
}

/// `IPVS_OPT_PE_DATA` with its `IPVS_OPT_PE_NAME` (the kernel sends the
/// name only after data, and drops data without a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeOption {
    /// The engine's data, 1 to 255 bytes.
    pub data: Vec<u8>,
    /// The engine's name (`sip`), 1 to 16 bytes.
    pub name: Vec<u8>,
}

/// The three addresses of a record, of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncAddrs {
    /// An IPv4 record.
    V4 {
        /// `caddr`.
        client: Ipv4Addr,
        /// `vaddr`.
        virt: Ipv4Addr,
        /// `daddr`.
        dest: Ipv4Addr,
    },
    /// An IPv6 record.
    V6 {
        /// `caddr`.
        client: Ipv6Addr,
        /// `vaddr`.
        virt: Ipv6Addr,
        /// `daddr`.
        dest: Ipv6Addr,
    },
}

impl SyncAddrs {
    /// The three addresses of one family; `None` if they are mixed.
    pub fn new(client: IpAddr, virt: IpAddr, dest: IpAddr) -> Option<Self> {
        match (client, virt, dest) {
            (IpAddr::V4(client), IpAddr::V4(virt), IpAddr::V4(dest)) => {
                Some(SyncAddrs::V4 { client, virt, dest })
            }
            (IpAddr::V6(client), IpAddr::V6(virt), IpAddr::V6(dest)) => {
                Some(SyncAddrs::V6 { client, virt, dest })
            }
            _ => None,
        }
    }

    /// `(client, virtual, destination)`.
    pub fn get(&self) -> (IpAddr, IpAddr, IpAddr) {
        match *self {
            SyncAddrs::V4 { client, virt, dest } => (client.into(), virt.into(), dest.into()),
            SyncAddrs::V6 { client, virt, dest } => (client.into(), virt.into(), dest.into()),
        }
    }

    /// Whether these are IPv6 addresses.
    pub fn is_ipv6(&self) -> bool {
        matches!(self, SyncAddrs::V6 { .. })
    }

    fn write(&self, a: &mut [u8]) {
        match self {
            SyncAddrs::V4 { client, virt, dest } => {
                for (i, x) in [client, virt, dest].into_iter().enumerate() {
                    a[i * 4..i * 4 + 4].copy_from_slice(&x.octets());
                }
            }
            SyncAddrs::V6 { client, virt, dest } => {
                for (i, x) in [client, virt, dest].into_iter().enumerate() {
                    a[i * 16..i * 16 + 16].copy_from_slice(&x.octets());
                }
            }
        }
    }
}

/// One connection or template record, owned: what the encoder writes and
/// [`Record::to_conn`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConn {
    /// IP protocol (0 for a fwmark template).
    pub protocol: u8,
    /// `IP_VS_CONN_F_*` ([`flags`]); bits 16..31 should be 0.
    pub flags: u32,
    /// Connection or template state ([`state`]).
    pub state: u16,
    /// Client port.
    pub cport: u16,
    /// Virtual port.
    pub vport: u16,
    /// Destination port.
    pub dport: u16,
    /// Firewall mark.
    pub fwmark: u32,
    /// Timeout, seconds.
    pub timeout: u32,
    /// Addresses.
    pub addrs: SyncAddrs,
    /// Sequence adjustment.
    pub seq: Option<SeqOption>,
    /// Persistence-engine data.
    pub pe: Option<PeOption>,
}

/// Why a record could not be added to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message has no room for it (size bound or 255 records): send
    /// the message and start another.
    #[error("sync message full")]
    Full,
    /// Persistence-engine data must be 1 to 255 bytes.
    #[error("persistence-engine data of {0} bytes (1 to 255 allowed)")]
    PeDataLength(usize),
    /// A persistence-engine name must be 1 to 16 bytes.
    #[error("persistence-engine name of {0} bytes (1 to 16 allowed)")]
    PeNameLength(usize),
}

impl SyncConn {
    /// The record's length on the wire, options included, before padding;
    /// or why it cannot be encoded.
    pub fn encoded_len(&self) -> core::result::Result<usize, EncodeError> {
        let mut len = if self.addrs.is_ipv6() { V6_LEN } else { V4_LEN };
        if self.seq.is_some() {
            len += 2 + opt::SEQ_DATA_LEN;
        }
        if let Some(pe) = &self.pe {
            if !(1..=opt::PE_DATA_MAXLEN).contains(&pe.data.len()) {
                return Err(EncodeError::PeDataLength(pe.data.len()));
            }
            if !(1..=opt::PE_NAME_MAXLEN).contains(&pe.name.len()) {
                return Err(EncodeError::PeNameLength(pe.name.len()));
            }
            len += 2 + pe.data.len() + 2 + pe.name.len();
        }
        Ok(len)
    }

    /// Writes the record into `b`, which is exactly
    /// [`SyncConn::encoded_len`] bytes long.
    fn write(&self, b: &mut [u8]) {
        b[field::TYPE] = if self.addrs.is_ipv6() {
            STYPE_F_INET6
        } else {
            0
        };
        b[field::PROTOCOL] = self.protocol;
        put16(
            b,
            field::VER_SIZE.start,
            b.len() as u16 & MAX_RECORD_LEN as u16,
        );
        put32(b, field::FLAGS.start, self.flags);
        put16(b, field::STATE.start, self.state);
        put16(b, field::CPORT.start, self.cport);
        put16(b, field::VPORT.start, self.vport);
        put16(b, field::DPORT.start, self.dport);
        put32(b, field::FWMARK.start, self.fwmark);
        put32(b, field::TIMEOUT.start, self.timeout);
        self.addrs.write(&mut b[field::ADDRS..]);
        let mut at = if self.addrs.is_ipv6() { V6_LEN } else { V4_LEN };
        if let Some(seq) = &self.seq {
            b[at] = opt::SEQ_DATA;
            b[at + 1] = opt::SEQ_DATA_LEN as u8;
            seq.write(&mut b[at + 2..at + 2 + opt::SEQ_DATA_LEN]);
            at += 2 + opt::SEQ_DATA_LEN;
        }
        if let Some(pe) = &self.pe {
            for (kind, data) in [(opt::PE_DATA, &pe.data), (opt::PE_NAME, &pe.name)] {
                b[at] = kind;
                b[at + 1] = data.len() as u8;
                b[at + 2..at + 2 + data.len()].copy_from_slice(data);
                at += 2 + data.len();
            }
        }
    }
}

/// Builds one sync message at a time under a size bound, as the kernel's
/// sender fills its sync buffer.
#[derive(Debug, Clone)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    max_len: usize,
    syncid: u8,
    count: u8,
}

impl MessageBuilder {
    /// An empty message of sync id `syncid` that grows to at most
    /// `max_len` bytes (see [`max_message_len`]; capped at 65535), except
    /// that its first record is always taken.
    pub fn new(syncid: u8, max_len: usize) -> Self {
        let mut b = MessageBuilder {
            buf: Vec::with_capacity(max_len.min(MAX_MESSAGE_LEN)),
            max_len: max_len.min(MAX_MESSAGE_LEN),
            syncid,
            count: 0,
        };
        b.reset();
        b
    }

    fn reset(&mut self) {
        self.buf.clear();
        self.buf.resize(HEADER_LEN, 0);
        self.buf[field::SYNCID] = self.syncid;
        self.buf[field::VERSION] = VERSION;
        self.count = 0;
    }

    /// Records in the message so far.
    pub fn count(&self) -> u8 {
        self.count
    }

    /// Whether the message has no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The message's length so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Appends a record (after the padding that aligns it). `Full` when a
    /// non-empty message would pass its bound, or holds 255 records: take
    /// the message and push the record again.
    pub fn push(&mut self, c: &SyncConn) -> core::result::Result<(), EncodeError> {
        let len = c.encoded_len()?;
        let start = align4(self.buf.len());
        let full = start + len > self.max_len || self.count == u8::MAX;
        if self.count > 0 && full {
            return Err(EncodeError::Full);
        }
        self.buf.resize(start + len, 0);
        c.write(&mut self.buf[start..]);
        self.count += 1;
        let size = self.buf.len() as u16;
        put16(&mut self.buf, field::SIZE.start, size);
        self.buf[field::NR_CONNS] = self.count;
        Ok(())
    }

    /// The message, if it has a record, and an empty one in its place.
    pub fn take(&mut self) -> Option<Vec<u8>> {
        if self.is_empty() {
            return None;
        }
        let out = self.buf.clone();
        self.reset();
        Some(out)
    }
}

#[cfg(test)]
mod tests;
