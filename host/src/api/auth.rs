//! The API key check. What each operation requires is read from the OpenAPI
//! document (`security(("bearer_auth" = ["<scope>"]))` on its handler), so
//! the document states exactly what the router enforces.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use super::{ApiError, AppState};
use crate::access::{AuthError, Caller, constant_time_eq};
use crate::store::Scope;

/// What an operation asks of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    Open,
    Key(Scope),
}

/// Every documented operation's access, by method and route template.
static ACCESS: LazyLock<HashMap<(Method, String), Access>> = LazyLock::new(|| {
    let document = super::openapi();
    let mut access = HashMap::new();
    for (path, item) in document.paths.paths {
        for (method, operation) in super::operations(&item) {
            access.insert((method, path.clone()), access_of(operation));
        }
    }
    access
});

/// An operation without a `security` declaration takes the admin scope:
/// forgetting one closes an endpoint rather than opening it.
pub(super) fn access_of(operation: &utoipa::openapi::path::Operation) -> Access {
    let Some(requirements) = &operation.security else { return Access::Key(Scope::Admin) };
    let requirements: Vec<BTreeMap<String, Vec<String>>> =
        serde_json::to_value(requirements).and_then(serde_json::from_value).unwrap_or_default();
    if requirements.iter().all(BTreeMap::is_empty) {
        return Access::Open;
    }
    match requirements.iter().flat_map(|r| r.values().flatten()).collect::<Vec<_>>().as_slice() {
        [one] => Access::Key(one.parse().unwrap_or(Scope::Admin)),
        _ => Access::Key(Scope::Admin),
    }
}

/// The access a routed request needs; an operation missing from the
/// document needs admin.
fn required(request: &Request) -> Access {
    let route = request.extensions().get::<MatchedPath>().map_or("", MatchedPath::as_str);
    ACCESS.get(&(request.method().clone(), route.to_string())).copied().unwrap_or(Access::Key(Scope::Admin))
}

/// 401 without a valid key, 403 outside its scope or its relayers.
pub(super) async fn authorize(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Access::Key(scope) = required(&request) else { return Ok(next.run(request).await) };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <api key>` header"))?;
    let caller = if constant_time_eq(presented.as_bytes(), state.master_key.as_bytes()) {
        Caller::master()
    } else {
        state.relay.keys.authenticate(presented).await.map_err(|error| match error {
            AuthError::Store(error) => ApiError::from(error),
            other => ApiError::new(StatusCode::UNAUTHORIZED, other.to_string()),
        })?
    };
    if let Some(rate) = caller.rate_limit.or(state.default_rate)
        && let Err(wait) = state.limiter.take(&caller.key_id, rate).await
    {
        return Ok(too_many_requests(wait));
    }
    if !caller.may(scope) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("this API key lacks the `{scope}` scope")));
    }
    let (mut parts, body) = request.into_parts();
    if let Ok(params) = RawPathParams::from_request_parts(&mut parts, &state).await
        && let Some((_, relayer)) = params.iter().find(|(name, _)| *name == "relayer_id")
    {
        caller.check_relayer(relayer)?;
    }
    parts.extensions.insert(caller);
    Ok(next.run(Request::from_parts(parts, body)).await)
}

/// 429 with `Retry-After` in whole seconds, rounded up.
fn too_many_requests(wait: Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let mut response =
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, format!("rate limit reached: retry in {seconds} s"))
            .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

impl Caller {
    /// 403 for a relayer the key may not use.
    pub(super) fn check_relayer(&self, relayer_id: &str) -> Result<(), ApiError> {
        if self.may_use(relayer_id) {
            return Ok(());
        }
        Err(ApiError::new(StatusCode::FORBIDDEN, format!("this API key may not use relayer `{relayer_id}`")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "an endpoint behind the API key was reached without one")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_open_or_names_one_known_scope() {
        let document = crate::api::openapi();
        for (path, item) in &document.paths.paths {
            for (method, operation) in crate::api::operations(item) {
                let declared = serde_json::to_string(&operation.security).unwrap();
                match access_of(operation) {
                    Access::Open => assert!(!declared.contains("bearer_auth"), "{method} {path}: {declared}"),
                    Access::Key(scope) => {
                        assert_eq!(declared, format!("[{{\"bearer_auth\":[\"{scope}\"]}}]"), "{method} {path}")
                    }
                }
            }
        }
    }

    #[test]
    fn api_keys_are_admin_only_and_health_is_open() {
        let document = crate::api::openapi();
        let access = |path: &str| access_of(document.paths.paths[path].get.as_ref().unwrap());
        assert_eq!(access("/api/v1/api-keys"), Access::Key(Scope::Admin));
        assert_eq!(access("/api/v1/health"), Access::Open);
        assert_eq!(access("/api/v1/relayers"), Access::Key(Scope::Read));
    }
}
