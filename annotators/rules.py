"""The heuristic annotator's rules, as data: message cues and BEAM-specific diff signals."""

from __future__ import annotations

import re
from dataclasses import dataclass

from annotators.schema import BugType

B = BugType


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_ESCAPE_OR_TEXT = re.compile(r"\\.|[^\\]+", re.DOTALL)


def _code(pattern: str) -> re.Pattern[str]:
    """A diff rule's pattern, to be matched against code lowered with str.lower(): that is
    case-insensitive, and several times faster than Python's case-insensitive matching,
    which cannot skip ahead to a literal. Escapes keep their case (`\\S` is not `\\s`)."""
    return re.compile(_ESCAPE_OR_TEXT.sub(
        lambda m: m.group(0) if m.group(0).startswith("\\") else m.group(0).lower(), pattern))


@dataclass(frozen=True)
class MessageCue:
    """A phrase in the commit message that names a kind of concurrency bug."""

    name: str
    bug_type: BugType
    regex: re.Pattern[str]
    weight: float  # how sure the phrase alone makes us (0..1)


@dataclass(frozen=True)
class DiffRule:
    """A code change that is the fingerprint of a concurrency fix.

    The rule fires on a file when `added` occurs in its added lines and `removed` (if any) in
    its removed lines, and one of them is new or gone in some changed function (or in the
    rest of the change): it occurs more often on its own side there. A construct moved,
    re-wrapped or re-qualified (`monitor(` to `erlang:monitor(`) inside one function changes
    nothing. A rule whose two patterns are one object is about a construct changed in place
    (a timeout's value): some spelling of it must be on one side only.
    `test_only` rules fire on test files only; `needs`, when set, must occur in the file's
    after version. The patterns match lowered text (see _code).
    """

    name: str
    bug_type: BugType
    added: re.Pattern[str] | None
    removed: re.Pattern[str] | None
    weight: float
    fix_summary: str
    events: tuple[str, ...]
    why: str
    test_only: bool = False
    # what the file must hold after the change for it to mean what the rule says (a
    # `{:continue, state}` is a GenServer continue only in a module with handle_continue)
    needs: re.Pattern[str] | None = None


# What processes exchange, whose order a reordering is about.
_EXCHANGED = (r"messages?|events?|repl(?:y|ies)|requests?|packets?|frames?|stanzas?|"
              r"deliver\w*|casts?|calls?|signals?|acks?")

# What a test run or processes do, beside which "non-deterministic" is a flaky outcome.
_RUNS = (r"(?:tests?|specs?|suites?|CI|fail\w*|errors?|async\w*|parallel\w*|concurren\w*|"
         r"simultaneous\w*|process\w*|interleav\w*|rac(?:e|es|y|ing))")

