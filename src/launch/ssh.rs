//! Other hosts, reached with OpenSSH: no agent of ours, no daemon to secure.
//!
//! - One master connection per host (`ssh -M -N`, a tracked child of ours in
//!   a process group of its own, with whatever transport it starts: they end
//!   with us), whose control socket sits in a private folder (0700)
//!   removed on drop; every later command on that host is a session of that
//!   connection (`-S SOCKET -o ControlMaster=no`), so a scenario pays no
//!   handshake.
//! - Always `BatchMode=yes` (never a password prompt) and a connect timeout;
//!   the user's `--ssh-opts` come next (`-F FILE`, `-i KEY`, `-p PORT`...),
//!   then keep-alives that notice a host gone within about 15 s.
//! - [`prepare`] readies a host before any scenario: reachable, the tools we
//!   need are there, our binary copied to the host's cache folder when its
//!   copy differs (checked by SHA-256), run once to read its version and
//!   machine. Each failure is one line naming the host and the cause.
//!
//! A remote command is one shell line ([`quote`] makes each word safe); the
//! processes it starts on the other side watch their stdin, which closes
//! when our session ends, so nothing outlives the command that started it.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::launch::process::Spawned;
use crate::results::machine::Machine;
use crate::sys;

/// How long a host gets to accept our master connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a short remote command (a probe, `host-info`) may take.
pub const SHORT: Duration = Duration::from_secs(60);
/// Lines of a session's stderr kept for an error message.
const TAIL_LINES: usize = 6;

/// `s` as one word of a POSIX shell command line.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `words` quoted and joined: one remote command line.
pub fn command_line<S: AsRef<str>>(words: &[S]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a host as given (`host` or `user@host`): never an ssh option.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty()
        || host.starts_with('-')
        || host.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("{host:?} is not a host (user@host or host)"));
    }
    if let Some((user, _)) = host.rsplit_once('@') {
        check_user(user).map_err(|e| format!("{host:?}: {e}"))?;
    }
    Ok(())
}

