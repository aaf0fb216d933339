"""``bench``, ``verify`` and ``selfcheck`` on a remote device over SSH (``--host USER@HOST[:PORT]``).

The device runs its own edgeport; this module ships the bundle and the command there with asyncssh (no
protocol of our own), over one connection:

1. The bundle is loaded and verified here; its key is the sha256 of ``manifest.json``, which lists every
   other file's sha256, so the key names the whole bundle.
2. ``<remote-edgeport> --version`` must print this edgeport's major.minor, else the error names the
   ``pip install`` to run there.
3. The bundle is copied once into ``~/.cache/edgeport/bundles/<key>/`` there (``~`` resolved remotely;
   ``args.remote_cache`` or ``$EDGEPORT_REMOTE_CACHE`` here replace the root): the verified bytes go into a
   staging folder that gets ``.edgeport-complete`` last and is renamed into place, so a cache folder is
   complete or absent, and one with the marker is reused without sending anything.
4. The same command runs there (``--out`` into a private temporary folder, ``--quiet``, every option
   forwarded; ``--data`` paths name device files) and its JSON comes back over SFTP.  Exit 1 with a JSON
   is a "checks failed" report, returned like a local one; the ``device`` block is the device's own.

Every failure is one :class:`~edgeport.errors.RemoteError` line saying what to do; text from the device
is escaped with :func:`~edgeport.errors.safe_text`.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import json
import os
import re
import secrets
import shlex
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from ..errors import ConfigError, RemoteError, safe_text

try:
    import asyncssh
except ImportError:  # pragma: no cover - asyncssh is part of the remote install
    asyncssh = None

DEFAULT_CACHE = "~/.cache/edgeport/bundles"
CACHE_ENV = "EDGEPORT_REMOTE_CACHE"
COMPLETE = ".edgeport-complete"
MAX_REPORT_BYTES = 64 << 20
COMMANDS = ("bench", "verify", "selfcheck")
_HOST_RE = re.compile(r"(?:([^@\s]+)@)?(\[[0-9A-Fa-f:.]+\]|[^@\s:\[\]/]+)(?::(\d{1,5}))?")


@dataclass(frozen=True)
class Target:
    user: str
    host: str
    port: int | None  # None: asyncssh's default (22, or ~/.ssh/config)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" + (f":{self.port}" if self.port else "")


def parse_host(text: str) -> Target:
    """``USER@HOST[:PORT]`` (USER defaults to the current user; IPv6 as ``[addr]:port``)."""
    m = _HOST_RE.fullmatch(text or "")
    port = int(m.group(3)) if m and m.group(3) else None
    if not m or (port is not None and not 1 <= port <= 65535):
        raise ConfigError(
            f"--host {safe_text(text, 200)!r}: expected USER@HOST[:PORT], e.g. pi@192.168.1.20:22"
        )
    user = m.group(1)
    if user is None:
        try:
            user = getpass.getuser()
        except (OSError, KeyError):
            raise ConfigError("cannot tell the current user name; give it in --host USER@HOST") from None
    return Target(user, m.group(2).strip("[]"), port)


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


@dataclass(frozen=True)
class RemoteHost:
    """A device reached over SSH: ``[user@]host[:port]`` plus how to log in and where edgeport is there.

    ``identity``: a private key file (None: ssh-agent and the default keys); ``known_hosts``: the host
    key file (None: ``~/.ssh/known_hosts``); ``remote_edgeport``: the command on the device;
    ``remote_cache``: the bundle cache folder there (None: ``$EDGEPORT_REMOTE_CACHE`` or ~/.cache).
    """

    host: str
    identity: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    remote_edgeport: str | None = None
    remote_cache: str | None = None


def remote_report(
    bundle_path, command: str, host: RemoteHost, *, options: Sequence[str] = (), progress: bool = True
) -> dict:
    """Run ``edgeport COMMAND BUNDLE [options]`` on ``host`` (the bundle uploaded once, by content hash)
    and return its report dict.  ``options``: the command's own ``--name=value`` words."""
    from ..bundle import load_bundle

    if command not in COMMANDS:
        raise ValueError(f"remote_report: unknown command {command!r}")
    if asyncssh is None:
        raise ConfigError("--host needs the asyncssh package here: pip install asyncssh")
    target = parse_host(host.host)
    connect = _connect_options(host, target)
    exe = _exe(host)
    bundle = load_bundle(bundle_path)
    raw = bundle.manifest_bytes  # the manifest these files were verified against, not a second read
    log = (lambda m: print(f"remote: {m}", file=sys.stderr, flush=True)) if progress else (lambda _m: None)
    job = (command, list(options))
    try:
        report = asyncio.run(_session(host, job, target, connect, exe, bundle, raw, log))
    except (asyncssh.Error, OSError) as exc:
        raise _explain(exc, host, target) from None
    report["bundle"] = str(bundle_path)  # the same content as the cache folder named in report["remote"]
    return report


