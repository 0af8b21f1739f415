"""Forked worker processes with the part of `concurrent.futures.ProcessPoolExecutor` that a scan uses: `submit` a
call, get a `Future`; `shutdown`.

Why not the standard pool: it imports `multiprocessing` and `concurrent.futures.process` before it can fork
(~23 ms), and a large scan's parse worker is the first thing the scan waits for. This module imports nothing but
`os`, so `sipwatch scan` forks its worker as its very first step (`fork_early`, from `console`): the worker imports
the parse side and builds its engine on one core while the command imports the detectors on the other.

A worker reads its calls (a function and its arguments, pickled, each framed by its length) from a pipe of its
own and answers on another, in order. Here a thread per worker writes its calls (a compressed file's buffer
travels in its call: the scan must not wait on a full pipe) and another reads its answers into their futures. A
worker is given at most `GIVEN` calls at a time; the rest wait here, where they can still be cancelled. A worker
that dies fails its calls with `BrokenWorker`. The shared memory in which parse workers leave their results
(`parallel.Outbox`) must exist before they fork: `share` makes it (`fork_early` does, before it forks).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import mmap
    import threading
    from collections import deque
    from collections.abc import Callable, Sequence
    from concurrent.futures import Future
    from queue import SimpleQueue

GIVEN = 2  # calls with a worker at a time: the one it runs, and the one it reads next
#: the shared memory of the parse workers' results (`parallel.Outbox`): its slots (two files read at once each have
#: `parallel.AHEAD` buffers out) of this many bytes (a 4 MiB buffer's results take 1-2 MiB)
SLOTS = 8
SLOT_BYTES = 8 << 20
#: a file smaller than this is read in the scan's own process (forking costs more than it saves)
MIN_PARALLEL_BYTES = 16 << 20


class BrokenWorker(RuntimeError):
    """A worker ended (killed, out of memory) before it answered a call given to it."""


class Shared:
    """Anonymous shared memory made before a fork, and the token that tells a worker forked with it."""

    def __init__(self, size: int) -> None:
        import mmap

        self.memory: mmap.mmap = mmap.mmap(-1, size)  # anonymous and MAP_SHARED: forked workers see it
        self.token = os.urandom(8).hex()


#: the parse workers' shared memory, once made (`share`)
SHARED: Shared | None = None


def share() -> Shared:
    """The parse workers' shared memory, made now if it is not yet (it must be before they fork)."""
    global SHARED
    if SHARED is None:
        SHARED = Shared(SLOTS * SLOT_BYTES)
    return SHARED