MESSAGE_CUES: tuple[MessageCue, ...] = (
    MessageCue("race", B.RACE_CONDITION,
               # (a TOCTOU, time-of-check to time-of-use, is a race by its other name)
               _re(r"\b(?:data[ -])?rac(?:e|es|ed|y|ing|iness)\b(?:[ -]?conditions?)?|"
                   r"\btoctou\b|\btime[ -]of[ -]check\b"), 0.9),
    MessageCue("deadlock", B.DEADLOCK, _re(r"\bdead[ -]?lock(?:s|ed|ing)?\b|"
                                          r"\bmutual(?:ly)?\s+block\w*|"
                                          r"\b(?:block|wait)\w*\s+(?:on\s+|for\s+)?each\s+other\b"),
               0.9),
    MessageCue("livelock", B.LIVELOCK, _re(r"\blive[ -]?lock(?:s|ed|ing)?\b"), 0.9),
    MessageCue("mailbox", B.MAILBOX_OVERFLOW,
               _re(r"\b(?:mailbox|message[ _]queue(?:_len)?)\b.{0,40}\b(?:grow\w*|overflow\w*|"
                   r"full|flood\w*|pil\w+ up|unbounded|build\w* up|back ?pressure|scan\w*|"
                   r"storms?|too (?:big|large|long)|huge)\b|"
                   r"\b(?:grow\w*|overflow\w*|flood\w*|unbounded)\b.{0,30}\b(?:mailbox|message "
                   r"queue)|\b(?:giant|huge|large|big)\s+(?:mailbox|message queue)"),
               0.85),
    # (not a tool that looks for leaks: "Reducing delay to 5 minutes for leak monitor")
    MessageCue("leak", B.RESOURCE_LEAK,
               _re(r"\b(?:leak(?!\s+(?:monitor|detector|detection|checker|check|tracker|"
                   r"tracking|hunter|finder)s?\b)\w*|orphan\w*|zombie\w*|dangling)\b.{0,40}\b"
                   r"(?:process\w*|pids?|"
                   r"monitors?|links?|timers?|ports?|sockets?|connections?|tasks?|messages?|"
                   r"ets|tables?|refs?|references?|children|workers?|listeners?|clients?|sessions?|"
                   r"consumers?|subscri\w+)\b|"
                   r"\b(?:process\w*|pids?|monitors?|links?|timers?|ports?|sockets?|connections?|"
                   r"tasks?|messages?|children|workers?|clients?|sessions?|consumers?)\b"
                   r"[^.;\n]{0,80}\b(?:leak\w*|orphan\w*)"), 0.8),
    # Messages left behind in a mailbox are about delivery, not a leaked resource.
    MessageCue("stray_exit_messages", B.EXIT_SIGNAL,
               _re(r"\b(?:leak\w*|stray|late|spurious|unexpected|left ?over)\s+(?:EXIT|DOWN)"
                   r"\s+(?:messages?|signals?)|\b(?:EXIT|DOWN) messages? leak\w*"), 0.85),
    MessageCue("stray_messages", B.MESSAGE_ORDERING,
               _re(r"\bmessage leak\w*|\bleak\w* (?:\w+ )?(?:messages|replies)\b|"
                   r"\b(?:stray|late|spurious|left ?over) (?:\w+ )?(?:messages?|repl(?:y|ies))\b"),
               0.82),
    # Order of what processes exchange, not of arguments, fields or a list on a page.
    MessageCue("ordering", B.MESSAGE_ORDERING,
               _re(r"\b(?:out[ -]of[ -]order(?![ -](?:arguments?|args|param\w*|fields?|keys?|"
                   r"elements?|options?|clauses?|functions?|columns?|imports?|items?))|"
                   r"message order\w*|ordering of (?:messages|events)|arriv\w+ (?:before|after))\b|"
                   # (a message that waits its turn: "the EXIT message would come in behind
                   # the checkout messages")
                   r"\b(?:arriv\w*|com(?:e|es|ing) in|queued?|land\w*|sits?|sitting|stuck|"
                   r"delivered|processed)\s+(?:\w+\s+)?behind\s+(?:\w+\s+){0,2}?(?:messages?|"
                   r"requests?|calls?|casts?)\b|"
                   # (not lines a log shows: "Reorder log messages")
                   r"(?<!\blog )(?<!\blogged )(?<!\bdebug )(?<!\berror )(?<!\bwarning )"
                   r"\b(?:" + _EXCHANGED + r")\b.{0,20}\breorder\w*|"
                   r"\breorder\w*\b(?:(?!\b(?:log|logs|logged|logging|debug|error|warning|info)"
                   r"\b).){0,20}\b(?:" + _EXCHANGED + r")\b"), 0.7),
    MessageCue("exit_signal", B.EXIT_SIGNAL,
               _re(r"\b(?:trap_exit|trap(?:s|ped|ping)? exits?|exit signals?|EXIT messages?|:EXIT|"
                   r"catch(?:es|ing)? (?:\w+ ){0,2}exits|"
                   # (not a phrasal verb: "slowed down message progress")
                   r"'EXIT'|(?<!slow )(?<!slowed )(?<!slows )(?<!slowing )(?<!shut )"
                   r"(?<!shutting )DOWN messages?|linked process\w* (?:crash|exit|die)\w*)\b"),
               0.75),
    # Making a call synchronous (or a blocking one not block) orders what was racing; alone
    # the word also names designs, so it is weak and needs a production diff signal.
    MessageCue("synchronous", B.RACE_CONDITION,
               _re(r"\b(?:synchronous(?:ly)?|non-?blocking)\b"), 0.45),
    MessageCue("hang", B.DEADLOCK,
               # (not what a function returns: "never returns nil", "never returns an ok tuple";
               # nor a client that "hangs up"; nor the idiom "we're stuck with it")
               _re(r"(?<!low[ -])\b(?:(?:hangs?|hanging|hung)(?!\s+up\b)|"
                   r"stuck(?!\s+with\s+(?:it|this|that|them|these|those)\b)|"
                   r"block(?:s|ed)? forever|never returns?"
                   r"(?!\s+(?:an?|any|nil|null|none|undefined|true|false|ok|error)\b|"
                   r"\s*[{\[:`'\"])|"
                   r"wait\w* forever|(?:block|hang)\w* (?:\w+ ){0,3}indefinitely|"
                   # ("Fixed fullsync lockup if status called during sync", "to avoid infinite
                   # blocking")
                   r"lock(?:s|ed)?[ -]?ups?|infinite(?:ly)? block\w*)\b"
                   r"(?![ -]fruit)"), 0.6),
    MessageCue("flaky", B.RACE_CONDITION,
               # (not a Nix flake: "fix up flake packaging", "update flake.lock")
               _re(r"(?<!nix )\b(?:(?:(?:de|un)-?)?flak(?:e(?!\.(?:nix|lock)|[ -](?:packag\w*|"
                   r"inputs?|outputs?|lock\w*|update\w*|check\w*|build\w*)\b)|y|ey|iness|yness|"
                   r"es|ily)|"
                   r"intermittent(?:ly)?|sporadic\w*|randomly fail\w*|"
                   # (nondeterminism of tests or of processes, not of a value, an order or a
                   # build: "non-deterministic hostname resolution", "number of events")
                   r"non-?determinis\w*(?=[^.;\n]{0,30}\b" + _RUNS + r")|"
                   r"\b" + _RUNS + r"\b[^.;\n]{0,60}\bnon-?determinis\w*|"
                   r"timing[ -](?:issues?|problems?|bugs?|errors?|failures?|fix(?:es)?|"
                   r"sensitiv\w*|dependen\w*))\b"), 0.7),
    # Not SQL's sense: PostgreSQL builds, drops and refreshes indexes and views CONCURRENTLY
    # (`create index(..., concurrently: true)` in an Ecto migration); nor a quoted `name`,
    # nor the read or write concurrency an ETS table is tuned for.
    MessageCue("concurrency", B.RACE_CONDITION,
               _re(r"(?<!`)(?<!index )(?<!indexes )(?<!indices )(?<!view )"
                   # (not a load: "max concurrent users", "384 concurrent requests")
                   r"\b(?:(?<!max )(?<!maximum )(?<!\d )"
                   r"concurrent(?:ly\b(?!`|:| (?:create|drop|refresh|reindex)))?|"
                   r"(?<!max )(?<!maximum )(?<!max_)(?<!default )(?<!min )(?<!read )"
                   # (nor a load, or one tuned: "under high concurrency", "reduce concurrency")
                   r"(?<!write )(?<!high )(?<!heavy )(?<!more )(?<!less )(?<!reduce )"
                   r"(?<!lower )(?<!limit )concurrency"
                   r"(?![ _-](?:level|limit|option|setting|factor|param\w*|to \d))|"
                   # (not "synchronize": far more often a sync of data, versions, nodes'
                   # state or clocks than processes coordinated; what lacked it is a race)
                   r"unsynchroni[sz]ed|"
                   r"at the same time|simultaneous\w*)\b|"
                   # a check that went stale: "it may be dead by the time we inspect it"
                   r"\b(?:dead|gone|exited|stopped|terminated)\s+by\s+the\s+time\b|"
                   # parallel work as the cause, not as a feature ("run checks in parallel"):
                   # undone ("do not start modules in parallel"), colliding, or said to fail
                   r"\b(?:avoid\w*|do(?:es)?\s+not|don't|never|instead\s+of|no\s+longer|"
                   r"prevent\w*)\s+(?:\w+\s+){0,4}?(?:in\s+parallel|parallel\s+(?:execution|"
                   r"runs?|starts?))\b|"
                   r"\bin\s+parallel\b(?=[^.\n]{0,80}\b(?:(?:could|might|may|would)\s+"
                   r"(?:\w+\s+)?(?:happen|lead|cause|result|crash|fail)\w*|results?\s+in|"
                   r"collid\w*|collisions?|clash\w*|step\s+on)\b)|"
                   r"\b(?:collisions?|clash\w*|conflicts?)\s+(?:\w+\s+){0,2}(?:across|between|"
                   r"among)\s+(?:\w+\s+){0,2}parallel\b|"
                   # atomic about shared state only: in Ash or Ecto an "atomic update" or
                   # "atomic validation" is a kind of query, not a cure for a race
                   r"\b(?:ets|tables?|counters?|registr\w*|sessions?)\b.{0,30}\b(?:non-?)?"
                   r"atomic(?:ally)?\b|\b(?:non-?)?atomic(?:ally)?\b.{0,30}\b(?:ets|tables?|"
                   r"counters?|registr\w*|sessions?)\b|"
                   # ... or said of what the old code did: "this sequence is not atomic"
                   r"\b(?:is|are|was|were|it's)\s+(?:also\s+|still\s+)?not\s+atomic\b|"
                   r"\b(?:isn't|aren't|wasn't|weren't)\s+atomic\b"),
               0.6),
    # A test that only passes once it waits longer is racing the work it waits for.
    MessageCue("test_timing", B.RACE_CONDITION,
               _re(r"\b(?:time[ -]?outs?|wait\w*|sleep\w*|delay\w*)\b.{0,40}"
                   r"\b(?:get|make)s?\s+(?:the |this |these |that )?tests?\s+(?:to )?pass"), 0.6),
    # A subject that orders two processes' steps ("Wait for the replica before consuming",
    # "queue_SUITE: wait for the connection to bootstrap before shutdown") fixes a race
    # between them; in a body the words describe a design.
    # (or makes sure one process is gone or ready before the next step: "Ensure current
    # task terminates before shutting down serving")
    MessageCue("wait_before", B.RACE_CONDITION,
               _re(r"\A\s*(?:[\w./-]+(?:\([\w./-]+\))?:\s*)?(?:(?:make sure (?:to |we )?)?"
                   r"wait(?:s|ing)?\s+(?:for|until)\b|(?:ensure|make sure)\b[^.\n]{0,60}?\b"
                   r"(?:terminat\w*|stop(?:s|ped)?|exit(?:s|ed)?|die[sd]?|shut\w* down|"
                   r"(?:is|are|has|have been) (?:started|ready|registered|running|alive|dead|"
                   r"down|gone|stopped|terminated))\b)[^.\n]{0,60}?\bbefore\b|"
                   # ... or makes a test wait for what another process does ("test(bridge):
                   # wait for all cluster nodes to resubscribe", "Wait for subscription to
                   # receive DOWN notification in unit test")
                   r"\A\s*(?:test\w*(?:\([^)\n]*\))?:\s*|[\w./-]*(?:_SUITE|_tests?|Test)\w*:\s*)"
                   r"(?:make sure (?:to |we )?)?wait(?:s|ing)?\s+(?:for|until)\b|"
                   r"\A\s*(?:make sure (?:to |we )?)?wait(?:s|ing)?\s+(?:for|until)\b[^\n]*"
                   r"\b(?:tests?|suites?|specs?)\b"), 0.6),
    # A subject about a process found dead (noproc) or already started: another process's
    # life ran concurrently with the code that assumed it ("catch noproc instead of doing
    # alive check", "handle already_started errors").
    MessageCue("process_lifecycle", B.RACE_CONDITION,
               _re(r"\A[^\n]*\b(?:noproc|already[_ ]started|not[_ ]alive|alive[ -]checks?|"
                   r"is_process_alive|process\.alive\?)"), 0.6),
    # Shutdown is an exit reason: a problem with it is about how processes stop.
    MessageCue("shutdown", B.EXIT_SIGNAL,
               _re(r"\b(?:problems?|bugs?|issues?)\b.{0,30}\b(?:graceful(?:ly)?\s+)?"
                   r"shut(?:s|ting)?[ -]?down\b|\bshut(?:s|ting)?[ -]?down\s+(?:bugs?|problems?|"
                   r"issues?|exits?|signals?|races?|order\w*)\b|\bshut(?:s|ting)?[ -]?down\b"
                   r".{0,40}\b(?:races?|hangs?|hanging|stuck|crash\w*|deadlock\w*)\b|"
                   r"\b(?:crash\w*|hangs?|hanging|stuck|races?|deadlock\w*)\s+(?:on|during|at|in)"
                   r"\s+(?:the\s+)?shut(?:ting)?[ -]?down\b"), 0.6),
    # What a process left behind when it, or its owner, stopped ("kill the connection if the
    # caller dies").
    MessageCue("cleanup_on_exit", B.RESOURCE_LEAK,
               _re(r"\b(?:clean(?:s|ed|ing)?(?:[ -]?up)?|(?:remov|delet|purg)\w* stale|"
                   r"(?:kill|close|release|stop|terminate)(?:s|ing)?|shut(?:s|ting)? down|"
                   r"exit(?:s|ing)?(?!\s+(?:codes?|status\w*|values?|reasons?)\b))\b.{0,50}"
                   r"\b(?:after|on|when|if)\s+"
                   r"(?:(?:a |the )?(?:normal |abnormal )?(?:shutdown|exit\w*|termination|"
                   r"crash\w*)|"
                   r"(?:the |a |its )?(?:\w+ ){1,2}(?:dies|died|exits?|goes away|stops|"
                   r"terminates|shuts?[ -]?down)|"
                   r"(?:\w+ ){0,2}(?:of )?(?:a |the )?(?-i:DOWN|'DOWN'|:DOWN))"
                   r"(?![\w'])"),
               0.6),
    # A process that blocks (not a design made "non-blocking", which is a choice).
    MessageCue("blocking", B.DEADLOCK,
               _re(r"\b(?:avoid|prevent|stop|fix)\w*\s+(?:\w+\s+){0,2}blocking\s+(?:during|"
                   r"while|when|on|in|until|the|its|calls?|callers?|process\w*|forever)\b|"
                   r"\bblock(?:s|ed|ing)?\s+(?:the\s+)?(?:caller|calling process|gen_?server|"
                   r"supervisor|event loop|mailbox)s?\b"), 0.6),
    MessageCue("timeout", B.TIMEOUT,
               _re(r"\b(?:time[ -]?outs?|timed[ -]out|tim(?:es|ing) out)\b"), 0.45),
    # Links tie processes' lifetimes together; on its own the word is weak (a "link" may be
    # a URL), so it needs a production diff signal.
    MessageCue("links", B.EXIT_SIGNAL, _re(r"\b(?:spawn_link|(?:un)?link(?:s|ed|ing)?)\b"), 0.45),
)

