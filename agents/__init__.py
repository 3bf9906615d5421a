"""Delegation memory for orchestration agents: briefs, outcomes and Claude tools.

Depends on `memory` and `graph`.
"""
