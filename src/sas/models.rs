//! Response models for the Security Center actions sasrelay reads: the four domain listings
//! (alerts, vulnerabilities, baseline risks, container firewall), the baseline detail and the
//! per-cluster statistics probes.
//!
//! Decoding is deliberately tolerant, because the service is not consistent with its own SDK:
//! unknown fields are ignored, missing fields and `null` take a default, numbers that arrive as
//! strings (and strings that arrive as numbers) are accepted through the [`lenient`] helpers, and
//! odd key spellings (`clusterId`, `WarningSummarys`, `CurrrentPage`, `cveList`,
//! `Enviroment_factor`) are read as sent. Every list item keeps its untouched JSON next to the
//! typed view ([`Item`]), so nothing the service sends is lost even when the typed view cannot
//! represent it.
//!
//! Identity fields (`Id`, `PrimaryId`, `RiskId`, `CheckWarningId`, ...) are
//! `Option<`[`RecordId`]`>`, the id's exact text: a missing identity must not silently become `0`
//! and collide with other records, and an id past `i64::MAX` must not saturate into another.

use std::ops::Deref;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A record's identity as the service sent it (decimal text for a number).
pub type RecordId = String;

/// `deserialize_with` helpers that accept what Security Center actually sends.
///
/// Each helper first reads any JSON value and then converts it; none of them fails on a type
/// mismatch — a value that cannot be converted becomes the type's default (the raw JSON of the
/// item still carries it).
pub mod lenient {
    use super::*;

    /// An integer from a number (floats are truncated), a decimal string (surrounding spaces
    /// allowed, `"12.0"` accepted) or a bool; `None` for null, empty or unparseable values.
    pub fn to_i64(v: &Value) -> Option<i64> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_u64().map(|u| u.min(i64::MAX as u64) as i64))
                .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64)),
            Value::String(s) => {
                let s = s.trim();
                s.parse::<i64>().ok().or_else(|| {
                    s.parse::<f64>()
                        .ok()
                        .filter(|f| f.is_finite())
                        .map(|f| f as i64)
                })
            }
            Value::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// Text from a string, a number (decimal form), a bool (`true`/`false`); compact JSON for
    /// objects and arrays; empty for null.
    pub fn to_string(v: &Value) -> String {
        match v {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => other.to_string(),
        }
    }

    /// A bool from a bool, a number (non-zero is true) or a string (`true`/`yes`/`y`/`1`/`on`,
    /// case-insensitive, are true); `None` for null and anything else.
    pub fn to_bool(v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::Number(n) => n.as_f64().map(|f| f != 0.0),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "on" => Some(true),
                "false" | "no" | "n" | "0" | "off" | "" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A list of strings from an array (elements converted with [`to_string`], empties dropped)
    /// or a comma-separated string; empty for null.
    pub fn to_string_list(v: &Value) -> Vec<String> {
        match v {
            Value::Array(a) => a
                .iter()
                .map(to_string)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            Value::String(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            Value::Null => Vec::new(),
            other => vec![to_string(other)],
        }
    }

    /// `deserialize_with`: integer, `0` when absent or unparseable.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        Ok(to_i64(&Value::deserialize(d)?).unwrap_or_default())
    }

    /// `deserialize_with`: optional integer (`None` for null, empty or unparseable).
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(to_i64(&Value::deserialize(d)?))
    }

    /// An identity exactly as the service sent it: an integer number's decimal text (any size
    /// `u64` or `i64` holds, never saturated: two ids must never become one), or a non-empty
    /// string, trimmed. `None` for anything else — a fraction or a number past `u64` has no
    /// exact integer text, so the record falls back to its natural key.
    pub fn to_id(v: &Value) -> Option<RecordId> {
        match v {
            Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
            Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_string),
            _ => None,
        }
    }

    /// `deserialize_with`: optional identity ([`to_id`]).
    pub fn opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RecordId>, D::Error> {
        Ok(to_id(&Value::deserialize(d)?))
    }

    /// `deserialize_with`: text, empty when null.
    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(to_string(&Value::deserialize(d)?))
    }

    /// `deserialize_with`: bool, `false` when absent or unparseable.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        Ok(to_bool(&Value::deserialize(d)?).unwrap_or_default())
    }

    /// `deserialize_with`: list of strings (array or comma-separated string).
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(to_string_list(&Value::deserialize(d)?))
    }

    /// `deserialize_with`: list of objects. Null or a non-array gives an empty list, a lone
    /// object a one-element list (an object keyed `"0"`, `"1"`, … its values, see
    /// `index_keyed`); elements that do not decode are skipped.
    pub fn vec<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
        let list = match Value::deserialize(d)? {
            Value::Array(a) => a,
            Value::Object(m) => index_keyed(m),
            _ => Vec::new(),
        };
        Ok(list
            .into_iter()
            .filter_map(|v| T::deserialize(v).ok())
            .collect())
    }

    /// `deserialize_with`: a nested object, defaulted when null or malformed. A string holding
    /// JSON (as `ExtendContentJson` might be sent) is parsed first.
    pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(
        d: D,
    ) -> Result<T, D::Error> {
        let v = match Value::deserialize(d)? {
            Value::String(s) => serde_json::from_str(&s).unwrap_or(Value::Null),
            v => v,
        };
        Ok(match v {
            v @ Value::Object(_) => T::deserialize(v).unwrap_or_default(),
            _ => T::default(),
        })
    }

    /// `deserialize_with`: list of JSON objects, kept as maps (e.g. `CheckDetailAssetInfo`).
    pub fn maps<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Map<String, Value>>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(a) => a
                .into_iter()
                .filter_map(|v| match v {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect(),
            Value::Object(m) => vec![m],
            _ => Vec::new(),
        })
    }
}

/// A list sent as an object: keyed `"0"`, `"1"`, … (a list serialised as a map by some
/// gateway), its values in index order; any other object is one record.
pub(crate) fn index_keyed(m: Map<String, Value>) -> Vec<Value> {
    let indexed = !m.is_empty() && (0..m.len()).all(|i| m.contains_key(&i.to_string()));
    if !indexed {
        return vec![Value::Object(m)];
    }
    let mut m = m;
    (0..m.len())
        .filter_map(|i| m.remove(&i.to_string()))
        .collect()
}

/// First non-empty string among `candidates`, owned.
pub(crate) fn first_non_empty<'a>(candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(str::trim)
        .find(|s| !s.is_empty())
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// Items and pages

/// One record as the service sent it (`raw`) plus the typed view decoded from it (`typed`).
///
/// Derefs to the typed view. Decoding fails only when the record is not a JSON object.
#[derive(Clone, Debug, PartialEq)]
pub struct Item<T> {
    /// The untouched JSON of the record.
    pub raw: Value,
    /// The typed, leniently decoded view.
    pub typed: T,
}

impl<T: DeserializeOwned> Item<T> {
    /// Decodes the typed view from `raw`, keeping `raw`.
    pub fn from_value(raw: Value) -> Result<Self, serde_json::Error> {
        if !raw.is_object() {
            return Err(serde::de::Error::custom(format!(
                "expected a JSON object, got {}",
                json_kind(&raw)
            )));
        }
        let typed = T::deserialize(&raw)?;
        Ok(Item { raw, typed })
    }
}

impl<T> Deref for Item<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.typed
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Item<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Item::from_value(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A record type that arrives as the items of a paged listing.
pub trait ListItem: DeserializeOwned {
    /// Keys the item array may be sent under, in order of preference.
    const ITEM_KEYS: &'static [&'static str];
}

/// Paging fields of a response, read from the top level (`Describe*` actions) or from a
/// `PageInfo` object (`List*` actions; `PageInfo` wins where both are present).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageMeta {
    /// `CurrentPage` (or the misspelt `CurrrentPage`).
    pub current_page: Option<i64>,
    /// `PageSize` as the server applied it.
    pub page_size: Option<i64>,
    /// `TotalCount`: items across all pages (absent in `NextToken` paging).
    pub total_count: Option<i64>,
    /// `Count`: items on this page.
    pub count: Option<i64>,
    /// `NextToken` (`DescribeVulList` with `UseNextToken`), when non-empty.
    pub next_token: Option<String>,
}

impl PageMeta {
    /// Whether the metadata itself says the result is empty (`TotalCount` 0, or `Count` 0 with
    /// no further token).
    fn says_empty(&self) -> bool {
        self.total_count == Some(0) || (self.count == Some(0) && self.next_token.is_none())
    }

    fn read(obj: &Map<String, Value>) -> PageMeta {
        // Counts and page numbers are never negative; a negative one is no value (it would
        // turn the shrink arithmetic of the walk upside down).
        let int = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| obj.get(*k).and_then(lenient::to_i64))
                .filter(|n| *n >= 0)
        };
        PageMeta {
            current_page: int(&["CurrentPage", "CurrrentPage", "currentPage"]),
            page_size: int(&["PageSize", "pageSize"]),
            total_count: int(&["TotalCount", "totalCount"]),
            count: int(&["Count", "count"]),
            next_token: ["NextToken", "nextToken"]
                .iter()
                .filter_map(|k| obj.get(*k))
                .map(lenient::to_string)
                .find(|s| !s.is_empty()),
        }
    }

    fn overlay(self, over: PageMeta) -> PageMeta {
        PageMeta {
            current_page: over.current_page.or(self.current_page),
            page_size: over.page_size.or(self.page_size),
            total_count: over.total_count.or(self.total_count),
            count: over.count.or(self.count),
            next_token: over.next_token.or(self.next_token),
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq)]
pub struct Page<T> {
    /// `RequestId`, for support tickets and logs.
    pub request_id: String,
    /// Paging fields.
    pub meta: PageMeta,
    /// The records that decoded.
    pub items: Vec<Item<T>>,
    /// Records that could not be read, kept (bounded) instead of failing the page.
    pub quarantined: Vec<Quarantined>,
}

