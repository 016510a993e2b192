//! The load generator: the client pool (`fsbench pool`), the scenario sweep
//! (`fsbench sweep`, `make stress`) and the deterministic test content both use.
//!
//! - [`content`]: per-seed content generated while it streams, the test files;
//! - [`pool`]: N clients (threads or child processes) doing one operation each;
//! - [`sweep`]: the scenario matrix, one fresh server per scenario, the CSV;
//! - [`summary`]: a pool run summarised, and the printers of summaries and rows (text, JSON, the sweep's tables);
//!
//! Every entry point is a `run(opts)` function so tests drive it in-process.
//! This module never holds a whole file in memory and never leaves a process
//! it started running after it returns: processes are started and stopped
//! through [`crate::launch`], rows and metadata written through
//! [`crate::results`].

pub mod content;
pub mod hosts;
pub mod pool;
pub mod summary;
pub mod sweep;

pub use crate::launch::measure::{child_pids, peak_rss_kib, proc_status_kib};
pub use crate::scenario::{parse_list, Op, Volume, KIB, MIB};
