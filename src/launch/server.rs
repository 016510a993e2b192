//! A server started for one scenario, ours or any other.
//!
//! - Ours (`fsbench serve --port 0`) is up when it has printed `LISTENING`
//!   and accepts a connection; its stderr goes to the run's server log.
//! - A template server (`sh -c TEMPLATE`, in a process group of its own, on
//!   a free port) is up when the port accepts a connection and a `LIST` is
//!   answered, within the start timeout; its stdout and stderr go to the log,
//!   each line tagged with the scenario.
//!
//! A server that exits or never gets ready is killed (its whole group) and
//! the error says why, with the last lines it wrote. Stopping is SIGTERM,
//! then SIGKILL after the drain timeout; for a group, every process of it is
//! gone before `stop` returns.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError};
use crate::launch::process::Spawned;
use crate::launch::{measure, Launcher, ServerKind, ServerSpec};
use crate::sys;

/// Lines of a server's output kept for an error message.
const TAIL_LINES: usize = 5;

pub struct ServerHandle {
    proc: Spawned,
    pub addr: SocketAddr,
    /// Tasks its readiness check cost it (a template server's LIST).
    ready_tasks: u64,
}

/// How a stop went.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// It did not end within the drain timeout and was killed.
    pub killed: bool,
}

impl ServerHandle {
    /// Starts the server of `spec` as `launcher` says; its output goes to
    /// `log`, after a line with `title` (template servers: every line tagged
    /// with `tag`).
    pub fn start(
        launcher: &Launcher,
        spec: &ServerSpec,
        log: &Path,
        (title, tag): (&str, &str),
    ) -> io::Result<ServerHandle> {
        let mut logf = OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(logf, "=== {title}")?;
        match launcher.server_kind() {
            ServerKind::Fsbench => start_fsbench(launcher, spec, logf, log),
            ServerKind::Template { template, .. } => start_template(template, spec, logf, tag),
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The server's successful and failed tasks of this scenario, once it has
    /// counted the tasks of the `expected` clients that connected (bounded
    /// wait); `None` when it keeps no counts (it answers STATS with an error
    /// or not as ours does).
    ///
    /// Each STATS is itself a task, counted as a success once its worker is
    /// done with it: the earlier polls are subtracted.
    pub fn task_counts(&self, expected: u64) -> io::Result<Option<(u64, u64)>> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut polls: u64 = 0;
        loop {
            let v = match Client::connect(self.addr, Duration::from_secs(10))
                .and_then(|mut c| c.stats())
            {
                Ok(v) => v,
                Err(ClientError::Server(_) | ClientError::Protocol(_)) => return Ok(None),
                Err(e) => return Err(io::Error::other(format!("STATS failed: {e}"))),
            };
            let (Some(ok), Some(failed)) = (v["tasks_ok"].as_u64(), v["tasks_failed"].as_u64())
            else {
                return Ok(None);
            };
            let ok = ok.saturating_sub(polls + self.ready_tasks);
            if ok + failed >= expected || Instant::now() >= deadline {
                return Ok(Some((ok, failed)));
            }
            polls += 1;
            std::thread::yield_now();
        }
    }

    /// Peak RSS (VmHWM) of the server plus its descendants, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        measure::tree_peak_rss_kib(self.pid())
    }

    /// SIGTERM, then waits for the exit; after `limit`, SIGKILL.
    pub fn stop(mut self, limit: Duration) -> io::Result<Stopped> {
        let (status, killed) = self.proc.stop_within(limit)?;
        Ok(Stopped { status, killed })
    }
}

fn start_fsbench(
    launcher: &Launcher,
    spec: &ServerSpec,
    logf: File,
    log: &Path,
) -> io::Result<ServerHandle> {
    let mut cmd = launcher.fsbench_server_command(spec);
    cmd.stderr(logf);
    // SIGTERM, not SIGKILL: a server so told still stops its own workers.
    let mut proc = Spawned::start(&mut cmd, sys::SIGTERM)?;
    let stdout = proc
        .child_mut()
        .and_then(|c| c.stdout.take())
        .ok_or_else(|| io::Error::other("no stdout pipe"))?;
    let (tx, rx) = mpsc::channel();
    // Reads LISTENING, then drains stdout until the server exits.
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut line = String::new();
        let mut sent = false;
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            if !sent {
                if let Some(a) = line.trim().strip_prefix("LISTENING ") {
                    let _ = tx.send(a.to_string());
                    sent = true;
                }
            }
            line.clear();
        }
    });
    let log_tail = || {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut t: Vec<String> = text
            .lines()
            .rev()
            .take(TAIL_LINES)
            .map(String::from)
            .collect();
        t.reverse();
        t
    };
    let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => match a.parse() {
            Ok(addr) => addr,
            Err(_) => {
                let why = format!("printed a bad LISTENING address {a:?}");
                return Err(fail(proc, &why, log_tail()));
            }
        },
        Err(_) => return Err(fail(proc, "did not print LISTENING", log_tail())),
    };
    // Ready means accepting: connect (and close without a request, which
    // the server does not count as a task).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => {
                let why = format!("is not accepting connections: {e}");
                return Err(fail(proc, &why, log_tail()));
            }
            Err(_) => std::thread::yield_now(),
        }
    }
    Ok(ServerHandle {
        proc,
        addr,
        ready_tasks: 0,
    })
}

