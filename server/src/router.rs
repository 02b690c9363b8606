//! Every route in one place, each with its body limit; one timeout around
//! all of them, so a slow or endless body cannot hold a connection.
//!
//! Only the request counter is a `Router::layer`: axum wraps every route in
//! one more boxed service per such layer and clones each box on every
//! request, so the timeout goes around the router once instead, and each
//! body limit is applied where the body is read (docs/daisy.md, "The HTTP
//! stack").
//!
//! The crash upload, nearly every request daisy gets, goes past the router
//! ([`CrashFastPath`]) to the same handler, timed out and counted the same.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use futures_util::future::Either;
use hyper::Request;
use hyper::body::Incoming;
use tower_http::timeout::Timeout;
use tower_service::Service;

use crate::app::AppState;
use crate::controllers::{api, crash, health, hooks};
use crate::middleware::count::{CountRequests, CountedFuture, counted};

/// daisy's whole HTTP service, as `server::serve` hands it to each connection.
pub trait HttpService:
    Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> HttpService for T where
    T: Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Builds daisy's HTTP service: the router, with the crash upload's way
/// past it, inside the request timeout.
pub fn build(app: AppState) -> impl HttpService {
    let timeout = Duration::from_secs(app.config.limits.request_timeout_secs);
    let service = CrashFastPath {
        router: routes(app.clone()),
        app,
    };
    Timeout::with_status_code(service, StatusCode::REQUEST_TIMEOUT, timeout)
}

/// The routes of one path segment without a parameter. `POST /{system_id}`
/// must not take these: the router gives their own route precedence (and
/// answers `405`, since none takes a `POST`).
const SINGLE_SEGMENT_ROUTES: [&str; 2] = ["/healthz", "/metrics"];

/// The crash upload's route template (its `/metrics` label).
const CRASH_UPLOAD: &str = "/{system_id}";

/// Sends `POST /{system_id}` straight to [`crash::submit`], counted under
/// its route as the router would, and everything else to the router.
/// Routing, the path parameter's percent-decoding and the matched-path
/// extension cost about a tenth of the intake's instructions per crash
/// (callgrind, docs/daisy.md "Session 6"); a crash upload needs none of
/// them. Only a path the router would surely give the same handler with the
/// same parameter takes this way: one segment, not one of
/// [`SINGLE_SEGMENT_ROUTES`], with nothing to percent-decode.
#[derive(Clone)]
struct CrashFastPath {
    router: Router,
    app: AppState,
}

/// The system id of a crash upload that needs no routing.
fn crash_upload<'p>(method: &Method, path: &'p str) -> Option<&'p str> {
    if method != Method::POST {
        return None;
    }
    let system_id = path.strip_prefix('/')?;
    let plain = !system_id.is_empty() && !system_id.contains(['/', '%']);
    (plain && !SINGLE_SEGMENT_ROUTES.contains(&path)).then_some(system_id)
}

type Upload = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request<Incoming>> for CrashFastPath {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<CountedFuture<Upload>, <Router as Service<Request<Incoming>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request<Incoming>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        let Some(system_id) = crash_upload(req.method(), req.uri().path()).map(str::to_owned)
        else {
            return Either::Right(self.router.call(req));
        };
        let app = self.app.clone();
        let body = Body::new(req.into_body());
        let upload: Upload = Box::pin({
            let app = app.clone();
            async move {
                Ok(crash::submit(State(app), Path(system_id), body)
                    .await
                    .into_response())
            }
        });
        Either::Left(counted(upload, CRASH_UPLOAD, app))
    }
}

fn routes(app: AppState) -> Router {
    let limits = app.config.limits.clone();
    let [healthz, metrics] = SINGLE_SEGMENT_ROUTES;
    Router::new()
        .route(healthz, get(health::healthz))
        .route(metrics, get(health::metrics))
        // Read with its own cap (`limits.max_report_bytes`). Crash uploads
        // normally come by `CrashFastPath`.
        .route(CRASH_UPLOAD, post(crash::submit))
        .route("/{oops_id}/hooks/{system_id}", get(hooks::list))
        .route("/hooks/{id}/bundle", get(hooks::bundle))
        // Streamed with its own caps (`limits.max_result_bytes`, the disk cap).
        .route("/hooks/{id}/results/{oops_id}", post(hooks::post_result))
        .route("/api/1.0/hooks", get(api::hooks))
        .route("/api/1.0/hooks/{id}", get(api::hook))
        .route("/api/1.0/hooks/{id}/results", get(api::hook_results))
        .route("/api/1.0/oops/{id}", get(api::oops))
        .route("/api/1.0/problems/{*bucket}", get(api::problem))
        // The only route whose extractor (JSON) reads the body for it.
        .route(
            "/api/1.0/sas/{*sas}",
            put(api::put_sas).layer(DefaultBodyLimit::max(limits.max_api_body_bytes)),
        )
        // Streamed with its own cap (`limits.max_core_bytes`).
        .route(
            "/{oops_id}/submit-core/{arch}/{system_id}",
            post(crash::submit_core),
        )
        .layer(CountRequests::new(app.clone()))
        .with_state(app)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_one_segment_posts_skip_the_router() {
        let post = Method::POST;
        assert_eq!(crash_upload(&post, "/abc123"), Some("abc123"));
        assert_eq!(crash_upload(&post, "/a.b_c-d"), Some("a.b_c-d"));
        assert_eq!(crash_upload(&Method::GET, "/abc123"), None);
        assert_eq!(crash_upload(&Method::PUT, "/abc123"), None);
        for path in ["/", "", "/healthz", "/metrics", "/abc%31", "/a/b", "/abc/"] {
            assert_eq!(crash_upload(&post, path), None, "{path}");
        }
    }
}
