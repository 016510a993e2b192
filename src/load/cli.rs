//! The command line of the load generator: `fsbench pool`, `fsbench sweep`,
//! `fsbench gen-files`, and the hidden `fsbench pool-worker` (one client of a
//! process-mode pool). Flags are parsed into the module's option structs here;
//! `src/cli.rs` only dispatches to these functions.
//!
//! Exit codes: 0 every client succeeded (and, for a sweep, no server failed);
//! 1 a failure was measured or the run could not finish; 2 usage error;
//! 128 + signal for a sweep stopped by SIGINT/SIGTERM.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use pico_args::Arguments;

use crate::cli::secs;
use crate::load::pool::{self, ClientJob, PoolOpts};
use crate::load::sweep::{self, SweepOpts};
use crate::load::{content, parse_list, summary, Op, Volume};
use crate::server::Mode;

pub const USAGE: &str = "\
load commands:
  pool       N clients doing one operation each, started together
  sweep      the scenario matrix, one fresh server per scenario, CSV in results/
  gen-files  write the test files (file_10MB.bin, ...) and their .sha256 sums

pool flags:
  --mode thread|process        clients as threads or child processes (default thread)
  --operation download|upload|list   (default download)
  --volume SIZE                10 = 10 MB, also 0.5, 100KB, 1MB (default 10)
  --clients N                  (default 1)
  --host ADDR --port N         the server (default 127.0.0.1:7000)
  --timeout SECS               per client: connect and each read/write (default 300)
  --file NAME                  what downloads fetch (default file_<volume>.bin)
  --expect-sha256 HEX          its SHA-256 (default: computed from the generator)
  --seed N                     base of the per-client upload contents (default 1)
  --json                       one JSON object instead of the text summary

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
  --drain-timeout SECS         server's drain on SIGTERM (default 30)
  --bin PATH                   fsbench binary for servers and clients (default this one)

gen-files flags: --dir DIR (default work/store) --sums DIR (default work/sha256) --volumes LIST
";

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("fsbench: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

fn e(err: pico_args::Error) -> String {
    err.to_string()
}

fn finish(args: Arguments) -> Result<(), String> {
    let rest = args.finish();
    if rest.is_empty() {
        Ok(())
    } else {
        Err(format!("unexpected arguments: {rest:?}"))
    }
}

fn exe(args: &mut Arguments) -> Result<PathBuf, String> {
    match args.opt_value_from_str::<_, PathBuf>("--bin").map_err(e)? {
        Some(p) => Ok(p),
        None => std::env::current_exe().map_err(|err| format!("cannot find this binary: {err}")),
    }
}

pub fn parse_pool(args: &mut Arguments) -> Result<(PoolOpts, bool), String> {
    let mode: Mode = args
        .opt_value_from_str("--mode")
        .map_err(e)?
        .unwrap_or(Mode::Thread);
    let op: Op = args
        .opt_value_from_str("--operation")
        .map_err(e)?
        .unwrap_or(Op::Download);
    let volume: Volume = args
        .opt_value_from_str("--volume")
        .map_err(e)?
        .unwrap_or(Volume::mb(10));
    let clients: usize = args
        .opt_value_from_str("--clients")
        .map_err(e)?
        .unwrap_or(1);
    if clients == 0 {
        return Err("--clients must be at least 1".into());
    }
    let timeout: Option<f64> = args.opt_value_from_str("--timeout").map_err(e)?;
    let conn = crate::cli::parse_conn(args)?;
    let mut opts = PoolOpts::new(mode, op, volume, clients, conn.addr);
    opts.timeout = secs(timeout.unwrap_or(300.0))?;
    opts.file = args.opt_value_from_str("--file").map_err(e)?;
    opts.expect_sha256 = args.opt_value_from_str("--expect-sha256").map_err(e)?;
    if let Some(s) = &opts.expect_sha256 {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("--expect-sha256 needs 64 hex digits".into());
        }
    }
    if let Some(s) = args.opt_value_from_str("--seed").map_err(e)? {
        opts.seed = s;
    }
    opts.exe = exe(args)?;
    let json = args.contains("--json");
    Ok((opts, json))
}

pub fn pool_main(mut args: Arguments) -> ExitCode {
    let (opts, json) = match parse_pool(&mut args).and_then(|o| finish(args).map(|_| o)) {
        Ok(x) => x,
        Err(m) => return usage_error(m),
    };
    let rep = match pool::run(&opts) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("fsbench pool: {err}");
            return ExitCode::from(1);
        }
    };
    let mut out = io::stdout().lock();
    let printed = if json {
        summary::write_json(&mut out, &rep)
    } else {
        summary::write_text(&mut out, &rep)
    };
    if printed.and_then(|_| out.flush()).is_err() {
        return ExitCode::from(1);
    }
    if rep.peak_rss_kib > rep.memory_budget_kib {
        eprintln!(
            "fsbench pool: warning: peak memory {} KiB is over the budget of {} KiB",
            rep.peak_rss_kib, rep.memory_budget_kib
        );
    }
    if rep.all_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `fsbench pool-worker`: one client of a process-mode pool (not for users).
