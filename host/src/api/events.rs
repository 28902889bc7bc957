//! `GET /api/v1/events`: the event log as Server-Sent Events, filtered by
//! transaction, relayer and type, resumed after `Last-Event-ID`.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{CommonFailures, KeyFailures};
use super::wire::EventView;
use super::{ApiError, AppState};
use crate::access::Caller;
use crate::store::{Event, EventKind};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// How often a stream looks for new events.
const POLL: Duration = Duration::from_millis(250);
const BATCH: u32 = 500;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventFilter {
    /// Only this transaction's events.
    transaction_id: Option<String>,
    /// Only this relayer's events.
    relayer_id: Option<String>,
    /// Comma-separated event types, e.g. `transaction.status,relayer.disabled`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kinds: Option<String>,
    /// Start after this event id (as `Last-Event-ID` does); without either,
    /// the stream starts with the next event.
    after: Option<u64>,
}

/// Server-Sent Events of transaction status changes, relayer health and
/// plugin swaps. Reconnecting with `Last-Event-ID` (as browsers' EventSource
/// does) resumes after that event, or starts with a `gap` message
/// (`{"after", "next"}`) when events after it were pruned; a key limited to
/// some relayers sees only their events.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    operation_id = "streamEvents",
    tag = "Events",
    params(EventFilter, ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this event id")),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "An endless `text/event-stream`; each message's data is an event", body = EventView, content_type = "text/event-stream"), CommonFailures, KeyFailures)
)]
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<EventFilter>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let Query(filter) = query?;
    let kinds = match &filter.kinds {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|k| k.trim().parse::<EventKind>())
                .collect::<Result<HashSet<_>, _>>()
                .map_err(ApiError::bad_request)?,
        ),
    };
    let resume = match headers.get(&super::LAST_EVENT_ID) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("`Last-Event-ID` must be an event id (a whole number)"))?,
        ),
    };
    let (after, gap) = match resume.or(filter.after) {
        // Ids are the database's signed 64-bit integers.
        Some(after) if after > i64::MAX as u64 => {
            return Err(ApiError::bad_request(format!("no event id is above {}", i64::MAX)));
        }
        Some(after) => (after, pruned_since(&state, after).await?),
        None => (state.relay.store.last_event_id().await?, None),
    };
    let wanted = move |event: &Event| {
        kinds.as_ref().is_none_or(|k| k.contains(&event.kind))
            && filter.transaction_id.as_ref().is_none_or(|t| event.transaction_id.as_ref() == Some(t))
            && filter.relayer_id.as_ref().is_none_or(|r| event.relayer_id.as_ref() == Some(r))
            && (caller.relayers().is_none() || event.relayer_id.as_deref().is_some_and(|r| caller.may_use(r)))
    };
    let reader = Reader { state, after, pending: Vec::new().into_iter() };
    let stream = futures::stream::unfold((reader, wanted), |(mut reader, wanted)| async move {
        loop {
            if let Some(event) = reader.pending.next() {
                if !wanted(&event) {
                    continue;
                }
                let message = message(event);
                return Some((Ok(message), (reader, wanted)));
            }
            // The server is shutting down: end the stream, so the client
            // reconnects (with Last-Event-ID) to a replica that is up.
            if !reader.fill().await {
                return None;
            }
        }
    });
    let gap = futures::stream::iter(gap.map(Ok));
    Ok(Sse::new(gap.chain(stream)).keep_alive(KeepAlive::default()))
}

/// A `gap` message when retention has pruned events after `after`: the
/// oldest event kept is further on than the next one could be. Without an
/// `id`, so a reconnect still resumes after `after`.
async fn pruned_since(state: &AppState, after: u64) -> Result<Option<SseEvent>, ApiError> {
    // `?after=0` asks for the whole log, whatever it still holds.
    if after == 0 {
        return Ok(None);
    }
    let oldest = state.relay.store.events_after(0, 1).await?;
    Ok(oldest.first().filter(|oldest| oldest.id > after.saturating_add(1)).map(|oldest| {
        let data = serde_json::json!({ "after": after, "next": oldest.id });
        SseEvent::default().event("gap").data(data.to_string())
    }))
}

fn message(event: Event) -> SseEvent {
    let id = event.id.to_string();
    let kind = event.kind.as_str();
    let data = serde_json::to_string(&EventView::from(event)).unwrap_or_default();
    SseEvent::default().id(id).event(kind).data(data)
}

/// Reads the log in id order, without skipping an id that may still commit.
struct Reader {
    state: AppState,
    /// The last id read.
    after: u64,
    pending: std::vec::IntoIter<Event>,
}

impl Reader {
    /// Waits for and buffers the next events (at least one); `false` when
    /// the server began shutting down first.
    async fn fill(&mut self) -> bool {
        loop {
            match self.state.relay.store.events_ready(self.after, BATCH).await {
                Ok(ready) => {
                    if let Some(last) = ready.last() {
                        self.after = last.id;
                        self.pending = ready.into_iter();
                        return true;
                    }
                }
                Err(error) => tracing::warn!(%error, "event stream: the log cannot be read; retrying"),
            }
            tokio::select! {
                () = self.state.closing() => return false,
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }
}
