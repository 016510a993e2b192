//! Compatibility with the old Python clients: the server (thread mode, port 0)
//! driven by `tests/compat/compat_client.py`, a Python 3 client (standard
//! library only) that behaves as they do: one request per connection, `\n`
//! requests, 1 MiB reads until `\r\n\r\n`, uploads after READY in 1 MiB base64
//! lines. Every content is compared byte for byte with what was sent.
//!
//! Needs `python3` on the PATH (`.ci/run` installs it); without it these tests fail.

use crate::common::{self, content, sha_hex, Server};

/// Runs the compatibility client; returns its exit code and the JSON answer it printed.
fn compat(srv: &Server, args: &[&str]) -> (i32, serde_json::Value) {
    crate::common::python_client("compat_client.py", srv.port(), args)
}

fn ok(srv: &Server, args: &[&str]) -> serde_json::Value {
    let (code, v) = compat(srv, args);
    assert_eq!(
        (code, &v["status"]),
        (0, &"OK".into()),
        "compat {args:?}: {v}"
    );
    v
}

#[test]
fn old_clients_list_get_upload_and_delete_a_10_mb_file_and_a_small_one() {
    let srv = Server::start(&["--pool", "2"]);
    let dir = srv.dir.path();
    let big = content(21, 10_000_000);
    let small = b"%PDF-1.4 a small file for the old clients\n".to_vec();
    let big_path = dir.join("big.bin");
    let small_path = dir.join("small.pdf");
    std::fs::write(&big_path, &big).unwrap();
    std::fs::write(&small_path, &small).unwrap();
    let (big_path, small_path) = (big_path.to_str().unwrap(), small_path.to_str().unwrap());

    assert_eq!(ok(&srv, &["list"])["data"], serde_json::json!([]));

    // Both ways of cutting the base64 into lines: the old client's (the whole
    // file's text cut every 1 MiB, padding only at the end) and one encoding
    // each 1 MiB of the file separately (padding at the end of every line).
    // Plain UPLOAD is stored under the SHA-256 (+ extension), named under its name.
    let cases: [(&[u8], &str, Option<&str>, &str); 4] = [
        (&big, big_path, None, "whole"),
        (&big, big_path, Some("big-chunks.bin"), "chunks"),
        (&small, small_path, None, "whole"),
        (&small, small_path, Some("日本-small.pdf"), "chunks"),
    ];
    let mut stored: Vec<(String, &[u8])> = Vec::new();
    for (content, path, name, lines) in cases {
        let mut args = vec!["upload", path, "--lines", lines];
        if let Some(n) = name {
            args.extend(["--name", n]);
        }
        let v = ok(&srv, &args);
        assert_eq!(v["message"], "File uploaded successfully");
        let want = match name {
            Some(n) => n.to_string(),
            None if content.starts_with(b"%PDF") => format!("{}.pdf", sha_hex(content)),
            None => sha_hex(content),
        };
        assert_eq!(v["data"]["file_path"], want.as_str(), "{args:?}");
        assert_eq!(
            std::fs::read(srv.root.join(&want)).unwrap(),
            content,
            "{args:?}"
        );
        stored.push((want, content));
    }

    let mut names: Vec<&str> = stored.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(ok(&srv, &["list"])["data"], serde_json::json!(names));

    for (i, (name, content)) in stored.iter().enumerate() {
        let out = dir.join(format!("got-{i}"));
        let v = ok(&srv, &["get", name, out.to_str().unwrap()]);
        assert_eq!(v["data_namafile"], name.as_str());
        assert_eq!(v["bytes"], content.len());
        assert!(
            std::fs::read(&out).unwrap() == *content,
            "GET {name}: content differs"
        );
    }

    for (name, _) in &stored {
        assert_eq!(
            ok(&srv, &["delete", name])["message"],
            "File deleted successfully"
        );
    }
    assert_eq!(ok(&srv, &["list"])["data"], serde_json::json!([]));
    assert_eq!(srv.temp_files(), 0);

    // The errors those clients know.
    let (code, v) = compat(
        &srv,
        &["get", &stored[0].0, dir.join("gone").to_str().unwrap()],
    );
    assert_eq!((code, &v["status"]), (1, &"ERROR".into()), "{v}");
    let (code, v) = compat(&srv, &["raw", "FOO bar"]);
    assert_eq!(code, 1);
    assert_eq!(
        v,
        serde_json::json!({"status": "ERROR", "data": "request tidak dikenali"})
    );
    let (code, v) = compat(&srv, &["upload", small_path, "--name", ".hidden"]);
    assert_eq!((code, &v["status"]), (1, &"ERROR".into()), "{v}");
    assert!(
        common::snapshot(&srv.root).is_empty(),
        "{:?}",
        common::snapshot(&srv.root)
    );
}
