"""SpeexDSP's echo canceller and preprocessor through ctypes, on Debian's ``libspeexdsp1``.

Nothing is built: the library (``libspeexdsp.so.1``) is loaded on first use, not on import.
Without it, :func:`load_speexdsp` raises :class:`VoiceProcessingUnavailable` with the reason
and the fix; a call then runs without echo cancellation and noise suppression and says why
(:mod:`messenger_tui.media.voice_processing`).

The API, from SpeexDSP 1.2's ``speex/speex_echo.h`` and ``speex/speex_preprocess.h``:

- ``speex_echo_state_init_mc(frame_size, filter_length, nb_mic, nb_speakers)``, then
  ``speex_echo_ctl(st, SPEEX_ECHO_SET_SAMPLING_RATE, &rate)``: the MDF adaptive filter
  (multidelay block frequency domain, with a double-talk-robust learning rate).
- ``speex_echo_cancellation(st, rec, play, out)``: one frame; ``play`` must be the far-end
  signal that produced the echo in ``rec``, aligned (the caller's delay line does that).
- ``speex_preprocess_state_init(frame_size, rate)`` and ``speex_preprocess_ctl`` (denoise,
  AGC, the AGC's target level and maximum gain, noise and echo suppression depths, and
  ``SPEEX_PREPROCESS_SET_ECHO_STATE`` to suppress the residual echo the filter left, using the
  canceller's own estimate of it); ``speex_preprocess_run(st, x)`` works in place.

The wrappers below keep one ctypes buffer per state and never allocate per frame.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any, Final

# speex_echo.h
SPEEX_ECHO_GET_FRAME_SIZE: Final = 3
SPEEX_ECHO_SET_SAMPLING_RATE: Final = 24
SPEEX_ECHO_GET_SAMPLING_RATE: Final = 25
SPEEX_ECHO_GET_IMPULSE_RESPONSE_SIZE: Final = 27
SPEEX_ECHO_GET_IMPULSE_RESPONSE: Final = 29
# speex_preprocess.h
SPEEX_PREPROCESS_SET_DENOISE: Final = 0
SPEEX_PREPROCESS_SET_AGC: Final = 2
SPEEX_PREPROCESS_SET_VAD: Final = 4
SPEEX_PREPROCESS_SET_DEREVERB: Final = 8
SPEEX_PREPROCESS_SET_NOISE_SUPPRESS: Final = 18
SPEEX_PREPROCESS_GET_NOISE_SUPPRESS: Final = 19
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS: Final = 20
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE: Final = 22
SPEEX_PREPROCESS_SET_ECHO_STATE: Final = 24
SPEEX_PREPROCESS_SET_AGC_INCREMENT: Final = 26
SPEEX_PREPROCESS_SET_AGC_DECREMENT: Final = 28
SPEEX_PREPROCESS_SET_AGC_MAX_GAIN: Final = 30
SPEEX_PREPROCESS_GET_AGC_GAIN: Final = 35
SPEEX_PREPROCESS_SET_AGC_TARGET: Final = 46

LIBRARY_NAME: Final = "libspeexdsp.so.1"
INSTALL_FIX: Final = "install it: sudo apt-get install libspeexdsp1"


class VoiceProcessingUnavailable(RuntimeError):
    """libspeexdsp cannot be loaded: calls work, without echo cancellation or noise
    suppression."""

    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(
            f"{reason}; echo cancellation and noise suppression are off (the call still "
            f"works). Fix: {fix}"
        )
        self.reason = reason
        self.fix = fix


_library: ctypes.CDLL | None = None


def load_speexdsp() -> ctypes.CDLL:
    """libspeexdsp with the prototypes we use, or :class:`VoiceProcessingUnavailable`."""
    global _library
    if _library is not None:
        return _library
    names = [LIBRARY_NAME]
    found = ctypes.util.find_library("speexdsp")
    if found and found not in names:
        names.append(found)
    errors: list[str] = []
    lib: ctypes.CDLL | None = None
    for name in names:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(str(exc))
    if lib is None:
        raise VoiceProcessingUnavailable(
            f"libspeexdsp is not available ({'; '.join(errors)})", INSTALL_FIX
        )
    try:
        _declare(lib)
    except AttributeError as exc:  # a build without the echo canceller or preprocessor
        raise VoiceProcessingUnavailable(
            f"libspeexdsp lacks a function we need ({exc})", INSTALL_FIX
        ) from exc
    _library = lib
    return lib


def _declare(lib: ctypes.CDLL) -> None:
    ptr, c_int, c_void_p = ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p
    pcm = ctypes.c_void_p  # spx_int16_t *, passed as buffer addresses
    u32 = ctypes.c_uint32
    table: dict[str, tuple[Any, tuple[Any, ...]]] = {
        "speex_echo_state_init_mc": (ptr, (c_int, c_int, c_int, c_int)),
        "speex_echo_state_destroy": (None, (ptr,)),
        "speex_echo_state_reset": (None, (ptr,)),
        "speex_echo_cancellation": (None, (ptr, pcm, pcm, pcm)),
        "speex_echo_ctl": (c_int, (ptr, c_int, c_void_p)),
        "speex_preprocess_state_init": (ptr, (c_int, c_int)),
        "speex_preprocess_state_destroy": (None, (ptr,)),
        "speex_preprocess_run": (c_int, (ptr, pcm)),
        "speex_preprocess_ctl": (c_int, (ptr, c_int, c_void_p)),
        "speex_resampler_init_frac": (ptr, (u32, u32, u32, u32, u32, c_int, c_void_p)),
        "speex_resampler_destroy": (None, (ptr,)),
        "speex_resampler_set_rate_frac": (c_int, (ptr, u32, u32, u32, u32)),
        "speex_resampler_process_int": (c_int, (ptr, u32, pcm, c_void_p, pcm, c_void_p)),
        "speex_resampler_skip_zeros": (c_int, (ptr,)),
        "speex_resampler_reset_mem": (c_int, (ptr,)),
        "speex_resampler_get_input_latency": (c_int, (ptr,)),
    }
    for name, (restype, argtypes) in table.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes


class EchoCanceller:
    """One mono SpeexDSP echo canceller: ``frame_size`` samples per call, a filter of
    ``filter_length`` samples (the echo tail it can cancel)."""

    def __init__(self, frame_size: int, filter_length: int, sample_rate: int) -> None:
        if frame_size <= 0 or filter_length < frame_size:
            raise ValueError("the filter must be at least one frame long")
        self._lib = load_speexdsp()
        self.frame_size = frame_size
        self.filter_length = filter_length
        state = self._lib.speex_echo_state_init_mc(frame_size, filter_length, 1, 1)
        if not state:
            raise VoiceProcessingUnavailable("speex_echo_state_init_mc failed", INSTALL_FIX)
        self.state: int = state
        rate = ctypes.c_int(sample_rate)
        self._lib.speex_echo_ctl(self.state, SPEEX_ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))

    def cancel(self, rec: int, play: int, out: int) -> None:
        """Cancel one frame: ``rec``, ``play`` and ``out`` are addresses of ``frame_size``
        int16 samples (``out`` may not alias ``rec``)."""
        self._lib.speex_echo_cancellation(self.state, rec, play, out)

    def reset(self) -> None:
        self._lib.speex_echo_state_reset(self.state)

    def impulse_response(self, out: ctypes.Array[ctypes.c_int32]) -> None:
        """Copy the filter's current impulse response (``filter_length`` int32 taps, scaled
        by 32767) into ``out``."""
        if len(out) < self.filter_length:
            raise ValueError("the impulse response buffer is shorter than the filter")
        self._lib.speex_echo_ctl(self.state, SPEEX_ECHO_GET_IMPULSE_RESPONSE, out)

    def close(self) -> None:
        if self.state:
            self._lib.speex_echo_state_destroy(self.state)
            self.state = 0

    def __del__(self) -> None:
        if getattr(self, "state", 0):
            self.close()


class Preprocessor:
    """One SpeexDSP preprocessor: noise suppression, automatic gain control and, given an
    :class:`EchoCanceller`, residual echo suppression. Runs in place on ``frame_size``
    samples."""

    def __init__(self, frame_size: int, sample_rate: int) -> None:
        self._lib = load_speexdsp()
        self.frame_size = frame_size
        state = self._lib.speex_preprocess_state_init(frame_size, sample_rate)
        if not state:
            raise VoiceProcessingUnavailable("speex_preprocess_state_init failed", INSTALL_FIX)
        self.state: int = state
        self._int = ctypes.c_int32()
        self._float = ctypes.c_float()

    def set_int(self, request: int, value: int) -> None:
        self._int.value = value
        if self._lib.speex_preprocess_ctl(self.state, request, ctypes.byref(self._int)) != 0:
            raise ValueError(f"speex_preprocess_ctl refused request {request}")

    def get_int(self, request: int) -> int:
        self._lib.speex_preprocess_ctl(self.state, request, ctypes.byref(self._int))
        return self._int.value

    def set_echo_state(self, canceller: EchoCanceller | None) -> None:
        """Suppress the residual echo ``canceller`` estimates (``None``: stop)."""
        pointer = ctypes.c_void_p(canceller.state if canceller is not None else None)
        self._lib.speex_preprocess_ctl(self.state, SPEEX_PREPROCESS_SET_ECHO_STATE, pointer)

    def run(self, pcm: int) -> None:
        """Process one frame in place at address ``pcm``."""
        self._lib.speex_preprocess_run(self.state, pcm)

    def close(self) -> None:
        if self.state:
            self._lib.speex_preprocess_state_destroy(self.state)
            self.state = 0

    def __del__(self) -> None:
        if getattr(self, "state", 0):
            self.close()


class Resampler:
    """SpeexDSP's resampler on one channel of int16: from ``in_rate`` to ``out_rate`` (the
    same by default). It reads ``num / den`` input samples per output sample, the ratio
    adjustable while it runs (:meth:`set_ratio`), with no jump in the output. Its FIR filter
    delays the output by half its length (:attr:`latency`, in input samples) unless
    :meth:`restart` skipped it."""

    def __init__(self, quality: int = 3, in_rate: int = 48000, out_rate: int = 48000) -> None:
        self._lib = load_speexdsp()
        self.in_rate, self.out_rate = in_rate, out_rate
        error = ctypes.c_int(0)
        state = self._lib.speex_resampler_init_frac(
            1, in_rate, out_rate, in_rate, out_rate, quality, ctypes.byref(error)
        )
        if not state:
            raise VoiceProcessingUnavailable(
                f"speex_resampler_init_frac failed ({error.value})", INSTALL_FIX
            )
        self.state: int = state
        self._in_len = ctypes.c_uint32()
        self._out_len = ctypes.c_uint32()
        self._in_len_ref = ctypes.byref(self._in_len)
        self._out_len_ref = ctypes.byref(self._out_len)

    @property
    def latency(self) -> int:
        """The output's delay behind the input (input samples), from the start."""
        return int(self._lib.speex_resampler_get_input_latency(self.state))

    def set_ratio(self, num: int, den: int) -> None:
        """Read ``num / den`` input samples per output sample (both > 0)."""
        rates = (self.in_rate, self.out_rate)
        if self._lib.speex_resampler_set_rate_frac(self.state, num, den, *rates) != 0:
            raise ValueError(f"speex_resampler_set_rate_frac refused {num}/{den}")

    def restart(self) -> None:
        """Forget the input so far: the next input's first sample is the next output's."""
        self._lib.speex_resampler_reset_mem(self.state)
        self._lib.speex_resampler_skip_zeros(self.state)

    def process(self, source: int, available: int, out: int, wanted: int) -> tuple[int, int]:
        """Resample from ``available`` int16 samples at address ``source`` into up to
        ``wanted`` at ``out``: (input samples read, output samples written)."""
        self._in_len.value = available
        self._out_len.value = wanted
        self._lib.speex_resampler_process_int(
            self.state, 0, source, self._in_len_ref, out, self._out_len_ref
        )
        return self._in_len.value, self._out_len.value

    def close(self) -> None:
        if self.state:
            self._lib.speex_resampler_destroy(self.state)
            self.state = 0

    def __del__(self) -> None:
        if getattr(self, "state", 0):
            self.close()
