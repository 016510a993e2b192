//! Cases 8-18: faults and floods. Clients that vanish or stall, slowloris,
//! floods, descriptor and disk exhaustion, killed workers and servers, SIGTERM
//! under load, and races on one name. Every loop is bounded in count and time.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use fsbench::client::ClientError;
use fsbench::protocol::base64::{decode, encode};
use fsbench::server::Mode;

use crate::common::{
    assert_error, children, content, json_reply, observe, temp_count, wait_until, Gate, Raw,
    TempDir,
};
use crate::harness::{
    bump, connect, count_as_refused, names_on_disk, note_client_error, peak_kib, raw, ready,
    ready_wrapped, seed_names, with_prober, within_3s, BadInput, Expect, Rng, Srv, F,
};

/// Case 8: A client that disconnects or resets mid-upload: no file and no temp file
/// within 1 s. Mid-download: the (only) worker carries on with the next connection.
pub fn case_08(mode: Mode) {
    let d = TempDir::new("c08");
    let mut s = Srv::start(d.path(), mode, &["--pool", "1"]);
    s.seed();
    let big = content(8, 8 << 20);
    fs::write(s.root.join("big.bin"), &big).unwrap();
    s.baseline();
    let line = format!("{}\n", encode(&content(9, 3000)));
    for reset in [false, true] {
        let mut c = s.raw();
        c.begin_upload(b"UPLOAD mid.bin");
        for _ in 0..3 {
            c.send(line.as_bytes());
        }
        if reset {
            fsbench::sys::reset_on_close(c.s.as_raw_fd()).unwrap();
        }
        drop(c);
        bump(&F.faults, 1);
        let t = wait_until("temp file removed", Duration::from_secs(10), || {
            temp_count(&s.root) == 0
        });
        within_3s("no temp file after a client vanished mid-upload", t);
        assert!(
            !s.root.join("mid.bin").exists(),
            "a partial upload was stored"
        );
        s.probe();
    }
    for reset in [false, true] {
        let mut c = s.raw();
        c.send(b"GET big.bin\n");
        let mut head = vec![0u8; 100_000];
        c.s.read_exact(&mut head).unwrap();
        if reset {
            fsbench::sys::reset_on_close(c.s.as_raw_fd()).unwrap();
        }
        drop(c);
        bump(&F.faults, 1);
        // The only worker serves the next connection, a whole GET.
        let mut cl = s.client();
        let mut got = Vec::new();
        let dl = cl.get("big.bin", &mut got).unwrap();
        assert_eq!(dl.bytes, big.len() as u64);
        assert!(got == big, "GET after an aborted GET returned other bytes");
        assert_eq!(cl.list().unwrap().len(), seed_names().len() + 1);
    }
    s.check(Expect::Unchanged);
}

/// One slow client: a byte every 0.5 s (inside the 2 s idle timeout) of a line
/// that never ends. Returns the reason the server gave and when it came.
///
/// The name is quoted and the quote never closed: a line that never parses as
/// a complete request, however long the client stays quiet between bytes
/// (`GET a`, quiet for the unterminated wait, would be served as a request).
fn slowloris(addr: SocketAddr) -> (String, Duration) {
    let mut r = raw(addr);
    // The read timeout paces the bytes.
    r.s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let line = [b"GET \"".as_slice(), &[b'a'; 200]].concat();
    let t0 = Instant::now();
    let mut got = Vec::new();
    let mut i = 0;
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "slowloris never closed"
        );
        if got.is_empty() {
            assert!(
                i < line.len(),
                "the whole line went out before any deadline"
            );
            if r.s.write_all(&line[i..i + 1]).is_ok() {
                i += 1;
            }
        }
        match r.s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let elapsed = t0.elapsed();
    let body = got
        .strip_suffix(b"\r\n\r\n")
        .expect("the server closed without a reply");
    (assert_error(&json_reply(body), "the reply"), elapsed)
}

