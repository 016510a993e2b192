//! One scenario's CSV row: numbers as numbers, written with a fixed number
//! of decimals (as the original tool's columns) and read back as written.
//!
//! Reading back is strict about what a row needs and lenient about the
//! rest: a missing column, a value that is not of its column's type, an
//! empty file or a file that is no sweep CSV is a [`ReadError`] naming the
//! file, the line and the column; columns this reader does not know are
//! skipped, and the measurement columns added after the first sweeps
//! ([`MEASURED`]) may be absent ([`SweepCsv::has`] tells).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize, Serializer};

use crate::scenario::{Op, Volume};
use crate::server::Mode;

/// The sweep's CSV header, exactly (the original exercise's columns first).
pub const CSV_HEADER: [&str; 25] = [
    "timestamp",
    "mode",
    "server_pool",
    "operation",
    "volume",
    "client_pool",
    "avg_time_s",
    "throughput_Bps",
    "success",
    "fail",
    "server_success",
    "server_fail",
    "p50_s",
    "p90_s",
    "p99_s",
    "max_s",
    "wall_s",
    "aggregate_Bps",
    "bytes_verified",
    "errors",
    "server_cpu_s",
    "client_cpu_s",
    "server_mem_mib",
    "client_mem_mib",
    "server",
];

/// The columns a CSV may lack and still be read: each side's CPU and
/// memory, which older sweeps did not measure. A row of such a CSV holds 0
/// in them; [`SweepCsv::has`] says whether the column was there.
pub const MEASURED: [&str; 4] = [
    "server_cpu_s",
    "client_cpu_s",
    "server_mem_mib",
    "client_mem_mib",
];

/// Columns later than the first sweeps, which a CSV may lack: the
/// [`MEASURED`] ones, and `server` (`fsbench` when absent).
const LATER: [&str; 5] = [
    "server_cpu_s",
    "client_cpu_s",
    "server_mem_mib",
    "client_mem_mib",
    "server",
];

fn fsbench_label() -> String {
    "fsbench".into()
}

/// The columns that name a scenario: a CSV with none of them is no sweep CSV.
const SCENARIO: [&str; 5] = ["mode", "server_pool", "operation", "volume", "client_pool"];

fn fixed<S: Serializer>(v: f64, decimals: usize, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{v:.decimals$}"))
}
fn f0<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    fixed(*v, 0, s)
}
fn f3<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    fixed(*v, 3, s)
}
fn f6<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    fixed(*v, 6, s)
}

/// One scenario: what it was, what the clients saw, what the server counted
/// and what each side cost. Times are seconds over the clients that
/// succeeded; `errors` is `cause: count; ...`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub timestamp: String,
    #[serde(with = "super::as_text")]
    pub mode: Mode,
    pub server_pool: usize,
    #[serde(with = "super::as_text")]
    pub operation: Op,
    #[serde(with = "super::as_text")]
    pub volume: Volume,
    pub client_pool: usize,
    #[serde(serialize_with = "f6")]
    pub avg_time_s: f64,
    /// Each client's bytes over its time, averaged over clients.
    #[serde(rename = "throughput_Bps", serialize_with = "f0")]
    pub throughput_bps: f64,
    pub success: usize,
    pub fail: usize,
    /// The server's own task counts (STATS); empty when it keeps none.
    pub server_success: Option<u64>,
    pub server_fail: Option<u64>,
    #[serde(serialize_with = "f6")]
    pub p50_s: f64,
    #[serde(serialize_with = "f6")]
    pub p90_s: f64,
    #[serde(serialize_with = "f6")]
    pub p99_s: f64,
    #[serde(serialize_with = "f6")]
    pub max_s: f64,
    /// From the start line's opening to the last client's end.
    #[serde(serialize_with = "f6")]
    pub wall_s: f64,
    /// Verified bytes over wall time.
    #[serde(rename = "aggregate_Bps", serialize_with = "f0")]
    pub aggregate_bps: f64,
    pub bytes_verified: u64,
    pub errors: String,
    /// CPU (user + system) of the server's process tree over the pool's run.
    #[serde(default, serialize_with = "f6")]
    pub server_cpu_s: f64,
    /// CPU of the client pool: its clients and its coordinating thread.
    #[serde(default, serialize_with = "f6")]
    pub client_cpu_s: f64,
    /// Peak PSS of the server's process tree over the pool's run, in MiB.
    #[serde(default, serialize_with = "f3")]
    pub server_mem_mib: f64,
    /// Peak PSS of the pool's process and its client processes, in MiB.
    #[serde(default, serialize_with = "f3")]
    pub client_mem_mib: f64,
    /// Which server: `fsbench`, or the label of a `--server-cmd` template
    /// (a CSV from before this column: `fsbench`, the only server it could stress).
    #[serde(default = "fsbench_label")]
    pub server: String,
}

