//! The `pmdlb` command line: `run`, `check`, `ctl` and `admin`.
//!
//! `pmdlb admin [--config FILE] ARGS…` takes ipvsadm's command line: every
//! word after the optional `--config FILE` goes to the ipvsadm parser as it
//! is (no `--` needed). Without `--config`, `PMDLB_CONFIG` names the
//! instance's config; without either, the instance with file prefix
//! `pmdlb`. Invoked as `ipvsadm` (a symlink, see
//! scripts/install-ipvsadm-link.sh) the binary behaves as `pmdlb admin`.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use pmdlb::control::admin::{self, AdminCmd};
use pmdlb::control::config::{Config, ConfigError, Warning};
use pmdlb::control::{ctl, run, summary};

/// Exit code for an invalid configuration or command line (EX_CONFIG).
const EXIT_CONFIG: u8 = 78;
/// Exit code for a failure to start or a runtime failure.
const EXIT_FAILURE: u8 = 1;

/// pmdlb — an IPVS-style direct-routing load balancer on DPDK.
///
/// Start with `pmdlb check --config FILE` to validate a configuration and
/// see what it defines, then `pmdlb run --config FILE`. See
/// dpdk-config/reference.toml for every key.
#[derive(Parser, Debug)]
#[command(name = "pmdlb", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start the forwarder (needs root, hugepages or no_huge, and the NICs).
    ///
    /// EAL options come from the config's [eal] section; anything after
    /// `--` is appended. Stops cleanly on SIGINT/SIGTERM (exit 0).
    Run {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// EAL core list ("0-2,4"), replacing the config's [eal] cores.
        #[arg(long, conflicts_with = "coremask")]
        lcores: Option<String>,
        /// EAL core mask ("0x7"), replacing the config's [eal] cores.
        #[arg(long)]
        coremask: Option<String>,
        /// Seconds between statistics lines (0 = off); overrides
        /// workers.stats_interval_s.
        #[arg(long)]
        stats_interval: Option<u32>,
        /// Extra EAL arguments.
        #[arg(last = true)]
        eal: Vec<String>,
    },
    /// Validate a configuration without touching any NIC and print a summary
    /// of services, mark rules and real servers.
    Check {
        /// Configuration file (TOML).
        #[arg(short, long)]
        config: PathBuf,
        /// Print only errors and warnings.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Send a command to a running pmdlb: stats | servers [--stats [--exact] | --rate] |
    /// weight SERVICE SERVER WEIGHT | remove SERVICE SERVER | reload | status | drain |
    /// undrain | stop (drain withdraws the VIP routes of [announce] and keeps forwarding).
    ///
    /// SERVICE is tcp:VIP:PORT, udp:VIP:PORT, sctp:VIP:PORT or fwmark:N.
    Ctl {
        /// The running instance's configuration (for its file prefix).
        #[arg(short, long, required_unless_present = "socket")]
        config: Option<PathBuf>,
        /// Or the control socket path directly.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The command words.
        #[arg(required = true, num_args = 1.., trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// ipvsadm's command line against a running pmdlb:
    /// `pmdlb admin [--config FILE] -A -t VIP:PORT -s rr`, `pmdlb admin -Ln`, …
    ///
    /// Everything after the optional --config FILE is ipvsadm's argument
    /// vector; `pmdlb admin -h` shows what is supported. PMDLB_CONFIG names
    /// the config when --config is absent.
    Admin {
        /// ipvsadm's arguments (after an optional `--config FILE`).
        #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// `pmdlb admin`: splits off `--config FILE` (or `--config=FILE`), parses
/// the rest as ipvsadm does and hands a valid command to the client.
fn admin_main(mut args: Vec<String>) -> ExitCode {
    let mut config = None;
    if args.first().is_some_and(|a| a == "--config") && args.len() >= 2 {
        config = Some(PathBuf::from(args.remove(1)));
        args.remove(0);
    } else if let Some(c) = args.first().and_then(|a| a.strip_prefix("--config=")) {
        config = Some(PathBuf::from(c));
        args.remove(0);
    }
    let config = config.or_else(|| std::env::var_os("PMDLB_CONFIG").map(PathBuf::from));
    let cmd = match admin::args::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e.msg);
            return ExitCode::from(e.code);
        }
    };
    let stdin = if cmd == AdminCmd::Restore {
        let mut body = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut body) {
            eprintln!("cannot read the rules from standard input: {e}");
            return ExitCode::from(admin::args::EXIT_FAILED);
        }
        Some(body)
    } else {
        None
    };
    admin::client::run(config, cmd, stdin)
}

