//! The minijinja environment every rendering uses: strict undefined, `trim_blocks` and
//! `lstrip_blocks`, escaping chosen by the template's name (so one environment serves every
//! output kind), the helper filters, and the built-in templates. A custom template that fails to
//! compile or render is replaced by the built-in one with a warning; a message is never dropped.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

use super::escape;
use super::{Lang, TemplateKind};
use crate::text::truncate_chars;

/// Name suffix → escaping. Unknown suffixes get plain-text escaping, never none.
fn auto_escape(name: &str) -> AutoEscape {
    let kind = TemplateKind::ALL
        .into_iter()
        .find(|k| name.ends_with(k.suffix()))
        .unwrap_or(TemplateKind::EmailText);
    AutoEscape::Custom(kind.escape_name().into())
}

/// Escapes `raw` for the escape mode `mode` (one of [`TemplateKind::escape_name`]).
fn escape_as(mode: &str, raw: &str) -> String {
    match mode {
        "dingtalk" => escape::dingtalk(raw),
        "feishu" => escape::feishu(raw),
        "wecom" => escape::wecom(raw),
        "slack" => escape::slack(raw),
        "html" => escape::html(raw),
        // "text", "subject" and anything else: the subject is made one line afterwards.
        _ => escape::text(raw),
    }
}

/// Prints every value escaped for the template's output kind; values marked safe (built by
/// sasrelay: URLs, colours, emoji) as they are; `none` as nothing.
fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return out
            .write_str(value.as_str().unwrap_or_default())
            .map_err(Error::from);
    }
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    let raw = value.to_string();
    let escaped = match state.auto_escape() {
        AutoEscape::Custom(mode) => escape_as(mode, &raw),
        AutoEscape::Html => escape::html(&raw),
        _ => escape::text(&raw),
    };
    out.write_str(&escaped).map_err(Error::from)
}

/// `{{ severity|severity_emoji }}`: 🔴 critical, 🟠 high, 🟡 medium, 🔵 low, ⚪ info; ✅ for
/// anything else (a summary).
pub fn severity_emoji(severity: &str) -> &'static str {
    match severity {
        "critical" => "🔴",
        "high" => "🟠",
        "medium" => "🟡",
        "low" => "🔵",
        "info" => "⚪",
        _ => "✅",
    }
}

/// `{{ severity|severity_color }}`: a `#RRGGBB` colour (Slack's colour bar, DingTalk `<font>`,
/// HTML).
pub fn severity_color(severity: &str) -> &'static str {
    match severity {
        "critical" => "#D00000",
        "high" => "#FF6A00",
        "medium" => "#FFA500",
        "low" => "#439FE0",
        "info" => "#9E9E9E",
        _ => "#2EB67D",
    }
}

fn filter_emoji(v: Value) -> Value {
    Value::from_safe_string(severity_emoji(v.as_str().unwrap_or("")).to_string())
}

fn filter_color(v: Value) -> Value {
    Value::from_safe_string(severity_color(v.as_str().unwrap_or("")).to_string())
}

/// `{{ t|localtime }}` / `{{ t|localtime("Asia/Shanghai") }}`: an RFC 3339 time as
/// `2024-05-01 16:00:00 CST` in the zone given, or the context's `tz`. `none` prints nothing.
fn filter_localtime(state: &State, v: Value, zone: Option<String>) -> Result<Value, Error> {
    if v.is_none() {
        return Ok(Value::from(""));
    }
    let zone = match zone {
        Some(z) => z,
        None => state
            .lookup("tz")
            .and_then(|z| z.as_str().map(str::to_string))
            .unwrap_or_else(|| "UTC".into()),
    };
    let s = v.as_str().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "localtime expects an RFC 3339 string",
        )
    })?;
    Ok(Value::from(localtime(s, &zone).map_err(|e| {
        Error::new(ErrorKind::InvalidOperation, format!("localtime: {e}"))
    })?))
}

/// `rfc3339` shown in the IANA zone `zone` as `YYYY-MM-DD HH:MM:SS ABBR`.
pub fn localtime(rfc3339: &str, zone: &str) -> Result<String, String> {
    let ts: jiff::Timestamp = rfc3339
        .parse()
        .map_err(|e| format!("bad time {rfc3339:?}: {e}"))?;
    let tz =
        jiff::tz::TimeZone::get(zone).map_err(|e| format!("unknown time zone {zone:?}: {e}"))?;
    Ok(ts
        .to_zoned_datetime(tz)
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string())
}

/// Whether `zone` is a time zone the bundled database knows.
pub fn valid_zone(zone: &str) -> bool {
    jiff::tz::TimeZone::get(zone).is_ok()
}