/// Every live [`Ssh`]'s control folder, for [`remove_control_folders`].
static CONTROL_FOLDERS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Removes the control folders of every [`Ssh`] (a command ending on a
/// signal, once [`crate::launch::process::stop_all`] has stopped the masters,
/// does not drop them).
pub fn remove_control_folders() {
    let dirs: Vec<PathBuf> = CONTROL_FOLDERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    for d in dirs {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Checks a `--ssh-user`: a user name, never an option or a host.
pub fn check_user(user: &str) -> Result<(), String> {
    if user.is_empty()
        || user.starts_with('-')
        || user.contains('@')
        || user.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!("{user:?} is not a user name"));
    }
    Ok(())
}

/// The ssh connections of one command: their settings, and a master per host.
pub struct Ssh {
    user: Option<String>,
    opts: Vec<String>,
    /// Private folder of the control sockets and the masters' stderr.
    control: PathBuf,
    masters: Mutex<Vec<(String, Spawned)>>,
}

impl Ssh {
    /// `user` goes with hosts given without one; `opts` are extra `ssh`
    /// arguments, as words.
    pub fn new(user: Option<String>, opts: Vec<String>) -> io::Result<Ssh> {
        let base = std::env::temp_dir();
        let mut n = 0u32;
        let control = loop {
            let d = base.join(format!("fsbench-ssh-{}-{n}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&d) {
                Ok(()) => break d,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        };
        CONTROL_FOLDERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(control.clone());
        Ok(Ssh {
            user,
            opts,
            control,
            masters: Mutex::new(Vec::new()),
        })
    }

    /// What ssh is given: `user@host` (with `--ssh-user` if the host names none).
    pub fn target(&self, host: &str) -> String {
        match &self.user {
            Some(u) if !host.contains('@') => format!("{u}@{host}"),
            _ => host.to_string(),
        }
    }

    fn socket(&self, host: &str) -> PathBuf {
        // Short (a socket path has at most 107 bytes) and one per host.
        let id: u32 = host
            .bytes()
            .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
        self.control.join(format!("{id:08x}"))
    }

    /// `ssh` with our options for `host`, up to (not including) the target.
    fn base(&self, host: &str, master: bool) -> Command {
        let mut c = Command::new("ssh");
        c.args(["-o", "BatchMode=yes"]);
        c.arg("-S").arg(self.socket(host));
        if master {
            c.args(["-M", "-N", "-o", "ControlPersist=no"]);
        } else {
            c.args(["-o", "ControlMaster=no"]);
        }
        c.args(&self.opts);
        c.args(["-o", "ConnectTimeout=10"])
            .args(["-o", "ServerAliveInterval=5"])
            .args(["-o", "ServerAliveCountMax=3"]);
        c
    }

    /// Opens the master connection to `host` (if not open): Ok once it is
    /// usable; else ssh's own words for why not.
    pub fn connect(&self, host: &str) -> Result<(), String> {
        if self.is_up(host) {
            return Ok(());
        }
        // A socket left by a master that was killed would turn multiplexing
        // off for the new one.
        let _ = std::fs::remove_file(self.socket(host));
        let err_path = self.socket(host).with_extension("err");
        let err = File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
        let mut cmd = self.base(host, true);
        cmd.arg(self.target(host))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(err);
        // In a group of its own: stopping it stops what it started too (a
        // ProxyCommand or a jump host's ssh, which ssh leaves running).
        let mut master = Spawned::start_group(&mut cmd, sys::SIGTERM)
            .map_err(|e| format!("cannot run ssh: {e}"))?;
        let deadline = Instant::now() + CONNECT_TIMEOUT;
        loop {
            if let Ok(Some(st)) = master.try_wait() {
                let said = std::fs::read_to_string(&err_path).unwrap_or_default();
                return Err(ssh_said(&said, st));
            }
            if self.is_up(host) {
                break;
            }
            if Instant::now() >= deadline {
                master.kill();
                return Err(format!(
                    "no ssh connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut m = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        m.retain(|(h, _)| h != host);
        m.push((host.to_string(), master));
        Ok(())
    }

    /// Whether the master connection to `host` answers.
    pub fn is_up(&self, host: &str) -> bool {
        if !self.socket(host).exists() {
            return false;
        }
        let mut c = self.base(host, false);
        c.args(["-O", "check"])
            .arg(self.target(host))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c.status().map(|s| s.success()).unwrap_or(false)
    }

    /// Closes the master connection to `host` (its sessions end with it).
    pub fn disconnect(&self, host: &str) {
        let mut m = self.masters.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = m.iter().position(|(h, _)| h == host) {
            let (_, mut p) = m.remove(i);
            let _ = p.stop(Duration::from_secs(5));
        }
    }

    /// The command that runs `remote` (one shell line) on `host`, over its
    /// master connection; its stdio is the caller's to set.
    pub fn session(&self, host: &str, remote: &str) -> Command {
        let mut c = self.base(host, false);
        c.arg(self.target(host)).arg(remote);
        c
    }

    /// Runs `remote` on `host` (stdin: `input` or nothing), within `limit`:
    /// its stdout, or why it failed (its stderr's last lines).
    pub fn run(
        &self,
        host: &str,
        remote: &str,
        input: Option<&Path>,
        limit: Duration,
    ) -> Result<String, String> {
        let stdin = match input {
            Some(p) => Stdio::from(File::open(p).map_err(|e| format!("{}: {e}", p.display()))?),
            None => Stdio::null(),
        };
        self.run_with(host, remote, stdin, limit)
    }

    /// Runs `words` on `host` under `bin supervise --heartbeat` (our binary
    /// there), within `limit`: a command that may run long, which ends there
    /// when this one ends or is cut off. Its stdout without supervise's lines.
    pub fn run_supervised(
        &self,
        host: &str,
        bin: &str,
        words: &[&str],
        limit: Duration,
    ) -> Result<String, String> {
        let silence = SILENCE_LIMIT.as_secs().to_string();
        let mut all = vec![bin, "supervise", "--heartbeat", &silence, "--"];
        all.extend_from_slice(words);
        let remote = format!("exec {}", command_line(&all));
        let out = self.run_with(host, &remote, Stdio::piped(), limit)?;
        let mut kept = String::new();
        let mut exit = None;
        for l in out.lines() {
            match l.strip_prefix(super::supervise::PREFIX) {
                Some(own) => exit = own.strip_prefix("EXIT ").map(str::to_string).or(exit),
                None => {
                    kept.push_str(l);
                    kept.push('\n');
                }
            }
        }
        match exit.as_deref() {
            Some("0") => Ok(kept),
            Some(st) => Err(format!("`{}` ended with {st}", words.join(" "))),
            None => Err(format!("`{}` did not finish", words.join(" "))),
        }
    }

    fn run_with(
        &self,
        host: &str,
        remote: &str,
        stdin: Stdio,
        limit: Duration,
    ) -> Result<String, String> {
        let mut cmd = self.session(host, remote);
        cmd.stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut p =
            Spawned::start(&mut cmd, sys::SIGTERM).map_err(|e| format!("cannot run ssh: {e}"))?;
        let child = p.child_mut().ok_or("no child")?;
        // A piped stdin gets PING lines until the command ends.
        let _input = child.stdin.take().map(SessionInput::new);
        let out = child.stdout.take().ok_or("no stdout")?;
        let err = child.stderr.take().ok_or("no stderr")?;
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = BufReader::new(out).read_to_string(&mut s);
            s
        });
        let tail = Tail::collect(err);
        let st = match p.wait_within(limit).map_err(|e| e.to_string())? {
            Some(st) => st,
            None => {
                p.kill();
                return Err(format!(
                    "`{remote}` did not finish within {} s",
                    limit.as_secs()
                ));
            }
        };
        let out = out.join().unwrap_or_default();
        if st.success() {
            Ok(out)
        } else {
            Err(ssh_said(&tail.text(Duration::from_secs(2)), st))
        }
    }
}

impl Drop for Ssh {
    fn drop(&mut self) {
        let masters: Vec<(String, Spawned)> = self
            .masters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for (_, mut p) in masters {
            let _ = p.stop(Duration::from_secs(5));
        }
        let _ = std::fs::remove_dir_all(&self.control);
        CONTROL_FOLDERS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|d| *d != self.control);
    }
}

/// What ssh (or the remote command) said on stderr, in one line, with the
/// exit status when it said nothing.
fn ssh_said(stderr: &str, st: ExitStatus) -> String {
    let said: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if said.is_empty() {
        format!("ssh exited with {st}")
    } else {
        said.join("; ")
    }
}

/// The last lines a stream wrote, collected by a thread until it ends.
#[derive(Clone, Default)]
pub struct Tail {
    lines: Arc<Mutex<VecDeque<String>>>,
    /// Set by the thread once the stream has ended.
    done: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

impl Tail {
    pub fn collect<R: Read + Send + 'static>(src: R) -> Tail {
        let t = Tail::default();
        let keep = t.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(src).lines() {
                let Ok(line) = line else { break };
                keep.push(line);
            }
            let (m, cv) = &*keep.done;
            *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
        });
        t
    }

    pub fn push(&self, line: String) {
        let mut t = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() == TAIL_LINES {
            t.pop_front();
        }
        t.push_back(line);
    }

    /// The lines kept, once the stream has ended (waiting at most `limit`
    /// for it: a process that has exited may still have lines in the pipe).
    pub fn text(&self, limit: Duration) -> String {
        let (m, cv) = &*self.done;
        let done = m.lock().unwrap_or_else(|e| e.into_inner());
        let _ = cv
            .wait_timeout_while(done, limit, |d| !*d)
            .unwrap_or_else(|e| e.into_inner());
        let t = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        t.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// What `fsbench host-info` prints: the binary's version and its machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub version: String,
    pub arch: String,
    pub machine: Machine,
}

impl HostInfo {
    pub fn here() -> HostInfo {
        HostInfo {
            version: crate::results::machine::version().to_string(),
            arch: std::env::consts::ARCH.to_string(),
            machine: crate::results::machine::this_machine(),
        }
    }
}

/// A host ready for scenarios.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteHost {
    /// As given (`user@host` or `host`).
    pub host: String,
    /// Its address on the connection we reached it over (`$SSH_CONNECTION`).
    pub address: String,
    /// Our address as it sees us.
    pub sees_us_as: String,
    /// Our binary there.
    pub bin: String,
    /// The cache folder there (relative: under the remote user's home).
    pub dir: String,
    /// We copied the binary this time (its copy was missing or differed).
    pub copied: bool,
    pub info: HostInfo,
}

/// The SHA-256 of a local file, in hex.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    crate::protocol::sha256_hex(&mut File::open(path)?)
}

/// How often a remote command's session gets a `PING` line.
pub const PING_EVERY: Duration = Duration::from_secs(2);
/// How long the far end waits without a line before it takes the
/// coordinator for gone (`supervise --heartbeat`, `pool --heartbeat`).
pub const SILENCE_LIMIT: Duration = Duration::from_secs(15);

/// A session's stdin, shared by its owner (its command lines) and a thread
/// that writes `PING` every [`PING_EVERY`] until it is closed: the far end
/// ends what it runs when the lines stop.
pub struct SessionInput {
    stdin: Arc<Mutex<Option<ChildStdin>>>,
}

impl SessionInput {
    pub fn new(stdin: ChildStdin) -> SessionInput {
        let stdin = Arc::new(Mutex::new(Some(stdin)));
        let weak = Arc::downgrade(&stdin);
        let _ = std::thread::Builder::new()
            .name("ssh-ping".into())
            .stack_size(64 * 1024)
            .spawn(move || loop {
                std::thread::sleep(PING_EVERY);
                let Some(s) = weak.upgrade() else { return };
                let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
                let Some(w) = s.as_mut() else { return };
                if w.write_all(b"PING\n").and_then(|()| w.flush()).is_err() {
                    return;
                }
            });
        SessionInput { stdin }
    }

    /// Writes one line.
    pub fn send(&self, line: &str) -> io::Result<()> {
        let mut s = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let w = s
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "session input closed"))?;
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
        w.flush()
    }

    /// Closes it: the far end reads the end of its stdin.
    pub fn close(&self) {
        self.stdin.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

impl Drop for SessionInput {
    fn drop(&mut self) {
        self.close();
    }
}

/// The tools a host needs besides a POSIX shell.
const REMOTE_TOOLS: [&str; 8] = [
    "cat",
    "mkdir",
    "mv",
    "chmod",
    "rm",
    "uname",
    "cut",
    "sha256sum",
];

/// How long copying our binary to a host may take.
const COPY_LIMIT: Duration = Duration::from_secs(600);

/// Readies `host`: connected, its tools checked, our binary (`exe`, whose
/// SHA-256 is `exe_sha`) in `dir/bin` there, its version and machine read.
/// The error is one line without the host's name (the caller adds it).
pub fn prepare(
    ssh: &Ssh,
    host: &str,
    exe: &Path,
    exe_sha: &str,
    dir: &str,
) -> Result<RemoteHost, String> {
    ssh.connect(host)
        .map_err(|e| format!("cannot connect over ssh: {e}"))?;
    // `~/x` is `x`: a session starts in the home folder (and a quoted `~`
    // would not be expanded); a relative folder starting with `-` is made
    // `./-...`, so that no command takes it for an option.
    let dir = dir.strip_prefix("~/").unwrap_or(dir);
    let dotted;
    let dir = if dir.starts_with('-') {
        dotted = format!("./{dir}");
        dotted.as_str()
    } else {
        dir
    };
    let bin = format!(
        "{}/bin/fsbench-{}",
        dir.trim_end_matches('/'),
        &exe_sha[..16]
    );
    let probe = format!(
        "uname -m; echo \"$SSH_CONNECTION\"; for t in {}; do command -v \"$t\" >/dev/null 2>&1 || echo \"missing $t\"; done; \
         if [ -f {b} ] && command -v sha256sum >/dev/null 2>&1; then sha256sum < {b} | cut -c1-64; else echo none; fi",
        REMOTE_TOOLS.join(" "),
        b = quote(&bin)
    );
    // Through `sh`, whatever the remote user's login shell is.
    let out = ssh.run(host, &command_line(&["sh", "-c", &probe]), None, SHORT)?;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    let missing: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("missing "))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing on the remote side: {} (fsbench needs sh and {})",
            missing.join(", "),
            REMOTE_TOOLS.join(", ")
        ));
    }
    let [arch, conn, have, ..] = lines[..] else {
        return Err(format!("unexpected answer to the probe: {out:?}"));
    };
    if arch != std::env::consts::ARCH {
        return Err(format!(
            "it is {arch}, this fsbench is built for {}: build one for it",
            std::env::consts::ARCH
        ));
    }
    let conn: Vec<&str> = conn.split_whitespace().collect();
    let (sees_us_as, address) = match conn[..] {
        [us, _, it, _] => (us.to_string(), it.to_string()),
        _ => {
            return Err(format!(
                "no $SSH_CONNECTION there ({conn:?}): cannot tell its address"
            ))
        }
    };
    let copied = have != exe_sha;
    if copied {
        let install = format!(
            "set -e; mkdir -p {d}; t={b}.tmp.$$; cat > \"$t\"; chmod 755 \"$t\"; \
             [ \"$(sha256sum < \"$t\" | cut -c1-64)\" = {sha} ] || {{ rm -f \"$t\"; echo 'the copy does not match: disk full?' >&2; exit 1; }}; \
             mv -f \"$t\" {b}",
            d = quote(&format!("{}/bin", dir.trim_end_matches('/'))),
            b = quote(&bin),
            sha = exe_sha
        );
        ssh.run(
            host,
            &command_line(&["sh", "-c", &install]),
            Some(exe),
            COPY_LIMIT,
        )
        .map_err(|e| format!("copying fsbench to {bin} failed: {e}"))?;
    }
    let info = ssh
        .run(
            host,
            &command_line(&[bin.as_str(), "host-info"]),
            None,
            SHORT,
        )
        .map_err(|e| format!("fsbench does not run there: {e}"))?;
    let info: HostInfo = serde_json::from_str(info.trim())
        .map_err(|e| format!("fsbench host-info answered {info:?}: {e}"))?;
    let ours = crate::results::machine::version();
    if info.version != ours {
        return Err(format!(
            "it runs {}, this is {ours}: the versions must match",
            info.version
        ));
    }
    Ok(RemoteHost {
        host: host.to_string(),
        address,
        sees_us_as,
        bin,
        dir: dir.to_string(),
        copied,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_remote_shell() {
        assert_eq!(quote("abc-1.2/x=y"), "abc-1.2/x=y");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME;rm"), "'$HOME;rm'");
        assert_eq!(
            command_line(&["fsbench", "x y", "--n"]),
            "fsbench 'x y' --n"
        );
    }

    #[test]
    fn a_host_is_never_an_option() {
        assert!(check_host("root@198.18.0.1").is_ok());
        assert!(check_host("lab-c1").is_ok());
        assert!(check_host("-oProxyCommand=x").is_err());
        assert!(check_host("a b").is_err());
        assert!(check_host("").is_err());
        assert!(check_host("-oProxyCommand=x@c1").is_err());
        assert!(check_host("bench@c1").is_ok());
        assert!(check_user("bench").is_ok());
        assert!(check_user("-oX").is_err());
        assert!(check_user("a@b").is_err());
    }

    #[test]
    fn the_user_goes_with_hosts_that_name_none() {
        let s = Ssh::new(Some("bench".into()), vec![]).unwrap();
        assert_eq!(s.target("c1"), "bench@c1");
        assert_eq!(s.target("root@c1"), "root@c1");
        assert_ne!(s.socket("c1"), s.socket("c2"));
        assert!(s.socket("c1").as_os_str().len() < 100);
        let dir = s.control.clone();
        assert!(dir.is_dir());
        drop(s);
        assert!(
            !dir.exists(),
            "the control folder goes with the connections"
        );
    }

    #[test]
    fn an_unreachable_host_is_said_in_sshs_words() {
        // A port nothing listens on, on loopback: refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = Ssh::new(None, vec!["-p".into(), port.to_string()]).unwrap();
        if Command::new("ssh").arg("-V").output().is_err() {
            return; // no OpenSSH client on this machine
        }
        let e = s.connect("127.0.0.1").unwrap_err();
        assert!(e.contains("refused"), "{e}");
    }
}