pub fn pool_worker_main(mut args: Arguments) -> ExitCode {
    let parsed = (|| -> Result<(ClientJob, usize), String> {
        let job = ClientJob {
            op: args.value_from_str("--operation").map_err(e)?,
            bytes: args.value_from_str("--bytes").map_err(e)?,
            addr: args.value_from_str("--addr").map_err(e)?,
            timeout: secs(args.value_from_str("--timeout").map_err(e)?)?,
            file: args.value_from_str("--file").map_err(e)?,
            expect_sha256: args
                .opt_value_from_str("--expect-sha256")
                .map_err(e)?
                .unwrap_or_default(),
            seed: args.value_from_str("--seed").map_err(e)?,
            upload_sha256: Vec::new(),
        };
        let index = args.value_from_str("--index").map_err(e)?;
        Ok((job, index))
    })();
    let (job, index) = match parsed.and_then(|o| finish(args).map(|_| o)) {
        Ok(x) => x,
        Err(m) => return usage_error(m),
    };
    match pool::worker_main(&job, index) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("fsbench pool-worker: {err}");
            ExitCode::from(1)
        }
    }
}

pub fn parse_sweep(args: &mut Arguments) -> Result<SweepOpts, String> {
    let exe = exe(args)?;
    let mut o = if args.contains("--quick") {
        SweepOpts::quick(exe)
    } else {
        SweepOpts::full(exe)
    };
    if let Some(s) = args.opt_value_from_str::<_, String>("--modes").map_err(e)? {
        o.modes = parse_list(&s, "--modes")?;
    }
    if let Some(s) = args.opt_value_from_str::<_, String>("--ops").map_err(e)? {
        o.ops = parse_list(&s, "--ops")?;
    }
    if let Some(s) = args
        .opt_value_from_str::<_, String>("--volumes")
        .map_err(e)?
    {
        o.volumes = parse_list(&s, "--volumes")?;
    }
    if let Some(s) = args
        .opt_value_from_str::<_, String>("--clients")
        .map_err(e)?
    {
        o.clients = parse_list(&s, "--clients")?;
    }
    if let Some(s) = args
        .opt_value_from_str::<_, String>("--servers")
        .map_err(e)?
    {
        o.servers = parse_list(&s, "--servers")?;
    }
    if o.clients.contains(&0) || o.servers.contains(&0) {
        return Err("client and server pools must be at least 1".into());
    }
    if let Some(n) = args.opt_value_from_str("--repeat").map_err(e)? {
        if n == 0 {
            return Err("--repeat must be at least 1".into());
        }
        o.repeat = n;
    }
    if let Some(p) = args.opt_value_from_str("--work").map_err(e)? {
        o.work = p;
    }
    if let Some(p) = args.opt_value_from_str("--results").map_err(e)? {
        o.results = p;
    }
    if let Some(p) = args.opt_value_from_str("--prefix").map_err(e)? {
        o.prefix = p;
    }
    if let Some(s) = args.opt_value_from_str("--timeout").map_err(e)? {
        o.client_timeout = secs(s)?;
    }
    if let Some(s) = args.opt_value_from_str("--drain-timeout").map_err(e)? {
        o.drain_timeout = secs(s)?;
    }
    if args.contains("--no-fsync") {
        o.fsync = false;
    }
    o.handle_signals = true;
    o.argv = std::env::args().collect();
    Ok(o)
}

pub fn sweep_main(mut args: Arguments) -> ExitCode {
    let opts = match parse_sweep(&mut args).and_then(|o| finish(args).map(|_| o)) {
        Ok(x) => x,
        Err(m) => return usage_error(m),
    };
    let mut err = io::stderr();
    match sweep::run(&opts, &mut err) {
        Ok(out) if out.all_ok() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("fsbench sweep: {e}");
            ExitCode::from(1)
        }
    }
}

pub fn gen_files_main(mut args: Arguments) -> ExitCode {
    let parsed = (|| -> Result<(PathBuf, PathBuf, Vec<Volume>), String> {
        let dir = args
            .opt_value_from_str("--dir")
            .map_err(e)?
            .unwrap_or_else(|| PathBuf::from("work/store"));
        let sums = args
            .opt_value_from_str("--sums")
            .map_err(e)?
            .unwrap_or_else(|| PathBuf::from("work/sha256"));
        let vols = match args
            .opt_value_from_str::<_, String>("--volumes")
            .map_err(e)?
        {
            Some(s) => parse_list(&s, "--volumes")?,
            None => vec![Volume::mb(10), Volume::mb(50), Volume::mb(100)],
        };
        Ok((dir, sums, vols))
    })();
    let (dir, sums, vols) = match parsed.and_then(|o| finish(args).map(|_| o)) {
        Ok(x) => x,
        Err(m) => return usage_error(m),
    };
    match content::ensure_test_files(&dir, &sums, &vols) {
        Ok(files) => {
            let mut out = io::stdout().lock();
            for f in files {
                let _ = writeln!(
                    out,
                    "{}  {}  {} bytes",
                    f.sha256,
                    dir.join(&f.name).display(),
                    f.bytes
                );
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("fsbench gen-files: {err}");
            ExitCode::from(1)
        }
    }
}
