//! `fsbench report` and `fsbench compare` on a committed fixture and on
//! synthetic CSVs: the HTML's SVG is well-formed XML, each chart has the
//! expected series and a point per scenario (its rows counted), the table
//! holds the CSV's numbers, compare's verdicts and exit codes follow known
//! ratios, and every bad input is named by file, line and column with exit 2.
//!
//! `tests/fixtures/quick3.csv` is a real sweep: `fsbench sweep --quick
//! --repeat 3 --servers "1 5" --ops "download upload"` (216 rows); its
//! metadata beside it is the sweep's, without the per-scenario `vmhwm_kib`
//! and `pss_sampler` lists (for size).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fsbench::report::charts::{self, Kind};
use fsbench::report::runs::Run;
use fsbench::results::row::{csv_writer, write_row};
use fsbench::results::{Row, CSV_HEADER};
use fsbench::scenario::{Op, Volume};
use fsbench::server::Mode;

use crate::common::{TempDir, BIN};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quick3.csv")
}

fn fsbench(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every `<svg ...>...</svg>` of a page.
fn svgs(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<svg ") {
        let j = rest[i..].find("</svg>").expect("an <svg> is closed") + i + "</svg>".len();
        out.push(&rest[i..j]);
        rest = &rest[j..];
    }
    out
}

/// The text of every `<text>` of an SVG.
fn svg_texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect()
}

/// Markers of a colour: (circles, triangles).
fn markers(doc: &roxmltree::Document<'_>, colour: &str) -> (usize, usize) {
    let count = |tag: &str| {
        doc.descendants()
            .filter(|n| n.has_tag_name(tag) && n.attribute("fill") == Some(colour))
            .count()
    };
    (count("circle"), count("polygon"))
}

