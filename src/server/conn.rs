//! The connection handler: serves the requests of one connection with
//! blocking I/O, in a worker thread or a worker process alike.
//!
//! It starts with the bytes the acceptor already read (at least one whole
//! request line, or a line that hit the limit, or one request without its
//! line end that the event loop has judged: [`Start`]), serves every request
//! already waiting, and then gives the connection back to the event loop
//! instead of blocking on a client that has nothing more to say, with the
//! bytes of a partial line and how they arrived (the event loop keeps their
//! unterminated wait): it returns what becomes of the connection
//! ([`AfterTask`]) and what it counted ([`TaskStats`]).
//! Memory per connection is bounded by the line limit plus a few buffers of
//! at most 1 MiB, whatever the file size. It must never panic on client input, and
//! never touch the store except through [`Store`].

use std::io::{self, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::protocol::base64::{encode_chunk, LineDecoder};
use crate::protocol::json::{self, Obj};
use crate::protocol::request::{inline_upload_start, LENGTH_MISMATCH};
use crate::protocol::unterminated::{self, Burst};
use crate::protocol::{
    check_name, detect_extension, empty_lines_len, hex, parse_request, Limits, ReadBuf, Request,
    END_UPLOAD, READY,
};
use crate::server::pool::{AfterTask, Start, Unread};
use crate::server::stats::TaskStats;
use crate::store::{Store, TempFile};
use crate::sys::file::Window;

/// Raw bytes encoded per GET write: a multiple of 3, so chunks encode independently.
const GET_CHUNK: usize = 192 * 1024;
/// Bytes of a file mapped at a time: a multiple of the page size and of GET_CHUNK.
const MAP_WINDOW: usize = 4 * GET_CHUNK;
/// Read buffer beyond the line limit.
const READ_CHUNK: usize = 64 * 1024;
/// The read buffer of a connection once it streams an upload body: fewer,
/// larger reads (`make bench-cpu`: less CPU on the server's side).
const UPLOAD_READ_BUF: usize = 512 * 1024;

/// What the handler needs from the server around it.
pub struct Ctx<'a> {
    pub store: &'a Store,
    pub limits: &'a Limits,
    /// The `data` object for STATS.
    pub stats_json: &'a dyn Fn() -> String,
    /// True once the server is shutting down: finish the request, then close.
    pub draining: &'a dyn Fn() -> bool,
    /// How GET reads a file.
    pub file_reads: FileReads,
}

/// How GET reads a file: the cheaper way for the pool's mode (`make
/// bench-cpu`, README "Data paths").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileReads {
    /// Read-only maps of `MAP_WINDOW` bytes, encoded in place: no copy. For
    /// a worker process, which has one thread, so an unmap costs nothing
    /// on other CPUs.
    Maps,
    /// `pread` of `GET_CHUNK` bytes into a buffer, encoded from there. For
    /// worker threads: unmapping in a process of many threads interrupts
    /// every other CPU that runs one of them (a TLB shootdown), which cost
    /// more than the copy.
    Reads,
}

/// A connection with its read buffer.
struct Conn {
    stream: TcpStream,
    buf: ReadBuf,
    /// How the last bytes in `buf` arrived.
    burst: Burst,
    stats: TaskStats,
}

enum Fill {
    Data,
    Eof,
    WouldBlock,
}

impl Conn {
    fn pending(&self) -> &[u8] {
        self.buf.pending()
    }

    fn consume(&mut self, n: usize) {
        self.buf.consume(n);
    }

    /// Reads more bytes (blocking, under the socket's timeouts).
    fn fill(&mut self) -> io::Result<Fill> {
        // Never grown here (an upload body sets a larger fixed size first):
        // the memory per connection stays bounded.
        if !self.buf.make_room() {
            return Err(io::Error::other("read buffer full"));
        }
        let room = self.buf.room();
        match self.buf.fill_from(&mut self.stream) {
            Ok(0) => Ok(Fill::Eof),
            Ok(n) => {
                self.stats.bytes_in += n as u64;
                self.burst.read(n, room);
                Ok(Fill::Data)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.burst.drained();
                Ok(Fill::WouldBlock)
            }
            Err(e) => Err(e),
        }
    }

