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
pub mod ssh;
pub mod supervise;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::server::Mode;

/// Where and how processes are started: the pool's clients are always our
/// own binary; the server under test is ours, or any server started from a
/// shell template.
#[derive(Debug, Clone)]
pub struct Launcher {
    exe: PathBuf,
    server: ServerKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ServerKind {
    /// `fsbench serve`.
    Fsbench,
    /// `sh -c TEMPLATE` with `{mode}`, `{pool}`, `{port}`, `{host}` and
    /// `{root}` replaced, in a process group of its own.
    Template { template: String, label: String },
}

/// The placeholders a server template may hold.
pub const PLACEHOLDERS: [&str; 5] = ["mode", "pool", "port", "host", "root"];

/// Checks that `template` names only known placeholders (`{mode}`, ...).
pub fn check_template(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else {
            return Err(format!("unclosed '{{' in the server template {template:?}"));
        };
        let word = &after[..j];
        if !PLACEHOLDERS.contains(&word) {
            return Err(format!(
                "unknown placeholder {{{word}}} in the server template (known: {})",
                PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
            ));
        }
        rest = &after[j + 1..];
    }
    Ok(())
}

/// `template` with its placeholders replaced.
pub fn expand(template: &str, spec: &ServerSpec, port: u16) -> String {
    expand_with_port(template, spec, &port.to_string())
}

/// [`expand`] with `port` as given (`{port}` itself keeps it for the host
/// that picks the port).
pub fn expand_with_port(template: &str, spec: &ServerSpec, port: &str) -> String {
    template
        .replace("{mode}", spec.mode.name())
        .replace("{pool}", &spec.pool.to_string())
        .replace("{port}", port)
        .replace("{host}", &spec.host)
        .replace("{root}", &spec.root.display().to_string())
}

/// The server a scenario needs.
#[derive(Debug, Clone)]
pub struct ServerSpec {
    pub mode: Mode,
    pub pool: usize,
    /// The address it listens on (loopback, or the one its clients reach).
    pub host: String,
    /// Its `--allow` (ours): who may connect; empty: its default (loopback).
    pub allow: Vec<String>,
    /// Ours logs every connection (`-v`): with other hosts, the log shows
    /// who connected.
    pub verbose: bool,
    /// The store folder (holding the test files).
    pub root: PathBuf,
    pub fsync: bool,
    /// Its `--tcp-congestion` (ours; another server sets its own).
    pub congestion: crate::tcp::Congestion,
    /// Its `--drain-timeout` (ours), and how long any server gets to stop
    /// after SIGTERM before it is killed.
    pub drain_timeout: Duration,
    /// How long a template server gets to answer a LIST after it starts.
    pub start_timeout: Duration,
}

impl Launcher {
    pub fn local(exe: impl Into<PathBuf>) -> Launcher {
        Launcher {
            exe: exe.into(),
            server: ServerKind::Fsbench,
        }
    }

    /// A launcher whose servers come from `template` (see [`ServerKind::Template`]).
    pub fn with_server_template(self, template: &str, label: Option<&str>) -> Launcher {
        let label = label.map(String::from).unwrap_or_else(|| {
            template
                .split_whitespace()
                .next()
                .unwrap_or("server")
                .to_string()
        });
        Launcher {
            server: ServerKind::Template {
                template: template.to_string(),
                label,
            },
            ..self
        }
    }

    /// The binary this launcher runs.
    pub fn exe(&self) -> &Path {
        &self.exe
    }

    pub fn server_kind(&self) -> &ServerKind {
        &self.server
    }

    /// The server's label in the results: `fsbench`, or the template's.
    pub fn server_label(&self) -> &str {
        match &self.server {
            ServerKind::Fsbench => "fsbench",
            ServerKind::Template { label, .. } => label,
        }
    }

    /// `serve` arguments for `spec`, listening on a free loopback port.
    pub fn server_args(spec: &ServerSpec) -> Vec<String> {
        let mut a: Vec<String> = [
            "serve",
            "--host",
            &spec.host,
            "--port",
            "0",
            "--mode",
            spec.mode.name(),
            "--pool",
            &spec.pool.to_string(),
            "--drain-timeout",
            &spec.drain_timeout.as_secs_f64().to_string(),
            "--tcp-congestion",
            &spec.congestion.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if !spec.fsync {
            a.push("--no-fsync".into());
        }
        if !spec.allow.is_empty() {
            a.push("--allow".into());
            a.push(spec.allow.join(","));
        }
        if spec.verbose {
            a.push("-v".into());
        }
        a.push("--root".into());
        a.push(spec.root.display().to_string());
        a
    }

    /// The command that starts our server for `spec` (stdout piped for its
    /// `LISTENING` line; stderr is the caller's to set).
    pub fn fsbench_server_command(&self, spec: &ServerSpec) -> Command {
        let mut cmd = Command::new(self.exe());
        cmd.args(Self::server_args(spec))
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        cmd
    }

    /// The command that starts a template server for `spec` on `port`
    /// (stdout and stderr piped, for the log).
    pub fn template_server_command(template: &str, spec: &ServerSpec, port: u16) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(expand(template, spec, port))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
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
        match &self.server {
            ServerKind::Fsbench => {
                let args = Self::server_args(spec).join(" ").replace(
                    &format!("--mode {} --pool {}", spec.mode.name(), spec.pool),
                    "--mode MODE --pool POOL",
                );
                format!("{} {args}", self.exe().display())
            }
            ServerKind::Template { template, .. } => format!("sh -c {template:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServerSpec {
        ServerSpec {
            mode: Mode::Process,
            pool: 5,
            host: "127.0.0.1".into(),
            allow: Vec::new(),
            verbose: false,
            root: PathBuf::from("/w/store"),
            fsync: true,
            congestion: crate::tcp::Congestion::Auto,
            drain_timeout: Duration::from_secs(30),
            start_timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn our_server_gets_the_congestion_control_of_the_spec() {
        let a = Launcher::server_args(&spec());
        let at = a.iter().position(|w| w == "--tcp-congestion").unwrap();
        assert_eq!(a[at + 1], "auto");
        let named = ServerSpec {
            congestion: crate::tcp::Congestion::Named("cubic".into()),
            ..spec()
        };
        let a = Launcher::server_args(&named);
        let at = a.iter().position(|w| w == "--tcp-congestion").unwrap();
        assert_eq!(a[at + 1], "cubic");
    }

    #[test]
    fn a_template_gets_its_placeholders_and_nothing_else() {
        let t = "python3 file_server.py --mode {mode} --workers {pool} --port {port} --host {host} --root {root}";
        assert_eq!(check_template(t), Ok(()));
        assert_eq!(
            expand(t, &spec(), 7001),
            "python3 file_server.py --mode process --workers 5 --port 7001 --host 127.0.0.1 --root /w/store"
        );
        assert!(check_template("x --p {prot}")
            .unwrap_err()
            .contains("{prot}"));
        assert!(check_template("x {mode").unwrap_err().contains("unclosed"));
        let l = Launcher::local("/b/fsbench").with_server_template(t, None);
        assert_eq!(l.server_label(), "python3");
        let l = Launcher::local("/b/fsbench").with_server_template(t, Some("mine"));
        assert_eq!(l.server_label(), "mine");
        assert_eq!(Launcher::local("/b/fsbench").server_label(), "fsbench");
    }
}
