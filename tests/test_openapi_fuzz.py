"""Property-based testing of the running server against its own OpenAPI document.

Schemathesis reads ``GET /openapi.json`` and, for every operation it lists (the wire methods,
the partner API, the sandbox control API, operations), sends generated requests: the documented
examples, edge cases of every schema (coverage phase) and random valid and invalid data
(fuzzing phase). Each answer must

* never be a 5xx;
* carry a status code and content type the document lists, and match the documented schema;
* refuse schema-invalid input with a 4xx;
* for every error, be JSON with a clear message (``message`` on the wire and partner faces,
  ``detail`` on the sandbox control API).

The operations come from the document, so wire methods added later are fuzzed without editing
this file. The fuzzer gets a server and instances of its own: methods that end a session
(``DISRUPTIVE``) run on a throwaway instance so that the rest keep valid credentials.

Run it alone with ``python -m pytest -q tests/test_openapi_fuzz.py``; ``VERDIGRIS_FUZZ_EXAMPLES``
raises the number of random cases per operation (default 25) and ``VERDIGRIS_FUZZ_SEED`` switches
from the fixed, derandomized cases to random ones from that seed, for a longer hunt.
"""

from __future__ import annotations

import base64
import importlib
import os
import pkgutil
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
import schemathesis.engine
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import StopReason, events

from harness import Server


def _import_all_of_schemathesis() -> None:
    """Schemathesis imports most of its modules on first use. Importing (compiling) them while other
    threads of this process compile code too (the in-process servers of the tests that ran before on
    this worker: Jinja2 compiles templates) trips a CPython 3.11 race: "SystemError: AST
    constructor recursion depth mismatch". So everything is imported here, at collection, while the
    process has a single thread."""
    for module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
        try:
            importlib.import_module(module.name)
        except ImportError:
            pass  # an optional integration (allure) that is not installed


_import_all_of_schemathesis()

# Methods whose success ends the credentials or the link the other calls rely on; each group gets
# a spare instance (after updateApiToken the old token is refused, so it needs one of its own).
DISRUPTIVE = (("logout", "reboot"), ("updateApiToken",))
EXAMPLES = int(os.environ.get("VERDIGRIS_FUZZ_EXAMPLES", "25"))
# The default run is derandomized (the same cases every time, so it cannot flake); set a seed to
# hunt with other random data.
SEED = os.environ.get("VERDIGRIS_FUZZ_SEED", "")

# Checks left out, and why:
# * unsupported_method / allow_header_conformance: a wrong verb on the wire answers 404
#   (GREEN-API's documented behaviour, spec "common errors"), not 405;
# * positive_data_acceptance: a schema-valid body may still name a message, instance or chat that
#   does not exist, which is a documented 400;
# * stateful checks (use_after_free, ensure_resource_availability, object_level_authorization):
#   the stateful phase is off (the API has no resource links in its document).
CHECKS_OFF = [
    "unsupported_method",
    "allow_header_conformance",
    "positive_data_acceptance",
    "use_after_free",
    "ensure_resource_availability",
    "object_level_authorization",
]


# Meta's verification handshake needs the operator's verify token; every other API gets valid
# credentials of its own below and must get past authentication.
OWN_CREDENTIALS = re.compile(r"^GET /channels/whatsapp-cloud/webhook$")
FIXED_PATH_PARAMETERS = ("idInstance", "apiTokenInstance", "partnerToken")


def basic(credentials: dict[str, str]) -> str:
    pair = f"{credentials['username']}:{credentials['password']}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def fuzz_config(srv: Server, main: dict[str, Any], spares: list[dict[str, Any]]) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": int(SEED) if SEED else 20251125,
            "generation": {
                "max-examples": EXAMPLES,
                "deterministic": not SEED,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {name: {"enabled": False} for name in CHECKS_OFF},
            "headers": {"Authorization": f"Bearer {srv.demo['sandbox']['token']}"},
            "request-timeout": 60,
            "parameters": {
                "path.idInstance": str(main["idInstance"]),
                "path.apiTokenInstance": main["apiTokenInstance"],
                "path.partnerToken": srv.demo["partnerToken"],
            },
            "operations": [
                # The webhook API: the main instance's own token as Bearer, on its own id.
                {
                    "include-path-regex": r"^/api/v1/instances/\{instance_id\}/webhooks",
                    "headers": {"Authorization": f"Bearer {main['apiTokenInstance']}"},
                    "parameters": {"path.instance_id": str(main["idInstance"])},
                },
                # The licensing API: HTTP Basic, the operator's on the operator's side...
                {
                    "include-path-regex": "^/api/v1/operator/",
                    "headers": {"Authorization": basic(srv.demo["operator"])},
                },
                # ...and the demo licensee's everywhere else.
                {
                    "include-path-regex": "^/api/v1/(billing|notices|invoices|transfers|instances/\\{instance_id\\}/(license|plan-change))",
                    "headers": {"Authorization": basic(srv.demo["console"])},
                },
            ]
            + [
                {
                    "include-operation-id-regex": "^wire_(" + "|".join(names) + ")$",
                    "parameters": {
                        "path.idInstance": str(spare["idInstance"]),
                        "path.apiTokenInstance": spare["apiTokenInstance"],
                    },
                }
                for names, spare in zip(DISRUPTIVE, spares, strict=True)
            ],
        }
    )


