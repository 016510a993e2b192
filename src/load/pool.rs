//! The client pool: N clients that start together and each do one operation
//! (download, upload or list), timed from connect to the last verified byte.
//!
//! Thread mode runs N `std::thread`s behind a start gate (a barrier). Process mode runs N
//! child processes of our own binary (`fsbench pool-worker`): each says
//! `READY` on its stdout pipe, waits for one byte on its stdin pipe (the
//! barrier), does its operation and writes one JSON line with its result.
//!
//! Downloads of a test file are compared byte for byte with the generator's
//! content as they stream (the offset of the first wrong byte is reported);
//! a download given `--expect-sha256` is hashed instead. Nothing is written
//! to disk. Uploads stream content generated
//! from a per-client seed; the client library checks the returned name is its
//! SHA-256 name. Memory stays bounded whatever the volume.

use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, ChildStdout};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Client, ClientError};
use crate::launch::measure::{PssPeak, PssSampler, Watch};
use crate::launch::process::Spawned;
use crate::launch::server::ReadyProbe;
use crate::launch::ssh::{self, RemoteHost, SessionInput, Ssh, Tail};
use crate::launch::Launcher;
use crate::load::content::{self, Content};
use crate::load::{Op, Volume, MIB};
pub use crate::results::meta::HostPart;
use crate::server::Mode;
use crate::tcp::Congestion;

/// The memory the pool's processes may use together: 64 MB + 8 MB per client.
pub fn memory_budget_kib(clients: usize) -> u64 {
    (64 * MIB + 8 * MIB * clients as u64) / 1024
}

#[derive(Debug, Clone)]
pub struct PoolOpts {
    pub mode: Mode,
    pub op: Op,
    pub volume: Volume,
    pub clients: usize,
    /// `host:port` of the server.
    pub addr: String,
    /// Bounds the connect and every read and write of each client.
    pub timeout: Duration,
    /// The TCP congestion control of each client's connection.
    pub congestion: Congestion,
    /// The file downloads fetch (default: the volume's test file).
    pub file: Option<String>,
    /// Its SHA-256 (default: computed from the test file generator).
    pub expect_sha256: Option<String>,
    /// Base of the per-client upload seeds.
    pub seed: u64,
    /// The SHA-256 of each client's upload content, when known (the sweep
    /// hashes each content once), the first being client `first_index`'s:
    /// clients then compare the server's name with it instead of hashing
    /// while they send. Empty: they hash.
    pub upload_sha256: Vec<String>,
    /// How uploads are checked (see [`UploadCheck`]).
    pub upload_check: UploadCheck,
    /// Our binary, for process mode.
    pub exe: PathBuf,
    /// The index of the first client (clients are `first_index..first_index
    /// + clients`): a host's share of a pool spread over hosts.
    pub first_index: usize,
    /// When the clients start: at once, or on a line from stdin.
    pub start: StartSignal,
    /// Run the clients on these hosts instead of here.
    pub remote: Option<Arc<RemoteClients>>,
    /// With `remote`: the server's last readiness check, a LIST sent by
    /// the first client host before its clients start; no client starts
    /// unless it passed.
    pub before_go: Option<Arc<ReadyProbe>>,
    /// Before the clients start, send one LIST to the server; if it is not
    /// answered, say `NOT-READY why` instead of `READY` and end (`--probe-list`).
    pub probe_list: bool,
}

/// When the clients, all connected and waiting, start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartSignal {
    /// As soon as all of them are ready.
    #[default]
    Now,
    /// Say `READY` on stdout, then start on a `GO` line on stdin (how a
    /// coordinator starts the pools of several hosts together). The end of
    /// stdin, before or during the run, ends the pool: the coordinator is
    /// gone; so does, with a `heartbeat`, no line (`PING`) for that long.
    StdinLine { heartbeat: Option<Duration> },
}

/// Client hosts reached over ssh, ready ([`crate::launch::ssh::prepare`]).
pub struct RemoteClients {
    pub ssh: Arc<Ssh>,
    pub hosts: Vec<RemoteHost>,
}

impl std::fmt::Debug for RemoteClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.hosts.iter().map(|h| h.host.as_str()).collect();
        write!(f, "RemoteClients({names:?})")
    }
}

/// `n` clients over `hosts` hosts, as evenly as can be (50 over 3: 17, 17, 16).
pub fn split(n: usize, hosts: usize) -> Vec<usize> {
    if hosts == 0 {
        return Vec::new();
    }
    (0..hosts)
        .map(|i| n / hosts + usize::from(i < n % hosts))
        .collect()
}

