"""The HTTP JSON API over an Engine and a FeedbackStore (FastAPI: typed requests, 422s naming the field at fault
and generated OpenAPI docs at /docs; served by uvicorn). No `from __future__ import annotations` here: FastAPI
reads the endpoint annotations at runtime."""

import hmac
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, StrictInt, StrictStr, field_validator

from recarena.data.events import MAX_TIMESTAMP
from recarena.serving.engine import Answer, Engine, RequestError
from recarena.serving.feedback import FeedbackStore

# ids are strings or whole numbers in JSON, stored and matched as strings; strict: `true` is not the id 1
RawId = StrictStr | StrictInt


class Item(BaseModel):
    rank: int
    item: str
    title: str
    score: float
    explanation: str


class Recommendations(BaseModel):
    user: str | None = Field(None, description="the raw user id asked for (None for a session)")
    model: str
    k: int
    fallback: Literal["popularity"] | None = Field(None, description="set when the list is not the model's own")
    reason: str | None = None
    items: list[Item]


class SessionRequest(BaseModel):
    history: list[RawId] = Field(..., description="raw item ids the session has seen, oldest first")
    k: StrictInt = Field(10, ge=1)
    user: RawId | None = Field(None, description="optional: a raw user id to echo back")


class Event(BaseModel):
    user: RawId
    item: RawId
    kind: str = Field("click", min_length=1, max_length=32)
    timestamp: StrictInt = Field(
        ..., ge=0, le=MAX_TIMESTAMP, description="whole seconds since the epoch, as the data's, up to the end of 9999"
    )

    @field_validator("user", "item")
    @classmethod
    def _not_empty(cls, value: RawId) -> str:
        text = str(value)
        if not text.strip():
            raise ValueError("must not be empty")
        return text


class Feedback(BaseModel):
    events: list[Event] = Field(..., min_length=1)


class Stored(BaseModel):
    stored: int = Field(..., description="events committed to the feedback database")


def create_app(engine: Engine, store: FeedbackStore, token: str | None = None) -> FastAPI:
    """The service: GET/POST /recommend, POST /feedback (token-guarded when `token` is set), GET /health."""
    app = FastAPI(title="recarena", description=f"Recommendations from the run {engine.run_dir}", version="1")
    bearer = HTTPBearer(auto_error=False)

    def write_access(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
        if token is None:
            return
        if credentials is None:
            raise HTTPException(401, "missing bearer token (Authorization: Bearer …)")
        if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
            raise HTTPException(403, "wrong token")

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, error: RequestError) -> JSONResponse:
        where = "query" if request.method == "GET" else "body"
        detail = [{"loc": [where, *error.loc], "msg": error.message}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": engine.name, "users": engine.data.n_users, "items": engine.n_items}

    # async: scoring runs on the event loop, one request at a time (the model is not re-entrant), without a hop
    # through the thread pool; feedback (blocking database commits) stays in the pool
    @app.get("/recommend", response_model=Recommendations)
    async def recommend_user(user: Annotated[str, Query(min_length=1)], k: Annotated[int, Query(ge=1)] = 10) -> dict:
        return _answer(engine.for_user(user, k), engine, user, k)

    @app.post("/recommend", response_model=Recommendations)
    async def recommend_session(request: SessionRequest) -> dict:
        answer = engine.for_history(request.history, request.k)
        return _answer(answer, engine, None if request.user is None else str(request.user), request.k)

    @app.post("/feedback", response_model=Stored, dependencies=[Depends(write_access)])
    def feedback(request: Feedback) -> dict:
        for position, event in enumerate(request.events):
            engine.item_of(event.item, ("events", position, "item"))
        stored = store.add(e.model_dump() for e in request.events)
        return {"stored": stored}

    app.add_exception_handler(RequestValidationError, _validation_error)
    return app


def _answer(answer: Answer, engine: Engine, user: str | None, k: int) -> dict:
    return {"user": user, "model": engine.name, "k": k, "fallback": answer.fallback, "reason": answer.reason,
            "items": answer.items}  # fmt: skip


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with a plain body (malformed JSON must not echo back undecodable input)."""
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")} for e in error.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)
