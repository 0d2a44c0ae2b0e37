"""Rules from the hosted platforms: who may do what, on which environment, until when.

Pure functions: they decide and raise; ``services/`` calls them before acting, so the
CLI, the API and the console cannot disagree.
"""

from snapkeep.policy.retention import RetentionPolicy, SnapshotFacts, plan_expiry
from snapkeep.policy.rules import (
    Action,
    Actor,
    expires_at,
    is_restorable,
    local_operator,
    may,
    require_active,
    require_manual_snapshot_allowed,
    require_restorable,
    require_role,
)
from snapkeep.policy.schedules import (
    PlanSchedule,
    next_run,
    next_runs,
    plan_schedule,
    require_schedule_role,
    validate_cron,
)

__all__ = [
    "Action", "Actor", "RetentionPolicy", "SnapshotFacts", "expires_at", "is_restorable",
    "local_operator", "may", "plan_expiry", "require_active", "require_manual_snapshot_allowed",
    "require_restorable", "require_role",
    "PlanSchedule", "next_run", "next_runs", "plan_schedule", "require_schedule_role",
    "validate_cron",
]
