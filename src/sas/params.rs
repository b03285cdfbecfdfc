//! Request parameters and the two URL encodings Security Center uses.
//!
//! [`Params`] keeps insertion order (the wire order does not matter to the server, but stable order
//! keeps logs and tests readable) and knows the SDK's three array styles: flattened (`Name.1`),
//! comma-joined ("simple") and JSON.

pub use crate::text::percent_encode;

/// `application/x-www-form-urlencoded` as Python's `urlencode` writes it (what the SDK sends):
/// like [`percent_encode`] but space becomes `+`.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(k).replace("%20", "+"));
        out.push('=');
        out.push_str(&percent_encode(v).replace("%20", "+"));
    }
    out
}

/// Decodes a query string or form body: `+` is a space, `%XX` is a byte; blank values are kept.
/// Invalid UTF-8 is replaced rather than rejected (the signature check then fails, as on the server).
pub fn form_decode(s: &str) -> Vec<(String, String)> {
    if s.is_empty() {
        return Vec::new();
    }
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_component(k), decode_component(v))
        })
        .collect()
}

fn decode_component(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// An ordered list of request parameters, values already rendered as strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Params(Vec::new())
    }

    /// Adds one scalar (`true`/`false`, decimal numbers and strings all render as text).
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Self {
        let value = value.to_string();
        if let Some(slot) = self.0.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.0.push((key.to_string(), value));
        }
        self
    }

    /// Adds a scalar only when it is present.
    pub fn set_opt(&mut self, key: &str, value: Option<impl ToString>) -> &mut Self {
        if let Some(v) = value {
            self.set(key, v);
        }
        self
    }

    /// Default array style: `Name.1=a&Name.2=b` (1-based).
    pub fn set_flat<T: ToString>(&mut self, key: &str, values: &[T]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.set(&format!("{key}.{}", i + 1), v.to_string());
        }
        self
    }

    /// "simple" style: one comma-joined value.
    pub fn set_simple<T: ToString>(&mut self, key: &str, values: &[T]) -> &mut Self {
        let joined: Vec<String> = values.iter().map(ToString::to_string).collect();
        self.set(key, joined.join(","))
    }

    /// "json" style: one compact JSON string.
    pub fn set_json(&mut self, key: &str, value: &serde_json::Value) -> &mut Self {
        self.set(key, value.to_string())
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The pairs in insertion order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: ToString, V: ToString> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = Params::new();
        for (k, v) in iter {
            p.set(&k.to_string(), v);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encode_keeps_only_unreserved() {
        assert_eq!(
            percent_encode("a b*c~d/e+f 集"),
            "a%20b%2Ac~d%2Fe%2Bf%20%E9%9B%86"
        );
    }

    #[test]
    fn form_encoding_round_trips_with_plus_for_space() {
        let pairs = vec![("Remark".to_string(), "nginx ingress*~/+=&%中".to_string())];
        let enc = form_encode(&pairs);
        assert_eq!(enc, "Remark=nginx+ingress%2A~%2F%2B%3D%26%25%E4%B8%AD");
        assert_eq!(form_decode(&enc), pairs);
        assert_eq!(
            form_decode("a=&b"),
            vec![("a".into(), "".into()), ("b".into(), "".into())]
        );
    }

    #[test]
    fn array_styles() {
        let mut p = Params::new();
        p.set_flat("InterceptionTypes", &[1, 2])
            .set_simple("SourceAliUids", &[11, 22])
            .set_json("SrcTarget", &serde_json::json!({"targetId": 30001}));
        assert_eq!(p.get("InterceptionTypes.2"), Some("2"));
        assert_eq!(p.get("SourceAliUids"), Some("11,22"));
        assert_eq!(p.get("SrcTarget"), Some("{\"targetId\":30001}"));
        p.set("SourceAliUids", "3");
        assert_eq!(p.pairs().len(), 4);
    }
}
