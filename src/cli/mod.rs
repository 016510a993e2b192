//! The command line of the `fsbench` binary, and the one module that reads
//! argv: `serve`, `client`, `pool`, `pool-worker`, `sweep`, `gen-files`,
//! `report`, `compare`, `help`, and `--version`.
//!
//! Every command goes the way of ripgrep's flags (`lowargs` → `hiargs`): its
//! flags are first read into a plain struct of the values as given (pico-args
//! checks their syntax and type, and that no unknown flag is left), and that
//! struct is then validated into the library's configuration
//! ([`ServerConfig`](crate::server::ServerConfig),
//! [`PoolOpts`](crate::load::pool::PoolOpts),
//! [`SweepOpts`](crate::load::sweep::SweepOpts), ...): defaults, ranges and
//! combinations. Only then does the command run.
//!
//! - [`serve`]: the file server;
//! - [`client`]: one request (`list`, `get`, `upload`, `delete`, `stats`);
//! - [`load`]: the load generator (`pool`, `pool-worker`, `sweep`, `gen-files`);
//! - [`report`]: a sweep's CSVs read back (`report`, `compare`).
//!
//! Exit codes: 0 success; 1 the server answered ERROR, a check or a client
//! failed, or the command could not finish (the reason on stderr); 2 usage
//! error (one line and the usage on stderr) or an input file that cannot be
//! used (one line naming it, and where in it); a sweep stopped by SIGINT or
//! SIGTERM exits with 128 + the signal. A reader of stdout that goes away
//! (`fsbench client list | head -1`) ends any command quietly with 0.
//!
//! The library never imports this module. Commands write to stdout only
//! through [`Stdout`] (never `print!`, which panics on a closed pipe), and
//! to stderr only through [`note`] or a [`Failure`].

mod client;
mod load;
mod remote;
mod report;
mod serve;

use std::convert::Infallible;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use pico_args::Arguments;

const COMMANDS: &str = "\
usage: fsbench <command> [flags]

commands:
  serve      run the file server
  client     one request: list | get NAME [-o FILE] [--expect-sha256 HEX] |
             upload PATH [--name NAME] | delete NAME | stats
             (-- before a NAME or PATH that starts with -)
  pool       N clients doing one operation each, started together
  sweep      the scenario matrix, one fresh server per scenario, CSV in results/
  gen-files  write the test files (file_10MB.bin, ...) and their .sha256 sums
  report     a sweep's CSV (or several, on the same charts) as one HTML page with charts
  compare    two sweeps' CSVs, scenario by scenario: ratios, intervals, verdicts
  supervise  (run over ssh by sweep --server-host) keep a server on this host
  host-info  (run over ssh) this binary's version and machine, as JSON
  help       this text (also -h or --help after any command)

fsbench --version (or -V) prints the version and the git commit it was built from.
";

/// The whole usage: the commands, then every command's flags.
fn help_text() -> String {
    [
        COMMANDS,
        serve::FLAGS,
        client::FLAGS,
        load::FLAGS,
        report::FLAGS,
        remote::FLAGS,
    ]
    .join("\n")
}

/// The `fsbench` binary's `main`.
pub fn main() -> ExitCode {
    let mut out = Stdout::new(io::stdout());
    let result = run(Argv::new(std::env::args_os().skip(1).collect()), &mut out);
    let flushed = out.flush();
    exit_code(result, flushed, out.reader_gone())
}

/// How a run ends. A reader of stdout that has gone wins over everything
/// else, as in ripgrep: it had what it wanted (`| head -1`), and there is
/// nobody left to tell about anything else.
fn exit_code(
    result: Result<ExitCode, Failure>,
    flushed: io::Result<()>,
    reader_gone: bool,
) -> ExitCode {
    if reader_gone {
        return ExitCode::SUCCESS;
    }
    match (result, flushed) {
        (Err(failure), _) => failure.report(),
        (Ok(_), Err(e)) => Failure::failed("stdout", e).report(),
        (Ok(code), Ok(())) => code,
    }
}

