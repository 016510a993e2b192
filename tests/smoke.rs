//! A first end-to-end check: every request on its happy path, thread mode.

mod common;

use common::{pattern, Server};
use std::time::Duration;

#[test]
fn every_request_on_its_happy_path() {
    let mut srv = Server::start(&["--pool", "2"]);
    let mut c = srv.client();
    assert_eq!(c.list().unwrap(), Vec::<String>::new());
    let data = pattern(300_000, 1);
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
    assert!(srv.stop(Duration::from_secs(10)).success());
}
