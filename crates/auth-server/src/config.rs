//! Configuration: figment merges, in order, the built-in defaults,
//! `config/default.toml`, the file named by `TESSERA_CONFIG`, and
//! `TESSERA_*` environment variables (`__` nests: `TESSERA_STORAGE__URL`).
//! Everything is validated once, in [`Config::validate`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auth_core::{
    ClientRegistration, DatabaseUrl, HashingConfig, Secret, SigningAlgorithm, StoreSettings,
    ThrottlePolicy,
};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// HS256 secrets that appear in our examples and docs: never acceptable in production.
pub const KNOWN_EXAMPLE_SECRETS: &[&str] = &[
    "change-me",
    "changeme",
    "secret",
    "dev-secret-do-not-use-in-production",
    "replace-with-at-least-32-random-bytes-from-a-secret-store",
];
/// RFC 7518 3.2: an HS256 key must be at least as long as the hash output.
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    Dev,
    Production,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Memory,
    Postgres,
    Mongo,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Memory => "memory",
            Backend::Postgres => "postgres",
            Backend::Mongo => "mongo",
        }
    }

    /// The `storage.url` schemes this backend connects with; the memory
    /// backend ignores the URL.
    pub fn url_schemes(self) -> &'static [&'static str] {
        match self {
            Backend::Sqlite => &["sqlite"],
            Backend::Memory => &[],
            Backend::Postgres => &["postgres", "postgresql"],
            Backend::Mongo => &["mongodb", "mongodb+srv"],
        }
    }
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty in `dev`, JSON in `production`.
    #[serde(alias = "")]
    Auto,
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub profile: Profile,
    /// Where generated dev secrets (and the default SQLite file) live.
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub tokens: TokensConfig,
    pub passwords: HashingConfig,
    pub throttle: ThrottlePolicy,
    pub rate_limit: RateLimitConfig,
    pub log: LogConfig,
    pub oauth: OAuthConfig,
    pub oidc: OidcConfig,
    pub ui: UiConfig,
    pub mail: crate::mail::MailConfig,
    pub accounts: crate::mail::AccountsConfig,
    pub factors: FactorsConfig,
    pub audit: AuditConfig,
    /// `[[clients]]`: OAuth clients defined by the operator (the CLI adds
    /// more to the store).
    pub clients: Vec<ClientRegistration>,
}

/// `[audit]`: the audit log in the store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// How long records are kept; the periodic purge (`server.purge_interval`)
    /// deletes older ones. `0s` keeps them forever.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// `[factors]`: second factors (authenticator apps, recovery codes,
/// passkeys). Passkeys take their relying party from `server.public_url`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FactorsConfig {
    /// Seals authenticator-app secrets at rest (>= 32 bytes). In `dev`, when
    /// unset, one is generated into `data_dir`. Required in `production`;
    /// changing it makes every enrolled app unusable (reset them with
    /// `tessera user reset-factors`).
    pub encryption_key: Option<Secret>,
}

/// `[oauth]`: grants and the authorization-code flow.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthConfig {
    /// v1 behaviour: the password and refresh grants from no `client_id`, or
    /// an unregistered one, act as the implicit public client `tessera`.
    pub legacy_public_client: bool,
    /// `false` turns the password grant off for every client.
    pub password_grant: bool,
    /// How long an authorization code may be redeemed.
    #[serde(with = "humantime_serde")]
    pub code_ttl: Duration,
    /// How long a sign-in or consent page may wait for the person.
    #[serde(with = "humantime_serde")]
    pub request_ttl: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            legacy_public_client: true,
            password_grant: true,
            code_ttl: Duration::from_secs(60),
            request_ttl: Duration::from_secs(10 * 60),
        }
    }
}