fn run<W: Write>(mut argv: Argv, out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    let usage = |msg: String| Failure::usage(msg, None);
    let cmd = argv.flags.subcommand().map_err(|e| usage(e.to_string()))?;
    // `fsbench <command> -h` prints the usage too; a pool worker's
    // arguments come from the pool, never from a user.
    if cmd.as_deref() != Some("pool-worker") && argv.flags.contains(["-h", "--help"]) {
        return help(out);
    }
    match cmd.as_deref() {
        None if argv.flags.contains(["-V", "--version"]) => {
            argv.finish().map_err(usage)?;
            writeln!(out, "{}", crate::results::machine::version())
                .map_err(|e| Failure::failed("--version", e))?;
            Ok(ExitCode::SUCCESS)
        }
        None => Err(usage("missing command".into())),
        Some("help") => help(out),
        Some("serve") => serve::run(argv),
        Some("client") => client::run(argv, out),
        Some("pool") => load::pool(argv, out),
        Some("pool-worker") => load::pool_worker(argv),
        Some("sweep") => load::sweep(argv),
        Some("gen-files") => load::gen_files(argv, out),
        Some("supervise") => remote::supervise(argv),
        Some("host-info") => remote::host_info(argv, out),
        Some("report") => report::report(argv, out),
        Some("compare") => report::compare(argv, out),
        Some(other) => Err(usage(format!("unknown command {other:?}"))),
    }
}

fn help<W: Write>(out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    out.write_all(help_text().as_bytes())
        .map_err(|e| Failure::failed("help", e))?;
    Ok(ExitCode::SUCCESS)
}

/// Why a command did not succeed.
#[derive(Debug)]
enum Failure {
    /// A wrong flag, value or argument: exit 2, with one line and the usage
    /// (the commands, then `flags`: the faulty command's, or all of them).
    Usage {
        msg: String,
        flags: Option<&'static str>,
    },
    /// The command ran and could not finish: `fsbench <command>: <msg>`, exit 1.
    Failed { command: &'static str, msg: String },
    /// An input the command cannot use (a CSV that is no sweep's, a file it
    /// must not replace): `fsbench <command>: <msg>`, exit 2, no usage.
    Input { command: &'static str, msg: String },
}

impl Failure {
    fn usage(msg: impl fmt::Display, flags: Option<&'static str>) -> Failure {
        Failure::Usage {
            msg: msg.to_string(),
            flags,
        }
    }

    fn failed(command: &'static str, msg: impl fmt::Display) -> Failure {
        Failure::Failed {
            command,
            msg: msg.to_string(),
        }
    }

    fn input(command: &'static str, msg: impl fmt::Display) -> Failure {
        Failure::Input {
            command,
            msg: msg.to_string(),
        }
    }

    /// What goes to stderr.
    fn message(&self) -> String {
        match self {
            Failure::Usage {
                msg,
                flags: Some(flags),
            } => format!("fsbench: {msg}\n\n{COMMANDS}\n{flags}"),
            Failure::Usage { msg, flags: None } => format!("fsbench: {msg}\n\n{}", help_text()),
            Failure::Failed { command, msg } | Failure::Input { command, msg } => {
                format!("fsbench {command}: {msg}")
            }
        }
    }

    fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage { .. } | Failure::Input { .. } => ExitCode::from(2),
            Failure::Failed { .. } => ExitCode::from(1),
        }
    }

    fn report(&self) -> ExitCode {
        note(format_args!("{}", self.message()));
        self.exit_code()
    }
}

/// One line on stderr. Unlike `eprintln!`, a stderr that cannot be written
/// (`2>&1 | head -1`) is no reason to panic.
fn note(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// Standard output as every command writes it. Rust ignores SIGPIPE, so a
/// write to a pipe whose reader has gone fails with `BrokenPipe`, and
/// `print!` panics on it; here the write fails like any other, and is
/// remembered, so that [`main`] ends quietly with success (see [`exit_code`]).
struct Stdout<W: Write = io::Stdout> {
    inner: W,
    reader_gone: bool,
}

impl<W: Write> Stdout<W> {
    fn new(inner: W) -> Self {
        Stdout {
            inner,
            reader_gone: false,
        }
    }

    /// Whether a write found the reader gone.
    fn reader_gone(&self) -> bool {
        self.reader_gone
    }

    fn note<T>(&mut self, r: io::Result<T>) -> io::Result<T> {
        if matches!(&r, Err(e) if e.kind() == io::ErrorKind::BrokenPipe) {
            self.reader_gone = true;
        }
        r
    }
}

impl<W: Write> Write for Stdout<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.note(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.note(r)
    }
}

