"""`imgpipe purge ID`: one CloudFront invalidation of an image's renditions and /img results, for
the rare operator who cannot wait for the TTLs.

Nothing else ever needs one (docs/aws.md, "At the edge"): a reprocess writes new S3 versions,
whose URLs are new; a delete removes the objects, and CloudFront drops its copies when their
TTL ends. The distribution is the stack's: its `CdnDistributionId` output, or else the one
whose domain (or alias) is its `CdnDomain` output.

CloudFront takes `*` only at the end of an invalidation path. The renditions share the prefix
`/renditions/{imageId}/`; an /img URL ends with its source (`.../plain/{imageId}`, or the id in
base64) after a signature and options, so no prefix names one image's results: `/img/*` is
invalidated whole (one path, billed as one; CloudFront refills it from the derived cache in
S3, without rendering again).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from imgpipe.core.keys import RENDITIONS_PREFIX

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient


class PurgeError(Exception):
    """The stack has no distribution to invalidate."""


def invalidation_paths(image_id: str, *, img: bool = True) -> list[str]:
    """The image's renditions, and every /img result unless `img` is False."""
    paths = [f"/{RENDITIONS_PREFIX}{image_id}/*"]
    return [*paths, "/img/*"] if img else paths


def stack_distribution(cfn: CloudFormationClient, cloudfront: Any, stack: str) -> str:
    """The id of the stack's distribution (PurgeError when it has none: CdnEnabled=false, or
    a stack from before the distribution). `cloudfront` is a boto3 CloudFront client."""
    from imgpipe.ops.change_sets import describe_stack

    found = describe_stack(cfn, stack)
    if found is None:
        raise PurgeError(f"no stack {stack}")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in found.get("Outputs", [])}
    if outputs.get("CdnDistributionId"):
        return outputs["CdnDistributionId"]
    domain = outputs.get("CdnDomain", "").removeprefix("https://").rstrip("/")
    if not domain:
        raise PurgeError(f"stack {stack} has no CloudFront distribution (no CdnDomain output)")
    for page in cloudfront.get_paginator("list_distributions").paginate():
        for summary in page.get("DistributionList", {}).get("Items", []):
            aliases = summary.get("Aliases", {}).get("Items", [])
            if domain == summary["DomainName"] or domain in aliases:
                return str(summary["Id"])
    raise PurgeError(f"no CloudFront distribution serves {domain} (stack {stack}'s CdnDomain)")


def purge(cloudfront: Any, distribution_id: str, image_id: str, *, img: bool = True) -> str:
    """Create the invalidation of `image_id`'s paths; its id (CloudFront works on it for a
    few minutes: `aws cloudfront get-invalidation` tells when it is done)."""
    paths = invalidation_paths(image_id, img=img)
    created = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={
            "Paths": {"Quantity": len(paths), "Items": paths},
            # Each purge is a new request: a repeated reference would return the first one.
            "CallerReference": f"imgpipe-purge-{image_id}-{time.time_ns()}",
        },
    )
    return str(created["Invalidation"]["Id"])
