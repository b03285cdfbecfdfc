//! API error responses exactly as Security Center sends them (`samples/errors/*.json`): the body
//! `{RequestId, HostId, Code, Message, Recommend}` and the HTTP status from `errors/index.json`.
//!
//! Pure: building an error does no IO; the server turns it into a response.

use serde_json::{Map, Value, json};

/// One error the simulator answers with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    /// Error code, e.g. `Throttling.User`.
    pub code: String,
    /// HTTP status.
    pub status: u16,
    /// Human message.
    pub message: String,
    /// Sent as `x-acs-retry-after` (milliseconds) when set; the SDK then raises a throttling error.
    pub retry_after_ms: Option<u64>,
}

/// HTTP status for a code, from `samples/errors/index.json`; unknown codes get 400 (5xx only for
/// the server-side failures docs/sas-api.md lists).
pub(crate) fn status_for(code: &str) -> u16 {
    match code {
        "InvalidAccessKeyId.NotFound" | "InvalidAction.NotFound" => 404,
        "Forbidden.RAM" | "NoPermission" => 403,
        "ServiceUnavailable" => 503,
        "InternalError" => 500,
        _ => 400,
    }
}

/// The message the real service sends for a code (as in the samples).
pub(crate) fn default_message(code: &str) -> &'static str {
    match code {
        "Throttling.User" => "Request was denied due to user flow control.",
        "Throttling.Api" => "Request was denied due to api flow control.",
        "Throttling" => "Request was denied due to request throttling.",
        "SignatureDoesNotMatch" => "Specified signature is not matched with our calculation.",
        "IncompleteSignature" => "The request signature does not conform to Aliyun standards.",
        "InvalidAccessKeyId.NotFound" => "Specified access key is not found.",
        "InvalidAccessKeyId.Inactive" => "Specified access key is disabled.",
        "InvalidSecurityToken.Expired" => "Specified SecurityToken is expired.",
        "InvalidSecurityToken.MismatchWithAccessKey" => {
            "Specified SecurityToken mismatch with the AccessKey."
        }
        "InvalidTimeStamp.Expired" => "Specified time stamp or date value is expired.",
        "InvalidTimeStamp.Format" => "Specified time stamp or date value is not well formatted.",
        "SignatureNonceUsed" => "Specified signature nonce was used already.",
        "Forbidden.RAM" => {
            "User not authorized to operate on the specified resource, or this API doesn't support RAM."
        }
        "NoPermission" => "caller has no permission",
        "InvalidParameter" => "The specified parameter is invalid.",
        "InvalidAction.NotFound" => "Specified api is not found, please check your url and method.",
        "ServiceUnavailable" => "The request has failed due to a temporary failure of the server.",
        "InternalError" => {
            "The request processing has failed due to some unknown error, exception or failure."
        }
        _ => "The request has failed.",
    }
}

impl ApiError {
    /// An error with the default message and status of `code`.
    pub fn new(code: &str) -> Self {
        Self::with_message(code, default_message(code))
    }

    /// An error with the status of `code` and a custom message.
    pub fn with_message(code: &str, message: impl Into<String>) -> Self {
        ApiError {
            code: code.to_string(),
            status: status_for(code),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// `MissingParameter` naming the parameter, worded like the real service.
    pub fn missing(param: &str) -> Self {
        Self::with_message(
            "MissingParameter",
            format!(
                "The input parameter \"{param}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    /// `InvalidParameter` naming the parameter and why.
    pub fn invalid(param: &str, why: &str) -> Self {
        Self::with_message(
            "InvalidParameter",
            format!("The specified parameter \"{param}\" is invalid: {why}."),
        )
    }

    /// `SecurityEventNotExists`, the documented error for an alert id that does not exist
    /// (contract §5.1): handling and detail actions alike.
    pub fn event_not_exists(id: i64) -> Self {
        Self::with_message(
            "SecurityEventNotExists",
            format!("The security event {id} does not exist."),
        )
    }

    /// `SignatureDoesNotMatch` whose message ends with the server's string to sign, as the real
    /// service does (the classic SDK compares it to diagnose encoding problems).
    pub fn signature_mismatch(string_to_sign: &str) -> Self {
        Self::with_message(
            "SignatureDoesNotMatch",
            format!(
                "{} server string to sign is:{string_to_sign}",
                default_message("SignatureDoesNotMatch")
            ),
        )
    }

    /// The JSON body, keys in the order of the samples.
    pub fn body(&self, request_id: &str, host_id: &str) -> Map<String, Value> {
        let v = json!({
            "RequestId": request_id,
            "HostId": host_id,
            "Code": self.code,
            "Message": self.message,
            "Recommend": format!(
                "https://api.aliyun.com/troubleshoot?q={}&product=Sas&requestId={request_id}",
                self.code
            ),
        });
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_index() {
        assert_eq!(status_for("InvalidAccessKeyId.NotFound"), 404);
        assert_eq!(status_for("Forbidden.RAM"), 403);
        assert_eq!(status_for("ServiceUnavailable"), 503);
        assert_eq!(status_for("InternalError"), 500);
        assert_eq!(status_for("Throttling.User"), 400);
    }

    #[test]
    fn body_has_the_sample_keys_in_order() {
        let b = ApiError::new("Throttling.User").body("RID", "HOST");
        let keys: Vec<&str> = b.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["RequestId", "HostId", "Code", "Message", "Recommend"]
        );
        assert_eq!(
            b["Recommend"],
            "https://api.aliyun.com/troubleshoot?q=Throttling.User&product=Sas&requestId=RID"
        );
    }
}
