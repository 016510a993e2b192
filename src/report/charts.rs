//! The report's charts: first a model of each chart (its panels, series and
//! points, taken from the runs), then the model drawn as SVG by `plotters`.
//!
//! Per operation x volume: aggregate throughput against the client pool (a
//! line per run, mode and server pool), the average time per client with
//! the p50-p99 spread of the clients' times, thread and process side by
//! side (bars), each side's peak memory and each side's CPU. A point is the
//! mean of a scenario's repeats; with repeats its bar is the 95 % interval
//! of that mean (Student's t). Colours are the Okabe-Ito palette, which
//! readers with any common colour-vision deficiency tell apart, and mode is
//! also told by the marker (thread ●, process ▲) and a later run by a
//! dashed line or a lighter bar, so no chart depends on colour alone.
//!
//! Every number drawn comes from a row; a scenario a run lacks has no point
//! (never a zero).

use std::io;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::runs::{distinct, distinct_sorted, Key, Metric, Run, Scenario};
use crate::report::stats::Estimate;
use crate::scenario::{Op, Volume, MIB};
use crate::server::Mode;

/// What the chart draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Throughput,
    Time,
    Modes,
    Memory,
    Cpu,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Throughput,
        Kind::Time,
        Kind::Modes,
        Kind::Memory,
        Kind::Cpu,
    ];

    /// Its file name's first word.
    pub fn slug(self) -> &'static str {
        match self {
            Kind::Throughput => "throughput",
            Kind::Time => "time",
            Kind::Modes => "modes",
            Kind::Memory => "memory",
            Kind::Cpu => "cpu",
        }
    }
}

/// How a panel's values are printed on its axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Bytes per second, shown as MB/s (1 MB = 2^20 bytes).
    BytesPerSec,
    Seconds,
    MiB,
}

impl Unit {
    /// The value drawn for a value of the CSV.
    fn scale(self, v: f64) -> f64 {
        match self {
            Unit::BytesPerSec => v / MIB as f64,
            Unit::Seconds | Unit::MiB => v,
        }
    }

    fn tick(self, v: f64) -> String {
        match self {
            Unit::Seconds => seconds(v),
            Unit::BytesPerSec | Unit::MiB => number(v),
        }
    }
}

/// Where the points sit along x.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// Lines over the client pools (one slot per pool, in order).
    Lines { client_pools: Vec<usize> },
    /// Groups of bars, one group per slot.
    Bars { groups: Vec<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// The SVG's file name: `throughput-download-10MB.svg`.
    pub file: String,
    pub kind: Kind,
    pub op: Op,
    pub volume: Volume,
    pub title: String,
    /// What the points and bars are, for the figure's caption.
    pub caption: String,
    pub x_desc: String,
    pub layout: Layout,
    pub panels: Vec<Panel>,
    /// Pixels: the SVG's size.
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    pub title: Option<String>,
    pub y_desc: String,
    pub unit: Unit,
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    pub look: Look,
    pub points: Vec<Point>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Look {
    pub colour: RGBColor,
    pub marker: Marker,
    /// Drawn dashed (lines) or lighter (bars): a later run.
    pub later_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Circle,
    Triangle,
}

/// One scenario's point: its slot along x, its value and its bar, in the
/// CSV's unit (bytes/s, seconds, MiB).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub slot: usize,
    pub y: f64,
    /// The 95 % interval (repeats) or the p50-p99 spread (time).
    pub bar: Option<(f64, f64)>,
    /// How many CSV rows (repeats) the point stands for.
    pub rows: usize,
}

/// Okabe & Ito's palette: thread in blue and green, process in red and orange.
const THREAD_COLOURS: [RGBColor; 4] = [
    RGBColor(0x00, 0x72, 0xB2),
    RGBColor(0x56, 0xB4, 0xE9),
    RGBColor(0x00, 0x9E, 0x73),
    RGBColor(0x00, 0x00, 0x00),
];
const PROCESS_COLOURS: [RGBColor; 4] = [
    RGBColor(0xD5, 0x5E, 0x00),
    RGBColor(0xE6, 0x9F, 0x00),
    RGBColor(0xCC, 0x79, 0xA7),
    RGBColor(0xF0, 0xE4, 0x42),
];

