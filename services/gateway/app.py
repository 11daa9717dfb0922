"""The HTTP gateway: authentication, authorisation, HTTP <-> RPC, errors. No business rules."""

from __future__ import annotations

import importlib
import logging
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

from flask import Flask, Response, current_app, g, request
from flask_smorest import Api

from services.gateway import docs, metrics, problems
from services.gateway.console.blueprint import console
from services.gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from services.gateway.idempotency import Idempotency
from services.gateway.identity.api_keys import API_KEY_PREFIX
from services.gateway.identity.directory import DirectoryEvents
from services.gateway.identity.passwords import PasswordHasher, password_method
from services.gateway.identity.principal import Authenticator, Principal
from services.gateway.identity.settings import AuthSettings
from services.gateway.identity.throttles import (
    CREDENTIAL_ADDRESS_POLICY,
    KEY_PREFIX_POLICY,
    FailureThrottle,
    RateLimiter,
    client_address,
    credential_address_key,
    key_prefix_key,
)
from services.gateway.identity.tokens import TokenSigner, load_secret_key
from services.gateway.problems import ApiProblem
from services.gateway.rpc import RpcClient, RpcPool, ServiceUnavailable
from services.gateway.schemas import ProblemSchema
from services.gateway.store import Store
from services.gateway.strict_json import StrictJSONProvider, check_request_input
from shared import config as shared_config
from shared import registry
from shared.context import current_correlation_id
from shared.logging import JsonFormatter

log = logging.getLogger("services.gateway")
access_log = logging.getLogger("services.gateway.access")

MAX_BODY_BYTES = 1024 * 1024
CORRELATION_HEADER = "X-Correlation-ID"
MAX_URI_LENGTH = 4000
# Endpoints reachable without credentials (docs, health, metrics, login).
PUBLIC_ENDPOINTS = frozenset(
    {"system.health", "system.metrics", "identity.create_token", "static"}
)
PUBLIC_BLUEPRINTS = frozenset({"api-docs", "docs-assets", "console"})


def public(view: Any) -> Any:
    """Marks a view reachable without credentials: what it is given stands in for them (a
    survey link's token). Put it right under `@blp.route`."""
    view.crm_public = True
    return view


def _is_public(endpoint: str) -> bool:
    return (endpoint in PUBLIC_ENDPOINTS or request.blueprint in PUBLIC_BLUEPRINTS
            or getattr(current_app.view_functions.get(endpoint), "crm_public", False))


@dataclass
class Gateway:
    """Per-app singletons, reachable from views as `gateway()`."""

    store: Store
    rpc: RpcClient
    authenticator: Authenticator
    limiter: RateLimiter
    login_limiter: RateLimiter
    idempotency: Idempotency
    directory: DirectoryEvents
    settings: dict[str, Any]
    # One ceiling over every user of the organisation (per worker, like `limiter`).
    org_limiter: RateLimiter
    throttle: FailureThrottle
    passwords: PasswordHasher
    auth_settings: AuthSettings


def gateway() -> Gateway:
    return current_app.extensions["crm_gateway"]


def current_principal() -> Principal:
    principal: Principal | None = g.get("principal")
    if principal is None:  # a public view asked for a user: a wiring bug, not a client error
        raise RuntimeError("no authenticated principal on a protected view")
    return principal


def require_role(*roles: str) -> Principal:
    principal = current_principal()
    if principal.role not in roles:
        raise ApiProblem(
            403,
            f"This action needs one of the roles: {', '.join(roles)}.",
            type_=problems.PROBLEM_BASE + "forbidden",
        )
    return principal


def rpc_call(service: str, method: str, **kwargs: Any) -> Any:
    """One RPC with the request's correlation id and actor, measured."""
    principal: Principal | None = g.get("principal")
    registry.check_call(service, method)  # an undeclared hop is a bug, not a 503 or a timeout
    target = f"{service}.{method}"
    started = time.perf_counter()
    outcome = "ok"
    try:
        return gateway().rpc.call(
            service,
            method,
            kwargs,
            correlation_id=g.correlation_id,
            actor=principal.user_id if principal else None,
        )
    except ServiceUnavailable:
        outcome = "unavailable"
        metrics.UNAVAILABLE.labels(service).inc()
        raise
    except Exception:
        outcome = "error"
        raise
    finally:
        metrics.RPC_LATENCY.labels(target, outcome).observe(time.perf_counter() - started)


# -- logging -------------------------------------------------------------------------------


