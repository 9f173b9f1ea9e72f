//! ipvsadm's own argument vector parsed into an [`AdminCmd`].
//!
//! The rules are ipvsadm 1.31's (`ipvsadm.c`), re-expressed here:
//!
//! - Options are read as popt reads them: short options bundle (`-Ln`), a
//!   short option's value may be attached (`-w5`) or the next word, long
//!   options take `--name value` or `--name=value`, `--` ends the options,
//!   other words are leftovers (only `--set` takes any). `-p` has an
//!   optional value: the next word is taken unless it starts with `-`.
//! - The first option must be the command (`parse_options`: anything else
//!   prints the "Try ... -h" hint and exits 255). A second command later on
//!   is an "invalid option".
//! - Each option may be given once ("multiple '...' options specified"),
//!   and the `commands_v_options` table says which are compulsory, illegal
//!   or mutually exclusive for each command (`generic_opt_check`).
//! - `-A/-E`: a port-0 service must be persistent, `-o` needs UDP or a
//!   fwmark, the scheduler defaults to wlc, `-p` alone means 360 s
//!   (`IPVS_SVC_PERSISTENT_TIMEOUT`), 1..=2678400.
//! - `-a/-e/-d`: `-r` without a port takes the service's port; DR and
//!   tunnel servers of a non-fwmark service always get the service's port;
//!   only a tunnel may change the address family; tunnel options need `-i`
//!   and follow `tunnel_types_v_options` (gue needs `--tun-port`, one of
//!   `--tun-nocsum/--tun-csum`); weight 0..=65535 (default 1), thresholds
//!   0..=INT_MAX.
//! - `-L`: `-c`, `--timeout`, `--daemon` and a service exclude each other;
//!   the first three also exclude `--stats/--rate/--thresholds`.
//!
//! Errors carry ipvsadm's exit code: 2 for what ipvsadm rejects with
//! `fail(2, …)`, 255 for popt errors and the "Try ... -h" hint (ipvsadm
//! returns -1 from `main`). What ipvsadm accepts but pmdlb cannot do is
//! checked last, after all of ipvsadm's own checks, with a message saying
//! so: masquerading (`-m`), persistence engines (`--pe`), the lblc/lblcr
//! schedulers, gre tunnels and remote checksum offload, `flag-3`, tunnel
//! servers of another address family, and `--start-daemon/--stop-daemon`
//! (the sync daemon is configured in `[sync]`; `-L --daemon` lists it).
//!
//! Deliberate differences, all because pmdlb resolves no names: hosts and
//! ports must be numeric (ipvsadm would look names up), IPv4 addresses are
//! dotted quads (not every `inet_aton` form), and `-M` for an IPv4 service
//! takes a dotted contiguous mask or a prefix length (`24`, `/24`), read
//! after all options so its position does not matter.
#![forbid(unsafe_code)]

use std::net::IpAddr;

use crate::control::config::values::{format_netmask, format_sockaddr, parse_netmask};
use crate::control::summary::scheduler_name;
use crate::lb::spec::{Forwarding, Persistence, SchedFlags, SchedulerKind, Tunnel, TunnelKind};
use crate::lb::types::ip_proto;

/// ipvsadm's exit code for a rejected option or argument (`fail(2, …)`).
pub const EXIT_USAGE: u8 = 2;
/// ipvsadm's exit code when `main` returns -1: popt errors, the "Try ... -h"
/// hint, and a request the kernel refused ("No such service", …).
pub const EXIT_FAILED: u8 = 255;
/// ipvsadm's exit code when listing one service that does not exist
/// (`list_service` calls `exit(1)`).
pub const EXIT_LIST_FAILED: u8 = 1;

/// Longest persistence timeout: 31 days (`MAX_TIMEOUT` in ipvsadm.c).
pub const MAX_TIMEOUT_S: u32 = 86400 * 31;
/// `-p` without a value (`IPVS_SVC_PERSISTENT_TIMEOUT` in libipvs.h: 6*60;
/// the man page's 300 is not what the code does).
pub const DEFAULT_PERSISTENT_S: u32 = 360;

const INT_MAX: u32 = i32::MAX as u32;

/// A failed admin command: what ipvsadm would print on stderr and the code
/// it would exit with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct AdminError {
    /// Process exit code ([`EXIT_USAGE`], [`EXIT_FAILED`], [`EXIT_LIST_FAILED`]).
    pub code: u8,
    /// The message, without a trailing newline.
    pub msg: String,
}

impl AdminError {
    /// An error ipvsadm reports with `fail(2, …)`.
    pub fn usage(msg: impl Into<String>) -> Self {
        AdminError {
            code: EXIT_USAGE,
            msg: msg.into(),
        }
    }

    /// An error ipvsadm reports by returning -1 (exit 255).
    pub fn failed(msg: impl Into<String>) -> Self {
        AdminError {
            code: EXIT_FAILED,
            msg: msg.into(),
        }
    }
}

fn tryhelp() -> AdminError {
    AdminError::failed("Try `ipvsadm -h' or 'ipvsadm --help' for more information.")
}

fn not_supported(what: &str) -> AdminError {
    AdminError::usage(format!("{what}: not supported by pmdlb"))
}

/// A virtual service as a command names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceSel {
    /// `-t|-u|--sctp-service VIP:PORT`.
    Addr {
        /// IP protocol number (TCP, UDP or SCTP).
        proto: u8,
        /// The virtual IP.
        vip: IpAddr,
        /// The port; 0 = every port (persistent services only).
        port: u16,
    },
    /// `-f MARK [-6]`.
    Fwmark {
        /// The mark, 1..=u32::MAX.
        mark: u32,
        /// `-6`: the IPv6 service of this mark.
        v6: bool,
    },
}

impl ServiceSel {
    /// Whether the service is IPv6.
    pub fn is_v6(&self) -> bool {
        match self {
            ServiceSel::Addr { vip, .. } => vip.is_ipv6(),
            ServiceSel::Fwmark { v6, .. } => *v6,
        }
    }

    /// The port servers of this service get (0 for fwmark).
    pub fn port(&self) -> u16 {
        match self {
            ServiceSel::Addr { port, .. } => *port,
            ServiceSel::Fwmark { .. } => 0,
        }
    }

    /// The service address as the rule set stores it.
    pub fn service_addr(&self) -> crate::lb::spec::ServiceAddr {
        match *self {
            ServiceSel::Addr { proto, vip, port } => {
                crate::lb::spec::ServiceAddr::Addr { proto, vip, port }
            }
            ServiceSel::Fwmark { mark, .. } => crate::lb::spec::ServiceAddr::Fwmark(mark),
        }
    }

