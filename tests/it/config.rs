//! Every file in `config/` is a valid configuration: examples that do not parse are worse than
//! none.

use std::path::Path;

#[test]
fn every_config_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let settings = sasrelay::config::load(&path)
                .unwrap_or_else(|e| panic!("{} does not parse:\n{e}", path.display()));
            assert!(!settings.sources.is_empty(), "{}", path.display());
            assert!(
                settings.state.is_some(),
                "{}: `run` needs [state]",
                path.display()
            );
            assert!(
                !settings.sinks.is_empty(),
                "{}: `run` needs a sink",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(
        seen >= 2,
        "config/ holds the example and the simulator config"
    );
}

#[test]
fn the_example_documents_every_source_key() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sasrelay.example.toml"),
    )
    .unwrap();
    for key in [
        "name",
        "region",
        "vpc_endpoint",
        "endpoint",
        "clusters",
        "domains",
        "vulnerability_types",
        "lang",
        "signature",
        "console_base",
        "connect_timeout",
        "timeout",
        "max_pages",
        "max_response_bytes",
        "max_attempts",
        "retry_initial_delay",
        "retry_max_delay",
        "credentials",
        "initial_sync",
        "poll",
        "events",
        "directory",
        "resolved_retention",
        "guard_ttl",
        "shutdown_grace",
        "retry_max_delay",
        "max_age",
        "allow_unauthenticated",
        "hosts",
        "header_read_timeout",
        "idle_timeout",
        "max_connections",
        "max_silence",
        "blind_after",
        "sinks",
        "stalled_after",
        "credentials_warning",
        "heartbeat_url",
        "heartbeat_interval",
        "url",
        "allow_http",
        "signing_secret",
        "github_signing_secret",
        "headers",
        "max_response_bytes",
        "min_severity",
        "format",
        "path",
        "fsync",
        "secret",
        "robots",
        "keyword",
        "msg_type",
        "timezone",
        "at_mobiles",
        "at_user_ids",
        "at_all",
        "mention_min_severity",
        "template",
        "console_links",
        "rate_limit",
        "fold_after",
        "fold_max_members",
        "webhook_url",
        "token",
        "channel",
        "api_base",
        "mentions",
        "colour_bar",
        "buttons",
        "host",
        "port",
        "tls",
        "username",
        "password",
        "from",
        "to",
        "cc",
        "ca_file",
        "subject_template",
        "text_template",
        "html_template",
        "pool_size",
        "type = \"access_key\"",
        "type = \"env\"",
        "type = \"rrsa\"",
        "type = \"ecs_ram_role\"",
        "type = \"uri\"",
        "type = \"default\"",
    ] {
        let documented = if key.starts_with("type") {
            text.contains(key)
        } else {
            text.lines().any(|l| {
                l.trim_start_matches('#')
                    .trim_start()
                    .starts_with(&format!("{key} ="))
            })
        };
        assert!(
            documented,
            "config/sasrelay.example.toml does not document `{key}`"
        );
    }
}
