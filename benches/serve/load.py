"""Load for `ember serve`: C clients at once, each sending R completion requests one after
another; prints aggregate generated tokens per second and the mean time per request.
Usage: python3 load.py BASE_URL CONCURRENCY [REQUESTS_PER_CLIENT] [MAX_TOKENS]"""
import json
import sys
import threading
import time
import urllib.request

base, conc = sys.argv[1], int(sys.argv[2])
reqs = int(sys.argv[3]) if len(sys.argv) > 3 else 4
max_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 64
tokens, latencies, errors = [], [], []
lock = threading.Lock()


def client(c):
    for r in range(reqs):
        body = json.dumps({"prompt": "First Citizen:\nBefore we proceed any further, hear me speak.",
                           "max_tokens": max_tokens, "temperature": 0.8, "seed": c * 1000 + r,
                           "stop": []}).encode()
        req = urllib.request.Request(base + "/completions", body,
                                     {"Content-Type": "application/json"})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=600) as resp:
                out = json.load(resp)
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(str(e))
            continue
        with lock:
            tokens.append(out["usage"]["completion_tokens"])
            latencies.append(time.perf_counter() - t0)


t0 = time.perf_counter()
threads = [threading.Thread(target=client, args=(c,)) for c in range(conc)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - t0
if errors or not tokens:
    sys.exit(f"{len(errors)} requests failed: {errors[:3]}")
print(f"concurrency {conc}: {sum(tokens)} tokens in {wall:.2f} s = {sum(tokens) / wall:.1f} tokens/s, "
      f"mean request {sum(latencies) / len(latencies):.2f} s")
