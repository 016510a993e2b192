//! The load generator: the client pool against real servers and a lying test
//! double, the quick sweep, and a sweep interrupted half-way.
//!
//! Tests that need a process-mode server loop over both server modes; while
//! the process pool is not built in, they check that `serve --mode process`
//! refuses to start (exit 2) and say loudly that the process half was not run.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{alive, content, wait_exit, wait_until, Server, TempDir, BIN};
use fsbench::load::content::{self, upload_seed};
use fsbench::load::pool::{self, PoolOpts, PoolReport};
use fsbench::load::summary::Summary;
use fsbench::load::{Op, Volume};
use fsbench::protocol::{base64, detect_extension};
use fsbench::results::CSV_HEADER;
use fsbench::server::Mode;

/// The server modes this build can run: process mode when `serve --mode
/// process` starts (it exits 2 while the process pool is not built in).
/// Says loudly when it is missing.
fn server_modes(test: &str) -> Vec<Mode> {
    let dir = TempDir::new("probe");
    let mut child = Command::new(BIN)
        .args([
            "serve", "--port", "0", "--mode", "process", "--pool", "1", "--root",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if line.starts_with("LISTENING ") {
        fsbench::sys::kill(child.id(), fsbench::sys::SIGTERM).unwrap();
        assert!(child.wait().unwrap().success());
        return vec![Mode::Thread, Mode::Process];
    }
    let st = child.wait().unwrap();
    assert_eq!(
        st.code(),
        Some(2),
        "serve --mode process neither started nor refused: {st}"
    );
    // Straight to stderr, past the test harness's capture: this must be seen.
    let _ = writeln!(
        std::io::stderr(),
        "NOTE {test}: the server's process mode is not in this build \
         (serve --mode process exits 2): ran against thread-mode servers only"
    );
    vec![Mode::Thread]
}

fn opts(mode: Mode, op: Op, volume: Volume, clients: usize, addr: impl ToString) -> PoolOpts {
    let mut o = PoolOpts::new(mode, op, volume, clients, addr.to_string());
    o.exe = PathBuf::from(BIN);
    o.timeout = Duration::from_secs(60);
    o
}

fn failures_of(r: &PoolReport) -> Vec<(String, usize)> {
    Summary::of(r)
        .failures
        .into_iter()
        .map(|(c, (n, _))| (c, n))
        .collect()
}

/// The name the server gives an upload of client `i` (its SHA-256 name).
fn upload_name(seed: u64, i: usize, bytes: u64) -> String {
    let mut head = [0u8; 8];
    content::fill(upload_seed(seed, i), 0, &mut head);
    format!(
        "{}{}",
        content::sha256_of(upload_seed(seed, i), bytes),
        detect_extension(&head)
    )
}

#[test]
fn the_pool_in_both_modes_does_every_operation_against_every_server_mode() {
    let volume = Volume::kb(200); // more than one upload line
    for server_mode in server_modes("pool x server modes") {
        let mut srv = Server::start(&["--mode", server_mode.name(), "--pool", "2"]);
        let sums = TempDir::new("sums");
        let tf = content::ensure_test_files(&srv.root, sums.path(), &[volume]).unwrap();
        let mut seed = 10;
        for pool_mode in [Mode::Thread, Mode::Process] {
            for op in Op::ALL {
                let what = format!(
                    "{} pool, {} server, {op}",
                    pool_mode.name(),
                    server_mode.name()
                );
                let before = srv.client().list().unwrap();
                let mut o = opts(pool_mode, op, volume, 3, srv.addr);
                seed += 1;
                o.seed = seed;
                let r = pool::run(&o).unwrap();
                assert!(r.all_ok(), "{what}: {:?}", r.results);
                assert_eq!((r.success(), r.fail(), r.connected()), (3, 0, 3), "{what}");
                let s = Summary::of(&r);
                let after = srv.client().list().unwrap();
                match op {
                    Op::Download => {
                        assert_eq!(s.bytes_verified, 3 * volume.bytes, "{what}");
                        assert_eq!(after, before, "{what}: a download changed the store");
                    }
                    Op::Upload => {
                        assert_eq!(s.bytes_verified, 3 * volume.bytes, "{what}");
                        let mut want = before.clone();
                        want.extend((0..3).map(|i| upload_name(seed, i, volume.bytes)));
                        want.sort();
                        assert_eq!(
                            after, want,
                            "{what}: three distinct uploads under their SHA-256 names"
                        );
                        for i in 0..3 {
                            let name = upload_name(seed, i, volume.bytes);
                            let data = std::fs::read(srv.root.join(&name)).unwrap();
                            let expected = content(upload_seed(seed, i), volume.bytes as usize);
                            assert!(data == expected, "{what}: stored bytes of {name}");
                        }
                    }
                    Op::List => {
                        // Each client's bytes are the LIST response it read.
                        let listed: u64 = r.results.iter().map(|c| c.bytes).sum();
                        assert_eq!(s.bytes_verified, listed);
                        assert!(
                            r.results.iter().all(|c| c.bytes > tf[0].name.len() as u64),
                            "{what}"
                        );
                    }
                }
                assert!(
                    s.avg_time_s > 0.0 && s.max_s >= s.p50_s && s.wall_s >= s.max_s,
                    "{what}: {s:?}"
                );
                if pool_mode == Mode::Process {
                    assert!(
                        r.results.iter().all(|c| c.peak_rss_kib > 0),
                        "{what}: children report their memory"
                    );
                }
                // Each client measured its own CPU (its thread's or its
                // process's); the pool's is theirs plus its coordinator's.
                assert!(
                    r.results.iter().all(|c| c.cpu_s > 0.0),
                    "{what}: {:?}",
                    r.results
                );
                let clients_cpu: f64 = r.results.iter().map(|c| c.cpu_s).sum();
                assert!(
                    r.cpu_s >= clients_cpu,
                    "{what}: {} < {clients_cpu}",
                    r.cpu_s
                );
                assert!(
                    r.pss.peak_kib > 0 && r.pss.samples >= 2,
                    "{what}: {:?}",
                    r.pss
                );
            }
        }
        let stats = srv.client().stats().unwrap();
        assert_eq!(stats["mode"], server_mode.name());
        assert_eq!(stats["tasks_failed"], 0);
        assert!(srv.stop(Duration::from_secs(20)).success());
    }
}

/// A fake server: answers each GET with `content` (base64), for `conns` connections.
fn lying_server(
    content: Vec<u8>,
    conns: usize,
) -> (std::net::SocketAddr, std::thread::JoinHandle<usize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        let mut served = 0;
        for _ in 0..conns {
            let (s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let name = line.trim().strip_prefix("GET ").unwrap().to_string();
            let mut w = s;
            write!(
                w,
                "{{\"status\": \"OK\", \"data_namafile\": \"{name}\", \"data_file\": \"{}\"}}\r\n\r\n",
                base64::encode(&content)
            )
            .unwrap();
            served += 1;
            // Wait for the client to hang up.
            let _ = r.read_to_end(&mut Vec::new());
        }
        served
    });
    (addr, h)
}

#[test]
fn altered_bytes_count_as_verification_failures_in_both_pool_modes() {
    let volume = Volume::kb(10);
    let good = content(content::test_file_seed(volume), volume.bytes as usize);
    for mode in [Mode::Thread, Mode::Process] {
        // Control: the double serving the right bytes is a success, so the
        // failure below comes from the altered byte, not from the double.
        let (addr, h) = lying_server(good.clone(), 2);
        let r = pool::run(&opts(mode, Op::Download, volume, 2, addr)).unwrap();
        assert!(r.all_ok(), "{}: {:?}", mode.name(), r.results);
        assert_eq!(h.join().unwrap(), 2);

        let mut bad = good.clone();
        bad[4321] ^= 0x01;
        let (addr, h) = lying_server(bad, 3);
        let r = pool::run(&opts(mode, Op::Download, volume, 3, addr)).unwrap();
        assert_eq!(h.join().unwrap(), 3);
        assert!(!r.all_ok());
        assert_eq!((r.success(), r.fail()), (0, 3), "{}", mode.name());
        assert_eq!(
            failures_of(&r),
            vec![("verification mismatch".to_string(), 3)]
        );
        assert_eq!(Summary::of(&r).bytes_verified, 0);
        for c in &r.results {
            let m = c.message.as_deref().unwrap_or_default();
            assert!(m.contains("from byte 4321"), "{}: {m}", mode.name());
        }
    }
}

#[test]
fn a_byte_flipped_in_the_servers_test_file_is_a_mismatch_at_its_offset_in_both_pool_modes() {
    let volume = Volume::kb(300); // several reads and decoder pieces
    let srv = Server::start(&["--pool", "2"]);
    let sums = TempDir::new("sums");
    let tf = content::ensure_test_files(&srv.root, sums.path(), &[volume]).unwrap();
    let path = srv.root.join(&tf[0].name);
    for mode in [Mode::Thread, Mode::Process] {
        // Intact, the file passes: the failures below are the flipped byte's.
        let r = pool::run(&opts(mode, Op::Download, volume, 2, srv.addr)).unwrap();
        assert!(r.all_ok(), "{}: {:?}", mode.name(), r.results);
    }
    let mut data = std::fs::read(&path).unwrap();
    let at = 200_003;
    data[at] ^= 0x20;
    std::fs::write(&path, &data).unwrap();
    for mode in [Mode::Thread, Mode::Process] {
        let r = pool::run(&opts(mode, Op::Download, volume, 2, srv.addr)).unwrap();
        assert_eq!((r.success(), r.fail()), (0, 2), "{}", mode.name());
        assert_eq!(
            failures_of(&r),
            vec![("verification mismatch".to_string(), 2)]
        );
        for c in &r.results {
            let m = c.message.as_deref().unwrap_or_default();
            assert!(
                m.contains(&tf[0].name) && m.contains(&format!("from byte {at} on")),
                "{}: {m}",
                mode.name()
            );
        }
    }
}

fn pool_cmd(port: u16, args: &[&str]) -> (Option<i32>, serde_json::Value) {
    let out = Command::new(BIN)
        .args([
            "pool",
            "--json",
            "--port",
            &port.to_string(),
            "--timeout",
            "30",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

#[test]
fn the_pool_command_prints_json_stays_in_its_memory_budget_and_exits_by_result() {
    let mut srv = Server::start(&["--pool", "4"]);
    let sums = TempDir::new("sums");
    content::ensure_test_files(&srv.root, sums.path(), &[Volume::mb(2)]).unwrap();
    for mode in ["thread", "process"] {
        for op in ["download", "upload"] {
            let (code, v) = pool_cmd(
                srv.port(),
                &[
                    "--mode",
                    mode,
                    "--operation",
                    op,
                    "--volume",
                    "2",
                    "--clients",
                    "4",
                ],
            );
            assert_eq!(code, Some(0), "{mode} {op}: {v}");
            assert_eq!(v["success"], 4);
            assert_eq!(v["bytes_verified"], 4 * 2 * 1048576);
            assert_eq!(v["tcp_congestion"], "reno (auto, over loopback)");
            let peak = v["peak_rss_kib"].as_u64().unwrap();
            let budget = v["memory_budget_kib"].as_u64().unwrap();
            assert_eq!(budget, (64 + 8 * 4) * 1024);
            assert!(
                peak > 0 && peak < budget,
                "{mode} {op}: peak {peak} KiB, budget {budget} KiB"
            );
            // PSS never exceeds RSS, and RSS never exceeds VmHWM since the
            // pool reset it: the PSS peak stays under the VmHWM sum.
            let pss = v["peak_pss_kib"].as_u64().unwrap();
            assert!(
                pss > 0 && pss <= peak,
                "{mode} {op}: PSS {pss} KiB, VmHWM {peak} KiB"
            );
            assert!(v["cpu_s"].as_f64().unwrap() > 0.0, "{mode} {op}: {v}");
        }
    }
    // A port nobody listens on: every client fails to connect, exit 1.
    let port = srv.port();
    assert!(srv.stop(Duration::from_secs(20)).success());
    for mode in ["thread", "process"] {
        let (code, v) = pool_cmd(
            port,
            &["--mode", mode, "--operation", "list", "--clients", "3"],
        );
        assert_eq!(code, Some(1), "{v}");
        assert_eq!(v["fail"], 3);
        assert_eq!(v["failures"]["connect refused"]["count"], 3, "{v}");
    }
    // Usage errors exit 2.
    let st = Command::new(BIN)
        .args(["pool", "--operation", "put"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(2));
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r.records().collect::<Result<Vec<_>, _>>().unwrap();
    (header, rows)
}

/// Runs a sweep command with its work and results in `dir`; it must exit 0.
/// Returns its progress text, its CSV and the CSV's header (the sweep's) and rows.
fn sweep_in(
    dir: &TempDir,
    mut cmd: Command,
) -> (String, PathBuf, Vec<String>, Vec<csv::StringRecord>) {
    let out = cmd
        .arg("--work")
        .arg(dir.path().join("work"))
        .arg("--results")
        .arg(dir.path().join("results"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{progress}");
    let csv = only_csv_in(&dir.path().join("results"));
    let (header, rows) = csv_rows(&csv);
    assert_eq!(header, CSV_HEADER);
    (progress, csv, header, rows)
}

pub fn only_csv_in(dir: &Path) -> PathBuf {
    let csvs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    assert_eq!(csvs.len(), 1, "{csvs:?}");
    csvs[0].clone()
}

fn store_names(store: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n != ".tmp")
        .collect();
    v.sort();
    v
}

#[test]
fn the_quick_sweep_gives_162_rows_without_failures() {
    let modes = server_modes("quick sweep");
    let modes_arg: Vec<&str> = modes.iter().map(|m| m.name()).collect();
    let dir = TempDir::new("quick");
    let mark = format!("quick-{}", std::process::id());
    // The same command as `make stress-quick`, in a folder of its own.
    let mut cmd = Command::new(BIN);
    cmd.args(["sweep", "--quick", "--modes", &modes_arg.join(" ")])
        .env("FSBENCH_TEST_MARK", &mark);
    let (progress, csv, _, rows) = sweep_in(&dir, cmd);
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap().lines().next().unwrap(),
        "timestamp,mode,server_pool,operation,volume,client_pool,avg_time_s,throughput_Bps,success,fail,server_success,server_fail,p50_s,p90_s,p99_s,max_s,wall_s,aggregate_Bps,bytes_verified,errors,server_cpu_s,client_cpu_s,server_mem_mib,client_mem_mib,server"
    );
    assert_eq!(rows.len(), 81 * modes.len());
    if modes.len() == 2 {
        assert_eq!(rows.len(), 162);
    }
    let col = |r: &csv::StringRecord, name: &str| {
        r[CSV_HEADER.iter().position(|h| *h == name).unwrap()].to_string()
    };
    let num = |r: &csv::StringRecord, name: &str| col(r, name).parse::<u64>().unwrap();
    for r in &rows {
        let clients = num(r, "client_pool");
        assert!([1, 2, 5].contains(&clients));
        assert_eq!(num(r, "fail"), 0, "{r:?}");
        assert_eq!(num(r, "server_fail"), 0, "{r:?}");
        assert_eq!(num(r, "success"), clients, "{r:?}");
        assert_eq!(num(r, "server_success"), clients, "{r:?}");
        assert_eq!(col(r, "errors"), "");
        let vol: Volume = col(r, "volume").parse().unwrap();
        if col(r, "operation") != "list" {
            assert_eq!(num(r, "bytes_verified"), clients * vol.bytes, "{r:?}");
        }
        for f in ["avg_time_s", "p50_s", "p90_s", "p99_s", "max_s", "wall_s"] {
            assert!(col(r, f).parse::<f64>().unwrap() > 0.0, "{f} in {r:?}");
        }
        // Scenarios this short may use less CPU than a clock tick; both
        // sides always have memory.
        for f in ["server_cpu_s", "client_cpu_s"] {
            assert!(col(r, f).parse::<f64>().unwrap() >= 0.0, "{f} in {r:?}");
        }
        for f in ["server_mem_mib", "client_mem_mib"] {
            assert!(col(r, f).parse::<f64>().unwrap() > 0.0, "{f} in {r:?}");
        }
    }
    // One progress line per scenario, then the table and the CSV's path.
    assert_eq!(
        progress.lines().filter(|l| l.starts_with('[')).count(),
        rows.len()
    );
    assert!(progress.contains(&csv.display().to_string()));
    // The metadata beside it.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(csv.with_extension("json")).unwrap()).unwrap();
    assert_eq!(meta["fsync"], true);
    assert_eq!(meta["scenarios_done"], rows.len());
    assert_eq!(meta["all_ok"], true);
    assert_eq!(
        meta["matrix"]["volumes"],
        serde_json::json!(["10KB", "50KB", "100KB"])
    );
    assert_eq!(meta["matrix"]["client_pools"], serde_json::json!([1, 2, 5]));
    assert!(meta["rustc"].as_str().unwrap().starts_with("rustc "));
    assert!(meta["machine"]["cores"].as_u64().unwrap() >= 1);
    // Our servers and the clients, on loopback: reno, by default.
    let cc = &meta["tcp_congestion"];
    assert_eq!(cc["setting"], "auto", "{meta}");
    assert_eq!(cc["servers"], "reno (auto, over loopback)", "{meta}");
    assert_eq!(cc["clients"], "reno (auto, over loopback)", "{meta}");
    assert_eq!(
        cc["system_default"],
        fsbench::tcp::system_default().as_str()
    );
    assert!(
        progress.contains(
            "TCP congestion control: servers reno (auto, over loopback); \
             clients reno (auto, over loopback)\n"
        ),
        "{progress}"
    );
    let page = std::fs::read_to_string(csv.with_extension("html")).unwrap();
    assert!(
        page.contains(&format!(
            "servers: reno (auto, over loopback); clients: reno (auto, over loopback) \
             (--tcp-congestion auto; this machine&#39;s default: {})",
            fsbench::tcp::system_default()
        )),
        "the report names the congestion control"
    );
    assert!(
        meta["server_command"]
            .as_str()
            .unwrap()
            .contains(" --tcp-congestion auto "),
        "{meta}"
    );
    let in_git = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|st| st.success());
    assert_eq!(meta["git"]["commit"].is_string(), in_git, "{meta}");
    assert_eq!(meta["git"]["dirty"].is_boolean(), in_git, "{meta}");
    assert!(meta["end"].is_string());
    // Uploads were removed: the store holds the test files only.
    assert_eq!(
        store_names(&dir.path().join("work/store")),
        ["file_100KB.bin", "file_10KB.bin", "file_50KB.bin"]
    );
    assert_eq!(alive_with_mark(&mark), Vec::<String>::new());
}

#[test]
fn every_transfer_row_measures_cpu_and_memory_on_both_sides() {
    let modes = server_modes("measuring sweep");
    let modes_arg: Vec<&str> = modes.iter().map(|m| m.name()).collect();
    let dir = TempDir::new("measured");
    // 3 x 64 MB each way: enough work that the server's CPU shows at the
    // resolution of /proc/PID/stat (a clock tick, 10 ms).
    let mut cmd = Command::new(BIN);
    cmd.args(["sweep", "--modes", &modes_arg.join(" ")])
        .args(["--ops", "download upload", "--volumes", "64"])
        .args(["--clients", "3", "--servers", "3", "--no-fsync"]);
    let (progress, csv, header, rows) = sweep_in(&dir, cmd);
    assert_eq!(
        &header[20..],
        [
            "server_cpu_s",
            "client_cpu_s",
            "server_mem_mib",
            "client_mem_mib",
            "server"
        ]
    );
    assert_eq!(rows.len(), 2 * modes.len());
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(csv.with_extension("json")).unwrap()).unwrap();
    let vmhwm = meta["vmhwm_kib"].as_array().unwrap();
    assert_eq!(vmhwm.len(), rows.len(), "{meta}");
    // One core's speed measured before the first scenario and after the
    // last, in the metadata and in the sweep's last lines.
    let cal = meta["calibration"].as_array().unwrap();
    let when: Vec<&str> = cal.iter().map(|c| c["when"].as_str().unwrap()).collect();
    assert_eq!(when, ["start", "end"], "{meta}");
    for c in cal {
        assert!(c["sha256_gb_per_cpu_s"].as_f64().unwrap() > 0.0, "{c}");
        assert!(c["cpu_s"].as_f64().unwrap() > 0.0, "{c}");
    }
    assert!(
        progress.contains("one core's SHA-256 now, GB per CPU-second: ")
            && progress.contains(" at the start, ")
            && progress.contains(" at the end"),
        "{progress}"
    );
    let col = |r: &csv::StringRecord, name: &str| -> f64 {
        r[CSV_HEADER.iter().position(|h| *h == name).unwrap()]
            .parse()
            .unwrap()
    };
    for (i, r) in rows.iter().enumerate() {
        for f in [
            "server_cpu_s",
            "client_cpu_s",
            "server_mem_mib",
            "client_mem_mib",
        ] {
            assert!(col(r, f) > 0.0, "{f} in {r:?}");
        }
        // A PSS sum never exceeds the VmHWM sum of the same processes (the
        // CSV rounds MiB to 3 decimals: 1 KiB of slack).
        let h = &vmhwm[i];
        assert_eq!(h["scenario"], i + 1);
        for (side, key) in [("server_mem_mib", "server"), ("client_mem_mib", "pool")] {
            let kib = col(r, side) * 1024.0;
            assert!(
                kib <= h[key].as_f64().unwrap() + 1.0,
                "{side} {kib} KiB over VmHWM {h} in {r:?}"
            );
        }
        for side in ["server", "pool"] {
            let sampler = &meta["pss_sampler"][i][side];
            assert!(sampler["samples"].as_u64().unwrap() >= 2, "{sampler}");
        }
    }
    let lines: Vec<&str> = progress.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), rows.len());
    assert!(
        lines
            .iter()
            .all(|l| l.contains("cpu srv ") && l.contains(" PSS MB srv ")),
        "{progress}"
    );
    // The CPU table after the sweep's table.
    assert!(progress.contains("GB = 10^9 bytes"), "{progress}");
    for op in ["download", "upload"] {
        for m in &modes_arg {
            assert!(
                progress
                    .lines()
                    .any(|l| l.split_whitespace().take(2).eq([*m, op]) && l.contains('%')),
                "no CPU-s/GB line for {m} {op}:\n{progress}"
            );
        }
    }
}

/// Processes still running (not zombies) whose environment holds `FSBENCH_TEST_MARK=mark`.
fn alive_with_mark(mark: &str) -> Vec<String> {
    let needle = format!("FSBENCH_TEST_MARK={mark}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if !env.split(|&b| b == 0).any(|v| v == needle.as_bytes()) {
            continue;
        }
        if alive(pid) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            out.push(format!(
                "{pid} {}",
                String::from_utf8_lossy(&cmd).replace('\0', " ")
            ));
        }
    }
    out
}

