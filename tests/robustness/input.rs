//! Cases 1-7 and 19: bad input. Each bad line must get a valid JSON ERROR
//! with a reason, the connection kept or closed as the issue states, and the
//! store and everything beside it left as it was. Case 19 sends requests
//! without a line end: half lines and lines cut in every position.

use std::fs;
use std::io::Write;
use std::os::unix::fs::symlink;
use std::time::Duration;

use fsbench::protocol::base64::{decode, encode};
use fsbench::server::Mode;

use crate::common::{assert_error, content, temp_count, wait_until, Raw, TempDir};
use crate::harness::{bump, peak_kib, ready, ready_wrapped, seed_names, BadInput, Expect, Srv, F};

/// Case 1: Whitespace-only lines, unknown words, a stray ENDUPLOAD: ERROR, kept.
/// Truly empty lines are ignored (PROTOCOL.md): no reply, connection usable.
pub fn case_01(mode: Mode) {
    let (_d, s) = ready("c01", mode, &["--pool", "2"]);
    let mut c = s.raw();
    c.expect_errors(&[
        (&b"   "[..], "empty request"),
        (b"\t", "empty request"),
        (b" \t \r", "empty request"),
        (b"FOO x", "request tidak dikenali"),
        (b"__init__", "request tidak dikenali"),
        (b"ENDUPLOAD", "ENDUPLOAD without an upload"),
        (b"enduPLOAD", "ENDUPLOAD without an upload"),
    ]);
    // Empty lines get no reply: the next reply is LIST's.
    c.send(b"\n\r\n\n\r\n");
    bump(&F.bad_inputs, 4);
    assert_eq!(c.list(), seed_names());
    // A request split by empty lines from the next one, in one write.
    c.send(b"LIST\r\n\r\nLIST\n\n");
    for _ in 0..2 {
        assert_eq!(c.reply_json()["status"], "OK");
    }
    s.probe();
    drop(c);
    s.check(Expect::Unchanged);
}

/// Case 2: Wrong number of arguments: ERROR with the usage, kept.
pub fn case_02(mode: Mode) {
    let (_d, s) = ready("c02", mode, &["--pool", "2"]);
    let mut c = s.raw();
    c.expect_errors(&[
        (&b"GET"[..], "usage: GET <name>"),
        (b"GET   ", "usage: GET <name>"),
        (b"GET a b", "usage: GET <name>"),
        (b"get seed-a.bin seed-a.bin", "usage: GET <name>"),
        (b"DELETE", "usage: DELETE <name>"),
        (b"DELETE a b", "usage: DELETE <name>"),
        (b"LIST x", "usage: LIST"),
        (b"STATS now", "usage: STATS"),
        (b"UPLOAD a b c", "usage: UPLOAD"),
    ]);
    assert_eq!(c.list(), seed_names());
    s.probe();
    drop(c);
    s.check(Expect::Unchanged);
}

/// Case 3: Non-UTF-8, unterminated quotes, control characters: ERROR whose JSON is valid.
pub fn case_03(mode: Mode) {
    let (_d, s) = ready("c03", mode, &["--pool", "2"]);
    let mut c = s.raw();
    c.expect_errors(&[
        (&b"GET \xff\xfe.bin"[..], "not valid UTF-8"),
        (b"DELETE \xc3\x28", "not valid UTF-8"),
        (b"UPLOAD \xed\xa0\x80", "not valid UTF-8"),
        (b"\xff\xfe", "request tidak dikenali"),
        (b"GET \"abc", "unterminated quote"),
        (b"GET \"abc\\", "unterminated quote"),
        (b"GET \"a\\nb\"", "bad escape"),
        (b"GET \"a\"b", "closing quote"),
        (b"GET a\x01b", "control characters"),
        (b"GET \x1b[2J", "control characters"),
        (b"DELETE a\x7fb", "control characters"),
        (b"GET a\x00b", "NUL"),
        (b"UPLOAD a\x08b", "control characters"),
        (b"UPLOAD a\x08b QUJD", "control characters"),
        (b"GET \"\"", "invalid name: empty"),
        // Valid names that do not exist: the reason echoes the name, escaped.
        (
            "GET 日本\u{1F600}.txt".as_bytes(),
            "file not found: 日本\u{1F600}.txt",
        ),
        (b"GET \"q\\\"uote\"", "file not found: q\"uote"),
    ]);
    // A name over 255 bytes.
    let long = format!("GET {}", "n".repeat(300));
    assert!(c.expect_error(long.as_bytes()).contains("at most 255"));
    assert_eq!(c.list(), seed_names());
    s.probe();
    drop(c);
    s.check(Expect::Unchanged);
}

