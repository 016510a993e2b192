//! The sweep's other hosts: a server host, client hosts, or both, readied
//! before any scenario runs.
//!
//! For each host ([`crate::launch::ssh::prepare`]): a master connection, its
//! tools, our binary in its cache folder (copied only when its copy differs),
//! its version and machine. Then the addresses: a remote server listens on
//! the address our ssh reached it at; a local server serving remote clients
//! listens on the address they see us at (the same for all of them, or it is
//! an error). The server admits the client hosts and the coordinator (for its
//! readiness checks, STATS and clean-up), and loopback, nothing else. A
//! remote server's test files are generated there (`fsbench gen-files`) and
//! their SHA-256 checked against ours.
//!
//! Any failure is a [`SetupError`]: one line naming the host and the cause,
//! before any scenario; the command line exits 2 on it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::launch::server::RemoteServer;
use crate::launch::ssh::{self, RemoteHost, Ssh};
use crate::load::content::TestFile;
use crate::load::pool::RemoteClients;

/// The flags that put the sweep (or a pool) on other hosts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RemoteOpts {
    pub server_host: Option<String>,
    pub client_hosts: Vec<String>,
    pub ssh_user: Option<String>,
    pub ssh_opts: Vec<String>,
    /// The cache folder on each host (relative: under the remote user's home).
    pub remote_dir: String,
}

/// The default cache folder on a remote host, under its user's home.
pub const REMOTE_DIR: &str = ".cache/fsbench";

impl RemoteOpts {
    pub fn any(&self) -> bool {
        self.server_host.is_some() || !self.client_hosts.is_empty()
    }
}

/// A host that could not be readied, or addresses that do not fit.
#[derive(Debug)]
pub struct SetupError(pub String);

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SetupError {}

impl SetupError {
    pub fn io(msg: String) -> std::io::Error {
        std::io::Error::other(SetupError(msg))
    }
}

/// The readied hosts of a sweep.
pub struct Hosts {
    pub ssh: Arc<Ssh>,
    pub server: Option<Arc<RemoteServer>>,
    pub clients: Option<Arc<RemoteClients>>,
    /// The address the server listens on.
    pub listen: String,
    /// Its `--allow`.
    pub allow: Vec<String>,
}

/// `ip` as a one-address network for `--allow`.
fn single(ip: &str) -> Result<String, String> {
    let a: IpAddr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    Ok(match a {
        IpAddr::V4(_) => format!("{a}/32"),
        IpAddr::V6(_) => format!("{a}/128"),
    })
}

/// Readies every host of `opts` (`say` gets one line per host).
pub fn prepare(
    opts: &RemoteOpts,
    exe: &Path,
    say: &mut dyn FnMut(String),
) -> Result<Hosts, SetupError> {
    let ssh = Arc::new(
        Ssh::new(opts.ssh_user.clone(), opts.ssh_opts.clone())
            .map_err(|e| SetupError(format!("ssh control folder: {e}")))?,
    );
    let sha =
        ssh::file_sha256(exe).map_err(|e| SetupError(format!("reading {}: {e}", exe.display())))?;
    let mut ready = |host: &str, role: &str| -> Result<RemoteHost, SetupError> {
        ssh::check_host(host).map_err(|e| SetupError(format!("{role} host: {e}")))?;
        let h = ssh::prepare(&ssh, host, exe, &sha, &opts.remote_dir)
            .map_err(|e| SetupError(format!("{role} host {host}: {e}")))?;
        say(format!(
            "{role} host {host} ({}): {} cores, {} MiB, {}; fsbench {} {}",
            h.address,
            h.info
                .machine
                .cores
                .map_or("?".to_string(), |c| c.to_string()),
            h.info.machine.memory_total_kib.unwrap_or(0) / 1024,
            h.info
                .machine
                .kernel
                .split_whitespace()
                .nth(1)
                .unwrap_or("?"),
            if h.copied { "copied to" } else { "already in" },
            h.bin
        ));
        Ok(h)
    };
    let server = opts
        .server_host
        .as_deref()
        .map(|h| ready(h, "server"))
        .transpose()?;
    let mut clients = Vec::new();
    for h in &opts.client_hosts {
        clients.push(ready(h, "client")?);
    }
    let listen = match (&server, clients.first()) {
        (Some(s), _) => s.address.clone(),
        (None, Some(first)) => {
            if let Some(other) = clients.iter().find(|c| c.sees_us_as != first.sees_us_as) {
                return Err(SetupError(format!(
                    "client hosts see this machine at different addresses ({} from {}, {} from {}): \
                     the local server can listen on one only; run the server on a host of its own (--server-host)",
                    first.sees_us_as, first.host, other.sees_us_as, other.host
                )));
            }
            // It must be an address of this machine (not a jump host's, not
            // one behind NAT): the server binds it.
            if let Err(e) = std::net::TcpListener::bind((first.sees_us_as.as_str(), 0)) {
                return Err(SetupError(format!(
                    "client hosts see this machine at {} (from {}), which it cannot listen on ({e}): \
                     a jump host or NAT in between? run the server on a host of its own (--server-host)",
                    first.sees_us_as, first.host
                )));
            }
            first.sees_us_as.clone()
        }
        (None, None) => "127.0.0.1".to_string(),
    };
    // Who may connect: the client hosts, this machine, loopback.
    let mut allow = vec!["127.0.0.1/32".to_string()];
    let mut admit = |ip: &str| -> Result<(), SetupError> {
        let n = single(ip).map_err(SetupError)?;
        if !allow.contains(&n) {
            allow.push(n);
        }
        Ok(())
    };
    for c in &clients {
        admit(&c.address)?;
    }
    match &server {
        Some(s) => admit(&s.sees_us_as)?,
        None => admit(&listen)?,
    }
    let server = server.map(|host| {
        Arc::new(RemoteServer {
            ssh: ssh.clone(),
            host,
            probe_from: clients.first().cloned(),
        })
    });
    let clients = (!clients.is_empty()).then(|| {
        Arc::new(RemoteClients {
            ssh: ssh.clone(),
            hosts: clients,
        })
    });
    Ok(Hosts {
        ssh,
        server,
        clients,
        listen,
        allow,
    })
}

