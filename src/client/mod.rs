//! The client library: one connection, any number of requests, every transfer
//! streamed in bounded memory and checked.
//!
//! `get` decodes the base64 as it arrives and hands the bytes to a writer while
//! hashing them; `upload` reads a source in chunks, encodes each one as a
//! base64 line and checks the name the server returns against the local
//! SHA-256. Nothing here holds a whole file.
//!
//! It takes what any server of the protocol sends, not only ours: the Python
//! servers of the exercise write their keys in another order (a GET may put
//! the content first), add keys, write `"status": "ok"`, give their reasons
//! in Indonesian and send the `\r\n\r\n` terminator in a write of its own.
//! Whatever is not the protocol is a [`ClientError::Protocol`] whose message
//! says what was expected and what came. Such a server names a plain upload
//! its own way (MD5): [`Client::upload_as_named_by_server`] takes its name,
//! and [`Client::get_compare`] reads the file back against the content sent.
//!
//! Errors keep the two sides apart: the network ([`ClientError::Io`]) and the
//! local sink or source of a transfer ([`ClientError::Local`]), so that a
//! full disk or a closed pipe is never reported as a connection failure.
//! The library never prints and never exits: every failure is returned.

mod compare;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::protocol::base64::{encode_chunk, B64Error, LineDecoder};
use crate::protocol::request::quote_arg;
use crate::protocol::{check_name, detect_extension, hex, read_full, ReadBuf, TERMINATOR};
use crate::tcp::Congestion;

use compare::Comparer;

/// Raw bytes per upload line (a multiple of 3: each line decodes on its own).
pub const UPLOAD_CHUNK: usize = 192 * 1024;
/// Largest non-GET response the client accepts.
const MAX_RESPONSE: usize = 64 << 20;
/// Largest part of a GET answer before its content (the keys a server puts
/// first, in any order).
const MAX_GET_HEAD: usize = 64 * 1024;
/// How much of an unexpected answer an error message quotes.
const EXCERPT: usize = 200;

/// The local side of a transfer that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalSide {
    /// Where a GET writes what it receives (a file, a pipe, a checker).
    Sink,
    /// What an upload reads to send.
    Source,
}

#[derive(Debug)]
pub enum ClientError {
    /// Could not connect.
    Connect(io::Error),
    /// The connection failed or timed out during a request.
    Io(io::Error),
    /// The local sink or source of a transfer failed (a full disk, a closed
    /// pipe, an unreadable file): not the network.
    Local(LocalSide, io::Error),
    /// The server answered ERROR, with its reason.
    Server(String),
    /// The bytes did not match what was expected.
    Verify(String),
    /// The server's answer did not follow the protocol.
    Protocol(String),
}

impl ClientError {
    /// Writing to the sink failed.
    pub fn sink(e: io::Error) -> ClientError {
        ClientError::Local(LocalSide::Sink, e)
    }

    /// Reading the source failed.
    pub fn source(e: io::Error) -> ClientError {
        ClientError::Local(LocalSide::Source, e)
    }

    /// A short cause for grouping failures: connect refused, timeout, reset,
    /// server error, verification mismatch, protocol, io, local write, local read.
    pub fn cause(&self) -> String {
        fn io_cause(e: &io::Error, connecting: bool) -> &'static str {
            match e.kind() {
                io::ErrorKind::ConnectionRefused => "connect refused",
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timeout",
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted => "reset",
                io::ErrorKind::UnexpectedEof => "closed early",
                _ if connecting => "connect failed",
                _ => "io",
            }
        }
        match self {
            ClientError::Connect(e) => io_cause(e, true).to_string(),
            ClientError::Io(e) => io_cause(e, false).to_string(),
            ClientError::Local(LocalSide::Sink, _) => "local write".to_string(),
            ClientError::Local(LocalSide::Source, _) => "local read".to_string(),
            ClientError::Server(m) => format!("server ERROR: {m}"),
            ClientError::Verify(_) => "verification mismatch".to_string(),
            ClientError::Protocol(_) => "protocol".to_string(),
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "cannot connect: {e}"),
            ClientError::Io(e) => write!(f, "connection failed: {e}"),
            ClientError::Local(LocalSide::Sink, e) => write!(f, "local write failed: {e}"),
            ClientError::Local(LocalSide::Source, e) => {
                write!(f, "reading the source failed: {e}")
            }
            ClientError::Server(m) => write!(f, "server answered ERROR: {m}"),
            ClientError::Verify(m) => write!(f, "verification failed: {m}"),
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for ClientError {}

/// An `io::Error` met on the connection; a local one goes through
/// [`ClientError::sink`] or [`ClientError::source`] instead.
impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

pub type Result<T> = std::result::Result<T, ClientError>;

/// What a verified GET delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub bytes: u64,
    pub sha256: String,
}

/// What a verified upload stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The name the server stored the file under.
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

pub struct Client {
    stream: TcpStream,
    buf: ReadBuf,
    /// The most one read from the socket takes (the unit tests make it
    /// small, so that every answer arrives cut at every place).
    max_read: u64,
    /// Response bytes read by the last request.
    pub last_response_bytes: u64,
}

