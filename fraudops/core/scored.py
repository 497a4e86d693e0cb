"""Which days are scored, by which model and from which marts, and which days owe a new score.

Every clean day past the warm-up is scored once it has arrived, in the first run whose logical
day reaches it, whatever run cleaned it: a late file, days that arrive together, days cleaned
after a pause. When a day's marts change after it was scored (its file was corrected or
withdrawn, or a changed day earlier in its windows moved its features), its scores are owed
again: the features step records the days it rebuilt (``owe``), and the next score run
replaces their scores and alerts and records the restatement with its reason.

Two small files, beside the other state (fraudops.core.lake):

    _state/pending/score.json   {day: {"reason", "features_run"}}  owed by features
    _state/scores.json          {day: ledger entry}                 written by score

A ledger entry names the model version, the run and logical day that scored the day, the
features run whose marts it read (``features_run``: the lake state the scores came from), and
its restatements. The score step settles a run in one call (``settle``): the ledger first,
then it drops the owed entries it consumed, and only those (an entry that features replaced
meanwhile stays owed), so a retry after a crash in between neither loses nor repeats a
restatement. Callers of ``owe`` and ``settle`` hold the lake's lease (fraudops.core.lease).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fraudops.core import storage
from fraudops.core.lake import Lake

NEW = "new"
WITHDRAWN = "withdrawn: the day has no clean rows any more"


def owed(lake: Lake) -> dict[str, dict]:
    return dict(storage.read_json(lake.score_pending, default={}) or {})


def ledger(lake: Lake) -> dict[str, dict]:
    return dict(storage.read_json(lake.score_ledger, default={}) or {})


def rebuild_reasons(changed: list[str], rebuilt: list[str], deleted: list[str]) -> dict[str, str]:
    """Why each day a features run rebuilt (or removed) may score differently now."""
    changed = sorted(changed)
    reasons = {}
    for day in rebuilt:
        if day in changed:
            reasons[day] = "its own data changed (a new, corrected or re-deduplicated file)"
        else:
            source = max(c for c in changed if c < day)
            reasons[day] = f"its feature windows reach {source}, whose data changed"
    reasons.update({day: WITHDRAWN for day in deleted})
    return reasons


def owe(lake: Lake, reasons: dict[str, str], features_run: str) -> None:
    """Record that the marts of these days were rebuilt by ``features_run`` (or removed)."""
    if not reasons:
        return
    current = owed(lake)
    current.update({day: {"reason": why, "features_run": features_run}
                    for day, why in reasons.items()})
    storage.write_json(lake.score_pending, dict(sorted(current.items())))


@dataclass(frozen=True)
class Plan:
    """What one score run does, decided from the state before it writes anything."""

    as_of: str
    score: list[str]  # days to (re)score, in order
    restated: dict[str, str]  # of those, the days scored before: day -> reason
    withdraw: list[str]  # scored days that lost their clean rows: scores and alerts removed
    consumed: dict[str, dict] = field(default_factory=dict)  # owed entries this run settles
    features_run: dict[str, str | None] = field(default_factory=dict)  # day -> lake state

    @property
    def days(self) -> list[str]:
        return sorted(set(self.score) | set(self.withdraw))


def plan(lake: Lake, as_of: str, clean_days: list[str], first_scored_day: str | None,
         run_id: str | None = None) -> Plan:
    """Days a run for ``as_of`` scores: every clean day from ``first_scored_day`` (the first
    day whose features are complete) to ``as_of`` that was never scored or is owed again.
    Days after ``as_of`` wait for their own run; owed days before ``first_scored_day`` are
    dropped (they are never scored). A retry of ``run_id`` after it settled scores the same
    days again, with the same reasons, so that it ends as the uninterrupted run would."""
    done, debts, clean = ledger(lake), owed(lake), set(clean_days)
    mine = {d: e for d, e in done.items()
            if run_id is not None and e.get("run_id") == run_id and e.get("as_of") == as_of}

    def in_range(day: str) -> bool:
        return first_scored_day is not None and first_scored_day <= day <= as_of

    def settled(day: str) -> bool:  # this very debt was settled (a retry after a crash)
        return day in done and done[day].get("settled") == debts[day]

    never = {d for d in clean if in_range(d) and d not in done}
    again = {d for d in debts if in_range(d) and d in clean and not settled(d)}
    withdraw = sorted(d for d in done if d <= as_of and d not in clean
                      and not done[d].get("withdrawn"))
    score = sorted(never | again | {d for d, e in mine.items() if not e.get("withdrawn")})
    restated = {d: debts[d]["reason"] if d in debts else "owed again" for d in score
                if d in done}
    withdraw = sorted(set(withdraw) | {d for d, e in mine.items() if e.get("withdrawn")})
    for day in withdraw:
        restated[day] = debts.get(day, {}).get("reason", WITHDRAWN)
    for day, entry in mine.items():  # what this run recorded before it was interrupted
        own = [r for r in entry.get("restatements", []) if r["run_id"] == run_id]
        if own:
            restated[day] = own[-1]["reason"]
        else:
            restated.pop(day, None)
    consumed = {d: debt for d, debt in debts.items()
                if d <= as_of and (d in score or d in withdraw or not in_range(d)
                                   or d not in clean or settled(d))}
    features_run = {d: debts[d]["features_run"] if d in debts and d not in mine
                    else done.get(d, {}).get("features_run") if d in mine else None
                    for d in score}
    return Plan(as_of, score, restated, withdraw, consumed, features_run)


def settle(lake: Lake, plan: Plan, model_version: str, run_id: str,
           rows: dict[str, int]) -> dict[str, dict]:
    """Write the ledger for a scored plan, then drop the owed entries it consumed."""
    entries = ledger(lake)

    def settled(day: str) -> dict | None:  # a retry keeps the debt its first try settled
        current = entries.get(day) or {}
        return plan.consumed.get(day, current.get("settled")
                                 if current.get("run_id") == run_id else None)

    for day in plan.score:
        before = _before(entries.get(day), run_id)
        entry = {"model_version": str(model_version), "run_id": run_id, "as_of": plan.as_of,
                 "rows": rows.get(day, 0), "features_run": plan.features_run.get(day),
                 "first_as_of": (before or {}).get("first_as_of", plan.as_of),
                 "settled": settled(day),
                 "restatements": list((before or {}).get("restatements", []))}
        if day in plan.restated:
            entry["restatements"].append(_restatement(plan, day, before, run_id))
        entries[day] = entry
    for day in plan.withdraw:
        before = _before(entries[day], run_id) or entries[day]
        entries[day] = {**before, "withdrawn": True, "rows": 0, "run_id": run_id,
                        "settled": settled(day),
                        "restatements": [*before.get("restatements", []),
                                         _restatement(plan, day, before, run_id)]}
    storage.write_json(lake.score_ledger, dict(sorted(entries.items())))
    debts = owed(lake)
    left = {d: debt for d, debt in debts.items() if plan.consumed.get(d) != debt}
    if left != debts:
        storage.write_json(lake.score_pending, left)
    return entries


def _before(entry: dict | None, run_id: str) -> dict | None:
    """A ledger entry as it was before ``run_id`` touched it (for a retry of that run)."""
    if entry is None or entry.get("run_id") != run_id:
        return entry
    own = [r for r in entry.get("restatements", []) if r["run_id"] == run_id]
    if not own:
        return None  # the run scored the day first
    rest = [r for r in entry["restatements"] if r["run_id"] != run_id]
    return {**entry, "model_version": own[-1]["previous_model_version"],
            "run_id": own[-1]["previous_run_id"], "restatements": rest}


def _restatement(plan: Plan, day: str, before: dict | None, run_id: str) -> dict:
    return {"as_of": plan.as_of, "run_id": run_id, "reason": plan.restated[day],
            "previous_model_version": (before or {}).get("model_version"),
            "previous_run_id": (before or {}).get("run_id")}


def status(lake: Lake, clean_days: list[str], as_of: str | None = None) -> dict:
    """Counts a person (and the backtest) reads: scored, restated, stale and late days.

    A day is late when it was first scored by a run for a later day than itself (its file came
    after the run of its own day had started), the first run's backlog aside. A day is stale when, up to the last day a run
    scored (or ``as_of``), its scores are owed again, or it is a clean day after the first
    scored one that has no scores.
    """
    entries, debts = ledger(lake), owed(lake)
    last = as_of or max((e["as_of"] for e in entries.values()), default=None)
    live = {d: e for d, e in entries.items() if not e.get("withdrawn")}
    first = min(live, default=None)
    first_run = min((e["first_as_of"] for e in entries.values()), default="")
    unscored = {d for d in clean_days if first is not None and first <= d and d not in live}
    stale = sorted(d for d in set(debts) | unscored
                   if last is not None and first is not None and first <= d <= last)
    return {
        "days_scored": len(live),
        "days_restated": sum(1 for e in entries.values() if e.get("restatements")),
        "restatements": sum(len(e.get("restatements", [])) for e in entries.values()),
        "days_withdrawn": sum(1 for e in entries.values() if e.get("withdrawn")),
        "late_days": sorted(d for d, e in live.items()
                            if e["first_as_of"] > max(d, first_run)),
        "stale_days": stale,
        "stale_scores": len(stale),
    }
