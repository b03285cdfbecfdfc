//! `sasrelay man`: the man page in roff, generated from the same clap definitions as the
//! parser (every option with its help, default and environment variable). Printed for the top
//! command, or with `--dir DIR` written as one page per command: `sasrelay.1`,
//! `sasrelay-silence.1`, `sasrelay-silence-add.1` …, each listing its subcommands' pages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;

use super::Cli;
use super::out::outln;

/// `sasrelay man` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Write one page per command into DIR (created if needed) instead of printing the top
    /// command's page; prints each file written.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Runs `man`.
pub fn run(args: Args) -> ExitCode {
    let pages = pages();
    let Some(dir) = args.dir else {
        let (_, top) = &pages[0];
        super::out::write_bytes(top);
        return ExitCode::SUCCESS;
    };
    match write_pages(&dir, &pages) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Every page as (file name, roff), the top command's first, then each subcommand's, depth
/// first. Rendered into memory: writing to a `Vec` cannot fail.
pub fn pages() -> Vec<(String, Vec<u8>)> {
    // No `help` subcommand: it has no page of its own, so the top page must not list one.
    let mut top = Cli::command().disable_help_subcommand(true);
    // Building names each subcommand for its page (`sasrelay-silence`).
    top.build();
    let mut pages = Vec::new();
    add_pages(top, &mut pages);
    pages
}

fn add_pages(cmd: clap::Command, pages: &mut Vec<(String, Vec<u8>)>) {
    let subcommands: Vec<clap::Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let title = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_uppercase();
    let man = clap_mangen::Man::new(cmd).title(title);
    let mut roff = Vec::new();
    // Infallible: the writer is a Vec.
    let _ = man.render(&mut roff);
    pages.push((man.get_filename(), ascii(&roff)));
    for sub in subcommands {
        add_pages(sub, pages);
    }
}

/// `roff` with every character beyond ASCII as a groff escape (`×` → `\[u00D7]`): `man`
/// guesses a page's encoding from the locale, and under `LANG=C` raw UTF-8 comes out as
/// "invalid input character" warnings and mojibake.
fn ascii(roff: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(roff.len());
    for c in String::from_utf8_lossy(roff).chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            out.push_str(&format!("\\[u{:04X}]", u32::from(c)));
        }
    }
    out.into_bytes()
}

fn write_pages(dir: &Path, pages: &[(String, Vec<u8>)]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for (name, roff) in pages {
        let path = dir.join(name);
        std::fs::write(&path, roff).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        outln!("{}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_ascii_with_groff_escapes() {
        assert_eq!(ascii("a × b — c".as_bytes()), b"a \\[u00D7] b \\[u2014] c");
        assert_eq!(ascii("\u{1F600}".as_bytes()), b"\\[u1F600]");
        for (name, roff) in pages() {
            assert!(roff.is_ascii(), "{name}");
        }
    }
}