# Phrases that say the keyword is not a concurrency bug being fixed. They are read in the
# subject, which states what a commit is for; bodies mention races in passing.
NEGATIVE_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("docs_only", _re(r"^\s*(?:\[?docs?\]?[:(]|docs?\b|documentation\b|(?:update|improve|clarify|"
                      r"fix|add)\s+(?:the\s+)?(?:docs?|documentation|typos?|readme|changelog|"
                      r"examples?|comments?)\b|typo\b)")),
    # A first commit or import brings whole subsystems, races named in passing included.
    ("initial_import", _re(r"^\s*(?:initial|first) (?:commit|import|version|implementation)\b")),
    # A release's changelog lists the fixes it ships ("chore: publish new package versions",
    # a Changesets pull request; "Version Packages"; "chore(main): release 2.1.0").
    # (not the verb that frees something: "Release structs before asserting deadlock")
    ("release", _re(r"^\s*(?:release(?!\s+(?:\S+\s+){1,5}(?:when|before|after|once|if)\b)|"
                    r"bump|prepare|update changelog|changelog|v?\d+\.\d+\.\d+|"
                    r"publish(?:es|ed|ing)? (?:new |the )?(?:package )?versions?|"
                    r"version packages)\b")),
    # (not across a word that fixes: "Fix the error message, fix a race in ...", "Logger
    # exchange: fix race during init", "disable reporting, remove race for nodes" fix it; a
    # logger is a process that can race; a "race error" is what a race caused, a "deadlock
    # error" what a deadlock detector reports)
    ("reports_not_fixes", _re(r"\b(?:detect\w*|report\w*|diagnos\w*|identif(?:y|ies|ying)|"
                              r"pinpoint\w*|investigat\w*|better error|error message|"
                              r"warn\w*|measure\w*|raise\w*|hide|hiding|show\w*|"
                              r"log(?:s|ged|ging)?|return\w*|debug\w*)\b"
                              r"(?:(?!\b(?:fix|avoid|prevent|resolv|solv|remov|eliminat|de-rac))"
                              r"[^\n]){0,60}\b(?:dead[ -]?locks?|races?|stuck|"
                              r"hung|hangs?|hanging)\b|"
                              r"\b(?:dead[ -]?lock|race)s? (?:detection|reports?)\b|"
                              # (how an exit message is shown or logged: "Show exit messages
                              # in IEx", "Make the exit message be a notice")
                              r"\b(?:show\w*|log(?:s|ged|ging)?|format\w*|print\w*|display\w*)"
                              r"\b[^\n]{0,40}\bexit messages?\b|\bexit messages? (?:be|as) "
                              r"(?:a |an )?(?:notice|warning|info|debug|error)\b|"
                              # (a run set up to find races: "a better chance at finding races")
                              r"\b(?:finding|to find|to catch|catching|to expose|exposing)\s+"
                              r"(?:\S+\s+){0,2}?(?:dead[ -]?locks?|races?)\b|"
                              r"\bdead[ -]?locks? errors?\b|"
                              r"\b(?:dead[ -]?lock|race)s? (?:is |are |was |were )?"
                              r"(?:found|detected)\b")),
    # Output added to find a flaky test's cause ("Provide more debug output for flaky test",
    # "Verbose logging to track down intermittently failing testcase") fixes nothing yet.
    ("debugs_flake", _re(r"\b(?:diagnos\w*|pinpoint\w*|investigat\w*|track(?:ing)? down|"
                         r"log(?:s|ged|ging)?|debug\w*|trac(?:e|es|ed|ing))\b"
                         r"(?:(?!\b(?:fix|avoid|prevent|resolv|solv|remov|eliminat|reduc|mitigat|"
                         r"stabili[sz]|de-?flak|unflak))[^\n]){0,60}\b(?:flak\w*|intermittent\w*)")),
    ("filesystem_timing", _re(r"\b(?:file ?system|mtime|timestamps?|granularity|clock|"
                              r"file modification)\b")),
    ("non_process_leak", _re(r"\bleak\w*\b.{0,30}\b(?:vars?|variables?|representation|"
                             r"abstraction|implementation|memory|atoms?|info\w*|secrets?|"
                             r"details?|internals?|data|"
                             r"credentials?|bindings?|scope)\b|\b(?:vars?|variables?|bindings?)\b"
                             r".{0,20}\bleak")),
    ("timeout_tuning", _re(r"\b(?:increase|bump|raise|longer|larger|bigger|extend|tweak|adjust|"
                           r"set)\w*\b.{0,30}\btime[ -]?outs?\b|\btime[ -]?outs?\b.{0,20}\b(?:to "
                           r"infinity|increase\w*|bump\w*)")),
    # how much runs at once, tuned: "raise storage transfer concurrency"
    ("concurrency_tuning", _re(r"\b(?:rais|increas|lower|reduc|decreas|bump|tun|limit|cap)\w*"
                               r"\s+(?:\w+\s+){0,3}concurrency\b")),
    # (a Conventional Commits "feat:" says so by its type)
    ("feature", _re(r"^\s*feat(?:\([^)\n]*\))?!?:|"
                    # (in any form: "Implemented inactivity timeouts", "Adding hibernation")
                    r"^\s*(?:add(?:s|ed|ing)?|support(?:s|ed|ing)?|allow(?:s|ed|ing)?|"
                    r"introduc(?:e|es|ed|ing)|implement(?:s|ed|ing)?|expos(?:e|es|ed|ing)|"
                    r"accept(?:s|ed|ing)? (?:\w+ )?(?:options?|opts|arguments?|args|"
                    r"param(?:eter)?s?)\b|"
                    # (code found unneeded and dropped: "No need to trap exits")
                    r"no (?:longer )?need(?:ed)? (?:to|for)\b|"
                    r"deprecat(?:e|es|ed|ing)|optionally|make [\w ]{0,30}configurable|"
                    r"optimi[sz](?:e|es|ed|ing)|refactor(?:s|ed|ing)?|clean ?up|cleanup|"
                    r"simplif(?:y|ies|ied|ying)|renam(?:e|es|ed|ing)|mov(?:e|es|ed|ing)|"
                    r"format(?:s|ted|ting)?|remove "
                    r"(?:the |a |an )?(?:unused|redundant|unnecessary|obsolete|superfluous))\b|"
                    # ... or ends in a noun that says so: "Playback refactor (#432)"
                    r"\b(?:refactor(?:ing)?|improvements|rework|overhaul)\s*(?:\(#\d+\))?\s*$")),
    # A test switched off, deleted or marked flaky, or one that shows a race, fixes nothing
    # yet ("Skip flaky test", "Mark the cluster suite as flaky", "Remove flaky tests",
    # "Repeat the flaky test until it passes", "Tests for a race between ...",
    # "Demonstrate the race in ...").
    ("sets_aside", _re(r"^\s*(?:temporarily |for now )?"
                       r"(?:(?:re-?)?(?:skip|disabl|mark|tag|quarantin|exclud)\w*\b.{0,60}\b"
                       r"(?:flak\w*|intermittent\w*|unstable|racy|non-?deterministic\w*|"
                       r"race(?:[ -]conditions?)? (?:tests?|groups?|suites?|cases?))\b|"
                       # (removing a test's flakiness fixes it: "remove flakyness of the test")
                       r"(?:delet|remov|drop)\w*\b(?!\s+(?:the\s+|some\s+)?flak\w*ness)"
                       r".{0,40}\b(?:flak\w*|intermittent\w*|"
                       r"non-?deterministic\w*|unstable|racy)\b.{0,30}\b(?:tests?|suites?|"
                       r"cases?|testcases?)\b(?!\s+assert)|"
                       r"(?:repeat|retr|re-?run)\w*\b.{0,40}\b(?:flak\w*|intermittent\w*)\b|"
                       # (a test removed by name: "Removed the verify_no_repair test.", not
                       # "Remove sleep from test")
                       r"(?:delet|remov|drop)\w*\s+(?:the\s+|a\s+|an\s+|this\s+)?[\w`'./:-]+\s+"
                       r"(?:tests?|test ?cases?|suites?)\b\W*$|"
                       r"tests? (?:for|of|covering)\b|"
                       r"(?:demonstrat|reproduc)\w*\b|"
                       # a test added that shows a race, fixing none ("Add failing … race
                       # test", "Adding pulse test for race condition described by bug 305")
                       r"add(?:s|ed|ing)?\b(?![^\n]*\b(?:fix|avoid|prevent|resolv|solv)\w*)"
                       r"(?=[^\n]*\b(?:tests?|test ?cases?)\b)"
                       r"(?=[^\n]*\b(?:rac(?:e|es|y)|dead[ -]?locks?)\b))")),
    # A revert undoes a commit, a fix among them ('Revert "Fix iex test race condition"').
    ("revert", _re(r"^\s*revert(?:s|ed|ing)?\b")),
    # Types written for Dialyzer: what "can never return" there is the checker's verdict on
    # a spec, not a process that waits ("Fix type specs for Cachex.expire", "Fix dialyzer
    # warnings"); a race the subject names still outweighs it.
    ("typing", _re(r"^\s*(?:fix|correct|updat|improv|add|tighten|relax|refin)\w*\s+"
                   r"(?:the\s+|some\s+|a\s+|missing\s+|wrong\s+|incorrect\s+|broken\s+)?"
                   r"(?:type\s*specs?|typespecs?|@?specs?|types?|dialyzer)\b|"
                   r"\bdialyzer\s+(?:warnings?|errors?|complaints?|issues?)\b")),
)

