"""A private PulseAudio server for tests that go through real PortAudio devices.

The machine needs no sound card: the server has virtual devices only. A *pipe source* is a
microphone the test speaks into (a writer thread feeds its FIFO in real time, silence when
nothing is queued, like a real mic); a *pipe sink* is a speaker the test listens to (a reader
thread records everything it plays, silence included, so the recording is a continuous
48 kHz timeline). PortAudio reaches the server through its ALSA backend: the ALSA ``pulse``
plugin (Debian's libasound2-plugins) gives the devices ``pulse`` and ``default``, and the
environment variables from :meth:`PulseServer.env` pick the server and, per process, which
source and sink those devices use. Usage::

    from tests.helpers.pulseaudio import PulseServer

    with PulseServer() as server:                   # or the `pulse_server` fixture
        mic = server.add_pipe_source("alice-mic")
        speaker = server.add_pipe_sink("alice-speaker")

        # a client process capturing from alice-mic and playing to alice-speaker
        env = server.child_env(source="alice-mic", sink="alice-speaker")
        proc = subprocess.Popen([...], env=env)

        mic.feed("speech.wav")                       # or feed_pcm(pcm) / feed_tone(440, 1.0)
        mic.wait_fed()                               # until all of it went into the source
        speaker.wait_for_sound(timeout=5)            # or just wait for the call to end
        speaker.save_wav(tmp_path / "heard.wav")     # speaker.recorded() -> bytes

        # or in this process (PortAudio re-scans devices on entry and on exit):
        with server.use(source="alice-mic", sink="alice-speaker"):
            DeviceSource().start(on_frame)           # "default"/"pulse" → alice-mic

Audio everywhere is 48 kHz mono s16le (the call format).

What was checked on this machine (Debian 12, PulseAudio 16.1, PortAudio 19.6, as root):

* ``pulseaudio -n --daemonize=no --system=no --exit-idle-time=-1 --disallow-exit
  --use-pid-file=no -F script.pa`` runs as root (it warns that it is not meant to), with
  ``module-native-protocol-unix socket=... auth-anonymous=1`` and HOME / XDG_RUNTIME_DIR /
  PULSE_RUNTIME_PATH / PULSE_STATE_PATH pointing into a temporary directory, so nothing
  touches the real user's PulseAudio state.
* A client needs ``PULSE_SERVER=unix:<socket>``; ``PULSE_SOURCE`` / ``PULSE_SINK`` then pick
  the source and sink used by PortAudio's ``pulse`` and ``default`` devices (libpulse reads
  them whenever the ALSA plugin opens a stream). ``default`` is PulseAudio only because
  /etc/alsa/conf.d/99-pulse.conf checks, when ALSA loads its configuration, that a server
  is reachable; ``pulse`` is always defined.
* PortAudio lists devices when it initialises (on ``import sounddevice``) and only those it
  could open: a process must have the environment before that, or re-scan
  (:func:`messenger_tui.media.audio_io.refresh_devices`, which :meth:`PulseServer.use`
  calls).
* ``module-pipe-sink`` runs as fast as its reader unless ``use_system_clock_for_timing=yes``
  (then it plays in real time). ``module-pipe-source`` produces nothing while nobody writes
  its FIFO (a capture would hang), hence the writer thread that sends silence; and it reads
  its FIFO only while something records from it (the FIFO would fill, 0.68 s of stale audio,
  and the writer block), hence a ``module-loopback`` from each pipe source into the null
  sink that keeps it running. So a pipe source behaves like a real microphone: fed audio
  goes into the air in real time, and is lost if no client is capturing then.
* ``module-suspend-on-idle`` is not loaded, so sinks run all the time.
* Measured here: capture adds no delay beyond the 20 ms block (a frame written to the FIFO
  reaches ``on_frame`` 0.4 ms later); playback from ``pull()`` to the pipe sink's reader
  takes ~60 ms (PortAudio reports 40 ms output latency on ``pulse``).
"""

from __future__ import annotations

import array
import contextlib
import glob
import itertools
import math
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

RATE = 48_000
CHANNELS = 1
SAMPLE_BYTES = 2
CHUNK_MS = 20
CHUNK_BYTES = RATE * CHUNK_MS // 1000 * SAMPLE_BYTES
INSTALL_HINT = "install pulseaudio libasound2-plugins (make setup does)"


