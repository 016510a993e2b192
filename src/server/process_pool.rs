//! Process mode: N pre-forked worker processes, each fed connections over its
//! own UNIX socketpair with `SCM_RIGHTS`.
//!
//! The acceptor sends an idle worker the connection's descriptor and the bytes
//! it already read, and closes its own copy at once (so a client sees its
//! connection close if that worker dies). The worker serves it with
//! [`conn::serve`], the same handler as thread mode, and sends back a
//! `DoneMessage`: its [`TaskStats`] and the [`AfterTask`], with the
//! descriptor when the connection is kept or lingers. STATS reads the counters
//! the acceptor keeps in memory shared across the fork. A worker that dies is
//! noticed through its socketpair, reaped, its temp files removed, and
//! replaced, with a growing delay if replacements keep dying at start.
//!
//! The acceptor side never blocks on a channel (a full one is waited out
//! through the event loop) and never starts a thread; a worker never touches
//! the listener, the event loop or another worker's channel.

use std::collections::VecDeque;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};

use crate::protocol::Limits;
use crate::server::channel::{self, Frame, Reader, Writer};
use crate::server::conn::{self, Ctx, FileReads};
use crate::server::pool::{
    AfterTask, Job, PoolConfig, Returned, Start, Unread, WorkerPool, POOL_TOKEN_BASE,
};
use crate::server::stats::{Counter, ServerStats, TaskStats};
use crate::store::Store;
use crate::sys::fdpass;
use crate::sys::process::{self, Forked};

/// A worker that dies sooner than this after its start counts as dying at start.
const QUICK_DEATH: Duration = Duration::from_secs(1);
/// How often an exited worker is looked for while not reaped yet.
const REAP_RETRY: Duration = Duration::from_millis(5);

/// How long to wait before replacing a worker, after `quick` deaths at start
/// in a row: the first replacement is immediate, then 100 ms, doubling, to 10 s.
pub fn restart_delay(quick: u32) -> Duration {
    match quick {
        0 | 1 => Duration::ZERO,
        n => Duration::from_millis(100u64 << (n - 2).min(7)).min(Duration::from_secs(10)),
    }
}

// Message kinds. Acceptor to worker: a job (with the connection's
// descriptor), or "drain". Worker to acceptor: a done message (with the
// descriptor when the connection comes back).
const JOB: u8 = b'J';
const DRAIN: u8 = b'Q';
const DONE: u8 = b'D';

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// A read cursor over a message body.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> io::Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(bad("channel message too short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> io::Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

/// How a job's bytes are taken, on the wire.
const START_LINE: u8 = 0;
const START_UNTERMINATED: u8 = 1;
const START_REFUSED: u8 = 2;

/// A job's body: how its bytes are taken, how the last of them arrived, the bytes.
fn encode_job(unread: &Unread, start: Start) -> Vec<u8> {
    let mut b = Vec::with_capacity(14 + unread.bytes.len());
    b.push(JOB);
    b.push(match start {
        Start::Line => START_LINE,
        Start::Unterminated => START_UNTERMINATED,
        Start::Refused => START_REFUSED,
    });
    b.extend_from_slice(&(unread.burst as u64).to_le_bytes());
    b.extend_from_slice(&(unread.bytes.len() as u32).to_le_bytes());
    b.extend_from_slice(&unread.bytes);
    b
}

enum ToWorker {
    Job {
        stream: TcpStream,
        unread: Unread,
        start: Start,
    },
    Drain,
}

fn decode_to_worker(f: Frame) -> io::Result<ToWorker> {
    let mut c = Cursor(&f.body);
    match (c.u8()?, f.fd) {
        (JOB, Some(fd)) => {
            let start = match c.u8()? {
                START_LINE => Start::Line,
                START_UNTERMINATED => Start::Unterminated,
                START_REFUSED => Start::Refused,
                _ => return Err(bad("a job with an unknown start")),
            };
            let burst = c.u64()? as usize;
            let n = c.u32()? as usize;
            let bytes = c.take(n)?.to_vec();
            if !c.0.is_empty() {
                return Err(bad("bytes after a job"));
            }
            Ok(ToWorker::Job {
                stream: TcpStream::from(fd),
                unread: Unread { bytes, burst },
                start,
            })
        }
        (DRAIN, None) if c.0.is_empty() => Ok(ToWorker::Drain),
        _ => Err(bad("unexpected message from the acceptor")),
    }
}

