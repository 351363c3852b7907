"""Run-directory safety: one run per --model_dir, its config kept, its results never lost.

    with RunDirectory(model_dir, config, overwrite=False) as run_dir:
        state = run_dir.state          # the checkpoint to resume, or None for a fresh run
        ...

On entry it
  1. takes an exclusive lock on <model_dir>/.lock (fcntl.flock; the file records pid, host,
     command and start time). A second run on the same folder fails at once naming the holder.
     The lock goes with the process: released on exit, even after SIGKILL.
  2. with `overwrite`, moves everything already in the folder to <model_dir>.previous-<time>/
     (nothing is deleted) and starts fresh.
  3. reads the checkpoint (`callbacks.read_state`: a damaged or incomplete one is an error with
     a recovery hint). Without a checkpoint but with results of an earlier run (best.keras,
     model.keras, history.csv, metrics.json) it refuses to start over them.
  4. writes config.json (the flags that define the architecture, the data and the training
     state the checkpoint fixes, plus a fingerprint of the data) for a fresh run, and on resume
     compares it: a difference is an error naming the changed keys.
"""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import socket
import sys

import numpy as np

from keras_caps.errors import RunDirError
from keras_caps.io_utils import write_json
from keras_caps.training.callbacks import read_state

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"
RESULT_FILES = ("best.keras", "model.keras", "history.csv", "metrics.json")


def data_fingerprint(*splits):
    """{"shapes": ..., "sha1": ...} of (images, labels) splits: a cheap identity of the data
    (every label and a strided sample of at most ~64 images per split)."""
    digest = hashlib.sha1()
    shapes = []
    for images, labels in splits:
        images, labels = np.asarray(images), np.asarray(labels)
        shapes.append([list(images.shape), str(images.dtype), int(len(labels))])
        step = max(1, len(images) // 64)
        digest.update(np.ascontiguousarray(images[::step]).tobytes())
        digest.update(np.ascontiguousarray(labels.astype(np.int64)).tobytes())
    return {"shapes": shapes, "sha1": digest.hexdigest()}


def _normalize(value):
    """JSON round trip, so tuples and lists (and numpy scalars) compare equal."""
    return json.loads(json.dumps(value, sort_keys=True, default=lambda v: v.item()
                                 if hasattr(v, "item") else str(v)))


def config_differences(saved, current, prefix=""):
    """['key: saved -> current', ...] for every key that differs (nested dicts flattened)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class RunLock:
    """An exclusive, non-blocking fcntl.flock on <folder>/.lock (see the module docstring)."""

    def __init__(self, folder):
        self.folder = folder
        self.path = os.path.join(folder, LOCK_FILE)
        self._fd = None

    def acquire(self):
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.read(fd, 4096).decode(errors="replace").strip()
                info = json.loads(holder) if holder else {}
            except (OSError, json.JSONDecodeError):
                info = {}
            os.close(fd)
            who = (f"pid {info.get('pid')} on {info.get('host')}, started {info.get('started')}:"
                   f" {info.get('command')}" if info else "another process")
            raise RunDirError(
                f"--model_dir {self.folder} is in use by another run ({who}); wait for it to "
                "finish or stop it, or use another --model_dir."
            ) from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(
                    timespec="seconds"),
                "command": " ".join(sys.argv)}
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def release(self):
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def remove_if_only_scaffolding(folder, scaffolding=(LOCK_FILE, "config.json")):
    """Removes `folder` when it holds nothing but `scaffolding` files and empty subfolders
    (what a run writes before its first result); returns whether it did.

    A run whose input turns out bad after it took the lock calls this on a folder it created,
    so a failed start leaves nothing behind. Anything else in the tree (a checkpoint, a
    trained model, a file of the user's) keeps the whole folder.
    """
    import shutil

    if not os.path.isdir(folder):
        return False
    for top, _dirs, files in os.walk(folder):
        if any(top != folder or f not in scaffolding for f in files):
            return False
    shutil.rmtree(folder)
    return True


def move_previous(folder, keep=(LOCK_FILE,)):
    """Moves the folder's contents (but `keep`) to <folder>.previous-<UTC time>/; returns
    that path, or None when there was nothing to move."""
    entries = [e for e in os.listdir(folder) if e not in keep] if os.path.isdir(folder) else []
    if not entries:
        return None
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S")
    backup = f"{os.path.abspath(folder).rstrip(os.sep)}.previous-{stamp}"
    n = 1
    while os.path.exists(backup):
        backup = f"{backup.split('.previous-')[0]}.previous-{stamp}-{n}"
        n += 1
    os.makedirs(backup)
    for entry in entries:
        os.replace(os.path.join(folder, entry), os.path.join(backup, entry))
    return backup


class RunDirectory:
    """The lock, checkpoint state and config checks of one training run (module docstring).

    Args:
        model_dir: the run folder.
        config: dict of what defines the run (sections of flags, the data fingerprint).
        overwrite: move previous contents aside and start fresh.
        lock: take the folder lock (False for the non-chief workers' temporary folders).
        verbose: print where --overwrite moved the previous results.
    """

    def __init__(self, model_dir, config=None, overwrite=False, lock=True, verbose=1):
        self.model_dir = model_dir
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")
        self.config = _normalize(config or {})
        self.overwrite = bool(overwrite)
        self.lock = RunLock(model_dir) if lock else None
        self.verbose = verbose
        self.state = None
        self.moved_to = None

    def __enter__(self):
        os.makedirs(self.model_dir, exist_ok=True)
        if self.lock is not None:
            self.lock.acquire()
        try:
            self._prepare()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()

    def _prepare(self):
        if self.overwrite:
            self.moved_to = move_previous(self.model_dir)
            if self.moved_to and self.verbose:
                print(f"--overwrite: moved the previous contents of {self.model_dir} to "
                      f"{self.moved_to}")
        self.state = read_state(self.checkpoint_dir)
        config_path = os.path.join(self.model_dir, CONFIG_FILE)
        if self.state is None:
            results = [f for f in RESULT_FILES if os.path.exists(os.path.join(self.model_dir, f))]
            if results:
                raise RunDirError(
                    f"--model_dir {self.model_dir} holds results of an earlier run ({', '.join(results)}) "
                    "but no checkpoint to resume; refusing to train over them. Use a new "
                    "--model_dir, or pass --overwrite to move them to a backup folder and start "
                    "over."
                )
            write_json(config_path, self.config)
            return
        if not os.path.exists(config_path):  # a run from before config.json: record it now
            write_json(config_path, self.config)
            return
        try:
            with open(config_path) as f:
                saved = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise RunDirError(f"{config_path} is unreadable ({err}); restore it, or pass "
                              "--overwrite to start over.") from err
        changed = config_differences(saved, self.config)
        if changed:
            raise RunDirError(
                f"--model_dir {self.model_dir} holds a run with another configuration, so it "
                f"cannot be resumed with these flags ({'; '.join(changed)}). Use a new "
                "--model_dir, pass the original flags, or pass --overwrite to move the old run "
                "to a backup folder and start over."
            )


__all__ = ["RunDirectory", "RunLock", "config_differences", "data_fingerprint", "move_previous"]
