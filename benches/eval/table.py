#!/usr/bin/env python3
"""Prints one Markdown table (task × model) from `ember eval` results files.

    python3 benches/eval/table.py NAME=results.json[#CHECKPOINT_INDEX] NAME2=other.json ...

Each cell is the task's headline figure with its 95% interval; a NAME given several files
(different tasks) gets their tasks merged into one column.
"""
import json, sys

CHANCE = {"hellaswag": "25.0", "arc-easy": "25.1", "blimp": "50.0", "gsm8k": "0.0"}


def cell(r):
    if r["kind"] == "text":
        return f"loss {r['loss']:.3f}, bpb {r['bpb']:.3f}"
    if r["kind"] in ("choice", "math"):
        a = r["acc"]
        s = f"{100 * a['value']:.1f} [{100 * a['lo']:.1f}, {100 * a['hi']:.1f}]"
        if r.get("acc_norm"):
            n = r["acc_norm"]
            s += f"; norm {100 * n['value']:.1f} [{100 * n['lo']:.1f}, {100 * n['hi']:.1f}]"
        return s + f" (n={a['n']})"
    return None


def main():
    models, tasks = {}, []
    for arg in sys.argv[1:]:
        name, path = arg.split("=", 1)
        path, _, index = path.partition("#")
        res = json.load(open(path))
        assert res["format"] == "ember-eval-results", path
        c = res["checkpoints"][int(index or 0)]
        for t, r in c["tasks"].items():
            v = cell(r)
            if v is None:
                continue
            models.setdefault(name, {})[t] = v
            if t not in tasks:
                tasks.append(t)
    names = list(models)
    print("| task | chance | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for t in tasks:
        print(f"| {t} | {CHANCE.get(t, '-')} | " + " | ".join(models[n].get(t, "-") for n in names) + " |")


if __name__ == "__main__":
    main()