/// What a done message says of its connection (the descriptor travels with
/// it unless closed).
const AFTER_CLOSE: u8 = 0;
const AFTER_KEEP: u8 = 1;
const AFTER_LINGER: u8 = 2;

/// What a worker sends the acceptor after each task: what it counted, and
/// what becomes of the connection.
struct DoneMessage {
    stats: TaskStats,
    after: AfterTask,
}

impl DoneMessage {
    /// The body, and the descriptor to send with it (none when closed); a
    /// kept connection's partial line (after the size of its latest burst)
    /// ends the body.
    fn encode(self) -> (Vec<u8>, Option<OwnedFd>) {
        let (kind, rest, fd) = match self.after {
            AfterTask::Keep(s, rest) => (AFTER_KEEP, rest, Some(OwnedFd::from(s))),
            AfterTask::Linger(s) => (AFTER_LINGER, Unread::default(), Some(OwnedFd::from(s))),
            AfterTask::Close => (AFTER_CLOSE, Unread::default(), None),
        };
        let r = &self.stats;
        let mut b = Vec::with_capacity(35 + rest.bytes.len());
        b.push(DONE);
        b.push(r.ok as u8);
        for v in [r.bytes_in, r.bytes_out, r.requests] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.push(kind);
        if kind == AFTER_KEEP {
            b.extend_from_slice(&(rest.burst as u64).to_le_bytes());
            b.extend_from_slice(&rest.bytes);
        }
        (b, fd)
    }

    fn decode(f: Frame) -> io::Result<DoneMessage> {
        let mut c = Cursor(&f.body);
        if c.u8()? != DONE {
            return Err(bad("unexpected message from a worker"));
        }
        let ok = c.u8()? != 0;
        let stats = TaskStats {
            ok,
            bytes_in: c.u64()?,
            bytes_out: c.u64()?,
            requests: c.u64()?,
        };
        let after = match (c.u8()?, f.fd) {
            (AFTER_KEEP, Some(fd)) => {
                let burst = c.u64()? as usize;
                let bytes = c.0.to_vec();
                AfterTask::Keep(TcpStream::from(fd), Unread { bytes, burst })
            }
            (AFTER_LINGER, Some(fd)) if c.0.is_empty() => AfterTask::Linger(TcpStream::from(fd)),
            (AFTER_CLOSE, None) if c.0.is_empty() => AfterTask::Close,
            _ => return Err(bad("done message and descriptor do not match")),
        };
        Ok(DoneMessage { stats, after })
    }
}

/// The acceptor's side of one live worker process.
struct WorkerProcess {
    pid: u32,
    chan: OwnedFd,
    reader: Reader,
    writer: Writer,
    started: Instant,
    /// The peer of the connection it is serving, if any.
    busy: Option<SocketAddr>,
}

/// A place in the pool: its live worker process, or when to start the next one.
#[derive(Default)]
struct WorkerSlot {
    worker: Option<WorkerProcess>,
    respawn_at: Option<Instant>,
    /// Deaths at start in a row (for the back-off).
    quick_deaths: u32,
}

/// A worker that is gone from its slot and not reaped yet.
struct Zombie {
    pid: u32,
    id: usize,
}

pub struct ProcessPool {
    slots: Vec<WorkerSlot>,
    queue: VecDeque<Job>,
    capacity: usize,
    returned: Vec<Returned>,
    zombies: Vec<Zombie>,
    /// Where the next search for an idle worker starts (spreads the work).
    cursor: usize,
    registry: Option<Registry>,
    store: Arc<Store>,
    limits: Limits,
    stats: Arc<ServerStats>,
    max_frame: usize,
    stopping: bool,
}

/// The earlier of a timer that may be unset and `at`.
fn earliest(next: Option<Instant>, at: Instant) -> Option<Instant> {
    Some(next.map_or(at, |n| n.min(at)))
}

