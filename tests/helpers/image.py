"""The built container image, its roles started without a container runtime (none can start here).

`build()` runs scripts/build-image with buildah (the base made from Debian packages by scripts/image-base);
`mounted()` gives the image's root filesystem (`buildah from` + `buildah mount`) and its configuration as built
(ENTRYPOINT, CMD, USER, WORKDIR, ENV, HEALTHCHECK: read from the image, not from the Dockerfile), and removes the
working container afterwards, whatever happened. `start()` runs a role the way a runtime would: the image's
entrypoint and user, in mount and PID namespaces of its own (`unshare`), the root filesystem bound read-only with
a fresh tmpfs on /tmp, a /proc of its own and a minimal /dev, so tini is PID 1 and `wavix-events` its child. It
keeps the host's network, so the role reaches the host's Redis on loopback and the test reaches its ports.
`Role.exec()` runs a command inside a running role (`nsenter`), as `docker exec` runs a HEALTHCHECK.

What this does not reproduce: a runtime's network namespace, cgroup limits, dropped capabilities, seccomp and
no-new-privileges; the official python base (not pullable here).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 1800  # s: a first build makes the Debian base (about 80 s here) and downloads every wheel

# Run as PID 1 of the new namespaces (host's sh): what a runtime mounts, then exec the command that follows.
_SETUP = r"""set -eu
root=$1; shift
mount --bind "$root" "$root"
mount -o remount,bind,ro,nosuid,nodev "$root"
mount -t tmpfs -o nosuid,nodev,mode=1777 tmpfs "$root/tmp"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t tmpfs -o nosuid,mode=755 tmpfs "$root/dev"
for d in null zero full random urandom tty; do : >"$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
ln -s /proc/self/fd "$root/dev/fd"
exec "$@"
"""


@dataclass(frozen=True)
class Image:
    """A built image: its name, its root filesystem (mounted) and the configuration it was built with."""

    name: str
    root: Path
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    user: str
    workdir: str
    env: Mapping[str, str]
    healthcheck: tuple[str, ...]
    stop_signal: str

    def uid_gid(self) -> tuple[int, int]:
        uid, _, gid = self.user.partition(":")
        return int(uid), int(gid or uid)

    def home(self, uid: int) -> str:
        """HOME as Docker sets it: the user's home in the image's /etc/passwd, else /."""
        for line in (self.root / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if len(fields) > 5 and fields[2] == str(uid):
                return fields[5]
        return "/"

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {"HOME": self.home(self.uid_gid()[0]), "HOSTNAME": "wavix-events-test", **self.env, **(extra or {})}


def build(tag: str) -> str:
    """Builds the Dockerfile with buildah as `make image` does; returns the image's name."""
    env = {**os.environ, "IMAGE": tag, "IMAGE_BUILDER": "buildah"}
    done = subprocess.run([str(ROOT / "scripts/build-image")], env=env, capture_output=True, text=True,
                          timeout=BUILD_TIMEOUT, check=False)
    assert done.returncode == 0, f"scripts/build-image failed:\n{done.stderr[-4000:]}"
    return done.stdout.strip().splitlines()[-1]