impl<T> Page<T> {
    /// How many records the server sent on this page, readable or not (drives paging).
    pub fn received(&self) -> usize {
        self.items.len() + self.quarantined.len()
    }
}

/// No listing action pages beyond 100 records; a "page" ten times that is not an honest page
/// (a proxy, a bug, an attack), and is refused while it is read, before it can fill memory.
pub const MAX_PAGE_RECORDS: usize = 1_000;

/// How much of a quarantined record's text is kept.
pub const QUARANTINE_KEEP_BYTES: usize = 8 * 1024;

/// A record of a listing that could not be read — JSON the parser refuses on its own (a number
/// out of range), not an object, or not the record's shape — kept for the operator instead of
/// failing its page: one poisoned record must not stop a domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// SHA-256 of the record's whole text, hex: the same record listed again is the same entry.
    pub digest: String,
    /// The record's text as sent, cut to [`QUARANTINE_KEEP_BYTES`].
    pub raw: String,
    /// Length of the whole text in bytes.
    pub bytes: usize,
    /// Why it could not be read.
    pub reason: String,
    /// The listing action that returned it (set by the listing walk; empty until then).
    pub action: String,
}

impl Quarantined {
    /// Appends `records` to `held`, each record once (by digest).
    pub fn add_each_once(held: &mut Vec<Quarantined>, records: Vec<Quarantined>) {
        for q in records {
            if !held.iter().any(|k| k.digest == q.digest) {
                held.push(q);
            }
        }
    }

    /// Quarantines the record `text` for `reason`.
    pub fn new(text: &str, reason: String) -> Quarantined {
        use sha2::Digest;
        Quarantined {
            digest: hex::encode(sha2::Sha256::digest(text.as_bytes())),
            raw: crate::text::truncate_bytes(text, QUARANTINE_KEEP_BYTES),
            bytes: text.len(),
            reason,
            action: String::new(),
        }
    }
}

