//! Operator endpoints: `/metrics` (open, for scrapers) and
//! `GET /api/v1/health/detailed` (behind the API key: it names endpoints,
//! relayer addresses and plugin builds).

use std::future::Future;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::{CommonFailures, KeyFailures};
use super::wire::Envelope;
use crate::plugins::PluginKind;
use crate::relayers::health::HealthState;

pub(super) fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics)).routes(routes!(openapi_document))
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(detailed)).routes(routes!(plugins))
}

/// This document, as JSON. Open: it describes the API and holds no secret.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "openapi", tag = "Operations", security(),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)))]
async fn openapi_document() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], super::OPENAPI_JSON.as_str())
}

/// Prometheus' text format. Gauges of shared state are read now.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "Operations", security(),
    responses((status = 200, description = "Prometheus text exposition format 0.0.4", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.relay.export_gauges().await;
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::telemetry::render())
}

/// Every dependency with its state and how long it took to answer.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DetailedHealth {
    /// `healthy` when the database, the queue and an RPC endpoint answer.
    pub status: &'static str,
    pub database: Dependency,
    pub queue: Dependency,
    pub redis: Dependency,
    pub rpc: Vec<RpcEndpoint>,
    pub relayers: Vec<RelayerHealthView>,
    pub plugins: Vec<PluginView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct Dependency {
    /// `healthy`, `unhealthy` or `not_configured`.
    pub status: &'static str,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RpcEndpoint {
    /// Scheme, host and port only: providers put API keys in the path.
    pub endpoint: String,
    pub active: bool,
    pub status: &'static str,
    pub latency_ms: f64,
    pub head: Option<u64>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct RelayerHealthView {
    pub id: String,
    pub address: String,
    /// As of the watcher's last check.
    pub status: HealthState,
    pub reasons: Vec<String>,
    pub paused: bool,
    pub balance: String,
    pub pending: u32,
    pub nonce: u64,
    pub send_latency_ms: u32,
    pub checked_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct PluginView {
    pub kind: PluginKind,
    /// `loaded`, or `built_in` when the slot is empty and the host's default
    /// decides.
    pub status: &'static str,
    pub plugin: Option<String>,
    pub version_hash: Option<String>,
    pub wit_version: Option<String>,
    /// Mean call latency since start, sandbox included.
    pub mean_latency_ms: Option<f64>,
}

fn millis(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1e6).round() / 1e3
}

async fn timed<T, E: ToString>(call: impl Future<Output = Result<T, E>>) -> Dependency {
    let started = Instant::now();
    let answer = call.await;
    let latency_ms = Some(millis(started.elapsed()));
    match answer {
        Ok(_) => Dependency { status: "healthy", latency_ms, error: None },
        Err(error) => Dependency { status: "unhealthy", latency_ms, error: Some(error.to_string()) },
    }
}

#[utoipa::path(get, path = "/api/v1/health/detailed", operation_id = "detailedHealth", tag = "Health",
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "Every dependency with its state and latency", body = Envelope<DetailedHealth>),
              CommonFailures, KeyFailures))]
async fn detailed(State(state): State<AppState>) -> Json<Envelope<DetailedHealth>> {
    let relay = &state.relay;
    let redis = async {
        let started = Instant::now();
        match relay.pool.cache().ping().await {
            None => Dependency { status: "not_configured", latency_ms: None, error: None },
            Some(answer) => {
                let latency_ms = Some(millis(started.elapsed()));
                match answer {
                    Ok(()) => Dependency { status: "healthy", latency_ms, error: None },
                    Err(error) => Dependency { status: "unhealthy", latency_ms, error: Some(error.to_string()) },
                }
            }
        }
    };
    let (database, queue, redis, probes) =
        tokio::join!(timed(relay.store.ping()), timed(relay.queue.stats()), redis, relay.chain.probe_endpoints());
    let rpc: Vec<RpcEndpoint> = probes
        .into_iter()
        .map(|probe| RpcEndpoint {
            endpoint: probe.endpoint,
            active: probe.active,
            status: if probe.head.is_ok() { "healthy" } else { "unhealthy" },
            latency_ms: millis(probe.latency),
            head: probe.head.as_ref().ok().copied(),
            error: probe.head.err(),
        })
        .collect();
    let relayers = relay
        .pool
        .iter()
        .map(|relayer| {
            let stats = relayer.stats();
            RelayerHealthView {
                id: relayer.id.clone(),
                address: relayer.address.to_string(),
                status: stats.health.state,
                reasons: stats.health.reasons.clone(),
                paused: relayer.paused,
                balance: stats.balance.to_string(),
                pending: stats.pending,
                nonce: stats.nonce,
                send_latency_ms: stats.latency_ms,
                checked_at: stats.checked_at_ms.map(super::wire::time),
            }
        })
        .collect();
    let plugins = PluginKind::ALL.into_iter().map(|kind| plugin_view(&state, kind)).collect();
    let up = |d: &Dependency| d.status == "healthy";
    let healthy = up(&database) && up(&queue) && rpc.iter().any(|r| r.head.is_some());
    Json(Envelope::ok(DetailedHealth {
        status: if healthy { "healthy" } else { "unhealthy" },
        database,
        queue,
        redis,
        rpc,
        relayers,
        plugins,
    }))
}

/// The plugin in each slot with its build and latency; the same list as
/// the detailed health's, for keys with the `plugins` scope only.
#[utoipa::path(get, path = "/api/v1/plugins", operation_id = "listPlugins", tag = "Operations",
    security(("bearer_auth" = ["plugins"])),
    responses((status = 200, description = "Each slot's plugin, or the built-in default", body = Envelope<Vec<PluginView>>),
              CommonFailures, KeyFailures))]
async fn plugins(State(state): State<AppState>) -> Json<Envelope<Vec<PluginView>>> {
    Json(Envelope::ok(PluginKind::ALL.into_iter().map(|kind| plugin_view(&state, kind)).collect()))
}

fn plugin_view(state: &AppState, kind: PluginKind) -> PluginView {
    let Some(info) = state.relay.plugins.active(kind) else {
        return PluginView {
            kind,
            status: "built_in",
            plugin: None,
            version_hash: None,
            wit_version: None,
            mean_latency_ms: None,
        };
    };
    let labels = [kind.interface(), info.id.name.as_str(), info.id.short_hash()];
    let histogram = crate::telemetry::METRICS.plugin_duration.with_label_values(&labels);
    let calls = histogram.get_sample_count();
    PluginView {
        kind,
        status: "loaded",
        plugin: Some(info.id.name.clone()),
        version_hash: Some(info.id.version_hash.clone()),
        wit_version: Some(info.id.wit_version.clone()),
        mean_latency_ms: (calls > 0)
            .then(|| millis(Duration::from_secs_f64(histogram.get_sample_sum() / calls as f64))),
    }
}
