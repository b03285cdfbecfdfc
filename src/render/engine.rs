//! The minijinja environment every rendering uses: strict undefined, `trim_blocks` and
//! `lstrip_blocks`, escaping fixed by the output kind the environment is built for, the helper
//! filters, and the built-in templates. A custom template that fails to compile or render is
//! replaced by the built-in one with a warning; a message is never dropped.
//!
//! ## Escaping a template cannot switch off
//!
//! A custom template is configuration, but the values it prints are not, so nothing it writes
//! may print a value unescaped:
//!
//! - the formatter escapes by the environment's [`TemplateKind`], never by the template's
//!   escape mode of the moment (an `{% autoescape false %}` block used to fall back to URL
//!   defanging only, leaving `[x](https://evil)` and `@138…` live in chat);
//! - `safe` keeps a value as it is: what sasrelay marked safe (links, colours, emoji) stays
//!   so, anything else is still escaped; `escape`/`e` escape for the kind; `tojson`'s JSON is
//!   not marked safe, so it is escaped like any other text;
//! - [`check_statements`] refuses `autoescape` blocks and `include`, `import`, `from` and
//!   `extends` (the built-in templates are single files and need none) in a custom
//!   template, both for `sasrelay check` and when a sink is built.
//!
//! What a template captures (a macro's output, a `{% set %}` block) is safe because its values
//! were escaped when printed into it.

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Kwargs, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State, UndefinedBehavior};

use super::escape;
use super::{Lang, TemplateKind};
use crate::text::truncate_chars;

/// Escapes `raw` for the output of `kind`.
fn escape_for(kind: TemplateKind, raw: &str) -> String {
    match kind {
        TemplateKind::DingTalk => escape::dingtalk(raw),
        TemplateKind::Feishu => escape::feishu(raw),
        TemplateKind::WeCom => escape::wecom(raw),
        TemplateKind::Slack => escape::slack(raw),
        TemplateKind::EmailHtml => escape::html(raw),
        // The subject is made one header line afterwards.
        TemplateKind::EmailSubject | TemplateKind::EmailText => escape::text(raw),
    }
}

/// Prints every value escaped for `kind`'s output, whatever escape mode the template is in;
/// values marked safe (module doc) as they are; `none` as nothing.
fn format_for(kind: TemplateKind, out: &mut Output, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return out
            .write_str(value.as_str().unwrap_or_default())
            .map_err(Error::from);
    }
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    out.write_str(&escape_for(kind, &value.to_string()))
        .map_err(Error::from)
}

/// `{{ v|escape }}` / `{{ v|e }}`: `v` escaped for `kind` (once: a safe value as it is) and
/// marked safe, as minijinja's own does for HTML.
fn filter_escape(kind: TemplateKind, v: Value) -> Value {
    if v.is_safe() {
        return v;
    }
    if v.is_none() || v.is_undefined() {
        return Value::from_safe_string(String::new());
    }
    Value::from_safe_string(escape_for(kind, &v.to_string()))
}

/// `{{ v|safe }}`: `v` as it is. Safe values stay safe; anything else is still escaped when
/// printed (a template must not print a finding's text unescaped).
fn filter_safe(v: Value) -> Value {
    v
}

/// `{{ v|tojson }}` / `{{ v|tojson(indent=2) }}`: minijinja's JSON, but not marked safe, so
/// printing it escapes it for the output like any other text.
fn filter_tojson(v: &Value, indent: Option<Value>, args: Kwargs) -> Result<Value, Error> {
    let json = minijinja::filters::tojson(v, indent, args)?;
    Ok(Value::from(json.as_str().unwrap_or_default()))
}

/// Statements a custom template may not use: `autoescape` would change how values are
/// escaped; the others bring in another template, which no output needs.
const FORBIDDEN_STATEMENTS: [&str; 5] = ["autoescape", "include", "import", "from", "extends"];

