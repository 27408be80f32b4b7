"""The server loop of the Python-eager bench references: set the thread count from argv[1], print
{"torch", "threads"}, then answer each JSON request line with one JSON line from run(request)."""
import json
import os
import sys
import time

import torch


def serve(run):
    threads = int(sys.argv[1]) if len(sys.argv) > 1 else torch.get_num_threads()
    torch.set_num_threads(threads)
    # the same cuDNN autotuning choice as the addon (BIA_CUDNN_BENCHMARK)
    torch.backends.cudnn.benchmark = os.environ.get("BIA_CUDNN_BENCHMARK", "0") == "1"
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        if line.strip():
            try:
                answer = run(json.loads(line))
            except Exception as e:  # noqa: BLE001 - the caller reports it as a failed reference run
                answer = {"error": f"{type(e).__name__}: {e}"}
            print(json.dumps(answer), flush=True)


def timed(step, warmup, iterations, sync=None):
    """Seconds of each of `iterations` calls of step() after `warmup` untimed ones (sync() inside the timing)."""
    times = []
    for i in range(warmup + iterations):
        t0 = time.perf_counter()
        step()
        if sync:
            sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times
