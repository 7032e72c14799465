//! The `ordergate` binary: parse, set up logs, bind, serve.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use ordergate::cli::{Cli, Command};
use ordergate::{server, telemetry};

// glibc's malloc showed as ~10% of the CPU of a request under load (tasks allocate
// on one thread and free on another); mimalloc handles that pattern far better.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init_tracing();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint!("{}", telemetry::error_report(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            server::serve(args, listener, server::shutdown_signal()).await
        }
        Command::Bench(args) => {
            let json = args.json;
            let report = ordergate_bench::run(args).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                report.print_text();
            }
            if report.violations > 0 {
                anyhow::bail!(
                    "{} keys broke the one-order-per-key invariant",
                    report.violations
                );
            }
            if report.keys_checked == 0 {
                anyhow::bail!(
                    "nothing was verified: no key got an order (first error: {})",
                    report.first_error.as_deref().unwrap_or("none seen")
                );
            }
            Ok(())
        }
    }
}