/// Refuses a custom `kind` template that uses a statement of `FORBIDDEN_STATEMENTS`; the
/// error names the template, the line and the statement. Looks at every `{%` of the text,
/// in comments, `raw` blocks and strings too: it may refuse such text needlessly, but never
/// misses a statement minijinja would run.
pub(crate) fn check_statements(kind: TemplateKind, text: &str) -> Result<(), String> {
    for (at, _) in text.match_indices("{%") {
        let rest = text[at + 2..].trim_start_matches(['-', '+']).trim_start();
        let word = rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()
            .unwrap_or_default();
        if let Some(&statement) = FORBIDDEN_STATEMENTS.iter().find(|&&s| s == word) {
            let line = text[..at].matches('\n').count() + 1;
            let why = if statement == "autoescape" {
                "sasrelay escapes every value for the output itself"
            } else {
                "a custom template is one file and may not use another"
            };
            return Err(format!(
                "custom {} template, line {line}: `{{% {statement} %}}` is not allowed ({why})",
                kind.name()
            ));
        }
    }
    Ok(())
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

/// The environment for templates of `kind`: it escapes for that kind only (module doc).
fn environment(kind: TemplateKind) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // Escaping on, in the kind's mode, for every template name (minijinja's own
    // concatenation, `join` and `replace` then escape through the formatter too).
    env.set_auto_escape_callback(move |_| AutoEscape::Custom(kind.escape_name().into()));
    env.set_formatter(move |out, _, value| format_for(kind, out, value));
    env.add_filter("safe", filter_safe);
    env.add_filter("escape", move |v: Value| filter_escape(kind, v));
    env.add_filter("e", move |v: Value| filter_escape(kind, v));
    env.add_filter("tojson", filter_tojson);
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
        let mut env = environment(kind);
        let mut has_custom = false;
        if let Some(text) = custom {
            match check_statements(kind, text) {
                Ok(()) => match env.add_template_owned(custom_name(kind), text.to_string()) {
                    Ok(()) => has_custom = true,
                    Err(e) => warnings.push(fallback_warning(kind, &describe(&e))),
                },
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
                    warnings.push(fallback_warning(self.kind, &describe(&e)));
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
                escape_for(self.kind, fallback)
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

fn fallback_warning(kind: TemplateKind, why: &str) -> String {
    format!(
        "custom {} template failed, the built-in one was used: {why}",
        kind.name()
    )
}

/// Compiles `text` as a `kind` template and renders it against `ctx` (after
/// [`check_statements`]).
pub(crate) fn try_render(kind: TemplateKind, text: &str, ctx: &Value) -> Result<String, String> {
    check_statements(kind, text)?;
    let mut env = environment(kind);
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
    fn escaping_follows_the_template_kind() {
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
    fn no_template_can_print_a_value_unescaped() {
        let hostile = "[x](https://evil) @13800000000 <at id=all></at> <!channel>";
        let ctx = minijinja::context! { x => hostile, tz => "UTC" };
        for tpl in [
            "{{ x|safe }}",
            "{{ x|tojson }}",
            "{{ x|tojson(indent=2) }}",
            "{{ x|e }}{{ x|escape|safe }}",
            "{{ [x]|join(', '|safe) }}",
            "{% set s %}{{ '%s' }}{% endset %}{{ s|format(x) }}",
            "{% macro m(v) %}{{ v }}{% endmacro %}{{ m(x) }}{{ m(x) ~ x }}",
            "{% filter safe %}{{ x }}{% endfilter %}{{ x|safe|replace('a', 'b') }}",
        ] {
            for kind in [
                TemplateKind::DingTalk,
                TemplateKind::Feishu,
                TemplateKind::WeCom,
                TemplateKind::Slack,
            ] {
                let out = try_render(kind, tpl, &ctx).unwrap();
                for bad in ["](https://", "://", "@138", "<at", "<!channel>"] {
                    assert!(!out.contains(bad), "{} {tpl}: {bad} in {out}", kind.name());
                }
            }
        }
        // Even were the statement check bypassed, an `autoescape` block changes nothing.
        for kind in [TemplateKind::DingTalk, TemplateKind::Slack] {
            let mut env = environment(kind);
            for (name, mode) in [("off", "false"), ("html", "'html'"), ("json", "'json'")] {
                let text = format!(
                    "{{% autoescape {mode} %}}{{{{ x }}}}{{{{ x|e }}}}{{% endautoescape %}}"
                );
                env.add_template_owned(name, text).unwrap();
                let out = env.get_template(name).unwrap().render(&ctx).unwrap();
                assert_eq!(out, escape_for(kind, hostile).repeat(2), "{mode}");
            }
        }
        // What sasrelay marked safe stays as it is.
        let ctx =
            minijinja::context! { u => Value::from_safe_string("https://ok.example/a?b&c".into()) };
        assert_eq!(
            try_render(TemplateKind::EmailHtml, "{{ u|safe }} {{ u|e }}", &ctx).unwrap(),
            "https://ok.example/a?b&c https://ok.example/a?b&c"
        );
    }

    #[test]
    fn statements_that_change_escaping_or_load_templates_are_refused() {
        for (tpl, statement, line) in [
            (
                "{% autoescape false %}{{ x }}{% endautoescape %}",
                "autoescape",
                1,
            ),
            (
                "a\n{%- autoescape 'html' %}{% endautoescape %}",
                "autoescape",
                2,
            ),
            ("{% include 'builtin.dingtalk.md' %}", "include", 1),
            ("x\ny\n{%+ import 'm' as m %}", "import", 3),
            ("{% from 'm' import f %}", "from", 1),
            ("{%extends 'builtin.dingtalk.md'%}", "extends", 1),
        ] {
            let e = check_statements(TemplateKind::DingTalk, tpl).unwrap_err();
            assert_eq!(
                e,
                format!(
                    "custom dingtalk template, line {line}: `{{% {statement} %}}` is not allowed ({})",
                    if statement == "autoescape" {
                        "sasrelay escapes every value for the output itself"
                    } else {
                        "a custom template is one file and may not use another"
                    }
                ),
                "{tpl}"
            );
            assert!(try_render(TemplateKind::DingTalk, tpl, &minijinja::context! {}).is_err());
        }
        for fine in [
            "{% if x %}{{ x }}{% endif %}",
            "{% set important = 1 %}{{ fromage }}",
            "{# autoescape #}",
        ] {
            assert!(
                check_statements(TemplateKind::Slack, fine).is_ok(),
                "{fine}"
            );
        }
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