/// What a streamed upload checks of the name the server stored it under.
enum Naming<'a> {
    /// `UPLOAD <name>`: stored under that very name.
    Given(&'a str),
    /// Plain `UPLOAD`, our server's naming: SHA-256 of the content plus the
    /// detected extension; the hash taken while sending, or known already.
    Sha256(Option<&'a str>),
    /// Plain `UPLOAD` to a server that names files its own way: any valid
    /// name is taken (the content is checked by reading it back).
    ByServer,
}

impl Client {
    /// Connects to `addr` (host:port); `timeout` bounds the connect and
    /// every read and write. The TCP congestion control is `auto`'s (see
    /// [`crate::tcp`]).
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Client> {
        Client::connect_with(addr, timeout, &Congestion::Auto)
    }

    /// [`Client::connect`] with the congestion control `cc` says.
    pub fn connect_with(
        addr: impl ToSocketAddrs,
        timeout: Duration,
        cc: &Congestion,
    ) -> Result<Client> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(ClientError::Connect)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
        for a in addrs {
            match crate::tcp::connect(&a, timeout, cc) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Client {
                        stream,
                        buf: ReadBuf::new(256 * 1024),
                        max_read: u64::MAX,
                        last_response_bytes: 0,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(ClientError::Connect(last))
    }

    /// The TCP congestion control this connection uses.
    pub fn tcp_congestion(&self) -> io::Result<String> {
        crate::tcp::of(self.stream.as_fd())
    }

    /// Makes every later read from the socket take at most `n` bytes, so
    /// that each answer arrives cut at every place (unit tests).
    #[cfg(test)]
    fn reading_at_most(mut self, n: u64) -> Client {
        self.max_read = n;
        self
    }

    fn send_line(&mut self, line: &str) -> Result<()> {
        self.last_response_bytes = 0;
        if line.contains('\n') {
            // It would end the request early and make the rest a second one.
            return Err(ClientError::Io(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a request line cannot hold a newline",
            )));
        }
        let mut l = line.as_bytes().to_vec();
        l.push(b'\n');
        self.stream.write_all(&l)?;
        Ok(())
    }

    fn fill(&mut self) -> Result<()> {
        // Pending bytes that fill the whole buffer (a long response) grow it.
        if !self.buf.make_room() {
            self.buf.grow();
        }
        match self
            .buf
            .fill_from(&mut (&self.stream).take(self.max_read))?
        {
            0 => Err(ClientError::Io(io::ErrorKind::UnexpectedEof.into())),
            n => {
                self.last_response_bytes += n as u64;
                Ok(())
            }
        }
    }

    fn pending(&self) -> &[u8] {
        self.buf.pending()
    }

    fn consume(&mut self, n: usize) {
        self.buf.consume(n);
    }

    /// Reads one response up to and including `\r\n\r\n`; returns it without the terminator.
    pub fn read_response(&mut self) -> Result<Vec<u8>> {
        let mut searched: usize = 0;
        loop {
            let p = self.pending();
            if let Some(i) = find(&p[searched.saturating_sub(3)..], TERMINATOR) {
                let at = searched.saturating_sub(3) + i;
                let body = p[..at].to_vec();
                self.consume(at + TERMINATOR.len());
                return Ok(body);
            }
            searched = p.len();
            if searched > MAX_RESPONSE {
                return Err(ClientError::Protocol("response too long".into()));
            }
            self.fill()?;
        }
    }

    /// Reads a JSON response; an ERROR becomes `ClientError::Server`.
    fn read_json(&mut self) -> Result<serde_json::Value> {
        let body = self.read_response()?;
        parse_json(&body)
    }

    /// Sends a raw request line and returns the raw response (tests and scripts).
    pub fn raw(&mut self, line: &str) -> Result<Vec<u8>> {
        self.send_line(line)?;
        self.read_response()
    }

    pub fn list(&mut self) -> Result<Vec<String>> {
        self.send_line("LIST")?;
        let v = self.read_json()?;
        let names = v["data"].as_array().and_then(|a| {
            a.iter()
                .map(|x| x.as_str().map(String::from))
                .collect::<Option<Vec<String>>>()
        });
        names.ok_or_else(|| {
            ClientError::Protocol(format!(
                "LIST: expected \"data\": [names], got \"data\": {}",
                excerpt(v["data"].to_string().as_bytes())
            ))
        })
    }

    pub fn stats(&mut self) -> Result<serde_json::Value> {
        self.send_line("STATS")?;
        let v = self.read_json()?;
        Ok(v["data"].clone())
    }

    pub fn delete(&mut self, name: &str) -> Result<()> {
        self.send_line(&format!("DELETE {}", quote_arg(name)))?;
        self.read_json().map(drop)
    }

    /// Downloads `name` into `sink`, decoding and hashing as it streams.
    /// Checks that the base64 is valid and complete and that the decoded
    /// length is the one its text implies.
    pub fn get(&mut self, name: &str, sink: &mut dyn Write) -> Result<Download> {
        let mut h = HashingWriter {
            inner: sink,
            hasher: Sha256::new(),
        };
        let bytes = self.get_into(name, &mut h)?;
        Ok(Download {
            bytes,
            sha256: hex(&h.hasher.finalize()),
        })
    }

    /// [`get`](Self::get) without the hash: for a sink that checks the
    /// content itself (the pool compares with the generated test file).
    /// Returns the decoded length.
    ///
    /// The content is decoded as it arrives, from just after `"data_file":
    /// "` to its closing quote, wherever the key is among the others; then
    /// the whole answer with the content left out (what came before the key
    /// and what came after the closing quote) must be a JSON object that
    /// says OK, for this very name.
    pub fn get_into(&mut self, name: &str, sink: &mut dyn Write) -> Result<u64> {
        self.send_line(&format!("GET {}", quote_arg(name)))?;
        let (key_at, body_at) = loop {
            let p = self.pending();
            if let Some(found) = find_data_file(p) {
                break found;
            }
            if let Some(i) = find(p, TERMINATOR) {
                // A whole answer without content: an ERROR, or not the protocol.
                let body = p[..i].to_vec();
                self.consume(i + TERMINATOR.len());
                parse_json(&body)?;
                return Err(ClientError::Protocol(format!(
                    "GET answer without data_file: {}",
                    excerpt(&body)
                )));
            }
            if p.len() > MAX_GET_HEAD {
                return Err(ClientError::Protocol(format!(
                    "GET answer without data_file in its first {MAX_GET_HEAD} bytes: {}",
                    excerpt(p)
                )));
            }
            self.fill()?;
        };
        let head = self.pending()[..key_at].to_vec();
        self.consume(body_at);
        let mut decoder = LineDecoder::new();
        let mut out = Vec::with_capacity(self.buf.capacity());
        let mut text_len: u64 = 0;
        let bad = |e: B64Error| ClientError::Verify(format!("GET {name}: {e}"));
        loop {
            // Base64 holds no '"': a piece that decodes whole does not hold
            // the content's closing quote, so only a piece that fails is
            // searched for it (and decoded again up to it).
            let before = decoder.clone();
            let p = self.pending();
            out.clear();
            let done = match decoder.feed(p, &mut out) {
                Ok(()) => None,
                Err(e) => {
                    let Some(i) = memchr::memchr(b'"', p) else {
                        return Err(bad(e));
                    };
                    decoder = before;
                    out.clear();
                    decoder.feed(&p[..i], &mut out).map_err(bad)?;
                    Some(i)
                }
            };
            text_len += done.unwrap_or(p.len()) as u64;
            sink.write_all(&out).map_err(ClientError::sink)?;
            match done {
                Some(i) => {
                    self.consume(i + 1);
                    break;
                }
                None => {
                    let n = self.pending().len();
                    self.consume(n);
                    self.fill()?;
                }
            }
        }
        let bytes = decoder.finish_line().map_err(bad)?;
        let expected_max = text_len / 4 * 3;
        if bytes > expected_max || bytes + 2 < expected_max {
            return Err(ClientError::Verify(format!(
                "GET {name}: decoded {bytes} bytes from {text_len} base64 bytes"
            )));
        }
        let tail = self.read_response()?;
        check_get_answer(name, head, &tail)?;
        Ok(bytes)
    }

    /// Downloads `name` and compares it, byte for byte as it streams, with
    /// what `expected` reads (the content that was uploaded, a local file):
    /// a difference is a [`ClientError::Verify`] that names the first wrong
    /// byte's offset (`content differs from byte 200003 on`) or both lengths.
    /// Nothing is kept; returns the length. A failure to read `expected` is
    /// [`ClientError::Local`] (source).
    pub fn get_compare(&mut self, name: &str, expected: &mut dyn Read) -> Result<u64> {
        let mut cmp = Comparer::new(expected);
        let got = self.get_into(name, &mut cmp);
        if let Some(e) = cmp.take_source_error() {
            return Err(ClientError::source(e));
        }
        let bytes = got?;
        match cmp.verdict() {
            Ok(Ok(())) => Ok(bytes),
            Ok(Err(m)) => Err(ClientError::Verify(format!("GET {name}: {m}"))),
            Err(e) => Err(ClientError::source(e)),
        }
    }

    /// Streams `src` as a base64 upload. With `name`, stores it under that name;
    /// without, under its SHA-256 name, which is checked against the local hash.
    pub fn upload(&mut self, name: Option<&str>, src: &mut dyn Read) -> Result<Upload> {
        let naming = match name {
            Some(n) => Naming::Given(n),
            None => Naming::Sha256(None),
        };
        self.upload_streamed(naming, src)
    }

    /// A plain `UPLOAD` of content whose SHA-256 is known already (generated
    /// content hashed once beforehand): the stored name is checked against
    /// it, and nothing is hashed while sending.
    pub fn upload_known(&mut self, src: &mut dyn Read, sha256: &str) -> Result<Upload> {
        self.upload_streamed(Naming::Sha256(Some(sha256)), src)
    }

    /// A plain `UPLOAD` to a server that names uploads its own way (the
    /// exercise's servers use the MD5 of the content): the name it reports is
    /// taken as long as it is a valid name, and returned, so that the content
    /// can be read back and compared ([`get_compare`](Self::get_compare)).
    /// The returned `sha256` is the SHA-256 of what was sent, taken while
    /// sending.
    pub fn upload_as_named_by_server(&mut self, src: &mut dyn Read) -> Result<Upload> {
        self.upload_streamed(Naming::ByServer, src)
    }

    fn upload_streamed(&mut self, naming: Naming<'_>, src: &mut dyn Read) -> Result<Upload> {
        let line = match naming {
            Naming::Given(n) => format!("UPLOAD {}", quote_arg(n)),
            Naming::Sha256(_) | Naming::ByServer => "UPLOAD".to_string(),
        };
        self.send_line(&line)?;
        let ready = self.read_response()?;
        if !ready.starts_with(b"READY") {
            // An ERROR (a name refused) is the server's reason; anything else
            // is not the protocol.
            return Err(match parse_json(&ready) {
                Err(ClientError::Server(m)) => ClientError::Server(m),
                _ => ClientError::Protocol(format!(
                    "UPLOAD: expected READY TO RECEIVE FILE, got {}",
                    excerpt(&ready)
                )),
            });
        }
        let known = match naming {
            Naming::Sha256(k) => k,
            _ => None,
        };
        let mut raw = vec![0u8; UPLOAD_CHUNK];
        let mut text = Vec::with_capacity(UPLOAD_CHUNK / 3 * 4 + 1);
        let mut hasher = known.is_none().then(Sha256::new);
        let mut head = Vec::new();
        let mut bytes: u64 = 0;
        loop {
            let n = read_full(src, &mut raw).map_err(ClientError::source)?;
            if n == 0 {
                break;
            }
            if head.len() < 8 {
                head.extend_from_slice(&raw[..n.min(8)]);
            }
            if let Some(h) = hasher.as_mut() {
                h.update(&raw[..n]);
            }
            bytes += n as u64;
            text.clear();
            encode_chunk(&raw[..n], &mut text);
            text.push(b'\n');
            if let Err(e) = self.stream.write_all(&text) {
                return Err(self.error_after_write_failure(e));
            }
            if n < raw.len() {
                break;
            }
        }
        if let Err(e) = self.stream.write_all(b"ENDUPLOAD\n") {
            return Err(self.error_after_write_failure(e));
        }
        let stored = self.read_stored_name("UPLOAD")?;
        let sha = match (hasher, known) {
            (Some(h), _) => hex(&h.finalize()),
            (None, k) => k.unwrap_or_default().to_ascii_lowercase(),
        };
        let expected = match naming {
            Naming::Given(n) => Some(n.to_string()),
            Naming::Sha256(_) => Some(format!("{sha}{}", detect_extension(&head))),
            Naming::ByServer => None,
        };
        match expected {
            Some(expected) if stored != expected => {
                return Err(ClientError::Verify(format!(
                    "stored as {stored:?}, expected {expected:?}"
                )));
            }
            Some(_) => {}
            None => check_name(&stored).map_err(|e| {
                ClientError::Protocol(format!(
                    "UPLOAD: expected the name of a stored file, got {stored:?} ({e})"
                ))
            })?,
        }
        Ok(Upload {
            name: stored,
            bytes,
            sha256: sha,
        })
    }

    /// Reads an upload's answer: `data.file_path`, the name the file was stored under.
    fn read_stored_name(&mut self, what: &str) -> Result<String> {
        let v = self.read_json()?;
        match v["data"]["file_path"].as_str() {
            Some(s) => Ok(s.to_string()),
            None => Err(ClientError::Protocol(format!(
                "{what}: expected \"data\": {{\"file_path\": name}} in the answer, got {}",
                excerpt(v.to_string().as_bytes())
            ))),
        }
    }

    /// `UPLOAD <name> <base64>`: the whole (small) file on the request line.
    pub fn upload_inline(&mut self, name: &str, data: &[u8]) -> Result<Upload> {
        let mut text = Vec::new();
        encode_chunk(data, &mut text);
        // An empty body is written `""`: without a third token the line would
        // be a streamed `UPLOAD <name>`, answered with READY.
        let line = format!(
            "UPLOAD {} {}",
            quote_arg(name),
            quote_arg(&String::from_utf8_lossy(&text))
        );
        self.send_line(&line)?;
        let stored = self.read_stored_name("UPLOAD")?;
        if stored != name {
            return Err(ClientError::Verify(format!(
                "stored as {stored:?}, expected {name:?}"
            )));
        }
        Ok(Upload {
            name: stored,
            bytes: data.len() as u64,
            sha256: hex(&Sha256::digest(data)),
        })
    }

    /// The server may have answered ERROR and closed while we were still sending:
    /// its reason is more useful than the write error.
    fn error_after_write_failure(&mut self, e: io::Error) -> ClientError {
        let _ = self.stream.set_read_timeout(Some(Duration::from_secs(2)));
        match self.read_json() {
            Err(ClientError::Server(m)) => ClientError::Server(m),
            _ => ClientError::Io(e),
        }
    }
}

/// Parses an answer: a JSON object whose `status` is OK or ERROR, in any
/// case (the exercise's servers write `"ok"`), its other keys in any order.
/// An ERROR becomes [`ClientError::Server`] with its reason, the `data`
/// string in whatever language the server writes it.
fn parse_json(body: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ClientError::Protocol(format!(
            "expected a JSON answer, got {} ({e})",
            excerpt(body)
        ))
    })?;
    let expected = "expected \"status\": \"OK\" or \"ERROR\"";
    match v.get("status") {
        Some(Value::String(s)) if s.eq_ignore_ascii_case("OK") => Ok(v),
        Some(Value::String(s)) if s.eq_ignore_ascii_case("ERROR") => {
            Err(ClientError::Server(error_reason(&v)))
        }
        Some(other) => Err(ClientError::Protocol(format!(
            "{expected}, got \"status\": {}",
            excerpt(other.to_string().as_bytes())
        ))),
        None => Err(ClientError::Protocol(format!(
            "{expected}, got an answer without status: {}",
            excerpt(body)
        ))),
    }
}

