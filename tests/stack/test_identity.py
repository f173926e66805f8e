"""Identity on the real stack: who gets through the secure-path, and every way to be turned away.

Path of a request: test -> token (Vault, or forged by ``TokenFactory``) -> secure-gateway (nginx
``auth_request`` -> ``identity.authz``, one JSON decision line each) -> backend ``/config/*`` or
the Control Agent, which checks the token again itself.

Tokens with a *genuine* Vault signature and bad claims come from Vault (extra roles and a second
key made with the root token: another audience, a lifetime over the policy, a one-second TTL, a
changed issuer). Everything else is forged without any trusted key, so those cases prove the
rejection, and the unit tests (tests/unit/identity) prove which check fires for each claim.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import hvac
import jwt
import pytest

from identity.bootstrap import DEFAULT_KEY, rotate_key
from pytest_observastack._compose import docker
from pytest_observastack._forge import REMOVE, TokenFactory
from pytest_observastack._stack import Stack
from pytest_observastack._tokens import RefreshingAuth, TokenSource, VaultTokenSource
from pytest_observastack._waits import wait_until

Headers = list[tuple[str, str]]
INVALID_TOKEN = 'Bearer error="invalid_token"'
ATTACKER_KID = "attacker-key-1"
BASIC_CREDENTIALS = "Y29udHJvbC1wYW5lbDpvYnNlcnZhc3RhY2stZGV2"  # control-panel:observastack-dev


# -- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forge(stack: Stack, token_source: TokenSource) -> TokenFactory:
    """Good and forged tokens for the secure-path audience: the plugin's ``token`` fixture, once
    per module (the table of bad requests below is built once, from module-scoped fixtures)."""
    return TokenFactory(token_source, audience=stack.options.identity.audience)


@pytest.fixture(scope="module")
def secure(stack: Stack) -> Iterator[httpx.Client]:
    """A bare client on the secure-path: each test sets its own Authorization header(s)."""
    with httpx.Client(base_url=stack.url("secure"), timeout=15.0, trust_env=False) as client:
        yield client


class HostJwksServer:
    """An attacker's JWKS on 127.0.0.1 (ephemeral port) that counts every request."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


_CONTROL_JWKS_SERVER = """
import http.server, sys
body = sys.argv[1].encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("HIT", self.path, flush=True)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler)
print("READY", flush=True)
server.serve_forever()
"""


@dataclass
class ControlJwksServer:
    """An attacker's JWKS in a throwaway container on the stack's control network."""

    container: str
    url: str

    def hits(self) -> int:
        logs = docker("logs", self.container, timeout=30).stdout
        return sum(1 for line in logs.splitlines() if line.startswith("HIT "))


@dataclass(frozen=True)
class Attackers:
    host: HostJwksServer
    control: ControlJwksServer
    control_baseline: int  # hits of the positive control: the gateway *can* reach the server


@pytest.fixture(scope="module")
def attackers(stack: Stack, forge: TokenFactory) -> Iterator[Attackers]:
    kid = jwt.get_unverified_header(forge.valid())["kid"]
    keys = forge.attacker_jwks(kid)["keys"] + forge.attacker_jwks(ATTACKER_KID)["keys"]
    document = {"keys": keys}
    host = HostJwksServer(document)
    name = f"{stack.project}-attacker-jwks-{uuid.uuid4().hex[:6]}"
    started = docker("run", "--detach", "--rm", "--name", name,
                     "--network", f"{stack.project}_control", stack_image(stack),
                     "python", "-c", _CONTROL_JWKS_SERVER, json.dumps(document))  # fmt: skip
    container = started.stdout.strip()
    try:
        wait_until(
            lambda: docker("logs", container, timeout=30).stdout,
            lambda out: "READY" in out,
            timeout=30,
            what="the attacker JWKS container to listen",
        )
        control = ControlJwksServer(container, f"http://{name}:8000/jwks.json")
        # Positive control: from the secure-gateway the attacker server is one request away.
        probe = wait_until(
            lambda: stack.exec("secure-gateway", "curl", "-fsS", "-o", "/dev/null", control.url),
            lambda proc: proc.returncode == 0,
            timeout=15,
            what="the secure-gateway to reach the attacker JWKS container",
        )
        assert probe.returncode == 0
        baseline = wait_until(
            control.hits, lambda n: n >= 1, timeout=10, what="the positive-control hit"
        )
        yield Attackers(host, control, baseline)
    finally:
        docker("stop", "--time", "1", container, timeout=60, check=False)
        host.close()


