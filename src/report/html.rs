//! The report as one self-contained HTML page: the runs' metadata and
//! findings first, then the charts (inline SVG) per operation and volume,
//! then every scenario in a table. No script, no style sheet or font from
//! elsewhere: the file alone is the report.

use std::fmt::Write as _;

use crate::report::charts::{self, Chart};
use crate::report::findings::Findings;
use crate::report::runs::{distinct, distinct_sorted, Metric, Run, Scenario};
use crate::report::stats::{Estimate, LEVEL, NOISY_CV};
use crate::results::{Row, CSV_HEADER};

const STYLE: &str = "
body { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif;
       color: #1a1a1a; margin: 0 auto; padding: 12px 20px 40px; max-width: 1260px; }
h1 { font-size: 26px; margin: 8px 0 4px; }
h2 { font-size: 21px; margin: 32px 0 8px; padding-top: 8px; border-top: 2px solid #ccc; }
h3 { font-size: 17px; margin: 18px 0 6px; }
p.sub { color: #555; margin: 0 0 12px; }
table { border-collapse: collapse; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d6d6d6; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f0f0f0; position: sticky; top: 0; }
td.t, th.t { text-align: left; }
table.meta td, table.meta th { text-align: left; white-space: normal; vertical-align: top; }
table.meta th { position: static; width: 150px; }
.scroll { overflow-x: auto; max-width: 100%; }
.table-wrap { overflow: auto; max-height: 80vh; }
.ok { color: #1b7a3a; font-weight: 600; }
.bad { color: #b00020; font-weight: 600; }
.warn { color: #9a5b00; font-weight: 600; }
tr.failed td { background: #fde8e8; }
figure { margin: 10px 0 18px; }
figure svg { max-width: 100%; height: auto; border: 1px solid #e3e3e3; }
figcaption { font-size: 13px; color: #444; margin-top: 2px; max-width: 1240px; }
.pair { display: flex; flex-wrap: wrap; gap: 10px; }
.pair figure { flex: 1 1 600px; margin: 10px 0 8px; }
nav ul { columns: 3; margin: 4px 0; padding-left: 20px; }
details > summary { cursor: pointer; margin: 6px 0; }
code { font-size: 13px; }
";

/// Text for HTML: `&`, `<`, `>` and quotes escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An id for a section: `download-10MB`.
fn anchor(op: &str, volume: &str) -> String {
    format!("{op}-{volume}")
}

/// The page. `charts` are the charts and their SVG, in order; `charts_dir`
/// is where their files are, relative to the page.
pub fn page(runs: &[Run], charts: &[(Chart, String)], charts_dir: &str, version: &str) -> String {
    let mut h = String::new();
    let labels: Vec<String> = runs.iter().map(|r| r.label.clone()).collect();
    let title = format!("fsbench report: {}", labels.join(" vs "));
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let scenarios: usize = runs.iter().map(|r| r.scenarios().len()).sum();
    let rows: usize = runs.iter().map(|r| r.rows().len()).sum();
    let _ = writeln!(
        h,
        "<p class=\"sub\">{} run{}, {scenarios} scenarios, {rows} CSV rows. Written by {}; \
         every chart is also an SVG file in <code>{}/</code>.</p>",
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        esc(version),
        esc(charts_dir)
    );
    runs_section(&mut h, runs);
    findings_section(&mut h, runs);
    contents(&mut h, runs);
    charts_sections(&mut h, runs, charts);
    table_section(&mut h, runs);
    h.push_str("</body>\n</html>\n");
    h
}

fn runs_section(h: &mut String, runs: &[Run]) {
    h.push_str("<h2 id=\"runs\">The run");
    if runs.len() > 1 {
        h.push('s');
    }
    h.push_str("</h2>\n<div class=\"scroll\"><table class=\"meta\">\n");
    let mut row = |name: &str, cell: &dyn Fn(&Run) -> String| {
        let _ = write!(h, "<tr><th>{name}</th>");
        for r in runs {
            let _ = write!(h, "<td>{}</td>", cell(r));
        }
        h.push_str("</tr>\n");
    };
    let meta_or = |r: &Run, f: &dyn Fn(&crate::results::Metadata) -> String| match &r.meta {
        Ok(m) => f(m),
        Err(_) => "<span class=\"warn\">unknown (no metadata)</span>".to_string(),
    };
    row("label", &|r| format!("<b>{}</b>", esc(&r.label)));
    row("CSV", &|r| {
        format!("<code>{}</code>", esc(&r.path.display().to_string()))
    });
    row("metadata", &|r| match &r.meta {
        Ok(_) => format!(
            "<code>{}</code>",
            esc(&r.path.with_extension("json").display().to_string())
        ),
        Err(e) => format!("<span class=\"warn\">{}</span>", esc(e)),
    });
    row("commit", &|r| {
        meta_or(r, &|m| {
            let commit = m.git.commit.as_deref().unwrap_or("unknown");
            let dirty = match m.git.dirty {
                Some(true) => " <span class=\"warn\">(dirty: uncommitted changes)</span>",
                Some(false) => " (clean)",
                None => "",
            };
            format!("<code>{}</code>{dirty}", esc(commit))
        })
    });
    row("fsbench", &|r| {
        meta_or(r, &|m| {
            esc(if m.version.is_empty() {
                &m.tool
            } else {
                &m.version
            })
        })
    });
    row("build", &|r| {
        meta_or(r, &|m| {
            esc(&format!(
                "{} ({})",
                m.build_profile,
                m.rustc.as_deref().unwrap_or("rustc unknown")
            ))
        })
    });
    row("machine", &|r| {
        meta_or(r, &|m| {
            let mc = &m.machine;
            esc(&format!(
                "{}{} cores, {} memory, {}{}{}{}",
                mc.cpu_model
                    .as_deref()
                    .map_or(String::new(), |c| format!("{c}, ")),
                mc.cores.map_or("?".into(), |c| c.to_string()),
                mc.memory_total_kib.map_or("?".into(), |k| format!(
                    "{:.1} GiB",
                    k as f64 / 1024.0 / 1024.0
                )),
                mc.kernel,
                mc.hostname
                    .as_deref()
                    .map_or(String::new(), |n| format!(", host {n}")),
                mc.base64
                    .as_deref()
                    .map_or(String::new(), |b| format!(", base64 {b}")),
                crate::results::machine::calibration_text(&m.calibration)
                    .map_or(String::new(), |at| format!(
                        "; one core's SHA-256: GB per CPU-second {at}"
                    ))
            ))
        })
    });
    row("hosts", &|r| {
        meta_or(r, &|m| {
            if m.hosts.is_empty() {
                return "server and clients on the machine above".into();
            }
            let mut parts: Vec<String> = Vec::new();
            for role in ["server", "client"] {
                let on: Vec<String> = m
                    .hosts
                    .iter()
                    .filter(|h| h.role == role)
                    .map(|h| {
                        format!(
                            "{} ({}, {} cores, {:.1} GiB)",
                            h.host,
                            h.address,
                            h.machine.cores.map_or("?".into(), |c| c.to_string()),
                            h.machine.memory_total_kib.unwrap_or(0) as f64 / 1024.0 / 1024.0
                        )
                    })
                    .collect();
                parts.push(match (role, on.is_empty()) {
                    ("server", true) => "server on the machine above".into(),
                    ("server", false) => format!("server on {}", on.join(", ")),
                    (_, true) => "clients on the machine above".into(),
                    (_, false) => format!("clients split over {}", on.join(", ")),
                });
            }
            let mut out = esc(&parts.join("; "));
            for l in &m.lost_hosts {
                let _ = write!(
                    out,
                    " <span class=\"warn\">{} lost in scenario {} ({})</span>",
                    esc(&l.host),
                    l.scenario,
                    esc(&l.why)
                );
            }
            out
        })
    });
    row("fsync", &|r| {
        meta_or(r, &|m| {
            if m.fsync {
                "on (an acknowledged upload is on disk)".into()
            } else {
                "<span class=\"warn\">off (--no-fsync)</span>".into()
            }
        })
    });
    row("TCP congestion control", &|r| {
        meta_or(r, &|m| match &m.tcp_congestion {
            Some(t) => esc(&format!(
                "servers: {}; clients: {} (--tcp-congestion {}; this machine's default: {})",
                t.servers, t.clients, t.setting, t.system_default
            )),
            None => "not recorded".into(),
        })
    });
    row("matrix", &|r| {
        meta_or(r, &|m| {
            let x = &m.matrix;
            let join = |v: &[String]| v.join(" ");
            let nums = |v: &[usize]| {
                v.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            esc(&format!(
                "modes {}; operations {}; volumes {}; client pools {}; server pools {}; repeat {}",
                join(&x.modes),
                join(&x.operations),
                join(&x.volumes),
                nums(&x.client_pools),
                nums(&x.server_pools),
                x.repeat
            ))
        })
    });
    row("start", &|r| meta_or(r, &|m| esc(&m.start)));
    row("duration", &|r| {
        meta_or(r, &|m| match m.duration_s {
            Some(s) => format!("{s:.1} s (end {})", esc(m.end.as_deref().unwrap_or("?"))),
            None => "<span class=\"warn\">unfinished</span>".into(),
        })
    });
    row("scenarios", &|r| {
        let s = r.scenarios().len();
        let n = r.rows().len();
        let rep = r.repeats();
        let mut out = format!("{s} scenarios, {n} rows");
        if rep > 1 {
            let _ = write!(out, " ({rep} repeats)");
        }
        if let Ok(m) = &r.meta {
            if m.scenarios_done < m.scenarios_total {
                let _ = write!(
                    out,
                    " <span class=\"bad\">stopped after {} of {}</span>",
                    m.scenarios_done, m.scenarios_total
                );
            }
            if let Some(e) = &m.error {
                let _ = write!(out, " <span class=\"bad\">{}</span>", esc(e));
            }
            if let Some(sig) = m.interrupted_by_signal {
                let _ = write!(
                    out,
                    " <span class=\"bad\">interrupted by signal {sig}</span>"
                );
            }
        }
        out
    });
    h.push_str("</table></div>\n");
}

fn findings_section(h: &mut String, runs: &[Run]) {
    h.push_str("<h2 id=\"findings\">Findings</h2>\n");
    for run in runs {
        let f = Findings::of(run);
        if runs.len() > 1 {
            let _ = writeln!(h, "<h3>{}</h3>", esc(&run.label));
        }
        h.push_str("<ul>\n");
        // Failures.
        if f.failed.is_empty() {
            let _ = writeln!(
                h,
                "<li><span class=\"ok\">No failure:</span> every client of the {} scenarios \
                 succeeded and no server task failed.</li>",
                f.scenarios
            );
        } else {
            let _ = writeln!(
                h,
                "<li><span class=\"bad\">{} of {} scenarios failed</span> (a client or a server \
                 task failed):\n<div class=\"scroll\"><table>\n<tr><th class=\"t\">scenario</th>\
                 <th>repeats failed</th><th>clients failed</th><th>server tasks failed</th>\
                 <th class=\"t\">causes (CSV <code>errors</code>)</th></tr>",
                f.failed.len(),
                f.scenarios
            );
            for x in &f.failed {
                let _ = writeln!(
                    h,
                    "<tr class=\"failed\"><td class=\"t\">{}</td><td>{} of {}</td><td>{}</td>\
                     <td>{}</td><td class=\"t\">{}</td></tr>",
                    esc(&x.key.to_string()),
                    x.failed,
                    x.repeats,
                    x.client_fails,
                    x.server_fails,
                    esc(&x.causes)
                );
            }
            h.push_str("</table></div></li>\n");
        }
        // A server without task counts (another server than ours).
        if run.csv.rows.iter().any(|r| r.server_success.is_none()) {
            let label = run.csv.rows.first().map_or("", |r| r.server.as_str());
            let _ = writeln!(
                h,
                "<li>The server (<code>{}</code>) keeps no task counts: it does not answer                  <code>STATS</code> as fsbench does, so <code>server_success</code> and                  <code>server_fail</code> are empty and only the clients tell what failed.</li>",
                esc(label)
            );
        }
        // CPU.
        match &f.cpu_heavy_pool {
            None => h.push_str(
                "<li>This CSV has no CPU columns: where the CPU went is not known.</li>\n",
            ),
            Some(v) if v.is_empty() => {
                let _ = writeln!(
                    h,
                    "<li><span class=\"ok\">The server used at least as much CPU as the client \
                     pool</span> in every scenario (within the server's clock tick, {:.0} ms).</li>",
                    f.cpu_tick_s * 1e3
                );
            }
            Some(v) => {
                let ops = distinct(std::slice::from_ref(run), |r| r.operation);
                let per_op: Vec<String> = ops
                    .iter()
                    .map(|op| {
                        let all = run
                            .scenarios()
                            .iter()
                            .filter(|s| s.key.operation == *op)
                            .count();
                        let heavy = v.iter().filter(|c| c.key.operation == *op).count();
                        format!("{op} {heavy} of {all}")
                    })
                    .collect();
                // Clients on hosts of their own did not take the server's cores.
                let elsewhere = run
                    .meta
                    .as_ref()
                    .is_ok_and(|m| m.hosts.iter().any(|x| x.role == "client"));
                let meaning = if elsewhere {
                    "the clients ran on other hosts than the server, so they did not take its \
                     cores (unless those hosts share a machine with it): this is how much CPU \
                     the generator needed"
                } else {
                    "there the results describe the load generator as much as the server"
                };
                let _ = writeln!(
                    h,
                    "<li><span class=\"warn\">The client pool used more CPU than the server in {} \
                     of {} scenarios</span> ({}): {meaning}. (More means by more than the server's clock tick, \
                     {:.0} ms{}.)\n<details><summary>the {} scenarios</summary>\n\
                     <div class=\"scroll\"><table>\n<tr><th class=\"t\">scenario</th>\
                     <th>server CPU s</th><th>client pool CPU s</th><th>pool share</th></tr>",
                    v.len(),
                    f.scenarios,
                    per_op.join(", "),
                    f.cpu_tick_s * 1e3,
                    if run.repeats() > 1 {
                        "; means over the repeats"
                    } else {
                        ""
                    },
                    v.len()
                );
                for c in v {
                    let total = c.server_cpu_s + c.client_cpu_s;
                    let _ = writeln!(
                        h,
                        "<tr><td class=\"t\">{}</td><td>{:.6}</td><td>{:.6}</td><td>{:.0} %</td></tr>",
                        esc(&c.key.to_string()),
                        c.server_cpu_s,
                        c.client_cpu_s,
                        100.0 * c.client_cpu_s / total
                    );
                }
                h.push_str("</table></div></details></li>\n");
            }
        }
        // Repeats.
        match &f.noisy {
            None => h.push_str(
                "<li>One run of each scenario: no spread is known (run the sweep with \
                 <code>REPEAT=3</code> for intervals).</li>\n",
            ),
            Some(v) if v.is_empty() => {
                let _ = writeln!(
                    h,
                    "<li><span class=\"ok\">No noisy scenario:</span> over {} repeats every \
                     scenario's aggregate throughput and average time varied by at most {:.0} % \
                     (coefficient of variation).</li>",
                    run.repeats(),
                    NOISY_CV * 100.0
                );
            }
            Some(v) => {
                let _ = writeln!(
                    h,
                    "<li><span class=\"warn\">{} of {} scenarios are noisy:</span> over {} repeats \
                     their aggregate throughput or average time has a coefficient of variation \
                     (sd / mean) over {:.0} %; read their differences with care.\n\
                     <details><summary>the {} scenarios</summary>\n<div class=\"scroll\"><table>\n\
                     <tr><th class=\"t\">scenario</th><th>n</th><th>CV aggregate throughput</th>\
                     <th>CV average time</th></tr>",
                    v.len(),
                    f.scenarios,
                    run.repeats(),
                    NOISY_CV * 100.0,
                    v.len()
                );
                for x in v {
                    let cv = |e: &Estimate| {
                        let c = e.cv().unwrap_or(0.0);
                        let s = format!("{:.1} %", c * 100.0);
                        if c > NOISY_CV {
                            format!("<b>{s}</b>")
                        } else {
                            s
                        }
                    };
                    let _ = writeln!(
                        h,
                        "<tr><td class=\"t\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(&x.key.to_string()),
                        x.throughput.n,
                        cv(&x.throughput),
                        cv(&x.time)
                    );
                }
                h.push_str("</table></div></details></li>\n");
            }
        }
        h.push_str("</ul>\n");
    }
}

fn contents(h: &mut String, runs: &[Run]) {
    h.push_str("<nav><h2 id=\"contents\">Contents</h2><ul>\n");
    for op in distinct(runs, |r| r.operation) {
        for v in distinct_sorted(runs, |r| r.volume) {
            let id = anchor(op.name(), &v.label());
            let _ = writeln!(h, "<li><a href=\"#{id}\">{op} {v}</a></li>");
        }
    }
    h.push_str("<li><a href=\"#table\">every scenario, in a table</a></li>\n</ul></nav>\n");
}

fn charts_sections(h: &mut String, runs: &[Run], charts: &[(Chart, String)]) {
    let repeats = runs.iter().map(|r| r.repeats()).max().unwrap_or(1);
    for op in distinct(runs, |r| r.operation) {
        for v in distinct_sorted(runs, |r| r.volume) {
            let here: Vec<&(Chart, String)> = charts
                .iter()
                .filter(|(c, _)| c.op == op && c.volume == v)
                .collect();
            if here.is_empty() {
                continue;
            }
            let _ = writeln!(
                h,
                "<h2 id=\"{}\">{op} {v}</h2>",
                anchor(op.name(), &v.label())
            );
            let mut i = 0;
            while i < here.len() {
                // Half-width charts go two to a line.
                let half = |c: &Chart| c.width < 1000;
                if half(&here[i].0) && i + 1 < here.len() && half(&here[i + 1].0) {
                    h.push_str("<div class=\"pair\">\n");
                    figure(h, here[i], repeats);
                    figure(h, here[i + 1], repeats);
                    h.push_str("</div>\n");
                    i += 2;
                } else {
                    figure(h, here[i], repeats);
                    i += 1;
                }
            }
        }
    }
}

fn figure(h: &mut String, (chart, svg): &(Chart, String), repeats: usize) {
    let bars = if repeats > 1 && chart.kind != charts::Kind::Time {
        format!(
            " Points are means over {repeats} repeats; bars, their {:.0} % interval (Student's t).",
            LEVEL * 100.0
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        h,
        "<figure id=\"{}\">\n{}\n<figcaption>{}{}</figcaption>\n</figure>",
        esc(chart.file.trim_end_matches(".svg")),
        svg.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
            .trim(),
        esc(&chart.caption),
        esc(&bars)
    );
}

/// A row's fields as the CSV writes them, in [`CSV_HEADER`]'s order.
pub fn csv_fields(r: &Row) -> Vec<String> {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let fields = w
        .serialize(r)
        .and_then(|()| w.flush().map_err(csv::Error::from))
        .ok()
        .and_then(|()| w.into_inner().ok())
        .and_then(|bytes| {
            let mut rd = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(bytes.as_slice());
            rd.records().next()?.ok()
        });
    match fields {
        Some(rec) => rec.iter().map(str::to_string).collect(),
        None => vec![String::new(); CSV_HEADER.len()],
    }
}

/// Decimals of a measured column, as the CSV writes it.
fn decimals(column: &str) -> Option<usize> {
    match column {
        "throughput_Bps" | "aggregate_Bps" => Some(0),
        "server_mem_mib" | "client_mem_mib" => Some(3),
        "avg_time_s" | "p50_s" | "p90_s" | "p99_s" | "max_s" | "wall_s" | "server_cpu_s"
        | "client_cpu_s" => Some(6),
        _ => None,
    }
}

/// A column's value over a scenario's repeats: `mean ± half-width`.
fn mean_pm(s: &Scenario<'_>, column: &str, d: usize) -> String {
    let xs: Vec<f64> = s.rows.iter().map(|r| value(r, column)).collect();
    let e = Estimate::of(&xs).expect("a scenario has rows");
    match e.half_width() {
        Some(hw) => format!("{:.d$} ± {:.d$}", e.mean, hw),
        None => format!("{:.d$}", e.mean),
    }
}

fn value(r: &Row, column: &str) -> f64 {
    match column {
        "avg_time_s" => Metric::AvgTime.of(r),
        "throughput_Bps" => r.throughput_bps,
        "aggregate_Bps" => r.aggregate_bps,
        "p50_s" => r.p50_s,
        "p90_s" => r.p90_s,
        "p99_s" => r.p99_s,
        "max_s" => r.max_s,
        "wall_s" => r.wall_s,
        "server_cpu_s" => r.server_cpu_s,
        "client_cpu_s" => r.client_cpu_s,
        "server_mem_mib" => r.server_mem_mib,
        "client_mem_mib" => r.client_mem_mib,
        _ => f64::NAN,
    }
}

fn table_section(h: &mut String, runs: &[Run]) {
    h.push_str("<h2 id=\"table\">Every scenario</h2>\n");
    let several = runs.len() > 1;
    let repeated = runs.iter().any(|r| r.repeats() > 1);
    if repeated {
        let _ = writeln!(
            h,
            "<p>One line per scenario: measured columns as <b>mean ± half-width</b> of the {:.0} % \
             interval over its repeats (Student's t); counts summed over the repeats. Every row \
             of the CSV follows, as written.</p>",
            LEVEL * 100.0
        );
        summary_table(h, runs, several);
        h.push_str("<details><summary>every row of the CSV</summary>\n");
        raw_table(h, runs, several);
        h.push_str("</details>\n");
    } else {
        h.push_str(
            "<p>Every row of the CSV, as written (the original exercise's ten columns first; \
             times in seconds, throughputs in bytes per second, memory in MiB).</p>\n",
        );
        raw_table(h, runs, several);
    }
}

/// Only the columns a run has: an older CSV's absent CPU columns are not zeros.
fn shown_columns(runs: &[Run]) -> Vec<&'static str> {
    CSV_HEADER
        .iter()
        .copied()
        .filter(|c| runs.iter().any(|r| r.csv.has(c)))
        .collect()
}

fn raw_table(h: &mut String, runs: &[Run], several: bool) {
    let cols = shown_columns(runs);
    h.push_str("<div class=\"table-wrap\"><table class=\"rows\">\n<tr>");
    if several {
        h.push_str("<th class=\"t\">run</th>");
    }
    for c in &cols {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr>\n");
    for run in runs {
        for r in run.rows() {
            let fields = csv_fields(r);
            let _ = write!(h, "<tr{}>", if r.ok() { "" } else { " class=\"failed\"" });
            if several {
                let _ = write!(h, "<td class=\"t\">{}</td>", esc(&run.label));
            }
            for c in &cols {
                let i = CSV_HEADER
                    .iter()
                    .position(|x| x == c)
                    .expect("a CSV column");
                let text = if run.csv.has(c) { &fields[i] } else { "" };
                let class = if decimals(c).is_some() || text.parse::<f64>().is_ok() {
                    ""
                } else {
                    " class=\"t\""
                };
                let _ = write!(h, "<td{class}>{}</td>", esc(text));
            }
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table></div>\n");
}

fn summary_table(h: &mut String, runs: &[Run], several: bool) {
    let cols: Vec<&str> = shown_columns(runs)
        .into_iter()
        .filter(|c| *c != "timestamp")
        .collect();
    h.push_str("<div class=\"table-wrap\"><table class=\"scenarios\">\n<tr>");
    if several {
        h.push_str("<th class=\"t\">run</th>");
    }
    for c in &cols[..5] {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("<th>n</th>");
    for c in &cols[5..] {
        let _ = write!(h, "<th>{c}</th>");
    }
    h.push_str("</tr>\n");
    for run in runs {
        for s in run.scenarios() {
            let _ = write!(h, "<tr{}>", if s.ok() { "" } else { " class=\"failed\"" });
            if several {
                let _ = write!(h, "<td class=\"t\">{}</td>", esc(&run.label));
            }
            let k = &s.key;
            let _ = write!(
                h,
                "<td class=\"t\">{}</td><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td>\
                 <td>{}</td><td>{}</td>",
                k.mode,
                k.server_pool,
                k.operation,
                k.volume,
                k.client_pool,
                s.rows.len()
            );
            for c in &cols[5..] {
                let text = if !run.csv.has(c) {
                    String::new()
                } else if let Some(d) = decimals(c) {
                    mean_pm(&s, c, d)
                } else {
                    match *c {
                        "success" => s.rows.iter().map(|r| r.success).sum::<usize>().to_string(),
                        "fail" => s.rows.iter().map(|r| r.fail).sum::<usize>().to_string(),
                        // Empty where the server keeps no counts.
                        "server_success" => s
                            .rows
                            .iter()
                            .map(|r| r.server_success)
                            .sum::<Option<u64>>()
                            .map_or_else(String::new, |n| n.to_string()),
                        "server_fail" => s
                            .rows
                            .iter()
                            .map(|r| r.server_fail)
                            .sum::<Option<u64>>()
                            .map_or_else(String::new, |n| n.to_string()),
                        "bytes_verified" => s
                            .rows
                            .iter()
                            .map(|r| r.bytes_verified)
                            .sum::<u64>()
                            .to_string(),
                        "errors" => {
                            let mut e: Vec<&str> = Vec::new();
                            for r in &s.rows {
                                if !r.errors.is_empty() && !e.contains(&r.errors.as_str()) {
                                    e.push(&r.errors);
                                }
                            }
                            e.join("; ")
                        }
                        _ => String::new(),
                    }
                };
                let class = if *c == "errors" { " class=\"t\"" } else { "" };
                let _ = write!(h, "<td{class}>{}</td>", esc(&text));
            }
            h.push_str("</tr>\n");
        }
    }
    h.push_str("</table></div>\n");
}