/// Every chart of the runs, in the report's order: per operation, per
/// volume, the kinds of [`Kind::ALL`] (memory and CPU only when a run has
/// those columns).
pub fn all(runs: &[Run]) -> Vec<Chart> {
    let mut out = Vec::new();
    for op in distinct(runs, |r| r.operation) {
        for volume in distinct_sorted(runs, |r| r.volume) {
            for kind in Kind::ALL {
                if let Some(c) = chart(runs, kind, op, volume) {
                    out.push(c);
                }
            }
        }
    }
    out
}

/// One chart, or `None` when no run has a row (or the columns) for it.
pub fn chart(runs: &[Run], kind: Kind, op: Op, volume: Volume) -> Option<Chart> {
    let client_pools = distinct_sorted(runs, |r| r.client_pool);
    let lines = Layout::Lines {
        client_pools: client_pools.clone(),
    };
    let what = format!("{op} {volume}");
    let (title, caption, x_desc, layout, panels, width, height) = match kind {
        Kind::Throughput => (
            format!("{what}: aggregate throughput"),
            "All clients' verified bytes over the pool's wall time; a line per mode and server pool.",
            "client pool (clients at once)",
            lines.clone(),
            vec![Panel {
                title: None,
                y_desc: "aggregate throughput, MB/s".into(),
                unit: Unit::BytesPerSec,
                series: line_series(runs, op, volume, &client_pools, Metric::AggregateBps),
            }],
            615,
            430,
        ),
        Kind::Time => (
            format!("{what}: time per client"),
            "Marker: average time of a client, connect to last verified byte; bar: the clients' p50 to p99.",
            "client pool (clients at once)",
            lines.clone(),
            vec![Panel {
                title: None,
                y_desc: "time per client".into(),
                unit: Unit::Seconds,
                series: time_series(runs, op, volume, &client_pools),
            }],
            615,
            430,
        ),
        Kind::Modes => {
            let (groups, series) = mode_bars(runs, op, volume);
            (
                format!("{what}: thread vs process, aggregate throughput"),
                "The two server modes side by side, for each server pool and client pool.",
                "server pool / client pool",
                Layout::Bars { groups },
                vec![Panel {
                    title: None,
                    y_desc: "aggregate throughput, MB/s".into(),
                    unit: Unit::BytesPerSec,
                    series,
                }],
                1240,
                400,
            )
        }
        Kind::Memory => {
            let runs: Vec<Run> = runs.iter().filter(|r| r.has_mem()).cloned().collect();
            (
                format!("{what}: peak memory (PSS) of each side"),
                "Peak of the summed proportional set size of each side's processes: the server and its workers; the client pool and its clients.",
                "client pool (clients at once)",
                lines.clone(),
                side_panels(
                    ("peak PSS, MB", Unit::MiB),
                    [Metric::ServerMem, Metric::ClientMem],
                    |m| line_series(&runs, op, volume, &client_pools, m),
                ),
                1240,
                430,
            )
        }
        Kind::Cpu => {
            let runs: Vec<Run> = runs.iter().filter(|r| r.has_cpu()).cloned().collect();
            (
                format!("{what}: CPU of each side"),
                "User + system CPU-seconds over the pool's run: the server's process tree; the client pool's clients and coordinating thread. The server's is counted in clock ticks.",
                "client pool (clients at once)",
                lines,
                side_panels(
                    ("CPU time", Unit::Seconds),
                    [Metric::ServerCpu, Metric::ClientCpu],
                    |m| line_series(&runs, op, volume, &client_pools, m),
                ),
                1240,
                430,
            )
        }
    };
    if panels.iter().all(|p| p.series.is_empty()) {
        return None;
    }
    Some(Chart {
        file: format!("{}-{}-{}.svg", kind.slug(), op, volume),
        kind,
        op,
        volume,
        title,
        caption: caption.to_string(),
        x_desc: x_desc.into(),
        layout,
        panels,
        width,
        height,
    })
}

