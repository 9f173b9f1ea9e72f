//! `pmdlb admin` on the client side, and the wire encoding both sides use.
//!
//! **Request** (one line over the control socket, [`crate::control::ctl::request`]):
//!
//! ```text
//! admin US ARG US ARG ...            [GS LINE RS LINE ...]
//! ```
//!
//! `US` is 0x1F (unit separator), `GS` 0x1D, `RS` 0x1E. The words are the
//! command's canonical argument vector ([`AdminCmd::to_args`]): defaults
//! resolved, so `parse` on the server gives back the same [`AdminCmd`].
//! For `-R` the group after `GS` carries the restore input, already
//! checked by [`parse_restore`] on the client, as canonical lines (one per
//! edit, words separated by spaces), separated by `RS`. No newline appears
//! in a request. [`decode_request`] reverses it.
//!
//! **Answer**: the control socket's status line and body
//! ([`crate::control::ctl::Answer`]): status 0 and what ipvsadm would print
//! on standard output, or the exit status ipvsadm would give and what it
//! would print on standard error. [`answer`] builds it. A status-0 body
//! may end with notes for standard error after a `GS` (`-L -c` when a
//! listing is truncated or a worker did not report in time;
//! [`answer_with_notes`]), so standard output stays exactly ipvsadm's.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::control::admin::args::{self, AdminCmd, AdminError, Edit, EXIT_FAILED};
use crate::control::admin::format;
use crate::control::admin::rules::parse_restore;
use crate::control::config::Config;
use crate::control::ctl;

const US: char = '\u{1f}';
const GS: char = '\u{1d}';
const RS: char = '\u{1e}';

/// The file prefix of an instance started without one in its config.
pub const DEFAULT_FILE_PREFIX: &str = "pmdlb";

/// A decoded admin request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminRequest {
    /// The command.
    pub cmd: AdminCmd,
    /// For `-R`: the edits to apply, in order.
    pub restore: Option<Vec<Edit>>,
}

/// Encodes a request line (see the module doc).
pub fn encode_request(cmd: &AdminCmd, restore: Option<&[Edit]>) -> String {
    let mut s = String::from("admin");
    for a in cmd.to_args() {
        s.push(US);
        s.push_str(&a);
    }
    if let Some(edits) = restore {
        s.push(GS);
        let lines: Vec<String> = edits.iter().map(|e| e.to_args().join(" ")).collect();
        s.push_str(&lines.join(&RS.to_string()));
    }
    s
}

