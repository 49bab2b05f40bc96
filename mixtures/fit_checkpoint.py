"""A long EM fit that saves its state every few iterations and resumes from it.

:func:`checkpointed_run` runs EM from one start in segments of ``every``
iterations and, after each segment, writes the state (every finished
restart, and the current one's parameters, trace and iteration count) to one
file. Started again with the same file, the fit skips what is done and goes
on from the saved parameters. With ``stopping="change"`` and no
acceleration, segments give exactly the trace of one uninterrupted run:
each segment starts from the last parameters and compares its first value
with the last one saved. (With SQUAREM or Aitken's rule a segment restarts
their few-iteration memory: the path can differ, the answer is as valid.)

The rules of :mod:`mixtures.checkpoint` apply: the file holds a fingerprint
of the inputs and is ignored (and then replaced) when they differ; it is
written whole (a temporary file, then ``os.replace``) or not at all; it is a
pickle, so point a fit only at a file you wrote. Degenerate-component
events of segments before an interruption are not kept.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from mixtures.checkpoint import fingerprint, write_whole
from mixtures.em import EMRun, run_em

__all__ = ["FitCheckpoint", "checkpointed_run"]

#: Bumped whenever what the file holds changes meaning.
FORMAT = 1


class FitCheckpoint:
    """The state of a checkpointed fit in ``path``, for inputs ``key``.

    ``finished`` holds the restarts done (EMRun); ``current`` is None or
    ``(restart, EMRun so far)``.
    """

    def __init__(self, path, key) -> None:
        self.path = Path(path)
        self.key = fingerprint(FORMAT, key)
        self.finished: list[EMRun] = []
        self.current: tuple[int, EMRun] | None = None
        if self.path.exists():
            try:
                saved = pickle.loads(self.path.read_bytes())
            except Exception:  # unreadable: start afresh, never trust it
                return
            if saved.get("key") == self.key:
                self.finished = saved["finished"]
                self.current = saved["current"]

    def save(self) -> None:
        """Write the state whole, replacing the file in one step."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {"key": self.key, "finished": self.finished, "current": self.current}
        write_whole(self.path, pickle.dumps(state))


def checkpointed_run(store: FitCheckpoint, restart: int, start, every: int, **em):
    """:func:`mixtures.em.run_em` from ``start`` in segments of ``every`` iterations.

    ``em`` holds run_em's arguments (``X``, ``sample_weight``, ``policy``,
    ``max_iter``...). After each segment the state goes to ``store``;
    a saved state for this ``restart`` is resumed. Returns the whole EMRun.
    """
    if every < 1:
        raise ValueError(f"checkpoint_every must be an integer >= 1; got {every}.")
    max_iter = em.pop("max_iter")
    X, sample_weight, policy = em.pop("X"), em.pop("sample_weight"), em.pop("policy")
    events = tuple(em.pop("initial_events", ()))
    params, trace, n_iter, converged = start, np.zeros(0), 0, False
    if store.current is not None and store.current[0] == restart:
        saved = store.current[1]
        params, trace, n_iter, converged = (
            saved.params, saved.lower_bounds, saved.n_iter, saved.converged,
        )  # fmt: skip
        events = saved.events
    while n_iter < max_iter and not converged:
        segment = run_em(
            X,
            sample_weight,
            params,
            policy,
            max_iter=min(every, max_iter - n_iter),
            initial_lower_bound=float(trace[-1]) if trace.size else -np.inf,
            restart=restart,
            initial_events=events if n_iter == 0 else (),
            **em,
        )
        params, converged = segment.params, segment.converged
        trace = np.concatenate([trace, segment.lower_bounds])
        n_iter += segment.n_iter
        events = segment.events if n_iter == segment.n_iter else events + segment.events
        store.current = (restart, EMRun(params, trace, n_iter, converged, events))
        store.save()
    return EMRun(params, trace, n_iter, converged, events)
