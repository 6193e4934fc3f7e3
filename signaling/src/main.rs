//! The `giaoban` binary: parse the command line, load the config, set up
//! logging, run the command. Everything else lives in the `signaling` library.

use anyhow::Context as _;
use clap::Parser as _;
use signaling::cli::{self, Cli, Command};
use signaling::config::{Config, LogFormat};

fn init_logging(config: &Config, serve: bool) {
    let level = if serve {
        config.log.level.as_str()
    } else {
        "warn"
    };
    // The WebRTC stack logs every connection's life at info and warns about
    // harmless DTLS extensions it does not know: keep it quiet unless the
    // configured filter names it.
    let default = if level.contains("rtc") {
        level.to_owned()
    } else {
        format!("{level},rtc=warn,rtc_ice=warn,rtc_dtls=error")
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, not for the journal or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if exit_code(&e).is_some() => {
            // `verify` printed its report; its code says the verdict.
            std::process::ExitCode::from(exit_code(&e).unwrap_or(1))
        }
        Err(e) => {
            // One line with the causes, no backtrace: this is for operators.
            eprintln!("giaoban: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The exit code a command asked for (`verify`), if that is the error.
fn exit_code(e: &anyhow::Error) -> Option<u8> {
    match e.downcast_ref::<cli::CliError>() {
        Some(cli::CliError::Exit(code)) => u8::try_from(*code).ok(),
        _ => None,
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("loading the configuration")?;
    init_logging(&config, cli.is_serve());
    match cli.command {
        Command::Serve => signaling::serve(config, cli::shutdown_signal())
            .await
            .context("the server failed")?,
        command => cli::run_command(command, &config).await?,
    }
    Ok(())
}
