//! The client library: one connection, any number of requests, every transfer
//! streamed in bounded memory and checked.
//!
//! `get` decodes the base64 as it arrives and hands the bytes to a writer while
//! hashing them; `upload` reads a source in chunks, encodes each one as a
//! base64 line and checks the name the server returns against the local
//! SHA-256. Nothing here holds a whole file.
//!
//! Errors keep the two sides apart: the network ([`ClientError::Io`]) and the
//! local sink or source of a transfer ([`ClientError::Local`]), so that a
//! full disk or a closed pipe is never reported as a connection failure.
//! The library never prints and never exits: every failure is returned.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::protocol::base64::{encode_chunk, B64Error, LineDecoder};
use crate::protocol::request::quote_arg;
use crate::protocol::{detect_extension, hex, read_full, ReadBuf, TERMINATOR};

/// Raw bytes per upload line (a multiple of 3: each line decodes on its own).
pub const UPLOAD_CHUNK: usize = 192 * 1024;
/// Largest non-GET response the client accepts.
const MAX_RESPONSE: usize = 64 << 20;

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
    /// Response bytes read by the last request.
    pub last_response_bytes: u64,
}

impl Client {
    /// Connects to `addr` (host:port); `timeout` bounds the connect and every read and write.
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Client> {
        let addrs: Vec<SocketAddr> = addr
            .to_socket_addrs()
            .map_err(ClientError::Connect)?
            .collect();
        let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(stream) => {
                    stream.set_read_timeout(Some(timeout))?;
                    stream.set_write_timeout(Some(timeout))?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Client {
                        stream,
                        buf: ReadBuf::new(256 * 1024),
                        last_response_bytes: 0,
                    });
                }
                Err(e) => last = e,
            }
        }
        Err(ClientError::Connect(last))
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
        match self.buf.fill_from(&mut self.stream)? {
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
        let arr = v["data"]
            .as_array()
            .ok_or_else(|| ClientError::Protocol("LIST data is not a list".into()))?;
        arr.iter()
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .ok_or_else(|| ClientError::Protocol("LIST entry is not a string".into()))
            })
            .collect()
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
    pub fn get_into(&mut self, name: &str, sink: &mut dyn Write) -> Result<u64> {
        self.send_line(&format!("GET {}", quote_arg(name)))?;
        // The head: everything up to the opening quote of data_file.
        let body_at = loop {
            let p = self.pending();
            if let Some(at) = find_data_file(p) {
                break at;
            }
            if let Some(i) = find(p, TERMINATOR) {
                let body = p[..i].to_vec();
                self.consume(i + TERMINATOR.len());
                parse_json(&body)?;
                return Err(ClientError::Protocol("GET answer without data_file".into()));
            }
            if p.len() > 64 * 1024 {
                return Err(ClientError::Protocol("GET head too long".into()));
            }
            self.fill()?;
        };
        // The head, closed after the content's opening quote, is a whole JSON
        // object: it must say OK, for this very name.
        let mut head = self.pending()[..body_at].to_vec();
        head.extend_from_slice(b"\"}");
        let head: serde_json::Value = serde_json::from_slice(&head)
            .map_err(|e| ClientError::Protocol(format!("GET answer head is not JSON: {e}")))?;
        if head["status"] != "OK" {
            return Err(ClientError::Protocol("GET answer head is not OK".into()));
        }
        if head["data_namafile"] != name {
            return Err(ClientError::Verify(format!(
                "GET {name}: the answer is for {}",
                head["data_namafile"]
            )));
        }
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
        if tail
            .iter()
            .filter(|b| !b.is_ascii_whitespace())
            .ne(b"}".iter())
        {
            return Err(ClientError::Protocol(format!(
                "GET {name}: unexpected bytes after the content: {:?}",
                String::from_utf8_lossy(&tail)
            )));
        }
        Ok(bytes)
    }

    /// Streams `src` as a base64 upload. With `name`, stores it under that name;
    /// without, under its SHA-256 name, which is checked against the local hash.
    pub fn upload(&mut self, name: Option<&str>, src: &mut dyn Read) -> Result<Upload> {
        self.upload_checked(name, src, None)
    }

    /// A plain `UPLOAD` of content whose SHA-256 is known already (generated
    /// content hashed once beforehand): the stored name is checked against
    /// it, and nothing is hashed while sending.
    pub fn upload_known(&mut self, src: &mut dyn Read, sha256: &str) -> Result<Upload> {
        self.upload_checked(None, src, Some(sha256))
    }

    fn upload_checked(
        &mut self,
        name: Option<&str>,
        src: &mut dyn Read,
        known: Option<&str>,
    ) -> Result<Upload> {
        let line = match name {
            Some(n) => format!("UPLOAD {}", quote_arg(n)),
            None => "UPLOAD".to_string(),
        };
        self.send_line(&line)?;
        let ready = self.read_response()?;
        if !ready.starts_with(b"READY") {
            parse_json(&ready)?;
            return Err(ClientError::Protocol("expected READY".into()));
        }
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
        let v = self.read_json()?;
        let stored = v["data"]["file_path"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol("UPLOAD answer without data.file_path".into()))?
            .to_string();
        let sha = match (hasher, known) {
            (Some(h), _) => hex(&h.finalize()),
            (None, k) => k.unwrap_or_default().to_ascii_lowercase(),
        };
        let expected = match name {
            Some(n) => n.to_string(),
            None => format!("{sha}{}", detect_extension(&head)),
        };
        if stored != expected {
            return Err(ClientError::Verify(format!(
                "stored as {stored:?}, expected {expected:?}"
            )));
        }
        Ok(Upload {
            name: stored,
            bytes,
            sha256: sha,
        })
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
        let v = self.read_json()?;
        let stored = v["data"]["file_path"]
            .as_str()
            .unwrap_or_default()
            .to_string();
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

fn parse_json(body: &[u8]) -> Result<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ClientError::Protocol(format!(
            "invalid JSON ({e}): {:?}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))
    })?;
    match v["status"].as_str() {
        Some("OK") => Ok(v),
        Some("ERROR") => Err(ClientError::Server(
            v["data"].as_str().unwrap_or("(no reason)").to_string(),
        )),
        _ => Err(ClientError::Protocol("response without status".into())),
    }
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

/// Offset just past `"data_file": "` (any spacing) in a GET head.
fn find_data_file(p: &[u8]) -> Option<usize> {
    let key = b"\"data_file\"";
    let at = find(p, key)? + key.len();
    let mut i = at;
    while p.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    if p.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while p.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    (p.get(i) == Some(&b'"')).then_some(i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
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
}
