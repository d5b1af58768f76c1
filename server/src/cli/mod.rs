//! The `ai-batch` command line: `serve` (the default) and the operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;

mod remote;

use app::api::Role;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, EmulatorConfig};
use crate::pricing::PriceTable;
use crate::{access, emulator, serve, templates};

#[derive(Parser)]
#[command(
    name = "ai-batch",
    version,
    about = "Queue AI jobs and run them through Anthropic Message Batches at half price.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no command, `serve` runs with these settings.
    #[command(flatten)]
    serve: Config,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: REST API and dashboard.
    Serve(Box<Config>),
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the Anthropic Message Batches emulator on its own.
    Emulator(Box<EmulatorArgs>),
    /// Ask a running service to flush queued jobs into a batch.
    Flush(remote::FlushArgs),
    /// Ask a running service to poll a batch (or every open batch).
    Poll(remote::PollArgs),
    /// Print the request each job type sends for its example payload (JSON), to review prompts.
    Templates {
        #[arg(long, env = "AI_BATCH_PRICES", default_value = "config/prices.toml")]
        prices: PathBuf,
        /// Render each with an example shared context of about this many tokens (0: none).
        #[arg(long, default_value_t = 0)]
        context_tokens: usize,
        /// How long cached prefixes are written for.
        #[arg(long, value_enum, default_value_t = templates::CacheTtl::FiveMinutes)]
        cache_ttl: templates::CacheTtl,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a user if needed and a new token for it; the token is the last line printed.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "sqlite://data/ai-batch.db"
        )]
        database_url: String,
    },
}

#[derive(clap::Args)]
struct EmulatorArgs {
    #[arg(long, env = "AI_BATCH_EMULATOR_ADDR", default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// The price table whose models the emulator accepts.
    #[arg(long, env = "AI_BATCH_PRICES", default_value = "config/prices.toml")]
    prices: PathBuf,
    #[command(flatten)]
    emulator: EmulatorConfig,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Trader,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Trader => Role::Trader,
            RoleArg::Admin => Role::Admin,
        }
    }
}

pub async fn run() -> anyhow::Result<()> {
    // A missing .env file is normal; the environment and flags still apply.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    match cli.command {
        None => {
            serve::init_logging();
            serve::run(cli.serve).await
        }
        Some(Command::Serve(config)) => {
            serve::init_logging();
            serve::run(*config).await
        }
        Some(Command::Token(TokenCommand::Create {
            user,
            role,
            database_url,
        })) => {
            let store =
                serve::open_store(&database_url, 2, std::time::Duration::from_secs(10)).await?;
            let issued = access::issue_token(store.as_ref(), &user, role.into()).await?;
            println!(
                "Created a token for {} ({}). It is shown only this once:",
                issued.user.name, issued.user.role
            );
            println!("{}", issued.plain);
            Ok(())
        }
        Some(Command::Flush(args)) => remote::flush(args).await,
        Some(Command::Templates {
            prices,
            context_tokens,
            cache_ttl,
        }) => {
            let prices = PriceTable::load(&prices)?;
            let context = (context_tokens > 0).then(|| templates::SharedContext {
                id: "ctx_example".into(),
                name: "Example research note".into(),
                text: "Rates held; energy rallied; semis beat on margins. "
                    .repeat(context_tokens * 4 / 52 + 1)
                    .into(),
            });
            let mut out = Vec::new();
            for job_type in app::api::JobType::ALL {
                let payload = app::api::examples::example_payload(*job_type).to_string();
                let model = prices.model_for(*job_type);
                let plan = prices.cache_plan(model, cache_ttl);
                let rendered =
                    templates::render(*job_type, &payload, model, context.as_ref(), &plan);
                out.push(serde_json::json!({
                    "job_type": job_type,
                    "estimated_tokens": rendered.estimated_tokens,
                    "request": rendered.request("example"),
                }));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Some(Command::Poll(args)) => remote::poll(args).await,
        Some(Command::Emulator(args)) => {
            serve::init_logging();
            let prices = PriceTable::load(&args.prices)?;
            let settings = serve::emulator_settings(&args.emulator, &prices);
            let (addr, _, task) = emulator::start(args.addr, settings).await?;
            // Tests read this line to learn the port when started with port 0.
            println!("Emulator (Anthropic and OpenAI batch APIs) listening on http://{addr}");
            task.await?;
            Ok(())
        }
    }
}
