//! What the chat and mail sinks ([`dingtalk`](super::dingtalk), [`feishu`](super::feishu),
//! [`wecom`](super::wecom), [`slack`](super::slack), [`email`](super::email)) share besides
//! HTTP ([`http`](super::http)) and rate limits ([`limit`](super::limit)): backlog folding
//! settings, custom template files, mention thresholds, list checks and serde defaults. What
//! only the group robots share (answer codes, "too large" memory, the single-URL poster) is in
//! [`robot`](super::robot).
//!
//! ## Backlog folding
//!
//! A sink that folds ([`Fold`]) lets the delivery worker merge a due backlog of single events
//! larger than `fold_after` into digests of at most `fold_max_members` (see
//! [`delivery`](crate::pipeline::delivery)), so a storm of findings becomes a few messages within
//! the platform's budget instead of hours of queue. [`Sink::build`](super::Sink::build) reads
//! the settings once; [`Sink::fold`](super::Sink::fold) returns them.

use std::path::{Path, PathBuf};

use crate::event::Payload;
use crate::finding::Severity;

/// Largest `fold_max_members`.
pub const MAX_FOLD_MEMBERS: usize = 100;
/// Largest custom template file, in bytes.
pub const MAX_TEMPLATE_BYTES: u64 = 256 * 1024;

/// How a sink lets the worker fold its backlog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Fold when more than this many single events are due.
    pub after: usize,
    /// Most members per folded digest.
    pub max_members: usize,
}

/// Checks `fold_after` / `fold_max_members`.
pub fn check_fold(after: usize, max_members: usize) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if after == 0 {
        p.push((
            "fold_after".to_string(),
            "must be at least 1 (a backlog of that many due events is sent one by one)".into(),
        ));
    }
    if !(2..=MAX_FOLD_MEMBERS).contains(&max_members) {
        p.push((
            "fold_max_members".to_string(),
            format!("must be between 2 and {MAX_FOLD_MEMBERS}"),
        ));
    }
    p
}

/// Reads a custom template file (`template = "path"`), bounded in size.
pub fn read_template(key: &str, path: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_TEMPLATE_BYTES {
        return Err(format!(
            "{key}: {} is larger than {MAX_TEMPLATE_BYTES} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("{key}: cannot read {}: {e}", path.display()))
}

/// Makes a relative template path relative to `base`.
pub fn anchor_path(path: &mut Option<PathBuf>, base: &Path) {
    if let Some(p) = path
        && p.is_relative()
    {
        *p = base.join(&*p);
    }
}

/// The highest finding severity in a payload (`None` for summaries only).
pub fn top_severity(payload: &Payload) -> Option<Severity> {
    payload
        .events()
        .iter()
        .filter_map(|e| e.finding.as_ref().map(|f| f.severity))
        .max()
}

/// Whether configured mentions apply to `payload`: its highest severity reaches `min`
/// (a payload without findings, a summary, only when `min` is `info`). A firing meta-event
/// always mentions (sasrelay cannot see, or cannot tell: someone must act); a resolved one
/// never does.
pub fn mentions_apply(payload: &Payload, min: Severity) -> bool {
    if let Payload::Health(h) = payload {
        return h.status == crate::event::HealthStatus::Firing;
    }
    top_severity(payload).unwrap_or(Severity::Info) >= min
}

/// Checks each entry of the list under `key` with `valid`; `what` says what an entry must be.
pub fn check_each(
    key: &str,
    list: &[String],
    valid: fn(&str) -> bool,
    what: &str,
) -> Vec<(String, String)> {
    list.iter()
        .enumerate()
        .filter(|(_, m)| !valid(m.trim()))
        .map(|(i, _)| (format!("{key}[{i}]"), format!("is not {what}")))
        .collect()
}

/// Reads the custom template file under `template`, if one is configured.
pub fn read_template_opt(path: Option<&Path>) -> Result<Option<String>, String> {
    path.map(|p| read_template("template", p)).transpose()
}

/// The serde default of `timezone` for the robots: `Asia/Shanghai`.
pub(super) fn default_zone() -> String {
    "Asia/Shanghai".into()
}
/// The serde default of `mention_min_severity`: `info` (every message mentions).
pub(super) fn info() -> Severity {
    Severity::Info
}
/// The serde default of switches that are on unless turned off.
pub(super) fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_checks_name_their_keys() {
        let keys: Vec<String> = check_fold(0, 1).into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["fold_after", "fold_max_members"]);
        assert!(check_fold(10, 20).is_empty());
    }
}
