//! Requests without a line end (issue 12; PROTOCOL.md, "Unterminated
//! requests"), in thread and process mode: the course's reference client,
//! which sends each request in one send with no line end and waits, played by
//! `tests/compat/reference_client.py`; the length-prefixed upload; requests
//! split by a stall (`DELETE` and inline `UPLOAD` refused, a cut name
//! answered for what arrived); `--unterminated-wait 0`; and the wait as a
//! timer of the event loop, which holds no worker and never delays a request
//! that has its `\n`.
//!
//! A test pauses only to create the condition under test (a client quiet for
//! longer than the wait); it never sleeps to wait for the server. Answer times
//! are checked against a generous bound, not measured for speed.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{assert_error, content, Raw, Server};

/// The server's default unterminated wait.
const WAIT: Duration = Duration::from_millis(100);
/// A stall, longer than the wait, that a test makes on purpose.
const STALL: Duration = Duration::from_millis(400);
/// What "answered within the wait plus a margin" is checked against: generous
/// on a shared 2-core machine, and far below the 30 s request timeout that
/// such a client met before.
const ANSWER_BOUND: Duration = Duration::from_secs(3);

const MODES: [&str; 2] = ["thread", "process"];

/// The ERROR of a request that changes the store, split by a stall.
const REFUSED: &str = "unterminated request: end it with \\n";

/// Runs the reference-style client; returns its exit code, the server's
/// answer and the time from its send to the answer's terminator.
fn reference(srv: &Server, args: &[&str]) -> (i32, Value, Duration) {
    let (code, v) = crate::common::python_client("reference_client.py", srv.port(), args);
    let secs = v["seconds"].as_f64().expect("seconds");
    (code, v["answer"].clone(), Duration::from_secs_f64(secs))
}

/// The reference client's answer, which must be OK and come within the bound.
fn served(srv: &Server, args: &[&str]) -> (Value, Duration) {
    let (code, v, t) = reference(srv, args);
    assert_eq!((code, &v["status"]), (0, &"OK".into()), "{args:?}: {v}");
    answered_in_time(args, t);
    (v, t)
}

fn answered_in_time(what: impl std::fmt::Debug, t: Duration) {
    assert!(
        t <= ANSWER_BOUND,
        "{what:?}: answered after {t:?} (the wait is {WAIT:?}, the bound {ANSWER_BOUND:?})"
    );
}

/// Served after the wait: the server cannot know sooner that the request is whole.
fn served_after_the_wait(srv: &Server, args: &[&str]) -> Value {
    let (v, t) = served(srv, args);
    assert!(t >= WAIT, "{args:?}: answered after {t:?}, before the wait");
    v
}