/// A command's arguments after its name: the flags, for pico-args, and what
/// follows a `--`, which is never taken for a flag (a NAME may start with `-`).
struct Argv {
    flags: Arguments,
    after_dashes: Vec<OsString>,
}

impl Argv {
    fn new(mut args: Vec<OsString>) -> Argv {
        let after_dashes = match args.iter().position(|a| a == "--") {
            Some(i) => args.split_off(i).split_off(1),
            None => Vec::new(),
        };
        Argv {
            flags: Arguments::from_vec(args),
            after_dashes,
        }
    }

    /// The arguments left once every known flag has been taken: an unknown
    /// flag is an error, never an operand nor ignored.
    fn operands(self) -> Result<Vec<OsString>, String> {
        let mut operands = Vec::new();
        for a in self.flags.finish() {
            if a.len() > 1 && a.as_encoded_bytes().starts_with(b"-") {
                return Err(format!("unknown flag {a:?}"));
            }
            operands.push(a);
        }
        operands.extend(self.after_dashes);
        Ok(operands)
    }

    /// For the commands without operands: nothing may be left.
    fn finish(self) -> Result<(), String> {
        let rest = self.operands()?;
        if rest.is_empty() {
            Ok(())
        } else {
            Err(format!("unexpected arguments: {rest:?}"))
        }
    }
}

/// A flag's value, read by its type's `FromStr`: `None` when the flag is
/// absent. The error names the flag.
fn opt<T>(args: &mut Arguments, flag: &'static str) -> Result<Option<T>, String>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    args.opt_value_from_str(flag).map_err(|e| flag_err(flag, e))
}

/// A flag that must be given.
fn required<T>(args: &mut Arguments, flag: &'static str) -> Result<T, String>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    opt(args, flag)?.ok_or_else(|| format!("{flag} is required"))
}

/// A path flag's value: any bytes, not only UTF-8.
fn opt_path(args: &mut Arguments, flag: &'static str) -> Result<Option<PathBuf>, String> {
    args.opt_value_from_os_str(flag, path)
        .map_err(|e| flag_err(flag, e))
}

fn path(s: &OsStr) -> Result<PathBuf, Infallible> {
    Ok(PathBuf::from(s))
}

fn flag_err(flag: &str, e: pico_args::Error) -> String {
    match e {
        // "the '--pool' option doesn't have an associated value" names it already.
        pico_args::Error::OptionWithoutAValue(_) => e.to_string(),
        _ => format!("{flag}: {e}"),
    }
}

/// Seconds from a flag: positive, finite, at most 10^9 (so deadlines never overflow).
fn secs(flag: &str, v: f64) -> Result<Duration, String> {
    if v.is_finite() && v > 0.0 && v <= 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(format!(
            "{flag}: {v} is not a number of seconds between 0 and 10^9"
        ))
    }
}

/// A count that must be at least 1.
fn at_least_1(flag: &str, v: usize) -> Result<usize, String> {
    if v == 0 {
        Err(format!("{flag} must be at least 1"))
    } else {
        Ok(v)
    }
}

/// `--expect-sha256`: 64 hex digits, in either case; lower case from here on.
fn sha256_hex(s: &str) -> Result<String, String> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err("--expect-sha256 needs 64 hex digits".into())
    }
}

const DEFAULT_HOST: &str = "127.0.0.1";
const DEFAULT_PORT: u16 = 7000;

/// `--host` and `--port` as given.
#[derive(Debug, Default, Clone, PartialEq)]
struct HostPort {
    host: Option<String>,
    port: Option<u16>,
}

impl HostPort {
    fn parse(args: &mut Arguments) -> Result<HostPort, String> {
        Ok(HostPort {
            host: opt(args, "--host")?,
            port: opt(args, "--port")?,
        })
    }

    fn host(&self) -> &str {
        self.host.as_deref().unwrap_or(DEFAULT_HOST)
    }

    fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// Where a server listens: an IP address (v4, or v6 with or without brackets).
    fn listen_addr(&self) -> Result<SocketAddr, String> {
        let (host, port) = (self.host(), self.port());
        format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .map_err(|_| format!("invalid --host {host:?}"))
    }

