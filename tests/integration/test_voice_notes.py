"""Voice messages through real devices and a real relay process (issue 14, test 4).

espeak-ng speech goes into a PulseAudio pipe source that alice's app records from
(``service.voice``, the PortAudio microphone), is sent as a voice message through a relay
process, downloaded by bob and played by bob's app into a pipe sink: wideband PESQ of what
the sink heard against the source, the ``.ogg`` checked by opusinfo/opusdec and its rate."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
import wave
from pathlib import Path

import pytest

from messenger_tui.app.errors import BadInput
from tests.helpers.clients import client, introduce, wait_for
from tests.helpers.pulseaudio import PulseServer, write_wav
from tests.helpers.relay_process import RelayProcess
from tests.helpers.speech import SENTENCES, pesq_wb, speech_wav

pytestmark = pytest.mark.slow
_names = itertools.count()


@pytest.mark.xdist_group("realtime")
async def test_speech_recorded_sent_and_played_scores_3_5(
    tmp_path: Path, pulse_server: PulseServer
) -> None:
    n = next(_names)
    mic = pulse_server.add_pipe_source(f"vn-alice-mic{n}")
    speaker = pulse_server.add_pipe_sink(f"vn-bob-speaker{n}")
    speech = speech_wav(tmp_path / "speech", SENTENCES[0])
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            bob.set_download_dir(tmp_path / "downloads")
            await bob.start()
            with pulse_server.use(source=mic.name, sink=speaker.name):
                # recording: the app's microphone hears the speech in real time
                recording = await alice.voice.record(alice.contact("bob").id)
                await asyncio.sleep(0.2)
                mic.feed(speech)
                await asyncio.to_thread(mic.wait_fed)
                await asyncio.sleep(0.3)
                assert recording.elapsed_ms > 0 and not recording.at_limit
                ogg = recording.path
                sent = await alice.voice.send()
                assert sent.duration_ms is not None
                seconds = sent.duration_ms / 1000

                # the file a standard decoder plays, about 3 kB per second
                size = ogg.stat().st_size
                rate = size / seconds
                print(f"recorded {seconds:.2f} s, {size} bytes, {rate:.0f} B/s")
                assert 1500 <= rate <= 3400
                report = subprocess.run(
                    ["opusinfo", str(ogg)], capture_output=True, text=True, check=True
                )
                assert "WARNING" not in report.stdout + report.stderr
                decoded = tmp_path / "opusdec.wav"
                subprocess.run(["opusdec", "--quiet", str(ogg), str(decoded)], check=True)
                with wave.open(str(decoded), "rb") as wav:
                    assert abs(wav.getnframes() / 48000 - seconds) < 0.05

                done = await alice.wait_transfer(sent.id, 60)
                assert done.status == "done", done.error
                assert await alice.wait_outbox_empty(20)

                # bob receives it and plays it into his speaker
                await wait_for(
                    lambda: any(
                        t.direction == "down" and t.status == "done" for t in bob.transfers()
                    ),
                    60,
                )
                got = next(t for t in bob.transfers() if t.direction == "down")
                assert got.duration_ms == sent.duration_ms
                row = got.message_row
                assert row is not None
                message = bob.message(row)
                assert message is not None and message.kind == "voice"
                mark = speaker.mark()
                player = await bob.voice.play(row)
                assert player.duration_ms == sent.duration_ms
                started = time.monotonic()
                await wait_for(lambda: player.ended, seconds + 10)
                played_s = time.monotonic() - started
                await asyncio.sleep(0.3)
                heard = write_wav(tmp_path / "heard.wav", speaker.recorded(mark))
                await bob.voice.stop_playing()
    score = pesq_wb(speech, heard)
    print(f"voice message WB-PESQ {score:.2f}, played in {played_s:.2f} s of {seconds:.2f} s")
    assert score >= 3.5
    assert abs(played_s - seconds) < 1.0  # real time at 1x


async def test_recording_is_refused_during_a_call_and_cancel_removes_the_file(
    tmp_path: Path, pulse_server: PulseServer
) -> None:
    n = next(_names)
    mic = pulse_server.add_pipe_source(f"vn-cancel-mic{n}")
    with RelayProcess(tmp_path / "relay-data") as relay:
        async with (
            client(tmp_path, "alice", relay.url) as alice,
            client(tmp_path, "bob", relay.url) as bob,
        ):
            await introduce(alice, bob)
            with pulse_server.use(source=mic.name):
                recording = await alice.voice.record(alice.contact("bob").id)
                mic.feed_tone(440, 0.5)
                await asyncio.sleep(0.6)
                assert recording.path.exists() and recording.elapsed_ms >= 400
                with pytest.raises(BadInput, match="already being recorded"):
                    await alice.voice.record(alice.contact("bob").id)
                await alice.voice.cancel()
                assert not recording.folder.exists()
                with pytest.raises(BadInput, match="no voice message"):
                    await alice.voice.send()

                await alice.start()
                await bob.start()
                await wait_for(lambda: alice.connected, 10)
                alice.place_call(alice.contact("bob").id)
                with pytest.raises(BadInput, match="during a call"):
                    await alice.voice.record(alice.contact("bob").id)
                alice.hang_up()
