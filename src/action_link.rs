//! Signed action links (issue 17): the URL behind a notification's "Ignore…" button, and its
//! check when a browser brings it back to sasrelay's action page (`[actions]`, served by
//! `daemon::act`). Pure: the key, the clock and the store of spent links are the caller's.
//!
//! A link is `{public_url}/act/{domain}/{id}?t={token}`. The token is
//! `base64url(claims JSON) "." base64url(HMAC-SHA256(key, "sasrelay-action-link-v1\n" ‖ claims))`:
//! it names the source, the finding (domain, Security Center id, fingerprint), the action, the
//! sink that carried it, when it expires and a random nonce. [`verify`] refuses, each with its
//! own [`Refused`]:
//!
//! - a token whose signature does not match (tampered, or minted with another key);
//! - an expired one (`exp` at or before now);
//! - one brought to another finding's page (`/act/{domain}/{id}` names a finding the token
//!   does not);
//! - a malformed one.
//!
//! Single use is the caller's: the page spends a token's nonce in the store (a
//! compare-and-swap insert) before it acts, so a replay finds it spent. A `GET` never acts
//! (chat clients and mail scanners fetch links on their own), only a confirmed `POST` does.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::event::{Event, EventKind};
use crate::finding::Domain;
use crate::render::ActionButton;

/// What the MAC covers before the claims: a key used elsewhere cannot make a valid link.
const CONTEXT: &[u8] = b"sasrelay-action-link-v1\n";

/// Version of [`Claims`].
pub const CLAIMS_VERSION: u32 = 1;

/// Longest token accepted (a real one is about 400 characters).
pub const MAX_TOKEN: usize = 2048;

/// The actions a link may carry: none destructive, none needing more than a reason.
pub const LINK_ACTIONS: &[&str] = &["ignore", "handled", "verify"];

/// What a link lets its holder ask for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Version ([`CLAIMS_VERSION`]).
    pub v: u32,
    /// The configured source.
    pub source: String,
    /// The finding's domain.
    pub domain: Domain,
    /// Its Security Center id (the number of `alert:<id>`).
    pub id: i64,
    /// Its fingerprint (the store's key of its record).
    pub fp: String,
    /// The action (one of [`LINK_ACTIONS`]).
    pub action: String,
    /// The sink whose notification carried the link.
    pub sink: String,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// Random, once per link: what the store marks spent.
    pub nonce: String,
    /// What the page shows of the finding as the notification described it (an alert's
    /// record keeps none): its title, severity, place and image, each clipped.
    #[serde(default, skip_serializing_if = "Shown::is_empty")]
    pub shown: Shown,
}

/// The finding as a notification showed it, clipped to [`SHOWN_CHARS`] characters a field:
/// attacker-written text, escaped by the page like by every sink.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    /// Title.
    #[serde(default, rename = "t", skip_serializing_if = "String::is_empty")]
    pub title: String,
    /// Normalised severity.
    #[serde(default, rename = "s", skip_serializing_if = "String::is_empty")]
    pub severity: String,
    /// Where: cluster / namespace / pod / container, or the host.
    #[serde(default, rename = "w", skip_serializing_if = "String::is_empty")]
    pub place: String,
    /// The container image.
    #[serde(default, rename = "i", skip_serializing_if = "String::is_empty")]
    pub image: String,
}

/// Characters kept of each [`Shown`] field (links stay short enough for every chat).
pub const SHOWN_CHARS: usize = 80;

impl Shown {
    fn is_empty(&self) -> bool {
        *self == Shown::default()
    }

