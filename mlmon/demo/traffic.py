"""Traffic for the demo service: applications like the training data first, then drifted ones, with some
requests failing on purpose and the ground truth of a share of the predictions sent later as feedback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import requests

from mlmon.demo.processes import DemoError

# The service answers in about a millisecond; a few connections in parallel keep it busy without
# starving the rest of a small machine.
CONNECTIONS = 4


@dataclass(frozen=True)
class TrafficPlan:
    normal_rows: int = 400
    drifted_rows: int = 800
    shift: float = 1.2  # make_credit_data's shift of income and debt ratio
    error_every: int = 33  # one request in this many asks the model to fail
    feedback_every: int = 3  # the ground truth of one prediction in this many comes back
    seed: int = 7


@dataclass
class TrafficSent:
    requests: int = 0
    errors: int = 0
    predictions: int = 0
    feedback: int = 0

    def to_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "predictions": self.predictions,
            "feedback": self.feedback,
        }


Progress = Callable[[str, int, int], None]  # (phase, done, total)


class TrafficSender:
    """Sends the plan's requests to the service at ``url`` and counts what happened."""

    def __init__(self, url: str, plan: TrafficPlan) -> None:
        self.url = url
        self.plan = plan
        self.sent = TrafficSent()
        self._local = threading.local()  # one keep-alive connection per sending thread

    def run(self, normal: dict[str, Any], drifted: dict[str, Any], progress: Progress) -> TrafficSent:
        """Normal rows, then drifted rows, then the ground truth of a share of the predictions: it comes
        back late, as it does in production."""
        from mlmon.demo.model import rows

        total = self.plan.normal_rows + self.plan.drifted_rows
        pool = ThreadPoolExecutor(CONNECTIONS, thread_name_prefix="mlmon-demo-traffic")
        try:
            feedback = self._phase(pool, "normal", rows(normal), normal["outcome"], total, progress)
            feedback += self._phase(pool, "drifted", rows(drifted), drifted["outcome"], total, progress)
            total += len(feedback)
            for _ in pool.map(self._feedback, feedback):
                self.sent.feedback += 1
                done = self.sent.requests + self.sent.feedback
                if done % 50 == 0 or done == total:
                    progress("delayed feedback", done, total)
        finally:
            # On Ctrl-C or an error, drop the requests not yet sent rather than wait for all of them.
            pool.shutdown(wait=True, cancel_futures=True)
        return self.sent

    def _phase(
        self,
        pool: ThreadPoolExecutor,
        phase: str,
        applications: list[dict[str, Any]],
        outcomes: Any,
        total: int,
        progress: Progress,
    ) -> list[tuple[str, str]]:
        """Send one phase; returns the (predicted, actual) pairs whose feedback is to come."""
        every = self.plan.error_every
        first = self.sent.requests
        jobs = [(row, (first + i) % every == every // 2) for i, row in enumerate(applications)]
        feedback: list[tuple[str, str]] = []
        answers = pool.map(self._predict, jobs)
        for (_, failed), answer, actual in zip(jobs, answers, (str(o) for o in outcomes), strict=True):
            self.sent.requests += 1
            if failed:
                self.sent.errors += 1
            else:
                self.sent.predictions += 1
                if self.sent.predictions % self.plan.feedback_every == 0:
                    feedback.append((str(answer["prediction"]), actual))
            if self.sent.requests % 50 == 0 or self.sent.requests == total:
                progress(phase, self.sent.requests, total)
        return feedback

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def _predict(self, job: tuple[dict[str, Any], bool]) -> dict[str, Any]:
        row, fail = job
        body = json.dumps(
            {"features": row, "fail": fail}
        )  # a missing income goes out as NaN; the service reads it
        try:
            answer = self._session().post(
                f"{self.url}/predict", data=body, headers={"Content-Type": "application/json"}, timeout=10
            )
        except requests.RequestException as exc:
            raise DemoError(f"the demo service at {self.url} did not answer: {exc}") from None
        if fail != (answer.status_code == 500):
            raise DemoError(f"the demo service answered {answer.status_code}: {answer.text[:200]}")
        return dict(answer.json())

    def _feedback(self, pair: tuple[str, str]) -> None:
        predicted, actual = pair
        try:
            self._session().post(
                f"{self.url}/feedback", json={"predicted": predicted, "actual": actual}, timeout=10
            ).raise_for_status()
        except requests.RequestException as exc:
            raise DemoError(f"the demo service at {self.url} refused feedback: {exc}") from None