/// A 200 answer that is an error body in disguise: a top-level `Code` that is not one of the
/// success spellings, unless `Success` is true. Returns the text to report.
fn error_inside_ok(obj: &Map<String, Value>) -> Option<String> {
    let code = ["Code", "code"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .map(lenient::to_string)
        .find(|s| !s.trim().is_empty())?;
    let success = ["Success", "success"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .any(|v| v.as_bool() == Some(true));
    if success
        || ["200", "ok", "success"]
            .iter()
            .any(|ok| code.trim().eq_ignore_ascii_case(ok))
    {
        return None;
    }
    let message = ["Message", "message"]
        .iter()
        .filter_map(|k| obj.get(*k))
        .map(lenient::to_string)
        .find(|s| !s.is_empty())
        .unwrap_or_default();
    Some(format!(
        "a 200 answer carrying error Code {}: {}",
        crate::text::strip_control(&code),
        crate::text::strip_control(&message)
    ))
}

/// The value under a list key, read without converting any number inside a record, so a
/// record the parser cannot hold (`1e400`) is only that record's problem.
enum RawList {
    Null,
    Records(Vec<Box<RawValue>>),
    NotAList(&'static str),
}

struct RawListSeed;

impl<'de> serde::de::DeserializeSeed<'de> for RawListSeed {
    type Value = RawList;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawList, D::Error> {
        d.deserialize_any(RawListVisitor)
    }
}

struct RawListVisitor;

fn too_many<E: serde::de::Error>() -> E {
    E::custom(format!(
        "a page of more than {MAX_PAGE_RECORDS} records; no listing pages beyond 100, so this \
         is not an honest page and was refused while being read"
    ))
}

impl<'de> serde::de::Visitor<'de> for RawListVisitor {
    type Value = RawList;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a list of records")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawList, A::Error> {
        let mut out = Vec::new();
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            if out.len() == MAX_PAGE_RECORDS {
                return Err(too_many());
            }
            out.push(raw);
        }
        Ok(RawList::Records(out))
    }

    /// A list sent as an object keyed `"0"`, `"1"`, … (see `index_keyed`); any other object
    /// is one record, rebuilt from its raw members.
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawList, A::Error> {
        let mut entries: Vec<(String, Box<RawValue>)> = Vec::new();
        while let Some(entry) = map.next_entry::<String, Box<RawValue>>()? {
            if entries.len() == MAX_PAGE_RECORDS {
                return Err(too_many());
            }
            entries.push(entry);
        }
        let indexed = !entries.is_empty()
            && (0..entries.len()).all(|i| entries.iter().any(|(k, _)| *k == i.to_string()));
        if indexed {
            entries.sort_by_key(|(k, _)| k.parse::<usize>().unwrap_or(usize::MAX));
            return Ok(RawList::Records(
                entries.into_iter().map(|(_, v)| v).collect(),
            ));
        }
        let members: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}:{}", Value::from(k.as_str()), v.get()))
            .collect();
        let record = RawValue::from_string(format!("{{{}}}", members.join(",")))
            .map_err(serde::de::Error::custom)?;
        Ok(RawList::Records(vec![record]))
    }

    fn visit_unit<E>(self) -> Result<RawList, E> {
        Ok(RawList::Null)
    }

    fn visit_none<E>(self) -> Result<RawList, E> {
        Ok(RawList::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<RawList, E> {
        Ok(RawList::NotAList("a bool"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<RawList, E> {
        Ok(RawList::NotAList("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<RawList, E> {
        Ok(RawList::NotAList("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<RawList, E> {
        Ok(RawList::NotAList("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<RawList, E> {
        Ok(RawList::NotAList("a string"))
    }
}

/// A response body split into its top-level fields (as values) and the candidate lists (raw).
struct RawBody {
    top: Map<String, Value>,
    /// `(rank in ITEM_KEYS, list)` for each list key present.
    lists: Vec<(usize, RawList)>,
}

struct RawBodyVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: ListItem> serde::de::Visitor<'de> for RawBodyVisitor<T> {
    type Value = RawBody;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object response")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawBody, A::Error> {
        let mut body = RawBody {
            top: Map::new(),
            lists: Vec::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            match T::ITEM_KEYS.iter().position(|k| *k == key) {
                Some(rank) => body.lists.push((rank, map.next_value_seed(RawListSeed)?)),
                None => {
                    let value: Value = map.next_value()?;
                    body.top.insert(key, value);
                }
            }
        }
        Ok(body)
    }
}

/// Reads one raw record: an item, or a quarantined record saying why not.
fn read_record<T: DeserializeOwned>(raw: &RawValue) -> Result<Item<T>, Quarantined> {
    let text = raw.get();
    let value: Value = serde_json::from_str(text)
        .map_err(|e| Quarantined::new(text, format!("unreadable JSON: {e}")))?;
    if !value.is_object() {
        let reason = format!("not a JSON object but {}", json_kind(&value));
        return Err(Quarantined::new(text, reason));
    }
    match T::deserialize(&value) {
        Ok(typed) => Ok(Item { raw: value, typed }),
        Err(e) => Err(Quarantined::new(text, format!("does not decode: {e}"))),
    }
}

impl<T: ListItem> Page<T> {
    /// Reads a page from a whole response body. A body that cannot be a page is an error,
    /// never an empty page: one carrying an error `Code` in a 200, or one without the list
    /// whose paging metadata does not say the result is empty. A record that cannot be read
    /// is quarantined, not fatal.
    pub fn from_value(body: Value) -> Result<Self, serde_json::Error> {
        Page::deserialize(body)
    }

    fn from_raw(body: RawBody) -> Result<Self, String> {
        let RawBody { top, mut lists } = body;
        let mut meta = PageMeta::read(&top);
        if let Some(Value::Object(info)) = top.get("PageInfo").or_else(|| top.get("pageInfo")) {
            meta = meta.overlay(PageMeta::read(info));
        }
        let request_id = ["RequestId", "requestId"]
            .iter()
            .filter_map(|k| top.get(*k))
            .map(lenient::to_string)
            .find(|s| !s.is_empty())
            .unwrap_or_default();
        if let Some(error) = error_inside_ok(&top) {
            return Err(error);
        }
        // The first non-null list in order of preference.
        lists.retain(|(_, l)| !matches!(l, RawList::Null));
        lists.sort_by_key(|(rank, _)| *rank);
        let raw_records = match lists.into_iter().next() {
            Some((_, RawList::Records(r))) => r,
            Some((_, RawList::NotAList(kind))) => {
                return Err(format!(
                    "the {} list is {kind}, not a list",
                    T::ITEM_KEYS[0]
                ));
            }
            Some((_, RawList::Null)) => Vec::new(),
            // Whether the real service leaves the key out of an empty result is not confirmed:
            // accept its absence only beside paging metadata that says there is nothing.
            None if meta.says_empty() => Vec::new(),
            None => {
                return Err(format!(
                    "the answer has no {} list and its paging does not say the result is empty; \
                     read as an error, never as \"nothing is open\"",
                    T::ITEM_KEYS[0]
                ));
            }
        };
        let mut items = Vec::with_capacity(raw_records.len());
        let mut quarantined = Vec::new();
        for raw in raw_records {
            match read_record(&raw) {
                Ok(item) => items.push(item),
                Err(q) => quarantined.push(q),
            }
        }
        Ok(Page {
            request_id,
            meta,
            items,
            quarantined,
        })
    }
}

impl<'de, T: ListItem> Deserialize<'de> for Page<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let body = d.deserialize_map(RawBodyVisitor::<T>(std::marker::PhantomData))?;
        Page::from_raw(body).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Alerts

/// `DescribeSuspEvents` response.
pub type SuspEventsResponse = Page<SuspEvent>;

/// One `SuspEvents[]` record: an alert event (docs/sas-api.md §1.1).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SuspEvent {
    /// Event record ID — the dedup key.
    #[serde(deserialize_with = "lenient::opt_id")]
    pub id: Option<RecordId>,
    /// Comma list of related security-event IDs.
    #[serde(deserialize_with = "lenient::string")]
    pub security_event_ids: String,
    /// Unique key of the alert.
    #[serde(deserialize_with = "lenient::string")]
    pub unique_info: String,
    /// ID of the aggregated alert this exception belongs to.
    #[serde(deserialize_with = "lenient::string")]
    pub alarm_unique_info: String,
    /// Full name (`<type>-<name>`).
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    /// Alert name.
    #[serde(deserialize_with = "lenient::string")]
    pub alarm_event_name: String,
    /// Alert display name (in the requested `Lang`).
    #[serde(deserialize_with = "lenient::string")]
    pub alarm_event_name_display: String,
    /// Alert category.
    #[serde(deserialize_with = "lenient::string")]
    pub alarm_event_type: String,
    /// Alert category display name.
    #[serde(deserialize_with = "lenient::string")]
    pub alarm_event_type_display: String,
    /// Sub-type.
    #[serde(deserialize_with = "lenient::string")]
    pub event_sub_type: String,
    /// Severity: `serious`, `suspicious`, `remind`.
    #[serde(deserialize_with = "lenient::string")]
    pub level: String,
    /// Status code (1 pending, 2 ignored, 4 confirmed, 8 false positive, 16 processing,
    /// 32 handled, 64 expired, 604 false positive by system); `None` when absent.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub event_status: Option<i64>,
    /// Impact description.
    #[serde(deserialize_with = "lenient::string")]
    pub desc: String,
    /// Key/value evidence as the console shows it.
    #[serde(deserialize_with = "lenient::vec")]
    pub details: Vec<SuspEventDetailEntry>,
    /// First occurrence, `YYYY-MM-DD HH:mm:ss` (service-local time).
    #[serde(deserialize_with = "lenient::string")]
    pub occurrence_time: String,
    /// First occurrence, epoch ms (0 when absent).
    #[serde(deserialize_with = "lenient::i64")]
    pub occurrence_time_stamp: i64,
    /// Latest occurrence, `YYYY-MM-DD HH:mm:ss` (service-local time).
    #[serde(deserialize_with = "lenient::string")]
    pub last_time: String,
    /// Latest occurrence, epoch ms (0 when absent).
    #[serde(deserialize_with = "lenient::i64")]
    pub last_time_stamp: i64,
    /// Handling time, epoch ms (0 when never handled).
    #[serde(deserialize_with = "lenient::i64")]
    pub operate_time: i64,
    /// Handling note.
    #[serde(deserialize_with = "lenient::string")]
    pub operate_msg: String,
    /// Handling result code.
    #[serde(deserialize_with = "lenient::string")]
    pub operate_error_code: String,
    /// User notes.
    #[serde(deserialize_with = "lenient::vec")]
    pub event_notes: Vec<EventNote>,
    /// ATT&CK tactics.
    #[serde(deserialize_with = "lenient::vec")]
    pub tactic_items: Vec<TacticItem>,
    /// Attack stage (often a tactic ID).
    #[serde(deserialize_with = "lenient::string")]
    pub stages: String,
    /// Tags.
    #[serde(deserialize_with = "lenient::string_list")]
    pub mark_list: Vec<String>,
    /// Whitelist rule text.
    #[serde(deserialize_with = "lenient::string")]
    pub mark_mis_rules: String,
    /// AI verdict code.
    #[serde(deserialize_with = "lenient::string")]
    pub support_operate_code: String,
    /// Can be handled online.
    #[serde(deserialize_with = "lenient::bool")]
    pub can_be_deal_on_line: bool,
    /// False-positive mark can be removed.
    #[serde(deserialize_with = "lenient::bool")]
    pub can_cancel_fault: bool,
    /// Automatic defence enabled.
    #[serde(deserialize_with = "lenient::bool")]
    pub auto_breaking: bool,
    /// Critical-event protection mode on the host.
    #[serde(deserialize_with = "lenient::bool")]
    pub contain_hw_mode: bool,
    /// Malicious-behaviour defence rule `open`/`close`.
    #[serde(deserialize_with = "lenient::string")]
    pub malicious_rule_status: String,
    /// Tracing data available.
    #[serde(deserialize_with = "lenient::bool")]
    pub has_trace_info: bool,
    /// Sandbox result available.
    #[serde(deserialize_with = "lenient::bool")]
    pub display_sandbox_result: bool,
    /// Deep file analysis report URL.
    #[serde(deserialize_with = "lenient::string")]
    pub deep_analyze_report_url: String,
    /// Produced by offline analysis.
    #[serde(deserialize_with = "lenient::bool")]
    pub advanced: bool,
    /// LLM analysis tag supported.
    #[serde(deserialize_with = "lenient::bool")]
    pub large_model: bool,
    /// Data source.
    #[serde(deserialize_with = "lenient::string")]
    pub data_source: String,
    /// Detection source.
    #[serde(deserialize_with = "lenient::string")]
    pub detect_source: String,
    /// Edition able to detect it.
    #[serde(deserialize_with = "lenient::string")]
    pub sale_version: String,
    /// Alibaba Cloud account ID.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub source_ali_uid: Option<i64>,
    /// Security Center UUID of the host.
    #[serde(deserialize_with = "lenient::string")]
    pub uuid: String,
    /// ECS instance ID (the node).
    #[serde(deserialize_with = "lenient::string")]
    pub instance_id: String,
    /// ECS instance name.
    #[serde(deserialize_with = "lenient::string")]
    pub instance_name: String,
    /// Public IP.
    #[serde(deserialize_with = "lenient::string")]
    pub internet_ip: String,
    /// Private IP.
    #[serde(deserialize_with = "lenient::string")]
    pub intranet_ip: String,
    /// Cluster ID.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_cluster_id: String,
    /// Cluster name.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_cluster_name: String,
    /// Namespace.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_namespace: String,
    /// Pod.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_pod_name: String,
    /// Node ID.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_node_id: String,
    /// Node name.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_node_name: String,
    /// Container application.
    #[serde(deserialize_with = "lenient::string")]
    pub app_name: String,
    /// Container ID.
    #[serde(deserialize_with = "lenient::string")]
    pub container_id: String,
    /// Image ID.
    #[serde(deserialize_with = "lenient::string")]
    pub container_image_id: String,
    /// Full image reference.
    #[serde(deserialize_with = "lenient::string")]
    pub container_image_name: String,
    /// Image UUID.
    #[serde(deserialize_with = "lenient::string")]
    pub image_uuid: String,
    /// The cluster ID again, under the lower-camel key `clusterId` the service also sends.
    #[serde(rename = "clusterId", deserialize_with = "lenient::string")]
    pub cluster_id_lower: String,
}

impl SuspEvent {
    /// The cluster ID from `K8sClusterId`, else `clusterId`.
    pub fn cluster_id(&self) -> Option<String> {
        first_non_empty([self.k8s_cluster_id.as_str(), self.cluster_id_lower.as_str()])
    }
}

impl ListItem for SuspEvent {
    const ITEM_KEYS: &'static [&'static str] = &["SuspEvents", "suspEvents"];
}

/// One `Details[]` evidence entry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SuspEventDetailEntry {
    /// Label as displayed.
    #[serde(deserialize_with = "lenient::string")]
    pub name_display: String,
    /// `text` or `html`.
    #[serde(rename = "Type", deserialize_with = "lenient::string")]
    pub kind: String,
    /// Raw value.
    #[serde(deserialize_with = "lenient::string")]
    pub value: String,
    /// Value as displayed.
    #[serde(deserialize_with = "lenient::string")]
    pub value_display: String,
}

/// One `EventNotes[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EventNote {
    /// Note text.
    #[serde(deserialize_with = "lenient::string")]
    pub note: String,
    /// Note ID.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub note_id: Option<i64>,
    /// When it was written (`YYYY-MM-DD HH:mm:ss`).
    #[serde(deserialize_with = "lenient::string")]
    pub note_time: String,
}

/// One `TacticItems[]` entry (MITRE ATT&CK).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TacticItem {
    /// Tactic ID, e.g. `TA0040`.
    #[serde(deserialize_with = "lenient::string")]
    pub tactic_id: String,
    /// Display name, e.g. `Impact`.
    #[serde(deserialize_with = "lenient::string")]
    pub tactic_display_name: String,
}

/// `DescribeSuspEventDetail` response (flat; `EventStatus` is a string here, unlike the list).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SuspEventDetail {
    /// Request ID.
    #[serde(deserialize_with = "lenient::string")]
    pub request_id: String,
    /// Event ID.
    #[serde(deserialize_with = "lenient::opt_id")]
    pub id: Option<RecordId>,
    /// Event name.
    #[serde(deserialize_with = "lenient::string")]
    pub event_name: String,
    /// Event type description.
    #[serde(deserialize_with = "lenient::string")]
    pub event_type_desc: String,
    /// Event description.
    #[serde(deserialize_with = "lenient::string")]
    pub event_desc: String,
    /// Status code (sent as a string by this action).
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub event_status: Option<i64>,
    /// Severity.
    #[serde(deserialize_with = "lenient::string")]
    pub level: String,
    /// Latest occurrence (`YYYY-MM-DD HH:mm:ss`).
    #[serde(deserialize_with = "lenient::string")]
    pub last_time: String,
    /// Host UUID.
    #[serde(deserialize_with = "lenient::string")]
    pub uuid: String,
    /// Evidence.
    #[serde(deserialize_with = "lenient::vec")]
    pub details: Vec<SuspEventDetailEntry>,
}

/// `GetClusterSuspEventStatistics` response.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SuspEventStatisticsResponse {
    /// Request ID.
    #[serde(deserialize_with = "lenient::string")]
    pub request_id: String,
    /// Unhandled alert counts per level.
    #[serde(deserialize_with = "lenient::object")]
    pub susp_statistics: SuspStatistics,
}

/// Unhandled alert counts per level.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SuspStatistics {
    /// `serious` alerts.
    #[serde(deserialize_with = "lenient::i64")]
    pub serious: i64,
    /// `suspicious` alerts.
    #[serde(deserialize_with = "lenient::i64")]
    pub suspicious: i64,
    /// `remind` alerts.
    #[serde(deserialize_with = "lenient::i64")]
    pub remind: i64,
}

// ---------------------------------------------------------------------------------------------
// Vulnerabilities

/// `DescribeVulList` response.
pub type VulListResponse = Page<VulRecord>;

/// One `VulRecords[]` record: a vulnerability on one asset (docs/sas-api.md §2.1).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VulRecord {
    /// Record ID — the dedup key.
    #[serde(deserialize_with = "lenient::opt_id")]
    pub primary_id: Option<RecordId>,
    /// Rule name, e.g. `alinux3:3:ALINUX3-SA-2024:0057`.
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    /// Human title.
    #[serde(deserialize_with = "lenient::string")]
    pub alias_name: String,
    /// `cve`, `sys`, `cms`, `app`, `emg`, `sca`.
    #[serde(rename = "Type", deserialize_with = "lenient::string")]
    pub kind: String,
    /// Tag (`oval`, `system`, `cms`, `sca`).
    #[serde(deserialize_with = "lenient::string")]
    pub tag: String,
    /// `AI` for AI components.
    #[serde(deserialize_with = "lenient::string")]
    pub rule_tag: String,
    /// Comma list of CVE IDs.
    #[serde(deserialize_with = "lenient::string")]
    pub related: String,
    /// Fix priority: `asap`, `later`, `nntf`.
    #[serde(deserialize_with = "lenient::string")]
    pub necessity: String,
    /// Status code (1 unfixed ... 20 expired); `None` when absent.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub status: Option<i64>,
    /// Fix progress.
    #[serde(deserialize_with = "lenient::i64")]
    pub progress: i64,
    /// Fix result code.
    #[serde(deserialize_with = "lenient::string")]
    pub result_code: String,
    /// Fix result message.
    #[serde(deserialize_with = "lenient::string")]
    pub result_message: String,
    /// First seen, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub first_ts: i64,
    /// Last seen, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub last_ts: i64,
    /// Status change, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub modify_ts: i64,
    /// Fixed at, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub repair_ts: i64,
    /// Easily exploitable.
    #[serde(deserialize_with = "lenient::bool")]
    pub real_risk: bool,
    /// RASP support.
    #[serde(deserialize_with = "lenient::i64")]
    pub rasp_defend: i64,
    /// RASP mode.
    #[serde(deserialize_with = "lenient::i64")]
    pub rasp_status: i64,
    /// Host UUID.
    #[serde(deserialize_with = "lenient::string")]
    pub uuid: String,
    /// ECS instance ID.
    #[serde(deserialize_with = "lenient::string")]
    pub instance_id: String,
    /// ECS instance name.
    #[serde(deserialize_with = "lenient::string")]
    pub instance_name: String,
    /// Public IP.
    #[serde(deserialize_with = "lenient::string")]
    pub internet_ip: String,
    /// Private IP.
    #[serde(deserialize_with = "lenient::string")]
    pub intranet_ip: String,
    /// Region of the host.
    #[serde(deserialize_with = "lenient::string")]
    pub region_id: String,
    /// Asset group.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub group_id: Option<i64>,
    /// OS name.
    #[serde(deserialize_with = "lenient::string")]
    pub os_name: String,
    /// OS version.
    #[serde(deserialize_with = "lenient::string")]
    pub os_version: String,
    /// Agent online.
    #[serde(deserialize_with = "lenient::bool")]
    pub online: bool,
    /// Asset bound to a licence.
    #[serde(deserialize_with = "lenient::bool")]
    pub bind: bool,
    /// Edition code (a string on the wire).
    #[serde(deserialize_with = "lenient::string")]
    pub auth_version: String,
    /// Cluster ID.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_cluster_id: String,
    /// Namespace (container context).
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_namespace: String,
    /// Node ID.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_node_id: String,
    /// Node name.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_node_name: String,
    /// Pod.
    #[serde(deserialize_with = "lenient::string")]
    pub k8s_pod_name: String,
    /// Namespace.
    #[serde(deserialize_with = "lenient::string")]
    pub namespace: String,
    /// Container ID.
    #[serde(deserialize_with = "lenient::string")]
    pub container_id: String,
    /// Image.
    #[serde(deserialize_with = "lenient::string")]
    pub image: String,
    /// The extended content (description, CVEs, affected packages).
    #[serde(deserialize_with = "lenient::object")]
    pub extend_content_json: VulExtendContent,
    /// Lower-camel `clusterId`, in case the service sends it here too.
    #[serde(rename = "clusterId", deserialize_with = "lenient::string")]
    pub cluster_id_lower: String,
}