/// Case 9: Slowloris: closed at the request deadline; other clients served all along.
pub fn case_09(mode: Mode) {
    let flags = [
        "--pool",
        "2",
        "--idle-timeout",
        "2",
        "--request-timeout",
        "3",
    ];
    let (_d, s) = ready("c09", mode, &flags);
    let addr = s.addr;
    let (results, probes) = with_prober(addr, || {
        let hs: Vec<_> = (0..10)
            .map(|_| std::thread::spawn(move || slowloris(addr)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("slowloris client"))
            .collect::<Vec<_>>()
    });
    for (reason, elapsed) in &results {
        bump(&F.faults, 1);
        assert_eq!(reason, "request line not received in time");
        assert!(
            *elapsed >= Duration::from_millis(2900),
            "closed after {elapsed:?}, before the request deadline"
        );
    }
    assert!(probes > 0, "no probe answered during the slowloris");
    s.check(Expect::Unchanged);
}

/// Case 10: An upload that stalls and a client that never reads a 100 MB GET:
/// closed at the idle timeout, memory bounded, the worker freed.
pub fn case_10(mode: Mode) {
    let d = TempDir::new("c10");
    let mut s = Srv::start(d.path(), mode, &["--pool", "2", "--idle-timeout", "1"]);
    s.seed();
    const HUGE: u64 = 100 << 20;
    // Sparse: the content does not matter, its size does.
    fs::File::create(s.root.join("huge.bin"))
        .unwrap()
        .set_len(HUGE)
        .unwrap();
    s.baseline();
    let ((), probes) = with_prober(s.addr, || {
        // The stalled upload: ERROR "idle timeout", then closed.
        let mut c = s.raw();
        c.begin_upload(b"UPLOAD stall.bin");
        c.send(format!("{}\n", encode(&content(10, 3000))).as_bytes());
        let t0 = Instant::now();
        bump(&F.faults, 1);
        assert_eq!(assert_error(&c.reply_json(), "the reply"), "idle timeout");
        c.expect_closed();
        let t = t0.elapsed();
        assert!(t >= Duration::from_millis(900), "closed after {t:?}");
        s.expect_no_temps(Duration::from_secs(3));
        assert!(!s.root.join("stall.bin").exists());

        // The unread GET: the worker gives up at the idle timeout.
        let mut stats = s.client();
        let failed = |st: &mut fsbench::client::Client| {
            st.stats().unwrap()["tasks_failed"].as_u64().unwrap()
        };
        // The stalled upload is the case's first failed task; wait until it is counted.
        wait_until(
            "the stalled upload counted",
            Duration::from_secs(10),
            || failed(&mut stats) == 1,
        );
        let failed0 = 1;
        let (rss0, peak0) = (s.rss_kib(), peak_kib(&s));
        let mut c = s.raw();
        c.send(b"GET huge.bin\n");
        bump(&F.faults, 1);
        wait_until("the unread GET closed", Duration::from_secs(20), || {
            failed(&mut stats) > failed0
        });
        let growth = (peak_kib(&s).saturating_sub(peak0)).max(s.rss_kib().saturating_sub(rss0));
        // Everything that reached this socket, then the close.
        let mut total = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match c.s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        println!(
            "       case 10: the unread GET was cut after {} KiB of {} MiB; server memory grew by {growth} KiB",
            total / 1024,
            HUGE >> 20
        );
        assert!(total < HUGE / 3 * 4, "the whole file went out");
        assert!(growth < 16 * 1024, "memory grew by {growth} KiB");
    });
    assert!(probes > 0);
    s.check(Expect::Unchanged);
}

/// Case 11: 2000 connections at once against `--pool 5`: every one served or
/// refused, the counts add up, no failure among those served.
pub fn case_11(mode: Mode) {
    const N: usize = 2000;
    const THREADS: usize = 8;
    let (_d, s) = ready("c11", mode, &["--pool", "5"]);
    let addr = s.addr;
    let want = seed_names();
    let all_connected = Gate::new(THREADS);
    let hs: Vec<_> = (0..THREADS)
        .map(|_| {
            let b = all_connected.clone();
            let want = want.clone();
            std::thread::spawn(move || {
                let mut conns = Vec::new();
                let mut refused = 0;
                for _ in 0..N / THREADS {
                    match connect(addr, Duration::from_secs(10)) {
                        Ok(mut c) => {
                            if c.write_all(b"LIST\n").is_ok() {
                                conns.push(Raw::from(c));
                            } else {
                                count_as_refused();
                                refused += 1;
                            }
                        }
                        Err(_) => refused += 1,
                    }
                }
                b.wait();
                let (mut served, mut failed) = (0, Vec::new());
                for c in &mut conns {
                    match c.try_reply() {
                        Some(body) => {
                            let v = json_reply(&body);
                            if v["status"] == "OK" && v["data"] == serde_json::json!(want) {
                                served += 1;
                            } else {
                                failed.push(v.to_string());
                            }
                        }
                        None => {
                            count_as_refused();
                            refused += 1;
                        }
                    }
                }
                (served, refused, failed)
            })
        })
        .collect();
    let (mut served, mut refused, mut failed) = (0, 0, Vec::new());
    for h in hs {
        let (a, b, c) = h.join().expect("flood thread");
        served += a;
        refused += b;
        failed.extend(c);
    }
    bump(&F.faults, 1);
    println!("       case 11: {served} served, {refused} refused of {N}");
    assert!(failed.is_empty(), "failures among the served: {failed:?}");
    assert_eq!(served + refused, N);
    assert!(served > 0);
    s.check(Expect::Unchanged);
}

/// Reads every reply that has arrived on the connections still open; returns
/// how many of them have been answered so far.
fn collect_replies(conns: &mut [Option<Raw>], replies: &mut [Option<Vec<u8>>]) -> usize {
    for (c, r) in conns.iter_mut().zip(replies.iter_mut()) {
        if let (Some(c), None) = (c.as_mut(), r.as_ref()) {
            *r = c.reply_now();
        }
    }
    replies.iter().filter(|r| r.is_some()).count()
}

/// Case 12: A descriptor limit of 64, then 200 connections that each send a
/// LIST: the server holds as many as the cap it derives from the limit and
/// answers each of them, sits still while full (nothing past the cap
/// answered, the accept loop not spinning), and answers every other one once
/// those close.
pub fn case_12(mode: Mode) {
    const N: usize = 200;
    let (_d, s) = ready_wrapped(
        "c12",
        mode,
        &["--pool", "2"],
        &["prlimit", "--nofile=64:64", "--"],
    );
    let mut conns: Vec<Option<Raw>> = (0..N)
        .map(|_| {
            let mut c = connect(s.addr, Duration::from_secs(10)).expect("connect");
            c.write_all(b"LIST\n").unwrap();
            Some(Raw::from(c))
        })
        .collect();
    bump(&F.faults, 1);
    // The cap the server derived from its limit (it logs it).
    let cap: usize = s
        .log_text()
        .split("max_connections=")
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .expect("max_connections in the log");
    assert!(cap < N, "cap {cap}: the {N} connections must be more");
    let mut replies: Vec<Option<Vec<u8>>> = vec![None; N];
    wait_until(
        format!("{cap} connections answered"),
        Duration::from_secs(20),
        || collect_replies(&mut conns, &mut replies) >= cap,
    );
    // Full, the server sits still: for a second, no connection past the cap
    // is answered, and the accept loop burns no CPU.
    let cpu0 = s.cpu_secs();
    let t0 = Instant::now();
    observe(Duration::from_secs(1), || {
        let n = collect_replies(&mut conns, &mut replies);
        assert_eq!(n, cap, "{n} answered while full, cap {cap}");
    });
    let busy = (s.cpu_secs() - cpu0) / t0.elapsed().as_secs_f64();
    println!(
        "       case 12: {cap} of {N} answered while full (cap {cap} under 64 descriptors); server CPU {:.0}% of one core",
        busy * 100.0
    );
    assert!(
        busy < 0.5,
        "the accept loop spins: {:.0}% CPU",
        busy * 100.0
    );
    assert!(
        !s.log_text().contains("MSG_CTRUNC"),
        "a worker lost at the limit"
    );
    // Each answered connection closes, which makes room for the next from
    // the backlog: every one of them is answered.
    let t0 = Instant::now();
    wait_until("every connection answered", Duration::from_secs(30), || {
        let n = collect_replies(&mut conns, &mut replies);
        for (c, r) in conns.iter_mut().zip(&replies) {
            if r.is_some() {
                *c = None;
            }
        }
        n == N
    });
    println!(
        "       case 12: serving again: the other {} answered within {:.0} ms of the close",
        N - cap,
        t0.elapsed().as_secs_f64() * 1000.0
    );
    let want = serde_json::json!(seed_names());
    for (i, r) in replies.iter().enumerate() {
        let v = json_reply(r.as_deref().unwrap());
        assert!(
            v["status"] == "OK" && v["data"] == want,
            "connection {i}: {v}"
        );
    }
    s.probe();
    s.check(Expect::Unchanged);
}

/// A mount that is undone when dropped.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

fn mount(args: &[&str], at: &Path) -> Option<Mount> {
    let ok = Command::new("mount")
        .args(args)
        .arg(at)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| Mount(at.to_path_buf()))
}