# A Conventional Commits type, "chore(deps): " or "refactor!: ", gitmoji ("✨ ", ":bug: ")
# and bracketed tags ("[wpool] "), before what the subject says.
CONVENTIONAL = _re(r"^\s*(?:(?:[\u2600-\u27bf\u2b00-\u2bff\U0001f300-\U0001faff\ufe0f\u200d]+|"
                   r":[a-z0-9_+-]+:|\[[^\]\n]{1,40}\])\s*)*(?:[a-z]+(?:\([^)]*\))?!?:\s*)?")


def bare_subject(message: str) -> str:
    """A message's subject without its type, tag or gitmoji: "chore: bump x" is "bump x"."""
    return CONVENTIONAL.sub("", message.split("\n", 1)[0], count=1)

# Subjects about the build, CI or scripts: with no Elixir/Erlang change, a race there is the
# tooling's, not a BEAM concurrency bug.
TOOLING = _re(r"\b(?:makefile|make(?: -j| ci| check| test)?\b.{0,20}\b(?:target|rule|job)s?|ci\b|"
              r"github actions?|workflows?|dockerfile|docker|shell|bash|scripts?|build(?:ing)?\b|"
              r"erlang\.mk|rebar\.config|rebar3? (?:plugin|hook)s?|npm|yarn|esbuild|webpack|"
              r"cmake|nif build)")

