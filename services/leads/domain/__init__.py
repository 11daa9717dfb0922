"""Business rules of the leads service: pure Python, no nameko, no database sessions.

Modules by concept; each transition checks and changes a lead (see `lead.LeadRecord`):
- `capture`: contact details normalised (with the shared kernel), a new lead's first state,
  what a duplicate adds to a stored lead;
- `duplicates`: what makes two leads the same, and what a capture does with a duplicate;
- `scoring_model`: the model's rules, the default model and its validation;
- `scoring`: scoring a lead and the qualification (MQL, SQL) it earns;
- `lifecycle`: status changes, the public pool (claim, release, assign), conversion, merges;
- `visibility`: what a caller's scope lets them see and edit;
- `search`: the search box's terms.

The names below are the domain's public ones, importable from the package.
"""

from services.leads.domain.duplicates import (
    HIDDEN_DUPLICATE,
    DuplicateMatch,
    LeadIdentity,
    find_duplicates,
    resolve_duplicates,
)
from services.leads.domain.lifecycle import (
    check_claim,
    check_release,
    check_status_change,
)
from services.leads.domain.scoring import (
    ScoreLine,
    ScoreResult,
    qualification_for,
    qualification_rank,
    score_lead,
    upgraded_qualification,
)
from services.leads.domain.scoring_model import (
    ATTRIBUTE_OPERATORS,
    DEFAULT_SCORING_MODEL,
    validate_scoring_model,
)
from services.leads.domain.search import search_terms
from services.leads.domain.visibility import lead_visible, may_merge

__all__ = [
    "ATTRIBUTE_OPERATORS",
    "DEFAULT_SCORING_MODEL",
    "HIDDEN_DUPLICATE",
    "DuplicateMatch",
    "LeadIdentity",
    "ScoreLine",
    "ScoreResult",
    "check_claim",
    "check_release",
    "check_status_change",
    "find_duplicates",
    "lead_visible",
    "may_merge",
    "qualification_for",
    "qualification_rank",
    "resolve_duplicates",
    "score_lead",
    "search_terms",
    "upgraded_qualification",
    "validate_scoring_model",
]
