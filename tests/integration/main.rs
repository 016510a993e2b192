//! The integration tests: one crate (each test crate links the whole library
//! again, so one crate builds once), a module per topic. Every fsbench server
//! a test starts is the built binary on 127.0.0.1 port 0 (`common::Server`);
//! the Python guest server, which cannot report a port 0, gets one found free.
//!
//! - `server`: the server in thread mode and the client, end to end: every
//!   request, names, uploads, limits, timeouts, idle connections, shutdown,
//!   bounded memory, concurrency, the `fsbench client` command line;
//! - `process_pool`: process mode (pre-forked workers fed over SCM_RIGHTS);
//! - `load`: the client pool and the sweep;
//! - `compat`: the old Python clients (`compat/compat_client.py`);
//! - `guest`: our client against a server that is not ours, the Python
//!   guest server (`guest/file_server.py`) in both of its modes, and its faults;
//! - `unterminated`: requests without a line end, as the course's reference
//!   client sends them (`compat/reference_client.py`), and sized uploads;
//! - `report`: `fsbench report` and `compare` on a committed fixture
//!   (`fixtures/quick3.csv`) and on synthetic CSVs, and every bad input;
//! - `properties`: property tests of the parser and the base64 decoder;
//! - `shared_store`: several servers over one store (their temp folders);
//! - `allow`: `serve --allow` on this host (a dual-stack server that serves
//!   IPv4 loopback and closes ::1's connections unread), its usage errors;
//! - `lab`: a lab of network namespaces (`scripts/netns-lab.sh`, root only,
//!   skipped loudly otherwise): three hosts reaching each other over ssh, a
//!   server serving the client host it allows and refusing the other, and
//!   `down` leaving nothing.
//!
//! The robustness suite is a crate of its own (`tests/robustness/`, run alone
//! by `make robustness`); both share `tests/common/`.

#[path = "../common/mod.rs"]
mod common;

mod allow;
mod compat;
mod guest;
mod lab;
mod load;
mod multihost;
mod process_pool;
mod properties;
mod report;
mod server;
mod shared_store;
mod unterminated;