/// A free port on `host`: bound and released (the server binds it next).
fn free_port(host: &str) -> io::Result<u16> {
    Ok(TcpListener::bind((host, 0))?.local_addr()?.port())
}

fn start_template(
    template: &str,
    spec: &ServerSpec,
    logf: File,
    tag: &str,
) -> io::Result<ServerHandle> {
    let port = free_port(&spec.host)?;
    let addr: SocketAddr = format!("{}:{port}", spec.host)
        .parse()
        .map_err(|e| io::Error::other(format!("listen address {}: {e}", spec.host)))?;
    let mut cmd = Launcher::template_server_command(template, spec, port);
    let mut proc = Spawned::start_group(&mut cmd, sys::SIGTERM)?;
    let tail: Arc<Mutex<VecDeque<String>>> = Arc::default();
    let log = Arc::new(Mutex::new(logf));
    let mut copiers = Vec::new();
    if let Some(c) = proc.child_mut() {
        let out = c.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
        let err = c.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>);
        for (stream, name) in [(out, "out"), (err, "err")] {
            if let Some(s) = stream {
                let prefix = format!("[{tag} {name}] ");
                copiers.push(copy_tagged(s, prefix, log.clone(), tail.clone()));
            }
        }
    }
    // A server that failed: killed (its whole group, so its pipes close),
    // then its last lines once the copiers have read them (bounded).
    let fail_template = |proc: Spawned, why: &str| {
        let status = kill(proc);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !copiers.iter().all(|c| c.is_finished()) && Instant::now() < deadline {
            std::thread::yield_now();
        }
        let lines: Vec<String> = tail
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect();
        explain(why, status, lines)
    };
    // Ready: the port accepts and a LIST is answered, within the start timeout.
    let deadline = Instant::now() + spec.start_timeout;
    let mut last_error = String::from("nothing accepted a connection");
    loop {
        if let Ok(Some(st)) = proc.try_wait() {
            return Err(fail_template(
                proc,
                &format!("exited ({st}) before it was ready"),
            ));
        }
        if Instant::now() >= deadline {
            let why = format!(
                "was not ready within {:.0} s ({last_error})",
                spec.start_timeout.as_secs_f64()
            );
            return Err(fail_template(proc, &why));
        }
        match Client::connect(addr, Duration::from_secs(2)) {
            Ok(mut c) => match c.list() {
                Ok(_) => break,
                Err(e) => last_error = format!("LIST: {e}"),
            },
            Err(e) => {
                last_error = format!("connect: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    Ok(ServerHandle {
        proc,
        addr,
        ready_tasks: 1,
    })
}

/// Copies the lines of `src` to `log`, each behind `prefix`, keeping the
/// last few in `tail`; until `src` ends.
fn copy_tagged(
    src: Box<dyn Read + Send>,
    prefix: String,
    log: Arc<Mutex<File>>,
    tail: Arc<Mutex<VecDeque<String>>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut r = BufReader::new(src);
        let mut line = Vec::new();
        while r
            .read_until(b'\n', &mut line)
            .map(|n| n > 0)
            .unwrap_or(false)
        {
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\n', '\r']);
            {
                let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                if t.len() == TAIL_LINES {
                    t.pop_front();
                }
                t.push_back(text.to_string());
            }
            let mut f = log.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(f, "{prefix}{text}");
            line.clear();
        }
    })
}

/// Kills a server that failed to start (its whole group); its exit status.
fn kill(mut proc: Spawned) -> Option<ExitStatus> {
    proc.kill()
}

/// Why a server failed to start, with the last lines it wrote.
fn explain(why: &str, status: Option<ExitStatus>, tail: Vec<String>) -> io::Error {
    io::Error::other(format!(
        "the server {why} (exit: {}); its output ends with:\n  {}",
        status.map_or("unknown".to_string(), |s| s.to_string()),
        tail.join("\n  ")
    ))
}

/// Kills one of ours that failed to start and explains why.
fn fail(proc: Spawned, why: &str, tail: Vec<String>) -> io::Error {
    explain(why, kill(proc), tail)
}
