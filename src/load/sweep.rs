//! The sweep: every scenario of a matrix (mode x server pool x operation x
//! volume x client pool, `repeat` times), each against a fresh server.
//!
//! Per scenario: start `fsbench serve --port 0` on loopback over the work
//! store (which holds the test files), read its `LISTENING` line and connect
//! to it, run the client pool in the server's mode, read the server's task
//! counts with `STATS`, stop it with SIGTERM and wait for it, remove the
//! scenario's uploads, then append the CSV row and flush it. A metadata JSON
//! beside the CSV records what is needed to reproduce the run.
//!
//! No process outlives the sweep: servers and pool children are tracked,
//! started with a parent-death signal, and on SIGINT/SIGTERM (when
//! `handle_signals` is set) stopped before the sweep exits, after the row
//! being written (if any) is complete. The sweep never leaves more than one
//! scenario's uploads on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Value};

use crate::client::Client;
use crate::load::content::{self, TestFile, UploadHashes};
use crate::load::measure::{self, PssPeak, PssSampler, Watch};
use crate::load::pool::{self, PoolOpts};
use crate::load::report::{self, Row, Summary, CSV_HEADER};
use crate::load::{Op, Volume};
use crate::log::utc_stamp;
use crate::server::Mode;

/// The base of the upload seeds, the same in every scenario: client `i`
/// uploads the same content each time, so its SHA-256 (which the client
/// compares with the name the server gives it) is computed once per sweep
/// and kept in `work/sha256`, not hashed again by every client.
pub const UPLOAD_SEED: u64 = 1;

#[derive(Debug, Clone)]
pub struct SweepOpts {
    pub modes: Vec<Mode>,
    pub ops: Vec<Op>,
    pub volumes: Vec<Volume>,
    pub clients: Vec<usize>,
    pub servers: Vec<usize>,
    pub repeat: usize,
    /// Holds `store/` (the test files) and `sha256/` (their sums); reused.
    pub work: PathBuf,
    /// Where the CSV, its metadata and the servers' log go.
    pub results: PathBuf,
    /// File name prefix: `<prefix>_<UTC timestamp>.csv`.
    pub prefix: String,
    /// Keep fsync on uploads (the server's default); off adds `--no-fsync`.
    pub fsync: bool,
    /// The `fsbench` binary to run servers and pool children from.
    pub exe: PathBuf,
    /// Bounds each client's connect and every read and write.
    pub client_timeout: Duration,
    /// The server's `--drain-timeout`; stop waits this long plus 5 s, then kills.
    pub drain_timeout: Duration,
    /// Install SIGINT/SIGTERM handling (the command line does; tests in-process do not).
    pub handle_signals: bool,
    /// The command line, for the metadata.
    pub argv: Vec<String>,
}

impl SweepOpts {
    /// The full matrix: 2 modes x 3 operations x 10/50/100 MB x clients 1/5/50 x servers 1/5/50.
    pub fn full(exe: PathBuf) -> SweepOpts {
        SweepOpts {
            modes: vec![Mode::Thread, Mode::Process],
            ops: Op::ALL.to_vec(),
            volumes: vec![Volume::mb(10), Volume::mb(50), Volume::mb(100)],
            clients: vec![1, 5, 50],
            servers: vec![1, 5, 50],
            repeat: 1,
            work: PathBuf::from("work"),
            results: PathBuf::from("results"),
            prefix: "stress".into(),
            fsync: true,
            exe,
            client_timeout: Duration::from_secs(300),
            drain_timeout: Duration::from_secs(30),
            handle_signals: false,
            argv: Vec::new(),
        }
    }

