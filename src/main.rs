//! The `sasrelay` binary: everything lives in the library; this only tunes the allocator,
//! installs the start-up memory release (`image`, the only other `unsafe` code) and hands over
//! to the CLI.

mod image;

/// mimalloc's `mi_option_purge_delay` (`mimalloc.h`, v2: the 16th option, 10 ms by default and
/// ten times that for whole arenas).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[allow(unsafe_code)]
fn main() -> std::process::ExitCode {
    // Freed memory goes back to the system at once, not after mimalloc's delay: a poll or a
    // delivery burst frees pages by the thousand, and with the delay they all count in the
    // peak RSS together (a 50,000-alert first start peaked about 15 MiB higher; README,
    // "How Security Center is read").
    // SAFETY: `mi_option_set` stores an option's value, which mimalloc reads when it next
    // decides to purge; it may be called at any time, from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    sasrelay::daemon::memory::install(image::release);
    sasrelay::cli::main()
}
