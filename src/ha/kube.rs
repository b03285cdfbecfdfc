//! The Kubernetes API server, as little of it as the election and the checkpoint need: `GET`,
//! `POST` and `PUT` of JSON objects in one namespace over the HTTP client the project already
//! uses, with the pod's service-account token (read again for every request: projected tokens
//! rotate) and only the cluster CA trusted.

use std::path::PathBuf;
use std::time::Duration;

/// Where a pod finds its service account.
const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Why an API-server call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 409: the object exists (create) or changed since it was read (update).
    #[error("the object changed under us (409 Conflict): {0}")]
    Conflict(String),
    /// Any other answer than the one expected, with the API server's message.
    #[error("the API server answered {status} to the {what}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// What was asked ("lease read", "checkpoint update", …).
        what: &'static str,
        /// The `Status` object's message, or the start of the body.
        message: String,
    },
    /// The request did not complete (connect, timeout, body).
    #[error("cannot reach the API server for the {what}: {reason}")]
    Transport {
        /// What was asked.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The service-account token or CA could not be read, or an answer made no sense.
    #[error("{0}")]
    Setup(String),
}

/// One namespace of an API server.
#[derive(Clone, Debug)]
pub struct KubeApi {
    http: reqwest::Client,
    /// e.g. `https://10.96.0.1:443` (no trailing slash).
    base: String,
    namespace: String,
    /// The bearer token's file, read for every request; none on a test server.
    token: Option<PathBuf>,
}

impl KubeApi {
    /// The namespace `namespace` at `base` (e.g. a test server's `http://127.0.0.1:port`),
    /// with a bearer token read from `token` for every request when given.
    pub fn new(
        http: reqwest::Client,
        base: &str,
        namespace: &str,
        token: Option<PathBuf>,
    ) -> KubeApi {
        KubeApi {
            http,
            base: base.trim_end_matches('/').to_string(),
            namespace: namespace.to_string(),
            token,
        }
    }

    /// The pod's own namespace through the in-cluster API server (`KUBERNETES_SERVICE_HOST`
    /// and `_PORT`), trusting only the cluster CA, with the pod's service-account token.
    pub fn in_cluster(timeout: Duration) -> Result<KubeApi, ApiError> {
        let env = |k: &str| {
            std::env::var(k)
                .map_err(|_| ApiError::Setup(format!("{k} is not set: not running in a pod?")))
        };
        let (host, port) = (
            env("KUBERNETES_SERVICE_HOST")?,
            env("KUBERNETES_SERVICE_PORT")?,
        );
        let read = |file: &str| {
            let path = format!("{SERVICE_ACCOUNT}/{file}");
            std::fs::read(&path).map_err(|e| ApiError::Setup(format!("{path}: {e}")))
        };
        let namespace = String::from_utf8_lossy(&read("namespace")?)
            .trim()
            .to_string();
        let ca = reqwest::Certificate::from_pem(&read("ca.crt")?)
            .map_err(|e| ApiError::Setup(format!("{SERVICE_ACCOUNT}/ca.crt: {e}")))?;
        let http = reqwest::Client::builder()
            .tls_certs_only([ca])
            .timeout(timeout)
            .no_proxy()
            .build()
            .map_err(|e| ApiError::Setup(format!("HTTP client: {e}")))?;
        // An IPv6 service address needs brackets in a URL.
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(KubeApi::new(
            http,
            &format!("https://{host}:{port}"),
            &namespace,
            Some(PathBuf::from(format!("{SERVICE_ACCOUNT}/token"))),
        ))
    }

    /// `namespace/name`, for logs.
    pub fn describe(&self, name: &str) -> String {
        format!("{}/{name}", self.namespace)
    }

    /// The URL of a namespaced collection, e.g. (`apis/coordination.k8s.io/v1`, `leases`)
    /// or (`api/v1`, `configmaps`).
    pub fn collection(&self, group_version: &str, plural: &str) -> String {
        format!(
            "{}/{group_version}/namespaces/{}/{plural}",
            self.base, self.namespace
        )
    }

    /// An object's `metadata` for a write: name, namespace and, for an update, the version
    /// read.
    pub fn metadata(&self, name: &str, resource_version: Option<&str>) -> serde_json::Value {
        let mut m = serde_json::json!({"name": name, "namespace": self.namespace});
        if let Some(v) = resource_version {
            m["resourceVersion"] = v.into();
        }
        m
    }

    fn authorised(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ApiError> {
        match &self.token {
            Some(path) => {
                let token = std::fs::read_to_string(path)
                    .map_err(|e| ApiError::Setup(format!("{}: {e}", path.display())))?;
                Ok(req.bearer_auth(token.trim()))
            }
            None => Ok(req),
        }
    }

    /// The object at `url`, or `None` when it does not exist.
    pub async fn get(
        &self,
        url: &str,
        what: &'static str,
    ) -> Result<Option<serde_json::Value>, ApiError> {
        let resp = send(self.authorised(self.http.get(url))?, what).await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        decode(resp, what).await.map(Some)
    }

    /// Creates `body` in the collection at `url`; [`ApiError::Conflict`] when it exists.
    pub async fn create(
        &self,
        url: &str,
        body: &serde_json::Value,
        what: &'static str,
    ) -> Result<serde_json::Value, ApiError> {
        self.write(self.http.post(url), body, what).await
    }

    /// Replaces the object at `url` with `body` (whose `metadata.resourceVersion` must still
    /// be current); [`ApiError::Conflict`] when it changed.
    pub async fn replace(
        &self,
        url: &str,
        body: &serde_json::Value,
        what: &'static str,
    ) -> Result<serde_json::Value, ApiError> {
        self.write(self.http.put(url), body, what).await
    }

    async fn write(
        &self,
        req: reqwest::RequestBuilder,
        body: &serde_json::Value,
        what: &'static str,
    ) -> Result<serde_json::Value, ApiError> {
        let req = self.authorised(req.json(body))?;
        decode(send(req, what).await?, what).await
    }
}

async fn send(
    req: reqwest::RequestBuilder,
    what: &'static str,
) -> Result<reqwest::Response, ApiError> {
    req.header("accept", "application/json")
        .send()
        .await
        .map_err(|e| ApiError::Transport {
            what,
            reason: crate::text::error_chain(&e),
        })
}

/// The largest answer read from the API server: a Lease or a ConfigMap is at most 1 MiB in
/// etcd; anything far larger is not one of them and is not buffered whole.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The object in a 2xx answer; 409 is [`ApiError::Conflict`], anything else an
/// [`ApiError::Status`] with the `Status` object's message.
async fn decode(
    mut resp: reqwest::Response,
    what: &'static str,
) -> Result<serde_json::Value, ApiError> {
    let status = resp.status();
    let body = crate::http_body::read_whole(&mut resp, MAX_ANSWER_BYTES)
        .await
        .map_err(|e| ApiError::Transport {
            what,
            reason: match e {
                crate::http_body::BodyError::TooLarge => {
                    format!("the answer is larger than {} MiB", MAX_ANSWER_BYTES >> 20)
                }
                crate::http_body::BodyError::Failed { error, .. } => {
                    crate::text::error_chain(&error)
                }
            },
        })?;
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into());
        return Err(match status.as_u16() {
            409 => ApiError::Conflict(message),
            code => ApiError::Status {
                status: code,
                what,
                message,
            },
        });
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::Setup(format!("the {what} answer is not JSON: {e}")))
}
