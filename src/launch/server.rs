//! A server started for one scenario: up when it has printed `LISTENING`
//! and accepts a connection; asked for its task counts with `STATS`;
//! measured as a process tree; stopped with SIGTERM (SIGKILL after a
//! deadline). A server that does not come up is killed and the error says
//! why, with the end of its log.

use std::fs::OpenOptions;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::ExitStatus;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::launch::process::Spawned;
use crate::launch::{measure, Launcher, ServerSpec};
use crate::sys;

pub struct ServerHandle {
    proc: Spawned,
    pub addr: SocketAddr,
}

impl ServerHandle {
    /// Starts the server of `spec`; its stderr goes to `log`, after a line
    /// with `title`.
    pub fn start(
        launcher: &Launcher,
        spec: &ServerSpec,
        log: &Path,
        title: &str,
    ) -> io::Result<ServerHandle> {
        let mut logf = OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(logf, "=== {title}")?;
        let mut cmd = launcher.server_command(spec);
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
        let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => match a.parse() {
                Ok(addr) => addr,
                Err(_) => return Err(fail(proc, &format!("bad LISTENING address {a:?}"), log)),
            },
            Err(_) => return Err(fail(proc, "did not print LISTENING", log)),
        };
        // Ready means accepting: connect (and close without a request, which
        // the server does not count as a task).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(fail(proc, &format!("not accepting connections: {e}"), log))
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        Ok(ServerHandle { proc, addr })
    }

    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The server's successful and failed tasks of this scenario, once it has
    /// counted the tasks of the `expected` clients that connected (bounded wait).
    ///
    /// Each STATS is itself a task, counted as a success once its worker is
    /// done with it: the earlier polls are subtracted.
    pub fn task_counts(&self, expected: u64) -> io::Result<(u64, u64)> {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut polls: u64 = 0;
        loop {
            let v = Client::connect(self.addr, Duration::from_secs(10))
                .and_then(|mut c| c.stats())
                .map_err(|e| io::Error::other(format!("STATS failed: {e}")))?;
            let ok = v["tasks_ok"].as_u64().unwrap_or(0).saturating_sub(polls);
            let failed = v["tasks_failed"].as_u64().unwrap_or(0);
            if ok + failed >= expected || Instant::now() >= deadline {
                return Ok((ok, failed));
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
    pub fn stop(mut self, limit: Duration) -> io::Result<ExitStatus> {
        self.proc.stop(limit)
    }
}

/// Kills a server that failed to start and explains why.
fn fail(mut proc: Spawned, why: &str, log: &Path) -> io::Error {
    let status = proc.kill();
    let tail = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = tail.lines().rev().take(5).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    io::Error::other(format!(
        "the server {why} (exit: {}); its log ends with:\n  {}",
        status.map_or("unknown".to_string(), |s| s.to_string()),
        tail.join("\n  ")
    ))
}
