"""How a Lua script's reply is decoded into its declared shape, in one place.

The shapes themselves are declared in replies.py.

A reply shape is a NamedTuple whose fields, in order, ARE the reply array, slot 0
included: a tagged reply declares its tag as a first field `tag: Literal['ok']` (a
Literal of several tags lets them share one shape), an untagged one (a read whose
every answer has the same layout) has no tag field. A script's codec names the
shapes it may answer, `class AppendArgs(ScriptArgs[AppendOk | AppendReplay])`
(protocol.py), so declaring the codec declares the replies too; `args.decode(raw)`
turns a raw reply into one of them and the store reads names, never positions.

Decoding is strict, so every test that goes through the store holds the scripts'
actual replies to these declarations on a real server: a slot count outside the
shape's, a value of another kind, or a tag no shape declares raises ReplyMismatch
(a bug, never a client's fault). It is also cheap, with no reflection per call: each
shape is turned into one generated function when its codec is declared (`_Shape`),
so a call is a dict lookup by tag, a type test per slot and the tuple's constructor,
a microsecond or so more than reading the slots by index was.

Every script may refuse with `{'err', code, extra?, at?}` (lib.lua's `precondition`,
`check_message`...): that decodes here too, into the service error it stands for
(store/errors.py), raised, unless the codec lists `Refusal` among its replies, which
then makes it a value its caller handles (the import reports its own refusals).

Slot kinds, as the wire carries them and as the shape holds them:

    Literal['a', ...]        the tag (slot 0)                    str
    str                      a string                            str
    str | None               a string, '' for none               str or None
    int                      a Lua number, or a decimal string   int
    bool                     0 or 1                              bool
    float | None             a score as Redis spells it, ''      float or None
    Fields                   an HGETALL: field, value, ...        dict
    tuple[str, ...]          a list of strings                   tuple
    Entry | None             an XRANGE of one id: {} or {entry}  Entry or None
    tuple[Entry, ...]        a list of stream entries            tuple of Entry
    Rest[X]                  the remaining slots, last only:     tuple of X
                             X one slot each, or a NamedTuple
                             of kinds above taking that many
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import (
    Annotated,
    Any,
    Generic,
    Literal,
    NamedTuple,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
    get_type_hints,
)

from session_service import errors
from session_service.store.errors import script_error

T = TypeVar("T")
R = TypeVar("R")

#: A session hash as HGETALL gives it (a flat list on the wire).
Fields = dict[str, str]
_REST = "the remaining slots"
#: The reply's remaining slots, as a tuple of X (see the module docstring).
Rest = Annotated[tuple[T, ...], _REST]


class ReplyMismatch(RuntimeError):
    """A script answered something its declared reply shapes do not allow.

    The message names the script, the shape and the slot, never a value: replies
    carry users' messages."""


class Entry(NamedTuple):
    """A stream entry: its id ('0-<seq>') and its fields, flat (message_from_entry)."""

    id: str
    fields: list[str]


class Refusal(NamedTuple):
    """`{'err', code, extra?, at?}`: the script wrote nothing and says why.

    `extra` is the current ETag of a failed precondition, a session's status, the
    repeated tool call id; `at` is the index of a batch's message at fault."""

    tag: Literal["err"]
    code: str
    extra: str | None = None
    at: int | None = None

    def error(self, target_status: str | None = None) -> errors.ServiceError:
        """The service error this refusal stands for (update passes its target status)."""
        error = script_error(self.code, self.extra, target_status)
        return error if self.at is None else error.in_batch(self.at)


# ---- slot converters --------------------------------------------------------


def _same(value: Any) -> Any:
    return value


def _str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("a string")
    return value


def _str_or_none(value: Any) -> str | None:
    return None if value == "" or value is None else _str(value)


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is not str:
        raise TypeError("an integer")
    return int(value)


def _bool(value: Any) -> bool:
    if value != 0 and value != 1:  # a Lua number (true arrives as 1 too)
        raise TypeError("0 or 1")
    return bool(value == 1)


def _score(value: Any) -> float | None:
    return None if value == "" else float(_str(value))


def _fields(value: Any) -> dict[str, str]:
    if type(value) is not list or len(value) % 2:
        raise TypeError("a field, value list")
    it = iter(value)
    return dict(zip(it, it, strict=True))


def _strs(value: Any) -> tuple[str, ...]:
    if type(value) is not list:
        raise TypeError("a list of strings")
    return tuple(_str(item) for item in value)


def _entry(value: Any) -> Entry:
    if type(value) is not list or len(value) != 2 or type(value[1]) is not list:
        raise TypeError("a stream entry")
    return Entry(_str(value[0]), value[1])


def _entry_or_none(value: Any) -> Entry | None:
    if type(value) is not list or len(value) > 1:
        raise TypeError("a list of at most one stream entry")
    return _entry(value[0]) if value else None


