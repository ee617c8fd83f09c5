"""The root of the ``sgr`` command and what its commands share: settings with overrides, a Redis
client, consoles, and one clear line (not a traceback) for a user's error. ``--debug`` shows the
traceback."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    import redis

    from worker.settings import Settings

app = typer.Typer(
    help="SGR Discount Manager: abandoned carts -> safe, audited discount offers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: `sgr --help` loads no rich
)

DataDir = Annotated[
    Path | None, typer.Option(help="Data folder (default: SGR_DATA_DIR or ./data).")
]


# Optional packages and the extra (pyproject.toml) that installs each.
OPTIONAL = {"duckdb": "cold", "fakeredis": "demo", "matplotlib": "bench"}


class UserError(Exception):
    """An error a user can fix; printed as one line, exit status 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """The settings from the environment, with command-line overrides (None = not given)."""
    from worker.settings import load_settings

    updates = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        updates["data_dir"] = data_dir
    return load_settings(**updates)


def redis_client(s: Settings) -> redis.Redis:
    import redis

    return redis.Redis.from_url(s.redis_url, socket_connect_timeout=3, socket_timeout=10)


def out(text: Any) -> None:
    from rich.console import Console

    Console().print(text)


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command with one line on stderr and a non-zero exit status."""
    print(f"sgr: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def describe_error(exc: BaseException) -> str | None:
    """The one line a user sees for an error of theirs or of a service, or None for a bug."""
    from worker.redact import redact_url
    from worker.settings import SettingsError

    if isinstance(exc, UserError | SettingsError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in OPTIONAL:
        package = (exc.name or "").split(".")[0]
        extra = OPTIONAL[package]
        return (
            f"this command needs {package}, which is not installed: "
            f"pip install 'sgr-discount-manager[{extra}]' (or: uv sync --extra {extra})"
        )
    module = type(exc).__module__
    if module.startswith("redis"):
        import redis

        if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
            try:
                from worker.settings import load_settings

                where = redact_url(load_settings().redis_url)
            except Exception:
                where = "SGR_REDIS_URL"
            return f"cannot reach Redis at {where}: {exc} (is redis-server running?)"
        if isinstance(exc, redis.AuthenticationError | redis.ResponseError):
            return f"Redis refused the request: {exc}"
    from stores.base import StoreConfigError, StoreUnavailable

    if isinstance(exc, StoreUnavailable | StoreConfigError | FileNotFoundError | PermissionError):
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> None:
    """The ``sgr`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        args.remove("--debug")
    try:
        code = app(args=args, prog_name="sgr", standalone_mode=False)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        if not callable(getattr(exc, "show", None)):  # not a usage error of click's
            _fail_with(exc, debug)
        _name_the_value(exc, args)
        exc.show()  # type: ignore[attr-defined]
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)


def _name_the_value(exc: Exception, args: list[str]) -> None:
    """Put the value the user gave into a bad option's error ("'abc': not a valid integer")."""
    if not isinstance(exc, typer.BadParameter) or exc.param is None:
        return
    opts = list(getattr(exc.param, "opts", []))
    for n, arg in enumerate(args):
        for opt in opts:
            if arg == opt and n + 1 < len(args) and opt.startswith("-"):
                exc.message = f"{args[n + 1]!r}: {exc.message}"
                return
            if opt.startswith("--") and arg.startswith(opt + "="):
                exc.message = f"{arg[len(opt) + 1 :]!r}: {exc.message}"
                return


def _fail_with(exc: Exception, debug: bool) -> NoReturn:
    """One line for an error a user can act on, a hint for a bug (``--debug``: the traceback)."""
    message = describe_error(exc)
    if debug:
        raise exc
    if message is None:
        message = f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)"
    from worker.redact import redact_text

    print(f"sgr: error: {redact_text(message)}", file=sys.stderr)
    from worker.settings import SettingsError

    sys.exit(exc.code if isinstance(exc, UserError | SettingsError) else 1)
