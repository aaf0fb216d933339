"""This machine's memory bandwidth, measured with a numpy copy loop, and the decode-speed limit it sets.

Decoding one token reads every weight the step uses once (plus the KV cache
so far), so ``tokens/s <= bandwidth / bytes read per token``.  The copy loop
runs ``threads`` threads (``np.copyto`` releases the GIL), each copying its
own 256 MiB array, far past any cache; the best of several rounds counts
read plus write traffic (2 x bytes copied, the STREAM "copy" convention).
numpy and stdlib only.
"""

from __future__ import annotations

import threading
import time

import numpy as np

ARRAY_BYTES = 256 << 20


def copy_bandwidth(threads: int = 1, *, rounds: int = 5, array_bytes: int = ARRAY_BYTES) -> dict:
    """``{"gb_per_s": read+write GB/s, "copy_gb_per_s": bytes copied GB/s, ...}``, best of ``rounds``."""
    threads = max(1, int(threads))
    n = array_bytes // 4
    src = [np.ones(n, np.float32) for _ in range(threads)]
    dst = [np.zeros(n, np.float32) for _ in range(threads)]
    for s, d in zip(src, dst):
        np.copyto(d, s)  # touch every page before timing
    barrier = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        barrier.wait()
        np.copyto(dst[i], src[i])
        barrier.wait()

    best = float("inf")
    for _ in range(rounds):
        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        barrier.wait()
        best = min(best, time.perf_counter() - t0)
        for t in pool:
            t.join()
    copied = threads * n * 4
    return {
        "gb_per_s": 2 * copied / best / 1e9,
        "copy_gb_per_s": copied / best / 1e9,
        "threads": threads,
        "array_mib": array_bytes >> 20,
        "rounds": rounds,
        "method": "np.copyto of a 256 MiB float32 array per thread, best round; read + write bytes counted",
    }


def decode_limit(gb_per_s: float, bytes_per_token: float) -> float:
    """The most tokens/s a decode step reading ``bytes_per_token`` can reach at ``gb_per_s``."""
    return gb_per_s * 1e9 / bytes_per_token if bytes_per_token > 0 else float("inf")
