"""The ``edgeport`` command line.  The only package that knows argparse or exits.

Every subcommand is a thin wrapper over the Python API, grouped by stage:
:mod:`.train_cmds`, :mod:`.export_cmds`, :mod:`.pipeline_cmds`,
:mod:`.runtime_cmds` and :mod:`.device_cmds`, with shared argparse pieces in
:mod:`.args`.  Handlers import their heavy dependencies themselves, so
``edgeport predict`` and ``selfcheck`` stay light.

- Errors an :class:`~edgeport.errors.EdgeportError` describes become one line
  on stderr (untrusted text escaped) and exit code 2 (usage/input) or 1
  (failed checks); no traceback unless ``EDGEPORT_DEBUG=1``.
- Every command runs in a worker thread while the main thread waits, so
  Ctrl-C ends it at once (exit 130), even inside a runtime's native code.
- A closed stdout (``edgeport ... | head -0``) ends the command quietly, as Unix tools do.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import warnings
from collections.abc import Sequence

from ..errors import EdgeportError, safe_text
from . import device_cmds, export_cmds, lm_cmds, pipeline_cmds, runtime_cmds, train_cmds
from .args import PROG, _Formatter, _Parser

EPIPE_EXIT = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader went away


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog=PROG,
        description="Take a PyTorch model from training to the edge: export to TorchScript, ONNX, OpenVINO and "
        "ExecuTorch (fp32 and calibrated int8), verify on your data, benchmark on every backend and device, "
        "and embed without torch.",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"edgeport {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    train_cmds.add_parsers(sub)  # summary, train, predict-grid
    export_cmds.add_parsers(sub)  # export, quantize, inspect
    pipeline_cmds.add_parsers(sub)  # pipeline
    runtime_cmds.add_parsers(sub)  # devices, verify, bench, predict
    device_cmds.add_parsers(sub)  # selfcheck, fleet
    lm_cmds.add_parsers(sub)  # generate (text-generation bundles)
    pipeline_cmds.add_report_parser(sub)  # report
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its one-line usage error (or --help)
        return int(exc.code or 0)
    if getattr(args, "main_thread", False) or threading.current_thread() is not threading.main_thread():
        return _run(args)
    result: dict = {}
    worker = threading.Thread(
        target=lambda: result.setdefault("rc", _run(args)), name="edgeport-command", daemon=True
    )
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        _interrupted()
    return result.get("rc", 1)


def _interrupted() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
    os._exit(130)  # the worker may be deep in native code; staging folders are cleaned by the next run


def _quiet_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _run(args) -> int:
    with warnings.catch_warnings():
        # TorchScript and torch.ao are deprecated upstream; edgeport uses them on purpose.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.")
        try:
            rc = int(args.func(args) or 0)
            sys.stdout.flush()
            return rc
        except BrokenPipeError:
            _quiet_stdout()
            return EPIPE_EXIT
        except EdgeportError as exc:
            if os.environ.get("EDGEPORT_DEBUG"):
                import traceback

                traceback.print_exc()
            _err(f"error: {exc}")
            return exc.exit_code
        except KeyboardInterrupt:
            _err("interrupted")
            return 130
        except MemoryError:
            _err("error: out of memory; use a smaller batch size or fewer samples")
            return 1
        except OSError as exc:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            _err(f"error: {exc.strerror or exc}{where}; check the path and free disk space")
            return 1
        except Exception as exc:  # never a traceback unless asked for
            if os.environ.get("EDGEPORT_DEBUG"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            _err(
                f"internal error: {type(exc).__name__}: {first} "
                "(set EDGEPORT_DEBUG=1 for a traceback and please report it)"
            )
            return 1


def _err(text: str) -> None:
    try:
        print(f"{PROG}: {safe_text(text)}", file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


__all__ = ["PROG", "build_parser", "main"]
