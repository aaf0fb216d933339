"""``edgeport fleet``: bench or selfcheck on every device node of a Ray cluster, merged into one report.

Each device joins the cluster with a custom resource naming it:
``ray start --address HEAD:6379 --resources '{"edgeport-device:rpi5": 1}'``.  ``--devices`` is a glob
(or comma list of globs) over NAME among the alive nodes.  Each device gets one task, scheduled with
``resources={"edgeport-device:NAME": 1}`` and ``max_retries=0``: it runs on exactly that node, and a
node that dies fails instead of being retried elsewhere.  The task also reserves every CPU the node
advertises, so nothing else Ray schedules shares the board while it times.

The bundle travels through Ray's object store, content-addressed: ``manifest.json`` and every file
it lists (read back verified) are packed into one in-memory tar, ``ray.put`` once, keyed by the
sha256 of ``manifest.json`` (which hashes every file).  A task looks for the key in its node-local
cache (``~/.cache/edgeport/fleet/<key>``, or under ``$EDGEPORT_FLEET_CACHE``) and fetches the blob
(passed inside a list, so Ray does not fetch it eagerly) only when it is not there; it unpacks into a
temporary folder renamed into place, loads (so re-verifies) the bundle and runs ``bench`` or
``selfcheck`` in-process.  Each report carries the node's own ``device`` block.  A node's failure
(died, timed out, raised) is one line for that node and never fatal to the others.

The driver runs on a cluster node (e.g. the head) or uses Ray Client (``--ray ray://HEAD:10001``).
The fleet suits the Linux boards Ray supports (x86-64 and aarch64: Raspberry Pi 4/5, Jetson, NUCs);
phones cannot run a Ray node and would need an adb transport instead.
"""

from __future__ import annotations

import fnmatch
import hashlib
import io
import logging
import math
import os
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from contextlib import redirect_stdout
from pathlib import Path

from ..errors import BackendUnavailableError, BundleError, ConfigError, EdgeportError, RemoteError, safe_text
from ..trust import code_is_trusted

SCHEMA = "edgeport.fleet/1"
PREFIX = "edgeport-device:"
CACHE_ENV = "EDGEPORT_FLEET_CACHE"
ACTIONS = ("bench", "selfcheck")
PROBE_SECONDS = 5.0  # how long the cluster address has to accept a TCP connection
DEAD_GRACE_SECONDS = 10.0  # a pending task whose node has been gone this long fails as "node died"
_RAY_REASONS = {  # Ray's exception (by class name) -> the one line a user reads
    "NodeDiedError": "node died",
    "LocalRayletDiedError": "node died",
    "WorkerCrashedError": "its worker process crashed (out of memory or a native crash)",
    "OutOfMemoryError": "Ray killed the task: the node ran out of memory",
    "TaskCancelledError": "the task was cancelled",
}


def _ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError("the fleet needs ray: pip install 'edgeport[fleet]'") from None
    return ray


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return (text if isinstance(exc, EdgeportError) else f"{type(exc).__name__}: {text}")[:300]


def _result(report=None, error=None, fetched=None) -> dict:
    return {"ok": error is None, "error": error, "fetched_bundle": fetched, "report": report}


# --------------------------------------------------------------------------- the bundle blob


def pack_bundle(path) -> tuple[str, bytes, str | None]:
    """(key, tar of manifest.json and every file it lists, model); each file is read back verified."""
    from ..bundle import MANIFEST_FILE, FileEntry, load_bundle

    bundle = load_bundle(path)
    raw = bundle.manifest_bytes  # the manifest these files were verified against, not a second read
    manifest = bundle.manifest
    entries = [e for a in manifest.artifacts for e in a.files()]
    entries += [FileEntry.from_dict(f, "golden.files") for f in (manifest.golden or {}).get("files", [])]
    files = {MANIFEST_FILE: raw} | {e.path: bundle.read_file(e.path, e.bytes, e.sha256) for e in entries}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(raw).hexdigest(), buf.getvalue(), manifest.model


def unpack_bundle(blob: bytes, key: str, folder: Path) -> None:
    """Unpack ``blob`` (regular files under plain relative paths only) into ``folder`` with one rename."""
    from ..bundle import MANIFEST_FILE, check_relpath

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}.tmp-", dir=folder.parent))
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
            for m in tar.getmembers():
                if not m.isfile():
                    raise BundleError(f"the fleet blob holds {m.name[:80]!r}, which is not a regular file")
                dest = tmp / (m.name if m.name == MANIFEST_FILE else check_relpath("fleet blob", m.name))
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(tar.extractfile(m).read())
        if hashlib.sha256((tmp / MANIFEST_FILE).read_bytes()).hexdigest() != key:
            raise BundleError("the fleet blob's manifest.json does not match its key")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not folder.is_dir():  # else a concurrent task unpacked the same bundle first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cached_bundle(key: str, blob_refs: list):
    """(loaded bundle, whether this node had to fetch it)."""
    from ..bundle import load_bundle

    folder = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "edgeport" / "fleet") / key
    if folder.is_dir():
        try:
            return load_bundle(folder), False
        except BundleError:  # a damaged copy: fetch it again
            shutil.rmtree(folder, ignore_errors=True)
    import ray

    unpack_bundle(ray.get(blob_refs[0]), key, folder)
    return load_bundle(folder), True


