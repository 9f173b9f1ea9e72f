//! DPDK telemetry commands answered by Rust code: [`register`] a command
//! (`/pmdlb/stats`) with a handler that fills a [`TelemetryDict`]; DPDK's
//! telemetry server (`<runtime dir>/dpdk_telemetry.v2`, read with
//! `dpdk-telemetry.py -f PREFIX`) calls it on one of its own client threads.
//!
//! `rte_telemetry_register_cmd` takes a bare C function without a user
//! pointer, so every command registers the same trampoline, which finds the
//! handler by the command name in a process-wide registry. Handlers run on
//! DPDK's threads, several at once when several clients ask: they must be
//! `Send + Sync` and should only read shared counters. A panic in a handler
//! is caught and answered as an error (`{"/cmd": null}`).
//!
//! DPDK 22.11's JSON output nests one level only: a top-level dict may hold
//! dicts of plain values ([`TelemetryDict::add_dict`] gives a
//! [`TelemetryValues`], which cannot nest further). Limits of the library:
//! 256 entries per dict, keys of `[A-Za-z0-9_/]`, string values under 128
//! bytes, 16 KiB per reply (entries past that are left out by DPDK).

use std::ffi::{c_char, c_int, CStr, CString};
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::sync::RwLock;

use super::error::{strerror, DpdkError, Result};
use crate::ffi;

/// Longest command DPDK accepts, in bytes (it must be shorter than 56).
pub const MAX_CMD_LEN: usize = 55;
/// Longest help text DPDK accepts, in bytes (shorter than 128).
pub const MAX_HELP_LEN: usize = 127;
/// Longest key or string value DPDK keeps, in bytes (shorter than 128).
pub const MAX_STRING_LEN: usize = 127;

/// Why a value could not be added to a telemetry reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// A key that is empty, too long or not `[A-Za-z0-9_/]`.
    #[error("telemetry key is not 1..=127 characters of [A-Za-z0-9_/]")]
    BadKey,
    /// A string value that is too long or holds a quote, backslash or control
    /// character (DPDK 22.11 does not escape them).
    #[error(
        "telemetry string value is over 127 bytes or holds a quote, backslash or control character"
    )]
    BadString,
    /// The dict has its 256 entries.
    #[error("telemetry dict is full")]
    Full,
    /// DPDK could not allocate a nested container.
    #[error("telemetry container allocation failed")]
    NoMemory,
    /// The request's parameters do not name anything the command knows.
    #[error("unknown parameter")]
    BadParams,
}

/// A handler: gets the parameters (the text after the first `,`, if any)
/// and fills the reply.
pub type Handler = Box<
    dyn Fn(Option<&str>, &mut TelemetryDict<'_>) -> std::result::Result<(), TelemetryError>
        + Send
        + Sync,
>;

/// The registered commands, looked up by the trampoline.
static HANDLERS: RwLock<Vec<(String, Handler)>> = RwLock::new(Vec::new());

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'/')
}

fn valid_value(s: &str) -> bool {
    s.len() <= MAX_STRING_LEN && !s.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// Registers `cmd` (starting with `/`, under 56 characters of
/// `[A-Za-z0-9_/]`) with `help` (under 128 bytes). May be called before or
/// after EAL starts; the telemetry server (on unless EAL got
/// `--no-telemetry`) answers it from then on. A command can be registered
/// once per process; there is no unregistering in DPDK 22.11.
pub fn register<F>(cmd: &str, help: &str, handler: F) -> Result<()>
where
    F: Fn(Option<&str>, &mut TelemetryDict<'_>) -> std::result::Result<(), TelemetryError>
        + Send
        + Sync
        + 'static,
{
    let fail = |text: String| DpdkError::Telemetry {
        cmd: cmd.to_owned(),
        text,
    };
    if !cmd.starts_with('/') || !valid_name(cmd, MAX_CMD_LEN) {
        return Err(fail(format!(
            "a command starts with '/' and has at most {MAX_CMD_LEN} characters of [A-Za-z0-9_/]"
        )));
    }
    if help.len() > MAX_HELP_LEN || help.contains('\0') {
        return Err(fail(format!(
            "the help text must be at most {MAX_HELP_LEN} bytes without NUL"
        )));
    }
    let c_cmd = CString::new(cmd).map_err(|_| fail("NUL in command".into()))?;
    let c_help = CString::new(help).map_err(|_| fail("NUL in help".into()))?;
    {
        let mut handlers = HANDLERS.write().unwrap_or_else(|e| e.into_inner());
        if handlers.iter().any(|(c, _)| c == cmd) {
            return Err(fail("already registered".into()));
        }
        handlers.push((cmd.to_owned(), Box::new(handler)));
    }
    // SAFETY: both strings are NUL-terminated and live for the call (DPDK
    // copies them); `trampoline` has the `telemetry_cb` signature and stays
    // valid for the life of the process.
    let rc = unsafe {
        ffi::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(trampoline), c_help.as_ptr())
    };
    if rc < 0 {
        let mut handlers = HANDLERS.write().unwrap_or_else(|e| e.into_inner());
        handlers.retain(|(c, _)| c != cmd);
        return Err(fail(strerror(rc)));
    }
    Ok(())
}

/// The one `telemetry_cb` every command registers.
unsafe extern "C" fn trampoline(
    cmd: *const c_char,
    params: *const c_char,
    data: *mut ffi::rte_tel_data,
) -> c_int {
    let run = || -> Option<()> {
        if cmd.is_null() {
            return None;
        }
        // SAFETY: DPDK passes the command as a NUL-terminated string that
        // lives for the call.
        let cmd = unsafe { CStr::from_ptr(cmd) }.to_str().ok()?;
        let params = if params.is_null() {
            None
        } else {
            // SAFETY: as for `cmd`; NULL when the request had no `,`.
            Some(unsafe { CStr::from_ptr(params) }.to_str().ok()?)
        };
        let params = params.filter(|p| !p.is_empty());
        // SAFETY: `data` is the reply DPDK gives this callback, valid and
        // used by nobody else until the callback returns.
        let mut dict = unsafe { TelemetryDict::start(data) }?;
        let handlers = HANDLERS.read().unwrap_or_else(|e| e.into_inner());
        let (_, h) = handlers.iter().find(|(c, _)| c == cmd)?;
        h(params, &mut dict).ok()
    };
    match std::panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(Some(())) => 0,
        _ => -1,
    }
}

