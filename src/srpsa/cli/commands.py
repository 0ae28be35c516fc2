"""Registry of subcommands, in pipeline order. Add a new command module here."""

from __future__ import annotations

import importlib

import typer

# (command name, module under srpsa.cli). A module exposes `command` (a function) or `app` (a group);
# "module:function" names one of several command functions of a module.
COMMANDS: list[tuple[str, str]] = [
    ("synth", "synth"),
    ("register", "register"),
    ("prepare", "prepare"),
    ("translate", "enhance:translate_command"),
    ("super-resolve", "enhance:super_resolve_command"),
    ("enhance", "enhance:enhance_command"),
    ("analyze", "analyze"),
    ("evaluate", "evaluate"),
    ("report", "report"),
    ("review", "review"),
    ("train", "train"),
    ("finetune", "finetune"),
]


def register(app: typer.Typer, only: str | None = None) -> None:
    """Add the commands (or just ``only``) to ``app``."""
    for name, spec in COMMANDS:
        if only is not None and name != only:
            continue
        module_name, _, attr = spec.partition(":")
        module = importlib.import_module(f"srpsa.cli.{module_name}")
        if attr:
            app.command(name)(getattr(module, attr))
        elif hasattr(module, "app"):
            app.add_typer(module.app, name=name)
        else:
            app.command(name)(module.command)