impl VulRecord {
    /// The cluster ID from `K8sClusterId`, else `clusterId`.
    pub fn cluster_id(&self) -> Option<String> {
        first_non_empty([self.k8s_cluster_id.as_str(), self.cluster_id_lower.as_str()])
    }

    /// CVE IDs from `ExtendContentJson.cveList` and `Related`, de-duplicated in order.
    pub fn cves(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let related = lenient::to_string_list(&Value::String(self.related.clone()));
        for c in self
            .extend_content_json
            .cve_list
            .iter()
            .chain(related.iter())
        {
            let c = c.trim();
            if !c.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(c)) {
                out.push(c.to_string());
            }
        }
        out
    }
}

impl ListItem for VulRecord {
    const ITEM_KEYS: &'static [&'static str] = &["VulRecords", "vulRecords"];
}

/// `ExtendContentJson` of a vulnerability record.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VulExtendContent {
    /// Record ID again.
    #[serde(deserialize_with = "lenient::opt_id")]
    pub primary_id: Option<RecordId>,
    /// Title.
    #[serde(deserialize_with = "lenient::string")]
    pub alias_name: String,
    /// Description.
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    /// Host IP.
    #[serde(deserialize_with = "lenient::string")]
    pub ip: String,
    /// Last seen, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub last_ts: i64,
    /// OS.
    #[serde(deserialize_with = "lenient::string")]
    pub os: String,
    /// OS release.
    #[serde(deserialize_with = "lenient::string")]
    pub os_release: String,
    /// Status (a string here).
    #[serde(deserialize_with = "lenient::string")]
    pub status: String,
    /// Tag.
    #[serde(deserialize_with = "lenient::string")]
    pub tag: String,
    /// Target.
    #[serde(deserialize_with = "lenient::string")]
    pub target: String,
    /// Affected file.
    #[serde(deserialize_with = "lenient::string")]
    pub absolute_path: String,
    /// Emergency-vuln proof.
    #[serde(deserialize_with = "lenient::string")]
    pub emg_proof: String,
    /// CVE IDs (lower-camel `cveList` on the wire).
    #[serde(rename = "cveList", deserialize_with = "lenient::string_list")]
    pub cve_list: Vec<String>,
    /// Priority score breakdown.
    #[serde(deserialize_with = "lenient::object")]
    pub necessity: VulNecessity,
    /// Affected packages.
    #[serde(deserialize_with = "lenient::vec")]
    pub rpm_entity_list: Vec<RpmEntity>,
}

/// Priority score breakdown (`ExtendContentJson.Necessity`; every value a string on the wire).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct VulNecessity {
    /// Asset factor.
    #[serde(rename = "Assets_factor", deserialize_with = "lenient::string")]
    pub assets_factor: String,
    /// CVSS factor.
    #[serde(rename = "Cvss_factor", deserialize_with = "lenient::string")]
    pub cvss_factor: String,
    /// Environment factor (misspelt `Enviroment_factor` on the wire).
    #[serde(rename = "Enviroment_factor", deserialize_with = "lenient::string")]
    pub enviroment_factor: String,
    /// Whether the score was calculated.
    #[serde(rename = "Is_calc", deserialize_with = "lenient::string")]
    pub is_calc: String,
    /// `none`, `pending`, `normal`.
    #[serde(rename = "Status", deserialize_with = "lenient::string")]
    pub status: String,
    /// Time factor.
    #[serde(rename = "Time_factor", deserialize_with = "lenient::string")]
    pub time_factor: String,
    /// Total score (≥13.5 high, 7–13.5 medium, <7 low).
    #[serde(rename = "Total_score", deserialize_with = "lenient::string")]
    pub total_score: String,
}

