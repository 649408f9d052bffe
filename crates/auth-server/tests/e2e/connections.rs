//! Connection-level limits on the real binary, loopback only: slow clients
//! (slowloris headers, trickled bodies, idle keep-alive) are cut off, one
//! address cannot take every slot, and others keep being served meanwhile.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

/// A connection from `source` (any 127.0.0.0/8 address is this machine).
async fn connect_from(source: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    socket.connect(server).await.unwrap()
}

/// Reads until the server closes; `None` if it has not within `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(limit, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| received)
}

fn limited_env(
    dir: &std::path::Path,
    settings: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut env = sqlite_env(dir);
    env.extend(settings.iter().map(|(k, v)| (*k, (*v).to_owned())));
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_from_one_address_neither_starve_others_nor_stay() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&limited_env(
        dir.path(),
        &[
            ("TESSERA_SERVER__HEADER_READ_TIMEOUT", "2s"),
            ("TESSERA_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "20"),
        ],
    ));
    // 40 connections from one address that never finish their headers.
    let opened = Instant::now();
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut stream = connect_from([127, 0, 0, 1], server.addr).await;
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")
            .await;
        slow.push(stream);
    }
    // Another client address is served at once.
    let mut other = connect_from([127, 0, 0, 2], server.addr).await;
    let asked = Instant::now();
    other
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut other, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "answered in {:?}",
        asked.elapsed()
    );
    // Every slow connection is closed: 20 refused at once, 20 at the timeout.
    for stream in &mut slow {
        let left = Duration::from_secs(5).saturating_sub(opened.elapsed());
        let got = closed_within(stream, left).await;
        assert_eq!(got.as_deref(), Some(&b""[..]), "closed without an answer");
    }
    assert!(opened.elapsed() < Duration::from_secs(5));
    assert_eq!(
        metric(
            &server,
            "tessera_connections_refused_total{cap=\"per_address\"}"
        )
        .await,
        20.0
    );
    assert!(
        metric(
            &server,
            "tessera_connection_timeouts_total{kind=\"header\"}"
        )
        .await
            >= 20.0
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off_and_a_large_timely_one_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&limited_env(
        dir.path(),
        &[("TESSERA_SERVER__BODY_READ_TIMEOUT", "2s")],
    ));
    let mut trickle = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    trickle
        .write_all(
            b"POST /users HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    let sender = tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if trickle.write_all(b" ").await.is_err() {
                break;
            }
        }
        trickle
    });
    let mut trickle = sender.await.unwrap();
    let answer = closed_within(&mut trickle, Duration::from_secs(1)).await;
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "cut off at the body timeout, not when the client gave up"
    );
    let answer = answer.unwrap_or_default();
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(metric(&server, "tessera_connection_timeouts_total{kind=\"body\"}").await >= 1.0);

    // Close to the 64 KiB body limit, sent in pieces, in time: judged on its content.
    let body = json!({
        "username": "large",
        "email": "large@example.org",
        "password": "p".repeat(60 * 1024),
    })
    .to_string();
    let mut large = TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /users HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    large.write_all(head.as_bytes()).await.unwrap();
    for piece in body.as_bytes().chunks(8 * 1024) {
        large.write_all(piece).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = closed_within(&mut large, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 422"),
        "read whole, refused for its password: {}",
        String::from_utf8_lossy(&answer[..answer.len().min(200)])
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connections_close_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&limited_env(
        dir.path(),
        &[
            ("TESSERA_SERVER__HEADER_READ_TIMEOUT", "1s"),
            ("TESSERA_SERVER__KEEP_ALIVE_TIMEOUT", "3s"),
        ],
    ));
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let mut buf = [0u8; 4096];
    // Idle longer than the header timeout but shorter than keep-alive: reused.
    for _ in 0..2 {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let n = stream.read(&mut buf).await.unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let idle_since = Instant::now() - Duration::from_millis(1500);
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(closed.as_deref(), Some(&b""[..]));
    let idle = idle_since.elapsed();
    assert!(
        idle >= Duration::from_millis(2800) && idle < Duration::from_secs(5),
        "closed after {idle:?} idle"
    );
    assert!(metric(&server, "tessera_connection_timeouts_total{kind=\"idle\"}").await >= 1.0);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_is_431() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&sqlite_env(dir.path()));
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(80 * 1024)
    );
    let _ = stream.write_all(huge.as_bytes()).await;
    let answer = closed_within(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let mut many = TcpStream::connect(server.addr).await.unwrap();
    let headers: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n");
    let _ = many.write_all(request.as_bytes()).await;
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), many.read(&mut answer))
        .await
        .expect("answered")
        .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_to_its_hard_limit_and_caps_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("prlimit");
    command
        .arg("--nofile=512:2048")
        .arg(env!("CARGO_BIN_EXE_tessera"));
    for (key, value) in tessera(&sqlite_env(dir.path())).get_envs() {
        match value {
            Some(value) => command.env(key, value),
            None => command.env_remove(key),
        };
    }
    let process = tessera_process::TesseraProcess::start(command, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}"));
    let logs = process.logs().join("\n");
    let limit = logs
        .lines()
        .find(|line| line.contains("open-file limit"))
        .unwrap_or_else(|| panic!("no open-file line: {logs}"));
    assert!(limit.contains("\"soft_before\":512"), "{limit}");
    assert!(limit.contains("\"soft\":2048"), "{limit}");
    let caps = logs
        .lines()
        .find(|line| line.contains("connection caps"))
        .unwrap_or_else(|| panic!("no caps line: {logs}"));
    // 2048 minus the database pool (10) and 64 in reserve; a quarter per address.
    assert!(caps.contains("\"max_connections\":1974"), "{caps}");
    assert!(
        caps.contains("\"max_connections_per_address\":493"),
        "{caps}"
    );
    let _ = process.stop(Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_held_only_to_the_global_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&limited_env(
        dir.path(),
        &[
            ("TESSERA_SERVER__MAX_CONNECTIONS", "12"),
            ("TESSERA_SERVER__MAX_CONNECTIONS_PER_ADDRESS", "3"),
            ("TESSERA_RATE_LIMIT__TRUSTED_PROXIES", "[\"127.0.0.3\"]"),
        ],
    ));
    // Eight connections from the proxy: all kept (per-address cap is 3).
    let mut proxied = Vec::new();
    for _ in 0..8 {
        proxied.push(connect_from([127, 0, 0, 3], server.addr).await);
    }
    for stream in &mut proxied {
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "served through the proxy"
        );
    }
    // The global cap still holds: 12 in all, so 4 more at most.
    let mut others = Vec::new();
    for _ in 0..6 {
        others.push(connect_from([127, 0, 0, 3], server.addr).await);
    }
    let mut refused = 0;
    for stream in &mut others {
        if closed_within(stream, Duration::from_millis(500)).await == Some(Vec::new()) {
            refused += 1;
        }
    }
    assert_eq!(refused, 2, "beyond the global cap of 12");
    drop(proxied);
    drop(others);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        metric(&server, "tessera_connections_refused_total{cap=\"global\"}").await,
        2.0
    );
    server.stop();
}
