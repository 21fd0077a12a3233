"""Evaluation core: a task scored on sources of translations by shared metrics."""