    /// One read without blocking (to see whether the client has more to say).
    fn fill_nonblocking(&mut self) -> io::Result<Fill> {
        self.stream.set_nonblocking(true)?;
        let r = self.fill();
        self.stream.set_nonblocking(false)?;
        r
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stats.bytes_out += bytes.len() as u64;
        Ok(())
    }

    /// Drops the empty lines at the front (PROTOCOL.md: they are ignored).
    fn skip_empty_lines(&mut self) {
        self.consume(empty_lines_len(self.pending()));
    }

    /// Position of the next `\n` in the pending bytes (each byte scanned once).
    fn newline(&mut self) -> Option<usize> {
        self.buf.find_byte(b'\n')
    }
}

/// Serves a connection handed over by the acceptor with the bytes it already
/// read, taken as `start` says.
pub fn serve(stream: TcpStream, unread: Unread, start: Start, ctx: &Ctx) -> (AfterTask, TaskStats) {
    let cap = ctx.limits.max_line + 2 + READ_CHUNK;
    // The bytes the event loop read count as this task's; see AfterTask::Keep.
    let bytes_in = unread.bytes.len() as u64;
    let mut c = Conn {
        stream,
        buf: ReadBuf::with_pending(unread.bytes, cap),
        burst: Burst::ended(unread.burst),
        stats: TaskStats {
            ok: true,
            bytes_in,
            ..TaskStats::default()
        },
    };
    let idle = Some(ctx.limits.idle_timeout);
    if let Err(e) = c
        .stream
        .set_nonblocking(false)
        .and_then(|_| c.stream.set_read_timeout(idle))
        .and_then(|_| c.stream.set_write_timeout(idle))
    {
        crate::log::debug(format_args!("connection setup failed: {e}"));
        c.stats.ok = false;
        return (AfterTask::Close, c.stats);
    }
    let after = serve_loop(&mut c, ctx, start);
    (after, c.stats)
}

/// What comes next on a connection.
enum Next {
    /// A request line ending at this offset.
    Line(usize),
    /// A line over the limit.
    Long,
    /// Nothing to serve now: what becomes of the connection.
    Done(AfterTask),
}

/// Finds the next request, reading without blocking; when only a partial line
/// (or nothing) is there, the connection goes back to the event loop.
fn next(c: &mut Conn, ctx: &Ctx) -> Next {
    loop {
        c.skip_empty_lines();
        // A newline past the limit (read by the worker, after an earlier request)
        // ends a line that is too long all the same.
        let line_end = c.newline().filter(|&n| n <= ctx.limits.max_line);
        if line_end.is_some() || c.pending().len() > ctx.limits.max_line {
            return line_end.map_or(Next::Long, Next::Line);
        }
        // Nothing complete waiting: see, without blocking, whether more came.
        if (ctx.draining)() {
            return Next::Done(AfterTask::Close);
        }
        match c.fill_nonblocking() {
            Ok(Fill::Data) => continue,
            Ok(Fill::WouldBlock) => {
                let rest = c.pending().to_vec();
                // Counted by the task that gets them next, not twice.
                c.stats.bytes_in = c.stats.bytes_in.saturating_sub(rest.len() as u64);
                let burst = c.burst.bytes().min(rest.len());
                return Next::Done(match c.stream.try_clone() {
                    Ok(s) => AfterTask::Keep(s, Unread { bytes: rest, burst }),
                    Err(_) => AfterTask::Close,
                });
            }
            Ok(Fill::Eof) => return Next::Done(AfterTask::Close),
            Err(_) => {
                // A reset after the last response was written does not fail the
                // task; one that cuts a request short does.
                if !c.pending().is_empty() {
                    c.stats.ok = false;
                }
                return Next::Done(AfterTask::Close);
            }
        }
    }
}