    /// The selector as ipvsadm-save writes it: `-t 10.0.0.1:80`, `-f 1 -6`.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            ServiceSel::Addr { proto, vip, port } => {
                let opt = match *proto {
                    ip_proto::UDP => "-u",
                    ip_proto::SCTP => "--sctp-service",
                    _ => "-t",
                };
                vec![opt.into(), format_sockaddr(vip, *port)]
            }
            ServiceSel::Fwmark { mark, v6 } => {
                let mut v = vec!["-f".into(), mark.to_string()];
                if *v6 {
                    v.push("-6".into());
                }
                v
            }
        }
    }
}

/// The options of `-A` / `-E`, defaults applied. `-E` replaces all of them,
/// as ipvsadm sends a whole service (an omitted `-p` makes the service
/// non-persistent, an omitted `-s` sets wlc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceOpts {
    /// `-s` (default wlc).
    pub scheduler: SchedulerKind,
    /// `-b`.
    pub sched_flags: SchedFlags,
    /// `-p [TIMEOUT]` with `-M` (default /32, /128 for IPv6).
    pub persistence: Option<Persistence>,
    /// `-o`.
    pub ops: bool,
}

/// A real server of `-a` / `-e`, defaults applied. `-e` replaces all of
/// these (weight back to 1, thresholds to 0, forwarding to DR unless given).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOpts {
    /// `-r` address.
    pub addr: IpAddr,
    /// The port: the service's for a non-fwmark service; for a fwmark
    /// service as given (default 0). pmdlb keeps no server port (DR and
    /// tunnels never rewrite it), so this is informational.
    pub port: u16,
    /// `-g` (default) or `-i` with `--tun-type/--tun-port/--tun-[no]csum`.
    pub forward: Forwarding,
    /// `-w` (default 1).
    pub weight: u32,
    /// `-x` (default 0 = none).
    pub u_threshold: u32,
    /// `-y` (default 0 = none).
    pub l_threshold: u32,
}

/// A command that changes the rule set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// `-A`.
    AddService {
        /// The service.
        svc: ServiceSel,
        /// Its options.
        opts: ServiceOpts,
    },
    /// `-E`.
    EditService {
        /// The service.
        svc: ServiceSel,
        /// Its new options (its servers stay).
        opts: ServiceOpts,
    },
    /// `-D`.
    DelService {
        /// The service.
        svc: ServiceSel,
    },
    /// `-a`.
    AddServer {
        /// The service.
        svc: ServiceSel,
        /// The server.
        server: ServerOpts,
    },
    /// `-e`.
    EditServer {
        /// The service.
        svc: ServiceSel,
        /// The server and its new options.
        server: ServerOpts,
    },
    /// `-d`.
    DelServer {
        /// The service.
        svc: ServiceSel,
        /// The server's address.
        addr: IpAddr,
        /// Its port (as [`ServerOpts::port`]).
        port: u16,
    },
    /// `-C`: remove every service.
    Clear,
}

/// The display options of `-L` (and their flags for `-S`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOpts {
    /// `-n`. pmdlb prints numbers either way (no DNS on the control plane).
    pub numeric: bool,
    /// `--exact`: no K/M/G abbreviation.
    pub exact: bool,
    /// `--stats`.
    pub stats: bool,
    /// `--rate`.
    pub rate: bool,
    /// `--thresholds`.
    pub thresholds: bool,
    /// `--persistent-conn`.
    pub persistent_conn: bool,
    /// `--tun-info`.
    pub tun_info: bool,
    /// `--nosort`: table order instead of ipvsadm's sort.
    pub nosort: bool,
}

/// What `-L` lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListWhat {
    /// Every service (with the version header).
    All,
    /// One service (no header; exit 1 "No such service" if absent).
    Service(ServiceSel),
    /// `-c`: the connection entries.
    Connections,
    /// `--timeout`.
    Timeouts,
    /// `--daemon`: the sync daemon lines.
    Daemon,
}

/// One parsed ipvsadm command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCmd {
    /// A rule-set change.
    Edit(Edit),
    /// `-L/-l/--list`, or no arguments at all.
    List {
        /// What to list.
        what: ListWhat,
        /// How.
        opts: ListOpts,
    },
    /// `-Z [SERVICE]`: zero the counters of one or all services.
    Zero(Option<ServiceSel>),
    /// `--set TCP TCPFIN UDP`: seconds; 0 keeps the current value.
    SetTimeouts {
        /// TCP established.
        tcp: u32,
        /// TCP after FIN.
        tcpfin: u32,
        /// UDP.
        udp: u32,
    },
    /// `-S [-n]`.
    Save {
        /// `-n`.
        numeric: bool,
    },
    /// `-R`: the rules come on standard input.
    Restore,
    /// `-h`.
    Help,
    /// `-v`.
    Version,
}

impl Edit {
    /// The canonical argument vector of this edit (ipvsadm-save syntax,
    /// plus `-x/-y` when set, which ipvsadm-save leaves out); [`parse`]
    /// gives back the same edit.
    pub fn to_args(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        let mut push = |s: &str| v.push(s.to_owned());
        match self {
            Edit::AddService { svc, opts } | Edit::EditService { svc, opts } => {
                push(if matches!(self, Edit::AddService { .. }) {
                    "-A"
                } else {
                    "-E"
                });
                v.extend(svc.to_args());
                v.extend(service_opts_args(svc, opts));
            }
            Edit::DelService { svc } => {
                push("-D");
                v.extend(svc.to_args());
            }
            Edit::AddServer { svc, server } | Edit::EditServer { svc, server } => {
                push(if matches!(self, Edit::AddServer { .. }) {
                    "-a"
                } else {
                    "-e"
                });
                v.extend(svc.to_args());
                v.extend(server_args(server, true));
            }
            Edit::DelServer { svc, addr, port } => {
                push("-d");
                v.extend(svc.to_args());
                v.push("-r".into());
                v.push(format_sockaddr(addr, *port));
            }
            Edit::Clear => push("-C"),
        }
        v
    }
}

/// `-s SCHED[ -p T[ -M MASK]][ -o][ -b FLAGS]`, in ipvsadm-save's order.
pub(crate) fn service_opts_args(svc: &ServiceSel, o: &ServiceOpts) -> Vec<String> {
    let mut v = vec!["-s".to_owned(), scheduler_name(o.scheduler).to_owned()];
    if let Some(p) = o.persistence {
        v.push("-p".into());
        v.push(p.timeout_s.to_string());
        let v6 = svc.is_v6();
        if p.prefix_len != if v6 { 128 } else { 32 } {
            v.push("-M".into());
            v.push(format_netmask(p.prefix_len, v6));
        }
    }
    if o.ops {
        v.push("-o".into());
    }
    if let Some(f) = sched_flags_text(o.scheduler, o.sched_flags) {
        v.push("-b".into());
        v.push(f);
    }
    v
}

