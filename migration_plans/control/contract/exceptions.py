"""Errors of the contract check.

ContractError             the check cannot run (names what is missing or wrong)
└── EnvironmentFailed     a database or process of the check's environment did not come up
"""

from __future__ import annotations


class ContractError(Exception):
    """The contract check cannot run; the message says what to fix."""


class EnvironmentFailed(ContractError):
    """Preparing a database or starting the monolith or the service failed."""
