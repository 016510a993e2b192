//! `fsbench client list | get | upload | delete | stats`: one request, its
//! flags read into [`ClientArgs`], checked into a [`ClientCmd`] and a
//! connection, then run with the client library.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{flag_err, note, opt, path, sha256_hex, Argv, Conn, ConnArgs, Failure, Stdout};
use crate::client::{Client, ClientError};

pub(super) const FLAGS: &str = "\
client flags: --host ADDR (default 127.0.0.1) --port N (default 7000) --timeout SECS (default 60)
  --tcp-congestion auto|system|NAME (default auto: reno to a server on loopback)
";

/// Seconds a client command waits to connect, and for each read and write.
const DEFAULT_TIMEOUT_S: f64 = 60.0;

/// `client`'s command, flags and operands as given: typed, not yet checked.
#[derive(Debug, Default, PartialEq)]
struct ClientArgs {
    command: Option<String>,
    conn: ConnArgs,
    /// `get -o FILE`.
    output: Option<PathBuf>,
    /// `get --expect-sha256 HEX`.
    expect_sha256: Option<String>,
    /// `upload --name NAME`.
    name: Option<String>,
    /// NAME or PATH.
    operands: Vec<OsString>,
}

#[derive(Debug, PartialEq)]
enum ClientCmd {
    List,
    Get {
        name: String,
        out: Option<PathBuf>,
        /// Lower case.
        sha: Option<String>,
    },
    Upload {
        path: PathBuf,
        name: Option<String>,
    },
    Delete(String),
    Stats,
}

impl ClientArgs {
    fn parse(mut argv: Argv) -> Result<ClientArgs, String> {
        let a = &mut argv.flags;
        let command = a.subcommand().map_err(|e| e.to_string())?;
        let conn = ConnArgs::parse(a)?;
        let output = a
            .opt_value_from_os_str(["-o", "--output"], path)
            .map_err(|e| flag_err("-o", e))?;
        let expect_sha256 = opt(a, "--expect-sha256")?;
        let name = opt(a, "--name")?;
        Ok(ClientArgs {
            command,
            conn,
            output,
            expect_sha256,
            name,
            operands: argv.operands()?,
        })
    }

    fn validate(self) -> Result<(Conn, ClientCmd), String> {
        let command = self.command.ok_or("missing client command")?;
        let conn = self.conn.validate(DEFAULT_TIMEOUT_S)?;
        // A flag given to a command it does not belong to.
        for (given, flag, owner) in [
            (self.output.is_some(), "-o", "get"),
            (self.expect_sha256.is_some(), "--expect-sha256", "get"),
            (self.name.is_some(), "--name", "upload"),
        ] {
            if given && command != owner {
                return Err(format!(
                    "{flag} is a flag of client {owner}, not of {command}"
                ));
            }
        }
        let mut operands = self.operands.into_iter();
        let mut name = |what: &str| {
            operands
                .next()
                .ok_or_else(|| format!("{command} needs a {what}"))
        };
        let utf8 = |s: OsString| {
            s.into_string()
                .map_err(|s| format!("{s:?} is not a UTF-8 name"))
        };
        let cmd = match command.as_str() {
            "list" => ClientCmd::List,
            "stats" => ClientCmd::Stats,
            "get" => ClientCmd::Get {
                name: utf8(name("NAME")?)?,
                out: self.output,
                sha: self.expect_sha256.as_deref().map(sha256_hex).transpose()?,
            },
            "upload" => ClientCmd::Upload {
                path: PathBuf::from(name("PATH")?),
                name: self.name,
            },
            "delete" => ClientCmd::Delete(utf8(name("NAME")?)?),
            other => return Err(format!("unknown client command {other:?}")),
        };
        let rest: Vec<OsString> = operands.collect();
        if !rest.is_empty() {
            return Err(format!("unexpected arguments: {rest:?}"));
        }
        Ok((conn, cmd))
    }
}

fn config(argv: Argv) -> Result<(Conn, ClientCmd), Failure> {
    ClientArgs::parse(argv)
        .and_then(ClientArgs::validate)
        .map_err(|msg| Failure::usage(msg, Some(FLAGS)))
}

pub(super) fn run<W: Write>(argv: Argv, out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    let (conn, cmd) = config(argv)?;
    request(&conn, cmd, out).map_err(|e| Failure::failed("client", e))?;
    Ok(ExitCode::SUCCESS)
}

fn request<W: Write>(conn: &Conn, cmd: ClientCmd, out: &mut Stdout<W>) -> Result<(), ClientError> {
    let mut c = Client::connect_with(conn.addr.as_str(), conn.timeout, &conn.congestion)?;
    match cmd {
        ClientCmd::List => {
            for name in c.list()? {
                writeln!(out, "{name}").map_err(ClientError::sink)?;
            }
        }
        ClientCmd::Stats => {
            let v = c.stats()?;
            let text = serde_json::to_string_pretty(&v).unwrap_or_default();
            writeln!(out, "{text}").map_err(ClientError::sink)?;
        }
        ClientCmd::Delete(name) => {
            c.delete(&name)?;
            note(format_args!("deleted {name}"));
        }
        ClientCmd::Get {
            name,
            out: file,
            sha,
        } => {
            let d = match &file {
                Some(path) => get_to_file(&mut c, &name, path, sha.as_deref())?,
                None => {
                    let d = c.get(&name, out)?;
                    // Whatever stdout holds back must reach it before we say "got".
                    out.flush().map_err(ClientError::sink)?;
                    check_sha(&name, &d.sha256, sha.as_deref())?;
                    d
                }
            };
            note(format_args!(
                "got {name}: {} bytes, sha256 {}",
                d.bytes, d.sha256
            ));
        }
        ClientCmd::Upload { path, name } => {
            let mut f = File::open(&path).map_err(ClientError::source)?;
            let u = c.upload(name.as_deref(), &mut f)?;
            writeln!(out, "{}", u.name).map_err(ClientError::sink)?;
            note(format_args!(
                "uploaded {} as {}: {} bytes, sha256 {}",
                path.display(),
                u.name,
                u.bytes,
                u.sha256
            ));
        }
    }
    Ok(())
}