/// Upload of 2 MB on a store that cannot hold it: ERROR, nothing left; then a
/// small upload works.
fn upload_too_big_then_small(s: &Srv, want: &str) {
    let mut c = s.client();
    let big = content(13, 2 << 20);
    bump(&F.faults, 1);
    match c.upload(Some("full.bin"), &mut &big[..]) {
        Err(ClientError::Server(reason)) => assert!(reason.contains(want), "{reason}"),
        other => panic!("2 MB upload on a full store: {other:?}"),
    }
    assert_eq!(
        temp_count(&s.root),
        0,
        "temp file left by the failed upload"
    );
    assert!(!s.root.join("full.bin").exists(), "partial file stored");
    let small = content(14, 10_000);
    c.upload(Some("after.bin"), &mut &small[..]).unwrap();
    let mut got = Vec::new();
    c.get("after.bin", &mut got).unwrap();
    assert_eq!(got, small);
    c.delete("after.bin").unwrap();
}

/// With fsync on, an upload renamed into place (or a removal) whose folder
/// cannot be synced: ERROR saying the file is there but may not survive a
/// crash, and the connection serves on. Forced portably: a server that is not
/// root (run as nobody) over a folder it may write in and search but not
/// read, so opening the folder to sync it is refused.
fn folder_sync_refused(mode: Mode) {
    const NOBODY: u32 = 65534;
    let as_nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
    ];
    let runs = Command::new(as_nobody[0])
        .args(&as_nobody[1..])
        .arg("true")
        .status()
        .is_ok_and(|st| st.success());
    if !runs {
        println!(
            "       case 13: cannot run the server as nobody here: failed folder sync not run"
        );
        return;
    }
    let d = TempDir::new("c13c");
    let files = d.path().join("files");
    fs::create_dir_all(files.join(".tmp")).unwrap();
    for p in [files.clone(), files.join(".tmp")] {
        std::os::unix::fs::chown(&p, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let mut s = Srv::start_wrapped(d.path(), mode, &["--pool", "2", "--fsync"], &as_nobody);
    s.seed();
    s.baseline();
    let set_mode = |m: u32| {
        fs::set_permissions(&files, std::os::unix::fs::PermissionsExt::from_mode(m)).unwrap()
    };
    set_mode(0o300);
    bump(&F.faults, 1);
    let mut c = s.client();
    let data = content(15, 300_000);
    match c.upload(Some("unsynced.bin"), &mut &data[..]) {
        Err(ClientError::Server(r)) => assert!(r.contains("stored but may not survive"), "{r}"),
        other => panic!("upload with a failing folder sync: {other:?}"),
    }
    assert_eq!(fs::read(files.join("unsynced.bin")).unwrap(), data);
    let mut got = Vec::new();
    c.get("unsynced.bin", &mut got).unwrap();
    assert_eq!(got, data);
    match c.delete("unsynced.bin") {
        Err(ClientError::Server(r)) => assert!(r.contains("deleted but may come back"), "{r}"),
        other => panic!("delete with a failing folder sync: {other:?}"),
    }
    assert!(!files.join("unsynced.bin").exists());
    drop(c);
    set_mode(0o700);
    s.check(Expect::Unchanged);
}

/// Case 13: Disk full (a 1 MiB tmpfs where mounting works, and a file-size limit
/// with SIGXFSZ ignored), then a read-only store.
pub fn case_13(mode: Mode) {
    // a. tmpfs of 1 MiB.
    let d = TempDir::new("c13a");
    let files = d.path().join("files");
    fs::create_dir_all(&files).unwrap();
    match mount(&["-t", "tmpfs", "-o", "size=1m", "tmpfs"], &files) {
        Some(m) => {
            let mut s = Srv::start(d.path(), mode, &["--pool", "2"]);
            s.seed();
            s.baseline();
            upload_too_big_then_small(&s, "No space left");
            s.check(Expect::Unchanged);
            drop(m);
        }
        None => {
            println!("       case 13: cannot mount a tmpfs here: disk full by file-size limit only")
        }
    }
    // b. A file-size limit of 1 MiB.
    let (_d, s) = ready_wrapped(
        "c13b",
        mode,
        &["--pool", "2"],
        &["prlimit", "--fsize=1048576", "--"],
    );
    upload_too_big_then_small(&s, "too large");
    s.check(Expect::Unchanged);

    // c. A folder sync that fails once an upload is renamed into place.
    folder_sync_refused(mode);

    // d. A read-only store: a read-only bind mount where mounting works, else
    // a folder without write permission (which does not stop root).
    let (_d, s) = ready("c13c", mode, &["--pool", "2"]);
    let root = s.root.clone();
    let src = root.to_string_lossy().into_owned();
    let guard = match mount(&["--bind", &src], &root) {
        Some(m) => {
            let ro = Command::new("mount")
                .args(["-o", "remount,bind,ro"])
                .arg(&root)
                .status()
                .is_ok_and(|st| st.success());
            ro.then_some(m)
        }
        None => None,
    };
    if guard.is_none() {
        println!("       case 13: cannot mount read-only here: read-only store not run");
        s.check(Expect::Unchanged);
        return;
    }
    bump(&F.faults, 1);
    let mut c = s.raw();
    for line in [&b"UPLOAD ro.bin"[..], b"UPLOAD", b"UPLOAD ro.bin QUJD"] {
        let r = c.expect_error(line);
        assert!(r.contains("Read-only"), "{line:?}: {r}");
    }
    let r = c.expect_error(b"DELETE seed-a.bin");
    assert!(r.contains("Read-only"), "{r}");
    assert_eq!(c.list(), seed_names());
    drop(c);
    let mut cl = s.client();
    let mut got = Vec::new();
    cl.get("seed-a.bin", &mut got).unwrap();
    assert_eq!(got, content(1, 100_000));
    drop(cl);
    s.probe();
    drop(guard);
    s.check(Expect::Unchanged);
}

/// What one client thread of case 14 knows about a name it writes.
#[derive(Default)]
struct NameState {
    /// Contents (as seeds) the file may hold: the last acknowledged upload and
    /// every later attempt whose answer was lost.
    candidates: Vec<(u64, usize)>,
    acked: bool,
}

/// Case 14: Process mode: 20 kills of a worker while 50 clients loop.
pub fn case_14(mode: Mode) {
    const CLIENTS: usize = 50;
    const KILLS: usize = 20;
    const POOL: usize = 4;
    let (_d, s) = ready("c14", mode, &["--pool", "4"]);
    let addr = s.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let io_errors = Arc::new(AtomicU64::new(0));
    let hs: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let stop = stop.clone();
            let progress = progress.clone();
            let io_errors = io_errors.clone();
            std::thread::spawn(move || {
                let mut names: HashMap<String, NameState> = HashMap::new();
                let mut rng = Rng::new(t as u64 + 1400);
                let mut server_errors = Vec::new();
                let mut c = None;
                for it in 0..400u64 {
                    if stop.load(Relaxed) {
                        break;
                    }
                    let cl = match &mut c {
                        Some(cl) => cl,
                        None => match crate::harness::try_client(addr) {
                            Ok(cl) => c.insert(cl),
                            Err(_) => {
                                io_errors.fetch_add(1, Relaxed);
                                continue;
                            }
                        },
                    };
                    let name = format!("c{t}-{}.bin", it % 3);
                    let (seed, len) = (t as u64 * 100_000 + it, 1 + rng.below(32 * 1024) as usize);
                    let st = names.entry(name.clone()).or_default();
                    let r = cl.upload(Some(&name), &mut &content(seed, len)[..]);
                    let r = r.and_then(|_| {
                        st.candidates = vec![(seed, len)];
                        st.acked = true;
                        let mut got = Vec::new();
                        cl.get(&name, &mut got)?;
                        if got != content(seed, len) {
                            bump(&F.partial_seen, 1);
                        }
                        cl.list().map(drop)
                    });
                    match r {
                        Ok(()) => {
                            progress.fetch_add(1, Relaxed);
                        }
                        Err(e) => {
                            note_client_error(&e);
                            if !st.candidates.contains(&(seed, len)) {
                                st.candidates.push((seed, len));
                            }
                            match e {
                                ClientError::Io(_) | ClientError::Connect(_) => {
                                    io_errors.fetch_add(1, Relaxed);
                                }
                                other => server_errors.push(other.to_string()),
                            }
                            c = None;
                        }
                    }
                }
                (names, server_errors)
            })
        })
        .collect();
    let mut killed = Vec::new();
    for _ in 0..KILLS {
        let p0 = progress.load(Relaxed);
        wait_until(
            "client progress between kills",
            Duration::from_secs(30),
            || progress.load(Relaxed) >= p0 + 20,
        );
        let workers = children(s.pid());
        assert_eq!(workers.len(), POOL, "workers: {workers:?}");
        let victim = workers[killed.len() % workers.len()];
        fsbench::sys::kill(victim, fsbench::sys::SIGKILL).unwrap();
        bump(&F.faults, 1);
        killed.push(victim);
        wait_until("the worker replaced", Duration::from_secs(10), || {
            let w = children(s.pid());
            w.len() == POOL && !w.contains(&victim)
        });
    }
    stop.store(true, Relaxed);
    let mut server_errors = Vec::new();
    let mut acked = 0;
    for h in hs {
        let (names, errs) = h.join().expect("client thread");
        server_errors.extend(errs);
        for (name, st) in names {
            if !st.acked {
                continue;
            }
            acked += 1;
            let on_disk = fs::read(s.root.join(&name)).unwrap_or_default();
            if !st
                .candidates
                .iter()
                .any(|&(seed, len)| on_disk == content(seed, len))
            {
                let (seed, len) = st.candidates[0];
                bump(&F.bytes_lost, len as u64);
                panic!("{name}: content lost (last acknowledged seed {seed})");
            }
        }
    }
    let mut cl = s.client();
    let restarted = cl.stats().unwrap()["workers_restarted"].as_u64().unwrap();
    drop(cl);
    println!(
        "       case 14: {KILLS} kills, {} requests completed, {} connections broken by kills, {acked} names verified, workers_restarted {restarted}",
        progress.load(Relaxed),
        io_errors.load(Relaxed)
    );
    assert!(
        server_errors.is_empty(),
        "unexpected errors: {server_errors:?}"
    );
    assert!(restarted >= KILLS as u64);
    s.check(Expect::Written);
}

