"""The HTTP responses apprise's plugins receive, read for one send: ``Retry-After``.

apprise 2.x plugins call ``requests.request`` (or ``requests.post`` …) through their
module's global name ``requests``, look at the status, and return a bool: the response
headers never leave the plugin. Patching ``requests`` would change it for the whole
process and every thread in it. Instead, each channel's service object is given a
subclass of its plugin class (``observe``) whose methods that read ``requests`` are the
plugin's own code, bound to a copy of the plugin module's globals in which ``requests``
is a proxy. The
proxy forwards every call and attribute to the real module, adding a response hook
(requests' documented ``hooks=`` argument). The hook tells the recorder of the current
send, a context variable set only in the copy of the context that one send runs in
(``recording``), and does nothing when none is set. Nothing global changes: the
plugin classes, the modules and ``requests`` stay as they are, and only our channels'
service objects use the subclasses.

A plugin that does not reach HTTP through a module-level ``requests`` (e-mail, a
custom ``@notify`` target) is left as it is: nothing is recorded and the dispatcher's
own backoff applies.
"""

from __future__ import annotations

import contextvars
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Response", "observe", "recording"]


@dataclass(frozen=True)
class Response:
    """What a plugin's HTTP request got back: its status and headers."""

    status: int
    headers: Mapping[str, str]


_sink: contextvars.ContextVar[list[Response] | None] = contextvars.ContextVar(
    "monitor_alert_responses", default=None)

_REQUESTS_API = ("request", "get", "options", "head", "post", "put", "patch", "delete")


def _record(response: Any, *args: Any, **kwargs: Any) -> None:
    sink = _sink.get()
    if sink is not None:
        sink.append(Response(int(response.status_code), dict(response.headers)))


def _hooked(kwargs: dict[str, Any]) -> dict[str, Any]:
    hooks = dict(kwargs.get("hooks") or {})
    mine = hooks.get("response") or []
    hooks["response"] = [*([mine] if callable(mine) else mine), _record]
    return {**kwargs, "hooks": hooks}


class _Requests:
    """``requests`` as the observed plugins see it: the same module, with a response
    hook added to each request."""

    def __init__(self, real: types.ModuleType) -> None:
        self._real = real
        for name in _REQUESTS_API:
            setattr(self, name, self._wrap(getattr(real, name)))

    @staticmethod
    def _wrap(call: Callable[..., Any]) -> Callable[..., Any]:
        def hooked(*args: Any, **kwargs: Any) -> Any:
            return call(*args, **_hooked(kwargs))
        return hooked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_subclasses: dict[type, type | None] = {}


def _names(code: types.CodeType) -> set[str]:
    """The global (and attribute) names a function's code reads, nested code included."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _uses_requests(func: types.FunctionType) -> bool:
    """Whether ``func`` reads its module's global ``requests`` (the HTTP library)."""
    real = func.__globals__.get("requests")
    return (isinstance(real, types.ModuleType) and real.__name__ == "requests"
            and "requests" in _names(func.__code__))


def _rebind(func: types.FunctionType, namespaces: dict[int, dict[str, Any]]
            ) -> types.FunctionType:
    module = func.__globals__
    ns = namespaces.get(id(module))
    if ns is None:
        ns = namespaces[id(module)] = {**module, "requests": _Requests(module["requests"])}
    new = types.FunctionType(func.__code__, ns, func.__name__, func.__defaults__,
                             func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__qualname__ = func.__qualname__
    new.__dict__.update(func.__dict__)
    return new


def _observed(cls: type) -> type | None:
    """``cls`` with every method that reaches ``requests`` rebound; None if none does."""
    if cls in _subclasses:
        return _subclasses[cls]
    namespaces: dict[int, dict[str, Any]] = {}
    rebound: dict[str, Any] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        for name, attr in vars(klass).items():
            if name in seen:
                continue  # overridden lower down the MRO
            seen.add(name)
            wrapper = type(attr) if isinstance(attr, (staticmethod, classmethod)) else None
            func = attr.__func__ if wrapper is not None else attr
            if isinstance(func, types.FunctionType) and _uses_requests(func):
                new = _rebind(func, namespaces)
                rebound[name] = wrapper(new) if wrapper is not None else new
    sub = (type(cls.__name__, (cls,), {**rebound, "__module__": cls.__module__,
                                       "__doc__": cls.__doc__})
           if rebound else None)
    _subclasses[cls] = sub
    return sub


def observe(service: object) -> bool:
    """Make ``service`` (an apprise plugin object) report its HTTP responses to
    ``recording``; False if its plugin does not use ``requests``."""
    sub = _observed(type(service))
    if sub is None:
        return False
    service.__class__ = sub
    return True


def recording(sink: list[Response]) -> contextvars.Context:
    """A copy of the current context in which the observed services append each
    response they get to ``sink``: run the send with ``context.run``."""
    context = contextvars.copy_context()
    context.run(_sink.set, sink)
    return context