    /// The same 162 scenarios with volumes of 10/50/100 KB and client pools 1/2/5.
    pub fn quick(exe: PathBuf) -> SweepOpts {
        SweepOpts {
            volumes: vec![Volume::kb(10), Volume::kb(50), Volume::kb(100)],
            clients: vec![1, 2, 5],
            ..SweepOpts::full(exe)
        }
    }

    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut out = Vec::new();
        for _ in 0..self.repeat {
            for &mode in &self.modes {
                for &server_pool in &self.servers {
                    for &op in &self.ops {
                        for &volume in &self.volumes {
                            for &clients in &self.clients {
                                out.push(Scenario {
                                    mode,
                                    server_pool,
                                    op,
                                    volume,
                                    clients,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub mode: Mode,
    pub server_pool: usize,
    pub op: Op,
    pub volume: Volume,
    pub clients: usize,
}

/// What a finished sweep produced.
#[derive(Debug)]
pub struct SweepOutcome {
    pub csv: PathBuf,
    pub meta: PathBuf,
    pub rows: Vec<Row>,
    pub secs: f64,
}

impl SweepOutcome {
    pub fn all_ok(&self) -> bool {
        self.rows.iter().all(Row::ok)
    }
}

/// State the signal watcher needs to leave complete files behind.
struct Shared {
    csv: Mutex<csv::Writer<File>>,
    meta: Mutex<Value>,
    meta_path: PathBuf,
    /// The store and its test files: the interrupted scenario's uploads go too.
    store: PathBuf,
    keep: Vec<String>,
}

impl Shared {
    fn write_meta(&self) -> io::Result<()> {
        let m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        write_atomic(&self.meta_path, &serde_json::to_vec_pretty(&*m)?)
    }

    fn update_meta(&self, f: impl FnOnce(&mut Value)) -> io::Result<()> {
        f(&mut self.meta.lock().unwrap_or_else(|e| e.into_inner()));
        self.write_meta()
    }
}

fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("json.part");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// Runs the sweep, printing progress to `progress` and the final table to it.
pub fn run(opts: &SweepOpts, progress: &mut dyn Write) -> io::Result<SweepOutcome> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidInput, m.to_string());
    if opts.repeat == 0 || opts.clients.contains(&0) || opts.servers.contains(&0) {
        return Err(bad(
            "repeat, client pools and server pools must be at least 1",
        ));
    }
    let scenarios = opts.scenarios();
    if scenarios.is_empty() {
        return Err(bad("the matrix is empty"));
    }
    if !opts.exe.is_file() {
        return Err(bad(&format!("no fsbench binary at {}", opts.exe.display())));
    }
    let store = opts.work.join("store");
    let sums = opts.work.join("sha256");
    let t_files = Instant::now();
    let files = content::ensure_test_files(&store, &sums, &opts.volumes)?;
    writeln!(
        progress,
        "test files ready in {} ({:.1} s): {}",
        store.display(),
        t_files.elapsed().as_secs_f64(),
        files
            .iter()
            .map(|f| f.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    let keep: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    // Uploads left by an earlier, interrupted sweep.
    clean_store(&store, &keep)?;

    std::fs::create_dir_all(&opts.results)?;
    let start = SystemTime::now();
    let (csv_path, csv_file) = create_csv(&opts.results, &opts.prefix, start)?;
    let meta_path = csv_path.with_extension("json");
    let log_path = csv_path.with_extension("server.log");
    let mut w = csv::Writer::from_writer(csv_file);
    w.write_record(CSV_HEADER)?;
    w.flush()?;
    let shared = Arc::new(Shared {
        csv: Mutex::new(w),
        meta: Mutex::new(metadata(opts, &csv_path, &files, start, scenarios.len())),
        meta_path: meta_path.clone(),
        store: store.clone(),
        keep: keep.clone(),
    });
    shared.write_meta()?;
    if opts.handle_signals {
        watch_signals(shared.clone())?;
    }

    let mut hashes = UploadHashes::new(&sums);
    let t0 = Instant::now();
    let mut rows = Vec::with_capacity(scenarios.len());
    for (i, sc) in scenarios.iter().enumerate() {
        let result = run_scenario(
            opts,
            sc,
            &store,
            &files,
            &log_path,
            (i, scenarios.len()),
            &mut hashes,
        );
        if crate::load::interrupted() {
            // The signal watcher stopped this scenario's processes and ends the
            // process: this half-finished scenario gets no row.
            loop {
                std::thread::park();
            }
        }
        let done = match result {
            Ok(r) => r,
            Err(e) => {
                let msg = format!(
                    "scenario {}/{} ({} server pool {}, {} {} x{}) failed: {e}",
                    i + 1,
                    scenarios.len(),
                    sc.mode.name(),
                    sc.server_pool,
                    sc.op,
                    sc.volume,
                    sc.clients
                );
                let _ = clean_store(&store, &keep);
                shared.update_meta(|m| {
                    m["end"] = json!(utc_stamp(SystemTime::now()));
                    m["error"] = json!(msg);
                })?;
                return Err(io::Error::other(msg));
            }
        };
        let row = done.row;
        {
            let mut w = shared.csv.lock().unwrap_or_else(|e| e.into_inner());
            w.write_record(row.fields())?;
            w.flush()?;
        }
        shared.update_meta(|m| {
            m["scenarios_done"] = json!(i + 1);
            let hwm = json!({
                "scenario": i + 1,
                "server": done.server_peak_kib,
                "pool": done.pool_peak_kib,
            });
            push(m, "vmhwm_kib", hwm);
            let cost = |p: &PssPeak| {
                json!({
                    "samples": p.samples,
                    "secs": p.secs,
                    "cpu_s": p.cpu_s,
                    "max_gap_s": p.max_gap_s,
                    "raised_priority": p.raised_priority,
                })
            };
            let sampled = json!({
                "scenario": i + 1,
                "server": cost(&done.sampled[0]),
                "pool": cost(&done.sampled[1]),
            });
            push(m, "pss_sampler", sampled);
        })?;
        let done = i + 1;
        let elapsed = t0.elapsed().as_secs_f64();
        let eta = elapsed / done as f64 * (scenarios.len() - done) as f64;
        let s = &row.summary;
        writeln!(
            progress,
            "[{done:>3}/{}] {} srv={} {} {} x{}: ok {}/{} srv {}/{} avg {:.4}s p99 {:.4}s agg {} cpu srv {:.2} s / pool {:.2} s PSS MB srv {:.1} pool {:.1} | {:.1}s elapsed, ETA {:.0}s{}",
            scenarios.len(),
            row.mode,
            row.server_pool,
            row.operation,
            row.volume,
            row.client_pool,
            s.success,
            row.client_pool,
            row.server_success,
            row.server_fail,
            s.avg_time_s,
            s.p99_s,
            report::mbps(s.aggregate_bps),
            row.server_cpu_s,
            row.client_cpu_s,
            row.server_mem_mib,
            row.client_mem_mib,
            elapsed,
            eta,
            if s.failures.is_empty() {
                String::new()
            } else {
                format!(" FAILURES: {}", s.errors_text())
            }
        )?;
        rows.push(row);
    }
    let secs = t0.elapsed().as_secs_f64();
    let all_ok = rows.iter().all(Row::ok);
    shared.update_meta(|m| {
        m["end"] = json!(utc_stamp(SystemTime::now()));
        m["duration_s"] = json!(secs);
        m["all_ok"] = json!(all_ok);
    })?;
    writeln!(progress)?;
    report::write_table(progress, &rows)?;
    writeln!(progress)?;
    report::write_cpu_table(progress, &rows)?;
    if hashes.computed > 0 {
        writeln!(
            progress,
            "\nupload contents hashed once for the sweep: {} ({:.1} s, outside the scenarios; kept in {})",
            hashes.computed,
            hashes.secs,
            sums.display()
        )?;
    }
    writeln!(
        progress,
        "\n{} scenarios in {:.1} s, {}; CSV: {}",
        rows.len(),
        secs,
        if all_ok {
            "all clients succeeded, no server failure".to_string()
        } else {
            format!(
                "{} scenario(s) with failures",
                rows.iter().filter(|r| !r.ok()).count()
            )
        },
        csv_path.display()
    )?;
    Ok(SweepOutcome {
        csv: csv_path,
        meta: meta_path,
        rows,
        secs,
    })
}

/// `<dir>/<prefix>_<YYYYmmddTHHMMSSZ>.csv`, never overwriting an existing one.
fn create_csv(dir: &Path, prefix: &str, t: SystemTime) -> io::Result<(PathBuf, File)> {
    let s = utc_stamp(t);
    // 2026-11-25T14:31:44.123Z -> 20261125T143144Z
    let compact: String = s[..19].chars().filter(|c| *c != '-' && *c != ':').collect();
    for n in 1.. {
        let name = if n == 1 {
            format!("{prefix}_{compact}Z.csv")
        } else {
            format!("{prefix}_{compact}Z-{n}.csv")
        };
        let p = dir.join(name);
        match OpenOptions::new().write(true).create_new(true).open(&p) {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!()
}

fn run_scenario(
    opts: &SweepOpts,
    sc: &Scenario,
    store: &Path,
    files: &[TestFile],
    log: &Path,
    (index, total): (usize, usize),
    hashes: &mut UploadHashes,
) -> io::Result<Done> {
    let keep: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    // Before the server starts: hashing is no part of the scenario.
    let upload_sha256 = match sc.op {
        Op::Upload => hashes.for_pool(UPLOAD_SEED, sc.clients, sc.volume.bytes)?,
        _ => Vec::new(),
    };
    let mut server = ServerProc::start(opts, sc, store, log, index, total)?;
    // The server's CPU and memory over the pool's run: from here to the
    // pool's end it does nothing but serve the pool.
    let server_cpu0 = measure::tree_cpu_ticks(server.pid);
    let sampler = PssSampler::start(vec![Watch::Tree(server.pid)])?;
    let mut popts = PoolOpts::new(
        sc.mode,
        sc.op,
        sc.volume,
        sc.clients,
        server.addr.to_string(),
    );
    popts.timeout = opts.client_timeout;
    popts.exe = opts.exe.clone();
    popts.seed = UPLOAD_SEED;
    popts.upload_sha256 = upload_sha256;
    let result = pool::run(&popts);
    let server_pss = sampler.finish();
    let server_cpu_ticks = measure::tree_cpu_ticks(server.pid).saturating_sub(server_cpu0);
    let counts = match &result {
        Ok(rep) => server.task_counts(rep.connected() as u64),
        Err(_) => Ok((0, 0)),
    };
    let server_peak_kib = server.peak_rss_kib();
    let stopped = server.stop(opts.drain_timeout + Duration::from_secs(5));
    clean_store(store, &keep)?;
    let rep = result?;
    let (server_success, server_fail) = counts?;
    let status = stopped?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "the server exited with {status} after SIGTERM (log: {})",
            log.display()
        )));
    }
    Ok(Done {
        row: Row {
            timestamp: utc_stamp(SystemTime::now()),
            mode: sc.mode.name().to_string(),
            server_pool: sc.server_pool,
            operation: sc.op.name().to_string(),
            volume: sc.volume.label(),
            client_pool: sc.clients,
            summary: Summary::of(&rep),
            server_success,
            server_fail,
            server_cpu_s: measure::ticks_to_secs(server_cpu_ticks),
            client_cpu_s: rep.cpu_s,
            server_mem_mib: server_pss.peak_kib as f64 / 1024.0,
            client_mem_mib: rep.pss.peak_kib as f64 / 1024.0,
        },
        server_peak_kib,
        pool_peak_kib: rep.peak_rss_kib,
        sampled: [server_pss, rep.pss],
    })
}

/// A finished scenario: its CSV row and what the metadata adds.
struct Done {
    row: Row,
    /// VmHWM of the server and its worker processes, summed.
    server_peak_kib: u64,
    pool_peak_kib: u64,
    /// The server's and the pool's PSS samplers (their cost).
    sampled: [PssPeak; 2],
}

/// Appends to an array of the metadata.
fn push(meta: &mut Value, key: &str, v: Value) {
    match meta[key].as_array_mut() {
        Some(a) => a.push(v),
        None => meta[key] = json!([v]),
    }
}

/// Removes everything in the store but the test files (of every volume, not
/// only this sweep's): the scenario's uploads and any temporary file left in `.tmp`.
pub fn clean_store(store: &Path, keep: &[String]) -> io::Result<usize> {
    let mut removed = 0;
    for e in std::fs::read_dir(store)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ft = e.file_type()?;
        if ft.is_dir() {
            if name == crate::store::TMP_DIR {
                for t in std::fs::read_dir(e.path())? {
                    let t = t?;
                    if !t.file_type()?.is_dir() {
                        std::fs::remove_file(t.path())?;
                        removed += 1;
                    }
                }
            }
            continue;
        }
        let test_file = keep.iter().any(|k| *k == name) || content::is_test_file_name(&name);
        if !test_file && !name.starts_with(".gen-") {
            std::fs::remove_file(e.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// A server started for one scenario.
struct ServerProc {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
}

impl ServerProc {
    fn start(
        opts: &SweepOpts,
        sc: &Scenario,
        store: &Path,
        log: &Path,
        index: usize,
        total: usize,
    ) -> io::Result<ServerProc> {
        let mut logf = OpenOptions::new().create(true).append(true).open(log)?;
        writeln!(
            logf,
            "=== {} scenario {}/{}: {} server pool {}, {} {} x{}",
            utc_stamp(SystemTime::now()),
            index + 1,
            total,
            sc.mode.name(),
            sc.server_pool,
            sc.op,
            sc.volume,
            sc.clients
        )?;
        let mut cmd = Command::new(&opts.exe);
        cmd.args(server_args(opts, sc.mode, sc.server_pool))
            .arg("--root")
            .arg(store)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logf);
        // SIGTERM, not SIGKILL: a server so told still stops its own workers.
        crate::sys::die_with_parent(&mut cmd, crate::sys::SIGTERM);
        let mut child = crate::load::spawn_tracked(&mut cmd)?;
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
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
        let mut me = ServerProc {
            child: Some(child),
            pid,
            addr: "127.0.0.1:0".parse().expect("valid"),
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => match a.parse() {
                Ok(addr) => me.addr = addr,
                Err(_) => return Err(me.fail(format!("bad LISTENING address {a:?}"), log)),
            },
            Err(_) => return Err(me.fail("did not print LISTENING".into(), log)),
        }
        // Ready means accepting: connect (and close without a request, which
        // the server does not count as a task).
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match TcpStream::connect_timeout(&me.addr, Duration::from_secs(5)) {
                Ok(_) => break,
                Err(e) if Instant::now() >= deadline => {
                    return Err(me.fail(format!("not accepting connections: {e}"), log))
                }
                Err(_) => std::thread::yield_now(),
            }
        }
        Ok(me)
    }

    /// Kills a server that failed to start and explains why.
    fn fail(&mut self, why: String, log: &Path) -> io::Error {
        let status = match self.child.take() {
            Some(mut c) => {
                let st = c.try_wait().ok().flatten();
                if st.is_none() {
                    let _ = c.kill();
                }
                let st = c.wait().ok();
                crate::load::untrack(self.pid);
                st
            }
            None => None,
        };
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        io::Error::other(format!(
            "the server {why} (exit: {}); its log ends with:\n  {}",
            status.map_or("still running, killed".to_string(), |s| s.to_string()),
            tail.join("\n  ")
        ))
    }

    /// The server's successful and failed tasks of this scenario, once it has
    /// counted the tasks of the `expected` clients that connected (bounded wait).
    ///
    /// Each STATS is itself a task, counted as a success once its worker is
    /// done with it: the earlier polls are subtracted.
    fn task_counts(&self, expected: u64) -> io::Result<(u64, u64)> {
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
    fn peak_rss_kib(&self) -> u64 {
        measure::tree_peak_rss_kib(self.pid)
    }

    /// SIGTERM, then waits for the exit; after `limit`, SIGKILL.
    fn stop(&mut self, limit: Duration) -> io::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(io::Error::other("server already stopped"));
        };
        let _ = crate::sys::kill(self.pid, crate::sys::SIGTERM);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let st = match rx.recv_timeout(limit) {
            Ok(st) => st,
            Err(_) => {
                let _ = crate::sys::kill(self.pid, crate::sys::SIGKILL);
                rx.recv().map_err(io::Error::other)?
            }
        };
        crate::load::untrack(self.pid);
        st
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = crate::sys::kill(self.pid, crate::sys::SIGTERM);
            let _ = c.wait();
            crate::load::untrack(self.pid);
        }
    }
}

fn server_args(opts: &SweepOpts, mode: Mode, pool: usize) -> Vec<String> {
    let mut a: Vec<String> = [
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--mode",
        mode.name(),
        "--pool",
        &pool.to_string(),
        "--drain-timeout",
        &opts.drain_timeout.as_secs_f64().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if !opts.fsync {
        a.push("--no-fsync".into());
    }
    a
}

/// Stops the sweep on SIGINT/SIGTERM: the tracked servers and pool children
/// first, then, with the CSV lock held (so no row is half-written), the
/// metadata, then exits with 128 + the signal.
fn watch_signals(shared: Arc<Shared>) -> io::Result<()> {
    let rd = crate::sys::signal_pipe()?;
    std::thread::Builder::new()
        .name("sweep-signals".into())
        .spawn(move || loop {
            match crate::sys::wait_readable(rd.as_raw_fd(), None) {
                Ok(true) => {}
                _ => continue,
            }
            let Some(sig) = crate::sys::drain_fd(rd.as_raw_fd()) else {
                continue;
            };
            let left = stop_children(Duration::from_secs(35));
            let _ = clean_store(&shared.store, &shared.keep);
            let _csv = shared.csv.lock().unwrap_or_else(|e| e.into_inner());
            let _ = shared.update_meta(|m| {
                m["end"] = json!(utc_stamp(SystemTime::now()));
                m["interrupted_by_signal"] = json!(sig);
            });
            eprintln!(
                "fsbench sweep: interrupted by signal {sig}; finished rows are kept{}",
                if left == 0 {
                    String::new()
                } else {
                    format!(" ({left} child process(es) had to be killed)")
                }
            );
            std::process::exit(128 + i32::from(sig));
        })?;
    Ok(())
}

/// Whether a process is still running (a zombie has finished).
fn running(pid: u32) -> bool {
    measure::stat(pid).is_some_and(|s| s.running())
}

/// SIGTERM to every tracked child, then waits for them (bounded) and kills
/// what is left. Returns how many had to be killed.
fn stop_children(limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut signalled: Vec<u32> = Vec::new();
    loop {
        let alive: Vec<u32> = crate::load::interrupt_all()
            .into_iter()
            .filter(|&p| running(p))
            .collect();
        if alive.is_empty() {
            return 0;
        }
        for &p in &alive {
            if !signalled.contains(&p) {
                let _ = crate::sys::kill(p, crate::sys::SIGTERM);
                signalled.push(p);
            }
        }
        if Instant::now() >= deadline {
            for &p in &alive {
                let _ = crate::sys::kill(p, crate::sys::SIGKILL);
            }
            return alive.len();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn meminfo_kib(field: &str) -> Option<u64> {
    std::fs::read_to_string("/proc/meminfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

fn proc_text(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The run's metadata: enough to reproduce it.
fn metadata(
    opts: &SweepOpts,
    csv: &Path,
    files: &[TestFile],
    start: SystemTime,
    total: usize,
) -> Value {
    // The repository of the current folder, else the one the binary was built in.
    let exe_dir = opts
        .exe
        .parent()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let (commit, dirty) = [".", exe_dir.as_str()]
        .iter()
        .find_map(|dir| {
            let c = command_output("git", &["-C", dir, "rev-parse", "HEAD"])?;
            let d =
                command_output("git", &["-C", dir, "status", "--porcelain"]).map(|s| !s.is_empty());
            Some((Some(c), d))
        })
        .unwrap_or((None, None));
    json!({
        "tool": format!("fsbench {} sweep", env!("CARGO_PKG_VERSION")),
        "csv": csv.display().to_string(),
        "start": utc_stamp(start),
        "end": null,
        "duration_s": null,
        "scenarios_total": total,
        "scenarios_done": 0,
        "all_ok": null,
        "git": {"commit": commit, "dirty": dirty},
        "rustc": command_output("rustc", &["-V"]),
        "build_profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "machine": {
            "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
            "memory_total_kib": meminfo_kib("MemTotal:"),
            "kernel": format!(
                "{} {} {}",
                proc_text("/proc/sys/kernel/ostype").unwrap_or_default(),
                proc_text("/proc/sys/kernel/osrelease").unwrap_or_default(),
                proc_text("/proc/sys/kernel/version").unwrap_or_default()
            ),
            "hostname": proc_text("/proc/sys/kernel/hostname"),
        },
        "fsync": opts.fsync,
        "matrix": {
            "modes": opts.modes.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "operations": opts.ops.iter().map(|o| o.name()).collect::<Vec<_>>(),
            "volumes": opts.volumes.iter().map(|v| v.label()).collect::<Vec<_>>(),
            "volume_bytes": opts.volumes.iter().map(|v| v.bytes).collect::<Vec<_>>(),
            "client_pools": opts.clients,
            "server_pools": opts.servers,
            "repeat": opts.repeat,
        },
        "server_command": format!(
            "{} {} --root {}",
            opts.exe.display(),
            server_args(opts, Mode::Thread, 1).join(" ").replace("--mode thread --pool 1", "--mode MODE --pool POOL"),
            opts.work.join("store").display()
        ),
        "client_pool": {
            "same_mode_as_server": true,
            "client_timeout_s": opts.client_timeout.as_secs_f64(),
            "upload_seed": UPLOAD_SEED,
            "upload_check": "the name the server returns is compared with the SHA-256 of the client's content, computed once per sweep (seeds per client index, the same in every scenario) and kept in work/sha256",
        },
        "measurement": {
            "server_cpu_s": "utime + stime + cutime + cstime of /proc/PID/stat over the server and its descendants, from just before the pool starts to just after it ends",
            "client_cpu_s": "getrusage: RUSAGE_THREAD of each client thread (thread mode) or RUSAGE_SELF of each client process (process mode), plus the pool's coordinating thread",
            "mem_mib": "peak of the summed PSS (Pss: of /proc/PID/smaps_rollup) of each side's processes, sampled at the start, every 100 ms, once all clients are up, and at the end of the pool's run",
            "pss_sampler": "per scenario and side: samples taken, seconds covered, the sampler thread's own CPU, the longest gap between samples, whether it ran at the raised priority",
            "pss_sampler_nice": measure::SAMPLER_NICE,
            "vmhwm_kib": "VmHWM summed over each side's processes: counts pages shared after fork once per process",
            "clock_ticks_per_s": crate::sys::clock_ticks_per_sec(),
            "pss_sample_period_s": measure::SAMPLE_PERIOD.as_secs_f64(),
        },
        "vmhwm_kib": [],
        "pss_sampler": [],
        "test_files": files.iter().map(|f| json!({"name": f.name, "bytes": f.bytes, "sha256": f.sha256})).collect::<Vec<_>>(),
        "argv": opts.argv,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_and_quick_matrices_have_162_scenarios() {
        let f = SweepOpts::full("x".into());
        assert_eq!(f.scenarios().len(), 162);
        let q = SweepOpts::quick("x".into());
        let s = q.scenarios();
        assert_eq!(s.len(), 162);
        assert!(s
            .iter()
            .all(|x| x.volume.bytes <= 100 * 1024 && x.clients <= 5));
        let mut r = q.clone();
        r.repeat = 2;
        r.modes = vec![Mode::Thread];
        assert_eq!(r.scenarios().len(), 162);
    }

    #[test]
    fn cleaning_keeps_the_test_files_of_other_volumes() {
        // A narrowed sweep (VOLUMES=10) must not delete file_100MB.bin and
        // the like: test files are generated once and reused.
        let dir = std::env::temp_dir().join(format!("fsbench-clean2-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let upload = format!("{}.bin", "ab".repeat(32));
        for n in [
            "file_10KB.bin",
            "file_100MB.bin",
            "file_1536B.bin",
            upload.as_str(),
        ] {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        let n = clean_store(&dir, &["file_10KB.bin".to_string()]).unwrap();
        assert_eq!(n, 1);
        let mut left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["file_100MB.bin", "file_10KB.bin", "file_1536B.bin"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cleaning_keeps_only_the_test_files() {
        let dir = std::env::temp_dir().join(format!("fsbench-clean-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(".tmp")).unwrap();
        for n in ["file_10KB.bin", "abc123", "x.jpeg"] {
            std::fs::write(dir.join(n), b"x").unwrap();
        }
        std::fs::write(dir.join(".tmp").join("up-1-1"), b"x").unwrap();
        let n = clean_store(&dir, &["file_10KB.bin".to_string()]).unwrap();
        assert_eq!(n, 3);
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut left = left;
        left.sort();
        assert_eq!(left, vec![".tmp", "file_10KB.bin"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