impl PoolOpts {
    pub fn new(
        mode: Mode,
        op: Op,
        volume: Volume,
        clients: usize,
        addr: impl Into<String>,
    ) -> Self {
        PoolOpts {
            mode,
            op,
            volume,
            clients,
            addr: addr.into(),
            timeout: Duration::from_secs(300),
            congestion: Congestion::Auto,
            file: None,
            expect_sha256: None,
            seed: 1,
            upload_sha256: Vec::new(),
            upload_check: UploadCheck::Name,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("fsbench")),
            first_index: 0,
            start: StartSignal::Now,
            remote: None,
            before_go: None,
            probe_list: false,
        }
    }
}

/// How an upload is checked: by the name the server returns (ours names a
/// plain `UPLOAD` by its SHA-256), by reading it back with GET after the
/// timed part (any server), or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UploadCheck {
    #[default]
    Name,
    Readback,
    Both,
}

impl UploadCheck {
    pub fn name(self) -> &'static str {
        match self {
            UploadCheck::Name => "name",
            UploadCheck::Readback => "readback",
            UploadCheck::Both => "both",
        }
    }

    /// The server's name is checked against the content's SHA-256.
    pub fn by_name(self) -> bool {
        self != UploadCheck::Readback
    }

    /// The upload is read back with GET.
    pub fn reads_back(self) -> bool {
        self != UploadCheck::Name
    }
}

impl std::fmt::Display for UploadCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for UploadCheck {
    type Err = String;
    fn from_str(s: &str) -> Result<UploadCheck, String> {
        match s {
            "name" => Ok(UploadCheck::Name),
            "readback" => Ok(UploadCheck::Readback),
            "both" => Ok(UploadCheck::Both),
            _ => Err(format!(
                "unknown upload check {s:?} (name, readback or both)"
            )),
        }
    }
}

/// What one client did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClientResult {
    pub index: usize,
    pub ok: bool,
    /// The TCP connection was established (the server may have counted a task).
    pub connected: bool,
    /// From connect to the last verified byte (or to the failure).
    pub secs: f64,
    /// Verified bytes: the volume for a transfer, the response for LIST; 0 on failure.
    pub bytes: u64,
    /// Failure cause, for grouping: `connect refused`, `timeout`, `reset`,
    /// `server ERROR: <msg>`, `verification mismatch`, ...
    pub cause: Option<String>,
    pub message: Option<String>,
    /// Peak RSS of the client's own process (process mode), in KiB.
    pub peak_rss_kib: u64,
    /// CPU time (user + system) of the client: its thread's in thread mode,
    /// its whole process's in process mode, in seconds.
    pub cpu_s: f64,
    /// The name the server stored an upload under (to remove it afterwards).
    pub stored: Option<String>,
}

impl ClientResult {
    fn to_json(&self) -> String {
        self.to_value().to_string()
    }

    pub fn to_value(&self) -> serde_json::Value {
        serde_json::json!({
            "index": self.index,
            "ok": self.ok,
            "connected": self.connected,
            "secs": self.secs,
            "bytes": self.bytes,
            "cause": self.cause,
            "message": self.message,
            "peak_rss_kib": self.peak_rss_kib,
            "cpu_s": self.cpu_s,
            "stored": self.stored,
        })
    }

    fn from_json(line: &str) -> Option<ClientResult> {
        Self::from_value(&serde_json::from_str(line).ok()?)
    }

    pub fn from_value(v: &serde_json::Value) -> Option<ClientResult> {
        Some(ClientResult {
            index: v["index"].as_u64()? as usize,
            ok: v["ok"].as_bool()?,
            connected: v["connected"].as_bool()?,
            secs: v["secs"].as_f64()?,
            bytes: v["bytes"].as_u64()?,
            cause: v["cause"].as_str().map(String::from),
            message: v["message"].as_str().map(String::from),
            peak_rss_kib: v["peak_rss_kib"].as_u64().unwrap_or(0),
            cpu_s: v["cpu_s"].as_f64().unwrap_or(0.0),
            stored: v["stored"].as_str().map(String::from),
        })
    }

    /// A client that failed with `cause` (grouped on) and `message`.
    pub fn failed(index: usize, cause: &str, message: String) -> ClientResult {
        ClientResult {
            index,
            cause: Some(cause.to_string()),
            message: Some(message),
            ..ClientResult::default()
        }
    }
}

/// Everything a pool run measured; [`crate::load::report`] summarises it.
#[derive(Debug, Clone)]
pub struct PoolReport {
    pub mode: Mode,
    pub op: Op,
    pub volume: Volume,
    pub clients: usize,
    pub addr: String,
    pub results: Vec<ClientResult>,
    /// From the barrier's release to the last client's end.
    pub wall_s: f64,
    /// VmHWM of the pool process plus that of every child, in KiB.
    pub peak_rss_kib: u64,
    pub memory_budget_kib: u64,
    /// CPU time of the clients (threads or processes) plus the pool's
    /// coordinating thread, in seconds; the memory sampler's is not in it.
    pub cpu_s: f64,
    /// Peak of the PSS summed over the pool's process and its client
    /// processes, sampled over the run (and what the sampling cost). Over
    /// several hosts: the sum of each host's peak.
    pub pss: PssPeak,
    /// Each client host's share, when the clients ran on other hosts.
    pub hosts: Vec<HostPart>,
    /// The clients' TCP congestion control, in words (empty: never connected).
    pub tcp_congestion: String,
}

