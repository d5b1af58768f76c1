#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ai_batch::cli::run().await
}
