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
    AzureError,
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
    "NEBULA_TEST_AZURE_METADATA_TOKEN",
    "NEBULA_TEST_AZURE_NOPURGE_TOKEN",
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
            + " (start it with `cargo xtask emulators up azure`; see test-servers/keyvault-emulator/README.md)",
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


def fresh_vault(prefix):
    """A vault of this test's own on the shared emulator (3-24 characters)."""
    return (prefix + uuid.uuid4().hex)[:20]


def test_versions_of_a_missing_secret_are_an_empty_list(env):
    kv, _ = client(env)
    assert list(kv.list_properties_of_secret_versions(unique("never-set"))) == []


def test_an_unknown_api_version_is_a_bad_parameter(env):
    kv, _ = client(env, api_version="7.9")
    with pytest.raises(HttpResponseError) as bad:
        kv.get_secret(unique("anything"))
    assert bad.value.status_code == 400
    assert bad.value.error.code == "BadParameter"
    assert "(7.9)" in bad.value.error.message
    for known in ("7.6", "2025-07-01"):
        kv, _ = client(env, api_version=known)
        with pytest.raises(ResourceNotFoundError):
            kv.get_secret(unique("absent"))


def test_a_purge_protected_vault_refuses_purge(env):
    vault = fresh_vault("pp")
    settings = control(env, "POST", f"vaults/{vault}", {"purge_protection": True, "delete_delay_ms": 0})
    assert settings["recovery_level"] == "Recoverable"
    assert control(env, "GET", f"vaults/{vault}") == settings
    kv, _ = client(env, vault=vault)
    name = unique("protected")
    secret = kv.set_secret(name, "v")
    assert secret.properties.recovery_level == "Recoverable"
    assert secret.properties.recoverable_days == 90
    kv.begin_delete_secret(name).wait()
    with pytest.raises(HttpResponseError) as refused:
        kv.purge_deleted_secret(name)
    assert refused.value.status_code == 403
    assert refused.value.error.code == "Forbidden"
    assert inner_code(refused.value) is None
    assert "purge protection" in refused.value.error.message
    kv.begin_recover_deleted_secret(name).wait()
    assert kv.get_secret(name).value == "v"


def test_delete_delay_is_set_per_vault_and_waited_for_by_the_sdk_poller(env):
    vault = fresh_vault("slow")
    control(env, "POST", f"vaults/{vault}", {"delete_delay_ms": 3000, "recover_delay_ms": 0})
    kv, _ = client(env, vault=vault)
    name = unique("slow")
    kv.set_secret(name, "v")
    control(env, "DELETE", "requests")
    started = time.monotonic()
    kv.begin_delete_secret(name).wait()
    assert time.monotonic() - started >= 3.0
    log = [r for r in control(env, "GET", "requests")["requests"] if r["vault"] == vault]
    polls = [r["status"] for r in log if r["path"] == f"/deletedsecrets/{name}"]
    assert polls[0] == 404 and polls[-1] == 200, polls


def test_faults_match_method_and_path_and_answer_any_code(env):
    vault = fresh_vault("fm")
    kv, _ = client(env, vault=vault, retry_total=0)
    name = unique("guarded")
    kv.set_secret(name, "v")
    control(env, "POST", "faults", {
        "vault": vault, "method": "DELETE", "path": f"/secrets/{name}",
        "status": 403, "code": "Forbidden", "inner_code": "ForbiddenByFirewall",
        "message": "Client address is not authorized and caller is not a trusted service.",
    })
    control(env, "POST", "faults", {"vault": vault, "path": f"/secrets/{name}*", "method": "GET", "status": 409})
    with pytest.raises(ResourceExistsError) as conflict:
        kv.get_secret(name)
    assert conflict.value.status_code == 409
    assert conflict.value.error.code == "Conflict"
    with pytest.raises(HttpResponseError) as firewall:
        kv.begin_delete_secret(name)
    assert firewall.value.status_code == 403
    assert inner_code(firewall.value) == "ForbiddenByFirewall"
    assert kv.get_secret(name).value == "v"