    /// What a link shows of `f`.
    pub fn of(f: &crate::finding::Finding) -> Shown {
        let clip = |s: &str| crate::text::clip(&crate::text::strip_control(s), SHOWN_CHARS);
        let k = &f.kubernetes;
        let parts: Vec<&str> = [
            k.cluster_name.as_deref().or(k.cluster_id.as_deref()),
            k.namespace.as_deref(),
            k.pod.as_deref(),
            k.container_name.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect();
        let place = if parts.is_empty() {
            f.host
                .instance_name
                .as_deref()
                .or(f.host.instance_id.as_deref())
                .unwrap_or_default()
                .to_string()
        } else {
            parts.join(" / ")
        };
        Shown {
            title: clip(&f.title),
            severity: f.severity.as_str().to_string(),
            place: clip(&place),
            image: clip(k.image.as_deref().unwrap_or_default()),
        }
    }
}

impl Claims {
    /// The finding's id as sasrelay writes it (`alert:752312`).
    pub fn finding(&self) -> String {
        format!("{}:{}", id_prefix(self.domain), self.id)
    }
}

/// Why a token is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a token sasrelay makes (wrong shape, not base64, not its JSON, too long).
    Malformed,
    /// The signature does not match: changed after it was made, or made with another key.
    Tampered,
    /// Its time is up.
    Expired,
    /// It was made for another finding than the page it was brought to.
    OtherFinding,
}

impl Refused {
    /// Its name in metrics: `malformed`, `tampered`, `expired`, `other_finding`.
    pub fn name(self) -> &'static str {
        match self {
            Refused::Malformed => "malformed",
            Refused::Tampered => "tampered",
            Refused::Expired => "expired",
            Refused::OtherFinding => "other_finding",
        }
    }

    /// One line for the page and the log.
    pub fn message(self) -> &'static str {
        match self {
            Refused::Malformed => {
                "This link is not a sasrelay action link (it is incomplete or malformed)."
            }
            Refused::Tampered => {
                "This link's signature does not match: it was changed after sasrelay made it, or made with another key."
            }
            Refused::Expired => {
                "This link has expired. Use a newer notification, or sasrelay handle on the command line."
            }
            Refused::OtherFinding => {
                "This link was made for another finding than the one this page is for."
            }
        }
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key"))
}

/// The token of `claims` signed with `key`.
pub fn sign(key: &[u8], claims: &Claims) -> String {
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let body = URL_SAFE_NO_PAD.encode(json);
    let mut m = mac(key);
    m.update(CONTEXT);
    m.update(body.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(m.finalize().into_bytes());
    format!("{body}.{tag}")
}

/// The claims of `token` if `key` signed it, it has not expired at `now_s` and it names the
/// finding `domain`/`id` of the page it was brought to.
pub fn verify(
    key: &[u8],
    token: &str,
    domain: Domain,
    id: i64,
    now_s: i64,
) -> Result<Claims, Refused> {
    if token.len() > MAX_TOKEN {
        return Err(Refused::Malformed);
    }
    let (body, tag) = token.split_once('.').ok_or(Refused::Malformed)?;
    let tag = URL_SAFE_NO_PAD
        .decode(tag)
        .map_err(|_| Refused::Malformed)?;
    let mut m = mac(key);
    m.update(CONTEXT);
    m.update(body.as_bytes());
    m.verify_slice(&tag).map_err(|_| Refused::Tampered)?;
    let json = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| Refused::Malformed)?;
    let claims: Claims = serde_json::from_slice(&json).map_err(|_| Refused::Malformed)?;
    // A link only ever carries one of LINK_ACTIONS; anything else (another version's, a
    // shared key's) is not acted on, whatever its signature.
    if claims.v != CLAIMS_VERSION || !LINK_ACTIONS.contains(&claims.action.as_str()) {
        return Err(Refused::Malformed);
    }
    if claims.exp <= now_s {
        return Err(Refused::Expired);
    }
    if claims.domain != domain || claims.id != id {
        return Err(Refused::OtherFinding);
    }
    Ok(claims)
}

/// The prefix of a finding id in `domain` (`alert`, `vul`, `baseline`, `firewall`).
pub fn id_prefix(domain: Domain) -> &'static str {
    match domain {
        Domain::Alerts => "alert",
        Domain::Vulnerabilities => "vul",
        Domain::Baseline => "baseline",
        Domain::Firewall => "firewall",
    }
}

