//! The commands our coordinator runs on other hosts over ssh (not for
//! users, though harmless): `supervise` (a remote server's keeper) and
//! `host-info` (this binary's version and machine, as JSON).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{opt, opt_path, Argv, Failure, Stdout};
use crate::launch::ssh::HostInfo;
use crate::launch::supervise::{self, SuperviseOpts};
use crate::load::sweep::clean_store;

pub(super) const FLAGS: &str = "\
supervise flags (run over ssh by the sweep): [--port-on ADDR] [--signal-leader]
  [--clean-store DIR] [--heartbeat SECS] -- PROGRAM ARGS...   runs PROGRAM in a group
  of its own; stdin lines START, END (prints SUPERVISE MEASURED {json}), TERM, KILL,
  PING; stdin's end (or, with --heartbeat, no line for SECS) kills it
host-info: this binary's version, architecture and machine, as one JSON line
";

#[derive(Debug, Default, PartialEq)]
struct SuperviseArgs {
    port_on: Option<String>,
    signal_leader: bool,
    clean_store: Option<PathBuf>,
    heartbeat: Option<f64>,
    program: Vec<String>,
}

impl SuperviseArgs {
    fn parse(mut argv: Argv) -> Result<SuperviseArgs, String> {
        let a = &mut argv.flags;
        let mut parsed = SuperviseArgs {
            port_on: opt(a, "--port-on")?,
            signal_leader: a.contains("--signal-leader"),
            clean_store: opt_path(a, "--clean-store")?,
            heartbeat: opt(a, "--heartbeat")?,
            program: Vec::new(),
        };
        parsed.program = argv
            .operands()?
            .into_iter()
            .map(|o| o.to_string_lossy().into_owned())
            .collect();
        if parsed.program.is_empty() {
            return Err("supervise: no program given (after --)".into());
        }
        Ok(parsed)
    }
}

pub(super) fn supervise(argv: Argv) -> Result<ExitCode, Failure> {
    let a = SuperviseArgs::parse(argv).map_err(|m| Failure::usage(m, Some(FLAGS)))?;
    let opts = SuperviseOpts {
        port_on: a.port_on,
        signal_leader: a.signal_leader,
        program: a.program,
        heartbeat: a
            .heartbeat
            .map(|s| super::secs("--heartbeat", s))
            .transpose()
            .map_err(|m| Failure::usage(m, Some(FLAGS)))?,
    };
    let store = a.clean_store;
    let st = supervise::run(&opts, || {
        if let Some(dir) = &store {
            // The test files stay; uploads and abandoned temporaries go.
            if let Err(e) = clean_store(dir, &[]) {
                super::note(format_args!(
                    "fsbench supervise: cleaning {}: {e}",
                    dir.display()
                ));
            }
        }
    })
    .map_err(|e| Failure::failed("supervise", e))?;
    Ok(ExitCode::from(st.code().unwrap_or(1).clamp(0, 255) as u8))
}

pub(super) fn host_info<W: Write>(argv: Argv, out: &mut Stdout<W>) -> Result<ExitCode, Failure> {
    argv.finish().map_err(|m| Failure::usage(m, Some(FLAGS)))?;
    let json =
        serde_json::to_string(&HostInfo::here()).map_err(|e| Failure::failed("host-info", e))?;
    writeln!(out, "{json}").map_err(|e| Failure::failed("host-info", e))?;
    Ok(ExitCode::SUCCESS)
}