def start_fuzz_server(make_server: Callable[..., Server]) -> tuple[Server, Any]:
    srv = make_server(
        subprocess=True,  # its log is read at the end
        env={
            # The fuzzer hammers each method; 429 is still an accepted, documented answer.
            "VERDIGRIS_RATE_LIMIT_MULTIPLIER": "1000",
            # Long polls would make every receiveNotification case wait.
            "VERDIGRIS_RECEIVE_TIMEOUT_MIN": "0",
            "VERDIGRIS_RECEIVE_TIMEOUT_DEFAULT": "0",
            "VERDIGRIS_RECEIVE_TIMEOUT_MAX": "1",
        },
    )
    main = srv.new_instance("--link", "79995550001")
    spares = [srv.new_instance("--link", f"7999555001{i}") for i in range(len(DISRUPTIVE))]
    schema = schemathesis.openapi.from_url(f"{srv.url}/openapi.json", config=fuzz_config(srv, main, spares))
    return srv, schema


@schemathesis.check
def error_is_json_with_message(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx/5xx answer is a JSON object with a non-empty human-readable message."""
    if response.status_code < 400 or case.method.upper() == "HEAD":  # HEAD answers carry no body
        return None
    content_type = response.headers.get("content-type", [""])
    if isinstance(content_type, list):
        content_type = content_type[0] if content_type else ""
    assert content_type.startswith("application/json"), (
        f"error {response.status_code} is not JSON: {content_type!r}"
    )
    body = response.json()
    assert isinstance(body, dict), f"error body is not an object: {body!r}"
    message = body.get("message", body.get("detail"))
    if isinstance(message, list):  # FastAPI's request validation errors
        assert message and all(isinstance(m, dict) and m.get("msg") for m in message), body
    else:
        assert isinstance(message, str) and message.strip(), f"error without a message: {body!r}"
    return None


def overridden(check: Any) -> bool:
    """A "schema-violating request accepted" whose violation sat in a credential we fill in.

    Negative cases may break idInstance or a token, but the fixed credentials replace the broken
    value before sending, so the request that went out was valid after all.
    """
    if check.name != "negative_data_rejection":
        return False
    message = str(check.failure_info.failure.message)
    return any(f"parameter `{name}` in path" in message for name in FIXED_PATH_PARAMETERS)


def describe(label: str, check: Any) -> str:
    info = check.failure_info
    return f"{label}: [{check.name}] {info.failure.title}\n  {info.failure.message}\n  {info.code_sample}"


@pytest.mark.subprocess
@pytest.mark.slow
def test_openapi_fuzz(make_server: Callable[..., Server]) -> None:
    srv, schema = start_fuzz_server(make_server)
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert len(operations) > 10, "the document lists too few operations"
    problems: list[str] = []
    seen: set[tuple[str, str, str]] = set()
    # Operations that answered something other than 401/403 at least once: the credentials worked.
    reached: set[str] = set()
    completed = True
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None and interaction.response.status_code not in (401, 403):
                    reached.add(event.recorder.label)
            for checks in event.recorder.checks.values():
                for check in checks:
                    if check.failure_info is None or overridden(check):
                        continue
                    key = (event.recorder.label, check.name, check.failure_info.failure.title)
                    if key not in seen:
                        seen.add(key)
                        problems.append(describe(event.recorder.label, check))
        elif isinstance(event, events.NonFatalError):
            problems.append(f"{event.label}: error {event.info.title}: {event.info.message}")
        elif isinstance(event, events.FatalError):
            problems.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            problems.extend(f"after run: {f.title}: {f.message}" for f in event.failures)
            completed = event.stop_reason is StopReason.COMPLETED
            if not completed:
                warnings.warn(
                    f"the fuzzer stopped early ({event.stop_reason}): some operations untested", stacklevel=1
                )
    if completed:
        unreached = {op for op in operations - reached if not OWN_CREDENTIALS.match(op)}
        assert not unreached, f"never got past authentication: {sorted(unreached)}"
    assert not problems, f"{len(problems)} problems:\n" + "\n\n".join(problems)
    assert "Traceback" not in srv.log(), srv.log()[-4000:]
