//! Database outages: 503 while the database is away, recovery without a restart.

use crate::support::*;

/// A server whose database sits behind `proxy`: cutting the proxy gives 503
/// problem responses (no hang) and a failing `/readyz`; restoring it brings
/// everything back without a restart.
pub async fn outage_gives_503_and_recovery_needs_no_restart(
    env: &[(&str, String)],
    proxy: &proxy::Proxy,
) {
    let server = Server::start(env);
    assert_eq!(server.register("steady").await, StatusCode::CREATED);
    let token = server.token("steady").await;

    proxy.cut();
    let started = std::time::Instant::now();
    let during = server
        .http
        .get(server.url("/users/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(during.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(during.headers()["content-type"], "application/problem+json");
    assert!(started.elapsed() < Duration::from_secs(10), "no hang");
    let ready = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        server.register("during").await,
        StatusCode::SERVICE_UNAVAILABLE
    );

    proxy.restore();
    let mut recovered = false;
    for _ in 0..75 {
        if server.me(&token).await == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the server came back without a restart");
    let ready_again = server.http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready_again.status(), StatusCode::OK, "readiness flips back");
    assert_eq!(server.register("after").await, StatusCode::CREATED);
    server.stop();
}

/// A TCP proxy in front of a database that the test can cut and restore,
/// so an outage is simulated without stopping the shared server.
pub mod proxy {
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::watch;

    pub struct Proxy {
        pub addr: SocketAddr,
        up: Arc<AtomicBool>,
        generation: watch::Sender<u64>,
    }

    impl Proxy {
        pub async fn start(upstream: String) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let up = Arc::new(AtomicBool::new(true));
            let (generation, _) = watch::channel(0u64);
            let accepting_up = Arc::clone(&up);
            let cuts = generation.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    if !accepting_up.load(Ordering::SeqCst) {
                        drop(client); // refused while down
                        continue;
                    }
                    let mut cut = cuts.subscribe();
                    let upstream = upstream.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(&upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cut.changed() => {}
                        }
                    });
                }
            });
            Self {
                addr,
                up,
                generation,
            }
        }

        /// Drops every live connection and refuses new ones.
        pub fn cut(&self) {
            self.up.store(false, Ordering::SeqCst);
            self.generation.send_modify(|g| *g += 1);
        }

        pub fn restore(&self) {
            self.up.store(true, Ordering::SeqCst);
        }
    }
}