impl PoolReport {
    /// The report of a pool that could not run (its server never got
    /// ready): every client's `results`, nothing measured.
    pub fn not_run(mode: Mode, op: Op, volume: Volume, results: Vec<ClientResult>) -> PoolReport {
        PoolReport {
            mode,
            op,
            volume,
            clients: results.len(),
            addr: String::new(),
            results,
            wall_s: 0.0,
            peak_rss_kib: 0,
            memory_budget_kib: 0,
            cpu_s: 0.0,
            pss: PssPeak::default(),
            hosts: Vec::new(),
            tcp_congestion: String::new(),
        }
    }

    /// What `opts` says of a run (`remote`: its clients on other hosts),
    /// nothing measured yet.
    fn of_opts(opts: &PoolOpts, remote: bool) -> PoolReport {
        PoolReport {
            mode: opts.mode,
            op: opts.op,
            volume: opts.volume,
            clients: opts.clients,
            addr: opts.addr.clone(),
            results: Vec::new(),
            wall_s: 0.0,
            peak_rss_kib: 0,
            memory_budget_kib: memory_budget_kib(opts.clients),
            cpu_s: 0.0,
            pss: PssPeak::default(),
            hosts: Vec::new(),
            tcp_congestion: congestion_in_words(opts, remote),
        }
    }

    pub fn success(&self) -> usize {
        self.results.iter().filter(|r| r.ok).count()
    }

    pub fn fail(&self) -> usize {
        self.results.len() - self.success()
    }

    pub fn all_ok(&self) -> bool {
        self.fail() == 0 && self.results.len() == self.clients
    }

    /// Clients whose connection was established.
    pub fn connected(&self) -> usize {
        self.results.iter().filter(|r| r.connected).count()
    }
}

/// What one client does, in the thread or the child process that runs it.
#[derive(Debug, Clone)]
pub struct ClientJob {
    pub op: Op,
    pub addr: String,
    pub timeout: Duration,
    pub congestion: Congestion,
    pub bytes: u64,
    pub file: String,
    /// The download's SHA-256; empty: it is the volume's test file, checked
    /// byte for byte against the generator (no hash).
    pub expect_sha256: String,
    pub seed: u64,
    /// See [`PoolOpts::upload_sha256`] (the first is client
    /// `first_index`'s). A process-mode child gets its own client's as
    /// `expect_sha256` instead.
    pub upload_sha256: Vec<String>,
    pub first_index: usize,
    pub upload_check: UploadCheck,
}

impl ClientJob {
    pub fn of(opts: &PoolOpts) -> ClientJob {
        let tf = content::test_file_name(opts.volume);
        let file = opts.file.clone().unwrap_or(tf);
        // Downloads only: N uploads are N contents (see `upload_sha256`).
        let expect = match opts.op {
            Op::Download => opts
                .expect_sha256
                .as_deref()
                .map(str::to_ascii_lowercase)
                .unwrap_or_default(),
            _ => String::new(),
        };
        ClientJob {
            op: opts.op,
            addr: opts.addr.clone(),
            timeout: opts.timeout,
            congestion: opts.congestion.clone(),
            bytes: opts.volume.bytes,
            file,
            expect_sha256: expect,
            seed: opts.seed,
            upload_sha256: opts.upload_sha256.clone(),
            first_index: opts.first_index,
            upload_check: opts.upload_check,
        }
    }

    /// The known SHA-256 of client `index`'s upload content, if any.
    fn known_upload_sha256(&self, index: usize) -> Option<&str> {
        let known = if self.upload_sha256.is_empty() {
            Some(self.expect_sha256.as_str())
        } else {
            index
                .checked_sub(self.first_index)
                .and_then(|i| self.upload_sha256.get(i))
                .map(String::as_str)
        };
        known.filter(|s| !s.is_empty())
    }

    fn connect(&self) -> crate::client::Result<Client> {
        Client::connect_with(self.addr.as_str(), self.timeout, &self.congestion)
    }

