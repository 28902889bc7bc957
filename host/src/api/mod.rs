//! The REST API: OpenZeppelin Relayer v1's EVM endpoints (`oz`), so its
//! clients switch by changing a base URL, and Switchyard's own pool
//! endpoints (`pool`). Every answer, failures included, is the envelope of
//! [`wire::Envelope`].

mod error;
mod ops;
mod oz;
mod pool;
pub mod wire;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, OnResponse as _, TraceLayer};
use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

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
    let (open, protected) = documented_routes();
    let protected = protected.route_layer(middleware::from_fn_with_state(state.clone(), require_api_key));
    let (api, _) = open.merge(protected).split_for_parts();
    let timeout = Duration::from_millis(http.timeout_ms);
    api.merge(swagger_ui())
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
                .layer(TraceLayer::new_for_http().make_span_with(request_span).on_response(record_status))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(HandleErrorLayer::new(move |_: tower::BoxError| async move {
                    ApiError::new(StatusCode::REQUEST_TIMEOUT, format!("the request took longer than {timeout:?}"))
                }))
                .timeout(timeout),
        )
}

/// Every endpoint, open and behind the API key. A route is registered only
/// through `routes!` from its `#[utoipa::path]`, so the router and the
/// OpenAPI document are built from the same list and cannot drift.
fn documented_routes() -> (OpenApiRouter<AppState>, OpenApiRouter<AppState>) {
    let open = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(oz::open_routes()).merge(ops::open_routes());
    let protected = oz::routes().merge(pool::routes()).merge(ops::routes());
    (open, protected)
}

/// Where the Swagger UI page is served; its assets are compiled in.
pub const SWAGGER_UI_PATH: &str = "/docs";
const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The OpenAPI document of [`router`]: every route it serves, with the API
/// key required exactly where the router requires it.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (open, protected) = documented_routes();
    let mut protected = protected.into_openapi();
    for item in protected.paths.paths.values_mut() {
        for operation in operations(item) {
            operation.security = Some(vec![SecurityRequirement::new(BEARER_AUTH, Vec::<String>::new())]);
        }
    }
    let mut document = open.into_openapi();
    document.merge(protected);
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(BEARER_AUTH, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    document
}

/// The name OpenZeppelin Relayer's document gives its API key scheme.
const BEARER_AUTH: &str = "bearer_auth";

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.options, &mut item.head, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

static OPENAPI_JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(&openapi()).expect("an OpenAPI document always serializes"));

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Switchyard",
        description = "A transaction relay for EVM chains whose routing, admission and fee decisions are \
                       sandboxed WebAssembly plugins. The `Relayers` endpoints are OpenZeppelin Relayer v1's; \
                       `Pool` endpoints let the selector plugin choose the relayer."
    ),
    tags(
        (name = "Relayers", description = "OpenZeppelin Relayer v1's EVM endpoints, for its clients unmodified"),
        (name = "Pool", description = "Submit to the relayer pool; read the decision trail"),
        (name = "Health", description = "Liveness, readiness and every dependency's state"),
        (name = "Operations", description = "Metrics and this document"),
    )
)]
struct ApiDoc;

fn swagger_ui() -> Router<AppState> {
    SwaggerUi::new(SWAGGER_UI_PATH).config(utoipa_swagger_ui::Config::new([OPENAPI_PATH])).into()
}

/// Every log line of a request carries its id. The path, never the query:
/// a query could carry a secret. Exported, the span is named by the route's
/// template and continues the caller's `traceparent`.
fn request_span(request: &Request) -> tracing::Span {
    let id = request.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str());
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
        status = tracing::field::Empty,
        "otel.name" = %format_args!("{} {route}", request.method()),
        "otel.kind" = "server",
        "otel.status_code" = tracing::field::Empty,
    );
    if crate::telemetry::exporting_traces() {
        let caller = opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
        });
        // Fails only when the span is disabled, and then there is nothing to link.
        let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(&span, caller);
    }
    span
}

fn record_status(response: &Response, latency: Duration, span: &tracing::Span) {
    span.record("status", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "error");
    }
    DefaultOnResponse::new().on_response(response, latency, span);
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
#[derive(Clone, Copy, Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(default)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// From 1; 1 when absent.
    #[param(minimum = 1, default = 1)]
    page: u32,
    /// 1 to 100; 10 when absent.
    #[param(minimum = 1, maximum = 100, default = 10)]
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