# Words before a cue, in its own sentence, that make a body's mention the commit's point:
# "Solves a race condition where…", "this caused a deadlock because…", "There is a race…",
# "queue.delete can hang", "the processes would race", "to reduce the likelihood of … racing",
# "when a replica start races the writer", "as this deadlocks the supervisor", "Close a
# potential race".
CUE_STATED = _re(r"(?:\b(?:fix\w*|solv\w*|resolv\w*|prevent\w*|avoid\w*|reduc\w*|mitigat\w*|"
                 r"minimi[sz]\w*|clos(?:e|es|ed|ing)|caus\w*|led to|leads? to|result\w* in|"
                 # (a window shrunk or narrowed; not a property test's shrinking)
                 r"(?:shr[iu]nk|narrow)\w*\s+(?:the|a|this|that|its)\b|"
                 r"trigger\w*)\b[^.!?\n]{0,40}|"
                 # (what the change takes away: "This removes the race condition that …")
                 r"\b(?:this|it|which)\s+(?:\w+\s+)?(?:remov|eliminat)\w*\b[^.!?\n]{0,40}|"
                 r"\b(?:as|since|because)\s+(?:this|that|it|they)\s+(?:\w+\s+)?|"
                 r"(?<!\bif )(?<!whether )(?<!in case )\bthere(?: is|'s| was| are|"
                 r" were| can be| could be| might be)\b[^.!?\n]{0,20}|"
                 r"\b(?:could|can|may|might|would)\s+(?:\w+\s+)?|"
                 r"(?<!\bonly )(?<!\bexcept )\bwhen\b[^,;.!?\n]{0,40})$")
