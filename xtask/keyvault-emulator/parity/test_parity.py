"""Parity suite: the Key Vault emulator driven by Microsoft's Python SDK (azure-keyvault-secrets).

Runs against a RUNNING emulator named by environment variables (see ../README.md); it fails,
never skips, when they are missing. Challenge-resource verification is on (the SDK default), TLS
is verified against the emulator's CA, and NAME.localhost is resolved to 127.0.0.1 inside this
process only. Where the SDK and the emulator disagree, the SDK wins.
"""

import os
import socket
import time
import uuid
from urllib.parse import urlparse

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.keyvault.secrets import SecretClient

ENV_VARS = (
    "NEBULA_TEST_AZURE_VAULT_URL",
    "NEBULA_TEST_AZURE_CA_PEM",
    "NEBULA_TEST_AZURE_TOKEN",
    "NEBULA_TEST_AZURE_READONLY_TOKEN",
    "NEBULA_TEST_AZURE_REJECTED_TOKEN",
)


class StaticToken:
    """A credential that hands out one fixed token and records the scopes asked for."""

    def __init__(self, token):
        self._token = token
        self.scopes = []

    def get_token(self, *scopes, **_kwargs):
        self.scopes.extend(scopes)
        return AccessToken(self._token, int(time.time()) + 3600)


@pytest.fixture(scope="session")
def env():
    missing = [name for name in ENV_VARS if not os.environ.get(name)]
    if missing:
        pytest.fail(
            "the Key Vault emulator is not configured: set " + ", ".join(missing)
            + " (start it with `cargo xtask emulators up azure`; see xtask/keyvault-emulator/README.md)",
            pytrace=False,
        )
    return {name: os.environ[name] for name in ENV_VARS}


@pytest.fixture(scope="session", autouse=True)
def localhost_names(env):
    """Resolve every NAME.localhost to 127.0.0.1 in this process (no /etc/hosts needed)."""
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if isinstance(host, str) and host.lower().endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    yield
    socket.getaddrinfo = real


def vault_url(env, vault=None):
    """The configured vault, or another vault on the same emulator (created on first use)."""
    url = urlparse(env["NEBULA_TEST_AZURE_VAULT_URL"])
    if vault is None:
        return url.geturl().rstrip("/")
    return f"https://{vault}.localhost:{url.port}"


def client(env, token_var="NEBULA_TEST_AZURE_TOKEN", vault=None, **kwargs):
    credential = StaticToken(env[token_var])
    secret_client = SecretClient(
        vault_url(env, vault),
        credential,
        verify_challenge_resource=True,
        connection_verify=env["NEBULA_TEST_AZURE_CA_PEM"],
        **kwargs,
    )
    return secret_client, credential


def control(env, method, path, body=None, vault=None):
    response = requests.request(
        method,
        f"{vault_url(env, vault)}/__emulator/{path}",
        json=body,
        headers={"Authorization": f"Bearer {env['NEBULA_TEST_AZURE_TOKEN']}"},
        verify=env["NEBULA_TEST_AZURE_CA_PEM"],
        timeout=10,
    )
    response.raise_for_status()
    return response.json() if response.content else None


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def inner_code(error):
    """`error.innererror.code` as azure-core parsed it from the body."""
    return (error.error.innererror or {}).get("code")


def test_challenge_set_get_update_versions(env):
    kv, credential = client(env)
    name = unique("round-trip")
    first = kv.set_secret(name, "first", content_type="text/plain", tags={"owner": "nebula"})
    port = urlparse(env["NEBULA_TEST_AZURE_VAULT_URL"]).port
    assert credential.scopes == [f"https://localhost:{port}/.default"]
    assert len(first.properties.version) == 32
    assert first.properties.created_on is not None

    second = kv.set_secret(name, "second")
    latest = kv.get_secret(name)
    assert (latest.value, latest.properties.version) == ("second", second.properties.version)
    old = kv.get_secret(name, first.properties.version)
    assert (old.value, old.properties.content_type, old.properties.tags) == (
        "first",
        "text/plain",
        {"owner": "nebula"},
    )

    updated = kv.update_secret_properties(name, content_type="application/json", tags={"stage": "updated"})
    assert (updated.content_type, updated.tags) == ("application/json", {"stage": "updated"})
    versions = list(kv.list_properties_of_secret_versions(name))
    assert sorted(v.version for v in versions) == sorted([first.properties.version, second.properties.version])


