//! fsbench: a workbench for stress-testing concurrent file servers.
//!
//! - [`protocol`]: the wire format (request lines, JSON, streaming base64);
//! - [`store`]: the flat file store the server serves;
//! - [`server`]: the `mio` acceptor, the connection handler and the two worker pools;
//! - [`client`]: the client library;
//! - [`load`]: the client pool and the scenario sweep;
//! - [`launch`]: starting, tracking, measuring and stopping the processes they run;
//! - [`results`]: the typed CSV row and metadata a sweep writes and reads back;
//! - [`report`]: the results read back for a person: the HTML report, compare, repeats;
//! - [`scenario`]: operations and volumes, the words a scenario is named with;
//! - [`cli`]: the command line of the `fsbench` binary;
//! - [`tcp`]: which TCP congestion control our sockets use;
//! - [`sys`]: the one module with `unsafe` and `libc`.

pub mod cli;
pub mod client;
pub mod error;
pub mod launch;
pub mod load;
pub mod log;
pub mod protocol;
pub mod report;
pub mod results;
pub mod scenario;
pub mod server;
pub mod store;
pub mod sys;
pub mod tcp;
