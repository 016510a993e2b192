//! The file server in thread mode and the client, end to end over loopback:
//! the built binary on 127.0.0.1 port 0 (see `common::Server`), one module per
//! topic of issue 2's "Tests that must exist".
//!
//! Nothing here sleeps to synchronise: a test waits for a condition it can
//! observe (a response, a refused connect, a counter in STATS, /proc) under a
//! bounded deadline. Big transfers are generated and checked as they stream;
//! the test never holds a large file either.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{
    self, assert_error, content, json_reply, sha_hex, wait_until, Content, HashSink, Raw, Server, T,
};
use fsbench::load::content::sha256_of;

fn b64(data: &[u8]) -> String {
    fsbench::protocol::base64::encode(data)
}

/// A name as a quoted token, written here rather than with the library's
/// `quote_arg`, so the server's parser is checked against an independent encoder.
fn q(name: &str) -> String {
    let mut s = String::from("\"");
    for c in name.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// The STATS `tasks_failed` counter, read over `raw`.
fn tasks_failed(raw: &mut Raw) -> u64 {
    let v = raw.json(b"STATS");
    v["data"]["tasks_failed"].as_u64().expect("tasks_failed")
}

mod happy_path {
    use super::*;

    #[test]
    fn every_request_of_the_protocol() {
        let mut srv = Server::start(&["--pool", "2"]);
        let mut r = srv.raw();

        // LIST of an empty store.
        assert_eq!(r.request(b"LIST"), br#"{"status": "OK", "data": []}"#);

        // Streamed UPLOAD <name>: READY, base64 lines, ENDUPLOAD.
        let data = content(1, 300_001);
        r.begin_upload(b"UPLOAD named.bin");
        for part in data.chunks(3 * 40_000) {
            r.send(format!("{}\n", b64(part)).as_bytes());
        }
        r.send(b"ENDUPLOAD\n");
        let up = r.reply();
        assert_eq!(
            String::from_utf8_lossy(&up),
            r#"{"status": "OK", "message": "File uploaded successfully", "data": {"file_path": "named.bin"}}"#
        );
        assert_eq!(std::fs::read(srv.root.join("named.bin")).unwrap(), data);

        // Plain UPLOAD: stored under the content's SHA-256.
        r.begin_upload(b"UPLOAD");
        r.send(format!("{}\nENDUPLOAD\n", b64(&data)).as_bytes());
        let plain = r.reply_json();
        assert_eq!(plain["status"], "OK");
        assert_eq!(plain["data"]["file_path"], sha_hex(&data));

        // Inline UPLOAD <name> <base64>.
        let inline = r.json(format!("UPLOAD small.txt {}", b64(b"hello")).as_bytes());
        assert_eq!(inline["data"]["file_path"], "small.txt");
        assert_eq!(std::fs::read(srv.root.join("small.txt")).unwrap(), b"hello");

        // GET: keys in the protocol's order, content decoded equal.
        let got = r.request(b"GET named.bin");
        let text = String::from_utf8(got.clone()).unwrap();
        let (s, n, f) = (
            text.find("\"status\"").unwrap(),
            text.find("\"data_namafile\"").unwrap(),
            text.find("\"data_file\"").unwrap(),
        );
        assert!(s < n && n < f, "key order: {}", &text[..100]);
        let v = json_reply(&got);
        assert_eq!(v["status"], "OK");
        assert_eq!(v["data_namafile"], "named.bin");
        let content =
            fsbench::protocol::base64::decode(v["data_file"].as_str().unwrap().as_bytes());
        assert_eq!(content.unwrap(), data);
        let v = r.json(b"GET small.txt");
        assert_eq!(v["data_file"], "aGVsbG8=");

        // LIST: sorted names.
        let mut names = vec![sha_hex(&data), "named.bin".into(), "small.txt".to_string()];
        names.sort();
        assert_eq!(r.json(b"LIST")["data"], serde_json::json!(names));

        // DELETE.
        assert_eq!(
            r.request(b"DELETE small.txt"),
            br#"{"status": "OK", "message": "File deleted successfully"}"#
        );
        assert!(!srv.root.join("small.txt").exists());
        assert_error(&r.json(b"GET small.txt"), "GET after DELETE");
        assert_error(&r.json(b"DELETE small.txt"), "DELETE twice");

        // STATS: the fields PROTOCOL.md promises.
        let st = r.json(b"STATS");
        assert_eq!(st["status"], "OK");
        let d = &st["data"];
        assert_eq!(d["mode"], "thread");
        assert_eq!(d["pool"], 2);
        for k in [
            "tasks_ok",
            "tasks_failed",
            "bytes_in",
            "bytes_out",
            "workers_restarted",
        ] {
            assert!(d[k].is_u64(), "STATS without {k}: {d}");
        }
        let workers = d["workers"].as_array().unwrap();
        assert_eq!(workers.len(), 2);
        for (i, w) in workers.iter().enumerate() {
            assert_eq!(w["id"], i as u64);
            assert_eq!(w["pid"], srv.pid());
            assert!(w["tasks_ok"].is_u64() && w["tasks_failed"].is_u64(), "{w}");
        }
        assert!(r.finish().is_empty());
        // The counters count the transfers above (two uploads of 400 KB of
        // base64 in, a GET of as much out) and the ERRORs; a task is counted
        // when its worker hands it back, which may be just after its last byte.
        let mut stats = srv.raw();
        wait_until("STATS to count the transfers", T, || {
            let d = stats.json(b"STATS")["data"].clone();
            let n = |k: &str| d[k].as_u64().unwrap();
            n("bytes_in") > 2 * 400_000 && n("bytes_out") > 400_000 && n("tasks_failed") >= 1
        });
        drop(stats);
        assert!(srv.stop(T).success());
    }

    /// The first end-to-end check (once `tests/smoke.rs`): every request
    /// through the client library.
    #[test]
    fn every_request_on_its_happy_path() {
        let mut srv = Server::start(&["--pool", "2"]);
        let mut c = srv.client();
        assert_eq!(c.list().unwrap(), Vec::<String>::new());
        let data = content(1, 300_000);
        let up = c.upload(Some("Photo.JPG"), &mut &data[..]).unwrap();
        assert_eq!(up.name, "Photo.JPG");
        let plain = c.upload(None, &mut &data[..]).unwrap();
        assert_eq!(plain.name, up.sha256);
        c.upload_inline("small.txt", b"hello").unwrap();
        let mut got = Vec::new();
        let d = c.get("Photo.JPG", &mut got).unwrap();
        assert_eq!(got, data);
        assert_eq!(d.sha256, up.sha256);
        let mut names = vec![
            "Photo.JPG".to_string(),
            "small.txt".into(),
            up.sha256.clone(),
        ];
        names.sort();
        assert_eq!(c.list().unwrap(), names);
        c.delete("small.txt").unwrap();
        let stats = c.stats().unwrap();
        assert_eq!(stats["mode"], "thread");
        assert_eq!(stats["pool"], 2);
        assert_eq!(stats["workers"].as_array().unwrap().len(), 2);
        drop(c);
        assert!(srv.stop(T).success());
    }

    #[test]
    fn commands_are_case_insensitive_and_arguments_keep_their_case() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        let up = r.json(format!("Upload Photo.JPG {}", b64(b"upper")).as_bytes());
        assert_eq!(up["data"]["file_path"], "Photo.JPG");
        r.begin_upload(b"upload photo.jpg");
        r.send(format!("{}\nENDUPLOAD\n", b64(b"lower")).as_bytes());
        assert_eq!(r.reply_json()["data"]["file_path"], "photo.jpg");
        assert_eq!(
            r.json(b"list")["data"],
            serde_json::json!(["Photo.JPG", "photo.jpg"])
        );
        assert_eq!(r.json(b"List")["status"], "OK");
        assert_eq!(r.json(b"get Photo.JPG")["data_file"], b64(b"upper"));
        assert_eq!(r.json(b"GeT photo.jpg")["data_file"], b64(b"lower"));
        assert_error(&r.json(b"GET PHOTO.JPG"), "GET with another case");
        assert_eq!(r.json(b"stats")["data"]["mode"], "thread");
        assert_eq!(r.json(b"dElEtE Photo.JPG")["status"], "OK");
        assert_eq!(r.json(b"LIST")["data"], serde_json::json!(["photo.jpg"]));
    }

    #[test]
    fn quoted_names_with_spaces_and_escapes() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        let name = "my \"best\"  file .txt";
        r.begin_upload(format!("UPLOAD {}", q(name)).as_bytes());
        r.send(format!("{}\nENDUPLOAD\n", b64(b"quoted")).as_bytes());
        assert_eq!(r.reply_json()["data"]["file_path"], name);
        assert_eq!(std::fs::read(srv.root.join(name)).unwrap(), b"quoted");
        let inline = r.json(format!("UPLOAD\t\"two words.txt\"\t{}", b64(b"tabs")).as_bytes());
        assert_eq!(inline["data"]["file_path"], "two words.txt");
        assert_eq!(
            r.json(b"LIST")["data"],
            serde_json::json!([name, "two words.txt"])
        );
        let v = r.json(format!("GET {}", q(name)).as_bytes());
        assert_eq!(v["data_namafile"], name);
        assert_eq!(v["data_file"], b64(b"quoted"));
        assert_eq!(r.json(b"GET \"two words.txt\"")["data_file"], b64(b"tabs"));
        // Unquoted, the same words are two arguments: a usage error, not a lookup.
        assert_error(&r.json(b"GET two words.txt"), "unquoted spaces");
        assert_eq!(
            r.json(format!("DELETE {}", q(name)).as_bytes())["status"],
            "OK"
        );
        assert_eq!(
            r.json(b"LIST")["data"],
            serde_json::json!(["two words.txt"])
        );
    }

    #[test]
    fn several_requests_on_one_connection_even_in_one_write() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        // Five requests in one write, answered in order.
        r.send(
            format!(
                "LIST\nUPLOAD p.txt {}\nGET p.txt\nDELETE p.txt\nLIST\n",
                b64(b"pipelined")
            )
            .as_bytes(),
        );
        assert_eq!(r.reply_json()["data"], serde_json::json!([]));
        assert_eq!(r.reply_json()["data"]["file_path"], "p.txt");
        assert_eq!(r.reply_json()["data_file"], b64(b"pipelined"));
        assert_eq!(r.reply_json()["message"], "File deleted successfully");
        assert_eq!(r.reply_json()["data"], serde_json::json!([]));
        // Then one at a time, with streamed transfers in between.
        let mut c = srv.client();
        for i in 0..5u64 {
            let data = content(i, 100_000 + i as usize);
            let up = c.upload(None, &mut &data[..]).unwrap();
            let mut got = Vec::new();
            c.get(&up.name, &mut got).unwrap();
            assert_eq!(got, data);
        }
        assert_eq!(c.list().unwrap().len(), 5);
        assert!(r.finish().is_empty(), "nothing after the five answers");
    }

    #[test]
    fn list_crlf_crlf_is_answered_once() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        r.send(b"LIST\r\n\r\n");
        assert_eq!(r.reply_json()["data"], serde_json::json!([]));
        // The next answer is the next request's, not a second LIST.
        r.send(b"STATS\r\n\r\n");
        assert_eq!(r.reply_json()["data"]["mode"], "thread");
        assert!(r.finish().is_empty(), "an empty line was answered");
    }

    #[test]
    fn a_request_followed_by_a_half_close_is_answered() {
        // `printf 'LIST\n' | nc -N`: the request and the FIN may reach the
        // event loop in one read; the request must still be served.
        let srv = Server::start(&["--pool", "1"]);
        for i in 0..20 {
            let mut r = srv.raw();
            r.send(b"LIST\n");
            let rest = r.finish();
            assert_eq!(
                rest, b"{\"status\": \"OK\", \"data\": []}\r\n\r\n",
                "attempt {i}"
            );
        }
    }

    #[test]
    fn bytes_in_counts_the_request_lines_the_event_loop_read() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        assert_eq!(r.json(b"LIST")["status"], "OK");
        let mut d = serde_json::Value::Null;
        wait_until("the LIST task to be recorded", T, || {
            d = r.json(b"STATS")["data"].clone();
            d["requests"].as_u64().unwrap() >= 1
        });
        // The only connection: "LIST\n", then "STATS\n"s; tasks are recorded whole.
        let n = d["requests"].as_u64().unwrap();
        assert_eq!(d["bytes_in"].as_u64().unwrap(), 5 + 6 * (n - 1), "{d}");
    }

    /// Starts the server without the two capabilities that let root read
    /// what permission bits forbid, so that a store without permissions is
    /// unreadable to it even when the tests run as root. (Not root: the
    /// bounding set cannot be changed, and the bits stop the server anyway.)
    fn without_dac_override(cmd: &mut std::process::Command) {
        use std::os::unix::process::CommandExt;
        const CAP_DAC_OVERRIDE: libc::c_ulong = 1;
        const CAP_DAC_READ_SEARCH: libc::c_ulong = 2;
        // SAFETY: prctl is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(|| {
                for cap in [CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH] {
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) == -1 {
                        let e = io::Error::last_os_error();
                        if e.raw_os_error() != Some(libc::EPERM) {
                            return Err(e);
                        }
                    }
                }
                Ok(())
            });
        }
    }

    #[test]
    fn a_store_that_cannot_be_read_gets_an_error_not_a_silent_close() {
        use std::os::unix::fs::PermissionsExt;
        let mut srv = Server::start_with(
            common::TempDir::new("unreadable"),
            &["--pool", "1"],
            without_dac_override,
        );
        let set_mode = |mode: u32| {
            std::fs::set_permissions(&srv.root, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let mut r = srv.raw();
        assert_eq!(r.json(b"UPLOAD a.txt aGVsbG8=")["status"], "OK");
        assert_eq!(r.json(b"GET a.txt")["data_file"], "aGVsbG8=");

        // Unreadable: a.txt is there, the server may not look into the store.
        set_mode(0o000);
        let why = assert_error(&r.json(b"LIST"), "LIST of an unreadable store");
        assert!(
            why.starts_with("cannot list the store") && why.contains("Permission denied"),
            "{why}"
        );
        let why = assert_error(&r.json(b"GET a.txt"), "GET from an unreadable store");
        assert!(
            why.contains("a.txt") && why.contains("Permission denied"),
            "the GET must fail for the permissions, not as a missing file: {why}"
        );
        // Readable again, the same file is served: it was the permissions.
        set_mode(0o755);
        assert_eq!(r.json(b"GET a.txt")["data_file"], "aGVsbG8=");

        // Gone: the store folder removed under the server.
        std::fs::remove_dir_all(&srv.root).unwrap();
        let why = assert_error(&r.json(b"LIST"), "LIST of a store that is gone");
        assert!(why.starts_with("cannot list the store"), "{why}");
        let why = assert_error(&r.json(b"GET a.txt"), "GET from a store that is gone");
        assert_eq!(why, "file not found: a.txt");
        drop(r);
        assert!(srv.stop(T).success(), "{}", srv.log_text());
    }

    #[test]
    fn an_unknown_command_gets_the_old_servers_words() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        for line in [&b"FOO"[..], b"HELLO world", b"__init__", b"LISTX"] {
            assert_eq!(
                r.request(line),
                br#"{"status": "ERROR", "data": "request tidak dikenali"}"#,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        // A recoverable error: the connection goes on.
        assert_eq!(r.json(b"LIST")["status"], "OK");
    }

    #[test]
    fn json_is_ascii_only_for_a_non_ascii_name() {
        let srv = Server::start(&["--pool", "1"]);
        let name = "Fotoğraf 日本 😀.txt";
        let mut r = srv.raw();
        let up = r.request(format!("UPLOAD {} {}", q(name), b64(b"unicode")).as_bytes());
        let list = r.request(b"LIST");
        let get = r.request(format!("GET {}", q(name)).as_bytes());
        let missing = r.request("GET \"ñope.txt\"".as_bytes());
        for (what, body) in [
            ("UPLOAD", &up),
            ("LIST", &list),
            ("GET", &get),
            ("ERROR", &missing),
        ] {
            assert!(
                body.is_ascii(),
                "{what} answer not ASCII: {:?}",
                String::from_utf8_lossy(body)
            );
        }
        // Written as \uXXXX escapes (a surrogate pair for the emoji), as json.dumps does.
        let l = String::from_utf8(list.clone())
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            l.contains(r"\u011f") && l.contains(r"\u65e5") && l.contains(r"\ud83d\ude00"),
            "{l}"
        );
        assert_eq!(json_reply(&up)["data"]["file_path"], name);
        assert_eq!(json_reply(&list)["data"], serde_json::json!([name]));
        assert_eq!(json_reply(&get)["data_namafile"], name);
        assert_eq!(json_reply(&get)["data_file"], b64(b"unicode"));
        assert_error(&json_reply(&missing), "GET of a missing non-ASCII name");
        assert_eq!(std::fs::read(srv.root.join(name)).unwrap(), b"unicode");
    }
}

mod bounded_memory {
    use super::*;
    use fsbench::client::Client;
    use std::sync::mpsc;

    const SIZE: u64 = 200 * 1000 * 1000;
    const LIMIT_KIB: u64 = 64 * 1024;

    /// Samples a process's VmRSS from /proc in a thread until told to stop;
    /// returns (highest sample in KiB, number of samples).
    struct Sampler {
        stop: mpsc::Sender<()>,
        handle: std::thread::JoinHandle<(u64, u64)>,
    }

    impl Sampler {
        fn start(pid: u32) -> Sampler {
            let (stop, rx) = mpsc::channel();
            let handle = std::thread::spawn(move || {
                let (mut peak, mut n) = (0, 0);
                loop {
                    peak = peak.max(common::rss_kib(pid));
                    n += 1;
                    // The stop message, or the next sample in 2 ms.
                    match rx.recv_timeout(Duration::from_millis(2)) {
                        Err(mpsc::RecvTimeoutError::Timeout) => {}
                        _ => return (peak, n),
                    }
                }
            });
            Sampler { stop, handle }
        }

        fn finish(self) -> (u64, u64) {
            let _ = self.stop.send(());
            self.handle.join().unwrap()
        }
    }

    #[test]
    fn get_and_upload_of_200_mb_keep_the_server_under_64_mb() {
        let srv = Server::start(&["--pool", "2"]);
        let pid = srv.pid();
        let idle = srv.rss_kib();
        let want = sha256_of(7, SIZE);
        let mut c = Client::connect(srv.addr, T).unwrap();

        let sampler = Sampler::start(pid);
        let up = c
            .upload(None, &mut Content::new(7, SIZE))
            .expect("200 MB upload");
        let (up_peak, up_samples) = sampler.finish();
        assert_eq!((up.bytes, up.sha256.as_str()), (SIZE, want.as_str()));
        // The server named it by the SHA-256 it computed: it received every byte.
        assert!(up.name.starts_with(&want), "{}", up.name);
        assert_eq!(
            std::fs::metadata(srv.root.join(&up.name)).unwrap().len(),
            SIZE
        );

        let sampler = Sampler::start(pid);
        let mut sink = HashSink::default();
        let down = c.get(&up.name, &mut sink).expect("200 MB get");
        let (get_peak, get_samples) = sampler.finish();
        assert_eq!(sink.n, SIZE);
        assert_eq!(down.bytes, SIZE);
        assert_eq!(sink.hex(), want);

        let hwm = common::peak_rss_kib(pid);
        eprintln!(
            "server RSS: idle {idle} KiB; upload peak {up_peak} KiB ({up_samples} samples); \
             get peak {get_peak} KiB ({get_samples} samples); VmHWM {hwm} KiB"
        );
        assert!(
            up_samples >= 10 && get_samples >= 10,
            "too few samples to mean anything"
        );
        assert!(
            up_peak < LIMIT_KIB,
            "upload: server RSS reached {up_peak} KiB"
        );
        assert!(
            get_peak < LIMIT_KIB,
            "get: server RSS reached {get_peak} KiB"
        );
        // The kernel's own high-water mark covers what sampling could miss.
        assert!(hwm < LIMIT_KIB, "server peak RSS (VmHWM) {hwm} KiB");
    }
}

mod concurrency {
    use super::*;
    use crate::common::Gate;
    use fsbench::client::Client;

    #[test]
    fn fifty_concurrent_verified_gets_against_pool_5() {
        let srv = Server::start(&["--pool", "5"]);
        let data = content(50, 10 * 1000 * 1000);
        let want = sha_hex(&data);
        srv.client()
            .upload(Some("ten.bin"), &mut &data[..])
            .unwrap();
        drop(data);
        let start = Gate::new(50);
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (addr, start) = (srv.addr, start.clone());
                std::thread::spawn(move || {
                    let c = Client::connect(addr, Duration::from_secs(60));
                    // Every thread reaches the gate, even one that failed to connect.
                    start.wait();
                    let mut c = c.map_err(|e| format!("client {i}: {e}"))?;
                    let mut sink = HashSink::default();
                    let d = c
                        .get("ten.bin", &mut sink)
                        .map_err(|e| format!("client {i}: {e}"))?;
                    Ok::<_, String>((d.bytes, sink.n, sink.hex()))
                })
            })
            .collect();
        let mut failures = Vec::new();
        for h in handles {
            match h.join().unwrap() {
                Ok((bytes, n, sha)) if bytes == 10_000_000 && n == bytes && sha == want => {}
                Ok(other) => failures.push(format!("wrong content: {other:?}")),
                Err(e) => failures.push(e),
            }
        }
        assert!(
            failures.is_empty(),
            "{} of 50 failed: {failures:?}",
            failures.len()
        );
        // The upload and the 50 GETs are counted once their workers hand them back.
        let mut c = srv.client();
        let mut st = serde_json::Value::Null;
        wait_until("STATS to count 51 tasks", T, || {
            st = c.stats().unwrap();
            st["tasks_ok"].as_u64().unwrap() + st["tasks_failed"].as_u64().unwrap() >= 51
        });
        assert_eq!(st["tasks_failed"], 0, "{st}");
    }
}

