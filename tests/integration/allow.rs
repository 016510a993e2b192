//! `serve --allow`, on this host alone (no root needed): a server on `::`
//! that allows IPv4 loopback serves 127.0.0.1 (seen as `::ffff:127.0.0.1`)
//! and closes ::1's connections unanswered, in both modes; the usage errors.
//! `lab.rs` shows the same between the hosts of a lab.

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{wait_exit, Raw, Server};
use crate::lab::skipped;

/// Why a dual-stack listener cannot be tried here, if it cannot.
fn no_dual_stack() -> Option<String> {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return Some("no IPv6 loopback (::1) on this host".into());
    }
    let v6only = std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").unwrap_or_default();
    (v6only.trim() == "1").then(|| "net.ipv6.bindv6only is 1: `::` takes no IPv4 client".into())
}

fn a_dual_stack_server_serves_v4_and_closes_v6_unread(mode: &str) {
    if let Some(why) = no_dual_stack() {
        skipped(
            &format!("allow::a_dual_stack_server_in_{mode}_mode_serves_the_allowed_family_only"),
            &why,
        );
        return;
    }
    let mut srv = Server::start(&[
        "--host",
        "::",
        "--allow",
        "127.0.0.0/8",
        "--mode",
        mode,
        "--pool",
        "2",
        "-v",
    ]);
    let v4: SocketAddr = format!("127.0.0.1:{}", srv.port()).parse().unwrap();
    let v6: SocketAddr = format!("[::1]:{}", srv.port()).parse().unwrap();

    // ::1 is not allowed: its request goes unanswered, the connection closed.
    let mut refused = Raw::connect(v6);
    let me = refused.s.local_addr().unwrap();
    // The server may have closed already, and then the send fails: either way.
    let _ = refused.s.write_all(b"LIST\n");
    refused.expect_closed();

    // 127.0.0.1 (::ffff:127.0.0.1 to this server) is served.
    let mut ok = Raw::connect(v4);
    let v = ok.json(b"STATS");
    assert_eq!(v["status"], "OK", "{v}");
    let d = &v["data"];
    assert_eq!(d["refused_by_allowlist"], 1, "{d}");
    // Refused is not accepted, and never reached a worker.
    assert_eq!(d["connections_accepted"], 1, "{d}");
    assert_eq!(d["tasks_failed"], 0, "{d}");
    assert_eq!(ok.list(), Vec::<String>::new());

    let status = srv.stop(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    let log = srv.log_text();
    assert!(
        log.contains(&format!("refused {me}: not in --allow")),
        "the log names the refused peer {me}:\n{log}"
    );
    let about_it: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(&me.to_string()))
        .collect();
    assert_eq!(
        about_it.len(),
        1,
        "one line about {me}, its refusal:\n{log}"
    );
    assert!(
        log.contains("accepted [::ffff:127.0.0.1]:"),
        "the v4 client, mapped:\n{log}"
    );
}

#[test]
fn a_dual_stack_server_in_thread_mode_serves_the_allowed_family_only() {
    a_dual_stack_server_serves_v4_and_closes_v6_unread("thread");
}

#[test]
fn a_dual_stack_server_in_process_mode_serves_the_allowed_family_only() {
    a_dual_stack_server_serves_v4_and_closes_v6_unread("process");
}

/// `fsbench serve ARGS` must fail at once, before listening: its exit code
/// and the first line of its stderr.
fn serve_refused(args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Command::new(crate::common::BIN);
    cmd.arg("serve").args(args);
    refused_to_serve(cmd)
}

/// Runs a `serve` command that must fail at once, before listening; its exit
/// code and the first line of its stderr. A server that starts instead would
/// run until stopped: it is given 10 s, then killed and the test fails.
pub fn refused_to_serve(mut cmd: Command) -> (Option<i32>, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let status = wait_exit(&mut child, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("{cmd:?} ran instead of refusing to"));
    let out = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("LISTENING"),
        "{cmd:?} listened"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    (
        status.code(),
        err.lines().next().unwrap_or_default().to_string(),
    )
}

#[test]
fn beyond_loopback_without_allow_or_with_a_bad_network_serve_is_a_usage_error() {
    for host in ["0.0.0.0", "::"] {
        let (code, line) = serve_refused(&["--host", host, "--port", "0"]);
        assert_eq!(code, Some(2), "{host}: {line}");
        assert_eq!(
            line,
            format!(
                "fsbench: --allow is required to listen on {host}, which is not loopback: \
                 name the networks whose clients may connect (e.g. --allow 198.18.0.0/24)"
            )
        );
    }
    for (allow, why) in [
        ("10.0.0.1/8", "bits are set past the prefix"),
        ("198.18.0.0/33", "the prefix must be 0 to 32"),
        ("198.18.0.2,nowhere", "not an IPv4 or IPv6 address"),
    ] {
        let bad = allow.rsplit(',').next().unwrap();
        let (code, line) = serve_refused(&["--host", "0.0.0.0", "--port", "0", "--allow", allow]);
        assert_eq!(code, Some(2), "{allow}: {line}");
        assert!(
            line.starts_with(&format!("fsbench: --allow: {bad:?}: {why}")),
            "{allow}: {line}"
        );
    }
}