# --------------------------------------------------------------------------- the task on each node


def _run_action(bundle, action: str, opts: dict, trusted: bool) -> dict:
    bundle.trust_model_code = bool(trusted)  # the driver's opt-in, for this bundle alone
    sel = {"backends": opts["backends"], "precisions": opts["precisions"]}
    if action == "selfcheck":
        from .selfcheck import selfcheck

        return selfcheck(bundle, **sel)
    from ..config import BenchConfig
    from ..runtime.benchmark import bench

    config = BenchConfig(batch_sizes=tuple(opts["batch_sizes"]), min_seconds=opts["min_seconds"])
    return bench(bundle, **sel, config=config, progress=False)


def node_task(key: str, blob_refs: list, action: str, opts: dict, trusted: bool) -> dict:
    """What runs on one device node; never raises, so the driver always gets a one-line reason."""
    fetched = None
    try:
        bundle, fetched = _cached_bundle(key, blob_refs)
        return _result(_run_action(bundle, action, opts, trusted), fetched=fetched)
    except Exception as exc:  # noqa: BLE001 - every failure becomes that node's one line
        return _result(error=_first_line(exc), fetched=fetched)


# --------------------------------------------------------------------------- the driver


def device_nodes(nodes: list[dict]) -> dict[str, dict]:
    """NAME -> node, for each alive node of ``ray.nodes()`` with an ``edgeport-device:NAME`` resource."""
    found: dict[str, list[dict]] = {}
    for n in nodes:
        for res in (n.get("Resources") or {}) if n.get("Alive") else ():
            if res.startswith(PREFIX) and res != PREFIX:
                found.setdefault(res[len(PREFIX) :], []).append(n)
    dup = ", ".join(sorted(name for name, ns in found.items() if len(ns) > 1))
    if dup:
        raise ConfigError(f"device name(s) {dup} are carried by several nodes; give each node its own NAME")
    return {name: ns[0] for name, ns in sorted(found.items())}


def select_devices(found: dict[str, dict], selector: str) -> dict[str, dict]:
    """The devices whose NAME matches a glob of the comma list ``selector``."""
    globs = [p.strip() for p in str(selector).split(",") if p.strip()]
    if not globs:
        raise ConfigError("--devices: expected a glob or a comma list of globs over device names")
    chosen = {n: node for n, node in found.items() if any(fnmatch.fnmatchcase(n, g) for g in globs)}
    if not chosen:
        have = ", ".join(found) or "none (join with --resources '{\"edgeport-device:NAME\": 1}')"
        shown = safe_text(selector, 80)
        raise ConfigError(f"no device node matches --devices {shown!r}; the cluster has: {have}")
    return chosen


def _connect(ray, address: str) -> bool:
    """Connect (or reuse this process's connection); True if this call connected, so must shut it down.

    ray.init hangs for minutes on an address where nothing listens, so a TCP probe fails first, in seconds.
    """
    if ray.is_initialized():
        return False
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if address != "auto" and not (sep and host and port.isdigit()):
        raise ConfigError(f"--ray {safe_text(address, 80)!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        if address != "auto":
            socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        raise RemoteError(
            f"cannot reach the Ray cluster at {safe_text(address, 80)} ({exc.strerror or exc or 'timed out'}); "
            "start it with `ray start --head` there, or check the address and the firewall"
        ) from None
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RemoteError(f"cannot connect to the Ray cluster at {address}: {_first_line(exc)}") from None
    return True


def _outcome(ray, ref) -> dict:
    try:
        return ray.get(ref)
    except Exception as exc:  # noqa: BLE001 - a Ray-level failure of one node
        name = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in _RAY_REASONS), None)
        cause = getattr(exc, "cause", None)  # RayTaskError wraps what the task raised
        cause = cause if isinstance(cause, Exception) else exc
        return _result(error=_RAY_REASONS.get(name) or _first_line(cause))