mod names {
    use super::*;
    use fsbench::client::ClientError;

    /// Names PROTOCOL.md refuses, each with why.
    fn bad_names(canary_abs: &str) -> Vec<(String, &'static str)> {
        vec![
            ("..".into(), "dot-dot"),
            (".".into(), "dot"),
            ("".into(), "empty"),
            ("../canary/canary.txt".into(), "relative escape"),
            ("../files/keep.txt".into(), "relative into the store"),
            ("/etc/passwd".into(), "absolute"),
            (canary_abs.into(), "absolute to the canary"),
            ("a\0b".into(), "NUL"),
            ("keep.txt\0".into(), "NUL after a real name"),
            ("a\x01b".into(), "control 0x01"),
            ("a\x1bb".into(), "ESC"),
            ("a\tb".into(), "tab"),
            ("a\rb".into(), "carriage return"),
            ("a\x7fb".into(), "DEL"),
            ("a\u{85}b".into(), "C1 control"),
            (".hidden".into(), "leading dot"),
            (".tmp".into(), "the temp folder"),
            ("x".repeat(256), "256 bytes"),
            ("é".repeat(128), "256 bytes of UTF-8"),
            ("a/b".into(), "slash inside"),
            ("canary/".into(), "trailing slash"),
            ("a\\b".into(), "backslash"),
            ("..\\canary\\canary.txt".into(), "backslash escape"),
        ]
    }

