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
    /// `UPLOAD <name> <base64>`: the whole file on the request line.
    UploadInline(String, Vec<u8>),
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
}

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
            match (args.next(), args.next(), args.next()) {
                (None, _, _) => Ok(Request::Upload(None)),
                (Some(name), None, _) => Ok(Request::Upload(Some(text(name)?))),
                (Some(name), Some(body), None) => Ok(Request::UploadInline(text(name)?, body)),
                _ => Err(ParseError::Arity("UPLOAD [<name> [<base64>]]")),
            }
        }
        _ => Err(ParseError::Unknown),
    }
}

/// For a request line longer than the line limit: if it starts as
/// `UPLOAD <name> <base64…`, the name and the offset where the base64 begins,
/// so the body can be streamed instead of held. `None` for anything else.
pub fn inline_upload_head(partial: &[u8]) -> Option<(Result<String, ParseError>, usize)> {
    let (tokens, end) = tokenize(partial, 2).ok()?;
    if tokens.len() != 2 || !tokens[0].eq_ignore_ascii_case(b"UPLOAD") {
        return None;
    }
    // The name token must be finished: a separator follows it, then the body starts.
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
    let name = tokens.into_iter().nth(1).map(text)?;
    Some((name, start))
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
            Ok(Request::UploadInline("a.bin".into(), b"aGVsbG8=".to_vec()))
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
