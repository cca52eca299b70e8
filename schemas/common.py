"""Small shared vocabulary of the common escalation schema."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["AgencyKind", "ConcernCategory", "Flag", "TimeUnit"]


class TimeUnit(StrEnum):
    """The unit of a timescale. Never guessed: "days" without "working" is calendar days."""

    WORKING_DAYS = "working_days"
    CALENDAR_DAYS = "calendar_days"
    HOURS = "hours"


class AgencyKind(StrEnum):
    SOCIAL_CARE = "social_care"
    HEALTH = "health"
    POLICE = "police"
    EDUCATION = "education"
    PROBATION = "probation"
    BUSINESS_OFFICE = "business_office"
    OTHER = "other"


class ConcernCategory(StrEnum):
    """What the disagreement is about (Northamptonshire 'Areas of Conflict', Gloucestershire 1.6,
    Buckinghamshire 2.4.6, Northumberland section 2)."""

    LEVELS_OF_NEED = "levels_of_need"
    THRESHOLDS = "thresholds"
    ROLES_AND_RESPONSIBILITIES = "roles_and_responsibilities"
    NEED_FOR_ACTION = "need_for_action"
    NEED_FOR_INACTION = "need_for_inaction"
    COMMUNICATION = "communication"
    INFORMATION_SHARING = "information_sharing"
    PROVISION_OF_SERVICES = "provision_of_services"
    ASSESSMENT_OUTCOME = "assessment_outcome"
    CHILD_PROTECTION_PROCEDURES = "child_protection_procedures"
    CASE_MANAGEMENT = "case_management"
    IMMEDIATE_SAFETY = "immediate_safety"
    LONG_TERM_PLAN = "long_term_plan"
    PROGRESSING_PLANS = "progressing_plans"
    OTHER = "other"


class Flag(StrEnum):
    """Facts about the child or the dispute that change what the procedure requires."""

    CHILD_PROTECTION_PLAN = "child_protection_plan"
    LOOKED_AFTER = "looked_after"
    IMMEDIATE_RISK_OF_HARM = "immediate_risk_of_harm"
    LIFE_THREATENING = "life_threatening"
    AGENCY_NON_INVOLVEMENT = "agency_non_involvement"
    AGED_16_17_LACKING_CAPACITY = "aged_16_17_lacking_capacity"
    CROSS_BORDER = "cross_border"
