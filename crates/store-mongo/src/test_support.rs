//! Throwaway databases for tests, on the server named by
//! `TESSERA_TEST_MONGO_URL`. `cargo xtask test` starts a MongoDB-wire test
//! server and sets it; to use a real `mongod`, set it yourself
//! (`mongodb://127.0.0.1:27017`). An unreachable server fails the test with
//! instructions: a backend that did not run is never reported as passing.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::Client;
use store_conformance::throwaway;

/// The environment variable naming the test server.
pub const TEST_URL_VAR: &str = "TESSERA_TEST_MONGO_URL";

/// A fresh database (`tessera_test_<uuid>`), dropped when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    server_url: String,
    url: String,
}

impl TestDatabase {
    /// On the server named by `TESSERA_TEST_MONGO_URL`.
    pub async fn create() -> Self {
        let server_url = std::env::var(TEST_URL_VAR).unwrap_or_else(|_| {
            panic!(
                "{TEST_URL_VAR} is not set. Run the tests with `cargo xtask test`, which starts \
                 a MongoDB-wire test server, or point {TEST_URL_VAR} at a MongoDB \
                 (e.g. mongodb://127.0.0.1:27017)."
            )
        });
        Self::create_on(server_url).await
    }

    /// On the server at `server_url`.
    pub async fn create_on(server_url: String) -> Self {
        let name = throwaway::database_name();
        let client = client(&server_url).await;
        client
            .database(&name)
            .run_command(doc! { "ping": 1 })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "MongoDB is not reachable at {server_url} ({TEST_URL_VAR}): {e}\n\
                     Run the tests with `cargo xtask test`, or start a mongod there."
                )
            });
        let url = throwaway::with_database(&server_url, &name);
        Self {
            name,
            server_url,
            url,
        }
    }

    /// A connection string naming this database.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

async fn client(url: &str) -> Client {
    let mut options = ClientOptions::parse(url)
        .await
        .unwrap_or_else(|e| panic!("{TEST_URL_VAR}={url} is not a MongoDB URL: {e}"));
    options.server_selection_timeout = Some(Duration::from_secs(5));
    Client::with_options(options).expect("MongoDB client")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        throwaway::drop_database(&self.name, move || async move {
            let client = client(&server_url).await;
            client
                .database(&name)
                .drop()
                .await
                .map_err(|e| e.to_string())?;
            client.shutdown().await;
            Ok(())
        });
    }
}
