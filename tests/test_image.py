"""The container image, built from the Dockerfile and run: every role started from the image's own filesystem.

The image is built with buildah on a Debian bookworm base made by scripts/image-base (no registry answers here;
the Dockerfile's default base stays the official python image), then mounted, and each role is started the way a
container runtime starts it (tests/helpers/image.py): the image's ENTRYPOINT, CMD, USER and WORKDIR as built,
tini as PID 1, user 10001, the root filesystem read-only but a tmpfs on /tmp, the host's network and Redis. The
Wavix sandbox runs from the host's venv as Wavix. Not checked here: the official base image and a real runtime
(network namespace, cgroups, seccomp, dropped capabilities).
"""

from __future__ import annotations

import json
import re
import stat
import subprocess
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as sync_redis
import yaml
from packaging.requirements import Requirement

from contract.events import COMPLETED, decode_event
from tests.conftest import REDIS_URL, TOKEN, forget
from tests.helpers.image import ROOT, Image, Role, build, mounted, run, start, status_of, wait_until
from tests.helpers.servers import free_port, running

TAG = "localhost/wavix-events:test"
UID = 10001
CALLS = 3
API_KEY = "image-test-api-key"
SHIPPED = ("opt/venv", "opt/wavix-events")  # what the Dockerfile adds to the base
COMPILERS = ("cc", "gcc", "c++", "g++", "clang", "make", "ld", "as")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    """The Dockerfile built as `make image` builds it here, mounted; the working container goes afterwards."""
    with mounted(build(TAG)) as built:
        yield built


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    name = f"test:{uuid.uuid4().hex}:"
    yield name
    forget([name])


@pytest.fixture(scope="module")
def env(prefix: str) -> dict[str, str]:
    """The settings every role of this module runs with: the host's Redis, names of its own."""
    return {"REDIS_URL": REDIS_URL, "KEY_PREFIX": prefix, "WEBHOOK_TOKENS": TOKEN, "WAVIX_API_KEY": API_KEY,
            "RECONCILE_INTERVAL": "0", "WORKER_HEALTH_PORT": "0"}


@pytest.fixture(scope="module")
def receiver(image: Image, env: dict[str, str]) -> Iterator[tuple[Role, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with start(image, ["serve", "--host", "127.0.0.1", "--port", str(port)], env=env) as role:
        wait_until(lambda: httpx.get(f"{base}/readyz").status_code == 200, 30, "serve's /readyz", role)
        yield role, base


@pytest.fixture(scope="module")
def wavix(receiver: tuple[Role, str], env: dict[str, str]) -> Iterator[str]:
    """The sandbox as Wavix, from the host's venv: it places CALLS calls and sends their webhooks to the image's
    receiver, then serves their CDRs to the image's worker."""
    port = free_port()
    args = ["simulate", "--port", str(port), "--api-key", API_KEY, "--seed", "28", "--calls", str(CALLS),
            "--rate", "50", "--transcript-share", "0", "--machine-share", "0",
            "--target", f"{receiver[1]}/webhooks/wavix/{TOKEN}"]
    url = f"http://127.0.0.1:{port}"
    with running(args, {"REDIS_URL": REDIS_URL}, f"{url}/_sandbox/stats"):
        yield url


@pytest.fixture(scope="module")
def worker(image: Image, env: dict[str, str], wavix: str) -> Iterator[tuple[Role, int]]:
    port = free_port()
    with start(image, ["worker"], env={**env, "WAVIX_API_URL": wavix, "WORKER_HEALTH_PORT": str(port)}) as role:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, 30,
                   "the worker's /healthz", role)
        yield role, port


def _redis() -> sync_redis.Redis:
    return sync_redis.Redis.from_url(REDIS_URL)


def _walk(root: Path, *parts: str) -> Iterator[Path]:
    for part in parts:
        top = root / part
        yield top
        yield from top.rglob("*")


# ---- the image as built -----------------------------------------------------------------------------------------


def test_the_built_config_starts_wavix_events_under_tini_as_10001(image: Image) -> None:
    """The image's own config (not the Dockerfile's text): tini -> wavix-events, CMD serve, USER 10001, a
    HEALTHCHECK running the shipped script, SIGTERM to stop; tini and the script exist in the image."""
    assert image.entrypoint == ("/usr/bin/tini", "--", "wavix-events")
    assert image.cmd == ("serve",)
    assert image.uid_gid() == (UID, UID)
    assert image.healthcheck == ("python", "/opt/wavix-events/healthcheck.py")
    assert image.stop_signal == "SIGTERM"
    assert (image.root / "usr/bin/tini").is_file()
    assert (image.root / image.healthcheck[1].lstrip("/")).is_file()


def test_user_10001_can_read_every_shipped_file_and_write_none(image: Image) -> None:
    """Everything the Dockerfile adds (the venv, the health check) is readable by 10001, directories enterable,
    and nothing in it belongs to 10001 or is writable by others: the code cannot be changed by the service."""
    unreadable, writable = [], []
    for path in _walk(image.root, *SHIPPED):
        mode = path.lstat()
        if stat.S_ISLNK(mode.st_mode):
            continue
        need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode.st_mode) else 0)
        if mode.st_mode & need != need:
            unreadable.append(str(path.relative_to(image.root)))
        if mode.st_uid == UID or mode.st_mode & stat.S_IWOTH:
            writable.append(str(path.relative_to(image.root)))
    assert not unreadable, f"not readable by user {UID}: {unreadable[:10]}"
    assert not writable, f"writable by user {UID}: {writable[:10]}"


