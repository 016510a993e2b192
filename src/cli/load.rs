//! The load generator's commands: `fsbench pool`, `fsbench sweep`,
//! `fsbench gen-files`, and the hidden `fsbench pool-worker` (one client of a
//! process-mode pool, started by the pool with the flags of
//! `load::pool::spawn_worker`). Each reads its flags into a plain struct,
//! checks them into the load module's options, and calls its `run`.
//!
//! Exit codes: 0 every client succeeded (and, for a sweep, no server task
//! failed); 1 a failure was measured or the run could not finish; 2 usage
//! error; 128 + signal for a sweep stopped by SIGINT/SIGTERM (the sweep's own
//! signal watcher exits so).

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{
    at_least_1, opt, opt_path, required, secs, sha256_hex, Argv, ConnArgs, Failure, Stdout,
};
use crate::launch::check_template;
use crate::launch::ssh::check_host;
use crate::load::hosts::{self, RemoteOpts, SetupError, REMOTE_DIR};
use crate::load::pool::{self, ClientJob, PoolOpts, StartSignal, UploadCheck};
use crate::load::sweep::{self, SweepOpts};
use crate::load::{content, parse_list, summary, Op, Volume};
use crate::server::Mode;
use crate::tcp::Congestion;

pub(super) const FLAGS: &str = "\
pool flags:
  --mode thread|process        clients as threads or child processes (default thread)
  --operation download|upload|list   (default download)
  --volume SIZE                10 = 10 MB, also 0.5, 100KB, 1MB (default 10)
  --clients N                  (default 1)
  --host ADDR --port N         the server (default 127.0.0.1:7000)
  --timeout SECS               per client: connect and each read/write (default 300)
  --tcp-congestion auto|system|NAME   the clients' TCP congestion control: auto sets
                               reno when the server is on loopback, where pacing (BBR)
                               costs CPU for nothing, and keeps the system's default
                               elsewhere (default auto; the sweep gives its servers
                               the same)
  --file NAME                  what downloads fetch (default file_<volume>.bin)
  --expect-sha256 HEX          its SHA-256 (default: compared with the generator's bytes)
  --upload-check name|readback|both
                               an upload checked by the name the server returns (its
                               SHA-256 name: ours), read back with GET (any server), or
                               both (default name; the sweep: name for fsbench,
                               readback for a --server-cmd)
  --seed N                     base of the per-client upload contents (default 1)
  --json                       one JSON object instead of the text summary (with
                               every client's result)
  --client-hosts \"H1 H2\"      run the clients on these hosts over ssh, split as
                               evenly as can be ([user@]host; see the ssh flags below)
  --start-on-stdin             say READY once every client waits, start on a GO line
                               on stdin (how --client-hosts starts the hosts together);
                               the end of stdin ends the pool
  --first-index N              the index of the first client (default 0)
  --upload-sha256 LIST         each client's upload SHA-256, from the first index on
                               (default: hashed while sent)
  --heartbeat SECS             with --start-on-stdin: no line on stdin for SECS (the
                               coordinator sends PING) ends the pool
  --probe-list                 with --start-on-stdin: one LIST first; unanswered, say
                               NOT-READY and end (the coordinator's readiness check)

sweep flags (lists are space- or comma-separated):
  --quick                      volumes 10KB 50KB 100KB, client pools 1 2 5
  --modes LIST                 (default \"thread process\")
  --ops LIST                   (default \"download upload list\")
  --volumes LIST               (default \"10 50 100\", in MB unless suffixed)
  --clients LIST               client pools (default \"1 5 50\")
  --servers LIST               server pools (default \"1 5 50\")
  --repeat N                   run the matrix N times (default 1)
  --work DIR                   test files and the store (default work)
  --results DIR                CSV, metadata and server log (default results)
  --prefix NAME                CSV name prefix (default stress)
  --no-fsync                   servers skip fsync (recorded in the metadata)
  --timeout SECS               per client (default 300)
  --tcp-congestion auto|system|NAME   our servers' and the clients' (as for pool;
                               default auto); another server keeps its own
  --drain-timeout SECS         server's drain on SIGTERM (default 30); any server
                               still running that long after SIGTERM is killed
  --bin PATH                   fsbench binary for servers and clients (default this one)
  --server-cmd TEMPLATE        stress another server: run `sh -c TEMPLATE` per scenario,
                               with {mode} {pool} {port} {host} {root} replaced
  --server-label NAME          its name in the CSV (default: the template's first word)
  --server-start-timeout SECS  how long it gets to answer a LIST (default 30)
  --upload-check name|readback|both   (default: name for fsbench, readback otherwise)
  --server-host [USER@]HOST    run each scenario's server on that host, over ssh
  --client-hosts \"H1 H2 ...\"  run the client pools on those hosts, split as evenly as
                               can be (50 over 3: 17 17 16), started together

ssh flags (sweep and pool): every host gets our binary in its cache folder (copied
when its copy differs, by SHA-256); one multiplexed connection per host, BatchMode
  --ssh-user USER              for hosts given without one
  --ssh-opts \"OPTS\"           more ssh arguments, e.g. \"-F lab/ssh_config -p 2222\"
  --remote-dir DIR             the cache folder on each host (default .cache/fsbench,
                               under the remote user's home)

gen-files flags: --dir DIR (default work/store) --sums DIR (default work/sha256) --volumes LIST
";

/// Seconds a pool's client waits to connect, and for each read and write.
const DEFAULT_TIMEOUT_S: f64 = 300.0;

fn usage(msg: String) -> Failure {
    Failure::usage(msg, Some(FLAGS))
}

/// `--bin`, or the binary running now.
fn exe(bin: Option<PathBuf>) -> Result<PathBuf, String> {
    match bin {
        Some(p) => Ok(p),
        None => std::env::current_exe().map_err(|err| format!("cannot find this binary: {err}")),
    }
}

/// `pool`'s flags as given: typed, not yet checked.
#[derive(Debug, Default, PartialEq)]
struct PoolArgs {
    mode: Option<Mode>,
    operation: Option<Op>,
    volume: Option<Volume>,
    clients: Option<usize>,
    conn: ConnArgs,
    file: Option<String>,
    expect_sha256: Option<String>,
    seed: Option<u64>,
    bin: Option<PathBuf>,
    json: bool,
    upload_check: Option<UploadCheck>,
    start_on_stdin: bool,
    probe_list: bool,
    heartbeat: Option<f64>,
    first_index: Option<usize>,
    upload_sha256: Option<String>,
    ssh: SshArgs,
}

/// The flags that reach other hosts, as given.
#[derive(Debug, Default, PartialEq)]
struct SshArgs {
    server_host: Option<String>,
    client_hosts: Option<String>,
    ssh_user: Option<String>,
    ssh_opts: Option<String>,
    remote_dir: Option<String>,
}

impl SshArgs {
    fn parse(a: &mut pico_args::Arguments) -> Result<SshArgs, String> {
        Ok(SshArgs {
            server_host: opt(a, "--server-host")?,
            client_hosts: opt(a, "--client-hosts")?,
            ssh_user: opt(a, "--ssh-user")?,
            ssh_opts: opt(a, "--ssh-opts")?,
            remote_dir: opt(a, "--remote-dir")?,
        })
    }

    fn validate(self) -> Result<RemoteOpts, String> {
        let words = |s: &Option<String>| -> Vec<String> {
            s.as_deref()
                .unwrap_or("")
                .split(|c: char| c.is_whitespace() || c == ',')
                .filter(|w| !w.is_empty())
                .map(String::from)
                .collect()
        };
        let client_hosts = words(&self.client_hosts);
        if self.client_hosts.is_some() && client_hosts.is_empty() {
            return Err("--client-hosts: no host given".into());
        }
        let mut seen = Vec::new();
        for h in client_hosts.iter().chain(&self.server_host) {
            check_host(h).map_err(|e| format!("--server-host/--client-hosts: {e}"))?;
            if client_hosts.contains(h) && seen.contains(h) {
                return Err(format!("--client-hosts: {h} given twice"));
            }
            seen.push(h.clone());
        }
        if let Some(u) = &self.ssh_user {
            crate::launch::ssh::check_user(u).map_err(|e| format!("--ssh-user: {e}"))?;
        }
        let ssh_opts: Vec<String> = self
            .ssh_opts
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(String::from)
            .collect();
        let r = RemoteOpts {
            server_host: self.server_host,
            client_hosts,
            ssh_user: self.ssh_user,
            ssh_opts,
            remote_dir: self.remote_dir.unwrap_or_else(|| REMOTE_DIR.into()),
        };
        if !r.any() && (r.ssh_user.is_some() || !r.ssh_opts.is_empty()) {
            return Err("--ssh-user and --ssh-opts go with --server-host or --client-hosts".into());
        }
        if r.remote_dir.trim().is_empty() {
            return Err("--remote-dir: an empty folder name".into());
        }
        Ok(r)
    }
}

impl PoolArgs {
    fn parse(mut argv: Argv) -> Result<PoolArgs, String> {
        let a = &mut argv.flags;
        let parsed = PoolArgs {
            mode: opt(a, "--mode")?,
            operation: opt(a, "--operation")?,
            volume: opt(a, "--volume")?,
            clients: opt(a, "--clients")?,
            conn: ConnArgs::parse(a)?,
            file: opt(a, "--file")?,
            expect_sha256: opt(a, "--expect-sha256")?,
            seed: opt(a, "--seed")?,
            bin: opt_path(a, "--bin")?,
            json: a.contains("--json"),
            upload_check: opt(a, "--upload-check")?,
            start_on_stdin: a.contains("--start-on-stdin"),
            probe_list: a.contains("--probe-list"),
            heartbeat: opt(a, "--heartbeat")?,
            first_index: opt(a, "--first-index")?,
            upload_sha256: opt(a, "--upload-sha256")?,
            ssh: SshArgs::parse(a)?,
        };
        argv.finish()?;
        Ok(parsed)
    }

    /// The pool's options, whether to print JSON, and its client hosts.
    fn validate(self) -> Result<(PoolOpts, bool, RemoteOpts), String> {
        let clients = at_least_1("--clients", self.clients.unwrap_or(1))?;
        let conn = self.conn.validate(DEFAULT_TIMEOUT_S)?;
        let mut opts = PoolOpts::new(
            self.mode.unwrap_or(Mode::Thread),
            self.operation.unwrap_or(Op::Download),
            self.volume.unwrap_or(Volume::mb(10)),
            clients,
            conn.addr,
        );
        opts.timeout = conn.timeout;
        opts.congestion = conn.congestion;
        opts.file = self.file;
        opts.expect_sha256 = self.expect_sha256.as_deref().map(sha256_hex).transpose()?;
        if let Some(seed) = self.seed {
            opts.seed = seed;
        }
        opts.exe = exe(self.bin)?;
        opts.upload_check = self.upload_check.unwrap_or_default();
        let heartbeat = self.heartbeat.map(|h| secs("--heartbeat", h)).transpose()?;
        match (self.start_on_stdin, heartbeat) {
            (true, heartbeat) => opts.start = StartSignal::StdinLine { heartbeat },
            (false, Some(_)) => return Err("--heartbeat goes with --start-on-stdin".into()),
            (false, None) => {}
        }
        if self.probe_list && !self.start_on_stdin {
            return Err("--probe-list goes with --start-on-stdin".into());
        }
        opts.probe_list = self.probe_list;
        opts.first_index = self.first_index.unwrap_or(0);
        if let Some(list) = &self.upload_sha256 {
            opts.upload_sha256 = list
                .split(',')
                .map(|h| sha256_hex(h.trim()))
                .collect::<Result<_, _>>()
                .map_err(|e| format!("--upload-sha256: {e}"))?;
            if opts.upload_sha256.len() != clients {
                return Err(format!(
                    "--upload-sha256: {} sums for {clients} clients",
                    opts.upload_sha256.len(),
                ));
            }
        }
        if self.ssh.server_host.is_some() {
            return Err(
                "--server-host is the sweep's (it starts a server per scenario there); \
                 a pool is given its server with --host and --port"
                    .into(),
            );
        }
        let remote = self.ssh.validate()?;
        let loopback = opts
            .addr
            .parse::<std::net::SocketAddr>()
            .map_or(opts.addr.starts_with("localhost:"), |a| {
                a.ip().is_loopback()
            });
        if remote.any() && loopback {
            return Err(format!(
                "--client-hosts: the server at {} is on loopback, which other hosts cannot reach: \
                 give its address on their network (--host)",
                opts.addr
            ));
        }
        if remote.any() && self.start_on_stdin {
            return Err(
                "--start-on-stdin is for a pool on one host, not with --client-hosts".into(),
            );
        }
        Ok((opts, self.json, remote))
    }
}

pub(super) fn pool<W: Write>(argv: Argv, out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    let (mut opts, json, remote) = PoolArgs::parse(argv)
        .and_then(PoolArgs::validate)
        .map_err(usage)?;
    // Client hosts: readied first (exit 2 with the host and the cause).
    let _hosts = if remote.any() {
        let h = hosts::prepare(&remote, &opts.exe, &mut |l| {
            super::note(format_args!("{l}"))
        })
        .map_err(|e| Failure::input("pool", e))?;
        opts.remote = h.clients.clone();
        Some(h)
    } else {
        None
    };
    let rep = pool::run(&opts).map_err(|e| Failure::failed("pool", e))?;
    let printed = if json {
        summary::write_json(out, &rep)
    } else {
        summary::write_text(out, &rep)
    };
    printed
        .and_then(|()| out.flush())
        .map_err(|e| Failure::failed("pool", format!("writing the report: {e}")))?;
    if rep.peak_rss_kib > rep.memory_budget_kib {
        super::note(format_args!(
            "fsbench pool: warning: peak memory {} KiB is over the budget of {} KiB",
            rep.peak_rss_kib, rep.memory_budget_kib
        ));
    }
    Ok(if rep.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `pool-worker`'s flags as given; all but `--expect-sha256` are required.
#[derive(Debug, PartialEq)]
struct PoolWorkerArgs {
    operation: Op,
    bytes: u64,
    addr: String,
    timeout: f64,
    congestion: Congestion,
    file: String,
    expect_sha256: Option<String>,
    seed: u64,
    index: usize,
    upload_check: UploadCheck,
}

impl PoolWorkerArgs {
    fn parse(mut argv: Argv) -> Result<PoolWorkerArgs, String> {
        let a = &mut argv.flags;
        let parsed = PoolWorkerArgs {
            operation: required(a, "--operation")?,
            bytes: required(a, "--bytes")?,
            addr: required(a, "--addr")?,
            timeout: required(a, "--timeout")?,
            congestion: required(a, "--tcp-congestion")?,
            file: required(a, "--file")?,
            expect_sha256: opt(a, "--expect-sha256")?,
            seed: required(a, "--seed")?,
            index: required(a, "--index")?,
            upload_check: required(a, "--upload-check")?,
        };
        argv.finish()?;
        Ok(parsed)
    }

    /// The client's job and its index in the pool.
    fn validate(self) -> Result<(ClientJob, usize), String> {
        let job = ClientJob {
            op: self.operation,
            bytes: self.bytes,
            addr: self.addr,
            timeout: secs("--timeout", self.timeout)?,
            congestion: self.congestion,
            file: self.file,
            // Empty: a test file, checked against the generator.
            expect_sha256: self
                .expect_sha256
                .as_deref()
                .map(sha256_hex)
                .transpose()?
                .unwrap_or_default(),
            seed: self.seed,
            upload_sha256: Vec::new(),
            first_index: 0,
            upload_check: self.upload_check,
        };
        Ok((job, self.index))
    }
}

/// Not for users: its stdout is the pool's pipe, which `pool::worker_main` writes.
pub(super) fn pool_worker(argv: Argv) -> Result<ExitCode, Failure> {
    let (job, index) = PoolWorkerArgs::parse(argv)
        .and_then(PoolWorkerArgs::validate)
        .map_err(usage)?;
    pool::worker_main(&job, index).map_err(|e| Failure::failed("pool-worker", e))?;
    Ok(ExitCode::SUCCESS)
}

/// `sweep`'s flags as given: lists still as strings, nothing checked.
#[derive(Debug, Default, PartialEq)]
struct SweepArgs {
    quick: bool,
    modes: Option<String>,
    ops: Option<String>,
    volumes: Option<String>,
    clients: Option<String>,
    servers: Option<String>,
    repeat: Option<usize>,
    work: Option<PathBuf>,
    results: Option<PathBuf>,
    prefix: Option<String>,
    no_fsync: bool,
    timeout: Option<f64>,
    congestion: Option<Congestion>,
    drain_timeout: Option<f64>,
    bin: Option<PathBuf>,
    server_cmd: Option<String>,
    server_label: Option<String>,
    server_start_timeout: Option<f64>,
    upload_check: Option<UploadCheck>,
    ssh: SshArgs,
}

impl SweepArgs {
    fn parse(mut argv: Argv) -> Result<SweepArgs, String> {
        let a = &mut argv.flags;
        let parsed = SweepArgs {
            quick: a.contains("--quick"),
            modes: opt(a, "--modes")?,
            ops: opt(a, "--ops")?,
            volumes: opt(a, "--volumes")?,
            clients: opt(a, "--clients")?,
            servers: opt(a, "--servers")?,
            repeat: opt(a, "--repeat")?,
            work: opt_path(a, "--work")?,
            results: opt_path(a, "--results")?,
            prefix: opt(a, "--prefix")?,
            no_fsync: a.contains("--no-fsync"),
            timeout: opt(a, "--timeout")?,
            congestion: opt(a, "--tcp-congestion")?,
            drain_timeout: opt(a, "--drain-timeout")?,
            bin: opt_path(a, "--bin")?,
            server_cmd: opt(a, "--server-cmd")?,
            server_label: opt(a, "--server-label")?,
            server_start_timeout: opt(a, "--server-start-timeout")?,
            upload_check: opt(a, "--upload-check")?,
            ssh: SshArgs::parse(a)?,
        };
        argv.finish()?;
        Ok(parsed)
    }

    /// The sweep's options, but for how it is run (`handle_signals`, `argv`).
    fn validate(self) -> Result<SweepOpts, String> {
        let exe = exe(self.bin)?;
        let mut o = if self.quick {
            SweepOpts::quick(exe)
        } else {
            SweepOpts::full(exe)
        };
        if let Some(s) = &self.modes {
            o.modes = parse_list(s, "--modes")?;
        }
        if let Some(s) = &self.ops {
            o.ops = parse_list(s, "--ops")?;
        }
        if let Some(s) = &self.volumes {
            o.volumes = parse_list(s, "--volumes")?;
        }
        if let Some(s) = &self.clients {
            o.clients = parse_list(s, "--clients")?;
        }
        if let Some(s) = &self.servers {
            o.servers = parse_list(s, "--servers")?;
        }
        if o.clients.contains(&0) || o.servers.contains(&0) {
            return Err("client and server pools must be at least 1".into());
        }
        if let Some(n) = self.repeat {
            o.repeat = at_least_1("--repeat", n)?;
        }
        if let Some(p) = self.work {
            o.work = p;
        }
        if let Some(p) = self.results {
            o.results = p;
        }
        if let Some(p) = self.prefix {
            o.prefix = p;
        }
        let or_secs = |v: Option<f64>, flag: &str, default: Duration| match v {
            Some(s) => secs(flag, s),
            None => Ok(default),
        };
        o.client_timeout = or_secs(self.timeout, "--timeout", o.client_timeout)?;
        o.drain_timeout = or_secs(self.drain_timeout, "--drain-timeout", o.drain_timeout)?;
        o.server_start_timeout = or_secs(
            self.server_start_timeout,
            "--server-start-timeout",
            o.server_start_timeout,
        )?;
        o.fsync = !self.no_fsync;
        if let Some(c) = self.congestion {
            c.check().map_err(|e| format!("--tcp-congestion: {e}"))?;
            o.congestion = c;
        }
        o.upload_check = self.upload_check;
        match (self.server_cmd, self.server_label) {
            (Some(t), label) => {
                if t.trim().is_empty() {
                    return Err("--server-cmd: an empty template".into());
                }
                check_template(&t).map_err(|e| format!("--server-cmd: {e}"))?;
                o.server_cmd = Some(t);
                o.server_label = label;
            }
            (None, Some(_)) => return Err("--server-label goes with --server-cmd".into()),
            (None, None) => {}
        }
        o.remote = self.ssh.validate()?;
        Ok(o)
    }
}

pub(super) fn sweep(argv: Argv) -> Result<ExitCode, Failure> {
    let mut opts = SweepArgs::parse(argv)
        .and_then(SweepArgs::validate)
        .map_err(usage)?;
    // From the command line, Ctrl-C stops the sweep cleanly, and the metadata
    // records how it was called.
    opts.handle_signals = true;
    opts.argv = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    // Progress goes to stderr, one line per scenario.
    match sweep::run(&opts, &mut io::stderr()) {
        // Stopped by a signal: its watcher ends the process (with 128 + the
        // signal) once what was started is stopped; an error that stopping
        // caused here is not the sweep's outcome.
        Err(_) if crate::launch::process::interrupted() => loop {
            std::thread::park();
        },
        Ok(outcome) if outcome.all_ok() => Ok(ExitCode::SUCCESS),
        Ok(_) => Ok(ExitCode::from(1)),
        // A host that could not be readied: before any scenario, exit 2.
        Err(e) if e.get_ref().is_some_and(|i| i.is::<SetupError>()) => {
            Err(Failure::input("sweep", e))
        }
        Err(e) => Err(Failure::failed("sweep", e)),
    }
}

/// `gen-files`' flags as given.
#[derive(Debug, Default, PartialEq)]
struct GenFilesArgs {
    dir: Option<PathBuf>,
    sums: Option<PathBuf>,
    volumes: Option<String>,
}

/// Where the test files and their sums go, and which sizes.
#[derive(Debug, PartialEq)]
struct GenFiles {
    dir: PathBuf,
    sums: PathBuf,
    volumes: Vec<Volume>,
}

impl GenFilesArgs {
    fn parse(mut argv: Argv) -> Result<GenFilesArgs, String> {
        let a = &mut argv.flags;
        let parsed = GenFilesArgs {
            dir: opt_path(a, "--dir")?,
            sums: opt_path(a, "--sums")?,
            volumes: opt(a, "--volumes")?,
        };
        argv.finish()?;
        Ok(parsed)
    }

    fn validate(self) -> Result<GenFiles, String> {
        Ok(GenFiles {
            dir: self.dir.unwrap_or_else(|| PathBuf::from("work/store")),
            sums: self.sums.unwrap_or_else(|| PathBuf::from("work/sha256")),
            volumes: match &self.volumes {
                Some(s) => parse_list(s, "--volumes")?,
                None => vec![Volume::mb(10), Volume::mb(50), Volume::mb(100)],
            },
        })
    }
}

pub(super) fn gen_files<W: Write>(argv: Argv, out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    let g = GenFilesArgs::parse(argv)
        .and_then(GenFilesArgs::validate)
        .map_err(usage)?;
    let failed = |e| Failure::failed("gen-files", e);
    let files = content::ensure_test_files(&g.dir, &g.sums, &g.volumes).map_err(failed)?;
    for f in files {
        let line = format!(
            "{}  {}  {} bytes",
            f.sha256,
            g.dir.join(&f.name).display(),
            f.bytes
        );
        writeln!(out, "{line}").map_err(failed)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::argv;

    fn pool_opts(args: &[&str]) -> Result<(PoolOpts, bool), String> {
        PoolArgs::parse(argv(args))
            .and_then(PoolArgs::validate)
            .map(|(o, json, _)| (o, json))
    }

    #[test]
    fn a_client_hosts_pool_takes_what_the_coordinator_gives_it() {
        let mut given = PoolOpts::new(
            Mode::Process,
            Op::Upload,
            Volume::mb(3),
            5,
            "198.18.0.2:7000",
        );
        given.congestion = Congestion::System;
        given.timeout = Duration::from_secs(9);
        given.seed = 4;
        let words = pool::remote_pool_words(&given, "/cache/fsbench", (2, 3), false);
        assert_eq!(&words[..2], ["/cache/fsbench", "pool"]);
        let rest: Vec<&str> = words[2..].iter().map(String::as_str).collect();
        let (o, json) = pool_opts(&rest).unwrap();
        assert!(json);
        assert_eq!(o.congestion, Congestion::System);
        assert_eq!(
            (o.mode, o.op, o.volume),
            (Mode::Process, Op::Upload, Volume::mb(3))
        );
        assert_eq!((o.clients, o.first_index), (3, 2));
        assert_eq!(
            (o.addr.as_str(), o.timeout, o.seed),
            ("198.18.0.2:7000", given.timeout, 4)
        );
        given.congestion = Congestion::Named("cubic".into());
        let words = pool::remote_pool_words(&given, "fsbench", (0, 5), false);
        let at = words.iter().position(|w| w == "--tcp-congestion").unwrap();
        assert_eq!(words[at + 1], "cubic");
    }

    fn pool_remote(args: &[&str]) -> Result<RemoteOpts, String> {
        PoolArgs::parse(argv(args))
            .and_then(PoolArgs::validate)
            .map(|(_, _, r)| r)
    }

    #[test]
    fn ssh_flags_name_hosts_and_nothing_else() {
        let e = pool_remote(&["--client-hosts", "c1"]).unwrap_err();
        assert!(e.contains("on loopback"), "{e}");
        let r = pool_remote(&[
            "--host",
            "198.18.0.1",
            "--client-hosts",
            "root@198.18.0.2, 198.18.0.3",
            "--ssh-opts",
            "-F /lab/ssh_config  -p 2222",
            "--ssh-user",
            "bench",
        ])
        .unwrap();
        assert_eq!(r.client_hosts, ["root@198.18.0.2", "198.18.0.3"]);
        assert_eq!(r.ssh_opts, ["-F", "/lab/ssh_config", "-p", "2222"]);
        assert_eq!(r.ssh_user.as_deref(), Some("bench"));
        assert_eq!(r.remote_dir, REMOTE_DIR);
        assert_eq!(r.server_host, None);
        let e = pool_remote(&["--client-hosts", "-oProxyCommand=x"]).unwrap_err();
        assert!(e.contains("not a host"), "{e}");
        let e = pool_remote(&["--host", "10.0.0.1", "--client-hosts", "a a"]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
        let e = pool_remote(&["--ssh-user", "x"]).unwrap_err();
        assert!(e.contains("go with"), "{e}");
        let e = pool_remote(&[
            "--host",
            "10.0.0.1",
            "--client-hosts",
            "a",
            "--start-on-stdin",
        ])
        .unwrap_err();
        assert!(e.contains("--start-on-stdin"), "{e}");
        // A pool has no server to start: --server-host is the sweep's.
        let e = pool_remote(&["--server-host", "a"]).unwrap_err();
        assert!(e.contains("--host and --port"), "{e}");
        let s = sweep_opts(&["--server-host", "srv", "--client-hosts", "c1 c2"]).unwrap();
        assert_eq!(s.remote.server_host.as_deref(), Some("srv"));
        assert_eq!(s.remote.client_hosts, ["c1", "c2"]);
        let (o, _) = pool_opts(&[
            "--clients",
            "2",
            "--first-index",
            "1",
            "--start-on-stdin",
            "--heartbeat",
            "15",
            "--upload-sha256",
            &["a".repeat(64), "B".repeat(64)].join(","),
        ])
        .unwrap();
        assert_eq!(o.first_index, 1);
        assert_eq!(
            o.start,
            StartSignal::StdinLine {
                heartbeat: Some(Duration::from_secs(15))
            }
        );
        assert_eq!(o.upload_sha256[1], "b".repeat(64));
        let e = pool_opts(&["--clients", "3", "--upload-sha256", &"a".repeat(64)]).unwrap_err();
        assert!(e.contains("1 sums for 3 clients"), "{e}");
        let e = pool_opts(&["--heartbeat", "5"]).unwrap_err();
        assert!(e.contains("goes with --start-on-stdin"), "{e}");
    }

    fn sweep_opts(args: &[&str]) -> Result<SweepOpts, String> {
        SweepArgs::parse(argv(args)).and_then(SweepArgs::validate)
    }

    #[test]
    fn pool_flags_are_read_as_given_then_checked() {
        let raw =
            PoolArgs::parse(argv(&["--clients", "0", "--operation", "upload", "--json"])).unwrap();
        assert_eq!(
            raw,
            PoolArgs {
                clients: Some(0),
                operation: Some(Op::Upload),
                json: true,
                ..PoolArgs::default()
            }
        );
        assert_eq!(raw.validate().unwrap_err(), "--clients must be at least 1");

        let (o, json) = pool_opts(&[]).unwrap();
        assert!(!json);
        assert_eq!(
            (o.mode, o.op, o.volume, o.clients),
            (Mode::Thread, Op::Download, Volume::mb(10), 1)
        );
        assert_eq!(o.addr, "127.0.0.1:7000");
        assert_eq!(o.timeout, Duration::from_secs(300));
        assert_eq!((o.file, o.expect_sha256, o.seed), (None, None, 1));
        assert_eq!(o.exe, std::env::current_exe().unwrap());

        let (o, _) = pool_opts(&[
            "--mode",
            "process",
            "--volume",
            "100KB",
            "--clients",
            "3",
            "--port",
            "9",
            "--timeout",
            "5",
            "--file",
            "f",
            "--expect-sha256",
            &"F".repeat(64),
            "--seed",
            "7",
            "--bin",
            "/b",
        ])
        .unwrap();
        assert_eq!(
            (o.mode, o.volume, o.clients),
            (Mode::Process, Volume::kb(100), 3)
        );
        assert_eq!(
            (o.addr.as_str(), o.timeout),
            ("127.0.0.1:9", Duration::from_secs(5))
        );
        assert_eq!(o.file.as_deref(), Some("f"));
        assert_eq!(o.expect_sha256, Some("f".repeat(64)));
        assert_eq!((o.seed, o.exe), (7, PathBuf::from("/b")));
    }

    #[test]
    fn pool_usage_errors() {
        for (args, msg) in [
            (
                &["--expect-sha256", "abc"][..],
                "--expect-sha256 needs 64 hex digits",
            ),
            (
                &["--timeout", "0"],
                "--timeout: 0 is not a number of seconds between 0 and 10^9",
            ),
            (&["--jsn"], "unknown flag \"--jsn\""),
        ] {
            assert_eq!(pool_opts(args).unwrap_err(), msg, "{args:?}");
        }
        let e = pool_opts(&["--operation", "put"]).unwrap_err();
        assert!(
            e.starts_with("--operation: ") && e.contains("unknown operation \"put\""),
            "{e}"
        );
        let e = pool_opts(&["--volume", "0"]).unwrap_err();
        assert!(e.starts_with("--volume: "), "{e}");
        let f = PoolArgs::parse(argv(&["--clients", "0"]))
            .and_then(PoolArgs::validate)
            .map_err(usage)
            .unwrap_err();
        assert!(f
            .message()
            .starts_with("fsbench: --clients must be at least 1\n\nusage: fsbench"));
        assert!(f.message().ends_with(FLAGS));
    }

    #[test]
    fn a_pool_worker_takes_exactly_the_flags_the_pool_gives_it() {
        let base = [
            "--operation",
            "upload",
            "--bytes",
            "10",
            "--addr",
            "127.0.0.1:9",
            "--timeout",
            "1.5",
            "--file",
            "f",
            "--seed",
            "4",
            "--index",
            "2",
            "--upload-check",
            "readback",
            "--tcp-congestion",
            "system",
        ];
        let (job, index) = PoolWorkerArgs::parse(argv(&base))
            .and_then(PoolWorkerArgs::validate)
            .unwrap();
        assert_eq!(index, 2);
        assert_eq!(
            (job.op, job.bytes, job.addr.as_str()),
            (Op::Upload, 10, "127.0.0.1:9")
        );
        assert_eq!((job.timeout, job.seed), (Duration::from_secs_f64(1.5), 4));
        assert_eq!((job.file.as_str(), job.expect_sha256.as_str()), ("f", ""));
        assert_eq!(job.upload_check, UploadCheck::Readback);
        assert_eq!(job.congestion, Congestion::System);

        // What the pool gives its children is read back as it was.
        let mut opts = PoolOpts::new(Mode::Process, Op::Download, Volume::mb(1), 3, "127.0.0.1:9");
        opts.congestion = Congestion::Named("cubic".into());
        opts.timeout = Duration::from_secs(7);
        let given = ClientJob::of(&opts);
        let args = pool::worker_args(&given, 2);
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let (job, index) = PoolWorkerArgs::parse(argv(&words))
            .and_then(PoolWorkerArgs::validate)
            .unwrap();
        assert_eq!(index, 2);
        assert_eq!(format!("{job:?}"), format!("{given:?}"));

        let mut with_sha = base.to_vec();
        let sha = "0a".repeat(32);
        with_sha.extend(["--expect-sha256", &sha]);
        let (job, _) = PoolWorkerArgs::parse(argv(&with_sha))
            .and_then(PoolWorkerArgs::validate)
            .unwrap();
        assert_eq!(job.expect_sha256, sha);

        assert_eq!(
            PoolWorkerArgs::parse(argv(&base[2..])).unwrap_err(),
            "--operation is required"
        );
        let mut zero = base.to_vec();
        zero[7] = "0";
        assert_eq!(
            PoolWorkerArgs::parse(argv(&zero))
                .and_then(PoolWorkerArgs::validate)
                .unwrap_err(),
            "--timeout: 0 is not a number of seconds between 0 and 10^9"
        );
    }

    #[test]
    fn sweep_flags_narrow_the_matrix() {
        let o = sweep_opts(&[]).unwrap();
        let full = SweepOpts::full(std::env::current_exe().unwrap());
        assert_eq!(format!("{o:?}"), format!("{full:?}"));
        let o = sweep_opts(&["--quick", "--bin", "/b"]).unwrap();
        assert_eq!(
            format!("{o:?}"),
            format!("{:?}", SweepOpts::quick("/b".into()))
        );

        let o = sweep_opts(&[
            "--modes",
            "thread",
            "--ops",
            "upload,list",
            "--volumes",
            "1 100KB",
            "--clients",
            "2",
            "--servers",
            "3,4",
            "--repeat",
            "2",
            "--work",
            "w",
            "--results",
            "r",
            "--prefix",
            "p",
            "--no-fsync",
            "--timeout",
            "9",
            "--drain-timeout",
            "0.5",
        ])
        .unwrap();
        assert_eq!(o.modes, vec![Mode::Thread]);
        assert_eq!(o.ops, vec![Op::Upload, Op::List]);
        assert_eq!(o.volumes, vec![Volume::mb(1), Volume::kb(100)]);
        assert_eq!((o.clients, o.servers, o.repeat), (vec![2], vec![3, 4], 2));
        assert_eq!((o.work, o.results), ("w".into(), "r".into()));
        assert_eq!(o.prefix, "p");
        assert!(!o.fsync);
        assert_eq!(o.client_timeout, Duration::from_secs(9));
        assert_eq!(o.drain_timeout, Duration::from_millis(500));
        assert!(!o.handle_signals, "set by the command, not by its flags");

        for (args, msg) in [
            (
                &["--clients", "1 0"][..],
                "client and server pools must be at least 1",
            ),
            (&["--repeat", "0"], "--repeat must be at least 1"),
            (&["--ops", " "], "--ops: empty list"),
            (&["--fsync"], "unknown flag \"--fsync\""),
        ] {
            assert_eq!(sweep_opts(args).unwrap_err(), msg, "{args:?}");
        }
        let e = sweep_opts(&["--modes", "thread fork"]).unwrap_err();
        assert!(e.starts_with("--modes: unknown mode \"fork\""), "{e}");
    }

    #[test]
    fn gen_files_defaults_and_volumes() {
        let check =
            |args: &[&str]| GenFilesArgs::parse(argv(args)).and_then(GenFilesArgs::validate);
        assert_eq!(
            check(&[]).unwrap(),
            GenFiles {
                dir: "work/store".into(),
                sums: "work/sha256".into(),
                volumes: vec![Volume::mb(10), Volume::mb(50), Volume::mb(100)],
            }
        );
        assert_eq!(
            check(&["--volumes", "10KB", "--dir", "d"]).unwrap().volumes,
            vec![Volume::kb(10)]
        );
        assert!(check(&["--volumes", "ten"])
            .unwrap_err()
            .starts_with("--volumes: "));
    }
}
