//! The request-line parser.
//!
//! A line is split into tokens at spaces and tabs; a token that starts with a
//! double quote runs to the closing quote, with `\"` and `\\` as its only
//! escapes. The command word is case-insensitive, the arguments keep their
//! case. The parser never panics, whatever the bytes (see the property tests).

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    List,
    Get(String),
    /// A streamed upload; `None` stores the file under its SHA-256 name.
    Upload(Option<String>),
    /// `UPLOAD <name> [<length>] <base64>`: the whole file on the request line.
    /// `sized`: the line gave the base64's length first (and it matched).
    UploadInline {
        name: String,
        body: Vec<u8>,
        sized: bool,
    },
    Delete(String),
    Stats,
    /// `ENDUPLOAD` with no upload in progress.
    StrayEndUpload,
}

/// Why a line is not a request. `Display` gives the reason sent in the ERROR response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Blank,
    UnterminatedQuote,
    BadEscape,
    GarbageAfterQuote,
    NotUtf8,
    Unknown,
    Arity(&'static str),
    /// `UPLOAD <name> <length> <base64>` whose base64 is not `<length>` bytes long.
    LengthMismatch {
        declared: u64,
        actual: u64,
    },
}

/// The ERROR of a sized upload whose base64 is not as long as it says.
pub const LENGTH_MISMATCH: &str = "length mismatch";

const UPLOAD_USAGE: &str = "UPLOAD [<name> [[<length>] <base64>]]";

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Blank => f.write_str("empty request"),
            ParseError::UnterminatedQuote => f.write_str("unterminated quote in request"),
            ParseError::BadEscape => f.write_str("bad escape in quoted token (only \\\" and \\\\)"),
            ParseError::GarbageAfterQuote => f.write_str("closing quote must end the token"),
            ParseError::NotUtf8 => f.write_str("request is not valid UTF-8"),
            ParseError::Unknown => f.write_str(super::UNKNOWN_REQUEST),
            ParseError::Arity(usage) => write!(f, "usage: {usage}"),
            ParseError::LengthMismatch { .. } => f.write_str(LENGTH_MISMATCH),
        }
    }
}

fn is_sep(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Splits a line into raw tokens; `limit` stops after that many (the rest is left unparsed).
/// Returns the tokens and the offset where parsing stopped.
fn tokenize(line: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, usize), ParseError> {
    let mut tokens = Vec::new();
    let mut i = 0;
    while tokens.len() < limit {
        while i < line.len() && is_sep(line[i]) {
            i += 1;
        }
        if i == line.len() {
            break;
        }
        let mut tok = Vec::new();
        if line[i] == b'"' {
            i += 1;
            loop {
                match line.get(i) {
                    None => return Err(ParseError::UnterminatedQuote),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => match line.get(i + 1) {
                        Some(&c @ (b'"' | b'\\')) => {
                            tok.push(c);
                            i += 2;
                        }
                        None => return Err(ParseError::UnterminatedQuote),
                        Some(_) => return Err(ParseError::BadEscape),
                    },
                    Some(&c) => {
                        tok.push(c);
                        i += 1;
                    }
                }
            }
            if i < line.len() && !is_sep(line[i]) {
                return Err(ParseError::GarbageAfterQuote);
            }
        } else {
            while i < line.len() && !is_sep(line[i]) {
                tok.push(line[i]);
                i += 1;
            }
        }
        tokens.push(tok);
    }
    Ok((tokens, i))
}

fn text(tok: Vec<u8>) -> Result<String, ParseError> {
    String::from_utf8(tok).map_err(|_| ParseError::NotUtf8)
}

/// The `<length>` of a sized inline upload: decimal digits only. A number
/// too large for u64 is kept as u64::MAX (no line is that long, so it cannot match).
fn length(tok: &[u8]) -> Option<u64> {
    if tok.is_empty() || !tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        tok.iter()
            .try_fold(0u64, |n, d| {
                n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
            })
            .unwrap_or(u64::MAX),
    )
}

