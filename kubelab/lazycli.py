"""Sub-commands loaded only when they run: `kubelab --help` and `kubelab grade` never import the twins, the
classroom, Vagrant or the doctor (and through them paramiko, matplotlib, the Kubernetes client).

A lazy entry names where the command lives and the help line `kubelab --help` shows for it (a test holds
that line equal to the command's own help). Typer has no lazy sub-commands; this is click's documented
pattern for them (a group whose `get_command` imports on demand), on Typer's own group class."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    target: str       # "module:attribute": a Typer app (a command group) or a command function
    help: str         # what `kubelab --help` shows for it

    def load(self, name: str):
        module, attr = self.target.split(":")
        obj = getattr(importlib.import_module(module), attr)
        # mounted on a throwaway parent exactly as `add_typer`/`command` on the main app would mount it
        parent = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        if isinstance(obj, typer.Typer):
            parent.add_typer(obj, name=name, help=self.help)
        else:
            parent.command(name)(obj)
        parent.command("-")(lambda: None)  # a second command keeps the parent a group
        return typer.main.get_command(parent).commands[name]


class _Stub(TyperCommand):
    """Stands for a lazy command in help listings; loads the real one when it is invoked."""

    def __init__(self, name: str, lazy: Lazy):
        super().__init__(name, help=lazy.help)
        self._lazy = lazy

    def make_context(self, info_name, args, parent=None, **extra):
        real = self._lazy.load(self.name)
        if parent is not None and isinstance(parent.command, LazyGroup):
            parent.command.add_command(real, self.name)  # one import per process
        return real.make_context(info_name, args, parent=parent, **extra)


class LazyGroup(TyperGroup):
    lazy: dict[str, Lazy] = {}

    def list_commands(self, ctx) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.lazy if n not in self.commands)]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name in self.lazy:
            return _Stub(cmd_name, self.lazy[cmd_name])
        return None


def lazy_group(commands: dict[str, Lazy]) -> type[LazyGroup]:
    return type("KubelabGroup", (LazyGroup,), {"lazy": commands})
