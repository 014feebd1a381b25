//! Where a gateway response's bytes come from: the local store, topped up
//! from the swarm on demand.
//!
//! [`Source::open`] learns a blob's size: from the store when the blob is
//! complete, else by proving it over the network with a fetch session
//! (bounded by [`PROVE_TIMEOUT`]). [`Source::stream`] then yields the bytes
//! of a range in 1 MiB-aligned segments. For each segment a task makes the
//! bytes local and verified (`Session::ensure`, a no-op when they already
//! are), then reads them from the store's data file after checking the
//! index says they are verified, so unverified bytes are never sent. A few
//! segments run ahead of the one being sent, so a video can play while the
//! rest downloads; memory stays at a few segments per response.
//!
//! Ownership and shutdown: the stream owns a cancellation token through a
//! drop guard. When the client goes away the body is dropped, the token
//! fires and the segment tasks stop. A [`UseGuard`] keeps the blob from
//! being evicted while any part of the response is alive.

use std::{io, ops::Range, sync::Arc, time::Duration};

use axum::http::StatusCode;
use bao_tree::io::sync::ReadAt;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;
use weft_blobs::{
    fetch::{FetchError, Session},
    store::UseGuard,
    ticket::Provider,
    Blobs, Hash, Store,
};

use super::ApiError;

/// How long proving a blob's size over the network may take before the
/// gateway answers 404.
pub(super) const PROVE_TIMEOUT: Duration = Duration::from_secs(10);
/// The unit of streaming: ranges are fetched and sent in segments aligned to
/// this many bytes (the fetcher's piece size).
pub(super) const SEGMENT: u64 = 1 << 20;
/// Segments in flight per response: the one being sent and two downloading.
const READ_AHEAD: usize = 3;
/// Longest wait for one segment or step before the response fails.
const SEGMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Bytes made local at once when a whole range is needed before answering
/// (a manifest, a bao encoding): large enough to spread over providers.
const ENSURE_STEP: u64 = 16 * SEGMENT;

/// A blob whose size is known, ready to be read.
pub(super) struct Source {
    store: Store,
    pub(super) hash: Hash,
    pub(super) size: u64,
    /// The store's name for the blob, if any.
    pub(super) name: Option<String>,
    /// Complete locally when opened: nothing to fetch.
    pub(super) complete: bool,
    session: Option<Session>,
    _hold: UseGuard,
}

/// Runs blocking store work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("store task failed: {e}")))
}

fn fetch_error(hash: Hash, e: FetchError) -> ApiError {
    match e {
        FetchError::NoProviders(_) => ApiError::not_found(format!(
            "blob {hash} was not found in the network (no provider has it)"
        )),
        FetchError::Store(e) => e.into(),
        FetchError::Cancelled => ApiError::unavailable("the request was cancelled"),
        other => ApiError::new(StatusCode::BAD_GATEWAY, "fetch_failed", other.to_string()),
    }
}

impl Source {
    /// Opens `hash`, proving its size over the network if it is not
    /// complete locally. `providers` are tried besides the DHT's.
    pub(super) async fn open(
        blobs: &Blobs,
        hash: Hash,
        providers: Vec<Provider>,
        cancel: &CancellationToken,
    ) -> Result<Self, ApiError> {
        let store = blobs.store().clone();
        let hold = store.hold(hash);
        let info = {
            let store = store.clone();
            blocking(move || store.info(&hash))
                .await?
                .map_err(ApiError::from)?
        };
        let name = info
            .as_ref()
            .and_then(|i| i.name.clone())
            .filter(|n| !n.is_empty());
        if let Some(info) = info.filter(|i| i.complete) {
            return Ok(Self {
                store,
                hash,
                size: info.size,
                name,
                complete: true,
                session: None,
                _hold: hold,
            });
        }
        let session = blobs.fetcher().session(hash, providers);
        let prove = cancel.child_token();
        let size = match tokio::time::timeout(PROVE_TIMEOUT, session.ensure(0..0, &prove)).await {
            Ok(Ok(size)) => size,
            Ok(Err(e)) => return Err(fetch_error(hash, e)),
            Err(_) => {
                prove.cancel();
                return Err(ApiError::not_found(format!(
                    "blob {hash} was not found in the network (no provider answered within {} s)",
                    PROVE_TIMEOUT.as_secs()
                )));
            }
        };
        Ok(Self {
            store,
            hash,
            size,
            name,
            complete: false,
            session: Some(session),
            _hold: hold,
        })
    }

    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// Makes bytes `range` local and verified, any length: in steps of
    /// [`ENSURE_STEP`], each bounded by [`SEGMENT_TIMEOUT`].
    pub(super) async fn ensure_all(
        &self,
        range: Range<u64>,
        cancel: &CancellationToken,
    ) -> Result<(), ApiError> {
        if self.session.is_none() {
            return Ok(());
        }
        if range.is_empty() {
            return self.ensure(range, cancel).await;
        }
        let mut pos = range.start;
        while pos < range.end {
            let end = range.end.min(pos.saturating_add(ENSURE_STEP));
            self.ensure(pos..end, cancel).await?;
            pos = end;
        }
        Ok(())
    }

