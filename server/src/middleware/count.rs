//! Counts every request by route template and status for `/metrics`.
//!
//! A plain tower layer rather than `axum::middleware::from_fn`: that one
//! boxes the middleware's future and clones the boxed inner service for its
//! `Next` on every request (callgrind, crash intake: docs/daisy.md, "The
//! HTTP stack"); this one only wraps the route's own future.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::response::Response;
use tower_layer::Layer;
use tower_service::Service;

use crate::app::AppState;

/// The layer, applied with `Router::layer` so that the matched route
/// template is known.
#[derive(Clone)]
pub struct CountRequests {
    app: AppState,
}

impl CountRequests {
    /// Counts into `app.metrics`.
    pub fn new(app: AppState) -> CountRequests {
        CountRequests { app }
    }
}

impl<S> Layer<S> for CountRequests {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Counted<S> {
        Counted {
            inner,
            app: self.app.clone(),
        }
    }
}

/// A route's service, counted.
#[derive(Clone)]
pub struct Counted<S> {
    inner: S,
    app: AppState,
}

impl<S> Service<Request> for Counted<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CountedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The template, never the raw path: system ids must not become
        // labels. `MatchedPath` is a shared string: cloning it allocates
        // nothing.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .cloned()
            .map(Route::Matched);
        CountedFuture {
            inner: self.inner.call(req),
            route,
            app: self.app.clone(),
            done: false,
        }
    }
}

/// The route template a request is counted under.
enum Route {
    /// As the router matched it.
    Matched(MatchedPath),
    /// Known without the router (the crash upload's fast path).
    Fixed(&'static str),
}

/// Counts the response of `inner`, a request to `route` that did not go
/// through the router.
pub fn counted<F>(inner: F, route: &'static str, app: AppState) -> CountedFuture<F> {
    CountedFuture {
        inner,
        route: Some(Route::Fixed(route)),
        app,
        done: false,
    }
}

pin_project_lite::pin_project! {
    /// The route's future; counts its response when it is ready. One
    /// dropped before that (cut off by the request timeout outside the
    /// router, or its client gone) is counted as `408`.
    pub struct CountedFuture<F> {
        #[pin]
        inner: F,
        route: Option<Route>,
        app: AppState,
        done: bool,
    }

    impl<F> PinnedDrop for CountedFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                this.app.metrics.request(route_label(this.route), 408);
            }
        }
    }
}

fn route_label(route: &Option<Route>) -> &str {
    match route {
        Some(Route::Matched(matched)) => matched.as_str(),
        Some(Route::Fixed(route)) => route,
        None => "unmatched",
    }
}

impl<F> Future for CountedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        *this.done = true;
        if let Ok(response) = &result {
            this.app
                .metrics
                .request(route_label(this.route), response.status().as_u16());
        }
        Poll::Ready(result)
    }
}