async def _session(host: RemoteHost, job, target: Target, options: dict, exe: str, bundle, raw: bytes, log):
    async with await asyncssh.connect(target.host, **options) as conn:
        port = conn.get_extra_info("peername")[1]
        version = await _check_version(conn, exe, target)
        async with conn.start_sftp_client() as sftp:
            root = await _cache_root(sftp, host.remote_cache)
            folder, sent, skipped = await _upload(sftp, root, bundle, raw, target, version, log)
            log(f"running `edgeport {job[0]}` on {target}")
            report = await _run(conn, sftp, exe, root, folder, job, target)
    remote = {"host": target.host, "port": port, "user": target.user, "bundle_cache": folder}
    remote |= {"uploaded_bytes": sent, "upload_skipped": skipped, "remote_edgeport_version": version}
    report["remote"] = remote
    return report


def _connect_options(args: RemoteHost, target: Target) -> dict:
    """asyncssh.connect options; :class:`ConfigError` for an unreadable --identity or --known-hosts."""
    options: dict = {"username": target.user, "connect_timeout": float(args.connect_timeout)}
    # keepalives: a device that dies mid-run ends the wait within 2 minutes
    options |= {"keepalive_interval": 30, "keepalive_count_max": 4}
    if target.port:
        options["port"] = target.port
    what, key = "--identity", args.identity
    try:
        if key:
            options["client_keys"] = [asyncssh.read_private_key(key)]
        if args.known_hosts:  # a path (None would switch host key checking off)
            what, key = "--known-hosts", args.known_hosts
            open(key, "rb").close()  # noqa: SIM115 - only checks that it can be read
            options["known_hosts"] = key
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {safe_text(key)}: {exc.strerror or exc}") from None
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise ConfigError(
            f"--identity {safe_text(key)} is not a usable private key ({exc}); give an unencrypted "
            "key, or load it into ssh-agent and omit --identity"
        ) from None
    return options


def _exe(args: RemoteHost) -> str:
    try:
        words = shlex.split(args.remote_edgeport or "edgeport")
    except ValueError as exc:
        raise ConfigError(f"--remote-edgeport {safe_text(args.remote_edgeport)!r}: {exc}") from None
    return " ".join(shlex.quote(w) for w in words) or "edgeport"


async def _check_version(conn, exe: str, target: Target) -> str:
    from .. import __version__

    fix = (
        f"install it there with `pip install 'edgeport=={__version__}'`, or pass --remote-edgeport PATH "
        "if it is installed elsewhere (e.g. /opt/venv/bin/edgeport)"
    )
    res = await conn.run(f"{exe} --version", check=False, encoding="utf-8", errors="replace")
    found = re.search(r"edgeport (\d+)\.(\d+)(\.[0-9A-Za-z.+-]+)?", res.stdout or "")
    if res.exit_status in (126, 127) or not found:
        said = _last_line(res.stderr) or _last_line(res.stdout) or f"exit {res.exit_status}"
        raise RemoteError(
            f"no usable edgeport on {target} (`{safe_text(exe)} --version`: {safe_text(said, 300)}); {fix}"
        )
    version = found.group(0).split()[1]
    if tuple(map(int, found.group(1, 2))) != tuple(map(int, __version__.split(".")[:2])):
        raise RemoteError(
            f"{target} has edgeport {safe_text(version)}, this is {__version__} (major.minor must match); {fix}"
        )
    return version