    #[test]
    fn bad_names_are_refused_and_nothing_changes() {
        let srv = Server::start(&["--pool", "2"]);
        let mut c = srv.client();
        c.upload_inline("keep.txt", b"keep me").unwrap();
        let canary_file = srv.canary().join("canary.txt");
        let store_before = common::snapshot(&srv.root);
        let canary_before = common::snapshot(&srv.canary());

        let mut r = srv.raw();
        for (name, why) in bad_names(canary_file.to_str().unwrap()) {
            let quoted = q(&name);
            // NUL and the like also unquoted: the raw bytes as a plain token.
            let plain =
                (!name.is_empty() && !name.contains(['\t', ' ', '"', '\\'])).then(|| name.clone());
            for token in [Some(quoted), plain].into_iter().flatten() {
                for line in [
                    format!("GET {token}"),
                    format!("DELETE {token}"),
                    format!("UPLOAD {token} {}", b64(b"overwritten")),
                ] {
                    assert_error(&r.json(line.as_bytes()), format!("{why}: {line:?}"));
                }
                // A streamed upload must not even start: ERROR instead of READY.
                let resp = r.request(format!("UPLOAD {token}").as_bytes());
                assert!(!resp.starts_with(b"READY"), "{why}: upload started");
                assert_error(&json_reply(&resp), format!("{why}: streamed UPLOAD"));
            }
        }
        assert_eq!(r.json(b"LIST")["data"], serde_json::json!(["keep.txt"]));
        assert_eq!(
            common::snapshot(&srv.root),
            store_before,
            "the store changed"
        );
        assert_eq!(
            common::snapshot(&srv.canary()),
            canary_before,
            "the canary changed"
        );

        // The limits are exact: 255 bytes (multi-byte characters counted as bytes) pass.
        for name in ["y".repeat(255), format!("{}x", "é".repeat(127))] {
            assert_eq!(name.len(), 255);
            let up = r.json(format!("UPLOAD {} {}", q(&name), b64(b"edge")).as_bytes());
            assert_eq!(up["data"]["file_path"], name.as_str());
            assert_eq!(
                r.json(format!("GET {}", q(&name)).as_bytes())["data_file"],
                b64(b"edge")
            );
        }
    }