/// Parses one request line (without its `\n`; a trailing `\r` is dropped here).
pub fn parse_request(line: &[u8]) -> Result<Request, ParseError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (tokens, _) = tokenize(line, usize::MAX)?;
    let mut it = tokens.into_iter();
    let Some(cmd) = it.next() else {
        return Err(ParseError::Blank);
    };
    let args: Vec<Vec<u8>> = it.collect();
    let one = |usage: &'static str, args: Vec<Vec<u8>>| -> Result<String, ParseError> {
        let mut args = args.into_iter();
        match (args.next(), args.next()) {
            (Some(a), None) => text(a),
            _ => Err(ParseError::Arity(usage)),
        }
    };
    let word = cmd.to_ascii_uppercase();
    match word.as_slice() {
        b"LIST" if args.is_empty() => Ok(Request::List),
        b"LIST" => Err(ParseError::Arity("LIST")),
        b"STATS" if args.is_empty() => Ok(Request::Stats),
        b"STATS" => Err(ParseError::Arity("STATS")),
        b"GET" => one("GET <name>", args).map(Request::Get),
        b"DELETE" => one("DELETE <name>", args).map(Request::Delete),
        b"ENDUPLOAD" => Ok(Request::StrayEndUpload),
        b"UPLOAD" => {
            let mut args = args.into_iter();
            match (args.next(), args.next(), args.next(), args.next()) {
                (None, ..) => Ok(Request::Upload(None)),
                (Some(name), None, ..) => Ok(Request::Upload(Some(text(name)?))),
                (Some(name), Some(body), None, _) => Ok(Request::UploadInline {
                    name: text(name)?,
                    body,
                    sized: false,
                }),
                (Some(name), Some(len), Some(body), None) => {
                    let declared = length(&len).ok_or(ParseError::Arity(UPLOAD_USAGE))?;
                    let name = text(name)?;
                    let actual = body.len() as u64;
                    if declared != actual {
                        return Err(ParseError::LengthMismatch { declared, actual });
                    }
                    Ok(Request::UploadInline {
                        name,
                        body,
                        sized: true,
                    })
                }
                _ => Err(ParseError::Arity(UPLOAD_USAGE)),
            }
        }
        _ => Err(ParseError::Unknown),
    }
}

/// The start of an inline upload's line that is too long to hold: the name,
/// the `<length>` if the line gives one, and where the base64 begins.
#[derive(Debug, PartialEq, Eq)]
pub struct InlineHead {
    pub name: Result<String, ParseError>,
    pub length: Option<u64>,
    pub body: usize,
}

