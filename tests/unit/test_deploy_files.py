"""deploy/: the files parse, agree with each other, and document every setting.

No container engine runs here, so the image is not built; these checks keep the files honest:
docs/architecture.md (env.example documents every variable, secrets have no values in the
repository) and the probes the API serves (/healthz liveness, /readyz readiness).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ASSIGNMENT = re.compile(r"^(?:#\s*)?(ONCORESPONSE_[A-Z0-9_]+)=(.*)$")
SECRETS = {"ONCORESPONSE_PATIENT_KEY_SALT", "ONCORESPONSE_FHIR_BEARER_TOKEN"}
PLACEHOLDERS = {"", "change-me"}
# The variables the lead's Settings reads (service/config.py), as first agreed.
AGREED = {
    f"ONCORESPONSE_{name}"
    for name in [
        *("ENVIRONMENT", "FHIR_BASE_URL", "FHIR_TIMEOUT_S", "FHIR_MAX_RETRIES", "FHIR_PAGE_SIZE"),
        *("FHIR_BEARER_TOKEN", "DATABASE_URL", "PATIENT_KEY_SALT", "HOST", "PORT", "LOG_LEVEL"),
        *("LOG_JSON", "PUBLIC_BASE_URL", "TIMEPOINT_WINDOW_DAYS", "BASELINE_WINDOW_DAYS"),
        *("CONFIRMATION_MIN_DAYS", "MIN_SD_DAYS", "DR_DEFINITION", "SYNC_CONCURRENCY", "SEKMET_VERSION"),
    ]
}


def env_example() -> dict[str, tuple[str, list[str]]]:
    """Variable -> (example value, the comment lines directly above it)."""
    found: dict[str, tuple[str, list[str]]] = {}
    comments: list[str] = []
    for line in (DEPLOY / "env.example").read_text().splitlines():
        match = ASSIGNMENT.match(line.strip())
        if match:
            assert match.group(1) not in found, f"{match.group(1)} appears twice"
            found[match.group(1)] = (match.group(2), comments)
            comments = []
        elif line.startswith("#"):
            comments.append(line.lstrip("# ").strip())
        else:
            comments = []
    return found


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s(kind: str) -> dict[str, Any]:
    docs = [d for p in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml_documents(p)]
    (doc,) = [d for d in docs if d.get("kind") == kind]
    assert isinstance(doc, dict)
    return doc


def test_every_agreed_variable_is_in_env_example_with_a_comment_above_it() -> None:
    documented = env_example()
    assert documented.keys() >= AGREED
    for name, (_, comments) in documented.items():
        assert any(c and not c.startswith("---") for c in comments), f"{name} has no explanatory comment"


def test_every_settings_field_is_documented_in_env_example() -> None:
    # docs/architecture.md: deploy/env.example documents every variable Settings reads.
    expected = {f"ONCORESPONSE_{name.upper()}" for name in Settings.model_fields}
    assert expected - env_example().keys() == set()
    assert env_example().keys() - expected == set(), "env.example documents a variable Settings does not read"


def test_env_example_holds_no_secret_values() -> None:
    documented = env_example()
    for name in SECRETS:
        assert documented[name][0] in PLACEHOLDERS, f"{name} must be a placeholder in env.example"
        assert any("SECRET" in c for c in documented[name][1])
    assert "@" not in documented["ONCORESPONSE_DATABASE_URL"][0]  # no credentials in the example URL


def test_env_example_defaults_are_accepted_by_settings() -> None:
    # Every active line of env.example, fed to Settings in development, validates.
    active = {
        k.removeprefix("ONCORESPONSE_").lower(): v
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if (m := re.match(r"^(ONCORESPONSE_[A-Z0-9_]+)=(.*)$", line))
        for k, v in [m.groups()]
    }
    active["environment"] = "development"
    settings = Settings.model_validate(active)
    assert settings.database_url == "sqlite:///./var/oncoresponse.db"


def test_compose_runs_the_service_hapi_r4_and_postgres_16_with_a_volume() -> None:
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    services = compose["services"]
    assert services["hapi"]["image"] == "hapiproject/hapi:v7.6.0"  # a version, never :latest
    assert services["hapi"]["environment"]["hapi.fhir.fhir_version"] == "R4"
    assert services["postgres"]["image"].startswith("postgres:16")
    volume = services["postgres"]["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    app = services["oncoresponse"]
    assert app["build"]["dockerfile"] == "deploy/Dockerfile"
    assert app["env_file"][0]["path"] == "./oncoresponse.env"
    assert app["environment"]["ONCORESPONSE_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_variables_set_in_compose_and_k8s_are_documented() -> None:
    documented = env_example().keys()
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    used = set(compose["services"]["oncoresponse"]["environment"])
    used |= set(k8s("ConfigMap")["data"])
    (container,) = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    used |= {e["name"] for e in container["env"]}
    assert used <= documented


def test_deployment_probes_and_pod_security() -> None:
    deployment = k8s("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # Pod Security Standard "restricted".
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["readOnlyRootFilesystem"] is True
    # Secrets come from a Secret by reference; no Secret with values is committed.
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert {"ONCORESPONSE_DATABASE_URL", "ONCORESPONSE_PATIENT_KEY_SALT"} <= refs.keys()
    assert not [
        d for p in (DEPLOY / "k8s").glob("*.yaml") for d in yaml_documents(p) if d.get("kind") == "Secret"
    ]
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert k8s("Service")["spec"]["selector"] == labels
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


@pytest.mark.parametrize(
    "needle",
    [
        "ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm",
        "FROM ${PYTHON_IMAGE}",
        "uv sync --frozen --no-dev",
        "/healthz",
        'ENTRYPOINT ["oncoresponse"]',
        'CMD ["serve"]',
        "ONCORESPONSE_ENVIRONMENT=production",  # the image enforces production; a checkout is development
    ],
)
def test_dockerfile_builds_from_the_lock_and_runs_serve(needle: str) -> None:
    assert needle in (DEPLOY / "Dockerfile").read_text()


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", (DEPLOY / "Dockerfile").read_text(), flags=re.MULTILINE)
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_every_image_is_pinned_to_a_version() -> None:
    """Reproducible deployments: no floating tag (`latest`, a bare major version) in any image."""
    (compose,) = yaml_documents(DEPLOY / "compose.yaml")
    images = [
        svc["image"] for svc in compose["services"].values() if "image" in svc and svc.get("build") is None
    ]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    images += re.findall(r"^ARG \w+_IMAGE=(\S+)", dockerfile, flags=re.MULTILINE)
    images += [i for i in re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE) if "$" not in i]
    assert images
    for image in images:
        tag = image.split("@")[0].rpartition(":")[2]
        assert re.search(r"\d+\.\d+", tag), f"{image} is not pinned to a version"


def test_every_secret_setting_comes_from_the_secret_and_is_in_its_recipe() -> None:
    """Following the Secret recipe in deployment.yaml gives every secret the service can read
    (a recipe without the JWT keys gave a Deployment that answered 503)."""
    secret_settings = {
        f"ONCORESPONSE_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }
    (container,) = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container["env"] if "valueFrom" in e}
    assert secret_settings <= refs.keys()
    recipe = (DEPLOY / "k8s" / "deployment.yaml").read_text().split("apiVersion")[0]
    for key in refs.values():
        assert re.search(rf"--from-(?:literal|file)={key}=", recipe), (
            f"the Secret recipe does not create {key}"
        )
