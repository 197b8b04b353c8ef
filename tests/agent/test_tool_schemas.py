"""The tools' schemas are valid OpenAI function schemas with exactly the issue's arguments,
and arguments are validated by the same pydantic models."""

from __future__ import annotations

import jsonschema
import pytest

from server.agent.tools import Tool, ToolError, ToolRegistry, default_registry
from server.agent.tools.base import NAME

EXPECTED = {
    "search_memory": ({"query"}, {"category", "limit"}),
    "add_memory": ({"content", "category"}, set()),
    "update_memory": ({"memory_id", "content"}, {"category"}),
    "delete_memory": ({"memory_id"}, set()),
    "schedule_create": (
        {"message"},
        {"in_minutes", "trigger_at", "repeat", "at", "weekday", "time_zone"},
    ),
    "schedule_list": (set(), set()),
    "schedule_cancel": ({"schedule_id"}, set()),
    "get_screen_context": (set(), set()),
    "stay_silent": ({"reason"}, set()),
}


def test_schemas_are_openai_function_schemas_with_the_issues_arguments() -> None:
    reg = default_registry()
    assert {t.name for t in reg} == set(EXPECTED)
    for schema in reg.schemas():
        assert schema["type"] == "function" and set(schema) == {"type", "function"}
        fn = schema["function"]
        assert NAME.match(fn["name"]) and fn["description"]
        params = fn["parameters"]
        jsonschema.Draft202012Validator.check_schema(params)
        assert params["type"] == "object" and params["additionalProperties"] is False
        required, optional = EXPECTED[fn["name"]]
        assert set(params.get("required", [])) == required, fn["name"]
        assert set(params["properties"]) == required | optional, fn["name"]
        for prop in params["properties"].values():
            assert "anyOf" not in prop and "title" not in prop  # plain types for models
    # only forgetting a memory waits for the user's approval (server/agent/approvals.py)
    assert [t.name for t in reg if t.consequential] == ["delete_memory"]


@pytest.mark.parametrize(
    ("name", "args", "problem"),
    [
        ("schedule_create", {"message": "x"}, "exactly one of in_minutes, trigger_at or repeat"),
        ("schedule_create", {"message": "x", "repeat": "daily"}, "give at \\(HH:MM\\)"),
        ("schedule_create", {"message": "x", "repeat": "hourly", "at": "09:00"}, "daily"),
        (
            "schedule_create",
            {"message": "x", "in_minutes": 5, "trigger_at": "2030-01-01T00:00:00Z"},
            "exactly one",
        ),
        ("schedule_create", {"message": "x", "in_minutes": -1}, "greater than 0"),
        ("schedule_create", {"message": "x", "trigger_at": "2030-01-01T00:00:00"}, "timezone"),
        ("search_memory", {"query": "x", "limit": 50}, "less than or equal to 20"),
        ("add_memory", {"content": "x"}, "category: Field required"),
        ("delete_memory", {"memory_id": "a", "extra": 1}, "extra: Extra inputs are not permitted"),
        ("stay_silent", "{not json", "Invalid arguments"),
    ],
)
def test_bad_arguments_are_refused_with_the_reason(name: str, args: object, problem: str) -> None:
    tool = default_registry().get(name)
    assert tool is not None
    with pytest.raises(ToolError, match=problem):
        tool.parse(args)  # type: ignore[arg-type]


def test_registry_is_generic_and_refuses_duplicates_and_bad_names() -> None:
    reg = ToolRegistry()
    base = next(iter(default_registry()))
    reg.register(Tool("other_tool", "x", base.args, base.run, consequential=True))
    assert reg.get("other_tool").consequential  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(Tool("other_tool", "x", base.args, base.run))
    with pytest.raises(ValueError, match="invalid tool name"):
        Tool("bad name!", "x", base.args, base.run)
