"""The deployment files, checked where Docker cannot run them: docker-compose.yml against
the compose specification's schema, the Dockerfile with hadolint, and the wiring
between them and the code (ports, search attributes, mounted files).

What the worker container does is run natively in tests/integration/test_deploy.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from runner.contract import SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_specification():
    # check-jsonschema vendors the compose-spec schema (compose-spec/compose-spec,
    # schema/compose-spec.json), with its version noted in the package.
    import check_jsonschema.builtin_schemas as builtin

    schema_path = Path(builtin.__file__).parent / "vendor" / "compose-spec.json"
    schema = json.loads(schema_path.read_text())
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(compose()))
    assert errors == []


def test_the_compose_spec_check_catches_a_broken_file(tmp_path):
    broken = tmp_path / "docker-compose.yml"
    # a port given as a mapping instead of "host:container"
    broken.write_text(COMPOSE.read_text().replace('- "127.0.0.1:8088:8080"', "- {8088: 8080}", 1))
    checked = subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 1, checked.stdout
    assert "ports" in checked.stdout


def test_the_dockerfile_passes_hadolint():
    linted = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_hadolint_fails_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    linted = subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(bad)], capture_output=True, text=True
    )
    assert linted.returncode == 1
    assert "DL3006" in linted.stdout  # the untagged image


def test_services_and_their_order():
    services = compose()["services"]
    assert {"postgresql", "temporal-admin-tools", "temporal", "temporal-ui", "qlrf-worker"} <= set(
        services
    )
    assert services["postgresql"]["image"].startswith("postgres:16")
    assert "healthcheck" in services["postgresql"]
    assert "healthcheck" in services["temporal"]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    after_setup = services["temporal"]["depends_on"]["temporal-admin-tools"]
    assert after_setup["condition"] == "service_completed_successfully"
    assert "127.0.0.1:8088:8080" in services["temporal-ui"]["ports"]
    worker_needs = services["qlrf-worker"]["depends_on"]
    assert worker_needs["temporal-create-namespace"]["condition"] == (
        "service_completed_successfully"
    )


def test_every_image_is_pinned():
    for name, service in compose()["services"].items():
        image = service.get("image")
        assert image, f"{name} has no image"
        tag = image.rsplit(":", 1)[-1] if ":" in image else ""
        assert re.search(r"\d", tag) and tag != "latest", f"{name}: {image} is not pinned"
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE.read_text(), re.MULTILINE)
    assert len(froms) >= 2, "the worker image is built in stages"
    for image in froms:
        assert re.search(r":\d+\.\d+\.\d+", image), f"Dockerfile: {image} is not pinned"


def test_the_worker_service_can_scale_and_is_probed():
    worker = compose()["services"]["qlrf-worker"]
    # a fixed container name or host port would make a second replica clash
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["build"] == "."
    env = worker["environment"]
    assert env["QLRF_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert env["QLRF_DATABASE_URL"].endswith("@postgresql:5432/qlrf")
    command = worker["command"]
    assert command[0] == "worker"
    metrics = command[command.index("--metrics-port") + 1]
    health = command[command.index("--health-port") + 1]
    docker = DOCKERFILE.read_text()
    assert f"127.0.0.1:{health}/readyz" in docker  # the image's HEALTHCHECK
    assert re.search(rf"^EXPOSE .*\b{metrics}\b", docker, re.MULTILINE)
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    ports = [
        sd["port"] for job in prometheus["scrape_configs"] for sd in job.get("dns_sd_configs", [])
    ]
    assert int(metrics) in ports


def test_the_image_runs_as_a_non_root_user():
    docker = DOCKERFILE.read_text()
    users = re.findall(r"^USER (\S+)", docker, re.MULTILINE)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["qlrf-run"\]', docker, re.MULTILINE)


def test_every_mounted_file_is_in_the_repository():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"


def test_the_namespace_setup_creates_every_search_attribute_runs_publish():
    script = (ROOT / "deploy/temporal/create-namespace.sh").read_text()
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert f"{name}:{kind}" in script


@pytest.mark.parametrize("script", sorted((ROOT / "deploy").rglob("*.sh")), ids=lambda p: p.name)
def test_the_setup_scripts_parse(script):
    checked = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_every_worker_replica_reads_one_internal_key(tmp_path):
    """Replicas with keys of their own would refuse each other's lock grants: the key is
    made once, by a one-shot service the workers wait for, into a volume they share."""
    services = compose()["services"]
    worker, maker = services["qlrf-worker"], services["qlrf-internal-key"]
    assert worker["depends_on"]["qlrf-internal-key"]["condition"] == (
        "service_completed_successfully"
    )
    key_file = worker["environment"]["QLRF_INTERNAL_KEY_FILE"]
    mounted = {v.split(":")[1]: v.split(":")[0] for v in worker["volumes"]}
    volume = mounted[str(Path(key_file).parent)]
    assert f"{volume}:/keys" in maker["volumes"] and maker["command"][-2] == "/keys"
    assert Path(key_file).name == "internal.key"
    # The script makes a key once and keeps it after (open runs were authenticated with it).
    script = ROOT / "deploy/keys/make-internal-key.py"
    first = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True)
    made = (tmp_path / "internal.key").read_text()
    again = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True)
    assert first.returncode == again.returncode == 0
    assert (tmp_path / "internal.key").read_text() == made and len(made.strip()) == 64
    assert b"kept" in again.stdout


def _stub_tools(folder: Path, sql_tool: str) -> dict[str, str]:
    """`nc` that succeeds and a `temporal-sql-tool` that does what `sql_tool` (sh) says,
    on PATH: the admin-tools image's commands, which do not run here."""
    folder.mkdir(exist_ok=True)
    (folder / "nc").write_text("#!/bin/sh\nexit 0\n")
    (folder / "temporal-sql-tool").write_text(f"#!/bin/sh\n{sql_tool}\n")
    for tool in folder.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin", "POSTGRES_SEEDS": "db", "POSTGRES_USER": "t"}