/// An ERROR answer's reason: its `data` string (the protocol's place for it),
/// else its `message` string, else whatever `data` holds.
fn error_reason(v: &Value) -> String {
    match (&v["data"], &v["message"]) {
        (Value::String(s), _) | (Value::Null, Value::String(s)) => s.clone(),
        (Value::Null, _) => "(no reason)".to_string(),
        (other, _) => other.to_string(),
    }
}

/// Checks a GET answer with its content left out: `head` (everything before
/// the `"data_file"` key) and `tail` (everything after the content's closing
/// quote, up to the terminator) around an empty `"data_file": ""` must be a
/// JSON object that says OK for `name`, the content being its own top-level
/// `data_file`.
fn check_get_answer(name: &str, mut head: Vec<u8>, tail: &[u8]) -> Result<()> {
    head.extend_from_slice(b"\"data_file\": \"\"");
    head.extend_from_slice(tail);
    let rest = head;
    let v = parse_json(&rest).map_err(|e| match e {
        ClientError::Protocol(m) => {
            ClientError::Protocol(format!("GET {name}: the answer without its content: {m}"))
        }
        e => e,
    })?;
    if v["data_file"] != "" {
        return Err(ClientError::Protocol(format!(
            "GET {name}: expected the content in the answer's own data_file, got {}",
            excerpt(&rest)
        )));
    }
    match v["data_namafile"].as_str() {
        Some(n) if n == name => Ok(()),
        Some(n) => Err(ClientError::Verify(format!(
            "GET {name}: the answer is for {n:?}"
        ))),
        None => Err(ClientError::Protocol(format!(
            "GET {name}: expected \"data_namafile\": {name:?} in the answer, got {}",
            excerpt(&rest)
        ))),
    }
}

