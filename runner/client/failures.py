"""How failures look in Temporal: routine ones without a stack trace.

A step that failed, a spent failure budget or a refused input is raised on purpose
as a Temporal failure (ApplicationError and its kin) whose message says everything;
its stack trace would only show qlrf-run's and the SDK's insides in the Temporal
UI. Any other exception is a bug, and keeps its stack trace for whoever debugs it.
The client and every worker built on it use this converter.
"""

from __future__ import annotations

import dataclasses

from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import FailureError


class RoutineFailureConverter(DefaultFailureConverter):
    def to_failure(
        self,
        exception: BaseException,
        payload_converter: PayloadConverter,
        failure: Failure,
    ) -> None:
        super().to_failure(exception, payload_converter, failure)
        if isinstance(exception, FailureError):
            current: Failure | None = failure
            while current is not None:
                current.stack_trace = ""
                current = current.cause if current.HasField("cause") else None


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, failure_converter_class=RoutineFailureConverter
)
