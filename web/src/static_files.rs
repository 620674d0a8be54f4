//! Static assets compiled into the binary, so a single file serves the UI.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// (name, content type, bytes). htmx is vendored from the npm registry
/// (htmx.org 2.0.11, BSD-2-Clause, licence in `static/htmx-LICENSE`).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "htmx-2.0.11.min.js",
        "text/javascript",
        include_bytes!("../static/htmx-2.0.11.min.js"),
    ),
    ("app.css", "text/css", include_bytes!("../static/app.css")),
    (
        "app.js",
        "text/javascript",
        include_bytes!("../static/app.js"),
    ),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