class PulseAudioMissing(RuntimeError):
    """pulseaudio or the ALSA pulse plugin is not installed."""


def check_installed() -> None:
    """Raise :class:`PulseAudioMissing` unless the server and the ALSA plugin are present."""
    missing = []
    if shutil.which("pulseaudio") is None or shutil.which("pactl") is None:
        missing.append("pulseaudio (the server and pactl)")
    plugin_globs = (
        "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so",
        "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so",
        "/lib/*/alsa-lib/libasound_module_pcm_pulse.so",
    )
    if not any(glob.glob(pattern) for pattern in plugin_globs):
        missing.append("the ALSA pulse plugin (libasound2-plugins)")
    if missing:
        raise PulseAudioMissing(f"{' and '.join(missing)} not found: {INSTALL_HINT}")


def tone_pcm(freq_hz: float, seconds: float, amplitude: float = 0.3) -> bytes:
    """A sine of ``freq_hz`` as 48 kHz mono s16le PCM (``amplitude`` of full scale)."""
    n = int(RATE * seconds)
    peak = amplitude * 32767
    samples = [round(peak * math.sin(2 * math.pi * freq_hz * i / RATE)) for i in range(n)]
    return array.array("h", samples).tobytes()


def read_wav_pcm(path: str | os.PathLike[str]) -> bytes:
    """The PCM of a WAV file, converted with sox to 48 kHz mono s16 if it is not already."""
    with wave.open(os.fspath(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (RATE, 1, 2):
            return wav.readframes(wav.getnframes())
    out = subprocess.run(
        ["sox", "-D", os.fspath(path), "-t", "raw", "-r", str(RATE), "-c", "1", "-b", "16",
         "-e", "signed", "-L", "-"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return out.stdout


def write_wav(path: str | os.PathLike[str], pcm: bytes) -> Path:
    with wave.open(os.fspath(path), "wb") as wav:
        wav.setnchannels(CHANNELS)
        wav.setsampwidth(SAMPLE_BYTES)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return Path(path)


class PipeSource:
    """A virtual microphone: what :meth:`feed_pcm` queues comes out of the source in real
    time; silence otherwise. Create with :meth:`PulseServer.add_pipe_source`."""

    def __init__(
        self, server: PulseServer, name: str, fifo: Path, module: int, loopback: int
    ) -> None:
        self.server = server
        self.name = name
        self.fifo = fifo
        self.module = module
        self.modules = (loopback, module)  # unloaded in this order by PulseServer.remove
        self._pending = bytearray()
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._stop = threading.Event()
        #: Bytes written to the FIFO so far (silence included): the source's timeline.
        self.written = 0
        # PulseAudio holds the FIFO open read-write, so this open does not block.
        self._fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name=f"pipe-source-{name}", daemon=True)
        self._thread.start()

    def feed_pcm(self, pcm: bytes) -> int:
        """Queue 48 kHz mono s16le ``pcm`` after anything already queued. Returns the byte
        offset on this source's timeline (:attr:`written`) where it will start."""
        if len(pcm) % SAMPLE_BYTES:
            raise ValueError("PCM must be whole 16-bit samples")
        with self._lock:
            start = self.written + len(self._pending)
            self._pending += pcm
        return start

    def feed(self, wav: str | os.PathLike[str]) -> int:
        """Queue a WAV file (converted to 48 kHz mono if needed); see :meth:`feed_pcm`."""
        return self.feed_pcm(read_wav_pcm(wav))

    def feed_tone(self, freq_hz: float, seconds: float, amplitude: float = 0.3) -> int:
        return self.feed_pcm(tone_pcm(freq_hz, seconds, amplitude))

    def pending_seconds(self) -> float:
        with self._lock:
            return len(self._pending) / (RATE * SAMPLE_BYTES)

    def clear(self) -> None:
        """Drop what is queued (the source goes silent at once)."""
        with self._lock:
            self._pending.clear()
            self._drained.notify_all()

    def wait_fed(self, timeout: float | None = None) -> None:
        """Block until everything queued went into the source (TimeoutError otherwise)."""
        if timeout is None:
            timeout = self.pending_seconds() + 5.0
        with self._lock:
            if not self._drained.wait_for(lambda: not self._pending, timeout):
                raise TimeoutError(f"pipe source {self.name}: still {len(self._pending)} bytes")

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            with self._lock:
                chunk = bytes(self._pending[:CHUNK_BYTES])
                del self._pending[:CHUNK_BYTES]
                if not self._pending:
                    self._drained.notify_all()
            chunk = chunk.ljust(CHUNK_BYTES, b"\0")
            if not self._write(chunk):
                return
            with self._lock:
                self.written += len(chunk)
            next_at += CHUNK_MS / 1000
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            elif delay < -0.2:  # starved by the scheduler: do not burst to catch up
                next_at = time.monotonic()

    def _write(self, chunk: bytes) -> bool:
        """Write one chunk (under PIPE_BUF, so all or nothing); False once closing."""
        while not self._stop.is_set():
            _, writable, _ = select.select([], [self._fd], [], 0.1)
            if not writable:
                continue  # the FIFO is full: the source is not reading
            try:
                os.write(self._fd, chunk)
            except BlockingIOError:
                continue
            except OSError:
                return False  # the module was unloaded
            return True
        return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            os.close(self._fd)


class PipeSink:
    """A virtual speaker: records everything played to it, silence included, as a
    continuous 48 kHz timeline. Create with :meth:`PulseServer.add_pipe_sink`."""

    def __init__(self, server: PulseServer, name: str, fifo: Path, module: int) -> None:
        self.server = server
        self.name = name
        self.fifo = fifo
        self.module = module
        self.modules = (module,)
        self._data = bytearray()
        self._lock = threading.Lock()
        self._grew = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        self._thread = threading.Thread(target=self._run, name=f"pipe-sink-{name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not data:  # no writer (module unloaded)
                time.sleep(0.01)
                continue
            with self._lock:
                self._data += data
                self._grew.notify_all()

    def recorded(self, since: int = 0) -> bytes:
        """Everything played so far (whole samples), from byte offset ``since``."""
        with self._lock:
            end = len(self._data) // SAMPLE_BYTES * SAMPLE_BYTES
            return bytes(self._data[since:end])

    def mark(self) -> int:
        """The current end of the recording (a byte offset for :meth:`recorded`)."""
        with self._lock:
            return len(self._data) // SAMPLE_BYTES * SAMPLE_BYTES

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def wait_for_bytes(self, n: int, timeout: float = 5.0) -> bytes:
        """Wait until at least ``n`` bytes were recorded; returns the whole recording."""
        with self._lock:
            if not self._grew.wait_for(lambda: len(self._data) >= n, timeout):
                raise TimeoutError(f"pipe sink {self.name}: {len(self._data)} of {n} bytes")
        return self.recorded()

    def wait_for_sound(self, threshold: int = 1000, timeout: float = 5.0, since: int = 0) -> int:
        """Wait until a sample louder than ``threshold`` was played after byte offset
        ``since``; returns that sample's byte offset."""
        deadline = time.monotonic() + timeout
        scanned = since
        while True:
            pcm = self.recorded(scanned)
            samples = array.array("h", pcm)
            for i, s in enumerate(samples):
                if abs(s) > threshold:
                    return scanned + i * SAMPLE_BYTES
            scanned += len(samples) * SAMPLE_BYTES
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"pipe sink {self.name}: nothing above {threshold} played")
            with self._lock:
                self._grew.wait(min(remaining, 0.05))

    def save_wav(self, path: str | os.PathLike[str], since: int = 0) -> Path:
        """Write the recording (from byte offset ``since``) as a 48 kHz mono WAV."""
        return write_wav(path, self.recorded(since))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        with contextlib.suppress(OSError):
            os.close(self._fd)


class PulseServer:
    """A private PulseAudio server in a temporary directory (see the module docstring).

    Raises :class:`PulseAudioMissing` if pulseaudio or libasound2-plugins is not installed,
    and RuntimeError (with the server's log) if it does not start."""

    def __init__(self, *, startup_timeout: float = 10.0) -> None:
        check_installed()
        self.startup_timeout = startup_timeout
        # A short path: a unix socket path must stay under 108 bytes.
        self.dir = Path(tempfile.mkdtemp(prefix="pa-test-"))
        self.socket = self.dir / "native"
        self.log_path = self.dir / "pulseaudio.log"
        self.client_conf = self.dir / "client.conf"
        self.proc: subprocess.Popen[bytes] | None = None
        self.sources: dict[str, PipeSource] = {}
        self.sinks: dict[str, PipeSink] = {}
        self._fifo_numbers = itertools.count()  # never reused: a removed pipe's FIFO may stay

    # -- lifecycle

    def start(self) -> PulseServer:
        for sub in ("runtime", "home", "state"):
            (self.dir / sub).mkdir(mode=0o700)
        self.client_conf.write_text("autospawn = no\n")
        script = self.dir / "server.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            # a harmless default for clients that name no sink or source
            "load-module module-null-sink sink_name=test-null rate=48000 channels=1\n"
            "set-default-sink test-null\n"
            "set-default-source test-null.monitor\n"
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "HOME": str(self.dir / "home"),
            "XDG_RUNTIME_DIR": str(self.dir / "runtime"),
            "XDG_CONFIG_HOME": str(self.dir / "home" / ".config"),
            "PULSE_RUNTIME_PATH": str(self.dir / "runtime"),
            "PULSE_STATE_PATH": str(self.dir / "state"),
            "PULSE_CLIENTCONFIG": str(self.client_conf),
        }
        cmd = [
            "pulseaudio",
            "-n",  # no default.pa: only our script
            "--daemonize=no",
            "--system=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--use-pid-file=no",
            "--realtime=no",
            "--high-priority=no",
            "--log-target=stderr",
            "--log-level=notice",
            "-F",
            str(script),
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                log_text = self.log_text()
                self.stop()
                raise RuntimeError(f"pulseaudio exited at start:\n{log_text}")
            if self.socket.exists() and self._pactl_ok("info"):
                return self
            if time.monotonic() > deadline:
                log_text = self.log_text()
                self.stop()
                raise RuntimeError(f"pulseaudio did not start in time:\n{log_text}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Close the pipes, kill the server, remove the directory. Idempotent."""
        pipes: list[PipeSource | PipeSink] = [*self.sources.values(), *self.sinks.values()]
        for pipe in pipes:
            pipe.close()
        self.sources.clear()
        self.sinks.clear()
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PulseServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    # -- control

    @property
    def server(self) -> str:
        """The PULSE_SERVER value."""
        return f"unix:{self.socket}"

    def pactl(self, *args: str) -> str:
        out = subprocess.run(
            ["pactl", *args], env={**os.environ, **self.env()}, capture_output=True,
            text=True, timeout=10,
        )  # fmt: skip
        if out.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def _pactl_ok(self, *args: str) -> bool:
        try:
            self.pactl(*args)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def add_pipe_source(self, name: str) -> PipeSource:
        """A new source ``name`` (48 kHz mono) fed by the returned :class:`PipeSource`."""
        if name in self.sources:
            raise ValueError(f"source {name!r} exists")
        fifo = self.dir / f"src-{next(self._fifo_numbers)}.fifo"
        module = int(
            self.pactl(
                "load-module", "module-pipe-source", f"source_name={name}", f"file={fifo}",
                "format=s16le", f"rate={RATE}", f"channels={CHANNELS}",
            ).strip()
        )  # fmt: skip
        # module-pipe-source reads its FIFO only while someone records: keep it recording
        # (into the null sink) so fed audio flows in real time and never backs up.
        loopback = int(
            self.pactl(
                "load-module", "module-loopback", f"source={name}", "sink=test-null",
                "source_dont_move=true", "sink_dont_move=true", "latency_msec=20",
            ).strip()
        )  # fmt: skip
        source = PipeSource(self, name, fifo, module, loopback)
        self.sources[name] = source
        return source

    def add_pipe_sink(self, name: str) -> PipeSink:
        """A new sink ``name`` (48 kHz mono, real-time clock) recorded by the returned
        :class:`PipeSink`. Its monitor source is ``{name}.monitor``."""
        if name in self.sinks:
            raise ValueError(f"sink {name!r} exists")
        fifo = self.dir / f"sink-{next(self._fifo_numbers)}.fifo"
        module = int(
            self.pactl(
                "load-module", "module-pipe-sink", f"sink_name={name}", f"file={fifo}",
                "format=s16le", f"rate={RATE}", f"channels={CHANNELS}",
                "use_system_clock_for_timing=yes",
            ).strip()
        )  # fmt: skip
        sink = PipeSink(self, name, fifo, module)
        self.sinks[name] = sink
        return sink

    def remove(self, pipe: PipeSource | PipeSink) -> None:
        """Stop ``pipe``'s thread and unload its modules. A pipe left in place keeps a thread
        feeding or recording it in real time (and a recording that grows by 96 kB a second)
        until the server stops: a session-wide server must not collect them. Idempotent."""
        table: dict[str, PipeSource] | dict[str, PipeSink] = (
            self.sources if isinstance(pipe, PipeSource) else self.sinks
        )
        if table.get(pipe.name) is not pipe:
            return
        del table[pipe.name]
        pipe.close()
        if self.proc is not None and self.proc.poll() is None:
            for module in pipe.modules:
                self._pactl_ok("unload-module", str(module))

    # -- environments

    def env(self, source: str | None = None, sink: str | None = None) -> dict[str, str]:
        """Variables that make a process's PortAudio ``pulse``/``default`` devices use this
        server, capturing from ``source`` and playing to ``sink`` (the server's null sink
        and its monitor when None). Merge into the environment: ``{**os.environ, **env}``."""
        env = {"PULSE_SERVER": self.server, "PULSE_CLIENTCONFIG": str(self.client_conf)}
        if source is not None:
            env["PULSE_SOURCE"] = source
        if sink is not None:
            env["PULSE_SINK"] = sink
        return env

    def child_env(self, source: str | None = None, sink: str | None = None) -> dict[str, str]:
        """A whole environment for a child process (this one's, minus any PULSE_SOURCE /
        PULSE_SINK it had, plus :meth:`env`)."""
        base = {k: v for k, v in os.environ.items() if k not in ("PULSE_SOURCE", "PULSE_SINK")}
        return {**base, **self.env(source, sink)}

    @contextlib.contextmanager
    def use(self, source: str | None = None, sink: str | None = None) -> Iterator[None]:
        """Point this process's PortAudio at the server (``source``/``sink`` as in
        :meth:`env`) and re-scan devices; restore the environment and re-scan on exit.
        No stream may be open on entry or exit."""
        from messenger_tui.media.audio_io import refresh_devices

        keys = ("PULSE_SERVER", "PULSE_CLIENTCONFIG", "PULSE_SOURCE", "PULSE_SINK")
        saved = {k: os.environ.get(k) for k in keys}
        for key in ("PULSE_SOURCE", "PULSE_SINK"):
            os.environ.pop(key, None)
        os.environ.update(self.env(source, sink))
        try:
            refresh_devices()
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            refresh_devices()


def no_audio_env(base_dir: Path) -> dict[str, str]:
    """An environment in which PortAudio finds no device on a machine without a sound card:
    a PulseAudio server that does not exist, and no autospawn."""
    conf = base_dir / "no-audio-client.conf"
    conf.write_text("autospawn = no\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    env["PULSE_SERVER"] = f"unix:{base_dir / 'no-such-server'}"
    env["PULSE_CLIENTCONFIG"] = str(conf)
    return env


@pytest.fixture(scope="session")
def pulse_session() -> Iterator[PulseServer]:
    """One private PulseAudio server for the whole test session (tests use
    :func:`pulse_server`). Fails (never skips) when PulseAudio is not installed."""
    try:
        server = PulseServer()
    except PulseAudioMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with server:
        yield server


@pytest.fixture
def pulse_server(pulse_session: PulseServer) -> Iterator[PulseServer]:
    """The session's PulseAudio server; the pipe sources and sinks a test adds are removed
    after it (each would otherwise keep a real-time thread and a growing recording for the
    rest of the session). Defined in tests/conftest.py for every test."""
    before: set[PipeSource | PipeSink] = {
        *pulse_session.sources.values(),
        *pulse_session.sinks.values(),
    }
    yield pulse_session
    pipes: list[PipeSource | PipeSink] = [
        *pulse_session.sources.values(),
        *pulse_session.sinks.values(),
    ]
    for pipe in pipes:
        if pipe not in before:
            pulse_session.remove(pipe)