fn token(id: usize) -> Token {
    Token(POOL_TOKEN_BASE + id)
}

impl ProcessPool {
    /// Forks `cfg.size` workers (call before any thread exists); at most
    /// `cfg.queue` ready connections wait for one.
    pub fn start(cfg: PoolConfig) -> io::Result<ProcessPool> {
        let max_frame = cfg.limits.max_line * 2 + (16 << 20);
        let mut pool = ProcessPool {
            slots: (0..cfg.size).map(|_| WorkerSlot::default()).collect(),
            queue: VecDeque::with_capacity(cfg.queue),
            capacity: cfg.queue.max(1),
            returned: Vec::new(),
            zombies: Vec::new(),
            cursor: 0,
            registry: None,
            store: cfg.store,
            limits: cfg.limits,
            stats: cfg.stats,
            max_frame,
            stopping: false,
        };
        for id in 0..cfg.size {
            pool.spawn(id)?;
        }
        Ok(pool)
    }

    /// Forks the worker of slot `id`. Returns in the parent only.
    fn spawn(&mut self, id: usize) -> io::Result<()> {
        let (mine, theirs) = fdpass::socketpair()?;
        fdpass::set_nonblocking(mine.as_fd(), true)?;
        match process::fork_worker(theirs.as_fd())? {
            Forked::Child => {
                // Already closed by fork_worker: must not be closed again.
                std::mem::forget(mine);
                let code = catch_unwind(AssertUnwindSafe(|| {
                    worker_main(
                        id,
                        theirs,
                        &self.store,
                        &self.limits,
                        &self.stats,
                        self.max_frame,
                    )
                }))
                .unwrap_or(101);
                process::exit_now(code)
            }
            Forked::ChildSetupFailed(e) => {
                // Already closed, or about to be with the process.
                std::mem::forget(mine);
                crate::log::info(format_args!("worker {id}: start-up failed: {e}"));
                process::exit_now(70)
            }
            Forked::Parent { pid } => {
                drop(theirs);
                self.stats.set_pid(id, pid);
                crate::log::debug(format_args!("worker {id} started: pid {pid}"));
                self.slots[id].worker = Some(WorkerProcess {
                    pid,
                    chan: mine,
                    reader: Reader::new(self.max_frame),
                    writer: Writer::new(),
                    started: Instant::now(),
                    busy: None,
                });
                if let Some(r) = &self.registry {
                    if let Err(e) = register_worker(r, id, self.slots[id].worker.as_ref()) {
                        self.lose(id, &format!("cannot watch its channel: {e}"));
                        return Err(e);
                    }
                }
                Ok(())
            }
        }
    }

    /// A worker is gone or unusable: closes its channel (and any connection
    /// still queued on it), fails its task, and schedules its replacement.
    fn lose(&mut self, id: usize, reason: &str) {
        let Some(mut w) = self.slots[id].worker.take() else {
            return;
        };
        if let Some(r) = &self.registry {
            let _ = r.deregister(&mut SourceFd(&w.chan.as_raw_fd()));
        }
        // It may still be running (a protocol error): make sure it ends. Not
        // reaped yet, so the pid is still ours.
        let _ = process::kill_hard(w.pid);
        if let Some(peer) = w.busy.take() {
            self.returned.push(Returned {
                worker: id,
                stats: TaskStats::default(),
                after: AfterTask::Close,
                peer,
            });
        }
        let now = Instant::now();
        let slot = &mut self.slots[id];
        if now.duration_since(w.started) < QUICK_DEATH {
            slot.quick_deaths += 1;
        } else {
            slot.quick_deaths = 0;
        }
        let delay = restart_delay(slot.quick_deaths);
        slot.respawn_at = Some(now + delay);
        crate::log::info(format_args!(
            "worker {id} (pid {}) lost: {reason}; replacing it in {delay:?}",
            w.pid
        ));
        self.zombies.push(Zombie { pid: w.pid, id });
        drop(w);
    }

