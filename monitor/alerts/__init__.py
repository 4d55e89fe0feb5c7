"""Alerts: rendering messages, and the dispatcher that sends the outbox through apprise."""

from .dispatch import (
    Channel,
    DispatchCounts,
    Dispatcher,
    channel_problems,
    load_channel,
    send,
    send_test,
)
from .render import Message, render

__all__ = [
    "Channel",
    "DispatchCounts",
    "Dispatcher",
    "Message",
    "channel_problems",
    "load_channel",
    "render",
    "send",
    "send_test",
]
