//! A sweep's metadata, the JSON beside its CSV: what ran, where, how each
//! number was taken, and how the run ended. Written as the sweep goes
//! (after every row) and read back by the same type.

use std::io;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::results::machine::{Calibration, Git, Machine};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// `fsbench <version> sweep`.
    pub tool: String,
    /// What `fsbench --version` prints: the version and the commit built
    /// from (empty in files written before it was recorded).
    #[serde(default)]
    pub version: String,
    pub csv: String,
    pub start: String,
    pub end: Option<String>,
    pub duration_s: Option<f64>,
    pub scenarios_total: usize,
    pub scenarios_done: usize,
    /// Every client succeeded and no server task failed (set at the end).
    pub all_ok: Option<bool>,
    /// Why the sweep stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted_by_signal: Option<u8>,
    pub git: Git,
    pub rustc: Option<String>,
    pub build_profile: String,
    pub machine: Machine,
    pub fsync: bool,
    pub matrix: Matrix,
    /// The server's label (the CSV's `server` column): `fsbench` or the
    /// `--server-cmd` template's (empty in metadata from before the column).
    #[serde(default)]
    pub server: String,
    /// The server command, with MODE and POOL for what each scenario sets
    /// (or the template, with its placeholders).
    pub server_command: String,
    pub client_pool: ClientPool,
    /// How each measured column is taken, in words.
    pub measurement: Measurement,
    /// Scenarios that could not run, and why (a server that never got ready).
    #[serde(default)]
    pub scenario_errors: Vec<ScenarioError>,
    /// Per scenario: VmHWM summed over each side's processes.
    pub vmhwm_kib: Vec<VmHwm>,
    /// Per scenario: what each side's PSS sampler cost and how regular it was.
    pub pss_sampler: Vec<SamplerCosts>,
    pub test_files: Vec<TestFileMeta>,
    /// One core's SHA-256 speed at the start and the end of the sweep
    /// (absent in files from before it was measured).
    #[serde(default)]
    pub calibration: Vec<Calibration>,
    /// The TCP congestion control on each side (absent in files from before
    /// it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_congestion: Option<TcpCongestion>,
    pub argv: Vec<String>,
    /// The other hosts the sweep ran on (`--server-host`, `--client-hosts`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<HostMeta>,
    /// Per scenario with client hosts: each host's share and what it measured.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_hosts: Vec<ScenarioHosts>,
    /// Client hosts lost and unreachable: the sweep went on without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lost_hosts: Vec<LostHost>,
}

/// One host of a sweep spread over hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostMeta {
    /// `server` or `client`.
    pub role: String,
    /// As given (`user@host`).
    pub host: String,
    /// Its address on the coordinator's ssh connection.
    pub address: String,
    pub machine: Machine,
    pub arch: String,
    /// What its `fsbench --version` says.
    pub fsbench: String,
    /// Our binary there, and whether this sweep copied it.
    pub binary: String,
    pub copied: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioHosts {
    pub scenario: usize,
    pub hosts: Vec<HostPart>,
}

/// What one client host of a spread pool did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostPart {
    pub host: String,
    pub address: String,
    pub clients: usize,
    pub first_index: usize,
    pub success: usize,
    /// Its own wall time (from its start to its last client's end).
    pub wall_s: f64,
    /// Its verified bytes over its own wall time.
    pub aggregate_bps: f64,
    pub cpu_s: f64,
    /// Its PSS peak.
    pub mem_mib: f64,
    /// Why its clients failed as `client host lost`.
    pub lost: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostHost {
    pub scenario: usize,
    pub host: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matrix {
    pub modes: Vec<String>,
    pub operations: Vec<String>,
    pub volumes: Vec<String>,
    pub volume_bytes: Vec<u64>,
    pub client_pools: Vec<usize>,
    pub server_pools: Vec<usize>,
    pub repeat: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientPool {
    pub same_mode_as_server: bool,
    pub client_timeout_s: f64,
    pub upload_seed: u64,
    pub upload_check: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub server_cpu_s: String,
    pub client_cpu_s: String,
    pub mem_mib: String,
    pub pss_sampler: String,
    pub pss_sampler_nice: i32,
    pub vmhwm_kib: String,
    pub clock_ticks_per_s: u64,
    pub pss_sample_period_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioError {
    /// The row's number in the CSV, from 1.
    pub scenario: usize,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmHwm {
    /// The row's number in the CSV, from 1.
    pub scenario: usize,
    pub server: u64,
    pub pool: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerCosts {
    pub scenario: usize,
    pub server: SamplerCost,
    pub pool: SamplerCost,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerCost {
    pub samples: u64,
    pub secs: f64,
    pub cpu_s: f64,
    pub max_gap_s: f64,
    pub raised_priority: bool,
}

/// Which TCP congestion control each side's connections used (see
/// [`crate::tcp`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TcpCongestion {
    /// `--tcp-congestion` as given: `auto`, `system` or an algorithm.
    pub setting: String,
    /// This machine's default (`net.ipv4.tcp_congestion_control`).
    pub system_default: String,
    /// What the servers' connections used, in words.
    pub servers: String,
    /// What the clients' connections used, in words.
    pub clients: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestFileMeta {
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

impl Metadata {
    /// Writes it through a temporary file and a rename: a reader never sees half.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("json.part");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)
    }

    pub fn read(path: &Path) -> io::Result<Metadata> {
        let text = std::fs::read(path)?;
        serde_json::from_slice(&text)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))
    }
}