    #[test]
    fn the_client_never_lets_a_name_end_its_request_line() {
        let srv = Server::start(&["--pool", "1"]);
        let mut c = srv.client();
        c.upload_inline("a.txt", b"content of a").unwrap();
        // A newline in a name would make a second request: refused, and the
        // connection stays in step for the next one.
        assert!(c.delete("nope\nSTATS").is_err());
        assert_eq!(
            c.list().expect("LIST after a name with a newline"),
            ["a.txt"]
        );
        // A trailing carriage return would be dropped by the server as the line's.
        let e = c
            .get("a.txt\r", &mut io::sink())
            .expect_err("GET of \"a.txt\\r\" returned a.txt");
        assert!(matches!(e, ClientError::Server(_)), "{e}");
        assert!(c.delete("a.txt\r").is_err());
        assert_eq!(c.list().unwrap(), ["a.txt"]);
    }

    #[test]
    fn a_symbolic_link_in_the_store_is_not_followed() {
        let srv = Server::start(&["--pool", "1"]);
        let canary_file = srv.canary().join("canary.txt");
        std::os::unix::fs::symlink(&canary_file, srv.root.join("link.txt")).unwrap();
        let canary_before = common::snapshot(&srv.canary());
        let mut r = srv.raw();
        let v = r.json(b"GET link.txt");
        assert_error(&v, "GET through a symlink");
        assert!(!v.to_string().contains(&b64(b"do not touch")));
        assert_eq!(
            r.json(b"LIST")["data"],
            serde_json::json!([]),
            "a link is listed"
        );
        assert_eq!(common::snapshot(&srv.canary()), canary_before);
    }
}

mod uploads {
    use super::*;

    fn wait_for_failed_tasks(srv: &Server, n: u64) {
        let mut stats = srv.raw();
        wait_until("the cut-off task to end", Duration::from_secs(20), || {
            tasks_failed(&mut stats) >= n
        });
    }

    #[test]
    fn an_empty_file_goes_up_inline_and_streamed_and_comes_back() {
        let srv = Server::start(&["--pool", "1"]);
        let mut c = srv.client();
        let u = c.upload_inline("empty-inline.txt", b"").expect("inline");
        assert_eq!((u.bytes, u.sha256.as_str()), (0, sha_hex(b"").as_str()));
        let u = c
            .upload(Some("empty-streamed.txt"), &mut io::empty())
            .unwrap();
        assert_eq!(u.bytes, 0);
        for name in ["empty-inline.txt", "empty-streamed.txt"] {
            assert_eq!(std::fs::read(srv.root.join(name)).unwrap(), b"");
            let d = c.get(name, &mut io::sink()).unwrap();
            assert_eq!((d.bytes, d.sha256.as_str()), (0, sha_hex(b"").as_str()));
        }
    }

    #[test]
    fn an_upload_cut_off_half_way_leaves_no_file_and_no_temp_file() {
        let srv = Server::start(&["--pool", "2"]);
        let data = content(9, 3 * 1024 * 1024);

        // Closed in the middle of a base64 line.
        let mut r = srv.raw();
        r.begin_upload(b"UPLOAD cut.bin");
        assert_eq!(srv.temp_files(), 1, "the upload has its temp file");
        r.send(format!("{}\n", b64(&data[..1536 * 1024])).as_bytes());
        let line = b64(&data[1536 * 1024..]);
        r.send(&line.as_bytes()[..line.len() / 2]);
        drop(r);
        wait_for_failed_tasks(&srv, 1);
        assert_eq!(srv.temp_files(), 0, "temp file left");
        assert!(!srv.root.join("cut.bin").exists());

        // A plain UPLOAD closed between two lines.
        let mut r = srv.raw();
        r.begin_upload(b"UPLOAD");
        r.send(format!("{}\n", b64(&data[..1536 * 1024])).as_bytes());
        drop(r);
        wait_for_failed_tasks(&srv, 2);
        assert_eq!(srv.temp_files(), 0, "temp file left");

        let names = srv.client().list().unwrap();
        assert!(names.is_empty(), "{names:?}");
        assert!(
            common::snapshot(&srv.root).is_empty(),
            "{:?}",
            common::snapshot(&srv.root)
        );
    }