/// Case 15: SIGTERM with 20 transfers in flight: all complete, exit 0, no temp file.
pub fn case_15(mode: Mode) {
    const CHUNK: usize = 192 * 1024;
    let d = TempDir::new("c15");
    let mut s = Srv::start(d.path(), mode, &["--pool", "20"]);
    s.seed();
    let dl = content(150, 4 << 20);
    fs::write(s.root.join("dl.bin"), &dl).unwrap();
    s.baseline();
    let mid = Gate::new(21);
    let go = Gate::new(21);
    let addr = s.addr;
    let mut hs = Vec::new();
    for i in 0..10u64 {
        let (mid, go) = (mid.clone(), go.clone());
        hs.push(std::thread::spawn(move || {
            let data = content(151 + i, 2 << 20);
            let mut c = raw(addr);
            let name = format!("up-{i}.bin");
            c.begin_upload(format!("UPLOAD {name}").as_bytes());
            let lines: Vec<String> = data.chunks(CHUNK).map(|p| encode(p) + "\n").collect();
            let half = lines.len() / 2;
            for l in &lines[..half] {
                c.send(l.as_bytes());
            }
            mid.wait();
            go.wait();
            for l in &lines[half..] {
                c.send(l.as_bytes());
            }
            c.send(b"ENDUPLOAD\n");
            let v = c.reply_json();
            assert_eq!(v["status"], "OK", "{v}");
            assert_eq!(v["data"]["file_path"], name.as_str());
            (name, data)
        }));
    }
    let mut gets = Vec::new();
    for _ in 0..10 {
        let (mid, go) = (mid.clone(), go.clone());
        let want = dl.clone();
        gets.push(std::thread::spawn(move || {
            let mut c = raw(addr);
            c.send(b"GET dl.bin\n");
            let mut head = vec![0u8; 64 * 1024];
            c.s.read_exact(&mut head).unwrap();
            mid.wait();
            go.wait();
            let mut rest = c.reply();
            head.append(&mut rest);
            let v = json_reply(&head);
            assert_eq!(v["status"], "OK");
            let got = decode(v["data_file"].as_str().unwrap().as_bytes()).unwrap();
            assert!(got == want, "GET across SIGTERM returned other bytes");
        }));
    }
    mid.wait();
    fsbench::sys::kill(s.pid(), fsbench::sys::SIGTERM).unwrap();
    bump(&F.faults, 1);
    wait_until("SIGTERM handled", Duration::from_secs(10), || {
        s.log_text().contains("no longer accepting")
    });
    // No longer accepting: a newcomer is refused, not left in a backlog.
    assert!(
        connect(addr, Duration::from_secs(5)).is_err(),
        "a connection was accepted after SIGTERM"
    );
    go.wait();
    let mut stored = Vec::new();
    for h in hs {
        stored.push(h.join().expect("upload across SIGTERM"));
    }
    for h in gets {
        h.join().expect("GET across SIGTERM");
    }
    let st = s.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "exit status {st}");
    for (name, data) in &stored {
        let on_disk = fs::read(s.root.join(name)).unwrap_or_default();
        if on_disk != *data {
            bump(&F.bytes_lost, data.len() as u64);
            panic!("{name} lost across SIGTERM");
        }
    }
    s.check(Expect::Written);
}