/// The Python guest server (`tests/guest/file_server.py`) as a sweep's
/// `--server-cmd` template, with extra flags of its own.
fn guest_template(flags: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/guest/file_server.py");
    format!("python3 {script} --mode {{mode}} --workers {{pool}} --port {{port}} --host {{host}} --root {{root}} {flags}")
}

fn interrupt_half_way(sig: i32, server_cmd: Option<String>) {
    let modes = server_modes("interrupted sweep");
    let modes_arg: Vec<&str> = modes.iter().map(|m| m.name()).collect();
    let dir = TempDir::new("interrupted");
    let results = dir.path().join("results");
    let who = if server_cmd.is_some() {
        "guest"
    } else {
        "ours"
    };
    let mark = format!("interrupted-{sig}-{who}-{}", std::process::id());
    // Bounded: 2000 short scenarios at most; it is stopped long before.
    let mut child = Command::new(BIN)
        .args([
            "sweep",
            "--ops",
            "download upload",
            "--volumes",
            "64KB",
            "--clients",
            "2",
            "--servers",
            "2",
        ])
        .args(["--modes", &modes_arg.join(" "), "--repeat", "1000"])
        .args(server_cmd.iter().flat_map(|t| ["--server-cmd", t.as_str()]))
        .arg("--work")
        .arg(dir.path().join("work"))
        .arg("--results")
        .arg(&results)
        .env("FSBENCH_TEST_MARK", &mark)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = BufReader::new(stderr).read_to_string(&mut s);
        s
    });
    // Poll the CSV until a few rows are in.
    wait_until("three rows in the CSV", Duration::from_secs(60), || {
        let lines = std::fs::read_dir(&results)
            .ok()
            .and_then(|d| {
                d.flatten()
                    .find(|e| e.path().extension().is_some_and(|x| x == "csv"))
            })
            .map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .count()
            })
            .unwrap_or(0);
        assert!(
            child.try_wait().unwrap().is_none(),
            "the sweep ended by itself"
        );
        lines >= 4
    });
    fsbench::sys::kill(child.id(), sig).unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("the sweep did not stop within 60 s of signal {sig}"));
    let progress = err_reader.join().unwrap();
    assert_eq!(status.code(), Some(128 + sig), "{progress}");
    assert!(progress.contains("interrupted by signal"), "{progress}");
    // A valid CSV of the finished rows: header, then complete rows only.
    let csv = only_csv_in(&results);
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.ends_with('\n'));
    let (header, rows) = csv_rows(&csv);
    assert_eq!(header, CSV_HEADER);
    assert!(
        rows.len() >= 3 && rows.len() < 2000 * modes.len(),
        "{} rows",
        rows.len()
    );
    for r in &rows {
        assert_eq!(r.len(), CSV_HEADER.len());
        assert_eq!(&r[8], "2", "success in {r:?}");
        assert_eq!(&r[9], "0", "fail in {r:?}");
        // Ours counts its tasks; the guest keeps no counts.
        let counted = if server_cmd.is_some() { "" } else { "0" };
        assert_eq!(&r[11], counted, "server_fail in {r:?}");
        for i in [6, 12, 13, 14, 15, 16] {
            r[i].parse::<f64>().unwrap();
        }
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(csv.with_extension("json")).unwrap()).unwrap();
    assert_eq!(meta["interrupted_by_signal"], sig);
    assert!(meta["scenarios_done"].as_u64().unwrap() >= rows.len() as u64 - 1);
    // No server, server worker or pool child is left, nor any upload.
    assert_eq!(alive_with_mark(&mark), Vec::<String>::new());
    assert_eq!(
        store_names(&dir.path().join("work/store")),
        ["file_64KB.bin"]
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("work/store/.tmp"))
            .map(|d| d.count())
            .unwrap_or(0),
        0
    );
}

