//! The `weft` binary: `start` runs the daemon, `devnet` runs several nodes
//! in one process, and every other command is a thin client of a running
//! node's HTTP API.
//!
//! Errors end the process with exit code 1 and one line on stderr.

#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod app;
mod cli;
mod client;
mod commands;
mod content;
mod daemon;
mod ledger;
mod pubsub;
mod ui;

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli));
    // Don't wait on stray blocking tasks at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, without repeating a cause that the
/// message already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn,libp2p_kad=error,weft=info,weft_node=info,weft_net=info",
        1 => "info,weft=debug,weft_node=debug,weft_net=debug",
        _ => "debug,weft=trace,weft_node=trace,weft_net=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// The data dir from the flag/env, or the platform's default.
fn data_dir(cli: &Cli) -> anyhow::Result<PathBuf> {
    if let Some(d) = &cli.data_dir {
        return Ok(d.clone());
    }
    directories::ProjectDirs::from("", "", "weft")
        .map(|p| p.data_dir().to_owned())
        .ok_or_else(|| anyhow::anyhow!("cannot find a default data dir; pass --data-dir DIR"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = data_dir(&cli)?;
    match &cli.command {
        Command::Start(args) => daemon::start(&cli, dir, args).await,
        Command::Devnet(args) => daemon::devnet(&cli, args).await,
        Command::Ledger(command) => ledger::run(&cli, &dir, command).await,
        Command::Pub { topic, message } => {
            pubsub::publish(&cli, &dir, topic, message.as_deref()).await
        }
        Command::Sub { topic } => pubsub::subscribe(&cli, &dir, topic).await,
        Command::Ui(args) => ui::run(&cli, &dir, args).await,
        Command::App(command) => app::run(&cli, &dir, command).await,
        other => {
            commands::validate(other)?;
            let client = client::Client::connect(&dir, cli.api.as_deref(), cli.token.as_deref())?;
            commands::run(&client, other, cli.json).await
        }
    }
}