@pytest.mark.parametrize("page_size, pages", [(7, 9), (None, 3)])
def test_paging_over_sixty_secrets(env, page_size, pages):
    vault = "p" + uuid.uuid4().hex[:10]  # a fresh vault on the same emulator
    kv, _ = client(env, vault=vault)
    names = [f"page-{i:02}" for i in range(60)]
    for name in names:
        kv.set_secret(name, "v")
    kwargs = {} if page_size is None else {"max_page_size": page_size}
    seen, page_count = [], 0
    for page in kv.list_properties_of_secrets(**kwargs).by_page():
        page_count += 1
        seen.extend(secret.name for secret in page)
    assert seen == names
    assert page_count == pages


def test_soft_delete_recover_purge(env):
    kv, _ = client(env)
    name = unique("doomed")
    kv.set_secret(name, "keep me")

    poller = kv.begin_delete_secret(name)
    # result() does not wait (KeyVaultOperationPoller); wait() polls get_deleted_secret until 200.
    poller.wait()
    deleted = poller.result()
    assert deleted.recovery_id == f"{vault_url(env)}/deletedsecrets/{name}"
    assert deleted.scheduled_purge_date > deleted.deleted_date
    assert kv.get_deleted_secret(name).name == name
    assert name in [d.name for d in kv.list_deleted_secrets()]

    with pytest.raises(ResourceExistsError) as conflict:
        kv.set_secret(name, "again")
    assert conflict.value.status_code == 409
    assert conflict.value.error.code == "Conflict"
    assert inner_code(conflict.value) == "ObjectIsDeletedButRecoverable"

    poller = kv.begin_recover_deleted_secret(name)
    poller.wait()
    recovered = poller.result()
    assert recovered.name == name
    assert kv.get_secret(name).value == "keep me"

    kv.begin_delete_secret(name).wait()
    kv.purge_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError) as gone:
        kv.get_deleted_secret(name)
    assert gone.value.error.code == "SecretNotFound"
    kv.set_secret(name, "fresh")


def test_disabled_secret_is_forbidden(env):
    kv, _ = client(env)
    name = unique("disabled")
    kv.set_secret(name, "hidden", enabled=False)
    with pytest.raises(HttpResponseError) as forbidden:
        kv.get_secret(name)
    assert forbidden.value.status_code == 403
    assert forbidden.value.error.code == "Forbidden"
    assert inner_code(forbidden.value) == "SecretDisabled"
    kv.update_secret_properties(name, enabled=True)
    assert kv.get_secret(name).value == "hidden"


def test_missing_secret_is_not_found(env):
    kv, _ = client(env)
    with pytest.raises(ResourceNotFoundError) as missing:
        kv.get_secret(unique("never-set"))
    assert missing.value.error.code == "SecretNotFound"


def test_read_only_token_reads_but_cannot_write(env):
    writer, _ = client(env)
    name = unique("shared")
    writer.set_secret(name, "readable")
    reader, _ = client(env, "NEBULA_TEST_AZURE_READONLY_TOKEN")
    assert reader.get_secret(name).value == "readable"
    with pytest.raises(HttpResponseError) as forbidden:
        reader.set_secret(name, "nope")
    assert forbidden.value.status_code == 403
    assert forbidden.value.error.code == "Forbidden"
    assert inner_code(forbidden.value) == "ForbiddenByRbac"
    assert "Microsoft.KeyVault/vaults/secrets/setSecret/action" in forbidden.value.error.message


def test_rejected_token_is_401(env):
    kv, _ = client(env, "NEBULA_TEST_AZURE_REJECTED_TOKEN")
    with pytest.raises(ClientAuthenticationError) as rejected:
        kv.get_secret(unique("anything"))
    assert rejected.value.status_code == 401
    assert rejected.value.error.code == "Unauthorized"


def test_names_are_case_insensitive(env):
    kv, _ = client(env)
    name = unique("Mixed-Case")
    kv.set_secret(name, "one")
    kv.set_secret(name.upper(), "two")
    assert kv.get_secret(name.lower()).value == "two"
    assert len(list(kv.list_properties_of_secret_versions(name))) == 2


