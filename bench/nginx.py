"""The nginx side: find (or install) nginx, write a temp-dir config, run it in the foreground."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from servers import HOST, Server, free_port

INSTALL_COMMAND = ["apt-get", "install", "-y", "--no-install-recommends", "nginx"]
_SBIN = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")
# The gateway's upstream pool holds up to 100 connections (upstreams[].max_connections).
UPSTREAM_KEEPALIVE = 100
FILE_READ_BYTES = "256k"


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in _SBIN if os.access(p, os.X_OK)), None)


def ensure_nginx() -> tuple[str | None, str]:
    """(path to nginx, what happened). Installs the Debian package when missing and we are root
    or have password-less sudo; otherwise (None, the reason and the command to run)."""
    found = find_nginx()
    if found is not None:
        return found, f"nginx: {found}"
    prefix = _privilege()
    hint = "sudo " + " ".join(INSTALL_COMMAND)
    if prefix is None or shutil.which("apt-get") is None:
        return None, f"nginx is not installed. Install it with:  {hint}"
    print(f"nginx not found; installing it: {' '.join(prefix + INSTALL_COMMAND)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for attempt in (INSTALL_COMMAND, ["apt-get", "update", "-q"], INSTALL_COMMAND):
        done = subprocess.run(prefix + attempt, env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=False)
        if attempt is INSTALL_COMMAND and done.returncode == 0:
            break  # else: stale package lists, so update them and try once more
    found = find_nginx()
    if found is None:
        return None, (f"installing nginx failed:\n{done.stdout[-1000:]}{done.stderr[-1000:]}"
                      f"\nInstall it with:  {hint}")
    return found, f"nginx: installed {found}"


def _privilege() -> list[str] | None:
    """[] as root, ["sudo", "-n"] when sudo works without a password, else None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") is None:
        return None
    ok = subprocess.run(["sudo", "-n", "true"], capture_output=True, check=False).returncode == 0
    return ["sudo", "-n"] if ok else None


def version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    return (out.stderr or out.stdout).strip().removeprefix("nginx version: nginx/")


def nginx_conf(prefix: Path, port: int, sim_port: int, *, workers: int) -> str:
    """Proxies the simulator's task API and its signed result files, reusing upstream
    connections as the gateway does. Nothing is logged per request, and nothing touches disk
    (small bodies stay in memory; no temp files for responses)."""
    temp_paths = "".join(f"    {kind}_temp_path {prefix}/{kind};\n"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # One worker: no master process, so nginx is one process like the gateway with one worker,
    # and PR_SET_PDEATHSIG covers all of it (a worker forked by a master would outlive a
    # SIGKILLed bench). The master, idle while serving, adds no CPU per request either way.
    master = "off" if workers == 1 else "on"
    return f"""\
master_process {master};
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
{temp_paths}    client_body_buffer_size 1m;
    keepalive_requests 10000000;  # one client connection lasts a whole point
    upstream simulator {{
        server {HOST}:{sim_port};
        keepalive {UPSTREAM_KEEPALIVE};
        keepalive_requests 10000000;
    }}
    server {{
        listen {HOST}:{port};
        location = /_ready {{ return 200 "ready\\n"; }}
        location /api/v3/ {{
            proxy_pass http://simulator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }}
        location /files/ {{
            proxy_pass http://simulator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            # Unbuffered, proxy_buffer_size is the most read from upstream at once (the default
            # 4k took 4x the CPU per MB); the other two only have to agree with it.
            proxy_buffer_size {FILE_READ_BYTES};
            proxy_buffers 4 {FILE_READ_BYTES};
            proxy_busy_buffers_size {FILE_READ_BYTES};
        }}
    }}
}}
"""


def start_nginx(binary: str, workdir: Path, env: dict[str, str], sim_port: int, *,
                workers: int) -> Server:
    """nginx in the foreground (``daemon off``), its prefix, config, pid and temp dirs in a
    directory of the bench's temp dir; error log to the server log."""
    prefix = workdir / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, port, sim_port, workers=workers))
    # -e: the error log before the config is read (else the compiled-in /var/log path).
    command = [binary, "-p", str(prefix), "-e", "stderr", "-c", str(conf), "-g", "daemon off;"]
    server = Server("nginx", command, port=port, env=env, workdir=workdir, cwd=prefix)
    try:
        server.wait_ready("/_ready")
    except RuntimeError:
        server.stop()
        raise
    return server


def loudly(message: str) -> None:
    """For a run that goes on without the nginx rows: hard to miss, on stderr."""
    bar = "!" * 78
    print(f"\n{bar}\n{message}\nThis run has NO nginx rows and no ×nginx ratios.\n{bar}\n",
          file=sys.stderr, flush=True)
