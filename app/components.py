"""Gradio components with the app's input rules.

``Slider``: Gradio's slider checks its value against its range before any handler runs, and a slider's number box
that a person empties sends ``None``, which that check cannot compare: the event failed with a server traceback
and an unexplained "Error" badge. This slider hands its value to the handler as typed (a number, or ``None`` when
the box is empty); every handler that reads a slider checks the value itself and refuses in words that name the
control (``whole_number``, ``scale_number`` in app/handler_util.py). The browser draws it as Gradio's slider.

``Number``: the same for a number box with a range (a seed, a count of samples): Gradio's own refused a number
beyond the range before the handler ran, with a message that named no control.
"""

from __future__ import annotations

import math
from typing import Any

import gradio as gr

from app.handler_util import is_empty


def _as_typed(payload: Any, precision: int | None) -> Any:
    """None for an empty box; a finite number rounded as Gradio rounds it; anything else unchanged, for the handler
    to refuse in words."""
    if is_empty(payload):
        return None
    try:
        v = float(payload)
    except (TypeError, ValueError):
        return payload
    return gr.Number.round_to_precision(v, precision) if math.isfinite(v) else v


class Slider(gr.Slider):
    is_template = True  # Gradio draws a template component with its base class's front end: the slider

    def preprocess(self, payload: Any) -> Any:
        return _as_typed(payload, self.precision)


class Number(gr.Number):
    is_template = True  # drawn by Gradio's number box

    def preprocess(self, payload: Any) -> Any:
        return _as_typed(payload, self.precision)
