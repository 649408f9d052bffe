//! Token keys from configuration: an HS256 secret (in `dev`, generated and
//! kept on disk), or a folder of PEM private keys for EdDSA/ES256/RS256.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use auth_core::keys::{generate_private_key_pem, parse_private_key_pem, AsymmetricKey};
use auth_core::{SigningAlgorithm, TokenKeys};
use base64::Engine as _;
use rand::RngCore;

use crate::config::{Config, Profile};

/// File (inside `data_dir`) holding the generated dev secret.
pub const DEV_SECRET_FILE: &str = "hs256.secret";
/// File (inside `data_dir`) holding the generated dev key for second factors.
pub const DEV_FACTOR_KEY_FILE: &str = "factors.key";
/// Folder (inside `data_dir`) for generated dev keys.
pub const DEV_KEYS_DIR: &str = "keys";

/// The key set the configuration describes.
pub fn load_token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let algorithm = config.tokens.algorithm;
    if algorithm.is_asymmetric() {
        return load_asymmetric(config, algorithm);
    }
    let secret = match (&config.tokens.secret, config.profile) {
        (Some(secret), _) => secret.expose().to_owned(),
        (None, Profile::Dev) => dev_secret(config.data_dir(), DEV_SECRET_FILE, "tokens.secret")?,
        (None, Profile::Production) => {
            bail!("tokens.secret is required in production")
        }
    };
    let mut keys = TokenKeys::hs256(secret.as_bytes());
    for old in &config.tokens.previous_secrets {
        keys = keys.with_previous_hs256(old.expose().as_bytes());
    }
    Ok(keys)
}

fn load_asymmetric(config: &Config, algorithm: SigningAlgorithm) -> anyhow::Result<TokenKeys> {
    load_key_set(
        config,
        algorithm,
        KeySource {
            dir: config.tokens.keys_dir.as_deref(),
            dir_setting: "tokens.keys_dir",
            active_kid: config.tokens.active_kid.as_deref(),
            active_kid_setting: "tokens.active_kid",
            algorithm_setting: "tokens.algorithm",
        },
    )
}

/// The ID-token key set (`[oidc]`): from `oidc.keys_dir`, else the access
/// tokens' `tokens.keys_dir`, else (in `dev`) `data_dir/keys` with a key
/// generated on first start. Production refuses to start without a folder.
pub fn load_id_token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let oidc = &config.oidc;
    load_key_set(
        config,
        oidc.id_token_algorithm,
        KeySource {
            dir: oidc
                .keys_dir
                .as_deref()
                .or(config.tokens.keys_dir.as_deref()),
            dir_setting: "oidc.keys_dir",
            active_kid: oidc.active_kid.as_deref(),
            active_kid_setting: "oidc.active_kid",
            algorithm_setting: "oidc.id_token_algorithm",
        },
    )
}

/// Where a key set comes from, and the settings to name when it is wrong.
struct KeySource<'a> {
    dir: Option<&'a Path>,
    dir_setting: &'static str,
    active_kid: Option<&'a str>,
    active_kid_setting: &'static str,
    algorithm_setting: &'static str,
}

/// Every key in the folder verifies; the active one (the newest of
/// `algorithm`, unless named) signs.
fn load_key_set(
    config: &Config,
    algorithm: SigningAlgorithm,
    source: KeySource<'_>,
) -> anyhow::Result<TokenKeys> {
    let (dir, may_generate) = match (source.dir, config.profile) {
        (Some(dir), _) => (dir.to_owned(), false),
        (None, Profile::Dev) => (config.data_dir().join(DEV_KEYS_DIR), true),
        (None, Profile::Production) => bail!(
            "{} is required in production: a folder of PEM private keys with a {algorithm} key \
             ({}); create one with `tessera keys generate --alg {algorithm} --out DIR`",
            source.dir_setting,
            source.algorithm_setting,
        ),
    };
    let mut keys = read_key_dir(&dir)?;
    if may_generate && !keys.iter().any(|k| k.algorithm() == algorithm) {
        let (kid, path) = write_new_key(&dir, algorithm, None)?;
        tracing::warn!(%kid, path = %path.display(), "generated a development signing key");
        keys = read_key_dir(&dir)?;
    }
    let active_kid = match source.active_kid {
        Some(kid) => kid.to_owned(),
        None => keys
            .iter()
            .filter(|k| k.algorithm() == algorithm)
            .map(|k| k.kid().to_owned())
            .max()
            .with_context(|| {
                format!(
                    "no {algorithm} key in {} ({}); create one with `tessera keys generate --alg {algorithm} --out {}`",
                    dir.display(),
                    source.dir_setting,
                    dir.display()
                )
            })?,
    };
    let position = keys
        .iter()
        .position(|k| k.kid() == active_kid)
        .with_context(|| {
            format!(
                "{} = {active_kid:?} is not in {}",
                source.active_kid_setting,
                dir.display()
            )
        })?;
    let active = keys.remove(position);
    if active.algorithm() != algorithm {
        bail!(
            "key {active_kid} is {}, but {} = {algorithm}",
            active.algorithm(),
            source.algorithm_setting
        );
    }
    Ok(TokenKeys::asymmetric(active, keys))
}