/// `{{ s|truncate(n) }}`: at most `n` characters, cut on a character boundary with `…`.
fn filter_truncate(v: Value, n: usize) -> Value {
    if v.is_none() {
        return v;
    }
    let cut = truncate_chars(&v.to_string(), n);
    if v.is_safe() {
        Value::from_safe_string(cut)
    } else {
        Value::from(cut)
    }
}

fn builtin_source(kind: TemplateKind, lang: Lang) -> &'static str {
    match (kind, lang) {
        (TemplateKind::DingTalk, Lang::En) => include_str!("templates/dingtalk.en.md.j2"),
        (TemplateKind::DingTalk, Lang::Zh) => include_str!("templates/dingtalk.zh.md.j2"),
        (TemplateKind::Feishu, Lang::En) => include_str!("templates/feishu.en.md.j2"),
        (TemplateKind::Feishu, Lang::Zh) => include_str!("templates/feishu.zh.md.j2"),
        (TemplateKind::WeCom, Lang::En) => include_str!("templates/wecom.en.md.j2"),
        (TemplateKind::WeCom, Lang::Zh) => include_str!("templates/wecom.zh.md.j2"),
        (TemplateKind::Slack, Lang::En) => include_str!("templates/slack.en.mrkdwn.j2"),
        (TemplateKind::Slack, Lang::Zh) => include_str!("templates/slack.zh.mrkdwn.j2"),
        (TemplateKind::EmailSubject, Lang::En) => include_str!("templates/email.en.subject.j2"),
        (TemplateKind::EmailSubject, Lang::Zh) => include_str!("templates/email.zh.subject.j2"),
        (TemplateKind::EmailText, Lang::En) => include_str!("templates/email.en.txt.j2"),
        (TemplateKind::EmailText, Lang::Zh) => include_str!("templates/email.zh.txt.j2"),
        (TemplateKind::EmailHtml, Lang::En) => include_str!("templates/email.en.html.j2"),
        (TemplateKind::EmailHtml, Lang::Zh) => include_str!("templates/email.zh.html.j2"),
    }
}

/// The built-in template text of `kind` in `lang`, e.g. as a starting point for a custom one.
pub fn builtin_template(kind: TemplateKind, lang: Lang) -> &'static str {
    builtin_source(kind, lang)
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    env.set_auto_escape_callback(auto_escape);
    env.set_formatter(formatter);
    env.add_filter("severity_emoji", filter_emoji);
    env.add_filter("severity_color", filter_color);
    env.add_filter("localtime", filter_localtime);
    env.add_filter("truncate", filter_truncate);
    env
}

/// One output kind's template, ready to render many times (once per shrink level).
pub(crate) struct Engine {
    env: Environment<'static>,
    kind: TemplateKind,
    lang: Lang,
    custom: bool,
}

impl Engine {
    /// The custom template when given and it compiles (else a warning), the built-in one
    /// otherwise.
    pub(crate) fn new(
        kind: TemplateKind,
        lang: Lang,
        custom: Option<&str>,
        warnings: &mut Vec<String>,
    ) -> Engine {
        let mut env = environment();
        let mut has_custom = false;
        if let Some(text) = custom {
            match env.add_template_owned(custom_name(kind), text.to_string()) {
                Ok(()) => has_custom = true,
                Err(e) => warnings.push(fallback_warning(kind, &e)),
            }
        }
        if let Err(e) = env.add_template(builtin_name(kind), builtin_source(kind, lang)) {
            // A broken built-in template is a bug the tests catch; still render something.
            warnings.push(format!("built-in {} template: {e}", kind.name()));
        }
        Engine {
            env,
            kind,
            lang,
            custom: has_custom,
        }
    }

    /// Renders `ctx`; a failing custom template is dropped for the built-in one (with a
    /// warning) for this and later calls; a failing built-in one (a bug) gives `fallback`.
    pub(crate) fn render(
        &mut self,
        ctx: &Value,
        fallback: &str,
        warnings: &mut Vec<String>,
    ) -> String {
        if self.custom {
            match render_named(&self.env, &custom_name(self.kind), ctx) {
                Ok(s) => return s,
                Err(e) => {
                    warnings.push(fallback_warning(self.kind, &e));
                    self.custom = false;
                }
            }
        }
        match render_named(&self.env, builtin_name(self.kind), ctx) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!(
                    "built-in {} template ({}) failed: {e}",
                    self.kind.name(),
                    self.lang.as_str()
                ));
                escape_as(self.kind.escape_name(), fallback)
            }
        }
    }

    /// Whether the custom template is (still) in use.
    pub(crate) fn uses_custom(&self) -> bool {
        self.custom
    }

    /// Forgets the custom template (e.g. its output never fits), with a warning.
    pub(crate) fn drop_custom(&mut self, why: &str, warnings: &mut Vec<String>) {
        if self.custom {
            self.custom = false;
            warnings.push(format!(
                "custom {} template {why}; the built-in one was used",
                self.kind.name()
            ));
        }
    }
}

