//! Matchers in Alertmanager's syntax, plus severity comparisons: parsing with precise errors,
//! the canonical [`Display`](fmt::Display) form, and evaluation against a [`Subject`].
//!
//! ```text
//! cluster="c123"      equal                 cluster=c123        unquoted value
//! cluster!="c123"     not equal             cluster=~"prod-.*"  regex, anchored: ^(?:prod-.*)$
//! cluster!~"dev-.*"   regex does not match  severity>=high      also >, <=, < (severity only)
//! {namespace="kube-system", kind!="resolved"}                   several at once
//! ```
//!
//! Quoted values understand `\"`, `\\` and `\n`; any other backslash is kept as written, so a
//! regex like `"\d+"` means what it says. Unquoted values stop at whitespace and at any of
//! `{}!=~,"'` and backtick and backslash; quote values that contain them. Field names that are not
//! plain (`[A-Za-z0-9_.]`) are quoted too: `"detail.Command line"=~".*curl.*"`.
//!
//! Multi-valued fields: `=` and `=~` hold if any value matches, `!=` and `!~` if none does; an
//! absent value is the empty string. A comparison holds when the subject has a severity that
//! satisfies it (never for a subject without severity).

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use regex::{Regex, RegexBuilder};

use super::fields::{Field, Subject, parse_severity};
use crate::finding::Severity;

/// Largest compiled regex accepted (bytes of the compiled program), so a matcher cannot
/// make routing slow or memory-hungry.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// A matcher's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`: equal.
    Eq,
    /// `!=`: not equal.
    NotEq,
    /// `=~`: fully anchored regex matches.
    Regex,
    /// `!~`: fully anchored regex does not match.
    NotRegex,
    /// `>=` (severity only).
    Ge,
    /// `>` (severity only).
    Gt,
    /// `<=` (severity only).
    Le,
    /// `<` (severity only).
    Lt,
}

impl Op {
    /// Every operator, longest spellings first (the order the parser tries them in).
    pub const ALL: [Op; 8] = [
        Op::Regex,
        Op::NotRegex,
        Op::NotEq,
        Op::Ge,
        Op::Le,
        Op::Eq,
        Op::Gt,
        Op::Lt,
    ];

    /// As written.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::NotEq => "!=",
            Op::Regex => "=~",
            Op::NotRegex => "!~",
            Op::Ge => ">=",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Lt => "<",
        }
    }

    /// Whether it is a severity comparison.
    pub fn is_comparison(self) -> bool {
        matches!(self, Op::Ge | Op::Gt | Op::Le | Op::Lt)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
enum Compiled {
    Plain,
    Regex(Regex),
    Severity(Severity),
}

/// One condition on one field.
#[derive(Clone)]
pub struct Matcher {
    field: Field,
    op: Op,
    value: String,
    compiled: Compiled,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.field == other.field && self.op == other.op && self.value == other.value
    }
}

impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

/// Why a matcher string did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatcherError {
    /// What is wrong (lowercase, no trailing period).
    pub message: String,
    /// Byte offset in the matcher string where the problem is.
    pub offset: usize,
}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for MatcherError {}

/// The outcome of one matcher on one subject, for `route test`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The matcher, canonical form.
    pub matcher: String,
    /// Whether it held.
    pub holds: bool,
    /// The field's name.
    pub field: String,
    /// The field's values (empty: absent).
    pub values: Vec<String>,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({} = ", self.matcher, self.field)?;
        match self.values.as_slice() {
            [] => f.write_str("(empty)")?,
            [one] => write_clean(f, one)?,
            many => {
                f.write_str("[")?;
                for (i, v) in many.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write_clean(f, v)?;
                }
                f.write_str("]")?;
            }
        }
        f.write_str(")")
    }
}

