//! `cargo xtask check-deploy`: what can be checked here of `deploy/` (no
//! container engine runs on CI machines).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Result};

use crate::process::{python_tool, run, workspace_root, RELEASE_BUILD};

/// The schema checker for the Kubernetes manifests, pinned.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// Checks what can be checked here of `deploy/` (no container engine runs
/// on CI machines): the Dockerfile builds with [`RELEASE_BUILD`], the
/// Kubernetes manifests pass a strict schema check, the compose file parses
/// and wires the services as documented.
pub fn check() -> Result<()> {
    let root = workspace_root();
    let dockerfile = std::fs::read_to_string(root.join("deploy/Dockerfile"))?;
    let expected = format!("RUN cargo {}", RELEASE_BUILD.join(" "));
    if !dockerfile.lines().any(|line| line.trim() == expected) {
        bail!("deploy/Dockerfile must build with `{expected}` (the command CI and the bench use)");
    }
    let validate = python_tool("kubernetes-validate", KUBERNETES_VALIDATE)?;
    let python = root.join(".venv-tools/bin/python");
    let mut manifests: Vec<PathBuf> = std::fs::read_dir(root.join("deploy/k8s"))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    manifests.sort();
    run(Command::new(validate)
        .args(["--strict", "--quiet"])
        .args(&manifests))?;
    run(Command::new(&python)
        .arg(root.join("xtask/scripts/deploy_checks.py"))
        .arg(root.join("deploy")))?;
    println!(
        "deploy files: Dockerfile, {} manifests and compose.yaml check out",
        manifests.len()
    );
    Ok(())
}