    /// Makes bytes `range` local and verified (a segment or a step).
    async fn ensure(&self, range: Range<u64>, cancel: &CancellationToken) -> Result<(), ApiError> {
        let Some(session) = &self.session else {
            return Ok(());
        };
        match tokio::time::timeout(SEGMENT_TIMEOUT, session.ensure(range, cancel)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(fetch_error(self.hash, e)),
            Err(_) => Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "fetch_timeout",
                format!(
                    "blob {}: no provider delivered the data within {} s",
                    self.hash,
                    SEGMENT_TIMEOUT.as_secs()
                ),
            )),
        }
    }

    /// Fetches if needed, then reads bytes `range` (at most a segment or so:
    /// it is read into one buffer).
    pub(super) async fn read(
        &self,
        range: Range<u64>,
        cancel: &CancellationToken,
    ) -> Result<Bytes, ApiError> {
        self.ensure(range.clone(), cancel).await?;
        let store = self.store.clone();
        let hash = self.hash;
        blocking(move || read_verified(&store, &hash, range)).await?
    }

    /// The whole blob in memory, for a manifest of at most `limit` bytes.
    pub(super) async fn read_all(
        &self,
        limit: u64,
        cancel: &CancellationToken,
    ) -> Result<Vec<u8>, ApiError> {
        self.ensure_all(0..self.size, cancel).await?;
        let store = self.store.clone();
        let hash = self.hash;
        blocking(move || store.read_to_vec(&hash, limit))
            .await?
            .map_err(ApiError::from)
    }

    /// Records a use of a complete blob for least-recently-used eviction.
    pub(super) fn touch(&self) {
        if self.complete {
            let store = self.store.clone();
            let hash = self.hash;
            tokio::task::spawn_blocking(move || {
                let _ = store.touch(&hash);
            });
        }
    }

    /// The bytes of `range`, segment by segment, fetching ahead as needed.
    /// On a failure the stream yields the error and ends, so the client
    /// sees a truncated body rather than wrong bytes.
    pub(super) fn stream(
        self: Arc<Self>,
        range: Range<u64>,
    ) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
        let cancel = CancellationToken::new();
        let guard = cancel.clone().drop_guard();
        futures::stream::iter(segments(range))
            .map(move |segment| {
                let source = self.clone();
                let cancel = cancel.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        r = source.read(segment, &cancel) => r.map_err(|e| io::Error::other(e.message)),
                        _ = cancel.cancelled() => Err(io::Error::other("the response was dropped")),
                    }
                })
            })
            .buffered(READ_AHEAD)
            .map(move |joined| {
                let _cancel_on_drop = &guard;
                joined.unwrap_or_else(|e| Err(io::Error::other(e)))
            })
            .scan(false, |failed, item| {
                let end = *failed;
                *failed = item.is_err();
                if let Err(e) = &item {
                    tracing::debug!("gateway response ends early: {e}");
                }
                futures::future::ready((!end).then_some(item))
            })
    }
}

/// Reads bytes `range` of a blob after checking they are verified. Blocking.
fn read_verified(store: &Store, hash: &Hash, range: Range<u64>) -> Result<Bytes, ApiError> {
    let reader = store
        .reader(hash)
        .map_err(ApiError::from)?
        .ok_or_else(|| ApiError::not_found(format!("blob {hash} is no longer in the store")))?;
    if range.end > reader.size || !reader.has_bytes(range.start, range.end) {
        return Err(ApiError::internal(format!(
            "blob {hash}: bytes {}..{} are not verified",
            range.start, range.end
        )));
    }
    let len = usize::try_from(range.end - range.start)
        .map_err(|_| ApiError::internal("range too large to read at once"))?;
    let mut buf = vec![0u8; len];
    reader
        .data
        .read_exact_at(range.start, &mut buf)
        .map_err(|e| ApiError::internal(format!("blob {hash}: cannot read data: {e}")))?;
    Ok(Bytes::from(buf))
}

/// `range` cut at multiples of [`SEGMENT`].
fn segments(range: Range<u64>) -> impl Iterator<Item = Range<u64>> {
    let mut pos = range.start;
    std::iter::from_fn(move || {
        if pos >= range.end {
            return None;
        }
        let end = (pos / SEGMENT + 1).saturating_mul(SEGMENT).min(range.end);
        let segment = pos..end;
        pos = end;
        Some(segment)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_aligned() {
        let m = SEGMENT;
        assert_eq!(segments(0..0).count(), 0);
        assert_eq!(segments(5..6).collect::<Vec<_>>(), vec![5..6]);
        assert_eq!(
            segments(10..2 * m + 3).collect::<Vec<_>>(),
            vec![10..m, m..2 * m, 2 * m..2 * m + 3]
        );
        assert_eq!(segments(m..2 * m).collect::<Vec<_>>(), vec![m..2 * m]);
    }
}
