"""Answers built for a pod template, reused for its other pods: a bounded LRU.

A ReplicaSet's pods share one template, so the webhook builds the decision and the
JSONPatch (already base64-encoded, as the review carries it) once per template and
answers the others from here, under `webhook.core.injection.template.key`: what the answer is
a function of. The answer stays exactly the fresh one (`tests/unit/test_answers.py`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final

from webhook.admission import review
from webhook.core.injection import mutation, template
from webhook.settings import Settings

# Templates, not pods: a cluster has a handful of validator templates; a miss only
# costs the fresh build.
SIZE: Final = 256


class Answers:
    """The decision and the encoded patch (empty: none) for a pod, reused per template."""

    def __init__(self, *, settings: Settings, size: int = SIZE) -> None:
        self.settings = settings
        self.size = size
        self._built: OrderedDict[bytes, tuple[mutation.Decision, str]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._built)

    def answer(self, pod: Mapping[str, Any]) -> tuple[mutation.Decision, str]:
        key = template.key(pod)
        if key is not None:
            found = self._built.get(key)
            if found is not None:
                self._built.move_to_end(key)
                return found
        decision, ops = mutation.patch_for(pod, settings=self.settings)
        built = (decision, review.encode_patch(ops) if ops else "")
        if key is not None:
            self._built[key] = built
            if len(self._built) > self.size:
                self._built.popitem(last=False)
        return built
