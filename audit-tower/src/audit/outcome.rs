//! How a response's status (or gRPC status) becomes the event's result.

use audit_core::Outcome;

/// The gRPC status header (or trailer), named once rather than parsed per lookup.
pub(crate) const GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// Status → result: 2xx/3xx success, 401/403 denied, other 4xx failure, 5xx error; a gRPC
/// status, when present, decides instead.
pub(crate) fn outcome_for(status: u16, grpc: Option<i32>) -> Outcome {
    if let Some(code) = grpc {
        return match code {
            0 => Outcome::Success,
            1 => Outcome::Cancelled,
            7 | 16 => Outcome::Denied,
            2 | 4 | 13 | 14 | 15 => Outcome::Error,
            _ => Outcome::Failure,
        };
    }
    match status {
        401 | 403 => Outcome::Denied,
        400..=499 => Outcome::Failure,
        500..=599 => Outcome::Error,
        _ => Outcome::Success,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_and_grpc_outcomes() {
        assert_eq!(outcome_for(200, None), Outcome::Success);
        assert_eq!(outcome_for(302, None), Outcome::Success);
        assert_eq!(outcome_for(401, None), Outcome::Denied);
        assert_eq!(outcome_for(403, None), Outcome::Denied);
        assert_eq!(outcome_for(404, None), Outcome::Failure);
        assert_eq!(outcome_for(503, None), Outcome::Error);
        assert_eq!(outcome_for(200, Some(0)), Outcome::Success);
        assert_eq!(outcome_for(200, Some(16)), Outcome::Denied);
        assert_eq!(outcome_for(200, Some(13)), Outcome::Error);
        assert_eq!(outcome_for(200, Some(5)), Outcome::Failure);
        assert_eq!(outcome_for(200, Some(1)), Outcome::Cancelled);
    }
}