# -- the bad requests: each its own test ----------------------------------------------------
@dataclass(frozen=True)
class Ctx:
    forge: TokenFactory
    jwks: dict[str, Any]
    attackers: Attackers


def bearer(value: str) -> Headers:
    return [("Authorization", f"Bearer {value}")]


NGINX_400 = "nginx 400"  # refused by the gateway's HTTP parser before any token check
ANY_4XX = "any 4xx"

# id, headers, reason expected from the gateway (authz), reason expected from the agent
CASES: list[tuple[str, Callable[[Ctx], Headers], str, str]] = [
    ("no_token", lambda c: [], "missing bearer token", "missing bearer token"),
    ("scheme_without_token", lambda c: [("Authorization", "Bearer")], "missing bearer token",
     "missing bearer token"),
    ("wrong_scheme_basic", lambda c: [("Authorization", f"Basic {BASIC_CREDENTIALS}")],
     "unsupported authorization scheme", "unsupported authorization scheme"),
    ("wrong_scheme_with_valid_token", lambda c: [("Authorization", f"Token {c.forge.valid()}")],
     "unsupported authorization scheme", "unsupported authorization scheme"),
    ("two_tokens_in_one_header",
     lambda c: [("Authorization", f"Bearer {c.forge.valid()}, Bearer {c.forge.valid()}")],
     "more than one token", "more than one token"),
    ("two_authorization_headers", lambda c: bearer(c.forge.valid()) + bearer(c.forge.valid()),
     NGINX_400, "more than one Authorization header"),
    ("malformed_two_segments", lambda c: bearer(c.forge.truncated()),
     "expected 3 segments, got 2", "expected 3 segments, got 2"),
    ("malformed_bad_base64", lambda c: bearer(c.forge.bad_base64()),
     "segments are not base64url", "segments are not base64url"),
    ("malformed_bad_json", lambda c: bearer(c.forge.bad_json()),
     "header is not base64url JSON", "header is not base64url JSON"),
    ("malformed_non_object_payload", lambda c: bearer(c.forge.non_object_payload()),
     "signature verification failed", "signature verification failed"),
    ("alg_none", lambda c: bearer(c.forge.alg_none()),
     "algorithm not allowed: none", "algorithm not allowed: none"),
    ("hs256_signed_with_public_key", lambda c: bearer(c.forge.hs256_with_public_key(c.jwks)),
     "algorithm not allowed: HS256", "algorithm not allowed: HS256"),
    ("alg_rs512_not_allowed", lambda c: bearer(c.forge.with_header(alg="RS512")),
     "algorithm not allowed: RS512", "algorithm not allowed: RS512"),
    ("alg_ps256_not_allowed", lambda c: bearer(c.forge.with_header(alg="PS256")),
     "algorithm not allowed: PS256", "algorithm not allowed: PS256"),
    ("unknown_kid", lambda c: bearer(c.forge.with_header(kid=ATTACKER_KID)),
     "unknown kid", "unknown kid"),
    ("kid_path_traversal", lambda c: bearer(c.forge.with_header(kid="../../../../etc/passwd")),
     "unknown kid", "unknown kid"),
    ("kid_sql_injection", lambda c: bearer(c.forge.with_header(kid="k' OR '1'='1")),
     "invalid kid", "invalid kid"),
    ("kid_null", lambda c: bearer(c.forge.with_header(kid=None)), "invalid kid", "invalid kid"),
    ("kid_number", lambda c: bearer(c.forge.with_header(kid=1)), "invalid kid", "invalid kid"),
    ("kid_empty", lambda c: bearer(c.forge.with_header(kid="")), "invalid kid", "invalid kid"),
    ("kid_too_long", lambda c: bearer(c.forge.with_header(kid="k" * 129)),
     "invalid kid", "invalid kid"),
    ("kid_missing", lambda c: bearer(c.forge.with_header(kid=REMOVE)),
     "missing kid", "missing kid"),
    ("signature_from_another_key", lambda c: bearer(c.forge.attacker_signed()),
     "signature verification failed", "signature verification failed"),
    ("payload_tampered", lambda c: bearer(c.forge.tampered()),
     "signature verification failed", "signature verification failed"),
    ("forged_expired", lambda c: bearer(c.forge.expired()),
     "signature verification failed", "signature verification failed"),
    ("forged_nbf_in_future", lambda c: bearer(c.forge.not_yet_valid()),
     "signature verification failed", "signature verification failed"),
    ("forged_iat_in_future", lambda c: bearer(c.forge.issued_in_future()),
     "signature verification failed", "signature verification failed"),
    ("forged_lifetime_over_policy", lambda c: bearer(c.forge.too_long_lived()),
     "signature verification failed", "signature verification failed"),
    ("forged_missing_exp", lambda c: bearer(c.forge.missing_claim("exp")),
     "signature verification failed", "signature verification failed"),
    ("forged_missing_iat", lambda c: bearer(c.forge.missing_claim("iat")),
     "signature verification failed", "signature verification failed"),
    ("forged_wrong_issuer", lambda c: bearer(c.forge.wrong_issuer()),
     "signature verification failed", "signature verification failed"),
    ("forged_issuer_prefix", lambda c: bearer(c.forge.issuer_prefix()),
     "signature verification failed", "signature verification failed"),
    ("forged_wrong_audience", lambda c: bearer(c.forge.wrong_audience()),
     "signature verification failed", "signature verification failed"),
    ("forged_missing_audience", lambda c: bearer(c.forge.missing_claim("aud")),
     "signature verification failed", "signature verification failed"),
    ("unknown_crit", lambda c: bearer(c.forge.with_header(crit=["observastack-ext"])),
     "unsupported critical header parameter", "unsupported critical header parameter"),
    ("jku_attacker_on_loopback", lambda c: bearer(c.forge.with_header(jku=c.attackers.host.url)),
     "signature verification failed", "signature verification failed"),
    ("jku_attacker_on_control_network",
     lambda c: bearer(c.forge.with_header(jku=c.attackers.control.url, kid=ATTACKER_KID)),
     "unknown kid", "unknown kid"),
    ("x5u_attacker_on_control_network",
     lambda c: bearer(c.forge.with_header(x5u=c.attackers.control.url)),
     "signature verification failed", "signature verification failed"),
    ("jwk_embedded_attacker_key",
     lambda c: bearer(c.forge.with_header(jwk=c.forge.attacker_jwks(ATTACKER_KID)["keys"][0])),
     "signature verification failed", "signature verification failed"),
    ("oversized_9k", lambda c: bearer(c.forge.oversized(9_000)), NGINX_400, ANY_4XX),
    ("oversized_64k", lambda c: bearer(c.forge.oversized(64_000)), NGINX_400, ANY_4XX),
]  # fmt: skip
CASE_IDS = [case[0] for case in CASES]
CASE_PARAMS = [(name, gateway, agent) for name, _, gateway, agent in CASES]


