//! The web UI's static files, embedded at compile time from `web-ui/` by `host/build.rs`.
//!
//! Lessons from PCSS: no file path ever comes from a client. A request names an entry of a
//! fixed, sorted table built into the binary; anything else is a 404. Nothing here touches the
//! file system at run time.

use warp::http::Response;
use warp::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use warp::path::Tail;
use warp::{Filter, Rejection};

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// Path below `web-ui/`, `/`-separated, e.g. `js/app.js`.
    pub name: &'static str,
    /// Content-Type chosen from the extension at build time.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// Every embedded file, sorted by name.
pub fn all() -> &'static [Asset] {
    ASSETS
}

/// Look a name up in the table (`""` means `index.html`).
pub fn get(name: &str) -> Option<&'static Asset> {
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS
        .binary_search_by(|a| a.name.cmp(name))
        .ok()
        .and_then(|i| ASSETS.get(i))
}

/// The HTTP response for an asset. `no-cache` makes browsers revalidate, so a new build's UI
/// is picked up at once (the security headers are added by the server shell).
pub fn response(asset: &'static Asset) -> warp::reply::Response {
    let mut resp = Response::new(asset.body.into());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// GET/HEAD of any embedded file by its path; unknown names reject with not-found so other
/// routes (and the final 404) still get their turn.
pub fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = Rejection> + Clone {
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::tail())
        .and_then(|tail: Tail| async move {
            get(tail.as_str())
                .map(response)
                .ok_or_else(warp::reject::not_found)
        })
}
