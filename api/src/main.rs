use clap::Parser;
use std::process::ExitCode;

// mimalloc (routing allocates a few small objects per order from many threads), with huge pages
// under the large arrays: see `omniroute::alloc`.
#[global_allocator]
static GLOBAL: omniroute::alloc::Allocator = omniroute::alloc::Allocator;

fn main() -> ExitCode {
    let cli = omniroute::cli::Cli::parse();
    if !matches!(cli.command, omniroute::cli::Command::Serve(_)) {
        // A run that ends: no memory goes back to the kernel only to be faulted in again.
        omniroute::alloc::keep_freed_memory();
    }
    match omniroute::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