# ...or, for the words that name a race, deadlock or hang, the word itself as what happened:
# "the check raced", "the node hung", "two pods ran it and deadlocked", "a stream blocked
# forever inside a call".
HAPPENED = _re(r"(?:hung|deadlocked|livelocked|raced|blocked forever)")
# Of those, the ones that say the commit fixes it, not what it is for: "add a primary key to
# avoid races" adds a key, "And fix a race condition flake" fixes one.
FIX_STATED = _re(r"\b(?:fix\w*|solv\w*|resolv\w*)\b[^.!?\n]{0,40}$")
# ...or words after it, in its sentence, that say when or why the bug happens: "a race occurs
# when", "a race condition where rows may be updated twice", "the test was flaky because"
# (not a reason for something else after a comma: "a test that would run forever to provoke
# a race condition, because EUnit stops it").
CAUSE_FOLLOWS = _re(r"^(?:[^.!?\n]{0,50}\b(?:occur\w*|happen\w*|when|where(?:by)?|if the|between|"
                    r"caus\w*|leads? to|result\w* in|"
                    r"(?:is|was|are|were)\s+(?:(?!not\b|never\b|no\b)\w+\s+)?possible)|"
                    r"[^.!?\n,;]{0,50}\b(?:because|due to))\b")
# ...or, for the words that name a race or deadlock outright, what the old code was: "the
# former is racy", "the post condition is race prone", "this was a deadlock".
NAMED_AS = _re(r"(?<!\bif )(?<!whether )(?<!there )\b(?:is|was|are|were|became)\s+"
               r"(?:(?:a|an|also|still|quite|very|inherently|potentially|known to be)\s+){0,2}"
               # "operations are subject to race conditions", "the check is prone to races"
               r"(?:(?:subject|prone|susceptible|vulnerable|open|exposed)\s+to\s+(?:an?\s+)?)?$")
