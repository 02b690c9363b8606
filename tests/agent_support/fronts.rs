//! What can sit between the agent and daisy on loopback:
//! - [`Gate`]: an HTTP-level gate that forwards every request, but can
//!   answer result uploads with 503, flip a byte of bundles, or replace the
//!   bearer token of result uploads;
//! - [`CutProxy`]: a TCP pass-through that, when armed, stops a result
//!   upload after its head and the first bytes of its body and says so, so
//!   a test can kill daisy at exactly that point; the agent's connection is
//!   then reset; or lets an upload through whole and loses daisy's answer
//!   (daisy stored the result, the agent never heard so).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Switches of a [`Gate`].
#[derive(Clone, Default)]
pub struct Gate {
    /// While set, result uploads get 503 (daisy "down" for them).
    pub results_down: Arc<AtomicBool>,
    /// While set, a byte of every bundle passed on is flipped.
    pub tamper_bundles: Arc<AtomicBool>,
    /// While set, result uploads carry a token daisy never issued.
    pub wrong_token: Arc<AtomicBool>,
}

impl Gate {
    /// Serves the gate on `listener`, forwarding to `daisy` (a base URL).
    pub async fn serve(self, listener: TcpListener, daisy: String) {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, Method, StatusCode, Uri};
        use axum::response::IntoResponse;
        let client =
            apport_hooks::agent::http::build_client(&apport_hooks::agent::http::ClientSettings {
                ca_file: None,
                connect_timeout: std::time::Duration::from_secs(10),
                timeout: std::time::Duration::from_secs(60),
            })
            .unwrap();
        let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (client, daisy, gate) = (client.clone(), daisy.clone(), self.clone());
            async move {
                let results = uri.path().contains("/results/");
                if results && gate.results_down.load(Ordering::SeqCst) {
                    return (StatusCode::SERVICE_UNAVAILABLE, Bytes::from("down")).into_response();
                }
                let mut request = client.request(method, format!("{daisy}{uri}"));
                let forged = results && gate.wrong_token.load(Ordering::SeqCst);
                for (name, value) in &headers {
                    if name != "host"
                        && name != "content-length"
                        && name != "transfer-encoding"
                        && !(forged && name == "authorization")
                    {
                        request = request.header(name, value);
                    }
                }
                if forged {
                    request = request.header("authorization", format!("Bearer {}", "0".repeat(64)));
                }
                let r = request.body(body).send().await.unwrap();
                let status = StatusCode::from_u16(r.status().as_u16()).unwrap();
                let mut body = r.bytes().await.unwrap().to_vec();
                if uri.path().ends_with("/bundle") && gate.tamper_bundles.load(Ordering::SeqCst) {
                    let last = body.len() - 2;
                    body[last] ^= 0x20;
                }
                (status, Bytes::from(body)).into_response()
            }
        };
        axum::serve(
            listener,
            axum::Router::new()
                .fallback(handler)
                .layer(axum::extract::DefaultBodyLimit::max(128 << 20)),
        )
        .await
        .unwrap();
    }
}

/// Body bytes of a result upload let through before the cut.
pub const CUT_AFTER_BODY_BYTES: usize = 16;

/// A TCP pass-through to daisy that can hold a result upload mid-body.
#[derive(Clone)]
pub struct CutProxy {
    armed: Arc<AtomicBool>,
    lose_answer: Arc<AtomicBool>,
    held: Arc<std::sync::Mutex<mpsc::Sender<()>>>,
    release: Arc<tokio::sync::Notify>,
}

impl CutProxy {
    /// A proxy and the receiver that hears when an upload is held.
    pub fn new() -> (CutProxy, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        (
            CutProxy {
                armed: Arc::new(AtomicBool::new(false)),
                lose_answer: Arc::new(AtomicBool::new(false)),
                held: Arc::new(std::sync::Mutex::new(tx)),
                release: Arc::new(tokio::sync::Notify::new()),
            },
            rx,
        )
    }

    /// Hold the next result upload (once).
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Let the next result upload through whole but close the agent's
    /// connection instead of passing daisy's answer on (once).
    pub fn lose_next_answer(&self) {
        self.lose_answer.store(true, Ordering::SeqCst);
    }

    /// Reset the held upload's connection (after daisy was killed).
    pub fn release(&self) {
        self.release.notify_waiters();
    }

    /// Serves on `listener`, forwarding to `daisy`.
    pub async fn serve(self, listener: TcpListener, daisy: SocketAddr) {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let Ok(upstream) = TcpStream::connect(daisy).await else {
                    return;
                };
                proxy.pump(client, upstream).await;
            });
        }
    }

    async fn pump(&self, client: TcpStream, upstream: TcpStream) {
        let (mut client_read, mut client_write) = client.into_split();
        let (mut up_read, mut up_write) = upstream.into_split();
        // Set once this connection carried a result upload whose answer is to be lost.
        let swallow = Arc::new(AtomicBool::new(false));
        let swallowing = swallow.clone();
        let back = tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match up_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    // The answer to the upload: dropped, and the connection with it.
                    Ok(_) if swallowing.load(Ordering::SeqCst) => break,
                    Ok(n) => {
                        if client_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = client_write.shutdown().await;
        });
        // Client → daisy: watch for a result upload's head.
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let start = seen.len();
            seen.extend_from_slice(&buf[..n]);
            // The answer can only come after these bytes reach daisy.
            if self.lose_answer.load(Ordering::SeqCst)
                && cut_point(&seen).is_some()
                && self.lose_answer.swap(false, Ordering::SeqCst)
            {
                swallow.store(true, Ordering::SeqCst);
            }
            let cut = self
                .armed
                .load(Ordering::SeqCst)
                .then(|| cut_point(&seen))
                .flatten();
            match cut {
                Some(at) if at <= seen.len() && self.armed.swap(false, Ordering::SeqCst) => {
                    let _ = up_write.write_all(&seen[start.min(at)..at]).await;
                    let _ = up_write.flush().await;
                    let released = self.release.notified();
                    let _ = self.held.lock().unwrap().send(());
                    released.await;
                    // Daisy is dead (its end of the connection closed): close
                    // ours, with the rest of the upload unread, so the agent
                    // sees its connection fail before any answer.
                    drop(client_read);
                    drop(up_write);
                    let _ = back.await;
                    return;
                }
                _ => {
                    if up_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
            if seen.len() > (1 << 20) {
                // Long past any request head: keep the buffer small.
                seen.drain(..seen.len() - 4096);
            }
        }
        let _ = up_write.shutdown().await;
        let _ = back.await;
    }
}

/// Where a result upload's head ends plus [`CUT_AFTER_BODY_BYTES`], if the
/// stream holds one.
fn cut_point(seen: &[u8]) -> Option<usize> {
    let post = find(seen, b"POST /hooks/")?;
    let results = post + find(&seen[post..], b"/results/")?;
    let head_end = results + find(&seen[results..], b"\r\n\r\n")? + 4;
    Some(head_end + CUT_AFTER_BODY_BYTES)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
