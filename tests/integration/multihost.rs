//! The sweep and the pool over ssh, in the lab of network namespaces
//! (`scripts/netns-lab.sh`): the coordinator runs on the server's host (srv,
//! 198.18.0.1), the server is started there over ssh, and the clients run on
//! c1 (198.18.0.2) and c2 (198.18.0.3).
//!
//! - a quick sweep (KB volumes, both modes) with every byte verified, the
//!   clients split over both hosts, the server admitting exactly them and
//!   the coordinator, and nothing of ours left running on any host;
//! - a host without sshd: one line naming it, exit 2, before any scenario;
//! - a client host lost in the middle of a scenario (the first one, which
//!   also checked the server's readiness): its clients fail as `client host
//!   lost: HOST`, and the sweep goes on without it once it cannot be reached;
//! - Ctrl-C on the coordinator stops every remote process.
//!
//! Skipped loudly without root and `ip netns` (see `lab`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::{wait_exit, wait_until, TempDir, BIN, T};
use crate::lab::{addr, run, text, Lab};
use crate::load::only_csv_in;

const GUEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/guest/file_server.py");

/// The flags that put a sweep (or a pool) on the lab's hosts.
fn host_flags(lab: &Lab, dir: &TempDir, clients: &[&str]) -> Vec<String> {
    let clients: Vec<&str> = clients.iter().map(|h| addr(h)).collect();
    let mut f = Vec::new();
    if !clients.is_empty() {
        f.extend(["--client-hosts".into(), clients.join(" ")]);
    }
    f.extend([
        "--ssh-opts".into(),
        format!("-F {}/ssh_config", lab.state.display()),
        "--remote-dir".into(),
        dir.path().join("remote").display().to_string(),
    ]);
    f
}

/// `fsbench sweep` run by the coordinator on srv, with its server there too.
fn sweep_cmd(lab: &Lab, dir: &TempDir, clients: &[&str], args: &[&str]) -> Command {
    let mut c = lab.on("srv", BIN);
    c.arg("sweep")
        .args(["--server-host", addr("srv")])
        .args(host_flags(lab, dir, clients))
        .arg("--work")
        .arg(dir.path().join("work"))
        .arg("--results")
        .arg(dir.path().join("results"))
        .arg("--no-fsync")
        .args(args);
    c
}

/// A template server on srv whose GETs are never answered: a scenario that
/// lasts until its clients time out.
fn stalling_server() -> String {
    format!(
        "python3 {GUEST} --mode {{mode}} --workers {{pool}} --port {{port}} --host {{host}} --root {{root}} --stall-get"
    )
}

/// The processes in the lab's namespaces but its sshds' listeners: ours
/// (fsbench, the guest server) and the ssh sessions that ran them.
fn ours_in_lab(lab: &Lab) -> Vec<(u32, String)> {
    lab.processes()
        .into_iter()
        .filter(|(_, c)| !c.starts_with("sshd: /usr/sbin/sshd -f "))
        .collect()
}

/// Nothing of ours is left running on any host (waited for, bounded: the
/// sshd sessions of a coordinator's connections end just after it).
fn assert_nothing_left(lab: &Lab) {
    let mut left = Vec::new();
    let ok = crate::common::poll(T, || {
        left = ours_in_lab(lab);
        left.is_empty()
    });
    assert!(ok.is_some(), "left running in the lab: {left:?}");
}

/// Waits (bounded) until a process of ours on `host` runs `what`.
fn wait_for_process(lab: &Lab, host: &str, what: &str) -> u32 {
    let ns = std::fs::metadata(format!("/run/netns/{}", lab.ns(host))).expect("its namespace");
    use std::os::unix::fs::MetadataExt;
    let want = format!("net:[{}]", ns.ino());
    let mut found = 0;
    wait_until(format!("{what} on {host}"), T, || {
        found = lab
            .processes()
            .into_iter()
            .find(|(pid, c)| {
                c.contains(what)
                    && std::fs::read_link(format!("/proc/{pid}/ns/net"))
                        .is_ok_and(|l| l.display().to_string() == want)
            })
            .map_or(0, |(pid, _)| pid);
        found != 0
    });
    found
}

