//! What the group-robot sinks ([`dingtalk`](super::dingtalk), [`feishu`](super::feishu),
//! [`wecom`](super::wecom)) share. They answer HTTP 200 with a code in the body, so a response
//! is sorted twice: by status ([`http_answer`]), then by code ([`Codes`]).
//!
//! ## Answer codes
//!
//! One parser reads the code for all three ([`answer_code`]): a JSON number or a numeric string
//! (`{"errcode":"0"}`), under the first of the robot's keys that holds one (Feishu's legacy
//! bodies carry only `StatusCode`). Each robot then maps codes to meanings in one table (its
//! `meaning` function, a [`Meaning`] per code it knows); [`Codes::classify`] turns the meaning
//! into an [`Answer`], with the same wording for every robot:
//!
//! | meaning | answer |
//! |---|---|
//! | no code in the body | `Retry` with backoff ("delivery undetermined") |
//! | a code the table does not know | `Retry` with backoff |
//! | [`Meaning::Ok`] | `Ok` |
//! | [`Meaning::Blocked`] | `Blocked`: the robot rests (DingTalk) |
//! | [`Meaning::TooLarge`] | `TooLarge`: the next attempt renders smaller ([`ShrinkMemo`]) |
//! | [`Meaning::Pause`] | `Retry` after the robot's own pause |
//! | [`Meaning::Permanent`] | `Permanent`, with the hint and the response |
//!
//! ## Sending
//!
//! [`Hook`] is one webhook that posts to a single URL (Feishu, WeCom): its label (without the
//! credential), its [`Limiter`], its HTTP client and its [`ShrinkMemo`]. DingTalk keeps a pool
//! of robots and posts itself, through the same [`exchange`].

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::Outcome;
use super::chat::check_fold;
use super::http::{self, ReadBody, check_timeout, exchange, parse_retry_after, status_line};
use super::limit::{Limiter, RateLimit};
use crate::text::{strip_control, truncate_bytes};

/// Bytes of a robot's response body read.
pub const MAX_RESPONSE: usize = 4096;

/// What a robot's answer means for the sink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Code 0.
    Ok,
    /// The robot sends too fast (DingTalk 130101, 410100): rest it.
    Blocked {
        /// The code.
        errcode: i64,
    },
    /// The body is too large (DingTalk 460101, 101002; Feishu 9499; WeCom 40058): render
    /// smaller.
    TooLarge {
        /// The code.
        errcode: i64,
    },
    /// Try again later.
    Retry {
        /// `Retry-After`, when given.
        after: Option<Duration>,
        /// Why.
        reason: String,
    },
    /// Sending again will not help.
    Permanent {
        /// Why, with a hint.
        reason: String,
        /// Status and body.
        response: Option<String>,
    },
}

/// What one answer code means, in a robot's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meaning {
    /// Delivered.
    Ok,
    /// The robot is blocked for sending too fast.
    Blocked,
    /// The message is too large.
    TooLarge,
    /// The robot asks to wait this long; the text says why (`frequency limited`).
    Pause(Duration, &'static str),
    /// Sending again will not help; the text is the hint naming what to fix.
    Permanent(&'static str),
}

/// How a robot's answer body carries its code, and what the codes mean.
#[derive(Clone, Copy, Debug)]
pub struct Codes {
    /// The service, in messages (`DingTalk`).
    pub service: &'static str,
    /// The code's name, in messages (`errcode`, `code`).
    pub name: &'static str,
    /// Keys the code may be under; the first that holds a code wins.
    pub code_keys: &'static [&'static str],
    /// Keys the message may be under; the first present wins.
    pub message_keys: &'static [&'static str],
    /// The table: a code and its message → its meaning; `None` for codes it does not know.
    pub meaning: fn(i64, &str) -> Option<Meaning>,
}

/// The code under the first of `keys` that holds one: a JSON number or a string of digits
/// (surrounding spaces allowed).
pub fn answer_code(body: &Value, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| {
        let c = body.get(*k)?;
        c.as_i64()
            .or_else(|| c.as_str().and_then(|s| s.trim().parse().ok()))
    })
}