#[test]
fn a_sweep_stopped_by_sigint_keeps_its_rows_and_leaves_no_process() {
    interrupt_half_way(fsbench::sys::SIGINT, None);
}

#[test]
fn a_sweep_of_another_server_stopped_by_sigint_leaves_none_of_its_processes() {
    interrupt_half_way(fsbench::sys::SIGINT, Some(guest_template("")));
}

#[test]
fn a_sweep_stopped_by_sigterm_keeps_its_rows_and_leaves_no_process() {
    interrupt_half_way(fsbench::sys::SIGTERM, None);
}

/// Runs `fsbench sweep` with `args` in `dir` (its own work and results),
/// marked so that no process it started can hide; returns its exit code,
/// progress text, CSV rows (by column name) and metadata.
fn sweep_marked(
    dir: &TempDir,
    mark: &str,
    args: &[&str],
) -> (
    Option<i32>,
    String,
    Vec<HashMap<String, String>>,
    serde_json::Value,
) {
    let out = Command::new(BIN)
        .arg("sweep")
        .args(args)
        .arg("--work")
        .arg(dir.path().join("work"))
        .arg("--results")
        .arg(dir.path().join("results"))
        .env("FSBENCH_TEST_MARK", mark)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    let csv = only_csv_in(&dir.path().join("results"));
    let (header, rows) = csv_rows(&csv);
    assert_eq!(header, CSV_HEADER, "{progress}");
    let rows = rows
        .iter()
        .map(|r| {
            header
                .iter()
                .cloned()
                .zip(r.iter().map(String::from))
                .collect()
        })
        .collect();
    let meta = serde_json::from_slice(&std::fs::read(csv.with_extension("json")).unwrap()).unwrap();
    (out.status.code(), progress, rows, meta)
}

