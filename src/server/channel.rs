//! Framed messages over a worker's socketpair, each with at most one descriptor.
//!
//! A frame is `u32` length (little-endian), one flag byte (1 when a
//! descriptor travels with the frame), then the body. A message may be larger
//! than the socket's buffer: the [`Reader`] collects bytes across reads and
//! the [`Writer`] keeps what it could not send yet, so a short write or
//! `EAGAIN` delays a message but never loses or reorders one. The descriptor
//! is sent with the frame's first byte, so it always arrives no later than
//! the frame itself; the sender closes its copy as soon as that byte is out.
//! This module knows nothing of what the bodies mean.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::sys::fdpass;

const HEADER: usize = 5;

/// One message: its body and the descriptor that came with it.
pub struct Frame {
    pub body: Vec<u8>,
    pub fd: Option<OwnedFd>,
}

/// Collects frames from a channel.
pub struct Reader {
    buf: Vec<u8>,
    fds: VecDeque<OwnedFd>,
    max_body: usize,
    scratch: Box<[u8]>,
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

impl Reader {
    /// A reader that refuses frames whose body is over `max_body` bytes.
    pub fn new(max_body: usize) -> Reader {
        Reader {
            buf: Vec::new(),
            fds: VecDeque::new(),
            max_body,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    /// One read from the channel. `Ok(0)`: the peer closed its end.
    /// `WouldBlock` passes through (non-blocking channel, nothing there).
    pub fn fill(&mut self, sock: BorrowedFd<'_>) -> io::Result<usize> {
        let (n, fd) = fdpass::recv_with_fd(sock, &mut self.scratch)?;
        self.buf.extend_from_slice(&self.scratch[..n]);
        if let Some(fd) = fd {
            self.fds.push_back(fd);
        }
        Ok(n)
    }

    /// The next complete frame read so far, if any.
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > self.max_body {
            return Err(invalid("channel frame over the size limit"));
        }
        let has_fd = match self.buf[4] {
            0 => false,
            1 => true,
            _ => return Err(invalid("channel frame with a bad flag byte")),
        };
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let fd = if has_fd {
            Some(
                self.fds
                    .pop_front()
                    .ok_or_else(|| invalid("channel frame without its descriptor"))?,
            )
        } else {
            None
        };
        let body = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some(Frame { body, fd }))
    }

    /// Blocks until a whole frame is in (blocking channel). `Ok(None)`: the peer
    /// closed its end between frames; closing in the middle of one is an error.
    pub fn recv_blocking(&mut self, sock: BorrowedFd<'_>) -> io::Result<Option<Frame>> {
        loop {
            if let Some(f) = self.next_frame()? {
                return Ok(Some(f));
            }
            if self.fill(sock)? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "channel closed in the middle of a frame",
                    ))
                };
            }
        }
    }
}

struct Pending {
    bytes: Vec<u8>,
    sent: usize,
    fd: Option<OwnedFd>,
}

/// Frames waiting to be sent, in order.
#[derive(Default)]
pub struct Writer {
    queue: VecDeque<Pending>,
}

impl Writer {
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Queues a frame; nothing is sent until [`Writer::flush`].
    pub fn push(&mut self, body: &[u8], fd: Option<OwnedFd>) {
        let mut bytes = Vec::with_capacity(HEADER + body.len());
        bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
        bytes.push(fd.is_some() as u8);
        bytes.extend_from_slice(body);
        self.queue.push_back(Pending { bytes, sent: 0, fd });
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Sends what the channel takes. `Ok(true)`: everything went; `Ok(false)`:
    /// the channel is full (`EAGAIN`), call again when it is writable.
    pub fn flush(&mut self, sock: BorrowedFd<'_>) -> io::Result<bool> {
        while let Some(p) = self.queue.front_mut() {
            let fd = if p.sent == 0 {
                p.fd.as_ref().map(|f| f.as_fd())
            } else {
                None
            };
            match fdpass::send_with_fd(sock, &p.bytes[p.sent..], fd) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    // Once a byte is out, so is the descriptor: close our copy now.
                    p.fd = None;
                    p.sent += n;
                    if p.sent == p.bytes.len() {
                        self.queue.pop_front();
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// Sends one frame on a blocking channel (waiting out a full channel).
pub fn send_blocking(sock: BorrowedFd<'_>, body: &[u8], fd: Option<OwnedFd>) -> io::Result<()> {
    let mut w = Writer::new();
    w.push(body, fd);
    loop {
        if w.flush(sock)? {
            return Ok(());
        }
        // Only on a channel left non-blocking: wait until it drains a little.
        fdpass::wait_writable(sock)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_larger_than_the_socket_buffer_arrive_whole_with_their_descriptor() {
        let (a, b) = fdpass::socketpair().unwrap();
        fdpass::set_nonblocking(a.as_fd(), true).unwrap();
        fdpass::set_nonblocking(b.as_fd(), true).unwrap();
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let (rd, _wr) = crate::sys::pipe().unwrap();
        let mut w = Writer::new();
        w.push(&big, Some(rd));
        w.push(b"small", None);
        let mut r = Reader::new(4 << 20);
        let mut frames = Vec::new();
        let mut full_seen = false;
        while frames.len() < 2 {
            if !w.flush(a.as_fd()).unwrap() {
                full_seen = true;
            }
            loop {
                match r.fill(b.as_fd()) {
                    Ok(0) => panic!("eof"),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
                while let Some(f) = r.next_frame().unwrap() {
                    frames.push(f);
                }
            }
        }
        assert!(full_seen, "the channel filled up at least once");
        assert!(w.is_empty());
        assert_eq!(frames[0].body, big);
        let fd = frames[0].fd.as_ref().expect("descriptor");
        assert!(fdpass::is_cloexec(fd.as_fd()).unwrap());
        assert_eq!(frames[1].body, b"small");
        assert!(frames[1].fd.is_none());
    }

    #[test]
    fn oversized_and_malformed_frames_are_errors() {
        let (a, b) = fdpass::socketpair().unwrap();
        let mut w = Writer::new();
        w.push(&[0u8; 100], None);
        assert!(w.flush(a.as_fd()).unwrap());
        let mut r = Reader::new(10);
        r.fill(b.as_fd()).unwrap();
        assert!(r.next_frame().is_err());
        // A frame that claims a descriptor it does not carry.
        fdpass::send_with_fd(a.as_fd(), &[1, 0, 0, 0, 1, b'x'], None).unwrap();
        let mut r = Reader::new(10);
        let err = r.recv_blocking(b.as_fd()).err().expect("error");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn end_of_file_between_frames_is_none_and_inside_one_is_an_error() {
        let (a, b) = fdpass::socketpair().unwrap();
        send_blocking(a.as_fd(), b"one", None).unwrap();
        drop(a);
        let mut r = Reader::new(10);
        assert_eq!(r.recv_blocking(b.as_fd()).unwrap().unwrap().body, b"one");
        assert!(r.recv_blocking(b.as_fd()).unwrap().is_none());
        let (a, b) = fdpass::socketpair().unwrap();
        fdpass::send_with_fd(a.as_fd(), &[9, 0, 0, 0, 0, b'x'], None).unwrap();
        drop(a);
        let mut r = Reader::new(10);
        assert_eq!(
            r.recv_blocking(b.as_fd()).err().unwrap().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