/// `-r ADDR:PORT -g|-i -w W[ -x U][ -y L][ --tun-type …]`.
pub(crate) fn server_args(s: &ServerOpts, thresholds: bool) -> Vec<String> {
    let mut v = vec!["-r".to_owned(), format_sockaddr(&s.addr, s.port)];
    v.push(
        match s.forward {
            Forwarding::Dr => "-g",
            Forwarding::Tunnel(_) => "-i",
        }
        .into(),
    );
    v.push("-w".into());
    v.push(s.weight.to_string());
    if thresholds && s.u_threshold != 0 {
        v.push("-x".into());
        v.push(s.u_threshold.to_string());
    }
    if thresholds && s.l_threshold != 0 {
        v.push("-y".into());
        v.push(s.l_threshold.to_string());
    }
    if let Forwarding::Tunnel(t) = s.forward {
        v.extend(tunnel_args(&t));
    }
    v
}

/// `--tun-type ipip` or `--tun-type gue --tun-port P --tun-[no]csum`, as
/// `print_tunnel_rule`.
pub(crate) fn tunnel_args(t: &Tunnel) -> Vec<String> {
    let mut v = vec!["--tun-type".to_owned(), t.kind.to_string()];
    if t.kind == TunnelKind::Gue {
        v.push("--tun-port".into());
        v.push(t.port.to_string());
        v.push(if t.csum { "--tun-csum" } else { "--tun-nocsum" }.into());
    }
    v
}

/// The `-b` text of a service's flags as `print_sched_flags` names them:
/// sh-/mh- names for those schedulers, flag-1/flag-2 for the others.
pub fn sched_flags_text(sched: SchedulerKind, f: SchedFlags) -> Option<String> {
    let (a, b) = match sched {
        SchedulerKind::Sh => ("sh-fallback", "sh-port"),
        SchedulerKind::Mh => ("mh-fallback", "mh-port"),
        _ => ("flag-1", "flag-2"),
    };
    let mut v = Vec::new();
    if f.fallback {
        v.push(a);
    }
    if f.port {
        v.push(b);
    }
    if f.mh_template {
        v.push("mh-template");
    }
    (!v.is_empty()).then(|| v.join(","))
}

impl AdminCmd {
    /// The canonical argument vector of this command; [`parse`] gives back
    /// the same command. This is what `pmdlb admin` sends over the wire.
    pub fn to_args(&self) -> Vec<String> {
        let s = |x: &str| x.to_owned();
        match self {
            AdminCmd::Edit(e) => e.to_args(),
            AdminCmd::List { what, opts } => {
                let mut v = vec![s("-L")];
                match what {
                    ListWhat::All => {}
                    ListWhat::Service(svc) => v.extend(svc.to_args()),
                    ListWhat::Connections => v.push(s("-c")),
                    ListWhat::Timeouts => v.push(s("--timeout")),
                    ListWhat::Daemon => v.push(s("--daemon")),
                }
                for (on, name) in [
                    (opts.numeric, "-n"),
                    (opts.exact, "--exact"),
                    (opts.stats, "--stats"),
                    (opts.rate, "--rate"),
                    (opts.thresholds, "--thresholds"),
                    (opts.persistent_conn, "--persistent-conn"),
                    (opts.tun_info, "--tun-info"),
                    (opts.nosort, "--nosort"),
                ] {
                    if on {
                        v.push(s(name));
                    }
                }
                v
            }
            AdminCmd::Zero(svc) => {
                let mut v = vec![s("-Z")];
                if let Some(svc) = svc {
                    v.extend(svc.to_args());
                }
                v
            }
            AdminCmd::SetTimeouts { tcp, tcpfin, udp } => vec![
                s("--set"),
                tcp.to_string(),
                tcpfin.to_string(),
                udp.to_string(),
            ],
            AdminCmd::Save { numeric } => {
                let mut v = vec![s("-S")];
                if *numeric {
                    v.push(s("-n"));
                }
                v
            }
            AdminCmd::Restore => vec![s("-R")],
            AdminCmd::Help => vec![s("-h")],
            AdminCmd::Version => vec![s("-v")],
        }
    }
}

// ---------------------------------------------------------------------
// Commands and options, as ipvsadm's `cmdnames`, `optnames` and
// `commands_v_options`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Add,
    Edit,
    Del,
    Flush,
    List,
    AddDest,
    DelDest,
    EditDest,
    Timeout,
    StartDaemon,
    StopDaemon,
    Restore,
    Save,
    Zero,
}

impl Cmd {
    fn name(self) -> &'static str {
        CMD_NAMES[self as usize]
    }
}

const CMD_NAMES: [&str; 14] = [
    "add-service",
    "edit-service",
    "delete-service",
    "flush",
    "list",
    "add-server",
    "delete-server",
    "edit-server",
    "set",
    "start-daemon",
    "stop-daemon",
    "restore",
    "save",
    "zero",
];

/// Option classes, in `optnames` order (bit i of the option set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opt {
    Numeric,
    Connection,
    Service,
    Scheduler,
    Persistent,
    Netmask,
    Server,
    Forward,
    Weight,
    UThreshold,
    LThreshold,
    Mcast,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    SyncId,
    Exact,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

const OPT_NAMES: [&str; 34] = [
    "numeric",
    "connection",
    "service-address",
    "scheduler",
    "persistent",
    "netmask",
    "real-server",
    "forwarding-method",
    "weight",
    "u-threshold",
    "l-threshold",
    "mcast-interface",
    "timeout",
    "daemon",
    "stats",
    "rate",
    "thresholds",
    "persistent-conn",
    "nosort",
    "syncid",
    "exact",
    "ops",
    "pe",
    "sched-flags",
    "mcast-group",
    "mcast-port",
    "mcast-ttl",
    "sync-maxlen",
    "tun-info",
    "tun-type",
    "tun-port",
    "tun-nocsum",
    "tun-csum",
    "tun-remcsum",
];

/// `commands_v_options`, one row per [`Cmd`], one column per [`Opt`]:
/// `+` compulsory, `x` illegal, `1` at most one of the `1`s, ` ` optional.
#[rustfmt::skip]
const LEGAL: [&[u8; 34]; 14] = [
    //  -n-c svc-s-p-M-r fwd-w-x-y mc tot dmn st rt thr pc srt sid ex ops pe b grp prt ttl sz tinf typ tprt nocs csum remc
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // add-service
    b"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // edit-service
    b"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-service
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // flush
    b" 11xxxxxxxxx11       xxxxxxx xxxxx", // list
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // add-server
    b"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // delete-server
    b"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // edit-server
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // set
    b"xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // start-daemon
    b"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // stop-daemon
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // restore
    b" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // save
    b"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // zero
];

