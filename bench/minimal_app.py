"""The reference for the benchmark's ratios: a minimal Slack assistant on the same libraries.

Bolt over Socket Mode, the OpenAI SDK's streamed Responses call, `chat.postMessage` with the whole answer
— nothing else: no inbox, no journal, no conversation, no names, no live reply. Run as
`python bench/minimal_app.py` with the same environment as the bridge (SLACK_BOT_TOKEN, SLACK_APP_TOKEN,
SLACK_API_URL, OPENAI_API_KEY, OPENAI_BASE_URL, OPENAI_MODEL); SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import openai
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


async def main() -> None:
    client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
    app = AsyncApp(client=client, token=os.environ["SLACK_BOT_TOKEN"])
    model = openai.AsyncOpenAI(api_key=os.environ["OPENAI_API_KEY"], base_url=os.environ["OPENAI_BASE_URL"])

    @app.event("message")
    async def answer(event: dict[str, Any]) -> None:
        if event.get("bot_id") or event.get("subtype"):
            return
        stream = await model.responses.create(model=os.environ["OPENAI_MODEL"], input=event["text"], stream=True)
        text = ""
        async for item in stream:
            if item.type == "response.output_text.delta":
                text += item.delta
        await client.chat_postMessage(channel=event["channel"], text=text)

    handler = AsyncSocketModeHandler(app, os.environ["SLACK_APP_TOKEN"])
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await handler.connect_async()
    await stop.wait()
    await handler.close_async()


if __name__ == "__main__":
    asyncio.run(main())
