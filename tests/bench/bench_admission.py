"""Admission throughput, latency and memory: `POST /mutate` over TLS with keep-alive.

Three servers get the same request bodies (a validator pod's AdmissionReview
and a non-validator's) over the same TLS settings (TLS 1.2+, ECDHE with
AES-GCM or ChaCha20, an ECDSA P-256 certificate), each on one core's worth of
one process:

- ours: `stellar-peers serve`, as in production (uvicorn with uvloop and
  httptools, TLS, one worker, JSON logs, metrics, the peer watcher against the
  private control plane);
- a bare Starlette app on the same uvicorn stack that parses the review with
  orjson and answers fixed bytes, our answer with its JSONPatch
  (`tests/bench/baseline_app.py`);
- nginx answering the same bytes with `return 200` (one worker process).

Saturation: wrk (2 threads, 8 connections) with a Lua script posting the body.
Latency at a fixed rate (200 and 1,000 req/s): the open-loop client in
`tests/bench/loadgen.py` in its own process. Idle memory: VmRSS of the serve
process from /proc once it is ready.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from kubernetes import client

from certs import authority
from tests.bench import pods, procs
from tests.bench.cluster import api_client, private_cluster
from tests.bench.report import Row, emit, not_run

HOST = "127.0.0.1"
TARGET_P99_MS = 2.0
TARGET_THROUGHPUT_SHARE = 0.80
TARGET_IDLE_RSS_MB = 80.0

WRK_SCRIPT = r"""
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "errors": %d, "status_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""

NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {folder}/client-body;
  proxy_temp_path {folder}/proxy;
  fastcgi_temp_path {folder}/fastcgi;
  uwsgi_temp_path {folder}/uwsgi;
  scgi_temp_path {folder}/scgi;
  client_body_buffer_size 64k;
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  server {{
    listen {host}:{port} ssl;
    ssl_certificate {folder}/tls.crt;
    ssl_certificate_key {folder}/tls.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
    ssl_prefer_server_ciphers on;
    location = /mutate {{
      default_type application/json;
{answer}
    }}
  }}
}}
"""


@dataclass(frozen=True)
class Plan:
    saturation_seconds: int  # wrk takes whole seconds
    warmup_seconds: int
    rates: tuple[int, ...]
    rate_seconds: float
    profile_seconds: float  # 0: no profile even when a target is missed


DEFAULT = Plan(
    saturation_seconds=10, warmup_seconds=2, rates=(200, 1000), rate_seconds=10, profile_seconds=8
)
QUICK = Plan(
    saturation_seconds=2, warmup_seconds=1, rates=(200, 1000), rate_seconds=2, profile_seconds=0
)


@dataclass(frozen=True)
class Target:
    name: str
    url: str
    pid: int


def write_certificates(folder: Path) -> None:
    ca = authority.make_ca()
    serving = authority.make_serving(ca=ca, dns_names=["localhost"], ips=[HOST])
    (folder / "ca.crt").write_bytes(ca.cert_pem)
    (folder / "tls.crt").write_bytes(serving.cert_pem)
    (folder / "tls.key").write_bytes(serving.key_pem)
    (folder / "tls.key").chmod(0o600)


def wait_ready(url: str, *, process: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"stellar-peers serve exited with {process.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as answer:
            if answer.status == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout}s")
        time.sleep(0.1)


@contextlib.contextmanager
def ours(folder: Path, *, kubeconfig: str, watcher: bool = True) -> Iterator[Target]:
    """`stellar-peers serve` as deployed (peer watcher, leader election, reload controller)."""
    port, metrics_port = procs.free_port(), procs.free_port()
    argv = [
        str(procs.ROOT / ".venv" / "bin" / "stellar-peers"),
        "serve",
        "--host", HOST,
        "--port", str(port),
        "--metrics-host", HOST,
        "--metrics-port", str(metrics_port),
        "--cert-mode", "external",  # the bench's pair, shared with the baselines
        "--admission-mode", "webhook",  # what is measured here is the webhook's server
        "--cert-file", str(folder / "tls.crt"),
        "--key-file", str(folder / "tls.key"),
        "--kubeconfig", kubeconfig,
        "--namespace", "stellar-system",
        "--enable-watcher", "true" if watcher else "false",
    ]  # fmt: skip
    log = folder / ("serve.log" if watcher else "serve-no-watcher.log")
    with procs.running(argv, log=log) as process:
        procs.wait_for_port(HOST, port, process=process)
        wait_ready(f"http://{HOST}:{metrics_port}/readyz", process=process)
        yield Target("ours", f"https://{HOST}:{port}/mutate", process.pid)


@contextlib.contextmanager
def starlette_baseline(folder: Path, *, answer: Path) -> Iterator[Target]:
    port = procs.free_port()
    argv = [
        procs.PYTHON, "-m", "tests.bench.baseline_app",
        "--host", HOST, "--port", str(port),
        "--cert", str(folder / "tls.crt"), "--key", str(folder / "tls.key"),
        "--answer", str(answer),
    ]  # fmt: skip
    with procs.running(argv, log=folder / "starlette.log") as process:
        procs.wait_for_port(HOST, port, process=process)
        yield Target("bare starlette", f"https://{HOST}:{port}/mutate", process.pid)


def nginx_return(text: str, *, chunk: int = 3000) -> str:
    """`return 200` of `text`, set in parts: nginx refuses a config token over 4 KiB."""
    parts = [text[i : i + chunk] for i in range(0, len(text), chunk)] or [""]
    sets = [f"      set $answer{i} '{part}';" for i, part in enumerate(parts)]
    joined = "".join(f"$answer{i}" for i in range(len(parts)))
    return "\n".join([*sets, f'      return 200 "{joined}";'])


@contextlib.contextmanager
def nginx_baseline(folder: Path, *, answer: Path) -> Iterator[Target]:
    text = answer.read_text()
    if re.search(r"[$'\\]", text):
        raise ValueError("the fixed answer has characters nginx would interpret")
    port = procs.free_port()
    conf = folder / f"nginx-{answer.stem}.conf"
    conf.write_text(
        NGINX_CONF.format(folder=folder, host=HOST, port=port, answer=nginx_return(text))
    )
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    with procs.running([nginx, "-c", str(conf), "-p", str(folder)], log=folder / "nginx.log") as p:
        procs.wait_for_port(HOST, port, process=p)
        yield Target("nginx", f"https://{HOST}:{port}/mutate", p.pid)


def wrk(target: Target, *, body: Path, seconds: float) -> dict[str, Any]:
    script = body.parent / "post.lua"
    script.write_text(WRK_SCRIPT)
    argv = [
        "wrk",
        "-t2",
        "-c8",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        target.url,
    ]
    env = {**os.environ, "BENCH_BODY": str(body)}
    cpu_before = procs.cpu_seconds(target.pid)
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    cpu = procs.cpu_seconds(target.pid) - cpu_before
    line = next((x for x in done.stdout.splitlines() if x.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed: {done.stdout[-500:]} {done.stderr[-500:]}")
    result: dict[str, Any] = json.loads(line[len("BENCH ") :])
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    result["cpu_us_per_request"] = cpu / max(1, result["requests"]) * 1e6
    return result


def _function(frame: str) -> str:
    """`name (path/file.py:12)` -> `name (path/file.py)`."""
    return re.sub(r":\d+\)$", ")", frame)


def profile(target: Target, *, body: Path, seconds: float, folder: Path) -> list[str]:
    """Where our server's time goes under saturation: py-spy, summarised by function."""
    py_spy = shutil.which("py-spy") or str(procs.ROOT / ".venv" / "bin" / "py-spy")
    if not Path(py_spy).exists():
        return ["profile: py-spy is not installed (pip install -e '.[bench]')"]
    script = body.parent / "post.lua"
    raw = folder / "profile.txt"
    env = {**os.environ, "BENCH_BODY": str(body)}
    argv = ["wrk", "-t2", "-c8", f"-d{seconds + 2:g}s", "-s", str(script), target.url]
    with procs.running(argv, env=env) as load:
        time.sleep(1.0)
        subprocess.run(
            [
                py_spy,
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "--nonblocking",
                "--duration",
                f"{seconds:g}",
                "--pid",
                str(target.pid),
                "--output",
                str(raw),
            ],
            capture_output=True,
            timeout=seconds + 60,
            check=False,
        )
        load.wait(seconds + 30)
    if not raw.exists():
        return ["profile: py-spy could not attach (ptrace refused?)"]
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    if not total:
        return ["profile: no samples"]
    lines = [f"profile of ours under wrk ({total} samples; share of samples):", "  self time:"]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(12)]
    lines.append("  inclusive, our code:")
    ours_only = [(f, n) for f, n in inclusive.most_common() if "webhook/" in f]
    lines += [f"    {n / total:6.1%}  {f}" for f, n in ours_only[:12]]
    return lines


