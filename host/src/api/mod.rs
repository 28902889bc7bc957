//! The REST API: OpenZeppelin Relayer v1's EVM endpoints (`oz`), so its
//! clients switch by changing a base URL, and Switchyard's own pool
//! endpoints (`pool`). Every answer, failures included, is the envelope of
//! [`wire::Envelope`].

mod error;
mod ops;
mod oz;
mod pool;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use error::ApiError;

use crate::config::HttpConfig;
use crate::pipeline::Relay;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub relay: Arc<Relay>,
    api_key: Arc<str>,
    /// The network name relayers report.
    pub network: Arc<str>,
}

impl AppState {
    pub fn new(relay: Arc<Relay>, api_key: &str, network: &str) -> Self {
        AppState { relay, api_key: api_key.into(), network: network.into() }
    }
}

/// The whole API with its layers: request id (taken from `x-request-id` or
/// generated, and echoed), tracing, a body-size limit and a deadline.
pub fn router(state: AppState, http: &HttpConfig) -> Router {
    let protected = oz::routes()
        .merge(pool::routes())
        .merge(ops::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_api_key));
    let timeout = Duration::from_millis(http.timeout_ms);
    Router::new()
        .merge(oz::open_routes())
        .merge(ops::open_routes())
        .merge(protected)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
        })
        .with_state(state)
        .layer(middleware::from_fn(observe_latency))
        .layer(DefaultBodyLimit::max(http.body_limit_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(request_span))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(HandleErrorLayer::new(move |_: tower::BoxError| async move {
                    ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("the request took longer than {timeout:?}"))
                }))
                .timeout(timeout),
        )
}

/// Every log line of a request carries its id. The path, never the query:
/// a query could carry a secret.
fn request_span(request: &Request) -> tracing::Span {
    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path())
}

/// `switchyard_http_request_duration_seconds` by the matched route's
/// template: raw paths carry ids and would make the series unbounded.
async fn observe_latency(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_string();
    // Clients can invent methods; only the standard ones become labels.
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    };
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    crate::telemetry::METRICS
        .http_duration
        .with_label_values(&[method, &route, response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Result<Response, ApiError> {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(key) if constant_time_eq(key.as_bytes(), state.api_key.as_bytes()) => Ok(next.run(request).await),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid API key")),
        None => Err(ApiError::new(StatusCode::UNAUTHORIZED, "missing `Authorization: Bearer <api key>` header")),
    }
}

/// Comparison whose time does not depend on where the keys differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The address a transaction is (or will be) sent from, once it has a relayer.
fn sender(state: &AppState, tx: &crate::store::Transaction) -> Option<alloy_primitives::Address> {
    tx.relayer_id.as_deref().and_then(|id| state.relay.pool.get(id)).map(|r| r.address)
}

/// `?page=&per_page=`, counted from 1.
#[derive(Clone, Copy, Debug, serde::Deserialize)]
#[serde(default)]
struct PageQuery {
    page: u32,
    per_page: u32,
}

impl Default for PageQuery {
    fn default() -> Self {
        PageQuery { page: 1, per_page: 10 }
    }
}

impl PageQuery {
    fn checked(self) -> Result<Self, ApiError> {
        if self.page == 0 || !(1..=100).contains(&self.per_page) {
            return Err(ApiError::bad_request("`page` counts from 1 and `per_page` is 1..=100"));
        }
        Ok(self)
    }
}
