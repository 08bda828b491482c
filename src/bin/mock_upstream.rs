//! `mock-upstream`: the mock upstream (OpenAI, Anthropic and Gemini APIs) with scripted faults, stand-alone.

use apiproxy::mock::{MockConfig, spawn};
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "A mock upstream speaking the OpenAI, Anthropic and Gemini APIs, with scripted faults (PUT /_mock/fault)"
)]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port; the bound address is printed on stdout.
    #[arg(long, default_value_t = 9001)]
    port: u16,
    #[arg(long, default_value = "mock")]
    name: String,
    /// Comma-separated model ids to list.
    #[arg(long, default_value = "mock-model")]
    models: String,
    #[arg(long, default_value_t = 8)]
    reply_words: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let config = MockConfig {
        name: args.name,
        models: args
            .models
            .split(',')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect(),
        reply_words: args.reply_words.max(3),
    };
    match spawn(&format!("{}:{}", args.host, args.port), config).await {
        Ok(addr) => {
            println!("mock-upstream listening on http://{addr}");
            let _ = tokio::signal::ctrl_c().await;
        }
        Err(e) => {
            eprintln!("mock-upstream: {e}");
            std::process::exit(1);
        }
    }
}