def test_the_runtime_has_no_pip_compiler_or_build_tools(image: Image) -> None:
    """No pip, setuptools or wheel for either Python, no wheels for ensurepip to bring them back, no compiler
    or make on PATH, no build venv, no apt lists or caches, and no pip.conf left by the build's mounts."""
    status, said = run(image, ["python", "-c", "\n".join((
        "import importlib.util, sys",
        "found = [m for m in ('pip', 'setuptools', 'wheel', 'distutils_hack') if importlib.util.find_spec(m)]",
        "print(sys.executable, found)",
        "sys.exit(1 if found else 0)",
    ))], entrypoint=[])
    assert status == 0, said
    for python in ("/usr/bin/python3", "/opt/venv/bin/python"):
        status, said = run(image, [python, "-c", "import pip"], entrypoint=[])
        assert status == 1 and "No module named 'pip'" in said, (python, said)
    path = image.env["PATH"].split(":")
    tools = [f"{d}/{t}" for d in path for t in (*COMPILERS, "pip", "pip3", "wheel", "easy_install")
             if (image.root / d.lstrip("/") / t).exists()]
    assert not tools, tools
    wheels = [str(p.relative_to(image.root)) for p in _walk(image.root, "usr", "opt") if p.suffix == ".whl"]
    assert not wheels, wheels
    assert not (image.root / "opt/build").exists()
    assert not (image.root / "etc/pip.conf").exists()
    assert not [p.name for p in (image.root / "var/lib/apt/lists").iterdir() if p.name not in ("lock", "partial")]
    assert not list((image.root / "var/cache/apt").glob("*.bin"))


def test_the_venv_holds_exactly_the_locked_packages(image: Image) -> None:
    """What pip installed with --require-hashes is requirements.lock, version for version (pins whose marker the
    image's Python does not meet excepted), plus wavix-events itself: nothing resolved at build time."""
    script = "\n".join((
        "import importlib.metadata as m, json, platform",
        "print(json.dumps({'python': platform.python_version(),",
        "                  'dists': {d.metadata['Name']: d.version for d in m.distributions()}}))",
    ))
    status, said = run(image, ["/opt/venv/bin/python", "-c", script], entrypoint=[])
    assert status == 0, said
    found = json.loads(said)
    installed = {_normal(name): version for name, version in found["dists"].items()}
    assert installed.pop("wavix-events") == _project_version()
    assert installed == _locked(found["python"])


def test_the_build_leaves_the_hosts_certificates_out(image: Image) -> None:
    """The host's CA bundle, mounted for the build, is not the image's: the image has its base's bundle."""
    host = Path("/etc/ssl/certs/ca-certificates.crt")
    inside = image.root / "etc/ssl/certs/ca-certificates.crt"
    base = _base_bundle()
    assert inside.read_bytes() == base
    if host.exists() and host.read_bytes() != base:
        assert inside.read_bytes() != host.read_bytes()