/// Case 4: A line over the limit, and 64 MiB without a newline: ERROR, then close;
/// the server's memory grows by at most twice the line limit.
///
/// The limit is 1 MiB here (`--max-line`): at the default 64 KiB, the peak
/// moves by up to 128 KiB between identical rounds (where the allocator puts
/// the 64 KiB read buffer every request has), as large as the bound itself.
/// One worker, so that the first over-limit line warms the buffers the next
/// use; a fixed mmap threshold, so that big buffers are mapped and unmapped
/// alone; the peak (VmHWM) of each round is compared, after the close.
pub fn case_04(mode: Mode) {
    const LIMIT: usize = 1 << 20;
    let (_d, s) = ready_wrapped(
        "c04",
        mode,
        &["--pool", "1", "--max-line", "1048576"],
        &["env", "MALLOC_MMAP_THRESHOLD_=65536"],
    );
    {
        // Just over the limit, with a newline.
        let mut c = s.raw();
        let mut line = b"GET ".to_vec();
        line.resize(LIMIT + 100, b'a');
        line.push(b'\n');
        c.send(&line);
        bump(&F.bad_inputs, 1);
        let r = assert_error(&c.reply_json(), "the reply");
        assert!(r.contains("longer than 1048576"), "{r}");
        c.expect_closed();
        drop(c);

        // 64 MiB without a newline, three times: the first warms the
        // allocator (its free lists and mmap threshold), the others are measured.
        let mut growth = 0;
        let mut sent = 0;
        let idle_fds = s.baseline_fds();
        for round in 0..3 {
            // The previous connection is closed (its worker done lingering).
            wait_until(
                "the server closed the connection",
                Duration::from_secs(10),
                || s.fds() == idle_fds,
            );
            let peak_before = peak_kib(&s);
            let before = s.rss_kib();
            sent = flood_without_newline(&s);
            wait_until(
                "the server closed the connection",
                Duration::from_secs(10),
                || s.fds() == idle_fds,
            );
            let g =
                (peak_kib(&s).saturating_sub(peak_before)).max(s.rss_kib().saturating_sub(before));
            if std::env::var_os("ROBUSTNESS_DEBUG").is_some() {
                println!(
                    "round {round}: peak +{g} KiB, rss {} KiB, peak {} KiB",
                    s.rss_kib(),
                    peak_kib(&s)
                );
            }
            if round > 0 {
                growth = growth.max(g);
            }
        }
        // Probed after the rounds, not during: a probe's buffers would blur the measure.
        s.probe();
        println!(
            "       case 4: {} KiB sent before the close; server memory grew by {growth} KiB (bound {} KiB)",
            sent / 1024,
            2 * LIMIT / 1024
        );
        assert!(
            growth as usize * 1024 <= 2 * LIMIT,
            "memory grew by {growth} KiB"
        );
    }
    s.check(Expect::Unchanged);
}

