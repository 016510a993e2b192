//! `fsbench serve`: the file server's flags, read into [`ServeArgs`], then
//! checked into a [`ServerConfig`]. The server itself is [`crate::server::run`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{at_least_1, flag_err, opt, opt_path, secs, Argv, Failure, HostPort};
use crate::server::allow::AllowList;
use crate::server::{Mode, ServerConfig};

pub(super) const FLAGS: &str = "\
serve flags:
  --host ADDR           listen address (default 127.0.0.1)
  --port N              port, 0 for any free one (default 7000)
  --allow CIDR[,CIDR...] the networks whose clients are served (IPv4 or IPv6;
                        a plain address is /32 or /128; the flag may repeat);
                        others are closed unread. Default: loopback only
                        (127.0.0.0/8, ::1), and required for any other --host
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
  --unterminated-wait MS a request sent without its line end is served once the
                        client has been quiet this long (default 100; 0: off)
  --fsync               an upload is on disk before it is acknowledged (the default)
  --no-fsync            do not fsync uploads (benchmarks; recorded in results)
  --tcp-congestion auto|system|NAME
                        TCP congestion control of the connections: auto sets
                        reno on a loopback address (pacing, as BBR does, costs
                        CPU there for nothing) and keeps the system's default
                        elsewhere; system always keeps it (default auto)
  -v, --verbose         one log line per connection event
";

/// The longest `--unterminated-wait`: past it a client would have met the
/// request and idle timeouts long before.
const MAX_UNTERMINATED_WAIT_MS: u64 = 3_600_000;

/// `serve`'s flags as given: typed, not yet checked; `None` is a default.
#[derive(Debug, Default, PartialEq)]
struct ServeArgs {
    at: HostPort,
    /// Every `--allow` value, in order.
    allow: Vec<String>,
    root: Option<PathBuf>,
    mode: Option<Mode>,
    pool: Option<usize>,
    queue: Option<usize>,
    max_connections: Option<usize>,
    backlog: Option<i32>,
    max_line: Option<usize>,
    max_upload_line: Option<usize>,
    max_upload: Option<u64>,
    idle_timeout: Option<f64>,
    request_timeout: Option<f64>,
    drain_timeout: Option<f64>,
    unterminated_wait_ms: Option<u64>,
    fsync: bool,
    no_fsync: bool,
    congestion: Option<crate::tcp::Congestion>,
    verbose: bool,
}

/// A checked `serve` command line.
#[derive(Debug)]
struct Serve {
    cfg: ServerConfig,
    verbose: bool,
}

impl ServeArgs {
    fn parse(mut argv: Argv) -> Result<ServeArgs, String> {
        let a = &mut argv.flags;
        let parsed = ServeArgs {
            at: HostPort::parse(a)?,
            allow: a
                .values_from_str("--allow")
                .map_err(|e| flag_err("--allow", e))?,
            root: opt_path(a, "--root")?,
            mode: opt(a, "--mode")?,
            pool: opt(a, "--pool")?,
            queue: opt(a, "--queue")?,
            max_connections: opt(a, "--max-connections")?,
            backlog: opt(a, "--backlog")?,
            max_line: opt(a, "--max-line")?,
            max_upload_line: opt(a, "--max-upload-line")?,
            max_upload: opt(a, "--max-upload")?,
            idle_timeout: opt(a, "--idle-timeout")?,
            request_timeout: opt(a, "--request-timeout")?,
            drain_timeout: opt(a, "--drain-timeout")?,
            unterminated_wait_ms: opt(a, "--unterminated-wait")?,
            fsync: a.contains("--fsync"),
            no_fsync: a.contains("--no-fsync"),
            congestion: opt(a, "--tcp-congestion")?,
            verbose: a.contains(["-v", "--verbose"]),
        };
        argv.finish()?;
        Ok(parsed)
    }

