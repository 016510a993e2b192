//! What the acceptor needs from a worker pool, whichever kind it is, and the
//! types that cross between them: a [`Job`] goes in, a [`Returned`] comes
//! back, carrying the task's [`TaskStats`] and what becomes of the connection
//! ([`AfterTask`], decided by the connection handler).
//!
//! The two pools differ only in how a connection reaches a worker (a queue,
//! or a descriptor over a socketpair) and how the worker says it is done.
//! This module holds no pool logic and must never do I/O itself.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use mio::event::Event;
use mio::{Registry, Token};

use crate::protocol::Limits;
use crate::server::stats::{ServerStats, TaskStats};
use crate::store::Store;

/// Tokens at or above this belong to the pool's own event sources.
pub const POOL_TOKEN_BASE: usize = 1 << 40;

/// What either pool starts from.
pub struct PoolConfig {
    /// Workers.
    pub size: usize,
    /// Ready connections that may wait for a worker.
    pub queue: usize,
    /// What the workers serve with.
    pub store: Arc<Store>,
    pub limits: Limits,
    pub stats: Arc<ServerStats>,
}

/// Bytes read from a connection and not consumed yet, and how the last of
/// them arrived (see [`Burst`](crate::protocol::unterminated::Burst)).
#[derive(Debug, Default)]
pub struct Unread {
    pub bytes: Vec<u8>,
    /// The size of the latest burst of reads: the last `burst` bytes came in it.
    pub burst: usize,
}

/// How a job's unread bytes are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// They begin with a whole request line (or a line at the limit).
    Line,
    /// They are one request without its line end that the client has been
    /// quiet on for the unterminated wait: serve it as if it ended there.
    Unterminated,
    /// The same, but it may not be served that way: answer
    /// [`REFUSED`](crate::protocol::unterminated::REFUSED) and drop it.
    Refused,
}

/// A connection with a request to serve: a complete line (or a line at the
/// limit), or an unterminated request the event loop has judged.
pub struct Job {
    pub stream: TcpStream,
    /// Bytes already read by the acceptor.
    pub unread: Unread,
    pub start: Start,
    pub peer: SocketAddr,
}

/// What becomes of a connection once a worker is done with it: the handler
/// decides, the pool carries it back, the acceptor acts on it.
#[derive(Debug)]
pub enum AfterTask {
    /// Keep it: open with nothing complete waiting, so it goes back to the
    /// event loop to wait for its next request (with the bytes of a partial
    /// line, whose unterminated wait the event loop keeps).
    Keep(TcpStream, Unread),
    /// Closing after a fatal error, its write side already shut: the event loop
    /// discards what the client still sends until it closes or a short deadline
    /// passes, so the client reads the ERROR instead of a reset, and no worker
    /// waits for it.
    Linger(TcpStream),
    /// Close it: the worker has dropped (or lost) the connection.
    Close,
}

/// A worker is done with a task.
pub struct Returned {
    pub worker: usize,
    pub stats: TaskStats,
    pub after: AfterTask,
    pub peer: SocketAddr,
}

pub trait WorkerPool {
    /// Registers the pool's event sources with tokens from [`POOL_TOKEN_BASE`].
    fn register(&mut self, registry: &Registry) -> io::Result<()>;
    /// An event on one of the pool's tokens.
    fn on_event(&mut self, registry: &Registry, token: Token, event: &Event) -> io::Result<()>;
    /// Can a job be submitted now without waiting?
    fn has_room(&self) -> bool;
    /// Hands a job to a worker, or gives it back when there is no room.
    fn submit(&mut self, job: Job) -> Result<(), Job>;
    /// Moves the tasks finished since the last call into `out`.
    fn take_returned(&mut self, out: &mut Vec<Returned>);
    /// Nothing queued and nothing in flight.
    fn is_idle(&self) -> bool;
    /// Periodic work (process mode: replace dead workers); returns when it wants to run next.
    fn maintain(&mut self, registry: &Registry) -> Option<Instant>;
    /// The server is shutting down: workers finish the request at hand and close
    /// connections instead of giving them back. Queued jobs are still served.
    fn drain(&mut self);
    /// Stops the workers (once idle) and waits for them until `deadline`.
    fn shutdown(&mut self, deadline: Instant);
}
