"""The HTTP JSON API over an Engine and a FeedbackStore (FastAPI: typed requests, 422s naming the field at fault
and generated OpenAPI docs at /docs and /redoc, their assets served from the fastapi-offline package so they work
without internet; served by uvicorn). Before any endpoint reads a body, `RequestGuard` enforces the limits and the
write token. No `from __future__ import annotations` here: FastAPI reads the endpoint annotations at runtime."""

import asyncio
import hmac
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field, StrictInt, StrictStr, field_validator

from recarena.data.events import MAX_TIMESTAMP, EventKinds
from recarena.data.feedback import FeedbackStore
from recarena.serving.batcher import Batcher
from recarena.serving.engine import Answer, Engine, RequestError

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


@dataclass(frozen=True)
class Limits:
    """What one request may ask (`serve.limits`): body bytes (413 beyond, before parsing), seconds to send the body
    (408 beyond), history items per session and events per feedback request (422 beyond, naming the field)."""

    max_body_bytes: int = 1 << 20
    body_timeout_s: float = 10.0
    max_history: int = 1000
    max_events: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_history", "max_events"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"serve.limits.{name}={value!r}: must be a positive integer")
        if not float(self.body_timeout_s) > 0:
            raise ValueError(f"serve.limits.body_timeout_s={self.body_timeout_s!r}: must be > 0 seconds")


WRITE_PATHS = frozenset({"/feedback"})


class RequestGuard:
    """ASGI middleware that runs before any endpoint reads a body: a write without the right token is a 401/403
    before its body is read; a body declared or found larger than `max_body_bytes` is a 413 (never buffered past
    the limit); a body not complete within `body_timeout_s` is a 408. The body is then handed on as read."""

    def __init__(self, app, limits: Limits, token: str | None) -> None:
        self.app, self.limits, self.token = app, limits, token

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.token is not None and scope["path"] in WRITE_PATHS:
            refused = _check_token(headers.get(b"authorization", b""), self.token)
            if refused is not None:
                return await _refuse(refused[0], refused[1], scope, receive, send)
        declared = headers.get(b"content-length", b"").decode("latin-1").strip()
        if declared.isdigit() and int(declared) > self.limits.max_body_bytes:
            return await _refuse(413, self._too_large(), scope, receive, send)
        chunks, size, more = [], 0, True
        try:
            async with asyncio.timeout(float(self.limits.body_timeout_s)):
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.limits.max_body_bytes:
                        return await _refuse(413, self._too_large(), scope, receive, send)
                    chunks.append(chunk)
                    more = message.get("more_body", False)
        except TimeoutError:
            late = f"the body did not arrive within {self.limits.body_timeout_s} s (serve.limits.body_timeout_s)"
            return await _refuse(408, late, scope, receive, send)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.limits.max_body_bytes} bytes (serve.limits.max_body_bytes)"


def _check_token(header: bytes, token: str) -> tuple[int, str] | None:
    """None when `header` is "Bearer <token>", else the status and message to refuse with (constant-time compare)."""
    scheme, _, given = header.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, "missing bearer token (Authorization: Bearer …)"
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return 403, "wrong token"
    return None


async def _refuse(status: int, message: str, scope, receive, send) -> None:
    headers = {"connection": "close"} if status in (408, 413) else None  # the rest of the body is never read
    await JSONResponse({"detail": message}, status_code=status, headers=headers)(scope, receive, send)


def create_app(
    engine: Engine,
    store: FeedbackStore,
    token: str | None = None,
    limits: Limits | None = None,
    kinds: EventKinds | None = None,
    batcher: Batcher | None = None,
) -> FastAPI:
    """The service: GET/POST /recommend (through `batcher`, default: batches of up to 32 within 2 ms), POST
    /feedback (token-guarded when `token` is set, kinds from `kinds`), GET /health, and the offline docs."""
    limits, kinds = limits or Limits(), kinds or EventKinds()
    batcher = batcher or Batcher(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        batcher.close()

    app = FastAPIOffline(title="recarena", description=f"Recommendations from the run {engine.run_dir}", version="1",
                         lifespan=lifespan)  # fmt: skip
    app.add_middleware(RequestGuard, limits=limits, token=token)
    # declares the bearer scheme in the OpenAPI schema; the token itself is checked by RequestGuard, before the body
    bearer = HTTPBearer(auto_error=False, description="needed when the server has a write token")

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, error: RequestError) -> JSONResponse:
        where = "query" if request.method == "GET" else "body"
        detail = [{"loc": [where, *error.loc], "msg": error.message}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "model": engine.name, "users": engine.data.n_users, "items": engine.n_items,
                "batches": batcher.stats.as_dict()}  # fmt: skip

    async def answer(query) -> Answer:
        return query if isinstance(query, Answer) else await batcher.submit(query)

    @app.get("/recommend", response_model=Recommendations)
    async def recommend_user(user: Annotated[str, Query(min_length=1)], k: Annotated[int, Query(ge=1)] = 10) -> dict:
        return _answer(await answer(engine.user_query(user, k)), engine, user, k)

    @app.post("/recommend", response_model=Recommendations)
    async def recommend_session(request: SessionRequest) -> dict:
        if len(request.history) > limits.max_history:
            raise RequestError(("history",), f"{len(request.history)} items: at most {limits.max_history} "
                                             "(serve.limits.max_history)")  # fmt: skip
        query = engine.history_query(request.history, request.k)
        return _answer(await answer(query), engine, None if request.user is None else str(request.user), request.k)

    @app.post("/feedback", response_model=Stored, dependencies=[Depends(bearer)])
    def feedback(request: Feedback) -> dict:
        if len(request.events) > limits.max_events:
            raise RequestError(("events",), f"{len(request.events)} events: at most {limits.max_events} "
                                            "(serve.limits.max_events)")  # fmt: skip
        for position, event in enumerate(request.events):
            if not kinds.sign(event.kind):
                raise RequestError(("events", position, "kind"), f"{event.kind!r} is not a known kind "
                                                                 f"({kinds.describe()}; conf/events)")  # fmt: skip
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
