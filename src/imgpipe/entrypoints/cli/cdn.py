"""`imgpipe purge ID`: drop an image's copies from the stack's CloudFront edge caches now, rather
than when their TTLs end (ops.cdn_purge)."""

from __future__ import annotations

from typing import Annotated

import typer

from imgpipe.entrypoints.cli.app import ConfigOpt, err, settings_from


def purge(
    image_id: Annotated[str, typer.Argument(help="the image's id (imageId)")],
    stack: Annotated[str, typer.Option("--stack", help="CloudFormation stack name")],
    region: Annotated[str | None, typer.Option(help="AWS region [default: the SDK's]")] = None,
    img: Annotated[
        bool,
        typer.Option(
            help="also /img/* (every image's /img results: no narrower path names one image's)"
        ),
    ] = True,
    config: ConfigOpt = None,
) -> None:
    """Invalidate an image's renditions (and /img results) on the stack's distribution; print
    the invalidation's id. Never needed for a reprocess or a delete (docs/aws.md)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from imgpipe.bootstrap.aws import client_config
    from imgpipe.core.keys import is_image_id
    from imgpipe.ops.cdn_purge import PurgeError, purge, stack_distribution

    if not is_image_id(image_id):
        err.print(f"[red]{image_id!r} is not an image id[/red]")
        raise typer.Exit(2)
    settings = settings_from(config)
    session = boto3.session.Session(region_name=region or settings.aws.region)
    endpoint, options = settings.aws.endpoint_url, client_config(settings)
    cfn = session.client("cloudformation", endpoint_url=endpoint, config=options)
    cloudfront = session.client("cloudfront", endpoint_url=endpoint, config=options)
    try:
        distribution = stack_distribution(cfn, cloudfront, stack)
        typer.echo(purge(cloudfront, distribution, image_id, img=img))
    except PurgeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except (ClientError, BotoCoreError) as exc:
        err.print(f"[red]purge failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        cfn.close()
        cloudfront.close()