#[test]
fn a_template_server_is_swept_like_ours_with_its_label_and_its_output_tagged() {
    let dir = TempDir::new("template");
    let mark = format!("template-{}", std::process::id());
    let template = format!(
        "{BIN} serve --host {{host}} --port {{port}} --mode {{mode}} --pool {{pool}} --root {{root}} --no-fsync"
    );
    let (code, progress, rows, meta) = sweep_marked(
        &dir,
        &mark,
        &[
            "--modes",
            "thread process",
            "--ops",
            "download upload list",
            "--volumes",
            "10KB",
            "--clients",
            "1 2",
            "--servers",
            "1 2",
            "--server-cmd",
            &template,
            "--server-label",
            "ours-as-template",
        ],
    );
    assert_eq!(code, Some(0), "{progress}");
    assert_eq!(rows.len(), 2 * 2 * 3 * 2);
    for r in &rows {
        assert_eq!(r["server"], "ours-as-template");
        assert_eq!(r["fail"], "0", "{r:?}");
        // Ours keeps counts, also behind a template; the readiness LIST is
        // not counted as a client's task; an upload is read back with a GET
        // (the default check for a template server), a task of its own.
        let tasks: usize = r["client_pool"].parse().unwrap();
        let per_client = if r["operation"] == "upload" { 2 } else { 1 };
        assert_eq!(
            r["server_success"],
            (tasks * per_client).to_string(),
            "{r:?}"
        );
        assert_eq!(r["server_fail"], "0");
    }
    assert_eq!(meta["server"], "ours-as-template");
    assert!(meta["server_command"]
        .as_str()
        .unwrap()
        .contains("--mode {mode}"));
    let log = std::fs::read_to_string(
        only_csv_in(&dir.path().join("results")).with_extension("server.log"),
    )
    .unwrap();
    assert!(
        log.contains("[scenario 1 out] LISTENING 127.0.0.1:"),
        "{log}"
    );
    assert!(log.contains("[scenario 24 err] "), "{log}");
    assert_eq!(alive_with_mark(&mark), Vec::<String>::new());
}

