"""Run `sekmet-fhir` (a real FHIR R4 server) for the demo and the tests.

sekmet-fhir is pinned (`ONCORESPONSE_SEKMET_VERSION`, default 0.1.1) and installed in a
virtual environment of its own (never into ours: its dependency pins are not ours), under
`var/sekmet-<version>/venv`. It listens on 127.0.0.1 on a free port and is stopped by PID.

Known limits of sekmet-fhir 0.1.1 that the FHIR reader works around: BodyStructure and
CareTeam have no `patient` search parameter, and `_include=Observation:focus` is not
supported; `BodyStructure?_id=a,b` works (as on any server).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_VERSION = "0.1.1"


class SekmetError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ensure_installed(root: Path, version: str = DEFAULT_VERSION) -> Path:
    """Create `root/venv` with sekmet-fhir==version unless it is already there; return its `sekmet`."""
    venv = root / "venv"
    exe = venv / "bin" / "sekmet"
    marker = root / f"installed-{version}"
    if exe.exists() and marker.exists():
        return exe
    root.mkdir(parents=True, exist_ok=True)
    with (root / "install.lock").open("w") as lock:  # parallel test workers install once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (exe.exists() and marker.exists()):
            _install(venv, version)
            marker.write_text(version)
    return exe


def _install(venv: Path, version: str) -> None:
    exe = venv / "bin" / "sekmet"
    uv = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    if Path(uv).exists():
        _run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], env)
        _run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--python",
                str(venv / "bin" / "python"),
                f"sekmet-fhir=={version}",
            ],
            env,
        )
    else:  # plain pip fallback
        _run([sys.executable, "-m", "venv", str(venv)], env)
        _run([str(venv / "bin" / "pip"), "install", "--quiet", f"sekmet-fhir=={version}"], env)
    if not exe.exists():
        raise SekmetError(f"sekmet-fhir {version} did not install a 'sekmet' command in {venv}")


def _run(cmd: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise SekmetError(f"{Path(cmd[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


@dataclass
class SekmetServer:
    """A running sekmet-fhir process."""

    base_url: str
    pid: int
    data_dir: Path
    log_path: Path
    _proc: subprocess.Popen[bytes]

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._proc.poll() is not None:
            return
        os.kill(self.pid, signal.SIGTERM)
        try:
            self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self._proc.wait(timeout=timeout_s)


def start(
    root: Path,
    *,
    version: str = DEFAULT_VERSION,
    port: int | None = None,
    fresh: bool = True,
    startup_timeout_s: float = 60.0,
) -> SekmetServer:
    """Install (if needed) and start sekmet-fhir on 127.0.0.1; wait until `/metadata` answers."""
    root = root.resolve()
    exe = ensure_installed(root, version)
    port = port or free_port()
    data_dir = root / f"data-{port}"
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    base_url = f"http://127.0.0.1:{port}/fhir"
    config = data_dir / "settings.yaml"
    config.write_text(
        "\n".join(
            [
                f"base_url: {base_url}",
                "host: 127.0.0.1",
                f"port: {port}",
                f"data_dir: {data_dir / 'data'}",
                "simulator: {enabled: false}",
                "validation: {inbound: warn}",
                "log_inbound: false",
                "",
            ]
        )
    )
    log_path = data_dir / "sekmet.log"
    log_file = log_path.open("wb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SEKMET_", "VIRTUAL_ENV"))}
    proc = subprocess.Popen(  # noqa: S603
        [str(exe), "serve", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        cwd=data_dir,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    log_file.close()
    server = SekmetServer(base_url, proc.pid, data_dir, log_path, proc)
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SekmetError(f"sekmet-fhir exited with {proc.returncode}; see {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/metadata", timeout=2.0).status_code == 200:
                return server
        time.sleep(0.2)
    server.stop()
    raise SekmetError(
        f"sekmet-fhir did not answer /metadata within {startup_timeout_s:.0f} s; see {log_path}"
    )


@contextlib.contextmanager
def running(root: Path, *, version: str = DEFAULT_VERSION) -> Iterator[SekmetServer]:
    server = start(root, version=version)
    try:
        yield server
    finally:
        server.stop()