impl Row {
    /// Every client succeeded, the server counted no failed task and
    /// nothing else went wrong (a server that had to be killed, say).
    pub fn ok(&self) -> bool {
        self.fail == 0 && self.server_fail.unwrap_or(0) == 0 && self.errors.is_empty()
    }
}

/// A CSV writer for rows: the header first, then one flushed line per row.
pub fn csv_writer<W: io::Write>(w: W) -> io::Result<csv::Writer<W>> {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(w);
    w.write_record(CSV_HEADER)?;
    w.flush()?;
    Ok(w)
}

/// Appends one row and flushes it (a sweep stopped half-way keeps it).
pub fn write_row<W: io::Write>(w: &mut csv::Writer<W>, row: &Row) -> io::Result<()> {
    w.serialize(row).map_err(io::Error::other)?;
    w.flush()
}

/// A sweep's CSV read back: its rows and the columns its header names.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepCsv {
    pub rows: Vec<Row>,
    pub columns: Vec<String>,
}

impl SweepCsv {
    /// Whether the header names `column` (for the [`MEASURED`] ones, which may be absent).
    pub fn has(&self, column: &str) -> bool {
        self.columns.iter().any(|c| c == column)
    }
}

/// Why a CSV could not be read back as a sweep's, and where: the file, the
/// line (from 1) and the column, when the fault has them.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadError {
    pub path: PathBuf,
    pub line: Option<u64>,
    /// The column's number from 1 and its name in the header.
    pub column: Option<(usize, String)>,
    pub msg: String,
}

/// `results/a.csv: line 3, column 7 (avg_time_s): "fast" is not valid: invalid float literal`.
impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ": line {line}")?;
        }
        if let Some((n, name)) = &self.column {
            write!(f, ", column {n} ({name})")?;
        }
        write!(f, ": {}", self.msg)
    }
}

impl std::error::Error for ReadError {}

impl From<ReadError> for io::Error {
    fn from(e: ReadError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e.to_string())
    }
}

/// Reads a sweep's CSV back; the error names the file, the line and the column.
pub fn read_csv(path: &Path) -> io::Result<Vec<Row>> {
    Ok(read_sweep_csv(path)?.rows)
}

/// Reads a sweep's CSV back with its header: at least one row, every
/// column a row needs (all of [`CSV_HEADER`] but the [`MEASURED`] ones),
/// each value of its column's type; unknown columns are skipped.
pub fn read_sweep_csv(path: &Path) -> Result<SweepCsv, ReadError> {
    let fault = |line: Option<u64>, column: Option<(usize, String)>, msg: String| ReadError {
        path: path.to_path_buf(),
        line,
        column,
        msg,
    };
    let file = std::fs::File::open(path).map_err(|e| fault(None, None, e.to_string()))?;
    let mut r = csv::ReaderBuilder::new().from_reader(io::BufReader::new(file));
    let header = r.headers().map_err(|e| csv_fault(path, &[], e))?.clone();
    let columns: Vec<String> = header.iter().map(str::to_string).collect();
    if columns.iter().all(|c| c.trim().is_empty()) {
        return Err(fault(
            Some(1),
            None,
            "the file is empty: no header line, so no sweep CSV".into(),
        ));
    }
    if !SCENARIO.iter().any(|c| columns.iter().any(|h| h == c)) {
        return Err(fault(
            Some(1),
            None,
            format!(
                "not a sweep CSV: its first line names none of the columns {} (it begins {:?})",
                SCENARIO.join(", "),
                columns.iter().take(3).collect::<Vec<_>>()
            ),
        ));
    }
    let needed = CSV_HEADER.iter().filter(|c| !LATER.contains(c));
    let missing: Vec<&str> = needed
        .filter(|c| !columns.iter().any(|h| h == *c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(fault(
            Some(1),
            None,
            format!(
                "the header lacks the column{} {} that a sweep CSV has",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ),
        ));
    }
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match r.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_fault(path, &columns, e)),
        }
        let line = record.position().map(|p| p.line());
        let row = record.deserialize::<Row>(Some(&header)).map_err(|e| {
            let mut f = csv_fault(path, &columns, e);
            f.line = f.line.or(line);
            // A word column's own error (serde's custom message) comes
            // without its field: find the column whose word does not parse.
            if f.column.is_none() {
                f.column = bad_word(&columns, &record);
            }
            if let Some(value) = f.column.as_ref().and_then(|(n, _)| record.get(n - 1)) {
                f.msg = format!("{value:?} is {}", f.msg);
            }
            f
        })?;
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(fault(
            Some(2),
            None,
            "no row under the header: the sweep wrote no scenario".into(),
        ));
    }
    Ok(SweepCsv { rows, columns })
}