/// Case 16: 20 identical uploads at once while others GET and LIST the same name:
/// one file, and no reader ever sees a partial one.
pub fn case_16(mode: Mode) {
    let (_d, s) = ready("c16", mode, &["--pool", "8"]);
    let data = Arc::new(content(16, 1 << 20));
    let sha = crate::common::sha_hex(&data);
    let addr = s.addr;
    let start = Gate::new(20);
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (done, sha) = (done.clone(), sha.clone());
            let len = data.len() as u64;
            std::thread::spawn(move || {
                let mut c = crate::harness::client(addr);
                let (mut seen, mut absent) = (0u64, 0u64);
                for _ in 0..5000 {
                    if done.load(Relaxed) {
                        break;
                    }
                    match c.get("same.bin", &mut std::io::sink()) {
                        Ok(d) => {
                            if d.sha256 != sha || d.bytes != len {
                                bump(&F.partial_seen, 1);
                                panic!("a reader saw a partial same.bin ({} bytes)", d.bytes);
                            }
                            seen += 1;
                        }
                        Err(ClientError::Server(r)) if r == "file not found: same.bin" => {
                            absent += 1
                        }
                        Err(e) => {
                            note_client_error(&e);
                            panic!("reader: {e}");
                        }
                    }
                    let names = c.list().unwrap();
                    let n = names.iter().filter(|n| *n == "same.bin").count();
                    assert!(n <= 1, "same.bin listed {n} times");
                    assert!(names
                        .iter()
                        .all(|n| !n.starts_with('.') && !n.starts_with("up-")));
                }
                (seen, absent)
            })
        })
        .collect();
    let uploaders: Vec<_> = (0..20)
        .map(|_| {
            let (start, data) = (start.clone(), data.clone());
            std::thread::spawn(move || {
                let mut c = crate::harness::client(addr);
                start.wait();
                let u = c.upload(Some("same.bin"), &mut &data[..]).unwrap();
                assert_eq!(u.name, "same.bin");
            })
        })
        .collect();
    for h in uploaders {
        h.join().expect("uploader");
    }
    done.store(true, Relaxed);
    let (mut seen, mut absent) = (0, 0);
    for h in readers {
        let (a, b) = h.join().expect("reader");
        seen += a;
        absent += b;
    }
    println!("       case 16: readers saw the whole file {seen} times, no file {absent} times, never a part");
    let mut want = seed_names();
    want.push("same.bin".into());
    want.sort();
    assert_eq!(names_on_disk(&s.root), want);
    assert!(fs::read(s.root.join("same.bin")).unwrap() == *data);
    s.check(Expect::Written);
}