def _entries(value: Any) -> tuple[Entry, ...]:
    if type(value) is not list:
        raise TypeError("a list of stream entries")
    return tuple(_entry(item) for item in value)


def _int_or_none(value: Any) -> int | None:
    return None if value == "" or value is None else _int(value)


#: Converters that return a value of this wire type unchanged (the generated fast path).
_AS_IS: dict[Callable[[Any], Any], str] = {_str: "str", _int: "int"}

_KINDS: dict[Any, Callable[[Any], Any]] = {
    str: _str,
    str | None: _str_or_none,
    int: _int,
    int | None: _int_or_none,
    bool: _bool,
    float | None: _score,
    Fields: _fields,
    tuple[str, ...]: _strs,
    Entry: _entry,
    Entry | None: _entry_or_none,
    tuple[Entry, ...]: _entries,
}


# ---- shapes ------------------------------------------------------------------


class _Shape:
    """One NamedTuple's decoder: its converters, built once from its annotations."""

    __slots__ = ("cls", "convs", "fast", "names", "required", "rest", "script", "size", "tags")

    def __init__(self, script: str, cls: type[Any], *, group: bool = False) -> None:
        self.script = script
        self.cls = cls
        self.names: tuple[str, ...] = cls._fields
        hints = get_type_hints(cls, include_extras=True)
        self.tags: tuple[str, ...] = ()
        self.rest: _Shape | Callable[[Any], Any] | None = None
        convs: list[Callable[[Any], Any]] = []
        for i, name in enumerate(self.names):
            hint = hints[name]
            if get_origin(hint) is Literal:
                if i != 0 or group:
                    raise TypeError(f"{cls.__name__}.{name}: only slot 0 may be a tag")
                self.tags = tuple(str(tag) for tag in get_args(hint))
                convs.append(_same)
            elif get_origin(hint) is Annotated and _REST in hint.__metadata__:
                if i != len(self.names) - 1 or group:
                    raise TypeError(f"{cls.__name__}.{name}: Rest[...] must be the last field")
                (item,) = get_args(get_args(hint)[0])[:1]
                # A kind of its own (an Entry is one slot), else a group of slots.
                self.rest = _KINDS.get(item) or _Shape(script, item, group=True)
            else:
                kind = _KINDS.get(hint)
                if kind is None:
                    raise TypeError(f"{cls.__name__}.{name}: no reply decoding for {hint}")
                convs.append(kind)
        self.convs = tuple(convs)
        self.size = len(convs)
        self.required = self.size - len(cls._field_defaults)
        if self.rest is not None and self.required != self.size:
            raise TypeError(f"{cls.__name__}: a shape with Rest[...] takes no defaults")
        self.fast = self._compile()

    def _compile(self) -> Callable[[list[Any]], Any]:
        """The decoder of a reply with every fixed slot present, as one generated
        function (as collections.namedtuple builds its __new__): a slot that arrives
        as its declared type is taken as is, any other goes through its converter
        (which converts, or raises). No call per slot: the append's reply, the hot
        path's, decodes in a few tenths of a microsecond more than indexing took. The
        generic path below stays for defaults and for naming a bad slot."""
        env: dict[str, Any] = {"_new": tuple.__new__, "_cls": self.cls, "_c": self.convs}
        slots = []
        for i, conv in enumerate(self.convs):
            wire = _AS_IS.get(conv)
            if conv is _same:
                slots.append(f"r[{i}]")
            elif wire is not None:
                slots.append(f"(r[{i}] if type(r[{i}]) is {wire} else _c[{i}](r[{i}]))")
            else:
                slots.append(f"_c[{i}](r[{i}])")
        if self.rest is not None:
            env["_rest"] = self._rest
            slots.append("_rest(r, len(r))")
        source = f"def decode(r):\n    return _new(_cls, ({', '.join(slots)},))\n"
        exec(source, env)  # built above from the declarations only, never from a reply
        decode: Callable[[list[Any]], Any] = env["decode"]
        return decode

    def __call__(self, raw: list[Any]) -> Any:
        n = len(raw)
        if n == self.size or (self.rest is not None and n > self.size):
            try:
                return self.fast(raw)
            except (TypeError, ValueError):
                pass  # the generic path below names the slot
        if n < self.required or (self.rest is None and n > self.size):
            raise ReplyMismatch(self._where(f"{n} slots, declared {self._arity()}"))
        try:
            # Not strict: fewer slots than fields take the defaults, more are the Rest.
            values = [conv(value) for conv, value in zip(self.convs, raw, strict=False)]
            if self.rest is not None:
                values.append(self._rest(raw, n))
            return self.cls(*values)
        except (TypeError, ValueError) as exc:
            pairs = zip(self.names, self.convs, raw, strict=False)
            bad = next((name for name, conv, v in pairs if not _converts(conv, v)), None)
            raise ReplyMismatch(self._where(f"slot {bad or self.names[-1]!r} not {exc}")) from None

    def _rest(self, raw: list[Any], n: int) -> tuple[Any, ...]:
        rest = self.rest
        if isinstance(rest, _Shape):
            step = rest.size
            if (n - self.size) % step:
                raise ReplyMismatch(self._where(f"{n} slots, not {self.size} + {step} * k"))
            starts = range(self.size, n, step)
            try:
                return tuple([rest.fast(raw[i : i + step]) for i in starts])
            except (TypeError, ValueError):  # the group's own call names the bad slot
                return tuple([rest(raw[i : i + step]) for i in starts])
        assert rest is not None
        return tuple(rest(value) for value in raw[self.size :])

    def _arity(self) -> str:
        if self.rest is not None:
            return f"{self.size} or more"
        return str(self.size) if self.required == self.size else f"{self.required}..{self.size}"

    def _where(self, problem: str) -> str:
        return f"{self.script}.lua answered a {self.cls.__name__} reply of {problem}"