#[test]
fn a_template_server_that_fails_fails_its_scenario_with_the_cause_and_the_sweep_goes_on() {
    let matrix = [
        "--modes",
        "thread",
        "--ops",
        "download",
        "--volumes",
        "10KB",
        "--clients",
        "1",
        "--servers",
        "1 2",
        "--server-start-timeout",
        "1",
        "--drain-timeout",
        "1",
    ];
    let run = |tag: &str, template: &str| {
        let dir = TempDir::new(tag);
        let mark = format!("{tag}-{}", std::process::id());
        let mut args = matrix.to_vec();
        args.extend(["--server-cmd", template]);
        let got = sweep_marked(&dir, &mark, &args);
        assert_eq!(
            alive_with_mark(&mark),
            Vec::<String>::new(),
            "{tag}: left behind"
        );
        got
    };
    // Never ready: both scenarios fail with the cause, and each has its row.
    let (code, progress, rows, meta) = run("never-ready", "sleep 30");
    assert_eq!(code, Some(1), "{progress}");
    assert_eq!(rows.len(), 2, "{progress}");
    for r in &rows {
        assert_eq!((r["success"].as_str(), r["fail"].as_str()), ("0", "1"));
        assert_eq!(r["errors"], "server not ready: 1");
        assert_eq!(
            (r["server_success"].as_str(), r["server_fail"].as_str()),
            ("", "")
        );
    }
    assert!(progress.contains("was not ready within 1 s"), "{progress}");
    assert_eq!(meta["scenario_errors"].as_array().unwrap().len(), 2);
    // Exits at once: the cause quotes what it wrote.
    let (code, _, rows, meta) = run("exits", "echo boom-from-the-server >&2; exit 3");
    assert_eq!((code, rows.len()), (Some(1), 2));
    let why = meta["scenario_errors"][0]["error"].as_str().unwrap();
    assert!(
        why.contains("exited (exit status: 3)") && why.contains("boom-from-the-server"),
        "{why}"
    );
    // Ignores SIGTERM (a process of its group does): killed after the drain
    // timeout, said in the row; its clients were served.
    let template = format!(
        "{BIN} serve --host {{host}} --port {{port}} --mode {{mode}} --pool {{pool}} --root {{root}} --no-fsync & (trap '' TERM; exec sleep 60) & wait"
    );
    let (code, progress, rows, _) = run("ignores-term", &template);
    assert_eq!((code, rows.len()), (Some(1), 2), "{progress}");
    for r in &rows {
        assert_eq!(r["success"], "1", "{r:?}");
        assert!(r["errors"].contains("server killed"), "{r:?}");
    }
}

