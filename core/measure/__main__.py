"""``python -m core.measure --task sst2|...|all [--limit N] [--model REF]``: metric, size, latency."""

from __future__ import annotations

import argparse
import json
import sys

from core.errors import WorkbenchError


def main(argv: list[str] | None = None) -> int:
    from core.models import DEFAULT_MODEL
    from core.tasks import all_tasks

    bundled = [t.id for t in all_tasks() if t.family != "custom"]
    parser = argparse.ArgumentParser(prog="python -m core.measure", description=__doc__)
    parser.add_argument("--task", default="sst2", help=f"one of {', '.join(bundled)}, or 'all'")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="packaged name, local folder or hub id")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N examples only")
    parser.add_argument("--sample-seed", type=int, default=None, help="with --limit: a seeded sample instead")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=None, help="default 128 (384 for SQuAD)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--latency-repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print one JSON object per task")
    args = parser.parse_args(argv)

    from core.measure.baseline import format_line, measure_task
    from core.measure.machine import environment

    tasks = bundled if args.task == "all" else [args.task]
    try:
        if not args.json:
            env = environment()
            print(f"# {args.model} with a fresh seeded head | {env['cpu_model']} ({env['cores']} cores, "
                  f"{env.get('torch_cpu_capability')}) | torch {env['versions']['torch']}")  # fmt: skip
        for task_id in tasks:
            result = measure_task(
                args.model, task_id, split=args.split, limit=args.limit, sample_seed=args.sample_seed,
                batch_size=args.batch_size, max_length=args.max_length, threads=args.threads,
                latency_repeats=args.latency_repeats,
            )  # fmt: skip
            if args.json:
                print(json.dumps(result))
            else:
                print(format_line(result))
                if result["note"]:
                    print(f"{'':<10} note: {result['note']}")
            sys.stdout.flush()
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
