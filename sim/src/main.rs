//! `semantica-sim`: runs seeds of the deterministic simulator.
//!
//! ```text
//! semantica-sim [--seed N] [--seeds K] [--steps S] [--backend memory|sqlite|postgres] [--differential]
//!               [--check-determinism] [--verbose] [--trace]
//! ```
//!
//! `--backend` chooses the store the engine runs on (`memory` by default); with
//! `--differential` the other one runs beside it on the same inputs (memory against
//! SQLite, or Postgres against memory), and every answer and the whole stores are
//! compared. `--backend postgres` runs on the server that `SEMANTICA_TEST_PG_URL` names,
//! one schema per run.
//!
//! Every seed prints `SEED=<n>` with what it drew, and ends with exactly one line
//! `SEED=<n> steps=<n> trace_hash=<hex> result=ok|fail`. A failing seed prints the
//! violated invariant, the replay command and its last operations; the exit code is 1 if
//! any seed failed. This file is the only place that reads the system time: to pick the
//! first seed when `--seed` is absent.

use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use semantica_sim::{run, BackendKind, SimOptions};

const USAGE: &str =
    "usage: semantica-sim [--seed N] [--seeds K] [--steps S] [--backend memory|sqlite|postgres] [--differential] \
                     [--check-determinism] [--verbose] [--trace]";

struct Args {
    seed: Option<u64>,
    seeds: u64,
    steps: u64,
    backend: BackendKind,
    differential: bool,
    check_determinism: bool,
    verbose: bool,
    trace: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seed: None,
        seeds: 1,
        steps: 2_000,
        backend: BackendKind::Memory,
        differential: false,
        check_determinism: false,
        verbose: false,
        trace: false,
    };
    let mut iter = std::env::args().skip(1);
    while let Some(arg) = iter.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let text = iter.next().ok_or_else(|| format!("{name} needs a value"))?;
            text.parse::<u64>().map_err(|_| format!("{name}: {text:?} is not a non-negative integer"))
        };
        match arg.as_str() {
            "--seed" => args.seed = Some(number("--seed")?),
            "--seeds" => args.seeds = number("--seeds")?,
            "--steps" => args.steps = number("--steps")?,
            "--backend" => {
                let name = iter.next().ok_or("--backend needs a value")?;
                args.backend = BackendKind::parse(&name)
                    .ok_or_else(|| format!("--backend: {name:?} is not memory, sqlite or postgres"))?;
            }
            "--differential" => args.differential = true,
            "--check-determinism" => args.check_determinism = true,
            "--verbose" => args.verbose = true,
            "--trace" => args.trace = true,
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let first_seed = args.seed.unwrap_or_else(|| {
        // The only clock read of the simulator: where a random swarm starts.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        nanos as u64
    });
    let started = Instant::now();
    let mut failed = Vec::new();
    for index in 0..args.seeds.max(1) {
        let seed = first_seed.wrapping_add(index);
        let mut options = SimOptions::on(args.backend, seed, args.steps);
        options.differential = args.differential;
        options.keep_trace = args.trace;
        let report = run(&options);
        println!("{}", report.header_line());
        for line in report.full_trace.iter().flatten() {
            println!("{line}");
        }
        if args.verbose {
            println!("SEED={seed} stats {:?} final_states {:?}", report.stats, report.final_states);
        }
        let mut passed = report.passed();
        if let Some(text) = report.failure_text() {
            print!("{text}");
        }
        if args.check_determinism {
            let again = run(&options);
            if again.trace_hash != report.trace_hash {
                passed = false;
                println!(
                    "SEED={seed} nondeterminism: trace_hash {:016x} then {:016x}\nreplay: {} --check-determinism",
                    report.trace_hash,
                    again.trace_hash,
                    report.replay_command()
                );
            }
        }
        let line = report.result_line();
        println!("{}", if passed { line } else { line.replace("result=ok", "result=fail") });
        if !passed {
            failed.push(seed);
        }
    }
    let elapsed = started.elapsed();
    let stores = if args.differential {
        format!("{} and {}", args.backend.as_str(), args.backend.counterpart().as_str())
    } else {
        args.backend.as_str().to_owned()
    };
    eprintln!(
        "{} seeds x {} steps on {stores} in {:.1}s; {} failed{}",
        args.seeds.max(1),
        args.steps,
        elapsed.as_secs_f64(),
        failed.len(),
        if failed.is_empty() { String::new() } else { format!(": {failed:?}") }
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
