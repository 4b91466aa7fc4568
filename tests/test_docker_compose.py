"""docker-compose.yml describes the deployment we document: PostgreSQL, a one-shot
migration, the API behind nginx (which serves blob files itself) and a GPU worker, in
the right order, on shared blobs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = "postgresql://nirvana:nirvana@postgres:5432/nirvana"


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    found: dict[str, Any] = compose["services"]
    assert set(found) == {"postgres", "migrate", "api", "nginx", "worker"}
    assert {"pgdata", "blobs"} <= set(compose["volumes"])
    return found


def _depends(service: dict[str, Any]) -> dict[str, str]:
    return {name: spec["condition"] for name, spec in service["depends_on"].items()}


def test_postgres_is_healthchecked_and_persistent(services: dict[str, Any]) -> None:
    pg = services["postgres"]
    assert pg["image"].startswith("postgres:16")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.startswith("pgdata:") for v in pg["volumes"])
    env = pg["environment"]
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == ("nirvana",) * 3


def test_migrate_runs_once_after_postgres_is_healthy(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    assert _depends(migrate) == {"postgres": "service_healthy"}
    assert migrate["restart"] == "no"


@pytest.mark.parametrize("name", ["migrate", "api", "worker"])
def test_nirvana_services_share_the_image_database_and_blobs(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["build"] == "."
    assert service["environment"]["DATABASE_URL"] == DATABASE_URL
    assert service["environment"]["NIRVANA_BLOB_DIR"] == "/data/blobs"
    if name != "migrate":
        assert "blobs:/data/blobs" in service["volumes"]
        assert _depends(service) == {"migrate": "service_completed_successfully"}


def test_api_serves_http_on_port_8000_inside_with_downloads_handed_to_nginx(services: dict[str, Any]) -> None:
    api = services["api"]
    assert api["command"][:5] == ["api", "--host", "0.0.0.0", "--port", "8000"]
    assert "ports" not in api and api["expose"] == ["8000"]  # only nginx is published
    assert api["environment"]["NIRVANA_ACCEL_REDIRECT_PREFIX"] == "/_blobs/"
    # Several API processes (or replicas) need the shared rate-limit store.
    assert api["environment"]["NIRVANA_RATE_LIMIT_STORE"] in ("postgres", "redis")


def test_nginx_fronts_the_api_and_serves_the_blob_volume_read_only(services: dict[str, Any]) -> None:
    nginx = services["nginx"]
    assert nginx["image"].startswith("nginx:") and "8000:80" in nginx["ports"]
    assert "blobs:/data/blobs:ro" in nginx["volumes"]
    assert _depends(nginx) == {"api": "service_started"}
    [mount] = [v for v in nginx["volumes"] if v.endswith("/etc/nginx/conf.d/default.conf:ro")]
    conf = (ROOT / mount.split(":")[0]).read_text()
    assert "server api:8000;" in conf
    # The internal location is where NIRVANA_ACCEL_REDIRECT_PREFIX points, on that volume.
    internal = conf.split("location /_blobs/ {")[1].split("}")[0]
    assert "internal;" in internal and "alias /data/blobs/;" in internal


def test_worker_reserves_one_gpu(services: dict[str, Any]) -> None:
    worker = services["worker"]
    assert worker["command"] == ["worker"]
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}


def test_dockerfile_installs_the_project_with_the_nirvana_entrypoint() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "pip install" in text and 'ENTRYPOINT ["nirvana"]' in text
    # `nirvana migrate` reads alembic.ini and migrations/ next to the db package.
    assert "COPY migrations" in text and "alembic.ini" in text


def test_every_command_is_a_real_cli_command(services: dict[str, Any]) -> None:
    if importlib.util.find_spec("nirvana.cli") is None:
        pytest.skip("nirvana/cli.py is not written yet")
    import typer

    from nirvana.cli import app

    # Typer may ship its own click, so look at the group's commands, not its class.
    commands: dict[str, Any] = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    for name in ("migrate", "api", "worker"):
        argv = services[name]["command"]
        command = commands.get(argv[0])
        assert command is not None, f"{name}: `nirvana {argv[0]}` does not exist"
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for word in argv[1:]:
            if word.startswith("--"):
                assert word in options, f"{name}: `nirvana {argv[0]}` has no option {word}"


def test_workers_scale_one_gpu_each(services: dict[str, Any]) -> None:
    # `docker compose up --scale worker=N`: N containers, one GPU reserved by each; a
    # fixed name or a published port would make the second container fail to start.
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    [device] = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["count"] == 1


def test_the_api_trusts_forwarded_for_from_nginx_alone(services: dict[str, Any]) -> None:
    # Behind nginx every request comes from nginx: without this the rate limits would
    # put every client in one bucket; trusting more would let clients forge addresses.
    nginx_address = services["nginx"]["networks"]["default"]["ipv4_address"]
    assert services["api"]["environment"]["NIRVANA_TRUSTED_PROXIES"] == nginx_address
    from api.settings import ApiSettings

    settings = ApiSettings(database_url=DATABASE_URL, trusted_proxies=nginx_address)
    assert [str(network) for network in settings.trusted_proxies] == [f"{nginx_address}/32"]