    /// Runs the operation of client `index`: connect, transfer, verify.
    pub fn run(&self, index: usize) -> ClientResult {
        let t0 = Instant::now();
        let mut r = ClientResult {
            index,
            ..ClientResult::default()
        };
        let outcome = self.connect().and_then(|mut c| {
            r.connected = true;
            self.operate(&mut c, index, &mut r.stored)
        });
        r.secs = t0.elapsed().as_secs_f64();
        // Untimed: an upload read back under the name the server gave it.
        let outcome = match (outcome, &r.stored) {
            (Ok(bytes), Some(name)) if self.op == Op::Upload && self.upload_check.reads_back() => {
                self.read_back(name, index).map(|_| bytes)
            }
            (o, _) => o.map_err(|e| (e.cause(), e.to_string())),
        };
        match outcome {
            Ok(bytes) => {
                r.ok = true;
                r.bytes = bytes;
            }
            Err((cause, message)) => {
                r.cause = Some(cause);
                r.message = Some(message);
            }
        }
        r
    }

    /// Fetches upload `name` of client `index` and compares it with what was
    /// sent: `upload not readable back` or `content mismatch` otherwise.
    fn read_back(&self, name: &str, index: usize) -> Result<(), (String, String)> {
        let not_readable = |e: ClientError| {
            (
                "upload not readable back".to_string(),
                format!("GET {name} after the upload: {e}"),
            )
        };
        let mut c = self.connect().map_err(not_readable)?;
        let seed = content::upload_seed(self.seed, index);
        let mut check = content::Checker::new(seed, self.bytes);
        match c.get_into(name, &mut check) {
            Ok(_) => check.verdict().map_err(|m| {
                (
                    "content mismatch".to_string(),
                    format!("{name} read back: {m}"),
                )
            }),
            Err(e @ ClientError::Verify(_)) => Err((
                "content mismatch".to_string(),
                format!("{name} read back: {e}"),
            )),
            Err(e) => Err(not_readable(e)),
        }
    }

    fn operate(
        &self,
        c: &mut Client,
        index: usize,
        stored: &mut Option<String>,
    ) -> Result<u64, ClientError> {
        match self.op {
            Op::Download if self.expect_sha256.is_empty() => {
                let seed = content::test_file_seed(Volume { bytes: self.bytes });
                let mut check = content::Checker::new(seed, self.bytes);
                let bytes = c.get_into(&self.file, &mut check)?;
                check
                    .verdict()
                    .map_err(|m| ClientError::Verify(format!("{}: {m}", self.file)))?;
                Ok(bytes)
            }
            Op::Download => {
                let d = c.get(&self.file, &mut io::sink())?;
                if d.bytes != self.bytes || d.sha256 != self.expect_sha256 {
                    return Err(ClientError::Verify(format!(
                        "{}: got {} bytes with sha256 {}, expected {} bytes with sha256 {}",
                        self.file, d.bytes, d.sha256, self.bytes, self.expect_sha256
                    )));
                }
                Ok(d.bytes)
            }
            Op::Upload => {
                let mut src = Content::new(content::upload_seed(self.seed, index), self.bytes);
                // Without a name ours stores it under its SHA-256 name, checked
                // against the content's hash (known, or taken as it is sent);
                // another server names it its own way (read back instead).
                let u = match (self.upload_check.by_name(), self.known_upload_sha256(index)) {
                    (false, _) => c.upload_as_named_by_server(&mut src)?,
                    (true, Some(sha)) => c.upload_known(&mut src, sha)?,
                    (true, None) => c.upload(None, &mut src)?,
                };
                *stored = Some(u.name.clone());
                if u.bytes != self.bytes {
                    return Err(ClientError::Verify(format!(
                        "sent {} bytes, expected {}",
                        u.bytes, self.bytes
                    )));
                }
                Ok(u.bytes)
            }
            Op::List => {
                c.list()?;
                Ok(c.last_response_bytes)
            }
        }
    }
}

/// Runs the pool and returns what it measured. An error means the pool
/// itself could not run (e.g. no thread); client failures are in the report.
pub fn run(opts: &PoolOpts) -> io::Result<PoolReport> {
    if opts.clients == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "--clients must be at least 1",
        ));
    }
    if let Some(remote) = &opts.remote {
        return run_remote(opts, remote);
    }
    if opts.probe_list {
        let listed = Client::connect_with(opts.addr.as_str(), opts.timeout, &opts.congestion)
            .and_then(|mut c| c.list());
        if let Err(e) = listed {
            let mut out = io::stdout().lock();
            writeln!(out, "NOT-READY {e}")?;
            out.flush()?;
            return Err(io::Error::other(format!(
                "the server did not answer a LIST: {e}"
            )));
        }
    }
    let job = ClientJob::of(opts);
    // Peak RSS from here on (Linux >= 4.0; best effort): when the pool runs
    // inside a longer-lived process, its earlier peaks do not count.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let cpu0 = thread_cpu_s();
    let sampler = PssSampler::start(vec![Watch::Process(std::process::id())])?;
    let ran = match opts.mode {
        Mode::Thread => run_threads(&job, opts, &sampler),
        Mode::Process => run_processes(&job, opts, &sampler),
    };
    let pss = sampler.finish();
    let (results, wall_s, children_kib) = ran?;
    let cpu_s = results
        .iter()
        .fold(thread_cpu_s() - cpu0, |a, r| a + r.cpu_s);
    Ok(PoolReport {
        results,
        wall_s,
        peak_rss_kib: crate::load::peak_rss_kib(None) + children_kib,
        cpu_s,
        pss,
        ..PoolReport::of_opts(opts, false)
    })
}