fn serve_loop(c: &mut Conn, ctx: &Ctx, start: Start) -> AfterTask {
    let mut start = Some(start);
    loop {
        let result = match start.take().unwrap_or(Start::Line) {
            Start::Line => match next(c, ctx) {
                Next::Done(after) => return after,
                Next::Line(n) => {
                    c.stats.requests += 1;
                    let line = c.pending()[..n].to_vec();
                    c.consume(n + 1);
                    handle_line(c, ctx, &line)
                }
                Next::Long => {
                    c.stats.requests += 1;
                    handle_long_line(c, ctx)
                }
            },
            // Every byte the event loop judged is the request, without its line
            // end (a later `\n` is an empty line, ignored).
            Start::Unterminated => {
                c.stats.requests += 1;
                let line = c.pending().to_vec();
                c.consume(line.len());
                handle_line(c, ctx, &line)
            }
            Start::Refused => {
                c.stats.requests += 1;
                c.consume(c.pending().len());
                Err(Error::request(unterminated::REFUSED))
            }
        };
        match result {
            Ok(()) => {}
            Err(Error::Request(reason)) => {
                c.stats.ok = false;
                crate::log::debug(format_args!("request failed: {reason}"));
                if c.send(&json::error_response(&reason)).is_err() {
                    return AfterTask::Close;
                }
            }
            Err(Error::Fatal(reason)) => {
                c.stats.ok = false;
                crate::log::debug(format_args!("closing connection: {reason}"));
                if c.send(&json::error_response(&reason)).is_err()
                    || c.stream.shutdown(Shutdown::Write).is_err()
                {
                    return AfterTask::Close;
                }
                return match c.stream.try_clone() {
                    Ok(s) => AfterTask::Linger(s),
                    Err(_) => AfterTask::Close,
                };
            }
            Err(Error::Io(e)) => {
                c.stats.ok = false;
                crate::log::debug(format_args!("connection broken: {e}"));
                if e.kind() == io::ErrorKind::TimedOut {
                    // The client went quiet mid-request (an upload body, a long
                    // line): the connection still stands, so say why it ends.
                    let _ = c.send(&json::error_response("idle timeout"));
                }
                return AfterTask::Close;
            }
        }
    }
}

fn handle_line(c: &mut Conn, ctx: &Ctx, line: &[u8]) -> Result<()> {
    let request = parse_request(line).map_err(|e| Error::request(e.to_string()))?;
    crate::log::debug(format_args!("request {}", describe(&request)));
    match request {
        Request::List => {
            let names = ctx.store.list()?;
            let data = json::str_array(names.iter().map(String::as_str));
            c.send(&json::response(
                Obj::new().str("status", "OK").raw("data", &data),
            ))?;
        }
        Request::Stats => {
            let data = (ctx.stats_json)();
            c.send(&json::response(
                Obj::new().str("status", "OK").raw("data", &data),
            ))?;
        }
        Request::Get(name) => send_file(c, ctx, &name)?,
        Request::Delete(name) => {
            ctx.store.delete(&name)?;
            c.send(&json::response(
                Obj::new()
                    .str("status", "OK")
                    .str("message", "File deleted successfully"),
            ))?;
        }
        Request::StrayEndUpload => {
            return Err(Error::request("ENDUPLOAD without an upload in progress"))
        }
        Request::Upload(name) => {
            if let Some(n) = &name {
                check_name(n).map_err(Error::Request)?;
            }
            let mut sink = UploadSink::new(ctx, name)?;
            c.send(READY)?;
            let outcome = read_upload_body(c, ctx, &mut sink)?;
            finish_upload(c, ctx, sink, outcome)?;
        }
        Request::UploadInline { name, body, .. } => {
            check_name(&name).map_err(Error::Request)?;
            let mut sink = UploadSink::new(ctx, Some(name))?;
            let mut decoder = LineDecoder::new();
            let outcome = sink
                .feed(&mut decoder, &body)
                .and_then(|_| sink.end_line(&mut decoder));
            finish_upload(c, ctx, sink, outcome.err())?;
        }
    }
    Ok(())
}

fn describe(r: &Request) -> String {
    match r {
        Request::UploadInline { name, body, .. } => {
            format!("UPLOAD {name:?} <{} base64 bytes>", body.len())
        }
        other => format!("{other:?}"),
    }
}