@pytest.fixture(scope="module")
def bad_requests(stack: Stack, forge: TokenFactory, attackers: Attackers) -> dict[str, Headers]:
    jwks = httpx.get(
        stack.url("vault") + "/v1/identity/oidc/.well-known/keys", trust_env=False
    ).json()
    ctx = Ctx(forge, jwks, attackers)
    return {name: make(ctx) for name, make, _, _ in CASES}


_AGENT_PROBE = """
import http.client, json, sys
spec = json.load(sys.stdin)
out = {}
for case, headers in spec["cases"].items():
    try:
        conn = http.client.HTTPConnection("agent", 9000, timeout=15)
        conn.putrequest("GET", "/agent/status")
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        reply = conn.getresponse()
        out[case] = {"status": reply.status, "body": reply.read(8192).decode("utf-8", "replace"),
                     "challenge": reply.headers.get_all("WWW-Authenticate") or []}
        conn.close()
    except Exception as exc:
        out[case] = {"status": 0, "body": type(exc).__name__ + ": " + str(exc), "challenge": []}
print(json.dumps(out))
"""


@dataclass(frozen=True)
class AgentVerdicts:
    replies: dict[str, dict[str, Any]]
    decisions: list[dict[str, Any]]  # the agent's own authz_decision log lines


@pytest.fixture(scope="module")
def agent_direct(
    stack: Stack, forge: TokenFactory, bad_requests: dict[str, Headers]
) -> AgentVerdicts:
    """Every bad request (and one good one) sent straight to the agent from a throwaway container
    on the control network, bypassing the secure-gateway: the agent must check tokens itself."""
    cases = {**bad_requests, "__valid__": bearer(forge.valid())}
    agent, since = stack.container("agent"), f"{time.time() - 1:.3f}"
    proc = docker("run", "--rm", "--interactive", "--network", f"{stack.project}_control",
                  stack_image(stack), "python", "-c", _AGENT_PROBE,
                  input_text=json.dumps({"cases": cases}), timeout=120)  # fmt: skip
    replies: dict[str, dict[str, Any]] = json.loads(proc.stdout)
    # Requests the agent's HTTP parser refuses (oversized headers: 413/431) never reach the token
    # check, so they leave no decision line; every other bad request does.
    parse_refused = {case for case, _, _, agent_reason in CASES if agent_reason == ANY_4XX}
    expected_denials = len(set(bad_requests) - parse_refused)

    def agent_log() -> str:
        logs = docker("logs", "--since", since, agent, timeout=30)
        return logs.stdout + logs.stderr

    decisions = wait_until(
        lambda: decision_lines(agent_log()),
        lambda found: sum(d["outcome"] == "deny" for d in found) >= expected_denials,
        timeout=15,
        what="the agent's decision lines for the direct requests",
    )
    return AgentVerdicts(replies, decisions)