def test_the_root_is_read_only_but_tmp_is_writable(image: Image) -> None:
    """The runner gives what compose (read_only, tmpfs /tmp) and Kubernetes (readOnlyRootFilesystem) give:
    a process of the image writes /tmp, nothing else, and runs as 10001 in the image's WORKDIR."""
    script = "\n".join((
        "import os",
        "open('/tmp/ok', 'w').write('1')",
        "try:",
        "    open('/opt/wavix-events/x', 'w')",
        "except OSError as e:",
        "    print('refused', e.errno)",
        "print(os.getuid(), os.getgid(), os.getcwd())",
    ))
    status, said = run(image, ["python", "-c", script], entrypoint=[])
    assert status == 0, said
    assert said.split() == ["refused", "30", str(UID), str(UID), "/opt/wavix-events"], said  # 30: EROFS


# ---- the roles, started from the image ------------------------------------------------------------------------


def test_serve_runs_as_10001_under_tini_as_pid_1(receiver: tuple[Role, str]) -> None:
    """`serve`: PID 1 of its namespace is tini, and its one child is `wavix-events serve` as user and group 10001."""
    role, _ = receiver
    assert Path(f"/proc/{role.pid1}/comm").read_text().strip() == "tini"
    assert status_of(role.pid1)["NSpid"].split()[-1] == "1"
    child = role.child()
    argv = Path(f"/proc/{child}/cmdline").read_bytes().decode().split("\0")
    assert argv[1:3] == ["/opt/venv/bin/wavix-events", "serve"], argv
    status = status_of(child)
    assert status["Uid"].split() == [str(UID)] * 4 and status["Gid"].split() == [str(UID)] * 4


def test_serve_answers_readyz_and_queues_the_sandboxs_webhooks(receiver: tuple[Role, str], wavix: str,
                                                                prefix: str) -> None:  # wavix: sends them
    """The receiver from the image is ready on /readyz and turns each webhook the sandbox sends into a job in
    the host's Redis (the worker is not started yet)."""
    _, base = receiver
    assert httpx.get(f"{base}/readyz").status_code == 200
    with _redis() as r:
        queued = wait_until(lambda: r.zcard(f"{prefix}queue") >= CALLS and r.zcard(f"{prefix}queue"), 30,
                            "the sandbox's webhooks queued")
    assert queued == CALLS


def test_the_health_check_reports_serve_healthy(receiver: tuple[Role, str], image: Image) -> None:
    """The image's HEALTHCHECK command, run inside the running receiver as compose runs it (with the receiver's
    /readyz), exits 0; pointed at a port nobody answers, 1."""
    role, base = receiver
    ok = role.exec([*image.healthcheck, f"{base}/readyz"])
    assert ok.returncode == 0, ok.stdout + ok.stderr
    down = role.exec([*image.healthcheck, str(free_port())])
    assert down.returncode == 1, down.stdout + down.stderr


def test_a_worker_publishes_the_calls_events(worker: tuple[Role, int], wavix: str, prefix: str,
                                            image: Image) -> None:
    """A `worker` from the image fetches each call's CDR from the sandbox and publishes one completed event per
    call to the events stream; the health check reports it healthy on its port; it runs under tini as 10001."""
    role, port = worker
    calls = {c["call_id"] for c in httpx.get(f"{wavix}/_sandbox/calls").json()["calls"]}
    assert len(calls) == CALLS

    def completed() -> set[str] | None:
        with _redis() as r:
            events = [decode_event(fields[b"event"]) for _, fields in r.xrange(f"{prefix}events")]
        done = {e.subject for e in events if e.type == COMPLETED}
        return done if done >= calls else None

    assert wait_until(completed, 60, "a completed event per call", role) == calls
    health = role.exec([*image.healthcheck, str(port)])
    assert health.returncode == 0, health.stdout + health.stderr
    assert Path(f"/proc/{role.pid1}/comm").read_text().strip() == "tini"
    assert status_of(role.child())["Uid"].split() == [str(UID)] * 4


def test_dlq_list_runs_from_the_image(image: Image, env: dict[str, str], prefix: str) -> None:
    """`wavix-events dlq list` (the image's entrypoint, a one-shot) reads the host's Redis and lists a dead letter."""
    with _redis() as r:
        entry = r.xadd(f"{prefix}dead", {"kind": "process_call", "reason": "401", "attempts": 1, "call_id": "c-28",
                                         "payload": b"", "failed_at_ms": 1_700_000_000_000})
        r.expire(f"{prefix}dead", 600)
    status, said = run(image, ["dlq", "list", "--json"], env=env)
    assert status == 0, said
    listed = json.loads(said[said.index("{"):])
    assert [(d["id"], d["call_id"], d["reason"]) for d in listed["letters"]] == [(entry.decode(), "c-28", "401")]


