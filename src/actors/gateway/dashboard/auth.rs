//! Token check for the dashboard's endpoints, no I/O.
//!
//! When `gateway.token` is set, a request must carry it as `Authorization: Bearer <token>`
//! (scripts, scrapers), as the [`COOKIE`] cookie (browsers: the page's `?token=` is
//! exchanged for it, so the token leaves the address bar and page scripts cannot read it)
//! or as a `?token=<token>` query parameter. The comparison is constant-time. `/metrics`
//! is protected too unless `gateway.metrics_require_token` is off (for a scraper inside a
//! trusted network).

use crate::protocol::ErrorCode;
use subtle::ConstantTimeEq;

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("this endpoint needs the gateway token (Authorization: Bearer, or ?token= once)")]
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

/// The cookie a browser keeps the token in: HttpOnly (page scripts cannot read it) and
/// SameSite=Strict (other sites' pages do not send it).
pub const COOKIE: &str = "cloudburst_token";

/// What a request presented, from wherever it may carry the token.
#[derive(Clone, Copy, Debug, Default)]
pub struct Presented<'a> {
    /// The `Authorization` header.
    pub header: Option<&'a str>,
    /// The [`COOKIE`] cookie.
    pub cookie: Option<&'a str>,
    /// The `token` query parameter.
    pub query: Option<&'a str>,
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
    /// Check what a request presented; `is_metrics` whether it is for `/metrics`.
    pub fn check(&self, p: Presented<'_>, is_metrics: bool) -> Result<(), AuthError> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        if is_metrics && !self.metrics_require_token {
            return Ok(());
        }
        let bearer = p.header.and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        let presented = [bearer, p.cookie, p.query]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>();
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

    fn header(h: &str) -> Presented<'_> {
        Presented {
            header: Some(h),
            ..Presented::default()
        }
    }

    fn query(q: &str) -> Presented<'_> {
        Presented {
            query: Some(q),
            ..Presented::default()
        }
    }

    fn none() -> Presented<'static> {
        Presented::default()
    }

    #[test]
    fn open_without_a_token() {
        let p = AuthPolicy {
            token: None,
            metrics_require_token: true,
        };
        assert_eq!(p.check(none(), false), Ok(()));
        assert_eq!(p.check(header("Bearer x"), true), Ok(()));
    }

    #[test]
    fn bearer_header_cookie_or_query() {
        let p = policy(true);
        assert_eq!(p.check(header("Bearer s3cret"), false), Ok(()));
        assert_eq!(p.check(header("bearer  s3cret "), false), Ok(()));
        assert_eq!(p.check(query("s3cret"), true), Ok(()));
        let cookie = Presented {
            cookie: Some("s3cret"),
            ..Presented::default()
        };
        assert_eq!(p.check(cookie, false), Ok(()));
        assert_eq!(
            p.check(header("Basic s3cret"), false),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn missing_and_wrong_are_told_apart() {
        let p = policy(true);
        assert_eq!(p.check(none(), false), Err(AuthError::Missing));
        assert_eq!(p.check(none(), true), Err(AuthError::Missing));
        assert_eq!(
            p.check(header("Bearer nope"), false),
            Err(AuthError::Invalid)
        );
        assert_eq!(p.check(query("s3cre"), false), Err(AuthError::Invalid));
        assert_eq!(AuthError::Invalid.code().as_str(), "invalid_token");
    }

    #[test]
    fn metrics_can_be_left_open() {
        let p = policy(false);
        assert_eq!(p.check(none(), true), Ok(()));
        assert_eq!(p.check(none(), false), Err(AuthError::Missing));
    }
}