@pytest.mark.parametrize(
    "name, value, kwargs",
    [
        ("too-large", "x" * 25_601, {}),
        ("too-many-tags", "v", {"tags": {f"t{i}": "v" for i in range(16)}}),
        ("long-content-type", "v", {"content_type": "c" * 256}),
        ("bad_name", "v", {}),
    ],
)
def test_limits(env, name, value, kwargs):
    kv, _ = client(env)
    with pytest.raises(HttpResponseError) as bad:
        kv.set_secret(name, value, **kwargs)
    assert bad.value.status_code == 400
    assert bad.value.error.code == "BadParameter"


def test_throttling_is_retried_by_the_sdk_after_retry_after(env):
    vault = "t" + uuid.uuid4().hex[:10]  # its own vault, so the request log is ours alone
    kv, _ = client(env, vault=vault)
    kv.set_secret("busy", "v")
    control(env, "DELETE", "requests", vault=vault)
    control(env, "POST", "faults", {"status": 429, "retry_after_s": 1, "count": 1}, vault=vault)
    started = time.monotonic()
    assert kv.get_secret("busy").value == "v"
    assert time.monotonic() - started >= 1.0
    log = [r for r in control(env, "GET", "requests", vault=vault)["requests"] if r["vault"] == vault]
    assert [(r["method"], r["status"]) for r in log] == [("GET", 429), ("GET", 200)]


class ExpiringToken:
    """Tokens said to expire in 302 s, which the emulator refuses 3-4 s after issue
    (`TOKEN~exp=UNIX`): the SDK refreshes a token within 5 minutes of its expiry, so it
    must never present one past the emulator's deadline."""

    def __init__(self, token):
        self._token = token
        self.issued = 0

    def get_token(self, *_scopes, **_kwargs):
        self.issued += 1
        now = int(time.time())
        return AccessToken(f"{self._token}~exp={now + 4}", now + 302)


def test_expiring_tokens_are_refreshed_by_the_sdk_and_expired_ones_refused(env):
    vault = unique("tok")[:20]
    credential = ExpiringToken(env["NEBULA_TEST_AZURE_TOKEN"])
    secret_client = SecretClient(
        vault_url(env, vault),
        credential,
        verify_challenge_resource=True,
        connection_verify=env["NEBULA_TEST_AZURE_CA_PEM"],
    )
    name = unique("fresh")
    secret_client.set_secret(name, "v")
    started, reads = time.time(), 0
    while time.time() - started < 6:
        assert secret_client.get_secret(name).value == "v"
        reads += 1
        time.sleep(0.2)
    assert credential.issued >= 3, credential.issued
    assert credential.issued < reads, (credential.issued, reads)
    log = control(env, "GET", "requests")["requests"]
    refused = [r for r in log if r["vault"] == vault and r["status"] == 401]
    assert len(refused) == 1, refused  # the SDK's first, unauthenticated request only

    expired = requests.get(
        f"{vault_url(env, vault)}/secrets/{name}?api-version=7.5",
        headers={"Authorization": f"Bearer {env['NEBULA_TEST_AZURE_TOKEN']}~exp={int(time.time()) - 1}"},
        verify=env["NEBULA_TEST_AZURE_CA_PEM"],
        timeout=10,
    )
    assert expired.status_code == 401
    assert expired.json()["error"]["innererror"]["code"] == "TokenExpired"


def test_a_fault_for_one_vault_leaves_the_others_alone(env):
    mine, other = unique("flt")[:20], unique("oth")[:20]
    secret_client, _ = client(env, vault=mine, retry_total=0)
    other_client, _ = client(env, vault=other, retry_total=0)
    name = unique("scoped")
    secret_client.set_secret(name, "v")
    other_client.set_secret(name, "w")
    control(env, "POST", "faults", {"status": 503, "vault": mine})
    assert other_client.get_secret(name).value == "w"
    with pytest.raises(HttpResponseError) as raised:
        secret_client.get_secret(name)
    assert raised.value.status_code == 503
    assert secret_client.get_secret(name).value == "v"