# (the cues as clear as a fingerprint diff: race, deadlock, livelock)
STRONG_CUES = frozenset(c.name for c in MESSAGE_CUES if c.weight >= 0.9)
NAMING_CUES = STRONG_CUES | {"hang"}  # words that name the bug, read in whole sentences
# Words after a cue, in its sentence, that rule the bug out: "now that race conditions are
# not possible", "orphan processes are not a problem".
RULED_OUT = _re(r"^[^.!?\n]{0,30}\b(?:(?:is|are|was|were)\s+(?:not|no longer|never)\s+"
                r"(?:possible|an issue|a problem)|can(?:not|'t| not| no longer)\s+"
                r"(?:happen|occur))\b")

# Message words that make a fix intent explicit; a "feature" subject with them is a fix.
# (not a handle that is a thing: "file handle cache stats", "the handle write buffer")
FIX_INTENT = _re(r"\b(?:fix\w*|bug\w*|avoid\w*|prevent\w*|solve\w*|address\w*|"
                 r"(?<!file )(?<!socket )(?<!the )(?<!a )handle[sd]?|"
                 r"ensure\w*|workaround|regression(?! tests?)|correct\w*|properly|do not|don't|"
                 r"no longer|(?:get|make)s? (?:the |this |these |that )?tests? (?:to )?pass|"
                 # what must happen when a process fails: "Clean up handlers when the owner dies"
                 r"(?:when|after|if) (?:\w+ ){0,3}(?:dies|died|exits|exited|crash\w*|goes down|"
                 r"went down|is killed|was killed|terminates))\b")

_ETS_READ = r"(?::ets\.|ets:)(?:lookup|member|insert)\b"
# (one object for both sides of a rule about a construct changed in place)
_TIMEOUT_VALUE = _code(r"\b(?:timeout|:infinity|infinity|after)\b.{0,40}\d|\d.{0,40}\btimeout\b|"
                       r":infinity|\binfinity\b")
_SLEEP = r"(?:Process\.sleep|:timer\.sleep|timer:sleep|\bsleep)\s*\("
SYNC = (r"(?:assert_receive|assert_received|refute_receive|:sys\.get_state|sys:get_state|"
         r":sys\.get_status|sys:get_status|Process\.monitor|erlang:monitor|assert_down|"
         r"wait_until|wait_for|eventually|receive\b|:erlang\.trace|sync\()")

