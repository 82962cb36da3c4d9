"""What a shared image adds to a turn: text messages and messages carrying one image (`--image-kb`,
1 MB by default), alternately, one at a time, on the default `responses` backend."""

from __future__ import annotations

import os
import struct
import time
import zlib

from bench.report import Section
from bench.scenarios import CLOCK_NOTE, health_row
from bench.timeline import Trace, collect, dist
from bench.world import Setup, World, token_text

GAP = 0.05  # seconds after each reply before the next message
CHANNELS = 20  # round robin: a channel's next message comes after its last reply's pacing (1 post/s) is over


def png(size: int) -> bytes:
    """A valid PNG of about `size` bytes: a 1×1 image and random (incompressible, like a photo's) bytes
    in an ancillary chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"prVt", os.urandom(max(size - 80, 0))) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def files(setup: Setup, pairs: int, image_kb: int) -> Section:
    """`pairs` text messages and `pairs` image messages, alternately, each after the previous answer."""
    image = png(image_kb * 1024)
    section = Section(f"Files: {pairs} text messages and {pairs} messages with one {len(image) / 1024:.0f} KB PNG, "
                      f"alternately, one at a time over {CHANNELS} warmed channels (responses backend)")
    texts, images = [], []
    with World(CHANNELS, setup) as world:
        cold = world.warm_up(range(CHANNELS), 0, one_at_a_time=True)
        for token in range(CHANNELS, CHANNELS + 2 * pairs):
            channel, question = token % CHANNELS, f"question {token_text(token)}, please answer"
            if token % 2:
                images.append(token)
                world.slack.share_file(world.channel_ids[channel], world.user_ids[token % world.user_count],
                                       "photo.png", image, "image/png", text=question)
            else:
                texts.append(token)
                world.say(channel, token)
            world.wait(lambda c=channel, t=token: world.channel_answered(c, t), 60, f"the reply to {token}", 0.005)
            time.sleep(GAP)
        traces = collect(world, [*cold, *texts, *images])
        sent = [len(str(r.json)) for r in world.openai.requests("/v1/responses")
                if r.method == "POST" and "input_image" in str(r.json)[:200_000]]
        downloads = world.slack.file_downloads()
        violations = world.violations()
    _rows(section, [traces[t] for t in texts], [traces[t] for t in images])
    section.add("image downloads from Slack", f"{len(downloads)} for {len(images)} image messages "
                f"({sum(d.status == 200 for d in downloads)} answered 200, all with the bot token: "
                f"{all(d.authorization == 'bearer' for d in downloads)})")
    if sent:
        section.add("model request body with the image", f"{sum(sent) / len(sent) / 1024:.0f} KB of JSON on average "
                    "(the image as a base64 data URL)")
    health_row(section, world.health, violations)
    section.note(CLOCK_NOTE)
    section.note("(a) = model request received by the OpenAI emulator − event delivered: for an image message it "
                 "includes the download from the Slack emulator (url_private_download, bot token) and "
                 "building the data URL, but not all of the upload (the emulator stamps a request when its headers "
                 "arrive). End to end (event delivered → answer in Slack) includes the whole upload and the model "
                 "reading it; the model answers at once, so the difference between the two kinds is what the image "
                 "adds. Both emulators run on this machine: no network between them and the bridge.")
    return section


def _rows(section: Section, texts: list[Trace], images: list[Trace]) -> None:
    for label, pick in (("(a) event delivered → model request received", lambda t: (t.delivered, t.model_received)),
                        ("end to end: event delivered → answer in Slack", lambda t: (t.delivered, t.answered))):
        text, image = dist(map(pick, texts)), dist(map(pick, images))
        section.add(f"{label}, text", str(text))
        section.add(f"{label}, image", str(image))
        added = f"{image.p50 - text.p50:7.2f} ms / {image.p95 - text.p95:7.2f} ms"
        section.add("    added by the image, p50 / p95", added)