#[test]
fn a_quick_sweep_of_the_python_guest_reads_every_upload_back_and_keeps_no_counts() {
    let dir = TempDir::new("guest-sweep");
    let mark = format!("guest-sweep-{}", std::process::id());
    let template = guest_template("");
    let (code, progress, rows, meta) = sweep_marked(
        &dir,
        &mark,
        &[
            "--quick",
            "--servers",
            "1 5",
            "--volumes",
            "10KB",
            "--drain-timeout",
            "10",
            "--server-cmd",
            &template,
        ],
    );
    assert_eq!(code, Some(0), "{progress}");
    assert_eq!(rows.len(), 2 * 2 * 3 * 3, "{progress}");
    for r in &rows {
        assert_eq!(r["server"], "python3");
        assert_eq!(
            (r["success"].as_str(), r["errors"].as_str()),
            (r["client_pool"].as_str(), ""),
            "{r:?}"
        );
        assert_eq!(
            (r["server_success"].as_str(), r["server_fail"].as_str()),
            ("", ""),
            "{r:?}"
        );
    }
    assert!(meta["client_pool"]["upload_check"]
        .as_str()
        .unwrap()
        .starts_with("readback"));
    assert!(
        progress.contains("the server keeps no task counts")
            || progress.contains("keeps no task counts"),
        "{progress}"
    );
    // Every upload was DELETEd (the guest has DELETE): none is left.
    assert_eq!(
        store_names(&dir.path().join("work/store")),
        ["file_10KB.bin"]
    );
    assert_eq!(alive_with_mark(&mark), Vec::<String>::new());
}

