//! The lab of network namespaces (`scripts/netns-lab.sh`): three hosts on
//! 198.18.0.0/24, each with an sshd of its own; our server in one of them
//! serving the client host its `--allow` names and closing the other's
//! connections unanswered; and `down`, which leaves nothing behind, even
//! after a half-built `up`.
//!
//! A lab needs root and `ip netns`: without them each test says loudly on
//! stderr that it was skipped and why, and passes. CI runs as root, with
//! `openssh-server` and `iproute2` installed by `.ci/run`, so there they run.
//! Each test has a lab of its own (a prefix made of the test process's pid
//! and a letter), taken down by a guard on drop, whatever happens.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::allow::refused_to_serve;
use crate::common::{spawn_server, wait_exit, TempDir, BIN, T};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/netns-lab.sh");

/// The lab's hosts and their addresses.
pub const HOSTS: [(&str, &str); 3] = [
    ("srv", "198.18.0.1"),
    ("c1", "198.18.0.2"),
    ("c2", "198.18.0.3"),
];

pub fn addr(host: &str) -> &'static str {
    HOSTS
        .iter()
        .find(|(h, _)| *h == host)
        .expect("a lab host")
        .1
}

/// Says on stderr, past the test harness's capture, that a test did not run.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n*** SKIPPED {test}: {why} ***\n"
    );
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"))
}

/// Runs `cmd`, which must succeed; its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Why this machine cannot hold a lab, if it cannot.
fn unavailable(prefix: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("?");
    if euid != "0" {
        return Some(format!("not root (euid {euid}): the lab needs root"));
    }
    let probe = format!("{prefix}-probe");
    match Command::new("ip")
        .args(["netns", "add", &probe])
        .stdin(Stdio::null())
        .output()
    {
        Err(e) => Some(format!("`ip` cannot run: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "`ip netns add` does not work here: {}",
            text(&o.stderr).trim()
        )),
        Ok(_) => {
            ok(Command::new("ip").args(["netns", "del", &probe]));
            None
        }
    }
}

/// A lab of this test process, taken down on drop.
pub struct Lab {
    pub prefix: String,
    pub state: PathBuf,
    /// The inode of each of its namespaces that existed, to find the
    /// processes in them in /proc once their names are gone.
    ns_inodes: Vec<u64>,
}

impl Lab {
    /// A lab not yet up (any lab of the same prefix left by an earlier run
    /// of this pid removed); `None`, said loudly, when this machine cannot
    /// hold one.
    pub fn new(test: &str, tag: char) -> Option<Lab> {
        let prefix = format!("l{}{tag}", std::process::id() % 10_000_000);
        if let Some(why) = unavailable(&prefix) {
            skipped(test, &why);
            return None;
        }
        let lab = Lab {
            state: PathBuf::from(format!("/run/fsbench-lab/{prefix}")),
            prefix,
            ns_inodes: Vec::new(),
        };
        let stale = lab.script("down");
        assert!(stale.status.success(), "down: {}", text(&stale.stderr));
        Some(lab)
    }

