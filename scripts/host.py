"""Start, stop and query the real ComfyUI server with this pack loaded, on 127.0.0.1 only.

    python scripts/host.py start --base build/host --models build/models [--port 8199] [--test-nodes]
    python scripts/host.py stop  --base build/host
    python scripts/host.py status --base build/host

`start` lays out BASE (custom_nodes/UniStyle -> this checkout, optional test-only nodes, models ->
MODELS), launches scripts/run_comfy.py in its own process session, waits until GET /queue answers
and writes BASE/comfy.pid and BASE/comfy.port; the log is BASE/comfy.log. `stop` ends that PID.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACK_NAME = "UniStyle"
TEST_NODES = os.path.join(ROOT, "tests", "host_nodes")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _link(target, link):
    if os.path.islink(link):
        if os.readlink(link) == target:
            return
        os.unlink(link)
    os.symlink(target, link)


def lay_out_base(base, models, test_nodes):
    """Create BASE's folders and point custom_nodes and models where they belong."""
    for sub in ("custom_nodes", "input", "output", "temp", "user"):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    _link(ROOT, os.path.join(base, "custom_nodes", PACK_NAME))
    test_link = os.path.join(base, "custom_nodes", "unistyle_test_nodes")
    if test_nodes:
        _link(TEST_NODES, test_link)
    elif os.path.islink(test_link):
        os.unlink(test_link)
    models_link = os.path.join(base, "models")
    if models:
        if os.path.isdir(models_link) and not os.path.islink(models_link):
            raise RuntimeError(f"{models_link} is a real folder; remove it to link models to {models}")
        _link(os.path.abspath(models), models_link)
    else:
        os.makedirs(models_link, exist_ok=True)


def _pid(base):
    try:
        with open(os.path.join(base, "comfy.pid")) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _answers(port, path="/queue"):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start(base, models=None, port=None, test_nodes=False, timeout=180.0, python=sys.executable, extra_args=()):
    """Start the server (or return the port of one already running from BASE)."""
    base = os.path.abspath(base)
    pid = _pid(base)
    if pid is not None:
        port = int(open(os.path.join(base, "comfy.port")).read())
        if _answers(port):
            return port
        stop(base)
    lay_out_base(base, models, test_nodes)
    port = port or free_port()
    log_path = os.path.join(base, "comfy.log")
    cmd = [python, os.path.join(ROOT, "scripts", "run_comfy.py"), "--listen", "127.0.0.1", "--port", str(port),
           "--disable-auto-launch", "--base-directory", base,
           "--database-url", f"sqlite:///{os.path.join(base, 'user', 'comfyui.db')}", *extra_args]
    import torch
    if not torch.cuda.is_available():
        cmd.append("--cpu")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=base, start_new_session=True)
    with open(os.path.join(base, "comfy.pid"), "w") as f:
        f.write(str(proc.pid))
    with open(os.path.join(base, "comfy.port"), "w") as f:
        f.write(str(port))
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with code {proc.returncode}; log {log_path}:\n{_tail(log_path)}")
        if _answers(port):
            return port
        time.sleep(0.5)
    stop(base)
    raise RuntimeError(f"ComfyUI did not answer /queue within {timeout:.0f}s; log {log_path}:\n{_tail(log_path)}")


def stop(base, timeout=20.0):
    """Stop the server started from BASE (SIGTERM to its process group, SIGKILL after TIMEOUT)."""
    base = os.path.abspath(base)
    pid = _pid(base)
    if pid is not None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            while time.time() < deadline and _alive(pid):
                time.sleep(0.1)
            if not _alive(pid):
                break
    for name in ("comfy.pid", "comfy.port"):
        try:
            os.unlink(os.path.join(base, name))
        except FileNotFoundError:
            pass
    return pid


def _alive(pid):
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _tail(path, n=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return "(no log)"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=["start", "stop", "status"])
    ap.add_argument("--base", default=os.path.join(ROOT, "build", "host"))
    ap.add_argument("--models", default=None, help="folder to use as the host's models/")
    ap.add_argument("--port", type=int, default=None)
    ap.add_argument("--test-nodes", action="store_true", help="also load tests/host_nodes (tiny-model helpers)")
    a = ap.parse_args(argv)
    if a.action == "start":
        port = start(a.base, a.models, a.port, a.test_nodes)
        print(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": _pid(os.path.abspath(a.base)),
                          "log": os.path.join(os.path.abspath(a.base), "comfy.log")}))
    elif a.action == "stop":
        pid = stop(a.base)
        print(f"stopped {pid}" if pid else "not running")
    else:
        pid = _pid(os.path.abspath(a.base))
        print(f"running pid={pid}" if pid else "not running")
        return 0 if pid else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
