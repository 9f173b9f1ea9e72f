//! `pmdlb admin` (ipvsadm's command line) against a running instance on
//! `net_null`: an ipvsadm-save file with every kind of rule imports and
//! saves back identically, a save of one instance restores into a fresh one
//! as the same rule set, bad commands and rules change nothing and exit as
//! ipvsadm does, the binary answers as `ipvsadm` through a symlink, and a
//! reload keeps admin changes to services the file does not change.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::running::Running;
use common::scratch;

fn config(prefix: &str, services: &str) -> String {
    format!(
        r#"[eal]
lcores = "0-1"
hugepages = false
memory_mb = 128
file_prefix = "{prefix}"
vdevs = ["net_null0"]

[ports]
rx = "net_null0"
rx_desc = 256
tx_desc = 256
tx_addr = "10.0.1.254"
tx_addr6 = "fd00:1::fe"

[workers]
stats_interval_s = 0

[tables]
connections = 4096
persistence = 4096
max_services = 64
max_servers = 256

{services}"#
    )
}

fn start(tag: &str, services: &str) -> Running {
    let dir = scratch(tag);
    let prefix = common::file_prefix(tag);
    let cfg = dir.join("lb.toml");
    std::fs::write(&cfg, config(&prefix, services)).unwrap();
    let mut r = Running::spawn(cfg, prefix, dir);
    r.wait_until(Duration::from_secs(20), "control socket up", |r| {
        r.ctl(&["servers"])
    });
    r
}

/// `pmdlb admin --config CFG args…` with `stdin`.
fn admin_in(cfg: &Path, args: &str, stdin: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pmdlb"))
        .args(["admin", "--config"])
        .arg(cfg)
        .args(args.split_whitespace())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    common::running::wait_output(c, Duration::from_secs(20), args)
}

fn admin(cfg: &Path, args: &str) -> Output {
    admin_in(cfg, args, "")
}