/// Writes attacker-controlled text with control characters escaped (it goes to terminals).
pub(crate) fn write_clean(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    for c in s.chars() {
        if c.is_control() {
            write!(f, "{}", c.escape_debug())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

impl Matcher {
    /// A checked matcher: comparisons only on `severity` and with a severity name, `=`/`!=` on
    /// a field with a closed set of values only with one of them (or empty), regexes valid.
    pub fn new(field: Field, op: Op, value: impl Into<String>) -> Result<Matcher, String> {
        let value = value.into();
        let compiled = match op {
            Op::Ge | Op::Gt | Op::Le | Op::Lt => {
                if field != Field::severity() {
                    return Err(format!(
                        "comparison `{op}` works only on `severity`, not on `{field}`; use =, !=, =~ or !~"
                    ));
                }
                match parse_severity(&value) {
                    Some(s) => Compiled::Severity(s),
                    None => {
                        return Err(format!(
                            "unknown severity `{value}`; expected one of: {}",
                            severity_names()
                        ));
                    }
                }
            }
            Op::Eq | Op::NotEq => {
                if let Some(allowed) = field.def().and_then(|d| d.values)
                    && !value.is_empty()
                    && !allowed.contains(&value.as_str())
                {
                    return Err(format!(
                        "unknown {field} `{value}`; expected one of: {}",
                        allowed.join(", ")
                    ));
                }
                Compiled::Plain
            }
            Op::Regex | Op::NotRegex => Compiled::Regex(compile_regex(&value)?),
        };
        Ok(Matcher {
            field,
            op,
            value,
            compiled,
        })
    }

    /// The field.
    pub fn field(&self) -> &Field {
        &self.field
    }

    /// The operator.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The value as written (unescaped; a regex without the anchors).
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the subject satisfies it.
    pub fn matches(&self, subject: &Subject) -> bool {
        let values = subject.values(&self.field);
        let empty = [String::new()];
        let values: &[String] = if values.is_empty() { &empty } else { values };
        match (&self.compiled, self.op) {
            (_, Op::Eq) => values.contains(&self.value),
            (_, Op::NotEq) => !values.contains(&self.value),
            (Compiled::Regex(re), Op::Regex) => values.iter().any(|v| re.is_match(v)),
            (Compiled::Regex(re), Op::NotRegex) => !values.iter().any(|v| re.is_match(v)),
            (Compiled::Severity(want), op) => {
                values.iter().filter_map(|v| parse_severity(v)).any(|have| {
                    let ord = have.cmp(want);
                    match op {
                        Op::Ge => ord != Ordering::Less,
                        Op::Gt => ord == Ordering::Greater,
                        Op::Le => ord != Ordering::Greater,
                        Op::Lt => ord == Ordering::Less,
                        _ => false,
                    }
                })
            }
            // Unreachable by construction: regex ops always carry a regex.
            _ => false,
        }
    }

    /// Evaluates it and records the values it saw.
    pub fn check(&self, subject: &Subject) -> Check {
        Check {
            matcher: self.to_string(),
            holds: self.matches(subject),
            field: self.field.name(),
            values: subject.values(&self.field).to_vec(),
        }
    }

    /// Whether it holds for a subject where its field is absent (the empty string).
    pub fn matches_empty(&self) -> bool {
        self.matches(&Subject::empty())
    }
}

fn severity_names() -> String {
    Severity::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn compile_regex(value: &str) -> Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{value})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let why = match &e {
                regex::Error::CompiledTooBig(limit) => {
                    format!("too big (compiles to more than {limit} bytes)")
                }
                other => {
                    let text = other.to_string();
                    text.lines()
                        .find_map(|l| l.strip_prefix("error: "))
                        .unwrap_or(text.lines().last().unwrap_or(""))
                        .to_string()
                }
            };
            format!("invalid regex `{value}`: {why}")
        })
}

impl fmt::Display for Matcher {
    /// The canonical form: `name op "value"` without spaces; comparisons unquoted
    /// (`severity>=high`); names quoted only when they are not plain.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.field.name();
        if is_plain_name(&name) {
            f.write_str(&name)?;
        } else {
            write_quoted(f, &name)?;
        }
        f.write_str(self.op.as_str())?;
        if self.op.is_comparison() {
            f.write_str(&self.value)
        } else {
            write_quoted(f, &self.value)
        }
    }
}

fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl FromStr for Matcher {
    type Err = MatcherError;

    /// Exactly one matcher (`a="b"` or `{a="b"}`).
    fn from_str(s: &str) -> Result<Matcher, MatcherError> {
        let mut list = parse_matchers(s)?;
        match list.len() {
            1 => Ok(list.remove(0)),
            n => Err(MatcherError {
                message: format!("expected exactly one matcher, found {n}"),
                offset: 0,
            }),
        }
    }
}

