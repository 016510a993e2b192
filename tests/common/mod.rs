//! Helpers shared by the test crates (`tests/integration/` and the robustness
//! suite `tests/robustness/`), each written once: fresh temp folders, a server
//! started from the built binary on port 0, a raw line-protocol client, one
//! poller with a deadline, one gate, test content from the library's own
//! generator, and /proc readings.
//!
//! Nothing here sleeps to synchronise: [`wait_until`] polls a condition the
//! test can observe, under a deadline, and [`Gate`] is a barrier whose wait
//! is bounded.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use fsbench::client::Client;
use serde_json::Value;
use sha2::{Digest, Sha256};

#[allow(unused_imports)]
pub use fsbench::load::content::Content;

pub const BIN: &str = env!("CARGO_BIN_EXE_fsbench");

/// Read/write timeout of the tests' own sockets: generous, only there so that
/// a broken server fails a test instead of hanging it.
pub const T: Duration = Duration::from_secs(30);

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

// ---------------------------------------------------------------------------
// Waiting

/// How often [`wait_until`] looks at its condition.
const POLL_EVERY: Duration = Duration::from_millis(2);

/// Polls `cond` until it holds; `Some(time it took)`, or `None` once `limit`
/// has passed without it. The one poller: [`wait_until`] is built on it.
pub fn poll(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let t0 = Instant::now();
    loop {
        if cond() {
            return Some(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return None;
        }
        std::thread::sleep(POLL_EVERY);
    }
}

/// Polls `cond` until it holds and returns the time it took; panics, naming
/// `what`, once `limit` has passed without it.
pub fn wait_until(what: impl Display, limit: Duration, cond: impl FnMut() -> bool) -> Duration {
    poll(limit, cond).unwrap_or_else(|| panic!("{what}: not reached within {limit:?}"))
}

/// Checks `check` over and over for `window`: for what must keep holding
/// over a span of time (nothing is awaited, so this is not a wait).
pub fn observe(window: Duration, mut check: impl FnMut()) {
    let _ = poll(window, || {
        check();
        false
    });
}

/// How long a thread waits at a [`Gate`] for the others.
const GATE_LIMIT: Duration = Duration::from_secs(60);

/// A reusable barrier of `n` threads whose wait is bounded: a thread that died
/// before arriving fails the test instead of hanging it.
///
/// A transfer stopped half-way meets the test at a gate of 2 twice (see
/// [`GatedReader`], [`GatedSink`]): the first meeting says it has arrived,
/// the second lets it go on.
pub struct Gate {
    n: usize,
    /// (arrived, generation)
    state: Mutex<(usize, u64)>,
    cv: Condvar,
}

impl Gate {
    pub fn new(n: usize) -> Arc<Gate> {
        Arc::new(Gate {
            n,
            state: Mutex::new((0, 0)),
            cv: Condvar::new(),
        })
    }

    pub fn wait(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let generation = st.1;
        st.0 += 1;
        if st.0 == self.n {
            *st = (0, generation + 1);
            self.cv.notify_all();
            return;
        }
        let deadline = Instant::now() + GATE_LIMIT;
        while st.1 == generation {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let arrived = st.0;
                drop(st);
                panic!(
                    "only {arrived} of {} threads arrived within {GATE_LIMIT:?}",
                    self.n
                );
            }
            st = self
                .cv
                .wait_timeout(st, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// A reader that stops before byte `at` and meets its gate there twice:
/// once to say it has arrived, once to be let go.
pub struct GatedReader<R> {
    inner: R,
    at: u64,
    pos: u64,
    gate: Option<Arc<Gate>>,
}

impl<R: Read> GatedReader<R> {
    pub fn new(inner: R, at: u64, gate: Arc<Gate>) -> GatedReader<R> {
        GatedReader {
            inner,
            at,
            pos: 0,
            gate: Some(gate),
        }
    }
}

impl<R: Read> Read for GatedReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.at {
            if let Some(g) = self.gate.take() {
                g.wait();
                g.wait();
            }
        }
        let room = if self.pos < self.at {
            ((self.at - self.pos) as usize).min(out.len())
        } else {
            out.len()
        };
        let n = self.inner.read(&mut out[..room])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A writer that, at its first write, meets its gate twice (arrived, let go)
/// before it takes the bytes: a download whose client stops reading.
pub struct GatedSink<W> {
    pub inner: W,
    gate: Option<Arc<Gate>>,
}

impl<W: Write> GatedSink<W> {
    pub fn new(inner: W, gate: Arc<Gate>) -> GatedSink<W> {
        GatedSink {
            inner,
            gate: Some(gate),
        }
    }
}

impl<W: Write> Write for GatedSink<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if let Some(g) = self.gate.take() {
            g.wait();
            g.wait();
        }
        self.inner.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

// ---------------------------------------------------------------------------
// Content

/// `len` bytes of the library's deterministic content of `seed`
/// (`fsbench::load::content`); [`Content`] streams the same bytes.
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fsbench::load::content::fill(seed, 0, &mut v);
    v
}

/// Lowercase hex SHA-256.
pub fn sha_hex(data: &[u8]) -> String {
    fsbench::protocol::hex(&Sha256::digest(data))
}

/// A writer that keeps only the SHA-256 and the length of what it is given.
#[derive(Default)]
pub struct HashSink {
    h: Sha256,
    pub n: u64,
}

impl HashSink {
    pub fn hex(self) -> String {
        fsbench::protocol::hex(&self.h.finalize())
    }
}

impl Write for HashSink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.h.update(b);
        self.n += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The raw client

/// Replies that were not ASCII-only JSON with a status (the robustness suite
/// prints this figure; any such reply also fails its test).
pub static INVALID_REPLIES: AtomicU64 = AtomicU64::new(0);

/// Parses a reply: ASCII-only valid JSON whose status is OK or ERROR, as the
/// protocol promises; anything else is counted and fails the test.
pub fn json_reply(body: &[u8]) -> Value {
    let v: Option<Value> = if body.is_ascii() {
        serde_json::from_slice(body).ok()
    } else {
        None
    };
    match v {
        Some(v) if v["status"] == "OK" || v["status"] == "ERROR" => v,
        _ => {
            INVALID_REPLIES.fetch_add(1, Ordering::Relaxed);
            panic!(
                "invalid JSON reply: {:?}",
                String::from_utf8_lossy(&body[..body.len().min(300)])
            );
        }
    }
}

/// Checks that `v` is an ERROR with a reason, and returns the reason.
pub fn assert_error(v: &Value, context: impl Display) -> String {
    assert_eq!(v["status"], "ERROR", "{context}: expected ERROR, got {v}");
    let r = v["data"].as_str().unwrap_or_default().to_string();
    assert!(!r.is_empty(), "{context}: ERROR without a reason: {v}");
    r
}

/// Does this read error mean the peer closed (a FIN read as an error, or a reset)?
fn closed_kind(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// A connection that speaks the line protocol byte by byte: any bytes out,
/// replies read up to their `\r\n\r\n`.
pub struct Raw {
    pub s: TcpStream,
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no terminator.
    scanned: usize,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Raw::from(s)
    }

    /// Takes over a connected stream (with the tests' timeouts).
    pub fn from(s: TcpStream) -> Raw {
        s.set_read_timeout(Some(T)).unwrap();
        s.set_write_timeout(Some(T)).unwrap();
        Raw {
            s,
            buf: Vec::new(),
            scanned: 0,
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).expect("send");
    }

    /// Takes a whole reply out of what has been read, if there is one.
    fn take_reply(&mut self) -> Option<Vec<u8>> {
        let i = memchr::memmem::find(&self.buf[self.scanned..], b"\r\n\r\n");
        let Some(i) = i else {
            self.scanned = self.buf.len().saturating_sub(3);
            return None;
        };
        let end = self.scanned + i;
        let r = self.buf[..end].to_vec();
        self.buf.drain(..end + 4);
        self.scanned = 0;
        Some(r)
    }

    /// The next reply without its `\r\n\r\n`; `None` if the server closed first.
    pub fn try_reply(&mut self) -> Option<Vec<u8>> {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(r) = self.take_reply() {
                return Some(r);
            }
            match self.s.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if closed_kind(&e) => return None,
                Err(e) => panic!("no reply within {T:?}: {e}"),
            }
        }
    }

    /// A whole reply if one has already arrived, without waiting for one.
    /// The server must not have closed the connection unanswered.
    pub fn reply_now(&mut self) -> Option<Vec<u8>> {
        self.s.set_nonblocking(true).unwrap();
        let mut chunk = [0u8; 16 * 1024];
        let r = loop {
            if let Some(r) = self.take_reply() {
                break Some(r);
            }
            match self.s.read(&mut chunk) {
                Ok(0) => panic!("the server closed the connection unanswered"),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("the connection failed unanswered: {e}"),
            }
        };
        self.s.set_nonblocking(false).unwrap();
        r
    }

    /// The next reply; the server must not close first.
    pub fn reply(&mut self) -> Vec<u8> {
        match self.try_reply() {
            Some(r) => r,
            None => panic!(
                "connection closed before a whole reply; got {:?}",
                String::from_utf8_lossy(&self.buf[..self.buf.len().min(300)])
            ),
        }
    }

    /// The next reply, as JSON (see [`json_reply`]).
    pub fn reply_json(&mut self) -> Value {
        json_reply(&self.reply())
    }

    /// Sends `line` + `\n`, returns the raw reply.
    pub fn request(&mut self, line: &[u8]) -> Vec<u8> {
        let mut l = line.to_vec();
        l.push(b'\n');
        self.send(&l);
        self.reply()
    }

    /// Sends `line` + `\n`, returns the reply as JSON.
    pub fn json(&mut self, line: &[u8]) -> Value {
        json_reply(&self.request(line))
    }

    /// Sends the `UPLOAD` line `line` + `\n`; the answer must be READY.
    pub fn begin_upload(&mut self, line: &[u8]) {
        let r = self.request(line);
        assert_eq!(
            String::from_utf8_lossy(&r),
            "READY TO RECEIVE FILE",
            "{}",
            String::from_utf8_lossy(line)
        );
    }

    /// LIST on this connection (which is thereby shown open and in step).
    pub fn list(&mut self) -> Vec<String> {
        let v = self.json(b"LIST");
        assert_eq!(v["status"], "OK", "LIST failed: {v}");
        v["data"]
            .as_array()
            .expect("LIST data")
            .iter()
            .map(|x| x.as_str().expect("LIST name").to_string())
            .collect()
    }

    /// Half-closes and reads until the server closes: every byte it still sends.
    pub fn finish(self) -> Vec<u8> {
        self.s.shutdown(Shutdown::Write).unwrap();
        self.until_closed()
    }

    /// Reads until the server closes; returns everything it sent not yet read as a reply.
    pub fn until_closed(mut self) -> Vec<u8> {
        let mut rest = std::mem::take(&mut self.buf);
        self.s
            .read_to_end(&mut rest)
            .expect("the server closes within the test's timeout");
        rest
    }

    /// The server has closed: EOF (or a reset), and no reply first.
    pub fn expect_closed(&mut self) {
        assert!(self.buf.is_empty(), "unread bytes before close");
        let mut chunk = [0u8; 4096];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => panic!(
                    "expected a close, got {:?}",
                    String::from_utf8_lossy(&chunk[..n])
                ),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if closed_kind(&e) => return,
                Err(e) => panic!("connection not closed within {T:?}: {e}"),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// A server

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
        let (child, addr) = spawn_server(cmd, &log);
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
        Client::connect(self.addr, T).expect("connect")
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr)
    }

    pub fn canary(&self) -> PathBuf {
        self.dir.path().join("canary")
    }

    /// Sends a signal to the server.
    pub fn signal(&self, sig: i32) {
        fsbench::sys::kill(self.pid(), sig).expect("signal the server");
    }

    /// SIGTERM, then waits (at most `limit`) for the exit status.
    pub fn stop(&mut self, limit: Duration) -> ExitStatus {
        self.signal(fsbench::sys::SIGTERM);
        self.wait(limit)
    }

    /// Waits (at most `limit`) for the exit status.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("server already waited for");
        match wait_exit(&mut child, limit) {
            Some(st) => st,
            None => panic!(
                "server did not exit within {limit:?}; log:\n{}",
                self.log_text()
            ),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Resident set size of the server process, in KiB.
    pub fn rss_kib(&self) -> u64 {
        rss_kib(self.pid())
    }

    /// Temp files in the store (see [`temp_count`]).
    pub fn temp_files(&self) -> usize {
        temp_count(&self.root)
    }

    /// The server's descriptors (its main process) when it holds no
    /// connection: after one LIST answered (its event loop is up, with every
    /// descriptor it keeps) and that connection closed by the server.
    pub fn idle_fds(&self) -> usize {
        self.client().list().expect("LIST");
        let pid = self.pid();
        wait_until("the server to close the LIST's connection", T, || {
            std::iter::once(pid)
                .chain(children(pid))
                .all(|p| !holds_a_connection(p))
        });
        fd_count(pid)
    }

    /// Waits (at most 10 s) for the server's main process to hold exactly
    /// `idle` descriptors again, its clients gone: one left open is a leak.
    pub fn expect_fds_back_to(&self, idle: usize) {
        let now = || fd_count(self.pid());
        poll(Duration::from_secs(10), || now() == idle);
        assert_eq!(now(), idle, "the server's descriptors, every client gone");
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

/// Waits (at most `limit`) for `child` to exit; kills it and returns `None` if it does not.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let mut status = None;
    poll(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// Spawns a `serve` command with its stderr to `log`; returns it once it
/// listens, with the address it printed.
pub fn spawn_server(mut cmd: Command, log: &Path) -> (Child, SocketAddr) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap());
    let mut child = cmd.spawn().expect("spawn server");
    let addr = read_listening(&mut child, log);
    (child, addr)
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

/// Temp files in a store: the files under `<root>/.tmp`, at any depth (each
/// server keeps its own in a folder of its own there); folders do not count.
pub fn temp_count(root: &Path) -> usize {
    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| match e.file_type() {
                        Ok(t) if t.is_dir() => files(&e.path()),
                        _ => 1,
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    files(&root.join(".tmp"))
}

// ---------------------------------------------------------------------------
// /proc

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

/// Is the process running (it exists and is not a zombie)?
pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    match stat.rfind(')') {
        Some(i) => !stat[i + 1..].trim_start().starts_with('Z'),
        None => false,
    }
}

/// The descriptors of a process with what each points at, sorted.
pub fn fd_table(pid: u32) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path()).unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), target)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The TCP sockets of this host (as `socket:[inode]`), each with whether it listens.
fn tcp_sockets() -> Vec<(PathBuf, bool)> {
    let mut out = Vec::new();
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // st is column 3 ("0A" = LISTEN), inode column 9.
            if cols.len() > 9 {
                out.push((
                    PathBuf::from(format!("socket:[{}]", cols[9])),
                    cols[3] == "0A",
                ));
            }
        }
    }
    out
}