    /// A lab up, every host reachable over ssh (`up` checks that itself).
    pub fn up(test: &str, tag: char) -> Option<Lab> {
        let mut lab = Lab::new(test, tag)?;
        let out = lab.script("up");
        assert!(
            out.status.success(),
            "netns-lab.sh up: {}\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        let keys = lab.keys();
        assert!(
            text(&out.stdout).contains(&format!("keys: {}", keys.display())),
            "up names its key folder: {}",
            text(&out.stdout)
        );
        lab.note_namespaces();
        Some(lab)
    }

    fn script(&self, command: &str) -> Output {
        run(Command::new(SCRIPT)
            .arg(command)
            .env("FSB_LAB_PREFIX", &self.prefix))
    }

    pub fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.prefix)
    }

    /// Remembers the inodes of the lab's namespaces that exist now.
    fn note_namespaces(&mut self) {
        for (h, _) in HOSTS {
            if let Ok(m) = std::fs::metadata(format!("/run/netns/{}", self.ns(h))) {
                self.ns_inodes.push(m.ino());
            }
        }
    }

    /// The key folder, as the lab's state folder names it.
    pub fn keys(&self) -> PathBuf {
        let dir = std::fs::read_to_string(self.state.join("keydir")).expect("the lab's keydir");
        PathBuf::from(dir.trim())
    }

    /// `cmd` run on `host` (in its namespace).
    pub fn on(&self, host: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(host), program]);
        c
    }

    /// `ssh` from `from` to `to` with the lab's key and known hosts, as a
    /// later test will run it; `cmd` runs on `to`.
    fn ssh(&self, from: &str, to: &str, known_hosts: &Path, cmd: &str) -> Output {
        let mut c = self.on(from, "ssh");
        c.arg("-i")
            .arg(self.keys().join("id_ed25519"))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args(["-o", "StrictHostKeyChecking=yes"])
            .args(["-o", "BatchMode=yes"])
            .args(["-o", "ConnectTimeout=10"])
            .arg(format!("root@{}", addr(to)))
            .arg(cmd);
        run(&mut c)
    }

    /// The processes still in the lab's namespaces, or running the lab's
    /// sshds (named by their config in its state folder), as pid and
    /// command line; zombies, which run nothing, do not count.
    pub fn processes(&self) -> Vec<(u32, String)> {
        let state = format!("{}/", self.state.display());
        // A namespace's inode is reused once it is deleted: one of ours that
        // is gone may have the number of another lab's (a parallel test's),
        // which is then named in /run/netns by that lab's prefix.
        let mine = format!("{}-", self.prefix);
        let others: Vec<u64> = std::fs::read_dir("/run/netns")
            .map(|d| {
                d.flatten()
                    .filter(|e| !e.file_name().to_string_lossy().starts_with(&mine))
                    .filter_map(|e| e.metadata().ok().map(|m| m.ino()))
                    .collect()
            })
            .unwrap_or_default();
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if !crate::common::alive(pid) {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline"))
                .map(|b| text(&b).replace('\0', " "))
                .unwrap_or_default();
            let net = std::fs::read_link(e.path().join("ns/net"))
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let in_lab = self
                .ns_inodes
                .iter()
                .filter(|ino| !others.contains(ino))
                .any(|ino| net == format!("net:[{ino}]"));
            if in_lab || cmdline.contains(&state) {
                found.push((pid, cmdline));
            }
        }
        found
    }

    /// An sshd of the lab runs in each of `hosts`.
    fn assert_sshd_on(&self, hosts: &[&str]) {
        let procs = self.processes();
        for h in hosts {
            let conf = format!("{}/sshd_{h}.conf", self.state.display());
            assert!(
                procs
                    .iter()
                    .any(|(_, c)| c.contains("sshd") && c.contains(&conf)),
                "no sshd of the lab on {h}: {procs:?}"
            );
        }
    }

    /// `down`, which must succeed.
    pub fn down(&self) {
        let out = self.script("down");
        assert!(
            out.status.success(),
            "netns-lab.sh down: {}\nstderr: {}",
            out.status,
            text(&out.stderr)
        );
    }

    /// Nothing of the lab is left: no namespace, link, process or folder.
    pub fn assert_gone(&self) {
        let netns = ok(Command::new("ip").args(["netns", "list"]));
        let links = ok(Command::new("ip").args(["-o", "link", "show"]));
        let mine = format!("{}-", self.prefix);
        assert!(!netns.contains(&mine), "namespaces left: {netns}");
        assert!(!links.contains(&mine), "links left: {links}");
        assert_eq!(self.processes(), vec![], "processes of the lab left");
        assert!(!self.state.exists(), "{} left", self.state.display());
        let keys_left: Vec<_> = std::fs::read_dir("/run/fsbench-lab")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(&mine))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(keys_left, Vec::<String>::new(), "key folders left");
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Always, even when the test failed; a second `down` is harmless.
        let _ = self.script("down");
    }
}