    /// Reads what a worker sent: done messages, or the end of its channel.
    fn read(&mut self, id: usize) {
        loop {
            let Some(w) = self.slots[id].worker.as_mut() else {
                return;
            };
            let r = w.reader.fill(w.chan.as_fd());
            let closed = match r {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return self.lose(id, &format!("channel error: {e}")),
            };
            // Tasks done before the end still count.
            if let Err(e) = self.take_done(id) {
                return self.lose(id, &format!("bad done message: {e}"));
            }
            if closed {
                return self.lose(id, "its channel closed");
            }
        }
    }

    fn take_done(&mut self, id: usize) -> io::Result<()> {
        while let Some(w) = self.slots[id].worker.as_mut() {
            let Some(frame) = w.reader.next_frame()? else {
                break;
            };
            let done = DoneMessage::decode(frame)?;
            let peer = w
                .busy
                .take()
                .ok_or_else(|| bad("a done message from an idle worker"))?;
            self.returned.push(Returned {
                worker: id,
                stats: done.stats,
                after: done.after,
                peer,
            });
        }
        Ok(())
    }

    fn flush(&mut self, id: usize) {
        let Some(w) = self.slots[id].worker.as_mut() else {
            return;
        };
        if let Err(e) = w.writer.flush(w.chan.as_fd()) {
            self.lose(id, &format!("cannot write to its channel: {e}"));
        }
    }

    fn idle_worker(&mut self) -> Option<usize> {
        let n = self.slots.len();
        for k in 0..n {
            let id = (self.cursor + k) % n;
            if self.slots[id]
                .worker
                .as_ref()
                .is_some_and(|w| w.busy.is_none())
            {
                self.cursor = (id + 1) % n;
                return Some(id);
            }
        }
        None
    }

    /// Hands queued jobs to idle workers.
    fn dispatch(&mut self) {
        while !self.queue.is_empty() {
            let Some(id) = self.idle_worker() else {
                return;
            };
            let Some(job) = self.queue.pop_front() else {
                return;
            };
            let body = encode_job(&job.unread, job.start);
            if let Some(w) = self.slots[id].worker.as_mut() {
                w.writer.push(&body, Some(OwnedFd::from(job.stream)));
                w.busy = Some(job.peer);
            }
            self.flush(id);
        }
    }

    /// Reaps exited workers and removes their temp files.
    fn reap(&mut self) {
        let store = &self.store;
        self.zombies.retain(|z| match process::try_wait(z.pid) {
            Ok(None) => true,
            Ok(Some(st)) => {
                after_exit(store, z.id, z.pid, &st.to_string());
                false
            }
            Err(e) => {
                after_exit(store, z.id, z.pid, &format!("waitpid: {e}"));
                false
            }
        });
    }
}

/// A worker has been reaped: its unfinished uploads are removed.
fn after_exit(store: &Store, id: usize, pid: u32, how: &str) {
    let removed = store.remove_temps_of(pid);
    let line =
        format_args!("worker {id} (pid {pid}) reaped: {how}; {removed} temp file(s) removed");
    if how == "exit code 0" && removed == 0 {
        crate::log::debug(line);
    } else {
        crate::log::info(line);
    }
}

fn register_worker(r: &Registry, id: usize, w: Option<&WorkerProcess>) -> io::Result<()> {
    match w {
        Some(w) => r.register(
            &mut SourceFd(&w.chan.as_raw_fd()),
            token(id),
            Interest::READABLE | Interest::WRITABLE,
        ),
        None => Ok(()),
    }
}

impl WorkerPool for ProcessPool {
    fn register(&mut self, registry: &Registry) -> io::Result<()> {
        for (id, s) in self.slots.iter().enumerate() {
            register_worker(registry, id, s.worker.as_ref())?;
        }
        self.registry = Some(registry.try_clone()?);
        Ok(())
    }