def configure_logging(level: str) -> None:
    logger = logging.getLogger("services.gateway")
    if any(getattr(h, "_crm_gateway", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("gateway"))
    handler._crm_gateway = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False


# -- request hooks -------------------------------------------------------------------------


def _start_request() -> Response | None:
    g.started = time.perf_counter()
    incoming = request.headers.get(CORRELATION_HEADER, "").strip()
    g.correlation_id = incoming[:128] if incoming else str(uuid.uuid4())
    g.correlation_token = current_correlation_id.set(g.correlation_id)
    if len(request.full_path) > MAX_URI_LENGTH:
        raise ApiProblem(
            414, f"The URI is longer than {MAX_URI_LENGTH} characters.",
            type_=problems.PROBLEM_BASE + "uri-too-long",
        )

    endpoint = request.endpoint
    if endpoint is None:
        return None  # answered 404/405 by routing
    if _is_public(endpoint):
        check_request_input(request)
        return None

    gw = gateway()
    authorization = request.headers.get("Authorization")
    x_api_key = request.headers.get("X-API-Key")
    principal = gw.authenticator.authenticate(authorization, x_api_key)
    if principal is None:
        _refuse_credentials(gw, authorization, x_api_key)
    g.principal = principal

    # Per user (all their keys and tokens), then the organisation's ceiling; a user already
    # over their own limit does not draw on the organisation's.
    wait = gw.limiter.acquire(principal.rate_key) or gw.org_limiter.acquire("org")
    if wait:
        raise ApiProblem(
            429,
            "Rate limit exceeded.",
            type_=problems.PROBLEM_BASE + "rate-limited",
            headers={"Retry-After": str(wait)},
        )
    # Strict JSON and storable strings, for every route, before a schema or view sees them.
    check_request_input(request)

    key = request.headers.get(IDEMPOTENCY_HEADER)
    if request.method == "POST" and key is not None:
        stored = gw.idempotency.begin(
            principal.user_id, key.strip(), request.method, request.full_path,
            request.get_data(cache=True),
        )
        if stored is not None:
            g.replayed = True
            return stored.to_response()
        g.idempotency_key = key.strip()
    return None


def _refuse_credentials(gw: Gateway, authorization: str | None, x_api_key: str | None
                        ) -> NoReturn:
    """401, or 429 with Retry-After once this address or key prefix failed too often.

    A valid credential is never refused here (it is looked up before): keys are 256 random bits
    and cannot be guessed, so blocking valid ones would only hurt neighbours behind the same
    NAT. A blocked client's further failures cost no database write (the block is memoised).
    """
    credential = (x_api_key or authorization or "").strip()
    if credential:
        address = client_address(request.remote_addr, request.headers.get("X-Forwarded-For"),
                                 gw.auth_settings.trusted_proxy_hops)
        credential = credential.removeprefix("Bearer ").removeprefix("bearer ").strip()
        policies = {credential_address_key(address): CREDENTIAL_ADDRESS_POLICY}
        # Only API keys have a meaningful prefix; every token starts alike (its payload).
        if credential.startswith(API_KEY_PREFIX):
            policies[key_prefix_key(credential)] = KEY_PREFIX_POLICY
        blocked = gw.throttle.memo_blocked(list(policies))
        if not blocked:
            blocked = max(gw.throttle.record_failure(key, policy)
                          for key, policy in policies.items())
        if blocked:
            raise ApiProblem(
                429,
                "Too many failed authentications from this address or with this key; "
                "try again later.",
                type_=problems.PROBLEM_BASE + "rate-limited",
                headers={"Retry-After": str(max(1, math.ceil(blocked)))},
            )
    raise ApiProblem(
        401,
        "Missing or invalid credentials: send 'Authorization: Bearer <api key or token>' "
        "or 'X-API-Key: <api key>'.",
        type_=problems.PROBLEM_BASE + "unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="crm"'},
    )


def _finish_request(response: Response) -> Response:
    response.headers[CORRELATION_HEADER] = g.get("correlation_id", "")
    principal: Principal | None = g.get("principal")

    key = g.pop("idempotency_key", None)
    if key is not None and principal is not None:
        gw = gateway()
        if response.status_code >= 500 or response.status_code == 429:
            gw.idempotency.abandon(principal.user_id, key)
        else:
            gw.idempotency.finish(principal.user_id, key, response)

    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    status = str(response.status_code)
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    metrics.HTTP_REQUESTS.labels(request.method, route, status).inc()
    metrics.HTTP_LATENCY.labels(request.method, route, status).observe(elapsed)
    if route != "/metrics":
        access_log.info(
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "method": request.method,
                "path": request.path,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
                "user_id": principal.user_id if principal else None,
                "problem": g.get("problem_type"),
            },
        )
    return response


def _teardown_request(error: BaseException | None) -> None:
    # after_request does not run when a response could not be produced: free the reservation.
    key = g.pop("idempotency_key", None)
    principal: Principal | None = g.get("principal")
    if key is not None and principal is not None:
        try:
            gateway().idempotency.abandon(principal.user_id, key)
        except Exception:  # noqa: BLE001 - best effort; the key expires anyway
            log.exception("could not release idempotency key")
    token = g.pop("correlation_token", None)
    if token is not None:
        current_correlation_id.reset(token)


# -- factory -------------------------------------------------------------------------------


class GatewayApi(Api):
    """flask-smorest's Api with problem+json errors and a valid OpenAPI 3.1 document."""

    ERROR_SCHEMA = ProblemSchema

    def _init_spec(self, **kwargs: Any) -> None:
        super()._init_spec(**kwargs)
        self.ma_plugin.converter.add_attribute_function(docs.field_properties)
        # Every reader of the document (/openapi.json, `flask openapi write`, tests) gets the
        # corrected one, whichever resource module wrote what (see docs.py).
        written = self.spec.to_dict
        self.spec.to_dict = lambda: docs.fix_openapi(written())  # type: ignore[method-assign]