    #[test]
    fn bad_base64_is_refused_and_leaves_nothing() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        for body in [
            "aGVsbG8\n",
            "aGV!bG8=\n",
            "aG=sbG8=\n",
            "aGk=aGk=\n",
            "aGVs bG8=\n",
        ] {
            r.begin_upload(b"UPLOAD bad.bin");
            r.send(format!("{}ENDUPLOAD\n", body).as_bytes());
            assert_error(&r.reply_json(), body);
        }
        assert_error(&r.json(b"UPLOAD bad.bin aGV!bG8="), "inline");
        assert_eq!(srv.temp_files(), 0);
        assert_eq!(r.json(b"LIST")["data"], serde_json::json!([]));
    }

    #[test]
    fn a_plain_upload_is_named_by_sha256_and_extension() {
        let srv = Server::start(&["--pool", "1"]);
        let png = [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("png", png.to_vec(), ".png"),
            ("jpeg", vec![0xFF, 0xD8, 0xFF, 0xE0], ".jpeg"),
            ("pdf", b"%PDF-1.7".to_vec(), ".pdf"),
            ("gif87a", b"GIF87a".to_vec(), ".gif"),
            ("gif89a", b"GIF89a".to_vec(), ".gif"),
            ("zip", b"PK\x03\x04".to_vec(), ".zip"),
            ("mpeg ID3", b"ID3\x04".to_vec(), ".mpeg"),
            ("mpeg FF FB", vec![0xFF, 0xFB, 0x90], ".mpeg"),
            ("unknown", b"hello world".to_vec(), ""),
            ("png cut short", png[..7].to_vec(), ""),
            ("gif88a", b"GIF88a".to_vec(), ""),
            ("empty zip", b"PK\x05\x06".to_vec(), ""),
        ];
        let mut r = srv.raw();
        let mut expected_names = Vec::new();
        for (i, (what, magic, ext)) in cases.into_iter().enumerate() {
            for tail in [content(i as u64, 5000 + i), Vec::new()] {
                let mut content = magic.clone();
                content.extend_from_slice(&tail);
                let want = format!("{}{ext}", sha_hex(&content));
                // The magic bytes spread over several tiny lines.
                r.begin_upload(b"UPLOAD");
                let (a, rest) = content.split_at(3);
                let (b, c) = rest.split_at(3.min(rest.len()));
                let mut body = String::new();
                for part in [a, b, c] {
                    if !part.is_empty() {
                        body += &b64(part);
                        body += "\n";
                    }
                }
                r.send(format!("{body}ENDUPLOAD\n").as_bytes());
                let v = r.reply_json();
                assert_eq!(v["data"]["file_path"], want.as_str(), "{what}");
                assert_eq!(
                    std::fs::read(srv.root.join(&want)).unwrap(),
                    content,
                    "{what}"
                );
                expected_names.push(want);
            }
        }
        expected_names.sort();
        assert_eq!(r.json(b"LIST")["data"], serde_json::json!(expected_names));
    }
}

mod limits {
    use super::*;

