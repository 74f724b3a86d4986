//! What the HTTP sinks share: one TLS client (rustls with the `ring` provider), the mapping
//! of receiver answers to retry decisions, and splitting a batch that is too large.

use std::time::Duration;

use audit_core::SinkError;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// Builds the client all HTTP sinks use: rustls on `ring` (installed as the process default
/// if none is), the platform's trust roots, and bounded timeouts.
pub(crate) fn client(timeout: Duration) -> Result<reqwest::Client, audit_core::Error> {
    // Already installed (by us or the application) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| audit_core::Error::config(format!("cannot build the HTTP client: {e}")))
}

/// How a receiver answered a batch.
#[derive(Debug)]
pub(crate) enum Answer {
    /// Accepted.
    Ok,
    /// Too large (413): send it in smaller pieces.
    TooLarge,
    /// Not accepted; the error says whether retrying can help.
    Failed(SinkError),
}

/// `Retry-After` in seconds (the HTTP-date form is rare from these receivers and ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Maps a status to a decision. `who` names the receiver in messages; the body excerpt
/// helps an operator, and never contains our credentials (receivers do not echo headers).
pub(crate) fn classify(who: &str, status: StatusCode, headers: &HeaderMap, body: &str) -> Answer {
    let excerpt: String = body.chars().take(200).collect();
    let msg = || format!("{who} answered {status}: {excerpt}");
    if status.is_success() {
        return Answer::Ok;
    }
    match status.as_u16() {
        413 => Answer::TooLarge,
        // Busy or throttled: wait as told.
        429 | 503 => {
            let mut e = SinkError::retryable(msg());
            if let Some(after) = retry_after(headers) {
                e = e.with_retry_after(after);
            }
            Answer::Failed(e)
        }
        // Credentials may be fixed by an operator: keep the events and retry.
        401 | 403 | 408 | 409 | 425 => Answer::Failed(SinkError::retryable(msg())),
        s if s >= 500 => Answer::Failed(SinkError::retryable(msg())),
        // The receiver rejects the payload itself.
        _ => Answer::Failed(SinkError::permanent(msg())),
    }
}

/// Maps a transport error (connect, TLS, timeout) to a retryable error without the URL's
/// query (where a credential may be).
#[allow(clippy::needless_pass_by_value)] // shaped for `map_err`
pub(crate) fn transport(who: &str, e: reqwest::Error) -> SinkError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    SinkError::retryable(format!("{who}: {kind}: {}", e.without_url()))
}