def _run_tasks(
    ray, nodes: dict, key: str, blob: bytes, action: str, opts: dict, timeout: float, say, trusted: bool
) -> dict:
    """NAME -> result: one task per node, each given at most ``timeout`` seconds."""
    try:
        refs = [ray.put(blob)]
    except Exception as exc:  # noqa: BLE001 - e.g. an object store too small for the bundle
        raise RemoteError(f"cannot put the bundle into Ray's object store: {_first_line(exc)}") from None
    task, start = ray.remote(node_task), time.monotonic()
    pending = {}
    for name, node in nodes.items():
        cpus = math.floor(float((node.get("Resources") or {}).get("CPU", 0)))  # the whole board
        opt = task.options(resources={PREFIX + name: 1}, num_cpus=cpus, max_retries=0, name=f"ep-{name}")
        pending[opt.remote(key, refs, action, opts, trusted)] = name
    results, dead_since = {}, {}

    def finish(name: str, res: dict) -> None:
        results[name] = res | {"seconds": round(time.monotonic() - start, 3)}
        say(f"fleet: {name}: " + ("done" if res["ok"] else f"failed: {res['error']}"))

    while pending:
        left = start + timeout - time.monotonic()
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, min(5.0, left)))
        for ref in ready:
            finish(pending.pop(ref), _outcome(ray, ref))
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")} if pending and not ready else None
        for ref, name in list(pending.items()) if alive is not None else ():
            if nodes[name]["NodeID"] not in alive:
                dead_since.setdefault(name, time.monotonic())
            if left <= 0 or time.monotonic() - dead_since.get(name, math.inf) > DEAD_GRACE_SECONDS:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001, S110 - already gone with its node; nothing left to stop
                    pass
                del pending[ref]
                why = "node died" if left > 0 else f"timed out after {timeout:g} s; cancelled"
                finish(name, _result(error=why))
    return results


