"""`imgpipe package` and `imgpipe deploy`: the Lambda zip, and the stack from the SAM template
(with the new indexes' keys backfilled)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from imgpipe.entrypoints.cli.app import err, settings_from
from imgpipe.entrypoints.cli.maintenance import echo_index_backfill

if TYPE_CHECKING:
    import boto3
    from mypy_boto3_dynamodb import DynamoDBClient

    from imgpipe.ops.deploy import IndexesAdded

PROJECT_DIR = Path(__file__).resolve().parents[4]  # the checkout: src/imgpipe/entrypoints/cli/
DEFAULT_TEMPLATE = PROJECT_DIR / "infra" / "template.yaml"
DEFAULT_ZIP = Path("dist") / "imgpipe-lambda.zip"


def package(
    out: Annotated[Path, typer.Option(help="where to write the zip")] = DEFAULT_ZIP,
    arch: Annotated[str, typer.Option(help="arm64 (the template's) or x86_64")] = "arm64",
    include_sdk: Annotated[
        bool, typer.Option(help="ship boto3 (the Lambda runtime has one)")
    ] = False,
) -> None:
    """Build the Lambda zip for python3.13 (pip --platform, no Docker)."""
    from imgpipe.ops.packaging import PackagingError, build_lambda_zip

    if arch not in ("arm64", "x86_64"):
        err.print(f"[red]--arch must be arm64 or x86_64, not {arch!r}[/red]")
        raise typer.Exit(2)
    try:
        build_lambda_zip(out, arch=arch, include_sdk=include_sdk)  # type: ignore[arg-type]
    except PackagingError as exc:
        err.print(f"[red]packaging failed:[/red] {exc}")
        raise typer.Exit(1) from exc


def deploy(
    stack: Annotated[str, typer.Option("--stack", help="CloudFormation stack name")],
    region: Annotated[str | None, typer.Option(help="AWS region [default: the SDK's]")] = None,
    param: Annotated[
        list[str] | None, typer.Option("--param", help="template parameter KEY=VALUE (repeat)")
    ] = None,
    template: Annotated[Path, typer.Option(help="the SAM template")] = DEFAULT_TEMPLATE,
    zip_path: Annotated[
        Path | None, typer.Option("--zip", help="a zip from `imgpipe package` [default: build]")
    ] = None,
    wait: Annotated[bool, typer.Option(help="wait for the stack to finish")] = True,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="TOML config file whose renditions the functions get"),
    ] = None,
    cdn: Annotated[bool | None, typer.Option(help="CloudFront in front (CdnEnabled)")] = None,
    cdn_privacy: Annotated[str | None, typer.Option(help="public or signed")] = None,
    cdn_public_key: Annotated[Path | None, typer.Option(help="signed: public key PEM")] = None,
    cdn_private_key_secret: Annotated[
        str | None, typer.Option(help="signed: SSM SecureString name of the private key")
    ] = None,
    cdn_domain: Annotated[str | None, typer.Option(help="custom domain of the CDN")] = None,
    cdn_certificate_arn: Annotated[str | None, typer.Option(help="its ACM cert")] = None,
    cdn_price_class: Annotated[str | None, typer.Option(help="PriceClass_100|200|All")] = None,
) -> None:
    """Package the Lambda code and deploy the template; print the stack's outputs. The --cdn
    options set the template's Cdn* parameters (docs/aws.md, CDN); unset, a stack keeps its."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from imgpipe.ops.deploy import DeployError
    from imgpipe.ops.index_steps import IndexStepError
    from imgpipe.ops.packaging import PackagingError

    params = _parse_params(param or [])
    params.update(
        _cdn_params(
            cdn,
            cdn_privacy,
            cdn_public_key,
            cdn_private_key_secret,
            (cdn_domain, cdn_certificate_arn),
            cdn_price_class,
        )
    )
    if config is not None:
        _add_presets(params, config)
    if not template.is_file():
        err.print(f"[red]no template at {template}[/red] (pass --template)")
        raise typer.Exit(2)
    session = boto3.session.Session(region_name=region)
    if session.region_name is None:
        err.print("[red]no region: pass --region or set AWS_REGION[/red]")
        raise typer.Exit(2)
    try:
        outputs = _deploy_stack(session, stack, params, template, zip_path, wait=wait)
    except (PackagingError, DeployError, IndexStepError, ClientError, BotoCoreError) as exc:
        err.print(f"[red]deploy failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    _print_outputs(stack, session.region_name, outputs)


def _parse_params(pairs: list[str]) -> dict[str, str]:
    """--param's KEY=VALUE pairs (exit code 2 at one that is not)."""
    params: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            err.print(f"[red]--param wants KEY=VALUE, not {pair!r}[/red]")
            raise typer.Exit(2)
        params[name] = value
    return params


def _cdn_params(
    enabled: bool | None,
    privacy: str | None,
    public_key: Path | None,
    private_key_secret: str | None,
    domain_and_certificate: tuple[str | None, str | None],
    price_class: str | None,
) -> dict[str, str]:
    """The Cdn* template parameters the --cdn options give (exit code 2 at a bad one). The
    private key never travels: a key file that is not a public key is refused."""
    params: dict[str, str] = {}
    if enabled is not None:
        params["CdnEnabled"] = "true" if enabled else "false"
    if privacy is not None:
        if privacy not in ("public", "signed"):
            _usage(f"--cdn-privacy is public or signed, not {privacy!r}")
        params["CdnPrivacy"] = privacy
    if public_key is not None:
        params["CdnPublicKeyPem"] = _public_key_pem(public_key)
    if private_key_secret is not None:
        params["CdnPrivateKeySecretName"] = private_key_secret
    domain, certificate = domain_and_certificate
    if (domain is None) != (certificate is None):
        _usage("--cdn-domain and --cdn-certificate-arn go together")
    if domain is not None and certificate is not None:
        params["CdnDomainName"], params["CdnCertificateArn"] = domain, certificate
    if price_class is not None:
        params["CdnPriceClass"] = price_class
    return params


def _public_key_pem(path: Path) -> str:
    try:
        pem = path.read_text(encoding="ascii").strip() + "\n"
    except (OSError, UnicodeDecodeError) as exc:
        _usage(f"--cdn-public-key: cannot read {path}: {exc}")
    if "PRIVATE KEY" in pem:
        _usage(
            f"{path} is a private key: put it in an SSM SecureString (--cdn-private-key-secret)"
            " and pass its public half (openssl rsa -pubout)"
        )
    if not pem.startswith("-----BEGIN PUBLIC KEY-----"):
        _usage(f"{path} is not a PEM public key (-----BEGIN PUBLIC KEY-----)")
    return pem


def _usage(message: str) -> NoReturn:
    err.print(f"[red]{escape(message)}[/red]")
    raise typer.Exit(2)


def _add_presets(params: dict[str, str], config: Path) -> None:
    """The presets travel as the RenditionsJson parameter (IMGPIPE_RENDITIONS); a later deploy
    without --config keeps them (deploy reuses the previous parameter values)."""
    from imgpipe.config import Settings

    presets = settings_from(config, backend="local")
    params.setdefault("RenditionsJson", presets.renditions_json())
    default_background = Settings.model_fields["background"].default
    if presets.background != default_background or not presets.metadata.strip_exif:
        err.print(
            "[yellow]only the renditions are deployed:[/yellow] background and"
            " metadata.strip_exif from the file are not (the functions use the defaults)"
        )


def _deploy_stack(
    session: boto3.session.Session,
    stack: str,
    params: dict[str, str],
    template: Path,
    zip_path: Path | None,
    *,
    wait: bool,
) -> dict[str, str]:
    """Build the zip unless one is given, then deploy it with the template; the stack's
    outputs."""
    from imgpipe.ops.deploy import deploy_stack
    from imgpipe.ops.packaging import build_lambda_zip

    if zip_path is None:
        zip_path = build_lambda_zip(DEFAULT_ZIP)
    cfn = session.client("cloudformation")
    s3 = session.client("s3")
    sts = session.client("sts")
    dynamodb = session.client("dynamodb")
    return deploy_stack(
        stack,
        region=session.region_name,
        params=params,
        template=template,
        zip_path=zip_path,
        cfn_client=cfn,
        s3_client=s3,
        sts_client=sts,
        dynamodb_client=dynamodb,
        on_indexes_added=_backfill_added_indexes(dynamodb),
        wait=wait,
    )


def _print_outputs(stack: str, region: str, outputs: dict[str, str]) -> None:
    """The stack, its region, then one line per output, never wrapped (a long URL stays whole)."""
    console = Console(soft_wrap=True)
    console.print(f"[green]stack {escape(stack)} deployed[/green] in {region}")
    if not outputs:
        console.print("(no outputs yet)")
    for name, value in sorted(outputs.items()):
        console.print(f"{name}: {escape(value)}")


def _backfill_added_indexes(dynamodb: DynamoDBClient) -> IndexesAdded:
    """What deploy calls for a table that gained indexes: records written before lack their
    keys, so a records table's are backfilled now (exit code 1 when that stops)."""

    def indexes_added(table: str, indexes: tuple[str, ...]) -> None:
        from imgpipe.bootstrap import aws_index_backfill
        from imgpipe.core.errors import ImgpipeError

        records = aws_index_backfill(dynamodb, table, indexes)
        if records is None:
            return
        typer.echo(f"{table}: indexes {', '.join(indexes)} added; backfilling their keys")
        try:
            echo_index_backfill(records)
        except ImgpipeError as exc:
            err.print(
                f"[red]the stack is deployed, but the backfill stopped:[/red] {exc}; "
                "run `imgpipe backfill --index-keys` (with --from, as printed above)"
            )
            raise typer.Exit(1) from exc

    return indexes_added