/// Sends 64 MiB without a newline while reading the reply: ERROR, then close.
/// Returns how many bytes went out before the server closed.
fn flood_without_newline(s: &Srv) -> usize {
    let mut c = s.raw();
    let mut w = c.s.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![b'A'; 64 * 1024];
        let mut sent = 0usize;
        while sent < 64 << 20 {
            if w.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    bump(&F.bad_inputs, 1);
    let r = assert_error(&c.reply_json(), "the reply");
    assert!(r.contains("longer than 1048576"), "{r}");
    c.expect_closed();
    drop(c);
    sender.join().unwrap()
}

/// Case 5: Bad upload bodies: ERROR, nothing stored, no temp file.
pub fn case_05(mode: Mode) {
    let flags = [
        "--pool",
        "2",
        "--max-upload",
        "65536",
        "--max-upload-line",
        "4096",
    ];
    let d = TempDir::new("c05");
    let mut s = Srv::start(d.path(), mode, &flags);
    s.seed_direct();
    s.baseline();
    let mut c = s.raw();
    let good = encode(&content(5, 3000));
    let bodies: Vec<(Vec<u8>, &str)> = vec![
        (b"QUJD!!!!\n".to_vec(), "not in the alphabet"),
        (
            format!("{good}\nQUJD QUJD\n").into_bytes(),
            "not in the alphabet",
        ),
        ("QUJD\u{e9}===\n".as_bytes().to_vec(), "not in the alphabet"),
        (b"A===\n".to_vec(), "bad padding"),
        (b"====\n".to_vec(), "bad padding"),
        (b"QR==\n".to_vec(), "bad padding"),
        (b"QQ==QUJD\n".to_vec(), "padding in the middle"),
        (
            format!("{good}\nQQ=A\n").into_bytes(),
            "padding in the middle",
        ),
        (b"QUJDRA\n".to_vec(), "not a multiple of 4"),
        // 99 000 bytes in lines of 3 000: over the 65 536-byte upload limit.
        (
            format!("{good}\n").repeat(33).into_bytes(),
            "larger than the limit",
        ),
    ];
    for (i, (body, want)) in bodies.iter().enumerate() {
        let name = format!("bad-{i}.bin");
        c.begin_upload(format!("UPLOAD {name}").as_bytes());
        assert_eq!(temp_count(&s.root), 1, "the upload has its temp file");
        c.send(body);
        c.send(b"ENDUPLOAD\n");
        bump(&F.bad_inputs, 1);
        let r = assert_error(&c.reply_json(), "the reply");
        assert!(r.contains(want), "body {i}: {r}");
        assert_eq!(temp_count(&s.root), 0, "temp file left after body {i}");
        assert!(!s.root.join(&name).exists());
    }
    // A plain UPLOAD (stored under its hash) with a bad body.
    c.begin_upload(b"UPLOAD");
    c.send(b"QUJD\nQU*D\nENDUPLOAD\n");
    bump(&F.bad_inputs, 1);
    assert!(assert_error(&c.reply_json(), "the reply").contains("not in the alphabet"));
    // Inline uploads with bad base64.
    for (line, want) in [
        (&b"UPLOAD in.bin QUJD!"[..], "not in the alphabet"),
        (b"UPLOAD in.bin A===", "bad padding"),
        (b"UPLOAD in.bin QQ==QUJD", "padding in the middle"),
        (b"UPLOAD in.bin QUJDR", "not a multiple of 4"),
    ] {
        assert!(c.expect_error(line).contains(want), "{line:?}");
        assert_eq!(temp_count(&s.root), 0);
    }
    assert_eq!(c.list(), seed_names());
    drop(c);

    // A body line over the line limit: ERROR, then close.
    let mut c = s.raw();
    c.begin_upload(b"UPLOAD long.bin");
    let long = encode(&content(6, 6000)); // 8000 base64 bytes > 4096
    c.send(format!("{good}\n{long}\nENDUPLOAD\n").as_bytes());
    bump(&F.bad_inputs, 1);
    let r = assert_error(&c.reply_json(), "the reply");
    assert!(r.contains("upload line longer than 4096"), "{r}");
    c.expect_closed();
    assert_eq!(temp_count(&s.root), 0);

    // An inline upload over the upload limit (its line is longer than the
    // limit's encoding): ERROR, then close.
    let mut c = s.raw();
    let big = encode(&content(7, 70_000));
    c.send(format!("UPLOAD inbig.bin {big}\n").as_bytes());
    bump(&F.bad_inputs, 1);
    let r = assert_error(&c.reply_json(), "the reply");
    assert!(r.contains("upload line too long"), "{r}");
    c.expect_closed();
    assert_eq!(temp_count(&s.root), 0);
    s.probe();
    s.check(Expect::Unchanged);
}

/// Case 6: Names that point outside the store: ERROR before anything is opened.
pub fn case_06(mode: Mode) {
    let (_d, s) = ready("c06", mode, &["--pool", "2"]);
    let mut c = s.raw();
    let canary = s.dir.join("canary").to_string_lossy().into_owned();
    let lines: Vec<Vec<u8>> = vec![
        b"GET ../x".to_vec(),
        b"DELETE ../canary".to_vec(),
        b"DELETE ../canary/canary.txt".to_vec(),
        b"DELETE ../x".to_vec(),
        b"GET /etc/hostname".to_vec(),
        b"GET /dev/zero".to_vec(),
        b"GET ..\\x".to_vec(),
        b"GET \"..\\\\x\"".to_vec(),
        b"GET ..".to_vec(),
        b"GET .".to_vec(),
        b"DELETE ..".to_vec(),
        b"GET .tmp".to_vec(),
        b"DELETE .tmp".to_vec(),
        format!("GET {canary}/canary.txt").into_bytes(),
        format!("DELETE {canary}/secret.bin").into_bytes(),
        b"UPLOAD ../evil.bin".to_vec(),
        b"UPLOAD ../evil.bin QUJD".to_vec(),
        b"UPLOAD /tmp/evil.bin QUJD".to_vec(),
    ];
    for line in &lines {
        let r = c.expect_error(line);
        assert!(
            r.contains("invalid name"),
            "{:?}: {r}",
            String::from_utf8_lossy(line)
        );
    }
    assert!(!s.dir.join("evil.bin").exists());
    assert_eq!(temp_count(&s.root), 0);
    assert_eq!(c.list(), seed_names());
    s.probe();
    drop(c);
    s.check(Expect::Unchanged);
}

/// Case 7: Symbolic links planted in the store: GET refuses, DELETE removes the
/// link only. A FIFO or a folder under a valid name: ERROR, no hang.
pub fn case_07(mode: Mode) {
    let (_d, s) = ready("c07", mode, &["--pool", "2"]);
    let root = s.root.clone();
    let canary_file = s.dir.join("canary").join("canary.txt");
    symlink("../canary/canary.txt", root.join("rel-link.txt")).unwrap();
    symlink(&canary_file, root.join("abs-link.txt")).unwrap();
    symlink(s.dir.join("canary"), root.join("dir-link")).unwrap();
    std::process::Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(root.join("fifo").exists(), "mkfifo failed");
    fs::create_dir(root.join("folder")).unwrap();
    fs::write(root.join("folder").join("inside.txt"), b"inside").unwrap();
    bump(&F.faults, 5);

    let mut c = s.raw();
    // LIST shows regular files only.
    assert_eq!(c.list(), seed_names());
    for line in [
        &b"GET rel-link.txt"[..],
        b"GET abs-link.txt",
        b"GET dir-link",
        b"GET fifo",
        b"GET folder",
        b"DELETE fifo",
        b"DELETE folder",
    ] {
        let r = c.expect_error(line);
        assert!(r.contains("not a regular file"), "{line:?}: {r}");
    }
    // A streamed upload under a folder's name: refused at the commit, no temp left.
    c.begin_upload(b"UPLOAD folder");
    c.send(b"QUJD\nENDUPLOAD\n");
    bump(&F.bad_inputs, 1);
    assert!(assert_error(&c.reply_json(), "the reply").contains("not a regular file"));
    assert_eq!(temp_count(&root), 0);
    // DELETE of a link removes the link, never its target.
    assert_eq!(c.json(b"DELETE rel-link.txt")["status"], "OK");
    assert!(fs::symlink_metadata(root.join("rel-link.txt")).is_err());
    assert_eq!(c.json(b"DELETE dir-link")["status"], "OK");
    assert!(fs::symlink_metadata(root.join("dir-link")).is_err());
    // UPLOAD under a link's name replaces the link, never writes through it.
    assert_eq!(c.json(b"UPLOAD abs-link.txt bmV3")["status"], "OK");
    let m = fs::symlink_metadata(root.join("abs-link.txt")).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(fs::read(root.join("abs-link.txt")).unwrap(), b"new");
    // The FIFO and the folder are still there, untouched.
    assert!(fs::symlink_metadata(root.join("fifo")).is_ok());
    assert_eq!(
        fs::read(root.join("folder").join("inside.txt")).unwrap(),
        b"inside"
    );
    let mut want = seed_names();
    want.push("abs-link.txt".into());
    want.sort();
    assert_eq!(c.list(), want);
    s.probe();
    drop(c);
    // Remove what was planted (a FIFO cannot be snapshot) and what was written.
    fs::remove_file(root.join("fifo")).unwrap();
    fs::remove_dir_all(root.join("folder")).unwrap();
    fs::remove_file(root.join("abs-link.txt")).unwrap();
    s.check(Expect::Unchanged);
}

/// A stall longer than the server's unterminated wait (100 ms), made on purpose.
const STALL: Duration = Duration::from_millis(300);

/// The ERROR of a request that changes the store, split by a stall.
const REFUSED: &str = "unterminated request: end it with \\n";

/// The server's count of refused unterminated requests (0 if it has none: the
/// case then fails on what it counts, not on the missing field).
fn refused_count(s: &Srv) -> u64 {
    let v = s.raw().json(b"STATS");
    v["data"]["unterminated_refused"].as_u64().unwrap_or(0)
}

/// Case 19: Requests without a line end. Half lines left quiet past the
/// unterminated wait are not answered, and once ended get the ERROR of the
/// line they are. Lines cut in every position, with a stall past the wait
/// after each part: a split DELETE or inline UPLOAD is refused (counted in
/// STATS), a part that is a whole request is answered for what it names,
/// nothing is acted on that the client did not send whole, every reply is
/// valid JSON and the connection stays in step.
pub fn case_19(mode: Mode) {
    let (_d, s) = ready("c19", mode, &["--pool", "2"]);
    // Half lines, each on its own connection, all quiet at once.
    let halves: [(&[u8], &str); 11] = [
        (b"GE", "request tidak dikenali"),
        (b"GET", "usage: GET <name>"),
        (b"GET ", "usage: GET <name>"),
        (b"GET \"seed", "unterminated quote"),
        (b"DEL", "request tidak dikenali"),
        (b"DELETE", "usage: DELETE <name>"),
        (b"DELETE ", "usage: DELETE <name>"),
        (b"ENDUPL", "request tidak dikenali"),
        (b"LIST x", "usage: LIST"),
        (b"GET a b", "usage: GET <name>"),
        (b"\t", "empty request"),
    ];
    let mut conns: Vec<Raw> = halves.iter().map(|_| s.raw()).collect();
    for (c, (half, _)) in conns.iter_mut().zip(&halves) {
        c.send(half);
    }
    std::thread::sleep(STALL);
    for (c, (half, want)) in conns.iter_mut().zip(&halves) {
        bump(&F.bad_inputs, 1);
        assert!(c.reply_now().is_none(), "{half:?} answered unended");
        c.send(b"\n");
        let r = assert_error(&c.reply_json(), String::from_utf8_lossy(half));
        assert!(r.contains(want), "{half:?}: {r}");
        assert_eq!(c.list(), seed_names());
    }
    drop(conns);

    // Lines cut in every position: the first part, a stall, the rest (still
    // unended), a stall, then a line end and a marker request. Each cut on its
    // own connection, all at once. `whole_from`: the shortest first part that
    // is itself a complete request (answered as one).
    let lines: [(&[u8], usize); 5] = [
        (b"DELETE seed-a.bin", 8),
        (b"UPLOAD new.bin QUJD", 16),
        (b"GET Photo.JPG", 5),
        (b"LIST", 5),
        (b"STATS", 6),
    ];
    let refused_before = refused_count(&s);
    let mut cuts: Vec<(&[u8], usize, Raw)> = Vec::new();
    for (line, _) in lines {
        for k in 1..line.len() {
            cuts.push((line, k, s.raw()));
        }
    }
    for (line, k, c) in &mut cuts {
        c.send(&line[..*k]);
    }
    std::thread::sleep(STALL);
    for (line, k, c) in &mut cuts {
        c.send(&line[*k..]);
    }
    std::thread::sleep(STALL);
    let photo = content(3, 3000);
    let mut refused = 0;
    for (line, k, c) in &mut cuts {
        bump(&F.bad_inputs, 1);
        let what = format!(
            "{:?} cut after {k}",
            String::from_utf8_lossy(line).into_owned()
        );
        c.send(b"\nGET marker\n");
        let mut replies = Vec::new();
        loop {
            let v = c.reply_json();
            if v["data"] == "file not found: marker" {
                break;
            }
            replies.push(v);
        }
        // The first part answered (it is whole) then the rest, ended, as a
        // line of its own; or the whole line answered once.
        let whole_from = lines.iter().find(|l| l.0 == *line).unwrap().1;
        let want = if *k >= whole_from { 2 } else { 1 };
        assert_eq!(replies.len(), want, "{what}: {replies:?}");
        for v in &replies {
            if v["status"] == "ERROR" {
                if v["data"] == REFUSED {
                    refused += 1;
                }
                continue;
            }
            // Only what reads nothing it should not may succeed, and only whole.
            match &line[..3] {
                b"GET" => {
                    assert_eq!(v["data_namafile"], "Photo.JPG", "{what}");
                    let got = decode(v["data_file"].as_str().unwrap().as_bytes()).unwrap();
                    assert!(got == photo, "{what}: other content");
                }
                b"LIS" => assert_eq!(v["data"], serde_json::json!(seed_names()), "{what}"),
                b"STA" => assert_eq!(v["data"]["mode"], mode.name(), "{what}"),
                _ => panic!("{what}: {v}"),
            }
        }
    }
    drop(cuts);
    // Every cut of the DELETE and the UPLOAD before their first whole part
    // (7 and 15) was refused, and counted so.
    assert_eq!(refused, 7 + 15, "refusals");
    assert_eq!(
        refused_count(&s) - refused_before,
        22,
        "STATS unterminated_refused"
    );
    assert_eq!(temp_count(&s.root), 0);
    s.probe();
    s.check(Expect::Unchanged);
}
