//! The command line: `fsbench serve | client …`.
//!
//! Flags are parsed into plain structs first, then validated into the
//! library's configs. Exit codes: 0 success; 1 the server answered ERROR or a
//! check failed (reason on stderr); 2 usage error.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use pico_args::Arguments;

use crate::client::{Client, ClientError};
use crate::server::ServerConfig;

pub const USAGE: &str = "\
usage: fsbench <command> [flags]

commands:
  serve    run the file server
  client   one request: list | get NAME [-o FILE] [--expect-sha256 HEX] |
           upload PATH [--name NAME] | delete NAME | stats
  pool | sweep | gen-files   the load generator (flags below)
  help     this text

serve flags:
  --host ADDR           listen address (default 127.0.0.1)
  --port N              port, 0 for any free one (default 7000)
  --root DIR            the store (default files/)
  --mode thread|process worker pool kind (default thread)
  --pool N              workers (default 5)
  --queue N             ready connections waiting for a worker (default 64)
  --max-connections N   connections held by the event loop (default 4096)
  --backlog N           listen backlog (default 1024)
  --max-line BYTES      longest request line (default 65536)
  --max-upload-line B   longest base64 line in an upload body (default 16777216)
  --max-upload BYTES    largest upload (default 1073741824)
  --idle-timeout SECS   close after this long without a byte (default 60)
  --request-timeout S   a request line must arrive within this (default 30)
  --drain-timeout SECS  on SIGTERM, how long transfers may finish (default 30)
  --no-fsync            do not fsync uploads (benchmarks; recorded in results)
  -v                    one log line per connection event

client flags: --host ADDR (default 127.0.0.1) --port N (default 7000) --timeout SECS (default 60)
";

fn usage_error(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("fsbench: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

pub fn main() -> ExitCode {
    let mut args = Arguments::from_env();
    let cmd = match args.subcommand() {
        Ok(Some(c)) => c,
        Ok(None) => return usage_error("missing command"),
        Err(e) => return usage_error(e),
    };
    // `fsbench <command> -h` prints the usage too.
    if cmd != "pool-worker" && args.contains(["-h", "--help"]) {
        print!("{USAGE}\n{}", crate::load::cli::USAGE);
        return ExitCode::SUCCESS;
    }
    match cmd.as_str() {
        "serve" => serve_main(args),
        "client" => client_main(args),
        "pool" => crate::load::cli::pool_main(args),
        "pool-worker" => crate::load::cli::pool_worker_main(args),
        "sweep" => crate::load::cli::sweep_main(args),
        "gen-files" => crate::load::cli::gen_files_main(args),
        "help" | "-h" | "--help" => {
            print!("{USAGE}\n{}", crate::load::cli::USAGE);
            ExitCode::SUCCESS
        }
        other => usage_error(format!("unknown command {other:?}")),
    }
}

/// Seconds from a flag: positive, finite, at most 10^9 (so deadlines never overflow).
pub(crate) fn secs(v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v <= 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!("{v} is not a number of seconds between 0 and 10^9"))
    }
}

/// `--host` and `--port`, with the defaults every command shares.
fn parse_host_port(args: &mut Arguments) -> Result<(String, u16), String> {
    let e = |e: pico_args::Error| e.to_string();
    let host: String = args
        .opt_value_from_str("--host")
        .map_err(e)?
        .unwrap_or_else(|| "127.0.0.1".into());
    let port: u16 = args
        .opt_value_from_str("--port")
        .map_err(e)?
        .unwrap_or(7000);
    Ok((host, port))
}

fn parse_serve(args: &mut Arguments) -> Result<ServerConfig, String> {
    let e = |e: pico_args::Error| e.to_string();
    let mut cfg = ServerConfig::default();
    let (host, port) = parse_host_port(args)?;
    cfg.addr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|_| format!("invalid --host {host:?}"))?;
    if let Some(r) = args.opt_value_from_str::<_, PathBuf>("--root").map_err(e)? {
        cfg.root = r;
    }
    if let Some(m) = args.opt_value_from_str::<_, String>("--mode").map_err(e)? {
        cfg.mode = m.parse()?;
    }
    let pos = |name: &str, v: usize| {
        if v == 0 {
            Err(format!("{name} must be at least 1"))
        } else {
            Ok(v)
        }
    };
    if let Some(n) = args.opt_value_from_str("--pool").map_err(e)? {
        cfg.pool = pos("--pool", n)?;
    }
    if let Some(n) = args.opt_value_from_str("--queue").map_err(e)? {
        cfg.queue = pos("--queue", n)?;
    }
    if let Some(n) = args.opt_value_from_str("--max-connections").map_err(e)? {
        cfg.max_connections = pos("--max-connections", n)?;
    }
    if let Some(n) = args.opt_value_from_str("--backlog").map_err(e)? {
        cfg.backlog = n;
    }
    if let Some(n) = args.opt_value_from_str("--max-line").map_err(e)? {
        cfg.limits.max_line = pos("--max-line", n)?;
    }
    if let Some(n) = args.opt_value_from_str("--max-upload-line").map_err(e)? {
        cfg.limits.max_upload_line = pos("--max-upload-line", n)?;
    }
    if let Some(n) = args.opt_value_from_str("--max-upload").map_err(e)? {
        cfg.limits.max_upload = n;
    }
    if let Some(s) = args.opt_value_from_str("--idle-timeout").map_err(e)? {
        cfg.limits.idle_timeout = secs(s)?;
    }
    if let Some(s) = args.opt_value_from_str("--request-timeout").map_err(e)? {
        cfg.limits.request_timeout = secs(s)?;
    }
    if let Some(s) = args.opt_value_from_str("--drain-timeout").map_err(e)? {
        cfg.drain_timeout = secs(s)?;
    }
    if args.contains("--no-fsync") {
        cfg.fsync = false;
    }
    args.contains("--fsync");
    crate::log::set_verbose(args.contains("-v") || args.contains("--verbose"));
    Ok(cfg)
}

