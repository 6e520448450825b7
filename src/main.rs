//! The `deepnet` command: a thin shell over the library (see `cli/`).

mod cli;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`deepnet summary vgg16 | head`)
    // would panic; the default action ends the process quietly, as other Unix tools do.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    deepnet::ops::tune_allocator();
    cli::run()
}
