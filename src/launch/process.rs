//! A process we started: spawned with a parent-death signal, tracked until it
//! is waited for, stopped by signal then deadline then SIGKILL.
//!
//! Tracking is process-wide: a signal watcher (the sweep's Ctrl-C) calls
//! [`stop_all`], after which nothing new starts and every tracked process is
//! stopped. A [`Spawned`] that is dropped without being waited for is killed
//! and reaped. Nothing here outlives the command that started it.

use std::io;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::launch::measure;
use crate::sys;

struct Tracked {
    interrupted: bool,
    pids: Vec<u32>,
}

static TRACKED: Mutex<Tracked> = Mutex::new(Tracked {
    interrupted: false,
    pids: Vec::new(),
});

fn tracked() -> std::sync::MutexGuard<'static, Tracked> {
    TRACKED.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child process of ours. Dropped while still running, it is sent its
/// stop signal and waited for (killed if it does not end within 5 s).
pub struct Spawned {
    child: Option<Child>,
    pid: u32,
    /// What asks it to stop (and what it gets if we die first).
    stop_signal: i32,
}

impl Spawned {
    /// Spawns `cmd` with `stop_signal` as its parent-death signal and tracks
    /// it, atomically with respect to [`stop_all`]: once that ran, nothing
    /// new starts.
    pub fn start(cmd: &mut Command, stop_signal: i32) -> io::Result<Spawned> {
        sys::die_with_parent(cmd, stop_signal);
        let mut t = tracked();
        if t.interrupted {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "interrupted: not starting anything new",
            ));
        }
        let child = cmd.spawn()?;
        let pid = child.id();
        t.pids.push(pid);
        Ok(Spawned {
            child: Some(child),
            pid,
            stop_signal,
        })
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's pipes and the like, while it runs.
    pub fn child_mut(&mut self) -> Option<&mut Child> {
        self.child.as_mut()
    }

    /// Its exit status if it has ended (reaping it), `None` if it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let Some(c) = self.child.as_mut() else {
            return Err(io::Error::other("already waited for"));
        };
        let st = c.try_wait()?;
        if st.is_some() {
            self.forget();
        }
        Ok(st)
    }

    /// Waits for the exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        let Some(mut c) = self.child.take() else {
            return Err(io::Error::other("already waited for"));
        };
        let st = c.wait();
        untrack(self.pid);
        st
    }

    /// Its stop signal, then waits for the exit; after `limit`, SIGKILL.
    pub fn stop(&mut self, limit: Duration) -> io::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            return Err(io::Error::other("already stopped"));
        };
        let _ = sys::kill(self.pid, self.stop_signal);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let st = match rx.recv_timeout(limit) {
            Ok(st) => st,
            Err(_) => {
                let _ = sys::kill(self.pid, sys::SIGKILL);
                rx.recv().map_err(io::Error::other)?
            }
        };
        untrack(self.pid);
        st
    }

    /// SIGKILL if it still runs, then reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let st = match c.try_wait() {
            Ok(Some(st)) => Some(st),
            _ => {
                let _ = c.kill();
                c.wait().ok()
            }
        };
        untrack(self.pid);
        st
    }

    fn forget(&mut self) {
        self.child = None;
        untrack(self.pid);
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop(Duration::from_secs(5));
        }
    }
}

fn untrack(pid: u32) {
    tracked().pids.retain(|&p| p != pid);
}

/// Whether [`stop_all`] has run: the process is being stopped.
pub fn interrupted() -> bool {
    tracked().interrupted
}

/// Stops every tracked process: SIGTERM, then (bounded by `limit`) waits for
/// them to end, and SIGKILLs what is left. From now on nothing new starts.
/// Returns how many had to be killed.
pub fn stop_all(limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut signalled: Vec<u32> = Vec::new();
    loop {
        let alive: Vec<u32> = {
            let mut t = tracked();
            t.interrupted = true;
            t.pids.clone()
        }
        .into_iter()
        .filter(|&p| measure::stat(p).is_some_and(|s| s.running()))
        .collect();
        if alive.is_empty() {
            return 0;
        }
        for &p in &alive {
            if !signalled.contains(&p) {
                let _ = sys::kill(p, sys::SIGTERM);
                signalled.push(p);
            }
        }
        if Instant::now() >= deadline {
            for &p in &alive {
                let _ = sys::kill(p, sys::SIGKILL);
            }
            return alive.len();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopped_process_is_reaped_and_a_dropped_one_does_not_outlive_its_handle() {
        let mut p = Spawned::start(Command::new("sleep").arg("30"), sys::SIGTERM).unwrap();
        let pid = p.pid();
        assert!(tracked().pids.contains(&pid));
        let st = p.stop(Duration::from_secs(5)).unwrap();
        assert!(!st.success(), "ended by its signal");
        assert!(!tracked().pids.contains(&pid));
        assert!(measure::stat(pid).is_none(), "reaped");

        let q = Spawned::start(Command::new("sleep").arg("30"), sys::SIGTERM).unwrap();
        let qpid = q.pid();
        drop(q);
        assert!(measure::stat(qpid).is_none(), "stopped and reaped on drop");
        assert!(!tracked().pids.contains(&qpid));
    }

    #[test]
    fn a_process_that_ignores_its_signal_is_killed_at_the_deadline() {
        let mut p = Spawned::start(
            Command::new("sh").args(["-c", "trap '' TERM; exec sleep 30"]),
            sys::SIGTERM,
        )
        .unwrap();
        // The ignored signal holds once the shell has become `sleep`.
        let comm = format!("/proc/{}/comm", p.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&comm).unwrap_or_default().trim() != "sleep" {
            assert!(Instant::now() < deadline, "the shell never ran sleep");
            std::thread::yield_now();
        }
        let st = p.stop(Duration::from_millis(200)).unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(st.signal(), Some(sys::SIGKILL));
    }
}
