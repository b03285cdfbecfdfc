//! Standard output for every command: [`outln!`] and [`out!`] in place of `println!` and
//! `print!`. A reader that went away (`sasrelay findings … | head -1`) ends the process at
//! once with status 0, as `head` and the shell expect, where `println!` panics ("failed
//! printing to stdout", exit 101): Rust ignores SIGPIPE, so the closed pipe arrives as an
//! EPIPE error on the next write. Any other write error (a full disk behind `>`) ends it with
//! status 1 and says so on stderr.
//!
//! `cli/mod.rs` denies `clippy::print_stdout`, so a `println!` cannot creep back in.

use std::io::{ErrorKind, StdoutLock, Write};

/// Writes formatted text to stdout, then a newline, like `println!`; see [`write`].
macro_rules! outln {
    () => {
        $crate::cli::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes formatted text to stdout, like `print!`; see [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!($($arg)*))
    };
}

pub(crate) use {out, outln};

/// Writes `text` to stdout and flushes it, so a closed pipe is noticed here, at the write that
/// met it. A closed pipe exits 0; any other failure exits 1 after saying why.
pub(crate) fn write(text: std::fmt::Arguments<'_>) {
    emit(|out| out.write_fmt(text));
}

/// Writes `bytes` (a generated script or page) to stdout; as [`write`].
pub(crate) fn write_bytes(bytes: &[u8]) {
    emit(|out| out.write_all(bytes));
}

fn emit(put: impl FnOnce(&mut StdoutLock<'static>) -> std::io::Result<()>) {
    let mut out = std::io::stdout().lock();
    let written = put(&mut out).and_then(|()| out.flush());
    // Unlocked before exiting: the exit flushes stdout too.
    drop(out);
    if let Err(e) = written {
        quit(&e);
    }
}

/// Ends the process after a failed write to stdout: quietly with 0 when the reader is gone,
/// else with 1 and the reason.
fn quit(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1)
}