def _setting(settings: dict[str, Any], name: str, env_name: str, default: str) -> str:
    if name in settings:
        return str(settings[name])
    return shared_config.env(env_name, default)


def create_app(settings: dict[str, Any] | None = None) -> Flask:
    """Settings (all optional): rpc_pool, database_url, amqp_uri (directory events),
    sweep_directory, secret_key, rate_limit, rate_burst, org_rate_limit, org_rate_burst,
    token_ttl_seconds, auth_cache_seconds, password_method, hash_concurrency,
    hash_wait_seconds, max_api_keys_per_user, trusted_proxy_hops, log_level."""
    settings = dict(settings or {})
    app = Flask("services.gateway")
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        JSON_SORT_KEYS=False,
        API_TITLE="CRM gateway",
        API_VERSION="1.0.0",
        OPENAPI_VERSION="3.1.0",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        # served by the gateway itself from Python packages (docs.py): no CDN, no internet
        OPENAPI_SWAGGER_UI_URL=docs.SWAGGER_UI_URL,
        OPENAPI_REDOC_PATH="/redoc",
        OPENAPI_REDOC_URL=docs.REDOC_URL,
        API_SPEC_OPTIONS={
            "info": {
                "description": "HTTP gateway of the CRM. Errors are application/problem+json "
                "(RFC 9457). Send an Idempotency-Key header on POST to make retries safe."
            },
            "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        },
    )
    app.json = StrictJSONProvider(app)
    configure_logging(_setting(settings, "log_level", "CRM_LOG_LEVEL", "INFO"))

    store = Store(settings.get("database_url"))
    secret = settings.get("secret_key") or load_secret_key()
    signer = TokenSigner(
        secret, int(_setting(settings, "token_ttl_seconds", "CRM_TOKEN_TTL", "28800"))
    )
    rate = float(_setting(settings, "rate_limit", "CRM_RATE_LIMIT", "200"))
    burst = float(_setting(settings, "rate_burst", "CRM_RATE_BURST", str(int(rate * 2))))
    org_rate = float(_setting(settings, "org_rate_limit", "CRM_ORG_RATE_LIMIT",
                              str(max(1000, int(rate * 5)))))
    org_burst = float(_setting(settings, "org_rate_burst", "CRM_ORG_RATE_BURST",
                               str(int(org_rate * 2))))
    rpc: RpcClient = settings.get("rpc_pool") or RpcPool()
    directory = DirectoryEvents(store, settings.get("amqp_uri"))
    app.extensions["crm_gateway"] = Gateway(
        store=store,
        rpc=rpc,
        authenticator=Authenticator(
            store.sessionmaker,
            signer,
            cache_seconds=float(
                _setting(settings, "auth_cache_seconds", "CRM_AUTH_CACHE_SECONDS", "5")
            ),
        ),
        limiter=RateLimiter(rate, burst),
        # A cheap per-address gate in memory before the database-backed throttle.
        login_limiter=RateLimiter(float(settings.get("login_rate", 5)),
                                  float(settings.get("login_burst", 20))),
        idempotency=Idempotency(store, ttl=timedelta(hours=24)),
        directory=directory,
        settings=settings,
        org_limiter=RateLimiter(org_rate, org_burst),
        throttle=FailureThrottle(store.sessionmaker),
        passwords=PasswordHasher(
            str(settings.get("password_method") or password_method()),
            concurrency=int(_setting(settings, "hash_concurrency", "CRM_AUTH_HASH_CONCURRENCY",
                                     "1")),
            wait_seconds=float(_setting(settings, "hash_wait_seconds",
                                        "CRM_AUTH_HASH_WAIT_SECONDS", "0")),
        ),
        auth_settings=AuthSettings(
            trusted_proxy_hops=int(_setting(settings, "trusted_proxy_hops",
                                            "CRM_TRUSTED_PROXY_HOPS", "0")),
            max_api_keys_per_user=int(_setting(settings, "max_api_keys_per_user",
                                               "CRM_MAX_API_KEYS_PER_USER", "10")),
        ),
    )
    if settings.get("sweep_directory", True):
        directory.start_sweeper()

    api = GatewayApi(app)
    api.spec.components.security_scheme(
        "bearerAuth",
        {"type": "http", "scheme": "bearer",
         "description": "An API key (crm_...) or a user token from POST /auth/tokens."},
    )
    api.spec.components.security_scheme(
        "apiKeyHeader", {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    )

    for resource in registry.gateway_resource_modules():  # imported here: they import this
        api.register_blueprint(importlib.import_module(resource).blp)

    app.register_blueprint(docs.assets)
    app.register_blueprint(console)  # a plain blueprint: not in the OpenAPI document
    problems.register(app)
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_teardown_request)

    if os.environ.get("CRM_GATEWAY_CLOSE_ON_EXIT", "1") == "1":
        import atexit

        atexit.register(rpc.close)
        atexit.register(directory.close)
        atexit.register(store.dispose)
    return app
