"""``--host``: bench, verify and selfcheck on a remote device, against a real OpenSSH sshd on 127.0.0.1.

The sshd runs as this user on a free high port with its own host key and an
authorized_keys file of its own; the "device" runs this venv's edgeport (by
absolute path, with --remote-edgeport), with HOME and the bundle cache in
temporary folders, so nothing outside the test's folders is touched (except
/run/sshd, which sshd needs when run as root and Debian's init script creates).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import edgeport
from edgeport.cli import main
from edgeport.cli.args import forwarded_options
from edgeport.device.remote import COMPLETE, RemoteHost, parse_host, remote_report
from edgeport.errors import ConfigError, RemoteError

SSHD = Path("/usr/sbin/sshd")
EDGEPORT = str(Path(sys.executable).parent / "edgeport")
BENCH = [
    "--backends",
    "onnxruntime",
    "--devices",
    "cpu",
    "--batch-sizes",
    "1",
    "--min-seconds",
    "0.05",
    "--min-iters",
    "5",
    "--warmup-seconds",
    "0",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)], check=True
    )


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not SSHD.is_file():
        pytest.skip("needs OpenSSH's sshd at /usr/sbin/sshd: apt-get install -y openssh-server")
    if shutil.which("ssh-keygen") is None:
        pytest.skip("needs ssh-keygen: apt-get install -y openssh-client")
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        Path("/run/sshd").mkdir(mode=0o755)  # sshd's privilege-separation folder
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key", "stranger_key"):
        _keygen(d / name)
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    (d / "home").mkdir()
    port = _free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPermitRootLogin yes\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nStrictModes no\nUsePAM no\nSubsystem sftp internal-sftp\n"
        f"SetEnv HOME={d / 'home'}\nLogLevel ERROR\n"
    )
    key_type, key = (d / "host_key.pub").read_text().split()[:2]
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {key_type} {key}\n")
    (d / "empty_known_hosts").write_text("")
    log = open(d / "sshd.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"sshd did not start: {(d / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.05)
    yield {
        "dir": d,
        "port": port,
        "host": f"root@127.0.0.1:{port}" if os.geteuid() == 0 else f"127.0.0.1:{port}",
    }
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    log.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from edgeport.config import ExportConfig
    from edgeport.export.api import export

    out = tmp_path_factory.mktemp("remote_bundle") / "b"
    export(
        model_ref="mnist-mlp",
        random_init=True,
        out=out,
        config=ExportConfig(formats=("onnx",)),
        data="synthetic",
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """The remote bundle cache (same machine), via $EDGEPORT_REMOTE_CACHE read by the local side."""
    root = tmp_path_factory.mktemp("remote_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEPORT_REMOTE_CACHE", str(root))
        yield root


def host_opts(sshd, *, key="client_key", known_hosts="known_hosts", edgeport=EDGEPORT) -> list[str]:
    d = sshd["dir"]
    return [
        "--host",
        sshd["host"],
        "--identity",
        str(d / key),
        "--known-hosts",
        str(d / known_hosts),
        "--remote-edgeport",
        edgeport,
        "--connect-timeout",
        "10",
    ]


@pytest.fixture(scope="module")
def first_bench(sshd, bundle, cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "remote.json"
    t0 = time.perf_counter()
    rc = main(["bench", str(bundle), *BENCH, *host_opts(sshd), "--out", str(out)])
    assert rc == 0
    return json.loads(out.read_text()), time.perf_counter() - t0


def test_bench_over_ssh_has_the_local_schema(first_bench, bundle, tmp_path):
    report, _ = first_bench
    local = tmp_path / "local.json"
    assert main(["bench", str(bundle), *BENCH, "--quiet", "--out", str(local)]) == 0
    local_report = json.loads(local.read_text())
    assert set(report) == set(local_report) | {"remote"}
    assert report["schema"] == local_report["schema"]
    assert {"hostname", "arch", "cpu"} <= set(report["device"])
    assert [(r["backend"], r["precision"], r["batch_size"]) for r in report["rows"]] == [
        ("onnxruntime", "fp32", 1)
    ]
    assert report["rows"][0]["iterations"] >= 5
    assert report["bundle"] == str(bundle)
    remote = report["remote"]
    assert remote["host"] == "127.0.0.1" and remote["port"] > 1024
    assert remote["remote_edgeport_version"].split(".")[:2] == edgeport.__version__.split(".")[:2]


def test_bundle_is_uploaded_once_then_cached(first_bench, sshd, bundle, cache, tmp_path, capsys):
    first, seconds = first_bench
    assert first["remote"]["upload_skipped"] is False
    files = [p for p in bundle.rglob("*") if p.is_file() and p.name != ".edgeport"]
    assert first["remote"]["uploaded_bytes"] == sum(p.stat().st_size for p in files) > 0
    folder = Path(first["remote"]["bundle_cache"])
    assert folder.parent == cache and (folder / COMPLETE).is_file()
    assert (folder / "onnx" / "model.onnx").read_bytes() == (bundle / "onnx" / "model.onnx").read_bytes()
    capsys.readouterr()
    out = tmp_path / "again.json"
    assert main(["bench", str(bundle), *BENCH, *host_opts(sshd), "--out", str(out)]) == 0
    second = json.loads(out.read_text())["remote"]
    assert second["uploaded_bytes"] == 0 and second["upload_skipped"] is True
    assert second["bundle_cache"] == str(folder)
    assert "bundle already cached on" in capsys.readouterr().err
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging or run folders left
    print(f"first run: {first['remote']['uploaded_bytes']} bytes in {seconds:.1f} s", file=sys.__stderr__)


def test_selfcheck_over_ssh_passes(sshd, bundle, cache, tmp_path):
    out = tmp_path / "selfcheck.json"
    key = hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()  # the cache folder's name
    cached = (cache / key / COMPLETE).is_file()
    assert main(["selfcheck", str(bundle), *host_opts(sshd), "--quiet", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["passed"] is True
    assert ("onnx", "fp32") in {(r["format"], r["precision"]) for r in report["rows"]}
    assert report["remote"]["upload_skipped"] is cached  # sent only if an earlier test had not


def test_failed_checks_come_back_as_a_report(sshd, bundle, cache, tmp_path, capsys):
    out = tmp_path / "verify.json"
    argv = [
        "verify",
        str(bundle),
        "--data",
        "synthetic:32",
        "--atol",
        "1e-30",
        "--backends",
        "onnxruntime",
        "--devices",
        "cpu",
        *host_opts(sshd),
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(argv) == 1  # the remote exit 1 with a JSON is a report; the CLI raises afterwards
    report = json.loads(out.read_text())
    assert report["passed"] is False and report["rows"][0]["passed"] is False
    assert report["data"]["n"] == 32 and Path(report["remote"]["bundle_cache"]).parent == cache
    assert "verify failed" in capsys.readouterr().err


def _one_line_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


def test_closed_port_is_one_line(sshd, bundle, capsys):
    opts = host_opts(sshd)
    opts[1] = f"127.0.0.1:{_free_port()}"
    err = _one_line_error(capsys, ["selfcheck", str(bundle), *opts, "--quiet"])
    assert "refused" in err


def test_silent_server_times_out_in_one_line(sshd, bundle, capsys):
    with socket.socket() as silent:  # accepts TCP (the kernel's backlog) but never speaks SSH
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        opts = host_opts(sshd)
        opts[1] = f"127.0.0.1:{silent.getsockname()[1]}"
        opts[-1] = "0.5"
        err = _one_line_error(capsys, ["selfcheck", str(bundle), *opts, "--quiet"])
    assert "no answer from" in err and "--connect-timeout" in err


def test_bad_host_syntax_is_a_usage_error(bundle, capsys):
    capsys.readouterr()
    assert main(["selfcheck", str(bundle), "--host", "pi@board:99999", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "USER@HOST[:PORT]" in err and len(err.strip().splitlines()) == 1


def test_wrong_key_is_one_line(sshd, bundle, capsys):
    err = _one_line_error(capsys, ["selfcheck", str(bundle), *host_opts(sshd, key="stranger_key"), "--quiet"])
    assert "authentication" in err and "--identity" in err


def test_unknown_host_key_is_one_line(sshd, bundle, capsys):
    opts = host_opts(sshd, known_hosts="empty_known_hosts")
    err = _one_line_error(capsys, ["selfcheck", str(bundle), *opts, "--quiet"])
    assert "host key" in err and "ssh-keyscan" in err and "--known-hosts" in err


def test_missing_remote_edgeport_says_what_to_install(sshd, bundle, capsys):
    opts = host_opts(sshd, edgeport="/nonexistent/edgeport")
    err = _one_line_error(capsys, ["selfcheck", str(bundle), *opts, "--quiet"])
    assert "pip install 'edgeport==" in err and "--remote-edgeport" in err


def test_other_remote_version_is_refused(sshd, bundle, capsys):
    opts = host_opts(sshd, edgeport="echo edgeport 99.1.0")  # a command string, as on a device
    err = _one_line_error(capsys, ["selfcheck", str(bundle), *opts, "--quiet"])
    assert "99.1.0" in err and "pip install 'edgeport==" in err


def test_remote_failure_names_the_remote_message(sshd, bundle, cache, capsys):
    argv = ["verify", str(bundle), "--data", "npz:/nonexistent.npz", *host_opts(sshd), "--quiet"]
    err = _one_line_error(capsys, argv)
    assert "the remote command failed on" in err and "(exit 2)" in err
    assert "edgeport: error:" in err and "nonexistent.npz" in err


def _ns(**kw) -> argparse.Namespace:
    base = {"backends": None, "precisions": None, "devices": None, "trust_model_code": False}
    return argparse.Namespace(**(base | kw))


def test_remote_report_direct_with_cache_attribute(sshd, bundle, tmp_path):
    d = sshd["dir"]
    host = RemoteHost(
        host=sshd["host"],
        identity=str(d / "client_key"),
        known_hosts=str(d / "known_hosts"),
        remote_edgeport=EDGEPORT,
        remote_cache=str(tmp_path / "c"),
    )
    opts = ["--backends=onnxruntime", "--devices=cpu"]
    report = remote_report(bundle, "selfcheck", host, options=opts, progress=False)
    assert report["passed"] is True and report["remote"]["uploaded_bytes"] > 0
    assert [(r["backend"], r["device"]) for r in report["rows"]] == [("onnxruntime", "cpu")]
    folder = Path(report["remote"]["bundle_cache"])
    assert folder.parent == tmp_path / "c"
    (folder / COMPLETE).unlink()  # as if an older writer died: the folder is replaced, not trusted
    (folder / "onnx" / "model.onnx").write_bytes(b"junk")
    again = remote_report(bundle, "selfcheck", host, options=opts, progress=False)
    assert again["remote"]["uploaded_bytes"] == report["remote"]["uploaded_bytes"] and again["passed"] is True
    assert (folder / "onnx" / "model.onnx").read_bytes() == (bundle / "onnx" / "model.onnx").read_bytes()


FAKE_EDGEPORT = """#!/bin/sh
# a stand-in device edgeport: $1 command, $2 bundle folder, $3 --out, $4 the report path
[ "$1" = --version ] && { echo "edgeport $FAKE_VERSION"; exit 0; }
[ -n "$FAKE_REPORT" ] && printf '%s' "$FAKE_REPORT" > "$4"
printf 'progress\\nedgeport: error: %s\\n' "$FAKE_ERROR" >&2
exit "$FAKE_EXIT"
"""


@pytest.mark.parametrize(
    ("report", "exit_code", "expected"),
    [
        ('{"schema": "edgeport.selfcheck/1", "rows": [], "note": "\\u001b[2Jred"}', 1, None),
        ('{"schema": "edgeport.bench/2"}', 0, "sent no selfcheck report"),
        ("not json", 0, "is not JSON"),
        ("", 0, "(exit 0): edgeport: error: the fake failed"),
        ('{"schema": "edgeport.selfcheck/1"}', 3, "(exit 3): edgeport: error: the fake failed"),
    ],
)
def test_what_the_device_sends_back(sshd, bundle, tmp_path, report, exit_code, expected):
    fake = tmp_path / "fake-edgeport"
    fake.write_text(FAKE_EDGEPORT)
    fake.chmod(0o755)
    version = edgeport.__version__
    env = {
        "FAKE_VERSION": version,
        "FAKE_REPORT": report,
        "FAKE_EXIT": str(exit_code),
        "FAKE_ERROR": "the fake failed",
    }
    d = sshd["dir"]
    prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    host = RemoteHost(
        host=sshd["host"],
        identity=str(d / "client_key"),
        known_hosts=str(d / "known_hosts"),
        remote_edgeport=f"env {prefix} {fake}",
        remote_cache=str(tmp_path / "c"),
    )
    if expected is None:  # exit 1 with a report: a normal "checks failed" result, text escaped
        got = remote_report(bundle, "selfcheck", host, progress=False)
        assert got["note"] == "\\x1b[2Jred" and got["remote"]["remote_edgeport_version"] == version
        return
    with pytest.raises(RemoteError) as info:
        remote_report(bundle, "selfcheck", host, progress=False)
    assert expected in str(info.value) and "\n" not in str(info.value)
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.startswith(".run-")]


def test_parse_host_and_forwarded_options():
    t = parse_host("pi@[::1]:2222")
    assert (t.user, t.host, t.port) == ("pi", "::1", 2222)
    assert parse_host("board").port is None and parse_host("board").user
    for bad in ("", "pi@", "pi@board:0", "pi@board:70000", "a b@c", "pi@board:22:1"):
        with pytest.raises(ConfigError):
            parse_host(bad)
    args = _ns(
        data="-odd name",
        data_dir=None,
        atol=1e-6,
        max_accuracy_drop=0.2,
        limit=5,
        max_pixels=None,
        backends=["onnxruntime"],
        trust_model_code=True,
    )
    assert forwarded_options(args, "verify") == [
        "--trust-model-code",
        "--backends=onnxruntime",
        "--data=-odd name",
        "--atol=1e-06",
        "--max-accuracy-drop=0.2",
        "--limit=5",
    ]
    bench = _ns(batch_sizes=[1, 32], threads=None, warmup_seconds=0.0, min_iters=5, min_seconds=0.05)
    assert forwarded_options(bench, "bench") == [
        "--batch-sizes=1,32",
        "--warmup-seconds=0.0",
        "--min-iters=5",
        "--min-seconds=0.05",
    ]
    assert "--trust-model-code" not in forwarded_options(_ns(), "selfcheck")
    assert RemoteError.exit_code == 1
