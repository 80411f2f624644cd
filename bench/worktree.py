"""The baseline's source: a temporary detached git worktree of a ref, removed again at the end."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PREFIX = "sgw-bench-baseline-"
_OWNED = re.compile(re.escape(PREFIX) + r"(\d+)-")  # the pid of the bench that made it


@dataclass(frozen=True)
class Worktree:
    path: Path
    ref: str
    commit: str  # short hash
    subject: str


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          timeout=120, check=False)


@contextlib.contextmanager
def worktree(repo: Path, ref: str) -> Iterator[Worktree]:
    """``git worktree add --detach <tmp> REF``; on the way out (also on an error, Ctrl-C or
    SIGTERM) ``git worktree remove --force``, so the repository keeps no trace of it."""
    resolved = _git(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if resolved.returncode != 0:
        raise RuntimeError(f"--baseline {ref}: not a commit in {repo}")
    commit = resolved.stdout.strip()
    remove_stale(repo)
    path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))
    try:
        added = _git(repo, "worktree", "add", "--detach", "--quiet", str(path), commit)
        if added.returncode != 0:
            raise RuntimeError(f"git worktree add {ref} failed: {added.stderr.strip()}")
        shown = _git(repo, "show", "-s", "--format=%h%x00%s", commit).stdout.strip()
        short, _, subject = shown.partition("\x00")
        yield Worktree(path, ref, short or commit[:12], subject)
    finally:
        removed = _git(repo, "worktree", "remove", "--force", str(path))
        if removed.returncode != 0 or path.exists():
            shutil.rmtree(path, ignore_errors=True)
            _git(repo, "worktree", "prune")  # drops the entry whose directory is now gone


def remove_stale(repo: Path) -> None:
    """Worktrees left by a bench that was SIGKILLed (no finally ran): ours by name, and the pid
    in that name is gone. Anyone else's worktrees are never touched."""
    listed = _git(repo, "worktree", "list", "--porcelain").stdout.splitlines()
    for line in listed:
        path = Path(line.removeprefix("worktree ")) if line.startswith("worktree ") else None
        owner = _OWNED.match(path.name) if path is not None else None
        if path is None or owner is None or _alive(int(owner.group(1))):
            continue
        print(f"removing the baseline worktree of a killed bench run: {path}", flush=True)
        if _git(repo, "worktree", "remove", "--force", str(path)).returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            _git(repo, "worktree", "prune")


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a killed bench stays one until its parent reaps it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:][:1] != "Z"


def describe_working_tree(repo: Path) -> str:
    """``<commit>`` plus how many files under gateway/ differ from it (the gateway side runs
    the working tree, edits included)."""
    head = _git(repo, "rev-parse", "--short", "HEAD").stdout.strip() or "?"
    changed = [line for line in _git(repo, "status", "--porcelain", "--", "gateway")
               .stdout.splitlines() if line.strip()]
    if not changed:
        return f"{head}, no uncommitted changes under gateway/"
    return f"{head} + uncommitted changes in {len(changed)} files under gateway/"
