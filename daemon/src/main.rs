//! # semantica
//!
//! The composition root: it wires `semantica-core`'s engine to the adapters and is the
//! `semantica` binary. Today it only reports its version; `semantica serve` and the CLI
//! subcommands arrive with the daemon (see ARCHITECTURE.md).

use std::process::ExitCode;

const USAGE: &str = "usage: semantica --version\n\nThe daemon (`semantica serve`) and the CLI are not built yet.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-V") => {
            println!("semantica {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help") | Some("-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
