//! An axum app served on `127.0.0.1:0` from a tokio runtime of its own,
//! stopped when dropped: the common part of the test doubles in
//! `agent_support` and `hooklist_server`.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

/// A running loopback HTTP server.
pub struct Loopback {
    /// Where it listens.
    pub addr: SocketAddr,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Loopback {
    /// Bind `127.0.0.1:0` and serve the app `app` builds for that address.
    pub fn serve(app: impl FnOnce(SocketAddr) -> axum::Router) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let app = app(addr);
        runtime.spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            runtime: Some(runtime),
        }
    }

    /// The base URL to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Loopback {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