#[test]
fn the_lab_comes_up_its_hosts_reach_each_other_over_ssh_and_down_leaves_nothing() {
    let Some(lab) = Lab::up(
        "lab::the_lab_comes_up_its_hosts_reach_each_other_over_ssh_and_down_leaves_nothing",
        'a',
    ) else {
        return;
    };
    let keys = lab.keys();
    let known = keys.join("known_hosts");
    for (h, a) in HOSTS {
        // Its address on the lab's subnet, and no way out of it.
        let routes = ok(lab.on(h, "ip").args(["-4", "route", "show"]));
        assert_eq!(
            routes.lines().map(str::trim).collect::<Vec<_>>(),
            [format!(
                "198.18.0.0/24 dev eth0 proto kernel scope link src {a}"
            )],
            "{h}'s routes"
        );
        let out = run(lab.on(h, "ip").args(["route", "get", "192.0.2.1"]));
        assert!(!out.status.success(), "{h} has a route out of the lab");
    }
    // Every host logs in to every other one with the lab's key, and the
    // command runs there: it shows that host's address, not the caller's.
    for (from, from_addr) in HOSTS {
        for (to, to_addr) in HOSTS.iter().filter(|(t, _)| *t != from) {
            let out = lab.ssh(from, to, &known, "ip -4 -o addr show dev eth0");
            let shown = text(&out.stdout);
            assert!(
                out.status.success(),
                "ssh {from} -> {to}: {}\n{}",
                out.status,
                text(&out.stderr)
            );
            assert!(
                shown.contains(&format!("inet {to_addr}/24")) && !shown.contains(from_addr),
                "ssh {from} -> {to} ran elsewhere: {shown}"
            );
        }
    }
    // The lab's ssh_config does the same in fewer words.
    let via_config = ok(lab.on("c2", "ssh").args([
        "-F",
        &format!("{}/ssh_config", lab.state.display()),
        addr("srv"),
        "cat /proc/sys/kernel/hostname; ip -4 -o addr show dev eth0",
    ]));
    assert!(via_config.contains("inet 198.18.0.1/24"), "{via_config}");
    // The host keys are checked: without the lab's known hosts, no login.
    let out = lab.ssh("srv", "c1", Path::new("/dev/null"), "true");
    assert!(
        !out.status.success(),
        "ssh accepted an unknown host key: {}",
        text(&out.stdout)
    );

    lab.assert_sshd_on(&["srv", "c1", "c2"]);
    lab.down();
    lab.assert_gone();
    // down again: nothing to do, and no complaint.
    lab.down();
    lab.assert_gone();
}

/// Connects to argv[1]:argv[2], sends `LIST\n` (if the connection still
/// takes it) and reads until the server closes; prints its own port, the
/// bytes it received and how the connection ended.
const SEND_LIST_READ_ALL: &str = r#"
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
port = s.getsockname()[1]
try:
    s.sendall(b"LIST\n")
except OSError:
    pass
n, how = 0, "eof"
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        n += len(b)
except ConnectionResetError:
    how = "reset"
print(port, n, how)
"#;

/// `ip netns exec NS fsbench serve ...` on the server host, on port 0: the
/// child (ip execs the server in place), its address, its log.
pub fn serve_in_lab(
    lab: &Lab,
    dir: &TempDir,
    args: &[&str],
) -> (std::process::Child, u16, PathBuf) {
    let root = dir.path().join("files");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("hello.txt"), b"hi").unwrap();
    let log = dir.path().join("server.log");
    let mut cmd = lab.on("srv", BIN);
    cmd.args(["serve", "--port", "0", "--no-fsync", "-v", "--root"])
        .arg(&root)
        .args(args);
    let (child, at) = spawn_server(cmd, &log);
    (child, at.port(), log)
}

