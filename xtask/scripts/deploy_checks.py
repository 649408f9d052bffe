"""Kinds and wiring the deploy README promises (run by `cargo xtask check-deploy`;
PyYAML comes with kubernetes-validate)."""
import pathlib, sys, yaml
deploy = pathlib.Path(sys.argv[1])
kinds = {}
for path in sorted((deploy / "k8s").glob("*.yaml")):
    for doc in yaml.safe_load_all(path.read_text()):
        kinds[doc["kind"]] = doc
need = {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Job"}
assert need <= set(kinds), f"missing kinds: {need - set(kinds)}"
deployment = kinds["Deployment"]["spec"]
assert deployment["replicas"] == 3, "three replicas"
container = deployment["template"]["spec"]["containers"][0]
assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
assert "requests" in container["resources"]
mounts = {m["name"]: m for m in container["volumeMounts"]}
assert mounts["oidc-keys"]["mountPath"] == kinds["ConfigMap"]["data"]["TESSERA_OIDC__KEYS_DIR"], "ID-token keys mounted where the config says"
volumes = {v["name"]: v for v in deployment["template"]["spec"]["volumes"]}
assert volumes["oidc-keys"]["secret"]["secretName"] == "tessera-oidc-keys"
assert kinds["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
compose = yaml.safe_load((deploy / "compose.yaml").read_text())
services = compose["services"]
for profile, (db, migrate, server) in {
    "postgres": ("postgres", "migrate", "tessera"),
    "mongo": ("mongo", "migrate-mongo", "tessera-mongo"),
}.items():
    for name in (db, migrate, server):
        assert services[name]["profiles"] == [profile], (name, services[name].get("profiles"))
    assert services[migrate]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services[migrate]["command"] == ["migrate"]
    assert services[migrate]["depends_on"][db]["condition"] == "service_healthy"
    assert services[server]["depends_on"][migrate]["condition"] == "service_completed_successfully"
    assert services[server]["depends_on"]["keys"]["condition"] == "service_completed_successfully"
    assert "keys:/var/lib/tessera/keys:ro" in services[server]["volumes"], server
    for name in (migrate, server):
        env = services[name]["environment"]
        assert env["TESSERA_STORAGE__BACKEND"] == profile, (name, env)
        assert env["TESSERA_STORAGE__AUTO_MIGRATE"] == "false"
        assert "TESSERA_TOKENS__SECRET" in env
        # Production refuses to start without the key that seals TOTP secrets.
        assert "TESSERA_FACTORS__ENCRYPTION_KEY" in env, (name, env)
        # Production refuses mail in the log: every server names a transport.
        assert env["TESSERA_MAIL__TRANSPORT"].startswith("${TESSERA_MAIL__TRANSPORT:-smtp}"), (name, env)
config = kinds["ConfigMap"]["data"]
assert config["TESSERA_MAIL__TRANSPORT"] == "smtp", "production mail goes through SMTP"
assert config["TESSERA_MAIL__SMTP__SECURITY"] in ("starttls", "tls"), "the SMTP password is never sent in the clear"
assert "TESSERA_MAIL__SMTP__PASSWORD" in kinds["Secret"]["stringData"], "the SMTP password is a secret"
assert "TESSERA_FACTORS__ENCRYPTION_KEY" in kinds["Secret"]["stringData"], "the factor key is a secret"
