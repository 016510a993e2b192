//! One place that starts and stops processes: servers for the sweep's
//! scenarios and the client processes of a process-mode pool.
//!
//! - [`Launcher`] makes the command for a server or a pool client (today our
//!   own binary on this machine; a shell template or a remote host would be
//!   other variants of it);
//! - [`process::Spawned`] is a child we started: tracked so that nothing
//!   outlives us (parent-death signal, [`process::stop_all`] on Ctrl-C),
//!   stopped by signal, deadline, then SIGKILL;
//! - [`server::ServerHandle`] is a server that printed `LISTENING` and
//!   accepts connections, with what the sweep asks of it (STATS task
//!   counts, its process tree to measure, stop);
//! - [`measure`] reads the CPU and memory of a local process tree.
//!
//! This module never decides what to run (the sweep and the pool do) and
//! never leaves a process it started running after its handle is gone.

pub mod measure;
pub mod process;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::server::Mode;

/// Where and how processes are started.
#[derive(Debug, Clone)]
pub enum Launcher {
    /// Our own `fsbench` binary, on this machine.
    Local { exe: PathBuf },
}

/// The server a scenario needs.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub mode: Mode,
    pub pool: usize,
    /// The store folder (holding the test files).
    pub root: PathBuf,
    pub fsync: bool,
    /// Its `--drain-timeout`.
    pub drain_timeout: Duration,
}

impl Launcher {
    pub fn local(exe: impl Into<PathBuf>) -> Launcher {
        Launcher::Local { exe: exe.into() }
    }

    /// The binary this launcher runs.
    pub fn exe(&self) -> &Path {
        match self {
            Launcher::Local { exe } => exe,
        }
    }

    /// `serve` arguments for `spec`, listening on a free loopback port.
    pub fn server_args(spec: &ServerSpec) -> Vec<String> {
        let mut a: Vec<String> = [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--mode",
            spec.mode.name(),
            "--pool",
            &spec.pool.to_string(),
            "--drain-timeout",
            &spec.drain_timeout.as_secs_f64().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !spec.fsync {
            a.push("--no-fsync".into());
        }
        a.push("--root".into());
        a.push(spec.root.display().to_string());
        a
    }

    /// The command that starts the server of `spec` (stdout piped for its
    /// `LISTENING` line; stderr is the caller's to set).
    pub fn server_command(&self, spec: &ServerSpec) -> Command {
        let mut cmd = Command::new(self.exe());
        cmd.args(Self::server_args(spec))
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        cmd
    }

    /// The command that starts one client process of a pool
    /// (`fsbench pool-worker ARGS`, stdin and stdout piped: its start signal
    /// and its result line; stderr inherited).
    pub fn pool_client_command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(self.exe());
        cmd.arg("pool-worker")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        cmd
    }

    /// How the server command reads, for the metadata (mode and pool as
    /// placeholders).
    pub fn describe_server(&self, spec: &ServerSpec) -> String {
        let args = Self::server_args(spec).join(" ").replace(
            &format!("--mode {} --pool {}", spec.mode.name(), spec.pool),
            "--mode MODE --pool POOL",
        );
        format!("{} {args}", self.exe().display())
    }
}
