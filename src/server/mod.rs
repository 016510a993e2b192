//! The file server: configuration, start-up, and the choice of worker pool.
//!
//! `run` binds the listener (loopback by default), prints the address it
//! listens on as `LISTENING <addr>` on stdout (tests and the sweep read it),
//! and runs the acceptor over the chosen pool until SIGINT/SIGTERM.

pub mod acceptor;
pub mod allow;
pub mod channel;
pub mod conn;
pub mod pool;
pub mod process_pool;
pub mod stats;
pub mod thread_pool;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mio::{Poll, Waker};

use crate::protocol::Limits;
use crate::store::Store;
use acceptor::{Acceptor, AcceptorConfig, WAKER};
use allow::AllowList;
use pool::PoolConfig;
use process_pool::ProcessPool;
use stats::ServerStats;
use thread_pool::ThreadPool;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Thread,
    Process,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Thread => "thread",
            Mode::Process => "process",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "thread" => Ok(Mode::Thread),
            "process" => Ok(Mode::Process),
            _ => Err(format!("unknown mode {s:?} (thread or process)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// The networks whose clients are served; others are closed at accept.
    pub allow: AllowList,
    pub root: PathBuf,
    pub mode: Mode,
    pub pool: usize,
    /// Ready connections that may wait for a free worker.
    pub queue: usize,
    pub max_connections: usize,
    pub backlog: i32,
    pub fsync: bool,
    /// The TCP congestion control of the connections it accepts (set on
    /// the listening socket; see [`crate::tcp`]).
    pub congestion: crate::tcp::Congestion,
    pub limits: Limits,
    pub drain_timeout: Duration,
    /// How long a client must be quiet on a line without `\n` before it is
    /// taken as a request (PROTOCOL.md, "Unterminated requests"); zero: never.
    pub unterminated_wait: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            addr: "127.0.0.1:7000".parse().expect("valid address"),
            allow: AllowList::loopback(),
            root: PathBuf::from("files"),
            mode: Mode::Thread,
            pool: 5,
            queue: 64,
            max_connections: 4096,
            backlog: 1024,
            fsync: true,
            congestion: crate::tcp::Congestion::Auto,
            limits: Limits::default(),
            drain_timeout: Duration::from_secs(30),
            unterminated_wait: Duration::from_millis(100),
        }
    }
}

/// Descriptors kept free beyond the connections: the server's own (listener,
/// poll, pipes, log), a file or two per busy worker in thread mode, and a
/// socketpair per worker to replace in process mode.
fn fd_reserve(pool: usize) -> usize {
    32 + 2 * pool
}

/// The most connections the event loop may hold under the descriptor limit
/// (`nofile`, 0 when unknown).
/// Without it, accepting up to EMFILE leaves no descriptor to start a worker
/// or take a connection back from one, and queued connections wait forever.
fn connection_cap(max_connections: usize, nofile: u64, pool: usize) -> usize {
    if nofile == 0 {
        return max_connections;
    }
    let room = usize::try_from(nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(fd_reserve(pool))
        .max(1);
    max_connections.min(room)
}

/// Runs the server until SIGINT/SIGTERM has been handled.
///
/// In process mode the workers are forked here, before the event loop (or
/// anything else that could start a thread) exists, and the acceptor never
/// starts a thread afterwards.
pub fn run(cfg: ServerConfig) -> io::Result<()> {
    let nofile = crate::sys::raise_nofile_limit().unwrap_or(0);
    // A full disk or a file-size limit must end one upload with ERROR, not the server.
    crate::sys::ignore_sigxfsz()?;
    let store = Arc::new(Store::open(&cfg.root, cfg.fsync)?);
    let listener = mio::net::TcpListener::bind(cfg.addr)?;
    crate::sys::set_backlog(listener.as_raw_fd(), cfg.backlog)?;
    let local = listener.local_addr()?;
    // Before the first accept: every connection inherits it.
    cfg.congestion.apply(listener.as_fd(), local.ip())?;
    // Before the fork: a SIGTERM during start-up is not lost. Workers set both
    // signals to SIG_IGN as they start and never see this pipe.
    let signals = crate::sys::signal_pipe()?;
    let stats = Arc::new(ServerStats::new(cfg.mode.name(), cfg.pool)?);
    let pool_cfg = || PoolConfig {
        size: cfg.pool,
        queue: cfg.queue,
        store: store.clone(),
        limits: cfg.limits.clone(),
        stats: stats.clone(),
    };
    let process_pool = match cfg.mode {
        Mode::Process => Some(ProcessPool::start(pool_cfg())?),
        Mode::Thread => None,
    };
    crate::log::info(format_args!(
        "listening on {local}: allow={} mode={} pool={} root={} fsync={} tcp_congestion={} nofile={nofile} max_connections={}",
        cfg.allow,
        cfg.mode.name(),
        cfg.pool,
        cfg.root.display(),
        cfg.fsync,
        cfg.congestion.describe(local.ip()),
        connection_cap(cfg.max_connections, nofile, cfg.pool)
    ));
    {
        let mut out = io::stdout().lock();
        writeln!(out, "LISTENING {local}")?;
        out.flush()?;
    }
    let poll = Poll::new()?;
    let acfg = AcceptorConfig {
        limits: cfg.limits.clone(),
        max_connections: connection_cap(cfg.max_connections, nofile, cfg.pool),
        drain_timeout: cfg.drain_timeout,
        unterminated_wait: (!cfg.unterminated_wait.is_zero()).then_some(cfg.unterminated_wait),
        allow: cfg.allow.clone(),
    };
    let result = match process_pool {
        Some(pool) => Acceptor::new(poll, listener, signals, pool, acfg, stats)?.run(),
        None => {
            let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
            let pool = ThreadPool::start(pool_cfg(), waker)?;
            Acceptor::new(poll, listener, signals, pool, acfg, stats)?.run()
        }
    };
    // After a drain no worker process is left, and worker threads still busy
    // at its deadline end with the process, before their uploads' temp files
    // are dropped: the server's temp folder goes here, with whatever is left
    // in it. After an error, workers may still be writing there: the next
    // server's start removes the folder once they are gone.
    if result.is_ok() {
        let removed = store.remove_temp_folder();
        if removed > 0 {
            crate::log::info(format_args!(
                "removed {removed} temp file(s) of uploads cut off by the exit"
            ));
        }
    }
    result
}
