"""SLA configuration: cell-by-cell policy overrides and clear refusals."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from desk.config.sla import DEFAULT_POLICIES, SlaSection


def test_a_configured_cell_keeps_the_other_defaults() -> None:
    sla = SlaSection.model_validate({"policies": {"project": {
        "client_updates": True, "P3": {"first_response": "3h"}}}})
    policy = sla.policy("project")
    assert policy is not None and policy.client_updates
    assert policy.P3 is not None and policy.P3.first_response == "3h"
    assert policy.P1 == DEFAULT_POLICIES["project"].P1


def test_a_new_policy_name_stands_alone() -> None:
    sla = SlaSection.model_validate({"policies": {"gold": {"P2": {"first_response": "30m"}}}})
    gold = sla.policy("gold")
    assert gold is not None and gold.P1 is None and sla.known_policy("gold")
    assert not sla.known_policy("platinum")


@pytest.mark.parametrize("data, named", [
    ({"policies": {"project": {"P3": {"first_response": "soon"}}}}, "first_response"),
    ({"policies": {"project": {"P5": {"first_response": "1h"}}}}, "P5"),
    ({"step_delay": "2 weeks"}, "step_delay"),
    ({"warn_at": 1.5}, "warn_at"),
    ({"ladder": ["owner", "ceo"]}, "ladder"),
    ({"calendar": {"hours": {"mon": "17:00-09:00"}}}, "Monday"),
    ({"calendar": {"country": "XX"}}, "calendar"),
])
def test_bad_sla_settings_are_refused(data: dict, named: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError) as err:
        SlaSection.model_validate(data)
    assert named.lower() in str(err.value).lower()
