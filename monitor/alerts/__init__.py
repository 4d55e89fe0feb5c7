"""Alerts: templates per format, the delivery policy (rate limits, quiet hours), and the
dispatcher that sends the outbox through apprise."""

from .dispatch import (
    RETRY_AFTER_CAP,
    Channel,
    Delivery,
    DispatchCounts,
    Dispatcher,
    channel_from_settings,
    channel_problems,
    deliver,
    load_channel,
    send,
    send_test,
)
from .policy import Plan, Policy, QuietHours, plan
from .render import Message, Renderer, slack_escape
from .templates import default_templates, render, renderer

__all__ = [
    "RETRY_AFTER_CAP",
    "Channel",
    "Delivery",
    "DispatchCounts",
    "Dispatcher",
    "Message",
    "Plan",
    "Policy",
    "QuietHours",
    "Renderer",
    "channel_from_settings",
    "channel_problems",
    "default_templates",
    "deliver",
    "load_channel",
    "plan",
    "render",
    "renderer",
    "send",
    "send_test",
    "slack_escape",
]
