"""Errors of the shared contract.

    ContractError
    ├── SettingsError     a variable of the environment is missing or bad (the message names it)
    └── PayloadError      a webhook body cannot be used (the message names the JSON path)
"""

from __future__ import annotations


class ContractError(Exception):
    """Base of the errors raised by the contract package."""


class SettingsError(ContractError):
    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class PayloadError(ContractError):
    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
