//! Our client library against a server that is not ours: the guest,
//! `tests/guest/file_server.py`, a Python server of the exercise's kind (its
//! keys in another order, an extra key, `"status": "ok"` on DELETE, reasons
//! in Indonesian, the terminator in a send of its own, uploads named by MD5),
//! in thread and process mode with pools of 1 and 5: every request, its
//! naming, concurrency, shutdown, and each of its faults seen as the client
//! error it must be.
//!
//! The guest cannot be given port 0 and say which port it got: a test takes a
//! port that was free a moment ago (bound on 127.0.0.1:0 and closed), and
//! waits until the guest holds a listening socket and a connect succeeds
//! (another start on a fresh port if it could not bind). A guest is killed
//! with its workers when its test ends, panics included.
//!
//! Needs `python3` on the PATH (`.ci/run` installs it); without it these tests fail.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use fsbench::client::{Client, ClientError};
use fsbench::load::content::Content;
use fsbench::sys::{kill, SIGINT, SIGKILL, SIGTERM};

use crate::common::{
    alive, children, content, poll, sha_hex, tcp_held, wait_exit, wait_until, Gate, GatedSink,
    HashSink, Raw, TempDir, T,
};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/file_server.py")
}

/// The guest's exit status when it cannot bind its port.
const EXIT_BIND: i32 = 3;
/// How long a guest may take to listen (a Python start on a busy machine).
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long a guest may take to exit once asked to.
const EXIT_LIMIT: Duration = Duration::from_secs(20);

/// A running guest on 127.0.0.1, serving `<dir>/files`; killed on drop with
/// its worker processes.
struct Guest {
    child: Option<Child>,
    addr: SocketAddr,
    /// The worker processes seen (process mode), to kill on drop.
    workers: Vec<u32>,
    root: PathBuf,
    log: PathBuf,
    _dir: TempDir,
}

