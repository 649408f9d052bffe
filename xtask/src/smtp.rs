//! The SMTP server the mail tests deliver to: `aiosmtpd` from PyPI, in a
//! git-ignored venv. The tests start and stop it themselves (an outage is
//! part of what they test), so this only makes sure it is installed and
//! tells them which Python runs it.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::process::{run, workspace_root};

/// Pinned, like every test dependency.
const AIOSMTPD: &str = "aiosmtpd==1.4.6";

/// The variable the tests read (`crates/auth-server/tests/common/smtp.rs`).
pub const TEST_PYTHON_VAR: &str = "TESSERA_TEST_SMTPD_PYTHON";

/// `.venv-smtp/bin/python` with aiosmtpd, installed when missing.
pub fn python() -> Result<PathBuf> {
    let venv = workspace_root().join(".venv-smtp");
    let python = venv.join("bin/python");
    let stamp = venv.join(format!(".installed-{AIOSMTPD}"));
    if stamp.exists() {
        return Ok(python);
    }
    println!("smtp: installing {AIOSMTPD} into {}", venv.display());
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    run(Command::new(&python).args(["-m", "pip", "install", "-q", AIOSMTPD]))?;
    if !python.exists() {
        bail!("no Python in {}", venv.display());
    }
    std::fs::write(&stamp, "")?;
    Ok(python)
}