/// A request line over the limit: an inline upload is streamed, anything else is refused.
fn handle_long_line(c: &mut Conn, ctx: &Ctx) -> Result<()> {
    let Some(head) = inline_upload_start(c.pending()) else {
        return Err(Error::fatal(format!(
            "request line longer than {} bytes",
            ctx.limits.max_line
        )));
    };
    c.consume(head.body);
    let name = head
        .name
        .map_err(|e| e.to_string())
        .and_then(|n| check_name(&n).map(|_| n));
    // Whatever fails, the rest of the line is still read and skipped below,
    // so the connection stays in step.
    let (mut sink, mut failure) = match &name {
        Ok(n) => match UploadSink::new(ctx, Some(n.clone())) {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(e.to_string())),
        },
        Err(reason) => (None, Some(reason.clone())),
    };
    // The whole upload is one base64 line: its limit is the upload limit's encoding.
    let line_limit = ctx.limits.max_upload.div_ceil(3) * 4;
    c.buf.grow_to(UPLOAD_READ_BUF);
    let mut decoder = LineDecoder::new();
    let mut feed = |chunk: &[u8]| {
        if let (None, Some(s)) = (&failure, sink.as_mut()) {
            failure = s.feed(&mut decoder, chunk).err();
        }
    };
    let line_done = match head.length {
        None => stream_line(c, line_limit, &mut feed)?,
        Some(len) if len > line_limit => false,
        Some(len) => match stream_sized(c, len, line_limit, &mut feed)? {
            Sized::Matched => true,
            Sized::Mismatch => {
                failure = Some(LENGTH_MISMATCH.to_string());
                true
            }
            Sized::TooLong => false,
        },
    };
    if !line_done {
        return Err(Error::fatal("upload line too long"));
    }
    if let (None, Some(s)) = (&failure, sink.as_mut()) {
        failure = s.end_line(&mut decoder).err();
    }
    match sink {
        Some(s) => finish_upload(c, ctx, s, failure),
        None => Err(Error::Request(failure.unwrap_or_default())),
    }
}

/// How the base64 of a sized upload ended.
enum Sized {
    /// Exactly its length, then the line end or nothing yet.
    Matched,
    /// The line ended before its length, or went on after it (and is consumed to its end).
    Mismatch,
    /// The line ran over the limit.
    TooLong,
}

/// Streams the `len` bytes of base64 of an upload that gave its length to
/// `f` in pieces, consuming them and the line end after them if it is there
/// already. The length says where the request ends, so a client that sends no
/// line end at all (an unterminated request) is served all the same; a line
/// end that comes later is an empty line.
fn stream_sized(c: &mut Conn, len: u64, limit: u64, mut f: impl FnMut(&[u8])) -> Result<Sized> {
    let mut left = len;
    while left > 0 {
        if c.pending().is_empty() || c.pending() == b"\r" {
            // A lone '\r' may be the first half of the line end: see what follows.
            match c.fill()? {
                Fill::Data => continue,
                Fill::Eof => return Err(Error::Io(io::ErrorKind::UnexpectedEof.into())),
                Fill::WouldBlock => return Err(Error::Io(io::ErrorKind::TimedOut.into())),
            }
        }
        let p = c.pending();
        let mut take = (p.len() as u64).min(left) as usize;
        // The byte after those taken tells a line end right after the base64.
        let look = (take + 1).min(p.len());
        if let Some(n) = memchr::memchr(b'\n', &p[..look]) {
            let end = if n > 0 && p[n - 1] == b'\r' { n - 1 } else { n };
            let whole = end == take;
            if whole {
                f(&p[..take]);
            }
            c.consume(n + 1);
            return Ok(if whole {
                Sized::Matched
            } else {
                Sized::Mismatch
            });
        }
        if take == p.len() && p[take - 1] == b'\r' {
            take -= 1;
        }
        f(&p[..take]);
        c.consume(take);
        left -= take as u64;
    }
    if c.pending().is_empty() {
        // Whatever this finds, the request is complete: the line end, more of
        // the line, nothing yet, or the client's end.
        c.fill_nonblocking()?;
    }
    match c.pending() {
        [] | [b'\r'] => {
            c.consume(c.pending().len());
            Ok(Sized::Matched)
        }
        [b'\n', ..] => {
            c.consume(1);
            Ok(Sized::Matched)
        }
        [b'\r', b'\n', ..] => {
            c.consume(2);
            Ok(Sized::Matched)
        }
        _ => {
            // More base64 than the length said: skip the rest of the line.
            let rest = limit.saturating_sub(len);
            Ok(if stream_line(c, rest, |_| {})? {
                Sized::Mismatch
            } else {
                Sized::TooLong
            })
        }
    }
}