    fn validate(self) -> Result<Serve, String> {
        let d = ServerConfig::default();
        let or = |v: Option<usize>, flag: &str, default: usize| match v {
            Some(n) => at_least_1(flag, n),
            None => Ok(default),
        };
        let or_secs = |v: Option<f64>, flag: &str, default| match v {
            Some(s) => secs(flag, s),
            None => Ok(default),
        };
        if self.fsync && self.no_fsync {
            return Err("--fsync and --no-fsync contradict each other".into());
        }
        let addr = self.at.listen_addr()?;
        let cfg = ServerConfig {
            addr,
            allow: allow_list(&self.allow, addr)?,
            root: self.root.unwrap_or(d.root),
            mode: self.mode.unwrap_or(d.mode),
            pool: or(self.pool, "--pool", d.pool)?,
            queue: or(self.queue, "--queue", d.queue)?,
            max_connections: or(self.max_connections, "--max-connections", d.max_connections)?,
            backlog: self.backlog.unwrap_or(d.backlog),
            fsync: !self.no_fsync,
            congestion: match self.congestion {
                Some(c) => {
                    c.check().map_err(|e| format!("--tcp-congestion: {e}"))?;
                    c
                }
                None => d.congestion,
            },
            limits: crate::protocol::Limits {
                max_line: or(self.max_line, "--max-line", d.limits.max_line)?,
                max_upload_line: or(
                    self.max_upload_line,
                    "--max-upload-line",
                    d.limits.max_upload_line,
                )?,
                max_upload: self.max_upload.unwrap_or(d.limits.max_upload),
                idle_timeout: or_secs(self.idle_timeout, "--idle-timeout", d.limits.idle_timeout)?,
                request_timeout: or_secs(
                    self.request_timeout,
                    "--request-timeout",
                    d.limits.request_timeout,
                )?,
            },
            drain_timeout: or_secs(self.drain_timeout, "--drain-timeout", d.drain_timeout)?,
            unterminated_wait: match self.unterminated_wait_ms {
                Some(ms) if ms > MAX_UNTERMINATED_WAIT_MS => {
                    return Err(format!(
                        "--unterminated-wait: {ms} ms is more than {MAX_UNTERMINATED_WAIT_MS} (an hour)"
                    ))
                }
                Some(ms) => Duration::from_millis(ms),
                None => d.unterminated_wait,
            },
        };
        Ok(Serve {
            cfg,
            verbose: self.verbose,
        })
    }
}

/// The networks a server on `addr` serves: those given, or loopback alone
/// for a server on loopback. Beyond loopback anyone on the network could
/// reach the server (and delete files), so there `--allow` must say who may.
fn allow_list(given: &[String], addr: std::net::SocketAddr) -> Result<AllowList, String> {
    if given.is_empty() {
        return if addr.ip().is_loopback() {
            Ok(AllowList::loopback())
        } else {
            Err(format!(
                "--allow is required to listen on {}, which is not loopback: \
                 name the networks whose clients may connect (e.g. --allow 198.18.0.0/24)",
                addr.ip()
            ))
        };
    }
    AllowList::parse(&given.join(",")).map_err(|e| format!("--allow: {e}"))
}

fn config(argv: Argv) -> Result<Serve, Failure> {
    ServeArgs::parse(argv)
        .and_then(ServeArgs::validate)
        .map_err(|msg| Failure::usage(msg, Some(FLAGS)))
}