def _buildah(*args: str) -> str:
    done = subprocess.run(["buildah", *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"buildah {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def config_of(name: str) -> dict[str, Any]:
    """The image's runtime configuration (Docker format: the OCI one has no HEALTHCHECK)."""
    found: dict[str, Any] = json.loads(_buildah("inspect", "--type", "image", name))["Docker"]["config"]
    return found


@contextmanager
def mounted(name: str) -> Iterator[Image]:
    """The image's root filesystem in a working container of its own, removed afterwards even on failure."""
    container = _buildah("from", "--pull-never", "--name", f"wavix-events-test-{uuid.uuid4().hex[:12]}", name)
    try:
        root = Path(_buildah("mount", container))
        config = config_of(name)
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        test = (config.get("Healthcheck") or {}).get("Test") or []
        yield Image(
            name=name, root=root, entrypoint=tuple(config.get("Entrypoint") or ()), cmd=tuple(config.get("Cmd") or ()),
            user=config.get("User") or "0", workdir=config.get("WorkingDir") or "/", env=env,
            healthcheck=tuple(test[1:]) if test[:1] == ["CMD"] else (), stop_signal=config.get("StopSignal") or "",
        )
    finally:
        with suppress(AssertionError):
            _buildah("umount", container)
        _buildah("rm", container)


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def status_of(pid: int) -> dict[str, str]:
    """/proc/PID/status as {field: value}."""
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _command(image: Image, args: Sequence[str], entrypoint: Sequence[str] | None, env: Mapping[str, str]) -> list[str]:
    uid, gid = image.uid_gid()
    argv = [*(image.entrypoint if entrypoint is None else entrypoint), *(args or image.cmd)]
    pairs = [f"{k}={v}" for k, v in image.environment(env).items()]
    return [
        "unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
        "sh", "-c", _SETUP, "setup", str(image.root),
        "env", "-i", *pairs,
        "unshare", f"--root={image.root}", f"--wd={image.workdir}", f"--setgid={gid}", f"--setuid={uid}", "--",
        *argv,
    ]


@dataclass
class Role:
    """A role started from the image; `pid1` is its namespace's PID 1 as the host sees it (tini)."""

    image: Image
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    env: Mapping[str, str]
    pid1: int = 0
    exit_status: int | None = field(default=None)

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def child(self) -> int:
        """The host pid of PID 1's one child: the role's own process."""
        children = _children(self.pid1)
        assert len(children) == 1, f"PID 1 has children {children}"
        return children[0]

    def exec(self, argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Runs argv inside the role, as its user, in its root and working directory (`docker exec`)."""
        uid, gid = self.image.uid_gid()
        pairs = [f"{k}={v}" for k, v in self.image.environment(self.env).items()]
        command = ["env", "-i", *pairs, "nsenter", f"--target={self.pid1}", "--mount", "--pid", "--root", "--wd",
                   f"--setgid={gid}", f"--setuid={uid}", "--", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)

    def stop(self, timeout: float = 45) -> int:
        """Sends the image's STOPSIGNAL to PID 1, as `docker stop` does; returns the exit status."""
        if self.exit_status is None:
            if self.process.poll() is None and self.pid1:
                os.kill(self.pid1, signal.Signals[self.image.stop_signal or "SIGTERM"])
            try:
                self.exit_status = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()  # the outer unshare; --kill-child takes the namespace down with it
                self.process.wait()
                raise
        return self.exit_status


@contextmanager
def start(image: Image, args: Sequence[str] = (), *, env: Mapping[str, str] | None = None,
          entrypoint: Sequence[str] | None = None) -> Iterator[Role]:
    """Starts `ENTRYPOINT ARGS` (CMD without args) from the image; stops it when the block ends."""
    env = dict(env or {})
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(_command(image, args, entrypoint, env), stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
        role = Role(image=image, process=process, log=log, env=env)
        first = Path([*(image.entrypoint if entrypoint is None else entrypoint), *(args or image.cmd)][0]).name
        try:
            deadline = time.monotonic() + 10
            while not role.pid1 and time.monotonic() < deadline and process.poll() is None:
                for pid in _children(process.pid):  # unshare, then sh (mounts), env, unshare, then the command
                    with suppress(OSError):
                        if Path(f"/proc/{pid}/comm").read_text().strip() == first[:15]:
                            role.pid1 = pid
                time.sleep(0.01)
            yield role
        finally:
            with suppress(subprocess.TimeoutExpired):
                role.stop()


def run(image: Image, args: Sequence[str], *, env: Mapping[str, str] | None = None,
        entrypoint: Sequence[str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Runs a one-shot command from the image (`docker run --rm`); returns its status and its output."""
    with start(image, args, env=env, entrypoint=entrypoint) as role:
        try:
            status = role.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            role.stop()
            raise
        role.exit_status = status
        return status, role.output()


def wait_until(check: Any, timeout: float, what: str, role: Role | None = None) -> Any:
    """Polls `check()` until it returns something true; fails naming `what` (and the role's log)."""
    deadline = time.monotonic() + timeout
    while True:
        with suppress(Exception):
            if found := check():
                return found
        if role is not None and role.process.poll() is not None:
            raise AssertionError(f"{what}: the role exited {role.process.returncode}:\n{role.output()[-3000:]}")
        if time.monotonic() > deadline:
            log = f":\n{role.output()[-3000:]}" if role is not None else ""
            raise AssertionError(f"{what}: not after {timeout} s{log}")
        time.sleep(0.1)
