//! The robustness suite (issue 5): bad input, faults and floods against a
//! running server, in thread mode and in process mode, ending with its figures.
//!
//! A plain binary (`harness = false`) so that the figures are always printed,
//! under `make robustness` and `make test` alike. Cases run one after another
//! (they measure the server's descriptors, memory and CPU time); an argument
//! runs only the cases whose name contains it. The seven figures that must be
//! zero, or any failed case, make it exit 1.

#[path = "../common/mod.rs"]
mod common;
mod faults;
mod harness;
mod input;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use fsbench::server::Mode;

/// Which modes a case runs in.
#[derive(Clone, Copy)]
enum Modes {
    Both,
    ProcessOnly,
}

type Case = (&'static str, Modes, fn(Mode));

const CASES: &[Case] = &[
    ("01_empty_and_unknown_requests", Modes::Both, input::case_01),
    ("02_wrong_arity", Modes::Both, input::case_02),
    ("03_bad_bytes_in_requests", Modes::Both, input::case_03),
    ("04_overlong_lines", Modes::Both, input::case_04),
    ("05_bad_upload_bodies", Modes::Both, input::case_05),
    ("06_names_escaping_the_store", Modes::Both, input::case_06),
    (
        "07_planted_links_fifos_folders",
        Modes::Both,
        input::case_07,
    ),
    (
        "08_clients_vanishing_mid_transfer",
        Modes::Both,
        faults::case_08,
    ),
    ("09_slowloris", Modes::Both, faults::case_09),
    (
        "10_stalled_upload_and_unread_get",
        Modes::Both,
        faults::case_10,
    ),
    ("11_flood_of_2000_connections", Modes::Both, faults::case_11),
    ("12_descriptor_limit_64", Modes::Both, faults::case_12),
    (
        "13_disk_full_and_read_only_store",
        Modes::Both,
        faults::case_13,
    ),
    (
        "14_worker_kills_under_load",
        Modes::ProcessOnly,
        faults::case_14,
    ),
    (
        "15_sigterm_with_transfers_in_flight",
        Modes::Both,
        faults::case_15,
    ),
    (
        "16_identical_uploads_and_readers",
        Modes::Both,
        faults::case_16,
    ),
    ("17_upload_delete_race", Modes::Both, faults::case_17),
    ("18_server_kill9_and_restart", Modes::Both, faults::case_18),
    ("19_unterminated_requests", Modes::Both, input::case_19),
];

fn main() {
    // `cargo test` passes its own flags (e.g. --test-threads): ignore them.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    // The flood holds 2000 connections: this process needs the descriptors.
    let _ = fsbench::sys::raise_nofile_limit();
    let modes = [Mode::Thread, Mode::Process];
    let t0 = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    let mut failures = Vec::new();
    for &mode in &modes {
        for &(name, which, case) in CASES {
            if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                continue;
            }
            if matches!(which, Modes::ProcessOnly) && mode != Mode::Process {
                continue;
            }
            let t = Instant::now();
            harness::F.case_probe_max_us.store(0, Relaxed);
            let r = catch_unwind(AssertUnwindSafe(|| case(mode)));
            let label = format!(
                "{name} [{}] (slowest probe {:.1} ms)",
                mode.name(),
                harness::F.case_probe_max_us.load(Relaxed) as f64 / 1000.0
            );
            match r {
                Ok(()) => {
                    passed += 1;
                    println!("ok     {label} ({:.1} s)", t.elapsed().as_secs_f64());
                }
                Err(_) => {
                    failed += 1;
                    println!("FAILED {label} ({:.1} s)", t.elapsed().as_secs_f64());
                    failures.push(label);
                }
            }
        }
    }
    println!("suite time: {:.1} s", t0.elapsed().as_secs_f64());
    let zeros_ok = harness::F.print();
    for f in &failures {
        println!("failed: {f}");
    }
    if !zeros_ok {
        println!("a figure that must be 0 is not");
    }
    println!("robustness: {passed} passed, {failed} failed");
    if failed > 0 || !zeros_ok {
        std::process::exit(1);
    }
}
