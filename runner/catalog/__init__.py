"""The step-type catalog: what a step type is, the registry, and the schema vocabulary.

Below both the language front end (runner.dsl) and the engine: the front end
checks runbooks against it, the compiler copies a type's capabilities into the
plan, and the engine reads them from the plan, so no module switches on a type's
name.
"""
