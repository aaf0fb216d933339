"""argparse pieces every subcommand shares: bounded value types, the parser and help formatter
classes, and the option groups several commands use (model, data, selection, output files)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

PROG = "edgeport"
MAX_SEED = 2**32 - 1


def _number(text: str, convert: Callable[[str], float], lo, hi, what: str = ""):
    """Parse ``text`` with ``convert`` (int or float) and insist on ``lo <= value <= hi``."""
    whole = convert is int
    try:
        value = convert(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"expected {'a whole number' if whole else 'a number'}, got {text[:40]!r}"
        ) from None
    if not whole and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text[:40]!r}")
    if not lo <= value <= hi:
        rng = f"between {lo:g} and {hi:g}" if not whole else f"between {lo} and {hi:,}"
        raise argparse.ArgumentTypeError(f"expected {what or 'a number'} {rng}, got {text[:40]}")
    return value


def bounded_int(lo: int, hi: int, what: str = "a whole number"):
    def parse(text: str) -> int:
        return _number(text, int, lo, hi, what)

    parse.__name__ = f"int {lo}..{hi}"
    return parse


def bounded_float(lo: float, hi: float, *, lo_open: bool = False):
    def parse(text: str) -> float:
        value = _number(text, float, lo, hi)
        if lo_open and value <= lo:
            raise argparse.ArgumentTypeError(f"expected a number > {lo:g}, got {text[:40]}")
        return value

    parse.__name__ = f"float {lo}..{hi}"
    return parse


positive_int = bounded_int(1, 1 << 31)
threads_int = bounded_int(1, 256, "a thread count")
seed_int = bounded_int(0, MAX_SEED, "a seed")
batch_int = bounded_int(1, 65536, "a batch size")
seconds_float = bounded_float(0.0, 3600.0)
points_float = bounded_float(0.0, 100.0)
atol_float = bounded_float(0.0, 1.0, lo_open=True)
pixels_int = bounded_int(1, 1_000_000_000, "a pixel count")


def csv_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected a comma-separated list")
    return items


def batch_list(text: str) -> list[int]:
    return [batch_int(t) for t in csv_list(text)]


def shape_list(text: str) -> list[int]:
    return [bounded_int(1, 1 << 20, "a size")(t) for t in csv_list(text)]


def float_list(text: str) -> list[float]:
    return [bounded_float(-1e6, 1e6)(t) for t in csv_list(text)]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, unless there is none or the help already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if (
            action.default is None
            or action.default is False
            or action.default == argparse.SUPPRESS
            or "default" in text
        ):
            return text
        default = action.default
        if isinstance(default, (list, tuple)):
            return f"{text} (default: {','.join(map(str, default))})"
        return super()._get_help_string(action)


# Arguments whose value is free text: only "" is refused (a prompt of spaces is text).
_FREE_TEXT = frozenset({"prompt"})


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``edgeport CMD: error: ...; see edgeport CMD --help``.

    An empty (or blank) value is refused for every option and argument: ``--host ""`` is not
    "no host", it is a mistake (an unset shell variable), and running locally instead would
    report on the wrong machine.
    """

    def parse_known_args(self, args=None, namespace=None):
        ns, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            if action.dest in (argparse.SUPPRESS, "help"):
                continue
            value = getattr(ns, action.dest, None)
            items = value if isinstance(value, list) else [value]
            blank = (lambda v: v == "") if action.dest in _FREE_TEXT else (lambda v: not v.strip())
            if any(isinstance(v, str) and blank(v) for v in items):
                name = "/".join(action.option_strings) or action.dest
                self.error(f"{name}: an empty value; give a value, or leave the option out")
        return ns, extras

    def error(self, message: str):
        from ..errors import safe_text

        self.exit(2, f"{self.prog}: error: {safe_text(message, 500)}; see `{self.prog} --help`\n")


def raise_config(message: str) -> None:
    from ..errors import ConfigError

    raise ConfigError(message)


# --------------------------------------------------------------------------- option groups