fn custom_name(kind: TemplateKind) -> String {
    format!("custom{}", kind.suffix())
}

fn builtin_name(kind: TemplateKind) -> &'static str {
    match kind {
        TemplateKind::DingTalk => "builtin.dingtalk.md",
        TemplateKind::Feishu => "builtin.feishu.md",
        TemplateKind::WeCom => "builtin.wecom.md",
        TemplateKind::Slack => "builtin.slack",
        TemplateKind::EmailSubject => "builtin.subject",
        TemplateKind::EmailText => "builtin.txt",
        TemplateKind::EmailHtml => "builtin.html",
    }
}

fn render_named(env: &Environment<'static>, name: &str, ctx: &Value) -> Result<String, Error> {
    env.get_template(name)?.render(ctx)
}

/// An error as one line with its template line number.
pub(crate) fn describe(e: &Error) -> String {
    let mut s = e.to_string();
    if let Some(src) = std::error::Error::source(e) {
        s.push_str(&format!(": {src}"));
    }
    crate::text::strip_control(&s)
}

fn fallback_warning(kind: TemplateKind, e: &Error) -> String {
    format!(
        "custom {} template failed, the built-in one was used: {}",
        kind.name(),
        describe(e)
    )
}

/// Compiles `text` as a `kind` template and renders it against `ctx`.
pub(crate) fn try_render(kind: TemplateKind, text: &str, ctx: &Value) -> Result<String, String> {
    let mut env = environment();
    env.add_template_owned(custom_name(kind), text.to_string())
        .map_err(|e| describe(&e))?;
    render_named(&env, &custom_name(kind), ctx).map_err(|e| describe(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localtime_converts_to_named_zones() {
        assert_eq!(
            localtime("2024-05-01T08:00:00Z", "Asia/Shanghai").unwrap(),
            "2024-05-01 16:00:00 CST"
        );
        assert_eq!(
            localtime("2024-05-01T08:00:00Z", "UTC").unwrap(),
            "2024-05-01 08:00:00 UTC"
        );
        assert!(localtime("2024-05-01T08:00:00Z", "Mars/Olympus").is_err());
        assert!(valid_zone("Europe/Berlin") && !valid_zone("nope"));
    }

    #[test]
    fn escaping_follows_the_template_name() {
        let ctx = minijinja::context! { x => "<!here> [a](http://b) @1 *c*", tz => "UTC" };
        let render =
            |kind: TemplateKind| try_render(kind, "{{ x }}|{{ x|truncate(3) }}", &ctx).unwrap();
        assert_eq!(
            render(TemplateKind::DingTalk),
            "＜!here＞ ［a］(http:／／b) ＠1 ＊c＊|＜!…"
        );
        assert_eq!(
            render(TemplateKind::Slack),
            "&lt;!here&gt; [a](http:／／b) ＠1 ＊c＊|&lt;!…"
        );
        assert_eq!(
            render(TemplateKind::EmailHtml),
            "&lt;!here&gt; [a](http:／／b) @1 *c*|&lt;!…"
        );
        assert_eq!(
            render(TemplateKind::EmailText),
            "<!here> [a](http:／／b) @1 *c*|<!…"
        );
    }

    #[test]
    fn helpers_are_safe_and_strict_undefined_fails() {
        let ctx = minijinja::context! { s => "critical", t => "2024-05-01T08:00:00Z", tz => "Asia/Shanghai" };
        let out = try_render(
            TemplateKind::DingTalk,
            "{{ s|severity_emoji }} {{ s|severity_color }} {{ t|localtime }} {{ t|localtime('UTC') }}",
            &ctx,
        )
        .unwrap();
        assert_eq!(
            out,
            "🔴 #D00000 2024-05-01 16:00:00 CST 2024-05-01 08:00:00 UTC"
        );
        let err = try_render(TemplateKind::Slack, "{{ nope }}", &ctx).unwrap_err();
        assert!(err.contains("undefined"), "{err}");
        let err = try_render(TemplateKind::Slack, "{% if %}", &ctx).unwrap_err();
        assert!(err.contains("syntax"), "{err}");
    }
}
