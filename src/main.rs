//! The `cloudburst` binary: parse the command line, load and validate the config, start
//! what was asked for. Everything else lives in the library (`src/lib.rs` lists it).

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    cloudburst::app::init_tracing();
    match cloudburst::cli::Cli::try_parse() {
        Ok(cli) => cloudburst::app::run(cli),
        Err(e) => cloudburst::app::parse_failed(e),
    }
}