/// The series of lines: one per run, mode and server pool that has rows
/// for this operation and volume.
fn line_series(
    runs: &[Run],
    op: Op,
    volume: Volume,
    client_pools: &[usize],
    m: Metric,
) -> Vec<Series> {
    each_line(runs, op, volume, client_pools, |s| {
        let e = s.estimate(m);
        Some((e.mean, e.interval()))
    })
}

/// Average time per client, its bar the mean p50 to the mean p99.
fn time_series(runs: &[Run], op: Op, volume: Volume, client_pools: &[usize]) -> Vec<Series> {
    each_line(runs, op, volume, client_pools, |s| {
        let p50 = s.estimate(Metric::P50).mean;
        let p99 = s.estimate(Metric::P99).mean;
        Some((s.estimate(Metric::AvgTime).mean, Some((p50, p99))))
    })
}

fn each_line(
    runs: &[Run],
    op: Op,
    volume: Volume,
    client_pools: &[usize],
    value: impl Fn(&Scenario<'_>) -> Option<(f64, Option<(f64, f64)>)>,
) -> Vec<Series> {
    let mut out = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let scenarios = run.scenarios();
        for mode in [Mode::Thread, Mode::Process] {
            let pools = distinct_sorted(runs, |r| r.server_pool);
            for (pi, &server_pool) in pools.iter().enumerate() {
                let points: Vec<Point> = client_pools
                    .iter()
                    .enumerate()
                    .filter_map(|(slot, &client_pool)| {
                        let key = Key {
                            mode,
                            server_pool,
                            operation: op,
                            volume,
                            client_pool,
                        };
                        let s = scenarios.iter().find(|s| s.key == key)?;
                        let (y, bar) = value(s)?;
                        Some(Point {
                            slot,
                            y,
                            bar,
                            rows: s.rows.len(),
                        })
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                out.push(Series {
                    label: label(
                        runs,
                        ri,
                        &format!("{}, server pool {server_pool}", mode.name()),
                    ),
                    look: look(mode, pi, ri),
                    points,
                });
            }
        }
    }
    out
}

/// Bars: a group per server pool and client pool, a bar per run and mode.
fn mode_bars(runs: &[Run], op: Op, volume: Volume) -> (Vec<String>, Vec<Series>) {
    let servers = distinct_sorted(runs, |r| r.server_pool);
    let clients = distinct_sorted(runs, |r| r.client_pool);
    let slots: Vec<(usize, usize)> = servers
        .iter()
        .flat_map(|&s| clients.iter().map(move |&c| (s, c)))
        .collect();
    let mut series = Vec::new();
    for (ri, run) in runs.iter().enumerate() {
        let scenarios = run.scenarios();
        for mode in [Mode::Thread, Mode::Process] {
            let points: Vec<Point> = slots
                .iter()
                .enumerate()
                .filter_map(|(slot, &(server_pool, client_pool))| {
                    let key = Key {
                        mode,
                        server_pool,
                        operation: op,
                        volume,
                        client_pool,
                    };
                    let s = scenarios.iter().find(|s| s.key == key)?;
                    let e: Estimate = s.estimate(Metric::AggregateBps);
                    Some(Point {
                        slot,
                        y: e.mean,
                        bar: e.interval(),
                        rows: s.rows.len(),
                    })
                })
                .collect();
            if !points.is_empty() {
                series.push(Series {
                    label: label(runs, ri, mode.name()),
                    look: look(mode, 0, ri),
                    points,
                });
            }
        }
    }
    let groups = slots.iter().map(|(s, c)| format!("{s} / {c}")).collect();
    (groups, series)
}

/// A series' label, with its run's label when the report has several runs.
fn label(runs: &[Run], ri: usize, what: &str) -> String {
    if runs.len() > 1 {
        format!("{what} ({})", runs[ri].label)
    } else {
        what.to_string()
    }
}

fn look(mode: Mode, pool_index: usize, run_index: usize) -> Look {
    let (colours, marker) = match mode {
        Mode::Thread => (&THREAD_COLOURS, Marker::Circle),
        Mode::Process => (&PROCESS_COLOURS, Marker::Triangle),
    };
    Look {
        colour: colours[pool_index % colours.len()],
        marker,
        later_run: run_index > 0,
    }
}

/// For bars: the second run's bar in the same colour, lighter.
fn lighter(c: RGBColor) -> RGBColor {
    let mix = |v: u8| (v as u16 + (255 - v as u16) * 11 / 20) as u8;
    RGBColor(mix(c.0), mix(c.1), mix(c.2))
}

/// The y axis of a panel: a log scale where the values span more than a
/// decade (all positive), else linear from 0. Values are drawn as their
/// log10 on a log axis, so both are plain f64 ranges with chosen ticks.
struct YAxis {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
}

impl YAxis {
    /// The axis for these points and the ends of their bars. Whether it is
    /// a log axis depends on the points alone (an interval reaching below 0
    /// ends at the floor); the range covers the points and the bars' ends
    /// that can be drawn.
    fn fit(points: &[f64], bar_ends: &[f64]) -> YAxis {
        let finite =
            |v: &[f64]| -> Vec<f64> { v.iter().copied().filter(|v| v.is_finite()).collect() };
        let (points, bar_ends) = (finite(points), finite(bar_ends));
        let min_of = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
        let max_of = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (pmin, pmax) = (min_of(&points), max_of(&points));
        let max = pmax.max(max_of(&bar_ends));
        if points.is_empty() || max <= 0.0 {
            return YAxis::linear(1.0);
        }
        if pmin > 0.0 && pmax / pmin >= 10.0 {
            let positive: Vec<f64> = bar_ends.iter().copied().filter(|v| *v > 0.0).collect();
            let min = pmin.min(min_of(&positive));
            let (lo, hi) = (min.log10(), max.log10());
            let pad = (hi - lo) * 0.06;
            let (lo, hi) = (lo - pad, hi + pad);
            let mut ticks = Vec::new();
            for d in (lo.floor() as i32)..=(hi.ceil() as i32) {
                for m in [1.0, 2.0, 5.0] {
                    let t = (m * 10f64.powi(d)).log10();
                    if t >= lo && t <= hi {
                        ticks.push(t);
                    }
                }
            }
            // Over many decades 1-2-5 crowds the axis: powers of ten only.
            if ticks.len() > 10 {
                ticks.retain(|t| (t - t.round()).abs() < 1e-9);
            }
            YAxis {
                log: true,
                lo,
                hi,
                ticks,
            }
        } else {
            YAxis::linear(max * 1.08)
        }
    }

    /// Linear from 0 whatever the values.
    fn linear_fit(points: &[f64], bar_ends: &[f64]) -> YAxis {
        let max = points
            .iter()
            .chain(bar_ends)
            .copied()
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        YAxis::linear(if max > 0.0 { max * 1.08 } else { 1.0 })
    }

    fn linear(top: f64) -> YAxis {
        let raw = top / 5.0;
        let mag = 10f64.powf(raw.log10().floor());
        let step = [1.0, 2.0, 2.5, 5.0, 10.0]
            .iter()
            .map(|m| m * mag)
            .find(|s| *s >= raw)
            .unwrap_or(10.0 * mag);
        let ticks: Vec<f64> = (0..=((top / step).ceil() as usize))
            .map(|i| i as f64 * step)
            .collect();
        YAxis {
            log: false,
            lo: 0.0,
            hi: *ticks.last().unwrap_or(&top),
            ticks,
        }
    }

    /// Where a value is drawn (clamped to the axis, so a bar reaching
    /// below a log axis ends at its floor).
    fn at(&self, v: f64) -> f64 {
        let y = if self.log {
            if v > 0.0 {
                v.log10()
            } else {
                self.lo
            }
        } else {
            v
        };
        y.clamp(self.lo, self.hi)
    }

    fn value(&self, y: f64) -> f64 {
        if self.log {
            10f64.powf(y)
        } else {
            y
        }
    }
}

/// A linear f64 axis whose ticks (and grid lines) are exactly `keys`: the
/// matrix's client pools, a log axis' 1-2-5 steps. No light grid lines.
struct Axis {
    lo: f64,
    hi: f64,
    keys: Vec<f64>,
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let t = (v - self.lo) / (self.hi - self.lo);
        limit.0 + (t * f64::from(limit.1 - limit.0)).round() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.keys.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

/// `12`, `1.5`, `0.25`, `1500`: up to three significant digits.
pub fn number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    let s = if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(2, 9) as usize;
        format!("{v:.decimals$}")
    };
    trim_zeros(&s)
}

/// `1.5 s`, `20 ms`, `500 µs`.
pub fn seconds(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1.0 {
        format!("{} s", number(v))
    } else if a >= 1e-3 {
        format!("{} ms", number(v * 1e3))
    } else {
        format!("{} µs", number(v * 1e6))
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

const FONT: &str = "sans-serif";
const LEGEND_ROW: u32 = 22;

fn plot_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> io::Error {
    io::Error::other(format!("drawing a chart: {e}"))
}

impl Chart {
    /// Every series of every panel, without repeats (a legend entry each).
    fn legend(&self) -> Vec<(String, Look)> {
        let mut out: Vec<(String, Look)> = Vec::new();
        for s in self.panels.iter().flat_map(|p| &p.series) {
            if !out.iter().any(|(l, _)| *l == s.label) {
                out.push((s.label.clone(), s.look));
            }
        }
        out
    }

    /// Legend entries per row, and rows, at this chart's width.
    fn legend_rows(&self) -> Vec<Vec<(String, Look)>> {
        let mut rows: Vec<Vec<(String, Look)>> = vec![Vec::new()];
        let mut used = 0;
        for e in self.legend() {
            let w = entry_width(&e.0);
            if used + w > self.width - 40 && !rows.last().unwrap().is_empty() {
                rows.push(Vec::new());
                used = 0;
            }
            used += w;
            rows.last_mut().unwrap().push(e);
        }
        rows
    }

    /// The chart as an SVG document.
    pub fn svg(&self) -> io::Result<String> {
        let mut buf = String::new();
        let legend_rows = self.legend_rows();
        let legend_h = LEGEND_ROW * legend_rows.len() as u32 + 12;
        let height = self.height + legend_h;
        {
            let root = SVGBackend::with_string(&mut buf, (self.width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(plot_err)?;
            let (plot, legend) = root.split_vertically(self.height);
            let plot = plot
                .titled(&self.title, (FONT, 24).into_font().style(FontStyle::Bold))
                .map_err(plot_err)?;
            // One y axis for all panels, so the sides compare at a glance.
            let (points, bars) = self.values();
            let y = match self.layout {
                Layout::Lines { .. } => YAxis::fit(&points, &bars),
                // A bar's length is its value: never on a log axis.
                Layout::Bars { .. } => YAxis::linear_fit(&points, &bars),
            };
            let areas = plot.split_evenly((1, self.panels.len()));
            for (panel, area) in self.panels.iter().zip(&areas) {
                self.draw_panel(panel, area, &y)?;
            }
            draw_legend(
                &legend,
                &legend_rows,
                matches!(self.layout, Layout::Bars { .. }),
            )?;
            root.present().map_err(plot_err)?;
        }
        Ok(compact(&buf))
    }

    /// Every value drawn, in the unit drawn: points and both ends of their bars.
    fn values(&self) -> (Vec<f64>, Vec<f64>) {
        let (mut points, mut bars) = (Vec::new(), Vec::new());
        for panel in &self.panels {
            for p in panel.series.iter().flat_map(|s| &s.points) {
                points.push(panel.unit.scale(p.y));
                if let Some((lo, hi)) = p.bar {
                    bars.extend([panel.unit.scale(lo), panel.unit.scale(hi)]);
                }
            }
        }
        (points, bars)
    }

    fn draw_panel(
        &self,
        panel: &Panel,
        area: &DrawingArea<SVGBackend<'_>, Shift>,
        y: &YAxis,
    ) -> io::Result<()> {
        let slots = match &self.layout {
            Layout::Lines { client_pools } => client_pools.len(),
            Layout::Bars { groups } => groups.len(),
        };
        let x_keys: Vec<f64> = (0..slots).map(|i| i as f64).collect();
        let mut builder = ChartBuilder::on(area);
        builder
            .margin(10)
            .margin_right(20)
            .x_label_area_size(48)
            .y_label_area_size(78);
        if let Some(t) = &panel.title {
            builder.caption(t, (FONT, 21));
        }
        let mut chart = builder
            .build_cartesian_2d(
                Axis {
                    lo: -0.5,
                    hi: slots as f64 - 0.5,
                    keys: x_keys,
                },
                Axis {
                    lo: y.lo,
                    hi: y.hi,
                    keys: y.ticks.clone(),
                },
            )
            .map_err(plot_err)?;
        let x_label = |v: &f64| -> String {
            let i = v.round();
            if (v - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            match &self.layout {
                Layout::Lines { client_pools } => client_pools
                    .get(i as usize)
                    .map(|c| c.to_string())
                    .unwrap_or_default(),
                Layout::Bars { groups } => groups.get(i as usize).cloned().unwrap_or_default(),
            }
        };
        let unit = panel.unit;
        let y_label = |v: &f64| unit.tick(y.value(*v));
        let y_desc = if y.log {
            format!("{} (log scale)", panel.y_desc)
        } else {
            panel.y_desc.clone()
        };
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&y_label)
            .axis_desc_style((FONT, 18))
            .label_style((FONT, 17))
            .bold_line_style(RGBColor(0xDD, 0xDD, 0xDD))
            .light_line_style(TRANSPARENT)
            .draw()
            .map_err(plot_err)?;

        let n = panel.series.len();
        match &self.layout {
            Layout::Lines { .. } => {
                // Series side by side around each slot, so bars do not hide
                // each other; without bars, on the slot.
                let any_bar = panel
                    .series
                    .iter()
                    .flat_map(|s| &s.points)
                    .any(|p| p.bar.is_some());
                let spread = if any_bar {
                    (0.24f64).min(0.045 * n as f64)
                } else {
                    0.0
                };
                for (j, s) in panel.series.iter().enumerate() {
                    let dx = if n > 1 && spread > 0.0 {
                        -spread / 2.0 + spread * j as f64 / (n - 1) as f64
                    } else {
                        0.0
                    };
                    let at = |p: &Point| (p.slot as f64 + dx, y.at(unit.scale(p.y)));
                    let style = ShapeStyle {
                        color: s.look.colour.to_rgba(),
                        filled: false,
                        stroke_width: 2,
                    };
                    let pts: Vec<(f64, f64)> = s.points.iter().map(at).collect();
                    if s.look.later_run {
                        chart
                            .draw_series(DashedLineSeries::new(pts.clone(), 7, 5, style))
                            .map_err(plot_err)?;
                    } else {
                        chart
                            .draw_series(LineSeries::new(pts.clone(), style))
                            .map_err(plot_err)?;
                    }
                    let thin = ShapeStyle {
                        stroke_width: 1,
                        ..style
                    };
                    for p in &s.points {
                        if let Some((lo, hi)) = p.bar {
                            let x = p.slot as f64 + dx;
                            let (lo, hi) = (y.at(unit.scale(lo)), y.at(unit.scale(hi)));
                            chart
                                .draw_series([PathElement::new(vec![(x, lo), (x, hi)], thin)])
                                .map_err(plot_err)?;
                            let cap = 0.025;
                            for yy in [lo, hi] {
                                chart
                                    .draw_series([PathElement::new(
                                        vec![(x - cap, yy), (x + cap, yy)],
                                        thin,
                                    )])
                                    .map_err(plot_err)?;
                            }
                        }
                    }
                    let fill = s.look.colour.filled();
                    match s.look.marker {
                        Marker::Circle => chart
                            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, fill)))
                            .map_err(plot_err)?,
                        Marker::Triangle => chart
                            .draw_series(pts.iter().map(|&p| TriangleMarker::new(p, 5, fill)))
                            .map_err(plot_err)?,
                    };
                }
            }
            Layout::Bars { .. } => {
                let width = 0.8 / n.max(1) as f64;
                for (j, s) in panel.series.iter().enumerate() {
                    let colour = if s.look.later_run {
                        lighter(s.look.colour)
                    } else {
                        s.look.colour
                    };
                    for p in &s.points {
                        let x0 = p.slot as f64 - 0.4 + width * j as f64;
                        let x1 = x0 + width * 0.92;
                        chart
                            .draw_series([Rectangle::new(
                                [(x0, y.lo), (x1, y.at(unit.scale(p.y)))],
                                colour.filled(),
                            )])
                            .map_err(plot_err)?;
                        if let Some((lo, hi)) = p.bar {
                            let x = (x0 + x1) / 2.0;
                            let (lo, hi) = (y.at(unit.scale(lo)), y.at(unit.scale(hi)));
                            let ink = ShapeStyle {
                                color: BLACK.to_rgba(),
                                filled: false,
                                stroke_width: 1,
                            };
                            let cap = width * 0.2;
                            for line in [
                                vec![(x, lo), (x, hi)],
                                vec![(x - cap, lo), (x + cap, lo)],
                                vec![(x - cap, hi), (x + cap, hi)],
                            ] {
                                chart
                                    .draw_series([PathElement::new(line, ink)])
                                    .map_err(plot_err)?;
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// plotters' SVG with what it repeats on every element dropped (an opacity
/// of 1 is the default) and font sizes to a tenth of a pixel: a third smaller.
fn compact(svg: &str) -> String {
    let svg = svg.replace(" opacity=\"1\"", "");
    let mut out = String::with_capacity(svg.len());
    let mut parts = svg.split("font-size=\"");
    out.push_str(parts.next().unwrap_or_default());
    for p in parts {
        out.push_str("font-size=\"");
        match p.split_once('"') {
            Some((size, rest)) => {
                match size.parse::<f64>() {
                    Ok(v) => out.push_str(&trim_zeros(&format!("{v:.1}"))),
                    Err(_) => out.push_str(size),
                }
                out.push('"');
                out.push_str(rest);
            }
            None => out.push_str(p),
        }
    }
    out
}

/// Pixels a legend entry takes: its sample, then its text (about 8 px a
/// character at this size), then a gap.
fn entry_width(label: &str) -> u32 {
    40 + 9 * label.chars().count() as u32 + 24
}

fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    rows: &[Vec<(String, Look)>],
    bars: bool,
) -> io::Result<()> {
    for (r, row) in rows.iter().enumerate() {
        let y = 6 + LEGEND_ROW as i32 * r as i32 + LEGEND_ROW as i32 / 2;
        let mut x = 70;
        for (label, look) in row {
            let style = ShapeStyle {
                color: look.colour.to_rgba(),
                filled: false,
                stroke_width: 2,
            };
            if bars {
                let c = if look.later_run {
                    lighter(look.colour)
                } else {
                    look.colour
                };
                area.draw(&Rectangle::new(
                    [(x + 6, y - 7), (x + 26, y + 7)],
                    c.filled(),
                ))
                .map_err(plot_err)?;
            } else {
                if look.later_run {
                    area.draw(&DashedPathElement::new(
                        vec![(x, y), (x + 32, y)],
                        7,
                        5,
                        style,
                    ))
                    .map_err(plot_err)?;
                } else {
                    area.draw(&PathElement::new(vec![(x, y), (x + 32, y)], style))
                        .map_err(plot_err)?;
                }
                let fill = look.colour.filled();
                match look.marker {
                    Marker::Circle => area.draw(&Circle::new((x + 16, y), 4, fill)),
                    Marker::Triangle => area.draw(&TriangleMarker::new((x + 16, y), 5, fill)),
                }
                .map_err(plot_err)?;
            }
            area.draw(&Text::new(
                label.clone(),
                (x + 40, y),
                TextStyle::from((FONT, 17).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            ))
            .map_err(plot_err)?;
            x += entry_width(label) as i32;
        }
    }
    Ok(())
}

/// The server's panel and the client pool's, side by side on one axis.
fn side_panels(
    (y_desc, unit): (&str, Unit),
    metrics: [Metric; 2],
    series: impl Fn(Metric) -> Vec<Series>,
) -> Vec<Panel> {
    ["server", "client pool"]
        .into_iter()
        .zip(metrics)
        .map(|(side, metric)| Panel {
            title: Some(side.into()),
            y_desc: y_desc.into(),
            unit,
            series: series(metric),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_read_as_numbers_and_durations() {
        assert_eq!(number(1500.0), "1500");
        assert_eq!(number(12.0), "12");
        assert_eq!(number(2.5), "2.5");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(0.0012), "0.0012");
        assert_eq!(number(10f64.powf(2f64.log10())), "2");
        assert_eq!(seconds(2.0), "2 s");
        assert_eq!(seconds(0.02), "20 ms");
        assert_eq!(seconds(0.0005), "500 µs");
        assert_eq!(seconds(0.0), "0");
    }

    #[test]
    fn the_y_axis_is_logarithmic_only_over_a_decade_of_positive_values() {
        let y = YAxis::fit(&[1.0, 50.0], &[]);
        assert!(y.log);
        let ticks: Vec<String> = y.ticks.iter().map(|t| number(y.value(*t))).collect();
        assert_eq!(ticks, ["1", "2", "5", "10", "20", "50"]);
        let y = YAxis::fit(&[3.0, 20.0], &[]);
        assert!(!y.log);
        assert_eq!((y.lo, y.ticks[0]), (0.0, 0.0));
        assert!(y.hi >= 20.0);
        // A zero cannot be drawn on a log axis: linear, from 0.
        assert!(!YAxis::fit(&[0.0, 5.0, 500.0], &[]).log);
        assert!(!YAxis::fit(&[], &[]).log);
        // An interval reaching below 0 does not make the axis linear, and
        // a bar above the points stretches the axis.
        let y = YAxis::fit(&[1.0, 100.0], &[-5.0, 400.0]);
        assert!(y.log && y.hi >= 400f64.log10());
        // Below a log axis' floor: drawn at the floor.
        let y = YAxis::fit(&[1.0, 100.0], &[]);
        assert_eq!(y.at(-3.0), y.lo);
        assert_eq!(y.at(10.0), 1.0);
    }

    #[test]
    fn the_palette_tells_modes_by_marker_and_runs_by_dashes() {
        let a = look(Mode::Thread, 0, 0);
        let b = look(Mode::Process, 0, 1);
        assert_eq!((a.marker, a.later_run), (Marker::Circle, false));
        assert_eq!((b.marker, b.later_run), (Marker::Triangle, true));
        assert_ne!(a.colour, b.colour);
        // Each mode's three server pools get three distinct colours, and
        // no colour is shared between the modes.
        let all: Vec<RGBColor> = (0..3)
            .flat_map(|i| {
                [
                    look(Mode::Thread, i, 0).colour,
                    look(Mode::Process, i, 0).colour,
                ]
            })
            .collect();
        for (i, c) in all.iter().enumerate() {
            assert!(!all[i + 1..].contains(c), "{c:?}");
        }
        assert_eq!(lighter(RGBColor(0, 0, 0)), RGBColor(140, 140, 140));
    }

    #[test]
    fn compacting_drops_default_opacity_and_rounds_font_sizes_only() {
        let svg = "<text x=\"1.5\" opacity=\"1\" font-size=\"13.709677419354838\">a</text>\
                   <rect opacity=\"0.5\" font-size=\"12\"/>";
        assert_eq!(
            compact(svg),
            "<text x=\"1.5\" font-size=\"13.7\">a</text><rect opacity=\"0.5\" font-size=\"12\"/>"
        );
    }
}
