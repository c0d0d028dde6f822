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
from gradio.components.number import Number


class Slider(gr.Slider):
    is_template = True  # Gradio draws a template component with its base class's front end: the slider

    def preprocess(self, payload: Any) -> Any:
        if payload is None or (isinstance(payload, str) and not payload.strip()):
            return None
        try:
            v = float(payload)
        except (TypeError, ValueError):
            return payload  # the handler refuses it in words
        return Number.round_to_precision(v, self.precision) if math.isfinite(v) else v


class Number(gr.Number):
    is_template = True  # drawn by Gradio's number box

    def preprocess(self, payload: Any) -> Any:
        if payload is None or (isinstance(payload, str) and not payload.strip()):
            return None
        try:
            v = float(payload)
        except (TypeError, ValueError):
            return payload  # the handler refuses it in words
        return self.round_to_precision(v, self.precision) if math.isfinite(v) else v