def workers() -> int:
    """How many parse workers a large file gets (0: none, it is read in this process). The process that runs the
    detectors is most often the scan's critical path: it keeps a core to itself (a second worker on a 2-core
    machine takes CPU from it: one worker scans the bench's log 4-12% faster by default, its CDR rows 6%; only a
    log with next to nothing to detect parses faster with two, by ~30 ms a million lines); the workers take the
    other cores, two at most (the detectors could not keep up with more)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(2, cores - 1))


#: the pool `fork_early` forked (for a scan to take: `take_early`), and whether its workers read call activity
EARLY: tuple[ForkPool, bool] | None = None


def fork_early(paths: Sequence[str], calls: bool, initializer: str) -> None:
    """Fork the parse workers of a scan now, with the shared memory of their results, when one of `paths` is a
    file large enough for them; `initializer` ("module:function", called with `calls`) sets a worker up."""
    global EARLY
    if EARLY is not None or workers() == 0 or not any(_large(path) for path in paths):
        return
    try:
        share()
    except OSError:  # (no shared memory to be had, a strict commit limit: the scan's own pool goes without)
        return
    EARLY = (ForkPool(workers(), initializer, (calls,)), calls)


def take_early(calls: bool) -> ForkPool | None:
    """The pool `fork_early` forked, for a scan whose workers read call activity or not (`calls`); None when there
    is none, or when its workers were set up otherwise (then it is shut down)."""
    global EARLY
    early, EARLY = EARLY, None
    if early is None:
        return None
    if early[1] != calls:
        early[0].shutdown(wait=False, cancel_futures=True)
        return None
    return early[0]


def drop_early() -> None:
    """Shut down the pool `fork_early` forked, if no scan took it."""
    global EARLY
    early, EARLY = EARLY, None
    if early is not None:
        early[0].shutdown(wait=False, cancel_futures=True)


def _large(path: str) -> bool:
    try:
        return os.stat(path).st_size >= MIN_PARALLEL_BYTES
    except (OSError, ValueError):
        return False


#: this process's ends of every pool's pipes: a worker forked later closes them (else a worker would not see its
#: calls' pipe end while a worker of another pool held it open)
_ENDS: set[int] = set()


class ForkPool:
    """`workers` forked processes, each set up by `initializer` ("module:function", called with `initargs`)."""

    def __init__(self, workers: int, initializer: str = "", initargs: tuple[object, ...] = ()) -> None:
        self._workers: list[_Worker] = []
        for _ in range(workers):
            calls_read, calls_write = os.pipe()
            answers_read, answers_write = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - (the worker; coverage is not measured there)
                for end in (calls_write, answers_read, *_ENDS):
                    os.close(end)
                _serve(calls_read, answers_write, initializer, initargs)
            os.close(calls_read)
            os.close(answers_write)
            _ENDS.update((calls_write, answers_read))
            self._workers.append(_Worker(pid, calls_write, answers_read))
        # Only now what the rest needs: the workers did not wait for it.
        import threading
        from collections import deque

        self._lock = threading.Lock()
        self._waiting: deque[tuple[Future[Any], bytes]] = deque()
        self._closed = False
        self._broken: str | None = None
        for worker in self._workers:
            worker.start(self)

    @property
    def closed(self) -> bool:
        """Whether `shutdown` was called."""
        return self._closed

    def submit(self, function: Callable[..., Any], /, *args: object) -> Future[Any]:
        """Call `function(*args)` in a worker; its answer (or exception) comes in the future."""
        import pickle
        from concurrent.futures import Future

        message = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to a pool that was shut down")
            if self._broken is not None:
                raise BrokenWorker(self._broken)
            self._waiting.append((future, message))
            self._give()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """No more calls; with `cancel_futures` those not given to a worker yet are cancelled, the others are
        answered first. With `wait`, return once the workers have ended."""
        with self._lock:
            self._closed = True
            if cancel_futures:
                for future, _ in self._waiting:
                    future.cancel()
                self._waiting.clear()
            self._give()
        if wait:
            for worker in self._workers:
                assert worker.reader is not None
                worker.reader.join()

    def _give(self) -> None:
        """(lock held) Give waiting calls to the workers that have room; once closed and none waits, tell each
        worker it is done (its calls' pipe closes after the calls already in it)."""
        workers = [w for w in self._workers if w.alive]
        while self._waiting and workers:
            worker = min(workers, key=lambda w: len(w.given))
            if len(worker.given) >= GIVEN:
                break
            future, message = self._waiting.popleft()
            if future.set_running_or_notify_cancel():
                worker.given.append(future)
                worker.outgoing.put(message)
        if not workers and self._waiting:
            self._fail_waiting()
        if self._closed and not self._waiting:
            for worker in self._workers:
                if not worker.told_done:
                    worker.told_done = True
                    worker.outgoing.put(None)

    def _fail_waiting(self) -> None:
        """(lock held) No worker is left: the calls waiting for one fail."""
        broken = BrokenWorker(self._broken or "the pool's workers ended")
        for future, _ in self._waiting:
            if future.set_running_or_notify_cancel():
                future.set_exception(broken)
        self._waiting.clear()

    def _answered(self, worker: _Worker, answer: tuple[bool, Any]) -> None:
        with self._lock:
            future = worker.given.popleft()
            self._give()
        ok, value = answer
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _ended(self, worker: _Worker, status: int) -> None:
        with self._lock:
            worker.alive = False
            failed = list(worker.given)
            worker.given.clear()
            if failed or not worker.told_done:
                self._broken = f"a worker process (pid {worker.pid}) ended unexpectedly ({_how(status)})"
                worker.told_done = True
                worker.outgoing.put(None)  # (its writer stops)
            if not any(w.alive for w in self._workers):
                self._fail_waiting()
        for future in failed:
            future.set_exception(BrokenWorker(self._broken or "a worker ended"))


class _Worker:
    """One forked process, its pipes, and the threads here that write its calls and read its answers."""

    def __init__(self, pid: int, calls: int, answers: int) -> None:
        self.pid = pid
        self.calls = calls
        self.answers = answers
        self.alive = True
        self.told_done = False
        self.reader: threading.Thread | None = None

    def start(self, pool: ForkPool) -> None:
        import threading
        from collections import deque
        from queue import SimpleQueue

        self.given: deque[Future[Any]] = deque()  # the calls it was given, in order
        self.outgoing: SimpleQueue[bytes | None] = SimpleQueue()  # (None: it is done)
        threading.Thread(target=self._write, name=f"sipwatch-worker-{self.pid}-calls", daemon=True).start()
        self.reader = threading.Thread(target=self._read, args=(pool,), name=f"sipwatch-worker-{self.pid}-answers",
                                       daemon=True)
        self.reader.start()

    def _write(self) -> None:
        try:
            while (message := self.outgoing.get()) is not None:
                _send(self.calls, message)
        except OSError:  # (the worker is gone: its reader tells)
            pass
        finally:
            _close(self.calls)

    def _read(self, pool: ForkPool) -> None:
        import pickle

        try:
            while (message := _receive(self.answers)) is not None:
                pool._answered(self, pickle.loads(message))
        except OSError:
            pass
        finally:
            _close(self.answers)
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                status = -1
            pool._ended(self, status)


def _how(status: int) -> str:
    """How a process ended, from its wait status (-1: unknown)."""
    if status == -1:
        return "reaped elsewhere"
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit status {code}"
    import signal

    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = str(-code)
    return f"killed by {name}" + (": out of memory?" if name == "SIGKILL" else "")


def _close(fd: int) -> None:
    _ENDS.discard(fd)
    try:  # noqa: SIM105 - (contextlib is not imported here: see the module's docstring)
        os.close(fd)
    except OSError:
        pass


def _send(fd: int, message: bytes) -> None:
    _write_all(fd, len(message).to_bytes(8, "little"))
    _write_all(fd, message)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _receive(fd: int) -> bytes | None:
    """The next framed message from `fd`; None at its end."""
    head = _read_exactly(fd, 8)
    if head is None:
        return None
    body = _read_exactly(fd, int.from_bytes(head, "little"))
    if body is None:
        raise OSError("a message was cut short")
    return body


def _read_exactly(fd: int, size: int) -> bytes | None:
    first = os.read(fd, size)
    if len(first) == size:
        return first
    if not first:
        return None
    parts = [first]
    left = size - len(first)
    while left:
        part = os.read(fd, min(left, 1 << 20))
        if not part:
            return None
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _serve(calls: int, answers: int, initializer: str, initargs: tuple[object, ...]) -> NoReturn:  # pragma: no cover
    """A worker's life: set up, then answer each call until the calls' pipe ends."""
    import pickle
    import signal

    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # (Ctrl-C is for the scan, which then lets the workers go)
        if initializer:
            import importlib

            module, _, name = initializer.partition(":")
            getattr(importlib.import_module(module), name)(*initargs)
        while (message := _receive(calls)) is not None:
            function, args = pickle.loads(message)
            try:
                answer: tuple[bool, Any] = (True, function(*args))
            except BaseException as exc:
                answer = (False, exc)
            _send(answers, _pickled(answer))
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def _pickled(answer: tuple[bool, Any]) -> bytes:  # pragma: no cover - (in the worker)
    import pickle

    try:
        return pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        return pickle.dumps((False, RuntimeError(f"a worker's answer could not be sent: {answer[1]!r}: {exc}")))