/// The first of the columns written as words (mode, operation, volume)
/// whose value does not parse.
fn bad_word(columns: &[String], record: &csv::StringRecord) -> Option<(usize, String)> {
    columns.iter().enumerate().find_map(|(i, name)| {
        let v = record.get(i)?;
        let bad = match name.as_str() {
            "mode" => v.parse::<Mode>().is_err(),
            "operation" => v.parse::<Op>().is_err(),
            "volume" => v.parse::<Volume>().is_err(),
            _ => false,
        };
        bad.then(|| (i + 1, name.clone()))
    })
}

/// A `csv` error as a [`ReadError`]: its line, and its column by number and name.
fn csv_fault(path: &Path, columns: &[String], e: csv::Error) -> ReadError {
    let line = e.position().map(|p| p.line());
    let column = |i: u64| {
        let i = i as usize;
        (i + 1, columns.get(i).cloned().unwrap_or_default())
    };
    let (column, msg) = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => (
            Some(column(err.field() as u64)),
            "not UTF-8 text, so no sweep CSV".to_string(),
        ),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => (
            None,
            format!("{len} fields where the header has {expected_len}"),
        ),
        csv::ErrorKind::Deserialize { err, .. } => {
            let msg = match err.kind() {
                csv::DeserializeErrorKind::ParseInt(e) => {
                    format!("not a whole number ({e})")
                }
                csv::DeserializeErrorKind::ParseFloat(e) => format!("not a number ({e})"),
                other => format!("not valid: {other}"),
            };
            (err.field().map(column), msg)
        }
        _ => (None, e.to_string()),
    };
    ReadError {
        path: path.to_path_buf(),
        line,
        column,
        msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Row {
        Row {
            timestamp: "2026-11-30T10:00:00.000Z".into(),
            mode: Mode::Process,
            server_pool: 5,
            operation: Op::Upload,
            volume: Volume::kb(100),
            client_pool: 2,
            avg_time_s: 0.0123456789,
            throughput_bps: 1234567.89,
            success: 1,
            fail: 1,
            server_success: Some(1),
            server_fail: None,
            p50_s: 0.01,
            p90_s: 0.02,
            p99_s: 0.03,
            max_s: 0.04,
            wall_s: 0.05,
            aggregate_bps: 2e6,
            bytes_verified: 102400,
            errors: "timeout: 1".into(),
            server_cpu_s: 0.01,
            client_cpu_s: 0.02,
            server_mem_mib: 2.5,
            client_mem_mib: 3.25,
            server: "python3".into(),
        }
    }

    #[test]
    fn a_row_is_written_under_the_header_and_read_back_the_same() {
        let path = std::env::temp_dir().join(format!("fsbench-row-{}.csv", std::process::id()));
        let mut w = csv_writer(std::fs::File::create(&path).unwrap()).unwrap();
        let row = sample();
        write_row(&mut w, &row).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next().unwrap(), CSV_HEADER.join(","));
        assert_eq!(
            lines.next().unwrap(),
            "2026-11-30T10:00:00.000Z,process,5,upload,100KB,2,0.012346,1234568,1,1,1,,\
             0.010000,0.020000,0.030000,0.040000,0.050000,2000000,102400,timeout: 1,\
             0.010000,0.020000,2.500,3.250,python3"
        );
        let back = read_csv(&path).unwrap();
        assert_eq!(back.len(), 1);
        // The numbers as written (rounded to the column's decimals).
        assert_eq!(back[0].avg_time_s, 0.012346);
        assert_eq!(back[0].throughput_bps, 1234568.0);
        assert_eq!(
            (back[0].mode, back[0].operation),
            (Mode::Process, Op::Upload)
        );
        assert_eq!(back[0].volume, Volume::kb(100));
        assert_eq!(back[0].errors, "timeout: 1");
        assert_eq!(
            (back[0].server_success, back[0].server_fail),
            (Some(1), None)
        );
        assert_eq!(back[0].server, "python3");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_bad_value_names_the_file_and_the_record() {
        let path = std::env::temp_dir().join(format!("fsbench-badrow-{}.csv", std::process::id()));
        let mut w = csv_writer(std::fs::File::create(&path).unwrap()).unwrap();
        write_row(&mut w, &sample()).unwrap();
        drop(w);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(",process,", ",proccess,");
        std::fs::write(&path, text).unwrap();
        let e = read_csv(&path).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}: line 2, column 2 (mode): \"proccess\" is not valid: \
                 unknown mode \"proccess\" (thread or process)",
                path.display()
            )
        );
        // A row cut short.
        std::fs::write(&path, format!("{}\nx,thread,1\n", CSV_HEADER.join(","))).unwrap();
        let e = read_sweep_csv(&path).unwrap_err();
        assert_eq!((e.line, e.column.clone()), (Some(2), None));
        assert_eq!(e.msg, "3 fields where the header has 25");
        let _ = std::fs::remove_file(&path);
    }
}