    fn on_event(&mut self, _: &Registry, token: Token, event: &Event) -> io::Result<()> {
        // A worker's trouble is never the acceptor's error: it loses that worker.
        let id = token.0 - POOL_TOKEN_BASE;
        if id >= self.slots.len() {
            return Ok(());
        }
        if event.is_writable() {
            self.flush(id);
        }
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.read(id);
        }
        self.dispatch();
        Ok(())
    }

    fn has_room(&self) -> bool {
        self.queue.len() < self.capacity
    }

    fn submit(&mut self, job: Job) -> Result<(), Job> {
        if self.queue.len() >= self.capacity {
            return Err(job);
        }
        self.queue.push_back(job);
        self.dispatch();
        Ok(())
    }

    fn take_returned(&mut self, out: &mut Vec<Returned>) {
        out.append(&mut self.returned);
    }

    fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self
                .slots
                .iter()
                .all(|s| s.worker.as_ref().is_none_or(|w| w.busy.is_none()))
    }

    fn maintain(&mut self, _: &Registry) -> Option<Instant> {
        self.reap();
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for id in 0..self.slots.len() {
            if self.stopping || self.slots[id].worker.is_some() {
                continue;
            }
            let Some(at) = self.slots[id].respawn_at else {
                continue;
            };
            if at > now {
                next = earliest(next, at);
                continue;
            }
            match self.spawn(id) {
                Ok(()) => {
                    self.slots[id].respawn_at = None;
                    self.stats.add(Counter::WorkersRestarted, 1);
                }
                Err(e) => {
                    let slot = &mut self.slots[id];
                    slot.quick_deaths += 1;
                    let delay = restart_delay(slot.quick_deaths).max(Duration::from_millis(100));
                    crate::log::info(format_args!(
                        "cannot start worker {id}: {e}; retrying in {delay:?}"
                    ));
                    slot.respawn_at = Some(now + delay);
                    next = earliest(next, now + delay);
                }
            }
        }
        self.dispatch();
        if !self.zombies.is_empty() {
            next = earliest(next, now + REAP_RETRY);
        }
        next
    }

    fn drain(&mut self) {
        for id in 0..self.slots.len() {
            if let Some(w) = self.slots[id].worker.as_mut() {
                w.writer.push(&[DRAIN], None);
            }
            self.flush(id);
        }
    }

    fn shutdown(&mut self, deadline: Instant) {
        self.stopping = true;
        // Closing a channel is the signal to stop: the worker ends once it has
        // finished the connection at hand.
        for id in 0..self.slots.len() {
            if let Some(w) = self.slots[id].worker.take() {
                if let Some(r) = &self.registry {
                    let _ = r.deregister(&mut SourceFd(&w.chan.as_raw_fd()));
                }
                self.zombies.push(Zombie { pid: w.pid, id });
            }
        }
        loop {
            self.reap();
            if self.zombies.is_empty() {
                return;
            }
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(REAP_RETRY);
        }
        for z in std::mem::take(&mut self.zombies) {
            crate::log::info(format_args!(
                "worker {} (pid {}) still busy at the deadline: killing it",
                z.id, z.pid
            ));
            let _ = process::kill_hard(z.pid);
            let how = match process::wait_blocking(z.pid) {
                Ok(st) => st.to_string(),
                Err(e) => format!("waitpid: {e}"),
            };
            after_exit(&self.store, z.id, z.pid, &how);
        }
    }
}