impl Codes {
    /// Sorts a robot's response into an [`Answer`] (table in the module doc). Pure: `now`
    /// only turns an HTTP-date `Retry-After` into a delay.
    pub fn classify(
        &self,
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Answer {
        let (line, text, response) = match http_answer(self.service, status, retry_after, body, now)
        {
            Ok(r) => r,
            Err(a) => return a,
        };
        let name = self.name;
        let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
        let Some(code) = answer_code(&parsed, self.code_keys) else {
            let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
                "an"
            } else {
                "a"
            };
            return Answer::Retry {
                after: None,
                reason: format!(
                    "{line} without {article} {name}; delivery undetermined: {}",
                    truncate_bytes(&text, 200)
                ),
            };
        };
        let message = self
            .message_keys
            .iter()
            .find_map(|k| parsed.get(*k))
            .and_then(Value::as_str)
            .map(|s| truncate_bytes(&strip_control(s), 300))
            .unwrap_or_default();
        let service = self.service;
        match (self.meaning)(code, &message) {
            Some(Meaning::Ok) => Answer::Ok,
            Some(Meaning::Blocked) => Answer::Blocked { errcode: code },
            Some(Meaning::TooLarge) => Answer::TooLarge { errcode: code },
            Some(Meaning::Pause(after, what)) => Answer::Retry {
                after: Some(after),
                reason: format!("{name} {code} ({what}) from {service}: {message}"),
            },
            Some(Meaning::Permanent(hint)) => Answer::Permanent {
                reason: format!("{name} {code}: {hint}"),
                response,
            },
            None => Answer::Retry {
                after: None,
                reason: format!("{name} {code} from {service}: {message}"),
            },
        }
    }
}

/// The part of a robot's classification that does not read the body's code: the status line,
/// the body as one bounded line, and the response kept for a dead letter; or, for a status
/// other than 2xx, the answer itself (408, 425, 429, 5xx but 501 and 505: `Retry` with
/// `Retry-After`; a redirect or another status: `Permanent`). Pure.
pub fn http_answer(
    service: &str,
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: OffsetDateTime,
) -> Result<(String, String, Option<String>), Answer> {
    let text = truncate_bytes(strip_control(&String::from_utf8_lossy(body)).trim(), 512);
    let line = status_line(status);
    let response = Some(if text.is_empty() {
        line.clone()
    } else {
        format!("{line}: {text}")
    });
    if (200..300).contains(&status) {
        return Ok((line, text, response));
    }
    Err(match status {
        408 | 425 | 429 | 500 | 502..=504 | 506..=599 => Answer::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
            reason: format!("{line} from {service}"),
        },
        300..=399 => Answer::Permanent {
            reason: format!("{line}: {service} redirected; redirects are not followed"),
            response,
        },
        _ => Answer::Permanent {
            reason: format!("{line} from {service}"),
            response,
        },
    })
}

/// Attempts past the smallest budget ([`crate::render::MAX_SHRINK`]) that cut the text further
/// before a message is given up as too large.
const EXTRA_CUTS: u8 = 3;

/// The shrink level each payload renders at after its robot said "too large", and the size
/// it refused: the next body must be smaller than that, whatever the level's budget would
/// give (a small message refused by a robot with a lower limit would otherwise be sent again
/// byte for byte). Memory only, bounded: cleared when it holds 1024 payloads.
#[derive(Debug, Default)]
pub struct ShrinkMemo {
    levels: Mutex<HashMap<String, (u8, usize)>>,
}

