"""What a run publishes outside its history: search attributes and the memo.

`QlrfWaiting` lists the waiting gates, so `pending` is one visibility query; the
memo keeps the final state, so `status` answers after the run closed.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

from runner.contract import MEMO_LIMIT, WAITING_ATTRIBUTE, payload_size

WAITING_KEY = SearchAttributeKey.for_keyword_list(WAITING_ATTRIBUTE)


def waiting_gates(gates: list[str]) -> None:
    workflow.upsert_search_attributes([WAITING_KEY.value_set(gates)])


def final_state(state: dict[str, Any]) -> None:
    if payload_size(state) > MEMO_LIMIT:
        for step in state["steps"].values():
            step["output"] = "(left out: the final state was too large for the memo)"
    workflow.upsert_memo({"state": state})
