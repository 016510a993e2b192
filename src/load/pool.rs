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
use crate::launch::Launcher;
use crate::load::content::{self, Content};
use crate::load::{Op, Volume, MIB};
use crate::server::Mode;

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
    /// The file downloads fetch (default: the volume's test file).
    pub file: Option<String>,
    /// Its SHA-256 (default: computed from the test file generator).
    pub expect_sha256: Option<String>,
    /// Base of the per-client upload seeds.
    pub seed: u64,
    /// The SHA-256 of each client's upload content, when known (the sweep
    /// hashes each content once): clients then compare the server's name
    /// with it instead of hashing while they send. Empty: they hash.
    pub upload_sha256: Vec<String>,
    /// How uploads are checked (see [`UploadCheck`]).
    pub upload_check: UploadCheck,
    /// Our binary, for process mode.
    pub exe: PathBuf,
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
            file: None,
            expect_sha256: None,
            seed: 1,
            upload_sha256: Vec::new(),
            upload_check: UploadCheck::Name,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("fsbench")),
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
        .to_string()
    }

    fn from_json(line: &str) -> Option<ClientResult> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
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
    /// processes, sampled over the run (and what the sampling cost).
    pub pss: PssPeak,
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
    pub bytes: u64,
    pub file: String,
    /// The download's SHA-256; empty: it is the volume's test file, checked
    /// byte for byte against the generator (no hash).
    pub expect_sha256: String,
    pub seed: u64,
    /// See [`PoolOpts::upload_sha256`]. A process-mode child gets its own
    /// client's as `expect_sha256` instead.
    pub upload_sha256: Vec<String>,
    pub upload_check: UploadCheck,
}

impl ClientJob {
    fn of(opts: &PoolOpts) -> ClientJob {
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
            bytes: opts.volume.bytes,
            file,
            expect_sha256: expect,
            seed: opts.seed,
            upload_sha256: opts.upload_sha256.clone(),
            upload_check: opts.upload_check,
        }
    }

    /// The known SHA-256 of client `index`'s upload content, if any.
    fn known_upload_sha256(&self, index: usize) -> Option<&str> {
        let known = if self.upload_sha256.is_empty() {
            Some(self.expect_sha256.as_str())
        } else {
            self.upload_sha256.get(index).map(String::as_str)
        };
        known.filter(|s| !s.is_empty())
    }

    /// Runs the operation of client `index`: connect, transfer, verify.
    pub fn run(&self, index: usize) -> ClientResult {
        let t0 = Instant::now();
        let mut r = ClientResult {
            index,
            ..ClientResult::default()
        };
        let outcome = Client::connect(self.addr.as_str(), self.timeout).and_then(|mut c| {
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
        let mut c = Client::connect(self.addr.as_str(), self.timeout).map_err(not_readable)?;
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
    let job = ClientJob::of(opts);
    // Peak RSS from here on (Linux >= 4.0; best effort): when the pool runs
    // inside a longer-lived process, its earlier peaks do not count.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let cpu0 = thread_cpu_s();
    let sampler = PssSampler::start(vec![Watch::Process(std::process::id())])?;
    let ran = match opts.mode {
        Mode::Thread => run_threads(&job, opts.clients, &sampler),
        Mode::Process => run_processes(&job, opts, &sampler),
    };
    let pss = sampler.finish();
    let (results, wall_s, children_kib) = ran?;
    let cpu_s = results
        .iter()
        .fold(thread_cpu_s() - cpu0, |a, r| a + r.cpu_s);
    Ok(PoolReport {
        mode: opts.mode,
        op: opts.op,
        volume: opts.volume,
        clients: opts.clients,
        addr: opts.addr.clone(),
        results,
        wall_s,
        peak_rss_kib: crate::load::peak_rss_kib(None) + children_kib,
        memory_budget_kib: memory_budget_kib(opts.clients),
        cpu_s,
        pss,
    })
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

    /// Opens the gate once `arrived` clients wait; returns the instant it
    /// opened, taken before any client can start (so wall time covers them all).
    fn open_when(&self, arrived: usize) -> Instant {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        while s.0 < arrived {
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        let t0 = Instant::now();
        s.1 = true;
        self.cv.notify_all();
        t0
    }
}

fn run_threads(
    job: &ClientJob,
    n: usize,
    sampler: &PssSampler,
) -> io::Result<(Vec<ClientResult>, f64, u64)> {
    let gate = Arc::new(Gate::default());
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
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
    let t0 = gate.open_when(started);
    sampler.sample_soon();
    let results = handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| match h {
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

fn spawn_client(job: &ClientJob, exe: &Path, index: usize) -> io::Result<ClientProcess> {
    let mut args: Vec<String> = [
        "--operation",
        job.op.name(),
        "--bytes",
        &job.bytes.to_string(),
        "--addr",
        &job.addr,
        "--timeout",
        &job.timeout.as_secs_f64().to_string(),
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
    let mut cmd = Launcher::local(exe).pool_client_command(&args);
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
    let mut workers: Vec<Result<ClientProcess, String>> = (0..n)
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
    for (i, w) in workers.iter_mut().enumerate() {
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
    for (i, w) in workers.into_iter().enumerate() {
        if let Ok(mut worker) = w {
            let st = worker.proc.wait()?;
            if !st.success() && results[i].ok {
                results[i] = ClientResult::failed(i, "client process", format!("exited with {st}"));
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
