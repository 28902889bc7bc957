//! The REST API: OpenZeppelin Relayer v1's EVM endpoints (`oz`), so its
//! clients switch by changing a base URL, and Switchyard's own pool
//! endpoints (`pool`). Every answer, failures included, is the envelope of
//! [`wire::Envelope`].

mod auth;
mod error;
mod events;
mod keys;
mod ops;
mod oz;
mod pool;
mod webhooks;
pub mod wire;

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::sync::watch;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, OnResponse as _, TraceLayer};
use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

pub use error::ApiError;

use crate::access::{MemoryLimiter, Rate, RateLimiter};
use crate::config::HttpConfig;
use crate::pipeline::Relay;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub relay: Arc<Relay>,
    master_key: Arc<str>,
    /// The network name relayers report.
    pub network: Arc<str>,
    limiter: Arc<dyn RateLimiter>,
    /// For keys without their own; `None`: unlimited.
    default_rate: Option<Rate>,
    /// Turns true when the server starts shutting down: endless answers
    /// (the event stream) end then, so the graceful shutdown can finish.
    closing: watch::Receiver<bool>,
}

impl AppState {
    /// No rate limit until [`AppState::with_rate_limits`].
    pub fn new(relay: Arc<Relay>, master_key: &str, network: &str) -> Self {
        AppState {
            relay,
            master_key: master_key.into(),
            network: network.into(),
            limiter: Arc::new(MemoryLimiter::default()),
            default_rate: None,
            closing: watch::channel(false).1,
        }
    }

    /// Ends the event streams when `closing` turns true.
    pub fn with_closing(self, closing: watch::Receiver<bool>) -> Self {
        AppState { closing, ..self }
    }

    /// Resolves once the server is shutting down; never without a sender.
    async fn closing(&self) {
        let mut closing = self.closing.clone();
        if closing.wait_for(|closing| *closing).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn with_rate_limits(self, limiter: Arc<dyn RateLimiter>, default_rate: Option<Rate>) -> Self {
        AppState { limiter, default_rate, ..self }
    }
}

/// The whole API with its layers: request id (taken from `x-request-id` or
/// generated, and echoed), tracing, a body-size limit and a deadline.
pub fn router(state: AppState, http: &HttpConfig) -> Router {
    let (api, _) = documented_routes().split_for_parts();
    let api = api.route_layer(middleware::from_fn_with_state(state.clone(), auth::authorize));
    let timeout = Duration::from_millis(http.timeout_ms);
    api.merge(swagger_ui())
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
        })
        .with_state(state)
        .layer(middleware::from_fn(observe_latency))
        .layer(DefaultBodyLimit::max(http.body_limit_bytes))
        .layer(cors(&http.cors_origins))
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

/// CORS for the configured origins only; none configured, no CORS headers
/// at all, so browsers keep other sites out.
fn cors(origins: &[String]) -> tower::util::Either<CorsLayer, tower::layer::util::Identity> {
    if origins.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    // Checked by the config's validation.
    let origins: Vec<HeaderValue> = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    tower::util::Either::Left(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, IDEMPOTENCY_KEY, LAST_EVENT_ID])
            .expose_headers([REQUEST_ID, header::RETRY_AFTER]),
    )
}

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// Every endpoint. A route is registered only through `routes!` from its
/// `#[utoipa::path]`, so the router and the OpenAPI document are built from
/// the same list and cannot drift; the `security` each path declares is
/// what [`auth::authorize`] enforces.
fn documented_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(oz::open_routes())
        .merge(ops::open_routes())
        .merge(oz::routes())
        .merge(pool::routes())
        .merge(ops::routes())
        .merge(keys::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
}

/// Where the Swagger UI page is served; its assets are compiled in.
pub const SWAGGER_UI_PATH: &str = "/docs";
const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The OpenAPI document of [`router`]: every route it serves, with the
/// scope each requires.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut document = documented_routes().into_openapi();
    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme(BEARER_AUTH, SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    document
}

/// The name OpenZeppelin Relayer's document gives its API key scheme.
const BEARER_AUTH: &str = "bearer_auth";

fn operations(item: &PathItem) -> impl Iterator<Item = (Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|operation| (method, operation)))
}

static OPENAPI_JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string(&openapi()).expect("an OpenAPI document always serializes"));

#[derive(utoipa::OpenApi)]
#[openapi(
    // Named by the shared failure responses, which do not register it.
    components(schemas(error::Failure)),
    info(
        title = "Switchyard",
        description = "A transaction relay for EVM chains whose routing, admission and fee decisions are \
                       sandboxed WebAssembly plugins. The `Relayers` endpoints are OpenZeppelin Relayer v1's; \
                       `Pool` endpoints let the selector plugin choose the relayer."
    ),
    tags(
        (name = "Relayers", description = "OpenZeppelin Relayer v1's EVM endpoints, for its clients unmodified"),
        (name = "Pool", description = "Submit to the relayer pool; read the decision trail"),
        (name = "API keys", description = "Keys with scopes and allowed relayers; admin only"),
        (name = "Events", description = "Transaction, relayer and plugin events as Server-Sent Events"),
        (name = "Webhooks", description = "Signed event deliveries with retries and dead letters; admin only"),
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

/// The address a transaction is (or will be) sent from, once it has a relayer.
fn sender(state: &AppState, tx: &crate::store::Transaction) -> Option<alloy_primitives::Address> {
    tx.relayer_id.as_deref().and_then(|id| state.relay.pool.get(id)).map(|r| r.address)
}

/// The `Idempotency-Key` header of a submission: 1 to 255 visible ASCII
/// characters, scoped to the API key.
#[derive(Clone, Debug, Default)]
pub(super) struct IdempotencyKey(Option<String>);

/// The header as the document shows it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Documentation only.
pub(super) struct IdempotencyKeyHeader {
    /// Makes retries safe: the same key with the same request answers the
    /// transaction stored first (the policy is not run again); with another
    /// request, 409. Per API key; 1 to 255 visible ASCII characters.
    #[param(rename = "Idempotency-Key", max_length = 255)]
    idempotency_key: Option<String>,
}

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(&IDEMPOTENCY_KEY) else { return Ok(IdempotencyKey(None)) };
        let key =
            value.to_str().ok().filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()));
        let key =
            key.ok_or_else(|| ApiError::bad_request("`Idempotency-Key` must be 1 to 255 visible ASCII characters"))?;
        Ok(IdempotencyKey(Some(key.to_string())))
    }
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
