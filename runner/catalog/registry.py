"""The step-type registry: every type a runbook may name, loaded once at start-up."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from runner.catalog.step_type import StepType
from runner.errors import DuplicateStepType, UnknownStepType
from runner.suggest import closest


class Registry:
    """Name -> StepType. Registering a name twice fails, as Temporal's worker does."""

    def __init__(self, step_types: Iterable[StepType] = ()) -> None:
        self._types: dict[str, StepType] = {}
        for step_type in step_types:
            self.register(step_type)

    def register(self, step_type: StepType) -> None:
        existing = self._types.get(step_type.type)
        if existing is not None:
            raise DuplicateStepType(
                f"step type '{step_type.type}' is defined twice: in {existing.source} and in "
                f"{step_type.source}; remove or rename one of them"
            )
        self._types[step_type.type] = step_type

    def get(self, name: str) -> StepType:
        try:
            return self._types[name]
        except KeyError:
            raise UnknownStepType(name, self.names(), closest(name, self._types)) from None

    def find(self, name: object) -> StepType | None:
        """The step type called `name`, or None (for checks that tolerate bad input)."""
        return self._types.get(name) if isinstance(name, str) else None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def __iter__(self) -> Iterator[StepType]:
        return iter(sorted(self._types.values(), key=lambda t: t.type))

    def __len__(self) -> int:
        return len(self._types)

    def names(self) -> list[str]:
        return sorted(self._types)
