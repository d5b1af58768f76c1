/// mimalloc, not the system allocator: a request allocates and frees many small buffers
/// across threads, and glibc's malloc took about a tenth of an enqueue's CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    ai_batch::cli::run().await
}
