//! Token keys from configuration; in `dev`, a generated secret kept on disk.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use auth_core::TokenKeys;
use base64::Engine as _;
use rand::RngCore;

use crate::config::{Config, Profile};

/// File (inside `data_dir`) holding the generated dev secret.
pub const DEV_SECRET_FILE: &str = "hs256.secret";

/// The key set the configuration describes.
pub fn load_token_keys(config: &Config) -> anyhow::Result<TokenKeys> {
    let secret = match (&config.tokens.secret, config.profile) {
        (Some(secret), _) => secret.clone(),
        (None, Profile::Dev) => dev_secret(config.data_dir())?,
        (None, Profile::Production) => {
            anyhow::bail!("tokens.secret is required in production")
        }
    };
    let mut keys = TokenKeys::hs256(secret.as_bytes());
    for old in &config.tokens.previous_secrets {
        keys = keys.with_previous_hs256(old.as_bytes());
    }
    Ok(keys)
}

/// Reads the dev secret, generating it (256 random bits) on first use so
/// tokens survive restarts. Created with mode 0600 and `create_new`, so two
/// processes starting at once agree on one secret.
fn dev_secret(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(DEV_SECRET_FILE);
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
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(secret.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            tracing::warn!(
                path = %path.display(),
                "generated a development token secret; set tokens.secret in production"
            );
            Ok(secret)
        }
        // Another process won the race: use its secret.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path)?.trim().to_owned())
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_secret_is_generated_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = dev_secret(dir.path()).unwrap();
        let second = dev_secret(dir.path()).unwrap();
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
}
