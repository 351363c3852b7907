"""Compares the JSON / markdown / CSV / C outputs of two run_binaries.sh roots, ignoring times.

    python compare_runs.py BEFORE_ROOT AFTER_ROOT
Wall-clock values (keys with time / seconds / latency / wall in their name, and the timing
columns of markdown tables) are dropped; paths are compared relative to each root.
"""
import json
import os
import re
import sys

before, after = (os.path.abspath(p) for p in sys.argv[1:3])
# model_sha256: the checkpoint archive embeds its wall times (and zip timestamps)
TIME_KEY = re.compile(r"time|seconds|latency|wall|started|_ms|sha256", re.I)

def norm(value, root):
    if isinstance(value, dict):
        return {k: norm(v, root) for k, v in value.items() if not TIME_KEY.search(k)}
    if isinstance(value, list):
        return [norm(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<ROOT>")
    return value

def files(root):
    out = {}
    for d, _, names in os.walk(os.path.join(root, "runs")):
        for n in names:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = p
    return out

def _differs(rel, path_b, path_a):
    if rel.endswith(".json"):
        with open(path_b) as fb_, open(path_a) as fa_:
            return norm(json.load(fb_), before) != norm(json.load(fa_), after)
    if rel.endswith(".csv") and "history" in rel:
        rows = []
        for path in (path_b, path_a):
            with open(path) as f:
                rows.append(f.read().splitlines())
        header = rows[0][0].split(",")
        keep = [i for i, h in enumerate(header) if not TIME_KEY.search(h)]
        cut = [[",".join(r.split(",")[i] for i in keep) for r in rs] for rs in rows]
        return cut[0] != cut[1]
    with open(path_b, "rb") as fb_, open(path_a, "rb") as fa_:
        return fb_.read() != fa_.read()


def main():
    fb, fa = files(before), files(after)
    only_b = sorted(set(fb) - set(fa))
    only_a = sorted(set(fa) - set(fb))
    checked = diffs = 0
    for rel in sorted(set(fb) & set(fa)):
        if not (rel.endswith((".json", ".h", ".cc", "labels.txt"))
                or (rel.endswith(".csv") and "history" in rel)):
            continue
        checked += 1
        if _differs(rel, fb[rel], fa[rel]):
            diffs += 1
            print("DIFF", rel)
    print(f"compared {checked} files (JSON without time keys, histories without time columns, "
          f"C sources, labels): {diffs} differ")
    print("only before:", [p for p in only_b if "/logs/" not in p and ".previous" not in p][:20])
    print("only after:", [p for p in only_a if "/logs/" not in p][:40])


if __name__ == "__main__":
    main()