/// `generic_opt_check`.
fn generic_opt_check(cmd: Cmd, options: u64) -> Result<(), AdminError> {
    let row = LEGAL[cmd as usize];
    let mut last: Option<usize> = None;
    for (j, &rule) in row.iter().enumerate() {
        let set = options & (1 << j) != 0;
        match (set, rule) {
            (false, b'+') => {
                return Err(AdminError::usage(format!(
                    "You need to supply the '{}' option for the '{}' command",
                    OPT_NAMES[j],
                    cmd.name()
                )))
            }
            (true, b'x') => {
                return Err(AdminError::usage(format!(
                    "Illegal '{}' option with the '{}' command",
                    OPT_NAMES[j],
                    cmd.name()
                )))
            }
            (true, b'1') => match last {
                None => last = Some(j),
                Some(l) => {
                    return Err(AdminError::usage(format!(
                        "The option '{}' conflicts with the '{}' option in the '{}' command",
                        OPT_NAMES[j],
                        OPT_NAMES[l],
                        cmd.name()
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------
// The popt-like reader.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Takes {
    Nothing,
    Value,
    OptionalValue,
}

/// Every option ipvsadm's popt table knows, by the tag its switch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tag {
    AddService,
    EditService,
    DelService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DelServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masq,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    McastGroup,
    McastPort,
    McastTtl,
    SyncMaxlen,
    TunInfo,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
}

struct OptDef {
    long: &'static str,
    short: Option<char>,
    takes: Takes,
    tag: Tag,
}

const fn def(long: &'static str, short: Option<char>, takes: Takes, tag: Tag) -> OptDef {
    OptDef {
        long,
        short,
        takes,
        tag,
    }
}

use Takes::{Nothing as N, OptionalValue as O, Value as V};

#[rustfmt::skip]
const OPTIONS: &[OptDef] = &[
    def("add-service", Some('A'), N, Tag::AddService),
    def("edit-service", Some('E'), N, Tag::EditService),
    def("delete-service", Some('D'), N, Tag::DelService),
    def("clear", Some('C'), N, Tag::Clear),
    def("list", Some('L'), N, Tag::List),
    def("list", Some('l'), N, Tag::List),
    def("zero", Some('Z'), N, Tag::Zero),
    def("add-server", Some('a'), N, Tag::AddServer),
    def("edit-server", Some('e'), N, Tag::EditServer),
    def("delete-server", Some('d'), N, Tag::DelServer),
    def("set", None, N, Tag::Set),
    def("help", Some('h'), N, Tag::Help),
    def("version", Some('v'), N, Tag::Version),
    def("restore", Some('R'), N, Tag::Restore),
    def("save", Some('S'), N, Tag::Save),
    def("start-daemon", None, V, Tag::StartDaemon),
    def("stop-daemon", None, V, Tag::StopDaemon),
    def("tcp-service", Some('t'), V, Tag::Tcp),
    def("udp-service", Some('u'), V, Tag::Udp),
    def("sctp-service", None, V, Tag::Sctp),
    def("fwmark-service", Some('f'), V, Tag::Fwmark),
    def("scheduler", Some('s'), V, Tag::Scheduler),
    def("persistent", Some('p'), O, Tag::Persistent),
    def("netmask", Some('M'), V, Tag::Netmask),
    def("real-server", Some('r'), V, Tag::RealServer),
    def("masquerading", Some('m'), N, Tag::Masq),
    def("ipip", Some('i'), N, Tag::Ipip),
    def("gatewaying", Some('g'), N, Tag::Gatewaying),
    def("weight", Some('w'), V, Tag::Weight),
    def("u-threshold", Some('x'), V, Tag::UThreshold),
    def("l-threshold", Some('y'), V, Tag::LThreshold),
    def("numeric", Some('n'), N, Tag::Numeric),
    def("connection", Some('c'), N, Tag::Connection),
    def("mcast-interface", None, V, Tag::McastInterface),
    def("syncid", None, V, Tag::SyncId),
    def("timeout", None, N, Tag::Timeout),
    def("daemon", None, N, Tag::Daemon),
    def("stats", None, N, Tag::Stats),
    def("rate", None, N, Tag::Rate),
    def("thresholds", None, N, Tag::Thresholds),
    def("persistent-conn", None, N, Tag::PersistentConn),
    def("nosort", None, N, Tag::NoSort),
    def("sort", None, N, Tag::Sort),
    def("exact", Some('X'), N, Tag::Exact),
    def("ipv6", Some('6'), N, Tag::Ipv6),
    def("ops", Some('o'), N, Tag::Ops),
    def("pe", None, V, Tag::Pe),
    def("sched-flags", Some('b'), V, Tag::SchedFlags),
    def("mcast-group", None, V, Tag::McastGroup),
    def("mcast-port", None, V, Tag::McastPort),
    def("mcast-ttl", None, V, Tag::McastTtl),
    def("sync-maxlen", None, V, Tag::SyncMaxlen),
    def("tun-info", None, N, Tag::TunInfo),
    def("tun-type", None, V, Tag::TunType),
    def("tun-port", None, V, Tag::TunPort),
    def("tun-nocsum", None, N, Tag::TunNocsum),
    def("tun-csum", None, N, Tag::TunCsum),
    def("tun-remcsum", None, N, Tag::TunRemcsum),
];

/// One item the reader yields.
enum Item {
    /// An option, the word it came from, and its value.
    Opt(Tag, String, Option<String>),
    /// A popt error: the word and popt's message.
    Bad(String, &'static str),
}

/// Reads options from an argument vector the way popt does, collecting
/// leftover words.
struct Reader<'a> {
    args: &'a [String],
    next: usize,
    /// The rest of a bundle of short options, and the word it came from.
    bundle: Option<(String, String)>,
    no_more_options: bool,
    leftovers: Vec<String>,
}

impl<'a> Reader<'a> {
    fn new(args: &'a [String]) -> Self {
        Reader {
            args,
            next: 0,
            bundle: None,
            no_more_options: false,
            leftovers: Vec::new(),
        }
    }

    /// The next word as an option value (`Value`), or for an optional
    /// value the next word unless it starts with `-`.
    fn value_word(&mut self, takes: Takes) -> Option<String> {
        let w = self.args.get(self.next)?;
        if takes == Takes::OptionalValue && w.starts_with('-') {
            return None;
        }
        self.next += 1;
        Some(w.clone())
    }

    fn next_item(&mut self) -> Option<Item> {
        if let Some((rest, word)) = self.bundle.take() {
            return Some(self.short(&rest, word));
        }
        loop {
            let w = self.args.get(self.next)?.clone();
            self.next += 1;
            if self.no_more_options || w == "-" || !w.starts_with('-') {
                self.leftovers.push(w);
                continue;
            }
            if w == "--" {
                self.no_more_options = true;
                continue;
            }
            if let Some(long) = w.strip_prefix("--") {
                let (name, attached) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (long, None),
                };
                let Some(d) = OPTIONS.iter().find(|d| d.long == name) else {
                    return Some(Item::Bad(w, "unknown option"));
                };
                let value = match (d.takes, attached) {
                    (Takes::Nothing, Some(_)) => {
                        return Some(Item::Bad(w, "option does not take an argument"))
                    }
                    (Takes::Nothing, None) => None,
                    (_, Some(v)) => Some(v),
                    (t, None) => match self.value_word(t) {
                        Some(v) => Some(v),
                        None if t == Takes::Value => return Some(Item::Bad(w, "missing argument")),
                        None => None,
                    },
                };
                return Some(Item::Opt(d.tag, w, value));
            }
            let rest = w[1..].to_owned();
            return Some(self.short(&rest, w));
        }
    }

    /// The first short option of `rest` (a bundle from `word`).
    fn short(&mut self, rest: &str, word: String) -> Item {
        let mut chars = rest.chars();
        let c = chars.next().unwrap_or('-');
        let tail: String = chars.collect();
        let Some(d) = OPTIONS.iter().find(|d| d.short == Some(c)) else {
            return Item::Bad(word, "unknown option");
        };
        match d.takes {
            Takes::Nothing => {
                if !tail.is_empty() {
                    self.bundle = Some((tail, word.clone()));
                }
                Item::Opt(d.tag, word, None)
            }
            t => {
                if !tail.is_empty() {
                    return Item::Opt(d.tag, word, Some(tail));
                }
                match self.value_word(t) {
                    Some(v) => Item::Opt(d.tag, word, Some(v)),
                    None if t == Takes::Value => Item::Bad(word, "missing argument"),
                    None => Item::Opt(d.tag, word, None),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------
// Value parsers.

/// `string_to_number`: a whole decimal number in `min..=max`.
fn number(s: &str, min: i64, max: i64) -> Option<u32> {
    let n: i64 = s.parse().ok()?;
    (min..=max).contains(&n).then_some(n as u32)
}

/// `parse_timeout`.
fn timeout(s: &str, min: u32) -> Result<u32, AdminError> {
    number(s, i64::from(min), i64::from(MAX_TIMEOUT_S))
        .ok_or_else(|| AdminError::usage(format!("invalid timeout value `{s}' specified")))
}

/// `parse_service`: `ADDR`, `ADDR:PORT` or `[V6]:PORT`; `None` when it is
/// not one (all digits, bad address, bad port). The port is `None` when
/// not given.
fn addr_port(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let port = |p: &str| -> Option<u16> { number(p, 0, 65535).map(|n| n as u16) };
    if let Some(inner) = s.strip_prefix('[') {
        let (a, after) = inner.split_once(']')?;
        let p = after.strip_prefix(':')?;
        let ip: std::net::Ipv6Addr = a.parse().ok()?;
        return Some((IpAddr::V6(ip), Some(port(p)?)));
    }
    if let Ok(ip) = s.parse::<std::net::Ipv6Addr>() {
        return Some((IpAddr::V6(ip), None));
    }
    match s.rsplit_once(':') {
        Some((a, p)) => Some((IpAddr::V4(a.parse().ok()?), Some(port(p)?))),
        None => Some((IpAddr::V4(s.parse().ok()?), None)),
    }
}

fn scheduler(name: &str) -> Result<SchedulerKind, AdminError> {
    if let Some(k) = SchedulerKind::from_name(name) {
        return Ok(k);
    }
    Err(match name {
        "lblc" | "lblcr" => AdminError::usage(format!(
            "scheduler {name}: not supported by pmdlb; use rr, wrr, lc, wlc, sed, nq, sh, dh, mh, fo or ovf"
        )),
        // ipvsadm passes the name on and the kernel refuses it (ENOENT,
        // `ipvs_strerror` for ipvs_add_service/ipvs_update_service).
        _ => AdminError::failed("Scheduler or persistence engine not found"),
    })
}

/// `parse_sched_flags`: flags checked against the scheduler given (or wlc).
/// Returns the flags and whether `flag-3` was named.
fn sched_flags(sched: &str, arg: &str) -> Result<(SchedFlags, bool), AdminError> {
    let mut f = SchedFlags::default();
    let mut flag3 = false;
    let mut any = false;
    for flag in arg.split(',').filter(|s| !s.is_empty()) {
        any = true;
        let incompatible = || AdminError::usage(format!("incompatible scheduler flag `{flag}'"));
        match flag {
            "flag-1" => f.fallback = true,
            "flag-2" => f.port = true,
            "flag-3" => flag3 = true,
            "sh-fallback" | "sh-port" if sched != "sh" => return Err(incompatible()),
            "mh-fallback" | "mh-port" if sched != "mh" => return Err(incompatible()),
            // pmdlb's own: templates from Maglev, any scheduler (-p needed)
            "mh-template" => f.mh_template = true,
            "sh-fallback" | "mh-fallback" => f.fallback = true,
            "sh-port" | "mh-port" => f.port = true,
            _ => {
                return Err(AdminError::usage(format!(
                    "invalid scheduler flag `{flag}'"
                )))
            }
        }
    }
    if !any {
        return Err(AdminError::usage(format!("invalid scheduler flag `{arg}'")));
    }
    Ok((f, flag3))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fwd {
    Dr,
    Tunnel,
    Masq,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TunType {
    Ipip,
    Gue,
    Gre,
}

/// Everything the options set, before the checks (`ipvs_command_entry`).
struct Entry {
    cmd: Cmd,
    options: u64,
    proto: u8,
    vip: Option<IpAddr>,
    port: u16,
    fwmark: u32,
    v6: bool,
    sched: Option<String>,
    persistent: Option<u32>,
    netmask: Option<String>,
    ops: bool,
    pe: bool,
    sched_flags_arg: Option<String>,
    dest: Option<(IpAddr, u16)>,
    fwd: Fwd,
    weight: u32,
    u_threshold: u32,
    l_threshold: u32,
    tun_type: TunType,
    tun_port: u16,
    tun_csum: bool,
    list: ListOpts,
}

impl Entry {
    fn set(&mut self, opt: Opt) -> Result<(), AdminError> {
        let bit = 1u64 << (opt as u32);
        if self.options & bit != 0 {
            return Err(AdminError::usage(format!(
                "multiple '{}' options specified",
                OPT_NAMES[opt as usize]
            )));
        }
        self.options |= bit;
        Ok(())
    }

    fn has(&self, opt: Opt) -> bool {
        self.options & (1u64 << (opt as u32)) != 0
    }
}

fn command_of(tag: Tag) -> Option<Cmd> {
    Some(match tag {
        Tag::AddService => Cmd::Add,
        Tag::EditService => Cmd::Edit,
        Tag::DelService => Cmd::Del,
        Tag::AddServer => Cmd::AddDest,
        Tag::EditServer => Cmd::EditDest,
        Tag::DelServer => Cmd::DelDest,
        Tag::Clear => Cmd::Flush,
        Tag::List => Cmd::List,
        Tag::Zero => Cmd::Zero,
        Tag::Set => Cmd::Timeout,
        Tag::Restore => Cmd::Restore,
        Tag::Save => Cmd::Save,
        Tag::StartDaemon => Cmd::StartDaemon,
        Tag::StopDaemon => Cmd::StopDaemon,
        _ => return None,
    })
}

/// Parses ipvsadm's argument vector (the words after `ipvsadm`). No words
/// at all is `-L` (with name resolution in ipvsadm; numeric in pmdlb).
pub fn parse(args: &[String]) -> Result<AdminCmd, AdminError> {
    if args.is_empty() {
        return Ok(AdminCmd::List {
            what: ListWhat::All,
            opts: ListOpts::default(),
        });
    }
    let mut r = Reader::new(args);
    // The first option is the command.
    let cmd = match r.next_item() {
        Some(Item::Opt(Tag::Help, ..)) => return Ok(AdminCmd::Help),
        Some(Item::Opt(Tag::Version, ..)) => return Ok(AdminCmd::Version),
        Some(Item::Opt(tag, _, value)) => {
            let cmd = command_of(tag).ok_or_else(tryhelp)?;
            if let (Cmd::StartDaemon | Cmd::StopDaemon, Some(v)) = (cmd, value.as_deref()) {
                if v != "master" && v != "backup" {
                    return Err(AdminError::usage(if cmd == Cmd::StartDaemon {
                        "illegal start-daemon parameter specified"
                    } else {
                        "illegal start_daemon specified"
                    }));
                }
            }
            cmd
        }
        Some(Item::Bad(..)) | None => return Err(tryhelp()),
    };
    let mut e = Entry {
        cmd,
        options: 0,
        proto: 0,
        vip: None,
        port: 0,
        fwmark: 0,
        v6: false,
        sched: None,
        persistent: None,
        netmask: None,
        ops: false,
        pe: false,
        sched_flags_arg: None,
        dest: None,
        fwd: Fwd::Dr,
        weight: 1,
        u_threshold: 0,
        l_threshold: 0,
        tun_type: TunType::Ipip,
        tun_port: 0,
        tun_csum: false,
        list: ListOpts::default(),
    };
    while let Some(item) = r.next_item() {
        let (tag, word, value) = match item {
            Item::Opt(t, w, v) => (t, w, v),
            Item::Bad(w, why) => return Err(AdminError::failed(format!("{w}: {why}"))),
        };
        option(&mut e, tag, &word, value.as_deref())?;
    }
    let mut leftovers = r.leftovers.into_iter();
    let mut set = None;
    if e.cmd == Cmd::Timeout {
        match (leftovers.next(), leftovers.next(), leftovers.next()) {
            (Some(a), Some(b), Some(c)) => {
                set = Some((timeout(&a, 0)?, timeout(&b, 0)?, timeout(&c, 0)?));
            }
            _ => return Err(AdminError::usage("--set option requires 3 timeout values")),
        }
    }
    if let Some(extra) = leftovers.next() {
        return Err(AdminError::usage(format!("unexpected argument {extra}")));
    }
    let mut flags = (SchedFlags::default(), false);
    if let Some(arg) = &e.sched_flags_arg {
        flags = sched_flags(e.sched.as_deref().unwrap_or("wlc"), arg)?;
    }
    generic_opt_check(e.cmd, e.options)?;
    build(&e, flags, set)
}

/// One option after the command (the second loop of `parse_options`).
fn option(e: &mut Entry, tag: Tag, word: &str, value: Option<&str>) -> Result<(), AdminError> {
    let v = value.unwrap_or("");
    match tag {
        Tag::Tcp | Tag::Udp | Tag::Sctp => {
            e.set(Opt::Service)?;
            e.proto = match tag {
                Tag::Tcp => ip_proto::TCP,
                Tag::Udp => ip_proto::UDP,
                _ => ip_proto::SCTP,
            };
            let (ip, port) = addr_port(v).ok_or_else(|| {
                AdminError::usage("illegal virtual server address[:port] specified")
            })?;
            e.vip = Some(ip);
            e.v6 = ip.is_ipv6();
            e.port = port.unwrap_or(0);
        }
        Tag::Fwmark => {
            e.set(Opt::Service)?;
            e.proto = ip_proto::TCP;
            e.v6 = false;
            e.fwmark = number(v, 1, i64::from(u32::MAX)).ok_or_else(|| {
                AdminError::usage(format!("invalid fwmark value `{v}' specified"))
            })?;
        }
        Tag::Scheduler => {
            e.set(Opt::Scheduler)?;
            e.sched = Some(v.to_owned());
        }
        Tag::Persistent => {
            e.set(Opt::Persistent)?;
            e.persistent = Some(match value {
                None => DEFAULT_PERSISTENT_S,
                Some(t) => timeout(t, 1)?,
            });
        }
        Tag::Netmask => {
            e.set(Opt::Netmask)?;
            e.netmask = Some(v.to_owned());
        }
        Tag::RealServer => {
            e.set(Opt::Server)?;
            let (ip, port) = addr_port(v)
                .ok_or_else(|| AdminError::usage("illegal real server address[:port] specified"))?;
            e.dest = Some((ip, port.unwrap_or(e.port)));
        }
        Tag::Ipip | Tag::Gatewaying | Tag::Masq => {
            e.set(Opt::Forward)?;
            e.fwd = match tag {
                Tag::Ipip => Fwd::Tunnel,
                Tag::Gatewaying => Fwd::Dr,
                _ => Fwd::Masq,
            };
        }
        Tag::Weight => {
            e.set(Opt::Weight)?;
            e.weight =
                number(v, 0, 65535).ok_or_else(|| AdminError::usage("illegal weight specified"))?;
        }
        Tag::UThreshold => {
            e.set(Opt::UThreshold)?;
            e.u_threshold = number(v, 0, i64::from(INT_MAX))
                .ok_or_else(|| AdminError::usage("illegal u_threshold specified"))?;
        }
        Tag::LThreshold => {
            e.set(Opt::LThreshold)?;
            e.l_threshold = number(v, 0, i64::from(INT_MAX))
                .ok_or_else(|| AdminError::usage("illegal l_threshold specified"))?;
        }
        Tag::Connection => e.set(Opt::Connection)?,
        Tag::Numeric => {
            e.set(Opt::Numeric)?;
            e.list.numeric = true;
        }
        Tag::McastInterface => e.set(Opt::Mcast)?,
        Tag::SyncId => {
            e.set(Opt::SyncId)?;
            number(v, 0, 255).ok_or_else(|| AdminError::usage("illegal syncid specified"))?;
        }
        Tag::Timeout => e.set(Opt::Timeout)?,
        Tag::Daemon => e.set(Opt::Daemon)?,
        Tag::Stats => {
            e.set(Opt::Stats)?;
            e.list.stats = true;
        }
        Tag::Rate => {
            e.set(Opt::Rate)?;
            e.list.rate = true;
        }
        Tag::Thresholds => {
            e.set(Opt::Thresholds)?;
            e.list.thresholds = true;
        }
        Tag::PersistentConn => {
            e.set(Opt::PersistentConn)?;
            e.list.persistent_conn = true;
        }
        Tag::NoSort => {
            e.set(Opt::NoSort)?;
            e.list.nosort = true;
        }
        Tag::Sort => {}
        Tag::Exact => {
            e.set(Opt::Exact)?;
            e.list.exact = true;
        }
        Tag::Ipv6 => {
            if e.fwmark == 0 {
                return Err(AdminError::usage("-6 used before -f"));
            }
            e.v6 = true;
        }
        Tag::Ops => {
            e.set(Opt::Ops)?;
            e.ops = true;
        }
        Tag::Pe => {
            e.set(Opt::Pe)?;
            e.pe = true;
        }
        Tag::SchedFlags => {
            e.set(Opt::SchedFlags)?;
            e.sched_flags_arg = Some(v.to_owned());
        }
        Tag::McastGroup => {
            e.set(Opt::McastGroup)?;
            let ok = match v.parse::<IpAddr>() {
                Ok(a) => a.is_multicast() && (a.is_ipv6() == v.contains(':')),
                Err(_) => false,
            };
            if !ok {
                let fam = if v.contains(':') { "IPv6" } else { "IPv4" };
                return Err(AdminError::usage(format!(
                    "invalid {fam} mcast-group `{v}'"
                )));
            }
        }
        Tag::McastPort => {
            e.set(Opt::McastPort)?;
            number(v, 1, 65535).ok_or_else(|| AdminError::usage("illegal mcast-port specified"))?;
        }
        Tag::McastTtl => {
            e.set(Opt::McastTtl)?;
            number(v, 1, 255).ok_or_else(|| AdminError::usage("illegal mcast-ttl specified"))?;
        }
        Tag::SyncMaxlen => {
            e.set(Opt::SyncMaxlen)?;
            number(v, 1, 65535 - 20 - 8)
                .ok_or_else(|| AdminError::usage("illegal sync-maxlen specified"))?;
        }
        Tag::TunInfo => {
            e.set(Opt::TunInfo)?;
            e.list.tun_info = true;
        }
        Tag::TunType => {
            e.set(Opt::TunType)?;
            e.tun_type = match v {
                "ipip" => TunType::Ipip,
                "gue" => TunType::Gue,
                "gre" => TunType::Gre,
                _ => return Err(AdminError::usage("illegal tunnel type specified")),
            };
        }
        Tag::TunPort => {
            e.set(Opt::TunPort)?;
            e.tun_port = number(v, 1, 65535)
                .ok_or_else(|| AdminError::usage("illegal tunnel port specified"))?
                as u16;
        }
        Tag::TunNocsum => e.set(Opt::TunNocsum)?,
        Tag::TunCsum => {
            e.set(Opt::TunCsum)?;
            e.tun_csum = true;
        }
        Tag::TunRemcsum => e.set(Opt::TunRemcsum)?,
        // A second command, -h or -v after the command.
        _ => return Err(AdminError::usage(format!("invalid option `{word}'"))),
    }
    Ok(())
}

/// `tunnel_opt_check` over `tunnel_types_v_options`.
fn tunnel_opt_check(e: &Entry) -> Result<(), AdminError> {
    // Columns: tun-port, tun-nocsum, tun-csum, tun-remcsum.
    let cols = [Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum];
    let (row, name): (&[u8; 4], &str) = match e.tun_type {
        TunType::Ipip => (b"xxxx", "ipip"),
        TunType::Gue => (b"+111", "gue"),
        TunType::Gre => (b"x11x", "gre"),
    };
    let mut last: Option<Opt> = None;
    for (rule, opt) in row.iter().zip(cols) {
        let n = OPT_NAMES[opt as usize];
        match (e.has(opt), rule) {
            (false, b'+') => {
                return Err(AdminError::usage(format!(
                    "You need to supply the '{n}' option for the '{name}' tunnel type"
                )))
            }
            (true, b'x') => {
                return Err(AdminError::usage(format!(
                    "Illegal '{n}' option with the '{name}' tunnel type"
                )))
            }
            (true, b'1') => match last {
                None => last = Some(opt),
                Some(l) => {
                    return Err(AdminError::usage(format!(
                    "The option '{n}' conflicts with the '{}' option in the '{name}' tunnel type",
                    OPT_NAMES[l as usize]
                )))
                }
            },
            _ => {}
        }
    }
    Ok(())
}

/// The checks of `process_options` after the table, then pmdlb's own, then
/// the typed command.
fn build(
    e: &Entry,
    (flags, flag3): (SchedFlags, bool),
    set: Option<(u32, u32, u32)>,
) -> Result<AdminCmd, AdminError> {
    let is_dest_cmd = matches!(e.cmd, Cmd::AddDest | Cmd::EditDest);
    check_service(e)?;
    if flags.mh_template && e.persistent.is_none() && matches!(e.cmd, Cmd::Add | Cmd::Edit) {
        return Err(AdminError::usage(
            "scheduler flag `mh-template' needs a persistent service (-p)",
        ));
    }
    let dest_port = dest_port(e);
    if is_dest_cmd {
        check_dest(e)?;
    }
    check_list(e)?;
    unsupported(e, flag3, is_dest_cmd)?;
    assemble(e, flags, set, dest_port)
}

/// `-A`/`-E`: port 0 only when persistent, `-o` only for UDP or fwmark.
fn check_service(e: &Entry) -> Result<(), AdminError> {
    if matches!(e.cmd, Cmd::Add | Cmd::Edit) {
        if e.fwmark == 0 && e.port == 0 && e.persistent.is_none() {
            return Err(AdminError::usage(
                "Zero port specified for non-persistent service",
            ));
        }
        if e.ops && e.fwmark == 0 && e.proto != ip_proto::UDP {
            return Err(AdminError::usage(
                "One-Packet Scheduling is only for UDP virtual services",
            ));
        }
    }
    Ok(())
}

/// The real server's port: DR and tunnel servers of an address service
/// listen on the service's port, whatever `-r` said.
fn dest_port(e: &Entry) -> u16 {
    let mut dest_port = e.dest.map_or(0, |d| d.1);
    if matches!(e.cmd, Cmd::AddDest | Cmd::EditDest | Cmd::DelDest) {
        // DR and tunnel servers listen on the service's port.
        if e.fwmark == 0 && e.fwd != Fwd::Masq {
            dest_port = e.port;
        }
    }
    dest_port
}

/// `-a`/`-e`: the address family and tunnel options.
fn check_dest(e: &Entry) -> Result<(), AdminError> {
    let dest_v6 = e.dest.is_some_and(|d| d.0.is_ipv6());
    if dest_v6 != e.v6 && e.fwd != Fwd::Tunnel {
        return Err(AdminError::usage(
            "Different address family is allowed only for tunneling servers",
        ));
    }
    let tun_opts = [
        Opt::TunType,
        Opt::TunPort,
        Opt::TunNocsum,
        Opt::TunCsum,
        Opt::TunRemcsum,
    ];
    if tun_opts.iter().any(|&o| e.has(o)) && e.fwd != Fwd::Tunnel {
        return Err(AdminError::usage(
            "Tunnel options conflict with forward method",
        ));
    }
    tunnel_opt_check(e)?;
    Ok(())
}

/// `-L`: the option combinations ipvsadm refuses.
fn check_list(e: &Entry) -> Result<(), AdminError> {
    if e.cmd == Cmd::List {
        let c_t_d = e.has(Opt::Connection) || e.has(Opt::Timeout) || e.has(Opt::Daemon);
        let s_r_t = e.has(Opt::Stats) || e.has(Opt::Rate) || e.has(Opt::Thresholds);
        if (c_t_d && s_r_t)
            || ((e.has(Opt::Timeout) || e.has(Opt::Daemon)) && e.has(Opt::PersistentConn))
        {
            return Err(AdminError::usage("options conflicts in the list command"));
        }
    }
    Ok(())
}

/// What ipvsadm accepts and pmdlb cannot do (after ipvsadm's own checks,
/// so a command ipvsadm refuses gets ipvsadm's message).
fn unsupported(e: &Entry, flag3: bool, is_dest_cmd: bool) -> Result<(), AdminError> {
    match e.cmd {
        Cmd::StartDaemon | Cmd::StopDaemon => {
            return Err(AdminError::usage(format!(
                "--{}: not supported by pmdlb admin: the sync daemon is configured in the [sync] section and runs with pmdlb (see -L --daemon)",
                e.cmd.name()
            )))
        }
        _ => {}
    }
    if e.pe {
        return Err(not_supported("--pe (persistence engines)"));
    }
    if flag3 {
        return Err(not_supported("scheduler flag `flag-3'"));
    }
    if is_dest_cmd {
        if e.fwd == Fwd::Masq {
            return Err(AdminError::usage(
                "-m (masquerading): not supported: pmdlb forwards by direct routing or tunnel (use -g or -i)",
            ));
        }
        if e.tun_type == TunType::Gre {
            return Err(not_supported(
                "--tun-type gre (pmdlb tunnels are ipip and gue)",
            ));
        }
        if e.has(Opt::TunRemcsum) {
            return Err(not_supported("--tun-remcsum"));
        }
        if e.dest.is_some_and(|d| d.0.is_ipv6() != e.v6) {
            return Err(not_supported(
                "a tunnel server of another address family than the service",
            ));
        }
    }
    Ok(())
}

/// The command, from options already checked.
fn assemble(
    e: &Entry,
    flags: SchedFlags,
    set: Option<(u32, u32, u32)>,
    dest_port: u16,
) -> Result<AdminCmd, AdminError> {
    let svc = match (e.vip, e.fwmark) {
        (_, m) if m != 0 => Some(ServiceSel::Fwmark { mark: m, v6: e.v6 }),
        (Some(vip), _) => Some(ServiceSel::Addr {
            proto: e.proto,
            vip,
            port: e.port,
        }),
        _ => None,
    };
    let need_svc = || svc.ok_or_else(tryhelp);
    let service_opts = || -> Result<ServiceOpts, AdminError> {
        let scheduler = scheduler(e.sched.as_deref().unwrap_or("wlc"))?;
        let full = if e.v6 { 128 } else { 32 };
        let prefix_len = match &e.netmask {
            None => full,
            Some(m) if e.v6 => m
                .parse::<u8>()
                .ok()
                .filter(|n| (1..=128).contains(n))
                .ok_or_else(|| AdminError::usage("illegal ipv6 netmask specified"))?,
            Some(m) => parse_netmask(m, false).map_err(|_| {
                AdminError::usage("illegal virtual server persistent mask specified")
            })?,
        };
        Ok(ServiceOpts {
            scheduler,
            sched_flags: flags,
            persistence: e.persistent.map(|timeout_s| Persistence {
                timeout_s,
                prefix_len,
            }),
            ops: e.ops,
        })
    };
    let server = || -> Result<ServerOpts, AdminError> {
        let (addr, _) = e.dest.ok_or_else(tryhelp)?;
        let forward = match e.fwd {
            Fwd::Tunnel => Forwarding::Tunnel(Tunnel {
                kind: if e.tun_type == TunType::Gue {
                    TunnelKind::Gue
                } else {
                    TunnelKind::Ipip
                },
                port: e.tun_port,
                csum: e.tun_csum,
            }),
            _ => Forwarding::Dr,
        };
        Ok(ServerOpts {
            addr,
            port: dest_port,
            forward,
            weight: e.weight,
            u_threshold: e.u_threshold,
            l_threshold: e.l_threshold,
        })
    };
    Ok(match e.cmd {
        Cmd::Add => AdminCmd::Edit(Edit::AddService {
            svc: need_svc()?,
            opts: service_opts()?,
        }),
        Cmd::Edit => AdminCmd::Edit(Edit::EditService {
            svc: need_svc()?,
            opts: service_opts()?,
        }),
        Cmd::Del => AdminCmd::Edit(Edit::DelService { svc: need_svc()? }),
        Cmd::AddDest => AdminCmd::Edit(Edit::AddServer {
            svc: need_svc()?,
            server: server()?,
        }),
        Cmd::EditDest => AdminCmd::Edit(Edit::EditServer {
            svc: need_svc()?,
            server: server()?,
        }),
        Cmd::DelDest => AdminCmd::Edit(Edit::DelServer {
            svc: need_svc()?,
            addr: e.dest.ok_or_else(tryhelp)?.0,
            port: dest_port,
        }),
        Cmd::Flush => AdminCmd::Edit(Edit::Clear),
        Cmd::List => AdminCmd::List {
            what: if e.has(Opt::Connection) {
                ListWhat::Connections
            } else if let Some(s) = svc {
                ListWhat::Service(s)
            } else if e.has(Opt::Timeout) {
                ListWhat::Timeouts
            } else if e.has(Opt::Daemon) {
                ListWhat::Daemon
            } else {
                ListWhat::All
            },
            opts: e.list,
        },
        Cmd::Zero => AdminCmd::Zero(svc),
        Cmd::Timeout => {
            let (tcp, tcpfin, udp) = set.ok_or_else(tryhelp)?;
            AdminCmd::SetTimeouts { tcp, tcpfin, udp }
        }
        Cmd::Save => AdminCmd::Save {
            numeric: e.list.numeric,
        },
        Cmd::Restore => AdminCmd::Restore,
        Cmd::StartDaemon | Cmd::StopDaemon => return Err(tryhelp()),
    })
}

#[cfg(test)]
#[path = "args_tests.rs"]
mod tests;