impl ShrinkMemo {
    /// The level to render payload `id` at (0 unless it was too large before).
    pub fn get(&self, id: &str) -> u8 {
        let map = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).map_or(0, |(level, _)| *level)
    }

    /// The size in bytes the robot refused for payload `id` last: render below it.
    pub fn refused(&self, id: &str) -> Option<usize> {
        let map = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).map(|(_, size)| *size)
    }

    /// `Permanent` (forgetting `id`) when the body rendered for payload `id`, `size` bytes,
    /// is not smaller than the one `service` refused: sending it would be refused again.
    pub fn not_smaller(&self, service: &str, id: &str, size: usize) -> Option<Outcome> {
        let refused = self.refused(id)?;
        if size < refused {
            return None;
        }
        self.forget(id);
        Some(Outcome::Permanent {
            reason: format!(
                "{service} refused {refused} bytes as too large, and the message cannot be rendered smaller ({size} bytes)"
            ),
            response: None,
        })
    }

    /// Forgets `id` (delivered or dead-lettered).
    pub fn forget(&self, id: &str) {
        let mut map = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(id);
    }

    /// The outcome of a robot's [`Answer`] for payload `id` (`size` bytes rendered at
    /// `level`) sent to the robot named `label`: delivered and permanent answers forget `id`;
    /// "too large" is [`ShrinkMemo::too_large`]; "blocked" (a robot that names no rest) and
    /// retries are `Retry`.
    pub fn settle(
        &self,
        answer: Answer,
        service: &str,
        label: &str,
        id: &str,
        size: usize,
        level: u8,
    ) -> Outcome {
        match answer {
            Answer::Ok => {
                self.forget(id);
                Outcome::Delivered {
                    detail: format!("accepted by the {label} ({size} bytes, level {level})"),
                }
            }
            Answer::TooLarge { errcode } => self.too_large(service, id, errcode, size, level),
            Answer::Blocked { errcode } => Outcome::Retry {
                after: None,
                reason: format!("code {errcode} (sending too fast) from the {label}"),
            },
            Answer::Retry { after, reason } => Outcome::Retry {
                after,
                reason: format!("{reason} ({label})"),
            },
            Answer::Permanent { reason, response } => {
                self.forget(id);
                Outcome::Permanent {
                    reason: format!("{reason} ({label})"),
                    response,
                }
            }
        }
    }

    /// The outcome of "too large" (`code`) for payload `id`, `size` bytes rendered at `level`:
    /// `Retry` remembering `level + 1` and `size`, or `Permanent` past
    /// [`MAX_SHRINK`](crate::render::MAX_SHRINK) and `EXTRA_CUTS` more.
    pub fn too_large(&self, service: &str, id: &str, code: i64, size: usize, level: u8) -> Outcome {
        // Past the smallest budget the text itself is cut to a quarter of the refused size
        // each time, until the robot takes it or nothing is left to cut (`not_smaller`).
        if level >= crate::render::MAX_SHRINK + EXTRA_CUTS {
            self.forget(id);
            return Outcome::Permanent {
                reason: format!(
                    "code {code}: the message is too large for {service} even at the smallest rendering ({size} bytes)"
                ),
                response: None,
            };
        }
        {
            let mut map = self.levels.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= 1024 {
                map.clear();
            }
            map.insert(id.to_string(), (level + 1, size));
        }
        Outcome::Retry {
            after: None,
            reason: format!(
                "code {code}: {size} bytes is too large for {service}; the next attempt renders at level {}",
                level + 1
            ),
        }
    }
}

/// Checks what every robot sink has: `timezone`, `rate_limit`, `timeout`, `fold_after` and
/// `fold_max_members`.
pub fn check_robot(
    timezone: &str,
    rate_limit: &RateLimit,
    timeout: Duration,
    fold_after: usize,
    fold_max_members: usize,
) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if !crate::render::valid_zone(timezone) {
        p.push((
            "timezone".to_string(),
            format!("unknown time zone {timezone:?}; use an IANA name such as \"Asia/Shanghai\""),
        ));
    }
    p.extend(rate_limit.check("rate_limit"));
    p.extend(check_timeout(timeout));
    p.extend(check_fold(fold_after, fold_max_members));
    p
}