impl serde::Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Matcher, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses one matcher string: a single matcher, several separated by commas, or
/// Alertmanager's brace list `{a="b", c=~"d"}`. `{}` is an empty list.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, MatcherError> {
    let mut p = Parser { s: text, pos: 0 };
    p.skip_ws();
    let braced = p.peek() == Some('{');
    if braced {
        p.bump();
    } else if p.peek().is_none() {
        return Err(p.err(r#"empty matcher: expected e.g. cluster="c123" or severity>=high"#));
    }
    let mut out = Vec::new();
    loop {
        p.skip_ws();
        match p.peek() {
            Some('}') if braced => {
                p.bump();
                break;
            }
            None if braced => return Err(p.err("unclosed `{`: expected a matcher or `}`")),
            None if !out.is_empty() => break, // a trailing comma
            _ => {}
        }
        out.push(p.matcher()?);
        p.skip_ws();
        match p.peek() {
            Some(',') => {
                p.bump();
            }
            Some('}') if braced => {
                p.bump();
                break;
            }
            None if !braced => break,
            None => return Err(p.err("unclosed `{`: expected `,` or `}`")),
            Some(c) => {
                let last = out.last().map(|m| m.field.name()).unwrap_or_default();
                return Err(p.err(&format!(
                    "unexpected `{c}` after the value of `{last}`; separate matchers with `,` and quote values that contain spaces or any of {{}}!=~,\"'"
                )));
            }
        }
    }
    p.skip_ws();
    if let Some(c) = p.peek() {
        return Err(p.err(&format!("unexpected `{c}` after `}}`")));
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

/// Characters that end an unquoted name or value.
fn reserved(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '{' | '}' | '!' | '=' | '~' | ',' | '\\' | '"' | '\'' | '`'
        )
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    fn err(&self, message: &str) -> MatcherError {
        MatcherError {
            message: message.to_string(),
            offset: self.pos,
        }
    }

    fn err_at(&self, offset: usize, message: String) -> MatcherError {
        MatcherError { message, offset }
    }

    fn matcher(&mut self) -> Result<Matcher, MatcherError> {
        let name_at = self.pos;
        let name = if self.peek() == Some('"') {
            self.quoted()?
        } else {
            let start = self.pos;
            while self
                .peek()
                .is_some_and(|c| !reserved(c) && c != '<' && c != '>')
            {
                self.bump();
            }
            if self.pos == start {
                return Err(match self.peek() {
                    Some(c) => self.err(&format!("expected a field name, found `{c}`")),
                    None => self.err("expected a field name"),
                });
            }
            self.s[start..self.pos].to_string()
        };
        let field = Field::parse(&name).map_err(|m| self.err_at(name_at, m))?;
        self.skip_ws();
        let rest = &self.s[self.pos..];
        let Some(op) = Op::ALL.into_iter().find(|o| rest.starts_with(o.as_str())) else {
            return Err(self.err(&format!(
                "expected an operator (=, !=, =~, !~, >=, >, <=, <) after `{name}`"
            )));
        };
        self.pos += op.as_str().len();
        self.skip_ws();
        let value_at = self.pos;
        let value = match self.peek() {
            Some('"') => self.quoted()?,
            _ => {
                let start = self.pos;
                while self.peek().is_some_and(|c| !reserved(c)) {
                    self.bump();
                }
                let v = &self.s[start..self.pos];
                if v.is_empty() {
                    match self.peek() {
                        None | Some(',') | Some('}') => {}
                        Some(c) => {
                            return Err(self.err(&format!(
                                "unexpected `{c}` in the value of `{name}{op}`; quote the value: {name}{op}\"...\""
                            )));
                        }
                    }
                }
                v.to_string()
            }
        };
        Matcher::new(field, op, value).map_err(|m| self.err_at(value_at, m))
    }

    /// A double-quoted string; `\"`, `\\` and `\n` are escapes, other backslashes are kept.
    fn quoted(&mut self) -> Result<String, MatcherError> {
        let start = self.pos;
        self.bump();
        let mut out = String::new();
        loop {
            match self.bump() {
                None => {
                    return Err(self.err_at(
                        start,
                        "unterminated quoted string: missing closing `\"`".into(),
                    ));
                }
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some(c) => {
                        out.push('\\');
                        out.push(c);
                    }
                    None => {
                        return Err(self.err_at(
                            start,
                            "unterminated quoted string: missing closing `\"`".into(),
                        ));
                    }
                },
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Matcher {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn err(s: &str) -> String {
        match parse_matchers(s) {
            Ok(v) => panic!("{s} parsed as {v:?}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn canonical_forms() {
        for (input, canonical) in [
            (r#"cluster="c1""#, r#"cluster="c1""#),
            ("cluster=c1", r#"cluster="c1""#),
            (r#"  cluster  !=  "c1"  "#, r#"cluster!="c1""#),
            ("namespace=~team-a-.*", r#"namespace=~"team-a-.*""#),
            (r#"namespace!~"kube-.*""#, r#"namespace!~"kube-.*""#),
            ("severity>=high", "severity>=high"),
            (r#"severity > "medium""#, "severity>medium"),
            ("severity<=low", "severity<=low"),
            ("severity<high", "severity<high"),
            (r#"title="say \"hi\"\\n""#, r#"title="say \"hi\"\\n""#),
            (r#"title=~"\d+""#, r#"title=~"\\d+""#),
            (
                r#""detail.Command line"=~".*curl.*""#,
                r#""detail.Command line"=~".*curl.*""#,
            ),
            ("detail.Port=22", r#"detail.Port="22""#),
            ("{cluster=c1}", r#"cluster="c1""#),
            ("namespace=", r#"namespace="""#),
        ] {
            assert_eq!(m(input).to_string(), canonical, "{input}");
        }
        assert_eq!(m(r#"title="a\nb""#).value(), "a\nb");
        assert_eq!(m(r#"title="a\"b\\c""#).value(), "a\"b\\c");
    }

    #[test]
    fn brace_lists_and_commas() {
        let v = parse_matchers(r#"{ namespace = "kube-system" , kind!="resolved", }"#).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].to_string(), r#"kind!="resolved""#);
        assert_eq!(parse_matchers("{}").unwrap(), vec![]);
        assert!(parse_matchers("a_b").is_err());
        assert_eq!(parse_matchers("cluster=a,namespace=b").unwrap().len(), 2);
        assert!(err(r#"{a="b", c=~"d"}"#).contains("unknown field `a`"));
        assert!("{cluster=a,pod=b}".parse::<Matcher>().is_err());
    }

    #[test]
    fn precise_errors() {
        assert!(
            err(r#"clutser="x""#)
                .starts_with("unknown field `clutser`; known fields: domain, kind, severity")
        );
        assert_eq!(
            err("cluster"),
            "expected an operator (=, !=, =~, !~, >=, >, <=, <) after `cluster`"
        );
        assert_eq!(
            err("cluster ~ x"),
            "expected an operator (=, !=, =~, !~, >=, >, <=, <) after `cluster`"
        );
        assert!(
            err(r#"cluster=~"(""#).starts_with("invalid regex `(`: "),
            "{}",
            err(r#"cluster=~"(""#)
        );
        assert_eq!(
            err("cluster>=high"),
            "comparison `>=` works only on `severity`, not on `cluster`; use =, !=, =~ or !~"
        );
        assert_eq!(
            err("severity>=hihg"),
            "unknown severity `hihg`; expected one of: info, low, medium, high, critical"
        );
        assert_eq!(
            err("domain=alert"),
            "unknown domain `alert`; expected one of: alerts, vulnerabilities, baseline, firewall"
        );
        assert!(err(r#"title="abc"#).starts_with("unterminated quoted string"));
        assert!(err("title=a b").starts_with("unexpected `b` after the value of `title`"));
        assert!(err("title==x").starts_with("unexpected `=` in the value of `title=`"));
        assert!(err("{title=x").starts_with("unclosed `{`"));
        assert!(err("{title=x} y").starts_with("unexpected `y` after `}`"));
        assert!(err("").starts_with("empty matcher"));
        assert!(err("   ").starts_with("empty matcher"));
        assert_eq!(err("=x"), "expected a field name, found `=`");
        let e = parse_matchers(r#"cluster="a", pod=~"(""#).unwrap_err();
        assert_eq!(e.offset, 18);
    }

    #[test]
    fn regexes_are_fully_anchored() {
        let s = |v: &str| Subject::empty().with("cluster", v).unwrap();
        let prod = m(r#"cluster=~"prod""#);
        assert!(prod.matches(&s("prod")));
        assert!(!prod.matches(&s("prod-2")));
        assert!(!prod.matches(&s("preprod")));
        let alt = m(r#"cluster=~"a|b""#);
        assert!(alt.matches(&s("a")) && alt.matches(&s("b")) && !alt.matches(&s("ab")));
    }
}