async def _cache_root(sftp, remote_cache: str | None) -> str:
    root = remote_cache or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
    if root == "~" or root.startswith("~/"):
        home = await sftp.realpath(".")  # an SFTP session starts in the login's home folder
        root = home.rstrip("/") + root[1:]
    await sftp.makedirs(root, exist_ok=True)
    return root.rstrip("/") or "/"


def _bundle_files(bundle) -> list:
    """Every file the manifest lists with a hash (artifact files, extra files, golden I/O)."""
    from ..bundle import FileEntry

    golden = [FileEntry.from_dict(f, "golden.files") for f in (bundle.manifest.golden or {}).get("files", [])]
    return list({e.path: e for e in [*(e for a in bundle.artifacts for e in a.files()), *golden]}.values())


# A staging folder is left behind when the connection drops mid-upload (nothing can remove it then).
# Later uploads remove those older than this; a younger one may belong to an upload in progress.
STALE_STAGING_S = 6 * 3600
_STAGING = re.compile(r"\.[0-9a-f]{64}\.tmp-[0-9a-f]{12}")


async def _sweep_staging(sftp, root: str, now: float | None = None) -> list[str]:
    """Remove staging folders under ``root`` that dropped connections left (older than
    :data:`STALE_STAGING_S`); the names removed.  Errors are ignored: this is housekeeping."""
    now = time.time() if now is None else now
    removed = []
    with contextlib.suppress(asyncssh.Error, OSError):
        for entry in await sftp.readdir(root):
            name, mtime = entry.filename, getattr(entry.attrs, "mtime", None)
            if _STAGING.fullmatch(name) and mtime is not None and now - mtime > STALE_STAGING_S:
                with contextlib.suppress(asyncssh.Error, OSError):
                    await sftp.rmtree(f"{root}/{name}", ignore_errors=True)
                    removed.append(name)
    return removed


async def _upload(sftp, root: str, bundle, raw: bytes, target: Target, version: str, log):
    """(cache folder, bytes sent, whether the upload was skipped)."""
    await _sweep_staging(sftp, root)
    key = hashlib.sha256(raw).hexdigest()
    folder = f"{root}/{key}"
    if await sftp.exists(f"{folder}/{COMPLETE}"):
        log(f"bundle already cached on {target} (0 bytes sent)")
        return folder, 0, True
    entries = _bundle_files(bundle)
    log(f"uploading {_mb(len(raw) + sum(e.bytes for e in entries))} ({len(entries) + 1} files) to {target}")
    staging = f"{root}/.{key}.tmp-{secrets.token_hex(6)}"
    files = [("manifest.json", lambda: raw)]
    files += [(e.path, lambda e=e: bundle.read_file(e.path, e.bytes, e.sha256)) for e in entries]
    sent = 0
    try:
        for rel, read in files:
            await sftp.makedirs(str(PurePosixPath(staging, rel).parent), exist_ok=True)
            data = read()  # verified again as it is read, so the cache never holds other bytes
            async with sftp.open(f"{staging}/{rel}", "wb") as f:
                await f.write(data)
            sent += len(data)
        marker = {"sha256_manifest": key, "files": len(files), "edgeport": version}
        async with sftp.open(f"{staging}/{COMPLETE}", "w") as f:
            await f.write(json.dumps(marker) + "\n")
        if await sftp.exists(folder) and not await sftp.exists(f"{folder}/{COMPLETE}"):
            await sftp.rmtree(folder)  # an incomplete folder some other tool left
        try:
            await sftp.rename(staging, folder)
        except asyncssh.SFTPError:
            if not await sftp.exists(f"{folder}/{COMPLETE}"):  # fine only if another upload just finished
                raise
    finally:
        with contextlib.suppress(asyncssh.Error, OSError):
            if await sftp.exists(staging):
                await sftp.rmtree(staging, ignore_errors=True)
    return folder, sent, False


