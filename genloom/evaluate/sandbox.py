"""Running untrusted (generated) Python programs: one separate, limited process per program.

Generated code is never executed in the genloom process. Each program runs in a fresh interpreter
(`python -I -S -B`: isolated from the environment and the user's site-packages, no bytecode written)
started in a new session, with:

- a scratch temporary directory as its working directory and HOME, deleted afterwards;
- a minimal environment (PATH, LANG, HOME, TMPDIR; no proxies, no PYTHON* variables, no credentials);
- resource limits set before the program starts (address space, CPU seconds, file size, open files,
  no core dumps), which it cannot raise afterwards;
- a wall-clock timeout, after which its whole process group is killed (SIGKILL);
- no network: inside a new network namespace (`unshare --map-root-user --net`, where the kernel allows
  unprivileged user namespaces: only a loopback that is down), and in any case a Python audit hook
  (PEP 578) that refuses sockets, DNS lookups, new processes (fork, exec, spawn, subprocess, os.system),
  signals to other processes, raising resource limits, loading native libraries through ctypes, and
  writing, deleting or renaming files outside the scratch directory.

The audit hook is not a security boundary against a determined attacker (native code could get around
it); with the namespace and the limits it is a guard against code that misbehaves by accident, which
is what a model's completions do: loop forever, allocate without bound, fork, write files. The upstream
HumanEval harness (Chen et al. 2021) ships its `exec` call commented out for the same reason.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

OUTPUT_LIMIT = 2000  # characters of a program's stderr kept in its outcome

# The program that runs first in the child: limits, then the audit hook, then the user's program.
# It is written as a file into the scratch directory; sys.argv = [guard, program, limits...].
GUARD = r"""
import os, resource, sys

_scratch = os.path.realpath(os.getcwd())
_as, _cpu, _fsize = (int(v) for v in sys.argv[2:5])
for _limit, _value in ((resource.RLIMIT_AS, _as), (resource.RLIMIT_CPU, _cpu), (resource.RLIMIT_FSIZE, _fsize),
                       (resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 64)):
    resource.setrlimit(_limit, (_value, _value))

_REFUSED = {
    "os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen",
    "os.kill", "os.killpg", "signal.pthread_kill", "resource.setrlimit", "resource.prlimit",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.call_function", "socket.__new__", "socket.connect", "socket.bind",
    "socket.sendto", "socket.sendmsg", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
    "socket.gethostbyname_ex", "urllib.Request", "os.chroot", "sys.remote_exec", "pty.spawn", "webbrowser.open",
}
_PATH_WRITES = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.link",
                "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "os.chflags"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _inside(path):
    if isinstance(path, int):
        return True  # an open file descriptor: what it refers to was checked when it was opened
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return False
    return real == _scratch or real.startswith(_scratch + os.sep)


def _hook(event, args):
    if event in _REFUSED:
        raise PermissionError(f"sandbox: {event} is not allowed")
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        writes = (isinstance(flags, int) and flags & _WRITE_FLAGS) or (
            isinstance(mode, str) and any(c in mode for c in "wax+"))
        if writes and not _inside(path):
            raise PermissionError(f"sandbox: writing {path!r} outside the working directory is not allowed")
    elif event in _PATH_WRITES:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and not _inside(path):
                raise PermissionError(f"sandbox: {event} on {path!r} outside the working directory is not allowed")


sys.addaudithook(_hook)

with open(sys.argv[1], encoding="utf-8") as _f:
    _source = _f.read()
sys.argv = [sys.argv[1]]
exec(compile(_source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""

Status = Literal["passed", "failed", "timeout"]


@dataclass
class Outcome:
    """What became of one program."""

    status: Status  # passed: exit status 0; failed: an exception or another exit status; timeout: killed at its wall-clock or CPU-time limit
    returncode: int | None  # None when it was killed on timeout
    seconds: float  # wall-clock time
    stderr: str  # its last OUTPUT_LIMIT characters (the traceback of a failure)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass(frozen=True)
class Limits:
    """A program's limits; the defaults fit HumanEval's tests with room to spare."""

    timeout: float = 10.0  # wall-clock seconds before the process group is killed
    cpu_seconds: int = 10  # RLIMIT_CPU
    memory_mb: int = 1024  # RLIMIT_AS, the address space
    file_mb: int = 16  # RLIMIT_FSIZE, the largest file it may write (in its directory)


@functools.cache
def network_isolation() -> list[str]:
    """The command prefix that puts the program in a network namespace of its own, if this machine
    allows it (unprivileged user namespaces); else [] (the audit hook still refuses sockets)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    prefix = [unshare, "--map-root-user", "--net"]
    try:
        probe = subprocess.run([*prefix, "true"], capture_output=True, timeout=10, env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired):
        return []
    return prefix if probe.returncode == 0 else []


def isolation() -> str:
    """How this machine's sandbox keeps programs off the network, in words."""
    if network_isolation():
        return "separate process, own network namespace (unshare), audit hook, rlimits, scratch directory"
    return "separate process, audit hook refusing sockets (no network namespace here), rlimits, scratch directory"


def run_program(source: str, limits: Limits | None = None) -> Outcome:
    """Run the Python program `source` in the sandbox (module docstring) and report how it ended."""
    limits = limits or Limits()
    with tempfile.TemporaryDirectory(prefix="genloom-sandbox-") as scratch:
        guard = os.path.join(scratch, "_guard.py")
        program = os.path.join(scratch, "program.py")
        with open(guard, "w", encoding="utf-8") as f:
            f.write(GUARD)
        with open(program, "w", encoding="utf-8") as f:
            f.write(source)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": scratch, "TMPDIR": scratch}
        numbers = [str(limits.memory_mb << 20), str(limits.cpu_seconds), str(limits.file_mb << 20)]
        argv = [*network_isolation(), sys.executable, "-I", "-S", "-B", guard, program, *numbers]
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv,
            cwd=scratch,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, killed as a whole
        )
        try:
            _, err = proc.communicate(timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)  # before it is reaped, so the group id is still its own
            _, err = proc.communicate()
            return Outcome("timeout", None, time.perf_counter() - start, _tail(err))
        seconds = time.perf_counter() - start
    status: Status = "passed" if proc.returncode == 0 else "failed"
    if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        status = "timeout"  # its CPU-time limit ran out (SIGXCPU, then SIGKILL at the hard limit): a time limit too
    return Outcome(status, proc.returncode, seconds, _tail(err))


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # it ended meanwhile
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(err: bytes | None) -> str:
    return (err or b"").decode("utf-8", errors="replace")[-OUTPUT_LIMIT:]


def run_programs(sources: Sequence[str], limits: Limits | None = None, workers: int | None = None) -> list[Outcome]:
    """`run_program` for each source, `workers` at a time (default: the number of CPUs), in order."""
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda s: run_program(s, limits), sources))
