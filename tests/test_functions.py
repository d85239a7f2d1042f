"""Function units with tree-sitter: clauses kept together, names/arity, spans, bad code."""

from __future__ import annotations

import pytest

from miners.functions import build_function_pairs, parse_functions
from miners.records import ParseStatus

ELIXIR = '''defmodule Pool.Server do
  use GenServer

  @doc "Checks a connection out."
  @spec checkout(pid, timeout) :: {:ok, term}
  def checkout(pid, timeout \\\\ 5_000) when is_pid(pid) do
    GenServer.call(pid, :checkout, timeout)
  end

  @impl true
  def handle_call(:checkout, from, %{idle: [conn | rest]} = state) do
    {:reply, {:ok, conn}, %{state | idle: rest, busy: [from | state.busy]}}
  end

  @impl true
  def handle_call(:checkout, from, state) do
    {:noreply, %{state | waiting: :queue.in(from, state.waiting)}}
  end

  defp wait_for(ref) do
    receive do
      {^ref, reply} -> reply
    after
      1_000 -> exit(:timeout)
    end
  end

  defmacro with_conn(pool, do: block) do
    quote do
      conn = unquote(pool) |> checkout()
      unquote(block)
    end
  end

  defguard is_conn(term) when is_tuple(term)

  def each(list), do: Enum.each(list, fn x -> send(self(), x) end)

  defmodule State do
    def new, do: %{idle: [], busy: []}
  end
end

defprotocol Pool.Checkable do
  def check(value)
end

defimpl Pool.Checkable, for: Map do
  def check(map), do: map_size(map) > 0
end
'''

ELIXIR_UNITS = [
    ("Pool.Server", "checkout/2", "def", 6, 8),  # @doc/@spec before the head stay outside
    ("Pool.Server", "handle_call/3", "def", 11, 18),  # both clauses, @impl between
    ("Pool.Server", "wait_for/1", "defp", 20, 26),
    ("Pool.Server", "with_conn/2", "defmacro", 28, 33),
    ("Pool.Server", "is_conn/1", "defguard", 35, 35),
    ("Pool.Server", "each/1", "def", 37, 37),
    ("Pool.Server.State", "new/0", "def", 40, 40),
    ("Pool.Checkable", "check/1", "def", 45, 45),
    ("Pool.Checkable.Map", "check/1", "def", 49, 49),
]

ERLANG = '''-module(pool).
-behaviour(gen_server).
-export([checkout/1, handle_call/3]).
-record(state, {idle = [] :: list(), busy = []}).
-define(TIMEOUT, 5000).

-spec checkout(pid()) -> {ok, term()}.
checkout(Pid) ->
    gen_server:call(Pid, checkout, ?TIMEOUT).

handle_call(checkout, From, #state{idle = [Conn | Rest]} = State) ->
    {reply, {ok, Conn}, State#state{idle = Rest}};
handle_call(checkout, From, State) when is_tuple(From) ->
    {noreply, State}.

wait(Ref) ->
    receive
        {Ref, Reply} -> Reply
    after ?TIMEOUT -> exit(timeout)
    end.
'''

ERLANG_UNITS = [
    ("pool", "checkout/1", "function", 8, 9),
    ("pool", "handle_call/3", "function", 11, 14),
    ("pool", "wait/1", "function", 16, 20),
]


def _units(source: str, language: str) -> list[tuple[str, str, str, int, int]]:
    status, functions = parse_functions(source, language)
    assert status == ParseStatus.PARSED
    return [(f.module, f.name, f.kind, f.start_line, f.end_line) for f in functions]


def test_elixir_units() -> None:
    """Heads with guards, defaults, patterns; macros; nested modules; protocols and impls."""
    got = _units(ELIXIR, "elixir")
    for unit in ELIXIR_UNITS:
        assert unit in got
    assert len(got) == len(ELIXIR_UNITS)


def test_erlang_units() -> None:
    """Clauses joined by `;` are one unit; records, -define and -spec are not functions."""
    assert _units(ERLANG, "erlang") == ERLANG_UNITS


def test_exunit_tests_are_units() -> None:
    """test blocks are units named after describe + test, and for-generated defs count."""
    source = '''defmodule PoolTest do
  use ExUnit.Case, async: true

  describe "checkout" do
    test "waits for a free connection", %{pool: pool} do
      assert_receive {:checked_out, _}
    end
  end

  for size <- [1, 2] do
    def size_fun(unquote(size)), do: unquote(size)
  end
end
'''
    got = _units(source, "elixir")
    assert ("PoolTest", 'test "checkout waits for a free connection"', "test", 5, 7) in got
    assert ("PoolTest", "size_fun/1", "def", 11, 11) in got


@pytest.mark.parametrize(("source", "language"), [
    ("defmodule Broken do\n  def f( do\n    :ok\nend\n", "elixir"),
    ("-module(broken).\nf( -> ok.\n", "erlang"),
])
def test_unparseable_code_is_reported_not_raised(source: str, language: str) -> None:
    """Code the grammar cannot parse yields a status and no units, never an exception."""
    status, functions = parse_functions(source, language)
    assert status == ParseStatus.SYNTAX_ERROR and functions == []


def test_partial_parse_keeps_units_before_the_error() -> None:
    """A stray token keeps the units before it; nothing at or after it is trusted."""
    source = ("defmodule M do\n  def good(x), do: x\n\n  def bad(x) do\n    x ++ ]\n  end\n\n"
              "  def later, do: :ok\nend\n")
    status, functions = parse_functions(source, "elixir")
    assert status == ParseStatus.PARTIAL
    assert [f.name for f in functions] == ["good/1"]


def test_missing_end_trusts_nothing_in_its_block() -> None:
    """A missing `end` lets recovery stretch a unit over its neighbours: no unit is kept."""
    source = ("defmodule M do\n  def good(x), do: x\n\n  def bad(x) do\n    x +\n  end\n\n"
              "  def also_good, do: :ok\nend\n")
    assert parse_functions(source, "elixir") == (ParseStatus.SYNTAX_ERROR, [])


def test_function_pairs() -> None:
    """Only changed units are paired: modified, added and removed, with both spans."""
    after = (ELIXIR.replace("{:noreply, %{state | waiting:", "{:noreply, %{state | queue:")
             .replace("  defp wait_for(ref) do", "  defp await(ref) do"))
    status, pairs = build_function_pairs(ELIXIR, after, "elixir")
    assert status == ParseStatus.PARSED
    got = {(p.name, p.change) for p in pairs}
    assert got == {("handle_call/3", "modified"), ("wait_for/1", "removed"),
                   ("await/1", "added")}
    handle = next(p for p in pairs if p.name == "handle_call/3")
    assert handle.before is not None and handle.after is not None
    assert (handle.before.start_line, handle.before.end_line) == (11, 18)
    assert "waiting:" in handle.before.text and "queue:" in handle.after.text


def test_new_file_has_only_added_units() -> None:
    """An added file pairs every unit as added."""
    status, pairs = build_function_pairs(None, ERLANG, "erlang")
    assert status == ParseStatus.PARSED
    assert {(p.name, p.change) for p in pairs} == {
        ("checkout/1", "added"), ("handle_call/3", "added"), ("wait/1", "added")}