def _converts(conv: Callable[[Any], Any], value: Any) -> bool:
    try:
        conv(value)
    except (TypeError, ValueError, ReplyMismatch):
        return False
    return True


def _is_shape(item: Any) -> bool:
    return isinstance(item, type) and issubclass(item, tuple) and hasattr(item, "_fields")


def _members(declared: Any) -> tuple[Any, ...]:
    if get_origin(declared) in (Union, types.UnionType):
        return get_args(declared)
    return (declared,)


class Replies(Generic[R]):
    """One script's reply shapes, by tag, and the decoder of its raw replies."""

    __slots__ = ("refusal", "refusals", "scalar", "script", "shapes", "tagged", "untagged")

    def __init__(self, script: str, declared: Any) -> None:
        self.script = script
        self.tagged: dict[str, _Shape] = {}
        self.untagged: _Shape | None = None
        self.scalar: Callable[[Any], Any] | None = None
        self.refusals = False
        self.shapes: tuple[type[Any], ...] = _members(declared)
        for member in self.shapes:
            if member is Refusal:
                self.refusals = True
            elif _is_shape(member):
                shape = _shape(script, member)
                if not shape.tags:
                    if self.untagged is not None:
                        raise TypeError(f"{script}: two untagged reply shapes cannot be told apart")
                    self.untagged = shape
                for tag in shape.tags:
                    if tag in self.tagged or tag == "err":
                        raise TypeError(f"{script}: two reply shapes claim the tag {tag!r}")
                    self.tagged[tag] = shape
            elif member in _KINDS and self.scalar is None:
                self.scalar = _KINDS[member]
            else:
                raise TypeError(f"{script}: {member!r} is not a reply shape")
        self.refusal = _shape(script, Refusal)
        if self.refusals:
            self.tagged["err"] = self.refusal
        for shape in self.tagged.values():
            if "replay" in shape.tags:
                _REPLAYS.add(shape.cls)

    def __call__(self, raw: Any, target_status: str | None = None) -> R:
        """The reply as its declared shape; a refusal raised as its service error."""
        if type(raw) is list:
            if raw:
                head = raw[0]
                if type(head) is str:
                    shape = self.tagged.get(head)
                    if shape is not None:
                        return cast(R, shape(raw))
                    if head == "err":
                        raise self.refusal(raw).error(target_status)
            if self.untagged is not None:
                return cast(R, self.untagged(raw))
        elif self.scalar is not None:
            try:
                return cast(R, self.scalar(raw))
            except (TypeError, ValueError) as exc:
                raise ReplyMismatch(
                    f"{self.script}.lua answered a scalar that is not {exc}"
                ) from None
        tag = raw[0] if type(raw) is list and raw and type(raw[0]) is str else None
        what = f"tagged {tag!r}" if tag in self.tagged or tag == "err" else "untagged"
        raise ReplyMismatch(
            f"{self.script}.lua answered a {type(raw).__name__} reply ({what}) that none of "
            f"its declared shapes ({', '.join(s.__name__ for s in self.shapes)}) takes"
        )


_SHAPES: dict[tuple[str, type[Any]], _Shape] = {}


def _shape(script: str, cls: type[Any]) -> _Shape:
    known = _SHAPES.get((script, cls))
    if known is None:
        known = _SHAPES[(script, cls)] = _Shape(script, cls)
    return known


def is_refusal(raw: object) -> bool:
    """The raw reply is a refusal, `{'err', ...}`: the script wrote nothing. For the one
    decision taken before decoding, whether the store's WAIT must have succeeded."""
    return type(raw) is list and len(raw) > 0 and raw[0] == "err"


#: The shapes tagged 'replay' (lib.lua's replay()), for the replay metric.
_REPLAYS: set[type[Any]] = set()


def replayed(reply: object) -> bool:
    """The reply answers an idempotent retry from its record (lib.lua's replay())."""
    return type(reply) in _REPLAYS
