"""A failed step's cause in one line for the terminal: the error our code (or a library) raised, not
Dagster's wrapper around it ("Error occurred while executing op ..."), which stays in the log file.

Our errors already say what failed, on which file, host or cell, and what to do (dg.Failure and the
core's errors are written that way), so the line is that error's own message, its lines joined. A
training child's own exception (reported through Pipes when it closes) comes before the parent's
"the child failed".
"""
from __future__ import annotations

LINE_CHARS = 400  # a cause longer than this is cut; the log file has all of it


def user_error(error):
    """The outermost error in `error`'s cause chain that is not one of Dagster's own wrappers (their
    class names start with "Dagster"): the exception the asset's code raised or let through. When
    every link is Dagster's, the innermost one."""
    link = error
    while link is not None:
        if not link.cls_name.startswith("Dagster"):
            return link
        if link.cause is None and link.context is None:
            return link
        link = link.cause or link.context
    return error


def error_text(link) -> str:
    """The error's message on one line: without the module-qualified class name Python's
    format_exception_only puts first, with the short class name instead unless it is a dg.Failure
    (whose description is the whole message)."""
    message = " ".join(line.strip() for line in (link.message or "").splitlines() if line.strip())
    head, sep, rest = message.partition(": ")
    if sep and head.split(".")[-1] == link.cls_name:
        message = rest
    return message if link.cls_name == "Failure" else f"{link.cls_name}: {message}"


def failure_line(error) -> str:
    """One line naming the cause of a failed step (a dagster SerializableErrorInfo)."""
    text = error_text(user_error(error))
    return text if len(text) <= LINE_CHARS else text[:LINE_CHARS - 3] + "..."


PIPES_CLOSED_WITH_ERROR = "[pipes] external process pipes closed with exception"


def events_failure_line(events) -> str | None:
    """The cause among a run's DagsterEvents: the error a Pipes child reported when it closed (the
    training command's own exception: Dagster's step error only says the process exited with 1),
    else the first failed step's; None when neither is there."""
    step_error = None
    for event in events:
        error = getattr(event.event_specific_data, "error", None)
        if error is None:
            continue
        if event.is_engine_event and (event.message or "").startswith(PIPES_CLOSED_WITH_ERROR):
            return failure_line(error) + " (in the training child; its traceback is in the log)"
        if event.is_step_failure and step_error is None:
            step_error = error
    return failure_line(step_error) if step_error is not None else None


def run_failure_line(instance, run_id: str) -> str:
    """The cause of a failed run, read from its event log (an in-process result's own event list
    lacks the Pipes engine events), or where to look when none is recorded."""
    events = [entry.dagster_event for entry in instance.all_logs(run_id) if entry.dagster_event is not None]
    return events_failure_line(events) or "the run failed before any step did: see the log file"
