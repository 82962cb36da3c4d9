"""The conversation: each channel's conversation id, what one turn sends to the model (speaker-marked
messages, the instructions), and the operator's tools with their schemas."""