/// `[oidc]`: OpenID Connect ID tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// `RS256` (what every relying party supports), `ES256` or `EdDSA`.
    /// Independent of `tokens.algorithm`: ID tokens are always asymmetric.
    pub id_token_algorithm: SigningAlgorithm,
    /// A folder of PKCS#8 PEM private keys (`<kid>.pem`). Unset:
    /// `tokens.keys_dir`; in `dev` without either, `data_dir/keys` with a
    /// key generated on first start. Required in `production`.
    pub keys_dir: Option<PathBuf>,
    /// The `kid` that signs ID tokens. Unset: the last, by name, of the
    /// keys of `id_token_algorithm`.
    pub active_kid: Option<String>,
    /// How long an ID token is valid (relying parties check it once, at sign-in).
    #[serde(with = "humantime_serde")]
    pub id_token_ttl: Duration,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            id_token_algorithm: SigningAlgorithm::RS256,
            keys_dir: None,
            active_kid: None,
            id_token_ttl: Duration::from_secs(3600),
        }
    }
}

/// `[ui]`: the hosted pages and the browser's sign-in session.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// Shown in page titles and headings.
    pub product_name: String,
    /// An image shown above every form (an absolute https URL, or a path on
    /// this server).
    pub logo_url: Option<String>,
    /// CSS appended to the built-in stylesheet (colours, fonts).
    pub custom_css: Option<String>,
    /// A folder whose `<name>.html` files replace the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// A browser stays signed in this long without being used...
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// ...and no longer than this in any case.
    #[serde(with = "humantime_serde")]
    pub session_lifetime: Duration,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            product_name: "Tessera".into(),
            logo_url: None,
            custom_css: None,
            templates_dir: None,
            session_idle_timeout: Duration::from_secs(24 * 3600),
            session_lifetime: Duration::from_secs(14 * 24 * 3600),
        }
    }
}

