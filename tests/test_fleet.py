"""``edgeport fleet`` on a real local Ray cluster: a head plus two device nodes, alpha and beta, on 127.0.0.1.

Each node is its own ``ray start --block`` process in its own session; teardown kills exactly those
sessions' process groups (never ``ray stop``, which would end every Ray cluster on the machine).
Each device node gets its own bundle cache (``EDGEPORT_FLEET_CACHE``), as separate boards would have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the fleet needs ray: pip install 'edgeport[fleet]'")

from edgeport.cli import main  # noqa: E402
from edgeport.device import fleet as fleet_mod  # noqa: E402
from edgeport.errors import ConfigError  # noqa: E402

RAY_CLI = Path(sys.executable).with_name("ray")
# Lean nodes: one CPU each, the smallest object store Ray accepts, no dashboard, no usage report.
# (Ray itself turns 127.0.0.1 into the machine's reachable address for node IPs.)
NODE_ARGS = ("--num-cpus=1", "--object-store-memory=78643200", "--disable-usage-stats")
FAST = ("--backends", "onnxruntime", "--batch-sizes", "1", "--min-seconds", "0.05", "--quiet")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_groups(sid: int) -> set[int]:
    """Process groups of every process in session ``sid`` (Ray workers start their own groups in it)."""
    groups = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    groups.add(os.getpgid(int(entry)))
            except OSError:
                pass
    return groups


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.temp = Path(tempfile.mkdtemp(prefix="rf-", dir="/tmp"))  # short: Ray's unix socket paths
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.procs: dict[str, subprocess.Popen] = {}
        # Ray reads and writes ~/.ray (auth token): every node and the driver get a home of their own,
        # so the user's ~/.ray neither leaks in nor gets written to.
        self.home = root / "home"
        self.home.mkdir(exist_ok=True)

    def cache(self, name: str) -> Path:
        return self.root / f"cache-{name}"

    def _spawn(self, name: str, args: list[str], env: dict | None = None) -> None:
        with open(self.root / f"{name}.log", "ab") as log:
            cmd = [str(RAY_CLI), "start", "--block", *args, *NODE_ARGS]
            self.procs[name] = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**(env or os.environ), "HOME": str(self.home)},
                start_new_session=True,
            )

    def start_head(self) -> None:
        self._spawn(
            "head", ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp}"]
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.procs["head"].poll() is not None:
                    raise RuntimeError(f"the Ray head did not start; see {self.root / 'head.log'}") from None
                time.sleep(0.2)

    def start_device(self, name: str) -> None:
        env = {**os.environ, fleet_mod.CACHE_ENV: str(self.cache(name))}
        resources = json.dumps({f"edgeport-device:{name}": 1})
        self._spawn(name, [f"--address={self.address}", "--resources", resources], env)

    def wait_for(self, names, timeout: float = 120) -> None:
        ray.init(address=self.address, logging_level=logging.ERROR, log_to_driver=False)
        try:
            deadline = time.monotonic() + timeout
            while not set(names) <= set(fleet_mod.device_nodes(ray.nodes())):
                dead = [n for n, p in self.procs.items() if p.poll() is not None]
                if dead or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"device nodes {names} did not join (exited: {dead}); logs in {self.root}"
                    )
                time.sleep(0.3)
        finally:
            ray.shutdown()

    def ensure(self, name: str) -> None:
        """Restart device ``name`` if an earlier test killed it."""
        if name not in self.procs:
            self.start_device(name)
            self.wait_for([name])

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        groups = _session_groups(proc.pid) | {proc.pid}
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait(timeout=30)
        for pgid in _session_groups(proc.pid) - groups:  # a worker that forked meanwhile
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not RAY_CLI.is_file():
        pytest.skip(f"no ray command beside {sys.executable}")
    c = Cluster(tmp_path_factory.mktemp("fleet"))
    home = os.environ.get("HOME")
    os.environ["HOME"] = str(c.home)  # the driver (ray.init in this process) too, for this module only
    try:
        c.start_head()
        for name in ("alpha", "beta"):  # one at a time: nodes starting together race for socket names
            c.start_device(name)
            c.wait_for([name])
        yield c
    finally:
        for name in [n for n in c.procs if n != "head"] + ["head"] * ("head" in c.procs):
            c.kill(name)
        shutil.rmtree(c.temp, ignore_errors=True)
        if home is None:
            os.environ.pop("HOME", None)
        else:
            os.environ["HOME"] = home


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from edgeport.config import ExportConfig
    from edgeport.export.api import export

    out = tmp_path_factory.mktemp("fleet-bundle") / "b"
    export(
        model_ref="mnist-mlp",
        random_init=True,
        out=out,
        config=ExportConfig(formats=("onnx",)),
        data="synthetic",
        progress=False,
    )
    return out


def test_blob_round_trip_and_refusals(bundle, tmp_path):
    import io
    import tarfile

    from edgeport.bundle import load_bundle
    from edgeport.errors import BundleError

    key, blob, model = fleet_mod.pack_bundle(bundle)
    assert model == "mnist-mlp" and key == hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    fleet_mod.unpack_bundle(blob, key, tmp_path / "cache" / key)
    copy = load_bundle(tmp_path / "cache" / key)  # every listed file arrived, hashes verified
    assert [a.key for a in copy.artifacts] == [a.key for a in load_bundle(bundle).artifacts]
    with pytest.raises(BundleError, match="does not match its key"):
        fleet_mod.unpack_bundle(blob, "0" * 64, tmp_path / "cache" / ("0" * 64))
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../escaped")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BundleError, match="leaves the bundle"):
        fleet_mod.unpack_bundle(evil.getvalue(), "1" * 64, tmp_path / "cache" / ("1" * 64))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [key]  # no staging leftovers
    assert not (tmp_path / "escaped").exists()


def test_device_names_from_ray_nodes():
    def node(i, alive, *names):
        return {
            "NodeID": f"n{i}",
            "Alive": alive,
            "Resources": {"CPU": 1.0, **{f"edgeport-device:{n}": 1 for n in names}},
        }

    found = fleet_mod.device_nodes(
        [node(1, True, "b"), node(2, False, "a"), node(3, True, "a"), node(4, True)]
    )
    assert {k: v["NodeID"] for k, v in found.items()} == {"a": "n3", "b": "n1"}  # dead nodes ignored
    assert list(fleet_mod.select_devices(found, " b , x*")) == ["b"]
    with pytest.raises(ConfigError, match="carried by several nodes"):
        fleet_mod.device_nodes([node(1, True, "a"), node(2, True, "a")])
    with pytest.raises(ConfigError, match="no device node matches --devices 'c'; the cluster has: a, b$"):
        fleet_mod.select_devices(found, "c")


def test_missing_ray_is_one_line(bundle, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    assert main(["fleet", "bench", str(bundle), "--ray", "127.0.0.1:1", "--quiet"]) == 2
    assert capsys.readouterr().err == "edgeport: error: the fleet needs ray: pip install 'edgeport[fleet]'\n"


def _fresh_caches(cluster) -> None:
    for name in ("alpha", "beta"):
        shutil.rmtree(cluster.cache(name), ignore_errors=True)


def test_bench_merges_both_devices(cluster, bundle, tmp_path, capsys):
    cluster.ensure("beta")
    _fresh_caches(cluster)
    out = tmp_path / "fleet.json"
    rc = main(["fleet", "bench", str(bundle), "--ray", cluster.address, *FAST, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 0, err
    data = json.loads(out.read_text())
    assert data["schema"] == "edgeport.fleet/1" and data["action"] == "bench" and data["failed"] == []
    assert data["model"] == "mnist-mlp"
    assert [d["name"] for d in data["devices"]] == ["alpha", "beta"]
    for d in data["devices"]:
        assert d["ok"] and d["error"] is None and d["fetched_bundle"] is True, d
        assert d["report"]["schema"] == "edgeport.bench/2"
        assert (
            d["report"]["device"]["hostname"] == socket.gethostname() and d["report"]["device"]["cores"] >= 1
        )
        assert d["node_ip"] and d["node_id"] and d["seconds"] > 0
    assert {r["device_name"] for r in data["rows"]} == {"alpha", "beta"}
    assert all(
        r["backend"] == "onnxruntime" and r["batch_size"] == 1 and r["iterations"] > 0 for r in data["rows"]
    )
    md, page = out.with_suffix(".md").read_text(), out.with_suffix(".html").read_text()
    assert (
        "| device | backend |" in md
        and "| alpha | onnxruntime:cpu |" in md
        and "| beta | onnxruntime:cpu |" in md
    )
    assert "<h2>Device alpha</h2>" in page and "<h2>Device beta</h2>" in page and "<table>" in page
    # The files are refused the second time without --force.
    assert main(["fleet", "bench", str(bundle), "--ray", cluster.address, *FAST, "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_second_run_uses_the_node_caches(cluster, bundle):
    cluster.ensure("beta")
    _fresh_caches(cluster)
    opts = dict(
        address=cluster.address, backends=["onnxruntime"], batch_sizes=(1,), min_seconds=0.05, progress=False
    )
    first = fleet_mod.fleet(bundle, **opts)
    second = fleet_mod.fleet(bundle, **opts)
    assert [d["fetched_bundle"] for d in first["devices"]] == [True, True]
    assert [d["fetched_bundle"] for d in second["devices"]] == [False, False]
    assert all(d["ok"] for d in second["devices"])
    key = fleet_mod.pack_bundle(bundle)[0]
    for name in ("alpha", "beta"):  # one content-addressed copy per node, no staging leftovers
        assert sorted(p.name for p in cluster.cache(name).iterdir()) == [key]
    assert "bundle cached" in fleet_mod.to_markdown(second)


def test_devices_selector(cluster, bundle, capsys):
    cluster.ensure("beta")
    rc = main(["fleet", "bench", str(bundle), "--ray", cluster.address, *FAST, "--devices", "al*"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "| alpha | onnxruntime:cpu |" in out and "beta" not in out
    rc = main(
        ["fleet", "selfcheck", str(bundle), "--ray", cluster.address, "--quiet", "--devices", "gamma,delta*"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "no device node matches --devices 'gamma,delta*'" in err and "alpha, beta" in err


def test_unreachable_address_is_one_line(bundle, capfd):
    done: list = []
    call = threading.Thread(
        target=lambda: done.append(
            main(["fleet", "bench", str(bundle), "--ray", f"127.0.0.1:{_free_port()}", "--quiet"])
        ),
        daemon=True,
    )
    call.start()
    call.join(300)  # a hang guard, not a speed check
    assert done, "fleet hung on an unreachable address"
    rc = done[0]
    out, err = capfd.readouterr()
    assert rc == 1
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("edgeport: error: cannot reach the Ray cluster at 127.0.0.1:")


def test_dead_node_fails_alone(cluster, bundle, tmp_path, capsys):
    cluster.ensure("beta")
    shutil.rmtree(cluster.cache("beta"), ignore_errors=True)  # its task unpacking there = it started
    key = fleet_mod.pack_bundle(bundle)[0]
    killed = threading.Event()

    def kill_beta_once_started():
        deadline = time.monotonic() + 60
        while not (cluster.cache("beta") / key).is_dir() and time.monotonic() < deadline:
            time.sleep(0.05)
        cluster.kill("beta")  # the bundle is unpacked there: its task runs (bench, for 6 s at least)
        killed.set()

    killer = threading.Thread(target=kill_beta_once_started, daemon=True)
    killer.start()
    out = tmp_path / "dead.json"
    args = ["--backends", "onnxruntime", "--batch-sizes", "1", "--min-seconds", "6", "--timeout", "120"]
    rc = main(["fleet", "bench", str(bundle), "--ray", cluster.address, *args, "--quiet", "--out", str(out)])
    killer.join(timeout=5)
    stdout, err = capsys.readouterr()
    assert killed.is_set() and rc == 1
    assert stdout.splitlines() == [
        f"-> {out}, {out.with_suffix('.md')}, {out.with_suffix('.html')}"
    ]  # no Ray chatter
    data = json.loads(out.read_text())
    alpha, beta = data["devices"]
    assert alpha["ok"] and alpha["report"]["rows"] and {r["device_name"] for r in data["rows"]} == {"alpha"}
    assert not beta["ok"] and beta["report"] is None and data["failed"] == ["beta"]
    assert beta["error"] in ("node died", fleet_mod._RAY_REASONS["WorkerCrashedError"]), beta["error"]
    failures = [line for line in err.splitlines() if line.startswith("edgeport: device ")]
    assert failures == [f"edgeport: device beta failed: {beta['error']}"]
    assert "device beta failed" in out.with_suffix(".md").read_text()


def test_the_drivers_trust_reaches_the_node_as_an_argument(full_bundle, monkeypatch):
    """A node runs TorchScript only when the driver said so, and says so per bundle, not process-wide."""
    from edgeport.bundle import load_bundle
    from edgeport.errors import BackendUnavailableError

    monkeypatch.delenv("EDGEPORT_TRUST_MODEL_CODE", raising=False)
    opts = {"backends": ["torchscript"], "precisions": ["fp32"], "batch_sizes": [1], "min_seconds": 0.0}
    with pytest.raises(
        BackendUnavailableError, match="torchscript:cpu: TorchScript archives can run arbitrary"
    ):
        fleet_mod._run_action(load_bundle(full_bundle), "bench", opts, False)
    ran = fleet_mod._run_action(load_bundle(full_bundle), "bench", opts, True)
    assert [r["backend"] for r in ran["rows"]] == ["torchscript"]
    assert "EDGEPORT_TRUST_MODEL_CODE" not in os.environ