/// The Security Center id in a finding id (`alert:752312` → 752312); `None` for an id made
/// of a natural key.
pub fn native_id(finding_id: &str) -> Option<i64> {
    let (_, n) = finding_id.split_once(':')?;
    n.parse().ok().filter(|n| *n > 0)
}

/// The actions a link may offer for a finding of `domain` (in button order).
pub fn actions_for(domain: Domain) -> &'static [&'static str] {
    match domain {
        Domain::Alerts => &["ignore", "handled"],
        Domain::Vulnerabilities => &["verify", "ignore"],
        Domain::Baseline => &["ignore"],
        // No handling API (contract §5.4).
        Domain::Firewall => &[],
    }
}

/// Whether `action` on a finding of `domain` needs a reason (Security Center requires one).
pub fn needs_reason(domain: Domain, action: &str) -> bool {
    action == "ignore" && matches!(domain, Domain::Vulnerabilities | Domain::Baseline)
}

/// Mints the links of notifications: `[actions]`' key, public URL, lifetime and offer.
#[derive(Clone)]
pub struct Minter {
    key: crate::secret::Secret,
    base: String,
    ttl_s: i64,
    offer: Vec<String>,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minter")
            .field("base", &self.base)
            .field("ttl_s", &self.ttl_s)
            .field("offer", &self.offer)
            .finish_non_exhaustive()
    }
}

impl Minter {
    /// A minter signing with `key`, for pages under `public_url`, links living `ttl`, offering
    /// the actions in `offer` (of [`LINK_ACTIONS`]).
    pub fn new(
        key: crate::secret::Secret,
        public_url: &str,
        ttl: std::time::Duration,
        offer: Vec<String>,
    ) -> Minter {
        Minter {
            key,
            base: public_url.trim_end_matches('/').to_string(),
            ttl_s: i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2),
            offer,
        }
    }

    /// The action buttons of `event` sent by `sink` at `now_s` (Unix seconds): one per offered
    /// action its domain has, only for an open finding's `new`, `recurring` or `reminder`
    /// event with a Security Center id; none otherwise.
    pub fn buttons(&self, event: &Event, sink: &str, now_s: i64) -> Vec<ActionButton> {
        if !matches!(
            event.kind,
            EventKind::New | EventKind::Recurring | EventKind::Reminder
        ) {
            return Vec::new();
        }
        let Some(f) = &event.finding else {
            return Vec::new();
        };
        let Some(id) = native_id(&f.id) else {
            return Vec::new();
        };
        actions_for(f.domain)
            .iter()
            .filter(|a| self.offer.iter().any(|o| o == *a))
            .map(|action| {
                let claims = Claims {
                    v: CLAIMS_VERSION,
                    source: event.source.clone(),
                    domain: f.domain,
                    id,
                    fp: f.fingerprint.clone(),
                    action: (*action).to_string(),
                    sink: sink.to_string(),
                    exp: now_s.saturating_add(self.ttl_s),
                    nonce: hex::encode(rand::random::<[u8; 12]>()),
                    shown: Shown::of(f),
                };
                ActionButton {
                    action: (*action).to_string(),
                    url: self.url(&claims),
                }
            })
            .collect()
    }

    /// The page URL carrying `claims`' token.
    pub fn url(&self, claims: &Claims) -> String {
        format!(
            "{}/act/{}/{}?t={}",
            self.base,
            claims.domain.as_str(),
            claims.id,
            sign(self.key.expose().as_bytes(), claims)
        )
    }
}

/// `link_ttl` when not given.
pub const DEFAULT_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// `[actions]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawActions {
    listen: Option<String>,
    public_url: Option<String>,
    secret: Option<crate::secret::SecretRef>,
    link_ttl: Option<crate::duration::HumanDuration>,
    offer: Option<Vec<String>>,
    identity_header: Option<String>,
    trusted_proxies: Option<Vec<String>>,
    allowed_identities: Option<Vec<String>>,
    allow_unauthenticated: Option<bool>,
}

