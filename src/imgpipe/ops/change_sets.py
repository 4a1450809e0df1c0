"""One stack update through a CloudFormation change set: create it, wait for it (CloudFormation's
"no changes" deletes it), execute it, wait for the stack, or raise with the failed events."""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from imgpipe.ops.deploy_artifacts import DeployError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_cloudformation.literals import CapabilityType, ChangeSetTypeType
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, StackTypeDef
    from mypy_boto3_dynamodb.client import DynamoDBClient

log = logging.getLogger(__name__)

CAPABILITIES: list[CapabilityType] = [
    "CAPABILITY_IAM",
    "CAPABILITY_NAMED_IAM",
    "CAPABILITY_AUTO_EXPAND",
]
DEPLOYED = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE"})
NO_CHANGES = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class StackUpdates:
    """One deploy's stack updates: a change set each, executed and waited for."""

    cfn_client: CloudFormationClient
    dynamodb_client: DynamoDBClient | None
    stack: str
    poll_s: float
    timeout_s: float

    def dynamodb(self) -> DynamoDBClient:
        if self.dynamodb_client is None:
            raise ValueError(
                "pass dynamodb_client: the template has DynamoDB tables, and CloudFormation "
                "adds or removes one index of a table per update"
            )
        return self.dynamodb_client

    def change(
        self,
        template_url: str,
        parameters: list[ParameterTypeDef],
        change_type: ChangeSetTypeType,
        description: str,
        *,
        wait: bool,
    ) -> dict[str, str]:
        """Create, execute and (with `wait`) wait for one change set; the stack's outputs."""
        cfn, stack = self.cfn_client, self.stack
        name = f"imgpipe-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
        log.info("creating change set %s (%s) for stack %s", name, change_type, stack)
        change_set_id = cfn.create_change_set(
            StackName=stack,
            ChangeSetName=name,
            ChangeSetType=change_type,
            TemplateURL=template_url,
            Parameters=parameters,
            Capabilities=CAPABILITIES,
            Description=description,
        )["Id"]
        if not _wait_for_change_set(cfn, change_set_id, stack, self.poll_s, self.timeout_s):
            log.info("stack %s is up to date", stack)
            cfn.delete_change_set(ChangeSetName=change_set_id, StackName=stack)
            return _outputs(describe_stack(cfn, stack))
        started = time.time()
        cfn.execute_change_set(ChangeSetName=change_set_id, StackName=stack)
        if not wait:
            return _outputs(describe_stack(cfn, stack))
        final = _wait_for_stack(cfn, stack, self.poll_s, self.timeout_s)
        if final["StackStatus"] not in DEPLOYED:
            raise DeployError(
                f"stack {stack} ended {final['StackStatus']}:\n" + _failures(cfn, stack, started)
            )
        return _outputs(final)


def describe_stack(cfn_client: CloudFormationClient, stack: str) -> StackTypeDef | None:
    try:
        stacks = cfn_client.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" in str(exc.response.get("Error", {}).get("Message", "")):
            return None
        raise
    return stacks[0] if stacks else None


def _outputs(stack: StackTypeDef | None) -> dict[str, str]:
    if stack is None:
        return {}
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _wait_for_change_set(
    cfn_client: CloudFormationClient,
    change_set_id: str,
    stack: str,
    poll_s: float,
    timeout_s: float,
) -> bool:
    """True when the change set is ready to execute; False when CloudFormation found no change.

    A ready change set may list no resource change and still matter (new outputs), so only
    CloudFormation's own "no changes" failure counts as nothing to do."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = cfn_client.describe_change_set(ChangeSetName=change_set_id, StackName=stack)
        status = found["Status"]
        if status == "CREATE_COMPLETE":
            return True
        if status == "FAILED":
            reason = found.get("StatusReason", "")
            if any(text in reason for text in NO_CHANGES):
                return False
            raise DeployError(f"change set for {stack} failed: {reason}")
        if time.monotonic() > deadline:
            raise DeployError(f"change set for {stack} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def _wait_for_stack(
    cfn_client: CloudFormationClient, stack: str, poll_s: float, timeout_s: float
) -> StackTypeDef:
    deadline = time.monotonic() + timeout_s
    last = ""
    while True:
        found = describe_stack(cfn_client, stack)
        if found is None:
            raise DeployError(f"stack {stack} disappeared")
        status = found["StackStatus"]
        if status != last:
            log.info("stack %s: %s", stack, status)
            last = status
        if not status.endswith("_IN_PROGRESS"):
            return found
        if time.monotonic() > deadline:
            raise DeployError(f"stack {stack} still {status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def _failures(cfn_client: CloudFormationClient, stack: str, since: float) -> str:
    """The failed resource events of this deployment, oldest first."""
    lines: list[str] = []
    for event in cfn_client.describe_stack_events(StackName=stack).get("StackEvents", []):
        if event["Timestamp"].timestamp() < since - 60:
            break
        if event.get("ResourceStatus", "").endswith("_FAILED"):
            lines.append(
                f"  {event.get('LogicalResourceId')} {event.get('ResourceStatus')}: "
                f"{event.get('ResourceStatusReason', '')}"
            )
    return "\n".join(reversed(lines)) or "  (no failed resource events)"
