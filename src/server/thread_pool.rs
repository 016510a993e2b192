//! Thread mode: a hand-rolled pool of N `std::thread`s fed through a bounded queue.
//!
//! `Arc<Shared { Mutex<State>, Condvar }>` as in tiny-http, with an explicit
//! shutdown flag, and the `JoinHandle`s kept and joined on shutdown. Each
//! `WorkerThread` serves a job with [`conn::serve`], sends what it did
//! ([`Returned`]) through a channel and wakes the event loop with a
//! `mio::Waker`. A worker thread never touches the event loop or its
//! connections, and a panicking handler never ends a worker (the pool never
//! shrinks).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::{Registry, Token, Waker};

use crate::protocol::Limits;
use crate::server::conn::{self, Ctx, FileReads};
use crate::server::pool::{AfterTask, Job, PoolConfig, Returned, WorkerPool};
use crate::server::stats::{ServerStats, TaskStats};
use crate::store::Store;

struct State {
    jobs: VecDeque<Job>,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    /// Jobs taken by a worker and not yet reported.
    busy: AtomicUsize,
    draining: AtomicBool,
}

pub struct ThreadPool {
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<()>>,
    returned: Receiver<Returned>,
    capacity: usize,
}

impl ThreadPool {
    /// Starts `cfg.size` workers; at most `cfg.queue` jobs wait for one.
    pub fn start(cfg: PoolConfig, waker: Arc<Waker>) -> io::Result<ThreadPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::with_capacity(cfg.queue),
                shutdown: false,
            }),
            ready: Condvar::new(),
            busy: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
        });
        let (tx, rx) = channel();
        let mut handles = Vec::with_capacity(cfg.size);
        for id in 0..cfg.size {
            cfg.stats.set_pid(id, std::process::id());
            let worker = WorkerThread {
                id,
                shared: shared.clone(),
                store: cfg.store.clone(),
                limits: cfg.limits.clone(),
                stats: cfg.stats.clone(),
                tx: tx.clone(),
                waker: waker.clone(),
            };
            handles.push(
                std::thread::Builder::new()
                    .name(format!("worker-{id}"))
                    .spawn(move || worker.run())?,
            );
        }
        Ok(ThreadPool {
            shared,
            handles,
            returned: rx,
            capacity: cfg.queue.max(1),
        })
    }
}

/// What one worker thread owns and runs with.
struct WorkerThread {
    id: usize,
    shared: Arc<Shared>,
    store: Arc<Store>,
    limits: Limits,
    stats: Arc<ServerStats>,
    tx: Sender<Returned>,
    waker: Arc<Waker>,
}

impl WorkerThread {
    fn run(self) {
        let stats_json = || self.stats.to_json();
        let draining = || self.shared.draining.load(Ordering::Relaxed);
        let ctx = Ctx {
            store: &self.store,
            limits: &self.limits,
            stats_json: &stats_json,
            draining: &draining,
            file_reads: FileReads::Reads,
        };
        while let Some(job) = self.next_job() {
            let peer = job.peer;
            // A panic (a bug: client input must never cause one) fails this task
            // only; the worker lives on, so the pool never shrinks.
            let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                conn::serve(job.stream, job.unread, job.start, &ctx)
            }));
            let (after, stats) = served.unwrap_or_else(|_| {
                crate::log::info(format_args!(
                    "worker {}: handler panicked serving {peer}",
                    self.id
                ));
                (AfterTask::Close, TaskStats::default())
            });
            crate::log::debug(format_args!(
                "worker {} done with {peer}: {stats:?}",
                self.id
            ));
            self.shared.busy.fetch_sub(1, Ordering::SeqCst);
            if self
                .tx
                .send(Returned {
                    worker: self.id,
                    stats,
                    after,
                    peer,
                })
                .is_err()
            {
                return;
            }
            let _ = self.waker.wake();
        }
    }

    fn next_job(&self) -> Option<Job> {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(job) = st.jobs.pop_front() {
                self.shared.busy.fetch_add(1, Ordering::SeqCst);
                return Some(job);
            }
            if st.shutdown {
                return None;
            }
            st = self
                .shared
                .ready
                .wait(st)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl WorkerPool for ThreadPool {
    fn register(&mut self, _registry: &Registry) -> io::Result<()> {
        Ok(())
    }

    fn on_event(&mut self, _: &Registry, _: Token, _: &Event) -> io::Result<()> {
        Ok(())
    }

    fn has_room(&self) -> bool {
        let st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.jobs.len() < self.capacity
    }

    fn submit(&mut self, job: Job) -> Result<(), Job> {
        let mut st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.jobs.len() >= self.capacity {
            return Err(job);
        }
        st.jobs.push_back(job);
        drop(st);
        self.shared.ready.notify_one();
        Ok(())
    }

    fn take_returned(&mut self, out: &mut Vec<Returned>) {
        out.extend(self.returned.try_iter());
    }

    fn is_idle(&self) -> bool {
        let st = self.shared.state.lock().unwrap_or_else(|p| p.into_inner());
        st.jobs.is_empty() && self.shared.busy.load(Ordering::SeqCst) == 0
    }

    fn maintain(&mut self, _registry: &Registry) -> Option<Instant> {
        None
    }

    fn drain(&mut self) {
        self.shared.draining.store(true, Ordering::Relaxed);
    }

    fn shutdown(&mut self, deadline: Instant) {
        self.shared.draining.store(true, Ordering::Relaxed);
        self.shared
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .shutdown = true;
        self.shared.ready.notify_all();
        for h in self.handles.drain(..) {
            while !h.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if h.is_finished() {
                let _ = h.join();
            }
        }
    }
}