/// An address or a network (`10.0.0.0/8`, `::1`), for `trusted_proxies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Net {
    /// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address with or without `/n`.
    pub fn parse(s: &str) -> Option<Net> {
        let (a, p) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: std::net::IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Net { addr, prefix })
    }

    /// Whether `ip` is in it (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let bits = |ip: std::net::IpAddr| -> (u128, u8) {
            match ip.to_canonical() {
                std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
                std::net::IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let (mine, my_len) = bits(self.addr);
        let (theirs, their_len) = bits(ip);
        if my_len != their_len {
            return false;
        }
        // IPv4 addresses sit in the top 32 bits, so the mask counts from the top for both.
        let prefix = u32::from(self.prefix.min(my_len));
        let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
        (mine & mask) == (theirs & mask)
    }
}

/// Checked `[actions]`: the opt-in listener of the action page and the links to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionsSettings {
    /// Where the action page listens.
    pub listen: std::net::SocketAddr,
    /// The page's address as a browser reaches it (the reverse proxy's), without a trailing `/`.
    pub public_url: String,
    /// The key that signs links; `None`: a random key kept in the state directory.
    pub secret: Option<crate::secret::SecretRef>,
    /// How long a link stays valid.
    pub link_ttl: std::time::Duration,
    /// The actions notifications offer (of [`LINK_ACTIONS`]).
    pub offer: Vec<String>,
    /// The header a trusted proxy puts the signed-in user in (lowercase).
    pub identity_header: Option<String>,
    /// The proxies whose `identity_header` is believed.
    pub trusted_proxies: Vec<Net>,
    /// Who may act (from `identity_header`); empty: anyone the proxy let in.
    pub allowed_identities: Vec<String>,
    /// Whether the page acts for a browser with no identity.
    pub allow_unauthenticated: bool,
}

