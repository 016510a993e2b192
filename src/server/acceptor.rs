//! The acceptor: one `mio` event loop that owns every connection not being served.
//!
//! It accepts until `WouldBlock`, reads each connection's next request line
//! itself without blocking and within the request deadline, and hands only a
//! connection with a complete line (or a line at the limit) to the worker pool.
//! A partial line whose client has been quiet for the unterminated wait is
//! judged here (`protocol::unterminated`), by a timer of this loop, never by
//! a sleeping thread: a complete request goes to a worker to be served as if
//! terminated (or refused), anything else waits on under the request deadline.
//! A silent client therefore never holds a worker. When the pool has no room,
//! ready connections wait here and the loop stops accepting, so newcomers wait
//! in the kernel's backlog instead of being refused.
//! A connection from outside the allowed networks (`serve --allow`) is closed
//! as soon as it is accepted, before a byte of it is read, and only counted.
//! The acceptor never does blocking I/O and never serves a request itself.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::protocol::unterminated::{self, Burst, Verdict};
use crate::protocol::{empty_lines_len, json, Limits};
use crate::server::allow::AllowList;
use crate::server::pool::{AfterTask, Job, Returned, Start, Unread, WorkerPool, POOL_TOKEN_BASE};
use crate::server::stats::{Counter, ServerStats};

pub const LISTENER: Token = Token(usize::MAX - 1);
pub const WAKER: Token = Token(usize::MAX - 2);
pub const SIGNALS: Token = Token(usize::MAX - 3);

/// How long a connection closing after a fatal error may keep sending (discarded).
const LINGER: Duration = Duration::from_secs(2);

/// How long accepting pauses after running out of descriptors.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn interrupted(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::Interrupted
}

/// Why a waiting connection is closed at its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// A lingering close ran out of time: the ERROR was sent already, nothing more to say.
    LingerOver,
    /// The client was too slow: it is told why (the reason), and it counts as timed out.
    TimedOut(&'static str),
}

/// A connection waiting for its next request line.
struct Waiting {
    stream: TcpStream,
    peer: SocketAddr,
    buf: Vec<u8>,
    /// How the last bytes of `buf` arrived.
    burst: Burst,
    idle_deadline: Instant,
    request_deadline: Option<Instant>,
    /// When the client will have been quiet on a partial line for the
    /// unterminated wait (none when the wait is off, or the line was judged
    /// incomplete and nothing came since).
    quiet_deadline: Option<Instant>,
    /// Closing after a fatal error: input is discarded until EOF or `idle_deadline`.
    linger: bool,
}

pub struct AcceptorConfig {
    pub limits: Limits,
    /// Most connections the event loop holds (waiting or ready) before it stops accepting.
    pub max_connections: usize,
    pub drain_timeout: Duration,
    /// How long a client must be quiet on a line without `\n` before it is
    /// judged as an unterminated request; `None`: never.
    pub unterminated_wait: Option<Duration>,
    /// The networks whose clients are served.
    pub allow: AllowList,
}

pub struct Acceptor<P: WorkerPool> {
    poll: Poll,
    listener: Option<TcpListener>,
    signals: OwnedFd,
    pool: P,
    conns: Slab<Waiting>,
    ready: VecDeque<Job>,
    cfg: AcceptorConfig,
    stats: Arc<ServerStats>,
    accept_paused_until: Option<Instant>,
    /// Connections handed to the pool and not yet back.
    in_pool: usize,
}

impl<P: WorkerPool> Acceptor<P> {
    pub fn new(
        poll: Poll,
        mut listener: TcpListener,
        signals: OwnedFd,
        mut pool: P,
        cfg: AcceptorConfig,
        stats: Arc<ServerStats>,
    ) -> io::Result<Self> {
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        poll.registry().register(
            &mut SourceFd(&signals.as_raw_fd()),
            SIGNALS,
            Interest::READABLE,
        )?;
        pool.register(poll.registry())?;
        Ok(Acceptor {
            poll,
            listener: Some(listener),
            signals,
            pool,
            conns: Slab::new(),
            ready: VecDeque::new(),
            cfg,
            stats,
            accept_paused_until: None,
            in_pool: 0,
        })
    }

