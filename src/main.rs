//! The `oidc-broker` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use oidc_broker::clock::SystemClock;
use oidc_broker::{App, config};

mod operator;

// The session check allocates a little per request; mimalloc keeps that cheap under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "oidc-broker",
    version,
    about = "An OpenID Connect federation broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Serve {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration and print every problem (exit status 1 when there is one), then
    /// contact each provider and print warnings (its discovery failing, refresh tokens that logout
    /// cannot revoke).
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
        /// Only validate the file; contact no provider.
        #[arg(long)]
        offline: bool,
    },
    /// Keys that seal provider tokens at rest.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Users' sessions: list and revoke them (straight in the store; no broker needs to run).
    Sessions {
        #[command(subcommand)]
        command: operator::SessionsCommand,
    },
    /// Local users and their linked provider identities.
    Users {
        #[command(subcommand)]
        command: operator::UsersCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new random 256-bit key and how to configure it.
    Generate {
        /// The key's id in the ring.
        #[arg(long, default_value = "k1")]
        id: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config, offline } => match config::load(&config, std::env::vars()) {
            Ok(c) => {
                println!(
                    "{}: ok ({} provider(s): {})",
                    config.display(),
                    c.providers.len(),
                    c.providers.keys().cloned().collect::<Vec<_>>().join(", ")
                );
                if !offline {
                    check_providers(&c);
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprint!("{}: {e}", config.display());
                ExitCode::FAILURE
            }
        },
        Command::Keys {
            command: KeysCommand::Generate { id },
        } => match oidc_broker::tokens::seal::generate_key() {
            Ok(key) => {
                println!(
                    "# A new key for sealing provider tokens. Keep it secret; pass it by environment:"
                );
                println!("BROKER_KEYS__RING__{}={key}", id.to_ascii_uppercase());
                println!("# and name it as the current key in the configuration:");
                println!("#   [keys]");
                println!("#   current = \"{id}\"");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cannot generate a key: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Sessions { command } => operator::run(operator::Operation::Sessions(command)),
        Command::Users { command } => operator::run(operator::Operation::Users(command)),
        Command::Serve { config } => {
            let (cfg, runtime) = match operator::config_and_runtime(&config) {
                Ok(both) => both,
                Err(code) => return code,
            };
            let output = oidc_broker::log_output::LogOutput::start();
            init_tracing(&cfg.log, output.clone());
            let served = runtime.block_on(serve(cfg));
            // The access log's last lines.
            output.flush();
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("oidc-broker: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Discovers every provider as the broker would and prints what it finds: warnings only (the
/// file is valid; a provider may just be out of reach from here), so the exit status stays 0.
fn check_providers(c: &config::Config) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warning: providers not checked: {e}");
            return;
        }
    };
    let http = match oidc_broker::provider_http_client(c) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("warning: providers not checked: {e}");
            return;
        }
    };
    let registry = oidc_broker::providers::ProviderRegistry::new(
        c,
        http,
        Arc::new(SystemClock),
        &Default::default(),
    );
    let checks = runtime.block_on(registry.check_all(std::time::Duration::from_secs(15)));
    for (id, check) in checks {
        match &check.error {
            Some(e) => eprintln!("warning: providers.{id}: {e}"),
            None => println!("providers.{id}: discovery ok"),
        }
        for w in &check.warnings {
            eprintln!("warning: providers.{id}: {w}");
        }
    }
}

async fn serve(cfg: config::Config) -> Result<(), Box<dyn std::error::Error>> {
    let listen = cfg.server.listen;
    let public = cfg.server.url("/");
    let banner = cfg.log.format == config::LogFormat::Text;
    let app = App::build(cfg, Arc::new(SystemClock)).await?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(%listen, "oidc-broker listening");
    // For a person at a terminal; a JSON log stays JSON from its first line.
    if banner {
        println!("oidc-broker is listening on {listen}. Open {public} in a browser to sign in.");
    }
    app.run(listener, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// `[log]`: the format, and the level unless `BROKER_LOG` (or `RUST_LOG`) says otherwise. The access
/// log's lines carry the target `access`, so `BROKER_LOG="info,access=off"` silences them alone
/// (and are buffered briefly: `log_output`).
fn init_tracing(log: &config::LogConfig, output: oidc_broker::log_output::LogOutput) {
    let filter = std::env::var("BROKER_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        // tower-sessions opens an INFO span around every session read and write: at the default
        // level each would be allocated and formatted on the session check's path, to say nothing
        // an operator needs (its errors are still logged).
        .unwrap_or_else(|_| {
            format!(
                "{},sqlx=warn,tower_sessions=warn,tower_sessions_core=warn",
                log.level
            )
        });
    // Colours only for a person at a terminal, not in journald or a log file.
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_target(false)
        .with_writer(output.clone())
        .with_ansi(terminal);
    let json = log.format == config::LogFormat::Json;
    if json {
        builder.json().flatten_event(true).init();
    } else {
        builder.init();
    }
    // Access lines are formatted by `log_output` itself, as the formatter above would write them
    // (colours aside: a terminal keeps the formatter's).
    if !terminal {
        oidc_broker::log_output::install(output, json);
    }
}