    #[test]
    fn a_client_refused_for_a_long_line_does_not_hold_the_only_worker() {
        let srv = Server::start(&["--pool", "1", "--max-line", "1000"]);
        let base = srv.idle_fds();
        // A: a line over the limit, then silence with its socket left open.
        let mut a = TcpStream::connect(srv.addr).unwrap();
        a.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        a.write_all(&[b'x'; 2000]).unwrap();
        a.write_all(b"\n").unwrap();
        let mut got = Vec::new();
        a.read_to_end(&mut got).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&got[..got.len() - 4]).unwrap();
        assert_eq!(v["status"], "ERROR");
        // B is answered while A's connection is still open on the server: the
        // server waits for A to go away without a worker waiting with it.
        let mut b = srv.client();
        assert_eq!(b.list().unwrap(), Vec::<String>::new());
        // Exactly A's and B's connections are open on the server.
        let held = common::fd_count(srv.pid());
        assert_eq!(
            held,
            base + 2,
            "A's connection closed before B was served, or a descriptor more ({base} -> {held})"
        );
        // Once both clients are gone the server closes both connections: no
        // descriptor is left behind.
        drop((a, b));
        srv.expect_fds_back_to(base);
    }

    #[test]
    fn an_inline_upload_longer_than_the_line_limit_is_streamed() {
        let srv = Server::start(&["--pool", "1"]);
        let data = content(5, 1_000_001);
        let mut r = srv.raw();
        let v = r.json(format!("UPLOAD big-inline.bin {}", b64(&data)).as_bytes());
        assert_eq!(v["data"]["file_path"], "big-inline.bin");
        assert_eq!(
            std::fs::read(srv.root.join("big-inline.bin")).unwrap(),
            data
        );
        // A bad name on such a line: ERROR, the line is skipped, the connection goes on.
        assert_error(
            &r.json(format!("UPLOAD .hidden {}", b64(&data)).as_bytes()),
            "long inline upload with a bad name",
        );
        assert_eq!(
            r.json(b"LIST")["data"],
            serde_json::json!(["big-inline.bin"])
        );
        assert_eq!(srv.temp_files(), 0);
    }

    #[test]
    fn a_request_line_over_64_kib_gets_an_error_and_a_close() {
        let srv = Server::start(&["--pool", "1"]);
        let mut r = srv.raw();
        assert_eq!(
            r.json(format!("GET {}", "x".repeat(60_000)).as_bytes())["status"],
            "ERROR"
        );
        let line = format!("GET {}\n", "x".repeat(70 * 1024));
        r.send(line.as_bytes());
        assert_error(&r.reply_json(), "line over the limit");
        // Then the server closes: nothing more comes, whatever the client still sends.
        assert!(r.finish().is_empty());
        assert_eq!(srv.client().list().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_long_inline_upload_that_cannot_start_is_skipped_whole() {
        let srv = Server::start(&["--pool", "1"]);
        // No temp file can be created: the store's temp folder (with the
        // server's own folder in it) is now a file.
        let tmp = srv.root.join(".tmp");
        std::fs::remove_dir_all(&tmp).unwrap();
        std::fs::write(&tmp, b"not a folder").unwrap();
        let mut r = srv.raw();
        let line = format!("UPLOAD x.bin {}", b64(&content(7, 100_000)));
        assert_error(&r.json(line.as_bytes()), "upload without a temp file");
        // One ERROR for the whole line; the connection goes on in step.
        assert_eq!(r.json(b"LIST")["data"], serde_json::json!([]));
    }

    #[test]
    fn a_line_over_the_limit_is_refused_even_right_after_another_request() {
        let srv = Server::start(&["--pool", "1", "--max-line", "1000"]);
        // A line of exactly the limit is a request.
        let mut r = srv.raw();
        let at_limit = format!("LIST{}", " ".repeat(996));
        assert_eq!(r.json(at_limit.as_bytes())["status"], "OK");
        // One write: the event loop reads LIST and the start of the long line,
        // the worker reads the rest of it, newline included.
        let mut two = b"LIST\n".to_vec();
        two.extend_from_slice(format!("LIST{}\n", " ".repeat(2000)).as_bytes());
        r.send(&two);
        assert_eq!(r.reply_json()["status"], "OK");
        let v = r.reply_json();
        assert_error(&v, "a 2004-byte line with --max-line 1000");
        assert!(v["data"].as_str().unwrap().contains("longer"), "{v}");
        assert!(r.finish().is_empty());
    }

    #[test]
    fn an_upload_over_the_size_limit_is_refused_and_leaves_nothing() {
        let srv = Server::start(&["--pool", "1", "--max-upload", "1000000"]);
        let mut c = srv.client();
        let e = c
            .upload(Some("too-big.bin"), &mut Content::new(1, 1_500_000))
            .expect_err("over the limit");
        assert!(e.to_string().contains("limit"), "{e}");
        let e = c
            .upload(None, &mut Content::new(1, 1_000_001))
            .expect_err("one byte over");
        assert!(e.to_string().contains("limit"), "{e}");
        // Exactly at the limit is accepted, on the same connection.
        let up = c
            .upload(Some("at-limit.bin"), &mut Content::new(1, 1_000_000))
            .unwrap();
        assert_eq!(up.sha256, sha256_of(1, 1_000_000));
        assert_eq!(c.list().unwrap(), vec!["at-limit.bin".to_string()]);
        assert_eq!(srv.temp_files(), 0);
    }
}

mod timeouts {
    use super::*;

    /// Everything the server sent before it closed: one ERROR reply.
    fn one_error(bytes: &[u8], context: &str) -> serde_json::Value {
        let body = bytes
            .strip_suffix(b"\r\n\r\n")
            .unwrap_or_else(|| panic!("{context}: {:?}", String::from_utf8_lossy(bytes)));
        let v = json_reply(body);
        assert_error(&v, context);
        v
    }

    #[test]
    fn silent_partial_and_stalled_connections_get_an_error_and_are_closed() {
        let srv = Server::start(&[
            "--pool",
            "1",
            "--idle-timeout",
            "2",
            "--request-timeout",
            "0.5",
        ]);
        // (The test must send its half line within the idle timeout after READY:
        // 2 s leaves room on a loaded machine; nothing here measures speed.)
        // Says nothing: the idle timeout.
        let silent = srv.raw();
        // Starts a request line and never ends it: the request deadline.
        let mut partial = srv.raw();
        partial.send(b"LIS");
        // Stops in the middle of an upload body: the worker's idle timeout.
        let mut stalled = srv.raw();
        stalled.begin_upload(b"UPLOAD stalled.bin");
        stalled.send(format!("{}\naGVs", b64(&content(2, 30_000))).as_bytes());

        let v = one_error(&silent.until_closed(), "silent");
        assert!(v["data"].as_str().unwrap().contains("idle"), "{v}");
        let v = one_error(&partial.until_closed(), "partial line");
        assert!(v["data"].as_str().unwrap().contains("time"), "{v}");
        one_error(&stalled.until_closed(), "stalled upload");
        assert_eq!(srv.temp_files(), 0);
        assert!(!srv.root.join("stalled.bin").exists());
        // The server itself is fine.
        assert_eq!(srv.client().list().unwrap(), Vec::<String>::new());
    }
}

mod idle_connections {
    use super::*;
    use fsbench::client::Client;

    /// True if the server has neither closed `s` nor sent anything on it.
    fn still_open_and_silent(s: &TcpStream) -> bool {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let r = (&*s).read(&mut b);
        s.set_nonblocking(false).unwrap();
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    #[test]
    fn five_silent_connections_do_not_stop_a_sixth_client_with_pool_1() {
        let srv = Server::start(&["--pool", "1", "--idle-timeout", "60"]);
        let fds = srv.idle_fds();
        let silent: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect(srv.addr).unwrap())
            .collect();
        // The server has accepted all five (one descriptor each) before the sixth comes.
        wait_until("the five to be accepted", Duration::from_secs(10), || {
            common::fd_count(srv.pid()) == fds + 5
        });
        // A generous timeout: a server that lets the silent ones hold its one
        // worker answers only after its idle timeout, if at all.
        let mut c = Client::connect(srv.addr, Duration::from_secs(30)).unwrap();
        c.upload_inline("x.txt", b"x").unwrap();
        assert_eq!(c.list().expect("LIST answered"), vec!["x.txt".to_string()]);
        for (i, s) in silent.iter().enumerate() {
            assert!(
                still_open_and_silent(s),
                "silent connection {i} was closed or answered first"
            );
        }
        // They are still served once they speak.
        let mut first = silent.into_iter().next().unwrap();
        first.set_read_timeout(Some(T)).unwrap();
        first.write_all(b"LIST\n").unwrap();
        let mut r = Raw::from(first);
        assert_eq!(r.reply_json()["data"], serde_json::json!(["x.txt"]));
        // Every client gone, the server closes every connection: back to
        // exactly its idle descriptors.
        drop((r, c));
        srv.expect_fds_back_to(fds);
    }
}

mod shutdown {
    use super::*;

    #[test]
    fn a_request_sent_just_before_sigterm_is_still_answered() {
        for mode in ["thread", "process"] {
            let mut srv = Server::start(&["--mode", mode, "--pool", "1"]);
            let fds = srv.idle_fds();
            let mut s = TcpStream::connect(srv.addr).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            wait_until(
                "the connection to be accepted",
                Duration::from_secs(10),
                || common::fd_count(srv.pid()) == fds + 1,
            );
            // The request and the signal race: in either order it must be answered.
            s.write_all(b"LIST\n").unwrap();
            srv.signal(fsbench::sys::SIGTERM);
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            assert_eq!(
                String::from_utf8_lossy(&got),
                "{\"status\": \"OK\", \"data\": []}\r\n\r\n",
                "{mode}"
            );
            assert!(srv.wait(Duration::from_secs(30)).success(), "{mode}");
        }
    }
    use crate::common::{Gate, GatedReader, GatedSink};
    use fsbench::client::Client;

    const SIZE: u64 = 32 * 1000 * 1000;

    #[test]
    fn sigterm_during_transfers_lets_them_complete_and_exits_0() {
        let mut srv = Server::start(&["--pool", "2"]);
        let want = sha256_of(3, SIZE);
        let mut f = std::fs::File::create(srv.root.join("big.bin")).unwrap();
        io::copy(&mut Content::new(3, SIZE), &mut f).unwrap();
        drop(f);

        // The test and both transfers meet at the gate when the GET's first
        // bytes have arrived and half the upload is sent, and again to go on.
        let gate = Gate::new(3);
        let mut sink = GatedSink::new(HashSink::default(), gate.clone());
        let mut c = Client::connect(srv.addr, T).unwrap();
        let get = std::thread::spawn(move || {
            let d = c.get("big.bin", &mut sink).map_err(|e| e.to_string())?;
            Ok::<_, String>((d, sink.inner.n, sink.inner.hex()))
        });
        let mut src = GatedReader::new(Content::new(4, SIZE), SIZE / 2, gate.clone());
        let mut c = Client::connect(srv.addr, T).unwrap();
        let up = std::thread::spawn(move || c.upload(None, &mut src).map_err(|e| e.to_string()));
        // Both transfers are under way.
        gate.wait();

        srv.signal(fsbench::sys::SIGTERM);
        // It stops accepting: a new connection is refused once the signal is handled.
        wait_until("the listener to close", Duration::from_secs(10), || {
            TcpStream::connect(srv.addr).is_err()
        });
        assert!(
            srv.child.as_mut().unwrap().try_wait().unwrap().is_none(),
            "exited mid-transfer"
        );
        gate.wait();

        let (d, n, sha) = get.join().unwrap().expect("GET completes after SIGTERM");
        assert_eq!((d.bytes, n), (SIZE, SIZE));
        assert_eq!(sha, want);
        let u = up.join().unwrap().expect("UPLOAD completes after SIGTERM");
        assert_eq!(u.bytes, SIZE);
        assert_eq!(u.sha256, sha256_of(4, SIZE));
        let status = srv.wait(T);
        assert_eq!(status.code(), Some(0), "log:\n{}", srv.log_text());
        // The acknowledged upload is in the store under its SHA-256.
        let mut stored = HashSink::default();
        io::copy(
            &mut std::fs::File::open(srv.root.join(&u.name)).unwrap(),
            &mut stored,
        )
        .unwrap();
        assert_eq!(stored.hex(), u.sha256);
    }

    #[test]
    fn an_upload_still_open_at_the_drain_timeout_leaves_no_temp_file() {
        let mut srv = Server::start(&["--pool", "1", "--drain-timeout", "0.2"]);
        let mut r = srv.raw();
        r.begin_upload(b"UPLOAD never-finished.bin");
        // Half a body, then silence: the worker waits for the rest past the drain timeout.
        r.send(format!("{}\n", b64(&content(6, 30_000))).as_bytes());
        wait_until("the upload's temp file", T, || srv.temp_files() == 1);
        srv.signal(fsbench::sys::SIGTERM);
        let status = srv.wait(T);
        assert_eq!(status.code(), Some(0), "log:\n{}", srv.log_text());
        assert!(!srv.root.join("never-finished.bin").exists());
        assert_eq!(srv.temp_files(), 0, "temp file left by the server's exit");
    }
}

mod cli {
    use super::*;
    use std::path::Path;
    use std::process::{Command, Output};

    fn client(srv: &Server, args: &[&str]) -> Output {
        let port = srv.port().to_string();
        let mut full = vec!["client"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["--port", &port, "--timeout", "30"]);
        Command::new(common::BIN)
            .args(&full)
            .output()
            .expect("run client")
    }

    fn code(o: &Output) -> i32 {
        o.status.code().expect("exit code")
    }

    /// Exit code 0, or the failure shows the command's stderr.
    fn assert_ok(o: &Output) {
        assert_eq!(code(o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// `client get NAME -o OUT --expect-sha256 SHA`.
    fn get_to_file(srv: &Server, name: &str, out: &Path, sha: &str) -> Output {
        let out = out.to_str().unwrap();
        client(srv, &["get", name, "-o", out, "--expect-sha256", sha])
    }

    #[test]
    fn a_get_to_a_file_touches_nothing_but_its_output() {
        let srv = Server::start(&["--pool", "1"]);
        let data = content(12, 200_000);
        let sha = sha_hex(&data);
        srv.client().upload(Some("r.pdf"), &mut &data[..]).unwrap();
        let keep = srv.dir.path().join("keep");
        std::fs::create_dir_all(&keep).unwrap();
        // The user's files beside the output, and an older version of the output.
        std::fs::write(keep.join("report.part"), b"user's notes").unwrap();
        std::fs::write(keep.join("report.pdf"), b"old version").unwrap();
        std::fs::write(keep.join("draft.part"), b"user's draft").unwrap();
        let before = common::snapshot(&keep);
        let wrong = "0".repeat(64);
        for out in ["report.pdf", "draft.part"] {
            let out = keep.join(out);
            assert_eq!(code(&get_to_file(&srv, "r.pdf", &out, &wrong)), 1);
            assert_eq!(
                common::snapshot(&keep),
                before,
                "a failed get -o {out:?} changed files"
            );
        }
        let out = keep.join("report.pdf");
        assert_ok(&get_to_file(&srv, "r.pdf", &out, &sha));
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert_eq!(
            std::fs::read(keep.join("report.part")).unwrap(),
            b"user's notes"
        );
        assert_eq!(std::fs::read_dir(&keep).unwrap().count(), 3);
    }

    #[test]
    fn exit_codes_and_verified_get_to_a_file() {
        let srv = Server::start(&["--pool", "2"]);
        let dir = srv.dir.path();
        let data = content(11, 1_000_003);
        let sha = sha_hex(&data);
        let src = dir.join("src.bin");
        std::fs::write(&src, &data).unwrap();
        let src = src.to_str().unwrap();

        let o = client(&srv, &["upload", src]);
        assert_ok(&o);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), sha);
        let o = client(&srv, &["upload", src, "--name", "Named File.bin"]);
        assert_ok(&o);
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "Named File.bin");

        let o = client(&srv, &["list"]);
        assert_ok(&o);
        // Sorted by name (bytes): where the hex digest goes depends on its first digit.
        let mut names = [sha.clone(), "Named File.bin".to_string()];
        names.sort();
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            format!("{}\n{}\n", names[0], names[1])
        );
        let o = client(&srv, &["stats"]);
        assert_ok(&o);
        let stats: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(stats["mode"], "thread");

        // get -o: the verified file, and nothing else left beside it.
        let out = dir.join("out").join("got.bin");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        assert_ok(&get_to_file(&srv, "Named File.bin", &out, &sha));
        assert_eq!(std::fs::read(&out).unwrap(), data);
        assert_eq!(std::fs::read_dir(out.parent().unwrap()).unwrap().count(), 1);
        // To stdout, with the hash in upper case.
        let o = client(&srv, &["get", &sha, "--expect-sha256", &sha.to_uppercase()]);
        assert_ok(&o);
        assert!(o.stdout == data, "stdout is not the file");

        // 1: a mismatching hash (no output file left), a server ERROR.
        let wrong = "0".repeat(64);
        let bad_out = dir.join("out").join("bad.bin");
        let o = get_to_file(&srv, &sha, &bad_out, &wrong);
        assert_eq!(code(&o), 1);
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(&wrong),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            std::fs::read_dir(out.parent().unwrap()).unwrap().count(),
            1,
            "a file was left"
        );
        let o = client(&srv, &["get", &sha, "--expect-sha256", &wrong]);
        assert_eq!(code(&o), 1);
        for args in [
            &["get", "missing.bin"][..],
            &["delete", "missing.bin"],
            &["get", ".hidden"],
        ] {
            let o = client(&srv, args);
            assert_eq!(code(&o), 1, "{args:?}");
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("ERROR"),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }

        let o = client(&srv, &["delete", "Named File.bin"]);
        assert_ok(&o);
        assert_eq!(
            String::from_utf8_lossy(&client(&srv, &["list"]).stdout),
            format!("{sha}\n")
        );

        // 2: usage errors, before any connection.
        for args in [
            &[][..],
            &["get"],
            &["delete"],
            &["upload"],
            &["frobnicate"],
            &["get", "x", "--expect-sha256", "abc"],
            &["get", "x", "--expect-sha256", &"g".repeat(64)],
            &["list", "extra"],
            &["list", "--port", "notaport"],
        ] {
            let o = client(&srv, args);
            assert_eq!(
                code(&o),
                2,
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            assert!(!o.stderr.is_empty(), "{args:?}: no reason given");
        }
        for args in [
            &[][..],
            &["frobnicate"],
            &["serve", "--pool", "0"],
            &["serve", "--mode", "fork"],
            &["serve", "--idle-timeout", "NaN"],
            &["serve", "--drain-timeout", "-1"],
            &["client", "list", "--timeout", "1e30"],
        ] {
            let o = Command::new(common::BIN).args(args).output().unwrap();
            assert_eq!(code(&o), 2, "{args:?}");
            assert!(
                !String::from_utf8_lossy(&o.stderr).contains("panicked"),
                "{args:?}"
            );
        }
        // -h after any command prints the usage and succeeds.
        for args in [
            &["help"][..],
            &["serve", "-h"],
            &["client", "get", "--help"],
            &["pool", "-h"],
        ] {
            let o = Command::new(common::BIN).args(args).output().unwrap();
            assert_eq!(code(&o), 0, "{args:?}");
            assert!(
                String::from_utf8_lossy(&o.stdout).starts_with("usage: fsbench"),
                "{args:?}"
            );
        }
    }
}