# -- helpers --------------------------------------------------------------------------------
def stack_image(stack: Stack) -> str:
    """The image the stack's own services run (throwaway containers use the same one)."""
    return docker(
        "inspect", "--format", "{{.Config.Image}}", stack.container("agent")
    ).stdout.strip()


def decision_lines(logs: str) -> list[dict[str, Any]]:
    """The ``authz_decision`` records of a service's log (bare JSON, or nested in ``msg``)."""
    found = []
    for line in logs.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("msg"), str):
            try:
                record = json.loads(record["msg"])
            except ValueError:
                continue
        if isinstance(record, dict) and record.get("event") == "authz_decision":
            found.append(record)
    return found


def description(response: httpx.Response) -> str:
    match = re.search(r'error_description="([^"]*)"', response.headers.get("www-authenticate", ""))
    return match.group(1) if match else ""


def secret_pieces(headers: Headers) -> list[str]:
    """Parts of the credentials long enough to recognise if a server echoed them."""
    return [p for _, v in headers for p in re.split(r"[ ,.]", v) if len(p) > 8][:50]


def assert_rejected(response: httpx.Response, reason: str, headers: Headers) -> None:
    __tracebackhide__ = True
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if reason == NGINX_400:
        assert response.status_code == 400, response.text[:300]
    elif reason == ANY_4XX:
        assert 400 <= response.status_code < 500, response.text[:300]
    else:
        assert response.status_code == 401, response.text[:300]
        challenges = response.headers.get_list("www-authenticate")
        assert len(challenges) == 1, challenges
        assert challenges[0].startswith(INVALID_TOKEN), challenges
        assert reason in description(response), challenges
    echoed = [p for p in secret_pieces(headers) if p in response.text or p in str(response.headers)]
    assert not echoed, "the credentials were echoed back"