/// Per-client-address limits on `POST /token` and `POST /users`, per
/// process (an edge proxy does the global one).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Sustained requests per minute per address; 0 turns the limit off.
    pub per_minute: u32,
    /// Requests an address may make at once before the rate applies.
    pub burst: u32,
    /// Proxies whose `X-Forwarded-For` is believed (exact addresses). The
    /// client is the rightmost address in it that is not such a proxy.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            per_minute: 120,
            burst: 30,
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub addr: SocketAddr,
    /// The issuer (`iss`) and base of URLs in metadata. No trailing slash.
    pub public_url: String,
    /// How long in-flight requests may finish after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How often expired and revoked sessions are deleted.
    #[serde(with = "humantime_serde")]
    pub purge_interval: Duration,
    /// From accept (or the first byte after an idle kept-alive period) to a
    /// complete request head; slower clients are disconnected.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// The whole request body must arrive within this.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// An idle kept-alive connection is closed after this; `0s` turns
    /// keep-alive off.
    #[serde(with = "humantime_serde")]
    pub keep_alive_timeout: Duration,
    /// Connections open at once. Unset: derived from the open-file limit.
    pub max_connections: Option<usize>,
    /// Connections open at once from one client address (trusted proxies
    /// are exempt). Unset: a quarter of `max_connections`.
    pub max_connections_per_address: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub backend: Backend,
    /// Its password never reaches `Debug` output or a log line.
    pub url: DatabaseUrl,
    pub auto_migrate: bool,
    pub max_connections: u32,
    /// Longest a request waits for a database connection before a 503.
    #[serde(with = "humantime_serde")]
    pub acquire_timeout: Duration,
    /// At start-up, how long to keep retrying a database that is not up yet.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl StorageConfig {
    /// What every store adapter connects with.
    pub fn store_settings(&self) -> StoreSettings {
        StoreSettings {
            url: self.url.clone(),
            max_connections: self.max_connections,
            acquire_timeout: self.acquire_timeout,
        }
    }

    /// A URL that cannot belong to the backend, caught before anything is
    /// opened (a PostgreSQL backend pointed at the default SQLite file
    /// would otherwise be a confusing connect failure).
    fn url_problem(&self) -> Option<String> {
        let schemes = self.backend.url_schemes();
        if schemes.is_empty() {
            return None;
        }
        let fits = self
            .url
            .scheme()
            .is_some_and(|scheme| schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)));
        (!fits).then(|| {
            format!(
                "storage.url = \"{}\" does not fit storage.backend = \"{}\": expected a {} URL",
                self.url,
                self.backend.as_str(),
                schemes
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokensConfig {
    pub algorithm: SigningAlgorithm,
    /// HS256 secret. In `dev`, when unset, one is generated into `data_dir`.
    pub secret: Option<Secret>,
    /// Earlier HS256 secrets still accepted for verification (key rotation).
    pub previous_secrets: Vec<Secret>,
    /// EdDSA/ES256/RS256: a folder of PKCS#8 PEM private keys, one per
    /// `kid` (`<kid>.pem`). Every key verifies; one signs. In `dev`, when
    /// unset, `data_dir/keys` is used and a key is generated if needed.
    pub keys_dir: Option<PathBuf>,
    /// The `kid` that signs. Unset: the last, by name, of the keys of
    /// `algorithm` (generated kids sort by creation time).
    pub active_kid: Option<String>,
    #[serde(with = "humantime_serde")]
    pub access_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_ttl: Duration,
    /// A used refresh token presented again within this window gets the
    /// same successor instead of revoking the session. `0s` = strict.
    #[serde(with = "humantime_serde")]
    pub refresh_reuse_grace: Duration,
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// `aud` of issued tokens, required when verifying. Unset: no `aud`.
    pub audience: Option<String>,
    /// Scopes clients may request; anything else is dropped from the grant.
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `auth_server=debug,info`. `RUST_LOG` wins.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            profile: Profile::Dev,
            data_dir: PathBuf::from("data"),
            server: ServerConfig::default(),
            storage: StorageConfig::default(),
            tokens: TokensConfig::default(),
            passwords: HashingConfig::default(),
            throttle: ThrottlePolicy::default(),
            rate_limit: RateLimitConfig::default(),
            log: LogConfig::default(),
            oauth: OAuthConfig::default(),
            oidc: OidcConfig::default(),
            ui: UiConfig::default(),
            mail: crate::mail::MailConfig::default(),
            accounts: crate::mail::AccountsConfig::default(),
            factors: FactorsConfig::default(),
            audit: AuditConfig::default(),
            clients: Vec::new(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: "http://127.0.0.1:8080".into(),
            shutdown_grace: Duration::from_secs(10),
            purge_interval: Duration::from_secs(600),
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: None,
            max_connections_per_address: None,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Sqlite,
            url: DatabaseUrl::new("sqlite://data/tessera.db"),
            auto_migrate: true,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl Default for TokensConfig {
    fn default() -> Self {
        Self {
            algorithm: SigningAlgorithm::HS256,
            secret: None,
            previous_secrets: Vec::new(),
            keys_dir: None,
            active_kid: None,
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            refresh_reuse_grace: Duration::ZERO,
            leeway: Duration::from_secs(5),
            audience: None,
            scopes: Vec::new(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration: {0}")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

impl Config {
    /// Loads from the standard sources (see the module docs).
    pub fn load() -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file("config/default.toml"));
        if let Ok(path) = std::env::var("TESSERA_CONFIG") {
            figment = figment.merge(Toml::file_exact(path));
        }
        Self::from_figment(
            figment.merge(
                Env::prefixed("TESSERA_")
                    .split("__")
                    // Not configuration: the file pointer above and test-harness variables.
                    .filter(|key| {
                        let test_harness = key
                            .as_str()
                            .get(..5)
                            .is_some_and(|p| p.eq_ignore_ascii_case("test_"));
                        key != "config" && !test_harness
                    }),
            ),
        )
    }

    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(Box::new)?;
        config.validate()?;
        Ok(config)
    }

    /// Every rule in one place; all violations are reported together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        problems.extend(self.storage.url_problem());
        if self.tokens.access_ttl < Duration::from_secs(1) {
            problems.push("tokens.access_ttl must be at least 1s".into());
        }
        if self.tokens.refresh_ttl <= self.tokens.access_ttl {
            problems.push("tokens.refresh_ttl must be longer than tokens.access_ttl".into());
        }
        if !self.oidc.id_token_algorithm.is_asymmetric() {
            problems.push(
                "oidc.id_token_algorithm must be RS256, ES256 or EdDSA: relying parties verify ID tokens with a public key"
                    .into(),
            );
        }
        if self.oidc.id_token_ttl < Duration::from_secs(1) {
            problems.push("oidc.id_token_ttl must be at least 1s".into());
        }
        if self.tokens.refresh_reuse_grace > Duration::from_secs(60) {
            problems.push(
                "tokens.refresh_reuse_grace over 60s defeats reuse detection; keep it to seconds"
                    .into(),
            );
        }
        if !(self.server.public_url.starts_with("http://")
            || self.server.public_url.starts_with("https://"))
        {
            problems.push("server.public_url must be an http(s) URL".into());
        }
        if self.server.header_read_timeout.is_zero() || self.server.body_read_timeout.is_zero() {
            problems.push(
                "server.header_read_timeout and server.body_read_timeout must be longer than 0s"
                    .into(),
            );
        }
        if self.server.max_connections == Some(0)
            || self.server.max_connections_per_address == Some(0)
        {
            problems.push(
                "server.max_connections and server.max_connections_per_address must be at least 1 \
                 (leave them unset to derive them)"
                    .into(),
            );
        }
        if self.passwords.memory_kib < 8 * self.passwords.parallelism.max(1)
            || self.passwords.iterations == 0
            || self.passwords.parallelism == 0
        {
            problems.push("passwords.* are not valid Argon2 parameters".into());
        }
        if self.throttle.max_failures == 0 || self.throttle.lockout > self.throttle.max_lockout {
            problems.push(
                "throttle.max_failures must be at least 1 and throttle.lockout at most throttle.max_lockout"
                    .into(),
            );
        }
        problems.extend(self.oauth_problems());
        problems.extend(self.mail.problems());
        if self.profile == Profile::Production {
            problems.extend(self.production_problems());
            problems.extend(self.mail.production_problems());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// Clients, the code flow and the pages.
    fn oauth_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, client) in self.clients.iter().enumerate() {
            if let Err(errors) = client.validate() {
                problems.extend(
                    errors.0.iter().map(|e| {
                        format!("clients[{i}] ({}): {}: {}", client.id, e.field, e.message)
                    }),
                );
            }
            if self.clients[..i].iter().any(|c| c.id == client.id) {
                problems.push(format!(
                    "clients[{i}]: the id `{}` is used twice",
                    client.id
                ));
            }
        }
        if self.oauth.code_ttl.is_zero() || self.oauth.code_ttl > Duration::from_secs(600) {
            problems.push(
                "oauth.code_ttl must be between 1s and 10m (RFC 6749 §4.1.2: short-lived)".into(),
            );
        }
        if self.oauth.request_ttl < Duration::from_secs(60)
            || self.oauth.request_ttl > Duration::from_secs(3600)
        {
            problems.push("oauth.request_ttl must be between 1m and 1h".into());
        }
        if self.ui.session_idle_timeout.is_zero()
            || self.ui.session_idle_timeout > self.ui.session_lifetime
        {
            problems.push(
                "ui.session_idle_timeout must be longer than 0s and at most ui.session_lifetime"
                    .into(),
            );
        }
        if self.ui.product_name.trim().is_empty() || self.ui.product_name.chars().count() > 60 {
            problems.push("ui.product_name must be 1 to 60 characters".into());
        }
        if let Some(logo) = &self.ui.logo_url {
            let fits = logo.starts_with("https://") || logo.starts_with('/');
            if !fits || logo.contains(['"', '\'', ' ', ';']) {
                problems
                    .push("ui.logo_url must be an https:// URL or a path on this server".into());
            }
        }
        if let Some(dir) = &self.ui.templates_dir {
            if !dir.is_dir() {
                problems.push(format!(
                    "ui.templates_dir = {} is not a folder",
                    dir.display()
                ));
            }
        }
        problems
    }

    /// What `production` refuses that `dev` tolerates.
    fn production_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.tokens.algorithm.is_asymmetric() {
            // The HS256 secrets sign and verify nothing then: not required.
            if self.tokens.keys_dir.is_none() {
                problems.push(format!(
                    "tokens.keys_dir (TESSERA_TOKENS__KEYS_DIR) is required in production with \
                     tokens.algorithm = {}: create keys with `tessera keys generate --alg {} --out DIR`",
                    self.tokens.algorithm, self.tokens.algorithm
                ));
            }
        } else {
            match &self.tokens.secret {
                None => problems.push(
                    "tokens.secret (TESSERA_TOKENS__SECRET) is required in production with \
                     tokens.algorithm = HS256"
                        .into(),
                ),
                Some(secret) => problems.extend(secret_problem("tokens.secret", secret)),
            }
            for (i, old) in self.tokens.previous_secrets.iter().enumerate() {
                problems.extend(secret_problem(
                    &format!("tokens.previous_secrets[{i}]"),
                    old,
                ));
            }
        }
        match &self.factors.encryption_key {
            None => problems.push(
                "factors.encryption_key (TESSERA_FACTORS__ENCRYPTION_KEY) is required in \
                 production: it seals authenticator-app secrets"
                    .into(),
            ),
            Some(key) => problems.extend(secret_problem("factors.encryption_key", key)),
        }
        if self.storage.backend == Backend::Memory {
            problems.push(
                "storage.backend = \"memory\" loses every account on restart; not allowed in production"
                    .into(),
            );
        }
        let defaults = HashingConfig::default();
        if self.passwords.memory_kib < defaults.memory_kib
            || self.passwords.iterations < defaults.iterations
        {
            problems.push(
                "passwords.* are below the OWASP minimum (memory_kib >= 19456, iterations >= 2)"
                    .into(),
            );
        }
        problems
    }

    /// The issuer URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.server.public_url.trim_end_matches('/').to_owned()
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

fn secret_problem(key: &str, secret: &Secret) -> Option<String> {
    let secret = secret.expose();
    if secret.len() < MIN_SECRET_BYTES {
        Some(format!(
            "{key} must be at least {MIN_SECRET_BYTES} bytes in production"
        ))
    } else if KNOWN_EXAMPLE_SECRETS
        .iter()
        .any(|known| known.eq_ignore_ascii_case(secret))
    {
        Some(format!(
            "{key} is a published example value; generate your own"
        ))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figment(toml: &str) -> Figment {
        Figment::from(Serialized::defaults(Config::default())).merge(Toml::string(toml))
    }

    #[test]
    fn defaults_are_valid_for_dev() {
        let config = Config::from_figment(figment("")).unwrap();
        assert_eq!(config.storage.backend, Backend::Sqlite);
        assert_eq!(config.server.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(config.tokens.access_ttl, Duration::from_secs(900));
    }

    #[test]
    fn the_shipped_default_file_matches_the_built_in_defaults() {
        let shipped =
            Figment::from(Serialized::defaults(Config::default())).merge(Toml::file_exact(
                concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/default.toml"),
            ));
        let config = Config::from_figment(shipped).unwrap();
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
    }

    #[test]
    fn production_refuses_weak_settings() {
        let err = Config::from_figment(figment(
            "profile = 'production'\n[storage]\nbackend = 'memory'\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("tokens.secret"), "{err}");
        assert!(err.contains("memory"), "{err}");

        let short = Config::from_figment(figment(
            "profile = 'production'\n[tokens]\nsecret = 'too-short'\n",
        ));
        assert!(short.unwrap_err().to_string().contains("at least 32 bytes"));

        let example = Config::from_figment(figment(
            "profile = 'production'\n[tokens]\nsecret = 'replace-with-at-least-32-random-bytes-from-a-secret-store'\n",
        ));
        assert!(example.unwrap_err().to_string().contains("example"));

        let good = Config::from_figment(figment(
            "profile = 'production'\n[tokens]\nsecret = 'Zq3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1'\n[mail]\ntransport = 'smtp'\n[factors]\nencryption_key = 'Fk3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1'\n",
        ));
        assert!(good.is_ok(), "{good:?}");

        let no_factor_key = Config::from_figment(figment(
            "profile = 'production'\n[tokens]\nsecret = 'Zq3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1'\n[mail]\ntransport = 'smtp'\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            no_factor_key.contains("factors.encryption_key"),
            "{no_factor_key}"
        );
    }

    #[test]
    fn production_refuses_mail_in_the_log_and_passwords_in_the_clear() {
        let base =
            "profile = 'production'\n[tokens]\nsecret = 'Zq3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1'\n[factors]\nencryption_key = 'Fk3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1'\n";
        let logged = Config::from_figment(figment(base)).unwrap_err().to_string();
        assert!(logged.contains("mail.transport"), "{logged}");
        let clear = Config::from_figment(figment(&format!(
            "{base}[mail]\ntransport = 'smtp'\n[mail.smtp]\nhost = 'smtp.example.org'\nsecurity = 'none'\nusername = 'u'\npassword = 'p'\n"
        )))
        .unwrap_err()
        .to_string();
        assert!(clear.contains("mail.smtp.security"), "{clear}");
        let local_relay = Config::from_figment(figment(&format!(
            "{base}[mail]\ntransport = 'smtp'\n[mail.smtp]\nhost = '127.0.0.1'\nsecurity = 'none'\n"
        )));
        assert!(local_relay.is_ok(), "{local_relay:?}");
        let bad_from = Config::from_figment(figment("[mail]\nfrom = 'not an address'\n"))
            .unwrap_err()
            .to_string();
        assert!(bad_from.contains("mail.from"), "{bad_from}");
    }

    #[test]
    fn unknown_keys_are_refused_by_name_in_every_section() {
        for (toml, key) in [
            ("profil = 'dev'\n", "profil"),
            ("[server]\nadress = '127.0.0.1:1'\n", "adress"),
            ("[storage]\nauto_migate = false\n", "auto_migate"),
            ("[tokens]\nalgoritm = 'HS256'\n", "algoritm"),
            ("[passwords]\nmemory = 1\n", "memory"),
            ("[throttle]\nmax_failure = 3\n", "max_failure"),
            ("[rate_limit]\nper_minut = 3\n", "per_minut"),
            ("[log]\nlevl = 'debug'\n", "levl"),
        ] {
            let err = Config::from_figment(figment(toml)).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn enums_are_parsed_once_and_bad_values_refused() {
        let config = Config::from_figment(figment(
            "[tokens]\nalgorithm = 'eddsa'\n[log]\nformat = 'json'\n",
        ))
        .unwrap();
        assert_eq!(config.tokens.algorithm, SigningAlgorithm::EdDSA);
        assert_eq!(config.log.format, LogFormat::Json);
        for toml in [
            "[tokens]\nalgorithm = 'HS512'\n",
            "[log]\nformat = 'xml'\n",
            "[storage]\nbackend = 'mysql'\n",
        ] {
            assert!(Config::from_figment(figment(toml)).is_err(), "{toml}");
        }
        // The old spelling of the automatic log format still works.
        let legacy = Config::from_figment(figment("[log]\nformat = ''\n")).unwrap();
        assert_eq!(legacy.log.format, LogFormat::Auto);
    }

    #[test]
    fn a_url_that_does_not_fit_the_backend_names_both_keys() {
        let err = Config::from_figment(figment("[storage]\nbackend = 'postgres'\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("storage.url"), "{err}");
        assert!(err.contains("storage.backend = \"postgres\""), "{err}");
        assert!(err.contains("sqlite://data/tessera.db"), "{err}");
        for (backend, url) in [
            ("postgres", "postgres://u@h/db"),
            ("postgres", "postgresql://u@h/db"),
            ("mongo", "mongodb://h/tessera"),
            ("mongo", "mongodb+srv://cluster.example.org/tessera"),
            ("sqlite", "sqlite://x.db"),
            ("memory", "whatever"),
        ] {
            let toml = format!("[storage]\nbackend = '{backend}'\nurl = '{url}'\n");
            let config = Config::from_figment(figment(&toml));
            assert!(config.is_ok(), "{toml}: {config:?}");
        }
        let err = Config::from_figment(figment(
            "[storage]\nbackend = 'mongo'\nurl = 'postgres://u:hunter2@h/db'\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("mongodb://"), "{err}");
        assert!(!err.contains("hunter2"), "the password stays out: {err}");
    }

    #[test]
    fn production_asks_for_the_secret_only_when_hs256_signs() {
        let err = Config::from_figment(figment(
            "profile = 'production'\n[tokens]\nalgorithm = 'EdDSA'\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(!err.contains("tokens.secret"), "{err}");
        assert!(err.contains("tokens.keys_dir"), "{err}");
        for algorithm in ["EdDSA", "ES256", "RS256"] {
            let toml = format!(
                "profile = 'production'\n[tokens]\nalgorithm = '{algorithm}'\nkeys_dir = '/etc/tessera/keys'\n[mail]\ntransport = 'smtp'\n[factors]\nencryption_key = 'Fk3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1'\n"
            );
            let config = Config::from_figment(figment(&toml));
            assert!(config.is_ok(), "{algorithm}: {config:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config = Config::from_figment(figment(
            "[tokens]\nsecret = 'Zq3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1'\n\
             previous_secrets = ['Old9mX1pL0sT7wK2yB8nR4cH6dF5gJ1x']\n\
             [storage]\nbackend = 'postgres'\nurl = 'postgres://tessera:Pa55w0rd-x@db/tessera'\n",
        ))
        .unwrap();
        let dumped = format!(
            "{config:?} {config:#?} {}",
            serde_json::to_string(&config).unwrap()
        );
        for secret in ["Zq3v9mX1", "Old9mX1", "Pa55w0rd"] {
            assert!(!dumped.contains(secret), "{secret} leaked: {dumped}");
        }
        assert!(
            dumped.contains("postgres://tessera:***@db/tessera"),
            "{dumped}"
        );
        assert_eq!(
            config.tokens.secret.as_ref().map(Secret::expose),
            Some("Zq3v9mX1pL0sT7wK2yB8nR4cH6dF5gJ1")
        );
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API, not ours
    fn environment_variables_nest_with_double_underscore() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESSERA_STORAGE__BACKEND", "memory");
            jail.set_env("TESSERA_SERVER__ADDR", "127.0.0.1:9999");
            jail.set_env("TESSERA_TOKENS__ACCESS_TTL", "5m");
            jail.set_env("TESSERA_TEST_POSTGRES_URL", "postgres://ignored");
            let config = Config::load().expect("loads");
            assert_eq!(config.storage.backend, Backend::Memory);
            assert_eq!(config.server.addr.port(), 9999);
            assert_eq!(config.tokens.access_ttl, Duration::from_secs(300));
            Ok(())
        });
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    #[test]
    fn the_production_example_parses_but_its_placeholder_secret_is_refused() {
        let example = Figment::from(Serialized::defaults(Config::default())).merge(
            Toml::file_exact(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../config/production.example.toml"
            )),
        );
        let err = Config::from_figment(example).unwrap_err().to_string();
        assert!(err.contains("example value"), "{err}");
    }
}