/// GET reads files through maps (process mode) and with pread (thread
/// mode): either way, a file cut short in place by another
/// program while it is being sent must end that answer (never zeros sent as
/// content, never a crash), and the server serves everyone else on.
#[test]
fn a_file_cut_short_while_it_is_sent_ends_that_answer_and_the_server_serves_on() {
    for mode in ["thread", "process"] {
        let mut srv = Server::start(&["--mode", mode, "--pool", "2"]);
        let path = srv.root.join("cut.bin");
        let full: u64 = 64 << 20;
        std::fs::File::create(&path).unwrap().set_len(full).unwrap();
        std::fs::write(srv.root.join("other.txt"), b"still here").unwrap();
        let mut s = TcpStream::connect(srv.addr).unwrap();
        s.set_read_timeout(Some(T)).unwrap();
        s.write_all(b"GET cut.bin\n").unwrap();
        // The answer has begun; the server now waits on a full socket, far
        // from the end of the file, with part of it mapped.
        let mut got = vec![0u8; 64 * 1024];
        s.read_exact(&mut got).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        s.read_to_end(&mut got).unwrap();
        let text_len = full.div_ceil(3) * 4;
        assert!(
            (got.len() as u64) < text_len && !got.ends_with(b"\"}\r\n\r\n"),
            "{mode}: the answer of a file cut short must not look complete ({} bytes)",
            got.len()
        );
        // Everyone else is served: a GET of another file and a LIST.
        let mut other = Vec::new();
        srv.client().get("other.txt", &mut other).unwrap();
        assert_eq!(other, b"still here", "{mode}");
        assert!(srv
            .client()
            .list()
            .unwrap()
            .contains(&"cut.bin".to_string()));
        let log = srv.log_text();
        assert!(!log.contains("panicked"), "{mode}: {log}");
        assert!(srv.stop(T).success(), "{mode}: {log}");
    }
}

