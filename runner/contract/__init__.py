"""The contract between qlrf-run's clients, runs and workers.

- names: every name that crosses the Temporal boundary, and the limits;
- vocab: the statuses and actions, as StrEnums;
- wire: the dataclasses that travel as workflow and activity arguments;
- messages: decisions and control requests, parsed where they arrive;
- state: a run as people see it (RunView), built once by the engine;
- events: what the run writes to the run store.

Everything is plain data with no Temporal import, so every layer may use it.
"""

from runner.contract.names import *  # noqa: F403
from runner.contract.wire import BatchInput as BatchInput
from runner.contract.wire import BatchItem as BatchItem
from runner.contract.wire import BatchResult as BatchResult
from runner.contract.wire import LockInput as LockInput
from runner.contract.wire import PagedSource as PagedSource
from runner.contract.wire import RunInput as RunInput
from runner.contract.wire import StepRequest as StepRequest
from runner.contract.wire import StepResult as StepResult
from runner.contract.wire import lock_wait_text as lock_wait_text
from runner.contract.wire import lock_workflow_id as lock_workflow_id
from runner.contract.wire import payload_size as payload_size