#[cfg_attr(
    not(any(
        feature = "webhook",
        feature = "splunk",
        feature = "elasticsearch",
        feature = "datadog"
    )),
    allow(dead_code)
)]
/// Splits `items` into consecutive groups whose encoded sizes (from `size`) stay within
/// `max_bytes` and `max_items`; a single oversized item gets a group of its own.
pub(crate) fn chunks<T>(
    items: &[T],
    max_items: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<std::ops::Range<usize>> {
    chunks_where(items, max_items, max_bytes, size, |_, _| false)
}

/// Like [`chunks`], also starting a new group where `apart(first of the group, item)` says
/// the item may not join it (e.g. a time span limit).
pub(crate) fn chunks_where<T>(
    items: &[T],
    max_items: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
    apart: impl Fn(&T, &T) -> bool,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, item) in items.iter().enumerate() {
        let n = size(item);
        if i > start
            && (i - start >= max_items || bytes + n > max_bytes || apart(&items[start], item))
        {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += n;
    }
    if start < items.len() {
        out.push(start..items.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_both_limits() {
        let sizes = [3, 3, 3, 10, 1, 1, 1, 1];
        let c = chunks(&sizes, 3, 7, |s| *s);
        assert_eq!(c, vec![0..2, 2..3, 3..4, 4..7, 7..8]);
        assert!(chunks::<usize>(&[], 3, 7, |s| *s).is_empty());
    }

    #[test]
    fn statuses() {
        let h = HeaderMap::new();
        assert!(matches!(classify("x", StatusCode::OK, &h, ""), Answer::Ok));
        assert!(matches!(
            classify("x", StatusCode::PAYLOAD_TOO_LARGE, &h, ""),
            Answer::TooLarge
        ));
        let Answer::Failed(e) = classify("x", StatusCode::BAD_REQUEST, &h, "bad") else {
            panic!()
        };
        assert!(e.is_permanent());
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        let Answer::Failed(e) = classify("x", StatusCode::TOO_MANY_REQUESTS, &h, "") else {
            panic!()
        };
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(!e.is_permanent());
        // A rejected credential is kept for retry: an operator can fix it without loss.
        for s in [
            StatusCode::UNAUTHORIZED,
            StatusCode::FORBIDDEN,
            StatusCode::BAD_GATEWAY,
        ] {
            let Answer::Failed(e) = classify("x", s, &HeaderMap::new(), "") else {
                panic!()
            };
            assert!(!e.is_permanent(), "{s}");
        }
    }
}

/// Sends consecutive ranges of a batch in order, halving a range the receiver refuses as too
/// large (413) until it fits; one refused event on its own is a permanent error.
#[derive(Debug)]
#[cfg_attr(
    not(any(feature = "webhook", feature = "splunk", feature = "datadog")),
    allow(dead_code)
)]
pub(crate) struct Splitter {
    /// Ranges still to send, the next one last.
    pending: Vec<std::ops::Range<usize>>,
}

#[cfg_attr(
    not(any(feature = "webhook", feature = "splunk", feature = "datadog")),
    allow(dead_code)
)]
impl Splitter {
    pub(crate) fn new(mut ranges: Vec<std::ops::Range<usize>>) -> Splitter {
        ranges.reverse();
        Splitter { pending: ranges }
    }

    /// The next range to send.
    pub(crate) fn next_range(&mut self) -> Option<std::ops::Range<usize>> {
        self.pending.pop()
    }

    /// Acts on the receiver's answer to `range`.
    pub(crate) fn answered(
        &mut self,
        who: &str,
        range: std::ops::Range<usize>,
        answer: Answer,
    ) -> Result<(), SinkError> {
        match answer {
            Answer::Ok => Ok(()),
            Answer::TooLarge if range.len() > 1 => {
                let mid = range.start + range.len() / 2;
                self.pending.push(mid..range.end);
                self.pending.push(range.start..mid);
                Ok(())
            }
            Answer::TooLarge => Err(SinkError::permanent(format!(
                "{who} refused a single event as too large (413)"
            ))),
            Answer::Failed(e) => Err(e),
        }
    }
}

/// Remembers how much of a batch a receiver already accepted, so that when the pipeline
/// retries the same batch after a later chunk failed, the accepted part is not sent again
/// (receivers without idempotency keys would store it twice).
#[derive(Debug, Default, Clone)]
#[cfg_attr(
    not(any(feature = "splunk", feature = "datadog", feature = "cloudwatch")),
    allow(dead_code)
)]
pub(crate) struct Progress {
    /// The first event's id of the batch in flight, and how many of its events are accepted.
    state: Option<(String, usize)>,
}

#[cfg_attr(
    not(any(feature = "splunk", feature = "datadog", feature = "cloudwatch")),
    allow(dead_code)
)]
impl Progress {
    /// How many leading events of `batch` were already accepted.
    pub(crate) fn skip(&self, batch: &audit_core::Batch) -> usize {
        match (&self.state, batch.iter().next()) {
            (Some((id, n)), Some(first)) if *id == first.id.to_string() => *n,
            _ => 0,
        }
    }

    /// Records that the first `n` events of `batch` are accepted.
    pub(crate) fn accepted(&mut self, batch: &audit_core::Batch, n: usize) {
        self.state = batch.iter().next().map(|first| (first.id.to_string(), n));
    }

    /// The batch is done.
    pub(crate) fn clear(&mut self) {
        self.state = None;
    }
}