/// `get -o PATH`: written beside the target and renamed only once verified.
fn get_to_file(
    c: &mut Client,
    name: &str,
    path: &Path,
    sha: Option<&str>,
) -> Result<crate::client::Download, ClientError> {
    let tmp = part_path(path);
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(ClientError::sink)?;
    let mut f = io::BufWriter::new(file);
    let r = c.get(name, &mut f).and_then(|d| {
        f.flush().map_err(ClientError::sink)?;
        check_sha(name, &d.sha256, sha)?;
        std::fs::rename(&tmp, path).map_err(ClientError::sink)?;
        Ok(d)
    });
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

/// The temporary file of `get -o PATH`: PATH's own name plus a suffix, so it
/// never is (nor clobbers) another file, e.g. `x.pdf.<pid>.part` beside `-o x.pdf`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::argv;
    use std::time::Duration;

    fn check(args: &[&str]) -> Result<(Conn, ClientCmd), String> {
        ClientArgs::parse(argv(args)).and_then(ClientArgs::validate)
    }

    fn cmd(args: &[&str]) -> ClientCmd {
        check(args).unwrap().1
    }

    #[test]
    fn flags_are_read_as_given_then_checked() {
        let raw = ClientArgs::parse(argv(&["list", "-o", "x", "--timeout", "0"])).unwrap();
        assert_eq!(raw.command.as_deref(), Some("list"));
        assert_eq!(raw.conn.timeout, Some(0.0));
        assert_eq!(raw.output, Some(PathBuf::from("x")));
        assert_eq!(
            raw.validate().unwrap_err(),
            "--timeout: 0 is not a number of seconds between 0 and 10^9"
        );
        assert_eq!(
            check(&["list", "-o", "x"]).unwrap_err(),
            "-o is a flag of client get, not of list"
        );
    }

    #[test]
    fn each_command_and_its_operand() {
        let (conn, c) =
            check(&["list", "--host", "::1", "--port", "9", "--timeout", "2.5"]).unwrap();
        assert_eq!(c, ClientCmd::List);
        assert_eq!(conn.addr, "[::1]:9");
        assert_eq!(conn.timeout, Duration::from_secs_f64(2.5));
        let (conn, _) = check(&["stats"]).unwrap();
        assert_eq!(conn.addr, "127.0.0.1:7000");
        assert_eq!(conn.timeout, Duration::from_secs(60));
        let sha = "AB".repeat(32);
        assert_eq!(
            cmd(&["get", "n.bin", "-o", "out", "--expect-sha256", &sha]),
            ClientCmd::Get {
                name: "n.bin".into(),
                out: Some("out".into()),
                sha: Some("ab".repeat(32)),
            }
        );
        assert_eq!(
            cmd(&["upload", "--name", "-n-", "p"]),
            ClientCmd::Upload {
                path: "p".into(),
                name: Some("-n-".into())
            }
        );
        assert_eq!(cmd(&["delete", "--", "-x"]), ClientCmd::Delete("-x".into()));
    }

    #[test]
    fn wrong_commands_flags_and_operands_are_usage_errors() {
        for (args, msg) in [
            (&[][..], "missing client command"),
            (&["frobnicate"], "unknown client command \"frobnicate\""),
            (&["get"], "get needs a NAME"),
            (&["upload"], "upload needs a PATH"),
            (&["delete"], "delete needs a NAME"),
            (&["get", "-x"], "unknown flag \"-x\""),
            (&["list", "extra"], "unexpected arguments: [\"extra\"]"),
            (
                &["get", "x", "--expect-sha256", "abc"],
                "--expect-sha256 needs 64 hex digits",
            ),
            (
                &["list", "--name", "n"],
                "--name is a flag of client upload, not of list",
            ),
        ] {
            assert_eq!(check(args).unwrap_err(), msg, "{args:?}");
        }
        let e = check(&["list", "--port", "notaport"]).unwrap_err();
        assert!(e.starts_with("--port: failed to parse 'notaport'"), "{e}");
        let f = config(argv(&["get"])).unwrap_err();
        assert!(f
            .message()
            .starts_with("fsbench: get needs a NAME\n\nusage: fsbench"));
        assert!(f.message().ends_with(FLAGS));
    }

    #[test]
    fn a_part_file_is_named_after_its_target() {
        let p = part_path(Path::new("d/x.pdf"));
        assert_eq!(
            p,
            PathBuf::from(format!("d/x.pdf.{}.part", std::process::id()))
        );
    }
}