/// For each process, how many listening sockets and how many TCP connections
/// (in any state but LISTEN) it holds.
pub fn tcp_held(pids: &[u32]) -> Vec<(usize, usize)> {
    let tcp = tcp_sockets();
    pids.iter()
        .map(|&pid| {
            let (mut listening, mut connections) = (0, 0);
            for (_, target) in fd_table(pid) {
                match tcp.iter().find(|(s, _)| *s == target) {
                    Some((_, true)) => listening += 1,
                    Some((_, false)) => connections += 1,
                    None => {}
                }
            }
            (listening, connections)
        })
        .collect()
}

/// Does the process hold a TCP connection?
pub fn holds_a_connection(pid: u32) -> bool {
    tcp_held(&[pid])[0].1 > 0
}

// ---------------------------------------------------------------------------
// Folders

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

/// Runs one of the tests' Python clients (`tests/compat/NAME`) against
/// `port` with `args`; returns its exit code and the one JSON object it
/// printed on stdout (a panic, with its output, when there is none).
pub fn python_client(name: &str, port: u16, args: &[&str]) -> (i32, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/compat")
        .join(name);
    let out = Command::new("python3")
        .arg(&script)
        .arg("--port")
        .arg(port.to_string())
        .args(args)
        .output()
        .expect("cannot run python3 (these tests need Python 3)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{name} {args:?}: no JSON answer ({e}); exit {:?}\nstdout: {stdout}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exit code"), v)
}