def data_dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        default=None,
        help="MNIST root holding MNIST/raw/ (default: $EDGEPORT_MNIST_ROOT, else ~/.cache/edgeport/mnist, "
        "downloaded if missing)",
    )


def data_args(p: argparse.ArgumentParser, *, split: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="mnist[:split], imagefolder:DIR, npz:FILE, coco:FILE.json, segfolder:DIR, wavfolder:DIR or "
        "synthetic[:N]" + ("; split by recorded indices into calibration and eval" if split else ""),
    )
    if split:
        g.add_argument(
            "--calibration-data",
            default=None,
            metavar="SOURCE",
            help="calibrate on this source (with --eval-data); never used for the verdict",
        )
        g.add_argument(
            "--eval-data",
            default=None,
            metavar="SOURCE",
            help="parity, accuracy and golden I/O on this source",
        )
    g.add_argument(
        "--max-pixels",
        type=pixels_int,
        default=None,
        help="refuse (or, for JPEG, downscale while decoding) images above this many pixels "
        "(default: $EDGEPORT_MAX_PIXELS, else 25,000,000)",
    )
    data_dir_arg(g)


def trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--trust-model-code",
        action="store_true",
        help="allow artifacts that run code (TorchScript, pickled models, pkg.mod:factory) from a bundle this "
        "process did not write; same as EDGEPORT_TRUST_MODEL_CODE=1",
    )


def trusted(args) -> bool:
    """``--trust-model-code``, else the environment's opt-in (``EDGEPORT_TRUST_MODEL_CODE=1``) as the default.
    Commands pass the answer on as an argument; none sets the variable for the rest of the process."""
    import os

    from ..trust import TRUST_ENV

    return bool(getattr(args, "trust_model_code", False)) or os.environ.get(TRUST_ENV) == "1"


def host_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("remote device")
    g.add_argument(
        "--host",
        default=None,
        metavar="USER@HOST[:PORT]",
        help="run on this device over SSH: the bundle is copied once (content-addressed), the same "
        "command runs there and its JSON comes back",
    )
    g.add_argument(
        "--identity", default=None, metavar="KEY", help="SSH private key (default: ssh-agent / ~/.ssh)"
    )
    g.add_argument(
        "--known-hosts",
        default=None,
        metavar="FILE",
        help="known_hosts file to check the host key against (default: ~/.ssh/known_hosts)",
    )
    g.add_argument(
        "--remote-edgeport",
        default="edgeport",
        metavar="CMD",
        help="the edgeport command on the device (e.g. /opt/venv/bin/edgeport)",
    )
    g.add_argument(
        "--connect-timeout", type=bounded_float(0.1, 600.0), default=10.0, help="seconds to connect"
    )
    g.add_argument(
        "--remote-cache",
        default=None,
        metavar="DIR",
        help="bundle cache folder on the device (default: $EDGEPORT_REMOTE_CACHE, else "
        "~/.cache/edgeport/bundles)",
    )