/// One affected package (`ExtendContentJson.RpmEntityList[]`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RpmEntity {
    /// Package name.
    #[serde(deserialize_with = "lenient::string")]
    pub name: String,
    /// Installed version.
    #[serde(deserialize_with = "lenient::string")]
    pub version: String,
    /// Full package version.
    #[serde(deserialize_with = "lenient::string")]
    pub full_version: String,
    /// File path.
    #[serde(deserialize_with = "lenient::string")]
    pub path: String,
    /// Process ID using it.
    #[serde(deserialize_with = "lenient::string")]
    pub pid: String,
    /// Image.
    #[serde(deserialize_with = "lenient::string")]
    pub image_name: String,
    /// Container name.
    #[serde(deserialize_with = "lenient::string")]
    pub container_name: String,
    /// Why it matched.
    #[serde(deserialize_with = "lenient::string")]
    pub match_detail: String,
    /// Matching rules.
    #[serde(deserialize_with = "lenient::string_list")]
    pub match_list: Vec<String>,
    /// Fix command.
    #[serde(deserialize_with = "lenient::string")]
    pub update_cmd: String,
    /// Extra JSON text.
    #[serde(deserialize_with = "lenient::string")]
    pub extend_field: String,
}

/// `DescribeClusterVulStatistics` response.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ClusterVulStatisticsResponse {
    /// Request ID.
    #[serde(deserialize_with = "lenient::string")]
    pub request_id: String,
    /// Counts per priority.
    #[serde(deserialize_with = "lenient::object")]
    pub vul_stat: VulStat,
}

/// Vulnerability counts per priority (strings on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VulStat {
    /// `asap`.
    #[serde(deserialize_with = "lenient::i64")]
    pub asap_count: i64,
    /// `later`.
    #[serde(deserialize_with = "lenient::i64")]
    pub later_count: i64,
    /// `nntf`.
    #[serde(deserialize_with = "lenient::i64")]
    pub nntf_count: i64,
}

// ---------------------------------------------------------------------------------------------
// Baseline

/// `DescribeCheckWarningSummary` response.
pub type CheckWarningSummaryResponse = Page<WarningSummary>;
/// `DescribeWarningMachines` response.
pub type WarningMachinesResponse = Page<WarningMachine>;
/// `DescribeCheckWarnings` response.
pub type CheckWarningsResponse = Page<CheckWarning>;
/// `DescribeCheckWarningDetail` response (flat: the detail is the body).
pub type CheckWarningDetailResponse = Item<CheckWarningDetail>;

/// One `WarningSummarys[]` record: a baseline (risk) with failing items (docs/sas-api.md §3.1).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct WarningSummary {
    /// Risk ID.
    #[serde(deserialize_with = "lenient::opt_id")]
    pub risk_id: Option<RecordId>,
    /// Risk (baseline) name.
    #[serde(deserialize_with = "lenient::string")]
    pub risk_name: String,
    /// `high`, `medium`, `low`.
    #[serde(deserialize_with = "lenient::string")]
    pub level: String,
    /// Level-1 type.
    #[serde(deserialize_with = "lenient::string")]
    pub type_alias: String,
    /// Level-2 type.
    #[serde(deserialize_with = "lenient::string")]
    pub sub_type_alias: String,
    /// Checks in the baseline.
    #[serde(deserialize_with = "lenient::i64")]
    pub check_count: i64,
    /// Failing high items.
    #[serde(deserialize_with = "lenient::i64")]
    pub high_warning_count: i64,
    /// Failing medium items.
    #[serde(deserialize_with = "lenient::i64")]
    pub medium_warning_count: i64,
    /// Failing low items.
    #[serde(deserialize_with = "lenient::i64")]
    pub low_warning_count: i64,
    /// Affected assets.
    #[serde(deserialize_with = "lenient::i64")]
    pub warning_machine_count: i64,
    /// Last scan that found it (`YYYY-MM-DD HH:mm:ss`).
    #[serde(deserialize_with = "lenient::string")]
    pub last_found_time: String,
    /// Exploitable.
    #[serde(deserialize_with = "lenient::bool")]
    pub check_exploit: bool,
    /// A container risk.
    #[serde(deserialize_with = "lenient::bool")]
    pub container_risk: bool,
    /// A database risk.
    #[serde(deserialize_with = "lenient::bool")]
    pub database_risk: bool,
}

impl ListItem for WarningSummary {
    const ITEM_KEYS: &'static [&'static str] = &[
        "WarningSummarys",
        "WarningSummaries",
        "warningSummarys",
        "warningSummaries",
    ];
}

/// One `WarningMachines[]` record: an asset affected by a risk (docs/sas-api.md §3.2).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct WarningMachine {
    /// Host UUID.
    #[serde(deserialize_with = "lenient::string")]
    pub uuid: String,
    /// ECS instance ID.
    #[serde(deserialize_with = "lenient::string")]
    pub instance_id: String,
    /// ECS instance name.
    #[serde(deserialize_with = "lenient::string")]
    pub instance_name: String,
    /// Public IP.
    #[serde(deserialize_with = "lenient::string")]
    pub internet_ip: String,
    /// Private IP.
    #[serde(deserialize_with = "lenient::string")]
    pub intranet_ip: String,
    /// Region.
    #[serde(deserialize_with = "lenient::string")]
    pub region_id: String,
    /// Asset type.
    #[serde(deserialize_with = "lenient::string")]
    pub asset_type: String,
    /// Container ID (container assets).
    #[serde(deserialize_with = "lenient::string")]
    pub container_id: String,
    /// Container name (container assets).
    #[serde(deserialize_with = "lenient::string")]
    pub container_name: String,
    /// Edition (an int here).
    #[serde(deserialize_with = "lenient::i64")]
    pub auth_version: i64,
    /// Bound to a licence.
    #[serde(deserialize_with = "lenient::bool")]
    pub bind: bool,
    /// Agent online.
    #[serde(deserialize_with = "lenient::bool")]
    pub online: bool,
    /// Port open.
    #[serde(deserialize_with = "lenient::bool")]
    pub port_open: bool,
    /// Failing high items.
    #[serde(deserialize_with = "lenient::i64")]
    pub high_warning_count: i64,
    /// Failing medium items.
    #[serde(deserialize_with = "lenient::i64")]
    pub medium_warning_count: i64,
    /// Failing low items.
    #[serde(deserialize_with = "lenient::i64")]
    pub low_warning_count: i64,
    /// Passing items.
    #[serde(deserialize_with = "lenient::i64")]
    pub pass_count: i64,
    /// 1 done, 2 verifying.
    #[serde(deserialize_with = "lenient::i64")]
    pub status: i64,
}

impl ListItem for WarningMachine {
    const ITEM_KEYS: &'static [&'static str] = &["WarningMachines", "warningMachines"];
}

/// One `CheckWarnings[]` record: a check item of a risk on an asset (docs/sas-api.md §3.3).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CheckWarning {
    /// Check-warning ID — the dedup key.
    #[serde(deserialize_with = "lenient::opt_id")]
    pub check_warning_id: Option<RecordId>,
    /// Check ID (description and advice depend on it).
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub check_id: Option<i64>,
    /// Check title.
    #[serde(deserialize_with = "lenient::string")]
    pub item: String,
    /// Check type, e.g. `hc.check.type.access_control`.
    #[serde(rename = "Type", deserialize_with = "lenient::string")]
    pub kind: String,
    /// `high`, `medium`, `low`.
    #[serde(deserialize_with = "lenient::string")]
    pub level: String,
    /// 1 failed, 2 verifying, 3 passed, 5 expired, 6 ignored (7 fixing, 8 fixed).
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub status: Option<i64>,
    /// 0 fix unsupported, 1 supported.
    #[serde(deserialize_with = "lenient::i64")]
    pub fix_status: i64,
    /// Handling time, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub last_handle_time: i64,
    /// Ignore reason.
    #[serde(deserialize_with = "lenient::string")]
    pub reason: String,
    /// Execution error.
    #[serde(deserialize_with = "lenient::string")]
    pub exec_error_message: String,
    /// Host UUID.
    #[serde(deserialize_with = "lenient::string")]
    pub uuid: String,
    /// Container ID.
    #[serde(deserialize_with = "lenient::string")]
    pub container_id: String,
    /// Container name.
    #[serde(deserialize_with = "lenient::string")]
    pub container_name: String,
}

impl ListItem for CheckWarning {
    const ITEM_KEYS: &'static [&'static str] = &["CheckWarnings", "checkWarnings"];
}

/// `DescribeCheckWarningDetail` body: what a check is and how to fix it (docs/sas-api.md §3.4).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CheckWarningDetail {
    /// Request ID.
    #[serde(deserialize_with = "lenient::string")]
    pub request_id: String,
    /// Check ID.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub check_id: Option<i64>,
    /// Check title.
    #[serde(deserialize_with = "lenient::string")]
    pub item: String,
    /// Level.
    #[serde(deserialize_with = "lenient::string")]
    pub level: String,
    /// Check type.
    #[serde(rename = "Type", deserialize_with = "lenient::string")]
    pub kind: String,
    /// What the check verifies.
    #[serde(deserialize_with = "lenient::string")]
    pub description: String,
    /// How to fix it.
    #[serde(deserialize_with = "lenient::string")]
    pub advice: String,
    /// Extra prompt.
    #[serde(deserialize_with = "lenient::string")]
    pub prompt: String,
    /// Column layout of the asset info grid.
    #[serde(deserialize_with = "lenient::vec")]
    pub check_detail_columns: Vec<CheckDetailColumn>,
    /// Asset-specific evidence rows.
    #[serde(deserialize_with = "lenient::maps")]
    pub check_detail_asset_info: Vec<Map<String, Value>>,
}

/// One `CheckDetailColumns[]` entry.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CheckDetailColumn {
    /// Column key.
    #[serde(deserialize_with = "lenient::string")]
    pub key: String,
    /// Column label.
    #[serde(deserialize_with = "lenient::string")]
    pub show_name: String,
    /// `grid` or `text`.
    #[serde(rename = "Type", deserialize_with = "lenient::string")]
    pub kind: String,
    /// Sub-columns of a grid.
    #[serde(deserialize_with = "lenient::vec")]
    pub grids: Vec<CheckDetailGrid>,
}

