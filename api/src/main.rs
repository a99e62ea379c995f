use clap::Parser;
use std::process::ExitCode;

// mimalloc: routing allocates a few small objects per order from many threads.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = omniroute::cli::Cli::parse();
    match omniroute::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
