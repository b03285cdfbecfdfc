//! The one step from a configuration file to what the daemon starts with, before the store or
//! the network: every sink built with its secrets, every custom template rendered against the
//! samples, the admin token read, and each source's credentials tried against the environment.
//!
//! `sasrelay check` runs [`load`] and stops; `sasrelay run` runs [`load`] and starts the daemon
//! on its [`Built`]. So a file one accepts, the other starts with, and what one refuses, the
//! other refuses: with the same messages (`file:line:col: key: message`), every problem at once
//! (the file's own errors and the sinks' secrets together), and exit 78. `run` never starts
//! half-configured.
//!
//! A source whose credentials cannot be loaded now (an unset env var, a token file not yet
//! mounted) is a warning, not an error, in both: `run` starts, retries the source and reports it
//! (it reads nothing until its credentials load), because a refused start would also silence
//! every other source and the sinks that tell the operator. `check --online` fails on it.

use std::path::Path;

use crate::config::{Checked, ConfigError, ConfigErrors, Settings, StateSettings};
use crate::credentials::env::Env;
use crate::secret::Secret;
use crate::sinks::Sink;

/// What the daemon starts with: the settings and everything built from them.
#[derive(Debug)]
pub struct Built {
    /// The checked settings.
    pub settings: Settings,
    /// `[state]` (present: `run` needs it).
    pub state: StateSettings,
    /// Every sink, built with its secrets, in file order (at least one).
    pub sinks: Vec<Sink>,
    /// `[admin] token`, read, when the admin API listens with one.
    pub admin_token: Option<Secret>,
    /// `[health] heartbeat_url`, read and checked, when there is one.
    pub heartbeat: Option<reqwest::Url>,
    /// What does not stop the daemon: the file's warnings (a shadowed route…) and each source
    /// whose credentials cannot be loaded now, in file order.
    pub warnings: Vec<ConfigError>,
}

/// Reads, checks and builds the configuration at `path`, secrets read through `env`; every
/// problem at once when it cannot be started with.
pub fn load(path: &Path, env: &dyn Env) -> Result<Built, ConfigErrors> {
    build(crate::config::check_file(path), env)
}

/// Builds what `checked` describes (the parts that passed), adding the problems found to the
/// file's own; the result when there are none.
pub fn build(checked: Checked, env: &dyn Env) -> Result<Built, ConfigErrors> {
    let Checked {
        settings,
        mut errors,
    } = checked;
    require_sections(&settings, &mut errors);
    let sinks = build_sinks(&settings, env, &mut errors);
    let admin_token = admin_token(&settings, env, &mut errors);
    let heartbeat = heartbeat_url(&settings, env, &mut errors);
    errors.extend(source_errors(&settings));
    let mut warnings = settings.warnings.clone();
    warnings.extend(source_warnings(&settings, env));
    warnings.sort_by_key(|w| (w.line, w.column));
    errors.sort_by_key(|e| (e.line, e.column));
    match settings.state.clone() {
        Some(state) if errors.is_empty() => Ok(Built {
            settings,
            state,
            sinks,
            admin_token,
            heartbeat,
            warnings,
        }),
        _ => Err(ConfigErrors(errors)),
    }
}