/// The server's counters of unterminated requests: (served, refused).
fn counters(srv: &Server) -> (u64, u64) {
    let d = srv.raw().json(b"STATS")["data"].clone();
    (
        d["unterminated_requests"]
            .as_u64()
            .expect("unterminated_requests"),
        d["unterminated_refused"]
            .as_u64()
            .expect("unterminated_refused"),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn the_reference_client_lists_gets_uploads_and_deletes_without_line_ends() {
    for mode in MODES {
        let srv = Server::start(&["--mode", mode, "--pool", "5"]);
        let small = content(41, 4 * 1024);
        let big = content(42, 100 * 1024);
        std::fs::write(srv.root.join("file_4KB.bin"), &small).unwrap();
        std::fs::write(srv.root.join("file_100KB.bin"), &big).unwrap();
        let dir = srv.dir.path();

        let v = served_after_the_wait(&srv, &["list"]);
        assert_eq!(
            v["data"],
            serde_json::json!(["file_100KB.bin", "file_4KB.bin"]),
            "{mode}"
        );
        for (name, want) in [("file_4KB.bin", &small), ("file_100KB.bin", &big)] {
            let out = dir.join(format!("got-{name}"));
            let v = served_after_the_wait(&srv, &["get", name, path(&out)]);
            assert_eq!(v["data_namafile"], name);
            assert_eq!(v["bytes"], want.len());
            assert!(std::fs::read(&out).unwrap() == *want, "{mode}: GET {name}");
        }
        // An inline upload in one send: 4000 bytes of base64.
        let up = content(43, 3000);
        let src = dir.join("up.src");
        std::fs::write(&src, &up).unwrap();
        let v = served_after_the_wait(&srv, &["upload", path(&src), "up.bin"]);
        assert_eq!(v["data"]["file_path"], "up.bin");
        assert!(std::fs::read(srv.root.join("up.bin")).unwrap() == up);
        let v = served_after_the_wait(&srv, &["delete", "up.bin"]);
        assert_eq!(v["message"], "File deleted successfully");
        assert!(!srv.root.join("up.bin").exists());
        assert_eq!(counters(&srv), (5, 0), "{mode}: 5 served, none refused");
        assert_eq!(srv.temp_files(), 0);
    }
}

#[test]
fn a_sized_upload_is_stored_when_its_length_matches_and_refused_when_not() {
    for mode in MODES {
        let srv = Server::start(&["--mode", mode, "--pool", "5"]);
        let dir = srv.dir.path();
        let small = content(51, 3000);
        // 136 536 bytes of base64: a line over the 64 KiB line limit, which a
        // worker streams; its length says where it ends.
        let big = content(52, 100 * 1024);
        let (small_src, big_src) = (dir.join("small.src"), dir.join("big.src"));
        std::fs::write(&small_src, &small).unwrap();
        std::fs::write(&big_src, &big).unwrap();

        // Without a line end (the reference client): the short one after the
        // wait, the long one as soon as its length is in (a worker streams it).
        for (src, name, want) in [(&small_src, "s.bin", &small), (&big_src, "b.bin", &big)] {
            let (v, _) = served(&srv, &["upload", path(src), name, "--length", "right"]);
            assert_eq!(v["data"]["file_path"], name);
            assert!(
                std::fs::read(srv.root.join(name)).unwrap() == *want,
                "{mode}: {name}"
            );
        }
        let true_len = small.len().div_ceil(3) * 4;
        for wrong in [true_len + 1, true_len - 1, 0] {
            let (code, v, t) = reference(
                &srv,
                &[
                    "upload",
                    path(&small_src),
                    "w.bin",
                    "--length",
                    &wrong.to_string(),
                ],
            );
            assert_eq!(code, 1);
            assert_eq!(
                assert_error(&v, format!("{mode}: length {wrong}")),
                "length mismatch"
            );
            answered_in_time(wrong, t);
            assert!(
                !srv.root.join("w.bin").exists(),
                "{mode}: stored with length {wrong}"
            );
        }

        // With "\r\n\r\n" (the exercise client), short lines and long.
        let mut r = srv.raw();
        for (bytes, name) in [(&small, "s2.bin"), (&big, "b2.bin")] {
            let b64 = fsbench::protocol::base64::encode(bytes);
            let n = b64.len();
            r.send(format!("UPLOAD {name} {n} {b64}\r\n\r\n").as_bytes());
            assert_eq!(r.reply_json()["data"]["file_path"], name, "{mode}");
            assert!(std::fs::read(srv.root.join(name)).unwrap() == *bytes);
            for wrong in [n + 1, n - 1] {
                r.send(format!("UPLOAD w.bin {wrong} {b64}\r\n\r\n").as_bytes());
                let v = r.reply_json();
                assert_eq!(
                    assert_error(&v, format!("{mode}: {n} as {wrong}")),
                    "length mismatch"
                );
                assert!(!srv.root.join("w.bin").exists());
            }
        }
        // The connection is still in step.
        let mut names = r.list();
        names.sort();
        assert_eq!(names, ["b.bin", "b2.bin", "s.bin", "s2.bin"], "{mode}");
        assert_eq!(srv.temp_files(), 0, "{mode}: temp file left");
    }
}

#[test]
fn a_delete_or_an_inline_upload_split_by_a_stall_is_refused_and_changes_nothing() {
    for mode in MODES {
        let srv = Server::start(&["--mode", mode, "--pool", "2"]);
        std::fs::write(srv.root.join("victim.txt"), b"still here").unwrap();
        let mut r = srv.raw();
        for (first, rest) in [
            (&b"DELETE "[..], &b"victim.txt"[..]),
            (b"UPLOAD up.bin ", b"QUJD"),
        ] {
            r.send(first);
            std::thread::sleep(STALL);
            // What came first is no whole request: nothing was answered.
            assert!(r.reply_now().is_none(), "{mode}: {first:?} answered");
            let t0 = Instant::now();
            r.send(rest);
            let v = r.reply_json();
            assert_eq!(assert_error(&v, format!("{mode}: {rest:?}")), REFUSED);
            answered_in_time(rest, t0.elapsed());
        }
        assert_eq!(
            std::fs::read(srv.root.join("victim.txt")).unwrap(),
            b"still here"
        );
        assert!(!srv.root.join("up.bin").exists());
        assert_eq!(srv.temp_files(), 0);
        assert_eq!(r.list(), ["victim.txt"], "{mode}: the connection goes on");
        assert_eq!(counters(&srv), (0, 2), "{mode}");
    }
}

#[test]
fn a_request_cut_mid_name_is_answered_for_what_arrived_and_the_connection_goes_on() {
    for mode in MODES {
        let srv = Server::start(&["--mode", mode, "--pool", "2"]);
        std::fs::write(srv.root.join("file_10MB.bin"), b"ten").unwrap();
        let before = crate::common::snapshot(&srv.root);
        let mut r = srv.raw();
        for cmd in ["GET", "DELETE"] {
            r.send(format!("{cmd} file_10").as_bytes());
            std::thread::sleep(STALL);
            let v = r.reply_json();
            assert_eq!(
                assert_error(&v, format!("{mode}: {cmd}")),
                "file not found: file_10"
            );
            // The rest of the name is no request: it waits, unanswered, for its line end.
            r.send(b"MB.bin");
            std::thread::sleep(STALL);
            assert!(r.reply_now().is_none(), "{mode}: \"MB.bin\" answered");
            r.send(b"\n");
            let v = r.reply_json();
            assert_eq!(assert_error(&v, mode), "request tidak dikenali");
            assert_eq!(r.list(), ["file_10MB.bin"], "{mode}: after {cmd}");
        }
        assert_eq!(crate::common::snapshot(&srv.root), before, "{mode}");
        // Two served (the cut GET and DELETE), none refused.
        assert_eq!(counters(&srv), (2, 0), "{mode}");
    }
}

#[test]
fn with_the_wait_off_an_unterminated_request_meets_the_request_timeout() {
    let srv = Server::start(&[
        "--unterminated-wait",
        "0",
        "--request-timeout",
        "1",
        "--pool",
        "1",
    ]);
    let mut r = srv.raw();
    let t0 = Instant::now();
    r.send(b"LIST");
    let rest = r.until_closed();
    let t = t0.elapsed();
    let body = rest
        .strip_suffix(b"\r\n\r\n")
        .expect("one answer, then the close");
    let v = crate::common::json_reply(body);
    assert_eq!(
        assert_error(&v, "LIST"),
        "request line not received in time"
    );
    assert!(t >= Duration::from_millis(900), "closed after {t:?}");
    // A terminated request is served as ever.
    assert_eq!(srv.raw().list(), Vec::<String>::new());
    assert_eq!(counters(&srv), (0, 0));
}

#[test]
fn the_wait_holds_no_worker_and_never_delays_a_request_that_has_its_line_end() {
    for mode in MODES {
        // One worker, and a wait long enough that no loaded machine can blur
        // which request is answered first.
        let srv = Server::start(&["--mode", mode, "--pool", "1", "--unterminated-wait", "2000"]);
        let mut quiet: Vec<Raw> = (0..5).map(|_| srv.raw()).collect();
        for q in &mut quiet {
            q.send(b"LIST");
        }
        // A terminated request, on another connection, is served while all
        // five wait: no worker is held by their wait.
        let mut r = srv.raw();
        assert_eq!(r.list(), Vec::<String>::new(), "{mode}");
        for (i, q) in quiet.iter_mut().enumerate() {
            assert!(
                q.reply_now().is_none(),
                "{mode}: quiet LIST {i} answered before its wait"
            );
        }
        // Then each of them is served once its wait is over.
        for q in &mut quiet {
            assert_eq!(q.reply_json()["data"], serde_json::json!([]), "{mode}");
        }
        assert_eq!(counters(&srv), (5, 0), "{mode}");
    }
}

#[test]
fn requests_after_the_first_on_a_connection_are_judged_by_the_event_loop_too() {
    for mode in MODES {
        let srv = Server::start(&["--mode", mode, "--pool", "2"]);
        std::fs::write(srv.root.join("a.txt"), b"a").unwrap();
        std::fs::write(srv.root.join("b.txt"), b"b").unwrap();
        let mut r = srv.raw();
        assert_eq!(r.list(), ["a.txt", "b.txt"]);
        // After a terminated request, one without its line end.
        r.send(b"GET a.txt");
        assert_eq!(r.reply_json()["data_file"], "YQ==", "{mode}");
        // A worker serves the LIST and leaves the DELETE, which came in the
        // same burst, to the event loop: served.
        r.send(b"LIST\nDELETE a.txt");
        assert_eq!(
            r.reply_json()["data"],
            serde_json::json!(["a.txt", "b.txt"])
        );
        assert_eq!(
            r.reply_json()["message"],
            "File deleted successfully",
            "{mode}"
        );
        assert!(!srv.root.join("a.txt").exists());
        // The same with the DELETE split by a stall: refused.
        r.send(b"LIST\nDELE");
        assert_eq!(r.reply_json()["data"], serde_json::json!(["b.txt"]));
        std::thread::sleep(STALL);
        assert!(r.reply_now().is_none(), "{mode}: \"DELE\" answered");
        r.send(b"TE b.txt");
        assert_eq!(assert_error(&r.reply_json(), mode), REFUSED);
        assert!(
            srv.root.join("b.txt").exists(),
            "{mode}: a split DELETE was acted on"
        );
        // A line end after an answered request is an empty line: ignored.
        r.send(b"\n");
        assert_eq!(r.list(), ["b.txt"], "{mode}");
        assert_eq!(counters(&srv), (2, 1), "{mode}");
    }
}
