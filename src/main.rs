//! The `deepnet` command: a thin shell over the library (see `cli/`).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod cli;

fn main() -> std::process::ExitCode {
    // Rust ignores SIGPIPE, so printing to a closed pipe (`deepnet summary vgg16 | head`)
    // would panic; the default action ends the process quietly, as other Unix tools do.
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // burn materialises a resumed optimizer state on its default device and moves it to each
    // parameter's device at the next step. With a GPU backend compiled in, that default is the
    // GPU: a CPU run resumed on a machine without a usable GPU would fail there. The CPU is the
    // default unless the user names another with burn's BURN_DEVICE.
    if std::env::var_os("BURN_DEVICE").is_none() {
        // SAFETY: set before any other thread starts.
        unsafe { std::env::set_var("BURN_DEVICE", "flex") };
    }
    deepnet::ops::tune_allocator();
    cli::run()
}
