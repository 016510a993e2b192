//! Process mode (`serve --mode process`): pre-forked workers fed over
//! SCM_RIGHTS. Concurrency at pool sizes 1, 5 and 50, the worker count from
//! /proc, workers killed while idle, mid-download and mid-upload, descriptor
//! hygiene of the acceptor, SIGTERM drain, the acceptor killed, STATS shape.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::common::{
    self, alive, children, content, fd_table, holds_a_connection, poll, wait_until, Content, Gate,
    GatedReader, GatedSink, Server,
};
use fsbench::client::{Client, ClientError, Download};

/// Client timeout for the transfers a worker's death interrupts: well under
/// the server's idle timeout (60 s), so a hang would show as "timeout".
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);

/// A process-mode server with `pool` workers, once they are all up.
fn start(pool: usize) -> Server {
    let p = pool.to_string();
    let srv = Server::start(&["--mode", "process", "--pool", &p]);
    wait_for_workers(&srv, pool);
    srv
}

/// Waits (at most 5 s) until the server has exactly `n` worker processes.
fn wait_for_workers(srv: &Server, n: usize) {
    assert!(
        poll(Duration::from_secs(5), || workers(srv).len() == n).is_some(),
        "not {n} workers within 5 s: {:?}",
        workers(srv)
    );
}

fn workers(srv: &Server) -> Vec<u32> {
    let mut v = children(srv.pid());
    v.sort();
    v
}

fn kill9(pid: u32) {
    fsbench::sys::kill(pid, fsbench::sys::SIGKILL).expect("kill -9");
}

/// The worker that has a file matching `pred` open.
fn worker_holding(srv: &Server, pred: impl Fn(&Path) -> bool) -> Option<u32> {
    workers(srv)
        .into_iter()
        .find(|&pid| fd_table(pid).iter().any(|(_, t)| pred(t)))
}

fn stats(srv: &Server) -> serde_json::Value {
    srv.client().stats().expect("STATS")
}

/// A GET of `big.bin` stalled in the middle of the transfer: the client stopped
/// reading after its first bytes, and the worker serving it has the file open
/// and blocks on the full socket buffers until [`StalledGet::resume`].
struct StalledGet {
    /// The worker serving the GET.
    worker: u32,
    gate: Arc<Gate>,
    handle: JoinHandle<(Result<Download, ClientError>, Vec<u8>)>,
}

impl StalledGet {
    /// Writes `content` (larger than the socket buffers hold) to `big.bin`,
    /// starts its GET in a thread and waits until a worker holds the file.
    fn start(srv: &Server, content: &[u8]) -> StalledGet {
        std::fs::write(srv.root.join("big.bin"), content).unwrap();
        let gate = Gate::new(2);
        let mut sink = GatedSink::new(Vec::new(), gate.clone());
        let mut c = Client::connect(srv.addr, CLIENT_TIMEOUT).unwrap();
        let handle = std::thread::spawn(move || {
            let r = c.get("big.bin", &mut sink);
            (r, sink.inner)
        });
        // The download has started: its first bytes reached the sink.
        gate.wait();
        let big_path = canonical_root(srv).join("big.bin");
        let mut worker = None;
        wait_until("a worker holding big.bin", Duration::from_secs(5), || {
            worker = worker_holding(srv, |t| t == big_path);
            worker.is_some()
        });
        StalledGet {
            worker: worker.unwrap(),
            gate,
            handle,
        }
    }

    /// Lets the client read on; returns the GET's result and the bytes it got.
    fn resume(self) -> (Result<Download, ClientError>, Vec<u8>) {
        self.gate.wait();
        self.handle.join().unwrap()
    }
}

fn canonical_root(srv: &Server) -> PathBuf {
    srv.root.canonicalize().unwrap()
}

/// Waits (at most 5 s) until new connections are refused.
fn wait_for_the_listener_to_close(srv: &Server) {
    wait_until("new connections refused", Duration::from_secs(5), || {
        TcpStream::connect(srv.addr).is_err()
    });
}

fn no_worker_outlived(pids: &[u32]) {
    assert!(
        pids.iter().all(|&p| !alive(p)),
        "a worker outlived the server"
    );
}

/// Waits (at most 10 s) for the server to exit with status 0, then checks
/// that none of `pids`, its workers, is left.
fn exits_0_with_its_workers(srv: &mut Server, pids: &[u32]) {
    assert!(
        srv.wait(Duration::from_secs(10)).success(),
        "{}",
        srv.log_text()
    );
    no_worker_outlived(pids);
}

