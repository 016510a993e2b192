//! The server's counters, per worker, as `STATS` reports them.
//!
//! Only the acceptor writes them, from the report a worker gives back after
//! each task (a stretch of one connection served by one worker), so thread
//! mode and process mode count the same way.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::protocol::json::Obj;

/// What a worker says about one task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    /// No ERROR was answered and the connection did not break before its last response.
    pub ok: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub requests: u64,
}

#[derive(Debug, Default)]
pub struct WorkerStats {
    pub pid: AtomicU32,
    pub tasks_ok: AtomicU64,
    pub tasks_failed: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub requests: AtomicU64,
}

#[derive(Debug)]
pub struct ServerStats {
    pub mode: &'static str,
    pub workers: Vec<WorkerStats>,
    pub workers_restarted: AtomicU64,
    pub connections_accepted: AtomicU64,
    pub connections_timed_out: AtomicU64,
}

impl ServerStats {
    pub fn new(mode: &'static str, pool: usize) -> ServerStats {
        ServerStats {
            mode,
            workers: (0..pool).map(|_| WorkerStats::default()).collect(),
            workers_restarted: AtomicU64::new(0),
            connections_accepted: AtomicU64::new(0),
            connections_timed_out: AtomicU64::new(0),
        }
    }

    pub fn record(&self, worker: usize, r: &Report) {
        let Some(w) = self.workers.get(worker) else {
            return;
        };
        if r.ok { &w.tasks_ok } else { &w.tasks_failed }.fetch_add(1, Relaxed);
        w.bytes_in.fetch_add(r.bytes_in, Relaxed);
        w.bytes_out.fetch_add(r.bytes_out, Relaxed);
        w.requests.fetch_add(r.requests, Relaxed);
    }

    /// The `data` object of a STATS response.
    pub fn to_json(&self) -> String {
        let sum = |f: fn(&WorkerStats) -> &AtomicU64| {
            self.workers.iter().map(|w| f(w).load(Relaxed)).sum::<u64>()
        };
        let workers: Vec<String> = self
            .workers
            .iter()
            .enumerate()
            .map(|(id, w)| {
                Obj::new()
                    .num("id", id as u64)
                    .num("pid", w.pid.load(Relaxed) as u64)
                    .num("tasks_ok", w.tasks_ok.load(Relaxed))
                    .num("tasks_failed", w.tasks_failed.load(Relaxed))
                    .num("bytes_in", w.bytes_in.load(Relaxed))
                    .num("bytes_out", w.bytes_out.load(Relaxed))
                    .num("requests", w.requests.load(Relaxed))
                    .finish()
            })
            .collect();
        Obj::new()
            .str("mode", self.mode)
            .num("pool", self.workers.len() as u64)
            .num("tasks_ok", sum(|w| &w.tasks_ok))
            .num("tasks_failed", sum(|w| &w.tasks_failed))
            .num("bytes_in", sum(|w| &w.bytes_in))
            .num("bytes_out", sum(|w| &w.bytes_out))
            .num("requests", sum(|w| &w.requests))
            .num("workers_restarted", self.workers_restarted.load(Relaxed))
            .num(
                "connections_accepted",
                self.connections_accepted.load(Relaxed),
            )
            .num(
                "connections_timed_out",
                self.connections_timed_out.load(Relaxed),
            )
            .raw("workers", &format!("[{}]", workers.join(", ")))
            .finish()
    }
}
