//! Property tests of the protocol codec (issue 5): the request parser and the
//! upload decoder never panic, whatever the bytes, and read back exactly what
//! the client encodes (`quote_arg` -> `parse_request`, `encode_chunk` -> `LineDecoder`).

use fsbench::protocol::base64::{encode, encode_chunk, LineDecoder};
use fsbench::protocol::request::{inline_upload_head, quote_arg};
use fsbench::protocol::{parse_request, Request};
use proptest::prelude::*;

/// Names a client can put on a request line: any text without a newline.
fn line_safe_name() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.replace('\n', ""))
}

/// Names made of the characters that matter to the tokenizer.
fn tricky_name() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(' '),
            Just('\t'),
            Just('"'),
            Just('\\'),
            Just('\r'),
            Just('a'),
            Just('.'),
            Just('é'),
        ],
        0..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parser_never_panics(line in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_request(&line);
        let _ = inline_upload_head(&line);
    }

    #[test]
    fn parser_never_panics_on_request_like_lines(
        cmd in prop_oneof![Just("GET"), Just("upload"), Just("DELETE"), Just("LIST"), Just("ENDUPLOAD")],
        rest in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'"'), Just(b'\\'), Just(b'\t'), Just(b'\r'), any::<u8>()], 0..60),
    ) {
        let mut line = cmd.as_bytes().to_vec();
        line.extend_from_slice(&rest);
        let _ = parse_request(&line);
        if let Some((_, at)) = inline_upload_head(&line) {
            prop_assert!(at <= line.len());
        }
    }

    #[test]
    fn quoted_names_round_trip(name in prop_oneof![line_safe_name(), tricky_name()]) {
        let q = quote_arg(&name);
        prop_assert_eq!(parse_request(format!("GET {q}").as_bytes()), Ok(Request::Get(name.clone())));
        prop_assert_eq!(parse_request(format!("delete {q}\r").as_bytes()), Ok(Request::Delete(name.clone())));
        prop_assert_eq!(parse_request(format!("UPLOAD {q}").as_bytes()), Ok(Request::Upload(Some(name.clone()))));
        let line = format!("UPLOAD {q} aGk=");
        prop_assert_eq!(
            parse_request(line.as_bytes()),
            Ok(Request::UploadInline(name.clone(), b"aGk=".to_vec()))
        );
        // The streamed head of the same line finds the same name and the body.
        if let Some((n, at)) = inline_upload_head(line.as_bytes()) {
            prop_assert_eq!(n, Ok(name.clone()));
            prop_assert_eq!(&line.as_bytes()[at..], b"aGk=");
        }
    }

    #[test]
    fn decoder_never_panics(
        input in proptest::collection::vec(any::<u8>(), 0..300),
        piece in 1usize..40,
    ) {
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        let mut ok = true;
        for p in input.chunks(piece) {
            if d.feed(p, &mut out).is_err() {
                ok = false;
                break;
            }
        }
        if ok {
            let _ = d.finish_line();
        }
        prop_assert!(out.len() <= input.len());
    }

    #[test]
    fn decoder_never_panics_on_base64_like_input(
        input in proptest::collection::vec(prop_oneof![Just(b'='), Just(b'A'), Just(b'/'), Just(b'z'), Just(b'9'), any::<u8>()], 0..64),
        piece in 1usize..9,
    ) {
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        let fed = input.chunks(piece).try_for_each(|p| d.feed(p, &mut out));
        let whole = fed.and_then(|_| d.finish_line());
        // Whatever it accepts is what the base64 crate's strict decoder accepts.
        if whole.is_ok() {
            prop_assert_eq!(encode(&out).into_bytes(), input);
        }
    }

    #[test]
    fn encoded_chunks_decode_in_any_pieces(
        data in proptest::collection::vec(any::<u8>(), 0..2000),
        chunk3 in 1usize..200,
        piece in 1usize..300,
    ) {
        // The client: chunks whose length is a multiple of 3, concatenated into one line.
        let mut text = Vec::new();
        for c in data.chunks(chunk3 * 3) {
            encode_chunk(c, &mut text);
        }
        // The server: the line in arbitrary pieces.
        let mut d = LineDecoder::new();
        let mut out = Vec::new();
        for p in text.chunks(piece) {
            d.feed(p, &mut out).unwrap();
        }
        prop_assert_eq!(d.finish_line().unwrap(), data.len() as u64);
        prop_assert_eq!(out, data);
    }
}