/// Checks a robot's custom `keyword`: 1 to 64 characters on one line.
pub fn check_keyword(keyword: Option<&str>) -> Option<(String, String)> {
    keyword
        .filter(|k| {
            k.trim().is_empty() || k.chars().count() > 64 || k.chars().any(char::is_control)
        })
        .map(|_| {
            (
                "keyword".to_string(),
                "must be 1 to 64 characters on one line".into(),
            )
        })
}

/// One webhook of a robot sink that posts to a single URL (Feishu, WeCom): the URL, a label
/// without the credential, its rate limiter, the HTTP client and the memory of payloads that
/// were too large.
pub struct Hook {
    url: reqwest::Url,
    label: String,
    limiter: Limiter,
    client: reqwest::Client,
    timeout: Duration,
    shrink: ShrinkMemo,
}

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

impl Hook {
    /// `what` names the robot kind (`Feishu bot`); the label is `{what} at scheme://host`.
    pub fn new(
        what: &str,
        url: reqwest::Url,
        rate_limit: &RateLimit,
        timeout: Duration,
    ) -> Result<Hook, String> {
        let label = format!(
            "{what} at {}://{}",
            url.scheme(),
            url.host_str().unwrap_or_default()
        );
        Ok(Hook {
            url,
            label,
            limiter: Limiter::new(rate_limit),
            client: http::client(timeout)?,
            timeout,
            shrink: ShrinkMemo::default(),
        })
    }

    /// `Feishu bot at https://open.feishu.cn`.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Takes a permit, or says how long the sink must wait ([`Outcome::Throttled`]).
    pub fn permit(&self) -> Result<(), Outcome> {
        self.limiter
            .try_acquire()
            .map_err(|after| Outcome::Throttled {
                after: after.max(Duration::from_millis(1)),
            })
    }

    /// The shrink level to render payload `id` at.
    pub fn level(&self, id: &str) -> u8 {
        self.shrink.get(id)
    }

    /// The size this robot refused for payload `id` last ([`ShrinkMemo::refused`]).
    pub fn refused(&self, id: &str) -> Option<usize> {
        self.shrink.refused(id)
    }

    /// One POST of `body` (payload `id`, rendered at `level`), classified by `codes` and
    /// settled ([`ShrinkMemo::settle`]); nothing is sent when the body is not smaller than
    /// one the robot refused as too large ([`ShrinkMemo::not_smaller`]).
    pub async fn post(&self, codes: &Codes, id: &str, body: &Value, level: u8) -> Outcome {
        let body = serde_json::to_vec(body).unwrap_or_default();
        let size = body.len();
        if let Some(refused) = self.shrink.not_smaller(codes.service, id, size) {
            return refused;
        }
        let request = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json; charset=utf-8")
            .body(body);
        let what = format!("POST to the {}", self.label);
        let reply =
            match exchange(request, &what, self.timeout, MAX_RESPONSE, ReadBody::Always).await {
                Ok(r) => r,
                Err(o) => return o,
            };
        let answer = codes.classify(
            reply.status,
            reply.retry_after.as_deref(),
            &reply.body,
            OffsetDateTime::now_utc(),
        );
        self.shrink
            .settle(answer, codes.service, &self.label, id, size, level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_code_is_a_number_or_a_numeric_string_under_the_first_key_that_holds_one() {
        let keys = ["code", "StatusCode"];
        assert_eq!(answer_code(&json!({"code": 0}), &keys), Some(0));
        assert_eq!(answer_code(&json!({"code": "19021"}), &keys), Some(19021));
        assert_eq!(answer_code(&json!({"code": " -1 "}), &keys), Some(-1));
        assert_eq!(answer_code(&json!({"StatusCode": 0}), &keys), Some(0));
        // A key that holds no code falls through to the next.
        assert_eq!(
            answer_code(&json!({"code": "x", "StatusCode": 7}), &keys),
            Some(7)
        );
        for none in [
            json!({}),
            json!({"code": 1.5}),
            json!({"code": null}),
            json!({"code": true}),
            json!({"code": "1e3"}),
            json!([0]),
            Value::Null,
        ] {
            assert_eq!(answer_code(&none, &keys), None, "{none}");
        }
    }
}