fn print_warnings(w: &[Warning]) {
    for w in w {
        eprintln!("{w}");
    }
}

/// Loads a config, applying a core override by rewriting the [eal] table
/// before validation, so the override is validated like the file.
fn load(
    path: &PathBuf,
    lcores: Option<&str>,
    coremask: Option<&str>,
) -> Result<(Config, Vec<Warning>), ConfigError> {
    if lcores.is_none() && coremask.is_none() {
        return Config::load(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let mut doc: toml::Table = match text.parse() {
        Ok(d) => d,
        // Let the normal loader report the syntax error with its position.
        Err(_) => return Config::load(path),
    };
    let eal = doc
        .entry("eal")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = eal.as_table_mut() {
        t.remove("lcores");
        t.remove("coremask");
        t.remove("main_lcore");
        if let Some(l) = lcores {
            t.insert("lcores".into(), toml::Value::String(l.into()));
        }
        if let Some(m) = coremask {
            t.insert("coremask".into(), toml::Value::String(m.into()));
        }
    }
    Config::from_str(
        &toml::to_string(&doc).unwrap_or(text),
        &path.display().to_string(),
    )
}

fn main() -> ExitCode {
    let mut argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Invoked as `ipvsadm`, or as `pmdlb admin …`: ipvsadm's own parser,
    // not clap (ipvsadm's -h, -c, -v must reach it untouched).
    let argv0 = argv.first().map(|a| {
        Path::new(a)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    });
    if argv0.flatten().as_deref() == Some("ipvsadm") {
        return admin_main(argv.split_off(1));
    }
    if argv.get(1).is_some_and(|a| a == "admin") {
        return admin_main(argv.split_off(2));
    }
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Admin { args } => admin_main(args),
        Cmd::Check { config, quiet } => match Config::load(&config) {
            Ok((cfg, warnings)) => {
                print_warnings(&warnings);
                if !quiet {
                    print!("{}", summary::summary(&cfg));
                }
                println!("{}: configuration is valid", config.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Cmd::Run {
            config,
            lcores,
            coremask,
            stats_interval,
            eal,
        } => {
            let (cfg, warnings) = match load(&config, lcores.as_deref(), coremask.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            print_warnings(&warnings);
            let (path, lc, cm) = (config.clone(), lcores.clone(), coremask.clone());
            let reload = run::Reloader(std::sync::Arc::new(move || {
                load(&path, lc.as_deref(), cm.as_deref())
            }));
            let opts = run::RunOptions {
                extra_eal: eal,
                stats_interval_s: stats_interval,
                reload: Some(reload),
            };
            match run::run(&cfg, &opts) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pmdlb: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
        Cmd::Ctl {
            config,
            socket,
            command,
        } => {
            let path = match (socket, config) {
                (Some(s), _) => s,
                (None, Some(c)) => match Config::file_prefix_of(&c) {
                    Ok(prefix) => ctl::socket_path(&prefix),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(EXIT_CONFIG);
                    }
                },
                (None, None) => {
                    eprintln!("pmdlb ctl: give --config FILE or --socket PATH");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match ctl::request(&path, &command.join(" ")) {
                Ok(answer) => {
                    print!("{}", answer.body);
                    if answer.status != 0 {
                        ExitCode::from(EXIT_FAILURE)
                    } else {
                        ExitCode::SUCCESS
                    }
                }
                Err(e) => {
                    eprintln!(
                        "pmdlb ctl: cannot reach {}: {e} (is pmdlb running?)",
                        path.display()
                    );
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}
