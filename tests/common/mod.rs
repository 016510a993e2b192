//! Helpers shared by the integration tests: fresh temp folders, a server
//! started from the built binary on port 0, and /proc readings.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fsbench::client::Client;

pub const BIN: &str = env!("CARGO_BIN_EXE_fsbench");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty folder for one test, under the target directory; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = base.join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `fsbench serve` on 127.0.0.1 and a free port, over `<dir>/files`,
/// with a `<dir>/canary` folder beside the store. Killed on drop.
pub struct Server {
    pub child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: TempDir,
    pub root: PathBuf,
    pub log: PathBuf,
}

impl Server {
    /// Starts a server with extra `serve` flags (e.g. `["--pool", "1"]`).
    pub fn start(args: &[&str]) -> Server {
        Self::start_with(TempDir::new("srv"), args, |_| {})
    }

    /// Starts a server in `dir`; `prepare` runs on the command first (e.g. to wrap it).
    pub fn start_with(dir: TempDir, args: &[&str], prepare: impl FnOnce(&mut Command)) -> Server {
        let root = dir.path().join("files");
        std::fs::create_dir_all(&root).unwrap();
        let canary = dir.path().join("canary");
        std::fs::create_dir_all(&canary).unwrap();
        std::fs::write(canary.join("canary.txt"), b"do not touch").unwrap();
        let log = dir.path().join("server.log");
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--port")
            .arg("0")
            .arg("--root")
            .arg(&root)
            .arg("--no-fsync")
            .args(args);
        prepare(&mut cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = cmd.spawn().expect("spawn server");
        let addr = read_listening(&mut child, &log);
        Server {
            child: Some(child),
            addr,
            dir,
            root,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr, Duration::from_secs(30)).expect("connect")
    }

    pub fn canary(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }

    /// SIGTERM, then waits (at most `limit`) for the exit status.
    pub fn stop(&mut self, limit: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(limit)
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server already waited for");
        let until = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > until {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not exit within {limit:?}; log:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident set size of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Files in the store's temp folder.
    pub fn temp_files(&self) -> usize {
        std::fs::read_dir(self.root.join(".tmp"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Reads the child's stdout until `LISTENING <addr>`.
pub fn read_listening(child: &mut Child, log: &Path) -> SocketAddr {
    let out = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(out);
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines.read_line(&mut line).unwrap();
        if n == 0 {
            let _ = child.wait();
            panic!(
                "server exited before listening; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        if let Some(a) = line.trim().strip_prefix("LISTENING ") {
            // Keep draining stdout in the background so the server never blocks on it.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while lines.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                    sink.clear();
                }
            });
            return a.parse().unwrap();
        }
    }
}

/// VmRSS of a process, in KiB (0 if gone).
pub fn rss_kib(pid: u32) -> u64 {
    fsbench::load::proc_status_kib(Some(pid), "VmRSS:")
}

/// VmHWM (peak RSS) of a process, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    fsbench::load::peak_rss_kib(Some(pid))
}

/// Number of open descriptors of a process.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Pids of the direct children of a process.
pub fn children(pid: u32) -> Vec<u32> {
    fsbench::load::child_pids(pid)
}

/// Deterministic pseudo-random bytes (xorshift), for test files.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// Every file under a folder with its content, sorted: to check that nothing changed.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    fn walk(d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                let t = e.file_type().unwrap();
                if t.is_dir() {
                    walk(&p, out);
                } else if t.is_symlink() {
                    out.push((
                        p.clone(),
                        std::fs::read_link(&p)
                            .unwrap()
                            .into_os_string()
                            .into_encoded_bytes(),
                    ));
                } else {
                    out.push((p.clone(), std::fs::read(&p).unwrap_or_default()));
                }
            }
        }
    }
    walk(dir, &mut out);
    out.sort();
    out
}