def selection_args(p: argparse.ArgumentParser, *, bundle: bool = True) -> None:
    if bundle:
        p.add_argument("bundle", help="bundle folder written by `edgeport export`")
    from ..runtime.registry import BACKENDS

    p.add_argument(
        "--backends",
        type=csv_list,
        default=None,
        help=f"comma list: {','.join(BACKENDS)} (default: all available)",
    )
    p.add_argument(
        "--precisions",
        type=csv_list,
        default=None,
        help="comma list: fp32,fp16,int8 (default: all in the bundle)",
    )
    p.add_argument(
        "--devices",
        type=csv_list,
        default=None,
        help="comma list, e.g. cpu,cuda,auto (default: every usable device)",
    )
    p.add_argument("--force", action="store_true", help="overwrite the output files if they exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    trust_arg(p)


def check_outputs(paths: list[str], force: bool, bundle=None) -> None:
    """Output files: refused if they exist (without ``force``) or lie inside ``bundle``, the one being read."""
    from ..fsutil import check_new_files

    check_new_files(paths, force, protect=bundle)


def _value(text: str):
    import json

    try:
        return json.loads(text)
    except ValueError:
        return {"true": True, "false": False, "none": None, "off": None}.get(text.lower(), text)


def key_values(items, flag: str) -> dict:
    """``["a=1", "b=xyxy"]`` -> ``{"a": 1, "b": "xyxy"}`` (JSON values, else the text)."""
    out = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise_config(f"{flag} {str(item)[:60]!r}: expected NAME=VALUE")
        out[key.strip()] = _value(value.strip())
    return out


def gate_values(items) -> dict:
    """``--gate [PRECISION.]METRIC=VALUE|off`` -> {key: threshold or None}."""
    out = {}
    for key, value in key_values(items, "--gate").items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise_config(
                f"--gate {key}={value!r}: the threshold must be a number (a fraction: 0.01 = 1 point) or off"
            )
        if value is not None and not math.isfinite(value):
            raise_config(f"--gate {key}: the threshold must be finite")
        out[key] = None if value is None else float(value)
    return out


def gate_arg(p) -> None:
    p.add_argument(
        "--gate",
        action="append",
        default=None,
        metavar="[PRECISION.]METRIC=VALUE",
        help="override one of the task's gates, e.g. miou_drop=0.01, int8.matched_recall=0.9 or "
        "fp32.agreement=off; decoders: int8.ppl_increase=0.02 (fractions: 0.01 = 1 point; repeatable; "
        "see the README's task table)",
    )


def task_args(p) -> None:
    from ..tasks.registry import names

    g = p.add_argument_group("task (what the outputs mean and how they are judged)")
    g.add_argument(
        "--task",
        choices=[*names(), "text-generation"],
        default=None,
        help="the model's task (default: classify when an output looks like class scores, else asked for; "
        "text-generation: a decoder with a KV cache, implied by --model hf:DIR or tiny-lm)",
    )
    g.add_argument(
        "--task-param",
        action="append",
        default=None,
        metavar="NAME=VALUE",
        help="a task parameter, e.g. box_format=cxcywh, score_threshold=0.3, ignore_index=255 (repeatable)",
    )
    g.add_argument(
        "--dim",
        action="append",
        default=None,
        metavar="NAME=MIN..MAX[@EXAMPLE]",
        help="bounds of a named dynamic dim used in --input shapes, e.g. --input ids:batch,seq:int64 "
        "--dim seq=4..512 (EXAMPLE: the size to export at; repeatable)",
    )
    gate_arg(g)


# --------------------------------------------------------------------------- --host (edgeport.device.remote)


def forwarded_options(args, command: str) -> list[str]:
    """The command's options as ``--name=value`` words (so a value may start with ``-``), as given here."""
    names = ["backends", "precisions", "devices"]
    if command == "bench":
        names += ["batch_sizes", "threads", "warmup_seconds", "min_iters", "min_seconds"]
        names += ["prompt_lengths", "new_tokens", "repeats"]  # text-generation bundles
    elif command == "verify":
        names += ["data", "data_dir", "atol", "max_accuracy_drop", "limit", "max_pixels"]
    out = ["--trust-model-code"] if getattr(args, "trust_model_code", False) else []
    if command == "verify":
        out += [f"--gate={g}" for g in getattr(args, "gate", None) or ()]  # repeatable: one word each
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            text = ",".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
            out.append(f"--{name.replace('_', '-')}={text}")
    return out


def remote_report_for(args, command: str) -> dict:
    """``edgeport COMMAND --host ...``: the same command run on the device, its report."""
    from ..device.remote import RemoteHost, remote_report

    host = RemoteHost(
        host=args.host,
        identity=args.identity,
        known_hosts=args.known_hosts,
        connect_timeout=float(args.connect_timeout),
        remote_edgeport=args.remote_edgeport,
        remote_cache=getattr(args, "remote_cache", None),
    )
    return remote_report(
        args.bundle, command, host, options=forwarded_options(args, command), progress=not args.quiet
    )
