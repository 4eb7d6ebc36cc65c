//! What each subcommand does once its arguments are parsed.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or bad configuration.

use crate::cli::{BenchArgs, CertArgs, Cli, Command, Workload};
use crate::config::{Config, ConfigError};
use crate::node::{self, Mode, NodeError};
use std::process::ExitCode;

/// Exit code for bad flags or configuration (the same code clap uses for usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code for a failure at run time.
pub const EXIT_FAILURE: u8 = 1;

/// Log to stderr; `RUST_LOG` picks levels (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The command line could not be parsed: help and version requests are printed as clap
/// renders them; a usage error is one line with a hint, and exit code 2.
pub fn parse_failed(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let whole = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if whole {
        let _ = e.print();
        return match e.use_stderr() {
            true => ExitCode::from(EXIT_USAGE),
            false => ExitCode::SUCCESS,
        };
    }
    let args: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    eprintln!("{}", crate::cli::error_line(&e, &args));
    ExitCode::from(EXIT_USAGE)
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Local(args) => with_config(args.to_config(), args.common.dump_config, |c| {
            node_exit(node::run(c, Mode::Local))
        }),
        Command::Node(args) => with_config(args.to_config(), args.common.dump_config, |c| {
            node_exit(node::run_with(c, Mode::Node, args.standby))
        }),
        Command::Bench(args) => bench(&args),
        Command::DeclareLost(args) => with_config(args.to_config(), args.common.dump_config, |c| {
            match node::operator::declare_lost(&c, &args.node) {
                Ok(report) => {
                    println!("{report}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }),
        Command::Cert(args) => cert(&args),
        Command::Worker(args) => match crate::pyrt::worker::run(&args.options()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(cause = %e, "python worker failed");
                ExitCode::from(EXIT_FAILURE)
            }
        },
    }
}

/// Report a config error in one line, or print it (`--dump-config`), or go on with it.
fn with_config(
    config: Result<Config, ConfigError>,
    dump: bool,
    go: impl FnOnce(Config) -> ExitCode,
) -> ExitCode {
    match config {
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
        Ok(c) if dump => {
            print!("{}", c.dump());
            ExitCode::SUCCESS
        }
        Ok(c) => go(c),
    }
}

/// The exit code of a node that ran (`node`, `local`), saying why in one line if it failed.
fn node_exit(outcome: Result<(), NodeError>) -> ExitCode {
    let Err(e) = outcome else {
        return ExitCode::SUCCESS;
    };
    eprintln!("error: {e}");
    match e {
        NodeError::NoSecret
        | NodeError::Start {
            source: node::RoleError::NoCluster,
            ..
        } => ExitCode::from(EXIT_USAGE),
        NodeError::Start { .. }
        | NodeError::NotReady(_)
        | NodeError::Storage(_)
        | NodeError::Standby(_)
        | NodeError::Token(_) => ExitCode::from(EXIT_FAILURE),
    }
}

/// Write a test CA and a server certificate, and say how to use them.
fn cert(args: &CertArgs) -> ExitCode {
    match crate::actors::gateway::tls::write_test_certificates(&args.out, &args.hosts) {
        Ok(files) => {
            println!(
                "wrote {ca} (clients trust it: ca_file= or CLOUDBURST_CA_FILE), {cert} and {key} (--tls-cert {cert} --tls-key {key}) for {hosts}",
                ca = files.ca.display(),
                cert = files.cert.display(),
                key = files.key.display(),
                hosts = args.hosts.join(",")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn bench(args: &BenchArgs) -> ExitCode {
    let outcome = match args.workload {
        Workload::Lattice => crate::bench::lattice::run(args),
        Workload::Transport => crate::bench::transport::run(args),
        Workload::Kvs => crate::bench::kvs::run(args),
        Workload::Compose => crate::bench::compose::run(args),
        Workload::Consistency => crate::bench::consistency::run(args),
        Workload::Client => crate::bench::client::run(args),
        Workload::Faults => crate::bench::client::faults(args),
        Workload::Autoscale => crate::bench::client::autoscale(args),
        Workload::KvsElastic => crate::bench::client::kvs_elastic(args),
        Workload::Python => crate::pyrt::bench::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: benchmark failed: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