fn serve_main(mut args: Arguments) -> ExitCode {
    let cfg = match parse_serve(&mut args) {
        Ok(c) => c,
        Err(m) => return usage_error(m),
    };
    let rest = args.finish();
    if !rest.is_empty() {
        return usage_error(format!("unexpected arguments: {rest:?}"));
    }
    match crate::server::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::log::info(format_args!("server failed: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// Connection flags shared by the client commands.
pub struct ConnFlags {
    pub addr: String,
    pub timeout: Duration,
}

pub fn parse_conn(args: &mut Arguments) -> Result<ConnFlags, String> {
    let e = |e: pico_args::Error| e.to_string();
    let (host, port) = parse_host_port(args)?;
    let timeout: f64 = args
        .opt_value_from_str("--timeout")
        .map_err(e)?
        .unwrap_or(60.0);
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(ConnFlags {
        addr,
        timeout: secs(timeout)?,
    })
}

enum ClientCmd {
    List,
    Get {
        name: String,
        out: Option<PathBuf>,
        sha: Option<String>,
    },
    Upload {
        path: PathBuf,
        name: Option<String>,
    },
    Delete(String),
    Stats,
}

fn parse_client(args: &mut Arguments) -> Result<(ConnFlags, ClientCmd), String> {
    let e = |e: pico_args::Error| e.to_string();
    let sub = args
        .subcommand()
        .map_err(e)?
        .ok_or("missing client command")?;
    let conn = parse_conn(args)?;
    let cmd = match sub.as_str() {
        "list" => ClientCmd::List,
        "stats" => ClientCmd::Stats,
        "get" => {
            let out = args.opt_value_from_str(["-o", "--output"]).map_err(e)?;
            let sha: Option<String> = args.opt_value_from_str("--expect-sha256").map_err(e)?;
            if let Some(s) = &sha {
                if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err("--expect-sha256 needs 64 hex digits".into());
                }
            }
            let name = args.free_from_str().map_err(|_| "get needs a NAME")?;
            ClientCmd::Get {
                name,
                out,
                sha: sha.map(|s| s.to_ascii_lowercase()),
            }
        }
        "upload" => {
            let name = args.opt_value_from_str("--name").map_err(e)?;
            let path = args
                .free_from_os_str(|s| Ok::<_, String>(PathBuf::from(s)))
                .map_err(|_| "upload needs a PATH")?;
            ClientCmd::Upload { path, name }
        }
        "delete" => ClientCmd::Delete(args.free_from_str().map_err(|_| "delete needs a NAME")?),
        other => return Err(format!("unknown client command {other:?}")),
    };
    Ok((conn, cmd))
}

fn client_main(mut args: Arguments) -> ExitCode {
    let (conn, cmd) = match parse_client(&mut args) {
        Ok(x) => x,
        Err(m) => return usage_error(m),
    };
    let rest = args.finish();
    if !rest.is_empty() {
        return usage_error(format!("unexpected arguments: {rest:?}"));
    }
    match run_client(&conn, cmd) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fsbench client: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_client(conn: &ConnFlags, cmd: ClientCmd) -> Result<(), ClientError> {
    let mut c = Client::connect(conn.addr.as_str(), conn.timeout)?;
    let mut stdout = io::stdout().lock();
    match cmd {
        ClientCmd::List => {
            for name in c.list()? {
                writeln!(stdout, "{name}")?;
            }
        }
        ClientCmd::Stats => {
            let v = c.stats()?;
            writeln!(
                stdout,
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            )?;
        }
        ClientCmd::Delete(name) => {
            c.delete(&name)?;
            eprintln!("deleted {name}");
        }
        ClientCmd::Get { name, out, sha } => {
            let d = match &out {
                Some(path) => {
                    // Written beside the target and renamed only once verified.
                    let tmp = part_path(path);
                    let mut f = io::BufWriter::new(
                        File::options().write(true).create_new(true).open(&tmp)?,
                    );
                    let r = c.get(&name, &mut f).and_then(|d| {
                        f.flush()?;
                        check_sha(&name, &d.sha256, sha.as_deref())?;
                        std::fs::rename(&tmp, path)?;
                        Ok(d)
                    });
                    match r {
                        Ok(d) => d,
                        Err(e) => {
                            let _ = std::fs::remove_file(&tmp);
                            return Err(e);
                        }
                    }
                }
                None => {
                    let d = c.get(&name, &mut stdout)?;
                    check_sha(&name, &d.sha256, sha.as_deref())?;
                    d
                }
            };
            eprintln!("got {name}: {} bytes, sha256 {}", d.bytes, d.sha256);
        }
        ClientCmd::Upload { path, name } => {
            let mut f = File::open(&path)?;
            let u = c.upload(name.as_deref(), &mut f)?;
            writeln!(stdout, "{}", u.name)?;
            eprintln!(
                "uploaded {} as {}: {} bytes, sha256 {}",
                path.display(),
                u.name,
                u.bytes,
                u.sha256
            );
        }
    }
    Ok(())
}

/// The temporary file of `get -o PATH`: PATH's own name plus a suffix, so it
/// never is (nor clobbers) another file, e.g. `x.part` beside `-o x.pdf`.
fn part_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.part", std::process::id()));
    path.with_file_name(name)
}

fn check_sha(name: &str, got: &str, want: Option<&str>) -> Result<(), ClientError> {
    match want {
        Some(w) if w != got => Err(ClientError::Verify(format!(
            "{name}: sha256 {got}, expected {w}"
        ))),
        _ => Ok(()),
    }
}
