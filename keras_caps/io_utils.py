"""Files and their text formats: atomic writes, Markdown tables, CSV histories.

The home of the file and text helpers that every part of keras_caps shares. It sits at the
bottom of the import graph (it imports nothing from keras_caps), so data, models, training,
pruning, quantization, analysis and the binaries can all use it. Image scaling and batching,
the array helpers they share, live with the data: `keras_caps.data.normalize`,
`keras_caps.data.unit_images`, `keras_caps.data.image_batches`.

Writes are atomic: nothing a user trained is lost to a half-written file. Files get the
permissions a plain `open(path, "w")` would give (0o666 minus the umask), not the 0600 of the
temporary file they are written to.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile


def current_umask():
    """The process umask (read without changing it, where /proc allows)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, suffix=None):
    """Yields a temporary path in the target folder; renames it onto `path` on success.

    On an exception the temporary file is removed and `path` is left as it was.
    `suffix` defaults to the extension of `path` (Keras checks ".keras" / ".weights.h5").
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if suffix is None:
        base = os.path.basename(path)
        suffix = base[base.index(".") :] if "." in base else ""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def write_bytes(path, payload):
    """Writes `payload` (bytes) to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(payload)


def write_json(path, obj):
    """Writes `obj` as indented JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=float) + "\n")


def write_study(out_dir, markdown, summary, stem="study", echo=True):
    """Writes a binary's results: <stem>.md (`markdown`) and <stem>.json (`summary`), atomically.

    The markdown is also printed with `echo`. Returns `summary`. `stem` may be a pair
    (markdown stem, JSON stem), e.g. ("report", "metrics").
    """
    md_stem, json_stem = (stem, stem) if isinstance(stem, str) else stem
    write_json(os.path.join(out_dir, f"{json_stem}.json"), summary)
    write_text(os.path.join(out_dir, f"{md_stem}.md"), markdown)
    if echo:
        print(markdown, flush=True)
    return summary


def markdown_table(rows, columns):
    """rows: list of dicts; columns: list of (key, header, format) -> markdown table text.

    A missing or None value is written as "-".
    """
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            cells.append("-" if value is None else format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def history_csv(history):
    """History rows [{"epoch": e, metric: value}] -> CSV text (columns sorted, epoch first)."""
    keys = sorted({k for row in history for k in row if k != "epoch"})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["epoch"] + keys)
    for row in history:
        writer.writerow([row["epoch"]] + [row.get(k, "") for k in keys])
    return out.getvalue()


def save_model(model, path):
    """`model.save(path)` (a .keras file, optimizer state included) written atomically."""
    with atomic_path(path) as tmp:
        model.save(tmp)