#[test]
fn a_server_in_the_lab_serves_the_host_it_allows_and_closes_the_others_connections_unanswered() {
    let Some(lab) = Lab::up(
        "lab::a_server_in_the_lab_serves_the_host_it_allows_and_closes_the_others_connections_unanswered",
        'b',
    ) else {
        return;
    };
    let dir = TempDir::new("lab");

    // Beyond loopback, --allow is required: said before anything listens.
    let mut cmd = lab.on("srv", BIN);
    cmd.args(["serve", "--host", "198.18.0.1", "--port", "0"]);
    let (code, line) = refused_to_serve(cmd);
    assert_eq!(code, Some(2), "{line}");
    assert_eq!(
        line,
        "fsbench: --allow is required to listen on 198.18.0.1, which is not loopback: \
         name the networks whose clients may connect (e.g. --allow 198.18.0.0/24)"
    );

    let (mut server, port, log) = serve_in_lab(
        &lab,
        &dir,
        &["--host", "198.18.0.1", "--allow", "198.18.0.2/32"],
    );
    let port_s = port.to_string();
    let client = |host: &str, what: &str| {
        run(lab
            .on(host, BIN)
            .args(["client", what, "--host", "198.18.0.1", "--port", &port_s]))
    };

    // c1 is served.
    let listed = client("c1", "list");
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(text(&listed.stdout), "hello.txt\n");

    // c2 connects (the kernel completes the handshake), sends a request,
    // and sees its connection closed with not a byte of answer.
    let probe =
        run(lab
            .on("c2", "python3")
            .args(["-c", SEND_LIST_READ_ALL, "198.18.0.1", &port_s]));
    assert!(probe.status.success(), "{}", text(&probe.stderr));
    let probe_out = text(&probe.stdout);
    let fields: Vec<&str> = probe_out.split_whitespace().collect();
    assert_eq!(fields.len(), 3, "{probe_out}");
    let (c2_port, answered) = (fields[0], fields[1]);
    assert_eq!(answered, "0", "bytes c2 received: {probe_out}");

    // STATS, from c1: one refused, and only c1's connections accepted.
    let stats = client("c1", "stats");
    assert!(stats.status.success(), "{}", text(&stats.stderr));
    let v: Value = serde_json::from_slice(&stats.stdout).expect("STATS as JSON");
    assert_eq!(v["refused_by_allowlist"], 1, "{v}");
    assert_eq!(v["connections_accepted"], 2, "{v}");
    assert_eq!(v["tasks_failed"], 0, "{v}");

    // What a user on c2 sees.
    let refused = client("c2", "list");
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("connection"),
        "{}",
        text(&refused.stderr)
    );

    fsbench::sys::kill(server.id(), fsbench::sys::SIGTERM).unwrap();
    let status = wait_exit(&mut server, T).expect("the server stops on SIGTERM");
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains(&format!("refused 198.18.0.3:{c2_port}: not in --allow")),
        "the log names the refused peer:\n{log}"
    );
    let c2_lines: Vec<&str> = log.lines().filter(|l| l.contains("198.18.0.3")).collect();
    assert_eq!(c2_lines.len(), 2, "c2 only refused, twice:\n{log}");
    assert!(c2_lines.iter().all(|l| l.contains("refused")), "{log}");

    lab.down();
    lab.assert_gone();
}

#[test]
fn down_removes_a_half_built_lab_and_is_safe_twice() {
    let Some(mut lab) = Lab::new("lab::down_removes_a_half_built_lab_and_is_safe_twice", 'c')
    else {
        return;
    };
    // A link in the way of c2's veth: up stops there, srv and c1 built.
    let blocker = lab.ns("c2");
    ok(Command::new("ip").args([
        "link",
        "add",
        &blocker,
        "type",
        "veth",
        "peer",
        "name",
        &format!("{blocker}p"),
    ]));
    let out = lab.script("up");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("netns-lab: failed: ip link add"),
        "{}",
        text(&out.stderr)
    );
    lab.note_namespaces();
    assert_eq!(lab.ns_inodes.len(), 3, "srv, c1 and c2's namespace made");
    lab.assert_sshd_on(&["srv", "c1"]);
    assert!(lab.keys().join("id_ed25519").exists());

    lab.down();
    lab.assert_gone();
    lab.down();
    lab.assert_gone();
    // And a lab of that prefix comes up afterwards, as if new.
    let out = lab.script("up");
    assert!(out.status.success(), "{}", text(&out.stderr));
    lab.note_namespaces();
    lab.assert_sshd_on(&["srv", "c1", "c2"]);
    lab.down();
    lab.assert_gone();
}
