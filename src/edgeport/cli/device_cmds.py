"""Device commands: selfcheck (torch-free, from golden I/O) and fleet (Ray)."""

from __future__ import annotations

import argparse
import sys

from ..bundle import load_bundle
from ..errors import safe_text
from .args import (
    _Formatter,
    batch_list,
    bounded_float,
    check_outputs,
    csv_list,
    host_args,
    selection_args,
    trusted,
)


def cmd_selfcheck(args: argparse.Namespace) -> int:
    from ..device.selfcheck import print_table, raise_if_failed, selfcheck
    from ..fsutil import write_json

    if args.out:
        check_outputs([args.out], args.force, args.bundle)
    if args.host is not None:
        from .args import remote_report_for

        report = remote_report_for(args, "selfcheck")
    else:
        report = selfcheck(
            load_bundle(args.bundle, trust_model_code=trusted(args)),
            backends=args.backends,
            precisions=args.precisions,
            devices=args.devices,
        )
    print_table(report)
    if args.out:
        write_json(args.out, report)
        print(f"-> {safe_text(args.out)}")
    raise_if_failed(report)
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    """``edgeport fleet``: 0 only if every selected device produced a (passing) result."""
    from ..device.fleet import fleet, output_paths, sections, to_markdown
    from ..fsutil import atomic_write, check_new_files, write_json
    from ..report.render import to_html

    outs = output_paths(args.out) if args.out else []
    check_new_files(outs, args.force, protect=args.bundle)
    sel = {"address": args.ray, "action": args.action, "selector": args.devices, "backends": args.backends}
    sel |= {"precisions": args.precisions, "batch_sizes": args.batch_sizes, "min_seconds": args.min_seconds}
    merged = fleet(
        args.bundle, **sel, timeout=args.timeout, progress=not args.quiet, trust_model_code=trusted(args)
    )
    md = to_markdown(merged)
    if outs:
        write_json(outs[0], merged)
        atomic_write(outs[1], md)
        atomic_write(outs[2], to_html(sections(merged)))
        print(f"-> {', '.join(safe_text(p) for p in outs)}")
    else:
        sys.stdout.write(md)
    sys.stdout.flush()
    for d in merged["devices"]:
        if not d["ok"]:
            print(f"edgeport: device {safe_text(d['name'])} failed: {safe_text(d['error'])}", file=sys.stderr)
    return 1 if merged["failed"] else 0


def add_parsers(sub) -> None:
    p = sub.add_parser(
        "selfcheck",
        help="check every artifact this host can run against the bundle's golden I/O (no torch, no data)",
        formatter_class=_Formatter,
        description="Runs every runnable artifact on the golden inputs stored in the bundle and compares with the "
        "stored fp32 PyTorch outputs, with verify's tolerance table. Exit 1 on any failure. With --out, writes "
        "that one JSON file (refused if it exists, unless --force).",
    )
    selection_args(p)
    p.add_argument("--out", default=None, help="write the results as JSON to this file")
    host_args(p)
    p.set_defaults(func=cmd_selfcheck)

    p = sub.add_parser(
        "fleet",
        help="run bench or selfcheck on every device node of a Ray cluster and merge the results",
        formatter_class=_Formatter,
        description="One task per matching device node (nodes join with --resources '{\"edgeport-device:NAME\": 1}'); "
        "the bundle travels through Ray's object store once per node. Writes --out X.json plus X.md and X.html "
        "(each refused if it exists, unless --force). A failed node is reported, not fatal to the others.",
    )
    p.add_argument("action", choices=["bench", "selfcheck"], help="what each device runs")
    p.add_argument("bundle", help="bundle folder written by `edgeport export`")
    p.add_argument(
        "--ray", required=True, metavar="ADDRESS", help="Ray cluster address, e.g. 10.0.0.5:6379 or auto"
    )
    p.add_argument(
        "--devices",
        default="*",
        metavar="SELECTOR",
        help="which device nodes to run on: a glob (or comma list of globs) over NAME in edgeport-device:NAME",
    )
    p.add_argument(
        "--backends",
        type=csv_list,
        default=None,
        help="comma list of backends (default: all available on each node)",
    )
    p.add_argument(
        "--precisions", type=csv_list, default=None, help="comma list: fp32,fp16,int8 (default: all)"
    )
    p.add_argument("--force", action="store_true", help="overwrite the output files if they exist")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--trust-model-code",
        action="store_true",
        help="let each node run artifacts that run code (TorchScript, pickled models); "
        "same as EDGEPORT_TRUST_MODEL_CODE=1 there",
    )
    p.add_argument("--batch-sizes", type=batch_list, default=[1, 32], help="bench batch sizes")
    p.add_argument(
        "--min-seconds", type=bounded_float(0.0, 3600.0), default=1.0, help="bench seconds per row"
    )
    p.add_argument(
        "--timeout", type=bounded_float(1.0, 86400.0), default=900.0, help="seconds per device task"
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="X.json",
        help="write the merged results to X.json, X.md and X.html (default: Markdown on stdout)",
    )
    p.set_defaults(func=cmd_fleet, main_thread=True)