impl Guest {
    /// Starts `file_server.py --mode <mode> --workers <workers>` with extra
    /// flags, and waits until it listens.
    fn start(mode: &str, workers: usize, flags: &[&str]) -> Guest {
        let dir = TempDir::new("guest");
        let root = dir.path().join("files");
        std::fs::create_dir_all(&root).unwrap();
        let mut g = Guest {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: Vec::new(),
            log: dir.path().join("guest.log"),
            root,
            _dir: dir,
        };
        for _ in 0..5 {
            g.addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let child = Command::new("python3")
                .arg(script())
                .args(["--mode", mode, "--workers", &workers.to_string()])
                .args(["--port", &g.addr.port().to_string(), "--root"])
                .arg(&g.root)
                .args(flags)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&g.log).unwrap())
                .spawn()
                .expect("cannot run python3 (the guest server needs Python 3)");
            g.child = Some(child);
            match g.wait_listening() {
                Ok(()) => {
                    if mode == "process" && !flags.contains(&"--never-ready") {
                        g.wait_workers(workers);
                    }
                    return g;
                }
                // The port was taken between our check and its bind: another.
                Err(st) if st.code() == Some(EXIT_BIND) => g.child = None,
                Err(st) => panic!(
                    "the guest exited with {st} at start; log:\n{}",
                    g.log_text()
                ),
            }
        }
        panic!(
            "the guest found no free port in 5 tries; log:\n{}",
            g.log_text()
        );
    }

    /// Waits until the guest itself holds a listening socket (not another
    /// process on a port taken meanwhile) and a connect succeeds; its exit
    /// status if it exits first.
    fn wait_listening(&mut self) -> Result<(), ExitStatus> {
        let pid = self.pid();
        let addr = self.addr;
        let child = self.child.as_mut().unwrap();
        let mut exited = None;
        let up = poll(START_LIMIT, || {
            exited = child.try_wait().unwrap();
            exited.is_some()
                || (tcp_held(&[pid])[0].0 > 0 && TcpStream::connect_timeout(&addr, T).is_ok())
        });
        match (exited, up) {
            (Some(st), _) => Err(st),
            (None, Some(_)) => Ok(()),
            (None, None) => panic!(
                "the guest did not listen within {START_LIMIT:?}; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// Waits for the pool of `n` worker processes and remembers them.
    fn wait_workers(&mut self, n: usize) {
        let pid = self.pid();
        wait_until(format!("{n} guest workers"), START_LIMIT, || {
            children(pid).len() == n
        });
        self.workers = children(pid);
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("the guest runs").id()
    }

    fn client(&self) -> Client {
        Client::connect(self.addr, T).expect("connect to the guest")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn put(&self, name: &str, data: &[u8]) {
        std::fs::write(self.root.join(name), data).unwrap();
    }

    /// Names in the store that start with '.' (an upload's temp file).
    fn hidden_files(&self) -> Vec<String> {
        std::fs::read_dir(&self.root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    /// The guest and its workers, each with (listening sockets, connections).
    fn sockets(&self) -> Vec<(usize, usize)> {
        let mut pids = vec![self.pid()];
        pids.extend(children(self.pid()));
        tcp_held(&pids)
    }

    /// Waits until no process of the guest holds a connection (the ones of
    /// earlier clients closed).
    fn wait_no_connection(&self) {
        wait_until("the guest to close its connections", T, || {
            self.sockets().iter().all(|&(_, c)| c == 0)
        });
    }

    fn signal(&self, sig: i32) {
        kill(self.pid(), sig).expect("signal the guest");
    }

    /// Waits for the guest's exit status; every worker it had must be gone too.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let st = wait_exit(self.child.as_mut().expect("the guest runs"), limit);
        let Some(st) = st else {
            self.child = None;
            self.kill_workers();
            panic!(
                "the guest did not exit within {limit:?}; log:\n{}",
                self.log_text()
            );
        };
        self.child = None;
        wait_until("the guest's workers to exit with it", EXIT_LIMIT, || {
            !self.workers.iter().any(|&w| alive(w))
        });
        st
    }

    fn kill_workers(&self) {
        for &w in &self.workers {
            let _ = kill(w, SIGKILL);
        }
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Its workers as they are now: killed after it, so that it
            // replaces none of them.
            self.workers.extend(children(c.id()));
            let _ = c.kill();
            let _ = c.wait();
            self.kill_workers();
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Lowercase hex MD5 of a file (`md5sum`, coreutils): the guest's naming.
fn md5_of(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    assert!(out.status.success(), "md5sum {}", path.display());
    String::from_utf8_lossy(&out.stdout)[..32].to_string()
}

/// Threads of a process.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

fn server_error(e: &ClientError) -> &str {
    match e {
        ClientError::Server(m) => m,
        _ => panic!("expected the server's ERROR, got {e:?}"),
    }
}

const BIG: usize = 3_000_000;

/// Every request the guest knows, on one connection; 5 clients at once; then
/// SIGTERM and exit 0.
fn serves_our_client(mode: &str, workers: usize) {
    let mut g = Guest::start(mode, workers, &[]);
    let big = content(1, BIG);
    g.put("a.bin", &big);
    g.put("with space.txt", b"spasi di nama\n");
    g.put("kosong.bin", b"");

    let mut c = g.client();
    assert_eq!(c.list().unwrap(), ["a.bin", "kosong.bin", "with space.txt"]);
    // Its content comes first in the answer, its status and name after.
    assert_eq!(
        c.get_compare("a.bin", &mut Content::new(1, BIG as u64))
            .unwrap(),
        BIG as u64
    );
    let mut small = Vec::new();
    c.get("with space.txt", &mut small).unwrap();
    assert_eq!(small, b"spasi di nama\n");
    assert_eq!(c.get("kosong.bin", &mut Vec::new()).unwrap().bytes, 0);
    // A request ended by "\r\n".
    let v: serde_json::Value = serde_json::from_slice(&c.raw("LIST\r").unwrap()).unwrap();
    assert_eq!(v["status"], "OK", "{v}");

    // A plain upload is named by the server (MD5 + extension), read back.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&content(2, 1_000_000));
    let u = c.upload_as_named_by_server(&mut &png[..]).unwrap();
    assert_eq!(u.bytes, png.len() as u64);
    assert_eq!(u.sha256, sha_hex(&png));
    let stored = g.root.join(&u.name);
    assert_eq!(u.name, format!("{}.png", md5_of(&stored)));
    assert!(std::fs::read(&stored).unwrap() == png, "{} on disk", u.name);
    assert_eq!(
        c.get_compare(&u.name, &mut &png[..]).unwrap(),
        png.len() as u64
    );
    // Our own naming (SHA-256) is not the guest's.
    let other = content(3, 1000);
    let e = c.upload(None, &mut &other[..]).unwrap_err();
    assert_eq!(e.cause(), "verification mismatch", "{e}");
    assert!(e.to_string().contains("stored as"), "{e}");
    // A named upload keeps its name.
    let n = c.upload(Some("nama file.bin"), &mut &other[..]).unwrap();
    assert_eq!(n.name, "nama file.bin");
    assert_eq!(
        c.get_compare("nama file.bin", &mut &other[..]).unwrap(),
        1000
    );
    let mut names = vec![
        "a.bin".to_string(),
        "kosong.bin".to_string(),
        "nama file.bin".to_string(),
        u.name.clone(),
        // The unnamed upload of the same content, under its MD5.
        md5_of(&g.root.join("nama file.bin")),
        "with space.txt".to_string(),
    ];
    names.sort();
    assert_eq!(c.list().unwrap(), names);
    assert!(g.hidden_files().is_empty(), "{:?}", g.hidden_files());

    // DELETE answers "ok" in lower case; then the file is gone.
    c.delete(&u.name).unwrap();
    assert!(!stored.exists());
    let e = c.get(&u.name, &mut Vec::new()).unwrap_err();
    assert_eq!(server_error(&e), "file tidak ditemukan");
    let e = c.delete(&u.name).unwrap_err();
    assert_eq!(server_error(&e), "file tidak ditemukan");
    // STATS is not the guest's: its own ERROR.
    let e = c.stats().unwrap_err();
    assert_eq!(server_error(&e), "request tidak dikenali");
    assert_eq!(e.cause(), "server ERROR: request tidak dikenali");
    let e = c.get(".hidden", &mut Vec::new()).unwrap_err();
    assert!(!server_error(&e).is_empty());
    // The connection is still in step after all that.
    names.retain(|n| *n != u.name);
    assert_eq!(c.list().unwrap(), names);
    drop(c);

    five_clients_at_once(&g, workers, &big);

    assert_eq!(g.hidden_files(), Vec::<String>::new());
    g.signal(SIGTERM);
    let st = g.wait(EXIT_LIMIT);
    assert_eq!(st.code(), Some(0), "{st}; log:\n{}", g.log_text());
}

/// Five clients download a.bin at once. With 5 workers they are shown to be
/// served at the same time: each stops at its first byte until all five
/// have theirs, while the guest holds five connections in five threads or
/// five worker processes. With 1 worker they are served one after another.
fn five_clients_at_once(g: &Guest, workers: usize, big: &[u8]) {
    g.wait_no_connection();
    let sha = sha_hex(big);
    let concurrent = workers == 5;
    let gate = Gate::new(6);
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let (addr, gate, sha) = (g.addr, gate.clone(), sha.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(addr, T).expect("connect");
                if concurrent {
                    let mut sink = GatedSink::new(HashSink::default(), gate);
                    let d = c.get("a.bin", &mut sink).expect("GET a.bin");
                    assert_eq!((d.bytes, d.sha256), (BIG as u64, sha));
                } else {
                    let n = c.get_compare("a.bin", &mut Content::new(1, BIG as u64));
                    assert_eq!(n.expect("GET a.bin"), BIG as u64);
                }
            })
        })
        .collect();
    if concurrent {
        gate.wait(); // all five have their first bytes
        let held = g.sockets();
        if g.workers.is_empty() {
            // Thread mode: the acceptor and five pool threads, one process.
            assert_eq!(threads(g.pid()), 6);
            assert_eq!(held, [(1, 5)]);
        } else {
            // Process mode: the parent listens, each worker serves one.
            assert_eq!(held.len(), 6, "{held:?}");
            assert_eq!(held[0], (1, 0));
            assert!(held[1..].iter().all(|&h| h == (1, 1)), "{held:?}");
        }
        gate.wait();
    }
    for t in clients {
        t.join().expect("a client failed");
    }
}

#[test]
fn the_guest_in_thread_mode_with_1_worker_serves_our_client() {
    serves_our_client("thread", 1);
}

#[test]
fn the_guest_in_thread_mode_with_5_workers_serves_our_client() {
    serves_our_client("thread", 5);
}

#[test]
fn the_guest_in_process_mode_with_1_worker_serves_our_client() {
    serves_our_client("process", 1);
}

#[test]
fn the_guest_in_process_mode_with_5_workers_serves_our_client() {
    serves_our_client("process", 5);
}

#[test]
fn a_broken_upload_leaves_no_temp_file_and_gets_the_guests_error() {
    for mode in ["thread", "process"] {
        let g = Guest::start(mode, 2, &[]);
        let mut r = Raw::connect(g.addr);
        r.begin_upload(b"UPLOAD rusak.bin");
        r.send(b"QUJD\n@@@@\n");
        let v = r.reply_json();
        assert_eq!(v["status"], "ERROR", "{v}");
        assert_eq!(v["data"], "data base64 tidak valid");
        r.expect_closed();
        g.wait_no_connection();
        assert!(
            g.hidden_files().is_empty(),
            "{mode}: {:?}",
            g.hidden_files()
        );
        assert!(g.client().list().unwrap().is_empty());
    }
}

/// `sig` while a download is in flight and another client idles on its
/// connection: the guest stops listening, the download ends complete and
/// verified, the idle connection is closed, and it exits 0 with its workers.
fn stops_on(mode: &str, sig: i32) {
    let mut g = Guest::start(mode, 2, &[]);
    let big = content(4, 4_000_000);
    g.put("a.bin", &big);
    let mut idle = g.client();
    assert_eq!(idle.list().unwrap(), ["a.bin"]);

    let gate = Gate::new(2);
    let download = {
        let (addr, gate) = (g.addr, gate.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(addr, T).expect("connect");
            let mut sink = GatedSink::new(HashSink::default(), gate);
            c.get("a.bin", &mut sink)
        })
    };
    gate.wait(); // the download is under way
    g.signal(sig);
    let pid = g.pid();
    wait_until("the guest to close its listening socket", T, || {
        tcp_held(&[pid])[0].0 == 0
    });
    gate.wait();
    let d = download.join().unwrap().expect("the download in flight");
    assert_eq!((d.bytes, d.sha256), (big.len() as u64, sha_hex(&big)));
    let st = g.wait(EXIT_LIMIT);
    assert_eq!(st.code(), Some(0), "{mode}, signal {sig}: {st}");
    let e = idle.list().unwrap_err();
    assert!(matches!(e, ClientError::Io(_)), "{e:?}");
}

#[test]
fn sigterm_and_sigint_stop_the_thread_mode_guest_after_its_transfers() {
    stops_on("thread", SIGTERM);
    stops_on("thread", SIGINT);
}

#[test]
fn sigterm_and_sigint_stop_the_process_mode_guest_after_its_transfers() {
    stops_on("process", SIGTERM);
    stops_on("process", SIGINT);
}

#[test]
fn a_corrupt_download_is_a_verification_mismatch_at_the_flipped_byte() {
    for mode in ["thread", "process"] {
        let g = Guest::start(mode, 2, &["--corrupt-download"]);
        let len = 1_000_001;
        g.put("a.bin", &content(5, len));
        let mut c = g.client();
        let e = c
            .get_compare("a.bin", &mut Content::new(5, len as u64))
            .unwrap_err();
        assert_eq!(e.cause(), "verification mismatch", "{mode}: {e}");
        assert_eq!(
            e.to_string(),
            "verification failed: GET a.bin: content differs from byte 500000 on",
            "{mode}"
        );
        // The connection is still usable: the answer was read to its end.
        assert_eq!(c.list().unwrap(), ["a.bin"]);
    }
}

#[test]
fn a_truncated_upload_is_reported_ok_and_differs_when_read_back() {
    for mode in ["thread", "process"] {
        let g = Guest::start(mode, 2, &["--truncate-upload"]);
        let len = 1_000_000u64;
        let mut c = g.client();
        let u = c
            .upload_as_named_by_server(&mut Content::new(6, len))
            .unwrap();
        assert_eq!(u.bytes, len);
        let e = c
            .get_compare(&u.name, &mut Content::new(6, len))
            .unwrap_err();
        assert_eq!(e.cause(), "verification mismatch", "{mode}: {e}");
        assert_eq!(
            e.to_string(),
            format!(
                "verification failed: GET {}: got 999999 bytes, expected 1000000",
                u.name
            ),
            "{mode}"
        );
    }
}

#[test]
fn a_guest_that_never_accepts_lets_a_connect_succeed_and_a_request_time_out() {
    for mode in ["thread", "process"] {
        let mut g = Guest::start(mode, 2, &["--never-ready"]);
        assert!(children(g.pid()).is_empty(), "{mode}: no worker started");
        let mut c = Client::connect(g.addr, Duration::from_millis(500))
            .expect("connect (the kernel's backlog answers it)");
        let e = c.list().unwrap_err();
        assert_eq!(e.cause(), "timeout", "{mode}: {e}");
        g.signal(SIGTERM);
        assert_eq!(g.wait(EXIT_LIMIT).code(), Some(0), "{mode}");
    }
}

/// Is `sig` ignored by the process (`SigIgn` of /proc/PID/status)?
fn ignores(pid: u32, sig: i32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
        .expect("SigIgn");
    mask & (1 << (sig - 1)) != 0
}

#[test]
fn a_guest_that_ignores_sigterm_serves_on_and_dies_on_sigkill_with_its_workers() {
    for mode in ["thread", "process"] {
        let mut g = Guest::start(mode, 2, &["--ignore-sigterm"]);
        assert!(ignores(g.pid(), SIGTERM), "{mode}");
        // An ignored signal is discarded when sent: the guest goes on.
        g.signal(SIGTERM);
        assert!(g.client().list().unwrap().is_empty());
        assert!(g.child.as_mut().unwrap().try_wait().unwrap().is_none());
        g.signal(SIGKILL);
        let st = g.wait(EXIT_LIMIT);
        assert_eq!(st.code(), None, "{mode}: killed, {st}");
        // `wait` checked that these went with it.
        let workers = if mode == "process" { 2 } else { 0 };
        assert_eq!(g.workers.len(), workers, "{mode}");
    }
}
