//! A TUN interface that lives exactly as long as the process holding it:
//! not made persistent, so the kernel deletes it — and every route through
//! it — when its file descriptor closes, on a clean exit and on SIGKILL
//! alike. No packet is ever read from it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags at the
/// start of the 24-byte union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _rest: [u8; 22],
}

/// An interface created with TUNSETIFF; dropping it (or the process
/// ending) deletes the interface.
#[derive(Debug)]
pub struct TunDevice {
    /// The open `/dev/net/tun` the interface belongs to.
    _file: File,
    name: String,
}

impl TunDevice {
    /// Creates the TUN interface `name` (1..=15 bytes) in this network
    /// namespace. It starts down; `ip link set NAME up` brings it up.
    /// Fails with `EBUSY` when another process holds an interface of that
    /// name, `EINVAL` when a non-TUN interface has it.
    pub fn create(name: &str) -> io::Result<TunDevice> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?}: an interface name has 1 to 15 bytes"),
            ));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")?;
        let mut req = IfReq {
            name: [0; libc::IFNAMSIZ],
            flags: (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short,
            _rest: [0; 22],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: TUNSETIFF reads and writes one `struct ifreq`; `req` has
        // its size and layout (NUL-terminated name, flags first in the
        // union), lives across the call, and the descriptor is open.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(TunDevice {
            _file: file,
            name: name.to_owned(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_names_are_refused_before_any_syscall() {
        for bad in ["", "sixteen-chars-xx", "a\0b"] {
            let e = TunDevice::create(bad).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
    }

    #[test]
    fn ifreq_is_40_bytes() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
    }
}