fn ok(cfg: &Path, args: &str) -> String {
    let o = admin(cfg, args);
    assert!(
        o.status.success(),
        "admin {args}: {:?}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

/// A hand-written ipvsadm-save file: fwmark, port-0 persistence with a
/// mask, IPv6, -b sh-port, -o, weight 0, thresholds, a gue tunnel server.
const RULES: &str = "\
# written by hand, in ipvsadm-save -n syntax
-A -f 1 -s rr -p 360
-a -f 1 -r 10.0.1.1:0 -g -w 1
-a -f 1 -r 10.0.1.2:0 -g -w 0
ipvsadm -A -t 10.0.0.1:0 -s sh -b sh-port -p 120 -M 255.255.255.0
-a -t 10.0.0.1:0 -r 10.0.1.3:0 -g -w 2 -x 100 -y 50
-A -u 10.0.0.2:53 -s rr -o
-a -u 10.0.0.2:53 -r 10.0.1.4:53 -g -w 3
-A -t [fd00::1]:443 -s wlc
-a -t [fd00::1]:443 -r [fd00:1::5]:443 -g -w 1
-a -t [fd00::1]:443 -r [fd00:1::6]:443 -i -w 1 --tun-type gue --tun-port 6080
";

/// What ipvsadm -S -n prints for RULES: ipvsadm's save order (services
/// sorted by fwmark, family, protocol, address, port: `ipvs_cmp_services`;
/// servers by address), its rule syntax (`print_service_entry` with
/// FMT_RULE: scheduler, then `-p`, `-M` only when not /32, `-o`, `-b`;
/// servers `-r ADDR:PORT`, the method, `-w`; thresholds are not saved), the
/// DR port forced to the service's.
fn saved() -> String {
    [
        "-A -t 10.0.0.1:0 -s sh -p 120 -M 255.255.255.0 -b sh-port",
        "-a -t 10.0.0.1:0 -r 10.0.1.3:0 -g -w 2",
        "-A -u 10.0.0.2:53 -s rr -o",
        "-a -u 10.0.0.2:53 -r 10.0.1.4:53 -g -w 3",
        "-A -t [fd00::1]:443 -s wlc",
        "-a -t [fd00::1]:443 -r [fd00:1::5]:443 -g -w 1",
        "-a -t [fd00::1]:443 -r [fd00:1::6]:443 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum",
        "-A -f 1 -s rr -p 360",
        "-a -f 1 -r 10.0.1.1:0 -g -w 1",
        "-a -f 1 -r 10.0.1.2:0 -g -w 0",
    ]
    .map(|l| format!("{l}\n"))
    .concat()
}

#[test]
fn rules_import_save_restore_and_bad_input() {
    let a = start("admin-a", "");
    let cfg = a.cfg().to_path_buf();
    // An instance may start with no services at all.
    let empty = ok(&cfg, "-L -n");
    assert_eq!(
        empty,
        "IP Virtual Server version 1.2.1 (size=4096)\n\
         Prot LocalAddress:Port Scheduler Flags\n  \
         -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
    );
    let o = admin_in(&cfg, "-R", RULES);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = ok(&cfg, "-S -n");
    let want = saved();
    if s != want {
        panic!("-S -n:\n{s}\nwanted:\n{want}");
    }
    // The thresholds were imported (-S does not save them; --thresholds
    // lists them: print_service_entry's "%-10u %-10u" columns).
    let th = ok(&cfg, "-L -n --thresholds");
    let line = format!(
        "  -> {:<28} {:<10} {:<10} {:<10} {:<10}",
        "10.0.1.3:0", 100, 50, 0, 0
    );
    assert!(th.lines().any(|l| l == line), "{th}");

    // Bad input changes nothing and exits as ipvsadm does.
    let cases: [(&str, &str, i32); 6] = [
        ("-a -f 1 -r 10.0.1.9 -w 70000", "", 2),
        ("-A -t 10.0.0.9:80 -s nosuch", "", 255),
        ("-D -t 10.0.0.99:80", "", 255),
        ("-a -f 1 -r 10.0.1.1", "", 255),
        // An unknown option: popt's error, tryhelp_exit(-1) in ipvsadm.c.
        ("-Q", "", 255),
        ("-R", "-A -t 10.0.0.8:80 -s rr\n-a -t 10.0.0.8:80 -r 10.0.1.8\n-a -t 10.0.0.8:80 -r 10.0.1.8 -w x\n", 2),
    ];
    for (args, input, want) in cases {
        let o = admin_in(&cfg, args, input);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), want, "admin {args}: {err}");
        assert!(!err.trim().is_empty(), "admin {args}: no message");
        assert_eq!(ok(&cfg, "-S -n"), saved(), "admin {args} changed the rules");
    }
    let o = admin_in(
        &cfg,
        "-R",
        "-A -t 10.0.0.8:80 -s rr\n-a -t 10.0.0.8:80 -r 10.0.1.8 -w x\n",
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("line 2"),
        "{o:?}"
    );

    // Through an `ipvsadm` symlink with PMDLB_CONFIG.
    let link = a.dir().join("ipvsadm");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_pmdlb"), &link).unwrap();
    let o = Command::new(&link)
        .args(["-S", "-n"])
        .env("PMDLB_CONFIG", &cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), saved());

    // A save restores into a fresh instance as the same rule set.
    let b = start("admin-b", "");
    let o = admin_in(b.cfg(), "-R", &ok(&cfg, "-S -n"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(ok(b.cfg(), "-S -n"), saved());
    // -C empties it; the restore brings it back.
    ok(b.cfg(), "-C");
    assert_eq!(ok(b.cfg(), "-S -n"), "");
    let o = admin_in(b.cfg(), "-R", &saved());
    assert!(o.status.success());
    assert_eq!(ok(b.cfg(), "-S -n"), saved());
    for r in [a, b] {
        let st = r.stop();
        assert!(st.status.success(), "{}", st.text());
        assert!(st.stdout.contains("unaccounted=0"), "{}", st.text());
        assert!(st.stdout.contains("back in the pool"), "{}", st.text());
    }
}

#[test]
fn reload_keeps_admin_changes_unless_the_file_changes_the_service() {
    let svc = |rs: &str| {
        format!(
            "[[service]]\nvip = \"10.0.0.1\"\nport = 80\nscheduler = \"rr\"\n[[service.server]]\naddr = \"10.0.1.1\"\n\
             [[service]]\nvip = \"10.0.0.2\"\nport = 80\nscheduler = \"rr\"\n[[service.server]]\naddr = \"{rs}\"\n"
        )
    };
    let r = start("admin-reload", &svc("10.0.1.2"));
    let cfg: PathBuf = r.cfg().to_path_buf();
    ok(&cfg, "-e -t 10.0.0.1:80 -r 10.0.1.1 -w 5");
    ok(&cfg, "-A -t 10.0.0.3:80 -s sh");
    // The file changes the second service and [tables] (restart only).
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("addr = \"10.0.1.2\"", "addr = \"10.0.1.7\"")
        .replace("connections = 4096", "connections = 8192");
    std::fs::write(&cfg, text).unwrap();
    let o = ctl_reload(&cfg);
    let ans = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{o:?}");
    assert!(
        ans.contains("[tables] changed in the file: needs a restart"),
        "{ans}"
    );
    assert!(ans.contains("server 10.0.1.7 added"), "{ans}");
    assert_eq!(
        ok(&cfg, "-S -n"),
        "-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1:80 -g -w 5\n\
         -A -t 10.0.0.2:80 -s rr\n-a -t 10.0.0.2:80 -r 10.0.1.7:80 -g -w 1\n\
         -A -t 10.0.0.3:80 -s sh\n"
    );
    // An invalid file changes nothing and says why, as `pmdlb check`.
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("[[service]]\nvip = \"10.0.0.4\"\nport = 99999\n");
    std::fs::write(&cfg, &text).unwrap();
    let o = ctl_reload(&cfg);
    assert!(!o.status.success());
    let check = Command::new(env!("CARGO_BIN_EXE_pmdlb"))
        .args(["check", "-q", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let problem = String::from_utf8_lossy(&check.stderr);
    let key = problem
        .lines()
        .find(|l| l.contains("port"))
        .expect("check names the port")
        .trim()
        .to_owned();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&key),
        "{o:?}\n{problem}"
    );
    assert!(ok(&cfg, "-S -n").contains("-A -t 10.0.0.3:80 -s sh"));
    let st = r.stop();
    assert!(st.status.success(), "{}", st.text());
}

fn ctl_reload(cfg: &Path) -> Output {
    let c = Command::new(env!("CARGO_BIN_EXE_pmdlb"))
        .args(["ctl", "--config"])
        .arg(cfg)
        .arg("reload")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::running::wait_output(c, Duration::from_secs(20), "ctl reload")
}
