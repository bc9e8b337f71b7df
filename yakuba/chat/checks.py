"""System checks of the chat settings (ids chat.W4xx)."""
