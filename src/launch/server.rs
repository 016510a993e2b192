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
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError};
use crate::launch::measure::{PssSampler, Watch};
use crate::launch::process::Spawned;
use crate::launch::ssh::{self, RemoteHost, SessionInput, Ssh};
use crate::launch::supervise::{self, Measured};
use crate::launch::{measure, Launcher, ServerKind, ServerSpec};
use crate::sys;

/// Lines of a server's output kept for an error message.
const TAIL_LINES: usize = 5;

pub struct ServerHandle {
    /// The server, or the ssh session of a remote one.
    proc: Spawned,
    pub addr: SocketAddr,
    /// Tasks its readiness check cost it (a template server's LIST).
    ready_tasks: u64,
    /// A remote server's supervisor, spoken to over the session.
    remote: Option<Supervised>,
    /// A local server's CPU ticks at [`begin_measure`](Self::begin_measure)
    /// and the sampler of its PSS.
    measuring: Option<(u64, PssSampler)>,
    /// The LIST from a client host still to be sent (by the pool).
    deferred: Option<ReadyProbe>,
    /// The LISTs that probe cost the server (a task each).
    probe_tasks: Arc<AtomicU64>,
}

/// The last step of a remote server's readiness: a LIST answered when sent
/// from a client host. The pool's first client host sends it, in the
/// session it starts its clients in (no session of its own), and no client
/// starts unless it was answered.
pub struct ReadyProbe {
    /// The client host it goes from.
    pub from: String,
    tasks: Arc<AtomicU64>,
}

impl std::fmt::Debug for ReadyProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReadyProbe(LIST from {})", self.from)
    }
}

impl ReadyProbe {
    /// The LIST was answered: a task of the server's that no client made.
    pub fn passed(&self) {
        self.tasks.fetch_add(1, Ordering::Relaxed);
    }
}

/// The coordinator's end of `fsbench supervise` on another host.
struct Supervised {
    host: String,
    stdin: SessionInput,
    /// Supervise's own lines (`MEASURED ...`, `EXIT ...`), prefix removed.
    said: mpsc::Receiver<String>,
}

impl Supervised {
    fn tell(&mut self, line: &str) -> io::Result<()> {
        self.stdin.send(line)
    }

    /// The next line of supervise that starts with `word`, within `limit`.
    fn await_word(&mut self, word: &str, limit: Duration) -> io::Result<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.said.recv_timeout(left) {
                Ok(l) => {
                    if let Some(rest) = l.strip_prefix(word) {
                        return Ok(rest.trim().to_string());
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    return Err(io::Error::other(format!(
                        "server host {}: no {word} within {} s",
                        self.host,
                        limit.as_secs()
                    )))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(io::Error::other(format!(
                        "server host {}: the ssh session ended",
                        self.host
                    )))
                }
            }
        }
    }
}

/// A server on another host: started over ssh under `fsbench supervise`.
pub struct RemoteServer {
    pub ssh: Arc<Ssh>,
    pub host: RemoteHost,
    /// The client host the readiness LIST is sent from (`None`: from here).
    pub probe_from: Option<RemoteHost>,
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
    /// On another host when `remote` says so.
    pub fn start(
        launcher: &Launcher,
        spec: &ServerSpec,
        log: &Path,
        (title, tag): (&str, &str),
        remote: Option<&RemoteServer>,
    ) -> io::Result<ServerHandle> {
        let mut logf = OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(logf, "=== {title}")?;
        match (launcher.server_kind(), remote) {
            (_, Some(r)) => start_remote(launcher, spec, logf, log, r),
            (ServerKind::Fsbench, None) => start_fsbench(launcher, spec, logf, log),
            (ServerKind::Template { template, .. }, None) => {
                start_template(template, spec, logf, tag)
            }
        }
    }

    /// Starts measuring the server's process tree (CPU and PSS), wherever it runs.
    pub fn begin_measure(&mut self) -> io::Result<()> {
        match &mut self.remote {
            Some(r) => {
                r.tell("START")?;
                r.await_word("STARTED", Duration::from_secs(20)).map(drop)
            }
            None => {
                let cpu0 = measure::tree_cpu_ticks(self.proc.pid());
                let sampler = PssSampler::start(vec![Watch::Tree(self.proc.pid())])?;
                self.measuring = Some((cpu0, sampler));
                Ok(())
            }
        }
    }