/// For a request line longer than the line limit: if it starts as
/// `UPLOAD <name> [<length>] <base64…`, its head, so the body can be streamed
/// instead of held. `None` for anything else.
///
/// A third token of digits followed by a separator and more is the length
/// (base64 holds no separator); a token of digits that runs on is base64.
pub fn inline_upload_start(partial: &[u8]) -> Option<InlineHead> {
    let (tokens, end) = tokenize(partial, 2).ok()?;
    if tokens.len() != 2 || !tokens[0].eq_ignore_ascii_case(b"UPLOAD") {
        return None;
    }
    let mut start = body_start(partial, end)?;
    let digits = partial[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let mut declared = None;
    if digits > 0 && partial.get(start + digits).copied().is_some_and(is_sep) {
        if let Some(body) = body_start(partial, start + digits) {
            declared = length(&partial[start..start + digits]);
            start = body;
        }
    }
    let name = tokens.into_iter().nth(1).map(text)?;
    Some(InlineHead {
        name,
        length: declared,
        body: start,
    })
}

/// After a token ending at `end`: where the next one starts, if a separator
/// follows the token and the next one is unquoted (a body, not a name).
fn body_start(partial: &[u8], end: usize) -> Option<usize> {
    if end >= partial.len() || !is_sep(partial[end]) {
        return None;
    }
    let mut start = end;
    while start < partial.len() && is_sep(partial[start]) {
        start += 1;
    }
    if start >= partial.len() || partial[start] == b'"' {
        return None;
    }
    Some(start)
}

/// [`inline_upload_start`] without the length: the name and where the base64 begins.
pub fn inline_upload_head(partial: &[u8]) -> Option<(Result<String, ParseError>, usize)> {
    inline_upload_start(partial).map(|h| (h.name, h.body))
}

/// Quotes a name for a request line when it needs it (the client's encoder).
/// Control characters are quoted too: a trailing `\r` outside quotes would be
/// taken for the line's own. (A `\n` cannot be sent at all: the client refuses it.)
pub fn quote_arg(arg: &str) -> String {
    let plain = |b: u8| !(is_sep(b) || b == b'"' || b == b'\\' || b.is_ascii_control());
    if !arg.is_empty() && arg.bytes().all(plain) {
        return arg.to_string();
    }
    let mut s = String::with_capacity(arg.len() + 2);
    s.push('"');
    for c in arg.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_case_insensitive_and_arguments_keep_case() {
        assert_eq!(parse_request(b"list"), Ok(Request::List));
        assert_eq!(parse_request(b"List\r"), Ok(Request::List));
        assert_eq!(
            parse_request(b"GET Photo.JPG"),
            Ok(Request::Get("Photo.JPG".into()))
        );
        assert_eq!(
            parse_request(b"get\tPhoto.JPG "),
            Ok(Request::Get("Photo.JPG".into()))
        );
        assert_eq!(parse_request(b"delete X"), Ok(Request::Delete("X".into())));
        assert_eq!(parse_request(b"stats"), Ok(Request::Stats));
        assert_eq!(parse_request(b"UPLOAD"), Ok(Request::Upload(None)));
        assert_eq!(
            parse_request(b"upload a.bin"),
            Ok(Request::Upload(Some("a.bin".into())))
        );
        assert_eq!(
            parse_request(b"UPLOAD a.bin aGVsbG8="),
            Ok(Request::UploadInline {
                name: "a.bin".into(),
                body: b"aGVsbG8=".to_vec(),
                sized: false
            })
        );
        assert_eq!(parse_request(b"ENDUPLOAD"), Ok(Request::StrayEndUpload));
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(
            parse_request(br#"GET "my file.txt""#),
            Ok(Request::Get("my file.txt".into()))
        );
        assert_eq!(
            parse_request(br#"GET "a\"b\\c""#),
            Ok(Request::Get("a\"b\\c".into()))
        );
        assert_eq!(
            parse_request(br#"GET "abc"#),
            Err(ParseError::UnterminatedQuote)
        );
        assert_eq!(parse_request(br#"GET "a\nb""#), Err(ParseError::BadEscape));
        assert_eq!(
            parse_request(br#"GET "a"b"#),
            Err(ParseError::GarbageAfterQuote)
        );
        assert_eq!(parse_request(br#"GET """#), Ok(Request::Get(String::new())));
    }

    #[test]
    fn errors() {
        assert_eq!(parse_request(b"   "), Err(ParseError::Blank));
        assert_eq!(parse_request(b"FOO x"), Err(ParseError::Unknown));
        assert_eq!(parse_request(b"__init__"), Err(ParseError::Unknown));
        assert!(matches!(parse_request(b"GET"), Err(ParseError::Arity(_))));
        assert!(matches!(
            parse_request(b"GET a b"),
            Err(ParseError::Arity(_))
        ));
        assert!(matches!(
            parse_request(b"DELETE"),
            Err(ParseError::Arity(_))
        ));
        assert!(matches!(
            parse_request(b"LIST x"),
            Err(ParseError::Arity(_))
        ));
        assert_eq!(parse_request(b"GET \xff\xfe"), Err(ParseError::NotUtf8));
        assert_eq!(ParseError::Unknown.to_string(), "request tidak dikenali");
    }

    #[test]
    fn inline_head() {
        let (name, at) = inline_upload_head(b"upload big.bin QUJD").unwrap();
        assert_eq!(name.unwrap(), "big.bin");
        assert_eq!(at, 15);
        assert!(inline_upload_head(b"UPLOAD big.bin").is_none());
        assert!(inline_upload_head(b"GET big.bin QUJD").is_none());
        let (name, at) = inline_upload_head(b"UPLOAD \"a b\" QUJD").unwrap();
        assert_eq!((name.unwrap().as_str(), at), ("a b", 13));
    }

    #[test]
    fn a_sized_upload_gives_its_length_first_and_must_match_it() {
        let sized = |name: &str, body: &[u8]| {
            Ok(Request::UploadInline {
                name: name.into(),
                body: body.to_vec(),
                sized: true,
            })
        };
        assert_eq!(
            parse_request(b"UPLOAD a.bin 8 aGVsbG8="),
            sized("a.bin", b"aGVsbG8=")
        );
        assert_eq!(
            parse_request(b"upload \"a b\"\t4 QUJD\r"),
            sized("a b", b"QUJD")
        );
        // Three tokens are still `<name> <base64>`, digits or not.
        assert_eq!(
            parse_request(b"UPLOAD a.bin 1234"),
            Ok(Request::UploadInline {
                name: "a.bin".into(),
                body: b"1234".to_vec(),
                sized: false
            })
        );
        for (line, declared, actual) in [
            (&b"UPLOAD a.bin 9 aGVsbG8="[..], 9, 8),
            (b"UPLOAD a.bin 7 aGVsbG8=", 7, 8),
            (b"UPLOAD a.bin 0 QUJD", 0, 4),
            (b"UPLOAD a 99999999999999999999999 QUJD", u64::MAX, 4),
        ] {
            let e = parse_request(line).unwrap_err();
            assert_eq!(e, ParseError::LengthMismatch { declared, actual });
            assert_eq!(e.to_string(), "length mismatch");
        }
        for line in [
            &b"UPLOAD a.bin x8 aGVsbG8="[..],
            b"UPLOAD a.bin -8 aGVsbG8=",
            b"UPLOAD a.bin 8 aGVs bG8=",
        ] {
            assert_eq!(
                parse_request(line),
                Err(ParseError::Arity(UPLOAD_USAGE)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_long_sized_upload_is_streamed_after_its_length() {
        let head = |line: &[u8]| inline_upload_start(line).unwrap();
        let h = head(b"UPLOAD big.bin 12 QUJDQUJDQUJD");
        assert_eq!(
            (h.name.unwrap().as_str(), h.length, h.body),
            ("big.bin", Some(12), 18)
        );
        let h = head(b"UPLOAD big.bin \t 4\t\tQUJD");
        assert_eq!((h.length, h.body), (Some(4), 20));
        // Digits that run on are base64, and so are digits not yet followed by more.
        assert_eq!(head(b"UPLOAD b 123456").length, None);
        assert_eq!(head(b"UPLOAD b 123456").body, 9);
        assert_eq!(head(b"UPLOAD b 12 ").length, None);
        assert_eq!(head(b"UPLOAD b 12x QUJD").length, None);
        // The old head skips the length too: both name where the base64 begins.
        assert_eq!(
            inline_upload_head(b"UPLOAD big.bin 4 QUJD").map(|(_, at)| at),
            Some(17)
        );
    }

    #[test]
    fn quoting_round_trips() {
        for name in [
            "plain",
            "with space",
            "q\"uote",
            "back\\slash",
            "",
            "tab\there",
            "cr\r",
        ] {
            let line = format!("GET {}", quote_arg(name));
            assert_eq!(
                parse_request(line.as_bytes()),
                Ok(Request::Get(name.into())),
                "{line}"
            );
        }
    }
}