    /// Runs until SIGINT/SIGTERM, then drains and returns.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(1024);
        let mut returned = Vec::new();
        let mut drain_deadline: Option<Instant> = None;
        let mut pool_timer: Option<Instant> = None;
        loop {
            let timeout = self.next_timeout([drain_deadline, pool_timer]);
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if interrupted(&e) {
                    continue;
                }
                return Err(e);
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => {}
                    WAKER => {}
                    SIGNALS => {
                        if let Some(sig) = crate::sys::drain_fd(self.signals.as_raw_fd()) {
                            if drain_deadline.is_none() {
                                crate::log::info(format_args!(
                                    "signal {sig}: no longer accepting; draining {} connection(s) in flight",
                                    self.in_pool + self.ready.len()
                                ));
                                drain_deadline = Some(Instant::now() + self.cfg.drain_timeout);
                                self.start_drain()?;
                            }
                        }
                    }
                    t if t.0 >= POOL_TOKEN_BASE => {
                        self.pool.on_event(self.poll.registry(), t, event)?
                    }
                    t => self.on_readable(t.0),
                }
            }
            self.pool.take_returned(&mut returned);
            for r in returned.drain(..) {
                self.on_returned(r, drain_deadline.is_some());
            }
            pool_timer = self.pool.maintain(self.poll.registry());
            self.expire(Instant::now());
            self.judge_quiet(Instant::now());
            self.dispatch_ready();
            if let Some(deadline) = drain_deadline {
                if (self.ready.is_empty() && self.pool.is_idle()) || Instant::now() >= deadline {
                    if !self.pool.is_idle() {
                        crate::log::info(format_args!(
                            "drain timeout: closing with work still in flight"
                        ));
                    }
                    self.pool
                        .shutdown(deadline.max(Instant::now() + Duration::from_millis(100)));
                    crate::log::info(format_args!("stopped"));
                    return Ok(());
                }
            } else {
                self.accept();
            }
        }
    }

    fn next_timeout(&self, timers: [Option<Instant>; 2]) -> Duration {
        let now = Instant::now();
        let mut next = now + Duration::from_secs(1);
        for (_, c) in self.conns.iter() {
            next = next.min(c.idle_deadline);
            for d in [c.request_deadline, c.quiet_deadline].into_iter().flatten() {
                next = next.min(d);
            }
        }
        for t in timers
            .into_iter()
            .chain([self.accept_paused_until])
            .flatten()
        {
            next = next.min(t);
        }
        next.saturating_duration_since(now)
    }

    fn start_drain(&mut self) -> io::Result<()> {
        if let Some(mut l) = self.listener.take() {
            self.poll.registry().deregister(&mut l)?;
        }
        // A request that already arrived is still served: read what each waiting
        // connection has (handing over the complete ones), then close the rest.
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.on_readable(key);
        }
        for mut c in self.conns.drain() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.pool.drain();
        Ok(())
    }

    fn accept(&mut self) {
        if let Some(t) = self.accept_paused_until {
            if Instant::now() < t {
                return;
            }
            self.accept_paused_until = None;
        }
        while self.ready.is_empty()
            && self.pool.has_room()
            && self.conns.len() + self.in_pool < self.cfg.max_connections
        {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) if !self.cfg.allow.allows(peer.ip()) => {
                    // Closed unread: no byte of it reaches the parser or a worker.
                    self.stats.add(Counter::RefusedByAllowlist, 1);
                    crate::log::debug(format_args!("refused {peer}: not in --allow"));
                    drop(stream);
                }
                Ok((mut stream, peer)) => {
                    self.stats.add(Counter::ConnectionsAccepted, 1);
                    let entry = self.conns.vacant_entry();
                    let key = entry.key();
                    if let Err(e) =
                        self.poll
                            .registry()
                            .register(&mut stream, Token(key), Interest::READABLE)
                    {
                        crate::log::info(format_args!(
                            "cannot register connection from {peer}: {e}"
                        ));
                        continue;
                    }
                    crate::log::debug(format_args!("accepted {peer}"));
                    let now = Instant::now();
                    entry.insert(Waiting {
                        stream,
                        peer,
                        buf: Vec::new(),
                        burst: Burst::default(),
                        idle_deadline: now + self.cfg.limits.idle_timeout,
                        request_deadline: None,
                        quiet_deadline: None,
                        linger: false,
                    });
                    // Data that came with the connection does not raise a new edge: read now.
                    self.on_readable(key);
                }
                Err(e) if would_block(&e) => break,
                Err(e) if interrupted(&e) => continue,
                Err(e) if crate::sys::out_of_descriptors(&e) => {
                    crate::log::info(format_args!("accept: {e}; pausing accepts"));
                    self.accept_paused_until = Some(Instant::now() + ACCEPT_PAUSE);
                    break;
                }
                Err(e) => {
                    // ECONNABORTED and the like concern one connection only.
                    crate::log::debug(format_args!("accept: {e}"));
                }
            }
        }
    }

    /// Reads what a waiting connection sent; hands it over once a request line is complete.
    fn on_readable(&mut self, key: usize) {
        let limit = self.cfg.limits.max_line + 1;
        let Some(c) = self.conns.get_mut(key) else {
            return;
        };
        let mut chunk = [0u8; 16 * 1024];
        if c.linger {
            // Discard until the client closes (or the deadline, in `expire`).
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if would_block(&e) => return,
                    Err(e) if interrupted(&e) => continue,
                    Err(_) => break,
                }
            }
            self.close(key);
            return;
        }
        let mut closed = false;
        let mut arrived = None;
        loop {
            let room = limit.saturating_sub(c.buf.len());
            if room == 0 {
                break;
            }
            let want = room.min(chunk.len());
            match c.stream.read(&mut chunk[..want]) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    c.buf.extend_from_slice(&chunk[..n]);
                    c.burst.read(n, want);
                    let now = Instant::now();
                    arrived = Some(now);
                    c.idle_deadline = now + self.cfg.limits.idle_timeout;
                    c.buf.drain(..empty_lines_len(&c.buf));
                    if c.buf.is_empty() {
                        c.request_deadline = None;
                    } else if c.request_deadline.is_none() {
                        c.request_deadline = Some(now + self.cfg.limits.request_timeout);
                    }
                }
                Err(e) if would_block(&e) => {
                    c.burst.drained();
                    break;
                }
                Err(e) if interrupted(&e) => continue,
                Err(_) => {
                    closed = true;
                    break;
                }
            }
        }
        // A complete request is served even if the client has already half-closed
        // (`printf 'LIST\n' | nc -N`): the worker answers it, then sees the end.
        let complete = c.buf.contains(&b'\n') || c.buf.len() >= limit;
        if complete {
            self.hand_over(key, Start::Line);
        } else if closed {
            self.close(key);
        } else if let Some(now) = arrived {
            // The wait starts again with every byte that arrives.
            c.quiet_deadline = match self.cfg.unterminated_wait {
                Some(wait) if !c.buf.is_empty() => Some(now + wait),
                _ => None,
            };
        }
    }

    /// Judges the partial lines whose clients have been quiet for the
    /// unterminated wait: a complete request goes to a worker, to be served
    /// as if it ended there or refused; anything else waits on for more,
    /// under its request deadline, and is judged again once more arrives.
    fn judge_quiet(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.quiet_deadline.is_some_and(|d| now >= d))
            .map(|(k, _)| k)
            .collect();
        for key in due {
            let Some(c) = self.conns.get_mut(key) else {
                continue;
            };
            c.quiet_deadline = None;
            let (start, what) = match unterminated::judge(&c.buf, c.burst.holds(c.buf.len())) {
                Verdict::Wait => continue,
                Verdict::Serve => {
                    self.stats.add(Counter::UnterminatedRequests, 1);
                    (Start::Unterminated, "served")
                }
                Verdict::Refuse => {
                    self.stats.add(Counter::UnterminatedRefused, 1);
                    (Start::Refused, "refused")
                }
            };
            crate::log::debug(format_args!("{}: unterminated request {what}", c.peer));
            self.hand_over(key, start);
        }
    }

    fn close(&mut self, key: usize) {
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.stream);
        crate::log::debug(format_args!("closed {}", c.peer));
        // A descriptor was freed: accepting can resume at once.
        self.accept_paused_until = None;
    }

    fn hand_over(&mut self, key: usize, start: Start) {
        let mut c = self.conns.remove(key);
        let _ = self.poll.registry().deregister(&mut c.stream);
        let stream: std::net::TcpStream = c.stream.into();
        let burst = c.burst.bytes().min(c.buf.len());
        self.ready.push_back(Job {
            stream,
            unread: Unread {
                bytes: c.buf,
                burst,
            },
            start,
            peer: c.peer,
        });
        self.dispatch_ready();
    }

    fn dispatch_ready(&mut self) {
        while let Some(job) = self.ready.pop_front() {
            match self.pool.submit(job) {
                Ok(()) => self.in_pool += 1,
                Err(job) => {
                    self.ready.push_front(job);
                    break;
                }
            }
        }
    }

    fn on_returned(&mut self, r: Returned, draining: bool) {
        self.in_pool = self.in_pool.saturating_sub(1);
        self.stats.record(r.worker, &r.stats);
        let (stream, unread, linger) = match r.after {
            AfterTask::Close => {
                // A descriptor was freed: accepting can resume at once.
                self.accept_paused_until = None;
                return;
            }
            AfterTask::Keep(s, unread) => (s, unread, false),
            AfterTask::Linger(s) => (s, Unread::default(), true),
        };
        if draining {
            return;
        }
        if !linger && unread.bytes.contains(&b'\n') {
            self.ready.push_back(Job {
                stream,
                unread,
                start: Start::Line,
                peer: r.peer,
            });
            return;
        }
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let mut stream = TcpStream::from_std(stream);
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if self
            .poll
            .registry()
            .register(&mut stream, Token(key), Interest::READABLE)
            .is_err()
        {
            return;
        }
        let now = Instant::now();
        let partial = !unread.bytes.is_empty();
        let request_deadline = partial.then(|| now + self.cfg.limits.request_timeout);
        // The worker left a partial line: its unterminated wait is kept here,
        // for every request after the first, in both modes.
        let quiet_deadline = match self.cfg.unterminated_wait {
            Some(wait) if partial => Some(now + wait),
            _ => None,
        };
        let idle = if linger {
            LINGER
        } else {
            self.cfg.limits.idle_timeout
        };
        entry.insert(Waiting {
            stream,
            peer: r.peer,
            buf: unread.bytes,
            burst: Burst::ended(unread.burst),
            idle_deadline: now + idle,
            request_deadline,
            quiet_deadline,
            linger,
        });
        // Bytes may have arrived between the worker's last read and the registration.
        self.on_readable(key);
    }

    /// Closes connections past their idle or request deadline, telling them why.
    fn expire(&mut self, now: Instant) {
        let expired: Vec<(usize, Expiry)> = self
            .conns
            .iter()
            .filter_map(|(k, c)| {
                let why = if c.linger {
                    (now >= c.idle_deadline).then_some(Expiry::LingerOver)
                } else if c.request_deadline.is_some_and(|d| now >= d) {
                    Some(Expiry::TimedOut("request line not received in time"))
                } else if now >= c.idle_deadline {
                    Some(Expiry::TimedOut("idle timeout"))
                } else {
                    None
                };
                why.map(|w| (k, w))
            })
            .collect();
        for (key, why) in expired {
            match why {
                Expiry::LingerOver => {}
                Expiry::TimedOut(reason) => {
                    self.stats.add(Counter::ConnectionsTimedOut, 1);
                    if let Some(c) = self.conns.get_mut(key) {
                        // Best effort, never blocking: the socket is non-blocking.
                        let _ = c.stream.write(&json::error_response(reason));
                        crate::log::debug(format_args!("{}: {reason}", c.peer));
                    }
                }
            }
            self.close(key);
        }
    }
}
