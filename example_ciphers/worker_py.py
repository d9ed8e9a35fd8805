"""The Python worker of the ciphers example, on the Tasques worker SDK.

Either through the SDK's command (from the repository root, so `example_ciphers` is importable):

    tasques worker --server http://127.0.0.1:8080 --queue ciphers-py --queue ciphers \\
        --handlers example_ciphers.worker_py

or on its own, with those queues by default:

    python -m example_ciphers.worker_py --server http://127.0.0.1:8080

Each task's kind is a cipher family (see `ciphers.py`); the result is {"ciphertext", "worker": "python",
"worker_id"}. Invalid args raise `CipherError`, which the SDK reports as a failed attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from example_ciphers.ciphers import KINDS, encode
from tasques.worker import Handler, TaskContext, Worker
from tasques.worker.client import JsonDict, parse_duration

LANGUAGE = "python"
QUEUES = ("ciphers-py", "ciphers")  # its own queue, and the one either worker may take


async def encode_task(ctx: TaskContext) -> JsonDict:
    """Encode the task's plaintext with the cipher its kind names."""
    ciphertext = encode(ctx.task.kind, ctx.task.args)
    return {"ciphertext": ciphertext, "worker": LANGUAGE, "worker_id": ctx.worker_id}


HANDLERS: dict[str, Handler] = dict.fromkeys(KINDS, encode_task)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_ciphers.worker_py", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--server", default="http://127.0.0.1:8080", help="the Tasques server (default: %(default)s)")
    parser.add_argument(
        "--queue", dest="queues", action="append", help=f"a queue to claim from; repeat (default: {' '.join(QUEUES)})"
    )
    parser.add_argument("--worker-id", help="this worker's id (default: host-pid-random)")
    parser.add_argument("--block-for", default="2s", help="claim long-poll wait, a Go duration (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    worker = Worker(
        args.server,
        args.worker_id,
        args.queues or list(QUEUES),
        HANDLERS,
        block_for=parse_duration(args.block_for),
        shutdown_grace=5.0,
    )
    logging.getLogger("example_ciphers").info(
        "worker %s claiming from %s on %s", worker.worker_id, ", ".join(args.queues or QUEUES), args.server
    )
    asyncio.run(worker.run(handle_signals=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
