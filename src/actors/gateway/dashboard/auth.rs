//! Token check for the dashboard's endpoints, no I/O.
//!
//! When `gateway.token` is set, a request must carry it as `Authorization: Bearer <token>`
//! or as a `?token=<token>` query parameter (browsers: the page keeps it for its event
//! stream URL). The comparison is constant-time. `/metrics` is protected too unless
//! `gateway.metrics_require_token` is off (for a scraper inside a trusted network).

use crate::protocol::ErrorCode;
use subtle::ConstantTimeEq;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs the gateway token (Authorization: Bearer, or ?token=)")]
    Missing,
    #[error("the token presented is not the gateway token")]
    Invalid,
}

impl AuthError {
    /// The code the JSON error body carries.
    pub fn code(self) -> ErrorCode {
        match self {
            AuthError::Missing => ErrorCode::MissingToken,
            AuthError::Invalid => ErrorCode::InvalidToken,
        }
    }
}

/// Which endpoints need the token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthPolicy {
    /// The configured token; `None` means everything is open.
    pub token: Option<String>,
    /// Whether `/metrics` needs it as well.
    pub metrics_require_token: bool,
}

impl AuthPolicy {
    /// Check a request. `header` is the `Authorization` header value, `query` the token
    /// query parameter; `is_metrics` whether the request is for `/metrics`.
    pub fn check(
        &self,
        header: Option<&str>,
        query: Option<&str>,
        is_metrics: bool,
    ) -> Result<(), AuthError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        if is_metrics && !self.metrics_require_token {
            return Ok(());
        }
        let bearer = header.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let presented = [bearer, query].into_iter().flatten().collect::<Vec<_>>();
        if presented.is_empty() {
            return Err(AuthError::Missing);
        }
        let good = presented
            .iter()
            .any(|p| bool::from(p.as_bytes().ct_eq(expected.as_bytes())));
        if good {
            Ok(())
        } else {
            Err(AuthError::Invalid)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(metrics: bool) -> AuthPolicy {
        AuthPolicy {
            token: Some("s3cret".into()),
            metrics_require_token: metrics,
        }
    }

    #[test]
    fn open_without_a_token() {
        let p = AuthPolicy {
            token: None,
            metrics_require_token: true,
        };
        assert_eq!(p.check(None, None, false), Ok(()));
        assert_eq!(p.check(Some("Bearer x"), None, true), Ok(()));
    }

    #[test]
    fn bearer_header_or_query() {
        let p = policy(true);
        assert_eq!(p.check(Some("Bearer s3cret"), None, false), Ok(()));
        assert_eq!(p.check(Some("bearer  s3cret "), None, false), Ok(()));
        assert_eq!(p.check(None, Some("s3cret"), true), Ok(()));
        assert_eq!(
            p.check(Some("Basic s3cret"), None, false),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn missing_and_wrong_are_told_apart() {
        let p = policy(true);
        assert_eq!(p.check(None, None, false), Err(AuthError::Missing));
        assert_eq!(p.check(None, None, true), Err(AuthError::Missing));
        assert_eq!(
            p.check(Some("Bearer nope"), None, false),
            Err(AuthError::Invalid)
        );
        assert_eq!(p.check(None, Some("s3cre"), false), Err(AuthError::Invalid));
        assert_eq!(AuthError::Invalid.code().as_str(), "invalid_token");
    }

    #[test]
    fn metrics_can_be_left_open() {
        let p = policy(false);
        assert_eq!(p.check(None, None, true), Ok(()));
        assert_eq!(p.check(None, None, false), Err(AuthError::Missing));
    }
}
