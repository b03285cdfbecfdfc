//! One test of this binary run again as a child process: the store's kill -9 writer, and the
//! disk-full test as root of its own user namespace.

use std::process::Command;

/// The command that runs exactly the test `name` of the module `module` (pass
/// `module_path!()`), output uncaptured so the parent can read it.
pub fn command(module: &str, name: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary's path"));
    cmd.args([
        &test_path(module, name),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}

/// libtest's name for a test: its module path without the crate's name.
fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}