/// Case 17: UPLOAD and DELETE of one name racing, 500 rounds: after each round the
/// store matches one of the two orders the operations could run in.
pub fn case_17(mode: Mode) {
    const ROUNDS: usize = 500;
    let (_d, s) = ready("c17", mode, &["--pool", "2"]);
    let addr = s.addr;
    let start = Gate::new(3);
    let end = Gate::new(3);
    let body = |r: usize| format!("round {r};").repeat(1 + r % 40).into_bytes();
    let (utx, urx) = mpsc::channel();
    let (dtx, drx) = mpsc::channel();
    let up = {
        let (start, end) = (start.clone(), end.clone());
        std::thread::spawn(move || {
            let mut c = crate::harness::client(addr);
            for r in 0..ROUNDS {
                start.wait();
                let res = c.upload(Some("race.bin"), &mut &body(r)[..]).map(drop);
                utx.send(res.map_err(|e| e.to_string())).unwrap();
                end.wait();
            }
        })
    };
    let del = {
        let (start, end) = (start.clone(), end.clone());
        std::thread::spawn(move || {
            let mut c = crate::harness::client(addr);
            let mut rng = Rng::new(17);
            for _ in 0..ROUNDS {
                start.wait();
                // A random head start for the upload (up to about its length),
                // so that both orders and the overlaps in between all occur.
                std::thread::sleep(Duration::from_micros(rng.below(300)));
                let res = match c.delete("race.bin") {
                    Ok(()) => Ok(true),
                    Err(ClientError::Server(r)) if r == "file not found: race.bin" => Ok(false),
                    Err(e) => Err(e.to_string()),
                };
                dtx.send(res).unwrap();
                end.wait();
            }
        })
    };
    let mut present = false;
    let (mut upload_last, mut delete_last) = (0, 0);
    for r in 0..ROUNDS {
        start.wait();
        end.wait();
        let u = urx.recv().unwrap();
        let deleted = drx.recv().unwrap();
        assert!(u.is_ok(), "round {r}: upload failed: {u:?}");
        let deleted = deleted.unwrap_or_else(|e| panic!("round {r}: delete failed: {e}"));
        let now = fs::read(s.root.join("race.bin")).ok();
        match &now {
            // DELETE ran first: it found the file exactly when one was there.
            Some(c) => {
                assert!(*c == body(r), "round {r}: wrong content");
                assert_eq!(
                    deleted, present,
                    "round {r}: DELETE then UPLOAD, yet DELETE said {deleted}"
                );
                upload_last += 1;
            }
            // UPLOAD ran first: DELETE found its file.
            None => {
                assert!(deleted, "round {r}: file gone but DELETE found nothing");
                delete_last += 1;
            }
        }
        present = now.is_some();
        assert_eq!(temp_count(&s.root), 0);
    }
    up.join().unwrap();
    del.join().unwrap();
    println!("       case 17: {ROUNDS} rounds: UPLOAD last {upload_last}, DELETE last {delete_last}, all serialisable");
    let _ = fs::remove_file(s.root.join("race.bin"));
    s.check(Expect::Unchanged);
}

