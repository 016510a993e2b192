//! Several servers over one store (`--root`): each keeps its uploads in
//! progress in a temp folder of its own under `.tmp`, locked while the
//! server (or one of its workers) lives. A server's start removes the
//! folders whose lock is free, never a running server's; a clean exit
//! removes the server's own.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::common::{
    alive, children, content, fd_table, spawn_server, temp_count, wait_exit, wait_until, Content,
    Gate, GatedReader, TempDir, BIN, T,
};
use fsbench::client::{Client, ClientError, Upload};

/// Size of each held upload, and where its client stops: past the server's
/// 1 MiB write buffer, so part of it is on disk.
const LEN: usize = 3 << 20;
const HOLD_AT: u64 = 2 << 20;

/// A server over `<dir>/files`, which other servers may share; killed on drop.
struct Serving {
    child: Option<Child>,
    addr: SocketAddr,
    log: PathBuf,
}

fn serve(dir: &Path, tag: &str, args: &[&str]) -> Serving {
    let log = dir.join(format!("{tag}.log"));
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--port", "0", "--no-fsync", "--root"])
        .arg(dir.join("files"))
        .args(args);
    let (child, addr) = spawn_server(cmd, &log);
    Serving {
        child: Some(child),
        addr,
        log,
    }
}

impl Serving {
    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn client(&self) -> Client {
        Client::connect(self.addr, T).expect("connect")
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status.
    fn stop(&mut self) -> ExitStatus {
        fsbench::sys::kill(self.pid(), fsbench::sys::SIGTERM).unwrap();
        let mut child = self.child.take().unwrap();
        wait_exit(&mut child, T).unwrap_or_else(|| panic!("no exit; log:\n{}", self.log_text()))
    }

    /// kill -9 of the server's main process (not of its workers), reaped.
    fn kill9(&mut self) {
        let mut child = self.child.take().unwrap();
        fsbench::sys::kill(child.id(), fsbench::sys::SIGKILL).unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A streamed upload whose client has sent `HOLD_AT` of its `LEN` bytes and
/// waits at its gate.
struct HeldUpload {
    name: &'static str,
    seed: u64,
    gate: Arc<Gate>,
    handle: JoinHandle<Result<Upload, ClientError>>,
}

impl HeldUpload {
    fn start(srv: &Serving, name: &'static str, seed: u64) -> HeldUpload {
        let gate = Gate::new(2);
        let mut src = GatedReader::new(Content::new(seed, LEN as u64), HOLD_AT, gate.clone());
        let mut c = srv.client();
        let handle = std::thread::spawn(move || c.upload(Some(name), &mut src));
        gate.wait();
        HeldUpload {
            name,
            seed,
            gate,
            handle,
        }
    }

    /// Lets the client send the rest; the upload's result.
    fn finish(self) -> Result<Upload, ClientError> {
        self.gate.wait();
        self.handle.join().unwrap()
    }
}

/// The temp folders under `<root>/.tmp`, sorted.
fn temp_folders(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(".tmp"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    v.sort();
    v
}

/// Waits until the server of `pid` (its main process or a worker) holds
/// exactly one temp file, part of it written; returns its path. Found through
/// the descriptors, wherever the store keeps temp files under `.tmp`.
fn held_temp_file(root: &Path, pid: u32) -> PathBuf {
    let tmp = root.canonicalize().unwrap().join(".tmp");
    let mut found = None;
    wait_until(format!("server {pid} writing a temp file"), T, || {
        let mut files: Vec<PathBuf> = std::iter::once(pid)
            .chain(children(pid))
            .flat_map(fd_table)
            .map(|(_, target)| target)
            .filter(|t| {
                t.starts_with(&tmp)
                    && std::fs::metadata(t).is_ok_and(|m| m.is_file() && m.len() > 0)
            })
            .collect();
        files.dedup();
        if let [one] = files.as_slice() {
            found = Some(one.clone());
        }
        found.is_some()
    });
    found.unwrap()
}

/// The acknowledged upload is in the store whole: on disk and through `srv`.
fn intact(root: &Path, up: (&str, u64), r: Result<Upload, ClientError>, srv: &Serving) {
    let (name, seed) = up;
    let done = r.unwrap_or_else(|e| panic!("upload of {name}: {e}"));
    assert_eq!(done.name, name);
    assert_eq!(done.bytes, LEN as u64);
    let want = content(seed, LEN);
    assert!(
        std::fs::read(root.join(name)).unwrap() == want,
        "{name} differs on disk"
    );
    let mut got = Vec::new();
    srv.client().get(name, &mut got).unwrap();
    assert!(got == want, "{name} differs through a server");
}

/// Nothing is left in `.tmp`: no temp file, no folder.
fn tmp_is_empty(root: &Path) {
    assert_eq!(temp_count(root), 0, "temp files left");
    let left: Vec<_> = std::fs::read_dir(root.join(".tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left in .tmp: {left:?}");
}

#[test]
fn a_third_server_starting_over_the_store_leaves_the_uploads_of_two_running_ones_alone() {
    let d = TempDir::new("shared");
    let root = d.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("seed.txt"), b"seed").unwrap();
    let mut thread = serve(d.path(), "thread", &["--mode", "thread", "--pool", "2"]);
    let mut process = serve(d.path(), "process", &["--mode", "process", "--pool", "2"]);
    let a = HeldUpload::start(&thread, "a.bin", 31);
    let b = HeldUpload::start(&process, "b.bin", 32);
    let temps = [
        held_temp_file(&root, thread.pid()),
        held_temp_file(&root, process.pid()),
    ];
    let mut third = serve(d.path(), "third", &["--mode", "thread", "--pool", "1"]);
    // Its start-up clean-up is over once it listens.
    for t in &temps {
        assert!(
            t.is_file(),
            "{} removed by the third server's start",
            t.display()
        );
    }
    assert_eq!(temp_folders(&root).len(), 3, "one temp folder per server");
    for (t, srv) in temps.iter().zip([&thread, &process]) {
        let folder = t.parent().unwrap().file_name().unwrap().to_string_lossy();
        assert!(folder.starts_with(&format!("{}-", srv.pid())), "{t:?}");
    }
    assert!(
        !third.log_text().contains("removed"),
        "{}",
        third.log_text()
    );
    // Temp files never show in a listing.
    for srv in [&thread, &process, &third] {
        assert_eq!(srv.client().list().unwrap(), ["seed.txt"]);
    }
    let (a_up, b_up) = ((a.name, a.seed), (b.name, b.seed));
    intact(&root, a_up, a.finish(), &third);
    intact(&root, b_up, b.finish(), &third);
    for srv in [&thread, &process, &third] {
        assert_eq!(srv.client().list().unwrap(), ["a.bin", "b.bin", "seed.txt"]);
    }
    for srv in [&mut thread, &mut process, &mut third] {
        let st = srv.stop();
        assert!(st.success(), "exit status {st}; log:\n{}", srv.log_text());
    }
    tmp_is_empty(&root);
}

#[test]
fn a_killed_servers_temp_folder_is_removed_at_the_next_start_once_no_worker_holds_it() {
    let d = TempDir::new("killed");
    let root = d.path().join("files");
    let mut process = serve(d.path(), "process", &["--mode", "process", "--pool", "2"]);
    let mut thread = serve(d.path(), "thread", &["--mode", "thread", "--pool", "2"]);
    let kept = HeldUpload::start(&process, "kept.bin", 41);
    let lost = HeldUpload::start(&thread, "lost.bin", 42);
    let kept_temp = held_temp_file(&root, process.pid());
    let lost_temp = held_temp_file(&root, thread.pid());
    let workers = children(process.pid());
    // The thread-mode server dies whole: its temp file stays, unlocked.
    thread.kill9();
    assert!(lost_temp.is_file());
    // Only the process-mode acceptor dies: the worker serving the upload
    // finishes it, and holds the server's folder (its lock) meanwhile.
    process.kill9();
    let mut next = serve(d.path(), "next", &["--mode", "thread", "--pool", "1"]);
    assert!(!lost_temp.exists(), "the killed server's temp file is left");
    assert!(kept_temp.is_file(), "a worker's upload removed under it");
    assert!(
        !lost_temp.parent().unwrap().exists(),
        "the killed server's folder is left"
    );
    assert!(
        next.log_text()
            .contains("removed 1 temp file(s) and 1 temp folder(s)"),
        "{}",
        next.log_text()
    );
    lost.finish().expect_err("its server was killed");
    intact(&root, (kept.name, kept.seed), kept.finish(), &next);
    assert_eq!(next.client().list().unwrap(), ["kept.bin"]);
    // Once the last worker is gone, the folder is free: the next start removes it.
    wait_until("the workers to exit", T, || {
        workers.iter().all(|&p| !alive(p))
    });
    assert!(next.stop().success());
    let mut last = serve(d.path(), "last", &["--mode", "thread", "--pool", "1"]);
    assert!(
        last.log_text().contains("and 1 temp folder(s)"),
        "{}",
        last.log_text()
    );
    assert!(last.stop().success());
    tmp_is_empty(&root);
}