/// One `Grids[]` sub-column.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CheckDetailGrid {
    /// Key.
    #[serde(deserialize_with = "lenient::string")]
    pub key: String,
    /// Label.
    #[serde(deserialize_with = "lenient::string")]
    pub show_name: String,
    /// Type.
    #[serde(rename = "Type", deserialize_with = "lenient::string")]
    pub kind: String,
}

/// `GetClusterCheckItemWarningStatistics` response.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CheckItemWarningStatisticsResponse {
    /// Request ID.
    #[serde(deserialize_with = "lenient::string")]
    pub request_id: String,
    /// Failing item counts per level.
    #[serde(deserialize_with = "lenient::object")]
    pub data: CheckItemWarningStatistics,
}

/// Failing baseline item counts per level.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CheckItemWarningStatistics {
    /// High.
    #[serde(deserialize_with = "lenient::i64")]
    pub high_warning_count: i64,
    /// Medium.
    #[serde(deserialize_with = "lenient::i64")]
    pub medium_warning_count: i64,
    /// Low.
    #[serde(deserialize_with = "lenient::i64")]
    pub low_warning_count: i64,
}

/// One failing (or handled) check on one asset, as the baseline walk assembles it from the
/// three listings and the detail call.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineItem {
    /// The risk (baseline) it belongs to.
    pub risk: Item<WarningSummary>,
    /// The affected asset.
    pub machine: Item<WarningMachine>,
    /// The check result.
    pub check: Item<CheckWarning>,
    /// Description and advice of the check, when fetched.
    pub detail: Option<Item<CheckWarningDetail>>,
}

impl BaselineItem {
    /// The four raw bodies as one object: `{"risk", "machine", "check", "detail"}`.
    pub fn raw(&self) -> Value {
        self.clone().into_raw()
    }

