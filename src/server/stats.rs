//! The server's counters, per worker, as `STATS` reports them.
//!
//! Only the acceptor writes them, from the [`TaskStats`] a worker gives back
//! after each task (a stretch of one connection served by one worker), so
//! thread mode and process mode count the same way. Workers only read them
//! (for STATS); a worker must never write a counter itself.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::protocol::json::Obj;
use crate::sys::shared::SharedCounters;

/// What a worker counted during one task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskStats {
    /// No ERROR was answered and the connection did not break before its last response.
    pub ok: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub requests: u64,
}

/// A server-wide counter.
#[derive(Debug, Clone, Copy)]
pub enum Counter {
    WorkersRestarted = 0,
    ConnectionsAccepted = 1,
    ConnectionsTimedOut = 2,
    /// Requests without a line end taken as requests after the unterminated wait.
    UnterminatedRequests = 3,
    /// Requests without a line end refused (split over several bursts).
    UnterminatedRefused = 4,
    /// Connections closed at accept, unread: their peer is not in `--allow`.
    RefusedByAllowlist = 5,
}
const SERVER_COUNTERS: usize = 6;

/// A worker's counters, in this order after the server-wide ones.
const PID: usize = 0;
const TASKS_OK: usize = 1;
const TASKS_FAILED: usize = 2;
const BYTES_IN: usize = 3;
const BYTES_OUT: usize = 4;
const REQUESTS: usize = 5;
const PER_WORKER: usize = 6;

/// Every counter lives in memory shared across `fork` (made before the
/// workers are forked), so a process-mode worker reads the live values for
/// STATS like a thread does; only the acceptor (and the pools as they start
/// workers) writes them.
#[derive(Debug)]
pub struct ServerStats {
    pub mode: &'static str,
    pool: usize,
    cells: SharedCounters,
}

impl ServerStats {
    pub fn new(mode: &'static str, pool: usize) -> io::Result<ServerStats> {
        Ok(ServerStats {
            mode,
            pool,
            cells: SharedCounters::new(SERVER_COUNTERS + pool * PER_WORKER)?,
        })
    }

    fn worker(&self, id: usize, field: usize) -> Option<&AtomicU64> {
        (id < self.pool).then(|| &self.cells[SERVER_COUNTERS + id * PER_WORKER + field])
    }

    pub fn add(&self, c: Counter, n: u64) {
        self.cells[c as usize].fetch_add(n, Relaxed);
    }

    pub fn get(&self, c: Counter) -> u64 {
        self.cells[c as usize].load(Relaxed)
    }

    /// The pid of the process that serves as worker `id`.
    pub fn set_pid(&self, id: usize, pid: u32) {
        if let Some(p) = self.worker(id, PID) {
            p.store(u64::from(pid), Relaxed);
        }
    }

    pub fn record(&self, worker: usize, r: &TaskStats) {
        let add = |field, n| {
            if let Some(c) = self.worker(worker, field) {
                c.fetch_add(n, Relaxed);
            }
        };
        add(if r.ok { TASKS_OK } else { TASKS_FAILED }, 1);
        add(BYTES_IN, r.bytes_in);
        add(BYTES_OUT, r.bytes_out);
        add(REQUESTS, r.requests);
    }

    /// The `data` object of a STATS response.
    pub fn to_json(&self) -> String {
        let field = |id, f| self.worker(id, f).map_or(0, |c| c.load(Relaxed));
        let sum = |f| (0..self.pool).map(|id| field(id, f)).sum::<u64>();
        let workers: Vec<String> = (0..self.pool)
            .map(|id| {
                Obj::new()
                    .num("id", id as u64)
                    .num("pid", field(id, PID))
                    .num("tasks_ok", field(id, TASKS_OK))
                    .num("tasks_failed", field(id, TASKS_FAILED))
                    .num("bytes_in", field(id, BYTES_IN))
                    .num("bytes_out", field(id, BYTES_OUT))
                    .num("requests", field(id, REQUESTS))
                    .finish()
            })
            .collect();
        Obj::new()
            .str("mode", self.mode)
            .num("pool", self.pool as u64)
            .num("tasks_ok", sum(TASKS_OK))
            .num("tasks_failed", sum(TASKS_FAILED))
            .num("bytes_in", sum(BYTES_IN))
            .num("bytes_out", sum(BYTES_OUT))
            .num("requests", sum(REQUESTS))
            .num("workers_restarted", self.get(Counter::WorkersRestarted))
            .num(
                "connections_accepted",
                self.get(Counter::ConnectionsAccepted),
            )
            .num(
                "connections_timed_out",
                self.get(Counter::ConnectionsTimedOut),
            )
            .num(
                "refused_by_allowlist",
                self.get(Counter::RefusedByAllowlist),
            )
            .num(
                "unterminated_requests",
                self.get(Counter::UnterminatedRequests),
            )
            .num(
                "unterminated_refused",
                self.get(Counter::UnterminatedRefused),
            )
            .raw("workers", &format!("[{}]", workers.join(", ")))
            .finish()
    }
}
