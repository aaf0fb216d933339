"""The ``edgeport`` command line.  The only package that knows argparse or exits.

Every subcommand is a thin wrapper over the Python API, grouped by stage:
:mod:`.train_cmds`, :mod:`.export_cmds`, :mod:`.pipeline_cmds` and
:mod:`.runtime_cmds`, with shared argparse pieces in :mod:`.args`.  Handlers
import their heavy dependencies themselves, so ``edgeport predict`` stays light.
Errors an :class:`~edgeport.errors.EdgeportError` describes become one line on
stderr and exit code 2 (usage/config) or 1 (failed checks); no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from ..errors import EdgeportError
from . import export_cmds, pipeline_cmds, runtime_cmds, train_cmds
from .args import PROG, _Formatter, _Parser, raise_config
from .export_cmds import cmd_export, cmd_inspect, cmd_quantize
from .pipeline_cmds import cmd_pipeline, cmd_report
from .runtime_cmds import cmd_bench, cmd_devices, cmd_predict, cmd_verify
from .train_cmds import cmd_predict_grid, cmd_summary, cmd_train

__all__ = [
    "PROG",
    "build_parser",
    "cmd_bench",
    "cmd_devices",
    "cmd_export",
    "cmd_inspect",
    "cmd_pipeline",
    "cmd_predict",
    "cmd_predict_grid",
    "cmd_quantize",
    "cmd_report",
    "cmd_summary",
    "cmd_train",
    "cmd_verify",
    "main",
    "raise_config",
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Take a PyTorch classifier from training to the edge: train, export to "
        "TorchScript/ONNX/OpenVINO (fp32 and int8), verify, benchmark and embed.",
        formatter_class=_Formatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train_cmds.add_parsers(sub)  # summary, train, predict-grid
    export_cmds.add_parsers(sub)  # export, quantize, inspect
    pipeline_cmds.add_parsers(sub)  # pipeline
    runtime_cmds.add_parsers(sub)  # devices, verify, bench, predict
    pipeline_cmds.add_report_parser(sub)  # report, last in --help as it always was
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error
        return int(exc.code or 0)
    with warnings.catch_warnings():
        # TorchScript and torch.ao are deprecated upstream; edgeport uses them on
        # purpose (see README), so their FutureWarnings only add noise here.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        return _run(args)


def _run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except EdgeportError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except MemoryError:
        print(f"{PROG}: error: out of memory; use a smaller batch size", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(
            f"{PROG}: error: {exc.strerror or exc}{where}; check the path and free disk space",
            file=sys.stderr,
        )
        return 1
    except Exception as exc:  # never a traceback unless asked for
        if os.environ.get("EDGEPORT_DEBUG"):
            raise
        print(
            f"{PROG}: internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
            "(set EDGEPORT_DEBUG=1 for a traceback and please report it)",
            file=sys.stderr,
        )
        return 1