impl Hosts {
    /// The server host's store folder and sums folder.
    pub fn remote_store(&self) -> Option<(String, String)> {
        let s = self.server.as_ref()?;
        let d = s.host.dir.trim_end_matches('/');
        Some((format!("{d}/work/store"), format!("{d}/work/sha256")))
    }

    /// Generates the test files on the server host and checks their SHA-256
    /// against `files` (ours).
    pub fn gen_files_on_server(&self, files: &[TestFile]) -> Result<(), SetupError> {
        let (Some(s), Some((store, sums))) = (&self.server, self.remote_store()) else {
            return Ok(());
        };
        let volumes: Vec<String> = files.iter().map(|f| format!("{}B", f.bytes)).collect();
        let words = [
            s.host.bin.as_str(),
            "gen-files",
            "--dir",
            &store,
            "--sums",
            &sums,
            "--volumes",
            &volumes.join(","),
        ];
        // Kept by supervise: it ends there if this command ends.
        let out = self
            .ssh
            .run_supervised(
                &s.host.host,
                &s.host.bin,
                &words,
                std::time::Duration::from_secs(600),
            )
            .map_err(|e| {
                SetupError(format!(
                    "server host {}: generating the test files: {e}",
                    s.host.host
                ))
            })?;
        for f in files {
            let line = out
                .lines()
                .find(|l| l.split_whitespace().last() == Some("bytes") && l.contains(&f.name));
            let sha = line.and_then(|l| l.split_whitespace().next());
            if sha != Some(f.sha256.as_str()) {
                return Err(SetupError(format!(
                    "server host {}: {} has SHA-256 {}, expected {}",
                    s.host.host,
                    f.name,
                    sha.unwrap_or("(not generated)"),
                    f.sha256
                )));
            }
        }
        Ok(())
    }

    /// Every readied host, with its role, for the metadata.
    pub fn all(&self) -> Vec<(&'static str, &RemoteHost)> {
        let mut v: Vec<(&'static str, &RemoteHost)> = Vec::new();
        if let Some(s) = &self.server {
            v.push(("server", &s.host));
        }
        if let Some(c) = &self.clients {
            v.extend(c.hosts.iter().map(|h| ("client", h)));
        }
        v
    }

    /// The client hosts without `lost` (a host that stays unreachable); the
    /// server's readiness LIST goes from the first one left.
    pub fn without_client(&mut self, lost: &str) {
        let Some(c) = &self.clients else { return };
        let hosts: Vec<RemoteHost> = c.hosts.iter().filter(|h| h.host != lost).cloned().collect();
        if let Some(s) = &self.server {
            self.server = Some(Arc::new(RemoteServer {
                ssh: s.ssh.clone(),
                host: s.host.clone(),
                probe_from: hosts.first().cloned(),
            }));
        }
        self.clients = (!hosts.is_empty()).then(|| {
            Arc::new(RemoteClients {
                ssh: self.ssh.clone(),
                hosts,
            })
        });
    }

    /// Whether `host` can still be reached (a new connection if need be).
    pub fn reachable(&self, host: &str) -> Result<(), String> {
        if self.ssh.is_up(host) {
            return Ok(());
        }
        self.ssh.disconnect(host);
        self.ssh.connect(host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_admitted_alone() {
        assert_eq!(single("198.18.0.2").unwrap(), "198.18.0.2/32");
        assert_eq!(single("fe80::1").unwrap(), "fe80::1/128");
        assert!(single("c1").is_err());
    }
}