def wait_for_decision(
    stack: Stack, done: Callable[[list[dict[str, Any]]], bool], what: str
) -> list[dict[str, Any]]:
    return wait_until(
        lambda: decision_lines(stack.logs("secure-gateway", tail=400)),
        done,
        timeout=15,
        interval=0.2,
        what=what,
    )


def probe_path(name: str) -> str:
    return f"/config/identity-probe/{name}-{uuid.uuid4().hex[:8]}"


# -- a valid token goes where it should, and nowhere else -----------------------------------
def test_valid_token_reaches_config_and_the_agent(
    stack: Stack, forge: TokenFactory, secure: httpx.Client
) -> None:
    good = forge.valid()
    subject = jwt.decode(good, options={"verify_signature": False})["sub"]
    path = probe_path("valid")
    config = secure.get(path, headers=bearer(good))
    assert config.status_code != 401
    assert config.status_code < 500, config.text  # the backend may 404 unknown config paths
    status = secure.get("/agent/status", headers=bearer(good))
    assert status.status_code == 200, status.text
    assert status.json()["master"]["pid"] > 1
    (allowed,) = [
        d
        for d in wait_for_decision(
            stack, lambda ds: any(d["path"] == path for d in ds), "the allow line for the probe"
        )
        if d["path"] == path
    ]
    assert allowed["outcome"] == "allow"
    assert allowed["subject"] == subject
    assert allowed["audience"] == stack.options.identity.audience


def test_valid_token_gets_nothing_on_the_user_path(
    forge: TokenFactory, user_client: httpx.Client
) -> None:
    auth = bearer(forge.valid())
    for path in ("/config/runtime", "/config/identity-probe", "/agent/status", "/agent/signals"):
        response = user_client.get(path, headers=auth)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["detail"] == "the user-path serves /api/* only"
        assert "master" not in response.text
        assert "worker_pids" not in response.text


def test_agent_checks_a_valid_token_itself_and_accepts_it(agent_direct: AgentVerdicts) -> None:
    reply = agent_direct.replies["__valid__"]
    assert reply["status"] == 200, reply
    assert json.loads(reply["body"])["master"]["pid"] > 1


@pytest.mark.parametrize(("case", "gateway_reason", "agent_reason"), CASE_PARAMS, ids=CASE_IDS)
def test_bad_token_is_rejected_and_logged(
    stack: Stack,
    secure: httpx.Client,
    bad_requests: dict[str, Headers],
    agent_direct: AgentVerdicts,
    attackers: Attackers,
    case: str,
    gateway_reason: str,
    agent_reason: str,
) -> None:
    headers = bad_requests[case]
    path = probe_path(case)
    config = secure.get(path, headers=headers)
    assert_rejected(config, gateway_reason, headers)
    status = secure.get("/agent/status", headers=headers)
    assert_rejected(status, gateway_reason, headers)
    assert "worker_pids" not in status.text

    if gateway_reason not in (NGINX_400, ANY_4XX):

        def both_logged(ds: list[dict[str, Any]]) -> bool:
            at = [i for i, d in enumerate(ds) if d["path"] == path]
            return bool(at) and any(d["path"] == "/agent/status" for d in ds[at[-1] + 1 :])

        decisions = wait_for_decision(stack, both_logged, f"decision lines for {case}")
        at = max(i for i, d in enumerate(decisions) if d["path"] == path)
        after = [d for d in decisions[at + 1 :] if d["path"] == "/agent/status"]
        for line in (decisions[at], after[0]):
            assert line["outcome"] == "deny"
            assert line["status"] == 401
            assert gateway_reason in line["reason"]
            assert line["subject"] is None
    logs = stack.logs("secure-gateway", tail=400)
    assert not [p for p in secret_pieces(headers) if p in logs], "a credential reached the log"

    # Straight to the agent, bypassing the gateway: it refuses on its own, and logs it.
    direct = agent_direct.replies[case]
    assert 400 <= direct["status"] < 500, direct
    assert "worker_pids" not in direct["body"]
    assert not [p for p in secret_pieces(headers) if p in direct["body"]]
    if agent_reason != ANY_4XX:
        assert direct["status"] == 401, direct
        assert [c for c in direct["challenge"] if c.startswith(INVALID_TOKEN)], direct
        assert agent_reason in direct["body"]
        assert any(
            d["outcome"] == "deny" and agent_reason in d["reason"] for d in agent_direct.decisions
        )

    if case.startswith(("jku", "x5u", "jwk")):
        assert attackers.host.hits == 0
        assert attackers.control.hits() == attackers.control_baseline


