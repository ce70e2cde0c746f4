"""moto's stage labels against AWS's documented behaviour, with boto3 alone.

moto 5.2.5 and 5.2.6 do not update their record of the current version when
UpdateSecretVersionStage moves AWSCURRENT; a later plain PutSecretValue then moves
AWSCURRENT off that stale version, leaving two versions labelled AWSCURRENT, and
GetSecretValue returns the older one. They also drop a version's other labels when
AWSCURRENT leaves it, and leave a label given to PutSecretValue together with
AWSCURRENT on the version that held it before. Real AWS keeps each label on one version
and moves only the labels named (PutSecretValue and UpdateSecretVersionStage in the
Secrets Manager API reference).

Exit status 0 when moto behaves as AWS does, 1 (with what differs) when it does not.

    python repro_stage_labels.py                        # in process (moto.mock_aws)
    python repro_stage_labels.py --endpoint URL         # against a running moto server
"""

import sys

import boto3

A = "a" * 32
B = "b" * 32
C = "c" * 32
D = "d" * 32


def stages(client, name):
    return {
        version: sorted(labels)
        for version, labels in client.describe_secret(SecretId=name)["VersionIdsToStages"].items()
    }


def check(client, name):
    """The differences from AWS, as sentences (empty when there are none)."""
    problems = []
    client.create_secret(Name=name, SecretString="v1", ClientRequestToken=A)
    # A conditional write: the value under a label of its own, then AWSCURRENT moved to it.
    client.put_secret_value(SecretId=name, SecretString="v2", ClientRequestToken=B, VersionStages=["PENDING"])
    client.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=B, RemoveFromVersionId=A
    )
    # A plain write: AWSCURRENT moves to it, AWSPREVIOUS to the version that held AWSCURRENT.
    client.put_secret_value(SecretId=name, SecretString="v3", ClientRequestToken=C)
    got = stages(client, name)
    current = [v for v, labels in got.items() if "AWSCURRENT" in labels]
    if current != [C]:
        problems.append(f"AWSCURRENT is on {current}, expected only on the last put {C}: {got}")
    if got.get(B) != ["AWSPREVIOUS", "PENDING"]:
        problems.append(f"the version AWSCURRENT left should keep PENDING and get AWSPREVIOUS: {got.get(B)}")
    value = client.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
    if value != "v3":
        problems.append(f"GetSecretValue(AWSCURRENT) returned {value!r}, expected 'v3'")
    # A plain write naming AWSCURRENT and PENDING: PENDING leaves B.
    client.put_secret_value(
        SecretId=name, SecretString="v4", ClientRequestToken=D, VersionStages=["AWSCURRENT", "PENDING"]
    )
    got = stages(client, name)
    holders = [v for v, labels in got.items() if "PENDING" in labels]
    if holders != [D]:
        problems.append(f"PENDING is on {holders}, expected only on {D}: {got}")
    return problems


def main():
    args = sys.argv[1:]
    if args[:1] == ["--endpoint"] and len(args) == 2:
        client = boto3.client(
            "secretsmanager",
            endpoint_url=args[1],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        name = f"nebula-repro/stage-labels-{__import__('uuid').uuid4()}"
        problems = check(client, name)
        client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    elif not args:
        from moto import mock_aws

        with mock_aws():
            problems = check(boto3.client("secretsmanager", region_name="us-east-1"), "repro")
    else:
        sys.exit(__doc__)
    for p in problems:
        print(f"moto differs from AWS: {p}")
    if problems:
        sys.exit(1)
    print("moto keeps stage labels as AWS does")


if __name__ == "__main__":
    main()
