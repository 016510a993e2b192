//! Fuzz target: the request parser and the streamed-upload head never panic,
//! and a request that parses survives being written back with `quote_arg`.
#![no_main]

use fsbench::protocol::request::{inline_upload_head, quote_arg};
use fsbench::protocol::{parse_request, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|line: &[u8]| {
    if let Some((_, at)) = inline_upload_head(line) {
        assert!(at <= line.len());
    }
    let Ok(req) = parse_request(line) else {
        return;
    };
    // Names that came off a line go back onto one unchanged.
    let again = match &req {
        Request::Get(n) => format!("GET {}", quote_arg(n)),
        Request::Delete(n) => format!("DELETE {}", quote_arg(n)),
        Request::Upload(Some(n)) => format!("UPLOAD {}", quote_arg(n)),
        _ => return,
    };
    assert_eq!(parse_request(again.as_bytes()), Ok(req));
});