    /// What the server's tree used since [`begin_measure`](Self::begin_measure).
    pub fn end_measure(&mut self) -> io::Result<Measured> {
        match &mut self.remote {
            Some(r) => {
                r.tell("END")?;
                let m = r.await_word("MEASURED", Duration::from_secs(20))?;
                serde_json::from_str(&m).map_err(|e| {
                    io::Error::other(format!("server host {}: MEASURED {m:?}: {e}", r.host))
                })
            }
            None => {
                let pid = self.proc.pid();
                let Some((cpu0, sampler)) = self.measuring.take() else {
                    return Ok(Measured::default());
                };
                let pss = sampler.finish();
                let cpu = measure::tree_cpu_ticks(pid).saturating_sub(cpu0);
                Ok(Measured {
                    cpu_s: measure::ticks_to_secs(cpu),
                    pss,
                    vmhwm_kib: measure::tree_peak_rss_kib(pid),
                })
            }
        }
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
            let ready = self.ready_tasks + self.probe_tasks.load(Ordering::Relaxed);
            let ok = ok.saturating_sub(polls + ready);
            if ok + failed >= expected || Instant::now() >= deadline {
                return Ok(Some((ok, failed)));
            }
            polls += 1;
            std::thread::yield_now();
        }
    }

    /// The readiness LIST left for the pool to send from a client host.
    pub fn take_ready_probe(&mut self) -> Option<ReadyProbe> {
        self.deferred.take()
    }

    /// SIGTERM, then waits for the exit; after `limit`, SIGKILL. A remote
    /// server is told through its session; a session that ended takes the
    /// server with it (its supervisor kills it), and the error says so.
    pub fn stop(mut self, limit: Duration) -> io::Result<Stopped> {
        let Some(mut r) = self.remote.take() else {
            let (status, killed) = self.proc.stop_within(limit)?;
            return Ok(Stopped { status, killed });
        };
        let mut killed = false;
        let _ = r.tell("TERM");
        let word = match r.await_word("EXIT", limit) {
            Ok(w) => Ok(w),
            Err(_) => {
                killed = true;
                let _ = r.tell("KILL");
                r.await_word("EXIT", Duration::from_secs(10))
            }
        };
        drop(r);
        // The session ends once supervise has; bounded all the same.
        if self.proc.wait_within(Duration::from_secs(10))?.is_none() {
            self.proc.kill();
        }
        let status = exit_status(&word?);
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
    let addr: SocketAddr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => match a.parse() {
            Ok(addr) => addr,
            Err(_) => {
                let why = format!("printed a bad LISTENING address {a:?}");
                return Err(fail(proc, &why, log_tail(log)));
            }
        },
        Err(_) => return Err(fail(proc, "did not print LISTENING", log_tail(log))),
    };
    // Ready means accepting: connect (and close without a request, which
    // the server does not count as a task).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(_) => break,
            Err(e) if Instant::now() >= deadline => {
                let why = format!("is not accepting connections: {e}");
                return Err(fail(proc, &why, log_tail(log)));
            }
            Err(_) => std::thread::yield_now(),
        }
    }
    Ok(ServerHandle {
        proc,
        addr,
        ready_tasks: 0,
        remote: None,
        measuring: None,
        deferred: None,
        probe_tasks: Arc::default(),
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
    if let Err(why) = await_list(&mut proc, addr, (deadline, spec.start_timeout)) {
        return Err(fail_template(proc, &why));
    }
    Ok(ServerHandle {
        proc,
        addr,
        ready_tasks: 1,
        remote: None,
        measuring: None,
        deferred: None,
        probe_tasks: Arc::default(),
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

/// The exit status `supervise` reported (`0`, `3`, `signal-9`).
fn exit_status(word: &str) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = word.strip_prefix("signal-") {
        return ExitStatus::from_raw(sig.parse().unwrap_or(9));
    }
    ExitStatus::from_raw(word.parse::<i32>().unwrap_or(255) << 8)
}

/// Starts the server of `spec` on `r.host` over ssh, under `fsbench
/// supervise`: ready once it printed `LISTENING` (ours) or took its port
/// (a template: then once a LIST from here is answered), and a LIST from a
/// client host is answered.
fn start_remote(
    launcher: &Launcher,
    spec: &ServerSpec,
    logf: File,
    log: &Path,
    r: &RemoteServer,
) -> io::Result<ServerHandle> {
    let bin = r.host.bin.as_str();
    let mut words: Vec<String> = vec![bin.into(), "supervise".into()];
    words.extend(["--clean-store".into(), spec.root.display().to_string()]);
    words.extend([
        "--heartbeat".into(),
        ssh::SILENCE_LIMIT.as_secs().to_string(),
    ]);
    match launcher.server_kind() {
        ServerKind::Fsbench => {
            words.push("--signal-leader".into());
            words.push("--".into());
            words.push(bin.into());
            words.extend(Launcher::server_args(spec));
        }
        ServerKind::Template { template, .. } => {
            words.extend(["--port-on".into(), spec.host.clone(), "--".into()]);
            words.extend(["sh".into(), "-c".into()]);
            words.push(super::expand_with_port(template, spec, "{port}"));
        }
    }
    let remote = format!("exec {}", ssh::command_line(&words));
    let mut cmd = r.ssh.session(&r.host.host, &remote);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(logf);
    let mut proc = Spawned::start(&mut cmd, sys::SIGTERM)?;
    let child = proc
        .child_mut()
        .ok_or_else(|| io::Error::other("no child"))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| io::Error::other("no stdin"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| io::Error::other("no stdout"))?;
    let (said_tx, said) = mpsc::channel();
    let (listen_tx, listening) = mpsc::channel();
    let log_path = log.to_path_buf();
    std::thread::spawn(move || {
        let mut rd = BufReader::new(stdout);
        let mut line = String::new();
        while rd.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            let l = line.trim_end();
            if let Some(own) = l.strip_prefix(supervise::PREFIX) {
                let _ = said_tx.send(own.to_string());
            } else if let Some(a) = l.strip_prefix("LISTENING ") {
                let _ = listen_tx.send(a.to_string());
            } else if let Ok(mut f) = OpenOptions::new().append(true).open(&log_path) {
                let _ = writeln!(f, "[out] {l}");
            }
            line.clear();
        }
    });
    let mut sup = Supervised {
        host: r.host.host.clone(),
        stdin: SessionInput::new(stdin),
        said,
    };
    let on_host = |why: &str| format!("on {} {why}", r.host.host);
    let deadline = Instant::now() + spec.start_timeout;
    let (addr, mut ready_tasks) = match launcher.server_kind() {
        ServerKind::Fsbench => {
            let a = match listening.recv_timeout(spec.start_timeout) {
                Ok(a) => a,
                Err(_) => {
                    return Err(fail(
                        proc,
                        &on_host("did not print LISTENING"),
                        log_tail(log),
                    ));
                }
            };
            match a.parse::<SocketAddr>() {
                Ok(addr) => (addr, 0),
                Err(_) => {
                    let why = on_host(&format!("printed a bad LISTENING address {a:?}"));
                    return Err(fail(proc, &why, log_tail(log)));
                }
            }
        }
        ServerKind::Template { .. } => {
            let port = match sup.await_word("PORT", spec.start_timeout) {
                Ok(p) => p,
                Err(e) => return Err(fail(proc, &on_host(&e.to_string()), log_tail(log))),
            };
            let addr: SocketAddr = format!("{}:{port}", spec.host)
                .parse()
                .map_err(|e| io::Error::other(format!("listen address {}: {e}", spec.host)))?;
            // Polled from here until it answers a LIST.
            if let Err(why) = await_list(&mut proc, addr, (deadline, spec.start_timeout)) {
                return Err(fail(proc, &on_host(&why), log_tail(log)));
            }
            (addr, 1)
        }
    };
    // Ready for the clients: a LIST from one of their hosts (left to the
    // pool: see [`ReadyProbe`]), or from here.
    let probe_tasks = Arc::new(AtomicU64::new(0));
    let deferred = r.probe_from.as_ref().map(|c| ReadyProbe {
        from: c.host.clone(),
        tasks: probe_tasks.clone(),
    });
    if deferred.is_none() {
        let listed = Client::connect(addr, Duration::from_secs(10))
            .and_then(|mut c| c.list().map(drop))
            .map_err(|e| format!("a LIST from here failed: {e}"));
        if let Err(e) = listed {
            return Err(fail(
                proc,
                &on_host(&format!("is not ready: {e}")),
                log_tail(log),
            ));
        }
        ready_tasks += 1;
    }
    Ok(ServerHandle {
        proc,
        addr,
        ready_tasks,
        remote: Some(sup),
        measuring: None,
        deferred,
        probe_tasks,
    })
}

/// The last lines of the server log (for an error message).
fn log_tail(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut t: Vec<String> = text
        .lines()
        .rev()
        .take(TAIL_LINES)
        .map(String::from)
        .collect();
    t.reverse();
    t
}

/// Polls `addr` until a LIST is answered, until `deadline` (the end of the
/// start `timeout`): why not, if not (the process exited first, or the time
/// ran out, with the last error).
fn await_list(
    proc: &mut Spawned,
    addr: SocketAddr,
    (deadline, timeout): (Instant, Duration),
) -> Result<(), String> {
    let mut last_error = String::from("nothing accepted a connection");
    loop {
        if let Ok(Some(st)) = proc.try_wait() {
            return Err(format!("exited ({st}) before it was ready"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "was not ready within {:.0} s ({last_error})",
                timeout.as_secs_f64()
            ));
        }
        match Client::connect(addr, Duration::from_secs(2)) {
            Ok(mut c) => match c.list() {
                Ok(_) => return Ok(()),
                Err(e) => last_error = format!("LIST: {e}"),
            },
            Err(e) => {
                last_error = format!("connect: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}