/// Every `*.pem` in `dir`, sorted by kid (the file stem).
pub fn read_key_dir(dir: &Path) -> anyhow::Result<Vec<AsymmetricKey>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "pem"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let kid = path
                .file_stem()
                .and_then(|s| s.to_str())
                .context("key file name is not UTF-8")?;
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(parse_private_key_pem(kid, &pem)?)
        })
        .collect()
}

/// A kid that sorts by creation time: `<alg>-<UTC timestamp>-<random>`.
fn new_kid(algorithm: SigningAlgorithm) -> String {
    format!(
        "{}-{}-{:04x}",
        algorithm.as_str().to_ascii_lowercase(),
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        rand::random::<u16>()
    )
}

/// Writes a new private key as `dir/<kid>.pem` (mode 0600, never
/// overwriting). Returns its kid and path.
pub fn write_new_key(
    dir: &Path,
    algorithm: SigningAlgorithm,
    kid: Option<&str>,
) -> anyhow::Result<(String, PathBuf)> {
    let kid = kid.map_or_else(|| new_kid(algorithm), str::to_owned);
    if kid.is_empty()
        || !kid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!("a kid may contain only letters, digits, '-', '_' and '.'");
    }
    let pem = generate_private_key_pem(algorithm)?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{kid}.pem"));
    write_private(&path, pem.as_bytes())?;
    Ok((kid, path))
}

/// Creates `path` with owner-only permissions; fails if it exists.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The key that seals second-factor secrets: configured, or in `dev`
/// generated once into `data_dir`.
pub fn load_factor_key(config: &Config) -> anyhow::Result<auth_core::FactorKey> {
    let secret = match (&config.factors.encryption_key, config.profile) {
        (Some(key), _) => key.expose().to_owned(),
        (None, Profile::Dev) => dev_secret(
            config.data_dir(),
            DEV_FACTOR_KEY_FILE,
            "factors.encryption_key",
        )?,
        (None, Profile::Production) => bail!("factors.encryption_key is required in production"),
    };
    Ok(auth_core::FactorKey::from_secret(secret.as_bytes()))
}

/// Reads a dev secret, generating it (256 random bits) on first use so
/// what it protects survives restarts. Created with mode 0600 and
/// `create_new`, so two processes starting at once agree on one secret.
fn dev_secret(data_dir: &Path, file: &str, setting: &str) -> anyhow::Result<String> {
    let path = data_dir.join(file);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_owned();
        if !existing.is_empty() {
            return Ok(existing);
        }
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data folder {}", data_dir.display()))?;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    match write_private(&path, secret.as_bytes()) {
        Ok(()) => {
            tracing::warn!(
                path = %path.display(),
                "generated a development secret; set {setting} in production"
            );
            Ok(secret)
        }
        // Another process won the race: use its secret.
        Err(_) if path.exists() => Ok(std::fs::read_to_string(&path)?.trim().to_owned()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_secret_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = dev_secret(dir.path(), DEV_SECRET_FILE, "tokens.secret").unwrap();
        let second = dev_secret(dir.path(), DEV_SECRET_FILE, "tokens.secret").unwrap();
        assert_eq!(first, second);
        assert!(first.len() >= 43);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DEV_SECRET_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "secret file is private");
        }
    }

    #[test]
    fn dev_generates_a_key_for_an_asymmetric_algorithm_and_reuses_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.tokens.algorithm = SigningAlgorithm::EdDSA;
        let first = load_token_keys(&config).unwrap();
        let second = load_token_keys(&config).unwrap();
        assert_eq!(first.signing_kid(), second.signing_kid());
        assert!(first.signing_kid().starts_with("eddsa-"));
        assert_eq!(first.public_jwks().len(), 1);
    }

    #[test]
    fn the_newest_key_of_the_algorithm_signs_unless_told_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        write_new_key(dir.path(), SigningAlgorithm::EdDSA, Some("eddsa-1")).unwrap();
        write_new_key(dir.path(), SigningAlgorithm::EdDSA, Some("eddsa-2")).unwrap();
        write_new_key(dir.path(), SigningAlgorithm::ES256, Some("es256-9")).unwrap();
        let mut config = Config::default();
        config.tokens.algorithm = SigningAlgorithm::EdDSA;
        config.tokens.keys_dir = Some(dir.path().to_owned());
        let keys = load_token_keys(&config).unwrap();
        assert_eq!(keys.signing_kid(), "eddsa-2");
        assert_eq!(keys.verifying_kids(), ["eddsa-1", "eddsa-2", "es256-9"]);
        config.tokens.active_kid = Some("eddsa-1".into());
        assert_eq!(load_token_keys(&config).unwrap().signing_kid(), "eddsa-1");
        config.tokens.active_kid = Some("es256-9".into());
        assert!(
            load_token_keys(&config).is_err(),
            "kid of another algorithm"
        );
        assert!(write_new_key(dir.path(), SigningAlgorithm::EdDSA, Some("eddsa-1")).is_err());
        assert!(write_new_key(dir.path(), SigningAlgorithm::EdDSA, Some("../evil")).is_err());
    }
}
