"""Where a runbook came from, as `apply` says it in its signed start claim: the git
remote, commit and path, the blob ids of the file as committed and as compiled (the
same: clean), the branches holding the commit, and whether the commit's signature
verifies against the trust file (docs/governance.md).

It is the starter's statement under their signature: the worker has no checkout to
look at. A policy's `require` (runner/trust/policy.py) is judged against it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

from runner.contract.messages import JsonObject

GIT_SECONDS = 10
BRANCHES_KEPT = 50
ALLOWED_SIGNERS = "QLRF_ALLOWED_SIGNERS"
# user:password@ in a remote's URL is a credential: it never leaves this machine.
_USERINFO = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@]*@", re.IGNORECASE)


class _NoGit(Exception):
    pass


def _git(cwd: Path, *args: str, stdin: bytes | None = None, check: bool = True) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            timeout=GIT_SECONDS,
            env=env,
            check=False,
        )
    except FileNotFoundError:
        raise _NoGit("git is not installed here") from None
    except subprocess.TimeoutExpired:
        raise _NoGit(f"git {args[0]} took over {GIT_SECONDS} s") from None
    if check and done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise _NoGit(lines[-1] if lines else f"git {args[0]} failed")
    return (done.stdout + (b"" if check else done.stderr)).decode(errors="replace").strip()


def remote_shown(url: str) -> str:
    """The remote's URL without credentials."""
    return _USERINFO.sub(lambda m: m["scheme"], url.strip())


def provenance(path: str | os.PathLike[str], compiled: bytes) -> JsonObject:
    """The provenance of the runbook at `path`, whose bytes as compiled are `compiled`."""
    file = Path(path).resolve()
    try:
        return _provenance(file, compiled)
    except _NoGit as exc:
        return {"git": False, "note": f"not in a git checkout ({exc})"}


def _provenance(file: Path, compiled: bytes) -> JsonObject:
    where = file.parent
    top = Path(_git(where, "rev-parse", "--show-toplevel"))
    try:
        rel = file.relative_to(top.resolve()).as_posix()
    except ValueError:
        raise _NoGit(f"{file} is outside the checkout at {top}") from None
    found: JsonObject = {"git": True, "path": rel}
    remote = _git(top, "config", "--get", "remote.origin.url", check=False)
    if not remote or "fatal" in remote:
        names = _git(top, "remote", check=False).split()
        remote = _git(top, "remote", "get-url", names[0], check=False) if names else ""
    found["remote"] = remote_shown(remote) if remote else None
    try:
        commit = _git(top, "rev-parse", "--verify", "HEAD^{commit}")
    except _NoGit:
        found.update(commit=None, tracked=False, clean=False, branches=[])
        found["signature"] = {"verified": False, "detail": "the repository has no commit yet"}
        return found
    found["commit"] = commit
    committed = _git(top, "rev-parse", "--verify", "--quiet", f"{commit}:{rel}", check=False)
    found["blob"] = committed if re.fullmatch(r"[0-9a-f]{40,64}", committed) else None
    found["file_blob"] = _git(top, "hash-object", "--stdin", stdin=compiled)
    found["tracked"] = found["blob"] is not None
    found["clean"] = found["tracked"] and found["blob"] == found["file_blob"]
    listed = _git(
        top,
        "branch",
        "--all",
        "--contains",
        commit,
        "--format=%(refname:short)",
        check=False,
    )
    found["branches"] = [b for b in listed.splitlines() if b and "HEAD" not in b][:BRANCHES_KEPT]
    found["signature"] = _signature(top, commit)
    return found


def _signature(top: Path, commit: str) -> dict[str, Any]:
    """Whether the commit's SSH signature verifies with the trust file as git's
    allowed signers (its lines need the namespace git)."""
    signers = os.environ.get(ALLOWED_SIGNERS, "").strip()
    if not signers:
        return {"verified": False, "detail": f"no trust file here ({ALLOWED_SIGNERS})"}
    said = _git(
        top,
        "-c",
        "gpg.format=ssh",
        "-c",
        f"gpg.ssh.allowedSignersFile={os.path.abspath(signers)}",
        "verify-commit",
        "--raw",
        commit,
        check=False,
    )
    good = re.search(r'Good "git" signature for (\S+) with (\S+) key (\S+)', said)
    if good is not None:
        return {"verified": True, "signer": good[1], "key": good[3]}
    lines = [line for line in said.splitlines() if line.strip()]
    detail = lines[-1] if lines else "the commit is not signed"
    if "no signature" in said.lower() or not said:
        detail = "the commit is not signed"
    return {"verified": False, "detail": detail[:200]}