async def _run(conn, sftp, exe: str, root: str, folder: str, job, target: Target) -> dict:
    command, options = job
    work = f"{root}/.run-{secrets.token_hex(6)}"
    await sftp.mkdir(work)
    out = f"{work}/report.json"
    argv = [command, folder, "--out", out, "--force", "--quiet", *options]
    try:
        cmd = f"{exe} {' '.join(map(shlex.quote, argv))}"
        res = await conn.run(cmd, check=False, encoding="utf-8", errors="replace")
        report = await _read_report(sftp, out, target)
    finally:
        with contextlib.suppress(asyncssh.Error, OSError):
            await sftp.rmtree(work, ignore_errors=True)
    if res.exit_status in (0, 1) and report is not None:  # 1 with a report: checks failed, the CLI says so
        schema = str(report.get("schema", "")) if isinstance(report, dict) else ""
        if not schema.startswith((f"edgeport.{command}/", f"edgeport.{command}-")):  # bench-lm: decoders
            raise RemoteError(f"{target} sent no {command} report; is --remote-edgeport edgeport?")
        return report
    how = f"exit {res.exit_status}" if res.exit_status is not None else f"killed by signal {res.exit_signal}"
    said = _last_line(res.stderr) or ("it wrote no report" if res.exit_status in (0, 1) else "no message")
    raise RemoteError(f"the remote command failed on {target} ({how}): {safe_text(said, 500)}")


async def _read_report(sftp, path: str, target: Target):
    try:
        size = (await sftp.stat(path)).size or 0
    except asyncssh.SFTPNoSuchFile:
        return None
    if size > MAX_REPORT_BYTES:
        raise RemoteError(f"the report on {target} is {_mb(size)}, more than {_mb(MAX_REPORT_BYTES)}")
    async with sftp.open(path, "rb") as f:
        data = await f.read()
    try:
        return _escaped(json.loads(data))
    except (ValueError, RecursionError) as exc:
        raise RemoteError(f"the report from {target} is not JSON ({exc})") from None


def _escaped(obj):
    """``obj`` with every string (keys too) passed through safe_text: the device's text reaches terminals."""
    if isinstance(obj, str):
        return safe_text(obj, 1 << 20)
    if isinstance(obj, list):
        return [_escaped(v) for v in obj]
    if isinstance(obj, dict):
        return {_escaped(k): _escaped(v) for k, v in obj.items()}
    return obj


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _explain(exc: BaseException, args: RemoteHost, target: Target) -> RemoteError:
    """One line for a connection or transfer failure, with what to do."""
    port = target.port or 22
    where, kh = f"{target.host}:{port}", safe_text(args.known_hosts or "~/.ssh/known_hosts")
    reason = safe_text(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc, 300)
    cases = [
        (
            asyncssh.HostKeyNotVerifiable,
            f"the host key of {where} is not in {kh} ({reason}: unknown host, or a "
            f"changed key); check its fingerprint, then `ssh-keyscan -p {port} {target.host} >> {kh}`, or pass "
            "--known-hosts FILE",
        ),
        (
            asyncssh.PermissionDenied,
            f"SSH authentication as {target.user} on {where} failed; pass --identity KEY "
            f"(its public key in {target.user}'s ~/.ssh/authorized_keys there) or load the key into ssh-agent",
        ),
        (asyncssh.SFTPError, f"file transfer with {target} failed: {reason}; check its free space"),
        (asyncssh.Error, f"the SSH connection to {where} failed: {reason}; check the device and rerun"),
        (ConnectionRefusedError, f"connection to {where} refused; check that sshd runs there and the port"),
        (
            (TimeoutError, asyncio.TimeoutError),
            f"no answer from {where} in {args.connect_timeout:g} s; check the "
            "address and the network, or raise --connect-timeout",
        ),
        (socket.gaierror, f"cannot resolve the host name {safe_text(target.host)}; check --host"),
    ]
    fallback = f"cannot reach {where}: {reason}; check the address and the network"
    return RemoteError(next((message for kinds, message in cases if isinstance(exc, kinds)), fallback))


__all__ = ["COMPLETE", "DEFAULT_CACHE", "RemoteHost", "Target", "parse_host", "remote_report"]
