"""Start the reference OCI registry server (Debian's docker-registry) on loopback, with htpasswd auth.

For tests and benchmarks: the real server, not a fake. ``scripts/devenv.sh`` installs
``docker-registry`` and ``htpasswd`` (apache2-utils) in the project's environment.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from typing import Iterator

import requests


class RegistryUnavailable(RuntimeError):
    """docker-registry or htpasswd is not installed, or the server did not start."""


@contextlib.contextmanager
def serve(workdir: str, user: str, password: str, start_timeout: float = 20.0) -> Iterator[str]:
    """Runs ``docker-registry serve`` on a free loopback port; yields its base URL."""
    binary, htpasswd = shutil.which("docker-registry"), shutil.which("htpasswd")
    if binary is None or htpasswd is None:
        raise RegistryUnavailable("docker-registry/htpasswd are not installed (scripts/devenv.sh installs them).")
    os.makedirs(workdir, exist_ok=True)
    entry = subprocess.run([htpasswd, "-Bbn", user, password], check=True, capture_output=True, text=True).stdout
    with open(os.path.join(workdir, "htpasswd"), "w") as f:
        f.write(entry)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = os.path.join(workdir, "config.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {workdir}/data\n"
                f"http:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: tinyml-tfx\n"
                f"    path: {workdir}/htpasswd\n")
    server = subprocess.Popen([binary, "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + start_timeout
        while True:
            try:
                if requests.get(url + "/v2/", timeout=1).status_code == 401:
                    break
            except requests.RequestException:
                pass
            if time.time() > deadline:
                raise RegistryUnavailable(f"docker-registry did not answer on {url} within {start_timeout:.0f} s.")
            time.sleep(0.1)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