/// Decodes a request line: `None` if it is not an admin request (another
/// `pmdlb ctl` command), else the command or why it is not one.
pub fn decode_request(line: &str) -> Option<Result<AdminRequest, AdminError>> {
    let rest = line.strip_prefix("admin")?;
    if !(rest.is_empty() || rest.starts_with(US) || rest.starts_with(GS)) {
        return None;
    }
    let (argv, body) = match rest.split_once(GS) {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let words: Vec<String> = argv
        .split(US)
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    Some((|| {
        let cmd = args::parse(&words)?;
        let restore = match (body, &cmd) {
            (Some(b), AdminCmd::Restore) => Some(parse_restore(&b.replace(RS, "\n"))?),
            (None, AdminCmd::Restore) => Some(Vec::new()),
            (Some(_), _) => {
                return Err(AdminError::failed(
                    "restore input with a command other than -R",
                ))
            }
            (None, _) => None,
        };
        Ok(AdminRequest { cmd, restore })
    })())
}

/// The control socket's answer for a result.
pub fn answer(result: Result<String, AdminError>) -> ctl::Answer {
    match result {
        Ok(text) => ctl::Answer::ok(text),
        Err(e) => ctl::Answer {
            status: e.code,
            body: format!("{}\n", e.msg.trim_end_matches('\n')),
        },
    }
}

/// A status-0 answer: `text` for standard output, then `notes` (lines,
/// if any) for standard error.
pub fn answer_with_notes(text: String, notes: &[String]) -> ctl::Answer {
    let mut body = text;
    if !notes.is_empty() {
        body.push(GS);
        for n in notes {
            body.push_str(n);
            body.push('\n');
        }
    }
    ctl::Answer::ok(body)
}

fn fail(e: &AdminError) -> ExitCode {
    eprintln!("{}", e.msg);
    ExitCode::from(e.code)
}

/// Runs one admin command against the instance `config` describes (its
/// `eal.file_prefix`; without a config, the default prefix `pmdlb`).
/// `-h` and `-v` are answered locally; `-R` needs `stdin_for_restore`.
pub fn run(config: Option<PathBuf>, cmd: AdminCmd, stdin_for_restore: Option<String>) -> ExitCode {
    match cmd {
        AdminCmd::Help => {
            print!("{}", format::usage());
            return ExitCode::SUCCESS;
        }
        AdminCmd::Version => {
            print!("{}", format::version());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    let restore = match (&cmd, stdin_for_restore) {
        (AdminCmd::Restore, Some(body)) => match parse_restore(&body) {
            Ok(edits) => Some(edits),
            Err(e) => return fail(&e),
        },
        (AdminCmd::Restore, None) => Some(Vec::new()),
        _ => None,
    };
    let path = match &config {
        Some(c) => match Config::file_prefix_of(c) {
            Ok(prefix) => ctl::socket_path(&prefix),
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::from(EXIT_FAILED);
            }
        },
        None => ctl::socket_path(DEFAULT_FILE_PREFIX),
    };
    let line = encode_request(&cmd, restore.as_deref());
    match ctl::request(&path, &line) {
        Ok(a) if a.status == 0 => {
            let (text, notes) = a.body.split_once(GS).unwrap_or((&a.body, ""));
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            eprint!("{notes}");
            ExitCode::SUCCESS
        }
        Ok(a) => {
            eprint!("{}", a.body);
            ExitCode::from(a.status)
        }
        Err(e) => fail(&AdminError::failed(format!(
            "Can't reach pmdlb at {}: {e}\nIs pmdlb running (pmdlb run --config FILE)?",
            path.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn request_round_trip() {
        for line in [
            "-A -t 10.0.0.1:80 -s rr -p 300 -M 255.255.255.0",
            "-a -f 7 -6 -r [fd00::2]:0 -i -w 3 --tun-type gue --tun-port 6080 --tun-csum",
            "-L -n --stats --exact",
            "-L -c",
            "--set 900 120 300",
            "-Z",
            "-S -n",
        ] {
            let cmd = args::parse(&argv(line)).unwrap();
            let wire = encode_request(&cmd, None);
            assert!(!wire.contains('\n'));
            let back = decode_request(&wire).unwrap().unwrap();
            assert_eq!(back.cmd, cmd, "{line}");
            assert_eq!(back.restore, None);
        }
    }

    #[test]
    fn restore_request_round_trip() {
        let edits =
            parse_restore("-A -u 10.0.0.1:53 -s rr -o\n-a -u 10.0.0.1:53 -r 10.0.1.1 -w 0\n")
                .unwrap();
        let wire = encode_request(&AdminCmd::Restore, Some(&edits));
        assert!(!wire.contains('\n'));
        let back = decode_request(&wire).unwrap().unwrap();
        assert_eq!(back.cmd, AdminCmd::Restore);
        assert_eq!(back.restore.as_deref(), Some(&edits[..]));
    }

    #[test]
    fn other_ctl_commands_are_not_admin() {
        assert_eq!(decode_request("stats"), None);
        assert_eq!(decode_request("administer"), None);
        let bad = decode_request("admin\u{1f}-Q").unwrap().unwrap_err();
        assert_eq!(bad.code, EXIT_FAILED);
    }

    #[test]
    fn answers() {
        let a = answer(Ok("IP Virtual Server\n".into()));
        assert_eq!((a.status, a.body.as_str()), (0, "IP Virtual Server\n"));
        let e = answer(Err(AdminError::failed("No such service")));
        assert_eq!((e.status, e.body.as_str()), (255, "No such service\n"));
        let n = answer_with_notes("IPVS connection entries\n".into(), &["truncated".into()]);
        assert_eq!(
            (n.status, n.body.as_str()),
            (0, "IPVS connection entries\n\u{1d}truncated\n")
        );
        let plain = answer_with_notes("x\n".into(), &[]);
        assert_eq!(plain.body, "x\n");
    }
}