/// GET in both of its ways of reading (pread in thread mode, maps in
/// process mode) sends exactly the file at every size around its chunk
/// (192 KiB) and map window (768 KiB) edges: nothing lost, nothing sent
/// twice, the tail once.
#[test]
fn a_get_sends_exactly_the_file_at_every_chunk_and_window_edge() {
    const CHUNK: usize = 192 * 1024;
    const WINDOW: usize = 4 * CHUNK;
    let sizes = [
        0,
        1,
        2,
        3,
        CHUNK - 1,
        CHUNK,
        CHUNK + 1,
        WINDOW - 1,
        WINDOW,
        WINDOW + 1,
        2 * WINDOW + CHUNK + 2,
    ];
    for mode in ["thread", "process"] {
        let srv = Server::start(&["--mode", mode, "--pool", "2"]);
        for (i, &len) in sizes.iter().enumerate() {
            let data = content(40 + i as u64, len);
            let name = format!("edge-{len}.bin");
            std::fs::write(srv.root.join(&name), &data).unwrap();
            let mut got = Vec::new();
            let d = srv.client().get(&name, &mut got).unwrap();
            assert_eq!(d.bytes, len as u64, "{mode}: {len} bytes");
            assert!(
                got == data,
                "{mode}: the {len}-byte file came back different"
            );
        }
    }
}

/// Issue 13: a reader of stdout that goes away (`| head -c1`) ends a command
/// quietly with success, never with a panic or an error message. The stdout
/// pipe is one page, filled before the command starts, and closed once its
/// reader has taken 1 byte: the command's first write then finds the reader
/// gone whatever its length (a help text fits in a pipe of 64 KiB). Self-
/// contained (the tests' helpers are being reworked): the built binary, a
/// server on port 0 over a store of one file, so `client list` has a line to write.
#[test]
fn a_stdout_closed_after_one_byte_ends_each_command_quietly_with_success() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::AsRawFd;
    use std::process::{Child, Command, Stdio};

    const BIN: &str = env!("CARGO_BIN_EXE_fsbench");
    struct Stop(Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let root = std::env::temp_dir().join(format!("fsbench-stdout-closed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), b"a").unwrap();
    let mut server = Stop(
        Command::new(BIN)
            .args(["serve", "--port", "0", "--pool", "1", "--root"])
            .arg(&root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(server.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .trim()
        .strip_prefix("LISTENING 127.0.0.1:")
        .unwrap_or_else(|| panic!("no LISTENING line: {line:?}"))
        .to_string();

    for args in [
        &["help"][..],
        &["client", "list", "--port", &port],
        &["pool", "--operation", "list", "--port", &port, "--json"],
    ] {
        let (mut reader, mut writer) = io::pipe().unwrap();
        // SAFETY: fcntl on a descriptor this test owns, no pointer involved.
        let size = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(size > 0, "F_SETPIPE_SZ: {}", io::Error::last_os_error());
        writer.write_all(&vec![b'.'; size as usize]).unwrap();
        let child = Command::new(BIN)
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        reader.read_exact(&mut first).unwrap();
        drop(reader);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).as_ref()
            ),
            (Some(0), ""),
            "{args:?}"
        );
    }
    drop(server);
    std::fs::remove_dir_all(&root).unwrap();
}

/// Issue 13: an unknown flag is a usage error (exit 2, named on stderr), never ignored.
#[test]
fn an_unknown_serve_flag_exits_2() {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fsbench"))
        .args(["serve", "--port", "0", "--bogus-flag"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("fsbench: unknown flag \"--bogus-flag\"\n"),
        "{stderr}"
    );
}

/// The TCP congestion control of the server's side of each established
/// connection on `port`, as `ss -ti` shows it (its first word).
fn server_side_congestion(port: u16) -> Vec<String> {
    let o = std::process::Command::new("ss")
        .args(["-tinH", "state", "established"])
        .arg(format!("( sport = :{port} )"))
        .output()
        .expect("ss (iproute2; .ci/run installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with(char::is_whitespace))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

#[test]
fn the_servers_connections_use_reno_over_loopback_unless_told_otherwise() {
    let system = fsbench::tcp::system_default();
    let cases: [(&[&str], &str); 3] = [
        (&[], "reno"),
        (&["--tcp-congestion", "system"], &system),
        (&["--tcp-congestion", "reno"], "reno"),
    ];
    for (flags, want) in cases {
        for mode in ["thread", "process"] {
            let srv = Server::start(&[&["--mode", mode, "--pool", "1"], flags].concat());
            // Served: accepted, so its side of the connection exists.
            let mut c = srv.client();
            c.list().unwrap();
            assert_eq!(
                server_side_congestion(srv.port()),
                vec![want.to_string()],
                "{mode} {flags:?}"
            );
            assert!(
                srv.log_text().contains(" tcp_congestion="),
                "{}",
                srv.log_text()
            );
        }
    }
}

#[test]
fn an_algorithm_the_kernel_lacks_is_a_usage_error_of_each_command() {
    let commands: [&[&str]; 3] = [
        &["serve", "--port", "0"],
        &["pool", "--port", "9"],
        &["sweep", "--quick"],
    ];
    for args in commands {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_fsbench"))
            .args(args)
            .args(["--tcp-congestion", "no-such-cc"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        // The first line says what is wrong (the pool and the sweep add their flags).
        assert!(
            stderr.starts_with(
                "fsbench: --tcp-congestion: 'no-such-cc' is not an algorithm this kernel has (it has: "
            ),
            "{stderr}"
        );
    }
}
