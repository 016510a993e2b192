//! Property tests of the protocol codec: the request parser and the upload
//! decoder never panic, whatever the bytes, and read back exactly what the
//! client encodes (`quote_arg` -> `parse_request`, `encode_chunk` ->
//! `LineDecoder`); the SIMD decoder accepts and refuses exactly what the
//! rules of PROTOCOL.md say, with the same reason, however the line is cut,
//! with each engine this CPU runs (`base64-simd` alone, AVX-512 VBMI), and
//! each engine encodes what the `base64` crate encodes;
//! the read buffer's line search finds the lines a naive scan finds.

use fsbench::protocol::base64::{encode, encode_chunk, B64Error, Engine, LineDecoder};
use fsbench::protocol::request::{inline_upload_head, quote_arg};
use fsbench::protocol::ReadBuf;
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

/// The rules of one base64 line, read quad by quad in the simplest way: the
/// reference the streaming decoder (SIMD bulk, byte-by-byte edges) must match,
/// reason included. The first fault in reading order wins: a byte after a
/// padded quad, then a byte outside the alphabet, then a short last quad,
/// then misplaced padding or non-canonical trailing bits.
fn reference_decode(line: &[u8]) -> Result<Vec<u8>, B64Error> {
    use base64::Engine as _;
    let alphabet = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    let mut out = Vec::new();
    let mut padded = false;
    for quad in line.chunks(4) {
        if padded {
            return Err(B64Error::PaddingMidLine);
        }
        if let Some(&b) = quad.iter().find(|&&b| !alphabet(b) && b != b'=') {
            return Err(B64Error::BadChar(b));
        }
        if quad.len() < 4 {
            return Err(B64Error::BadLength);
        }
        if quad[2] == b'=' && quad[3] != b'=' {
            return Err(B64Error::PaddingMidLine);
        }
        if quad[0] == b'=' || quad[1] == b'=' {
            return Err(B64Error::BadPadding);
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(quad)
            .map_err(|_| B64Error::BadPadding)?;
        padded = quad[3] == b'=';
        out.extend_from_slice(&bytes);
    }
    Ok(out)
}

/// The engines this CPU runs: `base64-simd` always, AVX-512 VBMI where the
/// CPU has it (this machine and CI's do: the test says when it is missing).
fn engines() -> Vec<Engine> {
    let all = [Engine::Simd, Engine::Vbmi];
    let here: Vec<Engine> = all.into_iter().filter(|e| e.available()).collect();
    if here.len() < all.len() {
        eprintln!("properties: no AVX-512 VBMI on this CPU, its engine is not tested");
    }
    here
}

/// The streaming decoder's verdict on a line fed in pieces of `piece` bytes,
/// the same from every engine (or the test fails here).
fn stream_decode(line: &[u8], piece: usize) -> Result<Vec<u8>, B64Error> {
    let verdicts: Vec<Result<Vec<u8>, B64Error>> = engines()
        .into_iter()
        .map(|e| {
            let mut d = LineDecoder::with_engine(e);
            let mut out = Vec::new();
            for p in line.chunks(piece.max(1)) {
                d.feed(p, &mut out)?;
            }
            d.finish_line()?;
            Ok(out)
        })
        .collect();
    for v in &verdicts[1..] {
        assert_eq!(
            v, &verdicts[0],
            "the engines disagree on {line:?} in pieces of {piece}"
        );
    }
    verdicts[0].clone()
}

/// Valid base64 of `data` with one byte replaced (at `at`, modulo the length).
fn with_fault(data: &[u8], at: usize, bad: u8) -> Vec<u8> {
    let mut text = encode(data).into_bytes();
    if !text.is_empty() {
        let i = at % text.len();
        text[i] = bad;
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_decoder_agrees_with_the_reference_on_any_bytes(
        line in proptest::collection::vec(prop_oneof![
            8 => proptest::sample::select(b"ABCxyz019+/".to_vec()),
            1 => Just(b'='),
            1 => any::<u8>(),
        ], 0..700),
        piece in 1usize..300,
    ) {
        prop_assert_eq!(stream_decode(&line, piece), reference_decode(&line));
    }

    #[test]
    fn the_decoder_agrees_with_the_reference_on_one_fault(
        data in proptest::collection::vec(any::<u8>(), 0..1500),
        at in any::<usize>(),
        bad in prop_oneof![Just(b'='), Just(b'!'), Just(b'\n'), Just(b' '), Just(b'"'), Just(b'\r'), Just(0x80u8), Just(b'A' | 0x80), Just(b'0' | 0x80), Just(0u8), Just(b'-'), Just(b'_'), Just(b'A')],
        cut in any::<usize>(),
        piece in 1usize..600,
    ) {
        // One replaced byte (each bad-input case of PROTOCOL.md: outside the
        // alphabet, padding mid-line, URL-safe letters), then maybe cut short.
        let mut line = with_fault(&data, at, bad);
        if cut % 3 == 0 && !line.is_empty() {
            line.truncate(cut % line.len());
        }
        let got = stream_decode(&line, piece);
        prop_assert_eq!(&got, &reference_decode(&line));
        if bad == b'A' && line.len().is_multiple_of(4) && got.is_ok() {
            prop_assert_eq!(encode(&got.unwrap()).into_bytes(), line);
        }
    }

    #[test]
    fn the_line_search_finds_the_lines_of_a_naive_scan(
        data in proptest::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n')], 0..3000),
        reads in proptest::collection::vec(1usize..200, 1..40),
    ) {
        let naive: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        let (complete, rest) = naive.split_at(naive.len() - 1);
        // The same bytes through a ReadBuf, arriving in reads of every size.
        let mut src = Chunked { data: &data, sizes: &reads, i: 0 };
        let mut buf = ReadBuf::new(4096);
        let mut lines: Vec<Vec<u8>> = Vec::new();
        loop {
            if let Some(n) = buf.find_byte(b'\n') {
                lines.push(buf.pending()[..n].to_vec());
                buf.consume(n + 1);
                continue;
            }
            if !buf.make_room() {
                buf.grow();
            }
            if buf.fill_from(&mut src).unwrap() == 0 {
                break;
            }
        }
        prop_assert_eq!(lines.len(), complete.len());
        for (got, want) in lines.iter().zip(complete) {
            prop_assert_eq!(&got[..], *want);
        }
        prop_assert_eq!(buf.pending(), rest[0]);
    }

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
        for (line, sized) in [(format!("UPLOAD {q} aGk="), false), (format!("UPLOAD {q} 4 aGk="), true)] {
            prop_assert_eq!(
                parse_request(line.as_bytes()),
                Ok(Request::UploadInline { name: name.clone(), body: b"aGk=".to_vec(), sized })
            );
            // The streamed head of the same line finds the same name and the body.
            if let Some((n, at)) = inline_upload_head(line.as_bytes()) {
                prop_assert_eq!(n, Ok(name.clone()));
                prop_assert_eq!(&line.as_bytes()[at..], b"aGk=");
            }
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
        // Each engine encodes what the base64 crate encodes.
        for e in engines() {
            let mut by_engine = Vec::new();
            for c in data.chunks(chunk3 * 3) {
                e.encode(c, &mut by_engine);
            }
            prop_assert_eq!(&by_engine, &text, "{:?}", e);
        }
        prop_assert_eq!(&text, &encode(&data).into_bytes());
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

/// A reader that hands out its data in reads of the given sizes, in turn.
struct Chunked<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    i: usize,
}

impl std::io::Read for Chunked<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let want = self.sizes[self.i % self.sizes.len()];
        self.i += 1;
        let n = want.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