def test_attacker_jwks_servers_were_never_fetched(attackers: Attackers) -> None:
    assert attackers.host.hits == 0
    assert attackers.control.hits() == attackers.control_baseline


# -- genuine Vault signatures with bad claims ------------------------------------------------
FORGE_KEY = "observastack-test-forge"
FORGE_USER, FORGE_PASSWORD = "identity-tests", "identity-tests-dev"
OTHER_AUDIENCE = "observastack-some-other-service"
FORGE_ROLES = {  # role -> (client_id, ttl_s); None: the secure-path audience
    "test-other-audience": (OTHER_AUDIENCE, 60),
    "test-long-lived": (None, 600),
    "test-one-second": (None, 1),
    "test-short-ttl": (None, 10),
    "test-plain": (None, 60),
}


def ensure_test_roles(stack: Stack, secure: httpx.Client) -> None:
    """Extra key, roles and user for these tests (idempotent; Vault forgets them on restart).

    A separate key and roles leave the secure-path role untouched, so nothing needs restoring.
    Returns once both verifiers accept the extra key (they refetch an unknown kid at a bounded
    rate), so that each test's rejection comes from its claims alone."""
    ident = stack.options.identity
    client = hvac.Client(url=stack.url("vault"), token=ident.root_token, timeout=10)
    try:
        identity = client.secrets.identity
        identity.create_named_key(name=FORGE_KEY, verification_ttl="2h", algorithm="RS256",
                                  allowed_client_ids=[ident.audience, OTHER_AUDIENCE])  # fmt: skip
        for role, (client_id, ttl) in FORGE_ROLES.items():
            identity.create_or_update_role(
                name=role, key=FORGE_KEY, client_id=client_id or ident.audience, ttl=f"{ttl}s"
            )
        rules = "".join(
            f'path "identity/oidc/token/{role}" {{\n  capabilities = ["read"]\n}}\n'
            for role in FORGE_ROLES
        )
        client.sys.create_or_update_acl_policy(name="identity-tests", policy=rules)
        mounts = client.sys.list_auth_methods()
        if "userpass/" not in (mounts.get("data") or mounts):
            client.sys.enable_auth_method(method_type="userpass")
        client.auth.userpass.create_or_update_user(
            username=FORGE_USER, password=FORGE_PASSWORD, token_policies=["identity-tests"]
        )
    finally:
        client.adapter.close()
    plain = bearer(vault_token(stack, "test-plain"))
    wait_until(
        lambda: secure.get("/agent/status", headers=plain),
        lambda r: r.status_code == 200,
        timeout=15,
        interval=0.3,
        what="both verifiers to accept tokens signed by the test key",
    )


def vault_source(stack: Stack, role: str) -> VaultTokenSource:
    return VaultTokenSource(stack.url("vault"), FORGE_USER, FORGE_PASSWORD, role)


def vault_token(stack: Stack, role: str) -> str:
    source = vault_source(stack, role)
    try:
        return source.token()
    finally:
        source.close()


def assert_vault_token_rejected(
    stack: Stack, secure: httpx.Client, genuine: str, reason: str
) -> None:
    __tracebackhide__ = True
    path = probe_path("vault-signed")
    for target in (path, "/agent/status"):
        response = secure.get(target, headers=bearer(genuine))
        assert_rejected(response, reason, bearer(genuine))
    decisions = wait_for_decision(
        stack, lambda ds: any(d["path"] == path for d in ds), f"the decision for {path}"
    )
    (line,) = [d for d in decisions if d["path"] == path]
    assert reason in line["reason"]


