//! App topics over HTTP: `POST /v1/topics/{topic}/messages` publishes,
//! `GET /v1/topics/{topic}/events` streams the topic as Server-Sent Events,
//! and `GET /v1/topics` lists the topics this node is subscribed to.
//!
//! Handlers only reach the topics through [`weft_apps::PubSub`]. An event
//! stream holds one local subscription for as long as the client stays
//! connected; when the client goes away, hyper drops the stream (at the
//! latest on the next keep-alive, which fails to write) and with it the
//! subscription.

use std::{convert::Infallible, time::Duration};

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header::CONTENT_TYPE, HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::{get, post},
    Json, Router,
};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError};
use weft_apps::pubsub::{Message, PubSubError, MAX_MESSAGE};

use super::{ApiError, ApiState};

/// Largest request body: a message of [`MAX_MESSAGE`] bytes as a JSON
/// string, every byte escaped (`\u00XX`), with room for the braces.
const MAX_BODY: usize = 6 * MAX_MESSAGE + 1024;
/// A larger body is still read (and dropped) up to this size, so that a
/// client that is still sending gets the 413 rather than a broken pipe.
const DRAIN_LIMIT: usize = 16 * 1024 * 1024;
/// Interval of the keep-alive comments on an event stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/topics", get(list))
        .route("/topics/{topic}/messages", post(publish))
        .route("/topics/{topic}/events", get(events))
}

fn pubsub_error(e: PubSubError) -> ApiError {
    let message = e.to_string();
    match e {
        PubSubError::BadTopic(_) => ApiError::bad_request("bad_topic", message),
        PubSubError::TooLarge { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
        }
        PubSubError::TooFast(_) => {
            ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
        PubSubError::Net(_) => ApiError::unavailable(message),
    }
}

async fn list(State(state): State<ApiState>) -> Json<Value> {
    Json(json!(state.pubsub.topics().await))
}

#[derive(Deserialize)]
struct JsonMessage {
    message: String,
}

/// The message in a request: the raw body, or `{"message": "..."}` when the
/// body is JSON.
async fn message_data(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, ApiError> {
    let bytes = read_body(body).await?;
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    if !is_json {
        return Ok(bytes.to_vec());
    }
    let parsed: JsonMessage = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(
            "bad_json",
            format!("expected {{\"message\": \"...\"}} (or send the message as a raw body): {e}"),
        )
    })?;
    Ok(parsed.message.into_bytes())
}

/// The body, if it is at most [`MAX_BODY`] bytes.
async fn read_body(body: Body) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let (mut kept, mut total) = (Vec::new(), 0usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::bad_request("bad_body", format!("cannot read the request body: {e}"))
        })?;
        total = total.saturating_add(chunk.len());
        if total <= MAX_BODY {
            kept.extend_from_slice(&chunk);
        } else if total > DRAIN_LIMIT {
            break;
        }
    }
    if total <= MAX_BODY {
        return Ok(kept);
    }
    let size = if total > DRAIN_LIMIT {
        format!("more than {DRAIN_LIMIT}")
    } else {
        total.to_string()
    };
    Err(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("message of {size} bytes is larger than the limit of {MAX_MESSAGE} bytes"),
    ))
}

async fn publish(
    State(state): State<ApiState>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    // A bad topic is reported before the body is read.
    weft_apps::pubsub::check_topic(&topic).map_err(pubsub_error)?;
    let data = message_data(&headers, body).await?;
    let m = state
        .pubsub
        .publish(&topic, data)
        .await
        .map_err(pubsub_error)?;
    Ok(Json(json!({
        "id": m.id,
        "topic": m.topic,
        "from": m.from,
        "timestamp": m.timestamp_ms,
    })))
}

/// A message as the JSON of an event: the data as text when it is UTF-8,
/// else as `data_base64`.
fn message_json(m: &Message) -> Value {
    let mut v = json!({
        "id": m.id,
        "topic": m.topic,
        "from": m.from,
        "timestamp": m.timestamp_ms,
    });
    match std::str::from_utf8(&m.data) {
        Ok(text) => v["data"] = json!(text),
        Err(_) => v["data_base64"] = json!(data_encoding::BASE64.encode(&m.data)),
    }
    v
}

fn event_stream(
    rx: broadcast::Receiver<Message>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(m) => Event::default()
                .id(m.id.clone())
                .data(message_json(&m).to_string()),
            // The client reads too slowly: tell it how much it missed.
            Err(RecvError::Lagged(missed)) => Event::default()
                .event("lagged")
                .data(json!({ "missed": missed }).to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    })
}

async fn events(
    State(state): State<ApiState>,
    Path(topic): Path<String>,
) -> Result<Response, ApiError> {
    let rx = state.pubsub.subscribe(&topic).await.map_err(pubsub_error)?;
    Ok(Sse::new(event_stream(rx))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(data: &[u8]) -> Message {
        Message {
            id: "ab".repeat(32),
            topic: "chat".into(),
            from: "12D3KooW".into(),
            timestamp_ms: 7,
            data: data.to_vec(),
        }
    }

    #[test]
    fn text_and_binary_messages_as_json() {
        let v = message_json(&message(b"hello"));
        assert_eq!(v["data"], "hello");
        assert_eq!(v["timestamp"], 7);
        assert!(v.get("data_base64").is_none());
        let v = message_json(&message(&[0xff, 0x00]));
        assert_eq!(v["data_base64"], "/wA=");
        assert!(v.get("data").is_none());
    }

    #[test]
    fn errors_have_stable_codes() {
        let e = pubsub_error(PubSubError::BadTopic("a/b".into()));
        assert_eq!((e.status, e.code), (StatusCode::BAD_REQUEST, "bad_topic"));
        let e = pubsub_error(PubSubError::TooLarge { size: 9, max: 8 });
        assert_eq!(
            (e.status, e.code),
            (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
        );
    }
}
