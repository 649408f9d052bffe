//! The SMTP server the mail tests deliver to: `aiosmtpd` from PyPI, in a
//! git-ignored venv. The tests start and stop it themselves (an outage is
//! part of what they test), so this only makes sure it is installed and
//! tells them which Python runs it.

use std::path::PathBuf;

use anyhow::Result;

use crate::process::python_env;

/// Pinned, like every test dependency.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// The variable the tests read (`crates/auth-server/tests/common/smtp.rs`).
pub const TEST_PYTHON_VAR: &str = "TESSERA_TEST_SMTPD_PYTHON";

/// `.venv-smtp/bin/python` with aiosmtpd, installed when missing.
pub fn python() -> Result<PathBuf> {
    python_env(".venv-smtp", &[AIOSMTPD])
}