@pytest.mark.parametrize(
    ("behaviour", "code", "said"),
    [
        ("exit 0", 0, "Temporal's schema is ready"),
        # a second run: what exists is kept
        (
            'case "$*" in *create*|*setup-schema*) echo "pq: relation already exists"; exit 1;; '
            "esac; exit 0",
            0,
            "database temporal exists",
        ),
        # anything else fails the setup, with the tool's own words
        (
            'case "$*" in *setup-schema*) echo "pq: password authentication failed"; exit 1;; '
            "esac; exit 0",
            1,
            "password authentication failed",
        ),
        (
            'case "$*" in *update-schema*) echo "no such directory"; exit 1;; esac; exit 0',
            1,
            "no such directory",
        ),
    ],
    ids=["fresh", "again", "setup-schema-fails", "update-schema-fails"],
)
def test_the_postgres_setup_fails_loudly_but_on_what_exists(tmp_path, behaviour, code, said):
    env = _stub_tools(tmp_path / "bin", behaviour)
    ran = subprocess.run(
        ["sh", str(ROOT / "deploy/temporal/setup-postgres.sh")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ran.returncode == code, ran.stdout + ran.stderr
    assert said in ran.stdout + ran.stderr


def test_every_published_port_is_on_loopback():
    for name, service in compose()["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_secrets_override_gives_the_worker_its_keys_as_files():
    """deploy/compose.secrets.yml: valid compose, every file it names mounted as a secret
    at the path the worker is told, each variable one the worker reads."""
    import check_jsonschema.builtin_schemas as builtin

    override = yaml.safe_load((ROOT / "deploy/compose.secrets.yml").read_text())
    schema = json.loads((Path(builtin.__file__).parent / "vendor/compose-spec.json").read_text())
    assert list(jsonschema.Draft7Validator(schema).iter_errors(override)) == []
    worker = override["services"]["qlrf-worker"]
    mounted = {s["source"] for s in worker["secrets"]}
    assert mounted == set(override["secrets"])
    code = "\n".join(p.read_text() for p in (ROOT / "runner").rglob("*.py"))
    for variable, path in worker["environment"].items():
        assert path.removeprefix("/run/secrets/") in mounted, (variable, path)
        assert f'"{variable}"' in code, f"no part of the worker reads {variable}"
    for secret in override["secrets"].values():
        # the default path is in the folder git ignores
        assert "./deploy/secrets/" in secret["file"]
    ignored = (ROOT / "deploy/secrets/.gitignore").read_text().splitlines()
    assert "*" in ignored


def test_the_web_service_is_the_same_image_serving_on_8089_with_its_variables():
    services = compose()["services"]
    web, worker = services["qlrf-web"], services["qlrf-worker"]
    assert web["image"] == worker["image"]
    assert web["command"][:1] == ["serve"] and "8089" in web["command"]
    assert "127.0.0.1:8089:8089" in web["ports"]
    from runner.web import settings

    for name in (settings.ISSUER, settings.CLIENT_ID, settings.VOUCH_KEY, settings.PUBLIC_URL):
        assert name in web["environment"]
    assert f"{settings.SESSION_KEY}_FILE" in web["environment"]
    assert f"{settings.CLIENT_SECRET}_FILE" in web["environment"]