def test_a_mid_session_challenge_is_answered_by_the_sdk(env):
    vault = fresh_vault("cae")
    kv, credential = client(env, vault=vault, retry_total=0)
    name = unique("session")
    kv.set_secret(name, "v")
    asked = len(credential.scopes)
    control(env, "DELETE", "requests")
    control(env, "POST", "faults", {"vault": vault, "challenge": True})
    assert kv.get_secret(name).value == "v"
    assert len(credential.scopes) > asked, "the SDK asked for a new token"
    log = [(r["method"], r["status"]) for r in control(env, "GET", "requests")["requests"] if r["vault"] == vault]
    assert log == [("GET", 401), ("GET", 200)]
    # A write challenged mid-session is resent with its body.
    control(env, "POST", "faults", {"vault": vault, "method": "PUT", "challenge": True})
    kv.set_secret(name, "after-challenge")
    assert kv.get_secret(name).value == "after-challenge"


def test_a_reset_mid_body_lands_the_write_and_loses_the_answer(env):
    vault = fresh_vault("rst")
    kv, _ = client(env, vault=vault, retry_total=0)
    name = unique("landed")
    kv.set_secret(name, "one")
    control(env, "POST", "faults", {"vault": vault, "method": "PUT", "reset_mid_body": True})
    with pytest.raises(AzureError) as cut:
        kv.set_secret(name, "two")
    assert not isinstance(cut.value, HttpResponseError) or cut.value.status_code is None, cut.value
    assert kv.get_secret(name).value == "two"


def test_a_hook_writes_as_another_tool_just_before_the_next_request(env):
    vault = fresh_vault("hk")
    kv, _ = client(env, vault=vault)
    name = unique("contested")
    kv.set_secret(name, "ours", tags={"managed-by": "nebula"})
    control(env, "POST", "hooks", {
        "vault": vault, "name": name, "method": "DELETE", "action": "set",
        "value": "theirs", "tags": {"owner": "other-tool"},
    })
    assert kv.get_secret(name).value == "ours"
    poller = kv.begin_delete_secret(name)
    assert poller.result().properties.tags == {"owner": "other-tool"}
    hooks = control(env, "GET", "hooks")
    assert not [h for h in hooks["hooks"] if h["vault"] == vault]
    fired = [h for h in hooks["fired"] if h["vault"] == vault]
    assert [(h["action"], h["status"]) for h in fired] == [("set", 200)]


def test_metadata_reader_and_no_purge_roles(env):
    writer, _ = client(env)
    name = unique("roles")
    writer.set_secret(name, "hidden")
    reader, _ = client(env, "NEBULA_TEST_AZURE_METADATA_TOKEN")
    assert [v.name for v in reader.list_properties_of_secret_versions(name)] == [name]
    with pytest.raises(HttpResponseError) as forbidden:
        reader.get_secret(name)
    assert forbidden.value.status_code == 403
    assert inner_code(forbidden.value) == "ForbiddenByRbac"
    assert "Microsoft.KeyVault/vaults/secrets/getSecret/action" in forbidden.value.error.message

    officer, _ = client(env, "NEBULA_TEST_AZURE_NOPURGE_TOKEN")
    officer.set_secret(name, "rotated")
    assert officer.get_secret(name).value == "rotated"
    officer.begin_delete_secret(name).wait()
    with pytest.raises(HttpResponseError) as no_purge:
        officer.purge_deleted_secret(name)
    assert no_purge.value.status_code == 403
    assert inner_code(no_purge.value) == "ForbiddenByRbac"
    assert "Microsoft.KeyVault/vaults/secrets/purge/action" in no_purge.value.error.message
    writer.purge_deleted_secret(name)


def test_certificate_backed_secrets_are_managed_and_refuse_writes(env):
    vault = fresh_vault("mg")
    name = unique("tls-cert")
    created = control(env, "POST", f"managed/{name}", {"vault": vault, "value": "MIIC-pfx"})
    assert created["managed"] is True
    kv, _ = client(env, vault=vault)
    secret = kv.get_secret(name)
    assert secret.properties.managed is True
    assert secret.properties.key_id == f"{vault_url(env, vault)}/keys/{name}/{secret.properties.version}"
    assert [s.managed for s in kv.list_properties_of_secrets()] == [True]
    with pytest.raises(HttpResponseError) as refused:
        kv.set_secret(name, "mine")
    assert (refused.value.status_code, inner_code(refused.value)) == (403, "SecretManagedByKeyVault")
    with pytest.raises(HttpResponseError) as refused:
        kv.begin_delete_secret(name)
    assert (refused.value.status_code, inner_code(refused.value)) == (403, "SecretManagedByKeyVault")