/// The one CSV of a results folder, as records of (header -> value).
fn rows(results: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(only_csv_in(results)).unwrap();
    let head: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            head.iter()
                .cloned()
                .zip(rec.iter().map(String::from))
                .collect()
        })
        .collect()
}

/// A file the sweep wrote beside its CSV (`json`, `server.log`, `html`).
fn beside_csv(results: &Path, extension: &str) -> PathBuf {
    only_csv_in(results).with_extension(extension)
}

fn metadata(results: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(beside_csv(results, "json")).unwrap()).unwrap()
}

fn server_log(results: &Path) -> String {
    std::fs::read_to_string(beside_csv(results, "server.log")).unwrap()
}

fn assert_ran(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// What is left in the store on srv besides the test files.
fn store_leftovers(dir: &TempDir) -> Vec<String> {
    let store = dir.path().join("remote/work/store");
    std::fs::read_dir(store)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with("file_") && n != ".tmp")
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_sweep_with_its_server_and_clients_on_lab_hosts_verifies_every_byte_and_leaves_nothing() {
    let Some(lab) = Lab::up(
        "multihost::a_sweep_with_its_server_and_clients_on_lab_hosts_verifies_every_byte_and_leaves_nothing",
        'd',
    ) else {
        return;
    };
    let dir = TempDir::new("multihost");
    let out = run(&mut sweep_cmd(
        &lab,
        &dir,
        &["c1", "c2"],
        &[
            "--modes",
            "thread process",
            "--servers",
            "2",
            "--ops",
            "download upload list",
            "--volumes",
            "10KB 100KB",
            "--clients",
            "1 5",
        ],
    ));
    assert_ran(&out, 0);
    let err = text(&out.stderr);
    for h in ["srv", "c1", "c2"] {
        assert!(
            err.contains(&format!("host {} ({})", addr(h), addr(h))),
            "{h} readied: {err}"
        );
    }
    assert!(
        err.contains("download 100KB x5 on 198.18.0.2:3 198.18.0.3:2"),
        "the progress line shows the split: {err}"
    );

    let results = dir.path().join("results");
    let rows = rows(&results);
    assert_eq!(rows.len(), 2 * 3 * 2 * 2, "every scenario has its row");
    for r in &rows {
        let clients: u64 = r["client_pool"].parse().unwrap();
        assert_eq!(r["success"], r["client_pool"], "{r:?}");
        assert_eq!(r["fail"], "0", "{r:?}");
        assert_eq!(r["errors"], "", "{r:?}");
        // The server counted each client's task: its STATS reached us.
        assert_eq!(r["server_success"], r["client_pool"], "{r:?}");
        if r["operation"] != "list" {
            let bytes: u64 = match r["volume"].as_str() {
                "10KB" => 10 * 1024,
                "100KB" => 100 * 1024,
                v => panic!("volume {v}"),
            };
            assert_eq!(
                r["bytes_verified"],
                (clients * bytes).to_string(),
                "every byte verified: {r:?}"
            );
        }
        assert!(r["client_mem_mib"].parse::<f64>().unwrap() > 0.0, "{r:?}");
        assert!(r["server_mem_mib"].parse::<f64>().unwrap() > 0.0, "{r:?}");
    }

    let m = metadata(&results);
    let hosts: Vec<(String, String)> = m["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            assert!(h["machine"]["cores"].as_u64().unwrap() >= 1, "{h}");
            assert!(
                h["fsbench"].as_str().unwrap().starts_with("fsbench "),
                "{h}"
            );
            (
                h["role"].as_str().unwrap().to_string(),
                h["address"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [
            ("server".to_string(), addr("srv").to_string()),
            ("client".to_string(), addr("c1").to_string()),
            ("client".to_string(), addr("c2").to_string()),
        ]
    );
    // Per scenario, each host's share: 5 clients as 3 + 2, 1 as 1 on c1.
    for s in m["client_hosts"].as_array().unwrap() {
        let shares: Vec<u64> = s["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["clients"].as_u64().unwrap())
            .collect();
        assert!(shares == [3, 2] || shares == [1], "{s}");
    }

    // The report says where each side ran.
    let html = std::fs::read_to_string(beside_csv(&results, "html")).unwrap();
    assert!(
        html.contains("server on 198.18.0.1 (198.18.0.1, ")
            && html.contains("clients split over 198.18.0.2 (198.18.0.2, "),
        "the report's hosts row"
    );

    // The server saw the client hosts and the coordinator (its readiness
    // check, STATS and DELETE come from srv) and nothing else.
    let log = server_log(&results);
    let peers: BTreeSet<&str> = log
        .lines()
        .filter_map(|l| l.split(" accepted ").nth(1))
        .filter_map(|p| p.rsplit_once(':').map(|(ip, _)| ip))
        .collect();
    assert_eq!(
        peers,
        BTreeSet::from([addr("srv"), addr("c1"), addr("c2")]),
        "{log}"
    );
    assert!(!log.contains("refused"), "{log}");

    // Our binary was copied once, by hash, into the cache folder.
    let bins: Vec<_> = std::fs::read_dir(dir.path().join("remote/bin"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(bins.len(), 1, "{bins:?}");
    assert!(bins[0].starts_with("fsbench-"), "{bins:?}");
    assert_eq!(store_leftovers(&dir), Vec::<String>::new());
    assert_nothing_left(&lab);

    // Either side alone. The server on srv, the clients here (on srv too,
    // the coordinator's host); the copy there is ours already (same hash).
    let small = [
        "--modes",
        "thread process",
        "--servers",
        "1",
        "--ops",
        "download upload",
        "--volumes",
        "10KB",
        "--clients",
        "3",
    ];
    let mut server_only = sweep_cmd(&lab, &dir, &[], &small);
    server_only.args(["--prefix", "server-only"]);
    let out = run(&mut server_only);
    assert_ran(&out, 0);
    let err = text(&out.stderr);
    assert!(err.contains("fsbench already in"), "{err}");
    assert!(!err.contains("copied to"), "{err}");
    assert!(!err.contains("x3 on "), "no client host: {err}");
    // The server here (on srv, the coordinator's host, listening on the
    // address the client hosts see it at), the clients on c1 and c2.
    let mut clients_only = lab.on("srv", BIN);
    clients_only
        .arg("sweep")
        .args(host_flags(&lab, &dir, &["c1", "c2"]))
        .arg("--work")
        .arg(dir.path().join("work-local"))
        .arg("--results")
        .arg(dir.path().join("results-local"))
        .arg("--no-fsync")
        .args(small);
    let out = run(&mut clients_only);
    assert_ran(&out, 0);
    let err = text(&out.stderr);
    assert!(
        err.contains("the server listens on 198.18.0.1, admitting 127.0.0.1/32 198.18.0.2/32 198.18.0.3/32 198.18.0.1/32"),
        "{err}"
    );
    assert!(
        err.contains("upload 10KB x3 on 198.18.0.2:2 198.18.0.3:1"),
        "{err}"
    );
    let local_rows = self::rows(&dir.path().join("results-local"));
    assert_eq!(local_rows.len(), 4);
    assert!(local_rows
        .iter()
        .all(|r| r["success"] == "3" && r["server_success"] == "3"));
    let roles: Vec<Value> = metadata(&dir.path().join("results-local"))["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["role"].clone())
        .collect();
    assert_eq!(roles, ["client", "client"]);

    // `fsbench pool --client-hosts`: 5 uploads as 3 on c1 and 2 on c2,
    // against a server on srv that admits the lab's subnet.
    let (mut server, port, _log) = crate::lab::serve_in_lab(
        &lab,
        &dir,
        &["--host", addr("srv"), "--allow", "198.18.0.0/24"],
    );
    let mut pool = lab.on("srv", BIN);
    pool.args([
        "pool",
        "--json",
        "--operation",
        "upload",
        "--volume",
        "10KB",
    ])
    .args(["--clients", "5", "--mode", "process", "--host", addr("srv")])
    .args(["--port", &port.to_string()])
    .args(host_flags(&lab, &dir, &["c1", "c2"]));
    let out = run(&mut pool);
    assert_ran(&out, 0);
    let v: Value = serde_json::from_slice(&out.stdout).expect("the pool's JSON");
    assert_eq!(v["success"], 5, "{v}");
    assert_eq!(v["bytes_verified"], 5 * 10 * 1024, "{v}");
    let idx: Vec<u64> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["index"].as_u64().unwrap())
        .collect();
    assert_eq!(idx, [0, 1, 2, 3, 4], "{v}");
    let shares: Vec<(&str, u64, u64)> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["host"].as_str().unwrap(),
                h["first_index"].as_u64().unwrap(),
                h["success"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shares, [(addr("c1"), 0, 3), (addr("c2"), 3, 2)], "{v}");
    fsbench::sys::kill(server.id(), fsbench::sys::SIGTERM).unwrap();
    assert!(wait_exit(&mut server, T)
        .expect("the server stops")
        .success());

    lab.down();
    lab.assert_gone();
}

#[test]
fn a_host_without_sshd_is_one_line_naming_it_and_exit_2_before_any_scenario() {
    let Some(lab) = Lab::up(
        "multihost::a_host_without_sshd_is_one_line_naming_it_and_exit_2_before_any_scenario",
        'e',
    ) else {
        return;
    };
    let dir = TempDir::new("multihost-nosshd");
    let pid: u32 = std::fs::read_to_string(lab.state.join("sshd_c2.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    fsbench::sys::kill(pid, fsbench::sys::SIGTERM).unwrap();
    wait_until("c2's sshd gone", T, || !crate::common::alive(pid));

    let out = run(&mut sweep_cmd(&lab, &dir, &["c1", "c2"], &["--quick"]));
    assert_ran(&out, 2);
    let last = text(&out.stderr).lines().last().unwrap_or("").to_string();
    assert!(
        last.starts_with("fsbench sweep: client host 198.18.0.3: cannot connect over ssh: ")
            && last.contains("Connection refused"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !dir.path().join("results").exists()
            || std::fs::read_dir(dir.path().join("results"))
                .unwrap()
                .next()
                .is_none(),
        "no scenario ran, no CSV written"
    );

    // The pool says the same.
    let mut pool = lab.on("srv", BIN);
    pool.args(["pool", "--host", addr("srv"), "--port", "1"])
        .args(host_flags(&lab, &dir, &["c2"]));
    let out = run(&mut pool);
    assert_ran(&out, 2);
    assert!(
        text(&out.stderr).contains("client host 198.18.0.3: cannot connect over ssh"),
        "{}",
        text(&out.stderr)
    );
    assert_nothing_left(&lab);
    lab.down();
    lab.assert_gone();
}

#[test]
fn a_client_host_lost_mid_scenario_fails_its_clients_and_the_sweep_goes_on_without_it() {
    let Some(lab) = Lab::up(
        "multihost::a_client_host_lost_mid_scenario_fails_its_clients_and_the_sweep_goes_on_without_it",
        'f',
    ) else {
        return;
    };
    let dir = TempDir::new("multihost-lost");
    let template = stalling_server();
    let mut cmd = sweep_cmd(
        &lab,
        &dir,
        &["c1", "c2"],
        &[
            "--modes",
            "thread",
            "--servers",
            "1",
            "--ops",
            "download",
            "--volumes",
            "10KB",
            "--clients",
            "4",
            "--repeat",
            "2",
            // How long c1's stalled clients wait: a bound, not a clock the
            // test depends on.
            "--timeout",
            "3",
            "--server-cmd",
            &template,
            "--server-label",
            "guest",
        ],
    );
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // c1's pool is running (its clients wait on their GETs): c1 goes away,
    // its sshd with it, so it stays unreachable. c1 is also the host the
    // server's readiness LIST was sent from: c2 takes over.
    wait_for_process(&lab, "c1", " pool --json");
    let c1: Vec<String> = crate::lab::ok(Command::new("ip").args(["netns", "pids", &lab.ns("c1")]))
        .split_whitespace()
        .map(String::from)
        .collect();
    // (Some may have ended between the listing and the kill.)
    run(Command::new("kill").arg("-KILL").args(&c1));
    let out = child.wait_with_output().unwrap();
    assert_ran(&out, 1);
    let err = text(&out.stderr);
    assert!(
        err.contains("client host 198.18.0.2 lost in scenario 1 and unreachable")
            && err.contains("the sweep goes on with 1 client host(s)"),
        "{err}"
    );
    let results = dir.path().join("results");
    let rows = rows(&results);
    assert_eq!(rows.len(), 2, "{err}");
    assert!(
        rows[0]["errors"].contains("client host lost: 198.18.0.2: 2"),
        "{:?}",
        rows[0]
    );
    // The second scenario ran (its server ready, checked from c2), its four
    // clients on c2, which time out on the stalled GETs.
    assert_eq!(rows[1]["errors"], "timeout: 4", "{:?}", rows[1]);
    let m = metadata(&results);
    assert_eq!(m["lost_hosts"][0]["host"], addr("c1"), "{m}");
    let second = &m["client_hosts"][1]["hosts"];
    assert_eq!(second.as_array().unwrap().len(), 1, "{m}");
    assert_eq!(second[0]["host"], addr("c2"));
    assert_eq!(second[0]["clients"], 4);
    assert_nothing_left(&lab);
    lab.down();
    lab.assert_gone();
}

#[test]
fn ctrl_c_on_the_coordinator_stops_every_remote_process() {
    let Some(lab) = Lab::up(
        "multihost::ctrl_c_on_the_coordinator_stops_every_remote_process",
        'g',
    ) else {
        return;
    };
    let dir = TempDir::new("multihost-int");
    let template = stalling_server();
    let mut cmd = sweep_cmd(
        &lab,
        &dir,
        &["c1", "c2"],
        &[
            "--modes",
            "process",
            "--servers",
            "2",
            "--ops",
            "download",
            "--volumes",
            "10KB",
            "--clients",
            "4",
            "--timeout",
            "60",
            "--server-cmd",
            &template,
        ],
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Everything is up: the server's keeper on srv, a pool and its client
    // processes on each client host.
    wait_for_process(&lab, "srv", "file_server.py");
    for h in ["c1", "c2"] {
        wait_for_process(&lab, h, "pool-worker");
    }
    fsbench::sys::kill(child.id(), fsbench::sys::SIGINT).unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(60)).expect("the sweep stops");
    assert_eq!(status.code(), Some(130));
    assert_nothing_left(&lab);
    assert_eq!(store_leftovers(&dir), Vec::<String>::new());
    lab.down();
    lab.assert_gone();
}

/// `fsbench supervise` on this host: `START`/`END` measure the server's
/// tree, `TERM` stops it (exit 0, reported), the end of stdin kills it, and
/// so does silence past `--heartbeat` while stdin stays open (a coordinator
/// cut off by the network); after each, the store has only its test files.
#[test]
fn supervise_measures_stops_kills_on_the_end_of_stdin_and_on_silence() {
    use std::io::{BufRead, BufReader, Write};
    let dir = TempDir::new("supervise");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let start = |extra: &[&str]| {
        std::fs::write(store.join("file_10KB.bin"), b"x").unwrap();
        std::fs::write(store.join("upload.bin"), b"y").unwrap();
        let mut c = Command::new(BIN);
        c.arg("supervise")
            .arg("--clean-store")
            .arg(&store)
            .args(extra)
            .args(["--signal-leader", "--", BIN, "serve", "--port", "0"])
            .arg("--root")
            .arg(&store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("LISTENING "), "{line}");
        (child, out)
    };
    let read = |out: &mut BufReader<std::process::ChildStdout>| {
        let mut l = String::new();
        out.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    };
    let only_test_files = || {
        let mut left: Vec<String> = std::fs::read_dir(&store)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != ".tmp")
            .collect();
        left.sort();
        assert_eq!(left, ["file_10KB.bin"]);
    };

    // Measured, then stopped by TERM.
    let (mut child, mut out) = start(&[]);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "START").unwrap();
    assert_eq!(read(&mut out), "SUPERVISE STARTED");
    writeln!(stdin, "END").unwrap();
    let m = read(&mut out);
    let v: Value = serde_json::from_str(m.strip_prefix("SUPERVISE MEASURED ").expect(&m)).unwrap();
    assert!(v["pss"]["peak_kib"].as_u64().unwrap() > 0, "{v}");
    assert!(v["vmhwm_kib"].as_u64().unwrap() > 0, "{v}");
    writeln!(stdin, "TERM").unwrap();
    assert_eq!(read(&mut out), "SUPERVISE EXIT 0");
    assert!(wait_exit(&mut child, T).expect("it ends").success());
    only_test_files();

    // The end of stdin: the server is killed.
    let (mut child, mut out) = start(&[]);
    drop(child.stdin.take());
    assert_eq!(read(&mut out), "SUPERVISE EXIT signal-9");
    wait_exit(&mut child, T).expect("it ends");
    only_test_files();

    // Stdin open and silent past the heartbeat: killed too.
    let (mut child, mut out) = start(&["--heartbeat", "0.5"]);
    let _stdin = child.stdin.take().unwrap();
    assert_eq!(read(&mut out), "SUPERVISE EXIT signal-9");
    wait_exit(&mut child, T).expect("it ends");
    only_test_files();
}

/// A pool waiting for its start on stdin ends when the coordinator's lines
/// stop (`--heartbeat`), its client processes with it.
#[test]
fn a_pool_waiting_for_its_start_ends_when_the_coordinator_falls_silent() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(BIN)
        .args(["pool", "--start-on-stdin", "--heartbeat", "0.5", "--json"])
        .args(["--mode", "process", "--clients", "3", "--port", "1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "READY\n");
    let workers = crate::common::children(child.id());
    assert_eq!(workers.len(), 3, "its three client processes");
    let st = wait_exit(&mut child, T).expect("the pool ends");
    assert_eq!(st.code(), Some(1));
    wait_until("its client processes gone", T, || {
        workers.iter().all(|&p| !crate::common::alive(p))
    });
}

/// `--probe-list`: a pool whose server does not answer a LIST says
/// `NOT-READY` and why instead of `READY`, starts no client, and exits 1.
#[test]
fn a_pool_probing_a_server_that_does_not_answer_says_not_ready() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(BIN)
        .args(["pool", "--start-on-stdin", "--probe-list", "--clients", "2"])
        .args(["--port", &port.to_string(), "--timeout", "5"])
        .stdin(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = text(&out.stdout);
    assert!(
        said.starts_with("NOT-READY ") && said.contains("refused") && !said.contains("READY\n"),
        "{said}"
    );
}

/// Ctrl-C while the hosts are being readied (here an ssh that never gets a
/// connection: its transport is a command that waits, so no traffic goes
/// anywhere) ends the sweep with 130, says no scenario ran, and leaves no
/// ssh process and no control folder behind.
#[test]
fn ctrl_c_while_the_hosts_are_readied_leaves_nothing() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("multihost-setup-int");
    let wait = dir.path().join("wait.sh");
    // A duration no other process has: its transport is found by it.
    let secs = format!("61.{}", std::process::id());
    std::fs::write(&wait, format!("#!/bin/sh\nexec sleep {secs}\n")).unwrap();
    std::fs::set_permissions(&wait, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut child = Command::new(BIN)
        .arg("sweep")
        .args(["--quick", "--client-hosts", "127.0.0.1", "--ssh-opts"])
        .arg(format!("-o ProxyCommand={}", wait.display()))
        .arg("--work")
        .arg(dir.path().join("work"))
        .arg("--results")
        .arg(dir.path().join("results"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    // The test files are ready: the hosts come next.
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.starts_with("test files ready"), "{line}");
    let masters = || -> Vec<u32> {
        crate::common::children(pid)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "ssh")
            })
            .collect()
    };
    wait_until("the ssh master started", T, || !masters().is_empty());
    // Its transport: the `sleep` the script became.
    let transport = || -> Vec<u32> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| {
                    text(&c).replace('\0', " ").trim_end() == format!("sleep {secs}")
                }) && crate::common::alive(*p)
            })
            .collect()
    };
    wait_until("its transport running", T, || !transport().is_empty());

    let ssh = masters();
    fsbench::sys::kill(pid, fsbench::sys::SIGINT).unwrap();
    let st = wait_exit(&mut child, T).expect("the sweep ends");
    assert_eq!(st.code(), Some(130));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    assert!(
        rest.contains("interrupted by signal 2; before any scenario"),
        "{rest}"
    );
    wait_until("its ssh gone", T, || {
        ssh.iter().all(|&p| !crate::common::alive(p))
    });
    assert_eq!(transport(), Vec::<u32>::new(), "its transport left running");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(&format!("fsbench-ssh-{pid}-"))
        })
        .collect();
    assert!(left.is_empty(), "control folders left: {left:?}");
    assert!(
        !dir.path().join("results").exists()
            || std::fs::read_dir(dir.path().join("results"))
                .unwrap()
                .next()
                .is_none()
    );
}
