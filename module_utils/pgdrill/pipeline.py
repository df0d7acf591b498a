# Copyright (c) 2026 pgdrill maintainers
# SPDX-License-Identifier: MIT
"""Running external programs: single commands and streaming pipelines.

Every program is started from an argument list (never a shell string), with connection secrets
only in its environment. In a pipeline every exit code is checked: a pipeline succeeds only when
every program in it exits 0. The one exception is a *head read* (``pg_restore --list`` reads only
an archive's table of contents and then closes its input): there an upstream program killed by
SIGPIPE is accepted, but only when the program that closed the pipe itself succeeded.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import tempfile
import threading
from typing import BinaryIO, Callable, Dict, IO, List, NamedTuple, Optional, Sequence, Union, cast

from .errors import PgdrillError

CHUNK = 1 << 20
STDERR_TAIL = 4000


class Completed(NamedTuple):
    argv: List[str]
    rc: int
    stdout: str
    stderr: str


def _tail(text: str) -> str:
    text = text.strip()
    return text if len(text) <= STDERR_TAIL else "..." + text[-STDERR_TAIL:]


def program_name(argv: Sequence[str]) -> str:
    """The program a command runs, looking through a leading ``stdbuf -oN``."""
    words = list(argv)
    if words and os.path.basename(words[0]) == "stdbuf":
        words = [word for word in words[1:] if not word.startswith("-")]
    return os.path.basename(words[0]) if words else "?"


def describe_rc(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with {rc}"


# Lines some programs print after their error, which would hide it: age ends every failure with
# a request for bug reports, GNU tar with a summary that names no member.
TRAILERS = ("age: report unexpected or unhelpful errors", "tar: Exiting with failure status due to previous errors")


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.strip().startswith(TRAILERS)]
    return lines[-1].strip() if lines else "(no error output)"


def _default_runner(argv: Sequence[str], env: Dict[str, str], stdin_data: Optional[bytes]) -> Completed:
    proc = subprocess.run(
        list(argv),
        input=stdin_data,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=None if stdin_data is not None else subprocess.DEVNULL,
        env=env,
        check=False,
    )
    return Completed(list(argv), proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


# The Ansible modules swap in a runner built on AnsibleModule.run_command, so that single commands
# go through Ansible's own process handling. Streaming pipelines cannot (run_command has no pipes
# without a shell) and always use stream() below.
_runner: Callable[[Sequence[str], Dict[str, str], Optional[bytes]], Completed] = _default_runner


def use_runner(runner: Callable[[Sequence[str], Dict[str, str], Optional[bytes]], Completed]) -> None:
    global _runner
    _runner = runner


def child_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(extra or {})
    env.setdefault("LC_MESSAGES", "C")
    return env


def run(argv: Sequence[str], env: Dict[str, str], what: str, fix: str = "", stdin_data: Optional[bytes] = None, check: bool = True) -> Completed:
    try:
        done = _runner(argv, env, stdin_data)
    except FileNotFoundError:
        raise PgdrillError(f"{what} failed: {argv[0]} is not installed", fix or "install it or fix PATH") from None
    if check and done.rc != 0:
        raise PgdrillError(
            f"{what} failed: {program_name(argv)} {describe_rc(done.rc)}: {last_line(done.stderr)}",
            fix,
            rc=done.rc,
            stderr=_tail(done.stderr),
            stdout=_tail(done.stdout),
            cmd=list(argv),
        )
    return done


def _grow_pipe(handle: BinaryIO) -> None:
    """Ask for a 1 MiB pipe buffer (Linux) so big dumps cross in fewer, larger reads."""
    try:
        import fcntl

        fcntl.fcntl(handle.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), CHUNK)
    except (ImportError, OSError):
        pass


class _SinkFile:
    """A write-only file object over a sink, for a producer with no program after it."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.write = lambda data: sink(bytes(data))

    def flush(self) -> None:
        pass


def _pipe(handle: Optional[IO[bytes]]) -> BinaryIO:
    """A pipe end Popen made because it was asked to (subprocess.PIPE): never None then."""
    if handle is None:
        raise RuntimeError("a pipe pgdrill asked for was not made")
    return cast(BinaryIO, handle)