/// Streams the rest of the current line to `f` in pieces (without `\r\n`),
/// consuming it and its newline. Returns false if the line ran over `limit`
/// (then it is not consumed to its end).
fn stream_line(c: &mut Conn, limit: u64, mut f: impl FnMut(&[u8])) -> Result<bool> {
    let mut len: u64 = 0;
    loop {
        if let Some(n) = c.newline() {
            let p = &c.pending()[..n];
            let p = p.strip_suffix(b"\r").unwrap_or(p);
            len += p.len() as u64;
            if len > limit {
                return Ok(false);
            }
            f(p);
            c.consume(n + 1);
            return Ok(true);
        }
        // Keep a trailing '\r': it may be the first half of "\r\n".
        let avail = c.pending().len();
        let take = if c.pending().ends_with(b"\r") {
            avail - 1
        } else {
            avail
        };
        len += take as u64;
        if len > limit {
            return Ok(false);
        }
        f(&c.pending()[..take]);
        c.consume(take);
        match c.fill()? {
            Fill::Data => {}
            Fill::Eof => return Err(Error::Io(io::ErrorKind::UnexpectedEof.into())),
            Fill::WouldBlock => return Err(Error::Io(io::ErrorKind::TimedOut.into())),
        }
    }
}

/// Reads the body of a streamed upload up to `ENDUPLOAD`. After the first bad
/// line the rest of the body is read and discarded (so the stream stays in
/// step and the client gets the ERROR); the reason is returned.
fn read_upload_body(c: &mut Conn, ctx: &Ctx, sink: &mut UploadSink) -> Result<Option<String>> {
    let mut failure: Option<String> = None;
    let mut decoder = LineDecoder::new();
    c.buf.grow_to(UPLOAD_READ_BUF);
    loop {
        // Enough bytes to tell "ENDUPLOAD" from a base64 line.
        while c.newline().is_none() && c.pending().len() < END_UPLOAD.len() + 2 {
            match c.fill()? {
                Fill::Data => {}
                Fill::Eof => return Err(Error::Io(io::ErrorKind::UnexpectedEof.into())),
                Fill::WouldBlock => return Err(Error::Io(io::ErrorKind::TimedOut.into())),
            }
        }
        if let Some(n) = c.newline() {
            let line = &c.pending()[..n];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == END_UPLOAD {
                c.consume(n + 1);
                return Ok(failure);
            }
            if line.is_empty() {
                c.consume(n + 1);
                continue;
            }
        }
        let done = stream_line(c, ctx.limits.max_upload_line as u64, |chunk| {
            if failure.is_none() {
                failure = sink.feed(&mut decoder, chunk).err();
            }
        })?;
        if !done {
            sink.abort();
            return Err(Error::fatal(format!(
                "upload line longer than {} bytes",
                ctx.limits.max_upload_line
            )));
        }
        if failure.is_none() {
            failure = sink.end_line(&mut decoder).err();
        } else {
            decoder = LineDecoder::new();
        }
        if failure.is_some() {
            sink.abort();
        }
    }
}

fn finish_upload(c: &mut Conn, ctx: &Ctx, sink: UploadSink, failure: Option<String>) -> Result<()> {
    if let Some(reason) = failure {
        return Err(Error::Request(reason));
    }
    let (tmp, stored) = sink.finish()?;
    ctx.store.commit(tmp, &stored)?;
    let data = Obj::new().str("file_path", &stored).finish();
    c.send(&json::response(
        Obj::new()
            .str("status", "OK")
            .str("message", "File uploaded successfully")
            .raw("data", &data),
    ))?;
    crate::log::debug(format_args!("stored {stored}"));
    Ok(())
}

/// Where decoded upload bytes go: the temp file, the name (or the hash that
/// names it), the size check.
struct UploadSink {
    tmp: Option<TempFile>,
    naming: Naming,
    total: u64,
    max: u64,
    head: Vec<u8>,
}

/// What names a stored upload.
enum Naming {
    /// `UPLOAD <name>`: the name given (and no SHA-256 computed).
    Given(String),
    /// A plain `UPLOAD`: the SHA-256 of the content, then an extension.
    Sha256(Sha256),
}

