//! `pmdlb admin`: ipvsadm's command line for pmdlb, in pure Rust.
//!
//! - [`args`] parses what a user types after `ipvsadm` into an [`args::AdminCmd`],
//!   with ipvsadm 1.31's options, defaults, conflict rules and messages.
//! - [`rules`] applies the editing commands (`-A -E -D -a -e -d -C`) to a rule
//!   set of [`crate::lb::spec::ServiceSpec`]s, with the kernel's error messages,
//!   and parses and applies `-R` input atomically.
//! - [`format`](mod@format) prints what ipvsadm prints (`-L`, `--stats`, `--rate`,
//!   `--thresholds`, `--persistent-conn`, `--tun-info`, `-c`, `--timeout`, `-S`)
//!   from a plain view model the control plane fills from live state.
//! - [`client`] sends a command to a running pmdlb over the control socket
//!   and defines the wire encoding of requests and answers.
//!
//! No DPDK, no sockets except in [`client`], no name resolution anywhere:
//! pmdlb's control plane prints and accepts numeric addresses and ports only.
#![forbid(unsafe_code)]

pub mod args;
pub mod client;
pub mod format;
pub mod rules;
pub mod serve;

pub use args::{AdminCmd, AdminError, Edit};