def test_vault_signed_token_for_another_audience_is_rejected(
    stack: Stack, secure: httpx.Client
) -> None:
    ensure_test_roles(stack, secure)
    genuine = vault_token(stack, "test-other-audience")
    assert jwt.decode(genuine, options={"verify_signature": False})["aud"] == OTHER_AUDIENCE
    assert_vault_token_rejected(stack, secure, genuine, "wrong audience")


def test_vault_signed_token_living_longer_than_the_policy_is_rejected(
    stack: Stack, secure: httpx.Client
) -> None:
    ensure_test_roles(stack, secure)
    genuine = vault_token(stack, "test-long-lived")
    assert_vault_token_rejected(stack, secure, genuine, "token lifetime 600s exceeds policy 300s")


def test_vault_signed_token_is_rejected_once_expired(stack: Stack, secure: httpx.Client) -> None:
    ensure_test_roles(stack, secure)
    genuine = vault_token(stack, "test-one-second")
    # Accepted while fresh (within the 5 s leeway), so the rejection below is the expiry alone.
    assert secure.get("/agent/status", headers=bearer(genuine)).status_code == 200
    wait_until(
        lambda: secure.get("/agent/status", headers=bearer(genuine)),
        lambda r: r.status_code == 401,
        timeout=20,
        interval=0.5,
        what="a one-second token to be refused as expired",
    )
    assert_vault_token_rejected(stack, secure, genuine, "token expired")


@pytest.mark.parametrize(
    ("issuer_base", "why"),
    [("http://vault.attacker.example:8200", "another issuer"),
     ("http://vault:8200/v1/identity/oidc/attacker", "the configured issuer is a prefix of it")],
    ids=["wrong_issuer", "issuer_prefix"],
)  # fmt: skip
def test_vault_signed_token_from_another_issuer_is_rejected(
    stack: Stack, secure: httpx.Client, issuer_base: str, why: str
) -> None:
    ensure_test_roles(stack, secure)
    ident = stack.options.identity
    client = hvac.Client(url=stack.url("vault"), token=ident.root_token, timeout=10)
    try:
        client.secrets.identity.configure_tokens_backend(issuer=issuer_base)
        genuine = vault_token(stack, "test-plain")
    finally:
        client.secrets.identity.configure_tokens_backend(issuer=ident.issuer.rstrip("/"))
        client.adapter.close()
    issued_by = jwt.decode(genuine, options={"verify_signature": False})["iss"]
    assert issued_by != f"{ident.issuer}/v1/identity/oidc", why
    assert_vault_token_rejected(stack, secure, genuine, "wrong issuer")


# -- keys, outages, restarts, expiry ---------------------------------------------------------
def test_tokens_from_a_rotated_key_are_accepted_within_seconds(
    stack: Stack, forge: TokenFactory, secure: httpx.Client
) -> None:
    before = forge.valid()
    rotate_key(stack.url("vault"), stack.options.identity.root_token, key=DEFAULT_KEY)
    after = forge.valid()
    assert jwt.get_unverified_header(after)["kid"] != jwt.get_unverified_header(before)["kid"]
    started = time.monotonic()
    wait_until(
        lambda: secure.get("/agent/status", headers=bearer(after)),
        lambda r: r.status_code == 200,
        timeout=10,
        interval=0.2,
        what="a token signed by the rotated key to be accepted",
    )
    assert time.monotonic() - started < 5
    assert secure.get(probe_path("rotated"), headers=bearer(after)).status_code != 401
    # Tokens signed before the rotation stay valid: the old key is still published.
    assert secure.get("/agent/status", headers=bearer(before)).status_code == 200


def jwks_cache_seconds(stack: Stack) -> float:
    """The secure-gateway's configured JWKS cache lifetime (OBSERVASTACK_JWKS_CACHE_S, 60)."""
    env = json.loads(
        docker(
            "inspect", "--format", "{{json .Config.Env}}", stack.container("secure-gateway")
        ).stdout
    )
    values = [e.split("=", 1)[1] for e in env if e.startswith("OBSERVASTACK_JWKS_CACHE_S=")]
    return float(values[0]) if values else 60.0


