//! The read-only content gateway: `/blob/{hash}` and
//! `/blob/{collection}/{path}`, no token needed.

use axum::Router;

use super::ApiState;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
}
