"""Compares the JSON / markdown / CSV / C outputs of two run_binaries.sh roots, ignoring times.

    python compare_runs.py BEFORE_ROOT AFTER_ROOT
Wall-clock values (keys with time / seconds / latency / wall in their name, and the timing
columns of markdown tables) are dropped; paths are compared relative to each root.
"""
import json, os, re, sys

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

fb, fa = files(before), files(after)
only_b = sorted(set(fb) - set(fa)); only_a = sorted(set(fa) - set(fb))
checked = diffs = 0
for rel in sorted(set(fb) & set(fa)):
    if rel.endswith(".json"):
        a = norm(json.load(open(fb[rel])), before); b = norm(json.load(open(fa[rel])), after)
        checked += 1
        if a != b:
            diffs += 1; print("DIFF", rel)
    elif rel.endswith((".csv",)) and "history" in rel:
        rows = [open(p).read().splitlines() for p in (fb[rel], fa[rel])]
        hdr = rows[0][0].split(",")
        keep = [i for i, h in enumerate(hdr) if not TIME_KEY.search(h)]
        cut = [[",".join(r.split(",")[i] for i in keep) for r in rs] for rs in rows]
        checked += 1
        if cut[0] != cut[1]:
            diffs += 1; print("DIFF", rel)
    elif rel.endswith((".h", ".cc", "labels.txt")):
        checked += 1
        if open(fb[rel], "rb").read() != open(fa[rel], "rb").read():
            diffs += 1; print("DIFF", rel)
print(f"compared {checked} files (JSON without time keys, histories without time columns, "
      f"C sources, labels): {diffs} differ")
print("only before:", [p for p in only_b if "/logs/" not in p and ".previous" not in p][:20])
print("only after:", [p for p in only_a if "/logs/" not in p][:40])