impl ActionsSettings {
    /// Checks `raw`: the settings, or `None` with each problem as (key, message).
    pub fn check(raw: RawActions) -> (Option<ActionsSettings>, Vec<(String, String)>) {
        let mut problems: Vec<(String, String)> = Vec::new();
        let mut problem = |k: &str, m: String| problems.push((k.to_string(), m));
        let listen = match raw
            .listen
            .as_deref()
            .map(str::parse::<std::net::SocketAddr>)
        {
            Some(Ok(a)) => Some(a),
            Some(Err(_)) => {
                problem(
                    "listen",
                    "must be an address with a port, like \"127.0.0.1:9095\"".into(),
                );
                None
            }
            None => {
                problem(
                    "listen",
                    "is required: where the action page listens, like \"127.0.0.1:9095\"".into(),
                );
                None
            }
        };
        let public_url = match raw.public_url.as_deref().map(str::trim) {
            Some(u) => match reqwest::Url::parse(u) {
                Ok(url)
                    if matches!(url.scheme(), "https" | "http")
                        && url.host_str().is_some()
                        && url.query().is_none()
                        && url.fragment().is_none()
                        && url.username().is_empty()
                        && url.password().is_none() =>
                {
                    Some(u.trim_end_matches('/').to_string())
                }
                _ => {
                    problem("public_url", "must be an http(s) URL with a host and no query, fragment or user, like \"https://sasrelay.example.com\"".into());
                    None
                }
            },
            None => {
                problem("public_url", "is required: the action page's address as a browser reaches it (your reverse proxy's), put in every link".into());
                None
            }
        };
        let link_ttl = match raw.link_ttl {
            Some(crate::duration::HumanDuration(d))
                if d < std::time::Duration::from_secs(60)
                    || d > std::time::Duration::from_secs(30 * 86_400) =>
            {
                problem("link_ttl", "must be between 1m and 30d".into());
                DEFAULT_LINK_TTL
            }
            Some(crate::duration::HumanDuration(d)) => d,
            None => DEFAULT_LINK_TTL,
        };
        let offer = raw
            .offer
            .unwrap_or_else(|| LINK_ACTIONS.iter().map(|a| a.to_string()).collect());
        for (i, a) in offer.iter().enumerate() {
            if !LINK_ACTIONS.contains(&a.as_str()) {
                problem(
                    &format!("offer[{i}]"),
                    format!(
                        "{a:?} is not an action a link may carry: {} (whitelisting, fixing and every destructive operation are for `sasrelay handle`)",
                        LINK_ACTIONS.join(", ")
                    ),
                );
            }
        }
        let identity_header = match raw.identity_header.as_deref().map(str::trim) {
            Some(h) if axum::http::HeaderName::from_bytes(h.as_bytes()).is_ok() => {
                Some(h.to_ascii_lowercase())
            }
            Some(_) => {
                problem("identity_header", "is not a valid header name".into());
                None
            }
            None => None,
        };
        let mut trusted_proxies = Vec::new();
        for (i, p) in raw.trusted_proxies.unwrap_or_default().iter().enumerate() {
            match Net::parse(p) {
                Some(n) => trusted_proxies.push(n),
                None => problem(
                    &format!("trusted_proxies[{i}]"),
                    format!("{p:?} is not an address or a network like \"10.0.0.0/8\""),
                ),
            }
        }
        if raw.identity_header.is_some() && trusted_proxies.is_empty() {
            problem("trusted_proxies", "is required with identity_header: the addresses of the proxies that set it (anyone else could send the header)".into());
        }
        let allowed_identities = raw.allowed_identities.unwrap_or_default();
        if !allowed_identities.is_empty() && raw.identity_header.is_none() {
            problem(
                "allowed_identities",
                "needs identity_header: the identities come from the header a trusted proxy sets"
                    .into(),
            );
        }
        let allow_unauthenticated = raw.allow_unauthenticated.unwrap_or(false);
        if raw.identity_header.is_none() && !allow_unauthenticated {
            problem("identity_header", "is needed, or allow_unauthenticated = true: the page acts only for a signed-in user (a trusted proxy's header) unless you allow anyone holding a link".into());
        }
        match (listen, public_url, problems.is_empty()) {
            (Some(listen), Some(public_url), true) => (
                Some(ActionsSettings {
                    listen,
                    public_url,
                    secret: raw.secret,
                    link_ttl,
                    offer,
                    identity_header,
                    trusted_proxies,
                    allowed_identities,
                    allow_unauthenticated,
                }),
                problems,
            ),
            _ => (None, problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims {
            v: CLAIMS_VERSION,
            source: "prod".into(),
            domain: Domain::Alerts,
            id: 752312,
            fp: "ab".repeat(32),
            action: "ignore".into(),
            sink: "slack".into(),
            exp: 1_000,
            nonce: "00112233445566778899aabb".into(),
            shown: Shown {
                title: "Reverse shell".into(),
                severity: "high".into(),
                place: "c-prod / default / web-1 / nginx".into(),
                image: String::new(),
            },
        }
    }

    #[test]
    fn a_signed_token_verifies_for_its_finding_until_it_expires() {
        let t = sign(b"key", &claims());
        assert_eq!(
            verify(b"key", &t, Domain::Alerts, 752312, 999),
            Ok(claims())
        );
        assert_eq!(
            verify(b"key", &t, Domain::Alerts, 752312, 1_000),
            Err(Refused::Expired)
        );
        assert_eq!(
            verify(b"key", &t, Domain::Alerts, 752313, 10),
            Err(Refused::OtherFinding)
        );
        assert_eq!(
            verify(b"key", &t, Domain::Vulnerabilities, 752312, 10),
            Err(Refused::OtherFinding)
        );
        assert_eq!(
            verify(b"other key", &t, Domain::Alerts, 752312, 10),
            Err(Refused::Tampered)
        );
    }

    #[test]
    fn a_signed_link_for_an_action_links_never_carry_is_refused() {
        let mut c = claims();
        c.action = "whitelist".into();
        let t = sign(b"key", &c);
        assert_eq!(
            verify(b"key", &t, Domain::Alerts, 752312, 10),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn any_change_to_a_token_is_refused() {
        let t = sign(b"key", &claims());
        let (body, tag) = t.split_once('.').unwrap();
        // Claims changed (the action, the expiry) but the tag kept.
        let mut other = claims();
        other.action = "handled".into();
        let forged = format!(
            "{}.{tag}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap())
        );
        assert_eq!(
            verify(b"key", &forged, Domain::Alerts, 752312, 10),
            Err(Refused::Tampered)
        );
        // Every single character flipped.
        for i in 0..t.len() {
            let mut bytes = t.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(bytes).unwrap();
            if changed == t {
                continue;
            }
            assert!(
                verify(b"key", &changed, Domain::Alerts, 752312, 10).is_err(),
                "changed at {i}"
            );
        }
        assert_eq!(
            verify(b"key", body, Domain::Alerts, 752312, 10),
            Err(Refused::Malformed)
        );
        assert_eq!(
            verify(b"key", "", Domain::Alerts, 752312, 10),
            Err(Refused::Malformed)
        );
        let long = format!("{t}{}", "A".repeat(MAX_TOKEN));
        assert_eq!(
            verify(b"key", &long, Domain::Alerts, 752312, 10),
            Err(Refused::Malformed)
        );
    }

    #[test]
    fn native_ids_come_from_numeric_finding_ids_only() {
        assert_eq!(native_id("alert:752312"), Some(752312));
        assert_eq!(native_id("vul:12"), Some(12));
        assert_eq!(native_id("baseline:host/risk"), None);
        assert_eq!(native_id("alert:0"), None);
        assert_eq!(native_id("752312"), None);
    }

    #[test]
    fn trusted_proxies_match_addresses_and_networks() {
        let n = Net::parse("10.0.0.0/8").unwrap();
        assert!(n.contains("10.200.1.2".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!n.contains("11.0.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let one = Net::parse("127.0.0.1").unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6 = Net::parse("fd00::/8").unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        assert!(
            Net::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert_eq!(Net::parse("10.0.0.0/33"), None);
        assert_eq!(Net::parse("host.example"), None);
    }

    #[test]
    fn settings_name_every_problem_and_take_defaults() {
        let raw: RawActions = toml::from_str(
            "listen = \"127.0.0.1:9095\"\npublic_url = \"https://relay.example/\"\nidentity_header = \"X-Forwarded-User\"\ntrusted_proxies = [\"127.0.0.1\"]\n",
        )
        .unwrap();
        let (s, problems) = ActionsSettings::check(raw);
        assert!(problems.is_empty(), "{problems:?}");
        let s = s.unwrap();
        assert_eq!(s.public_url, "https://relay.example");
        assert_eq!(s.identity_header.as_deref(), Some("x-forwarded-user"));
        assert_eq!(s.link_ttl, DEFAULT_LINK_TTL);
        assert_eq!(s.offer, LINK_ACTIONS);

        let raw: RawActions = toml::from_str(
            "listen = \"nowhere\"\npublic_url = \"ftp://x/?a\"\noffer = [\"kill_process\"]\nallowed_identities = [\"alice\"]\nlink_ttl = \"1s\"\n",
        )
        .unwrap();
        let (s, problems) = ActionsSettings::check(raw);
        assert!(s.is_none());
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "listen",
                "public_url",
                "link_ttl",
                "offer[0]",
                "allowed_identities",
                "identity_header"
            ]
        );
    }

    #[test]
    fn reasons_are_needed_where_security_center_needs_them() {
        assert!(!needs_reason(Domain::Alerts, "ignore"));
        assert!(needs_reason(Domain::Vulnerabilities, "ignore"));
        assert!(needs_reason(Domain::Baseline, "ignore"));
        assert!(!needs_reason(Domain::Vulnerabilities, "verify"));
    }
}
