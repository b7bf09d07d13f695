"""Request bodies of the API that are not experiment specs or ingest items."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from flask import request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from experiments.errors import FieldProblem, InvalidInputError
from experiments.service.specs import pydantic_problems

M = TypeVar("M", bound=BaseModel)


class AssignRequest(BaseModel):
    """POST /api/v1/assign."""

    model_config = ConfigDict(extra="forbid")

    unit_id: Annotated[str, Field(min_length=1, max_length=256)]
    attributes: dict[str, Any] = Field(default_factory=dict)
    experiments: list[str] | None = None
    log_exposure: bool = True


class ConcludeRequest(BaseModel):
    """POST /api/v1/experiments/KEY/conclude."""

    model_config = ConfigDict(extra="forbid")

    decision: Annotated[str, Field(description="ship, rollback or iterate")]
    rationale: Annotated[str, Field(min_length=1, max_length=10000)]
    variant: str | None = None
    decided_by: str | None = Field(
        default=None,
        max_length=200,
        description="ignored: the decision is recorded as made by the API key's name",
    )


def json_body() -> Any:
    """The request's JSON body, parsed with orjson.

    Raises:
        InvalidInputError: the body is empty or not JSON.
    """
    data = request.get_data(cache=False)
    if not data:
        raise InvalidInputError.from_problems([FieldProblem("", "the request body must be JSON")])
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidInputError.from_problems(
            [FieldProblem("", f"the request body is not valid JSON: {exc}")]
        ) from None


def parse_body(model: type[M]) -> M:
    """Validate the JSON body against a model; every problem by path."""
    body = json_body()
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise InvalidInputError.from_problems(pydantic_problems(exc)) from None