/// The first bytes of an unexpected answer, quoted, for an error message.
fn excerpt(body: &[u8]) -> String {
    let cut = body.len().min(EXCERPT);
    let more = if cut < body.len() { "..." } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(&body[..cut]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// Hashes what passes through to `inner`.
struct HashingWriter<'a> {
    inner: &'a mut dyn Write,
    hasher: Sha256,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Where the key `"data_file"` starts and the offset just past its value's
/// opening quote (`"data_file": "`, any spacing), in the pending bytes of a
/// GET answer; `None` until they hold it. A `"data_file"` that is a value,
/// not a key, is passed over (the answer's check catches one in a nested object).
fn find_data_file(p: &[u8]) -> Option<(usize, usize)> {
    let key = b"\"data_file\"";
    let skip_space = |mut i: usize| {
        while p.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
            i += 1;
        }
        i
    };
    for at in memchr::memmem::find_iter(p, key) {
        let i = skip_space(at + key.len());
        match p.get(i) {
            None => return None,
            Some(b':') => {}
            Some(_) => continue,
        }
        let i = skip_space(i + 1);
        match p.get(i) {
            None => return None,
            Some(b'"') => return Some((at, i + 1)),
            Some(_) => continue,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_to_loopback_uses_reno_unless_told_otherwise() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let c = Client::connect(addr, Duration::from_secs(5)).unwrap();
        assert_eq!(c.tcp_congestion().unwrap(), "reno");
        let c = Client::connect_with(addr, Duration::from_secs(5), &Congestion::System).unwrap();
        assert_eq!(c.tcp_congestion().unwrap(), crate::tcp::system_default());
        // A name: every address, loopback or not.
        let named = Congestion::Named("reno".into());
        let c = Client::connect_with(addr, Duration::from_secs(5), &named).unwrap();
        assert_eq!(c.tcp_congestion().unwrap(), "reno");
    }
    use crate::protocol::json;
    use crate::protocol::{base64, READY};
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    /// A one-connection server that reads one request line and answers `answer`.
    fn answering(answer: Vec<u8>) -> (SocketAddr, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            // The client may give up and close before it has read everything.
            let _ = (&s).write_all(&answer);
            // Whatever else comes (an upload's body) until the client goes.
            let _ = io::copy(&mut r, &mut io::sink());
            line
        });
        (addr, server)
    }

    /// Takes `room` bytes, then fails like a full disk or a closed pipe.
    struct FailingSink {
        room: usize,
        kind: io::ErrorKind,
    }

    impl Write for FailingSink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::new(self.kind, "the sink fails"));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_sink_that_fails_is_a_local_error_not_a_connection_failure() {
        let content = vec![7u8; 300_000];
        for (room, kind) in [
            (0, io::ErrorKind::StorageFull),
            (100_000, io::ErrorKind::BrokenPipe),
        ] {
            let mut answer = json::get_head("a.bin").into_bytes();
            answer.extend_from_slice(base64::encode(&content).as_bytes());
            answer.extend_from_slice(json::GET_TAIL);
            let (addr, server) = answering(answer);
            let mut c = Client::connect(addr, Duration::from_secs(10)).unwrap();
            let mut sink = FailingSink { room, kind };
            let e = c.get("a.bin", &mut sink).unwrap_err();
            assert!(
                matches!(&e, ClientError::Local(LocalSide::Sink, io) if io.kind() == kind),
                "{e:?}"
            );
            assert!(e.to_string().starts_with("local write failed: "), "{e}");
            assert_eq!(e.cause(), "local write");
            drop(c);
            assert_eq!(server.join().unwrap(), "GET a.bin\n");
        }
    }

    /// Gives `room` bytes, then fails like an unreadable file.
    struct FailingSource {
        room: usize,
    }

    impl Read for FailingSource {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::other("the source fails"));
            }
            let n = buf.len().min(self.room);
            buf[..n].fill(1);
            self.room -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_source_that_fails_is_a_local_error_not_a_connection_failure() {
        for room in [0, 2 * UPLOAD_CHUNK + 5] {
            let (addr, server) = answering(READY.to_vec());
            let mut c = Client::connect(addr, Duration::from_secs(10)).unwrap();
            let e = c
                .upload(Some("b.bin"), &mut FailingSource { room })
                .unwrap_err();
            assert!(
                matches!(&e, ClientError::Local(LocalSide::Source, _)),
                "{e:?}"
            );
            assert!(
                e.to_string().starts_with("reading the source failed: "),
                "{e}"
            );
            assert_eq!(e.cause(), "local read");
            drop(c);
            assert_eq!(server.join().unwrap(), "UPLOAD b.bin\n");
        }
    }

    // -----------------------------------------------------------------------
    // What other servers of the protocol send (the exercise's Python servers).

    const T: Duration = Duration::from_secs(10);

    /// The most bytes a read takes in the tests that cut answers: every
    /// answer arrives in pieces of these sizes (so its terminator is cut at
    /// every place), and whole.
    const CUTS: [u64; 6] = [1, 2, 3, 5, 7, u64::MAX];

    /// A one-connection server that answers each request with the next of
    /// `answers`, each in one write. After an answer that is READY it reads
    /// the upload's body up to `ENDUPLOAD`, which the next answer answers.
    /// Returns the request lines it read (not the body's).
    fn serving(answers: Vec<Vec<u8>>) -> (SocketAddr, JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut requests = Vec::new();
            let mut in_upload = false;
            for answer in answers {
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return requests;
                    }
                    if !in_upload || line == "ENDUPLOAD\n" {
                        break;
                    }
                }
                if !in_upload {
                    requests.push(line);
                }
                in_upload = answer.starts_with(READY);
                if (&s).write_all(&answer).is_err() {
                    return requests;
                }
            }
            let _ = io::copy(&mut r, &mut io::sink());
            requests
        });
        (addr, server)
    }

    /// A JSON answer with its terminator.
    fn answer(json: &str) -> Vec<u8> {
        let mut v = json.as_bytes().to_vec();
        v.extend_from_slice(TERMINATOR);
        v
    }

    /// A GET answer as the exercise's servers write it: the content first,
    /// then the status, the name and a key of their own.
    fn content_first(name: &str, content: &[u8]) -> Vec<u8> {
        answer(&format!(
            r#"{{"data_file": "{}", "status": "OK", "data_namafile": {}, "ukuran": {}}}"#,
            base64::encode(content),
            serde_json::to_string(name).unwrap(),
            content.len()
        ))
    }

    fn sample(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_get_answer_is_checked_whatever_the_order_of_its_keys() {
        let content = sample(3000);
        let b64 = base64::encode(&content);
        let answers = [
            format!(
                r#"{{"data_file": "{b64}", "status": "OK", "data_namafile": "a.bin", "ukuran": 3000}}"#
            ),
            format!(
                r#"{{"ukuran": 3000, "data_namafile": "a.bin", "data_file": "{b64}", "status": "ok"}}"#
            ),
            format!(
                r#"{{"note": "data_file", "status": "Ok", "data_namafile": "a.bin", "data_file":"{b64}"}}"#
            ),
            format!(
                r#"{{"status": "OK", "data_namafile": "a.bin", "data_file" : "{b64}", "extra": {{"k": [1, "}}"]}}}}"#
            ),
        ];
        for body in &answers {
            for cut in CUTS {
                let (addr, server) = serving(vec![answer(body)]);
                let mut c = Client::connect(addr, T).unwrap().reading_at_most(cut);
                let mut got = Vec::new();
                let d = c
                    .get("a.bin", &mut got)
                    .unwrap_or_else(|e| panic!("{:.60}, reads of {cut}: {e}", body));
                assert!(got == content, "{:.60}, reads of {cut}", body);
                assert_eq!(d.bytes, 3000);
                assert_eq!(d.sha256, hex(&Sha256::digest(&content)));
                drop(c);
                assert_eq!(server.join().unwrap(), ["GET a.bin\n"]);
            }
        }
    }

    #[test]
    fn every_answer_takes_its_terminator_cut_across_reads() {
        let content = sample(1000);
        for cut in CUTS {
            let (addr, server) = serving(vec![
                answer(r#"{"status": "OK", "data": ["a.bin", "b c.txt"], "jumlah": 2}"#),
                content_first("a.bin", &content),
                READY.to_vec(),
                answer(
                    r#"{"data": {"file_path": "up.bin"}, "message": "File uploaded successfully", "status": "OK"}"#,
                ),
                answer(r#"{"status": "ok", "message": "File deleted successfully"}"#),
                answer(r#"{"status": "ERROR", "data": "request tidak dikenali"}"#),
                answer(r#"{"status": "OK", "data": []}"#),
            ]);
            let mut c = Client::connect(addr, T).unwrap().reading_at_most(cut);
            assert_eq!(c.list().unwrap(), ["a.bin", "b c.txt"], "reads of {cut}");
            let mut got = Vec::new();
            c.get("a.bin", &mut got).unwrap();
            assert!(got == content, "reads of {cut}");
            let u = c.upload(Some("up.bin"), &mut &content[..]).unwrap();
            assert_eq!((u.name.as_str(), u.bytes), ("up.bin", 1000));
            c.delete("up.bin").unwrap();
            let e = c.stats().unwrap_err();
            assert!(
                matches!(&e, ClientError::Server(m) if m == "request tidak dikenali"),
                "reads of {cut}: {e:?}"
            );
            // Nothing of an answer was left over for the next one.
            assert!(c.list().unwrap().is_empty(), "reads of {cut}");
            drop(c);
            assert_eq!(
                server.join().unwrap(),
                [
                    "LIST\n",
                    "GET a.bin\n",
                    "UPLOAD up.bin\n",
                    "DELETE up.bin\n",
                    "STATS\n",
                    "LIST\n"
                ]
            );
        }
    }

    #[test]
    fn a_status_in_any_case_and_a_reason_in_any_language() {
        for ok in ["OK", "ok", "Ok", "oK"] {
            let (addr, server) = serving(vec![answer(&format!(
                r#"{{"status": "{ok}", "data": ["x"]}}"#
            ))]);
            let mut c = Client::connect(addr, T).unwrap();
            assert_eq!(c.list().unwrap(), ["x"], "status {ok}");
            drop(c);
            server.join().unwrap();
        }
        let errors = [
            (
                r#"{"status": "ERROR", "data": "file tidak ditemukan"}"#,
                "file tidak ditemukan",
            ),
            (
                r#"{"status": "error", "data": "\u30d5\u30a1\u30a4\u30eb\u304c\u3042\u308a\u307e\u305b\u3093"}"#,
                "ファイルがありません",
            ),
            (
                r#"{"data": "Datei nicht gefunden", "status": "Error"}"#,
                "Datei nicht gefunden",
            ),
            (
                r#"{"status": "ERROR", "message": "berkas hilang"}"#,
                "berkas hilang",
            ),
        ];
        for (body, reason) in errors {
            for cut in [1, u64::MAX] {
                let (addr, server) = serving(vec![answer(body)]);
                let mut c = Client::connect(addr, T).unwrap().reading_at_most(cut);
                let e = c.get("a.bin", &mut io::sink()).unwrap_err();
                assert!(
                    matches!(&e, ClientError::Server(m) if m == reason),
                    "{body}: {e:?}"
                );
                assert_eq!(e.to_string(), format!("server answered ERROR: {reason}"));
                assert_eq!(e.cause(), format!("server ERROR: {reason}"));
                drop(c);
                server.join().unwrap();
            }
        }
    }

    /// A request of the protocol-error cases.
    #[derive(Debug, Clone, Copy)]
    enum Ask {
        List,
        Get,
        Upload,
        UploadByServer,
    }

    fn ask(c: &mut Client, what: Ask) -> Result<()> {
        let content = sample(10);
        match what {
            Ask::List => c.list().map(drop),
            Ask::Get => c.get("a.bin", &mut io::sink()).map(drop),
            Ask::Upload => c.upload(Some("a.bin"), &mut &content[..]).map(drop),
            Ask::UploadByServer => c.upload_as_named_by_server(&mut &content[..]).map(drop),
        }
    }

    #[test]
    fn what_is_not_the_protocol_is_a_protocol_error_that_says_what_was_expected() {
        let ready = || READY.to_vec();
        let cases: Vec<(Ask, Vec<Vec<u8>>, &str)> = vec![
            (
                Ask::List,
                vec![answer(r#"{"status": "maybe", "data": []}"#)],
                r#"protocol error: expected "status": "OK" or "ERROR", got "status": "\"maybe\"""#,
            ),
            (
                Ask::List,
                vec![answer(r#"{"status": 1, "data": []}"#)],
                r#"protocol error: expected "status": "OK" or "ERROR", got "status": "1""#,
            ),
            (
                Ask::List,
                vec![answer(r#"{"data": []}"#)],
                r#"protocol error: expected "status": "OK" or "ERROR", got an answer without status: "{\"data\": []}""#,
            ),
            (
                Ask::List,
                vec![answer("[1, 2]")],
                r#"protocol error: expected "status": "OK" or "ERROR", got an answer without status: "[1, 2]""#,
            ),
            (
                Ask::List,
                vec![answer("Halo!")],
                r#"protocol error: expected a JSON answer, got "Halo!" ("#,
            ),
            (
                Ask::List,
                vec![answer(r#"{"status": "OK", "data": "a.bin"}"#)],
                r#"protocol error: LIST: expected "data": [names], got "data": "#,
            ),
            (
                Ask::Get,
                vec![answer(r#"{"status": "OK", "data_namafile": "a.bin"}"#)],
                r#"protocol error: GET answer without data_file: "{\"status\": \"OK\", \"data_namafile\": \"a.bin\"}""#,
            ),
            (
                Ask::Get,
                vec![answer(r#"{"data_file": "YWJj", "status": "OK"}"#)],
                r#"protocol error: GET a.bin: expected "data_namafile": "a.bin" in the answer, got "#,
            ),
            (
                Ask::Get,
                vec![answer(
                    r#"{"data_file": "YWJj", "status": "fine", "data_namafile": "a.bin"}"#,
                )],
                r#"protocol error: GET a.bin: the answer without its content: expected "status": "OK" or "ERROR", got "status": "\"fine\"""#,
            ),
            (
                Ask::Get,
                vec![answer(
                    r#"{"status": "OK", "data_namafile": "a.bin", "data_file": "YWJj"}}"#,
                )],
                "protocol error: GET a.bin: the answer without its content: expected a JSON answer, got ",
            ),
            (
                Ask::Get,
                vec![answer(
                    r#"{"status": "OK", "data_namafile": "a.bin", "data": {"data_file": "YWJj"}}"#,
                )],
                "protocol error: GET a.bin: expected the content in the answer's own data_file",
            ),
            (
                Ask::Get,
                vec![answer(
                    r#"{"data_file": "YWJj", "status": "OK", "data_namafile": "b.bin"}"#,
                )],
                r#"verification failed: GET a.bin: the answer is for "b.bin""#,
            ),
            (
                Ask::Upload,
                vec![answer(r#"{"status": "OK"}"#)],
                r#"protocol error: UPLOAD: expected READY TO RECEIVE FILE, got "{\"status\": \"OK\"}""#,
            ),
            (
                Ask::Upload,
                vec![b"GO AHEAD\r\n\r\n".to_vec()],
                r#"protocol error: UPLOAD: expected READY TO RECEIVE FILE, got "GO AHEAD""#,
            ),
            (
                Ask::Upload,
                vec![
                    ready(),
                    answer(r#"{"status": "OK", "message": "File uploaded successfully"}"#),
                ],
                r#"protocol error: UPLOAD: expected "data": {"file_path": name} in the answer, got "#,
            ),
            (
                Ask::UploadByServer,
                vec![
                    ready(),
                    answer(r#"{"status": "OK", "data": {"file_path": "../etc/passwd"}}"#),
                ],
                r#"protocol error: UPLOAD: expected the name of a stored file, got "../etc/passwd" (invalid name"#,
            ),
            (
                Ask::UploadByServer,
                vec![ready(), answer(r#"{"status": "OK", "data": {"file_path": ""}}"#)],
                r#"protocol error: UPLOAD: expected the name of a stored file, got "" (invalid name: empty)"#,
            ),
        ];
        for (what, answers, expected) in cases {
            for cut in [1, 3, u64::MAX] {
                let (addr, server) = serving(answers.clone());
                let mut c = Client::connect(addr, T).unwrap().reading_at_most(cut);
                let e = ask(&mut c, what).unwrap_err();
                assert!(
                    e.to_string().starts_with(expected),
                    "{what:?}, reads of {cut}:\n got      {e}\n expected {expected}"
                );
                let cause = if expected.starts_with("verification") {
                    "verification mismatch"
                } else {
                    "protocol"
                };
                assert_eq!(e.cause(), cause, "{e}");
                drop(c);
                server.join().unwrap();
            }
        }
    }

    #[test]
    fn an_upload_named_by_the_server_gives_its_name_which_our_naming_refuses() {
        let mut content = b"\x89PNG\r\n\x1a\n".to_vec();
        content.extend_from_slice(&sample(500_000));
        let stored = "0123456789abcdef0123456789abcdef.png";
        let answers = || {
            vec![
                READY.to_vec(),
                answer(&format!(
                    r#"{{"status": "OK", "message": "File uploaded successfully", "data": {{"file_path": "{stored}"}}}}"#
                )),
            ]
        };
        let sha = hex(&Sha256::digest(&content));

        let (addr, server) = serving(answers());
        let mut c = Client::connect(addr, T).unwrap();
        let u = c.upload_as_named_by_server(&mut &content[..]).unwrap();
        assert_eq!(
            u,
            Upload {
                name: stored.to_string(),
                bytes: content.len() as u64,
                sha256: sha.clone(),
            }
        );
        drop(c);
        assert_eq!(server.join().unwrap(), ["UPLOAD\n"]);

        // Our naming (SHA-256) is checked by `upload`: the server's is not it.
        let (addr, server) = serving(answers());
        let mut c = Client::connect(addr, T).unwrap();
        let e = c.upload(None, &mut &content[..]).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("verification failed: stored as \"{stored}\", expected \"{sha}.png\"")
        );
        drop(c);
        assert_eq!(server.join().unwrap(), ["UPLOAD\n"]);
    }

    #[test]
    fn get_compare_names_the_first_wrong_byte_or_both_lengths() {
        let expected = sample(300_000);
        let mut wrong = expected.clone();
        wrong[150_000] ^= 0xFF;
        let cases: [(&[u8], Option<&str>); 4] = [
            (&expected, None),
            (
                &wrong,
                Some("GET a.bin: content differs from byte 150000 on"),
            ),
            (
                &expected[..299_999],
                Some("GET a.bin: got 299999 bytes, expected 300000"),
            ),
            (
                &expected[..0],
                Some("GET a.bin: got 0 bytes, expected 300000"),
            ),
        ];
        for (sent, verdict) in cases {
            let (addr, server) = serving(vec![content_first("a.bin", sent)]);
            let mut c = Client::connect(addr, T).unwrap();
            match (c.get_compare("a.bin", &mut &expected[..]), verdict) {
                (Ok(n), None) => assert_eq!(n, 300_000),
                (Err(ClientError::Verify(m)), Some(v)) => assert_eq!(m, v),
                (got, _) => panic!("{verdict:?}: {got:?}"),
            }
            drop(c);
            server.join().unwrap();
        }
        // The expected content unreadable: a local failure, not the server's.
        let (addr, server) = serving(vec![content_first("a.bin", &expected)]);
        let mut c = Client::connect(addr, T).unwrap();
        let e = c
            .get_compare("a.bin", &mut FailingSource { room: 1000 })
            .unwrap_err();
        assert_eq!(e.cause(), "local read", "{e}");
        drop(c);
        server.join().unwrap();
    }
}
