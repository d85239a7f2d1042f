"""Parsing only where a change reaches: the same function pairs as parsing files whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from miners.functions import build_function_pairs
from miners.records import ParseStatus
from miners.windows import Block, changed_blocks, plan_windows
from tests.edits import Edit, apply_edits, edit_lists, git_diff, replace_once, unified

HELPERS = "".join(f'''
  @doc """
  Helper {i}: waits for a reply.

      iex> helper_{i}(self())
      :ok
  """
  def helper_{i}(pid) when is_pid(pid) do
    ref = Process.monitor(pid)
    receive do
      {{:DOWN, ^ref, _, _, reason}} -> {{:down, reason, {i}}}
    after
      {i}_000 -> :ok
    end
  end
''' for i in range(12))

MODULE = f'''Code.require_file("test_helper.exs", __DIR__)

defmodule Pool.Server do
  @moduledoc """
  A pool of connections.

  def not_a_function(x) do
  end
  """
  use GenServer

  @doc "Checks a connection out."
  @spec checkout(pid, timeout) :: {{:ok, term}}
  def checkout(pid, timeout \\\\ 5_000) when is_pid(pid) do
    GenServer.call(pid, :checkout, timeout)
  end

  @impl true
  def handle_call(:checkout, from, %{{idle: [conn | rest]}} = state) do
    {{:reply, {{:ok, conn}}, %{{state | idle: rest, busy: [from | state.busy]}}}}
  end

  @max_waiting 100

  def handle_call(:checkout, from, state) when length(state.waiting) < @max_waiting do
    {{:noreply, %{{state | waiting: :queue.in(from, state.waiting)}}}}
  end
{HELPERS}
  defmodule State do
    def new, do: %{{idle: [], busy: []}}
    def new(opts), do: Map.merge(new(), Map.new(opts))
  end

  for name <- [:idle, :busy] do
    def unquote(name)(state), do: Map.fetch!(state, unquote(name))
  end

  defmacro with_conn(pool, do: block) do
    quote do
      conn = unquote(pool) |> checkout()
      unquote(block)
    end
  end

  describe_me = fn x -> x end
end

defexception Pool.Error, [reason: nil] do
  def message(e), do: inspect(e.reason)
end

defexception Pool.Timeout, [after: nil] do
  def message(_e), do: "timeout"
end

defmodule Pool.Beam do
  def beam, do: :ok
end
|> write_beam()
'''


def _move_to_end(start: str, end: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        i = text.index(start)
        j = text.index(end, i) + len(end)
        rest = text[:i] + text[j:]
        k = rest.index("\n  defmodule State")
        return rest[:k] + text[i:j] + rest[k:]
    return edit


EDITS: dict[str, Callable[[str], str]] = {
    "body of a helper": replace_once("{:down, reason, 5}", "{:down, reason, :five}"),
    "attribute between two clauses": replace_once("  @max_waiting 100\n\n", ""),
    "a clause added far from its siblings": replace_once(
        "  defmodule State do", "  def handle_call(:stop, _from, state) do\n"
        "    {:stop, :normal, :ok, state}\n  end\n\n  defmodule State do"),
    "last helper removed": replace_once(HELPERS[HELPERS.index("\n  @doc", 10):], "\n"),
    "function added at the top": replace_once(
        "  use GenServer\n", "  use GenServer\n\n  def start_link(opts) do\n"
        "    GenServer.start_link(__MODULE__, opts)\n  end\n"),
    "def inside the moduledoc": replace_once("def not_a_function(x)", "def not_a_function(y)"),
    "nested module": replace_once("Map.merge(new(), Map.new(opts))", "Enum.into(opts, new())"),
    "generated functions": replace_once("[:idle, :busy]", "[:idle, :busy, :waiting]"),
    "top-level blocks that share a name": replace_once('do: "timeout"', 'do: "timed out"'),
    "piped module": replace_once("def beam, do: :ok", "def beam, do: :error"),
    "function renamed": replace_once("def helper_7(pid)", "def helper_seven(pid)"),
    "function moved": _move_to_end("  @doc \"\"\"\n  Helper 3:", "{:down, reason, 3}\n"
                                   "    after\n      3_000 -> :ok\n    end\n  end\n"),
    "module opening line": replace_once("defmodule Pool.Server do", "defmodule Pool.Srv do"),
}


def _git_diff(tmp: Path, before: str, after: str) -> str:
    return git_diff(tmp, before, after, ".ex")


@pytest.mark.parametrize("name", list(EDITS))
def test_windowed_pairs_equal_whole_file_pairs(tmp_path: Path, name: str) -> None:
    after = EDITS[name](MODULE)
    diff = _git_diff(tmp_path, MODULE, after)
    whole = build_function_pairs(MODULE, after, "elixir")
    assert whole[0] == ParseStatus.PARSED
    assert build_function_pairs(MODULE, after, "elixir", diff) == whole


def test_a_local_change_parses_a_small_part_of_a_long_module(tmp_path: Path) -> None:
    after = EDITS["body of a helper"](MODULE)
    windows = plan_windows(MODULE.encode(), after.encode(), _git_diff(tmp_path, MODULE, after))
    assert windows is not None
    assert all(w.share < 0.2 for w in windows)
    _, pairs = build_function_pairs(MODULE, after, "elixir", _git_diff(tmp_path, MODULE, after))
    assert [(p.module, p.name, p.change) for p in pairs] == [
        ("Pool.Server", "helper_5/1", "modified")]
    assert pairs[0].before is not None and pairs[0].before.text.startswith("  def helper_5")


def test_clauses_around_a_changed_attribute_are_parsed_too(tmp_path: Path) -> None:
    after = EDITS["attribute between two clauses"](MODULE)
    _, pairs = build_function_pairs(MODULE, after, "elixir", _git_diff(tmp_path, MODULE, after))
    assert [(p.name, p.change) for p in pairs] == [("handle_call/3", "modified")]


def test_a_change_to_the_module_line_parses_the_module_whole(tmp_path: Path) -> None:
    after = EDITS["module opening line"](MODULE)
    assert plan_windows(MODULE.encode(), after.encode(),
                        _git_diff(tmp_path, MODULE, after)) is None


def test_code_not_shaped_as_formatted_elixir_falls_back_to_whole_parse(tmp_path: Path) -> None:
    """Tabs instead of two spaces: the outline finds no items, the answer stays right."""
    before = MODULE.replace("\n  ", "\n\t")
    after = before.replace("{:down, reason, 5}", "{:down, reason, :five}")
    diff = _git_diff(tmp_path, before, after)
    assert build_function_pairs(before, after, "elixir", diff) == \
        build_function_pairs(before, after, "elixir")


def test_an_unindented_line_inside_a_module_falls_back_to_whole_parse(tmp_path: Path) -> None:
    """A definition at column 0 inside a module hides where the module ends: no window."""
    before = MODULE.replace("  def helper_4(pid)", "def helper_4(pid)")
    after = before.replace("{:down, reason, 9}", "{:down, reason, :nine}")
    diff = _git_diff(tmp_path, before, after)
    assert plan_windows(before.encode(), after.encode(), diff) is None
    assert build_function_pairs(before, after, "elixir", diff) == \
        build_function_pairs(before, after, "elixir")


def test_a_diff_that_does_not_fit_the_texts_is_not_used() -> None:
    after = EDITS["body of a helper"](MODULE)
    wrong = "@@ -1,2 +1,3 @@\n a\n+b\n c\n"
    assert plan_windows(MODULE.encode(), after.encode(), wrong) is None
    assert build_function_pairs(MODULE, after, "elixir", wrong) == \
        build_function_pairs(MODULE, after, "elixir")


@pytest.mark.parametrize(("diff", "blocks"), [
    ("@@ -3,4 +3,5 @@ defmodule A do\n a\n-b\n+c\n+d\n e\n f\n", [Block(3, 4, 3, 5)]),
    ("@@ -10,3 +10,6 @@\n a\n b\n+c\n+d\n+e\n f\n", [Block(11, 11, 11, 14)]),
    ("@@ -1,3 +1,2 @@\n-a\n b\n c\n@@ -20,2 +19,2 @@\n x\n-y\n+z\n", [
        Block(0, 1, 0, 0), Block(20, 21, 19, 20)]),
    ("@@ -0,0 +1,2 @@\n+a\n+b\n", [Block(0, 0, 0, 2)]),
    ("@@ -4,2 +4,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n", [Block(4, 5, 4, 5)]),
    ("diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n", [Block(0, 1, 0, 1)]),
])
def test_changed_blocks(diff: str, blocks: list[Block]) -> None:
    assert changed_blocks(diff) == blocks


LINES = MODULE.split("\n")
# Lines that change how the lines around them nest.
TOKENS = ["end", "  end", "  after", "  else", '  """', '"""', "  @doc \"\"\"", "|> foo()",
          "  def message(x), do: x", "def helper_3(x), do: x", "  defmodule Inner do",
          "  describe \"d\" do", "defmodule Other do", "  # note"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edit_lists(len(LINES)))
def test_random_line_edits_give_the_whole_file_answer(edits: list[Edit]) -> None:
    """Deleting, copying and moving runs of lines, and inserting lines that change nesting;
    wherever both versions parse whole, the windowed answer is the same."""
    after = apply_edits(LINES, edits, TOKENS)
    whole = build_function_pairs(MODULE, after, "elixir")
    if whole[0] != ParseStatus.PARSED:
        return  # a broken version: the windowed answer may hold more (see windows.py)
    assert build_function_pairs(MODULE, after, "elixir", unified(MODULE, after)) == whole
