//! The `ordergate` binary: parse, set up logs, bind, serve.

use anyhow::Context;
use clap::Parser;
use ordergate::cli::{Cli, Command};
use ordergate::{server, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing();
    match cli.command {
        Command::Serve(args) => {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            server::serve(args, listener, server::shutdown_signal()).await
        }
    }
}