DIFF_RULES: tuple[DiffRule, ...] = (
    DiffRule(
        "init_timeout_to_continue", B.RACE_CONDITION,
        _code(r"handle_continue|\{:continue,|\{continue,"), _code(r",\s*0\s*\}|\btimeout\b"), 0.9,
        "started the post-init work with handle_continue instead of a zero timeout",
        ("1. init/1 returns a 0 ms timeout to run its first work right after start",
         "2. a message reaches the new process's mailbox before the timeout fires",
         "3. the message cancels the timeout, so the first work never runs"),
        "any message that arrives first cancels a GenServer timeout, while a continue "
        "always runs before the next message", needs=_code(r"handle_continue")),
    DiffRule(
        "ets_check_then_act", B.RACE_CONDITION,
        _code(r"(?::ets\.|ets:)(?:insert_new|update_counter|select_replace|update_element|"
              r"take)\b"), _code(_ETS_READ), 1.0,
        "replaced a separate ETS read and write with one atomic ETS operation",
        ("1. process A reads the ETS entry for key K (missing or old)",
         "2. process B reads the same entry before A writes",
         "3. both write based on what they read; one update is lost or a duplicate is made"),
        "the read and the write of the ETS table are two operations, so another process can "
        "change the entry between them"),
    DiffRule(
        "mnesia_dirty_to_transaction", B.RACE_CONDITION,
        _code(r"(?:mnesia:|:mnesia\.)(?:transaction|sync_transaction|activity)\b"),
        _code(r"(?:mnesia:|:mnesia\.)dirty_\w+"), 1.0,
        "moved dirty mnesia reads and writes into a transaction",
        ("1. process A dirty-reads a record", "2. process B dirty-writes the same record",
         "3. A writes a value computed from its stale read, overwriting B's update"),
        "dirty mnesia operations take no locks, so concurrent read-modify-write cycles "
        "interleave"),
    DiffRule(
        "register_whereis", B.RACE_CONDITION,
        _code(r"already_started|already_registered|:global\.trans|global:trans|"
              r"Registry\.register|:global\.register_name|global:register_name|register_name"),
        _code(r"(?:Process\.whereis|erlang:whereis|\bwhereis\(|Process\.register|"
              r"\bregister\(|Process\.alive\?|is_process_alive)"), 0.9,
        "stopped checking a process name or liveness before acting on it",
        ("1. process A checks that the name is free (or the process alive)",
         "2. process B registers the name (or the process exits) in between",
         "3. A acts on the stale answer: registration fails or it messages a dead process"),
        "a whereis/alive? check followed by register or send is a check-then-act race"),
    DiffRule(
        "call_to_self", B.DEADLOCK, None,
        _code(r"(?:GenServer\.call|gen_server:call|gen_statem:call|:gen_server\.call)\(\s*"
              r"(?:self\(\)|self\b)"), 1.0,
        "stopped the process from making a synchronous call to itself",
        ("1. the process handles a message and, inside the callback, calls itself "
         "synchronously", "2. the call's request waits in its own mailbox, behind the "
         "callback that is waiting for the reply", "3. neither can proceed until the call "
         "times out or blocks forever"),
        "a GenServer cannot serve a call while it is busy making one to itself"),
    DiffRule(
        "receive_after", B.DEADLOCK,
        _code(r"(?m)^[ \t]*after\s+(?:\d|[\w@.:]+\s*->|:infinity)"), None, 0.6,
        "added an `after` clause so a receive can no longer wait forever",
        ("1. the process enters a receive waiting for a specific reply",
         "2. the reply never comes (the peer died or the message was lost)",
         "3. with no `after` clause the process blocks forever"),
        "a receive without a timeout blocks forever when the awaited message is never sent"),
    DiffRule(
        "send_after_to_start_timer", B.MESSAGE_ORDERING,
        _code(r"start_timer\("), _code(r"send_after\("), 0.7,
        "switched to erlang:start_timer so each timeout message carries its timer's reference",
        ("1. the process arms a timer with send_after and later cancels or replaces it",
         "2. the old timer fired already: its message waits in the mailbox",
         "3. the process takes the stale message for the current timeout"),
        "a send_after message does not say which timer sent it, so a late message of a "
        "cancelled timer cannot be told from the live one"),
    DiffRule(
        "trap_exit", B.EXIT_SIGNAL,
        _code(r"trap_exit|\{:EXIT,|\{'EXIT',|:EXIT\b"), None, 0.7,
        "handled exit signals from linked processes",
        ("1. a linked process exits", "2. the exit signal reaches this process",
         "3. without trapping or handling it, this process dies or the EXIT message is "
         "mishandled"),
        "exit signals propagate along links unless trapped and handled"),
    DiffRule(
        "monitor_added", B.RESOURCE_LEAK,
        _code(r"Process\.monitor|erlang:monitor|:erlang\.monitor|\bmonitor\(process|"
              r"Process\.demonitor|erlang:demonitor|demonitor\(|:DOWN|'DOWN'"), None, 0.55,
        "monitors the other process and cleans up when it goes down",
        ("1. this process hands work to (or waits on) another process",
         "2. the other process dies", "3. nothing notices: state, messages or waiting callers "
         "are left behind"),
        "without a monitor a process cannot notice that its peer died"),
    DiffRule(
        "link_changed", B.EXIT_SIGNAL,
        None, _code(r"spawn_link|\bunlink\(|\blink\(|Process\.(?:un)?link"), 0.55,
        "stopped linking processes whose lifetimes differ",
        ("1. a process is linked to another whose lifetime it does not share",
         "2. one of them exits", "3. the exit signal kills or surprises the other, or a "
         "process outlives the one that should have taken it down"),
        "links tie two processes' lifetimes together"),
    DiffRule(
        "call_to_cast", B.DEADLOCK,
        _code(r"(?:GenServer\.cast|gen_server:cast|:gen_server\.cast|gen_statem:cast)\("),
        _code(r"(?:GenServer\.call|gen_server:call|:gen_server\.call|gen_statem:call)\("), 0.55,
        "made a synchronous call asynchronous, so the caller no longer waits on the callee",
        ("1. process A calls process B synchronously and waits for the reply",
         "2. B, to serve that request or one queued before it, waits on A",
         "3. neither proceeds until a call times out"),
        "a synchronous call blocks the caller until the callee replies"),
    DiffRule(
        "spawn_linked", B.RESOURCE_LEAK,
        _code(r"spawn_link\("), _code(r"\bspawn\("), 0.55,
        "spawned the helper process linked to the process that owns its work",
        ("1. a process starts a helper without linking it",
         "2. the owner exits (it crashes, is killed or gives up waiting)",
         "3. the helper lives on: it holds its resources or sends to a process that is gone"),
        "an unlinked process outlives the process it works for"),
    DiffRule(
        "message_queue", B.MAILBOX_OVERFLOW,
        _code(r"message_queue_len|max_heap_size|message_queue_data|:hibernate|"
              r"\bhibernate\b"), None, 0.7,
        "bounded or drained a process mailbox",
        ("1. producers send messages faster than the process handles them",
         "2. its mailbox grows without bound", "3. memory grows and every receive slows down"),
        "a process's mailbox has no built-in bound"),
    DiffRule(
        "timeout_changed", B.TIMEOUT,
        _TIMEOUT_VALUE, _TIMEOUT_VALUE, 0.4,
        "changed a timeout",
        ("1. a caller waits on another process with a timeout",
         "2. the other process is busy or blocked longer than that",
         "3. the caller gives up (or waits forever) at the wrong moment"),
        "the timeout does not match how long the other process can take"),
    DiffRule(
        "sleep_to_sync", B.RACE_CONDITION, _code(SYNC), _code(_SLEEP), 0.9,
        "replaced a sleep with explicit synchronisation on the event the test waits for",
        ("1. the test starts asynchronous work in another process",
         "2. it sleeps a fixed time instead of waiting for that work",
         "3. on a slow or busy machine the work is not done yet and the assertion fails"),
        "a fixed sleep does not order the test after the other process's work",
        test_only=True),
    DiffRule(
        "async_false", B.RACE_CONDITION, _code(r"async:\s*false"), _code(r"async:\s*true"), 0.9,
        "made the test case synchronous so it no longer shares global state with others",
        ("1. two async test cases run concurrently",
         "2. both touch the same global resource (a named process, ETS, env, IO device)",
         "3. one test observes the other's changes and fails"),
        "async test cases run in parallel and share global state",
        test_only=True),
    DiffRule(
        "test_sync_added", B.RACE_CONDITION, _code(SYNC), None, 0.5,
        "made the test wait for the other process before asserting",
        ("1. the test triggers work in another process",
         "2. it asserts before that process has handled the message",
         "3. the assertion sees the old state and fails intermittently"),
        "messages to other processes are asynchronous; the test must wait for their effect",
        test_only=True),
)