    /// Where a client connects: `host:port`, a name or an address (an IPv6
    /// address in brackets), resolved when connecting.
    fn connect_addr(&self) -> String {
        let (host, port) = (self.host(), self.port());
        if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        }
    }
}

/// The connection flags of the client commands and the pool: `--host`,
/// `--port`, `--timeout`, as given.
#[derive(Debug, Default, Clone, PartialEq)]
struct ConnArgs {
    at: HostPort,
    timeout: Option<f64>,
    congestion: Option<crate::tcp::Congestion>,
}

/// Where to connect and the bound on the connect and on every read and write.
#[derive(Debug, Clone, PartialEq)]
struct Conn {
    addr: String,
    timeout: Duration,
    congestion: crate::tcp::Congestion,
}

impl ConnArgs {
    fn parse(args: &mut Arguments) -> Result<ConnArgs, String> {
        Ok(ConnArgs {
            at: HostPort::parse(args)?,
            timeout: opt(args, "--timeout")?,
            congestion: opt(args, "--tcp-congestion")?,
        })
    }

    fn validate(self, default_timeout_s: f64) -> Result<Conn, String> {
        Ok(Conn {
            addr: self.at.connect_addr(),
            timeout: secs("--timeout", self.timeout.unwrap_or(default_timeout_s))?,
            congestion: match self.congestion {
                Some(c) => {
                    c.check().map_err(|e| format!("--tcp-congestion: {e}"))?;
                    c
                }
                None => crate::tcp::Congestion::Auto,
            },
        })
    }
}