/// The rows of a CSV as written: header, then records.
fn csv_records(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// The cells of each `<tr>` of the table after `marker`.
fn table_cells(html: &str, marker: &str) -> Vec<Vec<String>> {
    let start = html.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let end = start + html[start..].find("</table>").unwrap();
    html[start..end]
        .split("<tr")
        .skip(1)
        .map(|tr| {
            tr.split("<td")
                .skip(1)
                .map(|td| {
                    let open = td.find('>').unwrap() + 1;
                    let close = td.find("</td>").unwrap();
                    td[open..close]
                        .replace("&amp;", "&")
                        .replace("&quot;", "\"")
                        .replace("&#39;", "'")
                        .replace("&lt;", "<")
                        .replace("&gt;", ">")
                })
                .collect()
        })
        .filter(|cells: &Vec<String>| !cells.is_empty())
        .collect()
}

#[test]
fn the_fixture_reports_well_formed_svg_charts_with_a_point_per_scenario() {
    let dir = TempDir::new("report-fixture");
    let html = dir.path().join("r.html");
    let out = fsbench(&["report", s(&fixture()), "-o", s(&html)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(s(&html)),
        "{}",
        text(&out.stdout)
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.len() < 1 << 20, "{} bytes", page.len());
    // Self-contained: nothing fetched, no script.
    for absent in ["<script", "src=\"http", "href=\"http", "@import", "url("] {
        assert!(!page.contains(absent), "{absent}");
    }
    // 2 operations x 3 volumes x 5 kinds of chart, each inline and in its own file.
    let inline = svgs(&page);
    assert_eq!(inline.len(), 30);
    let files: Vec<PathBuf> = std::fs::read_dir(dir.path().join("r-charts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 30);
    for svg in &inline {
        roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("{e}: {svg:.300}"));
    }
    let run = Run::read(&fixture(), None).unwrap();
    let rows = run.rows();
    for f in &files {
        let svg = std::fs::read_to_string(f).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{f:?}: {e}"));
        assert!(page.contains(
            svg.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
                .trim()
        ));
        let name = f.file_name().unwrap().to_str().unwrap();
        if !name.starts_with("throughput-") {
            continue;
        }
        // A line per mode and server pool, each with a marker per client
        // pool plus one in the legend: thread as circles, process as triangles.
        let texts = svg_texts(&doc);
        for (label, colour, shape) in [
            ("thread, server pool 1", "#0072B2", 0),
            ("thread, server pool 5", "#56B4E9", 0),
            ("process, server pool 1", "#D55E00", 1),
            ("process, server pool 5", "#E69F00", 1),
        ] {
            assert!(
                texts.iter().any(|t| t == label),
                "{name}: {label} in {texts:?}"
            );
            let (c, t) = markers(&doc, colour);
            let n = if shape == 0 { c } else { t };
            assert_eq!(n, 3 + 1, "{name}: markers of {label}");
        }
    }
    // The model behind them: every row of an operation and volume is in
    // exactly one point of its throughput chart, three repeats per point.
    for op in [Op::Download, Op::Upload] {
        for kb in [10, 50, 100] {
            let volume = Volume::kb(kb);
            let c =
                charts::chart(std::slice::from_ref(&run), Kind::Throughput, op, volume).unwrap();
            let series = &c.panels[0].series;
            assert_eq!(series.len(), 4);
            let points: usize = series.iter().map(|s| s.points.len()).sum();
            let counted: usize = series.iter().flat_map(|s| &s.points).map(|p| p.rows).sum();
            let matching = rows
                .iter()
                .filter(|r| r.operation == op && r.volume == volume)
                .count();
            assert_eq!((points, counted), (matching / 3, matching));
            assert!(series
                .iter()
                .flat_map(|s| &s.points)
                .all(|p| p.rows == 3 && p.bar.is_some()));
            // A point is the mean of its scenario's rows.
            let s0 = &series[0];
            let p0 = &s0.points[0];
            let mean = rows
                .iter()
                .filter(|r| {
                    r.operation == op
                        && r.volume == volume
                        && r.mode == Mode::Thread
                        && r.server_pool == 1
                        && r.client_pool == 1
                })
                .map(|r| r.aggregate_bps)
                .sum::<f64>()
                / 3.0;
            assert_eq!(s0.label, "thread, server pool 1");
            assert!((p0.y - mean).abs() < 1e-6, "{} != {mean}", p0.y);
        }
    }
    // Above the charts: the metadata and the findings.
    for fact in [
        "commit",
        "machine",
        "fsync",
        "matrix",
        "start",
        "duration",
        "72 scenarios, 216 rows (3 repeats)",
        "No failure:",
        "scenarios are noisy:",
    ] {
        let at = page.find(fact).unwrap_or_else(|| panic!("no {fact:?}"));
        assert!(at < page.find("<svg").unwrap(), "{fact} after the charts");
    }
}

#[test]
fn the_table_holds_the_csvs_numbers_and_the_means_with_their_intervals() {
    let dir = TempDir::new("report-table");
    let html = dir.path().join("t.html");
    let out = fsbench(&["report", s(&fixture()), "-o", s(&html)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    let (header, records) = csv_records(&fixture());
    // Every row of the CSV, as written, in the CSV's column order.
    let raw = table_cells(&page, "<table class=\"rows\">");
    assert_eq!(raw.len(), records.len());
    for (cells, rec) in raw.iter().zip(&records) {
        assert_eq!(cells, rec);
    }
    assert!(page.contains(
        &header
            .iter()
            .map(|h| format!("<th>{h}</th>"))
            .collect::<String>()
    ));
    // One line per scenario: its mean ± the t interval's half-width, by hand.
    let summary = table_cells(&page, "<table class=\"scenarios\">");
    assert_eq!(summary.len(), 72);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let first: Vec<&Vec<String>> = records
        .iter()
        .filter(|r| r[1..6] == records[0][1..6])
        .collect();
    assert_eq!(first.len(), 3);
    let xs: Vec<f64> = first
        .iter()
        .map(|r| r[col("avg_time_s")].parse().unwrap())
        .collect();
    let mean = xs.iter().sum::<f64>() / 3.0;
    let sd = (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
    let hw = 4.302_653 * sd / 3f64.sqrt();
    // mode, server_pool, operation, volume, client_pool, n, avg_time_s, ...
    assert_eq!(
        summary[0][..6],
        records[0][1..6]
            .iter()
            .cloned()
            .chain(["3".to_string()])
            .collect::<Vec<_>>()[..]
    );
    let (m, h) = summary[0][6].split_once(" ± ").unwrap();
    assert_eq!(m, format!("{mean:.6}"));
    let h: f64 = h.parse().unwrap();
    assert!((h - hw).abs() <= 1.5e-6, "{h} != {hw}");
    let success: usize = first
        .iter()
        .map(|r| r[col("success")].parse::<usize>().unwrap())
        .sum();
    assert_eq!(summary[0][6 + 2], success.to_string());
}

/// A row of a synthetic CSV: scenario (mode thread, server pool 1, download
/// 10MB, `clients` clients) with the given throughput and time.
fn row(clients: usize, aggregate_bps: f64, avg_time_s: f64) -> Row {
    Row {
        timestamp: "2026-11-30T10:00:00.000Z".into(),
        mode: Mode::Thread,
        server_pool: 1,
        operation: Op::Download,
        volume: Volume::mb(10),
        client_pool: clients,
        avg_time_s,
        throughput_bps: aggregate_bps / clients as f64,
        success: clients,
        fail: 0,
        server_success: Some(clients as u64),
        server_fail: Some(0),
        p50_s: avg_time_s,
        p90_s: avg_time_s,
        p99_s: avg_time_s,
        max_s: avg_time_s,
        wall_s: avg_time_s,
        aggregate_bps,
        bytes_verified: 10 << 20,
        errors: String::new(),
        server_cpu_s: 1.0,
        client_cpu_s: 0.5,
        server_mem_mib: 10.0,
        client_mem_mib: 5.0,
        server: "fsbench".into(),
    }
}

fn write_csv(path: &Path, rows: &[Row]) {
    let mut w = csv_writer(std::fs::File::create(path).unwrap()).unwrap();
    for r in rows {
        write_row(&mut w, r).unwrap();
    }
}

/// BASE and NEW with known ratios. Client pools name the scenarios:
/// 1 twice as fast (throughput x2, time x0.5), 2 twice as slow, 3 the same
/// within its noise, 4 a single run on both sides, 5 only in BASE, 6 only in NEW.
fn synthetic(dir: &Path) -> (PathBuf, PathBuf) {
    let base = dir.join("base.csv");
    let new = dir.join("new.csv");
    let mut b = Vec::new();
    let mut n = Vec::new();
    // Values the CSV writes exactly (bytes/s whole, seconds to 6 decimals).
    for (v, t) in [(100.0, 0.010), (102.0, 0.011), (104.0, 0.012)] {
        b.push(row(1, v, t));
        n.push(row(1, 2.0 * v, 0.5 * t));
        b.push(row(2, v, t));
        n.push(row(2, 0.5 * v, 2.0 * t));
    }
    for (x, y) in [(100.0, 101.0), (110.0, 109.0), (90.0, 91.0)] {
        b.push(row(3, x, 1.0 / x));
        n.push(row(3, y, 1.0 / y));
    }
    b.push(row(4, 100.0, 0.01));
    n.push(row(4, 150.0, 0.005));
    b.push(row(5, 100.0, 0.01));
    n.push(row(6, 100.0, 0.01));
    write_csv(&base, &b);
    write_csv(&new, &n);
    (base, new)
}

#[test]
fn compare_gives_the_known_ratios_verdicts_and_exit_codes() {
    let dir = TempDir::new("compare");
    let (base, new) = synthetic(dir.path());
    let out = fsbench(&["compare", s(&base), s(&new)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let t = text(&out.stdout);
    let line = |clients: &str| {
        t.lines()
            .find(|l| l.contains(&format!("download 10MB x {clients}")))
            .unwrap_or_else(|| panic!("no scenario x {clients} in\n{t}"))
            .to_string()
    };
    let l1 = line("1 client");
    assert!(
        l1.contains("2.000 [") && l1.contains("] faster") && l1.contains("0.500 ["),
        "{l1}"
    );
    let l2 = line("2 clients");
    assert!(l2.contains("0.500 [") && l2.contains("slower"), "{l2}");
    assert!(line("3 clients").contains("no significant change"), "{t}");
    let l4 = line("4 clients");
    assert!(
        l4.contains("1.500 single run") && l4.contains("0.500 single run"),
        "{l4}"
    );
    assert!(
        t.contains("only in BASE (1):\n  thread, server pool 1: download 10MB x 5 clients"),
        "{t}"
    );
    assert!(
        t.contains("only in NEW (1):\n  thread, server pool 1: download 10MB x 6 clients"),
        "{t}"
    );
    assert!(t.contains("4 scenarios in both: aggregate throughput 1 faster, 1 slower, 1 no significant change, 1 single run"), "{t}");

    // Scenario 2 takes twice as long: slower by 100 %.
    let out = fsbench(&["compare", s(&base), s(&new), "--fail-slower", "50"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("1 scenario(s) significantly slower by more than 50 %"));
    let out = fsbench(&["compare", s(&base), s(&new), "--fail-slower", "100.5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The other way round, 1 is the slower one.
    let out = fsbench(&["compare", s(&new), s(&base), "--fail-slower", "50"]);
    assert_eq!(out.status.code(), Some(1));

    let out = fsbench(&[
        "compare",
        s(&base),
        s(&new),
        "--json",
        "--fail-slower",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sc = j["scenarios"].as_array().unwrap();
    assert_eq!(sc.len(), 4);
    let by_clients: BTreeMap<u64, &serde_json::Value> = sc
        .iter()
        .map(|v| (v["client_pool"].as_u64().unwrap(), v))
        .collect();
    let agg = |c: u64, f: &str| by_clients[&c]["aggregate_Bps"][f].clone();
    assert!((agg(1, "ratio").as_f64().unwrap() - 2.0).abs() < 1e-12);
    assert_eq!(agg(1, "verdict"), "faster");
    assert!((agg(2, "ratio").as_f64().unwrap() - 0.5).abs() < 1e-12);
    assert_eq!(agg(2, "verdict"), "slower");
    assert!((agg(2, "slowdown_pct").as_f64().unwrap() - 100.0).abs() < 1e-9);
    assert_eq!(by_clients[&2]["slower_than_limit"], true);
    assert_eq!(agg(3, "verdict"), "no significant change");
    assert_eq!(agg(4, "verdict"), "single run");
    assert!(agg(4, "interval").is_null() && agg(4, "p").is_null());
    let (lo, hi) = (
        agg(1, "interval")[0].as_f64().unwrap(),
        agg(1, "interval")[1].as_f64().unwrap(),
    );
    assert!(lo < 2.0 && 2.0 < hi, "{lo} {hi}");
    assert_eq!(j["only_in_base"][0]["client_pool"], 5);
    assert_eq!(j["only_in_new"][0]["client_pool"], 6);
    assert_eq!(j["slower_than_limit"], 1);

    // Single runs only: no verdict, so --fail-slower cannot fail, and says why.
    let one_a = dir.path().join("one_a.csv");
    let one_b = dir.path().join("one_b.csv");
    write_csv(&one_a, &[row(1, 100.0, 0.01)]);
    write_csv(&one_b, &[row(1, 10.0, 0.1)]);
    let out = fsbench(&["compare", s(&one_a), s(&one_b), "--fail-slower", "5"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("none can be judged slower"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn two_runs_share_the_charts_under_their_labels() {
    let dir = TempDir::new("report-two");
    let (base, new) = synthetic(dir.path());
    let out = fsbench(&[
        "report",
        s(&base),
        s(&new),
        "--label",
        "before",
        "--label",
        "after",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Beside the first CSV, named after both.
    let html = dir.path().join("base_vs_new.html");
    let page = std::fs::read_to_string(&html).unwrap();
    let svg = std::fs::read_to_string(
        dir.path()
            .join("base_vs_new-charts/throughput-download-10MB.svg"),
    )
    .unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts = svg_texts(&doc);
    for label in [
        "thread, server pool 1 (before)",
        "thread, server pool 1 (after)",
    ] {
        assert!(texts.iter().any(|t| t == label), "{label} in {texts:?}");
    }
    // BASE's line has client pools 1-5, NEW's 1-4 and 6: a circle each, and one in the legend.
    assert_eq!(markers(&doc, "#0072B2").0, 5 + 5 + 2);
    assert!(page.contains("<td><b>before</b></td><td><b>after</b></td>"));
}

#[test]
fn bad_input_is_named_by_file_line_and_column_with_exit_2() {
    let dir = TempDir::new("report-bad");
    let good = std::fs::read_to_string(fixture()).unwrap();
    let write = |name: &str, content: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    };
    let header = good.lines().next().unwrap();
    let avg = CSV_HEADER.iter().position(|c| *c == "avg_time_s").unwrap();
    // A non-numeric value on the third line (the second row).
    let mut lines: Vec<String> = good.lines().map(String::from).collect();
    let mut f: Vec<&str> = lines[2].split(',').collect();
    f[avg] = "fast";
    lines[2] = f.join(",");
    let non_numeric = write("nonnum.csv", &(lines.join("\n") + "\n"));
    // A header without avg_time_s (and the column gone from every row).
    let missing: String = good
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            f.remove(avg);
            f.join(",") + "\n"
        })
        .collect();
    let missing = write("missing.csv", &missing);
    let empty = write("empty.csv", "");
    let header_only = write("header.csv", &format!("{header}\n"));
    let not_sweep = write("other.csv", "name,size\na.txt,3\n");
    let binary = write("binary.csv", "\u{0}\u{1}PNG\n");
    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/quick3.json");
    let cases: Vec<(PathBuf, &str)> = vec![
        (
            non_numeric.clone(),
            "line 3, column 7 (avg_time_s): \"fast\" is not a number",
        ),
        (
            missing.clone(),
            "line 1: the header lacks the column avg_time_s",
        ),
        (empty.clone(), "line 1: the file is empty"),
        (header_only.clone(), "line 2: no row under the header"),
        (not_sweep.clone(), "line 1: not a sweep CSV"),
        (binary.clone(), "line 1: not a sweep CSV"),
        (json.clone(), "line 1: not a sweep CSV"),
    ];
    for (path, msg) in &cases {
        for cmd in [
            vec!["report", s(path), "-o", s(&dir.path().join("x.html"))],
            vec!["compare", s(&fixture()), s(path)],
        ] {
            let out = fsbench(&cmd);
            let err = text(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
            assert_eq!(err.lines().count(), 1, "one line: {err}");
            assert!(
                err.starts_with(&format!("fsbench {}: {}: {msg}", cmd[0], path.display())),
                "{cmd:?}: {err}"
            );
        }
    }
    assert!(!dir.path().join("x.html").exists());

    // Extra columns are fine (a server label, say), and the four measured
    // columns may be missing: then no memory or CPU chart, and the report says so.
    let extra: String = good
        .lines()
        .enumerate()
        .map(|(i, l)| format!("{l},{}\n", if i == 0 { "server" } else { "fsbench" }))
        .collect();
    let extra = write("extra.csv", &extra);
    let out = fsbench(&["report", s(&extra)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let old: String = good
        .lines()
        .map(|l| l.split(',').take(20).collect::<Vec<_>>().join(",") + "\n")
        .collect();
    let old = write("old.csv", &old);
    let out = fsbench(&["report", s(&old)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let page = std::fs::read_to_string(dir.path().join("old.html")).unwrap();
    assert_eq!(svgs(&page).len(), 18, "throughput, time and modes only");
    assert!(page.contains("This CSV has no CPU columns"));
    assert!(!page.contains("<th>server_cpu_s</th>"));
}

#[test]
fn nothing_is_replaced_unless_o_names_it() {
    let dir = TempDir::new("report-replace");
    let csv = dir.path().join("run.csv");
    std::fs::copy(fixture(), &csv).unwrap();
    let out = fsbench(&["report", s(&csv)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let html = dir.path().join("run.html");
    std::fs::write(&html, "mine").unwrap();
    let out = fsbench(&["report", s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        format!(
            "fsbench report: {} exists; name it with -o to replace it\n",
            html.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&html).unwrap(), "mine");
    // The charts' folder counts too.
    std::fs::remove_file(&html).unwrap();
    let out = fsbench(&["report", s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!html.exists());
    // Named: replaced.
    std::fs::write(&html, "mine").unwrap();
    let out = fsbench(&["report", s(&csv), "-o", s(&html)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));
    // Never over an input.
    let out = fsbench(&["report", s(&csv), "-o", s(&csv)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        std::fs::read(&csv).unwrap(),
        std::fs::read(fixture()).unwrap()
    );
}

#[test]
fn a_repeated_sweep_ends_with_its_repeats_and_its_report() {
    let dir = TempDir::new("report-sweep");
    let out = fsbench(&[
        "sweep",
        "--modes",
        "thread",
        "--ops",
        "list",
        "--volumes",
        "10KB",
        "--clients",
        "1",
        "--servers",
        "1",
        "--repeat",
        "2",
        "--work",
        s(&dir.path().join("work")),
        "--results",
        s(&dir.path().join("results")),
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("Over the 2 repeats: mean ± half-width of the 95 % interval"),
        "{err}"
    );
    let line = err
        .lines()
        .find(|l| l.starts_with("thread        1 list") && l.contains(" ± "))
        .unwrap_or_else(|| panic!("no repeats line in\n{err}"));
    assert!(line.contains(" 2 ") && line.contains(" ± "), "{line}");
    let report = err
        .lines()
        .find_map(|l| l.strip_prefix("report: "))
        .unwrap_or_else(|| panic!("no report line in\n{err}"));
    let page = std::fs::read_to_string(report).unwrap();
    assert!(page.contains("1 scenarios, 2 rows (2 repeats)"));
    // The metadata records the version, as --version prints it.
    let meta = Path::new(report).with_extension("json");
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
    let version = text(&fsbench(&["--version"]).stdout);
    assert!(version.starts_with("fsbench 0.1.0 (commit "), "{version}");
    assert_eq!(meta["version"], version.trim_end());
}