/// Adds `key = value` to the dict `d`.
///
/// # Safety
/// `d` must be a valid `rte_tel_data` started as a dict.
unsafe fn add_u64(
    d: NonNull<ffi::rte_tel_data>,
    key: &str,
    value: u64,
) -> std::result::Result<(), TelemetryError> {
    if !valid_name(key, MAX_STRING_LEN) {
        return Err(TelemetryError::BadKey);
    }
    let k = CString::new(key).map_err(|_| TelemetryError::BadKey)?;
    // SAFETY: the caller guarantees `d`; `k` is NUL-terminated and DPDK
    // copies it.
    let rc = unsafe { ffi::rte_tel_data_add_dict_u64(d.as_ptr(), k.as_ptr(), value) };
    if rc < 0 {
        return Err(TelemetryError::Full);
    }
    Ok(())
}

/// Adds `key = "value"` to the dict `d`.
///
/// # Safety
/// `d` must be a valid `rte_tel_data` started as a dict.
unsafe fn add_str(
    d: NonNull<ffi::rte_tel_data>,
    key: &str,
    value: &str,
) -> std::result::Result<(), TelemetryError> {
    if !valid_name(key, MAX_STRING_LEN) {
        return Err(TelemetryError::BadKey);
    }
    if !valid_value(value) {
        return Err(TelemetryError::BadString);
    }
    let k = CString::new(key).map_err(|_| TelemetryError::BadKey)?;
    let v = CString::new(value).map_err(|_| TelemetryError::BadString)?;
    // SAFETY: the caller guarantees `d`; both strings are NUL-terminated and
    // DPDK copies them.
    let rc = unsafe { ffi::rte_tel_data_add_dict_string(d.as_ptr(), k.as_ptr(), v.as_ptr()) };
    if rc < 0 {
        return Err(TelemetryError::Full);
    }
    Ok(())
}

/// What both dict levels can hold: plain values.
pub trait TelemetryWrite {
    /// Adds an unsigned 64-bit value.
    fn add_u64(&mut self, key: &str, value: u64) -> std::result::Result<(), TelemetryError>;
    /// Adds a string value.
    fn add_str(&mut self, key: &str, value: &str) -> std::result::Result<(), TelemetryError>;
}

/// The reply of one telemetry request, a dict. Lives for the callback only.
pub struct TelemetryDict<'a> {
    d: NonNull<ffi::rte_tel_data>,
    _reply: PhantomData<&'a mut ffi::rte_tel_data>,
}

impl TelemetryDict<'_> {
    /// Starts `data` as a dict.
    ///
    /// # Safety
    /// `data` must be the `rte_tel_data` DPDK passed to the running callback.
    unsafe fn start(data: *mut ffi::rte_tel_data) -> Option<Self> {
        let d = NonNull::new(data)?;
        // SAFETY: `d` is valid per the caller.
        if unsafe { ffi::rte_tel_data_start_dict(d.as_ptr()) } < 0 {
            return None;
        }
        Some(TelemetryDict {
            d,
            _reply: PhantomData,
        })
    }

    /// Adds a nested dict under `key`, filled by `fill`.
    pub fn add_dict<F>(&mut self, key: &str, fill: F) -> std::result::Result<(), TelemetryError>
    where
        F: FnOnce(&mut TelemetryValues<'_>) -> std::result::Result<(), TelemetryError>,
    {
        if !valid_name(key, MAX_STRING_LEN) {
            return Err(TelemetryError::BadKey);
        }
        let k = CString::new(key).map_err(|_| TelemetryError::BadKey)?;
        // SAFETY: allocates an empty container; no preconditions.
        let c =
            NonNull::new(unsafe { ffi::rte_tel_data_alloc() }).ok_or(TelemetryError::NoMemory)?;
        let free = |c: NonNull<ffi::rte_tel_data>| {
            // SAFETY: `c` came from rte_tel_data_alloc and was not handed to
            // DPDK.
            unsafe { ffi::rte_tel_data_free(c.as_ptr()) }
        };
        // SAFETY: `c` is a fresh container.
        if unsafe { ffi::rte_tel_data_start_dict(c.as_ptr()) } < 0 {
            free(c);
            return Err(TelemetryError::NoMemory);
        }
        let mut inner = TelemetryValues {
            d: c,
            _owner: PhantomData,
        };
        if let Err(e) = fill(&mut inner) {
            free(c);
            return Err(e);
        }
        // SAFETY: `self.d` is our started dict; `c` is a started dict of
        // plain values; keep = 0 hands its ownership to DPDK, which frees it
        // with the reply.
        let rc = unsafe {
            ffi::rte_tel_data_add_dict_container(self.d.as_ptr(), k.as_ptr(), c.as_ptr(), 0)
        };
        if rc < 0 {
            free(c);
            return Err(TelemetryError::Full);
        }
        Ok(())
    }
}