#[cfg(test)]
fn argv(args: &[&str]) -> Argv {
    Argv::new(args.iter().map(OsString::from).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_positive_finite_and_bounded_and_the_error_names_the_flag() {
        assert_eq!(secs("--t", 0.5), Ok(Duration::from_millis(500)));
        assert_eq!(secs("--t", 1e9), Ok(Duration::from_secs(1_000_000_000)));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1.5e9] {
            let e = secs("--idle-timeout", bad).unwrap_err();
            assert!(e.starts_with("--idle-timeout: "), "{e}");
        }
    }

    #[test]
    fn the_sha256_check_takes_64_hex_digits_in_either_case() {
        let upper = "AB".repeat(32);
        assert_eq!(sha256_hex(&upper), Ok("ab".repeat(32)));
        for bad in ["", "abc", &"a".repeat(63), &"a".repeat(65), &"g".repeat(64)] {
            assert_eq!(
                sha256_hex(bad),
                Err("--expect-sha256 needs 64 hex digits".to_string()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn addresses_bracket_ipv6_and_reject_a_host_that_is_no_ip_to_listen_on() {
        let at = |host: &str| HostPort {
            host: Some(host.into()),
            port: Some(9),
        };
        assert_eq!(HostPort::default().connect_addr(), "127.0.0.1:7000");
        assert_eq!(
            HostPort::default().listen_addr(),
            Ok("127.0.0.1:7000".parse().unwrap())
        );
        assert_eq!(at("::1").connect_addr(), "[::1]:9");
        assert_eq!(at("[::1]").connect_addr(), "[::1]:9");
        assert_eq!(at("localhost").connect_addr(), "localhost:9");
        assert_eq!(at("::1").listen_addr(), Ok("[::1]:9".parse().unwrap()));
        assert_eq!(
            at("localhost").listen_addr(),
            Err("invalid --host \"localhost\"".to_string())
        );
    }

    #[test]
    fn an_unknown_flag_is_an_error_and_what_follows_dashes_is_an_operand() {
        assert_eq!(
            argv(&["x", "--bogus"]).operands(),
            Err("unknown flag \"--bogus\"".to_string())
        );
        assert_eq!(
            argv(&["-q"]).operands(),
            Err("unknown flag \"-q\"".to_string())
        );
        assert_eq!(
            argv(&["x", "-", "--", "-y", "--"]).operands(),
            Ok(vec!["x".into(), "-".into(), "-y".into(), "--".into()])
        );
        assert_eq!(
            argv(&["x"]).finish(),
            Err("unexpected arguments: [\"x\"]".to_string())
        );
        assert_eq!(argv(&[]).finish(), Ok(()));
    }

    /// A writer whose reader has gone, or whose disk is full.
    struct Failing(io::ErrorKind);

    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(self.0.into())
        }
    }

    #[test]
    fn a_closed_stdout_ends_quietly_with_success_and_any_other_write_error_fails() {
        let mut gone = Stdout::new(Failing(io::ErrorKind::BrokenPipe));
        assert!(writeln!(gone, "x").is_err());
        assert!(gone.reader_gone());
        let mut full = Stdout::new(Failing(io::ErrorKind::StorageFull));
        assert!(writeln!(full, "x").is_err());
        assert!(full.flush().is_err());
        assert!(!full.reader_gone());

        let failed = || Err(Failure::failed("client", "server ERROR"));
        let pipe = || Err(io::ErrorKind::BrokenPipe.into());
        assert_eq!(exit_code(failed(), pipe(), true), ExitCode::SUCCESS);
        assert_eq!(
            exit_code(Ok(ExitCode::from(1)), Ok(()), true),
            ExitCode::SUCCESS
        );
        assert_eq!(exit_code(failed(), Ok(()), false), ExitCode::from(1));
        let disk_full = Err(io::ErrorKind::StorageFull.into());
        assert_eq!(
            exit_code(Ok(ExitCode::SUCCESS), disk_full, false),
            ExitCode::from(1)
        );
        assert_eq!(
            exit_code(Ok(ExitCode::from(1)), Ok(()), false),
            ExitCode::from(1)
        );
    }

    /// Runs a command line in-process, with stdout in memory.
    fn run_argv(args: &[&str]) -> (Result<ExitCode, Failure>, String) {
        let mut out = Stdout::new(Vec::new());
        let r = run(argv(args), &mut out);
        (r, String::from_utf8(out.inner).unwrap())
    }

    #[test]
    fn help_after_any_command_prints_every_section_and_a_wrong_command_is_a_usage_error() {
        for args in [
            &["help"][..],
            &["--help"],
            &["-h"],
            &["serve", "-h"],
            &["client", "get", "--help"],
        ] {
            let (r, text) = run_argv(args);
            assert_eq!(r.unwrap(), ExitCode::SUCCESS, "{args:?}");
            assert_eq!(text, help_text(), "{args:?}");
        }
        let text = help_text();
        assert!(text.starts_with("usage: fsbench <command>"));
        for section in [
            "serve flags:",
            "client flags:",
            "pool flags:",
            "sweep flags",
            "gen-files flags:",
            "report flags:",
            "compare flags:",
        ] {
            assert!(text.contains(section), "{section}");
        }
        for (args, line) in [
            (&[][..], "fsbench: missing command\n"),
            (&["frobnicate"], "fsbench: unknown command \"frobnicate\"\n"),
        ] {
            let f = run_argv(args).0.unwrap_err();
            assert_eq!(f.exit_code(), ExitCode::from(2));
            assert_eq!(f.message(), format!("{line}\n{text}"));
        }
        // A command's own usage error shows the commands and its own flags.
        let f = run_argv(&["serve", "--pool", "0"]).0.unwrap_err();
        assert_eq!(
            f.message(),
            format!(
                "fsbench: --pool must be at least 1\n\n{COMMANDS}\n{}",
                serve::FLAGS
            )
        );
    }

    #[test]
    fn version_prints_the_version_and_the_commit_and_takes_nothing_else() {
        for flag in ["--version", "-V"] {
            let (r, text) = run_argv(&[flag]);
            assert_eq!(r.unwrap(), ExitCode::SUCCESS);
            assert_eq!(text, format!("{}\n", crate::results::machine::version()));
        }
        let f = run_argv(&["--version", "x"]).0.unwrap_err();
        assert_eq!(f.exit_code(), ExitCode::from(2));
    }

    #[test]
    fn help_into_a_closed_pipe_ends_quietly_with_success() {
        let mut out = Stdout::new(Failing(io::ErrorKind::BrokenPipe));
        let r = run(argv(&["help"]), &mut out);
        assert!(matches!(
            r,
            Err(Failure::Failed {
                command: "help",
                ..
            })
        ));
        let flushed = out.flush();
        assert_eq!(exit_code(r, flushed, out.reader_gone()), ExitCode::SUCCESS);
    }
}
