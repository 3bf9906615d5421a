"""Delegation memory for orchestration agents: briefs, outcomes and Claude tools.

Depends on `memory` and `graph`.
"""

from agents.briefs import (
    AgentRecommendation,
    Brief,
    BriefArtifact,
    BriefIncident,
    BriefLesson,
    BriefRequest,
    LessonSource,
    Risk,
    SimilarDelegation,
    render_markdown,
)
from agents.delegations import Delegations, feedback_boost
from agents.outcomes import (
    AgentTrackRecord,
    DelegationState,
    ExtractionReport,
    LessonTarget,
    OutcomeArtifact,
    OutcomeLesson,
    OutcomeRecord,
    OutcomeRequest,
    RecordedArtifact,
    RecordedLesson,
)

__all__ = [
    "AgentRecommendation", "AgentTrackRecord", "Brief", "BriefArtifact", "BriefIncident", "BriefLesson", "BriefRequest",
    "DelegationState", "Delegations", "ExtractionReport", "LessonSource", "LessonTarget", "OutcomeArtifact",
    "OutcomeLesson", "OutcomeRecord", "OutcomeRequest", "RecordedArtifact", "RecordedLesson", "Risk",
    "SimilarDelegation", "feedback_boost", "render_markdown",
]
