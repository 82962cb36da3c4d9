"""GET /v1/models and /v1/models/{model}."""

from __future__ import annotations

from aiohttp import web

from . import errors
from .app import Platform

MODEL_CREATED_AT = 1_744_316_542  # a fixed date, like real model records


def register(app: web.Application, platform: Platform) -> None:
    def model_object(name: str) -> dict[str, object]:
        return {"id": name, "object": "model", "created": MODEL_CREATED_AT, "owned_by": "system"}

    async def list_models(request: web.Request) -> web.StreamResponse:
        return platform.json(request, {"object": "list",
                                       "data": [model_object(m) for m in platform.state.models]})

    async def retrieve_model(request: web.Request) -> web.StreamResponse:
        name = request.match_info["model"]
        if name not in platform.state.models:
            raise errors.model_not_found(name)
        return platform.json(request, model_object(name))

    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model}", retrieve_model)
