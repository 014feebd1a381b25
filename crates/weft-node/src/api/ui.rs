//! The node's web dashboard: `GET /` and its assets under `GET /ui/{file}`.
//!
//! The dashboard is plain HTML, CSS and JavaScript modules from
//! `crates/weft-node/ui/`, embedded in the binary at build time, so it needs
//! no build step, no network and no files next to the binary. It reaches the
//! node only through the same `/v1` API as the CLI, with the bearer token the
//! user hands it (`weft ui` prints a URL that carries it in the fragment).
//!
//! The pages carry no token and hold no state, so they are served without
//! authentication. Every answer has a strict Content-Security-Policy (only
//! this origin's scripts, styles and connections; no inline code; no
//! framing), `nosniff` and `no-referrer`. Only the files in [`ASSETS`] are
//! served; any other name, including one that tries to climb out of the
//! folder, is a 404.

use axum::{
    extract::Path,
    http::{header, HeaderName, HeaderValue},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use super::{ApiError, ApiState};

/// The policy every dashboard answer carries.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data: blob:; \
     style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// One embedded file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $content_type:literal) => {
        Asset {
            name: $name,
            content_type: $content_type,
            bytes: include_bytes!(concat!("../../ui/", $name)),
        }
    };
}

/// Every file under `/ui/`, by name. `index.html` is also served at `/`.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("style.css", "text/css; charset=utf-8"),
    asset!("app.js", "text/javascript; charset=utf-8"),
    asset!("api.js", "text/javascript; charset=utf-8"),
    asset!("util.js", "text/javascript; charset=utf-8"),
    asset!("plot.js", "text/javascript; charset=utf-8"),
    asset!("node.js", "text/javascript; charset=utf-8"),
    asset!("content.js", "text/javascript; charset=utf-8"),
    asset!("wallet.js", "text/javascript; charset=utf-8"),
    asset!("topics.js", "text/javascript; charset=utf-8"),
    asset!("apps.js", "text/javascript; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
];

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/{file}", get(file))
}

async fn index() -> Response {
    serve("index.html")
}

async fn file(Path(name): Path<String>) -> Response {
    serve(&name)
}

/// The asset called exactly `name`, with the dashboard's headers, or a 404.
fn serve(name: &str) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return ApiError::not_found("no such dashboard file").into_response();
    };
    let mut response = asset.bytes.into_response();
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CACHE_CONTROL, "no-cache"),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    #[test]
    fn index_references_every_asset_it_needs() {
        let index = std::str::from_utf8(ASSETS[0].bytes).unwrap();
        assert!(index.contains("/ui/style.css"));
        assert!(index.contains("/ui/app.js"));
        assert!(!index.contains("<script>"), "no inline scripts");
        assert!(!index.contains("style="), "no inline styles");
    }

    /// The `'./x.js'` modules that `text` imports (`from './x.js'`).
    fn imports(text: &str) -> Vec<&str> {
        text.split("from './")
            .skip(1)
            .filter_map(|rest| rest.split('\'').next())
            .collect()
    }

    #[test]
    fn module_imports_name_embedded_files() {
        let mut seen = 0;
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let text = std::str::from_utf8(asset.bytes).unwrap();
            for target in imports(text) {
                seen += 1;
                assert!(
                    ASSETS.iter().any(|a| a.name == target),
                    "{} imports {target}, which is not embedded",
                    asset.name
                );
            }
        }
        assert!(seen > 5, "the modules import each other");
    }
}