#[test]
fn the_guests_faults_each_fail_with_their_cause_and_the_sweep_goes_on() {
    // A guest that stops on SIGTERM gets 10 s (a loaded machine is slow to
    // stop a Python process pool); the one that ignores it, 1 s.
    let run = |tag: &str, flags: &str, op: &str| {
        let dir = TempDir::new(tag);
        let mark = format!("{tag}-{}", std::process::id());
        let template = guest_template(flags);
        let drain = if flags == "--ignore-sigterm" {
            "1"
        } else {
            "10"
        };
        let got = sweep_marked(
            &dir,
            &mark,
            &[
                "--modes",
                "thread process",
                "--ops",
                op,
                "--volumes",
                "300KB",
                "--clients",
                "2",
                "--servers",
                "2",
                "--server-start-timeout",
                "2",
                "--drain-timeout",
                drain,
                "--server-cmd",
                &template,
            ],
        );
        assert_eq!(
            alive_with_mark(&mark),
            Vec::<String>::new(),
            "{tag}: left behind"
        );
        got
    };
    let causes = |rows: &[HashMap<String, String>]| -> Vec<String> {
        rows.iter().map(|r| r["errors"].clone()).collect()
    };
    let (code, _, rows, _) = run("corrupt", "--corrupt-download", "download");
    assert_eq!(code, Some(1));
    assert_eq!(
        causes(&rows),
        ["verification mismatch: 2", "verification mismatch: 2"]
    );
    let (code, _, rows, _) = run("truncate", "--truncate-upload", "upload");
    assert_eq!(code, Some(1));
    assert_eq!(
        causes(&rows),
        ["content mismatch: 2", "content mismatch: 2"]
    );
    let (code, progress, rows, _) = run("guest-never-ready", "--never-ready", "download");
    assert_eq!(code, Some(1));
    assert_eq!(
        causes(&rows),
        ["server not ready: 2", "server not ready: 2"],
        "{progress}"
    );
    let (code, _, rows, _) = run("guest-ignores-term", "--ignore-sigterm", "download");
    assert_eq!(code, Some(1));
    for r in &rows {
        assert_eq!(r["success"], "2", "{r:?}");
        assert_eq!(
            r["errors"], "server killed: it did not stop after SIGTERM: 1",
            "{r:?}"
        );
    }
}