def test_the_console_serves_its_pages_from_the_image(image: Image, env: dict[str, str]) -> None:
    """`console` starts from the image (its package and templates are installed) and serves its login page;
    SIGTERM stops it with status 0."""
    port = free_port()
    settings = {**env, "CONSOLE_TOKEN": "c" * 32, "CONSOLE_HOST": "127.0.0.1", "CONSOLE_PORT": str(port)}
    with start(image, ["console"], env=settings) as role:
        page = wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/login"), 30, "the console's /login", role)
        assert page.status_code == 200 and "<form" in page.text, page.text[:500]
        assert role.stop() == 0, role.output()[-2000:]


def test_the_compose_sandbox_profile_runs_from_the_image(image: Image) -> None:
    """compose's `sandbox` (`simulate`, the image's entrypoint) and `slack` (its own entrypoint, read from
    deploy/compose.yaml) start from the image and answer: the sandbox its stats, the Slack stand-in a message."""
    slack = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())["services"]["slack"]
    port = free_port()
    with start(image, ["simulate", "--host", "127.0.0.1", f"--port={port}", "--api-key=k"]) as role:
        stats = wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/_sandbox/stats"), 30, "the sandbox", role)
        assert stats.status_code == 200, stats.text
    port = free_port()
    with start(image, ["--host", "127.0.0.1", "--port", str(port)], entrypoint=slack["entrypoint"]) as role:
        sent = wait_until(lambda: httpx.post(f"http://127.0.0.1:{port}/services/T000/B000/XXXX",
                                             json={"text": "from the image"}), 30, "the Slack stand-in", role)
        assert (sent.status_code, sent.text) == (200, "ok")


def test_sigterm_stops_serve_and_the_worker_with_status_0(receiver: tuple[Role, str],
                                                          worker: tuple[Role, int]) -> None:
    """SIGTERM to PID 1 (tini), as `docker stop` sends it, stops the worker and then the receiver cleanly:
    both exit 0 and log their shutdown."""
    role, _ = worker
    assert role.stop() == 0, role.output()[-3000:]
    serve, _ = receiver
    assert serve.stop() == 0, serve.output()[-3000:]
    assert "Application shutdown complete" in serve.output()


def test_sbom_lists_the_images_python_packages(image: Image, tmp_path: Path) -> None:
    """scripts/sbom writes a CycloneDX document whose components are the image's installed distributions."""
    out = tmp_path / "sbom.json"
    done = subprocess.run([str(ROOT / "scripts/sbom"), "--root", str(image.root), "-o", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    bom = json.loads(out.read_text())
    assert bom["bomFormat"] == "CycloneDX"
    components = {_normal(c["name"]): c["version"] for c in bom["components"]}
    assert components == _locked(_image_python(image)), sorted(components)
    assert bom["metadata"]["component"]["name"] == "wavix-events"


# ---- helpers ---------------------------------------------------------------------------------------------------


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def _locked(python_version: str) -> dict[str, str]:
    """requirements.lock's pins that apply to a Python of that version (the lock's markers evaluated)."""
    pins: dict[str, str] = {}
    for line in re.sub(r"\\\n\s*", " ", (ROOT / "requirements.lock").read_text()).splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement = Requirement(line.split(" --hash")[0].strip())
        marker_env: dict[str, Any] = {"python_version": ".".join(python_version.split(".")[:2]),
                                      "python_full_version": python_version}
        if requirement.marker is None or requirement.marker.evaluate(marker_env):
            pins[_normal(requirement.name)] = str(requirement.specifier).removeprefix("==")
    return pins


def _image_python(image: Image) -> str:
    status, said = run(image, ["python", "-c", "import platform; print(platform.python_version())"], entrypoint=[])
    assert status == 0, said
    return said.strip()


def _base_bundle() -> bytes:
    """The CA bundle of the base the image was built on (scripts/image-base's, by name)."""
    base = subprocess.run([str(ROOT / "scripts/image-base")], capture_output=True, text=True, timeout=600,
                          check=True).stdout.strip().splitlines()[-1]
    with mounted(base) as built:
        return (built.root / "etc/ssl/certs/ca-certificates.crt").read_bytes()

