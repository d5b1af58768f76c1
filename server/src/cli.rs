//! The `ai-batch` command line: `serve` (default) and the operator commands.

use app::api::Role;
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::store::SqliteStore;
use crate::{access, serve};

#[derive(Parser)]
#[command(
    name = "ai-batch",
    version,
    about = "Queue AI jobs and run them through Anthropic Message Batches at half price."
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service: REST API, dashboard and (later) the batch scheduler.
    Serve,
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a user if needed and a new token for it; the token is the last line printed.
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
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
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(cli.config).await,
        Command::Token(TokenCommand::Create { user, role }) => {
            let store = SqliteStore::connect(&serve::sqlite_url(&cli.config.database_url)?).await?;
            let issued = access::issue_token(&store, &user, role.into()).await?;
            println!(
                "Created a token for {} ({}). It is shown only this once:",
                issued.user.name, issued.user.role
            );
            println!("{}", issued.plain);
            Ok(())
        }
    }
}
