"""CORE (base_train, base_eval) and ChatCORE (chat_sft) are optional: only their module's own absence
reads as "not installed"; an import error raised inside an installed module propagates."""
import importlib.abc
import importlib.util
import sys
from types import SimpleNamespace

import pytest

from nanochat_core.train.core_hook import find_core_evaluator
from nanochat_core.train.sft_trainer import SFTTrainer

CORE, CHATCORE = "nanochat_core.evaluation.core", "nanochat_core.evaluation.chatcore"


class BrokenModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `name` and runs `source` as its body: an installed module with a bug in its imports."""

    def __init__(self, name: str, source: str):
        self.name, self.source = name, source

    def find_spec(self, fullname, path, target=None):
        return importlib.util.spec_from_loader(fullname, self) if fullname == self.name else None

    def exec_module(self, module):
        exec(self.source, module.__dict__)


def install(monkeypatch, name: str, source: str | None) -> None:
    """Make `name` absent (source None) or broken (its body is `source`) for this test."""
    monkeypatch.delitem(sys.modules, name, raising=False)
    if source is None:
        monkeypatch.setitem(sys.modules, name, None)  # what the import system reads as "no such module"
    else:
        monkeypatch.setattr(sys, "meta_path", [BrokenModule(name, source)] + sys.meta_path)


def find_chatcore():
    return SFTTrainer._find_chatcore(SimpleNamespace(args=SimpleNamespace(chatcore_every=5)))


@pytest.mark.parametrize("find, module", [(find_core_evaluator, CORE), (find_chatcore, CHATCORE)])
def test_installed_module_is_found(find, module):
    assert callable(find())


@pytest.mark.parametrize("find, module", [(find_core_evaluator, CORE), (find_chatcore, CHATCORE)])
def test_absent_module_reads_as_not_installed(monkeypatch, capsys, find, module):
    install(monkeypatch, module, None)
    assert find() is None


@pytest.mark.parametrize("find, module", [(find_core_evaluator, CORE), (find_chatcore, CHATCORE)])
@pytest.mark.parametrize("body, error, text", [
    ("import a_dependency_that_is_not_installed\n", ModuleNotFoundError, "a_dependency_that_is_not_installed"),
    ("from math import no_such_name\n", ImportError, "no_such_name"),
    ("raise RuntimeError('a bug at import time')\n", RuntimeError, "a bug at import time"),
])
def test_error_inside_an_installed_module_propagates(monkeypatch, find, module, body, error, text):
    install(monkeypatch, module, body)
    with pytest.raises(error, match=text):
        find()