def fleet(
    bundle_path,
    *,
    address: str,
    action: str = "bench",
    selector: str = "*",
    backends=None,
    precisions=None,
    batch_sizes=(1, 32),
    min_seconds: float = 1.0,
    timeout: float = 900.0,
    progress: bool = True,
    trust_model_code: bool = False,
) -> dict:
    """Run ``action`` on every device node matching ``selector``; the merged ``edgeport.fleet/1`` dict.
    ``trust_model_code``: the nodes may run artifacts that are code (TorchScript) from this bundle."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown fleet action {safe_text(action, 40)!r}; choose from {', '.join(ACTIONS)}")
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ConfigError(f"--timeout must be a positive number of seconds, got {timeout}")
    key, blob, model = pack_bundle(bundle_path)
    ray = _ray()
    opts = {"backends": backends, "precisions": precisions}
    opts |= {"batch_sizes": list(batch_sizes), "min_seconds": min_seconds}

    def say(text: str) -> None:
        if progress:
            print(safe_text(text), file=sys.stderr, flush=True)

    with redirect_stdout(sys.stderr):  # Ray prints its own notices (a node died, ...) to stdout
        owned = _connect(ray, address)
        try:
            nodes = select_devices(device_nodes(ray.nodes()), selector)
            say(f"fleet: {action} on {len(nodes)} device(s): {', '.join(nodes)}")
            trusted = trust_model_code or code_is_trusted()
            results = _run_tasks(ray, nodes, key, blob, action, opts, timeout, say, trusted)
        finally:
            if owned:
                ray.shutdown()
    return merge(action, str(bundle_path), model, nodes, results)


def _verdict(action: str, report: dict) -> str | None:
    """Why a node that returned a report still failed, or None."""
    rows, skipped = report.get("rows") or [], report.get("skipped") or []
    if not rows:
        why = "; ".join(f"{s['backend']}:{s['device']}: {s['reason']}" for s in skipped[:3])
        return f"nothing could run ({why or 'nothing selected'})"
    if action != "selfcheck" or report.get("passed"):
        return None
    bad = [f"{r['format']}/{r['precision']} on {r['backend']}:{r['device']}" for r in rows if not r["passed"]]
    return f"selfcheck failed for {len(bad)} of {len(rows)} artifacts: {', '.join(bad)}"


def merge(action: str, bundle: str, model, nodes: dict, results: dict) -> dict:
    """The ``edgeport.fleet/1`` dict: one entry per device, and every report row tagged with its device.

    A device's ``seconds`` run from submitting its task to its result, as the driver saw them.
    """
    devices, rows = [], []
    for name, node in nodes.items():
        res = results.get(name) or _result(error="no result")
        report, error = res["report"], res["error"]
        if error is None and isinstance(report, dict):
            error = _verdict(action, report)
        d = {"name": name, "node_id": node.get("NodeID"), "node_ip": node.get("NodeManagerAddress")}
        d |= {"ok": error is None, "error": error, "fetched_bundle": res["fetched_bundle"]}
        devices.append(d | {"seconds": res.get("seconds"), "report": report})
        rows += [{**r, "device_name": name} for r in (report or {}).get("rows") or []]
    out = {"schema": SCHEMA, "action": action, "bundle": bundle, "model": model, "devices": devices}
    return out | {"rows": rows, "failed": [d["name"] for d in devices if not d["ok"]]}


# --------------------------------------------------------------------------- Markdown and HTML

_BENCH = (  # (header, cell) of the bench table, after the device column
    ("backend", lambda r: f"{r['backend']}:{r['device']}"),
    ("precision", lambda r: r["precision"]),
    ("batch", lambda r: str(r["batch_size"])),
    ("threads", lambda r: str(r["threads"])),
    ("p50 µs", lambda r: f"{r['latency_us']['p50']:.1f}"),
    ("p99 µs", lambda r: f"{r['latency_us']['p99']:.1f}"),
    ("throughput/s", lambda r: f"{r['throughput_per_s']:,.0f}"),
    ("CoV", lambda r: f"{r['cov'] * 100:.1f}%"),
    ("peak RSS MB", lambda r: f"{r['peak_rss_mb']:.0f}"),
)
_SELFCHECK = (
    ("artifact", lambda r: f"{r['format']}/{r['precision']}"),
    ("backend", lambda r: f"{r['backend']}:{r['device']}"),
    ("max abs", lambda r: "-" if r.get("max_abs") is None else f"{r['max_abs']:.2e}"),
    ("task metrics", lambda r: _metrics(r)),
    ("result", lambda r: "pass" if r["passed"] else "FAIL"),
    ("reasons", lambda r: "; ".join(r.get("reasons") or [])),
)


def _metrics(r: dict) -> str:
    from ..tasks import registry

    try:
        task = registry.task_class(r.get("task") or "classify")
    except Exception:  # noqa: BLE001 - a remote report from another version: show nothing
        return "-"
    return task.summary_of(r.get("metrics") or {}) or "-"


def _table(action: str, rows: list[dict], device_column: bool = True) -> tuple[list[str], list[list[str]]]:
    """(header, text cells) of one table over ``rows``; the first column names the device."""
    cols = _SELFCHECK if action == "selfcheck" else _BENCH
    if action == "bench" and rows and "ttft_ms" in rows[0]:  # text-generation bundles
        from ..runtime.lm_bench import FLEET_COLUMNS as cols
    cols = (("device", lambda r: r["device_name"]),) * device_column + cols
    return [h for h, _ in cols], [[safe_text(cell(r), 300) for _, cell in cols] for r in rows]


def _device_line(d: dict) -> str:
    if not d["ok"]:
        return f"device {d['name']} failed: {d['error']}"
    dev, where = d["report"].get("device") or {}, "fetched" if d["fetched_bundle"] else "cached"
    host = f"{dev.get('hostname', '?')} ({dev.get('arch', '?')}, {dev.get('cores', '?')} cores"
    return f"{d['name']}: {host}, {dev.get('os', '?')}), bundle {where}, {d['seconds']:.1f} s"


def to_markdown(merged: dict) -> str:
    """One table over every device's rows, then one line per device (how it ran, or why it failed)."""
    head, cells = _table(merged["action"], merged["rows"])
    lines = [f"# edgeport fleet {merged['action']}: {safe_text(merged['model'] or '?')}", ""]
    if cells:
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    else:
        lines.append("No device produced a result.")
    return "\n".join([*lines, "", *(f"- {safe_text(_device_line(d))}" for d in merged["devices"])]) + "\n"


def sections(merged: dict) -> list:
    """Report sections (see :mod:`edgeport.report.writer`): a summary table, then one section per device."""
    devs, action = merged["devices"], merged["action"]
    text = f"fleet **{action}** of `{merged['model']}` from `{merged['bundle']}`: "
    summary = [
        [safe_text(d["name"]), str(d["node_ip"]), "pass" if d["ok"] else "FAIL", safe_text(d["error"] or "")]
        + [{True: "fetched", False: "cached", None: "-"}[d["fetched_bundle"]], f"{d['seconds'] or 0:.1f}"]
        for d in devs
    ]
    head = ["device", "node", "result", "error", "bundle", "seconds"]
    text += f"{sum(d['ok'] for d in devs)} of {len(devs)} device(s) ok."
    out = [("Fleet", [("p", text), ("table", head, summary)])]
    for d in devs:
        blocks = [("p", safe_text(_device_line(d)))]
        rows = [r for r in merged["rows"] if r["device_name"] == d["name"]]
        if rows:
            blocks.append(("table", *_table(action, rows, device_column=False)))
        out.append((f"Device {safe_text(d['name'])}", blocks))
    return out


def output_paths(out: str) -> list[Path]:
    p = Path(out)
    if p.suffix != ".json":
        raise ConfigError(f"--out {safe_text(out, 80)}: give a .json name (X.md and X.html go beside it)")
    return [p, p.with_suffix(".md"), p.with_suffix(".html")]