/// A dict of plain values nested in a [`TelemetryDict`].
pub struct TelemetryValues<'a> {
    d: NonNull<ffi::rte_tel_data>,
    _owner: PhantomData<&'a mut ffi::rte_tel_data>,
}

impl TelemetryWrite for TelemetryDict<'_> {
    fn add_u64(&mut self, key: &str, value: u64) -> std::result::Result<(), TelemetryError> {
        // SAFETY: `self.d` was started as a dict and is ours for the callback.
        unsafe { add_u64(self.d, key, value) }
    }

    fn add_str(&mut self, key: &str, value: &str) -> std::result::Result<(), TelemetryError> {
        // SAFETY: as in `add_u64`.
        unsafe { add_str(self.d, key, value) }
    }
}

impl TelemetryWrite for TelemetryValues<'_> {
    fn add_u64(&mut self, key: &str, value: u64) -> std::result::Result<(), TelemetryError> {
        // SAFETY: `self.d` was started as a dict by `add_dict`, which owns it
        // until `fill` returns.
        unsafe { add_u64(self.d, key, value) }
    }

    fn add_str(&mut self, key: &str, value: &str) -> std::result::Result<(), TelemetryError> {
        // SAFETY: as in `add_u64`.
        unsafe { add_str(self.d, key, value) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        assert!(valid_name("/pmdlb/stats", MAX_CMD_LEN));
        assert!(valid_name("drop_no_service", MAX_STRING_LEN));
        assert!(!valid_name("drop.no_service", MAX_STRING_LEN));
        assert!(!valid_name("", MAX_STRING_LEN));
        assert!(!valid_name(&"a".repeat(56), MAX_CMD_LEN));
        assert!(valid_value("TCP  10.0.0.100:80"));
        assert!(valid_value("fd00::1"));
        assert!(!valid_value("a\"b"));
        assert!(!valid_value("a\nb"));
        assert!(!valid_value(&"x".repeat(128)));
    }

    /// The wrappers against DPDK's own data functions (plain memory, no
    /// EAL needed): limits surface as errors, not silent loss.
    #[test]
    fn dict_limits_are_errors() {
        // SAFETY: a fresh container, freed below and used by nobody else.
        let raw = unsafe { ffi::rte_tel_data_alloc() };
        assert!(!raw.is_null());
        // SAFETY: `raw` is a valid container this test owns.
        let mut d = unsafe { TelemetryDict::start(raw) }.expect("start dict");
        assert_eq!(d.add_u64("drop.x", 1), Err(TelemetryError::BadKey));
        assert_eq!(d.add_str("name", "a\"b"), Err(TelemetryError::BadString));
        d.add_dict("inner", |v| {
            v.add_u64("a", 1)?;
            v.add_str("b", "TCP  10.0.0.100:80")
        })
        .unwrap();
        assert_eq!(
            d.add_dict("failed", |_| Err(TelemetryError::BadParams)),
            Err(TelemetryError::BadParams)
        );
        for i in 1..256 {
            d.add_u64(&format!("k{i}"), i).unwrap();
        }
        assert_eq!(d.add_u64("k256", 256), Err(TelemetryError::Full));
        assert_eq!(d.add_dict("late", |_| Ok(())), Err(TelemetryError::Full));
        // SAFETY: `raw` came from rte_tel_data_alloc; `d` is not used again.
        // (Only DPDK's reply output frees nested containers: "inner" leaks.)
        unsafe { ffi::rte_tel_data_free(raw) };
    }

    #[test]
    fn bad_commands_are_refused_before_dpdk() {
        let h = |_: Option<&str>, _: &mut TelemetryDict<'_>| Ok(());
        assert!(register("pmdlb/stats", "", h).is_err());
        assert!(register("/pmdlb/st.ats", "", h).is_err());
        assert!(register("/pmdlb/x", &"h".repeat(128), h).is_err());
    }
}
