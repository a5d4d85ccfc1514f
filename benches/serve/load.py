"""Load for `ember serve` (127.0.0.1 only): C clients at once share N streamed completion
requests, each client sending its next request when the last one ends. Prints the errors,
time to first token (p50/p99), aggregate generated tokens per second and the mean request
time. Exits non-zero if any request failed.
Usage: python3 load.py BASE_URL CONCURRENCY [REQUESTS] [MAX_TOKENS] [PROMPT_FILE]"""
import json
import statistics
import sys
import threading
import time
import urllib.request

base, conc = sys.argv[1], int(sys.argv[2])
total = int(sys.argv[3]) if len(sys.argv) > 3 else 200
max_tokens = int(sys.argv[4]) if len(sys.argv) > 4 else 64
prompt = (open(sys.argv[5], encoding="utf-8").read() if len(sys.argv) > 5 else
          "First Citizen:\nBefore we proceed any further, hear me speak.")
if not base.startswith("http://127.0.0.1"):
    sys.exit("load.py only sends load to 127.0.0.1")
tokens, ttft, latencies, errors = [], [], [], []
lock = threading.Lock()
queue = list(range(total))


def post(path, body, root=base):
    req = urllib.request.Request(root + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=600)


def one(seed):
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.8, "seed": seed,
            "stop": [], "stream": True, "stream_options": {"include_usage": True}}
    t0 = time.perf_counter()
    first, used = None, None
    with post("/completions", body) as resp:
        for raw in resp:
            line = raw.decode("utf-8").strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            if first is None and any(c.get("text") for c in chunk.get("choices", [])):
                first = time.perf_counter() - t0
            if chunk.get("usage"):
                used = chunk["usage"]["completion_tokens"]
    if first is None or used is None:
        raise RuntimeError("stream ended without text or usage")
    return first, used, time.perf_counter() - t0


def client():
    while True:
        with lock:
            if not queue:
                return
            seed = queue.pop()
        try:
            first, used, took = one(seed)
        except Exception as e:  # noqa: BLE001 - counted and reported below
            with lock:
                errors.append(repr(e))
            continue
        with lock:
            ttft.append(first)
            tokens.append(used)
            latencies.append(took)


with post("/tokenize", {"content": prompt}, base.removesuffix("/v1")) as resp:
    prompt_tokens = len(json.load(resp)["tokens"])
t0 = time.perf_counter()
threads = [threading.Thread(target=client) for _ in range(conc)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.perf_counter() - t0
if not tokens:
    sys.exit(f"all {len(errors)} requests failed: {errors[:3]}")
q = statistics.quantiles(ttft, n=100, method="inclusive")
print(f"concurrency {conc}: {len(tokens)} requests ({prompt_tokens}-token prompt), "
      f"{len(errors)} errors, first token p50 {q[49] * 1000:.0f} ms p99 {q[98] * 1000:.0f} ms, "
      f"{sum(tokens)} tokens in {wall:.2f} s = {sum(tokens) / wall:.1f} tokens/s, "
      f"mean request {statistics.mean(latencies):.2f} s")
if errors:
    sys.exit(f"{len(errors)} requests failed: {errors[:3]}")
