//! The page at `/`: HTML, CSS and JavaScript from `src/page/`, compiled into the binary so
//! the console works offline and needs no build step. It holds no data: it asks for a
//! token (kept in the tab's `sessionStorage`) and reads everything through the API.

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::routing::get;

const INDEX: &str = include_str!("page/index.html");
const CSS: &str = include_str!("page/console.css");
const JS: &str = include_str!("page/console.js");

pub(crate) fn routes() -> Router {
    let asset = |kind: &'static str, body: &'static str| {
        get(move || async move { ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache")], body) })
    };
    Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX))
        .route("/console.css", asset("text/css; charset=utf-8", CSS))
        .route("/console.js", asset("text/javascript; charset=utf-8", JS))
}