/// What the clients' connections to `opts.addr` use (see [`crate::tcp`]);
/// `remote`: the clients run on other hosts, with their own defaults.
fn congestion_in_words(opts: &PoolOpts, remote: bool) -> String {
    use std::net::ToSocketAddrs;
    // A name that does not resolve here is no loopback address.
    let ip = opts
        .addr
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    opts.congestion
        .describe_at(ip, remote.then_some("each client host's"))
}

/// The calling thread's CPU time so far, in seconds (0 if the kernel cannot
/// tell, which Linux always can).
fn thread_cpu_s() -> f64 {
    crate::sys::thread_cpu_time().map_or(0.0, |d| d.as_secs_f64())
}

/// A start line: clients arrive and wait; the pool opens it once all arrived.
#[derive(Default)]
struct Gate {
    state: Mutex<(usize, bool)>,
    cv: Condvar,
}

impl Gate {
    fn arrive_and_wait(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.0 += 1;
        self.cv.notify_all();
        while !s.1 {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits until `arrived` clients wait.
    fn wait_for(&self, arrived: usize) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.0 < arrived {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Opens the gate; returns the instant it opened, taken before any
    /// client can start (so wall time covers them all).
    fn open(&self) -> Instant {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let t0 = Instant::now();
        s.1 = true;
        self.cv.notify_all();
        t0
    }
}

/// Says `READY` and waits for `GO` when the start comes from stdin; then
/// watches stdin, ending the process when it closes (the coordinator is gone).
fn await_start(start: StartSignal) -> io::Result<()> {
    let StartSignal::StdinLine { heartbeat } = start else {
        return Ok(());
    };
    // Lines of stdin, read by a thread; `None` at its end.
    let (tx, rx) = std::sync::mpsc::channel::<Option<String>>();
    std::thread::Builder::new()
        .name("stdin".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(Some(line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(None);
        })?;
    {
        let mut out = io::stdout().lock();
        out.write_all(b"READY\n")?;
        out.flush()?;
    }
    // The next line, or the end: of stdin, or of the coordinator's PINGs.
    let silence = heartbeat.unwrap_or(Duration::MAX);
    let next = move || match rx.recv_timeout(silence) {
        Ok(Some(l)) => Some(l),
        _ => None,
    };
    loop {
        match next() {
            Some(l) if l.trim() == "GO" => break,
            Some(_) => {}
            // The coordinator is gone: the clients' processes die with us
            // (their parent-death signal).
            None => std::process::exit(1),
        }
    }
    std::thread::Builder::new()
        .name("stdin-watch".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            while next().is_some() {}
            std::process::exit(1);
        })?;
    Ok(())
}

fn run_threads(
    job: &ClientJob,
    opts: &PoolOpts,
    sampler: &PssSampler,
) -> io::Result<(Vec<ClientResult>, f64, u64)> {
    let n = opts.clients;
    let first = opts.first_index;
    let gate = Arc::new(Gate::default());
    let mut handles = Vec::with_capacity(n);
    for i in first..first + n {
        let (g, j) = (gate.clone(), job.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("client-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                g.arrive_and_wait();
                let mut r = j.run(i);
                // Per thread: the process's CPU would include the sampler's.
                r.cpu_s = thread_cpu_s();
                r
            });
        handles.push(spawned.map_err(|e| e.to_string()));
    }
    let started = handles.iter().filter(|h| h.is_ok()).count();
    gate.wait_for(started);
    await_start(opts.start)?;
    let t0 = gate.open();
    sampler.sample_soon();
    let results = handles
        .into_iter()
        .zip(first..)
        .map(|(h, i)| match h {
            Ok(h) => h.join().unwrap_or_else(|_| {
                ClientResult::failed(i, "client thread", "client thread panicked".into())
            }),
            Err(e) => ClientResult::failed(i, "client thread", format!("cannot start: {e}")),
        })
        .collect();
    Ok((results, t0.elapsed().as_secs_f64(), 0))
}

/// One client of a process-mode pool: a `pool-worker` child with its start
/// pipe (stdin) and its result pipe (stdout). Dropped early (it never got
/// ready), it is killed: never left behind.
struct ClientProcess {
    proc: Spawned,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// The `pool-worker` flags of client `index` of `job`.
pub fn worker_args(job: &ClientJob, index: usize) -> Vec<String> {
    let mut args: Vec<String> = [
        "--operation",
        job.op.name(),
        "--bytes",
        &job.bytes.to_string(),
        "--addr",
        &job.addr,
        "--timeout",
        &job.timeout.as_secs_f64().to_string(),
        "--tcp-congestion",
        &job.congestion.to_string(),
        "--file",
        &job.file,
        "--seed",
        &job.seed.to_string(),
        "--index",
        &index.to_string(),
        "--upload-check",
        job.upload_check.name(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let expect = match job.op {
        Op::Upload => job.known_upload_sha256(index).unwrap_or_default(),
        _ => job.expect_sha256.as_str(),
    };
    if !expect.is_empty() {
        args.push("--expect-sha256".into());
        args.push(expect.into());
    }
    args
}

fn spawn_client(job: &ClientJob, exe: &Path, index: usize) -> io::Result<ClientProcess> {
    let mut cmd = Launcher::local(exe).pool_client_command(&worker_args(job, index));
    let mut proc = Spawned::start(&mut cmd, crate::sys::SIGKILL)?;
    let child = proc
        .child_mut()
        .ok_or_else(|| io::Error::other("no child"))?;
    let stdin = child.stdin.take();
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    Ok(ClientProcess {
        proc,
        stdin,
        stdout,
    })
}

fn read_line(w: &mut ClientProcess) -> io::Result<String> {
    let mut line = String::new();
    w.stdout.read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

fn run_processes(
    job: &ClientJob,
    opts: &PoolOpts,
    sampler: &PssSampler,
) -> io::Result<(Vec<ClientResult>, f64, u64)> {
    let n = opts.clients;
    let first = opts.first_index;
    let mut workers: Vec<Result<ClientProcess, String>> = (first..first + n)
        .map(|i| {
            spawn_client(job, &opts.exe, i)
                .inspect(|w| sampler.add(Watch::Process(w.proc.pid())))
                .map_err(|e| format!("cannot start client process: {e}"))
        })
        .collect();
    // The barrier: every child is up and waiting before any starts.
    for w in workers.iter_mut() {
        let ready = match w {
            Ok(worker) => read_line(worker),
            Err(_) => continue,
        };
        match ready {
            Ok(l) if l == "READY" => {}
            Ok(l) => *w = Err(format!("client process did not get ready (said {l:?})")),
            Err(e) => *w = Err(format!("client process did not get ready: {e}")),
        }
    }
    await_start(opts.start)?;
    let t0 = Instant::now();
    for w in workers.iter_mut().flatten() {
        if let Some(mut s) = w.stdin.take() {
            let _ = s.write_all(b"G");
        }
    }
    // Every child is up: a run shorter than the sampling period still sees them.
    sampler.sample_soon();
    let mut results = Vec::with_capacity(n);
    let mut children_kib = 0;
    for (w, i) in workers.iter_mut().zip(first..) {
        let r = match w {
            Ok(worker) => match read_line(worker) {
                Ok(l) => ClientResult::from_json(&l).unwrap_or_else(|| {
                    ClientResult::failed(i, "client process", format!("bad result line {l:?}"))
                }),
                Err(e) => ClientResult::failed(i, "client process", e.to_string()),
            },
            Err(m) => ClientResult::failed(i, "client process", m.clone()),
        };
        children_kib += r.peak_rss_kib;
        results.push(r);
    }
    let wall = t0.elapsed().as_secs_f64();
    for (k, w) in workers.into_iter().enumerate() {
        if let Ok(mut worker) = w {
            let st = worker.proc.wait()?;
            if !st.success() && results[k].ok {
                let i = first + k;
                results[k] = ClientResult::failed(i, "client process", format!("exited with {st}"));
            }
        }
    }
    Ok((results, wall, children_kib))
}

/// The child side of process mode (`fsbench pool-worker`): says READY, waits
/// for the go byte on stdin, runs the job and prints its result as one line.
pub fn worker_main(job: &ClientJob, index: usize) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(b"READY\n")?;
    out.flush()?;
    let mut go = [0u8; 1];
    let n = io::Read::read(&mut io::stdin().lock(), &mut go)?;
    if n == 0 {
        // The pool went away before the start: nothing to do.
        return Ok(());
    }
    let mut r = job.run(index);
    r.peak_rss_kib = crate::load::peak_rss_kib(None);
    r.cpu_s = crate::sys::process_cpu_time().map_or(0.0, |d| d.as_secs_f64());
    writeln!(out, "{}", r.to_json())?;
    out.flush()
}

/// One host's share of a spread pool, while it runs.
struct RemotePart {
    host: RemoteHost,
    first: usize,
    clients: usize,
    proc: Spawned,
    stdin: SessionInput,
    lines: std::sync::mpsc::Receiver<String>,
    stderr: Tail,
    /// Why its clients are lost, once they are.
    lost: Option<String>,
    /// It sends the server's readiness LIST before its clients start.
    probes: Option<Arc<ReadyProbe>>,
}

impl RemotePart {
    /// The next line it printed, within `limit`; `None` when its session
    /// ended (or said nothing for that long).
    fn next_line(&mut self, limit: Option<Duration>) -> Option<String> {
        match limit {
            Some(l) => self.lines.recv_timeout(l).ok(),
            None => self.lines.recv().ok(),
        }
    }

    /// Ends its session: its stdin closed (its pool ends, if it has not),
    /// then waited for (bounded; stopped if it lingers).
    fn end(&mut self) -> io::Result<()> {
        self.stdin.close();
        if self.proc.wait_within(Duration::from_secs(10))?.is_none() {
            let _ = self.proc.stop(Duration::from_secs(5));
        }
        Ok(())
    }

    /// Marks it lost, with what its session said last.
    fn lose(&mut self, why: &str) {
        let said = self.stderr.text(Duration::from_secs(2));
        let said = said.lines().last().unwrap_or("").trim();
        self.lost = Some(if said.is_empty() {
            why.to_string()
        } else {
            format!("{why} ({said})")
        });
    }
}

/// The `fsbench pool` command line of one host's share.
pub fn remote_pool_words(
    opts: &PoolOpts,
    bin: &str,
    (first, n): (usize, usize),
    probe: bool,
) -> Vec<String> {
    let (host, port) = match opts.addr.rsplit_once(':') {
        Some((h, p)) => (h.trim_matches(['[', ']']).to_string(), p.to_string()),
        None => (opts.addr.clone(), String::new()),
    };
    let mut w: Vec<String> = [
        bin,
        "pool",
        "--json",
        "--start-on-stdin",
        "--heartbeat",
        &ssh::SILENCE_LIMIT.as_secs().to_string(),
        "--mode",
        opts.mode.name(),
        "--operation",
        opts.op.name(),
        "--volume",
        &format!("{}B", opts.volume.bytes),
        "--clients",
        &n.to_string(),
        "--first-index",
        &first.to_string(),
        "--host",
        &host,
        "--port",
        &port,
        "--timeout",
        &opts.timeout.as_secs_f64().to_string(),
        "--tcp-congestion",
        &opts.congestion.to_string(),
        "--seed",
        &opts.seed.to_string(),
        "--upload-check",
        opts.upload_check.name(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if probe {
        w.push("--probe-list".into());
    }
    if let Some(f) = &opts.file {
        w.extend(["--file".into(), f.clone()]);
    }
    if let Some(h) = &opts.expect_sha256 {
        w.extend(["--expect-sha256".into(), h.clone()]);
    }
    // This host's clients' sums only (the command line stays short).
    let from = first - opts.first_index;
    if let Some(mine) = opts.upload_sha256.get(from..from + n) {
        w.extend(["--upload-sha256".into(), mine.join(",")]);
    }
    w
}

/// Runs the pool spread over `remote`'s hosts: each runs `fsbench pool
/// --json --start-on-stdin` for its share over ssh; once every host has
/// said READY, all get `GO` (one line each, back to back), and their
/// reports merge into one: every client's result, the wall time from the
/// `GO` to the last report, CPU summed, memory as the sum of each host's
/// peak. A host whose session ends without a report has its clients failed
/// as `client host lost: HOST`.
fn run_remote(opts: &PoolOpts, remote: &RemoteClients) -> io::Result<PoolReport> {
    let shares = split(opts.clients, remote.hosts.len());
    let mut parts: Vec<RemotePart> = Vec::new();
    let mut first = opts.first_index;
    // The server's readiness LIST goes from the first host that has clients.
    let mut probe = opts.before_go.clone();
    for (host, &n) in remote.hosts.iter().zip(&shares) {
        if n == 0 {
            continue;
        }
        let probes = probe.take();
        let words = remote_pool_words(opts, &host.bin, (first, n), probes.is_some());
        let mut cmd = remote
            .ssh
            .session(&host.host, &format!("exec {}", ssh::command_line(&words)));
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut proc = Spawned::start(&mut cmd, crate::sys::SIGTERM)?;
        let child = proc
            .child_mut()
            .ok_or_else(|| io::Error::other("no child"))?;
        let stdin = SessionInput::new(child.stdin.take().expect("piped stdin"));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = Tail::collect(child.stderr.take().expect("piped stderr"));
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        parts.push(RemotePart {
            host: host.clone(),
            first,
            clients: n,
            proc,
            stdin,
            lines,
            stderr,
            lost: None,
            probes,
        });
        first += n;
    }
    // Every host's clients up and waiting (READY): bounded, and never
    // shorter than a minute (a host starting 50 client processes).
    let ready_by = Instant::now() + opts.timeout.max(Duration::from_secs(60));
    let mut not_ready = None;
    for p in parts.iter_mut() {
        let left = ready_by.saturating_duration_since(Instant::now());
        match p.next_line(Some(left)) {
            Some(l) if l.trim() == "READY" => {
                if let Some(probe) = &p.probes {
                    probe.passed();
                }
            }
            Some(l) if l.starts_with("NOT-READY ") => {
                not_ready = Some(format!(
                    "the server is not ready: a LIST from client host {} failed: {}",
                    p.host.host,
                    &l["NOT-READY ".len()..]
                ));
            }
            Some(l) => p.lose(&format!("said {l:?} instead of READY")),
            None => p.lose("its pool did not get ready"),
        }
    }
    if let Some(why) = not_ready {
        // No client starts: each fails with the cause.
        for p in parts.iter_mut() {
            p.end()?;
        }
        let results = (opts.first_index..opts.first_index + opts.clients)
            .map(|i| ClientResult::failed(i, "server not ready", why.clone()))
            .collect();
        let mut rep = PoolReport::not_run(opts.mode, opts.op, opts.volume, results);
        rep.addr = opts.addr.clone();
        return Ok(rep);
    }
    let t0 = Instant::now();
    for p in parts.iter_mut().filter(|p| p.lost.is_none()) {
        if p.stdin.send("GO").is_err() {
            p.lose("its session took no start line");
        }
    }
    let mut results = Vec::with_capacity(opts.clients);
    let mut hosts = Vec::new();
    let (mut cpu_s, mut peak_rss_kib) = (0.0, 0);
    let mut pss = PssPeak::default();
    // Raised only if every host's sampler was.
    let mut raised: Option<bool> = None;
    for p in parts.iter_mut() {
        let report = match p.lost {
            Some(_) => None,
            None => p.next_line(None),
        };
        let parsed = report.as_deref().and_then(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            let rs: Option<Vec<ClientResult>> = v["results"]
                .as_array()?
                .iter()
                .map(ClientResult::from_value)
                .collect();
            Some((v.clone(), rs?))
        });
        let mut part = HostPart {
            host: p.host.host.clone(),
            address: p.host.address.clone(),
            clients: p.clients,
            first_index: p.first,
            ..HostPart::default()
        };
        match parsed {
            Some((v, rs)) if rs.len() == p.clients => {
                part.wall_s = v["wall_s"].as_f64().unwrap_or(0.0);
                part.cpu_s = v["cpu_s"].as_f64().unwrap_or(0.0);
                let peak = v["peak_pss_kib"].as_u64().unwrap_or(0);
                part.mem_mib = peak as f64 / 1024.0;
                part.success = rs.iter().filter(|r| r.ok).count();
                let bytes: u64 = rs.iter().map(|r| r.bytes).sum();
                if part.wall_s > 0.0 {
                    part.aggregate_bps = bytes as f64 / part.wall_s;
                }
                cpu_s += part.cpu_s;
                peak_rss_kib += v["peak_rss_kib"].as_u64().unwrap_or(0);
                pss.peak_kib += peak;
                if let Ok(s) = serde_json::from_value::<PssPeak>(v["pss"].clone()) {
                    pss.samples += s.samples;
                    pss.cpu_s += s.cpu_s;
                    pss.secs = pss.secs.max(s.secs);
                    pss.max_gap_s = pss.max_gap_s.max(s.max_gap_s);
                    raised = Some(raised.map_or(s.raised_priority, |r| r && s.raised_priority));
                }
                results.extend(rs);
            }
            other => {
                if p.lost.is_none() {
                    p.lose(match (other, report) {
                        (_, None) => "its session ended without a report",
                        _ => "its report could not be read",
                    });
                }
                let why = p.lost.clone().unwrap_or_default();
                let cause = format!("client host lost: {}", p.host.host);
                for i in p.first..p.first + p.clients {
                    results.push(ClientResult::failed(i, &cause, why.clone()));
                }
                part.lost = Some(why);
            }
        }
        hosts.push(part);
    }
    pss.raised_priority = raised.unwrap_or(false);
    // The common wall time: the longest host's own, from its start (each
    // got GO within a round trip of the others) to its last client's end;
    // what ssh adds to carry the reports back is not in it. With no report
    // at all, the time here until the last session ended.
    let wall_s =
        hosts
            .iter()
            .map(|h| h.wall_s)
            .fold(0.0, f64::max)
            .max(if results.iter().any(|r| r.ok) {
                0.0
            } else {
                t0.elapsed().as_secs_f64()
            });
    // Sessions end once their pool has printed its report (bounded; a lost
    // one is stopped).
    for p in parts.iter_mut() {
        p.end()?;
    }
    results.sort_by_key(|r| r.index);
    Ok(PoolReport {
        results,
        wall_s,
        peak_rss_kib,
        cpu_s,
        pss,
        hosts,
        ..PoolReport::of_opts(opts, true)
    })
}