def test_jwks_outage_fails_closed_and_recovers_by_itself(
    stack: Stack, forge: TokenFactory, secure: httpx.Client
) -> None:
    good = bearer(forge.valid())
    assert secure.get("/agent/status", headers=good).status_code == 200
    vault = stack.container("vault")
    cache_s = jwks_cache_seconds(stack)
    docker("pause", vault)
    try:
        refused = wait_until(
            lambda: secure.get("/agent/status", headers=good),
            lambda r: r.status_code == 401,
            timeout=cache_s + 20,
            interval=1.0,
            what=f"the secure-path to fail closed once its {cache_s:g} s JWKS cache is stale",
        )
        assert "signing keys unavailable" in description(refused)
        assert secure.get(probe_path("jwks-down"), headers=good).status_code == 401
    finally:
        docker("unpause", vault, check=False)
    wait_until(
        lambda: secure.get("/agent/status", headers=good),
        lambda r: r.status_code == 200,
        timeout=20,
        interval=0.5,
        what="the secure-path to accept tokens again once Vault answers",
    )
    assert secure.get(probe_path("jwks-back"), headers=good).status_code != 401


def test_a_long_running_client_keeps_working_across_token_expiry(
    stack: Stack, secure: httpx.Client
) -> None:
    ensure_test_roles(stack, secure)
    ttl_s = FORGE_ROLES["test-short-ttl"][1]
    source = vault_source(stack, "test-short-ttl")
    auth = RefreshingAuth(source)
    sent: list[str] = []
    path = probe_path("long-running")
    config: list[int] = []
    status: list[int] = []
    try:
        hooks = {"request": [lambda r: sent.append(r.headers["authorization"])]}
        with httpx.Client(base_url=stack.url("secure"), auth=auth, timeout=15.0, trust_env=False,
                          event_hooks=hooks) as client:  # fmt: skip
            started = time.monotonic()
            while time.monotonic() - started < 2 * ttl_s + 2:  # bounded: a little over two TTLs
                config.append(client.get(path).status_code)
                status.append(client.get("/agent/status").status_code)
                time.sleep(0.5)  # the pace of a steady client, not a wait for a condition
    finally:
        source.close()
    assert set(status) == {200}, status
    assert 401 not in config
    assert max(config) < 500, config
    assert len(set(sent)) >= 3, "the token should have been replaced at least twice"
    assert auth.fetches == len(set(sent))
    # Refreshed *before* expiry: the verifier never had to refuse one of our requests.
    decisions = decision_lines(stack.logs("secure-gateway", tail=2000))
    assert not [d for d in decisions if d["path"] == path and d["outcome"] == "deny"]


def test_secure_client_survives_a_vault_restart(
    stack: Stack, token_source: TokenSource, secure_client: httpx.Client
) -> None:
    runs_before = getattr(token_source, "bootstrap_runs", 0)
    vault = stack.container("vault")
    docker("restart", "--time", "2", vault, timeout=90)
    published = docker("port", vault, "8200/tcp").stdout.split()[0]
    if f"http://{published}" != stack.url("vault"):
        pytest.fail(
            f"Vault's host port moved on restart ({stack.url('vault')} -> http://{published}): "
            "an ephemeral published port is re-picked by Docker whenever the container "
            "restarts, so the stack's URLs and the session token source point nowhere. "
            "Pin the host ports when the stack starts (OBSERVASTACK_*_PORT).",
            pytrace=False,
        )
    wait_until(
        lambda: httpx.get(stack.url("vault") + "/v1/sys/health", trust_env=False),
        lambda r: r.status_code == 200,
        timeout=60,
        interval=0.25,
        what="Vault to answer after its restart",
    )
    # The client's first token comes from a Vault that forgot the user, role and key: the
    # token source notices, re-runs the bootstrap and retries, with nobody's help.
    wait_until(
        lambda: secure_client.get("/agent/status"),
        lambda r: r.status_code == 200,
        timeout=30,
        interval=0.5,
        what="the secure client to get through after the Vault restart",
    )
    assert getattr(token_source, "bootstrap_runs", 0) > runs_before
    assert secure_client.get(probe_path("after-restart")).status_code != 401