/// The worker pids STATS names, sorted.
fn stats_worker_pids(st: &serde_json::Value) -> Vec<u32> {
    let mut pids: Vec<u32> = st["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pid"].as_u64().unwrap() as u32)
        .collect();
    pids.sort();
    pids
}

/// 50 concurrent verified GETs, then 50 concurrent verified UPLOADs.
fn fifty_gets_and_fifty_uploads(pool: usize) {
    let mut srv = start(pool);
    let seeds: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| {
            (
                format!("seed-{i}.bin"),
                content(i as u64, (1 << 20) - i * 4099),
            )
        })
        .collect();
    for (name, data) in &seeds {
        std::fs::write(srv.root.join(name), data).unwrap();
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (name, data) = &seeds[i % seeds.len()];
                let srv = &srv;
                s.spawn(move || {
                    let mut got = Vec::new();
                    let d = srv.client().get(name, &mut got).expect("GET");
                    assert_eq!(d.bytes, data.len() as u64);
                    assert!(got == *data, "GET {name}: content differs");
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let srv = &srv;
                s.spawn(move || {
                    let data = content(100 + i as u64, 256 * 1024 + i * 1000);
                    let name = format!("up-{i}.bin");
                    let u = srv
                        .client()
                        .upload(Some(&name), &mut &data[..])
                        .expect("UPLOAD");
                    assert_eq!(u.name, name);
                    assert_eq!(
                        std::fs::read(srv.root.join(&name)).unwrap(),
                        data,
                        "{name} stored"
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    // A worker reports after its client has the answer: wait for the last reports.
    let mut st = stats(&srv);
    assert!(
        poll(Duration::from_secs(5), || {
            st = stats(&srv);
            st["tasks_ok"].as_u64() >= Some(100)
        })
        .is_some(),
        "{st}"
    );
    assert_eq!(st["tasks_failed"], 0, "{st}");
    assert_eq!(st["workers_restarted"], 0);
    let pids: Vec<u32> = workers(&srv);
    assert_eq!(pids.len(), pool, "still exactly {pool} workers");
    assert_eq!(srv.temp_files(), 0);
    assert!(srv.stop(Duration::from_secs(10)).success());
    no_worker_outlived(&pids);
}

#[test]
fn pool_of_1_serves_50_concurrent_gets_and_uploads() {
    fifty_gets_and_fifty_uploads(1);
}

#[test]
fn pool_of_5_serves_50_concurrent_gets_and_uploads() {
    fifty_gets_and_fifty_uploads(5);
}

#[test]
fn pool_of_50_serves_50_concurrent_gets_and_uploads() {
    fifty_gets_and_fifty_uploads(50);
}

#[test]
fn exactly_pool_size_worker_processes_exist_and_the_acceptor_has_one_thread() {
    let srv = start(4);
    // Serve a little, then look again: nothing extra was started.
    for _ in 0..20 {
        srv.client().list().unwrap();
    }
    let pids = workers(&srv);
    assert_eq!(pids.len(), 4, "{pids:?}");
    for &p in &pids {
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        let ppid: u32 = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(ppid, srv.pid());
        assert!(children(p).is_empty(), "workers fork nothing");
        // SIGINT and SIGTERM are the acceptor's: workers ignore them.
        let status = std::fs::read_to_string(format!("/proc/{p}/status")).unwrap();
        let ign = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        for sig in [fsbench::sys::SIGINT, fsbench::sys::SIGTERM] {
            assert!(
                ign & (1 << (sig - 1)) != 0,
                "worker {p} does not ignore signal {sig}"
            );
        }
    }
    let threads = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .count()
    };
    assert_eq!(
        threads(srv.pid()),
        1,
        "process mode starts no thread in the acceptor"
    );
    assert_eq!(
        stats_worker_pids(&stats(&srv)),
        pids,
        "STATS names the worker processes"
    );
}

#[test]
fn an_idle_worker_killed_is_replaced_within_a_second() {
    let srv = start(3);
    let before = workers(&srv);
    let victim = before[1];
    kill9(victim);
    assert!(
        poll(Duration::from_secs(1), || {
            let w = workers(&srv);
            w.len() == 3 && !w.contains(&victim)
        })
        .is_some(),
        "pool not back to 3 within 1 s: {:?}; log:\n{}",
        workers(&srv),
        srv.log_text()
    );
    std::fs::write(srv.root.join("a.txt"), b"after the restart").unwrap();
    for _ in 0..10 {
        let mut c = srv.client();
        let mut got = Vec::new();
        c.get("a.txt", &mut got).unwrap();
        assert_eq!(got, b"after the restart");
    }
    let st = stats(&srv);
    assert_eq!(st["workers_restarted"], 1, "{st}");
    assert!(!stats_worker_pids(&st).contains(&victim), "{st}");
}

#[test]
fn a_worker_killed_mid_download_fails_that_client_promptly_and_no_other() {
    let srv = start(2);
    // Larger than what the socket buffers hold when the client stops reading early.
    std::fs::write(srv.root.join("small.txt"), b"small").unwrap();
    let big = content(7, 12 << 20);
    let get = StalledGet::start(&srv, &big);
    let victim = get.worker;
    // The other worker serves meanwhile.
    for _ in 0..5 {
        let mut got = Vec::new();
        srv.client().get("small.txt", &mut got).unwrap();
        assert_eq!(got, b"small");
    }
    kill9(victim);
    let (r, got) = get.resume();
    let err = r.expect_err("a download cut by its worker's death must fail");
    assert_ne!(err.cause(), "timeout", "the client hung: {err}");
    assert!(got.len() < big.len());
    // Others succeed, on the replacement too.
    wait_until("the pool back to 2 workers", Duration::from_secs(2), || {
        workers(&srv).len() == 2
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let mut got = Vec::new();
                srv.client().get("small.txt", &mut got).unwrap();
                assert_eq!(got, b"small");
            });
        }
    });
    let st = stats(&srv);
    assert!(st["tasks_failed"].as_u64().unwrap() >= 1, "{st}");
    assert_eq!(st["workers_restarted"], 1, "{st}");
}

#[test]
fn a_worker_killed_mid_upload_leaves_no_partial_file_and_no_temp_file() {
    let srv = start(2);
    let gate = Gate::new(2);
    // Stops past the server's 1 MiB write buffer, so part is on disk.
    let mut src = GatedReader::new(Content::new(9, 3 << 20), 2 << 20, gate.clone());
    let mut c = Client::connect(srv.addr, CLIENT_TIMEOUT).unwrap();
    let h = std::thread::spawn(move || c.upload(Some("partial.bin"), &mut src));
    // The upload has started and stopped at the gate.
    gate.wait();
    let tmp = canonical_root(&srv).join(".tmp");
    // The worker holding a temp file that has received part of the body
    // (every worker also holds the server's temp folder, locked).
    let mut victim = None;
    wait_until(
        "a worker writing the upload",
        Duration::from_secs(5),
        || {
            victim = worker_holding(&srv, |t| {
                t.starts_with(&tmp)
                    && std::fs::metadata(t).is_ok_and(|m| m.is_file() && m.len() > 0)
            });
            victim.is_some()
        },
    );
    assert_eq!(srv.temp_files(), 1);
    kill9(victim.unwrap());
    gate.wait();
    let err = h.join().unwrap().expect_err("the upload must fail");
    assert_ne!(err.cause(), "timeout", "the client hung: {err}");
    assert!(
        poll(Duration::from_secs(2), || srv.temp_files() == 0).is_some(),
        "temp file left behind; log:\n{}",
        srv.log_text()
    );
    assert!(!srv.root.join("partial.bin").exists());
    assert!(!srv
        .client()
        .list()
        .unwrap()
        .contains(&"partial.bin".to_string()));
    // The server goes on: a whole upload works.
    let data = content(10, 300_000);
    srv.client()
        .upload(Some("whole.bin"), &mut &data[..])
        .unwrap();
    assert_eq!(std::fs::read(srv.root.join("whole.bin")).unwrap(), data);
}

#[test]
fn the_acceptor_holds_the_same_descriptors_after_1000_connections() {
    let srv = start(4);
    std::fs::write(srv.root.join("f.txt"), content(3, 10_000)).unwrap();
    // One round first, so that anything allocated once is in the baseline,
    // which is taken once that connection is closed everywhere.
    srv.client().list().unwrap();
    let pids = workers(&srv);
    for &p in pids.iter().chain([srv.pid()].iter()) {
        wait_until(
            format!("process {p} to close the LIST's connection"),
            Duration::from_secs(5),
            || !holds_a_connection(p),
        );
    }
    let settle = |pid: u32, want: &Vec<(String, PathBuf)>| {
        poll(Duration::from_secs(5), || fd_table(pid) == *want).is_some()
    };
    let acceptor_before = fd_table(srv.pid());
    let workers_before: Vec<_> = pids.iter().map(|&p| fd_table(p)).collect();
    std::thread::scope(|s| {
        for t in 0..4 {
            let srv = &srv;
            s.spawn(move || {
                for i in 0..250 {
                    match (t + i) % 4 {
                        // Connect and leave without a word.
                        0 => drop(TcpStream::connect(srv.addr).unwrap()),
                        1 => {
                            srv.client().list().unwrap();
                        }
                        2 => {
                            let mut sink = io::sink();
                            srv.client().get("f.txt", &mut sink).unwrap();
                        }
                        _ => {
                            // Half a request line, then gone.
                            let mut c = TcpStream::connect(srv.addr).unwrap();
                            c.write_all(b"LI").unwrap();
                        }
                    }
                }
            });
        }
    });
    assert!(
        settle(srv.pid(), &acceptor_before),
        "acceptor descriptors differ: before {acceptor_before:?}, after {:?}",
        fd_table(srv.pid())
    );
    assert_eq!(workers(&srv), pids, "no worker was replaced");
    for (p, before) in pids.iter().zip(&workers_before) {
        assert!(settle(*p, before), "worker {p} descriptors differ");
    }
    assert!(stats(&srv)["connections_accepted"].as_u64().unwrap() >= 1000);
}

#[test]
fn sigterm_lets_a_transfer_in_flight_finish_and_leaves_no_process() {
    let mut srv = start(2);
    let pids = workers(&srv);
    let big = content(11, 12 << 20);
    let get = StalledGet::start(&srv, &big);
    srv.signal(fsbench::sys::SIGTERM);
    // The listener closes at once: new connections are refused.
    wait_for_the_listener_to_close(&srv);
    assert!(alive(srv.pid()), "the acceptor waits for the transfer");
    let (r, got) = get.resume();
    let d = r.expect("the transfer in flight completes");
    assert_eq!(d.bytes, big.len() as u64);
    assert!(got == big, "content differs");
    exits_0_with_its_workers(&mut srv, &pids);
    TcpListener::bind(srv.addr).expect("the port is free");
}

#[test]
fn workers_exit_by_themselves_when_the_acceptor_is_killed() {
    let mut srv = start(3);
    let pids = workers(&srv);
    let big = content(12, 12 << 20);
    let get = StalledGet::start(&srv, &big);
    let busy = get.worker;
    kill9(srv.pid());
    srv.wait(Duration::from_secs(5));
    let idle: Vec<u32> = pids.iter().copied().filter(|&p| p != busy).collect();
    wait_until("the idle workers to exit", Duration::from_secs(5), || {
        idle.iter().all(|&p| !alive(p))
    });
    assert!(alive(busy), "the busy worker finishes its connection first");
    let (r, got) = get.resume();
    r.expect("the connection at hand is finished");
    assert!(got == big);
    wait_until("the busy worker to exit", Duration::from_secs(5), || {
        !alive(busy)
    });
    TcpListener::bind(srv.addr).expect("the port is free");
}

#[test]
fn stats_has_the_same_shape_as_in_thread_mode() {
    let thread = Server::start(&["--mode", "thread", "--pool", "2"]);
    let process = start(2);
    for srv in [&thread, &process] {
        srv.client().list().unwrap();
    }
    let (t, p) = (stats(&thread), stats(&process));
    fn keys(v: &serde_json::Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    }
    assert_eq!(keys(&t), keys(&p));
    assert_eq!(keys(&t["workers"][0]), keys(&p["workers"][0]));
    assert_eq!(
        (t["mode"].as_str(), p["mode"].as_str()),
        (Some("thread"), Some("process"))
    );
    assert_eq!(p["pool"], 2);
    assert_eq!(p["workers"].as_array().unwrap().len(), 2);
    for (i, w) in p["workers"].as_array().unwrap().iter().enumerate() {
        assert_eq!(w["id"], i as u64);
        assert_ne!(
            w["pid"].as_u64().unwrap(),
            process.pid() as u64,
            "a worker's own pid"
        );
    }
    // The LIST before is counted, by the acceptor, from the worker's report
    // (which may arrive just after the STATS snapshot was taken).
    wait_until("the LIST counted", Duration::from_secs(5), || {
        let p = stats(&process);
        p["tasks_ok"].as_u64() >= Some(1) && p["requests"].as_u64() >= Some(1)
    });
}

#[test]
fn ctrl_c_to_the_whole_process_group_is_handled_by_the_acceptor_alone() {
    use std::os::unix::process::CommandExt;
    let dir = common::TempDir::new("pgrp");
    let mut srv = Server::start_with(dir, &["--mode", "process", "--pool", "2"], |cmd| {
        cmd.process_group(0);
    });
    wait_for_workers(&srv, 2);
    let pids = workers(&srv);
    let big = content(13, 12 << 20);
    let get = StalledGet::start(&srv, &big);
    // What a terminal's Ctrl-C does: SIGINT to every process of the group.
    // SAFETY: killpg(2) on the server's own process group.
    assert_eq!(unsafe { libc::killpg(srv.pid() as i32, libc::SIGINT) }, 0);
    wait_for_the_listener_to_close(&srv);
    assert!(pids.iter().all(|&p| alive(p)), "workers ignore the signal");
    let (r, got) = get.resume();
    r.expect("the transfer in flight completes");
    assert!(got == big, "content intact");
    exits_0_with_its_workers(&mut srv, &pids);
}

#[test]
fn past_the_drain_timeout_a_stuck_worker_is_killed_and_nothing_is_left() {
    let mut srv = Server::start(&["--mode", "process", "--pool", "2", "--drain-timeout", "0.5"]);
    wait_for_workers(&srv, 2);
    let pids = workers(&srv);
    let get = StalledGet::start(&srv, &content(14, 12 << 20));
    // The client never reads again before the server is gone.
    srv.signal(fsbench::sys::SIGTERM);
    exits_0_with_its_workers(&mut srv, &pids);
    assert!(srv.log_text().contains("killing it"), "{}", srv.log_text());
    let (r, _) = get.resume();
    assert!(r.is_err(), "the cut transfer is reported as failed");
}

#[test]
fn out_of_descriptors_the_acceptor_keeps_its_workers_and_answers_everyone() {
    use std::os::unix::process::CommandExt;
    // A descriptor limit far below --max-connections (4096 by default).
    let srv = Server::start_with(
        common::TempDir::new("nofile"),
        &["--mode", "process", "--pool", "2"],
        |cmd| {
            // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
            unsafe {
                cmd.pre_exec(|| {
                    let lim = libc::rlimit {
                        rlim_cur: 64,
                        rlim_max: 64,
                    };
                    match libc::setrlimit(libc::RLIMIT_NOFILE, &lim) {
                        0 => Ok(()),
                        _ => Err(io::Error::last_os_error()),
                    }
                });
            }
        },
    );
    let conns: Vec<TcpStream> = (0..150)
        .map(|_| {
            let mut s = TcpStream::connect(srv.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(b"LIST\n").unwrap();
            s
        })
        .collect();
    // Each client reads its answer, then closes (which frees the server's descriptor).
    for (i, mut s) in conns.into_iter().enumerate() {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"\r\n\r\n") {
            let n = s
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("connection {i} unanswered: {e}; log:\n{}", tail(&srv)));
            assert!(
                n > 0,
                "connection {i} closed unanswered; log:\n{}",
                tail(&srv)
            );
            got.extend_from_slice(&buf[..n]);
        }
        assert!(got.starts_with(b"{\"status\": \"OK\""), "connection {i}");
    }
    assert_eq!(stats(&srv)["workers_restarted"], 0, "log:\n{}", tail(&srv));
}

/// The last lines of the server's log.
fn tail(srv: &Server) -> String {
    let log = srv.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[test]
fn a_pool_of_50_idle_workers_has_a_pss_sum_below_its_vmhwm_sum() {
    use fsbench::launch::measure;
    let mut srv = start(50);
    let tree = measure::tree(srv.pid());
    assert_eq!(tree.len(), 51, "the acceptor and its workers: {tree:?}");
    // Pages shared after fork (the binary, the libraries, the acceptor's
    // memory before it forked) count once per process in VmHWM, 1/51 in PSS.
    let pss = measure::tree_pss_kib(srv.pid());
    let hwm = measure::tree_peak_rss_kib(srv.pid());
    assert!(
        pss > 0 && pss < hwm,
        "PSS sum {pss} KiB, VmHWM sum {hwm} KiB"
    );
    srv.signal(fsbench::sys::SIGTERM);
    exits_0_with_its_workers(&mut srv, &tree);
}