/// The worker process: serves the jobs that come over `chan` until it closes.
/// Returns the exit code.
fn worker_main(
    id: usize,
    chan: OwnedFd,
    store: &Store,
    limits: &Limits,
    stats: &ServerStats,
    max_frame: usize,
) -> i32 {
    crate::log::debug(format_args!("worker {id} ready"));
    if let Err(e) = fdpass::set_nonblocking(chan.as_fd(), false) {
        crate::log::info(format_args!("worker {id}: {e}"));
        return 1;
    }
    let mut reader = Reader::new(max_frame);
    let mut draining = false;
    loop {
        let msg = match reader
            .recv_blocking(chan.as_fd())
            .and_then(|f| f.map(decode_to_worker).transpose())
        {
            Ok(Some(m)) => m,
            Ok(None) => return 0,
            Err(e) => {
                crate::log::info(format_args!("worker {id}: channel: {e}"));
                return 1;
            }
        };
        let (stream, unread, start) = match msg {
            ToWorker::Drain => {
                draining = true;
                continue;
            }
            ToWorker::Job {
                stream,
                unread,
                start,
            } => (stream, unread, start),
        };
        let stats_json = || stats.to_json();
        // Anything on the channel while busy is "drain" or its end (the
        // acceptor gone): either way, finish the request at hand and close.
        let is_draining = || draining || fdpass::readable_now(chan.as_fd()).unwrap_or(true);
        let ctx = Ctx {
            store,
            limits,
            stats_json: &stats_json,
            draining: &is_draining,
            file_reads: FileReads::Maps,
        };
        let (after, stats) = conn::serve(stream, unread, start, &ctx);
        crate::log::debug(format_args!("worker {id} done: {stats:?}"));
        let (body, fd) = DoneMessage { stats, after }.encode();
        if let Err(e) = channel::send_blocking(chan.as_fd(), &body, fd) {
            crate::log::info(format_args!(
                "worker {id}: cannot say it is done ({e}): exiting"
            ));
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_back_off_only_when_workers_keep_dying_at_start() {
        assert_eq!(restart_delay(0), Duration::ZERO);
        assert_eq!(restart_delay(1), Duration::ZERO);
        assert_eq!(restart_delay(2), Duration::from_millis(100));
        assert_eq!(restart_delay(3), Duration::from_millis(200));
        assert!(restart_delay(6) > restart_delay(5));
        assert_eq!(restart_delay(50), Duration::from_secs(10));
        assert_eq!(restart_delay(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn messages_round_trip_and_mismatches_are_refused() {
        let r = TaskStats {
            ok: true,
            bytes_in: 7,
            bytes_out: 1 << 40,
            requests: 3,
        };
        let (body, fd) = DoneMessage {
            stats: r,
            after: AfterTask::Close,
        }
        .encode();
        assert!(fd.is_none());
        let done = DoneMessage::decode(Frame {
            body: body.clone(),
            fd: None,
        })
        .unwrap();
        assert_eq!(done.stats, r);
        assert!(matches!(done.after, AfterTask::Close));
        // A kept connection travels with its descriptor and its partial line.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (kept, fd) = DoneMessage {
            stats: r,
            after: AfterTask::Keep(
                client,
                Unread {
                    bytes: b"LI".to_vec(),
                    burst: 2,
                },
            ),
        }
        .encode();
        let done = DoneMessage::decode(Frame {
            body: kept.clone(),
            fd,
        })
        .unwrap();
        match done.after {
            AfterTask::Keep(s, rest) => {
                assert_eq!((&rest.bytes[..], rest.burst), (&b"LI"[..], 2));
                assert_eq!(
                    s.local_addr().unwrap().ip(),
                    listener.local_addr().unwrap().ip()
                );
            }
            other => panic!("{other:?}"),
        }
        // A done message that says "connection kept" without a descriptor.
        assert!(DoneMessage::decode(Frame {
            body: kept,
            fd: None,
        })
        .is_err());
        assert!(DoneMessage::decode(Frame {
            body: vec![DONE, 1],
            fd: None,
        })
        .is_err());
        // A job without its descriptor.
        let job = Unread {
            bytes: b"LIST\nDEL".to_vec(),
            burst: 3,
        };
        assert!(decode_to_worker(Frame {
            body: encode_job(&job, Start::Line),
            fd: None,
        })
        .is_err());
        // A job travels with how its bytes are taken and how they came.
        for start in [Start::Line, Start::Unterminated, Start::Refused] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            match decode_to_worker(Frame {
                body: encode_job(&job, start),
                fd: Some(OwnedFd::from(client)),
            }) {
                Ok(ToWorker::Job {
                    unread, start: s, ..
                }) => {
                    assert_eq!(
                        (unread.bytes, unread.burst, s),
                        (job.bytes.clone(), 3, start)
                    );
                }
                _ => panic!("{start:?} did not round-trip"),
            }
        }
        assert!(matches!(
            decode_to_worker(Frame {
                body: vec![DRAIN],
                fd: None,
            }),
            Ok(ToWorker::Drain)
        ));
    }
}
