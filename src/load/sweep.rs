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
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::launch::measure::{self, PssPeak};
use crate::launch::process;
use crate::launch::server::ServerHandle;
use crate::launch::{Launcher, ServerKind, ServerSpec};
use crate::load::content::{self, TestFile, UploadHashes};
use crate::load::hosts::{self, Hosts, RemoteOpts, SetupError};
use crate::load::pool::{self, ClientResult, HostPart, PoolOpts, PoolReport, UploadCheck};
use crate::load::summary::{self, Summary};
use crate::load::{Op, Volume};
use crate::log::utc_stamp;
use crate::results::machine;
use crate::results::meta::{
    ClientPool, HostMeta, LostHost, Matrix, Measurement, Metadata, SamplerCost, SamplerCosts,
    ScenarioError, ScenarioHosts, TcpCongestion, TestFileMeta, VmHwm,
};
use crate::results::row::{self, Row};
use crate::server::Mode;
use crate::tcp::Congestion;

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
    /// The TCP congestion control of our servers and of the clients.
    pub congestion: Congestion,
    /// The server's `--drain-timeout`; stop waits this long plus 5 s, then kills.
    pub drain_timeout: Duration,
    /// Install SIGINT/SIGTERM handling (the command line does; tests in-process do not).
    pub handle_signals: bool,
    /// The command line, for the metadata.
    pub argv: Vec<String>,
    /// Stress another server: `sh -c TEMPLATE` per scenario (see
    /// [`crate::launch::ServerKind::Template`]); `None`: ours.
    pub server_cmd: Option<String>,
    /// The server's label in the CSV (default: the template's first word).
    pub server_label: Option<String>,
    /// How long a template server gets to answer a LIST after it starts.
    pub server_start_timeout: Duration,
    /// How uploads are checked; `None`: by name for ours, read back for another.
    pub upload_check: Option<UploadCheck>,
    /// The server, the clients or both on other hosts, over ssh.
    pub remote: RemoteOpts,
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
            congestion: Congestion::Auto,
            drain_timeout: Duration::from_secs(30),
            handle_signals: false,
            argv: Vec::new(),
            server_cmd: None,
            server_label: None,
            server_start_timeout: Duration::from_secs(30),
            upload_check: None,
            remote: RemoteOpts {
                remote_dir: hosts::REMOTE_DIR.into(),
                ..RemoteOpts::default()
            },
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

/// `thread server pool 5, upload 100MB x5`.
impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} server pool {}, {} {} x{}",
            self.mode, self.server_pool, self.op, self.volume, self.clients
        )
    }
}

/// What the sweep measured of a scenario besides the pool's summary.
#[derive(Debug, Clone, Default)]
pub struct Sides {
    /// `None`: the server keeps no counts.
    pub server_success: Option<u64>,
    pub server_fail: Option<u64>,
    pub server_cpu_s: f64,
    pub client_cpu_s: f64,
    pub server_mem_mib: f64,
    pub client_mem_mib: f64,
    /// The server's label.
    pub server: String,
    /// What went wrong besides the clients' failures (`cause: count`).
    pub problems: Vec<String>,
}

impl Scenario {
    /// The CSV row of this scenario, from what the pool and the sweep measured.
    pub fn row(&self, timestamp: String, s: &Summary, sides: Sides) -> Row {
        Row {
            timestamp,
            mode: self.mode,
            server_pool: self.server_pool,
            operation: self.op,
            volume: self.volume,
            client_pool: self.clients,
            avg_time_s: s.avg_time_s,
            throughput_bps: s.throughput_bps,
            success: s.success,
            fail: s.fail,
            server_success: sides.server_success,
            server_fail: sides.server_fail,
            p50_s: s.p50_s,
            p90_s: s.p90_s,
            p99_s: s.p99_s,
            max_s: s.max_s,
            wall_s: s.wall_s,
            aggregate_bps: s.aggregate_bps,
            bytes_verified: s.bytes_verified,
            errors: std::iter::once(s.errors_text())
                .chain(sides.problems)
                .filter(|e| !e.is_empty())
                .collect::<Vec<_>>()
                .join("; "),
            server_cpu_s: sides.server_cpu_s,
            client_cpu_s: sides.client_cpu_s,
            server_mem_mib: sides.server_mem_mib,
            client_mem_mib: sides.client_mem_mib,
            server: sides.server,
        }
    }
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
    meta: Mutex<Metadata>,
    meta_path: PathBuf,
    /// The store and its test files: the interrupted scenario's uploads go too.
    store: PathBuf,
    keep: Vec<String>,
}