def fixed_rate(
    target: Target, *, body: Path, ca: Path, rate: int, seconds: float
) -> dict[str, Any]:
    argv = [
        procs.PYTHON, "-m", "tests.bench.loadgen",
        "--url", target.url, "--body", str(body), "--cafile", str(ca),
        "--rate", str(rate), "--duration", f"{seconds:g}", "--warmup", "1", "--connections", "8",
    ]  # fmt: skip
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=seconds + 90, cwd=procs.ROOT
    )
    if done.returncode != 0:
        raise RuntimeError(f"loadgen failed: {done.stderr[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def answers(target: Target, *, bodies: dict[str, Path], ca: Path, folder: Path) -> dict[str, Path]:
    """What ours answers to each body: the bytes the baselines will send back."""
    files: dict[str, Path] = {}
    with httpx.Client(verify=str(ca)) as http:
        for name, body in bodies.items():
            answer = http.post(
                target.url, content=body.read_bytes(), headers={"Content-Type": "application/json"}
            )
            answer.raise_for_status()
            review = answer.json()["response"]
            if name == "validator" and review.get("patchType") != "JSONPatch":
                raise RuntimeError(f"ours did not patch the validator: {review}")
            if name == "non-validator" and "patch" in review:
                raise RuntimeError(f"ours patched the non-validator: {review}")
            files[name] = folder / f"answer-{name}.json"
            files[name].write_bytes(answer.content)
    return files


def ensure_namespace(kubeconfig: str, name: str) -> None:
    core = client.CoreV1Api(api_client(kubeconfig))
    try:
        core.create_namespace({"metadata": {"name": name}})
    except client.ApiException as exc:
        if exc.status != 409:
            raise


def measure(*, plan: Plan, kubeconfig: str, folder: Path) -> list[Row]:
    write_certificates(folder)
    ca = folder / "ca.crt"
    ensure_namespace(kubeconfig, "stellar-system")
    bodies = {
        "validator": folder / "review-validator.json",
        "non-validator": folder / "review-non-validator.json",
    }
    bodies["validator"].write_bytes(orjson.dumps(pods.admission_review(pods.validator_pod())))
    bodies["non-validator"].write_bytes(orjson.dumps(pods.admission_review(pods.plain_pod())))
    rows: list[Row] = []
    saturation: dict[tuple[str, str], float] = {}
    cpu: dict[tuple[str, str], float] = {}
    profile_lines: list[str] = []
    latency: dict[tuple[str, int], dict[str, Any]] = {}

    with ours(folder, kubeconfig=kubeconfig, watcher=False) as plain:
        time.sleep(2.0)  # let start-up allocations settle before reading memory
        idle_plain = procs.memory_kb(plain.pid)["VmRSS"] / 1024
    with ours(folder, kubeconfig=kubeconfig) as our:
        time.sleep(2.0)
        idle = procs.memory_kb(our.pid)["VmRSS"] / 1024
        replies = answers(our, bodies=bodies, ca=ca, folder=folder)
        for body_name, body in bodies.items():
            with (
                starlette_baseline(folder, answer=replies[body_name]) as bare,
                nginx_baseline(folder, answer=replies[body_name]) as nginx,
            ):
                bare_idle = procs.memory_kb(bare.pid)["VmRSS"] / 1024
                for target in (our, bare, nginx):
                    wrk(target, body=body, seconds=plan.warmup_seconds)
                    result = wrk(target, body=body, seconds=plan.saturation_seconds)
                    if result["errors"] or result["status_errors"]:
                        raise RuntimeError(f"{target.name}: errors under load: {result}")
                    saturation[(target.name, body_name)] = result["rps"]
                    cpu[(target.name, body_name)] = result["cpu_us_per_request"]
                    print(
                        f"  wrk {body_name} {target.name}: {result['rps']:,.0f} req/s, "
                        f"p50 {result['p50_us'] / 1000:.2f} ms, "
                        f"p99 {result['p99_us'] / 1000:.2f} ms, "
                        f"server CPU {result['cpu_us_per_request']:.0f} µs/request",
                        flush=True,
                    )
                missed = (
                    saturation[("ours", body_name)]
                    < TARGET_THROUGHPUT_SHARE * saturation[("bare starlette", body_name)]
                )
                if missed and body_name == "validator" and plan.profile_seconds:
                    profile_lines = profile(
                        our, body=body, seconds=plan.profile_seconds, folder=folder
                    )
                    print("\n".join(profile_lines), flush=True)
                if body_name != "validator":
                    continue
                for rate in plan.rates:
                    for target in (our, bare, nginx):
                        result = fixed_rate(
                            target, body=body, ca=ca, rate=rate, seconds=plan.rate_seconds
                        )
                        if result["errors"]:
                            raise RuntimeError(f"{target.name} at {rate}/s: errors: {result}")
                        latency[(target.name, rate)] = result
                        print(
                            f"  {rate} req/s {target.name}: p50 {result['p50_ms']:.2f} ms, "
                            f"p99 {result['p99_ms']:.2f} ms, p99.9 {result['p999_ms']:.2f} ms "
                            f"({result['completed']} requests, "
                            f"{result['achieved_rate']:.0f}/s achieved)",
                            flush=True,
                        )
        loaded = procs.memory_kb(our.pid)

    share = f"≥ {TARGET_THROUGHPUT_SHARE:.0%} of bare starlette"
    for body_name in bodies:
        ours_rps = saturation[("ours", body_name)]
        bare_rps = saturation[("bare starlette", body_name)]
        rows += [
            Row(
                benchmark=f"admission: max throughput, {body_name} review",
                unit="req/s",
                ours=ours_rps,
                baseline=bare_rps,
                baseline_name="bare starlette",
                target=share,
                met=ours_rps >= TARGET_THROUGHPUT_SHARE * bare_rps,
                note="wrk -t2 -c8, TLS, keep-alive, one server process each",
            ),
            Row(
                benchmark=f"admission: max throughput, {body_name} review",
                unit="req/s",
                ours=ours_rps,
                baseline=saturation[("nginx", body_name)],
                baseline_name="nginx",
            ),
            Row(
                benchmark=f"admission: server CPU per request, {body_name} review",
                unit="µs",
                ours=cpu[("ours", body_name)],
                baseline=cpu[("bare starlette", body_name)],
                baseline_name="bare starlette",
                note="user+system CPU of the server during the wrk run / requests answered",
            ),
        ]
    for rate in plan.rates:
        for quantile, key in (("p50", "p50_ms"), ("p99", "p99_ms"), ("p99.9", "p999_ms")):
            ours_ms = latency[("ours", rate)][key]
            with_target = quantile == "p99" and rate == 200
            bases = ("bare starlette", "nginx") if quantile == "p99" else ("bare starlette",)
            for base in bases:
                primary = base == "bare starlette"
                rows.append(
                    Row(
                        benchmark=f"admission: {quantile} latency at {rate} req/s, validator",
                        unit="ms",
                        ours=ours_ms,
                        baseline=latency[(base, rate)][key],
                        baseline_name=base,
                        target=f"≤ {TARGET_P99_MS:g} ms" if with_target and primary else "",
                        met=ours_ms <= TARGET_P99_MS if with_target and primary else None,
                        note="open loop, 8 connections" if quantile == "p50" else "",
                    )
                )
    watcher = "watcher.ready" in (folder / "serve.log").read_text(errors="replace")
    rows += [
        Row(
            benchmark="admission: idle RSS of stellar-peers serve",
            unit="MB",
            ours=idle,
            baseline=bare_idle,
            baseline_name="bare starlette, idle",
            target=f"≤ {TARGET_IDLE_RSS_MB:g} MB",
            met=idle <= TARGET_IDLE_RSS_MB,
            note="MB = MiB; "
            + (
                "peer watcher running against the private control plane"
                if watcher
                else "serve did not start the peer watcher (not wired in at this commit): "
                "its RSS is measured apart, under scale"
            ),
        ),
        Row(
            benchmark="admission: idle RSS of stellar-peers serve",
            unit="MB",
            ours=idle,
            baseline=idle_plain,
            baseline_name="serve --enable-watcher false",
            note="what the watcher, leader election and reload controller add at idle",
        ),
        Row(
            benchmark="admission: peak RSS of stellar-peers serve after load",
            unit="MB",
            ours=loaded["VmHWM"] / 1024,
        ),
    ]
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s runs instead of 10 s")
    args = parser.parse_args(argv)
    print("== admission throughput, latency and memory")
    missing = [
        tool
        for tool in ("wrk", "nginx")
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists())
    ]
    if missing:
        emit(
            [
                not_run(
                    "admission",
                    f"{', '.join(missing)} not installed (scripts/bench.sh installs them)",
                )
            ]
        )
        return 0
    plan = QUICK if args.quick else DEFAULT
    with (
        tempfile.TemporaryDirectory(prefix="stellar-bench-admission-") as tmp,
        private_cluster() as kubeconfig,
    ):
        rows = measure(plan=plan, kubeconfig=kubeconfig, folder=Path(tmp))
    emit(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
