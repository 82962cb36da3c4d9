"""The work layer's runner with real parts: the store, the backends against the OpenAI emulator, the
Slack client against the Slack emulator."""