impl UploadSink {
    fn new(ctx: &Ctx, name: Option<String>) -> Result<UploadSink> {
        Ok(UploadSink {
            tmp: Some(ctx.store.begin_upload()?),
            naming: name.map_or_else(|| Naming::Sha256(Sha256::new()), Naming::Given),
            total: 0,
            max: ctx.limits.max_upload,
            head: Vec::with_capacity(8),
        })
    }

    /// Decodes a piece of a base64 line straight into the temp file's buffer
    /// and hashes it there; the error is the reason for the client.
    fn feed(&mut self, decoder: &mut LineDecoder, chunk: &[u8]) -> std::result::Result<(), String> {
        let tmp = self.tmp.as_mut().ok_or("upload aborted")?;
        let buf = tmp
            .room(chunk.len() / 4 * 3 + 3)
            .map_err(|e| format!("write failed: {e}"))?;
        let start = buf.len();
        decoder.feed(chunk, buf).map_err(|e| e.to_string())?;
        let new = &buf[start..];
        if new.is_empty() {
            return Ok(());
        }
        self.total += new.len() as u64;
        if self.total > self.max {
            return Err(format!(
                "upload larger than the limit of {} bytes",
                self.max
            ));
        }
        if self.head.len() < 8 {
            let n = (8 - self.head.len()).min(new.len());
            self.head.extend_from_slice(&new[..n]);
        }
        if let Naming::Sha256(h) = &mut self.naming {
            h.update(new);
        }
        Ok(())
    }

    fn end_line(&mut self, decoder: &mut LineDecoder) -> std::result::Result<(), String> {
        decoder.finish_line().map(|_| ()).map_err(|e| e.to_string())
    }

    /// Drops the temp file now (its Drop removes it).
    fn abort(&mut self) {
        self.tmp = None;
    }

    /// The temp file and the name to store it under.
    fn finish(self) -> Result<(TempFile, String)> {
        let tmp = self.tmp.ok_or_else(|| Error::request("upload aborted"))?;
        let stored = match self.naming {
            Naming::Given(n) => n,
            Naming::Sha256(h) => format!("{}{}", hex(&h.finalize()), detect_extension(&self.head)),
        };
        Ok((tmp, stored))
    }
}

/// Streams a GET response: the head, the base64 of the file in chunks, then
/// the last chunk with the tail and terminator in one write.
///
/// The file is read as `ctx.file_reads` says, in bounded memory whatever its
/// size. A file cut short by another program while it is sent ends the
/// connection without the tail: the client sees an incomplete answer, never
/// zeros as content.
fn send_file(c: &mut Conn, ctx: &Ctx, name: &str) -> Result<()> {
    let (file, size) = ctx.store.open_read(name)?;
    c.send(json::get_head(name).as_bytes())?;
    let mut out = Vec::with_capacity(GET_CHUNK / 3 * 4 + json::GET_TAIL.len());
    let mut offset: u64 = 0;
    match ctx.file_reads {
        FileReads::Maps => {
            while offset < size {
                let len = (size - offset).min(MAP_WINDOW as u64) as usize;
                let window = Window::new(&file, offset, len)?;
                let last_window = offset + len as u64 == size;
                for chunk in (0..len).step_by(GET_CHUNK) {
                    let end = (chunk + GET_CHUNK).min(len);
                    out.clear();
                    window.read(|b| encode_chunk(&b[chunk..end], &mut out))?;
                    send_chunk(c, &mut out, last_window && end == len)?;
                }
                offset += len as u64;
            }
        }
        FileReads::Reads => {
            let mut raw = vec![0u8; (size as usize).min(GET_CHUNK)];
            while offset < size {
                let len = (size - offset).min(GET_CHUNK as u64) as usize;
                // A file cut short is an early end of file here: an error.
                file.read_exact_at(&mut raw[..len], offset)?;
                out.clear();
                encode_chunk(&raw[..len], &mut out);
                offset += len as u64;
                send_chunk(c, &mut out, offset == size)?;
            }
        }
    }
    if size == 0 {
        c.send(json::GET_TAIL)?;
    }
    Ok(())
}

/// Sends one encoded chunk of a GET answer, the last with the tail and
/// terminator in the same write.
fn send_chunk(c: &mut Conn, out: &mut Vec<u8>, last: bool) -> io::Result<()> {
    if last {
        out.extend_from_slice(json::GET_TAIL);
    }
    c.send(out)
}
