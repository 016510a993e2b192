//! `fsbench supervise -- PROGRAM ARGS...`: the far end of a remote server's
//! ssh session. It runs the server in a process group of its own, passes its
//! stdout through (the coordinator reads `LISTENING` from it; stderr goes
//! straight to ssh, hence to the coordinator's server log), and obeys lines
//! on its stdin:
//!
//! - `START`: from now on, measure the server's process tree (CPU from
//!   `/proc`, PSS sampled as at home);
//! - `END`: print `SUPERVISE MEASURED {json}` (CPU-seconds since `START`,
//!   the PSS peak and what sampling cost, VmHWM summed);
//! - `TERM`: SIGTERM to the server (with `--signal-leader`) or to its group;
//! - `KILL`, or the end of stdin (the ssh session is gone): SIGKILL to the
//!   whole group. Nothing it started outlives the session;
//! - `PING`: nothing but a sign of life; with `--heartbeat SECS`, no line for
//!   that long counts as the end of stdin (a coordinator cut off by the
//!   network, which sshd may take hours to notice).
//!
//! With `--port-on HOST` it first takes a free port on HOST, puts it in
//! place of `{port}` in the arguments and prints `SUPERVISE PORT N` (a
//! template server needs its port given). Once the server has exited and its
//! group is gone, `after` runs (the sweep cleans the store there), then it
//! prints `SUPERVISE EXIT STATUS` and returns.

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::launch::measure::{self, PssPeak, PssSampler, Watch};
use crate::sys;

/// The prefix of supervise's own lines on stdout.
pub const PREFIX: &str = "SUPERVISE ";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuperviseOpts {
    /// Take a free port on this address for `{port}`.
    pub port_on: Option<String>,
    /// TERM goes to the server alone (ours stops its own workers), not its group.
    pub signal_leader: bool,
    /// The server's command line.
    pub program: Vec<String>,
    /// Kill the server when no line comes on stdin for this long (the
    /// coordinator sends `PING` lines): a coordinator cut off by the network
    /// ends no session that sshd notices.
    pub heartbeat: Option<Duration>,
}

/// What a remote server's tree used between `START` and `END`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub cpu_s: f64,
    pub pss: PssPeak,
    pub vmhwm_kib: u64,
}

enum Event {
    Line(String),
    Eof,
    Exited(io::Result<ExitStatus>),
}

/// `0` for an exit code of 0, `exit 3`, `signal 9`.
pub fn status_word(st: &ExitStatus) -> String {
    match (st.code(), st.signal()) {
        (Some(c), _) => c.to_string(),
        (None, Some(s)) => format!("signal-{s}"),
        _ => "unknown".into(),
    }
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{PREFIX}{line}");
    let _ = out.flush();
}

/// Runs the server of `opts` until it exits; then `after`. Returns its
/// exit status.
pub fn run(opts: &SuperviseOpts, after: impl FnOnce()) -> io::Result<ExitStatus> {
    let Some((program, args)) = opts.program.split_first() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no program to run",
        ));
    };
    let mut args = args.to_vec();
    if let Some(host) = &opts.port_on {
        let port = TcpListener::bind((host.as_str(), 0))?.local_addr()?.port();
        for a in &mut args {
            *a = a.replace("{port}", &port.to_string());
        }
        say(&format!("PORT {port}"));
    }
    let mut cmd = Command::new(program);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0);
    sys::die_with_parent(&mut cmd, sys::SIGKILL);
    let mut child = cmd.spawn()?;
    let pid = child.id();
    // Whatever way this returns, nothing of the group is left running.
    let _group = KillGroup(pid);
    let stdout = child.stdout.take().expect("piped stdout");
    let copier = std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = Vec::new();
        while r
            .read_until(b'\n', &mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            let mut out = io::stdout().lock();
            let _ = out.write_all(&line);
            let _ = out.flush();
            line.clear();
        }
    });
    let (tx, rx) = mpsc::channel();
    let t = tx.clone();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines() {
            match line {
                Ok(l) => {
                    if t.send(Event::Line(l)).is_err() {
                        return;
                    }
                }
                Err(_) => break,
            }
        }
        let _ = t.send(Event::Eof);
    });
    std::thread::spawn(move || {
        let _ = tx.send(Event::Exited(child.wait()));
    });

    let mut measuring: Option<(u64, PssSampler)> = None;
    let silence = opts.heartbeat.unwrap_or(Duration::MAX);
    let status = loop {
        let ev = match rx.recv_timeout(silence) {
            Ok(ev) => ev,
            Err(mpsc::RecvTimeoutError::Timeout) => Event::Eof,
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(io::Error::other("lost track of the server"))
            }
        };
        match ev {
            Event::Line(l) => match l.trim() {
                "START" => {
                    let cpu0 = measure::tree_cpu_ticks(pid);
                    let sampler = PssSampler::start(vec![Watch::Tree(pid)])?;
                    measuring = Some((cpu0, sampler));
                    say("STARTED");
                }
                "END" => {
                    let m = match measuring.take() {
                        Some((cpu0, sampler)) => {
                            let cpu = measure::tree_cpu_ticks(pid).saturating_sub(cpu0);
                            Measured {
                                pss: sampler.finish(),
                                cpu_s: measure::ticks_to_secs(cpu),
                                vmhwm_kib: measure::tree_peak_rss_kib(pid),
                            }
                        }
                        None => Measured::default(),
                    };
                    say(&format!(
                        "MEASURED {}",
                        serde_json::to_string(&m).unwrap_or_default()
                    ));
                }
                "TERM" if opts.signal_leader => {
                    let _ = sys::kill(pid, sys::SIGTERM);
                }
                "TERM" => {
                    let _ = sys::kill_group(pid, sys::SIGTERM);
                }
                "KILL" => {
                    let _ = sys::kill_group(pid, sys::SIGKILL);
                }
                _ => {}
            },
            Event::Eof => {
                let _ = sys::kill_group(pid, sys::SIGKILL);
            }
            Event::Exited(st) => break st?,
        }
    };
    drop(measuring);
    // What the server left in its group goes too.
    let _ = sys::kill_group(pid, sys::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !measure::group_members(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Its stdout ends with the group (bounded: a process it moved out of
    // its group could hold it open).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !copier.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    after();
    say(&format!("EXIT {}", status_word(&status)));
    Ok(status)
}

/// SIGKILL to a process group when dropped.
struct KillGroup(u32);

impl Drop for KillGroup {
    fn drop(&mut self) {
        let _ = sys::kill_group(self.0, sys::SIGKILL);
    }
}
