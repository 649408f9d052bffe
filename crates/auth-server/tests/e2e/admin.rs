//! The administration API over a real store: a client made by the CLI
//! (`client add --admin`), concurrent sign-ins all audited, the account
//! list's cursor while accounts arrive, and the CLI's own audit records.

use crate::support::*;

/// `client_secret` from `tessera client add`'s output.
fn secret_from(output: &str) -> String {
    output
        .lines()
        .find_map(|line| line.strip_prefix("client_secret\t"))
        .unwrap_or_else(|| panic!("no secret in {output}"))
        .to_owned()
}

async fn admin_token(server: &Server, id: &str, secret: &str) -> String {
    let reply = server
        .http
        .post(server.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let body: Value = reply.json().await.unwrap();
    assert_eq!(body["scope"], "admin");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn admin_get(server: &Server, token: &str, path: &str) -> Value {
    let reply = server
        .http
        .get(server.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK, "{path}");
    reply.json().await.unwrap()
}

/// Every item of a listing, following `next_cursor`.
async fn all_pages(server: &Server, token: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut next = path.to_owned();
    loop {
        let page = admin_get(server, token, &next).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => next = format!("{path}&cursor={cursor}"),
            None => return items,
        }
    }
}

pub async fn admin_api_and_audit_log(env: &[(&str, String)]) {
    let added = run_ok(env, &["client", "add", "ops", "--admin"]);
    assert!(
        added.contains("grant_types\tclient_credentials\n"),
        "{added}"
    );
    assert!(added.contains("scopes\tadmin\n"), "{added}");
    let secret = secret_from(&added);
    let made = run_with_stdin(
        env,
        &[
            "user",
            "add",
            "--username",
            "auditee",
            "--email",
            "auditee@example.org",
        ],
        &format!("{PASSWORD}\n"),
    );
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );

    let server = Server::start(env);
    let token = admin_token(&server, "ops", &secret).await;
    let found = admin_get(&server, &token, "/admin/v1/users?q=AUDITEE").await;
    let id = found["items"][0]["id"].as_str().unwrap().to_owned();

    // Fifty concurrent sign-ins: fifty records, none lost.
    let logins =
        futures::future::join_all((0..50).map(|_| login_with(&server, "auditee", PASSWORD))).await;
    assert!(logins.iter().all(Option::is_some), "every sign-in succeeds");
    let sign_ins = all_pages(
        &server,
        &token,
        &format!("/admin/v1/audit?action=sign_in&target=user:{id}&limit=7"),
    )
    .await;
    assert_eq!(sign_ins.len(), 50, "one record per sign-in");
    assert!(sign_ins.iter().all(|e| e["outcome"] == "success"
        && e["actor"] == format!("user:{id}").as_str()
        && e["client_address"] == "127.0.0.1"
        && e["request_id"].is_string()));
    let mut ids: Vec<&str> = sign_ins.iter().map(|e| e["id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 50, "no record twice across pages");

    // The CLI's action is the operator's, in the same log.
    let created = admin_get(
        &server,
        &token,
        &format!("/admin/v1/audit?action=user.created&target=user:{id}"),
    )
    .await;
    assert_eq!(created["items"][0]["actor"], "operator", "{created}");

    // Pages of the account list hold while accounts are being created.
    let before = all_pages(&server, &token, "/admin/v1/users?limit=100")
        .await
        .len();
    for i in 0..20 {
        assert_eq!(
            server.register(&format!("early{i:02}")).await,
            StatusCode::CREATED
        );
    }
    let late: Vec<String> = (0..20).map(|i| format!("late{i:02}")).collect();
    let registering = futures::future::join_all(late.iter().map(|name| server.register(name)));
    let paging = all_pages(&server, &token, "/admin/v1/users?limit=3");
    let (statuses, listed) = futures::join!(registering, paging);
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED));
    let names: Vec<String> = listed
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_ascii_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(names, sorted, "ascending, nothing twice");
    for i in 0..20 {
        assert!(
            names.contains(&format!("early{i:02}")),
            "early{i:02} was there all along"
        );
    }
    let after = all_pages(&server, &token, "/admin/v1/users?limit=1000")
        .await
        .len();
    assert_eq!(after, before + 40);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    admin_api_and_audit_log(&sqlite_env(dir.path())).await;
}
