"""`element-pose lab` starts a real JupyterLab on the tutorials with the project's kernel."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOKEN = "element-pose-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str):
    request = urllib.request.Request(url, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_lab_serves_the_tutorials_with_the_project_kernel(tmp_path):
    port = _free_port()
    root = tmp_path / "demo-root"
    env = {**os.environ, "ELEMENT_POSE_ROOT_DIRS": str(root),
           "ELEMENT_POSE_CONFIG": str(tmp_path / "no-settings.json"),  # env only
           "JUPYTER_RUNTIME_DIR":
           str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    env.pop("ELEMENT_POSE_PROCESSED_DIR", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "element_pose.cli", "lab", "--no-browser", "--port", str(port),
         "--", f"--IdentityProvider.token={TOKEN}", "--ServerApp.ip=127.0.0.1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status = _get(f"{base}/api/status")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read().decode()[-3000:]
                assert time.monotonic() < deadline, "JupyterLab did not answer in 120 s"
                time.sleep(0.5)
        assert "started" in status
        specs = _get(f"{base}/api/kernelspecs")
        assert specs["default"] == "element-pose"
        argv = specs["kernelspecs"]["element-pose"]["spec"]["argv"]
        assert argv[0] == sys.executable
        names = {item["name"] for item in _get(f"{base}/api/contents/")["content"]}
        assert {"01_quick_start.ipynb", "scripts"} <= names  # the paired scripts below
        assert "01_quick_start.py" not in names  # each tutorial listed once
        lab_page = urllib.request.urlopen(f"{base}/lab?token={TOKEN}", timeout=10).read()
        assert b"JupyterLab" in lab_page
        # the server (and so every kernel it starts) has the demo's roots
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
        assert f"ELEMENT_POSE_ROOT_DIRS={root}".encode() in environ
        assert f"ELEMENT_POSE_PROCESSED_DIR={root / 'processed'}".encode() in environ
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