pub(super) fn run(argv: Argv) -> Result<ExitCode, Failure> {
    let serve = config(argv)?;
    crate::log::set_verbose(serve.verbose);
    match crate::server::run(serve.cfg) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            // The server's stderr is its log: the reason is a log line too.
            crate::log::info(format_args!("server failed: {e}"));
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::argv;

    fn check(args: &[&str]) -> Result<Serve, String> {
        ServeArgs::parse(argv(args)).and_then(ServeArgs::validate)
    }

    #[test]
    fn flags_are_read_as_given_then_checked() {
        let raw = ServeArgs::parse(argv(&[
            "--port",
            "0",
            "--mode",
            "process",
            "--pool",
            "0",
            "--idle-timeout",
            "-1",
            "-v",
        ]))
        .unwrap();
        assert_eq!(
            raw,
            ServeArgs {
                at: HostPort {
                    host: None,
                    port: Some(0)
                },
                mode: Some(Mode::Process),
                pool: Some(0),
                idle_timeout: Some(-1.0),
                verbose: true,
                ..ServeArgs::default()
            }
        );
        // Zero workers and negative seconds are well-formed; only checking refuses them.
        assert_eq!(raw.validate().unwrap_err(), "--pool must be at least 1");
        assert_eq!(
            check(&["--idle-timeout", "-1"]).unwrap_err(),
            "--idle-timeout: -1 is not a number of seconds between 0 and 10^9"
        );
    }

    #[test]
    fn no_flags_give_the_servers_defaults() {
        let s = check(&[]).unwrap();
        assert_eq!(
            format!("{:?}", s.cfg),
            format!("{:?}", ServerConfig::default())
        );
        assert!(s.cfg.fsync);
        assert!(!s.verbose);
    }

    #[test]
    fn every_flag_reaches_the_config() {
        let s = check(&[
            "--host",
            "::1",
            "--port",
            "9",
            "--allow",
            "::1,10.0.0.0/8",
            "--root",
            "r",
            "--mode",
            "process",
            "--pool",
            "2",
            "--queue",
            "3",
            "--max-connections",
            "4",
            "--backlog",
            "5",
            "--max-line",
            "6",
            "--max-upload-line",
            "7",
            "--max-upload",
            "8",
            "--idle-timeout",
            "9.5",
            "--request-timeout",
            "10",
            "--drain-timeout",
            "0.25",
            "--unterminated-wait",
            "250",
            "--no-fsync",
            "--verbose",
        ])
        .unwrap();
        let c = &s.cfg;
        assert_eq!(c.addr, "[::1]:9".parse().unwrap());
        assert_eq!(c.allow.to_string(), "::1/128,10.0.0.0/8");
        assert_eq!(c.root, PathBuf::from("r"));
        assert_eq!(c.mode, Mode::Process);
        assert_eq!(
            (c.pool, c.queue, c.max_connections, c.backlog),
            (2, 3, 4, 5)
        );
        assert_eq!(
            (
                c.limits.max_line,
                c.limits.max_upload_line,
                c.limits.max_upload
            ),
            (6, 7, 8)
        );
        assert_eq!(c.limits.idle_timeout, Duration::from_secs_f64(9.5));
        assert_eq!(c.limits.request_timeout, Duration::from_secs(10));
        assert_eq!(c.drain_timeout, Duration::from_millis(250));
        assert_eq!(c.unterminated_wait, Duration::from_millis(250));
        assert!(!c.fsync);
        assert!(s.verbose);
    }

    #[test]
    fn the_unterminated_wait_is_100_ms_unless_said_and_0_turns_it_off() {
        assert_eq!(
            check(&[]).unwrap().cfg.unterminated_wait,
            Duration::from_millis(100)
        );
        assert_eq!(
            check(&["--unterminated-wait", "0"])
                .unwrap()
                .cfg
                .unterminated_wait,
            Duration::ZERO
        );
        assert_eq!(
            check(&["--unterminated-wait", "3600001"]).unwrap_err(),
            "--unterminated-wait: 3600001 ms is more than 3600000 (an hour)"
        );
        for bad in ["-1", "0.5", "x"] {
            let e = check(&["--unterminated-wait", bad]).unwrap_err();
            assert!(e.contains("--unterminated-wait"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_server_on_loopback_serves_loopback_alone_unless_told() {
        for host in ["127.0.0.1", "127.0.0.2", "::1"] {
            let s = check(&["--host", host]).unwrap();
            assert_eq!(s.cfg.allow, AllowList::loopback(), "{host}");
        }
        let s = check(&["--allow", "127.0.0.1"]).unwrap();
        assert_eq!(s.cfg.allow.to_string(), "127.0.0.1/32");
    }

    #[test]
    fn beyond_loopback_allow_is_required_and_taken_as_given() {
        for (host, shown) in [
            ("198.18.0.1", "198.18.0.1"),
            ("0.0.0.0", "0.0.0.0"),
            ("::", "::"),
            ("[fd00::1]", "fd00::1"),
        ] {
            assert_eq!(
                check(&["--host", host]).unwrap_err(),
                format!(
                    "--allow is required to listen on {shown}, which is not loopback: \
                     name the networks whose clients may connect (e.g. --allow 198.18.0.0/24)"
                ),
                "{host}"
            );
        }
        let f = config(argv(&["--host", "198.18.0.1", "--port", "0"])).unwrap_err();
        assert!(matches!(f, Failure::Usage { .. }));
        assert_eq!(f.exit_code(), ExitCode::from(2));
        let s = check(&["--host", "198.18.0.1", "--allow", "198.18.0.2/32"]).unwrap();
        assert_eq!(s.cfg.allow.to_string(), "198.18.0.2/32");
        // Repeated, and as a list: all of them, in order.
        let s = check(&[
            "--host",
            "::",
            "--allow",
            "198.18.0.2, 198.18.0.3",
            "--allow",
            "fd00::/8",
        ])
        .unwrap();
        assert_eq!(
            s.cfg.allow.to_string(),
            "198.18.0.2/32,198.18.0.3/32,fd00::/8"
        );
    }

    #[test]
    fn a_bad_network_is_a_usage_error_naming_it() {
        for (args, msg) in [
            (
                &["--host", "198.18.0.1", "--allow", "198.18.0.0/33"][..],
                "--allow: \"198.18.0.0/33\": the prefix must be 0 to 32",
            ),
            (
                &["--allow", "127.0.0.1,localhost"],
                "--allow: \"localhost\": not an IPv4 or IPv6 address",
            ),
            (
                &["--allow", "10.0.0.0/8", "--allow", "10.1.0.0/8"],
                "--allow: \"10.1.0.0/8\": bits are set past the prefix \
                 (the network is 10.0.0.0/8, the host 10.1.0.0)",
            ),
            (
                &["--allow", ""],
                "--allow: \"\": not an IPv4 or IPv6 address",
            ),
        ] {
            assert_eq!(check(args).unwrap_err(), msg, "{args:?}");
        }
        let e = check(&["--allow"]).unwrap_err();
        assert!(e.contains("--allow"), "{e}");
    }

    #[test]
    fn fsync_is_the_default_said_or_not_and_never_together_with_no_fsync() {
        assert!(check(&["--fsync"]).unwrap().cfg.fsync);
        assert!(!check(&["--no-fsync"]).unwrap().cfg.fsync);
        assert_eq!(
            check(&["--fsync", "--no-fsync"]).unwrap_err(),
            "--fsync and --no-fsync contradict each other"
        );
    }

    #[test]
    fn wrong_flags_and_values_are_usage_errors() {
        for (args, msg) in [
            (&["--bogus-flag"][..], "unknown flag \"--bogus-flag\""),
            (&["extra"], "unexpected arguments: [\"extra\"]"),
            (&["--timeout", "5"], "unknown flag \"--timeout\""),
            (&["--host", "localhost"], "invalid --host \"localhost\""),
            (&["--queue", "0"], "--queue must be at least 1"),
        ] {
            assert_eq!(check(args).unwrap_err(), msg, "{args:?}");
        }
        for args in [
            &["--pool", "x"][..],
            &["--mode", "fork"],
            &["--port", "70000"],
            &["--pool"],
        ] {
            let e = check(args).unwrap_err();
            assert!(e.contains(args[0]), "{args:?}: {e}");
        }
        let f = config(argv(&["--mode", "fork"])).unwrap_err();
        assert!(matches!(
            f,
            Failure::Usage {
                flags: Some(FLAGS),
                ..
            }
        ));
        assert!(f
            .message()
            .contains("unknown mode \"fork\" (thread or process)"));
    }
}