def judge(rcs: Sequence[int], head_read: bool) -> List[int]:
    """Indexes of the programs whose exit counts as a failure. Pure: the pipeline rule in one place."""
    failed = [index for index, rc in enumerate(rcs) if rc != 0]
    if head_read and rcs and rcs[-1] == 0:
        failed = [index for index in failed if rcs[index] != -signal.SIGPIPE]
    return failed


def stream(
    commands: Sequence[Sequence[str]],
    sink: Callable[[bytes], None],
    env: Dict[str, str],
    what: str,
    fix: str = "",
    producer: Optional[Callable[[BinaryIO], None]] = None,
    head_read: bool = False,
    consumer: Optional[Callable[[BinaryIO], None]] = None,
) -> None:
    """Run ``commands`` as a pipeline and hand the last one's output to ``sink`` chunk by chunk
    (or the output pipe itself to ``consumer``, which reads it to the end).

    ``producer``, when given, writes the first program's input from a thread. Memory stays flat:
    nothing is held beyond one chunk. Any failure (a program, the producer, or the sink, such as a
    full disk) stops every program and raises.
    """
    if not commands:
        if producer is None:
            raise ValueError("stream() needs a command or a producer")
        producer(cast(BinaryIO, _SinkFile(sink)))  # it has the one method a producer calls: write
        return
    procs: List["subprocess.Popen[bytes]"] = []
    stderr_files: List[IO[bytes]] = []
    producer_error: List[BaseException] = []
    thread: Optional[threading.Thread] = None
    try:
        _start(commands, env, what, fix, producer is not None, procs, stderr_files)
        if producer is not None:
            thread = _start_producer(producer, _pipe(procs[0].stdin), producer_error)
        _drain(_pipe(procs[-1].stdout), sink, consumer)
    except BaseException:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        raise
    finally:
        _wait(procs, thread)
    _raise_failure(commands, [proc.returncode for proc in procs], _read_stderrs(stderr_files), producer_error, head_read, what, fix)


def _start(
    commands: Sequence[Sequence[str]],
    env: Dict[str, str],
    what: str,
    fix: str,
    fed: bool,
    procs: List["subprocess.Popen[bytes]"],
    stderr_files: List[IO[bytes]],
) -> None:
    """Start the programs, each reading the one before (the first reads a pipe when ``fed``), each
    writing its errors to a temporary file; ``procs`` and ``stderr_files`` grow as they start, so
    that a failure half-way stops those already running."""
    for index, argv in enumerate(commands):
        err: IO[bytes] = tempfile.TemporaryFile()
        stderr_files.append(err)
        stdin: Union[int, IO[bytes]] = (subprocess.PIPE if fed else subprocess.DEVNULL) if index == 0 else _pipe(procs[-1].stdout)
        try:
            proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE, stderr=err, env=env, close_fds=True)
        except FileNotFoundError:
            raise PgdrillError(f"{what} failed: {argv[0]} is not installed", fix or "install it or fix PATH") from None
        if index > 0:
            _pipe(procs[-1].stdout).close()  # the child holds it now; our copy would hide SIGPIPE
        _grow_pipe(_pipe(proc.stdout))
        procs.append(proc)


def _start_producer(producer: Callable[[BinaryIO], None], target: BinaryIO, errors: List[BaseException]) -> threading.Thread:
    """Run ``producer`` into the first program's input from a thread; its failure lands in ``errors``."""

    def feed() -> None:
        try:
            producer(target)
        except BrokenPipeError:
            pass  # the consumer died; its exit code tells why
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            errors.append(exc)
        finally:
            try:
                target.close()
            except BrokenPipeError:
                pass

    thread = threading.Thread(target=feed, name="pgdrill-producer", daemon=True)
    thread.start()
    return thread


def _drain(output: BinaryIO, sink: Callable[[bytes], None], consumer: Optional[Callable[[BinaryIO], None]]) -> None:
    """The last program's output to ``consumer`` as a file, or to ``sink`` chunk by chunk."""
    if consumer is not None:
        consumer(output)
        return
    fd = output.fileno()
    while True:
        data = os.read(fd, CHUNK)
        if not data:
            break
        sink(data)


def _wait(procs: List["subprocess.Popen[bytes]"], thread: Optional[threading.Thread]) -> None:
    for proc in procs:
        if proc.stdout and not proc.stdout.closed:
            proc.stdout.close()
        proc.wait()
    if thread is not None:
        thread.join()


