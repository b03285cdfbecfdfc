//! Reading an HTTP response body under a size cap: the one loop every HTTP caller uses (the
//! Security Center client, the credential providers, the sinks). A leaf: it imports nothing of
//! ours, so `sas` and `credentials` use it without importing `sinks`.
//!
//! The rule, in one place: a body of exactly `cap` bytes is complete; one byte more is too large.
//! To know which, the loop keeps reading until it holds *more* than `cap` bytes or the body ends.
//! Callers then choose what "too large" means: [`read_capped`] keeps the first `cap` bytes (a
//! failed answer shown in a log), [`read_whole`] refuses the body (an answer that must parse).

/// How a capped read ended.
#[derive(Debug)]
pub enum BodyEnd {
    /// The body ended within the cap.
    Complete,
    /// The body is longer than the cap; the bytes kept are its first `cap` bytes.
    TooLarge,
    /// Reading failed (a timeout, a reset) after the bytes kept.
    Failed(reqwest::Error),
}

/// At most `cap` bytes of a body, and how the read ended.
#[derive(Debug)]
pub struct Capped {
    /// The bytes read, never more than the cap.
    pub bytes: Vec<u8>,
    /// Whether the body was complete, too large, or cut short.
    pub end: BodyEnd,
}

/// Reads `response`'s body until it ends, fails, or holds more than `cap` bytes; keeps at most
/// `cap` of them.
pub async fn read_capped(response: &mut reqwest::Response, cap: usize) -> Capped {
    let mut bytes = Vec::new();
    let end = loop {
        if bytes.len() > cap {
            bytes.truncate(cap);
            break BodyEnd::TooLarge;
        }
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => break BodyEnd::Complete,
            Err(e) => break BodyEnd::Failed(e),
        }
    };
    Capped { bytes, end }
}

/// Why [`read_whole`] returned no body.
#[derive(Debug)]
pub enum BodyError {
    /// The body (or its declared `Content-Length`) is longer than the cap.
    TooLarge,
    /// Reading failed after `read` bytes.
    Failed {
        /// Bytes received before the failure.
        read: usize,
        /// The transport error.
        error: reqwest::Error,
    },
}

/// The whole body, when it is at most `cap` bytes. A `Content-Length` above the cap is refused
/// before anything is read.
pub async fn read_whole(
    response: &mut reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(BodyError::TooLarge);
    }
    let Capped { bytes, end } = read_capped(response, cap).await;
    match end {
        BodyEnd::Complete => Ok(bytes),
        BodyEnd::TooLarge => Err(BodyError::TooLarge),
        BodyEnd::Failed(error) => Err(BodyError::Failed {
            read: bytes.len(),
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// One HTTP/1.1 answer on 127.0.0.1:0, written as `parts` (each flushed on its own, so the
    /// client sees several chunks), then a response to read.
    async fn answer(head: &str, parts: Vec<Vec<u8>>) -> reqwest::Response {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let head = head.to_string();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 1024];
            let _ = conn.read(&mut request).await;
            conn.write_all(head.as_bytes()).await.unwrap();
            for p in parts {
                conn.write_all(&p).await.unwrap();
                conn.flush().await.unwrap();
            }
        });
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        client.get(format!("http://{addr}/")).send().await.unwrap()
    }

    fn chunked(parts: &[&[u8]]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = parts
            .iter()
            .map(|p| {
                let mut c = format!("{:x}\r\n", p.len()).into_bytes();
                c.extend_from_slice(p);
                c.extend_from_slice(b"\r\n");
                c
            })
            .collect();
        out.push(b"0\r\n\r\n".to_vec());
        out
    }

    const CHUNKED: &str =
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";

    #[tokio::test]
    async fn a_body_of_exactly_the_cap_is_complete_and_one_byte_more_is_too_large() {
        let mut r = answer(CHUNKED, chunked(&[b"abcd", b"efgh"])).await;
        let c = read_capped(&mut r, 8).await;
        assert_eq!(c.bytes, b"abcdefgh");
        assert!(matches!(c.end, BodyEnd::Complete), "{:?}", c.end);

        let mut r = answer(CHUNKED, chunked(&[b"abcd", b"efgh", b"i"])).await;
        let c = read_capped(&mut r, 8).await;
        assert_eq!(c.bytes, b"abcdefgh");
        assert!(matches!(c.end, BodyEnd::TooLarge), "{:?}", c.end);

        let mut r = answer(CHUNKED, chunked(&[b"abcd", b"efgh"])).await;
        assert_eq!(read_whole(&mut r, 8).await.unwrap(), b"abcdefgh");
        let mut r = answer(CHUNKED, chunked(&[b"abcd", b"efgh"])).await;
        assert!(matches!(
            read_whole(&mut r, 7).await,
            Err(BodyError::TooLarge)
        ));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_cap_is_refused_unread_and_a_short_body_fails() {
        // The body never comes: only the declared length can refuse it.
        let head = "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n";
        let mut r = answer(head, vec![b"0123".to_vec()]).await;
        assert!(matches!(
            read_whole(&mut r, 99).await,
            Err(BodyError::TooLarge)
        ));

        // The connection closes after 4 of the 100 bytes promised.
        let mut r = answer(head, vec![b"0123".to_vec()]).await;
        match read_whole(&mut r, 100).await {
            Err(BodyError::Failed { read, .. }) => assert_eq!(read, 4),
            other => panic!("{other:?}"),
        }
        let mut r = answer(head, vec![b"0123".to_vec()]).await;
        let c = read_capped(&mut r, 10).await;
        assert_eq!(c.bytes, b"0123");
        assert!(matches!(c.end, BodyEnd::Failed(_)), "{:?}", c.end);
    }
}
