//! `provider-sim`: run the Kraken/KillB/Carbn simulators standalone with the development
//! credentials (see `onboarding_gateway::sim`).
//!
//! ```text
//! provider-sim [--host 127.0.0.1] [--port 9000] [--webhook-base http://127.0.0.1:8080]
//!              [--review-delay-secs 5] [--public-base-url http://sim.example:9000] [--no-record]
//! ```
//! With `--webhook-base`, status webhooks go to `{base}/v1/webhooks/{provider}`. The hosted
//! verification pages the providers link to (`complianceUrl`, `onboarding_url`) are served by
//! the simulator at its listen address, or at `--public-base-url` when a browser reaches it
//! elsewhere (a container, a proxy). `--no-record` keeps no copy of requests and webhooks
//! (`/_sim/requests` stays empty), for long load runs.

use std::net::TcpListener;
use std::time::Duration;

use onboarding_gateway::domain::provider::ProviderId;
use onboarding_gateway::sim::{self, SimConfig, WebhookTargets};

const USAGE: &str =
    "usage: provider-sim [--host HOST] [--port PORT] [--webhook-base URL] [--review-delay-secs N] [--public-base-url URL] [--no-record]";

/// mimalloc, as the gateway uses: the simulator stands in for a remote provider but shares the
/// benchmark machine's cores with the gateway, so it should cost as little of them as it can.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::io::Result<()> {
    let mut host = "127.0.0.1".to_owned();
    let mut port: u16 = 9000;
    let mut config = SimConfig::development();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("{name} needs a value\n{USAGE}");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--host" => host = value("--host"),
            "--port" => {
                port = value("--port").parse().unwrap_or_else(|_| {
                    eprintln!("--port must be a number\n{USAGE}");
                    std::process::exit(2)
                })
            }
            "--webhook-base" => {
                config.webhook_targets = WebhookTargets::gateway(&value("--webhook-base"))
            }
            "--review-delay-secs" => {
                let secs: u64 = value("--review-delay-secs").parse().unwrap_or_else(|_| {
                    eprintln!("--review-delay-secs must be a number\n{USAGE}");
                    std::process::exit(2)
                });
                config.review_delay = Duration::from_secs(secs);
            }
            "--public-base-url" => config.public_base_url = Some(value("--public-base-url")),
            "--no-record" => config.record = false,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => {
                eprintln!("unknown argument {other}\n{USAGE}");
                std::process::exit(2)
            }
        }
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind((host.as_str(), port))?;
        let handle = sim::spawn(config.clone(), listener).await?;
        println!("provider-sim listening on {}", handle.base_url());
        if let Some(public) = handle.state().public_base_url() {
            println!("  hosted pages: {public}");
        }
        // Each provider's credentials, as its gateway section names them.
        for &id in ProviderId::ALL {
            let section = config.gateway_settings(id, handle.base_url());
            let credentials: Vec<String> = section
                .iter()
                .filter(|(key, _)| key.as_str() != "base_url")
                .map(|(key, value)| match value.as_str() {
                    Some(text) if text.contains('\n') => {
                        format!("{key}=<{} lines>", text.lines().count())
                    }
                    Some(text) => format!("{key}={text}"),
                    None => format!("{key}={value}"),
                })
                .collect();
            println!("  {id}: {}", credentials.join(" "));
        }
        println!(
            "  webhooks: {}",
            serde_json::to_string(&config.webhook_targets).unwrap_or_default()
        );
        tokio::signal::ctrl_c().await?;
        handle.stop().await;
        Ok(())
    })
}
