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
    /// Each tracked process, and whether it leads a process group of its own
    /// (then it is stopped as a group).
    pids: Vec<(u32, bool)>,
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
    /// It leads a process group of its own: signals go to the whole group,
    /// and it is stopped only once no process of the group is left.
    group: bool,
}

impl Spawned {
    /// Spawns `cmd` with `stop_signal` as its parent-death signal and tracks
    /// it, atomically with respect to [`stop_all`]: once that ran, nothing
    /// new starts.
    pub fn start(cmd: &mut Command, stop_signal: i32) -> io::Result<Spawned> {
        Self::spawn(cmd, stop_signal, false)
    }

    /// As [`start`](Self::start), in a process group of its own (a shell
    /// and whatever it starts): stopping it stops the whole group.
    pub fn start_group(cmd: &mut Command, stop_signal: i32) -> io::Result<Spawned> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
        Self::spawn(cmd, stop_signal, true)
    }

    fn spawn(cmd: &mut Command, stop_signal: i32, group: bool) -> io::Result<Spawned> {
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
        t.pids.push((pid, group));
        Ok(Spawned {
            child: Some(child),
            pid,
            stop_signal,
            group,
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

    /// Waits for the exit at most `limit`: its status, or `None` if it
    /// still runs (then it is still ours to stop).
    pub fn wait_within(&mut self, limit: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.try_wait()? {
                return Ok(Some(st));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Its stop signal, then waits for the exit (of the whole group, for a
    /// group); after `limit`, SIGKILL. Returns its exit status and whether it
    /// had to be killed.
    pub fn stop_within(&mut self, limit: Duration) -> io::Result<(ExitStatus, bool)> {
        let Some(mut child) = self.child.take() else {
            return Err(io::Error::other("already stopped"));
        };
        let deadline = Instant::now() + limit;
        let _ = self.signal(self.stop_signal);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let mut killed = false;
        let st = match rx.recv_timeout(limit) {
            Ok(st) => st,
            Err(_) => {
                killed = true;
                let _ = self.signal(sys::SIGKILL);
                rx.recv().map_err(io::Error::other)?
            }
        };
        if self.group {
            // What the group leader started may outlive it: wait for the
            // whole group, then kill what is left.
            while !measure::group_members(self.pid).is_empty() {
                if Instant::now() >= deadline {
                    killed = true;
                    let _ = sys::kill_group(self.pid, sys::SIGKILL);
                    wait_until_empty(self.pid, Duration::from_secs(5));
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        untrack(self.pid);
        Ok((st?, killed))
    }

    /// [`stop_within`](Self::stop_within), with the exit status only.
    pub fn stop(&mut self, limit: Duration) -> io::Result<ExitStatus> {
        self.stop_within(limit).map(|(st, _)| st)
    }

    fn signal(&self, sig: i32) -> io::Result<()> {
        if self.group {
            sys::kill_group(self.pid, sig)
        } else {
            sys::kill(self.pid, sig)
        }
    }

    /// SIGKILL (to its group, for a group) if it still runs, then reaps it.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        let mut c = self.child.take()?;
        let st = match c.try_wait() {
            Ok(Some(st)) => Some(st),
            _ => {
                let _ = self.signal(sys::SIGKILL);
                c.wait().ok()
            }
        };
        if self.group {
            let _ = sys::kill_group(self.pid, sys::SIGKILL);
            wait_until_empty(self.pid, Duration::from_secs(5));
        }
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
    tracked().pids.retain(|&(p, _)| p != pid);
}

/// Waits (bounded) until no process of the group `pgid` runs.
fn wait_until_empty(pgid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !measure::group_members(pgid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
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
    let alive = |&(p, group): &(u32, bool)| {
        if group {
            !measure::group_members(p).is_empty()
        } else {
            measure::stat(p).is_some_and(|s| s.running())
        }
    };
    let send = |(p, group): (u32, bool), sig| {
        if group {
            let _ = sys::kill_group(p, sig);
        } else {
            let _ = sys::kill(p, sig);
        }
    };
    loop {
        let left: Vec<(u32, bool)> = {
            let mut t = tracked();
            t.interrupted = true;
            t.pids.clone()
        }
        .into_iter()
        .filter(alive)
        .collect();
        if left.is_empty() {
            return 0;
        }
        for &e in &left {
            if !signalled.contains(&e.0) {
                send(e, sys::SIGTERM);
                signalled.push(e.0);
            }
        }
        if Instant::now() >= deadline {
            for &e in &left {
                send(e, sys::SIGKILL);
            }
            return left.len();
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
        assert!(tracked().pids.contains(&(pid, false)));
        let st = p.stop(Duration::from_secs(5)).unwrap();
        assert!(!st.success(), "ended by its signal");
        assert!(!tracked().pids.iter().any(|e| e.0 == pid));
        assert!(measure::stat(pid).is_none(), "reaped");

        let q = Spawned::start(Command::new("sleep").arg("30"), sys::SIGTERM).unwrap();
        let qpid = q.pid();
        drop(q);
        assert!(measure::stat(qpid).is_none(), "stopped and reaped on drop");
        assert!(!tracked().pids.iter().any(|e| e.0 == qpid));
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

    #[test]
    fn a_group_is_stopped_whole_even_what_its_leader_left_behind() {
        // The shell starts a sleep in the background that ignores SIGTERM,
        // then waits: stopping the group must end both.
        let mut p = Spawned::start_group(
            Command::new("sh").args(["-c", "(trap '' TERM; exec sleep 30) & wait"]),
            sys::SIGTERM,
        )
        .unwrap();
        let pgid = p.pid();
        let deadline = Instant::now() + Duration::from_secs(10);
        // The ignored signal holds once the subshell has become `sleep`
        // (before that, SIGTERM would still end it).
        let sleeping = || {
            measure::group_members(pgid).iter().any(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
        };
        while !sleeping() {
            assert!(Instant::now() < deadline, "the group never ran sleep");
            std::thread::yield_now();
        }
        let (_, killed) = p.stop_within(Duration::from_millis(300)).unwrap();
        assert!(killed, "the sleep ignores SIGTERM: it had to be killed");
        assert!(
            measure::group_members(pgid).is_empty(),
            "nothing of the group is left"
        );
    }
}