def _read_stderrs(stderr_files: List[IO[bytes]]) -> List[str]:
    stderrs = []
    for captured in stderr_files:
        captured.seek(0)
        stderrs.append(captured.read().decode("utf-8", "replace"))
        captured.close()
    return stderrs


def blamed(rcs: Sequence[int], failed: Sequence[int]) -> int:
    """The program to name for a failed pipeline: a program killed by SIGPIPE is usually the victim
    of a later one's failure, so the first failure that is not SIGPIPE. Pure."""
    causes = [index for index in failed if rcs[index] != -signal.SIGPIPE] or list(failed)
    return causes[0]


def _raise_failure(
    commands: Sequence[Sequence[str]], rcs: List[int], stderrs: List[str], producer_error: List[BaseException], head_read: bool, what: str, fix: str
) -> None:
    """Raise the pipeline's failure, if any: the producer's first, else the program to blame."""
    failed = judge(rcs, head_read)
    if producer_error:
        exc = producer_error[0]
        if isinstance(exc, PgdrillError):
            raise exc
        raise PgdrillError(f"{what} failed: {exc}", fix)
    if failed:
        first = blamed(rcs, failed)
        raise PgdrillError(
            f"{what} failed: {program_name(commands[first])} {describe_rc(rcs[first])}: {last_line(stderrs[first])}",
            fix,
            rc=rcs[first],
            stderr=_tail(stderrs[first]),
            cmd=[list(argv) for argv in commands],
        )


def run_into(commands: Sequence[Sequence[str]], consumer: Callable[[BinaryIO], None], env: Dict[str, str], what: str, fix: str = "") -> None:
    """Run ``commands`` as a pipeline whose last output ``consumer`` reads as a file (tarfile's
    streaming reader); every exit code is checked as in :func:`stream`."""
    stream(commands, lambda data: None, env, what, fix, consumer=consumer)


class FedPipeline:
    """A pipeline whose input Python writes: :meth:`feed` hands it bytes, its last program's output
    goes to ``sink`` from a thread, and :meth:`close` ends the input and raises when any program
    failed (the :func:`stream` rule, a head read included). :meth:`abort` stops it on the way out
    of a failure. The backup feeds one stream to two of them at once: the encryption, and the
    table-of-contents check that reads the plaintext while it passes."""

    def __init__(
        self,
        commands: Sequence[Sequence[str]],
        sink: Callable[[bytes], None],
        env: Dict[str, str],
        what: str,
        fix: str = "",
        head_read: bool = False,
        depth: int = 4,
    ) -> None:
        self._queue: "queue.Queue[Optional[bytes]]" = queue.Queue(maxsize=depth)
        self._stopped = threading.Event()  # the first program no longer reads (done, or failed)
        self._aborted = False
        self._error: List[BaseException] = []

        def run_pipeline() -> None:
            try:
                stream(commands, sink, env, what, fix, producer=self._produce, head_read=head_read)
            except BaseException as exc:  # noqa: BLE001 - raised by close()
                self._error.append(exc)
            finally:
                self._stopped.set()

        self._thread = threading.Thread(target=run_pipeline, name="pgdrill-fed-pipeline", daemon=True)
        self._thread.start()

    def _produce(self, target: BinaryIO) -> None:
        try:
            while not self._aborted:
                data = self._queue.get()
                if data is None:
                    return
                target.write(data)
        finally:
            self._stopped.set()

    def feed(self, data: bytes) -> None:
        """Pass ``data`` on; returns at once when the pipeline no longer reads (a head read that
        has what it needs, or a failure that close() will report)."""
        while not self._stopped.is_set():
            try:
                self._queue.put(data, timeout=0.2)
                return
            except queue.Full:
                continue

    def _finish(self) -> None:
        while not self._stopped.is_set():
            try:
                self._queue.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self._thread.join()

    def close(self) -> None:
        """End of input: wait for every program, and raise the first failure."""
        self._finish()
        if self._error:
            raise self._error[0]

    def abort(self) -> None:
        """Stop feeding and let the programs end; their failures no longer matter."""
        self._aborted = True
        while True:  # make room so that a producer blocked in get() sees the end
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._finish()