/// Checks that every acknowledged upload (name, pattern seed, length) is in
/// the store with its content; a missing byte counts as lost.
fn all_there(root: &Path, acked: &[(String, u64, usize)]) {
    for (name, seed, len) in acked {
        let on_disk = fs::read(root.join(name)).unwrap_or_default();
        if on_disk != content(*seed, *len) {
            bump(&F.bytes_lost, *len as u64);
            panic!("{name}: acknowledged, then lost after kill -9");
        }
    }
}

/// Case 18: kill -9 of the whole server during uploads, 50 times, restarting each
/// time: every acknowledged upload is there with its content, and no temp
/// file survives a restart.
pub fn case_18(mode: Mode) {
    const ROUNDS: usize = 50;
    let flags = ["--pool", "4", "--fsync"];
    let d = TempDir::new("c18");
    let mut s = Srv::start(d.path(), mode, &flags);
    let seed0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng::new(seed0);
    let acked: Arc<Mutex<Vec<(String, u64, usize)>>> = Arc::default();
    let mut verified = 0;
    let mut temps_at_kill = 0;
    for round in 0..ROUNDS {
        if round > 0 {
            s.restart(&flags);
            let n = temp_count(&s.root);
            bump(&F.temps_left, n as u64);
            assert_eq!(n, 0, "a temp file survived the restart");
        }
        // Everything acknowledged so far is there, whole.
        let list = acked.lock().unwrap().clone();
        all_there(&s.root, &list[verified..]);
        verified = list.len();
        let before = list.len();
        let addr = s.addr;
        let hs: Vec<_> = (0..4u64)
            .map(|t| {
                let acked = acked.clone();
                let mut rng = Rng::new(seed0 ^ (round as u64 * 8 + t + 1));
                std::thread::spawn(move || {
                    let Ok(mut c) = crate::harness::try_client(addr) else {
                        return;
                    };
                    for n in 0..200u64 {
                        let name = format!("k{round}-{t}-{n}.bin");
                        let seed = (round as u64) << 32 | t << 16 | n;
                        let len = 1024 + rng.below(256 * 1024) as usize;
                        match c.upload(Some(&name), &mut &content(seed, len)[..]) {
                            Ok(_) => acked.lock().unwrap().push((name, seed, len)),
                            Err(e) => {
                                note_client_error(&e);
                                return;
                            }
                        }
                    }
                })
            })
            .collect();
        // A random moment while uploads run: after at least one upload has
        // begun, up to 60 ms later.
        wait_until("uploads under way", Duration::from_secs(10), || {
            temp_count(&s.root) > 0 || acked.lock().unwrap().len() > before
        });
        std::thread::sleep(Duration::from_millis(rng.below(60)));
        temps_at_kill += temp_count(&s.root);
        s.kill9();
        for h in hs {
            h.join().expect("uploader");
        }
        s.count_panics();
    }
    s.restart(&flags);
    assert_eq!(temp_count(&s.root), 0, "a temp file survived the restart");
    let list = acked.lock().unwrap().clone();
    all_there(&s.root, &list);
    println!(
        "       case 18: {ROUNDS} kill -9 (seed {seed0}), {} uploads acknowledged and verified, {temps_at_kill} temp files present at the kills, none after a restart",
        list.len()
    );
    s.baseline();
    s.check(Expect::Written);
}
