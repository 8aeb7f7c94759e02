use clap::Parser;

// mimalloc instead of glibc malloc: allocation was about a third of the time
// of batch ingest in profiles, and batch ingest ran about 60% faster with it
// (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    let cli = argus_webhooks::cli::Cli::parse();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(argus_webhooks::cli::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process. mimalloc marks its
/// large regions for them, so each new log buffer that sled allocated faulted
/// in and zeroed a fresh 2 MiB page. That stalled store flushes for about
/// 5 ms once or twice a second under fan-out. Without huge pages, batch
/// ingest was about a tenth faster and a 200,000-event backlog took about a
/// quarter less memory (docs/benchmarks.md).
#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes integer arguments only and changes a
    // flag of this process; it touches no memory of ours.
    let result = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if result != 0 {
        eprintln!(
            "warning: cannot turn transparent huge pages off: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() {}