    /// [`BaselineItem::raw`], consuming the item (no copy).
    pub fn into_raw(self) -> Value {
        serde_json::json!({
            "risk": self.risk.raw,
            "machine": self.machine.raw,
            "check": self.check.raw,
            "detail": self.detail.map(|d| d.raw),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Container firewall

/// `ListInterceptionHistory` response.
pub type InterceptionHistoryResponse = Page<InterceptionHistory>;

/// One `InterceptionHistoryList[]` record: a container firewall alert (docs/sas-api.md §4.1).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct InterceptionHistory {
    /// Record ID — the dedup key.
    #[serde(deserialize_with = "lenient::opt_id")]
    pub id: Option<RecordId>,
    /// Alert name (an int in the SDK, text in the docs: both accepted).
    #[serde(deserialize_with = "lenient::string")]
    pub interception_name: String,
    /// -1 unknown, 0 none, 1 low, 2 medium, 3 high; `None` when absent.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub risk_level: Option<i64>,
    /// Rule mode: 0 observe, 1 block, 2 alert, 3 allow.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub interception_type: Option<i64>,
    /// Mode actually applied.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub real_interception_type: Option<i64>,
    /// 0 unhandled, 1 handled, 2 manually handled, 3 ignored.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub status: Option<i64>,
    /// Cluster ID.
    #[serde(deserialize_with = "lenient::string")]
    pub cluster_id: String,
    /// Cluster name.
    #[serde(deserialize_with = "lenient::string")]
    pub cluster_name: String,
    /// Rule ID.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub rule_id: Option<i64>,
    /// Rule name.
    #[serde(deserialize_with = "lenient::string")]
    pub rule_name: String,
    /// Rule source object.
    #[serde(deserialize_with = "lenient::string")]
    pub src_rule_target_name: String,
    /// Rule source namespace.
    #[serde(deserialize_with = "lenient::string")]
    pub src_namespace: String,
    /// Rule source application.
    #[serde(deserialize_with = "lenient::string")]
    pub src_app_name: String,
    /// Rule destination object.
    #[serde(deserialize_with = "lenient::string")]
    pub dst_rule_target_name: String,
    /// Rule destination namespace.
    #[serde(deserialize_with = "lenient::string")]
    pub dst_namespace: String,
    /// Rule destination application.
    #[serde(deserialize_with = "lenient::string")]
    pub dst_app_name: String,
    /// Destination port.
    #[serde(deserialize_with = "lenient::opt_i64")]
    pub dst_port: Option<i64>,
    /// Observed source application.
    #[serde(deserialize_with = "lenient::string")]
    pub real_src_app_name: String,
    /// Observed source namespace.
    #[serde(deserialize_with = "lenient::string")]
    pub real_src_namespace: String,
    /// Observed source pod.
    #[serde(deserialize_with = "lenient::string")]
    pub real_src_pod_name: String,
    /// Observed source image.
    #[serde(deserialize_with = "lenient::string")]
    pub real_src_image_name: String,
    /// Observed destination application.
    #[serde(deserialize_with = "lenient::string")]
    pub real_dst_app_name: String,
    /// Observed destination namespace.
    #[serde(deserialize_with = "lenient::string")]
    pub real_dst_namespace: String,
    /// Observed destination pod.
    #[serde(deserialize_with = "lenient::string")]
    pub real_dst_pod_name: String,
    /// Observed destination image.
    #[serde(deserialize_with = "lenient::string")]
    pub real_dst_image_name: String,
    /// First occurrence on the current day, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub first_time: i64,
    /// Last occurrence on the current day, epoch ms.
    #[serde(deserialize_with = "lenient::i64")]
    pub last_time: i64,
    /// Attempts.
    #[serde(deserialize_with = "lenient::i64")]
    pub try_count: i64,
}

impl ListItem for InterceptionHistory {
    const ITEM_KEYS: &'static [&'static str] =
        &["InterceptionHistoryList", "interceptionHistoryList"];
}

/// `GetInterceptionSummary` response.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct InterceptionSummaryResponse {
    /// Request ID.
    #[serde(deserialize_with = "lenient::string")]
    pub request_id: String,
    /// Counters.
    #[serde(deserialize_with = "lenient::object")]
    pub interception_summary: InterceptionSummary,
}

/// Container firewall counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct InterceptionSummary {
    /// Clusters.
    #[serde(deserialize_with = "lenient::i64")]
    pub cluster_count: i64,
    /// Clusters with the firewall on.
    #[serde(deserialize_with = "lenient::i64")]
    pub open_cluster_count: i64,
    /// Clusters with the firewall off.
    #[serde(deserialize_with = "lenient::i64")]
    pub close_cluster_count: i64,
    /// Rules.
    #[serde(deserialize_with = "lenient::i64")]
    pub rule_count: i64,
    /// Enabled rules.
    #[serde(deserialize_with = "lenient::i64")]
    pub open_rule_count: i64,
    /// Disabled rules.
    #[serde(deserialize_with = "lenient::i64")]
    pub close_rule_count: i64,
    /// Interceptions in the recent window (for the requested cluster).
    #[serde(deserialize_with = "lenient::i64")]
    pub interception_count_in_days: i64,
    /// Risks today.
    #[serde(deserialize_with = "lenient::i64")]
    pub risk_count_today: i64,
    /// Risks in 30 days.
    #[serde(rename = "RiskCount30Day", deserialize_with = "lenient::i64")]
    pub risk_count_30_day: i64,
    /// Risks in 180 days.
    #[serde(rename = "RiskCount180Day", deserialize_with = "lenient::i64")]
    pub risk_count_180_day: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample(name: &str) -> Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/samples")
            .join(format!("{name}.json"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn a_list_sent_as_an_index_keyed_object_is_read_as_the_list() {
        let page = Page::<SuspEvent>::from_value(json!({
            "TotalCount": "2",
            "SuspEvents": {"0": {"Id": "7"}, "1": {"Id": "9"}}
        }))
        .unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, vec![Some("7".into()), Some("9".into())]);
        assert_eq!(page.meta.total_count, Some(2));
        // A lone record stays one record.
        let page = Page::<SuspEvent>::from_value(json!({"SuspEvents": {"Id": 3}})).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].id, Some("3".into()));
        assert_eq!(
            index_keyed(json!({"0": 1, "2": 3}).as_object().unwrap().clone()).len(),
            1,
            "not every index present: one record"
        );
    }

    #[test]
    fn lenient_integers() {
        for (v, want) in [
            (json!(12), Some(12)),
            (json!(-3), Some(-3)),
            (json!("12"), Some(12)),
            (json!(" 12 "), Some(12)),
            (json!("12.7"), Some(12)),
            (json!(12.9), Some(12)),
            (json!(true), Some(1)),
            (json!(u64::MAX), Some(i64::MAX)),
            (json!(null), None),
            (json!(""), None),
            (json!("abc"), None),
            (json!([1]), None),
            (json!({"a": 1}), None),
        ] {
            assert_eq!(lenient::to_i64(&v), want, "{v}");
        }
    }

    #[test]
    fn lenient_strings() {
        for (v, want) in [
            (json!("abc"), "abc"),
            (json!(42), "42"),
            (json!(-1), "-1"),
            (json!(1.5), "1.5"),
            (json!(true), "true"),
            (json!(null), ""),
            (json!(["a"]), "[\"a\"]"),
        ] {
            assert_eq!(lenient::to_string(&v), want, "{v}");
        }
    }

    #[test]
    fn lenient_bools() {
        for (v, want) in [
            (json!(true), Some(true)),
            (json!(false), Some(false)),
            (json!(1), Some(true)),
            (json!(0), Some(false)),
            (json!("true"), Some(true)),
            (json!("TRUE"), Some(true)),
            (json!("Y"), Some(true)),
            (json!("1"), Some(true)),
            (json!("false"), Some(false)),
            (json!("n"), Some(false)),
            (json!(""), Some(false)),
            (json!("maybe"), None),
            (json!(null), None),
        ] {
            assert_eq!(lenient::to_bool(&v), want, "{v}");
        }
    }

    #[test]
    fn lenient_string_lists() {
        assert_eq!(
            lenient::to_string_list(&json!(["a", 1, "", " b "])),
            vec!["a", "1", "b"]
        );
        assert_eq!(
            lenient::to_string_list(&json!("CVE-1, CVE-2,,")),
            vec!["CVE-1", "CVE-2"]
        );
        assert!(lenient::to_string_list(&json!(null)).is_empty());
        assert_eq!(lenient::to_string_list(&json!(7)), vec!["7"]);
    }

    #[test]
    fn every_listing_sample_decodes() {
        let p: SuspEventsResponse = serde_json::from_value(sample("DescribeSuspEvents")).unwrap();
        assert_eq!(p.items.len(), 4);
        assert_eq!(p.meta.total_count, Some(4));
        assert_eq!(p.request_id, "7E0618A9-D5EF-4220-9471-C42B5E927101");
        let e = &p.items[0];
        assert_eq!(e.id, Some("752312".into()));
        assert_eq!(e.event_status, Some(1));
        assert_eq!(e.details.len(), 4);
        assert_eq!(e.details[2].name_display, "Process ID");
        assert_eq!(e.tactic_items[0].tactic_id, "TA0040");
        assert_eq!(e.cluster_id_lower, "c1234567890abcdef");
        assert_eq!(e.source_ali_uid, Some(1234567890123456));
        assert_eq!(e.raw["Id"], json!(752312));
        assert_eq!(p.items[2].event_notes[0].note_id, Some(30021));

        let p: VulListResponse = serde_json::from_value(sample("DescribeVulList")).unwrap();
        assert_eq!(p.items.len(), 3);
        let v = &p.items[0];
        assert_eq!(v.primary_id, Some("1040311702".into()));
        assert_eq!(v.auth_version, "7");
        assert_eq!(
            v.extend_content_json.cve_list,
            vec!["CVE-2024-1086", "CVE-2023-6817"]
        );
        assert_eq!(v.extend_content_json.necessity.enviroment_factor, "1.5");
        assert_eq!(v.extend_content_json.necessity.total_score, "13.8");
        assert_eq!(
            v.extend_content_json.rpm_entity_list[0].update_cmd,
            "yum update kernel"
        );
        assert_eq!(p.meta.next_token, None);

        let p: CheckWarningSummaryResponse =
            serde_json::from_value(sample("DescribeCheckWarningSummary")).unwrap();
        assert_eq!(
            p.items
                .iter()
                .map(|i| i.risk_id.clone())
                .collect::<Vec<_>>(),
            vec![Some("120".into()), Some("88".into()), Some("37".into())]
        );
        let p: WarningMachinesResponse =
            serde_json::from_value(sample("DescribeWarningMachines")).unwrap();
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.items[2].container_name, "redis-cache-0");
        assert_eq!(p.items[0].auth_version, 7);
        let p: CheckWarningsResponse =
            serde_json::from_value(sample("DescribeCheckWarnings")).unwrap();
        assert_eq!(p.items[1].check_warning_id, Some("81934415".into()));
        assert_eq!(p.items[1].status, Some(6));
        let p: InterceptionHistoryResponse =
            serde_json::from_value(sample("ListInterceptionHistory")).unwrap();
        assert_eq!(p.items.len(), 3);
        assert_eq!(p.meta.current_page, Some(1));
        assert_eq!(p.meta.total_count, Some(3));
        assert_eq!(p.items[0].interception_name, "Abnormal access");
        assert_eq!(p.items[0].risk_level, Some(3));
        assert_eq!(p.items[0].dst_port, Some(6379));
    }

    #[test]
    fn statistics_samples_decode() {
        let s: SuspEventStatisticsResponse =
            serde_json::from_value(sample("GetClusterSuspEventStatistics")).unwrap();
        assert_eq!(
            s.susp_statistics,
            SuspStatistics {
                serious: 2,
                suspicious: 1,
                remind: 1
            }
        );
        let s: ClusterVulStatisticsResponse =
            serde_json::from_value(sample("DescribeClusterVulStatistics")).unwrap();
        assert_eq!(
            s.vul_stat,
            VulStat {
                asap_count: 4,
                later_count: 2,
                nntf_count: 0
            }
        );
        let s: CheckItemWarningStatisticsResponse =
            serde_json::from_value(sample("GetClusterCheckItemWarningStatistics")).unwrap();
        assert_eq!(s.data.medium_warning_count, 13);
        let s: InterceptionSummaryResponse =
            serde_json::from_value(sample("GetInterceptionSummary")).unwrap();
        assert_eq!(s.interception_summary.risk_count_30_day, 43);
        assert_eq!(s.interception_summary.risk_count_180_day, 312);
        assert_eq!(s.interception_summary.interception_count_in_days, 43);
        // Null or wrongly typed nested objects default instead of failing the probe.
        let s: SuspEventStatisticsResponse =
            serde_json::from_value(json!({"RequestId": 5, "SuspStatistics": null})).unwrap();
        assert_eq!(s.request_id, "5");
        assert_eq!(s.susp_statistics, SuspStatistics::default());
        let s: ClusterVulStatisticsResponse =
            serde_json::from_value(json!({"VulStat": "oops"})).unwrap();
        assert_eq!(s.vul_stat, VulStat::default());
    }

    #[test]
    fn alert_with_swapped_types_nulls_and_unknown_fields() {
        let raw = json!({
            "Id": "752312",
            "EventStatus": "32",
            "Level": "serious",
            "Details": null,
            "TacticItems": [{"TacticId": 40, "TacticDisplayName": null}, "junk"],
            "MarkList": "a,b",
            "CanBeDealOnLine": "true",
            "HasTraceInfo": 1,
            "LastTimeStamp": "1716163964000",
            "OccurrenceTimeStamp": null,
            "SourceAliUid": "1234567890123456",
            "clusterId": "c-lower",
            "K8sClusterName": 17,
            "SomethingNew": {"nested": [1, 2]}
        });
        let item: Item<SuspEvent> = serde_json::from_value(raw.clone()).unwrap();
        assert_eq!(item.id, Some("752312".into()));
        assert_eq!(item.event_status, Some(32));
        assert!(item.details.is_empty());
        assert_eq!(item.tactic_items.len(), 1);
        assert_eq!(item.tactic_items[0].tactic_id, "40");
        assert_eq!(item.tactic_items[0].tactic_display_name, "");
        assert_eq!(item.mark_list, vec!["a", "b"]);
        assert!(item.can_be_deal_on_line);
        assert!(item.has_trace_info);
        assert_eq!(item.last_time_stamp, 1716163964000);
        assert_eq!(item.occurrence_time_stamp, 0);
        assert_eq!(item.source_ali_uid, Some(1234567890123456));
        assert_eq!(item.cluster_id().as_deref(), Some("c-lower"));
        assert_eq!(item.k8s_cluster_name, "17");
        assert_eq!(item.raw, raw, "the raw record is kept untouched");
        // An empty object decodes to defaults with no identity.
        let empty: Item<SuspEvent> = serde_json::from_value(json!({})).unwrap();
        assert_eq!(empty.id, None);
        assert_eq!(empty.event_status, None);
        assert!(empty.cluster_id().is_none());
        // K8sClusterId wins over clusterId when both are present.
        let both: Item<SuspEvent> =
            serde_json::from_value(json!({"K8sClusterId": "c-upper", "clusterId": "c-lower"}))
                .unwrap();
        assert_eq!(both.cluster_id().as_deref(), Some("c-upper"));
    }

    #[test]
    fn interception_name_as_int_or_string() {
        for (name, want) in [
            (json!("Abnormal access"), "Abnormal access"),
            (json!(3), "3"),
            (json!(null), ""),
        ] {
            let item: Item<InterceptionHistory> = serde_json::from_value(json!({
                "Id": 1, "InterceptionName": name, "RiskLevel": "2", "DstPort": "6379",
                "Status": null, "TryCount": "37"
            }))
            .unwrap();
            assert_eq!(item.interception_name, want);
            assert_eq!(item.risk_level, Some(2));
            assert_eq!(item.dst_port, Some(6379));
            assert_eq!(item.status, None);
            assert_eq!(item.try_count, 37);
        }
        let missing: Item<InterceptionHistory> = serde_json::from_value(json!({"Id": 2})).unwrap();
        assert_eq!(missing.risk_level, None);
        assert_eq!(missing.interception_name, "");
    }

    #[test]
    fn vul_extend_content_as_json_text_and_odd_shapes() {
        let item: Item<VulRecord> = serde_json::from_value(json!({
            "PrimaryId": 7,
            "Status": "1",
            "AuthVersion": 7,
            "Related": "CVE-2024-1, CVE-2024-2",
            "ExtendContentJson": "{\"cveList\":\"CVE-2024-2,CVE-2024-3\",\"Necessity\":{\"Total_score\":13.8},\"RpmEntityList\":{\"Name\":\"kernel\",\"MatchList\":null}}"
        }))
        .unwrap();
        assert_eq!(item.status, Some(1));
        assert_eq!(item.auth_version, "7");
        let x = &item.extend_content_json;
        assert_eq!(x.cve_list, vec!["CVE-2024-2", "CVE-2024-3"]);
        assert_eq!(x.necessity.total_score, "13.8");
        assert_eq!(x.rpm_entity_list.len(), 1);
        assert_eq!(x.rpm_entity_list[0].name, "kernel");
        assert_eq!(item.cves(), vec!["CVE-2024-2", "CVE-2024-3", "CVE-2024-1"]);
        let bad: Item<VulRecord> =
            serde_json::from_value(json!({"ExtendContentJson": "not json", "cveList": 1})).unwrap();
        assert_eq!(bad.extend_content_json, VulExtendContent::default());
    }

    #[test]
    fn a_record_the_parser_cannot_hold_is_quarantined_and_the_page_goes_on() {
        let body = r#"{"RequestId":"r","TotalCount":3,"SuspEvents":[
            {"Id":1,"Name":"a"},
            {"Id":2,"Name":"b","Level":1e400},
            {"Id":3,"Name":"c"}]}"#;
        let page: SuspEventsResponse = serde_json::from_str(body).unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, vec![Some("1".to_string()), Some("3".to_string())]);
        assert_eq!(page.quarantined.len(), 1);
        let q = &page.quarantined[0];
        assert!(q.raw.contains("1e400"), "{}", q.raw);
        assert!(
            q.reason.starts_with("unreadable JSON: number out of range"),
            "{}",
            q.reason
        );
        assert_eq!(q.digest.len(), 64);
        assert_eq!(page.received(), 3);
        // The same record is the same quarantine entry; a long one is kept cut.
        let long = format!(
            r#"{{"SuspEvents":[{{"Id":2,"Name":"b","Level":1e400}}, "{}"], "TotalCount": 2}}"#,
            "x".repeat(3 * QUARANTINE_KEEP_BYTES)
        );
        let again: SuspEventsResponse = serde_json::from_str(&long).unwrap();
        assert_eq!(again.quarantined[0].digest, q.digest);
        assert!(again.quarantined[1].raw.len() <= QUARANTINE_KEEP_BYTES);
        assert_eq!(again.quarantined[1].bytes, 3 * QUARANTINE_KEEP_BYTES + 2);
    }

    #[test]
    fn ids_past_i64_stay_exact_and_distinct() {
        let body = r#"{"TotalCount":3,"SuspEvents":[
            {"Id":9223372036854775807},{"Id":9223372036854775808},{"Id":18446744073709551615},
            {"Id":" 42 "},{"Id":1.5},{"Id":1e30}]}"#;
        let page: SuspEventsResponse = serde_json::from_str(body).unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
        assert_eq!(
            ids,
            vec![
                Some("9223372036854775807".to_string()),
                Some("9223372036854775808".to_string()),
                Some("18446744073709551615".to_string()),
                Some("42".to_string()),
                None,
                None
            ]
        );
    }

    #[test]
    fn a_page_far_larger_than_any_page_size_is_refused_while_read() {
        let records = vec![r#"{"Id":1}"#; MAX_PAGE_RECORDS + 1].join(",");
        let body = format!(r#"{{"TotalCount":5,"SuspEvents":[{records}]}}"#);
        let err = serde_json::from_str::<SuspEventsResponse>(&body).unwrap_err();
        assert!(
            err.to_string().contains("a page of more than 1000 records"),
            "{err}"
        );
        let at_cap = vec![r#"{"Id":1}"#; MAX_PAGE_RECORDS].join(",");
        let body = format!(r#"{{"TotalCount":5,"SuspEvents":[{at_cap}]}}"#);
        let page = serde_json::from_str::<SuspEventsResponse>(&body).unwrap();
        assert_eq!(page.received(), MAX_PAGE_RECORDS);
        // A list sent as an index-keyed object is read in index order; the cap holds too.
        let page: SuspEventsResponse = serde_json::from_str(
            r#"{"TotalCount":2,"SuspEvents":{"1":{"Id":"b"},"0":{"Id":"a"}}}"#,
        )
        .unwrap();
        let ids: Vec<_> = page.items.iter().map(|i| i.id.clone()).collect();
        assert_eq!(ids, vec![Some("a".to_string()), Some("b".to_string())]);
        let page: SuspEventsResponse =
            serde_json::from_str(r#"{"TotalCount":1,"SuspEvents":{"Id":7,"Name":"one"}}"#).unwrap();
        assert_eq!(page.items[0].name, "one");
        assert_eq!(page.items[0].raw, json!({"Id":7,"Name":"one"}));
    }

    #[test]
    fn page_info_misspelling_and_odd_list_keys() {
        let p: InterceptionHistoryResponse = serde_json::from_value(json!({
            "RequestId": "r",
            "PageInfo": {"Count": "2", "CurrrentPage": 3, "PageSize": "20", "TotalCount": 41},
            "InterceptionHistoryList": [{"Id": 1}, "not an object", {"Id": 2}]
        }))
        .unwrap();
        assert_eq!(
            p.meta,
            PageMeta {
                current_page: Some(3),
                page_size: Some(20),
                total_count: Some(41),
                count: Some(2),
                next_token: None
            }
        );
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.quarantined.len(), 1);
        assert_eq!(p.quarantined[0].raw, r#""not an object""#);
        assert_eq!(p.quarantined[0].reason, "not a JSON object but a string");
        assert_eq!(p.received(), 3);

        let p: CheckWarningSummaryResponse = serde_json::from_value(json!({
            "CurrentPage": 1, "TotalCount": 1, "WarningSummaries": [{"RiskId": "9"}]
        }))
        .unwrap();
        assert_eq!(p.items[0].risk_id, Some("9".into()));

        assert!(serde_json::from_value::<VulListResponse>(json!([1])).is_err());
        assert!(serde_json::from_value::<Item<VulRecord>>(json!("x")).is_err());
    }

    #[test]
    fn an_answer_without_its_list_is_an_error_unless_paging_says_empty() {
        let page = |v: Value| serde_json::from_value::<VulListResponse>(v);
        for (body, why) in [
            (json!({"RequestId": "X"}), "no list, no paging"),
            (
                json!({"RequestId": "X", "TotalCount": 7}),
                "no list, 7 said to exist",
            ),
            (
                json!({"NextToken": "abc", "VulRecords": null}),
                "a null list, more said to follow",
            ),
            (
                json!({"TotalCount": 1, "VulRecords": "x"}),
                "a list that is a string",
            ),
        ] {
            let e = page(body).expect_err(why).to_string();
            assert!(e.contains("VulRecords"), "{why}: {e}");
        }
        let empty = page(json!({"RequestId": "X", "TotalCount": 0})).unwrap();
        assert!(empty.items.is_empty());
        let empty = page(json!({"Count": 0})).unwrap();
        assert!(empty.items.is_empty());
    }

    #[test]
    fn negative_paging_numbers_are_no_numbers() {
        let page = |v: Value| serde_json::from_value::<VulListResponse>(v).unwrap();
        let p = page(
            json!({"TotalCount": -1, "CurrentPage": -5, "PageSize": i64::MIN,
            "Count": -2, "VulRecords": []}),
        );
        assert_eq!(p.meta.total_count, None);
        assert_eq!(p.meta.current_page, None);
        assert_eq!(p.meta.page_size, None);
        assert_eq!(p.meta.count, None);
        let p = page(json!({"TotalCount": i64::MAX, "VulRecords": []}));
        assert_eq!(p.meta.total_count, Some(i64::MAX));
    }

    #[test]
    fn a_200_carrying_an_error_code_is_an_error() {
        let page = |v: Value| serde_json::from_value::<SuspEventsResponse>(v);
        let e = page(json!({
            "RequestId": "X",
            "Code": "Throttling.User",
            "Message": "Request was denied\u{1b}[2J due to user flow control.",
            "SuspEvents": []
        }))
        .unwrap_err()
        .to_string();
        assert!(e.contains("Throttling.User"), "{e}");
        assert!(!e.contains('\u{1b}'), "the message is scrubbed: {e:?}");
        // Success spellings, and an explicit Success, are not errors.
        for body in [
            json!({"Code": "200", "TotalCount": 0, "SuspEvents": []}),
            json!({"code": "Success", "TotalCount": 0, "SuspEvents": []}),
            json!({"Success": true, "Code": "Whatever", "TotalCount": 0, "SuspEvents": []}),
        ] {
            assert!(page(body.clone()).is_ok(), "{body}");
        }
    }

    #[test]
    fn susp_event_detail_status_is_a_string() {
        let d: SuspEventDetail = serde_json::from_value(json!({
            "Id": 752312, "EventStatus": "1", "Details": [{"NameDisplay": "Process ID", "Value": 28711}]
        }))
        .unwrap();
        assert_eq!(d.event_status, Some(1));
        assert_eq!(d.details[0].value, "28711");
    }

    #[test]
    fn check_warning_detail_decodes() {
        let d: CheckWarningDetailResponse = serde_json::from_value(json!({
            "RequestId": "r", "CheckId": "3201", "Item": "x", "Level": "high",
            "Type": "hc.check.type.access_control", "Description": "d", "Advice": "a",
            "CheckDetailColumns": [{"Key": "k", "ShowName": "K", "Type": "grid",
                "Grids": [{"Key": "g", "ShowName": "G", "Type": "text"}]}],
            "CheckDetailAssetInfo": [{"k": "v", "n": 1}, 5]
        }))
        .unwrap();
        assert_eq!(d.check_id, Some(3201));
        assert_eq!(d.check_detail_columns[0].grids[0].key, "g");
        assert_eq!(d.check_detail_asset_info.len(), 1);
        assert_eq!(d.check_detail_asset_info[0]["n"], json!(1));
    }
}