/// `[state]` and at least one `[[sink]]`: absent is an error; present but wrong was reported
/// with the file's errors already.
fn require_sections(settings: &Settings, errors: &mut Vec<ConfigError>) {
    let reported = |errors: &[ConfigError], table: &str| {
        errors.iter().any(|e| {
            e.key
                .strip_prefix(table)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    };
    if settings.state.is_none() && !reported(errors, "state") {
        errors.push(settings.positions.error(
            "state",
            "no [state] section: `run` needs one, e.g. [state] directory = \"/var/lib/sasrelay\""
                .into(),
        ));
    }
    if settings.sinks.is_empty() && !reported(errors, "sink") {
        errors.push(settings.positions.error(
            "sink",
            "no [[sink]] configured: findings would have nowhere to go".into(),
        ));
    }
}

/// Every sink built as the daemon builds it; each problem (every secret that cannot be read,
/// a value its platform refuses, a custom template that does not render the samples) placed
/// at its key.
fn build_sinks(settings: &Settings, env: &dyn Env, errors: &mut Vec<ConfigError>) -> Vec<Sink> {
    let mut sinks = Vec::new();
    for config in &settings.sinks {
        let path = settings.positions.sink(&config.name);
        let mut problem = |key: &str, message: String| {
            let key = match key {
                "" => path.clone(),
                k => format!("{path}.{k}"),
            };
            let message = format!("sink {:?}: {message}", config.name);
            errors.push(settings.positions.error(&key, message));
        };
        let sink = match Sink::build_checked(config, |k| env.var(k)) {
            Ok(sink) => sink,
            Err(problems) => {
                for (key, message) in problems {
                    problem(&key, message);
                }
                continue;
            }
        };
        for (key, kind, file) in config.templates() {
            let rendered = std::fs::read_to_string(file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))
                .and_then(|text| crate::render::check_template(kind, &text));
            if let Err(e) = rendered {
                problem(key, e);
            }
        }
        sinks.push(sink);
    }
    sinks
}

/// `[admin] token`, read now when the admin API listens, so a missing token file stops the
/// start rather than leaving the API open or closed by surprise.
fn admin_token(
    settings: &Settings,
    env: &dyn Env,
    errors: &mut Vec<ConfigError>,
) -> Option<Secret> {
    let token = settings.admin.token.as_ref()?;
    settings.admin.listen?;
    match token.resolve_with(|k| env.var(k)) {
        Ok(secret) => Some(secret),
        Err(e) => {
            let message = format!("the admin API's token ({}): {e}", token.describe());
            errors.push(settings.positions.error("admin.token", message));
            None
        }
    }
}

/// `[health] heartbeat_url`, read now: a secret that cannot be read, or whose URL is not one
/// sasrelay sends to, stops the start. An inline URL was checked with the file.
fn heartbeat_url(
    settings: &Settings,
    env: &dyn Env,
    errors: &mut Vec<ConfigError>,
) -> Option<reqwest::Url> {
    let url = settings.health.heartbeat_url.as_ref()?;
    let checked = url
        .resolve_with(&|k| env.var(k))
        .and_then(|text| crate::sinks::http::parse_url(text.expose(), false, url.is_secret()));
    match checked {
        Ok(u) => Some(u),
        Err(e) => {
            if url.is_secret() {
                let message = format!("the heartbeat URL: {e}");
                errors.push(settings.positions.error("health.heartbeat_url", message));
            }
            None
        }
    }
}

/// Each source whose credentials config is wrong whatever the environment holds (a value out
/// of range, a malformed URL), as an error at its `credentials` key.
fn source_errors(settings: &Settings) -> Vec<ConfigError> {
    settings
        .sources
        .iter()
        .filter_map(|s| {
            let e = s.credentials.check_static().err()?;
            let key = format!("{}.credentials", settings.positions.source(&s.name));
            Some(
                settings
                    .positions
                    .error(&key, format!("source {:?}: {e}", s.name)),
            )
        })
        .collect()
}

/// Each source whose credentials cannot be loaded from the environment now, as a warning at
/// its `credentials` key (those with a static problem are errors already).
fn source_warnings(settings: &Settings, env: &dyn Env) -> Vec<ConfigError> {
    settings
        .sources
        .iter()
        .filter(|s| s.credentials.check_static().is_ok())
        .filter_map(|s| {
            let e = s.credentials.check_offline(env).err()?;
            let key = format!("{}.credentials", settings.positions.source(&s.name));
            let message = format!(
                "source {:?} cannot load its credentials now: {e}; `run` starts anyway and retries, and the source reads nothing until they load",
                s.name
            );
            Some(settings.positions.error(&key, message))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::env::MapEnv;

    const SOURCE: &str = "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"access_key\", access_key_id = \"LTAI\", access_key_secret = { env = \"SK\" } }\n\n[state]\ndirectory = \"s\"\n\n";
    const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn built(text: &str, env: &[(&str, &str)]) -> Result<Built, ConfigErrors> {
        let env: MapEnv = env.iter().copied().collect();
        build(crate::config::check(Path::new("t.toml"), text), &env)
    }

    fn keys(errs: &ConfigErrors) -> Vec<&str> {
        errs.0.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn every_sink_secret_problem_is_reported_at_its_key_with_the_file_errors() {
        let text = format!(
            "{SOURCE}[[sink]]\nname = \"soc\"\ntype = \"webhook\"\nurl = {{ env = \"URL\" }}\nsigning_secret = [{{ env = \"A\" }}, {{ env = \"B\" }}]\n\n[[sink]]\nname = \"audit\"\ntype = \"webhook\"\nurl = \"https://h.example/x\"\nsigning_secret = {{ env = \"BAD\" }}\n\n[[sink]]\nname = \"x\"\ntype = \"stdout\"\nformt = \"json\"\n"
        );
        let errs = built(
            &text,
            &[("SK", "s"), ("A", WHSEC), ("BAD", "whsec_dG9v!!c2hvcnQ=")],
        )
        .unwrap_err();
        assert_eq!(
            keys(&errs),
            [
                "sink[0].url",
                "sink[0].signing_secret[1]",
                "sink[1].signing_secret",
                "sink[2].formt"
            ],
            "{errs}"
        );
        let url = &errs.0[0];
        let at = text.find("{ env = \"URL\" }").unwrap();
        let line = text[..at].matches('\n').count() + 1;
        assert_eq!((url.line, url.column), (line, 7), "{url}");
        assert!(
            url.message
                .starts_with("sink \"soc\": environment variable URL"),
            "{url}"
        );
        assert!(errs.0[2].message.contains("whsec_"), "{}", errs.0[2]);
        assert!(!errs.to_string().contains("dG9v"), "{errs}");
        assert!(
            errs.0[3].message.contains("did you mean `format`?"),
            "{}",
            errs.0[3]
        );
    }

    #[test]
    fn a_credentials_config_wrong_whatever_the_environment_is_an_error() {
        for (creds, needle) in [
            (
                r#"{ type = "rrsa", duration = "1m", sts_endpoint = "ftp://sts.example" }"#,
                "duration 60s is outside",
            ),
            (r#"{ type = "uri", uri = "not a url" }"#, "uri:"),
            (
                r#"{ type = "ecs_ram_role", role_name = "a/b" }"#,
                "role_name",
            ),
            (
                r#"{ type = "default", sts_endpoint = "gopher://x" }"#,
                "sts_endpoint",
            ),
        ] {
            let text = format!(
                "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = {creds}\n\n[state]\ndirectory = \"s\"\n\n[[sink]]\nname = \"out\"\ntype = \"stdout\"\n"
            );
            let errs = built(&text, &[])
                .err()
                .unwrap_or_else(|| panic!("{creds} passed"));
            assert_eq!(errs.0.len(), 1, "{errs}");
            assert_eq!(errs.0[0].key, "source[0].credentials", "{errs}");
            assert_eq!(errs.0[0].line, 4, "{errs}");
            assert!(errs.0[0].message.contains(needle), "{creds}: {errs}");
        }
        // Only the environment missing: a warning, not an error (the source retries).
        let text = "[[source]]\nname = \"prod\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"rrsa\" }\n\n[state]\ndirectory = \"s\"\n\n[[sink]]\nname = \"out\"\ntype = \"stdout\"\n";
        let ok = built(text, &[]).unwrap();
        assert_eq!(ok.warnings.len(), 1, "{:?}", ok.warnings);
    }

    #[test]
    fn a_source_without_its_credentials_is_a_warning_and_missing_sections_are_errors() {
        let text = format!("{SOURCE}[[sink]]\nname = \"out\"\ntype = \"stdout\"\n");
        let ok = built(&text, &[]).unwrap();
        assert_eq!(ok.sinks.len(), 1);
        assert_eq!(ok.warnings.len(), 1, "{:?}", ok.warnings);
        assert_eq!(ok.warnings[0].key, "source[0].credentials");
        assert!(ok.warnings[0].message.contains("SK"), "{}", ok.warnings[0]);
        assert!(built(&text, &[("SK", "s")]).unwrap().warnings.is_empty());

        let bare = "[[source]]\nname = \"a\"\nregion = \"cn-hangzhou\"\ncredentials = { type = \"env\" }\n";
        let errs = built(bare, &[]).unwrap_err();
        assert_eq!(keys(&errs), ["state", "sink"], "{errs}");
        assert!(
            errs.to_string().contains("t.toml: state: no [state]"),
            "{errs}"
        );
        // Present but wrong is reported once, as what is wrong.
        let wrong =
            format!("{bare}[state]\ndirectory = 1\n[[sink]]\nname = \"o\"\ntype = \"stdot\"\n");
        let errs = built(&wrong, &[]).unwrap_err();
        assert_eq!(keys(&errs), ["state.directory", "sink[0].type"], "{errs}");
        assert!(
            errs.0[1].message.contains("did you mean `stdout`?"),
            "{errs}"
        );
    }

    #[test]
    fn the_admin_token_and_templates_are_read_as_the_daemon_reads_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bad.md.j2"), "{{ event.titel }}\n").unwrap();
        let text = format!(
            "{SOURCE}[admin]\ntoken = {{ env = \"TOKEN\" }}\n\n[[sink]]\nname = \"dt\"\ntype = \"dingtalk\"\nurl = \"https://oapi.dingtalk.com/robot/send?access_token=t\"\nkeyword = \"SAS\"\ntemplate = \"bad.md.j2\"\n"
        );
        let env: MapEnv = [("SK", "s")].into_iter().collect();
        let errs = build(
            crate::config::check(&dir.path().join("c.toml"), &text),
            &env,
        )
        .unwrap_err();
        assert_eq!(keys(&errs), ["admin.token", "sink[0].template"], "{errs}");
        assert!(errs.0[1].message.contains("titel"), "{errs}");
    }
}