impl Shared {
    fn write_meta(&self) -> io::Result<()> {
        let m = self.meta.lock().unwrap_or_else(|e| e.into_inner());
        m.write(&self.meta_path)
    }

    fn update_meta(&self, f: impl FnOnce(&mut Metadata)) -> io::Result<()> {
        f(&mut self.meta.lock().unwrap_or_else(|e| e.into_inner()));
        self.write_meta()
    }
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
    // Ctrl-C from here on stops what was started (the ssh connections of
    // the hosts being readied too); once the CSV exists, it is left complete.
    let watched: Arc<Mutex<Option<Arc<Shared>>>> = Arc::default();
    if opts.handle_signals {
        watch_signals(watched.clone())?;
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
    // Other hosts: readied before any scenario, or one line on what is wrong.
    let mut hosts = if opts.remote.any() {
        let t = Instant::now();
        let mut said = Vec::new();
        let h = hosts::prepare(&opts.remote, &opts.exe, &mut |l| said.push(l));
        for l in &said {
            writeln!(progress, "{l}")?;
        }
        let h = h.map_err(|e| SetupError::io(e.0))?;
        h.gen_files_on_server(&files)
            .map_err(|e| SetupError::io(e.0))?;
        writeln!(
            progress,
            "hosts ready in {:.1} s; the server listens on {}, admitting {}",
            t.elapsed().as_secs_f64(),
            h.listen,
            h.allow.join(" ")
        )?;
        Some(h)
    } else {
        None
    };

    std::fs::create_dir_all(&opts.results)?;
    let start = SystemTime::now();
    let (csv_path, csv_file) = create_csv(&opts.results, &opts.prefix, start)?;
    let meta_path = csv_path.with_extension("json");
    let log_path = csv_path.with_extension("server.log");
    let w = row::csv_writer(csv_file)?;
    let launcher = match &opts.server_cmd {
        Some(t) => Launcher::local(&opts.exe).with_server_template(t, opts.server_label.as_deref()),
        None => Launcher::local(&opts.exe),
    };
    let shared = Arc::new(Shared {
        csv: Mutex::new(w),
        meta: Mutex::new(metadata(
            opts,
            &launcher,
            &csv_path,
            (&files, hosts.as_ref()),
            start,
            scenarios.len(),
        )),
        meta_path: meta_path.clone(),
        store: store.clone(),
        keep: keep.clone(),
    });
    shared.write_meta()?;
    let cc = shared
        .meta
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .tcp_congestion
        .clone();
    if let Some(t) = cc {
        writeln!(
            progress,
            "TCP congestion control: servers {}; clients {}",
            t.servers, t.clients
        )?;
    }
    *watched.lock().unwrap_or_else(|e| e.into_inner()) = Some(shared.clone());
    // One core's speed before the first scenario and after the last: how
    // busy the host was, for whoever reads the CPU figures.
    let mut calibration: Vec<machine::Calibration> =
        machine::calibrate("start").into_iter().collect();

    let mut hashes = UploadHashes::new(&sums);
    let t0 = Instant::now();
    let mut rows = Vec::with_capacity(scenarios.len());
    for (i, sc) in scenarios.iter().enumerate() {
        let title = format!(
            "{} scenario {}/{}: {sc}",
            utc_stamp(SystemTime::now()),
            i + 1,
            scenarios.len(),
        );
        let tag = format!("scenario {}", i + 1);
        let result = run_scenario(
            opts,
            &launcher,
            sc,
            (&store, &files),
            (&log_path, &title, &tag),
            &mut hashes,
            hosts.as_ref(),
        );
        if process::interrupted() {
            // The signal watcher stopped this scenario's processes and ends the
            // process: this half-finished scenario gets no row.
            loop {
                std::thread::park();
            }
        }
        let done = match result {
            Ok(r) => r,
            Err(e) => {
                let msg = format!("scenario {}/{} ({sc}) failed: {e}", i + 1, scenarios.len());
                let _ = clean_store(&store, &keep);
                shared.update_meta(|m| {
                    m.end = Some(utc_stamp(SystemTime::now()));
                    m.error = Some(msg.clone());
                })?;
                return Err(io::Error::other(msg));
            }
        };
        let row = done.row;
        {
            let mut w = shared.csv.lock().unwrap_or_else(|e| e.into_inner());
            row::write_row(&mut w, &row)?;
        }
        // A client host lost in this scenario: kept if it can still be
        // reached, else the sweep goes on without it.
        let mut dropped = Vec::new();
        if let Some(h) = hosts.as_mut() {
            for part in done.hosts.iter().filter(|p| p.lost.is_some()) {
                if let Err(why) = h.reachable(&part.host) {
                    h.without_client(&part.host);
                    let left = h.clients.as_ref().map_or(0, |c| c.hosts.len());
                    writeln!(
                        progress,
                        "client host {} lost in scenario {} and unreachable ({why}): {}",
                        part.host,
                        i + 1,
                        if left == 0 {
                            "no client host left".to_string()
                        } else {
                            format!("the sweep goes on with {left} client host(s)")
                        }
                    )?;
                    dropped.push(LostHost {
                        scenario: i + 1,
                        host: part.host.clone(),
                        why,
                    });
                }
            }
        }
        if let Some(why) = &done.failure {
            writeln!(progress, "scenario {} ({sc}) could not run: {why}", i + 1)?;
        }
        shared.update_meta(|m| {
            m.scenarios_done = i + 1;
            if let Some(why) = &done.failure {
                m.scenario_errors.push(ScenarioError {
                    scenario: i + 1,
                    error: why.clone(),
                });
            }
            m.vmhwm_kib.push(VmHwm {
                scenario: i + 1,
                server: done.server_peak_kib,
                pool: done.pool_peak_kib,
            });
            let cost = |p: &PssPeak| SamplerCost {
                samples: p.samples,
                secs: p.secs,
                cpu_s: p.cpu_s,
                max_gap_s: p.max_gap_s,
                raised_priority: p.raised_priority,
            };
            m.pss_sampler.push(SamplerCosts {
                scenario: i + 1,
                server: cost(&done.sampled[0]),
                pool: cost(&done.sampled[1]),
            });
            if !done.hosts.is_empty() {
                m.client_hosts.push(ScenarioHosts {
                    scenario: i + 1,
                    hosts: done.hosts.clone(),
                });
            }
            m.lost_hosts.extend(dropped.iter().cloned());
        })?;
        if hosts
            .as_ref()
            .is_some_and(|h| !opts.remote.client_hosts.is_empty() && h.clients.is_none())
        {
            let msg = format!(
                "every client host is lost (the last in scenario {}): the sweep cannot go on",
                i + 1
            );
            shared.update_meta(|m| m.error = Some(msg.clone()))?;
            return Err(io::Error::other(msg));
        }
        let done_hosts = done.hosts;
        let done = i + 1;
        let elapsed = t0.elapsed().as_secs_f64();
        let eta = elapsed / done as f64 * (scenarios.len() - done) as f64;
        writeln!(
            progress,
            "[{done:>3}/{}] {} srv={} {} {} x{}{}: ok {}/{} srv {}/{} avg {:.4}s p99 {:.4}s agg {} cpu srv {:.2} s / pool {:.2} s PSS MB srv {:.1} pool {:.1} | {:.1}s elapsed, ETA {:.0}s{}",
            scenarios.len(),
            row.mode.name(),
            row.server_pool,
            row.operation,
            row.volume,
            row.client_pool,
            host_counts(&done_hosts),
            row.success,
            row.client_pool,
            summary::count(row.server_success),
            summary::count(row.server_fail),
            row.avg_time_s,
            row.p99_s,
            summary::mbps(row.aggregate_bps),
            row.server_cpu_s,
            row.client_cpu_s,
            row.server_mem_mib,
            row.client_mem_mib,
            elapsed,
            eta,
            if row.errors.is_empty() {
                String::new()
            } else {
                format!(" FAILURES: {}", row.errors)
            }
        )?;
        rows.push(row);
    }
    let secs = t0.elapsed().as_secs_f64();
    let all_ok = rows.iter().all(Row::ok);
    calibration.extend(machine::calibrate("end"));
    shared.update_meta(|m| {
        m.calibration = calibration.clone();
        m.end = Some(utc_stamp(SystemTime::now()));
        m.duration_s = Some(secs);
        m.all_ok = Some(all_ok);
    })?;
    writeln!(progress)?;
    summary::write_table(progress, &rows)?;
    if rows.iter().any(|r| r.server_success.is_none()) {
        writeln!(
            progress,
            "(srv ok / srv fail: - where the server keeps no task counts: it does not answer STATS as fsbench does; the CSV leaves them empty)"
        )?;
    }
    writeln!(progress)?;
    // Client hosts, given: the clients ran elsewhere (there are none here).
    summary::write_cpu_table(progress, &rows, !opts.remote.client_hosts.is_empty())?;
    summary::write_calibration(progress, &calibration)?;
    if hashes.computed > 0 {
        writeln!(
            progress,
            "\nupload contents hashed once for the sweep: {} ({:.1} s, outside the scenarios; kept in {})",
            hashes.computed,
            hashes.secs,
            sums.display()
        )?;
    }
    crate::report::at_sweep_end(progress, &csv_path)?;
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
    launcher: &Launcher,
    sc: &Scenario,
    (store, files): (&Path, &[TestFile]),
    (log, title, tag): (&Path, &str, &str),
    hashes: &mut UploadHashes,
    hosts: Option<&Hosts>,
) -> io::Result<Done> {
    let keep: Vec<String> = files.iter().map(|f| f.name.clone()).collect();
    let label = launcher.server_label().to_string();
    // Before the server starts: hashing is no part of the scenario.
    let check = upload_check(opts, launcher);
    let upload_sha256 = match sc.op {
        Op::Upload if check.by_name() => {
            hashes.for_pool(UPLOAD_SEED, sc.clients, sc.volume.bytes)?
        }
        _ => Vec::new(),
    };
    let remote_server = hosts.and_then(|h| h.server.as_deref());
    // A remote server's store is cleaned there, by its supervisor, once it
    // has stopped; a local one's here.
    let clean_here = || match remote_server {
        Some(_) => Ok(0),
        None => clean_store(store, &keep),
    };
    let spec = ServerSpec {
        mode: sc.mode,
        pool: sc.server_pool,
        host: hosts.map_or("127.0.0.1".into(), |h| h.listen.clone()),
        allow: hosts.map_or(Vec::new(), |h| h.allow.clone()),
        verbose: hosts.is_some(),
        root: match hosts.and_then(Hosts::remote_store) {
            Some((remote, _)) => PathBuf::from(remote),
            None => store.to_path_buf(),
        },
        fsync: opts.fsync,
        congestion: opts.congestion.clone(),
        drain_timeout: opts.drain_timeout,
        start_timeout: opts.server_start_timeout,
    };
    let server = match ServerHandle::start(launcher, &spec, log, (title, tag), remote_server) {
        Ok(s) => s,
        // Interrupted: no row (the signal watcher ends the process).
        Err(e) if process::interrupted() => return Err(e),
        Err(e) => {
            // The scenario fails with the cause; the sweep goes on.
            clean_here()?;
            let cause = "server not ready";
            let results = (0..sc.clients)
                .map(|i| ClientResult::failed(i, cause, e.to_string()))
                .collect();
            let rep = PoolReport::not_run(sc.mode, sc.op, sc.volume, results);
            let sides = Sides {
                server: label,
                ..Sides::default()
            };
            return Ok(Done {
                row: sc.row(utc_stamp(SystemTime::now()), &Summary::of(&rep), sides),
                server_peak_kib: 0,
                pool_peak_kib: 0,
                sampled: [PssPeak::default(), PssPeak::default()],
                failure: Some(e.to_string()),
                hosts: Vec::new(),
            });
        }
    };
    let mut server = server;
    // The server's CPU and memory over the pool's run: from here to the
    // pool's end it does nothing but serve the pool.
    server.begin_measure()?;
    let mut popts = PoolOpts::new(
        sc.mode,
        sc.op,
        sc.volume,
        sc.clients,
        server.addr.to_string(),
    );
    popts.timeout = opts.client_timeout;
    popts.congestion = opts.congestion.clone();
    popts.exe = opts.exe.clone();
    popts.seed = UPLOAD_SEED;
    popts.upload_sha256 = upload_sha256;
    popts.upload_check = check;
    popts.remote = hosts.and_then(|h| h.clients.clone());
    popts.before_go = server.take_ready_probe().map(Arc::new);
    let result = pool::run(&popts);
    let measured = server.end_measure();
    let counts = match &result {
        // A client's task, and its upload's read-back GET (a task too).
        Ok(rep) => {
            let read_back = match (sc.op, check.reads_back()) {
                (Op::Upload, true) => rep.results.iter().filter(|r| r.stored.is_some()).count(),
                _ => 0,
            };
            server.task_counts((rep.connected() + read_back) as u64)
        }
        Err(_) => Ok(None),
    };
    if let (Ok(rep), ServerKind::Template { .. }) = (&result, launcher.server_kind()) {
        // Another server's uploads go with DELETE (what it does not delete
        // leaves the store folder with the clean-up after it stops).
        delete_uploads(&server, rep);
    }
    // Ours drains for --drain-timeout itself, then exits: it gets 5 s more.
    // Another server is killed once the drain timeout is over.
    let grace = match launcher.server_kind() {
        ServerKind::Fsbench => Duration::from_secs(5),
        ServerKind::Template { .. } => Duration::ZERO,
    };
    let stopped = server.stop(opts.drain_timeout + grace);
    clean_here()?;
    let rep = result?;
    let measured = measured?;
    let counts = counts?;
    let stopped = stopped?;
    let mut problems = Vec::new();
    if stopped.killed {
        problems.push("server killed: it did not stop after SIGTERM: 1".to_string());
    } else if !stopped.status.success() && *launcher.server_kind() == ServerKind::Fsbench {
        // Ours exits 0 on SIGTERM; another server may end by the signal.
        problems.push(format!(
            "server exited with {} after SIGTERM: 1",
            stopped.status
        ));
    }
    let sides = Sides {
        server_success: counts.map(|c| c.0),
        server_fail: counts.map(|c| c.1),
        server_cpu_s: measured.cpu_s,
        client_cpu_s: rep.cpu_s,
        server_mem_mib: measured.pss.peak_kib as f64 / 1024.0,
        client_mem_mib: rep.pss.peak_kib as f64 / 1024.0,
        server: label,
        problems,
    };
    Ok(Done {
        row: sc.row(utc_stamp(SystemTime::now()), &Summary::of(&rep), sides),
        server_peak_kib: measured.vmhwm_kib,
        pool_peak_kib: rep.peak_rss_kib,
        sampled: [measured.pss, rep.pss],
        failure: None,
        hosts: rep.hosts,
    })
}

/// ` on 198.18.0.2:3 198.18.0.3:2` (client host: clients; `LOST` after a
/// lost one), or nothing when the clients ran here.
fn host_counts(parts: &[HostPart]) -> String {
    if parts.is_empty() {
        return String::new();
    }
    let each: Vec<String> = parts
        .iter()
        .map(|p| {
            format!(
                "{}:{}{}",
                p.host,
                p.clients,
                if p.lost.is_some() { " LOST" } else { "" }
            )
        })
        .collect();
    format!(" on {}", each.join(" "))
}

/// How this sweep checks uploads: as asked, else by name on ours (its
/// SHA-256 names) and by reading them back on another server.
fn upload_check(opts: &SweepOpts, launcher: &Launcher) -> UploadCheck {
    opts.upload_check.unwrap_or(match launcher.server_kind() {
        ServerKind::Fsbench => UploadCheck::Name,
        ServerKind::Template { .. } => UploadCheck::Readback,
    })
}

/// DELETEs what the pool's clients uploaded (best effort).
fn delete_uploads(server: &ServerHandle, rep: &PoolReport) {
    let names: Vec<&str> = rep
        .results
        .iter()
        .filter_map(|r| r.stored.as_deref())
        .collect();
    if names.is_empty() {
        return;
    }
    if let Ok(mut c) = crate::client::Client::connect(server.addr, Duration::from_secs(10)) {
        for n in names {
            if c.delete(n).is_err() {
                // A server may close after an ERROR: a fresh connection each time.
                match crate::client::Client::connect(server.addr, Duration::from_secs(10)) {
                    Ok(fresh) => c = fresh,
                    Err(_) => return,
                }
            }
        }
    }
}

/// A finished scenario: its CSV row and what the metadata adds.
struct Done {
    row: Row,
    /// VmHWM of the server and its worker processes, summed.
    server_peak_kib: u64,
    pool_peak_kib: u64,
    /// The server's and the pool's PSS samplers (their cost).
    sampled: [PssPeak; 2],
    /// Why the scenario could not run (its server never got ready).
    failure: Option<String>,
    /// Each client host's share, when the clients ran on other hosts.
    hosts: Vec<HostPart>,
}

/// Removes everything in the store but the test files (of every volume, not
/// only this sweep's): the scenario's uploads and any temporary file left in `.tmp`
/// by a server no longer running.
pub fn clean_store(store: &Path, keep: &[String]) -> io::Result<usize> {
    let mut removed = 0;
    for e in std::fs::read_dir(store)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ft = e.file_type()?;
        if ft.is_dir() {
            if name == crate::store::TMP_DIR {
                removed += crate::store::remove_abandoned_temps(&e.path())?.files;
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

/// Stops the sweep on SIGINT/SIGTERM: the tracked servers, pool children and
/// ssh connections first, then, once the CSV exists (`watched`), with its
/// lock held (so no row is half-written), the metadata; then exits with 128
/// + the signal.
fn watch_signals(watched: Arc<Mutex<Option<Arc<Shared>>>>) -> io::Result<()> {
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
            let left = process::stop_all(Duration::from_secs(35));
            crate::launch::ssh::remove_control_folders();
            let shared = watched.lock().unwrap_or_else(|e| e.into_inner()).clone();
            // Held until the exit: no row is written after this point.
            let mut _csv = None;
            let when = match &shared {
                Some(shared) => {
                    let _ = clean_store(&shared.store, &shared.keep);
                    _csv = Some(shared.csv.lock().unwrap_or_else(|e| e.into_inner()));
                    let _ = shared.update_meta(|m| {
                        m.end = Some(utc_stamp(SystemTime::now()));
                        m.interrupted_by_signal = Some(sig);
                    });
                    "finished rows are kept"
                }
                None => "before any scenario",
            };
            eprintln!(
                "fsbench sweep: interrupted by signal {sig}; {when}{}",
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

/// What each side's connections use, for the metadata.
fn tcp_congestion(
    opts: &SweepOpts,
    launcher: &Launcher,
    server_host: &str,
    hosts: Option<&Hosts>,
) -> TcpCongestion {
    let cc = &opts.congestion;
    // An unparsable host is a name, never loopback here.
    let ip = server_host
        .parse::<std::net::IpAddr>()
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let remote_clients = hosts.is_some_and(|h| h.clients.is_some());
    let remote_server = hosts.is_some_and(|h| h.server.is_some());
    TcpCongestion {
        setting: cc.to_string(),
        system_default: crate::tcp::system_default(),
        servers: match launcher.server_kind() {
            ServerKind::Fsbench => cc.describe_at(ip, remote_server.then_some("the server host's")),
            ServerKind::Template { .. } => {
                "the server's own (this setting reaches only the clients)".into()
            }
        },
        clients: cc.describe_at(ip, remote_clients.then_some("each client host's")),
    }
}

/// The run's metadata: enough to reproduce it.
fn metadata(
    opts: &SweepOpts,
    launcher: &Launcher,
    csv: &Path,
    (files, hosts): (&[TestFile], Option<&Hosts>),
    start: SystemTime,
    total: usize,
) -> Metadata {
    let spec = ServerSpec {
        mode: Mode::Thread,
        pool: 1,
        host: hosts.map_or("127.0.0.1".into(), |h| h.listen.clone()),
        allow: hosts.map_or(Vec::new(), |h| h.allow.clone()),
        verbose: hosts.is_some(),
        root: opts.work.join("store"),
        fsync: opts.fsync,
        congestion: opts.congestion.clone(),
        drain_timeout: opts.drain_timeout,
        start_timeout: opts.server_start_timeout,
    };
    let names = |v: Vec<&str>| v.into_iter().map(String::from).collect();
    Metadata {
        tool: format!("fsbench {} sweep", env!("CARGO_PKG_VERSION")),
        version: machine::version().into(),
        csv: csv.display().to_string(),
        start: utc_stamp(start),
        end: None,
        duration_s: None,
        scenarios_total: total,
        scenarios_done: 0,
        all_ok: None,
        error: None,
        interrupted_by_signal: None,
        git: machine::git(&opts.exe),
        rustc: machine::rustc(),
        build_profile: machine::build_profile().into(),
        machine: machine::this_machine(),
        fsync: opts.fsync,
        matrix: Matrix {
            modes: names(opts.modes.iter().map(|m| m.name()).collect()),
            operations: names(opts.ops.iter().map(|o| o.name()).collect()),
            volumes: opts.volumes.iter().map(|v| v.label()).collect(),
            volume_bytes: opts.volumes.iter().map(|v| v.bytes).collect(),
            client_pools: opts.clients.clone(),
            server_pools: opts.servers.clone(),
            repeat: opts.repeat,
        },
        server: launcher.server_label().to_string(),
        server_command: match hosts.and_then(|h| Some((h.server.as_ref()?, h.remote_store()?))) {
            Some((s, (store, _))) => {
                let spec = ServerSpec {
                    root: PathBuf::from(store),
                    ..spec.clone()
                };
                let remote = Launcher::local(&s.host.bin);
                format!(
                    "on {} over ssh, kept by `{} supervise`: {}",
                    s.host.host,
                    s.host.bin,
                    remote.describe_server(&spec)
                )
            }
            None => launcher.describe_server(&spec),
        },
        client_pool: ClientPool {
            same_mode_as_server: true,
            client_timeout_s: opts.client_timeout.as_secs_f64(),
            upload_seed: UPLOAD_SEED,
            upload_check: match upload_check(opts, launcher) {
                UploadCheck::Name => "name: the name the server returns is compared with the SHA-256 of the client's content, computed once per sweep (seeds per client index, the same in every scenario) and kept in work/sha256",
                UploadCheck::Readback => "readback: after the timed part, each upload is fetched with GET under the name the server reported and compared byte for byte with what was sent",
                UploadCheck::Both => "both: the name checked against the content's SHA-256, and each upload read back with GET and compared byte for byte",
            }
            .into(),
        },
        measurement: Measurement {
            server_cpu_s: "utime + stime + cutime + cstime of /proc/PID/stat over the server and its descendants, from just before the pool starts to just after it ends".into(),
            client_cpu_s: "getrusage: RUSAGE_THREAD of each client thread (thread mode) or RUSAGE_SELF of each client process (process mode), plus the pool's coordinating thread".into(),
            mem_mib: "peak of the summed PSS (Pss: of /proc/PID/smaps_rollup) of each side's processes, sampled at the start, every 100 ms, once all clients are up, and at the end of the pool's run".into(),
            pss_sampler: "per scenario and side: samples taken, seconds covered, the sampler thread's own CPU, the longest gap between samples, whether it ran at the raised priority".into(),
            pss_sampler_nice: measure::SAMPLER_NICE,
            vmhwm_kib: "VmHWM summed over each side's processes: counts pages shared after fork once per process".into(),
            clock_ticks_per_s: crate::sys::clock_ticks_per_sec(),
            pss_sample_period_s: measure::SAMPLE_PERIOD.as_secs_f64(),
        },
        scenario_errors: Vec::new(),
        vmhwm_kib: Vec::new(),
        pss_sampler: Vec::new(),
        calibration: Vec::new(),
        tcp_congestion: Some(tcp_congestion(opts, launcher, &spec.host, hosts)),
        test_files: files
            .iter()
            .map(|f| TestFileMeta {
                name: f.name.clone(),
                bytes: f.bytes,
                sha256: f.sha256.clone(),
            })
            .collect(),
        argv: opts.argv.clone(),
        hosts: hosts.map_or(Vec::new(), |h| {
            h.all()
                .into_iter()
                .map(|(role, r)| HostMeta {
                    role: role.into(),
                    host: r.host.clone(),
                    address: r.address.clone(),
                    machine: r.info.machine.clone(),
                    arch: r.info.arch.clone(),
                    fsbench: r.info.version.clone(),
                    binary: r.bin.clone(),
                    copied: r.copied,
                })
                .collect()
        }),
        client_hosts: Vec::new(),
        lost_hosts: Vec::new(),
    }
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
